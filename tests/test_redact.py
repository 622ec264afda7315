"""Credentials in command lines never reach the disk (issue 8, item 1; issue 18, item 5).

tests/data/redaction.jsonl is the corpus of forms: one command line a line, with the exact
redaction it must get ("redact"), or none because it holds no secret ("keep"), or the exact
output of a form redaction is known to miss ("miss", so that a change to it is seen). Every case
runs through redact_cmdline, the function the recorder calls; docs/redaction.md's lists are
generated from the corpus (`python -m tests.test_redact` rewrites them) and a test keeps them
equal. The unit cases below pin single rules. The end-to-end tests plant secrets in the argv of
real processes (the corpus's among them), record them with `procsnap snapshot`, and search every
byte and every decoded value of every file of the recording; with --no-redact the same search
must find them, which proves the search can fail.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recorder.redact import REDACTED, redact_argv, redact_cmdline, secret_name

from tests.conftest import ROOT
from tests.support.host import procsnap_cmd

CORPUS_FILE = ROOT / "tests" / "data" / "redaction.jsonl"
DOC = ROOT / "docs" / "redaction.md"
DOC_BEGIN = "<!-- corpus: generated from tests/data/redaction.jsonl; do not edit by hand -->\n"
DOC_END = "<!-- corpus end -->\n"


def load_corpus() -> list[dict]:
    cases = []
    for n, line in enumerate(CORPUS_FILE.read_text().splitlines(), 1):
        if line.strip():
            c = json.loads(line)
            c["line"] = n
            cases.append(c)
    return cases


CORPUS = load_corpus()


def _raw(case: dict) -> bytes:
    """The case's input as the bytes of /proc/PID/cmdline."""
    if "argv" in case:
        return b"".join(a.encode() + b"\0" for a in case["argv"])
    return case["cmdline"].encode()


def _expected(case: dict):
    return case.get("want", case.get("argv", case.get("cmdline")))


def _decode(case: dict, raw: bytes):
    if "argv" in case:
        assert raw.endswith(b"\0")
        return [a.decode() for a in raw[:-1].split(b"\0")]
    return raw.decode()


def _removed(arg: str, want: str) -> list[str]:
    """What redaction took out of arg to give want: the text where want says <redacted>."""
    parts = want.split(REDACTED.decode())
    assert arg.startswith(parts[0]) and arg.endswith(parts[-1]), (arg, want)
    out, pos = [], len(parts[0])
    for i, p in enumerate(parts[1:], 1):
        end = len(arg) - len(p) if i == len(parts) - 1 else arg.index(p, pos + 1)
        out.append(arg[pos:end])
        pos = end + len(p)
    return out


def _secrets(case: dict) -> list[str]:
    ins = case["argv"] if "argv" in case else [case["cmdline"]]
    wants = case["want"] if "argv" in case else [case["want"]]
    return [s for a, w in zip(ins, wants) for s in _removed(a, w)]


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: f"line{c['line']}-{c['kind']}")
def test_corpus(case):
    """Each form of the corpus gets exactly its expected redaction from the recorder's function."""
    raw = _raw(case)
    got = redact_cmdline(raw)
    assert _decode(case, got) == _expected(case)
    if case["kind"] == "keep":
        assert got is raw  # nothing to redact: the bytes are handed on untouched


def test_corpus_is_well_formed():
    """Every case says what it is, redacts something when it should, and plants secrets the
    end-to-end test can look for."""
    for c in CORPUS:
        assert c["kind"] in ("redact", "keep", "miss") and c["form"], c
        assert ("argv" in c) != ("cmdline" in c), c
        assert ("want" in c) == (c["kind"] != "keep"), c
        if c["kind"] == "redact":
            assert _expected(c) != c.get("argv", c.get("cmdline")), c
            assert all(len(s) >= 8 for s in _secrets(c)), c  # findable in a recording
    kinds = {c["kind"] for c in CORPUS}
    assert kinds == {"redact", "keep", "miss"}
    # The forms the issue named are in it (issue 18, item 5).
    text = CORPUS_FILE.read_text()
    for form in ("--user=alice:", "-ualice:", "-HAuthorization: token", "--env=DB_PASSWORD=", "BEGIN PGP PRIVATE KEY",
                 "--set", "glpat-", "sk_live_", "hvs.", "hooks.slack.com", "--token=\\t", "Ur33/as", "Ur35@as"):
        assert form in text, form


def test_the_recorder_redacts_with_this_function():
    from recorder.collect import processes
    assert processes.redact_cmdline is redact_cmdline


def _code(s: str) -> str:
    s = s.replace("\n", "\\n").replace("\t", "\\t")
    fence = "``" if "`" in s else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _shown(v) -> str:
    """argv as a shell would take it back (quoted only where a word needs it), a string as it is."""
    if not isinstance(v, list):
        return v
    return " ".join(a if a and not re.search(r"[\s'\"\\;&|]", a) else shlex.quote(a) for a in v)


def render_doc_lists() -> str:
    """docs/redaction.md's lists, from the corpus."""
    titles = {"redact": ("What is caught", "Each line is a case of the corpus: the command line, and what a recording keeps of it."),
              "keep": ("What is left alone", "Not secrets: these command lines are recorded as they are."),
              "miss": ("What is not caught", "Redaction recognises forms, not secrets. These forms are known to leak "
                                              "(the corpus pins what they give today).")}
    out = []
    for kind in ("redact", "keep", "miss"):
        title, intro = titles[kind]
        out += [f"## {title}\n", "\n", intro + "\n"]
        forms: dict[str, list] = {}
        for c in CORPUS:
            if c["kind"] == kind:
                forms.setdefault(c["form"], []).append(c)
        for form, cases in forms.items():
            out += ["\n", f"**{form}**\n", "\n"]
            for c in cases:
                src = _shown(c.get("argv", c.get("cmdline")))
                if kind == "keep":
                    out.append(f"- {_code(src)}\n")
                else:
                    out.append(f"- {_code(src)} → {_code(_shown(c['want']))}\n")
        out.append("\n")
    return "".join(out)


def _doc_with_lists() -> str:
    text = DOC.read_text()
    i, j = text.index(DOC_BEGIN) + len(DOC_BEGIN), text.index(DOC_END)
    return text[:i] + "\n" + render_doc_lists() + text[j:]


def test_the_doc_lists_exactly_what_the_corpus_proves():
    assert DOC.read_text() == _doc_with_lists(), "docs/redaction.md is out of step with the corpus: python -m tests.test_redact"


def red(*argv: str) -> list[str]:
    return [a.decode() for a in redact_argv([a.encode() for a in argv])]


@pytest.mark.parametrize("argv,want", [
    (["prog", "--password=hunter2"], ["prog", "--password=<redacted>"]),
    (["prog", "--token", "abc", "-v"], ["prog", "--token", "<redacted>", "-v"]),
    (["prog", "--api-key=k1", "--client-secret", "c1", "--secret", "s1"],
     ["prog", "--api-key=<redacted>", "--client-secret", "<redacted>", "--secret", "<redacted>"]),
    (["mysql", "-uroot", "-phunter2", "db"], ["mysql", "-uroot", "-p<redacted>", "db"]),
    # mysql prompts for the password after a lone -p: the next word is the database.
    (["mysql", "-p", "db"], ["mysql", "-p", "db"]),
    # -p is a port elsewhere.
    (["nc", "-p", "8080"], ["nc", "-p", "8080"]),
    (["/usr/bin/sshpass", "-p", "pw1", "ssh", "h"], ["/usr/bin/sshpass", "-p", "<redacted>", "ssh", "h"]),
    (["redis-cli", "-a", "pw2"], ["redis-cli", "-a", "<redacted>"]),
    (["curl", "-u", "bob:pw3", "https://h/"], ["curl", "-u", "bob:<redacted>", "https://h/"]),
    (["curl", "-H", "Authorization: Bearer tok1", "https://h/"],
     ["curl", "-H", "Authorization: Bearer <redacted>", "https://h/"]),
    (["psql", "postgres://app:pw4@db:5432/x"], ["psql", "postgres://app:<redacted>@db:5432/x"]),
    (["sh", "-c", "PGPASSWORD=pw5 psql -h h; mysql -ppw6 db"],
     ["sh", "-c", "PGPASSWORD=<redacted> psql -h h; mysql -p<redacted> db"]),
    (["env", "MYSQL_PWD=pw7", "SECRET_KEY=pw8", "PWD=/home/x"],
     ["env", "MYSQL_PWD=<redacted>", "SECRET_KEY=<redacted>", "PWD=/home/x"]),
    (["aws", "--aws-secret-access-key", "pw9", "AKIAABCDEFGHIJKLMNOP"],
     ["aws", "--aws-secret-access-key", "<redacted>", "<redacted>"]),
    (["x", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_abc"], ["x", "<redacted>"]),
    (["git", "clone", "https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/x"],
     ["git", "clone", "https://<redacted>@github.com/x"]),
    (["bot", "xoxb-1234567890-abcdef"], ["bot", "<redacted>"]),
    (["openssl", "enc", "-pass", "pass:pw10"], ["openssl", "enc", "-pass", "pass:<redacted>"]),
    (["x", "--key", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"],
     ["x", "--key", "<redacted>"]),
    (["agent", "--env", '{"DB_PASSWORD": "pw11", "PATH": "/bin", "TOKEN_FILE": "/run/t"}'],
     ["agent", "--env", '{"DB_PASSWORD": "<redacted>", "PATH": "/bin", "TOKEN_FILE": "/run/t"}']),
    # Not secrets: paths to them, switches, look-alike words.
    (["x", "--password-file=/etc/pw", "--no-password", "db"], ["x", "--password-file=/etc/pw", "--no-password", "db"]),
    (["ssh", "-o", "PasswordAuthentication=no", "h"], ["ssh", "-o", "PasswordAuthentication=no", "h"]),
    (["python", "train.py", "--tokenizer", "gpt2", "--bypass", "x"],
     ["python", "train.py", "--tokenizer", "gpt2", "--bypass", "x"]),
])
def test_rules(argv, want):
    assert red(*argv) == want


@pytest.mark.parametrize("name,secret", [
    ("password", True), ("PGPASSWORD", True), ("db-pass", True), ("MYSQL_PWD", True), ("auth-token", True),
    ("api_key", True), ("AWS_SECRET_ACCESS_KEY", True), ("client.secret", True),
    ("key", False), ("password-file", False), ("no-password", False), ("tokenizer", False), ("PWD", False),
    ("monkey", False),
])
def test_secret_names(name, secret):
    assert secret_name(name.encode()) is secret


def test_the_quick_check_finds_every_candidate():
    """The trie pattern matches each candidate literal, inside other text too, and nothing else."""
    from recorder import redact as R
    for c in R._CANDIDATES:
        assert R._CANDIDATE.search(b"x" + c + b"y").group() == c
        assert R._CANDIDATE.fullmatch(c[:-1]) is None or any(o == c[:-1] for o in R._CANDIDATES)
    assert R._CANDIDATE.search(b"/usr/sbin/nginx\0-g\0daemon off;") is None
    for program in R.PROGRAMS:  # every program is found by a stem
        assert R._CANDIDATE.search(program), program


def test_the_memo_gives_what_redaction_gives():
    from recorder import redact as R
    raw = b"mysql\0-pS3cretZq\0"
    first = redact_cmdline(raw)
    assert first == b"mysql\0-p<redacted>\0"
    again = bytes(bytearray(raw))  # equal bytes, another object
    assert redact_cmdline(again) == first and R._MEMO[raw] == first
    plain = bytes(bytearray(b"/usr/sbin/nginx\0"))
    assert redact_cmdline(plain) is plain and redact_cmdline(plain) is plain


def test_command_lines_without_candidates_are_returned_as_they_are():
    raw = b"/usr/sbin/nginx\0-g\0daemon off;\0"
    assert redact_cmdline(raw) is raw
    raw = b"/usr/bin/python3\0-m\0http.server\0"  # candidates neither
    assert redact_cmdline(raw) is raw


def test_raw_bytes_keep_their_shape():
    assert redact_cmdline(b"a\0--token\0t\xff\0") == b"a\0--token\0<redacted>\0"
    assert redact_cmdline(b"a --password=x") == b"a --password=<redacted>"  # setproctitle, no NULs


# --------------------------------------------------------------------------
# End to end: real processes, a real recording, every byte.


def _spawn(secret: dict[str, str]) -> list[subprocess.Popen]:
    py = sys.executable
    sleeper = "import time; time.sleep(120)"
    s = secret
    cmds = [
        [py, "-c", sleeper, f"--password={s['a']}", "--token", s["b"], f"--api-key={s['c']}",
         "--client-secret", s["d"], f"https://user:{s['e']}@db.example:5432/x"],
        ["bash", "-c", f"exec -a mysql {py} -c '{sleeper}' -uroot -p{s['f']} db"],
        ["bash", "-c", f"exec -a sshpass {py} -c '{sleeper}' -p {s['g']} ssh host"],
        ["sh", "-c", f"PGPASSWORD={s['h']} sleep 120; echo 'Authorization: Bearer {s['i']}' "
                     f"AKIA{s['j']} eyJ{s['k']}.eyJ{s['k']}.{s['k']} ghp_{s['l']}"],
    ]
    return [subprocess.Popen(c, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for c in cmds]


def _wait_for(procs, needles):
    """Until every process has exec'ed into the command line that holds its secret."""
    for _ in range(200):
        found = set()
        for p in procs:
            try:
                cmd = Path(f"/proc/{p.pid}/cmdline").read_bytes()
            except OSError:
                continue
            found |= {n for n in needles if n.encode() in cmd}
        if found == set(needles):
            return
        time.sleep(0.05)
    raise AssertionError(f"secrets not in any command line: {set(needles) - found}")


def _every_value(rec: Path) -> tuple[bytes, bytes]:
    """All raw bytes of the recording, and all decoded values of every column of every Parquet file."""
    raw, decoded = [], []
    for f in sorted(rec.rglob("*")):
        if not f.is_file():
            continue
        raw.append(f.read_bytes())
        if f.suffix == ".parquet":
            t = pq.read_table(f)
            for col in t.columns:
                for v in col.to_pylist():
                    decoded.append(v if isinstance(v, bytes) else str(v).encode())
    return b"\n".join(raw), b"\n".join(decoded)


def _snapshot(out: Path, *extra: str, planted: str) -> subprocess.CompletedProcess:
    # The recorder's own argv carries a secret too (argv[1] of python -c, which main() skips).
    code = "import sys; from analyze.cli import main; sys.exit(main(sys.argv[2:]))"
    return subprocess.run([sys.executable, "-c", code, f"--db-password={planted}", "snapshot", "-o", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def _record_both(tmp_path: Path, procs, needles, own: str) -> None:
    """Once PROCS show NEEDLES, one snapshot into tmp_path/red and one with --no-redact into
    tmp_path/plain (the recorder's own argv carrying OWN); the processes are ended after."""
    try:
        _wait_for(procs, needles)
        p = _snapshot(tmp_path / "red", planted=own)
        assert p.returncode == 0, p.stderr
        q = _snapshot(tmp_path / "plain", "--no-redact", planted=own)
        assert q.returncode == 0, q.stderr
    finally:
        for pr in procs:
            pr.kill()
            pr.wait()


@pytest.mark.live
def test_no_planted_secret_reaches_the_recording(tmp_path):
    alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
    s = {k: "Zq" + secrets.token_hex(8) for k in "abcdefghi"}
    s["j"] = secrets.token_hex(8).upper()
    s["k"] = "Zq" + secrets.token_hex(6)
    s["l"] = "".join(secrets.choice(alnum) for _ in range(36))
    s["own"] = "Zq" + secrets.token_hex(8)
    _record_both(tmp_path, _spawn(s), [v for k, v in s.items() if k != "own"], s["own"])
    raw, decoded = _every_value(tmp_path / "red")
    leaked = {k: v for k, v in s.items() if v.encode() in raw or v.encode() in decoded}
    assert not leaked, leaked
    assert b"<redacted>" in decoded
    assert b"-uroot" in decoded and b"db.example" in decoded  # the shape is kept
    # The same search finds every secret without redaction: the test can fail.
    _, plain = _every_value(tmp_path / "plain")
    missing = {k: v for k, v in s.items() if v.encode() not in plain}
    assert not missing, missing


@pytest.mark.live
def test_no_secret_of_the_corpus_reaches_the_recording(tmp_path):
    """Every "redact" case of the corpus as the argv of a real process (a shell that waits, the
    case's words as its positional parameters), one `procsnap snapshot`: none of the text the
    corpus says is redacted is in any byte or decoded value of the recording."""
    cases = [c for c in CORPUS if c["kind"] == "redact" and "argv" in c]
    needles = sorted({s for c in cases for s in _secrets(c)})
    procs = [subprocess.Popen(["sh", "-c", "sleep 120; :", *c["argv"]], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in cases]
    _record_both(tmp_path, procs, needles, "Zq" + secrets.token_hex(8))
    raw, decoded = _every_value(tmp_path / "red")
    leaked = [n for n in needles if n.encode() in raw or n.encode() in decoded]
    assert not leaked
    # The same search finds every one of them without redaction: the test can fail.
    _, plain = _every_value(tmp_path / "plain")
    assert [n for n in needles if n.encode() not in plain] == []


@pytest.mark.live
def test_environment_variables_are_never_read(monkeypatch):
    """A snapshot of the live host opens no /proc/*/environ (every file the collector opens goes through these)."""
    from recorder.collect.collector import Collector
    opened: list[str] = []
    real_os_open, real_open = os.open, builtins.open

    def os_open(path, *a, **k):
        opened.append(os.fsdecode(path))
        return real_os_open(path, *a, **k)

    def b_open(path, *a, **k):
        if isinstance(path, (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", b_open)
    c = Collector()
    c.native = None  # the Python loops: their opens go through the spies (the C ones: see below)
    c.snapshot()
    assert any(p.endswith("/cmdline") for p in opened)  # the spy sees the collector's reads
    assert not [p for p in opened if "environ" in p]
    src = "\n".join(p.read_text() for p in (ROOT / "recorder").rglob("*.py"))
    assert "environ" not in src.replace("os.environ", "")
    assert "environ" not in (ROOT / "recorder" / "source" / "_native.c").read_text()


@pytest.mark.live
@pytest.mark.tools("strace")
def test_environment_variables_are_never_read_by_the_process(tmp_path):
    """The same, seen from the kernel's side: every open(at) of a whole `procsnap snapshot`
    (C loops included, relative paths included), none of them an environ."""
    log = tmp_path / "trace"
    rec = tmp_path / "rec"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(log), *procsnap_cmd(),
                    "snapshot", "-o", str(rec), "-q"], check=True, capture_output=True, timeout=300)
    calls = log.read_text(errors="replace").splitlines()
    assert sum('"cmdline"' in c or '/cmdline"' in c for c in calls) >= 10  # the trace sees the reads
    assert not [c for c in calls if '"environ"' in c or '/environ"' in c]


# --------------------------------------------------------------------------
# Permissions (issue 8, item 2): what is redacted is also kept from other users.


@pytest.mark.live
def test_recordings_are_private(cli, tmp_path):
    rec = tmp_path / "new" / "rec"
    p = cli("snapshot", "-o", rec)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr
    modes = {str(f.relative_to(rec)): f.stat().st_mode & 0o777 for f in [rec, *rec.rglob("*")]}
    assert {m for f, m in modes.items() if (rec / f).is_dir()} == {0o700}
    assert {m for f, m in modes.items() if (rec / f).is_file()} == {0o600}
    assert any(f.endswith(".parquet") for f in modes)


@pytest.mark.parametrize("mode,flags", [(0o755, ()), (0o701, ()), (0o770, ("--allow-shared-folder",))])
@pytest.mark.live
def test_an_existing_folder_with_looser_modes_gets_a_warning(cli, tmp_path, mode, flags):
    """Readable by others: recorded into, with a warning. Writable by the group: refused (issue 18:
    others could plant links), unless --allow-shared-folder says it is meant; then warned too."""
    rec = tmp_path / "rec"
    rec.mkdir()
    rec.chmod(mode)
    if flags:
        refused = cli("snapshot", "-o", rec)
        assert refused.returncode == 1 and "--allow-shared-folder" in refused.stderr
        assert not any(rec.iterdir())
    p = cli("snapshot", "-o", rec, *flags)
    assert p.returncode == 0, p.stderr
    assert f"warning: {rec} is readable by others (mode {mode:o})" in p.stderr
    assert rec.stat().st_mode & 0o777 == mode  # told, not changed behind the user's back


@pytest.mark.live
@pytest.mark.tools("ps")
def test_live_views_print_what_the_real_tools_print(capsys):
    """Nothing of a live ps/lsof/top reaches disk: they show the command line as ps does."""
    from analyze import cli
    token = secrets.token_hex(8)
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"--password={token}"],
                         stdin=subprocess.DEVNULL)
    try:
        _wait_for([p], [token])
        assert cli.main(["ps", "-p", str(p.pid), "-o", "args="]) == 0
        ours = capsys.readouterr().out
        real = subprocess.run(["ps", "-ww", "-p", str(p.pid), "-o", "args="],  # -ww: no COLUMNS cut
                              capture_output=True, text=True).stdout
        assert token in real and ours == real
    finally:
        p.kill()
        p.wait()


if __name__ == "__main__":  # python -m tests.test_redact: regenerate docs/redaction.md's lists
    DOC.write_text(_doc_with_lists())

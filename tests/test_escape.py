"""Terminal and spreadsheet injection: every text a recording or the host supplies reaches the
terminal escaped, whatever the command and column; CSV neutralises formula cells.

A real recording of this host is made hostile the ways a shared one can be: a real process whose
command name (written to /proc/self/comm), argv (argv[0] a spreadsheet formula) and open file
name hold ESC [ 2 J, BEL, CR, U+009B (CSI), U+202E (RIGHT-TO-LEFT OVERRIDE), a byte that is not
UTF-8 and a newline followed by a forged line; a host name given with --host holding the same;
the recording's folder in a fleet named so; a second recording whose host= folders carry
URL-escaped controls; the user, tty, state, fd mode, type and device of that process rewritten in
the Parquet files; and a damaged data file, whose path is hostile, left out and named. Every
analyzer command is run on it (and live on the process) and none may write a raw control,
C1, format or separator character, nor a line that starts with the forged text.
"""

from __future__ import annotations

import csv
import html.parser
import io
import json
import os
import re
import subprocess
import sys
import unicodedata
import urllib.parse
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from analyze.output import csv_cell, escape, escape_lines

from tests.conftest import ROOT

pytestmark = pytest.mark.live

FORGED = "INJECTED"
# Everything a terminal acts on, or that shows text other than it is, then a forged line.
HOSTILE = "\x1b[2J\x07\r\u009b31m\u202eevil\n" + FORGED
# /proc/PID/comm holds 15 bytes: ESC [ 2 J, BEL, CR, U+009B, U+202E, newline, then a formula.
COMM = b"\x1b[2J\x07\r\xc2\x9b\xe2\x80\xae\n=X"
ARGV0 = '=HYPERLINK("http://x.invalid/")\x1b]0;pwned\x07'  # a formula, and a window-title sequence
HOST = "h\x1b[2J\u009b\u202e<blink>x</blink>\n" + FORGED
# URL-escaped as the recorder escapes partition values (a folder spelled otherwise is not one of
# its own, and is left out unread: see docs/security.md)
HOST_FOLDER = "host=" + urllib.parse.quote("q\x1b]0;t\x07\u009b\u202e\n" + FORGED, safe="")
REC_FOLDER = "rec\x1b[2J\u202e\n" + FORGED
FILE_NAME = "f\udc9b" + HOSTILE + ".txt"  # and a byte that is not UTF-8

CHILD = r"""
import os, sys, time
fd = os.open("/proc/self/comm", os.O_WRONLY)
os.write(fd, os.fsencode(sys.argv[1]))
os.close(fd)
keep = os.open(os.fsencode(sys.argv[2]), os.O_RDWR | os.O_CREAT, 0o600)
print("ready", flush=True)
time.sleep(300)
"""

UNSAFE = ("Cc", "Cf", "Zl", "Zp", "Cs")


def run(*args, timeout=120):
    """`procsnap ARGS` in a child process, its output as bytes (a raw byte must show)."""
    return subprocess.run([sys.executable, "-m", "analyze.cli", *map(os.fsencode, map(str, args))],
                          capture_output=True, cwd=ROOT, timeout=timeout, env={**os.environ, "COLUMNS": "400"})


def unsafe(data: bytes) -> list[str]:
    """What must not reach a terminal: bytes that are not UTF-8, and characters (but the newline) of
    the unsafe categories; and lines that the forged text starts."""
    text = data.decode("utf-8", "surrogateescape")
    bad = [f"U+{ord(c):04X}" for c in text if c != "\n" and unicodedata.category(c) in UNSAFE]
    bad += [f"forged line {ln[:20]!r}" for ln in text.split("\n") if ln.startswith(FORGED)]
    return bad


def partial(p):
    """check(), for a command over the whole hostile recording: it holds one damaged file on
    purpose, so the answer says rows are missing and exits 3."""
    return check(p, code=3)


def json_rows(out: str) -> list:
    """The rows of a JSON answer; a partial one holds them under "rows", beside "partial"."""
    doc = json.loads(out)
    return doc["rows"] if isinstance(doc, dict) else doc


def csv_rows(out: str) -> list[dict]:
    """The rows of a CSV answer, without the "# " lines that say what a partial one misses."""
    return list(csv.DictReader(io.StringIO("".join(ln for ln in out.splitlines(True) if not ln.startswith("# ")))))


def check(p, code=0):
    assert p.returncode == code, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert not unsafe(p.stdout), unsafe(p.stdout)[:10]
    assert not unsafe(p.stderr), unsafe(p.stderr)[:10]
    return p.stdout.decode(), p.stderr.decode()


def _rewrite(rec: Path, table: str, pid: int, values: dict) -> int:
    """Give the rows of PID in every file of TABLE these column values, as a shared recording can."""
    n = 0
    for f in sorted((rec / table).rglob("*.parquet")):
        t = pq.ParquetFile(f).read()
        mine = pc.equal(t["pid"], pid)
        if not pc.any(mine).as_py():
            continue
        for col, v in values.items():
            i = t.schema.get_field_index(col)
            t = t.set_column(i, t.schema.field(i), pc.if_else(mine, pa.scalar(v, t.schema.field(i).type),
                                                                       t[col]))
        pq.write_table(t, f)
        n += 1
    return n


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    fleet = tmp / "fleet"
    rec = fleet / REC_FOLDER
    other = fleet / "other"
    files = tmp / "files"
    files.mkdir()
    snap = lambda out, host: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "analyze.cli", "snapshot", "-o", os.fsencode(str(out)), "--host", os.fsencode(host),
         "-q"], cwd=ROOT, check=True, timeout=120)
    snap(rec, HOST)  # before the process: diff sees it start
    snap(other, "plain")
    snap(other, "plain")
    child = subprocess.Popen([ARGV0, "-c", CHILD, os.fsdecode(COMM), os.fsencode(str(files / FILE_NAME)),
                              "--label=" + HOSTILE], executable=sys.executable, stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
    try:
        assert child.stdout.readline() == b"ready\n"
        snap(rec, HOST)
        snap(rec, HOST)
        # a shared recording's columns, rewritten for the hostile process
        assert _rewrite(rec, "processes", child.pid, {"user": "u" + HOSTILE, "tty": "t" + HOSTILE,
                                                      "cgroup": "/c" + HOSTILE, "exe": "/e" + HOSTILE}) >= 2
        assert _rewrite(rec, "open_files", child.pid, {"mode": "\x1b", "type": "T" + HOSTILE,
                                                       "device": "d" + HOSTILE}) >= 2
        # a host named by its folder (URL-escaped, as Hive partitions are)
        for d in other.glob("*/host=plain"):
            d.rename(d.with_name(HOST_FOLDER))
        # a damaged data file: its path holds the recording folder's name
        first = sorted((rec / "disks").rglob("*.parquet"))[0]
        first.write_bytes(b"PAR1")
        yield {"rec": rec, "other": other, "fleet": fleet, "pid": child.pid, "tmp": tmp, "damaged": first}
    finally:
        child.kill()
        child.wait()


def test_the_recording_is_hostile(hostile):
    """The recorder kept what the process and the host gave (else the other tests prove nothing)."""
    q = ("SELECT DISTINCT host, name, cmdline, user FROM processes WHERE pid = {pid}")
    out, _ = partial(run("query", "--rec", hostile["fleet"], "-f", "json", q.format(pid=hostile["pid"])))
    rows = json_rows(out)
    assert {r["host"] for r in rows} == {HOST}
    assert {r["name"] for r in rows} == {os.fsdecode(COMM)}
    assert all(r["cmdline"].startswith(ARGV0 + " -c") and r["user"] == "u" + HOSTILE for r in rows)
    out, _ = partial(run("query", "--rec", hostile["fleet"], "-f", "json",
                       "SELECT DISTINCT name FROM open_files WHERE pid = %d AND name LIKE '%%.txt'" % hostile["pid"]))
    [name] = [r["name"] for r in json_rows(out)]
    assert "\x1b[2J\x07\r\u009b31m\u202eevil" in name and name.endswith("\n" + FORGED + ".txt")
    out, _ = partial(run("query", "--rec", hostile["fleet"], "-f", "json", "SELECT DISTINCT host FROM snapshots"))
    assert "q\x1b]0;t\x07\u009b\u202e\n" + FORGED in {r["host"] for r in json_rows(out)}


def test_info(hostile):
    out, _ = partial(run("info", hostile["fleet"]))
    assert escape(HOST) in out and escape(REC_FOLDER) in out
    assert "damaged: 1 file(s)" in out and escape(str(hostile["damaged"])) in out
    partial(run("info", "-f", "json", hostile["fleet"]))


def test_top_ps_lsof_at_a_moment(hostile):
    fleet, pid = hostile["fleet"], str(hostile["pid"])
    for fmt in ("text", "csv", "json"):
        out, err = check(run("top", "--rec", fleet, "--at", "end", "-f", fmt, "-w", "0"))
        assert "skipped" in err and escape(REC_FOLDER) in err  # the damaged file, named escaped
    out, _ = check(run("top", "--rec", fleet, "--at", "end", "-w", "0"))
    assert escape(HOST) in out and escape(os.fsdecode(COMM)) in out
    for args in (["aux"], ["-ef"], ["-eo", "pid,user,ruser,tty,stat,cgroup,exe,comm,args"],
                 ["-eLf"], ["-e", "--format", "csv"], ["-e", "--format", "json"],
                 ["-eo", "pid,comm,args", "--format", "csv", "--no-headers"]):
        check(run("ps", "--rec", fleet, "--at", "end", *args))
    out, _ = check(run("ps", "--rec", fleet, "--at", "end", "-p", pid, "-o", "user,tty,stat,comm,args"))
    assert "u?[2J" in out and escape("t" + HOSTILE) in out  # a user name as ps shows it: ? for controls
    for fmt in ("table", "csv", "json"):
        check(run("lsof", "--rec", fleet, "--at", "end", "-f", fmt))
    out, _ = check(run("lsof", "--rec", fleet, "--at", "end", "-p", pid))
    assert escape("T" + HOSTILE) in out and escape("d" + HOSTILE) in out and FILE_NAME[:1] in out


def test_live_ps_lsof_top(hostile):
    pid = str(hostile["pid"])
    out, _ = check(run("ps", "-p", pid, "-o", "pid,comm,args"))
    assert "INJECTED" in out  # the process was listed
    check(run("ps", "-p", pid, "--format", "csv"))
    out, _ = check(run("lsof", "-p", pid))
    assert "INJECTED.txt" in out
    check(run("lsof", "-p", pid, "-f", "csv"))
    check(run("top", "-n", "500", "-w", "0"))


def test_diff_and_report(hostile):
    rec = hostile["rec"]
    out, _ = partial(run("diff", "--rec", rec))
    assert escape(HOST) in out and escape(ARGV0) in out  # the process started in between
    partial(run("diff", "--rec", rec, "-f", "json"))
    partial(run("diff", hostile["other"], rec))
    page = hostile["tmp"] / "report.html"
    for fmt in ("text", "json"):
        partial(run("report", hostile["fleet"], "-f", fmt, "--html", page))
    doc = page.read_text(encoding="utf-8")  # a newline is only a space in HTML: the characters matter
    assert not [c for c in doc if c != "\n" and unicodedata.category(c) in UNSAFE]
    assert html.escape(escape_lines(HOST)) in doc

    class Tags(html.parser.HTMLParser):
        seen: set = set()

        def handle_starttag(self, tag, attrs):
            self.seen.add(tag)

    t = Tags()
    t.feed(doc)
    assert "blink" not in t.seen  # the host name's <blink> is text, not markup
    assert html.escape("<blink>x</blink>") in doc


def test_query_formats(hostile):
    fleet, pid = hostile["fleet"], hostile["pid"]
    sql = (f"SELECT p.host, p.name, p.cmdline, p.user, p.tty, o.name AS file, o.mode, o.type, o.device, "
           f"-1 AS neg, '-1' AS negtext, -2.5 AS f, '+3' AS plus, '=1+1' AS formula, '@SUM(A1)' AS at, "
           f"'-cmd' AS dash, chr(9) || '=1' AS tab, chr(13) || '=1' AS cr, p.name_raw "
           f"FROM processes p JOIN open_files o USING (host, snapshot_id, pid) WHERE p.pid = {pid} "
           f"AND o.name LIKE '%.txt'")
    for fmt in ("table", "csv", "json"):
        out, _ = partial(run("query", "--rec", fleet, "-f", fmt, sql))
        if fmt == "json":
            rows = json_rows(out)
            assert rows and rows[0]["host"] == HOST and rows[0]["cmdline"].startswith(ARGV0)
    rows = csv_rows(partial(run("query", "--rec", fleet, "-f", "csv", sql))[0])
    assert rows
    for r in rows:
        for k, v in r.items():
            assert v[:1] not in ("=", "+", "-", "@", "\t", "\r") or re.fullmatch(r"[+-]?\d+(\.\d+)?", v), (k, v)
        assert (r["neg"], r["negtext"], r["f"], r["plus"]) == ("-1", "-1", "-2.5", "+3")  # numbers stay numbers
        assert (r["formula"], r["at"], r["dash"]) == ("'=1+1", "'@SUM(A1)", "'-cmd")
        assert (r["tab"], r["cr"]) == ("\\t=1", "\\r=1")
        assert r["cmdline"].startswith("'" + escape(ARGV0)) and r["host"] == escape(HOST)
    # piped without -f: CSV, the same
    assert run("query", "--rec", fleet, sql).stdout == run("query", "--rec", fleet, "-f", "csv", sql).stdout


def test_the_rule():
    """The escape form, documented in analyze/output.py and docs/security.md."""
    assert escape("a\x1b[2Jb\x07\r\n\t\x7f") == "a\\x1b[2Jb\\x07\\r\\n\\t\\x7f"
    assert escape("\u009b\u0085\u202e\u2066\u200b\ufeff\u00ad\u2028\U000e0041") == \
        "\\u009b\\u0085\\u202e\\u2066\\u200b\\ufeff\\u00ad\\u2028\\U000e0041"
    assert escape("bad\udc9b\udcff") == "bad\\x9b\\xff"  # bytes that are not UTF-8
    plain = "caf\u00e9 \u4e2d\u6587 \U0001f600 a\u0301 \u00a0 \\x1b"
    assert escape(plain) == plain  # every other character, and a backslash, as it is
    assert escape_lines("a\x1b\nb\u202e\n") == "a\\x1b\nb\\u202e\n"
    assert [csv_cell(v) for v in ("=1", "+x", "-x", "@x", "\t=1", "\r=1", "-1", "-1.5e3", "-", "+", "1-2")] == \
        ["'=1", "'+x", "'-x", "'@x", "\\t=1", "\\r=1", "-1", "-1.5e3", "-", "+", "1-2"]
    assert [csv_cell(v) for v in (-1, -2.5, float("-inf"))] == ["-1", "-2.5", "-inf"]


def test_guard_catches_a_forgotten_site(capsys):
    """A text written raw to stdout or stderr under the guard (a site that forgot escape()) is
    escaped all the same; only its newlines stay."""
    from analyze.output import terminal_guard
    with terminal_guard():
        print("x\x1b[2J\u009b\u202ey\nz")
        print("e\x07", file=sys.stderr)
        sys.stdout.writelines(["\r"])
        assert sys.stdout.isatty() is False
    out, err = capsys.readouterr()
    assert out == "x\\x1b[2J\\u009b\\u202ey\nz\n\\r" and err == "e\\x07\n"


def test_guard_with_stdout_closed(sample):
    """Started with stdout closed (Python's sys.stdout is then None), a command does not trip
    over the guard."""
    p = subprocess.run([sys.executable, "-m", "analyze.cli", "info", str(sample)], cwd=ROOT, timeout=60,
                       stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1))
    assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr[-500:]

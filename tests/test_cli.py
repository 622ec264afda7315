"""Every command's error paths: one line on stderr, exit 2 for usage, 1 otherwise."""

import json

import pytest


def one_line(p):
    err = p.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("args,code,needle", [
    (["query", "--rec", "/nonexistent/rec", "SELECT 1"], 2, "no such recording"),
    (["query", "--rec", "/etc", "SELECT 1"], 2, "not a procsnap recording"),
    (["query", "--rec", "/etc/passwd", "SELECT 1"], 2, "not a folder"),
    (["info", "/nonexistent/rec"], 2, "no such recording"),
    (["info"], 2, "Missing argument"),
    (["query", "--rec", "SAMPLE", "SELEC 1"], 1, "SQL error"),
    (["query", "--rec", "SAMPLE", "SELECT nope FROM processes"], 1, "SQL error"),
    (["query", "--rec", "SAMPLE", "--name", "no_such_query"], 2, "unknown query"),
    (["query", "--rec", "SAMPLE", "--name", "../etc/passwd"], 2, "unknown query"),
    (["query", "--rec", "SAMPLE", "--name", "top_cpu", "-p", "limit=many"], 2, "bad value"),
    (["query", "--rec", "SAMPLE", "--name", "top_cpu", "-p", "nolimit=3"], 2, "no parameter"),
    (["query", "--rec", "SAMPLE", "--name", "top_cpu", "-p", "limit"], 2, "KEY=VALUE"),
    (["query", "--rec", "SAMPLE", "--name", "top_cpu", "-p", "start=yesterday-ish"], 2, "bad time"),
    (["query", "--rec", "SAMPLE", "SELECT 1", "--name", "top_cpu"], 2, "either SQL or --name"),
    (["query", "--rec", "SAMPLE"], 2, "either SQL or --name"),
    (["query", "--rec", "SAMPLE", "SELECT 1", "-f", "xml"], 2, "bad format"),
    (["query", "--rec", "SAMPLE", "SELECT 1", "--bogus"], 2, "No such option"),
    (["record", "-o", "TMP", "-i", "0", "-n", "1"], 2, "bad interval"),
    (["record", "-o", "TMP", "-i", "fast", "-n", "1"], 2, "bad interval"),
    (["record", "-o", "TMP", "-i", "1", "-n", "0"], 2, "bad count"),
    (["record", "-o", "TMP", "-i", "1", "-d", "soon"], 2, "bad duration"),
    (["record", "-i", "1"], 2, "Missing option"),
    pytest.param(["record", "-o", "/etc", "-n", "1"], 1, "not a procsnap recording",
                 marks=pytest.mark.root),  # others are refused /etc as root's folder first
    (["record", "-o", "/etc/passwd", "-n", "1"], 1, "not a folder"),
    (["snapshot", "-o", "/etc/passwd"], 1, "not a folder"),
    (["schema", "nosuchtable"], 2, "unknown table"),
    (["nosuchcommand"], 2, "No such command"),
])
def test_error_paths(cli, sample, tmp_path, args, code, needle):
    args = [str(sample) if a == "SAMPLE" else str(tmp_path / "rec") if a == "TMP" else a for a in args]
    p = cli(*args)
    assert p.returncode == code, (p.stdout, p.stderr)
    assert needle in one_line(p)
    assert p.stdout == ""


def test_record_refuses_a_folder_another_recorder_holds(cli, tmp_path):
    from recorder.store.folder import Store
    with Store(tmp_path / "rec"):
        p = cli("snapshot", "-o", tmp_path / "rec")
    assert p.returncode == 1 and "another procsnap recorder" in one_line(p)


def test_analyzer_never_writes_into_a_recording(cli, sample):
    def listing():
        return sorted((str(f.relative_to(sample)), f.stat().st_size, f.stat().st_mtime_ns)
                      for f in sample.rglob("*"))
    before = listing()
    cli("info", sample, check=0)
    cli("query", "--rec", sample, "SELECT count(*) FROM process_rates", check=0)
    for q in ("top_cpu", "process_tree"):
        cli("query", "--rec", sample, "--name", q, check=0)
    assert listing() == before


def test_formats(cli, sample):
    sql = "SELECT pid, name, ts FROM processes WHERE name = 'ps-hog' ORDER BY ts LIMIT 2"
    js = json.loads(cli("query", "--rec", sample, sql, "-f", "json", check=0).stdout)
    assert [r["name"] for r in js] == ["ps-hog", "ps-hog"] and js[0]["ts"].endswith("+00:00")
    p = cli("query", "--rec", sample, "SELECT pid FROM processes WHERE pid < 0", "-f", "json", check=0)
    assert (p.returncode, json.loads(p.stdout)) == (0, [])  # an answer with no rows is still JSON
    csv_out = cli("query", "--rec", sample, sql, "-f", "csv", check=0).stdout.splitlines()
    assert csv_out[0] == "pid,name,ts" and len(csv_out) == 3
    # piped without -f: csv
    assert cli("query", "--rec", sample, sql, check=0).stdout.splitlines()[0] == "pid,name,ts"
    table = cli("query", "--rec", sample, sql, "-f", "table", check=0).stdout.splitlines()
    assert table[0].split() == ["pid", "name", "ts"] and len(table) == 3


def test_info(cli, sample):
    out = cli("info", sample, check=0).stdout
    assert "snapshots: 12" in out and "host sample-host" in out
    for t in ("snapshots", "system", "disks", "nics", "processes", "threads"):
        assert t in out
    assert "vanished mid-read" in out and "denied" in out
    js = json.loads(cli("info", sample, "-f", "json", check=0).stdout)
    assert js["snapshots"] == 12 and js["hosts"][0]["host"] == "sample-host"
    rows = {t["table"]: t for t in js["tables"]}
    assert rows["snapshots"]["rows"] == 12 and rows["system"]["rows"] == 12
    assert rows["processes"]["rows"] == js["completeness"]["processes_seen"]
    # the sample predates the newer tables: listed, with nothing in them
    newer = ("filesystems", "kernel_events", "process_events", "triggers", "thread_samples")
    for t in newer:
        assert rows[t] == {"table": t, "rows": 0, "files": 0, "bytes": 0}
    assert all(t["bytes"] > 0 and t["files"] == 12 for t in js["tables"] if t["table"] not in newer)


@pytest.mark.live
def test_live_query_without_rec(cli):
    import os
    comm = open("/proc/self/comm").read().strip()
    p = cli("query", "-f", "json", f"SELECT pid, name FROM processes WHERE pid = {os.getpid()}", check=0)
    assert json.loads(p.stdout) == [{"pid": os.getpid(), "name": comm}]
    p = cli("query", "-f", "json", "SELECT count(*) AS n FROM system", check=0)
    assert json.loads(p.stdout) == [{"n": 1}]


def test_every_command_is_documented():
    from analyze.cli import app
    from tests.conftest import ROOT
    readme = (ROOT / "README.md").read_text()
    import typer
    cmd = typer.main.get_command(app)
    for name, sub in cmd.commands.items():
        assert f"procsnap {name}" in readme, name
        assert "Example" in (sub.help or ""), name


@pytest.mark.live
@pytest.mark.timing
def test_record_shows_progress_on_a_terminal_and_is_silent_otherwise(tmp_path):
    import os
    import pty
    import subprocess
    import sys
    from tests.conftest import ROOT
    cmd = [sys.executable, "-m", "analyze.cli", "record", "-i", "0.2", "-n", "2"]
    # piped: silent
    p = subprocess.run(cmd + ["-o", str(tmp_path / "a")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""
    # on a terminal: a progress line and a summary on stderr
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd + ["-o", str(tmp_path / "b")], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert p.wait(timeout=60) == 0
    text = out.decode()
    assert "2 snapshots" in text and "wrote 2 snapshots" in text
    # -q on a terminal: silent
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd + ["-q", "-o", str(tmp_path / "c")], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT)
    os.close(slave)
    assert p.wait(timeout=60) == 0
    os.set_blocking(master, False)
    try:
        assert os.read(master, 4096) == b""
    except (BlockingIOError, OSError):
        pass

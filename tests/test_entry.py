"""The installed `procsnap` command: live lsof and ps start without the heavy libraries, read only
what their options need, and say exactly what the full command line says."""

import os
import subprocess
import sys

import pytest

from analyze.commands import lsof as L
from analyze.commands import ps as P
from tests.conftest import ROOT

PROBE = ("import sys; from analyze.entry import main; code = main(sys.argv[1:]); "
         "print(sorted(m for m in ('typer', 'duckdb', 'pyarrow', 'click', 'rich') if m in sys.modules), "
         "code, file=sys.stderr)")


def probe(*args):
    p = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    return p.stdout, p.stderr.strip().splitlines()[-1]


@pytest.mark.live
def test_live_lsof_and_ps_import_no_framework_nor_engine():
    me = os.getpid()
    out, loaded = probe("lsof", "-p", me)
    assert f" {me} " in out.splitlines()[1] and loaded == "[] 0"
    out, loaded = probe("ps", "-p", me, "-o", "pid,comm")
    assert out.split()[2] == str(me) and loaded == "[] 0"
    out, loaded = probe("lsof", "-i", "-a", "-p", me)
    assert loaded == "[] 1"  # nothing listed: lsof's exit status


def test_help_and_errors_read_as_the_full_command():
    full = subprocess.run([sys.executable, "-m", "analyze.cli", "lsof", "--help"], capture_output=True,
                          text=True, cwd=ROOT)
    out, _ = probe("lsof", "-h")
    assert out.strip() == full.stdout.strip() and "--rec DIR" in out
    p = subprocess.run([sys.executable, "-c", PROBE, "ps", "--at", "-1h"], capture_output=True, text=True, cwd=ROOT)
    assert p.stderr.splitlines()[0] == "procsnap: --at goes with --rec (without --rec procsnap ps reads the live host, now)"
    assert p.stderr.splitlines()[-1].endswith(" 2") and "Traceback" not in p.stderr


@pytest.mark.live
def test_what_a_live_listing_reads():
    assert L.live_plan(L.parse_args(["-p", "12,13"])) == ({12, 13}, False)
    assert L.live_plan(L.parse_args(["-p", "12", "-u", "root"])) == (None, False)   # ORed: everything
    assert L.live_plan(L.parse_args(["-a", "-p", "12", "-u", "root"])) == ({12}, False)
    assert L.live_plan(L.parse_args(["-i", ":80"])) == (None, True)
    assert L.live_plan(L.parse_args(["-i", ":80", "-c", "nginx"])) == (None, False)
    assert L.live_plan(L.parse_args(["-a", "-i", ":80", "-p", "7"])) == ({7}, True)
    assert L.live_plan(L.parse_args([])) == (None, False)
    assert P.live_pids(P.parse_args(["-p", "5,6", "-o", "pid"])) == {5, 6}
    assert P.live_pids(P.parse_args(["-p", "5", "-e"])) is None
    assert P.live_pids(P.parse_args(["-p", "5", "-u", "root"])) is None
    assert P.live_pids(P.parse_args(["aux"])) is None


@pytest.mark.live
def test_sockets_only_listing_is_the_full_listing_of_sockets():
    """lsof -i read through the sockets-only path lists what the full read lists."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        port = s.getsockname()[1]
        fast = [r for r in L.live_rows(L.parse_args(["-i", f":{port}"])) if r.inet is not None]
        full = [r for r in L.live_rows(L.parse_args(["-i", f":{port}", "-u", "root"])) if r.inet is not None]
        key = lambda r: (r.pid, r.fd, r.type, r.device, r.node if hasattr(r, "node") else r.inode, r.name)  # noqa: E731
        mine = sorted(key(r) for r in fast if r.pid == os.getpid())
        assert mine and mine == sorted(key(r) for r in full if r.pid == os.getpid())
    finally:
        s.close()


@pytest.mark.live
def test_snapshot_starts_without_the_framework(tmp_path):
    """`procsnap snapshot` (cron, scripts) parses its few options itself: no typer, click or rich;
    what it writes is a recording every command reads; bad options get one line and exit 2."""
    rec = tmp_path / "rec"
    out, loaded = probe("snapshot", "-qo", rec, "--host", "h1")
    # pyarrow writes the files; neither duckdb nor the command-line framework is loaded
    assert loaded == "['pyarrow'] 0"
    assert (rec / "processes" / "host=h1").is_dir()
    out, loaded = probe("snapshot", f"--output={rec}", "--quiet", "--no-redact")
    assert loaded.endswith(" 0") and not any(m in loaded for m in ("typer", "click", "rich"))
    assert len(list((rec / "snapshots").rglob("*.parquet"))) == 2
    for args, msg in ((["snapshot"], "missing option -o/--output"), (["snapshot", "-o"], "option -o requires an argument"),
                      (["snapshot", "-o", rec, "x"], "unexpected argument 'x'"),
                      (["snapshot", "--bogus"], "no such option: --bogus"),
                      (["snapshot", "-q=1", "-o", rec], "no such option: -="),
                      (["snapshot", "-o", rec, "--tables", "procs"], "not a collected table: procs"),
                      (["snapshot", "-o", rec, "--tables", ","], "--tables needs at least one table name")):
        p = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
        lines = p.stderr.splitlines()
        assert msg in lines[0] and lines[-1].endswith(" 2") and "Traceback" not in p.stderr, (args, p.stderr)
    full = subprocess.run([sys.executable, "-m", "analyze.cli", "snapshot", "--help"], capture_output=True,
                          text=True, cwd=ROOT)
    out, _ = probe("snapshot", "--help")
    assert out.strip() == full.stdout.strip() and "--no-redact" in out and "--tables" in out


@pytest.mark.live
def test_snapshot_of_some_tables(tmp_path):
    """--tables writes those tables (and what they need: threads and descriptors come from the
    process pass, sockets from descriptors), through the fast path and the full CLI alike."""
    for i, (args, want) in enumerate((
            (["--tables", "processes,threads, system"], {"processes", "threads", "system", "snapshots"}),
            (["--tables=sockets"], {"processes", "open_files", "sockets", "snapshots"}),
            (["--tables", "nics"], {"nics", "snapshots"}))):
        rec = tmp_path / f"rec{i}"
        probe("snapshot", "-qo", rec, *args)
        assert {p.name for p in rec.iterdir() if p.is_dir()} == want, args
    rec = tmp_path / "full"
    subprocess.run([sys.executable, "-m", "analyze.cli", "snapshot", "-qo", str(rec), "--tables", "disks"],
                   check=True, cwd=ROOT)
    assert {p.name for p in rec.iterdir() if p.is_dir()} == {"disks", "snapshots"}


def test_recorded_lsof_and_ps_load_the_engine_without_its_python_package(sample):
    """--rec reads through DuckDB's engine module: the `duckdb` package around it costs several
    times as long to import. The answers are those of the full command."""
    import ast
    import importlib.util
    for args in (["lsof", "--rec", sample, "-i"], ["ps", "--rec", sample, "-e"]):
        out, loaded = probe(*args)
        mods, code = loaded.rsplit(" ", 1)
        full = subprocess.run([sys.executable, "-m", "analyze.cli", *map(str, args)], capture_output=True,
                              text=True, cwd=ROOT)
        assert out == full.stdout and int(code) == full.returncode == 0
        mods = ast.literal_eval(mods)
        assert not {"typer", "click", "rich"} & set(mods)
        if importlib.util.find_spec("_duckdb") is not None:
            assert "duckdb" not in mods


@pytest.mark.live
def test_framework_commands_do_not_import_pydantic(tmp_path):
    """typer 0.29 coerces every option through pydantic (+11 MB in a recorder that runs for days,
    +0.07 s a command); pyproject keeps typer below it. A command that goes through typer must
    not load pydantic."""
    code = ("import sys; from analyze.entry import main; main(sys.argv[1:]); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'pydantic'}), file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code, "record", "-o", str(tmp_path / "r"), "-n", "1", "-q",
                        "--files-interval", "1h"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "['typer']"

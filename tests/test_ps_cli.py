"""procsnap ps: ps's options, selection, columns and layout, on a recording we build and live
against the real ps (procps-ng) at the same moment.

The recording holds two snapshots of host h1 at 03:00:00 and 03:00:10 UTC (the
second gains a process started in between, and every CPU counter moves by a
known amount) and one snapshot of host h2. Times print in local time, as ps
prints them; the tests run with TZ=UTC.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from analyze.commands import ps as P
from analyze.commands.matching import comm_matches
from analyze.errors import ProcsnapError, UsageError
from analyze.output import escape_lines
from recorder.collect.collector import Snapshot
from recorder.collect.tables import to_table as _to_table
from recorder.store.folder import Store

from tests.conftest import run_cli

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
KIB = 1024
BOOT = T0 - dt.timedelta(days=3)
MEM_TOTAL = 8_000_000 * KIB
ODD_RAW = b"odd\nna\xffme"


@pytest.fixture(autouse=True)
def utc_c_locale(monkeypatch):
    """ps's times are local and its escapes depend on the locale: UTC and C, for both tools."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("LC_ALL", "C")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def proc(pid, name, ago, cmdline=None, **kw):
    """A process row that started AGO (a timedelta) before T0."""
    row = {"boot_id": "b1", "pid": pid, "ppid": 1, "pgid": pid, "sid": 1, "start_time": T0 - ago, "name": name,
           "cmdline": name if cmdline is None else cmdline, "state": "S", "uid": 0, "user": "root", "ruid": 0,
           "gid": 0, "nice": 0, "priority": 20, "processor": 0, "num_threads": 1, "utime": 0.0, "stime": 0.0,
           "rss": 0, "vms": 0, "minflt": 0, "majflt": 0, "cgroup": "/", "tty": None}
    row.update(kw)
    return row


def thread(pid, tid, name, ago, utime, **kw):
    return {"boot_id": "b1", "pid": pid, "tid": tid, "start_time": T0 - ago, "name": name, "state": "S",
            "nice": 0, "priority": 20, "processor": 1, "utime": utime, "stime": 0.0, "minflt": tid, "majflt": 0,
            **kw}


H, D = dt.timedelta(hours=1), dt.timedelta(days=1)


def world(i):
    """Processes and threads of h1 in snapshot i (0 at 03:00:00, 1 at 03:00:10)."""
    procs = [
        proc(1, "systemd", D + 2 * H, "/sbin/init splash", ppid=0, pgid=1, sid=1, utime=100.0, stime=20.0,
             rss=12_000 * KIB, vms=170_000 * KIB, cgroup="0::/init.scope", minflt=5000, majflt=40),
        proc(2, "kthreadd", D + 2 * H, "", ppid=0, pgid=0, sid=0),
        proc(3, "kworker/0:0H-events_highpri", D + 2 * H, "", ppid=2, pgid=0, sid=0, state="I", nice=-20,
             priority=0),
        proc(100, "web", 2 * D + 3 * H, "/usr/sbin/web --workers 3", uid=33, user="www-data", ruid=1000,
             gid=33, pgid=100, sid=1, nice=5, priority=25, num_threads=4, rss=500_000 * KIB,
             vms=2_004_060 * KIB, utime=90_000.0 + 5.0 * i, stime=61.0, processor=1, tty="pts/0"),
        proc(200, "defunct-kid", H, "", ppid=100, state="Z"),
        proc(300, "rt-audio", H, "rt-audio -r", priority=-51, tty="pts/0", pgid=300, sid=300),
        proc(400, "odd\nna\\xffme", H, "./odd\nna\\xffme --x", name_raw=ODD_RAW,
             cmdline_raw=b"./" + ODD_RAW + b"\x00--x"),
        proc(500, "chronyd", dt.timedelta(days=400), "/usr/sbin/chronyd", uid=997, user="systemd-timesync",
             ruid=997, state="R", utime=1.0 + 0.5 * i),
    ]
    threads = [thread(100, 100, "web", 2 * D + 3 * H, 80_000.0 + 3.0 * i),
               thread(100, 101, "web-io", 2 * D + 3 * H, 9_000.0 + 2.0 * i),
               thread(100, 102, "web-gc", 2 * D + 3 * H, 1000.0),
               thread(100, 103, "web-idle", H, 0.0)]
    threads += [thread(p["pid"], p["pid"], p["name"], T0 - p["start_time"], p["utime"])
                for p in procs if p["pid"] != 100]
    if i == 1:
        # started 5 s before the second snapshot, 2 s of CPU since
        procs.append(proc(600, "late", dt.timedelta(seconds=-5), "late --job", utime=2.0, tty="pts/0",
                          pgid=600, sid=600))
        threads.append(thread(600, 600, "late", dt.timedelta(seconds=-5), 2.0))
    return procs, threads


def snapshot(i, procs, threads=None, host="h1", uptime=None):
    ts = T0 + dt.timedelta(seconds=10 * i)
    sid = int(ts.timestamp() * 1_000_000)
    common = {"snapshot_id": sid, "ts": ts}
    s = Snapshot(sid, ts, host)
    s.tables["processes"] = _to_table("processes", procs, common)
    if threads is not None:
        s.tables["threads"] = _to_table("threads", threads, common)
    up = (ts - BOOT).total_seconds() if uptime is None else uptime
    s.tables["system"] = _to_table("system", [{"boot_time": BOOT, "uptime_s": up, "ncpus": 2, "ctxt": 0,
                                               "intr": 0, "forks": 0, "procs_running": 1, "procs_blocked": 0,
                                               "load1": 0.0, "load5": 0.0, "load15": 0.0, "tasks_total": 1,
                                               "last_pid": 1, "mem_total": MEM_TOTAL, "mem_free": 0,
                                               "swap_total": 0, "swap_free": 0}], common)
    s.tables["snapshots"] = _to_table("snapshots", [{"kernel": "k", "procsnap_version": "t", "duration_ms": 1.0,
                                                     "cpu_ms": 1.0, "recorder_pid": 1, "skipped": 0}], common)
    return s


@pytest.fixture(scope="module")
def recdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("psrec") / "rec"
    with Store(d) as st:
        st.write(snapshot(0, *world(0)))
        st.write(snapshot(1, *world(1)))
        st.write(snapshot(0, [proc(7, "redis-server", H, "redis-server *:6379", uid=999, user="redis")],
                          [], host="h2"))
    return d


@pytest.fixture(scope="module", autouse=True)
def open_once():
    """Each recording is opened once for the module (a Recording is read-only): keeps it fast."""
    from analyze.data.db import Recording
    opened, real, real_at = {}, Recording.open.__func__, Recording.open_at.__func__

    def cached(cls, paths, hosts=None, **kw):
        key = (tuple(paths), tuple(hosts or ()), tuple(sorted(kw.items())))
        if key not in opened:
            opened[key] = real(cls, paths, hosts, **kw)
        return opened[key]

    def cached_at(cls, paths, hosts, at, need=None, whole=(), before=(), reads=None, derived=False):
        key = ("at", tuple(paths), tuple(hosts or ()), at, need, whole, before, reads, derived)
        if key not in opened:
            opened[key] = real_at(cls, paths, hosts, at, need, whole, before, reads, derived)
        return opened[key]
    Recording.open = classmethod(cached)
    Recording.open_at = classmethod(cached_at)
    yield
    Recording.open = classmethod(real)
    Recording.open_at = classmethod(real_at)


@pytest.fixture(scope="module")
def h1(recdir):
    return ["--rec", str(recdir), "--host", "h1"]


def ps(*args):
    """(exit status, stdout, stderr) of `procsnap ps ARGS`, in-process."""
    out, err = io.StringIO(), io.StringIO()
    code = P.run([str(a) for a in args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def lines(*args):
    code, out, _ = ps(*args)
    assert code == 0, out
    return out.splitlines()


# --------------------------------------------------------------------------
# Option parsing


@pytest.mark.parametrize("argv, check", [
    (["-e"], lambda o: o.all),
    (["-A"], lambda o: o.all),
    (["aux"], lambda o: o.simple == {"a", "x"} and o.format_flags == {"u"} and o.prefer_bsd),
    (["-aux"], lambda o: o.simple == {"a", "x"} and o.format_flags == {"u"}),
    (["-p", "1,2", "p", "3", "--pid=4", "-p5", "-p", "6 7", "--quick-pid", "8"],
     lambda o: o.pids == [1, 2, 3, 4, 5, 6, 7, 8]),
    (["1234"], lambda o: o.pids == [1234] and o.prefer_bsd),
    (["-u", "root,33", "U", "alice", "--user", "bob"], lambda o: o.euids == ["root", "33", "alice", "bob"]),
    (["-U", "1000", "--User=2000"], lambda o: o.ruids == ["1000", "2000"]),
    (["-C", "sshd,nginx"], lambda o: o.comms == ["sshd", "nginx"]),
    (["-s", "1", "--ppid", "2,3", "-t", "/dev/pts/1,-"],
     lambda o: (o.sids, o.ppids, o.ttys) == ([1], [2, 3], ["pts/1", None])),
    (["-eo", "pid,comm=NAME,user:12", "-o", "rss"],
     lambda o: [(s.name, s.header, s.width) for s in o.user_fmt] == [("pid", None, None), ("NAME", "NAME", None),
                                                                    ("user", None, 12), ("rss", None, None)]),
    (["-o", "pid=", "o", "args"],
     lambda o: [(s.header, s.field.spec) for s in o.user_fmt] == [("", "pid"), (None, "args")]),
    (["--format", "pid comm,"], lambda o: [s.name for s in o.user_fmt] == ["pid", "comm"] and o.fmt == "table"),
    (["--format=json"], lambda o: o.fmt == "json" and not o.user_fmt),
    (["--sort", "-rss,+pid"], lambda o: [(f.spec, d) for f, d in o.sort] == [("rss", True), ("pid", False)]),
    (["ax", "k", "-%cpu"], lambda o: [(f.spec, d) for f, d in o.sort] == [("%cpu", True)] and o.all is False),
    (["-eLf"], lambda o: o.all and o.threads == {"L"} and o.format_flags == {"f"}),
    (["-F", "-j", "-T"], lambda o: o.modifiers == {"F", "j"} and o.format_flags == {"f"} and o.threads == {"T"}),
    (["--no-headers"], lambda o: o.no_headers),
    (["axh", "c", "n", "r"], lambda o: o.no_headers and o.bsd_c and o.numeric_users and o.running),
    (["-N", "--deselect", "-d", "-a"], lambda o: o.negate and o.simple == {"-d", "-a"}),
    (["--rec", "X", "--at", "03:00", "--host=h", "--cols", "200", "-w"],
     lambda o: (o.recs, o.at, o.hosts) == (["X"], "03:00", ["h"])),
])
def test_option_parsing(argv, check):
    assert check(P.parse_args(argv))


@pytest.mark.parametrize("argv, needle", [
    (["-o", "wchan"], "wchan: the kernel function a process sleeps in is not recorded"),
    (["-o", "pid,tpgid"], "tpgid: the terminal's foreground process group is not recorded"),
    (["-o", "bogus"], 'unknown user-defined format specifier "bogus"'),
    (["-o", "pid,,comm"], "improper format list"),
    (["-o", ",pid"], "improper format list"),
    (["-o", "pid:0"], "column widths must be unsigned decimal numbers"),
    (["-o", "pid:x"], "column widths must be unsigned decimal numbers"),
    (["--sort", "nope"], "unknown sort specifier"),
    (["--sort", "pid", "k", "rss"], "multiple sort options"),
    (["-l"], "-l needs WCHAN and F"),
    (["-Q"], "unknown option -Q"),
    (["--bogus"], "unknown option --bogus"),
    (["-f", "csv"], "use --format csv"),
    (["-p"], "-p needs a value"),
    (["-p", "12x"], "process ID list syntax error"),
    (["-O", "rss", "-o", "pid"], "-o can not follow -O"),
    (["e"], "environment"),
])
def test_option_errors(argv, needle):
    with pytest.raises(UsageError) as e:
        P.parse_args(argv)
    assert needle in str(e.value)


@pytest.mark.parametrize("argv, needle", [
    (["-o", "pid", "-f"], "conflicting format options"),
    (["-f", "u"], "conflicting format options"),
    (["-j", "-o", "pid"], "can not use output modifiers"),
    (["a", "-a"], "process selection options conflict"),
])
def test_option_conflicts_are_usage_errors(h1, argv, needle):
    with pytest.raises(UsageError) as e:
        ps(*argv, *h1)
    assert needle in str(e.value)


def test_default_formats_have_ps_columns():
    def heads(*argv):
        return [c.head for c in P.columns(P.parse_args(list(argv)), 5)]
    assert heads() == ["PID", "TTY", "TIME", "CMD"]
    assert heads("-f") == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert heads("-F") == ["UID", "PID", "PPID", "C", "SZ", "RSS", "PSR", "STIME", "TTY", "TIME", "CMD"]
    assert heads("-eLf") == ["UID", "PID", "PPID", "LWP", "C", "NLWP", "STIME", "TTY", "TIME", "CMD"]
    assert heads("-L") == ["PID", "LWP", "TTY", "TIME", "CMD"]
    assert heads("-T") == ["PID", "SPID", "TTY", "TIME", "CMD"]
    assert heads("-j") == ["PID", "PGID", "SID", "TTY", "TIME", "CMD"]
    assert heads("ax") == ["PID", "TTY", "STAT", "TIME", "COMMAND"]
    assert heads("aux") == ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"]
    assert heads("-L", "aux")[:5] == ["USER", "PID", "LWP", "%CPU", "NLWP"]
    assert heads("-O", "rss") == ["PID", "RSS", "S", "TTY", "TIME", "COMMAND"]
    # pid columns are as wide as pid_max has digits; a header override widens a column, :W sets it
    cols = P.columns(P.parse_args(["-o", "pid,ppid=PARENT-PID,comm:4"]), 7)
    assert [(c.head, c.width) for c in cols] == [("PID", 7), ("PARENT-PID", 10), ("COMMAND", 4)]


# --------------------------------------------------------------------------
# Values and layout


def test_time_formats():
    assert P.fmt_time(0) == "00:00:00"
    assert P.fmt_time(3661.99) == "01:01:01"
    assert P.fmt_time(90_061.0) == "1-01:01:01"
    assert P.fmt_time(0.7 + 0.3) == "00:00:01"            # tick sums are whole seconds
    assert P.fmt_etime(59.9) == "00:59"
    assert P.fmt_etime(3600) == "01:00:00"
    assert P.fmt_etime(2 * 86400 + 3 * 3600 + 5) == "2-03:00:05"
    assert P.fmt_bsdtime(125) == "  2:05" and P.fmt_bsdtime(60_000) == "1000:00"
    assert P.fmt_pcpu(99.99) == "99.9" and P.fmt_pcpu(150.4) == "150" and P.fmt_pcpu(0.05) == "0.0"
    assert P.fmt_pmem(1764 * KIB, 24_684_092 * KIB) == " 0.0"
    assert P.fmt_pmem(500_000 * KIB, MEM_TOTAL) == " 6.2"   # 6.25 cut, not rounded
    now = T0.timestamp()
    assert P.fmt_stime(int((T0 - H).timestamp()), now) == "02:00"
    assert P.fmt_stime(int((T0 - D).timestamp()), now) == "Nov27"
    assert P.fmt_stime(int((T0 - 400 * D).timestamp()), now) == "2025"
    assert P.fmt_start(int((T0 - H).timestamp()), now) == "02:00:00"
    assert P.fmt_start(int((T0 - 23 * D).timestamp()), now) == "  Nov 05"
    assert P.fmt_bsdstart(int((T0 - H).timestamp()), now) == " 02:00"
    assert P.fmt_bsdstart(int((T0 - 2 * D).timestamp()), now) == "Nov 26"
    assert P.fmt_lstart(int((T0 - 23 * D).timestamp())) == "Thu Nov  5 03:00:00 2026"


def test_layout_matches_procps_including_overflow():
    """A real `ps aux` line whose VSZ and RSS overflow their columns: the TTY padding absorbs it."""
    start = dt.datetime(2026, 11, 28, 2, 16, 3, tzinfo=UTC)
    p = P.Proc("h", 2176, 2176, 1, 2176, 1, start, "pytest", None, "/tmp/v/bin/python3 /tmp/v/bin/pytest -q",
               None, None, "S", 0, "root", 0, 0, 0, 20, 0, 3, 1.2, 129_368 * KIB, 2_004_060 * KIB, 0, 0, None,
               None, 1.85, start.timestamp() + 1.85, 64.7, 24_684_092 * KIB)
    ctx = P.Ctx(utf8=False)
    cols = P.columns(P.parse_args(["aux"]), 5)
    out = io.StringIO()
    P.text_table([p], cols, P.parse_args(["aux"]), ctx, out)
    assert out.getvalue().splitlines() == [
        "USER       PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND",
        "root      2176 64.7  0.5 2004060 129368 ?      Sl   02:16   0:01 /tmp/v/bin/python3 /tmp/v/bin/pytest -q"]


def test_listing_of_a_recording(h1):
    code, out, err = ps("-e", "-o", "pid,ppid,user,stat,ni,pri,etime,time,start,stime,tty,args", *h1)
    assert code == 0 and err == "procsnap: snapshot of h1 at 2026-11-28 03:00:10 UTC\n"
    assert out.splitlines() == [
        "  PID  PPID USER     STAT  NI PRI     ELAPSED     TIME  STARTED STIME TT       COMMAND",
        "    1     0 root     Ss     0  19  1-02:00:10 00:02:00   Nov 27 Nov27 ?        /sbin/init splash",
        "    2     0 root     S      0  19  1-02:00:10 00:00:00   Nov 27 Nov27 ?        [kthreadd]",
        "    3     2 root     I<   -20  39  1-02:00:10 00:00:00   Nov 27 Nov27 ?        [kworker/0:0H-events_highpri]",
        "  100     1 www-data SNl    5  14  2-03:00:10 1-01:01:06   Nov 26 Nov26 pts/0  /usr/sbin/web --workers 3",
        "  200   100 root     Z      0  19    01:00:10 00:00:00 02:00:00 02:00 ?        [defunct-kid] <defunct>",
        "  300     1 root     Ss     -  90    01:00:10 00:00:00 02:00:00 02:00 pts/0    rt-audio -r",
        "  400     1 root     S      0  19    01:00:10 00:00:00 02:00:00 02:00 ?        ./odd na?me --x",
        "  500     1 systemd+ R      0  19 400-00:00:10 00:00:01   Oct 24 2025 ?        /usr/sbin/chronyd",
        "  600     1 root     Ss     0  19       00:05 00:00:02 03:00:05 03:00 pts/0    late --job",
    ]


def test_names_cut_to_their_column_unless_last(h1):
    assert lines("-p", "3,500", "-o", "comm,user,pid", *h1) == [
        "COMMAND         USER       PID",
        "kworker/0:0H-ev root         3",
        "chronyd         systemd+   500"]
    assert lines("-p", "3,500", "-o", "pid,user,comm", *h1)[1:] == [
        "    3 root     kworker/0:0H-events_highpri", "  500 systemd+ chronyd"]
    assert lines("-p", "100", "-o", "fname,ruser,ruid,uid,euser,group,gid", *h1)[1:] == [
        "web      1000      1000    33 www-data 33          33"]
    # BSD n: numeric users, right-aligned
    assert lines("n", "-p", "100", "-o", "user,pid", *h1) == ["    USER   PID", "      33   100"]


def test_headers_overridden_or_left_out(h1):
    assert lines("-p", "1", "-o", "pid=PROCESS,comm=", *h1) == ["PROCESS ", "      1 systemd"]
    assert lines("-p", "1", "-o", "pid=,comm=", *h1) == ["    1 systemd"]            # all empty: no header
    assert lines("-p", "1", "--no-headers", *h1) == ["    1 ?        00:02:00 systemd"]
    assert lines("-p", "1", "h", *h1) == ["    1 ?        Ss     2:00 /sbin/init splash"]


def test_memory_and_cpu_columns(h1):
    assert lines("-p", "1,100", "-o", "pid,%cpu,%mem,rss,vsz,sz,nlwp,psr,majflt,minflt,cgroup", *h1) == [
        "  PID %CPU %MEM   RSS    VSZ    SZ NLWP PSR MAJFLT MINFLT CGROUP",
        "    1  0.0  0.1 12000 170000 42500    1   0     40   5000 0::/init.scope",
        "  100 50.0  6.2 500000 2004060 501015 4   1      0      0 -",
    ]


def test_at_picks_the_snapshot_and_cpu_is_the_interval_before_it(h1):
    # at 03:00:05 the first snapshot (03:00:00) is the latest: no interval before it, so ps's own
    # %cpu (CPU time over lifetime); web has used 90061 s in 2 days 3 h
    code, out, err = ps("-p", "100,500,600", "-o", "pid,%cpu,c,time", "--at", "03:00:05", *h1)
    assert err == "procsnap: snapshot of h1 at 2026-11-28 03:00:00 UTC\n"
    assert code == 0 and out.splitlines() == ["  PID %CPU  C     TIME",
                                              "  100 49.0 49 1-01:01:01",
                                              "  500  0.0  0 00:00:01"]
    # at 03:00:10: 5 s of CPU in 10 s for web, 0.5 s for chronyd; late started in between: ps's own
    assert lines("-p", "100,500,600", "-o", "pid,%cpu,c", "--at", "03:00:10", *h1) == [
        "  PID %CPU  C", "  100 50.0 50", "  500  5.0  5", "  600 40.0 40"]


def test_threads_with_their_own_cpu_and_the_main_thread_as_the_process(h1):
    assert lines("-L", "-p", "100", "-o", "pid,lwp,nlwp,%cpu,time,minflt,comm", *h1) == [
        "  PID   LWP NLWP %CPU     TIME MINFLT COMMAND",
        "  100   100    4 50.0 1-01:01:06    0 web",         # ps shows the process's counters here
        "  100   101    4 20.0 02:30:02    101 web-io",
        "  100   102    4  0.0 00:16:40    102 web-gc",
        "  100   103    4  0.0 00:00:00    103 web-idle"]
    assert lines("-Lf", "-p", "100", *h1)[:2] == [
        "UID        PID  PPID   LWP  C NLWP STIME TTY          TIME CMD",
        "www-data   100     1   100 50    4 Nov26 pts/0    1-01:01:06 /usr/sbin/web --workers 3"]


def test_selection_in_a_recording(h1):
    def pids(*args):
        code, out, _ = ps(*args, "-o", "pid=", *h1)
        return [int(x) for x in out.split()]
    everyone = [1, 2, 3, 100, 200, 300, 400, 500, 600]
    assert pids() == everyone                          # plain ps over a recording: every process
    assert pids("x") == everyone
    assert pids("-e") == everyone
    assert pids("a") == [100, 300, 600]                # with a terminal
    assert pids("-a") == [100]                         # with a terminal, not a session leader
    assert pids("-d") == [2, 3, 100, 200, 400, 500]    # not session leaders
    assert pids("-p", "500,1") == [1, 500]
    assert pids("-u", "www-data") == pids("-u", "33") == pids("U", "33") == [100]
    assert pids("-U", "1000") == [100]                 # real user
    assert pids("-C", "chronyd,web") == [100, 500]
    assert pids("-C", "kworker/0:0H-events_highpri") == [3]
    assert pids("-C", "chrony") == pids("-C", "kworker") == []      # the whole name, not a prefix
    # ...except that a name the kernel cut at 15 bytes matches a longer one
    assert comm_matches("ps-long-named-w", "ps-long-named-worker")
    assert not comm_matches("chronyd", "chronyd-extra") and not comm_matches("web", "we")
    assert pids("-t", "pts/0") == [100, 300, 600]
    assert pids("--ppid", "100") == [200]
    assert pids("-s", "1") == [1, 100, 200, 400, 500]
    assert pids("-N", "-u", "root") == [100, 500]
    assert pids("r") == [500]                          # running only
    assert pids("-p", "1", "-u", "33") == [1, 100]     # lists are ORed
    code, out, _ = ps("-p", "999999", *h1)
    assert code == 1 and out == "  PID TTY          TIME CMD\n"   # as ps: the header, exit 1


def test_sorting(h1):
    def pids(*args):
        return [int(x) for x in ps(*args, "-e", "-o", "pid=", *h1)[1].split()]
    assert pids("--sort", "-rss") == [100, 1, 2, 3, 200, 300, 400, 500, 600]
    assert pids("--sort", "start_time") == [500, 100, 1, 2, 3, 200, 300, 400, 600]
    assert pids("--sort", "-%cpu,pid") == [100, 600, 500, 1, 2, 3, 200, 300, 400]
    assert pids("k", "-pid") == [600, 500, 400, 300, 200, 100, 3, 2, 1]
    assert pids("--sort", "tty,-pid")[:3] == [500, 400, 200]
    assert pids("--sort", "user,comm") == [200, 2, 3, 600, 400, 300, 1, 500, 100]


def test_csv_and_json(h1):
    code, out, _ = ps("-p", "100,200", "-o", "pid,%cpu,%mem,user:3,comm=name,args,ni,tty,time", "--format", "json",
                      *h1)
    assert code == 0 and json.loads(out) == [
        {"pid": 100, "%cpu": 50.0, "%mem": 6.2, "user": "www-data", "name": "web",
         "args": "/usr/sbin/web --workers 3", "ni": 5, "tty": "pts/0", "time": "1-01:01:06"},
        {"pid": 200, "%cpu": 0.0, "%mem": 0.0, "user": "root", "name": "defunct-kid",
         "args": "[defunct-kid] <defunct>", "ni": 0, "tty": None, "time": "00:00:00"}]
    code, out, _ = ps("-p", "300,400", "-o", "pid,ni,comm", "--format", "csv", *h1)
    # CSV escapes control characters as the table does (issue 18): the name's newline stays in its row
    assert out.splitlines() == ["pid,ni,comm", "300,,rt-audio", '400,0,odd\\nna\\xffme']
    code, out, _ = ps("-p", "300", "-o", "pid,comm", "--format=csv", "--no-headers", *h1)
    assert out == "300,rt-audio\n"


def test_several_hosts_get_a_host_column(recdir):
    code, out, err = ps("-C", "redis-server,web", "-o", "pid,comm", "--rec", recdir)
    assert out.splitlines() == ["HOST   PID COMMAND", "h1     100 web", "h2       7 redis-server"]
    assert err.splitlines() == ["procsnap: snapshot of h1 at 2026-11-28 03:00:10 UTC",
                                "procsnap: snapshot of h2 at 2026-11-28 03:00:00 UTC"]
    code, out, _ = ps("-C", "redis-server", "-o", "pid", "--format", "json", "--rec", recdir)
    assert json.loads(out) == [{"host": "h2", "pid": 7}]


def test_no_rows_is_still_json(h1):
    code, out, _ = ps("-p", "99999", "-o", "pid,comm", "--format", "json", *h1)
    assert (code, json.loads(out)) == (1, [])


def test_threads_need_the_threads_table(tmp_path):
    d = tmp_path / "rec"
    with Store(d) as st:
        st.write(snapshot(0, world(0)[0]))
    with pytest.raises(ProcsnapError, match="made without the threads table"):
        ps("-eL", "--rec", d)
    assert lines("-p", "1", "--rec", d) == ["  PID TTY          TIME CMD", "    1 ?        00:02:00 systemd"]


# --------------------------------------------------------------------------
# The command line, through the CLI


@pytest.mark.parametrize("args, code, needle", [
    (["-o", "wchan"], 2, "procsnap: wchan: the kernel function a process sleeps in is not recorded by procsnap"),
    (["-o", "pid,nope"], 2, 'procsnap: unknown user-defined format specifier "nope"'),
    (["--at", "03:00"], 2, "procsnap: --at goes with --rec"),
    (["-f", "json"], 2, "procsnap: 'json' is not a ps option: use --format json"),
    (["--rec", "/nonexistent/rec"], 2, "procsnap: /nonexistent/rec: no such recording folder"),
    (["--rec", "REC", "--at", "1999-01-01"], 1, "procsnap: no snapshot at or before"),
    (["--rec", "REC", "--host", "nosuch"], 1, "procsnap: no snapshot of host nosuch"),
])
def test_errors_through_the_cli(recdir, args, code, needle):
    p = run_cli("ps", *[str(recdir) if a == "REC" else a for a in args])
    assert p.returncode == code, (p.stdout, p.stderr)
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and p.stderr.startswith(needle), p.stderr
    assert "Traceback" not in p.stderr


def test_cli_listing_and_exit_status(recdir):
    p = run_cli("ps", "-p", "1,999", "-o", "pid,args", "--rec", recdir, "--host", "h1")
    assert (p.returncode, p.stdout) == (0, "  PID COMMAND\n    1 /sbin/init splash\n")
    p = run_cli("ps", "-p", "999", "--rec", recdir, "--host", "h1")
    assert p.returncode == 1 and p.stdout == "  PID TTY          TIME CMD\n"
    p = run_cli("ps", "--help")
    assert p.returncode == 0 and "procsnap ps -p 1234 -o %mem,rss,cmd" in p.stdout


# --------------------------------------------------------------------------
# Live, against the real ps at the same moment

def pytestmark_live(test):
    """A live test: this host's processes against procps ps."""
    return pytest.mark.live(pytest.mark.tools("ps")(test))


PS_ENV = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
THREADS = ("import ctypes,threading,time;L=ctypes.CDLL(None);b=threading.Barrier(4);"
           "f=lambda i:(L.prctl(15,b'psnap-w%d'%i,0,0,0),b.wait(),time.sleep(120));"
           "[threading.Thread(target=f,args=(i,),daemon=True).start() for i in range(3)];"
           "b.wait();print('ready',flush=True);time.sleep(120)")


def real_ps(*args):
    return subprocess.run(["ps", *args], capture_output=True, text=True, env=PS_ENV, errors="surrogateescape")


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """Two sleepers under a recognizable name and a process with 3 named threads, each in a
    session of its own without a terminal (so ps's '+' flag cannot appear), and a sleeper on a
    pty of its own."""
    tmp = tmp_path_factory.mktemp("psw")
    sleeper = tmp / "psnap-sleeper"
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", sleeper)
    on_tty = tmp / "psnap-tty"
    shutil.copy2(sleeper, on_tty)
    procs = []
    master, slave = os.openpty()
    try:
        for n in ("120", "121"):
            procs.append(subprocess.Popen([str(sleeper), n], start_new_session=True, stdin=subprocess.DEVNULL))
        # a process whose controlling terminal is a pty of its own
        import fcntl
        import termios
        procs.append(subprocess.Popen([str(on_tty), "122"], start_new_session=True, stdin=slave, stdout=slave,
                                      stderr=slave, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0)))
        tty = "pts/" + os.ttyname(slave).rsplit("/", 1)[1]
        t = subprocess.Popen([sys.executable, "-c", THREADS], start_new_session=True, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, text=True)
        procs.append(t)
        assert t.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        yield {"sleepers": [p.pid for p in procs[:2]], "on_tty": procs[2].pid, "tty": tty, "threads": t.pid}
    finally:
        os.close(master)
        os.close(slave)
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
                p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass


def bracket(ps_args, ours_args):
    """ps, then procsnap ps, then ps again: (before, ours, after) as lists of lines."""
    before = real_ps(*ps_args).stdout.splitlines()
    code, out, _ = ps(*ours_args)
    after = real_ps(*ps_args).stdout.splitlines()
    return before, out.splitlines(), after


def first_field(line):
    return int(line.split()[0])


def steady(line):
    """A line without what changes back and forth on its own: a kworker's current work item."""
    return re.sub(r"(kworker/[^ -]+)-\S*", r"\1", line)


def compare_stable(args, pid_of=first_field, key=steady, tries=3):
    """ps, procsnap ps, ps: each process whose line is the same in both ps reads must show that line
    (through key) in ours. A process busy elsewhere can change and change back between the reads, so a
    mismatch is tried again, up to 3 times: a real difference shows every time.
    Returns (before, ours, after, stable, mine) of the last try; stable and mine map pid -> key."""
    for _ in range(tries):
        before, ours, after = bracket(args, args)
        stable = {pid_of(x): key(x) for x in before[1:] if x in after}
        mine = {pid_of(x): key(x) for x in ours[1:]}
        differ = {pid: (v, mine.get(pid)) for pid, v in stable.items() if mine.get(pid) != v}
        if not differ:
            break
    assert not differ, {pid: [(n, a, b) for n, (a, b) in enumerate(zip(theirs, mine_ or [])) if a != b] or (theirs, mine_)
                        for pid, (theirs, mine_) in differ.items()}
    assert ours[0] == before[0]
    return before, ours, after, stable, mine


@pytestmark_live
def test_live_seed_example_is_what_ps_prints(workload):
    pid = workload["sleepers"][0]
    args = ["-p", str(pid), "-o", "%mem,rss,cmd"]
    before, ours, after = bracket(args, args)
    assert before == after and len(before) == 2
    assert ours == before


@pytestmark_live
def test_live_every_process_as_ps_sees_it(workload):
    before, ours, after, stable, mine = compare_stable(["-e", "-o", "pid,ppid,user,comm,nlwp"])
    assert before[0].split() == ["PID", "PPID", "USER", "COMMAND", "NLWP"]
    assert len(stable) > 5 and set(workload["sleepers"]) | {workload["threads"]} <= set(stable)
    assert mine[workload["threads"]].split()[-2:] == [os.path.basename(sys.executable)[:15], "4"]
    # anything listed that neither ps read saw had come and gone between them
    seen = {first_field(x) for x in before[1:] + after[1:]}
    for pid in set(mine) - seen:
        assert not os.path.exists(f"/proc/{pid}"), pid


@pytestmark_live
def test_live_aux_columns_and_rows(workload):
    def key(line):
        # Left out: RSS and %MEM (see the seed test), ps's STAT flags L (locked pages) and + (foreground
        # group), which are not recorded; %CPU (a lifetime average that saw-tooths) and the state letter
        # (R and S flip) are compared below. TIME only grows: equal in both reads means equal in ours.
        f = steady(line).split(None, 10)
        f[2] = f[3] = f[5] = ""
        f[7] = f[7][1:].replace("L", "").replace("+", "")
        return f
    pid_of = lambda x: int(x.split()[1])  # noqa: E731
    before, ours, after, stable, mine = compare_stable(["aux"], pid_of=pid_of, key=key)
    cpu = {pid_of(x): float(x.split()[2]) for x in before[1:]}
    assert all(abs(float(x.split()[2]) - cpu[pid_of(x)]) <= 0.5 for x in ours[1:] if pid_of(x) in stable)
    # the idle workload, in full (but RSS and %MEM)
    theirs = {pid_of(x): x.split(None, 10) for x in before[1:]}
    whole = {pid_of(x): x.split(None, 10) for x in ours[1:]}
    ss = "SNs" if os.getpriority(os.PRIO_PROCESS, 0) > 0 else "Ss"  # the workload inherits our niceness
    for pid in workload["sleepers"]:
        assert whole[pid][:3] + whole[pid][4:5] + whole[pid][6:] == theirs[pid][:3] + theirs[pid][4:5] + theirs[pid][6:]
        assert whole[pid][7] == ss
    assert whole[workload["on_tty"]][6:8] == [workload["tty"], ss]
    # RSS near ps's for the sleepers (exact once the recorder stores VmRSS)
    rss = {int(x.split()[1]): int(x.split()[5]) for x in before[1:]}
    for x in ours[1:]:
        pid = int(x.split()[1])
        if pid in workload["sleepers"]:
            assert abs(int(x.split()[5]) - rss[pid]) <= max(512, rss[pid] // 5)


@pytestmark_live
def test_live_threads_of_a_multithreaded_process(workload):
    pid = str(workload["threads"])
    before, ours, after = bracket(["-Lo", "pid,tid,comm", "-p", pid], ["-Lo", "pid,tid,comm", "-p", pid])
    assert before == after and len(before) == 5
    assert ours == before
    assert sorted(x.split()[2] for x in ours[2:]) == ["psnap-w0", "psnap-w1", "psnap-w2"]
    before, ours, after = bracket(["-eLo", "pid,tid,comm"], ["-eLo", "pid,tid,comm"])
    mine = [x for x in ours if x.split()[0] == pid]
    assert mine == [x for x in before if x.split()[0] == pid] == [x for x in after if x.split()[0] == pid]


@pytestmark_live
def test_live_selection_by_command_and_user(workload):
    args = ["-C", "psnap-sleeper", "-o", "pid,stat,comm,args"]
    before, ours, after = bracket(args, args)
    assert before == after and ours == before
    assert sorted(first_field(x) for x in ours[1:]) == sorted(workload["sleepers"])
    user = real_ps("-o", "user=", "-p", str(workload["sleepers"][0])).stdout.strip()
    before, ours, after, stable, mine = compare_stable(["-u", user, "-o", "pid,user,comm"])
    assert set(mine) >= set(workload["sleepers"]) and {x.split()[1] for x in ours[1:]} == {user}


@pytestmark_live
def test_live_plain_ps_lists_my_processes_on_my_terminal(workload):
    """No selection: the caller's effective uid and terminal (none here, or pytest's), as ps."""
    before, ours, after, stable, mine = compare_stable(["-o", "pid,tty,comm"])
    assert stable
    # nothing else: what neither ps read listed had come and gone between them (or is this process)
    seen = {first_field(x) for x in before[1:] + after[1:]}
    assert all(not os.path.exists(f"/proc/{pid}") or pid == os.getpid() for pid in set(mine) - seen)
    assert str(os.getpid()) in {x.split()[0] for x in ours[1:]}
    # the process on another terminal is not mine to see without -e, a or -t
    assert str(workload["on_tty"]) not in {x.split()[0] for x in ours[1:]}
    args = ["-t", workload["tty"], "-o", "pid,tty,comm"]
    before, ours, after = bracket(args, args)
    assert ours == before == after and len(ours) == 2
    assert ours[1].split() == [str(workload["on_tty"]), workload["tty"], "psnap-tty"]


@pytestmark_live
def test_live_sort_by_rss(workload):
    code, out, _ = ps("-e", "--sort", "-rss", "-o", "rss=,pid=")
    rss = [int(x.split()[0]) for x in out.splitlines()]
    assert code == 0 and rss == sorted(rss, reverse=True) and len(rss) > 5
    pids = [int(x.split()[1]) for x in out.splitlines()]
    # the python process (MiBs) comes before the sleepers (hundreds of KiB)
    assert pids.index(workload["threads"]) < min(pids.index(p) for p in workload["sleepers"])


@pytestmark_live
def test_live_json_and_exit_status(workload):
    pid = workload["sleepers"][1]
    code, out, _ = ps("-p", str(pid), "-o", "pid,nlwp,comm,args", "--format", "json")
    assert code == 0 and json.loads(out) == [{"pid": pid, "nlwp": 1, "comm": "psnap-sleeper",
                                              "args": f"{os.path.dirname(json.loads(out)[0]['args'].split()[0])}"
                                                      f"/psnap-sleeper 121"}]
    code, out, _ = ps("-p", "4194304", "-o", "pid")
    assert code == 1 and out.strip() == "PID"
    assert real_ps("-p", "4194304", "-o", "pid").returncode == 1


ODD_ARGS = ["tab\there", "new\nline", "bell\x07", "del\x7f", "c1\x80\x9b", "nbsp\u00a0", "zw\u200b", "ls\u2028",
            "pua\ue000", "bom\ufeff", "unassigned\u0378", "emoji\U0001f600", "accent\u0301", "cjk\u4e2d\u6587",
            b"bad\xff\xfe<\xc3>".decode("utf-8", "surrogateescape")]


@pytestmark_live
@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
@pytest.mark.parametrize("fields", ["args", "pid,args", "comm,args", "args,pid"])
def test_live_odd_and_huge_command_lines(fields, locale, monkeypatch):
    """Control characters, invalid UTF-8, format characters and a command line longer than ps's
    128 KiB line buffer print as ps prints them (a CI runner's own argv once held 200 KB of JSON)."""
    sleeper = ["bash", "-c", "sleep 120; true"]
    procs = [subprocess.Popen(sleeper + ODD_ARGS, stdin=subprocess.DEVNULL),
             subprocess.Popen(sleeper + ["y" * 100000, "\u00e9" * 50000], stdin=subprocess.DEVNULL),
             subprocess.Popen(sleeper + ["z" * 100000, "\u4e2d" * 30000], stdin=subprocess.DEVNULL)]
    try:
        time.sleep(0.3)
        for p in procs:
            args = ["-o", fields, "-p", str(p.pid)]
            monkeypatch.setenv("LC_ALL", locale)
            theirs = subprocess.run(["ps", *args], capture_output=True, text=True, errors="surrogateescape",
                                    env={**PS_ENV, "LC_ALL": locale}).stdout
            code, ours, _ = ps(*args)
            assert code == 0
            # what ps prints raw but a terminal must not get (format characters: zero-width space,
            # BOM) is escaped, as every text of procsnap's (issue 18)
            theirs = escape_lines(theirs)
            assert ours == theirs, [(n, a[:20], b[:20], len(a), len(b))
                                    for n, (a, b) in enumerate(zip(ours.split(" "), theirs.split(" "))) if a != b][:5]
    finally:
        for p in procs:
            p.kill()
            p.wait()

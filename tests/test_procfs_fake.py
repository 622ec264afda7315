"""The /proc parsers and the Collector, on real-format bytes and a fake /proc tree.

A process's stat, status, io and cgroup are parsed by the C module (recorder/source/_native.c),
their one parser: those tests need it (they are skipped under PROCSNAP_NATIVE=0, whose psutil
fallback tests/test_native.py covers).

Nothing here reads the live /proc (except the recorder's own RSS, which the
Collector always takes from /proc/self): every input is built by
``tests/support/fakeproc.py`` in the kernel's own format, so every expected value is
known exactly.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd

import pytest

from recorder.source import procfs as P
from recorder.collect.collector import Collector
from recorder.collect.processes import CLK_TCK, PAGE_SIZE
from recorder.source.native import native
from recorder.source.procfs import Gone, ProcFS
from recorder.schema import COLLECTED, CPU_MODES, NET_COUNTERS, TABLES

from tests.support.fakeproc import (
    BOOT_ID, BTIME, CGROUP_HYBRID, CGROUP_V2, CPU_TOTAL, DISKSTATS, IO_DEFAULT, LOADAVG,
    MEMINFO_KB, NET_DEV, PRESSURE, VMSTAT, FakeProc, FaultyProcFS, io_text, limits_text,
    meminfo_text, proc_stat_text, stat_line, status_text, vmstat_text,
)

UTC = dt.timezone.utc

# The C parsers, and the collector on a fake tree (psutil, the fallback, reads some fields through
# system calls on the live pids, not from the tree).
needs_c = pytest.mark.skipif(native is None, reason="PROCSNAP_NATIVE=0: the C parsers are not there")


def fields(result) -> dict:
    """A struct sequence of the C module as {field: value}."""
    return {k: getattr(result, k) for k in type(result).__match_args__}


def parse_stat(data: bytes) -> dict:
    return fields(native.parse_stat(data))

# The tables this file covers. Collectors are always given this list, so that
# tables added to COLLECTED later (open_files, sockets, ...) do not change what
# these tests see; test_default_tables_match_schema covers the full default set.
COVERED = ("system", "disks", "nics", "processes", "threads")


def start(ticks: int) -> dt.datetime:
    """btime + ticks / CLK_TCK, computed exactly (integer microseconds)."""
    return dt.datetime.fromtimestamp(BTIME, UTC) + dt.timedelta(microseconds=ticks * 1_000_000 // CLK_TCK)


def rows(snap, table: str) -> list[dict]:
    return snap.tables[table].to_pylist()


def by_pid(snap) -> dict[int, dict]:
    return {r["pid"]: r for r in rows(snap, "processes")}


def meta(snap) -> dict:
    (m,) = rows(snap, "snapshots")
    return m


def collect(fake_or_fs, tables=COVERED, **kw):
    fs = fake_or_fs if isinstance(fake_or_fs, ProcFS) else ProcFS(str(fake_or_fs.root))
    return Collector(procfs=fs, host="fakehost", tables=tables, **kw).snapshot()


# ==========================================================================
# 1. parse_stat


# A real-shaped stat line with a distinct value in every field next to a parsed
# one, so an off-by-one field index cannot go unnoticed.
SSHD_STAT = (
    b"812 (sshd) S 1 812 812 34817 812 4194560 1392 27841 12 31 7 3 45 18 15 -5 2 0 1432 "
    b"15433728 2245 18446744073709551615 94571220418560 94571221321253 140736246318256 0 0 "
    b"0 0 4096 81925 1 0 0 17 3 0 0 5 0 0 94571221537296 94571221583088 94571239337984 "
    b"140736246325047 140736246325070 140736246325070 140736246325221 0\n"
)


@needs_c
def test_parse_stat_every_field():
    assert parse_stat(SSHD_STAT) == {
        "pid": 812, "comm": b"sshd", "state": "S", "ppid": 1, "pgid": 812, "sid": 812,
        "tty_nr": 34817, "flags": 4194560, "minflt": 1392, "majflt": 12, "utime": 7,
        "stime": 3, "priority": 15, "nice": -5, "num_threads": 2, "starttime": 1432,
        "vsize": 15433728, "rss": 2245, "processor": 3,
    }


@needs_c
@pytest.mark.parametrize("comm", [
    b"a b",             # space
    b"a) (b",           # parentheses, the classic trap
    b"x)",              # ')' at the very end
    b"x) R 99 99",      # looks like the fields that follow
    b"new\nline",       # newline
    b"((",
    b") ",
    b"",
    b"tmux: server",
])
def test_parse_stat_hostile_names(comm):
    line = stat_line(4242, comm, "R", ppid=77, utime=1234, stime=56, starttime=987654,
                     num_threads=9, rss=3333, processor=5, minflt=10, majflt=2, nice=3,
                     priority=23, tty_nr=34816)
    st = parse_stat(line)
    assert st["pid"] == 4242
    assert st["comm"] == comm
    assert st["state"] == "R"
    assert (st["ppid"], st["pgid"], st["sid"], st["tty_nr"]) == (77, 4242, 4242, 34816)
    assert (st["utime"], st["stime"], st["starttime"]) == (1234, 56, 987654)
    assert (st["num_threads"], st["rss"], st["processor"]) == (9, 3333, 5)
    assert (st["minflt"], st["majflt"], st["nice"], st["priority"]) == (10, 2, 3, 23)


@needs_c
def test_parse_stat_kernel_thread():
    # /proc/2/stat of a 6.x kernel (processor set to 1 so that it is visible).
    line = (b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 1 0 0 20 0 1 0 30 0 0 "
            b"18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
    st = parse_stat(line)
    assert st["comm"] == b"kthreadd"
    assert st["flags"] == 2129984 and st["flags"] & P.PF_KTHREAD
    assert (st["ppid"], st["utime"], st["stime"], st["starttime"]) == (0, 0, 1, 30)
    assert (st["vsize"], st["rss"], st["num_threads"], st["processor"]) == (0, 0, 1, 1)


@needs_c
def test_parse_stat_worker_kthread_with_slash_and_user_process_not_kthread():
    st = parse_stat(stat_line(17, b"kworker/0:1-events", "I", ppid=2, flags=69238880, vsize=0, rss=0))
    assert st["comm"] == b"kworker/0:1-events" and st["state"] == "I"
    assert st["flags"] & P.PF_KTHREAD
    assert not parse_stat(SSHD_STAT)["flags"] & P.PF_KTHREAD


@needs_c
def test_parse_stat_zombie():
    # A real zombie's stat: every mm field reads 0.
    line = (b"4112 (python3) Z 4071 4059 2913 0 -1 4227148 224 0 0 0 11 4 0 0 20 0 1 0 174986 "
            b"0 0 18446744073709551615 0 0 0 0 0 0 0 16781312 2 1 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
    st = parse_stat(line)
    assert st["state"] == "Z"
    assert (st["pid"], st["ppid"], st["pgid"], st["sid"]) == (4112, 4071, 4059, 2913)
    assert (st["utime"], st["stime"], st["starttime"]) == (11, 4, 174986)
    assert (st["vsize"], st["rss"], st["processor"]) == (0, 0, 1)


@needs_c
def test_parse_stat_old_kernel_without_processor():
    st = parse_stat(stat_line(5, b"init", fields=38))
    assert st["processor"] is None
    assert st["rss"] == 2245


@needs_c
@pytest.mark.parametrize("data", [
    b"",
    b"garbage\n",
    b"12 x S 1 2 3\n",
    b"12 (trunc) S 1 12\n",
    b"twelve (x) S " + b" ".join(b"1" for _ in range(50)) + b"\n",
    b"12 (x) S " + b" ".join(b"z" for _ in range(50)) + b"\n",
    b"12 )x( S " + b" ".join(b"1" for _ in range(50)) + b"\n",
])
def test_parse_stat_garbage_is_valueerror(data):
    with pytest.raises(ValueError):
        parse_stat(data)


# ==========================================================================
# 2. Other per-process parsers


@needs_c
def test_parse_status_ids_and_kb():
    data = status_text(4242, b"cat", "R", uid=(1000, 0, 0, 0), gid=(100, 5000, 5000, 5000),
                       vm_rss_kb=1564, vm_swap_kb=12, voluntary=7, nonvoluntary=8)
    st = native.parse_status(data)
    assert (st.ruid, st.euid) == (1000, 0)
    assert st.egid == 5000
    assert st.vm_rss == 1564 * 1024
    assert st.vm_swap == 12 * 1024
    assert st.rss_file == 7400 * 1024
    assert st.ctxsw_voluntary == 7
    assert st.ctxsw_involuntary == 8
    assert native.status_ctxsw(data) == (7, 8)
    assert native.status_ctxsw(b"Name:\tcat\n") == (None, None)


@needs_c
def test_parse_status_kernel_thread_has_no_vm_lines():
    st = native.parse_status(status_text(2, b"kthreadd", kthread=True))
    assert st.vm_rss is None
    assert st.vm_swap is None
    assert (st.ruid, st.euid) == (0, 0)


@needs_c
def test_parse_io():
    assert fields(native.parse_io(io_text())) == IO_DEFAULT
    real = (b"rchar: 8379\nwchar: 1403\nsyscr: 12\nsyscw: 1\nread_bytes: 0\n"
            b"write_bytes: 0\ncancelled_write_bytes: 0\n")
    assert fields(native.parse_io(real)) == {"rchar": 8379, "wchar": 1403, "syscr": 12, "syscw": 1,
                                             "read_bytes": 0, "write_bytes": 0, "cancelled_write_bytes": 0}
    assert fields(native.parse_io(b"rchar: 5\n")) == {"rchar": 5, **dict.fromkeys(
        ("wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes"))}


@pytest.mark.parametrize("data, argv, joined", [
    (b"", [], b""),
    (b"/usr/bin/x\0", [b"/usr/bin/x"], b"/usr/bin/x"),
    (b"sh\0-c\0echo a  b\0", [b"sh", b"-c", b"echo a  b"], b"sh -c echo a  b"),
    (b"nginx: worker process", [b"nginx: worker process"], b"nginx: worker process"),  # setproctitle, no NUL
    (b"a\0\0b\0", [b"a", b"", b"b"], b"a  b"),
    (b"a\0\0", [b"a", b""], b"a "),
])
def test_parse_cmdline(data, argv, joined):
    assert P.parse_cmdline(data) == (argv, joined)


def test_parse_limits_nofile():
    assert P.parse_limits_nofile(limits_text(1024, 524288)) == (1024, 524288)
    assert P.parse_limits_nofile(limits_text(None, None)) == (None, None)
    assert P.parse_limits_nofile(limits_text(20000, None)) == (20000, None)
    real = (b"Limit                     Soft Limit           Hard Limit           Units     \n"
            b"Max processes             96365                96365                processes \n"
            b"Max open files            20000                40000                files     \n"
            b"Max locked memory         8388608              8388608              bytes     \n")
    assert P.parse_limits_nofile(real) == (20000, 40000)
    assert P.parse_limits_nofile(b"") == (None, None)


@needs_c
@pytest.mark.parametrize("data, expected", [
    (CGROUP_V2, "0::/system.slice/x.service"),
    (CGROUP_HYBRID, "4:memory:/process_api/b45658a8cfaf9b09ff6631288e51bd99"),
    (b"9:name=systemd:/\n8:pids:/\n4:memory:/\n0::/\n", "/"),
    (b"0::/\n", "/"),
    (b"12:pids:/user.slice\n1:name=systemd:/user.slice/a:b.scope\n0::/user.slice\n",
     "12:pids:/user.slice,1:name=systemd:/user.slice/a:b.scope,0::/user.slice"),
])
def test_parse_cgroup(data, expected):
    assert native.parse_cgroup(data) == expected


def _encode_dev(major: int, minor: int) -> int:
    # The kernel's new_encode_dev(), which is what stat's tty_nr holds.
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


@pytest.mark.parametrize("tty_nr, name", [
    (_encode_dev(136, 0), "pts/0"),
    (34816, "pts/0"),
    (_encode_dev(136, 7), "pts/7"),
    (_encode_dev(136, 300), "pts/300"),
    (_encode_dev(137, 44), "pts/300"),  # the other UNIX98 slave majors (136..143), as procps reads them
    (_encode_dev(143, 255), "pts/2047"),
    (_encode_dev(4, 1), "tty1"),
    (1025, "tty1"),
    (_encode_dev(4, 64), "ttyS0"),
    (_encode_dev(4, 65), "ttyS1"),
    (_encode_dev(5, 1), "console"),
    (0, None),
])
def test_tty_name(tty_nr, name):
    assert P.tty_name(tty_nr) == name


def test_split_text():
    assert P.split_text(b"bash") == ("bash", None)
    assert P.split_text("héllo wörld".encode()) == ("héllo wörld", None)
    assert P.split_text(b"") == ("", None)
    assert P.split_text(b"ab\xff\xfec") == ("ab\\xff\\xfec", b"ab\xff\xfec")
    assert P.split_text(b"caf\xe9") == ("caf\\xe9", b"caf\xe9")  # latin-1, not UTF-8


# ==========================================================================
# 2b. Host-wide parsers


def test_parse_proc_stat():
    assert P.parse_proc_stat(proc_stat_text()) == {
        "ncpus": 2, "cpu": list(CPU_TOTAL), "intr": 126136, "ctxt": 222389,
        "btime": BTIME, "processes": 3629, "procs_running": 4, "procs_blocked": 1,
    }


def test_parse_loadavg():
    assert P.parse_loadavg(LOADAVG) == {
        "load1": 0.07, "load5": 0.05, "load15": 0.01, "tasks_total": 84, "last_pid": 3629,
    }


def test_parse_meminfo():
    mi = P.parse_meminfo(meminfo_text())
    assert mi["MemTotal"] == 24684092 * 1024
    assert mi["MemAvailable"] == 24383488 * 1024
    assert mi["Active(anon)"] == 1520 * 1024
    assert mi["VmallocTotal"] == 34359738367 * 1024
    assert mi["HugePages_Total"] == 0 and mi["HugePages_Free"] == 0  # counts, no kB
    assert mi["Hugepagesize"] == 2048 * 1024
    assert len(mi) == len(meminfo_text().splitlines())
    assert P.parse_meminfo(b"HugePages_Rsvd:        7\n") == {"HugePages_Rsvd": 7}


def test_parse_vmstat():
    assert P.parse_vmstat(vmstat_text()) == VMSTAT


def test_parse_pressure():
    assert P.parse_pressure(PRESSURE["cpu"]) == {
        "some": {"avg10": 1.51, "avg60": 0.37, "avg300": 0.08, "total": 5147597},
        "full": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 0},
    }
    # Kernels before 5.13 have no "full" line for cpu.
    assert P.parse_pressure(b"some avg10=0.00 avg60=0.25 avg300=0.14 total=2289703\n") == {
        "some": {"avg10": 0.0, "avg60": 0.25, "avg300": 0.14, "total": 2289703},
    }


DISK_ROWS = [
    {"major": 7, "minor": 0, "device": "loop0", "reads": 0, "reads_merged": 0, "read_bytes": 0,
     "read_time_ms": 0, "writes": 0, "writes_merged": 0, "write_bytes": 0, "write_time_ms": 0,
     "in_flight": 0, "io_time_ms": 0, "weighted_io_time_ms": 0},
    {"major": 254, "minor": 0, "device": "vda", "reads": 11744, "reads_merged": 5990,
     "read_bytes": 2361786 * 512, "read_time_ms": 11401, "writes": 1680, "writes_merged": 9402,
     "write_bytes": 891376 * 512, "write_time_ms": 2503, "in_flight": 1, "io_time_ms": 3776,
     "weighted_io_time_ms": 14477},
    {"major": 254, "minor": 1, "device": "vda1", "reads": 11020, "reads_merged": 5800,
     "read_bytes": 2300000 * 512, "read_time_ms": 11000, "writes": 1600, "writes_merged": 9300,
     "write_bytes": 880000 * 512, "write_time_ms": 2400, "in_flight": 0, "io_time_ms": 3600,
     "weighted_io_time_ms": 14000},
    # The 4.x format: 11 counters only.
    {"major": 259, "minor": 0, "device": "nvme0n1", "reads": 12, "reads_merged": 0, "read_bytes": 96 * 512,
     "read_time_ms": 3, "writes": 0, "writes_merged": 0, "write_bytes": 0, "write_time_ms": 0,
     "in_flight": 0, "io_time_ms": 4, "weighted_io_time_ms": 3},
]


def test_parse_diskstats():
    assert P.parse_diskstats(DISKSTATS) == DISK_ROWS


NIC_ROWS = [
    {"interface": "lo", "rx_bytes": 3193, "rx_packets": 29, "rx_errors": 0, "rx_dropped": 0,
     "multicast": 0, "tx_bytes": 3193, "tx_packets": 29, "tx_errors": 0, "tx_dropped": 0},
    {"interface": "eth0", "rx_bytes": 112567585, "rx_packets": 2356, "rx_errors": 3, "rx_dropped": 4,
     "multicast": 8, "tx_bytes": 104284, "tx_packets": 1113, "tx_errors": 9, "tx_dropped": 10},
    # rx_bytes wider than its column: no space after the colon.
    {"interface": "wlan0", "rx_bytes": 1234567890123, "rx_packets": 99, "rx_errors": 1, "rx_dropped": 2,
     "multicast": 77, "tx_bytes": 42, "tx_packets": 1, "tx_errors": 0, "tx_dropped": 0},
]


def test_parse_net_dev():
    assert P.parse_net_dev(NET_DEV) == NIC_ROWS


# ==========================================================================
# ProcFS itself


def test_procfs_maps_missing_to_gone_and_lists_pids(tmp_path):
    fake = FakeProc(tmp_path / "proc")
    fake.add_process(30, b"b")
    fake.add_process(4, b"a")
    (fake.root / "self").mkdir()
    (fake.root / "1a").mkdir()
    fs = ProcFS(str(fake.root) + "/")
    assert fs.pids() == [4, 30]
    assert fs.read("loadavg") == LOADAVG
    assert fs.readlink(4, "exe") == b"/usr/bin/a"
    assert sorted(fs.listdir(4, "fd")) == ["0", "1", "2"]
    with pytest.raises(Gone):
        fs.read(99, "stat")
    with pytest.raises(Gone):
        fs.listdir(99, "task")
    with pytest.raises(Gone):
        fs.readlink(99, "exe")


# ==========================================================================
# 3. The Collector on a fake tree

NOBODY_UID = 3999999  # a uid with no passwd entry


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One snapshot over a tree holding every kind of process the recorder meets."""
    fake = FakeProc(tmp_path_factory.mktemp("world") / "proc")
    # init: root, plain cmdline, cgroup v2
    fake.add_process(1, b"systemd", ppid=0, cmdline=b"/sbin/init\0splash\0",
                     exe=b"/usr/lib/systemd/systemd", fds=5, nofile=(1024, 524288), cgroup=CGROUP_V2,
                     utime=250, stime=120, starttime=5, rss=3000, vsize=22000000, processor=1,
                     minflt=11, majflt=3, priority=20, nice=0)
    # a kernel thread
    fake.add_process(2, b"kthreadd", ppid=0, kthread=True, fds=0, starttime=30, processor=0)
    # invalid UTF-8 name, a space in an argument, non-root effective user, a tty, 2 threads
    fake.add_process(
        100, b"bad\xffname", "R", ppid=1, uid=(1000, NOBODY_UID, NOBODY_UID, NOBODY_UID),
        gid=(100, 5000, 5000, 5000), cmdline=b"python3\0-c\0print('a b')\0",
        exe=b"/opt/caf\xe9/bin/python3 (deleted)", fds=7, nofile=(None, None), cgroup=CGROUP_HYBRID,
        io={"rchar": 111, "wchar": 222, "syscr": 3, "syscw": 4, "read_bytes": 5 * 4096,
            "write_bytes": 6 * 4096, "cancelled_write_bytes": 4096},
        utime=12345, stime=678, starttime=163811, rss=2245, vsize=15433728, tty_nr=34816,
        processor=1, nice=5, priority=25, minflt=1392, majflt=12, pgid=90, sid=80,
        rss_file_kb=7400, rss_shmem_kb=16, vm_swap_kb=12, voluntary=1234, nonvoluntary=56,
        threads=[100, {"tid": 101, "comm": b"worker 1", "state": "S", "utime": 250, "stime": 17,
                       "starttime": 170000, "processor": 0, "minflt": 5, "majflt": 1, "nice": 5,
                       "priority": 25, "voluntary": 9, "nonvoluntary": 2}],
    )
    # a zombie
    fake.add_process(200, b"defunct", "Z", ppid=100, fds=0, starttime=174986, utime=11, stime=4)
    # no io file, though the process is there
    fake.add_process(300, b"noio", ppid=1, omit=("io",))
    # stat is garbage
    fake.add_process(400, b"garbage", ppid=1, files={"stat": b"\x00\x01 not a stat line\n"})
    # io and exe denied
    fake.add_process(500, b"secret", ppid=1, uid=NOBODY_UID, threads=[500, 501])
    # vanishes right after its stat was read
    fake.add_process(600, b"shortlived", ppid=1, threads=[600, 601])
    fs = FaultyProcFS(fake.root, deny=[(500, "io"), (500, "exe")],
                      after={(600, "stat"): lambda: fake.remove_process(600)})
    snap = collect(fs)
    return fake, fs, snap


@needs_c
def test_collector_process_set(world):
    _, _, snap = world
    assert sorted(by_pid(snap)) == [1, 2, 100, 200, 300, 500]


@needs_c
def test_collector_plain_process_row(world):
    _, _, snap = world
    r = by_pid(snap)[1]
    r.pop("snapshot_id"), r.pop("ts")
    assert r == {
        "boot_id": BOOT_ID, "pid": 1, "ppid": 0, "pgid": 1, "sid": 1, "start_time": start(5),
        "name": "systemd", "name_raw": None,
        "exe": "/usr/lib/systemd/systemd", "exe_raw": None,
        "cmdline": "/sbin/init splash", "cmdline_raw": None,
        "state": "S", "uid": 0, "user": "root", "ruid": 0, "gid": 0,
        "nice": 0, "priority": 20, "processor": 1, "num_threads": 1,
        "utime": 250 / CLK_TCK, "stime": 120 / CLK_TCK,
        "rss": 8980 * 1024, "vms": 22000000, "shared": (7400 + 16) * 1024, "swap": 0,
        "minflt": 11, "majflt": 3,
        "rchar": 8379, "wchar": 1403, "syscr": 12, "syscw": 1, "read_bytes": 4096,
        "write_bytes": 8192, "cancelled_write_bytes": 512,
        "ctxsw_voluntary": 1234, "ctxsw_involuntary": 56,
        "num_fds": 5, "fd_limit": 1024, "fd_limit_hard": 524288,
        "cgroup": "0::/system.slice/x.service", "tty": None, "denied": None,
    }
    if CLK_TCK == 100:
        assert (r["utime"], r["stime"]) == (2.5, 1.2)


@needs_c
def test_collector_lossy_names_users_and_tty(world):
    _, _, snap = world
    r = by_pid(snap)[100]
    assert (r["pid"], r["ppid"], r["pgid"], r["sid"]) == (100, 1, 90, 80)
    assert r["name"] == "bad\\xffname"
    assert r["name_raw"] == b"bad\xffname"
    assert r["exe"] == "/opt/caf\\xe9/bin/python3 (deleted)"
    assert r["exe_raw"] == b"/opt/caf\xe9/bin/python3 (deleted)"
    assert r["cmdline"] == "python3 -c print('a b')"
    assert r["cmdline_raw"] == b"python3\0-c\0print('a b')\0"
    assert (r["uid"], r["ruid"], r["gid"]) == (NOBODY_UID, 1000, 5000)
    try:
        expected_user = pwd.getpwuid(NOBODY_UID).pw_name
    except KeyError:
        expected_user = str(NOBODY_UID)
    assert r["user"] == expected_user
    assert r["state"] == "R"
    assert r["start_time"] == start(163811)
    if CLK_TCK == 100:
        assert r["start_time"] == dt.datetime(2026, 11, 28, 1, 17, 20, 110000, UTC)
        assert (r["utime"], r["stime"]) == (123.45, 6.78)
    assert r["utime"] == 12345 / CLK_TCK
    assert r["stime"] == 678 / CLK_TCK
    assert r["rss"] == 2245 * PAGE_SIZE
    assert r["vms"] == 15433728
    assert (r["nice"], r["priority"], r["processor"], r["num_threads"]) == (5, 25, 1, 2)
    assert (r["shared"], r["swap"]) == ((7400 + 16) * 1024, 12 * 1024)
    assert (r["rchar"], r["wchar"], r["syscr"], r["syscw"]) == (111, 222, 3, 4)
    assert (r["read_bytes"], r["write_bytes"], r["cancelled_write_bytes"]) == (5 * 4096, 6 * 4096, 4096)
    assert (r["num_fds"], r["fd_limit"], r["fd_limit_hard"]) == (7, None, None)
    assert r["cgroup"] == "4:memory:/process_api/b45658a8cfaf9b09ff6631288e51bd99"
    assert r["tty"] == "pts/0"
    assert r["denied"] is None


@needs_c
def test_collector_threads(world):
    _, _, snap = world
    th = {(r["pid"], r["tid"]): r for r in rows(snap, "threads")}
    assert sorted(th) == [(1, 1), (2, 2), (100, 100), (100, 101), (200, 200), (300, 300), (500, 500), (500, 501)]
    w = th[(100, 101)]
    w.pop("snapshot_id"), w.pop("ts")
    assert w == {
        "boot_id": BOOT_ID, "pid": 100, "tid": 101, "start_time": start(170000),
        "name": "worker 1", "name_raw": None, "state": "S", "nice": 5, "priority": 25,
        "processor": 0, "utime": 250 / CLK_TCK, "stime": 17 / CLK_TCK, "minflt": 5, "majflt": 1,
        "ctxsw_voluntary": 9, "ctxsw_involuntary": 2,
    }
    main = th[(100, 100)]
    assert main["name"] == "bad\\xffname" and main["name_raw"] == b"bad\xffname"
    assert (main["utime"], main["processor"], main["start_time"]) == (12345 / CLK_TCK, 1, start(163811))


@needs_c
def test_collector_kernel_thread(world):
    _, fs, snap = world
    r = by_pid(snap)[2]
    assert (r["name"], r["ppid"], r["state"]) == ("kthreadd", 0, "S")
    assert r["exe"] is None and r["exe_raw"] is None
    assert r["cmdline"] == "" and r["cmdline_raw"] is None
    assert r["denied"] is None
    assert (r["rss"], r["vms"], r["swap"], r["shared"]) == (0, 0, None, None)
    assert r["num_fds"] == 0
    assert r["start_time"] == start(30)
    assert ("2", "exe") not in fs.calls  # never even tried


@needs_c
def test_collector_zombie(world):
    _, fs, snap = world
    r = by_pid(snap)[200]
    assert (r["name"], r["ppid"], r["state"]) == ("defunct", 100, "Z")
    assert r["exe"] is None and r["exe_raw"] is None
    assert r["cmdline"] == "" and r["cmdline_raw"] is None
    assert r["denied"] is None
    assert (r["rss"], r["num_fds"], r["utime"]) == (0, 0, 11 / CLK_TCK)
    assert ("200", "exe") not in fs.calls


@needs_c
def test_collector_missing_optional_file_is_null_not_skipped(world):
    _, _, snap = world
    r = by_pid(snap)[300]
    for col in ("rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes"):
        assert r[col] is None, col
    assert r["denied"] is None
    assert r["exe"] == "/usr/bin/noio" and r["cmdline"] == "noio" and r["num_fds"] == 3


@needs_c
def test_collector_denied_fields(world):
    _, _, snap = world
    r = by_pid(snap)[500]
    assert r["denied"] == "exe,io"
    assert r["exe"] is None and r["exe_raw"] is None
    for col in ("rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes"):
        assert r[col] is None, col
    # what was not denied is still there
    assert (r["cmdline"], r["num_fds"], r["fd_limit"], r["name"]) == ("secret", 3, 1024, "secret")


@needs_c
def test_collector_gone_and_garbage_are_skipped(world):
    _, _, snap = world
    pids = by_pid(snap)
    assert 400 not in pids and 600 not in pids
    assert not [r for r in rows(snap, "threads") if r["pid"] in (400, 600)]


@needs_c
def test_collector_snapshot_counts(world):
    _, _, snap = world
    m = meta(snap)
    assert m["processes_seen"] == 6
    assert m["processes_gone"] == 2     # 400 (garbage) and 600 (vanished)
    assert m["processes_denied"] == 1   # 500
    assert m["threads_seen"] == 8
    assert m["threads_gone"] == 0
    assert m["threads_denied"] == 0
    assert m["boot_id"] == BOOT_ID
    assert m["kernel"] == os.uname().release
    assert m["recorder_pid"] == os.getpid()
    assert m["interval_s"] is None and m["skipped"] == 0
    for t in COVERED:
        assert m[f"ms_{t}"] is not None and m[f"ms_{t}"] >= 0, t
    assert m["duration_ms"] > 0


# -- single-condition trees, so each count is attributable ------------------


def _one(tmp_path, **kw):
    fake = FakeProc(tmp_path / "proc")
    fake.add_process(1, b"init", ppid=0)
    fake.add_process(7, b"victim", threads=[7, 8], **kw)
    return fake


def _many(tmp_path, cases: dict[int, dict]) -> FakeProc:
    """init plus one process per case (pid: add_process keywords), each with 2 threads."""
    fake = FakeProc(tmp_path / "proc")
    fake.add_process(1, b"init", ppid=0)
    for pid, kw in cases.items():
        kw = dict(kw)
        kw.setdefault("threads", [pid, pid + 1])
        fake.add_process(pid, kw.pop("comm", b"victim"), **kw)
    return fake


# Each process vanishes right after a different one of its files was read.
VANISH_AT = {10: "stat", 20: "status", 30: "exe", 40: "cmdline", 50: "io", 60: "fd", 70: "limits", 80: "cgroup"}


@needs_c
@pytest.mark.parametrize("tables", [COVERED, ("system", "processes")], ids=["with-threads", "no-threads"])
def test_process_vanishing_mid_read_is_skipped(tmp_path, tables):
    # Without the threads pass, only _process itself can notice the vanishing;
    # with it, a process that vanished after its last file is caught at task/.
    fake = _many(tmp_path, {pid: {} for pid in VANISH_AT})
    after = {(pid, f): (lambda pid=pid: fake.remove_process(pid)) for pid, f in VANISH_AT.items()}
    if "threads" not in tables:
        del after[(80, "cgroup")]  # that one completed its process row: it is kept
        kept = [1, 80]
    else:
        kept = [1]
    snap = collect(FaultyProcFS(fake.root, after=after), tables=tables)
    assert sorted(by_pid(snap)) == kept
    m = meta(snap)
    assert (m["processes_seen"], m["processes_gone"], m["processes_denied"]) == (len(kept), 8 - (len(kept) - 1), 0)
    if "threads" in tables:
        assert sorted((r["pid"], r["tid"]) for r in rows(snap, "threads")) == [(1, 1)]
        assert (m["threads_seen"], m["threads_gone"]) == (1, 0)


@needs_c
def test_process_gone_error_on_status_is_skipped(tmp_path):
    fake = _one(tmp_path)
    snap = collect(FaultyProcFS(fake.root, gone=[(7, "status")]))
    assert sorted(by_pid(snap)) == [1]
    assert meta(snap)["processes_gone"] == 1
    assert [r["pid"] for r in rows(snap, "threads")] == [1]


GARBAGE_STAT = {
    10: b"",
    20: b"\x00\x01 not a stat line\n",
    30: b"30 (victim) S 1 30\n",
    40: b"40 (victim) S " + b" ".join(b"?" for _ in range(49)) + b"\n",
}


@needs_c
def test_garbage_stat_is_skipped_and_counted(tmp_path):
    fake = _many(tmp_path, {pid: {"files": {"stat": data}} for pid, data in GARBAGE_STAT.items()})
    snap = collect(fake)
    assert sorted(by_pid(snap)) == [1]
    assert meta(snap)["processes_gone"] == 4
    assert [r["pid"] for r in rows(snap, "threads")] == [1]


# Regression: a status without a usable Uid: line used to raise KeyError /
# IndexError out of Collector.snapshot() (status_ids indexed st[key] directly).
GARBAGE_STATUS = {10: b"", 20: b"Name:\tvictim\nState:\tS (sleeping)\n", 30: b"Uid:\t0\nGid:\t0\n"}


@needs_c
def test_garbage_status_is_skipped_and_counted(tmp_path):
    fake = _many(tmp_path, {pid: {"files": {"status": data}} for pid, data in GARBAGE_STATUS.items()})
    snap = collect(fake)
    assert sorted(by_pid(snap)) == [1]
    assert meta(snap)["processes_gone"] == 3


@needs_c
def test_thread_vanishing_is_counted(tmp_path):
    fake = _one(tmp_path)
    snap = collect(FaultyProcFS(fake.root, gone=[(7, "task", 8, "stat")]))
    assert sorted(by_pid(snap)) == [1, 7]
    assert sorted((r["pid"], r["tid"]) for r in rows(snap, "threads")) == [(1, 1), (7, 7)]
    m = meta(snap)
    assert (m["threads_seen"], m["threads_gone"], m["threads_denied"]) == (2, 1, 0)
    assert m["processes_gone"] == 0


@needs_c
def test_thread_garbage_stat_is_counted_as_gone(tmp_path):
    fake = _one(tmp_path)
    fake.write("7/task/8/stat", b"8 (vict")
    snap = collect(fake)
    assert sorted((r["pid"], r["tid"]) for r in rows(snap, "threads")) == [(1, 1), (7, 7)]
    assert meta(snap)["threads_gone"] == 1


@needs_c
def test_thread_denied_is_counted(tmp_path):
    fake = _one(tmp_path)
    snap = collect(FaultyProcFS(fake.root, deny=[(7, "task", 8, "status")]))
    assert sorted((r["pid"], r["tid"]) for r in rows(snap, "threads")) == [(1, 1), (7, 7)]
    m = meta(snap)
    assert (m["threads_seen"], m["threads_gone"], m["threads_denied"]) == (2, 0, 1)
    assert m["processes_denied"] == 0


@needs_c
def test_fully_denied_process_has_no_row_but_is_counted(tmp_path):
    fake = _one(tmp_path)
    snap = collect(FaultyProcFS(fake.root, deny=[(7, "stat")]))
    assert sorted(by_pid(snap)) == [1]
    m = meta(snap)
    assert (m["processes_denied"], m["processes_gone"]) == (1, 0)


# pid: (label in `denied`, path refused, a column that must be NULL)
DENIED_ONE = {
    10: ("cmdline", "cmdline", "cmdline"),
    20: ("io", "io", "rchar"),
    30: ("fd", "fd", "num_fds"),
    40: ("limits", "limits", "fd_limit"),
    50: ("cgroup", "cgroup", "cgroup"),
    60: ("exe", "exe", "exe"),
}


@needs_c
def test_each_denied_source_is_named(tmp_path):
    fake = _many(tmp_path, {pid: {} for pid in DENIED_ONE})
    snap = collect(FaultyProcFS(fake.root, deny=[(pid, path) for pid, (_, path, _) in DENIED_ONE.items()]))
    got = by_pid(snap)
    assert sorted(got) == [1, *DENIED_ONE]
    for pid, (label, _, col) in DENIED_ONE.items():
        assert got[pid]["denied"] == label, pid
        assert got[pid][col] is None, pid
        others = {"cmdline": "victim", "rchar": 8379, "num_fds": 3, "fd_limit": 1024,
                  "cgroup": "0::/user.slice/user-0.slice/session-1.scope", "exe": "/usr/bin/victim"}
        del others[col]
        assert {k: got[pid][k] for k in others} == others, pid
    assert got[1]["denied"] is None
    assert meta(snap)["processes_denied"] == len(DENIED_ONE)


# pid: (cmdline bytes, text, raw)
CMDLINES = {
    10: (b"/bin/sleep\x00100\x00", "/bin/sleep 100", None),
    20: (b"a\0\0b\0", "a  b", b"a\0\0b\0"),                                   # empty argument
    30: (b"/bin/ls\0my file\0", "/bin/ls my file", b"/bin/ls\0my file\0"),      # space in an argument
    40: (b"/bin/cat\0caf\xe9\0", "/bin/cat caf\\xe9", b"/bin/cat\0caf\xe9\0"),  # not UTF-8
    50: (b"nginx: worker process", "nginx: worker process", b"nginx: worker process"),
}


@needs_c
def test_cmdline_raw_only_when_text_is_lossy(tmp_path):
    got = by_pid(collect(_many(tmp_path, {pid: {"cmdline": c} for pid, (c, _, _) in CMDLINES.items()})))
    for pid, (_, text, raw) in CMDLINES.items():
        assert (got[pid]["cmdline"], got[pid]["cmdline_raw"]) == (text, raw), pid


TTYS = {10: (0, None), 20: (34816, "pts/0"), 30: (_encode_dev(136, 300), "pts/300"),
        40: (1025, "tty1"), 50: (1088, "ttyS0")}


@needs_c
def test_collector_tty(tmp_path):
    got = by_pid(collect(_many(tmp_path, {pid: {"tty_nr": n} for pid, (n, _) in TTYS.items()})))
    assert {pid: got[pid]["tty"] for pid in TTYS} == {pid: name for pid, (_, name) in TTYS.items()}


# -- host tables ------------------------------------------------------------


@needs_c
def test_collector_system_row(world):
    _, _, snap = world
    (r,) = rows(snap, "system")
    r.pop("snapshot_id"), r.pop("ts")
    kb = lambda k: MEMINFO_KB[k] * 1024  # noqa: E731
    expected = {
        "boot_time": dt.datetime.fromtimestamp(BTIME, UTC), "uptime_s": 1638.12, "ncpus": 2,
        **{f"cpu_{m}": CPU_TOTAL[i] / CLK_TCK for i, m in enumerate(CPU_MODES)},
        "ctxt": 222389, "intr": 126136, "forks": 3629, "procs_running": 4, "procs_blocked": 1,
        "load1": 0.07, "load5": 0.05, "load15": 0.01, "tasks_total": 84, "last_pid": 3629,
        "mem_total": kb("MemTotal"), "mem_free": kb("MemFree"), "mem_available": kb("MemAvailable"),
        "buffers": kb("Buffers"), "cached": kb("Cached"), "shmem": kb("Shmem"),
        "slab_reclaimable": kb("SReclaimable"), "slab_unreclaimable": kb("SUnreclaim"),
        "dirty": kb("Dirty"), "writeback": kb("Writeback"), "committed_as": kb("Committed_AS"),
        "swap_total": kb("SwapTotal"), "swap_free": kb("SwapFree"), "swap_cached": kb("SwapCached"),
        "pgfault": 3303520, "pgmajfault": 1754, "pswpin": 17, "pswpout": 23, "oom_kill": 2,
        "file_handles": 379, "file_max": 2466186,
        "psi_cpu_some_avg10": 1.51, "psi_cpu_some_total": 5147597,
        "psi_cpu_full_avg10": 0.0, "psi_cpu_full_total": 0,
        "psi_memory_some_avg10": 0.0, "psi_memory_some_total": 2289703,
        "psi_memory_full_avg10": 0.2, "psi_memory_full_total": 2144563,
        "psi_io_some_avg10": 3.25, "psi_io_some_total": 987654,
        "psi_io_full_avg10": 2.75, "psi_io_full_total": 876543,
        # the fake host has no /proc/net/snmp, netstat or snmp6: the stack counters are NULL
        **{c[0]: None for c in NET_COUNTERS},
    }
    assert r == expected
    assert r["mem_total"] == 24684092 * 1024
    if CLK_TCK == 100:
        assert (r["cpu_user"], r["cpu_idle"], r["cpu_steal"]) == (48.75, 3190.71, 7.15)


@needs_c
def test_collector_disks_and_nics(world):
    _, _, snap = world
    disks = rows(snap, "disks")
    for d in disks:
        d.pop("snapshot_id"), d.pop("ts")
    assert disks == DISK_ROWS
    nics = rows(snap, "nics")
    for n in nics:
        n.pop("snapshot_id"), n.pop("ts")
    assert nics == NIC_ROWS


@needs_c
def test_collector_without_optional_host_files(tmp_path):
    fake = FakeProc(tmp_path / "proc", host=False)
    fake.write_host(boot_id=None, pressure=False)
    for rel in ("uptime", "vmstat", "sys/fs/file-nr", "diskstats", "net/dev"):
        fake.remove(rel)
    fake.add_process(1, b"init", ppid=0)
    snap = collect(fake)
    (r,) = rows(snap, "system")
    for col in ("uptime_s", "pgfault", "oom_kill", "file_handles", "file_max",
                "psi_cpu_some_avg10", "psi_io_full_total"):
        assert r[col] is None, col
    assert r["mem_total"] == MEMINFO_KB["MemTotal"] * 1024
    assert snap.tables["disks"].num_rows == 0
    assert snap.tables["nics"].num_rows == 0
    assert meta(snap)["boot_id"] is None
    assert by_pid(snap)[1]["boot_id"] is None


@needs_c
def test_snapshot_returns_each_tables_status(world):
    """Collector.snapshot() says how each table went, as the snapshots row records it."""
    _, _, snap = world
    m = meta(snap)
    assert set(snap.status) == set(COVERED)
    for name, st in snap.status.items():
        assert st.rows == snap.tables[name].num_rows
        assert st.ms == m[f"ms_{name}"] and st.ms >= 0
        if name in ("processes", "threads"):
            assert (st.rows, st.gone, st.denied) == (m[f"{name}_seen"], m[f"{name}_gone"], m[f"{name}_denied"])
        else:
            assert st.gone is None and st.denied is None
    assert snap.status["processes"].gone >= 1  # the tree's garbage and short-lived processes
    assert m["reader"] == "C"


@needs_c
def test_snapshot_identity(world):
    _, _, snap = world
    assert snap.host == "fakehost"
    for name, t in snap.tables.items():
        if t.num_rows:
            assert set(t.column("snapshot_id").to_pylist()) == {snap.snapshot_id}, name
            assert set(t.column("ts").to_pylist()) == {snap.ts}, name
    assert snap.ts == dt.datetime.fromtimestamp(snap.snapshot_id / 1_000_000, UTC)


# ==========================================================================
# 4. Every table matches its declared schema


@needs_c
def test_every_table_matches_its_schema(world):
    _, _, snap = world
    assert set(snap.tables) == set(COVERED) | {"snapshots"}
    for name, t in snap.tables.items():
        assert t.schema == TABLES[name].arrow_schema(), name
        assert t.num_rows > 0, name


@needs_c
def test_default_tables_match_schema(tmp_path):
    fake = _one(tmp_path)
    snap = Collector(procfs=ProcFS(str(fake.root)), host="fakehost").snapshot()
    assert set(snap.tables) == set(COLLECTED) | {"snapshots"}
    for name, t in snap.tables.items():
        assert t.schema == TABLES[name].arrow_schema(), name


@needs_c
def test_never_null_columns_hold_no_nulls(world):
    _, _, snap = world
    for name, t in snap.tables.items():
        for col in TABLES[name].stored_columns:
            if "never NULL" in col.description:
                assert t.column(col.name).null_count == 0, f"{name}.{col.name}"


@needs_c
def test_subset_of_tables_matches_schema(tmp_path):
    snap = collect(_one(tmp_path), tables=("system", "processes"))
    assert set(snap.tables) == {"system", "processes", "snapshots"}
    for name, t in snap.tables.items():
        assert t.schema == TABLES[name].arrow_schema(), name
    assert sorted(by_pid(snap)) == [1, 7]


# Regression: _collect_processes used to set ms_threads, threads_gone,
# threads_denied and ms_open_files to 0 even when those tables were not asked for.
@needs_c
def test_uncollected_tables_leave_their_snapshot_columns_null(tmp_path):
    m = meta(collect(_one(tmp_path), tables=("system", "processes")))
    assert m["threads_seen"] is None and m["open_files_seen"] is None
    assert m["ms_threads"] is None
    assert m["threads_gone"] is None
    assert m["threads_denied"] is None
    assert m["ms_open_files"] is None


@needs_c
@pytest.mark.live
def test_fd_count_lists_a_fake_tree_and_stats_the_real_one(tmp_path):
    """A snapshot without descriptors counts them with one stat where the kernel gives the count
    as the fd folder's size (Linux 6.2+); a tree that is not procfs is listed."""
    import subprocess
    import sys
    fake = FakeProc(tmp_path / "proc")
    fake.add_process(pid=7, fds=5)
    fs = ProcFS(str(fake.root))
    assert fs.fd_count(7) == 5 and fs._fd_size is False
    child = subprocess.Popen([sys.executable, "-c", "import os, sys, time; [os.open('/dev/null', 0) for _ in range(40)];"
                              " print(flush=True); time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()
        real = ProcFS()
        assert real.fd_count(child.pid) == len(os.listdir(f"/proc/{child.pid}/fd")) >= 43
        snap = Collector(tables=("system", "processes")).snapshot()
        rows = snap.tables["processes"].to_pylist()
        assert next(r["num_fds"] for r in rows if r["pid"] == child.pid) == real.fd_count(child.pid)
    finally:
        child.kill()
        child.wait()

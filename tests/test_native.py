"""The C loops (recorder/source/_native.c) against the Python loops they replace.

Both must give the same rows from the same /proc: on a fake tree built to hold every odd case
(garbage stat lines, undecodable names, dangling links, every descriptor kind, denied and missing
files), on live processes with known descriptors and threads, and on generated input. That the
rows are also right is tests/test_vs_lsof.py's and tests/test_vs_ps.py's job: they run the
default collector, which is the C one wherever it was built.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.source import native as N
from recorder.collect import sockets as S
from recorder.source import procfs as P
from recorder.collect.collector import Collector
from recorder.source.procfs import ProcFS
from tests.conftest import skip_unless_c_builds
from tests.support.fakeproc import FakeProc

HERE = Path(__file__).resolve().parent


def test_native_module_is_built_where_it_can_be():
    """A host with a C compiler and Python's headers gets the C loops: a build that fails there
    must not pass unnoticed as the slower fallback."""
    skip_unless_c_builds("the Python loops")
    assert N.native is not None, "recorder/source/_native.c was not built or does not import (pip install -e . shows why)"
    assert N.describe() == "C"
    assert Collector().native is N.native


needs_c = pytest.mark.skipif(N.native is None, reason="the C module is not built here")


def both(fs_root: str, tables, pids=None, fast: bool = True):
    """The same snapshot taken with the C loops and with the Python loops, as lists of rows: the
    descriptors' Python loops, and each process read file by file (each file parsed by the C
    parsers). FAST False: the first without the C process() either."""
    out = []
    for use_c in (True, False):
        c = Collector(procfs=ProcFS(fs_root), host="h", tables=tables)
        if not use_c:
            c.native = None
            c.processes.one_call = c.threads.one_call = False
        else:
            assert c.native is not None and c.processes.one_call
            c.processes.one_call = fast
        snap = c.snapshot()
        got = {}
        for name, t in snap.tables.items():
            rows = t.to_pylist()
            for r in rows:
                r.pop("snapshot_id", None), r.pop("ts", None)
                for k in [k for k in r if k.startswith("ms_") or k in ("duration_ms", "cpu_ms", "recorder_rss")]:
                    r.pop(k)
            if pids is not None and name != "snapshots":
                rows = [r for r in rows if r.get("pid") in pids]
            got[name] = rows
        out.append(got)
    return out


def assert_fallback_files(c_files: list[dict], py_files: list[dict]) -> None:
    """The open_files rows without C equal C's row by row, but for what C alone reads from fdinfo
    and maps: a device's offset is NULL without C; a regular file's offset and mode come from
    psutil, and where psutil does not list the file (or cannot read the process) the offset is
    NULL and the mode the link's; a mapped file whose /proc/PID/map_files entry does not stat has
    a NULL device and inode (its size is NULL with C too)."""
    assert len(c_files) == len(py_files)
    for a, b in zip(c_files, py_files):
        if b["fd"] in ("mem", "DEL") and b["inode"] is None:
            assert b["device"] is None and b["size"] is None and a["size"] is None, (a, b)
            # and so no mount point either (it is the device's)
            assert b.get("mount_point") is None, (a, b)
            a = {k: v for k, v in a.items() if k not in ("device", "inode", "mount_point")}
            b = {k: v for k, v in b.items() if k not in ("device", "inode", "mount_point")}
        assert {k: v for k, v in a.items() if k not in ("pos", "mode")} == \
            {k: v for k, v in b.items() if k not in ("pos", "mode")}
        if b["type"] in ("CHR", "BLK"):
            assert b["pos"] is None and b["mode"] == a["mode"], (a, b)
        elif b["type"] == "REG" and b["pos"] is None:
            pass  # not listed by psutil: the link's mode
        else:
            assert (b["pos"], b["mode"]) == (a["pos"], a["mode"]), (a, b)


# What psutil's connections do not give: NULL in an inet socket's row without the C module.
PSUTIL_INET_NULL = ("rx_queue", "tx_queue", "uid")


def assert_fallback_sockets(c_socks: list[dict], py_socks: list[dict]) -> None:
    """The sockets rows of owned sockets without C equal C's row by row (both in the same order),
    but for what psutil does not give of a TCP or UDP socket: its queues and uid, NULL."""
    assert len(c_socks) == len(py_socks)
    for a, b in zip(c_socks, py_socks):
        if b["family"] in ("IPv4", "IPv6"):
            assert all(b[k] is None for k in PSUTIL_INET_NULL), b
            a = {k: v for k, v in a.items() if k not in PSUTIL_INET_NULL}
            b = {k: v for k, v in b.items() if k not in PSUTIL_INET_NULL}
        assert a == b


# --------------------------------------------------------------------------
# A fake tree


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    base = tmp_path_factory.mktemp("native")
    fake = FakeProc(base / "proc")
    real = base / "files"
    real.mkdir()
    (real / "data.bin").write_bytes(b"z" * 4321)
    odd = os.path.join(os.fsencode(real), b"caf\xe9 name.txt")
    with open(odd, "wb") as f:
        f.write(b"1234567")
    (real / "sub").mkdir()
    os.mkfifo(real / "fifo")
    fake.add_process(1, b"init", ppid=0, fds=4, threads=[1, {"tid": 7, "comm": b"w\xffker", "state": "R",
                                                             "utime": 9, "stime": 3, "processor": 1}])
    fake.add_process(2, b"kthreadd", ppid=0, kthread=True, fds=0)
    fake.add_process(3, b"zomb", "Z", ppid=1, fds=0)
    fake.add_process(4, b"garbage", ppid=1, files={"stat": b"\x00 not a stat line\n"})
    fake.add_process(5, b"badthread", ppid=1, threads=[5, 6])
    fake.write("5/task/6/stat", b"6 (x) S 1 2 3\n")  # too few fields: the thread is gone
    fake.add_process(8, b"nostatus-thread", ppid=1, threads=[8, 9])
    fake.remove("8/task/9/status")
    fake.add_process(10, b"huge", ppid=1, threads=[10], num_threads=2**31)  # out of int32: garbage
    fake.add_process(11, b"noio", ppid=1, omit=("io", "limits", "cgroup", "cmdline"))
    # process() gives None for each of these (the files are read one by one then), and rows
    # for the ordinary ones; test_process_reads_ordinary_processes_only checks which
    fake.add_process(12, b"longcmd", ppid=1, cmdline=b"x" * 70000 + b"\0a b\0\0")  # past the 64 KiB buffer
    fake.add_process(13, b"oddio", ppid=1, files={"io": b"rchar: 12\nwchar: many\n"})
    fake.add_process(14, b"oddcg", ppid=1, cgroup=b"0::/caf\xc3\xa9.slice\n")
    fake.add_process(15, b"unlimited", ppid=1, nofile=(None, None), tty_nr=34817,
                     io={"rchar": 5, "wchar": 6, "syscr": 7, "syscw": 8, "read_bytes": 9, "write_bytes": 10,
                         "cancelled_write_bytes": 11})
    fake.add_process(16, b"nostatus", ppid=1, omit=("status",))
    # descriptors of every kind, and fdinfo for the ones that get it read
    d = fake.add_process(20, b"files", ppid=1, fds=0, threads=[20, 21, 22])
    fd = d / "fd"
    info = d / "fdinfo"
    info.mkdir()
    links = {
        0: b"/dev/null", 1: os.fsencode(real / "data.bin"), 2: os.fsencode(real / "sub"), 3: odd,
        4: b"pipe:[777]", 5: b"socket:[888]", 6: b"anon_inode:[eventfd]", 7: b"anon_inode:[io_uring]",
        8: os.fsencode(real / "gone.tmp") + b" (deleted)", 9: b"/nonexistent/dangling",
        10: os.fsencode(real / "fifo"), 11: b"socket:[notanumber]", 12: b"pipe:[]", 13: b"net:[4026531840]",
        14: os.fsencode(real / "data.bin"), 15: os.fsencode(real / "data.bin"),
    }
    for n, target in links.items():
        os.symlink(target, os.path.join(os.fsencode(fd), str(n).encode()))
    (info / "0").write_bytes(b"pos:\t0\nflags:\t0100002\nmnt_id:\t1\nino:\t5\n")
    (info / "1").write_bytes(b"pos:\t1234\nflags:\t0100000\nmnt_id:\t1\n")
    (info / "3").write_bytes(b"pos:\t7\nflags:\t02100001\n")
    (info / "14").write_bytes(b"pos:\tnot-a-number\nflags:\t02\n")  # unparsable: the link's mode
    (info / "15").write_bytes(b"flags:\t010000000\n")  # O_PATH, no pos
    # fd 10 (the fifo) is not a file, device or block: no fdinfo read
    # maps: a library twice, an anonymous mapping, a deleted file, a file whose map_files entry
    # cannot be stat'ed, a line that is not one. Each mapping's device and inode are its file's,
    # as the kernel writes them; map_files/<range> leads to the file (what a stat there gives).
    (real / "memfd-backing").write_bytes(b"m" * 10)
    (real / "nolink.bin").write_bytes(b"n" * 3)

    def at(name):
        st = os.stat(real / name)
        return b"%02x:%02x %d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)

    lib = os.fsencode(real / "data.bin")
    regions = [
        b"7f00-7f10 r--p 00000000 " + at("data.bin") + b" " + lib,
        b"7f10-7f20 r-xp 00001000 " + at("data.bin") + b" " + lib,
        b"7f20-7f30 rw-p 00000000 00:00 0 ",
        b"7f30-7f40 rw-s 00000000 " + at("memfd-backing") + b"        /memfd:x (deleted)",
        b"7f40-7f50 rw-p 00000000 00:00 0          [heap]",
        b"7f50-7f60 r--p 00000000 " + at("nolink.bin") + b" " + os.fsencode(real / "nolink.bin"),
    ]
    fake.write("20/maps", b"".join(r + b"\n" for r in regions) + b"not a maps line\n")
    # smaps, what psutil reads without the C module: the same regions, each with its counters
    fake.write("20/smaps", b"".join(r + b"\nSize:                 64 kB\nRss:                   4 kB\n" for r in regions))
    (d / "map_files").mkdir()
    for rng, target in (("7f00-7f10", "data.bin"), ("7f10-7f20", "data.bin"), ("7f30-7f40", "memfd-backing")):
        os.symlink(real / target, d / "map_files" / rng)
    return fake


@needs_c
@pytest.mark.parametrize("fast", [True, False], ids=["process", "file-by-file"])
def test_fake_tree_same_rows(fake, fast):
    tree = fake
    c_rows, py_rows = both(str(tree.root), ("processes", "threads", "open_files", "sockets", "system"), fast=fast)
    for name in py_rows:
        if name == "open_files":
            assert_fallback_files(c_rows[name], py_rows[name])
        else:
            assert c_rows[name] == py_rows[name], name
    files = [r for r in c_rows["open_files"] if r["pid"] == 20]
    # a fake tree's pipe:[…], anon_inode:… and dangling links do not stat: those count as gone
    assert {r["fd"] for r in files if r["fd"].isdigit()} == {"0", "1", "2", "3", "5", "10", "14", "15"}
    assert {r["type"] for r in files} >= {"CHR", "REG", "DIR", "FIFO", "sock"}
    assert any(r["name_raw"] for r in files)  # the undecodable name kept its bytes
    by_fd = {r["fd"]: r for r in files}
    assert by_fd["1"]["pos"] == 1234 and by_fd["1"]["mode"] == "r"
    assert by_fd["15"]["mode"] is None
    assert sorted(r["tid"] for r in c_rows["threads"] if r["pid"] == 1) == [1, 7]
    assert [r["tid"] for r in c_rows["threads"] if r["pid"] == 5] == [5]
    (m,) = c_rows["snapshots"]
    assert m["threads_gone"] >= 2 and m["processes_gone"] >= 2
    mem = sorted(r["name"] for r in files if r["fd"] in ("mem", "DEL"))
    assert len(mem) == 3  # the library once, the deleted memfd once, the file map_files does not lead to
    assert {r["name"]: r["fd"] for r in files if r["fd"] in ("mem", "DEL")}["/memfd:x"] == "DEL"


@needs_c
def test_process_reads_ordinary_processes_only(fake):
    """process() reads a whole process in one call, or gives None for anything unusual (the
    collector then reads that process file by file): ordinary processes must take the one call, or
    the rows above would be the file-by-file path's twice."""
    root = str(fake.root)
    got = {pid: N.native.process(f"{root}/{pid}", pid, False, False, False)
           for pid in (1, 2, 3, 4, 11, 12, 13, 14, 15, 16)}
    assert {pid for pid, v in got.items() if v is None} == {4, 11, 13, 16}
    for v in got.values():
        assert v is None or type(v) is N.native.Process
    init, kthread, zombie, long_cmd, oddcg, unlimited = got[1], got[2], got[3], got[12], got[14], got[15]
    st = init.stat
    assert (st.ppid, st.pgid, st.sid, st.comm, st.state) == (0, 1, 1, b"init", "S") and init.exe == b"/usr/bin/init"
    assert init.cmdline == b"init\0" and init.num_fds == 4 and init.fd_names is None  # counted by listing
    assert b"Max open files" in init.limits and init.fd_limit is None  # no prlimit: the limits file's bytes
    assert P.parse_limits_nofile(init.limits) == (1024, 524288)
    assert kthread.exe is None and zombie.exe is None  # no exe link read for either
    assert kthread.stat.flags & P.PF_KTHREAD and zombie.stat.state == "Z"
    assert long_cmd.cmdline == b"x" * 70000 + b"\0a b\0\0"
    assert oddcg.cgroup == "0::/caf\u00e9.slice"
    assert tuple(unlimited.io) == (5, 6, 7, 8, 9, 10, 11) and unlimited.stat.tty_nr == 34817
    assert P.parse_limits_nofile(unlimited.limits) == (None, None)
    names = N.native.process(f"{root}/20", 20, True, False, False).fd_names  # as listdir gives them
    assert sorted(names, key=int) == sorted(os.listdir(f"{root}/20/fd"), key=int)
    assert N.native.process(f"{root}/999", 999, False, False, False) is None  # no such process


@needs_c
@pytest.mark.live
def test_process_on_a_live_process(live):
    """prlimit and count_by_size on the live /proc: the descriptor limit by prlimit(2) and the count
    from the fd folder's size, against what resource and a listing say."""
    import resource
    pid = min(live)
    fs = ProcFS()
    v = N.native.process(f"/proc/{pid}", pid, False, True, fs.stat_counts_fds())
    assert v is not None
    assert (v.fd_limit, v.fd_limit_hard) == tuple(None if x == resource.RLIM_INFINITY else x
                                                  for x in resource.prlimit(pid, resource.RLIMIT_NOFILE))
    assert v.limits is None
    assert v.num_fds == len(os.listdir(f"/proc/{pid}/fd"))
    assert v.exe == os.readlink(f"/proc/{pid}/exe").encode()
    assert v.cmdline == Path(f"/proc/{pid}/cmdline").read_bytes()
    assert v.cgroup == N.native.parse_cgroup(Path(f"/proc/{pid}/cgroup").read_bytes())
    assert v.stat.pid == pid and v.status.euid == os.stat(f"/proc/{pid}").st_uid
    # the calling process is read file by file: the descriptors the call holds would be among its own
    assert N.native.process(f"/proc/{os.getpid()}", os.getpid(), False, True, False) is None
    # no reference is lost or kept: the result's slots start as None and are replaced (on a Python
    # whose None is immortal the count does not move whatever happens)
    before = sys.getrefcount(None)
    for _ in range(1000):
        v = N.native.process(f"/proc/{pid}", pid, False, True, False)
    del v
    assert abs(sys.getrefcount(None) - before) < 50


# --------------------------------------------------------------------------
# Live processes


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nativelive")
    wl = subprocess.Popen([sys.executable, str(HERE / "support" / "fdworkload.py"), str(tmp)], stdout=subprocess.PIPE, text=True)
    th = subprocess.Popen([sys.executable, "-c", (
        "import threading, time, sys\n"
        "ev = threading.Event()\n"
        "ts = [threading.Thread(target=ev.wait, daemon=True) for _ in range(5)]\n"
        "[t.start() for t in ts]\n"
        "print('ready', flush=True)\n"
        "time.sleep(3600)\n")], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(wl.stdout.readline())
        assert th.stdout.readline().strip() == "ready"
        yield {info["pid"], th.pid}
    finally:
        for p in (wl, th):
            p.kill()
            p.wait()


VOLATILE = {"utime", "stime", "ctxsw_voluntary", "ctxsw_involuntary", "processor", "state", "minflt", "majflt",
            "rss", "vms", "shared", "rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes",
            "cancelled_write_bytes", "num_fds", "denied"}


@needs_c
@pytest.mark.parametrize("fast", [True, False], ids=["process", "file-by-file"])
@pytest.mark.live
def test_live_processes_same_rows(live, fast):
    c_rows, py_rows = both("/proc", ("processes", "threads", "open_files", "sockets"), pids=live, fast=fast)
    for name in ("processes", "threads", "open_files"):
        # the workloads hold their descriptors still: their count must agree too
        a = [{k: v for k, v in r.items() if k not in VOLATILE - {"num_fds"}} for r in c_rows[name]]
        b = [{k: v for k, v in r.items() if k not in VOLATILE - {"num_fds"}} for r in py_rows[name]]
        if name == "open_files":
            assert a
            assert_fallback_files(a, b)
            # psutil gave the regular files' offsets
            assert any(r["pos"] is not None for r in b if r["type"] == "REG" and r["fd"].isdigit())
        else:
            assert a and a == b, name
    assert len(c_rows["threads"]) >= 6 + 1
    kinds = {r["type"] for r in c_rows["open_files"]}
    assert {"REG", "DIR", "FIFO", "IPv4", "IPv6", "unix", "CHR"} <= kinds
    key = lambda r: (r["inode"], r["pid"], r["fd"])  # noqa: E731
    assert_fallback_sockets(sorted(c_rows["sockets"], key=key), sorted(py_rows["sockets"], key=key))
    assert any(r["family"] in ("IPv4", "IPv6") for r in py_rows["sockets"])  # psutil gave them


# --------------------------------------------------------------------------
# Generated input


# Kernel-written maps lines, from their values: (line, its entry or None when it maps no file)
_map_line = st.builds(
    lambda a, perms, off, ma, mi, ino, pad, path: (
        f"{a:x}-{a + 15:x} {perms} {off:08x} {ma:02x}:{mi:02x} {ino}{' ' * pad}".encode() + path,
        (f"{a:x}-{a + 15:x}", f"{ma},{mi}", ino, path) if ino and path[:1] == b"/" else None),
    st.integers(0, 2**40), st.sampled_from(["r--p", "r-xp", "rw-s"]), st.integers(0, 2**32), st.integers(0, 0xFFF),
    st.integers(0, 0xFFFFF), st.sampled_from([0, 0, 7, 12345, 2**40]), st.integers(1, 40),
    st.one_of(st.just(b"/lib/a.so"), st.just(b"/lib/b.so"), st.just(b"[heap]"), st.just(b""),
              st.just(b"/memfd:x (deleted)"), st.binary(max_size=12).map(lambda b: b"/" + b.replace(b"\n", b""))),
)
# Lines the kernel does not write (no '/' in them, so no path): skipped
_not_a_map_line = st.binary(max_size=40).map(lambda b: (b.replace(b"\n", b" ").replace(b"/", b"."), None))


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_map_line, _not_a_map_line), max_size=12), st.booleans())
def test_maps_distinct_reads_the_kernel_format(lines, trailing_newline):
    """C's maps_distinct (maps_rows' parser: the one parser of the maps text) gives, of lines in
    the kernel's format, each mapped file's range, device, inode and path, the first mapping of
    each (device, inode) only; it skips anonymous mappings and lines the kernel does not write."""
    data = b"\n".join(line for line, _ in lines) + (b"\n" if trailing_newline else b"")
    want, seen = [], set()
    for _, e in lines:
        if e is not None and (e[1], e[2]) not in seen:
            seen.add((e[1], e[2]))
            want.append(e)
    assert N.native.maps_distinct(data) == want


_stat_tail = st.lists(st.integers(-(2**63), 2**63 - 1), min_size=15, max_size=50)


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    comm=st.binary(max_size=20),
    state=st.sampled_from([b"S", b"R", b"Z", b"\xff", b""]),
    tail=_stat_tail,
    starttime=st.one_of(st.integers(0, 2**40 + 5), st.integers(-5, 5)),
    status=st.one_of(
        st.builds(lambda v, n: f"Name:\tx\nvoluntary_ctxt_switches:\t{v}\nnonvoluntary_ctxt_switches:\t{n}\n".encode(),
                  st.one_of(st.integers(0, 2**64), st.just("x1")), st.integers(0, 2**63 + 5)),
        st.binary(max_size=60),
    ),
)
def test_thread_rows_match_python(tmp_path_factory, comm, state, tail, starttime, status):
    """Thread stat and status content of any shape: thread_rows keeps or drops a thread, and
    reads its fields, as the file-by-file path (the C parsers of the bytes ProcFS reads) does."""
    root = tmp_path_factory.mktemp("t")
    tree = FakeProc(root / "proc")
    tree.add_process(50, b"p", ppid=1, threads=[50])
    fields = [str(v).encode() for v in tail]
    if len(fields) > 16:
        fields[16] = str(starttime).encode()
    data = b"51 (" + comm + b") " + state + b" " + b" ".join(fields) + b"\n"
    tree.write("50/task/51/stat", data)
    tree.write("50/task/51/status", status)
    got = []
    for use_c in (True, False):
        c = Collector(procfs=ProcFS(str(tree.root)), host="h", tables=("processes", "threads"))
        c.threads.one_call = use_c
        got.append(c.threads.read(50, P.parse_proc_stat(c.fs.read("stat"))["btime"]))
    assert got[0] == got[1]


def test_python_loops_forced(monkeypatch):
    """PROCSNAP_NATIVE=0 gives the Python loops, =1 insists on the C ones."""
    monkeypatch.setenv("PROCSNAP_NATIVE", "0")
    assert N.load() is None
    monkeypatch.setenv("PROCSNAP_NATIVE", "1")
    import importlib.util
    if importlib.util.find_spec("recorder.source._native") is not None:  # built (whatever this run asked)
        assert N.load() is not None
    else:
        with pytest.raises(ImportError):
            N.load()


TCP_NAMES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
             7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV"}


def _kernel_addr(raw: bytes, port: int) -> str:
    """ADDR:PORT as /proc/net/tcp* prints them: each 32-bit word of the address in host order
    (little-endian here), upper-case hex."""
    return "".join(raw[i:i + 4][::-1].hex().upper() for i in range(0, len(raw), 4)) + f":{port:04X}"


def _lsof_end(addr: str, port: int) -> str:
    return ("*" if addr in ("0.0.0.0", "::") else f"[{addr}]" if ":" in addr else addr) + f":{port}"


@st.composite
def _inet_socket(draw, v6: bool, proto: str):
    """(a line of /proc/net/{tcp,udp,udplite,raw}[6], the record inet_records must make of it)."""
    import socket
    n = 16 if v6 else 4
    addr = st.one_of(st.binary(min_size=n, max_size=n), st.just(bytes(n)),
                     st.just(bytes(n - 1) + b"\1" if v6 else b"\x7f\0\0\1"))
    la, ra = draw(addr), draw(addr)
    lp, rp = draw(st.sampled_from([0, 80, 8080])), draw(st.one_of(st.just(0), st.integers(1, 65535)))
    stt, tx, rx = draw(st.integers(0, 20)), draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
    uid, ino, i = draw(st.integers(0, 2**31)), draw(st.integers(0, 2**31)), draw(st.integers(0, 9999))
    kaddr = draw(st.text("0123456789abcdef", min_size=16, max_size=16))
    lt, rt = _kernel_addr(la, lp), _kernel_addr(ra, rp)
    line = (f"{i:4d}: {lt} {rt} {stt:02X} {tx:08X}:{rx:08X} 00:00000000 00000000 {uid:5d} 0 {ino} 1 {kaddr}"
            " 100 0 0 10 0").encode()
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    la_s, ra_s = socket.inet_ntop(fam, la), socket.inet_ntop(fam, ra)
    tcp, raw = proto == "TCP", proto == "RAW"
    state = TCP_NAMES.get(stt, str(stt)) if tcp else ("ESTABLISHED" if stt == 1 else "UNCONN")
    if raw:
        name = f"{lt}->{rt} st={stt:02X}"
    else:
        name = _lsof_end(la_s, lp)
        if rp or ra_s not in ("0.0.0.0", "::"):
            name += "->" + _lsof_end(ra_s, rp)
        if tcp:
            name += f" ({state})"
    family = "IPv6" if v6 else "IPv4"
    typ = ("raw6" if v6 else "raw") if raw else family
    sock_type = "STREAM" if tcp else "RAW" if raw else "DGRAM"
    return line, ((typ, None if raw else str(ino), proto, name, None),
                  (ino, None, family, proto, sock_type, la_s, lp, ra_s, rp, state, rx, tx, uid, None, None))


_garbage = st.binary(max_size=60).map(lambda b: (b.replace(b"\n", b" "), None))


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.sampled_from(["TCP", "UDP", "RAW", "UDPLITE"]), st.data())
def test_inet_records_read_the_kernel_format(v6, proto, data):
    """C's inet_records (the one parser of /proc/net/{tcp,udp,udplite,raw}[6]) gives, of each
    line in the kernel's format, lsof's resolution and the sockets row made of its values
    (unspecified and repeated addresses too: lsof's "*" and the shared address strings); it skips
    lines with too few fields."""
    lines = data.draw(st.lists(st.one_of(_inet_socket(v6, proto), _garbage.filter(lambda g: len(g[0].split()) < 10)),
                               max_size=8))
    ns = data.draw(st.one_of(st.none(), st.integers(1, 2**32)))
    text = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    text += b"\n".join(line for line, _ in lines) + b"\n"
    want = [(rec[0], (rec[1][0], ns, *rec[1][2:])) for _, rec in lines if rec is not None]
    assert N.native.inet_records(text, proto, v6, ns) == want


@needs_c
def test_descriptor_rows_in_chunks_keep_their_order(fake, monkeypatch):
    """A snapshot moves descriptor rows into Arrow columns every FILE_CHUNK rows (socket rows wait
    for the socket tables, and come last): the table holds the same rows, the others in the order
    they were read, whatever the chunk size, with the C loops or the Python ones."""
    import recorder.collect.descriptors as C
    tables = {}
    for chunk in (1, 5, 10**9):
        monkeypatch.setattr(C, "FILE_CHUNK", chunk)
        for use_c in (True, False):
            c = Collector(procfs=ProcFS(str(fake.root)), host="h", tables=("processes", "open_files", "sockets"))
            if not use_c:
                c.native = None
            snap = c.snapshot()
            files, sockets = [snap.tables[t].drop_columns(["snapshot_id", "ts"]).to_pylist()
                              for t in ("open_files", "sockets")]
            is_sock = [r["type"] == "sock" or r["proto"] is not None for r in files]
            assert is_sock == sorted(is_sock)  # socket rows last
            tables[chunk, use_c] = [files, sockets]
    first = tables[10**9, False]
    assert any(r["type"] == "sock" for r in first[0]) and len(first[0]) > 20
    for k, v in tables.items():
        assert v == tables[10**9, k[1]], k
    assert_fallback_files(tables[10**9, True][0], first[0])
    assert tables[10**9, True][1] == first[1]


@needs_c
def test_the_c_descriptor_columns_are_the_python_loops_columns(fake):
    """The open_files table built from the C module's column buffers (Files) has the schema and,
    column by column, the values of the one built from the Python loops' rows (mount points by
    device, and by path for a device file, included)."""
    dev = os.stat(fake.root).st_dev
    fake.write("self/mountinfo", f"21 1 {os.major(dev)}:{os.minor(dev)} / / rw - ext4 /dev/x rw\n"
                                 f"22 21 0:5 / /dev rw - devtmpfs udev rw\n".encode())
    tables = []
    try:
        for use_c in (True, False):
            c = Collector(procfs=ProcFS(str(fake.root)), host="h", tables=("processes", "open_files", "sockets"))
            if not use_c:
                c.native = None
            tables.append(c.snapshot().tables["open_files"].drop_columns(["snapshot_id", "ts"]))
    finally:
        os.unlink(fake.root / "self" / "mountinfo")
    got, want = tables
    assert got.schema == want.schema
    assert got.num_rows == want.num_rows > 20
    # row by row, but for what only C reads from fdinfo and maps (assert_fallback_files)
    assert_fallback_files(got.to_pylist(), want.to_pylist())
    mounts = set(got.column("mount_point").to_pylist())
    assert {"/", "/dev"} <= mounts  # a file's device, and /dev/null's path


@needs_c
def test_live_descriptor_rows_whatever_the_chunk(fake, monkeypatch):
    """A live command's rows (FileRows.rows, tuples) are the same whether the C module's Files is
    turned into tuples every process or once at the end, and the fallback's rows, in their order
    (but for what only C reads: assert_fallback_files)."""
    import recorder.collect.descriptors as D
    got = {}
    for chunk in (1, 10**9):
        monkeypatch.setattr(D, "FILE_CHUNK", chunk)
        for use_c in (True, False):
            c = Collector(procfs=ProcFS(str(fake.root)), host="h", tables=("processes", "open_files", "sockets"))
            if not use_c:
                c.native = None
            got[chunk, use_c] = c.live_files()[1].rows
    for use_c in (True, False):
        want = got[10**9, use_c]
        assert len(want) > 20 and got[1, use_c] == want
    assert_fallback_files([dict(zip(D.FIELDS, r)) for r in got[10**9, True]],
                          [dict(zip(D.FIELDS, r)) for r in got[10**9, False]])


@needs_c
def test_a_vanished_process_takes_back_only_its_own_rows():
    """FileRows.drop(pid) with the C module's Files: the rows since that process began go, the
    earlier processes' rows stay."""
    import recorder.collect.descriptors as D
    files = D.FileRows()
    files.use_native(N.native)
    for pid in (1, 2):
        files.add_unknown((pid, None), "txt", f"/proc/{pid}/exe")
        files.add_pipe((pid, None), "3", 3, "r", 12, 99)
    files.drop(2)
    files.drop(1)  # not the process being read: nothing goes
    files.add_unknown((3, None), "txt", "/proc/3/exe")
    files.merge_sockets()
    assert [(r[0], r[2], r[5]) for r in files.rows] == [(1, "txt", "unknown"), (1, "3", "FIFO"), (3, "txt", "unknown")]
    assert files.rows[1] == (1, None, "3", 3, "r", "FIFO", "0,12", None, 0, 99, None, "pipe", None, False)


@needs_c
def test_kept_mem_rows_survive_the_pruning_of_their_table(monkeypatch):
    """With the C module a MapsCache keeps each distinct mapped file's row once, in its table, and
    a process's mem rows as indexes into it: rows no kept process uses are let go, and the kept
    processes' rows stay what they were."""
    import recorder.collect.descriptors as D
    monkeypatch.setattr(D, "FILE_CHUNK", 0)  # prune as soon as unused rows are most of the table
    inode = {b"a.so": 11, b"b.so": 12, b"c.so": 13, b"d.so": 14, b"e.so": 15, b"f.so": 16, b"g.so": 17}

    def text(names):
        return b"".join(b"7f%02x-7f%02xf r--p 00000000 fe:00 %d /lib/%s\n" % (i, i, inode[n], n)
                        for i, n in enumerate(names))

    maps = D.MapsCache()
    table = maps.native_table(N.native)
    for pid, names in {1: [b"a.so", b"b.so"], 2: [b"c.so", b"d.so", b"f.so", b"g.so"], 3: [b"a.so", b"e.so"]}.items():
        maps.rows[pid, None] = (0.0, N.native.maps_rows(table, maps.index, text(names), None, maps.sizes,
                                                        "/nonexistent"))
    assert len(table) == 7  # a.so once

    def rows_of(pid):
        files = D.FileRows()
        files.use_native(N.native)
        files.extend((pid, None), maps.rows[pid, None][1], maps.table)
        files.merge_sockets()
        return files.rows

    before = {pid: rows_of(pid) for pid in (1, 3)}
    assert [r[11] for r in before[3]] == ["/lib/a.so", "/lib/e.so"] and before[3][0][:3] == (3, None, "mem")
    maps.seen = {(1, None), (3, None)}
    maps.end_snapshot(5.0)
    assert len(maps.table) == 3 and {pid: rows_of(pid) for pid in (1, 3)} == before
    N.native.maps_rows(maps.table, maps.index, text([b"e.so", b"b.so"]), None, {}, "/nonexistent")
    assert len(maps.table) == 3  # found again in the pruned table
    maps.end_snapshot(None)
    assert maps.table is None and maps.rows == {}


@needs_c
@pytest.mark.root
@pytest.mark.live
def test_cwd_rtd_txt_of_other_users_same_with_c_and_python():
    """As a user who may not read other users' cwd, root and exe links, their rows are lsof's
    '(readlink: Permission denied)' ones, counted and reported as refused, the same from C
    (proc_links) as from the Python loop."""
    import pickle
    import traceback
    import recorder.collect.descriptors as D
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            fs = ProcFS()
            got = []
            for native in (N.native, None):
                files, refused = D.FileRows(), []
                for pid in (1, os.getppid()):
                    refused.append(D.process_files(fs, native, D.MapsCache(), pid, None, None, None, files, None))
                files.merge_sockets()
                got.append((files.rows, files.denied, refused))
            with os.fdopen(w, "wb") as f:
                pickle.dump(got, f)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(child, 0)
    assert status == 0 and data
    (c_rows, c_denied, c_refused), py = pickle.loads(data)
    assert (c_rows, c_denied, c_refused) == py
    assert [r[2] for r in c_rows if r[0] == 1] == ["cwd", "rtd", "txt"]
    assert c_rows[0][11] == "/proc/1/cwd (readlink: Permission denied)" and c_denied == 6
    assert c_refused[0] == "cwd,root,maps"


@pytest.mark.live
def test_live_rows_in_chunks_keep_their_order(live, monkeypatch):
    import recorder.collect.descriptors as C
    got = []
    for chunk in (3, 10**9):
        monkeypatch.setattr(C, "FILE_CHUNK", chunk)
        c = Collector(tables=("processes", "open_files"))
        rows = c.snapshot().tables["open_files"].to_pylist()
        got.append(sorted((r["pid"], r["fd"], r["type"], r["name"]) for r in rows if r["pid"] in live))
    assert got[0] and got[0] == got[1]


@pytest.mark.live
def test_each_socket_protocol_of_this_kernel_names_its_table():
    """`lsof -p` reads only the tables of its sockets' protocols: every protocol name this kernel
    gives a socket (system.sockprotoname) maps to its table, or every table would be read."""
    import socket
    kinds = [(socket.AF_UNIX, t) for t in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET)]
    kinds += [(f, t) for f in (socket.AF_INET, socket.AF_INET6) for t in (socket.SOCK_STREAM, socket.SOCK_DGRAM)]
    socks = [socket.socket(f, t) for f, t in kinds]
    try:
        names = {S.proto_name(f"/proc/self/fd/{s.fileno()}") for s in socks}
    finally:
        for s in socks:
            s.close()
    assert None not in names
    assert S._tables_of(names) == {"unix", "tcp", "udp", "tcp6", "udp6"}, names


@pytest.mark.live
def test_named_processes_read_only_their_sockets(live):
    """`lsof -p PID` parses only its sockets' lines of their protocols' tables (a C scan, or a
    bytes.find per inode without the C module): the rows are those of a full read."""
    pids = sorted(live)
    for native in (N.native, None):
        c = Collector(redact=False)
        c.native = native
        _, named, socks = c.live_files(pids)
        _, every, _ = c.live_files(None)
        mine = sorted(tuple(r) for r in every.rows if r[0] in live)
        assert sorted(tuple(r) for r in named.rows) == mine
        assert any(r[5] in ("IPv4", "IPv6") for r in named.rows) and any(r[5] == "unix" for r in named.rows)
    # the filters themselves, on this host's tables, against parsing everything (the inet tables
    # by their one parser, C's)
    inodes = {i for i, p in zip(socks["inode"], socks["pid"]) if p is not None}  # the named ones' sockets
    tables = [("unix", lambda d: [s["inode"] for s in P.parse_unix(d)])]
    if N.native is not None:
        tables += [(name, lambda d, proto=proto, v6=v6: [r[1][0] for r in N.native.inet_records(d, proto, v6, None)])
                   for name, proto, v6 in (("tcp", "TCP", False), ("tcp6", "TCP", True), ("udp", "UDP", False))]
    for name, inodes_of in tables:
        data = ProcFS().read("self", "net", name)
        want = sorted(i for i in inodes_of(data) if i in inodes)
        assert sorted(inodes_of(S.line_finder(inodes)(data, name))) == want


@needs_c
@pytest.mark.parametrize("use_c", [True, False], ids=["thread_rows", "file-by-file"])
def test_the_leader_thread_takes_its_context_switches_from_the_process_status(tmp_path, use_c):
    """/proc/PID/status prints the leader thread's own context switches (checked on this kernel:
    they equal /proc/PID/task/PID/status, not the sum over threads), so a snapshot does not read
    the leader's task status again. Its task status is removed here: were it read, the leader
    would count as gone."""
    tree = FakeProc(tmp_path / "proc")
    tree.add_process(60, b"p", ppid=1, threads=[60, {"tid": 61, "voluntary": 7, "nonvoluntary": 8}],
                     voluntary=900, nonvoluntary=90)
    os.unlink(tree.path(60, "task", 60, "status"))
    c = Collector(procfs=ProcFS(str(tree.root)), host="h", tables=("processes", "threads"))
    c.threads.one_call = use_c
    snap = c.snapshot()
    threads = snap.tables["threads"].to_pylist()
    got = {r["tid"]: (r["ctxsw_voluntary"], r["ctxsw_involuntary"]) for r in threads}
    assert got == {60: (900, 90), 61: (7, 8)}
    assert snap.tables["snapshots"].to_pylist()[0]["threads_gone"] == 0
    rows, gone, _ = c.threads.read(60, 0)  # without the process's counts: the leader's file is read
    assert [r["tid"] for r in rows] == [61] and gone == 1


@pytest.mark.live
def test_leader_status_matches_its_task_status_on_this_kernel():
    """The fact the snapshot relies on, on the live kernel: a multi-threaded process's
    /proc/PID/status context switches are its leader thread's, not the threads' sum."""
    import threading
    stop = threading.Event()
    workers = [threading.Thread(target=lambda: [stop.wait(0.001) for _ in range(200)]) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    def ctxsw(path):
        lines = Path(path).read_text().splitlines()
        return [int(x.split()[1]) for x in lines if "ctxt_switches" in x]

    pid = os.getpid()
    for _ in range(3):  # both files a moment apart: equal on one of a few tries
        if ctxsw(f"/proc/{pid}/status") == ctxsw(f"/proc/{pid}/task/{pid}/status"):
            break
    else:
        pytest.fail("/proc/PID/status and /proc/PID/task/PID/status differ")


MAPPER = r"""
import mmap, os, sys
d = sys.argv[1]
keep = []
for name in ("plain.bin", "with space.bin", "new\nline.bin", "gone.bin"):
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.write(b"x" * 8192)
    f = open(p, "rb")
    keep.append((f, mmap.mmap(f.fileno(), 8192, prot=mmap.PROT_READ)))
os.unlink(os.path.join(d, "gone.bin"))
print("ready", flush=True)
sys.stdin.read()
"""


@needs_c
@pytest.mark.live
def test_maps_rows_name_awkward_files_as_the_maps_text_has_them(tmp_path):
    """The mem rows of a process mapping awkward names: '\n' escaped as the kernel escapes it,
    a deleted file marked DEL without its " (deleted)", a name with a space whole."""
    child = subprocess.Popen([sys.executable, "-c", MAPPER, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with open(f"/proc/{child.pid}/maps", "rb") as f:
            text = f.read()
        table, files = N.native.Files(), N.native.Files()
        files.begin(child.pid, None, None)
        files.extend(table, N.native.maps_rows(table, {}, text, None, {}, f"/proc/{child.pid}/map_files"))
        got = files.rows()
        names = {r[11]: r[2] for r in got}
        assert names[str(tmp_path / "new\\012line.bin")] == "mem"
        assert names[str(tmp_path / "gone.bin")] == "DEL"
        assert names[str(tmp_path / "with space.bin")] == "mem"
    finally:
        child.kill()
        child.wait()


# -- a process's own files: the C parsers, their one parser, against psutil and generated input

@needs_c
@pytest.mark.live
def test_process_file_parsers_on_every_live_process():
    """Every live process's stat, status, io and cgroup parse, and agree with psutil (an
    independent reader) on what does not move."""
    import psutil
    nat = N.native
    checked = 0
    for pid in ProcFS().pids():
        try:
            files = {f: Path(f"/proc/{pid}/{f}").read_bytes() for f in ("stat", "status", "io", "cgroup")}
            p = psutil.Process(pid)
            with p.oneshot():
                ppid, uids, gids, nthreads = p.ppid(), p.uids(), p.gids(), p.num_threads()
        except (OSError, psutil.Error):
            continue
        st, status, io = nat.parse_stat(files["stat"]), nat.parse_status(files["status"]), nat.parse_io(files["io"])
        assert isinstance(nat.parse_cgroup(files["cgroup"]), str)
        assert st.pid == pid and st.ppid == ppid and st.num_threads == nthreads, pid
        assert (status.ruid, status.euid, status.egid) == (uids.real, uids.effective, gids.effective), pid
        assert all(type(v) is int for v in io), pid
        checked += 1
    assert checked > 0


_line = st.one_of(
    st.builds(lambda k, v: k + b":" + v, st.sampled_from([b"rchar", b" wchar ", b"syscr", b"Uid", b"Gid", b"VmRSS",
                                                       b"x\xff", b"", b"0::/a", b"voluntary_ctxt_switches",
                                                       b"RssShmem", b"VmSwap"]),
              st.one_of(st.binary(max_size=12), st.integers(-(2**64), 2**64).map(lambda i: f"\t {i} kB".encode()),
                        st.integers(-(2**64), 2**64).map(lambda i: f" {i}".encode()),
                        st.tuples(st.integers(-3, 2**32), st.integers(-3, 2**32)).map(
                            lambda t: f"\t{t[0]}\t{t[1]}\t{t[0]}\t{t[1]}".encode()))),
    st.binary(max_size=20),
)


def _result_or_error(fn, data):
    try:
        return fn(data)
    except ValueError:
        return ValueError


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=10), st.booleans())
def test_status_io_and_cgroup_parsers_on_generated_lines(lines, trailing):
    """Any content: a named result or ValueError; an io line of ours holds its value, and cgroup
    keeps exactly the lines with a path other than '/'."""
    data = b"\n".join(lines) + (b"\n" if trailing else b"")
    nat = N.native
    status = _result_or_error(nat.parse_status, data)
    assert status is ValueError or type(status) is nat.Status
    io = _result_or_error(nat.parse_io, data)
    assert io is ValueError or type(io) is nat.IO
    if io is not ValueError:
        for line in data.split(b"\n"):
            k, sep, v = line.partition(b":")
            if sep and k.strip() in (b"rchar", b"wchar", b"syscr"):
                last = [ln for ln in data.split(b"\n") if ln.partition(b":")[0].strip() == k.strip()][-1]
                assert getattr(io, k.strip().decode()) == int(last.partition(b":")[2])
    want = [ln.decode("utf-8", "backslashreplace") for ln in data.split(b"\n")
            if ln and ln.partition(b":")[2].partition(b":")[2] not in (b"", b"/")]
    assert nat.parse_cgroup(data) == (",".join(want) if want else "/")


@needs_c
@settings(max_examples=300, deadline=None)
@given(pid=st.one_of(st.integers(-5, 2**31 + 5).map(lambda i: str(i).encode()), st.just(b" 7\t"), st.binary(max_size=4)),
       comm=st.binary(max_size=20), state=st.sampled_from([b"S", b"R", b"\xff", b""]), tail=_stat_tail,
       starttime=st.one_of(st.integers(0, 2**40 + 5), st.integers(-5, 5)))
def test_stat_parser_on_generated_lines(pid, comm, state, tail, starttime):
    """A stat line of any shape: its fields where it is one the kernel could write, else ValueError."""
    fields = [str(v).encode() for v in tail]
    if len(fields) > 16:
        fields[16] = str(starttime).encode()
    data = pid + b" (" + comm + b") " + state + b" " + b" ".join(fields) + b"\n"
    got = _result_or_error(N.native.parse_stat, data)
    if state and pid.strip().lstrip(b"-").isdigit() and b")" not in comm:
        f = [state] + fields  # proc(5)'s field N is f[N - 3]
        i32 = lambda v: -(2**31) <= v < 2**31  # noqa: E731
        ok = (len(f) >= 20 and i32(int(pid)) and 0 <= int(f[19]) < 2**40
              and all(i32(int(f[k])) for k in (1, 2, 3, 15, 16, 17)) and (len(f) <= 36 or i32(int(f[36]))))
        if not ok:
            assert got is ValueError
        else:
            assert (got.pid, got.comm, got.state, got.ppid, got.starttime) == (int(pid), comm, state.decode("ascii", "replace"),
                                                                               int(f[1]), int(f[19]))
            assert (got.utime, got.stime, got.processor) == (int(f[11]), int(f[12]), int(f[36]) if len(f) > 36 else None)
    else:
        assert got is ValueError or type(got) is N.native.Stat


@pytest.fixture(scope="module")
def io_tree(tmp_path_factory):
    fake = FakeProc(tmp_path_factory.mktemp("iotree") / "proc")
    fake.add_process(7, b"io", ppid=1)
    return fake


@needs_c
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_line, max_size=10), st.booleans())
def test_process_io_is_parse_io(io_tree, lines, trailing):
    """process() parses io as parse_io does, and leaves to the file-by-file path what parse_io refuses."""
    data = b"\n".join(lines) + (b"\n" if trailing else b"")
    io_tree.write("7/io", data)
    got = N.native.process(f"{io_tree.root}/7", 7, False, False, False)
    want = _result_or_error(N.native.parse_io, data)
    if want is ValueError:
        assert got is None
    else:
        assert got is not None and got.io == want


@needs_c
@pytest.mark.skipif(os.geteuid() != 0, reason="drops to another user: needs root to do so")
@pytest.mark.live
def test_process_and_file_by_file_agree_for_an_unprivileged_collector():
    """As a user who may not read other users' exe, io or fd folders, other users' processes are
    unusual to process() (None) and are read file by file, while that user's own processes
    take the one call: both ways must give the same rows, denied sources and descriptor counts
    included."""
    import ctypes
    import pickle
    import traceback
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # the modules are imported already: nothing under root's home is read as nobody
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            # Changing user made this process undumpable, which hides its own /proc files from it;
            # a process started as that user is dumpable (prctl PR_SET_DUMPABLE = 4), as are its
            # children.
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
            # three processes of this user, each holding a different number of descriptors, still
            hold_r, hold_w = os.pipe()
            ready_r, ready_w = os.pipe()
            kids = []
            for i in range(3):
                k = os.fork()
                if k == 0:
                    os.close(hold_w)
                    extra = [os.pipe() for _ in range(i + 1)]  # noqa: F841 - held open
                    os.write(ready_w, b"x")
                    os.read(hold_r, 1)  # until the collector is done
                    os._exit(0)
                kids.append(k)
            ready = b""
            while len(ready) < 3:  # each has opened its pipes
                ready += os.read(ready_r, 3 - len(ready))
            c = Collector(host="h", tables=("processes",))
            r = c.processes
            kids_fast = [N.native.process(f"/proc/{k}", k, False, r.prlimit, r.count_by_size) is not None
                         for k in kids]
            pairs = []
            for pid in c.fs.pids():
                try:
                    got = []
                    for fast in (True, False):
                        r.one_call = fast
                        row, _ = r.read(pid, 0, False)
                        got.append({k: v for k, v in row.items() if k not in VOLATILE - {"denied", "num_fds"}})
                except (P.Gone, P.Denied, ValueError):
                    continue
                pairs.append((pid, *got))
            os.close(hold_w)
            for k in kids:
                os.waitpid(k, 0)
            with os.fdopen(w, "wb") as f:
                pickle.dump((kids, kids_fast, pairs), f)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    kids, kids_fast, pairs = pickle.loads(data)
    assert all(kids_fast), "that user's own processes take process()"
    assert len(pairs) > 10
    assert any(a["denied"] for _, a, _ in pairs), "as nobody, root's processes have denied sources"
    counts = {pid: a["num_fds"] for pid, a, _ in pairs if pid in kids}
    assert len(set(counts.values())) == 3, counts  # 3 + 2, 3 + 4, 3 + 6 descriptors (and the two pipes)
    for pid, a, b in pairs:
        if pid not in kids:  # another process of the host may open or close a descriptor between the reads
            a, b = ({k: v for k, v in x.items() if k != "num_fds"} for x in (a, b))
        assert a == b, pid


# -- without the C module: psutil reads processes and threads

@pytest.mark.live
def test_psutil_fallback_gives_the_c_rows_but_the_columns_it_lacks(live):
    """psutil's rows of live processes are the C module's, column for column, except the columns
    psutil does not give, which are NULL (never invented)."""
    from recorder.collect import processes, threads
    fs = ProcFS()
    btime = P.parse_proc_stat(fs.read("stat"))["btime"]
    users = processes.UserNames()
    by_psutil = processes.ProcessReader(fs, None, users, "b")
    t_psutil = threads.ThreadReader(fs, None, "b")
    most = 0
    for pid in sorted(live):
        row, fds = by_psutil.read(pid, btime, True)
        assert all(k in row and row[k] is None for k in processes.PSUTIL_NULL), pid
        t_rows = sorted(t_psutil.read(pid, btime)[0], key=lambda r: r["tid"])
        most = max(most, len(t_rows))
        assert all(k in r and r[k] is None for r in t_rows for k in threads.PSUTIL_NULL)
        if N.native is None:
            continue
        c_row, c_fds = processes.ProcessReader(fs, N.native, users, "b").read(pid, btime, True)
        same = set(c_row) - VOLATILE - set(processes.PSUTIL_NULL)
        assert {k: row.get(k) for k in same} == {k: c_row[k] for k in same}, pid
        assert sorted(fds, key=int) == sorted(c_fds, key=int)
        c_threads = sorted(threads.ThreadReader(fs, N.native, "b").read(pid, btime)[0], key=lambda r: r["tid"])
        same = set(c_threads[0]) - VOLATILE - set(threads.PSUTIL_NULL)
        assert [{k: r.get(k) for k in same} for r in t_rows] == [{k: r[k] for k in same} for r in c_threads]
    assert most == 6  # the threaded workload: its main thread and 5 more


@pytest.mark.live
def test_without_the_c_module_a_snapshot_says_psutil_and_leaves_its_nulls():
    code = (
        "from recorder.source.native import describe\n"
        "from recorder.collect.collector import Collector\n"
        "from recorder.collect import processes, threads\n"
        "s = Collector(tables=('processes', 'threads')).snapshot()\n"
        "p, t = s.tables['processes'], s.tables['threads']\n"
        "assert p.num_rows > 1 and t.num_rows >= p.num_rows, (p.num_rows, t.num_rows)\n"
        "assert all(p.column(c).null_count == p.num_rows for c in processes.PSUTIL_NULL)\n"
        "assert all(t.column(c).null_count == t.num_rows for c in threads.PSUTIL_NULL)\n"
        "assert p.column('cmdline').null_count < p.num_rows and t.column('name').null_count == 0\n"
        "assert s.tables['snapshots'].column('reader').to_pylist() == ['psutil']\n"
        "print(describe())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE.parent,
                         env={**os.environ, "PROCSNAP_NATIVE": "0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "psutil"


# -- taskstats: the threads' context switches where the kernel tells them over netlink

QUIET_THREADS = (
    "import threading, time\n"
    "go, stop = threading.Event(), threading.Event()\n"
    "def work(n):\n"
    "    for _ in range(n):\n"
    "        time.sleep(0.0005)\n"  # voluntary switches, a different count per thread
    "    stop.wait()\n"
    "ts = [threading.Thread(target=work, args=(10 * i,), daemon=True) for i in range(1, 6)]\n"
    "[t.start() for t in ts]\n"
    "time.sleep(0.5)\n"
    "print('ready', flush=True)\n"
    "time.sleep(3600)\n")


@pytest.fixture
def quiet_threads():
    """A process of 6 threads that switched a different number of times each and now all wait."""
    p = subprocess.Popen([sys.executable, "-c", QUIET_THREADS], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield p.pid
    finally:
        p.kill()
        p.wait()


def status_ctxsw(pid: int, tid: int) -> tuple[int, int]:
    lines = Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines()
    get = {k: int(v) for k, _, v in (x.partition(":") for x in lines) if k.endswith("voluntary_ctxt_switches")}
    return get["voluntary_ctxt_switches"], get["nonvoluntary_ctxt_switches"]


@needs_c
@pytest.mark.root
@pytest.mark.live
def test_taskstats_gives_each_threads_status_context_switches(quiet_threads):
    """taskstats(tid) answers for a thread (not its process) with the counts its status file shows."""
    pid = quiet_threads
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    assert len(tids) == 6
    for _ in range(3):  # the threads wait, but an interpreter thread may still wake: equal on one of a few tries
        got = {}
        for tid in tids:
            t = N.native.taskstats(tid)
            assert (t.pid, t.tgid) == (tid, pid)
            got[tid] = (t.ctxsw_voluntary, t.ctxsw_involuntary)
        want = {tid: status_ctxsw(pid, tid) for tid in tids}
        if got == want:
            break
    assert got == want
    assert len({v for v, _ in got.values()}) > 1  # the threads' own counts, not one process figure
    with pytest.raises(OSError) as e:
        N.native.taskstats(2 ** 32 - 1)
    assert e.value.errno == errno.ESRCH


@needs_c
@pytest.mark.root
@pytest.mark.live
def test_thread_rows_from_taskstats_equal_those_from_status(quiet_threads):
    """thread_rows asked to use taskstats (the live /proc's task folder of process TGID) gives the
    rows it gives from the status files; asked with another process's id, the answers are not of
    that process and it reads the status files instead, with the same result."""
    pid = quiet_threads
    task = f"/proc/{pid}/task"
    leader = status_ctxsw(pid, pid)
    for _ in range(3):
        by_status = sorted(N.native.thread_rows(task, None, pid, *leader)[0])
        by_taskstats = sorted(N.native.thread_rows(task, None, pid, *leader, pid)[0])
        wrong_tgid = sorted(N.native.thread_rows(task, None, pid, *leader, os.getpid())[0])
        if by_status == by_taskstats == wrong_tgid:
            break
    assert len(by_status) == 6
    assert by_taskstats == by_status and wrong_tgid == by_status


@needs_c
@pytest.mark.root
@pytest.mark.live
def test_live_thread_reader_asks_taskstats_only_of_the_live_proc(quiet_threads, tmp_path):
    from recorder.collect.threads import ThreadReader
    assert ThreadReader(ProcFS(), N.native, "b").taskstats
    assert not ThreadReader(ProcFS(str(tmp_path)), N.native, "b").taskstats


REFUSED = r"""
import errno, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
from recorder.source import _native as n
os.setgid(65534); os.setgroups([]); os.setuid(65534)  # no CAP_NET_ADMIN: taskstats refuses
stop = threading.Event()
ts = [threading.Thread(target=stop.wait, daemon=True) for _ in range(3)]
[t.start() for t in ts]
time.sleep(0.2)
try:
    n.taskstats(os.getpid())
    print("answered")
except OSError as e:
    print("refused" if e.errno in (errno.EPERM, errno.EACCES) else f"errno {e.errno}")
pid = os.getpid()
task = f"/proc/{pid}/task"
for _ in range(3):
    a = sorted(n.thread_rows(task, None, -1, None, None)[0])
    b = sorted(n.thread_rows(task, None, -1, None, None, pid)[0])
    if a == b:
        break
print(len(a), a == b)
"""


@needs_c
@pytest.mark.root
@pytest.mark.live
def test_thread_rows_read_status_where_taskstats_is_refused():
    """Without CAP_NET_ADMIN taskstats refuses: thread_rows asked to use it reads every thread's
    status file instead, with the same rows."""
    root = str(Path(N.native.__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", REFUSED, root], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["refused", "4", "True"]


@needs_c  # the fake process itself is read by the C parsers; its descriptors by the fallback
def test_without_c_regular_files_take_offset_and_mode_from_psutil(tmp_path):
    """Without the C module no procsnap code parses fdinfo: a regular file's offset and access mode
    come from psutil's open_files (read under the collector's /proc root), a device's offset is
    NULL and its mode the link's."""
    import psutil
    fake = FakeProc(tmp_path / "proc")
    data = tmp_path / "data.bin"
    data.write_bytes(b"z" * 100)
    d = fake.add_process(30, b"files", ppid=1, fds=0)
    (d / "fdinfo").mkdir()
    for n, target, info in ((4, data, b"pos:\t42\nflags:\t0100001\n"), (5, data, b"pos:\t7\nflags:\t02\n"),
                            (6, "/dev/null", b"pos:\t9\nflags:\t02\n")):
        os.symlink(target, d / "fd" / str(n))
        (d / "fdinfo" / str(n)).write_bytes(info)
    c = Collector(procfs=ProcFS(str(fake.root)), host="h", tables=("processes", "open_files"))
    c.native = None
    before = psutil.PROCFS_PATH  # the process reader sets its own when it reads through psutil
    rows = {r["fd"]: r for r in c.snapshot().tables["open_files"].to_pylist() if r["pid"] == 30}
    assert psutil.PROCFS_PATH == before  # restored
    assert (rows["4"]["pos"], rows["4"]["mode"]) == (42, "w")
    assert (rows["5"]["pos"], rows["5"]["mode"]) == (7, "u")
    assert rows["6"]["type"] == "CHR" and rows["6"]["pos"] is None and rows["6"]["mode"] == "u"


def test_the_fallback_has_no_parser_of_maps_or_inet_tables():
    """The maps text and the inet socket tables have one parser, C's: the Python ones are gone."""
    assert not hasattr(P, "parse_maps") and not hasattr(P, "parse_inet") and not hasattr(S, "inet_records")


TCP_HEADER = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


@needs_c  # the fake process itself is read by the C parsers; its mapped files by psutil
def test_without_c_mapped_files_come_from_psutil(tmp_path):
    """Without the C module no procsnap code parses maps: a process whose maps text is garbage
    still gets the mem and DEL rows of the regions psutil reads (its smaps, under the collector's
    root), with device, inode and size from a stat of map_files (NULL where that does not stat),
    DEL where the path names no file now. PROCFS_PATH is restored."""
    import psutil
    fake = FakeProc(tmp_path / "proc")
    real = tmp_path / "files"
    real.mkdir()
    for name in ("lib.so", "backing", "nolink.so"):
        (real / name).write_bytes(b"x" * 99)
    d = fake.add_process(40, b"mapper", ppid=1, fds=0)
    fake.write("40/maps", b"this is not\nwhat the kernel writes\n")
    smaps = b"".join(line + b"\nSize:                  4 kB\nRss:                   4 kB\n" for line in (
        b"1000-2000 r--p 00000000 fe:01 11 " + os.fsencode(real / "lib.so"),
        b"2000-3000 r-xp 00001000 fe:01 11 " + os.fsencode(real / "lib.so"),
        b"3000-4000 rw-s 00000000 00:01 12                         /memfd:buf (deleted)",
        b"4000-5000 r--p 00000000 fe:01 13 " + os.fsencode(real / "nolink.so"),
        b"5000-6000 rw-p 00000000 00:00 0                          [heap]"))
    fake.write("40/smaps", smaps)
    (d / "map_files").mkdir()
    for rng, target in (("1000-2000", "lib.so"), ("2000-3000", "lib.so"), ("3000-4000", "backing")):
        os.symlink(real / target, d / "map_files" / rng)
    c = Collector(procfs=ProcFS(str(fake.root)), host="h", tables=("processes", "open_files"))
    c.native = None
    before = psutil.PROCFS_PATH
    snap = c.snapshot()
    assert psutil.PROCFS_PATH == before  # restored
    files = [r for r in snap.tables["open_files"].to_pylist() if r["pid"] == 40]
    mem = {r["name"]: r for r in files if r["fd"] in ("mem", "DEL")}
    lib, backing = os.stat(real / "lib.so"), os.stat(real / "backing")
    assert set(mem) == {str(real / "lib.so"), "/memfd:buf", str(real / "nolink.so")}
    row = mem[str(real / "lib.so")]
    assert (row["fd"], row["device"], row["inode"], row["size"], row["deleted"]) == \
        ("mem", f"{os.major(lib.st_dev)},{os.minor(lib.st_dev)}", lib.st_ino, 99, False)
    row = mem["/memfd:buf"]  # its path names no file now: deleted
    assert (row["fd"], row["inode"], row["size"], row["deleted"]) == ("DEL", backing.st_ino, None, True)
    row = mem[str(real / "nolink.so")]  # map_files does not lead to it: what it would give is NULL
    assert (row["fd"], row["device"], row["inode"], row["size"], row["deleted"]) == ("mem", None, None, None, False)


TCP_HEADER = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


@needs_c  # the fake process itself is read by the C parsers; its sockets by psutil
def test_without_c_inet_sockets_come_from_psutil(tmp_path):
    """Without the C module no procsnap code parses /proc/net/tcp: a socket descriptor gets the
    TCP socket psutil lists at its (pid, fd) (from PROCFS_PATH/net, the recorder's namespace, read
    under the collector's root; self/net, which C reads, has none here), with the inode the fd
    loop read; the socket nobody holds has a NULL inode; what psutil does not give is NULL. A
    side psutil gives no endpoint for (port 0) has the unspecified address, as in /proc; a UDP
    socket is ESTABLISHED when connected, else UNCONN. PROCFS_PATH is restored."""
    import psutil
    fake = FakeProc(tmp_path / "proc")
    d = fake.add_process(40, b"server", ppid=1, fds=0)
    os.symlink("socket:[4242]", d / "fd" / "3")
    os.symlink("socket:[4343]", d / "fd" / "4")
    os.symlink("socket:[4444]", d / "fd" / "5")
    fake.write("net/tcp", TCP_HEADER + b"".join((
        b"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 "
        b"0000000000000000 100 0 0 10 0\n",
        b"   1: 0100007F:1F90 0100007F:D431 06 00000000:00000000 03:00001000 00000000     0        0 0 3 "
        b"0000000000000000\n")))
    fake.write("net/udp", TCP_HEADER + b"".join((
        b"   2: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 "
        b"0000000000000000 0\n",
        b"   3: 0100007F:9C40 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 4444 2 "
        b"0000000000000000 0\n")))
    for name in ("tcp6", "udp6"):
        fake.write(f"net/{name}", TCP_HEADER)
    c = Collector(procfs=ProcFS(str(fake.root)), host="h", tables=("processes", "open_files", "sockets"))
    c.native = None
    before = psutil.PROCFS_PATH
    snap = c.snapshot()
    assert psutil.PROCFS_PATH == before  # restored
    (sock,) = [r for r in snap.tables["open_files"].to_pylist() if r["pid"] == 40 and r["fd"] == "3"]
    assert (sock["type"], sock["device"], sock["inode"], sock["proto"], sock["name"]) == \
        ("IPv4", "4242", 4242, "TCP", "127.0.0.1:8080 (LISTEN)")
    socks = sorted(snap.tables["sockets"].to_pylist(), key=lambda r: r["pid"] is None)
    inet = [{k: r[k] for k in ("pid", "fd", "inode", "family", "proto", "sock_type", "local_addr", "local_port",
                               "remote_addr", "remote_port", "state", "rx_queue", "tx_queue", "uid")}
            for r in socks if r["family"] == "IPv4"]
    assert inet == [
        {"pid": 40, "fd": 3, "inode": 4242, "family": "IPv4", "proto": "TCP", "sock_type": "STREAM",
         "local_addr": "127.0.0.1", "local_port": 8080, "remote_addr": "0.0.0.0", "remote_port": 0, "state": "LISTEN",
         "rx_queue": None, "tx_queue": None, "uid": None},
        {"pid": 40, "fd": 4, "inode": 4343, "family": "IPv4", "proto": "UDP", "sock_type": "DGRAM",
         "local_addr": "127.0.0.1", "local_port": 53, "remote_addr": "0.0.0.0", "remote_port": 0, "state": "UNCONN",
         "rx_queue": None, "tx_queue": None, "uid": None},
        {"pid": 40, "fd": 5, "inode": 4444, "family": "IPv4", "proto": "UDP", "sock_type": "DGRAM",
         "local_addr": "127.0.0.1", "local_port": 40000, "remote_addr": "127.0.0.1", "remote_port": 53,
         "state": "ESTABLISHED", "rx_queue": None, "tx_queue": None, "uid": None},
        {"pid": None, "fd": None, "inode": None, "family": "IPv4", "proto": "TCP", "sock_type": "STREAM",
         "local_addr": "127.0.0.1", "local_port": 8080, "remote_addr": "127.0.0.1", "remote_port": 54321,
         "state": "TIME_WAIT", "rx_queue": None, "tx_queue": None, "uid": None}]
    names = {r["fd"]: r["name"] for r in snap.tables["open_files"].to_pylist() if r["pid"] == 40}
    assert (names["4"], names["5"]) == ("127.0.0.1:53", "127.0.0.1:40000->127.0.0.1:53")


@needs_c  # the fake process itself is read by the C parsers; its sockets by psutil
def test_without_c_a_descriptor_reused_meanwhile_is_not_joined_to_psutils_socket(tmp_path, monkeypatch):
    """psutil lists sockets by (pid, fd) after the fd loop read the descriptors: a descriptor
    closed and reused in between must not take the socket psutil found there (it would name a
    socket the process does not hold). Its row stays unresolved, the socket has no inode."""
    import psutil
    fake = FakeProc(tmp_path / "proc")
    d = fake.add_process(40, b"server", ppid=1, fds=0)
    os.symlink("socket:[4242]", d / "fd" / "3")
    fake.write("net/tcp", TCP_HEADER + b"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 "
                                       b"00000000     0        0 5353 1 0000000000000000 100 0 0 10 0\n")
    for name in ("tcp6", "udp", "udp6"):
        fake.write(f"net/{name}", TCP_HEADER)
    real = psutil.net_connections

    def reused(kind="inet"):  # fd 3 now holds socket 5353, which psutil lists at (40, 3)
        os.unlink(d / "fd" / "3")
        os.symlink("socket:[5353]", d / "fd" / "3")
        return real(kind)

    monkeypatch.setattr(psutil, "net_connections", reused)
    c = Collector(procfs=ProcFS(str(fake.root)), host="h", tables=("processes", "open_files", "sockets"))
    c.native = None
    snap = c.snapshot()
    (sock,) = [r for r in snap.tables["open_files"].to_pylist() if r["pid"] == 40 and r["fd"] == "3"]
    assert sock["type"] == "sock" and sock["inode"] == 4242
    (row,) = [r for r in snap.tables["sockets"].to_pylist() if r["family"] == "IPv4"]
    assert (row["pid"], row["inode"], row["local_port"], row["state"]) == (None, None, 8080, "LISTEN")

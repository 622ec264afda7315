"""procsnap's process, thread and host fields against psutil, an independent reader of the same
kernel files, at the same moment.

A workload of ours (known nice, cwd, command line, descriptors and threads, idle) runs while
`procsnap snapshot` records the whole host; psutil reads every process, thread and host counter
just before and just after. Every field both report is compared, as recorded on disk:

- identities (ppid, name, exe, command line, cwd, users and groups, nice, start time, the
  descriptor limit, the terminal) must equal psutil's wherever psutil read the same value
  before and after (a value that changed in between must be one of the two);
- cumulative counters (CPU times, I/O, context switches; the host's CPU times, context
  switches, interrupts, swapping, disk and NIC counters) must lie between the two reads;
- gauges (state, threads, descriptors, memory; the host's memory and load) must equal psutil's
  where it read the same before and after, else lie between; a few other processes may move
  twice in between, our idle workload may not.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import psutil
import pyarrow.dataset as ds
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.live

WORKLOAD = r"""
import os, sys, threading
os.nice(5)
if os.geteuid() == 0:  # every id apart, so that no column can stand for another unseen
    os.setresgid(4545, 4646, 0)
    os.setresuid(4242, 4343, 0)
held = [open(os.devnull) for _ in range(7)]
stop = threading.Event()
for i in range(4):
    threading.Thread(target=stop.wait, daemon=True).start()
print(os.getpid(), flush=True)
sys.stdin.read()
"""
ARGS = ["psutil-oracle", "two words"]
THREADS = 5            # the main thread and four waiting
STATE = {"R": "running", "S": "sleeping", "D": "disk-sleep", "Z": "zombie", "T": "stopped",
         "t": "tracing-stop", "I": "idle", "X": "dead", "P": "parked", "W": "waking", "K": "wake-kill"}
EPS = 1e-6             # float rounding of counters in seconds


# -- psutil's reads ---------------------------------------------------------------------------

def _try(f):
    try:
        return f()
    except (psutil.AccessDenied, psutil.ZombieProcess, FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def psutil_processes() -> dict[int, dict]:
    out = {}
    for p in psutil.process_iter():
        try:
            with p.oneshot():
                d = {"create_time": p.create_time(), "ppid": p.ppid(), "name": p.name(), "status": p.status(),
                     "uids": p.uids(), "gids": p.gids(), "username": p.username(), "nice": p.nice(),
                     "num_threads": p.num_threads(), "cpu": p.cpu_times(), "mem": p.memory_info(),
                     "ctx": p.num_ctx_switches(), "terminal": p.terminal()}
                d["cmdline"] = _try(p.cmdline)
                d["exe"] = _try(p.exe)
                d["cwd"] = _try(p.cwd)
                d["io"] = _try(p.io_counters)
                d["num_fds"] = _try(p.num_fds)
                d["nofile"] = _try(lambda: p.rlimit(psutil.RLIMIT_NOFILE))
                d["threads"] = _try(p.threads)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        out[p.pid] = d
    return out


def psutil_host() -> dict:
    return {"boot_time": psutil.boot_time(), "ncpus": psutil.cpu_count(), "cpu": psutil.cpu_times(),
            "stats": psutil.cpu_stats(), "load": psutil.getloadavg(), "mem": psutil.virtual_memory(),
            "swap": psutil.swap_memory(), "disks": psutil.disk_io_counters(perdisk=True, nowrap=False),
            "nics": psutil.net_io_counters(pernic=True, nowrap=False)}


# -- the recording ----------------------------------------------------------------------------

def rows(rec, table) -> list[dict]:
    return ds.dataset(rec / table, format="parquet", partitioning="hive").to_table().to_pylist()


def epoch(t: dt.datetime) -> float:
    return t.timestamp()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("psutil")
    work = tmp / "work dir"
    work.mkdir()
    wl = subprocess.Popen([sys.executable, "-c", WORKLOAD, *ARGS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, cwd=work)
    try:
        assert int(wl.stdout.readline()) == wl.pid
        time.sleep(0.3)  # past the interpreter's start: idle from here on
        before, host_before = psutil_processes(), psutil_host()
        rec = tmp / "rec"
        run_cli("snapshot", "-o", rec, "-q", "--no-redact", check=0)
        host_after, after = psutil_host(), psutil_processes()
        tables = {t: rows(rec, t) for t in ("processes", "threads", "system", "disks", "nics", "open_files")}
        yield {"wl": wl.pid, "cwd": str(work), "before": before, "after": after, "host_before": host_before,
               "host_after": host_after, **tables}
    finally:
        wl.kill()
        wl.wait()


def alive_across(r) -> dict[int, tuple[dict, dict, dict]]:
    """pid -> (psutil before, recorded row, psutil after) for every process psutil saw, as the
    same instance, before and after the snapshot."""
    rec = {row["pid"]: row for row in r["processes"]}
    both = {pid: (b, r["after"][pid]) for pid, b in r["before"].items()
            if pid in r["after"] and r["after"][pid]["create_time"] == b["create_time"]}
    missing = sorted(set(both) - set(rec))
    assert not missing, f"alive before and after the snapshot, not recorded: {missing[:20]}"
    assert r["wl"] in both and len(both) > 10
    return {pid: (b, rec[pid], a) for pid, (b, a) in both.items()}


class Mismatches:
    """Collects mismatches per field; `check` fails on the workload's or when more than a few
    other processes disagree (a gauge may move twice between the reads)."""

    def __init__(self, wl):
        self.wl, self.bad = wl, {}

    def add(self, field, pid, got, want):
        self.bad.setdefault(field, []).append((pid, got, want))

    def check(self, n, allowed=0):
        errors = []
        for field, bad in self.bad.items():
            ours = [b for b in bad if b[0] == self.wl]
            if ours or len(bad) > allowed:
                errors.append(f"{field}: {len(bad)} of {n} differ, e.g. {(ours or bad)[:3]}")
        assert not errors, "\n".join(errors)


def same(m, field, pid, got, b, a):
    """An identity: equal to psutil's value when it read the same before and after, else one of them."""
    if got != b and got != a:
        m.add(field, pid, got, (b, a) if b != a else b)


def between(m, field, pid, got, b, a, eps=0):
    """A counter or a gauge: between the two reads (equal when they agree)."""
    if got is None or b is None or a is None:
        if not (got is None and (b is None or a is None)):
            m.add(field, pid, got, (b, a))
        return
    if not (min(b, a) - eps <= got <= max(b, a) + eps):
        m.add(field, pid, got, (b, a))


# -- processes --------------------------------------------------------------------------------

def test_process_identities(recorded):
    procs = alive_across(recorded)
    m = Mismatches(recorded["wl"])
    for pid, (b, row, a) in procs.items():
        same(m, "ppid", pid, row["ppid"], b["ppid"], a["ppid"])
        # psutil completes a 15-byte comm from the command line: ours is the comm itself
        name, nb, na = row["name"], b["name"], a["name"]
        for n in (nb, na):
            if len(name.encode()) >= 15 and n.startswith(name):
                name = n
        if b["ppid"] == 2:  # a kernel worker's name ends in what it works on now (kworker/0:1-events)
            name, nb, na = (n.split("-")[0] for n in (name, nb, na))
        same(m, "name", pid, name, nb, na)
        same(m, "uid", pid, row["uid"], b["uids"].effective, a["uids"].effective)
        same(m, "ruid", pid, row["ruid"], b["uids"].real, a["uids"].real)
        same(m, "gid", pid, row["gid"], b["gids"].effective, a["gids"].effective)
        if b["uids"].real == b["uids"].effective:  # psutil names the real user, ours the effective one
            same(m, "user", pid, row["user"], b["username"], a["username"])
        same(m, "nice", pid, row["nice"], b["nice"], a["nice"])
        same(m, "tty", pid, row["tty"] and f"/dev/{row['tty']}", b["terminal"], a["terminal"])
        if abs(epoch(row["start_time"]) - b["create_time"]) > 0.011:
            m.add("start_time", pid, epoch(row["start_time"]), b["create_time"])
        if b["exe"] is not None and a["exe"] is not None and "exe" not in (row["denied"] or ""):
            exe = row["exe"] or ""  # psutil: "" for kernel threads, the path without " (deleted)"
            if exe.endswith(" (deleted)") and not os.path.exists(exe):
                exe = exe[:-len(" (deleted)")]
            same(m, "exe", pid, exe, b["exe"], a["exe"])
        if b["cmdline"] is not None and a["cmdline"] is not None and row["cmdline"] is not None:
            same(m, "cmdline", pid, row["cmdline"], " ".join(b["cmdline"]), " ".join(a["cmdline"]))
        if b["nofile"] is not None and a["nofile"] is not None and "limits" not in (row["denied"] or ""):
            soft = lambda lim: None if lim[0] == psutil.RLIM_INFINITY else lim[0]  # noqa: E731
            same(m, "fd_limit", pid, row["fd_limit"], soft(b["nofile"]), soft(a["nofile"]))
    m.check(len(procs))
    wl = procs[recorded["wl"]][1]
    assert wl["cmdline"] == " ".join([sys.executable, "-c", WORKLOAD, *ARGS]) and wl["nice"] == 5
    if os.geteuid() == 0:
        assert (wl["uid"], wl["ruid"], wl["gid"], wl["user"]) == (4343, 4242, 4646, "4343")


def test_process_cwd(recorded):
    procs = alive_across(recorded)
    cwd = {r["pid"]: r["name"] for r in recorded["open_files"] if r["fd"] == "cwd"}
    m = Mismatches(recorded["wl"])
    n = 0
    for pid, (b, _, a) in procs.items():
        if b["cwd"] is not None and a["cwd"] is not None and pid in cwd:
            n += 1
            same(m, "cwd", pid, cwd[pid], b["cwd"], a["cwd"])
    m.check(n)
    assert cwd[recorded["wl"]] == recorded["cwd"]


def test_process_counters(recorded):
    procs = alive_across(recorded)
    m = Mismatches(recorded["wl"])
    for pid, (b, row, a) in procs.items():
        between(m, "utime", pid, row["utime"], b["cpu"].user, a["cpu"].user, EPS)
        between(m, "stime", pid, row["stime"], b["cpu"].system, a["cpu"].system, EPS)
        between(m, "ctxsw_voluntary", pid, row["ctxsw_voluntary"], b["ctx"].voluntary, a["ctx"].voluntary)
        between(m, "ctxsw_involuntary", pid, row["ctxsw_involuntary"], b["ctx"].involuntary, a["ctx"].involuntary)
        if b["io"] is not None and a["io"] is not None and "io" not in (row["denied"] or ""):
            for col, attr in (("rchar", "read_chars"), ("wchar", "write_chars"), ("syscr", "read_count"),
                              ("syscw", "write_count"), ("read_bytes", "read_bytes"), ("write_bytes", "write_bytes")):
                between(m, col, pid, row[col], getattr(b["io"], attr), getattr(a["io"], attr))
    m.check(len(procs))


def test_process_gauges(recorded):
    procs = alive_across(recorded)
    m = Mismatches(recorded["wl"])
    for pid, (b, row, a) in procs.items():
        if b["status"] == a["status"] and STATE.get(row["state"]) != b["status"]:
            m.add("state", pid, row["state"], b["status"])
        between(m, "num_threads", pid, row["num_threads"], b["num_threads"], a["num_threads"])
        between(m, "rss", pid, row["rss"], b["mem"].rss, a["mem"].rss)
        between(m, "vms", pid, row["vms"], b["mem"].vms, a["mem"].vms)
        if row["shared"] is not None:
            between(m, "shared", pid, row["shared"], b["mem"].shared, a["mem"].shared)
        if b["num_fds"] is not None and a["num_fds"] is not None and "fd" not in (row["denied"] or ""):
            between(m, "num_fds", pid, row["num_fds"], b["num_fds"], a["num_fds"])
    m.check(len(procs), allowed=max(3, len(procs) // 50))
    wl = procs[recorded["wl"]][1]
    assert wl["num_threads"] == THREADS and wl["state"] == "S" and wl["num_fds"] >= 3 + 7


# -- threads ----------------------------------------------------------------------------------

def test_threads(recorded):
    procs = alive_across(recorded)
    threads: dict[int, dict[int, dict]] = {}
    for t in recorded["threads"]:
        threads.setdefault(t["pid"], {})[t["tid"]] = t
    m = Mismatches(recorded["wl"])
    n = 0
    for pid, (b, _, a) in procs.items():
        if b["threads"] is None or a["threads"] is None or pid not in threads:
            continue
        tb, ta = ({t.id: t for t in x[pid]["threads"]} for x in (recorded["before"], recorded["after"]))
        stable = set(tb) & set(ta)
        mine = threads[pid]
        if set(tb) == set(ta) and set(mine) != stable:
            m.add("tids", pid, sorted(mine), sorted(stable))
        for tid in stable & set(mine):
            n += 1
            between(m, "thread utime", pid, mine[tid]["utime"], tb[tid].user_time, ta[tid].user_time, EPS)
            between(m, "thread stime", pid, mine[tid]["stime"], tb[tid].system_time, ta[tid].system_time, EPS)
    m.check(n, allowed=max(3, len(procs) // 50))
    assert len(threads[recorded["wl"]]) == THREADS


# -- the host ---------------------------------------------------------------------------------

def test_host_counters(recorded):
    (row,) = recorded["system"]
    b, a = recorded["host_before"], recorded["host_after"]
    m = Mismatches(None)
    assert abs(epoch(row["boot_time"]) - b["boot_time"]) <= 1
    assert row["ncpus"] == b["ncpus"]
    for col in ("user", "nice", "system", "idle", "irq", "softirq", "steal", "guest", "guest_nice"):
        between(m, f"cpu_{col}", 0, row[f"cpu_{col}"], getattr(b["cpu"], col), getattr(a["cpu"], col), EPS)
    # iowait may go backwards on Linux (a CPU's idle task takes it back): a tick of slack per CPU
    between(m, "cpu_iowait", 0, row["cpu_iowait"], b["cpu"].iowait, a["cpu"].iowait, b["ncpus"] * 0.01 + EPS)
    between(m, "ctxt", 0, row["ctxt"], b["stats"].ctx_switches, a["stats"].ctx_switches)
    between(m, "intr", 0, row["intr"], b["stats"].interrupts, a["stats"].interrupts)
    page = os.sysconf("SC_PAGE_SIZE")
    between(m, "pswpin", 0, row["pswpin"] * page, b["swap"].sin, a["swap"].sin)
    between(m, "pswpout", 0, row["pswpout"] * page, b["swap"].sout, a["swap"].sout)
    for i, col in enumerate(("load1", "load5", "load15")):
        # updated every 5 s: more than one update may fall between the reads of a busy host
        between(m, col, 0, row[col], b["load"][i], a["load"][i], 0.05 + 0.1 * max(b["load"][i], a["load"][i]))
    m.check(1)


def test_host_memory(recorded):
    (row,) = recorded["system"]
    b, a = recorded["host_before"]["mem"], recorded["host_after"]["mem"]
    sb, sa = recorded["host_before"]["swap"], recorded["host_after"]["swap"]
    assert row["mem_total"] == b.total and row["swap_total"] == sb.total
    slack = 256 << 20  # others allocate, free and fill the page cache while the snapshot runs
    m = Mismatches(None)
    for col, attr in (("mem_free", "free"), ("mem_available", "available"), ("buffers", "buffers"),
                      ("shmem", "shared")):
        between(m, col, 0, row[col], getattr(b, attr), getattr(a, attr), slack)
    # psutil's cached is the page cache plus reclaimable slab
    between(m, "cached", 0, row["cached"] + row["slab_reclaimable"], b.cached, a.cached, slack)
    between(m, "slab", 0, row["slab_reclaimable"] + row["slab_unreclaimable"], b.slab, a.slab, slack)
    between(m, "swap_free", 0, row["swap_free"], sb.free, sa.free, slack)
    m.check(1)


def test_disks_and_nics(recorded):
    b, a = recorded["host_before"], recorded["host_after"]
    m = Mismatches(None)
    disks = {r["device"]: r for r in recorded["disks"]}
    assert disks and set(disks) <= set(b["disks"]) | set(a["disks"]), set(disks) - set(b["disks"])
    for dev, row in disks.items():
        if dev not in b["disks"] or dev not in a["disks"]:
            continue
        for col, attr in (("reads", "read_count"), ("writes", "write_count"), ("read_bytes", "read_bytes"),
                          ("write_bytes", "write_bytes"), ("read_time_ms", "read_time"),
                          ("write_time_ms", "write_time"), ("reads_merged", "read_merged_count"),
                          ("writes_merged", "write_merged_count"), ("io_time_ms", "busy_time")):
            between(m, f"{dev}.{col}", 0, row[col], getattr(b["disks"][dev], attr), getattr(a["disks"][dev], attr))
    nics = {r["interface"]: r for r in recorded["nics"]}
    assert set(nics) == set(b["nics"]) & set(a["nics"]), (set(nics), set(b["nics"]))
    for nic, row in nics.items():
        for col, attr in (("rx_bytes", "bytes_recv"), ("tx_bytes", "bytes_sent"), ("rx_packets", "packets_recv"),
                          ("tx_packets", "packets_sent"), ("rx_errors", "errin"), ("tx_errors", "errout"),
                          ("rx_dropped", "dropin"), ("tx_dropped", "dropout")):
            between(m, f"{nic}.{col}", 0, row[col], getattr(b["nics"][nic], attr), getattr(a["nics"][nic], attr))
    m.check(1)

"""The recorder's truth against real ``ps`` on the live host, at the same moment.

Every comparison brackets one snapshot between two ``ps`` reads: a process (or
thread) whose identity is the same in both reads was alive across the
snapshot, so the snapshot must show it exactly as ``ps`` does. Values that can
move (rss) are compared with a tolerance against either read.

A known workload is started for the comparisons: a Python process with exactly
5 named worker threads, a process whose comm holds a space and parentheses,
and (when setpriv exists) a process running as ``nobody``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recorder.collect.collector import Collector
from recorder.collect.processes import CLK_TCK

from tests.support.host import procsnap_cmd

pytestmark = [pytest.mark.live, pytest.mark.tools("ps")]

MARKER = "procsnap-test-threads"
SPACED_ARG = "two words"
WORKERS = 5
ODD_NAME = "my (odd) name"  # 13 bytes: survives the kernel's 15-byte comm limit
assert len(ODD_NAME.encode()) <= 15

# One line (no control characters, so `ps -o args` prints it verbatim): five
# threads name themselves worker-N with prctl(PR_SET_NAME), meet the main
# thread at a barrier, and everyone sleeps.
WORKLOAD = (
    "import ctypes,sys,threading,time;"
    "L=ctypes.CDLL(None,use_errno=True);"
    f"b=threading.Barrier({WORKERS + 1});"
    "f=lambda i:(L.prctl(15,('worker-%d'%i).encode(),0,0,0),b.wait(),time.sleep(600));"
    "ts=[threading.Thread(target=f,args=(i,),name='worker-%d'%i,daemon=True)"
    f" for i in range({WORKERS})];"
    "[t.start() for t in ts];b.wait();"
    "print('ready',flush=True);time.sleep(600)"
)

PS_ENV = {**os.environ, "LC_ALL": "C"}


def take_snapshot():
    """One live snapshot of processes and threads (what ps shows), nothing else:
    the shorter the collection, the tighter the bracket between the ps reads."""
    return Collector(tables=("processes", "threads")).snapshot()


# ---------------------------------------------------------------------------
# Helpers


def _run_ps(*args: str) -> str:
    return subprocess.run(["ps", *args], capture_output=True, text=True, check=True,
                          env=PS_ENV, errors="surrogateescape").stdout


def ps_processes() -> dict[int, dict]:
    """pid -> ppid, user, nlwp, rss (KiB), comm, from one ps read."""
    out = _run_ps("-eo", "pid=,ppid=,user:64=,nlwp=,rss=,comm=")
    procs = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        pid, ppid, user, nlwp, rss, *rest = line.split(None, 5)
        comm = rest[0] if rest else ""
        if comm.endswith(" <defunct>"):  # ps marks zombies in comm
            comm = comm[: -len(" <defunct>")]
        procs[int(pid)] = {"ppid": int(ppid), "user": user, "nlwp": int(nlwp),
                           "rss": int(rss), "comm": comm}
    return procs


def ps_threads() -> dict[int, dict[int, str]]:
    """pid -> {tid: thread comm}, from one ps -eL read."""
    out = _run_ps("-eLo", "pid=,tid=,comm=")
    threads: dict[int, dict[int, str]] = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        pid, tid, *rest = line.split(None, 2)
        comm = rest[0] if rest else ""
        if comm.endswith(" <defunct>"):
            comm = comm[: -len(" <defunct>")]
        threads.setdefault(int(pid), {})[int(tid)] = comm
    return threads


def ps_shown(name: str, raw: bytes | None) -> str:
    """A name as ps prints it in the C locale: each unprintable byte is '?'."""
    data = raw if raw is not None else name.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in data)


def by_pid(table) -> dict[int, dict]:
    rows = table.to_pylist()
    pids = [r["pid"] for r in rows]
    assert len(pids) == len(set(pids)), "a pid appears twice in one snapshot"
    return {r["pid"]: r for r in rows}


def _wait_until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode("utf-8", "replace")
    except OSError:
        return None


def _euid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[2])
    except OSError:
        return None
    return None


def procsnap(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*procsnap_cmd(), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parent.parent)


def query(rec: Path, sql: str) -> list[dict]:
    r = procsnap("query", "--rec", str(rec), "-f", "json", sql)
    assert r.returncode == 0, f"procsnap query failed ({r.returncode}): {r.stderr}"
    return json.loads(r.stdout)


# ---------------------------------------------------------------------------
# The workload


class Workload:
    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.threads: subprocess.Popen | None = None
        self.odd: subprocess.Popen | None = None
        self.odd_path: Path | None = None
        self.nobody: subprocess.Popen | None = None

    def start(self, tmp: Path) -> None:
        # 1. Python with 5 named worker threads and a recognizable argv.
        self.threads = subprocess.Popen(
            [sys.executable, "-c", WORKLOAD, MARKER, SPACED_ARG],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(self.threads)

        # 2. A process whose comm holds a space and parentheses.
        sleep_bin = shutil.which("sleep") or "/bin/sleep"
        self.odd_path = tmp / ODD_NAME
        shutil.copy2(sleep_bin, self.odd_path)
        self.odd_path.chmod(0o755)
        self.odd = subprocess.Popen([str(self.odd_path), "60"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(self.odd)

        # 3. A process of another user, when we can make one.
        setpriv = shutil.which("setpriv")
        if setpriv and os.geteuid() == 0:
            try:
                import grp
                import pwd
                pwd.getpwnam("nobody")
                grp.getgrnam("nogroup")
            except KeyError:
                pass
            else:
                self.nobody = subprocess.Popen(
                    [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sleep", "60"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.procs.append(self.nobody)

        # Ready: threads named, execs done.
        line = self.threads.stdout.readline()
        assert line.strip() == "ready", "threads workload did not start"
        _wait_until(lambda: _comm(self.odd.pid) == ODD_NAME, 5, "the odd-name process to exec")
        if self.nobody is not None:
            nb = self.nobody
            _wait_until(lambda: _comm(nb.pid) == "sleep" and _euid(nb.pid) is not None and _euid(nb.pid) != 0,
                        5, "the nobody process to exec")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if p.stdout:
                p.stdout.close()


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    w = Workload()
    try:
        w.start(tmp_path_factory.mktemp("workload"))
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def bracketed(workload):
    """(ps before, snapshot, ps after, wall time before the first ps)."""
    t0 = time.time()
    before = ps_processes()
    snap = take_snapshot()
    after = ps_processes()
    return before, snap, after, t0


@pytest.fixture(scope="module")
def bracketed_threads(workload):
    before = ps_threads()
    snap = take_snapshot()
    after = ps_threads()
    return before, snap, after


# ---------------------------------------------------------------------------
# 2. processes vs ps -eo


def _stable(before: dict, after: dict) -> set[int]:
    return {pid for pid, a in before.items()
            if pid in after and after[pid]["ppid"] == a["ppid"] and after[pid]["comm"] == a["comm"]}


def test_processes_match_ps(workload, bracketed):
    before, snap, after, t0 = bracketed
    rows = by_pid(snap.tables["processes"])
    stable = _stable(before, after)
    me = os.getpid()

    # The workload is alive across both reads: the comparison is not vacuous.
    wl = {workload.threads.pid, workload.odd.pid} | ({workload.nobody.pid} if workload.nobody else set())
    assert wl <= stable
    assert len(stable) >= 10

    missing = sorted(stable - rows.keys())
    assert not missing, f"alive across both ps reads but not in the snapshot: {missing}"

    # A pid in neither ps read was born after the first read and died before
    # the second: anything else is a phantom.
    for pid in rows.keys() - before.keys() - after.keys():
        st = rows[pid]["start_time"].timestamp()
        assert st >= t0 - 2, f"pid {pid} ({rows[pid]['name']}) is in the snapshot but in neither ps read"

    problems = []
    for pid in sorted(stable):
        r, a, b = rows[pid], before[pid], after[pid]
        if r["ppid"] != a["ppid"]:
            problems.append((pid, "ppid", r["ppid"], a["ppid"]))
        shown = ps_shown(r["name"], r["name_raw"])
        if shown != a["comm"] and not (shown.startswith("kworker/") and shown.split("-")[0] == a["comm"].split("-")[0]):
            # (a kworker's name ends with the workqueue it runs at the moment: it changes between
            # any two reads, and can change back)
            problems.append((pid, "comm", r["name"], a["comm"]))
        if r["user"] not in (a["user"], b["user"]):
            problems.append((pid, "user", r["user"], a["user"]))
        lo, hi = sorted((a["nlwp"], b["nlwp"]))
        if not lo <= r["num_threads"] <= hi:
            problems.append((pid, "nlwp", r["num_threads"], (a["nlwp"], b["nlwp"])))
        if pid == me:
            continue  # our own rss moves while we collect
        # Within max(1 MiB, 10%) of either read, or between them (a process
        # that grew steadily across the bracket).
        rss_kib = r["rss"] / 1024
        near = any(abs(rss_kib - p["rss"]) <= max(1024, 0.10 * p["rss"]) for p in (a, b))
        if not near and not min(a["rss"], b["rss"]) <= rss_kib <= max(a["rss"], b["rss"]):
            problems.append((pid, "rss KiB", rss_kib, (a["rss"], b["rss"])))
    assert not problems, f"snapshot differs from ps: {problems}"

    # Exact values for the workload.
    assert rows[workload.threads.pid]["num_threads"] == WORKERS + 1
    assert rows[workload.threads.pid]["ppid"] == me
    assert rows[workload.odd.pid]["num_threads"] == 1
    if workload.nobody is not None:
        nb = rows[workload.nobody.pid]
        assert (nb["user"], nb["uid"], nb["ruid"]) == ("nobody", 65534, 65534)
        assert before[workload.nobody.pid]["user"] == "nobody"
        assert nb["name"] == "sleep"


# ---------------------------------------------------------------------------
# 3. threads vs ps -eL


def test_threads_match_ps(workload, bracketed_threads):
    before, snap, after = bracketed_threads
    trows = snap.tables["threads"].to_pylist()
    procs = by_pid(snap.tables["processes"])
    got: dict[int, dict[int, dict]] = {}
    for t in trows:
        assert t["tid"] not in got.setdefault(t["pid"], {}), f"tid {t['tid']} twice in pid {t['pid']}"
        got[t["pid"]][t["tid"]] = t

    # Every thread row has its process row in the same snapshot.
    assert set(got) <= set(procs)

    stable = {pid for pid, ts in before.items() if after.get(pid) == ts}
    assert workload.threads.pid in stable
    problems = []
    for pid in sorted(stable):
        want = before[pid]
        have = {tid: ps_shown(t["name"], t["name_raw"]) for tid, t in got.get(pid, {}).items()}
        if have != want:
            problems.append((pid, have, want))
        elif procs[pid]["num_threads"] != len(have):
            problems.append((pid, "num_threads", procs[pid]["num_threads"], len(have)))
    assert not problems, f"threads differ from ps -eL: {problems}"

    pid = workload.threads.pid
    mine = got[pid]
    assert len(mine) == WORKERS + 1
    assert pid in mine, "the main thread (tid = pid) is missing"
    workers = {t["name"] for tid, t in mine.items() if tid != pid}
    assert workers == {f"worker-{i}" for i in range(WORKERS)}
    assert mine[pid]["name"] == procs[pid]["name"]
    assert all(t["name_raw"] is None for t in mine.values())

    odd = got[workload.odd.pid]
    assert list(odd) == [workload.odd.pid]
    assert odd[workload.odd.pid]["name"] == ODD_NAME


# ---------------------------------------------------------------------------
# 4. cmdline and exe


def test_cmdline_and_exe(workload):
    snap = take_snapshot()
    rows = by_pid(snap.tables["processes"])
    checked = [workload.threads, workload.odd] + ([workload.nobody] if workload.nobody else [])
    for p in checked:
        r = rows[p.pid]
        args = _run_ps("-ww", "-o", "args=", "-p", str(p.pid)).rstrip("\n")
        assert r["cmdline"] == args
        assert r["exe"] == os.readlink(f"/proc/{p.pid}/exe")
        assert r["exe_raw"] is None
        assert r["denied"] is None

    r = rows[workload.threads.pid]
    assert r["cmdline"] == " ".join([sys.executable, "-c", WORKLOAD, MARKER, SPACED_ARG])
    assert r["cmdline"].endswith(f"{MARKER} {SPACED_ARG}")
    # An argument holds a space: the joined text is lossy, the exact bytes are kept.
    with open(f"/proc/{workload.threads.pid}/cmdline", "rb") as f:
        assert r["cmdline_raw"] == f.read()
    assert r["exe"] == os.path.realpath(sys.executable)


# ---------------------------------------------------------------------------
# 5. the odd name


def test_odd_name(workload, bracketed):
    before, snap, after, _ = bracketed
    pid = workload.odd.pid
    r = by_pid(snap.tables["processes"])[pid]
    assert r["name"] == ODD_NAME
    assert r["name_raw"] is None
    assert before[pid]["comm"] == ODD_NAME == after[pid]["comm"]
    assert r["exe"] == str(workload.odd_path)
    assert r["cmdline"] == f"{workload.odd_path} 60"
    assert r["state"] == "S"
    assert r["ppid"] == os.getpid()


# ---------------------------------------------------------------------------
# 6. end to end through the CLI


def test_cli_record_and_query(workload, tmp_path):
    rec = tmp_path / "rec"
    r = procsnap("record", "-o", str(rec), "-i", "0.5", "-n", "3", "-q")
    assert r.returncode == 0, r.stderr
    pid = workload.threads.pid

    assert query(rec, "SELECT count(*) AS n FROM snapshots") == [{"n": 3}]

    # One row per snapshot: the workload's process row, its thread rows and its rate.
    rows = query(rec, f"""
        SELECT s.snapshot_id, p.pid, p.num_threads, p.start_time,
               (SELECT count(*) FROM threads t
                 WHERE t.snapshot_id = s.snapshot_id AND t.pid = {pid}) AS n_threads,
               (SELECT count(*) FROM threads t
                 WHERE t.snapshot_id = s.snapshot_id AND t.pid = {pid} AND t.name LIKE 'worker-%') AS workers,
               (SELECT count(*) FROM process_rates r
                 WHERE r.snapshot_id = s.snapshot_id AND r.pid = {pid}) AS n_rates,
               (SELECT any_value(r.cpu_pct) FROM process_rates r
                 WHERE r.snapshot_id = s.snapshot_id AND r.pid = {pid}) AS cpu_pct
        FROM snapshots s LEFT JOIN processes p ON p.snapshot_id = s.snapshot_id AND p.pid = {pid}
        ORDER BY s.snapshot_id""")
    assert len(rows) == 3
    assert [x["pid"] for x in rows] == [pid] * 3, "the workload is missing from a snapshot"
    assert [x["num_threads"] for x in rows] == [WORKERS + 1] * 3
    assert len({x["start_time"] for x in rows}) == 1
    assert [(x["n_threads"], x["workers"]) for x in rows] == [(WORKERS + 1, WORKERS)] * 3
    assert [x["n_rates"] for x in rows] == [1, 1, 1]
    assert rows[0]["cpu_pct"] is None  # no previous snapshot to diff against
    assert rows[1]["cpu_pct"] is not None and rows[2]["cpu_pct"] is not None
    assert all(0 <= x["cpu_pct"] < 50 for x in rows[1:]), rows  # the workload sleeps


# ---------------------------------------------------------------------------
# 7. a recorder stopped by a signal leaves a valid recording


def _committed(rec: Path) -> int:
    return len(list(rec.glob("snapshots/*/*/*.parquet")))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_record_stopped_by_signal(tmp_path, sig):
    rec = tmp_path / "rec"
    p = subprocess.Popen([*procsnap_cmd(), "record", "-o", str(rec), "-i", "0.2", "-q"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    try:
        # Two snapshots before the signal, however long a snapshot of this host takes (a busy
        # host, a bench load of a thousand processes): the test is about the stop, not the pace.
        time.sleep(1.5)
        _wait_until(lambda: _committed(rec) >= 2 or p.poll() is not None, 60, "two snapshots")
        assert p.poll() is None, f"recorder exited early: {p.communicate()}"
        p.send_signal(sig)
        out, err = p.communicate(timeout=5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, f"exit {p.returncode} after {sig.name}: {err}"

    leftovers = [f for f in rec.rglob("*") if f.name.startswith(".") and f.name.endswith(".tmp")]
    assert not leftovers

    files = sorted(rec.rglob("*.parquet"))
    assert files
    ids: dict[str, set[int]] = {}
    n_snap_rows = 0
    for f in files:
        t = pq.read_table(f)  # every file opens
        table = f.relative_to(rec).parts[0]
        ids.setdefault(table, set()).update(t.column("snapshot_id").to_pylist())
        if table == "snapshots":
            n_snap_rows += t.num_rows
    assert n_snap_rows >= 2, "expected the two snapshots waited for"
    assert n_snap_rows == len(ids["snapshots"]) == len(ids["processes"])
    # Nothing written for a snapshot that was never committed. The event tables have a file only
    # for a snapshot that took events; every other table has one for every snapshot.
    for table, s in ids.items():
        if table in ("kernel_events", "process_events"):
            assert s <= ids["snapshots"], f"{table} has rows of uncommitted snapshots"
        else:
            assert s == ids["snapshots"], f"{table} has rows of uncommitted snapshots"

    # And the analyzer reads it the same way.
    from analyze.data.db import Recording
    r = Recording.open([str(rec)])
    (n,), = r.con.execute("SELECT count(*) FROM snapshots").fetchall()
    (d,), = r.con.execute("SELECT count(DISTINCT snapshot_id) FROM processes").fetchall()
    assert n == d == n_snap_rows


# ---------------------------------------------------------------------------
# cpu_pct of an idle process is exactly 0
#
# Regression test. The views computed cpu_pct as
# (utime + stime - prev_utime - prev_stime) / dt * 100, which in doubles is
# float noise (e.g. -3.5e-16, so a *negative* CPU %) for unchanged counters
# about half the time; fixed by ((utime - prev_utime) + (stime - prev_stime)).


def _noisy_ticks() -> tuple[int, int]:
    """Tick counts (user, system) for which u + s - u - s is not 0.0 in doubles,
    evaluated left to right as DuckDB does (e.g. 1 and 2 ticks at CLK_TCK 100)."""
    for u in range(1, 200):
        for s in range(1, 200):
            a, b = u / CLK_TCK, s / CLK_TCK
            if a + b - a - b < 0:
                return u, s
    raise AssertionError("no noisy tick pair")  # pragma: no cover


@pytest.mark.parametrize("view,table", [("process_rates", "processes"), ("thread_rates", "threads")])
def test_cpu_pct_of_idle_process_is_exactly_zero(workload, tmp_path, view, table):
    """Two live snapshots of the sleeping workload, recorded and read back through
    the real store and views. Its counters do not move between them, so its
    cpu_pct must be exactly 0 (the views promise never a negative rate). The
    counters are set to tick values the kernel can report (it sleeps, so the
    real ones are equal in both snapshots too; these make the arithmetic
    reproducible instead of depending on how much CPU its start-up took)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from analyze.data.db import Recording
    from recorder.store.folder import Store

    pid = workload.threads.pid
    u, s = _noisy_ticks()
    rec = tmp_path / "rec"
    with Store(rec) as store:
        for _ in range(2):
            snap = take_snapshot()
            t = snap.tables[table]
            mine = pc.equal(t["pid"], pid)
            # The workload is idle: its real counters are unchanged between the two.
            assert pc.sum(mine.cast("int64")).as_py() == (1 if table == "processes" else WORKERS + 1)
            for col, v in (("utime", u / CLK_TCK), ("stime", s / CLK_TCK)):
                t = t.set_column(t.schema.get_field_index(col), col,
                                 pc.if_else(mine, pa.scalar(v, pa.float64()), t[col]))
            snap.tables[table] = t
            store.write(snap)
            time.sleep(0.05)
    r = Recording.open([str(rec)])
    rows = r.con.execute(f"SELECT snapshot_id, cpu_pct FROM {view} WHERE pid = ? ORDER BY ts, 1",
                         [pid]).fetchall()
    later = [c for _, c in rows[len(rows) // 2:]]
    assert len(rows) == 2 * (1 if table == "processes" else WORKERS + 1)
    assert all(c is not None and c >= 0 for c in later), later
    assert later == [0.0] * len(later), later

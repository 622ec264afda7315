"""ps --rec's %CPU at a moment (analyze.commands.ps.loading.rates_at) equals the rate views' own, however the
instances come and go: ps reads only the snapshot before the moment, and reads again every row of
the pids that have no previous row there.

Host h1 has six snapshots: a process missed by two snapshots (its rate spans the gap), one born
in the middle, one whose counter goes backwards, a pid reused by a new instance, one that appears
only once, a snapshot that took no processes or threads at all (so the next one finds no previous
rows next to it), and threads that do the same; host h2 interleaves its own snapshots with h1's.
"""

from __future__ import annotations

import datetime as dt

import pytest

from analyze.commands import ps as P
from analyze.data.db import Moment, Recording
from recorder.collect.collector import Snapshot
from recorder.collect.tables import to_table as _to_table
from recorder.store.compact import compact
from recorder.store.folder import Store

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
BOOT = T0 - dt.timedelta(days=1)
OLD = T0 - dt.timedelta(hours=1)


def proc(pid, utime, start=OLD, **kw):
    return {"boot_id": "b1", "pid": pid, "ppid": 1, "pgid": pid, "sid": 1, "start_time": start, "name": f"p{pid}",
            "cmdline": f"p{pid} --x", "state": "S", "uid": 0, "user": "root", "ruid": 0, "gid": 0, "nice": 0,
            "priority": 20, "processor": 0, "num_threads": 1, "utime": utime, "stime": 1.0, "rss": 0, "vms": 0,
            "minflt": 0, "majflt": 0, "cgroup": "/", "tty": None, **kw}


def thread(pid, tid, utime, start=OLD):
    return {"boot_id": "b1", "pid": pid, "tid": tid, "start_time": start, "name": f"t{tid}", "state": "S", "nice": 0,
            "priority": 20, "processor": 0, "utime": utime, "stime": 0.0, "minflt": 0, "majflt": 0}


def h1(i):
    """Processes and threads of h1 at snapshot i (None: the snapshot took neither)."""
    if i == 3:
        return None
    procs = [proc(1, 10.0 + i)]                                        # everywhere
    threads = [thread(1, 1, 5.0 + i), thread(1, 2, 1.0 + 2 * i)]
    if i in (0, 4, 5):                                                 # missed by snapshots 1 to 3
        procs.append(proc(20, 100.0 + 3 * i))
        threads.append(thread(20, 20, 50.0 + 3 * i))
    if i >= 2:                                                         # born between 1 and 2
        born = T0 + dt.timedelta(seconds=15)
        procs.append(proc(30, 0.5 * i, start=born))
        threads.append(thread(30, 30, 0.5 * i, start=born))
    procs.append(proc(40, 50.0 - i if i == 4 else 50.0 + i))          # backwards at 4
    if i < 4:                                                          # pid 50: a new instance from 4 on
        procs.append(proc(50, 7.0 + i))
    else:
        procs.append(proc(50, 0.1 * i, start=T0 + dt.timedelta(seconds=35)))
    if i == 2:
        procs.append(proc(60, 3.0))                                    # seen once
    return procs, threads


def snap(i, rows, host="h1", offset=0):
    ts = T0 + dt.timedelta(seconds=10 * i + offset)
    sid = int(ts.timestamp() * 1_000_000)
    common = {"snapshot_id": sid, "ts": ts}
    s = Snapshot(sid, ts, host)
    if rows is not None:
        s.tables["processes"] = _to_table("processes", rows[0], common)
        s.tables["threads"] = _to_table("threads", rows[1], common)
    s.tables["system"] = _to_table("system", [{"boot_time": BOOT, "uptime_s": (ts - BOOT).total_seconds(),
                                               "mem_total": 8_000_000_000}], common)
    s.tables["snapshots"] = _to_table("snapshots", [{"kernel": "k", "procsnap_version": "t", "duration_ms": 1.0,
                                                     "cpu_ms": 1.0, "recorder_pid": 1, "skipped": 0}], common)
    return s


def h2(i):
    return [proc(7, 1.0 + 4 * i)], [thread(7, 7, 1.0 + 4 * i)]


@pytest.fixture(scope="module", params=["per-snapshot", "compacted"])
def rec(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("psrates") / "rec"
    with Store(d) as st:
        for i in range(6):
            st.write(snap(i, h1(i)))
            st.write(snap(i, h2(i), host="h2", offset=5))
            if request.param == "compacted" and i == 3:  # 0-3 in compacted files, 4 and 5 beside them
                assert compact(st, 2) == 8
    return Recording.open([str(d)])


def view_load(rec, moment, threads):
    """ps's rows as they were read before rates_at: joined with the rate views over every snapshot."""
    key = {"h": moment.host, "s": moment.snapshot_id}
    _, sysrows = rec.execute("SELECT mem_total, uptime_s, boot_time FROM system WHERE host = $h AND snapshot_id = $s",
                             key)
    _, rows = rec.execute(
        "SELECT p.pid, p.ppid, p.pgid, p.sid, p.start_time, p.name, p.name_raw, p.cmdline, p.cmdline_raw, "
        "p.exe, p.state, p.uid, p.\"user\", p.ruid, p.gid, p.nice, p.priority, p.processor, p.num_threads, "
        "p.utime + p.stime, p.rss, p.vms, p.minflt, p.majflt, p.cgroup, p.tty, r.cpu_pct "
        "FROM processes p LEFT JOIN (SELECT boot_id, pid, start_time, cpu_pct FROM process_rates "
        "WHERE host = $h AND snapshot_id = $s) r "
        "ON r.pid = p.pid AND r.start_time = p.start_time AND r.boot_id IS NOT DISTINCT FROM p.boot_id "
        "WHERE p.host = $h AND p.snapshot_id = $s ORDER BY p.pid", key)
    trows = None
    if threads:
        _, trows = rec.execute(
            "SELECT t.pid, t.tid, t.start_time, t.name, t.name_raw, t.state, t.nice, t.priority, t.processor, "
            "t.utime + t.stime, t.minflt, t.majflt, r.cpu_pct "
            "FROM threads t LEFT JOIN (SELECT boot_id, pid, tid, start_time, cpu_pct FROM thread_rates "
            "WHERE host = $h AND snapshot_id = $s) r "
            "ON r.pid = t.pid AND r.tid = t.tid AND r.start_time = t.start_time "
            "AND r.boot_id IS NOT DISTINCT FROM t.boot_id "
            "WHERE t.host = $h AND t.snapshot_id = $s ORDER BY t.pid, t.tid", key)
    return P.build_procs(moment.host, moment.ts, sysrows[0] if sysrows else (None, None, None), rows, trows, False)


def moments(rec):
    _, rows = rec.execute("SELECT host, snapshot_id, ts FROM snapshots ORDER BY host, ts")
    return [Moment(*r) for r in rows]


@pytest.mark.parametrize("threads", [False, True])
def test_every_moment_has_the_views_rates(rec, threads):
    ms = moments(rec)
    assert len(ms) == 12
    seen_rates = 0
    for m in ms:
        got = P.load(rec, m, threads, False)
        assert got == view_load(rec, m, threads), (m, threads)
        seen_rates += sum(p.pcpu is not None for p in got)
    assert seen_rates


def test_the_cases_the_narrow_read_cannot_answer_alone(rec):
    """Spot checks that the fixture holds what it says (a rate across the gap, none backwards)."""
    by_ts = {m.ts: m for m in moments(rec) if m.host == "h1"}
    at4 = {p.pid: p for p in P.load(rec, by_ts[T0 + dt.timedelta(seconds=40)], False, False)}
    assert at4[20].pcpu == pytest.approx((3 * 4) / 40 * 100)     # from snapshot 0, across the gap
    assert at4[1].pcpu == pytest.approx(2 / 20 * 100)            # from snapshot 2, across the empty 3
    at5 = {p.pid: p for p in P.load(rec, by_ts[T0 + dt.timedelta(seconds=50)], False, False)}
    assert at5[20].pcpu == pytest.approx(3 / 10 * 100)
    assert at5[1].pcpu == pytest.approx(1 / 10 * 100)
    assert P.load(rec, by_ts[T0 + dt.timedelta(seconds=30)], False, False) == []   # took no processes


def test_top_has_the_views_rates_at_every_moment(rec):
    """procsnap top (and replay, which shows top's frames) reads rates as ps does: each task's %CPU and
    IO/s are the process_rates view's wherever the view has one (across gaps and new instances too)."""
    from analyze.commands.top.loading import load as top_load
    checked = 0
    for m in moments(rec):
        _, rows = rec.execute("SELECT pid, start_time, cpu_pct, read_bps + write_bps FROM process_rates "
                              "WHERE host = $h AND snapshot_id = $s", {"h": m.host, "s": m.snapshot_id})
        want = {(pid, start): (cpu, io) for pid, start, cpu, io in rows if cpu is not None}
        for t in top_load(rec, m).tasks:
            if (t.pid, t.start) in want:
                assert (t.cpu_pct, t.io_bps) == pytest.approx(want[(t.pid, t.start)]), (m, t.pid)
                checked += 1
    by_ts = {m.ts: m for m in moments(rec) if m.host == "h1"}
    at4 = {t.pid: t for t in top_load(rec, by_ts[T0 + dt.timedelta(seconds=40)]).tasks}
    assert at4[20].cpu_pct == pytest.approx((3 * 4) / 40 * 100)  # from snapshot 0, across the gap
    assert checked >= 10

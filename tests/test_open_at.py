"""Recording.open_at: a command about one moment reads only the files whose names say they can
hold the moment's snapshots, and answers exactly as over the whole recording: at every snapshot
and between snapshots, per-snapshot and compacted files (covered small files still on disk), two
hosts, two dates; damaged files it does not read are still named."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest

from analyze.commands import lsof as L
from analyze.commands import ps as P
from analyze.commands.top import loading as T
from analyze.errors import ProcsnapError
from analyze.data.db import AT_MOMENT, BEFORE, Recording, moments_for
from analyze.data.files import holding
from recorder.collect.collector import Snapshot
from recorder.collect.tables import to_table as _to_table
from recorder.store.compact import compact
from recorder.store.folder import Store

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 28, 23, 59, 20, tzinfo=UTC)  # snapshots on both sides of midnight
STEP = 20
N = 5


def snap(i: int, host: str) -> Snapshot:
    """Snapshot i of HOST: what each table holds changes with i, so a wrong file shows."""
    ts = T0 + dt.timedelta(seconds=STEP * i + (7 if host == "h2" else 0))
    sid = int(ts.timestamp() * 1_000_000)
    common = {"snapshot_id": sid, "ts": ts}
    s = Snapshot(sid, ts, host)
    start = T0 - dt.timedelta(hours=1)
    procs = [{"boot_id": "b", "pid": p, "ppid": 1, "pgid": p, "sid": 1, "start_time": start, "name": f"p{p}",
              "cmdline": f"p{p} --i {i}", "state": "S", "uid": 0, "user": "root", "ruid": 0, "gid": 0,
              "nice": 0, "priority": 20, "processor": 0, "num_threads": 1, "utime": 1.0 * i * p, "stime": 0.0,
              "rss": 4096 * i, "vms": 0, "minflt": 0, "majflt": 0, "cgroup": "/", "tty": None}
             for p in (1, 2, 100 + i)]
    # and one started since the snapshot before: no older row anywhere (ps does not look back for it)
    procs.append({**procs[0], "pid": 200 + i, "pgid": 200 + i, "start_time": ts - dt.timedelta(seconds=5),
                  "name": f"n{i}", "cmdline": f"n{i}", "utime": 0.5})
    files = [{"boot_id": "b", "start_time": start, "pid": p, "fd": str(fd), "fd_num": fd, "mode": "r",
              "type": "REG", "device": "8,1", "size": 10 * i, "pos": 0, "inode": 1000 * i + fd,
              "name": f"/data/{host}/{i}/{fd}", "name_raw": None, "deleted": False}
             for p in (1, 2) for fd in range(3 + i % 3)]
    files.append({"boot_id": "b", "start_time": start, "pid": 2, "fd": "9", "fd_num": 9, "mode": "u",
                  "type": "IPv4", "device": "77", "size": None, "pos": 0, "inode": 77000 + i, "proto": "TCP",
                  "name": f"127.0.0.1:{8000 + i} (LISTEN)", "name_raw": None, "deleted": False})
    socks = [{"boot_id": "b", "start_time": start, "pid": 2, "fd": 9, "inode": 77000 + i, "family": "IPv4",
              "proto": "TCP", "local_addr": "127.0.0.1", "local_port": 8000 + i, "remote_addr": "0.0.0.0",
              "remote_port": 0, "state": "LISTEN"}]
    s.tables["processes"] = _to_table("processes", procs, common)
    s.tables["open_files"] = _to_table("open_files", files, common)
    s.tables["sockets"] = _to_table("sockets", socks, common)
    s.tables["system"] = _to_table("system", [{"boot_time": T0 - dt.timedelta(days=1), "uptime_s": 86400.0 + (ts - T0).total_seconds(),
                                               "mem_total": 8 << 30}], common)
    s.tables["snapshots"] = _to_table("snapshots", [{"kernel": "k", "procsnap_version": "t", "duration_ms": 1.0,
                                                     "cpu_ms": 1.0, "recorder_pid": 1, "skipped": 0}], common)
    return s


@pytest.fixture(scope="module", params=["per-snapshot", "compacted"])
def recdir(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("openat") / request.param
    with Store(d) as st:
        for i in range(N):
            st.write(snap(i, "h1"))
            st.write(snap(i, "h2"))
            if request.param == "compacted" and i in (1, 3):  # 0-1 (the 28th) | 2-3 (29th) | 4 small
                assert compact(st, 2) > 0
    return d


def times():
    """--at at each snapshot of h1, between snapshots (after h2's), and the last (None)."""
    out = [None]
    for i in range(N):
        t = T0 + dt.timedelta(seconds=STEP * i)
        out += [t, t + dt.timedelta(seconds=12)]
    return [t if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in out]


@pytest.mark.parametrize("hosts,every", [(None, 1), (["h2"], 3)])
def test_lsof_and_ps_at_every_moment_answer_as_over_the_whole_recording(recdir, hosts, every):
    full = Recording.open([str(recdir)], hosts=hosts)
    fewer = ps_fewer = rated = 0
    for at in times()[::every]:
        try:
            rec, moments = Recording.open_at([str(recdir)], hosts, at, "open_files")
        except ProcsnapError as e:  # before the host's first snapshot
            with pytest.raises(ProcsnapError, match=re.escape(str(e))):
                full.moment(at, "open_files")
            continue
        assert moments == full.moment(at, "open_files"), at
        for args in ([], ["-p", "2"], ["-i", ":8003"]):
            o = L.parse_args(args)
            got, want = L.select(L.load(rec, moments, o), o), L.select(L.load(full, moments, o), o)
            assert (got.rows, got.missing) == (want.rows, want.missing), (at, args)
            assert got.rows or args == ["-i", ":8003"]
        fewer += len(rec.files["open_files"]) < len(full.files["open_files"])
        rec, moments = Recording.open_at([str(recdir)], hosts, at, None, whole=AT_MOMENT["ps"],
                                         before=BEFORE["ps"])
        assert moments == full.moment(at), at
        for m in moments:
            got = P.load(rec, m, False, False)
            assert got == P.load(full, m, False, False), at
            rated += sum(p.pcpu != p.cputime * 100 / p.elapsed for p in got)
        ps_fewer += len(rec.files["processes"]) < len(full.files["processes"])
        # top: its frame (summary rates from system_rates, %CPU from the snapshot before) as over the whole
        rec, moments = moments_for([str(recdir)], at, hosts, "top")
        for m in moments:
            assert T.load(rec, m) == T.load(full, m), at
    assert fewer and ps_fewer  # the moments (and ps's snapshots before them) read fewer files than the whole
    assert rated  # and ps's %CPU came from rates


def test_before_the_first_snapshot_is_the_same_error(recdir):
    with pytest.raises(ProcsnapError) as a:
        Recording.open_at([str(recdir)], None, "2026-11-28T00:00:00Z", "open_files")
    with pytest.raises(ProcsnapError) as b:
        Recording.open([str(recdir)]).moment("2026-11-28T00:00:00Z", "open_files")
    assert str(a.value) == str(b.value)


def test_damaged_files_it_does_not_read_are_still_named(recdir, tmp_path):
    import shutil
    d = tmp_path / "rec"
    shutil.copytree(recdir, d)
    files = sorted((d / "open_files").rglob("*.parquet"))
    first = ([f for f in files if f.name.startswith("c")] or files)[0]  # one read (not covered), of the first day
    first.write_bytes(first.read_bytes()[:100])
    err = io.StringIO()
    rec, moments = Recording.open_at([str(d)], None, None, "open_files", err=err)
    assert f"skipped {first}: truncated" in err.getvalue()
    assert str(first) not in rec.files["open_files"]
    assert [d.path for d in rec.damaged] == [str(first)]


def test_lsof_and_ps_open_at_the_moment_top_the_whole(recdir):
    rec, _ = moments_for([str(recdir)], None, None, "lsof")
    assert len(rec.files["open_files"]) < len(Recording.open([str(recdir)]).files["open_files"])
    rec, _ = moments_for([str(recdir)], None, None, "ps")
    whole = Recording.open([str(recdir)])
    # the moment's files, and those of the snapshot before (rates need the previous rows)
    assert len(rec.files["system"]) < len(rec.files["processes"]) < len(whole.files["processes"])
    rec, _ = moments_for([str(recdir)], None, None, "top")  # processes and system: the moment's and those before
    assert len(rec.files["system"]) == len(rec.files["processes"]) < len(whole.files["processes"])
    assert rec.files["open_files"] == [] and len(rec.files["snapshots"]) == len(whole.files["snapshots"])


def test_holding():
    files = ["/r/t/host=a/date=d/c10-20.parquet", "/r/t/host=a/date=d/21.parquet", "/r/t/host=a/date=d/c30-40.parquet",
             "/r/t/host=a/date=d/other.parquet", "/r/t/host=b/date=d/25.parquet"]
    assert holding(files, [10]) == [files[0], files[3]]
    assert holding(files, [20]) == [files[0], files[3]]
    assert holding(files, [21]) == [files[1], files[3]]
    assert holding(files, [22]) == [files[3]]                       # between files: only what may hold it
    assert holding(files, [15, 25, 40]) == [files[0], files[2], files[3], files[4]]
    assert holding(files, []) == [files[3]]
    assert holding(files, [41]) == [files[3]]

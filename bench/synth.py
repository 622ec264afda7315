#!/usr/bin/env python3
"""Synthesise a long procsnap recording from a few real snapshots.

    python3 bench/synth.py --from SRC --out DIR --duration 24h [--interval 5] [--fd-interval 60]
                           [--layout per-snapshot|compacted:N] [--leak-pid PID]

SRC is a real recording holding a few snapshots (``procsnap snapshot -o SRC``
run K times on the host to imitate). DIR receives a recording covering
--duration, starting at SRC's first snapshot, with one snapshot every
--interval seconds: each is a copy of one of SRC's snapshots (round robin)
with its ``snapshot_id`` and ``ts`` shifted, written with pyarrow in the
layout procsnap's recorder/store/folder.py writes::

    DIR/procsnap.json                                      (copied from SRC)
    DIR/<table>/host=<h>/date=<YYYY-MM-DD>/<snapshot_id>.parquet

``--layout compacted:N`` instead writes one ``c<first>-<last>.parquet`` file per
table, host, date and run of N snapshots (the compacted layout being added to
the recorder), so the same benchmark can be pointed at either layout.

Within a snapshot the ``snapshots`` file is written last (the commit rule).
Descriptor tables (open_files, sockets) are only written every --fd-interval
seconds (the recorder's slower cadence); other snapshots leave ``ms_open_files``,
``open_files_seen`` (and the sockets counterparts) NULL in their snapshots row.

To look like a real host over time, cheaply: host and per-process CPU
counters grow with time, one process (--leak-pid, default the process with
most descriptors) leaks one descriptor per descriptor snapshot (up to
--leak-max), and a few processes restart (new pid and start time) every
--churn-every snapshots.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

try:  # written as the recorder writes its files (dictionaries, statistics, no Arrow schema)
    from recorder.store.folder import parquet_options
except ImportError:  # run as bench/synth.py from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from recorder.store.folder import parquet_options

FD_TABLES = ("open_files", "sockets")
DATA_NAME = re.compile(r"^(\d+)\.parquet$")
UTC = dt.timezone.utc


def parse_seconds(s: str) -> float:
    m = re.fullmatch(r"\s*([\d.]+)\s*(ms|s|m|h|d)?\s*", str(s))
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {s!r}")
    return float(m.group(1)) * {"ms": 0.001, None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def load_source(src: Path) -> tuple[str, list[dict[str, pa.Table]]]:
    """The source's snapshots, each {table: arrow table}, in time order (first host found)."""
    snapdir = src / "snapshots"
    hosts = sorted(p for p in snapdir.iterdir() if p.is_dir() and p.name.startswith("host="))
    if not hosts:
        raise SystemExit(f"synth: {src} has no snapshots")
    hostpart = hosts[0].name
    ids: dict[str, str] = {}
    for datedir in sorted((snapdir / hostpart).iterdir()):
        for f in datedir.iterdir():
            if DATA_NAME.match(f.name):
                ids[f.stem] = datedir.name
    snaps = []
    for sid in sorted(ids, key=int):
        tables = {}
        for tdir in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            f = tdir / hostpart / ids[sid] / f"{sid}.parquet"
            if f.exists():
                # ParquetFile: the file's own columns, no hive columns inferred from the path
                tables[tdir.name] = pq.ParquetFile(f).read()
        snaps.append(tables)
    return hostpart, snaps


def _const(n: int, value, typ: pa.DataType) -> pa.Array:
    return pa.repeat(pa.scalar(value, type=typ), n) if hasattr(pa, "repeat") else pa.array([value] * n, type=typ)


def _set(t: pa.Table, name: str, arr) -> pa.Table:
    i = t.schema.get_field_index(name)
    return t if i < 0 else t.set_column(i, t.schema.field(i), arr)


def _add(t: pa.Table, name: str, delta) -> pa.Table:
    i = t.schema.get_field_index(name)
    if i < 0 or not delta:
        return t
    col = t.column(i)
    typ = col.type
    d = int(delta) if pa.types.is_integer(typ) else float(delta)
    return t.set_column(i, t.schema.field(i), pc.cast(pc.add(col, pa.scalar(d, type=typ)), typ))


class Synth:
    def __init__(self, src: Path, out: Path, duration: float, interval: float, fd_interval: float | None,
                 layout: str = "per-snapshot", leak_pid: int | None = None, leak_max: int = 5000,
                 churn_every: int = 60, churn_n: int = 3, compression: str = "zstd"):
        self.src, self.out = Path(src), Path(out)
        self.duration, self.interval = duration, interval
        self.fd_every = max(1, round((fd_interval or interval) / interval))
        self.layout = layout
        self.compact_n = int(layout.split(":", 1)[1]) if layout.startswith("compacted") else 0
        if layout != "per-snapshot" and self.compact_n <= 0:
            raise SystemExit(f"synth: unknown layout {layout!r} (per-snapshot or compacted:N)")
        self.leak_max, self.churn_every, self.churn_n = leak_max, churn_every, churn_n
        self.compression = compression
        self.hostpart, self.base = load_source(self.src)
        first = self.base[0]["snapshots"]
        self.t0_us = int(first.column("snapshot_id")[0].as_py())
        self.ts_type = first.schema.field("ts").type
        fdsnap = next((s for s in self.base if "open_files" in s), None)
        if leak_pid is None and fdsnap is not None:
            counts = pc.value_counts(fdsnap["open_files"].column("pid")).to_pylist()
            counts = [c for c in counts if c["values"] is not None]
            leak_pid = max(counts, key=lambda c: c["counts"])["values"] if counts else None
        self.leak_pid = leak_pid
        self.leak_rows = None
        if leak_pid is not None and fdsnap is not None:
            of = fdsnap["open_files"]
            rows = of.filter(pc.and_(pc.equal(of.column("pid"), leak_pid),
                                     pc.greater_equal(pc.fill_null(of.column("fd_num"), -1), 0)))
            self.leak_rows = rows.slice(0, 1) if rows.num_rows else None
        procs = self.base[0].get("processes")
        # Process instances in every source snapshot: the others come and go as the round robin
        # turns, and a real process never comes back, so each return is a new process (started
        # since the snapshot before), not the same one seen again.
        keys = [set(zip(b["processes"].column("pid").to_pylist(), b["processes"].column("start_time").to_pylist()))
                for b in self.base if "processes" in b]
        self.stable = pa.array(sorted({p for p, _ in set.intersection(*keys)}) if keys else [], type=pa.int32())
        pids = sorted(set(procs.column("pid").to_pylist()) - {leak_pid, 1}) if procs is not None else []
        step = max(1, len(pids) // max(churn_n, 1))
        self.churn_pids = pids[::step][:churn_n] if churn_n else []
        self.pending: dict[tuple[str, str], list[tuple[int, pa.Table]]] = {}
        self.files = 0
        self.bytes = 0

    # ------------------------------------------------------------------
    def _vary(self, name: str, t: pa.Table, i: int, sid: int, ts) -> pa.Table:
        n = t.num_rows
        elapsed = i * self.interval
        t = _set(t, "snapshot_id", _const(n, sid, pa.int64()))
        t = _set(t, "ts", _const(n, ts, self.ts_type))
        if name == "system":
            busy = elapsed * 0.3  # host CPU seconds grow
            for c in t.column_names:
                if c.startswith("cpu_") and c not in ("cpu_idle",):
                    t = _add(t, c, busy / 4)
            t = _add(t, "cpu_idle", elapsed)
            for c, per_s in (("ctxt", 2000), ("intr", 1000), ("forks", 2), ("uptime_s", 1)):
                t = _add(t, c, elapsed * per_s)
        elif name in ("processes", "threads"):
            t = _add(t, "utime", elapsed * 0.002)
            t = _add(t, "stime", elapsed * 0.001)
            t = _add(t, "ctxsw_voluntary", elapsed * 0.2)
        elif name in ("disks", "nics"):
            for c in ("read_bytes", "write_bytes", "rx_bytes", "tx_bytes", "reads", "writes", "rx_packets",
                      "tx_packets", "io_time_ms"):
                t = _add(t, c, elapsed * 100)
        if name == "snapshots":
            t = _set(t, "interval_s", _const(n, float(self.interval), pa.float64()))
            if i % self.fd_every:
                for c in t.column_names:
                    if any(c.startswith(p) for tb in FD_TABLES for p in (f"ms_{tb}", f"{tb}_")):
                        t = _set(t, c, pa.nulls(n, t.schema.field(c).type))
        # the leaker: one more descriptor per descriptor snapshot
        leaked = min(i // self.fd_every, self.leak_max)
        if self.leak_pid is not None and leaked:
            if name == "processes":
                m = pc.equal(t.column("pid"), self.leak_pid)
                nf = t.column("num_fds")
                t = _set(t, "num_fds", pc.if_else(m, pc.cast(pc.add(nf, leaked), nf.type), nf))
            elif name == "open_files" and self.leak_rows is not None:
                extra = self.leak_rows.take(pa.array([0] * leaked))
                extra = _set(extra, "snapshot_id", _const(leaked, sid, pa.int64()))
                extra = _set(extra, "ts", _const(leaked, ts, self.ts_type))
                nums = pa.array(range(20000, 20000 + leaked), type=pa.int32())
                extra = _set(extra, "fd_num", nums)
                mode = extra.column("mode") if "mode" in extra.column_names else None
                fd = pc.binary_join_element_wise(pc.cast(nums, pa.string()),
                                                 pc.fill_null(mode, "") if mode is not None else "", "")
                extra = _set(extra, "fd", pc.cast(fd, t.schema.field("fd").type))
                t = pa.concat_tables([t, extra.cast(t.schema)])
        if "pid" in t.column_names and "start_time" in t.column_names and n:
            pid, st = t.column("pid"), t.column("start_time")
            fresh = pc.invert(pc.fill_null(pc.is_in(pc.cast(pid, pa.int32()), value_set=self.stable), False))
            if pc.any(fresh).as_py():
                born = pa.scalar(ts - dt.timedelta(seconds=self.interval / 2), type=st.type)
                t = _set(t, "start_time", pc.if_else(fresh, born, st))
        # restarts: a few processes get a new pid and start time every churn_every snapshots
        gen = i // self.churn_every if self.churn_every else 0
        if gen and self.churn_pids and "pid" in t.column_names:
            pid = t.column("pid")
            m = pc.fill_null(pc.is_in(pid, value_set=pa.array(self.churn_pids, type=pid.type)), False)
            if pc.any(m).as_py():
                newpid = pc.cast(pc.add(pc.cast(pc.remainder(pc.cast(pid, pa.int64()), 1000), pa.int64()),
                                        3_000_000 + (gen % 1000) * 1000), pid.type)
                t = _set(t, "pid", pc.if_else(m, newpid, pid))
                if "tid" in t.column_names:
                    tid = t.column("tid")
                    t = _set(t, "tid", pc.if_else(pc.and_(m, pc.equal(tid, pid)), newpid, tid))
                if "start_time" in t.column_names:
                    st = t.column("start_time")
                    shifted = pc.cast(pc.add(pc.cast(st, pa.int64()),
                                             int(gen * self.churn_every * self.interval * 1e6)), st.type)
                    t = _set(t, "start_time", pc.if_else(m, shifted, st))
        return t

    def _write(self, path: Path, t: pa.Table) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, path, **parquet_options(t.schema, self.compression))
        self.files += 1
        self.bytes += path.stat().st_size

    def _flush(self, key: tuple[str, str]) -> None:
        parts = self.pending.pop(key, [])
        if not parts:
            return
        name, date = key
        first, last = parts[0][0], parts[-1][0]
        self._write(self.out / name / self.hostpart / f"date={date}" / f"c{first}-{last}.parquet",
                    pa.concat_tables([t for _, t in parts]))

    def _flush_date(self, date: str) -> None:
        keys = [k for k in self.pending if k[1] == date]
        for k in sorted(keys, key=lambda k: k[0] == "snapshots"):  # snapshots last
            self._flush(k)

    def run(self, progress=None) -> dict:
        if self.out.exists() and any(self.out.iterdir()):
            raise SystemExit(f"synth: {self.out} exists and is not empty")
        self.out.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker = self.src / "procsnap.json"
        if marker.exists():
            shutil.copyfile(marker, self.out / "procsnap.json")
        t_start = time.monotonic()
        n = int(self.duration // self.interval) + 1
        nb = len(self.base)
        fd_snaps = 0
        cur_date = None
        since = 0
        for i in range(n):
            sid = self.t0_us + int(round(i * self.interval * 1e6))
            ts = dt.datetime.fromtimestamp(sid / 1e6, UTC)
            date = ts.date().isoformat()
            if self.compact_n and cur_date is not None and (date != cur_date or since >= self.compact_n):
                self._flush_date(cur_date)
                since = 0
            cur_date = date
            since += 1
            fd = i % self.fd_every == 0
            fd_snaps += fd
            src = self.base[i % nb]
            if fd and "open_files" not in src:  # a base snapshot without descriptors: borrow any
                src = next((s for s in self.base if "open_files" in s), src)
            names = [t for t in src if t != "snapshots" and (fd or t not in FD_TABLES)] + ["snapshots"]
            for name in names:
                t = self._vary(name, src[name], i, sid, ts)
                if self.compact_n:
                    self.pending.setdefault((name, date), []).append((sid, t))
                else:
                    self._write(self.out / name / self.hostpart / f"date={date}" / f"{sid}.parquet", t)
            if progress and i and i % 1000 == 0:
                progress(f"synth: {i}/{n} snapshots, {self.bytes / 1e6:.0f} MB, {time.monotonic() - t_start:.0f} s")
        if cur_date is not None:
            self._flush_date(cur_date)
        last = self.t0_us + int(round((n - 1) * self.interval * 1e6))
        return {"snapshots": n, "fd_snapshots": fd_snaps, "files": self.files, "bytes": self.bytes,
                "seconds": time.monotonic() - t_start, "first_id": self.t0_us, "last_id": last,
                "first_ts": dt.datetime.fromtimestamp(self.t0_us / 1e6, UTC).isoformat(),
                "last_ts": dt.datetime.fromtimestamp(last / 1e6, UTC).isoformat(),
                "host": self.hostpart.split("=", 1)[1], "leak_pid": self.leak_pid, "churn_pids": self.churn_pids,
                "layout": self.layout, "interval": self.interval, "fd_every": self.fd_every,
                "base_snapshots": nb}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--from", dest="src", required=True, help="a real recording with a few snapshots")
    p.add_argument("--out", required=True, help="new recording folder (must not exist or be empty)")
    p.add_argument("--duration", type=parse_seconds, default=3600.0, help="span to cover (1h, 24h; default 1h)")
    p.add_argument("--interval", type=parse_seconds, default=5.0, help="seconds between snapshots (default 5)")
    p.add_argument("--fd-interval", type=parse_seconds, default=None,
                   help="seconds between descriptor snapshots (default: every snapshot)")
    p.add_argument("--layout", default="per-snapshot", help="per-snapshot (default) or compacted:N")
    p.add_argument("--leak-pid", type=int, help="process that leaks descriptors (default: the one with most)")
    p.add_argument("--leak-max", type=int, default=5000)
    p.add_argument("--churn-every", type=int, default=60, help="snapshots between restarts (0: none)")
    p.add_argument("--churn-n", type=int, default=3, help="processes restarted each time")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    s = Synth(Path(a.src), Path(a.out), a.duration, a.interval, a.fd_interval, a.layout, a.leak_pid, a.leak_max,
              a.churn_every, a.churn_n)
    info = s.run(None if a.quiet else lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Compaction of a recording, run by the recorder between snapshots in a child process.

An always-on recorder writes one small file per table per snapshot; thousands
of them make every reader slow. Compaction merges the committed small files of
a partition into one file per table, ``c<first>-<last>.parquet``, sorted by
entity then snapshot (SORT_KEYS). Retention (``recorder.store.retention``) drops the
oldest snapshots; :func:`maintain` runs both.

ORDER OF WRITES AND DELETES (readers never see a row twice nor miss one):

* compaction writes each table's compacted file (tmp, fsync, rename), the
  ``snapshots`` one last: that rename commits the compaction. A reader lists a
  partition and reads only files no other file covers
  (:func:`recorder.store.folder.select_visible`), so it reads either the small files or
  the compacted one, never both;
* the covered small files are deleted only once the compaction is committed
  and ``grace`` seconds old, so a reader that listed them just before can still
  open them;
* retention uncommits first (see ``recorder.store.retention``);
* :func:`recover`, run when a recorder opens the folder, finishes a compaction
  that was interrupted (its small files are all still there) or removes the
  data files of a range whose retention was interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from recorder.memory import give_back
from recorder.schema import TABLES
from recorder.store.folder import FULL_ERRNOS, Store
from recorder.store.layout import COMPACT_NAME, DATA_NAME, file_range, select_visible
from recorder.store.write import parquet_options
from recorder.store.retention import DATA_TABLES, drop_data, retain

# Rows buffered before a row group is written: bounds the compactor's memory whatever the batch.
ROW_GROUP_ROWS = 65_536
# Rows read from a small file at a time while a pid range is gathered, and the uncompressed size
# of a compacted row group (one pid range, held twice while it is sorted): smaller values lower
# the compaction child's peak memory, at the price of more CPU (each small file is read once per
# range) and slightly larger compacted files.
READ_BATCH_ROWS = 8_192
ROW_GROUP_BYTES = 4 << 20
# A compacted file is sorted by entity, then time: the rows of one process (thread, descriptor,
# socket, disk) across the range's snapshots sit next to each other, so Parquet's dictionary and
# run-length encodings store what did not change once (several times smaller than sorting by
# snapshot); row groups then hold pid ranges, which readers of one pid can skip to.
SORT_KEYS = {
    "processes": ("pid", "start_time", "snapshot_id"),
    "threads": ("pid", "tid", "start_time", "snapshot_id"),
    "open_files": ("pid", "start_time", "fd", "inode", "snapshot_id"),
    "sockets": ("pid", "fd", "inode", "snapshot_id"),
    "disks": ("device", "snapshot_id"),
    "nics": ("interface", "snapshot_id"),
    "filesystems": ("mount_point", "mount_id", "snapshot_id"),
    "kernel_events": ("snapshot_id", "seq"),  # the log's own order
    "process_events": ("snapshot_id", "kernel_ts_ns", "tid"),  # the order the kernel reported them
    "triggers": ("snapshot_id", "time"),
    "thread_samples": ("pid", "tid", "time"),
}


@dataclass
class Maintenance:
    """What the recorder does to a recording between snapshots.

    ``compact_min``: merge a partition once it has this many small committed snapshots
    (None: never compact). ``grace``: seconds a covered file stays after its compaction.
    ``keep``: seconds of history to keep; ``max_size``: bytes the folder may hold (None: no
    limit); retention never removes the newest snapshot.
    """

    compact_min: int | None = None
    grace: float = 120.0
    keep: float | None = None
    max_size: int | None = None
    resume: bool = False  # a compaction child was killed: the next pass finishes its work


@dataclass
class MaintenanceResult:
    compacted: int = 0  # snapshots merged into compacted files
    deleted: int = 0  # covered files deleted after their grace period
    dropped: int = 0  # snapshots removed by retention
    damaged: list = None  # (path, why) of small files compaction could not read (renamed *.damaged)
    killed: str | None = None  # why the compaction child died, when it was killed

    def __post_init__(self):
        if self.damaged is None:
            self.damaged = []


def _schema_for(table: str) -> pa.Schema:
    return TABLES[table].arrow_schema()


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """A file written by another procsnap version, in today's columns (missing ones NULL)."""
    cols = []
    for f in schema:
        if f.name in t.column_names:
            col = t.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(t.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _read(store: Store, p: Path, columns: list[str] | None = None) -> pa.Table:
    """One small file, read on this thread. Not pq.read_table: that goes through pyarrow.dataset,
    whose I/O threads each grow a malloc arena of their own."""
    with store.open_read(p) as f:
        return pq.ParquetFile(f).read(columns=columns, use_threads=False)


def _batches(store: Store, p: Path, verify: bool = False):
    """P's rows READ_BATCH_ROWS at a time, read on this thread (opened by the store: a regular
    file, never through a link). VERIFY checks every page's checksum where it has one, and that
    the file is one of procsnap's (a snapshot_id column)."""
    with store.open_read(p) as f:
        pf = pq.ParquetFile(f, page_checksum_verification=verify)
        if verify and "snapshot_id" not in pf.schema_arrow.names:
            raise ValueError("not a procsnap file (no snapshot_id column)")
        yield from pf.iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False)


def _write_sorted(store: Store, w, table: str, files: list[Path], schema: pa.Schema) -> None:
    """Write FILES' rows sorted by SORT_KEYS, a row group at a time.

    Tables with a pid go a pid range at a time: the pid column of every file is read first to
    cut the range into row groups of about ROW_GROUP_ROWS rows, then each row group reads every
    file again and keeps its rows in the range. Memory stays at one batch of a file plus one row
    group, not the whole range; the price is reading each file once per row group."""
    if not files:
        return
    # Here, not at the top: only the compaction child needs pyarrow.compute.
    import pyarrow.compute as pc
    keys = SORT_KEYS.get(table, ("snapshot_id",))
    sort = [(k, "ascending") for k in keys if k in schema.names]

    def emit(parts: list) -> None:
        """Sort and write the tables in parts (emptied: the unsorted rows are let go before the
        writer encodes the sorted ones)."""
        g = pa.concat_tables(parts)
        parts.clear()
        if g.num_rows:
            if g.num_rows > 1:
                g = g.take(pc.sort_indices(g, sort_keys=sort))
            w.write_table(g, row_group_size=max(g.num_rows, 1))

    if keys[0] != "pid":  # small tables (system, disks, nics, snapshots): one row group in practice
        t = pa.concat_tables([_conform(_read(store, p), schema) for p in files])
        for i in range(0, t.num_rows, ROW_GROUP_ROWS):
            emit([t.slice(i, ROW_GROUP_ROWS)])
        return
    pids = pa.chunked_array([_read(store, p, ["pid"]).column("pid") for p in files],
                            type=schema.field("pid").type).drop_null()
    pids = pids.take(pc.sort_indices(pids))
    # Rows per row group: ROW_GROUP_ROWS, fewer for wide rows (processes), so that a row group
    # stays near ROW_GROUP_BYTES uncompressed while it is sorted and encoded.
    sample = max(files, key=lambda p: store.lstat(p).st_size)  # bytes per row in memory, from the biggest file
    with store.open_read(sample) as f:
        first = next(pq.ParquetFile(f).iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False), None)
    per_row = first.nbytes / first.num_rows if first is not None and first.num_rows else 1
    del first
    step = max(1024, min(ROW_GROUP_ROWS, int(ROW_GROUP_BYTES / per_row)))
    bounds = sorted({pids[i].as_py() for i in range(step, len(pids), step)})
    del pids
    lo = None
    for hi in bounds + [None]:
        pieces = []
        for p in files:
            # A batch at a time, not the whole file: a descriptor snapshot's open_files decodes
            # to the largest tables of all.
            for batch in _batches(store, p):
                t = _conform(pa.Table.from_batches([batch]), schema)
                del batch
                pid = t.column("pid")
                if lo is None and hi is None:
                    mask = None
                elif hi is None:  # the last range takes the rows without a pid too
                    mask = pc.or_kleene(pc.greater_equal(pid, lo), pc.is_null(pid))
                elif lo is None:
                    mask = pc.fill_null(pc.less(pid, hi), False)
                else:
                    mask = pc.fill_null(pc.and_(pc.greater_equal(pid, lo), pc.less(pid, hi)), False)
                piece = t if mask is None else t.filter(mask)
                if piece.num_rows:
                    pieces.append(piece)
                del t, pid, mask
        if pieces:
            emit(pieces)
        lo = hi


DAMAGED_SUFFIX = ".damaged"


def _readable(store: Store, files: list[Path], damaged: list) -> list[Path]:
    """The files that read whole with their Parquet page checksums checked (where a page has
    one: a flipped byte that still decompresses would otherwise be merged into a clean-looking
    compacted file, with checksums of its own); each one that does not is added to damaged as
    (path, why). A damaged small file must not stop compaction (and with it retention) for good."""
    good = []
    for p in files:
        try:
            # A batch at a time: a whole descriptor file would decode at once.
            for _ in _batches(store, p, verify=True):
                pass
        except OSError as e:
            if e.errno in FULL_ERRNOS:
                raise
            damaged.append((p, f"{type(e).__name__}: {e}"))
        except Exception as e:  # noqa: BLE001 - Arrow's errors for a bad file are many kinds
            damaged.append((p, f"{type(e).__name__}: {e}"))
        else:
            good.append(p)
    return good


def _merge(store: Store, table: str, files: list[Path], final: Path, damaged: list | None = None) -> None:
    """FILES (in snapshot order) into FINAL sorted by SORT_KEYS: tmp, fsync, rename. A file that
    does not read is left out, and once FINAL is committed renamed NAME.damaged (kept for
    whoever wants to look at it; readers and retention no longer see it)."""
    schema = _schema_for(table)
    bad: list = []
    files = _readable(store, files, bad)
    with store.atomic(final) as fd, os.fdopen(fd, "wb", closefd=False) as f:
        with pq.ParquetWriter(f, schema, **parquet_options(schema, store.compression)) as w:
            _write_sorted(store, w, table, files, schema)
        f.flush()
    for p, why in bad:
        store.rename(p, p.name + DAMAGED_SUFFIX)
        if damaged is not None:
            damaged.append((str(p), why))


def compact_range(store: Store, host: str, date: str, ids: list[int], damaged: list | None = None) -> None:
    """Merge the small files of these committed snapshots (one partition) into compacted files,
    ``snapshots`` last. A table whose compacted file already exists (an interrupted run) is
    skipped: its rename was atomic, so it is whole."""
    first, last = min(ids), max(ids)
    name = f"c{first}-{last}.parquet"
    wanted = set(ids)
    for table in DATA_TABLES + ["snapshots"]:
        d = store.root / table / host / date
        final = d / name
        if store.lstat(final) is not None:
            continue
        files = []
        for n in store.listdir(d):
            m = DATA_NAME.match(n)
            if m and int(m.group(1)) in wanted and store.is_ours(d / n):
                files.append((int(m.group(1)), d / n))
        if not files:
            continue
        files.sort()
        _merge(store, table, [p for _, p in files], final, damaged)
        give_back()  # each table's merge starts from what the recorder keeps, not from the last one's peak


def compact(store: Store, compact_min: int, damaged: list | None = None) -> int:
    """Compact every partition holding at least COMPACT_MIN small committed snapshots newer than
    its last compacted range; returns the snapshots merged."""
    merged = 0
    for host, date, d in list(store.partitions("snapshots")):
        visible, _ = select_visible(store.listdir(d))
        end = max((file_range(n)[1] for n in visible if COMPACT_NAME.match(n)), default=-1)
        # Only snapshots after the last compacted range: a range never straddles another.
        ids = sorted(file_range(n)[0] for n in visible if DATA_NAME.match(n) and file_range(n)[0] > end)
        if len(ids) >= compact_min:
            compact_range(store, host, date, ids, damaged)
            merged += len(ids)
    return merged


def _committed_ranges(store: Store) -> dict[tuple[str, str], list[tuple[int, int]]]:
    out: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for host, date, d in store.partitions("snapshots"):
        for n in store.listdir(d):
            if COMPACT_NAME.match(n):
                out.setdefault((host, date), []).append(file_range(n))
    return out


def delete_covered(store: Store, grace: float, now: Callable[[], float] = time.time) -> int:
    """Delete files covered by a committed compaction at least GRACE seconds old."""
    committed = _committed_ranges(store)
    deleted = 0
    for table in TABLES:
        for host, date, d in list(store.partitions(table)):
            _, covered = select_visible(store.listdir(d))
            for n, cover in covered:
                r = file_range(cover)
                if not any(a <= r[0] and r[1] <= b for a, b in committed.get((host, date), ())):
                    continue  # the covering compaction is not committed yet
                st = store.lstat(store.root / "snapshots" / host / date / f"c{r[0]}-{r[1]}.parquet") or \
                    store.lstat(d / cover)
                if st is not None and now() - st.st_mtime >= grace and store.remove(d / n) is not None:
                    deleted += 1
    return deleted


def recover(store: Store) -> None:
    """Finish what a killed recorder left half done (run after ``Store.remove_uncommitted``).

    A compacted data file without its ``snapshots`` counterpart is an interrupted compaction
    when the range's small ``snapshots`` files are still there (finish it), or an interrupted
    retention when they are gone (remove the data files, whose snapshots were uncommitted).
    """
    committed = _committed_ranges(store)
    todo: dict[tuple[str, str, int, int], None] = {}
    for table in DATA_TABLES:
        for host, date, d in store.partitions(table):
            for n in store.listdir(d):
                if COMPACT_NAME.match(n):
                    a, b = file_range(n)
                    if not any(x <= a and b <= y for x, y in committed.get((host, date), ())):
                        todo[(host, date, a, b)] = None
    for host, date, a, b in todo:
        sd = store.root / "snapshots" / host / date
        ids = [file_range(n)[0] for n in store.listdir(sd) if DATA_NAME.match(n) and a <= file_range(n)[0] <= b]
        if ids and min(ids) == a and max(ids) == b:
            compact_range(store, host, date, ids)
        else:
            drop_data(store, host, date, a, b)


# How the recorder starts its compaction child: a fresh interpreter (not a fork: a fork shares
# the recorder's pages and copies those either side touches), which exits when it is done, so
# what compaction reads, sorts and encodes is never resident in the long-lived recorder.
CHILD = [sys.executable, "-m", "recorder.store.compact"]


class CompactionKilled(Exception):
    """The compaction child was killed (the OOM killer, an operator): the recording is whole,
    and the next pass finishes what it left."""


def compact_due(store: Store, compact_min: int) -> bool:
    """Some partition holds at least COMPACT_MIN small committed snapshots after its last
    compacted range (what :func:`compact` would merge)."""
    for _, _, d in store.partitions("snapshots"):
        visible, _ = select_visible(store.listdir(d))
        end = max((file_range(n)[1] for n in visible if COMPACT_NAME.match(n)), default=-1)
        if sum(1 for n in visible if DATA_NAME.match(n) and file_range(n)[0] > end) >= compact_min:
            return True
    return False


def compact_in_child(store: Store, compact_min: int, damaged: list | None = None, resume: bool = False) -> int:
    """Run :func:`compact` in a short-lived child process over the folder this recorder opened
    and locked (its descriptor is handed down; the recorder waits, so nothing else writes
    meanwhile). With RESUME (an earlier child was killed) the child first finishes or undoes what
    that one left: temporary files, a half-written range (the rules of a recorder's start). Returns the snapshots
    merged; raises CompactionKilled when the child is killed, RuntimeError when it fails."""
    import json
    import subprocess
    fd = store.fileno()
    argv = CHILD + ["--fd", str(fd), "--root", os.fspath(store.root), "--min", str(compact_min),
                    "--compression", store.compression] + (["--allow-shared"] if store.allow_shared else []) + \
        (["--resume"] if resume else [])
    # The child imports this very package, wherever the recorder found it.
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    # The child inherits the writer lock too: if the recorder dies meanwhile, no new recorder
    # starts on the folder until the child is done.
    lock = store.lock_fileno()
    p = subprocess.run(argv, pass_fds=(fd,) if lock is None else (fd, lock), capture_output=True, input=json.dumps(store.notices()).encode(),
                       env=env)
    lines = p.stderr.decode(errors="replace").splitlines()
    # The child's notices ("procsnap: ...") reach the recorder's log; a traceback never does.
    for line in lines:
        if line.startswith("procsnap: "):
            sys.stderr.write(line + "\n")
    sys.stderr.flush()
    if p.returncode < 0:
        raise CompactionKilled(f"compaction child killed by {signal.Signals(-p.returncode).name}")
    if p.returncode != 0:
        last = next((x.strip() for x in reversed(lines) if x.strip()), "")
        raise RuntimeError(f"compaction child exited with status {p.returncode}" + (f": {last}" if last else ""))
    out = json.loads(p.stdout)
    store.mark_said(out["said"])
    if damaged is not None:
        damaged.extend(tuple(x) for x in out["damaged"])
    return out["compacted"]


def main(argv: list[str] | None = None) -> int:
    """The compaction child: ``python -m recorder.store.compact --fd N --root DIR --min K``.
    Reads the notices the recorder said already (a JSON list) on stdin; prints
    {"compacted": n, "damaged": [[path, why], ...], "said": [notice, ...]} on stdout."""
    import argparse
    import json
    ap = argparse.ArgumentParser(prog="python -m recorder.store.compact")
    ap.add_argument("--fd", type=int, required=True, help="descriptor of the locked recording folder")
    ap.add_argument("--root", required=True)
    ap.add_argument("--min", type=int, required=True)
    ap.add_argument("--compression", default="zstd")
    ap.add_argument("--allow-shared", action="store_true")
    ap.add_argument("--resume", action="store_true", help="an earlier child was killed: finish what it left")
    a = ap.parse_args(argv)
    store = Store.adopt(a.fd, a.root, a.compression, a.allow_shared)
    store.mark_said(json.load(sys.stdin))
    if a.resume:
        store.remove_uncommitted()
        recover(store)
    damaged: list = []
    merged = 0
    try:
        merged = compact(store, a.min, damaged)
    except OSError as e:
        if e.errno not in FULL_ERRNOS:
            raise
    json.dump({"compacted": merged, "damaged": damaged, "said": store.notices()}, sys.stdout)
    return 0


def maintain(store: Store, m: Maintenance, now: Callable[[], float] = time.time) -> MaintenanceResult:
    """One maintenance pass: compaction (in a child process, when a partition is due), deletion
    of covered files past their grace, retention. A full disk stops the compaction (its temporary
    file is removed) but not the retention; a killed compaction child is said in the result and
    its work finished by the next pass."""
    res = MaintenanceResult()
    if m.compact_min:
        if compact_due(store, m.compact_min) or m.resume:
            try:
                res.compacted = compact_in_child(store, m.compact_min, res.damaged, m.resume)
                m.resume = False
            except CompactionKilled as e:
                res.killed = str(e)
                m.resume = True
        res.deleted = delete_covered(store, m.grace, now)
    res.dropped = retain(store, m.keep, m.max_size, now)
    return res


if __name__ == "__main__":
    sys.exit(main())

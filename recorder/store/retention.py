"""Retention of a recording: the oldest snapshots go when it is older than ``keep`` or bigger
than ``max_size``.

Retention uncommits first: the ``snapshots`` files of the oldest range go first (so no row of
it is visible any more), then that range's data files. A recorder killed in between leaves data
files without snapshots, which :func:`drop_data` removes (called by
``recorder.store.compact.recover`` when a recorder opens the folder).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from recorder.schema import TABLES
from recorder.store.folder import Store
from recorder.store.layout import file_range, select_visible

DATA_TABLES = [t for t in TABLES if t != "snapshots"]


def retain(store: Store, keep: float | None, max_size: int | None,
           now: Callable[[], float] = time.time) -> int:
    """Drop the oldest snapshots (a whole file's range at a time) until the recording is no
    older than KEEP seconds and no bigger than MAX_SIZE bytes; the newest file of snapshots is
    always kept. Returns the snapshots dropped."""
    if keep is None and max_size is None:
        return 0
    units = []  # (last id, first id, host, date, visible name)
    for host, date, d in store.partitions("snapshots"):
        visible, _ = select_visible(store.listdir(d))
        for n in visible:
            r = file_range(n)
            if r:
                units.append((r[1], r[0], host, date, n))
    units.sort()
    units = units[:-1]  # never the newest
    total = store.size() if max_size is not None else 0
    cutoff = (now() - keep) * 1_000_000 if keep is not None else None
    dropped = 0
    for last, first, host, date, name in units:
        too_old = cutoff is not None and last < cutoff
        too_big = max_size is not None and total > max_size
        if not (too_old or too_big):
            break
        freed, n = drop_range(store, host, date, first, last, name)
        total -= freed
        dropped += n
    return dropped


def drop_range(store: Store, host: str, date: str, first: int, last: int, name: str) -> tuple[int, int]:
    """Uncommit the range (its ``snapshots`` files, the visible one last but before any data),
    then delete its data files; returns the bytes freed and the snapshots dropped."""
    freed = 0
    sd = store.root / "snapshots" / host / date
    try:
        with store.open_read(sd / name) as f:
            count = pq.ParquetFile(f).metadata.num_rows  # one row per snapshot
    except (OSError, pa.ArrowException):
        count = 1

    def rm(p: Path) -> None:
        nonlocal freed
        freed += store.remove(p) or 0

    # Covered small snapshots files first (invisible), so none reappears when the cover goes.
    for n in store.listdir(sd):
        r = file_range(n)
        if r and n != name and first <= r[0] and r[1] <= last:
            rm(sd / n)
    rm(sd / name)
    store.fsync_dir(sd)
    for table in DATA_TABLES:
        d = store.root / table / host / date
        for n in store.listdir(d):
            r = file_range(n)
            if r and first <= r[0] and r[1] <= last:
                rm(d / n)
        freed += store.rmdir_empty(d)
    freed += store.rmdir_empty(sd)
    return freed, count


def drop_data(store: Store, host: str, date: str, a: int, b: int) -> None:
    """Remove the data files of the snapshots A..B of one partition (their snapshots files are
    gone: an interrupted retention), then the folders left empty."""
    for table in DATA_TABLES:
        d = store.root / table / host / date
        for n in store.listdir(d):
            r = file_range(n)
            if r and a <= r[0] and r[1] <= b:
                store.remove(d / n)
        store.rmdir_empty(d)

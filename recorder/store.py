"""Writing a recording: a folder of hive-partitioned Parquet.

Layout::

    DIR/procsnap.json                                   marker: format and version
    DIR/<table>/host=<host>/date=<YYYY-MM-DD>/<snapshot_id>.parquet      one snapshot
    DIR/<table>/host=<host>/date=<YYYY-MM-DD>/c<first>-<last>.parquet    compacted

A compacted file holds the rows of the snapshots ``first..last`` (ids, both
included) of its partition; it *covers* every file whose id range lies inside
its own. Readers use only the files no other file covers (see
:func:`select_visible`), so a snapshot's rows are read exactly once whether
its small file, its compacted file or both are on disk (see
``recorder.compact`` for the order of writes and deletes).

ATOMICITY RULE (the one place it is written down): every Parquet file is
written under a temporary name starting with '.', fsync'ed, and renamed into
place, and the folder is fsync'ed; readers ignore names starting with '.' or
'_'. Within one snapshot the ``snapshots`` file is renamed into place last: a
snapshot is committed when, and only when, its ``snapshots`` row exists. Rows
of other tables without a committed snapshot (the recorder died in between)
are invisible to the analyzer's views and are removed when a recorder next
opens the folder. Deleting runs the other way round: a snapshot is uncommitted
(its ``snapshots`` file removed) before its data files are.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
from pathlib import Path

from . import __version__
from .collect import Snapshot
from .pqwrite import Columns
from .schema import TABLES

from .layout import (COMPACT_NAME, DATA_NAME, FORMAT, FORMAT_VERSION, MARKER, file_range,  # noqa: F401 - re-exported
                     is_recording, list_names, partition_value, partitions, select_visible)

# errno values meaning "the disk (or quota) is full": the recorder drops snapshots, not data.
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class StoreError(Exception):
    """A recording folder cannot be written (not a recording, not writable, …)."""


class StoreFull(StoreError):
    """A snapshot could not be written because the file system is full; nothing of it is left."""



def _mkdir_private(d: Path, root: Path) -> None:
    """Create d and the folders between root and it, each 0700 (mkdir(parents=True) gives the
    parents the default mode)."""
    if d == root or d.is_dir():
        return
    _mkdir_private(d.parent, root)
    d.mkdir(mode=0o700, exist_ok=True)


# Columns whose min/max go into the files' footers: what readers select on (a moment, a process,
# a descriptor) and compaction's pid-range row groups are pruned by. The others' statistics
# were a third of a small file (a snapshot's one-row system file: 18.6 -> 11.5 KB without).
STATS_COLUMNS = frozenset(("snapshot_id", "ts", "boot_id", "pid", "start_time", "tid", "fd_num", "inode"))


def parquet_options(schema, compression: str = "zstd", rows: int | None = None) -> dict:
    """How every procsnap Parquet file is written (a snapshot's, and compaction's).

    Measured on a snapshot of a 1000-process host (1045 KB with pyarrow's defaults, 927 KB
    with these; the six tables of a snapshot without descriptors 135 -> 84 KB): dictionaries
    for text columns only (counters, sizes and addresses are mostly distinct, and a dictionary
    that overflows to plain pages costs more than plain pages alone); statistics for
    STATS_COLUMNS only; and no serialized Arrow schema, which every reader rebuilds from the
    Parquet types (the same Arrow types: timestamps with tz=UTC included). Dictionary pages of
    64 KB would take another 12% off the descriptor tables, but the writer then holds 5 MB
    more while it writes them, at the recorder's peak. Every page carries a CRC of its bytes
    (write_page_checksum), so a reader that verifies them rejects a flipped byte that would
    still decode (issue 18). A table of one row (a snapshot's system and snapshots files) is
    not compressed: each compressed column chunk costs a compression context, and for one
    value the result is larger (system: 7.3 -> 6.8 KB, written in 0.65 ms instead of 2.0)."""
    import pyarrow as pa
    if rows == 1:
        compression = "none"
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
    return dict(compression=compression, use_dictionary=text,
                write_statistics=[f.name for f in schema if f.name in STATS_COLUMNS], store_schema=False,
                write_page_checksum=True)


class Store:
    """Appends snapshots to a recording folder, creating it if needed."""

    def __init__(self, root: str | os.PathLike, compression: str = "zstd"):
        self.root = Path(root)
        self.compression = compression
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} exists and is not a folder")
        if self.root.is_dir() and any(self.root.iterdir()) and not is_recording(self.root):
            raise StoreError(f"{self.root} is not empty and is not a procsnap recording; choose an empty or new folder")
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {self.root}: {e.strerror}") from None
        mode = stat.S_IMODE(self.root.stat().st_mode)
        if mode & 0o077:
            print(f"procsnap: warning: {self.root} is readable by others (mode {mode:o}); recordings hold command lines",
                  file=sys.stderr)
        # One writer per folder: a second recorder would race the clean-up below.
        self._lock_fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StoreError(f"another procsnap recorder is writing to {self.root}") from None
        marker = self.root / MARKER
        if not marker.exists():
            import json
            self._write_bytes(marker, json.dumps(
                {"format": FORMAT, "version": FORMAT_VERSION, "writer": f"procsnap {__version__}"}, indent=1
            ).encode() + b"\n")
        self.remove_uncommitted()

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------
    def _fsync_dir(self, d: Path) -> None:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_bytes(self, final: Path, data: bytes) -> None:
        tmp = final.with_name("." + final.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
        self._fsync_dir(final.parent)

    def _write_table(self, final: Path, table) -> int:
        _mkdir_private(final.parent, self.root)
        tmp = final.with_name("." + final.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            import pyarrow.parquet as pq
            if isinstance(table, Columns):
                table = table.to_arrow()
            with os.fdopen(fd, "wb", closefd=False) as f:
                pq.write_table(table, f, **parquet_options(table.schema, self.compression, table.num_rows))
                f.flush()
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        try:
            os.rename(tmp, final)
            self._fsync_dir(final.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final.stat().st_size

    def partition_dir(self, table: str, host: str, date) -> Path:
        return self.root / table / f"host={partition_value(host)}" / f"date={date.isoformat()}"

    def write(self, snap: Snapshot) -> int:
        """Write one snapshot; returns the bytes written. Commits last.

        If any file cannot be written, the files already written for this snapshot are
        removed again (it was never committed), so a failed write leaves the recording as
        it was; a full disk raises :class:`StoreFull`.
        """
        total = 0
        names = [t for t in snap.tables if t != "snapshots"] + ["snapshots"]
        done: list[Path] = []
        try:
            for name in names:
                final = self.partition_dir(name, snap.host, snap.date) / f"{snap.snapshot_id}.parquet"
                total += self._write_table(final, snap.tables[name])
                done.append(final)
        except OSError as e:
            for f in done:
                f.unlink(missing_ok=True)
            if e.errno in FULL_ERRNOS:
                raise StoreFull(f"{self.root}: {os.strerror(e.errno)}") from None
            raise
        return total

    def size(self) -> int:
        """Bytes of every file under the folder (covered and temporary files included)."""
        total = 0
        for dirpath, _, files in os.walk(self.root):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except FileNotFoundError:
                    pass
        return total

    # ------------------------------------------------------------------
    def remove_uncommitted(self) -> int:
        """Delete temporary files and small data files of snapshots never committed.

        A snapshot is committed by its own ``snapshots`` file or by a compacted
        ``snapshots`` file whose range holds its id. Compacted data files are left to
        :func:`recorder.compact.recover`, which finishes or undoes an interrupted
        compaction or retention.
        """
        committed: dict[str, set[int]] = {}
        ranges: dict[str, list[tuple[int, int]]] = {}
        for host, _, d in partitions(self.root, "snapshots"):
            for n in list_names(d):
                r = file_range(n)
                if r is None:
                    continue
                if DATA_NAME.match(n):
                    committed.setdefault(host, set()).add(r[0])
                else:
                    ranges.setdefault(host, []).append(r)
        removed = 0
        for name in TABLES:
            for host, _, d in partitions(self.root, name):
                for n in list_names(d):
                    f = d / n
                    if n.startswith(".") and n.endswith(".tmp"):
                        f.unlink(missing_ok=True)
                        removed += 1
                        continue
                    m = DATA_NAME.match(n)
                    if not m or name == "snapshots":
                        continue
                    sid = int(m.group(1))
                    if sid in committed.get(host, ()) or any(a <= sid <= b for a, b in ranges.get(host, ())):
                        continue
                    f.unlink(missing_ok=True)
                    removed += 1
        return removed

"""Writing a recording: a folder of hive-partitioned Parquet.

Layout::

    DIR/procsnap.json                                   marker: format and version
    DIR/<table>/host=<host>/date=<YYYY-MM-DD>/<snapshot_id>.parquet

ATOMICITY RULE (the one place it is written down): every Parquet file is
written under a temporary name starting with '.', fsync'ed, and renamed into
place, and the folder is fsync'ed; readers ignore names starting with '.' or
'_'. Within one snapshot the ``snapshots`` file is renamed into place last: a
snapshot is committed when, and only when, its ``snapshots`` row exists. Rows
of other tables without a committed snapshot (the recorder died in between)
are invisible to the analyzer's views and are removed when a recorder next
opens the folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import sys
import urllib.parse
from pathlib import Path

import pyarrow.parquet as pq

from . import __version__
from .collect import Snapshot
from .schema import TABLES

FORMAT = "procsnap-recording"
FORMAT_VERSION = 1
MARKER = "procsnap.json"
DATA_NAME = re.compile(r"^(\d+)\.parquet$")


class StoreError(Exception):
    """A recording folder cannot be written (not a recording, not writable, …)."""


def partition_value(v: str) -> str:
    """Hive partition values are URL-escaped, like Spark and Trino write them."""
    return urllib.parse.quote(v, safe="")


def is_recording(path: Path) -> bool:
    return (path / MARKER).is_file() or (path / "snapshots").is_dir()


def _mkdir_private(d: Path, root: Path) -> None:
    """Create d and the folders between root and it, each 0700 (mkdir(parents=True) gives the
    parents the default mode)."""
    if d == root or d.is_dir():
        return
    _mkdir_private(d.parent, root)
    d.mkdir(mode=0o700, exist_ok=True)


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
            with os.fdopen(fd, "wb", closefd=False) as f:
                pq.write_table(table, f, compression=self.compression)
                f.flush()
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.rename(tmp, final)
        self._fsync_dir(final.parent)
        return final.stat().st_size

    def partition_dir(self, table: str, host: str, date) -> Path:
        return self.root / table / f"host={partition_value(host)}" / f"date={date.isoformat()}"

    def write(self, snap: Snapshot) -> int:
        """Write one snapshot; returns the bytes written. Commits last."""
        total = 0
        names = [t for t in snap.tables if t != "snapshots"] + ["snapshots"]
        for name in names:
            d = self.partition_dir(name, snap.host, snap.date)
            total += self._write_table(d / f"{snap.snapshot_id}.parquet", snap.tables[name])
        return total

    # ------------------------------------------------------------------
    def remove_uncommitted(self) -> int:
        """Delete temporary files and data files of snapshots never committed."""
        committed: set[tuple[str, str]] = set()
        snaps = self.root / "snapshots"
        if snaps.is_dir():
            for hostdir in snaps.iterdir():
                for datedir in hostdir.iterdir() if hostdir.is_dir() else ():
                    for f in datedir.iterdir() if datedir.is_dir() else ():
                        m = DATA_NAME.match(f.name)
                        if m:
                            committed.add((hostdir.name, m.group(1)))
        removed = 0
        for name in TABLES:
            tdir = self.root / name
            if not tdir.is_dir():
                continue
            for hostdir in tdir.iterdir():
                if not hostdir.is_dir():
                    continue
                for datedir in hostdir.iterdir():
                    if not datedir.is_dir():
                        continue
                    for f in datedir.iterdir():
                        if f.name.startswith(".") and f.name.endswith(".tmp"):
                            f.unlink(missing_ok=True)
                            removed += 1
                            continue
                        m = DATA_NAME.match(f.name)
                        if m and name != "snapshots" and (hostdir.name, m.group(1)) not in committed:
                            f.unlink(missing_ok=True)
                            removed += 1
        return removed

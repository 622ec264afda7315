"""How a table becomes a Parquet file of a recording: every file procsnap writes (a snapshot's,
compaction's) is written with these options, and what a snapshot hands the store."""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Mapping, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

# Columns whose min/max go into the files' footers: what readers select on (a moment, a process,
# a descriptor) and compaction's pid-range row groups are pruned by. The others' statistics
# would be a large part of a small file.
STATS_COLUMNS = frozenset(("snapshot_id", "ts", "boot_id", "pid", "start_time", "tid", "fd_num", "inode"))


class SnapshotTables(Protocol):
    """What the store writes of a snapshot: its id, host and date (the partition values) and one
    Arrow table per schema table. The collector's Snapshot is one; the store needs nothing else."""

    snapshot_id: int
    host: str
    tables: Mapping[str, "pa.Table"]

    @property
    def date(self) -> dt.date: ...


def parquet_options(schema, compression: str = "zstd", rows: int | None = None) -> dict:
    """How every procsnap Parquet file is written (a snapshot's, and compaction's).

    Dictionaries for text columns only (counters, sizes and addresses are mostly distinct, and a
    dictionary that overflows to plain pages costs more than plain pages alone); statistics for
    STATS_COLUMNS only; no serialized Arrow schema, which every reader rebuilds from the Parquet
    types (the same Arrow types: timestamps with tz=UTC included). Dictionary pages stay at the
    default size: larger ones would hold more of the writer's memory at the recorder's peak.
    Every page carries a CRC of its bytes (write_page_checksum), so a reader that verifies them
    rejects a flipped byte that would still decode. A table of one row (a snapshot's system and
    snapshots files) is not compressed: each compressed column chunk costs a compression
    context, and for one value the result is larger and slower to write."""
    import pyarrow as pa
    if rows == 1:
        compression = "none"
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
    return dict(compression=compression, use_dictionary=text,
                write_statistics=[f.name for f in schema if f.name in STATS_COLUMNS], store_schema=False,
                write_page_checksum=True)


def write_parquet(fd: int, table: "pa.Table", compression: str = "zstd") -> int:
    """Write TABLE as one Parquet file to the open file FD (not closed); returns its size."""
    import pyarrow.parquet as pq
    with os.fdopen(fd, "wb", closefd=False) as f:
        pq.write_table(table, f, **parquet_options(table.schema, compression, table.num_rows))
        f.flush()
    return os.fstat(fd).st_size

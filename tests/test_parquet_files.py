"""The Parquet files procsnap writes (recorder/store/folder.py's parquet_options, the one writer: pyarrow):
every file of a snapshot and of a compaction carries page checksums that catch a flipped byte,
reads back equal to what was collected (pyarrow and DuckDB), keeps statistics where readers
prune on them, and a snapshot of every table of this host reads back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recorder.store import compact as C
from recorder.collect.collector import Collector
from recorder.schema import TABLES
from recorder.store.folder import Store
from recorder.store.write import STATS_COLUMNS, parquet_options

pytestmark = pytest.mark.live

UTC = dt.timezone.utc


def sql(text: str):
    return duckdb.connect().execute(text)


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return v, i


def page_crc(b: bytes, off: int) -> int | None:
    """The crc field of the Thrift (compact protocol) PageHeader at off, None when the page has
    none. Fields 1-3 (type, uncompressed and compressed size) are i32s with field deltas of 1; a
    crc is field 4, another i32 with a delta of 1 (header byte 0x15), before the page's header
    struct (field 5, 7 or 8)."""
    i = off
    for _ in range(3):
        assert b[i] == 0x15, f"not a page header at {off}"
        _, i = _varint(b, i + 1)
    if b[i] != 0x15:
        return None
    z, _ = _varint(b, i + 1)
    return (z >> 1) ^ -(z & 1)


def column_chunks(path: Path):
    """(first page offset, end) of every column chunk of a file."""
    md = pq.ParquetFile(path).metadata
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            cc = md.row_group(g).column(c)
            start = cc.dictionary_page_offset if cc.has_dictionary_page else cc.data_page_offset
            yield cc.path_in_schema, start, start + cc.total_compressed_size


def assert_checksummed(path: Path, tmp_path: Path) -> None:
    """Every column chunk's first page has a crc, and a byte flipped in its last data page makes
    a verifying read fail (while the file as written reads back the same with verification)."""
    data = path.read_bytes()
    plain = pq.read_table(path)
    assert pq.read_table(path, page_checksum_verification=True).equals(plain)
    bad = tmp_path / ("flipped-" + path.name)
    for name, start, end in column_chunks(path):
        assert page_crc(data, start) is not None, (path, name)
        b = bytearray(data)
        b[end - 1] ^= 0x01  # the last byte of a chunk is in its last data page's body
        bad.write_bytes(b)
        with pytest.raises(OSError, match="(?i)crc|checksum"):
            pq.read_table(bad, page_checksum_verification=True)


def parquet_files(rec: Path) -> list[Path]:
    return sorted(p for p in rec.rglob("*.parquet") if not p.name.startswith("."))


def test_every_file_of_a_snapshot_has_page_checksums(tmp_path):
    snap = Collector().snapshot()
    with Store(tmp_path / "rec") as st:
        st.write(snap)
    files = parquet_files(tmp_path / "rec")
    assert {f.parts[-4] for f in files} == set(snap.tables)
    for f in files:
        assert_checksummed(f, tmp_path)
        # and reads back as the table that was collected
        assert pq.read_table(f).equals(snap.tables[f.parts[-4]]), f


def test_every_file_of_a_compaction_has_page_checksums(tmp_path):
    c = Collector(host="h", tables=("system", "processes", "threads"))
    snaps = [c.snapshot() for _ in range(3)]
    with Store(tmp_path / "rec") as st:
        for s in snaps:
            st.write(s)
        assert C.compact(st, compact_min=2) > 0
    compacted = [f for f in parquet_files(tmp_path / "rec") if f.name.startswith("c")]
    assert {f.parts[-4] for f in compacted} == set(snaps[0].tables)
    for f in compacted:
        assert_checksummed(f, tmp_path)
        table = f.parts[-4]
        got = pq.read_table(f).sort_by([("snapshot_id", "ascending")])
        want = pa.concat_tables([s.tables[table] for s in snaps]).sort_by([("snapshot_id", "ascending")])
        assert got.num_rows == want.num_rows and sorted(got.to_pylist(), key=repr) == sorted(want.to_pylist(), key=repr)


def test_the_checksum_check_can_fail(tmp_path):
    """The same file written without checksums has none by page_crc (the parser is not blind)."""
    t = pa.table({"pid": pa.array([1, 2, 3], pa.int32())})
    opts = parquet_options(t.schema)
    for on in (True, False):
        p = tmp_path / f"{on}.parquet"
        pq.write_table(t, p, **{**opts, "write_page_checksum": on})
        (_, start, _), = column_chunks(p)
        assert (page_crc(p.read_bytes(), start) is not None) is on


def test_statistics_only_where_readers_prune_and_duckdb_prunes(tmp_path):
    """Min/max for STATS_COLUMNS only (what readers select on); DuckDB skips a file by them."""
    snap = Collector(tables=("processes",)).snapshot()
    with Store(tmp_path / "rec") as st:
        st.write(snap)
    f = next((tmp_path / "rec" / "processes").rglob("*.parquet"))
    md = pq.ParquetFile(f).metadata.row_group(0)
    stats = {md.column(i).path_in_schema: md.column(i).statistics for i in range(md.num_columns)}
    pids = snap.tables["processes"].column("pid").to_pylist()
    assert (stats["pid"].min, stats["pid"].max) == (min(pids), max(pids))
    assert stats["ts"].min == stats["ts"].max == snap.ts
    assert {n for n, s in stats.items() if s is not None and s.has_min_max} == STATS_COLUMNS & set(stats)
    assert stats["name"] is None or not stats["name"].has_min_max
    # and DuckDB prunes on them: a pid outside [min, max] reads nothing
    assert sql(f"SELECT count(*) FROM read_parquet('{f}') WHERE pid = {max(pids) + 1000}").fetchone() == (0,)


def test_a_real_snapshot_of_every_table_reads_back(tmp_path):
    """Every table of a snapshot of this host: the file reads back (pyarrow and DuckDB) as the
    Arrow table of the recorder's schema."""
    snap = Collector().snapshot()
    assert snap.tables["open_files"].num_rows > 0 and snap.tables["sockets"].num_rows > 0
    with Store(tmp_path / "rec") as st:
        st.write(snap)
    for name, t in snap.tables.items():
        want = t
        assert want.schema == TABLES[name].arrow_schema()
        path = next((tmp_path / "rec" / name).rglob("*.parquet"))
        got = pq.read_table(path)
        assert got.equals(want), name
        assert sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchone() == (want.num_rows,)
        rows = sql(f"SELECT * FROM read_parquet('{path}')").fetchall()
        for j, f in enumerate(want.schema):
            a, b = [r[j] for r in rows], want.column(f.name).to_pylist()
            if pa.types.is_timestamp(f.type):
                a = [None if v is None else v.astimezone(UTC) for v in a]
            assert a == b, (name, f.name)


def test_compression_is_an_option(tmp_path):
    """Another compression than zstd: the same rows, that codec on disk, checksums still on."""
    snap = Collector(tables=("processes",)).snapshot()
    for comp, d in (("zstd", tmp_path / "c"), ("snappy", tmp_path / "p")):
        with Store(d, compression=comp) as st:
            st.write(snap)
    f = lambda d: next(d.glob("processes/*/*/*.parquet"))  # noqa: E731
    assert pq.read_table(f(tmp_path / "c")).equals(pq.read_table(f(tmp_path / "p")))
    assert pq.ParquetFile(f(tmp_path / "p")).metadata.row_group(0).column(0).compression == "SNAPPY"
    assert pq.ParquetFile(f(tmp_path / "c")).metadata.row_group(0).column(0).compression == "ZSTD"
    assert_checksummed(f(tmp_path / "p"), tmp_path)


def test_one_row_tables_are_not_compressed_and_are_smaller_so(tmp_path):
    """A snapshot's one-row tables (system, snapshots) are stored uncompressed: smaller than zstd."""
    snap = Collector(tables=("system",)).snapshot()
    with Store(tmp_path / "rec") as st:
        st.write(snap)
    for name in ("system", "snapshots"):
        path = next((tmp_path / "rec" / name).rglob("*.parquet"))
        md = pq.ParquetFile(path).metadata
        assert md.num_rows == 1
        assert {md.row_group(0).column(i).compression for i in range(md.num_columns)} == {"UNCOMPRESSED"}
        t = snap.tables[name]
        buf = pa.BufferOutputStream()
        pq.write_table(t, buf, **parquet_options(t.schema))  # as if it had more rows: zstd
        assert path.stat().st_size < buf.getvalue().size
        assert_checksummed(path, tmp_path)


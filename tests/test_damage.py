"""Damaged recordings (issue 8.4): every kind of bad file is named, left out, and the rest answers.

Each test copies the committed sample recording, damages one or more files the way a recording
gets damaged on its travels, and runs real commands over it in a child process: exit 0, the
damaged file named on stderr (or in `procsnap info`), and answers equal to the sample's own
answers without the damaged file's rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analyze.data.damage import culprit, incompatible, quick_check


def _copy(sample: Path, tmp_path: Path) -> Path:
    rec = tmp_path / "rec"
    shutil.copytree(sample, rec)
    return rec


def _files(rec: Path, table: str) -> list[Path]:
    return sorted(p for p in (rec / table).rglob("*.parquet"))


def _count(cli, rec: Path, table: str, where: str = "true", rc: int = 0) -> tuple[int, str]:
    """count(*) of TABLE; RC is the exit status expected: 3 when recorded rows are left out."""
    p = cli("query", "--rec", rec, "-f", "csv", f"SELECT count(*) AS n FROM {table} WHERE {where}", check=rc)
    return int(p.stdout.splitlines()[1]), p.stderr


def _rows_of(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def _ids_of(path: Path) -> set[int]:
    return set(pq.read_table(path, columns=["snapshot_id"]).column(0).to_pylist())


@pytest.fixture
def rec(sample, tmp_path):
    return _copy(sample, tmp_path)


def test_truncated_and_empty_files_are_named_and_the_rest_answers(cli, rec):
    total, err = _count(cli, rec, "processes")
    assert err == ""
    f1, f2 = _files(rec, "processes")[:2]
    lost = _rows_of(f1) + _rows_of(f2)
    data = f1.read_bytes()
    f1.write_bytes(data[: len(data) // 2])
    f2.write_bytes(b"")
    n, err = _count(cli, rec, "processes", rc=3)
    assert f"skipped {f1}: truncated (no Parquet footer)" in err
    assert f"skipped {f2}: empty file" in err
    assert len([x for x in err.splitlines() if "skipped" in x]) == 2
    assert n == total - lost


def test_a_corrupt_data_page_is_found_by_reading_and_left_out(cli, rec):
    """Magic bytes and footer intact, garbage in the pages: only reading finds it."""
    total, _ = _count(cli, rec, "open_files")
    f = max(_files(rec, "open_files"), key=lambda p: p.stat().st_size)
    lost = _rows_of(f)
    data = bytearray(f.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for i in range(4, len(data) - footer):
        data[i] ^= 0xA5
    f.write_bytes(bytes(data))
    assert quick_check(str(f)) is None
    n, err = _count(cli, rec, "open_files", rc=3)
    assert n == total - lost
    assert f"skipped {f}: unreadable" in err


def test_foreign_files_are_named_and_ignored(cli, rec, tmp_path):
    total, _ = _count(cli, rec, "processes")
    part = _files(rec, "processes")[0].parent
    (part / "notes.txt").write_text("what I saw at 03:14\n")
    (part / "passwd.parquet").write_bytes(Path("/etc/passwd").read_bytes())
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), part / "other.parquet")
    n, err = _count(cli, rec, "processes")
    assert n == total
    assert f"{part / 'notes.txt'}: not a file procsnap writes" in err
    assert f"{part / 'passwd.parquet'}: not a Parquet file" in err
    assert f"{part / 'other.parquet'}: not a procsnap file (no snapshot_id column)" in err
    info = cli("info", rec, check=0)
    assert "damaged: 3 file(s) left out" in info.stdout and info.stderr == ""
    js = json.loads(cli("info", rec, "-f", "json", check=0).stdout)
    assert {Path(d["path"]).name for d in js["damaged"]} == {"notes.txt", "passwd.parquet", "other.parquet"}


def test_an_older_schema_reads_with_nulls_and_narrow_types_widened(cli, rec):
    """A file written by an older procsnap: fewer columns, an integer column of another width."""
    f = _files(rec, "processes")[0]
    t = pq.read_table(f)
    keep = [c for c in t.column_names if c not in ("cgroup", "fd_limit", "ctx_voluntary")]
    old = t.select(keep)
    old = old.set_column(old.column_names.index("pid"), "pid", old.column("pid").cast(pa.int64()))  # read back as the declared int32
    pq.write_table(old, f)
    ids = _ids_of(f)
    where = f"snapshot_id IN ({', '.join(map(str, ids))})"
    n, err = _count(cli, rec, "processes", where)
    assert err == "" and n == t.num_rows
    p = cli("query", "--rec", rec, "-f", "json",
            f"SELECT any_value(typeof(pid)) AS tp, count(cgroup) AS cg, count(pid) AS n FROM processes WHERE {where}", check=0)
    row = json.loads(p.stdout)[0]
    assert row == {"tp": "INTEGER", "cg": 0, "n": t.num_rows}  # the declared type, whatever the file holds
    ps = cli("ps", "--rec", rec, "--at", _ts_of(cli, rec, min(ids)), "-e", "-o", "pid,comm", check=0)
    assert len(ps.stdout.splitlines()) == t.num_rows + 1


def _ts_of(cli, rec, sid) -> str:
    p = cli("query", "--rec", rec, "-f", "csv", f"SELECT strftime(ts, '%Y-%m-%dT%H:%M:%S.%f') FROM snapshots "
                                                f"WHERE snapshot_id = {sid}", check=0)
    return p.stdout.splitlines()[1] + "Z"


def test_a_column_of_another_type_leaves_the_file_out(cli, rec):
    total, _ = _count(cli, rec, "processes")
    f = _files(rec, "processes")[-1]
    t = pq.read_table(f)
    lost = t.num_rows
    bad = t.set_column(t.column_names.index("pid"), "pid", t.column("pid").cast(pa.string()))
    pq.write_table(bad, f)
    n, err = _count(cli, rec, "processes", rc=3)
    assert n == total - lost
    assert f"skipped {f}: column pid is string" in err


def test_a_damaged_snapshots_file_hides_its_snapshot_everywhere(cli, rec):
    snaps, _ = _count(cli, rec, "snapshots")
    f = _files(rec, "snapshots")[0]
    ids = _ids_of(f)
    f.write_bytes(b"PAR1garbage")
    n, err = _count(cli, rec, "snapshots", rc=3)
    assert n == snaps - len(ids) and "skipped" in err
    m, _ = _count(cli, rec, "processes", f"snapshot_id IN ({', '.join(map(str, ids))})", rc=3)
    assert m == 0


def test_every_command_answers_over_a_damaged_recording(cli, rec):
    ids = sorted(set().union(*(_ids_of(f) for f in _files(rec, "snapshots"))))
    first, last = _ts_of(cli, rec, ids[0]), _ts_of(cli, rec, ids[-1])
    for f in _files(rec, "open_files")[:1] + _files(rec, "threads")[:1] + _files(rec, "sockets")[:1]:
        f.write_bytes(f.read_bytes()[:100])
    # The rows lost are of the first snapshot: partial (3) for what spans it, complete (0) for the
    # commands about the last moment.
    for args, rc in ((["info", rec], 3), (["lsof", "--rec", rec, "-i"], 0), (["ps", "--rec", rec, "-e"], 0),
                     (["top", "--rec", rec], 0), (["report", rec], 3),
                     (["diff", "--rec", rec, "--from", first, "--to", last], 3),
                     (["query", "--rec", rec, "SELECT count(*) FROM threads"], 3),
                     (["lsof", "--rec", rec, "--at", first, "-i"], 3), (["ps", "--rec", rec, "--at", first, "-e"], 3)):
        p = cli(*args)
        assert p.returncode == rc, (args, p.stderr)
        assert "Traceback" not in p.stderr
        assert args[0] == "info" or "skipped" in p.stderr, args


def test_unit_helpers(tmp_path):
    assert incompatible("INTEGER", "BIGINT") is False
    assert incompatible("int32", "BIGINT") is False
    assert incompatible("string", "BIGINT") is True
    assert incompatible("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ") is False
    assert incompatible("VARCHAR[]", "VARCHAR") is True
    assert culprit('IO Error: bad file "/a/b.parquet": x', ["/a/c.parquet", "/a/b.parquet"]) == "/a/b.parquet"
    assert culprit("no file here", ["/a/b.parquet"]) is None
    short = tmp_path / "s.parquet"
    short.write_bytes(b"PAR1")
    assert quick_check(str(short)) == "truncated (4 bytes)"
    assert quick_check(str(tmp_path / "missing.parquet")).startswith("unreadable")


# ---------------------------------------------------------------------------------------------
# One flipped byte (issue 18.3): a file that does not decode, or whose pages fail their Parquet
# checksums, is named and left out; never a different answer silently.


def _with_page_checksums(rec: Path) -> None:
    """Rewrite every data file as the recorder writes them, with Parquet page checksums."""
    from recorder.store.folder import parquet_options
    for f in rec.rglob("*.parquet"):
        t = pq.ParquetFile(f).read()
        pq.write_table(t, f, **parquet_options(t.schema))  # write_page_checksum=True among them


def _fresh(run):
    """run() in this process as a new command would: nothing remembered of earlier runs, and
    nothing left for the tests after."""
    from analyze.data import damage as D
    for s in (D.EXCLUDED, D.VERIFIED, D.SAID, D.OPENED):
        s.clear()
    D._vanished = 0
    try:
        return D.retrying(run)
    finally:
        D.LOSSES.clear()
        D.EXCLUDED.clear()


_FINGERPRINT = ("SELECT snapshot_id, count(*), hash(list(p::VARCHAR ORDER BY p::VARCHAR)) "
                "FROM processes p GROUP BY 1 ORDER BY 1")


def test_flipped_bytes_anywhere_are_named_or_change_nothing(rec):
    """A byte flipped at positions all over a processes file (pages, page headers, footer): the
    rows read are the intact ones, or the file is named and the rows are the intact ones without
    its snapshot. Some of these flips still decode in DuckDB to other values (it does not check
    page checksums): only the checksums catch them."""
    import duckdb

    from analyze.data.db import Recording
    _with_page_checksums(rec)
    victim = _files(rec, "processes")[3]
    orig = victim.read_bytes()

    def fingerprint():
        r = Recording.open([str(rec)], err=False)
        return [d.path for d in r.damaged], r.execute(_FINGERPRINT)[1]

    named0, good = _fresh(fingerprint)
    assert named0 == []
    without = [r for r in good if r[0] != int(victim.stem)]
    plain = duckdb.connect().execute(f"SELECT * FROM read_parquet('{victim}')").fetchall()
    decoded_wrong = named = 0
    step = max(1, len(orig) // 40)
    try:
        for i in range(0, len(orig), step):
            flipped = bytearray(orig)
            flipped[i] ^= 0x5A
            victim.write_bytes(bytes(flipped))
            try:
                decoded_wrong += duckdb.connect().execute(f"SELECT * FROM read_parquet('{victim}')").fetchall() != plain
            except duckdb.Error:
                pass
            damaged, rows = _fresh(fingerprint)
            if str(victim) in damaged:
                named += 1
                assert rows == without, i
            else:
                assert rows == good, i
    finally:
        victim.write_bytes(orig)
    assert decoded_wrong > 3 and named > 25  # the test has teeth: DuckDB alone believes some flips


def undecompressable(f: Path) -> None:
    """Flip one byte of F's largest pages until DuckDB fails to decompress it (InvalidInputException)."""
    import duckdb
    orig = f.read_bytes()
    md = pq.ParquetFile(f).metadata.row_group(0)
    for col in sorted(range(md.num_columns), key=lambda i: -md.column(i).total_compressed_size):
        cc = md.column(col)
        start = cc.dictionary_page_offset or cc.data_page_offset
        for i in range(start + 20, start + cc.total_compressed_size - 8, 3):
            data = bytearray(orig)
            data[i] ^= 0xFF
            f.write_bytes(bytes(data))
            try:
                duckdb.connect().execute(f"SELECT * FROM read_parquet('{f}')").fetchall()
            except duckdb.InvalidInputException:
                break
            except duckdb.Error:
                pass
        else:
            continue
        break
    else:
        pytest.fail("no flip made DuckDB fail to decompress a page")


def test_a_page_that_fails_to_decompress_is_named_by_every_command(cli, rec):
    """DuckDB raises InvalidInputException (a kind of ProgrammingError) for a zstd page it cannot
    decompress: damage, not an SQL error."""
    f = _files(rec, "processes")[-1]  # the last snapshot: what lsof, ps and top answer about
    undecompressable(f)
    for args in (["info", rec], ["report", rec], ["ps", "--rec", rec, "-e"], ["lsof", "--rec", rec, "-p", "1"],
                 ["top", "--rec", rec], ["query", "--rec", rec, "SELECT count(*) FROM processes"],
                 ["diff", "--rec", rec]):
        p = cli(*args)
        assert p.returncode == 3, (args, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr and "SQL error" not in p.stderr
        assert str(f) in (p.stderr if args[0] != "info" else p.stdout), args


def test_compaction_never_merges_a_file_that_fails_its_checksums(rec):
    """A flipped byte in a small file that still decodes (so a plain read believes it) is caught
    by its page checksums: left out of the compacted file, renamed *.damaged."""
    import duckdb

    from recorder.store import compact as C
    from recorder.store.folder import Store
    _with_page_checksums(rec)
    victim = _files(rec, "processes")[5]
    orig = victim.read_bytes()
    plain = pq.ParquetFile(victim).read()
    for i in range(len(orig) // 3, len(orig) - 100):
        data = bytearray(orig)
        data[i] ^= 0x01
        victim.write_bytes(bytes(data))
        try:
            if pq.ParquetFile(victim).read() != plain:  # decodes, to other values
                pq.ParquetFile(victim, page_checksum_verification=True).read()
        except OSError:
            break
        except Exception:  # noqa: BLE001 - a flip that does not decode: not the case wanted
            pass
    else:
        pytest.fail("no flip that decodes to other values")
    assert duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{victim}')").fetchone()[0] == plain.num_rows
    with Store(rec) as st:
        res = C.maintain(st, C.Maintenance(compact_min=2, grace=3600))
    assert [Path(p).name for p, _ in res.damaged] == [victim.name]
    assert victim.with_name(victim.name + C.DAMAGED_SUFFIX).exists()
    (c,) = [p for p in _files(rec, "processes") if p.name.startswith("c")]
    assert int(victim.stem) not in set(pq.read_table(c, columns=["snapshot_id"]).column(0).to_pylist())

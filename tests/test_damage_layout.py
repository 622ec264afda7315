"""Damaged and misleading recordings (issues 17.1, 17.2, 18.6): a damaged compacted file gives way
to the small files it merged; rows truly lost are named with their tables and time ranges in every
output and the exit status is 3; only files the recording's own naming and commit prove are its
own count, and everything else is named.

Each test copies the committed sample recording, damages it, and runs real commands over it in a
child process, comparing with the answers over the intact copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recorder.store import compact as C
from recorder.store.folder import Store


def _copy(sample: Path, dest: Path) -> Path:
    shutil.copytree(sample, dest)
    return dest


def _files(rec: Path, table: str) -> list[Path]:
    return sorted((rec / table).rglob("*.parquet"))


def _count(cli, rec, table: str, rc: int = 0) -> int:
    p = cli("query", "--rec", rec, "-f", "csv", f"SELECT count(*) AS n FROM {table}", check=rc)
    return int(p.stdout.splitlines()[1])


def _ts(cli, rec, sid: int) -> str:
    p = cli("query", "--rec", rec, "-f", "csv",
            f"SELECT strftime(ts, '%Y-%m-%dT%H:%M:%S.%f') FROM snapshots WHERE snapshot_id = {sid}", check=0)
    return p.stdout.splitlines()[1] + "Z"


def _findings(stdout: str) -> tuple:
    doc = json.loads(stdout)
    return doc["summary"], doc["findings"]


@pytest.fixture
def compacted(sample, tmp_path):
    """The sample compacted, its small files kept (as during the grace period, or in a copy
    taken then)."""
    rec = _copy(sample, tmp_path / "rec")
    with Store(rec) as st:
        assert C.compact(st, 2) == 12
    assert any(f.name.startswith("c") for f in _files(rec, "processes"))
    return rec


def test_a_damaged_compacted_file_gives_way_to_the_small_files_it_merged(cli, compacted):
    intact = cli("report", compacted, "-f", "json", check=0)
    total = _count(cli, compacted, "processes")
    (c,) = [f for f in _files(compacted, "processes") if f.name.startswith("c")]
    data = c.read_bytes()
    c.write_bytes(data[: len(data) // 2])  # truncated, as in a copy cut short
    p = cli("report", compacted, "-f", "json", check=0)  # complete: nothing is lost
    assert _findings(p.stdout) == _findings(intact.stdout)
    assert f"skipped {c}: truncated" in p.stderr and "PARTIAL" not in p.stderr
    assert _count(cli, compacted, "processes") == total
    # Garbage in its pages, footer intact: found by reading, and the small files read instead.
    body = bytearray(data)
    footer = int.from_bytes(body[-8:-4], "little") + 8
    for i in range(4, len(body) - footer):
        body[i] ^= 0xA5
    c.write_bytes(bytes(body))
    p = cli("report", compacted, "-f", "json", check=0)
    assert _findings(p.stdout) == _findings(intact.stdout)
    assert f"skipped {c}" in p.stderr


def test_rows_truly_lost_are_named_in_every_output_and_exit_3(cli, compacted, tmp_path):
    (c,) = [f for f in _files(compacted, "processes") if f.name.startswith("c")]
    small = [f for f in _files(compacted, "processes") if not f.name.startswith("c")]
    gone = small[3:5]
    first, last = (_ts(cli, compacted, int(f.stem)) for f in gone)
    c.write_bytes(c.read_bytes()[:1000])
    for f in gone:
        f.unlink()
    span = f"{first[:19].replace('T', ' ')} .. {last[:19].replace('T', ' ')} UTC (2 snapshots)"
    want = f"missing: table processes, host sample-host: {span}"
    text = cli("report", compacted, check=3)
    assert want in text.stdout and f"PARTIAL: rows missing from table processes, host sample-host: {span}" in text.stderr
    js = json.loads(cli("report", compacted, "-f", "json", check=3).stdout)
    assert [(x["table"], x["host"], x["snapshots"]) for x in js["partial"]] == [("processes", "sample-host", 2)]
    assert js["partial"][0]["from"].startswith(first[:19]) and js["partial"][0]["to"].startswith(last[:19])
    html = tmp_path / "r.html"
    cli("report", compacted, "--html", html, check=3)
    assert "PARTIAL report" in html.read_text() and span in html.read_text()
    csv = cli("query", "--rec", compacted, "-f", "csv", "SELECT count(*) AS n FROM processes", check=3)
    assert csv.stdout.splitlines()[0] == "n" and f"# PARTIAL answer" in csv.stdout and want in csv.stdout
    js = json.loads(cli("query", "--rec", compacted, "-f", "json", "SELECT 1 AS x", check=3).stdout)
    assert js["rows"] == [{"x": 1}] and js["partial"][0]["table"] == "processes"
    assert cli("ps", "--rec", compacted, "-e", check=0).stdout  # the last moment is whole
    for args in (["ps", "--rec", compacted, "--at", first, "-e"], ["top", "--rec", compacted, "--at", last]):
        assert "in a damaged file" in cli(*args, check=3).stderr  # nothing to answer that moment with
    for args in (
                 ["diff", "--rec", compacted, "--from", first, "--to", last], ["info", compacted]):
        p = cli(*args)
        assert p.returncode == 3 and want in p.stdout, (args, p.stdout[-500:], p.stderr)


def test_a_snapshot_whose_processes_file_is_damaged(cli, sample, tmp_path):
    intact = _copy(sample, tmp_path / "intact")
    rec = _copy(sample, tmp_path / "rec")
    f = _files(rec, "processes")[-3]
    at = _ts(cli, rec, int(f.stem))
    f.write_bytes(f.read_bytes()[:200])
    p = cli("ps", "--rec", rec, "--at", at, "-e", check=3)
    assert "made without" not in p.stderr and "damaged file" in p.stderr and str(f) in p.stderr
    # lsof answers from the open files, which are intact: the same descriptors, without the
    # process's name and user (in the damaged file), and says what is missing.
    want = json.loads(cli("lsof", "--rec", intact, "--at", at, "-p", "1", "-f", "json", check=0).stdout)
    got = json.loads(cli("lsof", "--rec", rec, "--at", at, "-p", "1", "-f", "json", check=3).stdout)
    assert [(r["fd"], r["name"]) for r in got["rows"]] == [(r["fd"], r["name"]) for r in want]
    assert got["partial"][0]["table"] == "processes"
    p = cli("lsof", "--rec", rec, "--at", at, "-c", "systemd", check=3)  # cannot tell "nobody"
    assert "missing: table processes" in p.stdout
    p = cli("top", "--rec", rec, "--at", at, check=3)
    assert "damaged file" in p.stderr and "made without" not in p.stderr


def test_a_lost_snapshot_after_the_moment_used_makes_the_answer_partial(cli, sample, tmp_path):
    """The last snapshot's commit unreadable: a command about the end (or a time at or after that
    snapshot) answers with the one before, which is not the moment asked: exit 3, said. A time
    before the lost snapshot is answered whole."""
    rec = _copy(sample, tmp_path / "rec")
    commits = _files(rec, "snapshots")
    before, lost = commits[-2], commits[-1]
    at_before, at_lost = _ts(cli, rec, int(before.stem)), _ts(cli, rec, int(lost.stem))
    pq.write_table(pa.table({"a": [1]}), lost)
    for cmd in (["ps", "-e"], ["top"], ["lsof", "-p", "1"]):
        for at in ([], ["--at", "end"], ["--at", at_lost]):
            p = cli(*cmd, "--rec", rec, *at, check=3)
            assert "rows missing from every table (the snapshots themselves)" in p.stderr, (cmd, at, p.stderr)
        cli(*cmd, "--rec", rec, "--at", at_before, check=0)


def test_glob_characters_in_names_read_each_file_once(cli, sample, tmp_path):
    total = _count(cli, _copy(sample, tmp_path / "plain"), "processes")
    rec = _copy(sample, tmp_path / "rec[1]*?")
    _copy(sample, tmp_path / "rec1xx")  # what the folder's name matches as a glob
    assert _count(cli, rec, "processes") == total
    part = _files(rec, "processes")[0].parent
    shutil.copy(_files(rec, "processes")[0], part / "*.parquet")
    shutil.copy(_files(rec, "processes")[0], part / "[0-9]*.parquet")
    p = cli("query", "--rec", rec, "-f", "csv", "SELECT count(*) AS n FROM processes", check=0)
    assert int(p.stdout.splitlines()[1]) == total
    assert f"{part / '*.parquet'}: not a name procsnap writes (ignored)" in p.stderr


@pytest.mark.parametrize("folder", ["date=garbage", "date=2026-13-45", "date=2026-11-29", "other"])
def test_a_copied_partition_under_another_folder_is_named_not_counted(cli, sample, tmp_path, folder):
    rec = _copy(sample, tmp_path / "rec")
    total, snaps = _count(cli, rec, "processes"), _count(cli, rec, "snapshots")
    for table in ("processes", "snapshots"):
        part = _files(rec, table)[0].parent
        shutil.copytree(part, part.parent / folder)
    assert _count(cli, rec, "processes") == total and _count(cli, rec, "snapshots") == snaps
    for args in (["report", rec], ["top", "--rec", rec]):
        cli(*args, check=0)
    info = cli("info", rec, check=0).stdout
    assert folder in info


def test_a_stray_compacted_name_hides_nothing(cli, sample, tmp_path):
    rec = _copy(sample, tmp_path / "rec")
    total, snaps = _count(cli, rec, "processes"), _count(cli, rec, "snapshots")
    for table in ("processes", "snapshots"):
        first = _files(rec, table)[0]
        shutil.copy(first, first.parent / "c1-9999999999999999.parquet")  # ids of no date of its folder
        ids = sorted(int(f.stem) for f in _files(rec, table) if not f.name.startswith("c"))
        shutil.copy(first, first.parent / f"c{ids[0]}-{ids[-1]}.parquet")  # a plausible name, one snapshot inside
    assert _count(cli, rec, "processes") == total and _count(cli, rec, "snapshots") == snaps
    info = cli("info", rec, check=0).stdout
    assert "c1-9999999999999999.parquet" in info


def test_a_foreign_file_under_a_recorder_name_is_named(cli, sample, tmp_path):
    rec = _copy(sample, tmp_path / "rec")
    total = _count(cli, rec, "processes")
    f, g = _files(rec, "processes")[2:4]
    lost = pq.ParquetFile(f).metadata.num_rows + pq.ParquetFile(g).metadata.num_rows
    pq.write_table(pa.table({"a": [1, 2, 3]}), f)
    other = pq.ParquetFile(_files(rec, "processes")[0]).read()  # another snapshot's rows under g's name
    pq.write_table(other, g)
    p = cli("query", "--rec", rec, "-f", "csv", "SELECT count(*) AS n FROM processes", check=3)
    assert int(p.stdout.splitlines()[1]) == total - lost
    assert f"skipped {f}: not a procsnap file (no snapshot_id column)" in p.stderr
    assert f"skipped {g}: holds snapshot ids" in p.stderr
    assert "missing: table processes" in p.stdout


@pytest.mark.parametrize("marker,why", [(b"\x00garbage{", "not a procsnap marker"),
                                        (b'{"format": "procsnap-recording", "version": 99}', "newer procsnap")])
def test_a_garbage_or_future_marker_is_said(cli, sample, tmp_path, marker, why):
    rec = _copy(sample, tmp_path / "rec")
    (rec / "procsnap.json").write_bytes(marker)
    p = cli("query", "--rec", rec, "-f", "csv", "SELECT count(*) AS n FROM snapshots", check=0)
    assert why in p.stderr and str(rec / "procsnap.json") in p.stderr
    assert why in cli("info", rec, check=0).stdout


def test_a_compaction_narrower_than_its_commit_is_read(cli, compacted):
    """Descriptor tables taken on fewer snapshots are compacted over a narrower range than the
    snapshots table (bench/synth.py writes them so): committed by the snapshots file whose range
    holds theirs, and read."""
    import pyarrow.compute as pc
    (c,) = [f for f in _files(compacted, "open_files") if f.name.startswith("c")]
    ids = sorted(int(f.stem) for f in _files(compacted, "open_files") if not f.name.startswith("c"))
    keep = ids[1:-1]
    t = pq.read_table(c)
    t = t.filter(pc.is_in(t.column("snapshot_id"), pa.array(keep, pa.int64())))
    for f in _files(compacted, "open_files"):
        f.unlink()
    pq.write_table(t, c.with_name(f"c{keep[0]}-{keep[-1]}.parquet"))
    p = cli("query", "--rec", compacted, "-f", "csv", "SELECT count(*) AS n FROM open_files", check=0)
    assert int(p.stdout.splitlines()[1]) == t.num_rows
    assert "ignored" not in cli("info", compacted, check=0).stdout  # read, not set aside

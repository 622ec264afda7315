"""The store's atomicity rule, schema-driven views, rates and the schema doc."""

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analyze.data.db import Recording
from analyze.data.reference import markdown
from recorder.schema import TABLES
from recorder.store.folder import Store

from tests.conftest import ROOT
from tests.support.synthetic import T0, fake_snapshot


def test_schema_doc_is_current():
    assert (ROOT / "docs" / "schema.md").read_text() == markdown(), \
        "docs/schema.md is stale: procsnap schema --markdown > docs/schema.md"


def test_every_column_is_declared_with_unit_and_null_meaning():
    for t in TABLES.values():
        assert t.names[:2] == ["snapshot_id", "ts"] and "host" in t.names
        assert len(set(t.names)) == len(t.names)
        for c in t.columns:
            assert c.unit and c.description.endswith("."), (t.name, c.name)
            assert "NULL" in c.description, (t.name, c.name)


def test_layout_modes_and_no_temporaries(tmp_path):
    with Store(tmp_path / "rec") as st:
        st.write(fake_snapshot(0, [{"pid": 10, "utime": 1.0, "stime": 0.0}]))
    rec = tmp_path / "rec"
    f = rec / "processes" / "host=h1" / "date=2026-11-28" / f"{int(T0.timestamp() * 1e6)}.parquet"
    assert f.is_file()
    assert (rec.stat().st_mode & 0o777) == 0o700 and (f.stat().st_mode & 0o777) == 0o600
    assert not [p for p in rec.rglob(".*.tmp")]
    # host and date live in the folder names only (Spark and Trino refuse duplicates)
    assert "host" not in pq.read_schema(f).names and "date" not in pq.read_schema(f).names
    # …and any Parquet reader gets them back from the hive partitions
    import pyarrow.dataset as ds
    t = ds.dataset(rec / "processes", format="parquet", partitioning="hive").to_table()
    assert t.column("host").to_pylist() == ["h1"]


def test_uncommitted_snapshots_are_invisible_and_cleaned(tmp_path):
    rec = tmp_path / "rec"
    with Store(rec) as st:
        st.write(fake_snapshot(0, [{"pid": 10, "utime": 1.0, "stime": 0.0}]))
        s1 = fake_snapshot(1, [{"pid": 10, "utime": 2.0, "stime": 0.0}])
        # the recorder died after the data file, before the commit (snapshots) file
        d = st.partition_dir("processes", "h1", s1.date)
        pq.write_table(s1.tables["processes"], d / f"{s1.snapshot_id}.parquet")
        (d / ".junk.parquet.tmp").write_bytes(b"partial")
    r = Recording.open([str(rec)])
    assert r.execute("SELECT count(*) FROM processes")[1] == [(1,)]
    assert r.execute("SELECT count(*) FROM snapshots")[1] == [(1,)]
    with Store(rec):
        pass
    assert len(list(rec.rglob("*.parquet"))) == 2 and not list(rec.rglob("*.tmp"))


def test_foreign_folder_is_refused(tmp_path):
    from recorder.store.folder import StoreError
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError):
        Store(tmp_path / "x")


def test_rates_and_backwards_counters(tmp_path):
    rec = tmp_path / "rec"
    with Store(rec) as st:
        for i, (u, rb) in enumerate([(1.0, 100), (3.0, 1100), (2.0, 2100), (2.5, 2100)]):
            st.write(fake_snapshot(i, [{"pid": 10, "utime": u, "stime": 0.0, "read_bytes": rb,
                                        "ctxsw_voluntary": 10 * i}]))
    r = Recording.open([str(rec)])
    cols, rows = r.execute("SELECT cpu_pct, read_bps, ctxsw_voluntary_ps, interval_s FROM process_rates ORDER BY ts")
    assert rows[0] == (None, None, None, None)           # first sample: no rate
    assert rows[1] == pytest.approx((20.0, 100.0, 1.0, 10.0))  # 2 s CPU in 10 s
    assert rows[2][0] is None and rows[2][1] == pytest.approx(100.0)  # utime went backwards: NULL
    assert rows[3][0] == pytest.approx(5.0)


def test_rate_views_can_be_left_out(tmp_path):
    """lsof and ps --rec open a recording without the derived views (they query none of them)."""
    rec = tmp_path / "rec"
    with Store(rec) as st:
        st.write(fake_snapshot(0, [{"pid": 10, "utime": 1.0, "stime": 0.0}]))
    views = "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
    full = {v for (v,) in Recording.open([str(rec)]).execute(views)[1]}
    bare = {v for (v,) in Recording.open([str(rec)], derived=False).execute(views)[1]}
    assert full - bare == {"process_rates", "thread_rates", "system_rates", "disk_rates", "nic_rates", "netstat_rates",
                           "process_exits"}
    assert bare == set(TABLES)


def test_a_new_instance_of_the_same_pid_has_no_rate_from_the_old_one(tmp_path):
    rec = tmp_path / "rec"
    with Store(rec) as st:
        st.write(fake_snapshot(0, [{"pid": 10, "utime": 50.0, "stime": 0.0}]))
        st.write(fake_snapshot(1, [{"pid": 10, "utime": 60.0, "stime": 0.0, "start_time": T0}]))
    r = Recording.open([str(rec)])
    assert r.execute("SELECT cpu_pct FROM process_rates ORDER BY ts")[1] == [(None,), (None,)]


def test_system_cpu_percent_by_mode(tmp_path):
    rec = tmp_path / "rec"
    base = {"boot_time": T0 - dt.timedelta(days=1), "ncpus": 2, "ctxt": 0, "intr": 0, "forks": 0,
            "procs_running": 1, "procs_blocked": 0, "load1": 0.0, "load5": 0.0, "load15": 0.0, "tasks_total": 1,
            "last_pid": 1, "mem_total": 1, "mem_free": 1, "swap_total": 0, "swap_free": 0,
            "cpu_nice": 0.0, "cpu_irq": 0.0, "cpu_softirq": 0.0, "cpu_steal": 0.0, "cpu_guest": 0.0}
    with Store(rec) as st:
        st.write(fake_snapshot(0, [], system={**base, "cpu_user": 100.0, "cpu_system": 50.0, "cpu_idle": 1000.0,
                                              "cpu_iowait": 10.0, "ctxt": 1000}))
        st.write(fake_snapshot(1, [], system={**base, "cpu_user": 105.0, "cpu_system": 52.0, "cpu_idle": 1012.0,
                                              "cpu_iowait": 11.0, "ctxt": 3000}))
    r = Recording.open([str(rec)])
    cols, rows = r.execute("SELECT cpu_user_pct, cpu_system_pct, cpu_idle_pct, cpu_iowait_pct, cpu_busy_pct, ctxt_ps "
                           "FROM system_rates ORDER BY ts")
    assert rows[0] == (None,) * 6
    assert rows[1] == pytest.approx((25.0, 10.0, 60.0, 5.0, 35.0, 200.0))


def test_older_recordings_missing_a_column_read_as_null(tmp_path):
    rec = tmp_path / "rec"
    with Store(rec) as st:
        s = fake_snapshot(0, [{"pid": 10, "utime": 1.0, "stime": 0.0}])
        s.tables["processes"] = s.tables["processes"].drop_columns(["cgroup", "denied"])
        st.write(s)
    r = Recording.open([str(rec)])
    assert r.execute("SELECT pid, cgroup, denied FROM processes")[1] == [(10, None, None)]


def test_empty_tables_still_have_typed_views(tmp_path):
    rec = tmp_path / "rec"
    with Store(rec) as st:
        st.write(fake_snapshot(0, [{"pid": 10, "utime": 1.0, "stime": 0.0}]))
    r = Recording.open([str(rec)])
    cols, rows = r.execute("SELECT * FROM threads")
    assert rows == [] and cols == TABLES["threads"].names
    assert r.execute("SELECT count(*) FROM thread_rates")[1] == [(0,)]


def test_two_hosts_side_by_side(tmp_path):
    with Store(tmp_path / "a") as st:
        st.write(fake_snapshot(0, [{"pid": 10, "utime": 1.0, "stime": 0.0}], host="alpha"))
    with Store(tmp_path / "b") as st:
        st.write(fake_snapshot(0, [{"pid": 20, "utime": 1.0, "stime": 0.0}], host="beta"))
    r = Recording.open([str(tmp_path / "a"), str(tmp_path / "b")])
    assert r.execute("SELECT host, pid FROM processes ORDER BY host")[1] == [("alpha", 10), ("beta", 20)]
    r = Recording.open([str(tmp_path / "a"), str(tmp_path / "b")], hosts=["beta"])
    assert r.execute("SELECT host, pid FROM processes")[1] == [("beta", 20)]

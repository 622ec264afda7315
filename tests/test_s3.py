"""A fleet's recordings shipped to S3-compatible storage and analyzed in place: ``procsnap ship``
and ``--rec s3://bucket/prefix``, against a real S3 server (moto's, on 127.0.0.1, in this process;
skipped without it: pip install -e '.[test]')."""

import csv
import json
import os
import socket

import pytest

from recorder.store import compact as C
from recorder.store.folder import Store
from recorder.store.layout import id_date

from analyze.commands import ship as S

from tests.conftest import run_cli
from tests.support.fleet import HOSTS, N, index, sid, tables, write_fleet
from tests.support.synthetic import snapshot

moto_server = pytest.importorskip("moto.server")
SECRET = "s3cr3t-never-written"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A bucket on a local S3 server; the AWS variables every client (and each procsnap child)
    takes its endpoint and credentials from; a cache and a state folder of the test's own."""
    from pyarrow import fs as pafs
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    tmp = tmp_path_factory.mktemp("s3")
    env = {"AWS_ACCESS_KEY_ID": "procsnap-test", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "PROCSNAP_CACHE": str(tmp / "cache"),
           "XDG_STATE_HOME": str(tmp / "state")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True)
        fs.create_dir("ops")
        yield {"fs": fs, "tmp": tmp}
    srv.stop()


def objects(fs, prefix="ops/fleet"):
    from pyarrow import fs as pafs
    return sorted(i.path[len(prefix) + 1:] for i in fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
                  if i.type == pafs.FileType.File)


@pytest.fixture(scope="module")
def shipped(s3):
    """The fleet recording (tests.support.fleet) shipped once."""
    root = s3["tmp"] / "rec"
    write_fleet(root)
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    p = run_cli("ship", root, "s3://ops/fleet")
    assert p.returncode == 0, p.stderr
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before  # nothing written into it
    return root


def test_ship_sends_only_what_procsnap_reads_table_first(s3, shipped):
    got = objects(s3["fs"])
    data = [o for o in got if not o.startswith("_procsnap/")]
    local = run_cli("manifest", shipped, check=0)
    assert sorted(data) == sorted(os.path.relpath(r["path"], shipped)
                                  for r in csv.DictReader(local.stdout.splitlines()))
    assert all(o.split("/")[1].startswith("host=") and o.split("/")[2].startswith("date=") for o in data)
    assert f"processes/host=10/date=2026-11-29/{sid(N - 1)}.parquet" not in data  # never committed
    assert not [o for o in data if o.startswith("processes/host=web-1/date=2026-11-28/1")]  # merged already
    assert {o for o in got if o.startswith("_procsnap/")} == \
        {f"_procsnap/{d}/host={h}.{x}" for h in HOSTS for d, x in (("live", "csv"), ("hosts", "json"))}
    # credentials only in the environment: neither the bucket nor the state file holds them
    for o in got:
        with s3["fs"].open_input_stream(f"ops/fleet/{o}") as f:
            assert SECRET.encode() not in f.read()
    (state,) = (s3["tmp"] / "state" / "procsnap" / "ship").glob("*.json")
    assert SECRET not in state.read_text() and "procsnap-test" not in state.read_text()


def test_every_command_reads_the_bucket_as_the_folder(s3, shipped):
    sql = "SELECT host, count(*) AS n, max(ts) AS last FROM processes GROUP BY host ORDER BY host"
    here = run_cli("query", "--rec", shipped, "-f", "json", sql, check=0).stdout
    assert run_cli("query", "--rec", "s3://ops/fleet", "-f", "json", sql, check=0).stdout == here
    at = "2026-11-29T00:00:30Z"
    p = run_cli("lsof", "--rec", "s3://ops/fleet", "--host", "0007", "--at", at, "-p", "200", check=0)
    assert p.stdout.splitlines()[1].split()[:2] == ["nginx", "200"] and "0007 at 2026-11-29 00:00:20" in p.stderr
    p = run_cli("ps", "--rec", "s3://ops/fleet", "--at", at, "-p", "400", "-o", "pid,comm", check=0)
    assert [x.split() for x in p.stdout.splitlines()] == [["HOST", "PID", "COMMAND"]] + [[h, "400", "burner"]
                                                                                         for h in HOSTS]
    p = run_cli("info", "s3://ops/fleet", "-f", "json", "--host", "10", check=0)
    doc = json.loads(p.stdout)
    assert [h["host"] for h in doc["hosts"]] == ["10"] and doc["sources"] == ["s3://ops/fleet"]
    p = run_cli("report", "s3://ops/fleet", "--host", "web-1", "-f", "json", check=0)
    assert json.loads(p.stdout)["recording"]["sources"] == ["s3://ops/fleet"]
    p = run_cli("query", "--rec", "s3://ops/nothing", "SELECT 1")
    assert p.returncode == 2 and "no procsnap recording" in p.stderr and "Traceback" not in p.stderr


def test_a_host_whose_upload_stopped_is_read_as_damaged_and_the_rest_answers(s3, shipped, tmp_path):
    """db-9's shipper died: one object of it cut short (a client that streamed a file still
    growing), and the data of its last snapshot sent without the snapshots file that commits it."""
    root = tmp_path / "db-9"
    with Store(root) as st:
        for k in range(3):
            st.write(snapshot(index(k), tables(k, 3), host="db-9"))
    fs = s3["fs"]
    uploaded = []

    def stop_before_the_last_snapshots_file(fs_, local, remote, throttle):
        if remote.endswith(f"snapshots/host=db-9/date={id_date(sid(2))}/{sid(2)}.parquet"):
            raise ConnectionError("network down")
        uploaded.append(remote)
        return S.upload_file(fs_, local, remote, throttle)

    state = S.State(tmp_path / "state.json")
    with pytest.raises(ConnectionError):
        S.ship_once(str(root), "s3://ops/fleet", state, 120, S.Throttle(None), upload=stop_before_the_last_snapshots_file)
    assert len(state.shipped) == len(uploaded) == 11  # 3 tables x 3 snapshots + 2 snapshots files: resumable
    cut = f"ops/fleet/processes/host=db-9/date={id_date(sid(1))}/{sid(1)}.parquet"
    with fs.open_input_stream(cut) as f:
        data = f.read()
    with fs.open_output_stream(cut) as f:
        f.write(data[: len(data) // 2])
    p = run_cli("query", "--rec", "s3://ops/fleet", "-f", "json",
                "SELECT host, count(DISTINCT snapshot_id) AS n FROM processes GROUP BY host ORDER BY host")
    assert p.returncode == 3, p.stderr
    assert f"db-9/date={id_date(sid(1))}/{sid(1)}.parquet" in p.stderr and "PARTIAL" in p.stderr
    rows = {r["host"]: r["n"] for r in json.loads(p.stdout)["rows"]}
    assert rows == {"0007": 12, "10": 11, "web-1": 12, "db-9": 1}  # db-9: snapshot 0 only (1 cut, 2 uncommitted)
    # the next pass sends what is missing, and only that
    n = S.ship_once(str(root), "s3://ops/fleet", state, 120, S.Throttle(None))
    assert n["shipped"] == 1 and n["removed"] == 0


def test_merged_files_leave_the_bucket_after_the_grace_period(s3, shipped):
    with Store(shipped) as st:
        C.compact_range(st, "host=10", f"date={id_date(sid(6))}", [sid(k) for k in range(6, N - 1)])
    small = f"processes/host=10/date={id_date(sid(6))}/{sid(6)}.parquet"
    assert small in objects(s3["fs"])
    p = run_cli("ship", shipped, "s3://ops/fleet", "--grace", "3600", check=0)
    assert "to remove after the grace period" in p.stderr
    assert small in objects(s3["fs"])  # a reader that listed it may still read it
    with s3["fs"].open_input_stream("ops/fleet/_procsnap/live/host=10.csv") as f:
        live = f.read().decode()
    assert small not in live and f"c{sid(6)}-{sid(N - 2)}.parquet" in live
    sql = "SELECT count(*) AS n FROM processes"  # --host: only host 10's objects are listed and fetched
    assert run_cli("query", "--rec", "s3://ops/fleet", "--host", "10", "-f", "json", sql, check=0).stdout == \
        run_cli("query", "--rec", shipped, "--host", "10", "-f", "json", sql, check=0).stdout
    run_cli("ship", shipped, "s3://ops/fleet", "--grace", "0", check=0)
    left = [o for o in objects(s3["fs"]) if o.startswith(f"processes/host=10/date={id_date(sid(6))}/")]
    assert left == [f"processes/host=10/date={id_date(sid(6))}/c{sid(6)}-{sid(N - 2)}.parquet"]


def test_the_bandwidth_bound_paces_uploads():
    clock = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        clock[0] += s

    t = S.Throttle(100_000, now=lambda: clock[0], sleep=sleep)
    for _ in range(10):
        t(100_000)
        clock[0] += 0.01  # the upload itself
    assert abs(clock[0] - 10.0) < 0.05  # a million bytes at 100 kB/s: ten seconds
    S.Throttle(None, sleep=sleep)(10 ** 9)
    assert len(slept) == 10


def test_ship_usage_errors(tmp_path):
    p = run_cli("ship", tmp_path, "/not/a/bucket")
    assert p.returncode == 2 and "not an s3:// URL" in p.stderr
    p = run_cli("ship", tmp_path, "s3://b/p", "--bwlimit", "0")
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_a_command_about_one_moment_fetches_that_moments_files_only(s3, shipped, tmp_path, monkeypatch):
    """The commands but query fetch the snapshots objects, then only what they read: ps --at one
    moment of the second day fetches none of the first day's processes, nor any descriptor table;
    the answers are the folder's."""
    monkeypatch.setenv("PROCSNAP_CACHE", str(tmp_path / "cache"))
    mirror = tmp_path / "cache" / "s3" / "ops" / "fleet"

    def fetched(table):
        return {f.relative_to(mirror / table).parts[1] for f in (mirror / table).rglob("*.parquet")} \
            if (mirror / table).is_dir() else set()

    at, day1, day2 = "2026-11-29T00:00:30Z", "date=2026-11-28", "date=2026-11-29"
    hosts = [x for h in HOSTS for x in ("--host", h)]  # not db-9, another test's half-shipped host
    args = ["--at", at, "-o", "pid,comm,%cpu,rss", *hosts]
    p = run_cli("ps", "--rec", "s3://ops/fleet", *args, check=0)
    assert p.stdout == run_cli("ps", "--rec", shipped, *args, check=0).stdout and p.stdout.count("burner") == 3
    assert fetched("snapshots") == {day1, day2}
    assert fetched("processes") == {day2} and not fetched("open_files") and not fetched("sockets")
    n_ps = len(list(mirror.rglob("*.parquet")))
    p = run_cli("lsof", "--rec", "s3://ops/fleet", "--host", "web-1", "--at", at, "-p", "200", check=0)
    assert p.stdout == run_cli("lsof", "--rec", shipped, "--host", "web-1", "--at", at, "-p", "200", check=0).stdout
    assert fetched("open_files") == {day2} and not list((mirror / "open_files").glob("host=0007/*/*"))
    # a command over everything fetches the rest: the mirror is then the bucket's copy
    p = run_cli("report", "s3://ops/fleet", "-f", "json", *hosts, check=0)
    assert json.loads(p.stdout)["recording"]["sources"] == ["s3://ops/fleet"]
    data = [o for o in objects(s3["fs"]) if not o.startswith("_procsnap/") and "db-9" not in o]
    got = {f.relative_to(mirror).as_posix() for f in mirror.rglob("*.parquet")}
    assert set(data) <= got and n_ps < len(data)

"""Fleets: several hosts' recordings read together, by every analyzer command, with --host to narrow.

Two layouts: one folder per host side by side (``fleet/web-1``, ``fleet/db-1``, named by the
parent folder), and one tree partitioned by host (two recorders' snapshots in one folder). The
snapshots are real ones of this machine, recorded under two host names; a process of ours with a
known listener is in both, so each host's answer can be checked against the other's.
"""

import json
import os
import socket
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.live

HOSTS = ("db-1", "web-1")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    port = lst.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], pass_fds=[lst.fileno()],
                             stdin=subprocess.DEVNULL)
    try:
        for h in HOSTS:
            run_cli("snapshot", "-o", root / "side" / h, "--host", h, "-q", check=0)
            run_cli("snapshot", "-o", root / "tree", "--host", h, "-q", check=0)
        yield {"side": root / "side", "tree": root / "tree", "pid": child.pid, "port": port}
    finally:
        child.kill()
        child.wait()
        lst.close()


@pytest.fixture(params=["side", "tree"])
def layout(request, fleet):
    return fleet[request.param]


def test_info_and_query_see_every_host(layout):
    p = run_cli("info", layout, check=0)
    for h in HOSTS:
        assert f"host {h}: 1 snapshots" in p.stdout
    p = run_cli("query", "--rec", layout, "-f", "json",
                "SELECT host, count(*) AS n FROM processes GROUP BY host ORDER BY host", check=0)
    rows = json.loads(p.stdout)
    assert [r["host"] for r in rows] == list(HOSTS) and all(r["n"] > 5 for r in rows)
    p = run_cli("query", "--rec", layout, "--host", "web-1", "-f", "json",
                "SELECT DISTINCT host FROM open_files", check=0)
    assert json.loads(p.stdout) == [{"host": "web-1"}]


def test_lsof_ps_top_name_each_host_and_narrow(layout, fleet):
    pid, port = fleet["pid"], fleet["port"]
    p = run_cli("lsof", "--rec", layout, "-i", f":{port}", "-a", "-p", pid, check=0)
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["HOST", "COMMAND", "PID"]
    assert sorted(x.split()[0] for x in lines[1:]) == sorted(HOSTS)
    assert all(f"127.0.0.1:{port} (LISTEN)" in x for x in lines[1:])
    for h in HOSTS:
        assert f"snapshot of {h} at" in p.stderr
    p = run_cli("lsof", "--rec", layout, "--host", "db-1", "-i", f":{port}", "-a", "-p", pid, check=0)
    lines = p.stdout.splitlines()  # one host: lsof's own columns, no HOST
    assert lines[0].split()[:2] == ["COMMAND", "PID"] and len(lines) == 2 and f":{port} (LISTEN)" in lines[1]
    assert "snapshot of db-1 at" in p.stderr and "web-1" not in p.stderr

    p = run_cli("ps", "--rec", layout, "-p", pid, "-o", "pid,comm", check=0)
    assert [x.split() for x in p.stdout.splitlines()] == [["HOST", "PID", "COMMAND"]] + [
        [h, str(pid), os.path.basename(sys.executable)[:15]] for h in HOSTS]
    p = run_cli("ps", "--rec", layout, "--host", "web-1", "-p", pid, "-o", "pid,comm", check=0)
    assert [x.split()[0] for x in p.stdout.splitlines()] == ["PID", str(pid)]

    p = run_cli("top", "--rec", layout, "-n", "3", check=0)
    assert [x for x in p.stdout.splitlines() if x.startswith("== ")] == [f"== {h} ==" for h in HOSTS]
    p = run_cli("top", "--rec", layout, "--host", "web-1", "-n", "3", check=0)
    assert "== " not in p.stdout and p.stdout.startswith("top - ")


def test_report_and_diff_over_a_fleet(layout, fleet):
    p = run_cli("report", layout, "-f", "json", check=0)
    doc = json.loads(p.stdout)
    assert [h["host"] for h in doc["recording"]["hosts"]] == list(HOSTS)
    p = run_cli("report", layout, "--host", "db-1", "-f", "json", check=0)
    assert [h["host"] for h in json.loads(p.stdout)["recording"]["hosts"]] == ["db-1"]
    if layout == fleet["side"]:
        # the same service on two hosts: the diff matches our process by identity, not pid
        p = run_cli("diff", layout / "db-1", layout / "web-1", "-f", "json")
        assert p.returncode == 0, p.stderr
        c = json.loads(p.stdout)["comparisons"]
        assert [x["host"] for x in c] == ["db-1 → web-1"]
        ours = [x for k in ("started", "exited", "restarted") for x in c[0][k] if fleet["pid"] in
                (x.get("pid"), (x.get("before") or {}).get("pid"), (x.get("after") or {}).get("pid"))]
        assert not ours


def test_the_files_are_plain_parquet(layout):
    """What Spark, Trino or any Parquet reader sees: hive partitions, no procsnap code needed."""
    for h in HOSTS:
        folder = layout / h if (layout / h).is_dir() else layout
        dset = ds.dataset(folder / "processes", format="parquet", partitioning="hive")
        t = dset.to_table(columns=["host", "pid", "name"])
        assert h in set(t.column("host").to_pylist())
        assert t.num_rows > 5
    p = run_cli("query", "--rec", layout, "-f", "json", "SELECT count(*) AS n FROM processes", check=0)
    if (layout / HOSTS[0]).is_dir():
        n = sum(ds.dataset(layout / h / "processes", format="parquet", partitioning="hive").count_rows()
                for h in HOSTS)
    else:
        n = ds.dataset(layout / "processes", format="parquet", partitioning="hive").count_rows()
    assert json.loads(p.stdout) == [{"n": n}]


def test_a_folder_of_no_recordings_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    p = run_cli("info", tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "nor a folder of recordings" in p.stderr

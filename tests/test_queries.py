"""Every named query runs against samples/recording with asserted results.

The sample was recorded while samples/workload.py ran: ps-burner (busy loop),
ps-hog (200 MiB), ps-threads (8 named worker threads), ps-short (exits after
~2.5 s), ps-late (started after ~4.5 s), all children of ps-parent.
"""

import json
import re

import pytest

from analyze.data.db import Recording
from analyze.data.named import all_queries, bind, get_query, parse_query

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def rec(sample):
    return Recording.open([str(sample)])


def run(rec, name, **params):
    q = get_query(name)
    cols, rows = rec.execute(q.sql, bind(q, {k: str(v) for k, v in params.items()}, rec))
    return [dict(zip(cols, r)) for r in rows]


def test_every_query_is_listed_and_documented():
    readme = (ROOT / "README.md").read_text()
    names = [q.name for q in all_queries()]
    assert {"top_cpu", "top_memory", "process_tree", "thread_counts", "started_processes",
            "exited_processes"} <= set(names)
    for q in all_queries():
        assert q.title and q.name in readme, q.name
        for p in q.params:
            assert p.description, (q.name, p.name)


def test_top_cpu_puts_the_burner_first(rec):
    rows = run(rec, "top_cpu", limit=3)
    assert rows[0]["name"] == "ps-burner"
    assert 80 <= rows[0]["avg_cpu_pct"] <= 105
    assert len(rows) == 3
    assert all(r["name"] != "ps-hog" for r in rows[:1])


def test_top_cpu_window_limits_the_time(rec):
    start, end = rec.time_range()
    full = run(rec, "top_cpu", limit=1)[0]
    half = run(rec, "top_cpu", limit=1, start="-5s")[0]
    assert half["name"] == "ps-burner"
    assert half["cpu_s"] < full["cpu_s"] * 0.7


def test_top_memory_puts_the_hog_first(rec):
    rows = run(rec, "top_memory", limit=5)
    assert rows[0]["name"] == "ps-hog"
    assert rows[0]["peak_rss"] >= 200 * 1024 * 1024
    assert rows[0]["peak_rss"] >= rows[1]["peak_rss"]


def test_process_tree_puts_children_under_their_parent(rec):
    rows = run(rec, "process_tree")
    by_pid = {r["pid"]: r for r in rows}
    parent = next(r for r in rows if r["tree"].strip() == "ps-parent")
    kids = [r for r in rows if r["ppid"] == parent["pid"]]
    assert {r["tree"].strip() for r in kids} == {"ps-burner", "ps-hog", "ps-threads", "ps-late", "ps-server"}
    for k in kids:
        assert k["depth"] == parent["depth"] + 1
        assert k["tree"] == "  " * k["depth"] + k["tree"].strip()
        # children come right after their parent's subtree starts, never before it
        assert rows.index(k) > rows.index(parent)
    assert by_pid[1]["depth"] == 0
    assert len(rows) == len(by_pid)  # every process once


def test_process_tree_at_an_earlier_moment_still_has_the_short_one(rec):
    start, _ = rec.time_range()
    names = {r["tree"].strip() for r in run(rec, "process_tree", at=start.isoformat())}
    assert "ps-short" in names and "ps-late" not in names


def test_thread_counts(rec):
    rows = run(rec, "thread_counts", limit=50)
    t = next(r for r in rows if r["name"] == "ps-threads")
    assert t["threads"] == 9 and t["min_threads"] == 9 and t["max_threads"] == 9
    assert t["sleeping"] == 9
    assert all(f"ps-worker-{i}" in t["thread_names"] for i in range(8))
    assert [r["threads"] for r in rows] == sorted([r["threads"] for r in rows], reverse=True)


def test_started_processes(rec):
    rows = run(rec, "started_processes")
    names = [r["name"] for r in rows]
    assert "ps-late" in names
    late = rows[names.index("ps-late")]
    assert late["parent"] == "ps-parent" and late["exited"] is False
    # the workload's first children started before the recording did
    assert "ps-burner" not in names


def test_exited_processes(rec):
    rows = run(rec, "exited_processes")
    short = [r for r in rows if r["name"] == "ps-short"]
    assert len(short) == 1
    assert short[0]["gone_by"] > short[0]["last_seen"]
    assert "ps-burner" not in [r["name"] for r in rows]


def test_named_query_through_the_cli(cli, sample):
    p = cli("query", "--rec", sample, "--name", "top_memory", "-p", "limit=1", "-f", "json", check=0)
    assert json.loads(p.stdout)[0]["name"] == "ps-hog"
    p = cli("queries", "-f", "csv", check=0)
    assert "top_cpu,Top CPU consumers" in p.stdout


def test_query_help_names_every_table_and_view(cli):
    """`procsnap query --help` lists what SQL can name: every recorded table and every derived view
    (filesystems, open_files, sockets and netstat_rates were once missing)."""
    from analyze.data.views import DERIVED
    from recorder.schema import TABLES
    text = " ".join(cli("query", "--help", check=0).stdout.split())
    missing = [n for n in [*TABLES, *DERIVED] if not re.search(rf"\b{n}\b", text)]
    assert not missing, missing


def test_query_header_parsing(tmp_path):
    f = tmp_path / "q.sql"
    f.write_text("-- title: T\n-- description: a\n-- description: b\n-- param: n int = 3  How many\n"
                 "-- param: who text  Required one\nSELECT $n, $who\n")
    q = parse_query(f)
    assert (q.title, q.description) == ("T", "a b")
    assert [(p.name, p.type, p.default, p.description) for p in q.params] == [
        ("n", "int", "3", "How many"), ("who", "text", None, "Required one")]


def test_listening_sockets(rec):
    rows = [r for r in run(rec, "listening_sockets") if r["name"] == "ps-server"]
    kinds = {(r["family"], r["proto"], r["state"]) for r in rows}
    assert kinds == {("IPv4", "TCP", "LISTEN"), ("IPv4", "UDP", "UNCONN"), ("unix", "STREAM", "LISTEN")}
    tcp = next(r for r in rows if r["proto"] == "TCP")
    assert tcp["address"].startswith("127.0.0.1:") and tcp["accept_queue"] == 0
    unix = next(r for r in rows if r["family"] == "unix")
    assert unix["address"].endswith("/control.sock")


def test_fd_counts(rec):
    rows = run(rec, "fd_counts", limit=500)
    srv = next(r for r in rows if r["name"] == "ps-server")
    # its own 5 sockets, 2 pipe ends (plus any pipe inherited as stdio), 1 deleted file
    assert (srv["sockets"], srv["deleted"]) == (5, 1) and srv["pipes"] >= 2
    assert srv["files"] >= 1 and srv["fds"] >= 3 + 5 + 2 + 1  # stdio, sockets, pipe ends, the deleted file
    assert srv["fd_limit"] > 0 and 0 < srv["pct_of_limit"] < 100
    assert [r["fds"] for r in rows] == sorted((r["fds"] for r in rows), reverse=True)

"""The named queries over process_events and kernel_events: results on a recording that has
the events, and an empty answer (not an error) on one without the tables."""

import pytest

from analyze.data.db import Recording
from analyze.data.named import bind, get_query
from tests.support.events import at, incident, recording, short

NAMES = ("short_lived", "failed_processes", "oom_kills", "exec_storms")


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    path = tmp_path_factory.mktemp("evq") / "rec"
    incident(path)
    return Recording.open([str(path)])


def run(rec, name, **params):
    q = get_query(name)
    cols, rows = rec.execute(q.sql, bind(q, {k: str(v) for k, v in params.items()}, rec))
    return [dict(zip(cols, r)) for r in rows]


def test_short_lived(rec):
    rows = run(rec, "short_lived")
    assert [r["pid"] for r in rows] == [201, 202, 203, 204, 205, 206, 207]
    curl = rows[0]
    assert curl["name"] == "curl" and curl["exit_status"] == 0 and curl["lived_s"] == 0.05
    assert curl["cmdline"].endswith("token=<redacted>") and curl["cpu_s"] == 0.02
    assert run(rec, "short_lived", max_life="0.01") == []


def test_failed_processes(rec):
    rows = run(rec, "failed_processes")
    assert [(r["pid"], r["exit_status"], r["signal"]) for r in rows] == \
        [(202, 1, None), (203, 1, None), (204, 1, None), (205, 1, None), (206, 1, None), (207, None, 9), (300, None, 9)]
    assert rows[0]["cmdline"] == "worker --serve"
    assert [r["pid"] for r in run(rec, "failed_processes", start="03:00:15", end="03:00:20")] == [207]


def test_oom_kills_with_memory_before(rec):
    (r,) = run(rec, "oom_kills")
    assert (r["pid"], r["comm"], r["cgroup"], r["oom_constraint"]) == (300, "hog", "/hog", "CONSTRAINT_MEMCG")
    assert r["first_rss"] == 100 << 20 and r["last_rss"] == 700 << 20 and r["rss_at_kill"] == 900 << 20


def test_exec_storms(tmp_path):
    pe = {i: [x for k in range(5) for x in short(1000 + i * 10 + k, 100, at(i - 1, 100 * k), "cron", "cron")]
          for i in range(1, 30)}
    pe[15] += [x for k in range(300) for x in short(5000 + k, 100, at(14, 10 * k), "sh", "sh -c x")]
    r = recording(tmp_path / "r", n=30, pe=pe)
    (row,) = run(r, "exec_storms")
    assert (row["forks"], row["execs"], row["top_command"]) == (305, 305, "sh")
    assert row["usual_per_s"] == 1.0 and row["times_usual"] == 61.0
    assert run(r, "exec_storms", factor=100) == []
    quiet = recording(tmp_path / "q", n=30, pe={i: v for i, v in pe.items() if i != 15})
    assert run(quiet, "exec_storms") == []


@pytest.mark.parametrize("name", NAMES)
def test_runs_without_the_tables(sample, name):
    assert run(Recording.open([str(sample)]), name) == []


def test_a_reused_pid_is_not_given_the_previous_process_s_command_line(tmp_path):
    """pid 500 runs `job --token=x`, exits; a new process gets pid 500 and exits without exec:
    its exit row in process_exits has no command line (the exec was the earlier process's)."""
    from tests.support.events import ev
    first = short(500, 1, at(1, 0), "job", "job --run")
    again = [ev("fork", 500, at(1, 500), ppid=1), ev("exit", 500, at(1, 600), ppid=1, exit_status=0)]
    r = recording(tmp_path / "r", n=3, pe={1: first + again})
    rows = r.query("SELECT started, cmdline, name FROM process_exits WHERE pid = 500 ORDER BY time")[1]
    assert [x[1:] for x in rows] == [("job --run", "job"), (None, None)]
    assert rows[1][0] == at(1, 500)

"""procsnap report's incidents from process_events and kernel_events: each fires on a recording
that has it and not on one that has not; each finding's SQL gives its rows under query."""

import datetime as dt
import json

import pytest

from analyze.cli import main
from analyze.commands import report as R
from analyze.data.db import Recording
from tests.support.events import MiB, at, incident, kern, recording, short
from tests.support.synthetic import proc, snapshot, write


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    path = tmp_path_factory.mktemp("repev") / "rec"
    rec = incident(path)
    return rec, R.run(rec), str(path)


def kinds(result):
    return [f.kind for f in result["findings"] if f.category == "incident"]


def test_incidents_found_and_ranked(res):
    rec, result, _ = res
    assert kinds(result) == ["proc.oom_kill", "proc.crash_loop", "proc.killed"]
    assert result["summary"]["incidents"] == 3


def test_crash_loop_with_interval(res):
    _, result, _ = res
    (f,) = [f for f in result["findings"] if f.kind == "proc.crash_loop"]
    assert f.severity == "warning" and f.evidence["failures"] == 5 and f.evidence["how"] == "status 1"
    assert f.evidence["restart_every_s"] == 2.0 and f.evidence["restart_max_s"] == 8.0
    # it lived between two snapshots: named by the evidence, no process rows to chart
    assert f.process is None and f.evidence["last_pid"] == 206 and f.evidence["command_line"] == "worker --serve"
    assert "restarting every 2 s" in f.title


def test_oom_kill_with_memory_history(res):
    _, result, _ = res
    (f,) = [f for f in result["findings"] if f.kind == "proc.oom_kill"]
    e = f.evidence
    assert f.severity == "critical" and f.process["pid"] == 300 and e["cgroup"] == "/hog"
    assert f.process["start_time"] is not None  # seen by the snapshots: the HTML page charts it
    assert (e["first_rss"], e["last_rss"], e["samples"]) == (100 << 20, 700 << 20, 4)
    assert e["cgroup_limit"] == e["cgroup_usage"] == 1024 * MiB and "/hog, limit 1.0 GiB" in f.title


def test_killed_leaves_out_loops_and_oom_victims(res):
    _, result, _ = res
    (f,) = [f for f in result["findings"] if f.kind == "proc.killed"]
    assert f.evidence["last_pids"] == [207] and f.evidence["last_pid"] == 207 and f.evidence["signal"] == 9 and "SIGKILL" in f.title


def test_each_sql_reproduces_under_query(res):
    from analyze.output import json_value
    rec, result, _ = res
    for f in result["findings"]:
        cols, rows = Recording.open([str(rec.sources[0])]).execute(f.sql)
        rows = [json_value(dict(zip(cols, r))) for r in rows]
        ev = json_value(f.evidence)
        same = [r for r in rows if all(r[k] == v for k, v in ev.items() if k in r)]
        assert same and (not f.process or same[0]["pid"] == f.process["pid"]), f.kind


def test_a_script_looping_over_a_failing_command_is_no_crash_loop(tmp_path):
    # grep exiting 1 five times within a few ms: a shell loop, not a service restarting
    pe = {1: [x for k in range(5) for x in short(300 + k, 100, at(0, 100 + 2 * k), "grep", "grep -q x f", status=1,
                                                 life_ms=1)]}
    assert kinds(R.run(recording(tmp_path / "r", n=3, pe=pe))) == []


def test_exec_storm_and_hung_task(tmp_path):
    pe = {i: [x for k in range(5) for x in short(1000 + i * 10 + k, 100, at(i - 1, 100 * k), "cron", "cron")]
          for i in range(1, 30)}
    pe[15] += [x for k in range(300) for x in short(5000 + k, 100, at(14, 10 * k), "sh", "sh -c x")]
    ke = {20: [kern(1, at(19, 100), "hung_task", "INFO: task jbd2/sda1-8:123 blocked for more than 120 seconds.",
                    pid=123, comm="jbd2/sda1-8", seconds=120)]}
    result = R.run(recording(tmp_path / "r", n=30, pe=pe, ke=ke))
    fs = {f.kind: f for f in result["findings"] if f.category == "incident"}
    assert set(fs) == {"proc.exec_storm", "proc.hung_task"}
    assert fs["proc.exec_storm"].evidence["forks"] == 305 and fs["proc.exec_storm"].severity == "critical"
    assert fs["proc.hung_task"].severity == "warning" and fs["proc.hung_task"].evidence["pid"] == 123
    quiet = R.run(recording(tmp_path / "q", n=30, pe={i: v for i, v in pe.items() if i != 15}))
    assert kinds(quiet) == []


def test_no_incident_without_them(tmp_path):
    # events that are all well: short processes ending with status 0, fewer failures than a loop
    pe = {1: short(201, 100, at(0, 100), "cron", "cron", status=0) + short(202, 100, at(0, 500), "w", "w", status=1)
          + short(203, 100, at(0, 900), "w", "w", status=1) + short(204, 100, at(0, 1500), "t", "t", signal=15)}
    result = R.run(recording(tmp_path / "r", n=3, pe=pe))
    assert [(f.kind, f.severity) for f in result["findings"] if f.category == "incident"] == [("proc.killed", "info")]
    assert "Incidents (1)" in R.text(result)
    old = R.run(write(tmp_path / "old", [snapshot(i, {"processes": [proc(100, i, "bash")]}) for i in range(3)]))
    assert kinds(old) == [] and "Incidents" not in R.text(old) and "incident(s)" not in R.text(old)


def test_cli_text_json_html(res, capsys, tmp_path):
    _, _, path = res
    assert main(["report", path]) == 0
    out = capsys.readouterr().out
    assert out.index("Bottlenecks") < out.index("Incidents (3)") and "crash loop: worker" in out
    assert main(["report", path, "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [f["kind"] for f in doc["findings"]] == ["proc.oom_kill", "proc.crash_loop", "proc.killed"]
    page = tmp_path / "r.html"
    assert main(["report", path, "--html", str(page)]) == 0
    html = page.read_text()
    assert "Incidents (3)" in html and "proc.crash_loop" in html


def test_window_takes_events_by_their_own_time(tmp_path):
    # a process forked before the window and failing in it, whose exit is written with the
    # snapshot after the window's end: the report sees it as its SQL under query does
    pe = {1: short(201, 100, at(0, 100), "w", "w --x", status=2, life_ms=50)[:2],
          3: [x for k in range(3) for x in short(300 + k, 100, at(2, 1000 * k), "w", "w --x", status=2)]
          + short(201, 100, at(0, 100), "w", "w --x", status=2, life_ms=29_000)[2:]}
    path = tmp_path / "r"
    recording(path, n=5, pe=pe)
    result = R.run(Recording.open([str(path)]), "03:00:05", "03:00:29.5")
    (f,) = [f for f in result["findings"] if f.kind == "proc.crash_loop"]
    assert f.evidence["failures"] == 4 and f.evidence["command_line"] == "w --x"
    rows = Recording.open([str(path)]).execute(f.sql)[1]
    assert len(rows) == 1

"""Times as people type them against a recording (issue 17, item 7; issue 18, item 8).

The sample recording's snapshots are taken at 03:00:37.65, 03:00:38.65, ... 03:00:48.65 (UTC).
"""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


def one_line(p):
    err = p.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def used(p) -> str:
    """The snapshot a command about one moment says it used."""
    lines = [x for x in p.stderr.splitlines() if x.startswith("procsnap: snapshot of")]
    assert lines, p.stderr
    return lines[0].rsplit(" at ", 1)[1]


@pytest.mark.parametrize("cmd", [["ps", "-p", "1"], ["lsof", "-p", "1"], ["top", "-n", "1"]])
def test_a_time_to_the_second_covers_that_second(sample, cmd):
    # 03:00:45 as procsnap prints the snapshot of 03:00:45.650324: that snapshot, not the one before.
    p = run_cli(*cmd, "--rec", sample, "--at", "03:00:45")
    assert p.returncode == 0, p.stderr
    assert used(p) == "2026-11-28 03:00:45 UTC"
    p = run_cli(*cmd, "--rec", sample, "--at", "2026-11-28T03:00:45Z")
    assert used(p) == "2026-11-28 03:00:45 UTC"
    # A time given to the tenth covers that tenth only.
    p = run_cli(*cmd, "--rec", sample, "--at", "03:00:45.3")
    assert used(p) == "2026-11-28 03:00:44 UTC"


def test_a_named_query_end_covers_its_whole_last_digit(sample, tmp_path):
    (tmp_path / "w.sql").write_text("-- title: window\n-- param: start time = start  from\n-- param: end time = end  to\n"
                                    "SELECT count(*) FROM snapshots WHERE ts BETWEEN $start AND $end\n")
    import os
    env = dict(os.environ, PROCSNAP_QUERIES=str(tmp_path))
    import subprocess
    import sys

    from tests.conftest import ROOT
    p = subprocess.run([sys.executable, "-m", "analyze.cli", "query", "--rec", str(sample), "-f", "csv", "--name", "w",
                        "-p", "start=03:00:45", "-p", "end=03:00:46"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "2"  # 03:00:45.65 and 03:00:46.65


def test_a_time_after_the_end_says_how_far_the_answer_is(sample):
    p = run_cli("ps", "-p", "1", "--rec", sample, "--at", "2030-01-01")
    assert p.returncode == 0, p.stderr
    assert "is 1129d 20h before the time asked (2030-01-01 00:00:00 UTC)" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    # Within one interval of the last snapshot: nothing to say.
    p = run_cli("ps", "-p", "1", "--rec", sample, "--at", "2026-11-28T03:00:49")
    assert p.returncode == 0 and "before the time asked" not in p.stderr, p.stderr
    p = run_cli("lsof", "-p", "1", "--rec", sample, "--at", "2026-11-28T03:05")
    assert "is 4m 11s before the time asked" in p.stderr, p.stderr


def test_a_time_before_the_start_is_an_error(sample):
    p = run_cli("ps", "-p", "1", "--rec", sample, "--at", "02:00")
    assert p.returncode == 1
    assert "no snapshot at or before 2026-11-28T02:00:00+00:00" in one_line(p)


@pytest.mark.parametrize("args,needle", [
    (["diff", "--rec", "SAMPLE", "--from", "03:00:45", "--to", "03:00:44"], "--from is after --to"),
    (["report", "SAMPLE", "--from", "03:00:45", "--to", "03:00:44"], "--from is after --to"),
    (["diff", "--rec", "SAMPLE", "--from", "end", "--to", "start"], "--from is after --to"),
    (["report", "SAMPLE", "--from", "end", "--to", "start"], "--from is after --to"),
    (["query", "--rec", "SAMPLE", "--name", "top_cpu", "-p", "start=03:00:45", "-p", "end=03:00:44"],
     "-p start is after -p end"),
    (["query", "--rec", "SAMPLE", "--name", "top_memory", "-p", "start=end", "-p", "end=start"],
     "-p start is after -p end"),
])
def test_from_after_to_is_a_usage_error_everywhere(sample, args, needle):
    p = run_cli(*[str(sample) if a == "SAMPLE" else a for a in args])
    assert p.returncode == 2, p.stderr
    assert needle in one_line(p) and p.stdout == ""


@pytest.mark.parametrize("args", [["diff", "--rec", "SAMPLE", "--from", "03:00:45", "--to", "03:00:45"],
                                  ["report", "SAMPLE", "--from", "03:00:45", "--to", "03:00:45"]])
def test_a_window_of_one_second_is_fine(sample, args):
    p = run_cli(*[str(sample) if a == "SAMPLE" else a for a in args])
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("args", [
    ["ps", "--rec", "SAMPLE", "--at", "+99999999999d"],
    ["lsof", "--rec", "SAMPLE", "--at", "-99999999999d"],
    ["top", "--rec", "SAMPLE", "--at", "+99999999999w"],
    ["diff", "--rec", "SAMPLE", "--from", "+99999999999d"],
    ["report", "SAMPLE", "--to", "+99999999999d"],
    ["query", "--rec", "SAMPLE", "--name", "top_cpu", "-p", "start=+99999999999d"],
    ["query", "--rec", "SAMPLE", "--name", "top_cpu", "-p", "end=-1e30s"],
    ["query", "--rec", "SAMPLE", "--name", "top_cpu", "-p", "limit=99999999999999999999999"],
    ["query", "--rec", "SAMPLE", "--name", "top_cpu", "-p", "start=10000-01-01"],
    ["query", "--rec", "SAMPLE", "--name", ""],
    ["query", "--rec", "SAMPLE", "--name", " "],
])
def test_odd_values_are_one_line_and_exit_2(sample, args):
    p = run_cli(*[str(sample) if a == "SAMPLE" else a for a in args])
    assert p.returncode == 2, p.stderr
    one_line(p)
    assert p.stdout == ""


def test_the_last_day_of_year_9999_is_a_time(sample):
    p = run_cli("ps", "-p", "1", "--rec", sample, "--at", "9999-12-31")
    assert p.returncode == 0 and "before the time asked (9999-12-31 00:00:00 UTC)" in p.stderr, p.stderr


def test_a_fleet_host_without_a_snapshot_by_then_is_said_to_be_left_out(sample, tmp_path):
    import shutil
    fleet = tmp_path / "fleet"
    shutil.copytree(sample, fleet / "a")
    shutil.copytree(sample, fleet / "b")
    for d in list((fleet / "b").glob("*/host=sample-host")):
        d.rename(d.with_name("host=late-host"))
    for f in sorted((fleet / "b" / "snapshots").rglob("*.parquet"))[:6]:  # late-host starts at 03:00:43.65
        f.unlink()
    p = run_cli("ps", "-p", "1", "--rec", fleet, "--at", "03:00:40")
    assert p.returncode == 0, p.stderr
    assert "procsnap: no snapshot of late-host at or before 2026-11-28 03:00:40 UTC: that host is left out" in p.stderr
    p = run_cli("ps", "-p", "1", "--rec", fleet, "--at", "03:00:44")
    assert p.returncode == 0 and "left out" not in p.stderr, p.stderr


def test_a_named_query_with_a_start_and_no_end_binds(sample, tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    (tmp_path / "since.sql").write_text("-- title: since\n-- param: start time = start  from\n"
                                        "SELECT count(*) FROM snapshots WHERE ts >= $start\n")
    p = subprocess.run([sys.executable, "-m", "analyze.cli", "query", "--rec", str(sample), "-f", "csv", "--name", "since",
                        "-p", "start=03:00:45"], cwd=ROOT, env=dict(os.environ, PROCSNAP_QUERIES=str(tmp_path)),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "4"

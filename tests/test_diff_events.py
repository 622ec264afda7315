"""procsnap diff: what ran and ended entirely between the two moments, from process_events."""

import json

import pytest

from analyze.cli import main
from tests.support.events import incident
from tests.support.synthetic import proc, snapshot, write


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    path = tmp_path_factory.mktemp("diffev") / "rec"
    incident(path)
    return str(path)


def test_text_lists_counts_by_command_and_failures(capsys, rec):
    assert main(["diff", "--rec", rec]) == 0
    out = capsys.readouterr().out
    part = out[out.index("Processes that ran and ended in between (7"):]
    assert "7 processes, 6 failed" in part
    assert "5  worker  (5 failed)" in part and "1  curl" in part
    assert "207 victim (root): SIGKILL (9)  victim" in part
    assert "202 worker (root): status 1  worker --serve" in part
    assert "201 curl" not in part  # it ended well: counted, not listed


def test_json_and_selection(capsys, rec):
    main(["diff", "--rec", rec, "-f", "json", "-c", "^work"])
    r = json.loads(capsys.readouterr().out)["comparisons"][0]["ran_between"]
    assert r["recorded"] and r["total"] == 2 and r["failed"] == 1
    assert [(f["pid"], f["signal"], f["exit_status"]) for f in r["failures"]] == [(207, 9, None)]


def test_window_leaves_out_what_ran_outside(capsys, rec):
    main(["diff", "--rec", rec, "-f", "json", "--from", "03:00:10"])
    r = json.loads(capsys.readouterr().out)["comparisons"][0]["ran_between"]
    assert sorted(c["name"] for c in r["by_command"]) == ["victim", "worker"] and r["total"] == 4


def test_exit_code_counts_them(capsys, tmp_path):
    from tests.support.events import at, recording, short
    path = tmp_path / "r"
    recording(path, n=2, pe={1: short(201, 100, at(0, 100), "cron", "cron job", status=0)})
    assert main(["diff", "--rec", str(path), "--exit-code"]) == 1
    assert "Processes that ran and ended in between (1" in capsys.readouterr().out


def test_without_process_events_nothing_is_said(capsys, tmp_path):
    write(tmp_path / "old", [snapshot(i, {"processes": [proc(100, i, "bash")]}) for i in range(3)])
    assert main(["diff", "--rec", str(tmp_path / "old"), "--exit-code"]) == 0
    assert "ran and ended" not in capsys.readouterr().out
    main(["diff", "--rec", str(tmp_path / "old"), "-f", "json"])
    assert json.loads(capsys.readouterr().out)["comparisons"][0]["ran_between"]["recorded"] is False

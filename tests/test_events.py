"""procsnap events: process and kernel events of a recording, selection, --tree, exit codes."""

import csv
import io
import json

import pytest

from analyze.cli import main
from tests.support.events import incident, recording
from tests.support.synthetic import proc, snapshot, write


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    path = tmp_path_factory.mktemp("events") / "rec"
    incident(path)
    return str(path)


def run(capsys, *args):
    code = main(["events", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def rows(capsys, *args):
    code, out, _ = run(capsys, *args, "-f", "csv")
    return code, list(csv.DictReader(io.StringIO(out)))


def test_events_in_time_order_with_exit_status_and_signal(capsys, rec):
    code, rs = rows(capsys, "--rec", rec)
    assert code == 0
    times = [r["time"] for r in rs]
    assert times == sorted(times)
    exits = {r["pid"]: r["detail"] for r in rs if r["kind"] == "exit"}
    assert exits["201"].startswith("status 0")
    assert exits["202"].startswith("status 1")
    assert exits["207"].startswith("SIGKILL (9)")
    assert any(r["kind"] == "oom_kill" and r["pid"] == "300" for r in rs)
    assert any(r["kind"] == "segfault" and r["pid"] == "207" for r in rs)
    # a fork row takes the command its process ran
    assert {r["command"] for r in rs if r["kind"] == "fork" and r["pid"] == "201"} == {"curl"}


def test_selection_pid_command_user_kind(capsys, rec):
    _, rs = rows(capsys, "--rec", rec, "-p", "207")
    assert {r["pid"] for r in rs} == {"207"} and {r["kind"] for r in rs} == {"fork", "exec", "exit", "segfault"}
    _, rs = rows(capsys, "--rec", rec, "-c", "work")
    assert {r["command"] for r in rs} == {"worker"} and len(rs) == 15
    _, rs = rows(capsys, "--rec", rec, "-c", "^work", "--kind", "exit")
    assert "worker" not in {r["command"] for r in rs} and {r["kind"] for r in rs} == {"exit"}
    _, rs = rows(capsys, "--rec", rec, "--kind", "oom")
    assert [(r["kind"], r["pid"]) for r in rs] == [("oom_kill", "300")]
    _, rs = rows(capsys, "--rec", rec, "-u", "root", "--kind", "exec")
    assert len(rs) == 7
    assert rows(capsys, "--rec", rec, "-u", "nobody")[0] == 1


def test_kind_log_lists_the_unparsed_kernel_records(capsys, tmp_path):
    from tests.support.events import at, kern
    recording(tmp_path / "r", ke={1: [kern(1, at(0, 100), None, "eth0: link up"),
                                      kern(2, at(0, 200), "oom_kill", "Out of memory: Killed process 9 (x)",
                                           pid=9, comm="x")]})
    _, rs = rows(capsys, "--rec", str(tmp_path / "r"))
    assert [r["kind"] for r in rs] == ["oom_kill"]
    _, rs = rows(capsys, "--rec", str(tmp_path / "r"), "--kind", "log")
    assert [(r["kind"], r["detail"]) for r in rs] == [("log", "eth0: link up")]


def test_window(capsys, rec):
    _, rs = rows(capsys, "--rec", rec, "--from", "03:00:20")
    assert {r["pid"] for r in rs} == {"300"}
    _, rs = rows(capsys, "--rec", rec, "--to", "03:00:01")
    assert {r["pid"] for r in rs} == {"201", "202"}


def test_json_and_tree(capsys, rec):
    code, out, _ = run(capsys, "--rec", rec, "-f", "json", "--kind", "exit", "-p", "207")
    assert code == 0 and json.loads(out)[0]["detail"].startswith("SIGKILL")
    code, out, _ = run(capsys, "--rec", rec, "--tree", "-f", "text")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].strip() == "100 (started before)"
    assert any("201 curl" in l and "[status 0]" in l for l in lines)
    _, rs = rows(capsys, "--rec", rec, "--tree")
    assert {r["pid"]: r["ended"] for r in rs}["207"] == "SIGKILL (9)"


def test_tree_nests_children(capsys, tmp_path):
    from tests.support.events import at, short
    pe = {1: short(201, 100, at(0, 100), "sh", "sh -c make", life_ms=500)
          + short(202, 201, at(0, 200), "make", "make all", life_ms=100)}
    recording(tmp_path / "r", pe=pe)
    _, rs = rows(capsys, "--rec", str(tmp_path / "r"), "--tree")
    assert [(r["pid"], r["depth"]) for r in rs] == [("201", "0"), ("202", "1")]


@pytest.mark.parametrize("args", [["--kind", "bogus"], ["--from", "zz"], ["--from", "03:00:20", "--to", "03:00:10"],
                                  ["-f", "xml"], ["-p", "abc"]])
def test_bad_input_is_one_line_exit_2(capsys, rec, args):
    code, out, err = run(capsys, "--rec", rec, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_without_rec_is_usage(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "--rec" in err


def test_recording_without_event_tables_says_so(capsys, tmp_path):
    write(tmp_path / "old", [snapshot(i, {"processes": [proc(100, i, "bash")]}) for i in range(2)])
    code, out, err = run(capsys, "--rec", str(tmp_path / "old"))
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "no process or kernel events" in err


def test_damaged_event_file_is_partial(capsys, tmp_path):
    path = tmp_path / "r"
    incident(path)
    victim = sorted(path.glob("process_events/**/*.parquet"))[0]
    victim.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    code, out, err = run(capsys, "--rec", str(path), "-f", "csv")
    assert code == 3 and "PARTIAL" in out

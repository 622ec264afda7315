"""Every analyzer command on a recording that is being written and compacted right now."""

import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = [pytest.mark.live, pytest.mark.timing]


@pytest.fixture
def live_recording(tmp_path):
    out = tmp_path / "rec"
    p = subprocess.Popen([sys.executable, "-m", "analyze.cli", "record", "-o", str(out), "-i", "0.2",
                          "--files-interval", "0.6", "--compact-min", "3", "--grace", "20", "-q"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while len(list(out.glob("snapshots/*/*/*.parquet"))) < 3:
        assert p.poll() is None, p.stderr.read()
        assert time.monotonic() < end, "the recorder wrote no snapshots"
        time.sleep(0.1)
    yield out
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert err == "", err


def test_commands_on_a_live_recording(live_recording):
    rec = str(live_recording)
    commands = [
        ["info", rec],
        ["query", "--rec", rec, "-f", "csv", "SELECT count(*) - count(DISTINCT snapshot_id) FROM snapshots"],
        ["query", "--rec", rec, "-f", "csv",
         "SELECT count(*) FROM (SELECT snapshot_id, pid FROM processes GROUP BY ALL HAVING count(*) > 1)"],
        ["lsof", "--rec", rec, "-p", "1"],
        ["ps", "--rec", rec, "-e"],
        ["top", "--rec", rec, "-n", "5"],
        ["diff", "--rec", rec, "--from", "start"],
        ["report", rec],
    ]
    for c in commands:
        r = run_cli(*c)
        assert r.returncode == 0, (c, r.stderr)
        assert "Traceback" not in r.stderr
        if c[0] == "query":
            assert r.stdout.splitlines()[-1] == "0", (c, r.stdout)
    compacted = list(live_recording.glob("processes/*/*/c*.parquet"))
    assert compacted, "the recorder did not compact while the commands ran"
    # The queries again, now that compacted files and the small files they cover coexist.
    for c in commands[1:3]:
        r = run_cli(*c)
        assert r.returncode == 0 and r.stdout.splitlines()[-1] == "0", (c, r.stdout, r.stderr)

"""Live: a small crash loop recorded from the real kernel's process events; `procsnap report`
names it and `procsnap events` lists its exits."""

import subprocess
import time

import pytest

from analyze.cli import main
from analyze.commands import report as Rp
from analyze.data.db import Recording
from recorder import record as R
from recorder.collect.collector import Collector
from recorder.collect.process_events import listen
from recorder.store.folder import Store
from tests.support.record_loop import KeepOpen

pytestmark = [pytest.mark.live, pytest.mark.root]



def test_a_crash_loop_is_named_by_report_and_listed_by_events(tmp_path, capsys):
    col = Collector(host="h", tables=("system", "processes"))
    root = tmp_path / "r"
    with Store(root) as st:
        pe = listen(col)
        if pe.off:
            pytest.skip(f"process events: {pe.off}")
        R.record(st, col, 0.1, count=1, process_events=KeepOpen(pe))
        for _ in range(5):  # a service that fails at once and is restarted every 0.2 s
            subprocess.run(["sh", "-c", "sleep 0.02; exit 3", "ana-crashloop"], check=False)
            time.sleep(0.2)
        R.record(st, col, 0.1, count=1, process_events=pe)
    result = Rp.run(Recording.open([str(root)]))
    loops = [f for f in result["findings"] if f.kind == "proc.crash_loop" and "exit 3" in (f.evidence["command_line"] or "")]
    assert loops, [f.title for f in result["findings"]]
    assert loops[0].evidence["failures"] >= 5 and loops[0].evidence["how"] == "status 3"
    assert 0.1 < loops[0].evidence["restart_every_s"] < 1.0
    assert main(["events", "--rec", str(root), "--kind", "exit", "-c", "sh", "-f", "csv"]) == 0
    assert capsys.readouterr().out.count("status 3") >= 5

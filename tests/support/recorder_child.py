"""A recorder over a fake /proc, run as a child process by the durability and
disk-full tests: `python -m tests.support.recorder_child PROC OUT INTERVAL COMPACT_MIN GRACE`.

Same path as `procsnap record` (Store, recover, record with maintenance), but
the collection is cheap and independent of how busy the test host is.
"""

import sys
import time
from pathlib import Path

from recorder.collect.collector import Collector
from recorder.store.compact import Maintenance, recover
from recorder.source.procfs import ProcFS
from recorder.record import record
from recorder.store.folder import Store, StoreError

from tests.support.fakeproc import FakeProc


def open_when_free(out, timeout: float = 60.0) -> Store:
    """The recording's Store, once no other writer holds it: a compaction child that a killed
    recorder left keeps the writer lock until it is done (no recorder starts meanwhile, by
    design), and a restarted recorder waits for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Store(out)
        except StoreError as e:
            if "another procsnap recorder" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main(proc: str, out: str, interval: str, compact_min: str, grace: str) -> None:
    if not Path(proc).is_dir():
        fake = FakeProc(proc)
        for pid in range(100, 140):
            fake.add_process(pid, b"worker%d" % pid, fds=8, threads=[pid, pid + 1000])
    collector = Collector(procfs=ProcFS(proc), host="fakehost")
    with open_when_free(out) as store:
        recover(store)
        print("ready", flush=True)
        res = record(store, collector, float(interval), files_interval=3 * float(interval),
                     maintenance=Maintenance(compact_min=int(compact_min) or None, grace=float(grace)))
    print(f"done {res.snapshots} {res.dropped}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])

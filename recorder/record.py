"""The record loop: snapshots on a fixed schedule until a count, a duration
or a signal ends it.

Snapshot k is due at start + k × interval (no drift). When a snapshot overruns
its slot, the slots it overran are skipped and counted in the next snapshot's
``skipped`` column, never stacked. SIGINT and SIGTERM finish the snapshot in
hand, write it, and stop: the recording is always valid.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable

from .collect import Collector
from .store import Store


@dataclass
class RecordResult:
    snapshots: int = 0
    bytes: int = 0
    skipped: int = 0
    pending_skip: int = 0  # skipped just before the next snapshot
    stopped_by: str | None = None  # signal name, or None when the count/duration ran out


class _Stop:
    def __init__(self):
        self.signal: str | None = None

    def __call__(self, signum, frame):
        self.signal = signal.Signals(signum).name


def record(store: Store, collector: Collector, interval: float, count: int | None = None,
           duration: float | None = None, progress: Callable[[RecordResult, float], None] | None = None,
           clock: Callable[[], float] = time.monotonic) -> RecordResult:
    res = RecordResult()
    stop = _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        start = clock()
        k = 0
        while True:
            collector.skipped = res.pending_skip
            snap = collector.snapshot()
            res.bytes += store.write(snap)
            res.snapshots += 1
            res.pending_skip = 0
            if progress:
                progress(res, clock() - start)
            if stop.signal or (count is not None and res.snapshots >= count):
                break
            k += 1
            due = start + k * interval
            now = clock()
            if now > due:
                missed = int((now - due) // interval) + 1
                k += missed
                res.skipped += missed
                res.pending_skip = missed
                due = start + k * interval
            if duration is not None and due - start >= duration:
                break
            # Sleep in short steps so that a signal is noticed promptly.
            while not stop.signal:
                left = due - clock()
                if left <= 0:
                    break
                time.sleep(min(left, 0.2))
            if stop.signal:
                break
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    res.stopped_by = stop.signal
    return res


def progress_line(stream=sys.stderr) -> Callable[[RecordResult, float], None]:
    def show(res: RecordResult, elapsed: float) -> None:
        stream.write(f"\rprocsnap: {res.snapshots} snapshots, {res.bytes / 1e6:.1f} MB, {elapsed:.0f}s"
                     + (f", {res.skipped} skipped" if res.skipped else "") + "   ")
        stream.flush()
    return show

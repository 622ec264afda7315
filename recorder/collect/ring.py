"""The pre-trigger ring: what the host looked like in the minutes before an incident.

An always-on recorder writes a snapshot every 150 s, so the start of a storm is seen at best in
one frame. While its triggers are armed and no incident runs, the record loop also takes a light
frame every ``every`` seconds (host counters and the process table: RING_TABLES, no threads, no
descriptors) and keeps the frames of the last ``span`` seconds in memory, nothing written. When
an incident starts (a trigger, SIGHUP, the ``incident`` file), the frames are written as
snapshots of their own (``snapshots.early`` = 'ring'), so the recording shows how it began at
the ring's cadence; then the ring starts afresh. perf's and Go's flight recorders keep such a
ring for the same reason.

A frame taken before the last regular snapshot can no longer be written where a compaction has
since merged the snapshots around it (its file would sit inside a compacted file's range and be
hidden): such frames are left out and counted, which happens only when compaction ran within the
ring's span.
"""

from __future__ import annotations

import time
from collections import deque

import pyarrow as pa

RING_TABLES = ("system", "disks", "nics", "processes")
# A frame is held as Arrow IPC bytes, one copy per table: many small Arrow buffers kept for
# minutes would pin the heap pages around them. The process table, the bulk, is also compressed.
COMPRESSED = ("processes",)
DEFAULT_EVERY = 15.0   # s between two frames
DEFAULT_SPAN = 300.0   # s of frames kept


class Ring:
    """Frames of the last SPAN seconds, one every EVERY seconds, taken by COLLECTOR."""

    def __init__(self, collector, every: float = DEFAULT_EVERY, span: float = DEFAULT_SPAN,
                 clock=time.monotonic):
        self.collector, self.every, self.span, self.clock = collector, every, span, clock
        self.frames: deque = deque()  # (clock() when taken, Snapshot)
        self.next = clock() + every

    def due(self) -> bool:
        return self.clock() >= self.next

    def take(self):
        """One frame now, kept; frames older than the span are let go. Returns the frame's
        processes table (the frame itself is held packed)."""
        c = self.collector
        interval, skipped = c.interval, c.skipped
        c.interval, c.skipped = self.every, 0
        try:
            snap = c.snapshot(RING_TABLES)
        finally:
            c.interval, c.skipped = interval, skipped
        processes = snap.tables.get("processes")
        snap.tables = {name: _pack(t, name in COMPRESSED) for name, t in snap.tables.items()}
        now = self.clock()
        self.frames.append((now, snap))
        while self.frames and self.frames[0][0] < now - self.span:
            self.frames.popleft()
        self.next = max(self.next + self.every, now + self.every / 2)
        return processes

    def saw_snapshot(self) -> None:
        """A regular snapshot was just taken: the next frame comes a whole step after it."""
        self.next = self.clock() + self.every

    def drain(self) -> list:
        """The frames held, oldest first; the ring is empty afterwards."""
        out = [s for _, s in self.frames]
        self.frames.clear()
        for snap in out:
            snap.tables = {name: _unpack(b) for name, b in snap.tables.items()}
        return out

    def restart(self) -> None:
        """Start afresh (after an incident: its own snapshots are finer than the ring's)."""
        self.frames.clear()
        self.next = self.clock() + self.every


_OPTIONS = {True: pa.ipc.IpcWriteOptions(compression="zstd"), False: pa.ipc.IpcWriteOptions()}


def _pack(table: pa.Table, compress: bool) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS[compress]) as w:
        w.write_table(table)
    # a copy of exactly its bytes: the stream's buffer keeps its grown capacity (about 1 MB a
    # frame at 1000 processes, 20 times the data)
    return pa.py_buffer(sink.getvalue().to_pybytes())


def _unpack(buf: pa.Buffer) -> pa.Table:
    return pa.ipc.open_stream(buf).read_all()

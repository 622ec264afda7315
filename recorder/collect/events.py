"""What the record loop's event sources (the kernel log, the process events) share: what a
snapshot took from a source stays with the source until that snapshot is written, and a
snapshot dropped on a full disk gives it back to the next one, first."""

from __future__ import annotations

import os
import select
import threading


class Taken:
    """What a snapshot took from an event source (``items``, with the counts of events
    ``dropped`` and ``lost`` that go with them) until the snapshot is written."""

    def __init__(self):
        self.items: list = []
        self.dropped = 0
        self.lost = 0

    def take(self, items: list, dropped: int, lost: int) -> tuple[list, int, int]:
        """What the snapshot being written gets: what a dropped snapshot left, then ITEMS."""
        self.items = self.items + items
        self.dropped += dropped
        self.lost += lost
        return self.items, self.dropped, self.lost

    def written(self) -> None:
        self.items, self.dropped, self.lost = [], 0, 0

    def unwritten(self, capacity: int, size=len, newest=lambda items, n: items[-n:]) -> None:
        """The snapshot was not written: its items go to the next one, the newest CAPACITY of
        them (``size`` counts the events in the items, ``newest`` keeps the last n); the rest
        are counted as dropped."""
        n = size(self.items)
        if n > capacity:
            self.dropped += n - capacity
            self.items = newest(self.items, capacity)


class Follower:
    """A reader thread of an event source: until :meth:`stop_thread`, it waits in select() on
    the source's descriptors (:meth:`follow_fds`) and on ``_stop_r`` (readable when the thread is
    to end), and calls the source's ``poll()`` whenever one is readable. A read that fails ends
    it, with ``off`` saying why (FAILED, then the error)."""

    FAILED = "reading the source failed"
    _thread: "threading.Thread | None" = None
    _stop_r = _stop_w = None

    def follow_fds(self) -> list[int]:
        raise NotImplementedError

    def _follow(self) -> None:
        fds = [*self.follow_fds(), self._stop_r]
        while True:
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return
            if self._stop_r in ready:
                return
            try:
                self.poll()
            except OSError as e:  # said on the next snapshot
                self.off = f"{self.FAILED}: {e.strerror or e}"
                return

    def start_thread(self, name: str) -> None:
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._follow, name=name, daemon=True)
        self._thread.start()

    def stop_thread(self) -> None:
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(5)
            self._thread = None
            os.close(self._stop_r)
            os.close(self._stop_w)

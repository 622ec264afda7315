"""The recorder keeps a process's mem rows only for a descriptor snapshot close enough to use them.

Kept across a long quiet time they pinned ~10 MB of tuples at a 1000-process host's peak for
nothing (they are re-read once older than MapsCache.refresh)."""

from __future__ import annotations

import os

import pyarrow.compute as pc
import pytest

from recorder.collect import descriptors as D
from recorder.collect.collector import Collector


def _mem_rows(snap) -> list[tuple]:
    t = snap.tables["open_files"]
    t = t.filter(pc.and_(pc.equal(t.column("pid"), os.getpid()), pc.equal(t.column("fd"), "mem")))
    return sorted(zip(t.column("name").to_pylist(), t.column("inode").to_pylist()))


@pytest.mark.live
def test_mem_rows_cached_only_for_a_near_descriptor_snapshot(monkeypatch):
    c = Collector(tables=("processes", "open_files"))
    during = []  # the cache's size after the process pass, while the snapshot is still built
    tables = D.read_tables
    monkeypatch.setattr(D, "read_tables", lambda *a, **k: (during.append(len(c.maps.rows)), tables(*a, **k))[1])
    for far in (None, 1800.0):  # one-shot snapshot; the recorder's default files interval
        c.next_files_in = far
        snap = c.snapshot()
        assert during.pop() == 0 and c.maps.rows == {}
        first = _mem_rows(snap)
        assert first, "this test process maps shared libraries"
    c.next_files_in = 30.0  # the incident preset, or a short --files-interval
    snap = c.snapshot()
    assert during.pop() > 0 and any(k[0] == os.getpid() for k in c.maps.rows)
    c.next_files_in = 1800.0
    again = c.snapshot()  # served from the cache, then the cache is let go
    assert c.maps.rows == {}
    assert _mem_rows(snap) == _mem_rows(again) == first

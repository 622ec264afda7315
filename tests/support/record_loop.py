"""Helpers for tests that drive the record loop with event sources."""

from recorder.store.folder import StoreFull


class KeepOpen:
    """An event source handed to one record() call that must not stop it (the test goes on
    feeding it, or hands it to a later call)."""

    def __init__(self, source):
        self.source = source

    def __getattr__(self, name):
        return getattr(self.source, name)

    def stop(self):
        pass


def fail_writes(store, monkeypatch, first: int, each=None) -> list:
    """Make STORE's first FIRST writes fail as a full disk does; EACH(n) runs before the n-th
    write (1-based). Returns the list of snapshots offered to write."""
    calls = []
    real = store.write

    def write(snap):
        calls.append(snap)
        if each is not None:
            each(len(calls))
        if len(calls) <= first:
            raise StoreFull("full")
        return real(snap)
    monkeypatch.setattr(store, "write", write)
    return calls

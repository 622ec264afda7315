"""The leak rule's steps when a measure is missing from some samples: descriptors by kind are
only counted in the snapshots that read open_files (the recorder reads them less often than
processes), and a step is from the previous sample that has the measure."""

import pytest

from analyze.commands import report as R
from recorder.collect.tables import to_table

from tests.support.synthetic import N, proc, snapshot, system_row, write

EVERY = 3  # open_files read in every third snapshot


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    snaps = []
    for i in range(N):
        fds = 20 + 4 * i
        p = proc(100, i, "leaky", num_fds=fds)
        tables = {"processes": [p], "system": [system_row(i)]}
        read = i % EVERY == 0
        if read:
            tables["open_files"] = [{"boot_id": "b1", "pid": 100, "start_time": p["start_time"], "fd": str(3 + j),
                                     "fd_num": 3 + j, "type": "FIFO", "name": "pipe:[1]", "deleted": False}
                                    for j in range(fds - 3)]
        s = snapshot(i, tables)
        if not read:  # not read in this snapshot: unknown, not zero
            row = s.tables["snapshots"].to_pylist()[0]
            row["open_files_seen"] = None
            s.tables["snapshots"] = to_table("snapshots", [{k: v for k, v in row.items()
                                                            if k not in ("snapshot_id", "ts")}],
                                             {"snapshot_id": row["snapshot_id"], "ts": row["ts"]})
        snaps.append(s)
    rec = write(tmp_path_factory.mktemp("sparse") / "rec", snaps)
    return R.run(rec)


def test_a_kind_read_in_some_snapshots_steps_from_its_previous_reading(sparse):
    (f,) = [f for f in sparse["findings"] if f.kind == "leak.fds"]
    pipes = f.evidence["by_kind"]["pipe"]
    read = len(range(0, N, EVERY))
    assert pipes["samples"] == read
    # one step between consecutive readings, each the growth over EVERY snapshots
    assert pipes["steps"] == read - 1 and pipes["decreases"] == 0
    assert pipes["largest_step"] == 4 * EVERY and pipes["growth"] == 4 * EVERY * (read - 1)
    # the total is read in every snapshot
    assert f.evidence["samples"] == N and f.evidence["steps"] == N - 1 and f.evidence["largest_step"] == 4

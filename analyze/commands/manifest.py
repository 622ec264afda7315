"""The live files of a recording, for engines other than procsnap (Spark, Trino, DuckDB alone).

During compaction's grace period a compacted file and the small files it merged lie side by
side in a partition; a reader that globs the folders reads those rows twice. procsnap's reader
chooses files by name (:mod:`analyze.data.files`); a manifest writes that choice down, per host,
so that any engine reads exactly the files procsnap would: checked, committed (a small file of
a snapshot with no ``snapshots`` row, a compaction not yet committed, and damaged files are left
out), none covered by another. docs/fleet.md shows how Spark, Trino and DuckDB use it.

A manifest is a snapshot of the folder at the time it was written: one read later never counts
a row twice (files that appeared since are not in it), but it lacks the snapshots written since,
and once the grace period has passed, the rows of the small files compaction deleted. Write it
again at least every half grace period while the recorder runs.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from recorder.store.layout import DATA_NAME, LIVE_COLUMNS, LIVE_DIR, live_name

from analyze.data.db import Recording
from analyze.data.files import host_of


def live_files(rec: Recording) -> dict[tuple[Path, str], list[tuple[str, str]]]:
    """Per (recording root, ``host=`` folder): the (table, path relative to the root) of every
    file the recording's views read, sorted, without the small files of uncommitted snapshots
    (procsnap's views filter those rows out; a plain engine cannot)."""
    _, rows = rec.query("SELECT host, snapshot_id FROM snapshots")
    committed = set(rows)
    out: dict[tuple[Path, str], list[tuple[str, str]]] = {}
    for table, files in rec.files.items():
        for f in files:
            p = Path(f)
            hostdir = p.parent.parent.name
            if rec.hosts and host_of(hostdir) not in rec.hosts:
                continue
            m = DATA_NAME.match(p.name)
            if table != "snapshots" and m and (host_of(hostdir), int(m.group(1))) not in committed:
                continue
            root = p.parents[3]
            out.setdefault((root, hostdir), []).append((table, p.relative_to(root).as_posix()))
    for src in rec.sources:  # a host whose files are all gone has an empty manifest
        live = Path(src) / LIVE_DIR
        if live.is_dir():
            for n in os.listdir(live):
                if n.startswith("host=") and n.endswith(".csv") and (
                        not rec.hosts or host_of(n[:-len(".csv")]) in rec.hosts):
                    out.setdefault((Path(src), n[:-len(".csv")]), [])
    return {k: sorted(v) for k, v in sorted(out.items())}


def text(rows: list[tuple[str, str]]) -> str:
    """A manifest's CSV: a header line, then one line per file."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LIVE_COLUMNS)
    w.writerows(rows)
    return buf.getvalue()


def write(root: Path, hostdir: str, rows: list[tuple[str, str]]) -> Path:
    """Write the manifest of one host into ROOT's ``_procsnap/live/``, whole or not at all (a
    temporary file renamed over the last one: a reader sees the old manifest or the new)."""
    d = Path(root) / LIVE_DIR
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = d / live_name(hostdir)
    tmp = d / f".{final.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text(rows))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final

"""How a recording names its folders and files, without Arrow: readers (the analyzer, which
reads through DuckDB) list and choose files with these, and importing pyarrow for them cost every
command 60-90 ms. recorder.store.folder re-exports them."""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

FORMAT = "procsnap-recording"
FORMAT_VERSION = 1
MARKER = "procsnap.json"
DATA_NAME = re.compile(r"^(\d+)\.parquet$")
COMPACT_NAME = re.compile(r"^c(\d+)-(\d+)\.parquet$")
# Where a recording keeps what engines other than procsnap need, under a name every
# Hadoop-family reader (Spark, Trino, Hive) skips: per host, the live files of every table
# (``procsnap manifest``): ``_procsnap/live/host=<h>.csv``, columns LIVE_COLUMNS, each path
# relative to the recording's root.
META_DIR = "_procsnap"
LIVE_DIR = META_DIR + "/live"
LIVE_COLUMNS = ("table_name", "path")


def marker_problem(data: bytes) -> tuple[str, bool] | None:
    """Why the bytes of a procsnap.json are not a marker this procsnap writes: (reason, newer),
    newer when a later procsnap wrote it; None when it is one. The analyzer reads such a recording
    as the format it knows and says so; the recorder refuses to add to it."""
    import json
    try:
        doc = json.loads(data)
    except ValueError as e:
        return f"not a procsnap marker ({type(e).__name__})", False
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return f"not a procsnap marker (format is not {FORMAT!r})", False
    v = doc.get("version")
    if not isinstance(v, int) or isinstance(v, bool):
        return f"format version {v!r} is not a number", False
    if v > FORMAT_VERSION:
        return f"written by a newer procsnap (format version {v}; this one knows {FORMAT_VERSION})", True
    return None


def file_range(name: str) -> tuple[int, int] | None:
    """The snapshot ids a data file holds: (id, id) for ``<id>.parquet``, (first, last) for
    ``c<first>-<last>.parquet``; None for any other name (left alone by the recorder)."""
    m = DATA_NAME.match(name)
    if m:
        return int(m.group(1)), int(m.group(1))
    m = COMPACT_NAME.match(name)
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


def select_visible(names: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Split one partition's Parquet file names into those to read and those covered.

    A file is covered when another file's snapshot-id range contains its own (and is
    larger): a small file by the compacted file that merged it, a compacted file by a
    larger compaction. Returns (visible names, [(covered name, covering name)]). Names
    starting with '.' or '_' are never visible; names the recorder does not write are
    visible and never covered.
    """
    ranged = []
    visible = []
    for n in names:
        if n.startswith((".", "_")) or not n.endswith(".parquet"):
            continue
        r = file_range(n)
        if r is None:
            visible.append(n)
        else:
            ranged.append((r, n))
    # Widest first: a file is covered if an already kept, wider range contains it.
    ranged.sort(key=lambda x: (x[0][0], -x[0][1]))
    kept: list[tuple[tuple[int, int], str]] = []
    covered = []
    for (a, b), n in ranged:
        cover = next((kn for (ka, kb), kn in reversed(kept) if ka <= a and b <= kb), None)
        if cover is None:
            kept.append(((a, b), n))
        else:
            covered.append((n, cover))
    visible.extend(n for _, n in kept)
    return sorted(visible), covered


def partitions(root: Path, table: str):
    """(host folder name, date folder name, path) of each partition folder of a table."""
    tdir = root / table
    if not tdir.is_dir():
        return
    for hostdir in sorted(tdir.iterdir()):
        if not hostdir.is_dir() or not hostdir.name.startswith("host="):
            continue
        for datedir in sorted(hostdir.iterdir()):
            if datedir.is_dir() and datedir.name.startswith("date="):
                yield hostdir.name, datedir.name, datedir


def list_names(d: Path) -> list[str]:
    """File names of a folder; empty if it vanished meanwhile (retention removes empty folders)."""
    try:
        return os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return []


_DATE_FOLDER = re.compile(r"^date=(\d{4})-(\d{2})-(\d{2})$")


def partition_problem(host_folder: str, date_folder: str) -> str | None:
    """Why a partition folder is not one the recorder writes (None when it is): ``host=`` and
    the host name as :func:`partition_value` escapes it, ``date=`` and a real ISO date. A copy of
    a partition under another name would otherwise be read as more snapshots."""
    import datetime as dt
    value = host_folder[len("host="):] if host_folder.startswith("host=") else None
    if not value or partition_value(urllib.parse.unquote(value)) != value:
        return f"{host_folder}: not a host folder procsnap writes"
    m = _DATE_FOLDER.match(date_folder)
    try:
        if m is None:
            raise ValueError
        dt.date(*map(int, m.groups()))
    except ValueError:
        return f"{date_folder}: not a date folder procsnap writes"
    return None


def id_date(snapshot_id: int) -> str | None:
    """The ``date=`` folder a snapshot id belongs in: ids are the snapshot's UTC time in epoch
    microseconds, and each snapshot goes into the folder of its UTC date."""
    import datetime as dt
    try:
        return dt.datetime.fromtimestamp(snapshot_id / 1_000_000, dt.timezone.utc).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def partition_value(v: str) -> str:
    """Hive partition values are URL-escaped, like Spark and Trino write them."""
    return urllib.parse.quote(v, safe="")


def live_name(host_folder: str) -> str:
    """The manifest file of the host whose ``host=`` folder is HOST_FOLDER (already escaped)."""
    return host_folder + ".csv"


def is_recording(path: Path) -> bool:
    return (path / MARKER).is_file() or (path / "snapshots").is_dir()

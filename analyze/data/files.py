"""Which files of a recording a reader reads: those whose names and folders are ones the
recorder writes (:func:`candidates`), checked once per file and process (:class:`Checker`),
and, among them, those no committed compacted file covers (:func:`choose`). What is left out
is a :class:`~analyze.data.damage.Damage` with the reason.

Files are listed here, in Python, and handed to ``read_parquet`` as an explicit list: a
recording being compacted holds small files and the compacted file that covers them for a
while, and only the listing knows to read one of them.
"""

from __future__ import annotations

import bisect
import os
import urllib.parse
from pathlib import Path
from typing import NamedTuple

from recorder.schema import TABLES
from recorder.store.layout import FORMAT_VERSION, MARKER, file_range, id_date, is_recording, list_names
from recorder.store.layout import marker_problem as layout_marker_problem
from recorder.store.layout import partition_problem

from analyze.data.damage import EXCLUDED, Damage, culprit, footer_problem, quick_check, verify
from analyze.data.engine import duckdb
from analyze.errors import UsageError
from analyze.data.sqltext import literal, sql_str


class Candidate(NamedTuple):
    """A data file whose name and folders are ones the recorder writes."""

    path: str
    first: int
    last: int
    host: str  # the host= folder's name
    date: str  # the date= folder's name

    @property
    def compacted(self) -> bool:
        return os.path.basename(self.path).startswith("c")



def host_of(folder: str) -> str:
    """The host a ``host=`` folder's name stands for."""
    return urllib.parse.unquote(folder[len("host="):])



def damage_of(path: str, why: str, table: str | None = None) -> Damage:
    """A Damage for PATH; for a name the recorder writes, with the table, host and snapshot ids
    it stands for (what it may have taken with it: see :meth:`Recording._losses`)."""
    r = file_range(os.path.basename(path))
    host = os.path.basename(os.path.dirname(os.path.dirname(path)))
    if r is None or table is None or not host.startswith("host="):
        return Damage(path, why)
    return Damage(path, why, table, host_of(host), r[0], r[1])



def candidates(source: Path, table: str, damaged: list | None = None,
               hosts: list[str] | None = None) -> list[Candidate]:
    """The files of one table of a recording that its naming says are its own: ``<id>.parquet``
    and ``c<first>-<last>.parquet`` in ``host=<name>/date=<YYYY-MM-DD>`` folders the recorder
    writes, whose ids fall on that date. Everything else is added to DAMAGED (when a list) and
    never read: a foreign file, a folder of another name (``date=garbage``, a copy of a
    partition), a file whose ids are not of its folder's date. With HOSTS, the folders of other
    hosts are not looked into: a fleet's other hosts cost a command about one host nothing."""
    from analyze.data.remote import pending_names  # a lazy mirror's objects not fetched yet

    def names(d: Path) -> list[str]:
        return sorted(set(list_names(d)) | pending_names(d))

    def is_dir(d: Path) -> bool:
        return d.is_dir() or bool(pending_names(d))

    out: list[Candidate] = []
    tdir = Path(source) / table
    for hostdir in names(tdir):
        hpath = tdir / hostdir
        if hostdir.startswith((".", "_")) or not is_dir(hpath):
            continue
        if hosts and hostdir.startswith("host=") and host_of(hostdir) not in hosts:
            continue
        datedirs = names(hpath) if hostdir.startswith("host=") else [None]
        for datedir in datedirs:
            d = hpath / datedir if datedir is not None else hpath
            if datedir is not None and (datedir.startswith((".", "_")) or not is_dir(d)):
                continue
            why = partition_problem(hostdir, datedir or "")
            if why is not None:
                if damaged is not None:
                    damaged.append(Damage(str(d), f"{why} (its files are ignored)"))
                continue
            for n in names(d):
                if n.startswith((".", "_")):
                    continue
                path = str(d / n)
                r = file_range(n)
                if r is None:
                    if damaged is not None:
                        damaged.append(Damage(path, _foreign(path, n, table)))
                    continue
                day = datedir[len("date="):]
                if id_date(r[0]) != day or id_date(r[1]) != day or r[0] > r[1]:
                    if damaged is not None:
                        damaged.append(Damage(path, f"snapshot ids of another date than its folder's ({day}): ignored"))
                    continue
                out.append(Candidate(path, r[0], r[1], hostdir, datedir))
    return out



def _foreign(path: str, name: str, table: str) -> str:
    """Why a file of a name the recorder never writes is not read (the most telling reason)."""
    if os.path.isdir(path):
        return "a folder where procsnap writes files (ignored)"
    if not name.endswith(".parquet"):
        return "not a file procsnap writes (ignored)"
    why = quick_check(path) or footer_problem(path, {c.name: c.sql_type for c in TABLES[table].columns})
    return why or "not a name procsnap writes (ignored)"



def recording_files(source: Path, table: str, damaged: list | None = None) -> list[str]:
    """The Parquet files of one table of a recording that a reader must read, by their names
    alone: in every partition, those no compacted file covers. Without a check of their
    contents: :meth:`Recording.open` checks them (see :class:`Checker`) before choosing."""
    return choose(candidates(source, table, damaged), None, table, damaged)



class Checker:
    """Whether each file holds what its name says, checked once per file and process.

    Cheap checks for every file a command reads: its size and Parquet's magic bytes, then,
    from its footer (one DuckDB query for all files, whose footers the scans then find
    cached), that it has a ``snapshot_id`` column whose statistics lie inside the ids its name
    says. A compacted file covers small files only once a compacted ``snapshots`` file holding
    its range (the compaction's commit) is checked and holds their ids (:meth:`committed_ids`)."""

    def __init__(self, con, pages: bool = False):
        self.con = con
        self.pages = pages
        self.why: dict[str, str | None] = {}
        self._ids: dict[str, set[int]] = {}
        # (host folder, date folder) -> (first, last, path) of each checked compacted snapshots file
        self.commits: dict[tuple[str, str], list[tuple[int, int, str]]] = {}

    def commit_of(self, c: Candidate) -> str | None:
        """The checked ``snapshots`` compacted file whose range holds C's (a compaction's commit:
        the recorder renames it after the table's files), or None."""
        return next((p for a, b, p in self.commits.get((c.host, c.date), ()) if a <= c.first and c.last <= b), None)

    def check(self, cands: list[Candidate]) -> None:
        todo = [c for c in cands if c.path not in self.why]
        rest = []
        for c in todo:
            why = EXCLUDED.get(c.path) or quick_check(c.path)
            if why is None:
                rest.append(c)
            else:
                self.why[c.path] = why
        stats = self._stats([c.path for c in rest])
        for c in rest:
            if c.path in self.why:
                continue
            st = stats.get(c.path)
            if st is None:
                st = self._read_range(c.path)
            if st is None:
                self.why[c.path] = "not a procsnap file (no snapshot_id column)"
            elif st == (None, None):
                self.why[c.path] = None  # no rows: holds nothing it should not
            elif st[0] is None or st[0] < c.first or st[1] > c.last:
                self.why[c.path] = (f"holds snapshot ids {st[0]}..{st[1]}, not the {c.first}..{c.last} its name says "
                                    "(not the recording's file: ignored)")
            else:
                self.why[c.path] = None
        if self.pages and rest:
            table = Path(rest[0].path).parent.parent.parent.name
            declared = TABLES[table].names if table in TABLES else None
            self.why.update(verify([c.path for c in rest if self.why.get(c.path) is None], declared))

    def _stats(self, paths: list[str]) -> dict[str, tuple]:
        """path -> (min, max) snapshot_id from the footers' statistics, for files that have them."""
        out: dict[str, tuple] = {}
        while paths:
            listed = ", ".join(sql_str(literal(p)) for p in paths)
            try:
                rows = self.con.execute(
                    "SELECT file_name, min(TRY_CAST(stats_min_value AS BIGINT)), max(TRY_CAST(stats_max_value AS BIGINT)), "
                    "bool_and(stats_min_value IS NOT NULL AND stats_max_value IS NOT NULL) "
                    f"FROM parquet_metadata([{listed}]) WHERE path_in_schema = 'snapshot_id' GROUP BY file_name").fetchall()
            except duckdb.Error as e:
                bad = culprit(str(e), paths)
                if bad is None:
                    for p in paths:  # one at a time, to find which
                        out.update(self._stats([p]) if len(paths) > 1 else {})
                    if len(paths) == 1:
                        self.why[paths[0]] = f"unreadable ({str(e).strip().splitlines()[0][:160]})"
                    return out
                self.why[bad] = f"unreadable ({str(e).strip().splitlines()[0][:160]})"
                paths = [p for p in paths if p != bad]
                continue
            for f, lo, hi, whole in rows:
                if whole:
                    out[f] = (lo, hi)
            return out
        return out

    def _read_range(self, path: str) -> tuple | None:
        """(min, max) snapshot_id read from the rows (no statistics, or no row group); None without the column."""
        try:
            names = {r[0] for r in self.con.execute(
                f"SELECT name FROM parquet_schema({sql_str(literal(path))})").fetchall()}
            if "snapshot_id" not in names:
                return None
            return tuple(self.con.execute(
                f"SELECT min(snapshot_id), max(snapshot_id) FROM read_parquet({sql_str(literal(path))})").fetchone())
        except duckdb.Error as e:
            self.why[path] = f"unreadable ({str(e).strip().splitlines()[0][:160]})"
            return None

    def committed_ids(self, path: str) -> set[int]:
        """The snapshot ids a ``snapshots`` file holds (read only for a compaction whose small
        files are still there)."""
        if path not in self._ids:
            try:
                (ids,) = self.con.execute(
                    f"SELECT list(DISTINCT snapshot_id) FROM read_parquet({sql_str(literal(path))})").fetchone()
            except duckdb.Error as e:
                self.why[path] = f"unreadable ({str(e).strip().splitlines()[0][:160]})"
                ids = []
            self._ids[path] = set(ids or ())
        return self._ids[path]



def choose(cands: list[Candidate], checker: Checker | None, table: str, damaged: list | None,
           ignored: list | None = None) -> list[str]:
    """The files to read among CANDS: those that check (with a CHECKER) and that no checked,
    committed compacted file covers. A damaged compacted file covers nothing, so the small files
    it replaced, when still there, are read instead. A compacted data file is committed by a
    checked compacted ``snapshots`` file whose range holds its own (compaction renames that
    last); without one (a compaction in progress, or a stray file) it is not read and goes to
    IGNORED. Files of a lazy mirror not fetched yet are fetched now (analyze.data.remote)."""
    from analyze.data.remote import fetch_pending
    fetch_pending(c.path for c in cands)
    if checker is not None:
        checker.check(cands)
    good = []
    for c in cands:
        why = checker.why.get(c.path) if checker is not None else None
        if why is not None:
            if damaged is not None:
                damaged.append(damage_of(c.path, why, table))
        else:
            good.append(c)
    if checker is not None and table == "snapshots":
        for c in good:
            if c.compacted:
                checker.commits.setdefault((c.host, c.date), []).append((c.first, c.last, c.path))
    by_dir: dict[str, list[Candidate]] = {}
    for c in good:
        by_dir.setdefault(os.path.dirname(c.path), []).append(c)
    files = []
    for d, group in by_dir.items():
        group.sort(key=lambda c: (c.first, -c.last))
        kept: list[Candidate] = []
        for c in group:
            if c.compacted and checker is not None and table != "snapshots":
                if checker.commit_of(c) is None:
                    if ignored is not None:
                        ignored.append(Damage(c.path, "a compaction no snapshots file commits (not read; "
                                                      "its snapshots are read from their own files)"))
                    continue
            cover = next((k for k in reversed(kept) if k.first <= c.first and c.last <= k.last), None)
            if cover is not None and checker is not None:
                ids = checker.committed_ids(checker.commit_of(cover))
                if not (c.first in ids and c.last in ids):
                    cover = None  # the compacted file does not hold these snapshots: read them
            if cover is None:
                kept.append(c)
        files.extend(k.path for k in kept)
    return sorted(files)



def holds(c: Candidate, ids: list[int]) -> bool:
    i = bisect.bisect_left(ids, c.first)
    return i < len(ids) and ids[i] <= c.last



def holding(files: list[str], ids: list[int]) -> list[str]:
    """The files that can hold rows of the snapshots IDS (sorted): those whose names' snapshot-id
    ranges hold one of them, and every file of a name the recorder never writes (its ids are
    unknown)."""
    out = []
    for f in files:
        r = file_range(os.path.basename(f))
        if r is None:
            out.append(f)
            continue
        i = bisect.bisect_left(ids, r[0])
        if i < len(ids) and ids[i] <= r[1]:
            out.append(f)
    return out



def recording_folders(paths: list[str], hosts: list[str] | None = None) -> list[Path]:
    """The recordings named on a command line. A folder that is not a recording itself but holds
    recordings (a fleet: one folder per host, side by side) stands for each of them. An
    ``s3://bucket/prefix`` URL stands for its local mirror (:mod:`analyze.data.remote`), of
    HOSTS only when given."""
    sources: list[Path] = []
    for p in paths:
        if str(p).startswith("s3://"):
            from analyze.data.remote import mirror
            sources.append(mirror(str(p), hosts, lazy=True))  # each table's objects fetched as read
            continue
        path = Path(p)
        if not path.exists():
            raise UsageError(f"{p}: no such recording folder")
        if not path.is_dir():
            raise UsageError(f"{p}: not a folder (a recording is a folder written by procsnap record)")
        if is_recording(path):
            sources.append(path)
            continue
        inner = sorted(c for c in path.iterdir() if c.is_dir() and not c.name.startswith(".") and is_recording(c))
        if not inner:
            raise UsageError(f"{p}: not a procsnap recording (no procsnap.json or snapshots/ inside), "
                             "nor a folder of recordings")
        sources.extend(inner)
    return sources



def marker_problem(src: Path) -> str | None:
    """Why a recording's procsnap.json is not one procsnap writes (None when it is, or absent)."""
    try:
        data = (src / MARKER).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"not a procsnap marker ({e.strerror}): read as format version {FORMAT_VERSION}"
    problem = layout_marker_problem(data)
    if problem is None:
        return None
    why, newer = problem
    return f"{why}: what it added is not read" if newer else f"{why}: read as format version {FORMAT_VERSION}"

"""Opening recordings (or a live snapshot) as a DuckDB connection with one view
per table, plus the derived views of :mod:`analyze.views`.

The views are generated from the recorder's schema declaration: each selects
exactly the declared columns, and a column that no file has yet (a recording
written by an older procsnap) reads as a typed NULL. Rows of snapshots that
were never committed (see the atomicity rule in ``recorder.store``) are
invisible.

Files are listed here, in Python (:func:`recording_files`), and handed to
``read_parquet`` as an explicit list: a recording being compacted holds small
files and the compacted file that covers them for a while, and only the
listing knows to read one of them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    # The engine itself. The `duckdb` package around it costs 5 times as long to import (its
    # version lookup goes through importlib.metadata, its relation API is Python) and adds nothing
    # used here; a one-shot `procsnap lsof --rec` pays that on every run.
    import _duckdb as duckdb
except ImportError:  # pragma: no cover - a duckdb build without the separate extension module
    import duckdb

from recorder.schema import TABLES, Table
from recorder.layout import file_range, is_recording, list_names, partitions, select_visible

from .damage import EXCLUDED, OPENED, SAID, Damage, DamageFound, culprit, find_damage, unreadable_files, footer_problem, incompatible, quick_check
from .errors import ProcsnapError, UsageError, live_only
from .timespec import parse_time
from .views import DERIVED


def recording_files(source: Path, table: str, damaged: list | None = None) -> list[str]:
    """The Parquet files of one table of a recording that a reader must read: in every
    partition, those no compacted file covers. The one place that decides which files
    a reader opens.

    With DAMAGED (a list), files that cannot be read are left out and added to it as
    :class:`analyze.damage.Damage`: empty, truncated or not Parquet at all (size and magic
    bytes), a Parquet file of a name the recorder never writes whose footer is not one of
    this table's, a foreign non-Parquet file, and files a query already tripped over.
    """
    declared = None
    files = []
    for _, _, d in partitions(Path(source), table):
        names = list_names(d)
        visible, _ = select_visible(names)
        if damaged is not None:
            for n in sorted(names):
                if not n.startswith((".", "_")) and not n.endswith(".parquet") and not (d / n).is_dir():
                    damaged.append(Damage(str(d / n), "not a file procsnap writes (ignored)"))
        for n in visible:
            path = str(d / n)
            if damaged is not None:
                why = EXCLUDED.get(path) or quick_check(path)
                if why is None and file_range(n) is None:  # a name the recorder never writes
                    if declared is None:
                        declared = {c.name: c.sql_type for c in TABLES[table].columns}
                    why = footer_problem(path, declared)
                if why is not None:
                    damaged.append(Damage(path, why))
                    continue
            files.append(path)
    return files


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


# The table a command about one moment needs, when a recording takes it on fewer snapshots.
NEEDS = {"lsof": "open_files"}
# Commands about one moment that read only the moment's snapshots (Recording.open_at), and the
# tables they read whole: ps's rates need each process's and thread's previous rows.
AT_MOMENT = {"lsof": (), "ps": ("processes", "threads")}


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@dataclass
class Moment:
    """A snapshot chosen for a time: per host, the latest at or before it."""

    host: str
    snapshot_id: int
    ts: dt.datetime


class Recording:
    """A DuckDB connection over one or more recordings, or over a live snapshot."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sources: list[Path], live: bool):
        self.con = con
        self.sources = sources
        self.live = live
        self.damaged: list[Damage] = []  # files left out, with why (procsnap info lists them)
        self.files: dict[str, list[str]] = {}  # per table, the files its view reads

    # ------------------------------------------------------------------
    @staticmethod
    def _connect(folders: list[Path] = ()) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB that can read these folders and nothing else, and can be talked out of none of it.

        External access is switched off except for reading inside the recordings
        (``allowed_directories``: also the views' own scans go through it), no
        extension is installed or loaded behind our back, and the configuration
        is locked so that no SQL can switch any of it back on. DuckDB still
        writes inside allowed directories (COPY, EXPORT, ATTACH): user SQL is
        held to read-only statements by :func:`check_read_only`.
        """
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        # Each view is bound when it is created and each query binds it again: without the cache
        # every bind reads and parses the footer of every file of the table once more.
        con.execute("SET parquet_metadata_cache = true")
        allowed = sorted({d for f in folders for d in (str(f), os.path.realpath(f), os.path.abspath(f))})
        if allowed:
            con.execute("SET allowed_directories = " + "[" + ", ".join(_sql_str(d.rstrip("/") + "/") for d in allowed) + "]")
        for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
            con.execute(f"SET {setting} = false")
        con.execute("SET lock_configuration = true")
        return con

    @classmethod
    def open(cls, paths: list[str], hosts: list[str] | None = None, err=None, derived: bool = True) -> "Recording":
        """The recordings as views. A file that cannot be read is named on ERR (stderr unless
        None is wanted: pass False), left out, and the rest answers; ``damaged`` keeps them.
        DERIVED=False leaves out the rate views (:mod:`analyze.views`), for a caller that never
        queries them: each costs a bind over its table."""
        rec, listed, damage = cls._listed(paths)
        for t in TABLES.values():
            rec._view(t, listed[t.name], hosts, damage[t.name])
        if derived:
            rec._derived()
        rec._say(damage, err)
        return rec

    @classmethod
    def open_at(cls, paths: list[str], hosts: list[str] | None, at: str | None, need: str | None = None,
                whole: tuple[str, ...] = (), err=None) -> tuple["Recording", list["Moment"]]:
        """The recordings as views for a command about one moment: the moment (see :meth:`moment`,
        AT and NEED) resolved in the whole ``snapshots`` table, then of every other table, but
        those in WHOLE, only the files whose names say they can hold rows of the moment's
        snapshots (``<id>.parquet``, ``c<first>-<last>.parquet``: see ``recorder.store``; a file of
        another name is read). The engine opens no other file: on a day-long recording most of
        the time of a one-moment command went into binding views over files it never reads.
        Every file is still checked as :meth:`open` checks it, and a damaged one named on ERR;
        the rate views are left out. Returns (recording, moments)."""
        rec, listed, damage = cls._listed(paths)
        rec._view(TABLES["snapshots"], listed["snapshots"], hosts, damage["snapshots"])
        try:
            moments = rec.moment(at, need)
        except ProcsnapError:
            rec._say(damage, err)
            raise
        ids = sorted({m.snapshot_id for m in moments})
        for t in TABLES.values():
            if t.name != "snapshots":
                files = listed[t.name] if t.name in whole else holding(listed[t.name], ids)
                rec._view(t, files, hosts, damage[t.name])
        rec._say(damage, err)
        return rec, moments

    @classmethod
    def _listed(cls, paths: list[str]) -> tuple["Recording", dict[str, list[str]], dict[str, list[Damage]]]:
        """A Recording with no views yet, and per table its files and the damaged ones left out."""
        sources = recording_folders(paths)
        rec = cls(cls._connect(sources), sources, live=False)
        listed, damage = {}, {}
        for t in TABLES.values():
            damage[t.name] = []
            listed[t.name] = [f for src in sources for f in recording_files(src, t.name, damage[t.name])]
        return rec, listed, damage

    def _view(self, t: Table, files: list[str], hosts: list[str] | None, damaged: list[Damage]) -> None:
        self.con.execute(self._table_view(t, files, hosts, damaged))

    def _say(self, damage: dict[str, list[Damage]], err) -> None:
        """Keep the damaged files table by table, as they were found, and name them on ERR."""
        self.damaged = [d for t in TABLES for d in damage.get(t, ())]
        if self.damaged and err is not False:
            say_damage(self.damaged, err or sys.stderr)

    def _table_view(self, t: Table, files: list[str], hosts: list[str] | None, damaged: list[Damage]) -> str:
        """The view of one table over FILES, leaving out (into DAMAGED) each file whose
        footer the engine cannot read or whose columns cannot be read as declared."""
        files = list(files)
        while True:
            OPENED.update(files)
            try:
                sql = _disk_view(self.con, t, files, hosts)
                self.files[t.name] = files
                return sql
            except _Incompatible as e:
                declared = {c.name: c.sql_type for c in t.columns}
                bad = [(f, footer_problem(f, declared)) for f in files]
                bad = [(f, why) for f, why in bad if why] or [(f, str(e)) for f in files]
            except duckdb.Error as e:
                msg = str(e).strip().splitlines()[0][:160]
                c = culprit(str(e), files)
                bad = [(c, f"unreadable ({msg})")] if c else unreadable_files(files)
                if not bad:
                    raise ProcsnapError(f"cannot read table {t.name}: {msg}") from None
            for f, why in bad:
                damaged.append(Damage(f, why))
                files.remove(f)

    @classmethod
    def from_snapshot(cls, snap) -> "Recording":
        """A recording of one in-memory snapshot (the live mode)."""
        return cls.from_snapshots([snap])

    @classmethod
    def from_snapshots(cls, snaps) -> "Recording":
        """A recording of in-memory snapshots (live mode over an interval: rates need two)."""
        import duckdb as package  # noqa: F401 - the package sets up the scans of Arrow tables that register needs
        con = cls._connect()
        for t in TABLES.values():
            parts = []
            for i, snap in enumerate(snaps):
                arrow = snap.tables.get(t.name)
                if arrow is None:
                    continue
                con.register(f"_live_{t.name}_{i}", arrow)
                cols = []
                for c in t.columns:
                    if c.name == "host":
                        cols.append(f"{_sql_str(snap.host)} AS host")
                    elif c.name == "date":
                        cols.append(f"DATE {_sql_str(snap.date.isoformat())} AS date")
                    else:
                        cols.append(f'"{c.name}"')
                parts.append(f"SELECT {', '.join(cols)} FROM _live_{t.name}_{i}")
            if parts:
                con.execute(f"CREATE VIEW {t.name} AS {' UNION ALL '.join(parts)}")
            else:
                con.execute(_empty_view(t))
        rec = cls(con, [], live=True)
        rec._derived()
        return rec

    @classmethod
    def live_snapshot(cls, tables: tuple[str, ...] | None = None) -> "Recording":
        from recorder.collect import COLLECTED, Collector
        return cls.from_snapshot(Collector(tables=tables or COLLECTED).snapshot())

    def _derived(self) -> None:
        for sql, _ in DERIVED.values():
            self.con.execute(sql)

    # ------------------------------------------------------------------
    def execute(self, sql: str, params: dict | None = None) -> tuple[list[str], list[tuple]]:
        check_read_only(self.con, sql)
        try:
            cur = self.con.execute(sql, params) if params else self.con.execute(sql)
            if cur.description is None:
                return [], []
            cols = [d[0] for d in cur.description]
            return cols, cur.fetchall()
        except duckdb.Error as e:
            if not self.live and find_damage(e):
                raise DamageFound() from None
            msg = str(e).strip().splitlines()[0]
            raise ProcsnapError(f"SQL error: {msg}") from None

    def time_range(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        return self.con.execute("SELECT min(ts), max(ts) FROM snapshots").fetchone()

    def resolve_time(self, text: str) -> dt.datetime:
        start, end = self.time_range()
        return parse_time(text, start, end)

    def moment(self, text: str | None, need: str | None = None) -> list[Moment]:
        """Per host, the latest snapshot at or before the time (the last one when None).

        With NEED (a table such as ``open_files``), the latest snapshot that took that
        table: a recorder on two cadences takes descriptors on fewer snapshots.
        """
        # A recording that never counts the table (hand-made, or older) took it on every snapshot.
        has = (f" AND ({need}_seen IS NOT NULL OR NOT EXISTS (SELECT 1 FROM snapshots s2 "
               f"WHERE s2.host = snapshots.host AND s2.{need}_seen IS NOT NULL))") if need else ""
        if text is None:
            rows = self.con.execute(
                f"SELECT host, arg_max(snapshot_id, ts), max(ts) FROM snapshots WHERE true{has} "
                "GROUP BY host ORDER BY host").fetchall()
        else:
            at = self.resolve_time(text)
            rows = self.con.execute(
                f"SELECT host, arg_max(snapshot_id, ts), max(ts) FROM snapshots WHERE ts <= $at{has} "
                "GROUP BY host ORDER BY host", {"at": at}).fetchall()
            if not rows:
                start, _ = self.time_range()
                with_ = f" with {need}" if need else ""
                raise ProcsnapError(f"no snapshot at or before {at.isoformat()}{with_} (the recording starts at "
                                    f"{start.isoformat() if start else 'nothing: it is empty'})")
        return [Moment(*r) for r in rows]


# What user SQL may be: statements that read. Everything else (COPY, EXPORT, ATTACH,
# INSTALL/LOAD, SET, CREATE, ...) is refused before DuckDB sees it.
READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA"}


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """ProcsnapError unless every statement of the SQL only reads."""
    try:
        stmts = con.extract_statements(sql)
    except duckdb.Error as e:
        raise ProcsnapError(f"SQL error: {str(e).strip().splitlines()[0]}") from None
    for st in stmts:
        kind = st.type.name
        if kind not in READ_ONLY_STATEMENTS:
            raise ProcsnapError(f"{kind} statements are not allowed: procsnap runs read-only SQL "
                                f"({', '.join(sorted(READ_ONLY_STATEMENTS))})")


def recording_folders(paths: list[str]) -> list[Path]:
    """The recordings named on a command line. A folder that is not a recording itself but holds
    recordings (a fleet: one folder per host, side by side) stands for each of them."""
    sources: list[Path] = []
    for p in paths:
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


def moments_for(paths: list[str] | None, at: str | None, hosts: list[str] | None,
                command: str) -> tuple[Recording | None, list[Moment] | None]:
    """``--rec/--at/--host`` as the commands about one moment (lsof, ps, top) take them.

    With recordings: the Recording and, per host, the latest snapshot at or before
    AT (the last one without AT) that took the table the command needs (NEEDS).
    Without: (None, None), for the caller to read the live host; --at and --host
    are then usage errors.
    """
    if not paths:
        live_only(at, hosts, command)
        return None, None
    if command in AT_MOMENT:
        rec, moments = Recording.open_at(paths, hosts or None, at, NEEDS.get(command), whole=AT_MOMENT[command])
    else:
        rec = Recording.open(paths, hosts=hosts or None)
        moments = rec.moment(at, NEEDS.get(command))
    if not moments:
        which = f" of host {', '.join(hosts)}" if hosts else ""
        raise ProcsnapError(f"no snapshot{which} in {', '.join(paths)}")
    return rec, moments


def say_damage(damaged: list[Damage], err, limit: int = 5) -> None:
    """Name on stderr the files left out (``procsnap info`` lists them all)."""
    from .output import escape  # a shared recording names its files
    new = [d for d in damaged if d.path not in SAID]
    SAID.update(d.path for d in new)
    for d in new[:limit]:
        err.write(f"procsnap: skipped {escape(str(d))}\n")
    if len(new) > limit:
        err.write(f"procsnap: skipped {len(new) - limit} more damaged files (procsnap info lists them)\n")
    err.flush()


def say_moments(moments: list[Moment], err) -> None:
    """Name on stderr the snapshot used for each host."""
    from .output import escape
    for m in moments:
        err.write(f"procsnap: snapshot of {escape(m.host)} at {m.ts:%Y-%m-%d %H:%M:%S} UTC\n")
    err.flush()


def _empty_view(t: Table) -> str:
    cols = ", ".join(f'NULL::{c.sql_type} AS "{c.name}"' for c in t.columns)
    return f"CREATE VIEW {t.name} AS SELECT {cols} WHERE false"


_CANONICAL: dict[str, str] = {}


def _canonical(con, sql_type: str) -> str:
    """A declared type as DESCRIBE spells it (TIMESTAMPTZ is TIMESTAMP WITH TIME ZONE)."""
    if sql_type not in _CANONICAL:
        _CANONICAL[sql_type] = con.execute(f"SELECT typeof(NULL::{sql_type})").fetchone()[0]
    return _CANONICAL[sql_type]


class _Incompatible(Exception):
    """A column of the files cannot be read as its declared type."""


def _disk_view(con, t: Table, files: list[str], hosts: list[str] | None) -> str:
    if not files:
        return _empty_view(t)
    listed = ", ".join(_sql_str(f) for f in files)
    scan = (f"read_parquet([{listed}], hive_partitioning = true, union_by_name = true, "
            f"hive_types = {{'host': 'VARCHAR', 'date': 'DATE'}})")
    present = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    cols = []
    for c in t.columns:
        have = present.get(c.name)
        if have is not None and incompatible(have, c.sql_type):
            raise _Incompatible(f"column {c.name} is {have}, not {c.sql_type}")
        if have is not None and have != _canonical(con, c.sql_type):  # an older procsnap's narrower type
            cols.append(f'CAST("{c.name}" AS {c.sql_type}) AS "{c.name}"')
        elif have is not None:
            cols.append(f'"{c.name}"')
        else:
            cols.append(f'NULL::{c.sql_type} AS "{c.name}"')
    where = []
    if hosts:
        where.append(f"host IN ({', '.join(_sql_str(h) for h in hosts)})")
    if t.name != "snapshots":
        where.append("(host, snapshot_id) IN (SELECT (host, snapshot_id) FROM snapshots)")
    sql = f"CREATE VIEW {t.name} AS SELECT {', '.join(cols)} FROM {scan}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql

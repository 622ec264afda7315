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
from .interrupt import watch
from .timespec import parse_span
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
        (``allowed_directories``: also the views' own scans go through it), nothing
        spills to a temporary directory (DuckDB's default, ``.tmp`` in the current
        folder, would be writable too), no extension is installed or loaded behind our
        back, and the configuration is locked so that no SQL can switch any of it back
        on. DuckDB does not tell reading from writing inside an allowed directory (COPY,
        EXPORT, ATTACH could write there): user SQL is held to queries by
        :func:`check_read_only`, and ``procsnap query`` runs it in a thread the kernel
        keeps from writing (:mod:`analyze.sandbox`).
        """
        con = duckdb.connect(":memory:")
        watch(con)
        con.execute("SET TimeZone = 'UTC'")
        # Each view is bound when it is created and each query binds it again: without the cache
        # every bind reads and parses the footer of every file of the table once more.
        con.execute("SET parquet_metadata_cache = true")
        con.execute("SET temp_directory = ''")
        allowed = sorted({d for f in folders for d in (str(f), os.path.realpath(f), os.path.abspath(f))})
        if allowed:
            con.execute("SET allowed_directories = " + "[" + ", ".join(_sql_str(d.rstrip("/") + "/") for d in allowed) + "]")
        for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions",
                        "allow_community_extensions", "allow_persistent_secrets"):
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
            except duckdb.InterruptException:
                raise  # Ctrl-C (analyze.interrupt), not damage
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

    def resolve_time(self, text: str, last: bool = False) -> dt.datetime:
        """The time as typed (:mod:`analyze.timespec`) against this recording: its first instant, or
        with LAST its last (``03:14:05`` covers the whole second, up to 03:14:05.999999)."""
        start, end = self.time_range()
        first, final = parse_span(text, start, end)
        return final if last else first

    def moment(self, text: str | None, need: str | None = None, err=None) -> list[Moment]:
        """Per host, the latest snapshot at or before the time (the last one when None). A time
        covers what its last digit names: ``--at 03:14:05`` finds the snapshot of 03:14:05.62.

        With NEED (a table such as ``open_files``), the latest snapshot that took that
        table: a recorder on two cadences takes descriptors on fewer snapshots.

        When the snapshot chosen for a host is more than one of its intervals (the median gap
        between its snapshots) before the time asked, or a host has none at or before it while
        others do, ERR (stderr) says so: the answer is then not about the moment asked.
        """
        # A recording that never counts the table (hand-made, or older) took it on every snapshot.
        has = (f" AND ({need}_seen IS NOT NULL OR NOT EXISTS (SELECT 1 FROM snapshots s2 "
               f"WHERE s2.host = snapshots.host AND s2.{need}_seen IS NOT NULL))") if need else ""
        if text is None:
            rows = self.con.execute(
                f"SELECT host, arg_max(snapshot_id, ts), max(ts) FROM snapshots WHERE true{has} "
                "GROUP BY host ORDER BY host").fetchall()
            return [Moment(*r) for r in rows]
        start, end = self.time_range()
        asked, at = parse_span(text, start, end)
        rows = self.con.execute(
            f"""WITH s AS (SELECT host, snapshot_id, ts FROM snapshots WHERE true{has}),
                     g AS (SELECT host, median(gap) AS gap FROM (
                             SELECT host, epoch(ts) - epoch(lag(ts) OVER (PARTITION BY host ORDER BY ts)) AS gap
                             FROM s) GROUP BY host)
                SELECT g.host, arg_max(s.snapshot_id, s.ts), max(s.ts), any_value(g.gap)
                FROM g LEFT JOIN s ON s.host = g.host AND s.ts <= $at
                GROUP BY g.host ORDER BY g.host""", {"at": at}).fetchall()
        found = [r for r in rows if r[1] is not None]
        if not found:
            with_ = f" with {need}" if need else ""
            raise ProcsnapError(f"no snapshot at or before {asked.isoformat()}{with_} (the recording starts at "
                                f"{start.isoformat() if start else 'nothing: it is empty'})")
        from .output import escape
        err = err or sys.stderr
        for host, _, ts, gap in rows:
            if ts is None:
                err.write(f"procsnap: no snapshot of {escape(host)} at or before {asked:%Y-%m-%d %H:%M:%S} UTC: "
                          "that host is left out\n")
            elif gap is not None and (asked - ts).total_seconds() > gap:
                err.write(f"procsnap: the snapshot of {escape(host)} used, at {ts:%Y-%m-%d %H:%M:%S} UTC, is "
                          f"{_span(asked - ts)} before the time asked ({asked:%Y-%m-%d %H:%M:%S} UTC): "
                          f"{escape(host)} has no later snapshot\n")
        err.flush()
        return [Moment(*r[:3]) for r in found]


def _span(d: dt.timedelta) -> str:
    """A duration for people: 3d 4h, 2h 5m, 12m 3s, 4.2s."""
    s = d.total_seconds()
    if s < 60:
        return f"{s:.1f}s"
    parts, left = [], int(s)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= n:
            parts.append(f"{left // n}{unit}")
            left %= n
    return " ".join(parts[:2])


# What user SQL may run, allow-listed: queries (SELECT and its forms: WITH, FROM-first, VALUES,
# DESCRIBE, SHOW, SUMMARIZE), and EXPLAIN or EXPLAIN ANALYZE of one. Every other statement type
# (COPY, EXPORT, IMPORT, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL, CREATE, ...) and every type a
# later DuckDB adds is refused before DuckDB runs anything.
READ_ONLY_STATEMENTS = {"SELECT"}

# The table functions a query may call: those that read (within the recordings: the connection's
# allowed_directories) or describe. Any other (checkpoint, enable_logging, query, the external
# resource and grammar functions, the Python scans, and every one a later DuckDB adds) is refused.
READ_ONLY_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "glob", "summary",
    "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema", "parquet_file_metadata",
    "parquet_kv_metadata", "parquet_full_metadata", "parquet_page_index", "parquet_bloom_probe",
    "read_csv", "read_csv_auto", "sniff_csv", "read_json", "read_json_auto", "read_json_objects",
    "read_json_objects_auto", "read_ndjson", "read_ndjson_auto", "read_ndjson_objects", "read_text",
    "read_blob", "json_each", "json_tree", "histogram", "histogram_values", "icu_calendar_names",
    "pg_timezone_names", "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies",
    "duckdb_extensions", "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_memory",
    "duckdb_optimizers", "duckdb_schemas", "duckdb_sequences", "duckdb_settings", "duckdb_tables",
    "duckdb_temporary_files", "duckdb_types", "duckdb_variables", "duckdb_views", "pragma_table_info",
    "pragma_show", "pragma_version", "pragma_platform", "pragma_database_size", "pragma_storage_info",
    "pragma_metadata_info", "pragma_collations", "pragma_user_agent",
})


def _refuse(what: str) -> ProcsnapError:
    return ProcsnapError(f"{what} not allowed: procsnap query runs read-only queries (SELECT, WITH, FROM, "
                         "VALUES, DESCRIBE, SHOW, SUMMARIZE) and EXPLAIN [ANALYZE] of one")


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """ProcsnapError unless every statement of the SQL is a query, or EXPLAIN [ANALYZE] of one, that
    calls only the table functions of READ_ONLY_TABLE_FUNCTIONS; UsageError when there is no
    statement at all. DuckDB's own parser decides: the statement types come from it, and a query's
    whole tree (subqueries, CTEs, joins) from its serializer, which serializes SELECT statements
    only; an EXPLAIN's inner statement is parsed again on its own."""
    stmts = _statements(con, sql)
    if not stmts:
        raise UsageError("no SQL statement given")
    for st in stmts:
        _check_statement(con, st, explained=False)


def _statements(con, sql: str) -> list:
    try:
        return con.extract_statements(sql)
    except duckdb.Error as e:
        raise ProcsnapError(f"SQL error: {str(e).strip().splitlines()[0]}") from None


def _check_statement(con, st, explained: bool) -> None:
    try:
        kind = st.type.name
    except ValueError:  # a type the engine has and its Python module does not name (UPDATE EXTENSIONS)
        raise _refuse("statements of a type procsnap does not know are") from None
    if kind == "EXPLAIN" and not explained:
        inner = [c for c in _explained(con, st.query) if c is not None]
        if not inner:
            raise _refuse("this EXPLAIN is")
        for stmts in inner:
            _check_statement(con, stmts[0], explained=True)
        return
    if kind not in READ_ONLY_STATEMENTS:
        raise _refuse(f"{'EXPLAIN of ' if explained else ''}{kind} statements are")
    import json
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql($q)", {"q": st.query}).fetchone()[0])
    except duckdb.InterruptException:
        raise
    except duckdb.Error:  # no json extension in this DuckDB: nothing is let through unseen
        tree = {"error": True}
    if tree.get("error") or len(tree.get("statements", ())) != 1:
        raise _refuse(f"{'EXPLAIN of ' if explained else ''}this statement is")
    for name in _table_functions(tree["statements"][0]):
        if name not in READ_ONLY_TABLE_FUNCTIONS:
            raise _refuse(f"the table function {name}() is")


def _explained(con, text: str) -> list:
    """The statement an EXPLAIN [ANALYZE] [(options)] explains, as each reading of its first tokens
    would have it: after EXPLAIN, after EXPLAIN ANALYZE, and after a parenthesised group following
    either. Each reading that parses as one statement (a list of one), None for those that do
    not: the caller requires every reading that parses to be allowed, so no reading of an
    ambiguous text can slip a statement through."""
    every = duckdb.tokenize(text)
    ends = [p for p, _ in every[1:]] + [len(text)]
    toks = [(p, typ, text[p:e].strip()) for (p, typ), e in zip(every, ends) if typ.name != "comment"]
    starts = []

    def word(i):
        return toks[i][2].upper()

    if not toks or word(0) != "EXPLAIN":
        return []
    for i in (1, 2) if len(toks) > 2 and word(1) in ("ANALYZE", "ANALYSE", "VERBOSE") else (1,):
        if i < len(toks):
            starts.append(toks[i][0])
            if word(i).startswith("("):
                depth = 0
                for j in range(i, len(toks)):
                    if toks[j][1].name == "operator":
                        depth += word(j).count("(") - word(j).count(")")
                    if depth == 0:
                        if j + 1 < len(toks):
                            starts.append(toks[j + 1][0])
                        break
    out = []
    for s in starts:
        try:
            stmts = con.extract_statements(text[s:])
        except duckdb.Error:
            out.append(None)
            continue
        out.append(stmts if len(stmts) == 1 else None)
    return out


def _table_functions(node) -> set[str]:
    """The names of every table function the serialized statement calls, at any depth."""
    found, todo = set(), [node]
    while todo:
        n = todo.pop()
        if isinstance(n, dict):
            if n.get("type") == "TABLE_FUNCTION":
                f = n.get("function") or {}
                found.add(str(f.get("function_name", "")).lower())
            todo.extend(n.values())
        elif isinstance(n, list):
            todo.extend(n)
    return found


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

"""Opening recordings (or a live snapshot) as a DuckDB connection with one view
per table, plus the derived views of :mod:`analyze.data.views`.

The views are generated from the recorder's schema declaration: each selects
exactly the declared columns, and a column that no file has yet (a recording
written by an older procsnap) reads as a typed NULL. Rows of snapshots that
were never committed (see the atomicity rule in ``recorder.store.folder``) are
invisible.

Which files each view reads is :mod:`analyze.data.files`' choice.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from recorder.schema import COUNTED, TABLES, Table
from recorder.store.layout import MARKER, file_range

from analyze.data.damage import (EXCLUDED, LOSSES, OPENED, SAID, Damage, DamageFound, Loss, culprit, find_damage,
                                 footer_problem, id_time, incompatible, quick_check, unreadable_files)
from analyze.data.engine import connect, duckdb
from analyze.data.files import (Candidate, Checker, candidates, choose, damage_of, holds, host_of, marker_problem,
                                recording_folders)
from analyze.data.gate import check_read_only
from analyze.data.sqltext import literal, sql_str
from analyze.data.timespec import parse_span
from analyze.errors import ProcsnapError, duckdb_error_line, files_removed, live_only
from analyze.data.remote import is_pending
from analyze.data.views import COMMITTED, DERIVED, took_table


# The table a command about one moment needs, when a recording takes it on fewer snapshots.
NEEDS = {"lsof": "open_files"}
# Commands about one moment that read only the moment's snapshots (Recording.open_at), and the
# tables they read whole.
AT_MOMENT = {"lsof": (), "ps": (), "top": ()}
# The tables whose files of the snapshot before the moment are read too: ps's rates need each
# process's and thread's previous row (views.rates_at; the rare one further back reads whole()).
BEFORE = {"ps": ("processes", "threads"), "top": ("processes", "system")}
# The tables each reads (the others get empty views: none of their files is opened, nor fetched
# from a bucket).
READS = {"lsof": ("processes", "open_files", "sockets"), "ps": ("processes", "threads", "system"),
         "top": ("processes", "system", "thread_samples")}
DERIVES = ("top",)  # the commands about one moment that read the rate views (top's %Cpu(s): system_rates)


@dataclass
class Moment:
    """A snapshot chosen for a time: per host, the latest at or before it."""

    host: str
    snapshot_id: int
    ts: dt.datetime


def collect_live(tables: tuple[str, ...] | None = None):
    """One snapshot of the live host, in memory. Take it outside analyze.data.sandbox.confined: a
    confined thread may not inspect other processes, whose sockets would lose their owner."""
    from recorder.collect.collector import COLLECTED, Collector
    return Collector(tables=tables or COLLECTED).snapshot()


class Recording:
    """A DuckDB connection over one or more recordings, or over a live snapshot."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sources: list[Path], live: bool):
        self.con = con
        self.sources = sources
        self.live = live
        self.damaged: list[Damage] = []  # files left out, with why (procsnap info lists them)
        self.ignored: list[Damage] = []  # files not read that lose nothing (procsnap info lists them)
        self.losses: list[Loss] = []  # the recorded rows the damaged files took with them
        self.files: dict[str, list[str]] = {}  # per table, the files its view reads
        self.checker: Checker | None = None
        self.scope: set[int] | None = None  # the snapshots an answer is about (None: all)
        # Per host, the snapshot a moment's answer used and the last snapshot id the time asked
        # covers (None: the end): a lost snapshot between them is one the answer should have used.
        self.after: dict[str, tuple[int, int | None]] = {}
        self.hosts: list[str] | None = None  # the hosts asked for (None: all)
        self.verified = False  # every page of every file read was checked (procsnap info)
        self.unscoped: dict[str, list] = {}  # per table read only in part (open_at), all its candidates
        self.wholes: set[str] = set()  # the views whole() made

    # ------------------------------------------------------------------
    @classmethod
    def open(cls, paths: list[str], hosts: list[str] | None = None, err=None, derived: bool = True,
             pages: bool | None = None) -> "Recording":
        """The recordings as views. A file that cannot be read is named on ERR (stderr unless
        None is wanted: pass False), left out, and the rest answers; ``damaged`` keeps them, and
        the rows they took with them go to analyze.data.damage.LOSSES (said on ERR too; the command
        then exits 3). DERIVED=False leaves out the rate views (:mod:`analyze.data.views`), for a
        caller that never queries them: each costs a bind over its table. PAGES: whether every
        page of the files read is checked against its checksum (default: unless the environment
        says PROCSNAP_VERIFY=0)."""
        rec, cands, damage = cls._listed(paths, hosts, pages)
        for t in TABLES.values():
            if t.name != "snapshots":
                rec._view(t, choose(cands[t.name], rec.checker, t.name, damage[t.name], rec.ignored), hosts,
                          damage[t.name])
        if derived:
            rec._derived()
        rec._say(damage, err)
        return rec

    @classmethod
    def open_at(cls, paths: list[str], hosts: list[str] | None, at: str | None, need: str | None = None,
                whole: tuple[str, ...] = (), before: tuple[str, ...] = (), reads: tuple[str, ...] | None = None,
                derived: bool = False, err=None) -> tuple["Recording", list["Moment"]]:
        """The recordings as views for a command about one moment: the moment (see :meth:`moment`,
        AT and NEED) resolved in the whole ``snapshots`` table, then of every other table, but
        those in WHOLE, only the files whose names say they can hold rows of the moment's
        snapshots (``<id>.parquet``, ``c<first>-<last>.parquet``: see ``recorder.store.folder``). The
        engine opens no other file: on a day-long recording most of the time of a one-moment
        command went into binding views over files it never reads. The files read are checked as
        :meth:`open` checks them, a damaged one named on ERR, and only rows of the moment's
        snapshots count as lost; the rate views are left out (DERIVED: made, over these views). The
        tables in BEFORE also get the
        files of each host's snapshot before the moment that took them (a rate's previous row);
        :meth:`whole` gives such a table over all its files. Tables not in READS (when given) are
        empty views, their files not opened. Returns (recording, moments)."""
        rec, cands, damage = cls._listed(paths, hosts)
        try:
            moments = rec.moment(at, need)
        except ProcsnapError:
            rec._say(damage, err)
            raise
        ids = sorted({m.snapshot_id for m in moments})
        rec.scope = set(ids)
        for t in TABLES.values():
            if t.name != "snapshots":
                want = sorted(set(ids) | rec._before(moments, t.name)) if t.name in before else ids
                if t.name in before:
                    rec.unscoped[t.name] = cands[t.name]
                mine = cands[t.name] if t.name in whole else [c for c in cands[t.name] if holds(c, want)]
                if reads is not None and t.name not in reads:
                    mine = []
                for c in cands[t.name]:  # not read: named when it is damaged at a glance, as open() would
                    why = None if c in mine or is_pending(c.path) else quick_check(c.path)
                    if why is not None:
                        damage[t.name].append(damage_of(c.path, why, t.name))
                rec._view(t, choose(mine, rec.checker, t.name, damage[t.name], rec.ignored), hosts, damage[t.name])
        if derived:
            rec._derived()
        rec._say(damage, err)
        return rec, moments

    def _before(self, moments: list["Moment"], table: str) -> set[int]:
        """Per host, the latest snapshot before its moment that took TABLE."""
        _, rows = self.query(
            f"SELECT (SELECT arg_max(s.snapshot_id, s.ts) FROM {COMMITTED} s WHERE s.host = m.host AND s.ts < m.ts"
            f"{' AND ' + took_table(table, 's.host') if table in COUNTED else ''}) "
            "FROM (SELECT unnest($hosts) AS host, unnest($ts) AS ts) m",
            {"hosts": [m.host for m in moments], "ts": [m.ts for m in moments]})
        return {r[0] for r in rows if r[0] is not None}

    def whole(self, table: str) -> str:
        """The name of a view of TABLE over all its files, when open_at read it only in part (made
        the first time it is asked for): a rate whose previous row is older than the snapshot
        before (a process the previous snapshot missed) looks further back."""
        if table not in self.unscoped:
            return table
        name = f"whole_{table}"
        if name not in self.wholes:
            damage: list[Damage] = []
            files = choose(self.unscoped[table], self.checker, table, damage, self.ignored)
            self.con.execute(self._table_view(TABLES[table], files, self.hosts, damage, name))
            self.wholes.add(name)
        return name

    @classmethod
    def _listed(cls, paths: list[str], hosts: list[str] | None = None, pages: bool | None = None
                ) -> tuple["Recording", dict[str, list[Candidate]], dict[str, list[Damage]]]:
        """A Recording with its ``snapshots`` view only, and per table the files its naming
        says are the recording's and the damaged or foreign ones left out."""
        sources = recording_folders(paths, hosts)
        rec = cls(connect(sources), sources, live=False)
        rec.hosts = hosts
        if pages is None:
            pages = os.environ.get("PROCSNAP_VERIFY", "1") != "0"
        rec.checker = Checker(rec.con, pages=pages)
        cands, damage = {}, {}
        for t in TABLES.values():
            damage[t.name] = []
            cands[t.name] = [c for src in sources for c in candidates(src, t.name, damage[t.name], hosts)]
        for src in sources:
            why = marker_problem(src)
            if why is not None:
                damage["snapshots"].append(Damage(str(src / MARKER), why))
        snaps = choose(cands["snapshots"], rec.checker, "snapshots", damage["snapshots"], rec.ignored)
        rec._view(TABLES["snapshots"], snaps, hosts, damage["snapshots"])
        return rec, cands, damage

    def _view(self, t: Table, files: list[str], hosts: list[str] | None, damaged: list[Damage]) -> None:
        self.con.execute(self._table_view(t, files, hosts, damaged))
        if t.name == "snapshots":
            # The committed snapshots' keys, read once: every other view keeps only their rows, and a
            # semi-join against the view would read every snapshots file again in each query.
            _index_snapshots(self.con)

    def _say(self, damage: dict[str, list[Damage]], err) -> None:
        """Keep the damaged files table by table, as they were found, find the rows they took
        with them, and name both on ERR."""
        self.damaged = [d for t in (*TABLES, "") for d in damage.get(t, ())]
        for x in self.losses:  # said again with another scope (a command about one moment)
            if x in LOSSES:
                LOSSES.remove(x)
        self.losses = self._losses()
        LOSSES.extend(x for x in self.losses if x not in LOSSES)
        if err is not False:
            say_damage(self.damaged, err or sys.stderr)
            say_losses(self.losses, err or sys.stderr)

    def rescope(self, scope: set[int] | None, err) -> None:
        """Count as lost only rows of the snapshots SCOPE (None: all), and say so on ERR."""
        self.scope = scope
        self._say({"": self.damaged}, err)

    def _losses(self) -> list[Loss]:
        """The recorded rows the views lack because of damaged files: per table and host, runs of
        committed snapshots (for the ``snapshots`` table, the range its damaged file's name
        says, unless both its ends are still committed through other files). Only the snapshots
        of ``scope`` count when it is set (a command about one moment)."""
        hit = [d for d in self.damaged if d.table is not None and (self.hosts is None or d.host in self.hosts)]
        if not hit:
            return []
        seen = ", ".join(f"{t}_seen" for t in COUNTED)
        _, rows = self.query(f"SELECT host, snapshot_id, ts, {seen} FROM snapshots ORDER BY host, snapshot_id")
        order: dict[str, list[int]] = {}
        when: dict[tuple[str, int], object] = {}
        took: dict[tuple[str, int], tuple] = {}
        for r in rows:
            order.setdefault(r[0], []).append(r[1])
            when[(r[0], r[1])] = r[2]
            took[(r[0], r[1])] = r[3:]
        held: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for t, files in self.files.items():
            for f in files:
                r = file_range(os.path.basename(f))
                h = os.path.basename(os.path.dirname(os.path.dirname(f)))
                if r is not None:
                    held.setdefault((t, host_of(h)), []).append(r)
        out: list[Loss] = []
        for d in hit:
            if d.table == "snapshots":
                if (d.host, d.first) in when and (d.host, d.last) in when:
                    continue
                if self.scope is not None and not any(d.first <= i <= d.last for i in self.scope) \
                        and not self._between_moment_and_asked(d):
                    continue
                out.append(Loss("snapshots", d.host, id_time(d.first), id_time(d.last), 1 if d.first == d.last else None))
                continue
            col = COUNTED.index(d.table) if d.table in COUNTED else None
            ids = order.get(d.host, [])
            lo, hi = bisect.bisect_left(ids, d.first), bisect.bisect_right(ids, d.last)
            lost = [i for i in ids[lo:hi]
                    if (col is None or took[(d.host, i)][col] is not None)
                    and (self.scope is None or i in self.scope)
                    and not any(a <= i <= b for a, b in held.get((d.table, d.host), ()))]
            run: list[int] = []
            for i in lost:  # runs of consecutive committed snapshots
                if run and ids.index(i) != ids.index(run[-1]) + 1:
                    out.append(Loss(d.table, d.host, when[(d.host, run[0])], when[(d.host, run[-1])], len(run)))
                    run = []
                run.append(i)
            if run:
                out.append(Loss(d.table, d.host, when[(d.host, run[0])], when[(d.host, run[-1])], len(run)))
        return sorted(set(out), key=lambda x: (x.table, x.host, x.first))

    def _between_moment_and_asked(self, d: Damage) -> bool:
        """A lost snapshot of D's range lies after the snapshot a moment's answer used and at or
        before the time asked: the answer would have been about it."""
        a = self.after.get(d.host)
        return a is not None and d.last > a[0] and (a[1] is None or d.first <= a[1])

    def _table_view(self, t: Table, files: list[str], hosts: list[str] | None, damaged: list[Damage],
                    name: str | None = None) -> str:
        """The view of one table over FILES, leaving out (into DAMAGED) each file whose
        footer the engine cannot read or whose columns cannot be read as declared. A compacted
        file found so is remembered and the command run again (DamageFound), to read the small
        files it replaced."""
        files = list(files)
        while True:
            OPENED.update(files)
            try:
                sql = _disk_view(self.con, t, files, hosts, name)
                if name is None:
                    self.files[t.name] = files
                return sql
            except duckdb.InterruptException:
                raise  # Ctrl-C (analyze.data.interrupt), not damage
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
                if os.path.basename(f).startswith("c"):  # it may have replaced small files still there
                    EXCLUDED[f] = why
                    raise DamageFound()
                damaged.append(damage_of(f, why, t.name))
                files.remove(f)

    @classmethod
    def from_snapshot(cls, snap) -> "Recording":
        """A recording of one in-memory snapshot (the live mode)."""
        return cls.from_snapshots([snap])

    @classmethod
    def from_snapshots(cls, snaps) -> "Recording":
        """A recording of in-memory snapshots (live mode over an interval: rates need two)."""
        import duckdb as package  # noqa: F401 - the package sets up the scans of Arrow tables that register needs
        con = connect()
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
                        cols.append(f"{sql_str(snap.host)} AS host")
                    elif c.name == "date":
                        cols.append(f"DATE {sql_str(snap.date.isoformat())} AS date")
                    else:
                        cols.append(f'"{c.name}"')
                parts.append(f"SELECT {', '.join(cols)} FROM _live_{t.name}_{i}")
            if parts:
                con.execute(f"CREATE VIEW {t.name} AS {' UNION ALL '.join(parts)}")
            else:
                con.execute(_empty_view(t))
        _index_snapshots(con)
        rec = cls(con, [], live=True)
        rec._derived()
        return rec

    @classmethod
    def live_snapshot(cls, tables: tuple[str, ...] | None = None) -> "Recording":
        return cls.from_snapshot(collect_live(tables))

    def _derived(self) -> None:
        for sql, _ in DERIVED.values():
            self.con.execute(sql)

    # ------------------------------------------------------------------
    def execute(self, sql: str, params: dict | None = None) -> tuple[list[str], list[tuple]]:
        """User SQL (``procsnap query``, named queries): held to read-only queries by the gate
        (:mod:`analyze.data.gate`), then run as :meth:`query` runs procsnap's own."""
        check_read_only(self.con, sql)
        return self.query(sql, params)

    def query(self, sql: str, params: dict | None = None) -> tuple[list[str], list[tuple]]:
        """The one path every query of an answer takes: (column names, rows). An error that came
        from damaged files raises DamageFound (the command runs again without them: see
        :func:`analyze.data.damage.retrying`); any other is a ProcsnapError of one line."""
        try:
            cur = self.con.execute(sql, params) if params else self.con.execute(sql)
            if cur.description is None:
                return [], []
            cols = [d[0] for d in cur.description]
            return cols, cur.fetchall()
        except duckdb.Error as e:
            if not self.live and find_damage(e):
                raise DamageFound() from None
            line = duckdb_error_line(e)
            if files_removed(line):  # removed since listed: the line says so
                raise ProcsnapError(line) from None
            raise ProcsnapError(f"SQL error: {line}") from None

    def time_range(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        return self.query("SELECT min(ts), max(ts) FROM snapshots")[1][0]

    def resolve_time(self, text: str, last: bool = False) -> dt.datetime:
        """The time as typed (:mod:`analyze.data.timespec`) against this recording: its first instant, or
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
        has = " AND " + took_table(need, f"{COMMITTED}.host") if need else ""
        if text is None:
            _, rows = self.query(
                f"SELECT host, arg_max(snapshot_id, ts), max(ts) FROM {COMMITTED} WHERE true{has} "
                "GROUP BY host ORDER BY host")
            self.after = {r[0]: (r[1], None) for r in rows}
            return [Moment(*r) for r in rows]
        start, end = self.time_range()
        asked, at = parse_span(text, start, end)
        _, rows = self.query(
            f"""WITH s AS (SELECT host, snapshot_id, ts FROM {COMMITTED} WHERE true{has}),
                     g AS (SELECT host, median(gap) AS gap FROM (
                             SELECT host, epoch(ts) - epoch(lag(ts) OVER (PARTITION BY host ORDER BY ts)) AS gap
                             FROM s) GROUP BY host)
                SELECT g.host, arg_max(s.snapshot_id, s.ts), max(s.ts), any_value(g.gap)
                FROM g LEFT JOIN s ON s.host = g.host AND s.ts <= $at
                GROUP BY g.host ORDER BY g.host""", {"at": at})
        found = [r for r in rows if r[1] is not None]
        u = at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
        upto = None if text.strip().lower() == "end" else int(u.timestamp() * 1_000_000)  # "end": as no --at
        self.after = {r[0]: (r[1], upto) for r in found}
        if not found:
            with_ = f" with {need}" if need else ""
            raise ProcsnapError(f"no snapshot at or before {asked.isoformat()}{with_} (the recording starts at "
                                f"{start.isoformat() if start else 'nothing: it is empty'})")
        from analyze.output import escape
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


def moments_for(paths: list[str] | None, at: str | None, hosts: list[str] | None,
                command: str, need: str | None = None) -> tuple[Recording | None, list[Moment] | None]:
    """``--rec/--at/--host`` as the commands about one moment (lsof, ps, top) take them.

    With recordings: the Recording and, per host, the latest snapshot at or before
    AT (the last one without AT) that took the table the command needs (NEED, else NEEDS: ps -L
    needs ``threads``, which the pre-trigger ring's frames do not take).
    Without: (None, None), for the caller to read the live host; --at and --host
    are then usage errors.
    """
    if not paths:
        live_only(at, hosts, command)
        return None, None
    if command in AT_MOMENT:
        rec, moments = Recording.open_at(paths, hosts or None, at, need or NEEDS.get(command),
                                         whole=AT_MOMENT[command], before=BEFORE.get(command, ()),
                                         reads=READS.get(command), derived=command in DERIVES)
    else:
        rec = Recording.open(paths, hosts=hosts or None, err=False)  # said below, for the moment's snapshots
        try:
            moments = rec.moment(at, need or NEEDS.get(command))
        except ProcsnapError:
            rec.rescope(None, None)
            raise
        rec.rescope({m.snapshot_id for m in moments}, None)
    if not moments:
        which = f" of host {', '.join(hosts)}" if hosts else ""
        raise ProcsnapError(f"no snapshot{which} in {', '.join(paths)}")
    return rec, moments


def say_damage(damaged: list[Damage], err, limit: int = 5) -> None:
    """Name on stderr the files left out (``procsnap info`` lists them all)."""
    from analyze.output import escape  # a shared recording names its files
    new = [d for d in damaged if d.path not in SAID]
    SAID.update(d.path for d in new)
    for d in new[:limit]:
        err.write(f"procsnap: skipped {escape(str(d))}\n")
    if len(new) > limit:
        err.write(f"procsnap: skipped {len(new) - limit} more damaged files (procsnap info lists them)\n")
    err.flush()


def lost_at(rec: "Recording", table: str, m: "Moment") -> str | None:
    """When the rows of TABLE of moment M's snapshot are unreadable: the error to give instead of
    "the recording was made without the table" (exit 3, see analyze.errors.PartialError)."""
    for x in rec.losses:
        if x.table in (table, "snapshots") and x.host == m.host and x.first <= m.ts <= x.last:
            return (f"the {table} rows of the snapshot of {m.host} at {m.ts:%Y-%m-%d %H:%M:%S} UTC are in a "
                    "damaged file (named above; procsnap info lists it): nothing to answer with")
    return None


def say_losses(losses: list[Loss], err) -> None:
    """Say on stderr which recorded rows the answer lacks (the command then exits 3)."""
    from analyze.output import escape
    for x in losses:
        err.write(f"procsnap: PARTIAL: rows missing from {escape(x.line())}\n")
    err.flush()


def say_moments(moments: list[Moment], err) -> None:
    """Name on stderr the snapshot used for each host."""
    from analyze.output import escape
    for m in moments:
        err.write(f"procsnap: snapshot of {escape(m.host)} at {m.ts:%Y-%m-%d %H:%M:%S} UTC\n")
    err.flush()


def _index_snapshots(con) -> None:
    """The table COMMITTED of the snapshots view's keys, times and what each took."""
    seen = "".join(f", {c}_seen" for c in COUNTED)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {COMMITTED} AS SELECT DISTINCT host, snapshot_id, ts{seen} FROM snapshots")


def _empty_view(t: Table, name: str | None = None) -> str:
    cols = ", ".join(f'NULL::{c.sql_type} AS "{c.name}"' for c in t.columns)
    return f"CREATE VIEW {name or t.name} AS SELECT {cols} WHERE false"


_CANONICAL: dict[str, str] = {}


def _canonical(con, sql_type: str) -> str:
    """A declared type as DESCRIBE spells it (TIMESTAMPTZ is TIMESTAMP WITH TIME ZONE)."""
    if sql_type not in _CANONICAL:
        _CANONICAL[sql_type] = con.execute(f"SELECT typeof(NULL::{sql_type})").fetchone()[0]
    return _CANONICAL[sql_type]


class _Incompatible(Exception):
    """A column of the files cannot be read as its declared type."""


def _disk_view(con, t: Table, files: list[str], hosts: list[str] | None, name: str | None = None) -> str:
    if not files:
        return _empty_view(t, name)
    listed = ", ".join(sql_str(literal(f)) for f in files)
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
        where.append(f"host IN ({', '.join(sql_str(h) for h in hosts)})")
    if t.name != "snapshots":
        where.append(f"(host, snapshot_id) IN (SELECT (host, snapshot_id) FROM {COMMITTED})")
    sql = f"CREATE VIEW {name or t.name} AS SELECT {', '.join(cols)} FROM {scan}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql

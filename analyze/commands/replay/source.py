"""What procsnap replay shows, read from a recording (or the live host) one moment at a time.

A :class:`Source` holds the recording open for the whole session (one :meth:`Recording.open`:
its damage is found and named once) and the time line of one host (its snapshots, in time
order). Each step in time reads only what the shown view needs, through the commands' own
loaders: top's frame (:func:`analyze.commands.top.loading.load`, whose rates read only the
snapshot before), lsof's rows of one snapshot, ps's threads, the events of one interval, diff
between two moments. The small host tables (system, disks, nics) are read whole once, for the
history charts. Frames are kept for the last few moments visited, so that stepping back and
forth reads nothing again.
"""

from __future__ import annotations

import datetime as dt
import io
import shlex
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from analyze.data.db import Moment
from analyze.errors import ProcsnapError

UTC = dt.timezone.utc
KEEP = 16  # frames kept for the moments visited last


def iso(ts: dt.datetime) -> str:
    """A time as the command lines shown take it back (--at, --from, --to)."""
    ts = ts.astimezone(UTC)
    frac = f".{ts.microsecond:06d}" if ts.microsecond else ""
    return f"{ts:%Y-%m-%dT%H:%M:%S}{frac}Z"


def shown(ts: dt.datetime) -> str:
    return f"{ts.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@dataclass
class History:
    """The host's counters over the whole time line, one value per snapshot (None: unknown)."""
    cpu_busy: list = field(default_factory=list)
    load1: list = field(default_factory=list)
    mem_used_pct: list = field(default_factory=list)
    psi: dict = field(default_factory=dict)          # name -> values
    disks: dict = field(default_factory=dict)        # device -> (read+write bytes/s values, util % values)
    nics: dict = field(default_factory=dict)         # interface -> (rx bytes/s values, tx bytes/s values)
    marks: dict = field(default_factory=dict)        # snapshot index -> kernel/incident events in its interval
    rates: dict = field(default_factory=dict)        # snapshot index -> its system_rates row (a dict)
    disk_rows: dict = field(default_factory=dict)    # snapshot index -> its disk_rates rows
    nic_rows: dict = field(default_factory=dict)     # snapshot index -> its nic_rates rows


class Source:
    """A recording, one host of it, its time line and the readers of each view."""

    live = False

    def __init__(self, paths: list[str], host: str | None = None):
        self.paths = list(paths)
        self.host_asked = host
        self.notes: list[str] = []
        self._frames: OrderedDict = OrderedDict()
        self._lsof: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict = {}  # snapshot index -> set when its frame, being read ahead, is in
        self._open()

    # ---- opening
    def _open(self) -> None:
        from analyze.data.db import Recording
        err = io.StringIO()
        # The cheap checks now; every page's checksum later, off the UI's thread (verify_pages).
        self.rec = Recording.open(self.paths, hosts=[self.host_asked] if self.host_asked else None, err=err,
                                  pages=False)
        self.notes += [line.removeprefix("procsnap: ") for line in err.getvalue().splitlines() if line.strip()]
        _, hosts = self.rec.query("SELECT DISTINCT host FROM snapshots ORDER BY host")
        hosts = [h for h, in hosts]
        if not hosts:
            raise ProcsnapError(f"no snapshot in {', '.join(self.paths)}"
                                + (f" of host {self.host_asked}" if self.host_asked else ""))
        self.host = hosts[0]
        if len(hosts) > 1:
            self.notes.append(f"{len(hosts)} hosts in this recording: showing {self.host} (--host NAME for another)")
        self._index()

    def _index(self) -> None:
        """The shown host's snapshots, in time order; what was read of the last recording is dropped."""
        _, rows = self.rec.query("SELECT snapshot_id, ts FROM snapshots WHERE host = $h ORDER BY ts",
                                 {"h": self.host})
        self.ids = [r[0] for r in rows]
        self.times = [r[1] for r in rows]
        self._frames.clear()
        self._lsof.clear()
        self.history = self._history()

    def reopen(self) -> None:
        """Open again (a query met a damaged file, now left out; or a live recording grew)."""
        self._open()

    def take_notes(self) -> list[str]:
        """What opening said (damaged files named, rows lost, hosts) since last asked."""
        notes, self.notes = self.notes, []
        return notes

    def verify_pages(self) -> list[tuple[str, str]]:
        """Every page of every file the views read, checked against its checksum as
        Recording.open checks them for a command (unless PROCSNAP_VERIFY=0): (file, why) for the
        damaged ones, which are then left out (EXCLUDED) when the recording is opened again. Runs
        in a thread: it reads files with pyarrow, not through the session's connection."""
        import os

        from recorder.schema import TABLES

        from analyze.data.damage import EXCLUDED, verify
        if self.live or os.environ.get("PROCSNAP_VERIFY", "1") == "0":
            return []
        bad = []
        for table, files in list(self.rec.files.items()):
            bad += verify(files, TABLES[table].names if table in TABLES else None)
        for f, why in bad:
            EXCLUDED[f] = why
        return bad

    def call(self, fn, *args):
        """fn(recording, *args), again over the recording opened anew without the files a query
        found damaged, as analyze.data.damage.retrying does for a command."""
        from analyze.data.damage import DamageFound, find_damage
        for _ in range(5):
            try:
                return fn(self.rec, *args)
            except DamageFound:
                self.reopen()
            except Exception as e:  # noqa: BLE001 - only errors from damaged files are retried
                if not find_damage(e):
                    raise
                self.reopen()
        raise ProcsnapError("damaged files keep turning up: procsnap info lists them")

    # ---- the time line
    def __len__(self) -> int:
        return len(self.ids)

    def moment(self, i: int) -> Moment:
        return Moment(self.host, self.ids[i], self.times[i])

    def index_at(self, text: str) -> int:
        """The snapshot a typed time names, as --at chooses it: the latest at or before (the
        grammar of analyze.data.timespec against this recording: -10m is ten minutes before its
        end, +5m five minutes after its start, 03:14 covers the whole minute)."""
        import bisect
        at = self.rec.resolve_time(text, last=True)
        i = bisect.bisect_right(self.times, at) - 1
        if i < 0:
            raise ProcsnapError(f"no snapshot at or before {shown(at)} (the recording starts at "
                                f"{shown(self.times[0])})")
        return i

    def rec_args(self) -> list[str]:
        args = []
        for p in self.paths:
            args += ["--rec", p]
        if self.host_asked:
            args += ["--host", self.host_asked]
        return args

    def command(self, i: int | None, *args: str, at: bool = True) -> str:
        """The command line that answers as a view does at snapshot I."""
        words = ["procsnap", *args[:1], *self.rec_args()]
        if at and i is not None:
            words += ["--at", iso(self.times[i])]
        return shlex.join(words + list(args[1:]))

    # ---- the views' data
    def frame(self, i: int):
        """top's frame of snapshot I (kept for the last moments visited, and read ahead: prefetch)."""
        with self._lock:
            pending = self._pending.get(i)
        if pending is not None:  # being read ahead: wait for it rather than read it twice
            pending.wait(5.0)
        with self._lock:
            f = self._frames.get(i)
            if f is not None:
                self._frames.move_to_end(i)
                return f
        from analyze.commands.top.loading import load
        f = self.call(load, self.moment(i))
        with self._lock:
            self._frames[i] = f
            while len(self._frames) > KEEP:
                self._frames.popitem(last=False)
        return f

    def files_moment(self, i: int, table: str = "open_files") -> Moment | None:
        """The snapshot lsof --at (ps -L --at, for ``threads``) would read for snapshot I: the
        latest at or before it that took the table (a recorder takes descriptors on fewer
        snapshots, and its pre-trigger frames take no threads)."""
        err = io.StringIO()
        try:
            ms = self.call(lambda rec: rec.moment(iso(self.times[i]), table, err))
        except ProcsnapError:
            return None
        return next((m for m in ms if m.host == self.host), None)

    def lsof_lines(self, i: int, argv: list[str]) -> tuple[Moment | None, list[str], list]:
        """lsof's listing (its lines) for ARGV at snapshot I, and its rows."""
        from analyze.commands import lsof as L
        m = self.files_moment(i)
        if m is None:
            return None, [], []
        key = (m.snapshot_id, tuple(argv))
        got = self._lsof.get(key)
        if got is None:
            o = L.parse_args(argv)
            rows = self.call(L.load, [m], o)
            res = L.select(rows, o)
            buf = io.StringIO()
            if res.rows:
                L.text_table(res.rows, o, buf)
            got = self._lsof[key] = (m, buf.getvalue().splitlines(), res.rows)
            while len(self._lsof) > 4:  # descriptor snapshots are few: the last ones visited
                self._lsof.popitem(last=False)
        return got

    def ps_lines(self, i: int, argv: list[str]) -> list[str]:
        """ps's listing (its lines) for ARGV at snapshot I."""
        from analyze.commands import ps as P
        o = P.parse_args(argv)
        m = self.files_moment(i, "threads") if o.threads else self.moment(i)
        if m is None:
            return []
        rows = self.call(P.load, m, bool(o.threads), False)
        cols, ctx, got = P.prepared(rows, o, [m], False)
        if not got:
            return []
        buf = io.StringIO()
        P.text_table(got, cols, o, ctx, buf)
        return buf.getvalue().splitlines()

    def events_lines(self, t0: dt.datetime, t1: dt.datetime, pids: list[str] | None = None) -> list[str]:
        """procsnap events' table for the window, of these processes (None: all)."""
        from analyze.commands import events as E
        from analyze.commands.who import selection
        from analyze.output import render
        if not E.recorded(self.rec):
            return []
        rows = self.call(E.load, E.DEFAULT_KINDS, t0, t1, selection(pids))
        rows = [r for r in rows if r.host == self.host]
        if not rows:
            return []
        buf = io.StringIO()
        render(E.COLUMNS, [(r.time, r.host, r.kind, r.pid, r.ppid, r.user if r.user is not None else r.uid,
                            r.command, E.detail(r)) for r in rows], "table", out=buf)
        return buf.getvalue().splitlines()

    def diff_lines(self, a: int, b: int) -> list[str]:
        """procsnap diff's text between snapshots A and B."""
        from analyze.commands import diff as D
        lo, hi = sorted((a, b))
        result = self.call(D.run, None, iso(self.times[lo]), iso(self.times[hi]), [self.host], 10.0, None)
        return "\n\n".join(D.text(c) for c in result["comparisons"]).splitlines()

    def process_history(self, pid: int, start) -> list[tuple]:
        """(ts, cpu %, rss, fds) of one process instance over the whole recording."""
        _, rows = self.call(lambda rec: rec.query(
            "SELECT ts, cpu_pct, rss, num_fds FROM process_rates "
            "WHERE host = $h AND pid = $p AND start_time IS NOT DISTINCT FROM $st ORDER BY ts",
            {"h": self.host, "p": pid, "st": start}))
        return rows

    def disks_at(self, i: int) -> list[tuple]:
        """(device, reads/s, writes/s, read B/s, write B/s, util %, await ms) at snapshot I."""
        return self.history.disk_rows.get(i, [])

    def nics_at(self, i: int) -> list[tuple]:
        """(interface, rx B/s, tx B/s, rx packets/s, tx packets/s, errors/s, drops/s) at snapshot I."""
        return self.history.nic_rows.get(i, [])

    def rates_at(self, i: int) -> dict:
        """The system_rates row of snapshot I."""
        return self.history.rates.get(i, {})

    def prefetch(self, i: int, moved=lambda: False) -> None:
        """In a thread: the frames of the snapshots either side of I, and of the first and last,
        read through a cursor of their own (a DuckDB connection serves one thread at a time), so
        that t, T, g and G find them.
        moved() says the user went elsewhere meanwhile: the rest is not read."""
        import copy

        from analyze.commands.top.loading import load
        with self._lock:
            # either side for t and T, then the ends for g and G
            todo = [k for k in dict.fromkeys((i + 1, i - 1, 0, len(self.ids) - 1))
                    if 0 <= k < len(self.ids) and k not in self._frames and k not in self._pending]
            events = {k: threading.Event() for k in todo}
            self._pending.update(events)
        if not todo:
            return
        rec = copy.copy(self.rec)
        rec.con = self.rec.con.cursor()
        try:
            for k in todo:
                if moved():
                    break
                try:
                    f = load(rec, self.moment(k))
                except Exception:  # noqa: BLE001 - read again, and said, when the step itself reads it
                    break
                with self._lock:
                    self._frames[k] = f
                    while len(self._frames) > KEEP:
                        self._frames.popitem(last=False)
                    self._pending.pop(k, None)
                events[k].set()
        finally:
            with self._lock:
                for k, e in events.items():
                    self._pending.pop(k, None)
                    e.set()
            rec.con.close()

    # ---- history, read once
    def _history(self) -> History:
        import bisect
        h = History()
        n = len(self.ids)
        pos = {sid: k for k, sid in enumerate(self.ids)}

        psi = ("cpu", "memory", "io")
        cols, rows = self.rec.query("SELECT * FROM system_rates WHERE host = $h", {"h": self.host})
        for r in rows:
            k = pos.get(r[cols.index("snapshot_id")])
            if k is not None:
                h.rates[k] = dict(zip(cols, r))
        get = lambda name: [h.rates.get(k, {}).get(name) for k in range(n)]  # noqa: E731
        h.cpu_busy, h.load1 = get("cpu_busy_pct"), get("load1")
        h.mem_used_pct = [None if not r.get("mem_total") or r.get("mem_available") is None
                          else (r["mem_total"] - r["mem_available"]) * 100.0 / r["mem_total"]
                          for r in (h.rates.get(k, {}) for k in range(n))]
        h.psi = {p: get(f"psi_{p}_some_pct") for p in psi}
        _, rows = self.rec.query("SELECT snapshot_id, device, reads_ps, writes_ps, read_bps, write_bps, util_pct, "
                                 "await_ms FROM disk_rates WHERE host = $h ORDER BY device", {"h": self.host})
        for sid, *r in rows:
            k = pos.get(sid)
            if k is not None:
                h.disk_rows.setdefault(k, []).append(tuple(r))
                d = h.disks.setdefault(r[0], ([None] * n, [None] * n))
                d[0][k] = None if r[3] is None or r[4] is None else r[3] + r[4]
                d[1][k] = r[5]
        _, rows = self.rec.query("SELECT snapshot_id, interface, rx_bps, tx_bps, rx_pps, tx_pps, "
                                 "rx_errors_ps + tx_errors_ps, rx_dropped_ps + tx_dropped_ps FROM nic_rates "
                                 "WHERE host = $h ORDER BY interface", {"h": self.host})
        for sid, *r in rows:
            k = pos.get(sid)
            if k is not None:
                h.nic_rows.setdefault(k, []).append(tuple(r))
                d = h.nics.setdefault(r[0], ([None] * n, [None] * n))
                d[0][k], d[1][k] = r[1], r[2]
        # the time line's marks: kernel reports and processes killed by a signal, per interval
        if self.times:
            _, rows = self.rec.query(
                "SELECT time, coalesce(kind, 'log') FROM kernel_events WHERE host = $h AND kind IS NOT NULL "
                "UNION ALL SELECT coalesce(time, ts), 'killed' FROM process_events "
                "WHERE host = $h AND kind = 'exit' AND signal IS NOT NULL AND signal <> 0", {"h": self.host})
            for t, kind in rows:
                if t is None:
                    continue
                k = min(bisect.bisect_left(self.times, t), n - 1)
                h.marks.setdefault(k, []).append(kind)
        return h


class LiveSource(Source):
    """The live host: a snapshot every INTERVAL seconds, the last KEEP_LIVE of them as a recording."""

    live = True
    KEEP_LIVE = 40

    def __init__(self, interval: float = 5.0):
        from recorder.collect.collector import COLLECTED, Collector
        self.paths = []
        self.host_asked = None
        self.interval = interval
        self.notes = []
        self._frames = OrderedDict()
        self._lsof = OrderedDict()
        self._lock = threading.Lock()
        self._pending = {}
        self._snaps: list = []
        # nothing reaches disk: what procsnap top, lsof and ps print live, as its command lines say
        self._collector = Collector(tables=COLLECTED, redact=False)
        self.grow()
        self.grow()

    KEEP_FILES = 3  # of those, the last ones keep their descriptors (the bulk of a snapshot)

    def grow(self, snap=None) -> None:
        """One more snapshot of the live host: SNAP (taken by :meth:`take`, in a thread), or one
        taken now."""
        import pyarrow as pa
        self._snaps.append(snap if snap is not None else self.take())
        del self._snaps[:-self.KEEP_LIVE]
        for old in self._snaps[:-self.KEEP_FILES]:
            if old.tables.pop("open_files", None) is not None:
                old.tables.pop("sockets", None)
                t = old.tables["snapshots"]  # no longer taken, as a recorder on two cadences says
                for c in ("open_files_seen", "sockets_seen"):
                    if c in t.column_names:
                        t = t.set_column(t.column_names.index(c), c, pa.nulls(len(t), t.schema.field(c).type))
                old.tables["snapshots"] = t
        self.reopen()

    def take(self):
        """A snapshot of the live host (no DuckDB: a thread may take it while the UI reads)."""
        return self._collector.snapshot()

    def reopen(self) -> None:
        from analyze.data.db import Recording
        self.rec = Recording.from_snapshots(self._snaps)
        self.host = self._snaps[-1].host
        self._index()

    def command(self, i, *args: str, at: bool = True) -> str:
        return shlex.join(["procsnap", *args])

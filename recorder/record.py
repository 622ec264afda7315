"""The record loop: snapshots on a fixed schedule until a count, a duration
or a signal ends it, with two cadences, an incident preset, and the recording's
maintenance (compaction, in a short-lived child process, and retention) between
snapshots.

Snapshot k is due at start + k × interval (no drift); a duration covers its
whole span, both ends included (``-i 2 -d 6s``: snapshots at 0, 2, 4 and 6 s).
When a snapshot overruns its slot, the slots it overran are skipped and counted
in the next snapshot's ``skipped`` column, never stacked; slots skipped at the
very end of a duration are counted on the last snapshot. SIGINT and SIGTERM
finish the snapshot in hand, write it, and stop: the recording is always valid.
Retention runs after every snapshot, the last one included.

Cadences: every snapshot takes host, processes and threads; descriptors and
sockets (``open_files``, ``sockets``, mapped files included) are the expensive
part and are taken only on the first snapshot at or after each
``files_interval``. The incident preset takes everything every
INCIDENT_INTERVAL seconds for a bounded time, then the normal cadences resume.
It starts with ``--incident``, on SIGHUP (which also ends a running one), or
when a file named ``incident`` appears in the recording folder (the recorder
removes it; a duration written in it, like ``30m`` or ``1h30m`` in the grammar of
``recorder.units``, sets the length; a bad one is said and the file ignored).

While triggers are armed (recorder.collect.triggers) a pre-trigger ring (recorder.collect.ring)
takes light frames between snapshots and keeps the last minutes of them in memory; when an
incident starts, by a trigger or a person, they are written first (``early`` = 'ring').

Event sources (the kernel log, the process events) hold what happens between
snapshots in bounded buffers; when one holds half its capacity (a sustained
exec rate the always-on cadence would overflow), the next snapshot is taken at
once, off the grid (``early`` says why; the grid's slots stay where they were),
at most one every EARLY_MIN_GAP seconds: beyond that rate the buffer fills and
what does not fit is counted as dropped.

A full disk never stops the recorder and never grows its memory: the snapshot
is dropped (counted in the next written snapshot's ``dropped``), said once on
stderr, and recording resumes by itself when space returns.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

import pyarrow as pa

from recorder.collect.collector import Collector, Snapshot
from recorder.store.compact import Maintenance, maintain
from recorder.store.retention import retain
from recorder.memory import give_back
from recorder.store.folder import Store, StoreError, StoreFull
from recorder.store.layout import COMPACT_NAME, file_range
from recorder.units import UnitError, parse_duration

from recorder.defaults import DEFAULT_INCIDENT, INCIDENT_INTERVAL

FILE_TABLES = ("open_files", "sockets")
EARLY_MIN_GAP = 10.0  # seconds between two snapshots taken early for a pressing event buffer
INCIDENT_FILE = "incident"


@dataclass
class RecordResult:
    snapshots: int = 0
    bytes: int = 0
    skipped: int = 0
    pending_skip: int = 0  # skipped just before the next snapshot
    dropped: int = 0  # collected but not written (disk full)
    compacted: int = 0  # snapshots merged into compacted files
    retired: int = 0  # snapshots removed by retention
    incidents: int = 0  # incident presets started
    ring_frames: int = 0  # pre-trigger frames written (part of snapshots)
    ring_left_out: int = 0  # pre-trigger frames not written: inside a compaction since, or the disk full
    stopped_by: str | None = None  # signal name, or None when the count/duration ran out
    notes: list[str] = field(default_factory=list)


class _Signals:
    """SIGINT/SIGTERM stop; SIGHUP toggles the incident preset."""

    def __init__(self):
        self.signal: str | None = None
        self.hup = False

    def stop(self, signum, frame):
        self.signal = signal.Signals(signum).name

    def toggle(self, signum, frame):
        self.hup = True


def _annotate(snap: Snapshot, **values) -> None:
    """Fill the recorder's own columns of the ``snapshots`` row (the collector leaves them NULL)."""
    t = snap.tables["snapshots"]
    for name, v in values.items():
        i = t.schema.get_field_index(name)
        if i < 0:
            continue
        f = t.schema.field(i)
        t = t.set_column(i, f, pa.array([v], f.type))
    snap.tables["snapshots"] = t


def _after(snap: Snapshot, last_id: int | None) -> None:
    """Keep snapshot ids increasing when the wall clock steps back (NTP): a compacted file
    covers an id range, and a new small file inside it would be hidden. ``ts`` stays true."""
    if last_id is None or snap.snapshot_id > last_id:
        return
    snap.snapshot_id = last_id + 1
    for name, t in snap.tables.items():
        i = t.schema.get_field_index("snapshot_id")
        if i >= 0:
            f = t.schema.field(i)
            snap.tables[name] = t.set_column(i, f, pa.array([snap.snapshot_id] * t.num_rows, f.type))


def _within(offset: float, duration: float) -> bool:
    """A slot OFFSET seconds after the start is inside a DURATION (its end included, give or
    take float rounding of k × interval)."""
    return offset <= duration + 1e-6


def _count_late_skips(store: Store, last: tuple, n: int, res: RecordResult, err: TextIO) -> None:
    host, date, sid = last
    try:
        store.add_skipped(host, date, sid, n)
    except (OSError, StoreError) as e:
        note = f"procsnap: {n} skipped slots at the end could not be counted in snapshots.skipped ({e})"
        err.write(note + "\n")
        res.notes.append(note)


def _give_back_memory() -> None:
    """After a snapshot is written, hand the pages its rows held back to the kernel, so a
    recorder's resident size between snapshots is what it keeps, not what it last used."""
    give_back()


def record(store: Store, collector: Collector, interval: float, count: int | None = None,
           duration: float | None = None, progress: Callable[[RecordResult, float], None] | None = None,
           clock: Callable[[], float] = time.monotonic, files_interval: float | None = None,
           incident: float | None = None, maintenance: Maintenance | None = None,
           err: TextIO | None = None, kernel_log=None, process_events=None, triggers=None,
           thread_samples=None, ring=None) -> RecordResult:
    """Record until COUNT snapshots (written or dropped), DURATION seconds, or a signal.

    ``files_interval`` None takes every table on every snapshot. ``incident`` starts the
    incident preset for that many seconds. ``maintenance`` runs after each snapshot.
    ``kernel_log`` (a recorder.collect.kernel_events.KernelLog, stopped at the end) gives each
    snapshot the kernel log records read since the previous one; ``process_events`` (a
    recorder.collect.process_events.ProcessEvents, stopped at the end) the process events.
    ``triggers`` (a recorder.collect.triggers.Watcher, armed; stopped at the end) starts the
    incident preset by itself when one fires, within its hourly share. ``thread_samples`` (a
    recorder.collect.thread_samples.Sampler, started; stopped at the end) samples the threads
    while the incident preset runs (always, if it was made so). ``ring`` (a
    recorder.collect.ring.Ring) takes frames between snapshots outside incidents; they are written
    when an incident starts.
    """
    err = err or sys.stderr
    # Event sources: each snapshot takes what they buffered since the previous one.
    sources = [(n, s) for n, s in (("kernel_events", kernel_log), ("process_events", process_events),
                                   ("triggers", triggers), ("thread_samples", thread_samples)) if s is not None]
    res = RecordResult()
    sig = _Signals()
    old = {s: signal.signal(s, sig.stop) for s in (signal.SIGINT, signal.SIGTERM)}
    old[signal.SIGHUP] = signal.signal(signal.SIGHUP, sig.toggle)
    incident_file = store.root / INCIDENT_FILE  # read and removed through the store: never through a link
    all_tables = collector.tables
    base_tables = tuple(t for t in all_tables if t not in FILE_TABLES)
    try:
        start = clock()
        incident_until = start + incident if incident else None
        reason = "--incident" if incident else None  # why the incident preset runs
        auto = False  # it was started by a trigger (held to the hourly share, ended by quiet)
        if incident:
            res.incidents += 1
        anchor, k, tick, mode = start, 0, interval, None
        files_due = start
        write_ms_prev: float | None = None
        maint_ms = 0.0
        dropped_since = 0
        full = False
        attempts = 0
        last_id: int | None = None
        last_written = None  # (host, date, id) of the last snapshot written
        maintained = True  # retention has run since the last snapshot
        early = None  # why the snapshot about to be taken comes before its slot
        stopping = None  # a signal came between snapshots: one last snapshot takes the events
        last_taken = None  # clock() at the last snapshot

        def pressing() -> bool:
            return any(s.pressing() for _, s in sources) and clock() - last_taken >= EARLY_MIN_GAP

        def write_ring() -> None:
            """An incident starts: the frames the ring holds are written, oldest first, each a
            snapshot of its own, unless a compaction since covers its place (then left out, counted)."""
            nonlocal last_id
            frames = ring.drain()
            state = triggers.state() if triggers is not None else None
            covered: dict = {}
            for n, f in enumerate(frames):
                d = store.partition_dir("snapshots", f.host, f.date)
                if d not in covered:
                    try:
                        covered[d] = [file_range(x) for x in store.listdir(d) if COMPACT_NAME.match(x)]
                    except (OSError, StoreError):
                        covered[d] = []
                if any(a <= f.snapshot_id <= b for a, b in covered[d]):
                    res.ring_left_out += 1
                    continue
                _annotate(f, incident=False, early="ring", triggers=state, dropped=0)
                try:
                    res.bytes += store.write(f)
                except StoreFull:
                    res.ring_left_out += len(frames) - n
                    break
                res.snapshots += 1
                res.ring_frames += 1
                last_id = max(last_id or 0, f.snapshot_id)
            del frames
            _give_back_memory()

        def poll_incident() -> None:
            """Start or end the incident preset on SIGHUP or the folder's ``incident`` file."""
            nonlocal incident_until, reason, auto
            now = clock()
            active = incident_until is not None and now < incident_until
            if auto and not active:
                auto = False
                triggers.budget.end(incident_until)
            if triggers is not None:
                allowed = triggers.budget.allows(now)
                fired = triggers.firings(suppress=not allowed and not (active and not auto))
                if auto and active and not allowed:  # the hour's share is used: back to normal cadences
                    incident_until, auto = now, False
                    triggers.budget.end(now)
                    err.write(f"procsnap: triggers: incident cadence took {triggers.config.max_share:.0%} of the "
                              "last hour; back to normal cadences (later firings are recorded, suppressed)\n")
                    err.flush()
                elif fired and allowed:
                    until = now + triggers.config.quiet
                    if not active:
                        auto, reason = True, fired[-1].reason()
                        incident_until = until
                        triggers.budget.start(now)
                        res.incidents += 1
                        err.write(f"procsnap: trigger {reason}: incident preset until "
                                  f"{triggers.config.quiet:.0f}s pass without a firing\n")
                        err.flush()
                    elif auto:
                        reason = fired[-1].reason()
                        incident_until = max(incident_until, until)
            if sig.hup:
                sig.hup = False
                if active:
                    incident_until = None
                    if auto:
                        auto = False
                        triggers.budget.end(now)
                    err.write("procsnap: SIGHUP: incident preset ended, back to normal cadences\n")
                else:
                    incident_until, reason = now + DEFAULT_INCIDENT, "SIGHUP"
                    res.incidents += 1
                    err.write(f"procsnap: SIGHUP: incident preset for {DEFAULT_INCIDENT:.0f}s\n")
                err.flush()
            text = store.take_file(INCIDENT_FILE)
            if text is None:
                return
            try:
                length = parse_duration(text.strip(), "incident duration", positive=True) if text.strip() else DEFAULT_INCIDENT
            except UnitError as e:
                err.write(f"procsnap: {incident_file}: {e}; file ignored\n")
                err.flush()
                return
            if auto:  # a person's incident: no longer held to the triggers' share
                auto = False
                triggers.budget.end(now)
            incident_until, reason = now + length, "incident file"
            res.incidents += 1
            err.write(f"procsnap: {incident_file} found: incident preset for {length:.0f}s\n")
            err.flush()

        while True:
            poll_incident()
            now = clock()
            in_incident = incident_until is not None and now < incident_until
            if thread_samples is not None:
                thread_samples.run_while(in_incident)
            if mode != in_incident:
                # A new cadence starts its own grid now (the first at the start: a duration's
                # last slot falls on its end).
                mode, anchor, k = in_incident, start if mode is None else now, 0
                tick = INCIDENT_INTERVAL if in_incident else interval
                if ring is not None:
                    if in_incident:
                        write_ring()
                    else:
                        ring.restart()
            take_files = files_interval is None or in_incident or now + 0.25 * tick >= files_due
            if take_files and files_interval is not None:
                while files_due <= now + 0.25 * tick:
                    files_due += files_interval
            collector.skipped = res.pending_skip
            collector.interval = tick
            collector.next_files_in = tick if files_interval is None or in_incident else files_due - now
            last_taken = clock()
            snap = collector.snapshot(None if take_files else base_tables)
            _after(snap, last_id)
            last_id = snap.snapshot_id
            if process_events is not None:
                process_events.saw(snap.tables.get("processes"))
            if triggers is not None:
                triggers.saw(snap.tables.get("processes"))
            events, dropped_events = {}, None
            for name, source in sources:  # written with this snapshot, under its commit
                table, meta = source.take(snap.snapshot_id, snap.ts)
                if table is not None:
                    snap.tables[name] = table
                for col in ("events_dropped", "process_events_dropped"):  # events_dropped: every source's
                    if meta.get(col) is not None:
                        dropped_events = (dropped_events or 0) + meta[col]
                events.update(meta)
            if sources:
                events["events_dropped"] = dropped_events
            _annotate(snap, write_ms_prev=write_ms_prev, maintenance_ms=maint_ms, dropped=dropped_since,
                      incident=in_incident, early=early, incident_reason=reason if in_incident else None,
                      **events)
            attempts += 1
            # The collection's Python rows are gone: hand their pages back before the Parquet
            # writer takes its own (a lower peak on a descriptor snapshot).
            _give_back_memory()
            t0 = time.perf_counter()
            try:
                res.bytes += store.write(snap)
            except StoreFull as e:
                for _, source in sources:
                    source.unwritten()
                last_written = None
                res.dropped += 1
                dropped_since += 1
                write_ms_prev = None
                if not full:
                    full = True
                    err.write(f"procsnap: {e}: dropping snapshots until space returns\n")
                    err.flush()
            else:
                for _, source in sources:
                    source.written()
                res.snapshots += 1
                last_written = (snap.host, snap.date, snap.snapshot_id)
                write_ms_prev = (time.perf_counter() - t0) * 1000
                if full:
                    full = False
                    err.write(f"procsnap: space returned to {store.root}; {dropped_since} snapshots were dropped\n")
                    err.flush()
                dropped_since = 0
            del snap
            _give_back_memory()
            res.pending_skip = 0
            if progress:
                progress(res, clock() - start)
            maintained = False
            if sig.signal or (count is not None and attempts >= count):
                break
            maint_ms = 0.0
            maintained = True
            if maintenance is not None:
                t0 = time.perf_counter()
                try:
                    mr = maintain(store, maintenance)
                    res.compacted += mr.compacted
                    res.retired += mr.dropped
                    if mr.killed:
                        note = f"procsnap: {mr.killed}; the recording is whole, the next pass resumes it"
                        err.write(note + "\n")
                        err.flush()
                        res.notes.append(note)
                    for path, why in mr.damaged:
                        note = f"procsnap: compaction left out {path} ({why}); kept as {path}.damaged"
                        err.write(note + "\n")
                        err.flush()
                        res.notes.append(note)
                except Exception as e:  # noqa: BLE001 - recording matters more than compacting
                    note = f"procsnap: maintenance failed ({type(e).__name__}: {e}); compaction and retention stop"
                    err.write(note + "\n")
                    err.flush()
                    res.notes.append(note)
                    maintenance = None
                maint_ms = (time.perf_counter() - t0) * 1000
            if ring is not None and not mode:
                ring.saw_snapshot()
            if early is None:  # an early snapshot leaves the grid's slot where it was
                k += 1
            early = None
            due = anchor + k * tick
            now = clock()
            if now > due:
                missed = int((now - due) // tick) + 1
                if duration is not None:  # slots after the duration's end are not the recording's
                    missed = sum(1 for j in range(missed) if _within(due + j * tick - start, duration))
                k += missed
                res.skipped += missed
                res.pending_skip = missed
                due = anchor + k * tick
            if duration is not None and not _within(due - start, duration):
                # A duration covers its whole span: its last slot (at the duration itself) is
                # taken. Slots it skipped at the end have no next snapshot to count them: the
                # last one written does.
                if res.pending_skip and last_written is not None:
                    _count_late_skips(store, last_written, res.pending_skip, res, err)
                    maintained = False  # a file was rewritten: held to the budget again below
                break
            # Sleep in short steps so that a signal, the incident file or the end of the
            # incident preset is noticed promptly.
            while not sig.signal:
                left = due - clock()
                if left <= 0:
                    break
                time.sleep(min(left, 0.2))
                if ring is not None and not mode and ring.due() and due - clock() > ring.every / 2:
                    frame = ring.take()
                    if process_events is not None:
                        process_events.saw(frame)
                    if triggers is not None:
                        triggers.saw(frame)  # a process near its fd limit, at the ring's cadence
                    del frame
                    _give_back_memory()
                if sig.hup or store.has_file(INCIDENT_FILE) or \
                        (mode and incident_until is not None and clock() >= incident_until):
                    break
                if triggers is not None and triggers.wake.is_set() and not mode:
                    poll_incident()  # a firing: the incident preset starts now, unless the hour's share is used
                    if incident_until is not None and clock() < incident_until:
                        break
                if sources and pressing():
                    early = "events"
                    break
            if sig.signal:
                if stopping is None and sources:
                    # Stopped between snapshots: one more, so that what the event sources hold
                    # since the last one is written, not lost (early says why).
                    stopping, early = True, "stop"
                    continue
                break
        if not maintained and maintenance is not None and (maintenance.keep or maintenance.max_size):
            # The last snapshot too is held to the budget (a stop by count or signal comes
            # before the pass that follows each snapshot).
            try:
                res.retired += retain(store, maintenance.keep, maintenance.max_size)
            except Exception as e:  # noqa: BLE001 - the recording is whole; say why it is over budget
                note = f"procsnap: retention failed ({type(e).__name__}: {e})"
                err.write(note + "\n")
                res.notes.append(note)
    finally:
        for _, source in sources:
            source.stop()
        for s, h in old.items():
            signal.signal(s, h)
    res.stopped_by = sig.signal
    return res


def progress_line(stream=sys.stderr) -> Callable[[RecordResult, float], None]:
    def show(res: RecordResult, elapsed: float) -> None:
        stream.write(f"\rprocsnap: {res.snapshots} snapshots, {res.bytes / 1e6:.1f} MB, {elapsed:.0f}s"
                     + (f", {res.skipped} skipped" if res.skipped else "")
                     + (f", {res.dropped} dropped" if res.dropped else "") + "   ")
        stream.flush()
    return show

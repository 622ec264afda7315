"""Triggers: the recorder notices an incident itself and starts the incident preset.

While `procsnap record` runs, a watcher thread waits on the kernel's own pressure triggers (PSI:
a threshold written to /proc/pressure/{cpu,memory,io}, then poll() for POLLPRI: the kernel
wakes the thread only when the stall passes it) and, every CHECK_EVERY seconds, reads a few
host-wide files (meminfo, loadavg, vmstat, net/netstat, net/snmp: no process scan) against
their thresholds; every FS_EVERY seconds the file systems' use (statvfs of the mounts the
snapshots list). The kernel log's reader reports OOM kills, hung tasks and lockups as it reads
them, and each process snapshot is checked for a process near its descriptor limit.

A condition that holds is a *firing*: the record loop starts (or extends) the incident preset,
says why in ``snapshots.incident_reason``, and writes one ``triggers`` row per firing (a
trigger that keeps firing is written at most once every REPEAT_EVERY seconds, with the count of
firings in between). The incident ends after ``quiet`` seconds without a firing, and
incident cadence never takes more than ``max_share`` of any hour (:class:`Budget`): firings
past it are written with ``suppressed`` true, and the cadence stays normal.

Defaults (:data:`DEFAULTS`) are documented in docs/operations.md with their reasons; a small
TOML file (``record --triggers FILE``) changes or turns off any of them.
"""

from __future__ import annotations

import datetime as dt
import os
import select
import threading
import time
from dataclasses import dataclass, field

from recorder.collect.events import Follower, Taken
from recorder.collect.ring import DEFAULT_EVERY as DEFAULT_RING_EVERY, DEFAULT_SPAN as DEFAULT_RING_SPAN
from recorder.source import procfs as P

UTC = dt.timezone.utc
TABLE = "triggers"
CHECK_EVERY = 2.0   # s between two reads of the cheap counters
FS_EVERY = 30.0     # s between two statvfs passes over the file systems
REPEAT_EVERY = 30.0  # s: a trigger that keeps firing is written at most this often
PSI_WINDOW_US = 2_000_000  # the kernel accepts windows of 2 s multiples here without CAP_SYS_RESOURCE
CAPACITY = 1024  # firings held between two snapshots


@dataclass
class Spec:
    """One trigger: its threshold and what the value means."""
    name: str
    threshold: float
    unit: str
    what: str
    enabled: bool = True


# name: (threshold, unit, what it measures). Reasons in docs/operations.md.
DEFAULTS = {
    "psi_cpu": Spec("psi_cpu", 90.0, "%", "share of a 2 s window in which some runnable task waited for a CPU"),
    "psi_memory": Spec("psi_memory", 10.0, "%", "share of a 2 s window in which some task stalled on memory "
                       "(reclaim, swap-in, refaults)"),
    "psi_io": Spec("psi_io", 30.0, "%", "share of a 2 s window in which every non-idle task stalled on I/O (full)"),
    "mem_available": Spec("mem_available", 5.0, "% of MemTotal", "MemAvailable under this share of MemTotal"),
    "load": Spec("load", 4.0, "x CPUs", "1-minute load average over this multiple of the CPU count"),
    "swap_in": Spec("swap_in", 1000.0, "pages/s", "pages swapped in per second"),
    "listen_drops": Spec("listen_drops", 10.0, "/s", "SYNs and connections dropped at a full listen queue "
                         "(TcpExt ListenOverflows + ListenDrops) per second"),
    "tcp_retrans": Spec("tcp_retrans", 5.0, "%", "retransmitted TCP segments as a share of all sent, over at "
                        "least 1000 segments"),
    "kernel_report": Spec("kernel_report", 1.0, "reports", "the kernel reported an OOM kill, a hung task or a lockup"),
    "fs_full": Spec("fs_full", 95.0, "%", "a file system's space or inodes used"),
    "fd_limit": Spec("fd_limit", 90.0, "% of its limit", "a process's open descriptors as a share of its soft "
                     "RLIMIT_NOFILE (checked at each process snapshot)"),
}
DEFAULT_QUIET = 120.0     # s without a firing that end an automatic incident
DEFAULT_MAX_SHARE = 0.25  # of any hour at incident cadence, at most
KERNEL_KINDS = ("oom_kill", "hung_task", "soft_lockup", "hard_lockup")
PSI = (("psi_cpu", "cpu", "some"), ("psi_memory", "memory", "some"), ("psi_io", "io", "full"))


@dataclass
class Config:
    specs: dict = field(default_factory=lambda: {k: Spec(**vars(v)) for k, v in DEFAULTS.items()})
    quiet: float = DEFAULT_QUIET
    max_share: float = DEFAULT_MAX_SHARE
    ring_every: float = DEFAULT_RING_EVERY  # s between two pre-trigger frames (recorder.collect.ring)
    ring_span: float = DEFAULT_RING_SPAN    # s of pre-trigger frames kept; 0: no ring


class ConfigError(ValueError):
    pass


def load_config(path: str | None) -> Config:
    """The defaults, changed by the TOML file at PATH::

        quiet = "2m"          # seconds or a duration
        max_share = 0.25      # of any hour
        ring_every = "15s"    # the pre-trigger ring: a frame every 15 s,
        ring_span = "5m"      # the last 5 minutes kept (0: no ring)
        [psi_cpu]
        threshold = 90
        [load]
        enabled = false
    """
    cfg = Config()
    if path is None:
        return cfg
    import tomllib
    from recorder.units import UnitError, parse_duration
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    for key, v in doc.items():
        if key == "quiet":
            try:
                cfg.quiet = parse_duration(str(v), "quiet", positive=True)
            except UnitError as e:
                raise ConfigError(f"{path}: {e}") from None
        elif key in ("ring_every", "ring_span"):
            try:
                setattr(cfg, key, parse_duration(str(v), key, positive=key == "ring_every"))
            except UnitError as e:
                raise ConfigError(f"{path}: {e}") from None
        elif key == "max_share":
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ConfigError(f"{path}: max_share must be a number from 0 to 1")
            cfg.max_share = float(v)
        elif key in cfg.specs and isinstance(v, dict):
            spec = cfg.specs[key]
            for k2, v2 in v.items():
                if k2 == "threshold" and isinstance(v2, (int, float)) and not isinstance(v2, bool) and v2 >= 0:
                    spec.threshold = float(v2)
                elif k2 == "enabled" and isinstance(v2, bool):
                    spec.enabled = v2
                else:
                    raise ConfigError(f"{path}: [{key}] {k2} = {v2!r}: expected threshold (a number >= 0) "
                                      "or enabled (true/false)")
        else:
            raise ConfigError(f"{path}: unknown setting {key!r} (triggers: {', '.join(cfg.specs)}; "
                              "also quiet, max_share, ring_every, ring_span)")
    return cfg


@dataclass
class Firing:
    time: dt.datetime
    trigger: str
    value: float | None
    threshold: float
    detail: str
    count: int = 1
    suppressed: bool = False

    def reason(self) -> str:
        v = f"{self.value:g}" if self.value is not None else "?"
        return f"{self.trigger} {v} (threshold {self.threshold:g}): {self.detail}"


class Budget:
    """Incident cadence within MAX_SHARE of any hour: the spans of incident cadence of the last
    hour are kept, and :meth:`allows` says whether more may start or go on at NOW."""

    HOUR = 3600.0

    def __init__(self, max_share: float):
        self.max_share = max_share
        self.spans: list[list[float]] = []  # [start, end] of incident cadence, end None while it runs

    def used(self, now: float) -> float:
        since = now - self.HOUR
        self.spans = [s for s in self.spans if (s[1] if s[1] is not None else now) > since]
        return sum((s[1] if s[1] is not None else now) - max(s[0], since) for s in self.spans)

    def allows(self, now: float) -> bool:
        return self.used(now) < self.max_share * self.HOUR

    def start(self, now: float) -> None:
        if not self.spans or self.spans[-1][1] is not None:
            self.spans.append([now, None])

    def end(self, now: float) -> None:
        if self.spans and self.spans[-1][1] is None:
            self.spans[-1][1] = now


class Counters:
    """The cheap host-wide counters and their thresholds: :meth:`check` reads them and returns
    the firings (rates from the previous check)."""

    def __init__(self, fs: P.ProcFS, specs: dict, clock=time.monotonic):
        self.fs = fs
        self.specs = specs
        self.clock = clock
        self.prev: dict | None = None
        self.ncpus = os.cpu_count() or 1

    def _file(self, parse, *parts):
        """A parsed host file, or {} where it is missing, refused or unparsable."""
        try:
            return parse(self.fs.read(*parts))
        except (OSError, ValueError, P.Gone, P.Denied):
            return {}

    def _read(self) -> dict:
        s = self.specs
        out: dict = {"t": self.clock()}
        mi = self._file(P.parse_meminfo, "meminfo")
        out["mem_total"], out["mem_available"] = mi.get("MemTotal"), mi.get("MemAvailable")
        out["load1"] = self._file(P.parse_loadavg, "loadavg").get("load1") if s["load"].enabled else None
        if s["swap_in"].enabled:
            out["pswpin"] = self._file(P.parse_vmstat, "vmstat").get("pswpin")
        if s["listen_drops"].enabled:
            ns = self._file(P.parse_snmp, "net", "netstat")
            if ns:
                out["listen"] = (ns.get(("TcpExt", "ListenOverflows")) or 0) + (ns.get(("TcpExt", "ListenDrops")) or 0)
        if s["tcp_retrans"].enabled:
            sn = self._file(P.parse_snmp, "net", "snmp")
            out["retrans"], out["out"] = sn.get(("Tcp", "RetransSegs")), sn.get(("Tcp", "OutSegs"))
        return out

    def check(self, now: dt.datetime) -> list[Firing]:
        cur = self._read()
        prev, self.prev = self.prev, cur
        s, out = self.specs, []

        def fire(name, value, detail):
            if s[name].enabled and value is not None and value > s[name].threshold:
                out.append(Firing(now, name, round(value, 2), s[name].threshold, detail))

        if cur["mem_total"] and cur["mem_available"] is not None:
            pct = cur["mem_available"] * 100 / cur["mem_total"]
            if s["mem_available"].enabled and pct < s["mem_available"].threshold:
                out.append(Firing(now, "mem_available", round(pct, 2), s["mem_available"].threshold,
                                  f"MemAvailable {cur['mem_available'] >> 20} MiB of {cur['mem_total'] >> 20} MiB"))
        if cur["load1"] is not None:
            fire("load", cur["load1"] / self.ncpus, f"load1 {cur['load1']:g} on {self.ncpus} CPUs")
        if prev is None:
            return out
        dt_s = cur["t"] - prev["t"]
        if dt_s <= 0:
            return out
        if cur.get("pswpin") is not None and prev.get("pswpin") is not None and cur["pswpin"] >= prev["pswpin"]:
            fire("swap_in", (cur["pswpin"] - prev["pswpin"]) / dt_s, "pswpin in /proc/vmstat")
        if cur.get("listen") is not None and prev.get("listen") is not None and cur["listen"] >= prev["listen"]:
            fire("listen_drops", (cur["listen"] - prev["listen"]) / dt_s, "TcpExt ListenOverflows + ListenDrops")
        if None not in (cur.get("retrans"), prev.get("retrans"), cur.get("out"), prev.get("out")):
            r, o = cur["retrans"] - prev["retrans"], cur["out"] - prev["out"]
            if r >= 0 and o >= 0 and r + o >= 1000:
                fire("tcp_retrans", r * 100 / (r + o), f"{r} of {r + o} TCP segments retransmitted")
        return out


class Watcher(Follower):
    """The triggers of one recorder: a thread waits on the PSI triggers and checks the counters;
    the record loop asks :meth:`firings` when it wakes, and takes the ``triggers`` rows with each
    snapshot (the event-source protocol: take, written, unwritten, pressing, stop)."""

    def __init__(self, config: Config, fs: P.ProcFS | None = None, clock=time.monotonic, wall=None):
        self.config = config
        self.fs = fs or P.ProcFS()
        self.clock = clock
        self.wall = wall or (lambda: dt.datetime.now(UTC))
        self.counters = Counters(self.fs, config.specs, clock)
        self.budget = Budget(config.max_share)
        self._lock = threading.Lock()
        self._new: list[Firing] = []  # not yet seen by the record loop
        self._rows: list[Firing] = []  # to be written with the next snapshot
        self._last_row: dict[str, Firing] = {}  # trigger -> its last row (repeats counted into it)
        self._dropped = 0
        self._taken = Taken()
        self._psi: dict[int, tuple[str, str, str]] = {}  # fd -> (trigger, resource, some|full)
        self._psi_total: dict[str, list] = {}  # trigger -> its last (clock, the kernel's stall total) reads
        self.off: dict[str, str] = {}  # trigger -> why it is not armed
        self._fs_due = 0.0
        self._armed_at = 0.0
        self.wake = threading.Event()  # set on a firing: the record loop's sleep notices

    # -- arming ----------------------------------------------------------------
    def arm(self) -> "Watcher":
        for name, res, kind in PSI:
            spec = self.config.specs[name]
            if not spec.enabled:
                continue
            stall = int(PSI_WINDOW_US * min(spec.threshold, 100.0) / 100)
            try:
                fd = os.open(self.fs.path("pressure", res), os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                self.off[name] = f"/proc/pressure/{res}: {e.strerror or e}"
                continue
            try:  # the kernel reads the last byte as the string's end
                os.write(fd, f"{kind} {max(stall, 1)} {PSI_WINDOW_US}\0".encode())
            except OSError as e:
                os.close(fd)
                self.off[name] = f"PSI trigger refused: {e.strerror or e}"
                continue
            self._psi[fd] = (name, res, kind)
            self._psi_sample(name, res, kind)
        self._armed_at = self.clock()
        self.start_thread("procsnap-triggers")
        return self

    def stop(self) -> None:
        self.stop_thread()
        for fd in self._psi:
            os.close(fd)
        self._psi = {}

    def _follow(self) -> None:
        """The thread (Follower's, with its stop pipe): PSI triggers polled for POLLPRI, with a
        timeout for the counters' checks."""
        poll = select.poll()
        for fd in self._psi:
            poll.register(fd, select.POLLPRI)
        poll.register(self._stop_r, select.POLLIN)
        next_check = self.clock()
        while True:
            wait = max(0.0, next_check - self.clock())
            try:
                ready = poll.poll(wait * 1000)
            except InterruptedError:
                continue
            fired: list[Firing] = []
            for fd, ev in ready:
                if fd == self._stop_r:
                    return
                if fd in self._psi and ev & select.POLLPRI:
                    f = self._psi_firing(*self._psi[fd])
                    if f is not None:
                        fired.append(f)
                elif fd in self._psi and ev & (select.POLLERR | select.POLLNVAL):
                    poll.unregister(fd)
                    self.off[self._psi[fd][0]] = "the PSI trigger was closed by the kernel"
            if self.clock() >= next_check:
                next_check = self.clock() + CHECK_EVERY
                fired += self.counters.check(self.wall())
                for name, res, kind in self._psi.values():
                    self._psi_sample(name, res, kind)
                if self.clock() >= self._fs_due:
                    self._fs_due = self.clock() + FS_EVERY
                    fired += self._filesystems()
            if fired:
                self.fire(fired)

    def _psi_sample(self, name: str, res: str, kind: str) -> int | None:
        """Read the resource's stall total (µs) and keep it with the time it was read."""
        try:
            total = P.parse_pressure(self.fs.read("pressure", res))[kind]["total"]
        except (OSError, ValueError, KeyError, P.Gone, P.Denied):
            return None
        samples = self._psi_total.setdefault(name, [])
        samples.append((self.clock(), total))
        del samples[:-4]
        return total

    def _psi_firing(self, name: str, res: str, kind: str) -> Firing | None:
        """The kernel says the stall passed the threshold within a 2 s window. The value is the
        stall's share over the last 2-4.5 s from the kernel's totals (sampled at each check); a
        firing whose share there is under half the threshold cannot hold such a window and is
        not one. Nor is one in the first two windows after arming: the kernel measures a new
        trigger's first windows from a stale total and wakes it whatever the stall."""
        spec = self.config.specs[name]
        now = self.clock()
        if now < self._armed_at + 2 * PSI_WINDOW_US / 1e6 + 0.5:
            self._psi_sample(name, res, kind)
            return None
        base = [x for x in self._psi_total.get(name, ()) if now - 4.5 <= x[0] <= now - 0.05]
        total = self._psi_sample(name, res, kind)
        value = None
        if total is not None and base and total >= base[0][1]:
            value = round(min(100.0, (total - base[0][1]) / ((now - base[0][0]) * 1e4)), 2)
            if value < spec.threshold / 2:
                return None
        return Firing(self.wall(), name, value, spec.threshold, f"{res} {kind}: {DEFAULTS[name].what}")

    def _filesystems(self) -> list[Firing]:
        spec = self.config.specs["fs_full"]
        if not spec.enabled:
            return []
        out = []
        try:
            mounts = self.fs.read("self", "mounts").decode("utf-8", "replace").splitlines()
        except (OSError, P.Gone, P.Denied):
            return []
        seen = set()
        for line in mounts:
            f = line.split()
            if len(f) < 3 or not f[0].startswith("/dev/") or f[1] in seen:
                continue
            seen.add(f[1])
            path = f[1].replace("\\040", " ")
            try:
                st = os.statvfs(path)
            except OSError:
                continue
            for what, total, free in (("space", st.f_blocks, st.f_bavail), ("inodes", st.f_files, st.f_favail)):
                if total:
                    pct = (total - free) * 100 / total
                    if pct > spec.threshold:
                        out.append(Firing(self.wall(), "fs_full", round(pct, 2), spec.threshold,
                                          f"{path} ({f[2]}): {what} used"))
        return out

    # -- what feeds it from the record loop and the kernel log ------------------
    def kernel_report(self, kind: str, fields: dict) -> None:
        """The kernel log's reader parsed a report of KIND (an OOM kill, a hung task, a lockup)."""
        spec = self.config.specs["kernel_report"]
        if spec.enabled and kind in KERNEL_KINDS:
            who = f" of {fields.get('comm')} (pid {fields.get('pid')})" if fields.get("pid") else ""
            self.fire([Firing(self.wall(), "kernel_report", 1.0, spec.threshold, f"{kind}{who}")])

    def saw(self, processes) -> None:
        """A process snapshot (its ``processes`` table, or None): any process over the fd share."""
        spec = self.config.specs["fd_limit"]
        if processes is None or not spec.enabled or processes.num_rows == 0:
            return
        # Python over two columns, not pyarrow.compute: importing it would add ~11 MB to a recorder
        # that lives for days, for a thousand divisions per snapshot.
        fds, lim = processes.column("num_fds").to_pylist(), processes.column("fd_limit").to_pylist()
        over = [(i, f * 100.0 / n) for i, (f, n) in enumerate(zip(fds, lim))
                if f is not None and n and f * 100.0 / n > spec.threshold][:5]
        if not over:
            return
        names, pids = processes.column("name"), processes.column("pid")
        firings = [Firing(self.wall(), "fd_limit", round(share, 2), spec.threshold,
                          f"{names[i].as_py()} (pid {pids[i].as_py()}): {fds[i]} of {lim[i]} fds")
                   for i, share in over]
        self.fire(firings)

    def fire(self, firings: list[Firing]) -> None:
        with self._lock:
            self._new += firings
        self.wake.set()

    # -- the record loop --------------------------------------------------------
    def firings(self, suppress: bool = False) -> list[Firing]:
        """The firings since the last call (marked ``suppressed`` when SUPPRESS: they start no
        incident); each is kept for the ``triggers`` table (a trigger that keeps firing, once every
        REPEAT_EVERY seconds, its repeats counted)."""
        with self._lock:
            new, self._new = self._new, []
            self.wake.clear()
            for f in new:
                f.suppressed = suppress
                last = self._last_row.get(f.trigger)
                if last is not None and (f.time - last.time).total_seconds() < REPEAT_EVERY \
                        and last.suppressed == f.suppressed:
                    last.count += 1
                    if f.value is not None and (last.value is None or f.value > last.value):
                        last.value, last.detail = f.value, f.detail
                    continue
                if len(self._rows) >= CAPACITY:
                    self._dropped += 1
                    continue
                self._rows.append(f)
                self._last_row[f.trigger] = f
        return new

    def pressing(self) -> bool:
        return False

    def take(self, snapshot_id: int, ts: dt.datetime):
        with self._lock:
            rows, self._rows = self._rows, []
            self._last_row = {}
            dropped, self._dropped = self._dropped, 0
        rows, dropped, _ = self._taken.take(rows, dropped, 0)
        meta = {"triggers": self.state()}
        if not rows:
            return None, meta
        from recorder.collect.tables import to_table
        cols = {"time": [], "trigger": [], "value": [], "threshold": [], "detail": [], "firings": [], "suppressed": []}
        for f in rows:
            for k, v in (("time", f.time), ("trigger", f.trigger), ("value", f.value), ("threshold", f.threshold),
                         ("detail", f.detail), ("firings", f.count), ("suppressed", f.suppressed)):
                cols[k].append(v)
        return to_table(TABLE, cols, {"snapshot_id": snapshot_id, "ts": ts}, n=len(rows)), meta

    def state(self) -> str:
        """``snapshots.triggers``: armed, and which could not be and why."""
        return "armed" + (" (off: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.off.items())) + ")"
                          if self.off else "")

    def written(self) -> None:
        self._taken.written()

    def unwritten(self) -> None:
        self._taken.unwritten(CAPACITY)

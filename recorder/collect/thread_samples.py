"""Where threads wait: every PERIOD seconds during an incident (and always with `record
--thread-samples`), the state of every thread, and for each thread in a sampled state (R and D by
default; S too when asked) what it is doing: its wchan, its current system call and that call's
first argument (/proc/PID/task/TID/syscall), and for a D-state thread its kernel stack where the
kernel lets root read it. One ``thread_samples`` row per sampled thread and sample, written with
the next snapshot under its commit rule (the event-source protocol of recorder/collect/events.py).

Nothing of a thread's memory is read: the first argument is a number (a descriptor, an address),
never what it points to, and no command line is stored (rows join `processes` and `threads` on
boot_id, pid, tid and start times).

Syscall names come from the kernel's own table for this architecture (asm/unistd_64.h of the
kernel headers) where the host has it; without it ``syscall`` is NULL and ``syscall_nr`` says.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time

from recorder.collect.events import Taken
from recorder.collect.processes import start_time

UTC = dt.timezone.utc
TABLE = "thread_samples"
PERIOD = 0.5  # s between two samples (the cost per sample is in BENCHMARKS.md)
CAPACITY = 200_000  # sampled rows held between two snapshots; more are counted as dropped
STATES = "RD"
PF_KTHREAD = 0x00200000  # stat's flags: a kernel thread
UNISTD = ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h")
_NR = re.compile(rb"^#define __NR_(\w+)\s+(\d+)\s*$", re.M)


def syscall_names() -> dict[int, str]:
    """nr -> name from the kernel's headers on this host ({} without them)."""
    if os.uname().machine != "x86_64":
        return {}
    for p in UNISTD:
        try:
            with open(p, "rb") as f:
                return {int(n): name.decode() for name, n in _NR.findall(f.read())}
        except OSError:
            continue
    return {}


def parse_syscall(data: bytes) -> tuple[int | None, str | None, str | None]:
    """(nr, first argument in hex, what else) of /proc/PID/task/TID/syscall: 'running' for a
    thread on a CPU in user space, nr -1 for one blocked outside a system call (a page fault)."""
    f = data.split()
    if not f:
        return None, None, None
    if f[0] == b"running":
        return None, None, "running"
    try:
        nr = int(f[0])
    except ValueError:
        return None, None, None
    if nr < 0:
        return nr, None, "not in a system call"
    return nr, f[1].decode("ascii", "replace") if len(f) > 1 else None, None


def _read(path: str, size: int = 4096) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


class Sampler:
    """A sampler thread for a recorder: :meth:`run_while` says when it samples; :meth:`take` gives
    each snapshot its rows (:meth:`written` / :meth:`unwritten` as the other event sources)."""

    def __init__(self, boot_id: str | None, btime: int, root: str = "/proc", period: float = PERIOD,
                 states: str = STATES, capacity: int = CAPACITY, always: bool = False):
        self.boot_id = boot_id
        self.btime = btime
        self.root = root
        self.period = period
        self.states = states.encode()
        self.capacity = capacity
        self.always = always
        self.active = always
        self.names = syscall_names()
        self._cols: dict[str, list] = {k: [] for k in _COLUMNS}
        self._n = 0
        self._samples = 0
        self._dropped = 0
        self._lock = threading.Lock()
        self._taken = Taken()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set while sampling, and to stop: no wake-up while idle
        self._thread: threading.Thread | None = None
        self.me = os.getpid()

    def start(self) -> "Sampler":
        if self.active:
            self._wake.set()
        self._thread = threading.Thread(target=self._run, name="procsnap-samples", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def run_while(self, incident: bool) -> None:
        """The record loop says whether the incident preset runs: the sampler samples then."""
        self.active = self.always or incident
        if self.active:
            self._wake.set()
        else:
            self._wake.clear()

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            if not self.active:
                self._wake.wait()
                nxt = time.monotonic()
                continue
            self.sample()
            nxt += self.period
            wait = nxt - time.monotonic()
            if wait < 0:  # a sample longer than the period: the next one now, not a backlog
                nxt, wait = time.monotonic(), 0
            self._stop.wait(wait)

    def sample(self) -> int:
        """One pass over every thread; returns how many were in a sampled state."""
        when = dt.datetime.now(UTC)
        root, states, names = self.root, self.states, self.names
        rows = []
        try:
            pids = [e.name for e in os.scandir(root) if e.name.isdigit()]
        except OSError:
            return 0
        for pid in pids:
            if int(pid) == self.me:
                continue
            task = f"{root}/{pid}/task"
            try:
                tids = os.listdir(task)
            except OSError:
                continue
            for tid in tids:
                base = f"{task}/{tid}"
                st = _read(base + "/stat", 1024)
                if not st:
                    continue
                close = st.rfind(b")")
                if close < 0 or close + 2 >= len(st):
                    continue
                state = st[close + 2:close + 3]
                if state not in states:
                    continue
                f = st[close + 2:].split()
                try:
                    start = int(f[19])
                    kthread = int(f[6]) & PF_KTHREAD
                except (IndexError, ValueError):
                    start, kthread = None, 0
                comm = st[st.find(b"(") + 1:close]
                wchan = _read(base + "/wchan", 256)
                if kthread:  # the kernel prints 0 for them, which would read as read()
                    nr, arg, what = None, None, "kernel thread"
                else:
                    sc = _read(base + "/syscall", 256)
                    nr, arg, what = parse_syscall(sc) if sc is not None else (None, None, "denied")
                stack = stack_unread = None
                if state == b"D":
                    raw = _read(base + "/stack", 8192)
                    if raw is None:
                        stack_unread = "denied"
                    else:
                        stack = ";".join(line.split(b" ", 1)[-1].split(b"+", 1)[0].decode("ascii", "replace")
                                         for line in raw.splitlines() if line)
                w = wchan.decode("ascii", "replace") if wchan else None
                rows.append((int(pid), int(tid), start, state.decode(), comm, None if w in (None, "0") else w,
                             nr, names.get(nr) if nr is not None and nr >= 0 else None, arg, what, stack,
                             stack_unread))
        with self._lock:
            self._samples += 1
            room = self.capacity - self._n
            if len(rows) > room:
                self._dropped += len(rows) - max(room, 0)
                rows = rows[:max(room, 0)]
            if rows:
                cols = self._cols
                for r in rows:
                    (pid, tid, start, state, comm, wchan, nr, name, arg, what, stack, stack_unread) = r
                    cols["time"].append(when)
                    cols["pid"].append(pid)
                    cols["tid"].append(tid)
                    cols["start_ticks"].append(start)
                    cols["state"].append(state)
                    cols["name"].append(comm.decode("utf-8", "backslashreplace"))
                    cols["wchan"].append(wchan)
                    cols["syscall_nr"].append(nr)
                    cols["syscall"].append(name)
                    cols["arg0"].append(arg)
                    cols["activity"].append(what)
                    cols["stack"].append(stack)
                    cols["stack_unread"].append(stack_unread)
                self._n += len(rows)
        return len(rows)

    # -- the event-source protocol ---------------------------------------------
    def pressing(self) -> bool:
        return self._n >= self.capacity // 2

    def take(self, snapshot_id: int, ts: dt.datetime):
        with self._lock:
            cols, n, self._cols, self._n = self._cols, self._n, {k: [] for k in _COLUMNS}, 0
            samples, self._samples = self._samples, 0
            dropped, self._dropped = self._dropped, 0
        items = [(cols, n)] if n else []
        items, dropped, _ = self._taken.take(items, dropped, 0)
        meta = {"thread_samples": samples, "thread_samples_dropped": dropped}
        if not items:
            return None, meta
        import pyarrow as pa
        from recorder.collect.tables import to_table
        tables = []
        for c, k in items:
            start = c.pop("start_ticks")
            starts = {s: start_time(self.btime, s) for s in set(start) if s is not None}
            c["start_time"] = [starts.get(s) for s in start]
            tables.append(to_table(TABLE, c, {"snapshot_id": snapshot_id, "ts": ts, "boot_id": self.boot_id}, n=k))
            c["start_ticks"] = start
            del c["start_time"]
        return (pa.concat_tables(tables) if len(tables) > 1 else tables[0]), meta

    def written(self) -> None:
        self._taken.written()

    def unwritten(self) -> None:
        self._taken.unwritten(self.capacity, size=lambda items: sum(k for _, k in items),
                              newest=lambda items, n: items[-1:])


_COLUMNS = ("time", "pid", "tid", "start_ticks", "state", "name", "wchan", "syscall_nr", "syscall", "arg0",
            "activity", "stack", "stack_unread")

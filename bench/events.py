"""What process and kernel events cost (issue 20): an always-on `procsnap record`
idle and under a sustained exec load, beside atop's process accounting.

One run, on this host:

1. `procsnap record -o DIR -q` at its defaults starts; once its first snapshot is
   written, it is measured idle over the whole snapshot intervals nearest to
   --idle-minutes (at least one), from half an interval after a slot, so the
   window holds a whole number of slots: CPU (utime+stime of the recorder and
   of any child it reaped, e.g. compaction, from /proc/PID/stat), VmHWM, VmRSS.
2. atop's process accounting starts as Debian's atop package runs it
   (`atopacctd`, which switches the kernel's accounting on into
   /run/pacct_source and copies it to shadow files for atop clients), with an
   atop client writing a raw log at the recorder's interval (`atop -w FILE
   INTERVAL`), as atop's own daemon does.
3. A load generator (this file, --generate: one Python loop, os.posix_spawn,
   paced by the monotonic clock) starts --rate programs a second for --minutes:
   in turn /bin/true, `sh -c 'exit 3'`, /bin/echo with a long argv ending in a
   fake `--password=...` that must reach disk redacted, and /bin/sleep of
   10-200 ms. The recorder is sampled every 10 s (VmRSS); the accounting file
   is read as it grows.
4. When the load ends, the recorder's next snapshot writes the last events;
   then the window closes: extra CPU = its CPU over the window minus the idle
   rate over the same time, per 1,000 execs. The recording is then asked
   (procsnap query) how many of the load's execs and exits it stored, whether
   their argv and exit accounting were read, what was dropped or lost, how
   many snapshots were taken early; and the bytes the event tables
   (process_events, kernel_events) grew by over the window.
5. atop's daemons stop; accounting is off again and its files gone.

Run alone (`python3 bench/events.py --minutes 10 --rate 200 --out F.md --json
F.json`) or from bench/run.py (--events-minutes). --quick checks the harness in
seconds (recorder at -i 2, 2 s idle, 6 s of load at 50 execs/s). Root only.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import issue6  # noqa: E402

# The value of the fake credential in the load's long command line; it must never reach disk.
SECRET = "evbench-S3cret-7f2a91"
SAMPLE_EVERY = 10.0  # seconds between two samples of the recorder's RSS
ACCT_DIR = "/run"  # atopacctd's default top directory, where atop clients look for it
# struct acct_v3 (linux/acct.h): what the kernel appends to the accounting file at each exit
ACCT_V3 = struct.Struct("<BBHIIIIIIf8H16s")
EVENT_TABLES = ("process_events", "kernel_events")


# --------------------------------------------------------------------------
# The load

def generate(rate: float, seconds: float, seed: int = 20) -> dict:
    """Start `rate` short programs a second for `seconds` from this process, reaping them as
    they end; return what was started and how they ended."""
    rnd = random.Random(seed)
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)]
    long_argv = ["/bin/echo"] + [f"--option-{i:02d}=value-{i:04d}-of-a-long-command-line" for i in range(40)] + \
        [f"--password={SECRET}"]
    kinds = ("true", "exit3", "longargv", "sleep")
    started = dict.fromkeys(kinds, 0)
    ended = {"status0": 0, "status3": 0, "other": 0}
    alive = 0

    def reap(block: bool) -> None:
        nonlocal alive
        while alive:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                alive = 0
                return
            if pid == 0:
                return
            alive -= 1
            code = os.waitstatus_to_exitcode(status)
            ended["status0" if code == 0 else "status3" if code == 3 else "other"] += 1

    t0 = time.monotonic()
    end = t0 + seconds
    i = 0
    late_max = 0.0
    while True:
        due = t0 + i / rate
        if due >= end:
            break
        now = time.monotonic()
        if now < due:
            reap(False)
            time.sleep(min(due - now, 0.05))
            continue
        late_max = max(late_max, now - due)
        kind = kinds[i % len(kinds)]
        if kind == "true":
            argv = ["/bin/true"]
        elif kind == "exit3":
            argv = ["/bin/sh", "-c", "exit 3"]
        elif kind == "longargv":
            argv = long_argv
        else:
            argv = ["/bin/sleep", f"{rnd.uniform(0.01, 0.2):.3f}"]
        os.posix_spawn(argv[0], argv, env, file_actions=actions)
        alive += 1
        started[kind] += 1
        i += 1
        reap(False)
    spawn_seconds = time.monotonic() - t0
    reap(True)
    t = os.times()
    return {"pid": os.getpid(), "execs": i, "started": started, "ended": ended, "spawn_seconds": spawn_seconds,
            "achieved_rate": i / spawn_seconds if spawn_seconds else 0.0, "late_max_s": late_max,
            "cpu_self_s": t.user + t.system, "cpu_children_s": t.children_user + t.children_system}


# --------------------------------------------------------------------------
# atop's process accounting

def _pids_named(comm: str) -> set[int]:
    out = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = open(f"/proc/{name}/stat").read()
        except OSError:
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")] == comm and stat.rsplit(")", 1)[1].split()[0] != "Z":
            out.add(int(name))
    return out


class Accounting:
    """atopacctd and an atop client, started and stopped by this run only; the kernel's
    accounting file read as it grows (acct_v3 records: the exits it saw, by parent)."""

    def __init__(self, work: str, interval: float, samples: int, log):
        self.work, self.interval, self.samples, self.log = work, interval, samples, log
        self.source = os.path.join(ACCT_DIR, "pacct_source")
        self.shadow = os.path.join(ACCT_DIR, "pacct_shadow.d")
        self.res: dict = {"how": None}
        self.daemon_pid: int | None = None
        self.client: subprocess.Popen | None = None
        self.offset = 0
        self.bytes = 0
        self.records = 0
        self.truncations = 0
        self.by_ppid: dict[int, int] = {}
        self.created: list[str] = []

    def start(self) -> bool:
        daemon = shutil.which("atopacctd")
        if not daemon:
            self.res["off"] = "atopacctd not installed (Debian: apt-get install atop)"
            return False
        if _pids_named("atopacctd"):
            self.res["off"] = "an atopacctd is already running: not touched"
            return False
        if os.path.exists(self.source) or os.path.exists(self.shadow):
            self.res["off"] = f"{self.source} or {self.shadow} exists already: not touched"
            return False
        self.created = [self.source, self.shadow]
        errpath = os.path.join(self.work, "atopacctd.stderr")
        with open(errpath, "w") as errf:  # the daemon keeps what it inherits open: no pipes
            p = subprocess.run([daemon], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                               timeout=30)
        if p.returncode != 0:
            self.res["off"] = f"atopacctd exited {p.returncode}: {open(errpath).read().strip()[:200]}"
            return False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (_pids_named("atopacctd") and os.path.exists(self.source)):
            time.sleep(0.1)
        pids = _pids_named("atopacctd")
        if len(pids) != 1:
            self.res["off"] = f"atopacctd did not start as one daemon ({len(pids)} found)"
            return False
        self.daemon_pid = pids.pop()
        self.res["how"] = f"`atopacctd` (its default top directory {ACCT_DIR})"
        try:
            self.offset = os.path.getsize(self.source)  # what ended before the window
        except OSError:
            self.offset = 0
        self.cpu0 = issue6.proc_cpu(self.daemon_pid, children=True)
        if shutil.which("atop"):
            self.raw = os.path.join(self.work, "atop.raw")
            self.client_argv = ["atop", "-w", self.raw, f"{self.interval:g}", str(self.samples)]
            self.client = subprocess.Popen(self.client_argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=open(os.path.join(self.work, "atop.stderr"), "w"))
        return True

    def poll(self) -> None:
        """Read the accounting records appended since the last call (atopacctd truncates the
        file now and then: counted, reading starts again at its beginning)."""
        if self.daemon_pid is None:
            return
        try:
            size = os.path.getsize(self.source)
        except OSError:
            return
        if size < self.offset:
            self.truncations += 1
            self.offset = 0
        n = (size - self.offset) // ACCT_V3.size
        if n <= 0:
            return
        with open(self.source, "rb") as f:
            f.seek(self.offset)
            data = f.read(n * ACCT_V3.size)
        for rec in ACCT_V3.iter_unpack(data[:len(data) // ACCT_V3.size * ACCT_V3.size]):
            if rec[1] != 3:  # ac_version
                continue
            self.records += 1
            self.by_ppid[rec[7]] = self.by_ppid.get(rec[7], 0) + 1
        self.offset += len(data)
        self.bytes += len(data)

    def stop(self) -> dict:
        """Stop the client and the daemon (accounting off, its files removed by it); say what
        was left and clean it up."""
        if self.client is not None:
            # its last sample is due about when the load ends: give it that long, then stop it
            deadline = time.monotonic() + self.interval + 30
            # (never Popen.poll: it would reap the client, whose rusage os.wait4 gives below)
            def ended() -> bool:
                return os.waitid(os.P_PID, self.client.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

            while not ended() and time.monotonic() < deadline:
                time.sleep(0.2)
            if not ended():
                self.client.send_signal(signal.SIGTERM)
                self.res["client_stopped"] = "SIGTERM"
            _, status, ru = os.wait4(self.client.pid, 0)  # its rusage: the client alone
            self.client.returncode = os.waitstatus_to_exitcode(status)
            self.res["client_cpu_s"] = ru.ru_utime + ru.ru_stime
            self.res["client_exit"] = self.client.returncode
            self.res["client_argv"] = self.client_argv
            try:
                self.res["raw_bytes"] = os.path.getsize(self.raw)
            except OSError:
                self.res["raw_bytes"] = None
        if self.daemon_pid is not None:
            self.poll()
            try:
                self.res["daemon_cpu_s"] = issue6.proc_cpu(self.daemon_pid, children=True) - self.cpu0
                self.res["daemon_vmhwm"] = issue6.vm_bytes(self.daemon_pid, "VmHWM")
            except OSError:
                pass
            os.kill(self.daemon_pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.daemon_pid in _pids_named("atopacctd"):
                time.sleep(0.1)
            if self.daemon_pid in _pids_named("atopacctd"):
                os.kill(self.daemon_pid, signal.SIGKILL)
                ctypes.CDLL(None, use_errno=True).acct(None)  # its accounting, which it could not switch off
                self.res["note"] = "atopacctd did not stop on SIGTERM: killed, accounting switched off"
            self.daemon_pid = None
        left = [p for p in self.created if os.path.exists(p)]
        for p in left:
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        self.res["left_behind"] = left
        self.res.update(bytes=self.bytes, records=self.records, truncations=self.truncations)
        return self.res


# --------------------------------------------------------------------------
# The recorder

def _snapshot_ids(rec: str) -> list[int]:
    """Snapshot ids written so far (one file per snapshot in the snapshots table until compaction)."""
    out = []
    for dirpath, _, files in os.walk(os.path.join(rec, "snapshots")):
        for f in files:
            stem = f[:-len(".parquet")] if f.endswith(".parquet") else ""
            if stem.isdigit():
                out.append(int(stem))
    return sorted(out)


def _event_bytes(rec: str, lo_us: int, hi_us: int | None = None) -> tuple[int, int]:
    """(bytes, files) of the event tables' files of snapshots lo_us <= id (< hi_us)."""
    total = files = 0
    for table in EVENT_TABLES:
        for dirpath, _, names in os.walk(os.path.join(rec, table)):
            for f in names:
                stem = f[:-len(".parquet")] if f.endswith(".parquet") else ""
                if stem.isdigit() and int(stem) >= lo_us and (hi_us is None or int(stem) < hi_us):
                    total += os.path.getsize(os.path.join(dirpath, f))
                    files += 1
    return total, files


def _query(procsnap: str, env: dict, rec: str, sql: str, rows: bool = False):
    """The first row of a query on the recording as a dict (rows: every row, a list)."""
    q = subprocess.run([procsnap, "query", "--rec", rec, "-f", "json", sql], capture_output=True, text=True, env=env)
    try:
        out = json.loads(q.stdout)
        return out if rows else out[0]
    except (ValueError, IndexError):
        return {"error": (q.stderr or q.stdout).strip()[:300]}


def _wait_until(t: float, recorder: subprocess.Popen, every, step: float = 0.5) -> None:
    while time.monotonic() < t and recorder.poll() is None:
        time.sleep(min(step, max(0.0, t - time.monotonic())))
        every()


def _loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def _processes() -> int:
    return sum(1 for n in os.listdir("/proc") if n.isdigit())


def measure(rt, procsnap: str, env: dict, work: str, minutes: float, rate: float, idle_minutes: float,
            interval: float | None, log, atop: bool = True) -> dict:
    """The whole measurement (see the module's docstring); rt is bench/run.py (its helpers)."""
    res: dict = {"minutes": minutes, "rate": rate, "idle_minutes": idle_minutes, "interval_option": interval}
    if os.geteuid() != 0:
        raise SystemExit("events.py: needs root (the process connector, taskstats and process accounting)")
    cadence = issue6.cadences(issue6.record_defaults(procsnap, env))
    tick = interval or cadence[0]
    res.update(cadence=cadence, tick=tick, cores=os.cpu_count(), kernel=platform.release(),
               processes_before=_processes(), loadavg_before=_loadavg())
    rec = os.path.join(work, "events-rec")
    argv = [procsnap, "record", "-o", rec, "-q"] + (["-i", f"{interval:g}"] if interval else [])
    res["recorder_argv"] = argv
    err = open(os.path.join(work, "events-rec.stderr"), "w+")
    recorder = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=rt.pdeathsig_term)
    acct = Accounting(work, tick, max(2, math.ceil(minutes * 60 / tick) + 1), log) if atop else None
    gen = None
    rss: list[tuple[float, int]] = []
    next_sample = [0.0]

    def sample() -> None:
        now = time.monotonic()
        if now >= next_sample[0]:
            next_sample[0] = now + SAMPLE_EVERY
            try:
                rss.append((now, issue6.vm_bytes(recorder.pid, "VmRSS")))
            except OSError:
                pass
        if acct is not None:
            acct.poll()

    try:
        # Idle: from half an interval after the first snapshot's slot, whole intervals.
        deadline = time.monotonic() + 120
        while not _snapshot_ids(rec):
            if recorder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the recorder wrote no snapshot: exit {recorder.poll()}")
            time.sleep(0.2)
        anchor = time.monotonic() - (time.time() - _snapshot_ids(rec)[0] / 1e6)
        n_idle = max(1, round(idle_minutes * 60 / tick))
        t_i0 = anchor + tick / 2
        while t_i0 < time.monotonic():
            t_i0 += tick
        _wait_until(t_i0, recorder, lambda: None)
        cpu_i0 = issue6.proc_cpu(recorder.pid, children=True)
        ids_i0 = len(_snapshot_ids(rec))
        wall_i0 = time.time()
        log(f"events: idle recorder for {n_idle} × {tick:g} s")
        _wait_until(t_i0 + n_idle * tick, recorder, sample)
        t_i1 = time.monotonic()
        cpu_i1 = issue6.proc_cpu(recorder.pid, children=True)
        wall_i1 = time.time()
        idle_rss = [r for t, r in rss if t >= t_i0]
        res["idle"] = {"seconds": t_i1 - t_i0, "cpu_s": cpu_i1 - cpu_i0, "snapshots": len(_snapshot_ids(rec)) - ids_i0,
                       "vmhwm": issue6.vm_bytes(recorder.pid, "VmHWM"), "rss_end": issue6.vm_bytes(recorder.pid, "VmRSS"),
                       "rss_max": max(idle_rss, default=None),
                       "event_bytes": _event_bytes(rec, int(wall_i0 * 1e6), int(wall_i1 * 1e6))[0]}
        res["idle"]["cpu_per_hour"] = res["idle"]["cpu_s"] / res["idle"]["seconds"] * 3600
        res["idle_window_us"] = (int(wall_i0 * 1e6), int(wall_i1 * 1e6))
        # Load, with atop's process accounting beside it.
        if acct is not None and not acct.start():
            log(f"events: atop's process accounting not measured: {acct.res.get('off')}")
        rss_load0 = len(rss)
        gen = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--generate", "--rate", f"{rate:g}",
                                "--minutes", f"{minutes:g}"], stdout=subprocess.PIPE, text=True,
                               preexec_fn=rt.pdeathsig_term)
        log(f"events: load of {rate:g} execs/s for {minutes * 60:g} s (generator pid {gen.pid})")
        res["loadavg_load_start"] = _loadavg()
        while gen.poll() is None:
            time.sleep(0.1)  # often: atopacctd truncates the accounting file when it has copied it
            sample()
        out = gen.stdout.read()
        res["generator"] = json.loads(out) if gen.returncode == 0 and out.strip() else {"exit": gen.returncode}
        res["loadavg_load_end"] = _loadavg()
        res["processes_load_end"] = _processes()
        # The next snapshot writes the last events; then the window closes.
        t_gen = time.time()
        deadline = time.monotonic() + tick + 120
        while not [i for i in _snapshot_ids(rec) if i / 1e6 > t_gen + 0.5]:
            if recorder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no snapshot after the load: exit {recorder.poll()}")
            time.sleep(0.2)
            sample()
        # its files are complete once its snapshots row is: give its writing a moment to end
        cpu_prev = None
        settle = time.monotonic() + 30
        while time.monotonic() < settle:
            time.sleep(0.5)
            cpu_now = issue6.proc_cpu(recorder.pid, children=True)
            if cpu_now == cpu_prev:
                break
            cpu_prev = cpu_now
        t_l1 = time.monotonic()
        cpu_l1 = cpu_now
        wall_l1 = time.time()
        seconds = t_l1 - t_i1
        load_rss = [r for _, r in rss[rss_load0:]]
        half = len(load_rss) // 2
        ev_bytes, ev_files = _event_bytes(rec, int(wall_i1 * 1e6))
        res["load"] = {"seconds": seconds, "cpu_s": cpu_l1 - cpu_i1, "vmhwm": issue6.vm_bytes(recorder.pid, "VmHWM"),
                       "rss_end": issue6.vm_bytes(recorder.pid, "VmRSS"), "rss_max": max(load_rss, default=None),
                       "rss_max_first_half": max(load_rss[:half], default=None),
                       "rss_max_second_half": max(load_rss[half:], default=None), "rss_samples": load_rss,
                       "event_bytes": ev_bytes, "event_files": ev_files}
        res["load"]["extra_cpu_s"] = res["load"]["cpu_s"] - res["idle"]["cpu_s"] / res["idle"]["seconds"] * seconds
        w0, w1 = int(wall_i1 * 1e6), int(wall_l1 * 1e6)
        res["window_us"] = (w0, w1)
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill()
            gen.wait()
        if acct is not None:
            res["atop"] = acct.stop()
            res["atop"]["by_generator"] = acct.by_ppid.get(res.get("generator", {}).get("pid", -1), 0)
        if recorder.poll() is None:
            recorder.send_signal(signal.SIGTERM)
            try:
                res["recorder_exit"] = recorder.wait(120)
            except subprocess.TimeoutExpired:
                recorder.kill()
                res["recorder_exit"] = recorder.wait()
        else:
            res["recorder_exit"] = recorder.returncode
        err.seek(0)
        res["recorder_stderr"] = err.read(2000)
        err.close()
    gp = res["generator"]["pid"]
    res["snapshots"] = _query(procsnap, env, rec, f"""
        SELECT count(*) AS n, count(*) FILTER (WHERE early = 'events') AS early,
               sum(events_dropped) AS events_dropped, sum(process_events_dropped) AS process_events_dropped,
               sum(process_events_lost) AS process_events_lost, sum(kernel_events_lost) AS kernel_events_lost,
               sum(skipped) AS skipped, max(duration_ms) AS max_duration_ms, median(duration_ms) AS med_duration_ms,
               any_value(process_events) AS process_events, any_value(exit_accounting) AS exit_accounting
        FROM snapshots WHERE snapshot_id > {w0} AND snapshot_id <= {w1}""")
    # An exec is the load's when the last fork of its pid before it came from the generator
    # (pids are reused many times over in a run: the pid alone does not say).
    res["stored"] = _query(procsnap, env, rec, f"""
        WITH ev AS (
          SELECT kind, pid, ppid, cmdline, cmdline_raw, exit_status, utime, snapshot_id,
                 last_value(CASE WHEN kind = 'fork' THEN ppid END IGNORE NULLS)
                   OVER (PARTITION BY pid ORDER BY kernel_ts_ns ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                   AS forked_by
          FROM process_events WHERE kind IN ('fork', 'exec', 'exit'))
        SELECT count(*) FILTER (WHERE kind = 'fork' AND ppid = {gp}) AS forks,
               count(*) FILTER (WHERE kind = 'exec' AND forked_by = {gp}) AS execs,
               count(*) FILTER (WHERE kind = 'exec' AND forked_by = {gp} AND cmdline IS NOT NULL) AS execs_argv,
               count(*) FILTER (WHERE kind = 'exec' AND forked_by = {gp} AND cmdline LIKE '%--password=%')
                 AS execs_password,
               count(*) FILTER (WHERE kind = 'exit' AND ppid = {gp}) AS exits,
               count(*) FILTER (WHERE kind = 'exit' AND ppid = {gp} AND utime IS NOT NULL) AS exits_taskstats,
               count(*) FILTER (WHERE kind = 'exit' AND ppid = {gp} AND exit_status = 3) AS exits_status3,
               count(*) FILTER (WHERE kind = 'exec' AND snapshot_id > {w0} AND snapshot_id <= {w1}) AS host_execs,
               count(*) FILTER (WHERE snapshot_id > {w0} AND snapshot_id <= {w1}) AS host_events,
               count(*) FILTER (WHERE contains(coalesce(cmdline, ''), '{SECRET}')
                                OR contains(coalesce(hex(cmdline_raw), ''), '{SECRET.encode().hex().upper()}'))
                 AS secret_leaks
        FROM ev""")
    # Which of the load's programs lost their argv (gone before /proc/PID was read), by the name
    # their exit gave (taskstats' comm).
    res["argv_by_program"] = _query(procsnap, env, rec, f"""
        WITH ev AS (
          SELECT kind, cmdline, unread,
                 last_value(CASE WHEN kind = 'fork' THEN ppid END IGNORE NULLS)
                   OVER (PARTITION BY pid ORDER BY kernel_ts_ns ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                   AS forked_by,
                 first_value(CASE WHEN kind = 'exit' THEN name END IGNORE NULLS)
                   OVER (PARTITION BY pid ORDER BY kernel_ts_ns ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
                   AS program
          FROM process_events WHERE kind IN ('fork', 'exec', 'exit'))
        SELECT program, count(*) AS execs, count(cmdline) AS argv,
               count(*) FILTER (WHERE unread LIKE '%proc: gone%') AS gone,
               count(*) FILTER (WHERE unread LIKE '%proc: exited%') AS exited
        FROM ev WHERE kind = 'exec' AND forked_by = {gp} GROUP BY program ORDER BY program""", rows=True)
    # What the host itself started while the recorder was idle (other work on the host): events
    # cost the idle recorder too.
    i0, i1 = res["idle_window_us"]
    res["idle_events"] = _query(procsnap, env, rec, f"""
        SELECT count(*) AS events, count(*) FILTER (WHERE kind = 'exec') AS execs FROM process_events
        WHERE snapshot_id > {i0} AND snapshot_id <= {i1}""")
    res["kmsg"] = _query(procsnap, env, rec, f"SELECT count(*) AS n FROM kernel_events "
                                               f"WHERE snapshot_id > {w0} AND snapshot_id <= {w1}")
    res["du"] = rt.du_bytes(rec)
    res["compacted"] = compacted_bytes(rt, procsnap, env, rec)
    log(summary_line(res))
    return res


COMPACT = """
import json, sys
from recorder.store.folder import Store
from recorder.store.compact import compact, delete_covered
store = Store(sys.argv[1])
n = compact(store, 1)
delete_covered(store, 0)
print(json.dumps(n))
"""


def compacted_bytes(rt, procsnap: str, env: dict, rec: str) -> dict:
    """The event tables' bytes before and after the recorder's own compaction of the stopped
    recording (an always-on recorder compacts every --compact-min snapshots)."""
    before = _event_bytes(rec, 0)[0]
    p = subprocess.run([rt.procsnap_python(procsnap), "-c", COMPACT, rec], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return {"before": before, "error": (p.stderr.strip().splitlines() or ["?"])[-1][:300]}
    after = sum(os.path.getsize(os.path.join(d, f)) for t in EVENT_TABLES
                for d, _, names in os.walk(os.path.join(rec, t)) for f in names if f.endswith(".parquet"))
    return {"before": before, "after": after, "snapshots": json.loads(p.stdout)}


def summary_line(res: dict) -> str:
    g, ld, st = res.get("generator", {}), res.get("load", {}), res.get("stored", {})
    execs = g.get("execs") or 0
    per_k = ld.get("extra_cpu_s", float("nan")) / execs * 1000 if execs else float("nan")
    return (f"events: {execs} execs at {g.get('achieved_rate', 0):.1f}/s, extra CPU {per_k:.3f} s per 1,000, "
            f"stored {st.get('execs')} execs, VmHWM {ld.get('vmhwm', -1) / 1e6:.1f} MB")


# --------------------------------------------------------------------------
# The report

def _pct(a, b) -> str:
    return f"{100 * a / b:.2f} %" if a is not None and b else "–"


def _mb(b) -> str:
    return f"{b / 1e6:.1f} MB" if b is not None and b >= 0 else "–"


def figures(res: dict) -> dict:
    """The headline figures, derived once for the Markdown and the JSON."""
    g, ld, idle, st = res["generator"], res["load"], res["idle"], res["stored"]
    execs = g["execs"]
    day = 86400 / ld["seconds"]
    f = {
        "execs": execs,
        "achieved_rate": g["achieved_rate"],
        "extra_cpu_per_1000_execs_s": ld["extra_cpu_s"] / execs * 1000 if execs else None,
        "idle_cpu_per_hour_s": idle["cpu_per_hour"],
        "load_cpu_pct_of_core": 100 * ld["cpu_s"] / ld["seconds"],
        "execs_stored_pct": 100 * st.get("execs", 0) / execs if execs else None,
        "event_bytes_per_day": ld["event_bytes"] * day,
        "event_bytes_per_1000_execs": ld["event_bytes"] / st["host_execs"] * 1000 if st.get("host_execs") else None,
    }
    a = res.get("atop") or {}
    if a.get("records"):
        f["acct_bytes_per_1000_exits"] = a["bytes"] / a["records"] * 1000
        f["acct_bytes_per_day"] = a["bytes"] * day
        f["atopacctd_cpu_per_1000_exits_s"] = a.get("daemon_cpu_s", 0) / a["records"] * 1000
    return f


def reading(res: dict, rt) -> list[str]:
    """What the figures above say, worked out from them (so a change shows here)."""
    g, ld, idle, st, sn = res["generator"], res["load"], res["idle"], res["stored"], res["snapshots"]
    out = ["What they show:\n"]
    hwm = ld["vmhwm"] / 1e6
    first, second = ld.get("rss_max_first_half"), ld.get("rss_max_second_half")
    early = sn.get("early") or 0
    if None not in (first, second, ld.get("rss_max")):  # a run of a few seconds has too few samples
        mem = (f"- **Memory.** Under load the recorder's RSS rises {(ld['rss_max'] - idle['rss_end']) / 1e6:.0f} MB "
               f"over its idle {idle['rss_end'] / 1e6:.0f} MB and stays in a band: its largest 10 s sample is "
               f"{first / 1e6:.1f} MB in the first half of the load and {second / 1e6:.1f} MB in the second, "
               f"{ld['rss_end'] / 1e6:.1f} MB at the end. The buffer between snapshots is emptied by each one, ")
        if early:
            mem += (f"here {early} taken early (one every {ld['seconds'] / (early + 1):.0f} s: a half-full buffer of "
                    "process events, about three per exec, fork, exec and exit), so it is bounded by its capacity, "
                    "not by the run's length. ")
        mem += (f"VmHWM {hwm:.1f} MB is {'over' if hwm > issue6.CONT_RSS_BUDGET else 'within'} the always-on "
                f"recorder's budget of {issue6.CONT_RSS_BUDGET} MB (issue 6, as issue 19 set it).")
        out.append(mem)
    by = res.get("argv_by_program")
    if isinstance(by, list) and by and st.get("execs"):
        sleep = next((r for r in by if r["program"] == "sleep"), None)
        out.append(
            f"- **Argv.** {_pct(st.get('execs_argv'), st.get('execs'))} of the load's execs have their command "
            "line: the recorder reads /proc/PID when the exec event reaches its reader thread, and a program that "
            "ends within a millisecond or so (`true`, `echo`, `sh -c 'exit 3'`) is often reaped by then ('proc: "
            "gone') or a zombie whose command line is empty ('proc: exited')"
            + (f"; `sleep`, which lives 10 ms or more, has it {_pct(sleep['argv'], sleep['execs'])} of the time"
               if sleep else "")
            + ". Its exit row has its name, exit status and taskstats accounting either way, and the fake "
            f"password never reached disk ({st.get('secret_leaks')} rows hold it).")
    if st.get("host_execs"):
        out.append(
            f"- **Bytes.** {rt.fsz(ld['event_bytes'] / st['host_execs'] * 1000)} per 1,000 execs in per-snapshot "
            "files: a fork, an exec with its argv, cwd, exe and cgroup, and an exit with its taskstats, each a "
            "row; the kernel's accounting writes one 64-byte record per exit, without argv.")
    out.append("")
    return out


def section(res: dict, command: str, rt) -> list[str]:
    g, ld, idle, st, sn = res["generator"], res["load"], res["idle"], res["stored"], res["snapshots"]
    f = figures(res)
    res["figures"] = f
    a = res.get("atop") or {}
    mins = ld["seconds"] / 60
    L = ["## Process and kernel events (issue 20)", ""]
    L.append("What the recorder's process events (netlink process connector, taskstats exit records) and kernel "
             "log (/dev/kmsg) cost an always-on `procsnap record` under a sustained exec load, beside atop's "
             "process accounting. Produced by `bench/events.py` (also `bench/run.py --events-minutes N`):\n")
    L += ["```sh", command, "```", ""]
    L.append(f"One `{shlex.join(['procsnap'] + res['recorder_argv'][1:]).replace(res['recorder_argv'][3], 'DIR')}` "
             f"(snapshots every {res['tick']:g} s, descriptors every {res['cadence'][1] or res['tick']:g} s) runs "
             f"throughout. **Idle**: over {idle['seconds']:.0f} s of whole snapshot intervals once its first snapshot "
             f"is written. **Load**: a generator (`bench/events.py --generate`: one Python loop, `os.posix_spawn`, "
             f"paced by the monotonic clock) starts {res['rate']:g} programs a second for {res['minutes']:g} min, in "
             "turn `/bin/true`, `sh -c 'exit 3'`, `/bin/echo` with a 42-word argv ending in a fake "
             "`--password=…`, and `/bin/sleep` of 10–200 ms; the window ends once the recorder's next snapshot "
             f"after the load has written the last events ({ld['seconds']:.0f} s in all). CPU = utime+stime of the "
             "recorder and its reaped children from /proc/PID/stat; **extra CPU** = the window's CPU minus the idle "
             "rate over the same time. RSS sampled every 10 s. Events stored: the recording's `process_events` rows "
             "of the generator's children (an exec counts when the last fork of its pid came from the generator). "
             "Bytes: the `process_events` and `kernel_events` files of the window's snapshots, one file per "
             "snapshot as the recorder writes them (the run is shorter than --compact-min snapshots); then, the "
             "recorder stopped, its own compaction (recorder.store.compact) merges the recording as an always-on "
             "recorder does every --compact-min snapshots, and the ratio of the event files' bytes after to before "
             "gives the compacted figures.\n")
    L.append("| figure | idle | under load |")
    L.append("|---|---:|---:|")
    L.append(f"| window | {idle['seconds']:.0f} s | {ld['seconds']:.0f} s |")
    L.append(f"| snapshots (taken early for a half-full event buffer) | {idle['snapshots']} | "
             f"{sn.get('n')} ({sn.get('early')}) |")
    L.append(f"| recorder CPU | {idle['cpu_s']:.2f} s | {ld['cpu_s']:.2f} s |")
    L.append(f"| recorder CPU per hour | {idle['cpu_per_hour']:.1f} s | {ld['cpu_s'] / ld['seconds'] * 3600:.1f} s |")
    L.append(f"| recorder CPU, % of one core | {100 * idle['cpu_s'] / idle['seconds']:.2f} | "
             f"{f['load_cpu_pct_of_core']:.2f} |")
    L.append(f"| peak RSS (VmHWM) at the window's end | {_mb(idle['vmhwm'])} | **{_mb(ld['vmhwm'])}** |")
    L.append(f"| RSS max / at the end (VmRSS every 10 s) | {_mb(idle['rss_max'])} / {_mb(idle['rss_end'])} | "
             f"{_mb(ld['rss_max'])} / {_mb(ld['rss_end'])} |")
    L.append(f"| RSS max, first / second half of the load | | {_mb(ld['rss_max_first_half'])} / "
             f"{_mb(ld['rss_max_second_half'])} |")
    ie = res.get("idle_events") or {}
    L.append(f"| process events / execs the host stored (other work on it; the load's included) | "
             f"{ie.get('events')} / {ie.get('execs')} | {st.get('host_events')} / {st.get('host_execs')} |")
    L.append(f"| event files written (process_events, kernel_events) | {rt.fsz(idle['event_bytes'])} | "
             f"{rt.fsz(ld['event_bytes'])} |")
    L.append("")
    L.append("| under load | value |")
    L.append("|---|---:|")
    L.append(f"| execs started (asked {res['rate']:g}/s) | {g['execs']} at {g['achieved_rate']:.1f}/s "
             f"(at most {1000 * g['late_max_s']:.0f} ms late) |")
    L.append(f"| **extra recorder CPU per 1,000 execs** | **{f['extra_cpu_per_1000_execs_s']:.3f} s** |")
    if st.get("host_execs"):
        L.append(f"| recorder CPU over the window per 1,000 host-wide execs (no idle subtracted) | "
                 f"{ld['cpu_s'] / st['host_execs'] * 1000:.3f} s |")
    L.append(f"| generator's own CPU / its programs' CPU | {g['cpu_self_s']:.1f} s / {g['cpu_children_s']:.1f} s |")
    L.append(f"| exec events stored / execs started | {st.get('execs')} / {g['execs']} = "
             f"**{_pct(st.get('execs'), g['execs'])}** |")
    L.append(f"| … with argv read at exec | {st.get('execs_argv')} ({_pct(st.get('execs_argv'), st.get('execs'))}) |")
    by = res.get("argv_by_program")
    if isinstance(by, list) and by:
        L.append("| … argv read / unread ('proc: gone' / 'proc: exited'), by program | " + "; ".join(
            f"{r['program']}: {r['argv']} / {r['gone']} / {r['exited']}" for r in by) + " |")
    L.append(f"| fork / exit events stored | {st.get('forks')} / {st.get('exits')} "
             f"({_pct(st.get('exits'), g['execs'])} of started) |")
    L.append(f"| … exits with taskstats accounting | {st.get('exits_taskstats')} "
             f"({_pct(st.get('exits_taskstats'), st.get('exits'))}) |")
    L.append(f"| … exit status 3 (`sh -c 'exit 3'`) stored / started | {st.get('exits_status3')} / "
             f"{g['started']['exit3']} |")
    L.append(f"| fake `--password=` argvs stored / its secret on disk | {st.get('execs_password')} / "
             f"{st.get('secret_leaks')} |")
    L.append(f"| events_dropped / process_events_dropped / process_events_lost / kernel_events_lost | "
             f"{sn.get('events_dropped')} / {sn.get('process_events_dropped')} / {sn.get('process_events_lost')} / "
             f"{sn.get('kernel_events_lost')} |")
    L.append(f"| snapshots skipped / max snapshot duration | {sn.get('skipped')} / {rt.f3((sn.get('max_duration_ms') or 0) / 1000)} s |")
    L.append(f"| kernel log records stored in the window | {res['kmsg'].get('n')} |")
    L.append(f"| **bytes events add per day at this rate** | **{rt.fsz(f['event_bytes_per_day'])}** |")
    L.append(f"| bytes per 1,000 execs (host-wide execs) | {rt.fsz(f['event_bytes_per_1000_execs'])} |")
    c = res.get("compacted") or {}
    if c.get("after"):
        ratio = c["after"] / c["before"]
        L.append(f"| the same once compacted (the whole recording's event files: {rt.fsz(c['before'])} → "
                 f"{rt.fsz(c['after'])}, × {ratio:.2f}) | **{rt.fsz(f['event_bytes_per_day'] * ratio)}** per day, "
                 f"{rt.fsz(f['event_bytes_per_1000_execs'] * ratio) if f['event_bytes_per_1000_execs'] else '–'} "
                 "per 1,000 execs |")
    elif c.get("error"):
        L.append(f"| the same once compacted | not measured: {c['error']} |")
    L.append(f"| recorder exit status after SIGTERM | {res.get('recorder_exit')} |")
    L.append("")
    L += reading(res, rt)
    L.append("### atop's process accounting, same load, same window\n")
    if a.get("how"):
        L.append(f"Started as Debian's atop package does: {a['how']} switches the kernel's process accounting on "
                 "into `pacct_source` and copies each record to shadow files while atop clients run; one client, "
                 f"`{shlex.join(a.get('client_argv', [])).replace(a.get('client_argv', ['', '', ''])[2], 'FILE')}` "
                 "(atop's daemon writes its log the same way; its raw log includes its first sample, of everything since boot), ran over the load. The kernel writes one 64-byte "
                 "acct_v3 record per exit, which the run read as the file grew. Stopped afterwards (SIGTERM: "
                 "accounting off, its files removed"
                 + (f"; left behind and removed: {', '.join(a['left_behind'])}" if a.get("left_behind") else "")
                 + ").\n")
        L.append("| figure | value |")
        L.append("|---|---:|")
        L.append(f"| exit records read by this run (host-wide) / of the load's programs | {a['records']} / "
                 f"{a.get('by_generator')} ({_pct(a.get('by_generator'), g['execs'])} of started) |")
        L.append(f"| accounting file bytes per 1,000 exits | {rt.fsz(f.get('acct_bytes_per_1000_exits'))} |")
        L.append(f"| **accounting file bytes per day at this rate** | **{rt.fsz(f.get('acct_bytes_per_day'))}** |")
        L.append(f"| atopacctd CPU over the window / per 1,000 exits | {a.get('daemon_cpu_s', 0):.2f} s / "
                 f"{f.get('atopacctd_cpu_per_1000_exits_s', 0):.3f} s |")
        L.append(f"| atop client CPU / its raw log | "
                 f"{rt.f3(a.get('client_cpu_s'))} s / {rt.fsz(a.get('raw_bytes'))} |")
        L.append(f"| atop raw log per day at this rate | "
                 f"{rt.fsz(a['raw_bytes'] * 86400 / ld['seconds']) if a.get('raw_bytes') else '–'} |")
        L.append(f"| source file truncated by atopacctd during the window (records appended between this run's "
                 f"last read and a truncation are not counted) | {a.get('truncations')} |")
        L.append("")
    else:
        L.append(f"Not measured: {a.get('off', 'not asked (--no-atop)')}.\n")
    L.append(f"Host: {res['cores']} cores, kernel {res['kernel']}, {res['processes_before']} processes before the run "
             f"({res.get('processes_load_end')} at the load's end); load average before / at the load's start / end: "
             f"{res['loadavg_before']} / {res.get('loadavg_load_start')} / {res.get('loadavg_load_end')} "
             "(other work on the host shows there; CPU figures are per process).\n")
    return L


# --------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, help="minutes of load (default 10; --quick 0.1)")
    p.add_argument("--rate", type=float, help="execs per second (default 200; --quick 50)")
    p.add_argument("--idle-minutes", type=float, help="idle recorder, minutes, rounded to whole snapshot "
                                                      "intervals, at least one (default 3; --quick 2 s)")
    p.add_argument("--interval", type=float, help="the recorder's -i (default: its own; --quick 2)")
    p.add_argument("--quick", action="store_true", help="seconds, not minutes: checks the harness")
    p.add_argument("--no-atop", action="store_true", help="leave atop's process accounting out")
    p.add_argument("--procsnap", help="procsnap executable (default: beside this Python, else on PATH)")
    p.add_argument("--out", help="write the Markdown section here (default: stdout)")
    p.add_argument("--json", help="write every figure here")
    p.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.minutes = 0.1 if args.minutes is None else args.minutes
        args.rate = 50 if args.rate is None else args.rate
        args.idle_minutes = 2 / 60 if args.idle_minutes is None else args.idle_minutes
        args.interval = 2 if args.interval is None else args.interval
    args.minutes = 10 if args.minutes is None else args.minutes
    args.rate = 200 if args.rate is None else args.rate
    args.idle_minutes = 3 if args.idle_minutes is None else args.idle_minutes
    if args.minutes <= 0 or args.rate <= 0 or args.idle_minutes < 0 or (args.interval is not None and args.interval <= 0):
        p.error("--minutes, --rate and --interval must be positive, --idle-minutes not negative")
    if args.generate:
        print(json.dumps(generate(args.rate, args.minutes * 60)))
        return 0
    import tools as rt

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)  # the finally blocks stop what this run started

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    command = shlex.join(["python3", "bench/events.py"] + (sys.argv[1:] if argv is None else list(argv)))
    procsnap = rt.find_procsnap(args.procsnap)
    work = tempfile.mkdtemp(prefix="procsnap-events-")
    try:
        env = rt.procsnap_env(work)
        started = dt.datetime.now(dt.timezone.utc)
        res = measure(rt, procsnap, env, work, args.minutes, args.rate, args.idle_minutes, args.interval, log,
                      atop=not args.no_atop)
        res["command"] = command
        res["started"] = f"{started:%Y-%m-%d %H:%M} UTC"
        text = "\n".join(section(res, command, rt)).rstrip() + "\n"
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1, default=str)
        left = (res.get("atop") or {}).get("left_behind")
        return 1 if left else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

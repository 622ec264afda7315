"""``procsnap top``: what batch-mode ``top -b -n 1`` (procps-ng 4.0) shows, at any moment.

One frame per host: top's five summary lines and its task table with the
default columns (PID USER PR NI VIRT RES SHR S %CPU %MEM TIME+ COMMAND), read
from one snapshot (the live host now, or a recording at ``--at``). Every number
is computed the way top 4.0 computes it:

* ``top - HH:MM:SS up …,  load average: …``: the time of the snapshot (UTC, as
  everywhere in procsnap; top prints local time), uptime, load averages. Top's
  user count (logged-in sessions) is not recorded, so that part is left out;
* ``Tasks:``: processes by state as top counts them (R running; S, D and I
  sleeping; T and t stopped; Z zombie; the total counts every process);
* ``%Cpu(s):``: host CPU time by mode over the interval that ends at the
  snapshot (``system_rates``), as a share of all CPUs;
* ``MiB Mem`` / ``MiB Swap``: from /proc/meminfo as libproc2 4.0 derives them:
  used = MemTotal - MemAvailable, buff/cache = Buffers + Cached + SReclaimable,
  avail Mem = MemAvailable, swap used = SwapTotal - SwapFree;
* the table: VIRT, RES and SHR in KiB (scaled to m, g, … when too wide for the
  column, as top does), PR is the kernel priority (``rt`` for the highest
  real-time priorities), %CPU is the share of one CPU over the interval
  (``process_rates``; a process born during the interval counts all its CPU
  time, as in top), %MEM is RES over MemTotal, TIME+ is user+system CPU time as
  M:SS.hh, COMMAND is the command name, cut with ``+`` to the line width.

Without an earlier snapshot (the first of a recording) there is no interval: the
rates show as top shows an empty interval (0.0 %CPU, 100.0 id), and a note on
stderr says so. Live, two snapshots are taken half a second apart so that the
rates cover that half second.

Sort keys: cpu (default), mem (RES), time (TIME+), pid, io (bytes read + written
to storage per second over the interval; adds an IO/s column, KiB/s), fds (open
descriptors; adds an FDS column), threads, start (start time, latest first) and wait
(the WAIT column's share). Like top, the order is high to low; ``-KEY`` gives low to high.
Ties keep pid order.

Where threads wait: when the recorder sampled the threads over the interval (during an incident,
or always with ``record --thread-samples``: the ``thread_samples`` table), a WAIT column shows,
per process, the state and system call (or activity: running, kernel thread, ...) its threads
were most often found in, and the share of the samples in which one of its threads was so
(``D read 40%``: in 40 % of the samples a thread of it was in D inside read()); ``-`` for a
process none of whose threads was sampled (R and D are sampled by default: a process that only
slept). A ``Waits:`` line under the summary says how many samples the interval holds.
"""
# This package is the command (run) over its parts: loading (a host's frame from a snapshot),
# order (the sort keys) and rendering (top's text, csv and json).

from __future__ import annotations

import json
import shutil
import sys
import time

from analyze.commands.top.loading import load
from analyze.commands.top.order import ordered, parse_sort
from analyze.commands.top.rendering import (COLUMNS, pr_text, record, scale_mem, scale_pcnt, scale_tics, summary, text,
                                            uptime_text)
from analyze.errors import ProcsnapError, UsageError
from analyze.output import escape

FORMATS = ("text", "csv", "json")
LIVE_INTERVAL_S = 0.5

# The parts, as the command's callers and tests reach them.
__all__ = ["COLUMNS", "FORMATS", "pr_text", "run", "scale_mem", "scale_pcnt", "scale_tics", "uptime_text"]


def live_recording(interval: float = LIVE_INTERVAL_S):
    """The live host as a Recording of two snapshots INTERVAL seconds apart (rates need two)."""
    from recorder.collect.collector import Collector

    from analyze.data.db import Recording
    c = Collector(tables=("system", "processes"), redact=False)  # nothing reaches disk
    first = c.snapshot()
    time.sleep(max(0.0, interval - (time.time() - first.ts.timestamp())))
    return Recording.from_snapshots([first, c.snapshot()])


def default_width() -> int:
    """As top -b: $COLUMNS, else the terminal's width, else 80."""
    return shutil.get_terminal_size((80, 24)).columns


def run(recs=None, at=None, hosts=None, n=None, sort="cpu", fmt="text", width=None, out=None, err=None) -> int:
    """`procsnap top`: print the frame of each host; returns the exit status."""
    from analyze.data.damage import LOSSES
    LOSSES.clear()  # what this answer leaves out, not an earlier one's (when run in a process that ran others)
    from analyze.data.damage import LOSSES, json_list, losses_json, write_partial
    from analyze.data.db import lost_at, moments_for, say_moments
    from analyze.errors import PartialError
    from analyze.output import json_value, render, write_guarded
    out = out or sys.stdout
    err = err or sys.stderr
    if fmt not in FORMATS:
        raise UsageError(f"bad format {fmt!r}: use text, csv or json")
    if n is not None and n < 0:
        raise UsageError(f"bad number of rows {n}: must be 0 or more")
    if width is not None and width < 0:
        raise UsageError(f"bad width {width}: must be 0 (no limit) or more")
    key, descending = parse_sort(sort)
    rec, moments = moments_for(recs, at, hosts, "top")
    if rec is None:
        rec = live_recording()
        moments = rec.moment(None)
    frames = []
    for m in moments:
        f = load(rec, m)
        if not f.tasks and recs and lost_at(rec, "processes", m):
            raise PartialError(lost_at(rec, "processes", m))
        if not f.tasks:
            raise ProcsnapError(f"no processes in the snapshot of {m.host} at {m.ts:%Y-%m-%d %H:%M:%S} UTC: "
                                "the recording was made without the processes table")
        frames.append(f)
    if recs:
        say_moments(moments, err)
    for f in frames:
        if f.interval_s is None:
            err.write(f"procsnap: {escape(f.host)}: no snapshot before this one, so no interval for rates: "
                      "%CPU and %Cpu(s) show as top shows an empty interval (0.0, 100.0 id), IO/s blank\n")
        elif f.system is not None and f.cpu is None:
            err.write(f"procsnap: {escape(f.host)}: no CPU counters to compare with the snapshot before (they went "
                      "backwards, or were not recorded): %Cpu(s) shows as an empty interval\n")
        if f.system is None:
            err.write(f"procsnap: {escape(f.host)}: no system row in this snapshot (recorded without the system "
                      "table): only the Tasks line of the summary\n")
    err.flush()
    extra = ((key,) if key in ("io", "fds") else ()) + (("wait",) if any(f.samples for f in frames) else ())
    shown = [ordered(f.tasks, key, descending)[:n] for f in frames]

    def write():
        if fmt == "text":
            w = default_width() if width is None else (width or None)
            # several hosts (a fleet): each host's screen under a line naming it
            label = (lambda f: f"== {escape(f.host)} ==\n") if len(frames) > 1 else (lambda f: "")
            out.write("\n".join(label(f) + text(f, ts, extra, w) for f, ts in zip(frames, shown)))
            write_partial(out, fmt)
        elif fmt == "json":
            docs = [{"summary": summary(f), "processes": [dict(zip(COLUMNS, record(t))) for t in ts]}
                    for f, ts in zip(frames, shown)]
            doc = docs[0] if len(docs) == 1 else docs
            if LOSSES:
                doc = {**doc, "partial": losses_json()} if isinstance(doc, dict) else json_list(doc)
            json.dump(json_value(doc), out, indent=1)
            out.write("\n")
        else:
            several = len(frames) > 1
            cols = (["host"] if several else []) + list(COLUMNS)
            rows = [((f.host,) if several else ()) + record(t) for f, ts in zip(frames, shown) for t in ts]
            render(cols, rows, "csv", out=out)
            write_partial(out, "csv")

    # `procsnap top | head`: when the reader is gone there is nothing more to say.
    write_guarded(out, write)
    return 0

"""Leaks and bottlenecks: a recording turned into a ranked list of findings,
each with its evidence and the SQL that reproduces it.

A finding is data (:class:`Finding`): a category (``leak`` or
``bottleneck``), a kind (``leak.fds``, ``cpu.process``, …), a severity
(critical, warning, info), a one-line title, the host and process it is about,
an evidence dict (timestamps and values) and one SQL statement. The SQL is
parameter-free (the window, the host and the process are written into it) and
runs unchanged under ``procsnap query --rec DIR``; the engine computes each
finding with the very same SQL, narrowed to all processes, so what the
statement prints is what the report says. Everything numeric is computed in
DuckDB.

LEAK RULE. A measure of a process is a time series over the window: its
descriptors (``processes.num_fds``) and, counted from ``open_files``, its
sockets, pipes, regular files, deleted-but-open files and anon inodes
(epoll, eventfd, …); its RSS; its threads; and its TCP sockets in CLOSE_WAIT
(from ``sockets``). The series grows like a leak when all of these hold:

* at least ``LEAK_MIN_SAMPLES`` (8) samples over at least ``LEAK_MIN_SPAN_S``
  (5 s);
* the least-squares line through (epoch(ts), value) rises (``regr_slope`` > 0)
  and fits (``regr_r2`` ≥ ``LEAK_MIN_R2``, 0.8);
* the net growth (last − first) is at least an absolute floor per measure
  (``LEAK_MIN_GROWTH``: 10 descriptors, 8 MiB, 5 threads, 5 CLOSE_WAIT) and
  at least ``LEAK_MIN_RELATIVE`` (10 %) of the first value;
* the growth is spread over the window: at least half of the steps between
  consecutive samples are not decreases, the decreases add up to at most
  ``LEAK_MAX_GIVE_BACK`` (30 %) of the increases, and the largest single step
  is at most ``LEAK_MAX_STEP`` (50 %) of the net growth.

So a steady process (no slope), a sawtooth that allocates and frees (a poor
fit, as much given back as taken) and a one-off step at start-up (one step
is all of the growth) are not leaks.

The same rule runs per process instance (boot id, pid, start time) and per
identity across restarts: the instances of one identity (executable, command
line and cgroup with digits normalised, user: :func:`analyze.commands.diff.identity`)
are pooled with the process's age (ts − start_time) as the x axis, so a
service that leaks and is restarted every few minutes lines up as one rising
line. An identity finding replaces its instances' findings of the same
measure.

Projection: time until exhaustion, from the end of the window at the fitted
rate. Descriptors (and CLOSE_WAIT sockets, which are descriptors) against the
soft fd limit (``processes.fd_limit``): (limit − current fds) / slope. RSS
against the host's memory: current RSS + ``system.mem_available`` at the end
of the window, that is mem_available / slope (cgroup memory limits are not
recorded). Threads have no recorded limit and no projection. A leak projected
to exhaust its limit within ``LEAK_CRITICAL_HOURS`` (24 h) is critical, any
other leak a warning.

BOTTLENECKS (thresholds are the constants below; the recorder itself and
kernel threads are left out of the per-process ones, except D state):

* ``cpu.saturation``: host CPU busy % and run queue against cores (the run
  queue is ``procs_running`` − 1: the recorder is running when it reads it),
  PSI cpu where present. ``cpu.steal`` and ``cpu.iowait``: average share of
  all CPUs. ``cpu.process``: the processes that used the CPU in the window,
  by CPU seconds. Severity follows the share of the host (CPU seconds over
  the window's seconds times the host's cores: ``PROC_HOST_WARN``, 25 %, is a
  warning, ``PROC_HOST_CRIT``, 75 %, critical) and of the process's own life: one
  that kept a whole core busy for all the time it was seen (since its start
  when it started in the window), however short, is at least a warning and
  is listed even when its share of the window is small.
* ``proc.d_state``: a process with a thread in uninterruptible sleep (D) in
  consecutive snapshots.
* ``io.disk`` (per device %util), ``io.pressure`` (PSI io) and ``io.process``
  (storage bytes read and written per process).
* ``memory.pressure``: lowest available memory, swap-in/out pages per
  second, PSI memory, OOM kills.
* ``fd.limit``: a process near its soft fd limit; ``fd.host``: host file
  handles near fs.file-max.
* ``net.listen_queue``: a TCP listener with connections waiting to be
  accepted in consecutive snapshots (the backlog itself is not recorded).
* ``net.ports``: TIME_WAIT sockets and ephemeral ports in use towards one
  destination, against the kernel's default ephemeral range (32768–60999;
  ``ip_local_port_range`` is not recorded).
* ``ctxsw.host`` and ``ctxsw.process``: context-switch storms.

INCIDENTS (category ``incident``, ranked after the bottlenecks): crash loops, OOM kills, fork/exec storms,
processes killed by signals, hung tasks and lockups, from ``process_events`` and
``kernel_events``; their rules and thresholds are documented in :mod:`.events`.

The package, by part: :mod:`.model` (the window, the Finding, severities, ranking and the SQL
helpers of every rule), one module per kind of rule (:mod:`.leaks`, :mod:`.cpu`, :mod:`.io`,
:mod:`.memory`, :mod:`.descriptors`, :mod:`.sockets`, :mod:`.ctxsw`, :mod:`.host`: each says what
it finds and builds its SQL), :mod:`.compute` (a run: the window, its cache, the rules in turn,
the notes), :mod:`.fmt` and :mod:`.text` (text and JSON), :mod:`.html` (the HTML page).
"""

from analyze.commands.report.compute import RULES, denied_note, denied_sql, run, window
from analyze.commands.report.cpu import PROC_CPU_PEGGED, PROC_HOST_CRIT, PROC_HOST_WARN
from analyze.commands.report.leaks import leak_sql
from analyze.commands.report.model import SEVERITIES, Finding, Window, query_rows, rank, ts_sql
from analyze.commands.report.text import as_json, text

__all__ = ["RULES", "PROC_CPU_PEGGED", "PROC_HOST_CRIT", "PROC_HOST_WARN", "SEVERITIES", "Finding", "Window",
           "as_json", "denied_note", "denied_sql", "leak_sql", "query_rows", "rank", "run", "text", "ts_sql", "window"]

"""``procsnap ps``: ps's options, selection and columns, over any moment.

The command line is procps-ng ps's own (4.0), parsed here by hand because it
mixes three syntaxes: UNIX options with a dash that group (``-ef``, ``-eLo
pid,comm``, ``-p1``), BSD options without one (``aux``, ``p 1``, ``k -rss``)
and GNU long options (``--sort=-rss``, ``--pid 1``). The rows come from one
snapshot per host of ``processes`` (and ``threads`` with ``-L``/``-T``): the
live host now, or a recording at ``--at``.

Selection follows ps: ``-e``/``-A`` (or ``ax``) selects every process; the
lists (``-p``, ``-u``, ``-U``, ``-C``, ``-s``, ``-t``, ``--ppid``) are ORed;
without any selection ps lists the caller's processes on the caller's
terminal (same effective uid and tty), ``a`` and ``x`` widen that as in BSD ps,
``-N`` negates and ``r`` keeps running processes. In a recording "the caller"
means nothing, so there a plain ``procsnap ps`` (or ``x``) lists every process.

The columns are ps's (:data:`FIELDS`: the same names, headers, widths and
text) and the listing is laid out the way procps-ng 4.0 lays it out: numbers
right-aligned to the column, text left-aligned, a value too wide for its
column pushing the rest of the line right, names and commands cut to their
column unless they are last, the last column never cut. ``-o`` takes
``FIELD``, ``FIELD=HEADER`` and ``FIELD:WIDTH`` items separated by commas or
spaces and may be repeated; all headers empty means no header line.

What a snapshot cannot give is left out or refused: the STAT flags ``+``
(foreground process group: tpgid is not recorded) and ``L`` (locked pages);
the fields wchan, f/flags, tpgid, the security label, signals, the real and
saved group and user ids other than ruid are refused with a one-line error.
NI shows ``-`` for real-time tasks (a negative kernel priority); a SCHED_IDLE
task, which ps also shows as ``-``, shows its nice value.

``%cpu``: on the live host ps's own definition, CPU time over the time since
the process (thread, with -L) started; in a recording the CPU used between the
previous snapshot and this one, over the time between them (``process_rates``
/ ``thread_rates``), or ps's definition where there is no previous sample (the
recording's first snapshot, a process started in between). ``%mem`` is RSS
over MemTotal. Times (START, STIME, STARTED) are printed in local time, as ps
does; "today" and "the last 24 hours" are counted from the snapshot's time.

``--format csv|json`` gives the same rows for scripts, one key per column
(the field name as given, or NAME of ``FIELD=NAME``), with numbers as numbers
and names and commands in full (control characters escaped by
:mod:`analyze.output`'s rule in CSV, by its encoder in JSON). (ps's ``-f`` is its full format
and ``-F`` its extra-full format, so procsnap's usual ``-f FORMAT`` is not
available here; ``--format FIELDS``, ps's long spelling of ``-o``, still
works for any other value.)

Exit status as ps: 1 when no process is listed, 0 otherwise.
"""
# This package is the command (run) over its parts: values (a row and the text of its values),
# fields (ps's fields), arguments (the command line), loading (rows from a recording or the live
# host), selection (which rows, in which order) and rendering (columns and the listing, csv, json).

from __future__ import annotations

import os
import sys

from analyze.commands.ps.arguments import parse_args
from analyze.commands.ps.loading import build_procs, live_pids, load, load_live, pid_digits_live
from analyze.commands.ps.rendering import Column, columns, field_list, records, text_table
from analyze.commands.ps.selection import me_now, order, select
from analyze.commands.ps.values import (Ctx, Proc, fmt_bsdstart, fmt_bsdtime, fmt_etime, fmt_lstart, fmt_pcpu, fmt_pmem,
                                        fmt_start, fmt_stime, fmt_time, utf8_locale)
from analyze.errors import ProcsnapError, live_only

# The parts, as the command's callers and tests reach them.
__all__ = ["Ctx", "Proc", "build_procs", "columns", "fmt_bsdstart", "fmt_bsdtime", "fmt_etime", "fmt_lstart", "fmt_pcpu",
           "fmt_pmem", "fmt_start", "fmt_stime", "fmt_time", "live_pids", "load", "parse_args", "prepared", "run", "text_table"]


def run(argv: list[str], help_text=None, out=None, err=None) -> int:
    """`procsnap ps ARGS`: print the listing; returns the exit status."""
    from analyze.data.damage import LOSSES
    LOSSES.clear()  # what this answer leaves out, not an earlier one's (when run in a process that ran others)
    out = out or sys.stdout
    err = err or sys.stderr
    o = parse_args(argv)
    if o.help:
        out.write(help_text() if help_text else __doc__)
        out.write("\n")
        return 0
    if o.list_fields:
        out.write(field_list())
        return 0
    from analyze.output import write_guarded
    live = not o.recs
    if live:
        live_only(o.at, o.hosts, "ps")
    else:
        from analyze.data.db import lost_at, moments_for, say_moments
        from analyze.errors import PartialError
        rec, moments = moments_for(o.recs, o.at, o.hosts, "ps", need="threads" if o.threads else None)
    columns(o, 5)  # option conflicts are usage errors, before any reading
    threads = bool(o.threads)
    rows: list[Proc] = []
    if live:
        host, now, rows = load_live(o, threads)
        moments = [host]
    else:
        for m in moments:
            got = load(rec, m, threads, live)
            if not got and lost_at(rec, "processes", m):
                raise PartialError(lost_at(rec, "processes", m))
            if not got:
                raise ProcsnapError(f"no processes in the snapshot of {m.host} at {m.ts:%Y-%m-%d %H:%M:%S} UTC: "
                                    "the recording was made without the processes table")
            rows.extend(got)
        say_moments(moments, err)
    cols, ctx, shown_rows = prepared(rows, o, moments, live)

    def write():
        from analyze.data.damage import write_partial
        if o.fmt == "table":
            text_table(shown_rows, cols, o, ctx, out)
            write_partial(out, o.fmt)
        else:
            from analyze.data.damage import render
            keys, vals = records(shown_rows, cols, ctx)
            render(keys, vals, o.fmt, out=out, header=not (o.fmt == "csv" and o.no_headers))

    write_guarded(out, write)
    return 0 if shown_rows else 1


def prepared(rows: list[Proc], o, moments: list, live: bool) -> tuple[list[Column], Ctx, list[Proc]]:
    """What the listing of ROWS (read at MOMENTS, or live) shows: its columns, the context its
    cells are written in, and the rows the options select, in their order."""
    ctx = Ctx(numeric_users=o.numeric_users, bsd_c=o.bsd_c, utf8=utf8_locale(),
              page_size=os.sysconf("SC_PAGE_SIZE"), live=live,
              user_names={p.uid: p.user for p in rows})
    if live:
        digits = pid_digits_live()
    else:
        # pid_max is not recorded: ps's 5 digits, or as many as the largest id of the snapshot
        digits = max([5] + [len(str(max(p.pid, p.tid, p.ppid, p.pgid, p.sid))) for p in rows])
    cols = columns(o, digits)
    shown_rows = order(select(rows, o, me_now() if live else None), o, ctx)
    if len(moments) > 1:
        from analyze.output import escape
        hw = max([4] + [len(escape(m.host)) for m in moments])
        cols = [Column(None, "HOST", hw, "host")] + cols
    return cols, ctx, shown_rows

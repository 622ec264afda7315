"""``procsnap lsof``: lsof's options, selection and output, over any moment.

The command line is lsof's own (4.95, Linux), parsed here by hand because its
options do not fit an ordinary parser (``+D DIR``, ``-sTCP:LISTEN``, ``-i``
with an optional value, ``-Ki``, grouped flags such as ``-nPi``). The rows
come from ``open_files`` joined with ``processes`` (COMMAND, USER) and, for
network selections, ``sockets``; they are read from one snapshot per host:
the live host now, or a recording at ``--at``.

Selection follows lsof's rules:

* the exclusions (``-p ^PID``, ``-u ^USER``, ``-c ^CMD`` and the TCP states of
  ``-s``) are applied first, whatever else is given;
* then each kind of selection (pids, users, commands, internet addresses,
  unix sockets, fds, names) is one ORed set of its values, and the sets are
  ORed together, or ANDed when ``-a`` is given;
* with no selection at all every file is listed.

A ``-s TCP:...`` state list acts, as in lsof on Linux, on every TCP and UDP
file (an unconnected UDP socket is in state CLOSE, a connected one
ESTABLISHED): inclusions drop the TCP/UDP files in other states, exclusions
drop those in the listed states; other files are not affected, so ``-i`` is
what restricts the listing to network files (``-i -sTCP:LISTEN``).

Names (file and directory arguments, ``+d``, ``+D``) match the recorded NAME
path, which is what a recording can offer; on the live host a file argument
also matches by device and inode. A mount point selects every file on its
file system (``-f`` turns that off), as lsof does: live by the device of the
file system, from a recording by the mount point recorded with each file
(``open_files.mount_point``); a device file is on the mount point its path
lies under.

The listing is lsof's, column for column (COMMAND cut at 9 characters,
names escaped as lsof escapes them); with several hosts a HOST column comes
first. ``-f csv`` and ``-f json`` give the same values under the names of
:data:`COLUMNS` (COMMAND in full, NAME without lsof's escaping; CSV escapes control
characters by :mod:`analyze.output`'s rule, JSON through its encoder).

Exit status as lsof: 1 when a search item was not found: a pid, command,
name, ``-i`` address, ``-s`` state or login name that was asked for, any file
of a ``+d``/``+D`` directory (on the live host; a recording cannot know the
directory's contents, so there: nothing under it listed), and any ``-c ^CMD``
(lsof 4.95 counts those as never found); ``-Q`` ignores them. Nothing listed is
no error by itself. 0 otherwise.
"""
# This package is the command (run) over its parts: arguments (the command line), fields (the
# columns and their text), loading (rows from a recording or the live host), selection (lsof's
# rules) and rendering (the listing, csv, json). Process matching shared with diff lives in
# analyze.commands.matching.

from __future__ import annotations

import sys

from analyze.commands.lsof.arguments import Options, apply_option, parse_args, parse_inet
from analyze.commands.lsof.fields import COLUMNS, JSON_COLUMNS, SOCKET_TYPES, Row, lsof_command, lsof_escape
from analyze.commands.lsof.loading import has_files, inet_ports, known_users, live_plan, live_rows, load, recorded_plan
from analyze.commands.lsof.rendering import records, text_table
from analyze.commands.lsof.selection import resolve_names, select
from analyze.commands.matching import cmd_matches, user_matches
from analyze.errors import ProcsnapError, live_only

# The parts, as the command's callers and tests reach them.
__all__ = ["COLUMNS", "JSON_COLUMNS", "Options", "Row", "apply_option", "cmd_matches", "has_files", "inet_ports",
           "live_plan", "live_rows", "load", "lsof_command", "lsof_escape", "parse_args", "parse_inet", "records",
           "recorded_plan", "resolve_names", "run", "select", "text_table", "user_matches"]


def run(argv: list[str], help_text=None, out=None, err=None) -> int:
    """`procsnap lsof ARGS`: print the listing; returns the exit status."""
    from analyze.data.damage import LOSSES
    LOSSES.clear()  # what this answer leaves out, not an earlier one's (when run in a process that ran others)
    out = out or sys.stdout
    err = err or sys.stderr
    o = parse_args(argv)
    if o.help:
        out.write(help_text() if help_text else __doc__)
        out.write("\n")
        return 0
    if o.recs:
        from analyze.data.db import lost_at, moments_for, say_moments
        rec, moments = moments_for(o.recs, o.at, o.hosts, "lsof")
    else:
        live_only(o.at, o.hosts, "lsof")
        rec = moments = None
    warned = []

    def warn(msg):
        warned.append(msg)
        if not o.ignore_missing:
            err.write(f"procsnap: {msg}\n")

    if rec is not None:
        rows = load(rec, moments, o)
        lost = [why for m in moments if (why := lost_at(rec, "open_files", m))]
        if not rows and lost and not has_files(rec, moments):
            from analyze.errors import PartialError
            raise PartialError(lost[0])
        if not rows and not has_files(rec, moments):
            raise ProcsnapError("no open files in the snapshot" + ("s" if len(moments) > 1 else "")
                                + " used: the recording was made without the open_files table")
        say_moments(moments, err)
        resolve_names(o, live=False, warn=warn)
        if any(not u.isdigit() for u in o.users):
            o.known_users = known_users(rec, moments)
    else:
        resolve_names(o, live=True, warn=warn)
        rows = live_rows(o)
    if rec is not None and any(n.mount for n in o.names) and rows and all(r.mount_point is None for r in rows
                                                                          if r.type not in SOCKET_TYPES):
        err.write("procsnap: the recording has no mount points (an older procsnap made it): "
                  "file arguments select by name only\n")
    res = select(rows, o)

    from analyze.data.damage import LOSSES, render, write_partial

    def write():
        if o.terse:
            seen = set()
            for r in res.rows:
                if (r.host, r.pid) not in seen:
                    seen.add((r.host, r.pid))
                    out.write(f"{r.pid}\n")
        elif res.rows:
            if o.fmt in (None, "table"):
                text_table(res.rows, o, out)
                write_partial(out, "table")
            else:
                cols, vals = records(res.rows, o)
                render(cols, vals, o.fmt, out=out)
        elif o.fmt == "json":  # nothing found: still a JSON document ([], or what could not be read)
            render(list(records([], o)[0]), [], o.fmt, out=out)
        elif LOSSES:
            write_partial(out, o.fmt or "table")

    # `procsnap lsof | head`: when the reader is gone there is nothing more to say.
    from analyze.output import write_guarded
    write_guarded(out, write)
    if o.ignore_missing:
        return 0
    return 1 if (res.missing or warned) else 0

"""lsof's output: the listing (lsof's table, column for column) and the csv/json records."""

from __future__ import annotations

from analyze.commands.lsof.arguments import Options
from analyze.commands.lsof.fields import COLUMNS, JSON_COLUMNS, Row, fd_text, lsof_command, lsof_escape, node, size_off, socket_fields, udp_blank

def text_table(rows: list[Row], o: Options, out) -> None:
    """lsof's listing: COMMAND and NAME left-aligned, the other columns right-aligned."""
    hosts = len({r.host for r in rows}) > 1
    size_title = "SIZE" if o.size_only else "SIZE/OFF"
    from analyze.output import escape  # every column: user, mode, type, device, ... come from the recording
    cells = []
    for r in rows:
        cells.append(tuple(map(escape, (
            r.host,
            lsof_command(r.command, r.command_raw, o.cmd_width),
            str(r.pid),
            str(r.uid) if o.uid_numbers and r.uid is not None else r.user,
            fd_text(r),
            r.mode or " ",
            r.type,
            r.device or "",
            size_off(r, o.size_only),
            node(r),
            lsof_escape(r.name, r.name_raw) + udp_blank(r),
        ))))
    head = ("HOST", "COMMAND", "PID", "USER", "FD", " ", "TYPE", "DEVICE", size_title, "NODE", "NAME")
    w = [max([len(head[i])] + [len(c[i]) for c in cells]) for i in range(len(head))]
    if o.uid_numbers:
        w[3] = max(w[3], 8)  # lsof's -l USER column

    def line(c):
        parts = [c[1].ljust(w[1]), c[2].rjust(w[2]), c[3].rjust(w[3]),
                 c[4].rjust(w[4]) + c[5] + " ", c[6].rjust(w[6]), c[7].rjust(w[7]), c[8].rjust(w[8]),
                 c[9].rjust(w[9]), c[10]]
        if hosts:
            parts.insert(0, c[0].ljust(w[0]))
        return " ".join(parts)

    out.write(line(head) + "\n")
    for c in cells:
        out.write(line(c) + "\n")


def records(rows: list[Row], o: Options) -> tuple[list[str], list[tuple]]:
    """The csv/json columns: the same text as the listing (COMMAND in full, NAME without lsof's
    escaping); json adds JSON_COLUMNS."""
    hosts = len({r.host for r in rows}) > 1
    typed = o.fmt == "json"
    cols = (["host"] if hosts else []) + list(COLUMNS) + (list(JSON_COLUMNS) if typed else [])
    out = []
    for r in rows:
        v = (r.command, r.pid, str(r.uid) if o.uid_numbers and r.uid is not None else r.user,
             r.fd + (r.mode or ""), r.type, r.device or "", size_off(r, o.size_only), node(r), r.name)
        out.append(((r.host,) if hosts else ()) + v + (socket_fields(r) if typed else ()))
    return cols, out

"""ps's columns and output: the columns a command line asks for (-o, -f, -l, u, ...), the
listing laid out as procps-ng 4.0 lays it out, the csv/json records and the field list."""

from __future__ import annotations

from dataclasses import dataclass

from analyze.commands.ps.arguments import Options, Spec
from analyze.commands.ps.fields import BSD_U, FIELDS, Field
from analyze.commands.ps.values import LINE_MAX, Ctx, Proc, wcwidth
from analyze.errors import UsageError


@dataclass
class Column:
    field: Field | None        # None: the HOST column of a fleet
    head: str
    width: int
    key: str

    @property
    def just(self) -> str:
        return "L" if self.field is None else self.field.just


def _column(spec: Spec, pid_digits: int) -> Column:
    f = spec.field
    w = max(pid_digits, len(f.head)) if f.pidmax else f.width
    head = f.head
    if spec.header is not None:
        head = spec.header
        w = max(w, len(head))
    if spec.width is not None:
        w = spec.width
    return Column(f, head, w, spec.name)


def _specs(names: str) -> list[Spec]:
    return [Spec(FIELDS[n], n) for n in names.split(",")]


def sysv_list(o: Options) -> list[str]:
    """procps's generate_sysv_list: the default columns for -f, -F, -j, -L, -T, -P and BSD defaults."""
    f = "f" in o.format_flags
    F = "F" in o.modifiers
    L = "L" in o.threads
    out: list[str] = []
    push = lambda s: out.insert(0, s)  # noqa: E731 (the C code builds its list backwards)
    if o.prefer_bsd:
        push("cmd" if o.format_flags else "args")
        push("bsdtime")
        push("stat")
    else:
        push("cmd" if f else "ucmd")
        push("time")
    push("tname")
    if f:
        push("stime")
    if F:
        if "P" not in o.modifiers:
            push("psr")
        push("rss")
        push("sz")
    if L and f:
        push("nlwp")
    if f:
        push("c")
    if "P" in o.modifiers:
        push("psr")
    if L:
        push("lwp")
    if "j" in o.modifiers:
        push("sid")
        push("pgid")
    if f:
        push("ppid")
    if "T" in o.threads:
        push("spid")
    push("pid")
    if f:
        push("uid_hack")
    return out


def columns(o: Options, pid_digits: int) -> list[Column]:
    """The columns to print, as procps's process_sf_options chooses them."""
    if o.user_fmt:
        if o.format_flags:
            raise UsageError("conflicting format options (-o with -f, -F or u)")
        if o.modifiers:
            raise UsageError("can not use output modifiers (-F, -j, -P) with user-defined output")
        return [_column(s, pid_digits) for s in o.user_fmt]
    if not o.format_flags or o.format_flags == {"f"}:
        return [_column(s, pid_digits) for s in _specs(",".join(sysv_list(o)))]
    if o.format_flags != {"u"}:
        raise UsageError("conflicting format options (-f or -F with u)")
    cols = [_column(s, pid_digits) for s in _specs(BSD_U)]

    def add_after(heads: tuple[str, ...], name: str) -> bool:
        for h in heads:
            for n, c in enumerate(cols):
                if c.head == h:
                    cols.insert(n + 1, _column(Spec(FIELDS[name], name), pid_digits))
                    return True
        return False

    if "j" in o.modifiers:
        add_after(("PPID", "PID"), "pgid")
        add_after(("PGID",), "sid")
    if "P" in o.modifiers:
        raise UsageError("-P goes with the SysV formats (-f, -F), not with u")
    if "T" in o.threads:
        add_after(("PID",), "spid")
    if "L" in o.threads:
        add_after(("SID", "SESS", "PGID", "PGRP", "PPID", "PID"), "lwp")
        add_after(("%CPU",), "nlwp")
    return cols


def cell(col: Column, p: Proc, ctx: Ctx, last: bool) -> str:
    from analyze.output import escape  # every column: user, tty, stat, ... come from the recording
    if col.field is None:
        return escape(p.host)
    t = escape(col.field.text(p, ctx))
    if not last:
        if col.just == "U":
            t = t[:col.width]
        elif col.just == "N" and not ctx.numeric_users and len(t) > col.width:
            t = t[:col.width - 1] + "+" if col.width > 1 else str(p.uid)
    return t


def _cap(s: str, cells: int) -> str:
    """s cut as procps's escape cuts a value into its 128 KiB buffer and the cells left on the line:
    ASCII may fill the buffer but one byte, a multibyte character must end a byte short of that, and
    no character may run past the line's last cell."""
    limit = LINE_MAX - 1
    if len(s) * 4 < min(limit, cells):
        return s
    used = width = 0
    for n, ch in enumerate(s):
        o = ord(ch)
        if o < 0x80:
            if used + 1 > limit or width + 1 > cells:
                return s[:n]
            used += 1
            width += 1
        else:
            size = len(ch.encode("utf-8", "surrogateescape"))
            w = max(wcwidth()(o), 0)
            if used + size > limit - 1 or width + w > cells:
                return s[:n]
            used += size
            width += w
    return s


def _line(cols: list[Column], cells: list[str], ctx: Ctx) -> str:
    """A row laid out, its last value cut where ps's line buffer ends."""
    line = layout(cols, cells, ctx)
    if len(line) * 4 < LINE_MAX:
        return line
    start = len(line) - len(cells[-1])
    return line[:start] + _cap(cells[-1], LINE_MAX - start)


def layout(cols: list[Column], cells: list[str], ctx: Ctx) -> str:
    """procps's show_one_proc: each value right- or left-aligned in its column; a value wider than
    its column pushes the rest of the line right until the padding of later columns absorbs it."""
    correct = actual = 0
    dospace = 0
    parts = []
    for n, (c, v) in enumerate(zip(cols, cells)):
        amount = len(v)
        right = c.just == "R" or (c.just == "N" and ctx.numeric_users)
        leftpad = max(c.width - amount, 0) if right else 0
        space = correct - actual + leftpad
        if space < 1:
            space = dospace
        space = min(space, 144)
        parts.append(" " * space + v)
        actual += space + amount
        correct += c.width + 1
        dospace = 1
    return "".join(parts)


def text_table(rows: list[Proc], cols: list[Column], o: Options, ctx: Ctx, out) -> None:
    last = len(cols) - 1
    if not o.no_headers and any(c.head for c in cols):
        out.write(layout(cols, [c.head for c in cols], ctx) + "\n")
    for p in rows:
        out.write(_line(cols, [cell(c, p, ctx, n == last) for n, c in enumerate(cols)], ctx) + "\n")


def records(rows: list[Proc], cols: list[Column], ctx: Ctx) -> tuple[list[str], list[tuple]]:
    keys = [c.key for c in cols]
    vals = [tuple(p.host if c.field is None else c.field.val(p, ctx) for c in cols) for p in rows]
    return keys, vals


def field_list() -> str:
    """`ps L`: the fields, with their headers."""
    return "".join(f"{f.spec:<12.12} {f.head:<8.8}\n" for f in sorted(FIELDS.values(), key=lambda f: f.spec))

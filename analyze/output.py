"""Rendering result rows: an aligned text table, CSV or JSON; and the one rule for
every text a recording or the host supplies on its way to a terminal.

Host names, file names, users, ttys, command names and lines, reasons of damaged files: a
shared recording or a hostile process controls them, and printed raw they could move the
cursor, clear the screen, retitle the window, forge a line (ESC, CSI, CR, a newline) or
make text display other than it is (bidi overrides). :func:`escape` prints them escaped,
the way lsof prints names, so that one row is always one line and what is shown is what
is there:

* C0 controls and DEL: ``\\t``, ``\\n``, ``\\r``, else ``\\xNN``;
* a byte that is not UTF-8 (decoded as a lone surrogate, or read as bytes): ``\\xNN``;
* C1 controls (U+0080-U+009F, e.g. U+009B, the one-byte CSI), format characters (Unicode
  category Cf: bidi embeddings, overrides and isolates, zero-width characters, the soft
  hyphen, the BOM, tags), the line and paragraph separators and other lone surrogates:
  ``\\uNNNN`` (``\\UNNNNNNNN`` above U+FFFF).

A backslash itself is printed as it is (as lsof does). Every other character, whatever
its script, is printed as it is. The table and CSV formats escape every text cell; JSON
escapes through its encoder (ASCII only: ``\\u001b``, ``\\u202e``). A CSV text cell that
a spreadsheet would take for a formula is neutralised (:func:`csv_cell`). Messages on
stderr and the text commands escape each value they name, and :func:`terminal_guard`
escapes whatever else is written to stdout and stderr, so that a place that forgot
cannot let a control character through (only its newlines stay raw there).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import math
import re
import sys
from decimal import Decimal

from recorder.textsafe import escape, escape_lines  # noqa: F401 - the rule lives with the recorder, which prints names too

FORMATS = ("table", "csv", "json")

class _Guarded:
    """A text stream whose every write goes through escape_lines()."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, s: str) -> int:
        self._stream.write(escape_lines(s))
        return len(s)

    def writelines(self, lines) -> None:
        for s in lines:
            self.write(s)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding, ...: the stream's own
        return getattr(self._stream, name)


@contextlib.contextmanager
def terminal_guard():
    """While inside, sys.stdout and sys.stderr escape every control character written to them
    (newlines excepted): the last line of defence behind escape() at each value."""
    saved = sys.stdout, sys.stderr
    if sys.stdout is not None and not isinstance(sys.stdout, _Guarded):  # None: started with it closed
        sys.stdout = _Guarded(sys.stdout)
    if sys.stderr is not None and not isinstance(sys.stderr, _Guarded):
        sys.stderr = _Guarded(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _bytes_text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def cell(v, *, table: bool) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.2f}" if table else repr(v)
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc)
        s = v.strftime("%Y-%m-%d %H:%M:%S")
        if v.microsecond and table:
            s += f".{v.microsecond // 1000:03d}"
        elif v.microsecond:
            s += f".{v.microsecond:06d}"
        return s
    if isinstance(v, (bytes, bytearray, memoryview)):
        return escape(_bytes_text(bytes(v)))
    if isinstance(v, str):
        return escape(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(cell(x, table=table) for x in v) + "]"
    return str(v)


def json_value(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _bytes_text(bytes(v))
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    return str(v)




# A cell a spreadsheet reads as a number (-1, +2.5, -1e3), or a lone sign (ps's "-" for none):
# nothing to compute, left as it is.
_NUMBER = re.compile(r"[+-]|[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(v) -> str:
    """A CSV cell: cell()'s text (escaped), and a text that a spreadsheet would take for a
    formula (starting with = + - or @, OWASP's rule; a tab or CR is escaped before, so
    never first) prefixed with a single quote, so that it stays text. A number value, a text
    that is a plain number, or a lone - or + is left as it is."""
    s = cell(v, table=False)
    if s[:1] in ("=", "+", "-", "@") and not _is_number(v) and not _NUMBER.fullmatch(s):
        return "'" + s
    return s


def _is_number(v) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def render(columns: list[str], rows: list[tuple], fmt: str, out=None, header: bool = True) -> None:
    """Rows in FMT; header=False leaves out CSV's header line."""
    out = out or sys.stdout
    if fmt == "json":
        json.dump([{c: json_value(v) for c, v in zip(columns, r)} for r in rows], out, indent=1)
        out.write("\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        if header:
            w.writerow([csv_cell(c) for c in columns])
        for r in rows:
            w.writerow([csv_cell(v) for v in r])
    else:
        cells = [[cell(v, table=True) for v in r] for r in rows]
        numeric = [all(_is_number(r[i]) or r[i] is None for r in rows) and any(_is_number(r[i]) for r in rows)
                   for i in range(len(columns))]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

        def line(vals):
            parts = []
            for i, v in enumerate(vals):
                last = i == len(vals) - 1
                if numeric[i]:
                    parts.append(v.rjust(widths[i]))
                else:
                    parts.append(v if last else v.ljust(widths[i]))
            return "  ".join(parts).rstrip()

        out.write(line([escape(c) for c in columns]) + "\n")
        for r in cells:
            out.write(line(r) + "\n")


def default_format(stream=None) -> str:
    stream = stream or sys.stdout
    return "table" if stream.isatty() else "csv"


def write_guarded(out, write) -> None:
    """Call write() and flush; when the reader has gone (`| head`), stop quietly."""
    import os
    try:
        write()
        out.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError, AttributeError):
            pass

"""Rendering result rows: an aligned text table, CSV or JSON.

The one rule for names and paths: control characters and bytes that are not
valid UTF-8 are printed escaped, the way lsof prints them (``\\n``, ``\\t``,
``\\xNN``), so one row is always one line.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import sys
from decimal import Decimal

FORMATS = ("table", "csv", "json")

_CTRL = {i: f"\\x{i:02x}" for i in range(32)}
_CTRL.update({9: "\\t", 10: "\\n", 13: "\\r", 127: "\\x7f"})


def escape(s: str) -> str:
    return s.translate(_CTRL)


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
        return escape(v) if table else v
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(cell(x, table=table) for x in v) + "]"
    return str(v)


def _json_value(v):
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
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return str(v)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def render(columns: list[str], rows: list[tuple], fmt: str, out=None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        json.dump([{c: _json_value(v) for c, v in zip(columns, r)} for r in rows], out, indent=1)
        out.write("\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([cell(v, table=False) for v in r])
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

        out.write(line(columns) + "\n")
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

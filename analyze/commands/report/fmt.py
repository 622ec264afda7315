"""Numbers as the report's titles and text show them."""

from __future__ import annotations

import datetime as dt

from analyze.commands.report.model import finite


def fmt_bytes(n) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"

def fmt_growth(measure: str, v) -> str:
    v = v or 0
    sign = "+" if v >= 0 else "-"
    return sign + (fmt_bytes(abs(v)) if measure == "rss" else f"{abs(v):,.0f}")

def fmt_rate(measure: str, per_hour) -> str:
    per_hour = finite(per_hour) or 0
    return fmt_bytes(per_hour) if measure == "rss" else f"{per_hour:,.0f}"

def fmt_secs(d) -> str:
    s = d.total_seconds() if isinstance(d, dt.timedelta) else float(d)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"

def fmt_hours(h: float) -> str:
    return fmt_secs(h * 3600)

def fmt_val(measure: str, v) -> str:
    if v is None:
        return "-"
    return fmt_bytes(v) if measure == "rss" else f"{v:,.0f}"

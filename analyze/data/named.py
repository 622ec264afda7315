"""Named queries: ``queries/<name>.sql``, each opening with a header comment::

    -- title: One line that says what it answers
    -- description: A sentence or two more (optional, may repeat).
    -- param: NAME TYPE [= DEFAULT] What the parameter means

TYPE is ``time`` (anything ``--at`` accepts, resolved against the recording; one
named ``end`` or ``at`` stands for the last instant it covers, so ``end=03:20``
takes in 03:20:59, any other its first; ``start`` after ``end`` is a usage error),
``int``, ``float``, ``duration`` (seconds; ``5m`` works) or ``text``. A
parameter without a default is required. In the SQL a parameter is ``$NAME``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from analyze.errors import ProcsnapError, UsageError
from analyze.data.timespec import check_window, parse_duration

QUERY_TYPES = ("time", "int", "float", "duration", "text")
_PARAM = re.compile(r"(\w+)\s+(\w+)(?:\s*=\s*(\S+))?\s*(.*)")


def queries_dir() -> Path:
    env = os.environ.get("PROCSNAP_QUERIES")
    if env:
        return Path(env)
    # analyze/queries: in a checkout a link to the project's queries/ folder, installed (pip
    # install .) the package data copied from it
    return Path(__file__).resolve().parent.parent / "queries"


@dataclass
class Param:
    name: str
    type: str
    default: str | None
    description: str


@dataclass
class NamedQuery:
    name: str
    path: Path
    title: str
    description: str
    params: list[Param] = field(default_factory=list)
    sql: str = ""


def parse_query(path: Path) -> NamedQuery:
    text = path.read_text()
    q = NamedQuery(path.stem, path, "", "", [], text)
    desc = []
    for line in text.splitlines():
        if not line.startswith("--"):
            if line.strip():
                break
            continue
        body = line[2:].strip()
        key, sep, val = body.partition(":")
        key = key.strip().lower()
        if not sep:
            continue
        val = val.strip()
        if key == "title":
            q.title = val
        elif key == "description":
            desc.append(val)
        elif key == "param":
            m = _PARAM.fullmatch(val)
            if not m or m.group(2).lower() not in QUERY_TYPES:
                raise ProcsnapError(f"{path}: bad param line {line!r}")
            q.params.append(Param(m.group(1), m.group(2).lower(), m.group(3), m.group(4)))
    q.description = " ".join(desc)
    if not q.title:
        raise ProcsnapError(f"{path}: no '-- title:' header")
    return q


def all_queries() -> list[NamedQuery]:
    d = queries_dir()
    return [parse_query(p) for p in sorted(d.glob("*.sql"))]


def get_query(name: str) -> NamedQuery:
    if not name.strip():
        raise UsageError("--name needs a query name; `procsnap queries` lists them")
    if not re.fullmatch(r"[\w-]+", name):
        raise UsageError(f"unknown query {name!r}; `procsnap queries` lists them")
    p = queries_dir() / f"{name}.sql"
    if not p.is_file():
        names = ", ".join(q.path.stem for q in all_queries())
        raise UsageError(f"unknown query {name!r}; known: {names}")
    return parse_query(p)


def parse_params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise UsageError(f"bad parameter {p!r}: use -p KEY=VALUE")
        out[k.strip()] = v
    return out


def bind(q: NamedQuery, given: dict[str, str], rec) -> dict:
    """Typed values for the query's parameters, defaults filled in."""
    known = {p.name for p in q.params}
    for k in given:
        if k not in known:
            raise UsageError(f"query {q.name!r} has no parameter {k!r}"
                             + (f"; it takes {', '.join(sorted(known))}" if known else "; it takes none"))
    out = {}
    for p in q.params:
        raw = given.get(p.name, p.default)
        if raw is None:
            raise UsageError(f"query {q.name!r} needs -p {p.name}=… ({p.description})")
        try:
            if p.type == "time":
                out[p.name] = rec.resolve_time(raw, last=p.name in ("end", "at"))
            elif p.type == "int":
                out[p.name] = int(raw)
                if not -(1 << 63) <= out[p.name] < 1 << 63:
                    raise ValueError
            elif p.type == "float":
                out[p.name] = float(raw)
                if not math.isfinite(out[p.name]):
                    raise ValueError
            elif p.type == "duration":
                out[p.name] = parse_duration(raw, f"value for {p.name}")
            else:
                out[p.name] = raw
        except ValueError:
            raise UsageError(f"bad value {raw!r} for {p.name} (a {p.type})") from None
    times = {p.name for p in q.params if p.type == "time"}
    if {"start", "end"} <= times:
        check_window(out["start"], out["end"], "-p start is after -p end")
    return out

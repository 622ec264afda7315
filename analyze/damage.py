"""Damaged files in a recording: found, named, and left out, so that the rest still answers.

A recording travels (tickets, laptops, object storage) and a file in it can arrive empty,
truncated, bit-flipped or replaced, or a foreign file can sit among the Parquet. The analyzer
checks each data file cheaply when it opens a recording (its size and Parquet's magic bytes at
both ends), and when a query still trips over a file (a corrupt page, a column whose type no
procsnap ever wrote) the engine's error names it: :func:`culprit` finds that file, the views are
rebuilt without it, and the query runs again. Every file left out is reported with its reason:
`procsnap info` lists them, every other command says so on stderr.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple

MAGIC = b"PAR1"


class Damage(namedtuple("Damage", "path reason")):
    """A data file left out of the views, and why (a namedtuple: dataclasses would cost every
    one-shot command its import)."""

    __slots__ = ()

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def quick_check(path: str) -> str | None:
    """Why a data file cannot be read, from its size and magic bytes alone; None when it may be."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        if size < 12:
            return f"truncated ({size} bytes)"
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(-4, os.SEEK_END)
            tail = f.read(4)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if head != MAGIC:
        return "not a Parquet file"
    if tail != MAGIC:
        return "truncated (no Parquet footer)"
    return None


_QUOTED = re.compile(r'"([^"]+)"|\'([^\']+)\'')


def culprit(message: str, files: list[str]) -> str | None:
    """The file of ours an engine error names, if any."""
    named = {a or b for a, b in _QUOTED.findall(message)}
    for f in files:
        if f in named:
            return f
    for f in files:  # not quoted: a path inside the message
        if f in message:
            return f
    return None


def _kind(type_name: str) -> str:
    """The family of a type (DuckDB's or Arrow's spelling): a column of another family cannot be
    read as the declared one; within a family (int32 written by an older procsnap, int64 now) a
    cast does it."""
    t = type_name.lower()
    for kind, marks in (("list", ("[]", "list")), ("struct", ("struct",)), ("map", ("map",)),
                        ("time", ("timestamp", "date", "time")), ("bool", ("bool",)),
                        ("binary", ("blob", "binary")), ("string", ("varchar", "string", "utf8")),
                        ("number", ("int", "float", "double", "decimal", "real", "numeric"))):
        if any(m in t for m in marks):
            return kind
    return t


def incompatible(have: str, want: str) -> bool:
    return _kind(have) != _kind(want)


def footer_problem(path: str, declared: dict[str, str], key: str = "snapshot_id") -> str | None:
    """Why a file cannot be read as a file of this table, from its footer; None when it can.
    declared maps column name -> declared SQL type. Read only for files whose names the recorder
    does not write, and on the error path."""
    import pyarrow.parquet as pq
    try:
        schema = pq.read_schema(path)
    except Exception as e:  # noqa: BLE001 - any failure to read the footer is damage
        return f"unreadable Parquet footer ({_first_line(e)})"
    if key not in schema.names:
        return f"not a procsnap file (no {key} column)"
    for field in schema:
        want = declared.get(field.name)
        if want is not None and incompatible(str(field.type), want):
            return f"column {field.name} is {field.type}, not {want}"
    return None


def unreadable_files(files, whole: bool = False) -> list[tuple[str, str]]:
    """(file, why) for each file pyarrow cannot read: its footer, or with WHOLE every page too.
    For an engine error that names no file: only on the error path, it reads them all."""
    import pyarrow.parquet as pq
    bad = []
    for f in files:
        try:
            pf = pq.ParquetFile(f)
            if whole:
                for i in range(pf.num_row_groups):
                    pf.read_row_group(i)
        except FileNotFoundError:
            continue  # retention removed it meanwhile: not damage
        except Exception as e:  # noqa: BLE001 - any failure to read is damage
            bad.append((f, f"unreadable ({_first_line(e)})"))
    return bad


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


# Files every Recording of this process has read, and those left out after a query tripped over
# them: a command that fails on a file runs again without it (see :func:`retrying`).
OPENED: set[str] = set()
EXCLUDED: dict[str, str] = {}
SAID: set[str] = set()  # files already named on stderr by this process
VANISHED_RETRIES = 2  # times a command is run again when files it listed were removed meanwhile
_vanished = 0


class DamageFound(Exception):
    """A query tripped over damaged files (now in EXCLUDED): run the command again."""


def find_damage(e: BaseException) -> bool:
    """Whether a DuckDB error came from damaged files of ours; they are added to EXCLUDED.
    An error of the SQL itself (parser, binder, catalog) is never damage; for another error
    that names no file, every file read is probed page by page (only on this error path)."""
    if type(e).__module__.split(".")[0].lstrip("_") != "duckdb":  # before importing it: not for other errors
        return False
    from .db import duckdb
    if isinstance(e, duckdb.ProgrammingError):
        return False
    left = sorted(OPENED - set(EXCLUDED))
    bad = culprit(str(e), left)
    if bad is not None and not os.path.exists(bad):
        # Not damage: a live recorder's retention or compaction removed it since it was listed.
        # Listing again gives the files that replace it; a recorder that keeps doing so wins.
        global _vanished
        _vanished += 1
        return _vanished <= VANISHED_RETRIES
    found = [(bad, f"unreadable ({_first_line(e)})")] if bad else unreadable_files(left, whole=True)
    for f, why in found:
        EXCLUDED[f] = why  # the next Recording.open leaves it out and names it
    return bool(found)


def retrying(run):
    """run(), again without the files a DuckDB error came from (a corrupt page is found only by
    reading it), until it succeeds or the error is not damage of ours."""
    while True:
        try:
            return run()
        except DamageFound:
            continue
        except Exception as e:  # noqa: BLE001 - only errors from our damaged files are retried
            if not find_damage(e):
                raise

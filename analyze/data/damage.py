"""Damaged files in a recording: found, named, and left out, so that the rest still answers.

A recording travels (tickets, laptops, object storage) and a file in it can arrive empty,
truncated, bit-flipped or replaced, or a foreign file can sit among the Parquet. The analyzer
checks each data file cheaply when it opens a recording (its size and Parquet's magic bytes at
both ends), and when a query still trips over a file (a corrupt page, a column whose type no
procsnap ever wrote) the engine's error names it: :func:`culprit` finds that file, the views are
rebuilt without it, and the query runs again. Every file left out is reported with its reason:
`procsnap info` lists them, every other command says so on stderr. The recorded rows they take
with them (:class:`Loss`) are said on stderr and in the answer, and the command exits 3
(:func:`exit_status`). docs/security.md says what a damaged or hostile recording can and
cannot make the analyzer do.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple

from analyze.data.sqltext import literal, sql_str

MAGIC = b"PAR1"


class Damage(namedtuple("Damage", "path reason table host first last", defaults=(None, None, None, None))):
    """A file left out of the views, and why (a namedtuple: dataclasses would cost every
    one-shot command its import). For a file whose name the recorder writes: its TABLE, HOST
    (the partition value) and the snapshot ids FIRST..LAST its name says it holds, from which
    the rows it may have taken with it are found (see :func:`losses`)."""

    __slots__ = ()

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class Loss(namedtuple("Loss", "table host first last snapshots")):
    """Rows of TABLE of HOST recorded but unreadable: the SNAPSHOTS (a count) from FIRST to LAST
    (datetimes, UTC). For the ``snapshots`` table the snapshots themselves, so every table."""

    __slots__ = ()

    def line(self) -> str:
        what = "every table (the snapshots themselves)" if self.table == "snapshots" else f"table {self.table}"
        span = f"{self.first:%Y-%m-%d %H:%M:%S}" + ("" if self.last == self.first else f" .. {self.last:%Y-%m-%d %H:%M:%S}")
        n = f"{self.snapshots} snapshot{'s' if self.snapshots != 1 else ''}" if self.snapshots else "snapshots"
        return f"{what}, host {self.host}: {span} UTC ({n})"

    def json(self) -> dict:
        return {"table": self.table, "host": self.host, "from": self.first.isoformat(), "to": self.last.isoformat(),
                "snapshots": self.snapshots}


def id_time(snapshot_id: int):
    """The time a snapshot id stands for: ids are the snapshot's UTC time in epoch microseconds."""
    import datetime as dt
    try:
        return dt.datetime.fromtimestamp(snapshot_id / 1_000_000, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


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
    """The file of ours an engine error names, if any (as listed, or as handed to the engine)."""
    named = {a or b for a, b in _QUOTED.findall(message)}
    for f in files:
        if f in named or literal(f) in named:
            return f
    for f in sorted(files, key=len, reverse=True):  # not quoted: a path inside the message (longest first)
        if f in message or literal(f) in message:
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


VERIFIED: set[str] = set()  # files this process read whole with their page checksums checked


def renamed(names, declared) -> str | None:
    """Why a file's columns are not a version of the table's (None when they are): a file of an
    older procsnap lacks columns, a newer one's has more, but a file that both lacks declared
    columns and has undeclared ones had them renamed (a flipped byte in the footer, which Parquet
    does not checksum, renames a column, and its values would silently read as NULL)."""
    names = set(names)
    extra, missing = names - set(declared), set(declared) - names - {"host", "date"}
    if extra and missing:
        return f"column {sorted(extra)[0]!r} is not one of the table's (damaged footer?)"
    return None


def verify(files, declared: dict | None = None) -> list[tuple[str, str]]:
    """(file, why) for each file that does not read whole with Parquet's page checksums checked
    (pyarrow's reader checks the CRC of each page that has one; DuckDB's does not check them, so
    a flipped byte that still decompresses would be believed), or whose columns are not the
    table's (DECLARED: the column names, see :func:`renamed`). Reads every page."""
    import pyarrow.parquet as pq

    def one(f: str) -> str | None:
        try:
            pf = pq.ParquetFile(f, page_checksum_verification=True)
            if declared is not None and (why := renamed(pf.schema_arrow.names, declared)):
                return why
            for i in range(pf.num_row_groups):
                pf.read_row_group(i, use_threads=False)
        except FileNotFoundError:
            return None  # retention removed it meanwhile: not damage
        except Exception as e:  # noqa: BLE001 - any failure to read is damage
            return f"unreadable ({_first_line(e)})"
        VERIFIED.add(f)
        return None

    todo = [f for f in dict.fromkeys(files) if f not in VERIFIED]
    if len(todo) > 8:  # pyarrow decodes without the GIL: the files side by side, one per core
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            whys = list(pool.map(one, todo))
    else:
        whys = [one(f) for f in todo]
    return [(f, why) for f, why in zip(todo, whys) if why is not None]


def engine_unreadable(files) -> list[tuple[str, str]]:
    """(file, why) for each file DuckDB itself cannot decode, every column of every row read (an
    error that names no file, e.g. a page header it cannot parse that pyarrow reads past). Only on
    the error path: it reads them all."""
    from analyze.data.engine import connect, duckdb
    con = connect(sorted({os.path.dirname(f) for f in files}))
    bad = []
    for f in files:
        try:
            con.execute(f"SELECT max(hash(COLUMNS(*))) FROM read_parquet({sql_str(literal(f))})").fetchall()
        except FileNotFoundError:
            continue
        except duckdb.Error as e:
            if os.path.exists(f):
                bad.append((f, f"unreadable ({_first_line(e)})"))
    con.close()
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
    from analyze.data.engine import duckdb
    left = sorted(OPENED - set(EXCLUDED))
    bad = culprit(str(e), left)
    # The SQL itself is wrong: never a file's fault. (Not ProgrammingError as a whole: DuckDB
    # raises InvalidInputException, one of its kinds, for a page that fails to decompress.)
    if bad is None and isinstance(e, SQL_ERRORS(duckdb)):
        return False
    if bad is not None and not os.path.exists(bad):
        # Not damage: a live recorder's retention or compaction removed it since it was listed.
        # Listing again gives the files that replace it; a recorder that keeps doing so wins.
        global _vanished
        _vanished += 1
        return _vanished <= VANISHED_RETRIES
    found = [(bad, f"unreadable ({_first_line(e)})")] if bad else (engine_unreadable(left)
                                                                     or unreadable_files(left, whole=True))
    for f, why in found:
        EXCLUDED[f] = why  # the next Recording.open leaves it out and names it
    return bool(found)


def SQL_ERRORS(duckdb) -> tuple:
    return tuple(getattr(duckdb, n) for n in ("ParserException", "SyntaxException", "BinderException",
                                              "CatalogException", "PermissionException") if hasattr(duckdb, n))


# ----------------------------------------------------------------------------------------------
# Partial answers: rows a recording holds that could not be read. Every command says which tables
# and time ranges are missing, on stderr and in its output, and exits 3 (PARTIAL) so that a script
# can tell; :func:`exit_status` is the one place that decides it.

PARTIAL = 3
LOSSES: list[Loss] = []  # what this process's answer left out (filled as recordings are opened)


def losses_json() -> list[dict]:
    return [x.json() for x in LOSSES]


def losses_text(prefix: str = "") -> str:
    """Lines for the end of a text or CSV answer (PREFIX "# " in CSV); empty when nothing is lost."""
    if not LOSSES:
        return ""
    from analyze.output import escape
    lines = [f"{prefix}PARTIAL answer: recorded rows were unreadable and are left out (procsnap info lists the files):"]
    lines += [f"{prefix}  missing: {escape(x.line())}" for x in LOSSES]
    return "\n".join(lines) + "\n"


def write_partial(out, fmt: str) -> None:
    """After a text, table or CSV answer: what it leaves out (JSON answers carry it inside)."""
    if LOSSES and fmt != "json":
        out.write(("\n" if fmt in ("text", "table") else "") + losses_text("# " if fmt == "csv" else ""))


def json_list(rows: list) -> object:
    """A JSON answer that is a list of rows: as it is, or when rows were lost an object
    ``{"partial": [...], "rows": [...]}`` (exit status 3 says which shape came)."""
    return {"partial": losses_json(), "rows": rows} if LOSSES else rows


def render(columns, rows, fmt: str, out=None, header: bool = True) -> None:
    """analyze.output.render, and what the answer leaves out: trailing lines in text and CSV,
    in JSON the rows under "rows" beside "partial" (see :func:`json_list`). HEADER=False is
    CSV of bare values for another command: what is missing is then said on stderr and by the
    exit status only."""
    import sys

    from analyze.output import render as plain
    out = out or sys.stdout
    if fmt == "json" and LOSSES:
        import io
        import json
        buf = io.StringIO()
        plain(columns, rows, fmt, out=buf)
        json.dump(json_list(json.loads(buf.getvalue())), out, indent=1)
        out.write("\n")
        return
    plain(columns, rows, fmt, out=out, header=header)
    if header:
        write_partial(out, fmt)


def exit_status(code):
    """A command's exit status once its answer is out: 0 (answered) or 1 (nothing found) become
    3 when recorded rows were left out, since "nothing" may be in the rows that are missing."""
    if LOSSES and code in (0, 1, None):
        return PARTIAL
    return code


def retrying(run):
    """run(), again without the files a DuckDB error came from (a corrupt page is found only by
    reading it), until it succeeds or the error is not damage of ours."""
    while True:
        LOSSES.clear()  # each run opens its recordings again and finds what it leaves out
        try:
            return exit_status(run())
        except DamageFound:
            continue
        except Exception as e:  # noqa: BLE001 - only errors from our damaged files are retried
            if not find_damage(e):
                raise

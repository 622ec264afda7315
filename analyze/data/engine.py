"""The SQL engine under every recording: DuckDB, imported once, and the one way to open a
connection to it (:func:`connect`).

Nothing else of procsnap is imported here but the interrupt watch: the query layer
(:mod:`analyze.data.db`, :mod:`analyze.data.damage`, :mod:`analyze.data.gate`) builds on it.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    # The engine itself: the `duckdb` package around it is slower to import (its version lookup
    # goes through importlib.metadata, its relation API is Python) and adds nothing used here,
    # while a one-shot `procsnap lsof --rec` pays the import on every run.
    import _duckdb as duckdb
except ImportError:  # pragma: no cover - a duckdb build without the separate extension module
    import duckdb

from analyze.data.interrupt import watch
from analyze.data.sqltext import literal, sql_str


def connect(folders: list[Path] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can read these folders and nothing else, and can be talked out of none of it.

    External access is switched off except for reading inside the recordings
    (``allowed_directories``: also the views' own scans go through it), nothing
    spills to a temporary directory (DuckDB's default, ``.tmp`` in the current
    folder, would be writable too), no extension is installed or loaded behind our
    back, and the configuration is locked so that no SQL can switch any of it back
    on. DuckDB does not tell reading from writing inside an allowed directory (COPY,
    EXPORT, ATTACH could write there): user SQL is held to queries by
    :func:`analyze.data.gate.check_read_only`, and ``procsnap query`` runs it in a thread the kernel
    keeps from writing (:mod:`analyze.data.sandbox`).
    """
    con = duckdb.connect(":memory:")
    watch(con)
    con.execute("SET TimeZone = 'UTC'")
    # Each view is bound when it is created and each query binds it again: without the cache
    # every bind reads and parses the footer of every file of the table once more.
    con.execute("SET parquet_metadata_cache = true")
    con.execute("SET temp_directory = ''")
    allowed = sorted({d for f in folders for d in (str(f), os.path.realpath(f), os.path.abspath(f))})
    allowed = sorted({*allowed, *map(literal, allowed)})  # also as the scans name them (:func:`literal`)
    if allowed:
        con.execute("SET allowed_directories = " + "[" + ", ".join(sql_str(d.rstrip("/") + "/") for d in allowed) + "]")
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions",
                    "allow_community_extensions", "allow_persistent_secrets"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")
    return con


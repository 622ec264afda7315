"""The SQL gate: what user SQL may run (``procsnap query``, named queries), allow-listed and
decided by DuckDB's own parser before DuckDB runs anything."""

from __future__ import annotations

import json

from analyze.data.engine import duckdb
from analyze.errors import ProcsnapError, UsageError


# What user SQL may run, allow-listed: queries (SELECT and its forms: WITH, FROM-first, VALUES,
# DESCRIBE, SHOW, SUMMARIZE), and EXPLAIN or EXPLAIN ANALYZE of one. Every other statement type
# (COPY, EXPORT, IMPORT, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL, CREATE, ...) and every type a
# later DuckDB adds is refused before DuckDB runs anything.
READ_ONLY_STATEMENTS = {"SELECT"}

# The table functions a query may call: those that read (within the recordings: the connection's
# allowed_directories) or describe. Any other (checkpoint, enable_logging, query, the external
# resource and grammar functions, the Python scans, and every one a later DuckDB adds) is refused.
READ_ONLY_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "glob", "summary",
    "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema", "parquet_file_metadata",
    "parquet_kv_metadata", "parquet_full_metadata", "parquet_page_index", "parquet_bloom_probe",
    "read_csv", "read_csv_auto", "sniff_csv", "read_json", "read_json_auto", "read_json_objects",
    "read_json_objects_auto", "read_ndjson", "read_ndjson_auto", "read_ndjson_objects", "read_text",
    "read_blob", "json_each", "json_tree", "histogram", "histogram_values", "icu_calendar_names",
    "pg_timezone_names", "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies",
    "duckdb_extensions", "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_memory",
    "duckdb_optimizers", "duckdb_schemas", "duckdb_sequences", "duckdb_settings", "duckdb_tables",
    "duckdb_temporary_files", "duckdb_types", "duckdb_variables", "duckdb_views", "pragma_table_info",
    "pragma_show", "pragma_version", "pragma_platform", "pragma_database_size", "pragma_storage_info",
    "pragma_metadata_info", "pragma_collations", "pragma_user_agent",
})


def _refuse(what: str) -> ProcsnapError:
    return ProcsnapError(f"{what} not allowed: procsnap query runs read-only queries (SELECT, WITH, FROM, "
                         "VALUES, DESCRIBE, SHOW, SUMMARIZE) and EXPLAIN [ANALYZE] of one")


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """ProcsnapError unless every statement of the SQL is a query, or EXPLAIN [ANALYZE] of one, that
    calls only the table functions of READ_ONLY_TABLE_FUNCTIONS; UsageError when there is no
    statement at all. DuckDB's own parser decides: the statement types come from it, and a query's
    whole tree (subqueries, CTEs, joins) from its serializer, which serializes SELECT statements
    only; an EXPLAIN's inner statement is parsed again on its own."""
    stmts = _statements(con, sql)
    if not stmts:
        raise UsageError("no SQL statement given")
    for st in stmts:
        _check_statement(con, st, explained=False)


def _statements(con, sql: str) -> list:
    try:
        return con.extract_statements(sql)
    except duckdb.Error as e:
        raise ProcsnapError(f"SQL error: {str(e).strip().splitlines()[0]}") from None


def _check_statement(con, st, explained: bool) -> None:
    try:
        kind = st.type.name
    except ValueError:  # a type the engine has and its Python module does not name (UPDATE EXTENSIONS)
        raise _refuse("statements of a type procsnap does not know are") from None
    if kind == "EXPLAIN" and not explained:
        inner = [c for c in _explained(con, st.query) if c is not None]
        if not inner:
            raise _refuse("this EXPLAIN is")
        for stmts in inner:
            _check_statement(con, stmts[0], explained=True)
        return
    if kind not in READ_ONLY_STATEMENTS:
        raise _refuse(f"{'EXPLAIN of ' if explained else ''}{kind} statements are")
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql($q)", {"q": st.query}).fetchone()[0])
    except duckdb.InterruptException:
        raise
    except duckdb.Error:  # no json extension in this DuckDB: nothing is let through unseen
        tree = {"error": True}
    if tree.get("error") or len(tree.get("statements", ())) != 1:
        raise _refuse(f"{'EXPLAIN of ' if explained else ''}this statement is")
    for name in _table_functions(tree["statements"][0]):
        if name not in READ_ONLY_TABLE_FUNCTIONS:
            raise _refuse(f"the table function {name}() is")


def _explained(con, text: str) -> list:
    """The statement an EXPLAIN [ANALYZE] [(options)] explains, as each reading of its first tokens
    would have it: after EXPLAIN, after EXPLAIN ANALYZE, and after a parenthesised group following
    either. Each reading that parses as one statement (a list of one), None for those that do
    not: the caller requires every reading that parses to be allowed, so no reading of an
    ambiguous text can slip a statement through."""
    every = duckdb.tokenize(text)
    ends = [p for p, _ in every[1:]] + [len(text)]
    toks = [(p, typ, text[p:e].strip()) for (p, typ), e in zip(every, ends) if typ.name != "comment"]
    starts = []

    def word(i):
        return toks[i][2].upper()

    if not toks or word(0) != "EXPLAIN":
        return []
    for i in (1, 2) if len(toks) > 2 and word(1) in ("ANALYZE", "ANALYSE", "VERBOSE") else (1,):
        if i < len(toks):
            starts.append(toks[i][0])
            if word(i).startswith("("):
                depth = 0
                for j in range(i, len(toks)):
                    if toks[j][1].name == "operator":
                        depth += word(j).count("(") - word(j).count(")")
                    if depth == 0:
                        if j + 1 < len(toks):
                            starts.append(toks[j + 1][0])
                        break
    out = []
    for s in starts:
        try:
            stmts = con.extract_statements(text[s:])
        except duckdb.Error:
            out.append(None)
            continue
        out.append(stmts if len(stmts) == 1 else None)
    return out


def _table_functions(node) -> set[str]:
    """The names of every table function the serialized statement calls, at any depth."""
    found, todo = set(), [node]
    while todo:
        n = todo.pop()
        if isinstance(n, dict):
            if n.get("type") == "TABLE_FUNCTION":
                f = n.get("function") or {}
                found.add(str(f.get("function_name", "")).lower())
            todo.extend(n.values())
        elif isinstance(n, list):
            todo.extend(n)
    return found

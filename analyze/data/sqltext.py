"""How procsnap spells values and paths in the SQL it writes (no engine needed to import it)."""

from __future__ import annotations

import re


def sql_str(s: str) -> str:
    """S as an SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


_GLOB = re.compile(r"([*?\[])")


def literal(path: str) -> str:
    """PATH as a pattern that matches only itself: DuckDB reads every path it is given as a glob
    (``*``, ``?``, ``[...]``, and ``~`` at the start), so a recording folder or a planted file
    named with them would read other files, or one file twice. Each such character becomes a
    one-character class (``[*]``); a leading ``~`` is made relative (``./~``)."""
    if path.startswith("~"):
        path = "./" + path
    return _GLOB.sub(r"[\1]", path)

"""The schema reference (docs/schema.md), generated from the declarations.

Regenerate with ``procsnap schema --markdown > docs/schema.md``; a test fails
when the committed file is stale.
"""

from __future__ import annotations

from recorder.schema import TABLES

from analyze.data.views import DERIVED


def markdown() -> str:
    out = [
        "# procsnap schema reference",
        "",
        "Generated from `recorder/schema.py` and `analyze/data/views.py` by `procsnap schema --markdown`; do not edit by hand.",
        "",
        "Every table is a view in `procsnap query`, and a folder of hive-partitioned Parquet on disk",
        "(`<table>/host=<host>/date=<YYYY-MM-DD>/<snapshot_id>.parquet`). `host` and `date` live in the folder",
        "names only. Counters are raw and cumulative; the `*_rates` views derive rates from them.",
        "Names and paths are text with invalid UTF-8 bytes written `\\xNN`; the `*_raw` column beside one holds",
        "the exact bytes whenever the text is not their exact decoding.",
        "",
        "Tables: " + ", ".join(f"[`{t}`](#{t})" for t in TABLES) + ".",
        "Derived views: " + ", ".join(f"[`{v}`](#{v})" for v in DERIVED) + ".",
        "",
    ]
    for t in TABLES.values():
        out += [f"## {t.name}", "", f"One row per {t.row}. {t.description}", "",
                "| column | type | unit | meaning |", "|---|---|---|---|"]
        for c in t.columns:
            desc = c.description.replace("|", "\\|")
            out.append(f"| `{c.name}` | {c.sql_type} | {c.unit} | {desc} |")
        out.append("")
    out += ["## Derived views", ""]
    for name, (_, desc) in DERIVED.items():
        out += [f"### {name}", "", desc, "A rate is NULL on the first row of each entity and wherever a counter went backwards.", ""]
    return "\n".join(out)

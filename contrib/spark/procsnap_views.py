"""Spark temporary views over a procsnap recording or a fleet's bucket, one per table, reading
exactly the files procsnap reads: those its manifests list (``procsnap manifest --write``, or
``procsnap ship``, which keeps the bucket's up to date), so that no row of a compaction's grace
period is read twice.

    from procsnap_views import register
    register(spark, "s3a://ops-recordings/fleet")
    spark.sql("SELECT host, count(*) FROM processes GROUP BY host").show()

Plain PySpark, no procsnap needed; docs/fleet.md explains the layout and the column types.
"""

from __future__ import annotations

MANIFESTS = "_procsnap/live"  # recorder.store.layout.LIVE_DIR


def live_files(spark, root: str) -> dict[str, list[str]]:
    """Per table, the full paths of its live files, from every host's manifest under ROOT."""
    root = root.rstrip("/")
    rows = spark.read.csv(f"{root}/{MANIFESTS}", header=True).collect()
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["table_name"], []).append(f"{root}/{r['path']}")
    return out


def register(spark, root: str, tables=None) -> dict[str, int]:
    """A temporary view per table (or per table of TABLES) over its live files; returns the
    number of files of each. Partition values stay text: ``host`` is a name (``0007`` is not
    the number 7), ``date`` a ``YYYY-MM-DD`` string."""
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    root = root.rstrip("/")
    counts = {}
    for table, paths in sorted(live_files(spark, root).items()):
        if tables is not None and table not in tables:
            continue
        (spark.read.option("basePath", f"{root}/{table}").option("mergeSchema", "true")
         .parquet(*paths).createOrReplaceTempView(table))
        counts[table] = len(paths)
    return counts

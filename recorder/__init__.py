"""procsnap's recorder: reads the live host (/proc) into Arrow tables and writes
them to a hive-partitioned Parquet recording. It never imports ``analyze``."""

__version__ = "0.1.0"

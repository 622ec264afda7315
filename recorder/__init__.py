"""procsnap's recorder: reads the live host (/proc) into Arrow tables and writes
them to a hive-partitioned Parquet recording. It never imports ``analyze``."""

import os as _os

# Arrow's C++ default memory pool (mimalloc in the wheels) is picked once, from this variable,
# before pyarrow is first imported; pa.set_memory_pool (collect.use_one_allocator) changes only
# the pool pyarrow's Python calls pass, and the Parquet reader and writer went on allocating from
# mimalloc, whose 1 GiB arena kept ~20 MB resident between snapshots. With malloc for both,
# measured at 1000 processes x 50 descriptors: a descriptor snapshot's peak 134 -> 112 MB, the
# recorder's resident size between snapshots 105 -> 84 MB, a compaction's peak 126 -> 106 MB.
# Set here, before anything imports pyarrow (analyze/__init__.py imports this package first);
# a user's choice stands.
_os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

__version__ = "0.1.0"

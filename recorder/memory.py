"""Handing freed memory back to the kernel.

The recorder lives for days: what one snapshot or one compaction used must not stay resident
until the next. Arrow allocates through malloc (collect.use_one_allocator), so both Arrow's and
Python's freed memory end up in malloc's free lists, which malloc_trim returns to the kernel.
"""

from __future__ import annotations

_malloc_trim = None


def give_back() -> None:
    """Release Arrow's unused pool memory and trim malloc's heaps (glibc; a no-op elsewhere)."""
    global _malloc_trim
    try:
        import pyarrow as pa
        pa.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001 - an Arrow without it keeps its memory
        pass
    if _malloc_trim is None:
        try:
            import ctypes
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


REMOTE_FILESYSTEMS = ("pyarrow._s3fs", "pyarrow._gcsfs", "pyarrow._azurefs", "pyarrow._hdfs")


def without_remote_filesystems() -> None:
    """Keep pyarrow's cloud file systems (S3, GCS, Azure, HDFS) out of this process: pyarrow.fs,
    which pyarrow.parquet imports, loads them when it can (the AWS SDK and OpenSSL among them),
    and a recorder reads and writes local files only. Call before pyarrow.fs is imported; later,
    it changes nothing."""
    import sys
    if "pyarrow.fs" in sys.modules:
        return
    for name in REMOTE_FILESYSTEMS:
        sys.modules.setdefault(name, None)  # pyarrow.fs leaves out what does not import

"""procsnap's analyzer: opens recordings (or a live snapshot) in DuckDB and
answers questions about them. May import ``recorder``; never the reverse."""

# First, so that Arrow's default memory pool is chosen (recorder/__init__.py) before anything here
# imports pyarrow.
import recorder  # noqa: F401,E402

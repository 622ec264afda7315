"""procsnap's analyzer: opens recordings (or a live snapshot) in DuckDB and
answers questions about them. May import ``recorder``; never the reverse."""

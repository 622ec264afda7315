"""The always-on recorder's defaults, in one place: `procsnap record --help`, the README's
"Always-on" table and the record loop all take them from here (no heavy imports, so the
CLI can quote them in its help)."""

# The cadences keep the always-on recorder within its budget (see BENCHMARKS.md) on a host of
# 1000 processes × 50 descriptors × 4 threads, with room for bigger hosts: host, processes and
# threads are cheap and taken every DEFAULT_INTERVAL; descriptors and sockets are most of a
# snapshot's cost and taken every DEFAULT_FILES_INTERVAL. atop's and sar's daemons sample every
# 600 s; on smaller hosts the cost scales with processes and descriptors; --incident gives 2 s.
DEFAULT_INTERVAL = 150.0         # s: host, processes, threads
DEFAULT_FILES_INTERVAL = 1800.0  # s: open_files + sockets
INCIDENT_INTERVAL = 2.0          # s: everything, under the incident preset
DEFAULT_INCIDENT = 600.0         # s: how long the incident preset lasts
# Compaction: merge a day's partition once it holds this many small snapshots
# (64 × 150 s ≈ 2.7 h per compacted file); covered files stay GRACE seconds
# for readers that listed them just before.
DEFAULT_COMPACT_MIN = 64
DEFAULT_GRACE = 120.0


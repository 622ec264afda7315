"""The always-on recorder's defaults, in one place: `procsnap record --help`, the README's
"Always-on" table and the record loop all take them from here (no heavy imports, so the
CLI can quote them in its help)."""

# The budget is 1 % of one core and
# 150 MB RSS. Measured on the 2-core bench host (1000 processes × 50 fds ×
# 4 threads): host + processes + threads cost ~0.5 s CPU per snapshot, open
# files + sockets ~4.5 s more. 0.5 s / 90 s = 0.56 % and 4.5 s / 1200 s =
# 0.38 %: 0.93 % of a core, leaving the rest for writing and compaction. On
# smaller hosts the cost scales with processes and descriptors. Revisit when
# the collector's optimisation lands.
DEFAULT_INTERVAL = 90.0          # s: host, processes, threads
DEFAULT_FILES_INTERVAL = 1200.0  # s: open_files + sockets
INCIDENT_INTERVAL = 2.0          # s: everything, under the incident preset
DEFAULT_INCIDENT = 600.0         # s: how long the incident preset lasts
# Compaction: merge a day's partition once it holds this many small snapshots
# (64 × 90 s ≈ 1.6 h per compacted file); covered files stay GRACE seconds
# for readers that listed them just before.
DEFAULT_COMPACT_MIN = 64
DEFAULT_GRACE = 120.0


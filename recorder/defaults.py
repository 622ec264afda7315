"""The always-on recorder's defaults, in one place: `procsnap record --help`, the README's
"Always-on" table and the record loop all take them from here (no heavy imports, so the
CLI can quote them in its help)."""

# The budget is 1 % of one core and 150 MB RSS. Measured by bench/run.py on
# the 2-core bench host (1000 processes × 50 fds × 4 threads): host +
# processes + threads cost ~0.7-0.85 CPU-s per snapshot, open files + sockets
# ~3.5 s more. At 90 s / 1200 s a 20-minute recording averaged 1.43 % of a
# core (BENCHMARKS.md of 2026-11-28 10:58), so the cadences are 150 s / 1800 s:
# 0.8 / 150 = 0.53 % and 3.5 / 1800 = 0.19 %, ~0.75 % with writing and
# compaction. The collection has become cheaper since (BENCHMARKS.md of
# 2026-11-29 12:44: ~0.16 s inside the recorder and ~0.75 s more, 0.28 % measured
# at these cadences), so a shorter interval would fit the budget; the cadences
# stay as they are, the room kept for bigger hosts. atop's daemon samples every 600 s; sar every 600 s. On smaller
# hosts the cost scales with processes and descriptors; --incident gives 2 s.
DEFAULT_INTERVAL = 150.0         # s: host, processes, threads
DEFAULT_FILES_INTERVAL = 1800.0  # s: open_files + sockets
INCIDENT_INTERVAL = 2.0          # s: everything, under the incident preset
DEFAULT_INCIDENT = 600.0         # s: how long the incident preset lasts
# Compaction: merge a day's partition once it holds this many small snapshots
# (64 × 150 s ≈ 2.7 h per compacted file); covered files stay GRACE seconds
# for readers that listed them just before.
DEFAULT_COMPACT_MIN = 64
DEFAULT_GRACE = 120.0


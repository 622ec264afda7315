#!/usr/bin/env bash
# Regenerates samples/recording: 12 snapshots, one a second, of this host
# running samples/workload.py (a CPU burner, a 200 MiB memory hog, a process
# with 8 named threads, one that exits after 2 s and one started after 4 s).
# Usage: samples/make_sample.sh   (from anywhere; needs `procsnap` on PATH or .venv)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
procsnap=${PROCSNAP:-$(command -v procsnap || echo "$here/../.venv/bin/procsnap")}
out="$here/recording"
rm -rf "$out"
python3 "$here/workload.py" --late-after 4.5 --short-for 2.5 --hold 60 > /tmp/procsnap-workload.$$ &
wl=$!
trap 'kill $wl 2>/dev/null; wait $wl 2>/dev/null; rm -f /tmp/procsnap-workload.$$' EXIT
until grep -q ready /tmp/procsnap-workload.$$ 2>/dev/null; do sleep 0.1; done
sleep 1   # let the hog touch its memory and the burner show up in rates
"$procsnap" record -o "$out" -i 1 -n 12 -q --host sample-host
du -sh "$out"

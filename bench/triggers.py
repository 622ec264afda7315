#!/usr/bin/env python3
"""What the recorder's armed triggers cost while nothing happens.

    python3 bench/triggers.py [--seconds 120] [--out FILE.md]

Arms a trigger watcher with the defaults (recorder/collect/triggers.py: the PSI triggers and the
counters read every 2 s, the file systems every 30 s) in this process and measures the CPU time
of its thread alone (/proc/self/task/TID/stat) over --seconds, as a share of one core. Firings
during the run are counted and listed (a loaded host fires; the figure is then not "quiet").
The fd-limit check runs at each process snapshot over the snapshot's processes table: timed
separately on a table of --processes rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from issue6 import thread_cpu  # noqa: E402
from tools import emit  # noqa: E402

from recorder.collect import triggers as T  # noqa: E402



def measure(seconds: float, processes: int) -> dict:
    w = T.Watcher(T.load_config(None)).arm()
    try:
        tid = w._thread.native_id
        c0, t0 = thread_cpu(tid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = thread_cpu(tid), time.monotonic()
        fired = w.firings()
    finally:
        w.stop()
    import pyarrow as pa
    table = pa.table({"pid": list(range(processes)), "name": ["p"] * processes, "num_fds": [50] * processes,
                      "fd_limit": [1024] * processes})
    w2 = T.Watcher(T.load_config(None))
    n, s0 = 200, time.process_time()
    for _ in range(n):
        w2.saw(table)
    per_snapshot = (time.process_time() - s0) / n
    return {"seconds": t1 - t0, "cpu_s": c1 - c0, "share_pct": (c1 - c0) / (t1 - t0) * 100,
            "firings": len(fired), "fired": sorted({f.trigger for f in fired}), "armed_off": w.off,
            "fd_check_ms": per_snapshot * 1000, "processes": processes,
            "load": os.getloadavg(), "cpus": os.cpu_count()}


def markdown(r: dict, argv: list[str]) -> str:
    fired = f"{r['firings']} ({', '.join(r['fired'])})" if r["firings"] else "0"
    off = "; ".join(f"{k}: {v}" for k, v in r["armed_off"].items()) or "none"
    return "\n".join([
        "### Triggers armed, nothing happening (issue 21)",
        "",
        f"`python3 bench/triggers.py {' '.join(argv)}` — the watcher thread alone, {r['cpus']} CPUs, "
        f"load {r['load'][0]:.2f} at the end.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| watcher thread CPU over {r['seconds']:.0f} s | {r['cpu_s']:.3f} s |",
        f"| share of one core | {r['share_pct']:.4f} % (budget: under 0.05 %) |",
        f"| firings during the run | {fired} |",
        f"| triggers not armed | {off} |",
        f"| fd-limit check per process snapshot ({r['processes']} processes) | {r['fd_check_ms']:.3f} ms |",
        "",
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--processes", type=int, default=1000)
    p.add_argument("--out", help="write the Markdown section here (default: print it)")
    args = p.parse_args(argv)
    r = measure(args.seconds, args.processes)
    text = markdown(r, sys.argv[1:] if argv is None else argv)
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

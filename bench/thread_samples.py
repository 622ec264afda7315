#!/usr/bin/env python3
"""What the thread sampler costs per second of incident, at 1, 10 and 100 busy threads.

    python3 bench/thread_samples.py [--seconds 10] [--busy 1,10,100] [--states RD] [--out FILE.md]

For each count, starts that many busy threads (shell loops: one thread each, always runnable), runs
a sampler (recorder/collect/thread_samples.py, default period) in this process for --seconds and
reads the sampler thread's own CPU (/proc/self/task/TID/stat). The host's other threads are
scanned too (every sample reads every thread's stat): their count is printed beside.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from issue6 import thread_cpu  # noqa: E402
from tools import emit  # noqa: E402

from recorder.collect import thread_samples as TS  # noqa: E402
from recorder.collect import system  # noqa: E402
from recorder.source.procfs import ProcFS  # noqa: E402



def host_threads() -> int:
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                n += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                pass
    return n


def one(busy: int, seconds: float, states: str) -> dict:
    spin = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(busy)]
    try:
        threads = host_threads()
        s = TS.Sampler(None, system.read_proc_stat(ProcFS())["btime"], states=states, always=True).start()
        tid = s._thread.native_id
        c0, t0 = thread_cpu(tid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = thread_cpu(tid), time.monotonic()
        table, meta = s.take(0, __import__("datetime").datetime.now(TS.UTC))
        s.stop()
    finally:
        for p in spin:
            p.kill()
            p.wait()
    rows = table.num_rows if table is not None else 0
    return {"busy": busy, "cpu_s": c1 - c0, "seconds": t1 - t0, "share_pct": (c1 - c0) / (t1 - t0) * 100,
            "samples": meta["thread_samples"], "rows": rows, "host_threads": threads}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--busy", default="1,10,100")
    ap.add_argument("--states", default=TS.STATES)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    res = [one(int(b), args.seconds, args.states) for b in args.busy.split(",")]
    lines = ["### Thread samples during an incident (issue 21)", "",
             f"`python3 bench/thread_samples.py {' '.join(sys.argv[1:] if argv is None else argv)}` — one sample every "
             f"{TS.PERIOD:g} s of states {args.states}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}.", "",
             "| busy threads | threads on the host | samples | rows | sampler CPU per second of incident |",
             "|---|---|---|---|---|"]
    for r in res:
        lines.append(f"| {r['busy']} | {r['host_threads']} | {r['samples']} | {r['rows']} | "
                     f"{r['cpu_s'] / r['seconds'] * 1000:.1f} ms ({r['share_pct']:.2f} % of a core) |")
    text = "\n".join(lines) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

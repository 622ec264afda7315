#!/usr/bin/env python3
"""What the pre-trigger ring costs an always-on recorder: CPU per frame, memory held.

    python3 bench/ring.py [--scales 1000x50x4,1000x10x20] [--mixes default,files,sockets,threads] [--frames 20]
                          [--out FILE.md]

For each scale and mix, starts bench/loadgen.py, then takes --frames frames with the recorder's
own ring (recorder/collect/ring.py: host counters and the process table, RING_TABLES) in this
process at the default cadence's content, timing each frame's CPU (utime+stime of this process,
with the memory hand-back the record loop does after each frame)
and, once the ring holds a full span's worth (span / every frames), the bytes it holds and
this process's RSS growth since before the first frame, after three warm-up frames (the
process table is held zstd-compressed, as the ring holds it). Other tables are held as plain Arrow IPC bytes. The share of a core is the median frame's
CPU over the default cadence (DEFAULT_EVERY), added to the always-on recorder's measured steady
figure in BENCHMARKS.md ("Continuous recording") to compare with the always-on budget of 1 % of
one core.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys

import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import Load  # noqa: E402
from tools import emit  # noqa: E402

from recorder.collect.collector import Collector  # noqa: E402
from recorder.collect.ring import DEFAULT_EVERY, DEFAULT_SPAN, Ring  # noqa: E402
from recorder.memory import give_back  # noqa: E402

ALWAYS_ON_STEADY_PCT = 0.16  # BENCHMARKS.md, "Continuous recording", steady average at 1000x50x4
BUDGET_PCT = 1.0
MIXES = {"default": "default", "files": "files", "sockets": "sockets", "threads": "default"}


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def one(scale: str, mix: str, frames: int) -> dict:
    n, m, k = (int(x) for x in scale.split("x"))
    with Load(n, m, k, 0, 0, 900, 600, mix=MIXES[mix]):
        collector = Collector()
        ring = Ring(collector, DEFAULT_EVERY, DEFAULT_SPAN, clock=lambda: 0.0)  # keeps every frame taken
        for _ in range(3):  # warm: the first passes fill the user-name cache and load the codec
            ring.take()
        ring.drain()
        give_back()
        r0 = rss()
        costs, procs = [], 0
        held = int(DEFAULT_SPAN / DEFAULT_EVERY)
        for _ in range(frames):
            c0 = cpu()
            procs = ring.take().num_rows
            give_back()  # as the record loop does after each frame
            costs.append(cpu() - c0)
            if len(ring.frames) == held:
                arrow = sum(t.nbytes if isinstance(t, pa.Table) else t.size
                            for _, s in ring.frames for t in s.tables.values())
                grown = rss() - r0
        frame_s = statistics.median(costs)
    return {"scale": scale, "mix": mix, "processes": procs, "frame_ms": frame_s * 1000,
            "max_ms": max(costs) * 1000, "share_pct": frame_s / DEFAULT_EVERY * 100,
            "held": held, "arrow_mb": arrow / 1e6, "rss_mb": grown / 1e6}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="1000x50x4")
    ap.add_argument("--mixes", default="default,files,sockets,threads")
    ap.add_argument("--frames", type=int, default=int(DEFAULT_SPAN / DEFAULT_EVERY))
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.frames < int(DEFAULT_SPAN / DEFAULT_EVERY):
        ap.error(f"--frames must be at least a full ring ({int(DEFAULT_SPAN / DEFAULT_EVERY)})")
    runs = []
    for scale in args.scales.split(","):
        for mix in args.mixes.split(","):
            s = "1000x10x20" if mix == "threads" and scale == "1000x50x4" else scale
            runs.append(one(s, mix, args.frames))
    lines = ["### Pre-trigger ring (issue 21)", "",
             f"`python3 bench/ring.py {' '.join(sys.argv[1:] if argv is None else argv)}` — a frame every "
             f"{DEFAULT_EVERY:g} s, the last {DEFAULT_SPAN:g} s kept ({int(DEFAULT_SPAN / DEFAULT_EVERY)} frames); "
             f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at the end.", "",
             "| scale | mix | processes | CPU per frame (median / max) | share of a core | + always-on steady "
             f"({ALWAYS_ON_STEADY_PCT} %) vs budget {BUDGET_PCT:g} % | ring held: bytes / RSS growth |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        total = r["share_pct"] + ALWAYS_ON_STEADY_PCT
        lines.append(f"| {r['scale']} | {r['mix']} | {r['processes']} | {r['frame_ms']:.1f} ms / {r['max_ms']:.1f} ms | "
                     f"{r['share_pct']:.2f} % | {total:.2f} % ({'within' if total <= BUDGET_PCT else 'OVER'}) | "
                     f"{r['arrow_mb']:.1f} MB / {r['rss_mb']:.1f} MB |")
    text = "\n".join(lines) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

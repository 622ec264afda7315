#!/usr/bin/env python3
"""The always-on recorder's peak RSS at its first descriptor snapshot, quickly.

    python3 bench/peak.py [--scale 1000x50x4] [--mixes default,files,sockets] [--rounds 2] [--out FILE.md]

The full continuous-recording measurement (bench/run.py, "Continuous recording") records for
ten minutes; the recorder's peak comes at its first snapshot, which takes descriptors and sockets
(the default cadence takes them every 1800 s), so this starts `procsnap record -o DIR -q` (the
always-on defaults: triggers armed, the pre-trigger ring, the event sources) under
bench/loadgen.py's load, waits for that snapshot to be written and a few seconds more, and reads
VmHWM from /proc/PID/status; the same with `--no-triggers` beside it, in turn, for --rounds
rounds.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import MIXES, Load  # noqa: E402
from tools import emit, find_procsnap  # noqa: E402

VARIANTS = {"defaults": [], "--no-triggers": ["--no-triggers"]}
BUDGET_MB = 100.0


def status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) * 1024
    return out


def one(procsnap: str, work: str, extra: list[str]) -> dict:
    d = tempfile.mkdtemp(dir=work)
    shutil.rmtree(d)
    p = subprocess.Popen([procsnap, "record", "-o", d, "-q", *extra], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(f"{d}/snapshots/*/*/*.parquet"):
            if time.monotonic() > deadline or p.poll() is not None:
                raise RuntimeError(f"no snapshot written by {p.args}")
            time.sleep(0.2)
        time.sleep(3)
        return status(p.pid)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(60)
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="1000x50x4")
    ap.add_argument("--mixes", default="default,files,sockets")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--procsnap")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    procsnap = find_procsnap(args.procsnap)
    n, m, k = (int(x) for x in args.scale.split("x"))
    work = tempfile.mkdtemp(prefix="procsnap-peak-")
    rows = []
    try:
        for mix in args.mixes.split(","):
            with Load(n, m, k, 0, 0, 900, 600, mix=MIXES[mix][0]):
                got = {v: [] for v in VARIANTS}
                for _ in range(args.rounds):
                    for v, extra in VARIANTS.items():
                        got[v].append(one(procsnap, work, extra)["VmHWM"] / 1e6)
                rows.append((mix, got))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["### Recorder peak RSS at its first descriptor snapshot", "",
             f"`python3 bench/peak.py {' '.join(sys.argv[1:] if argv is None else argv)}` — scale {args.scale}, "
             f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at the end; VmHWM per round, MB.", "",
             "| mix | defaults (triggers, ring) | --no-triggers | budget |", "|---|---|---|---|"]
    for mix, got in rows:
        cells = [" / ".join(f"{x:.1f}" for x in got[v]) for v in VARIANTS]
        worst = max(max(got[v]) for v in VARIANTS)
        lines.append(f"| {mix} | {cells[0]} | {cells[1]} | ≤ {BUDGET_MB:g} MB: "
                     f"{'within' if worst <= BUDGET_MB else 'missed'} |")
    text = "\n".join(lines) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

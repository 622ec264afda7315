#!/usr/bin/env python3
"""How fast procsnap replay opens, steps in time and scrolls (issue 22's budgets).

    python3 bench/replay.py --rec LONG [--steps 40] [--out FILE]

LONG is a long recording, e.g. the 24 h one of the 1000x50x4 host (see bench/synth.py)::

    python3 bench/loadgen.py -N 1000 -M 50 -K 4 --hold 900 &
    for i in 1 2 3 4; do procsnap snapshot -o /tmp/src -q; sleep 2; done; kill %1
    python3 bench/synth.py --from /tmp/src --out /tmp/r24h --duration 24h --interval 150 \\
        --fd-interval 1800 --layout compacted:64

The app runs headless under Textual's pilot (its real rendering, no terminal), in this process:

- open: from opening the recording to the first frame drawn (the processes view at the last
  snapshot), and the page checksums verified afterwards in a thread;
- steps: ``T`` and ``t`` at moments spread over the recording, in the processes view and in the
  host view, each timed from the key to the frame drawn (after the verification is done; the
  first steps during it are reported apart);
- scroll: a recording written here of one process holding 80,000 open files and 5,000 threads:
  the process view opened (Enter), then page down and up through it, each key timed.

It prints a Markdown section for BENCHMARKS.md (to --out too).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

OPEN_BUDGET, STEP_BUDGET = 2.0, 0.2
WIDE_FILES, WIDE_THREADS = 80_000, 5_000


def wide_recording(path: Path) -> Path:
    """Two snapshots of a host whose process 4242 holds WIDE_FILES open files and WIDE_THREADS threads."""
    from recorder.collect.collector import Snapshot
    from recorder.collect.tables import to_table
    from recorder.store.folder import Store
    t0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
    start = t0 - dt.timedelta(hours=1)
    with Store(path) as st:
        for i in range(2):
            ts = t0 + dt.timedelta(seconds=10 * i)
            sid = int(ts.timestamp() * 1_000_000)
            common = {"snapshot_id": sid, "ts": ts}
            s = Snapshot(sid, ts, "wide")
            base = {"boot_id": "b", "ppid": 1, "pgid": 1, "sid": 1, "state": "S", "uid": 0, "user": "root",
                    "ruid": 0, "gid": 0, "nice": 0, "priority": 20, "processor": 0, "rss": 1 << 30, "vms": 2 << 30,
                    "minflt": 0, "majflt": 0, "start_time": start, "utime": 10.0 + i, "stime": 1.0}
            s.tables["processes"] = to_table("processes", [
                {**base, "pid": 1, "name": "init", "cmdline": "init", "num_threads": 1, "num_fds": 10},
                {**base, "pid": 4242, "name": "wide", "cmdline": "wide --serve", "num_threads": WIDE_THREADS,
                 "num_fds": WIDE_FILES}], common)
            s.tables["threads"] = to_table("threads", [
                {"boot_id": "b", "pid": 4242, "tid": 4242 + k, "start_time": start, "name": f"w{k}", "state": "S",
                 "nice": 0, "priority": 20, "processor": 0, "utime": 0.01 * k + i, "stime": 0.0, "minflt": 0,
                 "majflt": 0} for k in range(WIDE_THREADS)], common)
            s.tables["open_files"] = to_table("open_files", [
                {"pid": 4242, "fd": str(k), "fd_num": k, "mode": "r", "type": "REG", "device": "254,0", "size": 4096,
                 "pos": 0, "inode": 100000 + k, "name": f"/data/shard-{k // 1000:03d}/segment-{k:06d}.db",
                 "deleted": False} for k in range(3, WIDE_FILES + 3)], common)
            s.tables["snapshots"] = to_table("snapshots", [{"kernel": "k", "procsnap_version": "bench",
                                                             "duration_ms": 1.0, "cpu_ms": 1.0, "recorder_pid": 1,
                                                             "skipped": 0}], common)
            st.write(s)
    return path


def imports() -> float:
    """Wall seconds of a fresh interpreter importing what `procsnap replay` imports before it opens
    the recording (the command framework, the replay app, Textual), less an empty interpreter's."""
    import subprocess

    def run(code):
        best = None
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE.parent)
            d = time.perf_counter() - t
            best = d if best is None else min(best, d)
        return best
    return run("import analyze.cli, analyze.commands.replay.app") - run("pass") + run("pass")


def stats(xs: list[float]) -> str:
    if not xs:
        return "–"
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(len(xs) * 0.9))]
    return f"{statistics.median(xs):.3f} / {p90:.3f} / {xs[-1]:.3f}"


IDLE: list[tuple[str, float]] = []  # (what, seconds until the app is idle again) of every key timed


async def timed(pilot, app, key, what: str = "") -> float:
    """Seconds from the key to its frame on screen: the app's own after-refresh callback, set by
    the redraw the key makes (a key that scrolls only: once the key is handled). The seconds
    until the app is idle again (the pilot's own wait, ~40 ms, and the frames either side read
    ahead meanwhile) go to IDLE."""
    drawn = []
    redraw = app.redraw

    def traced(*a, **kw):
        redraw(*a, **kw)
        app.call_after_refresh(lambda: drawn.append(time.perf_counter()))
    app.redraw = traced
    t = time.perf_counter()
    try:
        if callable(key):
            key()
        else:
            await pilot.press(key)
        if not drawn:
            app.call_after_refresh(lambda: drawn.append(time.perf_counter()))
        await pilot.pause()
        while not drawn:
            await asyncio.sleep(0.001)
    finally:
        app.redraw = redraw
    IDLE.append((what, time.perf_counter() - t))
    return drawn[0] - t


async def long_run(rec: str, steps: int, size: tuple[int, int]) -> dict:
    from analyze.commands.replay.app import ReplayApp
    from analyze.commands.replay.source import Source
    out: dict = {}
    t = time.perf_counter()
    src = Source([rec])
    out["source_s"] = time.perf_counter() - t
    app = ReplayApp(src)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        out["open_s"] = time.perf_counter() - t
        out["snapshots"] = len(src)
        during = [await timed(pilot, app, "T") for _ in range(3)]
        await app.workers.wait_for_complete()
        out["verified_s"] = time.perf_counter() - t
        out["during"] = during
        n = len(src)
        proc_steps, host_steps, cold = [], [], []
        for k in range(steps):
            j = int((n - 2) * k / max(1, steps - 1)) + 1
            if k % 4 == 3:  # the jump itself, timed: what b does (nothing read ahead there)
                cold.append(await timed(pilot, app, functools.partial(app.go, j)))
                continue
            app.go(j)   # a far jump, untimed: nothing read near it
            await pilot.pause()
            await app.workers.wait_for_complete()  # as a user reading the screen lets it finish
            proc_steps.append(await timed(pilot, app, "T" if k % 2 else "t", "step"))
        await pilot.press("h")
        await pilot.pause()
        for k in range(steps):
            app.go(int((n - 2) * k / max(1, steps - 1)) + 1)
            await pilot.pause()
            await app.workers.wait_for_complete()
            host_steps.append(await timed(pilot, app, "T" if k % 2 else "t", "step"))
        # the floor: a key that changes nothing
        out["floor"] = [await timed(pilot, app, "x", "floor") for _ in range(10)]
        out["idle"] = [x for w, x in IDLE if w == "step"]
        out["cold"] = cold
        out["proc_steps"], out["host_steps"] = proc_steps, host_steps
    return out


async def wide_run(rec: str, size: tuple[int, int]) -> dict:
    from analyze.commands.replay.app import ReplayApp
    from analyze.commands.replay.source import Source
    out: dict = {}
    app = ReplayApp(Source([rec]))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        lines = app.query_one("#lines")
        row = next(k for k, pid in enumerate(app.page.keys) if pid == 4242)
        lines.move_to(row)
        out["enter_s"] = await timed(pilot, app, "enter")
        out["rows"] = len(lines.body)
        down = [await timed(pilot, app, "pagedown") for _ in range(60)]
        up = [await timed(pilot, app, "pageup") for _ in range(20)]
        out["end_s"] = await timed(pilot, app, "end")
        out["home_s"] = await timed(pilot, app, "home")
        out["page"] = down + up
        out["files_view_s"] = await timed(pilot, app, "o")
        out["files_rows"] = len(lines.body)
        out["files_page"] = [await timed(pilot, app, "pagedown") for _ in range(40)]
    return out


def section(long: dict, wide: dict, rec: str, size) -> str:
    def verdict(v, budget):
        return "MET" if v <= budget else "MISSED"
    step_all = long["proc_steps"] + long["host_steps"]
    worst = max(step_all)
    med = statistics.median(step_all)
    L = ["## procsnap replay (issue 22)", "",
         f"Measured by `python3 bench/replay.py --rec R` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: "
         f"the app headless under Textual's pilot at {size[0]}x{size[1]} (its real rendering, no terminal), "
         "in one process; each figure from the key to the frame drawn. R: a 24 h recording of the 1000x50x4 "
         f"host synthesised by bench/synth.py (interval 150 s, descriptors every 1800 s, compacted:64; "
         f"{long['snapshots']} snapshots).", "",
         "| figure | budget | measured | verdict |", "|---|---:|---:|---|",
         f"| open: the command's imports, then the recording opened to the first frame drawn | ≤ {OPEN_BUDGET} s | "
         f"{long['imports_s'] + long['open_s']:.2f} s (imports {long['imports_s']:.2f} s, recording "
         f"{long['source_s']:.2f} s) | **{verdict(long['imports_s'] + long['open_s'], OPEN_BUDGET)}** |",
         f"| step in time (t/T) in the processes and host views, key to frame on screen, median / worst of "
         f"{len(step_all)} | ≤ {STEP_BUDGET} s | {med:.3f} / {worst:.3f} s | **{verdict(worst, STEP_BUDGET)}** |",
         f"| a jump to a moment far away (as b does: nothing read ahead there), median / worst of "
         f"{len(long['cold'])} | "
         f"≤ {STEP_BUDGET} s | {statistics.median(long['cold']):.3f} / {max(long['cold']):.3f} s | "
         f"**{verdict(max(long['cold']), STEP_BUDGET)}** |",
         f"| page down/up through {wide['rows']:,} lines (a process with {WIDE_FILES:,} open files and "
         f"{WIDE_THREADS:,} threads), median / p90 / worst | – | {stats(wide['page'])} s | reported |", "",
         "| more figures | seconds |", "|---|---:|",
         f"| page checksums of every file verified, in a thread, done after opening | {long['verified_s']:.2f} |",
         f"| steps while that runs (the first 3), each | {', '.join(f'{x:.3f}' for x in long['during'])} |",
         f"| steps, processes view: median / p90 / worst | {stats(long['proc_steps'])} |",
         f"| after a step, until the app is idle again (the frames either side read ahead, and the pilot's own "
         f"wait): median / p90 / worst | {stats(long['idle'])} |",
         f"| a key that changes nothing, the same way (the pilot's own wait): median | "
         f"{statistics.median(long['floor']):.3f} |",
         f"| steps, host view: median / p90 / worst | {stats(long['host_steps'])} |",
         f"| Enter on the wide process: its view built ({wide['rows']:,} lines: ps -L and lsof -p listings) | "
         f"{wide['enter_s']:.3f} |",
         f"| End / Home in it | {wide['end_s']:.3f} / {wide['home_s']:.3f} |",
         f"| files view (every open file, {wide['files_rows']:,} lines) built | {wide['files_view_s']:.3f} |",
         f"| page down in it, median / p90 / worst | {stats(wide['files_page'])} |", "",
         "Steps are taken at moments spread over the whole recording, each after a far jump (untimed). After each "
         "frame is drawn, a thread reads the frames either side (top's frame: rates from the snapshot before "
         "only), so a step finds its frame read while the user reads the screen; a step right after a jump "
         "reads its frame itself. The host view's rates and history charts are read once, at opening. Only "
         "the rows on screen are drawn, so scrolling costs the same whatever the length of the view (the pilot's "
         "own wait, the floor above, is in each scroll figure). Load average at the start: "
         f"{open('/proc/loadavg').read().split()[0]} (2 cores shared with other work).", ""]
    return "\n".join(L)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rec", required=True, help="a long recording (the 24 h one of the 1000x50x4 host)")
    p.add_argument("--steps", type=int, default=40, help="steps timed per view (default 40)")
    p.add_argument("--size", default="120x40", help="terminal size (default 120x40)")
    p.add_argument("--out", help="also write the section to this file")
    args = p.parse_args()
    size = tuple(int(x) for x in args.size.lower().split("x"))
    long = asyncio.run(long_run(args.rec, args.steps, size))
    long["imports_s"] = imports()
    with tempfile.TemporaryDirectory() as tmp:
        wide = asyncio.run(wide_run(str(wide_recording(Path(tmp) / "wide")), size))
    text = section(long, wide, args.rec, size)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

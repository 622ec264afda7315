#!/usr/bin/env python3
"""Where one machine ends: procsnap's own answers over a synthesised fleet.

    python3 bench/fleet.py [--hosts 10,50,200] [--report-hosts 1,3] [--duration 24h]
                           [--scale 1000x50x4] [--work DIR] [--out BENCHMARKS.md] [--quick]

Takes a few real snapshots of this host under bench/loadgen.py's load (the scale), synthesises
one host's recording of --duration from them with bench/synth.py (the recorder's default cadence,
compacted as the recorder compacts), and makes fleets of each size of --hosts from it: every host
a copy of that recording under its own ``host=`` folders (hard links: the sizes are the real
ones, the disk is spent once). Then, per fleet, each command as a whole process, timed on its
second run (the first warms the page cache; a first run over a minute is the figure), with the
peak RSS of that run:

- ``lsof --rec F --host h007 --at T -p PID``: one host at a moment;
- ``ps --rec F --at T aux``: every host at a moment;
- ``report F --from D --to D+1d -f json``: the whole fleet over one day (on the fleets of
  --report-hosts: its memory grows with hosts × snapshots).

Every command runs with its address space bounded (--max-memory, 12 GiB by default), so that a
command that would take the machine's memory fails instead, and says so in the table.

The table goes into --out between the markers ``<!-- fleet:begin -->`` and ``<!-- fleet:end -->``
(appended with them when absent).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as rt  # noqa: E402
import synth  # noqa: E402

BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"
WITHIN_S = 10.0  # the answer time the conclusion is stated against
DEFAULT_INTERVAL, DEFAULT_FD_INTERVAL = 150.0, 1800.0  # procsnap record's defaults (see BENCHMARKS.md)


def replicate(one: str, out: str, hosts: list[str]) -> int:
    """A fleet recording at OUT: ONE's files (one host) hard-linked under each of HOSTS' host=
    folders; returns the files made."""
    n = 0
    os.makedirs(out, mode=0o700)
    marker = os.path.join(one, "procsnap.json")
    if os.path.exists(marker):
        shutil.copyfile(marker, os.path.join(out, "procsnap.json"))
    for table in sorted(os.listdir(one)):
        tdir = os.path.join(one, table)
        if not os.path.isdir(tdir):
            continue
        (src_host,) = [h for h in os.listdir(tdir) if h.startswith("host=")]
        for date in sorted(os.listdir(os.path.join(tdir, src_host))):
            ddir = os.path.join(tdir, src_host, date)
            for h in hosts:
                dst = os.path.join(out, table, f"host={h}", date)
                os.makedirs(dst, mode=0o700, exist_ok=True)
                for f in os.listdir(ddir):
                    os.link(os.path.join(ddir, f), os.path.join(dst, f))
                    n += 1
    return n


def measure(argv: list[str], timeout: float, max_memory: int | None = None) -> dict:
    """One run of ARGV: wall seconds, peak RSS (MiB) of the process, exit status."""
    def bound():
        if max_memory:
            resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))

    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=bound)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return {"wall": None, "rss": None, "exit": "timeout"}
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    # RUSAGE_CHILDREN's maxrss is the largest of all children so far: run each command in a child
    # of its own that reports its child's (see peak()).
    return {"wall": wall, "exit": p.returncode, "err": err.strip().splitlines()[-1:] if p.returncode else [],
            "rss_children": ru.ru_maxrss / 1024}


def peak(argv: list[str], timeout: float, max_memory: int | None = None) -> dict:
    """measure(ARGV) in a child process of its own, so that the peak RSS is this command's alone."""
    code = ("import json, sys; sys.path.insert(0, %r); import fleet; "
            "print(json.dumps(fleet.measure(%r, %r, %r)))" % (HERE, argv, timeout, max_memory))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout + 60)
    import json
    r = json.loads(out.stdout)
    r["rss"] = r.pop("rss_children", None)
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--hosts", default="10,50,200", help="fleet sizes for lsof and ps (default 10,50,200)")
    p.add_argument("--report-hosts", default="1,3", help="fleet sizes for report (default 1,3)")
    p.add_argument("--max-memory", default="12G", help="address space each command may take (default 12G)")
    p.add_argument("--duration", type=synth.parse_seconds, default=86400.0, help="span per host (default 24h)")
    p.add_argument("--scale", default="1000x50x4", help="loadgen NxMxK of the host imitated (default 1000x50x4)")
    p.add_argument("--snapshots", type=int, default=3, help="real snapshots to synthesise from (default 3)")
    p.add_argument("--work", help="work folder (default: a new one under /var/tmp, removed at the end)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "BENCHMARKS.md"))
    p.add_argument("--timeout", type=float, default=900.0, help="seconds a command may take (default 900)")
    p.add_argument("--quick", action="store_true", help="a tiny load, 2 h, fleets of 2 and 3: checks the harness")
    p.add_argument("--procsnap", help="procsnap executable (default: beside this Python, else on PATH)")
    args = p.parse_args(argv)
    if args.quick:
        args.hosts, args.report_hosts, args.duration, args.scale, args.snapshots = "2,3", "2", 7200.0, "20x10x2", 2
    sizes = [int(x) for x in args.hosts.split(",")]
    report_sizes = [int(x) for x in args.report_hosts.split(",")]
    sys.path.insert(0, os.path.dirname(HERE))
    from recorder.units import parse_size
    max_memory = parse_size(args.max_memory)
    n, m, k = rt.parse_scale(args.scale)
    procsnap = rt.find_procsnap(args.procsnap)
    work = args.work or tempfile.mkdtemp(prefix="procsnap-fleet-", dir="/var/tmp")
    log = lambda s: print(f"fleet: {s}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        src = os.path.join(work, "src")
        with rt.Load(n, m, k, 0, 0, hold=3600, timeout=600):
            for _ in range(args.snapshots):
                subprocess.run([procsnap, "snapshot", "-o", src, "-q"], check=True, stdout=subprocess.DEVNULL)
        log(f"{args.snapshots} real snapshots at {args.scale}")
        one = os.path.join(work, "one")
        info = synth.Synth(src, one, args.duration, DEFAULT_INTERVAL, DEFAULT_FD_INTERVAL,
                           layout="compacted:64").run()
        log(f"one host: {info['snapshots']} snapshots, {info['files']} files, {info['bytes'] / 1e6:.0f} MB")
        at_us = info["first_id"] + int(info["snapshots"] * 0.75) // info["fd_every"] * info["fd_every"] * int(
            DEFAULT_INTERVAL * 1e6)
        at = dt.datetime.fromtimestamp(at_us / 1e6, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        start = dt.datetime.fromtimestamp(info["first_id"] / 1e6, dt.timezone.utc)
        day = (start.strftime("%Y-%m-%dT%H:%M:%SZ"), (start + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        rows = []
        for size in sorted(set(sizes) | set(report_sizes)):
            hosts = [f"h{i:03d}" for i in range(size)]
            fleet = os.path.join(work, f"fleet-{size}")
            files = replicate(one, fleet, hosts)
            specs = []
            if size in sizes:
                specs += [("lsof --at, one host", ["lsof", "--rec", fleet, "--host", hosts[min(7, size - 1)], "--at",
                                                   at, "-p", str(info["leak_pid"])]),
                          ("ps --at aux, every host", ["ps", "--rec", fleet, "--at", at, "aux"])]
            if size in report_sizes:
                specs.append(("report, the fleet over one day", ["report", fleet, "--from", day[0], "--to", day[1],
                                                                 "-f", "json"]))
            for name, a in specs:
                warm = peak([procsnap] + a, args.timeout, max_memory)
                # timed again once the page cache is warm, unless the first run took over a minute or failed
                again = warm["wall"] is not None and warm["wall"] < 60 and warm["exit"] == 0
                r = peak([procsnap] + a, args.timeout, max_memory) if again else warm
                log(f"{size} hosts, {name}: {r}")
                rows.append((size, files, info["bytes"] * size, name, r))
            shutil.rmtree(fleet)
        write(args.out, section(rows, info, args, at, day))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def section(rows, info, args, at, day) -> str:
    L = [BEGIN, "## Fleet: where one machine ends", "",
         f"Written by `python3 bench/fleet.py --hosts {args.hosts} --report-hosts {args.report_hosts}` (bench/run.py "
         "keeps this section as it is).", ""]
    L.append(f"`bench/fleet.py` ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d}, this machine: {os.cpu_count()} cores). "
             f"One host's {args.duration / 3600:g} h recording synthesised by `bench/synth.py` from "
             f"{args.snapshots} real snapshots of this host under `bench/loadgen.py` at {args.scale}, at the "
             f"recorder's default cadence (a snapshot every {DEFAULT_INTERVAL:g} s, descriptors every "
             f"{DEFAULT_FD_INTERVAL:g} s), compacted by 64: {info['snapshots']} snapshots, {info['files']} files, "
             f"{info['bytes'] / 2**20:.1f} MiB. A fleet of N hosts is N copies of it under their own `host=` "
             "folders (hard links). Each command runs as a whole process, timed on its second run (the first "
             "warms the page cache; a first run over a minute is the figure); peak RSS of that run. Each "
             f"command's address space is bounded at {args.max_memory} (RLIMIT_AS), so that one that would "
             "take the machine's memory fails instead (exit 1, DuckDB's out-of-memory error).")
    L += ["", f"Moment: `--at {at}`; day: `--from {day[0]} --to {day[1]}`.", "",
          "| hosts | files | bytes | command | wall s | peak RSS MiB | exit |", "|---:|---:|---:|---|---:|---:|---|"]
    for size, files, nbytes, name, r in rows:
        wall = f"{r['wall']:.2f}" if r["wall"] is not None else "—"
        rss = f"{r['rss']:.0f}" if r.get("rss") else "—"
        L.append(f"| {size} | {files} | {nbytes / 2**30:.2f} GiB | {name} | {wall} | {rss} | {r['exit']} |")
    ok = {}
    for size, _, _, name, r in rows:
        ok.setdefault(name, []).append((size, r["wall"] is not None and r["wall"] <= WITHIN_S and r["exit"] == 0))
    L.append("")
    for name, res in ok.items():
        within = [s for s, good in res if good]
        measured = ", ".join(str(s) for s, _ in res)
        L.append(f"- {name}: " + (f"within {WITHIN_S:g} s up to **{max(within)} hosts** of those measured ({measured})."
                                  if within else f"not within {WITHIN_S:g} s at any size measured ({measured})."))
    L.append(END)
    return "\n".join(L) + "\n"


def write(path: str, text: str) -> None:
    old = open(path).read() if os.path.exists(path) else ""
    if BEGIN in old and END in old:
        new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", lambda _: text, old, flags=re.S)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(new)


if __name__ == "__main__":
    sys.exit(main())

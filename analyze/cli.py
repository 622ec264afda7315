"""The ``procsnap`` command: a few lines over the library for each sub-command.

Every failure is one line on stderr: exit 2 for usage errors (bad options,
unknown names, bad values), 1 for everything else; 3 for an answer that is
partial (recorded rows unreadable: see analyze.data.damage). Never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from typing import List, Optional

import typer

from recorder import defaults as DEF

from analyze.data.damage import retrying
from analyze.errors import ProcsnapError, UsageError
from analyze.errors import report as report_error  # cli.py has a `report` command
from analyze.data.interrupt import INTERRUPTED, stoppable

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer over click
    import click.exceptions as _cx

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    help="procsnap: a flight recorder for Linux hosts. Records processes, threads and host counters "
         "to Parquet; answers questions about any moment with SQL.",
)

# Output options, declared once and shared by every command that prints rows.
FormatOpt = typer.Option(None, "-f", "--format", help="Output format: table, csv or json "
                                                      "(default: table on a terminal, csv otherwise).")
RecOpt = typer.Option(None, "--rec", help="Recording folder to read (repeatable). Without it, a live snapshot "
                                          "is taken in memory.")
HostOpt = typer.Option(None, "--host", help="Only these hosts of a fleet recording (repeatable).")


def _format(fmt: Optional[str]) -> str:
    from analyze.output import FORMATS, default_format
    if fmt is None:
        return default_format()
    if fmt not in FORMATS:
        raise UsageError(f"bad format {fmt!r}: use table, csv or json")
    return fmt


def _open(rec: Optional[List[str]], host: Optional[List[str]] = None, live=None):
    """The recordings, or LIVE (a snapshot from db.collect_live) as one."""
    from analyze.data.db import Recording
    if rec:
        return Recording.open(rec, hosts=host)
    return Recording.from_snapshot(live)


# --------------------------------------------------------------------------
# Recording


def _collector(host: Optional[str], interval: Optional[float], redact: bool = True):
    """The recorder's collector: Arrow tables (descriptor rows in Arrow chunks as they come: a flat peak)."""
    from recorder.collect.collector import Collector
    return Collector(host=host, interval=interval, redact=redact)


NoRedactOpt = typer.Option(False, "--no-redact", help="Keep credentials in command lines (redacted by default; "
                                                      "docs/redaction.md lists what is caught).")


def _store(output: str, allow_shared: bool = False):
    from recorder.store.folder import Store, StoreError
    try:
        return Store(output, allow_shared=allow_shared)
    except StoreError as e:
        raise ProcsnapError(str(e)) from None


AllowSharedOpt = typer.Option(
    False, "--allow-shared-folder",
    help="Record into a folder (or below one) that another user owns or may write. Refused by default: "
         "that user could swap it or plant links in it (docs/security.md). Links are never followed either way.")


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5g``, ``800000`` (bytes; K/M/G/T are powers of 1024): recorder.units' grammar."""
    from recorder.units import UnitError
    from recorder.units import parse_size as parse
    try:
        return parse(text)
    except UnitError as e:
        raise UsageError(str(e)) from None


@app.command()
def record(
    output: str = typer.Option(..., "-o", "--output", help="Recording folder (created if missing)."),
    interval: Optional[str] = typer.Option(
        None, "-i", "--interval", show_default=f"{DEF.DEFAULT_INTERVAL:g}",
        help="Seconds between snapshots of host, processes and threads (5, 0.5, 1m)."),
    files_interval: Optional[str] = typer.Option(
        None, "--files-interval", show_default=f"{DEF.DEFAULT_FILES_INTERVAL:g}",
        help="Seconds between snapshots of open files and sockets (the costly part); "
             "the --interval when only that is given."),
    count: Optional[int] = typer.Option(None, "-n", "--count", help="Stop after this many snapshots."),
    duration: Optional[str] = typer.Option(
        None, "-d", "--duration",
        help="Record for this long (30s, 10m, 2h), both ends included: -i 2 -d 6s takes snapshots at 0, 2, 4 and 6 s."),
    incident: Optional[str] = typer.Option(
        None, "--incident", metavar="[DURATION]",
        help=f"Start with the incident preset: everything every {DEF.INCIDENT_INTERVAL:g}s for DURATION "
             f"(default {DEF.DEFAULT_INCIDENT / 60:g}m), then the normal cadences. SIGHUP, or a file named "
             "'incident' in the folder, starts it later."),
    keep: Optional[str] = typer.Option(None, "--keep", help="Drop snapshots older than this (7d, 12h)."),
    max_size: Optional[str] = typer.Option(None, "--max-size",
                                           help="Drop the oldest snapshots to keep the folder under this on disk, as du "
                                                "counts it (500M, 2G)."),
    compact_min: int = typer.Option(DEF.DEFAULT_COMPACT_MIN, "--compact-min", help="Merge a day's small files once this many "
                                                              "snapshots are waiting (0: never compact)."),
    grace: str = typer.Option(f"{DEF.DEFAULT_GRACE:g}", "--grace", help="How long files merged by compaction stay for readers "
                                                     "that listed them (seconds)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress, even on a terminal."),
    host: Optional[str] = typer.Option(None, "--host", help="Host name to record under (default: this host's name)."),
    thread_events: bool = typer.Option(
        False, "--thread-events",
        help="Store every thread's start, exit and rename in process_events (default: counted per process)."),
    triggers: Optional[str] = typer.Option(
        None, "--triggers", metavar="FILE",
        help="TOML file changing the triggers that start the incident preset by themselves (thresholds, "
             "enabled, quiet, max_share; docs/operations.md lists them and their defaults). Without -i they "
             "are armed with their defaults; with -i only when this is given (an empty file: the defaults)."),
    no_triggers: bool = typer.Option(False, "--no-triggers", help="Watch no trigger: only a person starts the incident preset."),
    thread_samples: bool = typer.Option(
        False, "--thread-samples",
        help="Sample where threads wait (thread_samples) all the time, not only during the incident preset."),
    sample_states: str = typer.Option(
        "RD", "--sample-states", metavar="STATES",
        help="Thread states the sampler records: R and D by default; RDS adds sleeping threads (blocked in "
             "read(), poll(), a lock), at several times the cost."),
    no_redact: bool = NoRedactOpt,
    allow_shared_folder: bool = AllowSharedOpt,
):
    """Record snapshots of the host into a Parquet recording until COUNT, DURATION or a signal.

    Example: procsnap record -o ./incident -i 2 -d 10m

    Always-on: procsnap record -o /var/lib/procsnap --keep 7d --max-size 2G

    Without -i, the always-on cadences of --interval and --files-interval (within the budget of
    1% of one core on a host with 1000 processes of 50 descriptors: BENCHMARKS.md; see
    docs/operations.md). With -i alone, everything every interval.

    Ctrl-C or SIGTERM finishes the snapshot in hand and leaves a valid recording. SIGHUP
    starts the incident preset (or ends a running one); so does `echo 30m > DIR/incident`; so
    does a trigger (CPU, memory or I/O pressure, an OOM kill, ...: --triggers, --no-triggers).
    A full disk drops snapshots (counted) and recording resumes when space returns.
    """
    from recorder.memory import without_remote_filesystems
    without_remote_filesystems()  # a recorder lives for days: no library it never uses
    from recorder.store.compact import Maintenance, recover
    from recorder.record import progress_line
    from recorder.record import record as run

    from recorder.units import UnitError, parse_duration

    def seconds(text: str, what: str, positive: bool = True) -> float:
        try:
            return parse_duration(text, what, positive=positive)
        except UnitError as e:
            raise UsageError(str(e)) from None

    def positive(text: Optional[str], what: str) -> Optional[float]:
        return None if text is None else seconds(text, what)

    iv = positive(interval, "interval")
    fiv = positive(files_interval, "files interval")
    if fiv is None:
        fiv = DEF.DEFAULT_FILES_INTERVAL if iv is None else None
    if iv is None:
        iv = DEF.DEFAULT_INTERVAL
    if count is not None and count < 1:
        raise UsageError(f"bad count {count}: must be at least 1")
    dur = positive(duration, "duration")
    if not sample_states or set(sample_states) - set("RDSTtZI") or len(set(sample_states)) != len(sample_states):
        raise UsageError(f"bad --sample-states {sample_states!r}: letters of R, D, S, T, t, Z, I, each once")
    if triggers is not None and no_triggers:
        raise UsageError("--triggers and --no-triggers go against each other")
    from recorder.collect.triggers import ConfigError, load_config
    try:
        # Armed by default in always-on mode; a recording with its own -i is already detailed.
        armed = triggers is not None or (not no_triggers and interval is None)
        trigger_config = load_config(triggers) if armed else None
    except ConfigError as e:
        raise UsageError(str(e)) from None
    inc = positive(incident, "incident duration")
    if compact_min < 0:
        raise UsageError(f"bad --compact-min {compact_min}: must be 0 or more")
    gr = seconds(grace, "grace", positive=False)
    m = Maintenance(compact_min=compact_min or None, grace=gr, keep=positive(keep, "keep"),
                    max_size=parse_size(max_size) if max_size is not None else None)
    show = not quiet and sys.stderr.isatty()
    collector = _collector(host, iv, redact=not no_redact)
    from recorder.store.folder import StoreError
    with _store(output, allow_shared_folder) as store:
        try:
            recover(store)
            from recorder.collect.kernel_events import follow
            from recorder.collect.process_events import listen
            events = listen(collector, thread_events=thread_events)
            kernel_log = follow(store, collector, redact=not no_redact, known=events.started)
            watcher = None
            if trigger_config is not None:
                from recorder.collect.triggers import Watcher
                watcher = Watcher(trigger_config, collector.fs).arm()
                kernel_log.on_report = watcher.kernel_report
            from recorder.collect.thread_samples import Sampler
            from recorder.collect import system
            sampler = Sampler(collector.boot_id, system.read_proc_stat(collector.fs)["btime"], collector.fs.root,
                              states=sample_states,
                              always=thread_samples).start()
            ring = None
            if watcher is not None and trigger_config.ring_span > 0 and trigger_config.ring_every < iv:
                from recorder.collect.ring import Ring
                ring = Ring(collector, trigger_config.ring_every, trigger_config.ring_span)
            res = run(store, collector, iv, count=count, duration=dur, progress=progress_line() if show else None,
                      files_interval=fiv, incident=inc, maintenance=m, kernel_log=kernel_log, process_events=events,
                      triggers=watcher, thread_samples=sampler, ring=ring)
        except StoreError as e:  # the folder was moved, swapped or made unsafe under the recorder
            if show:
                sys.stderr.write("\n")
            raise ProcsnapError(str(e)) from None
    if show:
        sys.stderr.write("\n")
        why = f" (stopped by {res.stopped_by})" if res.stopped_by else ""
        print(f"procsnap: wrote {res.snapshots} snapshots, {res.bytes / 1e6:.1f} MB to {output}{why}", file=sys.stderr)


@app.command()
def snapshot(
    output: str = typer.Option(..., "-o", "--output", help="Recording folder (created if missing)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print nothing."),
    host: Optional[str] = typer.Option(None, "--host", help="Host name to record under."),
    no_redact: bool = NoRedactOpt,
    allow_shared_folder: bool = AllowSharedOpt,
    tables: Optional[str] = typer.Option(
        None, "--tables", help="Only these tables, comma-separated (system, disks, nics, processes, threads, "
                               "open_files, sockets); what they need comes along. Default: all."),
):
    """Take one snapshot and add it to a recording.

    Example: procsnap snapshot -o ./before-deploy

    Without descriptors, as atop samples: procsnap snapshot -o ./rec --tables processes,threads,system
    """
    from analyze.commands.snapshot import take  # (`procsnap snapshot` itself runs it without typer: analyze/entry.py)
    take(output, quiet, host, redact=not no_redact, tables=tables, allow_shared=allow_shared_folder)


# --------------------------------------------------------------------------
# Asking questions


@app.command()
def info(
    dirs: List[str] = typer.Argument(..., metavar="DIR...", help="Recording folder(s)."),
    fmt: Optional[str] = typer.Option("table", "-f", "--format", help="table (text) or json."),
    host: Optional[List[str]] = HostOpt,
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Read every page of every file and check its Parquet checksum (the default; "
                                     "--no-verify checks names, sizes and footers only)."),
):
    """Time span, snapshots, hosts, rows and bytes per table, how complete the evidence is,
    and every file left out (damaged, foreign, or failing its page checksums).

    Example: procsnap info ./incident
    """
    from analyze.commands import info as I
    if fmt not in ("table", "json"):
        raise UsageError(f"bad format {fmt!r}: use table or json")
    from analyze.data.damage import EXCLUDED, DamageFound, verify as check_pages
    from analyze.data.db import Recording
    rec = Recording.open(dirs, hosts=host, err=False, pages=verify)  # the damage is listed in the output
    if verify:  # every file read was checked as it was chosen; what is read now is what was checked
        bad = check_pages([f for files in rec.files.values() for f in files])
        if bad:  # left out as any damaged file is: open again without them (and with what they replaced)
            EXCLUDED.update(bad)
            raise DamageFound()
    rec.verified = verify
    s = I.summarize(rec)
    if fmt == "json":
        from analyze.output import json_value
        print(json.dumps(json_value(s), indent=1))
    else:
        print(I.text(s))


@app.command()
def manifest(
    dirs: List[str] = typer.Argument(..., metavar="DIR...", help="Recording folder(s)."),
    write: bool = typer.Option(False, "--write", help="Write each host's manifest into its recording, as "
                                                      "_procsnap/live/host=HOST.csv (paths relative to the recording), "
                                                      "instead of printing one list."),
    host: Optional[List[str]] = HostOpt,
):
    """The live files of each table: those procsnap reads, none of them covered by a compacted
    file, for Spark, Trino or any engine that would otherwise read the rows of a compaction's
    grace period twice (docs/fleet.md). Prints CSV (table_name,path) unless --write.

    Example: procsnap manifest --write /var/lib/procsnap
    """
    from analyze.commands import manifest as M
    from analyze.data.db import Recording
    rec = Recording.open(dirs, hosts=host, derived=False)
    live = M.live_files(rec)
    if write:
        for (root, hostdir), rows in live.items():
            M.write(root, hostdir, rows)
        print(f"procsnap: {sum(len(r) for r in live.values())} live files of {len(live)} hosts written",
              file=sys.stderr)
        return
    sys.stdout.write(M.text([(t, os.path.join(root, p)) for (root, _), rows in live.items() for t, p in rows]))


@app.command()
def ship(
    src: str = typer.Argument(..., metavar="DIR", help="The recording folder (a recorder may be writing it)."),
    url: str = typer.Argument(..., metavar="s3://BUCKET/PREFIX", help="Where to: many hosts may share one prefix."),
    every: Optional[float] = typer.Option(None, "--every", help="Ship again every SECONDS (default: one pass)."),
    grace: float = typer.Option(DEF.DEFAULT_GRACE, "--grace",
                                help="Seconds a file the recording no longer has stays in the bucket (as --grace of "
                                     "record: a reader that listed it can still read it)."),
    bwlimit: Optional[str] = typer.Option(None, "--bwlimit", help="Upload at most this many bytes a second (5M, 500K)."),
    state: Optional[str] = typer.Option(None, "--state", help="State file: what was shipped (default: under "
                                                              "$XDG_STATE_HOME/procsnap/ship)."),
):
    """Copy a recording to S3-compatible object storage: committed snapshots and compactions
    only, table first (the prefix takes many hosts), merged and dropped files removed after the
    grace period, resumable. Credentials come from the usual AWS variables and files.

    Example: procsnap ship --every 60 --bwlimit 2M /var/lib/procsnap s3://ops-recordings/fleet
    """
    from analyze.commands import ship as S
    from analyze.data.remote import is_url
    if not is_url(url):
        raise UsageError(f"{url}: not an s3:// URL")
    if (every is not None and every <= 0) or grace < 0:
        raise UsageError("--every must be positive and --grace not negative")
    rate = parse_size(bwlimit) if bwlimit is not None else None
    if rate == 0:
        raise UsageError("--bwlimit must be positive")
    return S.run(src, url, state, grace, rate, every, sys.stderr)


@app.command()
def query(
    sql: Optional[str] = typer.Argument(None, metavar="[SQL]", help="SQL to run over the views."),
    rec: Optional[List[str]] = RecOpt,
    name: Optional[str] = typer.Option(None, "--name", "-N", help="Run the named query queries/NAME.sql."),
    param: Optional[List[str]] = typer.Option(None, "-p", "--param", help="KEY=VALUE for a named query (repeatable)."),
    fmt: Optional[str] = FormatOpt,
    host: Optional[List[str]] = HostOpt,
):
    """Run SQL, or a named query, over a recording (or a live snapshot without --rec).

    Examples:
      procsnap query --rec ./incident "SELECT name, max(rss) FROM processes GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
      procsnap query --rec ./incident --name top_cpu -p start=03:10 -p end=03:20
      procsnap query "SELECT pid, name, num_threads FROM processes ORDER BY num_threads DESC LIMIT 5"

    Tables: snapshots, system, disks, nics, filesystems, processes, threads, open_files,
    sockets, kernel_events, process_events, triggers, thread_samples; views: process_rates, thread_rates, system_rates, disk_rates, nic_rates,
    netstat_rates, process_exits (`procsnap schema` describes them).
    """
    from analyze.data.damage import render
    from analyze.data import db  # noqa: F401 - imported here, where Python may still cache its bytecode
    from analyze.data.named import bind, get_query, parse_params
    from analyze.data.sandbox import confined
    out_fmt = _format(fmt)
    if (sql is None) == (name is None):
        raise UsageError("give either SQL or --name NAME")
    if param and not name:
        raise UsageError("-p goes with --name")
    q = get_query(name) if name is not None else None
    given = parse_params(param or [])
    if sql is not None:  # refused before any file or process is read (Recording.execute checks again)
        import duckdb
        from analyze.data.gate import check_read_only
        check_read_only(duckdb.connect(), sql)

    # The live snapshot is taken here, before confinement: a confined thread may not inspect
    # other processes (their sockets would come out without an owner).
    from analyze.data.db import collect_live
    live = None if rec else collect_live()
    if rec:  # a recording in a bucket is mirrored now: the confined thread may not connect nor write
        from analyze.data.remote import is_url, mirror
        rec = [str(mirror(r, host)) if is_url(r) else r for r in rec]

    def run():
        r = _open(rec, host, live)
        if q:
            return r.execute(q.sql, bind(q, given, r))
        return r.execute(sql)

    # The SQL is checked (Recording.execute) and run where the kernel forbids writing.
    cols, rows = confined(run)
    render(cols, rows, out_fmt)


@app.command("queries")
def list_queries(fmt: Optional[str] = FormatOpt):
    """List the named queries with their titles and parameters.

    Example: procsnap queries
    """
    from analyze.output import render
    from analyze.data.named import all_queries
    rows = [(q.name, q.title, ", ".join(f"{p.name}={p.default}" if p.default else p.name for p in q.params))
            for q in all_queries()]
    render(["name", "title", "params"], rows, _format(fmt))


@app.command()
def schema(
    table: Optional[str] = typer.Argument(None, help="Only this table."),
    markdown: bool = typer.Option(False, "--markdown", help="The whole reference as Markdown (docs/schema.md)."),
    fmt: Optional[str] = FormatOpt,
):
    """Describe the tables: columns, types, units and what NULL means.

    Example: procsnap schema processes
    """
    from recorder.schema import TABLES

    from analyze.output import render
    from analyze.data.reference import markdown as md
    if markdown:
        sys.stdout.write(md())
        return
    if table is not None and table not in TABLES:
        raise UsageError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    rows = [(t.name, c.name, c.sql_type, c.unit, c.description)
            for t in TABLES.values() if table in (None, t.name) for c in t.columns]
    render(["table", "column", "type", "unit", "meaning"], rows, _format(fmt))


@app.command()
def diff(
    recordings: Optional[List[str]] = typer.Argument(None, metavar="[BEFORE AFTER]",
                                                     help="Two recordings to compare (before and after a deploy)."),
    rec: Optional[List[str]] = typer.Option(None, "--rec", help="One recording: compare two of its moments."),
    at_from: Optional[str] = typer.Option(None, "--from", help="First moment (with --rec: default its start; "
                                                              "with two recordings: the moment of BEFORE, default its end)."),
    at_to: Optional[str] = typer.Option(None, "--to", help="Second moment (default: the end; with two recordings, "
                                                          "the moment of AFTER)."),
    threshold: float = typer.Option(10.0, "--threshold", help="Hide numeric changes smaller than this percent of the "
                                                              "old value (and than 1 MiB RSS, 5 points of CPU, 1 fd)."),
    exit_code: bool = typer.Option(False, "--exit-code", help="Exit 1 when there are differences (for pipelines)."),
    fmt: Optional[str] = typer.Option("text", "-f", "--format", help="text or json."),
    host: Optional[List[str]] = HostOpt,
    cmd: Optional[List[str]] = typer.Option(None, "-c", metavar="CMD", help="Only processes whose command "
                                            "starts with CMD, or matches /REGEX/[i]; ^CMD excludes (as lsof)."),
    user: Optional[List[str]] = typer.Option(None, "-u", metavar="USER[,USER]", help="Only processes of these "
                                             "users, by name or uid; ^USER excludes (as lsof)."),
    pid: Optional[List[str]] = typer.Option(None, "-p", metavar="PID[,PID]", help="Only these processes; ^PID "
                                            "excludes (as lsof). -c, -u and -p are ORed, exclusions first."),
):
    """What changed: processes started, exited and restarted; listening sockets opened and closed;
    per process RSS, threads, fds by type, CPU %, user, fd limit and working directory; files opened
    and closed by long-lived processes.

    Examples:
      procsnap diff --rec ./incident --from 03:00 --to 03:15
      procsnap diff ./before-deploy ./after-deploy --exit-code
      procsnap diff ./before ./after -f json | jq '.comparisons[0].restarted'
      procsnap diff --rec ./incident -c java -u www-data   # only those processes

    Across recordings, processes are matched by executable, command line (digits ignored), cgroup
    and user rather than pid, so a restarted service shows as restarted, with its changes. Within
    one recording, the processes that came and went between the two moments and the listening
    sockets bound and released in between are listed too, and, from the process events that
    procsnap record keeps, what ran and ended entirely in between: counts by command and the
    failures with their exit status or signal.
    """
    from analyze.commands import diff as D
    from analyze.data.db import Recording
    from analyze.output import json_value
    if fmt not in ("text", "json"):
        raise UsageError(f"bad format {fmt!r}: use text or json")
    if threshold < 0:
        raise UsageError("--threshold must be 0 or more")
    from analyze.commands.who import selection
    select = selection(pid, user, cmd)
    recordings = recordings or []
    if rec and recordings:
        raise UsageError("give either --rec DIR or two recordings BEFORE AFTER, not both")
    if rec:
        result = D.run(Recording.open(rec, hosts=host), None, at_from, at_to, host, threshold, select)
    elif len(recordings) == 2:
        result = D.run(Recording.open([recordings[0]], hosts=host), Recording.open([recordings[1]], hosts=host),
                       at_from, at_to, host, threshold, select)
    else:
        raise UsageError("give --rec DIR (two moments of one recording) or two recordings BEFORE AFTER")
    from analyze.data.damage import LOSSES, losses_json, write_partial
    if fmt == "json":
        print(json.dumps(json_value({**result, "partial": losses_json()} if LOSSES else result), indent=1))
    else:
        print("\n\n".join(D.text(c) for c in result["comparisons"]))
        write_partial(sys.stdout, "text")
    if exit_code and result["differences"]:
        raise typer.Exit(1)


@app.command()
def events(
    rec: Optional[List[str]] = typer.Option(None, "--rec", help="Recording folder to read (repeatable)."),
    pid: Optional[List[str]] = typer.Option(None, "-p", metavar="PID[,PID]", help="Only these processes; ^PID "
                                            "excludes (as lsof)."),
    user: Optional[List[str]] = typer.Option(None, "-u", metavar="USER[,USER]", help="Only processes of these "
                                             "users, by name or uid; ^USER excludes (as lsof)."),
    cmd: Optional[List[str]] = typer.Option(None, "-c", metavar="CMD", help="Only processes whose command "
                                            "starts with CMD, or matches /REGEX/[i]; ^CMD excludes (as lsof). "
                                            "-c, -u and -p are ORed, exclusions first."),
    kind: Optional[List[str]] = typer.Option(
        None, "--kind", metavar="KIND[,KIND]",
        help="Only these kinds: fork, exec, exit, comm, uid, gid, sid, ptrace, coredump, threads; the kernel's "
             "oom_kill, oom_invoked, oom_context, segfault, trap, hung_task, soft_lockup, hard_lockup, syn_flood, "
             "conntrack_full, fs_error, fs_readonly, io_error, and log (its records no parser named); oom, lockup, "
             "process (fork, exec, exit) and kernel (all of the kernel's parsed kinds). Default: all but threads "
             "and log."),
    at_from: Optional[str] = typer.Option(None, "--from", help="Start of the window (default: the recording's start)."),
    at_to: Optional[str] = typer.Option(None, "--to", help="End of the window (default: the recording's end)."),
    tree: bool = typer.Option(False, "--tree", help="Who started what: each process under the one that forked it, "
                                                  "with its program and how it ended."),
    fmt: Optional[str] = typer.Option(None, "-f", "--format", help="text, csv or json (default: text on a "
                                                                  "terminal, csv otherwise)."),
    host: Optional[List[str]] = HostOpt,
):
    """Process starts, programs, exits (with status or signal) and the kernel's incident reports
    (OOM kills, segfaults, hung tasks, ...) in a recording, in time order.

    \b
    Examples:
      procsnap events --rec ./incident --from 03:10 --to 03:20
      procsnap events --rec ./incident --kind exit,oom -c java
      procsnap events --rec ./incident -u www-data --tree
      procsnap events --rec ./incident --kind oom -f json

    Every process event that procsnap record heard from the kernel between snapshots (so
    also the processes that lived less than one interval) and the kernel log records it
    parsed. Exit status as lsof: 1 when no event is listed; 3 when recorded rows were
    unreadable and are left out.
    """
    from analyze.commands import events as E
    code = E.run(rec, host, pid, user, cmd, kind, at_from, at_to, fmt, tree)
    if code:
        raise typer.Exit(code)


@app.command()
def replay(
    dirs: Optional[List[str]] = typer.Argument(None, metavar="[DIR]...", help="Recording folder(s); none: the "
                                                                              "live host."),
    host: Optional[str] = typer.Option(None, "--host", help="The host of a fleet recording to show (default: the "
                                                            "first)."),
    interval: str = typer.Option("5", "-i", "--interval", help="Live: seconds between snapshots (5, 10s, 1m)."),
    view: str = typer.Option("processes", "--view", help="The view to start in: host, processes, sockets, files "
                                                         "or events."),
):
    """Step through a recording in a full-screen terminal UI, as atop -r and below replay do;
    without DIR, the live host, a snapshot every few seconds.

    \b
    Examples:
      procsnap replay ./incident
      procsnap replay ./incident --view host
      procsnap replay

    \b
    Keys (also on screen; ? lists them all):
      t / T         next / previous snapshot;  g / G  first / last
      b TIME        go to a time: 03:14, -10m, 2026-12-04T03:14Z (as --at)
      m, d          mark this moment; procsnap diff between the mark and here
      h p s o e     views: host, processes, sockets, files, events; Enter: one process
      C M I F L S   sort processes by CPU, memory, I/O, fds, threads, start; R reverse, V tree
      f, /, n       filter processes (text, user:NAME, cgroup:TEXT); search; next match
      q             quit

    Rates cover the interval that ends at the snapshot shown: the numbers procsnap top --at
    prints for that moment. Every view shows the command line that prints what it shows.
    """
    from analyze.commands import replay as RP
    from analyze.data.timespec import parse_duration
    views = ("host", "processes", "sockets", "files", "events")
    if view not in views:
        raise UsageError(f"bad view {view!r}: use {', '.join(views)}")
    secs = parse_duration(interval, "interval")
    if secs <= 0:
        raise UsageError("--interval must be more than 0")
    raise typer.Exit(RP.run(dirs, host, secs, view))


@app.command()
def report(
    dirs: List[str] = typer.Argument(..., metavar="DIR...", help="Recording folder(s)."),
    at_from: Optional[str] = typer.Option(None, "--from", help="Start of the window (default: the recording's start)."),
    at_to: Optional[str] = typer.Option(None, "--to", help="End of the window (default: the recording's end)."),
    fmt: str = typer.Option("text", "-f", "--format", help="text (findings grouped as leaks and bottlenecks, "
                                                          "each with its SQL) or json."),
    html: Optional[str] = typer.Option(None, "--html", metavar="FILE", help="Also write the report as one "
                                                                           "self-contained HTML page with charts."),
    no_sql: bool = typer.Option(False, "--no-sql", help="Text without each finding's SQL."),
    host: Optional[List[str]] = HostOpt,
):
    """Incidents, leaks and bottlenecks in a recording: a ranked list of findings, each with its severity,
    evidence and the SQL that reproduces it (paste it into procsnap query --rec DIR).

    \b
    Examples:
      procsnap report ./incident
      procsnap report ./incident --from 03:00 --to 03:30 --html incident.html
      procsnap report ./incident -f json | jq '.findings[] | select(.severity == "critical")'

    Incidents, from the events procsnap record keeps between snapshots: crash loops (with the
    interval between restarts), OOM kills (with the victim's memory before), fork/exec storms,
    processes killed by signals, hung tasks and lockups.
    Leaks: descriptors by kind, RSS, threads and CLOSE_WAIT sockets growing steadily (a good
    straight-line fit, spread over the window) per process and per identity across restarts,
    with the time left until the soft fd limit or available memory runs out. Bottlenecks: CPU
    saturation, steal and iowait, the processes that used the CPU, D state, disk and process
    I/O, memory pressure, fd limits, listen queues, TIME_WAIT and ephemeral ports, context-switch
    storms, listen-queue overflows and retransmission spikes (TCP stack counters), and file systems
    filling up (space or inodes, with the time until full, the processes writing the most there and
    those holding deleted files open). The text or json goes to stdout; --html writes the page as
    well.
    """
    from analyze.commands import report as R
    from analyze.data.db import Recording
    if fmt not in ("text", "json"):
        raise UsageError(f"bad format {fmt!r}: use text or json")
    if html and not os.path.isdir(os.path.dirname(os.path.abspath(html))):
        raise ProcsnapError(f"cannot write {html}: no such folder {os.path.dirname(os.path.abspath(html))}")
    rec = Recording.open(dirs, hosts=host)
    result = R.run(rec, at_from, at_to)
    if html:
        from analyze.commands.report import html as H
        try:
            H.write(html, H.render(rec, result))
        except OSError as e:
            raise ProcsnapError(f"cannot write {html}: {e.strerror or e}") from None
        print(f"procsnap: wrote {html}", file=sys.stderr)
    from analyze.data.damage import LOSSES, losses_json, write_partial
    if fmt == "json":
        doc = R.as_json(result)
        print(json.dumps({**doc, "partial": losses_json()} if LOSSES else doc, indent=1))
    else:
        print(R.text(result, sql=not no_sql))
        write_partial(sys.stdout, "text")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             options_metavar="[LSOF OPTIONS] [--rec DIR [--at TIME] [--host NAME]] [-f FORMAT] [NAMES]...")
def lsof(ctx: typer.Context):
    """List open files as lsof does, on the live host or in a recording at any moment.

    \b
    Examples:
      procsnap lsof -i :8080
      procsnap lsof -i TCP:22
      procsnap lsof -i -sTCP:LISTEN
      procsnap lsof -i 4 -a -u www-data
      procsnap lsof -p 1
      procsnap lsof +D /var/log
      procsnap lsof /run
      procsnap lsof --rec ./incident --at 03:14 -i :8080
      kill $(procsnap lsof -t -i :8080)

    \b
    lsof's options, with lsof's meaning (selections are ORed; -a ANDs them):
      -p PID[,PID]  processes (^PID excludes)
      -u USER[,USER]  users, by name or uid (^USER excludes)
      -c CMD        COMMAND starting with CMD, or /REGEX/[i] (^CMD excludes)
      -i [46][PROTO][@HOST][:PORT[,PORT|-RANGE]]  internet files (all with no value)
      -s TCP:STATE[,STATE]  only TCP/UDP files in these states (^STATE excludes)
      -U            unix sockets
      -d FD[,FD]    descriptors: cwd, rtd, txt, mem, 0-7, fd (^FD excludes)
      +d DIR        DIR and the files directly in it
      +D DIR        DIR and every file under it
      NAMES         these files; a directory: where it is open (cwd, rtd, open dir)
      -a            AND the selections
      -t            process ids only, one per line
      -l            user ids instead of names
      -s            the SIZE column instead of SIZE/OFF
      +c W          COMMAND width (default 9, 0 = all)
      -Q            exit 0 even when something was not found
      -n -P -K i -w  accepted (output is always numeric, without tasks)

    \b
    procsnap's own:
      --rec DIR     read a recording (repeatable) instead of the live host
      --at TIME     the latest snapshot at or before TIME (default: the last)
      --host NAME   only this host of a fleet recording (repeatable)
      -f FORMAT     table (lsof's listing, the default), csv or json

    Exit status as lsof: 1 when nothing is listed or something asked for was not found.
    """
    from analyze.commands import lsof as L
    raise typer.Exit(L.run(list(ctx.args), help_text=ctx.get_help))


@app.command()
def top(
    rec: Optional[List[str]] = RecOpt,
    at: Optional[str] = typer.Option(None, "--at", metavar="TIME",
                                     help="With --rec: the latest snapshot at or before TIME (default: the last one)."),
    n: Optional[int] = typer.Option(None, "-n", metavar="N",
                                    help="Show N processes (default: all). Not top's -n, which counts iterations: "
                                         "procsnap top shows one frame."),
    sort: str = typer.Option("cpu", "--sort", "-o", metavar="KEY",
                             help="cpu, mem (RES), time (TIME+), pid, io (adds IO/s), fds (adds FDS), threads, start "
                                  "(start time) or wait (the WAIT column, shown when the recording sampled the "
                                  "threads); high to low, -KEY for low to high."),
    fmt: str = typer.Option("text", "-f", "--format", metavar="FORMAT",
                            help="text (top's frame), csv (the process table) or json (summary and processes)."),
    width: Optional[int] = typer.Option(None, "-w", "--width", metavar="COLS",
                                        help="Line width COMMAND is cut to (default: $COLUMNS, the terminal, else 80, "
                                             "as top -b; 0: no limit)."),
    host: Optional[List[str]] = HostOpt,
):
    """What `top -b -n 1` shows, on the live host or in a recording at any moment.

    \b
    Examples:
      procsnap top
      procsnap top -n 15 --sort mem
      procsnap top --rec ./incident --at 03:14 --sort mem -n 15
      procsnap top --rec ./incident --at -10m --sort io -n 5
      procsnap top --rec ./incident -f json | jq '.summary.cpu_pct'

    Top's summary (uptime and load, tasks by state, %Cpu(s), MiB Mem and Swap computed as
    procps-ng 4.0 does) and task table (PID USER PR NI VIRT RES SHR S %CPU %MEM TIME+ COMMAND,
    VIRT/RES/SHR in KiB). The time is the snapshot's, in UTC; the user count is not recorded,
    so the first line leaves it out. Rates (%CPU, %Cpu(s), IO/s) cover the interval that ends
    at the snapshot: live, two snapshots half a second apart; in a recording, the snapshot
    before (the first snapshot has none: 0.0, as top shows an empty interval, and a note on
    stderr). With --rec the snapshot used is named on stderr.
    """
    from analyze.commands import top as T
    raise typer.Exit(T.run(rec, at, host, n, sort, fmt, width))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             options_metavar="[PS OPTIONS] [--rec DIR [--at TIME] [--host NAME]] [--format csv|json]")
def ps(ctx: typer.Context):
    """List processes as ps does, on the live host or in a recording at any moment.

    \b
    Examples:
      procsnap ps -p 1234 -o %mem,rss,cmd
      procsnap ps aux
      procsnap ps -ef
      procsnap ps -eLf
      procsnap ps -eo pid,ppid,user,etime,args --sort -rss
      procsnap ps -C nginx -o pid,nlwp,rss
      procsnap ps -u www-data
      procsnap ps aux --rec ./incident --at 03:14
      procsnap ps -e --format json

    \b
    ps's options, with ps's meaning (selections are ORed):
      -e, -A        every process (also ax, -aux)
      -p PID[,PID]  these processes (also p PID, --pid, a bare number)
      -u USER       effective user, name or uid (also U USER, --user); -U real user
      -C NAME       command name (comm)
      -s SID, -t TTY, --ppid PID   session, terminal, parent
      -a, -d, a, x, r, T, -N       as ps (-N/--deselect negates)
      (none)        live: your processes on your terminal, as ps; with --rec: every process

    \b
    Output, with ps's field names, headers and layout:
      -o FIELDS     pid,ppid,user,%cpu,%mem,rss,vsz,stat,start,time,etime,nlwp,comm,args, ...;
                    FIELD=HEADER and FIELD:WIDTH; repeatable (also o, --format FIELDS, -O)
      -f, -F, -j    full, extra full, jobs formats
      u             USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND (aux)
      -L, -T        one line per thread (LWP and NLWP columns; SPID with -T)
      --sort [+|-]KEY[,KEY]  also k KEY; keys are field names (pid, -%cpu, -rss, start_time, ...)
      --no-headers  also h;  c: command names;  n: numeric users;  L: list the fields

    \b
    procsnap's own:
      --rec DIR     read a recording (repeatable) instead of the live host
      --at TIME     the latest snapshot at or before TIME (default: the last)
      --host NAME   only this host of a fleet recording (repeatable)
      --format F    csv or json for scripts (ps's -f is its full format, so not -f)

    %CPU: live, ps's own (CPU time over the time since the process started); in a
    recording, the CPU used between the snapshot before and this one (ps's where there is
    none). %MEM: RSS over MemTotal. STAT lacks ps's + (foreground) and L (locked): not
    recorded; wchan, f and tpgid are not recorded either. Exit status as ps: 1 when no
    process is listed.
    """
    from analyze.commands import ps as P
    raise typer.Exit(P.run(list(ctx.args), help_text=ctx.get_help))


# --------------------------------------------------------------------------


def _optional_values(args: List[str]) -> List[str]:
    """``record --incident`` takes an optional DURATION (click has no such option): a bare
    ``--incident`` (last, or followed by another option) means the default, 10m."""
    if "record" not in args:
        return args
    out = []
    for i, a in enumerate(args):
        out.append(a)
        if a == "--incident" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(f"{DEF.DEFAULT_INCIDENT:g}s")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    cmd = typer.main.get_command(app)
    args = _optional_values(sys.argv[1:] if argv is None else list(argv))
    try:
        with stoppable():
            rv = retrying(lambda: cmd.main(args, prog_name="procsnap", standalone_mode=False))
    except _cx.NoArgsIsHelpError as e:
        # `procsnap` alone, or a group without its sub-command: the help.
        print(e.format_message(), file=sys.stderr)
        return 2
    except _cx.UsageError as e:
        print(f"procsnap: {e.format_message()}", file=sys.stderr)
        return 2
    except typer.Abort:
        return report_error(KeyboardInterrupt())
    except SystemExit as e:
        # The framework's own exits (e.g. a closed pipe after `| head`).
        return e.code if isinstance(e.code, int) else 1
    except (Exception, KeyboardInterrupt) as e:  # one line for what a user can meet, a traceback for bugs
        code = report_error(e)
        if code is None:
            raise
        return code
    if INTERRUPTED.is_set():  # the framework turns KeyboardInterrupt into exit 130, silently
        return report_error(KeyboardInterrupt())
    return rv if isinstance(rv, int) else 0


def help_of(name: str) -> str:
    """The command's help as `procsnap NAME --help` prints it (for a help flag spelled another way)."""
    import click

    group = typer.main.get_command(app)
    with click.Context(group, info_name="procsnap") as gctx:
        cmd = group.get_command(gctx, name)
        with click.Context(cmd, info_name=name, parent=gctx) as ctx:
            return cmd.get_help(ctx)


if __name__ == "__main__":  # pragma: no cover
    # as the installed command (analyze.entry) does: lsof, ps and snapshot without the framework
    from analyze import fast
    _args = sys.argv[1:]
    with fast.guarded(_args):
        sys.exit(fast.run(_args, help_text=help_of) if fast.wanted(_args) else main(_args))

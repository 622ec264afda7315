"""What changed between two moments: of one recording, or of two recordings
(the host before and after a deploy).

Processes are matched in two steps. First by instance, (boot_id, pid,
start_time): the very same process. Then, among those left, by identity: the
executable, the command line with every run of digits replaced by '#'
(ports, pids, sizes and dates change from one run to the next), the cgroup
normalised the same way, and the user. A process matched by identity but not
by instance was restarted; it is reported as such, with its changes, rather
than as one gone and one new. What is left was started or exited.

Kernel threads and the recorder itself are left out: they are not what a
deploy changes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from recorder.source.procfs import endpoint

from analyze.data.db import Moment, Recording
from analyze.errors import ProcsnapError
from analyze.data.timespec import check_window
from analyze.commands.who import selected

_DIGITS = re.compile(r"\d+")

# A numeric change is shown only when it is at least this much in absolute
# terms AND at least --threshold percent of the old value.
FLOORS = {"rss": 1 << 20, "num_threads": 1, "cpu_pct": 5.0, "fds": 1}
FD_KINDS = ("files", "sockets", "pipes", "anon_inodes", "other")
SOCKET_TYPES = ("IPv4", "IPv6", "unix", "netlink", "raw", "raw6", "pack", "sock")


def normalise(text: str | None) -> str:
    return _DIGITS.sub("#", text or "")


def identity(exe: str | None, name: str, cmdline: str | None, cgroup: str | None, user: str) -> tuple:
    """What stays the same when a process is restarted: its executable (its
    name when that is unreadable), command line and cgroup with digits
    normalised, and its user. Shared with :mod:`analyze.commands.report`."""
    return (exe or name, normalise(cmdline), normalise(cgroup), user)


@dataclass
class Proc:
    host: str
    pid: int
    ppid: int
    boot_id: str | None
    start_time: object
    name: str
    exe: str | None
    cmdline: str | None
    user: str
    cgroup: str | None
    num_threads: int
    rss: int
    fd_limit: int | None
    uid: int | None = None
    cpu_pct: float | None = None
    cwd: str | None = None
    fds: dict = field(default_factory=dict)
    files: set = field(default_factory=set)
    listening: set = field(default_factory=set)

    @property
    def instance(self):
        return (self.boot_id, self.pid, self.start_time)

    @property
    def identity(self):
        return identity(self.exe, self.name, self.cmdline, self.cgroup, self.user)

    def brief(self) -> dict:
        return {"pid": self.pid, "ppid": self.ppid, "name": self.name, "user": self.user,
                "start_time": self.start_time, "exe": self.exe, "cmdline": self.cmdline}


def _keep(o, p) -> bool:
    if isinstance(p, Proc):
        return selected(o, p.pid, p.uid, p.user, p.name)
    return selected(o, p.get("pid"), p.get("uid"), p.get("user"), p.get("name"))


@dataclass
class Side:
    rec: Recording
    moment: Moment
    label: str


def _moment(rec: Recording, at: str | None, host: str | None) -> Moment:
    moments = rec.moment(at)
    if not moments:
        raise ProcsnapError("the recording has no snapshots")
    if host is not None:
        moments = [m for m in moments if m.host == host]
        if not moments:
            raise ProcsnapError(f"no snapshot of host {host!r}")
    return moments[0]


def _load(side: Side) -> dict[int, Proc]:
    rec, m = side.rec, side.moment
    key = {"h": m.host, "s": m.snapshot_id}
    _, recorder = rec.query("SELECT recorder_pid FROM snapshots WHERE host = $h AND snapshot_id = $s", key)
    recorder_pid = recorder[0][0] if recorder else None
    rows = rec.query(
        """SELECT p.host, p.pid, p.ppid, p.boot_id, p.start_time, p.name, p.exe, p.cmdline, p."user", p.cgroup,
                  p.num_threads, p.rss, p.fd_limit, p.uid, r.cpu_pct
           FROM processes p
           LEFT JOIN process_rates r ON r.host = p.host AND r.snapshot_id = p.snapshot_id AND r.pid = p.pid
           WHERE p.host = $h AND p.snapshot_id = $s AND p.pid <> 2 AND p.ppid <> 2""", key)[1]
    procs = {r[1]: Proc(*r) for r in rows if r[1] != recorder_pid}
    for pid, typ, n in rec.query(
            """SELECT pid, CASE WHEN type = 'REG' THEN 'files'
                                WHEN type IN ('IPv4','IPv6','unix','netlink','raw','raw6','pack','sock') THEN 'sockets'
                                WHEN type = 'FIFO' THEN 'pipes' WHEN type = 'a_inode' THEN 'anon_inodes'
                                ELSE 'other' END AS kind, count(*)
               FROM open_files WHERE host = $h AND snapshot_id = $s AND fd_num IS NOT NULL GROUP BY ALL""",
            key)[1]:
        if pid in procs:
            procs[pid].fds[typ] = n
    for pid, fd, name in rec.query(
            """SELECT pid, fd, name FROM open_files
               WHERE host = $h AND snapshot_id = $s AND (fd = 'cwd' OR (fd_num IS NOT NULL AND type = 'REG'))""",
            key)[1]:
        p = procs.get(pid)
        if p is None:
            continue
        if fd == "cwd":
            p.cwd = name
        else:
            p.files.add(name)
    for pid, family, proto, addr, port, path in rec.query(
            f"""SELECT pid, family, coalesce(proto, sock_type), local_addr, local_port, unix_path FROM sockets
               WHERE host = $h AND snapshot_id = $s AND pid IS NOT NULL AND {_listening()}""", key)[1]:
        p = procs.get(pid)
        if p is not None:
            p.listening.add(listener(family, proto, addr, port, path))
    return procs


def _listening(a: str = "") -> str:
    """A listening socket (columns of sockets, alias A): TCP (or unix stream) in LISTEN, or a UDP
    socket bound below the ephemeral range."""
    a = f"{a}." if a else ""
    return (f"({a}state = 'LISTEN' OR ({a}proto IN ('UDP', 'UDPLITE') AND {a}state = 'UNCONN' "
            f"AND {a}local_port > 0 AND {a}local_port < 32768))")


def listener(family, proto, addr, port, path) -> str:
    if family == "unix":
        return f"unix {path or '(unnamed)'}"
    return f"{proto} {endpoint(addr or '', port)}"


def _match(a: dict[int, Proc], b: dict[int, Proc]):
    by_inst = {p.instance: p for p in b.values()}
    same, left_a = [], []
    used = set()
    for p in a.values():
        q = by_inst.get(p.instance)
        if q is not None:
            same.append((p, q))
            used.add(q.pid)
        else:
            left_a.append(p)
    left_b = [q for q in b.values() if q.pid not in used]
    groups_a, groups_b = defaultdict(list), defaultdict(list)
    for p in left_a:
        groups_a[p.identity].append(p)
    for q in left_b:
        groups_b[q.identity].append(q)
    restarted, exited, started = [], [], []
    for ident, ps in groups_a.items():
        qs = sorted(groups_b.pop(ident, []), key=lambda x: (str(x.start_time), x.pid))
        ps = sorted(ps, key=lambda x: (str(x.start_time), x.pid))
        restarted += list(zip(ps, qs))
        exited += ps[len(qs):]
        started += qs[len(ps):]
    for qs in groups_b.values():
        started += qs
    key = lambda p: p.pid  # noqa: E731
    return same, sorted(restarted, key=lambda t: t[1].pid), sorted(exited, key=key), sorted(started, key=key)


def _numeric(name: str, old, new, pct: float) -> bool:
    if old is None or new is None or old == new:
        return False
    delta = abs(new - old)
    if delta < FLOORS.get(name, 0):
        return False
    return delta >= pct / 100 * max(abs(old), 1e-9)


def _changes(p: Proc, q: Proc, pct: float) -> dict:
    ch = {}
    for f in ("rss", "num_threads", "cpu_pct"):
        if _numeric(f, getattr(p, f), getattr(q, f), pct):
            ch[f] = {"from": getattr(p, f), "to": getattr(q, f)}
    total_p, total_q = sum(p.fds.values()), sum(q.fds.values())
    if _numeric("fds", total_p, total_q, pct):
        ch["fds"] = {"from": total_p, "to": total_q,
                     "by_kind": {k: {"from": p.fds.get(k, 0), "to": q.fds.get(k, 0)} for k in FD_KINDS
                                 if p.fds.get(k, 0) != q.fds.get(k, 0)}}
    for f in ("user", "fd_limit", "cwd", "exe", "cmdline"):
        if getattr(p, f) != getattr(q, f):
            ch[f] = {"from": getattr(p, f), "to": getattr(q, f)}
    if p.listening != q.listening:
        ch["listening"] = {"from": sorted(p.listening), "to": sorted(q.listening)}
    return ch


def compare(before: Side, after: Side, pct: float = 10.0, max_files: int = 20, select=None) -> dict:
    """SELECT (from :func:`selection`) narrows what is listed to the processes it selects;
    processes are matched across the two moments before it applies."""
    a, b = _load(before), _load(after)
    same, restarted, exited, started = _match(a, b)
    keep = lambda p: _keep(select, p)  # noqa: E731
    same = [(p, q) for p, q in same if keep(p) or keep(q)]
    restarted = [(p, q) for p, q in restarted if keep(p) or keep(q)]
    exited, started = [p for p in exited if keep(p)], [q for q in started if keep(q)]
    out: dict = {
        "host": before.moment.host if before.moment.host == after.moment.host
        else f"{before.moment.host} → {after.moment.host}",
        "from": {"label": before.label, "host": before.moment.host, "snapshot_id": before.moment.snapshot_id,
                 "ts": before.moment.ts},
        "to": {"label": after.label, "host": after.moment.host, "snapshot_id": after.moment.snapshot_id,
               "ts": after.moment.ts},
        "started": [q.brief() | {"listening": sorted(q.listening)} for q in started],
        "exited": [p.brief() | {"listening": sorted(p.listening)} for p in exited],
        "restarted": [],
        "changed": [],
        "listening_opened": [],
        "listening_closed": [],
        "files": [],
    }
    for p, q in restarted:
        out["restarted"].append({"before": p.brief(), "after": q.brief(), "changes": _changes(p, q, pct)})
    for p, q in sorted(same, key=lambda t: t[0].pid):
        ch = _changes(p, q, pct)
        if ch:
            out["changed"].append({"process": q.brief(), "changes": ch})
        opened, closed = sorted(q.files - p.files), sorted(p.files - q.files)
        if opened or closed:
            out["files"].append({"process": q.brief(), "opened": opened[:max_files], "closed": closed[:max_files],
                                 "opened_count": len(opened), "closed_count": len(closed)})
    la = {(s, p.pid): p for p in a.values() for s in p.listening}
    lb = {(s, q.pid): q for q in b.values() for s in q.listening}
    sa, sb = {s for s, _ in la}, {s for s, _ in lb}
    for (s, pid), q in sorted(lb.items()):
        if s not in sa and keep(q):
            out["listening_opened"].append({"socket": s, "pid": pid, "name": q.name, "user": q.user})
    for (s, pid), p in sorted(la.items()):
        if s not in sb and keep(p):
            out["listening_closed"].append({"socket": s, "pid": pid, "name": p.name, "user": p.user})
    out["came_and_went"] = [p for p in _came_and_went(before, after) if keep(p)]
    out["bound_and_released"] = [s for s in _bound_and_released(before, after, sa | sb) if keep(s)]
    out["ran_between"] = ran_between(before, after, select)
    out["differences"] = sum(len(out[k]) for k in ("started", "exited", "restarted", "changed", "listening_opened",
                                                   "listening_closed", "files", "came_and_went",
                                                   "bound_and_released")) + out["ran_between"]["total"]
    return out


# Processes that started and exited between two moments: the exits in the window (the
# process_exits view) of processes started after the first moment.
RAN_BETWEEN_SQL = """
WITH users AS (SELECT uid, any_value("user") AS "user" FROM processes WHERE "user" IS NOT NULL GROUP BY uid)
SELECT x.pid, x.ppid, x.name, u."user", x.uid, x.started, x.time AS ended, x.cmdline, x.exit_status, x.signal,
       x.core_dumped, x.lived_s AS elapsed
FROM process_exits x LEFT JOIN users u ON u.uid = x.uid
WHERE x.host = $h AND x.time > $a AND x.time < $b AND x.started > $a
ORDER BY x.time, x.pid
"""


def ran_between(before: Side, after: Side, select=None, max_failures: int = 50) -> dict:
    """Within one recording with process events: what started and ended entirely between the two
    moments (invisible to both snapshots): counts by command, and the failures (non-zero exit
    status or a killing signal). ``recorded`` is False when the recording has no process events."""
    out: dict = {"recorded": False, "total": 0, "failed": 0, "by_command": [], "failures": [],
                 "failures_count": 0}
    if before.rec is not after.rec or before.moment.host != after.moment.host \
            or not before.rec.files.get("process_events"):
        return out
    cols, rows = before.rec.query(RAN_BETWEEN_SQL, {"h": before.moment.host, "a": before.moment.ts,
                                                    "b": after.moment.ts})
    procs = [dict(zip(cols, r)) for r in rows]
    procs = [p for p in procs if _keep(select, p)]
    out["recorded"] = True
    counts: dict[str, list[int]] = {}
    failures = []
    for p in procs:
        failed = p["signal"] is not None or (p["exit_status"] or 0) != 0
        c = counts.setdefault(p["name"] or "?", [0, 0])
        c[0] += 1
        c[1] += failed
        if failed:
            failures.append(p)
    out["total"], out["failed"] = len(procs), len(failures)
    out["by_command"] = [{"name": n, "count": c, "failed": f}
                         for n, (c, f) in sorted(counts.items(), key=lambda t: (-t[1][0], t[0]))]
    out["failures"], out["failures_count"] = failures[:max_failures], len(failures)
    return out


def _ran_lines(r: dict) -> list[str]:
    from analyze.commands.events import ended
    lines = [f"  {r['total']} processes, {r['failed']} failed; by command:"]
    lines += [f"    {c['count']:6d}  {c['name']}" + (f"  ({c['failed']} failed)" if c["failed"] else "")
              for c in r["by_command"][:20]]
    if len(r["by_command"]) > 20:
        lines.append(f"    … {len(r['by_command']) - 20} more commands")
    if r["failures"]:
        lines.append("  failed:")
        for p in r["failures"]:
            lines.append(f"    {p['ended']:%H:%M:%S}  {p['pid']} {p['name'] or '?'} ({p['user'] or p['uid']}): "
                         f"{ended(p['exit_status'], p['signal'], p['core_dumped'])}"
                         + (f"  {p['cmdline']}" if p["cmdline"] else ""))
        if r["failures_count"] > len(r["failures"]):
            lines.append(f"    … {r['failures_count'] - len(r['failures'])} more")
    return lines


def _came_and_went(before: Side, after: Side) -> list[dict]:
    """Within one recording: processes seen only strictly between the two moments."""
    if before.rec is not after.rec or before.moment.host != after.moment.host:
        return []
    rows = before.rec.query(
        """SELECT pid, arg_max(ppid, ts), arg_max(name, ts), arg_max("user", ts), start_time,
                  arg_max(exe, ts), arg_max(cmdline, ts), min(ts), max(ts), arg_max(uid, ts)
           FROM processes WHERE host = $h AND ts > $a AND ts < $b AND pid <> 2 AND ppid <> 2
             AND pid NOT IN (SELECT recorder_pid FROM snapshots WHERE host = $h)
           GROUP BY boot_id, pid, start_time
           HAVING min(ts) > $a AND (boot_id, pid, start_time) NOT IN (
               SELECT (boot_id, pid, start_time) FROM processes WHERE host = $h AND ts IN ($a, $b))
           ORDER BY min(ts), pid""",
        {"h": before.moment.host, "a": before.moment.ts, "b": after.moment.ts})[1]
    return [{"pid": r[0], "ppid": r[1], "name": r[2], "user": r[3], "start_time": r[4], "exe": r[5],
             "cmdline": r[6], "first_seen": r[7], "last_seen": r[8], "uid": r[9]} for r in rows]


def _bound_and_released(before: Side, after: Side, at_ends: set) -> list[dict]:
    """Within one recording: listening sockets seen in some snapshot strictly between the two
    moments and listening at neither (AT_ENDS: the listeners of both moments). Sockets are
    recorded at the files cadence: a port held between two of its snapshots is not seen."""
    if before.rec is not after.rec or before.moment.host != after.moment.host:
        return []
    rows = before.rec.query(
        f"""SELECT s.pid, s.family, coalesce(s.proto, s.sock_type), s.local_addr, s.local_port, s.unix_path,
                   min(s.ts), max(s.ts), count(DISTINCT s.snapshot_id), arg_max(p.name, p.ts),
                   arg_max(p."user", p.ts), arg_max(p.uid, p.ts)
            FROM sockets s LEFT JOIN processes p
                 ON p.host = s.host AND p.snapshot_id = s.snapshot_id AND p.pid = s.pid
            WHERE s.host = $h AND s.ts > $a AND s.ts < $b AND s.pid IS NOT NULL AND {_listening("s")}
            GROUP BY ALL ORDER BY min(s.ts), s.pid""",
        {"h": before.moment.host, "a": before.moment.ts, "b": after.moment.ts})[1]
    out = []
    for pid, family, proto, addr, port, path, first, last, n, name, user, uid in rows:
        sock = listener(family, proto, addr, port, path)
        if sock not in at_ends:
            out.append({"socket": sock, "pid": pid, "name": name, "user": user, "uid": uid,
                        "first_seen": first, "last_seen": last, "snapshots": n})
    return out


# --------------------------------------------------------------------------
# Text


def _mib(n) -> str:
    return f"{n / 1048576:.1f} MiB"


def _val(field: str, v) -> str:
    if v is None:
        return "-"
    if field == "rss":
        return _mib(v)
    if field == "cpu_pct":
        return f"{v:.1f}%"
    return str(v)


def _proc_line(p: dict, width: int = 160) -> str:
    cmd = p["cmdline"] or f"[{p['name']}]"
    if len(cmd) > width:
        cmd = cmd[:width - 1] + "…"  # the whole command line is in -f json
    return f"{p['pid']:>7} {p['name']} ({p['user']}): {cmd}"


def _change_lines(ch: dict, indent: str = "      ") -> list[str]:
    lines = []
    for f, c in ch.items():
        if f == "fds":
            kinds = ", ".join(f"{k} {v['from']} → {v['to']}" for k, v in c["by_kind"].items())
            sign = "+" if c["to"] > c["from"] else ""
            lines.append(f"{indent}fds: {c['from']} → {c['to']} ({sign}{c['to'] - c['from']}): {kinds}")
        elif f == "listening":
            lines.append(f"{indent}listening: {', '.join(c['from']) or 'nothing'} → {', '.join(c['to']) or 'nothing'}")
        else:
            lines.append(f"{indent}{f}: {_val(f, c['from'])} → {_val(f, c['to'])}")
    return lines


def text(d: dict) -> str:
    from analyze.output import escape
    fr, to = d["from"], d["to"]
    lines = [f"procsnap diff: {escape(d['host'])}: {fr['ts']:%Y-%m-%d %H:%M:%S} ({fr['label']}) → "
             f"{to['ts']:%Y-%m-%d %H:%M:%S} ({to['label']}) UTC"]
    if not d["differences"]:
        lines.append("no differences")
    sections = [
        ("Processes started", d["started"], lambda p: ["  + " + _proc_line(p).strip()]
         + ([f"      listening: {', '.join(p['listening'])}"] if p["listening"] else [])),
        ("Processes exited", d["exited"], lambda p: ["  - " + _proc_line(p).strip()]
         + ([f"      was listening: {', '.join(p['listening'])}"] if p["listening"] else [])),
        ("Processes restarted", d["restarted"], lambda r: [
            f"  ~ {r['after']['name']} ({r['after']['user']}): pid {r['before']['pid']} → {r['after']['pid']}, "
            f"started {r['after']['start_time']:%Y-%m-%d %H:%M:%S}"] + _change_lines(r["changes"])),
        ("Listening sockets opened", d["listening_opened"],
         lambda s: [f"  + {s['socket']}  (pid {s['pid']} {s['name']}, {s['user']})"]),
        ("Listening sockets closed", d["listening_closed"],
         lambda s: [f"  - {s['socket']}  (pid {s['pid']} {s['name']}, {s['user']})"]),
        ("Processes changed", d["changed"], lambda c: [
            f"  ~ {_proc_line(c['process']).strip()}"] + _change_lines(c["changes"])),
        ("Processes that came and went in between", d.get("came_and_went", []), lambda p: [
            f"  * {_proc_line(p).strip()}  (seen {p['first_seen']:%H:%M:%S} .. {p['last_seen']:%H:%M:%S})"]),
        ("Listening sockets bound and released in between", d.get("bound_and_released", []), lambda s: [
            f"  * {s['socket']}  (pid {s['pid']} {s['name']}, {s['user']}; seen {s['first_seen']:%H:%M:%S} .. "
            f"{s['last_seen']:%H:%M:%S})"]),
        ("Files opened and closed by long-lived processes", d["files"], lambda f: [
            f"  {f['process']['pid']} {f['process']['name']}: {f['opened_count']} opened, {f['closed_count']} closed"]
         + [f"      + {n}" for n in f["opened"]] + [f"      - {n}" for n in f["closed"]]
         + (["      …"] if f["opened_count"] > len(f["opened"]) or f["closed_count"] > len(f["closed"]) else [])),
    ]
    for title, items, fmt in sections:
        if not items:
            continue
        lines.append("")
        lines.append(f"{title} ({len(items)}):")
        for it in items:
            lines.extend(escape(x) for x in fmt(it))
    ran = d.get("ran_between")
    if ran and ran["total"]:
        lines.append("")
        lines.append(f"Processes that ran and ended in between ({ran['total']}, from process events):")
        lines.extend(escape(x) for x in _ran_lines(ran))
    return "\n".join(lines)


def run(before: Recording, after: Recording | None, at_from: str | None, at_to: str | None,
        hosts: list[str] | None, pct: float, select=None) -> dict:
    """Compare per host: two moments of one recording (after is None; from its
    start to its end by default), or two recordings (their last snapshots by
    default). Two recordings of one host each are compared whatever the host
    names; otherwise hosts are paired by name."""
    single = after is None
    after = after or before
    hosts_a = [m.host for m in before.moment(None)]
    hosts_b = [m.host for m in after.moment(None)]
    if single:
        pairs = [(h, h) for h in hosts_a]
    elif len(hosts_a) == 1 and len(hosts_b) == 1:
        pairs = [(hosts_a[0], hosts_b[0])]
    else:
        pairs = [(h, h) for h in hosts_a if h in hosts_b]
    if hosts:
        pairs = [(ha, hb) for ha, hb in pairs if ha in hosts or hb in hosts]
    if not pairs:
        raise ProcsnapError("no host to compare")
    labels = ("from", "to") if single else ("before", "after")
    if single:
        at_from, at_to = at_from or "start", at_to or "end"
        check_window(before.resolve_time(at_from), before.resolve_time(at_to, last=True))
    comparisons = []
    for ha, hb in pairs:
        a = Side(before, _moment(before, at_from, ha), labels[0])
        b = Side(after, _moment(after, at_to, hb), labels[1])
        comparisons.append(compare(a, b, pct, select=select))
    return {"comparisons": comparisons, "differences": sum(c["differences"] for c in comparisons)}

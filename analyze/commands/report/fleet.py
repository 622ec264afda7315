"""The fleet view of a report over several hosts: each service (a process identity, as the diff
matches them: :func:`analyze.commands.diff.identity`) that runs on more than one host and has a
leak or bottleneck finding on some of them, with the hosts where it has none beside; and the hosts
whose findings stand out from their peers'.

STAND-OUT RULE. Per category (leak, bottleneck), a host's count of critical and warning findings
stands out when it is at least one and at least ``STAND_OUT_FACTOR`` times the median count of
the other hosts, plus one: a host with a finding where its peers have none stands out; among
peers with two each, a host needs five.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import median

from analyze.commands.diff import identity
from analyze.commands.report.model import Finding

STAND_OUT_FACTOR = 2
COUNTED_SEVERITIES = ("critical", "warning")


def view(findings: list[Finding], inst_rows: list[dict], hosts: list[str]) -> dict | None:
    """The fleet view (None for one host): {"services": [...], "standing_out": [...]}."""
    if len(hosts) < 2:
        return None
    key_of = {}
    on_hosts: dict[tuple, set] = defaultdict(set)
    for r in inst_rows:
        if r["pid"] == 2 or r["ppid"] == 2:
            continue
        ident = identity(r["exe"], r["name"], r["cmdline"], r["cgroup"], r["user"])
        key_of[(r["host"], r["boot_id"], r["pid"], r["start_time"])] = ident
        on_hosts[ident].add(r["host"])
    kinds: dict[tuple, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    names: dict[tuple, dict] = {}
    for f in findings:
        p = f.process
        if f.category not in ("leak", "bottleneck") or not p:
            continue
        ident = key_of.get((f.host, p.get("boot_id"), p.get("pid"), p.get("start_time")))
        if ident is None or len(on_hosts[ident]) < 2:
            continue
        kinds[ident][f.host].add(f.kind)
        names.setdefault(ident, {"name": p.get("name"), "exe": p.get("exe"), "cmdline": p.get("cmdline"),
                                 "user": p.get("user")})
    services = []
    for ident, by_host in kinds.items():
        running = sorted(on_hosts[ident])
        services.append({**names[ident], "hosts": running,
                         "findings": {h: sorted(k) for h, k in sorted(by_host.items())},
                         "without_findings": [h for h in running if h not in by_host]})
    services.sort(key=lambda s: (-len(s["findings"]), len(s["without_findings"]) == 0, str(s["name"])))
    standing_out = []
    for cat in ("leak", "bottleneck"):
        counts = {h: 0 for h in hosts}
        for f in findings:
            if f.category == cat and f.severity in COUNTED_SEVERITIES and f.host in counts:
                counts[f.host] += 1
        for h, n in counts.items():
            peers = median(c for o, c in counts.items() if o != h)
            if n >= 1 and n >= STAND_OUT_FACTOR * peers + 1:
                standing_out.append({"host": h, "category": cat, "findings": n, "peers_median": peers})
    standing_out.sort(key=lambda s: (s["category"], -s["findings"], s["host"]))
    return {"services": services, "standing_out": standing_out}


def lines(fleet: dict, escape) -> list[str]:
    """The fleet view as text lines of a report."""
    out = ["", "Fleet:"]
    if not fleet["standing_out"] and not fleet["services"]:
        return out + ["  no host stands out from its peers; no service has findings on some hosts only"]
    for s in fleet["standing_out"]:
        out.append(f"  {escape(s['host'])} stands out: {s['findings']} {s['category']} finding(s), its peers "
                   f"{s['peers_median']:g} (median)")
    for s in fleet["services"]:
        found = "; ".join(f"{escape(h)}: {', '.join(k)}" for h, k in s["findings"].items())
        clean = f"; none on {', '.join(map(escape, s['without_findings']))}" if s["without_findings"] else ""
        out.append(f"  service {escape(str(s['name']))} ({escape(str(s['user']))}) on {len(s['hosts'])} hosts: "
                   f"{found}{clean}")
    return out

"""The host-wide tables: system (one row of counters and gauges), disks and nics, each a function
of the /proc it reads (host-wide files are parsed by recorder/source/procfs.py)."""

from __future__ import annotations

import datetime as dt

from recorder.collect.processes import CLK_TCK, UTC
from recorder.schema import CPU_MODES, NET_COUNTERS
from recorder.source import procfs as P
from recorder.source.procfs import Denied, Gone, ProcFS


def optional(fs: ProcFS, *parts) -> bytes | None:
    """A file's bytes, or None where it is missing or refused."""
    try:
        return fs.read(*parts)
    except (Gone, Denied):
        return None


def read_proc_stat(fs: ProcFS) -> dict:
    """/proc/stat parsed: the system row's CPU counters and the boot time process start times need."""
    return P.parse_proc_stat(fs.read("stat"))


def system_row(fs: ProcFS, ps: dict) -> dict:
    """The system row, from /proc/stat (PS, parsed) and the other host-wide files."""
    row: dict = {
        "boot_time": dt.datetime.fromtimestamp(ps["btime"], UTC),
        "ncpus": ps["ncpus"],
        "ctxt": ps.get("ctxt"),
        "intr": ps.get("intr"),
        "forks": ps.get("processes"),
        "procs_running": ps.get("procs_running"),
        "procs_blocked": ps.get("procs_blocked"),
    }
    cpu = ps.get("cpu", [])
    for i, mode in enumerate(CPU_MODES):
        row[f"cpu_{mode}"] = cpu[i] / CLK_TCK if i < len(cpu) else None
    up = optional(fs, "uptime")
    row["uptime_s"] = float(up.split()[0]) if up else None
    row.update(P.parse_loadavg(fs.read("loadavg")))
    mi = P.parse_meminfo(fs.read("meminfo"))
    for col, key in (
        ("mem_total", "MemTotal"), ("mem_free", "MemFree"), ("mem_available", "MemAvailable"),
        ("buffers", "Buffers"), ("cached", "Cached"), ("shmem", "Shmem"),
        ("slab_reclaimable", "SReclaimable"), ("slab_unreclaimable", "SUnreclaim"),
        ("dirty", "Dirty"), ("writeback", "Writeback"), ("committed_as", "Committed_AS"),
        ("swap_total", "SwapTotal"), ("swap_free", "SwapFree"), ("swap_cached", "SwapCached"),
    ):
        row[col] = mi.get(key)
    vm = optional(fs, "vmstat")
    if vm:
        v = P.parse_vmstat(vm)
        for k in ("pgfault", "pgmajfault", "pswpin", "pswpout", "oom_kill"):
            row[k] = v.get(k)
    fnr = optional(fs, "sys/fs/file-nr")
    if fnr:
        f = fnr.split()
        row["file_handles"] = int(f[0])
        row["file_max"] = int(f[2])
    for res in ("cpu", "memory", "io"):
        data = optional(fs, "pressure", res)
        if not data:
            continue
        pr = P.parse_pressure(data)
        for kind in ("some", "full"):
            if kind in pr:
                row[f"psi_{res}_{kind}_avg10"] = pr[kind].get("avg10")
                row[f"psi_{res}_{kind}_total"] = pr[kind].get("total")
    row.update(net_counters(fs))
    return row


def net_counters(fs: ProcFS) -> dict:
    """The TCP/UDP stack counters of schema.NET_COUNTERS (a field or file the kernel does not
    have is left out: NULL)."""
    parsed: dict = {}
    for name in ("snmp", "netstat", "snmp6"):
        data = optional(fs, "net", name)
        try:
            parsed[name] = (P.parse_snmp6(data) if name == "snmp6" else P.parse_snmp(data)) if data else {}
        except ValueError:
            parsed[name] = {}
    out = {}
    for col, name, section, field, _ in NET_COUNTERS:
        v = parsed[name].get(field if section is None else (section, field))
        if v is not None:
            out[col] = v
    return out


def disk_rows(fs: ProcFS) -> list[dict]:
    """The disks rows (/proc/diskstats)."""
    data = optional(fs, "diskstats")
    return P.parse_diskstats(data) if data else []


def nic_rows(fs: ProcFS) -> list[dict]:
    """The nics rows (/proc/net/dev)."""
    data = optional(fs, "net/dev")
    return P.parse_net_dev(data) if data else []

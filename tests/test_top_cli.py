"""procsnap top: top's summary and task table on a recording we build, and live against the real top.

The recording holds three snapshots of host h1, 10 s apart (03:00:00, :10, :20),
whose system counters and process CPU times make every rate exact, and one
snapshot of host h2.
"""

import datetime as dt
import io
import json
import os
import re
import subprocess
import time

import pytest

from analyze.commands import top as T
from analyze.data.db import Recording
from recorder.store.folder import Store

from tests.support.synthetic import T0, fake_snapshot

KIB = 1024
UPTIME0 = 2 * 86400 + 3 * 3600 + 4 * 60 + 30       # 2 days, 3:04:30 at 03:00:00


def system(i, cpu):
    """The system row of snapshot i, with cumulative CPU seconds by mode."""
    return {"boot_time": T0 - dt.timedelta(seconds=UPTIME0), "uptime_s": UPTIME0 + 10.0 * i, "ncpus": 2,
            "ctxt": 0, "intr": 0, "forks": 0, "procs_running": 2, "procs_blocked": 0,
            "load1": 1.5, "load5": 0.75, "load15": 0.25, "tasks_total": 20, "last_pid": 950,
            "mem_total": 8_000_000 * KIB, "mem_free": 1_000_000 * KIB, "mem_available": 5_000_000 * KIB,
            "buffers": 100_000 * KIB, "cached": 2_000_000 * KIB, "slab_reclaimable": 300_000 * KIB,
            "swap_total": 2_097_152 * KIB, "swap_free": 1_048_576 * KIB, "cpu_guest": 0.0,
            **{f"cpu_{m}": v for m, v in cpu.items()}}


CPU0 = {"user": 1000.0, "nice": 10.0, "system": 500.0, "idle": 8000.0, "iowait": 100.0, "irq": 5.0,
        "softirq": 15.0, "steal": 0.0}
# +50 s of CPU in all: us 15, ni 2.5, sy 5, id 20, wa 2.5, hi 1, si 2, st 2
CPU1 = {**CPU0, "user": 1015.0, "nice": 12.5, "system": 505.0, "idle": 8020.0, "iowait": 102.5, "irq": 6.0,
        "softirq": 17.0, "steal": 2.0}
# +20 s: us 10, sy 10
CPU2 = {**CPU1, "user": 1025.0, "system": 515.0}


def p(pid, name, user="root", state="S", utime=0.0, stime=0.0, rss=0, vms=0, shared=None, fds=None, rb=None,
      wb=None, **kw):
    return {"pid": pid, "name": name, "user": user, "state": state, "utime": utime, "stime": stime,
            "rss": rss * KIB, "vms": vms * KIB, "shared": None if shared is None else shared * KIB,
            "num_fds": fds, "read_bytes": rb, "write_bytes": wb, **kw}


def procs(i):
    burner = {0: 100.0, 1: 108.0, 2: 109.0}[i]
    rows = [
        p(1, "systemd", utime=10.0, stime=5.0, rss=12_000, vms=170_000, shared=9_000, fds=100, rb=0, wb=0),
        p(100, "burner", "alice", "R", utime=burner, stime=0.0 if i == 0 else 0.5, rss=50_000, vms=300_000,
          shared=4_000, fds=5, rb=0, wb=0),
        p(200, "hog", "bob", utime=1.0 if i == 0 else 1.25, rss=3_000_000, vms=20_971_520, shared=1_000, fds=50,
          num_threads=3),
        p(300, "writer", "carol", utime=0.5 if i == 0 else 0.75, rss=2_000, vms=10_000, fds=7, rb=0 if i == 0
          else 1_024_000, wb=0 if i == 0 else 10_240_000),
        p(400, "migration/0", priority=-100),
        p(500, "defunct", state="Z"),
        p(600, "stopped", state="T"),
        p(700, "disk", "averyverylongusername", "D", rss=1_000, vms=5_000),
        p(800, "kworker/0:1", state="I"),
    ]
    if i >= 1:
        # born during the interval: all its CPU time (3 s) is the interval's, as top counts it
        rows.append(p(900, "newborn", "alice", "R", utime=2.0, stime=1.0, rss=500, vms=1_000,
                      start_time=T0 + dt.timedelta(seconds=5), rb=0, wb=0))
        # not in the snapshot before although it is old (a race): no rate
        rows.append(p(950, "a_really_long_command_name", utime=50.0, rss=4_000, vms=8_000))
    return rows


@pytest.fixture(scope="module")
def recdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("toprec") / "rec"
    with Store(d) as st:
        for i, cpu in enumerate((CPU0, CPU1, CPU2)):
            st.write(fake_snapshot(i, procs(i), system=system(i, cpu)))
        st.write(fake_snapshot(1, [p(7, "redis-server", "redis", utime=3.0, rss=5_000, vms=9_000)], host="h2",
                               system=system(1, CPU1)))
    return d


@pytest.fixture(scope="module")
def oldrec(tmp_path_factory):
    """A recording made without the processes table."""
    d = tmp_path_factory.mktemp("topold") / "rec"
    s = fake_snapshot(0, [], system=system(0, CPU0))
    del s.tables["processes"]
    with Store(d) as st:
        st.write(s)
    return d


def top(recdir, *, at="03:00:10", hosts=("h1",), n=None, sort="cpu", fmt="text", width=0):
    out, err = io.StringIO(), io.StringIO()
    rc = T.run([str(recdir)], at, list(hosts) if hosts else None, n, sort, fmt, width, out=out, err=err)
    assert rc == 0
    return out.getvalue(), err.getvalue()


def pids(text):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("PID"))
    return [int(line.split()[0]) for line in lines[start + 1:] if line.strip()]


# --------------------------------------------------------------------------
# Summary and table on the recording


def test_summary_is_tops_layout_with_exact_numbers(recdir):
    out, err = top(recdir)
    assert out.splitlines()[:6] == [
        "top - 03:00:10 up 2 days,  3:04,  load average: 1.50, 0.75, 0.25",
        "Tasks:  11 total,   2 running,   7 sleeping,   1 stopped,   1 zombie",
        "%Cpu(s): 30.0 us, 10.0 sy,  5.0 ni, 40.0 id,  5.0 wa,  2.0 hi,  4.0 si,  4.0 st ",
        # used = MemTotal - MemAvailable, buff/cache = Buffers + Cached + SReclaimable (libproc2 4.0)
        "MiB Mem :   7812.5 total,    976.6 free,   2929.7 used,   2343.8 buff/cache     ",
        "MiB Swap:   2048.0 total,   1024.0 free,   1024.0 used.   4882.8 avail Mem ",
        "",
    ]
    assert err == "procsnap: snapshot of h1 at 2026-11-28 03:00:10 UTC\n"


def test_table_columns_units_and_default_cpu_order(recdir):
    out, _ = top(recdir)
    lines = out.splitlines()
    assert lines[6] == "  PID USER      PR  NI    VIRT    RES    SHR S  %CPU  %MEM     TIME+ COMMAND"
    rows = {int(line.split()[0]): line for line in lines[7:]}
    # %CPU = (8 s user + 0.5 s system) / 10 s; TIME+ 108.5 s; %MEM = RES / MemTotal
    assert rows[100] == "  100 alice     20   0  300000  50000   4000 R  85.0   0.6   1:48.50 burner"
    # too wide for the column: scaled as top does (VIRT 20 GiB, RES 2.9 GiB)
    assert rows[200] == "  200 bob       20   0   20.0g   2.9g   1000 S   2.5  37.5   0:01.25 hog"
    assert rows[900] == "  900 alice     20   0    1000    500      0 R  30.0   0.0   0:03.00 newborn"
    assert rows[400] == "  400 root      rt   0       0      0      0 S   0.0   0.0   0:00.00 migration/0"
    assert rows[700].startswith("  700 averyve+  20   0    5000   1000      0 D   0.0")
    assert rows[950].split()[8] == "0.0"          # old but missing before: no rate, not 50 s in 10 s
    # cpu, high to low; ties in pid order (200 and 300 both at 2.5)
    assert pids(out) == [100, 900, 200, 300, 1, 400, 500, 600, 700, 800, 950]


@pytest.mark.parametrize("sort,order", [
    ("mem", [200, 100, 1, 950, 300, 700, 900, 400, 500, 600, 800]),
    ("time", [100, 950, 1, 900, 200, 300, 400, 500, 600, 700, 800]),
    ("pid", [950, 900, 800, 700, 600, 500, 400, 300, 200, 100, 1]),
    ("-pid", [1, 100, 200, 300, 400, 500, 600, 700, 800, 900, 950]),
    # io: read + write bytes/s; unknown (io denied) last
    ("io", [300, 1, 100, 900, 200, 400, 500, 600, 700, 800, 950]),
    ("fds", [1, 200, 300, 100, 400, 500, 600, 700, 800, 900, 950]),
    ("-cpu", [1, 400, 500, 600, 700, 800, 950, 200, 300, 900, 100]),
    # threads: 1 each but 200's 3; start: the newborn (latest start) first, ties in pid order
    ("threads", [200, 1, 100, 300, 400, 500, 600, 700, 800, 900, 950]),
    ("start", [900, 1, 100, 200, 300, 400, 500, 600, 700, 800, 950]),
])
def test_sort_orders(recdir, sort, order):
    out, _ = top(recdir, sort=sort)
    assert pids(out) == order


def test_io_and_fds_sorts_add_their_column(recdir):
    out, _ = top(recdir, sort="io", n=2)
    head, first, second = out.splitlines()[6:9]
    assert head.endswith("    TIME+    IO/s COMMAND")
    assert first.endswith("   0:00.75    1100 writer")      # (1,024,000 + 10,240,000) B / 10 s = 1100 KiB/s
    assert second.endswith("   0:15.00       0 systemd")
    out, _ = top(recdir, sort="fds", n=1)
    head, first = out.splitlines()[6:8]
    assert head.endswith("    TIME+   FDS COMMAND") and first.endswith("   0:15.00   100 systemd")
    assert "IO/s" not in top(recdir)[0] and "FDS" not in top(recdir)[0]


def test_n_is_the_number_of_rows(recdir):
    out, _ = top(recdir, n=3)
    assert pids(out) == [100, 900, 200]
    assert "Tasks:  11 total" in out                     # the summary still counts every task
    assert pids(top(recdir, n=0)[0]) == []
    assert len(pids(top(recdir, n=50)[0])) == 11


def test_command_is_cut_to_the_width_as_top_does(recdir):
    out, _ = top(recdir, width=80, sort="time")
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    row = next(line for line in lines if line.startswith("  950 "))
    assert len(row) == 79 and row.endswith(" a_really_+")    # top -b stops one column short of the width
    wide, _ = top(recdir, width=0, sort="time")
    assert any(line.endswith(" a_really_long_command_name") for line in wide.splitlines())


def test_at_picks_the_latest_snapshot_at_or_before(recdir):
    out, err = top(recdir, at="03:00:19")
    assert out.startswith("top - 03:00:10 ") and "03:00:10 UTC" in err
    out, err = top(recdir, at=None)                        # default: the last snapshot
    assert out.startswith("top - 03:00:20 ") and "03:00:20 UTC" in err
    assert "%Cpu(s): 50.0 us, 50.0 sy,  0.0 ni,  0.0 id," in out
    assert "10.0" == next(line for line in out.splitlines() if line.startswith("  100 ")).split()[8]


def test_first_snapshot_has_no_rates(recdir):
    out, err = top(recdir, at="start", sort="io")
    lines = out.splitlines()
    assert lines[0].startswith("top - 03:00:00 up 2 days,  3:04,")
    # as top shows an empty interval
    assert lines[2] == "%Cpu(s):  0.0 us,  0.0 sy,  0.0 ni,100.0 id,  0.0 wa,  0.0 hi,  0.0 si,  0.0 st "
    rows = [line for line in lines[7:] if line.strip()]
    assert {r.split()[8] for r in rows} == {"0.0"}
    assert rows[0] == "    1 root      20   0  170000  12000   9000 S   0.0   0.1   0:15.00         systemd"
    assert "no snapshot before this one" in err and "rates" in err
    doc = json.loads(top(recdir, at="start", fmt="json")[0])
    assert doc["summary"]["cpu_pct"] is None and doc["summary"]["interval_s"] is None
    assert {r["io_bps"] for r in doc["processes"]} == {None}


def test_json_has_summary_and_processes(recdir):
    doc = json.loads(top(recdir, fmt="json", n=2)[0])
    s = doc["summary"]
    assert s["host"] == "h1" and s["interval_s"] == 10.0 and s["users"] is None
    assert s["tasks"] == {"total": 11, "running": 2, "sleeping": 7, "stopped": 1, "zombie": 1}
    assert s["cpu_pct"] == pytest.approx({"us": 30, "sy": 10, "ni": 5, "id": 40, "wa": 5, "hi": 2, "si": 4,
                                          "st": 4})
    assert s["mem_mib"] == {"total": 7812.5, "free": 976.5625, "used": 2929.6875, "buff_cache": 2343.75}
    assert s["swap_mib"] == {"total": 2048.0, "free": 1024.0, "used": 1024.0, "avail_mem": 4882.8125}
    assert s["load_average"] == [1.5, 0.75, 0.25]
    first = doc["processes"][0]
    assert first == {"pid": 100, "user": "alice", "pr": 20, "ni": 0, "virt_kib": 300000, "res_kib": 50000,
                     "shr_kib": 4000, "s": "R", "cpu_pct": pytest.approx(85.0), "mem_pct": 0.625, "time_s": 108.5,
                     "time_plus": "1:48.50", "command": "burner", "io_bps": 0.0, "fds": 5, "wait": None,
                     "wait_pct": None}
    assert [r["pid"] for r in doc["processes"]] == [100, 900]


def test_csv_is_the_process_table(recdir):
    out, _ = top(recdir, fmt="csv", sort="mem", n=2)
    lines = out.splitlines()
    assert lines[0] == ",".join(T.COLUMNS)
    hog = lines[1].split(",")
    assert hog[:8] == ["200", "bob", "20", "0", "20971520", "3000000", "1000", "S"]
    assert float(hog[8]) == pytest.approx(2.5) and hog[9:] == ["37.5", "1.25", "0:01.25", "hog", "", "50", "", ""]
    assert len(lines) == 3


def test_several_hosts_one_frame_each(recdir):
    out, err = top(recdir, hosts=None)
    frames = out.split("\n\n== ")
    assert len(frames) == 2 and "redis-server" in frames[1] and "redis-server" not in frames[0]
    assert frames[0].startswith("== h1 ==\ntop - ") and frames[1].startswith("h2 ==\ntop - ")
    assert err.count("procsnap: snapshot of") == 2
    assert "redis-server" in top(recdir, hosts=["h2"])[0]
    docs = json.loads(top(recdir, hosts=None, fmt="json")[0])
    assert [d["summary"]["host"] for d in docs] == ["h1", "h2"]
    csv = top(recdir, hosts=None, fmt="csv")[0].splitlines()
    assert csv[0].startswith("host,pid,") and csv[-1].startswith("h2,7,redis,")


def test_formatting_helpers_follow_top():
    assert T.scale_tics(12345) == "  2:03.45"
    assert T.scale_tics(6_000_000) == "  1000:00"              # 1000 minutes: no room for hundredths
    assert T.scale_tics(600_000_000) == "100000:00"
    assert T.scale_tics(6_000_000_000) == " 16666,40"          # hours,minutes
    assert T.scale_tics(432_000_000_000) == "7142w+06d"        # 50000 days: weeks+days
    assert T.scale_mem(9_999_999, 7) == "9999999" and T.scale_mem(10_000_000, 7) == "9765.6m"
    assert T.scale_mem(999_999, 6) == "999999" and T.scale_mem(1_000_000, 6) == "976.6m"
    assert T.scale_pcnt(100.0) == "100.0" and T.scale_pcnt(1234.5) == "1234." and T.scale_pcnt(0.04) == "  0.0"
    assert T.uptime_text(59 * 60 + 59) == "59 min"
    assert T.uptime_text(86400 + 5 * 60) == "1 day, 5 min"
    assert T.uptime_text(3 * 86400 + 10 * 3600 + 7 * 60) == "3 days, 10:07"
    assert T.pr_text(-100) == "rt" and T.pr_text(-51) == "-51"


def test_from_snapshots_gives_rates_between_in_memory_snapshots():
    a = fake_snapshot(0, [{"pid": 10, "utime": 1.0, "stime": 0.0}], system=system(0, CPU0))
    b = fake_snapshot(1, [{"pid": 10, "utime": 3.0, "stime": 1.0}], system=system(1, CPU1))
    r = Recording.from_snapshots([a, b])
    assert r.execute("SELECT cpu_pct FROM process_rates ORDER BY ts")[1] == [(None,), (pytest.approx(30.0),)]
    assert r.execute("SELECT cpu_user_pct FROM system_rates ORDER BY ts")[1] == [(None,), (pytest.approx(30.0),)]
    one = Recording.from_snapshot(a)
    assert one.execute("SELECT count(*), min(host) FROM processes")[1] == [(1, "h1")]


# --------------------------------------------------------------------------
# The command line: errors are one line


@pytest.mark.parametrize("args,code,needle", [
    (["top", "--at", "03:00"], 2, "--at goes with --rec"),
    (["top", "--host", "h1"], 2, "--host goes with --rec"),
    (["top", "--rec", "REC", "--sort", "bogus"], 2, "bad sort key"),
    (["top", "--rec", "REC", "-f", "xml"], 2, "bad format"),
    (["top", "--rec", "REC", "-n", "-1"], 2, "bad number of rows"),
    (["top", "--rec", "REC", "-w", "-5"], 2, "bad width"),
    (["top", "--rec", "REC", "-n", "many"], 2, "'-n'"),
    (["top", "--rec", "/nonexistent/rec"], 2, "no such recording"),
    (["top", "--rec", "REC", "--at", "02:00"], 1, "no snapshot at or before"),
    (["top", "--rec", "REC", "--at", "whenever"], 2, "bad time"),
    (["top", "--rec", "REC", "--host", "nosuch"], 1, "no snapshot of host nosuch"),
    (["top", "--rec", "OLD"], 1, "without the processes table"),
])
def test_error_paths(cli, recdir, oldrec, args, code, needle):
    args = [str(recdir) if a == "REC" else str(oldrec) if a == "OLD" else a for a in args]
    r = cli(*args)
    assert r.returncode == code, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert needle in err and r.stdout == ""


def test_cli_prints_the_frame(cli, recdir):
    r = cli("top", "--rec", recdir, "--host", "h1", "--at", "03:00:10", "-n", "2", "--sort", "mem")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "top - 03:00:10 up 2 days,  3:04,  load average: 1.50, 0.75, 0.25"
    assert pids(r.stdout) == [200, 100]
    assert r.stderr == "procsnap: snapshot of h1 at 2026-11-28 03:00:10 UTC\n"


# --------------------------------------------------------------------------
# Live, against the real top (procps-ng) at nearly the same moment

needs_top = pytest.mark.tools("top")


def real_top():
    out = subprocess.run(["top", "-b", "-n", "1", "-w", "512"], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "LC_ALL": "C"}).stdout
    return parse_frame(out)


def _kib(text):
    m = re.fullmatch(r"([\d.]+)([kmgtp]?)", text)
    return float(m.group(1)) * 1024 ** "kmgtp".index(m.group(2)) if m.group(2) else float(m.group(1))


def parse_frame(out):
    lines = out.splitlines()
    f = {"load": [float(x) for x in lines[0].split("load average:")[1].split(",")]}
    f["tasks"] = int(lines[1].split()[1])
    mem = re.findall(r"([\d.]+) (total|free|used|buff/cache)", lines[3])
    f["mem"] = {k: float(v) for v, k in mem}
    f["mem_text"] = {k: v for v, k in mem}
    f["swap_total"] = lines[4].split()[2]
    f["avail"] = float(lines[4].split("used.")[1].split()[0])
    f["rows"] = {}
    for line in lines[7:]:
        if not line.strip():
            continue
        c = line.split(None, 11)
        f["rows"][int(c[0])] = {"user": c[1], "res": _kib(c[5]), "cpu": float(c[8]), "command": c[11].strip()}
    f["order"] = [int(line.split()[0]) for line in lines[7:] if line.strip()]
    return f


def task_name(command):
    """A kworker's name without the workqueue it runs right now (kworker/1:2-events → kworker/1:2)."""
    return re.sub(r"^(kworker/[^-]+)-.*", r"\1", command)


def live_top(n=None):
    """procsnap top on the live host, in this process (two snapshots half a second apart)."""
    out = io.StringIO()
    assert T.run(None, None, None, n, "cpu", "text", 0, out=out, err=io.StringIO()) == 0
    return parse_frame(out.getvalue())


@pytest.mark.live
@needs_top
def test_live_matches_top():
    before = real_top()
    mine = live_top()
    after = real_top()
    # tasks: processes come and go on a busy host
    assert min(before["tasks"], after["tasks"]) - 5 <= mine["tasks"] <= max(before["tasks"], after["tasks"]) + 5
    # memory: the total exactly; what moves, between the two reads of top (with some slack)
    assert mine["mem_text"]["total"] == before["mem_text"]["total"] == after["mem_text"]["total"]
    assert mine["swap_total"] == before["swap_total"]
    for k in ("free", "used", "buff/cache"):
        lo, hi = sorted((before["mem"][k], after["mem"][k]))
        assert lo - 64 <= mine["mem"][k] <= hi + 64, (k, before["mem"][k], mine["mem"][k], after["mem"][k])
    lo, hi = sorted((before["avail"], after["avail"]))
    assert lo - 64 <= mine["avail"] <= hi + 64
    for i in range(3):
        lo, hi = sorted((before["load"][i], after["load"][i]))
        assert lo - 0.1 <= mine["load"][i] <= hi + 0.1
    # every process alive across both reads of top is in procsnap's table, with its user and command
    stable = set(before["rows"]) & set(after["rows"])
    assert stable and stable <= set(mine["rows"]), stable - set(mine["rows"])
    problems = []
    for pid in stable:
        a, b, m = before["rows"][pid], after["rows"][pid], mine["rows"][pid]
        if a["command"] == b["command"] and task_name(m["command"]) != task_name(a["command"]):
            problems.append((pid, "command", m["command"], a["command"]))
        if m["user"] != a["user"]:
            problems.append((pid, "user", m["user"], a["user"]))
        if pid == os.getpid():
            continue  # our own RES moves while we collect
        lo, hi = sorted((a["res"], b["res"]))
        # procsnap's RES comes from /proc/PID/stat, top's from statm: the kernel's two counts may differ a little
        if not lo - max(2048, 0.1 * lo) <= m["res"] <= hi + max(2048, 0.1 * hi):
            problems.append((pid, "RES KiB", m["res"], (a["res"], b["res"])))
    assert not problems, problems


@pytest.fixture
def burner():
    proc = subprocess.Popen(["python3", "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.live
@pytest.mark.timing
def test_live_cpu_burner_comes_first(burner):
    mine = live_top(n=5)
    assert burner in mine["rows"], mine["order"]
    assert mine["rows"][burner]["cpu"] > 50
    # first, unless something else on the host burns as much
    ahead = mine["order"][:mine["order"].index(burner)]
    assert all(mine["rows"][pid]["cpu"] >= mine["rows"][burner]["cpu"] for pid in ahead), mine["rows"]
    assert len(ahead) <= 1 and mine["rows"][burner]["command"] == "python3"


# --------------------------------------------------------------------------
# Where threads wait: the WAIT column from the thread samples of the interval

def _sampled(tmp_path):
    """Two snapshots of h1; the second took 4 thread samples over its interval: the burner's two
    threads always running, the disk process in D inside read() in 3 of them, the hog's thread in
    a system call whose recorded name is hostile (a shared recording)."""
    from recorder.collect.tables import to_table
    d = tmp_path / "rec"
    with Store(d) as st:
        st.write(fake_snapshot(0, procs(0), system=system(0, CPU0)))
        s = fake_snapshot(1, procs(1), system=system(1, CPU1))
        t = s.tables["snapshots"]
        s.tables["snapshots"] = t.set_column(t.schema.get_field_index("thread_samples"), "thread_samples",
                                             __import__("pyarrow").array([4], "int64"))
        rows = []
        for k in range(4):
            when = T0 + dt.timedelta(seconds=2 + 2 * k)
            rows += [{"time": when, "boot_id": "b1", "pid": 100, "tid": tid, "state": "R", "name": "burner",
                      "activity": "running"} for tid in (100, 101)]
            if k < 3:
                rows.append({"time": when, "boot_id": "b1", "pid": 700, "tid": 700, "state": "D", "name": "disk",
                             "syscall_nr": 0, "syscall": "read", "arg0": "0x3", "wchan": "io_schedule"})
            if k == 0:
                rows.append({"time": when, "boot_id": "b1", "pid": 200, "tid": 201, "state": "D", "name": "hog",
                             "syscall_nr": 7, "syscall": "x\x1b[31mred"})
        s.tables["thread_samples"] = to_table("thread_samples", rows, {"snapshot_id": s.snapshot_id, "ts": s.ts})
        st.write(s)
    return d


def test_wait_column_from_the_thread_samples_of_the_interval(tmp_path):
    d = _sampled(tmp_path)
    out, _ = top(d, sort="wait")
    lines = out.splitlines()
    assert "Waits: 4 thread samples in the interval" in out
    head = next(line for line in lines if line.lstrip().startswith("PID"))
    assert head.split()[-2:] == ["WAIT", "COMMAND"]
    rows = {int(line.split()[0]): line for line in lines[lines.index(head) + 1:] if line.strip()}
    assert pids(out)[:3] == [100, 700, 200]  # by the WAIT share, high to low
    assert "R 100%" in rows[100] and "D read 75%" in rows[700] and "\x1b" not in out
    assert "D x\\x1b[31mred +" in rows[200]  # escaped, and cut to the column with '+' as top cuts
    assert rows[1].split()[-2:] == ["-", "systemd"]
    js = json.loads(top(d, fmt="json")[0])
    assert js["summary"]["thread_samples"] == 4
    by = {r["pid"]: r for r in js["processes"]}
    assert (by[700]["wait"], by[700]["wait_pct"]) == ("D read", 75.0) and by[1]["wait"] is None
    # the snapshot before has no samples: no column, no line, nothing asked of thread_samples
    out, _ = top(d, at="03:00:00")
    assert "WAIT" not in out and "Waits:" not in out

"""procsnap report's rules on synthetic recordings written through the real
store: series built to sit on either side of each rule (a noisy leak, a slow
leak with many flat steps, a sawtooth, a step, a service leaking across
restarts) and a host in trouble in every way the live scenario cannot safely
provoke (D state, low memory and swapping, OOM kills, fd limits, steal,
iowait, a busy disk, port exhaustion, context-switch storms)."""

import datetime as dt
import math
import random

import pytest

from analyze.commands import report as R

from tests.support.synthetic import N, RECORDER, STEP, T0, MiB, proc, snapshot, system_row, write


@pytest.fixture(scope="module")
def leaks(tmp_path_factory):
    rnd = random.Random(7)
    snaps = []
    for i in range(N):
        ps = [
            # noisy leak: 3 fds and 2 MiB per sample, with jitter and occasional small decreases
            proc(100, i, "leaky", num_fds=50 + 3 * i + rnd.randint(-4, 4),
                 rss=100 * MiB + 2 * MiB * i + rnd.randint(-300_000, 300_000)),
            # slow leak: one descriptor every other sample (half the steps are flat)
            proc(101, i, "slowleak", num_fds=20 + i // 2),
            # sawtooth: 30 fds and 20 MiB taken and given back
            proc(102, i, "saw", num_fds=20 + (30 if i % 4 in (1, 2) else 0), rss=50 * MiB + (20 * MiB if i % 4 in (1, 2) else 0)),
            # steady
            proc(103, i, "steady"),
            # a one-off step at start-up
            proc(104, i, "stepper", num_fds=20 + (100 if i >= 3 else 0), rss=50 * MiB + (80 * MiB if i >= 3 else 0)),
            # the recorder itself grows: never reported
            proc(RECORDER, i, "procsnap", num_fds=10 + 5 * i),
            # a kernel thread
            proc(50, i, "kworker/0:1", ppid=2, num_fds=None, rss=0),
        ]
        # a service restarted every 10 samples, leaking 1.5 MiB per sample from the same baseline
        k = i // 10
        start = T0 + dt.timedelta(seconds=k * 10 * STEP - 1)
        ps.append(proc(200 + k, i, "worker", cmdline=f"/usr/bin/worker --port {8001 + k}", start=start,
                       rss=40 * MiB + int(1.5 * MiB) * (i % 10), num_fds=10 + 4 * (i % 10)))
        files = [{"boot_id": "b1", "pid": 100, "start_time": ps[0]["start_time"], "fd": str(3 + j), "fd_num": 3 + j,
                  "type": "IPv4", "name": "TCP 10.0.0.1:1234->10.0.0.2:80 (CLOSE_WAIT)", "deleted": False}
                 for j in range(ps[0]["num_fds"] - 3)]
        socks = [{"boot_id": "b1", "pid": 100, "fd": 3 + j, "start_time": ps[0]["start_time"], "inode": 1000 + j,
                  "family": "IPv4", "proto": "TCP", "local_addr": "10.0.0.1", "local_port": 40000 + j,
                  "remote_addr": "10.0.0.2", "remote_port": 80, "state": "CLOSE_WAIT", "rx_queue": 0, "tx_queue": 0}
                 for j in range(ps[0]["num_fds"] - 3)]
        snaps.append(snapshot(i, {"processes": ps, "system": [system_row(i)], "open_files": files, "sockets": socks}))
    rec = write(tmp_path_factory.mktemp("leaks") / "rec", snaps)
    return rec, R.run(rec)


def found(result, pid=None, kind=None):
    return [f for f in result["findings"]
            if (kind is None or f.kind == kind)
            and (pid is None or (f.process and (f.process["pid"] == pid
                                                or pid in [i["pid"] for i in f.process.get("instances", [])])))]


def test_noisy_leak_is_found_and_projected(leaks):
    _, res = leaks
    fds = found(res, 100, "leak.fds")
    assert len(fds) == 1 and fds[0].severity == "critical"
    e = fds[0].evidence
    assert e["r2"] > 0.95 and e["decreases"] > 0 and e["by_kind"]["socket"]["leak"]
    # (1024 - current) / (3 per 10 s), from the end of the window
    assert e["limit"]["value"] == 1024
    assert e["hours_left"] == pytest.approx((1024 - e["limit"]["current"]) / (e["per_hour"]), rel=1e-3, abs=1e-3)
    assert e["per_hour"] == pytest.approx(3 * 360, rel=0.05)
    rss = found(res, 100, "leak.rss")[0].evidence
    assert rss["per_hour"] == pytest.approx(2 * MiB * 360, rel=0.05)
    # RSS against the host's available memory: 10 GiB at 720 MiB/h
    assert rss["hours_left"] == pytest.approx((10 << 30) / rss["per_hour"], rel=1e-3)
    assert found(res, 100, "leak.close_wait")
    # leaks rank by how soon they exhaust their limit
    hours = [f.hours_left for f in res["findings"] if f.category == "leak"]
    assert hours == sorted(hours) and fds[0].severity == "critical"


def test_slow_leak_with_flat_steps_is_found(leaks):
    _, res = leaks
    f = found(res, 101, "leak.fds")
    assert len(f) == 1 and f[0].evidence["growth"] == 14


@pytest.mark.parametrize("pid", [102, 103, 104, RECORDER, 50])
def test_sawtooth_steady_step_recorder_and_kernel_threads_are_not_leaks(leaks, pid):
    _, res = leaks
    assert not [f for f in found(res, pid) if f.category == "leak"]


def test_why_sawtooth_and_step_fail_the_rule(leaks):
    rec, _ = leaks
    w = R.window(rec, None, None)
    rows = {(r["pid"], r["measure"]): r for r in R.query_rows(rec, R.leak_sql(w))}
    saw = rows[(102, "fds")]
    assert saw["r2"] < 0.2 and saw["decrease"] > 0.3 * saw["increase"] and not saw["leak"]
    step = rows[(104, "fds")]
    assert step["max_step"] > 0.5 * step["growth"] and not step["leak"]
    assert (RECORDER, "fds") not in rows and (50, "fds") not in rows


def test_leak_across_restarts_is_one_identity(leaks):
    _, res = leaks
    fs = [f for f in res["findings"] if f.category == "leak" and f.process.get("instances")]
    assert {f.kind for f in fs} == {"leak.fds", "leak.rss"}
    for f in fs:
        assert [i["pid"] for i in f.process["instances"]] == [200, 201, 202]
        assert f.evidence["level"] == "identity" and f.evidence["instances"] == 3
        assert f.process["identity"]["cmdline"] == "/usr/bin/worker --port #"
    rss = [f for f in fs if f.kind == "leak.rss"][0].evidence
    assert rss["per_hour"] == pytest.approx(1.5 * MiB * 360, rel=0.02) and rss["r2"] > 0.99
    # no instance finding repeats it
    assert not [f for f in res["findings"] if f.category == "leak" and not f.process.get("instances")
                and f.process["pid"] in (200, 201, 202)]


def test_leak_sql_runs_alone_and_agrees(leaks):
    rec, res = leaks
    for f in res["findings"]:
        cols, rows = rec.execute(f.sql)
        assert rows, f.title
        if f.category == "leak":
            r = [dict(zip(cols, x)) for x in rows if dict(zip(cols, x))["measure"] == f.evidence["measure"]]
            assert len(r) == 1 and r[0]["leak"] and r[0]["growth"] == f.evidence["growth"]


# --------------------------------------------------------------------------
# A host in trouble


@pytest.fixture(scope="module")
def trouble(tmp_path_factory):
    snaps = []
    for i in range(N):
        t = i * STEP * 4
        sysrow = system_row(
            i, cpu_user=0.6 * t, cpu_system=0.2 * t, cpu_steal=0.1 * t, cpu_iowait=0.1 * t, cpu_idle=0.0,
            procs_running=12, load1=11.0, ctxt=300_000 * i * STEP, mem_available=int(0.04 * (16 << 30)),
            swap_total=4 << 30, swap_free=1 << 30, pswpin=500 * i * STEP, pswpout=700 * i * STEP,
            oom_kill=1 if i >= 20 else 0, file_handles=97000, psi_memory_some_total=300_000 * i * STEP,
            psi_memory_full_total=150_000 * i * STEP, psi_io_some_total=400_000 * i * STEP,
            psi_io_full_total=150_000 * i * STEP, psi_cpu_some_total=500_000 * i * STEP)
        ps = [
            proc(300, i, "stuck", state="D"),
            proc(301, i, "briefly"),
            proc(400, i, "fdhog", num_fds=980),
            proc(500, i, "chatty", ctxsw_voluntary=300_000 * i, ctxsw_involuntary=50_000 * i),
            proc(600, i, "writer", write_bytes=50 * MiB * i, read_bytes=10 * MiB * i),
            proc(700, i, "hog", utime=1.0 + 9.5 * i, stime=0.5 + 0.3 * i),
        ]
        threads = [{"boot_id": "b1", "pid": 300, "tid": 300, "start_time": ps[0]["start_time"], "name": "stuck",
                    "state": "D", "nice": 0, "priority": 20, "processor": 0, "utime": 0.0, "stime": 0.0,
                    "minflt": 0, "majflt": 0},
                   {"boot_id": "b1", "pid": 301, "tid": 301, "start_time": ps[1]["start_time"], "name": "briefly",
                    "state": "D" if i == 5 else "S", "nice": 0, "priority": 20, "processor": 0, "utime": 0.0,
                    "stime": 0.0, "minflt": 0, "majflt": 0}]
        disks = [{"device": "sda", "major": 8, "minor": 0, "reads": 100 * i, "reads_merged": 0,
                  "read_bytes": 10 * MiB * i, "read_time_ms": 500 * i, "writes": 1000 * i, "writes_merged": 0,
                  "write_bytes": 50 * MiB * i, "write_time_ms": 9000 * i, "in_flight": 4,
                  "io_time_ms": 9000 * i, "weighted_io_time_ms": 20000 * i}]
        base = {"boot_id": "b1", "family": "IPv4", "proto": "TCP", "netns": 4026531840, "tx_queue": 0}
        socks = [dict(base, pid=800, fd=3, start_time=T0 - dt.timedelta(hours=1), inode=1, local_addr="0.0.0.0",
                      local_port=8080, remote_addr="0.0.0.0", remote_port=0, state="LISTEN",
                      rx_queue=(3 + i % 5) if 10 <= i < 15 else 0)]
        if i >= N - 3:
            # 17,000 ports towards one database: 60 % of the default ephemeral range
            socks += [dict(base, pid=None, fd=None, start_time=None, inode=0, local_addr="10.0.0.1",
                           local_port=32768 + j, remote_addr="10.0.0.9", remote_port=5432,
                           state="TIME_WAIT" if j % 2 else "ESTABLISHED", rx_queue=0)
                      for j in range(17000)]
        snaps.append(snapshot(i, {"processes": ps + [proc(800, i, "server")], "system": [sysrow],
                                  "threads": threads, "disks": disks, "sockets": socks, "open_files": []}))
    rec = write(tmp_path_factory.mktemp("trouble") / "rec", snaps)
    return rec, R.run(rec)


def one(res, kind):
    fs = [f for f in res["findings"] if f.kind == kind]
    assert len(fs) == 1, (kind, [f.title for f in res["findings"]])
    return fs[0]


def test_cpu_saturation_steal_and_iowait(trouble):
    _, res = trouble
    sat = one(res, "cpu.saturation")
    assert sat.severity == "critical" and sat.evidence["busy_pct_avg"] >= 90
    assert sat.evidence["run_queue_max"] == 11 and sat.evidence["over_cores_share"] == 1
    assert [t["name"] for t in sat.evidence["top_processes"]] == ["hog"]  # the idle ones are not "top"
    assert one(res, "cpu.steal").severity == "warning"
    assert one(res, "cpu.iowait").severity == "warning"
    hog = [f for f in res["findings"] if f.kind == "cpu.process"][0]
    assert hog.process["name"] == "hog" and hog.severity == "warning"


def test_stuck_in_d_state(trouble):
    _, res = trouble
    d = one(res, "proc.d_state")  # the one that was in D once is not reported
    assert d.process["pid"] == 300 and d.severity == "critical"
    assert d.evidence["longest_run"] == N and d.evidence["longest_run_s"] == (N - 1) * STEP
    assert d.evidence["snapshots_in_d"] == N == d.evidence["samples"]


def test_memory_pressure(trouble):
    _, res = trouble
    m = one(res, "memory.pressure")
    assert m.severity == "critical"
    e = m.evidence
    assert e["available_min_pct"] == 4.0 and e["oom_kills"] == 1 and e["swap_pages_ps_avg"] == 1200
    assert e["psi_memory_some_avg"] == 30.0 and "OOM" in m.title


def test_fd_limits(trouble):
    _, res = trouble
    f = one(res, "fd.limit")
    assert f.process["pid"] == 400 and f.severity == "critical" and f.evidence["pct_of_limit_max"] == 95.7
    h = one(res, "fd.host")
    assert h.severity == "critical" and h.evidence["pct_max"] == 97.0


def test_io(trouble):
    _, res = trouble
    assert one(res, "io.disk").severity == "warning"
    assert one(res, "io.pressure").severity == "critical"
    io = [f for f in res["findings"] if f.kind == "io.process"]
    assert io[0].process["name"] == "writer" and io[0].severity == "warning"
    assert io[0].evidence["storage_bps"] == 6 * MiB


def test_listen_queue_and_ports(trouble):
    _, res = trouble
    q = one(res, "net.listen_queue")
    assert q.severity == "warning" and q.evidence["longest_run"] == 5 and q.evidence["local_port"] == 8080
    p = one(res, "net.ports")
    assert p.severity == "warning" and p.evidence["ports_max"] == 17000
    assert p.evidence["busiest_destination"] == "10.0.0.9:5432" and p.evidence["time_wait_max"] == 8500


def test_context_switch_storms(trouble):
    _, res = trouble
    h = one(res, "ctxsw.host")
    assert h.severity == "warning" and h.evidence["per_cpu_avg"] == 75000
    p = one(res, "ctxsw.process")
    assert p.process["name"] == "chatty" and p.evidence["per_s"] == 35000


def test_ranking_and_every_sql(trouble):
    rec, res = trouble
    sevs = [R.SEVERITIES.index(f.severity) for f in res["findings"] if f.category == "bottleneck"]
    assert sevs == sorted(sevs)
    assert res["findings"][0].category == "bottleneck"  # no leaks on this host
    assert res["summary"]["leaks"] == 0
    for f in res["findings"]:
        assert not f.sql.startswith("-") and "$" not in f.sql
        cols, rows = rec.execute(f.sql)
        rows = [dict(zip(cols, r)) for r in rows]
        # over the views (not the report's window cache) the statement gives the evidence, value for value
        assert [r for r in rows if all(r[k] == v for k, v in f.evidence.items() if k in r)], (f.title, rows[:2])
    js = R.as_json(res)
    assert [f["rank"] for f in js["findings"]] == list(range(1, len(js["findings"]) + 1))
    text = R.text(res)
    assert "Leaks: none found" in text and "Bottlenecks (" in text


def test_a_quiet_host_has_no_findings(tmp_path):
    rec = write(tmp_path / "rec", [snapshot(i, {"processes": [proc(10, i, "idle")], "system": [system_row(i)]})
                                   for i in range(N)])
    res = R.run(rec)
    assert res["findings"] == [] and res["summary"]["critical"] == 0
    assert "Leaks: none found" in R.text(res) and "Bottlenecks: none found" in R.text(res)


def test_too_few_snapshots_is_said(tmp_path):
    rec = write(tmp_path / "rec", [snapshot(i, {"processes": [proc(10, i, "x", num_fds=10 + 50 * i)],
                                                "system": [system_row(i)]}) for i in range(3)])
    res = R.run(rec)
    assert not [f for f in res["findings"] if f.category == "leak"]
    assert any("leak detection needs at least" in n for n in res["notes"])


def test_html_is_self_contained_without_a_browser(leaks):
    from analyze.commands.report import html as H
    rec, res = leaks
    page = H.render(rec, res)
    assert page.startswith("<!DOCTYPE html>") and "default-src 'none'" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert page.count('<figure class="chart"') >= 3 + 3 * len({str(f.process.get("instances") or f.process["pid"])
                                                               for f in res["findings"] if f.process})
    assert "time (UTC)" in page and "<svg" in page
    assert all(math.isfinite(float(x)) for x in __import__("re").findall(r'<path d="M([-\d.]+) ', page))

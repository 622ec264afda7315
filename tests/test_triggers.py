"""Triggers: the counters on a fake /proc, the hourly share, the config file, and the record loop
starting the incident preset by itself, saying why, ending it after the quiet period and
writing every firing."""

import datetime as dt

import pytest

from analyze.data.db import Recording
from recorder import record as R
from recorder.collect import triggers as T
from recorder.collect.collector import Collector
from recorder.source.procfs import ProcFS
from recorder.store.folder import Store
from tests.support.fakeproc import MEMINFO_KB, VMSTAT, FakeProc, meminfo_text, vmstat_text

NOW = dt.datetime(2026, 12, 5, 3, 14, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def fake(tmp_path):
    return FakeProc(tmp_path / "proc")


def test_counters_fire_over_their_thresholds_and_not_under(fake):
    clock = Clock()
    c = T.Counters(ProcFS(str(fake.root)), T.Config().specs, clock)
    assert c.check(NOW) == []  # the fake host is calm
    total = MEMINFO_KB["MemTotal"]
    fake.write("meminfo", meminfo_text({**MEMINFO_KB, "MemAvailable": total // 50}))  # 2 % left
    fake.write("loadavg", b"%.2f 1.00 1.00 3/200 999\n" % (5 * c.ncpus))
    fake.write("vmstat", vmstat_text({**VMSTAT, "pswpin": VMSTAT["pswpin"] + 4000}))
    clock.t += 2
    fired = {f.trigger: f for f in c.check(NOW)}
    assert set(fired) == {"mem_available", "load", "swap_in"}
    assert fired["mem_available"].value == 2.0 and fired["load"].value == 5.0 and fired["swap_in"].value == 2000
    c.specs["load"].enabled = False
    clock.t += 2
    assert {f.trigger for f in c.check(NOW)} == {"mem_available"}  # swap-in stopped; load is off


def test_the_hourly_share_holds():
    b = T.Budget(0.25)
    b.start(0)
    assert b.allows(899) and not b.allows(900)
    b.end(900)
    assert not b.allows(3000)  # 900 s of the last hour already
    assert b.allows(3600 + 1)  # the span slides out of the hour


def test_config_file(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text('quiet = "30s"\nmax_share = 0.1\n[psi_cpu]\nthreshold = 95\n[load]\nenabled = false\n')
    cfg = T.load_config(str(f))
    assert cfg.quiet == 30 and cfg.max_share == 0.1
    assert cfg.specs["psi_cpu"].threshold == 95 and not cfg.specs["load"].enabled
    assert T.DEFAULTS["psi_cpu"].threshold == 90  # the defaults are not changed
    for bad in ("[psi_cpu]\nthreshold = 'x'\n", "nope = 1\n", "max_share = 2\n", "quiet = 'soon'\n", "[[x"):
        f.write_text(bad)
        with pytest.raises(T.ConfigError):
            T.load_config(str(f))


def test_a_bad_config_file_is_a_usage_error(cli, tmp_path):
    f = tmp_path / "t.toml"
    f.write_text("[psi_cpu]\nthreshold = -1\n")
    p = cli("record", "-o", tmp_path / "r", "-n", "1", "--triggers", f, check=2)
    assert len(p.stderr.strip().splitlines()) == 1 and "threshold" in p.stderr and "Traceback" not in p.stderr


def _watcher(fake, **cfg):
    """A watcher on the fake /proc with no thread: the test fires it."""
    config = T.Config(**cfg)
    return T.Watcher(config, ProcFS(str(fake.root)))


def _snaps(root):
    return Recording.open([str(root)]).query(
        "SELECT incident, incident_reason, triggers FROM snapshots ORDER BY ts")[1]


def test_a_firing_starts_the_incident_preset_which_ends_after_the_quiet_period(tmp_path, fake, procfs):
    w = _watcher(fake, quiet=0.3)
    w.fire([T.Firing(dt.datetime.now(dt.timezone.utc), "psi_memory", 42.0, 10.0, "memory some: ...")])
    root = tmp_path / "r"
    with Store(root) as st:
        res = R.record(st, Collector(procfs=procfs, host="h"), 30, count=2, triggers=w, err=open("/dev/null", "w"))
    assert res.incidents == 1
    (first, second) = _snaps(root)
    assert first[:2] == (True, "psi_memory 42 (threshold 10): memory some: ...") and first[2] == "armed"
    assert second[:2] == (False, None)  # 0.3 s without a firing: back to the normal cadence at once
    rows = Recording.open([str(root)]).query("SELECT trigger, value, threshold, firings, suppressed FROM triggers")[1]
    assert rows == [("psi_memory", 42.0, 10.0, 1, False)]
    # info and report list it: when, why, how long
    from analyze.commands import info as I
    from analyze.commands import report as Rp
    rec = Recording.open([str(root)])
    text = I.text(I.summarize(rec))
    assert "incidents: 1" in text and "(1 snapshots, 1 trigger firings): psi_memory 42 (threshold 10)" in text
    (f,) = [f for f in Rp.run(rec)["findings"] if f.kind == "recorder.incident"]
    assert f.evidence["snapshots"] == 1 and f.evidence["reason"].startswith("psi_memory 42")
    assert rec.execute(f.sql)[1][0][5] == f.evidence["reason"]


def test_past_the_hourly_share_a_firing_is_recorded_suppressed(tmp_path, fake, procfs):
    w = _watcher(fake, max_share=0.1)
    now = w.clock()
    w.budget.spans = [[now - 1000, now - 500]]  # 500 s of the last hour: over 10 %
    w.fire([T.Firing(NOW, "load", 9.0, 4.0, "load1 18 on 2 CPUs")])
    root = tmp_path / "r"
    with Store(root) as st:
        res = R.record(st, Collector(procfs=procfs, host="h"), 30, count=1, triggers=w)
    assert res.incidents == 0 and _snaps(root)[0][:2] == (False, None)
    assert Recording.open([str(root)]).query("SELECT trigger, suppressed FROM triggers")[1] == [("load", True)]


def test_a_process_near_its_fd_limit_fires(fake):
    import pyarrow as pa
    w = _watcher(fake)
    w.saw(pa.table({"pid": [1, 2], "name": ["ok", "leaky"], "num_fds": [10, 950], "fd_limit": [1024, 1024]}))
    (f,) = w.firings()
    assert (f.trigger, f.value) == ("fd_limit", round(950 * 100 / 1024, 2)) and "leaky (pid 2)" in f.detail


def test_repeats_of_a_trigger_are_one_row_with_a_count(fake):
    w = _watcher(fake)
    w.fire([T.Firing(NOW + dt.timedelta(seconds=i), "psi_cpu", 91.0 + i, 90.0, "cpu") for i in range(5)])
    w.firings()
    table, meta = w.take(1, NOW)
    assert table.column("firings").to_pylist() == [5] and table.column("value").to_pylist() == [95.0]


def _fire_after(w, seconds, trigger="psi_cpu"):
    import threading
    t = threading.Timer(seconds, lambda: w.fire([T.Firing(dt.datetime.now(dt.timezone.utc), trigger, 99.0, 90.0,
                                                          "cpu some: ...")]))
    t.start()
    return t


def _with_ring(tmp_path, fake, procfs, span, fire_at, interval, count, **kw):
    """A recording whose ring (a frame every 0.1 s, SPAN s kept) is written when a trigger fires
    at FIRE_AT s; returns (folder, RecordResult)."""
    from recorder.collect.ring import Ring
    w = _watcher(fake, quiet=0.2)
    collector = Collector(procfs=procfs, host="h")
    root = tmp_path / "r"
    _fire_after(w, fire_at)
    with Store(root) as st:
        res = R.record(st, collector, interval, count=count, triggers=w, ring=Ring(collector, every=0.1, span=span),
                       err=open("/dev/null", "w"), **kw)
    return root, res


def test_an_incident_writes_the_pre_trigger_ring_first(tmp_path, fake, procfs, cli):
    root, res = _with_ring(tmp_path, fake, procfs, 0.65, 1.2, 30, 2)
    rows = Recording.open([str(root)]).query(
        "SELECT ts, early, incident, triggers, processes_seen, threads_seen, interval_s FROM snapshots ORDER BY ts")[1]
    regular, *frames, incident = rows
    assert regular[1] is None and incident[2] is True
    assert res.ring_frames == len(frames) and res.snapshots == 2 + len(frames) and res.ring_left_out == 0
    # the last 0.65 s before the firing, one frame every 0.1 s: host counters and processes, no threads
    assert 2 <= len(frames) <= 8  # the loop wakes every 0.2 s at most
    assert all(f[1] == "ring" and f[2] is False and f[3] == "armed" for f in frames)
    assert all(f[4] == 3 and f[5] is None and f[6] == 0.1 for f in frames)
    assert (frames[-1][0] - frames[0][0]).total_seconds() <= 0.65
    assert regular[0] < frames[0][0] and frames[-1][0] < incident[0]
    assert (incident[0] - frames[-1][0]).total_seconds() < 1.0  # the ring ran up to the firing
    rec = Recording.open([str(root)])
    assert rec.query("SELECT count(DISTINCT snapshot_id) FROM processes")[1][0][0] == 2 + len(frames)
    assert rec.query("SELECT count(DISTINCT snapshot_id) FROM system")[1][0][0] == 2 + len(frames)
    # the process rows held packed in memory are those a snapshot writes
    got = rec.query("SELECT p.pid, p.name, p.num_fds, count(*) FROM processes p JOIN snapshots s USING (snapshot_id) "
                    "WHERE s.early = 'ring' GROUP BY ALL ORDER BY 1")[1]
    assert got == [(10, "w10", 4, len(frames)), (11, "w11", 4, len(frames)), (12, "w12", 4, len(frames))]
    # info and report say how many frames the incident has; ps -L needs threads: not a ring frame's
    n = len(frames)
    assert f"(1 snapshots, 1 trigger firings, {n} pre-trigger frames from " in cli("info", root).stdout
    assert f"1 snapshots, {n} pre-trigger frames from" in cli("report", root).stdout
    at = frames[-1][0].strftime("%H:%M:%S.%f")
    assert cli("ps", "--rec", root, "--at", at, "-o", "pid").stdout.split()[1:] == ["10", "11", "12"]
    p = cli("ps", "--rec", root, "--at", at, "-L", "-o", "pid,lwp")
    assert len(p.stdout.splitlines()) == 4 and f"at {regular[0]:%Y-%m-%d %H:%M:%S} UTC" in p.stderr


def test_ring_frames_a_compaction_covers_since_are_left_out(tmp_path, fake, procfs):
    from recorder.store.compact import Maintenance
    root, res = _with_ring(tmp_path, fake, procfs, 30, 2.6, 1, 5, maintenance=Maintenance(compact_min=2))
    assert res.ring_left_out >= 1 and res.ring_frames >= 1
    rec = Recording.open([str(root)])
    # every frame written is read (none hidden inside the compacted file's range)
    assert rec.query("SELECT count(*) FROM snapshots WHERE early = 'ring'")[1][0][0] == res.ring_frames
    assert rec.query("SELECT count(*) FROM snapshots")[1][0][0] == res.snapshots


def test_ring_settings_in_the_config_file(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text('ring_every = "5s"\nring_span = "2m"\n')
    cfg = T.load_config(str(f))
    assert (cfg.ring_every, cfg.ring_span) == (5, 120)
    f.write_text('ring_span = 0\n')
    assert T.load_config(str(f)).ring_span == 0
    for bad in ('ring_every = 0\n', 'ring_span = "soon"\n'):
        f.write_text(bad)
        with pytest.raises(T.ConfigError):
            T.load_config(str(f))


def test_under_sustained_firings_the_hourly_share_ends_the_incident(tmp_path, fake, procfs):
    """A trigger that keeps firing: the incident preset runs until the hour's share is used (here
    1.8 s), then the normal cadence resumes, and later firings are recorded as suppressed."""
    import io
    import threading
    w = _watcher(fake, quiet=60, max_share=0.0005)
    done = threading.Event()

    def keep_firing():
        while not done.wait(0.2):
            w.fire([T.Firing(dt.datetime.now(dt.timezone.utc), "psi_io", 80.0, 30.0, "io full: ...")])

    threading.Timer(0.3, keep_firing).start()
    err = io.StringIO()
    root = tmp_path / "r"
    try:
        with Store(root) as st:
            res = R.record(st, Collector(procfs=procfs, host="h"), 30, count=3, triggers=w, err=err)
    finally:
        done.set()
    assert res.incidents == 1
    snaps = [r[0] for r in _snaps(root)]
    assert snaps == [False, True, False], snaps
    assert "took 0% of the last hour; back to normal cadences" in err.getvalue()
    rows = Recording.open([str(root)]).query("SELECT bool_or(suppressed), bool_or(NOT suppressed) FROM triggers")[1]
    assert rows == [(True, True)]

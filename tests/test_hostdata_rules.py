"""The report's file-system and TCP-stack rules on synthetic recordings written through the real
store: series on either side of each rule (steady filling, a log rotated in a sawtooth, a one-off
copy, a device mounted twice, inodes running out; a retransmission spike, retransmits that are
noise, a counter that went backwards)."""

import datetime as dt

import pytest

from analyze.commands import report as R
from analyze.commands.report import host as H
from tests.support.synthetic import N, STEP, T0, snapshot, system_row, write

MiB = 1 << 20
GiB = 1 << 30


def fs_row(point, major, minor, size, used, inodes_total=100_000, inodes_used=1000, fs_type="ext4",
           source="/dev/vda1", **kw):
    return {"mount_id": minor, "mount_point": point, "source": source, "fs_type": fs_type, "major": major,
            "minor": minor, "options": "rw", "size": size, "used": used, "avail": size - used,
            "inodes_total": inodes_total, "inodes_used": inodes_used, "inodes_free": inodes_total - inodes_used, **kw}


@pytest.fixture(scope="module")
def fs_rec(tmp_path_factory):
    snaps = []
    for i in range(N):
        rows = [
            # steady: +50 MiB per 10 s on a 10 GiB disk with 2 GiB free at the start
            fs_row("/var", 254, 1, 10 * GiB, 8 * GiB + i * 50 * MiB),
            # the same device bind-mounted deeper: counted once, under the shorter point
            fs_row("/srv/var-bind", 254, 1, 10 * GiB, 8 * GiB + i * 50 * MiB),
            # a log rotated every 5 snapshots: grows and gives it all back
            fs_row("/logs", 254, 2, 10 * GiB, 5 * GiB + (i % 5) * 200 * MiB),
            # one copy of 3 GiB half way, flat otherwise
            fs_row("/data", 254, 3, 100 * GiB, 50 * GiB + (3 * GiB if i >= N // 2 else 0)),
            # inodes running out on a roomy disk: +50 small files per snapshot
            fs_row("/spool", 254, 4, 100 * GiB, 10 * GiB, inodes_total=5000, inodes_used=1000 + 50 * i),
            # a pseudo file system (size 0) and an unmeasured network mount
            fs_row("/proc", 0, 21, 0, 0, inodes_total=0, inodes_used=0, fs_type="proc", source="proc"),
            {"mount_id": 99, "mount_point": "/mnt/nfs", "source": "srv:/x", "fs_type": "nfs4", "major": 0,
             "minor": 99, "options": "rw", "not_measured": "nfs4: statvfs did not return within 0.5 s"},
        ]
        snaps.append(snapshot(i, {"system": [system_row(i)], "filesystems": rows, "processes": [],
                                  "open_files": []}))
    return write(tmp_path_factory.mktemp("fs") / "rec", snaps)


def test_filling_file_systems_are_found_with_time_to_full(fs_rec):
    result = R.run(fs_rec)
    found = {(f.kind, f.evidence["mount_point"]): f for f in result["findings"] if f.kind.startswith("fs.")}
    assert set(found) == {("fs.space", "/var"), ("fs.inodes", "/spool")}, [f.title for f in result["findings"]]
    var = found[("fs.space", "/var")]
    # 50 MiB per 10 s is 17.58 GiB/h; what is left at the end over that rate
    left = 2 * GiB - (N - 1) * 50 * MiB
    assert var.evidence["per_hour"] == pytest.approx(50 * MiB * 360, rel=1e-9)
    assert var.hours_left == pytest.approx(left / (50 * MiB * 360), rel=1e-9)
    assert var.severity == "critical" and "full in ~" in var.title
    assert var.evidence["full_at"] == T0 + dt.timedelta(seconds=(N - 1) * STEP) + dt.timedelta(hours=var.hours_left)
    assert var.evidence["writers"] == [] and "no descriptor snapshot in the window" in var.evidence["writers_note"]
    spool = found[("fs.inodes", "/spool")]
    assert spool.evidence["free_now"] == 5000 - 1000 - 50 * (N - 1)
    assert spool.hours_left == pytest.approx(spool.evidence["free_now"] / (50 * 360), rel=1e-9)
    # the reproducing SQL runs as procsnap query would run it
    cols, rows = fs_rec.execute(var.sql.split(";\n\n")[0])
    got = [dict(zip(cols, r)) for r in rows]
    assert [(r["mount_point"], r["measure"]) for r in got if r["filling"]] == [("/var", "bytes")]


def test_fs_findings_rank_with_the_most_urgent_first(fs_rec):
    kinds = [f.kind for f in R.run(fs_rec)["findings"]]
    assert kinds.index("fs.space") < kinds.index("fs.inodes") or "fs.inodes" not in kinds


def _net_rec(path, retrans, out_segs, extra=None):
    snaps = []
    tot_r = tot_o = 0
    for i in range(len(retrans)):
        tot_r += retrans[i]
        tot_o += out_segs[i]
        row = system_row(i, tcp_retrans_segs=tot_r, tcp_out_segs=tot_o, tcp_timeouts=0,
                         tcp_listen_overflows=0, tcp_listen_drops=0, **(extra(i) if extra else {}))
        snaps.append(snapshot(i, {"system": [row]}))
    return write(path, snaps)


def test_a_retransmission_spike_is_flagged(tmp_path):
    n = 10
    retrans = [10] * n
    out = [10_000] * n
    retrans[6], out[6] = 800, 9_200  # 8 % of the 10 000 segments sent in one interval
    result = R.run(_net_rec(tmp_path / "a", retrans, out))
    found = [f for f in result["findings"] if f.kind == "net.retransmits"]
    assert len(found) == 1
    f = found[0]
    assert f.severity == "warning" and f.evidence["spikes"] == 1 and f.evidence["retrans_pct_max"] == 8.0
    assert f.evidence["worst_at"] == T0 + dt.timedelta(seconds=6 * STEP)
    retrans[6], out[6] = 2000, 8_000  # 20 %: critical
    f = [f for f in R.run(_net_rec(tmp_path / "b", retrans, out))["findings"] if f.kind == "net.retransmits"][0]
    assert f.severity == "critical"


def test_retransmits_that_are_noise_or_steady_are_not_a_spike(tmp_path):
    n = 10
    # 50 % of 100 segments is 50 retransmits: too few to mean anything; 1 % steady: under the bar
    rec = _net_rec(tmp_path / "a", [50] * n, [100] * n)
    assert not [f for f in R.run(rec)["findings"] if f.kind == "net.retransmits"]
    rec = _net_rec(tmp_path / "b", [100] * n, [10_000] * n)
    assert not [f for f in R.run(rec)["findings"] if f.kind == "net.retransmits"]


def test_a_counter_that_went_backwards_gives_no_rate(tmp_path):
    """The recorder restarted in another network namespace (or the host rebooted): its counters
    start again near 0: no negative rate, no spike made of it."""
    snaps = []
    for i, (r, o) in enumerate([(1000, 100_000), (1010, 110_000), (5, 900), (15, 10_900)]):
        snaps.append(snapshot(i, {"system": [system_row(i, tcp_retrans_segs=r, tcp_out_segs=o,
                                                        tcp_listen_overflows=r)]}))
    rec = write(tmp_path / "rec", snaps)
    _, rows = rec.execute("SELECT tcp_retrans_pct, tcp_retrans_segs_ps, tcp_listen_overflows_ps FROM netstat_rates "
                          "ORDER BY ts")
    assert rows[0] == (None, None, None)
    assert rows[1] == (pytest.approx(10 * 100 / 10_010), pytest.approx(1.0), pytest.approx(1.0))
    assert rows[2] == (None, None, None)
    assert rows[3] == (pytest.approx(10 * 100 / 10_010), pytest.approx(1.0), pytest.approx(1.0))


def test_retransmits_above_new_segments_are_a_share_of_all_segments_sent(tmp_path):
    """OutSegs excludes retransmissions: 4 000 retransmitted against 1 000 new segments is 80 %
    of the 5 000 segments sent, not "400 %" of them."""
    n = 10
    retrans, out = [10] * n, [10_000] * n
    retrans[6], out[6] = 4_000, 1_000
    found = [f for f in R.run(_net_rec(tmp_path / "a", retrans, out))["findings"] if f.kind == "net.retransmits"]
    assert len(found) == 1
    f = found[0]
    assert f.evidence["retrans_pct_max"] == 80.0 and f.severity == "critical"
    assert "80.0% of all the segments sent were retransmissions" in f.title
    total_r, total_o = sum(retrans[1:]), sum(out[1:])
    assert f.evidence["retrans_pct_window"] == round(total_r * 100 / (total_r + total_o), 2)


def test_listen_overflows_in_a_recording_without_sockets(tmp_path):
    """Counters alone: the finding stands, without suspects."""
    snaps = [snapshot(i, {"system": [system_row(i, tcp_listen_overflows=[0, 0, 40, 140][i],
                                                tcp_listen_drops=[0, 0, 40, 150][i])]}) for i in range(4)]
    result = R.run(write(tmp_path / "rec", snaps))
    (f,) = [f for f in result["findings"] if f.kind == "net.listen_overflow"]
    assert (f.evidence["overflows"], f.evidence["drops"], f.evidence["intervals_dropping"]) == (140, 150, 2)
    assert f.severity == "critical" and f.evidence["listeners"] is None
    assert H.LISTEN_OVERFLOW_CRIT <= 150


def test_a_hostile_mount_point_reaches_the_text_report_escaped(tmp_path):
    """A user who can mount (FUSE) names the mount point: its control characters are escaped."""
    point = "/mnt/\x1b]0;owned\x07\x1b[2J"
    snaps = [snapshot(i, {"system": [system_row(i)],
                          "filesystems": [fs_row(point, 0, 77, 1 * GiB, 100 * MiB + i * 20 * MiB, fs_type="fuse.x")]})
             for i in range(N)]
    result = R.run(write(tmp_path / "rec", snaps))
    (f,) = [f for f in result["findings"] if f.kind == "fs.space"]
    assert f.evidence["mount_point"] == point
    out = R.text(result)
    assert "\x1b" not in out and "\x07" not in out
    assert "/mnt/\\x1b]0;owned" in out

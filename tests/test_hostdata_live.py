"""Host data on the real host: a tmpfs of our own filled by a child process between snapshots
(numbers compared with df -B1 and df -i; the report's filling-up finding, its writer and its
deleted-but-open file), and a listen queue overflowed in a network namespace of our own (the
recorded ListenOverflows against the kernel's, and the report's finding)."""

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from analyze.commands import report as R
from analyze.data.db import Recording
from recorder.collect.collector import Collector
from recorder.store.folder import Store

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20

pytestmark = [pytest.mark.live, pytest.mark.root, pytest.mark.tools("mount")]

WRITER = textwrap.dedent("""
    import os, sys
    d = sys.argv[1]
    out = open(os.path.join(d, "data"), "wb")
    held = []
    for line in sys.stdin:
        cmd, n = line.split()
        if cmd == "w":                       # append N MiB
            out.write(b"x" * (int(n) << 20)); out.flush()
        elif cmd == "d":                     # a file of N MiB, deleted while kept open
            f = open(os.path.join(d, "gone.log"), "wb"); f.write(b"y" * (int(n) << 20)); f.flush()
            os.unlink(f.name); held.append(f)
        print("ok", flush=True)
""")


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=2000", "procsnap-test", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _df(mnt: Path) -> tuple[dict, dict]:
    b = subprocess.run(["df", "-B1", "--output=size,used,avail", str(mnt)], capture_output=True, text=True,
                       check=True).stdout.split("\n")[1].split()
    i = subprocess.run(["df", "-i", str(mnt)], capture_output=True, text=True,  # Inodes IUsed IFree
                       check=True).stdout.split("\n")[1].split()[1:4]
    return dict(zip(("size", "used", "avail"), map(int, b))), dict(zip(("itotal", "iused", "iavail"), map(int, i)))


def _row(snap, mnt: Path) -> dict:
    rows = [r for r in snap.tables["filesystems"].to_pylist() if r["mount_point"] == str(mnt)]
    assert len(rows) == 1, rows
    return rows[0]


def test_a_tmpfs_filling_up_is_recorded_as_df_shows_it_and_reported(tmpfs, tmp_path):
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmpfs)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)

    def tell(cmd):
        child.stdin.write(cmd + "\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ok"

    c = Collector(tables=("system", "filesystems", "processes", "open_files"))
    rec = tmp_path / "rec"
    try:
        tell("d 2")
        dev = os.stat(tmpfs).st_dev
        with Store(rec) as st:
            for i in range(10):
                snap = c.snapshot()
                row = _row(snap, tmpfs)
                size, inodes = _df(tmpfs)  # nothing writes there between the snapshot and df
                assert (row["size"], row["used"], row["avail"]) == (size["size"], size["used"], size["avail"])
                assert (row["inodes_total"], row["inodes_used"], row["inodes_free"]) == \
                    (inodes["itotal"], inodes["iused"], inodes["iavail"])
                assert (row["major"], row["minor"]) == (os.major(dev), os.minor(dev))
                assert (row["fs_type"], row["source"], row["not_measured"]) == ("tmpfs", "procsnap-test", None)
                st.write(snap)
                tell("w 4")
                time.sleep(0.6)
        assert row["used"] >= 2 * MiB + 9 * 4 * MiB
        result = R.run(Recording.open([str(rec)]))
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    found = [f for f in result["findings"] if f.kind == "fs.space" and f.evidence["mount_point"] == str(tmpfs)]
    assert len(found) == 1, [f.title for f in result["findings"]]
    f = found[0]
    assert f.hours_left is not None and f.hours_left < 1 and f.severity == "critical"
    assert f.evidence["writers"][0]["pid"] == child.pid
    assert f.evidence["writers"][0]["wchar"] >= 8 * 4 * MiB
    held = f.evidence["deleted_open"]
    assert [h["pid"] for h in held] == [child.pid] and held[0]["bytes"] == 2 * MiB
    assert str(child.pid) in f.title and "gone.log" in str(held[0]["examples"])
    # the SQL the finding carries gives the same answer under `procsnap query`
    cols, rows = Recording.open([str(rec)]).execute(f.sql.split(";\n\n")[0])
    r = dict(zip(cols, [x for x in rows if dict(zip(cols, x))["measure"] == "bytes"][0]))
    assert r["filling"] and abs(r["hours_left"] - f.hours_left) < 1e-9


NETNS_SCRIPT = textwrap.dedent("""
    import json, socket, subprocess, sys, time
    from recorder.source import procfs as P
    from recorder.collect.collector import Collector
    from recorder.store.folder import Store
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    def overflows():
        return P.parse_snmp(open("/proc/net/netstat", "rb").read())[("TcpExt", "ListenOverflows")]

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)                            # never accepts
    port = srv.getsockname()[1]
    c = Collector(tables=("system", "processes", "open_files", "sockets"))
    kernel = []
    with Store(sys.argv[1]) as st:
        for i in range(3):
            if i == 2:
                clients = []
                for _ in range(20):
                    s = socket.socket()
                    s.setblocking(False)
                    try:
                        s.connect(("127.0.0.1", port))
                    except BlockingIOError:
                        pass
                    clients.append(s)
                time.sleep(1.0)
            before = overflows()
            snap = c.snapshot()
            kernel.append((before, overflows()))
            st.write(snap)
            time.sleep(0.3)
    print(json.dumps({"port": port, "kernel": kernel}))
""")


@pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("ip"), reason="needs unshare and ip")
def test_listen_queue_overflow_is_recorded_and_reported(tmp_path):
    """In a network namespace of our own (its counters are ours alone): a listener with backlog 1
    that never accepts, 20 connects; the recorded ListenOverflows lies between the kernel's just
    before and just after the snapshot, and the report names the overflow and the listener."""
    import json
    rec = tmp_path / "rec"
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", NETNS_SCRIPT, str(rec)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    r = Recording.open([str(rec)])
    _, rows = r.execute("SELECT tcp_listen_overflows, tcp_listen_drops FROM system ORDER BY ts")
    recorded = [x[0] for x in rows]
    for (lo, hi), v in zip(out["kernel"], recorded):
        assert lo <= v <= hi
    assert recorded[0] == recorded[1] == 0 and recorded[2] > 0
    assert all(x[1] >= x[0] for x in rows)  # ListenDrops counts the overflows too
    _, rates = r.execute("SELECT round(tcp_listen_overflows_ps * interval_s) FROM netstat_rates ORDER BY ts")
    assert [x[0] for x in rates] == [None, 0, recorded[2]]
    result = R.run(r)
    found = [f for f in result["findings"] if f.kind == "net.listen_overflow"]
    assert len(found) == 1, [f.title for f in result["findings"]]
    f = found[0]
    assert f.evidence["overflows"] == recorded[2] and f.evidence["intervals_dropping"] == 1
    assert any(f"127.0.0.1:{out['port']}" in x for x in f.evidence["listeners"]), f.evidence
    assert f.severity == "warning" and f"127.0.0.1:{out['port']}" in f.title
    # its SQL, run as procsnap query would, gives the same numbers
    cols, rows = Recording.open([str(rec)]).execute(f.sql)
    assert dict(zip(cols, rows[0]))["overflows"] == recorded[2]


HUNG_FUSE_SCRIPT = textwrap.dedent("""
    import ctypes, json, os, sys, time
    from recorder.collect.collector import Collector
    d = sys.argv[1]
    # A FUSE mount whose daemon never answers (not even the kernel's INIT): every statfs there
    # blocks, as on a hung sshfs or a dead NFS server.
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(b"procsnap-hang", d.encode(), b"fuse.procsnap-hang", 0, opts) != 0:
        print(json.dumps({"mount_errno": ctypes.get_errno()}))
        sys.exit(0)
    c = Collector(tables=("system", "filesystems"))
    out = {}
    for k in ("first", "second"):
        t = time.monotonic()
        snap = c.snapshot()
        out[k + "_s"] = time.monotonic() - t
        out[k] = [r for r in snap.tables["filesystems"].to_pylist() if r["mount_point"] == d]
        out[k + "_root"] = [r["size"] for r in snap.tables["filesystems"].to_pylist() if r["mount_point"] == "/"]
    os.close(fd)  # the connection aborts: the blocked statfs returns (ENOTCONN)
    time.sleep(0.2)
    snap = c.snapshot()
    out["third"] = [r for r in snap.tables["filesystems"].to_pylist() if r["mount_point"] == d]
    print(json.dumps(out, default=str))
""")


@pytest.mark.skipif(not os.path.exists("/dev/fuse") or not shutil.which("unshare"), reason="needs /dev/fuse")
def test_a_hung_fuse_mount_does_not_stall_the_snapshot(tmp_path):
    """A real hung mount, in a mount namespace of the test's own (nothing else on the host sees
    it): the first snapshot waits the deadline at most, the next one not at all; the mount's
    numbers are NULL with the reason; the other mounts are measured."""
    import json
    d = tmp_path / "hung"
    d.mkdir()
    p = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", HUNG_FUSE_SCRIPT, str(d)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    if "mount_errno" in out:
        pytest.skip(f"cannot mount FUSE here: errno {out['mount_errno']}")
    (first,), (second,) = out["first"], out["second"]
    assert first["fs_type"] == "fuse.procsnap-hang" and first["source"] == "procsnap-hang"
    assert first["size"] is None and "did not return within 0.5 s" in first["not_measured"]
    assert second["size"] is None and "has not returned for" in second["not_measured"]
    assert out["first_s"] < 0.5 + 2.0 and out["second_s"] < out["first_s"]
    assert out["first_root"][0] > 0 and out["second_root"][0] > 0  # the others are measured
    (third,) = out["third"]
    assert third["size"] is None and third["not_measured"].startswith("statvfs: ")  # ENOTCONN now, not a hang

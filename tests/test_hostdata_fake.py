"""Host data on a fake /proc: the TCP/UDP stack counters (/proc/net/snmp, netstat, snmp6) and
the filesystems table (/proc/self/mountinfo + statvfs), parsers and collection, hostile inputs
included (fields an older kernel lacks, a section whose lines do not pair up, escaped mount
points, a mount hidden under another, an automount point, a network file system that hangs)."""

import os
import threading
import time

import pytest

from recorder.source import procfs as P
from recorder.collect.collector import Collector
from recorder.store.compact import SORT_KEYS
from recorder.collect.filesystems import FilesystemReader
from recorder.source.procfs import ProcFS
from recorder.schema import NET_COUNTERS, TABLES
from tests.support.fakeproc import FakeProc

# The real two-line format (a 6.x kernel), header then values, each led by the section name.
SNMP = (b"Ip: Forwarding DefaultTTL InReceives InHdrErrors\n"
        b"Ip: 1 64 98012 0\n"
        b"Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab "
        b"InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n"
        b"Tcp: 1 200 120000 -1 4372 4298 5 169 4390 54308 43905 17 2 985 1\n"
        b"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n"
        b"Udp: 142 3 7 143 6 0 0 0 1\n")
# An older kernel: no InCsumErrors, no IgnoredMulti/MemErrors, and a TcpExt without the newer fields.
SNMP_OLD = (b"Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab "
            b"InSegs OutSegs RetransSegs InErrs OutRsts\n"
            b"Tcp: 1 200 120000 -1 10 11 1 2 3 100 90 4 0 5\n"
            b"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n"
            b"Udp: 1 2 3 4 5 6\n")
NETSTAT = (b"TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts ListenOverflows ListenDrops "
           b"TCPTimeouts TCPReqQFullDrop TCPBacklogDrop\n"
           b"TcpExt: 3 2 1 0 41 43 9 4 8\n"
           b"IpExt: InNoRoutes InTruncatedPkts\n"
           b"IpExt: 0 0\n")
NETSTAT_OLD = (b"TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed ListenOverflows ListenDrops\n"
               b"TcpExt: 0 0 0 5 6\n")
SNMP6 = b"Ip6InReceives                   \t3816\nUdp6InDatagrams                 \t12\nUdp6InErrors                    \t3\nUdp6RcvbufErrors                \t2\n"


def test_parse_snmp_pairs_names_with_values():
    d = P.parse_snmp(SNMP)
    assert d[("Tcp", "RetransSegs")] == 17
    assert d[("Tcp", "MaxConn")] == -1
    assert d[("Udp", "RcvbufErrors")] == 6
    assert d[("Ip", "InReceives")] == 98012
    assert P.parse_snmp(NETSTAT)[("TcpExt", "ListenOverflows")] == 41


def test_parse_snmp_skips_a_section_whose_lines_do_not_pair_up():
    # truncated value line: the Tcp values cannot be matched to their names: none is believed
    torn = SNMP.replace(b"Tcp: 1 200 120000 -1 4372 4298 5 169 4390 54308 43905 17 2 985 1",
                        b"Tcp: 1 200 120000 -1 4372")
    d = P.parse_snmp(torn)
    assert not any(k[0] == "Tcp" for k in d)
    assert d[("Udp", "InErrors")] == 7
    # a header without its value line, then another section: that one still parses
    d = P.parse_snmp(b"Tcp: A B\nUdp: InErrors\nUdp: 9\n")
    assert d == {("Udp", "InErrors"): 9}
    assert P.parse_snmp(b"") == {}
    # a value no int64 holds is left out (NULL), the others kept
    assert P.parse_snmp(b"Tcp: A B\nTcp: 99999999999999999999999 5\n") == {("Tcp", "B"): 5}


def test_parse_snmp6():
    d = P.parse_snmp6(SNMP6)
    assert d["Udp6InErrors"] == 3 and d["Udp6RcvbufErrors"] == 2 and d["Ip6InReceives"] == 3816
    assert P.parse_snmp6(b"garbage line here\nUdp6NoPorts x\n") == {}


def _system_row(tmp_path, files):
    fp = FakeProc(tmp_path / "proc")
    for rel, data in files.items():
        fp.write(rel, data)
    snap = Collector(ProcFS(str(fp.root)), host="h", tables=("system",)).snapshot()
    return snap.tables["system"].to_pylist()[0]


def test_collector_records_the_stack_counters(tmp_path):
    row = _system_row(tmp_path, {"net/snmp": SNMP, "net/netstat": NETSTAT, "net/snmp6": SNMP6})
    assert row["tcp_retrans_segs"] == 17 and row["tcp_out_segs"] == 43905 and row["tcp_curr_estab"] == 4390
    assert row["tcp_listen_overflows"] == 41 and row["tcp_listen_drops"] == 43
    assert (row["tcp_syncookies_sent"], row["tcp_syncookies_recv"], row["tcp_syncookies_failed"]) == (3, 2, 1)
    assert row["tcp_out_rsts"] == 985 and row["tcp_estab_resets"] == 169 and row["tcp_attempt_fails"] == 5
    assert row["udp_in_errors"] == 7 and row["udp_rcvbuf_errors"] == 6 and row["udp_mem_errors"] == 1
    assert row["udp6_in_errors"] == 3 and row["udp6_rcvbuf_errors"] == 2
    assert row["tcp_req_q_full_drop"] == 4 and row["tcp_backlog_drop"] == 8


def test_fields_an_older_kernel_lacks_are_null(tmp_path):
    row = _system_row(tmp_path, {"net/snmp": SNMP_OLD, "net/netstat": NETSTAT_OLD})  # and no snmp6 (IPv6 off)
    assert row["tcp_retrans_segs"] == 4 and row["tcp_listen_overflows"] == 5 and row["udp_sndbuf_errors"] == 6
    for col in ("tcp_in_csum_errors", "udp_mem_errors", "udp_in_csum_errors", "tcp_timeouts", "tcp_req_q_full_drop",
                "udp6_in_errors", "udp6_rcvbuf_errors"):
        assert row[col] is None, col


def test_no_net_files_gives_nulls_not_a_failure(tmp_path):
    row = _system_row(tmp_path, {})
    assert all(row[c[0]] is None for c in NET_COUNTERS)
    assert row["mem_total"] is not None


# --------------------------------------------------------------------------
# filesystems

def mountinfo_line(mid, parent, dev, root, point, opts, optional, fstype, source, sopts="rw"):
    return f"{mid} {parent} {dev} {root} {point} {opts} {optional}{' ' if optional else ''}- {fstype} {source} {sopts}\n".encode()


def test_parse_mountinfo_unescapes_and_handles_optional_fields():
    data = (mountinfo_line(22, 1, "254:1", "/", "/", "rw,relatime", "shared:1", "ext4", "/dev/vda1")
            + mountinfo_line(40, 22, "0:45", "/", r"/mnt/with\040space\011tab", "rw", "", "tmpfs", "tmp\\134fs")
            + mountinfo_line(41, 22, "0:46", "/sub", "/srv/bind", "ro,nosuid", "shared:5 master:2", "nfs4",
                             "server:/export")
            + b"not a mountinfo line\n"
            + b"42 22 0:47 / /x rw shared:1\n")  # no separator: skipped
    rows = P.parse_mountinfo(data)
    assert [r["mount_id"] for r in rows] == [22, 40, 41]
    assert rows[0]["major"] == 254 and rows[0]["minor"] == 1 and rows[0]["fs_type"] == "ext4"
    assert rows[1]["mount_point"] == b"/mnt/with space\ttab" and rows[1]["source"] == b"tmp\\fs"
    assert rows[2]["fs_type"] == "nfs4" and rows[2]["root"] == b"/sub" and rows[2]["options"] == "ro,nosuid"


def test_filesystems_rows(tmp_path):
    """Numbers from statvfs as df computes them; a point mounted over is not measured (a statvfs of
    the path would give the top mount's numbers); an automount point is not touched; a mount point
    that is not there gives the error."""
    a, b = tmp_path / "a", tmp_path / "b\nnl"
    a.mkdir()
    b.mkdir()
    esc = str(b).replace("\n", "\\012")
    data = (mountinfo_line(1, 0, "254:0", "/", str(a), "rw", "", "ext4", "/dev/vda1")
            + mountinfo_line(2, 1, "0:50", "/", str(a), "rw", "", "tmpfs", "tmpfs")
            + mountinfo_line(3, 1, "0:51", "/", esc, "rw", "", "tmpfs", "tmpfs")
            + mountinfo_line(4, 1, "0:52", "/", str(tmp_path / "auto"), "rw", "", "autofs", "systemd-1")
            + mountinfo_line(5, 1, "0:53", "/", str(tmp_path / "missing"), "rw", "", "ext4", "/dev/x"))
    calls = []

    def statvfs(p):
        calls.append(p)
        return os.statvfs(p)

    rows = {r["mount_id"]: {c: r.get(c) for c in TABLES["filesystems"].names} | r
            for r in FilesystemReader(statvfs=statvfs).rows(data)}
    assert rows[1]["not_measured"].startswith("hidden under a later mount") and rows[1]["size"] is None
    st = os.statvfs(a)
    assert rows[2]["size"] == st.f_blocks * st.f_frsize and rows[2]["avail"] == st.f_bavail * st.f_frsize
    assert rows[2]["used"] == (st.f_blocks - st.f_bfree) * st.f_frsize
    assert rows[2]["inodes_total"] == st.f_files and rows[2]["inodes_free"] == st.f_ffree
    assert rows[2]["inodes_used"] == st.f_files - st.f_ffree and rows[2]["not_measured"] is None
    assert rows[3]["mount_point"] == str(b) and rows[3]["size"] is not None
    assert rows[4]["size"] is None and "automount" in rows[4]["not_measured"]
    assert str(tmp_path / "auto").encode() not in calls  # never touched
    assert rows[5]["size"] is None and "No such file" in rows[5]["not_measured"]
    assert (rows[2]["major"], rows[2]["minor"], rows[2]["fs_type"], rows[2]["source"]) == (0, 50, "tmpfs", "tmpfs")


def test_a_hung_network_mount_never_stalls_the_snapshot(tmp_path):
    """statvfs of a dead NFS server blocks for good: the snapshot waits at most the deadline, says
    why the numbers are NULL, and later snapshots do not pile up calls on that mount."""
    ok = tmp_path / "ok"
    ok.mkdir()
    release = threading.Event()
    started = []

    def statvfs(p):
        if b"dead" in p:
            started.append(p)
            release.wait()  # the server never answers (until the test ends)
        return os.statvfs(ok)

    data = (mountinfo_line(1, 0, "0:60", "/", str(tmp_path / "dead"), "rw", "", "nfs4", "srv:/x")
            + mountinfo_line(2, 0, "0:61", "/", str(tmp_path / "dead2"), "rw", "", "fuse.sshfs", "u@h:")
            + mountinfo_line(3, 0, "0:62", "/", str(tmp_path / "alive"), "rw", "", "nfs", "srv2:/y")
            + mountinfo_line(4, 0, "0:63", "/", str(ok), "rw", "", "tmpfs", "tmpfs"))
    fp = FakeProc(tmp_path / "proc")
    fp.write("self/mountinfo", data)
    c = Collector(ProcFS(str(fp.root)), host="h", tables=("filesystems",))
    c._filesystems = FilesystemReader(statvfs=statvfs, deadline=0.3)
    try:
        t = time.monotonic()
        rows = {r["mount_id"]: r for r in c.snapshot().tables["filesystems"].to_pylist()}
        took = time.monotonic() - t
        assert took < 2.0, took  # both dead mounts waited on together, not one after the other
        assert rows[1]["size"] is None and "did not return within 0.3 s" in rows[1]["not_measured"]
        assert rows[2]["size"] is None and rows[2]["not_measured"].startswith("fuse.sshfs")
        assert rows[3]["size"] is not None and rows[3]["not_measured"] is None
        assert rows[4]["size"] is not None
        t = time.monotonic()
        rows = {r["mount_id"]: r for r in c.snapshot().tables["filesystems"].to_pylist()}
        assert time.monotonic() - t < 0.25  # still blocked: no new call, no new wait
        assert "has not returned for" in rows[1]["not_measured"]
        assert len(started) == 2  # one call per dead mount in all
    finally:
        release.set()
    time.sleep(0.05)
    rows = {r["mount_id"]: r for r in c.snapshot().tables["filesystems"].to_pylist()}
    assert rows[1]["size"] is not None  # the server answered again: measured again


def test_fake_tree_without_mountinfo_gives_an_empty_table(tmp_path):
    fp = FakeProc(tmp_path / "proc")
    snap = Collector(ProcFS(str(fp.root)), host="h", tables=("filesystems",)).snapshot()
    assert snap.tables["filesystems"].num_rows == 0
    assert snap.tables["snapshots"].to_pylist()[0]["ms_filesystems"] is not None


def test_compaction_sort_keys_are_columns_of_their_tables():
    """A sort key that is not a column is silently dropped by compaction (disks and nics were sorted
    by a 'name' they do not have): every key must be a column."""
    for table, keys in SORT_KEYS.items():
        assert set(keys) <= set(TABLES[table].names), table
    assert SORT_KEYS["filesystems"][0] == "mount_point"


def test_filesystems_compact_sorted_by_mount_and_read_back_whole(tmp_path):
    """Real snapshots of the host's mounts, compacted: one file, rows sorted by mount point then
    time, the same rows the small files held (the views read them alike)."""
    import pyarrow.parquet as pq

    from analyze.data.db import Recording
    from recorder.store import compact as C
    from recorder.store.folder import Store
    rec = tmp_path / "rec"
    c = Collector(tables=("system", "filesystems"))
    with Store(rec) as st:
        for _ in range(4):
            st.write(c.snapshot())
        q = "SELECT snapshot_id, mount_id, mount_point, size IS NULL FROM filesystems ORDER BY ALL"
        before = Recording.open([str(rec)]).execute(q)[1]
        assert C.compact(st, 4) == 4
    files = [p for p in (rec / "filesystems").rglob("c*.parquet")]
    assert len(files) == 1
    t = pq.read_table(files[0])
    keys = list(zip(t.column("mount_point").to_pylist(), t.column("mount_id").to_pylist(),
                    t.column("snapshot_id").to_pylist()))
    assert keys == sorted(keys) and len(keys) == len(before) > 0
    assert Recording.open([str(rec)]).execute(q)[1] == before

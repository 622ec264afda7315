"""The kernel log: /dev/kmsg's records and their semantics (EPIPE, resuming) on a fake that
behaves as the kernel's ring buffer, the incident parsers on lines in the kernel's own formats,
and kernel_events through the record loop (commit, resume without duplicates, a full buffer)."""

import datetime as dt
import errno

import pytest

from analyze.data.db import Recording
from recorder import record as R
from recorder.collect.collector import Collector
from recorder.collect.kernel_events import KernelLog, parse_message
from recorder.source.kmsg import KmsgReader, Unavailable, parse_record, unescape
from recorder.store.folder import Store
from tests.support.record_loop import fail_writes


class FakeKmsg:
    """/dev/kmsg as the kernel gives it to one reader: a ring of SIZE records; a read returns the
    next record, None when there is none (EAGAIN), and raises EPIPE once when the next one was
    overwritten, moving the reader to the oldest record held."""

    def __init__(self, size=100, ring=None):
        self.ring = ring if ring is not None else []  # [(seq, bytes)] shared by every reader
        self.size = size
        self.pos = self.ring[0][0] if self.ring else 0

    def write(self, text: bytes, pri: int = 6, ts: int = 1_000_000, dict_=b"") -> int:
        seq = self.ring[-1][0] + 1 if self.ring else 0
        self.ring.append((seq, b"%d,%d,%d,-;%s\n%s" % (pri, seq, ts + seq, text, dict_)))
        del self.ring[:-self.size]
        return seq

    def reopen(self) -> "FakeKmsg":
        return FakeKmsg(self.size, self.ring)

    def read(self, n):
        if not self.ring or self.pos > self.ring[-1][0]:
            return None
        if self.pos < self.ring[0][0]:
            self.pos = self.ring[0][0]
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        rec = self.ring[self.pos - self.ring[0][0]][1]
        self.pos += 1
        return rec

    def fileno(self):
        raise OSError("a fake has no descriptor")

    def close(self):
        pass


# ---------------------------------------------------------------------------
# Records

def test_a_record_and_its_dictionary():
    r = parse_record(b"3,1234,5678901,-,caller=T42;virtio_blk virtio1: I/O \\x5c error\n SUBSYSTEM=virtio\n DEVICE=+virtio:virtio1\n")
    assert (r.priority, r.facility, r.seq, r.ts_us, r.flags) == (3, 0, 1234, 5678901, "-")
    assert r.text == b"virtio_blk virtio1: I/O \\x5c error"
    assert (r.subsystem, r.device) == (b"virtio", b"+virtio:virtio1")
    u = parse_record(b"14,7,1,-;hello from user space\n")
    assert (u.priority, u.facility) == (6, 1)
    assert unescape(b"caf\\xc3\\xa9 \\x5cn") == "café \\n".encode()


@pytest.mark.parametrize("bad", [b"", b"no prefix", b"1,2;short", b"x,1,2,-;text", b"-1,2,3,-;neg"])
def test_what_is_not_a_record_is_none(bad):
    assert parse_record(bad) is None


def test_the_reader_maps_kernel_time_to_wall_time_and_stops_at_eagain():
    k = FakeKmsg()
    for i in range(3):
        k.write(b"line %d" % i)
    rd = KmsgReader(k, clock=lambda: 1_700_000_000_000_000)
    recs = rd.read()
    assert [r.seq for r in recs] == [0, 1, 2]
    assert recs[1].wall_us == 1_700_000_000_000_000 + recs[1].ts_us
    assert rd.read() == [] and rd.lost == 0


def test_epipe_counts_what_was_overwritten_and_goes_on():
    k = FakeKmsg(size=5)
    rd = KmsgReader(k)
    for _ in range(3):
        k.write(b"a")
    assert [r.seq for r in rd.read()] == [0, 1, 2]
    for _ in range(10):  # seqs 3..12: the ring keeps 8..12
        k.write(b"b")
    assert [r.seq for r in rd.read()] == [8, 9, 10, 11, 12]
    assert (rd.lost, rd.epipes) == (5, 1)


def test_resuming_skips_what_is_stored_and_counts_what_went_meanwhile():
    k = FakeKmsg(size=4)
    for _ in range(10):  # the ring keeps 6..9
        k.write(b"x")
    rd = KmsgReader(k.reopen())
    rd.skip_to(7)
    assert [r.seq for r in rd.read()] == [8, 9] and rd.lost == 0
    rd = KmsgReader(k.reopen())
    rd.skip_to(3)  # 4 and 5 were overwritten while no recorder ran
    assert [r.seq for r in rd.read()] == [6, 7, 8, 9] and rd.lost == 2


def test_a_kernel_log_that_cannot_be_opened_says_why(tmp_path):
    with pytest.raises(Unavailable, match="does not exist"):
        KmsgReader.open(str(tmp_path / "kmsg"))
    log = KernelLog.start(None, "h", "b", opener=lambda: KmsgReader.open(str(tmp_path / "kmsg")))
    table, meta = log.take(1, dt.datetime.now(dt.timezone.utc))
    assert table is None
    assert meta["kernel_log"].startswith("off: ") and "does not exist" in meta["kernel_log"]
    assert meta["kernel_events_lost"] is None


def test_permission_denied_names_dmesg_restrict(monkeypatch):
    import recorder.source.kmsg as K

    def refuse(*a, **k):
        raise PermissionError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(K.os, "open", refuse)
    monkeypatch.setattr(K, "_restricted", lambda: True)
    with pytest.raises(Unavailable, match="dmesg_restrict"):
        KmsgReader.open()


# ---------------------------------------------------------------------------
# Parsers, on lines in the kernel's formats

PARSED = [
    (b"Out of memory: Killed process 12345 (stress-ng-vm) total-vm:1234567kB, anon-rss:1000000kB, file-rss:1234kB, "
     b"shmem-rss:8kB, UID:1000 pgtables:2345kB oom_score_adj:0",
     {"kind": "oom_kill", "pid": 12345, "comm": "stress-ng-vm", "anon_rss": 1000000 * 1024, "file_rss": 1234 * 1024,
      "shmem_rss": 8 * 1024, "total_vm": 1234567 * 1024, "uid": 1000}),
    (b"Memory cgroup out of memory: Killed process 4242 (python3) total-vm:215000kB, anon-rss:98304kB, "
     b"file-rss:4096kB, shmem-rss:0kB, UID:0 pgtables:300kB oom_score_adj:0",
     {"kind": "oom_kill", "pid": 4242, "comm": "python3", "anon_rss": 98304 * 1024}),
    (b"Killed process 77 (old) total-vm:10kB, anon-rss:5kB, file-rss:1kB", {}),  # 3.x without a reason: not ours
    (b"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/t.service,"
     b"task_memcg=/system.slice/t.service,task=python3,pid=4242,uid=0",
     {"kind": "oom_context", "oom_constraint": "CONSTRAINT_MEMCG", "cgroup": "/system.slice/t.service",
      "task_cgroup": "/system.slice/t.service", "comm": "python3", "pid": 4242, "uid": 0}),
    (b"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
     b"task_memcg=/user.slice/user-1000.slice/session-3.scope,task=stress-ng-vm,pid=12345,uid=1000",
     {"kind": "oom_context", "oom_constraint": "CONSTRAINT_NONE", "detail": "global_oom",
      "task_cgroup": "/user.slice/user-1000.slice/session-3.scope", "pid": 12345, "comm": "stress-ng-vm"}),
    (b"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,task=a,b,pid=  777,uid=   33",
     {"kind": "oom_context", "comm": "a,b", "pid": 777, "uid": 33, "detail": None, "cgroup": None}),
    (b"memory: usage 32768kB, limit 32768kB, failcnt 100",
     {"kind": "oom_memcg", "memory_usage": 32768 * 1024, "memory_limit": 32768 * 1024, "failcnt": 100}),
    (b"memory+swap: usage 32768kB, limit 9007199254740988kB, failcnt 0", {}),  # the limit hit is memory's
    (b"stress-ng-vm invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=1000",
     {"kind": "oom_invoked", "comm": "stress-ng-vm"}),
    (b"a.out[3141]: segfault at 0 ip 0000555d5c1d1131 sp 00007ffc1ea2c1e0 error 6 in a.out[555d5c1d1000+1000] "
     b"likely on CPU 1 (core 1, socket 0)",
     {"kind": "segfault", "pid": 3141, "comm": "a.out", "address": "0", "ip": "0000555d5c1d1131",
      "sp": "00007ffc1ea2c1e0", "error_code": 6, "library": "a.out", "trap": "segfault"}),
    (b"my worker[999]: segfault at 7f0000000000 ip 00007f1234567890 sp 00007ffd00000000 error 4",
     {"kind": "segfault", "pid": 999, "comm": "my worker", "error_code": 4}),
    (b"traps: a.out[3150] trap divide error ip:55e7f5e5113a sp:7ffe7d5b3f30 error:0 in a.out[55e7f5e51000+1000]",
     {"kind": "trap", "pid": 3150, "comm": "a.out", "trap": "divide error", "ip": "55e7f5e5113a", "library": "a.out"}),
    (b"traps: python3[777] general protection fault ip:7f3c2a1b2c3d sp:7ffd8e8f9a10 error:0 in libc.so.6[7f3c2a000000+195000]",
     {"kind": "trap", "pid": 777, "comm": "python3", "trap": "general protection fault", "library": "libc.so.6"}),
    (b"traps: x[1] trap invalid opcode ip:401000 sp:7ffd00 error:0 in x[401000+1000]",
     {"kind": "trap", "pid": 1, "trap": "invalid opcode"}),
    (b"INFO: task kworker/u8:2:123 blocked for more than 120 seconds.",
     {"kind": "hung_task", "comm": "kworker/u8:2", "pid": 123, "seconds": 120}),
    (b"watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [stress-ng:4567]",
     {"kind": "soft_lockup", "cpu": 3, "seconds": 23, "comm": "stress-ng", "pid": 4567}),
    (b"watchdog: Watchdog detected hard LOCKUP on cpu 2", {"kind": "hard_lockup", "cpu": 2}),
    (b"TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:8080. Sending cookies.",
     {"kind": "syn_flood", "local_addr": "0.0.0.0", "port": 8080, "detail": "Sending cookies"}),
    (b"TCP: request_sock_TCPv6: Possible SYN flooding on port [::]:443. Dropping request.",
     {"kind": "syn_flood", "local_addr": "::", "port": 443, "detail": "Dropping request"}),
    (b"TCP: request_sock_TCP: Possible SYN flooding on port 80. Sending cookies.  Check SNMP counters.",
     {"kind": "syn_flood", "port": 80}),
    (b"nf_conntrack: nf_conntrack: table full, dropping packet", {"kind": "conntrack_full"}),
    (b"EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0",
     {"kind": "fs_error", "fs_type": "EXT4", "block_device": "sda1"}),
    (b"EXT4-fs error (device dm-1) in ext4_do_update_inode:5151: Journal has aborted",
     {"kind": "fs_error", "fs_type": "EXT4", "block_device": "dm-1"}),
    (b"Aborting journal on device sda1-8.", {"kind": "fs_error", "block_device": "sda1", "fs_type": None}),
    (b"EXT4-fs (sda1): Remounting filesystem read-only", {"kind": "fs_readonly", "fs_type": "EXT4", "block_device": "sda1"}),
    (b"XFS (dm-0): Corruption detected. Unmount and run xfs_repair", {"kind": "fs_error", "fs_type": "XFS", "block_device": "dm-0"}),
    (b"XFS (dm-0): Mounting V5 Filesystem", {}),
    (b"BTRFS error (device sdb1: state EA): bdev /dev/sdb1 errs: wr 0, rd 1, flush 0, corrupt 0, gen 0",
     {"kind": "fs_error", "fs_type": "BTRFS", "block_device": "sdb1"}),
    (b"BTRFS info (device sdb1): forced readonly", {"kind": "fs_readonly", "fs_type": "BTRFS", "block_device": "sdb1"}),
    (b"I/O error, dev sda, sector 123456 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2",
     {"kind": "io_error", "block_device": "sda", "sector": 123456, "detail": "I/O"}),
    (b"blk_update_request: I/O error, dev sdb, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0",
     {"kind": "io_error", "block_device": "sdb", "sector": 2048, "detail": "I/O"}),
    (b"critical medium error, dev sdc, sector 99 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0",
     {"kind": "io_error", "block_device": "sdc", "detail": "critical medium"}),
    (b"Buffer I/O error on dev sda1, logical block 0, async page read",
     {"kind": "io_error", "block_device": "sda1", "sector": 0}),
    (b"e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx", {}),
    (b"caf\\xc3\\xa9[12]: segfault at 8 ip 0000000000401000 sp 00007ffd00000000 error 4 in caf\\xc3\\xa9[401000+1000]",
     {"kind": "segfault", "comm": "café", "library": "café", "pid": 12}),
]


@pytest.mark.parametrize("line,want", PARSED, ids=[p[0][:40].decode() for p in PARSED])
def test_parsers(line, want):
    got = parse_message(line)
    if not want:
        assert got == {}
        return
    assert {k: got.get(k) for k in want} == want


# ---------------------------------------------------------------------------
# Through the record loop

def _log(k, store, collector, capacity=8192, **kw):
    return KernelLog.start(store, collector.host, collector.boot_id, opener=lambda: KmsgReader(k), capacity=capacity, **kw)


def _events(root):
    rec = Recording.open([str(root)])
    return rec.con.execute("SELECT seq, backlog, kind, pid, oom_constraint, cgroup, text, priority, facility "
                           "FROM kernel_events ORDER BY seq").fetchall()


def _snaps(root):
    rec = Recording.open([str(root)])
    return rec.con.execute("SELECT kernel_log, events_dropped, kernel_events_lost FROM snapshots ORDER BY ts").fetchall()


def test_records_are_written_with_the_next_snapshot_and_resume_without_duplicates(tmp_path, procfs):
    k = FakeKmsg(size=50)
    k.write(b"memory: usage 2048kB, limit 2048kB, failcnt 7")
    k.write(b"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/t,"
            b"task_memcg=/t,task=big,pid=4242,uid=0")
    k.write(b"Memory cgroup out of memory: Killed process 4242 (big) total-vm:2000kB, anon-rss:1000kB, "
            b"file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0", pri=3)
    k.write(b"PGPASSWORD=hunter2 psql", pri=6 | 8)  # a user-space line, redacted, never parsed
    col = Collector(procfs=procfs, host="h")
    root = tmp_path / "r"
    with Store(root) as st:
        R.record(st, col, 0.02, count=2, kernel_log=_log(k.reopen(), st, col))
    ev = _events(root)
    assert [e[0] for e in ev] == [0, 1, 2, 3] and all(e[1] for e in ev)
    assert ev[2][2:6] == ("oom_kill", 4242, "CONSTRAINT_MEMCG", "/t")  # the context carried to the kill
    assert Recording.open([str(root)]).query(  # and the cgroup's limit from the record before the context
        "SELECT kind, memory_usage, memory_limit FROM kernel_events WHERE seq > 0 ORDER BY seq LIMIT 2")[1] == \
        [("oom_context", 2048 * 1024, 2048 * 1024), ("oom_kill", 2048 * 1024, 2048 * 1024)]
    assert ev[3][6] == "PGPASSWORD=<redacted> psql" and ev[3][2] is None and ev[3][7:] == (6, 1)
    assert _snaps(root) == [("read", 0, 0), ("read", 0, 0)]
    # A restart: the kernel opens at its oldest record; what is stored is skipped.
    for i in range(3):
        k.write(b"later %d" % i)
    with Store(root) as st:
        R.record(st, col, 0.02, count=1, kernel_log=_log(k.reopen(), st, col))
    ev = _events(root)
    assert [e[0] for e in ev] == [0, 1, 2, 3, 4, 5, 6]
    # A new boot starts from the oldest record again.
    col.boot_id = "another-boot"
    with Store(root) as st:
        R.record(st, col, 0.02, count=1, kernel_log=_log(k.reopen(), st, col))
    assert len(_events(root)) == 14


def test_a_full_buffer_counts_drops(tmp_path, procfs):
    k = FakeKmsg(size=100)
    for i in range(10):
        k.write(b"line %d" % i)
    col = Collector(procfs=procfs, host="h")
    root = tmp_path / "r"
    with Store(root) as st:
        R.record(st, col, 0.02, count=3, kernel_log=_log(k.reopen(), st, col, capacity=4))
    stored = len(_events(root))
    dropped = sum(s[1] for s in _snaps(root))
    assert dropped > 0 and stored + dropped == 10


def test_a_snapshot_lost_to_a_full_disk_hands_its_records_to_the_next(tmp_path, procfs, monkeypatch):
    k = FakeKmsg()
    k.write(b"first")
    col = Collector(procfs=procfs, host="h")
    root = tmp_path / "r"
    with Store(root) as st:
        fail_writes(st, monkeypatch, 1)
        R.record(st, col, 0.02, count=2, kernel_log=_log(k.reopen(), st, col), err=open("/dev/null", "w"))
    assert [e[0] for e in _events(root)] == [0]


def test_a_recording_without_kernel_events_answers_the_query(tmp_path, procfs):
    with Store(tmp_path / "r") as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=1)
    rec = Recording.open([str(tmp_path / "r")])
    assert rec.query("SELECT count(*) FROM kernel_events")[1] == [(0,)]
    assert rec.query("SELECT kernel_log FROM snapshots")[1] == [(None,)]


def test_info_says_whether_the_kernel_log_was_read_and_why_not(tmp_path, procfs):
    from analyze.commands import info as I

    def off():
        raise Unavailable("/dev/kmsg: Operation not permitted: kernel.dmesg_restrict=1 lets only root read it")
    col = Collector(procfs=procfs, host="h")
    with Store(tmp_path / "off") as st:
        R.record(st, col, 0.02, count=1, kernel_log=KernelLog.start(st, "h", col.boot_id, opener=off))
    text = I.text(I.summarize(Recording.open([str(tmp_path / "off")])))
    assert "kernel log: off: /dev/kmsg: Operation not permitted: kernel.dmesg_restrict=1" in text
    k = FakeKmsg()
    with Store(tmp_path / "on") as st:
        R.record(st, col, 0.02, count=2, kernel_log=_log(k, st, col))
    s = I.summarize(Recording.open([str(tmp_path / "on")]))
    assert s["kernel_log"] == [{"status": "read", "snapshots": 2, "dropped": 0, "lost": 0}]
    assert "kernel log: read on 2 snapshots; 0 records dropped" in I.text(s)
    with Store(tmp_path / "none") as st:
        R.record(st, col, 0.02, count=1)
    assert "kernel log: not read" in I.text(I.summarize(Recording.open([str(tmp_path / "none")])))


def test_a_live_process_gets_its_start_time_and_a_reused_pid_does_not():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    k = FakeKmsg()
    k.write(b"INFO: task stuck:4321 blocked for more than 120 seconds.", pri=3)
    k.write(b"INFO: task other:4321 blocked for more than 240 seconds.", pri=3)
    log = KernelLog.start(None, "h", "b", opener=lambda: KmsgReader(k), identity=lambda pid: ("stuck", t0))
    table, _ = log.take(1, t0)
    rows = table.to_pylist()
    assert [(r["kind"], r["pid"], r["comm"], r["seconds"]) for r in rows] == [
        ("hung_task", 4321, "stuck", 120), ("hung_task", 4321, "other", 240)]
    assert rows[0]["start_time"] == t0 and rows[1]["start_time"] is None  # another comm: not this process


def test_compaction_merges_kernel_events(tmp_path, procfs):
    from recorder.store.compact import compact
    k = FakeKmsg()
    col = Collector(procfs=procfs, host="h")
    root = tmp_path / "r"
    with Store(root) as st:
        log = _log(k, st, col)
        for i in range(4):
            k.write(b"line %d" % i)
            log.poll()
        R.record(st, col, 0.02, count=3, kernel_log=log)
        assert compact(st, 2) >= 2
    assert list(root.glob("kernel_events/*/*/c*.parquet"))
    assert [e[0] for e in _events(root)] == [0, 1, 2, 3]


def test_a_full_buffer_keeps_incident_reports_in_its_reserve():
    k = FakeKmsg()
    for i in range(20):
        k.write(b"[ %d ]  0  %d 1000 100 0 0 0 some-task" % (i, i))  # an OOM task dump
    k.write(b"Out of memory: Killed process 77 (hog) total-vm:9kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB, UID:0", pri=3)
    k.write(b"routine after", pri=6)
    log = KernelLog.start(None, "h", "b", opener=lambda: KmsgReader(k), capacity=8)
    log.poll()
    table, meta = log.take(1, dt.datetime.now(dt.timezone.utc))
    kinds = table.column("kind").to_pylist()
    assert kinds.count("oom_kill") == 1 and table.num_rows == 9
    assert meta["events_dropped"] == 22 - 9


def test_a_read_error_at_the_start_turns_the_source_off():
    class Broken(FakeKmsg):
        def read(self, n):
            raise OSError(errno.EIO, "Input/output error")
    log = KernelLog.start(None, "h", "b", opener=lambda: KmsgReader(Broken()))
    assert log.take(1, dt.datetime.now(dt.timezone.utc))[1]["kernel_log"] == "off: reading the kernel log failed: Input/output error"

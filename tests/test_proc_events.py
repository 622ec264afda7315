"""Process events (issue 20, items 1 and 3): the connector's and taskstats' messages parsed from
bytes in the kernel's layout, and the recorder's buffer between snapshots (exec reads, exit
accounting, thread counts, drops, a snapshot lost to a full disk) through the record loop."""

import datetime as dt
import socket
import struct

import pytest

from analyze.data.db import Recording
from recorder import record as R
from recorder.collect.collector import Collector
from recorder.collect.process_events import ProcessEvents, proc_reader
from recorder.source import proc_events as PE
from recorder.source.native import native
from recorder.store.folder import Store
from tests.support.record_loop import KeepOpen, fail_writes

# ---------------------------------------------------------------------------
# Messages as the kernel lays them out (offsets from linux/netlink.h, connector.h, cn_proc.h:
# nlmsghdr 16 bytes, cn_msg 20, proc_event: what@0 cpu@4 timestamp_ns@8 event_data@16).


def proc_event(what: int, data: bytes, cpu: int = 0, seq: int = 0, ts: int = 5_000_000_000, ack: int = 0) -> bytes:
    ev = struct.pack("=IIQ", what, cpu, ts) + data
    ev += b"\0" * (40 - len(ev))  # sizeof(struct proc_event): the union's largest member
    cn = struct.pack("=IIIIHH", 1, 1, seq, ack, len(ev), 0) + ev
    return struct.pack("=IHHII", 16 + len(cn), 3, 0, 0, 0) + cn


def fork(ppid, ptid, pid, tid, **kw):
    return proc_event(0x1, struct.pack("=iiii", ptid, ppid, tid, pid), **kw)


def exec_(pid, **kw):
    return proc_event(0x2, struct.pack("=ii", pid, pid), **kw)


def exit_(pid, code, tid=None, ppid=1, **kw):
    return proc_event(0x80000000, struct.pack("=iiIIii", tid or pid, pid, code, 17, ppid, ppid), **kw)


def taskstats(version=16, pid=100, tgid=None, exitcode=0, comm=b"sleep", utime=1500, rss_kb=1780, read_bytes=4096):
    """A struct taskstats of 416 bytes with fields at their offsetof()s."""
    b = bytearray(416)
    struct.pack_into("=H", b, 0, version)
    struct.pack_into("=I", b, 4, exitcode)
    struct.pack_into("=Q", b, 24, 2_000_000)  # cpu_delay_total, ns
    b[80:80 + len(comm)] = comm
    struct.pack_into("=IIII", b, 120, 1000, 1000, pid, 1)
    struct.pack_into("=QQQ", b, 144, 30_000, utime, 700)  # ac_etime, ac_utime, ac_stime (µs)
    struct.pack_into("=Q", b, 200, rss_kb)
    struct.pack_into("=QQ", b, 248, read_bytes, 8192)
    struct.pack_into("=QQ", b, 272, 3, 4)
    struct.pack_into("=I", b, 368, tgid or pid)  # ac_tgid (version 13 on)
    return bytes(b)


def nla(typ, payload):
    a = struct.pack("=HH", 4 + len(payload), typ) + payload
    return a + b"\0" * (-len(a) % 4)


def taskstats_msg(tid, stats, family=0x17, tgid=None):
    body = struct.pack("=BBH", 2, 1, 0)  # genlmsghdr: TASKSTATS_CMD_NEW
    body += nla(4, nla(1, struct.pack("=I", tid)) + nla(3, stats))  # AGGR_PID {PID, STATS}
    if tgid is not None:
        body += nla(5, nla(2, struct.pack("=I", tgid)) + nla(3, stats))  # AGGR_TGID: skipped
    return struct.pack("=IHHII", 16 + len(body), family, 0, 0, 0) + body


def test_each_kind_of_event_is_parsed():
    (f,) = PE.parse_connector(fork(10, 10, 11, 11, cpu=1, seq=7))
    assert (f.kind, f.pid, f.tid, f.ppid, f.cpu, f.seq, f.ts_ns) == ("fork", 11, 11, 10, 1, 7, 5_000_000_000)
    (t,) = PE.parse_connector(fork(10, 12, 10, 13))  # a thread: child tid 13 in group 10
    assert (t.pid, t.tid, t.ppid, t.ptid) == (10, 13, 10, 12)
    (e,) = PE.parse_connector(exec_(11))
    assert (e.kind, e.pid, e.tid) == ("exec", 11, 11)
    (x,) = PE.parse_connector(exit_(11, 3 << 8, ppid=10))
    assert (x.kind, x.pid, x.ppid, x.code, x.code2) == ("exit", 11, 10, 768, 17)
    (c,) = PE.parse_connector(proc_event(0x200, struct.pack("=ii", 14, 11) + b"worker\0".ljust(16, b"\0")))
    assert (c.kind, c.pid, c.tid, c.comm) == ("comm", 11, 14, b"worker")
    (u,) = PE.parse_connector(proc_event(0x4, struct.pack("=iiII", 11, 11, 1000, 0)))
    assert (u.kind, u.code, u.code2) == ("uid", 1000, 0)
    (p,) = PE.parse_connector(proc_event(0x100, struct.pack("=iiii", 11, 11, 20, 20)))
    assert (p.kind, p.code) == ("ptrace", 20)
    (d,) = PE.parse_connector(proc_event(0x40000000, struct.pack("=iiii", 11, 11, 10, 10)))
    assert (d.kind, d.ppid) == ("coredump", 10)
    (a,) = PE.parse_connector(proc_event(0, struct.pack("=I", 1), cpu=2, seq=9, ack=8))
    assert (a.kind, a.code, a.code2, a.cpu, a.seq) == ("ack", 1, 8, 2, 9)
    # Two messages in one datagram, the second after 4-byte alignment.
    assert [e.kind for e in PE.parse_connector(exec_(1) + exit_(1, 0))] == ["exec", "exit"]


@pytest.mark.parametrize("bad", [b"", b"\0" * 15, b"\xff" * 64, exec_(1)[:40], exec_(1)[:-30],
                                 struct.pack("=IHHII", 1000, 3, 0, 0, 0) + b"x" * 20,
                                 proc_event(0x12345, b"")])
def test_what_is_not_an_event_is_skipped(bad):
    assert all(not isinstance(e, PE.Event) for e in PE.parse_connector(bad))


def test_an_exit_code_is_a_wait_status():
    assert PE.exit_status(3 << 8) == (3, None, False)
    assert PE.exit_status(0) == (0, None, False)
    assert PE.exit_status(9) == (None, 9, False)
    assert PE.exit_status(11 | 0x80) == (None, 11, True)


needs_c = pytest.mark.skipif(native is None, reason="the C module reads taskstats (PROCSNAP_NATIVE=0)")


@needs_c
def test_a_taskstats_record_is_read_at_its_offsets():
    """The C module's parse_taskstats, the one reader of struct taskstats, on bytes at the
    header's offsets."""
    d = native.parse_taskstats(taskstats(pid=4242, exitcode=9))
    assert (d.version, d.pid, d.exitcode, d.comm, d.utime, d.stime) == \
        (16, 4242, 9, b"sleep", 1500, 700)
    assert (d.hiwater_rss, d.read_bytes, d.write_bytes, d.ctxsw_voluntary, d.ctxsw_involuntary) == \
        (1780, 4096, 8192, 3, 4)
    assert d.cpu_delay_total == 2_000_000 and d.etime == 30_000
    # ac_tgid came with version 12 (linux/taskstats.h: "v12 begin"); an older record has none.
    assert d.tgid == 4242 and native.parse_taskstats(taskstats(version=12)).tgid == 100
    assert native.parse_taskstats(taskstats(version=11)).tgid is None
    assert native.parse_taskstats(taskstats(version=6)) is None  # older than the fields read
    assert native.parse_taskstats(taskstats()[:200]) is None
    assert native.parse_taskstats(b"") is None and native.parse_taskstats(b"\x10") is None
    assert native.parse_taskstats(taskstats() + b"\xff" * 600).pid == 100  # a newer kernel's longer struct
    got = PE.parse_taskstats_msg(taskstats_msg(4243, taskstats(pid=4243), tgid=4243))
    assert [(tid, s.pid) for tid, s in got] == [(4243, 4243)]
    assert PE.parse_taskstats_msg(taskstats_msg(1, taskstats())[:30]) == []
    assert PE.parse_taskstats_msg(b"\x01" * 40) == []


@needs_c
def test_parse_taskstats_takes_any_bytes():
    import random
    rnd = random.Random(20)
    for n in list(range(0, 420, 7)) + [4096]:
        got = native.parse_taskstats(bytes(rnd.randrange(256) for _ in range(n)))
        assert got is None or isinstance(got.comm, bytes)


def _pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    return a, b


def test_gaps_in_a_cpu_s_sequence_are_counted_lost():
    a, b = _pair()
    c = PE.Connector(a)
    for seq, cpu in ((0, 0), (1, 0), (0, 1), (5, 0), (1, 1)):
        b.send(exec_(seq + 1, cpu=cpu, seq=seq))
    assert [e.pid for e in c.read()] == [1, 2, 1, 6, 2]
    assert c.lost == 3 and c.read() == []
    c.close()
    b.close()


def _answer(b, err, **kw):
    """The kernel's answer to the subscription b received (its cn_msg's ack + 1)."""
    req = b.recv(100)
    assert req[16:24] == struct.pack("=II", 1, 1)  # a cn_msg to CN_IDX_PROC/CN_VAL_PROC
    ack = struct.unpack_from("=I", req, 16 + 12)[0]
    b.send(proc_event(0, struct.pack("=I", err), ack=ack + 1, **kw))


def test_subscribing_waits_for_its_answer_and_keeps_the_events_before_it():
    import threading
    a, b = _pair()
    c = PE.Connector(a)
    b.send(exec_(7, seq=0))  # another listener's subscription already brings events
    b.send(proc_event(0, struct.pack("=I", 0), seq=1, ack=12345))  # and its answer, not ours

    def kernel():
        _answer(b, 0, seq=2)
    t = threading.Thread(target=kernel)
    t.start()
    c.subscribe(timeout=2)
    t.join()
    b.send(exec_(8, seq=3))
    assert [e.pid for e in c.read()] == [7, 8] and c.lost == 0  # the answers were numbered too
    t = threading.Thread(target=_answer, args=(b, 1))  # EPERM
    t.start()
    with pytest.raises(PE.Unavailable, match="CAP_NET_ADMIN"):
        c.subscribe(timeout=2)
    t.join()
    with pytest.raises(PE.Unavailable, match="did not answer"):  # the kernel ignores other pid namespaces
        c.subscribe(timeout=0.05)
    c.close()
    b.close()


# ---------------------------------------------------------------------------
# Through the record loop


class Source:
    """A connector and a taskstats socket fed by the test."""

    def __init__(self):
        a, self.conn_w = _pair()
        b, self.ts_w = _pair()
        self.connector, self.taskstats = PE.Connector(a), PE.Taskstats(b)

    def events(self, root=None, **kw) -> ProcessEvents:
        kw.setdefault("reader", lambda pid, what: {"start_time": START} if what == "start" else
                      {"start_time": START, "cmdline": f"prog {pid}", "ppid": 1} if pid < 1000 else "proc: gone")
        return ProcessEvents(self.connector, "boot", taskstats=self.taskstats, **kw)


START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _rows(root, cols="kind, pid, tid, ppid, start_time, cmdline, exit_status, signal, core_dumped, utime, "
          "max_rss, unread, threads"):
    rec = Recording.open([str(root)])
    return rec.query(f"SELECT {cols} FROM process_events ORDER BY kind, pid")[1]


def _snaps(root):
    rec = Recording.open([str(root)])
    return rec.query("SELECT process_events, exit_accounting, events_dropped, process_events_dropped, "
                     "process_events_lost FROM snapshots ORDER BY ts")[1]


@needs_c
def test_events_are_written_with_the_next_snapshot(tmp_path, procfs):
    s = Source()
    pe = s.events()
    s.conn_w.send(fork(10, 10, 100, 100, seq=0))
    s.conn_w.send(exec_(100, seq=1))
    s.conn_w.send(fork(100, 100, 100, 101, seq=2))  # threads: counted, not stored
    s.conn_w.send(fork(100, 100, 100, 102, seq=3))
    s.conn_w.send(exit_(100, 0, tid=101, seq=4))
    s.ts_w.send(taskstats_msg(101, taskstats(pid=101, tgid=100)))  # the thread's: no row
    s.ts_w.send(taskstats_msg(100, taskstats(pid=100, exitcode=2 << 8)))
    s.conn_w.send(exit_(100, 2 << 8, ppid=10, seq=5))
    s.conn_w.send(exec_(2000, seq=6))  # gone before it was read
    s.conn_w.send(exit_(2000, 9, seq=7))  # killed; its taskstats record never came
    root = tmp_path / "r"
    col = Collector(procfs=procfs, host="h")
    with Store(root) as st:
        R.record(st, col, 0.02, count=2, process_events=pe)
    assert _rows(root) == [
        ("exec", 100, 100, 1, START, "prog 100", None, None, None, None, None, None, None),
        ("exec", 2000, 2000, None, None, None, None, None, None, None, None, "proc: gone", None),
        ("exit", 100, 100, 10, START, None, 2, None, False, 0.0015, 1780 * 1024, None, None),
        ("exit", 2000, 2000, 1, None, None, None, 9, False, None, None, "taskstats: no record", None),
        ("fork", 100, 100, 10, START, None, None, None, None, None, None, None, None),
        ("threads", 100, None, None, START, None, None, None, None, None, None, None, 2),
    ]
    assert _snaps(root) == [("read", "read", 0, 0, 0), ("read", "read", 0, 0, 0)]
    rec = Recording.open([str(root)])
    (t,) = rec.query("SELECT time, kernel_ts_ns FROM process_events WHERE kind = 'exec' AND pid = 100")[1]
    assert t[1] == 5_000_000_000 and t[0].tzinfo is not None


def test_thread_events_are_stored_when_asked(tmp_path, procfs):
    s = Source()
    pe = s.events(thread_events=True)
    s.conn_w.send(fork(100, 100, 100, 101, seq=0))
    s.conn_w.send(exit_(100, 0, tid=101, seq=1))
    root = tmp_path / "r"
    with Store(root) as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=1, process_events=pe)
    assert [r[:3] for r in _rows(root)] == [("thread_exit", 100, 101), ("thread_fork", 100, 101)]


def test_a_full_buffer_counts_drops_and_lost_events_are_counted(tmp_path, procfs):
    s = Source()
    pe = s.events(capacity=4)
    for i in range(10):
        s.conn_w.send(exec_(100 + i, seq=i))
    s.conn_w.send(exec_(200, seq=15))  # the kernel could not queue 10 to 14
    root = tmp_path / "r"
    with Store(root) as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=2, process_events=pe)
    assert len(_rows(root)) == 4
    assert [x[2:] for x in _snaps(root)] == [(7, 7, 5), (0, 0, 0)]


def test_a_snapshot_lost_to_a_full_disk_hands_its_events_to_the_next(tmp_path, procfs, monkeypatch):
    s = Source()
    pe = s.events()
    s.conn_w.send(exec_(100, seq=0))
    root = tmp_path / "r"
    with Store(root) as st:
        fail_writes(st, monkeypatch, 1)
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=2, process_events=pe, err=open("/dev/null", "w"))
    assert [r[:2] for r in _rows(root)] == [("exec", 100)]


def test_without_the_connector_recording_goes_on_and_info_says_why(tmp_path, procfs):
    from analyze.commands import info as I

    def off():
        raise PE.Unavailable("not permitted (the kernel wants CAP_NET_ADMIN: run as root)")
    root = tmp_path / "r"
    with Store(root) as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=1,
                 process_events=ProcessEvents.start("boot", opener=off))
    assert _snaps(root) == [("off: not permitted (the kernel wants CAP_NET_ADMIN: run as root)", None, None, None, None)]
    text = I.text(I.summarize(Recording.open([str(root)])))
    assert "process events: off: not permitted (the kernel wants CAP_NET_ADMIN: run as root) (on 1 snapshots)" in text
    # Taskstats alone off: exits come from the connector, their accounting NULL with the reason.
    s = Source()

    def no_taskstats():
        raise PE.Unavailable("the kernel has no taskstats (CONFIG_TASKSTATS)")
    pe = ProcessEvents.start("boot", opener=lambda: s.connector, taskstats_opener=no_taskstats)
    s.conn_w.send(exit_(100, 1 << 8, seq=0))
    root2 = tmp_path / "r2"
    with Store(root2) as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=1, process_events=pe)
    assert _rows(root2, "kind, exit_status, utime, unread") == [("exit", 1, None, "taskstats: off")]
    assert _snaps(root2)[0][:2] == ("read", "off: the kernel has no taskstats (CONFIG_TASKSTATS)")
    text = I.text(I.summarize(Recording.open([str(root2)])))
    assert "exit accounting (taskstats): off: the kernel has no taskstats (CONFIG_TASKSTATS)" in text


def test_without_the_c_module_exits_have_no_accounting_and_info_says_why(tmp_path, procfs, monkeypatch):
    """struct taskstats has one reader, the C module: without it (PROCSNAP_NATIVE=0 or not built)
    exit rows come from the connector with their accounting NULL and the reason."""
    from analyze.commands import info as I
    monkeypatch.setattr(PE, "native", None)
    s = Source()
    pe = ProcessEvents.start("boot", opener=lambda: s.connector)
    assert pe.taskstats is None
    s.conn_w.send(exit_(100, 1 << 8, seq=0))
    root = tmp_path / "r"
    with Store(root) as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=1, process_events=pe)
    assert _rows(root, "kind, exit_status, utime, max_rss, unread") == [("exit", 1, None, None, "taskstats: off")]
    assert _snaps(root)[0][:2] == ("read", "off: " + PE.NEEDS_C)
    assert "needs the C module" in PE.NEEDS_C
    text = I.text(I.summarize(Recording.open([str(root)])))
    assert "exit accounting (taskstats): off: needs the C module" in text


def test_a_recording_without_process_events_answers_the_query(tmp_path, procfs):
    from analyze.commands import info as I
    with Store(tmp_path / "r") as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=1)
    rec = Recording.open([str(tmp_path / "r")])
    assert rec.query("SELECT count(*) FROM process_events")[1] == [(0,)]
    assert "process events: not read" in I.text(I.summarize(rec))


def test_exec_reads_the_command_line_redacted_as_processes_does(tmp_path):
    from recorder.source.procfs import ProcFS
    from tests.support.fakeproc import FakeProc
    fake = FakeProc(tmp_path / "proc")
    fake.add_process(10, b"mysql", cmdline=b"mysql\0-uroot\0-phunter2\0db\0")
    col = Collector(procfs=ProcFS(str(fake.root)), host="h")
    read = proc_reader(col)
    got = read(10, "exec")
    assert got["cmdline"] == "mysql -uroot -p<redacted> db" and got["ppid"] == 1 and got["start_time"] is not None
    assert read(10, "start") == {"start_time": got["start_time"]}
    assert read(99, "exec") == "proc: gone"
    fake.add_process(11, b"sh", state="Z", cmdline=b"")  # exited, not reaped: no command line left
    got = read(11, "exec")
    assert got["unread"] == "proc: exited" and "cmdline" not in got and got["name"] == "sh"


def test_an_exec_followed_by_another_in_the_same_read_is_not_given_the_later_argv(tmp_path, procfs):
    s = Source()
    pe = s.events()
    s.conn_w.send(exec_(100, seq=0) + exec_(100, seq=1))
    root = tmp_path / "r"
    with Store(root) as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=1, process_events=pe)
    assert _rows(root, "kind, cmdline, unread") == [("exec", None, "proc: exec'd again"), ("exec", "prog 100", None)]


def test_compaction_merges_process_events(tmp_path, procfs):
    from recorder.store.compact import compact
    s = Source()
    pe = s.events()
    root = tmp_path / "r"
    with Store(root) as st:
        col = Collector(procfs=procfs, host="h")
        for i in range(3):
            s.conn_w.send(exec_(100 + i, seq=i))
            R.record(st, col, 0.02, count=1, process_events=pe if i == 2 else KeepOpen(pe))
        assert compact(st, 2) >= 2
    assert list(root.glob("process_events/*/*/c*.parquet"))
    assert [r[1] for r in _rows(root)] == [100, 101, 102]


def test_snapshots_lost_to_a_full_disk_keep_the_newest_events_and_count_the_rest(tmp_path, procfs, monkeypatch):
    s = Source()
    pe = s.events(capacity=2)
    root = tmp_path / "r"
    with Store(root) as st:
        # each write offered: one more event for the next snapshot; the first three fail
        fail_writes(st, monkeypatch, 3, each=lambda n: s.conn_w.send(exec_(100 + n, seq=n)))
        s.conn_w.send(exec_(100, seq=0))
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=4, process_events=pe, err=open("/dev/null", "w"))
    # The third lost snapshot held 100, 101, 102: the newest two went on, 100 was counted dropped.
    assert [r[1] for r in _rows(root)] == [101, 102, 103]
    assert [x[2:] for x in _snaps(root)] == [(1, 1, 0)]


@needs_c
def test_the_exit_of_a_process_a_snapshot_saw_has_its_identity(tmp_path, procfs):
    """A process started before the listener (no fork or exec seen) gets the start time the
    snapshots recorded; one whose start was read at its fork keeps that one."""
    s = Source()
    pe = s.events()
    s.conn_w.send(fork(1, 1, 12, 12, seq=0))  # pid 12 reused: the fork's start time wins
    root = tmp_path / "r"
    col = Collector(procfs=procfs, host="h")
    with Store(root) as st:
        R.record(st, col, 0.02, count=1, process_events=KeepOpen(pe))
        s.conn_w.send(exit_(10, 0, seq=1))
        s.conn_w.send(exit_(12, 0, seq=2))
        R.record(st, col, 0.02, count=1, process_events=pe)
    rec = Recording.open([str(root)])
    seen = dict(rec.query("SELECT pid, start_time FROM processes WHERE pid IN (10, 12)")[1])
    assert seen[10] is not None and seen[10] != START
    assert _rows(root, "kind, pid, start_time") == [("exit", 10, seen[10]), ("exit", 12, START),
                                                    ("fork", 12, START)]


def test_a_buffer_half_full_takes_the_next_snapshot_early(tmp_path, procfs, monkeypatch):
    """Events arriving faster than the cadence can hold are written by a snapshot taken off the
    grid, not dropped; the grid's slots stay where they were."""
    import threading
    import time
    monkeypatch.setattr(R, "EARLY_MIN_GAP", 0.0)
    s = Source()
    pe = s.events(capacity=8)
    pe.start_thread("test-procev")

    def burst():
        time.sleep(0.3)
        for i in range(6):  # half the capacity and more: the loop wakes up
            s.conn_w.send(exec_(100 + i, seq=i))
    threading.Thread(target=burst, daemon=True).start()
    root = tmp_path / "r"
    with Store(root) as st:
        R.record(st, Collector(procfs=procfs, host="h"), 3, count=2, process_events=pe)
    rec = Recording.open([str(root)])
    assert rec.query("SELECT early, process_events_dropped FROM snapshots ORDER BY ts")[1] == [(None, 0), ("events", 0)]
    assert [r[1] for r in _rows(root)] == [100, 101, 102, 103, 104, 105]


def test_a_signal_between_snapshots_writes_the_events_held(tmp_path, procfs):
    """SIGTERM while the loop sleeps: one last snapshot takes what the sources hold."""
    import os
    import signal
    import threading
    s = Source()
    pe = s.events()
    pe.start_thread("test-procev")

    def later():
        import time
        time.sleep(0.3)
        s.conn_w.send(exec_(100, seq=0))
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=later, daemon=True).start()
    root = tmp_path / "r"
    with Store(root) as st:
        res = R.record(st, Collector(procfs=procfs, host="h"), 30, process_events=pe)
    assert res.stopped_by is not None
    rec = Recording.open([str(root)])
    assert rec.query("SELECT early FROM snapshots ORDER BY ts")[1] == [(None,), ("stop",)]
    assert [r[:2] for r in _rows(root)] == [("exec", 100)]

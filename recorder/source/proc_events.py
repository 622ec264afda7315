"""The kernel's process events, read from netlink: the process connector (fork, exec, exit,
comm, uid/gid/sid changes, ptrace, core dumps) and taskstats' exit records (an exited task's
own accounting).

Layouts are the kernel's uapi (include/uapi/linux/cn_proc.h, connector.h, taskstats.h,
netlink.h, genetlink.h), native byte order; the parsers take byte strings and never raise on
bad input (a short or unknown message is skipped). Both sockets are read non-blocking; ENOBUFS
(the kernel could not queue a message: the socket's buffer was full) is counted, and the
connector's per-CPU sequence numbers give how many events that lost.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time

from recorder.source.native import native

NETLINK_CONNECTOR = 11
NETLINK_GENERIC = 16
CN_IDX_PROC = CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
CN_MSG = struct.Struct("=IIIIHH")  # id.idx, id.val, seq, ack, len, flags
EV_HDR = struct.Struct("=IIQ")  # what, cpu, timestamp_ns (aligned at 8 after cn_msg's 20 bytes)
PIDS4 = struct.Struct("=iiii")
PIDS2 = struct.Struct("=ii")
PIDS2U2 = struct.Struct("=iiII")
EXIT = struct.Struct("=iiIIii")

# enum what (cn_proc.h)
ACK, FORK, EXEC, UID, GID, SID, PTRACE, COMM = 0x0, 0x1, 0x2, 0x4, 0x40, 0x80, 0x100, 0x200
NONZERO_EXIT, COREDUMP, EXIT_EV = 0x20000000, 0x40000000, 0x80000000
KINDS = {ACK: "ack", FORK: "fork", EXEC: "exec", UID: "uid", GID: "gid", SID: "sid", PTRACE: "ptrace",
         COMM: "comm", COREDUMP: "coredump", EXIT_EV: "exit"}

# Why exit accounting is off without the C module: its parse_taskstats is the one reader of the records.
NEEDS_C = "needs the C module, which reads taskstats' exit records (not built, or PROCSNAP_NATIVE=0)"
RCVBUF = 4 << 20  # bytes of socket buffer asked for (root may exceed net.core.rmem_max)


class Unavailable(Exception):
    """The event source cannot be read (no connector, not privileged, ...): the message says why."""


class Event:
    """One process event. ``pid`` is the thread group (the process), ``tid`` the thread; for a
    fork they are the child's and ``ppid``/``ptid`` the parent's. ``code``: the wait status for
    an exit, the real id for uid/gid, the tracer for ptrace. ``code2``: exit_signal (the signal
    sent to the parent) for an exit, the effective id for uid/gid."""

    __slots__ = ("what", "cpu", "seq", "ts_ns", "pid", "tid", "ppid", "ptid", "code", "code2", "comm",
                 "info")

    def __init__(self, what, cpu, seq, ts_ns, pid, tid, ppid=None, ptid=None, code=None, code2=None, comm=None):
        self.what, self.cpu, self.seq, self.ts_ns = what, cpu, seq, ts_ns
        self.pid, self.tid, self.ppid, self.ptid = pid, tid, ppid, ptid
        self.code, self.code2, self.comm = code, code2, comm
        self.info = None  # what the recorder adds (the exec's /proc reads, the exit's taskstats)

    @property
    def kind(self) -> str:
        return KINDS.get(self.what, str(self.what))

    def __repr__(self) -> str:
        return f"Event({self.kind} pid={self.pid} tid={self.tid} ppid={self.ppid} code={self.code})"


def _nlmsgs(data: bytes):
    """(type, payload) of each netlink message in one datagram; stops at a malformed header."""
    off, n = 0, len(data)
    while off + NLMSG.size <= n:
        length, typ, _flags, _seq, _pid = NLMSG.unpack_from(data, off)
        if length < NLMSG.size or off + length > n:
            return
        yield typ, data[off + NLMSG.size:off + length]
        off += (length + 3) & ~3


def parse_proc_event(msg: bytes) -> Event | None:
    """The Event in one connector message (a cn_msg then a proc_event), the kernel's answer to
    a subscription included (what 0: ``code`` the error, ``code2`` the request's ack + 1: the
    answers to every listener's subscription go to all of them); None for anything else or
    too short."""
    if len(msg) < CN_MSG.size + EV_HDR.size:
        return None
    idx, val, seq, ack, length, _flags = CN_MSG.unpack_from(msg)
    if idx != CN_IDX_PROC or val != CN_VAL_PROC:
        return None
    ev = msg[CN_MSG.size:CN_MSG.size + length]
    if len(ev) < EV_HDR.size:
        return None
    what, cpu, ts = EV_HDR.unpack_from(ev)
    d, o = len(ev), EV_HDR.size
    if what == 0:
        return Event(ACK, cpu, seq, ts, None, None, code=struct.unpack_from("=I", ev, o)[0], code2=ack) \
            if d >= o + 4 else None
    try:
        if what == FORK:
            ppid_t, ptgid, cpid, ctgid = PIDS4.unpack_from(ev, o)
            return Event(what, cpu, seq, ts, ctgid, cpid, ptgid, ppid_t)
        if what in (EXEC, SID):
            pid, tgid = PIDS2.unpack_from(ev, o)
            return Event(what, cpu, seq, ts, tgid, pid)
        if what in (UID, GID):
            pid, tgid, r, e = PIDS2U2.unpack_from(ev, o)
            return Event(what, cpu, seq, ts, tgid, pid, code=r, code2=e)
        if what == PTRACE:
            pid, tgid, tr_pid, tr_tgid = PIDS4.unpack_from(ev, o)
            return Event(what, cpu, seq, ts, tgid, pid, code=tr_tgid)
        if what == COMM:
            pid, tgid = PIDS2.unpack_from(ev, o)
            comm = ev[o + 8:o + 24]
            if len(comm) < 16:
                return None
            return Event(what, cpu, seq, ts, tgid, pid, comm=comm.split(b"\0", 1)[0])
        if what == COREDUMP:
            pid, tgid = PIDS2.unpack_from(ev, o)
            parent = PIDS2.unpack_from(ev, o + 8) if d >= o + 16 else (None, None)
            return Event(what, cpu, seq, ts, tgid, pid, parent[1], parent[0])
        if what in (EXIT_EV, NONZERO_EXIT):
            if d >= o + EXIT.size:  # parent_pid, parent_tgid: kernels since 4.18
                pid, tgid, code, sig, ppid_t, ptgid = EXIT.unpack_from(ev, o)
            else:
                pid, tgid, code, sig = PIDS2U2.unpack_from(ev, o)
                ppid_t = ptgid = None
            return Event(EXIT_EV if what == EXIT_EV else NONZERO_EXIT, cpu, seq, ts, tgid, pid, ptgid, ppid_t,
                         code=code, code2=sig)
    except struct.error:
        return None
    return None


def parse_connector(data: bytes) -> list:
    """Every Event in one datagram read from the connector socket."""
    out = []
    for typ, payload in _nlmsgs(data):
        if typ == NLMSG_ERROR:
            continue
        e = parse_proc_event(payload)
        if e is not None:
            out.append(e)
    return out


def exit_status(wait_status: int) -> tuple[int | None, int | None, bool]:
    """(exit status, terminating signal, core dumped) of a task's exit_code, which holds a
    wait(2) status: the status in bits 8-15 for an exit, the signal in bits 0-6 and the core
    flag in bit 7 for a kill."""
    sig = wait_status & 0x7F
    if sig:
        return None, sig, bool(wait_status & 0x80)
    return (wait_status >> 8) & 0xFF, None, False


def _open_netlink(proto: int, groups: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM if proto == NETLINK_CONNECTOR else socket.SOCK_RAW,
                      proto)
    try:
        try:
            s.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE: root past rmem_max
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        s.bind((0, groups))
    except BaseException:
        s.close()
        raise
    return s


def _why(e: OSError) -> str:
    if e.errno in (errno.EPERM, errno.EACCES):
        return "not permitted (the kernel wants CAP_NET_ADMIN: run as root)"
    if e.errno in (errno.EPROTONOSUPPORT, errno.ENOENT, errno.EAFNOSUPPORT):
        return "the kernel has no process connector (CONFIG_PROC_EVENTS)"
    return e.strerror or str(e)


class _Netlink:
    """A non-blocking netlink socket read until empty; ENOBUFS counted in ``overruns``."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.overruns = 0
        self._buf = bytearray(1 << 16)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def datagrams(self, limit: int = 4096):
        """Yield the datagrams queued now (at most LIMIT, so a storm cannot hold a reader)."""
        view = memoryview(self._buf)
        for _ in range(limit):
            try:
                n = self.sock.recv_into(self._buf, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            yield bytes(view[:n])


class Connector(_Netlink):
    """The process connector subscribed to. ``lost`` counts events the kernel sent but this
    socket did not get (gaps in each CPU's sequence numbers)."""

    def __init__(self, sock: socket.socket):
        super().__init__(sock)
        self.lost = 0
        self._next: dict[int, int] = {}
        self._early: list[Event] = []  # events read while waiting for the subscription's answer

    @classmethod
    def open(cls, timeout: float = 2.0) -> "Connector":
        try:
            s = _open_netlink(NETLINK_CONNECTOR, CN_IDX_PROC)
        except OSError as e:
            raise Unavailable(_why(e)) from None
        c = cls(s)
        try:
            c.subscribe(timeout)
        except BaseException:
            s.close()
            raise
        return c

    def subscribe(self, timeout: float = 2.0) -> None:
        """Ask the kernel for the events (PROC_CN_MCAST_LISTEN) and wait for its answer; raises
        Unavailable saying why it refused or did not answer."""
        ack = int.from_bytes(os.urandom(3), "little")  # tells our answer from other listeners'
        hdr = CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, ack, 4, 0) + struct.pack("=I", PROC_CN_MCAST_LISTEN)
        msg = NLMSG.pack(NLMSG.size + len(hdr), NLMSG_DONE, 0, 0, os.getpid()) + hdr
        try:
            self.sock.send(msg)
            err = self._wait_ack(ack + 1, timeout)
        except OSError as e:
            raise Unavailable(_why(e)) from None
        if err:
            raise Unavailable(_why(OSError(err, os.strerror(err))))

    def _wait_ack(self, ack: int, timeout: float) -> int:
        """The subscription's answer (0: listening). Events other listeners' subscriptions
        brought before it are kept for :meth:`read`. No answer means the kernel ignored the
        request: it only answers a process in the host's user and pid namespaces."""
        import select
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise Unavailable("the process connector did not answer (a recorder outside the host's pid "
                                  "namespace is not told of events)")
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                continue
            for d in self.datagrams(1):
                for e in parse_connector(d):
                    self._early.append(e)  # (an answer takes a sequence number too)
                    if e.what == ACK and e.code2 == ack:
                        return e.code

    def read(self, limit: int = 4096) -> list[Event]:
        """The events queued now, in order; sequence gaps added to ``lost``."""
        got, self._early = self._early, []
        for d in self.datagrams(limit):
            got.extend(parse_connector(d))
        out = []
        nxt = self._next
        for e in got:
            # The kernel numbers every message it sends on a CPU, answers to subscriptions too
            # (older kernels sent those unnumbered, from CPU -1).
            if e.what == ACK and e.cpu == 0xFFFFFFFF:
                continue
            exp = nxt.get(e.cpu)
            if exp is not None and 0 < e.seq - exp < 1 << 31:
                self.lost += e.seq - exp
            nxt[e.cpu] = e.seq + 1
            if e.what != ACK:
                out.append(e)
        return out


# ---------------------------------------------------------------------------
# taskstats over generic netlink (include/uapi/linux/taskstats.h, genetlink.h)

GENL_ID_CTRL = 0x10
GENL_HDR = struct.Struct("=BBH")
NLA = struct.Struct("=HH")
TASKSTATS_CMD_GET, TASKSTATS_CMD_NEW = 1, 2
TS_PID, TS_TGID, TS_STATS, TS_AGGR_PID, TS_AGGR_TGID = 1, 2, 3, 4, 5
TS_ATTR_REGISTER_CPUMASK = 3
NLA_TYPE_MASK = 0x3FFF

def _attrs(data: bytes, off: int = 0):
    """(type, payload) of each netlink attribute from OFF on; stops at a malformed one."""
    n = len(data)
    while off + NLA.size <= n:
        length, typ = NLA.unpack_from(data, off)
        if length < NLA.size or off + length > n:
            return
        yield typ & NLA_TYPE_MASK, data[off + NLA.size:off + length]
        off += (length + 3) & ~3


def parse_taskstats_msg(data: bytes) -> list[tuple[int, object]]:
    """(tid, Taskstats) of each per-task exit record (TASKSTATS_TYPE_AGGR_PID) in one datagram read
    from a registered taskstats socket (the thread group's aggregate records are skipped). The
    struct itself is read by the C module's parse_taskstats, its one reader: needs the C module."""
    out = []
    for typ, payload in _nlmsgs(data):
        if typ < GENL_ID_CTRL or len(payload) < GENL_HDR.size:
            continue
        if payload[0] != TASKSTATS_CMD_NEW:
            continue
        for at, nested in _attrs(payload, GENL_HDR.size):
            if at != TS_AGGR_PID:
                continue
            tid = stats = None
            for t2, v in _attrs(nested):
                if t2 == TS_PID and len(v) >= 4:
                    tid = struct.unpack_from("=I", v)[0]
                elif t2 == TS_STATS:
                    stats = native.parse_taskstats(v)
            if tid is not None and stats is not None:
                out.append((tid, stats))
    return out


def _genl_msg(typ: int, flags: int, cmd: int, attrs: list[tuple[int, bytes]], seq: int = 1) -> bytes:
    body = GENL_HDR.pack(cmd, 1, 0)
    for at, v in attrs:
        a = NLA.pack(NLA.size + len(v), at) + v
        body += a + b"\0" * (-len(a) % 4)
    return NLMSG.pack(NLMSG.size + len(body), typ, flags, seq, 0) + body


def _possible_cpus() -> str:
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            return f.read().strip()
    except OSError:
        return f"0-{(os.cpu_count() or 1) - 1}"


class Taskstats(_Netlink):
    """A generic netlink socket registered for every CPU's exit records."""

    @classmethod
    def open(cls, timeout: float = 2.0) -> "Taskstats":
        if native is None:
            raise Unavailable(NEEDS_C)
        try:
            s = _open_netlink(NETLINK_GENERIC)
        except OSError as e:
            raise Unavailable(e.strerror or str(e)) from None
        t = cls(s)
        try:
            s.settimeout(timeout)
            try:
                family = native.taskstats_family()
            except OSError as e:
                raise Unavailable("the kernel has no taskstats (CONFIG_TASKSTATS)" if e.errno == errno.ENOENT
                                  else e.strerror or str(e)) from None
            s.send(_genl_msg(family, NLM_F_REQUEST | NLM_F_ACK, TASKSTATS_CMD_GET,
                             [(TS_ATTR_REGISTER_CPUMASK, _possible_cpus().encode() + b"\0")], seq=2))
            while True:  # the ack (exit records may already come before it)
                data = s.recv(1 << 16)
                acked = False
                for typ, payload in _nlmsgs(data):
                    if typ == NLMSG_ERROR:
                        err = -struct.unpack_from("=i", payload)[0]
                        if err:
                            raise Unavailable("registering for exit records: " + (
                                "refused (a recorder outside the host's pid namespace cannot register)"
                                if err == errno.EINVAL else _why(OSError(err, os.strerror(err)))))
                        acked = True
                if acked:
                    break
        except Unavailable:
            s.close()
            raise
        except OSError as e:
            s.close()
            raise Unavailable(_why(e) if not isinstance(e, TimeoutError) else "the kernel did not answer") from None
        s.settimeout(None)
        s.setblocking(False)
        return t

    def read(self, limit: int = 4096) -> list[tuple[int, dict]]:
        out = []
        for d in self.datagrams(limit):
            out.extend(parse_taskstats_msg(d))
        return out

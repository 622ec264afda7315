"""Reading the kernel log through /dev/kmsg (the kernel's Documentation/ABI/testing/dev-kmsg).

Each read(2) of /dev/kmsg returns one record::

    PRI,SEQ,TS_USEC,FLAGS[,MORE...];MESSAGE
     KEY=VALUE
     ...

PRI is the syslog priority and facility (level = PRI & 7, facility = PRI >> 3), SEQ the
record's sequence number in this boot (64-bit, never reused), TS_USEC the time the kernel
stamped it (µs of its printk clock since boot), FLAGS '-' (or 'c'/'+' for a fragment of a
continued line on old kernels); fields after FLAGS are future extensions (CONFIG_PRINTK_CALLER's
``caller=T123``) and are ignored. The message and the continuation lines (`` SUBSYSTEM=`` and
`` DEVICE=`` of a device's message) have every byte below space, above '~' and the backslash
written ``\\xNN`` by the kernel, so a record is ASCII.

Reading: opened read-only and non-blocking, a read with nothing new fails with EAGAIN. A
reader whose next record the kernel has already overwritten gets EPIPE once and continues
from the oldest record still held: that is not an error, the records in between are lost,
and their number is the gap in sequence numbers (:attr:`KmsgReader.lost`). lseek(SEEK_SET,
0) goes back to the oldest record held, SEEK_END after the newest, SEEK_DATA after the last
``dmesg -c`` clear. A new open starts at the oldest record. /dev/kmsg cannot seek to a
sequence number: a reader that resumes skips what it already has (:meth:`KmsgReader.skip_to`).

Root reads it; another user only when kernel.dmesg_restrict is 0 (EPERM otherwise).
"""

from __future__ import annotations

import errno
import os
import time

DEV_KMSG = "/dev/kmsg"
# The kernel refuses (EINVAL) a read into a buffer smaller than the record; its own records are
# at most 8 KiB of text plus the prefix and the dictionary.
READ_SIZE = 16384

LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


class Unavailable(Exception):
    """The kernel log cannot be read here; the message says why."""


class Record:
    """One kernel log record: its numbers, its escaped ASCII message and dictionary values, and
    the wall time its kernel timestamp maps to (µs since the epoch, from the clocks at read)."""

    __slots__ = ("seq", "ts_us", "priority", "facility", "flags", "text", "subsystem", "device",
                 "wall_us", "backlog", "start_time")

    def __init__(self, seq: int, ts_us: int, priority: int, facility: int, flags: str, text: bytes,
                 subsystem: bytes | None = None, device: bytes | None = None):
        self.seq = seq
        self.ts_us = ts_us
        self.priority = priority
        self.facility = facility
        self.flags = flags
        self.text = text
        self.subsystem = subsystem
        self.device = device
        self.wall_us: int | None = None
        self.backlog = False
        self.start_time = None  # what the recorder found of the process a record names, when read

    def __repr__(self) -> str:
        return f"Record(seq={self.seq}, ts_us={self.ts_us}, pri={self.priority}, fac={self.facility}, text={self.text!r})"


def parse_record(data: bytes) -> Record | None:
    """The record in the bytes of one read, or None when they are not one (never raises)."""
    head, sep, rest = data.partition(b";")
    if not sep:
        return None
    fields = head.split(b",")
    if len(fields) < 4:
        return None
    try:
        pri, seq, ts = int(fields[0]), int(fields[1]), int(fields[2])
    except ValueError:
        return None
    if pri < 0 or seq < 0 or ts < 0:
        return None
    lines = rest.split(b"\n")
    subsystem = device = None
    for line in lines[1:]:
        if not line.startswith(b" "):
            continue
        key, eq, value = line[1:].partition(b"=")
        if not eq:
            continue
        if key == b"SUBSYSTEM":
            subsystem = value
        elif key == b"DEVICE":
            device = value
    flags = fields[3].decode("ascii", "replace")
    return Record(seq, ts, pri & 7, pri >> 3, flags, lines[0], subsystem, device)


def unescape(text: bytes) -> bytes:
    """The bytes behind the kernel's ``\\xNN`` escapes."""
    if b"\\x" not in text:
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == 0x5C and i + 3 < n and text[i + 1] == 0x78:
            try:
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        out.append(c)
        i += 1
    return bytes(out)


def wall_offset_us() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC now, in µs: added to a kernel timestamp, its wall time."""
    return (time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC)) // 1000


class KmsgReader:
    """Reads records from an open kernel log: a file object whose ``read(n)`` returns one record,
    None (or raises BlockingIOError) when there is nothing new, and raises BrokenPipeError when
    records were overwritten before being read (/dev/kmsg, or a test's fake).

    ``lost`` counts the records the kernel overwrote before they were read (sequence gaps,
    EPIPE's included) since :meth:`skip_to` or the first record read."""

    def __init__(self, f, clock=wall_offset_us):
        self.f = f
        self.clock = clock
        self.next_seq: int | None = None  # the sequence number expected next
        self.lost = 0
        self.epipes = 0
        self.bad = 0  # reads that were not a record (counted, skipped)

    @classmethod
    def open(cls, path: str = DEV_KMSG) -> "KmsgReader":
        """PATH opened read-only, non-blocking, at its oldest record; Unavailable says why not."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Unavailable(f"{path} does not exist (a kernel without CONFIG_PRINTK, or a container without it)") from None
        except PermissionError as e:
            why = "kernel.dmesg_restrict=1 lets only root (CAP_SYSLOG) read it" if _restricted() else e.strerror
            raise Unavailable(f"{path}: {e.strerror}: {why}") from None
        except OSError as e:
            raise Unavailable(f"{path}: {e.strerror}") from None
        return cls(os.fdopen(fd, "rb", buffering=0))

    def fileno(self) -> int | None:
        try:
            return self.f.fileno()
        except (AttributeError, OSError, ValueError):
            return None

    def close(self) -> None:
        try:
            self.f.close()
        except OSError:
            pass

    def skip_to(self, seq: int) -> None:
        """Records up to SEQ are already stored: skip them, and count as lost those between SEQ
        and the first record read that the kernel no longer held."""
        self.next_seq = seq + 1

    def read(self, limit: int | None = None) -> list[Record]:
        """The records available now (at most LIMIT), in order, each with its wall time."""
        out: list[Record] = []
        offset = self.clock()
        while limit is None or len(out) < limit:
            try:
                data = self.f.read(READ_SIZE)
            except BlockingIOError:
                break
            except BrokenPipeError:
                # Overwritten under us: the kernel moved this reader to its oldest record; the
                # sequence gap of the next record counts what went.
                self.epipes += 1
                continue
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    break
                if e.errno == errno.EPIPE:
                    self.epipes += 1
                    continue
                raise
            if not data:  # None: nothing now (a non-blocking file object); b"": the end (a test's file)
                break
            rec = parse_record(data)
            if rec is None:
                self.bad += 1
                continue
            if self.next_seq is not None:
                if rec.seq < self.next_seq:
                    continue  # already stored (a resumed recording) or a repeat
                self.lost += rec.seq - self.next_seq
            self.next_seq = rec.seq + 1
            rec.wall_us = rec.ts_us + offset
            out.append(rec)
        return out


def _restricted() -> bool:
    try:
        with open("/proc/sys/kernel/dmesg_restrict", "rb") as f:
            return f.read().strip() == b"1"
    except OSError:
        return False

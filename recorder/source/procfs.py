"""Reading and parsing /proc.

Every read goes through the tiny helpers of :class:`ProcFS`, rooted at one
procfs path, so that tests can point the whole recorder at a fake tree. The
parsers are pure functions of bytes, so they are tested on their own. A
process's own hot files (stat, status, io, cgroup) are parsed by the C module
(recorder/source/_native.c), their one parser, as are a process's maps and
fdinfo and the inet socket tables (/proc/net/{tcp,udp,udplite,raw}[6]);
without the C module psutil reads those (recorder/collect/descriptors.py,
sockets.py). This module parses the rest (host-wide files, limits, cmdline,
mountinfo, the unix, netlink and packet socket tables).

Errors are mapped in exactly one place (:func:`translate`):
``FileNotFoundError`` / ``ProcessLookupError`` / ``ESRCH`` mean the process or
thread is gone (:class:`Gone`), ``PermissionError`` means access denied
(:class:`Denied`), and psutil's NoSuchProcess and AccessDenied alike. Anything
else is a real error and propagates.

The parsers' one error is ``ValueError``: whatever bytes they are given
(truncated, NULs, invalid UTF-8, huge lines, fields missing or added) they
return a result or raise ``ValueError``, nothing else (tests/test_fuzz_procfs.py
holds them to it). The collector counts a process whose files raise it as gone.
Parsers of tables with one row per line (sockets, disks, interfaces) skip a
line they cannot parse and keep the others.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys


class Gone(Exception):
    """The process, thread or file vanished while it was being read."""


class Denied(Exception):
    """The kernel refused the read (EACCES / EPERM)."""


def translate(e: BaseException) -> BaseException:
    """The one place kernel errors get their meaning, whoever met them (a read here, the C
    module's errno, psutil): Gone, Denied, or the error itself."""
    if isinstance(e, OSError):
        if isinstance(e, (FileNotFoundError, ProcessLookupError)) or e.errno in (errno.ESRCH, errno.ENOENT):
            return Gone(str(e))
        if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM):
            return Denied(str(e))
        return e
    psutil = sys.modules.get("psutil")  # only psutil raises its own errors: loaded if it did
    if psutil is not None:
        if isinstance(e, psutil.NoSuchProcess):  # ZombieProcess too: it is one
            return Gone(str(e))
        if isinstance(e, psutil.AccessDenied):
            return Denied(str(e))
    return e




class ProcFS:
    """Helpers rooted at one procfs path (``/proc`` on a live host)."""

    def __init__(self, root: str = "/proc"):
        self.root = root.rstrip("/") or "/"
        self._fd_size: bool | None = None  # whether stat gives the count of a fd folder (fd_count)

    def path(self, *parts: object) -> str:
        return "/".join((self.root, *map(str, parts)))

    def read(self, *parts: object) -> bytes:
        """The whole content of a file, as bytes."""
        return self._read(parts, False)

    def _read(self, parts: tuple, one_record: bool) -> bytes:
        """Read a file to EOF (/proc files come a page at a time: a short read is not EOF);
        ONE_RECORD: a first read that comes back short is the whole file."""
        try:
            fd = os.open(self.path(*parts), os.O_RDONLY | os.O_CLOEXEC)
            try:
                chunks = []
                if one_record:
                    b = os.read(fd, 65536)
                    if len(b) < 65536:
                        return b
                    chunks.append(b)
                while True:
                    b = os.read(fd, 65536)
                    if not b:
                        return b"".join(chunks)
                    chunks.append(b)
            finally:
                os.close(fd)
        except OSError as e:
            raise translate(e) from None

    def read_one(self, *parts: object) -> bytes:
        """read() for a file the kernel shows as one record (stat, status, io, limits, cgroup,
        cmdline): one read of 64 KiB gets it whole when it is shorter, which saves the second
        read that finds EOF, twice per process and per thread."""
        return self._read(parts, True)

    def readlink(self, *parts: object) -> bytes:
        try:
            return os.readlink(os.fsencode(self.path(*parts)))
        except OSError as e:
            raise translate(e) from None

    def fd_count(self, pid: int) -> int:
        """How many descriptors a process has open. Since Linux 6.2 procfs gives it as the size of
        /proc/PID/fd: one stat instead of listing every name (a snapshot without descriptors
        needs only the count). Elsewhere, and for a size of 0, the folder is listed."""
        if self.stat_counts_fds():
            try:
                n = os.stat(self.path(pid, "fd")).st_size
            except OSError as e:
                raise translate(e) from None
            if n > 0:
                return n
        return len(self.listdir(pid, "fd"))

    def stat_counts_fds(self) -> bool:
        """Whether this tree's fd folders report their count as size: checked once, on our own
        process, whose listing holds one more descriptor (the one listing it) than the stat sees."""
        if self._fd_size is None:
            self._fd_size = self._stat_counts_fds()
        return self._fd_size

    def _stat_counts_fds(self) -> bool:
        try:
            d = self.path(os.getpid(), "fd")
            n = os.stat(d).st_size
            return n > 0 and n in (len(os.listdir(d)) - 1, len(os.listdir(d)))
        except OSError:
            return False

    def listdir(self, *parts: object) -> list[str]:
        try:
            return os.listdir(self.path(*parts))
        except OSError as e:
            raise translate(e) from None

    def pids(self) -> list[int]:
        """Numeric entries of the root: the thread groups."""
        return sorted(int(n) for n in os.listdir(self.root) if n.isdigit())

    def exists(self, *parts: object) -> bool:
        return os.path.exists(self.path(*parts))


def _parser(fn):
    """Holds a parser to its one documented error: an index, key or overflow error
    on malformed content becomes ValueError."""
    @functools.wraps(fn)
    def parse(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (IndexError, KeyError, OverflowError) as e:
            raise ValueError(f"malformed content for {fn.__name__}: {type(e).__name__}: {e}") from None
    return parse


_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)


def _fits(d: dict, narrow: tuple[str, ...] = ()) -> dict:
    """d, unless one of its integers cannot be stored (int32 for the keys in narrow, int64 for
    the others): a mangled file must cost its process, not the whole snapshot's Arrow table."""
    ints = [v for v in d.values() if type(v) is int]
    if ints and (min(ints) < _I64[0] or max(ints) > _I64[1]):
        k = next(k for k, v in d.items() if type(v) is int and not _I64[0] <= v <= _I64[1])
        raise ValueError(f"{k} out of range: {d[k]}")
    for k in narrow:
        v = d.get(k)
        if type(v) is int and not _I32[0] <= v <= _I32[1]:
            raise ValueError(f"{k} out of range: {v}")
    return d


def _i64(v: int) -> int:
    if not _I64[0] <= v <= _I64[1]:
        raise ValueError(f"out of range: {v}")
    return v


# --------------------------------------------------------------------------
# Text helpers


def split_text(raw: bytes) -> tuple[str, bytes | None]:
    """Text for a name or path, plus the raw bytes when the text is lossy.

    Invalid UTF-8 bytes become ``\\xNN`` in the text (as lsof prints them), and
    then the raw bytes are returned too, so that nothing is ever lost.
    """
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), raw


# --------------------------------------------------------------------------
# Per-process files


PF_KTHREAD = 0x00200000  # stat's flags of a kernel thread


def parse_cmdline(data: bytes) -> tuple[list[bytes], bytes]:
    """argv, and the text ps -o args shows (NUL-separated args joined by spaces)."""
    if not data:
        return [], b""
    if data.endswith(b"\0"):
        data = data[:-1]
    argv = data.split(b"\0")
    return argv, b" ".join(argv)


def joins_back(data: bytes, argv: list[bytes]) -> bool:
    """Whether argv (parse_cmdline's of data) comes back from its text joined by spaces: no argument
    holds a space or is empty. Found on the bytes at once rather than argument by argument."""
    return b" " not in data and not (argv and (not argv[0] or not argv[-1] or b"\0\0" in data[:-1]))


@_parser
def parse_limits_nofile(data: bytes) -> tuple[int | None, int | None]:
    """Soft and hard RLIMIT_NOFILE from /proc/PID/limits (None = unlimited)."""
    for line in data.split(b"\n"):
        if line.startswith(b"Max open files"):
            parts = line[len(b"Max open files") :].split()
            vals = []
            for p in parts[:2]:
                vals.append(None if p == b"unlimited" else _i64(int(p)))
            return vals[0], vals[1]
    return None, None


def tty_name(tty_nr: int) -> str | None:
    """Name of a controlling terminal from stat's tty_nr, as ps prints it."""
    if tty_nr == 0:
        return None
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return f"pts/{minor + (major - 136) * 256}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    if major == 5 and minor == 1:
        return "console"
    return f"{major},{minor}"


# --------------------------------------------------------------------------
# Host-wide files


@_parser
def parse_proc_stat(data: bytes) -> dict:
    out: dict = {"ncpus": 0}
    for line in data.split(b"\n"):
        if not line:
            continue
        key, _, rest = line.partition(b" ")
        if key == b"cpu":
            out["cpu"] = [int(x) for x in rest.split()]
        elif key.startswith(b"cpu"):
            out["ncpus"] += 1
        elif key in (b"ctxt", b"btime", b"processes", b"procs_running", b"procs_blocked"):
            out[key.decode()] = int(rest)
        elif key == b"intr":
            out["intr"] = int(rest.split(None, 1)[0])
    return out


@_parser
def parse_loadavg(data: bytes) -> dict:
    f = data.split()
    running, _, total = f[3].partition(b"/")
    return {
        "load1": float(f[0]),
        "load5": float(f[1]),
        "load15": float(f[2]),
        "tasks_total": int(total),
        "last_pid": int(f[4]),
    }


@_parser
def parse_meminfo(data: bytes) -> dict:
    """{key: bytes} from /proc/meminfo (values in kB are converted)."""
    out = {}
    for line in data.split(b"\n"):
        k, sep, v = line.partition(b":")
        if not sep:
            continue
        parts = v.split()
        if not parts:
            continue
        n = int(parts[0])
        if len(parts) > 1 and parts[1] == b"kB":
            n *= 1024
        out[k.decode()] = n
    return out


@_parser
def parse_vmstat(data: bytes) -> dict:
    out = {}
    for line in data.split(b"\n"):
        parts = line.split()
        if len(parts) == 2:
            out[parts[0].decode()] = int(parts[1])
    return out


@_parser
def parse_pressure(data: bytes) -> dict:
    """{'some': {'avg10': .., 'total': ..}, 'full': {...}} from /proc/pressure/*."""
    out = {}
    for line in data.split(b"\n"):
        parts = line.split()
        if not parts:
            continue
        kind = parts[0].decode()
        vals = {}
        for p in parts[1:]:
            k, _, v = p.partition(b"=")
            vals[k.decode()] = float(v) if k.startswith(b"avg") else int(v)
        out[kind] = vals
    return out


@_parser
def parse_diskstats(data: bytes) -> list[dict]:
    rows = []
    for line in data.split(b"\n"):
        f = line.split()
        if len(f) < 14:
            continue
        try:
            rows.append({
                "major": int(f[0]),
                "minor": int(f[1]),
                "device": f[2].decode("utf-8", "backslashreplace"),
                "reads": int(f[3]),
                "reads_merged": int(f[4]),
                "read_bytes": int(f[5]) * 512,
                "read_time_ms": int(f[6]),
                "writes": int(f[7]),
                "writes_merged": int(f[8]),
                "write_bytes": int(f[9]) * 512,
                "write_time_ms": int(f[10]),
                "in_flight": int(f[11]),
                "io_time_ms": int(f[12]),
                "weighted_io_time_ms": int(f[13]),
            })
        except (ValueError, IndexError):
            continue  # one line the kernel would not write: skip it, keep the table
    return rows


@_parser
def parse_net_dev(data: bytes) -> list[dict]:
    rows = []
    for line in data.split(b"\n")[2:]:
        name, sep, rest = line.partition(b":")
        if not sep:
            continue
        try:
            f = [int(x) for x in rest.split()]
            if len(f) < 16:
                continue
            rows.append({
                "interface": name.strip().decode("utf-8", "backslashreplace"),
                "rx_bytes": f[0],
                "rx_packets": f[1],
                "rx_errors": f[2],
                "rx_dropped": f[3],
                "multicast": f[7],
                "tx_bytes": f[8],
                "tx_packets": f[9],
                "tx_errors": f[10],
                "tx_dropped": f[11],
            })
        except (ValueError, IndexError):
            continue  # one line the kernel would not write: skip it, keep the table
    return rows


@_parser
def parse_snmp(data: bytes) -> dict[tuple[str, str], int]:
    """/proc/net/snmp and /proc/net/netstat (one format): each section is a line of field names
    and a line of values, both led by the section's name ("Tcp: RtoAlgorithm ..." then
    "Tcp: 1 ..."). Gives {(section, field): value}. A field the kernel does not have is simply
    absent (older kernels lack some); a section whose two lines do not pair up is skipped."""
    out: dict[tuple[str, str], int] = {}
    lines = data.split(b"\n")
    i = 0
    while i + 1 < len(lines):
        head, values = lines[i], lines[i + 1]
        name, sep, fields = head.partition(b":")
        vname, vsep, nums = values.partition(b":")
        if not sep or not vsep or name != vname:
            i += 1
            continue
        section = name.strip().decode("ascii", "replace")
        keys, vals = fields.split(), nums.split()
        if len(keys) == len(vals):
            for k, v in zip(keys, vals):
                try:
                    out[(section, k.decode("ascii", "replace"))] = _i64(int(v))
                except ValueError:
                    continue
        i += 2
    return out


@_parser
def parse_snmp6(data: bytes) -> dict[str, int]:
    """/proc/net/snmp6: one "Name value" pair a line (Udp6InErrors 0)."""
    out: dict[str, int] = {}
    for line in data.split(b"\n"):
        f = line.split()
        if len(f) != 2:
            continue
        try:
            out[f[0].decode("ascii", "replace")] = _i64(int(f[1]))
        except ValueError:
            continue
    return out


_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


def unescape_mount(field: bytes) -> bytes:
    """A path of /proc/PID/mountinfo as its bytes: the kernel writes space, tab, newline and
    backslash as \\040, \\011, \\012 and \\134."""
    return _OCTAL_ESCAPE.sub(lambda m: bytes((int(m.group(1), 8) & 0xFF,)), field)


@_parser
def parse_mountinfo(data: bytes) -> list[dict]:
    """/proc/PID/mountinfo (proc(5)): one mount a line, in mount order, as dicts of mount_id,
    major, minor, root, mount_point (bytes), options (the mount's own), fs_type and source
    (text; source as bytes too). A line that does not parse is skipped."""
    rows = []
    for line in data.split(b"\n"):
        f = line.split(b" ")
        try:
            sep = f.index(b"-", 6)  # optional fields end at a lone "-"
            major, minor = f[2].split(b":")
            rows.append({
                "mount_id": int(f[0]),
                "major": int(major),
                "minor": int(minor),
                "root": unescape_mount(f[3]),
                "mount_point": unescape_mount(f[4]),
                "options": f[5].decode("utf-8", "backslashreplace"),
                "fs_type": f[sep + 1].decode("utf-8", "backslashreplace"),
                "source": unescape_mount(f[sep + 2]),
            })
        except (ValueError, IndexError):
            continue
    return rows


# --------------------------------------------------------------------------
# Descriptors and sockets


def mode_letter(link_mode: int) -> str | None:
    """lsof's access mode from the permission bits of a /proc/PID/fd/N link.

    The kernel gives the link S_IRUSR when the file is open for reading and
    S_IWUSR when it is open for writing (fs/proc/fd.c).
    """
    r = link_mode & 0o400
    w = link_mode & 0o200
    if r and w:
        return "u"
    if r:
        return "r"
    if w:
        return "w"
    return None


UNIX_TYPES = {1: "STREAM", 2: "DGRAM", 5: "SEQPACKET"}
UNIX_STATES = {1: "UNCONNECTED", 2: "CONNECTING", 3: "CONNECTED", 4: "DISCONNECTING"}
SO_ACCEPTCON = 0x00010000


@_parser
def parse_unix(data: bytes) -> list[dict]:
    rows = []
    for line in data.split(b"\n")[1:]:
        f = line.split(None, 7)
        if len(f) < 7:
            continue
        try:
            flags = int(f[3], 16)
            typ = int(f[4], 16)
            st = int(f[5], 16)
            path = f[7] if len(f) > 7 else None
            rows.append({
                "family": "unix",
                "kaddr": f[0].rstrip(b":").decode(),
                "sock_type": UNIX_TYPES.get(typ, str(typ)),
                "state": "LISTEN" if flags & SO_ACCEPTCON else UNIX_STATES.get(st, str(st)),
                "inode": int(f[6]),
                "path": path,
            })
        except (ValueError, IndexError):
            continue  # one line the kernel would not write: skip it, keep the table
    return rows


NETLINK_PROTOCOLS = {
    0: "ROUTE", 1: "UNUSED", 2: "USERSOCK", 3: "FIREWALL", 4: "SOCK_DIAG", 5: "NFLOG", 6: "XFRM",
    7: "SELINUX", 8: "ISCSI", 9: "AUDIT", 10: "FIB_LOOKUP", 11: "CONNECTOR", 12: "NETFILTER",
    13: "IP6_FW", 14: "DNRTMSG", 15: "KOBJECT_UEVENT", 16: "GENERIC", 18: "SCSITRANSPORT",
    19: "ECRYPTFS", 20: "RDMA", 21: "CRYPTO", 22: "SMC",
}


@_parser
def parse_netlink(data: bytes) -> list[dict]:
    rows = []
    for line in data.split(b"\n")[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        try:
            proto = int(f[1])
            rows.append({"family": "netlink", "proto": NETLINK_PROTOCOLS.get(proto, str(proto)),
                         "kaddr": f[0].decode(), "inode": int(f[9]), "uid": None, "sock_type": "RAW"})
        except (ValueError, IndexError):
            continue  # one line the kernel would not write: skip it, keep the table
    return rows


PACKET_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 5: "SOCK_SEQPACKET", 10: "SOCK_PACKET"}


@_parser
def parse_packet(data: bytes) -> list[dict]:
    rows = []
    for line in data.split(b"\n")[1:]:
        f = line.split()
        if len(f) < 9:
            continue
        try:
            typ = int(f[2])
            rows.append({"family": "pack", "proto": str(int(f[3], 16)), "kaddr": f[0].decode(), "inode": int(f[8]),
                         "uid": int(f[7]), "sock_type": PACKET_TYPES.get(typ, str(typ))})
        except (ValueError, IndexError):
            continue  # one line the kernel would not write: skip it, keep the table
    return rows


NET_TABLES = (
    ("tcp", "TCP", False), ("tcp6", "TCP", True), ("udp", "UDP", False), ("udp6", "UDP", True),
    ("udplite", "UDPLITE", False), ("udplite6", "UDPLITE", True), ("raw", "RAW", False), ("raw6", "RAW", True),
)


def endpoint(addr: str, port) -> str:
    """ADDR:PORT as every procsnap command prints an endpoint: an IPv6 address in brackets
    ([::1]:8081), as lsof and ss print it. (queries/listening_sockets.sql spells the same rule
    in SQL.)"""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _lsof_addr(addr: str, port: int, v6: bool) -> str:
    return endpoint("*" if addr in ("0.0.0.0", "::") else addr, port)


@_parser
def lsof_socket_name(s: dict) -> str:
    """NAME as lsof prints it for a socket row: parsed above, or an inet socket psutil gives
    (recorder/collect/sockets.py)."""
    fam = s["family"]
    if fam in ("IPv4", "IPv6"):
        v6 = fam == "IPv6"
        name = _lsof_addr(s["local_addr"], s["local_port"], v6)
        if s["remote_port"] or s["remote_addr"] not in ("0.0.0.0", "::"):
            name += "->" + _lsof_addr(s["remote_addr"], s["remote_port"], v6)
        if s["proto"] == "TCP":
            name += f" ({s['state']})"
        return name
    if fam == "unix":
        p = s["path"]
        prefix = p.decode("utf-8", "backslashreplace") + " " if p else ""
        return f"{prefix}type={s['sock_type']} ({s['state']})"
    if fam == "netlink":
        return s["proto"]
    if fam == "pack":
        return f"type={s['sock_type']}"
    return "socket"

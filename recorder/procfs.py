"""Reading and parsing /proc.

Every read goes through the tiny helpers of :class:`ProcFS`, rooted at one
procfs path, so that tests can point the whole recorder at a fake tree. The
parsers are pure functions of bytes, so they are tested on their own.

Errors are mapped in exactly one place (:func:`_map_errors`):
``FileNotFoundError`` / ``ProcessLookupError`` / ``ESRCH`` mean the process or
thread is gone (:class:`Gone`), ``PermissionError`` means access denied
(:class:`Denied`). Anything else is a real error and propagates.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager


class Gone(Exception):
    """The process, thread or file vanished while it was being read."""


class Denied(Exception):
    """The kernel refused the read (EACCES / EPERM)."""


@contextmanager
def _map_errors():
    try:
        yield
    except (FileNotFoundError, ProcessLookupError) as e:
        raise Gone(str(e)) from None
    except PermissionError as e:
        raise Denied(str(e)) from None
    except OSError as e:
        if e.errno in (errno.ESRCH, errno.ENOENT):
            raise Gone(str(e)) from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise Denied(str(e)) from None
        raise


class ProcFS:
    """Helpers rooted at one procfs path (``/proc`` on a live host)."""

    def __init__(self, root: str = "/proc"):
        self.root = root.rstrip("/") or "/"

    def path(self, *parts: object) -> str:
        return self.root + "/" + "/".join(str(p) for p in parts)

    def read(self, *parts: object) -> bytes:
        """The whole content of a file, as bytes."""
        p = self.path(*parts)
        with _map_errors():
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
            try:
                chunks = []
                while True:
                    b = os.read(fd, 65536)
                    if not b:
                        break
                    chunks.append(b)
            finally:
                os.close(fd)
        return b"".join(chunks)

    def readlink(self, *parts: object) -> bytes:
        with _map_errors():
            return os.readlink(os.fsencode(self.path(*parts)))

    def listdir(self, *parts: object) -> list[str]:
        with _map_errors():
            return os.listdir(self.path(*parts))

    def pids(self) -> list[int]:
        """Numeric entries of the root: the thread groups."""
        return sorted(int(n) for n in os.listdir(self.root) if n.isdigit())

    def exists(self, *parts: object) -> bool:
        return os.path.exists(self.path(*parts))


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


STAT_FIELDS = 52


def parse_stat(data: bytes) -> dict:
    """Parse /proc/PID/stat (or /proc/PID/task/TID/stat).

    The command name sits between the first '(' and the *last* ')': names may
    hold spaces, parentheses and even newlines.
    """
    lp = data.find(b"(")
    rp = data.rfind(b")")
    if lp < 0 or rp < lp:
        raise ValueError("malformed stat: no (comm)")
    pid = int(data[:lp])
    comm = data[lp + 1 : rp]
    f = data[rp + 2 :].split()
    if len(f) < 20:
        raise ValueError("malformed stat: too few fields")
    # f[0] is field 3 (state) of proc(5); field N is f[N - 3].
    return {
        "pid": pid,
        "comm": comm,
        "state": f[0].decode("ascii", "replace"),
        "ppid": int(f[1]),
        "pgid": int(f[2]),
        "sid": int(f[3]),
        "tty_nr": int(f[4]),
        "flags": int(f[6]),
        "minflt": int(f[7]),
        "majflt": int(f[9]),
        "utime": int(f[11]),
        "stime": int(f[12]),
        "priority": int(f[15]),
        "nice": int(f[16]),
        "num_threads": int(f[17]),
        "starttime": int(f[19]),
        "vsize": int(f[20]) if len(f) > 20 else 0,
        "rss": int(f[21]) if len(f) > 21 else 0,
        "processor": int(f[36]) if len(f) > 36 else None,
    }


PF_KTHREAD = 0x00200000


def parse_status(data: bytes) -> dict:
    """Parse /proc/PID/status into {key: value bytes} for the keys we use."""
    out = {}
    for line in data.split(b"\n"):
        k, sep, v = line.partition(b":")
        if sep:
            out[k] = v.strip()
    return out


def status_ids(st: dict, key: bytes) -> tuple[int, int]:
    """(real, effective) of the Uid: or Gid: line."""
    parts = st[key].split()
    return int(parts[0]), int(parts[1])


def status_kb(st: dict, key: bytes) -> int | None:
    v = st.get(key)
    if v is None:
        return None
    return int(v.split()[0]) * 1024


def status_int(st: dict, key: bytes) -> int | None:
    v = st.get(key)
    return int(v) if v is not None else None


def parse_io(data: bytes) -> dict:
    out = {}
    for line in data.split(b"\n"):
        k, sep, v = line.partition(b":")
        if sep:
            out[k.strip().decode()] = int(v)
    return out


def parse_cmdline(data: bytes) -> tuple[list[bytes], bytes]:
    """argv, and the text ps -o args shows (NUL-separated args joined by spaces)."""
    if not data:
        return [], b""
    if data.endswith(b"\0"):
        data = data[:-1]
    argv = data.split(b"\0")
    return argv, b" ".join(argv)


def parse_limits_nofile(data: bytes) -> tuple[int | None, int | None]:
    """Soft and hard RLIMIT_NOFILE from /proc/PID/limits (None = unlimited)."""
    for line in data.split(b"\n"):
        if line.startswith(b"Max open files"):
            parts = line[len(b"Max open files") :].split()
            vals = []
            for p in parts[:2]:
                vals.append(None if p == b"unlimited" else int(p))
            return vals[0], vals[1]
    return None, None


def parse_cgroup(data: bytes) -> str:
    """What ps -o cgroup shows: the non-root entries joined by ','; '/' if none."""
    entries = []
    for line in data.split(b"\n"):
        if not line:
            continue
        hid, _, rest = line.partition(b":")
        _, _, path = rest.partition(b":")
        if path and path != b"/":
            entries.append(line.decode("utf-8", "backslashreplace"))
    return ",".join(entries) if entries else "/"


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


def parse_vmstat(data: bytes) -> dict:
    out = {}
    for line in data.split(b"\n"):
        parts = line.split()
        if len(parts) == 2:
            out[parts[0].decode()] = int(parts[1])
    return out


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


def parse_diskstats(data: bytes) -> list[dict]:
    rows = []
    for line in data.split(b"\n"):
        f = line.split()
        if len(f) < 14:
            continue
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
    return rows


def parse_net_dev(data: bytes) -> list[dict]:
    rows = []
    for line in data.split(b"\n")[2:]:
        name, sep, rest = line.partition(b":")
        if not sep:
            continue
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
    return rows

"""lsof's rows for descriptors, and the socket tables they are resolved against.

:class:`FileRows` accumulates one snapshot's ``open_files`` rows during the
process pass; socket descriptors stay pending until :class:`SocketIndex` has
read the socket tables of each network namespace, then get lsof's TYPE,
DEVICE and NAME. :meth:`SocketIndex.rows` gives the ``sockets`` rows, one per
(socket, owner), and one with a NULL owner for sockets nobody holds.
"""

from __future__ import annotations

import os
import stat

from . import procfs as P
from .procfs import Denied, Gone, ProcFS


def _devstr(dev: int) -> str:
    return f"{os.major(dev)},{os.minor(dev)}"


_TYPES = (
    (stat.S_ISREG, "REG"), (stat.S_ISDIR, "DIR"), (stat.S_ISCHR, "CHR"), (stat.S_ISBLK, "BLK"),
    (stat.S_ISFIFO, "FIFO"), (stat.S_ISLNK, "LINK"), (stat.S_ISSOCK, "SOCK"),
)


def file_type(mode: int) -> str:
    for test, name in _TYPES:
        if test(mode):
            return name
    return "unknown"


class FileRows:
    def __init__(self):
        self.rows: list[dict] = []
        self.gone = 0
        self.denied = 0
        self.socket_pids: list[int] = []
        self._exe: dict[int, tuple[str, int]] = {}

    def _add(self, base: dict, fd: str, fd_num, mode, typ, device, size, pos, inode, name: bytes | str,
             deleted: bool, proto=None) -> dict:
        if isinstance(name, bytes):
            text, raw = P.split_text(name)
        else:
            text, raw = name, None
        r = {**base, "fd": fd, "fd_num": fd_num, "mode": mode, "type": typ, "device": device, "size": size,
             "pos": pos, "inode": inode, "proto": proto, "name": text, "name_raw": raw, "deleted": deleted}
        self.rows.append(r)
        return r

    def add_denied(self, base: dict, fd: str, fd_num, path: str) -> None:
        self.denied += 1
        self._add(base, fd, fd_num, None, "unknown", None, None, None, None,
                  f"{path} (readlink: Permission denied)", False)

    def add_unknown(self, base: dict, fd: str, path: str) -> None:
        """What lsof lists for a link that does not resolve (a kernel thread's exe)."""
        self._add(base, fd, None, None, "unknown", None, None, None, None, path, False)

    def add_path(self, base: dict, fd: str, mode, pos, target: bytes, st) -> None:
        fd_num = int(fd) if fd.isdigit() else None
        if st is None:
            self._add(base, fd, fd_num, mode, "unknown", None, None, pos, None, target, False)
            return
        if target.startswith(b"anon_inode:"):
            self._add(base, fd, fd_num, mode, "a_inode", _devstr(st.st_dev), st.st_size, None, st.st_ino,
                      target[len(b"anon_inode:"):], False)
            return
        if target.startswith(b"pipe:["):
            self._add(base, fd, fd_num, mode, "FIFO", _devstr(st.st_dev), None, 0, st.st_ino, b"pipe", False)
            return
        typ = file_type(st.st_mode)
        deleted = target.endswith(b" (deleted)") and target.startswith(b"/")
        if typ in ("CHR", "BLK"):
            device, size = _devstr(st.st_rdev), None
        else:
            device = _devstr(st.st_dev)
            size = st.st_size if typ in ("REG", "DIR") else None
        if typ == "FIFO" and pos is None:
            pos = 0
        if fd == "txt":
            self._exe[base["pid"]] = (device, st.st_ino)
        self._add(base, fd, fd_num, mode, typ, device, size, pos, st.st_ino, target, deleted)

    def add_mem(self, base: dict, dev: str, inode: int, path: bytes, deleted: bool, size) -> None:
        self._add(base, "DEL" if deleted else "mem", None, None, "REG", dev, size, None, inode, path, deleted)

    def add_socket(self, base: dict, fd: str, mode, inode: int, fdpath: str) -> None:
        r = self._add(base, fd, int(fd), mode, None, None, None, 0, inode, b"", False)
        r["_fdpath"] = fdpath
        if not self.socket_pids or self.socket_pids[-1] != base["pid"]:
            self.socket_pids.append(base["pid"])

    def exe_key(self, pid: int):
        return self._exe.get(pid)

    def drop(self, pid: int) -> None:
        self.rows = [r for r in self.rows if r["pid"] != pid]
        if self.socket_pids and self.socket_pids[-1] == pid:
            self.socket_pids.pop()

    def resolve(self, sockets: "SocketIndex") -> list[dict]:
        for r in self.rows:
            path = r.pop("_fdpath", None)
            if path is None:
                continue
            r["_socket"] = True
            s = sockets.by_inode.get(r["inode"])
            if s is None:
                # A socket of a family with no /proc/net table (or not bound
                # yet): lsof's 'sock' row, named by its protocol.
                r["type"] = "sock"
                try:
                    r["device"] = _devstr(os.stat(path).st_dev)
                except OSError:
                    pass
                try:
                    r["name"] = "protocol: " + os.getxattr(path, "system.sockprotoname").decode("ascii", "replace").rstrip("\0")
                except OSError:
                    r["name"] = "socket"
                continue
            fam = s["family"]
            if fam in ("IPv4", "IPv6") and s["proto"] == "RAW":
                r["type"] = "raw" if fam == "IPv4" else "raw6"
                r["device"] = None
            else:
                r["type"] = fam
                if fam in ("IPv4", "IPv6", "pack"):
                    r["device"] = str(r["inode"])
                elif fam == "unix":
                    r["device"] = "0x" + s["kaddr"]
            if fam in ("IPv4", "IPv6", "pack"):
                r["proto"] = s["proto"]
            name = P.lsof_socket_name(s)
            if fam == "unix" and s.get("path") is not None:
                text, raw = P.split_text(s["path"])
                r["name"] = name
                if raw is not None:
                    r["name_raw"] = raw + name[len(text):].encode()
            else:
                r["name"] = name
        return self.rows


class SocketIndex:
    def __init__(self):
        self.by_inode: dict[int, dict] = {}
        self.unowned: list[dict] = []  # inode-0 sockets (TIME_WAIT, …)
        self.denied = 0

    def _add(self, rows: list[dict], ns) -> None:
        for s in rows:
            s["netns"] = ns
            if s["inode"] == 0:
                self.unowned.append(s)
            else:
                self.by_inode.setdefault(s["inode"], s)

    def read_namespace(self, fs: ProcFS, parts: tuple, ns) -> None:
        def read(name):
            try:
                return fs.read(*parts, name)
            except Denied:
                self.denied += 1
            except Gone:
                pass
            return None

        for name, proto, v6 in P.NET_TABLES:
            data = read(name)
            if data:
                self._add(P.parse_inet(data, proto, v6), ns)
        for name, parser in (("unix", P.parse_unix), ("netlink", P.parse_netlink), ("packet", P.parse_packet)):
            data = read(name)
            if data:
                try:
                    self._add(parser(data), ns)
                except ValueError:
                    pass

    def rows(self, files: FileRows, boot_id) -> list[dict]:
        owners: dict[int, list[dict]] = {}
        for r in files.rows:
            if r.get("_socket"):
                owners.setdefault(r["inode"], []).append(r)
        out = []
        for s in list(self.by_inode.values()) + self.unowned:
            base = _socket_row(s, boot_id)
            holders = owners.get(s["inode"]) if s["inode"] else None
            if holders:
                for h in holders:
                    out.append({**base, "pid": h["pid"], "fd": h["fd_num"], "start_time": h["start_time"]})
            else:
                out.append(base)
        return out


def _socket_row(s: dict, boot_id) -> dict:
    fam = s["family"]
    inet = fam in ("IPv4", "IPv6")
    row = {"boot_id": boot_id, "pid": None, "fd": None, "start_time": None, "inode": s["inode"],
           "netns": s.get("netns"), "family": fam, "proto": s.get("proto") if fam != "unix" else None,
           "sock_type": s.get("sock_type"), "state": s.get("state") if fam in ("IPv4", "IPv6", "unix") else None,
           "uid": s.get("uid")}
    if fam == "pack":
        row["proto"] = None
    if inet:
        row.update({k: s[k] for k in ("local_addr", "local_port", "remote_addr", "remote_port", "rx_queue", "tx_queue")})
    if fam == "unix" and s.get("path") is not None:
        row["unix_path"], row["unix_path_raw"] = P.split_text(s["path"])
    return row

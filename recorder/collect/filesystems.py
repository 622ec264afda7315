"""The filesystems table: every mount of the recorder's mount namespace and its space, as df.

The mounts come from /proc/self/mountinfo (parsed in procfs.parse_mountinfo), not from
psutil.disk_partitions: psutil gives neither the device's major:minor (which ties a mount to
open_files.device and to the disks table) nor the mount id, and it reads the live /proc only.
The numbers come from os.statvfs of each mount point.

statvfs of a network or FUSE file system asks its server or daemon, and blocks for as long as
that does not answer (a dead NFS server with a hard mount: forever, in uninterruptible sleep, where
no signal or timeout reaches it). Those are measured each in a daemon thread, all at once, given
REMOTE_DEADLINE_S in all; one that has not answered by then is NULL with the reason, and while
its call is still blocked, later snapshots do not start another one for that mount (they say
since when it blocks). Local file systems answer statvfs from memory and are measured inline.
"""

from __future__ import annotations

import os
import time

from recorder.source import procfs as P

# Seconds a snapshot waits, in all, for the statvfs of network and FUSE file systems.
REMOTE_DEADLINE_S = 0.5
# File systems whose statvfs goes to a server over the network.
NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "ceph", "glusterfs", "afs", "9p", "lustre", "gpfs",
    "ocfs2", "gfs2", "davfs", "coda", "beegfs", "orangefs", "pvfs2", "cephfs",
})
# Automount points: a statvfs there would make the automounter mount (and maybe wait for a server).
AUTOMOUNT_TYPES = frozenset({"autofs"})


def is_remote(fs_type: str) -> bool:
    """Whether statvfs of this type may block on a server or a user-space daemon."""
    return fs_type in NETWORK_TYPES or fs_type == "fuse" or fs_type.startswith(("fuse.", "fuseblk"))


def numbers(st) -> dict:
    """The columns df shows, from a statvfs result."""
    frsize = st.f_frsize or st.f_bsize
    return {
        "size": st.f_blocks * frsize,
        "used": (st.f_blocks - st.f_bfree) * frsize,
        "avail": st.f_bavail * frsize,
        "inodes_total": st.f_files,
        "inodes_used": st.f_files - st.f_ffree,
        "inodes_free": st.f_ffree,
    }


class _Call:
    """One statvfs in a daemon thread: result (a statvfs result or an OSError) once done."""

    __slots__ = ("path", "started", "done", "result", "thread")

    def __init__(self, path: bytes, statvfs):
        import threading
        self.path = path
        self.started = time.time()
        self.done = threading.Event()
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(statvfs,), daemon=True,
                                       name="procsnap-statvfs")
        self.thread.start()

    def _run(self, statvfs) -> None:
        try:
            self.result = statvfs(self.path)
        except OSError as e:
            self.result = e
        finally:
            self.done.set()


class FilesystemReader:
    """Reads the filesystems rows of one snapshot; keeps, across snapshots, the statvfs calls
    of network file systems that are still blocked."""

    def __init__(self, statvfs=os.statvfs, deadline: float = REMOTE_DEADLINE_S):
        self.statvfs = statvfs
        self.deadline = deadline
        self._blocked: dict[tuple, _Call] = {}  # (mount_id, mount point) -> a call not yet returned

    def rows(self, mountinfo: bytes) -> list[dict]:
        mounts = P.parse_mountinfo(mountinfo)
        # A mount point mounted over again later in the list is hidden: a statvfs of the path
        # measures the mount on top.
        last = {}
        for i, m in enumerate(mounts):
            last[m["mount_point"]] = i
        rows = []
        remote = []
        for i, m in enumerate(mounts):
            point, point_raw = P.split_text(m["mount_point"])
            source, source_raw = P.split_text(m["source"])
            row = {"mount_id": m["mount_id"], "mount_point": point, "mount_point_raw": point_raw,
                   "source": source, "source_raw": source_raw, "fs_type": m["fs_type"],
                   "major": m["major"], "minor": m["minor"], "options": m["options"]}
            rows.append(row)
            if last[m["mount_point"]] != i:
                row["not_measured"] = "hidden under a later mount on the same mount point"
            elif m["fs_type"] in AUTOMOUNT_TYPES:
                row["not_measured"] = "automount point (a statvfs would trigger the automounter)"
            elif is_remote(m["fs_type"]):
                remote.append((row, m["mount_point"]))
            else:
                self._measure_inline(row, m["mount_point"])
        if remote:
            self._measure_remote(remote)
        return rows

    def _measure_inline(self, row: dict, path: bytes) -> None:
        try:
            row.update(numbers(self.statvfs(path)))
        except OSError as e:
            row["not_measured"] = f"statvfs: {e.strerror or e}"

    def _measure_remote(self, remote: list) -> None:
        now = time.time()
        calls = []
        for row, path in remote:
            key = (row["mount_id"], path)
            call = self._blocked.get(key)
            if call is not None and not call.done.is_set():
                row["not_measured"] = (f"{row['fs_type']}: statvfs has not returned for {now - call.started:.0f} s "
                                       "(the server does not answer)")
                continue
            calls.append((row, _Call(path, self.statvfs), key))
        end = time.monotonic() + self.deadline
        for row, call, key in calls:
            if call.done.wait(max(0.0, end - time.monotonic())):
                self._blocked.pop(key, None)
                if isinstance(call.result, OSError):
                    row["not_measured"] = f"statvfs: {call.result.strerror or call.result}"
                else:
                    row.update(numbers(call.result))
            else:
                self._blocked[key] = call
                row["not_measured"] = (f"{row['fs_type']}: statvfs did not return within {self.deadline:g} s "
                                       "(the server does not answer)")
        # Calls of mounts that went away are forgotten once they return.
        for key in [k for k, c in self._blocked.items() if c.done.is_set()]:
            del self._blocked[key]

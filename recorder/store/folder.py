"""Writing a recording: a folder of hive-partitioned Parquet.

Layout::

    DIR/procsnap.json                                   marker: format and version
    DIR/<table>/host=<host>/date=<YYYY-MM-DD>/<snapshot_id>.parquet      one snapshot
    DIR/<table>/host=<host>/date=<YYYY-MM-DD>/c<first>-<last>.parquet    compacted

A compacted file holds the rows of the snapshots ``first..last`` (ids, both
included) of its partition; it *covers* every file whose id range lies inside
its own. Readers use only the files no other file covers (see
:func:`select_visible`), so a snapshot's rows are read exactly once whether
its small file, its compacted file or both are on disk (see
``recorder.store.compact`` for the order of writes and deletes).

ATOMICITY RULE (the one place it is written down): every Parquet file is
written under a temporary name starting with '.', fsync'ed, and renamed into
place, and the folder is fsync'ed; readers ignore names starting with '.' or
'_'. Within one snapshot the ``snapshots`` file is renamed into place last: a
snapshot is committed when, and only when, its ``snapshots`` row exists. Rows
of other tables without a committed snapshot (the recorder died in between)
are invisible to the analyzer's views and are removed when a recorder next
opens the folder. Deleting runs the other way round: a snapshot is uncommitted
(its ``snapshots`` file removed) before its data files are.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from recorder import __version__
from recorder.schema import TABLES

from recorder.store.layout import (DATA_NAME, FORMAT, FORMAT_VERSION, MARKER, file_range, marker_problem,
                                   partition_value, select_visible)
from recorder.store.write import STATS_COLUMNS, SnapshotTables, parquet_options, write_parquet  # noqa: F401 - re-exported

# errno values meaning "the disk (or quota) is full": the recorder drops snapshots, not data.
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class StoreError(Exception):
    """A recording folder cannot be written (not a recording, not writable, …)."""


class StoreFull(StoreError):
    """A snapshot could not be written because the file system is full; nothing of it is left."""


class UnsafeFolder(StoreError):
    """The folder (or one above or below it) may be changed by another user: refused."""


ALLOW_SHARED_FLAG = "--allow-shared-folder"
LOCK = ".lock"
# Temporary files: '.' NAME '.' random '.tmp', created O_EXCL (never an existing name, never
# through a link); older versions wrote '.' NAME '.tmp'.
TEMP_NAME = re.compile(r"^\..+\.tmp$")
# What a start on a full disk leaves in a folder that never got its marker: the folder is
# finished, not refused.
_HALF_MADE = re.compile(r"^(\.lock|\.procsnap\.json(\.[0-9a-f]+)?\.tmp)$")
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_NOFOLLOW = _DIR | os.O_NOFOLLOW


def _shown(path) -> str:
    """A path as printed in a message: control characters escaped (names in a shared folder are
    anyone's)."""
    from recorder.textsafe import escape
    return escape(os.fspath(path))


def _user(uid: int) -> str:
    import pwd
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _unsafe(st: os.stat_result, *, own: bool) -> str | None:
    """Why a folder could be changed by a user other than this process's, or None.

    OWN: the folder procsnap writes in (the recording and every folder below it) must belong to
    this process's user and be writable by nobody else. Otherwise (a folder above the
    recording) root may own it too, and a world-writable one must be sticky (as /tmp is): only
    an entry's owner may then rename or remove it."""
    euid = os.geteuid()
    if st.st_uid != euid and (own or st.st_uid != 0):
        return f"is owned by {_user(st.st_uid)}, not by {_user(euid)}"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022 and (own or not mode & stat.S_ISVTX):
        who = "group and others" if mode & 0o022 == 0o022 else "its group" if mode & 0o020 else "others"
        return f"is writable by {who} (mode {mode:o})"
    return None


def _refuse(path, why: str) -> UnsafeFolder:
    return UnsafeFolder(f"{_shown(path)} {why}: another user could plant links in it or swap it; record into a "
                        f"folder of your own, or pass {ALLOW_SHARED_FLAG} if you mean it")


def _check_real_path(fd: int, shown, allow_shared: bool) -> None:
    """Every folder of the real path of FD, from /, is safe as a folder above a recording."""
    if allow_shared:
        return
    real = os.readlink(f"/proc/self/fd/{fd}")
    p = "/"
    for part in [""] + [c for c in real.split("/") if c]:
        p = os.path.join(p, part)
        why = _unsafe(os.lstat(p), own=False)
        if why:
            raise _refuse(p, why + f" (it holds {_shown(shown)})")


def _enter(fd: int, name: str, create: bool) -> int:
    """A descriptor of the folder NAME in the folder FD, never through a link (O_NOFOLLOW: a
    link raises ELOOP or ENOTDIR); with CREATE a missing one is made 0700 whatever the umask,
    else FileNotFoundError."""
    try:
        return os.open(name, _DIR_NOFOLLOW, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, 0o700, dir_fd=fd)
        made = True
    except FileExistsError:  # made by someone else meanwhile: checked like any existing one
        made = False
    nfd = os.open(name, _DIR_NOFOLLOW, dir_fd=fd)
    if made:
        os.fchmod(nfd, 0o700)  # mkdir's mode went through the umask
    return nfd


def open_folder(path, allow_shared: bool = False) -> int:
    """Open (creating what is missing, each 0700 whatever the umask) the folder PATH for
    writing a recording; returns its descriptor.

    Walks PATH a component at a time relative to the folder before it: a missing component is
    created with mkdir and opened O_NOFOLLOW (never a link someone put there in between); an
    existing link is followed only when root or this user owns it. Unless ALLOW_SHARED, every
    folder passed through (and every folder of the real path reached) must be owned by root
    or this user and not writable by others unless sticky, and the recording folder itself
    must be this user's and writable by no one else."""
    p = os.fspath(path)
    if not p:
        raise StoreError("the recording folder name is empty")
    parts = [c for c in p.split("/") if c not in ("", ".")]
    fd = os.open("/" if p.startswith("/") else ".", _DIR)
    try:
        _check_real_path(fd, p, allow_shared)
        walked = "/" if p.startswith("/") else ""
        for i, name in enumerate(parts):
            walked = os.path.join(walked, name)
            last = i == len(parts) - 1
            followed = False
            try:
                nfd = _enter(fd, name, create=True)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.lstat(name, dir_fd=fd)
                if not stat.S_ISLNK(st.st_mode):
                    raise StoreError(f"{_shown(walked)} exists and is not a folder") from None
                if st.st_uid not in (0, os.geteuid()):  # with the flag too: a link decides where root writes
                    raise StoreError(f"{_shown(walked)} is a link owned by {_user(st.st_uid)}: procsnap follows "
                                     "links on the way to its folder only when root or its own user made them; "
                                     "name the real folder instead") from None
                try:
                    nfd = os.open(name, _DIR, dir_fd=fd)
                except NotADirectoryError:
                    raise StoreError(f"{_shown(walked)} exists and is not a folder") from None
                followed = True
            os.close(fd)
            fd = nfd
            if not allow_shared:
                why = _unsafe(os.fstat(fd), own=last)
                if why:
                    raise _refuse(walked, why)
            if followed:
                _check_real_path(fd, walked, allow_shared)
        if not parts and not allow_shared:
            why = _unsafe(os.fstat(fd), own=True)
            if why:
                raise _refuse(p, why)
        return fd
    except BaseException:
        os.close(fd)
        raise


class Store:
    """Appends snapshots to a recording folder, creating it if needed.

    Everything in the folder is created, opened, renamed and removed relative to the
    descriptor of the folder opened at the start (and of the folders below it, each opened
    O_NOFOLLOW): a link planted in the folder is never followed, and a folder moved or
    swapped under a running recorder stops it (:meth:`check`) rather than send its files
    elsewhere. Only regular files of the recorder's own naming, owned by its user, are ever
    removed. See docs/security.md.
    """

    def __init__(self, root: str | os.PathLike, compression: str = "zstd", allow_shared: bool = False):
        self.root = Path(root)
        self.compression = compression
        self.allow_shared = allow_shared
        self._said: set[str] = set()
        self._lock_fd = None
        try:
            self._dfd = open_folder(root, allow_shared)
        except OSError as e:
            raise StoreError(f"cannot open {_shown(self.root)}: {e.strerror}") from None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    @classmethod
    def adopt(cls, dfd: int, root: str | os.PathLike, compression: str = "zstd",
              allow_shared: bool = False) -> "Store":
        """A Store over the recording folder descriptor DFD that a recorder opened and locked (its
        compaction child inherits it): no lock taken, nothing checked or cleaned at the start."""
        self = cls.__new__(cls)
        self.root = Path(root)
        self.compression = compression
        self.allow_shared = allow_shared
        self._said = set()
        self._lock_fd = None
        self._dfd = dfd
        return self

    def fileno(self) -> int:
        """The descriptor of the recording folder."""
        return self._dfd

    def lock_fileno(self) -> int | None:
        """The descriptor holding the folder's writer lock (None for an adopted Store): a child
        that inherits it holds the lock too, until it exits."""
        return self._lock_fd

    def _open(self) -> None:
        names = os.listdir(self._dfd)
        if names and not self._is_recording(names) and not self._half_made(names):
            raise StoreError(f"{_shown(self.root)} is not empty and is not a procsnap recording; "
                             "choose an empty or new folder")
        # One writer per folder: a second recorder would race the clean-up below.
        try:
            fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600,
                         dir_fd=self._dfd)
        except OSError as e:
            raise StoreError(f"cannot open {_shown(self.root / LOCK)}: {e.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
            os.close(fd)  # (a hard link: another name of some other file)
            raise StoreError(f"{_shown(self.root / LOCK)} is not a file of this recorder's; remove it")
        self._lock_fd = fd
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"another procsnap recorder is writing to {_shown(self.root)}") from None
        # Table, host= and date= folders are checked before anything is written: none is a link
        # or another user's (a link is never followed, even with allow_shared).
        for table in TABLES:
            for _ in self.partitions(table, strict=True):
                pass
        mode = stat.S_IMODE(os.fstat(self._dfd).st_mode)
        if mode & 0o077:
            print(f"procsnap: warning: {_shown(self.root)} is readable by others (mode {mode:o}); "
                  "recordings hold command lines", file=sys.stderr)
        self._check_marker()
        if not self._lexists(MARKER):
            import json
            data = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "writer": f"procsnap {__version__}"},
                              indent=1).encode() + b"\n"
            try:
                with self.atomic(self.root / MARKER) as fd:
                    while data:
                        data = data[os.write(fd, data):]
            except OSError as e:
                raise StoreError(f"cannot write {_shown(self.root / MARKER)}: {e.strerror}; "
                                 "the folder is finished at the next start") from None
        self.remove_uncommitted()

    def _check_marker(self) -> None:
        """Refuse to add to a recording whose marker is garbage or a newer procsnap's: its files
        may be of a format this recorder would mix its own into. A link there is never read."""
        try:
            fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self._dfd)
        except OSError:
            return  # absent (written below), or a link or FIFO: left alone, never read through
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            data = os.read(fd, 1 << 16)
        finally:
            os.close(fd)
        problem = marker_problem(data)
        if problem is None:
            return
        why, newer = problem
        fix = ("record with that procsnap, or into another folder" if newer else
               "record into another folder, or remove it if the folder is a recording of this procsnap")
        raise StoreError(f"{_shown(self.root / MARKER)}: {why}; refusing to add to this recording: {fix}")

    def _lexists(self, name: str) -> bool:
        try:
            os.lstat(name, dir_fd=self._dfd)
            return True
        except FileNotFoundError:
            return False

    def _is_recording(self, names: list[str]) -> bool:
        """The marker (a regular file, not a link) or a snapshots folder (not a link)."""
        for name, kind in ((MARKER, stat.S_ISREG), ("snapshots", stat.S_ISDIR)):
            if name in names and kind(os.lstat(name, dir_fd=self._dfd).st_mode):
                return True
        return False

    def _half_made(self, names: list[str]) -> bool:
        """Only what a first start that failed (a full disk) leaves: the lock and the marker's
        temporary file, regular files of this user's."""
        for n in names:
            if not _HALF_MADE.match(n):
                return False
            st = os.lstat(n, dir_fd=self._dfd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                return False
        return True

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if getattr(self, "_dfd", None) is not None:
            os.close(self._dfd)
            self._dfd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def notices(self) -> list[str]:
        """The notices said so far (a compaction child is handed them, and hands its own back,
        so that each is said once per recorder)."""
        return sorted(self._said)

    def mark_said(self, notices) -> None:
        """Count NOTICES as said (by a compaction child): not said again."""
        self._said.update(notices)

    def say(self, msg: str) -> None:
        """A notice on stderr, once per recorder."""
        if msg not in self._said:
            self._said.add(msg)
            print(f"procsnap: {msg}", file=sys.stderr)

    # ------------------------------------------------------------------
    # The folder, by descriptor

    def check(self) -> None:
        """Raise StoreError unless the folder's name still names the folder this recorder opened
        (it was not moved, removed or swapped for a link or another folder since), still
        safe. Called before each snapshot is written."""
        try:
            named = os.stat(self.root)
        except OSError as e:
            raise StoreError(f"{_shown(self.root)} is gone ({e.strerror}) while recording; stopping") from None
        own = os.fstat(self._dfd)
        if (named.st_dev, named.st_ino) != (own.st_dev, own.st_ino):
            raise StoreError(f"{_shown(self.root)} no longer names the folder this recorder opened (moved or "
                             "replaced while recording); stopping rather than write elsewhere")
        why = None if self.allow_shared else _unsafe(own, own=True)
        if why:
            raise _refuse(self.root, why + " (changed while recording)")

    def _parts(self, p: Path) -> tuple[str, ...]:
        parts = Path(p).relative_to(self.root).parts
        if any(c in ("..", ".") for c in parts):
            raise ValueError(f"{p} is not inside {self.root}")
        return parts

    def dir_fd(self, d: Path, create: bool = False) -> int:
        """A descriptor of the folder D inside the recording (the caller closes it), opened a
        component at a time O_NOFOLLOW from the recording's own descriptor; with CREATE the
        missing ones are made 0700. A link, or a folder another user may change, raises
        StoreError; a missing one FileNotFoundError."""
        fd = os.dup(self._dfd)
        walked = self.root
        try:
            for name in self._parts(d):
                walked = walked / name
                try:
                    nfd = _enter(fd, name, create)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise StoreError(f"{_shown(walked)} is a link or not a folder: procsnap never follows "
                                         "links inside a recording") from None
                    raise
                os.close(fd)
                fd = nfd
                why = None if self.allow_shared else _unsafe(os.fstat(fd), own=True)
                if why:
                    raise _refuse(walked, why)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def partitions(self, table: str, strict: bool = False):
        """(host folder name, date folder name, path) of each partition folder of a table: real
        folders only, never through a link. A link or another user's folder there raises
        StoreError with STRICT (at the start), else is left alone and said once."""
        try:
            tfd = self.dir_fd(self.root / table)
        except FileNotFoundError:
            return
        except StoreError as e:
            if strict:
                raise
            self.say(str(e))
            return
        try:
            for hostname in sorted(os.listdir(tfd)):
                if not hostname.startswith("host="):
                    continue
                hostdir = self.root / table / hostname
                for datename in sorted(self.listdir(hostdir, strict)):
                    if not datename.startswith("date="):
                        continue
                    d = hostdir / datename
                    try:
                        os.close(self.dir_fd(d))
                    except FileNotFoundError:
                        continue
                    except StoreError as e:
                        if strict:
                            raise
                        self.say(str(e))
                        continue
                    yield hostname, datename, d
        finally:
            os.close(tfd)

    def listdir(self, d: Path, strict: bool = False) -> list[str]:
        """Names in the folder D of the recording; empty if it is missing (retention removes
        empty folders), a link or another user's (said once, unless STRICT: raised)."""
        try:
            fd = self.dir_fd(d)
        except FileNotFoundError:
            return []
        except StoreError as e:
            if strict:
                raise
            self.say(str(e))
            return []
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def lstat(self, p: Path) -> os.stat_result | None:
        """P's own status (a link's, never its target's); None when it is missing."""
        try:
            fd = self.dir_fd(p.parent)
        except FileNotFoundError:
            return None
        try:
            return os.lstat(p.name, dir_fd=fd)
        except FileNotFoundError:
            return None
        finally:
            os.close(fd)

    def open_read(self, p: Path):
        """P opened for reading as a binary file object: a regular file only, never through a
        link (OSError otherwise), without blocking on a FIFO someone put there."""
        fd = self.dir_fd(p.parent)
        try:
            ffd = os.open(p.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(ffd).st_mode):
            os.close(ffd)
            raise OSError(errno.EINVAL, "not a regular file", str(p))
        os.set_blocking(ffd, True)
        return os.fdopen(ffd, "rb")

    def _ours(self, fd: int, name: str) -> os.stat_result | None:
        """NAME's status in folder FD when it is a regular file of this user's (never a link):
        the only kind of entry the recorder removes or renames. Anything else is left alone and
        said once; a missing name gives None."""
        try:
            st = os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            return None
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
            return st
        what = "a link" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else \
            "a file of " + _user(st.st_uid) if stat.S_ISREG(st.st_mode) else "not a regular file"
        self.say(f"left alone: {_shown(self._where(fd, name))} is {what}, not a file procsnap wrote")
        return None

    def is_ours(self, p: Path) -> bool:
        """P is a regular file of this user's (not a link, not a folder named like a data file):
        one the recorder may read, rename or remove. Anything else is said once."""
        try:
            fd = self.dir_fd(p.parent)
        except FileNotFoundError:
            return False
        try:
            return self._ours(fd, p.name) is not None
        finally:
            os.close(fd)

    def _where(self, fd: int, name: str) -> str:
        try:
            return os.path.join(os.readlink(f"/proc/self/fd/{fd}"), name)
        except OSError:
            return name

    def remove(self, p: Path) -> int | None:
        """Delete P if it is a regular file of this user's with a name procsnap writes (a data,
        compacted or temporary file); returns the bytes it held on disk, None when nothing was
        removed. Anything else is left alone and said once."""
        n = p.name
        if not (file_range(n) or TEMP_NAME.match(n)):
            raise ValueError(f"{n}: not a name procsnap writes")
        try:
            fd = self.dir_fd(p.parent)
        except FileNotFoundError:
            return None
        except StoreError as e:
            self.say(str(e))
            return None
        try:
            st = self._ours(fd, n)
            if st is None:
                return None
            try:
                os.unlink(n, dir_fd=fd)
            except FileNotFoundError:
                return None
            return st.st_blocks * 512
        finally:
            os.close(fd)

    def rename(self, p: Path, new_name: str) -> bool:
        """Rename P (a regular file of this user's) to NEW_NAME in its folder; False, and P left
        alone, when it is anything else."""
        fd = self.dir_fd(p.parent)
        try:
            if self._ours(fd, p.name) is None:
                return False
            os.rename(p.name, new_name, src_dir_fd=fd, dst_dir_fd=fd)
            os.fsync(fd)
            return True
        finally:
            os.close(fd)

    def rmdir_empty(self, d: Path) -> int:
        """Remove the partition folder D and then its host= folder, each only if empty, this
        user's, and not a link; returns the bytes they held on disk."""
        freed = 0
        for p in (d, d.parent):
            if p == self.root or p.parent == self.root:
                break
            try:
                fd = self.dir_fd(p.parent)
            except (OSError, StoreError):
                break
            try:
                st = os.lstat(p.name, dir_fd=fd)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                    break
                os.rmdir(p.name, dir_fd=fd)
                freed += st.st_blocks * 512
            except OSError:
                break
            finally:
                os.close(fd)
        return freed

    def fsync_dir(self, d: Path) -> None:
        """Make the renames and removals in the folder D durable."""
        try:
            fd = self.dir_fd(d)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _create_temp(self, dfd: int, name: str) -> tuple[int, str]:
        """A new temporary file for NAME in the folder DFD: a fresh name, O_EXCL and O_NOFOLLOW
        (an existing entry, a link planted there included, is never opened)."""
        import secrets
        while True:
            tmp = f".{name}.{secrets.token_hex(4)}.tmp"
            try:
                return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                               dir_fd=dfd), tmp
            except FileExistsError:
                continue

    @contextmanager
    def atomic(self, final: Path):
        """Write FINAL whole or not at all: yields the descriptor of a new temporary file in
        FINAL's folder (created if missing, 0700); once the block is done it is fsync'ed,
        renamed over FINAL and the folder fsync'ed. On any failure it is removed again."""
        self._parts(final)
        dfd = self.dir_fd(final.parent, create=True)
        try:
            fd, tmp = self._create_temp(dfd, final.name)
            try:
                yield fd
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                _unlink_quiet(tmp, dfd)
                raise
            os.close(fd)
            try:
                os.rename(tmp, final.name, src_dir_fd=dfd, dst_dir_fd=dfd)
                os.fsync(dfd)
            except BaseException:
                _unlink_quiet(tmp, dfd)
                raise
        finally:
            os.close(dfd)

    # ------------------------------------------------------------------
    def _write_table(self, final: Path, table) -> int:
        with self.atomic(final) as fd:
            return write_parquet(fd, table, self.compression)

    def partition_dir(self, table: str, host: str, date) -> Path:
        return self.root / table / f"host={partition_value(host)}" / f"date={date.isoformat()}"

    def write(self, snap: SnapshotTables) -> int:
        """Write one snapshot; returns the bytes written. Commits last.

        If any file cannot be written, the files already written for this snapshot are
        removed again (it was never committed), so a failed write leaves the recording as
        it was; a full disk raises :class:`StoreFull`; a folder moved, swapped or turned
        unsafe while recording raises :class:`StoreError` before anything is written.
        """
        self.check()
        total = 0
        names = [t for t in snap.tables if t != "snapshots"] + ["snapshots"]
        done: list[Path] = []
        try:
            for name in names:
                final = self.partition_dir(name, snap.host, snap.date) / f"{snap.snapshot_id}.parquet"
                total += self._write_table(final, snap.tables[name])
                done.append(final)
        except OSError as e:
            for f in done:
                self.remove(f)
            if e.errno in FULL_ERRNOS:
                raise StoreFull(f"{_shown(self.root)}: {os.strerror(e.errno)}") from None
            raise StoreError(f"cannot write {_shown(final)}: {e.strerror or e}") from None
        except StoreError:
            for f in done:
                self.remove(f)
            raise
        return total

    def size(self) -> int:
        """Bytes the folder takes on disk (allocated blocks, as du counts them) with every file
        and folder in it: covered, temporary and foreign files included. Links are not followed."""
        total = 0
        for _, _, files, dfd in os.fwalk(".", dir_fd=self._dfd, follow_symlinks=False):
            total += os.fstat(dfd).st_blocks * 512
            for f in files:
                try:
                    total += os.lstat(f, dir_fd=dfd).st_blocks * 512
                except FileNotFoundError:
                    pass
        return total

    def add_skipped(self, host: str, date, sid: int, n: int) -> None:
        """Count N more skipped slots on the committed snapshot SID (the slots a duration's end
        skipped have no next snapshot to carry them): the ``snapshots`` file that shows its row,
        its own or a compacted one, is rewritten whole (tmp, fsync, rename: readers see the old
        file or the new one)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        d = self.partition_dir("snapshots", host, date)
        visible, _ = select_visible(self.listdir(d))
        name = next((v for v in visible if (r := file_range(v)) and r[0] <= sid <= r[1]), None)
        if name is None:
            return
        with self.open_read(d / name) as f:
            t = pq.ParquetFile(f).read(use_threads=False)
        i = t.schema.get_field_index("skipped")
        col = t.column(i)
        t = t.set_column(i, t.schema.field(i), pc.if_else(pc.equal(t.column("snapshot_id"), sid),
                                                            pc.add(col, n).cast(col.type), col))
        self._write_table(d / name, t)

    # ------------------------------------------------------------------
    # The operator's files in the folder

    def has_file(self, name: str) -> bool:
        """A regular file NAME (not a link) is in the folder."""
        try:
            return stat.S_ISREG(os.lstat(name, dir_fd=self._dfd).st_mode)
        except FileNotFoundError:
            return False

    def take_file(self, name: str, limit: int = 4096) -> str | None:
        """Read (up to LIMIT bytes) and remove the file NAME an operator put in the folder; None
        when there is none. Only a regular file is read and removed, never through a link
        (anything else there is left alone and said once)."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self._dfd)
        except FileNotFoundError:
            return None
        except OSError as e:
            self.say(f"left alone: {_shown(self.root / name)} ({e.strerror}): not a regular file")
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.say(f"left alone: {_shown(self.root / name)} is not a regular file")
                return None
            text = os.read(fd, limit).decode(errors="replace")
        finally:
            os.close(fd)
        try:
            now = os.lstat(name, dir_fd=self._dfd)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                os.unlink(name, dir_fd=self._dfd)
        except FileNotFoundError:
            pass
        return text

    # ------------------------------------------------------------------
    def remove_uncommitted(self) -> int:
        """Delete temporary files and small data files of snapshots never committed.

        A snapshot is committed by its own ``snapshots`` file or by a compacted
        ``snapshots`` file whose range holds its id. Compacted data files are left to
        :func:`recorder.store.compact.recover`, which finishes or undoes an interrupted
        compaction or retention. Only regular files of this user's are removed.
        """
        committed: dict[str, set[int]] = {}
        ranges: dict[str, list[tuple[int, int]]] = {}
        for host, _, d in self.partitions("snapshots"):
            for n in self.listdir(d):
                r = file_range(n)
                if r is None:
                    continue
                if DATA_NAME.match(n):
                    committed.setdefault(host, set()).add(r[0])
                else:
                    ranges.setdefault(host, []).append(r)
        removed = 0
        for n in os.listdir(self._dfd):
            if TEMP_NAME.match(n) and self.remove(self.root / n) is not None:
                removed += 1
        for name in TABLES:
            for host, _, d in self.partitions(name):
                for n in self.listdir(d):
                    if TEMP_NAME.match(n):
                        removed += self.remove(d / n) is not None
                        continue
                    m = DATA_NAME.match(n)
                    if not m or name == "snapshots":
                        continue
                    sid = int(m.group(1))
                    if sid in committed.get(host, ()) or any(a <= sid <= b for a, b in ranges.get(host, ())):
                        continue
                    removed += self.remove(d / n) is not None
        return removed


def _unlink_quiet(name: str, dfd: int) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass

"""Recordings in S3-compatible object storage, through pyarrow's S3 filesystem (already a
dependency; it takes credentials, region and endpoint from the AWS SDK's usual environment
variables and files, e.g. AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, or the
URL's own options: ``s3://bucket/prefix?endpoint_override=host:9000&scheme=http``). Nothing of
them is written anywhere by procsnap.

A bucket prefix holds what a recording folder holds, table first
(``<table>/host=H/date=D/<file>``), so one prefix takes many hosts; what procsnap keeps for
itself and other engines is under ``_procsnap/`` (see recorder.store.layout), where
Hadoop-family readers do not look. ``procsnap ship`` fills it (analyze.commands.ship).

The analyzer reads such a recording through a local mirror (:func:`mirror`): the objects of the
hosts asked for (``--host`` lists only theirs) are listed, and fetched whole into a cache folder,
once, and again only when the bucket's copy changed; what the bucket no longer has is removed
from the mirror. The mirror is then read as any recording folder, with the same checks and the
same damaged-file handling: an object cut short reads as a truncated file.

A lazy mirror (what the commands but ``query`` take) fetches the ``snapshots`` objects at once
and every other object only when a command reads it (:func:`fetch_pending`, called as the
reader chooses its files): a command about one moment (``lsof``/``ps --at``) chooses the files
whose names can hold the moment's snapshots (and, for ps, the snapshot before), so it fetches
one day's and one host's of each table, not the fleet's. Until then an object is known by its
name only (:func:`pending_names`: the reader lists it with the mirror's own files); one that is
never read is never checked, so its damage is not named (it changes no answer).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from recorder.schema import TABLES
from recorder.store.layout import MARKER, META_DIR, partition_value

from analyze.errors import ProcsnapError, UsageError

SCHEME = "s3://"
MIRRORED: dict[str, str] = {}  # mirror folder -> the URL it mirrors (this process's)
HOSTS_DIR = META_DIR + "/hosts"  # each host's procsnap.json, as host=<h>.json
CHUNK = 1 << 20


def is_url(p: str) -> bool:
    return str(p).startswith(SCHEME)


def open_url(url: str):
    """(pyarrow filesystem, ``bucket/prefix`` without a trailing /) for an s3:// URL."""
    from pyarrow import fs as pafs
    import pyarrow as pa
    try:
        fs, path = pafs.FileSystem.from_uri(url)
    except (pa.ArrowInvalid, OSError, ValueError) as e:
        raise UsageError(f"{url}: not an S3 location procsnap can open ({str(e).splitlines()[0]})") from None
    path = path.rstrip("/")
    if not path:
        raise UsageError(f"{url}: name a bucket (s3://bucket/prefix)")
    return fs, path


def shown(source) -> str:
    """A recording as a command names it: the URL of a mirror, else its folder."""
    return MIRRORED.get(str(source), str(source))


def cache_dir() -> Path:
    """Where remote recordings are mirrored: $PROCSNAP_CACHE, else $XDG_CACHE_HOME/procsnap, else
    ~/.cache/procsnap."""
    env = os.environ.get("PROCSNAP_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "procsnap"


def _error(url: str, e: OSError) -> ProcsnapError:
    return ProcsnapError(f"{url}: {str(e).strip().splitlines()[0][:200]}")


def _listing(fs, base: str, hosts: list[str] | None) -> list:
    """The file infos under BASE: everything, or with HOSTS each table's folders of those hosts
    and their markers only (a listing per table and host, not of the whole fleet)."""
    from pyarrow import fs as pafs
    if not hosts:
        return fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    out = []
    for h in hosts:
        hostdir = "host=" + partition_value(h)
        for t in TABLES:
            out += fs.get_file_info(pafs.FileSelector(f"{base}/{t}/{hostdir}", recursive=True, allow_not_found=True))
        out += [i for i in fs.get_file_info([f"{base}/{HOSTS_DIR}/{hostdir}.json"]) if i.type == pafs.FileType.File]
    return out


EAGER = ("snapshots",)  # tables a lazy mirror fetches at once (every command resolves its moments in them)


class _Pending:
    """A lazy mirror's objects not fetched yet: by relative path, and the names under each folder."""

    def __init__(self, fs, base: str, url: str, objects: dict):
        self.fs, self.base, self.url, self.objects = fs, base, url, objects
        self.children: dict[str, set[str]] = {}
        for rel in objects:
            parts = rel.split("/")
            for i in range(len(parts)):
                self.children.setdefault("/".join(parts[:i]), set()).add(parts[i])


PENDING: dict[str, _Pending] = {}  # lazy mirror folder -> what it has not fetched yet


def _pending_of(path) -> tuple[_Pending, str] | tuple[None, None]:
    p = os.fspath(path)
    for root, pend in PENDING.items():
        if p == root:
            return pend, ""
        if p.startswith(root + "/"):
            return pend, p[len(root) + 1:]
    return None, None


def pending_names(folder) -> set[str]:
    """The names under FOLDER (of a lazy mirror) of objects not fetched yet: files, or folders
    holding some."""
    pend, rel = _pending_of(folder)
    return pend.children.get(rel, set()) if pend is not None else set()


def is_pending(path) -> bool:
    pend, rel = _pending_of(path)
    return pend is not None and rel in pend.objects


def fetch_pending(paths) -> None:
    """Fetch the objects of PATHS that a lazy mirror has not fetched yet: a command reads them."""
    for p in paths:
        pend, rel = _pending_of(p)
        if pend is None:
            continue
        info = pend.objects.pop(rel, None)
        if info is None:
            continue
        try:
            _fetch(pend.fs, info.path, Path(p), info)
        except FileNotFoundError:
            continue  # removed since listed: the reader finds it gone, as a local file removed meanwhile
        except OSError as e:
            raise _error(pend.url, e) from None


def mirror(url: str, hosts: list[str] | None = None, lazy: bool = False) -> Path:
    """The local mirror of the recording at URL (of HOSTS only, when given), brought up to date;
    LAZY: fetching only the ``snapshots`` objects now, the others as they are read."""
    from pyarrow import fs as pafs
    fs, base = open_url(url)
    root = cache_dir() / "s3" / _mirror_name(url, base)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    import fcntl
    with open(root / ".mirror.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one mirroring at a time per URL
        try:
            infos = _listing(fs, base, hosts)
        except OSError as e:
            raise _error(url, e) from None
        files = {i.path[len(base) + 1:]: i for i in infos if i.type == pafs.FileType.File}
        markers = []
        later = {}
        for rel, info in sorted(files.items()):
            if rel.startswith(META_DIR + "/"):
                if rel.startswith(HOSTS_DIR + "/") and info.size < (1 << 16):
                    markers.append(rel)
                continue
            local = root / rel
            if _fresh(local, info):
                continue
            if lazy and rel.split("/", 1)[0] not in EAGER:
                local.unlink(missing_ok=True)  # an outdated copy: fetched again if read
                later[rel] = info
                continue
            try:
                _fetch(fs, info.path, local, info)
            except FileNotFoundError:
                continue  # removed since listed (ship's removal after the grace period)
            except OSError as e:
                raise _error(url, e) from None
        _marker(fs, base, markers, root)
        _prune(root, {rel for rel in files if not rel.startswith(META_DIR + "/")}, hosts)
    if later:
        PENDING[str(root)] = _Pending(fs, base, url, later)
    else:
        PENDING.pop(str(root), None)
    MIRRORED[str(root)] = url
    if not (root / "snapshots").is_dir():
        which = f" of host {', '.join(hosts)}" if hosts else ""
        raise UsageError(f"{url}: no procsnap recording{which} there (no snapshots/ under it)")
    return root


def _mirror_name(url: str, base: str) -> str:
    """The mirror's folder under the cache: bucket/prefix (as damaged files are then named), and
    a hash of the URL's options when it has some (another endpoint is another bucket)."""
    if any(part in ("", ".", "..") for part in base.split("/")):
        raise UsageError(f"{url}: a prefix with an empty, . or .. part")
    if "?" in url:
        return f"{base}@{hashlib.sha256(url.encode()).hexdigest()[:8]}"
    return base


def _fresh(local: Path, info) -> bool:
    """The mirror's copy is the bucket's: same size, and not older than the object."""
    try:
        st = local.stat()
    except FileNotFoundError:
        return False
    return st.st_size == info.size and (info.mtime_ns is None or st.st_mtime_ns >= info.mtime_ns)


def _fetch(fs, path: str, local: Path, info) -> None:
    local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
    try:
        with fs.open_input_stream(path) as src, open(tmp, "wb") as dst:
            while True:
                b = src.read(CHUNK)
                if not b:
                    break
                dst.write(b)
        if info.mtime_ns is not None:
            os.utime(tmp, ns=(info.mtime_ns, info.mtime_ns))
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)


def _marker(fs, base: str, markers: list[str], root: Path) -> None:
    """The mirror's procsnap.json: the hosts' markers' newest format, so that a recording a newer
    procsnap shipped is said to be one."""
    best = None
    for rel in markers:
        try:
            with fs.open_input_stream(f"{base}/{rel}") as f:
                data = f.read()
            v = json.loads(data).get("version")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(v, int) and (best is None or v > best[0]):
            best = (v, data)
    m = root / MARKER
    if best is None:
        m.unlink(missing_ok=True)
    elif not m.is_file() or m.read_bytes() != best[1]:
        tmp = root / f".{MARKER}.tmp"
        tmp.write_bytes(best[1])
        os.replace(tmp, m)


def _prune(root: Path, keep: set[str], hosts: list[str] | None) -> None:
    """Remove from the mirror what the bucket no longer holds (of HOSTS' folders only, when given)."""
    scope = None if not hosts else {"host=" + partition_value(h) for h in hosts}
    for t in TABLES:
        tdir = root / t
        if not tdir.is_dir():
            continue
        for dirpath, _, names in os.walk(tdir):
            rel_dir = Path(dirpath).relative_to(root)
            if scope is not None and (len(rel_dir.parts) < 2 or rel_dir.parts[1] not in scope):
                continue
            for n in names:
                rel = (rel_dir / n).as_posix()
                if rel not in keep and not n.startswith("."):
                    (root / rel).unlink(missing_ok=True)


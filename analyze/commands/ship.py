"""``procsnap ship DIR s3://bucket/prefix``: a live recording copied to object storage, safely.

Each pass ships what procsnap itself would read (analyze.commands.manifest.live_files): committed
snapshots and committed compactions only, never a file still being written (those have
temporary names) nor a small file a compaction already covers. Within a pass the ``snapshots``
files go last, as the recorder renames them last: a reader of the bucket sees a snapshot or a
compaction only once all its files are there. Each host's manifest (``_procsnap/live``) and
marker (``_procsnap/hosts``) are written after the data. A file the recording no longer has
(merged by compaction, dropped by retention) is removed from the bucket once it has been gone
``grace`` seconds, ``snapshots`` files first, as the recorder does: a reader that listed it just
before can still read it.

What has been shipped is kept in a state file outside the recording
($XDG_STATE_HOME/procsnap/ship, or --state): a pass after a crash or an outage ships only what
is missing or changed. Objects are written whole or not at all (a multipart upload is completed
only at its end). The bucket is reached through pyarrow's S3 filesystem (analyze.data.remote):
credentials come from the AWS SDK's environment and files and are never written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from recorder.store.layout import LIVE_DIR, MARKER, live_name

from analyze.commands import manifest as M
from analyze.data.db import Recording
from analyze.data.remote import CHUNK, HOSTS_DIR, open_url
from analyze.errors import ProcsnapError, UsageError

SAVE_EVERY = 50  # uploads between two writes of the state file


class Throttle:
    """Holds a stream of bytes to RATE bytes a second (None: unbounded), by sleeping."""

    def __init__(self, rate: float | None, now=time.monotonic, sleep=time.sleep):
        self.rate, self.now, self.sleep = rate, now, sleep
        self.start = None
        self.sent = 0

    def __call__(self, n: int) -> None:
        if not self.rate:
            return
        if self.start is None:
            self.start = self.now()
        self.sent += n
        ahead = self.sent / self.rate - (self.now() - self.start)
        if ahead > 0:
            self.sleep(ahead)


def state_path(src: str, url: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    key = hashlib.sha256(f"{os.path.abspath(src)}\0{url}".encode()).hexdigest()[:16]
    return Path(base) / "procsnap" / "ship" / f"{key}.json"


class State:
    """What has been shipped: per path (relative to the recording), the (size, mtime_ns) of the
    copy in the bucket; and per path shipped but no longer in the recording, since when."""

    def __init__(self, path: Path):
        self.path = path
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            doc = {}
        except ValueError:
            raise ProcsnapError(f"{path}: not a state file of procsnap ship; remove it to ship everything again")
        self.shipped: dict[str, list[int]] = doc.get("shipped", {})
        self.gone: dict[str, float] = doc.get("gone", {})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"shipped": self.shipped, "gone": self.gone}))
        os.replace(tmp, self.path)


def upload_file(fs, local: Path, remote: str, throttle: Throttle) -> int:
    """Copy LOCAL to the object REMOTE; returns its size. The object appears only once whole."""
    n = 0
    with open(local, "rb") as f, fs.open_output_stream(remote) as out:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            throttle(len(b))
            out.write(b)
            n += len(b)
    return n


def _put(fs, remote: str, data: bytes) -> None:
    with fs.open_output_stream(remote) as out:
        out.write(data)


def ship_once(src: str, url: str, state: State, grace: float, throttle: Throttle, now=time.time,
              upload=upload_file, err=None) -> dict:
    """One pass (see the module); returns counts: shipped, bytes, removed, pending (removals)."""
    fs, base = open_url(url)
    rec = Recording.open([src], derived=False, err=err)
    live = M.live_files(rec)
    rec.con.close()
    if len(rec.sources) != 1:
        raise UsageError(f"{src}: a folder of {len(rec.sources)} recordings; ship one recording at a time")
    root = Path(rec.sources[0])
    want: dict[str, str] = {rel: table for rows in live.values() for table, rel in rows}
    out = {"shipped": 0, "bytes": 0, "removed": 0, "pending": 0}
    todo = []
    for rel, table in want.items():
        try:
            st = (root / rel).stat()
        except FileNotFoundError:
            continue  # removed since listed
        sig = [st.st_size, st.st_mtime_ns]
        if state.shipped.get(rel) != sig:
            todo.append((table == "snapshots", rel, sig))
    try:
        for i, (_, rel, sig) in enumerate(sorted(todo)):
            try:
                out["bytes"] += upload(fs, root / rel, f"{base}/{rel}", throttle)
            except FileNotFoundError:
                continue  # merged or dropped meanwhile: the next pass sees what replaced it
            state.shipped[rel] = sig
            state.gone.pop(rel, None)
            out["shipped"] += 1
            if i % SAVE_EVERY == SAVE_EVERY - 1:
                state.save()
        marker = root / MARKER
        for (_, hostdir), rows in live.items():
            if marker.is_file():
                _put(fs, f"{base}/{HOSTS_DIR}/{hostdir}.json", marker.read_bytes())
            _put(fs, f"{base}/{LIVE_DIR}/{live_name(hostdir)}",
                 M.text([r for r in rows if r[1] in state.shipped]).encode())
        t = now()
        for rel in list(state.shipped):
            if rel not in want:
                state.gone.setdefault(rel, t)
        due = sorted((not rel.startswith("snapshots/"), rel) for rel, since in state.gone.items() if t - since >= grace)
        for _, rel in due:
            try:
                fs.delete_file(f"{base}/{rel}")
            except FileNotFoundError:
                pass
            state.shipped.pop(rel, None)
            state.gone.pop(rel, None)
            out["removed"] += 1
        out["pending"] = len(state.gone)
    finally:
        state.save()
    return out


def run(src: str, url: str, state_file: str | None, grace: float, bwlimit: int | None, every: float | None,
        err) -> int:
    import fcntl
    path = Path(state_file) if state_file else state_path(src, url)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ProcsnapError(f"another procsnap ship uses {path}") from None
        while True:
            try:
                n = ship_once(src, url, State(path), grace, Throttle(bwlimit), err=err)
            except OSError as e:  # the bucket unreachable: what was shipped is kept, the next pass resumes
                if every is None:
                    raise ProcsnapError(f"{url}: {str(e).strip().splitlines()[0][:200]} (run again to resume)") from None
                err.write(f"procsnap: {url}: {str(e).strip().splitlines()[0][:200]}; retrying in {every:g}s\n")
            else:
                err.write(f"procsnap: shipped {n['shipped']} files ({n['bytes']} bytes), removed {n['removed']}, "
                          f"{n['pending']} to remove after the grace period\n")
            err.flush()
            if every is None:
                return 0
            time.sleep(every)

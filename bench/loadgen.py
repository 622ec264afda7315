#!/usr/bin/env python3
"""Load generator for procsnap benchmarks: many processes, descriptors and threads.

    python3 bench/loadgen.py -N PROCS -M FDS -K THREADS [--mix default|files|sockets]
                             [--burners B] [--leakers L] [--hold SECONDS]

Starts N processes, each holding about M open descriptors (counting its stdin,
stdout and stderr) and K threads (the main thread included), then prints a line
``ready`` followed by one line of JSON describing what is open, and holds
everything until SIGTERM/SIGINT/SIGHUP or until --hold seconds have passed.

The descriptors are a mix that differs from process to process (four profiles,
"web", "db", "worker" and "mixed", seeded by the process's index so runs are
repeatable): regular files read at an offset or open for writing, pipes, TCP
listeners and established connections over IPv4 and IPv6 (127.0.0.1 and ::1),
UDP sockets (some connected), unix sockets (path and abstract listeners,
connected pairs, socketpairs), epoll, eventfd, timerfd and inotify
descriptors (a_inode), directories, files deleted while open, and
files mapped with mmap (held as mappings, not as descriptors).

--mix files gives every process the "files" profile instead (about 70 % of
its descriptors regular files, a few sockets); --mix sockets the "sockets"
profile (about 80 % sockets: TCP listeners and established connections, UDP,
unix listeners, connections and socketpairs).

--burners B adds B processes that spin on the CPU (--burn-duty sets the busy
fraction of every 100 ms); --leakers L adds L processes that open one more
descriptor every 100 ms (up to their limit, then they close them all and start
again). Both are in addition to the N processes.

Cleanup, whatever happens:
- every child is a fork of this one prepared parent (no new interpreter per
  process) and sets PR_SET_PDEATHSIG = SIGKILL, so it dies with the parent,
  however the parent dies;
- all files live in one directory, <tmp-root>/run-<parent pid>-XXXX, removed
  when the parent exits normally or on a signal; a directory left by a parent
  that was SIGKILLed is removed by the next run (its pid is no longer a
  loadgen);
- only loopback addresses are used (127.0.0.1, ::1).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import mmap
import os
import random
import resource
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1
DEFAULT_TMP_ROOT = os.path.join(tempfile.gettempdir(), "procsnap-loadgen")
DATA_FILES = 8
DATA_SIZE = 256 * 1024
MARKER = "procsnap-loadgen"

_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, arg) -> None:
    _libc.prctl(option, arg, 0, 0, 0)


def set_name(name: str) -> None:
    """Set the calling thread's name (comm), at most 15 bytes."""
    prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]))


# --------------------------------------------------------------------------
# Stale directories

def _is_loadgen(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"loadgen" in f.read()
    except OSError:
        return False


def remove_stale(root: str) -> list[str]:
    """Remove run dirs under root whose owning parent is no longer running."""
    removed = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return removed
    for name in names:
        parts = name.split("-")
        if len(parts) < 3 or parts[0] != "run" or not parts[1].isdigit():
            continue
        if int(parts[1]) != os.getpid() and _is_loadgen(int(parts[1])):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        removed.append(name)
    return removed


# --------------------------------------------------------------------------
# One child's descriptors

PROFILES = {
    # category: weight
    "web": {"tcp4_conn": 6, "tcp6_conn": 3, "tcp4_listen": 1, "tcp6_listen": 1, "unix_conn": 2,
            "file_read": 3, "file_write": 2, "pipe": 1, "epoll": 1, "eventfd": 1, "udp4": 1},
    "db": {"file_read": 8, "file_rdwr": 4, "file_write": 3, "deleted": 3, "dir": 1, "unix_listen": 1,
           "unix_conn": 2, "tcp4_listen": 1, "tcp4_conn": 2, "pipe": 1, "eventfd": 1},
    "worker": {"pipe": 5, "socketpair": 4, "eventfd": 3, "epoll": 2, "timerfd": 2, "udp4": 2,
               "udp6": 1, "file_read": 2, "file_write": 1, "inotify": 1, "deleted": 1},
    "mixed": {"file_read": 3, "file_rdwr": 1, "file_write": 2, "pipe": 2, "tcp4_listen": 1, "tcp6_listen": 1,
              "tcp4_conn": 2, "tcp6_conn": 2, "udp4": 1, "udp6": 1, "unix_listen": 1, "unix_abstract": 1,
              "unix_conn": 1, "socketpair": 2, "epoll": 1, "eventfd": 1, "timerfd": 1, "inotify": 1,
              "deleted": 2, "dir": 1},
}
PROFILES.update({
    # about 70 % of the descriptors regular files (read, read-write, appended logs, deleted while open),
    # the rest stdio, pipes, eventfds, a directory and a few sockets
    "files": {"file_read": 40, "file_rdwr": 10, "file_write": 25, "deleted": 5, "dir": 1, "pipe": 1,
              "eventfd": 1, "tcp4_conn": 1, "udp4": 1},
    # about 80 % sockets (stdio included in the count): TCP listeners and established connections
    # over IPv4 and IPv6, UDP (some connected), unix listeners (path and abstract), connections and
    # socketpairs
    "sockets": {"tcp4_conn": 5, "tcp6_conn": 3, "tcp4_listen": 1, "tcp6_listen": 1, "udp4": 2, "udp6": 1,
                "unix_conn": 3, "unix_listen": 1, "unix_abstract": 1, "socketpair": 2, "pipe": 1,
                "file_read": 1, "eventfd": 1},
})
PROFILE_ORDER = ("web", "db", "worker", "mixed")
# --mix: the profiles the processes take in turn (by index)
MIXES = {"default": PROFILE_ORDER, "files": ("files",), "sockets": ("sockets",)}
MMAPS = {"web": 1, "db": 3, "worker": 1, "mixed": 2, "files": 3, "sockets": 1}


class Holder:
    """Opens descriptors for one child and keeps every object alive."""

    def __init__(self, index: int, run_dir: str, data_files: list[str], rng: random.Random):
        self.index = index
        self.run_dir = run_dir
        self.data = data_files
        self.rng = rng
        self.keep: list = []
        self.count = 0  # descriptors opened (not counting stdio)
        self.mix: dict[str, int] = {}
        self.listeners: dict[int, socket.socket] = {}
        self.unix_listener: socket.socket | None = None
        self.seq = 0

    def _add(self, cat: str, *objs, fds: int = 1) -> None:
        self.keep.extend(objs)
        self.count += fds
        self.mix[cat] = self.mix.get(cat, 0) + fds

    def _path(self, kind: str) -> str:
        self.seq += 1
        return os.path.join(self.run_dir, f"{kind}-{self.index}-{self.seq}")

    # each opener returns the number of descriptors it opened
    def file_read(self) -> None:
        fd = os.open(self.rng.choice(self.data), os.O_RDONLY | os.O_CLOEXEC)
        os.lseek(fd, self.rng.randrange(0, DATA_SIZE, 512), os.SEEK_SET)
        os.read(fd, 512)
        self._add("file_read", fd)

    def file_rdwr(self) -> None:
        fd = os.open(self.rng.choice(self.data), os.O_RDWR | os.O_CLOEXEC)
        os.lseek(fd, self.rng.randrange(0, DATA_SIZE, 4096), os.SEEK_SET)
        self._add("file_rdwr", fd)

    def file_write(self) -> None:
        fd = os.open(self._path("w") + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.write(fd, b"log line\n" * self.rng.randint(1, 50))
        self._add("file_write", fd)

    def deleted(self) -> None:
        path = self._path("d") + ".tmp"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.unlink(path)
        os.write(fd, b"\0" * self.rng.randint(1, 8192))
        self._add("deleted", fd)

    def dir(self) -> None:
        self._add("dir", os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))

    def pipe(self) -> None:
        r, w = os.pipe2(os.O_CLOEXEC)
        os.write(w, b"x" * self.rng.randint(0, 100))
        self._add("pipe", r, w, fds=2)

    def _listener(self, family: int, cat: str) -> socket.socket:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        s.listen(128)
        self._add(cat, s)
        return s

    def tcp4_listen(self) -> None:
        self.listeners.setdefault(socket.AF_INET, self._listener(socket.AF_INET, "tcp4_listen"))

    def tcp6_listen(self) -> None:
        self.listeners.setdefault(socket.AF_INET6, self._listener(socket.AF_INET6, "tcp6_listen"))

    def _conn(self, family: int, cat: str) -> None:
        lst = self.listeners.get(family)
        if lst is None:
            lst = self.listeners[family] = self._listener(family, cat.replace("conn", "listen"))
        c = socket.create_connection(lst.getsockname()[:2])
        s, _ = lst.accept()
        c.sendall(b"hello")  # some bytes in flight: non-zero Recv-Q on one end
        self._add(cat, c, s, fds=2)

    def tcp4_conn(self) -> None:
        self._conn(socket.AF_INET, "tcp4_conn")

    def tcp6_conn(self) -> None:
        self._conn(socket.AF_INET6, "tcp6_conn")

    def _udp(self, family: int, cat: str) -> None:
        host = "127.0.0.1" if family == socket.AF_INET else "::1"
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, 0))
        if self.rng.random() < 0.5:
            s.connect(s.getsockname()[:2])  # connected UDP: has a peer in ss
        self._add(cat, s)

    def udp4(self) -> None:
        self._udp(socket.AF_INET, "udp4")

    def udp6(self) -> None:
        self._udp(socket.AF_INET6, "udp6")

    def unix_listen(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self._path("u") + ".sock")
        s.listen(64)
        self._add("unix_listen", s)
        if self.unix_listener is None:
            self.unix_listener = s
        return s

    def unix_abstract(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(f"\0{MARKER}-{os.getpid()}-{self.seq}")
        self.seq += 1
        s.listen(16)
        self._add("unix_abstract", s)

    def unix_conn(self) -> None:
        lst = self.unix_listener or self.unix_listen()
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(lst.getsockname())
        s, _ = lst.accept()
        self._add("unix_conn", c, s, fds=2)

    def socketpair(self) -> None:
        kind = socket.SOCK_STREAM if self.rng.random() < 0.7 else socket.SOCK_DGRAM
        a, b = socket.socketpair(socket.AF_UNIX, kind)
        self._add("socketpair", a, b, fds=2)

    def epoll(self) -> None:
        ep = select.epoll()
        for obj in self.keep[-3:]:
            try:
                ep.register(obj, select.EPOLLIN)
            except (OSError, ValueError, TypeError):
                pass
        self._add("epoll", ep)

    def eventfd(self) -> None:
        fd = os.eventfd(0, os.EFD_CLOEXEC)
        self._add("eventfd", fd)

    def timerfd(self) -> None:
        fd = _libc.timerfd_create(1, 0o2000000)  # CLOCK_MONOTONIC, TFD_CLOEXEC
        if fd < 0:
            return self.eventfd()
        self._add("timerfd", fd)

    def inotify(self) -> None:
        fd = _libc.inotify_init1(0o2000000)  # IN_CLOEXEC
        if fd < 0:
            return self.eventfd()
        _libc.inotify_add_watch(fd, self.run_dir.encode(), 0x100 | 0x200)  # IN_CREATE | IN_DELETE
        self._add("inotify", fd)

    def fill(self, profile: str, target: int) -> None:
        weights = PROFILES[profile]
        cats = list(weights)
        w = [weights[c] for c in cats]
        # every category of the profile once while the budget allows, then weighted
        order = cats[:]
        self.rng.shuffle(order)
        for cat in order:
            if self.count + 3 >= target:
                break
            getattr(self, cat)()
        while self.count + 3 < target:
            getattr(self, self.rng.choices(cats, w)[0])()

    def maps(self, n: int) -> None:
        for _ in range(n):
            with open(self.rng.choice(self.data), "rb") as f:
                m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            m[self.rng.randrange(DATA_SIZE)]  # touch one page
            self.keep.append(m)
            self.mix["mmap"] = self.mix.get("mmap", 0) + 1


# --------------------------------------------------------------------------
# Children

def _sleeper(name: str) -> None:
    set_name(name)
    while True:
        time.sleep(3600)


def _start_threads(k: int, base: str) -> None:
    threading.stack_size(256 * 1024)
    for t in range(1, k):
        threading.Thread(target=_sleeper, args=(f"{base}-t{t}",), daemon=True).start()


def _count_fds() -> int:
    return len(os.listdir("/proc/self/fd")) - 1  # minus listdir's own descriptor


def child(kind: str, index: int, args, run_dir: str, data: list[str], ready_w: int, parent: int) -> None:
    """Runs in the forked child; never returns (os._exit)."""
    code = 0
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # parent died before prctl
            os._exit(1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        gc.disable()  # keep copy-on-write pages shared
        # drop whatever descriptors the parent inherited from its own parent
        os.closerange(3, ready_w)
        os.closerange(ready_w + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        rng = random.Random(args.seed * 1_000_003 + index)
        profiles = MIXES[args.mix]
        profile = profiles[index % len(profiles)] if kind == "proc" else kind
        set_name(f"lg-{profile}-{index}")
        h = Holder(index, run_dir, data, rng)
        info: dict = {"pid": os.getpid(), "kind": kind, "profile": profile}
        if kind == "proc":
            h.fill(profile, args.fds)
            h.maps(MMAPS[profile])
            _start_threads(args.threads, f"lg{index}")
        info["fds"] = _count_fds() - 1  # minus the ready pipe, closed below
        info["threads"] = len(os.listdir("/proc/self/task"))
        info["mix"] = h.mix
        msg = (json.dumps(info, separators=(",", ":")) + "\n").encode()
        os.write(ready_w, msg)  # well under PIPE_BUF: one atomic write
        os.close(ready_w)
        os.dup2(0, 2)  # stderr to /dev/null once set up
        if kind == "burner":
            busy = max(0.0, min(1.0, args.burn_duty)) * 0.1
            x = 0
            while True:
                end = time.monotonic() + busy
                while time.monotonic() < end:
                    x += 1
                if busy < 0.1:
                    time.sleep(0.1 - busy)
        elif kind == "leaker":
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            leaked: list[int] = []
            while True:
                time.sleep(0.1)
                if _count_fds() >= soft - 8:
                    for fd in leaked:
                        os.close(fd)
                    leaked.clear()
                leaked.append(os.open(rng.choice(data), os.O_RDONLY))
        else:
            while True:
                signal.pause()
    except BaseException as e:  # report, never fall back into the parent's code
        try:
            os.write(ready_w, (json.dumps({"pid": os.getpid(), "error": repr(e)[:400]}) + "\n").encode())
        except OSError:
            pass
        code = 1
    finally:
        os._exit(code)


# --------------------------------------------------------------------------
# Parent

class Parent:
    def __init__(self, args):
        self.args = args
        self.children: list[int] = []
        self.run_dir: str | None = None
        self.done = False

    def cleanup(self) -> None:
        if self.done:
            return
        self.done = True
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut cleanup short
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            root = os.path.dirname(self.run_dir)
            if os.path.basename(root) == os.path.basename(DEFAULT_TMP_ROOT):
                try:
                    os.rmdir(root)  # the default root too, unless another run is using it
                except OSError:
                    pass

    def raise_nofile(self, need: int) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if need > hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
                return
            except (ValueError, OSError):
                need = hard
        if need > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    def run(self) -> int:
        a = self.args
        os.makedirs(a.tmp_root, mode=0o700, exist_ok=True)
        stale = remove_stale(a.tmp_root)
        if stale:
            print(f"loadgen: removed stale {', '.join(stale)}", file=sys.stderr)
        self.run_dir = tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=a.tmp_root)
        self.raise_nofile(max(1024, a.fds + 64) if not a.leakers else max(4096, a.fds + 64))
        data = []
        for i in range(DATA_FILES):
            p = os.path.join(self.run_dir, f"data-{i}.bin")
            with open(p, "wb") as f:
                f.write(random.Random(i).randbytes(DATA_SIZE))
            data.append(p)

        ready_r, ready_w = os.pipe()
        os.set_inheritable(ready_w, False)
        me = os.getpid()
        gc.collect()
        gc.freeze()  # objects made so far are never touched by a child's GC
        t0 = time.monotonic()
        plan = [("proc", i) for i in range(a.procs)]
        plan += [("burner", a.procs + i) for i in range(a.burners)]
        plan += [("leaker", a.procs + a.burners + i) for i in range(a.leakers)]
        sys.stdout.flush()
        sys.stderr.flush()
        for kind, i in plan:
            pid = os.fork()
            if pid == 0:
                os.close(ready_r)
                child(kind, i, a, self.run_dir, data, ready_w, me)
            self.children.append(pid)
        os.close(ready_w)

        # collect one line per child
        infos, errors, buf = [], [], b""
        deadline = time.monotonic() + a.ready_timeout
        while len(infos) + len(errors) < len(plan):
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(infos)} of {len(plan)} children ready after {a.ready_timeout} s")
            r, _, _ = select.select([ready_r], [], [], 1.0)
            if not r:
                continue
            chunk = os.read(ready_r, 65536)
            if not chunk:
                break  # every child closed its end (some died)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                d = json.loads(line)
                (errors if "error" in d else infos).append(d)
        os.close(ready_r)
        if errors or len(infos) < len(plan):
            for e in errors[:5]:
                print(f"loadgen: child {e['pid']} failed: {e['error']}", file=sys.stderr)
            print(f"loadgen: {len(infos)} of {len(plan)} children ready", file=sys.stderr)
            return 1
        setup = time.monotonic() - t0

        procs = [d for d in infos if d["kind"] == "proc"]
        fds = [d["fds"] for d in procs]
        mix: dict[str, int] = {}
        for d in procs:
            for k, v in d["mix"].items():
                mix[k] = mix.get(k, 0) + v
        summary = {
            "parent_pid": me,
            "pids": [d["pid"] for d in procs],
            "burner_pids": [d["pid"] for d in infos if d["kind"] == "burner"],
            "leaker_pids": [d["pid"] for d in infos if d["kind"] == "leaker"],
            "procs": len(procs),
            "threads_per_proc": a.threads,
            "threads_total": sum(d["threads"] for d in procs),
            "fds_per_proc_target": a.fds,
            "total_fds": sum(d["fds"] for d in infos),
            "proc_fds_total": sum(fds),
            "proc_fds_min": min(fds) if fds else 0,
            "proc_fds_max": max(fds) if fds else 0,
            "mix": dict(sorted(mix.items())),
            "mix_name": a.mix,
            "profiles": {p: sum(1 for d in procs if d["profile"] == p) for p in MIXES[a.mix]},
            "tmpdir": self.run_dir,
            "setup_s": round(setup, 3),
        }
        print("ready", flush=True)
        print(json.dumps(summary, separators=(",", ":")), flush=True)

        end = time.monotonic() + a.hold if a.hold > 0 else None
        while end is None or time.monotonic() < end:
            time.sleep(1.0 if end is None else max(0.0, min(1.0, end - time.monotonic())))
            try:  # reap children that died unexpectedly
                while True:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        break
                    print(f"loadgen: child {pid} exited (status {status})", file=sys.stderr)
                    self.children.remove(pid)
            except ChildProcessError:
                pass
        return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-N", "--procs", type=int, required=True, help="processes holding descriptors")
    p.add_argument("-M", "--fds", type=int, required=True, help="descriptors per process, about (stdio included)")
    p.add_argument("-K", "--threads", type=int, required=True, help="threads per process, main thread included")
    p.add_argument("--burners", type=int, default=0, help="extra processes spinning on the CPU")
    p.add_argument("--burn-duty", type=float, default=1.0, help="busy fraction of each burner (0..1)")
    p.add_argument("--leakers", type=int, default=0, help="extra processes opening one more fd every 100 ms")
    p.add_argument("--hold", type=float, default=0, help="exit after this many seconds once ready (0: until signalled)")
    p.add_argument("--mix", choices=sorted(MIXES), default="default",
                   help="descriptor mix: default (profiles web, db, worker, mixed in turn), files (~70 %% regular "
                        "files), sockets (~80 %% TCP, UDP and unix sockets)")
    p.add_argument("--seed", type=int, default=1, help="seed of the per-process mix")
    p.add_argument("--tmp-root", default=DEFAULT_TMP_ROOT, help="where the run's temporary dir is made")
    p.add_argument("--ready-timeout", type=float, default=300, help="give up if not ready after this many seconds")
    a = p.parse_args(argv)
    if a.procs < 0 or a.fds < 3 or a.threads < 1:
        p.error("need N >= 0, M >= 3 and K >= 1")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    parent = Parent(args)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return parent.run()
    finally:
        if os.getpid() == parent_pid_holder[0]:
            parent.cleanup()


parent_pid_holder = [os.getpid()]

if __name__ == "__main__":
    set_name("lg-parent")
    sys.exit(main())

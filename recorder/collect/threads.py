"""The threads table: one row per thread of a process.

Read and parsed by the C module's thread_rows where it is built (a tree read otherwise, the tests'
fault injection, file by file with the C parsers); without it, by psutil, and the columns psutil
does not give are NULL (:data:`PSUTIL_NULL`).
"""

from __future__ import annotations

import datetime as dt

from recorder.collect.processes import CLK_TCK, STATE_LETTER, UTC, psutil_error, start_time
from recorder.source import procfs as P
from recorder.source.procfs import Denied, Gone, ProcFS

# The threads columns psutil does not give: NULL when psutil reads the threads.
PSUTIL_NULL = ("priority", "minflt", "majflt")


class ThreadReader:
    """Reads the thread rows of one process at a time."""

    def __init__(self, fs: ProcFS, native, boot_id: str | None):
        self.fs = fs
        self.native = native
        self.boot_id = boot_id
        self.one_call = native is not None and type(fs) is ProcFS
        # On the live /proc the threads' context switches come from taskstats where it answers
        # (thread_rows falls back to each thread's status file): the same counts, a cheaper read.
        self.taskstats = self.one_call and fs.root == "/proc"
        self._psutil = None
        if native is None:
            import psutil
            psutil.PROCFS_PATH = fs.root
            self._psutil = psutil

    def read(self, pid: int, btime: int, leader: tuple | None = None) -> tuple[list[dict], int, int]:
        """(rows, threads gone, threads denied) of process PID; raises Gone or Denied when its task
        folder cannot be listed. LEADER: the (voluntary, involuntary) context switches of the
        process row, read from /proc/PID/status, which prints the leader thread's own counts (not
        the sum over threads): its thread's status is then not read again."""
        batch, gone, denied = self.read_batch(pid, leader)
        if self._psutil is not None:
            return batch, gone, denied
        cols = self.columns([(pid, batch)], btime)
        names = list(cols)
        return [dict(zip(names, r)) for r in zip(*cols.values())], gone, denied

    def read_batch(self, pid: int, leader: tuple | None = None) -> tuple[list, int, int]:
        """read()'s answer as :meth:`columns` takes it: the C module's Thread per thread (psutil's
        rows where psutil reads), with the same errors and counts."""
        if self._psutil is not None:
            return self._read_psutil(pid)
        if self.one_call:
            path = self.fs.path(pid, "task")
            extra = (-1, None, None) if leader is None else (pid, *leader)
            if self.taskstats:
                extra += (pid,)
            got = self.native.thread_rows(path, None, *extra)
            if got is None:  # the folder did not open: listed here, to meet the error
                got = self.native.thread_rows(path, self.fs.listdir(pid, "task"), *extra)
            return got
        return self._read_files(pid, leader)

    def columns(self, batches: list[tuple[int, list]], btime: int) -> dict[str, list] | list[dict]:
        """The threads table's columns (as collect.tables.to_table takes them) of (pid, batch)
        pairs from :meth:`read_batch`: no Python object per row but the C module's Thread; each
        distinct start time is converted once. Where psutil reads, its rows."""
        if self._psutil is not None:
            return [r for _, rows in batches for r in rows]
        pids: list[int] = []
        threads: list = []
        for pid, batch in batches:
            pids += [pid] * len(batch)
            threads += batch
        if not threads:
            return {"pid": []}
        (tid, comm, state, priority, nice, processor, utime, stime, minflt, majflt, starttime, vol,
         invol) = zip(*threads)
        try:  # split_text's answer where every name is UTF-8, as they nearly always are
            name, name_raw = [c.decode() for c in comm], [None] * len(comm)
        except UnicodeDecodeError:
            name, name_raw = zip(*map(P.split_text, comm))
        starts = {s: start_time(btime, s) for s in set(starttime)}
        return {
            "boot_id": [self.boot_id] * len(tid),
            "pid": pids,
            "tid": tid,
            "start_time": list(map(starts.__getitem__, starttime)),
            "name": name,
            "name_raw": name_raw,
            "state": state,
            "nice": nice,
            "priority": priority,
            "processor": processor,
            "utime": [u / CLK_TCK for u in utime],
            "stime": [u / CLK_TCK for u in stime],
            "minflt": minflt,
            "majflt": majflt,
            "ctxsw_voluntary": vol,
            "ctxsw_involuntary": invol,
        }

    def _read_files(self, pid: int, leader: tuple | None) -> tuple[list, int, int]:
        """thread_rows' answer, a file at a time through the ProcFS's methods and the C parsers."""
        fs, nat = self.fs, self.native
        threads = []
        gone = denied = 0
        for tid_s in fs.listdir(pid, "task"):
            tid = int(tid_s)
            try:
                st = nat.parse_stat(fs.read_one(pid, "task", tid, "stat"))
                if leader is not None and tid == pid:
                    vol, invol = leader
                else:
                    vol, invol = nat.status_ctxsw(fs.read_one(pid, "task", tid, "status"))
            except (Gone, ValueError):
                gone += 1
                continue
            except Denied:
                denied += 1
                continue
            threads.append(nat.Thread((tid, st.comm, st.state, st.priority, st.nice, st.processor, st.utime,
                                       st.stime, st.minflt, st.majflt, st.starttime, vol, invol)))
        return threads, gone, denied

    def _read_psutil(self, pid: int) -> tuple[list[dict], int, int]:
        """read() through psutil: each thread read as psutil reads a process (/proc/TID)."""
        psutil = self._psutil
        try:
            threads = psutil.Process(pid).threads()
        except Exception as e:
            raise psutil_error(e) from None
        rows = []
        gone = denied = 0
        for t in threads:
            try:
                q = psutil.Process(t.id)
                with q.oneshot():
                    name, name_raw = P.split_text(q.name().encode("utf-8", "surrogateescape"))
                    row = {
                        **dict.fromkeys(PSUTIL_NULL),
                        "boot_id": self.boot_id,
                        "pid": pid,
                        "tid": t.id,
                        "start_time": dt.datetime.fromtimestamp(q.create_time(), UTC),
                        "name": name,
                        "name_raw": name_raw,
                        "state": STATE_LETTER.get(q.status(), "?"),
                        "nice": q.nice(),
                        "processor": q.cpu_num(),
                        "utime": t.user_time,
                        "stime": t.system_time,
                    }
                    row["ctxsw_voluntary"], row["ctxsw_involuntary"] = q.num_ctx_switches()
            except Exception as e:
                if isinstance(psutil_error(e), Denied):
                    denied += 1
                else:
                    gone += 1
                continue
            rows.append(row)
        return rows, gone, denied


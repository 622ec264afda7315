"""procsnap's descriptors and sockets against the real lsof and ss, same host, same moment.

A workload process (tests/support/fdworkload.py) holds a TCP listener, an established
pair, a UDP socket, an IPv6 listener, a unix listener, a pipe, a file read at a
known offset, a file open for writing, a deleted file and a file with an odd
name. We snapshot it and compare with `lsof -n -P -K i` and `ss -tunapx`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.collect.collector import Collector
from recorder.source.native import native

from tests.support.host import dedicated_user

HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.live, pytest.mark.tools("lsof", "ss")]


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fdwork")
    p = subprocess.Popen([sys.executable, str(HERE / "support" / "fdworkload.py"), str(tmp)], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(p.stdout.readline())
        info["tmp"] = str(tmp)
        yield info
    finally:
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def snap(workload):
    return Collector(tables=("processes", "open_files", "sockets")).snapshot()


def lsof_fields(*args):
    """Parse `lsof -F` output into a list of per-file dicts (with the pid)."""
    out = subprocess.run(["lsof", "-n", "-P", "-K", "i", "-F", "pcfatDoinTP", *args],
                         capture_output=True, text=True, errors="surrogateescape").stdout
    files, pid, cur = [], None, None
    for line in out.splitlines():
        if not line:
            continue
        k, v = line[0], line[1:]
        if k == "p":
            pid = int(v)
        elif k == "f":
            cur = {"pid": pid, "f": v}
            files.append(cur)
        elif k == "T" and cur is not None:
            key, _, val = v.partition("=")
            cur["T" + key] = val
        elif cur is not None:
            cur[k] = v
    return files


def ours(snap, pid):
    return [r for r in snap.tables["open_files"].to_pylist() if r["pid"] == pid]


def lsof_key(f):
    """(FD, TYPE, NAME) as lsof's normal output prints them (-F keeps the TCP
    and unix state apart, in the T field)."""
    fd = f["f"] + (f.get("a", "").strip() if f["f"].isdigit() else "")
    name = f.get("n", "").rstrip()
    if "TST" in f and (f.get("t") == "unix" or f.get("P") == "TCP"):
        name += f" ({f['TST']})"
    return (fd, f.get("t", ""), name)


def our_key(r):
    from analyze.output import escape
    name = r["name_raw"].decode("utf-8", "backslashreplace") if r["name_raw"] is not None else r["name"]
    return ((r["fd"] + (r["mode"] or "")) if r["fd_num"] is not None else r["fd"], r["type"], escape(name))


def test_every_descriptor_matches_lsof(workload, snap):
    pid = workload["pid"]
    theirs = {lsof_key(f) for f in lsof_fields("-p", str(pid))}
    mine = {our_key(r) for r in ours(snap, pid)}
    assert mine == theirs
    # the known descriptors are there, with lsof's text
    fds = workload["fds"]
    by_fd = {r["fd_num"]: r for r in ours(snap, pid) if r["fd_num"] is not None}
    p = workload["tcp_port"]
    assert by_fd[fds["listen"]]["name"] == f"127.0.0.1:{p} (LISTEN)"
    assert by_fd[fds["client"]]["name"] == f"127.0.0.1:{workload['client_port']}->127.0.0.1:{p} (ESTABLISHED)"
    assert by_fd[fds["listen6"]]["name"] == f"[::1]:{workload['tcp6_port']} (LISTEN)"
    assert by_fd[fds["udp"]]["name"] == f"127.0.0.1:{workload['udp_port']}" and by_fd[fds["udp"]]["proto"] == "UDP"
    assert by_fd[fds["unix"]]["name"] == f"{workload['unix_path']} type=STREAM (LISTEN)"
    assert (by_fd[fds["pipe_r"]]["type"], by_fd[fds["pipe_r"]]["mode"]) == ("FIFO", "r")
    assert by_fd[fds["pipe_w"]]["mode"] == "w" and by_fd[fds["odd"]]["mode"] == "u"
    assert by_fd[fds["deleted"]]["deleted"] is True and by_fd[fds["deleted"]]["name"].endswith(" (deleted)")
    odd = by_fd[fds["odd"]]
    assert odd["name_raw"] == os.path.join(os.fsencode(workload["tmp"]), b"odd name\n\xff.txt")
    cwd = next(r for r in ours(snap, pid) if r["fd"] == "cwd")
    assert cwd["name"] == workload["tmp"] and cwd["type"] == "DIR"


def test_offsets_match_lsof(workload, snap):
    pid = workload["pid"]
    theirs = {f["f"]: f["o"] for f in lsof_fields("-o", "-p", str(pid)) if f["f"].isdigit() and "o" in f}
    mine = {r["fd"]: r["pos"] for r in ours(snap, pid) if r["fd_num"] is not None and r["pos"] is not None}
    assert theirs and set(mine) <= set(theirs)
    for fd, pos in mine.items():
        assert theirs[fd] == f"0t{pos}", fd
    fds = workload["fds"]
    assert mine[str(fds["read"])] == 1234
    if native is None:  # psutil's open_files lists no deleted file: its offset is NULL without C
        assert mine[str(fds["write"])] == 100 and str(fds["deleted"]) not in mine
    else:
        assert mine[str(fds["write"])] == 100 and mine[str(fds["deleted"])] == 77


def test_sizes_devices_and_inodes_match_lsof(workload, snap):
    pid = workload["pid"]
    theirs = {lsof_key(f)[:1] + (f["t"],): f for f in lsof_fields("-p", str(pid))}
    for r in ours(snap, pid):
        if r["type"] in ("REG", "DIR", "FIFO") and r["inode"] is not None:
            t = theirs[(our_key(r)[0], r["type"])] if r["fd"] not in ("mem", "DEL") else None
            if t is None:
                continue
            assert int(t["i"]) == r["inode"], r
            major, minor = (int(x) for x in r["device"].split(","))
            assert int(t["D"], 16) == os.makedev(major, minor), r


SS_STATE = {"ESTAB": "ESTABLISHED", "LISTEN": "LISTEN", "UNCONN": "UNCONN", "CLOSE-WAIT": "CLOSE_WAIT",
            "TIME-WAIT": "TIME_WAIT", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV"}
SS_NETID = {"u_str": ("unix", "STREAM"), "u_dgr": ("unix", "DGRAM"), "u_seq": ("unix", "SEQPACKET"),
            "tcp": ("inet", "TCP"), "udp": ("inet", "UDP")}


def test_sockets_match_ss(workload, snap):
    pid = workload["pid"]
    out = subprocess.run(["ss", "-tunapxH"], capture_output=True, text=True).stdout
    theirs = set()
    for line in out.splitlines():
        m = re.search(rf'pid={pid},fd=(\d+)', line)
        if not m:
            continue
        f = line.split()
        netid, state = f[0], SS_STATE.get(f[1], f[1])
        fam, proto = SS_NETID[netid]
        local = f[4]
        port = int(local.rsplit(":", 1)[1]) if fam == "inet" else None
        theirs.add((int(m.group(1)), proto, state, port))
    mine = set()
    for s in snap.tables["sockets"].to_pylist():
        if s["pid"] != pid:
            continue
        proto = s["proto"] if s["family"] in ("IPv4", "IPv6") else s["sock_type"]
        mine.add((s["fd"], proto, s["state"], s["local_port"]))
    assert mine == theirs and len(mine) == 6


def test_a_shared_socket_appears_for_each_owner_and_unowned_ones_are_kept():
    import socket
    import time
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    port = lst.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=[lst.fileno()])
    # a TIME_WAIT socket: the side that closes first keeps it
    c = socket.create_connection(("127.0.0.1", port))
    a, _ = lst.accept()
    a.close()
    time.sleep(0.05)
    c.close()
    try:
        snap = Collector(tables=("processes", "open_files", "sockets")).snapshot()
        # by inode: another process may listen on the same port number on another address
        inode = os.fstat(lst.fileno()).st_ino
        rows = [s for s in snap.tables["sockets"].to_pylist() if s["inode"] == inode]
        assert all(r["local_port"] == port and r["state"] == "LISTEN" for r in rows)
        assert {r["pid"] for r in rows} == {os.getpid(), child.pid}
        tw = [s for s in snap.tables["sockets"].to_pylist() if s["state"] == "TIME_WAIT" and port in
              (s["local_port"], s["remote_port"])]
        # the kernel gives them inode 0; without C psutil gives no inode, and they have no owner to take one from
        assert tw and all(s["pid"] is None and s["inode"] == (0 if native is not None else None) for s in tw)
    finally:
        child.kill()
        child.wait()
        lst.close()


def test_pid1_denied_rows_match_lsof():
    # pid 1 opens and closes descriptors as it serves (here: the sandbox's
    # agent), so read both tools back to back and allow a few tries.
    for _ in range(5):
        snap = Collector(tables=("processes", "open_files")).snapshot()
        theirs = {lsof_key(f) for f in lsof_fields("-p", "1")}
        mine = {our_key(r) for r in ours(snap, 1)}
        if mine == theirs:
            break
    if not any(t[1] == "unknown" for t in theirs):
        pytest.skip("pid 1 is readable on this host")
    assert mine == theirs


def test_socket_tables_longer_than_a_page_are_read_whole():
    """/proc/net/tcp comes a page at a time; every socket must still resolve."""
    import socket
    socks = []
    try:
        for _ in range(300):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen()
            socks.append(s)
        snap = Collector(tables=("processes", "open_files", "sockets")).snapshot()
        mine = [r for r in ours(snap, os.getpid()) if r["fd_num"] in {s.fileno() for s in socks}]
        assert len(mine) == 300
        assert {r["type"] for r in mine} == {"IPv4"} and all(r["name"].endswith("(LISTEN)") for r in mine)
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------
# Each example of lsof's introduction, live, against the real lsof.

def lsof_pids(*args):
    p = subprocess.run(["lsof", "-n", "-P", "-t", *args], capture_output=True, text=True)
    return {int(x) for x in p.stdout.split()}, p.returncode


def procsnap_pids(*args):
    from tests.conftest import run_cli
    p = run_cli("lsof", "-t", *args)
    assert "Traceback" not in p.stderr
    return {int(x) for x in p.stdout.split()}, p.returncode


def same_pids(*args, stable=None):
    """Both tools' pids for the same options, restricted to processes that
    outlive the comparison (the tools themselves and pytest's helpers come
    and go); retried, since other processes on the host move too."""
    for _ in range(5):
        theirs, rc_t = lsof_pids(*args)
        mine, rc_m = procsnap_pids(*args)
        transient = {p for p in theirs ^ mine if not os.path.exists(f"/proc/{p}")}
        if (theirs - transient) == (mine - transient) and rc_t == rc_m:
            break
    assert mine - transient == theirs - transient and rc_m == rc_t
    return mine


@pytest.fixture(scope="module")
def other_user(workload):
    """A listener of ours running as a user made for this module alone: selecting by that user
    finds exactly it, whatever else runs on the host (as nobody or anyone)."""
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv")
    with dedicated_user() as pw:
        p = subprocess.Popen(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                              sys.executable, "-c",
                              "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen();"
                              "print(s.getsockname()[1], flush=True); time.sleep(120)"],
                             stdout=subprocess.PIPE, text=True, cwd="/run")
        port = int(p.stdout.readline())
        yield {"pid": p.pid, "port": port, "user": pw.pw_name}
        p.kill()
        p.wait()


def test_example_i(workload, other_user):
    pids = same_pids("-i")
    assert {workload["pid"], other_user["pid"]} <= pids


def test_example_i_port(workload):
    pids = same_pids("-i", f":{workload['tcp_port']}")
    assert pids == {workload["pid"]}


def test_example_i_tcp_port(workload):
    assert same_pids("-i", f"TCP:{workload['tcp_port']}") == {workload["pid"]}
    assert same_pids("-i", f"UDP:{workload['tcp_port']}") == set()
    same_pids("-i", "TCP:22")  # the seed's example, whatever this host runs on 22


def test_example_i_4_and_6(workload):
    assert workload["pid"] in same_pids("-i", "4")
    assert workload["pid"] in same_pids("-i", "6")
    assert same_pids("-i", f"6TCP:{workload['tcp_port']}") == set()


def test_example_i_listen(workload, other_user):
    both = f"{workload['pid']},{other_user['pid']}"
    assert same_pids("-i", "-sTCP:LISTEN", "-a", "-p", both) == {workload["pid"], other_user["pid"]}
    assert same_pids("-i", "-s", "TCP:LISTEN", "-a", "-p", both) == {workload["pid"], other_user["pid"]}
    assert same_pids("-i", "-sTCP:ESTABLISHED", "-a", "-p", both) == {workload["pid"]}


def test_example_p_1_full_listing():
    from tests.conftest import run_cli
    for _ in range(5):
        real = subprocess.run(["lsof", "-n", "-P", "-K", "i", "-p", "1"], capture_output=True, text=True).stdout
        mine = run_cli("lsof", "-p", "1").stdout
        if real == mine:
            break
    assert mine == real


def test_example_p_workload_full_listing(workload):
    from tests.conftest import run_cli
    pid = str(workload["pid"])
    real = subprocess.run(["lsof", "-n", "-P", "-K", "i", "-p", pid], capture_output=True, text=True,
                          errors="surrogateescape").stdout
    mine = run_cli("lsof", "-p", pid).stdout
    if native is None:  # without C a device's (and a deleted file's) offset is NULL: blank where lsof shows 0tN
        assert len(mine.splitlines()) == len(real.splitlines())
        for m, r in zip(mine.splitlines(), real.splitlines()):
            assert m == r or m == re.sub(r"0t\d+", lambda o: " " * len(o.group()), r), (m, r)
        return
    assert mine == real


def test_example_u(other_user):
    assert same_pids("-u", other_user["user"]) == {other_user["pid"]}


def test_example_i_u_is_an_or(workload, other_user):
    pids = same_pids("-i", "-u", other_user["user"])
    assert {workload["pid"], other_user["pid"]} <= pids
    assert same_pids("-a", "-i", "-u", other_user["user"]) == {other_user["pid"]}


def test_example_dir_argument(other_user):
    assert other_user["pid"] in same_pids("/run")

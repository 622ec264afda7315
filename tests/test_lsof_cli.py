"""procsnap lsof: lsof's options, selection, listing and exit status, on recordings we build.

The recording holds, on host h1, two snapshots 10 s apart (the second one has
lost the 8080 listener and gained a process), and one snapshot of host h2.
"""

import csv
import datetime as dt
import io
import json

import pytest

from analyze.commands import lsof as L
from analyze.data.db import Recording
from analyze.errors import UsageError
from recorder.collect.collector import Snapshot
from recorder.collect.tables import to_table as _to_table
from recorder.store.folder import Store

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)

ODD = b"/home/alice/odd\nname\xff.txt"


def proc(pid, name, user, uid, **kw):
    return {"pid": pid, "name": name, "user": user, "uid": uid, "ruid": uid, **kw}


def f(pid, fd, typ, name, mode=None, device="254,0", size=None, pos=None, inode=None, proto=None, deleted=False,
      name_raw=None):
    return {"pid": pid, "fd": str(fd), "fd_num": fd if isinstance(fd, int) else None, "mode": mode, "type": typ,
            "device": device, "size": size, "pos": pos, "inode": inode, "proto": proto, "name": name,
            "name_raw": name_raw, "deleted": deleted}


def sock(pid, fd, inode, family, proto=None, local=None, remote=None, state=None, unix_path=None):
    s = {"pid": pid, "fd": fd, "inode": inode, "family": family, "proto": proto, "state": state,
         "unix_path": unix_path}
    if local:
        s.update(local_addr=local[0], local_port=local[1])
    if remote:
        s.update(remote_addr=remote[0], remote_port=remote[1])
    return s


def inet(pid, fd, inode, typ, proto, name, local, remote=None, state=None):
    zero = "0.0.0.0" if typ == "IPv4" else "::"
    return (f(pid, fd, typ, name, mode="u", device=str(inode), pos=0, inode=inode, proto=proto),
            sock(pid, fd, inode, typ, proto, local, remote or (zero, 0), state))


def world(second=False):
    """Processes, open files and sockets of h1 (the first snapshot, or the second)."""
    procs = [proc(1, "systemd", "root", 0), proc(100, "web-server-proc", "www-data", 33),
             proc(200, "curl", "alice", 1000), proc(400, "sshd", "root", 0)]
    files = [
        f(1, "cwd", "DIR", "/", size=4096, inode=2), f(1, "rtd", "DIR", "/", size=4096, inode=2),
        f(1, "txt", "REG", "/usr/lib/systemd/systemd", size=91000, inode=11),
        f(1, 12, "unix", "/run/systemd/notify type=DGRAM (UNCONNECTED)", mode="u", device="0x00000000deadbeef",
          pos=0, inode=7001),
        # web-server-proc: its files, in the order the collector writes them (mem before DEL before fds)
        f(100, 7, "DIR", "/srv/www", mode="r", size=4096, inode=300),
        f(100, "cwd", "DIR", "/srv/www", size=4096, inode=300),
        f(100, "rtd", "DIR", "/", size=4096, inode=2),
        f(100, "txt", "REG", "/usr/sbin/websrv", size=1000, inode=12),
        f(100, "mem", "REG", "/usr/lib/x86_64-linux-gnu/libc.so.6", size=2000, inode=13),
        f(100, "DEL", "REG", "/memfd:jit", device="0,1", inode=14, deleted=True),
        f(100, 0, "CHR", "/dev/null", mode="r", device="1,3", pos=0, inode=3),
        f(100, 6, "REG", "/srv/www/logs/access.log", mode="w", size=12345, pos=12345, inode=301),
        f(100, 10, "REG", "/srv/www/index.html", mode="r", size=500, pos=100, inode=302),
        f(100, 11, "REG", "/srv/www/old.log (deleted)", mode="w", size=9, pos=9, inode=303, deleted=True),
        f(100, 12345, "CHR", "/dev/zero", mode="r", device="1,5", pos=123456789, inode=4),
        # curl
        f(200, "cwd", "DIR", "/home/alice", size=4096, inode=400),
        f(200, "rtd", "DIR", "/", size=4096, inode=2),
        f(200, "txt", "REG", "/usr/bin/curl", size=300, inode=15),
        f(200, 5, "unix", "/run/alice.sock type=STREAM (LISTEN)", mode="u", device="0x00000000cafef00d", pos=0,
          inode=6001),
        f(200, 6, "FIFO", "pipe", mode="r", device="0,15", pos=0, inode=6100),
        f(200, 7, "FIFO", "pipe", mode="w", device="0,15", pos=0, inode=6100),
        f(200, 8, "REG", ODD.decode("utf-8", "backslashreplace"), mode="u", size=7, pos=3, inode=401, name_raw=ODD),
        f(200, 9, "a_inode", "[eventpoll]", mode="u", device="0,16", size=0, inode=1039),
        # sshd: a process the recorder could not read
        f(400, "cwd", "unknown", "/proc/400/cwd (readlink: Permission denied)", device=None),
        f(400, 3, "unknown", "/proc/400/fd/3 (readlink: Permission denied)", device=None),
    ]
    socks = [sock(1, 12, 7001, "unix", state="UNCONNECTED", unix_path="/run/systemd/notify"),
             sock(200, 5, 6001, "unix", state="LISTEN", unix_path="/run/alice.sock")]
    pairs = [
        inet(200, 3, 5002, "IPv4", "TCP", "127.0.0.1:40000->127.0.0.1:8080 (ESTABLISHED)", ("127.0.0.1", 40000),
             ("127.0.0.1", 8080), "ESTABLISHED"),
        inet(200, 4, 5003, "IPv4", "UDP", "127.0.0.1:41000->127.0.0.53:53", ("127.0.0.1", 41000),
             ("127.0.0.53", 53), "ESTABLISHED"),
        inet(1, 14, 5004, "IPv6", "TCP", "*:22 (LISTEN)", ("::", 22), None, "LISTEN"),
        inet(1, 15, 5005, "IPv4", "UDP", "*:5353", ("0.0.0.0", 5353), None, "UNCONN"),
        inet(100, 5, 5006, "IPv6", "TCP", "[::1]:8443 (LISTEN)", ("::1", 8443), None, "LISTEN"),
    ]
    if not second:
        pairs += [
            inet(100, 3, 5000, "IPv4", "TCP", "127.0.0.1:8080 (LISTEN)", ("127.0.0.1", 8080), None, "LISTEN"),
            inet(100, 4, 5001, "IPv4", "TCP", "127.0.0.1:8080->127.0.0.1:40000 (ESTABLISHED)", ("127.0.0.1", 8080),
                 ("127.0.0.1", 40000), "ESTABLISHED"),
        ]
    else:
        procs.append(proc(500, "late", "alice", 1000))
        files.append(f(500, "cwd", "DIR", "/tmp", size=4096, inode=9))
    files += [p[0] for p in pairs]
    socks += [p[1] for p in pairs]
    return procs, files, socks


def h2():
    """A second host: a socket found through `sockets` by (pid, fd), one found by its inode
    only (an entry without owner), and one with no `sockets` row at all (its NAME is read)."""
    return ([proc(7, "redis-server", "redis", 999)],
            [f(7, 6, "IPv4", "*:6379 (LISTEN)", mode="u", device="8000", pos=0, inode=8000, proto="TCP"),
             f(7, 7, "IPv4", "10.0.0.1:9000->10.0.0.2:443 (CLOSE_WAIT)", mode="u", device="8001", pos=0,
               inode=8001, proto="TCP"),
             f(7, 8, "IPv6", "*:6380", mode="u", device="8002", pos=0, inode=8002, proto="TCP")],
            [sock(7, 6, 8000, "IPv4", "TCP", ("0.0.0.0", 6379), ("0.0.0.0", 0), "LISTEN"),
             sock(None, None, 8002, "IPv6", "TCP", ("::", 6380), ("::", 0), "LISTEN")])


def snapshot(i, procs, files, socks, host="h1"):
    ts = T0 + dt.timedelta(seconds=10 * i)
    sid = int(ts.timestamp() * 1_000_000)
    common = {"snapshot_id": sid, "ts": ts}
    s = Snapshot(sid, ts, host)
    base = {"boot_id": "b1", "ppid": 1, "pgid": 1, "sid": 1, "state": "S", "gid": 0, "nice": 0, "priority": 20,
            "processor": 0, "num_threads": 1, "rss": 0, "vms": 0, "minflt": 0, "majflt": 0, "cmdline": "x",
            "utime": 0.0, "stime": 0.0, "start_time": T0 - dt.timedelta(hours=1)}
    s.tables["processes"] = _to_table("processes", [{**base, **p} for p in procs], common)
    fbase = {"boot_id": "b1", "start_time": T0 - dt.timedelta(hours=1)}
    s.tables["open_files"] = _to_table("open_files", [{**fbase, **x} for x in files], common)
    s.tables["sockets"] = _to_table("sockets", [{**fbase, **x} for x in socks], common)
    s.tables["snapshots"] = _to_table("snapshots", [{"kernel": "k", "procsnap_version": "t", "duration_ms": 1.0,
                                                     "cpu_ms": 1.0, "recorder_pid": 1, "skipped": 0}], common)
    return s


@pytest.fixture(scope="module")
def recdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lsofrec") / "rec"
    with Store(d) as st:
        st.write(snapshot(0, *world()))
        st.write(snapshot(1, *world(second=True)))
        st.write(snapshot(0, *h2(), host="h2"))
    return d


@pytest.fixture(scope="module")
def oldrec(tmp_path_factory):
    """A recording made before open_files and sockets were collected."""
    d = tmp_path_factory.mktemp("lsofold") / "rec"
    s = snapshot(0, *world())
    del s.tables["open_files"], s.tables["sockets"]
    with Store(d) as st:
        st.write(s)
    return d


@pytest.fixture(scope="module")
def rec(recdir):
    return Recording.open([str(recdir)])


def pick(rec, *args, at=None, hosts=("h1",)):
    """(rows, missing) of `lsof ARGS` at the first snapshot of h1 (or `at`)."""
    o = L.parse_args(list(args))
    moments = [m for m in rec.moment(at or "03:00:00") if m.host in hosts]
    L.resolve_names(o, live=False, warn=lambda m: None)
    res = L.select(L.load(rec, moments, o), o)
    # reading only what the options can select lists the same rows and finds the same missing items
    full = L.select(L.load(rec, moments), o)
    assert (res.rows, res.missing) == (full.rows, full.missing), args
    return res


def keys(rec, *args, **kw):
    return [(r.pid, r.fd) for r in pick(rec, *args, **kw).rows]


# --------------------------------------------------------------------------
# Option parsing


def test_selections_are_ored_unless_a():
    o = L.parse_args(["-p", "1", "-u", "alice"])
    assert (o.pids, o.users, o.and_) == ([1], ["alice"], False)
    assert L.parse_args(["-p", "1", "-a", "-u", "alice"]).and_
    assert L.parse_args(["-ap1"]).and_ and L.parse_args(["-ap1"]).pids == [1]


def test_comma_lists_and_exclusions():
    o = L.parse_args(["-p", "1,2,^3", "-u", "alice,^root,0", "-c", "^ssh", "-c", "web"])
    assert o.pids == [1, 2] and o.xpids == {3}
    assert o.users == ["alice", "0"] and o.xusers == ["root"]
    assert [t for t, _ in o.cmds] == ["web"] and [t for t, _ in o.xcmds] == ["^ssh"]
    # -c takes one command, commas and all (as lsof)
    assert [t for t, _ in L.parse_args(["-c", "a,b"]).cmds] == ["a,b"]


@pytest.mark.parametrize("args", [["-sTCP:LISTEN"], ["-s", "TCP:LISTEN"], ["-s", "tcp:listen"], ["-stcp:Listen"]])
def test_state_forms(args):
    o = L.parse_args(args)
    assert o.tcp_in == {"LISTEN"} and not o.tcp_ex and not o.size_only


def test_state_exclusions_and_lists():
    o = L.parse_args(["-sTCP:^LISTEN,^CLOSE_WAIT"])
    assert o.tcp_ex == {"LISTEN", "CLOSE_WAIT"} and not o.tcp_in
    assert L.parse_args(["-s"]).size_only                   # -s alone: the SIZE column
    assert L.parse_args(["-s", "-p", "1"]).size_only        # a following option is not its value


@pytest.mark.parametrize("text,af,proto,addrs,ports", [
    ("", None, None, None, None),
    ("4", 4, None, None, None),
    ("6", 6, None, None, None),
    ("TCP", None, "TCP", None, None),
    ("udp", None, "UDP", None, None),
    (":8080", None, None, None, [(8080, 8080)]),
    ("TCP:22", None, "TCP", None, [(22, 22)]),
    ("UDP:53", None, "UDP", None, [(53, 53)]),
    ("@127.0.0.1:8080", None, None, [(4, bytes([127, 0, 0, 1]))], [(8080, 8080)]),
    ("6TCP@[::1]:8443", 6, "TCP", [(6, bytes(15) + b"\x01")], [(8443, 8443)]),
    (":1000-2000,22", None, None, None, [(1000, 2000), (22, 22)]),
])
def test_inet_forms(text, af, proto, addrs, ports):
    s = L.parse_inet(text)
    assert (s.af, s.proto, s.addrs, s.ports) == (af, proto, addrs, ports)


def test_i_takes_its_value_attached_or_next_but_not_an_option():
    assert [s.text for s in L.parse_args(["-i"]).inet] == [""]
    assert [s.text for s in L.parse_args(["-iTCP:22"]).inet] == ["TCP:22"]
    assert [s.text for s in L.parse_args(["-i", "4"]).inet] == ["4"]
    o = L.parse_args(["-i", "-sTCP:LISTEN"])
    assert [s.text for s in o.inet] == [""] and o.tcp_in == {"LISTEN"}
    o = L.parse_args(["-nPi", "-a", "-u", "alice"])
    assert [s.text for s in o.inet] == [""] and o.and_ and o.users == ["alice"]
    assert L.parse_inet(":http").ports == [(80, 80)]    # a service name


def test_accepted_no_ops_names_and_procsnap_options():
    o = L.parse_args(["-n", "-P", "-K", "i", "-Ki", "-w", "+w", "+D", "/srv", "+d/run", "/etc/hosts",
                      "--rec", "r1", "--rec=r2", "--at", "03:14", "--host", "h1", "-f", "json", "-t"])
    assert o.name_args == [("tree", "/srv"), ("dir", "/run"), ("file", "/etc/hosts")]
    assert (o.recs, o.at, o.hosts, o.fmt, o.terse) == (["r1", "r2"], "03:14", ["h1"], "json", True)
    assert L.parse_args(["-fcsv"]).fmt == "csv"
    o = L.parse_args(["-f", "/etc"])                       # lsof's -f: names are files
    assert o.files_only and o.fmt is None and o.name_args == [("file", "/etc")]
    assert L.parse_args(["+c", "15"]).cmd_width == 15 and L.parse_args(["+c0"]).cmd_width == 0


@pytest.mark.parametrize("args,needle", [
    (["-j"], "unknown option -j"),
    (["--bogus"], "unknown option --bogus"),
    (["-F"], "not supported"),
    (["-K"], "-K"),
    (["-p"], "needs a value"),
    (["-p", "abc"], "illegal process ID"),
    (["-p", "1,"], "empty item"),
    (["-i", "5"], "unknown protocol name (5)"),
    (["-i", "RAW"], "unknown protocol name (RAW)"),
    (["-i", "/run"], "unknown protocol name (/run)"),
    (["-i", ":99999"], "bad port"),
    (["-i", ":20-10"], "low > its high"),
    (["-i", ":nosuchservice"], "unknown service"),
    (["-i", "@[zz]:1"], "bad IPv6 address"),
    (["-i", "4@[::1]"], "address family mismatch"),
    (["-sTCP:FOO"], "unknown TCP state name: FOO"),
    (["-sUDP:Idle"], "no UDP state names"),
    (["-s", "XYZ:LISTEN"], "unknown -s protocol"),
    (["-sTCP:LISTEN,^LISTEN"], "can't include and exclude"),
    (["-d", "1,^2"], "exclude in an include"),
    (["-d", "5-3"], "low >= its high"),
    (["-f", "xml"], "bad format"),
    (["-fxml"], "bad format"),
    (["-fg"], "not supported"),
    (["--format", "xml"], "bad format"),
    (["+c", "wide"], "COMMAND width"),
    (["+D"], "needs a value"),
])
def test_bad_options_are_usage_errors(args, needle):
    with pytest.raises(UsageError) as e:
        L.parse_args(args)
    assert needle in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------
# Selection


def test_no_selection_lists_everything_in_lsof_order(rec):
    k = keys(rec)
    assert [x for x in k if x[0] == 100] == [
        (100, "cwd"), (100, "rtd"), (100, "txt"), (100, "mem"), (100, "DEL"),
        (100, "0"), (100, "3"), (100, "4"), (100, "5"), (100, "6"), (100, "7"), (100, "10"), (100, "11"),
        (100, "12345")]
    assert [p for p, _ in k] == sorted(p for p, _ in k)
    assert all(r.host == "h1" for r in pick(rec).rows)


def test_pid_user_command_or_and(rec):
    assert {p for p, _ in keys(rec, "-p", "1,400")} == {1, 400}
    assert {p for p, _ in keys(rec, "-u", "alice")} == {200}
    assert {p for p, _ in keys(rec, "-u", "33")} == {100}                  # a uid
    assert {p for p, _ in keys(rec, "-c", "web")} == {100}                 # a prefix
    assert {p for p, _ in keys(rec, "-c", "web-server-proc-x")} == set()
    assert {p for p, _ in keys(rec, "-c", "/^(cu|ss)/")} == {200, 400}      # a regex
    assert {p for p, _ in keys(rec, "-p", "1", "-u", "alice")} == {1, 200}  # OR
    assert keys(rec, "-a", "-p", "1", "-u", "alice") == []                  # AND
    assert keys(rec, "-p", "1", "-a", "-u", "root") == keys(rec, "-p", "1")


def test_exclusions_apply_before_or(rec):
    assert {p for p, _ in keys(rec, "-p", "^1")} == {100, 200, 400}
    assert {p for p, _ in keys(rec, "-u", "^root")} == {100, 200}
    assert {p for p, _ in keys(rec, "-c", "^web", "-u", "www-data,alice")} == {200}
    # an excluded pid stays out even when another selection would list it
    assert {p for p, _ in keys(rec, "-p", "^200", "-i")} == {1, 100}


def test_i_selections(rec):
    assert keys(rec, "-i") == [(1, "14"), (1, "15"), (100, "3"), (100, "4"), (100, "5"), (200, "3"), (200, "4")]
    assert keys(rec, "-i", ":8080") == [(100, "3"), (100, "4"), (200, "3")]   # local or remote port
    assert keys(rec, "-i", "TCP:22") == [(1, "14")]
    assert keys(rec, "-i", "UDP:53") == [(200, "4")]
    assert keys(rec, "-i", "4") == [(1, "15"), (100, "3"), (100, "4"), (200, "3"), (200, "4")]
    assert keys(rec, "-i", "6") == [(1, "14"), (100, "5")]
    assert keys(rec, "-i", "UDP") == [(1, "15"), (200, "4")]
    assert keys(rec, "-i", "@127.0.0.53") == [(200, "4")]
    assert keys(rec, "-i", "@127.0.0.1:8080") == [(100, "3"), (100, "4"), (200, "3")]
    assert keys(rec, "-i", "@127.0.0.1:40000") == [(100, "4"), (200, "3")]
    assert keys(rec, "-i", "TCP@[::1]") == [(100, "5")]
    assert keys(rec, "-i", ":8000-8500") == [(100, "3"), (100, "4"), (100, "5"), (200, "3")]
    assert keys(rec, "-i", ":22", "-i", ":5353") == [(1, "14"), (1, "15")]    # several -i: ORed
    assert keys(rec, "-i", "6:8080") == []


def test_i_with_s_states(rec):
    assert keys(rec, "-i", "-sTCP:LISTEN") == [(1, "14"), (100, "3"), (100, "5")]
    assert keys(rec, "-iTCP", "-s", "TCP:LISTEN") == [(1, "14"), (100, "3"), (100, "5")]
    # as lsof on Linux: the TCP state list acts on UDP too (connected = ESTABLISHED, else CLOSE)
    assert keys(rec, "-i", "-sTCP:ESTABLISHED") == [(100, "4"), (200, "3"), (200, "4")]
    assert keys(rec, "-i", "-sTCP:^LISTEN") == [(1, "15"), (100, "4"), (200, "3"), (200, "4")]
    assert keys(rec, "-i", "-sTCP:CLOSE") == [(1, "15")]
    assert keys(rec, "-i", "UDP", "-sTCP:^CLOSE") == [(200, "4")]
    # without -i the states only drop the other TCP/UDP files: everything else stays
    k = keys(rec, "-p", "100", "-sTCP:LISTEN")
    assert (100, "3") in k and (100, "4") not in k and (100, "cwd") in k and (100, "0") in k


def test_i_and_u_examples(rec):
    k = keys(rec, "-i", "-u", "alice")
    assert {x for x in k if x[0] != 200} == {(1, "14"), (1, "15"), (100, "3"), (100, "4"), (100, "5")}
    assert {x for x in k if x[0] == 200} == {(200, x) for x in ("cwd", "rtd", "txt", "3", "4", "5", "6", "7", "8",
                                                                  "9")}
    assert keys(rec, "-a", "-i", "-u", "alice") == [(200, "3"), (200, "4")]


def test_unix_and_fd_selections(rec):
    assert keys(rec, "-U") == [(1, "12"), (200, "5")]
    assert keys(rec, "-a", "-p", "100", "-d", "cwd,0-4") == [(100, "cwd"), (100, "0"), (100, "3"), (100, "4")]
    assert keys(rec, "-a", "-p", "200", "-d", "^0-100") == [(200, "cwd"), (200, "rtd"), (200, "txt")]
    assert keys(rec, "-a", "-p", "100", "-d", "mem,DEL") == [(100, "mem"), (100, "DEL")]


def test_file_and_directory_names(rec):
    assert keys(rec, "/srv/www/index.html") == [(100, "10")]
    # a directory: where it is open (cwd, rtd, an open dir), not the files in it
    assert keys(rec, "/srv/www") == [(100, "cwd"), (100, "7")]
    assert keys(rec, "/srv/www/") == [(100, "cwd"), (100, "7")]
    assert keys(rec, "/run/alice.sock") == [(200, "5")]                    # a unix socket by its path
    assert keys(rec, "+d", "/srv/www") == [(100, "cwd"), (100, "7"), (100, "10")]
    assert keys(rec, "+D", "/srv") == [(100, "cwd"), (100, "6"), (100, "7"), (100, "10")]
    assert keys(rec, "+D", "/srv/www/logs") == [(100, "6")]
    assert keys(rec, "+D", "/run") == [(1, "12"), (200, "5")]
    assert keys(rec, "/srv/www/old.log") == []                              # deleted: lsof cannot find it either
    assert keys(rec, ODD.decode("utf-8", "surrogateescape")) == [(200, "8")]  # bytes, not text
    assert keys(rec, "-a", "-u", "alice", "/") == [(200, "rtd")]


def test_at_picks_the_snapshot_and_host(rec):
    assert keys(rec, "-i", ":8080", at="03:00:09") == [(100, "3"), (100, "4"), (200, "3")]
    assert keys(rec, "-i", ":8080", at="03:00:10") == [(200, "3")]
    assert keys(rec, "-p", "500", at="end") == [(500, "cwd")]
    assert keys(rec, "-i", "TCP:6379", hosts=("h1", "h2")) == [(7, "6")]


def test_socket_rows_by_fd_by_inode_or_from_name(rec):
    h2 = {"hosts": ("h2",)}
    assert keys(rec, "-i", "-sTCP:LISTEN", **h2) == [(7, "6"), (7, "8")]
    assert keys(rec, "-i", "-sTCP:^LISTEN", **h2) == [(7, "7")]            # 8: LISTEN is only in `sockets`
    assert keys(rec, "-i", "@10.0.0.2:443", **h2) == [(7, "7")]             # 7: from its NAME
    assert keys(rec, "-i", "-sTCP:CLOSE_WAIT", **h2) == [(7, "7")]
    assert keys(rec, "-i", "6TCP:6380", **h2) == [(7, "8")]
    assert keys(rec, "-i", "@0.0.0.0:9000", **h2) == [(7, "7")]             # as lsof: 0.0.0.0 is any address


def test_port_narrowing_keeps_ports_read_from_odd_names(tmp_path):
    """Ports that only NAME gives, written as Python still reads them: leading zeros, digits
    that are not ASCII, a range past what one regular expression lists."""
    d = tmp_path / "rec"
    files = [f(9, 3, "IPv4", "10.0.0.1:0443->10.0.0.2:5000 (ESTABLISHED)", mode="u", inode=9003, proto="TCP"),
             f(9, 4, "IPv4", "10.0.0.1:\u0664\u0664\u0663->10.0.0.2:6000 (ESTABLISHED)", mode="u", inode=9004,
               proto="TCP"),
             f(9, 5, "IPv6", "[::1]:7000", mode="u", inode=9005, proto="UDP"),
             f(9, 6, "REG", "/srv/x:443", size=1, inode=9006)]
    with Store(d) as st:
        st.write(snapshot(0, [proc(9, "odd", "root", 0)], files, [], host="h3"))
    rec = Recording.open([str(d)])
    moments = rec.moment("end")
    for args, want in ((["-i", ":443"], ["3", "4"]), (["-i", ":6000-9000"], ["4", "5"]), (["-i", ":5000"], ["3"]),
                       (["-i", "6UDP:7000"], ["5"]), (["-i", ":1-65535"], ["3", "4", "5"])):
        o = L.parse_args(args)
        narrow, full = L.select(L.load(rec, moments, o), o), L.select(L.load(rec, moments), o)
        assert [r.fd for r in narrow.rows] == [r.fd for r in full.rows] == want, args
        assert narrow.missing == full.missing == []


def test_inet_ports():
    assert L.inet_ports(L.parse_args(["-i", ":80,8000-8080", "-i", "UDP:53"])) == [(80, 80), (8000, 8080), (53, 53)]
    assert L.inet_ports(L.parse_args(["-i", ":80", "-i", "TCP"])) is None     # the second lists every port
    assert L.inet_ports(L.parse_args(["-i", ":80", "-U"])) is None
    assert L.inet_ports(L.parse_args(["-p", "1"])) is None


@pytest.mark.parametrize("args,pids,sockets_only", [
    (["-p", "1,200"], {1, 200}, False),
    (["-a", "-p", "1", "-u", "root"], {1}, False),
    (["-a", "-p", "1", "-i"], {1}, False),             # -i narrows no further: -p's "not found" sees all
    (["-p", "1", "-u", "root"], None, False),          # ORed: everything
    (["-i", ":8080"], None, True),
    (["-U"], None, True),
    (["-a", "-i", "-d", "0-9"], None, True),
    (["-a", "-p", "1", "-c", "sys"], None, False),     # -c's "not found" looks at every process
    (["-a", "-i", "-c", "curl"], None, False),
    (["-c", "curl"], None, False),
    ([], None, False),
])
def test_recorded_plan(args, pids, sockets_only):
    assert L.recorded_plan(L.parse_args(args)) == (pids, sockets_only)
    assert L.recorded_plan(None) == (None, False)


@pytest.mark.parametrize("args", [
    ["-p", "7"], ["-p", "100,200"], ["-p", "1", "-sTCP:LISTEN"], ["-a", "-p", "100", "-d", "0-5"], ["-p", "^100", "-p", "1"],
    ["-i"], ["-i", ":6380"], ["-U"], ["-i", "-sTCP:^LISTEN"], ["-a", "-i", "-u", "alice"], ["-p", "200", "-t"],
    # ports: found through a socket by fd, by inode only (h2's 6380), or in NAME only (h2's 9000 and 443)
    ["-i", ":443"], ["-i", ":9000"], ["-i", ":8000-9000"], ["-i", "TCP:8080,22"], ["-i", "@10.0.0.2:443"],
    ["-i", "6:22"], ["-i", ":6379", "-i", "UDP:53"], ["-i", ":8080", "-sTCP:LISTEN"], ["-a", "-i", ":8080", "-u", "alice"],
    ["-i", ":9999"],
])
def test_narrowed_load_reads_less_and_lists_the_same(rec, args):
    """All hosts (h2's pid 7 finds a socket by inode only, in a row without owner): pick() checks
    the listing against a full read; here, that the narrowed read is smaller."""
    pick(rec, *args, hosts=("h1", "h2"))
    o = L.parse_args(args)
    moments = rec.moment("03:00:00")
    assert len(L.load(rec, moments, o)) < len(L.load(rec, moments))
    assert L.has_files(rec, moments)


def test_missing_search_items(rec):
    assert pick(rec, "-p", "1,99999").missing == ["99999"]
    assert pick(rec, "-c", "nosuch", "-p", "1").missing == ["nosuch"]
    assert pick(rec, "-i", ":9999", "-p", "1").missing == ["-i :9999"]
    assert pick(rec, "-i", "-sTCP:LISTEN,CLOSE_WAIT").missing == ["TCP:CLOSE_WAIT"]
    assert pick(rec, "/nonexistent", "-p", "1").missing == ["/nonexistent"]
    # as lsof: a pid that exists is found even when -a leaves none of its files
    assert pick(rec, "-a", "-p", "1,200", "-U").missing == []


# --------------------------------------------------------------------------
# The listing


def listing(rec, *args):
    out = io.StringIO()
    o = L.parse_args(list(args))
    L.text_table(pick(rec, *args).rows, o, out)
    return out.getvalue().splitlines()


def test_listing_is_lsofs(rec):
    lines = listing(rec, "-p", "100")
    assert lines[0] == "COMMAND   PID     USER   FD   TYPE DEVICE  SIZE/OFF NODE NAME"
    want = [
        "web-serve 100 www-data  cwd    DIR  254,0      4096  300 /srv/www",
        "web-serve 100 www-data  rtd    DIR  254,0      4096    2 /",
        "web-serve 100 www-data  txt    REG  254,0      1000   12 /usr/sbin/websrv",
        "web-serve 100 www-data  mem    REG  254,0      2000   13 /usr/lib/x86_64-linux-gnu/libc.so.6",
        "web-serve 100 www-data  DEL    REG    0,1             14 /memfd:jit",
        "web-serve 100 www-data    0r   CHR    1,3       0t0    3 /dev/null",
        "web-serve 100 www-data    3u  IPv4   5000       0t0  TCP 127.0.0.1:8080 (LISTEN)",
        "web-serve 100 www-data    4u  IPv4   5001       0t0  TCP 127.0.0.1:8080->127.0.0.1:40000 (ESTABLISHED)",
        "web-serve 100 www-data    5u  IPv6   5006       0t0  TCP [::1]:8443 (LISTEN)",
        "web-serve 100 www-data    6w   REG  254,0     12345  301 /srv/www/logs/access.log",
        "web-serve 100 www-data    7r   DIR  254,0      4096  300 /srv/www",
        "web-serve 100 www-data   10r   REG  254,0       500  302 /srv/www/index.html",
        "web-serve 100 www-data   11w   REG  254,0         9  303 /srv/www/old.log (deleted)",
        "web-serve 100 www-data *345r   CHR    1,5 0x75bcd15    4 /dev/zero",
    ]
    assert lines[1:] == want


def test_listing_escapes_names_and_shows_offsets(rec):
    lines = listing(rec, "-p", "200,400", "-a", "-d", "cwd,3,4,5,6,8,9")
    assert lines == [
        "COMMAND PID  USER   FD      TYPE             DEVICE SIZE/OFF NODE NAME",
        "curl    200 alice  cwd       DIR              254,0     4096  400 /home/alice",
        "curl    200 alice    3u     IPv4               5002      0t0  TCP 127.0.0.1:40000->127.0.0.1:8080 "
        "(ESTABLISHED)",
        "curl    200 alice    4u     IPv4               5003      0t0  UDP 127.0.0.1:41000->127.0.0.53:53 ",
        "curl    200 alice    5u     unix 0x00000000cafef00d      0t0 6001 /run/alice.sock type=STREAM (LISTEN)",
        "curl    200 alice    6r     FIFO               0,15      0t0 6100 pipe",
        "curl    200 alice    8u      REG              254,0        7  401 /home/alice/odd\\nname\\xff.txt",
        "curl    200 alice    9u  a_inode               0,16        0 1039 [eventpoll]",
        "sshd    400  root  cwd   unknown                                  /proc/400/cwd (readlink: Permission denied)",
        "sshd    400  root    3   unknown                                  "
        "/proc/400/fd/3 (readlink: Permission denied)",
    ]


def test_command_escaping_and_truncation():
    assert L.lsof_command("web-server-proc") == "web-serve"
    assert L.lsof_command("my (odd name") == "my\\x20(od"
    assert L.lsof_command("a\nb\x01c", width=0) == "a\\nb^Ac"
    assert L.lsof_command("abcdefgh\n") == "abcdefgh"          # an escape that does not fit is left out
    assert L.lsof_escape("x", b"a\tb\xff\x01\x7f\xc2\x85.") == "a\\tb\\xff^A\\x7f\\xc2\\x85."


def test_columns_and_uid_numbers(rec):
    lines = listing(rec, "-l", "-a", "-p", "200", "-d", "cwd")
    assert lines == ["COMMAND PID     USER   FD   TYPE DEVICE SIZE/OFF NODE NAME",
                     "curl    200     1000  cwd    DIR  254,0     4096  400 /home/alice"]
    lines = listing(rec, "-s", "-a", "-p", "200", "-d", "cwd,6")
    assert lines[0].split() == ["COMMAND", "PID", "USER", "FD", "TYPE", "DEVICE", "SIZE", "NODE", "NAME"]
    assert lines[2].split()[5:] == ["0,15", "6100", "pipe"]     # -s: no size, no offset either


def test_host_column_only_for_several_hosts(rec):
    o = L.parse_args(["-i", "TCP:6379,22"])
    rows = pick(rec, "-i", "TCP:6379,22", hosts=("h1", "h2")).rows
    out = io.StringIO()
    L.text_table(rows, o, out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("HOST COMMAND") and lines[1].startswith("h1   systemd") \
        and lines[2].startswith("h2   redis-ser")
    cols, vals = L.records(rows, o)
    assert cols[0] == "host" and [v[0] for v in vals] == ["h1", "h2"]


# --------------------------------------------------------------------------
# Through the command line


def test_cli_listing_at_a_moment(cli, recdir):
    p = cli("lsof", "--rec", recdir, "--at", "2026-11-28T03:00:05", "--host", "h1", "-i", ":8080", check=0)
    assert p.stderr == "procsnap: snapshot of h1 at 2026-11-28 03:00:00 UTC\n"
    assert p.stdout.splitlines() == [
        "COMMAND   PID     USER   FD   TYPE DEVICE SIZE/OFF NODE NAME",
        "web-serve 100 www-data    3u  IPv4   5000      0t0  TCP 127.0.0.1:8080 (LISTEN)",
        "web-serve 100 www-data    4u  IPv4   5001      0t0  TCP 127.0.0.1:8080->127.0.0.1:40000 (ESTABLISHED)",
        "curl      200    alice    3u  IPv4   5002      0t0  TCP 127.0.0.1:40000->127.0.0.1:8080 (ESTABLISHED)",
    ]
    # without --at: the last snapshot of each host (the listener is gone on h1)
    p = cli("lsof", "--rec", recdir, "-i", "-sTCP:LISTEN", check=0)
    assert p.stderr.splitlines() == ["procsnap: snapshot of h1 at 2026-11-28 03:00:10 UTC",
                                     "procsnap: snapshot of h2 at 2026-11-28 03:00:00 UTC"]
    lines = p.stdout.splitlines()
    assert lines[0].split()[:2] == ["HOST", "COMMAND"] and len(lines) == 5
    assert [ln.split()[2] for ln in lines[1:]] == ["1", "100", "7", "7"]


def test_cli_terse_and_exit_status(cli, recdir):
    p = cli("lsof", "--rec", recdir, "--host", "h1", "--at", "start", "-t", "-i", "TCP", check=0)
    assert p.stdout == "1\n100\n200\n"
    p = cli("lsof", "--rec", recdir, "-i", ":9999")
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr.startswith("procsnap: snapshot of")                 # no error message
    p = cli("lsof", "--rec", recdir, "-t", "-p", "1,99999")
    assert (p.returncode, p.stdout) == (1, "1\n")                        # as lsof: 99999 was not found
    p = cli("lsof", "--rec", recdir, "-Q", "-p", "99999")
    assert (p.returncode, p.stdout) == (0, "")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_cli_csv_and_json(cli, recdir, fmt):
    p = cli("lsof", "--rec", recdir, "--host", "h1", "--at", "start", "-f", fmt, "-a", "-p", "200", "-d", "3,8",
            check=0)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(p.stdout)))
        assert list(rows[0]) == list(L.COLUMNS)
    else:
        rows = json.loads(p.stdout)
        assert list(rows[0]) == list(L.COLUMNS) + list(L.JSON_COLUMNS) and rows[0]["pid"] == 200
    assert [(r["fd"], r["size_off"], r["node"]) for r in rows] == [("3u", "0t0", "TCP"), ("8u", "7", "401")]
    # JSON keeps the name's newline (its encoder escapes it); CSV escapes it as the table does (issue 18)
    name = "/home/alice/odd\\nname\\xff.txt" if fmt == "csv" else "/home/alice/odd\nname\\xff.txt"
    assert rows[0]["command"] == "curl" and rows[1]["name"] == name


def test_nothing_found_is_still_json(cli, recdir):
    """A script parsing the JSON gets [] when nothing is listed, with lsof's exit status 1;
    CSV stays empty as before."""
    p = cli("lsof", "--rec", recdir, "--at", "start", "-i", ":1", "-f", "json", check=1)
    assert (p.returncode, json.loads(p.stdout)) == (1, [])
    p = cli("lsof", "--rec", recdir, "--at", "start", "-i", ":1", "-f", "csv", check=1)
    assert (p.returncode, p.stdout) == (1, "")


def test_cli_lsof_options_as_typed(cli, recdir):
    p = cli("lsof", "--rec", recdir, "--at", "start", "--host", "h1", "-nP", "-Ki", "-iTCP", "-sTCP:LISTEN", "-a",
            "-u", "root", check=0)
    assert [ln.split()[3] for ln in p.stdout.splitlines()[1:]] == ["14u"]
    p = cli("lsof", "--rec", recdir, "--at", "start", "--host", "h1", "+D", "/srv/www/logs", check=0)
    assert p.stdout.splitlines()[1].endswith(" /srv/www/logs/access.log")
    p = cli("lsof", "--rec", recdir, "--at", "start", "--host", "h1", "/run/alice.sock", check=0)
    assert len(p.stdout.splitlines()) == 2


@pytest.mark.parametrize("args,code,needle", [
    (["-i", "5"], 2, "unknown protocol name (5)"),
    (["-sTCP:NOPE"], 2, "unknown TCP state name"),
    (["-z"], 2, "unknown option -z"),
    (["--at", "03:00", "-i"], 2, "--at goes with --rec"),
    (["--rec", "/nonexistent/rec"], 2, "no such recording"),
    (["--rec", "REC", "--at", "1999-01-01", "-i"], 1, "no snapshot at or before"),
    (["--rec", "REC", "-f", "xml"], 2, "bad format"),
    (["--rec", "REC", "--host", "nosuch", "-i"], 1, "no snapshot of host nosuch"),
    (["--rec", "OLD", "-i"], 1, "without the open_files table"),
    (["--rec", "OLD", "-p", "1"], 1, "without the open_files table"),
])
def test_cli_errors_are_one_line(cli, recdir, oldrec, args, code, needle):
    p = cli("lsof", *[str(recdir) if a == "REC" else str(oldrec) if a == "OLD" else a for a in args])
    assert p.returncode == code, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and needle in err
    assert p.stdout == ""


def test_cli_help_has_examples(cli):
    for flag in ("--help", "-h"):
        p = cli("lsof", flag, check=0)
        assert "procsnap lsof -i :8080" in p.stdout and "--rec ./incident --at 03:14" in p.stdout
        assert "-sTCP:LISTEN" in p.stdout

"""procsnap lsof's selection and exit status against the real lsof, live and from a recording.

Mount points (every open file on the file system a mount point names, character devices
on devtmpfs included), +d/+D and their exit status, service names with hyphens: each is
compared with `lsof` on this host, with processes the test starts holding the files.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from analyze.commands import lsof as L
from analyze.errors import UsageError

from tests.conftest import run_cli

pytestmark = [pytest.mark.live, pytest.mark.tools("lsof")]


def lsof_run(*args):
    return subprocess.run(["lsof", "-n", "-P", *args], capture_output=True, text=True, errors="surrogateescape")


def rows_of(text: str) -> set:
    """(pid, fd, type, device, node, name) of each row of lsof's listing (the same in procsnap's).
    SIZE/OFF is not compared: a row whose SIZE/OFF is blank (without the C module a device's
    offset is NULL) counts as whole."""
    out = set()
    lines = text.splitlines()
    head = lines[0] if lines else ""
    a = head.find("SIZE/OFF")
    b = a + len("SIZE/OFF")  # lsof right-aligns the column under its title
    for line in lines[1:]:
        if a >= 0 and len(line) > b and not line[a:b].strip():
            line = line[:a] + "-".rjust(b - a) + line[b:]
        f = line.split(None, 8)
        if len(f) < 9:
            continue  # lsof leaves DEVICE/SIZE empty on some rows: only whole rows are compared
        out.add((int(f[1]), f[3], f[4], f[5], f[7], f[8]))
    return out


def holder(*paths, cwd=None):
    """A child holding PATHS open (read) until killed; returns the Popen once they are open."""
    code = ("import sys, time\nfs = [open(p, 'rb') for p in sys.argv[1:]]\nprint('ok', flush=True)\n"
            "time.sleep(300)\n")
    p = subprocess.Popen([sys.executable, "-c", code, *map(str, paths)], stdout=subprocess.PIPE, text=True,
                         cwd=cwd)
    assert p.stdout.readline() == "ok\n"
    return p


# --------------------------------------------------------------------------
# -i service names (lsof's grammar: an item starting with a letter is one name, hyphens included)

def test_service_names_with_hyphens_are_names():
    assert L.parse_inet(":http-alt").ports == [(8080, 8080)]
    assert L.parse_inet(":ftp-data,22").ports == [(20, 20), (22, 22)]
    assert L.parse_inet("TCP:1-http").ports == [(1, 80)]          # a range may end in a name
    assert L.parse_inet(":20-22").ports == [(20, 22)]
    for bad, msg in ((":domain-60", "unknown service domain-60"), (":22-ftp-data", "unacceptable port"),
                     (":1-", "unacceptable port"), (":1-2-3", "unacceptable port"),
                     (":a\x00b", "unknown service"), (":\udcffx", "unknown service")):
        with pytest.raises(UsageError, match=msg):
            L.parse_inet(bad)


def hyphenated_free_service():
    """A TCP service of /etc/services with a hyphen in its name whose port this test can bind."""
    try:
        lines = open("/etc/services").read().splitlines()
    except OSError:
        pytest.skip("no /etc/services")
    for line in lines:
        f = line.split("#")[0].split()
        if len(f) >= 2 and "-" in f[0] and f[0][0].isalpha() and f[1].endswith("/tcp"):
            port = int(f[1].split("/")[0])
            if port < 1024 and os.geteuid() != 0:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            s.listen()
            return f[0], s
    pytest.skip("no free port of a hyphenated service name")


def test_hyphenated_service_live_and_recorded(tmp_path):
    name, s = hyphenated_free_service()
    try:
        theirs = lsof_run("-t", "-a", "-p", str(os.getpid()), "-i", f"TCP:{name}")
        mine = run_cli("lsof", "-t", "-a", "-p", os.getpid(), "-i", f"TCP:{name}")
        assert (mine.returncode, mine.stdout, mine.stderr) == (theirs.returncode, f"{os.getpid()}\n", "")
        assert theirs.stdout == mine.stdout
        rec = tmp_path / "rec"
        run_cli("snapshot", "-q", "-o", rec, check=0)
        p = run_cli("lsof", "--rec", rec, "-t", "-a", "-p", os.getpid(), "-i", f":{name}", check=0)
        assert p.stdout == f"{os.getpid()}\n"
    finally:
        s.close()


# --------------------------------------------------------------------------
# Exit status: 1 only for a search item not found (pids, commands, files, +d/+D files, -i
# addresses, -s states, login names), as lsof; nothing listed is no error by itself.

@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """DIR/{f, sub/g, fifo} with DIR, f, sub and sub/g held open by children (fifo by nobody)."""
    d = tmp_path_factory.mktemp("tree")
    (d / "sub").mkdir()
    (d / "f").write_text("x")
    (d / "sub" / "g").write_text("y")
    (d / "link").symlink_to("/etc/hostname")   # no search item: links are not followed
    a = holder(d / "f", cwd=d)
    b = holder(d / "sub" / "g", cwd=d / "sub")
    empty = d.parent / (d.name + "-empty")
    empty.mkdir()
    yield {"dir": d, "empty": empty, "pids": (a.pid, b.pid)}
    for p in (a, b):
        p.kill()
        p.wait()


def same_status(*args):
    theirs = lsof_run(*args)
    mine = run_cli("lsof", *args)
    assert "Traceback" not in mine.stderr
    assert mine.returncode == theirs.returncode, (args, mine.returncode, theirs.returncode, mine.stderr)
    return mine


def test_exit_status_as_lsof_for_each_selection_form(tree):
    pid = str(tree["pids"][0])
    d, empty = str(tree["dir"]), str(tree["empty"])
    for args in (("+D", d), ("+d", d), ("+D", empty), ("+d", empty), ("-p", pid, "+D", empty),
                 ("-a", "-p", pid, "+D", d), ("-a", "-p", pid, "+d", "/usr/bin"), ("-a", "-p", pid, "+D", "/usr"),
                 ("-u", "games"), ("-u", "4242"), ("-u", "no-such-user"), ("-a", "-u", "games", "-d", "1"),
                 ("-d", "999999"), ("-a", "-p", pid, "-d", "999999"), ("-U", "-a", "-p", pid),
                 ("-u", "^root", "-a", "-d", "999999"), ("-c", "^zzzz"), ("-c", "^p", "-a", "-p", pid),
                 ("-p", "99999999"), ("-a", "-p", pid, "-i", ":1"), (d,), (empty,)):
        same_status(*args)
    # with the fifo open too, every file of the tree is held: 0
    (tree["dir"] / "fifo").unlink(missing_ok=True)
    same_status("+D", d)
    os.mkfifo(tree["dir"] / "fifo")
    try:
        same_status("+D", d)  # nobody holds the fifo: 1
    finally:
        (tree["dir"] / "fifo").unlink()


def test_exit_status_from_a_recording(tree, tmp_path):
    rec = tmp_path / "rec"
    run_cli("snapshot", "-q", "-o", rec, check=0)
    # a user of the snapshot without matching files, a uid nobody had: found (0); a login
    # name no process of the snapshot ran as: not found (1)
    assert run_cli("lsof", "--rec", rec, "-a", "-u", "root", "-d", "999999").returncode == 0
    assert run_cli("lsof", "--rec", rec, "-u", "4242").returncode == 0
    assert run_cli("lsof", "--rec", rec, "-u", "no-such-user").returncode == 1
    assert run_cli("lsof", "--rec", rec, "+D", str(tree["empty"])).returncode == 1
    assert run_cli("lsof", "--rec", rec, "-Q", "+D", str(tree["empty"])).returncode == 0
    assert run_cli("lsof", "--rec", rec, "-c", "^zzzz").returncode == 1


# --------------------------------------------------------------------------
# File arguments that are mount points: every open file on the file system, as lsof.

HOLD = r"""
import mmap, os, socket, sys, time
m = sys.argv[1]
fs = [open(p, 'rb') for p in ('/dev/null', '/etc/hostname', m + '/f', m + '/null', m + '/inner/h', m + '/gone')]
fifo = os.open(m + '/fifo', os.O_RDWR)
mapped = mmap.mmap(os.open(m + '/mapped', os.O_RDONLY), 0, prot=mmap.PROT_READ)
r, w = os.pipe()
s = socket.socket()
os.remove(m + '/gone')      # deleted, still open: on the file system all the same
os.chdir(m + '/sub')
print('ok', flush=True)
time.sleep(300)
"""


@pytest.fixture(scope="module")
def mounted(tmp_path_factory):
    """A tmpfs mount M (and a tmpfs inner mount M/inner) with files a child holds open there:
    a file, a character device node made on the tmpfs, a fifo, a mapped file, a deleted file,
    its cwd M/sub, besides /dev/null, /etc/hostname, a pipe and a socket."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a tmpfs")
    m = tmp_path_factory.mktemp("mnt")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "procsnap-test", str(m)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (m / "inner").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "procsnap-test", str(m / "inner")], check=True)
        for name in ("f", "inner/h", "mapped", "gone"):
            (m / name).write_text("data")
        (m / "sub").mkdir()
        os.mknod(m / "null", 0o600 | 0o020000, os.makedev(1, 3))
        os.mkfifo(m / "fifo")
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(m)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "ok\n"
        yield {"m": m, "pid": p.pid}
        p.kill()
        p.wait()
    finally:
        subprocess.run(["umount", str(m / "inner")])
        subprocess.run(["umount", str(m)])


def listing(args, rec=None):
    extra = ["--rec", rec] if rec else []
    p = run_cli("lsof", *extra, *args)
    assert "Traceback" not in p.stderr
    return rows_of(p.stdout), p.returncode


def test_mount_points_live_and_recorded_as_lsof(mounted, tmp_path):
    m, pid = str(mounted["m"]), str(mounted["pid"])
    rec = tmp_path / "rec"
    run_cli("snapshot", "-q", "-o", rec, check=0)
    recorded = tmp_path / "recorded"      # `record` builds its tables with Arrow, `snapshot` without
    run_cli("record", "-q", "-o", recorded, "-i", "1", "-n", "1", check=0)
    for arg in (m, m + "/inner", "/", "/dev", m + "/sub", m + "/f"):
        t = lsof_run("-a", "-p", pid, arg)
        theirs = rows_of(t.stdout)
        for source in (None, rec, recorded):
            mine, rc = listing(["-a", "-p", pid, arg], source)
            assert (mine, rc) == (theirs, t.returncode), (arg, source, t.stdout)
    # what each listed (against the real lsof's answer above, the story in plain words)
    by_arg = {arg: {r[5] for r in listing(["-a", "-p", pid, arg])[0]} for arg in (m, "/dev", m + "/sub")}
    assert {m + "/f", m + "/null", m + "/fifo", m + "/mapped", m + "/sub", m + "/gone (deleted)"} <= by_arg[m]
    assert m + "/inner/h" not in by_arg[m] and "/dev/null" not in by_arg[m]
    assert "/dev/null" in by_arg["/dev"] and m + "/null" not in by_arg["/dev"]
    assert by_arg[m + "/sub"] == {m + "/sub"}        # a directory that is no mount point: itself only
    # -f: a mount point is a file name only (nothing here: the child holds no M itself)
    t = lsof_run("-a", "-p", pid, "-f", "--", m)
    assert (listing(["-a", "-p", pid, "-f", "--", m]), listing(["-a", "-p", pid, "-f", "--", m], rec)) \
        == ((rows_of(t.stdout), t.returncode),) * 2


def test_mount_point_whole_listing_as_lsof():
    """`lsof /dev` over every process: rows of processes present in both listings agree."""
    for _ in range(3):
        t = lsof_run("/dev")
        mine, rc = listing(["/dev"])
        theirs = rows_of(t.stdout)
        pids = {r[0] for r in theirs} & {r[0] for r in mine}
        a = {r for r in theirs if r[0] in pids}
        b = {r for r in mine if r[0] in pids}
        if a == b:
            break
    assert a == b and any(r[2] == "CHR" for r in b)


def test_mount_table_parse():
    from recorder.collect.descriptors import Mounts
    m = Mounts(b"22 1 254:0 / / rw - ext4 /dev/vda rw\n"
               b"23 22 0:6 / /dev rw - devtmpfs devtmpfs rw\n"
               b"24 23 0:23 / /dev/shm rw - tmpfs tmpfs rw\n"
               b"25 24 0:27 / /dev/shm rw - tmpfs tmpfs rw\n"            # stacked over the first
               b"26 22 254:0 /srv/data /mnt/bind rw - ext4 /dev/vda rw\n"  # a bind mount of a subtree
               b"27 22 0:50 / /mnt/with\\040space rw - tmpfs x rw\n"
               b"28 22 0:51 / /mnt/\\377bad rw - tmpfs x rw\n"
               b"garbage\n")
    assert m.by_dev == {"254,0": "/", "0,6": "/dev", "0,23": "/dev/shm", "0,27": "/dev/shm",
                        "0,50": "/mnt/with space"}                   # the non-UTF-8 one is left out
    assert m.of_path("/dev/null") == "/dev" and m.of_path("/dev/shm/x") == "/dev/shm"
    assert m.of_path("/dev") == "/dev" and m.of_path("/devx") == "/" and m.of_path("pipe") is None
    assert m.of_path("/mnt/with space/f") == "/mnt/with space" and m.of_path("/mnt/bind/x") == "/mnt/bind"
    assert m.column(["REG", "CHR", "IPv4", "FIFO", "unknown"], ["254,0", "1,3", "12345", "0,13", None],
                    ["/x", "/dev/null", "*:80", "pipe", "/proc/1/cwd"]) == ["/", "/dev", None, None, None]


def test_an_older_recording_says_mount_points_are_unknown(tmp_path):
    import duckdb
    rec = tmp_path / "rec"
    run_cli("snapshot", "-q", "-o", rec, "--tables", "processes,open_files", check=0)
    # the same recording as an older procsnap wrote it: open_files without mount_point
    for f in rec.rglob("open_files/**/*.parquet"):
        duckdb.sql(f"COPY (SELECT * EXCLUDE (mount_point) FROM read_parquet('{f}')) TO '{f}.new' (FORMAT parquet)")
        os.replace(f"{f}.new", f)
    p = run_cli("lsof", "--rec", rec, "-t", "/dev")
    assert "no mount points" in p.stderr and "Traceback" not in p.stderr
    assert "no mount points" not in run_cli("lsof", "--rec", rec, "-t", "-i").stderr


# --------------------------------------------------------------------------
# Sockets: typed fields in -f json, and one way to write an endpoint ([::1]:8081) everywhere.

NET = r"""
import json, os, socket, sys, time
lst = socket.socket(socket.AF_INET6); lst.bind(('::1', 0)); lst.listen()
cli = socket.create_connection(('::1', lst.getsockname()[1])); srv, _ = lst.accept()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(('127.0.0.1', 0))
unx = socket.socket(socket.AF_UNIX); unx.bind(sys.argv[1]); unx.listen()
def me(s, state):
    local, peer = s.getsockname(), None
    try:
        peer = s.getpeername()
    except OSError:
        pass
    if s.family == socket.AF_UNIX:
        return {'fd': s.fileno(), 'inode': os.fstat(s.fileno()).st_ino, 'protocol': None, 'local_addr': local,
                'local_port': None, 'remote_addr': None, 'remote_port': None, 'state': state}
    return {'fd': s.fileno(), 'inode': os.fstat(s.fileno()).st_ino,
            'protocol': 'TCP' if s.type == socket.SOCK_STREAM else 'UDP', 'local_addr': local[0],
            'local_port': local[1], 'remote_addr': peer and peer[0], 'remote_port': peer and peer[1],
            'state': state}
print(json.dumps([me(lst, 'LISTEN'), me(cli, 'ESTABLISHED'), me(srv, 'ESTABLISHED'), me(udp, 'UNCONN'),
                  me(unx, 'LISTEN')]), flush=True)
time.sleep(300)
"""


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "s.sock"
    p = subprocess.Popen([sys.executable, "-c", NET, str(path)], stdout=subprocess.PIPE, text=True)
    import json
    truth = json.loads(p.stdout.readline())
    yield {"pid": p.pid, "truth": truth}
    p.kill()
    p.wait()


def test_json_gives_typed_socket_fields_live_and_recorded(net, tmp_path):
    import csv
    import io
    import json
    rec = tmp_path / "rec"
    run_cli("snapshot", "-q", "-o", rec, check=0)
    want = {t["fd"]: {k: v for k, v in t.items() if k != "fd"} for t in net["truth"]}
    for source in ([], ["--rec", rec]):
        p = run_cli("lsof", *source, "-a", "-p", net["pid"], "-i", "-U", "-f", "json", check=0)
        rows = json.loads(p.stdout)
        got = {int(r["fd"][:-1]): {k: r[k] for k in L.JSON_COLUMNS} for r in rows}
        assert got == want, source
        assert [list(r)[:len(L.COLUMNS)] for r in rows] == [list(L.COLUMNS)] * len(rows)
        # csv and the listing keep lsof's text only
        p = run_cli("lsof", *source, "-a", "-p", net["pid"], "-i", "-f", "csv", check=0)
        assert next(csv.reader(io.StringIO(p.stdout))) == list(L.COLUMNS)


def test_listening_sockets_writes_endpoints_as_every_command(net, tmp_path):
    import json
    rec = tmp_path / "rec"
    run_cli("snapshot", "-q", "-o", rec, check=0)
    listener = next(t for t in net["truth"] if t["protocol"] == "TCP" and t["state"] == "LISTEN")
    port = listener["local_port"]
    p = run_cli("query", "--rec", rec, "--name", "listening_sockets", "-f", "json", check=0)
    mine = {r["address"] for r in json.loads(p.stdout) if r["pid"] == net["pid"]}
    assert f"[::1]:{port}" in mine and f"::1:{port}" not in mine
    udp = next(t for t in net["truth"] if t["protocol"] == "UDP")
    assert f"127.0.0.1:{udp['local_port']}" in mine
    # lsof's NAME, from lsof itself, writes the same endpoint
    t = lsof_run("-a", "-p", str(net["pid"]), "-i", f"TCP:{port}", "-sTCP:LISTEN")
    assert f"[::1]:{port} (LISTEN)" in t.stdout
    from analyze.commands.diff import listener as diff_listener
    from recorder.source.procfs import endpoint
    assert endpoint("::1", port) == f"[::1]:{port}" and endpoint("10.0.0.1", 80) == "10.0.0.1:80"
    assert diff_listener("IPv6", "TCP", "::1", port, None) == f"TCP [::1]:{port}"

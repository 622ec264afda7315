"""procsnap diff narrowed as lsof selects (-c, -u, -p, ^ to exclude), and the
listening sockets bound and released inside the window: recorded for real
with short-lived processes that come and go and a port held for a moment by a
process alive at both ends (and one by a process that came and went)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = [pytest.mark.live, pytest.mark.timing]

WORKER = """
import ctypes, socket, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
s = None
if sys.argv[3] == 'bind':
    s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
    print(s.getsockname()[1], flush=True)
else:
    print('up', flush=True)
time.sleep(float(sys.argv[2]))
"""
HOLDER = """
import ctypes, socket, sys
ctypes.CDLL(None).prctl(15, b'sel-holder', 0, 0, 0)
print('up', flush=True)
s = None
for line in sys.stdin:
    if line.strip() == 'bind':
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
        print(s.getsockname()[1], flush=True)
    else:
        s.close(); s = None
        print('closed', flush=True)
"""


def snapshots(rec):
    return len(list((rec / "snapshots").glob("*/*/*.parquet")))


def wait_for(rec, n, recorder):
    deadline = time.monotonic() + 120
    while snapshots(rec) < n:
        assert recorder.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)


def worker(name, secs, bind=False):
    p = subprocess.Popen([sys.executable, "-c", WORKER, name, str(secs), "bind" if bind else "-"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    return p, (int(line) if bind else None)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diffsel")
    rec = tmp / "rec"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "up"
    recorder = subprocess.Popen([sys.executable, "-m", "analyze.cli", "record", "-o", str(rec), "-i", "0.5",
                                 "-n", "400", "-q"], cwd=ROOT)
    procs, out = [], {"rec": rec, "holder": holder.pid, "alpha": [], "beta": []}
    try:
        wait_for(rec, 2, recorder)
        # three of each name and a binder, seen in three snapshots or more, gone long before the last
        for i in range(3):
            for name in ("sel-alpha", "sel-beta"):
                p, _ = worker(name, 60)
                procs.append(p)
                out[name[4:]].append(p.pid)
        n0 = snapshots(rec)
        binder, out["binder_port"] = worker("sel-binder", 60, bind=True)
        procs.append(binder)
        out["binder"] = binder.pid
        holder.stdin.write("bind\n")
        holder.stdin.flush()
        out["holder_port"] = int(holder.stdout.readline())
        wait_for(rec, n0 + 3, recorder)
        holder.stdin.write("close\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "closed"
        for p in procs:
            p.kill()
            p.wait()
        wait_for(rec, snapshots(rec) + 3, recorder)  # the last snapshots see them gone
        recorder.send_signal(signal.SIGINT)
        assert recorder.wait(timeout=180) == 0
        yield out
    finally:
        for p in procs + [recorder, holder]:
            if p.poll() is None:
                p.kill()
                p.wait()


def diff(sc, *args, check=0):
    p = run_cli("diff", "--rec", sc["rec"], "-f", "json", *args, check=check, timeout=120)
    return json.loads(p.stdout)["comparisons"][0] if check == 0 else p


def names(items, key="name"):
    return {x[key] for x in items}


def all_processes(d):
    """Every process the diff lists, in every section."""
    ps = d["started"] + d["exited"] + d["came_and_went"]
    ps += [r[k] for r in d["restarted"] for k in ("before", "after")]
    ps += [c["process"] for c in d["changed"]] + [f["process"] for f in d["files"]]
    ps += d["listening_opened"] + d["listening_closed"] + d["bound_and_released"]
    return ps


def test_everything_is_listed_without_a_selection(scenario):
    d = diff(scenario)
    went = {p["pid"] for p in d["came_and_went"]}
    assert set(scenario["alpha"] + scenario["beta"] + [scenario["binder"]]) <= went
    bound = {(s["pid"], s["socket"]) for s in d["bound_and_released"]}
    assert (scenario["holder"], f"TCP 127.0.0.1:{scenario['holder_port']}") in bound
    assert (scenario["binder"], f"TCP 127.0.0.1:{scenario['binder_port']}") in bound
    held = [s for s in d["bound_and_released"] if s["pid"] == scenario["holder"]][0]
    assert held["name"] == "sel-holder" and held["first_seen"] <= held["last_seen"]
    # the holder is alive at both ends, listening at neither: not opened, not closed
    assert scenario["holder"] not in {s["pid"] for s in d["listening_opened"] + d["listening_closed"]}


def test_c_selects_by_command_prefix_and_regex(scenario):
    d = diff(scenario, "-c", "sel-alpha")
    assert {p["pid"] for p in d["came_and_went"]} == set(scenario["alpha"])
    assert names(all_processes(d)) == {"sel-alpha"}
    d = diff(scenario, "-c", "/^sel-(alpha|binder)$/")
    assert {p["pid"] for p in d["came_and_went"]} == set(scenario["alpha"] + [scenario["binder"]])
    assert [s["pid"] for s in d["bound_and_released"]] == [scenario["binder"]]


def test_exclusions_and_or(scenario):
    d = diff(scenario, "-c", "^sel-alpha")
    went = {p["pid"] for p in d["came_and_went"]}
    assert not went & set(scenario["alpha"]) and set(scenario["beta"]) <= went
    d = diff(scenario, "-p", str(scenario["holder"]), "-c", "sel-beta")  # ORed, as lsof
    assert {p["pid"] for p in d["came_and_went"]} == set(scenario["beta"])
    assert [s["pid"] for s in d["bound_and_released"]] == [scenario["holder"]]


def test_u_selects_by_user(scenario):
    me = str(os.geteuid())
    mine = diff(scenario, "-u", me)
    assert set(scenario["alpha"]) <= {p["pid"] for p in mine["came_and_went"]}
    assert {p["user"] for p in all_processes(mine)} <= {subprocess.run(["id", "-un"], capture_output=True,
                                                                        text=True).stdout.strip()}
    none = diff(scenario, "-u", "^" + me, "-c", "sel-")
    assert not [p for p in all_processes(none) if p["name"].startswith("sel-")]


def test_text_names_the_port_bound_and_released(scenario):
    p = run_cli("diff", "--rec", scenario["rec"], "-c", "sel-holder", check=0, timeout=120)
    assert "Listening sockets bound and released in between (1):" in p.stdout
    assert f"TCP 127.0.0.1:{scenario['holder_port']}" in p.stdout and "sel-holder" in p.stdout


@pytest.mark.parametrize("args,needle", [
    (["-p", "abc"], "illegal process ID"),
    (["-p", "1,,2"], "empty item"),
    (["-c", "/[/"], "bad regular expression"),
])
def test_bad_selections_are_usage_errors(scenario, args, needle):
    p = run_cli("diff", "--rec", scenario["rec"], *args, timeout=120)
    assert p.returncode == 2 and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1

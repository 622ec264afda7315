"""procsnap diff on a real scenario: a service restarted on a new port, another
process growing its descriptors, one process exiting, one new. The diff must
report exactly those changes, and nothing else, about the workload."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.live, pytest.mark.timing]

SERVICE = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[2]))); s.listen(); print('up', flush=True); time.sleep(300)
"""
GROWER = """
import os, signal, sys, time
held = []
def grow(*_):
    for i in range(50):
        held.append(open(os.path.join(sys.argv[2], f'data-{i}.txt'), 'w'))
    print('grown', flush=True)
signal.signal(signal.SIGUSR1, grow)
print('up', flush=True)
while True: time.sleep(1)
"""
SLEEPER = "import time; print('up', flush=True); time.sleep(300)"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(code, *args):
    p = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "up"
    return p


def ours(items, key=lambda x: x):
    return [x for x in items if "procsnap-diff-" in (key(x).get("cmdline") or "")]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diff")
    p1, p2 = free_port(), free_port()
    procs = []
    try:
        service = start(SERVICE, "procsnap-diff-service", p1)
        grower = start(GROWER, "procsnap-diff-grower", tmp)
        exiter = start(SLEEPER, "procsnap-diff-exiter")
        procs += [service, grower, exiter]
        for d in ("rec", "before"):
            run_cli("snapshot", "-o", tmp / d, "-q", check=0)
        service.kill()
        service.wait()
        service2 = start(SERVICE, "procsnap-diff-service", p2)
        procs.append(service2)
        grower.send_signal(signal.SIGUSR1)
        assert grower.stdout.readline().strip() == "grown"
        exiter.kill()
        exiter.wait()
        newcomer = start(SLEEPER, "procsnap-diff-newcomer")
        procs.append(newcomer)
        for d in ("rec", "after"):
            run_cli("snapshot", "-o", tmp / d, "-q", check=0)
        yield {"tmp": tmp, "p1": p1, "p2": p2, "service": service.pid, "service2": service2.pid,
               "grower": grower.pid, "exiter": exiter.pid, "newcomer": newcomer.pid}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def check(d, sc):
    assert [p["pid"] for p in ours(d["started"])] == [sc["newcomer"]]
    assert [p["pid"] for p in ours(d["exited"])] == [sc["exiter"]]
    restarted = ours(d["restarted"], key=lambda r: r["after"])
    assert [(r["before"]["pid"], r["after"]["pid"]) for r in restarted] == [(sc["service"], sc["service2"])]
    ch = restarted[0]["changes"]
    assert ch["listening"] == {"from": [f"TCP 127.0.0.1:{sc['p1']}"], "to": [f"TCP 127.0.0.1:{sc['p2']}"]}
    assert set(ch) == {"listening", "cmdline"}
    changed = ours(d["changed"], key=lambda c: c["process"])
    assert [c["process"]["pid"] for c in changed] == [sc["grower"]]
    fds = changed[0]["changes"]["fds"]
    assert fds["to"] - fds["from"] == 50 and list(fds["by_kind"]) == ["files"]
    assert fds["by_kind"]["files"]["to"] - fds["by_kind"]["files"]["from"] == 50
    assert set(changed[0]["changes"]) == {"fds"}
    assert [s["socket"] for s in d["listening_opened"] if s["pid"] in (sc["service"], sc["service2"])] == \
        [f"TCP 127.0.0.1:{sc['p2']}"]
    assert [s["socket"] for s in d["listening_closed"] if s["pid"] in (sc["service"], sc["service2"])] == \
        [f"TCP 127.0.0.1:{sc['p1']}"]
    mine = {sc[k] for k in ("service", "service2", "grower", "exiter", "newcomer")}
    assert not [s for s in d["listening_opened"] + d["listening_closed"]
                if s["pid"] in mine and str(sc["p1"]) not in s["socket"] and str(sc["p2"]) not in s["socket"]]
    files = [f for f in d["files"] if f["process"]["pid"] in mine]
    assert len(files) == 1 and files[0]["process"]["pid"] == sc["grower"]
    assert files[0]["opened_count"] == 50 and files[0]["closed_count"] == 0
    assert all(n.startswith(str(sc["tmp"])) for n in files[0]["opened"])


def test_two_moments_of_one_recording(scenario):
    p = run_cli("diff", "--rec", scenario["tmp"] / "rec", "-f", "json", check=0)
    out = json.loads(p.stdout)
    assert len(out["comparisons"]) == 1
    check(out["comparisons"][0], scenario)


def test_before_and_after_recordings(scenario):
    p = run_cli("diff", scenario["tmp"] / "before", scenario["tmp"] / "after", "-f", "json", check=0)
    d = json.loads(p.stdout)["comparisons"][0]
    check(d, scenario)
    assert d["from"]["label"] == "before" and d["came_and_went"] == []


def test_text_is_grouped_by_kind(scenario):
    out = run_cli("diff", scenario["tmp"] / "before", scenario["tmp"] / "after", check=0).stdout
    for title in ("Processes started", "Processes exited", "Processes restarted", "Listening sockets opened",
                  "Listening sockets closed", "Processes changed", "Files opened and closed"):
        assert title in out
    assert f"pid {scenario['service']} → {scenario['service2']}" in out
    assert f"listening: TCP 127.0.0.1:{scenario['p1']} → TCP 127.0.0.1:{scenario['p2']}" in out


def test_exit_code_and_threshold(scenario):
    rec = scenario["tmp"] / "rec"
    assert run_cli("diff", "--rec", rec, "--exit-code").returncode == 1
    same = run_cli("diff", "--rec", rec, "--from", "end", "--to", "end", "--exit-code")
    assert same.returncode == 0 and "no differences" in same.stdout
    hidden = json.loads(run_cli("diff", "--rec", rec, "-f", "json", "--threshold", "100000", check=0).stdout)
    assert not ours(hidden["comparisons"][0]["changed"], key=lambda c: c["process"])


@pytest.mark.parametrize("args,needle", [
    (["diff"], "give --rec DIR"),
    (["diff", "only-one"], "give --rec DIR"),
    (["diff", "--rec", "REC", "a", "b"], "not both"),
    (["diff", "--rec", "REC", "-f", "xml"], "bad format"),
    (["diff", "--rec", "REC", "--from", "end", "--to", "start"], "--from is after --to"),
    (["diff", "--rec", "REC", "--from", "nonsense"], "bad time"),
    (["diff", "/nonexistent", "/nonexistent2"], "no such recording"),
    (["diff", "--rec", "REC", "--threshold", "-1"], "threshold"),
])
def test_errors(scenario, args, needle):
    args = [str(scenario["tmp"] / "rec") if a == "REC" else a for a in args]
    p = run_cli(*args)
    assert p.returncode in (1, 2) and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1

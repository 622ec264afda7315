"""Checks of the benchmark harness itself (not of procsnap's speed).

Run with: pytest bench/test_bench.py   (as root, like the rest of the suite)
"""

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.live, pytest.mark.timing]

HERE = os.path.dirname(os.path.abspath(__file__))
LOADGEN = os.path.join(HERE, "loadgen.py")
RUN = os.path.join(HERE, "run.py")
EVENTS = os.path.join(HERE, "events.py")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(tmp_root, *args):
    p = subprocess.Popen([sys.executable, LOADGEN, "--tmp-root", str(tmp_root), *args],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p, json.loads(p.stdout.readline())


def _wait_gone(pids, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(x) for x in pids):
            return True
        time.sleep(0.1)
    return False


def test_loadgen_opens_the_mix_and_cleans_up(tmp_path):
    p, info = _start(tmp_path, "-N", "8", "-M", "40", "-K", "3")
    try:
        assert info["procs"] == len(info["pids"]) == 8
        assert info["threads_total"] == 24
        kinds = set()
        for pid in info["pids"]:
            fds = os.listdir(f"/proc/{pid}/fd")
            assert 38 <= len(fds) <= 46
            assert len(os.listdir(f"/proc/{pid}/task")) == 3
            for fd in fds:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                kinds.add(target.split(":")[0] if ":" in target else
                          "deleted" if target.endswith("(deleted)") else "path")
            with open(f"/proc/{pid}/maps") as f:
                assert "data-" in f.read()  # an mmapped file
        assert {"socket", "pipe", "anon_inode", "deleted", "path"} <= kinds
        assert os.path.isdir(info["tmpdir"])
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    assert _wait_gone(info["pids"])
    assert not os.path.exists(info["tmpdir"])


def test_loadgen_sigkill_kills_children_and_next_run_removes_the_dir(tmp_path):
    p, info = _start(tmp_path, "-N", "4", "-M", "20", "-K", "2", "--leakers", "1", "--burners", "1",
                     "--burn-duty", "0.1")
    p.kill()
    p.wait()
    assert _wait_gone(info["pids"] + info["leaker_pids"] + info["burner_pids"])
    assert os.path.exists(info["tmpdir"])  # nothing could run on SIGKILL
    p2, info2 = _start(tmp_path, "-N", "1", "-M", "10", "-K", "1", "--hold", "0.1")
    assert p2.wait(30) == 0
    assert not os.path.exists(info["tmpdir"]) and not os.path.exists(info2["tmpdir"])


def _fd_kinds(pid: int) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            mode = os.stat(f"/proc/{pid}/fd/{fd}").st_mode
        except OSError:
            continue
        kind = ("socket" if target.startswith("socket:") else
                "regular" if stat.S_ISREG(mode) else "other")
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


@pytest.mark.parametrize("mix, kind, share", [("files", "regular", 0.6), ("sockets", "socket", 0.7)])
def test_loadgen_mix(tmp_path, mix, kind, share):
    p, info = _start(tmp_path, "-N", "4", "-M", "50", "-K", "2", "--mix", mix)
    try:
        assert info["mix_name"] == mix and info["profiles"] == {mix: 4}
        counts: dict[str, int] = {}
        for pid in info["pids"]:
            for k, v in _fd_kinds(pid).items():
                counts[k] = counts.get(k, 0) + v
        assert counts.get(kind, 0) >= share * sum(counts.values()), counts
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    assert _wait_gone(info["pids"])


def test_runner_mixes(tmp_path):
    """--mix runs each scale once per mix: a summary row and a section each, the threads mix reshaped."""
    out = tmp_path / "BENCH.md"
    raw = tmp_path / "runs.json"
    r = subprocess.run([sys.executable, RUN, "--quick", "--no-issue6", "--no-warmup", "--scales", "6x20x2",
                        "--repeat", "1", "--mix", "files,sockets,threads",
                        "--tools", "procsnap snapshot,lsof -n -P -K i,ps -eLo,ss -tunapx",
                        "--out", str(out), "--json", str(raw)], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    for mix, shape in (("files", "6x20x2"), ("sockets", "6x20x2"), ("threads", "6x10x10")):
        assert f"## Scale {shape} {mix}: " in text
        assert re.search(rf"^\| {mix} \| {shape} \| [\d.]+ \| [\d.]+ \| \*\*[\d.]+\*\* \|", text, re.M), mix
        assert f"full snapshot CPU / (lsof -K i + ps -eLo + ss) CPU, {shape} {mix}" in text
        assert f"one-shot `procsnap snapshot` wall, {shape} {mix}" in text
    assert "## Scale 6x20x2:" not in text  # no default mix unless asked
    results = json.loads(raw.read_text())
    assert [(x["mix"], x["label"]) for x in results] == [
        ("files", "6x20x2 files"), ("sockets", "6x20x2 sockets"), ("threads", "6x10x10 threads")]
    assert results[0]["loadgen_argv"].endswith("--mix files")
    assert results[2]["load"]["threads_total"] == 60 and "--mix" not in results[2]["loadgen_argv"]
    assert all(x["cleanup"]["alive"] == 0 and not x["cleanup"]["tmpdir_left"] for x in results)


def test_runner_unknown_mix(tmp_path):
    r = subprocess.run([sys.executable, RUN, "--quick", "--mix", "files,bogus", "--out", str(tmp_path / "x.md")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "unknown mix bogus" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.md").exists()


def test_runner_quick(tmp_path):
    out = tmp_path / "BENCH.md"
    raw = tmp_path / "runs.json"
    # with the process connector, the events section too (bench/events.py's measure and section, as
    # run.py --events-minutes runs them): one runner start for both
    events_args = ["--events-minutes", "0.05", "--events-rate", "50"] if _connector() is None else []
    before = _atop_state()
    r = subprocess.run([sys.executable, RUN, "--quick", "--out", str(out), "--json", str(raw), *events_args],
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "## Scale 20x10x2" in text and "## Machine" in text
    assert "## Scale 20x10x2 " not in text  # --quick: the default mix only
    assert "procsnap CPU / (lsof -n -P -K i + ps -eLo + ss) CPU" in text
    for tool in ("procsnap snapshot", "lsof -n -P -K i", "ps -eLo", "ss -tunapx"):
        assert f"| {tool} |" in text
    runs = json.loads(raw.read_text())[0]["runs"]
    # interleaved: two rounds, every tool once per round, rotated order
    rounds = {}
    for x in runs:
        rounds.setdefault(x["round"], []).append(x["tool"])
    assert sorted(rounds) == [0, 1] and rounds[0][1:] + rounds[0][:1] == rounds[1]
    assert all(x["status"] == 0 and x["cpu"] > 0 and x["rss_kib"] > 0 for x in runs)
    # a tool's peak RSS is its own, not the runner's (ps is a few MiB)
    assert min(x["rss_kib"] for x in runs if x["tool"] == "ss -tunapx") < 10 * 1024
    assert "0 load processes left, temp dir removed" in text
    # issue 6: continuous recording, long recordings, live commands and the budget table
    assert "## Issue 6 budgets" in text and "### Continuous recording" in text
    assert "`procsnap record --help` defaults: `--interval`" in text
    assert "| peak RSS (VmHWM) |" in text and "| snapshots written (with descriptors) |" in text
    assert "### Analyzer on long recordings" in text and "| 30s |" in text and "| 2m |" in text
    for cmd in ("procsnap lsof --rec R --at", "procsnap ps --rec R --at", "procsnap diff --rec R --from",
                "procsnap report R"):
        assert cmd in text
    assert "### Live commands" in text and "| `lsof -n -P -i :" in text and "| `ps -p " in text
    # bytes once the recorder compacted a real recording itself
    assert "### Bytes once compacted" in text and "| compacted files | " in text
    assert "| compacted files | 0 |" not in text
    budgets = ["continuous recording CPU", "continuous recording peak RSS", "`lsof --at -p` on the 2m",
               "`ps --at aux` 2m / 30s", "processes+threads+host snapshot"]
    if shutil.which("atop"):  # the bytes row compares with atop's raw file
        budgets.append("bytes of one snapshot")
    for budget in budgets:
        assert budget in text
    # issue 19's decisions: the one-shot command is judged by wall time, a fresh snapshot's bytes and the
    # uncompacted tail are reported only, the always-on recorder's peak RSS is budgeted at 100 MB
    assert re.search(r"^\| one-shot `procsnap snapshot` wall, 20x10x2 \| < 1 s \| ", text, re.M)
    assert re.search(r"^\| processes\+threads\+host snapshot / atop 1 sample CPU, 20x10x2 \| – \| .* \| "
                     r"reported, not budgeted \|", text, re.M)
    assert re.search(r"^\| processes\+threads\+host snapshot inside a running recorder .* \| ≤ 0.7 \| ", text, re.M)
    assert re.search(r"^\| continuous recording peak RSS, 20x10x2 \| ≤ 100 MB \| ", text, re.M)
    assert re.search(r"^\| recorder peak RSS once it compacts, 20x10x2 \| ≤ 100 MB \| ", text, re.M)
    if shutil.which("atop"):
        assert re.search(r"^\| bytes of one snapshot \(fresh folder\) .* \| – \| .* \| reported, not budgeted \|",
                         text, re.M)
        assert re.search(r"^\| bytes per snapshot while recording continuously .* \| reported, not budgeted \|",
                         text, re.M)
        assert re.search(r"^\| bytes per snapshot of a compacted real recording .* \| ≤ 1 \| ", text, re.M)
    assert " exit 1, stderr" not in text  # every analyzer command ran
    if events_args:
        assert _atop_state() == before
        _check_events(json.loads(raw.read_text())[-1]["events"], text)
    else:
        assert "## Process and kernel events" not in text


def _connector() -> str | None:
    """Why the process connector, taskstats and process accounting cannot be used here (None: they can)."""
    if os.geteuid() != 0:
        return "the process connector, taskstats and process accounting need root"
    from recorder.source import proc_events
    try:
        proc_events.Connector.open().close()
    except proc_events.Unavailable as e:
        return f"no process connector: {e}"
    return None


def _atop_state() -> tuple:
    """What a run must leave as it found it: atopacctd's daemons (alive: an exited one's zombie
    waits for init to reap it) and files."""
    daemons = []
    for pid in subprocess.run(["pgrep", "-x", "atopacctd"], capture_output=True, text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/stat") as f:
                alive = f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            alive = False
        if alive:
            daemons.append(pid)
    return sorted(daemons), os.path.exists("/run/pacct_source"), os.path.exists("/run/pacct_shadow.d")


def _check_events(res: dict, text: str) -> None:
    """The events measure (an idle then loaded recorder, the load's execs found in the recording,
    atop's accounting beside it and switched off again) and its section in the report."""
    g = res["generator"]
    assert g["execs"] == sum(g["started"].values()) and min(g["started"].values()) > 0
    assert 40 <= g["achieved_rate"] <= 60 and g["ended"]["status3"] == g["started"]["exit3"]
    st = res["stored"]
    # the load's rows are told from the host's by their parent: never more than were started
    assert 0 < st["execs"] <= g["execs"] and st["exits"] <= g["execs"] and st["forks"] <= g["execs"]
    assert st["exits_status3"] <= g["started"]["exit3"] and st["secret_leaks"] == 0
    assert res["idle"]["seconds"] > 0 and res["load"]["seconds"] > res["generator"]["spawn_seconds"]
    assert res["load"]["vmhwm"] > 0 and res["load"]["event_bytes"] > 0 and res["recorder_exit"] == 0
    assert res["figures"]["extra_cpu_per_1000_execs_s"] is not None
    a = res["atop"]
    if a.get("how"):
        assert a["records"] >= a["by_generator"] > 0 and a["left_behind"] == []
    else:
        assert a["off"]
    assert "\n## Process and kernel events (issue 20)\n" in text and "--events-minutes 0.05" in text
    assert text.index("## Process and kernel events") < text.index("## Scale 20x10x2")
    for row in ("| **extra recorder CPU per 1,000 execs** | **", "| exec events stored / execs started | ",
                "| **bytes events add per day at this rate** | **", "| peak RSS (VmHWM) at the window's end |"):
        assert row in text
    assert "### atop's process accounting, same load, same window" in text


def test_events_generator_alone():
    """bench/events.py --generate: the load alone, paced, each kind of program started."""
    r = subprocess.run([sys.executable, EVENTS, "--generate", "--minutes", "0.02", "--rate", "50"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    g = json.loads(r.stdout)
    assert g["execs"] == sum(g["started"].values()) > 0 and min(g["started"].values()) > 0


def test_synth_layouts(tmp_path):
    """bench/synth.py writes procsnap's layout; descriptors only on descriptor snapshots; compacted files."""
    sys.path.insert(0, HERE)
    import pyarrow.parquet as pq
    import synth

    procsnap = os.path.join(os.path.dirname(sys.executable), "procsnap")
    src = tmp_path / "src"
    subprocess.run([procsnap, "snapshot", "-o", str(src), "-q"], check=True)
    out = tmp_path / "per"
    info = synth.Synth(src, out, 60, 5, 20).run()
    assert info["snapshots"] == 13 and info["fd_snapshots"] == 4 and (out / "procsnap.json").exists()
    snaps = sorted((out / "snapshots").glob("host=*/date=*/*.parquet"))
    assert len(snaps) == 13 and all(synth.DATA_NAME.match(f.name) for f in snaps)
    assert len(list((out / "open_files").glob("host=*/date=*/*.parquet"))) == 4
    t = pq.ParquetFile(snaps[1]).read()
    assert t.column("ms_open_files")[0].as_py() is None and t.column("ms_processes")[0].as_py() is not None
    assert t.column("snapshot_id")[0].as_py() == info["first_id"] + 5_000_000
    r = subprocess.run([procsnap, "query", "--rec", str(out), "-f", "json",
                        "SELECT count(*) AS n, count(ms_open_files) AS fd FROM snapshots"],
                       capture_output=True, text=True, check=True)
    assert json.loads(r.stdout) == [{"n": 13, "fd": 4}]
    comp = tmp_path / "comp"
    info = synth.Synth(src, comp, 60, 5, None, layout="compacted:5").run()
    files = sorted(f.name for f in (comp / "snapshots").glob("host=*/date=*/*.parquet"))
    assert len(files) == 3 and all(f.startswith("c") for f in files)
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in (comp / "snapshots").glob("*/*/*.parquet")) == 13


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_fleet_copies_one_host_and_rewrites_its_section(tmp_path):
    """bench/fleet.py: a fleet is one host's recording under each host's folders (hard links),
    read by procsnap as that many hosts; its section of BENCHMARKS.md is replaced, not added."""
    sys.path.insert(0, HERE)
    try:
        import fleet
    finally:
        sys.path.remove(HERE)
    from analyze.data.db import Recording
    from tests.support.synthetic import proc, snapshot, write
    one = tmp_path / "one"
    write(one, [snapshot(i, {"processes": [proc(7, i, "x")]}) for i in range(3)])
    n = fleet.replicate(str(one), str(tmp_path / "f"), ["a", "b", "c"])
    assert n == 3 * len([p for p in one.rglob("*.parquet")])
    rec = Recording.open([str(tmp_path / "f")])
    assert rec.query("SELECT host, count(*) FROM processes GROUP BY 1 ORDER BY 1")[1] == [("a", 3), ("b", 3), ("c", 3)]
    md = tmp_path / "B.md"
    md.write_text("# title\n")
    fleet.write(str(md), f"{fleet.BEGIN}\nfirst\n{fleet.END}\n")
    fleet.write(str(md), f"{fleet.BEGIN}\nsecond\n{fleet.END}\n")
    assert md.read_text() == f"# title\n\n{fleet.BEGIN}\nsecond\n{fleet.END}\n"

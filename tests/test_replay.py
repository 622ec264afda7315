"""procsnap replay: the UI driven by Textual's pilot (keys in, what is on screen out) over a
recording we build, and once in a real terminal (tmux).

The recording holds six snapshots of host h1, 10 s apart (03:00:00 to 03:00:50): a web server
(pid 100, 3 threads, 50 % of a CPU) and its child (pid 101, 10 %), a hog whose memory grows
until the OOM killer kills it after the fourth snapshot, a process named with escape
sequences and a newline (pid 666), open files and sockets on the first and fourth snapshots
(a listener on 8080, a file with an escape sequence in its name), a short-lived process killed
by SIGKILL in the second interval and the OOM kill in the fifth.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
import os
import re
import shutil
import subprocess
import sys
import time

import pyarrow as pa
import pytest

from tests.support.events import at, ev, kern, short
from tests.support.synthetic import MiB, T0, proc, snapshot, system_row, write

EVIL = "evil\x1b[2J\nname"
EVIL_FILE = "/tmp/\x1b]0;pwned\x07x"
WIDTH, HEIGHT = 120, 40


def procs(i):
    rows = [proc(1, i, "systemd"),
            proc(100, i, "web", user="www-data", utime=1.0 + 5.0 * i, num_threads=3, rss=200 * MiB,
                 cgroup="/system.slice/web.service"),
            proc(101, i, "web-child", ppid=100, user="www-data", utime=1.0 + 1.0 * i, rss=20 * MiB),
            proc(666, i, EVIL, user="mallory", rss=1 * MiB)]
    if i <= 3:
        rows.append(proc(300, i, "hog", rss=(100 + 200 * i) * MiB))
    return rows


def threads(i):
    return [{"boot_id": "b1", "pid": 100, "tid": t, "start_time": T0 - dt.timedelta(hours=1),
             "name": "web" if t == 100 else f"web-w{t}", "state": "S", "nice": 0, "priority": 20, "processor": 0,
             "utime": 1.0 + i, "stime": 0.0, "minflt": 0, "majflt": 0} for t in (100, 101, 102)]


def fd(pid, fdn, typ, name, **kw):
    return {"pid": pid, "fd": str(fdn), "fd_num": fdn if isinstance(fdn, int) else None, "mode": kw.pop("mode", "r"),
            "type": typ, "device": kw.pop("device", "254,0"), "name": name, "deleted": False, **kw}


def descriptors():
    files = [fd(100, "cwd", "DIR", "/srv", mode=None, size=4096, inode=2),
             fd(100, 3, "IPv4", "127.0.0.1:8080 (LISTEN)", mode="u", device="5000", inode=5000, proto="TCP", pos=0),
             fd(100, 4, "IPv4", "127.0.0.1:8080->127.0.0.1:40000 (ESTABLISHED)", mode="u", device="5001",
                inode=5001, proto="TCP", pos=0),
             fd(100, 5, "REG", "/var/log/web.log", mode="w", size=100, pos=100, inode=7),
             fd(666, 3, "REG", EVIL_FILE, size=1, pos=0, inode=8)]
    socks = [{"pid": 100, "fd": 3, "inode": 5000, "family": "IPv4", "proto": "TCP", "state": "LISTEN",
              "local_addr": "127.0.0.1", "local_port": 8080, "remote_addr": "0.0.0.0", "remote_port": 0},
             {"pid": 100, "fd": 4, "inode": 5001, "family": "IPv4", "proto": "TCP", "state": "ESTABLISHED",
              "local_addr": "127.0.0.1", "local_port": 8080, "remote_addr": "127.0.0.1", "remote_port": 40000}]
    return files, socks


def build(path):
    snaps = []
    for i in range(6):
        tables = {"processes": procs(i), "threads": threads(i), "system": [system_row(i)]}
        if i in (0, 3):
            tables["open_files"], tables["sockets"] = descriptors()
        if i == 2:
            tables["process_events"] = short(207, 100, at(1, 6000), "victim", "victim", signal=9)
        if i == 4:
            tables["process_events"] = [ev("exit", 300, at(3, 5000), ppid=1, name="hog", signal=9,
                                           core_dumped=False, uid=0, start_time=T0 - dt.timedelta(hours=1))]
            tables["kernel_events"] = [kern(2, at(3, 4999), "oom_kill", "Memory cgroup out of memory: Killed process "
                                            "300 (hog)", pid=300, comm="hog", uid=0, anon_rss=900 * MiB)]
        s = snapshot(i, tables)
        if i not in (0, 3):  # descriptors not taken (the recorder's slower cadence): NULL, not 0 seen
            snaps_row = s.tables["snapshots"].to_pylist()[0]
            snaps_row.update(open_files_seen=None, sockets_seen=None)
            s.tables["snapshots"] = pa.Table.from_pylist([snaps_row], schema=s.tables["snapshots"].schema)
        snaps.append(s)
    write(path, snaps)
    return path


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    return build(tmp_path_factory.mktemp("replay") / "rec")


def screen(app) -> list[str]:
    """What the app shows, line by line: the bar, the time line, the view's rows, the note and
    the command line (Textual's own widgets draw the rest: the keys)."""
    from analyze.commands.replay.lines import Lines
    lines = app.query_one(Lines)
    out = [str(app.query_one("#bar").content), str(app.query_one("#timeline").content)]
    out += [lines.render_line(y).text.rstrip() for y in range(lines.size.height)]
    out += [str(app.query_one("#note").content), str(app.query_one("#cmd").content)]
    return out


def drive(rec, keys, check, size=(WIDTH, HEIGHT), **kw):
    """Open REC, press KEYS (a list of keys, or of ("type", text) pasted into a prompt), then call
    check(app, screen)."""
    return session(rec, [(keys, check)], size, **kw)[0]


def session(rec, steps, size=(WIDTH, HEIGHT), **kw):
    """One app over REC: for each (keys, check) of STEPS, press the keys, then check(app, screen)."""
    from analyze.commands.replay.app import ReplayApp
    from analyze.commands.replay.source import Source

    async def main():
        app = ReplayApp(Source([str(rec)]), **kw)
        out = []
        async with app.run_test(size=size) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            for keys, check in steps:
                for k in keys:
                    if isinstance(k, tuple):  # a typed value: replaces what the prompt holds, then Enter
                        app.query_one("#ask").value = k[1]
                        await pilot.press("enter")
                    else:
                        await pilot.press(k)
                await app.workers.wait_for_complete()
                await pilot.pause()
                out.append(check(app, screen(app)))
        return out
    return asyncio.run(main())


def body(app):
    return app.query_one("#lines").body


@functools.lru_cache(maxsize=None)
def top_text(rec, at, sort="cpu", width=WIDTH):
    from analyze.commands import top as T
    out = io.StringIO()
    T.run([str(rec)], at, None, None, sort, "text", width, out=out, err=io.StringIO())
    return out.getvalue().splitlines()


def test_opens_at_the_last_snapshot_with_tops_table_and_command(rec):
    def check(app, s):
        assert "03:00:50 UTC" in s[0] and "6/6" in s[0] and "processes" in s[0]
        assert s[1].endswith("▼")
        assert s[-1] == f"$ procsnap top --rec {rec} --at 2026-11-28T03:00:50Z --sort cpu -w {WIDTH}"
        # the very lines procsnap top prints for that moment: heading and rows, same numbers
        want = top_text(rec, "2026-11-28T03:00:50Z")
        table = want[want.index(next(x for x in want if x.lstrip().startswith("PID"))):]
        assert s[2] == table[0]
        assert body(app) == table[1:]
        assert body(app)[0].split()[-1] == "web" and body(app)[0].split()[8] == "50.0"
    drive(rec, [], check)


def test_time_keys_step_as_atop(rec):
    def at(shown, note=""):
        def check(app, s):
            assert shown in s[0] and s[-2] == note
        return check
    session(rec, [(["T"], at("03:00:40 UTC  5/6")), (["T", "t"], at("03:00:40 UTC  5/6")),
                  (["g"], at("03:00:00 UTC  1/6")), (["T"], at("03:00:00 UTC  1/6", "no earlier snapshot")),
                  (["t"], at("03:00:10 UTC  2/6")), (["G"], at("03:00:50 UTC  6/6")),
                  (["t"], at("03:00:50 UTC  6/6", "no later snapshot"))])


def test_a_click_on_the_time_line_goes_there(rec):
    async def main():
        from analyze.commands.replay.app import ReplayApp
        from analyze.commands.replay.source import Source
        app = ReplayApp(Source([str(rec)]))
        async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
            await pilot.click("#timeline", offset=(2, 0))
            await pilot.pause()
            s = screen(app)
            assert "03:00:20 UTC  3/6" in s[0] and s[1] == "━━▼━!━"
    asyncio.run(main())


def test_the_time_line_columns_of_a_long_recording():
    from analyze.commands.replay.lines import column_of, snapshot_at, timeline
    assert timeline(577, 576, 80, {10: ["oom_kill"]}, mark=0) == "m" + "━" * 0 + "!" + "━" * 77 + "▼"
    for x in range(80):
        i = snapshot_at(x, 577, 80)
        assert column_of(i, 577, 80) == x  # the snapshot a click picks is drawn in that column
    assert snapshot_at(80, 577, 80) is None and snapshot_at(5, 6, 80) == 5 and snapshot_at(6, 6, 80) is None


def test_b_goes_to_a_typed_time_as_at_does(rec):
    def to(shown):
        def check(app, s):
            assert shown in s[0]
            at = s[-1].split("--at ")[1].split()[0]
            assert body(app) == top_text(rec, at)[-len(body(app)):]  # the rates of that moment, as top --at
        return check

    def bad(app, s):  # one line, and the moment stays
        assert "5/6" in s[0] and s[-2].startswith("bad time 'nope'")
    session(rec, [(["b", ("type", "03:00:25")], to("03:00:20 UTC  3/6")),
                  (["b", ("type", "-30s")], to("03:00:20 UTC  3/6")),
                  (["b", ("type", "+10s")], to("03:00:10 UTC  2/6")),
                  (["b", ("type", "2026-11-28T03:00:40")], to("03:00:40 UTC  5/6")),
                  (["b", ("type", "nope")], bad)])


def test_host_view(rec):
    def check(app, s):
        text = "\n".join(s)
        assert "%Cpu(s):" in text and "MiB Mem" in text and "PSI some:" in text
        assert "CPU busy %" in text and any(c in text for c in "▁▂▃▄▅▆▇█")
        assert s[-1] == f"$ procsnap top --rec {rec} --at 2026-11-28T03:00:40Z -n 0"
        assert "1 killed" in text and "1 oom_kill" in text  # the interval ending at 03:00:40
        # the time line marks the intervals with kernel reports or killed processes (the one shown: ▼)
        assert s[1] == "━━!━▼━"
    drive(rec, ["h", "T"], check)


def test_sort_filter_tree(rec):
    def mem(app, s):
        assert [x.split()[-1] for x in body(app)[:3]] == ["web", "systemd", "web-child"]  # hog is gone at 03:00:50
        assert "--sort mem" in s[-1] and "sort mem" in s[0]

    def mem_before(app, s):
        assert body(app)[0].split()[-1] == "hog"  # 700 MiB at 03:00:30

    def tree(app, s):
        i = next(k for k, x in enumerate(body(app)) if x.split()[0] == "100")
        assert body(app)[i + 1].split()[0] == "101" and body(app)[i + 1].endswith(" \\_ web-child")
        assert "tree" in s[0]

    def reverse(app, s):
        assert body(app)[-1].split()[-1] == "web" and "--sort -cpu" in s[-1]
    session(rec, [(["M"], mem), (["T", "T"], mem_before), (["G", "C", "V"], tree), (["V", "R"], reverse)])

    def only(app, s):
        assert [x.split()[0] for x in body(app)] == ["100", "101"]
        assert "filter user:www-data" in s[0]

    def search(app, s):
        lines = app.query_one("#lines")
        assert "web-child" in lines.body[lines.cursor]

    def follows(app, s):  # sorted by memory, the hog moves up through time: the cursor stays on it
        lines = app.query_one("#lines")
        assert lines.body[lines.cursor].split()[0] == "300" and "03:00:30" in s[0]
    session(rec, [(["f", ("type", "user:www-data")], only), (["slash", ("type", "child")], search),
                  (["f", ("type", "")], lambda app, s: None),
                  (["M", "g", "slash", ("type", "hog"), "t", "t", "t"], follows)])


def test_one_process_its_threads_files_and_events(rec):
    def check(app, s):
        text = "\n".join(body(app))
        assert "process 100" in s[0]
        assert "threads: 3" in text and "web-w101" in text and "web-w102" in text
        assert "open files: 4" in text and "/var/log/web.log" in text and "8080 (LISTEN)" in text
        assert "from the snapshot at 2026-11-28 03:00:30 UTC" in text  # the last one with open files
        assert s[-1] == f"$ procsnap lsof --rec {rec} --at 2026-11-28T03:00:30Z -p 100"
        assert "%CPU" in text and "RSS" in text
    drive(rec, ["enter"], check)

    def back(app, s):
        assert "processes" in s[0]
    drive(rec, ["enter", "escape"], back)

    def victim(app, s):
        text = "\n".join(body(app))
        assert "process 300" in s[0] and "lifecycle events of pid 300 in the recording: 2" in text
        assert "SIGKILL (9)" in text
    drive(rec, ["b", ("type", "03:00:30"), "M", "home", "enter"], victim)  # the top row: the hog


def test_sockets_files_and_events_views(rec):
    def sockets(app, s):
        text = "\n".join(s)
        assert "LISTEN 1" in text and "ESTABLISHED 1" in text and "listening ports: 8080" in text
        assert s[-1] == f"$ procsnap lsof --rec {rec} --at 2026-11-28T03:00:30Z -i"
        assert len(body(app)) == 2
    drive(rec, ["s"], sockets)

    def listeners(app, s):
        assert len(body(app)) == 1 and s[-1].endswith("-i -sTCP:LISTEN")
    drive(rec, ["s", "l"], listeners)

    def files(app, s):
        assert len(body(app)) == 5 and s[-1] == f"$ procsnap lsof --rec {rec} --at 2026-11-28T03:00:30Z"
    drive(rec, ["o"], files)

    def events(app, s):
        text = "\n".join(body(app))
        assert "oom_kill" in text and "hog" in text
        assert s[-1] == (f"$ procsnap events --rec {rec} --from 2026-11-28T03:00:30Z --to 2026-11-28T03:00:40Z")
    drive(rec, ["e", "T"], events)


def test_mark_and_diff(rec):
    def check(app, s):
        text = "\n".join(body(app))
        assert "diff" in s[0]
        assert "hog" in text  # gone between the mark and now
        assert s[-1] == f"$ procsnap diff --rec {rec} --from 2026-11-28T03:00:20Z --to 2026-11-28T03:00:50Z"
    drive(rec, ["g", "t", "t", "m", "G", "d"], check)

    def no_mark(app, s):
        assert s[-2].startswith("m marks a moment first")
    drive(rec, ["d"], no_mark)


def test_hostile_names_are_escaped_never_interpreted(rec):
    def shows(where):
        def check(app, s):
            text = "\n".join(s)
            assert "\x1b" not in text and "\x07" not in text and "\n" not in "".join(body(app))
            assert where in text
        return check
    session(rec, [(["M"], shows("evil\\x1b[")),                      # as top escapes names
                  (["o"], shows("/tmp/^[]0;pwned^Gx")),                  # as lsof escapes names
                  (["b", ("type", "03:00:30"), "f", ("type", "mallory"), "enter"], shows("/tmp/^[]0;pwned^Gx"))])


def test_without_colour(rec, monkeypatch):
    """NO_COLOR: Textual draws in monochrome, every row as well (Textual's filter reads each
    segment's style)."""
    monkeypatch.setenv("NO_COLOR", "1")

    def check(app, s):
        assert app.no_color and body(app)[0].split()[-1] == "web"
        app.save_screenshot(str(rec.parent / "mono.svg"))  # every row through the monochrome filter
    drive(rec, ["down"], check)


def test_a_resized_terminal_redraws_tops_table_to_its_width(rec):
    async def main():
        from analyze.commands.replay.app import ReplayApp
        from analyze.commands.replay.source import Source
        app = ReplayApp(Source([str(rec)]))
        async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
            await pilot.pause()
            await pilot.resize_terminal(90, 30)
            await pilot.pause()
            await pilot.pause()
            assert screen(app)[-1].endswith("--sort cpu -w 90")
    asyncio.run(main())


def test_works_at_80x24(rec):
    def check(app, s):
        assert len(s) == 24 - 1 - 0 and all(len(x) <= 80 for x in s[2:-2])
        assert "--sort cpu -w 80" in s[-1]
    drive(rec, [], check, size=(80, 24))


def test_a_damaged_file_is_named_and_the_rest_answers(rec, tmp_path):
    copy = tmp_path / "rec"
    shutil.copytree(rec, copy)
    victim = sorted((copy / "processes").rglob("*.parquet"))[2]
    victim.write_bytes(victim.read_bytes()[:100])

    def check(app, s):
        assert "skipped" in s[-2] and victim.name in s[-2]
        assert "6/6" in s[0] and body(app)
    drive(copy, [], check)


def test_a_flipped_page_is_found_in_the_background_and_left_out(rec, tmp_path):
    """The page checksums are checked after the UI opens; a file failing them is left out and
    named, as a command would."""
    from tests.test_damage import _with_page_checksums
    copy = tmp_path / "rec"
    shutil.copytree(rec, copy)
    _with_page_checksums(copy)
    victim = sorted((copy / "system").rglob("*.parquet"))[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 0xFF
    victim.write_bytes(bytes(data))

    def check(app, s):
        assert victim.name in s[-2]
    drive(copy, [], check)


def test_a_page_found_damaged_by_a_query_is_left_out_and_named(rec, tmp_path, monkeypatch):
    """Without the page checks (PROCSNAP_VERIFY=0) a page DuckDB cannot decompress is found when a
    view reads it: the recording is opened again without the file, which is named, and the view
    answers from the rest."""
    from tests.test_damage import undecompressable
    monkeypatch.setenv("PROCSNAP_VERIFY", "0")
    copy = tmp_path / "rec"
    shutil.copytree(rec, copy)
    victim = sorted((copy / "processes").rglob("*.parquet"))[-1]  # the last snapshot's: shown first
    undecompressable(victim)

    def check(app, s):
        assert victim.name in s[-2] and "PARTIAL" in s[-2] and "SQL error" not in s[-2]
        assert "6/6  process 100" in s[0] and "open files: 4" in "\n".join(body(app))
    drive(copy, ["enter"], check)  # ps's columns (the command line among them): every column is read


# ---- in a real terminal

def tmux(*args, check=True):
    return subprocess.run(["tmux", "-L", "procsnap-replay-test", *args], capture_output=True, text=True, check=check)


def wait_for(pane_has, timeout=20.0):
    end = time.monotonic() + timeout
    text = ""
    while time.monotonic() < end:
        text = tmux("capture-pane", "-p", "-t", "t").stdout
        if pane_has(text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"not on screen after {timeout} s:\n{text}")


@pytest.mark.tools("tmux")
def test_in_a_real_terminal_and_the_terminal_is_restored(rec):
    procsnap = os.path.join(os.path.dirname(sys.executable), "procsnap")
    tmux("kill-server", check=False)
    tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", "env", "TERM=xterm-256color", "PS1=$ ", "sh")
    try:
        for n, quit_key in enumerate(("q", "C-c")):
            tmux("send-keys", "-t", "t", "clear", "Enter")
            tmux("send-keys", "-t", "t", f"{procsnap} replay {rec}; echo EXIT{n}=$?; stty -a | tr ' ' '\\n' | "
                                         "grep -x -e -icanon -e icanon -e -echo -e echo | tr '\\n' ' '; echo",
                 "Enter")
            text = wait_for(lambda t: "sort cpu" in t)
            assert "03:00:50 UTC" in text and "web" in text
            assert tmux("display", "-p", "-t", "t", "#{alternate_on}").stdout.strip() == "1"
            tmux("send-keys", "-t", "t", "h")
            wait_for(lambda t: "%Cpu(s):" in t)
            tmux("send-keys", "-t", "t", quit_key)
            text = wait_for(lambda t: re.search(rf"EXIT{n}=\d", t))
            assert f"EXIT{n}=0" in text
            wait_for(lambda t: "icanon echo" in t)  # the terminal's modes as before: canonical, echoing
            assert tmux("display", "-p", "-t", "t", "#{alternate_on}").stdout.strip() == "0"
    finally:
        tmux("kill-server", check=False)


@pytest.mark.live
def test_live_host_without_a_recording():
    """No DIR: the live host, its snapshots as a short recording (this test's own process among
    them), and the command lines without --rec."""
    from analyze.commands.replay.app import ReplayApp
    from analyze.commands.replay.source import LiveSource

    async def main():
        app = ReplayApp(LiveSource(interval=3600))  # no tick: the test takes one itself
        async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
            await pilot.pause()
            s = screen(app)
            assert s[0].startswith("live ") and "2/2" in s[0]
            assert s[-1] == f"$ procsnap top --sort cpu -w {WIDTH}"
            assert str(os.getpid()) in {x.split()[0] for x in body(app)}
            await pilot.press("o")
            await pilot.pause()
            assert screen(app)[-1] == "$ procsnap lsof"
            app.tick()  # one more snapshot, taken in a thread: shown, as the newest was
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "3/3" in screen(app)[0]
    asyncio.run(main())


def test_usage_errors_are_one_line(cli, rec):
    for args, line in ((["replay", str(rec)], "procsnap replay needs a terminal"),
                       (["replay", str(rec), "--view", "nope"], "bad view 'nope'"),
                       (["replay", "--host", "h1"], "--host goes with a recording"),
                       (["replay", str(rec / "nope")], f"{rec / 'nope'}: no such recording folder")):
        p = cli(*args, check=2)
        assert p.stderr.startswith(f"procsnap: {line}") and p.stderr.count("\n") == 1 and not p.stdout

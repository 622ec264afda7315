"""`procsnap record`'s options: bad values are one line and exit 2; --incident takes an
optional duration."""

import pytest

from analyze.cli import _optional_values, parse_size
from analyze.errors import UsageError
from recorder import defaults as D


@pytest.mark.parametrize("args, msg", [
    (["--max-size", "5Q"], "bad size '5Q'"),
    (["--max-size", "0"], "bad size '0'"),
    (["--keep", "soon"], "bad keep 'soon'"),
    (["--keep", "0"], "bad keep '0'"),
    (["--files-interval", "-1"], "bad files interval"),
    (["--incident", "0"], "bad incident duration '0'"),
    (["--compact-min", "-1"], "bad --compact-min -1"),
    (["-i", "0"], "bad interval '0'"),
])
def test_bad_values(cli, tmp_path, args, msg):
    p = cli("record", "-o", tmp_path / "r", *args)
    assert p.returncode == 2, p
    assert p.stderr.startswith("procsnap: ") and msg in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not (tmp_path / "r").exists()


def test_sizes():
    assert parse_size("500M") == 500 * 2**20
    assert parse_size("2G") == parse_size("2g") == parse_size("2GiB") == 2 * 2**30
    assert parse_size("1.5k") == 1536
    assert parse_size("800000") == 800000
    with pytest.raises(UsageError):
        parse_size("M")


def test_incident_value_is_optional():
    dflt = f"{D.DEFAULT_INCIDENT:g}s"
    assert _optional_values(["record", "-o", "d", "--incident"]) == ["record", "-o", "d", "--incident", dflt]
    assert _optional_values(["record", "--incident", "-o", "d"]) == ["record", "--incident", dflt, "-o", "d"]
    assert _optional_values(["record", "--incident", "30m"]) == ["record", "--incident", "30m"]
    assert _optional_values(["query", "--incident"]) == ["query", "--incident"]


def test_help_states_the_defaults(cli):
    p = cli("record", "--help", check=0)
    text = " ".join(p.stdout.split())
    assert f"[default: ({D.DEFAULT_INTERVAL:g})]" in text and f"[default: ({D.DEFAULT_FILES_INTERVAL:g})]" in text
    assert "SIGHUP" in text


def test_snapshot_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    from analyze import cli
    from recorder.collect.collector import Collector
    from recorder.source.procfs import ProcFS
    from recorder.store.folder import Store, StoreFull

    from tests.support.fakeproc import FakeProc
    fake = FakeProc(tmp_path / "proc")
    fake.add_process(10, b"w")
    monkeypatch.setattr(cli, "_collector", lambda host, iv, **kw: Collector(procfs=ProcFS(str(fake.root)), host="h", **kw))

    def full(self, snap):
        raise StoreFull(f"{self.root}: No space left on device")
    monkeypatch.setattr(Store, "write", full)
    assert cli.main(["snapshot", "-o", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err == f"procsnap: snapshot not written: {tmp_path / 'r'}: No space left on device\n"


def test_a_file_removed_once_while_reading_is_read_around(tmp_path, monkeypatch, capsys):
    from analyze import cli
    from analyze.data import damage
    from analyze.commands import info as I
    from recorder.store.folder import Store

    from tests.support.synthetic import fake_snapshot
    with Store(tmp_path / "r") as st:
        for i in range(3):
            st.write(fake_snapshot(i, [{"pid": 1}]))
    real, calls = I.summarize, []
    monkeypatch.setattr(damage, "_vanished", 0)

    def retention_strikes_once(rec):
        if not calls:
            next((tmp_path / "r").glob("snapshots/*/*/*.parquet")).unlink()
        calls.append(1)
        return real(rec)
    monkeypatch.setattr(I, "summarize", retention_strikes_once)
    assert cli.main(["info", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "snapshots: 2 " in out and len(calls) == 2


def test_a_file_removed_while_reading_is_one_line(tmp_path, monkeypatch, capsys):
    """Retention of a live recorder may delete a file a command listed a moment before: the command
    lists again and runs again, twice; a recorder that deletes every time gets one line."""
    from analyze import cli
    from analyze.commands import info as I
    from recorder.store.folder import Store

    from tests.support.synthetic import fake_snapshot
    with Store(tmp_path / "r") as st:
        for i in range(3):
            st.write(fake_snapshot(i, [{"pid": 1}]))
    real = I.summarize

    def retention_strikes(rec):
        next((tmp_path / "r").glob("snapshots/*/*/*.parquet")).unlink()
        return real(rec)
    monkeypatch.setattr(I, "summarize", retention_strikes)
    from analyze.data import damage
    monkeypatch.setattr(damage, "_vanished", 0)
    assert cli.main(["info", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("procsnap: IO Error") and err.endswith("run the command again)\n") and err.count("\n") == 1

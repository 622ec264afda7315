"""The fleet view of a report: the same service across hosts, and the host whose findings stand
out from its peers'. Three hosts run the same services; on web-2 one of them leaks descriptors."""

import json

import pytest

from analyze.commands.report import run, text
from analyze.commands.report.fleet import view

from tests.conftest import run_cli
from tests.support.synthetic import N, proc, snapshot, write

HOSTS = ("web-1", "web-2", "web-3")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("rfleet") / "rec"
    snaps = []
    for host in HOSTS:
        for i in range(N):
            leak = host == "web-2"
            snaps.append(snapshot(i, {"processes": [
                proc(300, i, "api", cmdline="/usr/bin/api --port 8080", num_fds=40 + (4 * i if leak else 0)),
                proc(400, i, "cron", cmdline="/usr/sbin/cron -f")]}, host=host))
    write(root, snaps)
    return root


def test_the_leaking_host_stands_out_and_its_service_is_named_across_hosts(fleet):
    from analyze.data.db import Recording
    result = run(Recording.open([str(fleet)]))
    f = result["fleet"]
    assert f["standing_out"] == [{"host": "web-2", "category": "leak", "findings": 1, "peers_median": 0}]
    (svc,) = f["services"]
    assert svc["name"] == "api" and svc["hosts"] == list(HOSTS)
    assert svc["findings"] == {"web-2": ["leak.fds"]} and svc["without_findings"] == ["web-1", "web-3"]
    out = text(result, sql=False)
    assert "web-2 stands out: 1 leak finding(s), its peers 0 (median)" in out
    assert "service api (root) on 3 hosts: web-2: leak.fds; none on web-1, web-3" in out
    p = run_cli("report", fleet, "-f", "json", check=0)
    assert json.loads(p.stdout)["fleet"]["standing_out"][0]["host"] == "web-2"
    p = run_cli("report", fleet, "--host", "web-1", "-f", "json", check=0)
    assert json.loads(p.stdout)["fleet"] is None  # one host: no peers


def test_peers_with_the_same_findings_do_not_stand_out():
    from analyze.commands.report.model import Finding

    def leak(host):
        return Finding("leak", "leak.fds", "warning", "t", host, None, {}, "")
    assert view([leak("a"), leak("b")], [], ["a", "b"])["standing_out"] == []
    got = view([leak("a"), leak("a"), leak("a"), leak("b"), leak("c")], [], ["a", "b", "c"])["standing_out"]
    assert got == [{"host": "a", "category": "leak", "findings": 3, "peers_median": 1}]


def test_the_page_has_the_fleet_view(fleet, tmp_path):
    run_cli("report", fleet, "--html", tmp_path / "r.html", check=0)
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Fleet</h2>" in page and "web-2 stands out: 1 leak finding(s)" in page

"""What the analyzer writes: `report --html FILE` holds command lines, so it is
written like the recording (0600, whatever the umask) and never through a link
planted at FILE."""

import os
import stat
import subprocess
import sys

from tests.conftest import ROOT, SAMPLE


def report_html(target, umask=0o022):
    p = subprocess.run([sys.executable, "-m", "analyze.cli", "report", str(SAMPLE), "--no-sql", "--html", str(target)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       preexec_fn=lambda: os.umask(umask))
    return p


def test_html_is_private_whatever_the_umask(tmp_path):
    page = tmp_path / "report.html"
    p = report_html(page, umask=0)
    assert p.returncode == 0, p.stderr
    st = os.lstat(page)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert [f.name for f in tmp_path.iterdir()] == ["report.html"], "no temporary file left behind"


def test_an_existing_world_readable_page_is_replaced_private(tmp_path):
    page = tmp_path / "report.html"
    page.write_text("old")
    os.chmod(page, 0o644)
    assert report_html(page).returncode == 0
    assert stat.S_IMODE(os.lstat(page).st_mode) == 0o600 and page.read_text() != "old"


def test_a_planted_link_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.chmod(victim, 0o644)
    page = tmp_path / "report.html"
    page.symlink_to(victim)
    dangling = tmp_path / "dangling.html"
    dangling.symlink_to(tmp_path / "created-through-the-link")
    for target in (page, dangling):
        p = report_html(target)
        assert p.returncode == 0, p.stderr
        st = os.lstat(target)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert victim.read_text() == "precious" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not (tmp_path / "created-through-the-link").exists()


def test_a_folder_in_the_way_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "report.html").mkdir()
    p = report_html(tmp_path / "report.html")
    assert p.returncode == 1 and "cannot write" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr
    assert [f.name for f in tmp_path.iterdir()] == ["report.html"]

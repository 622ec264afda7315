"""The README's install paths: the quick start's recording stays out of git,
the system-wide install puts the command where the systemd unit runs it, and
what `pip install .`, a built wheel and pipx install is the whole command (a copy that runs
without the checkout: every module, the named queries, the C module)."""

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, skip_unless_c_builds


def sh_block_after(heading: str) -> str:
    readme = (ROOT / "README.md").read_text()
    assert heading in readme, heading
    return re.search(r"```sh\n(.*?)```", readme.split(heading, 1)[1], re.S).group(1)


def test_the_quick_start_recording_is_ignored_by_git():
    block = sh_block_after("## Quick start")
    outs = re.findall(r"procsnap record -o (\S+)", block)
    assert outs, block
    for out in outs:
        probe = f"{out.strip('./')}/snapshots/host=h/date=2026-01-01/1.parquet"
        p = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT)
        assert p.returncode == 0, f"{probe} is not ignored by git"


def test_the_unit_runs_what_the_system_wide_install_links():
    block = sh_block_after("### System-wide install")
    env = dict(kv.split("=", 1) for kv in shlex.split(block.splitlines()[0]))
    linked = re.search(r'ln -sfn "\$PREFIX/bin/procsnap" "\$BIN/procsnap"', block)
    assert linked and env.get("PREFIX", "").startswith("/opt/"), block
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read_string("".join(ln for ln in (ROOT / "contrib" / "procsnap.service").open()
                             if not ln.startswith("#")))
    exe = shlex.split(unit["Service"]["ExecStart"])[0]
    assert exe == f"{env['BIN']}/procsnap"
    assert "install -q ." in block and "-e ." not in block, "a copy, not a link to the checkout"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A fresh copy of this checkout (what git holds, links as links; no build/ folder of an
    earlier build) and the wheel `pip install .` builds from it."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_symlink() or (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name, follow_symlinks=False)
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    wheel, = tmp.glob("procsnap-*.whl")
    return src, wheel


def test_an_installed_copy_carries_the_named_queries(built):
    _, wheel = built
    with zipfile.ZipFile(wheel) as z:
        shipped = {Path(n).name: z.read(n) for n in z.namelist() if n.startswith("analyze/queries/")}
    checkout = {f.name: f.read_bytes() for f in (ROOT / "queries").glob("*.sql")}
    assert checkout and shipped == checkout


def test_the_wheel_holds_every_module_and_the_c_module(built):
    """Packages are found, not listed: every module of recorder/ and analyze/ ships, whatever
    subpackage it sits in, and so does the C module where this host can build it."""
    _, wheel = built
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "recorder", "analyze"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    modules = {n for n in tracked if n.endswith(".py")}
    assert modules and not modules - names, sorted(modules - names)
    assert not {n for n in names if n.startswith(("tests/", "bench/", "samples/"))}
    skip_unless_c_builds("an install without the C module")
    assert any(n.startswith("recorder/source/_native.") and n.endswith(".so") for n in names), sorted(names)


def procsnap_of(prefix: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The procsnap console script pip installed under PREFIX (--target), run outside the checkout
    so that nothing of it is imported from there."""
    env = {**os.environ, "PYTHONPATH": str(prefix)}
    return subprocess.run([str(prefix / "bin" / "procsnap"), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


@pytest.mark.parametrize("what", ["wheel", "source"])
def test_a_non_editable_install_answers_as_the_checkout(built, sample, tmp_path, what):
    """`pip install .` (from the source folder) and the built wheel install the same command:
    the named queries listed and runnable, the C module loaded, all from the installed copy."""
    src, wheel = built
    prefix = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(prefix),
                        str(wheel if what == "wheel" else src)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    where = subprocess.run([sys.executable, "-c", "import analyze, recorder.source.native as n; "
                            "print(analyze.__file__); print(n.describe())"], capture_output=True, text=True,
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(prefix)}, check=True).stdout.split("\n")
    assert where[0].startswith(str(prefix)), where
    listed = procsnap_of(prefix, tmp_path, "queries")
    names = {f.stem for f in (ROOT / "queries").glob("*.sql")}
    assert listed.returncode == 0 and listed.stdout == run_cli("queries", check=0).stdout, listed.stderr
    assert names <= {ln.split(",")[0] for ln in listed.stdout.splitlines()}, listed.stdout
    ran = procsnap_of(prefix, tmp_path, "query", "--name", "top_cpu", "--rec", str(sample))
    checkout = run_cli("query", "--name", "top_cpu", "--rec", sample, check=0)
    assert ran.returncode == 0 and ran.stdout == checkout.stdout, ran.stderr
    if where[1] != "C":
        skip_unless_c_builds("the Python loops")
        raise AssertionError(f"the installed copy runs {where[1]}, not the C loops")


def test_pipx_installs_the_same_command(built, sample, tmp_path):
    """pipx: its own venv, the dependencies resolved, the command on its bin folder."""
    pytest.importorskip("pipx", reason="pipx is not installed (pip install pipx)")
    _, wheel = built
    env = {**os.environ, "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin"),
           "PIPX_MAN_DIR": str(tmp_path / "man")}
    p = subprocess.run([sys.executable, "-m", "pipx", "install", str(wheel)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    exe = tmp_path / "bin" / "procsnap"
    listed = subprocess.run([str(exe), "queries"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert listed.returncode == 0 and listed.stdout == run_cli("queries", check=0).stdout, listed.stderr
    ran = subprocess.run([str(exe), "query", "--name", "top_cpu", "--rec", str(sample)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert ran.returncode == 0 and ran.stdout == run_cli("query", "--name", "top_cpu", "--rec", sample).stdout

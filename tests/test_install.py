"""The README's install paths: the quick start's recording stays out of git,
the system-wide install puts the command where the systemd unit runs it, and
what `pip install .` installs carries the named queries (a copy that runs
without the checkout)."""

import configparser
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


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


def test_an_installed_copy_carries_the_named_queries(tmp_path):
    # the wheel `pip install .` installs, built from a fresh copy of this checkout (what git
    # holds, links as links; no build/ folder of an earlier build)
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_symlink() or (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name, follow_symlinks=False)
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    wheel, = tmp_path.glob("procsnap-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = {Path(n).name: z.read(n) for n in z.namelist() if n.startswith("analyze/queries/")}
    checkout = {f.name: f.read_bytes() for f in (ROOT / "queries").glob("*.sql")}
    assert checkout and shipped == checkout

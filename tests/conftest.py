import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "recording"


def run_cli(*args, check=None, input=None, timeout=60):
    """Run `procsnap ARGS` in a child process; returns CompletedProcess (text)."""
    p = subprocess.run([sys.executable, "-m", "analyze.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=ROOT, input=input, timeout=timeout)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


NEEDS = ("live", "root", "tools", "browser", "timing", "spark")


def pytest_collection_modifyitems(config, items):
    """Skip a test whose need this host lacks (root, a tool, the browser); mark `hermetic` every
    test that needs nothing beyond the checkout."""
    import shutil
    for item in items:
        if not any(item.get_closest_marker(m) for m in NEEDS):
            item.add_marker(pytest.mark.hermetic)
            continue
        if item.get_closest_marker("root") and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root"))
        for mark in item.iter_markers("tools"):
            missing = [t for t in mark.args if shutil.which(t) is None]
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}"))
        if item.get_closest_marker("browser") and not shutil.which("chromium"):
            item.add_marker(pytest.mark.skip(reason="needs chromium"))
        if item.get_closest_marker("spark") and not (shutil.which("java") and _has("pyspark")):
            item.add_marker(pytest.mark.skip(reason="needs java and pyspark (pip install -e '.[test,spark]')"))


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="module")
def procfs(tmp_path_factory):
    """A fake /proc of three processes (pids 10, 11, 12) with four descriptors each."""
    from recorder.source.procfs import ProcFS
    from tests.support.fakeproc import FakeProc
    fake = FakeProc(tmp_path_factory.mktemp("proc") / "proc")
    for pid in (10, 11, 12):
        fake.add_process(pid, b"w%d" % pid, fds=4)
    return ProcFS(str(fake.root))


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs of our own (root only: skips where it cannot be mounted)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture(scope="session")
def sample():
    assert SAMPLE.is_dir(), "samples/recording is missing: run samples/make_sample.sh"
    return SAMPLE


def skip_unless_c_builds(what: str) -> None:
    """Skip unless this host can build procsnap's C modules (a C compiler, Python's headers, and
    PROCSNAP_NATIVE not 0): where it can, a module that was not built must fail a test rather than
    pass unnoticed as the slower Python fallback. WHAT names that fallback."""
    import shutil
    import sysconfig
    if os.environ.get("PROCSNAP_NATIVE") == "0":
        pytest.skip(f"PROCSNAP_NATIVE=0 asks for {what}")
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not (shutil.which("cc") or shutil.which("gcc")) or not headers.exists():
        pytest.skip(f"no C compiler or no Python headers here: {what} is expected")

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


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def sample():
    assert SAMPLE.is_dir(), "samples/recording is missing: run samples/make_sample.sh"
    return SAMPLE

"""A cgroup v1 memory cgroup for live tests (this machine's memory controller is v1)."""

import os
import time
import uuid
from pathlib import Path

import pytest

V1 = Path("/sys/fs/cgroup/memory")
LIMIT = 64 << 20


@pytest.fixture
def memcg():
    """A cgroup v1 memory cgroup limited to LIMIT (no swap to spill into), removed afterwards."""
    if not (V1 / "memory.limit_in_bytes").exists() or os.geteuid() != 0:
        pytest.skip("no cgroup v1 memory controller to make a test cgroup in")
    name = f"procsnap-oom-{uuid.uuid4().hex[:8]}"
    g = V1 / name
    g.mkdir()
    try:
        (g / "memory.limit_in_bytes").write_text(str(LIMIT))
        if (g / "memory.swappiness").exists():
            (g / "memory.swappiness").write_text("0")
        yield name, g
    finally:
        for _ in range(50):
            try:
                g.rmdir()
                break
            except OSError:
                time.sleep(0.1)

"""Arrow allocates through malloc in procsnap's processes, C++ internals included.

pa.set_memory_pool only changes the pool pyarrow's Python calls pass; Parquet's reader and writer
kept allocating from the wheel's mimalloc, whose arena held ~20 MB resident between a recorder's
snapshots. The packages set ARROW_DEFAULT_MEMORY_POOL before pyarrow is first imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("first", ["recorder", "analyze", "analyze.entry"])
def test_the_default_pool_is_malloc_whichever_package_comes_first(first):
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    code = f"import {first}, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "system"


def test_a_users_choice_of_pool_stands():
    import pyarrow as pa
    if "mimalloc" not in pa.supported_memory_backends():
        pytest.skip("this pyarrow has no mimalloc")
    env = dict(os.environ, ARROW_DEFAULT_MEMORY_POOL="mimalloc")
    code = "import recorder, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "mimalloc"

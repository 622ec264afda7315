"""How a descriptor snapshot builds its columns: what it leaves resident in the recorder."""

from __future__ import annotations

import subprocess
import sys


def test_a_descriptor_snapshot_does_not_import_pyarrow_compute():
    """The mount_point column is made a batch at a time in Python: pyarrow.compute, once imported,
    stays resident in the always-on recorder (~11 MB)."""
    code = ("import sys\n"
            "from recorder.collect.collector import Collector\n"
            "snap = Collector(tables=('processes', 'open_files', 'sockets')).snapshot()\n"
            "t = snap.tables['open_files']\n"
            "assert t.num_rows and t.column('mount_point').null_count < t.num_rows\n"
            "print('pyarrow.compute' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_socket_descriptors_are_kept_as_columns_until_resolved():
    """No row object per socket descriptor while the process pass runs: a socket's row is made
    only when its batch is."""
    from recorder.collect.descriptors import FileRows
    from recorder.collect.sockets import SocketIndex
    files = FileRows()
    files.add_sockets((7, None), "/proc/7/fd/", [("3", 111), ("4", 222)])
    assert files.rows == [] and files.socket_inodes() == {111, 222}
    files.resolve(SocketIndex(()))
    files.merge_sockets()
    assert [(r[0], r[2], r[3], r[9]) for r in files.rows] == [(7, "3", 3, 111), (7, "4", 4, 222)]

"""Property tests: the /proc parsers on random and hostile content (issue 8, item 4).

Every parser of recorder/source/procfs.py, and the C module's parsers of a process's stat,
status, io, cgroup and maps and of the inet socket tables (their one parser), may only
raise ValueError (its documented error) whatever bytes it is given: random bytes, NULs,
invalid UTF-8, huge lines, missing and extra fields, and real kernel content with a field mangled.
And the collector, over a fake /proc whose process files hold such content,
counts the process as gone and finishes the snapshot.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.source import procfs as P
from recorder.collect.collector import Collector
from recorder.source.native import native
from recorder.source.procfs import ProcFS

from tests.support.fakeproc import FakeProc

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Real shapes, so that mutations reach past the first line check.
SAMPLES = {
    "stat": b"1234 (my (weird) name) S 1 1234 1234 34816 1234 4194560 1022 0 0 0 5 3 0 0 20 0 1 0 "
            b"12345 10000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
    "status": b"Name:\tbash\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nVmRSS:\t  4096 kB\nvoluntary_ctxt_switches:\t12\n",
    "io": b"rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\nwrite_bytes: 6\ncancelled_write_bytes: 7\n",
    "cmdline": b"/bin/bash\0-c\0echo hi\0",
    "limits": b"Limit                     Soft Limit           Hard Limit           Units     \n"
              b"Max open files            1024                 524288               files     \n",
    "cgroup": b"0::/user.slice/user-0.slice/session-1.scope\n",
    "fdinfo": b"pos:\t42\nflags:\t0100002\nmnt_id:\t25\nino:\t1234\n",
    "maps": b"55d0c5a00000-55d0c5a2e000 r--p 00000000 fe:01 1835101                    /usr/bin/bash\n"
            b"7ffd1c7e5000-7ffd1c806000 rw-p 00000000 00:00 0                          [stack]\n",
    "proc_stat": b"cpu  4875 13 2339 319071 262 7 48 715 3 1\ncpu0 1105 5 839 161380 15 3 8 338 1 0\n"
                 b"intr 123 0 0\nctxt 4567\nbtime 1795827002\nprocesses 3629\nprocs_running 2\nprocs_blocked 0\n",
    "loadavg": b"0.07 0.05 0.01 2/84 3629\n",
    "meminfo": b"MemTotal:       24684092 kB\nMemFree:        24174188 kB\nHugePages_Total:       0\n",
    "vmstat": b"nr_free_pages 6043547\npgfault 12345\n",
    "pressure": b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    "diskstats": b" 254       0 vda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n",
    "net_dev": b"Inter-|   Receive  |  Transmit\n face |bytes    packets\n"
               b"    lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
    "tcp": b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
           b"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 "
           b"0000000000000000 100 0 0 10 0\n",
    "tcp6": b"  sl  local_address                         remote_address                        st tx_queue rx_queue\n"
            b"   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A "
            b"00000000:00000000 00:00000000 00000000     0        0 23456 1 0000000000000000 100 0 0 10 0\n",
    "unix": b"Num       RefCount Protocol Flags    Type St Inode Path\n"
            b"0000000000000000: 00000002 00000000 00010000 0001 01 34567 /run/x.sock\n",
    "netlink": b"sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n"
               b"0000000000000000 0   1          00000000 0        0        0     2        0        45678\n",
    "packet": b"sk       RefCnt Type Proto  Iface R Rmem   User   Inode\n"
              b"0000000000000000 3      3    0003   2     1 0      0      56789\n",
    "snmp": b"Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens RetransSegs\nTcp: 1 200 120000 -1 4372 17\n"
            b"Udp: InDatagrams NoPorts InErrors\nUdp: 142 0 3\n",
    "snmp6": b"Ip6InReceives                   \t3816\nUdp6InErrors                    \t3\n",
    "mountinfo": b"22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
                 b"40 22 0:45 / /mnt/with\\040space rw - tmpfs tmpfs rw,size=65536k\n",
}

# The C module's parsers (skipped without it: PROCSNAP_NATIVE=0).
C_PARSERS = ("stat", "status", "io", "cgroup", "maps", "tcp", "tcp6")
_n = native
PARSERS = {
    "stat": lambda d: _n.parse_stat(d),
    "status": lambda d: (_n.parse_status(d), _n.status_ctxsw(d)),
    "io": lambda d: _n.parse_io(d),
    "cmdline": P.parse_cmdline,
    "limits": P.parse_limits_nofile,
    "cgroup": lambda d: _n.parse_cgroup(d),
    "maps": lambda d: _n.maps_distinct(d),
    "proc_stat": P.parse_proc_stat,
    "loadavg": P.parse_loadavg,
    "meminfo": P.parse_meminfo,
    "vmstat": P.parse_vmstat,
    "pressure": P.parse_pressure,
    "diskstats": P.parse_diskstats,
    "net_dev": P.parse_net_dev,
    "snmp": P.parse_snmp,
    "snmp6": P.parse_snmp6,
    "mountinfo": P.parse_mountinfo,
    "tcp": lambda d: _n.inet_records(d, "TCP", False, None),
    "tcp6": lambda d: _n.inet_records(d, "UDP", True, None),
    "unix": lambda d: [P.lsof_socket_name(r) for r in P.parse_unix(d)],
    "netlink": lambda d: [P.lsof_socket_name(r) for r in P.parse_netlink(d)],
    "packet": lambda d: [P.lsof_socket_name(r) for r in P.parse_packet(d)],
}

# Pieces that break parsers: NULs, invalid UTF-8, signs, huge numbers, odd separators.
HOSTILE = [b"\0", b"\xff\xfe", b"\xc3", b"-", b"+", b"(", b")", b":", b"=", b"/", b" ", b"\t", b"\n", b"",
           b"9" * 5000, b"-1", b"0x", b"nan", b"inf", b"unlimited", b"kB", b"\xe2\x80\xae", b"1e999", b"::"]


@st.composite
def mutated(draw, name: str) -> bytes:
    """A real sample with a few of its fields replaced, dropped, repeated or spliced."""
    fields = P_split(SAMPLES[name])
    for _ in range(draw(st.integers(1, 4))):
        if not fields:
            break
        i = draw(st.integers(0, len(fields) - 1))
        op = draw(st.sampled_from(["replace", "drop", "dup", "insert", "truncate"]))
        piece = draw(st.one_of(st.sampled_from(HOSTILE), st.binary(max_size=20)))
        if op == "replace":
            fields[i] = piece
        elif op == "drop":
            del fields[i]
        elif op == "dup":
            fields.insert(i, fields[i])
        elif op == "insert":
            fields.insert(i, piece)
        else:
            fields = fields[:i]
    return b"".join(fields)


def P_split(data: bytes) -> list[bytes]:
    """Tokens and the separators between them, so that joining gives the data back."""
    import re
    return re.findall(rb"[^\s:=/()]+|[\s:=/()]", data)


def content(name: str):
    return st.one_of(
        mutated(name),
        st.binary(max_size=300),
        st.binary(max_size=40).map(lambda b: SAMPLES[name] + b),
        st.builds(lambda n, b: SAMPLES[name][:n] + b, st.integers(0, len(SAMPLES[name])), st.binary(max_size=20)),
        st.sampled_from([b"", b"\0" * 100, b"x" * 200_000, b"\n" * 1000, SAMPLES[name] * 50,
                         SAMPLES[name].replace(b" ", b"\t"), SAMPLES[name].replace(b"\n", b"\r\n")]),
    )


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_parsers_raise_only_value_error(name):
    if native is None and name in C_PARSERS:
        pytest.skip("PROCSNAP_NATIVE=0: the C parsers are not there")
    parse = PARSERS[name]
    parse(SAMPLES[name])  # the sample itself parses

    @FUZZ
    @given(content(name))
    def prop(data):
        try:
            parse(data)
        except ValueError:
            pass

    prop()


@pytest.mark.skipif(native is None, reason="PROCSNAP_NATIVE=0: the C parsers are not there")
def test_inet_tables_keep_the_good_lines():
    """One mangled line of an inet socket table costs that line, not the table (C's inet_records,
    their one parser)."""
    bad = b"   1: ZZZZ:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9 1\n"
    rows = native.inet_records(SAMPLES["tcp"] + bad, "TCP", False, None)
    assert [r[1][0] for r in rows] == [12345]


def test_line_tables_keep_the_good_lines():
    """One mangled line of a socket or device table costs that line, not the table."""
    rows = P.parse_unix(SAMPLES["unix"] + b"0000000000000000: 00000002 00000000 zz 0001 01 777 /x\n")
    assert [r["inode"] for r in rows] == [34567]
    assert len(P.parse_diskstats(SAMPLES["diskstats"] + b" 8 0 sda x 2 3 4 5 6 7 8 9 10 11 12 13 14\n")) == 1


@pytest.mark.skipif(native is None, reason="PROCSNAP_NATIVE=0: psutil reads some fields of a fake tree's pids live")
@pytest.mark.parametrize("which", ["stat", "status", "io", "limits", "cgroup", "cmdline"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_collector_counts_a_process_with_hostile_files_as_gone(tmp_path_factory, which, data):
    """The collector never crashes on a process file it cannot parse: the process is skipped and counted."""
    blob = data.draw(content(which))
    root = tmp_path_factory.mktemp("proc")
    fake = FakeProc(root)
    fake.add_process(pid=1, comm=b"init", ppid=0, cmdline=b"/sbin/init\0")
    fake.add_process(pid=42, comm=b"victim", ppid=1, cmdline=b"victim\0")
    (root / "42" / which).write_bytes(blob)
    snap = Collector(procfs=ProcFS(str(root)), host="fuzz").snapshot()
    procs = snap.tables["processes"].to_pydict()
    meta = snap.tables["snapshots"].to_pylist()[0]
    assert 1 in procs["pid"]
    assert (42 in procs["pid"]) != (meta["processes_gone"] == 1)


def test_values_that_cannot_be_stored_are_malformed():
    """A shifted or mangled field can hold a number no column can store: the parser says
    so (found by the collector property above: u64 max landed in vsize and broke the Arrow table)."""
    if native is None:
        pytest.skip("PROCSNAP_NATIVE=0: the C parsers are not there")
    shifted = SAMPLES["stat"].replace(b"S 1 1234", b"S 1 ) 1234")  # rsslim (u64 max) lands in vsize
    with pytest.raises(ValueError):
        native.parse_stat(shifted)
    with pytest.raises(ValueError):
        native.parse_io(b"rchar: 99999999999999999999999\n")
    ids = b"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"
    native.parse_status(ids + b"VmRSS:\t4096 kB\n")
    with pytest.raises(ValueError):
        native.parse_status(ids + b"VmRSS:\t99999999999999999999 kB\n")
    with pytest.raises(ValueError):
        native.parse_status(b"Uid:\t4294967296\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
    with pytest.raises(ValueError):
        native.parse_stat(SAMPLES["stat"].replace(b" 12345 ", b" 999999999999999 "))  # starttime


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=16).map(lambda b: b.replace(b"a", b"\0").replace(b"b", b" ")))
def test_joins_back_is_no_argument_empty_or_spaced(cmd):
    """procfs.joins_back, found on the bytes, is the per-argument rule it stands for."""
    argv, _ = P.parse_cmdline(cmd)
    assert P.joins_back(cmd, argv) == (not any((not a) or (b" " in a) for a in argv))

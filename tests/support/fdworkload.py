"""A process with known descriptors, for comparing procsnap with lsof and ss.

Run as a script: opens everything below, prints one JSON line describing it,
then sleeps until killed. Used by tests/test_vs_lsof.py.
"""

import json
import os
import socket
import sys
import time


def main(tmp: str) -> None:
    info = {"pid": os.getpid()}
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    info["tcp_port"] = lst.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", info["tcp_port"]))
    srv, _ = lst.accept()
    info["client_port"] = cli.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    info["udp_port"] = udp.getsockname()[1]
    l6 = socket.socket(socket.AF_INET6)
    l6.bind(("::1", 0))
    l6.listen(4)
    info["tcp6_port"] = l6.getsockname()[1]
    ux = socket.socket(socket.AF_UNIX)
    info["unix_path"] = os.path.join(tmp, "ctl.sock")
    ux.bind(info["unix_path"])
    ux.listen(4)
    r, w = os.pipe()
    src = os.path.join(tmp, "data.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(10000))
    rd = os.open(src, os.O_RDONLY)
    os.read(rd, 1234)
    wr = os.open(os.path.join(tmp, "out.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(wr, b"x" * 100)
    dl = os.open(os.path.join(tmp, "gone.tmp"), os.O_RDWR | os.O_CREAT, 0o600)
    os.write(dl, b"y" * 77)
    os.unlink(os.path.join(tmp, "gone.tmp"))
    odd = os.path.join(os.fsencode(tmp), b"odd name\n\xff.txt")
    od = os.open(odd, os.O_RDWR | os.O_CREAT, 0o600)
    info["fds"] = {"listen": lst.fileno(), "client": cli.fileno(), "server": srv.fileno(), "udp": udp.fileno(),
                   "listen6": l6.fileno(), "unix": ux.fileno(), "pipe_r": r, "pipe_w": w, "read": rd,
                   "write": wr, "deleted": dl, "odd": od}
    os.chdir(tmp)
    print(json.dumps(info), flush=True)
    keep = (lst, cli, srv, udp, l6, ux)
    while keep:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1])

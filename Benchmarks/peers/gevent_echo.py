"""gevent peer for scripts/bench-echo: a StreamServer echo server.

    python gevent_echo.py PORT

Listens on 127.0.0.1:PORT (SO_REUSEADDR, which StreamServer sets by default on Linux;
backlog 1024 like the C peer). Each connection gets TCP_NODELAY and runs a
recv(65536)/sendall loop in its own greenlet until EOF or an error. SIGTERM or SIGINT
stops the server: the listener is closed, open connections get up to one second, and the
process exits 0.
"""

import socket
import sys

from gevent_peer import serve
from gevent.server import StreamServer


def handle(sock, _address):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            sock.sendall(data)
    except OSError:
        # A reset or broken pipe from a client going away is the end of that connection,
        # not something to print a traceback for.
        pass
    finally:
        sock.close()


def main(argv):
    return serve("gevent_echo", argv, lambda address: StreamServer(address, handle, backlog=1024), what="")


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""gevent peer for scripts/bench-echo: a StreamServer echo server.

    python gevent_echo.py PORT

Listens on 127.0.0.1:PORT (SO_REUSEADDR, which StreamServer sets by default on Linux;
backlog 1024 like the C peer). Each connection gets TCP_NODELAY and runs a
recv(65536)/sendall loop in its own greenlet until EOF or an error. SIGTERM or SIGINT
stops the server: the listener is closed, open connections get up to one second, and the
process exits 0.
"""

import signal
import socket
import sys

import gevent
from gevent.event import Event
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
    if len(argv) != 2:
        print(f"usage: {argv[0]} PORT", file=sys.stderr)
        return 2
    try:
        port = int(argv[1])
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        print(f"gevent_echo: invalid port {argv[1]!r}", file=sys.stderr)
        return 2

    server = StreamServer(("127.0.0.1", port), handle, backlog=1024)
    stop = Event()
    # The handlers only set the event; the main greenlet does the stop. gevent's documentation
    # asks that the objects signal_handler returns stay referenced until cancel() is called.
    signal_watchers = [
        gevent.signal_handler(signal.SIGTERM, stop.set),
        gevent.signal_handler(signal.SIGINT, stop.set),
    ]

    server.start()
    print(
        f"gevent_echo: gevent {gevent.__version__} listening on 127.0.0.1:{server.server_port}",
        file=sys.stderr,
        flush=True,
    )
    stop.wait()
    server.stop(timeout=1)
    for watcher in signal_watchers:
        watcher.cancel()
    print("gevent_echo: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

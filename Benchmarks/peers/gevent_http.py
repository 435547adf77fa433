"""gevent peer for `sprout-bench http`: pywsgi's hello world.

    python gevent_http.py PORT

Listens on 127.0.0.1:PORT with gevent.pywsgi.WSGIServer (log=None: no access log). GET /
answers 200 "Hello, World!" (text/plain, Content-Length 13, keep-alive as HTTP/1.1 allows);
any other path answers 404. Each accepted connection gets TCP_NODELAY, as in gevent_echo.py:
pywsgi sends the head and the body in two send calls, and without it Nagle's algorithm holds
the body until the client's delayed ACK (~40 ms), which caps a keep-alive connection at ~25
requests/s (measured: 2,200 requests/s at 100 connections) and would measure only that. SIGTERM or SIGINT stops the server: the listener is closed, open
connections get up to one second, and the process exits 0.
"""

import signal
import socket
import sys

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/":
        start_response("200 OK", HEADERS)
        return [BODY]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return [b""]


class NoDelayWSGIServer(WSGIServer):
    def handle(self, sock, address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} PORT", file=sys.stderr)
        return 2
    try:
        port = int(argv[1])
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        print(f"gevent_http: invalid port {argv[1]!r}", file=sys.stderr)
        return 2

    server = NoDelayWSGIServer(("127.0.0.1", port), app, log=None)
    stop = Event()
    # The handlers only set the event; the main greenlet does the stop. gevent's documentation
    # asks that the objects signal_handler returns stay referenced until cancel() is called.
    signal_watchers = [
        gevent.signal_handler(signal.SIGTERM, stop.set),
        gevent.signal_handler(signal.SIGINT, stop.set),
    ]

    server.start()
    print(
        f"gevent_http: gevent {gevent.__version__} pywsgi listening on 127.0.0.1:{server.server_port}",
        file=sys.stderr,
        flush=True,
    )
    stop.wait()
    server.stop(timeout=1)
    for watcher in signal_watchers:
        watcher.cancel()
    print("gevent_http: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

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

import socket
import sys

from gevent_peer import serve
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
    return serve("gevent_http", argv, lambda address: NoDelayWSGIServer(address, app, log=None), what=" pywsgi")


if __name__ == "__main__":
    sys.exit(main(sys.argv))

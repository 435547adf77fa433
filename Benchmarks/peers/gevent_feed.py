"""gevent peer for `sprout-bench seed`: the feed service of Examples/FeedService, in Python.

    python gevent_feed.py PORT BACKEND_URL [PINS]

The seed's own stack: gevent's monkey patching, gevent.pywsgi.WSGIServer (log=None), and a
pooled urllib3 PoolManager (urllib3 is pure Python over the patched socket module, so every
backend call yields to the hub). GET /feed/<user> fetches BACKEND_URL/users/<user> and PINS
(default 3) records BACKEND_URL/pins/<user>-<i> at once from a gevent Pool, and answers
{"user":...,"pins":[...]} with the backend's JSON documents spliced in as they came, exactly
as feed-service does (so that both measure the serving model, not a JSON library). A bad user
id is a 400, a backend failure a 502. Lifecycle and stderr lines as in gevent_peer.serve.
"""

from gevent import monkey

monkey.patch_all()

import re  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

import urllib3  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from gevent_peer import serve  # noqa: E402

USER = re.compile(r"^/feed/([A-Za-z0-9_-]{1,64})$")


def make_app(backend, pins):
    http = urllib3.PoolManager(maxsize=4096, block=False, retries=False,
                               timeout=urllib3.Timeout(connect=10, read=10))
    pool = Pool(4096)

    def fetch(url):
        response = http.request("GET", url)
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return response.data

    def app(environ, start_response):
        match = USER.match(environ["PATH_INFO"])
        if environ["REQUEST_METHOD"] != "GET" or not match:
            start_response("400 Bad Request", [("Content-Type", "text/plain"), ("Content-Length", "0")])
            return [b""]
        user = match.group(1)
        urls = [f"{backend}/users/{user}"] + [f"{backend}/pins/{user}-{i}" for i in range(pins)]
        try:
            records = pool.map(fetch, urls)
        except Exception as error:  # noqa: BLE001 - any backend failure is the gateway's
            message = f"backend: {error}".encode()
            start_response("502 Bad Gateway", [("Content-Type", "text/plain"), ("Content-Length", str(len(message)))])
            return [message]
        body = b'{"user":' + records[0] + b',"pins":[' + b",".join(records[1:]) + b"]}"
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


class NoDelayWSGIServer(WSGIServer):
    def handle(self, sock, address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def main(argv):
    if len(argv) not in (3, 4):
        print(f"usage: {argv[0]} PORT BACKEND_URL [PINS]", file=sys.stderr)
        return 2
    backend = argv[2].rstrip("/")
    try:
        pins = int(argv[3]) if len(argv) == 4 else 3
    except ValueError:
        print(f"gevent_feed: invalid PINS {argv[3]!r}", file=sys.stderr)
        return 2
    app = make_app(backend, pins)
    return serve("gevent_feed", argv[:2], lambda address: NoDelayWSGIServer(address, app, log=None, backlog=4096),
                 what=" pywsgi + urllib3 " + urllib3.__version__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

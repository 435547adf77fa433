"""What the gevent peers share: the command line (one PORT argument) and the lifecycle.

serve(name, argv, make_server) parses PORT, builds the server with make_server(("127.0.0.1",
port)), starts it, prints "<name>: gevent <version> ... listening on 127.0.0.1:<port>" to stderr,
and on SIGTERM or SIGINT closes the listener, gives open connections up to one second, prints
"<name>: stopped" and returns 0. A bad command line returns 2.
"""

import signal
import sys

import gevent
from gevent.event import Event


def serve(name, argv, make_server, what=""):
    if len(argv) != 2:
        print(f"usage: {argv[0]} PORT", file=sys.stderr)
        return 2
    try:
        port = int(argv[1])
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        print(f"{name}: invalid port {argv[1]!r}", file=sys.stderr)
        return 2

    server = make_server(("127.0.0.1", port))
    stop = Event()
    # The handlers only set the event; the main greenlet does the stop. gevent's documentation
    # asks that the objects signal_handler returns stay referenced until cancel() is called.
    signal_watchers = [
        gevent.signal_handler(signal.SIGTERM, stop.set),
        gevent.signal_handler(signal.SIGINT, stop.set),
    ]

    server.start()
    print(
        f"{name}: gevent {gevent.__version__}{what} listening on 127.0.0.1:{server.server_port}",
        file=sys.stderr,
        flush=True,
    )
    stop.wait()
    server.stop(timeout=1)
    for watcher in signal_watchers:
        watcher.cancel()
    print(f"{name}: stopped", file=sys.stderr, flush=True)
    return 0

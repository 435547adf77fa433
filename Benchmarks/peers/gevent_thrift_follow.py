#!/usr/bin/env python3
"""gevent + Apache Thrift peer for the Thrift follow benchmark: the seed team's own stack.

    /usr/bin/python3 gevent_thrift_follow.py --port N --gen-dir DIR

Serves Examples/follow.thrift (binary protocol over framed transport) on 127.0.0.1:N with a
gevent StreamServer: one greenlet per connection loops processor.process() until the client
closes. DIR holds `thrift --gen py -out DIR Examples/follow.thrift` output (package `follow`).
Uses Debian's python3-thrift 0.17 (with its C fastbinary codec when present) and
python3-gevent. State is an in-memory follow graph. Prints "listening N" once bound.
"""

from gevent import monkey

monkey.patch_all()

import argparse
import socket
import sys

import gevent
from gevent.server import StreamServer
from thrift.protocol import TBinaryProtocol
from thrift.transport import TTransport

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--gen-dir", required=True)
args = parser.parse_args()
sys.path.insert(0, args.gen_dir)
from follow import FollowService  # noqa: E402  (generated code, found via --gen-dir)
from follow.ttypes import NotFound  # noqa: E402

try:
    from thrift.protocol import fastbinary  # noqa: F401  (C codec: what a real deployment uses)

    ProtocolFactory = TBinaryProtocol.TBinaryProtocolAcceleratedFactory
except ImportError:
    ProtocolFactory = TBinaryProtocol.TBinaryProtocolFactory


class FollowHandler:
    """In-memory follow graph: follower lists in first-follow order plus an edge set."""

    def __init__(self):
        self.edges = set()  # (follower, followee)
        self.by_followee = {}  # followee -> [followers in first-follow order]
        self.users = set()  # anyone on any edge

    def follow(self, follower, followee):
        if (follower, followee) in self.edges:
            return
        self.edges.add((follower, followee))
        self.by_followee.setdefault(followee, []).append(follower)
        self.users.update((follower, followee))

    def followers(self, user, limit):
        if user not in self.users:
            raise NotFound(message="user %d has no follow edges" % user)
        if limit < 1:
            return []
        return self.by_followee.get(user, [])[:limit]

    def isFollowing(self, a, b):
        return (a, b) in self.edges

    def sleep(self, ms):
        gevent.sleep(ms / 1000.0)  # yields to other greenlets

    def ping(self):
        pass


class GeventSocketTransport(TTransport.TTransportBase):
    """Minimal Thrift transport over an accepted (gevent) socket."""

    def __init__(self, sock):
        self.sock = sock

    def isOpen(self):
        return True

    def read(self, sz):
        data = self.sock.recv(sz)
        if not data:
            raise TTransport.TTransportException(TTransport.TTransportException.END_OF_FILE)
        return data

    def write(self, buf):
        self.sock.sendall(buf)

    def flush(self):
        pass

    def close(self):
        self.sock.close()


processor = FollowService.Processor(FollowHandler())
protocol_factory = ProtocolFactory()


def handle(sock, address):
    # One frame per response is one write; NODELAY just matches the C++ peer's sockets.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    trans = TTransport.TFramedTransport(GeventSocketTransport(sock))
    prot = protocol_factory.getProtocol(trans)
    try:
        while True:
            processor.process(prot, prot)
    except (TTransport.TTransportException, ConnectionError):
        pass  # client went away
    finally:
        sock.close()


server = StreamServer(("127.0.0.1", args.port), handle)
server.start()
print("listening %d" % server.server_port, flush=True)
server.serve_forever()

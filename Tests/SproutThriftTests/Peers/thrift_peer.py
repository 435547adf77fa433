"""Python Thrift (Debian's python3-thrift) on the other side of SproutThriftTests.

thrift_peer.py IDL ROLE PROTOCOL TRANSPORT PORT GEN_DIR
  IDL: follow | alltypes; ROLE: client | server; PROTOCOL: binary | compact;
  TRANSPORT: framed | buffered. GEN_DIR holds `thrift --gen py` output for the IDL.
A client prints one line per check (the test compares them); a server prints "listening PORT".
"""
import sys
import time

idl, role, protocol, transport, port, gen_dir = sys.argv[1:7]
port = int(port)
sys.path.insert(0, gen_dir)

from thrift.Thrift import TApplicationException
from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.server import TServer
from thrift.transport import TSocket, TTransport


def client_protocol():
    sock = TSocket.TSocket("127.0.0.1", port)
    sock.setTimeout(10000)
    trans = TTransport.TFramedTransport(sock) if transport == "framed" else TTransport.TBufferedTransport(sock)
    proto = TBinaryProtocol.TBinaryProtocol(trans) if protocol == "binary" else TCompactProtocol.TCompactProtocol(trans)
    trans.open()
    return proto


def serve(processor):
    tfactory = TTransport.TFramedTransportFactory() if transport == "framed" else TTransport.TBufferedTransportFactory()
    pfactory = TBinaryProtocol.TBinaryProtocolFactory() if protocol == "binary" else TCompactProtocol.TCompactProtocolFactory()
    server = TServer.TThreadedServer(processor, TSocket.TServerSocket("127.0.0.1", port), tfactory, pfactory, daemon=True)
    print("listening", port, flush=True)
    server.serve()


if idl == "follow":
    from follow import FollowService
    from follow.ttypes import NotFound

    class Follow:
        def __init__(self):
            self.edges, self.order, self.users = set(), {}, set()

        def follow(self, follower, followee):
            if (follower, followee) in self.edges:
                return
            self.edges.add((follower, followee))
            self.order.setdefault(followee, []).append(follower)
            self.users.update((follower, followee))

        def followers(self, user, limit):
            if user not in self.users:
                raise NotFound(message="user %d has no follow edges" % user)
            return self.order.get(user, [])[:max(0, limit)]

        def isFollowing(self, a, b):
            return (a, b) in self.edges

        def sleep(self, ms):
            time.sleep(ms / 1000.0)

        def ping(self):
            pass

    if role == "server":
        serve(FollowService.Processor(Follow()))
    else:
        c = FollowService.Client(client_protocol())
        c.follow(1, 2); c.follow(3, 2); c.follow(1, 2); c.follow(2, 5)
        print("followers", c.followers(2, 10))
        print("limited", c.followers(2, 1), c.followers(2, 0))
        print("isFollowing", c.isFollowing(1, 2), c.isFollowing(2, 1))
        try:
            c.followers(99, 5)
            print("no NotFound")
        except NotFound as e:
            print("notfound", e.message)
        c.ping()
        started = time.time()
        c.sleep(50)
        print("slept", time.time() - started >= 0.045)
        print("after ping", c.isFollowing(3, 2), c.followers(5, 3))
        print("done")
else:
    from alltypes import Echo
    from alltypes.ttypes import Choice, Color, Everything, Inner, Oops

    def everything():
        leaf = Inner(name="leaf", count=-1, children=[])
        return Everything(
            flag=True, tiny=-128, small=-32768, medium=2147483647, big=-9223372036854775808,
            real=-2.5e-300, text="héllo ✓ \u0000 end", blob=bytes([0, 1, 2, 254, 255]),
            numbers=[0, -1, 1, 2147483647, -2147483648], tags={"a", "b", ""},
            counts={"x": 1, "y": -(2 ** 40)}, nested={7: [{"p", "q"}, set()], -3: []},
            inner=Inner(name="root", children=[leaf, Inner(name="empty", children=[])]),
            maybe=None, color=Color.BLUE, choice=Choice(inner=leaf), note="plain", user=123456789012,
            colors=[Color.RED, Color.BLUE, Color.GREEN], byColor={Color.GREEN: leaf}, withDefault=5)

    class Handler:
        def __init__(self):
            self.recorded = []

        def echo(self, value):
            if value.medium == -1:
                raise Oops(code=-1, why="negative")
            return value

        def fail(self, code):
            if code > 0:
                raise Oops(code=code, why="failed %d" % code)
            raise ValueError("an undeclared failure")

        def note(self, text):
            self.recorded.append(text)

        def notes(self):
            return list(self.recorded)

        def pick(self, c):
            return c

        def group(self, items):
            colors = [Color.RED, Color.GREEN, Color.BLUE]
            return {colors[i % 3]: item for i, item in enumerate(items)}

    if role == "server":
        serve(Echo.Processor(Handler()))
    else:
        c = Echo.Client(client_protocol())
        value = everything()
        print("echo", c.echo(value) == value)
        value.maybe, value.note, value.choice = Inner(name="opt", count=3, children=[]), "set", Choice(text="t")
        print("echo optionals", c.echo(value) == value)
        try:
            c.fail(3)
        except Oops as e:
            print("oops", e.code, e.why)
        try:
            c.fail(0)
        except TApplicationException as e:
            print("undeclared", e.type == TApplicationException.INTERNAL_ERROR, e.message)
        c.note("first"); c.note("second")
        print("notes", c.notes())
        print("pick", c.pick(Choice(number=-7)) == Choice(number=-7))
        grouped = c.group([Inner(name="a", children=[]), Inner(name="b", count=2, children=[]), Inner(name="c", children=[])])
        print("group", sorted((k, v.name) for k, v in grouped.items()))
        print("done")

"""gevent + redis-py peer for `sprout-bench redis`: the seed's own stack.

    python gevent_redis.py PORT OP CONCURRENCY SECONDS [PIPELINE]

OP is get or set. CONCURRENCY greenlets share a redis-py BlockingConnectionPool of that many
connections (monkey-patched sockets), each sending OP on key "key:000000000000" (3-byte
value, as redis-benchmark) for SECONDS after a half-second warm-up; with PIPELINE > 1 each
round trip is a pipeline of that many commands. Prints "ops N seconds S rate R".
"""

from gevent import monkey

monkey.patch_all()

import sys
import time

import gevent
import redis

port, op, concurrency, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
depth = int(sys.argv[5]) if len(sys.argv) > 5 else 1
KEY = "key:000000000000"
pool = redis.BlockingConnectionPool(host="127.0.0.1", port=port, max_connections=concurrency)
client = redis.Redis(connection_pool=pool)
client.set(KEY, "xxx")


def worker(end):
    count = 0
    while time.monotonic() < end:
        if depth > 1:
            pipe = client.pipeline(transaction=False)
            for _ in range(depth):
                pipe.get(KEY) if op == "get" else pipe.set(KEY, "xxx")
            pipe.execute()
            count += depth
        elif op == "get":
            client.get(KEY)
            count += 1
        else:
            client.set(KEY, "xxx")
            count += 1
    return count


def run(duration):
    end = time.monotonic() + duration
    jobs = [gevent.spawn(worker, end) for _ in range(concurrency)]
    gevent.joinall(jobs, raise_error=True)
    return sum(job.value for job in jobs)


run(0.5)
started = time.monotonic()
ops = run(seconds)
elapsed = time.monotonic() - started
print("ops %d seconds %.3f rate %.1f" % (ops, elapsed, ops / elapsed))

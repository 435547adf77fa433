"""gevent + pymemcache peer for `sprout-bench memcached`: the seed's own stack.

    python gevent_memcached.py PORT OP CONCURRENCY SECONDS

OP is get or set. CONCURRENCY greenlets share a pymemcache PooledClient of that many
connections (monkey-patched sockets), each on a key of its own with a 32-byte value, for
SECONDS after a half-second warm-up. Prints "ops N seconds S rate R".
"""

from gevent import monkey

monkey.patch_all()

import sys
import time

import gevent
from pymemcache.client.base import PooledClient

port, op, concurrency, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
# default_noreply=False: a set waits for STORED, as every other client here does.
client = PooledClient(("127.0.0.1", port), max_pool_size=concurrency, default_noreply=False)
VALUE = b"v" * 32
for index in range(concurrency):
    client.set("bench:%d" % index, VALUE)


def worker(index, end):
    key = "bench:%d" % index
    count = 0
    while time.monotonic() < end:
        if op == "get":
            client.get(key)
        else:
            client.set(key, VALUE)
        count += 1
    return count


def run(duration):
    end = time.monotonic() + duration
    jobs = [gevent.spawn(worker, index, end) for index in range(concurrency)]
    gevent.joinall(jobs, raise_error=True)
    return sum(job.value for job in jobs)


run(0.5)
started = time.monotonic()
ops = run(seconds)
elapsed = time.monotonic() - started
print("ops %d seconds %.3f rate %.1f" % (ops, elapsed, ops / elapsed))

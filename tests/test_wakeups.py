"""Cross-core wakeups reach a shard that sleeps in epoll_wait at once.

A shard sleeps at most 100 ms without a timer due, so a lost wakeup (a hop,
or a blocked client served from another core, that does not ring the
sleeping shard's bell) shows as ~100 ms per step. Each test makes a few
hundred such steps one after another, so the lost-wakeup case needs tens
of seconds where the working one needs well under one.
"""

import threading
import time

from slots import keys_on_distinct_shards

SHARDS = 4
STEPS = 300
# Generous: the working case needs ~0.2 s here, a lost wakeup per step 7 s or more.
LIMIT = 3.0


def test_hops_to_sleeping_shards_are_answered_at_once(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    c = percore.client()
    for k in keys:
        c.set(k, k)
    start = time.monotonic()
    for i in range(STEPS):
        # One client, one request at a time: between requests every shard
        # goes to sleep, and every remote key is a hop to a sleeping one.
        k = keys[i % SHARDS]
        assert c.get(k) == k.encode()
    elapsed = time.monotonic() - start
    assert elapsed < LIMIT, f"{STEPS} sequential GETs across shards took {elapsed:.1f}s"


def test_blocked_clients_are_served_from_other_cores_at_once(start_percore):
    """A token passes around a ring of blocked clients, one per shard's key:
    each BLPOPs its key and pushes the token to the next key."""
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS, prefix="ring")
    errors = []

    def relay(i):
        c = percore.client(socket_timeout=30)
        try:
            for _ in range(STEPS // SHARDS):
                got = c.blpop(keys[i], timeout=20)
                assert got is not None, f"relay {i} timed out"
                c.rpush(keys[(i + 1) % SHARDS], got[1])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=relay, args=(i,)) for i in range(SHARDS)]
    for t in threads:
        t.start()
    start = time.monotonic()
    percore.client().rpush(keys[0], "token")
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert not errors, errors
    assert elapsed < LIMIT, f"{STEPS} blocked-client handoffs took {elapsed:.1f}s"
    assert percore.client().lrange(keys[0], 0, -1) == [b"token"]

"""maxmemory with the eviction policies, and the evicted event."""

import pytest
import redis

from conftest import wait_until

SHARDS = 2


def fill(c, prefix, n, ttl=None):
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}{i}", "x" * 100, ex=ttl)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()


def limit_above_now(c, extra):
    base = int(c.info("memory")["used_memory"])
    c.config_set("maxmemory", base + extra)
    return base


def test_allkeys_lru_bounds_memory_and_reports_evictions(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    c.config_set("notify-keyspace-events", "Ee")
    sub = percore.client().pubsub()
    sub.psubscribe("__keyevent@0__:evicted")
    base = limit_above_now(c, 3_000_000)
    c.config_set("maxmemory-policy", "allkeys-lru")
    fill(c, "k", 60_000)
    info = c.info()
    assert info["evicted_keys"] > 10_000
    assert info["used_memory"] - base < 4_000_000
    assert c.dbsize() < 60_000
    wait_until(lambda: (m := sub.get_message(timeout=0.2)) is not None and m["type"] == "pmessage", what="evicted event")


def test_noeviction_refuses_writes_but_not_deletes(start_percore, start_redis):
    for server in (start_percore(threads=SHARDS), start_redis()):
        c = server.client()
        c.set("keep", "v")
        c.config_set("maxmemory-policy", "noeviction")
        c.config_set("maxmemory", 1)
        with pytest.raises(redis.exceptions.OutOfMemoryError) as e:
            c.set("more", "x")
        assert str(e.value) == "command not allowed when used memory > 'maxmemory'."
        assert c.get("keep") == b"v"
        assert c.delete("keep") == 1
        c.config_set("maxmemory", 0)


def test_volatile_ttl_only_evicts_keys_with_a_ttl(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    fill(c, "persistent", 2000)
    c.config_set("maxmemory-policy", "volatile-ttl")
    limit_above_now(c, 1_000_000)
    fill(c, "volatile", 30_000, ttl=1000)
    assert c.info()["evicted_keys"] > 0
    assert all(c.exists(f"persistent{i}") for i in range(0, 2000, 97))

"""Keyspace notifications: the same commands against redis-server and
percore must publish the same events, in the same order."""

import time

import pytest

from conftest import wait_until

COMMANDS = [
    ("SET", "s", "1"),
    ("SET", "s", "2", "NX"),
    ("INCRBY", "s", "5"),
    ("APPEND", "s", "x"),
    ("EXPIRE", "s", "100"),
    ("PERSIST", "s"),
    ("RENAME", "s", "s2"),
    ("DEL", "s2", "nosuch"),
    ("RPUSH", "l", "a", "b"),
    ("LPOP", "l"),
    ("RPOP", "l"),
    ("HSET", "h", "f", "v"),
    ("HDEL", "h", "f"),
    ("HDEL", "h", "f"),
    ("SADD", "st", "m"),
    ("SADD", "st", "m"),
    ("SREM", "st", "m"),
    ("ZADD", "z", "1", "a"),
    ("ZINCRBY", "z", "2", "a"),
    ("ZREM", "z", "a"),
    ("RPUSH", "l2", "a", "b", "c", "d"),
    ("LMOVE", "l2", "l3", "LEFT", "RIGHT"),
    ("LMPOP", "2", "nosuch", "l2", "RIGHT", "COUNT", "1"),
    ("BLPOP", "l2", "0"),
    ("BRPOPLPUSH", "l2", "l3", "0"),
    ("ZADD", "z2", "1", "a", "2", "b", "3", "c"),
    ("ZMPOP", "1", "z2", "MIN"),
    ("BZPOPMAX", "z2", "0"),
    ("BZMPOP", "0", "1", "z2", "MIN"),
    ("MSET", "m1", "x", "m2", "y"),
    # Keys spread over the shards: events in key order, per key.
    ("MSET", "a1", "1", "a2", "2", "a3", "3", "a4", "4", "a1", "5"),
    ("DEL", "a3", "a1", "nosuch", "a4", "a2"),
    ("MGET", "a1", "nosuch", "m1", "other"),
    ("SETEX", "tmp", "100", "v"),
    ("RPUSH", "srt", "3", "1", "2"),
    ("SORT", "srt", "STORE", "srtd"),
    ("SORT", "nosuch", "STORE", "srtd"),
    ("SET", "gx", "v"),
    ("GETEX", "gx", "EX", "100"),
    ("GETEX", "gx", "PERSIST"),
    ("GETEX", "gx"),
    ("GETEX", "gx", "EXAT", "1"),
    ("SET", "cp", "v"),
    ("COPY", "cp", "cp2"),
    ("COPY", "cp", "cp2"),
    ("COPY", "cp", "cp2", "REPLACE"),
    ("COPY", "cp", "cp3", "DB", "1"),
    ("MOVE", "cp", "2"),
    ("ZADD", "z3", "1", "a"),
    ("ZADD", "z3", "2", "a"),
    ("ZADD", "z3", "2", "a"),
    ("ZADD", "z3", "XX", "CH", "3", "a"),
    ("GET", "nosuch"),
    ("HGET", "nosuch", "f"),
    ("LRANGE", "nosuch", "0", "-1"),
    ("EXISTS", "nosuch"),
    ("SUNIONSTORE", "su", "nosuch", "st"),
    ("INCR", "fresh"),
]


def collect(server, flags):
    """Runs COMMANDS, then waits for the events that mark the end: the
    sentinel's push and, if expiry events are on, the short key expiring."""
    c = server.client()
    c.config_set("notify-keyspace-events", flags)
    sub = server.client().pubsub()
    sub.psubscribe("__key*__:*")
    wait_until(lambda: (m := sub.get_message(timeout=0.1)) is not None and m["type"] == "psubscribe")
    for cmd in COMMANDS:
        c.execute_command(*cmd)
    c.set("short", "v", px=30)
    c.rpush("sentinel", "x")
    channels = ("K" in flags) + ("E" in flags)
    want_expired = channels if ("x" in flags or "A" in flags) else 0
    # The sentinel list's push (l) and creation (n) end the stream.
    want_sentinel = channels * (("l" in flags or "A" in flags) + ("n" in flags))
    got = []

    def done():
        m = sub.get_message(timeout=0.05)
        if m and m["type"] == "pmessage":
            got.append((m["channel"], m["data"]))
        expired = sum(1 for ch, d in got if b"expired" in (d, ch.rsplit(b":", 1)[-1]))
        sentinel = sum(1 for ch, d in got if b"sentinel" in (d, ch.rsplit(b":", 1)[-1]))
        return expired >= want_expired and sentinel >= want_sentinel

    wait_until(done, timeout=10, interval=0, what="events to arrive")
    sub.close()
    return got


@pytest.mark.parametrize("flags", ["KEA", "Kg$x", "El", "KEAmn", "Emn"])
def test_events_match_redis(start_percore, reference, flags):
    percore = start_percore(threads=4)
    want = collect(reference, flags)
    got = collect(percore, flags)
    assert got == want


def test_config_canonical_form(percore, reference):
    for server in (percore, reference):
        server.client().config_set("notify-keyspace-events", "KEA")
    assert percore.client().config_get("notify-keyspace-events") == reference.client().config_get(
        "notify-keyspace-events"
    )

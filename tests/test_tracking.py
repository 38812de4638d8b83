"""Client-side caching (CLIENT TRACKING) with real clients: a key read on
one core and written from another invalidates every reader, before the
reader's next reply; redirection, BCAST prefixes, flushes and the table's
size limit across shards; redis-py's own client-side cache stays coherent;
the commands answer as redis-server does."""

import pytest
import redis
from redis.cache import CacheConfig

from conftest import wait_until
from resp import Conn
from slots import keys_on_distinct_shards

SHARDS = 4


def resp3(port):
    c = Conn(port)
    c.call("HELLO", "3")
    return c


def pushes_until_pong(c):
    """Sends PING and returns the pushes that arrive before its PONG."""
    c.send("PING")
    pushes = []
    while True:
        _, reply = c.read()
        if reply == "PONG":
            return pushes
        kind, value = reply
        assert kind == ">", reply
        pushes.append(value)


def invalidated(pushes):
    keys = []
    for push in pushes:
        assert push[0] == b"invalidate"
        keys.extend(push[1][1])
    return sorted(keys)


def test_a_write_from_any_core_invalidates_every_reader_before_its_next_reply(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS, prefix="t")
    # Enough readers that they sit on every core.
    readers = [resp3(percore.port) for _ in range(12)]
    writer = Conn(percore.port)
    for k in keys:
        writer.call("SET", k, "v0")
    for r in readers:
        assert r.call("CLIENT", "TRACKING", "ON")[1] == "OK"
        assert r.call("MGET", *keys)[1][1] == [b"v0"] * SHARDS
    for round_ in range(1, 4):
        for k in keys:
            assert writer.call("SET", k, f"v{round_}")[1] == "OK"
            # The writer has its reply: each reader hears of the change
            # before the reply to anything it sends now.
            for r in readers:
                assert invalidated(pushes_until_pong(r)) == [k.encode()]
        for r in readers:
            r.call("MGET", *keys)
    # A key is invalidated once: a second write finds no reader left.
    writer.call("SET", keys[0], "again")
    writer.call("SET", keys[0], "and again")
    assert invalidated(pushes_until_pong(readers[0])) == [keys[0].encode()]


def test_own_writes_follow_the_reply_and_noloop_silences_them(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS, prefix="o")
    c = resp3(percore.port)
    c.call("CLIENT", "TRACKING", "ON")
    c.call("MGET", *keys)
    # The reply comes first, then the invalidation.
    assert c.call("SET", keys[1], "x")[1] == "OK"
    assert c.read()[1] == (">", [b"invalidate", ("*", [keys[1].encode()])])
    c.call("CLIENT", "TRACKING", "ON", "NOLOOP")
    c.call("MGET", *keys)
    c.call("SET", keys[2], "x")
    other = Conn(percore.port)
    other.call("SET", keys[3], "x")
    assert invalidated(pushes_until_pong(c)) == [keys[3].encode()]


def test_redirection_to_a_resp2_subscriber_and_a_broken_redirect(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS, prefix="r")
    sink = Conn(percore.port)
    sink_id = sink.call("CLIENT", "ID")[1]
    sink.call("SUBSCRIBE", "__redis__:invalidate")
    tracker = resp3(percore.port)
    assert tracker.call("CLIENT", "TRACKING", "ON", "REDIRECT", str(sink_id))[1] == "OK"
    assert tracker.call("CLIENT", "GETREDIR")[1] == sink_id
    writer = Conn(percore.port)
    writer.call("MSET", *[x for k in keys for x in (k, "1")])
    tracker.call("MGET", *keys)
    writer.call("DEL", *keys)
    got = []
    while len(got) < SHARDS:
        _, (_, msg) = sink.read()
        assert msg[:2] == [b"message", b"__redis__:invalidate"]
        got.extend(msg[2][1])
    assert sorted(got) == sorted(k.encode() for k in keys)
    # The target goes away: the tracker is told, and CLIENT TRACKINGINFO
    # says so.
    sink.close()
    wait_until(lambda: b"id=%d " % sink_id not in writer.call("CLIENT", "LIST")[0])
    tracker.call("GET", keys[0])
    writer.call("SET", keys[0], "x")
    wait_until(lambda: any(p[0] == b"tracking-redir-broken" for p in pushes_until_pong(tracker)))
    info = tracker.call("CLIENT", "TRACKINGINFO")[1][1]
    assert info[1] == ("~", [b"on", b"broken_redirect"])
    assert b"flags=tR " in tracker.call("CLIENT", "INFO")[1]


def test_bcast_prefixes_collect_keys_from_every_shard(start_percore):
    percore = start_percore(threads=SHARDS)
    c = resp3(percore.port)
    assert c.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "cart:")[1] == "OK"
    users = keys_on_distinct_shards(SHARDS, prefix="user:")
    carts = keys_on_distinct_shards(SHARDS, prefix="cart:")
    writer = Conn(percore.port)
    for k in users + carts + ["other:1", "other:2"]:
        writer.call("SET", k, "1")
    expected = sorted(k.encode() for k in users + carts)
    got = []
    while len(got) < len(expected):
        got.extend(invalidated(pushes_until_pong(c)))
    assert sorted(got) == expected
    assert writer.call("INFO", "stats")[0].count(b"tracking_total_prefixes:2\r\n") == 1


def test_flushall_invalidates_every_tracking_client_and_empties_the_table(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS, prefix="f")
    clients = [resp3(percore.port) for _ in range(6)]
    for c in clients:
        c.call("CLIENT", "TRACKING", "ON")
        c.call("MGET", *keys)
    other = Conn(percore.port)
    assert b"tracking_total_keys:4\r\n" in other.call("INFO", "stats")[0]
    assert b"tracking_total_items:24\r\n" in other.call("INFO", "stats")[0]
    other.call("FLUSHALL")
    for c in clients:
        assert pushes_until_pong(c) == [[b"invalidate", None]]
    assert b"tracking_total_keys:0\r\n" in other.call("INFO", "stats")[0]
    assert b"tracking_clients:6\r\n" in other.call("INFO", "clients")[0]


def test_the_table_limit_sheds_exactly_the_excess_across_shards(start_percore):
    percore = start_percore(threads=SHARDS)
    c = resp3(percore.port)
    c.call("CLIENT", "TRACKING", "ON")
    keys = [f"lim:{i}" for i in range(300)]
    c.call("MGET", *keys)
    other = Conn(percore.port)
    other.call("CONFIG", "SET", "tracking-table-max-keys", "20")
    got = []
    while len(got) < 280:
        got.extend(invalidated(pushes_until_pong(c)))
    assert len(got) == 280 and len(set(got)) == 280
    wait_until(lambda: b"tracking_total_keys:20\r\n" in other.call("INFO", "stats")[0])
    # Nothing more goes: the table is at the limit.
    assert pushes_until_pong(c) == []


def test_redis_py_client_side_cache_stays_coherent_under_writes(start_percore, monkeypatch):
    # redis-py offers its cache only to servers claiming 7.4 (a policy
    # choice; the protocol it uses is 6.0's), and percore is 7.0.
    monkeypatch.setattr(redis.connection.CacheProxyConnection, "MIN_ALLOWED_VERSION", "7.0.0")
    percore = start_percore(threads=SHARDS)
    cached = redis.Redis(port=percore.port, protocol=3, cache_config=CacheConfig())
    writer = redis.Redis(port=percore.port)
    keys = [f"cache:{i}" for i in range(64)]
    for k in keys:
        writer.set(k, "0")
    for round_ in range(1, 6):
        for k in keys:
            assert cached.get(k) == str(round_ - 1).encode()
            # Served from the cache now, and still right.
            assert cached.get(k) == str(round_ - 1).encode()
        # Every key is cached: only invalidations keep the next reads right.
        assert cached.get_cache().size == len(keys)
        for k in keys:
            writer.set(k, str(round_))
        for k in keys:
            assert cached.get(k) == str(round_).encode()


ERROR_CASES = [
    ["CLIENT", "TRACKING", "ON", "PREFIX", "a"],
    ["CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"],
    ["CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"],
    ["CLIENT", "TRACKING", "ON", "REDIRECT", "987654"],
    ["CLIENT", "TRACKING", "ON", "REDIRECT", "x"],
    ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab", "PREFIX", "a"],
    ["CLIENT", "TRACKING", "MAYBE"],
    ["CLIENT", "TRACKING", "ON", "BOGUS"],
    ["CLIENT", "TRACKING"],
    ["CLIENT", "CACHING", "yes"],
    ["CLIENT", "GETREDIR"],
    ["CLIENT", "TRACKINGINFO"],
    ["CLIENT", "TRACKING", "ON", "OPTIN"],
    ["CLIENT", "CACHING", "no"],
    ["CLIENT", "CACHING", "maybe"],
    ["CLIENT", "CACHING", "yes"],
    ["CLIENT", "TRACKINGINFO"],
    ["CLIENT", "TRACKING", "ON", "OPTOUT"],
    ["CLIENT", "TRACKING", "ON", "BCAST"],
    ["CLIENT", "TRACKING", "OFF"],
    ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p:"],
    ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p:x"],
    ["CLIENT", "TRACKING", "ON"],
    ["CLIENT", "TRACKINGINFO"],
    ["CLIENT", "GETREDIR"],
]


@pytest.mark.parametrize("protocol", ["2", "3"])
def test_commands_answer_as_redis_does(start_percore, reference, protocol):
    percore = start_percore(threads=SHARDS)
    replies = []
    for port in (percore.port, reference.port):
        c = Conn(port)
        c.call("HELLO", protocol)
        replies.append([c.call(*case)[0] for case in ERROR_CASES])
    for case, mine, theirs in zip(ERROR_CASES, *replies):
        assert mine == theirs, case

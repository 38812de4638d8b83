"""Pub/Sub with redis-py: subscribers and publishers on different cores."""

import socket
import time

import redis

from conftest import wait_until

SHARDS = 4


def drain(p, n, timeout=5.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = p.get_message(timeout=0.2)
        if m and m["type"] in ("message", "pmessage", "smessage"):
            got.append(m)
    return got


def test_every_subscriber_on_every_core_gets_each_message(start_percore):
    percore = start_percore(threads=SHARDS)
    subs = []
    for _ in range(8):
        p = percore.client().pubsub(ignore_subscribe_messages=True)
        p.subscribe("news")
        p.psubscribe("ne*")
        subs.append(p)
    pub = percore.client()
    wait_until(lambda: pub.pubsub_numsub("news") == [(b"news", 8)], what="8 subscribers")
    assert pub.pubsub_numpat() == 1
    for i in range(20):
        assert pub.publish("news", f"m{i}") == 16
    for p in subs:
        got = drain(p, 40)
        direct = [m["data"] for m in got if m["type"] == "message"]
        via_pattern = [m["data"] for m in got if m["type"] == "pmessage"]
        assert direct == [f"m{i}".encode() for i in range(20)]
        assert via_pattern == direct
        assert all(m["pattern"] == b"ne*" for m in got if m["type"] == "pmessage")


def test_resp3_push_and_shard_channels(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client(protocol=3)
    p = c.pubsub(ignore_subscribe_messages=True)
    p.ssubscribe("orders")
    pub = percore.client()
    wait_until(lambda: pub.execute_command("PUBSUB", "SHARDNUMSUB", "orders") == [b"orders", 1], what="ssubscribe")
    assert pub.execute_command("PUBLISH", "orders", "x") == 0
    assert pub.execute_command("SPUBLISH", "orders", "y") == 1
    got = drain(p, 1)
    assert [(m["type"], m["data"]) for m in got] == [("smessage", b"y")]


def test_subscribe_mode_and_unsubscribe(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client(protocol=2)
    p = c.pubsub()
    p.subscribe("a", "b")
    assert drain(p, 0) == []
    pub = percore.client()
    wait_until(lambda: pub.pubsub_channels() == [b"a", b"b"] or sorted(pub.pubsub_channels()) == [b"a", b"b"])
    p.unsubscribe("a")
    wait_until(lambda: pub.pubsub_numsub("a", "b") == [(b"a", 0), (b"b", 1)], what="unsubscribe a")
    p.close()
    wait_until(lambda: pub.pubsub_numsub("b") == [(b"b", 0)], what="disconnect cleans up")


def test_slow_subscriber_is_disconnected(start_percore):
    percore = start_percore(threads=SHARDS)
    pub = percore.client()
    pub.config_set("client-output-buffer-limit", "pubsub 1mb 256kb 60")
    # A subscriber that never reads its socket.
    s = socket.create_connection(("127.0.0.1", percore.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nfeed\r\n")
    wait_until(lambda: pub.pubsub_numsub("feed") == [(b"feed", 1)], what="subscriber")
    payload = "x" * 10000
    deadline = time.monotonic() + 20
    while pub.pubsub_numsub("feed") != [(b"feed", 0)]:
        assert time.monotonic() < deadline, "slow subscriber was never cut off"
        pipe = pub.pipeline(transaction=False)
        for _ in range(50):
            pipe.publish("feed", payload)
        pipe.execute()
    assert pub.ping()
    s.close()

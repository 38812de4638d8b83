"""Keyspace notifications: the same commands against redis-server and
percore must publish the same events, in the same order."""

import difflib
import time

import pytest
import redis

from conftest import wait_until
from writes import COMMANDS


def collect(server, flags):
    """Runs COMMANDS, then waits for the events that mark the end: the
    sentinel's push and, if expiry events are on, the short key expiring."""
    c = server.client()
    c.config_set("notify-keyspace-events", flags)
    sub = server.client().pubsub()
    sub.psubscribe("__key*__:*")
    wait_until(lambda: (m := sub.get_message(timeout=0.1)) is not None and m["type"] == "psubscribe")
    for cmd in COMMANDS:
        try:
            c.execute_command(*cmd)
        except redis.ResponseError:
            pass
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
    diff = list(difflib.unified_diff([repr(e) for e in want], [repr(e) for e in got], "redis", "percore", lineterm=""))
    assert got == want, "\n".join(diff[:60])


def test_config_canonical_form(percore, reference):
    for server in (percore, reference):
        server.client().config_set("notify-keyspace-events", "KEA")
    assert percore.client().config_get("notify-keyspace-events") == reference.client().config_get(
        "notify-keyspace-events"
    )


def test_dirty_counts_match_redis(start_percore, reference):
    """Each write of the workload counts its changes as Redis does
    (rdb_changes_since_last_save), whether its keys share a shard or not."""
    # Without save points, as the reference runs (a save resets the count).
    percore = start_percore("--save", "", threads=4)
    deltas = []
    for server in (reference, percore):
        c, info = server.client(), server.client()
        before = info.info("persistence")["rdb_changes_since_last_save"]
        got = []
        for cmd in COMMANDS:
            try:
                c.execute_command(*cmd)
            except redis.ResponseError:
                pass
            now = info.info("persistence")["rdb_changes_since_last_save"]
            got.append((cmd, now - before))
            before = now
        deltas.append(got)
    mismatched = [f"{cmd}: redis {w}, percore {g}" for (cmd, w), (_, g) in zip(*deltas) if w != g]
    assert not mismatched, "\n".join(mismatched)


def test_a_stalled_subscriber_shard_holds_writers_back_instead_of_queueing_without_bound(start_percore):
    """Events for a subscriber on another shard are queued to that shard;
    while it is stalled (DEBUG SLEEP there), a writer elsewhere is held
    back after a bounded number of queued events instead of queueing
    them without limit, and every event arrives once the shard wakes."""
    from resp import Conn, encode
    from slots import keys_on_distinct_shards

    server = start_percore(threads=2)
    server.client().config_set("notify-keyspace-events", "KA")
    conns = [Conn(server.port, timeout=30) for _ in range(8)]

    def stalled_by(sleeper, conn, seconds=0.4):
        """Whether `conn` is on `sleeper`'s shard: its PING waits out a sleep there."""
        sleeper.send("DEBUG", "SLEEP", str(seconds))
        time.sleep(0.05)  # the sleep has started
        t = time.monotonic()
        conn.call("PING")
        waited = time.monotonic() - t
        sleeper.read()
        return waited > seconds / 2

    sleeper = conns[0]
    others = conns[1:]
    same = [stalled_by(sleeper, c) for c in others]
    mates = [c for c, s in zip(others, same) if s]
    strangers = [c for c, s in zip(others, same) if not s]
    if not mates or not strangers:
        pytest.skip("connections did not spread over both shards")
    subscriber, writer = mates[0], strangers[0]
    # The key the writer can write while the sleeper's shard sleeps.
    sleeper.send("DEBUG", "SLEEP", "1")
    time.sleep(0.05)
    keys = keys_on_distinct_shards(2, prefix="fan")
    t = time.monotonic()
    writer.call("SET", keys[0], "probe")
    key = keys[0] if time.monotonic() - t < 0.5 else keys[1]
    sleeper.read()

    subscriber.call("SUBSCRIBE", f"__keyspace@0__:{key}")
    sleeper.send("DEBUG", "SLEEP", "3")
    time.sleep(0.05)
    started = time.monotonic()
    acked_while_stalled = total = 0
    batch = encode(("SET", key, "v")) * 100
    while time.monotonic() - started < 2:
        writer.send_raw(batch)
        for _ in range(100):
            writer.read()
        total += 100
        # (The sleep ends 2.95 s in: a batch held back until then is not counted.)
        if time.monotonic() - started < 2.8:
            acked_while_stalled = total
    sleeper.read()
    # Without the bound this is every SET a client could send in 2 s.
    assert 0 < acked_while_stalled < 40_000
    # Every event arrives, in order, once the shard wakes.
    for _ in range(total):
        kind, channel, payload = subscriber.read()[1][1]
        assert (kind, channel, payload) == (b"message", f"__keyspace@0__:{key}".encode(), b"set")
    for c in conns:
        c.close()

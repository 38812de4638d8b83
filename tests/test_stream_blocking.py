"""Blocking XREAD / XREADGROUP with real clients: wakeups from any core,
every reader of a stream served (a read takes nothing away), consumer
groups that deliver each entry once, Redis's errors when a blocked
group read loses its stream or group, and the same replies as
redis-server."""

import threading

import pytest
import redis

from conftest import blocked_count, in_thread, wait_until
from slots import keys_on_distinct_shards

SHARDS = 4


def block_then(server, c, calls, write, protocol=2):
    """Blocks each of `calls` on its own connection (one at a time, so
    they queue in order), runs `write`, and returns what each got."""
    base = blocked_count(c)
    threads = []
    for n, call in enumerate(calls, start=1):
        conn = server.client(protocol=protocol, socket_timeout=20)
        threads.append(in_thread(lambda conn=conn, call=call: conn.execute_command(*call)))
        wait_until(lambda n=n: blocked_count(c) == base + n, what=f"reader {n} blocked")
    write(c)
    out = []
    for t, result in threads:
        t.join(20)
        out.append(result.get("error", result.get("value")))
    return out


def test_xadd_on_another_core_wakes_the_reader_with_only_its_key(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS, prefix="s")
    c = percore.client()
    c.xadd(keys[0], {"old": "1"}, id="5-0")
    call = ["XREAD", "BLOCK", "10000", "STREAMS", *keys, *(["$"] * len(keys))]
    [got] = block_then(percore, c, [call], lambda c: c.xadd(keys[3], {"f": "v"}, id="7-1"))
    assert got == [[keys[3].encode(), [(b"7-1", {b"f": b"v"})]]]


def test_every_blocked_reader_is_served_and_each_from_its_own_position(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    c.xadd("s", {"a": "1"}, id="1-0")
    c.xadd("s", {"a": "2"}, id="2-0")
    calls = [
        ["XREAD", "BLOCK", "0", "STREAMS", "s", "$"],
        ["XREAD", "BLOCK", "0", "STREAMS", "s", "$"],
        # Waits past an id the stream has not reached.
        ["XREAD", "BLOCK", "0", "STREAMS", "s", "9-0"],
    ]
    pending = {}

    def write(c):
        c.xadd("s", {"a": "3"}, id="3-0")
        # The third reader still waits; the first two were served by 3-0.
        wait_until(lambda: blocked_count(c) == 1, what="two readers served")
        c.xadd("s", {"a": "10"}, id="10-0")
        pending["left"] = blocked_count(c)

    got = block_then(percore, c, calls, write)
    assert got[0] == got[1] == [[b"s", [(b"3-0", {b"a": b"3"})]]]
    assert got[2] == [[b"s", [(b"10-0", {b"a": b"10"})]]]
    assert pending["left"] == 0


def test_timeout_exec_and_client_unblock(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    assert c.xread({"s": "$"}, block=100) in (None, [], {})
    # Inside MULTI a blocking read answers at once, as with a timeout.
    pipe = c.pipeline(transaction=True)
    pipe.execute_command("XREAD", "BLOCK", "0", "STREAMS", "s", "$")
    # (redis-py parses the null array XREAD answers as an empty list.)
    assert pipe.execute() == [[]]
    reader = percore.client()
    rid = reader.client_id()
    t, result = in_thread(lambda: reader.execute_command("XREAD", "BLOCK", "0", "STREAMS", "s", "$"))
    wait_until(lambda: blocked_count(c) == 1, what="reader blocked")
    assert c.client_unblock(rid, error=True) == 1
    t.join(10)
    assert "UNBLOCKED" in str(result["error"])
    assert blocked_count(c) == 0


@pytest.mark.parametrize(
    "loss, error",
    [
        (lambda c: c.delete("s"), "UNBLOCKED the stream key no longer exists"),
        (lambda c: c.set("s", "now a string"), "UNBLOCKED the stream key no longer exists"),
        (lambda c: c.flushall(), "UNBLOCKED the stream key no longer exists"),
        (lambda c: c.xgroup_destroy("s", "g"), "NOGROUP the consumer group this client was blocked on no longer exists"),
    ],
    ids=["del", "overwrite", "flushall", "destroy"],
)
def test_group_read_fails_when_its_stream_or_group_goes(start_percore, reference, loss, error):
    for server in (reference, start_percore(threads=SHARDS)):
        c = server.client()
        c.flushall()
        c.xgroup_create("s", "g", id="$", mkstream=True)
        [got] = block_then(server, c, [["XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "s", ">"]], loss)
        assert isinstance(got, redis.ResponseError) and str(got) == error, (server, got)


def test_plain_read_outlives_its_stream(start_percore):
    """An XREAD waiter on a deleted stream keeps waiting, and the stream
    made again serves it."""
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    c.xadd("s", {"a": "1"}, id="4-0")

    def write(c):
        c.delete("s")
        c.xadd("s", {"b": "2"}, id="1-0")
        # Not past 4-0 yet: still blocked.
        assert blocked_count(c) == 1
        c.xadd("s", {"c": "3"}, id="5-0")

    [got] = block_then(percore, c, [["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]], write)
    assert got == [[b"s", [(b"5-0", {b"c": b"3"})]]]


@pytest.mark.parametrize("protocol", [2, 3])
def test_blocked_replies_match_redis(start_percore, reference, protocol):
    """The same blocked reads served by the same writes answer the same on
    both, in RESP2 and RESP3: one key's entries, COUNT honoured, a group
    reader's delivery recorded in the PEL."""
    percore = start_percore(threads=SHARDS)
    outcomes = []
    for server in (reference, percore):
        c = server.client(protocol=protocol)
        c.flushall()
        c.xgroup_create("a{x}", "g", id="$", mkstream=True)
        calls = [
            ["XREAD", "COUNT", "2", "BLOCK", "0", "STREAMS", "a{x}", "b{x}", "$", "$"],
            ["XREADGROUP", "GROUP", "g", "bob", "BLOCK", "0", "STREAMS", "a{x}", ">"],
            ["XREADGROUP", "GROUP", "g", "eve", "NOACK", "BLOCK", "0", "STREAMS", "a{x}", ">"],
        ]

        def write(c):
            pipe = c.pipeline(transaction=True)
            for i in range(3):
                pipe.xadd("a{x}", {"n": i}, id=f"1-{i + 1}")
            pipe.execute()
            # bob took the entries; eve still waits, and the next frees her.
            wait_until(lambda: blocked_count(c) == 1, what="readers served")
            c.xadd("a{x}", {"n": 9}, id="2-0")

        got = block_then(server, c, calls, write, protocol=protocol)
        pending = c.xpending_range("a{x}", "g", "-", "+", 10)
        outcomes.append((got, [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pending]))
    assert outcomes[0] == outcomes[1]


def test_consumers_on_several_cores_get_each_entry_once(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS, prefix="q")
    admin = percore.client()
    for k in keys:
        admin.xgroup_create(k, "workers", id="$", mkstream=True)
    per_key = 150
    seen = []
    lock = threading.Lock()
    done = threading.Event()

    def consumer(name):
        c = percore.client(socket_timeout=20)
        while not done.is_set():
            r = c.xreadgroup("workers", name, {k: ">" for k in keys}, count=7, block=100)
            for key, entries in r or []:
                ids = [eid for eid, _ in entries]
                with lock:
                    seen.extend((key, eid) for eid in ids)
                if ids:
                    c.xack(key, "workers", *ids)

    def producer(k):
        c = percore.client()
        for i in range(per_key):
            c.xadd(k, {"i": i})

    consumers = [threading.Thread(target=consumer, args=(f"c{i}",)) for i in range(6)]
    producers = [threading.Thread(target=producer, args=(k,)) for k in keys]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join()
    wait_until(lambda: len(seen) >= per_key * len(keys), timeout=30, what="every entry delivered")
    done.set()
    for t in consumers:
        t.join()
    assert len(seen) == len(set(seen)) == per_key * len(keys)
    for k in keys:
        assert admin.xpending(k, "workers")["pending"] == 0
        assert admin.xlen(k) == per_key


def test_served_group_reads_replay_from_the_aof(start_percore, tmp_path):
    """A blocked XREADGROUP served later propagates as Redis's XCLAIMs:
    the appendonly file replays to the same PEL and group state."""
    percore = start_percore("--appendonly", "yes", "--dir", str(tmp_path), threads=SHARDS)
    c = percore.client()
    c.xgroup_create("s", "g", id="$", mkstream=True)
    calls = [["XREADGROUP", "GROUP", "g", "c1", "BLOCK", "0", "STREAMS", "s", ">"]]
    block_then(percore, c, calls, lambda c: c.xadd("s", {"f": "v"}, id="3-3"))

    def state():
        groups = [(g["name"], g["last-delivered-id"], g["pending"]) for g in c.xinfo_groups("s")]
        pel = [(p["message_id"], p["consumer"]) for p in c.xpending_range("s", "g", "-", "+", 10)]
        return groups, pel

    before = state()
    assert before == ([(b"g", b"3-3", 1)], [(b"3-3", b"c1")])
    c.execute_command("DEBUG", "LOADAOF")
    assert state() == before

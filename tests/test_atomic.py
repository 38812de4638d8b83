"""Multi-key commands whose keys live on different shards are atomic: no
client ever observes half of one."""

import threading
import time

from conftest import wait_until
from resp import Conn, encode
from slots import keys_on_distinct_shards

SHARDS = 4


def hammer(percore, writer, reader, seconds=2.0, writers=3, readers=3):
    stop = time.monotonic() + seconds
    failures = []
    counts = {"w": 0, "r": 0}

    def run(fn, kind, seed):
        c = percore.client(socket_timeout=10)
        n = 0
        while time.monotonic() < stop and not failures:
            try:
                fn(c, seed, n)
            except AssertionError as e:
                failures.append(str(e))
            n += 1
        counts[kind] += n

    threads = [threading.Thread(target=run, args=(writer, "w", i)) for i in range(writers)]
    threads += [threading.Thread(target=run, args=(reader, "r", i)) for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert counts["w"] > 50 and counts["r"] > 50, counts


def test_mset_mget_all_or_nothing(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    percore.client().mset({k: "init" for k in keys})

    def writer(c, seed, n):
        c.mset({k: f"{seed}-{n}" for k in keys})

    def reader(c, seed, n):
        values = c.mget(keys)
        assert len(set(values)) == 1, f"torn MSET observed: {values}"

    hammer(percore, writer, reader)


def test_del_and_exists_are_atomic(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS, prefix="d")

    def writer(c, seed, n):
        if n % 2 == 0:
            c.mset({k: "x" for k in keys})
        else:
            c.delete(*keys)

    def reader(c, seed, n):
        seen = c.exists(*keys)
        assert seen in (0, SHARDS), f"EXISTS saw {seen} of {SHARDS} keys"

    hammer(percore, writer, reader)


def test_rename_between_shards_never_loses_the_value(start_percore):
    percore = start_percore(threads=SHARDS)
    a, b = keys_on_distinct_shards(2, prefix="r")[:2]
    # a and b must be on different shards of a 4-shard server too.
    c = percore.client()
    c.set(a, "payload")

    def writer(c, seed, n):
        # Only one writer may move the value back and forth.
        if seed == 0:
            src, dst = (a, b) if c.exists(a) else (b, a)
            c.rename(src, dst)

    def reader(c, seed, n):
        values = c.mget([a, b])
        assert values.count(b"payload") == 1 and values.count(None) == 1, f"RENAME torn: {values}"

    hammer(percore, writer, reader, writers=1)


def test_msetnx_is_all_or_nothing(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    keys = keys_on_distinct_shards(SHARDS, prefix="nx")
    c.set(keys[-1], "taken")
    assert c.msetnx({k: "v" for k in keys}) is False
    assert c.mget(keys[:-1]) == [None] * (SHARDS - 1)
    c.delete(keys[-1])
    assert c.msetnx({k: "v" for k in keys}) is True
    assert c.mget(keys) == [b"v"] * SHARDS


def test_cross_shard_commands_match_single_shard_results(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    k = keys_on_distinct_shards(SHARDS, prefix="x")
    c.set(k[0], "hello", px=100000)
    assert c.copy(k[0], k[1]) is True
    assert c.get(k[1]) == b"hello"
    assert 0 < c.pttl(k[1]) <= 100000
    assert c.copy(k[0], k[1]) is False
    assert c.copy(k[0], k[1], replace=True) is True
    assert c.renamenx(k[0], k[1]) is False
    assert c.renamenx(k[0], k[2]) is True
    assert c.get(k[2]) == b"hello" and c.get(k[0]) is None
    assert 0 < c.pttl(k[2]) <= 100000
    c.set(k[3], "ohmytext")
    c.set(k[0], "mynewtext")
    assert c.lcs(k[3], k[0]) == b"mytext"
    assert c.exists(*k) == 4
    assert c.delete(*k) == 4
    assert c.dbsize() == 0


def test_set_algebra_across_shards(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    a, b, dst = keys_on_distinct_shards(3, prefix="set")
    c.sadd(a, "x", "y", "z")
    c.sadd(b, "y", "z", "w")
    assert c.sinter(a, b) == {b"y", b"z"}
    assert c.sunion(a, b) == {b"x", b"y", b"z", b"w"}
    assert c.sdiff(a, b) == {b"x"}
    assert c.sinterstore(dst, a, b) == 2
    assert c.smembers(dst) == {b"y", b"z"}
    assert c.sintercard(2, [a, b]) == 2
    assert c.smove(a, dst, "x") is True
    assert c.smembers(dst) == {b"x", b"y", b"z"}
    assert c.sdiffstore(dst, a, a) == 0
    assert c.exists(dst) == 0


def test_smove_between_shards_never_loses_a_member(start_percore):
    percore = start_percore(threads=SHARDS)
    a, b = keys_on_distinct_shards(2, prefix="mv")
    percore.client().sadd(a, "m")

    def writer(c, seed, n):
        src, dst = (a, b) if c.sismember(a, "m") else (b, a)
        c.smove(src, dst, "m")

    def reader(c, seed, n):
        total = c.sunion(a, b)
        assert total == {b"m"}, f"member lost: {total}"
        both = c.sinter(a, b)
        assert both == set(), f"member in both sets at once: {both}"

    hammer(percore, writer, reader, writers=1)


def test_lmove_between_shards_keeps_every_element(start_percore):
    percore = start_percore(threads=SHARDS)
    src, dst = keys_on_distinct_shards(2, prefix="q")
    c = percore.client()
    c.rpush(src, *range(200))
    moved = [c.lmove(src, dst, "LEFT", "RIGHT") for _ in range(120)]
    assert moved == [str(i).encode() for i in range(120)]
    assert c.llen(src) == 80 and c.llen(dst) == 120
    popped = c.lmpop(2, src, dst, direction="RIGHT", count=500)
    assert popped[0] == src.encode() and len(popped[1]) == 80
    assert c.exists(src) == 0
    assert c.rpoplpush(dst, src) == b"119"
    assert c.lrange(src, 0, -1) == [b"119"]


def test_flushall_inside_exec_or_a_script_never_deadlocks_with_cross_shard_writes(start_percore):
    """An EXEC or a script that holds a key and then runs FLUSHALL must
    raise its barriers while a cross-shard MSET holds the other shard's key
    and waits for the held one."""
    percore = start_percore("--save", "", threads=2)
    low, high = keys_on_distinct_shards(2, prefix="fx")
    rounds = 200
    done = {"exec": 0, "eval": 0, "mset": 0}
    errors = []

    def run(kind, body):
        c = percore.client(socket_timeout=10)
        try:
            for _ in range(rounds):
                body(c)
                done[kind] += 1
        except Exception as e:  # a timeout here is the deadlock
            errors.append(f"{kind}: {e!r}")

    def exec_flush(c):
        p = c.pipeline(transaction=True)
        p.set(high, "x").flushall()
        assert p.execute() == [True, True]

    def eval_flush(c):
        c.eval("redis.call('set', KEYS[1], 'y') return redis.call('flushall')", 1, high)

    def mset(c):
        c.mset({low: "a", high: "b"})

    bodies = [("exec", exec_flush), ("eval", eval_flush), ("mset", mset), ("mset", mset)]
    threads = [threading.Thread(target=run, args=b) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert done == {"exec": rounds, "eval": rounds, "mset": 2 * rounds}
    # Whatever ran last, the pair is whole or gone.
    c = percore.client()
    assert c.mget(low, high) in ([b"a", b"b"], [None, None], [None, b"x"], [None, b"y"])


def test_blmove_between_shards_is_never_seen_half_done(start_percore):
    percore = start_percore(threads=SHARDS)
    a, b = keys_on_distinct_shards(2, prefix="bm")
    percore.client().rpush(a, "m")

    def writer(c, seed, n):
        # Two clients bounce the element: each waits for it in its source.
        src, dst = (a, b) if seed % 2 == 0 else (b, a)
        c.blmove(src, dst, 0.05, "LEFT", "RIGHT")

    def reader(c, seed, n):
        p = c.pipeline(transaction=True)
        p.lrange(a, 0, -1).lrange(b, 0, -1)
        both = p.execute()
        assert sorted(both, key=len) == [[], [b"m"]], f"element in neither or both lists: {both}"

    hammer(percore, writer, reader, writers=2)


def test_a_crowd_queueing_for_one_key_all_get_through_and_the_key_stays_usable(start_percore):
    """Hundreds of cross-shard writers queue for the same two keys; half of
    them close without reading, some are scripts that reach for a key they
    did not declare (and may give up waiting for it). Each takes its turn
    or passes it on: every reader gets all its replies, and afterwards the
    keys are free for plain commands and transactions alike."""
    percore = start_percore(threads=2)
    a, b = keys_on_distinct_shards(2, prefix="crowd")
    per = 30
    mset = encode(["MSET", a, "1", b, "2"])
    script = f"return {{redis.call('SET', KEYS[1], 's'), redis.call('SET', '{b}', 's')}}"
    script_call = encode(["EVAL", script, "1", a])
    readers, quitters = [], []
    for i in range(300):
        conn = Conn(percore.port, timeout=30)
        conn.send_raw((script_call if i % 10 == 0 else mset) * per)
        (quitters if i % 2 else readers).append(conn)
    for conn in quitters:
        conn.close()
    for conn in readers:
        for _ in range(per):
            conn.read()
        conn.close()
    c = percore.client(socket_timeout=10)
    wait_until(lambda: c.info("clients")["connected_clients"] == 1, what="the crowd to leave")
    assert c.get(a) in (b"1", b"s") and c.get(b) in (b"2", b"s")
    assert c.mset({a: "x", b: "y"}) and c.mget(a, b) == [b"x", b"y"]

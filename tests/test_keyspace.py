"""Keyspace-wide commands whose answer spans every shard."""

import time

from slots import keys_on_distinct_shards

SHARDS = 4


def test_scan_returns_every_key_exactly_once_across_shards(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    pipe = c.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"user:{i}", i)
    for i in range(500):
        pipe.set(f"other:{i}", i)
    pipe.execute()
    seen = []
    cursor = 0
    calls = 0
    while True:
        cursor, keys = c.scan(cursor=cursor, count=7)
        seen.extend(keys)
        calls += 1
        if cursor == 0:
            break
    assert len(seen) == len(set(seen)) == 3500
    assert calls > 10
    matched = set(c.scan_iter(match="other:*", count=100))
    assert matched == {f"other:{i}".encode() for i in range(500)}
    assert set(c.scan_iter(_type="string", count=1000)) == set(seen)
    assert list(c.scan_iter(_type="list")) == []


def test_scan_on_empty_database_ends_at_once(start_percore):
    percore = start_percore(threads=SHARDS)
    assert percore.client().scan(0) == (0, [])


def test_keys_dbsize_randomkey_flush_swapdb(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    keys = keys_on_distinct_shards(SHARDS, prefix="ks")
    for k in keys:
        c.set(k, "v")
    assert sorted(c.keys("ks*")) == sorted(k.encode() for k in keys)
    assert c.dbsize() == SHARDS
    assert c.randomkey() in {k.encode() for k in keys}
    assert c.swapdb(0, 1)
    assert c.dbsize() == 0
    c1 = percore.client(db=1)
    assert c1.dbsize() == SHARDS
    assert c1.flushdb()
    assert c1.dbsize() == 0
    c.set("a", 1)
    c1.set("b", 2)
    assert c.flushall()
    assert c.dbsize() == 0 and c1.dbsize() == 0
    assert c.randomkey() is None


def test_select_and_move_keep_databases_apart(start_percore):
    percore = start_percore(threads=SHARDS)
    c0, c5 = percore.client(db=0), percore.client(db=5)
    c0.set("k", "zero")
    assert c5.get("k") is None
    assert c0.move("k", 5)
    assert c0.get("k") is None and c5.get("k") == b"zero"
    keys = keys_on_distinct_shards(2, prefix="cp")
    c5.set(keys[0], "x")
    assert c5.copy(keys[0], keys[1], destination_db=3)
    assert percore.client(db=3).get(keys[1]) == b"x"


def test_ttl_type_exists_leave_the_access_time(start_percore):
    c = start_percore().client()
    c.set("k", "v")
    # Idle time counts in seconds: wait until the key has been idle for one.
    deadline = time.monotonic() + 5
    while c.object("idletime", "k") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for cmd in (["TTL", "k"], ["PTTL", "k"], ["EXPIRETIME", "k"], ["TYPE", "k"], ["EXISTS", "k"]):
        c.execute_command(*cmd)
    assert c.object("idletime", "k") >= 1
    c.get("k")
    assert c.object("idletime", "k") == 0

"""Data types through redis-py, in RESP2 and RESP3: the client's own reply
parsing must accept what percore sends."""

import pytest
import redis


def client_script(c):
    """The same calls against either server; returns what redis-py made of
    each reply."""
    out = []
    out.append(c.hset("h", mapping={"a": "1", "b": "2"}))
    out.append(c.hgetall("h"))
    out.append(c.hincrbyfloat("h", "a", 0.5))
    out.append(c.hrandfield("h", 5, withvalues=True) is not None)
    out.append(c.rpush("l", "x", "y", "z"))
    out.append(c.lrange("l", 0, -1))
    out.append(c.lpop("l", 2))
    out.append(c.lmpop(1, "l", direction="LEFT"))
    out.append(c.sadd("s", "m1", "m2"))
    out.append(c.smembers("s"))
    out.append(c.zadd("z", {"a": 1.5, "b": 2, "c": -1}))
    out.append(c.zrange("z", 0, -1, withscores=True))
    out.append(c.zscore("z", "a"))
    out.append(c.zmscore("z", ["a", "nope"]))
    out.append(c.zincrby("z", 1, "a"))
    out.append(c.zpopmin("z"))
    out.append(c.zpopmax("z", 1))
    out.append(c.zrangebyscore("z", "-inf", "+inf", withscores=True))
    out.append(c.zadd("z2", {"q": 1}))
    out.append(c.zunion(["z", "z2"], withscores=True))
    out.append(c.zmpop(1, ["z"], min=True))
    out.append(c.pfadd("hll", "a", "b", "c"))
    out.append(c.pfcount("hll"))
    out.append(c.setbit("bits", 7, 1))
    out.append(c.bitcount("bits"))
    out.append(c.bitfield("bf").set("u8", 0, 200).get("u8", 0).execute())
    out.append(c.rpush("nums", 3, 1, 2))
    out.append(c.sort("nums"))
    out.append(c.sort("nums", desc=True, start=0, num=2))
    out.append(c.object("encoding", "h"))
    out.append(c.type("z2"))
    return out


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_sees_the_same_replies(start_percore, reference, protocol):
    percore = start_percore(threads=2)
    results = []
    for server in (reference, percore):
        c = server.client(protocol=protocol, decode_responses=True)
        c.flushall()
        results.append(client_script(c))
    for i, (want, got) in enumerate(zip(*results)):
        assert got == want, f"call {i}: redis {want!r}, percore {got!r}"


def test_wrongtype_and_encoding_changes(percore):
    c = percore.client(decode_responses=True)
    c.hset("h", "f", "v")
    assert c.object("encoding", "h") == "listpack"
    c.hset("h", "big", "x" * 100)
    assert c.object("encoding", "h") == "hashtable"
    with pytest.raises(Exception, match="WRONGTYPE"):
        c.lpush("h", "v")


def test_big_sorted_set_ranks_and_ranges(percore):
    c = percore.client()
    pipe = c.pipeline(transaction=False)
    for i in range(5000):
        pipe.zadd("big", {f"m{i}": i % 997})
    pipe.execute()
    assert c.object("encoding", "big") == b"skiplist"
    assert c.zcard("big") == 5000
    ordered = c.zrange("big", 0, -1, withscores=True)
    assert [s for _, s in ordered] == sorted(s for _, s in ordered)
    for member, _ in ordered[::250]:
        rank = c.zrank("big", member)
        assert ordered[rank][0] == member
    assert c.zcount("big", 10, 20) == sum(1 for _, s in ordered if 10 <= s <= 20)
    assert c.zremrangebyscore("big", "-inf", 99) == sum(1 for _, s in ordered if s <= 99)
    assert c.zrange("big", 0, 0, withscores=True)[0][1] == 100.0


@pytest.mark.parametrize("kind", ["hash", "set", "zset"])
def test_scan_returns_every_element_while_the_collection_grows(percore, kind):
    """HSCAN/SSCAN/ZSCAN: an element present for the whole scan is returned
    even when the table grows between calls (duplicates are allowed)."""
    r = percore.client()
    add = {
        "hash": lambda names: r.hset("c", mapping={n: "v" for n in names}),
        "set": lambda names: r.sadd("c", *names),
        "zset": lambda names: r.zadd("c", {n: 1 for n in names}),
    }[kind]
    scan = {"hash": r.hscan, "set": r.sscan, "zset": r.zscan}[kind]
    original = [f"m{i}" for i in range(1000)]
    add(original)
    seen, cursor, added, calls = set(), 0, 0, 0
    while True:
        cursor, items = scan("c", cursor, count=50)
        seen.update(x[0] if isinstance(x, tuple) else x for x in (items.keys() if isinstance(items, dict) else items))
        add([f"new{added + j}" for j in range(100)])
        added += 100
        calls += 1
        if cursor == 0:
            break
        assert calls < 1000, "the scan must end"
    assert {m.encode() for m in original} <= seen


def test_hostile_counts_and_offsets_get_errors(percore, reference):
    """Counts and offsets at the edges of 64 bits: the same errors as
    Redis where it has one, a bounded refusal where Redis would try to
    build an endless reply; the server stays up."""
    MIN = "-9223372036854775808"
    same_as_redis = [
        ("SRANDMEMBER", "s", MIN),
        ("HRANDFIELD", "h", MIN, "WITHVALUES"),
        ("ZRANDMEMBER", "z", MIN),
        ("SETRANGE", "str", "4294967296", "x"),
        ("SETBIT", "bits", "4294967296", "1"),
        ("BITFIELD", "bf", "SET", "u8", "4294967296", "1"),
        ("SELECT", "9223372036854775807"),
        ("MOVE", "str", "99"),
        ("SWAPDB", "0", "9223372036854775807"),
        ("LPOS", "l", "1", "COUNT", "-1"),
    ]
    for server in (percore, reference):
        c = server.client()
        c.sadd("s", *range(10))
        c.hset("h", mapping={str(i): i for i in range(10)})
        c.zadd("z", {str(i): i for i in range(10)})
        c.rpush("l", 1)
    for cmd in same_as_redis:
        replies = []
        for server in (percore, reference):
            try:
                replies.append(server.client().execute_command(*cmd))
            except redis.ResponseError as e:
                replies.append(str(e))
        assert replies[0] == replies[1], cmd
    c = percore.client()
    for cmd in [("SRANDMEMBER", "s", "-4611686018427387904"), ("ZRANDMEMBER", "z", "-99999999999", "WITHSCORES")]:
        with pytest.raises(redis.ResponseError, match="out of range"):
            c.execute_command(*cmd)
    assert c.ping()


def test_lists_with_plain_nodes_behave_as_redis(start_percore, reference):
    """Entries at or above DEBUG QUICKLIST-PACKED-THRESHOLD live alone in a
    node; every list command still sees one list."""
    import random

    answers = []
    for server in (start_percore(), reference):
        c = server.client()
        rng = random.Random(5)
        got = [c.execute_command("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "10b")]
        try:
            for step in range(600):
                v = "x" * rng.choice([1, 3, 9, 10, 11, 40])
                op = rng.randrange(7)
                if op == 0:
                    got.append(c.lpush("l", v))
                elif op == 1:
                    got.append(c.rpush("l", v))
                elif op == 2:
                    got.append(c.linsert("l", rng.choice(["BEFORE", "AFTER"]), "x" * rng.choice([1, 11]), v))
                elif op == 3 and c.llen("l"):
                    got.append(c.lset("l", rng.randrange(c.llen("l")), v))
                elif op == 4:
                    got.append(c.lrem("l", rng.choice([0, 1, -1]), v))
                elif op == 5:
                    got.append(c.execute_command(rng.choice(["LPOP", "RPOP"]), "l"))
                elif op == 6 and c.llen("l") > 20:
                    got.append(c.ltrim("l", 1, -2))
                if step % 50 == 0:
                    got.append(c.lrange("l", 0, -1))
                    got.append(c.lpos("l", "x" * 11, rank=-1, count=0))
            got.append(c.lrange("l", 0, -1))
            for bad in ("5gb", "nosuch"):
                try:
                    got.append(c.execute_command("DEBUG", "QUICKLIST-PACKED-THRESHOLD", bad))
                except redis.ResponseError as e:
                    got.append(str(e))
        finally:
            c.execute_command("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "0")
        answers.append(got)
    assert answers[0] == answers[1]

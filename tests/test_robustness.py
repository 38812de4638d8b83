"""Nothing a client sends may reorder replies, freeze a shard, deadlock
keys or take the server down."""

import random
import threading
import time

import redis

from conftest import wait_until
from resp import Conn, encode
from slots import keys_on_distinct_shards


def raw_pipeline(server, commands):
    """Sends every command in one write; the exact bytes of each reply."""
    conn = Conn(server.port, timeout=10)
    try:
        conn.send_raw(b"".join(encode(cmd) for cmd in commands))
        return [conn.read()[0] for _ in commands]
    finally:
        conn.close()


def race_to_the_end(loop, errors, *arg_sets):
    """Runs `loop` once per argument set, all at once; each must end
    within a minute without an error."""
    threads = [threading.Thread(target=loop, args=args) for args in arg_sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads), "EXECs deadlocked"


def test_early_errors_wait_their_turn(start_percore, reference):
    """Errors the gate finds (arity, unknown command, syntax, wrong type)
    leave after the replies of earlier commands still on another shard."""
    percore = start_percore(threads=2)
    local, remote = keys_on_distinct_shards(2, prefix="x")
    rng = random.Random(7)
    for server in (percore, reference):
        server.client().flushall()
        server.client().rpush("list", "a")
    for _ in range(40):
        commands = []
        for i in range(rng.randint(3, 30)):
            key = rng.choice([local, remote])
            commands.append(rng.choice([
                ["SET", key, i],
                ["GET", key],
                ["INCR", key],
                ["MGET"],
                ["SET", key],
                ["NOSUCHCOMMAND", key],
                ["SET", key, "v", "BADOPTION"],
                ["LPUSH", "list", "b"],
                ["GET", "list"],
                ["MSET", local, i, remote, i],
                ["MGET", local, remote],
                ["PING"],
                ["EXISTS", local, remote],
            ]))
        assert raw_pipeline(percore, commands) == raw_pipeline(reference, commands), commands


def test_exec_with_store_destination_on_another_shard_does_not_deadlock(start_percore):
    """Two EXECs whose ZUNIONSTORE destinations sit on each other's shards:
    every key they touch is locked up front, in order."""
    percore = start_percore(threads=2)
    k0, k1 = keys_on_distinct_shards(2, prefix="dl")
    percore.client().zadd("{src}a", {"m": 1})
    errors = []
    rounds = 300

    def loop(first, dest, src):
        c = percore.client(socket_timeout=10)
        try:
            for _ in range(rounds):
                p = c.pipeline(transaction=True)
                p.set(first, "x")
                p.zunionstore(dest, [src])
                p.execute()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    race_to_the_end(loop, errors, (k1, k0, "{src}a"), (k0, k1, "{src}b"))
    c = percore.client(socket_timeout=5)
    assert c.set(k0, "free") and c.set(k1, "free")
    assert c.type(k0) == b"string"


def test_exec_with_copy_into_another_database_does_not_deadlock(start_percore):
    """Two EXECs, one in db 0 and one in db 1, each COPYing into the
    other's database a key the other writes first: the destination in the
    other database is locked up front with the rest, and stays locked
    until EXEC ends (the copies land whole)."""
    percore = start_percore(threads=2)
    k0, k1 = keys_on_distinct_shards(2, prefix="cp")
    setup = percore.client()
    setup.set("{src}a", "a")
    percore.client(db=1).set("{src}b", "b")
    errors = []
    rounds = 300

    def loop(db, first, dest, src, other_db):
        c = percore.client(db=db, socket_timeout=10)
        try:
            for _ in range(rounds):
                p = c.pipeline(transaction=True)
                p.set(first, "x")
                p.execute_command("COPY", src, dest, "DB", other_db, "REPLACE")
                p.execute()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    race_to_the_end(loop, errors, (0, k0, k1, "{src}a", 1), (1, k1, k0, "{src}b", 0))
    c0, c1 = percore.client(db=0, socket_timeout=5), percore.client(db=1, socket_timeout=5)
    assert c0.get(k0) in (b"x", b"b") and c1.get(k1) in (b"x", b"a")
    assert c0.set(k0, "free") and c1.set(k1, "free")


def test_exec_locks_sort_store_destination(start_percore):
    percore = start_percore(threads=2)
    k0, k1 = keys_on_distinct_shards(2, prefix="so")
    c = percore.client(socket_timeout=5)
    c.rpush(k0, 3, 1, 2)
    p = c.pipeline(transaction=True)
    p.sort(k0, store=k1)
    p.lrange(k1, 0, -1)
    assert p.execute() == [3, [b"1", b"2", b"3"]]
    assert c.command_getkeys("SORT", k0, "LIMIT", 0, 1, "STORE", k1) == [k0, k1]
    assert c.command_getkeys("ZUNIONSTORE", "d", 2, "a", "b") == ["d", "a", "b"]


def test_exponential_glob_does_not_freeze(percore, reference):
    """CVE-2022-36021: a pattern of many stars against a long key."""
    pattern = "a*" * 20 + "b"
    for server in (percore, reference):
        c = server.client(socket_timeout=5)
        c.set("a" * 40, 1)
        started = time.monotonic()
        assert c.keys(pattern) == []
        assert list(c.scan_iter(match=pattern)) == []
        assert c.ping()
        assert time.monotonic() - started < 2
        sub = server.client(socket_timeout=5).pubsub()
        sub.psubscribe(pattern)
        assert c.publish("a" * 40, "m") == 0
        sub.close()


def test_glob_quirks_match_redis(percore, reference):
    keys = ["ab", "a[b", "hello", "h*llo", "hallo", "a\\", "x", "a-z", "B"]
    patterns = ["a[b", "a[", "h[^e]llo", "h\\*llo", "*", "a\\", "[a-]*", "[\\]]", "?", "[b-a]", "*[", "b"]
    results = []
    for server in (percore, reference):
        c = server.client()
        c.flushall()
        for k in keys:
            c.set(k, 1)
        results.append([sorted(c.keys(p)) for p in patterns])
    assert results[0] == results[1]


def test_debug_sleep_out_of_range_answers(percore, reference):
    for server in (percore, reference):
        c = server.client(socket_timeout=5)
        assert c.execute_command("DEBUG", "SLEEP", "1e30") in (True, b"OK")
        assert c.execute_command("DEBUG", "SLEEP", "0") in (True, b"OK")
        assert c.ping()


def test_a_panicking_command_fails_alone(start_percore):
    """A panic inside a command, on the client's core or on another one,
    inside EXEC or not, fails that command only: the client gets an error,
    both cores keep serving, the keys the transaction held are released,
    and the log says where it panicked."""
    percore = start_percore(threads=2)
    local, remote = keys_on_distinct_shards(2, prefix="pn")
    c = percore.client(socket_timeout=5)
    for key in (local, remote, None):
        args = ["DEBUG", "CONTAINED-PANIC"] + ([key] if key else [])
        try:
            c.execute_command(*args)
            raise AssertionError("the panic was not reported")
        except redis.ResponseError as e:
            assert "internal error while executing 'debug'" in str(e)
    p = c.pipeline(transaction=True)
    p.set(local, "a")
    p.execute_command("DEBUG", "CONTAINED-PANIC", remote)
    p.set(remote, "b")
    p.incr(local)
    replies = p.execute(raise_on_error=False)
    assert replies[0] is True and replies[2] is True
    assert isinstance(replies[1], redis.ResponseError) and isinstance(replies[3], redis.ResponseError)
    other = percore.client(socket_timeout=5)
    assert other.mget(local, remote) == [b"a", b"b"]
    assert other.set(local, "free") and other.set(remote, "free")
    assert other.ping()
    wait_until(lambda: percore.output().count("panic in") >= 4, what="the panics logged")
    assert "DEBUG CONTAINED-PANIC" in percore.output()


def test_move_waits_for_a_transaction_holding_its_target(start_percore):
    """MOVE's key in its target database is one of its keys: while an EXEC
    in that database holds the key (here across a DEBUG SLEEP of its own
    core), clients looping MOVEs into it wait, so the transaction never
    sees the key appear between its DEL and its GET. Connections land on
    either core, so some of the transactions sleep the other core than the
    key's, leaving the key's core free to run the MOVE."""
    percore = start_percore(threads=2)
    key = "mv"
    stop = threading.Event()
    moves = []

    def mover():
        c = percore.client(db=0, socket_timeout=10)
        while not stop.is_set():
            c.set(key, "moved")
            moves.append(c.move(key, 1))

    # A mover whose connection is on the sleeping core waits out the
    # sleep; with eight, one is on the key's core but for 1 run in 256.
    threads = [threading.Thread(target=mover) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        for _ in range(12):
            tx = percore.client(db=1, socket_timeout=10).pipeline(transaction=True)
            tx.delete(key)
            tx.execute_command("DEBUG", "SLEEP", "0.05")
            tx.get(key)
            assert tx.execute()[2] is None
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert any(moves), "no MOVE ever ran"

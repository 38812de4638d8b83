"""Lua scripting with redis-py: its Lock, atomic scripts over keys of
several shards, errors, SCRIPT KILL of a busy script."""

import socket
import threading
import time

import pytest
import redis

from conftest import wait_until
from slots import keys_on_distinct_shards

SHARDS = 4


def test_redis_py_lock(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    lock = c.lock("resource", timeout=5)
    assert lock.acquire(blocking=False)
    other = percore.client().lock("resource", timeout=5)
    assert not other.acquire(blocking=False)
    assert lock.extend(5)
    lock.release()
    assert other.acquire(blocking=False)
    other.release()
    with pytest.raises(redis.exceptions.LockError):
        other.release()


def test_registered_script_and_evalsha(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    incr_by = c.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    assert incr_by(keys=["n"], args=[5]) == 5
    assert incr_by(keys=["n"], args=[2]) == 7
    c.script_flush()
    # redis-py reloads on NOSCRIPT.
    assert incr_by(keys=["n"], args=[1]) == 8


def test_script_is_atomic_across_shards(start_percore):
    """A script moving units between keys on different shards: readers
    running another script over the same keys always see the same total."""
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    c = percore.client()
    c.mset({k: 100 for k in keys})
    move = c.register_script(
        "local v = tonumber(redis.call('get', KEYS[1])) "
        "redis.call('set', KEYS[1], v - 1) "
        "redis.call('incr', KEYS[2]) return 1"
    )
    total = c.register_script(
        "local s = 0 for i = 1, #KEYS do s = s + tonumber(redis.call('get', KEYS[i])) end return s"
    )
    stop = time.monotonic() + 1.5
    bad = []

    def mover(i):
        m = percore.client()
        n = 0
        while time.monotonic() < stop:
            move(keys=[keys[(i + n) % len(keys)], keys[(i + n + 1) % len(keys)]], client=m)
            n += 1

    def reader():
        r = percore.client()
        while time.monotonic() < stop and not bad:
            s = total(keys=keys, client=r)
            if s != 100 * len(keys):
                bad.append(s)

    threads = [threading.Thread(target=mover, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad, bad[:5]
    assert sum(int(v) for v in c.mget(keys)) == 100 * len(keys)


def test_undeclared_key_on_another_shard_is_refused(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    c = percore.client()
    with pytest.raises(redis.ResponseError, match="not declared"):
        c.eval("return redis.call('get', ARGV[1])", 1, keys[0], keys[1])
    # The declared key itself, and keys sharing its shard by hash tag, work.
    assert c.eval("redis.call('set', KEYS[1], 'x') return redis.call('get', '{' .. KEYS[1] .. '}')", 1, "t") is None


def test_script_kill_from_another_core(start_percore):
    percore = start_percore("--busy-reply-threshold", "300", threads=2)
    busy = socket.create_connection(("127.0.0.1", percore.port))
    busy.settimeout(30)
    answer = []
    busy.sendall(b"EVAL 'while true do end' 0\r\n")
    t = threading.Thread(target=lambda: answer.append(busy.recv(300)))
    t.start()
    # Find a connection served by the other core: it answers while the
    # busy one cannot.
    killer = None
    deadline = time.monotonic() + 10
    while killer is None and time.monotonic() < deadline:
        s = socket.create_connection(("127.0.0.1", percore.port))
        s.settimeout(0.3)
        try:
            s.sendall(b"PING\r\n")
            reply = s.recv(100)
            if reply.startswith(b"-BUSY") or reply == b"+PONG\r\n":
                killer = s
                continue
        except socket.timeout:
            pass
        s.close()
    assert killer is not None, "no connection landed on the idle core"
    killer.settimeout(10)

    def ask(cmd):
        killer.sendall(cmd)
        return killer.recv(200)

    wait_until(lambda: ask(b"PING\r\n").startswith(b"-BUSY"), timeout=15, what="BUSY after the threshold")
    assert ask(b"SCRIPT KILL\r\n") == b"+OK\r\n"
    t.join(timeout=10)
    assert answer and answer[0].startswith(b"-ERR Script killed by user with SCRIPT KILL"), answer
    busy.close()
    wait_until(lambda: ask(b"PING\r\n") == b"+PONG\r\n", what="server answers again")
    killer.close()


def test_function_library_runs_on_every_shard(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    c = percore.client()
    code = "#!lua name=counters\nredis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)"
    assert c.function_load(code) == b"counters"
    for _ in range(3):
        for k in keys:
            percore.client().fcall("bump", 1, k, 2)
    assert [int(v) for v in c.mget(keys)] == [6] * len(keys)
    # A replaced library takes effect on shards that loaded the old one.
    c.function_load(code.replace("incrby', keys[1], args[1]", "incrby', keys[1], args[1] * 10"), replace=True)
    for k in keys:
        percore.client().fcall("bump", 1, k, 1)
    assert [int(v) for v in c.mget(keys)] == [16] * len(keys)
    with pytest.raises(redis.ResponseError, match="write flag"):
        c.fcall_ro("bump", 1, keys[0], 1)

"""Blocking pops with real clients: wakeups from any core, FIFO service,
timeouts, CLIENT UNBLOCK, disconnects, and no element lost or doubled."""

import threading
import time

import pytest
import redis

from conftest import blocked_count, in_thread, wait_until
from slots import keys_on_distinct_shards

SHARDS = 4


def test_push_from_another_core_wakes_the_waiter(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    c = percore.client()
    t, result = in_thread(lambda: percore.client().blpop(keys, timeout=10))
    wait_until(lambda: blocked_count(c) == 1, what="client blocked")
    c.rpush(keys[2], "v")
    t.join()
    assert result["value"] == (keys[2].encode(), b"v")
    assert c.exists(keys[2]) == 0


def test_waiters_are_served_first_come_first_served(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    threads = []
    for i in range(3):
        threads.append(in_thread(lambda: percore.client().brpop("q", timeout=10)))
        wait_until(lambda: blocked_count(c) == i + 1, what=f"waiter {i}")
    c.rpush("q", "a", "b", "c")
    got = []
    for t, result in threads:
        t.join()
        got.append(result["value"][1])
    # BRPOP: the first waiter gets the tail element, and so on.
    assert got == [b"c", b"b", b"a"]


def test_timeout_and_fractional_seconds(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    start = time.monotonic()
    assert c.blpop("nothing", timeout=0.2) is None
    elapsed = time.monotonic() - start
    assert 0.15 <= elapsed < 3
    assert c.bzpopmin("nothing", timeout=0.1) is None
    assert blocked_count(c) == 0


def test_multi_exec_and_lmove_wake_waiters(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    c = percore.client()
    t, result = in_thread(lambda: percore.client().blpop(keys[1], timeout=10))
    wait_until(lambda: blocked_count(c) == 1, what="client blocked")
    pipe = c.pipeline(transaction=True)
    pipe.rpush(keys[1], "tx")
    pipe.set(keys[0], "x")
    pipe.execute()
    t.join()
    assert result["value"] == (keys[1].encode(), b"tx")

    t, result = in_thread(lambda: percore.client().bzpopmax(keys[3], timeout=10))
    wait_until(lambda: blocked_count(c) == 1, what="zset waiter")
    c.zadd(keys[3], {"m": 5})
    t.join()
    assert result["value"] == (keys[3].encode(), b"m", 5.0)

    c.rpush(keys[0] + "src", "moved")
    t, result = in_thread(lambda: percore.client().blpop(keys[2], timeout=10))
    wait_until(lambda: blocked_count(c) == 1, what="list waiter")
    c.lmove(keys[0] + "src", keys[2], "LEFT", "RIGHT")
    t.join()
    assert result["value"] == (keys[2].encode(), b"moved")


def test_transaction_state_in_between_is_not_served(start_percore):
    """A push and a pop of the same key inside one EXEC leave nothing for a
    blocked client (served only after EXEC, as Redis does)."""
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    t, result = in_thread(lambda: percore.client().blpop("k", timeout=1))
    wait_until(lambda: blocked_count(c) == 1, what="client blocked")
    pipe = c.pipeline(transaction=True)
    pipe.rpush("k", "a")
    pipe.lpop("k")
    assert pipe.execute() == [1, b"a"]
    t.join()
    assert result["value"] is None


def test_client_unblock(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    waiter = percore.client()
    wid = waiter.client_id()
    t, result = in_thread(lambda: waiter.blpop("never", timeout=0))
    wait_until(lambda: blocked_count(c) == 1, what="client blocked")
    assert "b" in [x for x in c.client_list() if x["id"] == str(wid)][0]["flags"]
    assert c.client_unblock(wid) == 1
    t.join()
    assert result["value"] is None
    assert c.client_unblock(wid) == 0
    t, result = in_thread(lambda: waiter.bzpopmin("never", timeout=0))
    wait_until(lambda: blocked_count(c) == 1, what="client blocked again")
    assert c.client_unblock(wid, error=True) == 1
    t.join()
    assert isinstance(result.get("error"), redis.ResponseError)
    assert "UNBLOCKED" in str(result["error"])


def test_disconnected_waiter_leaves_nothing_behind(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    gone = percore.client()
    gone.execute_command("CLIENT", "SETNAME", "leaver")
    sock_client = gone.connection_pool.get_connection()
    sock_client.send_command("BLPOP", "k", "0")
    wait_until(lambda: blocked_count(c) == 1, what="client blocked")
    sock_client.disconnect()
    wait_until(lambda: blocked_count(c) == 0, what="waiter gone")
    c.rpush("k", "kept")
    assert c.lrange("k", 0, -1) == [b"kept"]


def test_many_poppers_no_loss_no_duplicates(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    total = 600
    got = []
    lock = threading.Lock()
    done = threading.Event()

    def popper():
        c = percore.client(socket_timeout=20)
        while not done.is_set():
            r = c.blpop(keys, timeout=0.2)
            if r is not None:
                with lock:
                    got.append(r[1])

    def pusher(offset):
        c = percore.client()
        for i in range(offset, total, 3):
            c.rpush(keys[i % len(keys)], f"e{i}")

    poppers = [threading.Thread(target=popper) for _ in range(5)]
    pushers = [threading.Thread(target=pusher, args=(o,)) for o in range(3)]
    for t in poppers + pushers:
        t.start()
    for t in pushers:
        t.join()
    wait_until(lambda: len(got) >= total, timeout=20, what="all elements popped")
    done.set()
    for t in poppers:
        t.join()
    assert sorted(got) == sorted(f"e{i}".encode() for i in range(total))
    assert percore.client().exists(*keys) == 0


@pytest.mark.parametrize("cmd", [["BLPOP", "k", "0"], ["BZPOPMIN", "k", "0"]])
def test_wrong_type_errors_at_once(start_percore, cmd):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    c.set("k", "string")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        c.execute_command(*cmd)


def test_blmove_never_loses_an_element(start_percore):
    """Producers push to a list on one shard while consumers BLMOVE it to
    a list on another and some consumers disconnect mid-wait: every
    element ends up exactly once in one of the two lists."""
    import socket
    import threading

    from resp import encode
    from slots import keys_on_distinct_shards

    server = start_percore(threads=2)
    src, dst = keys_on_distinct_shards(2, prefix="bm")
    total = 2000
    done = threading.Event()

    def produce(offset):
        c = server.client()
        for i in range(offset, total, 2):
            c.lpush(src, i)

    def consume():
        c = server.client(socket_timeout=5)
        while not done.is_set():
            c.blmove(src, dst, 0.05, "RIGHT", "LEFT")

    def quitter():
        # Blocks, then goes away without reading: a waiter served meanwhile
        # must give its element back.
        while not done.is_set():
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.sendall(encode(["BLMOVE", src, dst, "RIGHT", "LEFT", "1"]))

    workers = [threading.Thread(target=produce, args=(o,)) for o in (0, 1)]
    consumers = [threading.Thread(target=consume) for _ in range(3)] + [threading.Thread(target=quitter) for _ in range(2)]
    for t in workers + consumers:
        t.start()
    for t in workers:
        t.join()
    c = server.client()
    wait_until(lambda: c.llen(src) == 0, timeout=20, what="the consumers to drain the source")
    done.set()
    for t in consumers:
        t.join()
    items = c.lrange(src, 0, -1) + c.lrange(dst, 0, -1)
    assert sorted(int(x) for x in items) == list(range(total))


def test_blocked_moves_are_made_before_the_push_returns(start_percore, reference):
    """BLMOVE served by a push moves the element before the push's reply,
    and a chain of moves (each one's destination another's source) runs
    to its end, as redis-server serves them; the replies and the lists
    are the same on both."""
    percore = start_percore(threads=SHARDS)
    outcomes = []
    for server in (reference, percore):
        c = server.client()
        c.delete("l1{t}", "l2{t}", "l3{t}", "self{t}")
        base = blocked_count(c)
        waits = [
            ("l1{t}", "l2{t}", "RIGHT", "LEFT"),
            ("l2{t}", "l3{t}", "LEFT", "RIGHT"),
            ("self{t}", "self{t}", "RIGHT", "LEFT"),
        ]
        threads = []
        for n, (src, dst, a, b) in enumerate(waits, start=1):
            threads.append(in_thread(lambda w=(src, dst, a, b): server.client().execute_command("BLMOVE", *w, 10)))
            wait_until(lambda n=n: blocked_count(c) == base + n, what="client blocked")
        # The reads travel with the pushes, in one pipeline: the moves are
        # done before the next command runs.
        pipe = c.pipeline(transaction=False)
        pipe.rpush("l1{t}", "foo")
        pipe.rpush("self{t}", "bar")
        for k in ("l1{t}", "l2{t}", "l3{t}", "self{t}"):
            pipe.lrange(k, 0, -1)
        lists = pipe.execute()[2:]
        for t, _ in threads:
            t.join()
        outcomes.append((lists, [r["value"] for _, r in threads]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0] == [[], [], [b"foo"], [b"bar"]]


def test_swapdb_serves_clients_blocked_on_the_other_database(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    c.execute_command("SELECT", 1)
    c.rpush("k", "hello")
    t, result = in_thread(lambda: percore.client(db=9).brpop("k", timeout=10))
    wait_until(lambda: blocked_count(c) == 1, what="client blocked")
    c.swapdb(1, 9)
    t.join()
    assert result["value"] == (b"k", b"hello")

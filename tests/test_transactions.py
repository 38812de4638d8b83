"""MULTI/EXEC/WATCH with real clients, keys spread over several shards."""

import threading
import time

import pytest
import redis

from conftest import wait_until
from slots import key_slot, keys_on_distinct_shards

SHARDS = 4


def test_redis_py_transaction_pipeline(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    keys = keys_on_distinct_shards(SHARDS)
    pipe = c.pipeline(transaction=True)
    for i, k in enumerate(keys):
        pipe.set(k, i)
        pipe.incr(k)
    pipe.mget(keys)
    results = pipe.execute()
    assert results[-1] == [str(i + 1).encode() for i in range(len(keys))]
    # A runtime error does not stop the rest; redis-py raises it after.
    pipe = c.pipeline(transaction=True)
    pipe.lpush(keys[0], "x")
    pipe.set(keys[1], "after")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        pipe.execute()
    assert c.get(keys[1]) == b"after"


def test_watch_sees_a_write_from_another_core(start_percore):
    percore = start_percore(threads=SHARDS)
    a, b = percore.client(), percore.client()
    key = keys_on_distinct_shards(SHARDS)[1]
    a.set(key, 1)
    with a.pipeline() as pipe:
        pipe.watch(key)
        b.set(key, 2)
        pipe.multi()
        pipe.set(key, 3)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert a.get(key) == b"2"


def test_watched_key_expiring_aborts_exec(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    c.set("ttl-key", "v", px=50)
    with c.pipeline() as pipe:
        pipe.watch("ttl-key")
        deadline = time.monotonic() + 5
        while c.exists("ttl-key") and time.monotonic() < deadline:
            time.sleep(0.01)
        pipe.multi()
        pipe.set("other", 1)
        with pytest.raises(redis.WatchError):
            pipe.execute()


def test_concurrent_watch_increments_lose_nothing(start_percore):
    """Optimistic increments of counters on several shards from several
    connections: every EXEC that succeeded is counted exactly once."""
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    percore.client().mset({k: 0 for k in keys})
    committed = []
    errors = []

    def worker(n):
        c = percore.client(socket_timeout=10)
        done = 0
        try:
            while done < n:
                with c.pipeline() as pipe:
                    try:
                        pipe.watch(*keys)
                        values = [int(v) for v in pipe.mget(keys)]
                        pipe.multi()
                        for k, v in zip(keys, values):
                            pipe.set(k, v + 1)
                        pipe.execute()
                        done += 1
                    except redis.WatchError:
                        continue
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        committed.append(done)

    threads = [threading.Thread(target=worker, args=(40,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    values = [int(v) for v in percore.client().mget(keys)]
    assert values == [sum(committed)] * len(keys)


def test_exec_is_atomic_for_readers(start_percore):
    """A reader never sees part of a MULTI/EXEC that moves a token between
    keys on different shards."""
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    c = percore.client()
    c.set(keys[0], "token")
    stop = time.monotonic() + 1.5
    torn = []

    def mover():
        m = percore.client()
        i = 0
        while time.monotonic() < stop:
            src, dst = keys[i % len(keys)], keys[(i + 1) % len(keys)]
            pipe = m.pipeline(transaction=True)
            pipe.delete(src)
            pipe.set(dst, "token")
            pipe.execute()
            i += 1

    def reader():
        r = percore.client()
        while time.monotonic() < stop and not torn:
            values = r.mget(keys)
            if sum(v is not None for v in values) != 1:
                torn.append(values)

    threads = [threading.Thread(target=mover)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not torn, torn[:3]


def test_disconnect_in_multi_leaves_nothing(start_percore):
    percore = start_percore(threads=SHARDS)
    key = keys_on_distinct_shards(SHARDS)[2]
    c = percore.client()
    c.set(key, "kept")
    raw = percore.client()
    raw.execute_command("WATCH", key)
    raw.execute_command("MULTI")
    raw.execute_command("SET", key, "lost")
    raw.close()
    # Another client can still lock and write the key.
    pipe = c.pipeline(transaction=True)
    pipe.set(key, "new")
    pipe.get(key)
    assert pipe.execute() == [True, b"new"]


def test_pfcount_refreshing_its_cache_breaks_a_watch(start_percore, reference):
    """PFCOUNT rewrites the HLL's cached cardinality when stale, which
    Redis counts as a change; with a fresh cache it changes nothing."""

    def run(server):
        a, b = server.client(), server.client()
        a.pfadd("hll", "x", "y")
        outcomes = []
        for _ in range(2):
            with a.pipeline() as pipe:
                pipe.watch("hll")
                b.pfcount("hll")
                pipe.multi()
                pipe.set("after", 1)
                try:
                    outcomes.append(pipe.execute())
                except redis.WatchError:
                    outcomes.append("aborted")
        return outcomes

    assert run(percore := start_percore()) == run(reference) == ["aborted", [True]]
    assert percore.client().pfcount("hll") == 2


@pytest.mark.parametrize(
    "store",
    [
        ("SUNIONSTORE", "dst", "src"),
        ("ZUNIONSTORE", "dst", "1", "zsrc"),
        ("BITOP", "OR", "dst", "str"),
        ("PFMERGE", "dst", "hll"),
        ("COPY", "str", "dst"),
        ("SORT", "lsrc", "STORE", "dst"),
    ],
)
def test_a_store_breaks_the_watch_on_its_destination_only(start_percore, reference, store):
    def run(server):
        a, b = server.client(), server.client()
        a.sadd("src", "m")
        a.zadd("zsrc", {"m": 1})
        a.set("str", "v")
        a.pfadd("hll", "x")
        a.pfcount("hll")  # a fresh cache: PFMERGE only reads it
        a.rpush("lsrc", 2, 1)
        outcomes = []
        for watched in ("src", "zsrc", "str", "hll", "lsrc", "dst"):
            b.delete("dst")
            with a.pipeline() as pipe:
                pipe.watch(watched)
                b.execute_command(*store)
                pipe.multi()
                pipe.set("after", 1)
                try:
                    outcomes.append((watched, pipe.execute()))
                except redis.WatchError:
                    outcomes.append((watched, "aborted"))
        return outcomes

    got = run(start_percore(threads=SHARDS))
    assert got == run(reference)
    assert ("dst", "aborted") in got


def test_sort_reads_its_by_and_get_keys_atomically(start_percore):
    """SORT ... GET w_* while MULTI/EXEC moves the weights together: every
    SORT sees the weights of one EXEC, never half of two."""
    percore = start_percore(threads=SHARDS)
    # Elements whose weight keys live on different shards (and not all on
    # the list's).
    elements, shards = [], set()
    i = 0
    while len(elements) < SHARDS:
        e = f"e{i}"
        shard = key_slot(f"w_{e}".encode()) % SHARDS
        if shard not in shards:
            shards.add(shard)
            elements.append(e)
        i += 1
    c = percore.client()
    c.rpush("l", *elements)
    c.mset({f"w_{e}": 0 for e in elements})
    stop = threading.Event()

    def writer():
        w = percore.client()
        n = 0
        while not stop.is_set():
            n += 1
            with w.pipeline(transaction=True) as pipe:
                pipe.mset({f"w_{e}": n for e in elements})
                pipe.execute()

    t = threading.Thread(target=writer)
    t.start()
    try:
        torn = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            values = c.sort("l", by="nosort", get="w_*")
            if len(set(values)) != 1:
                torn.append(values)
    finally:
        stop.set()
        t.join()
    assert not torn, torn[:3]


def test_busy_script_dooms_the_transaction(start_percore, start_redis):
    """While a script is busy, a command queued in MULTI is refused and
    flags the transaction; EXEC is refused as EXECABORT with the reason
    (Redis's execCommandAbort), and the client leaves MULTI."""
    import threading

    results = []
    for server in (start_percore("--busy-reply-threshold", 10, threads=1), start_redis("--busy-reply-threshold", 10)):
        c = server.client()
        c.set("xx", 1)
        killed = []

        def run_script(server=server, killed=killed):
            try:
                server.client().eval("while true do end", 0)
            except redis.ResponseError as e:
                killed.append(str(e))

        runner = threading.Thread(target=run_script, daemon=True)
        runner.start()
        wait_until(lambda: "busy" in _ping_error(server), what="the script to be busy")
        t = server.client(single_connection_client=True)
        t.execute_command("MULTI")
        errors = []
        for cmd in (("INCR", "xx"), ("EXEC",)):
            try:
                t.execute_command(*cmd)
            except redis.ResponseError as e:
                errors.append((type(e).__name__, str(e)))
        c.script_kill()
        runner.join(5)
        assert killed and "killed" in killed[0].lower()
        wait_until(lambda: c.ping(), what="the script to end")
        results.append((errors, t.execute_command("PING", "asdf"), c.get("xx")))
    assert results[0] == results[1]
    (busy, abort), _, _ = results[0]
    assert "busy" in busy[1].lower()
    assert abort[0] == "ExecAbortError" and "BUSY" in abort[1]


def _ping_error(server):
    try:
        server.client(socket_timeout=1).ping()
        return ""
    except redis.ResponseError as e:
        return str(e).lower()


def test_exec_is_judged_by_the_commands_it_runs(percore, reference):
    """The gate judges EXEC by its queued commands, as Redis does: a write
    queued before min-replicas-to-write was set (no replica is good) or
    before memory ran out is refused at EXEC, reads are not."""
    answers = []
    for server in (percore, reference):
        c, admin = server.client(), server.client()
        c.set("xx", 1)
        got = []
        for setting, value, undo in (("min-replicas-to-write", 2, 0), ("maxmemory", 1, 0)):
            for queued in (("INCR", "xx"), ("GET", "xx")):
                c.execute_command("MULTI")
                c.execute_command(*queued)
                admin.config_set(setting, value)
                try:
                    got.append(c.execute_command("EXEC"))
                except redis.ResponseError as e:
                    got.append(str(e))
                admin.config_set(setting, undo)
        admin.config_set("min-replicas-to-write", 1)
        for cmd in (("SET", "k", "v"), ("GET", "xx")):
            try:
                got.append(c.execute_command(*cmd))
            except redis.ResponseError as e:
                got.append(str(e))
        admin.config_set("min-replicas-to-write", 0)
        got.append(c.get("xx"))
        answers.append(got)
    assert answers[0] == answers[1]
    assert "NOREPLICAS" in answers[0][0] and answers[0][-1] == b"1"


def test_shutdown_is_refused_inside_multi(percore, reference):
    answers = []
    for server in (percore, reference):
        c = server.client()
        c.execute_command("MULTI")
        got = []
        for cmd in (("SHUTDOWN",), ("EXEC",)):
            try:
                got.append(c.execute_command(*cmd))
            except redis.ResponseError as e:
                got.append(str(e))
        answers.append(got)
        assert c.ping()
    assert answers[0] == answers[1]
    assert answers[0][0] == "Command not allowed inside a transaction"

"""The AOF: what percore writes replays into percore and into redis-server
as the live dataset; what redis-server writes loads into percore; nothing
acknowledged under appendfsync always is lost to SIGKILL."""

import os
import random
import shutil
import signal
import subprocess
import threading
import time

import pytest
import redis

from conftest import PERCORE, Server, free_port, wait_until
from slots import keys_on_distinct_shards


def dump(client, databases=(0, 1)):
    """Every key of the given databases: type, value, absolute expiry."""
    data = {}
    for db in databases:
        c = client.connection_pool.connection_kwargs
        r = redis.Redis(host=c["host"], port=c["port"], db=db, socket_timeout=10)
        for key in r.scan_iter(count=1000):
            kind = r.type(key).decode()
            if kind == "string":
                value = r.get(key)
            elif kind == "list":
                value = r.lrange(key, 0, -1)
            elif kind == "set":
                value = sorted(r.smembers(key))
            elif kind == "hash":
                value = sorted(r.hgetall(key).items())
            elif kind == "zset":
                value = r.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                value = stream_state(r, key)
            else:
                value = kind
            data[(db, key)] = (kind, value, r.pexpiretime(key))
    return data


def stream_state(r, key):
    """A stream's entries, counters and groups with their pending entries
    (delivery counts and owners; delivery times depend on the clock). Not
    a group's entries-read: Redis 7.0 propagates reads as XCLAIMs, which
    do not carry it, so replicas and AOF replays of redis-server lose it
    too."""
    info = r.xinfo_stream(key)
    groups = []
    for g in r.xinfo_groups(key):
        pending = r.xpending_range(key, g["name"], "-", "+", 1000)
        groups.append((g["name"], g["last-delivered-id"],
                       [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pending]))
    return (r.xrange(key), info["last-generated-id"], info["entries-added"], info["max-deleted-entry-id"], groups)


def start(argv, port, tmp_path, name):
    server = Server(argv, port, tmp_path / f"{name}-{port}.log")
    return server


@pytest.fixture
def servers(tmp_path):
    started = []

    def percore(dirpath, *args, threads=2, wait=True):
        port = free_port()
        argv = [PERCORE, "--port", str(port), "--bind", "127.0.0.1", "--threads", str(threads),
                "--dir", str(dirpath), "--appendonly", "yes", *map(str, args)]
        s = start(argv, port, tmp_path, "percore")
        started.append(s)
        return s.wait_ready() if wait else s

    def reference(dirpath, *args):
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(dirpath),
                "--appendonly", "yes", "--enable-debug-command", "local", *map(str, args)]
        s = start(argv, port, tmp_path, "redis")
        started.append(s)
        return s.wait_ready()

    yield percore, reference
    for s in started:
        s.stop()


def replay_everywhere(tmp_path, servers, source, check):
    """Starts percore and redis-server on copies of `source`'s AOF and
    hands each, loaded, to `check(name, client)`."""
    percore, reference = servers
    for name, start_server in (("percore", percore), ("redis", reference)):
        copy = tmp_path / name
        shutil.copytree(source, copy)
        replayed = start_server(copy)
        wait_loaded(replayed)
        check(name, replayed.client())
        replayed.stop()


def wait_loaded(server):
    def loaded():
        try:
            return server.client().ping()
        except redis.BusyLoadingError:
            return False
    wait_until(loaded, what="the AOF to load")


def workload(c, keys, rng, n=400):
    """Writes of every type, TTLs, cross-shard commands, EXEC, scripts."""
    for i in range(n):
        k = rng.choice(keys)
        other = rng.choice(keys)
        op = rng.randrange(27)
        try:
            if op == 0:
                c.set(k, i, ex=rng.randint(100, 1000))
            elif op == 1:
                c.set(k, i, px=rng.randint(100000, 900000), nx=rng.random() < 0.5)
            elif op == 2:
                c.incrbyfloat("f" + k, 1.1)
            elif op == 3:
                c.mset({k: i, other: -i})
            elif op == 4:
                c.delete(k, other)
            elif op == 5:
                c.rpush("l" + k, *range(rng.randint(1, 5)))
            elif op == 6:
                c.lpop("l" + k)
            elif op == 7:
                c.sadd("s" + k, *[rng.randint(0, 50) for _ in range(5)])
            elif op == 8:
                c.spop("s" + k, rng.randint(1, 3))
            elif op == 9:
                c.hset("h" + k, mapping={f"f{rng.randint(0, 9)}": i})
            elif op == 10:
                c.hincrbyfloat("h" + k, "x", 0.25)
            elif op == 11:
                c.zadd("z" + k, {f"m{rng.randint(0, 20)}": rng.random()})
            elif op == 12:
                c.zpopmin("z" + k)
            elif op == 13:
                c.expire(k, rng.randint(100, 1000))
            elif op == 14:
                c.pexpire("l" + k, 1)  # soon gone: expiry propagates as DEL
            elif op == 15:
                p = c.pipeline(transaction=True)
                p.incr("cnt" + k)
                p.set(other, "in-exec")
                p.lpush("l" + other, i)
                p.execute()
            elif op == 16:
                c.eval("redis.call('incr', KEYS[1]); return redis.call('set', KEYS[2], ARGV[1])", 2,
                       "e{t}", "e{t}2", i)
            elif op == 17:
                c.rename(k, other)
            elif op == 18:
                c.sunionstore("u" + k, ["s" + k, "s" + other])
            elif op == 19:
                c.zunionstore("zu" + k, ["z" + k, "z" + other])
            elif op == 20:
                c.getex(k, px=500000)
            elif op == 21:
                c.execute_command("SELECT", 1)
                c.set(k, "db1")
                c.execute_command("SELECT", 0)
            elif op == 22:
                c.blpop(["l" + k, "l" + other], timeout=0.01)
            elif op == 23:
                c.pfadd("hll" + k, *[rng.randint(0, 1000) for _ in range(10)])
            elif op == 24:
                c.xadd("x" + k, {"f": i, "g": rng.random()}, maxlen=rng.randint(5, 30), approximate=rng.random() < 0.5)
            elif op == 25:
                if rng.random() < 0.3:
                    c.xgroup_create("x" + k, "grp", id="0", mkstream=True)
                c.xreadgroup("grp", f"c{rng.randint(0, 2)}", {"x" + k: ">"}, count=rng.randint(1, 3),
                             noack=rng.random() < 0.2)
            elif op == 26:
                entries = c.xrange("x" + k, count=3)
                if entries:
                    victim = rng.choice(entries)[0]
                    rng.choice([lambda: c.xdel("x" + k, victim), lambda: c.xack("x" + k, "grp", victim),
                                lambda: c.xclaim("x" + k, "grp", "c9", 0, [victim]),
                                lambda: c.xautoclaim("x" + k, "grp", "c8", 0, count=2)])()
        except redis.ResponseError:
            pass  # WRONGTYPE and the like: the same on every server.


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_replay_gives_the_live_dataset(tmp_path, servers, fsync):
    percore, reference = servers
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    live = percore(live_dir, "--appendfsync", fsync)
    c = live.client(single_connection_client=True)
    keys = keys_on_distinct_shards(2, prefix="a") + keys_on_distinct_shards(2, prefix="b")
    workload(c, keys, random.Random(os.environ.get("AOF_SEED", fsync)))
    time.sleep(0.01)  # let the 1 ms TTLs pass before the final dump
    expected = dump(c)
    digest = c.execute_command("DEBUG", "DIGEST")
    assert len(expected) > 10
    # Every write reached the file (everysec writes within a second).
    wait_until(lambda: subprocess.run(["redis-check-aof", str(live_dir / "appendonlydir" / "appendonly.aof.manifest")],
                                      capture_output=True).returncode == 0, what="a valid AOF")
    time.sleep(1.1 if fsync == "everysec" else 0)
    live.stop()

    def check(name, client):
        assert dump(client) == expected, name
        # DEBUG DIGEST is Redis's, so the same data gives the same digest.
        assert client.execute_command("DEBUG", "DIGEST") == digest, name

    replay_everywhere(tmp_path, servers, live_dir, check)


def test_digest_matches_redis(percore, reference):
    for s in (percore, reference):
        c = s.client()
        c.set("s", "v")
        c.set("n", 12345)
        c.set("ttl", "x", ex=1000)
        c.rpush("l", "a", "b", 3)
        c.sadd("set", "x", 1, 2)
        c.sadd("bigset", *range(1000))
        c.hset("h", mapping={"f": "v", "g": 2})
        c.zadd("z", {"a": 1.5, "b": 0.1, "c": -3})
        c.zadd("bigz", {f"m{i}": i / 7 for i in range(300)})
        c.execute_command("SELECT", 3)
        c.set("db3", "x")
        c.execute_command("SELECT", 0)
    got = [s.client().execute_command("DEBUG", "DIGEST") for s in (percore, reference)]
    assert got[0] == got[1] and got[0] != b"0" * 40
    values = [s.client().execute_command("DEBUG", "DIGEST-VALUE", "z", "h", "missing") for s in (percore, reference)]
    assert values[0] == values[1]


@pytest.mark.parametrize("preamble", ["yes", "no"])
def test_redis_written_aof_loads_into_percore(tmp_path, servers, preamble):
    """redis-server's files, with its base rewritten in the middle of the
    writes (an RDB or commands) and incremental files before and after."""
    percore, reference = servers
    redis_dir = tmp_path / "written"
    redis_dir.mkdir()
    ref = reference(redis_dir, "--aof-use-rdb-preamble", preamble)
    c = ref.client()
    keys = keys_on_distinct_shards(2, prefix="r")
    workload(c, keys, random.Random(3), n=300)
    c.bgrewriteaof()
    wait_until(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 0 and
               c.info("persistence")["aof_rewrite_scheduled"] == 0, what="redis-server's rewrite")
    workload(c, keys, random.Random(4), n=100)
    expected = dump(c)
    suffix = ".rdb" if preamble == "yes" else ".aof"
    assert (redis_dir / "appendonlydir" / f"appendonly.aof.2.base{suffix}").exists()
    c.shutdown(nosave=True)
    wait_until(lambda: ref.proc.poll() is not None, what="redis-server to exit")
    # redis-server's own replay of its command-form base drops pending
    # entries whose stream entries were deleted (its XCLAIM ignores them):
    # percore must load what redis-server loads.
    reloaded = {}
    replay_everywhere(tmp_path, servers, redis_dir, lambda name, client: reloaded.update({name: dump(client)}))
    assert reloaded["percore"] == reloaded["redis"]
    if preamble == "yes":
        assert reloaded["percore"] == expected


def test_old_style_aof_with_an_rdb_preamble_loads(tmp_path, servers, start_percore):
    """A pre-7 appendonly.aof: an RDB, then commands. It moves into the
    AOF directory as the base and both parts load."""
    rdb_dir = tmp_path / "rdb"
    rdb_dir.mkdir()
    saver = start_percore("--dir", rdb_dir)
    c = saver.client()
    c.set("from-rdb", "1")
    c.rpush("list", "a", "b")
    c.save()
    saver.stop()
    data = (rdb_dir / "dump.rdb").read_bytes()
    assert data.startswith(b"REDIS")
    tail = b"*3\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n$1\r\nc\r\n*3\r\n$3\r\nSET\r\n$7\r\nfrom-af\r\n$1\r\n2\r\n"
    (tmp_path / "appendonly.aof").write_bytes(data + tail)
    percore, _ = servers
    s = percore(tmp_path)
    wait_loaded(s)
    r = s.client()
    assert r.mget("from-rdb", "from-af") == [b"1", b"2"]
    assert r.lrange("list", 0, -1) == [b"a", b"b", b"c"]
    assert "Reading RDB preamble from AOF file..." in s.output()
    assert "Reading the remaining AOF tail..." in s.output()
    assert (tmp_path / "appendonlydir" / "appendonly.aof").exists()


@pytest.mark.parametrize("preamble", ["yes", "no"])
def test_functions_are_in_the_base(tmp_path, servers, preamble):
    """FUNCTION libraries survive a rewrite in either base format, in
    percore and in redis-server replaying percore's files."""
    percore, _ = servers
    dirpath = tmp_path / "fn"
    dirpath.mkdir()
    s = percore(dirpath, "--aof-use-rdb-preamble", preamble)
    c = s.client()
    c.function_load("#!lua name=lib\nredis.register_function('get7', function() return 7 end)")
    c.set("k", "v")
    c.bgrewriteaof()
    wait_until(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 0, what="the rewrite")
    manifest = (dirpath / "appendonlydir" / "appendonly.aof.manifest").read_text()
    suffix = ".rdb" if preamble == "yes" else ".aof"
    assert f"appendonly.aof.2.base{suffix}" in manifest, manifest
    assert c.info("persistence")["aof_rewrites"] == 1
    s.stop()

    def check(name, client):
        assert client.fcall("get7", 0) == 7, name
        assert client.get("k") == b"v", name

    replay_everywhere(tmp_path, servers, dirpath, check)


def test_empty_start_writes_an_rdb_base(tmp_path, servers):
    """Started empty with appendonly yes: the base is an RDB of nothing,
    which redis-check-aof accepts."""
    percore, _ = servers
    s = percore(tmp_path)
    s.client().set("k", "v")
    manifest = tmp_path / "appendonlydir" / "appendonly.aof.manifest"
    assert manifest.read_text().startswith("file appendonly.aof.1.base.rdb seq 1 type b\n")
    assert (tmp_path / "appendonlydir" / "appendonly.aof.1.base.rdb").read_bytes().startswith(b"REDIS")
    wait_until(lambda: subprocess.run(["redis-check-aof", str(manifest)], capture_output=True).returncode == 0,
               what="a valid AOF")


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_sigkill_loses_no_acknowledged_write(tmp_path, servers, fsync):
    """A killed process loses nothing it acknowledged: under always the
    writes were fsynced, under everysec written to the file (as Redis
    writes before it replies)."""
    percore, _ = servers
    dirpath = tmp_path / "kill"
    dirpath.mkdir()
    acked = {}
    kills = 0
    for round_ in range(3):
        server = percore(dirpath, "--appendfsync", fsync)
        wait_loaded(server)
        c = server.client()
        for key, value in acked.items():
            assert c.get(key) == value, f"round {round_}: lost {key}"
        stop = threading.Event()
        lock = threading.Lock()

        def writer(w):
            conn = server.client(socket_timeout=5)
            n = 0
            while not stop.is_set():
                key, value = f"w{w}:{round_}:{n}", f"{w}-{n}".encode()
                try:
                    conn.set(key, value)
                except (redis.ConnectionError, redis.TimeoutError):
                    return
                with lock:
                    acked[key] = value
                n += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) > (round_ + 1) * 200, what="some acknowledged writes")
        os.kill(server.pid, signal.SIGKILL)
        kills += 1
        stop.set()
        for t in threads:
            t.join(10)
        server.stop()
    final = percore(dirpath)
    wait_loaded(final)
    c = final.client()
    missing = [k for k, v in acked.items() if c.get(k) != v]
    assert kills == 3 and len(acked) > 600
    assert missing == []


def test_truncated_tail(tmp_path, servers):
    percore, _ = servers
    dirpath = tmp_path / "trunc"
    dirpath.mkdir()
    s = percore(dirpath, "--appendfsync", "always")
    s.client().set("kept", "1")
    s.stop()
    incr = dirpath / "appendonlydir" / "appendonly.aof.1.incr.aof"
    good = incr.stat().st_size
    with open(incr, "ab") as f:
        f.write(b"*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$1")
    refused = percore(dirpath, "--aof-load-truncated", "no", wait=False)
    wait_until(lambda: refused.proc.poll() is not None, what="percore to refuse the truncated AOF")
    assert refused.proc.returncode != 0
    assert "Unexpected end of file" in refused.output() and "appendonly.aof.1.incr.aof" in refused.output()
    loaded = percore(dirpath)
    wait_loaded(loaded)
    assert loaded.client().get("kept") == b"1"
    assert loaded.client().exists("lost") == 0
    assert incr.stat().st_size >= good
    assert "Truncating the AOF" in loaded.output()


def test_corrupt_file_stops_startup(tmp_path, servers):
    percore, _ = servers
    dirpath = tmp_path / "bad"
    dirpath.mkdir()
    s = percore(dirpath, "--appendfsync", "always")
    s.client().set("a", "1")
    s.client().set("b", "2")
    s.stop()
    incr = dirpath / "appendonlydir" / "appendonly.aof.1.incr.aof"
    data = bytearray(incr.read_bytes())
    at = data.index(b"*3", 10)
    data[at] = ord("?")
    incr.write_bytes(bytes(data))
    bad = percore(dirpath, wait=False)
    wait_until(lambda: bad.proc.poll() is not None, what="percore to refuse the corrupt AOF")
    assert bad.proc.returncode != 0
    assert "Bad file format" in bad.output() and f"offset {at}" in bad.output()


def test_info_persistence(tmp_path, servers):
    percore, _ = servers
    s = percore(tmp_path)
    c = s.client()
    c.set("x", "y" * 100)
    info = c.info("persistence")
    assert info["aof_enabled"] == 1 and info["loading"] == 0
    wait_until(lambda: c.info("persistence")["aof_current_size"] > 100, what="aof_current_size to grow")
    c.config_set("appendfsync", "no")
    assert c.config_get("appendfsync") == {"appendfsync": "no"}


def test_appendonly_at_runtime(tmp_path, start_percore):
    """CONFIG SET appendonly yes writes a base from a point-in-time image
    first; what was written before and after it survives a restart, and
    nothing written while the AOF was off does."""
    s = start_percore("--dir", tmp_path)
    c = s.client()
    c.mset({"before:1": 1, "before:2": 2})
    assert c.info("persistence")["aof_enabled"] == 0
    c.config_set("appendonly", "yes")
    wait_until(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 0, what="the base")
    c.set("after", 3)
    c.config_set("appendonly", "no")
    c.set("off", 4)
    s.stop()
    again = start_percore("--dir", tmp_path, "--appendonly", "yes")
    wait_loaded(again)
    r = again.client()
    assert r.mget("before:1", "before:2", "after", "off") == [b"1", b"2", b"3", None]


def test_aof_turned_off_and_on_again_keeps_its_durability_promise(tmp_path, start_percore):
    """A writer turned off just before the AOF is turned on again must not
    release the new one's waiters: DEBUG LOADAOF right after a burst of
    writes reloads all of them, every time."""
    s = start_percore("--dir", tmp_path)
    c = s.client()
    for cycle in range(5):
        c.flushall()
        c.config_set("appendonly", "yes")
        wait_until(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 0, what="the base")
        pipe = c.pipeline(transaction=False)
        for i in range(300):
            pipe.rpush("l", i)
        pipe.execute()
        c.execute_command("DEBUG", "LOADAOF")
        assert c.llen("l") == 300, f"cycle {cycle}"
        c.config_set("appendonly", "no")


def test_flushall_is_atomic_across_shards(start_percore):
    """With one client looping MSET over two shards and one looping
    FLUSHALL, MGET never sees one key of an MSET without the other."""
    # Without save points: each FLUSHALL would save the empty dataset.
    server = start_percore("--save", "", threads=2)
    k0, k1 = keys_on_distinct_shards(2, prefix="fl")
    done = threading.Event()
    deadline = time.monotonic() + 60
    torn = []
    reads = [0]

    def mset():
        c = server.client()
        i = 0
        while not done.is_set():
            c.mset({k1: i, k0: i})
            i += 1

    def flush():
        c = server.client()
        while not done.is_set():
            c.flushall()

    def mget():
        # Enough reads to interleave with many flushes, however slow the
        # machine is today.
        c = server.client()
        while reads[0] < 1000 and time.monotonic() < deadline:
            a, b = c.mget(k1, k0)
            reads[0] += 1
            if a != b:
                torn.append((a, b))
        done.set()

    threads = [threading.Thread(target=f) for f in (mset, flush, mget)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads[0] == 1000
    assert torn == []


@pytest.mark.parametrize("preamble", ["yes", "no"])
def test_bgrewriteaof_is_point_in_time_under_writes(tmp_path, servers, preamble):
    """BGREWRITEAOF while clients MSET equal values to keys on every shard
    and others write more keys: after a restart (percore and redis-server)
    no MSET is torn and the dataset is the live one, with the base an RDB
    or commands."""
    percore, reference = servers
    dirpath = tmp_path / "rw"
    dirpath.mkdir()
    # A millisecond per key keeps each shard's image in progress while the
    # writers run.
    s = percore(dirpath, "--appendfsync", "always", "--rdb-key-save-delay", 1000,
                "--aof-use-rdb-preamble", preamble, threads=4)
    c = s.client()
    keys = keys_on_distinct_shards(4, prefix="m")
    p = c.pipeline(transaction=False)
    for i in range(600):
        p.set(f"bulk:{i}", "v" * 20)
        p.rpush(f"list:{i % 20}", i)
    p.execute()
    stop = threading.Event()

    def mset(w):
        conn = s.client()
        n = 0
        while not stop.is_set():
            conn.mset({k: f"{w}-{n}" for k in keys})
            conn.incr(f"counter:{w}:{n % 500}")
            conn.append(f"bulk:{(w * 7919 + n * 104729) % 600}", "x")
            conn.lpop(f"list:{n % 20}")
            n += 1

    threads = [threading.Thread(target=mset, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            assert c.bgrewriteaof()
            wait_until(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 0, what="the rewrite to end")
    finally:
        stop.set()
        for t in threads:
            t.join()
    info = c.info("persistence")
    assert info["aof_rewrites"] == 3 and info["aof_last_bgrewrite_status"] == "ok"
    expected = dump(c, databases=(0,))
    manifest = (dirpath / "appendonlydir" / "appendonly.aof.manifest").read_text()
    suffix = ".rdb" if preamble == "yes" else ".aof"
    assert f"appendonly.aof.4.base{suffix}" in manifest and manifest.count("type i") == 1, manifest
    assert subprocess.run(["redis-check-aof", str(dirpath / "appendonlydir" / "appendonly.aof.manifest")],
                          capture_output=True).returncode == 0
    s.stop()

    def check(name, client):
        got = dump(client, databases=(0,))
        assert len({got[(0, k.encode())][1] for k in keys}) == 1, f"{name}: torn MSET"
        assert got == expected, name

    replay_everywhere(tmp_path, servers, dirpath, check)


def test_automatic_rewrite_on_growth(tmp_path, servers):
    percore, _ = servers
    s = percore(tmp_path, "--auto-aof-rewrite-min-size", "4kb", "--auto-aof-rewrite-percentage", "100")
    c = s.client()
    for i in range(200):
        c.set(f"k{i % 10}", "x" * 100)
    wait_until(lambda: c.info("persistence")["aof_rewrites"] >= 1 and
               c.info("persistence")["aof_rewrite_in_progress"] == 0, what="an automatic rewrite")
    assert "Starting automatic rewriting of AOF" in s.output()
    info = c.info("persistence")
    # The base holds 10 keys, not 200 writes.
    assert info["aof_base_size"] < 4096


def test_bgrewriteaof_with_the_aof_off_writes_a_base(tmp_path, start_percore):
    s = start_percore("--dir", tmp_path)
    c = s.client()
    c.mset({"a": 1, "b": 2})
    assert c.bgrewriteaof()
    wait_until(lambda: c.info("persistence")["aof_rewrites"] == 1 and
               c.info("persistence")["aof_rewrite_in_progress"] == 0, what="the rewrite")
    manifest = (tmp_path / "appendonlydir" / "appendonly.aof.manifest").read_text()
    assert manifest == "file appendonly.aof.1.base.rdb seq 1 type b\n"
    s.stop()
    again = start_percore("--dir", tmp_path, "--appendonly", "yes")
    wait_loaded(again)
    assert again.client().mget("a", "b") == [b"1", b"2"]


def test_writes_that_change_nothing_propagate_nothing(tmp_path, servers, reference):
    """DEL of a missing key, SET NX of an existing one, SADD of a member
    already there... change nothing: no dirty count (as Redis counts) and
    nothing in the AOF."""
    percore, _ = servers
    s = percore(tmp_path, "--appendfsync", "always")
    sequence = [
        ("SET", "k", "v"), ("SET", "k", "w", "NX"), ("SETNX", "k", "x"), ("DEL", "missing"), ("DEL", "k", "gone"),
        ("SADD", "s", "a", "b", "c"), ("SADD", "s", "a"), ("SREM", "s", "zz"), ("SREM", "s", "a", "b"),
        ("HSET", "h", "f", "1"), ("HDEL", "h", "nope"), ("HSETNX", "h", "f", "2"), ("EXPIRE", "missing", 10),
        ("PERSIST", "s"), ("ZADD", "z", 1, "m"), ("ZREM", "z", "x"), ("LREM", "nolist", 0, "x"),
    ]
    changes = []
    for server in (s, reference):
        c = server.client()
        before = c.info("persistence")["rdb_changes_since_last_save"]
        deltas = []
        for cmd in sequence:
            c.execute_command(*cmd)
            now = c.info("persistence")["rdb_changes_since_last_save"]
            deltas.append(now - before)
            before = now
        changes.append(deltas)
    assert changes[0] == changes[1]
    aof = (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").read_bytes()
    for absent in (b"missing", b"nope", b"zz", b"nolist", b"NX"):
        assert absent not in aof, absent


def test_turning_the_aof_off_stops_a_rewrite(tmp_path, servers):
    """As Redis kills its rewrite child: CONFIG SET appendonly no returns
    with the rewrite over, not counted as failed, and the next one runs.
    The same on percore and redis-server."""
    percore, reference = servers
    for name, start_server in (("percore", percore), ("redis", reference)):
        dirpath = tmp_path / name
        dirpath.mkdir()
        s = start_server(dirpath, "--rdb-key-save-delay", 1000000)
        c = s.client()
        c.mset({f"k{i}": i for i in range(20)})
        assert c.bgrewriteaof()
        assert c.info("persistence")["aof_rewrite_in_progress"] == 1, name
        c.config_set("appendonly", "no")
        info = c.info("persistence")
        assert (info["aof_rewrite_in_progress"], info["aof_last_bgrewrite_status"]) == (0, "ok"), name
        assert info["aof_rewrites_consecutive_failures"] == 0, name
        c.config_set("rdb-key-save-delay", 0)
        assert c.bgrewriteaof()
        wait_until(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 0, what="a new rewrite")
        manifest = (dirpath / "appendonlydir" / "appendonly.aof.manifest").read_text()
        assert manifest == "file appendonly.aof.2.base.rdb seq 2 type b\n", (name, manifest)
        s.stop()


def test_appendonly_yes_during_a_save_waits_for_it(tmp_path, servers):
    """CONFIG SET appendonly yes during a BGSAVE schedules the rewrite
    that turns the AOF on (Redis's AOF_WAIT_REWRITE): the manifest stays
    as it was until the save ends, then the AOF holds everything."""
    percore, reference = servers
    for name, start_server in (("percore", percore), ("redis", reference)):
        dirpath = tmp_path / name
        dirpath.mkdir()
        s = start_server(dirpath, "--appendonly", "no", "--rdb-key-save-delay", 1000000)
        c = s.client()
        c.set("k1", "v1")
        forks = c.info("stats")["total_forks"]
        assert c.bgsave()
        c.config_set("appendonly", "yes")
        info = c.info("persistence")
        assert (info["aof_enabled"], info["aof_rewrite_scheduled"], info["aof_rewrite_in_progress"]) == (1, 1, 0), name
        assert not (dirpath / "appendonlydir").exists(), name
        c.config_set("rdb-key-save-delay", 0)
        wait_until(lambda: c.info("stats")["total_forks"] == forks + 2 and
                   c.info("persistence")["aof_rewrite_in_progress"] == 0, what=f"{name}: the scheduled rewrite")
        assert c.info("persistence")["aof_rewrite_scheduled"] == 0, name
        c.set("k2", "v2")
        c.execute_command("DEBUG", "LOADAOF")
        assert c.mget("k1", "k2") == [b"v1", b"v2"], name
        s.stop()


def aof_commands(path):
    """The commands of an AOF incremental file, as lists of bytes."""
    data, at, commands = path.read_bytes(), 0, []
    while at < len(data):
        assert data[at:at + 1] == b"*", data[at:at + 40]
        end = data.index(b"\r\n", at)
        count, at, command = int(data[at + 1:end]), end + 2, []
        for _ in range(count):
            end = data.index(b"\r\n", at)
            size = int(data[at + 1:end])
            command.append(data[end + 2:end + 2 + size])
            at = end + 4 + size
        commands.append(command)
    return commands


@pytest.mark.parametrize("lazy", ["no", "yes"])
def test_expired_and_evicted_keys_propagate_as_redis_does(tmp_path, servers, lazy):
    """Expired and evicted keys reach the AOF as DEL, or as UNLINK under
    lazyfree-lazy-expire / lazyfree-lazy-eviction: the same on both servers."""
    percore, reference = servers
    seen = {}
    for name, start_server in (("percore", percore), ("redis", reference)):
        d = tmp_path / name
        d.mkdir()
        s = start_server(d, "--lazyfree-lazy-expire", lazy, "--lazyfree-lazy-eviction", lazy,
                         "--appendfsync", "always")
        c = s.client()
        c.set("lazily", "v", px=1)
        c.set("actively", "v", px=1)
        wait_until(lambda: c.get("lazily") is None, what="the key to expire")
        wait_until(lambda: c.dbsize() == 0, what="active expiry")
        c.set("victim", "v")
        c.config_set("maxmemory-policy", "allkeys-random")
        c.config_set("maxmemory", 1)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            c.set("other", "v")
        c.config_set("maxmemory", 0)
        c.set("done", "1")
        commands = aof_commands(d / "appendonlydir" / "appendonly.aof.1.incr.aof")
        seen[name] = sorted(cmd for cmd in commands if cmd[0].upper() in (b"DEL", b"UNLINK"))
        s.stop()
    verb = b"UNLINK" if lazy == "yes" else b"DEL"
    assert seen["percore"] == seen["redis"] == [[verb, b"actively"], [verb, b"lazily"], [verb, b"victim"]]


def test_served_blmove_propagates_as_lmove(tmp_path, servers):
    """A BLMOVE served after it blocked reaches the AOF as the LMOVE it
    amounts to, as redis-server writes it, whether or not its two keys
    share a shard (percore) or a slot."""
    percore, reference = servers
    seen = {}
    pairs = [tuple(keys_on_distinct_shards(2, prefix="mv")), ("s{t}", "d{t}")]
    for name, start_server in (("percore", percore), ("redis", reference)):
        d = tmp_path / name
        d.mkdir()
        s = start_server(d, "--appendfsync", "always")
        c = s.client()
        for src, dst in pairs:
            result = {}
            t = threading.Thread(target=lambda: result.update(v=s.client().blmove(src, dst, 10, "RIGHT", "LEFT")))
            t.start()
            wait_until(lambda: c.info("clients")["blocked_clients"] == 1, what="BLMOVE to block")
            c.rpush(src, "a", "b")
            t.join()
            assert result["v"] == b"b"
            assert (c.lrange(src, 0, -1), c.lrange(dst, 0, -1)) == ([b"a"], [b"b"])
        commands = aof_commands(d / "appendonlydir" / "appendonly.aof.1.incr.aof")
        seen[name] = [cmd for cmd in commands if cmd[0].upper() != b"SELECT"]
        s.stop()
    assert seen["percore"] == seen["redis"]
    assert [cmd[0].upper() for cmd in seen["percore"]] == [b"RPUSH", b"LMOVE"] * 2


def test_no_appendfsync_on_rewrite_acknowledges_writes_during_a_save(tmp_path, servers):
    """With no-appendfsync-on-rewrite yes and appendfsync always, writes
    during a BGSAVE are acknowledged once written (the fsync waits for the
    save to end), and a killed server still finds them in its AOF, as on
    redis-server."""
    percore, reference = servers
    for name, start_server in (("percore", percore), ("redis", reference)):
        dirpath = tmp_path / name
        dirpath.mkdir()
        s = start_server(dirpath, "--appendfsync", "always", "--no-appendfsync-on-rewrite", "yes",
                         "--rdb-key-save-delay", 1000000)
        c = s.client()
        assert c.config_get("no-appendfsync-on-rewrite") == {"no-appendfsync-on-rewrite": "yes"}, name
        c.mset({f"k{i}": i for i in range(5)})
        assert c.bgsave()
        for i in range(50):
            assert c.set(f"during{i}", i)
        assert c.info("persistence")["rdb_bgsave_in_progress"] == 1, name
        c.config_set("rdb-key-save-delay", 0)
        wait_until(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 0, what=f"{name}: the save to end")
        assert c.set("after", "1")
        s.stop()
        s = start_server(dirpath)
        wait_loaded(s)
        c = s.client()
        assert c.mget([f"during{i}" for i in range(50)]) == [str(i).encode() for i in range(50)], name
        assert c.get("after") == b"1", name
        s.stop()


def test_hll_reads_that_change_the_value_count_and_propagate_as_redis(tmp_path, servers):
    """PFCOUNT refreshing a stale cached cardinality and PFDEBUG turning a
    sparse HLL dense are changes: they count as dirty and reach the AOF;
    the same commands with nothing to change do neither (redis-server
    side by side)."""
    percore, reference = servers
    seen = {}
    for name, start_server in (("percore", percore), ("redis", reference)):
        d = tmp_path / name
        d.mkdir()
        s = start_server(d, "--appendfsync", "always")
        c = s.client()
        dirty = []

        def step(*command):
            c.execute_command(*command)
            dirty.append(c.info("persistence")["rdb_changes_since_last_save"])

        step("PFADD", "h1", "a", "b", "c")
        step("PFCOUNT", "h1")  # stale cache: refreshed
        step("PFCOUNT", "h1")  # fresh: nothing
        step("PFDEBUG", "ENCODING", "h1")
        step("PFADD", "h2", "x")
        step("PFDEBUG", "TODENSE", "h2")  # sparse -> dense
        step("PFDEBUG", "TODENSE", "h2")  # already dense
        step("PFDEBUG", "GETREG", "h2")
        commands = aof_commands(d / "appendonlydir" / "appendonly.aof.1.incr.aof")
        seen[name] = (dirty, [cmd for cmd in commands if cmd[0].upper() != b"SELECT"])
        s.stop()
    assert seen["percore"] == seen["redis"]
    # (PFADD counts each register it raised, and one for a key it created.)
    assert seen["redis"][0] == [4, 5, 5, 5, 7, 8, 8, 8]

"""RDB: DUMP / RESTORE payloads and snapshot files exchanged with
redis-server in both directions, for every type and encoding; bad
payloads and files refused, never a crash."""

import os
import random
import re
import signal
import subprocess
import threading
import time

import pytest
import redis

from conftest import in_thread, wait_until

# Redis's CRC64 (Jones polynomial, reflected), to forge payloads that pass
# the checksum and so reach the value parser.
_POLY = 0x95AC9329AC4BC9B5
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc64(data):
    crc = 0
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def reseal(body, version=10):
    """A DUMP payload around `body` (type and value) with a valid footer."""
    head = body + version.to_bytes(2, "little")
    return head + crc64(head).to_bytes(8, "little")


def fill(c):
    """Every type in each of the encodings Redis 7.0 gives it."""
    c.set("str:emb", "hello")
    c.set("str:int", "12345")
    c.set("str:bigint", "-9223372036854775808")
    c.set("str:raw", "x" * 100)
    c.set("str:mixed", "ab" * 50 + "z" * 30 + "".join(chr(65 + i % 26) for i in range(200)))
    c.set("str:bin", bytes(range(256)))
    c.rpush("list:small", "a", "b", "1", "2000000", "-5")
    c.rpush("list:big", *[f"item{i}" * 5 for i in range(3000)])
    c.sadd("set:int", 1, 2, 3, -70000, 2**40)
    c.sadd("set:small", "a", "b", "c")
    c.sadd("set:tiny", 1, 2, 3)
    c.sadd("set:bigint", *range(1000))
    c.sadd("set:big", *[f"m{i}" for i in range(300)])
    c.hset("hash:small", mapping={"f": "v", "n": "12", "neg": "-3"})
    c.hset("hash:big", mapping={f"f{i}": f"v{i}" * 3 for i in range(600)})
    c.hset("hash:long", mapping={"f": "v" * 100})
    c.zadd("zset:small", {"a": 1, "b": 2.5, "c": -3, "d": float("inf"), "e": 0.1})
    c.zadd("zset:big", {f"m{i}": i / 3 for i in range(500)})
    c.xadd("stream:groups", {"a": "1", "b": "2"}, id="1-1")
    c.xadd("stream:groups", {"a": "3", "b": "4"}, id="1-2")
    c.xadd("stream:groups", {"c": "5"}, id="2-0")
    c.xgroup_create("stream:groups", "g1", id="0")
    c.xgroup_create("stream:groups", "g2", id="$")
    c.xreadgroup("g1", "alice", {"stream:groups": ">"}, count=2)
    c.xreadgroup("g1", "bob", {"stream:groups": ">"}, count=1)
    c.xgroup_createconsumer("stream:groups", "g2", "idle")
    c.xdel("stream:groups", "1-2")
    c.xadd("stream:empty", {"f": "v"}, id="5-5")
    c.xdel("stream:empty", "5-5")
    for i in range(250):
        c.xadd("stream:big", {"field": i, "other": "x" * (i % 7)} if i % 3 else {"odd": i})


def reply(c, cmd):
    """A command's reply, or its error as ("error", text)."""
    try:
        return c.execute_command(*cmd)
    except redis.ResponseError as e:
        return ("error", str(e))


def digest(c, key):
    return c.execute_command("DEBUG", "DIGEST-VALUE", key)[0]


def test_dump_restore_round_trips_with_redis(percore, reference):
    for c in (percore, reference):
        fill(c.client())
    p, r = percore.client(), reference.client()
    keys = sorted(r.keys())
    assert sorted(p.keys()) == keys
    for src, dst in ((r, p), (p, r)):
        for key in keys:
            dst.restore(key + b":copy", 0, src.dump(key))
            assert digest(dst, key + b":copy") == digest(src, key), key
            # redis-server loads percore's payloads into the encodings it
            # would have chosen itself (percore's listpack sets are 7.2's
            # encoding; 7.0 has none and says hashtable).
            if dst is r:
                want = src.object("encoding", key)
                got = dst.object("encoding", key + b":copy")
                assert got == want or (want == b"listpack" and got == b"hashtable"), (key, want, got)
        for key in keys:
            dst.delete(key + b":copy")
    # Stream metadata survives both ways.
    p.restore("back", 0, r.dump("stream:groups"))
    for field in ("last-generated-id", "max-deleted-entry-id", "entries-added", "length"):
        assert p.xinfo_stream("back")[field] == r.xinfo_stream("stream:groups")[field]
    def pending(c, key):
        return [(e["message_id"], e["consumer"], e["times_delivered"]) for e in c.xpending_range(key, "g1", "-", "+", 10)]

    assert pending(p, "back") == pending(r, "stream:groups")
    # Small values give Redis's own bytes (long strings differ only in how
    # LZF compressed them).
    for key in ("str:emb", "str:int", "list:small", "set:tiny", "hash:small", "zset:small"):
        assert p.dump(key) == r.dump(key), key


def test_restore_options_and_errors_match_redis(percore, reference):
    p, r = percore.client(), reference.client()
    for c in (p, r):
        c.set("k", "v")
    payload = r.dump("k")
    flipped = payload[:-1] + bytes([payload[-1] ^ 1])
    newer = payload[:1] + b"\x05" + payload[2:]
    cases = [
        ["RESTORE", "k", "0", payload],
        ["RESTORE", "n", "0", "garbage"],
        ["RESTORE", "n", "-1", payload],
        ["RESTORE", "n", "abc", payload],
        ["RESTORE", "n", "0", payload, "FOO"],
        ["RESTORE", "n", "0", payload, "IDLETIME", "-1"],
        ["RESTORE", "n", "0", payload, "IDLETIME"],
        ["RESTORE", "n", "0", payload, "FREQ", "256"],
        ["RESTORE", "n", "0", payload, "IDLETIME", "5", "FREQ", "3"],
        ["RESTORE", "n", "0", flipped],
        ["RESTORE", "n", "0", reseal(payload[:-10], version=13)],
        ["RESTORE", "n", "0", newer],
        ["RESTORE", "n", "0", reseal(b"\x01\x03\x01a")],
        ["RESTORE", "n", "0"],
        ["DUMP", "nokey"],
        ["RESTORE", "k", "0", payload, "REPLACE", "ABSTTL", "IDLETIME", "1000"],
        ["RESTORE", "past", "1", payload, "ABSTTL"],
        ["RESTORE", "k", "1", payload, "REPLACE", "ABSTTL"],
        ["EXISTS", "k", "past"],
        ["RESTORE", "t", "5000", payload],
    ]
    for cmd in cases:
        assert reply(p, cmd) == reply(r, cmd), cmd[:3]
    assert 4000 < p.pttl("t") <= 5000
    p.restore("idle", 0, payload, idletime=1000)
    assert p.object("idletime", "idle") >= 1000


def test_bad_payloads_are_refused_not_fatal(percore):
    """Cut and bit-flipped payloads of every type, resealed so that they
    pass the checksum: each gets an error or restores something; the
    server keeps serving."""
    c = percore.client()
    fill(c)
    rng = random.Random(7)
    for key in c.keys():
        body = c.dump(key)[:-10]
        for _ in range(40):
            mutated = bytearray(body)
            if rng.random() < 0.5:
                mutated = mutated[: rng.randrange(1, len(mutated))]
            else:
                for _ in range(rng.randrange(1, 4)):
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                c.restore("victim", 0, reseal(bytes(mutated)), replace=True)
            except redis.ResponseError as e:
                assert str(e) in ("Bad data format", "DUMP payload version or checksum are wrong"), e
    assert c.ping()
    # A length claiming far more than the payload holds is refused at once.
    huge = b"\x00\x81" + (2**62).to_bytes(8, "big") + b"abc"
    with pytest.raises(redis.ResponseError, match="Bad data format"):
        c.restore("victim2", 0, reseal(huge))
    lzf_bomb = b"\x00\xc3\x03\x81" + (2**40).to_bytes(8, "big") + b"\x00a\x00"
    with pytest.raises(redis.ResponseError, match="Bad data format"):
        c.restore("victim2", 0, reseal(lzf_bomb))


LIBRARY = "#!lua name=mylib\nredis.register_function('f1', function() return 1 end)"


def check_rdb(path):
    """redis-check-rdb accepts the file; returns its AUX fields."""
    out = subprocess.run(["redis-check-rdb", str(path)], capture_output=True, timeout=60)
    assert out.returncode == 0 and b"RDB looks OK" in out.stdout, out.stdout.decode()
    fields = re.findall(rb"AUX FIELD ([\w-]+) = '([^']*)'", out.stdout)
    return {k.decode(): v.decode() for k, v in fields}


def test_percore_snapshot_loads_into_redis(tmp_path, start_percore, start_redis):
    d = tmp_path / "p"
    d.mkdir()
    p = start_percore("--dir", d, threads=4).client()
    fill(p)
    p.select(3)
    p.set("in-db-3", "v", px=600000)
    p.select(0)
    p.function_load(LIBRARY)
    assert p.save()
    aux = check_rdb(d / "dump.rdb")
    assert aux["redis-ver"] == "7.0.15" and aux["redis-bits"] == "64" and aux["aof-base"] == "0"
    assert int(aux["used-mem"]) > 1_000_000
    assert abs(int(aux["ctime"]) - time.time()) < 60
    r = start_redis("--dir", d).client()
    assert r.dbsize() == p.dbsize()
    assert r.execute_command("DEBUG", "DIGEST") == p.execute_command("DEBUG", "DIGEST")
    assert r.fcall("f1", 0) == 1
    for key in p.keys():
        want, got = p.object("encoding", key), r.object("encoding", key)
        assert got == want or (want == b"listpack" and got == b"hashtable"), key
    assert 0 < redis.Redis(port=r.connection_pool.connection_kwargs["port"], db=3).pttl("in-db-3") <= 600000


def test_redis_snapshot_loads_into_percore(tmp_path, start_percore, start_redis):
    d = tmp_path / "r"
    d.mkdir()
    r = start_redis("--dir", d).client()
    fill(r)
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
    # Already past when saved (the file keeps it; a loading master drops
    # it and counts it).
    secs, micros = r.time()
    expiry = secs * 1000 + micros // 1000 + 50
    r.set("gone", "v", pxat=expiry)

    def server_ms():
        s, us = r.time()
        return s * 1000 + us // 1000

    wait_until(lambda: server_ms() > expiry, what="the server clock past the expiry")
    r.set("stays", "v", ex=1000)
    r.function_load(LIBRARY)
    r.save()
    server = start_percore("--dir", d, threads=3)
    p = server.client()
    wait_until(lambda: p.info("persistence")["loading"] == 0, what="loaded")
    assert r.exists("gone") == 0
    assert p.execute_command("DEBUG", "DIGEST") == r.execute_command("DEBUG", "DIGEST")
    info = p.info("persistence")
    assert info["rdb_last_load_keys_expired"] == 1
    assert info["rdb_last_load_keys_loaded"] == p.dbsize()
    assert p.fcall("f1", 0) == 1
    assert 0 < p.ttl("stays") <= 1000
    assert "Done loading RDB, keys loaded" in server.output()


def test_debug_reload_lastsave_and_info(percore):
    c = percore.client()
    fill(c)
    before = c.execute_command("DEBUG", "DIGEST")
    assert c.info("persistence")["rdb_changes_since_last_save"] > 0
    assert c.execute_command("DEBUG", "RELOAD") == b"OK"
    assert c.execute_command("DEBUG", "DIGEST") == before
    info = c.info("persistence")
    assert info["rdb_changes_since_last_save"] == 0
    assert info["rdb_saves"] == 1 and info["rdb_last_bgsave_status"] == "ok"
    assert abs(c.lastsave().timestamp() - time.time()) < 5
    c.set("later", "1")
    assert c.info("persistence")["rdb_changes_since_last_save"] == 1
    assert c.bgsave()
    wait_until(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 0, what="bgsave")
    assert c.info("persistence")["rdb_saves"] == 2


def test_save_point_triggers_bgsave(start_percore, tmp_path):
    server = start_percore("--save", "1 3")
    c = server.client()
    for i in range(3):
        c.set(f"k{i}", i)
    wait_until(lambda: c.info("persistence")["rdb_saves"] >= 1, timeout=15, what="a save point's BGSAVE")
    assert "3 changes in 1 seconds. Saving..." in server.output()
    assert c.info("persistence")["rdb_changes_since_last_save"] == 0
    check_rdb(tmp_path / "dump.rdb")


def test_shutdown_saves_and_restart_loads(tmp_path, start_percore):
    d = tmp_path / "s"
    d.mkdir()
    server = start_percore("--dir", d)
    c = server.client()
    c.mset({f"k{i}": i for i in range(1000)})
    c.shutdown()  # redis-py returns once the connection drops
    server.proc.wait(timeout=10)
    assert "Saving the final RDB snapshot before exiting." in server.output()
    again = start_percore("--dir", d).client()
    wait_until(lambda: again.dbsize() == 1000, what="reloaded")
    assert again.get("k999") == b"999"


def test_bgsave_is_point_in_time_under_writes(tmp_path, start_percore, start_redis):
    """Writers keep MSETting equal values to keys on every shard while a
    slow BGSAVE runs: the file has every group equal."""
    d = tmp_path / "w"
    d.mkdir()
    server = start_percore("--dir", d, threads=4)
    c = server.client()
    groups = [[f"g{g}:{{{s}}}" for s in range(8)] for g in range(20)]
    for g in groups:
        c.mset({k: 0 for k in g})
    c.mset({f"pad{i}": "x" * 50 for i in range(400)})
    c.config_set("rdb-key-save-delay", 2000)
    stop = threading.Event()
    counts = []
    progress = [0]

    def writer(w):
        wc = server.client()
        n = 0
        while not stop.is_set():
            n += 1
            g = groups[(w * 7 + n) % len(groups)]
            wc.mset({k: n for k in g})
            progress[0] += 1
        counts.append(n)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        assert c.bgsave()
        assert c.info("persistence")["rdb_bgsave_in_progress"] == 1
        during = progress[0]
        wait_until(lambda: progress[0] > during + 300, what="writes during the save")
        assert c.info("persistence")["rdb_bgsave_in_progress"] == 1
        c.config_set("rdb-key-save-delay", 0)
        wait_until(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 0, timeout=30, what="bgsave")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert sum(counts) > 0
    assert c.info("persistence")["rdb_last_bgsave_status"] == "ok"
    r = start_redis("--dir", d).client()
    for g in groups:
        values = r.mget(g)
        assert len(set(values)) == 1, (g, values)


def test_loading_answers_loading_and_reports_progress(tmp_path, start_percore):
    d = tmp_path / "slow"
    d.mkdir()
    first = start_percore("--dir", d)
    c = first.client()
    c.mset({f"k{i}": "v" * 100 for i in range(3000)})
    c.save()
    first.stop()
    size = (d / "dump.rdb").stat().st_size
    # 3000 keys at 1 ms each: a few seconds of loading.
    server = start_percore("--dir", d, "--key-load-delay", 1000, wait=False)
    c = server.client()

    def loading_info():
        try:
            info = c.info("persistence")
        except redis.ConnectionError:
            return None
        return info if info["loading"] == 1 and info.get("loading_loaded_bytes", 0) > 0 else None

    info = wait_until(loading_info, what="INFO during the load")
    assert info["loading_total_bytes"] == size
    assert 0 < info["loading_loaded_bytes"] < size
    assert 0 < info["loading_loaded_perc"] < 100
    assert abs(info["loading_start_time"] - time.time()) < 30
    assert info["loading_eta_seconds"] >= 0 and int(info["loading_rdb_used_mem"]) > 0
    # redis-cli: redis-py retries -LOADING (a ConnectionError) until the load ends.
    assert server.cli("get", "k1").startswith("LOADING Redis is loading the dataset in memory")
    wait_until(lambda: c.info("persistence")["loading"] == 0, timeout=60, what="the load")
    assert "loading_total_bytes" not in c.info("persistence")
    assert c.dbsize() == 3000


def slow_bgsave_over_a_saved_dump(start, d, *args):
    """Starts a server in `d`, saves a dump holding only `old`, then
    starts a BGSAVE of 200 more keys that would take 20 s; returns the
    server, a client and the first dump's bytes once the save's temp
    files exist."""
    d.mkdir()
    server = start("--dir", d, *args)
    c = server.client()
    c.set("old", "1")
    c.save()
    old = (d / "dump.rdb").read_bytes()
    c.mset({f"n{i}": i for i in range(200)})
    c.config_set("rdb-key-save-delay", 100000)
    c.bgsave()
    wait_until(lambda: any(f.name.startswith("temp-") for f in d.iterdir()), what="a save in progress")
    return server, c, old


def test_kill_during_bgsave_keeps_the_old_file(tmp_path, start_percore):
    d = tmp_path / "k"
    server, _, old = slow_bgsave_over_a_saved_dump(start_percore, d)
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    assert (d / "dump.rdb").read_bytes() == old
    again = start_percore("--dir", d).client()
    wait_until(lambda: again.info("persistence")["loading"] == 0, what="loaded")
    assert again.keys() == [b"old"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_bad_file_stops_startup_with_a_reason(tmp_path, start_percore, damage):
    d = tmp_path / damage
    d.mkdir()
    server = start_percore("--dir", d)
    c = server.client()
    fill(c)
    c.save()
    server.stop()
    data = bytearray((d / "dump.rdb").read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x40
    else:
        data = b"REDIS0010" + bytes(random.Random(1).randrange(256) for _ in range(500))
    (d / "dump.rdb").write_bytes(bytes(data))
    bad = start_percore("--dir", d, wait=False)
    assert bad.proc.wait(timeout=30) != 0
    out = bad.output()
    assert "panic" not in out
    assert any(s in out for s in ("Short read", "Bad RDB data", "Wrong RDB checksum", "Unknown RDB encoding")), out


def rdb_len(n):
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | n >> 8, n & 0xFF])
    return b"\x80" + n.to_bytes(4, "big")


def rdb_str(s):
    return rdb_len(len(s)) + s


def ziplist(items):
    """A ziplist as Redis 2.6 to 6.2 wrote them: strings under 64 bytes,
    integers as 0..12 immediates or int16."""
    body, prev = b"", 0
    for it in items:
        if isinstance(it, int) and 0 <= it <= 12:
            enc = bytes([0xF1 + it])
        elif isinstance(it, int):
            enc = b"\xc0" + it.to_bytes(2, "little", signed=True)
        else:
            enc = bytes([len(it)]) + it
        entry = bytes([prev]) + enc
        body += entry
        prev = len(entry)
    total = 10 + len(body) + 1
    return total.to_bytes(4, "little") + (10).to_bytes(4, "little") + len(items).to_bytes(2, "little") + body + b"\xff"


def test_old_format_file_loads(tmp_path, start_percore):
    """A version 6 file with the encodings only older Redis wrote
    (ziplists, zipmap, quicklist of ziplists, linked list, text-double
    sorted set, seconds expiry), made here byte by byte."""
    zipmap = bytes([2]) + b"\x01f\x02\x00v1" + b"\x02f2\x01\x02x\x00\x00" + b"\xff"
    intset = (2).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"".join(
        n.to_bytes(2, "little", signed=True) for n in (-5, 7, 300)
    )
    lzf_body = b"\x00a\xe0\x1e\x00"  # 40 'a's
    body = b"REDIS0006"
    body += b"\xfa" + rdb_str(b"redis-ver") + rdb_str(b"3.2.0")
    body += b"\xfe\x00" + b"\xfb\x0b\x01"
    body += b"\x0a" + rdb_str(b"zl") + rdb_str(ziplist([b"a", 5, -300, b"bb"]))
    body += b"\x09" + rdb_str(b"zm") + rdb_str(zipmap)
    body += b"\x0c" + rdb_str(b"zz") + rdb_str(ziplist([b"m1", 1, b"m2", b"2.5"]))
    body += b"\x0d" + rdb_str(b"zh") + rdb_str(ziplist([b"f", b"v", b"n", 12]))
    body += b"\x0e" + rdb_str(b"ql") + rdb_len(2) + rdb_str(ziplist([b"x", b"y"])) + rdb_str(ziplist([3]))
    body += b"\x01" + rdb_str(b"ll") + rdb_len(2) + rdb_str(b"one") + b"\xc0\x02"
    body += b"\x03" + rdb_str(b"oz") + rdb_len(3) + rdb_str(b"a") + b"\x031.5" + rdb_str(b"b") + b"\xfe" + rdb_str(b"c") + b"\xff"
    body += b"\x0b" + rdb_str(b"is") + rdb_str(intset)
    body += b"\x02" + rdb_str(b"st") + rdb_len(2) + rdb_str(b"p") + rdb_str(b"q")
    body += b"\xfd" + (2**31 - 1).to_bytes(4, "little") + b"\x00" + rdb_str(b"exp") + b"\xc1" + (1234).to_bytes(2, "little", signed=True)
    body += b"\xfd" + (1000).to_bytes(4, "little") + b"\x00" + rdb_str(b"past") + rdb_str(b"gone")
    body += b"\x00" + rdb_str(b"lzf") + b"\xc3" + rdb_len(len(lzf_body)) + rdb_len(40) + lzf_body
    body += b"\xff"
    body += crc64(body).to_bytes(8, "little")
    d = tmp_path / "old"
    d.mkdir()
    (d / "dump.rdb").write_bytes(body)
    c = start_percore("--dir", d).client()
    wait_until(lambda: c.info("persistence")["loading"] == 0, what="loaded")
    assert c.lrange("zl", 0, -1) == [b"a", b"5", b"-300", b"bb"]
    assert c.hgetall("zm") == {b"f": b"v1", b"f2": b"x"}
    assert c.zrange("zz", 0, -1, withscores=True) == [(b"m1", 1.0), (b"m2", 2.5)]
    assert c.hgetall("zh") == {b"f": b"v", b"n": b"12"}
    assert c.lrange("ql", 0, -1) == [b"x", b"y", b"3"]
    assert c.lrange("ll", 0, -1) == [b"one", b"2"]
    assert c.zrange("oz", 0, -1, withscores=True) == [(b"c", float("-inf")), (b"a", 1.5), (b"b", float("inf"))]
    assert c.smembers("is") == {b"-5", b"7", b"300"}
    assert c.object("encoding", "is") == b"intset"
    assert c.smembers("st") == {b"p", b"q"}
    assert c.get("exp") == b"1234" and c.expiretime("exp") == 2**31 - 1
    assert c.exists("past") == 0
    assert c.get("lzf") == b"a" * 40
    assert c.info("persistence")["rdb_last_load_keys_expired"] == 1


def test_function_dump_restore_match_redis(percore, reference):
    p, r = percore.client(), reference.client()
    other = "#!lua name=lib2\nredis.register_function('f2', function() return 2 end)"
    for c in (p, r):
        c.function_load(LIBRARY)
    payload = r.function_dump()
    assert p.function_dump() == payload
    for c in (p, r):
        c.function_load(other)
    both = r.function_dump()
    cases = [
        ["FUNCTION", "RESTORE", payload],
        ["FUNCTION", "RESTORE", payload, "REPLACE"],
        ["FUNCTION", "RESTORE", payload, "BAD"],
        ["FUNCTION", "RESTORE", "garbage"],
        ["FUNCTION", "RESTORE"],
        ["FUNCTION", "RESTORE", payload, "FLUSH", "x"],
        ["FUNCTION", "RESTORE", reseal(b"\x00\x01a")],
        ["FUNCTION", "DUMP", "x"],
        ["FUNCTION", "FLUSH"],
        ["FUNCTION", "RESTORE", payload, "FLUSH"],
        ["FCALL", "f1", "0"],
        ["FUNCTION", "RESTORE", both],
        ["FUNCTION", "RESTORE", both, "FLUSH"],
        ["FCALL", "f2", "0"],
    ]
    for cmd in cases:
        assert reply(p, cmd) == reply(r, cmd), cmd[:3]
    # A failed restore leaves the libraries as they were.
    p.function_flush()
    p.function_load(LIBRARY)
    with pytest.raises(redis.ResponseError, match="already exists"):
        p.execute_command("FUNCTION", "RESTORE", both)
    assert [lib[1] for lib in p.function_list()] == [b"mylib"]
    assert p.fcall("f1", 0) == 1


def test_failed_save_refuses_writes_with_misconf(tmp_path, start_percore, start_redis):
    """As redis-server: a failed SAVE is only an error; a failed BGSAVE
    turns writes (and PING) away with MISCONF until a save succeeds or
    stop-writes-on-bgsave-error is off."""
    clients = []
    for name, start in (("percore", start_percore), ("redis", start_redis)):
        d = tmp_path / name
        d.mkdir()
        c = start("--dir", d, "--save", "3600 1").client()
        c.set("x", "x")
        d.rmdir()
        clients.append(c)
    for c in clients:
        with pytest.raises(redis.ResponseError):
            c.save()
        assert c.info("persistence")["rdb_last_bgsave_status"] == "ok"
        assert c.set("x", "y")
        c.bgsave()
        wait_until(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 0, what="the failed bgsave")
        assert c.info("persistence")["rdb_last_bgsave_status"] == "err"
        for cmd in (["SET", "x", "y"], ["PING"]):
            with pytest.raises(redis.ResponseError, match="^MISCONF"):
                c.execute_command(*cmd)
        assert c.get("x") == b"y"
        c.config_set("stop-writes-on-bgsave-error", "no")
        assert c.set("x", "z")
    percore = clients[0]
    percore.config_set("stop-writes-on-bgsave-error", "yes")
    with pytest.raises(redis.ResponseError, match="^MISCONF"):
        percore.eval("return redis.call('set','x',1)", 1, "x")
    assert percore.eval("return redis.call('get','x')", 1, "x") == b"z"


def test_flushall_stops_a_bgsave(percore):
    c = percore.client()
    c.config_set("save", "")
    c.mset({f"k{i}": i for i in range(2000)})
    c.config_set("rdb-key-save-delay", 1000)
    c.bgsave()
    assert c.info("persistence")["rdb_bgsave_in_progress"] == 1
    c.flushall()
    wait_until(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 0, timeout=2, what="the save stopped")
    info = c.info("persistence")
    assert info["rdb_changes_since_last_save"] >= 2000
    assert info["rdb_last_bgsave_status"] == "ok"
    assert c.set("x", "xx")
    c.config_set("rdb-key-save-delay", 0)
    c.bgsave()
    wait_until(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 0, what="bgsave")
    assert c.info("persistence")["rdb_changes_since_last_save"] == 0


def test_save_holds_commands_on_keys_until_it_is_on_disk(percore):
    c = percore.client()
    c.config_set("save", "")
    c.mset({f"k{i}": i for i in range(200)})
    # About 0.5 s per shard.
    c.config_set("rdb-key-save-delay", 5000)
    saver, saved = in_thread(percore.client().save)
    wait_until(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 1, what="the save started")

    def read():
        value = percore.client().get("k1")
        return value, c.info("persistence")["rdb_bgsave_in_progress"]

    reader, got = in_thread(read)
    saver.join(timeout=30)
    reader.join(timeout=30)
    assert saved == {"value": True}
    # The GET was answered only once the save was over.
    assert got == {"value": (b"1", 0)}


def test_flushall_with_save_points_saves_before_replying(tmp_path, start_percore, start_redis):
    d = tmp_path / "flushall"
    d.mkdir()
    server = start_percore("--dir", d, "--save", "3600 1")
    c = server.client()
    c.mset({f"k{i}": i for i in range(1000)})
    c.save()
    c.set("another", "x")
    reference = start_redis("--save", "3600 1").client()
    reference.mset({f"k{i}": i for i in range(1000)})
    for r in (c, reference):
        r.flushall()
    # Redis's FLUSHALL saves in the foreground: nothing is left to save.
    persistence = [r.info("persistence") for r in (c, reference)]
    assert [p["rdb_changes_since_last_save"] for p in persistence] == [0, 0]
    assert [p["rdb_bgsave_in_progress"] for p in persistence] == [0, 0]
    # Killed right after the reply, it restarts empty.
    server.stop()
    assert start_percore("--dir", d, "--save", "3600 1").client().dbsize() == 0


@pytest.mark.parametrize("mode", ["default", "nosave"])
def test_sigterm_saves_as_shutdown_on_sigterm_says(tmp_path, start_percore, mode):
    d = tmp_path / mode
    d.mkdir()
    server = start_percore("--dir", d, "--shutdown-on-sigterm", mode)
    server.client().mset({f"k{i}": i for i in range(500)})
    os.kill(server.pid, signal.SIGTERM)
    assert server.proc.wait(timeout=20) == 0
    assert (d / "dump.rdb").exists() == (mode == "default")
    if mode == "default":
        assert "Saving the final RDB snapshot before exiting." in server.output()
        check_rdb(d / "dump.rdb")


def test_lfu_counters_follow_redis(percore, reference):
    """Under an LFU policy OBJECT FREQ is Redis's logarithmic counter: 5
    for a new key, growing with accesses ever more slowly, set by RESTORE
    FREQ; OBJECT itself is no access."""
    results = {}
    for name, c in (("percore", percore.client()), ("redis", reference.client())):
        c.config_set("maxmemory-policy", "allkeys-lfu")
        c.set("k", "v")
        new = c.object("freq", "k")
        again = c.object("freq", "k")
        pipe = c.pipeline(transaction=False)
        for _ in range(2000):
            pipe.get("k")
        pipe.execute()
        used = c.object("freq", "k")
        c.restore("r", 0, c.dump("k"), frequency=100)
        restored = c.object("freq", "r")
        c.config_set("maxmemory-policy", "allkeys-lru")
        c.restore("i", 0, c.dump("k"), idletime=1000)
        idle = c.object("idletime", "i")
        results[name] = (new, again, used, restored, idle)
    for name, (new, again, used, restored, idle) in results.items():
        assert (new, again, restored) == (5, 5, 100), name
        # 2000 accesses take the counter to about 24; far from 5 and 255.
        assert 15 <= used <= 35, (name, used)
        assert 1000 <= idle <= 1002, name


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu"])
def test_rdb_carries_idle_time_or_frequency_both_ways(tmp_path, start_percore, start_redis, policy):
    """An LRU policy's RDB records each key's idle time, an LFU policy's
    its counter (Redis's IDLE and FREQ opcodes), and a loader under the
    same policy takes them over."""
    option = {"idletime": 5000} if policy == "allkeys-lru" else {"frequency": 77}
    read = (lambda c, k: c.object("idletime", k)) if policy == "allkeys-lru" else (lambda c, k: c.object("freq", k))
    expected = (5000, 5003) if policy == "allkeys-lru" else (77, 77)
    for writer, loader in (("percore", "redis"), ("redis", "percore")):
        d = tmp_path / f"{writer}-{policy}"
        d.mkdir()
        start = {"percore": start_percore, "redis": start_redis}
        w = start[writer]("--dir", d, "--maxmemory-policy", policy).client()
        w.set("src", "v")
        w.restore("k", 0, w.dump("src"), **option)
        w.save()
        check_rdb(d / "dump.rdb")
        ld = start[loader]("--dir", d, "--maxmemory-policy", policy).client()
        wait_until(lambda: ld.info("persistence")["loading"] == 0, what="loaded")
        got = read(ld, "k")
        assert expected[0] <= got <= expected[1], (writer, loader, got)


def test_lfu_eviction_keeps_the_often_used_keys(start_percore):
    """allkeys-lfu evicts the least used: keys read many times survive a
    flood of new keys that pushes memory over maxmemory."""
    c = start_percore("--maxmemory-policy", "allkeys-lfu", "--maxmemory-samples", "10", threads=1).client()
    value = "x" * 200
    pipe = c.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"hot:{i}", value)
    pipe.execute()
    for _ in range(30):
        for i in range(2000):
            pipe.get(f"hot:{i}")
        pipe.execute()
    used = c.info("memory")["used_memory"]
    c.config_set("maxmemory", used + 300_000)
    for i in range(10_000):
        pipe.set(f"cold:{i}", value)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    assert c.info("stats")["evicted_keys"] > 2000
    hot = sum(c.exists(f"hot:{i}") for i in range(2000))
    assert hot >= 1900, hot


def test_bgsave_during_an_aof_rewrite_is_refused_or_scheduled_as_redis(tmp_path, start_percore, start_redis):
    replies = []
    for i, start in enumerate((start_redis, start_percore)):
        d = tmp_path / f"s{i}"
        d.mkdir()
        c = start("--dir", d, "--appendonly", "yes").client()
        c.mset({f"k{j}": j for j in range(400)})
        c.config_set("rdb-key-save-delay", 2000)
        c.bgrewriteaof()
        wait_until(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 1, what="a rewrite in progress")
        got = []
        for args in (["BGSAVE"], ["BGSAVE", "SCHEDULE"]):
            try:
                got.append(c.execute_command(*args))
            except redis.ResponseError as e:
                got.append(str(e))
        replies.append(got)
        c.config_set("rdb-key-save-delay", 0)
        # The scheduled save runs once the rewrite is over.
        wait_until(lambda: (d / "dump.rdb").exists(), timeout=30, what="the scheduled BGSAVE")
        assert c.info("persistence")["aof_rewrite_in_progress"] == 0
    assert replies[0] == replies[1]
    assert replies[1][0].startswith("Another child process is active (AOF?): can't BGSAVE right now.")


@pytest.mark.parametrize("how", ["SHUTDOWN NOSAVE", "SIGTERM"])
def test_shutdown_stops_a_running_bgsave_and_leaves_no_temp_files_as_redis(tmp_path, start_percore, start_redis, how):
    for i, start in enumerate((start_redis, start_percore)):
        d = tmp_path / f"s{i}"
        # No save points: the shutdown itself saves nothing.
        server, c, old = slow_bgsave_over_a_saved_dump(start, d, "--save", "")
        assert c.info("persistence")["rdb_bgsave_in_progress"] == 1
        if how == "SIGTERM":
            os.kill(server.pid, signal.SIGTERM)
        else:
            c.shutdown(nosave=True)
        # At once, not after the 20 s the save would take.
        server.proc.wait(timeout=5)
        assert sorted(f.name for f in d.iterdir() if f.name.startswith("temp-")) == []
        assert (d / "dump.rdb").read_bytes() == old
        assert "Killing it!" in server.output()

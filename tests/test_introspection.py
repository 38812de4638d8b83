"""What commands cost, as redis-server reports it: INFO commandstats /
errorstats / latencystats, SLOWLOG, LATENCY, counted on every core and
merged."""

import pytest
import redis

from slots import keys_on_distinct_shards

SHARDS = 4


def workload(c, keys):
    c.config_resetstat()
    for k in keys:
        c.set(k, "v")
        c.get(k)
    for bad in (["GET"], ["GET", "a", "b"], ["LPUSH", keys[0], "x"], ["NOSUCHCMD"], ["INCR", keys[1]]):
        try:
            c.execute_command(*bad)
        except Exception:  # noqa: BLE001 - the errors are what is counted
            pass
    pipe = c.pipeline(transaction=True)
    pipe.set(keys[2], "1")
    pipe.incr(keys[2])
    pipe.lpush(keys[2], "x")
    try:
        pipe.execute()
    except Exception:  # noqa: BLE001
        pass


def counts(c):
    stats = c.info("commandstats")
    picked = {}
    for name, s in stats.items():
        cmd = name.removeprefix("cmdstat_")
        if cmd in ("set", "get", "lpush", "incr", "multi", "exec"):
            picked[cmd] = (s["calls"], s["rejected_calls"], s["failed_calls"])
    return picked


def test_command_and_error_stats_match_redis(start_percore, reference):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    results = []
    for server in (reference, percore):
        c = server.client()
        c.flushall()
        workload(c, keys)
        errors = {k.removeprefix("errorstat_"): v["count"] for k, v in c.info("errorstats").items()}
        results.append((counts(c), errors, c.info("stats")["total_error_replies"]))
    assert results[0] == results[1]
    # The workload did fail: the comparison is not of empty tables.
    assert results[1][1]["WRONGTYPE"] >= 2 and results[1][2] >= 5


def test_latency_histograms_and_percentiles(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    keys = keys_on_distinct_shards(SHARDS)
    c.config_resetstat()
    for k in keys * 5:
        c.set(k, "v")
    histo = c.execute_command("LATENCY", "HISTOGRAM", "set", "nosuchcommand")
    assert list(histo) == [b"set"]
    entry = dict(zip(histo[b"set"][::2], histo[b"set"][1::2])) if isinstance(histo[b"set"], list) else histo[b"set"]
    assert entry[b"calls"] == 20
    buckets = entry[b"histogram_usec"]
    counts = list(buckets.values()) if isinstance(buckets, dict) else buckets[1::2]
    assert counts == sorted(counts) and counts[-1] == 20
    line = c.info("latencystats")["latency_percentiles_usec_set"]
    assert set(line) == {"p50", "p99", "p99.9"}
    assert 0 < line["p50"] <= line["p99"] <= line["p99.9"]


def test_slowlog_records_slow_calls_with_their_client(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    c.client_setname("slowpoke")
    c.config_set("slowlog-log-slower-than", 0)
    c.slowlog_reset()
    long_value = "x" * 200
    c.set("k", long_value)
    entry = c.slowlog_get(1)[0]
    assert entry["command"] == b"SET k " + b"x" * 128 + b"... (72 more bytes)"
    assert entry["client_name"] == b"slowpoke"
    assert entry["client_address"].startswith(b"127.0.0.1:")
    c.config_set("slowlog-max-len", 3)
    for i in range(10):
        c.ping()
    assert c.slowlog_len() == 3
    with pytest.raises(Exception, match="count should be greater than or equal to -1"):
        c.execute_command("SLOWLOG", "GET", "-2")
    c.config_set("slowlog-log-slower-than", -1)
    c.slowlog_reset()
    c.execute_command("DEBUG", "SLEEP", "0.05")
    assert c.slowlog_len() == 0


def test_latency_monitor_events(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    c.config_set("latency-monitor-threshold", 20)
    c.execute_command("LATENCY", "RESET")
    c.execute_command("DEBUG", "SLEEP", "0.05")
    latest = c.execute_command("LATENCY", "LATEST")
    assert [e[0] for e in latest] == [b"command"]
    assert latest[0][2] >= 50 and latest[0][3] >= 50
    history = c.execute_command("LATENCY", "HISTORY", "command")
    assert len(history) == 1 and history[0][1] >= 50
    assert c.execute_command("LATENCY", "RESET", "command", "nothing") == 1
    assert c.execute_command("LATENCY", "LATEST") == []


def test_client_pause_holds_writes_while_reads_continue(start_percore):
    import threading
    import time

    from conftest import wait_until

    percore = start_percore(threads=SHARDS)
    c = percore.client()
    keys = keys_on_distinct_shards(SHARDS)
    c.set(keys[0], "before")
    c.set("short", "x", px=50)
    c.client_pause(60000, all=False)
    # Reads on every core answer at once.
    assert [c.get(k) for k in keys[:1]] == [b"before"]
    assert c.info("clients")["blocked_clients"] == 0
    done = []
    writers = []
    for k in keys:
        t = threading.Thread(target=lambda k=k: done.append(percore.client().set(k, "after")))
        t.start()
        writers.append(t)
    wait_until(lambda: c.info("clients")["blocked_clients"] == len(keys), what="writers held")
    assert done == [] and c.get(keys[0]) == b"before"
    # Nothing expires while paused: the key is hidden, not deleted.
    expired = c.info("stats")["expired_keys"]
    time.sleep(0.2)  # past the key's 50 ms TTL, several expiry cycles
    assert c.get("short") is None
    assert c.info("stats")["expired_keys"] == expired
    # Scripts that declare no writes, and read-only scripts, still run.
    assert c.eval("#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])", 1, keys[0]) == b"before"
    with pytest.raises(Exception, match="Write commands are not allowed from read-only scripts"):
        c.eval("#!lua flags=no-writes\nreturn redis.call('publish', 'ch', 'm')", 0)
    c.client_unpause()
    for t in writers:
        t.join(10)
    assert done == [True] * len(keys)
    assert c.mget(keys) == [b"after"] * len(keys)
    # Unpaused, the hidden key is reclaimed at its next lookup.
    assert c.get("short") is None and c.info("stats")["expired_keys"] == expired + 1


def test_client_pause_all_holds_everything_until_its_deadline(start_percore):
    import time

    percore = start_percore(threads=SHARDS)
    c = percore.client()
    other = percore.client()
    started = time.monotonic()
    c.client_pause(300, all=True)
    assert other.ping() is True
    assert time.monotonic() - started >= 0.25
    with pytest.raises(Exception, match="CLIENT PAUSE mode must be WRITE or ALL"):
        c.execute_command("CLIENT", "PAUSE", "10", "SOME")
    with pytest.raises(Exception, match="timeout is negative"):
        c.execute_command("CLIENT", "PAUSE", "-1")


def test_memory_usage_follows_what_a_value_costs(start_percore, reference):
    percore = start_percore(threads=SHARDS)
    for server in (reference, percore):
        c = server.client()
        c.flushall()
        c.set("small", "x")
        c.set("big", "x" * 10000)
        c.hset("h", mapping={f"f{i}": f"v{i}" for i in range(2000)})
        small, big, h = (c.memory_usage(k) for k in ("small", "big", "h"))
        # A 10 kB string costs about 10 kB more than a 1-byte one, and a
        # big hash about what redis-server reports for it, give or take.
        assert 10000 <= big - small <= 10300, (server, small, big)
        if server is reference:
            redis_hash = h
        else:
            assert redis_hash / 3 < h < redis_hash * 3
        assert c.memory_usage("missing") is None
        assert c.memory_usage("h", samples=0) > 0
        with pytest.raises(Exception, match="syntax error"):
            c.execute_command("MEMORY", "USAGE", "h", "SAMPLES", "-1")
    c = percore.client()
    stats = c.memory_stats()
    assert stats["keys.count"] == 3 and stats["total.allocated"] > 0
    assert "jemalloc" in c.execute_command("MEMORY", "MALLOC-STATS").decode()
    assert c.execute_command("MEMORY", "PURGE") in (True, b"OK")
    assert c.execute_command("MEMORY", "DOCTOR")
    assert c.lolwut().endswith(b"Redis ver. 7.0.15\n")
    assert b"Georg Nees" in c.lolwut(5, 20, 3, 2)


# What COMMAND DOCS and key specs say in words: Redis's prose, which
# percore leaves out.
PROSE = {b"summary", b"complexity", b"history", b"replaced_by", b"notes"}


def plain(value):
    """A RESP3 reply as lists and (key, value) pairs, prose dropped."""
    if isinstance(value, tuple) and value[0] in ("*", "~", "%"):
        kind, items = value
        if kind == "%":
            pairs = zip(items[::2], items[1::2])
            return ("map", [(k, plain(v)) for k, v in pairs if k not in PROSE])
        return [plain(v) for v in items]
    return value


def described(conn, names):
    """COMMAND INFO and COMMAND DOCS of each name."""
    infos = plain(conn.call("COMMAND", "INFO", *names)[1])
    docs = dict(plain(conn.call("COMMAND", "DOCS", *names)[1])[1])
    return infos, docs


def only_subcommands(infos, docs, keep):
    """Leaves the subcommands in `keep`, by name."""
    for info in infos:
        if info:
            info[9] = sorted((s for s in info[9] if s[0] in keep), key=lambda s: s[0])
    for doc in docs.values():
        for i, (k, v) in enumerate(doc[1]):
            if k == b"subcommands":
                doc[1][i] = (k, ("map", sorted(p for p in v[1] if p[0] in keep)))


def test_command_describes_every_command_as_redis(percore, reference):
    from resp import Conn

    ours, theirs = Conn(percore.port), Conn(reference.port)
    try:
        for conn in (ours, theirs):
            conn.call("HELLO", "3")
        listed = ours.call("COMMAND", "LIST")[1][1]
        names = [n for n in listed if b"|" not in n] + [b"nosuch", b"get|key", b"config|get|key", b"config|get"]
        mine, redis = described(ours, names), described(theirs, names)
        only_subcommands(*redis, keep=set(listed))
        only_subcommands(*mine, keep=set(listed))
        assert len(mine[0]) == len(names)
        for name, a, b in zip(names, mine[0], redis[0]):
            assert a == b, name
        assert mine[1].keys() == redis[1].keys()
        for name in mine[1]:
            assert mine[1][name] == redis[1][name], name
        # Filters pick from what percore has exactly what Redis picks.
        for filter_by in (["ACLCAT", "scripting"], ["ACLCAT", "DANGEROUS"], ["PATTERN", "config|*re*"], ["PATTERN", "x*"]):
            picked = [conn.call("COMMAND", "LIST", "FILTERBY", *filter_by)[1][1] for conn in (ours, theirs)]
            assert picked[0] and sorted(picked[0]) == sorted(n for n in picked[1] if n in listed), filter_by
        assert ours.call("COMMAND", "LIST", "FILTERBY", "MODULE", "nosuch")[1] == ("*", [])
    finally:
        ours.close()
        theirs.close()


GETKEYS_CALLS = [
    "set k v", "set k v get", "mset a 1 b 2", "lmove a b left right", "sort k store d", "sort_ro k by x",
    "eval s 0", "eval s 2 a b", "zunionstore d 2 a b weights 1 2", "zunionstore d 5 a b", "zinter 2 a b",
    "xread count 1 streams s1 s2 0 0", "xreadgroup group g c streams s 0", "georadius k 0 0 1 km store d",
    "georadius_ro k 0 0 1 km", "bitfield k get u8 0", "bitfield k set u8 0 1", "bitfield_ro k get u8 0",
    "memory usage k", "object encoding k", "xinfo stream k", "xgroup create k g $", "lcs a b",
    "blmpop 0 2 a b left", "lmpop 1 a left", "rename a b", "get", "get a b", "ping", "nosuch a",
    "config get x", "client list", "pfcount a b", "sintercard 2 a b", "fcall f 1 a", "object nosuch k",
]


@pytest.mark.parametrize("flags", ["GETKEYS", "GETKEYSANDFLAGS"])
def test_command_getkeys_as_redis(percore, reference, flags):
    from resp import Conn

    replies = []
    for server in (percore, reference):
        conn = Conn(server.port)
        try:
            replies.append([conn.call("COMMAND", flags, *call.split())[1] for call in GETKEYS_CALLS])
        finally:
            conn.close()
    for call, a, b in zip(GETKEYS_CALLS, *replies):
        assert a == b, call


def test_debug_populate_fills_every_core_without_overwriting(start_percore):
    percore = start_percore(threads=SHARDS)
    c = percore.client()
    c.set("key:7", "mine")
    dirty = c.info("persistence")["rdb_changes_since_last_save"]
    assert c.execute_command("DEBUG", "POPULATE", "500") in (True, b"OK")
    assert c.dbsize() == 500
    assert c.get("key:7") == b"mine" and c.get("key:499") == b"value:499"
    c.execute_command("DEBUG", "POPULATE", "3", "pad", "10")
    assert c.get("pad:2") == b"value:2\0\0\0"
    c.execute_command("DEBUG", "POPULATE", "3", "cut", "3")
    assert c.get("cut:1") == b"val"
    # Not a change anyone replays.
    assert c.info("persistence")["rdb_changes_since_last_save"] == dirty
    with pytest.raises(Exception, match="must be positive"):
        c.execute_command("DEBUG", "POPULATE", "-1")


def test_instantaneous_rates_follow_the_load(start_percore):
    import threading

    from conftest import wait_until

    percore = start_percore(threads=SHARDS)
    c = percore.client()
    stop = threading.Event()

    def load():
        w = percore.client()
        while not stop.is_set():
            pipe = w.pipeline(transaction=False)
            for i in range(100):
                pipe.set(f"k{i}", "v")
            pipe.execute()

    t = threading.Thread(target=load)
    t.start()
    try:
        wait_until(lambda: c.info("stats")["instantaneous_ops_per_sec"] > 1000, what="a rate under load")
        stats = c.info("stats")
        assert stats["instantaneous_input_kbps"] > 0 and stats["instantaneous_output_kbps"] > 0
    finally:
        stop.set()
        t.join()
    wait_until(lambda: c.info("stats")["instantaneous_ops_per_sec"] < 100, what="the rate to fall")


def monitored(server, act):
    """What MONITOR shows of `act(server)`, which ends with SET after x:
    the commands, spaces normalized."""
    import re

    from conftest import wait_until

    with server.client().monitor() as m:
        act(server)
        lines = []
        wait_until(lambda: lines.append(m.next_command()) or lines[-1]["command"].startswith("SET after"), what="monitor lines")
    return [re.sub(r"\s+", " ", line["command"]) for line in lines]


def test_monitor_shows_transactions_as_redis(start_percore, reference):
    def act(server):
        c = server.client()
        pipe = c.pipeline(transaction=True)
        pipe.set("foo{t}", "bar")
        pipe.incr("n{t}")
        pipe.execute()
        c.set("after", "x")

    # The client's own commands, without the connection's setup.
    seen = [cmds[cmds.index("MULTI"):] for cmds in (monitored(s, act) for s in (reference, start_percore(threads=SHARDS)))]
    assert seen[0] == seen[1] == ["MULTI", "SET foo{t} bar", "INCRBY n{t} 1", "EXEC", "SET after x"]


def test_monitor_shows_select_in_the_database_it_selected(start_percore, reference):
    """Redis shows a command once it ran: SELECT n in database n."""
    from conftest import wait_until

    def seen(server):
        c = server.client()
        with server.client().monitor() as m:
            for cmd in (("SELECT", "1"), ("SET", "a", "b"), ("SELECT", "0"), ("SET", "after", "x")):
                c.execute_command(*cmd)
            lines = []
            wait_until(lambda: lines.append(m.next_command()) or lines[-1]["command"].startswith("SET after"),
                       what="monitor lines")
        shown = [(line["db"], line["command"]) for line in lines]
        # (From the first SELECT: the connection's setup before it varies.)
        return shown[[cmd for _, cmd in shown].index("SELECT 1"):]

    assert seen(start_percore(threads=SHARDS)) == seen(reference) == [
        (1, "SELECT 1"), (1, "SET a b"), (0, "SELECT 0"), (0, "SET after x")]


def test_monitor_redacts_secrets_as_redis(start_percore, reference):
    from resp import Conn

    def act(server):
        # A raw connection: redis-py backs off seconds after an AUTH error.
        conn = Conn(server.port)
        try:
            for cmd in (["AUTH", "sesame"], ["AUTH", "someone", "sesame"], ["HELLO", "2", "AUTH", "default", "sesame", "SETNAME", "me"]):
                conn.call(*cmd)
            conn.call("SET", "after", "x")
        finally:
            conn.close()

    picked = lambda cmds: [cmd for cmd in cmds if cmd.split(" ")[0] in ("AUTH", "HELLO", "SET")]
    seen = [picked(monitored(s, act)) for s in (reference, start_percore(threads=SHARDS))]
    assert seen[0] == seen[1]
    assert "sesame" not in " ".join(seen[1])


@pytest.mark.parametrize("protocol", ["2", "3"])
def test_debug_protocol_replies_as_redis(percore, reference, protocol):
    from resp import Conn

    kinds = ["string", "integer", "double", "bignum", "null", "array", "set", "map"]
    kinds += ["attrib", "push", "verbatim", "true", "false", "nonsense"]
    replies = []
    for port in (percore.port, reference.port):
        c = Conn(port)
        c.call("HELLO", protocol)
        got = []
        for kind in kinds:
            raw, _ = c.call("DEBUG", "PROTOCOL", kind)
            # Attributes and pushes come with a reply of their own after them.
            if kind in ("attrib", "push") and raw[:1] in (b"|", b">"):
                raw += c.read()[0]
            got.append(raw)
        replies.append(got)
    for kind, mine, theirs in zip(kinds, *replies):
        assert mine == theirs, kind


@pytest.mark.parametrize("section", ["memory", "stats", "clients"])
def test_info_sections_have_redis_fields_in_redis_order(percore, reference, section):
    def fields(client):
        text = client.execute_command("INFO", section)
        if isinstance(text, dict):
            return list(text)
        return [line.split(":")[0] for line in text.decode().splitlines() if ":" in line]

    mine = [f for f in fields(percore.client()) if f]
    theirs = [f for f in fields(reference.client()) if f]
    assert mine == theirs


def test_debug_pause_cron_stops_active_expiry(percore):
    import time

    from conftest import wait_until

    c = percore.client()
    c.execute_command("DEBUG", "PAUSE-CRON", "1")
    try:
        c.set("k", "v", px=50)
        # Nothing reads it: only the cron could remove it, and it must not
        # for as long as it is paused (several cron periods).
        time.sleep(0.4)
        assert c.info("stats")["expired_keys"] == 0
    finally:
        c.execute_command("DEBUG", "PAUSE-CRON", "0")
    wait_until(lambda: c.info("stats")["expired_keys"] == 1)


def test_client_kill_by_user_knows_only_existing_users(percore, reference):
    from resp import Conn

    replies = []
    for server in (percore, reference):
        conn = Conn(server.port)
        try:
            replies.append([conn.call("CLIENT", "KILL", "USER", u, "SKIPME", "yes")[1] for u in ("nosuch", "default")])
        finally:
            conn.close()
    assert replies[0] == replies[1]


def test_info_reads_memory_before_gathering_the_other_sections(start_percore):
    """Tests (and operators) set maxmemory from INFO's used_memory: it must
    not count what INFO itself allocates to merge every core's stats."""
    c = start_percore(threads=SHARDS).client()
    for i in range(300):
        # Many distinct commands and errors: many histograms and tables.
        c.execute_command("SET", f"k{i}", "v")
        for cmd in ("GET", "STRLEN", "EXISTS", "TYPE", "TTL", "PTTL", "OBJECT ENCODING"):
            c.execute_command(*cmd.split(), f"k{i}")
        try:
            c.execute_command("INCR", f"k{i}")
        except redis.ResponseError:
            pass
    spread = []
    for _ in range(5):
        full = c.info("everything")["used_memory"]
        alone = c.info("memory")["used_memory"]
        spread.append(full - alone)
    assert min(spread) < 64 * 1024, spread


def test_debug_listpack_and_quicklist_answer_as_redis(percore, reference):
    from resp import Conn

    replies = []
    for server in (percore, reference):
        conn = Conn(server.port)
        try:
            conn.call("HSET", "h", "a", "1")
            conn.call("RPUSH", "l", "a", "b")
            conn.call("SET", "s", "x")
            calls = ["LISTPACK h", "LISTPACK s", "LISTPACK nosuch", "QUICKLIST l", "QUICKLIST l 1", "QUICKLIST h"]
            replies.append([conn.call("DEBUG", *c.split())[1] for c in calls])
        finally:
            conn.close()
    assert replies[0] == replies[1]


def test_reset_ends_monitor_before_its_own_line(start_percore, reference):
    """A monitor that sends RESET gets +RESET, not its own RESET line: it
    stopped monitoring when RESET ran, and Redis shows a command after its
    call. A PING sent next then gets its own reply."""
    from resp import Conn

    for server in (reference, start_percore(threads=SHARDS)):
        conn = Conn(server.port)
        try:
            assert conn.call("MONITOR")[0] == b"+OK\r\n"
            # (CLIENT LIST is administrative: not shown to monitors.)
            assert b"flags=O " in server.cli("CLIENT", "LIST").encode()
            assert conn.call("RESET")[0] == b"+RESET\r\n"
            assert conn.call("PING")[0] == b"+PONG\r\n"
            assert b"flags=O" not in server.cli("CLIENT", "LIST").encode()
        finally:
            conn.close()


def client_fields(c, name):
    for line in c.execute_command("CLIENT", "LIST").decode().splitlines():
        fields = dict(f.split("=", 1) for f in line.split(" "))
        if fields["name"] == name:
            return {k: int(v) for k, v in fields.items() if k in ("rbs", "rbp", "qbuf", "qbuf-free", "tot-mem")}
    raise AssertionError(f"no client named {name}")


@pytest.mark.parametrize("threads", [1, 2])
def test_client_buffers_follow_what_the_client_needs_as_redis(start_percore, reference, threads):
    """Reply buffers shrink to 1 KiB for small replies and grow back to
    16 KiB for large ones; an idle client gives its read buffer back.
    The same steps against redis-server give the same sizes."""
    from conftest import wait_until

    for server in (reference, start_percore(threads=threads)):
        admin, idle = server.client(), server.client()
        admin.execute_command("DEBUG", "REPLYBUFFER", "PEAK-RESET-TIME", "100")
        admin.config_resetstat()
        try:
            idle.client_setname("sized")
            before = client_fields(admin, "sized")
            wait_until(lambda: 1024 <= client_fields(admin, "sized")["rbs"] < 2048, timeout=5)
            # Idle for more than 2 s: the read buffer goes.
            wait_until(lambda: client_fields(admin, "sized")["qbuf-free"] == 0, timeout=6)
            after = client_fields(admin, "sized")
            assert after["tot-mem"] < before["tot-mem"] - 8192, (before, after)
            admin.set("bigval", "x" * 32768)
            admin.execute_command("DEBUG", "REPLYBUFFER", "PEAK-RESET-TIME", "NEVER")

            def grown():
                assert len(idle.get("bigval")) == 32768
                return client_fields(admin, "sized")["rbs"] == 16384

            wait_until(grown, timeout=5)
            stats = admin.info("stats")
            assert stats["reply_buffer_shrinks"] >= 1 and stats["reply_buffer_expands"] >= 4
        finally:
            admin.execute_command("DEBUG", "REPLYBUFFER", "PEAK-RESET-TIME", "RESET")
            admin.delete("bigval")
            idle.close()


def test_memory_stats_fields_as_redis_and_dataset_counts_the_data(start_percore, reference):
    percore = start_percore(threads=2)
    shapes = []
    for server in (reference, percore):
        c = server.client()
        c.flushall()
        empty = c.memory_stats()
        for db in (0, 3):
            c.execute_command("SELECT", db)
            pipe = c.pipeline(transaction=False)
            for i in range(10000):
                pipe.set(f"k{i}", "x" * 100, ex=1000 if i % 2 else None)
            pipe.execute()
        full = c.memory_stats()
        names = list(full)
        shapes.append((names, {n: sorted(v) for n, v in full.items() if n.startswith("db.")}))
        # The data is counted as data: 20000 values of 100 bytes.
        assert full["dataset.bytes"] - empty["dataset.bytes"] >= 20000 * 100, (empty, full)
        assert full["startup.allocated"] < full["total.allocated"]
        assert full["db.3"]["overhead.hashtable.main"] > 0 and full["db.3"]["overhead.hashtable.expires"] > 0
        c.flushall()
    assert shapes[0] == shapes[1]
    assert "db.0" in shapes[1][0] and "db.3" in shapes[1][0] and "db.1" not in shapes[1][0]


def test_a_large_request_leaves_a_read_buffer_that_follows_the_peak_down_as_redis(start_percore, reference):
    import time

    def read_buffer(admin):
        f = client_fields(admin, "big")
        return f["qbuf"] + f["qbuf-free"]

    for server in (reference, start_percore(threads=2)):
        admin, big = server.client(), server.client()
        big.client_setname("big")
        big.set("x", "A" * 400000)
        grown = read_buffer(admin)
        # Kept while it is the recent peak.
        assert grown > 32768
        deadline = time.monotonic() + 3
        while read_buffer(admin) >= grown and time.monotonic() < deadline:
            big.set("x", "A" * 100)
            time.sleep(0.01)
        assert 0 < read_buffer(admin) < grown
        big.close()

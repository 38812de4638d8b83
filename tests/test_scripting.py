"""Lua scripting with redis-py: its Lock, atomic scripts over keys of
several shards, errors, SCRIPT KILL and FUNCTION KILL of a busy script."""

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


def test_undeclared_key_on_another_shard_is_reached(start_percore):
    percore = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    c = percore.client()
    c.set(keys[1], "there")
    assert c.eval("return redis.call('get', ARGV[1])", 1, keys[0], keys[1]) == b"there"
    # The declared key itself, and keys sharing its shard by hash tag, work.
    assert c.eval("redis.call('set', KEYS[1], 'x') return redis.call('get', '{' .. KEYS[1] .. '}')", 1, "t") is None


def start_busy(port, command):
    """Sends `command` on a raw connection; returns the connection and a
    thread that collects its reply."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.settimeout(30)
    answer = []
    conn.sendall(command)
    t = threading.Thread(target=lambda: answer.append(conn.recv(300)))
    t.start()
    return conn, t, answer


@pytest.mark.parametrize("threads", [1, 2])
def test_script_kill_on_the_same_and_other_core(start_percore, threads):
    # With one thread the killer shares the core of the busy script: the
    # script must let the reactor run.
    percore = start_percore("--busy-reply-threshold", "300", threads=threads)
    before = redis.Redis(port=percore.port, socket_timeout=10)
    assert before.ping()  # a connection made before the script started
    busy, t, answer = start_busy(percore.port, b"EVAL 'while true do end' 0\r\n")
    wait_until(lambda: busy_error(before) is not None, timeout=15, what="BUSY after the threshold")
    assert busy_error(before) == "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    wait_until(lambda: "Slow script detected: still in execution after" in percore.output(), what="the warning")
    assert "You can try killing the script using the SCRIPT KILL command. Script name is: f_" in percore.output()
    killer = redis.Redis(port=percore.port, socket_timeout=10)
    with pytest.raises(redis.exceptions.ResponseError, match="FUNCTION KILL|not busy|BUSY"):
        killer.function_kill()
    assert killer.script_kill()
    t.join(timeout=10)
    assert answer and answer[0].startswith(b"-ERR Script killed by user with SCRIPT KILL... script: "), answer
    assert answer[0].endswith(b", on @user_script:1.\r\n"), answer
    assert before.ping() and killer.set("after", "1")
    with pytest.raises(redis.exceptions.ResponseError, match="NOTBUSY"):
        killer.script_kill()
    busy.close()


def busy_error(client):
    try:
        client.get("k")
    except redis.exceptions.ResponseError as e:
        if str(e).startswith("BUSY"):
            return str(e)
        raise
    return None


def test_function_kill_and_unkillable_script(start_percore):
    percore = start_percore("--busy-reply-threshold", "300", threads=1)
    r = redis.Redis(port=percore.port, socket_timeout=10)
    r.function_load("#!lua name=spin\nredis.register_function('spin', function()\n  while true do end\nend)")
    busy, t, answer = start_busy(percore.port, b"FCALL spin 0\r\n")
    wait_until(lambda: busy_error(r) is not None, timeout=15, what="BUSY after the threshold")
    assert busy_error(r) == "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
    wait_until(lambda: "using the FUNCTION KILL command. Script name is: spin." in percore.output(), what="the warning")
    with pytest.raises(redis.exceptions.ResponseError, match="FUNCTION KILL"):
        r.script_kill()
    stats = redis.Redis(port=percore.port, protocol=2, socket_timeout=10).execute_command("FUNCTION", "STATS")
    assert stats[0] == b"running_script" and stats[1][:4] == [b"name", b"spin", b"command", [b"FCALL", b"spin", b"0"]]
    assert stats[1][5] >= 300 and stats[2:] == [b"engines", [b"LUA", [b"libraries_count", 1, b"functions_count", 1]]]
    assert r.function_kill()
    t.join(timeout=10)
    assert answer == [b"-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:3.\r\n"]
    assert r.execute_command("FUNCTION", "STATS")[b"running_script"] is None
    busy.close()

    # A script that has written cannot be killed; it runs to its end.
    script = b"redis.call('set', 'w', '1') local t = redis.call('time') local stop = t[1] + 2 " \
        b"while tonumber(redis.call('time')[1]) < stop do end return 'done'"
    busy, t, answer = start_busy(percore.port, b"*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(script), script))
    wait_until(lambda: busy_error(r) is not None, timeout=15, what="BUSY after the threshold")
    with pytest.raises(redis.exceptions.ResponseError, match="UNKILLABLE"):
        r.script_kill()
    t.join(timeout=10)
    assert answer == [b"$4\r\ndone\r\n"]
    assert r.get("w") == b"1"
    busy.close()


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


def test_cmsgpack_refuses_hostile_input(percore):
    r = percore.client()
    # 100k nested one-element arrays, and an array claiming 4G elements.
    with pytest.raises(redis.exceptions.ResponseError, match="Bad data format in input"):
        r.eval("return cmsgpack.unpack(string.rep('\\145', 100000))", 0)
    with pytest.raises(redis.exceptions.ResponseError, match="Missing bytes in input"):
        r.eval("return cmsgpack.unpack('\\221\\255\\255\\255\\255')", 0)
    assert r.eval("return cmsgpack.unpack(cmsgpack.pack({7, {x = 'y'}}))[2].x", 0) == b"y"
    assert r.ping()


def test_script_returning_a_table_that_contains_itself(percore):
    """The reply nests until Redis's stack-limit error; the shard lives."""
    import socket

    from resp import encode
    with socket.create_connection(("127.0.0.1", percore.port), timeout=5) as s:
        s.sendall(encode(["EVAL", "local a = {}; local b = {a}; a[1] = b; return a", "0"]))
        f = s.makefile("rb")
        depth = 0
        while (line := f.readline()) == b"*1\r\n":
            depth += 1
        assert depth > 10
        assert line == b"-ERR reached lua stack limit\r\n"
    assert percore.client().ping()


@pytest.mark.parametrize(
    "trick",
    [
        "setmetatable(_G, {})",
        "local g = getmetatable(_G); g.__index = {}",
        "redis = function() return 1 end",
        "_G = {}",
        "redis.call = function() return 1 end",
        "cjson.encode = function() return 1 end",
        "cmsgpack.pack = function() return 1 end",
        "bit.lshift = function() return 1 end",
        "rawset(_G, 'redis', 1)",
        "loadstring('redis = 1')()",
    ],
)
def test_scripts_cannot_change_what_the_next_script_sees(percore, reference, trick):
    """Redis 7 makes the globals and its libraries read-only: a script
    that tries to replace them fails, and the next script still has them."""
    for server in (percore, reference):
        c = server.client()
        with pytest.raises(redis.exceptions.ResponseError, match="Attempt to modify a readonly table"):
            c.eval(trick, 0)
        assert c.eval("return redis.call('ping')", 0) == b"PONG"
        assert c.eval("return cjson.encode({1})", 0) == b"[1]"


def test_bytecode_and_removed_globals_are_refused(percore):
    c = percore.client()
    with pytest.raises(redis.exceptions.ResponseError, match="attempt to call a nil value"):
        c.eval("return loadstring(string.dump(function() return 1 end))()", 0)
    for name in ("print", "getfenv", "setfenv", "dofile", "loadfile", "require", "module", "newproxy"):
        with pytest.raises(redis.exceptions.ResponseError, match=f"nonexistent global variable '{name}'"):
            c.eval(f"return {name}", 0)


def test_script_kill_reaches_a_script_that_catches_errors(start_percore):
    percore = start_percore("--busy-reply-threshold", "100", threads=1)
    r = redis.Redis(port=percore.port, socket_timeout=10)
    script = b"local f = function() while 1 do redis.call('ping') end end while 1 do pcall(f) end"
    busy, t, answer = start_busy(percore.port, b"EVAL \"" + script + b"\" 0\r\n")
    wait_until(lambda: busy_error(r) is not None, timeout=15, what="BUSY after the threshold")
    assert r.script_kill()
    t.join(timeout=10)
    assert answer and b"Script killed by user" in answer[0], answer
    assert r.ping()
    busy.close()


def test_sha1hex_checks_its_arguments_as_redis(percore, reference):
    for script in ("return redis.sha1hex()", "return redis.sha1hex(1, 2)", "return redis.sha1hex(12)", "return redis.sha1hex('')"):
        answers = []
        for server in (percore, reference):
            try:
                answers.append(server.client().eval(script, 0))
            except redis.exceptions.ResponseError as e:
                answers.append(str(e))
        assert answers[0] == answers[1], script


OOM_SCRIPTS = [
    # Without flags: reads go on, the first write is refused.
    ("redis.call('set', KEYS[1], 1) return 1", 1),
    ("return redis.call('get', KEYS[1])", 1),
    ("redis.call('get', KEYS[1]) redis.call('set', KEYS[1], 2) return 1", 1),
    # With flags: judged at the gate, unless allow-oom or no-writes.
    ("#!lua flags=\nreturn 1", 0),
    ("#!lua flags=allow-oom\nredis.call('set', KEYS[1], 3) return 1", 1),
    ("#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])", 1),
    # A refused command's error returned as the reply counts once.
    ("return redis.pcall('set', KEYS[1], 4)", 1),
]


def test_scripts_over_maxmemory_as_redis(start_percore, reference):
    answers = []
    for server in (start_percore(), reference):
        c = server.client()
        c.set("x", "123")
        c.config_resetstat()
        c.config_set("maxmemory", "1")
        got = []
        try:
            for body, numkeys in OOM_SCRIPTS:
                try:
                    got.append(c.eval(body, numkeys, *["x"][:numkeys]))
                except redis.ResponseError as e:
                    got.append(str(e).split(" script:")[0])
        finally:
            c.config_set("maxmemory", "0")
        got.append(c.get("x"))
        # A command a script was refused counts as rejected, once.
        stats = c.info("commandstats")
        got.append({k: (v["calls"], v["rejected_calls"], v["failed_calls"]) for k, v in stats.items() if k.endswith(("_set", "_get", "_eval"))})
        got.append(c.info("errorstats"))
        answers.append(got)
    assert answers[0] == answers[1]
    assert answers[0][0].startswith("command not allowed when used memory")


# Each runs alone on a fresh connection; keys are declared, so a script
# runs where its key lives.
SCRIPT_CASES = [
    ("return redis.error_reply('')", []),
    ("return redis.error_reply('MY_CODE custom msg')", []),
    ("return redis.error_reply('-x y')", []),
    ("return redis.error_reply(5)", []),
    ("return {err = 'plain'}", []),
    ("return redis.pcall('select', 99)", []),
    ("return redis.call('select', 99)", []),
    ("local t = redis.pcall('select', 99) return {err = t.err}", []),
    # (Arrays and one-key objects: the order of an object's keys is the
    # interpreter's table order, which differs between Lua builds.)
    ("return cjson.encode({'x/y', {1, 2, nil, 4}, 1/3, 123456789012345, {}, '\\1', {k = true}})", []),
    ("return cjson.encode({[1] = 1, [20] = 2})", []),
    ("return cjson.encode({0/0})", []),
    ("cjson.encode_max_depth(1) local ok = pcall(cjson.encode, {{1}}) cjson.encode_max_depth(1000) return ok", []),
    ("cjson.decode_max_depth(2) local ok, e = pcall(cjson.decode, '[[[1]]]') cjson.decode_max_depth(1000) return e", []),
    ("return cjson.decode('{\"a\":[1,2,{\"b\":null}]}').a[2]", []),
    ("local p = cjson.encode_number_precision(3) local s = cjson.encode({1/3}) cjson.encode_number_precision(14) return {p, s}", []),
    ("local m = {} for i = 1, 30000 do m[tostring(i)] = i end return #cmsgpack.pack(m)", []),
    ("#!lua\nreturn 1", []),
    ("#!nolua\nreturn 1", []),
    ("#!lua flags=no-writes,bad\nreturn 1", []),
    ("#!lua opt=1\nreturn 1", []),
    ("#!lua", []),
    ("return redis.call('sort', KEYS[1], 'by', 'nosort')", ["{s}"]),
    ("return redis.call('xread', 'block', '0', 'streams', KEYS[1], '$')", ["{s}x"]),
    ("redis.call('set', KEYS[1], 0.1) return redis.call('get', KEYS[1])", ["{s}n"]),
]


def test_script_libraries_and_errors_as_redis(start_percore, reference):
    answers = []
    for server in (start_percore(), reference):
        c = server.client()
        c.sadd("{s}", *"b a c aa azz z".split())
        c.execute_command("CONFIG", "RESETSTAT")
        got = []
        for body, keys in SCRIPT_CASES:
            try:
                got.append(c.eval(body, len(keys), *keys))
            except redis.ResponseError as e:
                got.append(("error", str(e).split(" script:")[0]))
        got.append({k: v for k, v in c.info("errorstats").items()})
        got.append(c.info("stats")["total_error_replies"])
        answers.append(got)
    for case, a, b in zip(SCRIPT_CASES + [("errorstats", 0), ("total", 0)], *answers):
        assert a == b, case


# Commands a script calls that are refused before they run, by call and
# by pcall (then caught): (eval command, body, keys).
REFUSED_CALLS = [
    ("EVAL_RO", "return redis.call('set', KEYS[1], 'y')", ["x"]),
    ("EVAL_RO", "local t = redis.pcall('set', KEYS[1], 'y') return t['err']", ["x"]),
    ("EVAL", "return redis.call('get')", []),
    ("EVAL", "return redis.pcall('get')", []),
    ("EVAL", "return redis.call('nosuchcommand')", []),
    ("EVAL", "local t = redis.pcall('nosuchcommand') return t['err']", []),
    ("EVAL", "return redis.call('multi')", []),
    ("EVAL", "return redis.call('set', {})", []),
    ("EVAL", "return redis.call('lpush', KEYS[1], 'a')", ["x"]),
]


def test_refused_script_calls_count_once_as_redis(start_percore, reference):
    """A command refused inside a script (read-only script, unknown, bad
    arity, not allowed from scripts) counts as one error reply, and as the
    command's rejected call, when it is refused, as Redis's scriptCall
    counts it; the script's own error reply is not counted again."""
    answers = []
    for server in (start_percore(), reference):
        c = server.client()
        c.set("x", "string")
        got = []
        for command, body, keys in REFUSED_CALLS:
            c.config_resetstat()
            try:
                got.append(c.execute_command(command, body, len(keys), *keys))
            except redis.ResponseError as e:
                got.append(("error", str(e).split(" script:")[0]))
            stats = c.info("commandstats")
            got.append({k: (v["calls"], v["rejected_calls"], v["failed_calls"]) for k, v in stats.items()})
            got.append(c.info("errorstats"))
            got.append(c.info("stats")["total_error_replies"])
        answers.append(got)
    for i, case in enumerate(REFUSED_CALLS):
        assert answers[0][4 * i:4 * i + 4] == answers[1][4 * i:4 * i + 4], case


# Library bodies FUNCTION LOAD refuses, each for its own reason: a load
# sees only the library API (redis.register_function, log, constants).
REFUSED_LIBRARIES = [
    "redis.register_function()",
    "redis.register_function('f1')",
    "redis.register_function(nil, function() return 1 end)",
    "redis.register_function('f1', 'x')",
    "redis.register_function('f1', function() return 1 end, {}, 'description', 'extra')",
    "redis.register_function('', function() return 1 end)",
    "redis.register_function('f1', function() return 1 end) redis.register_function('f1', function() return 1 end)",
    "redis.register_function{function_name='f1', callback=5}",
    "redis.register_function{function_name='f1', callback=function() return 1 end, foo=1}",
    "redis.register_function{callback=function() return 1 end}",
    "redis.register_function{function_name='f1'}",
    "redis.register_function{function_name='f1', callback=function() return 1 end, flags={'no-writes', 'bad'}}",
    "redis.register_function{function_name='f1', callback=function() return 1 end, flags='no-writes'}",
    "return math.random()",
    "return redis.call('ping')",
    "redis.redis.call('ping')",
    "error('boom')",
    "a = 1",
    "local a = 1 while 1 do a = a + 1 end",
    "return redis.REDIS_VERSION",
]


def test_function_load_checks_libraries_as_redis(start_percore, reference):
    library = (
        "#!lua name=lib\n"
        "redis.register_function('Hello', function() return redis.REDIS_VERSION_NUM end)\n"
        "redis.register_function('inner', function() redis.register_function('x', function() end) end)\n"
        "redis.register_function{function_name='ro', description='reads', flags={'NO-WRITES'},\n"
        "  callback=function() return redis.REDIS_VERSION end}\n"
    )
    answers = []
    for server in (start_percore(), reference):
        c = server.client()
        got = []
        for body in REFUSED_LIBRARIES:
            try:
                got.append(c.function_load(f"#!lua name=bad\n{body}"))
            except redis.ResponseError as e:
                got.append(("error", str(e)))
        got.append(c.function_load(library))
        for call in (["FCALL", "HELLO", 0], ["FCALL", "hello", "x"], ["FCALL", "nosuch", 0], ["FCALL", "inner", 0],
                     ["FCALL_RO", "Ro", 0], ["FUNCTION", "LOAD", "a", "b", "c"],
                     ["FUNCTION", "LOAD", "replace", "REPLACE", library], ["FUNCTION", "LIST"]):
            try:
                got.append(c.execute_command(*call))
            except redis.ResponseError as e:
                got.append(("error", str(e).split(" script:")[0]))
        # (FUNCTION LIST gives a library's functions in hash order.)
        for lib in got[-1]:
            lib[b"functions"].sort(key=lambda f: f[b"name"])
        answers.append(got)
    for case, a, b in zip(REFUSED_LIBRARIES + ["load", "calls"], *answers):
        assert a == b, case
    assert answers[0] == answers[1]


def test_script_flush_resets_the_interpreters(start_percore):
    c = start_percore().client()
    c.set("x", 0)
    for _ in range(2000):
        c.eval("local t = {} for i = 1, 50 do t[i] = tostring(i) end return redis.call('incr', KEYS[1])", 1, "x")
    c.eval("local big = {} for i = 1, 200000 do big[i] = i end return 1", 1, "x")
    before = c.info("memory")["used_memory_lua"]
    c.script_flush()
    c.eval("return 1", 1, "x")
    # A fresh interpreter holds only its setup.
    assert c.info("memory")["used_memory_lua"] < min(before, 1024 * 1024)


def test_scripts_may_touch_keys_they_did_not_declare(start_percore, reference):
    """As Redis outside cluster mode: keys on any core, without KEYS."""
    body = (
        "redis.call('set', 'u1', 1) redis.call('incr', 'u2') redis.call('rpush', 'u3', 'x') "
        "return {redis.call('mget', 'u1', 'u2', 'u4'), redis.call('llen', 'u3'), redis.call('exists', 'u1', 'u2', 'u3')}"
    )
    answers = []
    for server in (start_percore(threads=SHARDS), reference):
        c = server.client()
        answers.append([c.eval(body, 0), c.eval(body, 0), c.mget("u1", "u2", "u3")])
    assert answers[0] == answers[1]


def test_undeclared_keys_stay_atomic_under_concurrent_scripts(start_percore):
    """Scripts that take undeclared keys on other cores, from many clients
    at once: every increment lands, each script sees its pair move
    together, and no script waits forever."""
    server = start_percore(threads=SHARDS)
    keys = keys_on_distinct_shards(SHARDS)
    body = (
        "local a = redis.call('incr', ARGV[1]) local b = redis.call('incr', ARGV[2]) "
        "if a ~= b then return redis.error_reply('torn ' .. a .. ' ' .. b) end return a"
    )
    errors, done = [], []

    def worker(n):
        c = server.client()
        for _ in range(n):
            try:
                c.eval(body, 0, keys[1], keys[2])
                done.append(1)
            except redis.ResponseError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=worker, args=(150,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    c = server.client()
    assert not [e for e in errors if "torn" in e], errors[:3]
    assert int(c.get(keys[1])) == int(c.get(keys[2])) == len(done)
    assert len(done) > 0


def test_a_script_or_transaction_runs_at_one_time(start_percore, reference):
    """Redis holds the clock for a whole script or EXEC: a key set to
    expire in 1 ms inside it still exists at its end, wherever the key
    lives, and is gone after it."""
    keys = keys_on_distinct_shards(2, prefix="clock")
    script = """
        for _, k in ipairs(KEYS) do redis.call('SET', k, 'v', 'PX', 1) end
        redis.call('DEBUG', 'SLEEP', 0.01)
        local seen = {}
        for _, k in ipairs(KEYS) do seen[#seen + 1] = redis.call('EXISTS', k) end
        return seen
    """

    def run(server):
        c = server.client()
        c.execute_command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1")
        in_script = c.eval(script, 2, *keys)
        after_script = [c.exists(k) for k in keys]
        pipe = c.pipeline(transaction=True)
        for k in keys:
            pipe.set(k, "v", px=1)
        pipe.execute_command("DEBUG", "SLEEP", "0.01")
        for k in keys:
            pipe.exists(k)
        in_exec = pipe.execute()[-2:]
        return in_script, after_script, in_exec, [c.exists(k) for k in keys]

    percore = start_percore("--enable-debug-command", "yes")
    assert run(percore) == run(reference) == ([1, 1], [0, 0], [1, 1], [0, 0])


LIBRARY_HEADERS = [
    "#! name=test",
    "#!lua name=foo name=bar",
    '#!lua name="foo"',
    "#!lua NAME=upper",
    "#!lua name=test foo=bar",
    "#!lua",
    "#!nosuchengine name=x",
    "#!lua name=bad-name",
    "no metadata",
]


def test_function_metadata_listing_memory_and_reload_as_redis(start_percore, reference):
    """Library headers are read as Redis reads them (quotes, repeated or
    unknown fields, engine checked last); FUNCTION LIST's arguments; FUNCTION
    LOAD is refused over maxmemory; DEBUG RELOAD NOFLUSH fails on a library
    that is already loaded unless MERGE."""
    answers = []
    for server in (start_percore("--dbfilename", "percore.rdb"), reference):
        c = server.client()
        got = []

        def call(*args):
            try:
                reply = c.execute_command(*args)
            except redis.ResponseError as e:
                reply = ("error", str(e))
            # (FUNCTION LIST gives the libraries in hash order.)
            if args[:2] == ("FUNCTION", "LIST") and isinstance(reply, list):
                reply.sort(key=lambda lib: lib[b"library_name"])
            got.append(reply)

        for header in LIBRARY_HEADERS:
            call("FUNCTION", "LOAD", f"{header}\nredis.register_function('f_{len(got)}', function() return 1 end)")
        call("FUNCTION", "LOAD", "#!lua")
        call("FUNCTION", "LIST", "LIBRARYNAME")
        call("FUNCTION", "LIST", "WITHCODE", "WITHCODE")
        call("FUNCTION", "LIST", "LIBRARYNAME", "x", "LIBRARYNAME", "y")
        call("FUNCTION", "LIST", "LIBRARYNAME", "FO*")
        call("DEBUG", "RELOAD", "NOFLUSH")
        call("DEBUG", "RELOAD", "NOFLUSH", "MERGE")
        call("DEBUG", "RELOAD")
        call("FUNCTION", "LIST")
        c.config_set("maxmemory", 1)
        call("FUNCTION", "LOAD", "#!lua name=late\nredis.register_function('late', function() return 1 end)")
        call("FUNCTION", "DELETE", "foo")
        c.config_set("maxmemory", 0)
        answers.append(got)
    assert answers[0] == answers[1]

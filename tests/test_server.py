"""Starting and stopping like redis-server; configuration; auth; clients;
the tools that must work unchanged (redis-cli, redis-benchmark)."""

import os
import signal
import socket
import subprocess

import pytest
import redis

from conftest import PERCORE, free_port, wait_until


def run_percore(*args, timeout=10):
    return subprocess.run([PERCORE, *args], capture_output=True, timeout=timeout)


def test_refuses_a_port_already_taken(percore):
    out = run_percore("--port", str(percore.port), "--bind", "127.0.0.1", "--threads", "1")
    assert out.returncode != 0
    assert b"Address already in use" in out.stdout + out.stderr
    assert percore.ping()


def test_bad_config_names_file_and_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("port 7777\n# comment\nnot-a-directive yes\n")
    out = run_percore(str(conf))
    assert out.returncode != 0
    err = out.stderr.decode()
    assert str(conf) in err and "line 3" in err and "not-a-directive" in err
    conf.write_text("maxclients many\n")
    out = run_percore(str(conf))
    assert out.returncode != 0 and b"line 1" in out.stderr


def test_config_file_and_overrides(start_percore, tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("maxclients 123\ntimeout 0\nrequirepass fromfile\n")
    percore = start_percore("--requirepass", "", config_file=conf)
    c = percore.client()
    assert c.config_get("maxclients") == {"maxclients": "123"}
    assert c.config_get("requirepass") == {"requirepass": ""}
    assert c.info("server")["config_file"] == str(conf)


def test_sigterm_shuts_down_cleanly(start_percore):
    percore = start_percore()
    # Clients may connect (and get -LOADING) before this line is logged.
    wait_until(lambda: "Ready to accept connections" in percore.output(), what="the ready line")
    os.kill(percore.pid, signal.SIGTERM)
    assert percore.proc.wait(timeout=10) == 0
    log = percore.output()
    assert "Received SIGTERM scheduling shutdown..." in log
    assert "ready to exit, bye bye" in log


def test_shutdown_command(start_percore):
    percore = start_percore()
    percore.client().shutdown(nosave=True)
    assert percore.proc.wait(timeout=10) == 0
    assert "ready to exit, bye bye" in percore.output()


def test_requirepass(start_percore):
    percore = start_percore("--requirepass", "s3cret")
    c = percore.client()
    with pytest.raises(redis.AuthenticationError):
        c.get("x")
    with pytest.raises(redis.AuthenticationError):
        percore.client(password="wrong").ping()
    ok = percore.client(password="s3cret")
    assert ok.set("x", "1") and ok.get("x") == b"1"
    ok3 = percore.client(password="s3cret", protocol=3)
    assert ok3.get("x") == b"1"
    raw = socket.create_connection(("127.0.0.1", percore.port))
    raw.sendall(b"PING\r\n")
    assert raw.recv(100) == b"-NOAUTH Authentication required.\r\n"


def test_config_set_takes_effect(percore):
    c = percore.client()
    assert c.config_set("maxclients", 2)
    extra = [percore.client() for _ in range(3)]
    errors = 0
    for e in extra:
        try:
            e.ping()
        except redis.ConnectionError:
            errors += 1
    assert errors >= 1
    assert c.config_set("maxclients", 10000)
    with pytest.raises(redis.ResponseError, match="immutable"):
        c.config_set("databases", 4)


def test_client_list_kill_and_names(start_percore):
    percore = start_percore(threads=2)
    a, b = percore.client(), percore.client()
    a.client_setname("alpha")
    b.client_setname("beta")
    names = {cl["name"] for cl in a.client_list()}
    assert {"alpha", "beta"} <= names
    b_id = b.client_id()
    assert a.client_kill_filter(_id=b_id) == 1
    wait_until(lambda: all(cl["name"] != "beta" for cl in a.client_list()), what="killed client gone")
    assert a.client_getname() == "alpha"


def test_idle_timeout(start_percore):
    percore = start_percore("--timeout", "1")
    s = socket.create_connection(("127.0.0.1", percore.port))
    s.settimeout(5)
    assert s.recv(10) == b""


def test_info_sections(percore):
    c = percore.client()
    c.set("a", 1)
    c.set("b", 2, ex=100)
    info = c.info()
    for field in ["redis_version", "connected_clients", "used_memory", "total_commands_processed", "keyspace_hits", "role", "used_cpu_sys"]:
        assert field in info, field
    assert info["db0"]["keys"] == 2 and info["db0"]["expires"] == 1
    assert set(c.info("clients")) >= {"connected_clients", "maxclients"}


def test_redis_cli_works_unchanged(percore):
    assert percore.cli("PING").strip() == "PONG"
    assert percore.cli("SET", "cli", "value").strip() == "OK"
    assert percore.cli("GET", "cli").strip() == "value"
    assert percore.cli("--no-raw", "GET", "missing").strip() == "(nil)"
    out = percore.cli(input=b"SET a 1\nINCR a\nGET a\n")
    assert out.split() == ["OK", "2", "2"]
    assert "redis_version" in percore.cli("INFO", "server")
    scanned = percore.cli("--scan").split()
    assert sorted(scanned) == ["a", "cli"]


def test_redis_benchmark_runs_against_it(start_percore):
    percore = start_percore(threads=2)
    out = subprocess.run(
        ["redis-benchmark", "-p", str(percore.port), "-n", "20000", "-c", "20", "-P", "8", "-t", "set,get,incr,mset", "-q"],
        capture_output=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    for test in ["SET", "GET", "INCR", "MSET"]:
        assert test in text
    c = percore.client()
    assert int(c.get("counter:__rand_int__")) == 20000


def test_monitor_shows_commands_from_every_shard(start_percore):
    import re

    from slots import keys_on_distinct_shards
    server = start_percore(threads=2)
    k0, k1 = keys_on_distinct_shards(2, prefix="mon")
    mon = server.client(socket_timeout=5)
    conn = mon.connection_pool.get_connection()
    conn.send_command("MONITOR")
    assert conn.read_response() in (b"OK", "OK")
    c = server.client()
    c.set(k0, "a b")
    c.get(k1)
    c.eval("return redis.call('get', KEYS[1])", 1, k0)
    lines = []
    while not any("[0 lua]" in line for line in lines):
        reply = conn.read_response()
        lines.append(reply.decode() if isinstance(reply, bytes) else reply)
        assert len(lines) < 20, lines
    ours = [line for line in lines if "HELLO" not in line and "CLIENT" not in line]
    # Arguments as the client sent them (redis-py upper-cases names).
    assert re.fullmatch(r'\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] "SET" "%s" "a b"' % k0, ours[0]), ours
    assert ours[1].endswith(f'"GET" "{k1}"'), ours
    assert '"EVAL"' in ours[2], ours
    assert re.search(r'\[0 lua\] "get" "%s"' % k0, ours[3]), ours

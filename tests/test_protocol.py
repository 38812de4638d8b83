"""The wire protocol: inline commands, pipelining, RESP3, limits and
protocol errors (error reply, then the connection closes; nothing else is
harmed)."""

import socket
import time

import redis

from resp import Conn, encode


def read_all(sock, timeout=5.0):
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def test_inline_commands(percore):
    c = Conn(percore.port)
    c.send_raw(b"SET greeting \"hello world\"\r\nGET greeting\r\nPING\n\r\n")
    assert c.read()[1] == "OK"
    assert c.read()[1] == b"hello world"
    assert c.read()[1] == "PONG"


def test_deep_pipeline_keeps_order_across_shards(start_percore):
    percore = start_percore(threads=4)
    c = Conn(percore.port)
    n = 2000
    c.send_raw(b"".join(encode(("SET", f"key:{i}", str(i))) for i in range(n)) + b"".join(encode(("GET", f"key:{i}")) for i in range(n)))
    for _ in range(n):
        assert c.read()[1] == "OK"
    for i in range(n):
        assert c.read()[1] == str(i).encode()


def test_resp3_shapes(percore):
    c = Conn(percore.port)
    raw, hello = c.call("HELLO", "3")
    assert raw.startswith(b"%7\r\n")
    assert c.call("GET", "missing")[0] == b"_\r\n"
    raw, _ = c.call("CONFIG", "GET", "maxclients")
    assert raw == b"%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"
    raw, _ = c.call("CLIENT", "INFO")
    assert raw.startswith(b"=")


def expect_protocol_error(port, payload, message):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(payload)
    data, closed = read_all(s)
    assert data == b"-ERR Protocol error: " + message + b"\r\n"
    assert closed, "connection must be closed after a protocol error"


def test_protocol_errors_close_only_that_connection(percore):
    bystander = percore.client()
    bystander.set("k", "v")
    expect_protocol_error(percore.port, b"*abc\r\n", b"invalid multibulk length")
    expect_protocol_error(percore.port, b"*1\r\n+PING\r\n", b"expected '$', got '+'")
    expect_protocol_error(percore.port, b"*1\r\n$-3\r\n", b"invalid bulk length")
    expect_protocol_error(percore.port, b"SET k \"unterminated\r\n", b"unbalanced quotes in request")
    expect_protocol_error(percore.port, b"x" * (64 * 1024 + 10), b"too big inline request")
    assert bystander.get("k") == b"v"


def test_bulk_over_proto_max_bulk_len_is_refused_before_allocation(percore):
    admin = percore.client()
    admin.config_set("proto-max-bulk-len", "1mb")
    before = int(admin.info("memory")["used_memory"])
    expect_protocol_error(percore.port, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n", b"invalid bulk length")
    # A client claiming a huge (allowed) bulk and sending nothing gets no
    # buffer of that size.
    admin.config_set("proto-max-bulk-len", "512mb")
    s = socket.create_connection(("127.0.0.1", percore.port))
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\nabc")
    time.sleep(0.2)
    after = int(admin.info("memory")["used_memory"])
    assert after - before < 50_000_000, (before, after)
    s.close()
    assert admin.ping()


def test_query_buffer_limit_closes_the_client(percore):
    admin = percore.client()
    admin.config_set("client-query-buffer-limit", "1mb")
    s = socket.create_connection(("127.0.0.1", percore.port))
    try:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n" + b"x" * 2_000_000)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data, closed = read_all(s)
    assert closed
    assert admin.ping()


def test_unauthenticated_clients_get_small_limits(start_percore):
    percore = start_percore("--requirepass", "secret")
    expect_protocol_error(percore.port, b"*20\r\n", b"unauthenticated multibulk length")
    expect_protocol_error(percore.port, b"*2\r\n$4\r\nAUTH\r\n$20000\r\n", b"unauthenticated bulk length")


def test_large_values_arriving_in_pieces(percore):
    c = percore.client()
    big = b"v" * (8 * 1024 * 1024 + 3)
    c.set("big", big)
    assert c.get("big") == big
    assert c.strlen("big") == len(big)
    s = Conn(percore.port)
    payload = encode(("SET", "slow", "abc" * 10000))
    for i in range(0, len(payload), 777):
        s.send_raw(payload[i:i + 777])
    assert s.read()[1] == "OK"
    assert c.get("slow") == b"abc" * 10000


def test_quit_and_client_reply(percore):
    c = Conn(percore.port)
    c.send_raw(encode(("CLIENT", "REPLY", "OFF")) + encode(("SET", "a", "1")) + encode(("CLIENT", "REPLY", "ON")))
    assert c.read()[1] == "OK"
    c.send_raw(encode(("CLIENT", "REPLY", "SKIP")) + encode(("GET", "a")) + encode(("GET", "a")))
    assert c.read()[1] == b"1"
    c.send_raw(encode(("QUIT",)))
    assert c.read()[1] == "OK"
    data, closed = read_all(c.sock)
    assert closed and data == b""


def test_redis_py_resp3_client(percore):
    c = redis.Redis(port=percore.port, protocol=3)
    c.set("x", "1")
    assert c.get("x") == b"1"
    assert c.config_get("maxclients") == {"maxclients": "10000"}

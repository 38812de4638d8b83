"""Fixtures that start real servers on free loopback ports.

Every server is started by a test, bound to 127.0.0.1 on a port the test
chose free, and stopped by its PID when the test ends, pass or fail.
"""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERCORE = os.environ.get("PERCORE_BIN", os.path.join(ROOT, "target", "release", "percore"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blocked_count(c):
    """How many clients the server counts as blocked."""
    return c.info("clients")["blocked_clients"]


def in_thread(fn):
    """Runs `fn` in a thread; returns the thread and a dict that gets its
    "value" or "error"."""
    result = {}

    def run():
        try:
            result["value"] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, result


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Server:
    def __init__(self, argv, port, log_path):
        self.port = port
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def ping(self):
        """True once the server answers PING (NOAUTH counts as an answer)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
                return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
        except OSError:
            return False

    def wait_ready(self):
        wait_until(self.ping, what=f"server on port {self.port}")
        return self

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def cli(self, *args, input=None):
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True,
            input=input,
            timeout=30,
        )
        return out.stdout.decode()

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def start_percore(tmp_path):
    """Starts percore with extra `--name value` arguments."""
    servers = []

    def start(*args, threads=2, config_file=None, wait=True):
        port = free_port()
        argv = [PERCORE]
        if config_file:
            argv.append(str(config_file))
        argv += ["--port", str(port), "--bind", "127.0.0.1", "--threads", str(threads)]
        # Snapshot files (dump.rdb) go to the test's own directory.
        if "--dir" not in map(str, args):
            argv += ["--dir", str(tmp_path)]
        argv += [*map(str, args)]
        server = Server(argv, port, tmp_path / f"percore-{port}.log")
        servers.append(server)
        return server.wait_ready() if wait else server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def percore(start_percore):
    return start_percore()


@pytest.fixture
def start_redis(tmp_path):
    servers = []

    def start(*args):
        port = free_port()
        argv = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(tmp_path), "--enable-debug-command", "local", *map(str, args),
        ]
        server = Server(argv, port, tmp_path / f"redis-{port}.log")
        servers.append(server)
        return server.wait_ready()

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def reference(start_redis):
    return start_redis()

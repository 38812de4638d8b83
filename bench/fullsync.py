#!/usr/bin/env python3
"""Full sync: time for a fresh replica to take a master's dataset,
diskless, percore against redis-server on the same machine.

For each round and each kind (alternating): a master loaded with `--keys`
values of `--value-size` bytes, a fresh replica of the same kind, REPLICAOF,
and the time until the replica's link is up with the master's offset. The
master runs with `--threads` shards (percore) or as itself (redis-server,
which forks one child). The table shows medians and the ratio.

  bench/fullsync.py                              # 1M keys of 100 bytes
  bench/fullsync.py --keys 10000000 --rounds 3   # the issue's 1 GB
"""

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind, binary, workdir, name, threads):
    port = free_port()
    d = os.path.join(workdir, name)
    os.makedirs(d)
    common = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", d,
              "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", "--repl-diskless-load", "on-empty-db"]
    argv = ["redis-server", *common, "--appendonly", "no"] if kind == "redis" else [binary, *common, "--threads", str(threads)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{kind} exited early")
        try:
            if client.ping():
                return port, proc, client
        except redis.ConnectionError:
            time.sleep(0.05)
    sys.exit(f"{kind} did not start")


def load(port, keys, size):
    v = b"v" * size
    chunk = 200_000
    for first in range(0, keys, chunk):
        body = io.BytesIO()
        for i in range(first, min(keys, first + chunk)):
            k = b"key:%012d" % i
            body.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
        out = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=body.getvalue(), capture_output=True)
        if out.returncode != 0 or b"errors: 0" not in out.stdout:
            sys.exit(f"loading failed: {out.stdout!r} {out.stderr!r}")


def synced(master, replica):
    info = replica.info("replication")
    return info.get("master_link_status") == "up" and info["slave_repl_offset"] == master.info("replication")[
        "master_repl_offset"
    ]


def one_sync(kind, args, workdir, n):
    servers = []
    try:
        m = start(kind, args.percore, workdir, f"{kind}-m{n}", args.threads)
        servers.append(m)
        load(m[0], args.keys, args.value_size)
        r = start(kind, args.percore, workdir, f"{kind}-r{n}", args.threads)
        servers.append(r)
        began = time.monotonic()
        r[2].execute_command("REPLICAOF", "127.0.0.1", m[0])
        while not synced(m[2], r[2]):
            time.sleep(0.01)
        took = time.monotonic() - began
        if r[2].dbsize() != args.keys:
            sys.exit(f"{kind}: the replica has {r[2].dbsize()} keys, not {args.keys}")
        return took
    finally:
        for _, proc, _ in servers:
            proc.kill()
            proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--percore", default=os.path.join(ROOT, "target", "release", "percore"))
    args = p.parse_args()
    times = {"redis": [], "percore": []}
    with tempfile.TemporaryDirectory() as workdir:
        for n in range(args.rounds):
            for kind in ("redis", "percore"):
                times[kind].append(one_sync(kind, args, workdir, n))
            print(f"round {n + 1}/{args.rounds}: redis {times['redis'][-1]:.2f}s percore {times['percore'][-1]:.2f}s",
                  file=sys.stderr)
    r, c = statistics.median(times["redis"]), statistics.median(times["percore"])
    print(f"{'keys':>10} {'value':>6} {'redis s':>8} {'percore s':>10} {'speedup':>8}")
    print(f"{args.keys:>10} {args.value_size:>6} {r:>8.2f} {c:>10.2f} {r / c:>8.2f}")


if __name__ == "__main__":
    main()

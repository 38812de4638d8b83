#!/usr/bin/env python3
"""Memory per key: percore against redis-server.

Loads the same datasets into both servers (percore with --threads 1) and
reports used_memory growth (INFO memory) and RSS growth per key, and the
ratio percore/redis. Each dataset is loaded into freshly started servers.

  bench/memory.py                 # default sizes
  bench/memory.py --scale 0.1     # a tenth of them, for a quick look
  bench/memory.py --only small    # the datasets whose name contains "small"
"""

import argparse
import os
import socket
import subprocess
import sys
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind, binary):
    port = free_port()
    if kind == "redis":
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    else:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--threads", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            client.ping()
            return proc, client
        except redis.ConnectionError:
            time.sleep(0.05)
    sys.exit(f"{kind} did not start")


def memory(c):
    info = c.info("memory")
    return int(info["used_memory"]), int(info["used_memory_rss"])


def load(c, commands):
    pipe = c.pipeline(transaction=False)
    for i, cmd in enumerate(commands):
        pipe.execute_command(*cmd)
        if i % 10000 == 9999:
            pipe.execute()
    pipe.execute()


def datasets(scale):
    n = lambda x: max(1, int(x * scale))
    small = n(100_000)
    big = n(100_000)
    return [
        ("strings", n(1_000_000), lambda k: [("SET", f"key:{i}", f"value:{i}") for i in range(k)]),
        ("int strings", n(1_000_000), lambda k: [("SET", f"counter:{i}", i) for i in range(k)]),
        ("small hashes (5 fields)", small, lambda k: [("HSET", f"h:{i}", *[x for f in range(5) for x in (f"field{f}", f"v{i}")]) for i in range(k)]),
        ("small sets (5 members)", small, lambda k: [("SADD", f"s:{i}", *[f"member{m}:{i}" for m in range(5)]) for i in range(k)]),
        ("small int sets (5)", small, lambda k: [("SADD", f"is:{i}", *range(i, i + 5)) for i in range(k)]),
        ("small zsets (5 members)", small, lambda k: [("ZADD", f"z:{i}", *[x for m in range(5) for x in (m, f"member{m}")]) for i in range(k)]),
        ("small lists (5 items)", small, lambda k: [("RPUSH", f"l:{i}", *[f"item{m}" for m in range(5)]) for i in range(k)]),
        ("1 hash, many fields", big, lambda k: [("HSET", "bighash", f"field:{i}", f"value:{i}") for i in range(k)]),
        ("1 set, many members", big, lambda k: [("SADD", "bigset", f"member:{i}") for i in range(k)]),
        ("1 zset, many members", big, lambda k: [("ZADD", "bigzset", i, f"member:{i}") for i in range(k)]),
        ("1 list, many items", big, lambda k: [("RPUSH", "biglist", f"item:{i}") for i in range(k)]),
        ("1 stream, many entries", big, lambda k: [("XADD", "bigstream", f"{i + 1}-0", "sensor", f"s{i % 100}", "value", i) for i in range(k)]),
        ("small streams (5 entries)", small, lambda k: [("XADD", f"x:{i}", f"{e + 1}-0", "f", f"v{e}") for i in range(k) for e in range(5)]),
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--only", default="", help="run the datasets whose name contains this")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "percore"))
    args = p.parse_args()
    rows = []
    for name, count, make in datasets(args.scale):
        if args.only not in name:
            continue
        result = {}
        # A fresh server per dataset: what an earlier dataset freed may sit
        # in allocator caches and blur the next baseline.
        for kind in ("redis", "percore"):
            proc, c = start(kind, args.binary)
            try:
                used0, rss0 = memory(c)
                load(c, make(count))
                used1, rss1 = memory(c)
                result[kind] = ((used1 - used0) / count, (rss1 - rss0) / count)
            finally:
                proc.kill()
                proc.wait()
        rows.append((name, count, result))
        print(f"{name} done", file=sys.stderr)
    unit = "bytes per key (bytes per field/member/item for the single big keys)"
    print(f"{'dataset':<26}{'n':>9}{'redis used':>12}{'pc used':>10}{'ratio':>7}{'redis rss':>11}{'pc rss':>9}   {unit}")
    for name, count, r in rows:
        (ru, rr), (pu, pr) = r["redis"], r["percore"]
        print(f"{name:<26}{count:>9}{ru:>12.1f}{pu:>10.1f}{pu / ru:>7.2f}{rr:>11.1f}{pr:>9.1f}")


if __name__ == "__main__":
    main()

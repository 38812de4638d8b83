#!/usr/bin/env python3
"""Many clients writing the same keys across shards: percore against
redis-server.

Every client sends MSET on the same two keys, which live on different
percore shards, so each MSET is a cross-shard transaction queueing for the
same key locks (redis-server, single-threaded, has no locks to queue
for). Rounds alternate between the servers; the table shows medians of
redis-benchmark's requests per second, their ratio, and p99 latency. Run
percore with as many shards as the machine has cores (the default).

  bench/contention.py                          # defaults below
  bench/contention.py --clients 2000 --rounds 5
"""

import argparse
import csv
import io
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from slots import keys_on_distinct_shards  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind, binary):
    port = free_port()
    common = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxclients", "20000"]
    argv = ["redis-server", *common] if kind == "redis" else [binary, *common]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{kind} exited early")
        ping = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True)
        if ping.stdout.strip() == "PONG":
            return port, proc
        time.sleep(0.05)
    sys.exit(f"{kind} did not start")


def run(port, keys, args):
    a, b = keys
    cmd = [
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(args.clients), "-P", str(args.pipeline),
        "-n", str(args.requests), "--csv", "MSET", a, "x", b, "y",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        sys.exit(f"redis-benchmark failed: {out.stderr}")
    row = list(csv.DictReader(io.StringIO(out.stdout)))[-1]
    return float(row["rps"]), float(row["p99_latency_ms"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "percore"))
    ap.add_argument("--shards", type=int, default=os.cpu_count(), help="percore's shard count (keys are chosen for it)")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    keys = keys_on_distinct_shards(max(args.shards, 2), prefix="contended")[:2]
    results = {"redis": [], "percore": []}
    for _ in range(args.rounds):
        for kind in ("redis", "percore"):
            port, proc = start(kind, args.binary)
            try:
                results[kind].append(run(port, keys, args))
            finally:
                proc.kill()
                proc.wait()
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in results.items()}
    print(f"MSET {keys[0]} {keys[1]}: {args.clients} clients, pipeline {args.pipeline}, {args.rounds} rounds")
    print(f"{'server':<10}{'rps':>12}{'p99 ms':>10}")
    for kind, (rps, p99) in med.items():
        print(f"{kind:<10}{rps:>12.0f}{p99:>10.2f}")
    print(f"ratio percore/redis: {med['percore'][0] / med['redis'][0]:.2f}")


if __name__ == "__main__":
    main()

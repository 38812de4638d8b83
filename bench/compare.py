#!/usr/bin/env python3
"""Throughput comparison: percore against redis-server on the same machine.

Both servers run on free loopback ports, pinned to one core (percore with
--threads 1); redis-benchmark runs pinned to another. Tests alternate
between the servers, several rounds; the table shows medians: requests per
second of both and their ratio, both p99 latencies, and whole-machine CPU
time per request (busy jiffies of /proc/stat over the run / requests).

  bench/compare.py                      # defaults below
  bench/compare.py --rounds 5 --tests set,get --pipelines 1,16
  bench/compare.py --aof always         # both with appendonly yes, appendfsync always
"""

import argparse
import csv
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# redis-benchmark -t names and the row label it prints.
TESTS = {
    "set": "SET",
    "get": "GET",
    "incr": "INCR",
    "mset": "MSET (10 keys)",
    "lpush": "LPUSH",
    "rpop": "RPOP",
    "sadd": "SADD",
    "hset": "HSET",
    "zadd": "ZADD",
    "lrange_100": "LRANGE_100 (first 100 elements)",
    "lrange_600": "LRANGE_600 (first 600 elements)",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def busy_jiffies():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle


def wait_ready(port, proc):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server on {port} exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"server on {port} did not start")


def start(kind, server_cpu, binary, aof):
    port = free_port()
    if kind == "redis":
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    else:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--threads", "1"]
    if aof != "off":
        # The same AOF settings on both, in a directory of their own.
        argv += ["--appendonly", "yes", "--appendfsync", aof, "--dir", tempfile.mkdtemp(prefix=f"bench-{kind}-")]
    proc = subprocess.Popen(["taskset", "-c", str(server_cpu), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return port, proc


def run_one(port, test, pipeline, args, bench_cpu):
    requests = args.requests * (4 if pipeline > 1 else 1)
    cmd = [
        "taskset", "-c", str(bench_cpu), "redis-benchmark", "-h", "127.0.0.1", "-p", str(port),
        "-c", str(args.clients), "-n", str(requests), "-P", str(pipeline), "-t", test, "-r", "100000", "--csv",
    ]
    before = busy_jiffies()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    after = busy_jiffies()
    if out.returncode != 0:
        sys.exit(f"redis-benchmark failed: {out.stderr}")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    row = next(r for r in rows if r["test"] == TESTS[test])
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    return {
        "rps": float(row["rps"]),
        "p99": float(row["p99_latency_ms"]),
        "cpu_us": (after - before) * tick_us / requests,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=200000, help="per run at -P 1 (x4 when pipelined)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--tests", default="set,get,incr,mset")
    p.add_argument("--pipelines", default="1,16")
    p.add_argument("--server-cpu", type=int, default=1)
    p.add_argument("--bench-cpu", type=int, default=0)
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "percore"))
    p.add_argument("--aof", choices=["off", "no", "everysec", "always"], default="off",
                   help="appendonly yes with this appendfsync, on both servers")
    args = p.parse_args()

    servers = {kind: start(kind, args.server_cpu, args.binary, args.aof) for kind in ("redis", "percore")}
    results = {}
    try:
        for rnd in range(args.rounds):
            for test in args.tests.split(","):
                for pipeline in map(int, args.pipelines.split(",")):
                    order = ["redis", "percore"] if rnd % 2 == 0 else ["percore", "redis"]
                    for kind in order:
                        r = run_one(servers[kind][0], test, pipeline, args, args.bench_cpu)
                        results.setdefault((test, pipeline, kind), []).append(r)
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for port, proc in servers.values():
            proc.kill()
            proc.wait()

    med = lambda rows, k: statistics.median(r[k] for r in rows)
    print(f"{'test':<16}{'P':>3}{'redis rps':>12}{'percore rps':>13}{'ratio':>7}{'redis p99':>11}{'pc p99':>9}{'redis cpu/req':>15}{'pc cpu/req':>12}")
    for test in args.tests.split(","):
        for pipeline in map(int, args.pipelines.split(",")):
            r, c = results[(test, pipeline, "redis")], results[(test, pipeline, "percore")]
            print(
                f"{TESTS[test]:<16}{pipeline:>3}{med(r, 'rps'):>12.0f}{med(c, 'rps'):>13.0f}{med(c, 'rps') / med(r, 'rps'):>7.2f}"
                f"{med(r, 'p99'):>9.3f}ms{med(c, 'p99'):>7.3f}ms{med(r, 'cpu_us'):>13.2f}us{med(c, 'cpu_us'):>10.2f}us"
            )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""BGSAVE under a write load: percore against redis-server.

Both servers hold the same dataset (--keys keys of --value-size bytes,
loaded with redis-cli --pipe) and run pinned to one core (percore with
--threads 1), so a save's work (redis-server's fork child, percore's
snapshot) shares the core with the writes; redis-benchmark runs pinned to
another core, overwriting random keys of the dataset (so the dataset's
size holds still). For each server, alternating, in rounds:

  writes alone    redis-benchmark's requests per second, no save running
  writes + saves  the same requests while BGSAVE runs back to back

and, over each phase, the peak of the machine's anonymous memory
(AnonPages: a fork's shared pages count once, the pages it copies
twice) above its level when the phase began, as a percentage of the
dataset (used_memory after loading). Nothing else should run meanwhile. The table shows medians over the rounds.

  bench/bgsave.py                               # defaults below
  bench/bgsave.py --keys 500000 --rounds 1      # a quick look
"""

import argparse
import csv
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind, cpu, binary, workdir):
    port = free_port()
    d = os.path.join(workdir, kind)
    os.makedirs(d)
    if kind == "redis":
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    else:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--threads", "1", "--save", ""]
    argv += ["--dir", d]
    proc = subprocess.Popen(["taskset", "-c", str(cpu), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def value(size):
    return ("v" * size).encode()


def load(port, keys, size):
    """SET key:<12 digits> for every key redis-benchmark's -r can draw."""
    v = value(size)
    body = io.BytesIO()
    for i in range(keys):
        k = b"key:%012d" % i
        body.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
    out = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=body.getvalue(), capture_output=True)
    if out.returncode != 0 or b"errors: 0" not in out.stdout:
        sys.exit(f"loading failed: {out.stdout!r} {out.stderr!r}")


def anon_kb():
    """Anonymous memory in use on the machine (AnonPages): a fork's shared
    pages count once, copied ones twice; reading it costs the server
    nothing (walking its page tables, as smaps does, would stall it)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("AnonPages:"):
                return int(line.split()[1])
    return 0


def benchmark(port, cpu, requests, args):
    cmd = [
        "taskset", "-c", str(cpu), "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(args.clients),
        "-P", str(args.pipeline), "-n", str(requests), "-r", str(args.keys), "--csv",
        "SET", "key:__rand_int__", value(args.value_size).decode(),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        sys.exit(f"redis-benchmark failed: {out.stderr}")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    return float(rows[-1]["rps"])


def saves_in_progress(client):
    return client.info("persistence")["rdb_bgsave_in_progress"] == 1


def phase(server, with_saves, requests, args):
    port, proc, client = server
    start_kb = anon_kb()
    peak = [start_kb]
    stop = threading.Event()
    saves = [0]

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], anon_kb())
            time.sleep(0.02)

    def save_loop():
        c = redis.Redis(port=port)
        while not stop.is_set():
            if not saves_in_progress(c):
                try:
                    c.bgsave()
                    saves[0] += 1
                except redis.ResponseError:
                    pass
            time.sleep(0.05)

    threads = [threading.Thread(target=watch)]
    if with_saves:
        threads.append(threading.Thread(target=save_loop))
    for t in threads:
        t.start()
    try:
        rps = benchmark(port, args.bench_cpu, requests, args)
    finally:
        stop.set()
        for t in threads:
            t.join()
    deadline = time.monotonic() + 120
    while saves_in_progress(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"rps": rps, "growth_kb": peak[0] - start_kb, "saves": saves[0]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=2_000_000)
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--seconds", type=float, default=8, help="length of each phase (at the writes-alone rate)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--pipeline", type=int, default=8)
    p.add_argument("--server-cpu", type=int, default=1)
    p.add_argument("--bench-cpu", type=int, default=0)
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "percore"))
    args = p.parse_args()

    workdir = tempfile.mkdtemp(prefix="bench-bgsave-")
    servers = {}
    results = {}
    try:
        for kind in ("redis", "percore"):
            servers[kind] = start(kind, args.server_cpu, args.binary, workdir)
            load(servers[kind][0], args.keys, args.value_size)
        dataset_kb = {k: s[2].info("memory")["used_memory"] / 1024 for k, s in servers.items()}
        # One request count per server, from a short run: each phase lasts
        # about --seconds without saves.
        requests = {}
        for kind, s in servers.items():
            rps = benchmark(s[0], args.bench_cpu, 200_000, args)
            requests[kind] = max(200_000, int(rps * args.seconds))
        for rnd in range(args.rounds):
            order = ["redis", "percore"] if rnd % 2 == 0 else ["percore", "redis"]
            for with_saves in (False, True):
                for kind in order:
                    r = phase(servers[kind], with_saves, requests[kind], args)
                    results.setdefault((kind, with_saves), []).append(r)
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for _, proc, _ in servers.values():
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    med = lambda rows, k: statistics.median(r[k] for r in rows)
    print(f"{args.keys} keys of {args.value_size} bytes, {args.clients} clients, pipeline {args.pipeline}")
    print(f"{'server':<9}{'dataset':>10}{'rps alone':>11}{'rps+saves':>11}{'ratio':>7}"
          f"{'saves':>7}{'mem+ alone':>12}{'mem+ saves':>12}")
    for kind in ("redis", "percore"):
        alone, saving = results[(kind, False)], results[(kind, True)]
        ds = dataset_kb[kind]
        print(
            f"{kind:<9}{ds / 1024:>8.0f}MB{med(alone, 'rps'):>11.0f}{med(saving, 'rps'):>11.0f}"
            f"{med(saving, 'rps') / med(alone, 'rps'):>7.2f}{med(saving, 'saves'):>7.0f}"
            f"{100 * med(alone, 'growth_kb') / ds:>11.1f}%{100 * med(saving, 'growth_kb') / ds:>11.1f}%"
        )


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Shows the NUMA nodes and how to keep shards and their memory together.
# A shard allocates from the node it runs on as long as the kernel's
# first-touch policy is in effect; binding the process to one node (or
# running one percore per node on its own port) avoids remote memory.
set -euo pipefail
if ! command -v numactl >/dev/null; then
    echo "numactl is not installed (apt-get install numactl)" >&2
    exit 1
fi
numactl --hardware
echo
nodes=$(numactl --hardware | awk '/^available:/ {print $2}')
for ((n = 0; n < nodes; n++)); do
    cpus=$(numactl --hardware | awk -v n="$n" '$1 == "node" && $2 == n && $3 == "cpus:" { $1=$2=$3=""; print }' | xargs | tr ' ' ',')
    echo "node $n: numactl --cpunodebind=$n --membind=$n percore --port $((6379 + n))   # shards on CPUs $cpus"
done

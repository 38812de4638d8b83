#!/usr/bin/env bash
# Builds percore and runs it with the embedded default config
# (127.0.0.1:6379, one shard per core). Extra arguments go to the server:
#   scripts/run.sh --port 7000 --threads 2
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec target/release/percore "$@"

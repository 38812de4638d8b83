#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine (redis-server and
# redis-tools from Debian, redis-py and pytest from PyPI) and runs all of
# it: formatting, lints, unit tests, then the integration tests in tests/
# against the release binary and a reference redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
if [ ${#missing[@]} -gt 0 ]; then
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
python3 -c 'import redis, pytest' 2>/dev/null || python3 -m pip install -q redis pytest

cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
# The integration tests drive the release binary.
cargo build --release
python3 -m pytest -q -p no:cacheprovider tests "$@"

#!/usr/bin/env bash
# The test suite, on a fresh machine or an old one: installs what the tests need, then runs
# them with no features and with all features (unit, integration and doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."

# The idempotency tests start their own redis-server on a free loopback port.
if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (the Redis store tests run against a real server)" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null
    fi
fi

cargo test --no-default-features
cargo test --all-features

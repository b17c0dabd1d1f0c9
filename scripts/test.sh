#!/usr/bin/env bash
# The test suite, on a fresh machine or an old one: installs what the tests need, then runs
# them with no features and with all features (unit, integration and doc tests), against the
# committed Cargo.lock (`--locked`).
set -euo pipefail
cd "$(dirname "$0")/.."

install() { # command package why
    command -v "$1" >/dev/null 2>&1 && return
    echo "installing $2 ($3)" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "$2" >/dev/null
}
# The idempotency tests start their own redis-server on a free loopback port.
install redis-server redis-server "the Redis store tests run against a real server"
# The PostgreSQL tests start their own cluster (initdb in a temporary directory, on a free
# loopback port). Debian keeps initdb off PATH; pg_ctlcluster comes with the package.
install pg_ctlcluster postgresql "the PostgreSQL store tests run against a real server"
install valgrind valgrind "the core must run under valgrind"
# alerts/ is checked by `promtool check rules` when it can be installed; tests/receive/alerts.rs
# skips that check with a message otherwise.
install promtool prometheus "the alert rules are checked with promtool" ||
    echo "promtool could not be installed: the alert rules check is skipped" >&2

cargo test --locked --no-default-features
cargo test --locked --all-features
# The command-line tool (workspace member cli/), run as a binary against local receivers
# and the fake Monite API.
cargo test --locked -p monite-webhooks-cli

# Users profile and check their services with valgrind, so the core must run under it.
# rustix's own vDSO reader crashes there (bytecodealliance/rustix#1559); the coarse clock
# asks glibc for the vDSO instead (`use-libc-auxv`). The serverless example verifies three
# deliveries, reading that clock, under memcheck.
cargo build --locked -q --example serverless
out=$(valgrind -q --error-exitcode=1 "${CARGO_TARGET_DIR:-target}/debug/examples/serverless" 2>/dev/null)
expected=$'entity.onboarding_requirements.updated: 200 ok\ntag.created: 200 ok\nforged: 401 invalid signature'
if [ "$out" != "$expected" ]; then
    printf 'the serverless example under valgrind answered:\n%s\nexpected:\n%s\n' "$out" "$expected" >&2
    exit 1
fi
echo "serverless example under valgrind memcheck: ok"

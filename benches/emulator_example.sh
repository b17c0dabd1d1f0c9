#!/usr/bin/env bash
# The emulator's throughput to the example server: events recorded per second, and
# delivered (signed, POSTed, verified, handled, acknowledged) per second.
#
#   bash benches/emulator_example.sh        # DURATION=5 CONNECTIONS=8 by default
#
# Starts `monite-webhooks emulate` (release, no rate limit) and examples/axum_server
# (release, in-memory idempotency, logs at warn) with the secret of a payable subscription
# made through the emulator's API. wrk asks the emulator for `payable.paid` events for
# DURATION seconds (`POST /_emulator/events`); the emulator delivers each as it records it.
# Printed: the events recorded per second (wrk's rate), and the events the example server
# handled per second, from the first request to its last JSON line on stdout, once it has
# printed one line per recorded event.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-8}
EMULATOR_ADDR=127.0.0.1:3911
RECEIVER_ADDR=127.0.0.1:3912

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release -q -p monite-webhooks-cli
cargo build --release -q --features axum --example axum_server
target=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

"$target/monite-webhooks" emulate --addr "$EMULATOR_ADDR" --rate-limit 0 >"$work/emulator.out" 2>"$work/emulator.err" &
for _ in $(seq 100); do curl -fs -o /dev/null "http://$EMULATOR_ADDR/_emulator/ledger" && break; sleep 0.1; done

base="http://$EMULATOR_ADDR/v1"
token=$(curl -fs "$base/auth/token" -H 'x-monite-version: 2024-05-25' -H 'content-type: application/json' \
    -d '{"grant_type":"client_credentials","client_id":"load","client_secret":"load"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
secret=$(curl -fs "$base/webhook_subscriptions" -H "authorization: Bearer $token" \
    -H 'x-monite-version: 2024-05-25' -H 'content-type: application/json' \
    -d "{\"object_type\":\"payable\",\"url\":\"http://$RECEIVER_ADDR/webhooks/monite\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')

MONITE_WEBHOOK_SECRET="$secret" MONITE_WEBHOOK_ADDR="$RECEIVER_ADDR" RUST_LOG=warn \
    "$target/examples/axum_server" >"$work/handled" 2>"$work/receiver.err" &
for _ in $(seq 100); do curl -s -o /dev/null "http://$RECEIVER_ADDR/" && break; sleep 0.1; done

cat >"$work/trigger.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"action":"payable.paid","entity_id":"load-entity"}'
wrk.headers["Content-Type"] = "application/json"
LUA
start=$(date +%s.%N)
wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/trigger.lua" "http://$EMULATOR_ADDR/_emulator/events" >"$work/wrk.out"
recorded=$(curl -fs "http://$EMULATOR_ADDR/_emulator/ledger" |
    python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin)["events"] if e["recorded"]))')
# Until the example has printed a line per recorded event (or 60 s more).
for _ in $(seq 600); do
    [ "$(wc -l <"$work/handled")" -ge "$recorded" ] && break
    sleep 0.1
done
handled_at=$(date -r "$work/handled" +%s.%N)
handled=$(wc -l <"$work/handled")
rate=$(grep -oE 'Requests/sec: *[0-9.]+' "$work/wrk.out" | grep -oE '[0-9.]+$')
python3 - "$start" "$handled_at" "$recorded" "$handled" "$rate" <<'PY'
import sys
start, end, recorded, handled, rate = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
print(f"recorded: {recorded} events, {rate:,.0f} events/s (wrk)")
print(f"handled by the example server: {handled} of {recorded}, {handled / (end - start):,.0f} events/s "
      f"({end - start:.2f} s from the first request to the last line)")
PY

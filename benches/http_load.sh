#!/usr/bin/env bash
# HTTP throughput of the receiver next to a bare axum handler, on loopback, in one run.
#
#   bash benches/http_load.sh            # DURATION=10 CONNECTIONS=32 ROUNDS=3 by default
#
# Starts examples/axum_server (release; verification, parsing, dispatch, in-memory
# idempotency, logs at warn) and examples/bare_axum_baseline, which serves two baselines:
# `bare` reads the body and answers 200; `hmac_floor` also checks the signature the cheapest
# correct way (pre-keyed HMAC-SHA256 over t.body and a constant-time compare, nothing else),
# the HTTP counterpart of `verify/hmac_sha256_limit`. It then drives each with wrk, the same
# signed body and headers, and prints requests/s and p99 latency side by side.
#
# Loopback throughput on a small VM moves by 5-10% from one run to the next, so the three
# are measured in turn, ROUNDS times, and the summary takes each one's median.
#
# The body is signed here with openssl, independently of the crate, afresh for every round
# so that the signature stays inside the receiver's tolerance. Every request carries the
# same event, as a retried delivery would: after the first, the receiver verifies, parses
# and finds it already handled (no handler runs).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
RECEIVER_ADDR=127.0.0.1:3901
BARE_ADDR=127.0.0.1:3902
SECRET=whsec_http_load_test_only

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
command -v openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }

cargo build --release -q --features axum,tracing,redis,postgres --example axum_server --example bare_axum_baseline
examples=${CARGO_TARGET_DIR:-target}/release/examples

body='{"id":"f8130c42-6c0f-4b9d-81db-38c08712b8bc","created_at":"2024-03-04T20:06:48.593225+00:00","action":"counterpart.created","api_version":"2024-01-31","entity_id":"c381e88f-7019-4f06-9fbb-3bab8d88348a","description":"counterpart created","object":{"id":"587fd280-3b1a-4ad4-8e00-75a8c2cd789a"},"object_type":"counterpart","webhook_subscription_id":"f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba"}'
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
sign_request() { # writes $work/post.lua, and sets $signature
    local t tag
    t=$(date +%s)
    tag=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
    signature="t=$t,v1=$tag"
    cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Monite-Signature"] = "$signature"
LUA
}
sign_request

# Each server on core 1 and wrk on core 0 (with 2 cores), so that the load tool does not
# take its CPU from the server it measures differently from run to run.
pin_server=() pin_wrk=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c 1) pin_wrk=(taskset -c 0)
fi
MONITE_WEBHOOK_SECRET=$SECRET MONITE_WEBHOOK_ADDR=$RECEIVER_ADDR RUST_LOG=warn \
    "${pin_server[@]}" "$examples/axum_server" >"$work/receiver.out" 2>"$work/receiver.err" &
MONITE_WEBHOOK_SECRET=$SECRET BARE_ADDR=$BARE_ADDR "${pin_server[@]}" "$examples/bare_axum_baseline" >/dev/null 2>&1 &
for addr in $RECEIVER_ADDR $BARE_ADDR; do
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && break
        sleep 0.1
    done
done

# Each server must accept the signed request before its throughput means anything.
for url in "http://$RECEIVER_ADDR/webhooks/monite" "http://$BARE_ADDR/hmac_floor" "http://$BARE_ADDR/bare"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H "Monite-Signature: $signature" --data-raw "$body" "$url")
    [ "$status" = 200 ] || { echo "$url answered $status to the signed request" >&2; exit 1; }
done

run() { # name url
    local out rps p99
    out=$("${pin_wrk[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "$2")
    if grep -q 'Non-2xx' <<<"$out"; then
        echo "$1: some responses were not 2xx:" >&2; echo "$out" >&2; exit 1
    fi
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    # wrk prints 712.00us, 1.20ms or 1.00s; in microseconds, so that medians compare.
    p99=$(awk '$1 == "99%" { v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
        printf "%.0f", v * (u == "ms" ? 1e3 : u == "s" ? 1e6 : 1) }' <<<"$out")
    printf '  %-10s %12s req/s   p99 %s us\n' "$1" "$rps" "$p99"
    echo "$rps" >> "$work/$1.rps"
    echo "$p99" >> "$work/$1.p99"
}
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds; server pinned: ${pin_server[*]:-no}, wrk pinned: ${pin_wrk[*]:-no}"
for round in $(seq "$ROUNDS"); do
    echo "round $round"
    sign_request
    run bare "http://$BARE_ADDR/bare"
    run hmac_floor "http://$BARE_ADDR/hmac_floor"
    run receiver "http://$RECEIVER_ADDR/webhooks/monite"
done

echo "median of $ROUNDS rounds"
for name in bare hmac_floor receiver; do
    printf '  %-10s %12s req/s   p99 %s us\n' "$name" "$(median "$work/$name.rps")" "$(median "$work/$name.p99")"
done
awk -v r="$(median "$work/receiver.rps")" -v b="$(median "$work/bare.rps")" -v f="$(median "$work/hmac_floor.rps")" \
    'BEGIN { printf "receiver / bare: %.1f%%   hmac_floor / bare: %.1f%%   receiver / hmac_floor: %.1f%%\n",
             100 * r / b, 100 * f / b, 100 * r / f }'

#!/usr/bin/env bash
# Forty subscriptions on one endpoint, over HTTP: does a delivery signed by the first
# subscription, one signed by the fortieth, and a forged one cost the same?
#
#   bash benches/keyring_http.sh           # DURATION=8 CONNECTIONS=8 ROUNDS=3 by default
#
# Starts examples/axum_server (release) twice: with the forty secrets as a keyring
# (MONITE_WEBHOOK_SECRETS=<id>=<secret>,...), then as forty plain secrets
# (MONITE_WEBHOOK_SECRET=<secret>,..., tried in order), and drives each with wrk: 200 KB
# envelopes in Monite's field order, signed here with openssl by subscription 0, by
# subscription 39, and forged (naming subscription 39, signed with a wrong key). Prints
# requests/s and p50 latency; medians of ROUNDS rounds.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-8}
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-204800}
ADDR=127.0.0.1:3911

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
cargo build --release -q --features axum,tracing,redis,postgres --example axum_server
server_bin=${CARGO_TARGET_DIR:-target}/release/examples/axum_server

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

ids=() secrets=()
for i in $(seq 0 39); do
    ids+=("$(printf '%08x-5b4e-4d6f-9a0e-%012x' $((i * 2654435761 % 4294967296)) "$i")")
    secrets+=("whsec_subscription_${i}_$(printf '%08x' $((i * 40503)))")
done
pairs=$(for i in $(seq 0 39); do printf '%s=%s,' "${ids[$i]}" "${secrets[$i]}"; done)
plain=$(IFS=,; echo "${secrets[*]}")

envelope() { # subscription -> a body of $SIZE bytes
    local head tail pad
    head='{"id":"f8130c42-6c0f-4b9d-81db-38c08712b8bc","created_at":"2024-03-04T20:06:48.593225+00:00","action":"payable.created","api_version":"2024-05-25","entity_id":"c381e88f-7019-4f06-9fbb-3bab8d88348a","description":"'
    tail="\",\"object\":{\"id\":\"587fd280-3b1a-4ad4-8e00-75a8c2cd789a\"},\"object_type\":\"payable\",\"webhook_subscription_id\":\"$1\"}"
    pad=$((SIZE - ${#head} - ${#tail}))
    printf '%s%s%s' "$head" "$(head -c "$pad" /dev/zero | tr '\0' x)" "$tail"
}
write_script() { # name subscription secret
    local t tag
    envelope "$2" > "$work/$1.body"
    t=$(date +%s)
    tag=$( { printf '%s.' "$t"; cat "$work/$1.body"; } | openssl dgst -sha256 -hmac "$3" -r | cut -d' ' -f1)
    cat > "$work/$1.lua" <<LUA
local f = io.open("$work/$1.body", "rb"); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Monite-Signature"] = "t=$t,v1=$tag"
LUA
}
sign_all() {
    write_script first "${ids[0]}" "${secrets[0]}"
    write_script last "${ids[39]}" "${secrets[39]}"
    write_script forged "${ids[39]}" "whsec_not_monites"
}

start() { # env assignment
    env -u MONITE_WEBHOOK_SECRET -u MONITE_WEBHOOK_SECRETS -u REDIS_URL -u DATABASE_URL \
        "$1" MONITE_WEBHOOK_ADDR=$ADDR RUST_LOG=error "$server_bin" >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR#*:}") 2>/dev/null && return; sleep 0.1; done
    echo "the server did not start" >&2; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; }

run() { # label case expected-status
    local out rps p50 status
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H "Monite-Signature: $(sed -n 's/.*"Monite-Signature"\] = "\(.*\)"/\1/p' "$work/$2.lua")" \
        --data-binary "@$work/$2.body" "http://$ADDR/webhooks/monite")
    [ "$status" = "$3" ] || { echo "$1 $2: answered $status, expected $3" >&2; exit 1; }
    out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/$2.lua" "http://$ADDR/webhooks/monite")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" { v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
        printf "%.0f", v * (u == "ms" ? 1e3 : u == "s" ? 1e6 : 1) }' <<<"$out")
    echo "$rps" >> "$work/$1-$2.rps"; echo "$p50" >> "$work/$1-$2.p50"
    printf '  %-8s %-7s %10s req/s   p50 %6s us\n' "$1" "$2" "$rps" "$p50"
}
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, $SIZE-byte bodies, $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    echo "round $round"
    sign_all
    start "MONITE_WEBHOOK_SECRETS=$pairs"
    run keyring first 200; run keyring last 200; run keyring forged 401
    stop
    start "MONITE_WEBHOOK_SECRET=$plain"
    run plain first 200; run plain last 200; run plain forged 401
    stop
done
echo "median of $ROUNDS rounds"
for mode in keyring plain; do
    for case in first last forged; do
        printf '  %-8s %-7s %10s req/s   p50 %6s us\n' "$mode" "$case" \
            "$(median "$work/$mode-$case.rps")" "$(median "$work/$mode-$case.p50")"
    done
done

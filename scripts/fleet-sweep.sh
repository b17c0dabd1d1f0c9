#!/usr/bin/env bash
# 1,000 entities swept by one replica of the example server and by three on one store,
# against the fake Monite: the figures of benches/README.md, "A fleet's sweep".
#   bash scripts/fleet-sweep.sh            # PostgreSQL, 6 requests/s
#   FLEET_STORE=redis MONITE_MAX_RATE=20 bash scripts/fleet-sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
features=axum,actix-web,postgres,client,redis,tracing
for replicas in 1 3; do
  FLEET_REPLICAS=$replicas cargo test --quiet --features "$features" --test example_servers \
    example_servers::fleet::fleet_sweep_time -- --ignored --nocapture 2>&1 |
    grep -E "replica\(s\) on|panicked|FAILED" || true
done

#!/usr/bin/env bash
# Our verifier, receiver and forty-subscription keyring as multiples of the HMAC-SHA256
# floor, from the last `cargo bench --bench verify` run:
#
#   cargo bench --bench verify && bash benches/ratios.sh
#
# It reads each benchmark's median time per iteration from criterion's estimates. Criterion's
# headline figure is a regression slope over all samples, which a burst of interference from
# the host (seen on shared VMs: a few seconds at 1.5x) drags for every benchmark it lands
# on; the median of the samples is the cost of the code itself.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${CARGO_TARGET_DIR:-target}/criterion/verify

median() { # benchmark size -> nanoseconds
    local file="$dir/$1/$2/new/estimates.json"
    [ -f "$file" ] || { echo "no $file: run cargo bench --bench verify first" >&2; exit 1; }
    sed -E 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+).*/\1/' "$file"
}

printf '%9s %14s %22s %22s\n' body hmac_limit monite_verify monite_receive
for size in 400 4096 65536 1048576; do
    limit=$(median hmac_sha256_limit "$size")
    verify=$(median monite_verify "$size")
    receive=$(median monite_receive "$size")
    awk -v s="$size" -v l="$limit" -v v="$verify" -v r="$receive" 'BEGIN {
        printf "%9d %11.1f ns %11.1f ns %6.3fx %11.1f ns %6.3fx\n", s, l, v, v / l, r, r / l }'
done
echo "targets: monite_verify <= 1.25x at 400 B and <= 1.05x at 1 MiB; monite_receive <= 2.5x at 400 B"
echo
printf '%9s %14s %22s %22s %14s\n' body hmac_limit keyring_40 forged_known forged_unknown
for size in 400 204800; do
    limit=$(median hmac_sha256_limit "$size")
    valid=$(median keyring_40 "$size")
    known=$(median keyring_40_forged_known "$size")
    unknown=$(median keyring_40_forged_unknown "$size")
    awk -v s="$size" -v l="$limit" -v v="$valid" -v k="$known" -v u="$unknown" 'BEGIN {
        printf "%9d %11.1f ns %11.1f ns %6.3fx %11.1f ns %6.3fx %11.1f ns\n", s, l, v, v / l, k, k / l, u }'
done
echo "targets: keyring_40 <= 1.15x at 400 B; at 200 KB every case within 1.1x of one HMAC;"
echo "         forged_known costs one HMAC, forged_unknown none"

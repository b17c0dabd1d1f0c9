#!/usr/bin/env bash
# Commit subjects of at most 72 characters (the detail goes in the body).
#
#   scripts/check-commits.sh          HEAD's subject only
#   scripts/check-commits.sh BASE     every commit in BASE..HEAD, merges included
#
# Subjects older than the rule run longer, so give a BASE at or after the first commit that
# follows it (for a branch: `scripts/check-commits.sh main`). Exit 1 names each long subject.
set -euo pipefail
cd "$(dirname "$0")/.."
# Characters, not bytes, where a UTF-8 locale exists.
export LC_ALL=C.UTF-8 2>/dev/null || true

max=72
if [ $# -gt 1 ]; then
    echo "usage: $0 [BASE]" >&2
    exit 2
fi
if [ $# -eq 1 ]; then
    range=("$1..HEAD")
    what="since $1"
else
    range=(-1 HEAD)
    what="of HEAD"
fi

log=$(git log --format='%h%x09%s' "${range[@]}")
long=0
count=0
while IFS=$'\t' read -r hash subject; do
    [ -n "$hash" ] || continue
    count=$((count + 1))
    if [ "${#subject}" -gt "$max" ]; then
        printf '%s: %d characters: %s\n' "$hash" "${#subject}" "$subject" >&2
        long=$((long + 1))
    fi
done <<<"$log"

if [ "$long" -gt 0 ]; then
    echo "$long of $count commit subjects $what exceed $max characters; put the detail in the body" >&2
    exit 1
fi
echo "commit subjects $what: $count checked, none over $max characters"

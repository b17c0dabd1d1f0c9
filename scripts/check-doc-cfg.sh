#!/usr/bin/env bash
# Checks that docs built as docs.rs builds them (nightly, `--cfg docsrs`, all features) mark
# each feature-gated item with its feature: one item, or more, of every feature that adds
# public items, from modules to a single method.
#
#   bash scripts/check-doc-cfg.sh DOC_DIR     # DOC_DIR: the `doc/` folder cargo +nightly doc wrote
set -euo pipefail
doc=${1:?the doc folder, e.g. target/doc}/monite_webhooks
failed=0
check() { # page feature
    local page=$doc/$1
    if [ ! -f "$page" ]; then
        echo "missing page: $1" >&2
        failed=1
    # An item's own page says it in words, a listing in a badge's title.
    elif ! grep -q -e "crate feature <code>$2</code>" -e "crate feature \`$2\`" "$page"; then
        echo "$1 does not say it needs feature $2" >&2
        failed=1
    fi
}
check index.html axum
check index.html actix-web
check index.html tower
check index.html client
check index.html postgres
check index.html redis
check index.html metrics
check index.html jiff
check inbox/index.html postgres
check client/index.html client
check reconcile/index.html client
check watchdog/index.html client
check fleet/index.html client
check idempotency/struct.RedisStore.html redis
check idempotency/struct.PostgresStore.html postgres
check event/struct.Event.html jiff
check receive/struct.Receiver.html tower
check testing/index.html emulator
check testing/emulator/index.html emulator
check testing/emulator/struct.Emulator.html emulator
if [ "$failed" -ne 0 ]; then
    exit 1
fi
echo "doc_cfg: every checked feature-gated item shows its feature"

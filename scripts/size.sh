#!/usr/bin/env bash
# Prints the size of the release Wasm module, raw and gzipped (after wasm-opt -Oz), and what
# the whole R4 model (every table) adds to a module: a probe module that keeps every table,
# minus the same module without them.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/examples"
report() { # label raw gz
  awk -v label="$1" -v raw="$2" -v gz="$3" \
    'BEGIN { printf "size: %-44s %9d bytes (%6.1f KiB) raw, %8d bytes (%6.1f KiB) gzip -9\n", label, raw, raw/1024, gz, gz/1024 }'
}
wasm=npm/dist/wasm/hearth_bg.wasm
report "$wasm" "$(stat -c %s "$wasm")" "$(gzip -9 -c "$wasm" | wc -c)"

cargo build --quiet --release --target wasm32-unknown-unknown -p hearth-engine \
  --example model_tables --example model_baseline
tmp=$(mktemp -d)
for probe in model_tables model_baseline; do
  node_modules/.bin/wasm-opt -Oz "$target/$probe.wasm" -o "$tmp/$probe.wasm"
done
raw=$(( $(stat -c %s "$tmp/model_tables.wasm") - $(stat -c %s "$tmp/model_baseline.wasm") ))
gz=$(( $(gzip -9 -c "$tmp/model_tables.wasm" | wc -c) - $(gzip -9 -c "$tmp/model_baseline.wasm" | wc -c) ))
report "R4 model, all tables (budget 350 KiB gzip)" "$raw" "$gz"
rm -rf "$tmp"

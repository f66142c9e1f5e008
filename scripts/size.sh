#!/usr/bin/env bash
# Prints the size of the release Wasm module, raw and gzipped (after wasm-opt -Oz).
set -euo pipefail
cd "$(dirname "$0")/.."
wasm=npm/dist/wasm/hearth_bg.wasm
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
awk -v raw="$raw" -v gz="$gz" -v f="$wasm" \
  'BEGIN { printf "size: %s: %d bytes (%.1f KiB) raw, %d bytes (%.1f KiB) gzip -9\n", f, raw, raw/1024, gz, gz/1024 }'

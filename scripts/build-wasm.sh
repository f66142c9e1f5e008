#!/usr/bin/env bash
# Builds the release Wasm module and its JS glue into npm/dist/wasm, then shrinks it with
# wasm-opt -Oz (binaryen from npm; Debian's older binaryen breaks wasm-bindgen's output).
set -euo pipefail
cd "$(dirname "$0")/.."
out=npm/dist/wasm
cargo build --release --target wasm32-unknown-unknown -p hearth-wasm
rm -rf "$out.tmp"
wasm-bindgen --target web --weak-refs --experimental-reset-state-function --out-dir "$out.tmp" --out-name hearth \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/hearth_wasm.wasm"
node_modules/.bin/wasm-opt -Oz "$out.tmp/hearth_bg.wasm" -o "$out.tmp/hearth_bg.wasm"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "[build] $out/hearth_bg.wasm: $(stat -c %s "$out/hearth_bg.wasm") bytes"

#!/usr/bin/env bash
# Runs every test layer, prints each layer's counts, a summary table, and one closing line
# "N passed, N failed, N skipped". Exits non-zero when any layer fails.
# Expects the tools of scripts/setup.sh; builds what it tests.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=tests/artifacts/logs
mkdir -p "$logs"
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}

layers=()
declare -A passed failed skipped status seconds

# Counts of cargo's "test result:" lines and node's "ℹ pass N" lines in a log.
count() {
  local log=$1 kind=$2
  case $kind in
    cargo)
      awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
           END { printf "%d %d %d\n", p, f, s }' "$log" ;;
    node)
      awk '/^ℹ pass / { p += $3 } /^ℹ fail / { f += $3 } /^ℹ skipped / { s += $3 } /^ℹ todo / { s += $3 } /^ℹ cancelled / { f += $3 }
           END { printf "%d %d %d\n", p, f, s }' "$log" ;;
    check)
      echo "0 0 0" ;;
  esac
}

# run NAME KIND COMMAND...: runs one layer, its output shown and kept in $logs/NAME.log.
run() {
  local name=$1 kind=$2; shift 2
  local log="$logs/$name.log" start=$SECONDS rc
  printf '\n===== %s =====\n' "$name"
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  read -r p f s < <(count "$log" "$kind")
  if [ "$kind" = check ]; then
    if [ "$rc" -eq 0 ]; then p=1; else f=1; fi
  elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1  # the runner failed before or after its tests: count that as a failure
  fi
  layers+=("$name"); passed[$name]=$p; failed[$name]=$f; skipped[$name]=$s
  seconds[$name]=$((SECONDS - start))
  if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ]; then status[$name]=ok; else status[$name]=FAILED; fi
}

run codegen-check check node tools/codegen/main.mjs --check
run fmt check cargo fmt --all -- --check
run clippy check bash -c 'cargo clippy -p hearth-engine --all-targets -- -D warnings &&
  cargo clippy -p hearth-wasm --all-targets --target wasm32-unknown-unknown -- -D warnings'
run engine-unit cargo cargo test -p hearth-engine -- --nocapture
run sync-sim cargo cargo test --release -p hearth-engine --test sync_sim -- --nocapture
run engine-no-std check cargo build -p hearth-engine --no-default-features --target x86_64-unknown-none
run engine-wasm32 check cargo build -p hearth-engine --no-default-features --target wasm32-unknown-unknown
run wasm-node-chromium cargo cargo test --target wasm32-unknown-unknown -p hearth-wasm
run build-package check bash scripts/build-wasm.sh
run npm-node node node --test --test-reporter=spec tests/node/
run conformance node node --test --test-reporter=spec tests/conformance/
run hostile node node --test --test-reporter=spec --test-concurrency=1 tests/hostile/
run workerd node node --test --test-reporter=spec tests/workerd/
run auth node node --test --test-reporter=spec --test-concurrency=1 tests/auth/
run sync node node --test --test-reporter=spec --test-concurrency=1 tests/sync/
run store-chromium node node --test --test-reporter=spec --test-concurrency=1 tests/store/
run demo-chromium node node --test --test-reporter=spec tests/browser/
run npm-pack node node --test --test-reporter=spec tests/packaging/

printf '\n===== summary =====\n'
bash scripts/size.sh || true
echo "conformance:"
grep -hE '^(examples|synthea): [0-9]+ files|malformed resources|^fuzz corpus:|^fhirpath fuzz corpus:|^mutation:|^fhirpath suite:|^  skipped [0-9]|^validation:|^validation negative:' "$logs"/engine-unit.log | sed 's/^/  /' || true
grep -hE '^types: |^docs: ' "$logs"/npm-node.log | sed 's/^/  /' || true
grep -hE '^fhirpath.js cases:|^  skipped [0-9]|^fhirpath differential:|^validator cases:|^http conformance:' "$logs"/conformance.log | sed 's/^/  /' || true
grep -hE '^hostile: ' "$logs"/hostile.log | sed 's/^/  /' || true
grep -hE '^sync simulation: ' "$logs"/sync-sim.log | sed 's/^/  /' || true
grep -hE '^access leak matrix: ' "$logs"/engine-unit.log | sed 's/^/  /' || true
grep -hE '^http conformance with authorization: |^smart launch: |^audit: ' "$logs"/auth.log | sed 's/^/  /' || true
grep -hE '^durable object (conformance|race): |^  skipped search errors' "$logs"/workerd.log | sed 's/^/  /' || true
grep -hE '^sync (hearth serve|Helios hfs)' "$logs"/sync.log | sed 's/^/  /' || true
grep -hE '^(store.fetch|service worker) conformance:|^store: ' "$logs"/store-chromium.log | sed 's/^/  /' || true
printf '%-20s %8s %8s %8s %6s  %s\n' layer passed failed skipped secs status
total_p=0; total_f=0; total_s=0
for name in "${layers[@]}"; do
  printf '%-20s %8d %8d %8d %6d  %s\n' "$name" "${passed[$name]}" "${failed[$name]}" "${skipped[$name]}" "${seconds[$name]}" "${status[$name]}"
  total_p=$((total_p + passed[$name])); total_f=$((total_f + failed[$name])); total_s=$((total_s + skipped[$name]))
done
echo
echo "total: $total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ]

#!/usr/bin/env bash
# The demo, all on 127.0.0.1: `hearth serve` with authorization on (an embedded SQLite store,
# loaded with the Synthea patients the first time), the demo's SMART authorization server
# (oidc-provider, with a sign-in page for a few of those patients and a clinician), and the
# demo app (an offline patient PWA). Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_PORT="${DEMO_PORT:-8787}"
FHIR_PORT="${FHIR_PORT:-8080}"
AUTH_PORT="${AUTH_PORT:-8090}"
data=.hearth/demo-data
corpus="${HEARTH_CORPUS:-../shared/corpus}/synthea"
app="http://127.0.0.1:$DEMO_PORT"
fhir="http://127.0.0.1:$FHIR_PORT/fhir"
if [ ! -f "$data/hearth.sqlite" ]; then
  if [ -d "$corpus" ]; then
    echo "[demo] loading the Synthea patients into $data"
    # Provider bundles create practitioners and organizations conditionally (ifNoneExist):
    # each is stored once.
    node npm/bin/hearth.js import --data "$data" "$corpus" || true
  else
    echo "[demo] no Synthea corpus at $corpus: the FHIR endpoint starts empty"
  fi
fi
pids=()
# Waits until URL answers, while the server started as pids[N] runs.
wait_for() {
  for _ in $(seq 1 300); do
    node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1" && return 0
    kill -0 "${pids[$2]}" 2>/dev/null || { echo "[demo] $3 did not start" >&2; exit 1; }
    sleep 0.2
  done
  echo "[demo] $3 did not answer at $1" >&2
  exit 1
}
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
node demo-app/server/main.js --port "$AUTH_PORT" --fhir "$fhir" --app "$app/" --corpus "$corpus" &
pids+=($!)
# `hearth serve` reads the issuer's configuration when it starts: the issuer comes first.
wait_for "http://127.0.0.1:$AUTH_PORT/.well-known/openid-configuration" 0 "the authorization server"
node npm/bin/hearth.js serve --port "$FHIR_PORT" --data "$data" --issuer "http://127.0.0.1:$AUTH_PORT" --allow-origin "$app" &
pids+=($!)
wait_for "$fhir/metadata" 1 "hearth serve"
(cd demo-app && ../node_modules/.bin/vite build --logLevel warn)
printf '{"fhirBase":"%s","clientId":"patient-app","scope":"openid fhirUser launch/patient patient/*.cruds"}\n' "$fhir" > demo-app/dist/demo-config.json
echo
echo "Hearth demo: $app/   FHIR endpoint: $fhir (access tokens of http://127.0.0.1:$AUTH_PORT)   (Ctrl-C to stop)"
echo "Sign in with one of the user names above (any password)."
cd demo-app && ../node_modules/.bin/vite preview --host 127.0.0.1 --port "$DEMO_PORT" --strictPort

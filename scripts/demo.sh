#!/usr/bin/env bash
# The demo: a local FHIR endpoint (`hearth serve` on an embedded SQLite store, loaded with the
# Synthea patients the first time) and the demo app beside it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_PORT="${DEMO_PORT:-8787}"
FHIR_PORT="${FHIR_PORT:-8080}"
data=.hearth/demo-data
corpus="${HEARTH_CORPUS:-../shared/corpus}/synthea"
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
node npm/bin/hearth.js serve --port "$FHIR_PORT" --data "$data" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT INT TERM
(cd demo-app && ../node_modules/.bin/vite build --logLevel warn)
echo
echo "Hearth demo: http://127.0.0.1:$DEMO_PORT/   FHIR endpoint: http://127.0.0.1:$FHIR_PORT/fhir   (Ctrl-C to stop)"
cd demo-app && ../node_modules/.bin/vite preview --host 127.0.0.1 --port "$DEMO_PORT" --strictPort

# Hearth: the two commands of the README, and a few for development.
#   make demo   installs what is missing, builds, loads the Synthea patients into a local FHIR
#               endpoint (http://127.0.0.1:8080/fhir, SQLite in .hearth/) and serves the demo app
#               on http://127.0.0.1:$(DEMO_PORT)
#   make test   installs what is missing, builds, runs every test layer and prints a summary
SHELL := /bin/bash
DEMO_PORT ?= 8787

.PHONY: demo test setup build size bench hostile sync-long clean codegen

setup:
	@bash scripts/setup.sh

build: setup
	@bash scripts/build-wasm.sh

demo: build
	@DEMO_PORT=$(DEMO_PORT) bash scripts/demo.sh

test: setup
	@bash scripts/setup-helios.sh
	@bash tests/run.sh

codegen: setup
	@node tools/codegen/main.mjs

size: build
	@bash scripts/size.sh

# Benchmarks print ratios against peers measured in the same run; not part of make test.
bench: build
	@node tests/perf/json.bench.js
	@node tests/perf/fhirpath.bench.js
	@node tests/perf/validate.bench.js
	@node tests/perf/service.bench.js
	@node tests/perf/scale.bench.js
	@node tests/perf/access.bench.js
	@node tests/perf/edge.bench.js
	@node tests/perf/store.bench.js
	@node tests/perf/sync.bench.js
	@node tests/perf/hostile.bench.js
	@cargo run --quiet --release -p hearth-engine --example json_timing -- ../shared/corpus/synthea
	@cargo run --quiet --release -p hearth-engine --example fhirpath_timing -- ../shared/corpus/synthea
	@cargo run --quiet --release -p hearth-engine --example validate_timing -- ../shared/corpus/synthea

# The long hostile run alone (HOSTILE_SECONDS=300 by default).
hostile: build
	@node tests/perf/hostile.bench.js

clean:
	rm -rf target npm/dist demo-app/dist tests/artifacts

# 10,000 seeded sync schedules (make test runs 500).
sync-long:
	SYNC_SCHEDULES=10000 cargo test --release -p hearth-engine --test sync_sim -- --nocapture randomized

// Benchmark: a FhirService in memory grown to 10,000 Synthea-like patients (about 347k
// resources: per patient 5 encounters, 4 conditions, up to 30 observations), the way a user
// loads it: the insert rate of each tenth of the load (a rate that falls as the store grows
// shows here), then the median time of searches whose work grows with the store: a sorted
// first page over every Encounter, `_has`, and queries with large totals. Run with
// `make bench`; HEARTH_BENCH_PATIENTS sets the size. The data set is written to a temporary
// NDJSON file and read back batch by batch, so that the process does not hold 342 MB of JSON
// text while it loads (V8 collects a large heap often once Wasm memory is large, which would
// be measured instead of the store).
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { FhirService } from "hearth-fhir";
import { initSync } from "../../npm/dist/wasm/hearth.js";
import { ROOT } from "../lib/paths.js";
import { buildDataset } from "./dataset.js";

const PATIENTS = Number(process.env.HEARTH_BENCH_PATIENTS ?? 10000);
const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const dir = mkdtempSync(`${tmpdir()}/hearth-scale-`);
const file = `${dir}/data.ndjson`;
const { count, jsonBytes, hasQuery } = (() => {
  const { texts, resources, jsonBytes, queries } = buildDataset({ patients: PATIENTS, corpus, shape: { encounters: 5, conditions: 4, observations: 30 } });
  writeFileSync(file, texts.map((text, idx) => `${resources[idx].resourceType}/${resources[idx].id} ${text}`).join("\n"));
  return { count: texts.length, jsonBytes, hasQuery: queries.find(([label]) => label === "_has")[1] };
})();
const memory = initSync({ module: readFileSync(new URL("../../npm/dist/wasm/hearth_bg.wasm", import.meta.url)) }).memory;
console.log(`scale benchmark: ${count} resources (${PATIENTS} patients), ${(jsonBytes / 1e6).toFixed(0)} MB of JSON`);

const service = new FhirService({ baseUrl: "http://127.0.0.1/fhir" });
const headers = { "content-type": "application/fhir+json", "x-validation": "off" };
const BATCH = 500;
const tenth = Math.ceil(count / 10);
const rates = [];
let mark = performance.now();
let marked = 0;
let done = 0;
let batch = [];
const start = performance.now();
const store = () => {
  const response = service.handle({ method: "POST", path: "", headers, body: `{"resourceType":"Bundle","type":"transaction","entry":[${batch.join(",")}]}` });
  if (response.status !== 200) throw new Error(`batch at ${done}: ${response.status} ${response.body.slice(0, 300)}`);
  done += batch.length;
  batch = [];
  if (done - marked >= tenth || done === count) {
    const now = performance.now();
    rates.push([done, (done - marked) / ((now - mark) / 1000)]);
    mark = now;
    marked = done;
  }
};
for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
  const space = line.indexOf(" ");
  batch.push(`{"resource":${line.slice(space + 1)},"request":{"method":"PUT","url":"${line.slice(0, space)}"}}`);
  if (batch.length === BATCH) store();
}
if (batch.length > 0) store();
rmSync(dir, { recursive: true, force: true });
const seconds = (performance.now() - start) / 1000;
console.log(`inserts (transaction Bundles of ${BATCH} PUTs, X-Validation: off): ${Math.round(count / seconds)}/s in all, ${seconds.toFixed(0)} s`);
console.log(`  by tenth: ${rates.map(([done, rate]) => `${Math.round(done / 1000)}k ${Math.round(rate)}/s`).join(", ")}`);
console.log(`  last tenth against the first: ${(rates.at(-1)[1] / rates[0][1]).toFixed(2)}× (goal: within 1.5×, that is ≥ 0.67×)`);
console.log(`  Wasm memory: ${(memory.buffer.byteLength / 1e6).toFixed(0)} MB`);

const searches = [
  ["_sort first page", "Encounter?_sort=-date&_count=20", 20],
  ["_has", hasQuery, 50],
  ["large total", "Observation?category=vital-signs&date=ge2024&_count=20", 50],
  ["large total, sorted", "Observation?category=vital-signs&date=ge2024&_sort=-date&_count=20", 50],
  ["every Observation", "Observation?_count=10", 50],
];
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
for (const [label, url, goal] of searches) {
  const [path, query = ""] = url.split("?");
  const run = () => service.handle({ method: "GET", path, query: new URLSearchParams(query) });
  const first = run();
  if (first.status !== 200) throw new Error(`${url}: ${first.status} ${first.body.slice(0, 300)}`);
  const total = JSON.parse(first.body).total;
  const times = [];
  for (let i = 0; i < 7; i += 1) {
    const t = performance.now();
    run();
    times.push(performance.now() - t);
  }
  const ms = median(times);
  console.log(`  ${label.padEnd(20)} ${ms.toFixed(1).padStart(7)} ms  total ${String(total).padStart(7)}  goal ≤ ${goal} ms: ${ms <= goal ? "met" : "not met"}  ${url}`);
}

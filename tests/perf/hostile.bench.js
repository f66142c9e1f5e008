// The long hostile run: `hearth serve` over 10 Synthea patients takes a seeded mix of hostile
// and ordinary requests from several clients for HOSTILE_SECONDS (default 300), while one more
// client times an ordinary read. It prints the counts by status, the server's RSS over time and
// the read's latency percentiles, and fails on any 5xx, any restarted thread, or RSS over the
// bound. Run by `make bench`; every address is 127.0.0.1.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NPM_DIR } from "../lib/paths.js";
import { serve, stop } from "../lib/serve.js";
import { hostileRequests, largeSearchBatch, rssBytes, sendRaw } from "../lib/hostile.js";
import { MALFORMED } from "../lib/malformed.js";
import { random } from "../lib/random.js";

const SECONDS = Number(process.env.HOSTILE_SECONDS ?? 300);
const CLIENTS = 4;
const RSS_BOUND = 1536 * 1024 * 1024;
const SYNTHEA = new URL("../../../shared/corpus/synthea/", import.meta.url).pathname;


const PARAMS = ["code", "date", "subject", "patient", "value-quantity", "status", "category", "_id", "_lastUpdated", "encounter", "subject:Patient.name", "_has:Observation:subject:code", "code:text", "value-quantity:missing", "date:missing"];
const VALUES = ["", "ge2010", "lt", "eq1e308", "gt-1e-300", "http://loinc.org|", "|8302-2", "%00", "a,b,c,d,e", "x".repeat(2000), "2020-13-45", "ap5.4|http://unitsofmeasure.org|mm[Hg]", "Patient/../x", "\u0000", "🔥", "sa2020-01-01T00:00:00+14:00"];

function hostileMix(next) {
  const pick = (list) => list[Math.floor(next() * list.length)];
  const fixed = hostileRequests();
  return () => {
    const roll = next();
    if (roll < 0.3) return pick(fixed);
    if (roll < 0.32) return largeSearchBatch();
    if (roll < 0.55) {
      const n = 1 + Math.floor(next() * 12);
      const query = Array.from({ length: n }, () => `${encodeURIComponent(pick(PARAMS))}=${encodeURIComponent(pick(VALUES))}`);
      if (next() < 0.3) query.push(`_sort=${pick(["date", "-date", "code", "-_lastUpdated"])}`);
      if (next() < 0.2) query.push(`_include=${pick(["Observation:subject", "*", "Observation:encounter"])}`);
      if (next() < 0.2) query.push(`_count=${Math.floor(next() * 2000)}`);
      return { name: "a random search", method: "GET", path: `Observation?${query.join("&")}` };
    }
    if (roll < 0.7) {
      const malformed = pick(MALFORMED);
      return { name: `malformed: ${malformed.name}`, method: "POST", path: "Patient", headers: { "Content-Type": "application/fhir+json" }, body: malformed.input };
    }
    if (roll < 0.85) {
      return {
        name: "an ordinary create",
        method: "POST",
        path: "Observation",
        headers: { "Content-Type": "application/fhir+json" },
        body: JSON.stringify({ resourceType: "Observation", status: "final", code: { text: `load ${Math.floor(next() * 1e6)}` }, valueQuantity: { value: next() * 200, unit: "mm[Hg]", system: "http://unitsofmeasure.org", code: "mm[Hg]" } }),
      };
    }
    const n = 1 + Math.floor(next() * 200);
    const entries = Array.from({ length: n }, (_, idx) => (next() < 0.5
      ? { request: { method: "GET", url: `Observation?_count=${Math.floor(next() * 1000)}&_sort=-date` } }
      : { resource: { resourceType: "Patient", name: [{ family: `Batch${idx}` }] }, request: { method: "POST", url: "Patient" } }));
    return { name: "a mixed batch", method: "POST", path: "", headers: { "Content-Type": "application/fhir+json" }, body: JSON.stringify({ resourceType: "Bundle", type: "batch", entry: entries }) };
  };
}

const dir = mkdtempSync(join(tmpdir(), "hearth-hostile-bench-"));
const patients = readdirSync(SYNTHEA).filter((name) => name.endsWith(".json")).sort().slice(0, 10).map((name) => join(SYNTHEA, name));
const imported = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "import", "--data", dir, ...patients], { encoding: "utf8" });
assert.equal(imported.status, 0, imported.stderr);
const server = await serve(dir);
const statuses = new Map();
const fiveHundreds = [];
const rss = [await rssBytes(server.child.pid)];
const latencies = [];
let sent = 0;
const deadline = Date.now() + SECONDS * 1000;
try {
  const probe = (async () => {
    const first = JSON.parse((await sendRaw(server.port, { method: "GET", path: "Observation?_count=1" })).body).entry[0].resource.id;
    while (Date.now() < deadline) {
      const start = performance.now();
      const read = await sendRaw(server.port, { method: "GET", path: `Observation/${first}` });
      latencies.push(performance.now() - start);
      assert.equal(read.status, 200);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const sampler = setInterval(async () => rss.push(await rssBytes(server.child.pid)), 1000);
  const clients = Array.from({ length: CLIENTS }, async (_, client) => {
    const nextRequest = hostileMix(random(1000 + client));
    while (Date.now() < deadline) {
      const request = nextRequest();
      const answer = await sendRaw(server.port, request);
      sent += 1;
      const key = `${answer.status}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      if (answer.status >= 500) fiveHundreds.push(`${request.name}: ${answer.status} ${answer.body.slice(0, 200)}`);
    }
  });
  await Promise.all([...clients, probe]);
  clearInterval(sampler);
  rss.push(await rssBytes(server.child.pid));
} finally {
  await stop(server.child);
  rmSync(dir, { recursive: true, force: true });
}
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))].toFixed(1);
const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
// Restarts after a failure (a trap, a dead thread, a timeout), and planned ones that give
// memory back (maxMemoryBytes).
const restarts = (server.output().match(/Wasm module failed|thread stopped|took longer than/g) ?? []).length;
const recycled = (server.output().match(/over maxMemoryBytes/g) ?? []).length;
console.log(`hostile run: ${SECONDS} s, ${CLIENTS} clients, ${sent} requests; by status ${[...statuses].sort().map(([status, n]) => `${status}: ${n}`).join(", ")}`);
console.log(`hostile run: 5xx ${fiveHundreds.length}, restarts ${restarts}, engines recycled for memory ${recycled}; RSS start ${mb(rss[0])}, max ${mb(Math.max(...rss))}, end ${mb(rss.at(-1))}`);
console.log(`hostile run: ordinary read while under load (${latencies.length} reads): p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`);
for (const line of fiveHundreds.slice(0, 10)) console.log(`  5xx: ${line}`);
assert.equal(fiveHundreds.length, 0, "a request was answered 5xx");
assert.equal(restarts, 0, "a thread or engine was restarted");
assert.ok(Math.max(...rss) < RSS_BOUND, `RSS reached ${mb(Math.max(...rss))}`);

// Hostile requests against the in-process FhirService (the engine as a tab, a worker or an edge
// worker runs it): the same 4xx as `hearth serve`, nothing stored, and a real Wasm trap (memory
// exhausted with the limits lifted) answered 500, logged, and followed by a fresh engine over
// the same store.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FhirService, engineMemoryBytes, compile } from "hearth-fhir";
import { openSqliteStore } from "hearth-fhir/sqlite";
import { hostileRequests, largeSearchBatch, sendToService } from "../lib/hostile.js";

const BASE = "http://127.0.0.1:8080/fhir";
const json = { "content-type": "application/fhir+json" };

/** A store in JS: sorted keys with binary search, the protocol FhirService takes. */
function jsStore() {
  const keys = [];
  const values = new Map();
  const compare = (a, b) => {
    const n = Math.min(a.length, b.length);
    for (let idx = 0; idx < n; idx += 1) if (a[idx] !== b[idx]) return a[idx] - b[idx];
    return a.length - b.length;
  };
  const find = (key) => {
    let low = 0;
    let high = keys.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (compare(keys[mid], key) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  };
  const name = (key) => Buffer.from(key).toString("latin1");
  return {
    commits: 0,
    get: (key) => values.get(name(key)),
    scan(start, end, limit, reverse) {
      const from = find(start);
      const to = end ? find(end) : keys.length;
      const out = [];
      if (reverse) for (let idx = to - 1; idx >= from && out.length < limit; idx -= 1) out.push([keys[idx], values.get(name(keys[idx]))]);
      else for (let idx = from; idx < to && out.length < limit; idx += 1) out.push([keys[idx], values.get(name(keys[idx]))]);
      return out;
    },
    commit(writes) {
      this.commits += 1;
      for (const [key, value] of writes) {
        const at = find(key);
        const copy = Uint8Array.from(key);
        const exists = at < keys.length && compare(keys[at], copy) === 0;
        if (value === undefined) {
          if (exists) {
            keys.splice(at, 1);
            values.delete(name(copy));
          }
        } else {
          if (!exists) keys.splice(at, 0, copy);
          values.set(name(copy), Uint8Array.from(value));
        }
      }
    },
  };
}

function total(service, type) {
  const answer = service.handle({ method: "GET", path: type, query: [["_summary", "count"]] });
  assert.equal(answer.status, 200, answer.body);
  return JSON.parse(answer.body).total;
}

test("each hostile request gets the same 4xx in process as over HTTP, and nothing is stored", () => {
  const service = new FhirService({ baseUrl: BASE });
  for (let idx = 0; idx < 20; idx += 1) {
    const body = JSON.stringify({ resourceType: "Observation", status: "final", code: { text: `c${idx}` } });
    assert.equal(service.handle({ method: "POST", path: "Observation", headers: json, body }).status, 201);
  }
  for (const request of hostileRequests()) {
    const answer = sendToService(service, request);
    assert.equal(answer.status, request.status, `${request.name}: ${answer.body.slice(0, 300)}`);
    if (request.diagnostics) assert.match(JSON.parse(answer.body).issue[0].diagnostics, request.diagnostics, request.name);
    const headers = Object.fromEntries(answer.headers.map(([name, value]) => [name.toLowerCase(), value]));
    assert.equal(headers["x-content-type-options"], "nosniff");
    assert.equal(headers["cache-control"], "no-store");
  }
  assert.equal(total(service, "Patient"), 0, "a refused request stored something");
  const batch = sendToService(service, largeSearchBatch());
  assert.equal(batch.status, 200);
  assert.equal(JSON.parse(batch.body).entry.length, 1000);
  assert.equal(service.handle({ method: "GET", path: "metadata" }).status, 200);
});

test("limits are the host's to set, and unknown ones are refused", () => {
  const service = new FhirService({ baseUrl: BASE, limits: { maxParameters: 2 } });
  const answer = service.handle({ method: "GET", path: "Patient", query: [["name", "a"], ["name", "b"], ["name", "c"]] });
  assert.equal(answer.status, 413);
  assert.match(JSON.parse(answer.body).issue[0].diagnostics, /maxParameters/);
  assert.throws(() => new FhirService({ limits: { maxNothing: 1 } }), (err) => err.name === "FhirError" && /unknown limit/.test(err.message));
  const open = new FhirService({ baseUrl: BASE, allowedOrigins: ["https://app.example"] });
  const allowed = open.handle({ method: "GET", path: "Patient", headers: { origin: "https://app.example" } });
  assert.equal(allowed.status, 200);
  assert.ok(allowed.headers.some(([name, value]) => name === "Access-Control-Allow-Origin" && value === "https://app.example"));
});

test("a Wasm trap is logged, answered 500, and a fresh engine carries on over the same store", async () => {
  // The SQLite store, whose transactions begin and end around the engine's: the trap comes
  // inside one, which must not stay open.
  const dir = mkdtempSync(join(tmpdir(), "hearth-trap-"));
  const sqlite = await openSqliteStore(dir, { durable: false });
  let commits = 0;
  const store = { ...sqlite, commit: (writes) => ((commits += 1), sqlite.commit(writes)) };
  // Limits lifted so that the batch below exhausts the module's 4 GB, as it once could.
  const service = new FhirService({ baseUrl: BASE, store, limits: { maxResponseBytes: 2 ** 52, maxWork: 2 ** 52, maxBodyBytes: 2 ** 30 } });
  const big = "x".repeat(1 << 20);
  for (let idx = 0; idx < 40; idx += 1) {
    const body = JSON.stringify({ resourceType: "Observation", status: "final", code: { text: "c" }, valueString: big });
    assert.equal(service.handle({ method: "POST", path: "Observation", headers: { ...json, "x-validation": "off" }, body }).status, 201);
  }
  const memoryService = new FhirService({ baseUrl: BASE });
  assert.equal(memoryService.handle({ method: "POST", path: "Patient", headers: json, body: '{"resourceType":"Patient"}' }).status, 201);
  const expression = compile("Patient.name.family");
  const commitsBefore = commits;
  const logged = [];
  const log = console.error;
  console.error = (line) => logged.push(String(line));
  let answer;
  try {
    // A transaction reading one 1 MB resource 4,200 times: the trap comes inside its store
    // transaction.
    const id = JSON.parse(service.handle({ method: "GET", path: "Observation", query: [["_count", "1"], ["_elements", "id"]] }).body).entry[0].resource.id;
    const entries = Array.from({ length: 4200 }, () => ({ request: { method: "GET", url: `Observation/${id}` } }));
    answer = service.handle({ method: "POST", path: "", headers: json, body: JSON.stringify({ resourceType: "Bundle", type: "transaction", entry: entries }) });
  } finally {
    console.error = log;
  }
  assert.equal(answer.status, 500, answer.body.slice(0, 300));
  assert.match(JSON.parse(answer.body).issue[0].diagnostics, /restarted/);
  assert.ok(logged.some((line) => /Wasm module failed .*restarted/.test(line)), logged.join("\n"));
  assert.equal(commits, commitsBefore, "the failed request wrote nothing");
  // The next requests see a fresh engine over the same store, with everything in it.
  assert.ok(engineMemoryBytes() < 256 * 1024 * 1024, `${engineMemoryBytes()} bytes of Wasm memory after the restart`);
  assert.equal(total(service, "Observation"), 40);
  const created = service.handle({ method: "POST", path: "Patient", headers: json, body: '{"resourceType":"Patient"}' });
  assert.equal(created.status, 201);
  assert.equal(total(service, "Patient"), 1);
  // Committed for other connections too: no transaction was left open by the trap.
  const other = await openSqliteStore(dir, { lock: false, durable: false });
  try {
    assert.equal(total(new FhirService({ baseUrl: BASE, store: other }), "Patient"), 1);
  } finally {
    other.close();
    sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  }
  // A service in memory lost its data with the instance, and says so instead of answering
  // from an empty store; objects of the old instance are refused.
  const lost = memoryService.handle({ method: "GET", path: "Patient" });
  assert.equal(lost.status, 503);
  assert.match(JSON.parse(lost.body).issue[0].diagnostics, /in-memory store was lost/);
  assert.throws(() => expression.evaluate({ resourceType: "Patient" }), (err) => err.name === "FhirError" && /made before the engine restarted/.test(err.message));
  assert.deepEqual(compile("Patient.name.family").evaluate({ resourceType: "Patient", name: [{ family: "Ng" }] }), ["Ng"]);
});

test("with maxMemoryBytes, the engine gives its memory back after a large request", () => {
  const store = jsStore();
  const service = new FhirService({ baseUrl: BASE, store, maxMemoryBytes: 64 * 1024 * 1024 });
  const big = "y".repeat(4 << 20);
  for (let idx = 0; idx < 20; idx += 1) {
    const body = JSON.stringify({ resourceType: "Observation", status: "final", code: { text: "c" }, valueString: big });
    assert.equal(service.handle({ method: "POST", path: "Observation", headers: { ...json, "x-validation": "off" }, body }).status, 201);
  }
  const logged = [];
  const log = console.error;
  console.error = (line) => logged.push(String(line));
  try {
    // 24 MB of resources in one page: under the response limit, over the memory wanted.
    const page = service.handle({ method: "GET", path: "Observation", query: [["_count", "6"]] });
    assert.equal(page.status, 200);
    assert.equal(JSON.parse(page.body).entry.length, 6);
  } finally {
    console.error = log;
  }
  assert.ok(logged.some((line) => /over maxMemoryBytes/.test(line)), logged.join("\n"));
  assert.ok(engineMemoryBytes() < 64 * 1024 * 1024, `${engineMemoryBytes()} bytes of Wasm memory`);
  assert.equal(total(service, "Observation"), 20);
});

test("two engines on two SQLite connections racing If-Match updates lose no update", async () => {
  const { Worker } = await import("node:worker_threads");
  const dir = mkdtempSync(join(tmpdir(), "hearth-race2-"));
  const holder = await openSqliteStore(dir, { durable: false });
  try {
    const service = new FhirService({ baseUrl: BASE, store: holder });
    assert.equal(service.handle({ method: "PUT", path: "Patient/p", body: '{"resourceType":"Patient","id":"p"}' }).status, 201);
    const racer = `
      import { workerData, parentPort } from "node:worker_threads";
      const { FhirService } = await import(workerData.entry);
      const { openSqliteStore } = await import(workerData.sqlite);
      const store = await openSqliteStore(workerData.dir, { lock: false, durable: false });
      const service = new FhirService({ baseUrl: workerData.base, store });
      const start = new Int32Array(workerData.start);
      Atomics.wait(start, 0, 0);
      let won = 0, lost = 0;
      for (let idx = 0; idx < 300; idx += 1) {
        const read = service.handle({ method: "GET", path: "Patient/p" });
        const version = JSON.parse(read.body).meta.versionId;
        const answer = service.handle({ method: "PUT", path: "Patient/p", headers: { "content-type": "application/fhir+json", "if-match": 'W/"' + version + '"' },
          body: JSON.stringify({ resourceType: "Patient", id: "p", name: [{ family: workerData.name + idx }] }) });
        if (answer.status === 200) won += 1; else if (answer.status === 412) lost += 1; else throw new Error(answer.status + " " + answer.body);
      }
      store.close();
      parentPort.postMessage({ won, lost });
    `;
    const start = new SharedArrayBuffer(4);
    const workerData = {
      entry: new URL("../../npm/src/entry-node.js", import.meta.url).href,
      sqlite: new URL("../../npm/src/sqlite-store.js", import.meta.url).href,
      dir,
      base: BASE,
      start,
    };
    const run = (name) =>
      new Promise((resolve, reject) => {
        const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(racer)}`), { workerData: { ...workerData, name } });
        worker.once("message", resolve);
        worker.once("error", reject);
      });
    const racers = [run("a"), run("b")];
    await new Promise((resolve) => setTimeout(resolve, 500));
    Atomics.store(new Int32Array(start), 0, 1);
    Atomics.notify(new Int32Array(start), 0);
    const [a, b] = await Promise.all(racers);
    const final = JSON.parse(service.handle({ method: "GET", path: "Patient/p" }).body);
    // Every update that was answered 200 is a version of its own: none was written over.
    assert.equal(Number(final.meta.versionId), 1 + a.won + b.won, JSON.stringify({ a, b }));
    assert.equal(a.won + a.lost + b.won + b.lost, 600);
    console.log(`hostile: two engines on two connections, 600 If-Match updates: ${a.won + b.won} won, ${a.lost + b.lost} refused with 412, none lost`);
  } finally {
    holder.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a store whose methods answer Promises is refused loudly, and no write is acknowledged", () => {
  const held = new Map();
  const asyncStore = {
    get: async (key) => held.get(Buffer.from(key).toString("latin1")),
    scan: async () => [],
    commit: async (writes) => {
      for (const [key, value] of writes) held.set(Buffer.from(key).toString("latin1"), value);
    },
  };
  const service = new FhirService({ baseUrl: BASE, store: asyncStore });
  const created = service.handle({ method: "POST", path: "Patient", body: '{"resourceType":"Patient"}' });
  assert.equal(created.status, 500, created.body);
  assert.match(JSON.parse(created.body).issue[0].diagnostics, /answered a Promise/);
  const read = service.handle({ method: "GET", path: "Patient" });
  assert.equal(read.status, 500);
  assert.equal(held.size, 0, "nothing was committed");
});

test("services sharing one store see each other's SearchParameters", () => {
  const store = jsStore();
  const writer = new FhirService({ baseUrl: BASE, store });
  const reader = new FhirService({ baseUrl: BASE, store });
  const search = () => reader.handle({ method: "GET", path: "Patient", query: [["given-name", "Ann"]] });
  assert.equal(search().status, 400, "an unknown parameter before");
  const parameter = {
    resourceType: "SearchParameter",
    url: "http://example.org/fhir/SearchParameter/given-name",
    name: "given-name",
    status: "active",
    description: "A given name",
    code: "given-name",
    base: ["Patient"],
    type: "string",
    expression: "Patient.name.given",
  };
  const stored = writer.handle({ method: "POST", path: "SearchParameter", headers: { "content-type": "application/fhir+json", "x-validation": "off" }, body: JSON.stringify(parameter) });
  assert.equal(stored.status, 201, stored.body);
  assert.equal(search().status, 200, search().body);
});

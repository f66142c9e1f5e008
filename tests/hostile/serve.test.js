// Hostile requests against `hearth serve` over HTTP, over a store of Synthea patients: each is
// refused with the 4xx it deserves, nothing of it is stored, the server keeps answering, its
// memory stays bounded, and reads go on while a long write runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NPM_DIR } from "../lib/paths.js";
import { serve, stop } from "../lib/serve.js";
import { hostileRequests, largeSearchBatch, rssBytes, sendRaw } from "../lib/hostile.js";

const SYNTHEA = new URL("../../../shared/corpus/synthea/", import.meta.url).pathname;
/** Resident memory the server may reach during these tests. */
const RSS_BOUND = 1024 * 1024 * 1024;

let dir;
let server;
let observations;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "hearth-hostile-"));
  const patients = readdirSync(SYNTHEA)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .slice(0, 10)
    .map((name) => join(SYNTHEA, name));
  const imported = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "import", "--data", dir, ...patients], { encoding: "utf8" });
  assert.equal(imported.status, 0, imported.stderr);
  server = await serve(dir);
  observations = await count("Observation");
  console.log(`hostile: hearth serve over 10 Synthea patients (${observations} Observations), RSS at start ${((await rssBytes(server.child.pid)) / 2 ** 20).toFixed(0)} MB`);
  assert.ok(observations > 300, `only ${observations} Observations were imported`);
});

after(async () => {
  await stop(server.child);
  rmSync(dir, { recursive: true, force: true });
});

async function count(type) {
  const answer = await sendRaw(server.port, { method: "GET", path: `${type}?_summary=count` });
  assert.equal(answer.status, 200, answer.body);
  return JSON.parse(answer.body).total;
}

/** The server still answers metadata, a search and a read, and its memory is bounded. */
async function stillAnswers() {
  assert.equal((await sendRaw(server.port, { method: "GET", path: "metadata" })).status, 200);
  const search = await sendRaw(server.port, { method: "GET", path: "Observation?_count=50&_sort=-date" });
  assert.equal(search.status, 200);
  const first = JSON.parse(search.body).entry[0].resource;
  assert.equal((await sendRaw(server.port, { method: "GET", path: `Observation/${first.id}` })).status, 200);
  const rss = await rssBytes(server.child.pid);
  assert.ok(rss < RSS_BOUND, `the server holds ${rss} bytes`);
  return rss;
}

test("a batch of 1,000 large searches is cut at the response limit, and the server goes on", async () => {
  const answer = await sendRaw(server.port, largeSearchBatch());
  assert.equal(answer.status, 200);
  const entries = JSON.parse(answer.body).entry;
  assert.equal(entries.length, 1000);
  const ran = entries.filter((entry) => entry.response.status.startsWith("200")).length;
  const refused = entries.filter((entry) => entry.response.status.startsWith("413"));
  assert.ok(ran > 0 && refused.length > 0 && ran + refused.length === 1000);
  assert.equal(refused.at(-1).response.outcome.issue[0].code, "too-costly");
  assert.ok(answer.body.length < 40 * 1024 * 1024, `${answer.body.length} bytes`);
  // Twice more: the second and third find the service as whole as the first.
  for (let round = 0; round < 2; round += 1) {
    assert.equal((await sendRaw(server.port, largeSearchBatch())).status, 200);
  }
  const rss = await stillAnswers();
  console.log(`hostile: batch of 1,000 searches: ${ran} answered, ${refused.length} refused as too costly, ${answer.body.length} bytes; RSS after three ${(rss / 2 ** 20).toFixed(0)} MB`);
});

test("each hostile request gets its 4xx, stores nothing, and the server goes on", async () => {
  const patientsBefore = await count("Patient");
  for (const request of hostileRequests()) {
    const answer = await sendRaw(server.port, request);
    assert.equal(answer.status, request.status, `${request.name}: ${answer.body.slice(0, 300)}`);
    const outcome = JSON.parse(answer.body);
    assert.equal(outcome.resourceType, "OperationOutcome", request.name);
    if (request.diagnostics) assert.match(outcome.issue[0].diagnostics, request.diagnostics, request.name);
    assert.equal(answer.headers["x-content-type-options"], "nosniff", request.name);
    assert.equal(answer.headers["cache-control"], "no-store", request.name);
  }
  assert.equal(await count("Patient"), patientsBefore, "a refused request stored something");
  const rss = await stillAnswers();
  console.log(`hostile: ${hostileRequests().length} hostile requests refused; RSS ${(rss / 2 ** 20).toFixed(0)} MB`);
});

test("decimals such as 1e308 are stored and found", async () => {
  // Written by hand: JSON.stringify would write 1e+308.
  const body = '{"resourceType":"Observation","status":"final","code":{"text":"huge"},"valueQuantity":{"value":1e308}}';
  const created = await sendRaw(server.port, { method: "POST", path: "Observation", headers: { "Content-Type": "application/fhir+json" }, body });
  assert.equal(created.status, 201, created.body);
  const found = await sendRaw(server.port, { method: "GET", path: "Observation?value-quantity=1e308" });
  assert.equal(found.status, 200, found.body);
  assert.equal(JSON.parse(found.body).total, 1);
});

test("reads are answered while a 10,000-entry batch is written", async () => {
  const entries = Array.from({ length: 10_000 }, (_, idx) => ({ resource: { resourceType: "Patient", name: [{ family: `Batch${idx}` }] }, request: { method: "POST", url: "Patient" } }));
  let batchDone = false;
  const batch = sendRaw(server.port, {
    method: "POST",
    path: "",
    headers: { "Content-Type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Bundle", type: "batch", entry: entries }),
  }).then((answer) => {
    batchDone = true;
    return answer;
  });
  const latencies = [];
  let duringBatch = 0;
  while (!batchDone && latencies.length < 5000) {
    const start = performance.now();
    const read = await sendRaw(server.port, { method: "GET", path: "Observation?_count=10" });
    latencies.push(performance.now() - start);
    assert.equal(read.status, 200);
    if (!batchDone) duringBatch += 1;
  }
  const answer = await batch;
  assert.equal(answer.status, 200);
  assert.equal(JSON.parse(answer.body).entry.filter((entry) => entry.response.status.startsWith("201")).length, 10_000);
  // Reads did not wait for the batch: many were answered while it ran.
  assert.ok(duringBatch >= 10, `only ${duringBatch} reads were answered while the batch ran`);
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? latencies.at(-1);
  console.log(`hostile: ${duringBatch} reads answered while a 10,000-entry batch ran; read p50 ${latencies[latencies.length >> 1].toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
  await stillAnswers();
});

test("a read that runs past --timeout is stopped and answered 503, and the server goes on", async () => {
  const slowDir = mkdtempSync(join(tmpdir(), "hearth-timeout-"));
  const patient = readdirSync(SYNTHEA).filter((name) => name.endsWith(".json")).sort()[0];
  const imported = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "import", "--data", slowDir, join(SYNTHEA, patient)], { encoding: "utf8" });
  assert.equal(imported.status, 0, imported.stderr);
  const slow = await serve(slowDir, ["--timeout", "0.001", "--readers", "1"]).catch((err) => err);
  try {
    assert.ok(!(slow instanceof Error), String(slow));
    // A page of up to 1,000 sorted Observations and what they reference is not read in a
    // millisecond.
    const answer = await sendRaw(slow.port, { method: "GET", path: "Observation?_sort=-date&_count=1000&_include=*" });
    assert.equal(answer.status, 503, answer.body);
    assert.equal(JSON.parse(answer.body).issue[0].code, "timeout");
    // Writes go on; a fresh reader takes the next read.
    const created = await sendRaw(slow.port, { method: "POST", path: "Patient", headers: { "Content-Type": "application/fhir+json" }, body: '{"resourceType":"Patient"}' });
    assert.equal(created.status, 201);
    assert.match(slow.output(), /took longer than/);
  } finally {
    if (!(slow instanceof Error)) await stop(slow.child);
    rmSync(slowDir, { recursive: true, force: true });
  }
});

test("--host 0.0.0.0 --no-auth is warned about, and answers only the hosts allowed", async () => {
  const open = await serve(undefined, ["--host", "0.0.0.0", "--no-auth"]);
  try {
    assert.match(open.output(), /reachable from other machines/);
    const refused = await sendRaw(open.port, { method: "GET", path: "metadata" });
    assert.equal(refused.status, 421);
  } finally {
    await stop(open.child);
  }
  const allowed = await serve(undefined, ["--host", "0.0.0.0", "--no-auth", "--allow-host", "127.0.0.1"]);
  try {
    // A name allowed without a port is answered on any port.
    assert.equal((await sendRaw(allowed.port, { method: "GET", path: "metadata" })).status, 200);
    const other = await sendRaw(allowed.port, { method: "GET", path: "metadata", headers: { Host: "attacker.example" } });
    assert.equal(other.status, 421);
  } finally {
    await stop(allowed.child);
  }
});

test("If-Match races have one winner, and repeated kills lose no acknowledged write", async () => {
  const raceDir = mkdtempSync(join(tmpdir(), "hearth-race-"));
  const json = { "Content-Type": "application/fhir+json" };
  try {
    let current = await serve(raceDir);
    // Twenty updates of one version at once: exactly one wins, every other is a 412.
    const created = await sendRaw(current.port, { method: "POST", path: "Patient", headers: json, body: '{"resourceType":"Patient"}' });
    const id = JSON.parse(created.body).id;
    for (let round = 1; round <= 3; round += 1) {
      const body = JSON.stringify({ resourceType: "Patient", id, active: true });
      const answers = await Promise.all(Array.from({ length: 20 }, () => sendRaw(current.port, { method: "PUT", path: `Patient/${id}`, headers: { ...json, "If-Match": `W/"${round}"` }, body })));
      const statuses = answers.map((answer) => answer.status).sort();
      assert.deepEqual(statuses, [200, ...Array(19).fill(412)], `round ${round}`);
    }
    // Kills in the middle of writes, three times over one store.
    const acknowledged = [];
    const transactions = [];
    for (let kill = 0; kill < 3; kill += 1) {
      let running = true;
      const writer = async (name) => {
        for (let idx = 0; running; idx += 1) {
          const answer = await sendRaw(current.port, { method: "POST", path: "Patient", headers: json, body: JSON.stringify({ resourceType: "Patient", name: [{ family: `${name}-${kill}-${idx}` }] }) }).catch(() => null);
          if (answer === null) return;
          if (answer.status === 201) acknowledged.push(JSON.parse(answer.body).id);
        }
      };
      const transactionWriter = async () => {
        for (let idx = 0; running; idx += 1) {
          const practitioner = `urn:uuid:00000000-0000-4000-8000-${String(kill * 100000 + idx).padStart(12, "0")}`;
          const role = { resourceType: "PractitionerRole", practitioner: { reference: practitioner } };
          const bundle = {
            resourceType: "Bundle",
            type: "transaction",
            entry: [
              { fullUrl: practitioner, resource: { resourceType: "Practitioner" }, request: { method: "POST", url: "Practitioner" } },
              { resource: role, request: { method: "POST", url: "PractitionerRole" } },
              { resource: role, request: { method: "POST", url: "PractitionerRole" } },
            ],
          };
          const answer = await sendRaw(current.port, { method: "POST", path: "", headers: json, body: JSON.stringify(bundle) }).catch(() => null);
          if (answer === null) return;
          if (answer.status === 200) transactions.push(JSON.parse(answer.body).entry.map((entry) => entry.response.location.split("/_history")[0]));
        }
      };
      const writers = [writer("a"), writer("b"), transactionWriter()];
      await new Promise((resolve) => setTimeout(resolve, 700));
      await stop(current.child);
      running = false;
      await Promise.all(writers);
      current = await serve(raceDir);
    }
    try {
      for (const patient of acknowledged) {
        assert.equal((await sendRaw(current.port, { method: "GET", path: `Patient/${patient}` })).status, 200, `acknowledged Patient/${patient} is missing`);
      }
      for (const locations of transactions) {
        for (const location of locations) {
          assert.equal((await sendRaw(current.port, { method: "GET", path: location })).status, 200, `${location} of an acknowledged transaction is missing`);
        }
      }
      const total = async (type) => JSON.parse((await sendRaw(current.port, { method: "GET", path: `${type}?_summary=count` })).body).total;
      assert.equal(await total("PractitionerRole"), 2 * (await total("Practitioner")), "a transaction was stored in part");
      assert.ok(acknowledged.length > 30 && transactions.length > 5, `${acknowledged.length} writes, ${transactions.length} transactions`);
      console.log(`hostile: 3 kills: ${acknowledged.length} writes and ${transactions.length} transactions acknowledged, all found; 3 If-Match races of 20, one winner each`);
    } finally {
      await stop(current.child);
    }
  } finally {
    rmSync(raceDir, { recursive: true, force: true });
  }
});

// FhirStore after a real Wasm trap: the request is answered 500, the engine restarts, and the
// same store (SQLite, which holds its directory's lock) answers the next requests with all its
// data; nothing the failed request began is stored.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FhirStore, engineMemoryBytes } from "hearth-fhir";

test("a Wasm trap under FhirStore is answered 500, and the store carries on", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-store-trap-"));
  const store = await FhirStore.open({ path: dir, validation: false, limits: { maxResponseBytes: 2 ** 52, maxWork: 2 ** 52, maxBodyBytes: 2 ** 30 } });
  try {
    const big = "x".repeat(1 << 20);
    let id;
    for (let n = 0; n < 40; n += 1) id = (await store.create({ resourceType: "Observation", status: "final", code: { text: "c" }, valueString: big })).id;
    const logged = [];
    const log = console.error;
    console.error = (line) => logged.push(String(line));
    let answer;
    try {
      // A transaction reading one 1 MB resource 4,200 times exhausts the module's 4 GB.
      const entries = Array.from({ length: 4200 }, () => ({ request: { method: "GET", url: `Observation/${id}` } }));
      entries.push({ resource: { resourceType: "Patient", id: "never" }, request: { method: "PUT", url: "Patient/never" } });
      answer = await store.handle("POST", "", { headers: { "content-type": "application/fhir+json" }, body: JSON.stringify({ resourceType: "Bundle", type: "transaction", entry: entries }) });
    } finally {
      console.error = log;
    }
    assert.equal(answer.status, 500, answer.body.slice(0, 300));
    assert.match(JSON.parse(answer.body).issue[0].diagnostics, /restarted/);
    assert.ok(logged.some((line) => /Wasm module failed .*restarted/.test(line)), logged.join("\n"));
    assert.ok(engineMemoryBytes() < 256 * 1024 * 1024);
    assert.equal((await store.search("Observation", { _summary: "count" })).total, 40);
    await assert.rejects(store.read("Patient", "never"), (err) => err.status === 404);
    assert.equal((await store.create({ resourceType: "Patient" })).meta.versionId, "1");
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

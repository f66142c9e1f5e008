// `hearth serve` over HTTP on 127.0.0.1, with its SQLite store: the REST interactions, their
// headers and errors, and a kill in the middle of a stream of writes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FhirService } from "hearth-fhir";
import { NPM_DIR } from "../lib/paths.js";
import { serve, stop } from "../lib/serve.js";

const patient = (extra = {}) => JSON.stringify({ resourceType: "Patient", name: [{ family: "Ng" }], ...extra });

test("the REST API over HTTP: create, read, update, delete, history, $validate, metadata", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-serve-"));
  const { child, base } = await serve(dir);
  try {
    const headers = { "Content-Type": "application/fhir+json" };
    const created = await fetch(`${base}/Patient`, { method: "POST", headers, body: patient() });
    assert.equal(created.status, 201);
    const location = created.headers.get("location");
    assert.match(location, new RegExp(`^${base}/Patient/[0-9a-f-]{36}/_history/1$`));
    assert.equal(created.headers.get("etag"), 'W/"1"');
    const body = await created.json();
    assert.equal(body.meta.versionId, "1");
    const url = `${base}/Patient/${body.id}`;

    const read = await fetch(url);
    assert.equal(read.status, 200);
    assert.ok(read.headers.get("last-modified"));
    assert.equal((await fetch(url, { headers: { "If-None-Match": 'W/"1"' } })).status, 304);

    const update = patient({ id: body.id, name: [{ family: "Li" }] });
    assert.equal((await fetch(url, { method: "PUT", headers: { ...headers, "If-Match": 'W/"9"' }, body: update })).status, 412);
    const updated = await fetch(url, { method: "PUT", headers: { ...headers, "If-Match": 'W/"1"' }, body: update });
    assert.equal(updated.status, 200);
    assert.equal(updated.headers.get("etag"), 'W/"2"');
    assert.equal((await (await fetch(`${url}/_history/1`)).json()).name[0].family, "Ng");

    assert.equal((await fetch(url, { method: "DELETE" })).status, 204);
    const gone = await fetch(url);
    assert.equal(gone.status, 410);
    assert.equal((await gone.json()).issue[0].code, "deleted");
    const history = await (await fetch(`${url}/_history`)).json();
    assert.deepEqual(history.entry.map((entry) => entry.request.method), ["DELETE", "PUT", "POST"]);

    const invalid = await fetch(`${base}/Patient`, { method: "POST", headers, body: patient({ gender: "nope" }) });
    assert.equal(invalid.status, 422);
    assert.equal((await invalid.json()).issue[0].expression[0], "Patient.gender");
    const malformed = await fetch(`${base}/Patient`, { method: "POST", headers, body: '{"resourceType":' });
    assert.equal(malformed.status, 400);
    const validated = await (await fetch(`${base}/Patient/$validate`, { method: "POST", headers, body: patient({ gender: "nope" }) })).json();
    assert.equal(validated.issue.find((issue) => issue.severity === "error").expression[0], "Patient.gender");
    const metadata = await fetch(`${base}/metadata`);
    assert.equal((await metadata.json()).resourceType, "CapabilityStatement");
    assert.equal((await fetch(`${base}/metadata?_format=xml`)).status, 406);
    assert.equal((await fetch(`${base}/Nothing/1`)).status, 404);
    assert.equal((await fetch(`${base.replace(/\/fhir$/, "")}/elsewhere`)).status, 404);
  } finally {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a kill during a stream of writes loses no acknowledged write and leaves no half of one", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-crash-"));
  try {
    const first = await serve(dir);
    const acknowledged = [];
    let failures = 0;
    // Writers keep going until the kill; every write they saw acknowledged is recorded.
    const writer = async (name) => {
      for (let idx = 0; ; idx += 1) {
        try {
          const response = await fetch(`${first.base}/Patient`, { method: "POST", headers: { "Content-Type": "application/fhir+json" }, body: patient({ name: [{ family: `${name}-${idx}` }] }) });
          if (response.status !== 201) throw new Error(`status ${response.status}`);
          const body = await response.json();
          acknowledged.push([body.id, `${name}-${idx}`]);
        } catch {
          failures += 1;
          return;
        }
      }
    };
    // A transaction writer: a Practitioner and two PractitionerRoles that point at it, all or
    // nothing.
    const acknowledgedTransactions = [];
    const transactionWriter = async () => {
      for (let idx = 0; ; idx += 1) {
        const practitioner = `urn:uuid:00000000-0000-4000-8000-${String(idx).padStart(12, "0")}`;
        const role = { resourceType: "PractitionerRole", practitioner: { reference: practitioner } };
        const bundle = {
          resourceType: "Bundle",
          type: "transaction",
          entry: [
            { fullUrl: practitioner, resource: { resourceType: "Practitioner", name: [{ family: `tx-${idx}` }] }, request: { method: "POST", url: "Practitioner" } },
            { resource: role, request: { method: "POST", url: "PractitionerRole" } },
            { resource: role, request: { method: "POST", url: "PractitionerRole" } },
          ],
        };
        try {
          const response = await fetch(first.base, { method: "POST", headers: { "Content-Type": "application/fhir+json" }, body: JSON.stringify(bundle) });
          if (response.status !== 200) throw new Error(`status ${response.status}`);
          const body = await response.json();
          acknowledgedTransactions.push(body.entry.map((entry) => entry.response.location.split("/_history")[0]));
        } catch {
          return;
        }
      }
    };
    const writers = [writer("a"), writer("b"), writer("c"), transactionWriter()];
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await stop(first.child);
    await Promise.all(writers);
    assert.ok(acknowledged.length > 20, `only ${acknowledged.length} writes were acknowledged`);

    const second = await serve(dir);
    try {
      for (const [id, family] of acknowledged) {
        const response = await fetch(`${second.base}/Patient/${id}`);
        assert.equal(response.status, 200, `acknowledged Patient/${id} is missing after the kill`);
        assert.equal((await response.json()).name[0].family, family);
      }
      // Every stored resource is whole: listed, and readable with its version.
      const listed = await (await fetch(`${second.base}/Patient?_count=1000`)).json();
      assert.ok(listed.total >= acknowledged.length);
      for (const entry of listed.entry) {
        assert.equal(entry.resource.meta.versionId, "1");
        const read = await fetch(`${second.base}/Patient/${entry.resource.id}`);
        assert.equal(read.status, 200);
      }
      // Transactions: every acknowledged one whole, and none stored in part anywhere.
      assert.ok(acknowledgedTransactions.length > 5, `only ${acknowledgedTransactions.length} transactions were acknowledged`);
      for (const locations of acknowledgedTransactions) {
        for (const location of locations) {
          assert.equal((await fetch(`${second.base}/${location}`)).status, 200, `${location} of an acknowledged transaction is missing`);
        }
      }
      const practitioners = (await (await fetch(`${second.base}/Practitioner?_count=0`)).json()).total;
      const roles = (await (await fetch(`${second.base}/PractitionerRole?_count=0`)).json()).total;
      assert.equal(roles, 2 * practitioners, "a transaction was stored in part");
      console.log(
        `crash test: ${acknowledged.length} writes and ${acknowledgedTransactions.length} transactions acknowledged before the kill, all found after restart; ` +
          `${listed.total} patients, ${practitioners} practitioners and ${roles} roles stored`,
      );
    } finally {
      await stop(second.child);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("FhirService runs in the process over memory", () => {
  const service = new FhirService({ baseUrl: "http://example.org/fhir" });
  const created = service.handle({ method: "POST", path: "Observation", body: JSON.stringify({ resourceType: "Observation", status: "final", code: { text: "x" } }) });
  assert.equal(created.status, 201);
  const id = JSON.parse(created.body).id;
  const read = service.handle({ method: "GET", path: `Observation/${id}`, headers: { "if-none-match": 'W/"1"' } });
  assert.equal(read.status, 304);
  assert.deepEqual(Object.fromEntries(service.handle({ method: "GET", path: `Observation/${id}` }).headers).ETag, 'W/"1"');
});

test("hearth import stores Bundles, single resources and NDJSON, and reports what failed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-import-"));
  try {
    const files = join(dir, "in");
    const { mkdirSync, writeFileSync } = await import("node:fs");
    mkdirSync(files);
    writeFileSync(join(files, "a-transaction.json"), JSON.stringify({
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        { fullUrl: "urn:uuid:9a1f0c3e-1111-4222-8333-944455556666", resource: { resourceType: "Patient", name: [{ family: "Ng" }] }, request: { method: "POST", url: "Patient" } },
        { resource: { resourceType: "Observation", status: "final", code: { text: "x" }, subject: { reference: "urn:uuid:9a1f0c3e-1111-4222-8333-944455556666" } }, request: { method: "POST", url: "Observation" } },
      ],
    }));
    writeFileSync(join(files, "b-collection.json"), JSON.stringify({ resourceType: "Bundle", type: "collection", entry: [{ resource: { resourceType: "Patient", id: "kept-id" } }] }));
    writeFileSync(join(files, "c-single.json"), JSON.stringify({ resourceType: "Organization", name: "Clinic" }));
    writeFileSync(join(files, "d.ndjson"), `${JSON.stringify({ resourceType: "Patient", id: "nd1" })}\n${JSON.stringify({ resourceType: "Patient", gender: "nope" })}\n`);
    const { spawnSync } = await import("node:child_process");
    const data = join(dir, "data");
    const run = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "import", "--data", data, files], { encoding: "utf8" });
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /4 files, 5 resources stored/);
    assert.match(run.stderr, /d\.ndjson: 422 Unprocessable Entity: .*gender/);
    const { child, base } = await serve(data);
    try {
      assert.equal((await fetch(`${base}/Patient/kept-id`)).status, 200);
      assert.equal((await fetch(`${base}/Patient/nd1`)).status, 200);
      const observations = await (await fetch(`${base}/Observation`)).json();
      assert.match(observations.entry[0].resource.subject.reference, /^Patient\/[0-9a-f-]{36}$/);
    } finally {
      await stop(child);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a malformed request URL gets a 400, and a second process cannot open a store in use", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-lock-"));
  const { child, base } = await serve(dir);
  try {
    const bad = await fetch(`${base}/Patient/%E0`);
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).issue[0].code, "invalid");
    assert.equal((await fetch(`${base}/metadata`)).status, 200, "the server goes on after a bad request");
    const { spawnSync } = await import("node:child_process");
    const second = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "import", "--data", dir, `${NPM_DIR}/package.json`], { encoding: "utf8" });
    assert.equal(second.status, 1);
    assert.match(second.stderr, /in use by another process/);
  } finally {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
});

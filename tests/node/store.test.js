// FhirStore in Node: the JS API over memory, SQLite and a store of the host's own whose
// methods answer Promises; import and export; change events; fetch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { FhirStore, FhirError } from "hearth-fhir";

/** An ordered key-value store whose methods answer Promises after a random delay. */
function asyncStore({ failCommit = false } = {}) {
  const data = new Map();
  const hex = (bytes) => Buffer.from(bytes).toString("hex");
  const later = (value) => new Promise((resolve) => setTimeout(() => resolve(value), Math.random() * 3));
  const sorted = () => [...data.keys()].sort();
  return {
    data,
    get: (key) => later(data.get(hex(key))?.value),
    scan: (start, end, limit, reverse) => {
      const from = hex(start);
      const to = end === undefined ? undefined : hex(end);
      let keys = sorted().filter((key) => key >= from && (to === undefined || key < to));
      if (reverse) keys = keys.reverse();
      return later(keys.slice(0, limit).map((key) => [data.get(key).key, data.get(key).value]));
    },
    commit: async (writes) => {
      await later();
      if (failCommit) throw new Error("the disk is gone");
      for (const [key, value] of writes) {
        if (value === undefined) data.delete(hex(key));
        else data.set(hex(key), { key: new Uint8Array(key), value: new Uint8Array(value) });
      }
    },
  };
}

test("a store of the host's own whose methods answer Promises works through FhirStore", async () => {
  const host = asyncStore();
  const store = await FhirStore.open({ store: host });
  const patient = await store.create({ resourceType: "Patient", name: [{ family: "Async" }] });
  assert.equal((await store.read("Patient", patient.id)).name[0].family, "Async");
  const result = await store.transaction({
    resourceType: "Bundle",
    type: "transaction",
    entry: [{ fullUrl: "urn:uuid:0b0c2a52-77a5-4b39-9c67-4d3e7f1d2a01", resource: { resourceType: "Organization", name: "Org" }, request: { method: "POST", url: "Organization" } }, { resource: { resourceType: "Patient", managingOrganization: { reference: "urn:uuid:0b0c2a52-77a5-4b39-9c67-4d3e7f1d2a01" } }, request: { method: "POST", url: "Patient" } }],
  });
  assert.deepEqual(result.entry.map((entry) => entry.response.status), ["201 Created", "201 Created"]);
  assert.equal((await store.search("Patient", { "organization.name": "org" })).total, 1);
  assert.ok(host.data.size > 0);
  // Requests made at once are answered one after another, all of them.
  const many = await Promise.all(Array.from({ length: 20 }, (_, n) => store.create({ resourceType: "Patient", id: undefined, birthDate: `2000-01-${String(n + 1).padStart(2, "0")}` })));
  assert.equal(new Set(many.map((p) => p.id)).size, 20);
  assert.equal((await store.search("Patient", { birthdate: "ge2000-01-01", _summary: "count" })).total, 20);
});

test("an asynchronous store that fails to commit fails the request loudly, and nothing is acknowledged", async () => {
  const host = asyncStore({ failCommit: true });
  const store = await FhirStore.open({ store: host });
  await assert.rejects(store.update({ resourceType: "Patient", id: "p1" }), (err) => err instanceof FhirError && err.status === 500 && /the disk is gone/.test(err.message));
  await assert.rejects(store.read("Patient", "p1"), (err) => err.status === 404);
  assert.equal(host.data.size, 0);
});

test("the JS API answers as the REST API does", async () => {
  const store = await FhirStore.open({ memory: true });
  const created = await store.create({ resourceType: "Patient", name: [{ family: "Api" }], gender: "female" });
  assert.equal(created.meta.versionId, "1");
  const updated = await store.update({ ...created, active: true }, { ifMatch: "1" });
  assert.equal(updated.meta.versionId, "2");
  await assert.rejects(store.update({ ...created, active: false }, { ifMatch: 1 }), (err) => err.status === 412 && err.outcome.issue[0].code === "conflict");
  assert.equal((await store.vread("Patient", created.id, 1)).active, undefined);
  assert.equal((await store.patch("Patient", created.id, [{ op: "replace", path: "/gender", value: "other" }])).gender, "other");
  const fhirpathPatch = { resourceType: "Parameters", parameter: [{ name: "operation", part: [{ name: "type", valueCode: "delete" }, { name: "path", valueString: "Patient.active" }] }] };
  assert.equal((await store.patch("Patient", created.id, fhirpathPatch)).active, undefined);
  assert.equal((await store.history("Patient", created.id)).entry.length, 4);
  assert.deepEqual(await store.evaluate("Patient.name.family", { type: "Patient", id: created.id }), ["Api"]);
  assert.deepEqual(await store.evaluate("gender", { type: "Patient", params: { family: "api" } }), [{ resource: `Patient/${created.id}`, result: ["other"] }]);
  const outcome = await store.validate({ resourceType: "Patient", gender: "hen" });
  assert.ok(outcome.issue.some((issue) => issue.severity === "error"));
  const batch = await store.batch({ resourceType: "Bundle", type: "batch", entry: [{ request: { method: "GET", url: `Patient/${created.id}` } }, { request: { method: "GET", url: "Patient/none" } }] });
  assert.deepEqual(batch.entry.map((entry) => entry.response.status.slice(0, 3)), ["200", "404"]);
  await assert.rejects(store.transaction({ resourceType: "Bundle", type: "batch" }), (err) => err.status === 400);
  await store.delete("Patient", created.id);
  await assert.rejects(store.read("Patient", created.id), (err) => err instanceof FhirError && err.status === 410);
  await assert.rejects(store.create({ resourceType: "Patient", gender: "hen" }), (err) => err.status === 422 && err.outcome.issue[0].expression[0] === "Patient.gender");
  await assert.rejects(store.read("patient", "x"), (err) => err.status === 400);
  await assert.rejects(FhirStore.open({ memory: true, name: "x" }), /exactly one of/);
  await assert.rejects(FhirStore.open({ name: "x" }), (err) => err.status === 501 && /IndexedDB is not available/.test(err.message));
  await assert.rejects(FhirStore.open({ memory: true, limits: { maxShoes: 1 } }), /unknown limit/);
});

test("validation: false stores a resource the checks would refuse; profiles are checked on writes", async () => {
  const loose = await FhirStore.open({ memory: true, validation: false });
  assert.equal((await loose.create({ resourceType: "Patient", gender: "hen" })).gender, "hen");
  const profile = {
    resourceType: "StructureDefinition",
    url: "http://example.org/fhir/StructureDefinition/named-patient",
    name: "NamedPatient",
    status: "active",
    kind: "resource",
    abstract: false,
    type: "Patient",
    baseDefinition: "http://hl7.org/fhir/StructureDefinition/Patient",
    derivation: "constraint",
    differential: { element: [{ id: "Patient.name", path: "Patient.name", min: 1 }] },
  };
  const strict = await FhirStore.open({ memory: true, profiles: [profile] });
  const claims = { resourceType: "Patient", meta: { profile: [profile.url] } };
  await assert.rejects(strict.create(claims), (err) => err.status === 422 && /"name"/.test(err.message) && /named-patient/.test(err.message));
  assert.ok((await strict.create({ ...claims, name: [{ family: "Named" }] })).id);
});

test("conditional create matches values with spaces", async () => {
  const store = await FhirStore.open({ memory: true });
  const first = await store.create({ resourceType: "Patient", name: [{ family: "Van Dyke" }] }, { ifNoneExist: { family: "Van Dyke" } });
  const second = await store.create({ resourceType: "Patient", name: [{ family: "Van Dyke" }] }, { ifNoneExist: { family: "Van Dyke" } });
  assert.equal(second.id, first.id);
  assert.equal((await store.search("Patient", { _summary: "count" })).total, 1);
});

test("a collection Bundle is imported whole, its references by fullUrl kept", async () => {
  const store = await FhirStore.open({ memory: true });
  const bundle = {
    resourceType: "Bundle",
    type: "collection",
    entry: [
      { fullUrl: "urn:uuid:5d4f8a0e-3c1b-4f7e-9a2d-6b8c0e1f2a3b", resource: { resourceType: "Patient", name: [{ family: "Linked" }] } },
      { fullUrl: "urn:uuid:7e6a9b1c-2d3f-4a5b-8c9d-0e1f2a3b4c5d", resource: { resourceType: "Observation", status: "final", code: { text: "x" }, subject: { reference: "urn:uuid:5d4f8a0e-3c1b-4f7e-9a2d-6b8c0e1f2a3b" } } },
    ],
  };
  assert.deepEqual(await store.import(bundle), { resources: 2, bundles: 1, warnings: [] });
  const found = await store.search("Observation", { "subject:Patient.family": "linked" });
  assert.equal(found.total, 1);
});

test("import takes NDJSON streams with progress, stops on abort, and reports the failing entry keeping those before it", async () => {
  const store = await FhirStore.open({ memory: true });
  const lines = Array.from({ length: 1200 }, (_, n) => JSON.stringify({ resourceType: "Patient", id: `p${n}`, birthDate: "1990-01-01" }) + "\n");
  const progress = [];
  const result = await store.import(Readable.from(lines.map((line) => Buffer.from(line))), { onProgress: (p) => progress.push(p.resources), batchSize: 500 });
  assert.deepEqual(result, { resources: 1200, bundles: 0, warnings: [] });
  assert.deepEqual(progress, [500, 1000, 1200]);
  assert.equal((await store.search("Patient", { _summary: "count" })).total, 1200);

  const bad = [...lines.slice(0, 10).map((line) => line.replace(/"p(\d+)"/, '"q$1"')), '{"resourceType":"Patient","gender":"hen"}\n', '{"resourceType":"Patient","id":"after"}\n'];
  await assert.rejects(store.import(bad.join("")), (err) => err instanceof FhirError && err.entry === 10 && err.line === 11 && err.stored === 10 && err.status === 422);
  assert.equal((await store.search("Patient", { _id: "q0,q9,after" })).total, 2);

  const controller = new AbortController();
  const aborted = store.import(
    lines.map((line) => JSON.parse(line.replace(/"p(\d+)"/, '"r$1"'))),
    { signal: controller.signal, batchSize: 100, onProgress: (p) => p.resources >= 300 && controller.abort() },
  );
  await assert.rejects(aborted, (err) => err.status === 499 && err.progress.resources === 300);
  assert.equal((await store.search("Patient", { _id: Array.from({ length: 400 }, (_, n) => `r${n}`).join(","), _summary: "count" })).total, 300);

  await assert.rejects(store.import('{"resourceType":"Patient"}\n{not json}\n'), (err) => err.line === 2 && err.status === 400);
  const bundle = { resourceType: "Bundle", type: "collection", entry: [{ resource: { resourceType: "Organization", id: "o1", name: "One" } }] };
  assert.deepEqual(await store.import(bundle), { resources: 1, bundles: 1, warnings: [] });
  assert.equal((await store.read("Organization", "o1")).name, "One");
});

test("import stores batch after batch in order: a failing entry stops it, with every batch before it stored and none after", async () => {
  const store = await FhirStore.open({ memory: true });
  const lines = Array.from({ length: 1000 }, (_, n) =>
    n === 250 ? '{"resourceType":"Patient","gender":"hen"}' : JSON.stringify({ resourceType: "Patient", id: `s${n}` }),
  );
  const progress = [];
  await assert.rejects(
    store.import(lines.join("\n"), { batchSize: 100, onProgress: (p) => progress.push(p.resources) }),
    (err) => err instanceof FhirError && err.entry === 250 && err.stored === 50 && err.status === 422,
  );
  assert.deepEqual(progress, [100, 200]);
  const ids = Array.from({ length: 1000 }, (_, n) => `s${n}`);
  const stored = async (from, to) => (await store.search("Patient", { _id: ids.slice(from, to).join(","), _summary: "count" })).total;
  assert.equal(await stored(0, 250), 250);
  assert.equal(await stored(251, 1000), 0);

  // A batch still being stored when a later line fails is settled first, and its own failure
  // is the one reported.
  const mixed = ['{"resourceType":"Patient","id":"m0"}', '{"resourceType":"Patient","id":"m1","gender":"hen"}', "{not json"];
  await assert.rejects(store.import(mixed.join("\n"), { batchSize: 2 }), (err) => err.entry === 1 && err.stored === 1 && err.status === 422);
  assert.equal((await store.search("Patient", { _id: "m0,m1", _summary: "count" })).total, 1);
});

test("import stores NDJSON lines as written: decimals keep their digits, CRLF line ends are read", async () => {
  const store = await FhirStore.open({ memory: true });
  const lines = [
    '{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"weight"},"valueQuantity":{"value":70.50,"unit":"kg"}}',
    '{"resourceType":"Observation","status":"final","code":{"text":"tiny"},"valueQuantity":{"value":1.000e-7}}',
  ];
  assert.deepEqual(await store.import(lines.join("\r\n") + "\r\n"), { resources: 2, bundles: 0, warnings: [] });
  const text = await (await store.fetch("Observation/o1")).text();
  assert.match(text, /"value":70\.50[,}]/);
  const found = await (await store.fetch("Observation?code:text=tiny")).text();
  assert.match(found, /"value":1\.000e-7[,}]/);
  // Read by the FHIR JSON rules as written: a duplicate key or an integer written `2.0` is
  // refused with its line, as a create of that text is.
  await assert.rejects(store.import('{"resourceType":"Patient","id":"d","active":true,"active":false}\n{"resourceType":"Patient","id":"e"}\n'), (err) => err.status === 400 && err.line === 1 && /duplicate/.test(err.message));
  await assert.rejects(store.import('{"resourceType":"Patient","id":"d","multipleBirthInteger":2.0}\n{"resourceType":"Patient","id":"e"}\n'), (err) => err.status === 400 && err.line === 1);
  // Leniently, such lines are stored as JSON.parse reads them; clean ones as written.
  const lenient = await store.import('{"resourceType":"Patient","id":"d","active":true,"active":false}\n{"resourceType":"Patient","id":"f","multipleBirthInteger":2.0}\n{"resourceType":"Observation","id":"o3","status":"final","code":{"text":"w"},"valueQuantity":{"value":2.50}}\n', { strict: false });
  assert.deepEqual(lenient, { resources: 3, bundles: 0, warnings: [] });
  assert.equal((await store.read("Patient", "d")).active, false);
  assert.equal((await store.read("Patient", "f")).multipleBirthInteger, 2);
  assert.match(await (await store.fetch("Observation/o3")).text(), /"value":2\.50[,}]/);
  // A lone surrogate in a string source is refused, not stored as U+FFFD.
  await assert.rejects(store.import(new Set(['{"resourceType":"Patient","id":"s","name":[{"family":"a\ud800b"}]}\n{"resourceType":"Patient","id":"t"}\n'])), (err) => err.status === 400 && err.line === 1);
  assert.equal((await store.fetch("Patient/s")).status, 404);
  // An object given to import has only the digits JavaScript kept.
  await store.import([{ resourceType: "Observation", id: "o2", status: "final", code: { text: "weight" }, valueQuantity: { value: 70.5 } }]);
  assert.match(await (await store.fetch("Observation/o2")).text(), /"value":70\.5[,}]/);
});

test("export writes every current resource as NDJSON that imports into another store", async () => {
  const source = await FhirStore.open({ memory: true });
  await source.import(Array.from({ length: 2500 }, (_, n) => ({ resourceType: n % 2 ? "Patient" : "Organization", id: `x${n}`, ...(n % 2 ? {} : { name: `Org ${n}` }) })));
  await source.delete("Patient", "x1");
  let text = "";
  for await (const chunk of source.export()) text += chunk;
  assert.equal(text.trim().split("\n").length, 2499);
  const target = await FhirStore.open({ memory: true });
  await target.import(text);
  assert.equal((await target.search("Organization", { _summary: "count" })).total, 1250);
  assert.equal((await target.read("Organization", "x2")).name, "Org 2");
});

test("change events name what changed; a closed store answers 503", async () => {
  const store = await FhirStore.open({ memory: true });
  const seen = [];
  const off = store.on("change", (change) => seen.push(`${change.method} ${change.resourceType}/${change.id} ${change.versionId ?? ""}`.trim()));
  await store.update({ resourceType: "Patient", id: "c1" });
  await store.update({ resourceType: "Patient", id: "c1", active: true });
  await store.transaction({ resourceType: "Bundle", type: "transaction", entry: [{ resource: { resourceType: "Patient", id: "c2" }, request: { method: "PUT", url: "Patient/c2" } }] });
  await store.delete("Patient", "c1");
  await store.delete("Patient", "never");
  await store.read("Patient", "c2");
  await store.update({ resourceType: "Patient", id: "c4", name: [{ family: "Gone" }] });
  await store.transaction({ resourceType: "Bundle", type: "transaction", entry: [{ request: { method: "DELETE", url: "Patient/c2" } }, { request: { method: "DELETE", url: "Patient?family=gone" } }] });
  off();
  await store.update({ resourceType: "Patient", id: "c3" });
  assert.deepEqual(seen, [
    "create Patient/c1 1",
    "update Patient/c1 2",
    "create Patient/c2 1",
    "delete Patient/c1 3",
    "create Patient/c4 1",
    "delete Patient/c2 2",
    "delete Patient/undefined 2",
  ]);
  await store.close();
  await assert.rejects(store.read("Patient", "c2"), (err) => err.status === 503);
});

test("a store whose values are ArrayBuffers works; one answering something else fails loudly", async () => {
  const host = asyncStore();
  const buffers = { ...host, get: async (key) => (await host.get(key))?.slice().buffer };
  const store = await FhirStore.open({ store: buffers });
  const created = await store.create({ resourceType: "Patient" });
  assert.equal((await store.read("Patient", created.id)).id, created.id);
  const broken = await FhirStore.open({ store: { ...host, get: async () => "not bytes" } });
  await assert.rejects(broken.read("Patient", created.id), (err) => err.status === 500 && /not bytes/.test(err.message));
});

test("fetch answers Requests and URLs under the base URL, and 404 outside it", async () => {
  const store = await FhirStore.open({ memory: true, baseUrl: "https://example.org/r4" });
  const created = await store.fetch("Patient", { method: "POST", headers: { "Content-Type": "application/fhir+json" }, body: '{"resourceType":"Patient"}' });
  assert.equal(created.status, 201);
  assert.match(created.headers.get("location"), /^https:\/\/example\.org\/r4\/Patient\/[^/]+\/_history\/1$/);
  const read = await store.fetch(new Request(created.headers.get("location")));
  assert.equal(read.status, 200);
  assert.equal((await store.fetch("https://example.org/other/Patient")).status, 404);
  assert.equal((await store.fetch("/Patient?_count=1")).status, 200);
  assert.equal((await store.fetch("Patient", { method: "HEAD" })).status, 200);
});

test("a store on a path is the SQLite store of hearth serve, and keeps its data", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-store-"));
  try {
    let store = await FhirStore.open({ path: dir });
    await store.update({ resourceType: "Patient", id: "kept", name: [{ family: "Kept" }] });
    await store.close();
    store = await FhirStore.open({ path: dir });
    assert.equal((await store.read("Patient", "kept")).name[0].family, "Kept");
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("import with strict: false stores what reads, lists what it left out by entry, and strict refuses it", async () => {
  const store = await FhirStore.open({ memory: true });
  try {
    const odd = { resourceType: "Patient", id: "odd", favouriteColour: "green", name: [{ family: "Odd" }] };
    const fine = { resourceType: "Patient", id: "fine", name: [{ family: "Fine" }] };
    const ndjson = [fine, odd].map((r) => JSON.stringify(r)).join("\n");
    await assert.rejects(store.import(ndjson), (err) => err.entry === 1 && err.line === 2 && /favouriteColour/.test(err.message));

    const result = await store.import(ndjson, { strict: false });
    assert.equal(result.resources, 2);
    assert.equal(result.warnings.length, 1);
    assert.deepEqual([result.warnings[0].entry, result.warnings[0].line], [1, 2]);
    assert.equal(result.warnings[0].outcome.issue[0].expression[0], "Patient.favouriteColour");
    const stored = await store.read("Patient", "odd");
    assert.equal(stored.favouriteColour, undefined);
    assert.equal(stored.name[0].family, "Odd");

    // Inside Bundles: a transaction's and a collection's entries are read the same way.
    const transaction = { resourceType: "Bundle", type: "transaction", entry: [{ resource: { ...odd, id: "odd-t" }, request: { method: "PUT", url: "Patient/odd-t" } }] };
    const collection = { resourceType: "Bundle", type: "collection", entry: [{ resource: fine }, { fullUrl: "urn:uuid:0c3f1f8e-0000-4000-8000-000000000000" }, { resource: { ...odd, id: "odd-c" } }] };
    const bundles = await store.import([transaction, collection], { strict: false });
    // Positions as in the source: the collection's third entry.
    assert.deepEqual(bundles.warnings.map((w) => [w.entry, w.bundleEntry]), [[0, 0], [1, 2]]);
    assert.equal((await store.read("Patient", "odd-c")).name[0].family, "Odd");
    assert.deepEqual((await store.import([fine], { strict: false })).warnings, []);
  } finally {
    await store.close();
  }
});

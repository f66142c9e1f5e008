// FhirStore.sync against real servers on 127.0.0.1 — `hearth serve` and Helios `hfs` — over
// HTTP: first download, local edits pushed, remote edits pulled, merges, conflicts and their
// resolution, remote deletes; and through a proxy that drops requests, loses replies after the
// server committed, answers 5xx and 429, truncates and delivers twice: nothing lost, nothing
// created twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FhirStore } from "hearth-fhir";
import { startFaultProxy } from "../lib/fault-proxy.js";
import { startHearth, startHelios } from "./peers.js";

const JSON_HEADERS = { "content-type": "application/fhir+json", accept: "application/fhir+json" };

async function http(base, method, path, body, headers = {}) {
  const response = await fetch(`${base}/${path}`, { method, headers: { ...JSON_HEADERS, ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, etag: response.headers.get("etag"), json: text ? JSON.parse(text) : undefined };
}

function patient(id, family, extra = {}) {
  return { resourceType: "Patient", id, active: true, name: [{ family, given: ["Ann"] }], ...extra };
}

/** Each resource of `type` on the server, by id (following next links). */
async function remoteAll(base, type) {
  const found = new Map();
  let url = `${base}/${type}?_count=100`;
  while (url) {
    const response = await fetch(url, { headers: JSON_HEADERS });
    assert.equal(response.status, 200);
    const bundle = await response.json();
    for (const entry of bundle.entry ?? []) {
      if (entry.resource?.resourceType === type) found.set(entry.resource.id, entry.resource);
    }
    url = bundle.link?.find((link) => link.relation === "next")?.url;
  }
  return found;
}

async function localAll(store, type) {
  const found = new Map();
  const bundle = await store.search(type, { _count: "1000" });
  for (const entry of bundle.entry ?? []) found.set(entry.resource.id, entry.resource);
  return found;
}

function content(resource) {
  const { meta, ...rest } = resource;
  const { versionId, lastUpdated, ...otherMeta } = meta ?? {};
  return Object.keys(otherMeta).length ? { ...rest, meta: otherMeta } : rest;
}

async function assertSame(store, base, type) {
  const [local, remote] = [await localAll(store, type), await remoteAll(base, type)];
  assert.deepEqual([...local.keys()].sort(), [...remote.keys()].sort(), `${type}: the same ids here and on the remote`);
  for (const [id, resource] of local) assert.deepEqual(content(resource), content(remote.get(id)), `${type}/${id}`);
}

for (const [name, start] of [
  ["hearth serve", startHearth],
  ["Helios hfs", startHelios],
]) {
  test(`sync with ${name}: download, push, pull, merge, conflict, delete`, async () => {
    const peer = await start();
    const store = await FhirStore.open({ memory: true });
    try {
      const { base } = peer;
      // The remote's data before the first sync.
      for (let n = 0; n < 7; n++) {
        const put = await http(base, "PUT", `Patient/seed-${n}`, patient(`seed-${n}`, `Seed${n}`));
        assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.json));
      }
      // One the server holds without checking it (Helios stores what it is given; hearth
      // serve when asked with X-Validation: off): reported by the sync and left out.
      const stored = await http(base, "PUT", "Patient/unchecked", { resourceType: "Patient", id: "unchecked", gender: "mal" }, { "x-validation": "off" });
      assert.ok(stored.status === 200 || stored.status === 201, JSON.stringify(stored.json));
      const phases = [];
      const first = await store.sync({ remote: base, scope: { types: ["Patient"] }, pageSize: 3, onProgress: (p) => phases.push(p.phase) });
      assert.equal(first.complete, true, JSON.stringify(first.issues));
      assert.equal(first.pulled, 7);
      assert.deepEqual(first.issues.map((issue) => issue.resource), ["Patient/unchecked"]);
      assert.match(first.issues[0].message, /not stored: .*gender/);
      assert.ok(phases.includes("pull") && phases.at(-1) === "done", phases.join());
      await http(base, "DELETE", "Patient/unchecked");
      await assertSame(store, base, "Patient");

      // Offline edits: a new patient, an update, a delete; then pushed.
      const created = await store.create(patient(undefined, "Local"));
      const seed1 = await store.read("Patient", "seed-1");
      await store.update({ ...seed1, gender: "female" });
      await store.delete("Patient", "seed-2");
      const pushed = await store.sync({ remote: base, scope: { types: ["Patient"] } });
      assert.equal(pushed.complete, true, JSON.stringify(pushed.issues));
      assert.equal(pushed.pushed, 3);
      assert.equal((await http(base, "GET", `Patient/${created.id}`)).json.name[0].family, "Local");
      assert.equal((await http(base, "GET", "Patient/seed-1")).json.gender, "female");
      assert.ok([404, 410].includes((await http(base, "GET", "Patient/seed-2")).status));
      await assertSame(store, base, "Patient");

      // Another client changes one element, this store another: merged by themselves.
      const remote3 = (await http(base, "GET", "Patient/seed-3")).json;
      assert.equal((await http(base, "PUT", "Patient/seed-3", { ...remote3, birthDate: "1970-01-01" }, { "if-match": `W/"${remote3.meta.versionId}"` })).status, 200);
      const local3 = await store.read("Patient", "seed-3");
      await store.update({ ...local3, gender: "male" });
      const merged = await store.sync({ remote: base, scope: { types: ["Patient"] } });
      assert.equal(merged.merged, 1, JSON.stringify(merged));
      assert.equal(merged.conflicts, 0);
      const both = (await http(base, "GET", "Patient/seed-3")).json;
      assert.equal(both.birthDate, "1970-01-01");
      assert.equal(both.gender, "male");
      await assertSame(store, base, "Patient");

      // Both change the same element: a conflict, listed and announced, then resolved.
      const remote4 = (await http(base, "GET", "Patient/seed-4")).json;
      await http(base, "PUT", "Patient/seed-4", { ...remote4, name: [{ family: "Theirs", given: ["Ann"] }] }, { "if-match": `W/"${remote4.meta.versionId}"` });
      const local4 = await store.read("Patient", "seed-4");
      await store.update({ ...local4, name: [{ family: "Ours", given: ["Ann"] }] });
      const announced = [];
      store.on("conflict", (conflict) => announced.push(conflict));
      const conflicted = await store.sync({ remote: base, scope: { types: ["Patient"] } });
      assert.equal(conflicted.conflicts, 1);
      const [conflict] = await store.conflicts();
      assert.deepEqual([conflict.type, conflict.id, conflict.paths], ["Patient", "seed-4", ["Patient.name[0].family"]]);
      assert.equal(conflict.local.name[0].family, "Ours");
      assert.equal(conflict.remote.name[0].family, "Theirs");
      assert.equal(announced.length, 1);
      // Held: a sync before the resolution pushes nothing of it.
      const held = await store.sync({ remote: base, scope: { types: ["Patient"] } });
      assert.equal(held.pushed, 0);
      assert.equal((await http(base, "GET", "Patient/seed-4")).json.name[0].family, "Theirs");
      assert.equal(await store.resolve("Patient/seed-4", "local"), true);
      const resolved = await store.sync({ remote: base, scope: { types: ["Patient"] } });
      assert.equal(resolved.pushed, 1, JSON.stringify(resolved));
      assert.equal((await http(base, "GET", "Patient/seed-4")).json.name[0].family, "Ours");
      assert.deepEqual(await store.conflicts(), []);

      // A remote delete is applied here.
      await http(base, "DELETE", "Patient/seed-5");
      const deleted = await store.sync({ remote: base, scope: { types: ["Patient"] } });
      assert.equal(deleted.complete, true);
      await assert.rejects(store.read("Patient", "seed-5"), (err) => err.status === 410 || err.status === 404);
      await assertSame(store, base, "Patient");

      // Nothing new: no push, nothing pulled.
      const quiet = await store.sync({ remote: base, scope: { types: ["Patient"] } });
      assert.deepEqual([quiet.pulled, quiet.pushed, quiet.merged, quiet.conflicts, quiet.complete], [0, 0, 0, 0, true]);
      console.log(`sync ${name}: incremental sync with nothing new took ${quiet.requests} requests`);
    } finally {
      await store.close();
      await peer.stop();
    }
  });

  test(`sync with ${name} through a failing network loses nothing and duplicates nothing`, async () => {
    const peer = await start();
    const faults = ["drop-request", "drop-reply", "500", "503", "429", "500-after", "delay", "reset", "truncate", "twice"];
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
    let healed = false;
    const proxy = await startFaultProxy(peer.base, () => (!healed && random() < 0.35 ? faults[Math.floor(random() * faults.length)] : "pass"));
    const store = await FhirStore.open({ memory: true });
    try {
      const remote = peer.base.replace(new URL(peer.base).origin, proxy.origin);
      for (let n = 0; n < 5; n++) await http(peer.base, "PUT", `Patient/r-${n}`, patient(`r-${n}`, `Remote${n}`));
      const wrote = new Map();
      let syncs = 0;
      for (let round = 0; round < 8; round++) {
        // Local edits between syncs.
        for (let k = 0; k < 4; k++) {
          const family = `L${round}x${k}`;
          const made = await store.create(patient(undefined, family, { identifier: [{ system: "urn:test", value: family }] }));
          wrote.set(made.id, family);
        }
        const ids = [...wrote.keys()];
        const pick = ids[Math.floor(random() * ids.length)];
        const current = await store.read("Patient", pick);
        const family = `${wrote.get(pick)}e${round}`;
        await store.update({ ...current, name: [{ family, given: ["Ann"] }] });
        wrote.set(pick, family);
        // The remote changes too.
        const other = `r-${round % 5}`;
        const theirs = (await http(peer.base, "GET", `Patient/${other}`)).json;
        await http(peer.base, "PUT", `Patient/${other}`, { ...theirs, birthDate: `19${50 + round}-01-01` }, { "if-match": `W/"${theirs.meta.versionId}"` });
        await store.sync({ remote, scope: { types: ["Patient"] }, pageSize: 4, pushSize: 3 });
        syncs++;
      }
      // The network heals: sync until complete.
      healed = true;
      proxy.log.push("-- healed --");
      let last;
      for (let attempt = 0; attempt < 5; attempt++) {
        last = await store.sync({ remote, scope: { types: ["Patient"] } });
        if (last.complete && last.pushed === 0) break;
      }
      assert.equal(last.complete, true, JSON.stringify(last.issues));
      assert.deepEqual(await store.conflicts({ remote }), []);
      const onRemote = await remoteAll(peer.base, "Patient");
      for (const [id, family] of wrote) {
        assert.equal(onRemote.get(id)?.name?.[0]?.family, family, `Patient/${id} on the remote`);
      }
      // Created once each: one resource per identifier.
      const identifiers = [...onRemote.values()].flatMap((p) => (p.identifier ?? []).map((i) => i.value));
      assert.equal(new Set(identifiers).size, identifiers.length, "no resource created twice");
      assert.equal(onRemote.size, wrote.size + 5);
      const applied = proxy.log.filter((line) => !line.startsWith("pass") && !line.startsWith("--")).length;
      assert.ok(applied >= 10, `faults applied: ${applied}`);
      console.log(`sync ${name} faults: ${applied} faults over ${proxy.log.length} requests in ${syncs} syncs; ${wrote.size} resources written here all on the remote once`);
    } finally {
      await store.close();
      await proxy.close();
      await peer.stop();
    }
  });
}

/** A transaction Bundle: a patient and 24 resources of its record, linked by urn:uuid. */
function record(family) {
  const patient = `urn:uuid:${crypto.randomUUID()}`;
  const entry = (resource, fullUrl = `urn:uuid:${crypto.randomUUID()}`) => ({ fullUrl, resource, request: { method: "POST", url: resource.resourceType } });
  const subject = { reference: patient };
  const entries = [entry({ resourceType: "Patient", name: [{ family, given: ["Ann"] }], gender: "female", birthDate: "1980-02-03" }, patient)];
  for (let n = 0; n < 10; n++) {
    entries.push(entry({ resourceType: "Observation", status: "final", category: [{ coding: [{ system: "http://terminology.hl7.org/CodeSystem/observation-category", code: "vital-signs" }] }], code: { coding: [{ system: "http://loinc.org", code: "8867-4" }], text: "pulse" }, subject, effectiveDateTime: `2026-01-${String(n + 1).padStart(2, "0")}`, valueQuantity: { value: 60 + n, unit: "/min", system: "http://unitsofmeasure.org", code: "/min" } }));
  }
  for (let n = 0; n < 5; n++) {
    entries.push(entry({ resourceType: "Condition", subject, code: { text: `condition ${n}` } }));
    entries.push(entry({ resourceType: "Encounter", status: "finished", class: { system: "http://terminology.hl7.org/CodeSystem/v3-ActCode", code: "AMB" }, subject }));
  }
  entries.push(entry({ resourceType: "AllergyIntolerance", clinicalStatus: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", code: "active" }] }, patient: subject, code: { text: "peanut" } }));
  entries.push(entry({ resourceType: "AllergyIntolerance", clinicalStatus: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", code: "active" }] }, patient: subject, code: { text: "penicillin" } }));
  entries.push(entry({ resourceType: "Immunization", status: "completed", vaccineCode: { text: "influenza" }, patient: subject, occurrenceDateTime: "2025-10-01" }));
  entries.push(entry({ resourceType: "Immunization", status: "completed", vaccineCode: { text: "tetanus" }, patient: subject, occurrenceDateTime: "2024-03-01" }));
  return { resourceType: "Bundle", type: "transaction", entry: entries };
}

/** `Type/id` of each resource in `Patient/id/$everything` on the server. */
async function everythingOf(base, id) {
  const found = new Set();
  let url = `${base}/Patient/${id}/$everything?_count=100`;
  while (url) {
    const response = await fetch(url, { headers: JSON_HEADERS });
    assert.equal(response.status, 200);
    const bundle = await response.json();
    for (const entry of bundle.entry ?? []) found.add(`${entry.resource.resourceType}/${entry.resource.id}`);
    url = bundle.link?.find((link) => link.relation === "next")?.url;
  }
  return found;
}

for (const [name, start] of [
  ["hearth serve", startHearth],
  ["Helios hfs", startHelios],
]) {
  test(`sync of one patient's record with ${name}: the compartment, and only it`, async () => {
    const peer = await start();
    const store = await FhirStore.open({ memory: true });
    try {
      const { base } = peer;
      for (const family of ["Mine", "Other"]) {
        const posted = await http(base, "POST", "", record(family));
        assert.equal(posted.status, 200, JSON.stringify(posted.json).slice(0, 500));
      }
      const patients = [...(await remoteAll(base, "Patient")).values()];
      assert.equal(patients.length, 2);
      const mine = patients.find((p) => p.name[0].family === "Mine").id;
      const other = patients.find((p) => p.name[0].family === "Other").id;
      const progress = [];
      const first = await store.sync({ remote: base, scope: { patient: mine }, pageSize: 10, onProgress: (p) => progress.push(p) });
      assert.equal(first.complete, true, JSON.stringify(first.issues));
      const everything = await everythingOf(base, mine);
      assert.equal(everything.size, 25, [...everything].join());
      assert.equal(first.pulled, everything.size);
      const local = new Set();
      for (const type of new Set([...everything].map((ref) => ref.split("/")[0]))) {
        for (const id of (await localAll(store, type)).keys()) local.add(`${type}/${id}`);
      }
      assert.deepEqual([...local].sort(), [...everything].sort());
      // Pages of 10: progress shown between them.
      assert.ok(progress.some((p) => p.phase === "pull" && p.done >= 10), JSON.stringify(progress));

      // New on the server: an Observation of each patient; only this patient's comes.
      const observation = (patient, value) => ({ resourceType: "Observation", status: "final", code: { text: "weight" }, subject: { reference: `Patient/${patient}` }, valueQuantity: { value, unit: "kg" } });
      const added = await http(base, "POST", "Observation", observation(mine, 70));
      await http(base, "POST", "Observation", observation(other, 80));
      const second = await store.sync({ remote: base, scope: { patient: mine } });
      assert.equal(second.complete, true, JSON.stringify(second.issues));
      assert.equal(second.pulled, 1, JSON.stringify(second));
      assert.equal((await store.read("Observation", added.json.id)).valueQuantity.value, 70);
      const weights = await store.search("Observation", { "code:text": "weight" });
      assert.equal(weights.total ?? weights.entry?.length, 1);

      // Recorded here, pushed there.
      const mineNow = await store.create(observation(mine, 71));
      const third = await store.sync({ remote: base, scope: { patient: mine } });
      assert.equal(third.pushed, 1, JSON.stringify(third));
      assert.equal((await http(base, "GET", `Observation/${mineNow.id}`)).json.valueQuantity.value, 71);
      console.log(`sync ${name}: one patient's record of ${everything.size} resources in ${first.requests} requests; then only its new Observation of the two added`);
    } finally {
      await store.close();
      await peer.stop();
    }
  });
}

test("startSync syncs on its interval, backs off after failures, and a sync honours Retry-After", async () => {
  const peer = await startHearth();
  const store = await FhirStore.open({ memory: true });
  let proxy;
  try {
    // On its interval: a change made after the first sync is pushed by a later one.
    const results = [];
    const running = store.startSync({ remote: peer.base, scope: { types: ["Patient"] }, interval: 150, onSync: (result) => results.push(result) });
    const made = await store.create(patient(undefined, "Interval"));
    const deadline = Date.now() + 10_000;
    while (!results.some((r) => r.pushed > 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    running.stop();
    assert.ok(results.some((r) => r.pushed === 1), JSON.stringify(results));
    assert.equal((await http(peer.base, "GET", `Patient/${made.id}`)).status, 200);
    const after = results.length;
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(results.length, after, "no sync after stop()");

    // A server that cannot be reached: each failure waits twice as long as the one before.
    const times = [];
    const failing = store.startSync({ remote: "http://127.0.0.1:9/fhir", scope: { types: ["Patient"] }, interval: 200, maxAttempts: 1, onSync: () => times.push(Date.now()) });
    const until = Date.now() + 20_000;
    while (times.length < 4 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
    failing.stop();
    assert.ok(times.length >= 4, `${times.length} failed syncs`);
    // The gaps between failed syncs double: about 200, 400, 800 ms.
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(gaps[1] > gaps[0] * 1.5 && gaps[2] > gaps[1] * 1.5, `gaps ${gaps}`);

    // Retry-After: 1 on the first request: the sync waits a second, then goes on.
    proxy = await startFaultProxy(peer.base, (index) => (index === 0 ? "429" : "pass"));
    const remote = peer.base.replace(new URL(peer.base).origin, proxy.origin);
    const started = Date.now();
    const waited = await store.sync({ remote, scope: { types: ["Patient"] } });
    assert.equal(waited.complete, true, JSON.stringify(waited.issues));
    assert.ok(Date.now() - started >= 1000, `took ${Date.now() - started} ms`);
    assert.equal(proxy.log[0].startsWith("429"), true);
  } finally {
    await proxy?.close();
    await store.close();
    await peer.stop();
  }
});

test("a server that assigns ids (no updateCreate) gets each new resource once, references rewritten, through lost replies", async () => {
  const peer = await startHearth(["--no-update-create"]);
  const store = await FhirStore.open({ memory: true });
  let proxy;
  try {
    assert.equal((await http(peer.base, "PUT", "Patient/chosen", patient("chosen", "Chosen"))).status, 405);
    // Made here, offline: a patient and an observation about it.
    const made = await store.create(patient(undefined, "Assigned"));
    const observation = await store.create({
      resourceType: "Observation", status: "final", code: { text: "weight" },
      subject: { reference: `Patient/${made.id}` }, valueQuantity: { value: 70, unit: "kg" },
    });
    // Every reply to a push is lost after the server has stored it, the first two times.
    let pushes = 0;
    proxy = await startFaultProxy(peer.base, (index, request) => (request.method === "POST" && pushes++ < 2 ? "drop-reply" : "pass"));
    const remote = peer.base.replace(new URL(peer.base).origin, proxy.origin);
    const scope = { types: ["Patient", "Observation"] };
    assert.deepEqual((await store.pending({ remote })).sort(), [`Observation/${observation.id}`, `Patient/${made.id}`].sort());
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await store.sync({ remote, scope, maxAttempts: 2 });
      if (result.complete) break;
    }
    assert.ok(pushes >= 2, `${pushes} pushes`);
    const patients = await remoteAll(peer.base, "Patient");
    const observations = await remoteAll(peer.base, "Observation");
    assert.equal(patients.size, 1, "the patient was made once");
    assert.equal(observations.size, 1, "the observation was made once");
    const [serverPatient] = patients.keys();
    const [serverObservation] = observations.values();
    assert.notEqual(serverPatient, made.id);
    assert.equal(serverObservation.subject.reference, `Patient/${serverPatient}`);
    // Here they moved to the server's ids; the local ids answer 410 Gone.
    await assert.rejects(store.read("Patient", made.id), (err) => err.status === 410);
    await assert.rejects(store.read("Observation", observation.id), (err) => err.status === 410);
    await assertSame(store, peer.base, "Patient");
    await assertSame(store, peer.base, "Observation");
    assert.deepEqual(await store.pending({ remote }), [], "nothing left to push");
  } finally {
    await proxy?.close();
    await store.close();
    await peer.stop();
  }
});

test("two syncs started at once run one after the other and push each change once", async () => {
  const peer = await startHearth();
  const store = await FhirStore.open({ memory: true });
  try {
    for (let n = 0; n < 5; n++) await store.create(patient(undefined, `Twice${n}`));
    const sent = [];
    const counting = (url, init) => {
      if (init.method === "POST") sent.push(url);
      return fetch(url, init);
    };
    const [a, b] = await Promise.all([
      store.sync({ remote: peer.base, scope: { types: ["Patient"] }, fetch: counting }),
      store.sync({ remote: peer.base, scope: { types: ["Patient"] }, fetch: counting }),
    ]);
    assert.equal(a.pushed + b.pushed, 5);
    assert.equal(sent.length, 1, "one push Bundle in all");
    assert.equal((await remoteAll(peer.base, "Patient")).size, 5);
  } finally {
    await store.close();
    await peer.stop();
  }
});

test("a server that never answers fails the sync after its timeout, and the next sync goes on", async () => {
  const { createServer } = await import("node:net");
  const sockets = new Set();
  const silent = createServer((socket) => sockets.add(socket));
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const store = await FhirStore.open({ memory: true });
  try {
    const started = Date.now();
    const summary = await store.sync({ remote: `http://127.0.0.1:${silent.address().port}/fhir`, scope: { types: ["Patient"] }, timeout: 300, maxAttempts: 2 });
    assert.equal(summary.complete, false);
    assert.match(summary.issues[0].message, /no answer in 300 ms/);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    // The store is free for the next sync.
    const peer = await startHearth();
    try {
      const next = await store.sync({ remote: peer.base, scope: { types: ["Patient"] } });
      assert.equal(next.complete, true, JSON.stringify(next.issues));
    } finally {
      await peer.stop();
    }
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
    await store.close();
  }
});

test("strict: false stores what a server sends with elements R4 lacks, with a warning, and holds edits of it from push", async () => {
  const peer = await startHearth();
  const strictStore = await FhirStore.open({ memory: true });
  const store = await FhirStore.open({ memory: true });
  try {
    for (const id of ["odd-1", "plain-1"]) assert.equal((await http(peer.base, "PUT", `Patient/${id}`, patient(id, id))).status, 201);
    // A server that writes an element of its own into one resource wherever it sends it.
    const colouring = async (url, init) => {
      const response = await fetch(url, init);
      if ((init?.method ?? "GET") !== "GET" || response.status !== 200) return response;
      const walk = (value) => {
        if (Array.isArray(value)) value.forEach(walk);
        else if (value && typeof value === "object") {
          if (value.resourceType === "Patient" && value.id === "odd-1") value.favouriteColour = "green";
          Object.values(value).forEach(walk);
        }
      };
      const body = await response.json();
      walk(body);
      return new Response(JSON.stringify(body), { status: response.status, headers: response.headers });
    };
    const options = { remote: peer.base, scope: { types: ["Patient"] }, fetch: colouring };

    const strict = await strictStore.sync(options);
    assert.ok(strict.issues.some((issue) => issue.resource === "Patient/odd-1" && /favouriteColour/.test(issue.message)), JSON.stringify(strict.issues));
    assert.deepEqual(strict.warnings, []);
    await assert.rejects(strictStore.read("Patient", "odd-1"), { status: 404 });

    const lenient = await store.sync({ ...options, strict: false });
    assert.deepEqual(lenient.issues, []);
    assert.equal(lenient.warnings.length, 1);
    assert.equal(lenient.warnings[0].resource, "Patient/odd-1");
    assert.match(lenient.warnings[0].message, /favouriteColour/);
    const odd = await store.read("Patient", "odd-1");
    assert.equal(odd.favouriteColour, undefined);
    assert.equal(odd.name[0].family, "odd-1");

    await store.update({ ...odd, active: false });
    const plain = await store.read("Patient", "plain-1");
    await store.update({ ...plain, active: false });
    const second = await store.sync({ ...options, strict: false });
    assert.equal(second.pushed, 1);
    assert.ok(second.issues.some((issue) => issue.resource === "Patient/odd-1" && issue.message.startsWith("not pushed")), JSON.stringify(second.issues));
    const remote = await remoteAll(peer.base, "Patient");
    assert.equal(remote.get("odd-1").active, true, "the held edit did not reach the server");
    assert.equal(remote.get("plain-1").active, false);
  } finally {
    await strictStore.close();
    await store.close();
    await peer.stop();
  }
});

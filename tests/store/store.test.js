// FhirStore on IndexedDB in headless Chromium, none of it mocked: persistence across reloads
// and browser restarts, change events across tabs, a FHIR client from npm against the Service
// Worker endpoint offline, concurrent writers in two pages, a full quota, a newer connection
// closing an older one, and hostile input answered as `hearth serve` answers it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, launchChromium } from "../lib/chromium.js";
import { controlByWorker, openTestPage, startStaticServer } from "../lib/static-server.js";
import { serve, stop } from "../lib/serve.js";
import { MALFORMED } from "../lib/malformed.js";

let server;
let browser;

before(async () => {
  server = await startStaticServer();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

function openPage(context) {
  return openTestPage(context, server.origin);
}

test("what is written is found after a reload and after the browser restarts on the same profile", async () => {
  const profile = mkdtempSync(join(tmpdir(), "hearth-profile-"));
  const launch = () => chromium.launchPersistentContext(profile, { executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
  try {
    let context = await launch();
    let page = await openPage(context);
    const written = await page.evaluate(async () => {
      const store = await window.hearth.FhirStore.open({ name: "persist" });
      const patient = await store.create({ resourceType: "Patient", name: [{ family: "Chalmers", given: ["Peter"] }], birthDate: "1974-12-25" });
      await store.update({ ...patient, gender: "male" });
      await store.transaction({
        resourceType: "Bundle",
        type: "transaction",
        entry: [1, 2, 3].map((n) => ({
          resource: { resourceType: "Observation", status: "final", code: { text: "pulse" }, subject: { reference: `Patient/${patient.id}` }, valueQuantity: { value: 60 + n, unit: "/min" } },
          request: { method: "POST", url: "Observation" },
        })),
      });
      return patient.id;
    });
    await page.reload();
    await page.waitForSelector("body[data-ready=true]", { state: "attached" });
    const afterReload = await page.evaluate(async (id) => {
      const store = await window.hearth.FhirStore.open({ name: "persist" });
      const patient = await store.read("Patient", id);
      const pulses = await store.search("Observation", { subject: `Patient/${id}`, _sort: "value-quantity" });
      return { gender: patient.gender, version: patient.meta.versionId, values: pulses.entry.map((entry) => entry.resource.valueQuantity.value) };
    }, written);
    assert.deepEqual(afterReload, { gender: "male", version: "2", values: [61, 62, 63] });
    await context.close();

    context = await launch();
    page = await openPage(context);
    const afterRestart = await page.evaluate(async (id) => {
      const store = await window.hearth.FhirStore.open({ name: "persist" });
      const history = await store.history("Patient", id);
      const found = await store.search("Patient", { family: "chalmers", birthdate: "1974-12-25" });
      return { versions: history.entry.length, found: found.total, observations: (await store.search("Observation", { code: "pulse" })).total };
    }, written);
    // `code=pulse` matches no coding: the text is not a token; `code:text` would.
    assert.deepEqual(afterRestart, { versions: 2, found: 1, observations: 0 });
    const byText = await page.evaluate(async () => (await (await window.hearth.FhirStore.open({ name: "persist" })).search("Observation", { "code:text": "pulse" })).total);
    assert.equal(byText, 3);
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
});

test("a change made in one tab is reported in another", async () => {
  const context = await browser.newContext();
  const [first, second] = [await openPage(context), await openPage(context)];
  await second.evaluate(async () => {
    const store = await window.hearth.FhirStore.open({ name: "tabs" });
    window.changes = [];
    store.on("change", (change) => window.changes.push(change));
    window.stores.tabs = store;
  });
  const id = await first.evaluate(async () => {
    const store = await window.hearth.FhirStore.open({ name: "tabs" });
    const seen = [];
    store.on("change", (change) => seen.push(change));
    const patient = await store.create({ resourceType: "Patient", active: true });
    await store.delete("Patient", patient.id);
    if (seen.length !== 2 || seen.some((change) => change.remote)) throw new Error(`local changes: ${JSON.stringify(seen)}`);
    return patient.id;
  });
  await second.waitForFunction(() => window.changes.length >= 2);
  const changes = await second.evaluate(() => window.changes);
  assert.deepEqual(changes, [
    { method: "create", resourceType: "Patient", id, versionId: "1", remote: true },
    { method: "delete", resourceType: "Patient", id, versionId: "2", remote: true },
  ]);
  // The other tab reads what the first wrote: the same database.
  const status = await second.evaluate(async (id) => (await window.stores.tabs.fetch(`Patient/${id}`)).status, id);
  assert.equal(status, 410);
  await context.close();
});

test("fhir-kit-client works against the Service Worker endpoint offline", async () => {
  const context = await browser.newContext();
  const page = await openPage(context);
  await controlByWorker(page);
  // The client is part of the page, loaded while online, as an app's bundle would be.
  await page.evaluate(async () => {
    window.kit = await import("/vendor/fhir-kit-client.js");
  });
  await context.setOffline(true);
  const result = await page.evaluate(async () => {
    const { Client } = window.kit;
    const client = new Client({ baseUrl: `${location.origin}/fhir` });
    const created = await client.create({ resourceType: "Patient", body: { resourceType: "Patient", name: [{ family: "Kitclient" }] } });
    const read = await client.read({ resourceType: "Patient", id: created.id });
    const updated = await client.update({ resourceType: "Patient", id: created.id, body: { ...read, gender: "female" } });
    const transaction = await client.transaction({
      body: {
        resourceType: "Bundle",
        type: "transaction",
        entry: Array.from({ length: 7 }, (_, n) => ({ resource: { resourceType: "Patient", name: [{ family: "Kitclient", given: [`N${n}`] }] }, request: { method: "POST", url: "Patient" } })),
      },
    });
    const pages = [];
    let bundle = await client.search({ resourceType: "Patient", searchParams: { family: "kitclient", _count: 3, _sort: "_id" } });
    while (bundle) {
      pages.push(bundle.entry.map((entry) => entry.resource.id));
      bundle = client.nextPage({ bundle }) ? await client.nextPage({ bundle }) : undefined;
    }
    await client.delete({ resourceType: "Patient", id: created.id });
    let afterDelete;
    try {
      await client.read({ resourceType: "Patient", id: created.id });
    } catch (err) {
      afterDelete = err.response?.status;
    }
    return {
      updated: [updated.gender, updated.meta.versionId],
      transaction: transaction.entry.map((entry) => entry.response.status.slice(0, 3)),
      pageSizes: pages.map((ids) => ids.length),
      distinct: new Set(pages.flat()).size,
      afterDelete,
    };
  });
  assert.deepEqual(result, {
    updated: ["female", "2"],
    transaction: Array(7).fill("201"),
    pageSizes: [3, 3, 2],
    distinct: 8,
    afterDelete: 410,
  });
  assert.deepEqual(page.errors, []);
  await context.close();
});

test("the Service Worker endpoint answers again after a page deletes the store (as a sign-out does)", async () => {
  const context = await browser.newContext();
  const page = await openPage(context);
  await controlByWorker(page);
  const result = await page.evaluate(async () => {
    const create = await fetch("/fhir/Patient", { method: "POST", headers: { "content-type": "application/fhir+json" }, body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Before" }] }) });
    const before = await create.json();
    await window.hearth.FhirStore.destroy("sw-store");
    const read = await fetch(`/fhir/Patient/${before.id}`);
    const again = await fetch("/fhir/Patient", { method: "POST", headers: { "content-type": "application/fhir+json" }, body: JSON.stringify({ resourceType: "Patient", name: [{ family: "After" }] }) });
    return { created: create.status, readAfterDelete: read.status, createdAgain: again.status };
  });
  // The deleted store's data is gone, and the endpoint works on a new, empty one.
  assert.deepEqual(result, { created: 201, readAfterDelete: 404, createdAgain: 201 });
  assert.deepEqual(page.errors, []);
  await context.close();
});

test("two pages updating the same resources lose no update, and every 412 is justified", async () => {
  const context = await browser.newContext();
  const pages = [await openPage(context), await openPage(context)];
  const COUNTERS = 4;
  const UPDATES = 1000;
  await pages[0].evaluate(async (count) => {
    const store = await window.hearth.FhirStore.open({ name: "race" });
    for (let n = 0; n < count; n += 1) {
      await store.update({ resourceType: "Basic", id: `counter${n}`, code: { text: "counter" }, extension: [{ url: "urn:count", valueInteger: 0 }, { url: "urn:writer", valueString: "none" }] });
    }
  }, COUNTERS);
  const work = (page, writer) =>
    page.evaluate(
      async ({ writer, counters, updates }) => {
        const store = await window.hearth.FhirStore.open({ name: "race" });
        const refused = [];
        for (let i = 0; i < updates; i += 1) {
          const id = `counter${i % counters}`;
          for (;;) {
            const current = await store.read("Basic", id);
            const next = { ...current, extension: [{ url: "urn:count", valueInteger: current.extension[0].valueInteger + 1 }, { url: "urn:writer", valueString: writer }] };
            try {
              await store.update(next, { ifMatch: current.meta.versionId });
              break;
            } catch (err) {
              if (err.status !== 412) throw err;
              refused.push({ id, version: Number(current.meta.versionId) });
            }
          }
        }
        return refused;
      },
      { writer, counters: COUNTERS, updates: UPDATES },
    );
  const [refusedA, refusedB] = await Promise.all([work(pages[0], "a"), work(pages[1], "b")]);
  const check = await pages[0].evaluate(
    async ({ counters, refused }) => {
      const store = await window.hearth.FhirStore.open({ name: "race" });
      const finals = [];
      for (let n = 0; n < counters; n += 1) {
        const current = await store.read("Basic", `counter${n}`);
        finals.push({ count: current.extension[0].valueInteger, version: Number(current.meta.versionId) });
      }
      // A refusal is justified when the version after the one it named was written by the
      // other page: the refused page had read a version that was no longer current.
      const unjustified = [];
      for (const [writer, list] of Object.entries(refused)) {
        for (const { id, version } of list) {
          const after = await store.vread("Basic", id, String(version + 1));
          if (after.extension[1].valueString === writer) unjustified.push({ writer, id, version });
        }
      }
      return { finals, unjustified };
    },
    { counters: COUNTERS, refused: { a: refusedA, b: refusedB } },
  );
  const total = check.finals.reduce((sum, final) => sum + final.count, 0);
  assert.equal(total, 2 * UPDATES, "an update was lost");
  for (const final of check.finals) assert.equal(final.version, final.count + 1);
  assert.deepEqual(check.unjustified, []);
  console.log(`store: two pages, ${2 * UPDATES} updates, ${refusedA.length + refusedB.length} refused with 412, all justified`);
  await context.close();
});

test("a full quota is reported with an OperationOutcome, and the store still opens and answers", async () => {
  const context = await browser.newContext();
  const page = await openPage(context);
  const cdp = await context.newCDPSession(page);
  await cdp.send("Storage.overrideQuotaForOrigin", { origin: server.origin, quotaSize: 6 * 1024 * 1024 });
  const result = await page.evaluate(async () => {
    const store = await window.hearth.FhirStore.open({ name: "quota" });
    await store.create({ resourceType: "Patient", id: "kept", name: [{ family: "Kept" }] }).catch(() => undefined);
    await store.update({ resourceType: "Patient", id: "kept", name: [{ family: "Kept" }] });
    const text = "x".repeat(20_000);
    let stored = 0;
    let failure;
    try {
      for (let batch = 0; batch < 400; batch += 1) {
        await store.import(Array.from({ length: 20 }, () => ({ resourceType: "Basic", code: { text } })));
        stored += 20;
      }
    } catch (err) {
      failure = { status: err.status, diagnostics: err.outcome.issue[0].diagnostics, stored: err.stored ?? 0 };
    }
    await store.close();
    const reopened = await window.hearth.FhirStore.open({ name: "quota" });
    const kept = await reopened.read("Patient", "kept");
    const counted = await reopened.search("Basic", { _summary: "count" });
    return { stored, failure, kept: kept.name[0].family, counted: counted.total };
  });
  assert.ok(result.failure, `the quota never ran out after ${result.stored} resources`);
  assert.equal(result.failure.status, 507);
  assert.match(result.failure.diagnostics, /quota/);
  assert.equal(result.kept, "Kept");
  // Every import that was acknowledged is stored, and of the failed one exactly the entries
  // before the one that failed, as the error says.
  assert.equal(result.counted, result.stored + result.failure.stored);
  await context.close();
});

test("an import reads each batch while the one before commits, and stops at the first that fails: those before stored, none after", async () => {
  const context = await browser.newContext();
  const page = await openPage(context);
  const cdp = await context.newCDPSession(page);
  await cdp.send("Storage.overrideQuotaForOrigin", { origin: server.origin, quotaSize: 8 * 1024 * 1024 });
  const result = await page.evaluate(async () => {
    const { FhirStore } = window.hearth;
    // Counts the Bundles the engine is given to read ahead (the empty body that clears what
    // was read ahead is not one).
    const wasm = await import("/pkg/dist/wasm/hearth.js");
    const prepare = wasm.FhirService.prototype.prepare;
    let aheads = 0;
    wasm.FhirService.prototype.prepare = function (body, validate) {
      if (body.length > 0) aheads += 1;
      return prepare.call(this, body, validate);
    };
    const store = await FhirStore.open({ name: "import-order" });
    // An entry that fails validation, in the third of ten batches.
    const lines = Array.from({ length: 1000 }, (_, n) => (n === 250 ? '{"resourceType":"Patient","gender":"hen"}' : JSON.stringify({ resourceType: "Patient", id: `s${n}` })));
    const progress = [];
    let invalid;
    try {
      await store.import(lines.join("\n"), { batchSize: 100, onProgress: (p) => progress.push(p.resources) });
    } catch (err) {
      invalid = { entry: err.entry, stored: err.stored, status: err.status };
    }
    const ids = Array.from({ length: 1000 }, (_, n) => `s${n}`);
    const stored = async (from, to) => (await store.search("Patient", { _id: ids.slice(from, to).join(","), _summary: "count" })).total;
    const counts = { before: await stored(0, 250), after: await stored(251, 1000) };
    // A commit that fails for the quota, many batches into one import (of text that does
    // not compress).
    const noise = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(15_000))));
    const big = Array.from({ length: 1000 }, (_, n) => ({ resourceType: "Basic", id: `b${n}`, code: { text: noise() } }));
    const quotaProgress = [];
    let full;
    const aheadsBefore = aheads;
    try {
      await store.import(big, { batchSize: 20, onProgress: (p) => quotaProgress.push(p.resources) });
    } catch (err) {
      full = { status: err.status, entry: err.entry, stored: err.stored ?? 0, diagnostics: err.outcome.issue[0].diagnostics };
    }
    await store.close();
    const reopened = await FhirStore.open({ name: "import-order" });
    const basics = (await reopened.search("Basic", { _summary: "count" })).total;
    return { invalid, progress, counts, full, quotaProgress, basics, aheads: aheads - aheadsBefore };
  });
  assert.deepEqual(result.invalid, { entry: 250, stored: 50, status: 422 });
  assert.deepEqual(result.progress, [100, 200]);
  assert.deepEqual(result.counts, { before: 250, after: 0 });
  assert.ok(result.full, `the quota never ran out in ${result.quotaProgress.at(-1)} resources`);
  assert.equal(result.full.status, 507);
  assert.match(result.full.diagnostics, /quota/);
  // Batches were stored before the failing one, each acknowledged through onProgress; of the
  // failing one, the entries before the one that failed; nothing after.
  const acknowledged = result.quotaProgress.at(-1) ?? 0;
  assert.ok(acknowledged >= 40, `only ${acknowledged} resources were stored before the quota ran out`);
  assert.equal(result.full.entry, acknowledged + result.full.stored);
  assert.equal(result.basics, acknowledged + result.full.stored);
  // Batches were read ahead while the ones before them committed.
  assert.ok(result.aheads >= Math.floor(acknowledged / 20 / 2), `${result.aheads} batches read ahead of ${acknowledged / 20 + 1}`);
  console.log(`store: import stopped by the quota after ${acknowledged} resources; ${result.aheads} of its ${acknowledged / 20 + 1} batches read ahead`);
  await context.close();
});

test("a newer connection closes an older one, which then says why", async () => {
  const context = await browser.newContext();
  const page = await openPage(context);
  const result = await page.evaluate(async () => {
    const store = await window.hearth.FhirStore.open({ name: "versions" });
    await store.create({ resourceType: "Patient" });
    // Another tab (here: the same page) opens the database at a newer schema version.
    const newer = await new Promise((resolve, reject) => {
      const request = indexedDB.open("versions", 1000);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
      request.onblocked = () => reject(new Error("blocked"));
    });
    newer.close();
    const answer = await store.fetch("Patient");
    const outcome = await answer.json();
    let reopen;
    try {
      await window.hearth.FhirStore.open({ name: "versions" });
    } catch (err) {
      reopen = { status: err.status, diagnostics: err.outcome.issue[0].diagnostics };
    }
    return { status: answer.status, diagnostics: outcome.issue[0].diagnostics, reopen };
  });
  assert.equal(result.status, 503);
  assert.match(result.diagnostics, /newer version of it was opened/);
  assert.match(result.reopen.diagnostics, /written by a newer version of Hearth/);
  await context.close();
});

/** Requests that must get the same answer everywhere. */
function hostileRequests() {
  const list = MALFORMED.map((item) => ({ name: item.name, method: "POST", path: "Patient", body: item.input }));
  list.push(
    { name: "absurd date", method: "GET", path: "Patient?birthdate=ge99999-99-99" },
    { name: "unknown parameter", method: "GET", path: "Patient?shoe-size=42" },
    { name: "sort by an unknown parameter", method: "GET", path: "Patient?_sort=-nonsense" },
    { name: "too many parameters", method: "GET", path: "Patient?" + Array.from({ length: 150 }, (_, n) => `family=x${n}`).join("&") },
    { name: "a chain too deep", method: "GET", path: "Observation?subject:Patient.organization.partof.partof.partof.name=x" },
    { name: "JSON Patch that is not an array", method: "PATCH", path: "Patient/nobody", body: "{}", type: "application/json-patch+json" },
    { name: "a transaction with a broken entry", method: "POST", path: "", body: '{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT"}}]}' },
    { name: "unknown resource type", method: "GET", path: "Patientx/1" },
    { name: "text body", method: "POST", path: "Patient", body: "hello", type: "text/plain" },
  );
  return list;
}

test("hostile input through store.fetch and the Service Worker gets the answers of hearth serve", async () => {
  const { child, base } = await serve(undefined);
  const requests = hostileRequests();
  const normalise = async (response) => {
    const text = await response.text();
    let outcome;
    try {
      outcome = JSON.parse(text);
    } catch {
      outcome = text;
    }
    return { status: response.status, issues: outcome?.issue?.map((issue) => [issue.code, issue.diagnostics]) ?? outcome };
  };
  const expected = [];
  try {
    for (const request of requests) {
      const response = await fetch(`${base}/${request.path}`, { method: request.method, headers: request.body === undefined ? {} : { "Content-Type": request.type ?? "application/fhir+json" }, body: request.body });
      expected.push(await normalise(response));
    }
  } finally {
    await stop(child);
  }
  const context = await browser.newContext();
  const page = await openPage(context);
  await controlByWorker(page);
  for (const where of ["store", "worker"]) {
    const answers = await page.evaluate(
      async ({ requests, where }) => {
        const store = await window.hearth.FhirStore.open({ name: "hostile" });
        const out = [];
        for (const request of requests) {
          const init = { method: request.method, headers: request.body === undefined ? {} : { "Content-Type": request.type ?? "application/fhir+json" }, body: request.body };
          const response = where === "store" ? await store.fetch(request.path, init) : await fetch(`/fhir/${request.path}`, init);
          out.push({ status: response.status, text: await response.text() });
        }
        return out;
      },
      { requests, where },
    );
    for (let i = 0; i < requests.length; i += 1) {
      const got = await normalise(new Response(answers[i].text, { status: answers[i].status }));
      assert.deepEqual(got, expected[i], `${where}: ${requests[i].name}`);
      assert.ok(got.status >= 400 && got.status < 500, `${where}: ${requests[i].name} answered ${got.status}`);
    }
  }
  assert.deepEqual(page.errors, []);
  await context.close();
});

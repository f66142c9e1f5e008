// Sync in headless Chromium: a page keeps a patient's record from `hearth serve` in IndexedDB,
// records entries while the browser is offline, and `startSync` pushes them when the browser
// is back online (its `online` event).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "../lib/chromium.js";
import { openTestPage, startStaticServer } from "../lib/static-server.js";
import { serve, stop } from "../lib/serve.js";

let server;
let browser;
let fhir;

const HEADERS = { "content-type": "application/fhir+json", accept: "application/fhir+json" };

before(async () => {
  server = await startStaticServer();
  browser = await launchChromium();
  // The page is on another origin than the FHIR server: it is allowed by CORS.
  fhir = await serve(undefined, ["--allow-origin", server.origin]);
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (fhir) await stop(fhir.child);
});

test("a page syncs a patient's record into IndexedDB, records entries offline, and pushes them back online", async () => {
  const base = fhir.base;
  const subject = (id) => ({ reference: `Patient/${id}` });
  const patient = await (await fetch(`${base}/Patient`, { method: "POST", headers: HEADERS, body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Offline", given: ["Olive"] }] }) })).json();
  const entries = [];
  for (let n = 0; n < 30; n++) {
    entries.push({ resource: { resourceType: "Observation", status: "final", code: { text: "weight" }, subject: subject(patient.id), effectiveDateTime: `2026-02-${String((n % 28) + 1).padStart(2, "0")}`, valueQuantity: { value: 60 + n, unit: "kg" } }, request: { method: "POST", url: "Observation" } });
  }
  const posted = await fetch(base, { method: "POST", headers: HEADERS, body: JSON.stringify({ resourceType: "Bundle", type: "transaction", entry: entries }) });
  assert.equal(posted.status, 200);

  const context = await browser.newContext();
  try {
    const page = await openTestPage(context, server.origin);
    const first = await page.evaluate(
      async ({ base, id }) => {
        const store = await window.hearth.FhirStore.open({ name: "sync-offline" });
        window.stores.sync = store;
        const progress = [];
        const summary = await store.sync({ remote: base, scope: { patient: id }, pageSize: 8, onProgress: (p) => progress.push(p) });
        const weights = await store.search("Observation", { subject: `Patient/${id}`, _count: "100" });
        return { summary, progress, weights: weights.entry?.length ?? 0 };
      },
      { base, id: patient.id },
    );
    assert.equal(first.summary.complete, true, JSON.stringify(first.summary.issues));
    assert.equal(first.summary.pulled, 31);
    assert.equal(first.weights, 30);
    const pulling = first.progress.filter((p) => p.phase === "pull").map((p) => p.done);
    assert.ok(pulling.length >= 3 && pulling.at(-1) >= 24, `progress while pulling: ${pulling}`);

    // Offline: entries are recorded and validated locally; a sync cannot reach the server.
    await context.setOffline(true);
    const offline = await page.evaluate(async ({ base, id }) => {
      const store = window.stores.sync;
      const pressure = await store.create({
        resourceType: "Observation",
        status: "final",
        code: { text: "blood pressure" },
        subject: { reference: `Patient/${id}` },
        effectiveDateTime: "2026-03-01T08:00:00Z",
        component: [
          { code: { text: "systolic" }, valueQuantity: { value: 128, unit: "mmHg" } },
          { code: { text: "diastolic" }, valueQuantity: { value: 84, unit: "mmHg" } },
        ],
      });
      const patient = await store.read("Patient", id);
      await store.update({ ...patient, telecom: [{ system: "phone", value: "555-0100" }] });
      const attempt = await store.sync({ remote: base, scope: { patient: id } });
      return { id: pressure.id, attempt };
    }, { base, id: patient.id });
    assert.equal(offline.attempt.complete, false);
    assert.equal(offline.attempt.pushed, 0);
    assert.ok(offline.attempt.issues.length > 0);
    assert.equal((await fetch(`${base}/Observation/${offline.id}`)).status, 404);

    // Syncing on a long interval: the attempt while offline fails at once, and the next is
    // ten minutes away; coming back online starts one, which pushes both entries, once.
    await page.evaluate(async ({ base, id }) => {
      window.syncResults = [];
      const failed = new Promise((resolve) => {
        window.running = window.stores.sync.startSync({
          remote: base,
          scope: { patient: id },
          interval: 600_000,
          maxAttempts: 1,
          onSync: (result) => {
            window.syncResults.push(result);
            resolve();
          },
        });
      });
      await failed;
    }, { base, id: patient.id });
    await context.setOffline(false);
    await page.waitForFunction(() => window.syncResults.length >= 2, undefined, { timeout: 15_000 });
    const online = await page.evaluate(() => {
      window.running.stop();
      return window.syncResults[1];
    });
    assert.equal((await page.evaluate(() => window.syncResults[0].complete)), false);
    assert.equal(online.complete, true, JSON.stringify(online.issues));
    assert.equal(online.pushed, 2);
    const pressure = await (await fetch(`${base}/Observation/${offline.id}`, { headers: HEADERS })).json();
    assert.equal(pressure.component[0].valueQuantity.value, 128);
    const onServer = await (await fetch(`${base}/Patient/${patient.id}`, { headers: HEADERS })).json();
    assert.equal(onServer.telecom[0].value, "555-0100");
    assert.deepEqual(page.errors, []);
    console.log(`sync chromium: ${first.summary.pulled} resources pulled into IndexedDB in ${first.summary.requests} requests, ${online.pushed} entries made offline pushed`);
  } finally {
    await context.close();
  }
});

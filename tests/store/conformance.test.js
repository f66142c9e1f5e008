// The HTTP conformance cases (tests/lib/http-suite.js) through `FhirStore.fetch` on IndexedDB
// in headless Chromium, and through the Service Worker endpoint with the page offline.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { launchChromium } from "../lib/chromium.js";
import { controlByWorker, openTestPage, startStaticServer } from "../lib/static-server.js";
import { artifactPath } from "../lib/paths.js";
import { report, runHttpSuite } from "../lib/http-suite.js";

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

/** A fetch-like function in Node whose requests are made by `call` in the page. */
function through(page, call) {
  return async (url, init = {}) => {
    const answer = await page.evaluate(call, { url: String(url), init: { method: init.method ?? "GET", headers: init.headers ?? {}, body: init.body ?? null } });
    const empty = answer.status === 204 || answer.status === 304;
    return new Response(empty ? null : answer.text, { status: answer.status, headers: answer.headers });
  };
}


test("the HTTP conformance cases through store.fetch on IndexedDB", async () => {
  const context = await browser.newContext();
  const page = await openTestPage(context, server.origin);
  const send = through(page, async ({ url, init }) => {
    window.stores.conformance ??= await window.hearth.FhirStore.open({ name: "conformance" });
    const response = await window.stores.conformance.fetch(url, init);
    return { status: response.status, headers: [...response.headers], text: await response.text() };
  });
  const result = await runHttpSuite("https://hearth.local/fhir", send);
  await context.close();
  const { pass, fail } = report("store.fetch conformance", result);
  writeFileSync(artifactPath("store-fetch-conformance-failures.txt"), result.failures.join("\n") + "\n");
  assert.ok(pass + fail >= 300, `only ${pass + fail} cases`);
  assert.deepEqual(result.failures, []);
  assert.deepEqual(page.errors, []);
});

test("the HTTP conformance cases through the Service Worker endpoint, offline", async () => {
  const context = await browser.newContext();
  const page = await openTestPage(context, server.origin);
  await controlByWorker(page);
  await context.setOffline(true);
  const send = through(page, async ({ url, init }) => {
    const response = await fetch(url, init);
    return { status: response.status, headers: [...response.headers], text: await response.text() };
  });
  const offline = await page.evaluate(() => fetch("/pkg/package.json").then(() => "reached the network", () => "offline"));
  assert.equal(offline, "offline");
  const result = await runHttpSuite(`${server.origin}/fhir`, send);
  await context.close();
  const { pass, fail } = report("service worker conformance", result);
  writeFileSync(artifactPath("service-worker-conformance-failures.txt"), result.failures.join("\n") + "\n");
  assert.ok(pass + fail >= 300, `only ${pass + fail} cases`);
  assert.deepEqual(result.failures, []);
  assert.deepEqual(page.errors, []);
});

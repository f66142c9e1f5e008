// The demo app, built with Vite from the package as a user builds it, driven in headless
// Chromium: the engine loads in the page, reads a resource and reports a broken one.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { build, preview } from "vite";
import { launchChromium } from "../lib/chromium.js";
import { DEMO_DIR, artifactPath } from "../lib/paths.js";

let server;
let browser;
let page;
const consoleErrors = [];

before(async () => {
  await build({ root: DEMO_DIR, logLevel: "error" });
  server = await preview({ root: DEMO_DIR, preview: { port: 0, host: "127.0.0.1" }, logLevel: "error" });
  browser = await launchChromium();
  page = await browser.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (err) => consoleErrors.push(err.message));
  await page.goto(server.resolvedUrls.local[0]);
  await page.waitForSelector("body[data-ready=true]", { timeout: 15_000 });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test("the demo loads the engine and shows its version", async () => {
  assert.match(await page.textContent("#engine-version"), /^hearth engine \d+\.\d+\.\d+$/);
});

test("the demo inspects the example Patient", async () => {
  await page.click("#example-button");
  const result = page.locator("#result");
  assert.equal(await result.getAttribute("class"), "ok");
  assert.equal(await result.innerText(), "resourceType: Patient\nid: example");
  const canonical = await page.textContent("#canonical");
  assert.equal(JSON.parse(canonical).name[0].family, "Chalmers");
  assert.ok(canonical.startsWith('{\n  "resourceType": "Patient",\n  "id": "example",'), canonical);
  await page.screenshot({ path: artifactPath("demo-ok.png"), fullPage: true });
});

test("the demo evaluates FHIRPath on the resource, and reports a bad expression", async () => {
  await page.click("#example-button");
  await page.click("#fhirpath-button");
  assert.equal(await page.textContent("#fhirpath-result"), '["Peter","James"]');
  await page.fill("#fhirpath-input", "Patient.name.(");
  await page.press("#fhirpath-input", "Enter");
  assert.equal(await page.getAttribute("#fhirpath-result", "class"), "error");
  assert.match(await page.textContent("#fhirpath-result"), /expected a name after '\.', found '\(' at offset 13/);
  await page.fill("#fhirpath-input", "Patient.birthDate < today()");
  await page.press("#fhirpath-input", "Enter");
  assert.equal(await page.textContent("#fhirpath-result"), "[true]");
  await page.screenshot({ path: artifactPath("demo-fhirpath.png"), fullPage: true });
});

test("the demo shows where a broken resource goes wrong", async () => {
  await page.fill("#resource-input", '{\n  "resourceType": "Patient",\n  "id": 7\n}');
  await page.click("#inspect-button");
  const result = page.locator("#result");
  assert.equal(await result.getAttribute("class"), "error");
  assert.equal(await page.isHidden("#canonical-box"), true);
  assert.equal(
    await result.innerText(),
    'error: line 3, column 9: expected "id" (id) to be a JSON string, found a number 7',
  );
  await page.screenshot({ path: artifactPath("demo-error.png"), fullPage: true });
});

test("the page logged no errors", () => {
  assert.deepEqual(consoleErrors, []);
});

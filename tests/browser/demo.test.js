// The demo app end to end in Debian's Chromium, on a phone viewport and a desktop one: built
// with Vite from the package as a user builds it; `hearth serve` with authorization on and the
// Synthea patients loaded; the demo's SMART authorization server. Sign in (SMART standalone
// launch), first sync with progress, every screen; offline: reload, record a blood pressure and
// a diary entry (an invalid one first, refused at its field); online again: both reach the
// server; an entry edited offline and changed on the server meanwhile: a conflict, resolved in
// the UI. Screenshots of every screen go to tests/artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { build, preview } from "vite";
import { launchChromium } from "../lib/chromium.js";
import { DEMO_DIR, NPM_DIR, ROOT, artifactPath } from "../lib/paths.js";
import { serve, stop } from "../lib/serve.js";
import { startAuthServer } from "../../demo-app/server/auth.js";
import { demoUsers, resolveDemoUsers } from "../../demo-app/server/main.js";

const CORPUS = `${process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`}/synthea`;
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const DESKTOP = { viewport: { width: 1280, height: 860 } };

let app;
let auth;
let fhir;
let browser;
let data;
let users;
let login;
let systemToken;

before(async () => {
  data = mkdtempSync(join(tmpdir(), "hearth-demo-"));
  execFileSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "import", "--data", data, CORPUS], { stdio: "ignore" });
  await build({ root: DEMO_DIR, logLevel: "error" });
  app = await preview({ root: DEMO_DIR, preview: { port: 0, host: "127.0.0.1" }, logLevel: "error" });
  const origin = app.resolvedUrls.local[0].replace(/\/$/, "");
  users = demoUsers(CORPUS, 1);
  login = Object.keys(users)[0];
  let base;
  auth = await startAuthServer({ fhirBase: () => base, appRedirects: [`${origin}/`], users });
  fhir = await serve(data, ["--issuer", auth.issuer, "--allow-origin", origin]);
  base = fhir.base;
  writeFileSync(`${DEMO_DIR}/dist/demo-config.json`, JSON.stringify({ fhirBase: base, clientId: "patient-app", scope: "openid fhirUser launch/patient patient/*.cruds" }));
  systemToken = await auth.systemToken("system/*.*");
  await resolveDemoUsers(users, base, systemToken);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (fhir) await stop(fhir.child);
  await auth?.close();
  await app?.close();
  if (data) rmSync(data, { recursive: true, force: true });
});

/** A FHIR request to the server as a backend (system scope). */
async function server(method, path, body) {
  const response = await fetch(`${fhir.base}/${path}`, {
    method,
    headers: { authorization: `Bearer ${systemToken}`, "content-type": "application/fhir+json", accept: "application/fhir+json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : undefined };
}

/**
 * Opens a page that records console errors and warnings. Not counted: the browser's own log of
 * requests it could not send while offline, and of the one 403 a first sync meets when it asks
 * for the server's history with a patient's token (it then goes without, and says so no more).
 */
async function openPage(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("console", (message) => {
    if (message.type() !== "error" && message.type() !== "warning") return;
    const text = message.text();
    const url = message.location()?.url ?? "";
    if (/net::ERR_INTERNET_DISCONNECTED/.test(text)) return;
    if (/status of 403/.test(text) && /\/fhir\/_history\?_count=1$/.test(url)) return;
    errors.push(`${text} (${url})`);
  });
  page.on("pageerror", (err) => errors.push(err.message));
  return { page, errors };
}

async function shot(page, name) {
  await page.screenshot({ path: artifactPath(`demo-${name}.png`), fullPage: true });
}

async function screen(page, name) {
  await page.click(`nav a[href="#/${name}"]`);
  await page.waitForSelector(`body[data-screen=${name}][data-ready=true]`);
}

/** Signs in through the SMART launch and waits for the first sync to end on the summary. */
async function signIn(page, origin) {
  await page.goto(origin);
  await page.waitForSelector("#sign-in");
  await page.click("#sign-in");
  await page.waitForSelector("input[name=login]");
  await page.fill("input[name=login]", login);
  await page.fill("input[name=password]", "any");
  await page.click("form button[type=submit] >> nth=0");
  const progress = await page.waitForSelector("#first-sync-progress", { timeout: 30_000 }).then(() => true, () => false);
  try {
    await page.waitForSelector("body[data-screen=summary][data-ready=true]", { timeout: 60_000 });
  } catch (err) {
    throw new Error(`the app did not reach its summary: ${page.url()} shows "${(await page.innerText("body").catch(() => "")).slice(0, 1500)}"`, { cause: err });
  }
  return progress;
}

test("the demo on a phone: sign in, first sync, every screen, offline entries, a conflict resolved", async () => {
  const origin = app.resolvedUrls.local[0].replace(/\/$/, "");
  const patient = users[login].patient;
  // Two results with a reference range, as a lab sends them (Synthea's carry none).
  for (const [day, value] of [["2025-01-10", 104], ["2025-06-10", 96]]) {
    const made = await server("POST", "Observation", {
      resourceType: "Observation", status: "final",
      category: [{ coding: [{ system: "http://terminology.hl7.org/CodeSystem/observation-category", code: "laboratory" }] }],
      code: { coding: [{ system: "http://loinc.org", code: "1558-6", display: "Fasting glucose" }], text: "Fasting glucose" },
      subject: { reference: `Patient/${patient}` }, effectiveDateTime: `${day}T08:00:00Z`,
      valueQuantity: { value, unit: "mg/dL", system: "http://unitsofmeasure.org", code: "mg/dL" },
      referenceRange: [{ low: { value: 70, unit: "mg/dL" }, high: { value: 99, unit: "mg/dL" } }],
    });
    assert.equal(made.status, 201, JSON.stringify(made.json));
  }
  const context = await browser.newContext(PHONE);
  const { page, errors } = await openPage(context);
  try {
    await page.goto(origin);
    await page.waitForSelector("#sign-in");
    await shot(page, "phone-sign-in");
    const sawProgress = await signIn(page, origin);
    assert.ok(sawProgress, "the first sync showed its progress bar");
    await shot(page, "phone-summary");
    const summary = await page.innerText("main");
    assert.match(summary, /Conditions \(\d+\)/);
    assert.match(summary, /Visits/);
    const name = (await server("GET", `Patient/${patient}`)).json.name[0].family;
    assert.ok(summary.includes(name), `the summary names the patient (${name})`);

    await screen(page, "trends");
    assert.ok(await page.$("#chart canvas"), "a chart is drawn");
    assert.match(await page.getAttribute("#chart", "aria-label"), /^Blood pressure: \d+ results/);
    await shot(page, "phone-trends");
    // A lab result with its reference range: shaded, and said in the caption.
    await page.selectOption("#lab-picker", "1558-6");
    assert.match(await page.innerText("#chart-caption"), /reference range from 70 mg\/dL to 99 mg\/dL/);
    await shot(page, "phone-trends-range");
    await screen(page, "search");
    await page.fill("#search-input", "glucose");
    await page.click("form[role=search] button");
    await page.waitForSelector("#search-count");
    assert.match(await page.innerText("#search-count"), /^[1-9]\d* entr/);
    await shot(page, "phone-search");
    await screen(page, "access");
    await page.waitForSelector("#access-table tbody tr");
    assert.ok((await page.$$("#access-table tbody tr")).length > 0, "the audit trail lists the reads");
    assert.match(await page.innerText("#access-table"), /You/);
    await shot(page, "phone-who-saw-it");
    await screen(page, "sync");
    assert.equal(await page.innerText("#sync-pending"), "0");
    await shot(page, "phone-sync");

    // Offline: the Service Worker serves the app, IndexedDB the record.
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.reload();
    await page.waitForSelector("body[data-ready=true]");
    assert.ok(await page.evaluate(() => navigator.serviceWorker.controller !== null), "the Service Worker controls the page");
    await context.setOffline(true);
    await page.reload();
    await page.waitForSelector("body[data-screen][data-ready=true]");
    await screen(page, "summary");
    assert.match(await page.innerText("#status"), /^Offline/);
    assert.match(await page.innerText("main"), /Conditions \(\d+\)/);

    // An invalid entry is refused at its field; then a blood pressure and a diary entry.
    await screen(page, "add");
    await page.fill("#bp-systolic", "12o");
    await page.fill("#bp-diastolic", "82");
    await page.click("#bp-form button[type=submit]");
    await page.waitForSelector("#bp-systolic[aria-invalid=true]");
    assert.notEqual(await page.innerText("#bp-systolic-error"), "");
    assert.equal(await page.innerText("#bp-diastolic-error"), "");
    await shot(page, "phone-add-refused");
    await page.fill("#bp-systolic", "128");
    await page.click("#bp-form button[type=submit]");
    await page.waitForSelector("#bp-form .form-message[data-saved]");
    const bp = await page.getAttribute("#bp-form .form-message", "data-saved");
    await page.selectOption("#diary-symptom", "headache");
    await page.fill("#diary-severity", "4");
    await page.fill("#diary-notes", "after lunch");
    await page.click("#diary-form button[type=submit]");
    await page.waitForSelector("#diary-form .form-message[data-saved]");
    const diary = await page.getAttribute("#diary-form .form-message", "data-saved");
    // A weight, its Save pressed twice at once: stored once, and the form emptied.
    await page.fill("#weight-kg", "70.5");
    await Promise.all([page.click("#weight-form button[type=submit]"), page.click("#weight-form button[type=submit]")]);
    await page.waitForSelector("#weight-form .form-message[data-saved]");
    assert.equal(await page.inputValue("#weight-kg"), "");
    await shot(page, "phone-add");
    await page.waitForFunction(() => /3 changes to send/.test(document.querySelector("#status").textContent));

    // Online again: the `online` event starts a sync, and both entries reach the server.
    await context.setOffline(false);
    await page.evaluate(() => window.dispatchEvent(new Event("online")));
    let landed;
    for (let i = 0; i < 100 && landed === undefined; i++) {
      const [bpThere, diaryThere] = [await server("GET", bp), await server("GET", diary)];
      if (bpThere.status === 200 && diaryThere.status === 200) landed = { bp: bpThere.json, diary: diaryThere.json };
      else await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.ok(landed, `the blood pressure and the diary entry reached the server (the app says: ${await page.innerText("#status")})`);
    const serverBp = landed.bp;
    assert.equal(serverBp.component[0].valueQuantity.value, 128);
    assert.equal(serverBp.subject.reference, `Patient/${patient}`);
    assert.equal(landed.diary.item.find((item) => item.linkId === "severity").answer[0].valueInteger, 4);

    // The entry is edited offline (through the Service Worker's FHIR endpoint, as any FHIR
    // client on the device would) while a clinician changes it on the server.
    await context.setOffline(true);
    const edited = await page.evaluate(async (reference) => {
      const current = await (await fetch(`/fhir/${reference}`)).json();
      current.component[0].valueQuantity.value = 126;
      const response = await fetch(`/fhir/${reference}`, { method: "PUT", headers: { "content-type": "application/fhir+json", "if-match": `W/"${current.meta.versionId}"` }, body: JSON.stringify(current) });
      return response.status;
    }, bp);
    assert.equal(edited, 200);
    const theirs = (await server("GET", bp)).json;
    theirs.component[0].valueQuantity.value = 131;
    assert.equal((await server("PUT", bp, theirs)).status, 200);
    await context.setOffline(false);
    await page.evaluate(() => window.dispatchEvent(new Event("online")));
    await page.waitForSelector("#sync-badge:not([hidden])", { timeout: 30_000 });
    await screen(page, "sync");
    await page.waitForSelector(`.conflict[data-reference="${bp}"]`);
    const conflictText = await page.innerText(`.conflict[data-reference="${bp}"]`);
    assert.match(conflictText, /126/);
    assert.match(conflictText, /131/);
    await shot(page, "phone-conflict");
    await page.click(`.conflict[data-reference="${bp}"] .keep-local`);
    let resolved;
    for (let i = 0; i < 100 && resolved === undefined; i++) {
      const now = (await server("GET", bp)).json;
      if (now.component[0].valueQuantity.value === 126) resolved = now;
      else await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.ok(resolved, "the resolution reached the server");
    await page.waitForFunction(() => /\(0\)/.test(document.querySelector("#conflicts-title")?.textContent ?? ""));
    await shot(page, "phone-sync-resolved");

    // Signing out removes the record here and ends the provider's session: the next sign-in
    // asks who is signing in.
    await page.click("#sign-out");
    await page.waitForSelector("button[name=logout]");
    await page.click("button[name=logout]");
    await page.waitForSelector("#sign-in");
    assert.deepEqual(await page.evaluate(async () => (await indexedDB.databases()).map((db) => db.name).filter((name) => name === "hearth-demo")), []);
    await page.click("#sign-in");
    await page.waitForSelector("input[name=login]");
    assert.deepEqual(errors, []);
    console.log(`demo on a phone: signed in as ${login}, first sync with progress, 6 screens, offline reload, 2 entries pushed, a conflict resolved in the UI`);
  } finally {
    await context.close();
  }
});

test("the demo on a desktop: the summary and the trends", async () => {
  const origin = app.resolvedUrls.local[0].replace(/\/$/, "");
  const context = await browser.newContext(DESKTOP);
  const { page, errors } = await openPage(context);
  try {
    await signIn(page, origin);
    await shot(page, "desktop-summary");
    await screen(page, "trends");
    assert.ok(await page.$("#chart canvas"));
    await shot(page, "desktop-trends");
    await screen(page, "add");
    await shot(page, "desktop-add");
    // Keyboard: the first Tab reaches the skip link, which leads to the content and stays on
    // the screen; moving between screens puts the focus on the new content.
    await screen(page, "trends");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
    assert.match(await page.title(), /^Trends/);
    await page.reload();
    await page.waitForSelector("body[data-ready=true]");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.className), "skip");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
    assert.equal(await page.evaluate(() => document.body.dataset.screen), "trends");
    assert.match(await page.innerText("main"), /Vital sign/);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

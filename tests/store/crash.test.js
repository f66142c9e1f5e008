// Crash consistency of FhirStore on IndexedDB: Chromium is killed with SIGKILL while a page
// stores large transaction Bundles one after another, 20 times; after each kill the profile is
// reopened and every acknowledged Bundle must be there whole, and no Bundle in part.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "../lib/chromium.js";
import { openTestPage, startStaticServer } from "../lib/static-server.js";

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 20);
const BUNDLE_SIZE = 100;

let server;
let profile;

before(async () => {
  server = await startStaticServer();
  profile = mkdtempSync(join(tmpdir(), "hearth-crash-"));
});

after(async () => {
  await server?.close();
  rmSync(profile, { recursive: true, force: true });
});

/** Chromium on the profile, in its own process group, and a CDP connection to it. */
async function launch() {
  const child = spawn("/usr/bin/chromium", [...CHROMIUM_ARGS, "--headless=new", `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank"], {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const endpoint = await new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`Chromium did not start: ${output}`)), 30_000);
    child.stderr.on("data", (chunk) => {
      output += chunk;
      const match = /DevTools listening on (ws:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once("exit", (code) => reject(new Error(`Chromium exited with ${code}: ${output}`)));
  });
  const browser = await chromium.connectOverCDP(endpoint);
  return { child, browser };
}

function kill(child) {
  return new Promise((resolve) => {
    child.once("exit", resolve);
    process.kill(-child.pid, "SIGKILL");
  });
}

function openPage(browser) {
  return openTestPage(browser.contexts()[0], server.origin);
}

test(`every acknowledged transaction Bundle is whole after ${ROUNDS} SIGKILLs, and none is partial`, async () => {
  let killedInFlight = 0;
  let killedInTransaction = 0;
  let acknowledgedTotal = 0;
  for (let round = 0; round < ROUNDS; round += 1) {
    const { child, browser } = await launch();
    const page = await openPage(browser);
    const acknowledged = [];
    let begun = -1;
    page.on("console", (message) => {
      const match = /^(stored|storing) (\d+)$/.exec(message.text());
      if (match?.[1] === "stored") acknowledged.push(Number(match[2]));
      if (match?.[1] === "storing") begun = Number(match[2]);
    });
    // Bundles go in one after another until the browser dies.
    page
      .evaluate(
        async ({ round, size }) => {
          const store = await window.hearth.FhirStore.open({ name: `crash-${round}` });
          for (let bundle = 0; ; bundle += 1) {
            console.log(`storing ${bundle}`);
            await store.transaction({
              resourceType: "Bundle",
              type: "transaction",
              entry: Array.from({ length: size }, (_, n) => ({
                resource: { resourceType: "Patient", identifier: [{ system: "urn:crash", value: String(bundle) }], name: [{ family: `Crash${n}`, given: ["x".repeat(200)] }] },
                request: { method: "POST", url: "Patient" },
              })),
            });
            console.log(`stored ${bundle}`);
          }
        },
        { round, size: BUNDLE_SIZE },
      )
      .catch(() => {});
    const started = Date.now();
    while (acknowledged.length === 0 && Date.now() - started < 20_000) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(acknowledged.length > 0, `round ${round}: nothing was stored within 20 s`);
    // Somewhere inside a later Bundle.
    await new Promise((resolve) => setTimeout(resolve, 150 + Math.floor(Math.random() * 900)));
    await kill(child);
    await browser.close().catch(() => {});
    const last = Math.max(...acknowledged);
    acknowledgedTotal += acknowledged.length;
    // The kill came after a Bundle was handed to the store and before it was acknowledged.
    if (begun > last) killedInTransaction += 1;

    const reopened = await launch();
    const check = await openPage(reopened.browser);
    const counts = await check.evaluate(
      async ({ round, last }) => {
        const store = await window.hearth.FhirStore.open({ name: `crash-${round}` });
        const counts = [];
        for (let bundle = 0; bundle <= last + 1; bundle += 1) {
          counts.push((await store.search("Patient", { identifier: `urn:crash|${bundle}`, _summary: "count" })).total);
        }
        const all = (await store.search("Patient", { _summary: "count" })).total;
        return { counts, all };
      },
      { round, last },
    );
    await kill(reopened.child);
    await reopened.browser.close().catch(() => {});
    for (let bundle = 0; bundle <= last; bundle += 1) {
      assert.equal(counts.counts[bundle], BUNDLE_SIZE, `round ${round}: acknowledged bundle ${bundle} has ${counts.counts[bundle]} of ${BUNDLE_SIZE} resources`);
    }
    const next = counts.counts[last + 1];
    assert.ok(next === 0 || next === BUNDLE_SIZE, `round ${round}: bundle ${last + 1} is partial: ${next} of ${BUNDLE_SIZE}`);
    if (next === BUNDLE_SIZE) killedInFlight += 1;
    // Nothing else: every stored resource belongs to a whole bundle.
    assert.equal(counts.all, counts.counts.reduce((sum, count) => sum + count, 0), `round ${round}: resources outside the bundles`);
  }
  console.log(`store: ${ROUNDS} SIGKILLs (${killedInTransaction} while a Bundle was being stored), ${acknowledgedTotal} acknowledged bundles all whole, ${killedInFlight} committed but not yet acknowledged, none partial`);
  assert.ok(killedInTransaction >= ROUNDS / 2, `only ${killedInTransaction} of ${ROUNDS} kills came while a Bundle was being stored`);
});

// First sync of the benchmark data set (Synthea patients scaled to ~50k resources) from
// `hearth serve` into a FhirStore on IndexedDB in headless Chromium, against the raw time to
// fetch the same pages and put their JSON into IndexedDB (no validation, no index) in the same
// page; then an incremental sync with nothing new: its requests and time. A checkpoint is set
// two minutes before what bounds it (server clocks and commit order may differ), so the first
// sync starts once the server's data is older than that, as a store's data is between the
// syncs of a running app; otherwise the incremental sync reads those two minutes again.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchChromium } from "../lib/chromium.js";
import { startStaticServer } from "../lib/static-server.js";
import { serve, stop } from "../lib/serve.js";
import { NPM_DIR, ROOT } from "../lib/paths.js";
import { buildDataset } from "./dataset.js";

const PATIENTS = Number(process.env.HEARTH_SYNC_BENCH_PATIENTS ?? 4600);
const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const PAGE = 1000;

const { texts, jsonBytes } = buildDataset({ patients: PATIENTS, corpus });
const types = [...new Set(texts.map((text) => JSON.parse(text).resourceType))].sort();
const dir = mkdtempSync(join(tmpdir(), "hearth-sync-bench-"));
writeFileSync(join(dir, "data.ndjson"), texts.join("\n") + "\n");
const imported = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "import", "--data", join(dir, "store"), join(dir, "data.ndjson")], { encoding: "utf8" });
if (imported.status !== 0) throw new Error(imported.stderr);
const importedAt = Date.now();
const SETTLE_MS = Number(process.env.HEARTH_SYNC_BENCH_SETTLE_MS ?? 125_000);
console.log(`sync benchmark: ${texts.length} resources (${PATIENTS} patients, ${types.length} types), ${(jsonBytes / 1e6).toFixed(1)} MB of JSON on hearth serve; pages of ${PAGE}`);

const pages = await startStaticServer();
const fhir = await serve(join(dir, "store"), ["--allow-origin", pages.origin]);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  page.on("pageerror", (err) => console.error("page error:", err.message));
  await page.goto(`${pages.origin}/pages/index.html`);
  await page.waitForSelector("body[data-ready=true]", { state: "attached" });
  page.setDefaultTimeout(0);
  const wait = importedAt + SETTLE_MS - Date.now();
  if (wait > 0) {
    console.log(`waiting ${(wait / 1000).toFixed(0)} s for the server's data to be older than the sync checkpoint's two-minute margin`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  const result = await page.evaluate(
    async ({ base, types, size }) => {
      // Raw: the same pages fetched, their resources put as JSON text, one transaction a page.
      const raw = await new Promise((resolve, reject) => {
        const request = indexedDB.open("raw-sync-bench", 1);
        request.onupgradeneeded = () => request.result.createObjectStore("records");
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      let rawCount = 0;
      const rawStart = performance.now();
      for (const type of types) {
        let url = `${base}/${type}?_count=${size}`;
        while (url) {
          const bundle = await (await fetch(url, { headers: { accept: "application/fhir+json" } })).json();
          await new Promise((resolve, reject) => {
            const tx = raw.transaction("records", "readwrite");
            const records = tx.objectStore("records");
            for (const entry of bundle.entry ?? []) {
              records.put(JSON.stringify(entry.resource), `${entry.resource.resourceType}/${entry.resource.id}`);
              rawCount++;
            }
            tx.oncomplete = resolve;
            tx.onerror = () => reject(tx.error);
          });
          url = bundle.link?.find((link) => link.relation === "next")?.url;
        }
      }
      const rawMs = performance.now() - rawStart;
      raw.close();

      const store = await window.hearth.FhirStore.open({ name: "sync-bench" });
      const start = performance.now();
      const first = await store.sync({ remote: base, scope: { types }, pageSize: size });
      const syncMs = performance.now() - start;
      const again = performance.now();
      const quiet = await store.sync({ remote: base, scope: { types }, pageSize: size });
      const quietMs = performance.now() - again;
      return { rawCount, rawMs, first, syncMs, quiet, quietMs };
    },
    { base: fhir.base, types, size: PAGE },
  );
  const rawRate = result.rawCount / (result.rawMs / 1000);
  const syncRate = result.first.pulled / (result.syncMs / 1000);
  console.log(`first sync: ${result.first.pulled} resources in ${(result.syncMs / 1000).toFixed(1)} s (${Math.round(syncRate)}/s, validated, every search index, ${result.first.requests} requests, complete: ${result.first.complete}); raw fetch + IndexedDB put of the same pages: ${result.rawCount} in ${(result.rawMs / 1000).toFixed(1)} s (${Math.round(rawRate)}/s): ${(syncRate / rawRate).toFixed(2)}× raw (goal ≥ 0.5×)`);
  console.log(`incremental sync with nothing new: ${result.quiet.requests} request(s), ${result.quietMs.toFixed(1)} ms, pulled ${result.quiet.pulled}, pushed ${result.quiet.pushed}`);
} finally {
  await browser.close();
  await stop(fhir.child);
  await pages.close();
  rmSync(dir, { recursive: true, force: true });
}

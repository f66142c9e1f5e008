// FhirStore on IndexedDB in headless Chromium: ingest of the benchmark data set (Synthea
// patients scaled to ~100k resources, every search index written) against raw IndexedDB `put`
// of the same JSON records with no index, in the same page and the same transaction sizes; the
// twelve benchmark queries (median of 5, each answer compared with the in-memory store's); the
// time to reopen and answer a first query after a reload; Wasm memory and JS heap.
import { performance } from "node:perf_hooks";
import { launchChromium } from "../lib/chromium.js";
import { startStaticServer } from "../lib/static-server.js";
import { ROOT } from "../lib/paths.js";
import { buildDataset } from "./dataset.js";

const PATIENTS = Number(process.env.HEARTH_STORE_BENCH_PATIENTS ?? 9100);
const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const BATCH = 500;

const { texts, jsonBytes, queries } = buildDataset({ patients: PATIENTS, corpus });
console.log(`store benchmark: ${texts.length} resources (${PATIENTS} patients), ${(jsonBytes / 1e6).toFixed(1)} MB of JSON, transactions of ${BATCH}`);

const server = await startStaticServer({ files: { "/bench/data.ndjson": texts.join("\n") + "\n" } });
const browser = await launchChromium(["--enable-precise-memory-info"]);
const mb = (bytes) => `${(bytes / 1048576).toFixed(1)} MB`;
try {
  const page = await browser.newPage();
  page.on("pageerror", (err) => console.error("page error:", err.message));
  await page.goto(`${server.origin}/pages/index.html`);
  await page.waitForSelector("body[data-ready=true]", { state: "attached" });
  page.setDefaultTimeout(0);

  const ingest = await page.evaluate(async ({ batch }) => {
    const texts = (await (await fetch("/bench/data.ndjson")).text()).trim().split("\n");
    // Raw IndexedDB: the same records, one readwrite transaction per batch, no index.
    const raw = await new Promise((resolve, reject) => {
      const request = indexedDB.open("raw-bench", 1);
      request.onupgradeneeded = () => request.result.createObjectStore("records");
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const rawStart = performance.now();
    for (let at = 0; at < texts.length; at += batch) {
      await new Promise((resolve, reject) => {
        const tx = raw.transaction("records", "readwrite");
        const records = tx.objectStore("records");
        for (const text of texts.slice(at, at + batch)) {
          const resource = JSON.parse(text);
          records.put(text, `${resource.resourceType}/${resource.id}`);
        }
        tx.oncomplete = resolve;
        tx.onerror = () => reject(tx.error);
      });
    }
    const rawMs = performance.now() - rawStart;
    raw.close();

    const { FhirStore, engineMemoryBytes } = window.hearth;
    const wasmBefore = engineMemoryBytes();
    const store = await FhirStore.open({ name: "store-bench" });
    // The NDJSON text is made before the clock starts, as the raw records were split before.
    const ndjson = texts.join("\n");
    const start = performance.now();
    await store.import(ndjson, { batchSize: batch });
    const hearthMs = performance.now() - start;
    const wasmAfter = engineMemoryBytes();
    window.stores.bench = store;
    return { count: texts.length, rawMs, hearthMs, wasmBefore, wasmAfter, heap: performance.memory.usedJSHeapSize };
  }, { batch: BATCH });
  const rawRate = ingest.count / (ingest.rawMs / 1000);
  const hearthRate = ingest.count / (ingest.hearthMs / 1000);
  console.log(`ingest: Hearth ${Math.round(hearthRate)} resources/s (${(ingest.hearthMs / 1000).toFixed(1)} s, validated, all search indexes), raw IndexedDB put ${Math.round(rawRate)} records/s (${(ingest.rawMs / 1000).toFixed(1)} s, no index): ${(hearthRate / rawRate).toFixed(3)}× raw (goal ≥ 0.5×)`);
  console.log(`memory after the import: Wasm ${mb(ingest.wasmAfter)} (was ${mb(ingest.wasmBefore)}), JS heap ${mb(ingest.heap)} (the page still holds the data set's text)`);

  const results = await page.evaluate(async ({ queries }) => {
    const { FhirStore } = window.hearth;
    const texts = (await (await fetch("/bench/data.ndjson")).text()).trim();
    const memory = await FhirStore.open({ memory: true, validation: false });
    await memory.import(texts, { batchSize: 2000 });
    const answer = async (store, url) => {
      const response = await store.fetch(url);
      const bundle = await response.json();
      return JSON.stringify({ status: response.status, total: bundle.total, ids: (bundle.entry ?? []).map((entry) => `${entry.resource.resourceType}/${entry.resource.id}`) });
    };
    const out = [];
    for (const [name, url] of queries) {
      const expected = await answer(memory, url);
      const got = await answer(window.stores.bench, url);
      const times = [];
      for (let i = 0; i < 5; i += 1) {
        const start = performance.now();
        await (await window.stores.bench.fetch(url)).text();
        times.push(performance.now() - start);
      }
      times.sort((a, b) => a - b);
      out.push({ name, median: times[2], equal: got === expected, results: JSON.parse(got).ids.length });
    }
    await memory.close();
    return out;
  }, { queries });
  for (const { name, median, equal, results: count } of results) {
    console.log(`  ${name.padEnd(18)} ${median.toFixed(1).padStart(7)} ms median, ${String(count).padStart(4)} results, ${equal ? "equal to the in-memory store's answer" : "DIFFERS from the in-memory store's answer"}`);
  }

  await page.reload();
  await page.waitForSelector("body[data-ready=true]", { state: "attached" });
  const reopen = await page.evaluate(async ({ url }) => {
    const { FhirStore, engineMemoryBytes } = window.hearth;
    const start = performance.now();
    const store = await FhirStore.open({ name: "store-bench" });
    const opened = performance.now();
    const response = await store.fetch(url);
    await response.json();
    const answered = performance.now();
    return { openMs: opened - start, firstQueryMs: answered - opened, wasm: engineMemoryBytes(), heap: performance.memory.usedJSHeapSize };
  }, { url: queries[0][1] });
  console.log(`after a reload: open ${reopen.openMs.toFixed(1)} ms, first query (${queries[0][0]}) ${reopen.firstQueryMs.toFixed(1)} ms; Wasm memory ${mb(reopen.wasm)}, JS heap ${mb(reopen.heap)}`);
  const differ = results.filter((result) => !result.equal).length;
  if (differ > 0) {
    console.error(`${differ} answers differ from the in-memory store's`);
    process.exitCode = 1;
  }
} finally {
  await browser.close();
  await server.close();
}

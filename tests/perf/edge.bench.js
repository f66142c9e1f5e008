// Benchmark: hearth-fhir/cloudflare in workerd through Miniflare (the worker of
// examples/cloudflare bundled as wrangler does). The worker's compressed size against the free
// plan's 3 MB; the cold start of a tenant's Durable Object (the first request to an object
// never used: the isolate's engine, the store's table, the answer); and the time per request
// for a read, a create and the service benchmark's queries over 1,000 patients in one tenant.
// workerd gives no CPU time to the outside: the times are wall-clock through Miniflare's
// loopback HTTP, an upper bound of the CPU time (goal ≤ 10 ms each). Run with `make bench`.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { ROOT, artifactPath } from "../lib/paths.js";
import { buildDataset } from "./dataset.js";

const PATIENTS = Number(process.env.HEARTH_BENCH_PATIENTS ?? 1000);
// Inside the repository: workerd reads modules below its starting directory only.
const outdir = mkdtempSync(artifactPath("edge-bench-"));
await build({
  entryPoints: [`${ROOT}examples/cloudflare/worker.js`],
  bundle: true,
  format: "esm",
  platform: "neutral",
  conditions: ["workerd", "worker", "browser"],
  external: ["cloudflare:workers"],
  loader: { ".wasm": "copy" },
  minify: true,
  outdir,
  logLevel: "error",
});
let raw = 0;
let gzipped = 0;
for (const name of readdirSync(outdir)) {
  const bytes = readFileSync(join(outdir, name));
  raw += statSync(join(outdir, name)).size;
  gzipped += gzipSync(bytes, { level: 9 }).length;
}
console.log(`edge benchmark: worker bundle ${(raw / 1e6).toFixed(2)} MB, ${(gzipped / 1e6).toFixed(2)} MB gzip (free plan limit 3 MB compressed)`);

const persist = mkdtempSync(join(tmpdir(), "hearth-edge-do-"));
const started = performance.now();
const mf = new Miniflare({
  modules: true,
  scriptPath: join(outdir, "worker.js"),
  compatibilityDate: "2026-04-01",
  cf: false,
  modulesRules: [
    { type: "ESModule", include: ["**/*.js"] },
    { type: "CompiledWasm", include: ["**/*.wasm"] },
  ],
  durableObjects: { HEARTH: { className: "FhirDurableObject", useSQLite: true } },
  durableObjectsPersist: persist,
  bindings: { HEARTH_NO_AUTH: "true" },
});
await mf.ready;
const ready = performance.now();
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const time = async (url, init) => {
  const start = performance.now();
  const response = await mf.dispatchFetch(url, init);
  await response.arrayBuffer();
  if (response.status >= 400 && response.status !== 404) throw new Error(`${url}: ${response.status}`);
  return performance.now() - start;
};
try {
  // Cold starts: the first request to each of 5 objects never used.
  const colds = [];
  for (let idx = 0; idx < 5; idx += 1) colds.push(await time(`http://localhost/fhir/cold-${idx}/Patient/none`));
  const warm = [];
  for (let idx = 0; idx < 20; idx += 1) warm.push(await time("http://localhost/fhir/cold-0/Patient/none"));
  console.log(`workerd ready in ${(ready - started).toFixed(0)} ms; first request to a new tenant's object (cold start of the object): median ${median(colds).toFixed(1)} ms (goal ≤ 50 ms; the first of all, with the isolate's engine, ${colds[0].toFixed(1)} ms); the same request warm ${median(warm).toFixed(2)} ms`);

  const { resources, queries } = buildDataset({ patients: PATIENTS, corpus: `${ROOT}../shared/corpus` });
  const base = "http://localhost/fhir/bench";
  const loadStart = performance.now();
  for (let at = 0; at < resources.length; at += 500) {
    const entry = resources.slice(at, at + 500).map((resource) => ({ resource, request: { method: "PUT", url: `${resource.resourceType}/${resource.id}` } }));
    await time(base, { method: "POST", headers: { "content-type": "application/fhir+json" }, body: JSON.stringify({ resourceType: "Bundle", type: "transaction", entry }) });
  }
  console.log(`loaded ${resources.length} resources in transactions of 500: ${Math.round(resources.length / ((performance.now() - loadStart) / 1000))} resources/s`);
  const sample = resources.find((resource) => resource.resourceType === "Observation");
  const reads = [];
  const creates = [];
  for (let idx = 0; idx < 30; idx += 1) {
    reads.push(await time(`${base}/Observation/${sample.id}`));
    creates.push(await time(`${base}/Observation`, { method: "POST", headers: { "content-type": "application/fhir+json" }, body: JSON.stringify({ ...sample, id: undefined, meta: undefined }) }));
  }
  console.log(`  read               ${median(reads).toFixed(2)} ms median`);
  console.log(`  create             ${median(creates).toFixed(2)} ms median (validated, indexed, one storage transaction)`);
  let over = 0;
  for (const [label, url] of queries) {
    const times = [];
    for (let idx = 0; idx < 9; idx += 1) times.push(await time(`${base}/${url}`));
    const ms = median(times);
    if (ms > 10) over += 1;
    const bundle = await (await mf.dispatchFetch(`${base}/${url}`)).json();
    console.log(`  ${label.padEnd(18)} ${ms.toFixed(2)} ms median, ${(bundle.entry ?? []).length} resources in the page`);
  }
  console.log(`edge requests: ${over} of ${queries.length + 2} over 10 ms (read, create and the ${queries.length} queries; wall-clock through Miniflare)`);
} finally {
  await mf.dispose();
  rmSync(outdir, { recursive: true, force: true });
  rmSync(persist, { recursive: true, force: true });
}

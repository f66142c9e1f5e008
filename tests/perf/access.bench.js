// Benchmark: what authorization and audit cost on the service benchmark's query workload, in
// one Node process, on and off in the same run. "On" is what `hearth serve --issuer` does for
// each request: the bearer token checked (a JWT signed RS256 by the issuer, verified with
// WebCrypto against its JWKS; a token seen before is not verified again), the scopes enforced
// (a system/*.* token, so every query finds what it finds without authorization) and an
// AuditEvent stored for the request. Goal: at most 10% more time. Run with `make bench`.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { FhirService } from "hearth-fhir";
import { initSync } from "../../npm/dist/wasm/hearth.js";
import { TokenVerifier } from "../../npm/src/auth.js";
import { makeKey, sign, startIssuer } from "../lib/jwt-issuer.js";
import { ROOT } from "../lib/paths.js";
import { buildDataset } from "./dataset.js";

initSync({ module: readFileSync(new URL("../../npm/dist/wasm/hearth_bg.wasm", import.meta.url)) });

const PATIENTS = Number(process.env.HEARTH_BENCH_PATIENTS ?? 1000);
const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const { resources, texts, queries } = buildDataset({ patients: PATIENTS, corpus });
const BASE = "http://127.0.0.1/fhir";

const service = new FhirService({ baseUrl: BASE });
resources.forEach((resource, idx) => {
  const response = service.handle({ method: "PUT", path: `${resource.resourceType}/${resource.id}`, headers: { "content-type": "application/fhir+json", "x-validation": "off" }, body: texts[idx] });
  if (response.status >= 300) throw new Error(response.body.slice(0, 300));
});

const key = await makeKey("RS256", "bench");
const issuer = await startIssuer([key]);
const verifier = new TokenVerifier({ issuer: issuer.issuer, audience: BASE });
const token = await sign(key, { iss: issuer.issuer, aud: BASE, sub: "bench", client_id: "bench", scope: "system/*.*", exp: Math.floor(Date.now() / 1000) + 3600 });

const off = async (path, query) => service.handle({ method: "GET", path, query });
const on = async (path, query) => {
  const headers = { authorization: `Bearer ${token}` };
  const verdict = await verifier.authorize((name) => headers[name], query);
  return service.handle({ method: "GET", path, query, headers, claims: verdict.claims ?? { refused: verdict.refused } });
};

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Median ms of `run` for each query, the two ways interleaved so that drift hits both. */
async function timeBoth(path, query) {
  const times = { off: [], on: [] };
  for (let round = 0; round < 15; round += 1) {
    for (const [name, run] of [["off", off], ["on", on]]) {
      const start = performance.now();
      const response = await run(path, query);
      times[name].push(performance.now() - start);
      if (response.status !== 200) throw new Error(`${name} ${path}: ${response.status} ${response.body.slice(0, 200)}`);
    }
  }
  return { off: median(times.off), on: median(times.on) };
}

console.log(`access benchmark: ${resources.length} resources (${PATIENTS} patients); each query 15 times without and with authorization and audit`);
let offSum = 0;
let onSum = 0;
for (const [label, url] of queries) {
  const [path, search = ""] = url.split("?");
  const query = [...new URLSearchParams(search)];
  // Same answer either way.
  const plain = JSON.parse((await off(path, query)).body);
  const authorized = JSON.parse((await on(path, query)).body);
  if (plain.total !== authorized.total || (plain.entry ?? []).length !== (authorized.entry ?? []).length) {
    throw new Error(`${label}: the answers differ with authorization on`);
  }
  const { off: offMs, on: onMs } = await timeBoth(path, query);
  offSum += offMs;
  onSum += onMs;
  console.log(`  ${label.padEnd(18)} off ${offMs.toFixed(3)} ms, on ${onMs.toFixed(3)} ms (${(((onMs - offMs) / offMs) * 100).toFixed(1)}%)`);
}
const audit = JSON.parse(service.handle({ method: "GET", path: "AuditEvent", query: [["_summary", "count"]] }).body).total;
console.log(`access overhead on the query workload: off ${offSum.toFixed(2)} ms, on ${onSum.toFixed(2)} ms: ${(((onSum - offSum) / offSum) * 100).toFixed(1)}% more time (goal ≤ 10%); ${audit} AuditEvents stored`);
await issuer.close();

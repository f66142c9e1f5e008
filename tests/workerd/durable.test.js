// hearth-fhir/cloudflare in workerd through Miniflare: the router and FhirDurableObject on the
// Durable Object SQLite storage, persisted on disk. The HTTP conformance suite through them;
// persistence across a restart; 8 clients racing on one tenant; tenants apart; transactions
// and a worker failing mid-commit leaving nothing half-written; authorization on.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { artifactPath } from "../lib/paths.js";
import { report, runHttpSuite } from "../lib/http-suite.js";
import { makeKey, sign, startIssuer } from "../lib/jwt-issuer.js";

let outdir;
let persist;

before(async () => {
  outdir = mkdtempSync(artifactPath("workerd-do-"));
  persist = mkdtempSync(join(tmpdir(), "hearth-do-"));
  await build({
    entryPoints: [new URL("./do-worker.js", import.meta.url).pathname],
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    external: ["cloudflare:workers"],
    loader: { ".wasm": "copy" },
    outdir,
    logLevel: "error",
  });
  assert.ok(readdirSync(outdir).some((name) => name.endsWith(".wasm")));
});

after(() => {
  rmSync(persist, { recursive: true, force: true });
});

function start(bindings = { HEARTH_NO_AUTH: "true" }) {
  return new Miniflare({
    modules: true,
    scriptPath: `${outdir}/do-worker.js`,
    compatibilityDate: "2026-04-01",
    cf: false,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    durableObjects: {
      HEARTH: { className: "FhirDurableObject", useSQLite: true },
      FAILING: { className: "FailingFhirObject", useSQLite: true },
    },
    durableObjectsPersist: persist,
    bindings,
  });
}

const JSON_HEADERS = { "content-type": "application/fhir+json" };

test("the HTTP conformance suite through the router and a Durable Object", async () => {
  const mf = start();
  try {
    const base = "http://localhost/fhir/conformance";
    const result = await runHttpSuite(base, (url, init) => mf.dispatchFetch(url, init), {
      // Cloudflare's own limit on the request line (16 KB at the edge), before any worker runs.
      skip: { "search errors: a 100 kB value is answered": "workerd refuses a 100 kB request line itself (431) before the worker runs" },
    });
    const { pass, fail } = report("durable object conformance", result);
    assert.ok(pass + fail >= 300);
    assert.deepEqual(result.failures, []);
  } finally {
    await mf.dispose();
  }
});

test("data persists across a restart; tenants see nothing of each other", async () => {
  let mf = start();
  const ids = [];
  try {
    for (let idx = 0; idx < 20; idx += 1) {
      const response = await mf.dispatchFetch("http://localhost/fhir/clinic-a/Patient", {
        method: "POST",
        headers: JSON_HEADERS,
        body: JSON.stringify({ resourceType: "Patient", name: [{ family: `Kept${idx}` }] }),
      });
      assert.equal(response.status, 201);
      ids.push((await response.json()).id);
    }
  } finally {
    await mf.dispose();
  }
  mf = start();
  try {
    for (const [idx, id] of ids.entries()) {
      const response = await mf.dispatchFetch(`http://localhost/fhir/clinic-a/Patient/${id}`);
      assert.equal(response.status, 200);
      assert.equal((await response.json()).name[0].family, `Kept${idx}`);
    }
    const all = await (await mf.dispatchFetch("http://localhost/fhir/clinic-a/Patient?_summary=count")).json();
    assert.equal(all.total, 20);
    const other = await (await mf.dispatchFetch("http://localhost/fhir/clinic-b/Patient?_summary=count")).json();
    assert.equal(other.total, 0);
    assert.equal((await mf.dispatchFetch(`http://localhost/fhir/clinic-b/Patient/${ids[0]}`)).status, 404);
    assert.equal((await mf.dispatchFetch("http://localhost/elsewhere")).status, 404);
  } finally {
    await mf.dispose();
  }
});

test("8 clients racing with If-Match on one tenant: no lost update, every 412 justified", async () => {
  const mf = start();
  try {
    const base = "http://localhost/fhir/race";
    const put = (body, headers = {}) => mf.dispatchFetch(`${base}/Observation/counter`, { method: "PUT", headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) });
    const counter = (value) => ({ resourceType: "Observation", id: "counter", status: "final", code: { text: "counter" }, valueInteger: value });
    assert.equal((await put(counter(0))).status, 201);
    let acknowledged = 0;
    let refused = 0;
    const client = async () => {
      for (let round = 0; round < 10; round += 1) {
        for (;;) {
          const read = await mf.dispatchFetch(`${base}/Observation/counter`);
          const current = await read.json();
          const response = await put(counter(current.valueInteger + 1), { "if-match": read.headers.get("etag") });
          await response.arrayBuffer();
          if (response.status === 200) {
            acknowledged += 1;
            break;
          }
          assert.equal(response.status, 412);
          refused += 1;
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, client));
    const final = await (await mf.dispatchFetch(`${base}/Observation/counter`)).json();
    assert.equal(acknowledged, 80);
    assert.equal(final.valueInteger, 80, `${refused} refused`);
    assert.equal(final.meta.versionId, "81");
    console.log(`durable object race: 8 clients, 80 increments acknowledged, all kept; ${refused} stale If-Match refused with 412`);
  } finally {
    await mf.dispose();
  }
});

test("a failing transaction and a worker failing mid-commit leave nothing half-written", async () => {
  const mf = start();
  try {
    const base = "http://localhost/fhir/atomic";
    const bundle = {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        { resource: { resourceType: "Patient", id: "t1" }, request: { method: "PUT", url: "Patient/t1" } },
        { resource: { resourceType: "Patient", id: "t2" }, request: { method: "PUT", url: "Patient/t2" } },
        { resource: { resourceType: "Patient", gender: "not-a-gender" }, request: { method: "POST", url: "Patient" } },
      ],
    };
    const failed = await mf.dispatchFetch(base, { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(bundle) });
    assert.ok(failed.status >= 400, `${failed.status}`);
    assert.equal((await (await mf.dispatchFetch(`${base}/Patient?_summary=count`)).json()).total, 0);
    // The store's commit writes half, then the worker fails: the storage transaction is rolled back.
    const marked = { resourceType: "Bundle", type: "transaction", entry: [
      { resource: { resourceType: "Patient", id: "m1", name: [{ family: "fail-midway" }] }, request: { method: "PUT", url: "Patient/m1" } },
      { resource: { resourceType: "Patient", id: "m2" }, request: { method: "PUT", url: "Patient/m2" } },
    ] };
    const rows = async () => (await mf.dispatchFetch(`${base}/rows`, { headers: { "x-test-failing": "1", "x-test-rows": "1" } })).json();
    // The first request sets the store up: count once it is.
    await mf.dispatchFetch(`${base}/metadata`, { headers: { "x-test-failing": "1" } });
    const before = await rows();
    const broken = await mf.dispatchFetch(base, { method: "POST", headers: { ...JSON_HEADERS, "x-test-failing": "1" }, body: JSON.stringify(marked) });
    assert.equal(broken.status, 500);
    assert.equal(await rows(), before, "rows of the failed request stayed in the storage");
    const after = await mf.dispatchFetch(`${base}/Patient?_summary=count`, { headers: { "x-test-failing": "1" } });
    assert.equal((await after.json()).total, 0);
    assert.equal((await mf.dispatchFetch(`${base}/Patient/m2`, { headers: { "x-test-failing": "1" } })).status, 404);
    // The same object goes on answering.
    const fine = await mf.dispatchFetch(`${base}/Patient/ok`, { method: "PUT", headers: { ...JSON_HEADERS, "x-test-failing": "1" }, body: JSON.stringify({ resourceType: "Patient", id: "ok" }) });
    assert.equal(fine.status, 201);
  } finally {
    await mf.dispose();
  }
});

test("with an issuer: a token for patient A gets nothing of patient B", async () => {
  const key = await makeKey("RS256", "edge");
  const issuer = await startIssuer([key]);
  const mf = start({ HEARTH_ISSUER: issuer.issuer });
  try {
    const base = "http://localhost/fhir/secure";
    const token = (extra) => sign(key, { iss: issuer.issuer, aud: base, sub: "t", client_id: "edge-tests", exp: Math.floor(Date.now() / 1000) + 300, ...extra });
    const system = await token({ scope: "system/*.*" });
    for (const who of ["a", "b"]) {
      for (const resource of [
        { resourceType: "Patient", id: `p-${who}` },
        { resourceType: "Observation", id: `o-${who}`, status: "final", code: { text: "x" }, subject: { reference: `Patient/p-${who}` } },
      ]) {
        const response = await mf.dispatchFetch(`${base}/${resource.resourceType}/${resource.id}`, { method: "PUT", headers: { ...JSON_HEADERS, authorization: `Bearer ${system}` }, body: JSON.stringify(resource) });
        assert.equal(response.status, 201, await response.text());
      }
    }
    const patientA = await token({ scope: "patient/*.rs", patient: "p-a" });
    const get = (path) => mf.dispatchFetch(`${base}/${path}`, { headers: { authorization: `Bearer ${patientA}` } });
    assert.equal((await mf.dispatchFetch(`${base}/Patient`)).status, 401);
    assert.equal((await get("Patient/p-b")).status, 404);
    assert.equal((await get("Observation/o-b")).status, 404);
    const observations = await (await get("Observation")).json();
    assert.deepEqual(observations.entry.map((entry) => entry.resource.id), ["o-a"]);
    assert.equal((await get("Patient/p-b/$everything")).status, 404);
    const trail = await (await mf.dispatchFetch(`${base}/AuditEvent?_summary=count`, { headers: { authorization: `Bearer ${system}` } })).json();
    // 4 writes, the refusal without a token and the 4 reads: one record each.
    assert.equal(trail.total, 9);
  } finally {
    await mf.dispose();
    await issuer.close();
  }
});

test("without an issuer nothing is answered unless HEARTH_NO_AUTH says so; tenants and audiences are held apart", async () => {
  const closed = start({});
  try {
    const refused = await closed.dispatchFetch("http://localhost/fhir/any/Patient");
    assert.equal(refused.status, 503);
    assert.match((await refused.json()).issue[0].diagnostics, /HEARTH_NO_AUTH/);
  } finally {
    await closed.dispose();
  }
  const listed = start({ HEARTH_NO_AUTH: "true", HEARTH_TENANTS: "clinic-a, clinic-b" });
  try {
    assert.equal((await listed.dispatchFetch("http://localhost/fhir/clinic-a/Patient")).status, 200);
    assert.equal((await listed.dispatchFetch("http://localhost/fhir/junk-1/Patient")).status, 404);
  } finally {
    await listed.dispose();
  }
  const shared = start({ HEARTH_ISSUER: "http://127.0.0.1:9/", HEARTH_AUDIENCE: "https://api.example.org/fhir" });
  try {
    const response = await shared.dispatchFetch("http://localhost/fhir/clinic-a/Patient");
    assert.equal(response.status, 500);
    assert.match((await response.json()).issue[0].diagnostics, /\{tenant\}/);
  } finally {
    await shared.dispose();
  }
});

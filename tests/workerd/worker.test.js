// hearth-fhir inside workerd (through Miniflare): the worker is bundled the way wrangler does
// it (esbuild with the workerd export condition, the .wasm kept as a precompiled module).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync } from "node:fs";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { MALFORMED, issuePosition } from "../lib/malformed.js";
import { artifactPath } from "../lib/paths.js";
import { serve, stop } from "../lib/serve.js";

let mf;

before(async () => {
  const outdir = mkdtempSync(artifactPath("workerd-"));
  await build({
    entryPoints: [new URL("./worker.js", import.meta.url).pathname],
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    loader: { ".wasm": "copy" },
    outdir,
    logLevel: "error",
  });
  assert.ok(readdirSync(outdir).some((name) => name.endsWith(".wasm")), "the bundle keeps the .wasm module");
  mf = new Miniflare({
    modules: true,
    scriptPath: `${outdir}/worker.js`,
    compatibilityDate: "2026-04-01",
    cf: false,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
  });
  await mf.ready;
});

after(async () => {
  await mf?.dispose();
});

test("the worker answers with the engine's reading of a resource", async () => {
  const res = await mf.dispatchFetch("http://localhost/", {
    method: "POST",
    body: '{"resourceType":"Patient","id":"edge-1"}',
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { resourceType: "Patient", id: "edge-1" });
});

test("the FHIR REST service runs in workerd", async () => {
  const body = JSON.stringify({ resourceType: "Patient", name: [{ family: "Edge" }] });
  // A string body goes as text/plain, which a page of any origin may send: refused.
  const plain = await mf.dispatchFetch("http://localhost/fhir/Patient", { method: "POST", body });
  assert.equal(plain.status, 415, await plain.clone().text());
  const created = await mf.dispatchFetch("http://localhost/fhir/Patient", {
    method: "POST",
    headers: { "Content-Type": "application/fhir+json" },
    body,
  });
  assert.equal(created.status, 201);
  const location = created.headers.get("location");
  assert.match(location, /^http:\/\/localhost\/fhir\/Patient\/[0-9a-f-]{36}\/_history\/1$/);
  const read = await mf.dispatchFetch(location.replace(/\/_history\/1$/, ""));
  assert.equal(read.status, 200);
  assert.equal((await read.json()).name[0].family, "Edge");
  const invalid = await mf.dispatchFetch("http://localhost/fhir/Patient", {
    method: "POST",
    headers: { "Content-Type": "application/fhir+json" },
    body: '{"resourceType":"Patient","gender":"x"}',
  });
  assert.equal(invalid.status, 422);
});

test("FhirStore answers through its fetch in workerd", async () => {
  const created = await mf.dispatchFetch("http://localhost/store/Patient", {
    method: "POST",
    headers: { "Content-Type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Edge" }] }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  assert.match(created.headers.get("location"), /^http:\/\/localhost\/store\/Patient\/[0-9a-f-]{36}\/_history\/1$/);
  const found = await mf.dispatchFetch("http://localhost/store/Patient?family=edge");
  assert.equal((await found.json()).total, 1);
  const invalid = await mf.dispatchFetch("http://localhost/store/Patient", { method: "POST", headers: { "Content-Type": "application/fhir+json" }, body: '{"resourceType":"Patient","gender":"x"}' });
  assert.equal(invalid.status, 422);
});

test("the engine in workerd reports its version", async () => {
  const res = await mf.dispatchFetch("http://localhost/");
  assert.match((await res.json()).engine, /^\d+\.\d+\.\d+$/);
});

for (const { name, input, diagnostics, line, column } of MALFORMED) {
  test(`malformed input (${name}) becomes a 400 OperationOutcome in workerd`, async () => {
    const res = await mf.dispatchFetch("http://localhost/", { method: "POST", body: input });
    assert.equal(res.status, 400);
    const outcome = await res.json();
    assert.equal(outcome.resourceType, "OperationOutcome");
    assert.equal(outcome.issue[0].diagnostics, diagnostics);
    assert.deepEqual(issuePosition(outcome.issue[0]), { line, column });
  });
}

test("a FhirStore in workerd syncs with hearth serve on 127.0.0.1", async () => {
  const { child, base } = await serve(undefined);
  try {
    const headers = { "content-type": "application/fhir+json" };
    const seeded = await fetch(`${base}/Patient/edge-remote`, { method: "PUT", headers, body: JSON.stringify({ resourceType: "Patient", id: "edge-remote", name: [{ family: "Remote" }] }) });
    assert.equal(seeded.status, 201);
    const first = await (await mf.dispatchFetch(`http://localhost/sync?remote=${encodeURIComponent(base)}`)).json();
    assert.equal(first.complete, true, JSON.stringify(first.issues));
    assert.equal(first.pulled, 1);
    const local = await mf.dispatchFetch("http://localhost/store/Patient/edge-remote");
    assert.equal((await local.json()).name[0].family, "Remote");
    const created = await mf.dispatchFetch("http://localhost/store/Patient", { method: "POST", headers, body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Edge" }] }) });
    const { id } = await created.json();
    const second = await (await mf.dispatchFetch(`http://localhost/sync?remote=${encodeURIComponent(base)}`)).json();
    assert.equal(second.pushed, 1, JSON.stringify(second));
    const onServer = await fetch(`${base}/Patient/${id}`);
    assert.equal((await onServer.json()).name[0].family, "Edge");
  } finally {
    await stop(child);
  }
});

// FhirStore with `auth`: `store.fetch` answers only with a valid access token and within its
// scopes, a trusted caller may give claims directly, and every request is recorded. The
// issuer is a small JWKS server on 127.0.0.1.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FhirStore } from "hearth-fhir";
import { makeKey, sign, startIssuer } from "../lib/jwt-issuer.js";

test("store.fetch with auth: tokens checked, scopes enforced, requests recorded", async () => {
  const key = await makeKey("ES256", "store-key");
  const issuer = await startIssuer([key]);
  const base = "https://hearth.local/fhir";
  const store = await FhirStore.open({ memory: true, baseUrl: base, auth: { issuer: issuer.issuer } });
  try {
    for (const who of ["a", "b"]) {
      await store.update({ resourceType: "Patient", id: `p-${who}`, name: [{ family: who }] });
      await store.update({ resourceType: "Observation", id: `o-${who}`, status: "final", code: { text: "x" }, subject: { reference: `Patient/p-${who}` } });
    }
    const token = await sign(key, { iss: issuer.issuer, aud: base, sub: "alice", client_id: "app", scope: "patient/*.rs", patient: "p-a", exp: Math.floor(Date.now() / 1000) + 300 });
    const withToken = (path) => store.fetch(path, { headers: { authorization: `Bearer ${token}` } });

    const none = await store.fetch("Observation");
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate"), /^Bearer realm="https:\/\/hearth.local\/fhir"$/);
    const forged = await store.fetch("Observation", { headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` } });
    assert.equal(forged.status, 401);

    const bundle = await (await withToken("Observation")).json();
    assert.deepEqual(bundle.entry.map((entry) => entry.resource.id), ["o-a"]);
    assert.equal((await withToken("Observation/o-b")).status, 404);
    assert.equal((await withToken("Patient/p-a")).status, 200);
    // Read-only scopes: no writes.
    const write = await store.fetch("Observation", { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/fhir+json" }, body: JSON.stringify({ resourceType: "Observation", status: "final", code: { text: "y" }, subject: { reference: "Patient/p-a" } }) });
    assert.equal(write.status, 403);
    assert.match(write.headers.get("www-authenticate"), /insufficient_scope/);
    // A trusted caller in the same process gives claims directly.
    const direct = await store.fetch("Observation", { claims: { scope: "patient/Observation.rs", patient: "p-b" } });
    assert.deepEqual((await direct.json()).entry.map((entry) => entry.resource.id), ["o-b"]);
    // The metadata and the SMART configuration are public.
    assert.equal((await store.fetch("metadata")).status, 200);
    const smart = await store.fetch(".well-known/smart-configuration");
    assert.equal(smart.status, 200);
    assert.equal((await smart.json()).token_endpoint, `${issuer.issuer}/token`);
    // Every one of the requests above (but the public ones) is in the audit trail; the
    // store's own methods are the trusted caller's and read it.
    const trail = await store.search("AuditEvent", { _count: "100" });
    const outcomes = trail.entry.map((entry) => entry.resource.outcome).sort();
    // 401 without a token, 401 forged, the search, 404, the read, 403 the write, the direct search.
    assert.deepEqual(outcomes, ["0", "0", "0", "4", "4", "4", "4"], JSON.stringify(outcomes));
  } finally {
    await store.close();
    await issuer.close();
  }
});

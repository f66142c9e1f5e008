// `hearth serve --issuer`: every JWT attack refused with 401 and a Bearer challenge, scopes
// short of a request refused with 403, key rotation followed, refusals recorded as
// AuditEvents. The issuer is a small JWKS server on 127.0.0.1 whose keys the test controls.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { serve, stop } from "../lib/serve.js";
import { base64Url, makeKey, sign, startIssuer } from "../lib/jwt-issuer.js";
import { NPM_DIR } from "../lib/paths.js";

let issuer;
let server;
let base;
let rsa;
let ec;

before(async () => {
  rsa = await makeKey("RS256", "rsa-1");
  ec = await makeKey("ES256", "ec-1");
  issuer = await startIssuer([rsa.publicJwk, ec.publicJwk].map((publicJwk) => ({ publicJwk })));
  ({ child: server, base } = await serve(undefined, ["--issuer", issuer.issuer]));
});

after(async () => {
  await stop(server);
  await issuer.close();
});

const now = () => Math.floor(Date.now() / 1000);

function claims(extra = {}) {
  return { iss: issuer.issuer, aud: base, sub: "tester", client_id: "token-tests", scope: "system/*.*", iat: now(), exp: now() + 300, ...extra };
}

async function get(path, token, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${base}/${path}`, { ...init, headers });
  const text = await response.text();
  return { status: response.status, challenge: response.headers.get("www-authenticate"), body: text ? JSON.parse(text) : undefined };
}

function assertRefused(answer, what, error = "invalid_token") {
  assert.equal(answer.status, 401, `${what}: ${JSON.stringify(answer.body)}`);
  assert.match(answer.challenge ?? "", /^Bearer realm="/, what);
  assert.ok(answer.challenge.includes(`error="${error}"`), `${what}: ${answer.challenge}`);
  assert.equal(answer.body.resourceType, "OperationOutcome", what);
  assert.ok(["login", "security"].includes(answer.body.issue[0].code), `${what}: ${answer.body.issue[0].code}`);
}

test("a valid RS256 or ES256 token is accepted; none is refused without an error code", async () => {
  assert.equal((await get("Patient", await sign(rsa, claims()))).status, 200);
  assert.equal((await get("Patient", await sign(ec, claims()))).status, 200);
  const missing = await get("Patient");
  assert.equal(missing.status, 401);
  assert.equal(missing.challenge, `Bearer realm="${base}"`);
  const notBearer = await get("Patient", undefined, { headers: { authorization: "Basic dXNlcjpwYXNz" } });
  assertRefused(notBearer, "Basic credentials", "invalid_request");
});

test("every JWT attack is refused", async (t) => {
  const valid = await sign(rsa, claims());
  const [head, body] = valid.split(".");
  const json = (value) => base64Url(new TextEncoder().encode(JSON.stringify(value)));
  // HS256 with the issuer's public key as the HMAC secret (the classic confusion attack).
  const secret = await crypto.subtle.importKey("raw", new TextEncoder().encode(JSON.stringify(rsa.publicJwk)), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const hsHead = json({ alg: "HS256", typ: "JWT", kid: "rsa-1" });
  const hsSignature = base64Url(new Uint8Array(await crypto.subtle.sign("HMAC", secret, new TextEncoder().encode(`${hsHead}.${body}`))));
  const stranger = await makeKey("RS256", "rsa-1");
  const attacks = {
    "alg none": `${json({ alg: "none", typ: "JWT" })}.${body}.`,
    "alg none with the kid": `${json({ alg: "none", kid: "rsa-1" })}.${body}.`,
    "HS256 keyed with the public key": `${hsHead}.${body}.${hsSignature}`,
    "unknown kid": await sign({ ...stranger, kid: "nobody" }, claims()),
    "another key under a known kid": await sign(stranger, claims()),
    "a changed payload": `${head}.${json(claims({ scope: "system/*.* user/*.*", sub: "admin" }))}.${valid.split(".")[2]}`,
    "an ES256 signature made to look RS256": `${json({ alg: "RS256", kid: "ec-1" })}.${body}.${(await sign(ec, claims())).split(".")[2]}`,
    "wrong issuer": await sign(rsa, claims({ iss: "http://127.0.0.1:1/evil" })),
    "wrong audience": await sign(rsa, claims({ aud: "http://127.0.0.1:1/fhir" })),
    "expired": await sign(rsa, claims({ exp: now() - 3600 })),
    "no expiry": await sign(rsa, claims({ exp: undefined })),
    "not yet valid": await sign(rsa, claims({ nbf: now() + 3600 })),
    "issued in the future": await sign(rsa, claims({ iat: now() + 3600 })),
    "critical header": await sign(rsa, claims(), { crit: ["b64"], b64: false }),
    "two parts": `${head}.${body}`,
    "not base64url": `${head}.${body}.***`,
    "garbage": "not-a-token",
  };
  for (const [name, token] of Object.entries(attacks)) {
    await t.test(`refused: ${name}`, async () => {
      assertRefused(await get("Patient", token), name);
    });
  }
  await t.test("refused: a token in the query string, even a valid one", async () => {
    const inQuery = await get(`Patient?access_token=${valid}`, valid);
    assertRefused(inQuery, "token in the query string", "invalid_request");
  });
  // Refusals are recorded.
  const audit = await get("AuditEvent?outcome=4&_summary=count", valid);
  assert.equal(audit.status, 200);
  assert.ok(audit.body.total >= Object.keys(attacks).length + 1, `only ${audit.body.total} refusals recorded`);
});

test("scopes short of a request: 403 insufficient_scope; a patient's token reaches its patient only", async () => {
  const system = await sign(rsa, claims());
  for (const who of ["a", "b"]) {
    const put = await fetch(`${base}/Patient/p-${who}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${system}`, "content-type": "application/fhir+json" },
      body: JSON.stringify({ resourceType: "Patient", id: `p-${who}`, name: [{ family: who === "a" ? "Alpha" : "Bravo" }] }),
    });
    assert.ok(put.status === 201 || put.status === 200, `${put.status}`);
  }
  const patient = await sign(rsa, claims({ scope: "launch/patient patient/Patient.rs", patient: "p-a", sub: "alice" }));
  assert.equal((await get("Patient/p-a", patient)).status, 200);
  assert.equal((await get("Patient/p-b", patient)).status, 404);
  const listed = await get("Patient", patient);
  assert.deepEqual(listed.body.entry.map((entry) => entry.resource.id), ["p-a"]);
  const refused = await get("Observation", patient);
  assert.equal(refused.status, 403);
  assert.ok(refused.challenge.includes('error="insufficient_scope"'), refused.challenge);
});

test("keys rotated by the issuer are followed", async () => {
  const rotated = await makeKey("ES256", "ec-2");
  issuer.keys = [{ publicJwk: rotated.publicJwk }];
  const fetches = issuer.jwksFetches;
  assert.equal((await get("Patient", await sign(rotated, claims()))).status, 200);
  assert.equal(issuer.jwksFetches, fetches + 1);
  // The old keys are gone from the set fetched again.
  // (A token verified before the rotation stays valid until it expires, as JWTs do; this
  // one is new.)
  assertRefused(await get("Patient", await sign(rsa, claims({ jti: "after-rotation" }))), "a retired key");
  // Made-up kids do not make the server fetch the keys again and again.
  for (let idx = 0; idx < 5; idx += 1) {
    assertRefused(await get("Patient", await sign({ ...rotated, kid: `made-up-${idx}` }, claims())), "made-up kid");
  }
  assert.ok(issuer.jwksFetches <= fetches + 2, `${issuer.jwksFetches - fetches} fetches`);
  issuer.keys = [rsa, ec].map((key) => ({ publicJwk: key.publicJwk }));
});

test("the CapabilityStatement and SMART configuration are public and name the issuer's endpoints", async () => {
  const metadata = await get("metadata");
  assert.equal(metadata.status, 200);
  const security = metadata.body.rest[0].security;
  assert.equal(security.service[0].coding[0].code, "SMART-on-FHIR");
  const uris = Object.fromEntries(security.extension[0].extension.map((item) => [item.url, item.valueUri]));
  assert.deepEqual(uris, { authorize: `${issuer.issuer}/auth`, token: `${issuer.issuer}/token` });
  const smart = await get(".well-known/smart-configuration");
  assert.equal(smart.status, 200);
  assert.equal(smart.body.authorization_endpoint, `${issuer.issuer}/auth`);
  assert.equal(smart.body.token_endpoint, `${issuer.issuer}/token`);
  assert.ok(smart.body.capabilities.includes("permission-v2"));
});

test("serving beyond 127.0.0.1 without an issuer needs --no-auth", () => {
  const result = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "serve", "--host", "0.0.0.0", "--port", "0"], { encoding: "utf8", timeout: 20000 });
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /--issuer URL .* or --no-auth/);
});

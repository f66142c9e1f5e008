// A SMART standalone launch in Chromium: the `fhirclient` library (the SMART JS client) signs
// in at a real authorization server (oidc-provider on 127.0.0.1) with PKCE, then reads from
// `hearth serve --issuer` with the token it got, and reaches only the launch patient's data.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { launchChromium } from "../lib/chromium.js";
import { serve, stop } from "../lib/serve.js";
import { startStaticServer } from "../lib/static-server.js";
import { startAuthServer } from "../lib/oidc.js";
import { ROOT } from "../lib/paths.js";

const LAUNCH = `<!doctype html><title>launch</title><script src="/fhir-client.js"></script>
<script>
  const iss = new URLSearchParams(location.search).get("iss");
  FHIR.oauth2.authorize({ iss, clientId: "patient-app", scope: "openid fhirUser launch/patient patient/*.rs", redirectUri: "/app.html", pkceMode: "required" });
</script>`;

const APP = `<!doctype html><title>app</title><script src="/fhir-client.js"></script>
<script>
  FHIR.oauth2.ready().then(async (client) => {
    const result = { patient: client.patient.id, scope: client.state.tokenResponse.scope };
    result.own = (await client.patient.read()).id;
    result.observations = (await client.request("Observation", { flat: true })).map((o) => o.id).sort();
    result.patients = (await client.request("Patient", { flat: true })).map((p) => p.id);
    for (const path of ["Patient/p-b", "Observation/obs-b"]) {
      try {
        await client.request(path);
        result[path] = "read";
      } catch (err) {
        result[path] = err.status ?? err.statusCode ?? err.message;
      }
    }
    result.everythingOfB = await client.request("Patient/p-b/$everything").then(() => "read", (err) => err.status ?? err.message);
    document.body.dataset.result = JSON.stringify(result);
  }).catch((err) => { document.body.dataset.error = String(err && err.stack || err); });
</script>`;

test("a SMART standalone launch with fhirclient reads only the launch patient's data", async () => {
  const app = await startStaticServer({
    files: {
      "/launch.html": LAUNCH,
      "/app.html": APP,
      "/fhir-client.js": readFileSync(`${ROOT}node_modules/fhirclient/build/fhir-client.js`, "utf8"),
    },
  });
  let base;
  const auth = await startAuthServer({
    fhirBase: () => base,
    appRedirects: [`${app.origin}/app.html`],
    users: { alice: { patient: "p-a", fhirUser: "Patient/p-a" } },
  });
  const server = await serve(undefined, ["--issuer", auth.issuer, "--allow-origin", app.origin]);
  base = server.base;
  const browser = await launchChromium();
  try {
    const system = await auth.systemToken("system/*.*");
    const put = async (resource) => {
      const response = await fetch(`${base}/${resource.resourceType}/${resource.id}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${system}`, "content-type": "application/fhir+json" },
        body: JSON.stringify(resource),
      });
      assert.ok(response.ok, `${response.status} ${await response.text()}`);
    };
    for (const who of ["a", "b"]) {
      await put({ resourceType: "Patient", id: `p-${who}`, name: [{ family: who === "a" ? "Alpha" : "Bravo" }] });
      await put({ resourceType: "Observation", id: `obs-${who}`, status: "final", code: { text: "weight" }, subject: { reference: `Patient/p-${who}` } });
    }
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (err) => errors.push(err.message));
    await page.goto(`${app.origin}/launch.html?iss=${encodeURIComponent(base)}`);
    // The development login page, then the consent page, then back to the app.
    let result;
    for (let step = 0; step < 40 && result === undefined; step += 1) {
      await page.waitForLoadState("load");
      let state;
      try {
        state = await page.evaluate(() => ({ result: document.body?.dataset.result, error: document.body?.dataset.error, login: !!document.querySelector("input[name=login]"), submit: !!document.querySelector("button[type=submit]") }));
      } catch (err) {
        // The page went on to the next one of the redirects while it was looked at.
        if (!/context was destroyed|navigat/i.test(err.message)) throw err;
        await page.waitForTimeout(100);
        continue;
      }
      if (state.error) assert.fail(`the app failed: ${state.error}`);
      if (state.result) {
        result = JSON.parse(state.result);
      } else if (state.login) {
        await page.fill("input[name=login]", "alice");
        await page.fill("input[name=password]", "any");
        await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
      } else if (state.submit) {
        await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
      } else {
        await page.waitForTimeout(250);
      }
    }
    assert.ok(result, "the app never finished");
    assert.equal(result.patient, "p-a");
    assert.equal(result.own, "p-a");
    assert.deepEqual(result.observations, ["obs-a"]);
    assert.deepEqual(result.patients, ["p-a"]);
    assert.equal(result["Patient/p-b"], 404);
    assert.equal(result["Observation/obs-b"], 404);
    assert.equal(result.everythingOfB, 404);
    assert.deepEqual(errors, []);
    // The reads are in the audit trail, under the user and the app.
    const trail = await (await fetch(`${base}/AuditEvent?patient=Patient/p-a&_count=100`, { headers: { authorization: `Bearer ${system}` } })).json();
    const byAlice = trail.entry.map((entry) => entry.resource).filter((event) => event.agent.some((agent) => agent.who?.reference === "Patient/p-a"));
    assert.ok(byAlice.length >= 3, `${byAlice.length} AuditEvents by the patient`);
    assert.ok(byAlice.every((event) => event.agent.some((agent) => agent.who?.identifier?.value === "patient-app")));
    console.log(`smart launch: fhirclient signed in as the patient p-a, read ${result.observations.length} Observation, refused Patient/p-b, Observation/obs-b and $everything of p-b (404); ${byAlice.length} AuditEvents of its reads`);
  } finally {
    await browser.close();
    await stop(server.child);
    await auth.close();
    app.close();
  }
});

// The HTTP conformance suite against `hearth serve --issuer` with a backend's `system/*.*`
// token from a real authorization server (oidc-provider, client credentials): authorization
// on changes nothing for a client allowed everything, and every request is audited.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve, stop } from "../lib/serve.js";
import { report, runHttpSuite } from "../lib/http-suite.js";
import { startAuthServer } from "../lib/oidc.js";

test("HTTP conformance with authorization on and a system/*.* token", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-http-auth-"));
  let base;
  const auth = await startAuthServer({ fhirBase: () => base });
  const server = await serve(dir, ["--issuer", auth.issuer]);
  base = server.base;
  let result;
  let audited;
  try {
    const token = await auth.systemToken("system/*.*");
    const send = (url, init = {}) => {
      const headers = new Headers(init.headers ?? {});
      headers.set("authorization", `Bearer ${token}`);
      return fetch(url, { ...init, headers });
    };
    // Without the token, nothing is answered.
    assert.equal((await fetch(`${base}/Patient`)).status, 401);
    result = await runHttpSuite(base, send);
    const count = await (await send(`${base}/AuditEvent?_summary=count`)).json();
    audited = count.total;
  } finally {
    await stop(server.child);
    await auth.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const { pass, fail } = report("http conformance with authorization", result);
  console.log(`audit: ${audited} AuditEvents recorded for ${pass + fail} cases`);
  assert.ok(pass + fail >= 300, `only ${pass + fail} cases`);
  assert.deepEqual(result.failures, []);
  assert.ok(audited >= pass + fail, `${audited} AuditEvents for ${pass + fail} cases`);
});

test("the authorization server asks requests made while it starts to come back, instead of leaving them unanswered", async () => {
  const { createServer } = await import("node:net");
  // A port free a moment ago, so that requests can be sent before the server says it listens.
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));
  const starting = startAuthServer({ fhirBase: () => "http://127.0.0.1:9/fhir", port });
  const answers = [];
  while (answers.at(-1) !== 200) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5_000) });
      answers.push(response.status);
      await response.arrayBuffer();
    } catch (err) {
      if (err.name === "TimeoutError") {
        answers.push("no answer");
        break;
      }
      // Not listening yet.
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
  const auth = await starting;
  await auth.close();
  console.log(`authorization server while starting: ${answers.filter((status) => status === 503).length} requests asked to come back (503), then ${answers.at(-1)}`);
  assert.deepEqual([...new Set(answers)].filter((status) => status !== 503), [200]);
});

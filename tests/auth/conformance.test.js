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

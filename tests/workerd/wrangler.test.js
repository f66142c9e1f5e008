// examples/cloudflare as its README says to run it: `npx wrangler dev` in that folder serves
// the FHIR API from a Durable Object on workerd, on this machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../lib/paths.js";

function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

test("wrangler dev (npx wrangler dev) serves examples/cloudflare on 127.0.0.1", async () => {
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), "hearth-wrangler-"));
  // wrangler itself (what `npx wrangler` runs), in a process group of its own, so that it and
  // the workerd it starts are stopped together.
  const child = spawn(`${ROOT}node_modules/.bin/wrangler`, ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state], {
    cwd: `${ROOT}examples/cloudflare`,
    detached: true,
    // No metrics, no fetch of the Request.cf data: nothing leaves this machine.
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`wrangler dev did not start: ${output}`)), 90_000);
      const check = setInterval(() => {
        if (/Ready on http:\/\/127\.0\.0\.1/.test(output)) {
          clearInterval(check);
          clearTimeout(timer);
          resolve();
        }
      }, 100);
      child.once("exit", (code) => {
        clearInterval(check);
        clearTimeout(timer);
        reject(new Error(`wrangler dev exited with ${code}: ${output}`));
      });
    });
    const base = `http://127.0.0.1:${port}/fhir/demo`;
    const metadata = await fetch(`${base}/metadata`);
    assert.equal(metadata.status, 200);
    assert.equal((await metadata.json()).resourceType, "CapabilityStatement");
    const created = await fetch(`${base}/Patient`, { method: "POST", headers: { "content-type": "application/fhir+json" }, body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Wrangler" }] }) });
    assert.equal(created.status, 201);
    const { id } = await created.json();
    const read = await fetch(`${base}/Patient/${id}`);
    assert.equal((await read.json()).name[0].family, "Wrangler");
    assert.equal((await fetch(`http://127.0.0.1:${port}/fhir/other/Patient/${id}`)).status, 404);
    assert.doesNotMatch(output, /ERROR/);
  } finally {
    const exited = new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", resolve)));
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // Already gone.
    }
    await exited;
    child.stdout.destroy();
    child.stderr.destroy();
    rmSync(state, { recursive: true, force: true });
  }
});

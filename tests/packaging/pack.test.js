// `npm pack` makes a tarball that a fresh directory, outside this repository, installs and uses:
// the API from Node and the `hearth` bin.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { NPM_DIR, FIXTURES } from "../lib/paths.js";

let app;
let files;

before(() => {
  const packDir = mkdtempSync(`${tmpdir()}/hearth-pack-`);
  const [packed] = JSON.parse(
    execFileSync("npm", ["pack", "--json", "--pack-destination", packDir], { cwd: NPM_DIR, encoding: "utf8" }),
  );
  files = packed.files.map((file) => file.path).sort();
  app = mkdtempSync(`${tmpdir()}/hearth-app-`);
  writeFileSync(`${app}/package.json`, JSON.stringify({ name: "app", private: true, type: "module" }));
  execFileSync(
    "npm",
    ["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", `${packDir}/${packed.filename}`],
    { cwd: app, encoding: "utf8" },
  );
});

test("the tarball holds the entries, types, bin and wasm module, and nothing else", () => {
  assert.deepEqual(files, [
    "README.md",
    "bin/hearth.js",
    "cloudflare.d.ts",
    "dist/wasm/hearth.js",
    "dist/wasm/hearth_bg.wasm",
    "index.d.ts",
    "package.json",
    "service-worker.d.ts",
    "sqlite.d.ts",
    "src/api.js",
    "src/auth.js",
    "src/cloudflare.js",
    "src/engine.js",
    "src/entry-browser.js",
    "src/entry-node.js",
    "src/entry-workerd.js",
    "src/error.js",
    "src/generated/r4.d.ts",
    "src/plain.js",
    "src/serve-worker.js",
    "src/service-worker.js",
    "src/sqlite-store.js",
    "src/store.js",
  ]);
});

test("a fresh project imports the installed package and uses it right away", () => {
  const script = `
    import { inspect, FhirError } from "hearth-fhir";
    const ok = inspect('{"resourceType":"Patient","id":"installed"}');
    let status;
    try { inspect("[1,"); } catch (err) { status = err instanceof FhirError ? err.status : "wrong error"; }
    console.log(JSON.stringify({ ok, status }));
  `;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: app, encoding: "utf8" });
  assert.deepEqual(JSON.parse(out), { ok: { resourceType: "Patient", id: "installed" }, status: 400 });
});

test("the installed hearth bin runs", () => {
  copyFileSync(`${FIXTURES}/patient.json`, `${app}/patient.json`);
  const run = spawnSync(`${app}/node_modules/.bin/hearth`, ["inspect", "patient.json"], { cwd: app, encoding: "utf8" });
  assert.equal(run.stdout, "patient.json: Patient/example\n");
  assert.equal(run.status, 0);
});

// HTTP conformance of `hearth serve` (SQLite store) on 127.0.0.1: the cases of
// tests/lib/http-suite.js over real HTTP. Prints pass/fail/skip counts by group.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactPath } from "../lib/paths.js";
import { serve } from "../lib/serve.js";
import { report, runHttpSuite } from "../lib/http-suite.js";

test("HTTP conformance of hearth serve", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-http-"));
  const { child, base } = await serve(dir);
  let result;
  try {
    result = await runHttpSuite(base, fetch);
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
  const { pass, fail } = report("http conformance", result);
  writeFileSync(artifactPath("http-conformance-failures.txt"), result.failures.join("\n") + "\n");
  assert.ok(pass + fail >= 300, `only ${pass + fail} cases`);
  assert.deepEqual(result.failures, []);
});

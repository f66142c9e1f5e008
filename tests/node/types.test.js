// The package's TypeScript types: a consumer that uses them right compiles, one that misuses
// them does not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { ROOT, artifactPath } from "../lib/paths.js";

function typecheck(source) {
  // Inside the repository, so that "hearth-fhir" resolves through node_modules as for a user.
  const dir = mkdtempSync(artifactPath("types-"));
  writeFileSync(`${dir}/consumer.ts`, source);
  const run = spawnSync(
    `${ROOT}node_modules/.bin/tsc`,
    ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
     `${dir}/consumer.ts`],
    { encoding: "utf8", cwd: ROOT },
  );
  return { code: run.status, output: run.stdout + run.stderr };
}

test("a correct consumer type-checks against hearth-fhir", () => {
  const { code, output } = typecheck(`
    import { inspect, version, FhirError, type ResourceSummary, type OperationOutcome } from "hearth-fhir";
    const summary: ResourceSummary = inspect({ resourceType: "Patient", id: "a" });
    const type: string = summary.resourceType;
    const id: string | undefined = summary.id;
    const v: string = version();
    try { inspect("[]"); } catch (err) {
      if (err instanceof FhirError) {
        const outcome: OperationOutcome = err.outcome;
        const status: number = err.status;
        const diagnostics: string | undefined = outcome.issue[0]?.diagnostics;
        console.log(type, id, v, status, diagnostics);
      }
    }
  `);
  assert.equal(output, "");
  assert.equal(code, 0);
});

test("misuse of the API is a type error", () => {
  const { code, output } = typecheck(`
    import { inspect } from "hearth-fhir";
    const n: number = inspect(42).resourceType;
  `);
  assert.notEqual(code, 0);
  assert.match(output, /TS2345/); // 42 is not a FhirInput
  assert.match(output, /TS2322/); // resourceType is a string
});

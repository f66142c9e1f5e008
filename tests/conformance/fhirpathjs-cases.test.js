// fhirpath.js's YAML test cases (../shared/corpus/fhirpath/fhirpathjs-cases), run against
// hearth-fhir: prints passed / failed / skipped with the reasons for skips.
//
// Hearth is an R4 engine over typed FHIR resources, so cases for other FHIR versions and cases
// whose input is plain JSON rather than a FHIR resource are skipped (and counted). Cases
// fhirpath.js itself disables are skipped too. Failures are listed in
// tests/artifacts/fhirpathjs-failures.txt; the test asserts the pass count does not fall below
// the recorded one, so a regression fails it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import yaml from "js-yaml";
import { compile, parseResource, FhirError } from "hearth-fhir";
import { ROOT, artifactPath } from "../lib/paths.js";

const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const dir = `${corpus}/fhirpath/fhirpathjs-cases`;
/** Passed cases at the last recorded run; the README quotes the current figures. */
const MIN_PASSED = 979;

function* walk(entries, group) {
  for (const entry of entries ?? []) {
    const groupName = Object.keys(entry).find((key) => key.startsWith("group:"));
    if (groupName) {
      yield* walk(entry[groupName], `${group} / ${groupName.slice(7)}`);
    } else if (entry.expression !== undefined) {
      yield { ...entry, group };
    }
  }
}

/** Normalises a value for comparison: numbers and numeric strings alike, dates without '@'. */
function normalize(value) {
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, normalize(item)]));
  }
  if (typeof value === "string" && value.startsWith("@")) return value.slice(1).replace(/^T/, "");
  // fhirpath.js writes quantities as text ("5 'mg'", "2 years"); Hearth as { value, unit }.
  const quantity = typeof value === "string" && /^(-?\d+(?:\.\d+)?) (?:'([^']+)'|([a-z]+))$/.exec(value);
  if (quantity) return { value: Number(quantity[1]), unit: quantity[2] ?? quantity[3] };
  return value;
}

function sameResult(got, want) {
  return JSON.stringify(normalize(got)) === JSON.stringify(normalize(want));
}

test("fhirpath.js YAML cases", () => {
  const files = readdirSync(dir).filter((name) => name.endsWith(".yaml")).sort();
  const counts = { passed: 0, failed: 0, skipped: 0 };
  const skips = new Map();
  const failures = [];
  const inputs = new Map();
  const skip = (reason) => {
    counts.skipped += 1;
    skips.set(reason, (skips.get(reason) ?? 0) + 1);
  };
  for (const file of files) {
    const doc = yaml.load(readFileSync(`${dir}/${file}`, "utf8"));
    const fileSubject = doc.subject;
    for (const testCase of walk(doc.tests, file)) {
      const model = testCase.model ?? "r4";
      const expressions = Array.isArray(testCase.expression) ? testCase.expression : [testCase.expression];
      for (const expression of expressions) {
        if (testCase.disable) {
          skip("disabled in fhirpath.js itself");
          continue;
        }
        if (model !== "r4") {
          skip(`model ${model}: Hearth is an R4 engine`);
          continue;
        }
        let resource;
        if (testCase.inputfile) {
          const path = `${dir}/resources/r4/${testCase.inputfile}`;
          if (!existsSync(path)) {
            skip("input file missing from the corpus");
            continue;
          }
          if (!inputs.has(path)) inputs.set(path, readFileSync(path, "utf8"));
          resource = inputs.get(path);
        } else {
          const subject = testCase.subject ?? fileSubject;
          if (subject === undefined) {
            resource = undefined;
          } else if (subject?.resourceType) {
            resource = subject;
          } else {
            skip("input is plain JSON, not a FHIR resource (Hearth evaluates typed R4 resources)");
            continue;
          }
        }
        if (/%factory\b/.test(expression)) {
          skip("uses %factory, an extension of fhirpath.js, not of FHIRPath");
          continue;
        }
        if (testCase.context !== undefined) {
          skip("evaluates from a context path inside the resource (no such option)");
          continue;
        }
        if (resource !== undefined) {
          try {
            resource = parseResource(resource);
          } catch (err) {
            if (!(err instanceof FhirError)) throw err;
            skip("input is not a valid FHIR R4 resource (Hearth refuses it when reading)");
            continue;
          }
        }
        const label = `${file} ${testCase.desc ?? ""}: ${expression}`;
        let got;
        try {
          const compiled = compile(expression);
          got = resource === undefined
            ? compiled.evaluate({ resourceType: "Basic", code: { text: "no input" } }, { variables: testCase.variables })
            : compiled.evaluate(resource, { variables: testCase.variables });
        } catch (err) {
          if (!(err instanceof FhirError)) throw err;
          if (testCase.error) counts.passed += 1;
          else {
            counts.failed += 1;
            failures.push(`${label}\n    error: ${err.message}`);
          }
          continue;
        }
        if (testCase.error) {
          counts.failed += 1;
          failures.push(`${label}\n    expected an error, got ${JSON.stringify(got)}`);
        } else if (sameResult(got, testCase.result ?? [])) {
          counts.passed += 1;
        } else {
          counts.failed += 1;
          failures.push(`${label}\n    expected ${JSON.stringify(testCase.result)}, got ${JSON.stringify(got)}`);
        }
      }
    }
  }
  writeFileSync(artifactPath("fhirpathjs-failures.txt"), failures.join("\n") + "\n");
  console.log(`fhirpath.js cases: ${counts.passed + counts.failed + counts.skipped} cases, ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  for (const [reason, count] of skips) console.log(`  skipped ${count}: ${reason}`);
  console.log("  failures listed in tests/artifacts/fhirpathjs-failures.txt");
  assert.ok(counts.passed >= MIN_PASSED, `${counts.passed} passed, fewer than the recorded ${MIN_PASSED}`);
});

// The public API of hearth-fhir in Node, imported by package name as a user would.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { inspect, format, version, FhirError } from "hearth-fhir";
import { MALFORMED, issuePosition } from "../lib/malformed.js";
import { FIXTURES } from "../lib/paths.js";

test("inspect reads resourceType and id from text, bytes and objects", async () => {
  const text = await readFile(`${FIXTURES}/patient.json`, "utf8");
  const expected = { resourceType: "Patient", id: "example" };
  assert.deepEqual(inspect(text), expected);
  assert.deepEqual(inspect(new TextEncoder().encode(text)), expected);
  assert.deepEqual(inspect(new TextEncoder().encode(text).buffer), expected);
  assert.deepEqual(inspect(JSON.parse(text)), expected);
});

test("inspect leaves id out when the resource has none", () => {
  assert.deepEqual(inspect({ resourceType: "Observation", status: "final" }), { resourceType: "Observation" });
});

for (const { name, input, diagnostics, line, column } of MALFORMED) {
  test(`malformed input (${name}) throws a FhirError with an OperationOutcome and position`, () => {
    assert.throws(
      () => inspect(input),
      (err) => {
        assert.ok(err instanceof FhirError, `expected FhirError, got ${err?.constructor?.name}`);
        assert.ok(err instanceof Error);
        assert.equal(err.name, "FhirError");
        assert.equal(err.status, 400);
        assert.equal(err.message, diagnostics);
        assert.equal(err.outcome.resourceType, "OperationOutcome");
        const [issue] = err.outcome.issue;
        assert.equal(issue.severity, "error");
        assert.equal(issue.code, "structure");
        assert.equal(issue.diagnostics, diagnostics);
        assert.deepEqual(issuePosition(issue), { line, column });
        return true;
      },
    );
  });
}

test("the engine keeps working after many failures", () => {
  for (let round = 0; round < 1000; round += 1) {
    assert.throws(() => inspect(MALFORMED[round % MALFORMED.length].input), FhirError);
  }
  assert.deepEqual(inspect('{"resourceType":"Patient","id":"after"}'), { resourceType: "Patient", id: "after" });
});

test("inputs of the wrong JS type are FhirErrors, not TypeErrors", () => {
  for (const [input, found] of [
    [42, "a number"],
    [null, "null"],
    [undefined, "undefined"],
    [true, "a boolean"],
  ]) {
    assert.throws(
      () => inspect(input),
      (err) => err instanceof FhirError && err.status === 400 && err.message.endsWith(`found ${found}`),
    );
  }
  const cyclic = { resourceType: "Patient" };
  cyclic.self = cyclic;
  assert.throws(() => inspect(cyclic), (err) => err instanceof FhirError && err.status === 400);
});

test("version names the package version", async () => {
  const pkg = JSON.parse(await readFile(new URL("../../npm/package.json", import.meta.url), "utf8"));
  assert.equal(version(), pkg.version);
});

test("format writes canonical FHIR JSON, pretty or compact, numbers as written", () => {
  const input = '{"valueQuantity":{"unit":"mg","value":1.50},"status":"final","resourceType":"Observation","code":{"text":"dose"}}';
  assert.equal(
    format(input, { pretty: false }),
    '{"resourceType":"Observation","status":"final","code":{"text":"dose"},"valueQuantity":{"value":1.50,"unit":"mg"}}',
  );
  assert.equal(format({ resourceType: "Patient", id: "a" }), '{\n  "resourceType": "Patient",\n  "id": "a"\n}');
});

test("every violation in a resource is an issue with its element path", () => {
  assert.throws(
    () => inspect('{"resourceType":"Patient","foo":1,"active":"yes"}'),
    (err) => {
      assert.ok(err instanceof FhirError);
      assert.equal(err.message, 'unknown element "foo" (and 1 more issues)');
      assert.deepEqual(
        err.outcome.issue.map((issue) => [issue.diagnostics, issue.expression, issuePosition(issue)]),
        [
          ['unknown element "foo"', ["Patient.foo"], { line: 1, column: 27 }],
          ['expected "active" (boolean) to be true or false, found a string "yes"', ["Patient.active"], { line: 1, column: 44 }],
        ],
      );
      return true;
    },
  );
});

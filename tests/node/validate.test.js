// Validation through the package and the CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { validate, FhirProfiles, FhirError } from "hearth-fhir";
import { readFileSync } from "node:fs";
import { NPM_DIR, FIXTURES } from "../lib/paths.js";

const summary = (outcome) => outcome.issue.map((issue) => [issue.severity, issue.code, issue.diagnostics, issue.expression?.[0]]);

test("a valid resource gives one information issue", () => {
  const outcome = validate({
    resourceType: "Patient",
    text: { status: "generated", div: '<div xmlns="http://www.w3.org/1999/xhtml">Peter Chalmers</div>' },
    name: [{ family: "Chalmers" }],
  });
  assert.deepEqual(summary(outcome), [["information", "informational", "no issues found", undefined]]);
});

test("invariants, cardinality, formats and required bindings are checked", () => {
  const outcome = validate({
    resourceType: "Observation",
    text: { status: "generated", div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' },
    status: "finalised",
    code: { text: "weight" },
    effectiveDateTime: "2020-13-01",
    referenceRange: [{ text: "normal" }],
    component: [{ code: { text: "a" } }],
  });
  assert.deepEqual(summary(outcome), [
    ["error", "code-invalid", "the value is not in the required value set http://hl7.org/fhir/ValueSet/observation-status", "Observation.status"],
    ["error", "value", 'expected a valid dateTime value, found "2020-13-01"', "Observation.effective"],
  ]);
  const contact = validate({ resourceType: "Patient", contact: [{ gender: "male" }] });
  assert.ok(summary(contact).some(([severity, , diagnostics, where]) => severity === "error" && diagnostics.startsWith("pat-1:") && where === "Patient.contact[0]"));
  const missing = validate({ resourceType: "Observation", code: { text: "x" } });
  assert.ok(summary(missing).some(([severity, code, diagnostics]) => severity === "error" && code === "required" && diagnostics.includes('"status"')));
});

test("security checks refuse HTML in strings, and in markdown when asked", () => {
  const text = { status: "generated", div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' };
  const patient = { resourceType: "Patient", text, name: [{ text: "Ann <script>alert(1)</script>" }] };
  assert.deepEqual(summary(validate(patient)), [["information", "informational", "no issues found", undefined]]);
  assert.deepEqual(summary(validate(patient, { securityChecks: true })), [
    ["error", "invalid", 'the string embeds what looks like an HTML tag ("<script>alert(1)</sc"), which is not allowed here', "Patient.name[0].text"],
  ]);
  const note = { resourceType: "Communication", text, status: "completed", note: [{ text: "see <b>this</b>" }] };
  assert.equal(summary(validate(note)).length, 1);
  assert.equal(summary(validate(note, { noHtmlInMarkdown: true }))[0][3], "Communication.note[0].text");
  // "a < b > c" is not a tag.
  assert.equal(summary(validate({ ...patient, name: [{ text: "a < b > c" }] }, { securityChecks: true }))[0][0], "information");
});

test("allowComments reads JSON with comments; skipContained leaves contained resources unchecked", () => {
  const text = '// a patient\n{"resourceType":"Patient", /* bad date */ "birthDate":"2020-13-01"}';
  const errors = (outcome) => summary(outcome).filter(([severity]) => severity === "error");
  assert.match(errors(validate(text))[0][2], /expected a JSON value/);
  assert.deepEqual(errors(validate(text, { allowComments: true })).map(([, , diagnostics]) => diagnostics), [
    'expected a valid date value, found "2020-13-01"',
  ]);
  const condition = {
    resourceType: "Condition",
    subject: { reference: "Patient/1" },
    contained: [{ resourceType: "Practitioner", id: "1".repeat(65) }],
  };
  assert.equal(errors(validate(condition)).length, 2);
  assert.deepEqual(errors(validate(condition, { skipContained: true })), []);
  assert.deepEqual(errors(validate(condition, { skipContained: true, profiles: new FhirProfiles() })), []);
});

test("content that cannot be read is reported in the outcome, not thrown, and the rest validated", () => {
  const outcome = validate('{"resourceType":"Patient","foo":1}');
  assert.deepEqual(summary(outcome)[0], ["error", "structure", 'unknown element "foo"', "Patient.foo"]);
  // The rest of the resource is validated too: it has no narrative.
  assert.ok(summary(outcome).some(([severity, , diagnostics]) => severity === "warning" && diagnostics.startsWith("dom-6")), JSON.stringify(outcome));
  assert.equal(summary(outcome).length, 2);
});

test("hearth validate prints issues and exits 1 when a file has errors", () => {
  const run = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "validate", `${FIXTURES}/patient.json`, `${FIXTURES}/patient-bad-elements.json`], { encoding: "utf8" });
  assert.match(run.stdout, /patient\.json:1:1: warning: dom-6: A resource should have narrative for robust management \(Patient\)/);
  assert.match(run.stdout, /patient-bad-elements\.json:3:3: error: unknown element "nickname" \(Patient\.nickname\)/);
  assert.equal(run.status, 1);
});

test("profiles: loaded with FhirProfiles, checked when claimed or asked for", () => {
  const definition = readFileSync(`${FIXTURES}/ig/female-patient.json`, "utf8");
  const url = JSON.parse(definition).url;
  const profiles = new FhirProfiles([definition]);
  assert.deepEqual(profiles.urls, [url]);
  const text = { status: "generated", div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' };
  const male = { resourceType: "Patient", text, gender: "male" };
  // Not claimed, not asked for: the base specification only.
  assert.equal(validate(male, { profiles }).issue[0].severity, "information");
  const errors = (outcome) => outcome.issue.filter((issue) => issue.severity === "error").map((issue) => [issue.diagnostics, issue.expression[0]]);
  const expected = [
    [`expected the fixed value female (${url}), found male`, "Patient.gender"],
    [`expected at least 1 values for "name" (${url}), found 0`, "Patient"],
  ];
  assert.deepEqual(errors(validate(male, { profiles, profile: url })), expected);
  assert.deepEqual(errors(validate({ ...male, meta: { profile: [url] } }, { profiles })), expected);
  // A profile asked for that is not loaded is an error, not a silent pass.
  assert.match(errors(validate(male, { profile: "http://example.org/none" }))[0][0], /is not loaded/);
  assert.throws(() => validate(male, { profiles: [definition] }), (err) => err instanceof FhirError && /FhirProfiles/.test(err.message));
  assert.throws(() => profiles.add('{"resourceType":"StructureDefinition","bogus":1}'), FhirError);
});

test("hearth validate --ig DIR --profile URL checks files and folders against the profile", () => {
  const url = JSON.parse(readFileSync(`${FIXTURES}/ig/female-patient.json`, "utf8")).url;
  const run = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "validate", "--ig", `${FIXTURES}/ig`, "--profile", url, `${FIXTURES}/patient.json`], { encoding: "utf8" });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stdout, /patient\.json:1:1: error: expected at least 1 values for "gender"/);
  const usage = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "validate", "--profile"], { encoding: "utf8" });
  assert.equal(usage.status, 2);
  const folder = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "validate", `${FIXTURES}/ig`], { encoding: "utf8" });
  assert.equal(folder.status, 0, folder.stdout + folder.stderr);
  assert.match(folder.stdout, /female-patient\.json: valid/);
});

test("findings in JSON text carry the line and column of their element", () => {
  const text = '{\n  "resourceType": "Patient",\n  "birthDate": "1970-13-01",\n  "name": [{ "family": "Ng" }, { "given": ["A"],\n    "use": "nick" }]\n}';
  const lines = validate(text)
    .issue.filter((issue) => issue.severity === "error")
    .map((issue) => [issue.expression[0], issue.extension?.map((ext) => ext.valueInteger)]);
  assert.deepEqual(lines, [
    ["Patient.name[1].use", [5, 5]],
    ["Patient.birthDate", [3, 3]],
  ]);
});

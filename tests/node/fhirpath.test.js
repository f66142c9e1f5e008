// FHIRPath through the package: evaluate, compile, held resources, variables, resolve(),
// errors as FhirError with offsets, hostile expressions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { evaluate, compile, parseResource, FhirResource, FhirError } from "hearth-fhir";

const patient = {
  resourceType: "Patient",
  id: "p1",
  active: true,
  name: [
    { use: "official", family: "Chalmers", given: ["Peter", "James"] },
    { use: "usual", given: ["Jim"] },
  ],
  birthDate: "1974-12-25",
  _birthDate: { extension: [{ url: "http://example.org/precision", valueCode: "day" }] },
  contained: [{ resourceType: "Organization", id: "org", name: "Acme" }],
  managingOrganization: { reference: "#org" },
};

const observation = {
  resourceType: "Observation",
  status: "final",
  code: { coding: [{ system: "http://loinc.org", code: "29463-7" }] },
  valueQuantity: { value: 72.50, unit: "kg", system: "http://unitsofmeasure.org", code: "kg" },
};

test("evaluate returns FHIR primitives as JSON values and complex values as FHIR JSON", () => {
  assert.deepEqual(evaluate(patient, "Patient.name.where(use = 'official').given"), ["Peter", "James"]);
  assert.deepEqual(evaluate(patient, "Patient.active"), [true]);
  assert.deepEqual(evaluate(patient, "Patient.name[1]"), [{ use: "usual", given: ["Jim"] }]);
  assert.deepEqual(evaluate(patient, "Patient.birthDate"), ["1974-12-25"]);
  assert.deepEqual(evaluate(observation, "Observation.value.value"), [72.5]);
});

test("system values: numbers, dates, quantities", () => {
  assert.deepEqual(evaluate(patient, "1 + 2"), [3]);
  assert.deepEqual(evaluate(patient, "0.1 + 0.2 = 0.3"), [true]);
  assert.deepEqual(evaluate(patient, "@2014-01-25 + 1 month"), ["2014-02-25"]);
  assert.deepEqual(evaluate(patient, "5.5 'mg'"), [{ value: 5.5, unit: "mg" }]);
  assert.deepEqual(evaluate(observation, "Observation.value > 70000 'g'"), [true]);
});

test("FHIR functions: extension(), resolve() on contained resources, ofType()", () => {
  assert.deepEqual(evaluate(patient, "Patient.birthDate.extension('http://example.org/precision').value"), ["day"]);
  assert.deepEqual(evaluate(patient, "Patient.managingOrganization.resolve().name"), ["Acme"]);
  assert.deepEqual(evaluate(observation, "Observation.value.ofType(Quantity).unit"), ["kg"]);
  assert.deepEqual(evaluate(patient, "Patient.birthDate.hasValue()"), [true]);
});

test("variables reach the expression as %name", () => {
  assert.deepEqual(evaluate(patient, "Patient.name.where(use = %use).given.first()", { variables: { use: "usual" } }), ["Jim"]);
  assert.deepEqual(evaluate(patient, "%n * 2", { variables: { n: 21 } }), [42]);
  assert.deepEqual(evaluate(patient, "%other.name", { variables: { other: observation } }), []);
  assert.deepEqual(evaluate(patient, "%list.count()", { variables: { list: [1, 2, 3] } }), [3]);
});

test("compile once, evaluate many: with JSON or with a held resource", () => {
  const compiled = compile("Patient.name.given.count()", { resourceType: "Patient" });
  const held = parseResource(patient);
  assert.ok(held instanceof FhirResource);
  assert.equal(held.resourceType, "Patient");
  assert.deepEqual(compiled.evaluate(held), [3]);
  assert.deepEqual(compiled.evaluate(JSON.stringify(patient)), [3]);
  assert.equal(held.toJSON().name[0].family, "Chalmers");
});

test("syntax and semantic errors are FhirErrors with the offset", () => {
  assert.throws(
    () => compile("Patient.name.("),
    (err) => err instanceof FhirError && err.status === 400 && /at offset 13/.test(err.message),
  );
  assert.throws(
    () => compile("Patient.name.given1", { resourceType: "Patient" }),
    (err) => err instanceof FhirError && err.message.startsWith('unknown element "given1" of HumanName at offset 13'),
  );
  assert.throws(
    () => evaluate(patient, "Patient.name.given.single()"),
    (err) => err instanceof FhirError && err.message.startsWith("expected a single item, found 3"),
  );
  assert.throws(() => compile(42), FhirError);
  assert.throws(() => evaluate(patient, "%n", { variables: "x" }), FhirError);
});

test("hostile expressions end in an error or a result, never a crash", () => {
  const deep = "(".repeat(10_000) + "1" + ")".repeat(10_000);
  assert.throws(() => compile(deep), (err) => err instanceof FhirError && /levels of nesting/.test(err.message));
  const unary = "-".repeat(10_000) + "1";
  assert.throws(() => compile(unary), FhirError);
  assert.throws(() => evaluate(patient, "'x'.matches('(a+)+(')"), FhirError);
  // A regular expression that backtracks exponentially elsewhere runs in linear time here.
  assert.deepEqual(evaluate(patient, `'${"a".repeat(5000)}!'.matches('^(a+)+$')`), [false]);
  // Runaway growth hits the step budget.
  assert.throws(
    () => evaluate(patient, "(1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10)))))))"),
    (err) => err instanceof FhirError && /steps/.test(err.message),
  );
  assert.deepEqual(evaluate(patient, "Patient.name.first()"), [patient.name[0]]);
});

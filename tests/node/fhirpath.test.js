// FHIRPath through the package: evaluate, compile, held resources, variables, resolve(),
// errors as FhirError with offsets, hostile expressions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { evaluate, compile, parseResource, FhirResource, FhirError } from "hearth-fhir";
import { answer, outcome } from "../lib/answer.js";

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

test("edge cases that once crashed or misbehaved give results or FhirErrors", () => {
  const q = (text) => `'${text}'`;
  // i128 overflow in decimal div/mod, and negating the least Long.
  assert.deepEqual(evaluate(patient, `(${q("-85070591730234615865843651857942052864")}.toDecimal() * 2) div -1`), []);
  assert.deepEqual(evaluate(patient, "-(-9223372036854775807L - 1)"), []);
  // sort() on dates of mixed precision and on mixed kinds: a total order, no panic.
  const dates = ["@2012-11", "@2012", "@2012-03-14", "@2011", "@2013-01", "@2010", "@2010-02-12T10:00"];
  const sorted = evaluate(patient, `@2010-02-12${dates.map((d) => `.combine(${d})`).join("").repeat(3)}.sort()`);
  assert.equal(sorted.length, 22);
  assert.deepEqual(sorted.slice(0, 3), ["2010", "2010", "2010"]);
  assert.deepEqual(evaluate(patient, "(1 | 'a' | 2 | true).sort()"), [true, 1, 2, "a"]);
  // Long chains: folded, evaluated along the chain, or refused with a limit; never a stack overflow.
  assert.deepEqual(evaluate(patient, "1" + "+1".repeat(999)), [1000]);
  assert.throws(() => compile("1" + "+1".repeat(1500)), /at most 1000 operators in a row/);
  const codes = Array.from({ length: 600 }, (_, idx) => q(`c${idx}`)).join(" | ");
  assert.deepEqual(evaluate(patient, `(${codes}).count()`), [600]);
  assert.deepEqual(evaluate(patient, `${q("c5")} in (${codes})`), [true]);
  assert.throws(() => compile("Patient" + ".name".repeat(1500)), /at most 1000 steps in a path/);
  // Growing strings hit the step budget instead of memory.
  const grow = `${q("xxxxxxxxxx")}${`.replace(${q("x")}, ${q("xxxxxxxxxx")})`.repeat(8)}.length()`;
  assert.throws(() => evaluate(patient, grow), (err) => err instanceof FhirError && /steps/.test(err.message));
  // Date arithmetic outside the years 1 to 9999 is an error, not a wrong date.
  assert.throws(() => evaluate(patient, "@2014-01-01 + 9223372036854775807 days"), /years 1 to 9999/);
  assert.throws(() => evaluate(patient, "@9999-12-31 + 1 day"), /years 1 to 9999/);
  // Semantics the review caught.
  assert.deepEqual(evaluate(patient, "Patient.exists(active)"), [true]);
  assert.deepEqual(evaluate(patient, "(1).combine(1) ~ (1 | 2)"), [false]);
  assert.deepEqual(evaluate(patient, "@2014-01-01T10+02:00 = @2014-01-01T08Z"), [true]);
  assert.deepEqual(evaluate(patient, "-2147483648"), [-2147483648]);
  // Counts beyond 2^32 in Wasm's 32-bit address space; splitting on nothing.
  assert.deepEqual(evaluate(patient, "(1 | 2 | 3).take(5000000000L)"), [1, 2, 3]);
  assert.deepEqual(evaluate(patient, "(1 | 2 | 3).skip(5000000000L)"), []);
  assert.deepEqual(evaluate(patient, "'abc'.split('')"), ["a", "b", "c"]);
  assert.deepEqual(evaluate(patient, "0.power(-1)"), []);
  assert.deepEqual(evaluate(patient, String.raw`'\\u00e9t\\ud83d\\ude00 \\b\\u12'.unescape('json')`), ["\u00e9t\u{1f600} \b\\u12"]);
  assert.throws(() => compile("Coding.subsumes(%c)"), /subsumes\(\) is not supported: it needs a terminology server/);
  assert.throws(() => evaluate(patient, "'abc'.substring()"), /expected 1 to 2 arguments for substring\(\), found 0/);
  assert.throws(() => evaluate(patient, "'abc'.upper(1)"), /expected 0 arguments for upper\(\), found 1/);
  const iif = compile("Patient.name.first().iif(use = 'official', family, given.first())", { resourceType: "Patient" });
  assert.deepEqual(iif.evaluate(patient), ["Chalmers"]);
  compile("QuestionnaireResponse.repeat(item | answer)", { resourceType: "QuestionnaireResponse" });
  // defineVariable(): visible along its chain, gone outside the argument that defined it.
  assert.deepEqual(evaluate(patient, "Patient.defineVariable('n', name.count()).select(%n + 1)"), [3]);
  assert.throws(() => evaluate(patient, "Patient.select(defineVariable('v', 1).select(%v)) | %v"), /unknown variable %v/);
});

test("an expression that needs no resource evaluates on null or undefined", () => {
  assert.deepEqual(evaluate(null, "1 + 1"), [2]);
  assert.deepEqual(evaluate(undefined, "'a' & 'b'"), ["ab"]);
  assert.deepEqual(evaluate(null, "%x + 1", { variables: { x: 41 } }), [42]);
  assert.deepEqual(compile("Patient.name").evaluate(null), []);
  assert.deepEqual(evaluate(null, "today().toString().length() = 10"), [true]);
});

test("handles give their memory back with free() and Symbol.dispose, and refuse use after it", async () => {
  const { FhirResourceSet, FhirService, engineMemoryBytes } = await import("hearth-fhir");
  const text = JSON.stringify({ resourceType: "Patient", id: "p", name: [{ family: "Chalmers", given: ["Peter", "James"] }], birthDate: "1974-12-25" });
  const expression = compile("Patient.name.given");
  // Warm up, so that the allocator's first growth is not counted.
  for (let i = 0; i < 2000; i++) parseResource(text).free();
  const before = engineMemoryBytes();
  for (let i = 0; i < 50_000; i++) {
    const patient = parseResource(text);
    assert.equal(expression.evaluate(patient).length, 2);
    if (i % 2 === 0) patient.free();
    else patient[Symbol.dispose ?? Symbol.for("Symbol.dispose")]();
  }
  const grown = engineMemoryBytes() - before;
  // Without free() each call keeps about 2 KB until a collection that a synchronous loop never lets run.
  assert.ok(grown < 8 * 1024 * 1024, `Wasm memory grew by ${grown} bytes over 50,000 resources read and freed`);
  const patient = parseResource(text);
  patient.free();
  patient.free();
  assert.throws(() => expression.evaluate(patient), (err) => err instanceof FhirError && /was freed/.test(err.message));
  assert.throws(() => patient.toJSON(), /was freed/);
  const set = new FhirResourceSet([text]);
  set.free();
  assert.throws(() => set.size, /was freed/);
  expression.free();
  assert.throws(() => expression.evaluate(text), /was freed/);
  const service = new FhirService();
  service.free();
  assert.throws(() => service.handle({ method: "GET", path: "metadata" }), /was freed/);
});

test("strict: false reads data from elsewhere without what breaks the rules, with warnings beside the result", async () => {
  const { FhirResourceSet } = await import("hearth-fhir");
  const odd = { resourceType: "Patient", id: "odd", favouriteColour: "green", birthDate: 1974, name: [{ family: "Odd", given: [""] }] };
  // Strict stays the default, everywhere.
  assert.throws(() => parseResource(odd), (err) => err instanceof FhirError && err.status === 400 && /favouriteColour/.test(err.message));
  // On a plain object, what the expression reaches is read strictly; the rest is not read.
  assert.throws(() => evaluate(odd, "Patient.birthDate"), (err) => err instanceof FhirError && err.status === 400 && err.outcome.issue.some((issue) => issue.expression?.[0] === "Patient.birthDate"));
  assert.throws(() => evaluate(odd, "Patient.name.given"), FhirError);
  assert.throws(() => evaluate(odd, "Patient.favouriteColour"), FhirError);
  assert.deepEqual(evaluate(odd, "Patient.name.family"), ["Odd"]);
  assert.throws(() => evaluate(JSON.stringify(odd), "Patient.name.family"), FhirError, "JSON text is read whole");
  assert.throws(() => new FhirResourceSet([odd]), FhirError);

  const read = parseResource(odd, { strict: false });
  assert.deepEqual(read.toJSON(), { resourceType: "Patient", id: "odd", name: [{ family: "Odd" }] });
  assert.deepEqual(
    read.warnings.map((issue) => [issue.severity, issue.expression[0]]),
    [["warning", "Patient.favouriteColour"], ["warning", "Patient.birthDate"], ["warning", "Patient.name[0].given[0]"]],
  );
  const line = read.warnings[0].extension.find((e) => e.url.endsWith("issue-line")).valueInteger;
  assert.equal(line, 1);
  assert.deepEqual(parseResource(patient, { strict: false }).warnings, [], "nothing left out of valid data");

  const warned = [];
  assert.deepEqual(evaluate(odd, "Patient.name.family", { strict: false, onWarning: (issues) => warned.push(issues) }), ["Odd"]);
  assert.equal(warned.length, 1);
  assert.equal(warned[0].length, 3);
  assert.deepEqual(compile("Patient.birthDate.exists()").evaluate(JSON.stringify(odd), { strict: false }), [false]);
  evaluate(patient, "Patient.id", { strict: false, onWarning: () => assert.fail("no warning for valid data") });

  const set = new FhirResourceSet([patient, odd], { strict: false });
  assert.equal(set.size, 2);
  assert.deepEqual(set.warnings.map((w) => [w.position, w.issue.length]), [[1, 3]]);
  assert.deepEqual(compile("Patient.name.family").evaluateEach(set)[1], ["Odd"]);

  // Options left out or null are the defaults; a callback that is not one is refused.
  assert.deepEqual(parseResource(patient, null).warnings, []);
  assert.equal(new FhirResourceSet([patient], null).size, 1);
  assert.throws(() => evaluate(odd, "Patient.id", { strict: false, onWarning: "log" }), (err) => err instanceof FhirError && err.status === 400);
  assert.deepEqual(evaluate(patient, "Patient.id", null), ["p1"]);

  // What does not read at all is still refused: not JSON, no known resourceType.
  assert.throws(() => parseResource("{", { strict: false }), (err) => err.status === 400);
  assert.throws(() => parseResource({ resourceType: "Pateint" }, { strict: false }), (err) => err.status === 400 && /Pateint/.test(err.message));
});

test("a plain object read by projection answers as its JSON text read whole does", async () => {
  const cases = [
    // Text beyond ASCII, escapes, control characters, surrogate pairs and a lone surrogate.
    [{ resourceType: "Patient", name: [{ family: "Muñoz 😀", given: ["María", 'q"u\\o\te'] }] }, "Patient.name.given | Patient.name.family"],
    [{ resourceType: "Patient", name: [{ family: "bad\u0001" }] }, "Patient.name.family"],
    [{ resourceType: "Patient", name: [{ family: "half \ud800" }] }, "Patient.name.family"],
    // Numbers as JSON.stringify writes them.
    [{ ...observation, valueQuantity: { value: 1e21, unit: "kg" } }, "Observation.value.ofType(Quantity).value"],
    [{ ...observation, valueQuantity: { value: -0, unit: "kg" } }, "Observation.value.ofType(Quantity).value"],
    [{ ...observation, valueQuantity: { value: Number.NaN, unit: "kg" } }, "Observation.value.ofType(Quantity).value"],
    // What JSON.stringify leaves out or turns into null, and what it converts.
    [{ resourceType: "Patient", id: "u", gender: undefined, active: () => true }, "Patient.gender.exists() or Patient.active.exists()"],
    [{ resourceType: "Patient", name: [{ given: ["a", undefined] }] }, "Patient.name.given"],
    [{ resourceType: "Patient", birthDate: new Date(Date.UTC(1974, 11, 25)) }, "Patient.birthDate"],
    [{ resourceType: "Patient", name: [{ family: "F", toJSON: () => ({ family: "G" }) }] }, "Patient.name.family"],
    [{ resourceType: "Patient", name: [Object.assign(Object.create({ inherited: 1 }), { family: "H" })] }, "Patient.name.family"],
    // Deep nesting the expression follows: the projection stops following and the whole
    // object is read.
    [{ resourceType: "Patient", extension: [nested(120)] }, "Patient.repeat(extension).url.count()"],
    // Empty objects where the expression reaches break the rules, as in the whole resource.
    [{ resourceType: "Patient", name: [{}] }, "Patient.name.count()"],
    [{ resourceType: "Patient", _birthDate: {} }, "Patient.birthDate.exists()"],
    [{ resourceType: "Patient", contact: [{ name: {} }] }, "Patient.contact.name.exists()"],
    // A choice element named by one type keeps its others, so that two types are refused.
    [{ ...observation, valueString: "x" }, "Observation.valueQuantity.unit"],
    // Arrays JSON.stringify writes through toJSON; keys that are no FHIR name.
    [{ resourceType: "Patient", name: [{ given: Object.assign(["a", "b"], { toJSON: () => ["z"] }) }] }, "Patient.name.given"],
    [{ resourceType: "Patient", name: [{ given: ArrayWithJson.from(["a"]) }] }, "Patient.name.given"],
    [{ resourceType: "Patient", name: [{ family: "x", "ŧiven": ["b"] }] }, "Patient.name.`ŧiven`.count() + Patient.name.family.count()"],
  ];
  for (const [resource, expression] of cases) {
    assert.equal(answer(resource, expression), answer(JSON.stringify(resource), expression), `${expression} on ${JSON.stringify(resource).slice(0, 80)}`);
  }
  assert.deepEqual(evaluate(cases[0][0], cases[0][1]), ["María", 'q"u\\o\te', "Muñoz 😀"]);
  // Nesting the expression does not reach is not read (the resource's type tells how far the
  // expression reaches): the JSON text, read whole, is refused for it.
  const deep = { resourceType: "Patient", extension: [nested(120)] };
  assert.deepEqual(evaluate(deep, "Patient.extension.url"), ["http://example.org/119"]);
  assert.equal(answer(JSON.stringify(deep), "Patient.extension.url"), "error 400");
  // A cycle the expression reaches is refused, as JSON.stringify refuses it; one it does not
  // reach is not read (HumanName has no `name`).
  const cyclic = { resourceType: "Patient", name: [{ family: "C" }] };
  cyclic.name[0].name = cyclic.name;
  assert.throws(() => evaluate(cyclic, "Patient.name.repeat(name).family"), FhirError);
  assert.deepEqual(evaluate(cyclic, "Patient.name.family"), ["C"]);
  const looped = { resourceType: "Patient", name: [{ family: "C" }] };
  looped.name[0].family = looped.name;
  assert.throws(() => evaluate(looped, "Patient.name.family"), FhirError);
  const aside = { resourceType: "Patient", name: [{ family: "C" }] };
  aside.name[0].self = aside.name;
  assert.deepEqual(evaluate(aside, "Patient.name.family"), ["C"]);
  // A getter that evaluates meanwhile, and one that throws.
  const names = [{ family: "A" }];
  Object.defineProperty(names, 1, {
    enumerable: true,
    get() {
      assert.deepEqual(evaluate({ resourceType: "Patient", name: [{ family: "inner" }] }, "Patient.name.family"), ["inner"]);
      return { family: "B" };
    },
  });
  assert.deepEqual(evaluate({ resourceType: "Patient", name: names }, "Patient.name.family"), ["A", "B"]);
  // A getter whose call into the engine grows its memory while the projection is written
  // (which empties the view of the memory written to).
  const { engineMemoryBytes } = await import("hearth-fhir");
  const { initSync } = await import("../../npm/dist/wasm/hearth.js");
  const growing = [{ family: "A" }];
  Object.defineProperty(growing, 1, {
    enumerable: true,
    get() {
      initSync().memory.grow(1);
      return { family: "B" };
    },
  });
  // What a call before left in the buffer, where the rest would have gone, reads well.
  assert.deepEqual(evaluate({ resourceType: "Patient", name: [{ family: "A" }, { family: "Z" }], gender: "male" }, "Patient.name.family | Patient.gender"), ["A", "Z", "male"]);
  const before = engineMemoryBytes();
  assert.deepEqual(evaluate({ resourceType: "Patient", name: growing, gender: "male" }, "Patient.name.family | Patient.gender"), ["A", "B", "male"]);
  assert.ok(engineMemoryBytes() > before, "memory grew meanwhile");
  // Memory grown by a getter, then the buffer grown by a long value after it: the bytes in
  // between went nowhere, and what a call before left there must not be read.
  const both = compile("Patient.name.family | Patient.name.given");
  // A call before whose short result leaves most of its projection (the same tree) in place.
  const counted = compile("(Patient.name.family | Patient.name.given).count()");
  assert.deepEqual(counted.evaluate({ resourceType: "Patient", name: [{ family: "A" }, { family: "Z", given: ["x".repeat(3000)] }] }), [3]);
  const regrowing = [{ family: "A" }];
  Object.defineProperty(regrowing, 1, {
    enumerable: true,
    get() {
      initSync().memory.grow(1);
      return { family: "Q", given: ["y".repeat(40000)] };
    },
  });
  assert.deepEqual(both.evaluate({ resourceType: "Patient", name: regrowing }).slice(0, 2), ["A", "Q"]);
  // What JSON.stringify leaves out is left out: properties not enumerable.
  const hidden = { resourceType: "Patient" };
  Object.defineProperty(hidden, "gender", { value: "male", enumerable: false });
  assert.deepEqual(evaluate(hidden, "Patient.gender"), []);
  assert.deepEqual(evaluate({ resourceType: "Patient", name: [{ family: "F" }] }, "(+Patient.name).family"), ["F"]);
  const throwing = { resourceType: "Patient", get gender() { throw new Error("boom"); } };
  assert.throws(() => evaluate(throwing, "Patient.gender"), (err) => err instanceof FhirError && err.status === 400);
  // Many calls in a row through the shared buffer, with a result longer than it.
  const long = { resourceType: "Patient", name: [{ given: Array.from({ length: 2000 }, (_, i) => `given-${i}`) }] };
  assert.equal(evaluate(long, "Patient.name.given").length, 2000);
  assert.deepEqual(evaluate(patient, "Patient.name.given"), ["Peter", "James", "Jim"]);
});

function nested(depth) {
  let value = { url: "http://example.org/leaf", valueString: "x" };
  for (let i = 0; i < depth; i++) value = { url: `http://example.org/${i}`, extension: [value] };
  return value;
}

class ArrayWithJson extends Array {
  toJSON() {
    return ["q"];
  }
}

test("evaluateEach shares whole resources among the results: read into JS once per set, frozen, the same object every time", async () => {
  const { FhirResourceSet, compile, FhirError } = await import("hearth-fhir");
  const observation = (id, code) => ({ resourceType: "Observation", id, status: "final", code: { coding: [{ system: "http://loinc.org", code }] }, valueQuantity: { value: 1.5, unit: "kg" } });
  const one = { resourceType: "Bundle", type: "collection", entry: [{ resource: observation("o1", "1") }] };
  const two = { resourceType: "Bundle", type: "collection", entry: [{ resource: observation("o2", "2") }, { resource: { resourceType: "Patient", id: "p1" } }, { resource: observation("o3", "3") }] };
  const patient = { resourceType: "Patient", id: "p2", contained: [{ resourceType: "Organization", id: "org", name: "Clinic" }], name: [{ family: "Shared" }] };
  const set = new FhirResourceSet([one, two, patient]);
  const observations = compile("Bundle.entry.resource.ofType(Observation)");
  const first = observations.evaluateEach(set);
  assert.deepEqual(first, [[one.entry[0].resource], [two.entry[0].resource, two.entry[2].resource], []]);
  assert.ok(Object.isFrozen(first[1][0]) && Object.isFrozen(first[1][0].code.coding[0]), "shared results are frozen all through");
  assert.throws(() => { "use strict"; first[1][0].status = "amended"; }, TypeError);
  const again = observations.evaluateEach(set);
  assert.notEqual(again, first);
  assert.equal(again[1][1], first[1][1], "the same object on the next call");
  // Another expression naming the same resources gets the same objects; twice in one result too.
  const all = compile("Bundle.entry.resource").evaluateEach(set);
  assert.equal(all[1][0], first[1][0]);
  assert.deepEqual(all[1][1], { resourceType: "Patient", id: "p1" });
  const twice = compile("Bundle.entry.resource.ofType(Observation).combine(Bundle.entry.resource.ofType(Observation))").evaluateEach(set);
  assert.equal(twice[0].length, 2);
  assert.equal(twice[0][0], twice[0][1]);
  assert.equal(twice[0][0], first[0][0]);
  // The set's own resources and contained ones are resources too; other objects are new each time.
  const [self] = compile("Patient").evaluateEach(set)[2];
  assert.deepEqual(self, patient);
  assert.equal(compile("%resource").evaluateEach(set)[2][0], self);
  assert.deepEqual(compile("Patient.contained").evaluateEach(set)[2], [patient.contained[0]]);
  const names = compile("Patient.name").evaluateEach(set)[2];
  assert.deepEqual(names, [{ family: "Shared" }]);
  assert.ok(!Object.isFrozen(names[0]));
  assert.notEqual(compile("Patient.name").evaluateEach(set)[2][0], names[0]);
  // With variables, results are read for the call: a variable's objects are not the set's.
  const withVariables = observations.evaluateEach(set, { variables: { x: "y" } });
  assert.deepEqual(withVariables, first);
  assert.notEqual(withVariables[0][0], first[0][0]);
  assert.ok(!Object.isFrozen(withVariables[0][0]));
  // A call that fails part way leaves the set answering as before.
  assert.throws(() => compile("Bundle.entry.resource.first().combine(Bundle.entry.resource.single())").evaluateEach(new FhirResourceSet([one, two])), FhirError);
  const fresh = new FhirResourceSet([one, two]);
  assert.throws(() => compile("Bundle.entry.resource.first().combine(Bundle.entry.resource.single())").evaluateEach(fresh), FhirError);
  const before = observations.evaluateEach(fresh);
  assert.deepEqual(before, first.slice(0, 2));
  fresh.add(observation("early", "0"));
  const [early] = compile("Observation").evaluateEach(fresh)[2];
  // Growing the set (past the engine's chunk of 256 resources) keeps what was shared right:
  // the resources already held stay where they are, so they are the same objects.
  for (let n = 0; n < 300; n += 1) fresh.add(observation(`x${n}`, String(n)));
  const grown = compile("Bundle.entry.resource | Observation").evaluateEach(fresh);
  assert.equal(grown.length, 303);
  assert.equal(grown[302][0].id, "x299");
  assert.deepEqual(grown[0], [one.entry[0].resource]);
  assert.equal(grown[0][0], before[0][0]);
  assert.equal(grown[1][2], before[1][1]);
  assert.equal(grown[2][0], early, "a resource of the set shared before it grew");
  const again2 = compile("Observation").evaluateEach(fresh);
  assert.deepEqual(again2[302], [observation("x299", "299")]);
  assert.equal(again2[302][0], grown[302][0]);
  assert.equal(again2[258][0], grown[258][0]);
});

test("evaluateEach gives the results evaluate gives, whether every result is a string or not", async () => {
  const { FhirResourceSet } = await import("hearth-fhir");
  const people = [
    { resourceType: "Patient", id: "a", name: [{ family: "Ünal", given: ["Zoë", "x", "𝔸nna"] }] },
    { resourceType: "Patient", id: "b", active: false, _birthDate: { extension: [{ url: "http://example.org/why", valueString: "unknown" }] } },
    { resourceType: "Patient", id: "c", name: [{ family: 'Quote " and back\\slash', given: ["tab\there"] }] },
    { resourceType: "Patient", id: "d", active: true, name: [{ family: "Plain" }], birthDate: "1974-12-25", multipleBirthInteger: 2 },
  ];
  const set = new FhirResourceSet(people);
  const expressions = [
    "Patient.name.family",
    "Patient.name.given",
    "Patient.id",
    "Patient.birthDate",
    "Patient.name.given.first()",
    "Patient.name.family.where($this = 'Plain')",
    "Patient.name.given | Patient.id",
    "Patient.id + '\\u0001' + Patient.id",
    "Patient.multipleBirth",
    "Patient.name.given.exists()",
    "Patient.name.family | Patient.multipleBirth",
    "Patient.nothing",
    "Patient.id.substring(0, 0)",
    "Patient.id.replace(Patient.id, '')",
    // Numbers, booleans and primitives without a value, alone and among strings.
    "Patient.active",
    "Patient.name.given.count()",
    "Patient.name.given.count() - 2",
    "Patient.name.given.count() * 1.50",
    "Patient.name.given.empty()",
    "Patient.active | Patient.id",
    "Patient.id | Patient.name.given.count() | Patient.active",
    "9007199254740993.0",
    "-2147483647 - 1",
    "Patient.birthDate.extension.value | Patient.birthDate",
    "Patient.active.not()",
  ];
  for (const expression of expressions) {
    const compiled = compile(expression);
    const each = compiled.evaluateEach(set);
    assert.deepEqual(each, people.map((person) => compiled.evaluate(person)), expression);
    assert.equal(each.length, people.length, expression);
  }
  // Every result a string written as it is, in some resources none or several.
  const plain = new FhirResourceSet([people[0], people[1], people[3]]);
  for (const expression of ["Patient.name.given", "Patient.name.family", "Patient.birthDate", "Patient.id.substring(0, 0)", "Patient.name.given | Patient.id"]) {
    const compiled = compile(expression);
    assert.deepEqual(compiled.evaluateEach(plain), [people[0], people[1], people[3]].map((person) => compiled.evaluate(person)), expression);
  }
  // Many results for one resource.
  const many = new FhirResourceSet([{ resourceType: "Patient", name: [{ given: Array.from({ length: 300 }, (_, n) => `g${n}`) }] }]);
  assert.deepEqual(compile("Patient.name.given").evaluateEach(many)[0], Array.from({ length: 300 }, (_, n) => `g${n}`));
});

test("on every R4 example, a plain object read by its type's projection tree answers as its JSON text read whole does", async () => {
  const { readFileSync, readdirSync } = await import("node:fs");
  const { ROOT } = await import("../lib/paths.js");
  const dir = `${process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`}/examples`;
  const expressions = [
    "Patient.name.where(use = 'official').given.first()",
    "Patient.birthDate",
    "Patient.telecom.where(system = 'phone').value",
    "Patient.identifier.where(type.coding.code = 'MR').value",
    "Patient.birthDate.extension.url",
    "Patient.name.select(given | family)",
    "Observation.code.coding.where(system = 'http://loinc.org').code",
    "Observation.value.ofType(Quantity).value",
    "Observation.value > 5 'mg'",
    "Observation.component.where(code.coding.code = '8480-6').value.ofType(Quantity).value",
    "Observation.subject.reference",
    "MedicationRequest.medication.ofType(CodeableConcept).coding.code",
    "DiagnosticReport.result.count()",
    "Claim.total.value > 100",
    "Encounter.length > 5 'min'",
    "Bundle.entry.resource.ofType(Patient).birthDate",
    "Bundle.entry.where(resource is Observation).fullUrl",
    "contained.ofType(Patient).gender",
    "extension('http://hl7.org/fhir/StructureDefinition/patient-birthPlace').value.city",
    "identifier.where(system.exists()).value",
    "code.coding.code.distinct()",
    "text.status",
    "meta.tag.code | meta.security.code",
    "iif(active, 'yes', 'no')",
    "status = 'final'",
    "name",
  ].map((text) => [text, compile(text)]);
  const evaluated = (compiled, input) => outcome(() => compiled.evaluate(input));
  let compared = 0;
  let unreadable = 0;
  const differ = [];
  for (const name of readdirSync(dir).filter((file) => file.endsWith(".json")).sort()) {
    const text = readFileSync(`${dir}/${name}`, "utf8");
    let object;
    try {
      object = JSON.parse(text);
      parseResource(text).free();
    } catch {
      // Read whole, an example that breaks the rules fails every expression; read by
      // projection, only those reaching what breaks them.
      unreadable += 1;
      continue;
    }
    for (const [expression, compiled] of expressions) {
      compared += 1;
      const got = evaluated(compiled, object);
      const want = evaluated(compiled, text);
      if (got !== want) differ.push(`${expression} on ${name}: ${got} against ${want}`);
    }
  }
  console.log(`plain objects against JSON text: ${compared} evaluations compared, ${differ.length} differ; ${unreadable} examples not read whole, left out`);
  assert.deepEqual(differ.slice(0, 10), []);
  assert.ok(compared > 20_000, `${compared} compared`);
});

test("objects among the results of a plain object are its own, read whole by the FHIR rules", () => {
  const observation = (id, extra = {}) => ({ resourceType: "Observation", id, status: "final", code: { text: id }, ...extra });
  const bundle = {
    resourceType: "Bundle",
    type: "collection",
    entry: [
      { fullUrl: "urn:uuid:1", resource: observation("o1") },
      { fullUrl: "urn:uuid:2", resource: { resourceType: "Patient", id: "p1", birthDate: "1970-01-01" } },
      { fullUrl: "urn:uuid:3", resource: observation("o2", { valueQuantity: { value: 1.5, unit: "kg" } }) },
    ],
  };
  const found = evaluate(bundle, "Bundle.entry.resource.ofType(Observation)");
  assert.equal(found.length, 2);
  assert.equal(found[0], bundle.entry[0].resource, "the Bundle's own object");
  assert.equal(found[1], bundle.entry[2].resource);
  assert.deepEqual(evaluate(JSON.stringify(bundle), "Bundle.entry.resource.ofType(Observation)"), found, "as read whole");
  const patient = bundle.entry[1].resource;
  assert.equal(evaluate(bundle, "Bundle.entry.resource.ofType(Patient)")[0], patient);
  assert.equal(evaluate({ resourceType: "Patient", name: [{ family: "F" }] }, "Patient.name.first()").length, 1);
  const named = { resourceType: "Patient", name: [{ family: "F", given: ["G"] }, { family: "H" }] };
  const names = evaluate(named, "Patient.name.where(given.exists())");
  assert.deepEqual(names, [named.name[0]]);
  assert.equal(names[0], named.name[0]);

  // A result is read whole: what breaks the rules anywhere in it is refused, as when the
  // whole resource is read; what no result holds and the expression does not reach is not read.
  const broken = structuredClone(bundle);
  broken.entry[2].resource.favouriteColour = "green";
  assert.throws(() => evaluate(broken, "Bundle.entry.resource.ofType(Observation)"), (err) => err instanceof FhirError && err.status === 400 && /favouriteColour/.test(err.message));
  const elsewhere = structuredClone(bundle);
  elsewhere.entry[1].resource.favouriteColour = "green";
  assert.equal(evaluate(elsewhere, "Bundle.entry.resource.ofType(Observation)").length, 2);
  assert.equal(evaluate(elsewhere, "Bundle.entry.resource.ofType(Observation).code.text").length, 2);

  // Objects with other values, and objects compared, come from the whole resource.
  assert.deepEqual(evaluate(bundle, "Bundle.entry.resource.ofType(Observation).first() | Bundle.type"), [bundle.entry[0].resource, "collection"]);
  assert.deepEqual(evaluate(bundle, "Bundle.entry.resource.ofType(Observation).distinct().count()"), [2]);
});

test("plain paths to primitives are followed on the object: on every R4 example, and on breakages of each step, they answer as the JSON text read whole does", async () => {
  const { readFileSync, readdirSync } = await import("node:fs");
  const { ROOT } = await import("../lib/paths.js");
  const { CompiledExpression } = await import("../../npm/dist/wasm/hearth.js");
  const dir = `${process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`}/examples`;
  // Every chain of property names from the resource to a primitive it holds, as a path (each
  // name in backticks: `div` is an operator too), with the chain itself; a choice element's
  // typed name (`valueQuantity`) also as FHIRPath names it (`value.ofType(Quantity)`).
  const { jsonTable } = await import("../../npm/dist/wasm/hearth.js");
  const typed = (key) => {
    for (let at = 1; at < key.length; at++) {
      const suffix = key.slice(at);
      if (suffix[0] < "A" || suffix[0] > "Z") continue;
      const lower = suffix[0].toLowerCase() + suffix.slice(1);
      const type = jsonTable(suffix) !== undefined ? suffix : jsonTable(lower)?.startsWith("P") ? lower : undefined;
      if (type !== undefined) return `\`${key.slice(0, at)}\`.ofType(${type})`;
    }
    return undefined;
  };
  const literal = (text) => `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  const paths = (value, prefix, keys, depth, out, filtered = false) => {
    if (Array.isArray(value)) return value.forEach((item) => paths(item, prefix, keys, depth, out, filtered));
    if (value === null || typeof value !== "object") {
      out.set(prefix, keys);
      if (keys.length % 3 === 0) out.set(`${prefix}.first()`, keys);
      return out;
    }
    if (depth > 5) return out;
    // An object reached, counted (or looked for, or not).
    if (keys.length > 0) out.set(`${prefix}.${["count", "exists", "empty"][keys.length % 3]}()`, keys);
    for (const [key, item] of Object.entries(value)) {
      if (key.startsWith("_") || key === "resourceType" || key === "contained" || key === "resource") continue;
      paths(item, `${prefix}.\`${key}\``, [...keys, key], depth + 1, out, filtered);
      const choice = typed(key);
      if (choice !== undefined) paths(item, `${prefix}.${choice}`, [...keys, key], depth + 1, out, filtered);
      // Once on the way: the values filtered on a string of the first (which it keeps) and
      // on another text (which it may not).
      const first = Array.isArray(item) ? item[0] : item;
      if (filtered || depth === 0 || first === null || typeof first !== "object" || Array.isArray(first)) continue;
      const on = Object.keys(first).find((name) => typeof first[name] === "string" && !name.startsWith("_"));
      if (on === undefined) continue;
      for (const text of [first[on], "other"]) {
        paths(item, `${prefix}.\`${key}\`.where(\`${on}\` = ${literal(text)})`, [...keys, key], depth + 1, out, true);
      }
    }
    return out;
  };
  // What breaks (or keeps) the rules, put in place of a value on the way, or of its first item.
  const companion = { extension: [{ url: "http://example.org/x", valueString: "y" }] };
  const hostile = () => ["", "\u0001", "a\ud800", "😀", null, -0, 1.5, 2 ** 31, -1, true, [], [null], {}, new Date(0), () => 1];
  const routes = new Map();
  let followed = 0;
  let ofTypes = 0;
  let endings = 0;
  let wheres = 0;
  let compared = 0;
  let breakages = 0;
  let heldCompared = 0;
  const differ = [];
  for (const name of readdirSync(dir).filter((file) => file.endsWith(".json")).sort()) {
    const text = readFileSync(`${dir}/${name}`, "utf8");
    let object;
    try {
      object = JSON.parse(text);
      parseResource(text).free();
    } catch {
      continue;
    }
    const type = object.resourceType;
    const routedPaths = [];
    const found = paths(object, type, [], 0, new Map());
    // Held by the engine: answered there the first time, then on its JSON in JS.
    const held = parseResource(text);
    for (const path of [...found.keys()].slice(0, 60)) {
      if (!routes.has(`${type} ${path}`)) {
        const compiled = new CompiledExpression(path);
        routes.set(`${type} ${path}`, compiled.projectionRoute(type));
        compiled.free();
      }
      const routed = routes.get(`${type} ${path}`);
      followed += routed !== undefined ? 1 : 0;
      compared += 1;
      const got = answer(object, path);
      const want = answer(text, path);
      if (got !== want) differ.push(`${path} on ${name}: ${got} against ${want}`);
      const gotHeld = answer(held, path);
      heldCompared += 1;
      if (gotHeld !== want) differ.push(`${path} on ${name} held: ${gotHeld} against ${want}`);
      if (routed !== undefined) routedPaths.push([path, routed]);
      if (routed !== undefined && path.includes(".ofType(")) ofTypes += 1;
      if (routed !== undefined && path.endsWith("()")) endings += 1;
      if (routed !== undefined && path.includes(".where(")) wheres += 1;
    }
    held.free();
    // In each example under 4 KB (each breakage is compared with the whole text read anew),
    // the longest path with a route, and the first with properties checked beside it (else
    // the first to a value that is not a string): every step broken in every way.
    routedPaths.sort(([one], [other]) => found.get(other).length - found.get(one).length);
    const notString = routedPaths.find(([, route]) => !route.endsWith(":s"));
    const guarded = routedPaths.find(([, route]) => route.includes("{"));
    const counted = routedPaths.find(([path]) => path.endsWith("()"));
    const filtered = routedPaths.find(([, route]) => route.includes("?"));
    const chosen = text.length < 4_096 ? new Set([routedPaths[0], guarded ?? notString, filtered ?? counted].filter((path) => path !== undefined)) : [];
    for (const [path, route] of chosen) {
      const keys = found.get(path);
      // The properties checked beside each step (a choice element's other types, a
      // Quantity's code and unit), by the route.
      const besides = route
        .slice(0, route.lastIndexOf(":"))
        .split(".")
        .map((step) => (step.includes("{") ? step.slice(step.indexOf("{") + 1, -1).split(",").map((guard) => guard.split(":")[0]) : []))
        // A few of each step: three values' names, one companion.
        .map((names) => [...names.filter((name) => !name.startsWith("_")).slice(0, 3), ...names.filter((name) => name.startsWith("_")).slice(0, 1)]);
      // The string the values of a step are filtered on lies in each of them: broken as the
      // properties beside the next step.
      route
        .slice(0, route.lastIndexOf(":"))
        .split(".")
        .forEach((step, at) => {
          const name = /\?([^=]+)=/.exec(step)?.[1];
          if (name !== undefined && besides[at + 1] !== undefined) besides[at + 1].push(name, `_${name}`);
        });
      const choices = route
        .slice(0, route.lastIndexOf(":"))
        .split(".")
        .map((step) => (step.includes("{") ? step.slice(step.indexOf("{") + 1, -1).split(",").map((guard) => guard.split(":")) : []))
        .map((guards) => guards.filter(([name, spec]) => spec.startsWith("=") && !name.startsWith("_")).map(([name, spec]) => [name, spec.slice(1)]));
      for (let step = 0; step < keys.length; step++) {
        const key = keys[step];
        // Each changes the object holding the step, or tells that it does not apply.
        const variants = [];
        // (What is inside an object checked beside is not read, as in any projection: only
        // objects that are empty or fine for every type go there.)
        // Two other types of the choice element followed, each fine alone, with it or in its place.
        const fine = { s: "x", b: true, d: 1.5, i: 1, p: 1, u: 1, o: { id: "i" } };
        const types = (choices[step] ?? []).slice(0, 2);
        if (types.length === 2) {
          const both = (holder) => types.forEach(([name, kind]) => (holder[name] = fine[kind]));
          variants.push((holder) => (both(holder), true));
          variants.push((holder) => (delete holder[key], both(holder), true));
        }
        for (const [order, beside] of (besides[step] ?? []).entries()) {
          for (const value of ["", "\u0001", "x", false, 7, -0, null, [], {}, new Date(0), beside.startsWith("_") ? { id: "i" } : { id: "i", extension: [companion.extension[0]] }]) {
            variants.push((holder) => ((holder[beside] = value), true));
            // In place of the property followed (another type of its choice element).
            if (order < 2) variants.push((holder) => (delete holder[key], (holder[beside] = value), true));
          }
        }
        for (const value of hostile()) {
          variants.push((holder) => ((holder[key] = value), true));
          variants.push((holder) => Array.isArray(holder[key]) && ((holder[key][0] = value), true));
        }
        variants.push((holder) => ((holder[key] = Array.isArray(holder[key]) ? holder[key][0] : [holder[key]]), true));
        variants.push((holder) => Object.defineProperty(holder, key, { value: holder[key], enumerable: false }) === holder);
        variants.push((holder) => {
          const original = holder[key];
          return Object.defineProperty(holder, key, { get: () => original, enumerable: true }) === holder;
        });
        // (Objects have no companions: one beside an object only counted is not read.)
        if (step === keys.length - 1 && !route.includes(":o")) {
          variants.push((holder) => ((holder[`_${key}`] = Array.isArray(holder[key]) ? holder[key].map(() => companion) : companion), true));
          variants.push((holder) => ((holder[`_${key}`] = {}), true));
          variants.push((holder) => Array.isArray(holder[key]) && ((holder[`_${key}`] = holder[key].map(() => companion)), (holder[key][0] = null), true));
        }
        for (const variant of variants) {
          const copy = structuredClone(object);
          // The object holding step `step`: down the path through the first item of arrays.
          let holder = copy;
          for (const before of keys.slice(0, step)) holder = Array.isArray(holder?.[before]) ? holder[before][0] : holder?.[before];
          if (holder === null || typeof holder !== "object" || holder[key] === undefined || !variant(holder)) continue;
          breakages += 1;
          const gotBroken = answer(copy, path);
          const wantBroken = answer(JSON.stringify(copy), path);
          if (gotBroken !== wantBroken) differ.push(`${path} on ${name}, step ${key} broken by ${variant}: ${gotBroken} against ${wantBroken}`);
        }
      }
    }
  }
  console.log(`plain paths: ${compared} evaluations of paths to primitives (${followed} on a route, ${ofTypes} of them through ofType(), ${endings} ending in count(), exists(), empty() or first(), ${wheres} through where()), the same ${heldCompared} on the resource held, and ${breakages} of broken steps compared with the JSON text, ${differ.length} differ`);
  assert.deepEqual(differ.slice(0, 10), []);
  assert.ok(heldCompared === compared && followed > 5_000 && ofTypes > 500 && endings > 2_000 && wheres > 1_000 && breakages > 5_000, `${followed} followed, ${ofTypes} through ofType(), ${endings} ending so, ${wheres} through where(), ${breakages} broken`);
});

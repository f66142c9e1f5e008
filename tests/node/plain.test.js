// Plain objects checked in JS by the FHIR JSON rules (npm/src/plain.js): whole resources
// accepted there must be accepted by the engine reading their JSON, on every R4 example,
// every Synthea resource, and breakages of them at random places; and through the package,
// resources among the results of a plain object answer as its JSON text read whole does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { evaluate, parseResource, FhirError } from "hearth-fhir";
import { checkResource, startChecks } from "../../npm/src/plain.js";
import { ROOT } from "../lib/paths.js";
import { answer } from "../lib/answer.js";
import { random } from "../lib/random.js";

const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;

function reads(text) {
  try {
    parseResource(text).free();
    return true;
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    return false;
  }
}

function checks(value) {
  startChecks();
  return checkResource(value, 0);
}

/** The R4 examples and Synthea's resources, as [name, JSON text]. */
function resources() {
  const found = [];
  for (const name of readdirSync(`${corpus}/examples`).filter((file) => file.endsWith(".json")).sort()) {
    found.push([name, readFileSync(`${corpus}/examples/${name}`, "utf8")]);
  }
  for (const name of readdirSync(`${corpus}/synthea`).filter((file) => file.endsWith(".json")).sort()) {
    const bundle = JSON.parse(readFileSync(`${corpus}/synthea/${name}`, "utf8"));
    found.push([name, JSON.stringify(bundle)]);
    bundle.entry.forEach((entry, idx) => found.push([`${name} entry ${idx}`, JSON.stringify(entry.resource)]));
  }
  return found;
}


/** Every object and array in `value`, with the key or index of each of its members. */
function places(value, out = []) {
  if (value === null || typeof value !== "object") return out;
  for (const key of Object.keys(value)) {
    out.push([value, Array.isArray(value) ? Number(key) : key]);
    places(value[key], out);
  }
  return out;
}

const hostile = ["", "\u0001", "a\ud800", "😀", "x", "Resource", "Patient", null, 0, -0, 1.5, -1, 2 ** 31, 1e21, Number.NaN, true, [], [null], ["x"], [{}], {}, { url: "http://example.org/x" }, { id: "i" }, [{ id: "i" }], new Date(0), undefined];

test("a whole resource JS accepts by the FHIR JSON rules, the engine reads: every R4 example and Synthea resource", () => {
  let accepted = 0;
  let declined = 0;
  let refused = 0;
  const wrong = [];
  for (const [name, text] of resources()) {
    const ok = reads(text);
    const checked = checks(JSON.parse(text));
    if (checked && !ok) wrong.push(name);
    if (checked) accepted += 1;
    else if (ok) declined += 1;
    else refused += 1;
  }
  console.log(`whole resources checked in JS: ${accepted} accepted, ${declined} left to the engine that it reads, ${refused} refused by both; ${wrong.length} accepted that the engine refuses`);
  assert.deepEqual(wrong, []);
  assert.ok(accepted > 8_000, `${accepted} accepted`);
  // What JS leaves to the engine is rare (nulls in arrays, arrays of companions).
  assert.ok(declined < accepted / 50, `${declined} declined`);
});

test("a broken resource JS accepts, the engine reads: breakages at random places of every R4 example", () => {
  const next = random(18);
  let accepted = 0;
  let broken = 0;
  const wrong = [];
  for (const name of readdirSync(`${corpus}/examples`).filter((file) => file.endsWith(".json")).sort()) {
    const text = readFileSync(`${corpus}/examples/${name}`, "utf8");
    if (text.length > 32_768 || !reads(text)) continue;
    for (let round = 0; round < 40; round++) {
      const copy = JSON.parse(text);
      const all = places(copy);
      const [holder, key] = all[Math.floor(next() * all.length)];
      const how = next();
      if (how < 0.6) {
        holder[key] = hostile[Math.floor(next() * hostile.length)];
      } else if (how < 0.7 && !Array.isArray(holder)) {
        // An unknown name, a companion, or a second type of a choice element.
        const names = ["favouriteColour", `_${key}`, "valueBoolean", "valueString", "_valueString", "resourceType", "extension", "_id"];
        holder[names[Math.floor(next() * names.length)]] = hostile[Math.floor(next() * hostile.length)];
      } else if (how < 0.8) {
        holder[key] = Array.isArray(holder[key]) ? holder[key][0] : [holder[key]];
      } else if (how < 0.9 && !Array.isArray(holder)) {
        delete holder[key];
      } else {
        holder[key] = structuredClone(all[Math.floor(next() * all.length)][0]);
      }
      broken += 1;
      if (!checks(copy)) continue;
      accepted += 1;
      if (!reads(JSON.stringify(copy))) wrong.push(`${name}: ${JSON.stringify(copy).slice(0, 200)}`);
    }
  }
  console.log(`broken resources: ${broken}, ${accepted} accepted in JS, ${wrong.length} of them refused by the engine`);
  assert.deepEqual(wrong.slice(0, 5), []);
  assert.ok(broken > 20_000 && accepted > 2_000, `${broken} broken, ${accepted} accepted`);
});

test("hand-made breakages of the rules are refused in JS as the engine refuses them", () => {
  const patient = (extra) => ({ resourceType: "Patient", id: "p", ...extra });
  const cases = [
    patient({ name: [{ given: ["a", "b"] }], _x: 1 }),
    patient({ name: [{ given: ["a", "b"], _given: [{ id: "i" }] }] }),
    patient({ name: [{ given: ["a"], _given: [{ id: "i" }, { id: "j" }] }] }),
    patient({ name: [{ given: [null, "b"], _given: [null, { id: "j" }] }] }),
    patient({ contained: [{ resourceType: "Resource", id: "r" }] }),
    patient({ contained: [{ resourceType: "DomainResource", id: "r" }] }),
    patient({ contained: [{ resourceType: "Nothing", id: "r" }] }),
    patient({ contained: [{ id: "r" }] }),
    patient({ contained: [patient({ contained: [patient({ gender: 1 })] })] }),
    patient({ deceasedBoolean: true, deceasedDateTime: "2020" }),
    patient({ deceasedBoolean: true, _deceasedDateTime: { id: "x" } }),
    patient({ multipleBirthInteger: 2 ** 31 }),
    patient({ photo: [{ size: -1 }] }),
    patient({ _birthDate: { value: "x" } }),
    patient({ _birthDate: {} }),
    patient({ _id: { id: "x" } }),
    patient({ extension: [{ url: "http://example.org/x", _url: { id: "u" } }] }),
    patient({ name: [{ period: { start: "2020", end: {} } }] }),
    patient({ text: { status: "generated", div: "" } }),
    patient({ active: "true" }),
    patient({ birthDate: ["1970"] }),
    patient({ name: { family: "F" } }),
  ];
  const wrong = [];
  for (const resource of cases) {
    const text = JSON.stringify(resource);
    if (checks(resource) && !reads(text)) wrong.push(text);
    if (reads(text)) wrong.push(`read: ${text}`);
  }
  assert.deepEqual(wrong, []);
  // And what keeps the rules is accepted.
  for (const resource of [patient({ name: [{ given: ["a"], _given: [{ id: "i" }] }] }), patient({ deceasedDateTime: "2020", _deceasedDateTime: { id: "x" } }), patient({ contained: [patient({ id: "q" })] })]) {
    assert.ok(reads(JSON.stringify(resource)), JSON.stringify(resource));
  }
  assert.ok(checks(patient({ deceasedDateTime: "2020", _deceasedDateTime: { id: "x" } })));
  assert.ok(checks(patient({ contained: [patient({ id: "q" })] })));
});

test("resources among the results of a plain object answer as its JSON text read whole does, broken or not", () => {
  const bundle = JSON.parse(readFileSync(`${corpus}/synthea/${readdirSync(`${corpus}/synthea`).filter((file) => file.endsWith(".json")).sort()[0]}`, "utf8"));
  const expression = "Bundle.entry.resource.ofType(Observation)";
  const found = evaluate(bundle, expression);
  assert.ok(found.length > 10);
  assert.equal(found[0], bundle.entry.find((entry) => entry.resource.resourceType === "Observation").resource, "the bundle's own object");
  assert.equal(answer(bundle, expression), answer(JSON.stringify(bundle), expression));
  const next = random(7);
  const observations = bundle.entry.filter((entry) => entry.resource.resourceType === "Observation");
  let differ = 0;
  let errors = 0;
  for (let round = 0; round < 300; round++) {
    const copy = structuredClone(bundle);
    const target = copy.entry[bundle.entry.indexOf(observations[Math.floor(next() * observations.length)])].resource;
    const all = places(target);
    const [holder, key] = all[Math.floor(next() * all.length)];
    // Made another type, it is no result, and not read (as resources no result holds).
    if (holder === target && key === "resourceType") continue;
    holder[key] = hostile[Math.floor(next() * hostile.length)];
    const got = answer(copy, expression);
    const want = answer(JSON.stringify(copy), expression);
    if (want.startsWith("error")) errors += 1;
    if (got !== want) differ += 1;
  }
  console.log(`resources as results: 300 bundles with a broken Observation, ${errors} refused, ${differ} differ from the JSON text`);
  assert.equal(differ, 0);
  assert.ok(errors > 100);
});

test("objects among the results that are not resources are read whole by the engine, empty objects in them refused", () => {
  const patient = { resourceType: "Patient", name: [{ family: "F", period: {} }, { family: "G" }] };
  for (const expression of ["Patient.name.where(family = 'F')", "Patient.name.first()", "Patient.name"]) {
    assert.throws(() => evaluate(patient, expression), (err) => err instanceof FhirError && err.status === 400 && /empty object/.test(err.message), expression);
    assert.throws(() => evaluate(JSON.stringify(patient), expression), (err) => err instanceof FhirError && /empty object/.test(err.message));
  }
  const fine = { resourceType: "Patient", name: [{ family: "F", period: { start: "2020" } }, { family: "G", text: "{}" }] };
  assert.deepEqual(evaluate(fine, "Patient.name.where(family = 'F')"), [fine.name[0]]);
  assert.deepEqual(evaluate(fine, "Patient.name.last()"), [fine.name[1]]);
  const contained = { resourceType: "Patient", contained: [{ resourceType: "Organization", id: "o", name: "N", address: [{}] }] };
  assert.throws(() => evaluate(contained, "Patient.contained.ofType(Organization)"), (err) => err instanceof FhirError && /empty object/.test(err.message));
  contained.contained[0].address[0].city = "C";
  assert.equal(evaluate(contained, "Patient.contained.ofType(Organization)")[0], contained.contained[0]);
});

test("what JSON.stringify writes otherwise, and JSON past the engine's limit, are left to the engine", () => {
  const detailed = (input, expression) => answer(input, expression, { detail: /empty object|bytes of JSON/ });
  const gone = { toJSON: () => undefined };
  const cases = [
    // A property written as nothing leaves an empty object, which breaks the rules.
    [{ resourceType: "Observation", status: "final", code: { text: "c" }, subject: { display: gone } }, "Observation.subject.reference"],
    [{ resourceType: "Patient", name: [{ family: gone }] }, "Patient.name.given"],
    [{ resourceType: "Patient", name: [{ family: gone }] }, "Patient.name.where(use = 'x').given"],
    [{ resourceType: "Patient", name: [{ family: gone }] }, "name.given.count()"],
    [{ resourceType: "Patient", name: [{ family: gone, given: ["g"] }] }, "Patient.name.given"],
  ];
  for (const [resource, expression] of cases) {
    assert.equal(detailed(resource, expression), detailed(JSON.stringify(resource), expression), `${expression} on ${JSON.stringify(resource)}`);
  }
  assert.equal(detailed(cases[0][0], cases[0][1]), "error 400 empty object");
  // Inherited enumerable properties are not written.
  Object.defineProperty(Object.prototype, "polluted", { value: 1, enumerable: true, configurable: true });
  try {
    const resource = { resourceType: "Patient", name: [{}] };
    assert.equal(detailed(resource, "Patient.name.given"), "error 400 empty object");
    assert.equal(checks({ resourceType: "Patient", name: [{}] }), false);
  } finally {
    delete Object.prototype.polluted;
  }
  // A resource whose JSON passes the engine's 64 MiB: every item of an array counts.
  const huge = { resourceType: "MolecularSequence", type: "dna", coordinateSystem: 0, quality: [{ type: "indel", roc: { fMeasure: new Array(3_000_000).fill(-1.2345678901234567e-300) } }] };
  assert.equal(checks(huge), false);
  const bundle = { resourceType: "Bundle", type: "collection", entry: [{ resource: huge }] };
  assert.equal(detailed(bundle, "Bundle.entry.resource.ofType(MolecularSequence)"), "error 400 bytes of JSON");
  const quotes = { resourceType: "Patient", name: [{ given: new Array(10_000_000).fill('"') }] };
  assert.equal(checks(quotes), false);
});

test("routes keep a filter after ofType(), and count the strings they check beside a step against the engine's input limit", () => {
  const detailed = (input, expression) => answer(input, expression, { detail: /bytes of JSON/ });
  const observation = (extra) => ({ resourceType: "Observation", status: "final", code: { text: "t" }, ...extra });
  const cases = [
    [observation({ valueQuantity: { value: 5, unit: "g" } }), "Observation.value.ofType(Quantity).where(unit = 'mg').value"],
    [observation({ valueQuantity: { value: 5, unit: "mg" } }), "Observation.value.ofType(Quantity).where(unit = 'mg').value"],
    [observation({ valueQuantity: { value: 5, unit: "g" } }), "Observation.value.ofType(Quantity).exists(unit = 'mg')"],
  ];
  for (const [resource, expression] of cases) {
    assert.equal(detailed(resource, expression), detailed(JSON.stringify(resource), expression), expression);
  }
  assert.equal(detailed(cases[0][0], cases[0][1]), "[]");
  assert.equal(detailed(cases[1][0], cases[1][1]), "[5]");
  // 70 MiB in a string the route checks, not one it returns: past the engine's limit.
  const big = "a".repeat(70 << 20);
  const huge = [
    [observation({ code: { coding: [{ system: big, code: "c" }] } }), "Observation.code.coding.where(system = 'x').code"],
    [observation({ valueString: big }), "Observation.value.ofType(Quantity).value"],
    [observation({ valueQuantity: { value: 5, unit: big } }), "Observation.value.ofType(Quantity).value"],
  ];
  for (const [resource, expression] of huge) {
    assert.equal(detailed(resource, expression), "error 400 bytes of JSON", expression);
  }
});

test("resources at the end of a route (a Bundle's entries, contained resources) answer as the JSON text does, plain or held, broken or not", async () => {
  const anyOrder = (input, expression) => answer(input, expression, { sortKeys: true });
  const { CompiledExpression } = await import("../../npm/dist/wasm/hearth.js");
  // Properties in one order: a plain object's results are its own objects, in its order.
  const routed = new Map();
  const routeOf = (type, expression) => {
    const key = `${type} ${expression}`;
    if (!routed.has(key)) {
      const compiled = new CompiledExpression(expression);
      routed.set(key, compiled.projectionRoute(type));
      compiled.free();
    }
    return routed.get(key);
  };
  // For each resource holding others: the expressions giving them, all or by type, whole or counted.
  const expressionsOf = (object) => {
    const type = object.resourceType;
    const lists = { Bundle: ["entry", "resource"], Parameters: ["parameter", "resource"] };
    const [list, inner] = lists[type] ?? ["contained"];
    const held = (object[list] ?? []).map((item) => (inner === undefined ? item : item?.[inner])).filter((item) => item !== undefined);
    const path = inner === undefined ? `${type}.${list}` : `${type}.${list}.${inner}`;
    const types = [...new Set(held.map((item) => item?.resourceType))].filter((name) => typeof name === "string").slice(0, 3);
    const selections = [path, ...[...types, "Basic"].map((name) => `${path}.ofType(${name})`)];
    return selections.flatMap((selection) => [selection, `${selection}.count()`, `${selection}.exists()`, `${selection}.empty()`, `${selection}.first()`]);
  };
  const inputs = resources()
    .filter(([name]) => !name.includes(" entry "))
    .map(([name, text]) => [name, text, JSON.parse(text)])
    .filter(([, , object]) => object.resourceType === "Bundle" || object.resourceType === "Parameters" || object.contained !== undefined)
    .filter(([, text]) => reads(text));
  let compared = 0;
  let onRoute = 0;
  const differ = [];
  for (const [name, text, object] of inputs) {
    const held = parseResource(text);
    for (const expression of expressionsOf(object)) {
      const want = anyOrder(text, expression);
      const got = anyOrder(object, expression);
      // Twice held: in the engine, then on its JSON in JS.
      const gotHeld = [anyOrder(held, expression), anyOrder(held, expression)];
      compared += 1;
      if (routeOf(object.resourceType, expression) !== undefined) onRoute += 1;
      if (got !== want || gotHeld[0] !== want || gotHeld[1] !== want) differ.push(`${expression} on ${name}: ${got} / held ${gotHeld} against ${want}`);
    }
    held.free();
  }
  // Breakages of an entry of small Bundles, in place of its resource (whose `resourceType`
  // is read by every expression here) or inside it (read when it is a result).
  const breakages = [
    (entry) => (entry.resource = {}),
    (entry) => (entry.resource = []),
    (entry) => (entry.resource = null),
    (entry) => (entry.resource = "x"),
    (entry) => (entry.resource = new Date(0)),
    (entry) => delete entry.resource,
    (entry) => (entry.resource = { resourceType: "Nothing" }),
    (entry) => (entry.resource = { resourceType: "DomainResource" }),
    (entry) => (entry.resource = { resourceType: 5 }),
    (entry) => (entry.resource = { id: "x" }),
    (entry) => (entry.resource = Object.create({ resourceType: "Patient" })),
    (entry) => (entry.resource = [entry.resource]),
    (entry) => Object.defineProperty(entry, "resource", { value: entry.resource, enumerable: false }),
    (entry) => Object.defineProperty(entry.resource, "resourceType", { value: entry.resource.resourceType, enumerable: false }),
    (entry) => {
      const inner = entry.resource;
      Object.defineProperty(entry, "resource", { get: () => inner, enumerable: true });
    },
  ];
  const inside = [
    (resource) => (resource.nothing = 1),
    (resource) => (resource.id = ""),
    (resource) => (resource.meta = {}),
    (resource) => (resource.id = 7),
    (resource) => (resource.toJSON = () => ({ resourceType: "Basic", code: { text: "t" } })),
  ];
  // True when `expression` gives entries of `type` whole (not only counted).
  const whole = (expression, type) => !/\.(count|exists|empty)\(\)$/.test(expression) && (!expression.includes("ofType(") || expression.includes(`ofType(${type})`));
  let broken = 0;
  let refused = 0;
  for (const [name, text, object] of inputs.filter(([, text, object]) => object.resourceType === "Bundle" && text.length < 20_000)) {
    for (const expression of expressionsOf(object)) {
      for (const [at, breakage] of breakages.entries()) {
        const copy = structuredClone(object);
        const entries = copy.entry ?? [];
        // A different entry for each breakage, of the type kept or not.
        const entry = entries[at % Math.max(entries.length, 1)];
        if (entry === undefined || entry.resource === undefined) continue;
        breakage(entry);
        broken += 1;
        const want = anyOrder(JSON.stringify(copy), expression);
        if (want.startsWith("error")) refused += 1;
        const got = anyOrder(copy, expression);
        if (got !== want) differ.push(`${expression} on ${name}, entry ${at} broken by ${breakage}: ${got} against ${want}`);
      }
      for (const [at, breakage] of inside.entries()) {
        const copy = structuredClone(object);
        const entry = (copy.entry ?? []).find((item, idx) => idx >= at && item.resource !== undefined && whole(expression, item.resource.resourceType));
        if (entry === undefined) continue;
        breakage(entry.resource);
        broken += 1;
        const want = anyOrder(JSON.stringify(copy), expression);
        if (want.startsWith("error")) refused += 1;
        const got = anyOrder(copy, expression);
        if (got !== want) differ.push(`${expression} on ${name}, entry ${at} broken by ${breakage}: ${got} against ${want}`);
      }
    }
  }
  console.log(`resources at a route's end: ${compared} evaluations (${onRoute} on a route) on ${inputs.length} resources holding others, plain and held, and ${broken} of broken entries (${refused} refused), compared with the JSON text: ${differ.length} differ`);
  assert.deepEqual(differ.slice(0, 10), []);
  assert.ok(onRoute > 500 && broken > 1_000 && refused > 300 && refused < broken - 300, `${onRoute} on a route, ${broken} broken, ${refused} refused`);
  // A resource's type is read once: a getter answering otherwise the next time changes nothing.
  const shifty = () => {
    let reads = 0;
    const resource = Object.defineProperty({ gender: "male" }, "resourceType", { enumerable: true, get: () => (++reads === 1 ? "Observation" : "Patient") });
    return { resourceType: "Bundle", type: "collection", entry: [{ resource }] };
  };
  assert.notDeepEqual(evaluate(shifty(), "Bundle.entry.resource.ofType(Observation)").map((found) => found.resourceType), ["Patient"]);
  // What the expression does not read is not read: a resource only counted, another type's.
  const counted = { resourceType: "Bundle", type: "collection", entry: [{ resource: { resourceType: "Patient", nothing: 1 } }] };
  assert.deepEqual(evaluate(counted, "Bundle.entry.resource.count()"), [1]);
  assert.deepEqual(evaluate(counted, "Bundle.entry.resource.ofType(Observation)"), []);
  assert.equal(anyOrder(counted, "Bundle.entry.resource.ofType(Patient)"), "error 400");
});

test("resources held answer plain paths on their JSON as frozen objects, shared between calls, until freed or the engine restarts", async () => {
  const bundle = {
    resourceType: "Bundle",
    type: "collection",
    entry: [
      { resource: { resourceType: "Patient", id: "p", birthDate: "1970-01-01", _birthDate: { extension: [{ url: "http://example.org/x", valueString: "y" }] } } },
      { resource: { resourceType: "Observation", id: "o", status: "final", code: { text: "t" }, valueQuantity: { value: 1.50 } } },
    ],
  };
  const held = parseResource(bundle);
  const expression = "Bundle.entry.resource.ofType(Observation)";
  const first = evaluate(held, expression);
  const second = evaluate(held, expression);
  const third = evaluate(held, expression);
  assert.deepEqual(first, [bundle.entry[1].resource]);
  assert.deepEqual(second, first);
  assert.ok(Object.isFrozen(second[0]) && Object.isFrozen(second[0].code), "frozen");
  assert.equal(third[0], second[0], "the same object each time");
  assert.notEqual(second[0], bundle.entry[1].resource, "not the input's");
  const copy = structuredClone(third[0]);
  copy.status = "amended";
  assert.equal(evaluate(held, "Bundle.entry.resource.ofType(Observation).status")[0], "final");
  // A primitive with a companion is the engine's to answer, held or not: with no value, it
  // is still there.
  const patient = parseResource(bundle.entry[0].resource);
  for (let round = 0; round < 3; round++) {
    assert.deepEqual(evaluate(patient, "Patient.birthDate"), ["1970-01-01"]);
    assert.deepEqual(evaluate(patient, "Patient.birthDate.extension.value"), ["y"]);
  }
  const extension = { extension: [{ url: "http://example.org/x", valueString: "y" }] };
  const bare = {
    resourceType: "Patient",
    _birthDate: extension,
    _active: extension,
    name: [{ given: [null, "b"], _given: [extension, null] }],
    telecom: [{ _system: extension, value: "1" }, { system: "phone", value: "2" }],
  };
  const text = JSON.stringify(bare);
  const bareHeld = parseResource(bare);
  const expressions = ["Patient.birthDate", "Patient.birthDate.exists()", "Patient.active", "Patient.name.given", "Patient.name.given.first()", "Patient.telecom.where(system = 'phone').value", "Patient.telecom.where(system = 'phone').count()"];
  for (let round = 0; round < 3; round++) {
    for (const expression of expressions) assert.deepEqual(evaluate(bareHeld, expression), evaluate(text, expression), `${expression}, round ${round}`);
  }
  assert.deepEqual(evaluate(bareHeld, "Patient.birthDate"), [null]);
  bareHeld.free();
  // A resource of an engine since restarted is reported, whether it kept its JSON or not.
  const { restartEngine } = await import("../../npm/src/engine.js");
  const kept = parseResource(bundle.entry[0].resource);
  const notKept = parseResource(bundle.entry[0].resource);
  evaluate(kept, "Patient.id");
  evaluate(kept, "Patient.id");
  evaluate(notKept, "Patient.id");
  restartEngine("restarted by the test");
  for (const resource of [kept, notKept]) {
    for (const expression of ["Patient.id", "Patient.contained.count()"]) {
      assert.throws(() => evaluate(resource, expression), (err) => err instanceof FhirError && /before the engine restarted/.test(err.message), expression);
    }
  }
  held.free();
  patient.free();
  assert.throws(() => evaluate(held, expression), (err) => err instanceof FhirError && /freed/.test(err.message));
  assert.throws(() => evaluate(patient, "Patient.birthDate"), (err) => err instanceof FhirError && /freed/.test(err.message));
});

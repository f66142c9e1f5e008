// Benchmark: compiled FHIRPath expressions over every Synthea resource of the matching type,
// in one Node process: Hearth (resources held by the engine, and plain objects or JSON text
// given per call), fhirpath.js (R4 model) and @medplum/core. Prints evaluations per second and
// ratios. Run with `make bench`.
import { readFileSync, readdirSync } from "node:fs";
import { performance } from "node:perf_hooks";
import fhirpath from "fhirpath";
import r4Model from "fhirpath/fhir-context/r4/index.js";
import { parseFhirPath, evalFhirPathTyped, toTypedValue } from "@medplum/core";
import { compile, parseResource, FhirResourceSet } from "hearth-fhir";
import { ROOT } from "../lib/paths.js";

const EXPRESSIONS = [
  ["Patient", "Patient.name.where(use = 'official').given.first()"],
  ["Patient", "Patient.birthDate"],
  ["Patient", "Patient.telecom.where(system = 'phone').value"],
  ["Patient", "Patient.address.city"],
  ["Observation", "Observation.code.coding.where(system = 'http://loinc.org').code"],
  ["Observation", "Observation.value.ofType(Quantity).value"],
  ["Observation", "Observation.subject.reference"],
  ["Observation", "Observation.component.code.coding.code"],
  ["Condition", "Condition.clinicalStatus.coding.code"],
  ["Encounter", "Encounter.period.start"],
  ["Encounter", "Encounter.type.coding.display"],
  ["Procedure", "Procedure.code.coding.exists(system = 'http://snomed.info/sct')"],
  ["Patient", "Patient.identifier.where(type.coding.code = 'MR').value"],
  ["MedicationRequest", "MedicationRequest.medication.ofType(CodeableConcept).coding.code"],
  ["DiagnosticReport", "DiagnosticReport.result.count()"],
  ["Claim", "Claim.total.value > 100"],
];

// Whole resources as results: over each Synthea patient's Bundle, its Observations.
const BUNDLE_EXPRESSIONS = [["Bundle", "Bundle.entry.resource.ofType(Observation)"]];

const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const byType = new Map([["Bundle", []]]);
for (const name of readdirSync(`${corpus}/synthea`).filter((file) => file.endsWith(".json"))) {
  const bundle = JSON.parse(readFileSync(`${corpus}/synthea/${name}`, "utf8"));
  byType.get("Bundle").push(bundle);
  for (const entry of bundle.entry ?? []) {
    const resource = entry.resource;
    if (!byType.has(resource.resourceType)) byType.set(resource.resourceType, []);
    byType.get(resource.resourceType).push(resource);
  }
}

// Prepared inputs for each contender: held by Hearth, JSON text, plain objects, typed values.
const prepared = new Map();
for (const [type] of [...EXPRESSIONS, ...BUNDLE_EXPRESSIONS]) {
  if (prepared.has(type)) continue;
  const resources = byType.get(type) ?? [];
  prepared.set(type, {
    objects: resources,
    texts: resources.map((resource) => JSON.stringify(resource)),
    held: resources.map((resource) => parseResource(resource)),
    set: new FhirResourceSet(resources),
    typed: resources.map((resource) => toTypedValue(resource)),
  });
}

const contenders = {
  "Hearth (held resources)": (expression, type) => {
    const compiled = compile(expression);
    const { held } = prepared.get(type);
    return () => {
      let n = 0;
      for (const resource of held) n += compiled.evaluate(resource).length;
      return n;
    };
  },
  "Hearth (held set, one call)": (expression, type) => {
    const compiled = compile(expression);
    const { set } = prepared.get(type);
    return () => compiled.evaluateEach(set).reduce((n, result) => n + result.length, 0);
  },
  "Hearth (plain object per call)": (expression, type) => {
    const compiled = compile(expression);
    const { objects } = prepared.get(type);
    return () => {
      let n = 0;
      for (const object of objects) n += compiled.evaluate(object).length;
      return n;
    };
  },
  "Hearth (JSON text per call)": (expression, type) => {
    const compiled = compile(expression);
    const { texts } = prepared.get(type);
    return () => {
      let n = 0;
      for (const text of texts) n += compiled.evaluate(text).length;
      return n;
    };
  },
  "fhirpath.js 5.2.2 (R4 model)": (expression, type) => {
    const compiled = fhirpath.compile(expression, r4Model);
    const { objects } = prepared.get(type);
    return () => {
      let n = 0;
      for (const resource of objects) n += compiled(resource).length;
      return n;
    };
  },
  "@medplum/core 4.5.2": (expression, type) => {
    const atom = parseFhirPath(expression);
    const { typed } = prepared.get(type);
    return () => {
      let n = 0;
      for (const resource of typed) n += evalFhirPathTyped(atom, [resource], {}).length;
      return n;
    };
  },
};

/**
 * Evaluations per second over all expressions. The contenders take turns: 7 rounds, each giving
 * every contender one trial of passes over the whole set for at least 300 ms, and each keeps
 * its best trial. Taking turns spreads the machine's slow spells over all of them alike.
 */
function measureAll(contenders, expressions) {
  const entries = Object.entries(contenders).map(([name, makeRun]) => {
    const runs = expressions.map(([type, expression]) => ({ run: makeRun(expression, type), count: prepared.get(type).objects.length }));
    const evaluations = runs.reduce((sum, { count }) => sum + count, 0);
    const results = runs.map(({ run }) => run()); // warm-up, and results to compare
    return { name, runs, evaluations, results, perSecond: 0 };
  });
  for (let round = 0; round < 7; round += 1) {
    for (const entry of entries) {
      const start = performance.now();
      let passes = 0;
      let elapsed = 0;
      do {
        for (const { run } of entry.runs) run();
        passes += 1;
        elapsed = performance.now() - start;
      } while (elapsed < 300);
      entry.perSecond = Math.max(entry.perSecond, (passes * entry.evaluations) / (elapsed / 1000));
    }
  }
  return Object.fromEntries(entries.map(({ name, ...rest }) => [name, rest]));
}

const measured = measureAll(contenders, EXPRESSIONS);
const resourcesUsed = EXPRESSIONS.filter(([type], at, all) => all.findIndex(([other]) => other === type) === at).reduce((sum, [type]) => sum + prepared.get(type).objects.length, 0);
const report = (title, results) => {
  console.log(title);
  const fhirpathJs = results["fhirpath.js 5.2.2 (R4 model)"].perSecond;
  const medplum = results["@medplum/core 4.5.2"].perSecond;
  for (const [name, { perSecond, evaluations, results: sizes }] of Object.entries(results)) {
    console.log(
      `  ${name.padEnd(30)} ${Math.round(perSecond).toLocaleString("en").padStart(12)} evaluations/s` +
        `   ${(perSecond / fhirpathJs).toFixed(2).padStart(6)}x fhirpath.js   ${(perSecond / medplum).toFixed(2).padStart(6)}x medplum` +
        `   (${evaluations} per pass, result sizes ${sizes.join(",")})`,
    );
  }
};
report(`fhirpath bench: ${EXPRESSIONS.length} expressions over ${resourcesUsed} Synthea resources, node ${process.version}`, measured);
const bundles = measureAll(contenders, BUNDLE_EXPRESSIONS);
report(`whole resources as results: ${BUNDLE_EXPRESSIONS.map(([, expression]) => expression).join(", ")} over ${prepared.get("Bundle").objects.length} Synthea Bundles`, bundles);
// Both together: the evaluations of a pass of each, over the time of a pass of each.
const together = Object.fromEntries(
  Object.entries(measured).map(([name, some]) => {
    const other = bundles[name];
    const time = some.evaluations / some.perSecond + other.evaluations / other.perSecond;
    return [name, { perSecond: (some.evaluations + other.evaluations) / time, evaluations: some.evaluations + other.evaluations, results: [...some.results, ...other.results] }];
  }),
);
report(`all ${EXPRESSIONS.length + BUNDLE_EXPRESSIONS.length} expressions, one pass of each`, together);

// Handles freed as they go: 500,000 parseResource calls in one synchronous loop (no garbage
// collection can return engine memory during it), with the rate of each 100,000 and the Wasm
// memory at the end: steady rate, bounded memory.
{
  const { engineMemoryBytes } = await import("hearth-fhir");
  const lines = [...new Set(EXPRESSIONS.map(([type]) => type))].flatMap((type) => prepared.get(type).objects.map((o) => JSON.stringify(o)));
  const family = compile("name.family");
  const before = engineMemoryBytes();
  const rates = [];
  let at = 0;
  for (let round = 0; round < 5; round++) {
    const start = performance.now();
    for (let i = 0; i < 100_000; i++) {
      const resource = parseResource(lines[at++ % lines.length]);
      family.evaluate(resource);
      resource.free();
    }
    rates.push(Math.round(100_000 / ((performance.now() - start) / 1000)));
  }
  const mb = (bytes) => (bytes / 1048576).toFixed(1);
  console.log(
    `parseResource + evaluate + free, 500,000 in one loop: ${rates.join(", ")} per second by 100,000 (last/first ${(rates[4] / rates[0]).toFixed(2)}); Wasm memory ${mb(before)} → ${mb(engineMemoryBytes())} MB`,
  );
}

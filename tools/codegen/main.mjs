// `make codegen`: regenerates the R4 model tables (Rust) and resource types (TypeScript) from
// the official definitions. With --check, writes nothing and fails when a committed file differs.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadModel, loadExtensions, loadVitalSigns, loadCompartments } from "./definitions.mjs";
import { typesRs, constraintsRs, valueSetsRs, searchParamsRs, extensionsRs, vitalSignsRs, compartmentsRs, modRs } from "./rust.mjs";
import { typescript } from "./typescript.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const check = process.argv.includes("--check");
const model = loadModel();
const extensions = loadExtensions(new Map(model.types.map((type) => [type.name, type.id])));
const vitalSigns = loadVitalSigns();

const outputs = {
  "engine/src/model/generated/mod.rs": modRs(),
  "engine/src/model/generated/types.rs": typesRs(model),
  "engine/src/model/generated/constraints.rs": constraintsRs(model),
  "engine/src/model/generated/valuesets.rs": valueSetsRs(model),
  "engine/src/model/generated/search_params.rs": searchParamsRs(model),
  "engine/src/model/generated/extensions.rs": extensionsRs(extensions),
  "engine/src/model/generated/vital_signs.rs": vitalSignsRs(vitalSigns),
  "engine/src/model/generated/compartments.rs": compartmentsRs(loadCompartments()),
  "npm/src/generated/r4.d.ts": typescript(model),
};

let stale = [];
for (const [path, text] of Object.entries(outputs)) {
  const full = root + path;
  const current = existsSync(full) ? readFileSync(full, "utf8") : null;
  if (current === text) continue;
  if (check) {
    stale.push(path);
  } else {
    mkdirSync(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    writeFileSync(full, text);
    console.log(`codegen: wrote ${path}`);
  }
}
const resources = model.types.filter((t) => t.kind === "Resource" && !t.isAbstract).length;
console.log(
  `codegen: ${model.types.length} types (${resources} resources), ` +
    `${model.types.reduce((n, t) => n + t.elements.length, 0)} elements, ${model.constraints.length} constraints, ` +
    `${model.valueSets.length} required value sets (${model.valueSets.filter((vs) => vs.codes).length} expanded), ` +
    `${model.searchParams.length} search parameters, ${extensions.length} extensions, ` +
    `${vitalSigns.codes.length} vital sign codes`,
);
if (stale.length) {
  console.error(`codegen: generated files differ from the definitions: ${stale.join(", ")}; run make codegen`);
  process.exit(1);
}

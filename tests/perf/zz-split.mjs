import { readFileSync, readdirSync } from "node:fs";
import { compile, FhirResourceSet } from "hearth-fhir";
const EXPRESSIONS = [
  ["Patient", "Patient.name.where(use = 'official').given.first()"], ["Patient", "Patient.birthDate"],
  ["Patient", "Patient.telecom.where(system = 'phone').value"], ["Patient", "Patient.address.city"],
  ["Observation", "Observation.code.coding.where(system = 'http://loinc.org').code"], ["Observation", "Observation.value.ofType(Quantity).value"],
  ["Observation", "Observation.subject.reference"], ["Observation", "Observation.component.code.coding.code"],
  ["Condition", "Condition.clinicalStatus.coding.code"], ["Encounter", "Encounter.period.start"],
  ["Encounter", "Encounter.type.coding.display"], ["Procedure", "Procedure.code.coding.exists(system = 'http://snomed.info/sct')"],
];
const byType = new Map();
for (const name of readdirSync("/work/shared/corpus/synthea").filter((f) => f.endsWith(".json"))) {
  for (const e of JSON.parse(readFileSync(`/work/shared/corpus/synthea/${name}`, "utf8")).entry) { const r = e.resource; if (!byType.has(r.resourceType)) byType.set(r.resourceType, []); byType.get(r.resourceType).push(r); }
}
const sets = new Map(); for (const [t] of EXPRESSIONS) if (!sets.has(t)) sets.set(t, new FhirResourceSet(byType.get(t)));
const runs = EXPRESSIONS.map(([t, e]) => { const c = compile(e); const s = sets.get(t); return () => c.evaluateEach(s); });
const parse = JSON.parse; let parseMs = 0; let bytes = 0;
JSON.parse = (text) => { const t0 = performance.now(); const r = parse(text); parseMs += performance.now() - t0; bytes += text.length; return r; };
for (let i = 0; i < 50; i++) for (const r of runs) r();
parseMs = 0; bytes = 0;
const start = performance.now(); let passes = 0;
while (performance.now() - start < 5000) { for (const r of runs) r(); passes++; }
const total = performance.now() - start;
console.log("per pass ms", (total / passes).toFixed(3), "JSON.parse ms", (parseMs / passes).toFixed(3), "text bytes", Math.round(bytes / passes));

// The benchmark data set: Synthea patients copied and varied to any size (11 resources per
// patient: the patient, 2 encounters, 2 conditions, 6 observations with quantities, and 20
// organizations), deterministic ids, and the twelve benchmark queries over values that exist
// in it. Shared by the service benchmark (Node) and the store benchmark (IndexedDB).
import { readFileSync, readdirSync } from "node:fs";

/**
 * @param {{ patients: number, corpus: string, shape?: { encounters: number, conditions: number, observations: number } }} options
 *   `shape`: how many of each kind a patient gets (2, 2 and 6 unless given; a template with fewer
 *   gives what it has).
 * @returns {{ resources: object[], texts: string[], jsonBytes: number, queries: [string, string][], uuid: (name: string) => string }}
 */
export function buildDataset({ patients: PATIENTS, corpus, shape = { encounters: 2, conditions: 2, observations: 6 } }) {

  // --- data ---------------------------------------------------------------------------------
  const templates = [];
  for (const name of readdirSync(`${corpus}/synthea`).filter((file) => file.endsWith(".json")).sort()) {
    const bundle = JSON.parse(readFileSync(`${corpus}/synthea/${name}`, "utf8"));
    const of = (type) => bundle.entry.map((entry) => entry.resource).filter((resource) => resource.resourceType === type);
    const patient = of("Patient")[0];
    if (!patient) continue;
    templates.push({
      patient,
      encounters: of("Encounter").slice(0, shape.encounters),
      conditions: of("Condition").slice(0, shape.conditions),
      observations: of("Observation").filter((o) => o.valueQuantity).slice(0, shape.observations),
    });
  }

  /** A copy of `resource` with references pointed at this data set's resources. */
  function relink(resource, map) {
    const walk = (value) => {
      if (Array.isArray(value)) {
        const list = value.map(walk).filter((item) => item !== undefined);
        return list.length > 0 ? list : undefined;
      }
      if (value && typeof value === "object") {
        const out = {};
        for (const [key, inner] of Object.entries(value)) {
          if (key === "reference" && typeof inner === "string") {
            const target = map(inner);
            if (target === undefined) return undefined;
            out.reference = target;
          } else {
            const mapped = walk(inner);
            if (mapped !== undefined) out[key] = mapped;
          }
        }
        return Object.keys(out).length > 0 ? out : undefined;
      }
      return value;
    };
    return walk(resource);
  }

  // Ids as servers give them: random-looking UUIDs (the same on every run).
  let seed = 0x9e3779b9;
  const hex32 = () => {
    seed ^= seed << 13;
    seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    seed >>>= 0;
    return seed.toString(16).padStart(8, "0");
  };
  const uuids = new Map();
  const uuid = (name) => {
    if (!uuids.has(name)) {
      const h = hex32() + hex32() + hex32() + hex32();
      uuids.set(name, `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`);
    }
    return uuids.get(name);
  };

  const resources = [];
  for (let o = 0; o < 20; o += 1) {
    resources.push({ resourceType: "Organization", id: uuid(`org${o}`), name: `Clinic ${o}`, identifier: [{ system: "urn:bench:org", value: `${o}` }] });
  }
  for (let i = 0; i < PATIENTS; i += 1) {
    const template = templates[i % templates.length];
    const pid = uuid(`pat${i}`);
    const ids = new Map([[`urn:uuid:${template.patient.id}`, `Patient/${pid}`]]);
    const map = (reference) => {
      if (ids.has(reference)) return ids.get(reference);
      if (reference.startsWith("Organization?") || reference.startsWith("Organization/")) return `Organization/${uuid(`org${i % 20}`)}`;
      return undefined; // practitioners and locations are not part of this data set
    };
    const patient = relink(template.patient, map);
    patient.id = pid;
    patient.name = (patient.name ?? []).map((name) => ({ ...name, family: `${name.family ?? "Doe"}${i}` }));
    if (patient.birthDate) {
      const shifted = Number(patient.birthDate.slice(0, 4)) - (i % 40);
      patient.birthDate = `${shifted}${patient.birthDate.slice(4)}`.replace("-02-29", "-02-28");
    }
    patient.managingOrganization = { reference: `Organization/${uuid(`org${i % 20}`)}` };
    delete patient.text;
    resources.push(patient);
    template.encounters.forEach((encounter, k) => ids.set(`urn:uuid:${encounter.id}`, `Encounter/${uuid(`enc${i}-${k}`)}`));
    for (const [list, prefix] of [[template.encounters, "enc"], [template.conditions, "cond"], [template.observations, "obs"]]) {
      list.forEach((resource, k) => {
        const copy = relink(resource, map);
        copy.id = uuid(`${prefix}${i}-${k}`);
        delete copy.text;
        resources.push(copy);
      });
    }
  }
  const texts = resources.map((resource) => JSON.stringify(resource));
  const jsonBytes = texts.reduce((sum, text) => sum + Buffer.byteLength(text), 0);

  // Values that exist in the data, for the queries.
  const sampleFamily = resources.find((r) => r.resourceType === "Patient" && r.id === uuid("pat17")).name[0].family;
  const loincs = new Map();
  for (const r of resources) {
    if (r.resourceType === "Observation") {
      const code = r.code?.coding?.[0]?.code;
      loincs.set(code, (loincs.get(code) ?? 0) + 1);
    }
  }
  const commonLoinc = [...loincs.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const rareLoinc = [...loincs.entries()].sort((a, b) => a[1] - b[1])[0][0];
  const years = new Map();
  for (const r of resources) {
    const year = r.resourceType === "Observation" ? r.effectiveDateTime?.slice(0, 7) : undefined;
    if (year) years.set(year, (years.get(year) ?? 0) + 1);
  }
  const busyMonth = [...years.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const [busyYear, busyMonthNumber] = busyMonth.split("-").map(Number);
  const nextMonth = busyMonthNumber === 12 ? `${busyYear + 1}-01` : `${busyYear}-${String(busyMonthNumber + 1).padStart(2, "0")}`;
  const conditionCode = resources.find((r) => r.resourceType === "Condition")?.code?.coding?.[0]?.code;

  const queries = [
    ["string", `Patient?family=${sampleFamily.slice(0, -2)}&_count=1000`],
    ["token", `Observation?code=http://loinc.org|${commonLoinc}&_count=1000`],
    ["date range", `Observation?date=ge${busyMonth}-01&date=lt${nextMonth}-01&_count=1000`],
    ["quantity", "Observation?value-quantity=gt80|http://unitsofmeasure.org|kg&_count=1000"],
    ["reference", `Observation?subject=Patient/${uuid("pat17")}&_count=1000`],
    ["chain", `Observation?subject:Patient.family=${sampleFamily}&_count=1000`],
    ["_has", `Patient?_has:Observation:subject:code=${rareLoinc}&_count=1000`],
    ["_include", `Observation?subject=Patient/${uuid("pat42")}&_include=Observation:subject&_count=1000`],
    ["_sort", "Patient?_sort=birthdate&_count=20"],
    ["_count", "Observation?_count=10"],
    ["token, Condition", `Condition?code=${conditionCode}&_count=1000`],
    ["two parameters", "Patient?gender=female&birthdate=lt1970&_count=1000"],
  ];
  return { resources, texts, jsonBytes, queries, uuid };
}

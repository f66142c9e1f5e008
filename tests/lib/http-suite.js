// The HTTP conformance cases of Hearth's REST API: every interaction, header and error path of
// the R4 RESTful API that Hearth supports, every search parameter type with its modifiers and
// prefixes at their boundaries, chains, _has, includes, sorting, paging under concurrent writes
// and transaction atomicity. `runHttpSuite(base, send)` runs them through any fetch-like
// function: `hearth serve` over HTTP, `FhirStore.fetch` in a page, a Service Worker endpoint.
import assert from "node:assert/strict";

const TEXT = { status: "generated", div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' };
const LOINC = "http://loinc.org";
const UCUM = "http://unitsofmeasure.org";
const VS_CATEGORY = [{ coding: [{ system: "http://terminology.hl7.org/CodeSystem/observation-category", code: "vital-signs" }] }];
const LAB_CATEGORY = [{ coding: [{ system: "http://terminology.hl7.org/CodeSystem/observation-category", code: "laboratory" }] }];

/** The data every search case runs against. */
function fixture() {
  const list = [];
  const add = (resource) => list.push({ text: TEXT, ...resource });
  add({ resourceType: "Organization", id: "o1", name: "Acme Health", active: true, partOf: { reference: "Organization/o2" }, address: [{ city: "Boston" }] });
  add({ resourceType: "Organization", id: "o2", name: "Beta Care", active: false });
  add({ resourceType: "Practitioner", id: "pr1", name: [{ family: "Osler", given: ["William"] }], gender: "male" });
  add({ resourceType: "Practitioner", id: "pr2", name: [{ family: "Nightingale", given: ["Florence"] }], gender: "female" });
  add({
    resourceType: "Patient", id: "p1", active: true, gender: "female", birthDate: "1980-05-12",
    identifier: [{ type: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: "MR" }], text: "Medical record" }, system: "http://ids", value: "A1" }],
    name: [{ use: "official", family: "Müller", given: ["Anna", "Maria"] }],
    telecom: [{ system: "phone", value: "555-1000" }, { system: "email", value: "anna@example.org" }],
    address: [{ line: ["1 Main St"], city: "Boston", state: "MA", postalCode: "02110", country: "US" }],
    generalPractitioner: [{ reference: "Practitioner/pr1" }], managingOrganization: { reference: "Organization/o1" },
  });
  add({
    resourceType: "Patient", id: "p2", active: false, gender: "male", birthDate: "1990",
    identifier: [{ system: "http://ids", value: "B2" }, { system: "http://other", value: "A1" }],
    name: [{ family: "Muller", given: ["Bob"] }], address: [{ city: "Paris", country: "FR" }],
    generalPractitioner: [{ reference: "Practitioner/pr2" }], managingOrganization: { reference: "Organization/o2" },
  });
  add({ resourceType: "Patient", id: "p3", gender: "other", birthDate: "1975-01-01", name: [{ family: "Smith", given: ["Carl"] }], deceasedDateTime: "2020-02-03T04:05:06Z" });
  add({ resourceType: "Patient", id: "p4", gender: "unknown", name: [{ family: "O'Brien", given: ["Dana"], text: "Dana O'Brien" }], address: [{ city: "São Paulo" }] });
  const obs = (id, patient, status, code, value, effective, category = VS_CATEGORY, extra = {}) =>
    add({ resourceType: "Observation", id, status, category, code: { coding: [{ system: LOINC, code, display: `Code ${code}` }], text: `Measured ${code}` }, subject: { reference: `Patient/${patient}` }, ...effective, valueQuantity: value, ...extra });
  obs("ob1", "p1", "final", "8867-4", { value: 72, unit: "/min", system: UCUM, code: "/min" }, { effectiveDateTime: "2021-03-04T10:00:00Z" }, VS_CATEGORY, { performer: [{ reference: "Practitioner/pr1" }] });
  obs("ob2", "p1", "final", "29463-7", { value: 70, unit: "kg", system: UCUM, code: "kg" }, { effectivePeriod: { start: "2021-01-01", end: "2021-01-31" } });
  obs("ob3", "p2", "final", "29463-7", { value: 70500, unit: "g", system: UCUM, code: "g" }, { effectiveDateTime: "2022-01-01" });
  obs("ob4", "p2", "preliminary", "8867-4", { value: 140.0, unit: "/min", system: UCUM, code: "/min" }, { effectiveDateTime: "2022-06-01T08:30:00+02:00" });
  obs("ob5", "p3", "amended", "2339-0", { value: 5.5, unit: "mmol/L", system: UCUM, code: "mmol/L" }, { effectiveDateTime: "2019-12-31T23:59:59Z" }, LAB_CATEGORY);
  obs("ob6", "p3", "final", "2339-0", { value: 99, unit: "mg/dL", system: UCUM, code: "mg/dL" }, { effectiveDateTime: "2020-01-01T00:00:00Z" }, LAB_CATEGORY);
  add({ resourceType: "Condition", id: "c1", subject: { reference: "Patient/p1" }, code: { coding: [{ system: "http://snomed.info/sct", code: "44054006", display: "Diabetes" }] }, onsetDateTime: "2015-06", clinicalStatus: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/condition-clinical", code: "active" }] }, verificationStatus: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/condition-ver-status", code: "confirmed" }] } });
  add({ resourceType: "Condition", id: "c2", subject: { reference: "Patient/p2" }, code: { coding: [{ system: "http://snomed.info/sct", code: "38341003", display: "Hypertension" }], text: "High blood pressure" }, onsetDateTime: "2018-01-01", clinicalStatus: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/condition-clinical", code: "resolved" }] }, verificationStatus: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/condition-ver-status", code: "confirmed" }] }, abatementDateTime: "2019-01-01" });
  add({ resourceType: "Encounter", id: "e1", status: "finished", class: { system: "http://terminology.hl7.org/CodeSystem/v3-ActCode", code: "AMB" }, subject: { reference: "Patient/p1" }, participant: [{ individual: { reference: "Practitioner/pr1" } }], period: { start: "2021-03-04T09:00:00Z", end: "2021-03-04T11:00:00Z" }, serviceProvider: { reference: "Organization/o1" } });
  add({ resourceType: "Encounter", id: "e2", status: "in-progress", class: { system: "http://terminology.hl7.org/CodeSystem/v3-ActCode", code: "IMP" }, subject: { reference: "Patient/p2" }, period: { start: "2022-06-01" } });
  add({ resourceType: "RiskAssessment", id: "r1", status: "final", subject: { reference: "Patient/p1" }, prediction: [{ probabilityDecimal: 0.25 }] });
  add({ resourceType: "RiskAssessment", id: "r2", status: "final", subject: { reference: "Patient/p2" }, prediction: [{ probabilityDecimal: 0.7 }] });
  add({ resourceType: "RiskAssessment", id: "r3", status: "final", subject: { reference: "Patient/p3" }, prediction: [{ probabilityDecimal: 100 }] });
  add({ resourceType: "ValueSet", id: "v1", status: "active", name: "V1", url: "http://acme.org/fhir/ValueSet/123", version: "1.0" });
  add({ resourceType: "ValueSet", id: "v2", status: "draft", name: "V2", url: "http://acme.org/fhir/ValueSet/124" });
  add({ resourceType: "ValueSet", id: "v3", status: "active", name: "V3", url: "urn:oid:1.2.3" });
  add({ resourceType: "MedicationRequest", id: "m1", status: "active", intent: "order", subject: { reference: "Patient/p1" }, medicationCodeableConcept: { coding: [{ system: "http://www.nlm.nih.gov/research/umls/rxnorm", code: "197361" }], text: "Amlodipine" }, requester: { reference: "Practitioner/pr2" }, authoredOn: "2021-05-05" });
  return list;
}

// --- the cases ------------------------------------------------------------------------------
const cases = [];
/** A search case: the matches (type/id, or id for the searched type) in any order. */
const S = (group, url, expected) => cases.push({ group, name: url, method: "GET", path: url, expect: { status: 200, matches: expected } });
/** A search case whose matches must come in this order. */
const O = (group, url, expected) => cases.push({ group, name: url, method: "GET", path: url, expect: { status: 200, ordered: expected } });
/** A request that must fail with this status and issue code. */
const E = (group, name, method, path, status, code, { headers = {}, body } = {}) =>
  cases.push({ group, name, method, path, headers, body, expect: { status, code } });
/** Any request with a check of its own. */
const C = (group, name, method, path, status, check, { headers = {}, body } = {}) =>
  cases.push({ group, name, method, path, headers, body, expect: { status, check } });

// string
for (const [q, ids] of [
  ["Patient?family=muller", ["p1", "p2"]], ["Patient?family=MULLER", ["p1", "p2"]], ["Patient?family=mül", ["p1", "p2"]],
  ["Patient?family=Mu", ["p1", "p2"]], ["Patient?family=muller2", []], ["Patient?family:exact=Müller", ["p1"]],
  ["Patient?family:exact=Muller", ["p2"]], ["Patient?family:exact=müller", []], ["Patient?family:exact=Mül", []],
  ["Patient?family:contains=ULL", ["p1", "p2"]], ["Patient?family:contains=brie", ["p4"]], ["Patient?name=anna", ["p1"]],
  ["Patient?name=maria", ["p1"]], ["Patient?name=dana o", ["p4"]], ["Patient?given=bob", ["p2"]], ["Patient?given=anna,bob", ["p1", "p2"]],
  ["Patient?family=muller&given=bob", ["p2"]], ["Patient?family=o'brien", ["p4"]], ["Patient?address-city=sao", ["p4"]],
  ["Patient?address-city=SÃO PAULO", ["p4"]], ["Patient?address=1 main", ["p1"]], ["Patient?address=main", []], ["Patient?address-postalcode=021", ["p1"]],
  ["Patient?address-country=fr", ["p2"]], ["Patient?address-state=ma", ["p1"]], ["Organization?name=acme", ["o1"]],
  ["Organization?name:contains=care", ["o2"]], ["Practitioner?name=florence", ["pr2"]], ["Patient?phonetic=x", []],
  ["Patient?family=" + encodeURIComponent("müller"), ["p1", "p2"]], ["Patient?name:exact=Anna", ["p1"]],
]) S("string", q, ids);
// token
for (const [q, ids] of [
  ["Patient?gender=female", ["p1"]], ["Patient?gender=male,female", ["p1", "p2"]], ["Patient?gender:not=female", ["p2", "p3", "p4"]],
  ["Patient?gender:not=female&gender:not=male", ["p3", "p4"]], ["Patient?gender=Female", []], ["Patient?identifier=http://ids|A1", ["p1"]],
  ["Patient?identifier=A1", ["p1", "p2"]], ["Patient?identifier=http://other|A1", ["p2"]], ["Patient?identifier=http://ids|", ["p1", "p2"]],
  ["Patient?identifier=|A1", []], ["Patient?identifier=http://nowhere|A1", []],
  ["Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|A1", ["p1"]],
  ["Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|B2", []], ["Patient?identifier:text=medical", ["p1"]],
  ["Patient?active=true", ["p1"]], ["Patient?active=false", ["p2"]], ["Patient?active:not=true", ["p2", "p3", "p4"]],
  ["Patient?telecom=555-1000", ["p1"]], ["Patient?telecom=phone|555-1000", ["p1"]], ["Patient?email=anna@example.org", ["p1"]],
  ["Patient?phone=555-1000", ["p1"]], ["Patient?_id=p1", ["p1"]], ["Patient?_id=p1,p3", ["p1", "p3"]], ["Patient?_id=nope", []],
  ["Observation?code=8867-4", ["ob1", "ob4"]], ["Observation?code=http://loinc.org|8867-4", ["ob1", "ob4"]],
  ["Observation?code=http://snomed.info/sct|8867-4", []], ["Observation?code=http://loinc.org|", ["ob1", "ob2", "ob3", "ob4", "ob5", "ob6"]],
  ["Observation?code:text=measured 2", ["ob2", "ob3", "ob5", "ob6"]], ["Observation?code:text=code 886", ["ob1", "ob4"]],
  ["Observation?code:not=8867-4", ["ob2", "ob3", "ob5", "ob6"]], ["Observation?status=final", ["ob1", "ob2", "ob3", "ob6"]],
  ["Observation?status=final,amended", ["ob1", "ob2", "ob3", "ob5", "ob6"]], ["Observation?status:not=final", ["ob4", "ob5"]],
  ["Observation?category=laboratory", ["ob5", "ob6"]], ["Observation?category=vital-signs&code=29463-7", ["ob2", "ob3"]],
  ["Observation?status:in=http://hl7.org/fhir/ValueSet/observation-status", []],
  ["Condition?clinical-status=active", ["c1"]], ["Condition?code=http://snomed.info/sct|38341003", ["c2"]],
  ["Condition?code:text=high blood", ["c2"]], ["Condition?code:text=diab", ["c1"]], ["Encounter?class=AMB", ["e1"]],
  ["Encounter?status=in-progress", ["e2"]], ["MedicationRequest?code=197361", ["m1"]], ["MedicationRequest?code:text=amlo", ["m1"]],
  ["ValueSet?status=active", ["v1", "v3"]], ["ValueSet?version=1.0", ["v1"]], ["Organization?active=true", ["o1"]],
  ["Practitioner?gender=female", ["pr2"]], ["Patient?_id:missing=false", ["p1", "p2", "p3", "p4"]],
]) S("token", q, ids);
// date
for (const [q, ids] of [
  ["Patient?birthdate=1980", ["p1"]], ["Patient?birthdate=1980-05", ["p1"]], ["Patient?birthdate=1980-05-12", ["p1"]],
  ["Patient?birthdate=1980-05-11", []], ["Patient?birthdate=1980-05-13", []], ["Patient?birthdate=eq1980-05-12", ["p1"]],
  ["Patient?birthdate=ne1980-05-12", ["p2", "p3"]], ["Patient?birthdate=gt1980-05-12", ["p2"]], ["Patient?birthdate=gt1980-05-11", ["p1", "p2"]],
  ["Patient?birthdate=ge1980-05-12", ["p1", "p2"]], ["Patient?birthdate=ge1980-05-13", ["p2"]], ["Patient?birthdate=lt1980-05-12", ["p3"]],
  ["Patient?birthdate=lt1980-05-13", ["p1", "p3"]], ["Patient?birthdate=le1980-05-12", ["p1", "p3"]], ["Patient?birthdate=le1980-05-11", ["p3"]],
  ["Patient?birthdate=sa1980-05-11", ["p1", "p2"]], ["Patient?birthdate=sa1980-05-12", ["p2"]], ["Patient?birthdate=eb1980-05-13", ["p1", "p3"]],
  ["Patient?birthdate=eb1980-05-12", ["p3"]], ["Patient?birthdate=ap1980-05-15", ["p1"]], ["Patient?birthdate=1990-06-15", []],
  ["Patient?birthdate=ge1990-06-15", ["p2"]], ["Patient?birthdate=lt1990-06-15", ["p1", "p2", "p3"]], ["Patient?birthdate=1990", ["p2"]],
  ["Patient?birthdate=ge1975&birthdate=lt1985", ["p1", "p3"]], ["Patient?birthdate:missing=true", ["p4"]],
  ["Patient?death-date=2020-02-03", ["p3"]], ["Patient?death-date=2020-02-03T04:05:06Z", ["p3"]], ["Patient?death-date=2020-02-03T05:05:06%2B01:00", ["p3"]],
  ["Patient?death-date=2020-02-03T04:05:07Z", []], ["Observation?date=2021", ["ob1", "ob2"]], ["Observation?date=2021-01", ["ob2"]],
  ["Observation?date=2021-01-15", []], ["Observation?date=ge2021-01-15&date=le2021-01-15", ["ob2"]], ["Observation?date=gt2021-12-31", ["ob3", "ob4"]],
  ["Observation?date=2022-06-01T06:30:00Z", ["ob4"]], ["Observation?date=2022-06-01", ["ob4"]], ["Observation?date=lt2020", ["ob5"]],
  ["Observation?date=2019-12-31T23:59:59Z", ["ob5"]], ["Observation?date=2020-01-01", ["ob6"]], ["Observation?date=sa2021-01-31", ["ob1", "ob3", "ob4"]],
  ["Observation?date=eb2021-01-01", ["ob5", "ob6"]], ["Encounter?date=2021-03-04", ["e1"]], ["Encounter?date=ge2023", ["e2"]],
  ["Encounter?date=2022", []], ["Condition?onset-date=2015", ["c1"]], ["Condition?onset-date=2015-06-15", []],
  ["Condition?abatement-date=lt2020", ["c2"]], ["MedicationRequest?authoredon=2021-05-05", ["m1"]],
  ["Patient?_lastUpdated=gt2000-01-01", ["p1", "p2", "p3", "p4"]], ["Patient?_lastUpdated=lt2000-01-01", []],
]) S("date", q, ids);
// number
for (const [q, ids] of [
  ["RiskAssessment?probability=0.25", ["r1"]], ["RiskAssessment?probability=0.250", ["r1"]], ["RiskAssessment?probability=0.3", ["r1"]],
  ["RiskAssessment?probability=0.26", []], ["RiskAssessment?probability=0.7", ["r2"]], ["RiskAssessment?probability=gt0.25", ["r2", "r3"]],
  ["RiskAssessment?probability=ge0.25", ["r1", "r2", "r3"]], ["RiskAssessment?probability=lt0.7", ["r1"]], ["RiskAssessment?probability=le0.7", ["r1", "r2"]],
  ["RiskAssessment?probability=ne0.7", ["r1", "r3"]], ["RiskAssessment?probability=ap0.65", ["r2"]], ["RiskAssessment?probability=100", ["r3"]],
  ["RiskAssessment?probability=1e2", ["r3"]], ["RiskAssessment?probability=gt99", ["r3"]], ["RiskAssessment?probability=sa0.7", ["r3"]],
  ["RiskAssessment?probability=eb0.7", ["r1"]],
]) S("number", q, ids);
// quantity
for (const [q, ids] of [
  ["Observation?value-quantity=70|http://unitsofmeasure.org|kg", ["ob2"]], ["Observation?value-quantity=70000||g", ["ob2"]],
  ["Observation?value-quantity=70.5|http://unitsofmeasure.org|kg", ["ob3"]], ["Observation?value-quantity=gt69|http://unitsofmeasure.org|kg", ["ob2", "ob3"]],
  ["Observation?value-quantity=ge70.5|http://unitsofmeasure.org|kg", ["ob3"]], ["Observation?value-quantity=le70000||g", ["ob2"]],
  ["Observation?value-quantity=lt70000||g", []], ["Observation?value-quantity=72", ["ob1"]], ["Observation?value-quantity=140", ["ob4"]],
  ["Observation?value-quantity=gt100", ["ob3", "ob4"]], ["Observation?value-quantity=ap70", ["ob1", "ob2"]], ["Observation?value-quantity=ne72||/min", ["ob4"]],
  ["Observation?value-quantity=5.5|http://unitsofmeasure.org|mmol/L", ["ob5"]], ["Observation?value-quantity=gt50|http://unitsofmeasure.org|mg/dL", ["ob6"]],
  ["Observation?value-quantity=0.99|http://unitsofmeasure.org|g/L", ["ob6"]], ["Observation?value-quantity=72|http://example.org|beats", []],
]) S("quantity", q, ids);
// reference
for (const [q, ids] of [
  ["Observation?subject=Patient/p1", ["ob1", "ob2"]], ["Observation?subject=p1", ["ob1", "ob2"]], ["Observation?subject:Patient=p1", ["ob1", "ob2"]],
  ["Observation?subject:Group=p1", []], ["Observation?patient=p2", ["ob3", "ob4"]], ["Observation?subject=Patient/p1,Patient/p3", ["ob1", "ob2", "ob5", "ob6"]],
  ["Observation?performer=Practitioner/pr1", ["ob1"]], ["Observation?subject=Patient/nope", []], ["Patient?organization=Organization/o1", ["p1"]],
  ["Patient?general-practitioner=pr2", ["p2"]], ["Patient?organization:missing=true", ["p3", "p4"]], ["Patient?organization:missing=false", ["p1", "p2"]],
  ["Encounter?practitioner=pr1", ["e1"]], ["Encounter?service-provider=Organization/o1", ["e1"]], ["Organization?partof=o2", ["o1"]],
  ["MedicationRequest?requester=Practitioner/pr2", ["m1"]], ["Condition?patient=p2", ["c2"]], ["RiskAssessment?subject=p3", ["r3"]],
]) S("reference", q, ids);
// uri
for (const [q, ids] of [
  ["ValueSet?url=http://acme.org/fhir/ValueSet/123", ["v1"]], ["ValueSet?url=http://acme.org/fhir/ValueSet/12", []],
  ["ValueSet?url:below=http://acme.org/fhir", ["v1", "v2"]], ["ValueSet?url:below=http://acme.org/fhir/ValueSet/123", ["v1"]],
  ["ValueSet?url:below=http://other.org", []], ["ValueSet?url:above=http://acme.org/fhir/ValueSet/123/_history/5", ["v1"]],
  ["ValueSet?url:above=http://acme.org/fhir/ValueSet", []], ["ValueSet?url=urn:oid:1.2.3", ["v3"]], ["ValueSet?url:missing=false", ["v1", "v2", "v3"]],
]) S("uri", q, ids);
// composite
for (const [q, ids] of [
  ["Observation?code-value-quantity=http://loinc.org|8867-4$gt100", ["ob4"]], ["Observation?code-value-quantity=8867-4$lt100", ["ob1"]],
  ["Observation?code-value-quantity=8867-4$lt100,29463-7$gt70000||g", ["ob1", "ob3"]], ["Observation?code-value-quantity=29463-7$72", []],
  ["Observation?code-value-quantity=http://loinc.org|29463-7$70|http://unitsofmeasure.org|kg", ["ob2"]],
]) S("composite", q, ids);
// chains and _has
for (const [q, ids] of [
  ["Observation?subject:Patient.name=anna", ["ob1", "ob2"]], ["Observation?subject.gender=male", ["ob3", "ob4"]],
  ["Observation?patient.birthdate=lt1980", ["ob5", "ob6"]], ["Observation?subject:Patient.organization.name=acme", ["ob1", "ob2"]],
  ["Observation?patient.organization.partof.name=beta", ["ob1", "ob2"]], ["Observation?subject:Patient.general-practitioner.name=osler", ["ob1", "ob2"]],
  ["Encounter?subject.identifier=http://ids|B2", ["e2"]], ["Condition?subject:Patient.family:exact=Muller", ["c2"]],
  ["Patient?_has:Observation:patient:code=29463-7", ["p1", "p2"]], ["Patient?_has:Observation:patient:status=preliminary", ["p2"]],
  ["Patient?_has:Observation:subject:value-quantity=gt100", ["p2"]], ["Patient?_has:Condition:patient:code=44054006", ["p1"]],
  ["Patient?_has:Observation:patient:status=cancelled", []], ["Organization?_has:Patient:organization:gender=male", ["o2"]],
  ["Organization?_has:Patient:organization:_has:Observation:patient:status=preliminary", ["o2"]],
  ["Practitioner?_has:Encounter:practitioner:status=finished", ["pr1"]], ["Patient?_has:Observation:patient:code=29463-7&gender=male", ["p2"]],
]) S("chain and _has", q, ids);
// compartments
for (const [q, ids] of [
  ["Patient/p1/Observation", ["ob1", "ob2"]], ["Patient/p1/Observation?code=8867-4", ["ob1"]], ["Patient/p2/Condition", ["c2"]],
  ["Patient/p1/*", ["Observation/ob1", "Observation/ob2", "Condition/c1", "Encounter/e1", "RiskAssessment/r1", "MedicationRequest/m1", "Patient/p1"]],
  ["Patient/p1/Organization", []], ["Practitioner/pr1/Encounter", ["e1"]], ["Encounter/e1/Observation", []],
]) S("compartment", q, ids);
// system search
for (const [q, ids] of [
  ["?_type=Patient,Organization&_id=p1,o2", ["Patient/p1", "Organization/o2"]], ["?_id=p3", ["Patient/p3"]],
  ["?_type=ValueSet&_lastUpdated=gt2000", ["ValueSet/v1", "ValueSet/v2", "ValueSet/v3"]],
]) S("system search", q, ids);
// sorting
for (const [q, ids] of [
  ["Patient?_sort=birthdate&_id=p1,p2,p3", ["p3", "p1", "p2"]], ["Patient?_sort=-birthdate&_id=p1,p2,p3", ["p2", "p1", "p3"]],
  ["Patient?_sort=birthdate", ["p3", "p1", "p2", "p4"]], ["Patient?_sort=-birthdate", ["p2", "p1", "p3", "p4"]],
  ["Patient?_sort=family,-given&_id=p1,p2,p3", ["p1", "p2", "p3"]], ["Patient?_sort=family,given&_id=p1,p2,p3", ["p1", "p2", "p3"]], ["Patient?_sort=-family,-given", ["p3", "p4", "p1", "p2"]], ["Observation?_sort=subject,-date&subject=p1,p2", ["ob1", "ob2", "ob4", "ob3"]],
  ["RiskAssessment?_sort=-probability", ["r3", "r2", "r1"]], ["Observation?_sort=value-quantity&code=8867-4", ["ob1", "ob4"]],
  ["Patient?_sort=_id", ["p1", "p2", "p3", "p4"]], ["Patient?_sort=-_id", ["p4", "p3", "p2", "p1"]],
]) O("sort", q, ids);

// results: includes, summary, elements, total, count
const entries = (json, mode) => (json.entry ?? []).filter((e) => !mode || e.search?.mode === mode);
const refs = (list) => list.map((e) => `${e.resource.resourceType}/${e.resource.id}`).sort();
C("include", "_include=Observation:subject", "GET", "Observation?code=8867-4&_include=Observation:subject", 200, (j) => assert.deepEqual(refs(entries(j, "include")), ["Patient/p1", "Patient/p2"]));
C("include", "_include with target type", "GET", "Observation?code=8867-4&_include=Observation:subject:Group", 200, (j) => assert.equal(entries(j, "include").length, 0));
C("include", "_include=Observation:performer", "GET", "Observation?_id=ob1&_include=Observation:performer", 200, (j) => assert.deepEqual(refs(entries(j, "include")), ["Practitioner/pr1"]));
C("include", "_include=*", "GET", "Patient?_id=p1&_include=*", 200, (j) => assert.deepEqual(refs(entries(j, "include")), ["Organization/o1", "Practitioner/pr1"]));
C("include", "_include:iterate", "GET", "Patient?_id=p1&_include=Patient:organization&_include:iterate=Organization:partof", 200, (j) => assert.deepEqual(refs(entries(j, "include")), ["Organization/o1", "Organization/o2"]));
C("include", "_include without iterate stops", "GET", "Patient?_id=p1&_include=Patient:organization&_include=Organization:partof", 200, (j) => assert.deepEqual(refs(entries(j, "include")), ["Organization/o1"]));
C("include", "_revinclude", "GET", "Patient?_id=p1&_revinclude=Observation:subject", 200, (j) => assert.deepEqual(refs(entries(j, "include")), ["Observation/ob1", "Observation/ob2"]));
C("include", "_revinclude:iterate", "GET", "Organization?_id=o1&_revinclude=Patient:organization&_revinclude:iterate=Observation:subject", 200, (j) => assert.deepEqual(refs(entries(j, "include")), ["Observation/ob1", "Observation/ob2", "Patient/p1"]));
C("include", "includes are not counted in total", "GET", "Patient?_id=p1&_revinclude=Observation:subject", 200, (j) => assert.equal(j.total, 1));
C("include", "$everything", "GET", "Patient/p1/$everything", 200, (j) => assert.deepEqual(refs(entries(j)), ["Condition/c1", "Encounter/e1", "MedicationRequest/m1", "Observation/ob1", "Observation/ob2", "Organization/o1", "Patient/p1", "Practitioner/pr1", "Practitioner/pr2", "RiskAssessment/r1"]));
C("include", "$everything with _type", "GET", "Patient/p2/$everything?_type=Condition,Patient", 200, (j) => assert.deepEqual(refs(entries(j, "match")), ["Condition/c2", "Patient/p2"]));
E("include", "_include of a non-reference", "GET", "Observation?_include=Observation:status", 400, "invalid");
E("include", "_include malformed", "GET", "Observation?_include=Observation", 400, "invalid");
C("results", "_summary=count", "GET", "Patient?_summary=count", 200, (j) => { assert.equal(j.total, 4); assert.equal(entries(j).length, 0); });
C("results", "_summary=true", "GET", "Patient?_id=p1&_summary=true", 200, (j) => { const r = j.entry[0].resource; assert.ok(!r.text && r.name && r.birthDate); assert.equal(r.meta.tag[0].code, "SUBSETTED"); });
C("results", "_summary=text", "GET", "Patient?_id=p1&_summary=text", 200, (j) => { const r = j.entry[0].resource; assert.ok(r.text && !r.name); });
C("results", "_summary=data", "GET", "Patient?_id=p1&_summary=data", 200, (j) => { const r = j.entry[0].resource; assert.ok(!r.text && r.address); });
C("results", "_summary=false", "GET", "Patient?_id=p1&_summary=false", 200, (j) => assert.ok(j.entry[0].resource.text));
C("results", "_elements", "GET", "Patient?_id=p1&_elements=gender,birthDate", 200, (j) => { const r = j.entry[0].resource; assert.deepEqual(Object.keys(r).sort(), ["birthDate", "gender", "id", "meta", "resourceType"]); });
C("results", "_total=none", "GET", "Patient?_total=none", 200, (j) => assert.equal(j.total, undefined));
C("results", "_total=accurate", "GET", "Patient?_total=accurate&gender=female", 200, (j) => assert.equal(j.total, 1));
C("results", "_count=0", "GET", "Patient?_count=0", 200, (j) => { assert.equal(j.total, 4); assert.equal(entries(j).length, 0); });
C("results", "_count=2 has a next link", "GET", "Patient?_count=2", 200, (j) => { assert.equal(entries(j).length, 2); assert.ok(j.link.some((l) => l.relation === "next")); });
C("results", "self link keeps the parameters", "GET", "Patient?gender=female&_count=5", 200, (j) => assert.match(j.link.find((l) => l.relation === "self").url, /\/Patient\?gender=female&_count=5$/));
C("results", "fullUrl", "GET", "Patient?_id=p1", 200, (j, base) => assert.equal(j.entry[0].fullUrl, `${base}/Patient/p1`));
C("results", "searchset", "GET", "Patient?_id=p1", 200, (j) => { assert.equal(j.type, "searchset"); assert.equal(j.entry[0].search.mode, "match"); });
C("results", "POST _search with a form", "POST", "Patient/_search", 200, (j) => assert.deepEqual(refs(entries(j)), ["Patient/p1"]), { headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "family=m%C3%BCller&given=anna+maria,anna" });
C("results", "POST _search with query and form", "POST", "Patient/_search?gender=male", 200, (j) => assert.deepEqual(refs(entries(j)), ["Patient/p2"]), { headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "family=muller" });
C("results", "system POST _search", "POST", "_search", 200, (j) => assert.deepEqual(refs(entries(j)), ["Patient/p1"]), { headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "_type=Patient&_id=p1" });
C("results", "lenient handling reports unknown parameters", "GET", "Patient?colour=blue&gender=male", 200, (j) => { assert.deepEqual(refs(entries(j, "match")), ["Patient/p2"]); assert.equal(entries(j, "outcome")[0].resource.resourceType, "OperationOutcome"); }, { headers: { Prefer: "handling=lenient" } });
C("results", "escaped comma is a literal", "GET", "Patient?family=muller\\,x", 200, (j) => assert.equal(entries(j).length, 0));
C("results", "_pretty", "GET", "Patient/p1?_pretty=true", 200, (j, base, text) => assert.ok(text.includes('\n  "resourceType": "Patient"')));

// search errors
E("search errors", "unknown parameter", "GET", "Patient?colour=blue", 400, "invalid");
E("search errors", "unsupported _filter", "GET", "Patient?_filter=name eq x", 400, "invalid");
E("search errors", "unsupported _text", "GET", "Patient?_text=x", 400, "invalid");
E("search errors", "bad date", "GET", "Patient?birthdate=yesterday", 400, "invalid");
E("search errors", "bad date with prefix", "GET", "Patient?birthdate=gt2020-13-45", 400, "invalid");
E("search errors", "bad number", "GET", "RiskAssessment?probability=lots", 400, "invalid");
E("search errors", "bad quantity", "GET", "Observation?value-quantity=x|y|z", 400, "invalid");
E("search errors", "modifier on date", "GET", "Patient?birthdate:exact=1980", 400, "invalid");
E("search errors", ":not on string", "GET", "Patient?family:not=x", 400, "invalid");
E("search errors", "unknown modifier", "GET", "Patient?gender:sideways=male", 400, "invalid");
E("search errors", "token :below without hierarchy", "GET", "Observation?code:below=8867", 400, "invalid");
E("search errors", "unknown value set for :in", "GET", "Observation?code:in=http://nowhere/vs", 400, "invalid");
E("search errors", ":missing with a bad value", "GET", "Patient?gender:missing=maybe", 400, "invalid");
E("search errors", "empty value", "GET", "Patient?family=", 400, "invalid");
E("search errors", "chain on a non-reference", "GET", "Patient?gender.name=x", 400, "invalid");
E("search errors", "chain to an unknown parameter", "GET", "Observation?subject:Patient.colour=x", 400, "invalid");
E("search errors", "chain too deep", "GET", "Observation?patient.organization.partof.partof.partof.partof.name=x", 400, "invalid");
E("search errors", "_has malformed", "GET", "Patient?_has:Observation=x", 400, "invalid");
E("search errors", "_has unknown type", "GET", "Patient?_has:Nothing:patient:code=x", 400, "invalid");
E("search errors", "_has non-reference", "GET", "Patient?_has:Observation:status:code=x", 400, "invalid");
E("search errors", "bad _count", "GET", "Patient?_count=many", 400, "invalid");
E("search errors", "negative _count", "GET", "Patient?_count=-1", 400, "invalid");
E("search errors", "bad _sort", "GET", "Patient?_sort=colour", 400, "invalid");
E("search errors", "bad _summary", "GET", "Patient?_summary=some", 400, "invalid");
E("search errors", "bad _total", "GET", "Patient?_total=all", 400, "invalid");
E("search errors", "forged cursor", "GET", "Patient?_cursor=nzz", 400, "invalid");
E("search errors", "unknown type", "GET", "Nothing?name=x", 404, "not-supported");
E("search errors", "system search on an unknown type", "GET", "?_type=Nothing", 404, "not-supported");
E("search errors", "composite without $", "GET", "Observation?code-value-quantity=8867-4", 400, "invalid");
E("search errors", "unknown compartment", "GET", "Nothing/x/Observation", 404, "not-found");
C("search errors", "a 100 kB value is answered", "GET", `Patient?family=${"x".repeat(100000)}`, 200, (j) => assert.equal(j.total, 0));

// interactions
const json = (r) => JSON.stringify(r);
const pt = (extra = {}) => json({ resourceType: "Patient", text: TEXT, name: [{ family: "Case" }], ...extra });
const H = { "Content-Type": "application/fhir+json" };
C("read", "read", "GET", "Patient/p1", 200, (j, base, text, res) => { assert.equal(j.id, "p1"); assert.equal(res.headers.get("etag"), 'W/"1"'); assert.ok(res.headers.get("last-modified")); });
C("read", "vread", "GET", "Patient/p1/_history/1", 200, (j) => assert.equal(j.meta.versionId, "1"));
E("read", "vread of a missing version", "GET", "Patient/p1/_history/9", 404, "not-found");
E("read", "vread of a bad version", "GET", "Patient/p1/_history/x", 404, "not-found");
E("read", "read of a missing resource", "GET", "Patient/nope", 404, "not-found");
E("read", "read of an unknown type", "GET", "Nothing/1", 404, "not-supported");
C("read", "If-None-Match matching", "GET", "Patient/p1", 304, null, { headers: { "If-None-Match": 'W/"1"' } });
C("read", "If-None-Match not matching", "GET", "Patient/p1", 200, null, { headers: { "If-None-Match": 'W/"7"' } });
C("read", "If-Modified-Since later", "GET", "Patient/p1", 304, null, { headers: { "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT" } });
C("read", "If-Modified-Since earlier", "GET", "Patient/p1", 200, null, { headers: { "If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT" } });
E("read", "_format=xml", "GET", "Patient/p1?_format=xml", 406, "not-supported");
C("read", "_format=json", "GET", "Patient/p1?_format=json", 200, null);
C("read", "_format=application/fhir+json", "GET", "Patient/p1?_format=application/fhir%2Bjson", 200, null);
E("read", "Accept XML only", "GET", "Patient/p1", 406, "not-supported", { headers: { Accept: "application/fhir+xml" } });
C("read", "Accept JSON", "GET", "Patient/p1", 200, null, { headers: { Accept: "application/fhir+json" } });
C("read", "metadata", "GET", "metadata", 200, (j) => { assert.equal(j.resourceType, "CapabilityStatement"); assert.equal(j.fhirVersion, "4.0.1"); assert.ok(j.rest[0].resource.find((r) => r.type === "Patient").searchParam.length > 10); });
C("create", "create", "POST", "Patient", 201, (j, base, text, res) => { assert.match(res.headers.get("location"), /\/Patient\/[^/]+\/_history\/1$/); assert.equal(j.meta.versionId, "1"); }, { headers: H, body: pt() });
C("create", "create ignores a given id", "POST", "Patient", 201, (j) => assert.notEqual(j.id, "given"), { headers: H, body: pt({ id: "given" }) });
C("create", "Prefer: return=minimal", "POST", "Patient", 201, (j, base, text) => assert.equal(text, ""), { headers: { ...H, Prefer: "return=minimal" }, body: pt() });
C("create", "Prefer: return=OperationOutcome", "POST", "Patient", 201, (j) => assert.equal(j.resourceType, "OperationOutcome"), { headers: { ...H, Prefer: "return=OperationOutcome" }, body: pt() });
E("create", "malformed JSON", "POST", "Patient", 400, "structure", { headers: H, body: "{" });
E("create", "wrong type in the body", "POST", "Patient", 400, "invalid", { headers: H, body: json({ resourceType: "Observation" }) });
E("create", "invalid resource", "POST", "Patient", 422, "code-invalid", { headers: H, body: pt({ gender: "hen" }) });
E("create", "unknown element", "POST", "Patient", 400, "structure", { headers: H, body: pt({ colour: "blue" }) });
C("create", "X-Validation: off", "POST", "Patient", 201, null, { headers: { ...H, "X-Validation": "off" }, body: pt({ gender: "hen" }) });
E("create", "XML body", "POST", "Patient", 415, "not-supported", { headers: { "Content-Type": "application/fhir+xml" }, body: "<Patient/>" });
E("create", "create on an unknown type", "POST", "Nothing", 404, "not-supported", { headers: H, body: pt() });
C("create", "If-None-Exist with no match creates", "POST", "Patient", 201, null, { headers: { ...H, "If-None-Exist": "identifier=http://ids|NEW1" }, body: pt({ identifier: [{ system: "http://ids", value: "NEW1" }] }) });
C("create", "If-None-Exist with one match returns it", "POST", "Patient", 200, (j) => assert.equal(j.id, "p1"), { headers: { ...H, "If-None-Exist": "identifier=http://ids|A1" }, body: pt() });
E("create", "If-None-Exist with two matches", "POST", "Patient", 412, "duplicate", { headers: { ...H, "If-None-Exist": "family=muller" }, body: pt() });
E("create", "If-None-Exist with a bad query", "POST", "Patient", 400, "invalid", { headers: { ...H, "If-None-Exist": "colour=blue" }, body: pt() });
C("update", "update creates at a new id", "PUT", "Patient/u1", 201, (j) => assert.equal(j.meta.versionId, "1"), { headers: H, body: pt({ id: "u1" }) });
C("update", "update", "PUT", "Patient/u1", 200, (j) => assert.equal(j.meta.versionId, "2"), { headers: H, body: pt({ id: "u1", gender: "male" }) });
C("update", "If-Match matching", "PUT", "Patient/u1", 200, (j) => assert.equal(j.meta.versionId, "3"), { headers: { ...H, "If-Match": 'W/"2"' }, body: pt({ id: "u1" }) });
E("update", "If-Match stale", "PUT", "Patient/u1", 412, "conflict", { headers: { ...H, "If-Match": 'W/"1"' }, body: pt({ id: "u1" }) });
E("update", "If-Match *", "PUT", "Patient/u1", 412, "conflict", { headers: { ...H, "If-Match": "*" }, body: pt({ id: "u1" }) });
E("update", "id mismatch", "PUT", "Patient/u1", 400, "invalid", { headers: H, body: pt({ id: "u2" }) });
E("update", "no id in the body", "PUT", "Patient/u1", 400, "required", { headers: H, body: pt() });
E("update", "bad id", "PUT", "Patient/bad$id", 400, "invalid", { headers: H, body: pt({ id: "bad$id" }) });
E("update", "invalid resource", "PUT", "Patient/u1", 422, "code-invalid", { headers: H, body: pt({ id: "u1", gender: "hen" }) });
C("update", "conditional update of one match", "PUT", "Patient?identifier=http://ids|NEW1", 200, (j) => assert.equal(j.gender, "female"), { headers: H, body: pt({ identifier: [{ system: "http://ids", value: "NEW1" }], gender: "female" }) });
C("update", "conditional update with no match creates", "PUT", "Patient?identifier=http://ids|NEW2", 201, null, { headers: H, body: pt({ identifier: [{ system: "http://ids", value: "NEW2" }] }) });
E("update", "conditional update with two matches", "PUT", "Patient?family=muller", 412, "duplicate", { headers: H, body: pt() });
E("update", "conditional update with another id", "PUT", "Patient?identifier=http://ids|NEW1", 400, "invalid", { headers: H, body: pt({ id: "u1" }) });
E("update", "conditional update over an unmatched existing id", "PUT", "Patient?identifier=http://ids|NONE", 409, "conflict", { headers: H, body: pt({ id: "u1" }) });
E("update", "conditional update with only _format", "PUT", "Patient?_format=json", 400, "invalid", { headers: H, body: pt() });
E("delete", "conditional delete with only _count", "DELETE", "Patient?_count=1", 400, "invalid");
C("patch", "JSON Patch", "PATCH", "Patient/u1", 200, (j) => assert.equal(j.birthDate, "2000-01-01"), { headers: { "Content-Type": "application/json-patch+json" }, body: json([{ op: "add", path: "/birthDate", value: "2000-01-01" }]) });
C("patch", "JSON Patch test and replace", "PATCH", "Patient/u1", 200, (j) => assert.equal(j.gender, "female"), { headers: { "Content-Type": "application/json-patch+json" }, body: json([{ op: "test", path: "/birthDate", value: "2000-01-01" }, { op: "add", path: "/gender", value: "female" }]) });
E("patch", "failed test", "PATCH", "Patient/u1", 422, "processing", { headers: { "Content-Type": "application/json-patch+json" }, body: json([{ op: "test", path: "/gender", value: "male" }]) });
E("patch", "patch making it invalid", "PATCH", "Patient/u1", 422, "code-invalid", { headers: { "Content-Type": "application/json-patch+json" }, body: json([{ op: "replace", path: "/gender", value: "hen" }]) });
E("patch", "patch of a missing path", "PATCH", "Patient/u1", 400, "invalid", { headers: { "Content-Type": "application/json-patch+json" }, body: json([{ op: "remove", path: "/photo" }]) });
E("patch", "patch with a bad op", "PATCH", "Patient/u1", 400, "invalid", { headers: { "Content-Type": "application/json-patch+json" }, body: json([{ op: "twist", path: "/gender" }]) });
E("patch", "patch with If-Match stale", "PATCH", "Patient/u1", 412, "conflict", { headers: { "Content-Type": "application/json-patch+json", "If-Match": 'W/"1"' }, body: "[]" });
E("patch", "patch of a missing resource", "PATCH", "Patient/nope", 404, "not-found", { headers: { "Content-Type": "application/json-patch+json" }, body: "[]" });
E("patch", "patch with another content type", "PATCH", "Patient/u1", 415, "not-supported", { headers: { "Content-Type": "text/plain" }, body: "{}" });
C("patch", "conditional patch", "PATCH", "Patient?identifier=http://ids|NEW2", 200, (j) => assert.equal(j.active, true), { headers: { "Content-Type": "application/json-patch+json" }, body: json([{ op: "add", path: "/active", value: true }]) });
E("patch", "conditional patch with two matches", "PATCH", "Patient?family=muller", 412, "duplicate", { headers: { "Content-Type": "application/json-patch+json" }, body: "[]" });
const fpp = (...operations) => json({ resourceType: "Parameters", parameter: operations.map((parts) => ({ name: "operation", part: parts })) });
const part = (name, value) => ({ name, ...value });
C("patch", "FHIRPath Patch add", "PATCH", "Patient/u1", 200, (j) => assert.equal(j.telecom[0].value, "555-0000"), { headers: H, body: fpp([part("type", { valueCode: "add" }), part("path", { valueString: "Patient" }), part("name", { valueString: "telecom" }), part("value", { valueContactPoint: { system: "phone", value: "555-0000" } })]) });
C("patch", "FHIRPath Patch insert", "PATCH", "Patient/u1", 200, (j) => assert.deepEqual(j.telecom.map((t) => t.value), ["555-0001", "555-0000"]), { headers: H, body: fpp([part("type", { valueCode: "insert" }), part("path", { valueString: "Patient.telecom" }), part("index", { valueInteger: 0 }), part("value", { valueContactPoint: { system: "phone", value: "555-0001" } })]) });
C("patch", "FHIRPath Patch move", "PATCH", "Patient/u1", 200, (j) => assert.deepEqual(j.telecom.map((t) => t.value), ["555-0000", "555-0001"]), { headers: H, body: fpp([part("type", { valueCode: "move" }), part("path", { valueString: "Patient.telecom" }), part("source", { valueInteger: 0 }), part("destination", { valueInteger: 1 })]) });
C("patch", "FHIRPath Patch replace", "PATCH", "Patient/u1", 200, (j) => assert.equal(j.birthDate, "1999-09-09"), { headers: H, body: fpp([part("type", { valueCode: "replace" }), part("path", { valueString: "Patient.birthDate" }), part("value", { valueDate: "1999-09-09" })]) });
C("patch", "FHIRPath Patch delete", "PATCH", "Patient/u1", 200, (j) => assert.equal(j.telecom.length, 1), { headers: H, body: fpp([part("type", { valueCode: "delete" }), part("path", { valueString: "Patient.telecom.where(value='555-0000')" })]) });
C("patch", "FHIRPath Patch delete of nothing", "PATCH", "Patient/u1", 200, null, { headers: H, body: fpp([part("type", { valueCode: "delete" }), part("path", { valueString: "Patient.photo" })]) });
E("patch", "FHIRPath Patch on several matches", "PATCH", "Patient/u1", 422, "processing", { headers: H, body: fpp([part("type", { valueCode: "replace" }), part("path", { valueString: "Patient.name.family | Patient.birthDate" }), part("value", { valueString: "x" })]) });
E("patch", "FHIRPath Patch with a bad path", "PATCH", "Patient/u1", 422, "processing", { headers: H, body: fpp([part("type", { valueCode: "replace" }), part("path", { valueString: "Patient.(" }), part("value", { valueString: "x" })]) });
E("patch", "FHIRPath Patch with a body that is not Parameters", "PATCH", "Patient/u1", 400, "invalid", { headers: H, body: pt() });
C("delete", "delete", "DELETE", "Patient/u1", 204, null);
E("delete", "read after delete", "GET", "Patient/u1", 410, "deleted");
C("delete", "delete again", "DELETE", "Patient/u1", 204, null);
C("delete", "delete of a missing resource", "DELETE", "Patient/never", 204, null);
C("delete", "deleted resources are not found by search", "GET", "Patient?_id=u1", 200, (j) => assert.equal(j.total, 0));
C("delete", "update after delete recreates", "PUT", "Patient/u1", 201, null, { headers: H, body: pt({ id: "u1" }) });
E("delete", "conditional delete with two matches", "DELETE", "Patient?family=muller", 412, "duplicate");
C("delete", "conditional delete of one match", "DELETE", "Patient?identifier=http://ids|NEW2", 204, null);
C("delete", "conditional delete with no match", "DELETE", "Patient?identifier=http://ids|NEW2", 204, null);
C("history", "instance history", "GET", "Patient/u1/_history", 200, (j) => {
  assert.equal(j.type, "history");
  assert.deepEqual([j.entry[0].request.method, j.entry[0].response.status, j.entry[1].request.method], ["PUT", "201", "DELETE"]);
  const versions = j.entry.map((e) => Number(e.response.etag.replace(/\D/g, "")));
  assert.deepEqual(versions, [...versions].sort((a, b) => b - a));
  assert.equal(new Set(versions).size, versions.length);
  assert.equal(versions[versions.length - 1], 1);
});
C("history", "type history _count", "GET", "Patient/_history?_count=2", 200, (j) => assert.equal(j.entry.length, 2));
C("history", "system history", "GET", "_history?_count=3", 200, (j) => assert.equal(j.entry.length, 3));
C("history", "history _since in the future", "GET", "_history?_since=2100-01-01T00:00:00Z", 200, (j) => assert.equal((j.entry ?? []).length, 0));
E("history", "history _since without a zone", "GET", "_history?_since=2020-01-01", 400, "invalid");
E("history", "history of a missing resource", "GET", "Patient/never/_history", 404, "not-found");
E("other", "unknown endpoint", "GET", "Patient/p1/_history/1/extra/more", 404, "not-found");
E("other", "method not allowed", "POST", "Patient/p1", 405, "not-supported", { headers: H, body: pt() });
E("other", "DELETE on the base", "DELETE", "", 405, "not-supported");
C("other", "$validate valid", "POST", "Patient/$validate", 200, (j) => assert.ok(!j.issue.some((i) => i.severity === "error")), { headers: H, body: pt() });
C("other", "$validate invalid", "POST", "Patient/$validate", 200, (j) => assert.ok(j.issue.some((i) => i.severity === "error")), { headers: H, body: pt({ gender: "hen" }) });
C("other", "$reindex", "POST", "$reindex", 200, (j) => assert.equal(j.resourceType, "OperationOutcome"));
E("other", "malformed URL escape", "GET", "Patient?family=%E0%A4%A", 400, null);

// batch and transaction
const bundle = (type, entryList) => json({ resourceType: "Bundle", type, entry: entryList });
C("batch", "batch runs each entry", "POST", "", 200, (j) => assert.deepEqual(j.entry.map((e) => e.response.status.slice(0, 3)), ["201", "422", "404", "200"]), {
  headers: H,
  body: bundle("batch", [
    { resource: JSON.parse(pt()), request: { method: "POST", url: "Patient" } },
    { resource: JSON.parse(pt({ gender: "hen" })), request: { method: "POST", url: "Patient" } },
    { request: { method: "GET", url: "Patient/nope" } },
    { request: { method: "GET", url: "Patient?_id=p1" } },
  ]),
});
C("batch", "batch search entry", "POST", "", 200, (j) => assert.equal(j.entry[0].resource.total, 2), { headers: H, body: bundle("batch", [{ request: { method: "GET", url: "Patient?family=muller" } }]) });
C("transaction", "transaction with urn:uuid references", "POST", "", 200, (j) => assert.deepEqual(j.entry.map((e) => e.response.status.slice(0, 3)), ["201", "201"]), {
  headers: H,
  body: bundle("transaction", [
    { fullUrl: "urn:uuid:6c9f1e0a-8f51-4b5a-9b7e-1f0d0f4c9a01", resource: { resourceType: "Organization", text: TEXT, name: "Tx Org", identifier: [{ system: "http://orgs", value: "TX" }] }, request: { method: "POST", url: "Organization", ifNoneExist: "identifier=http://orgs|TX" } },
    { resource: { resourceType: "Patient", text: TEXT, name: [{ family: "Txpatient" }], managingOrganization: { reference: "urn:uuid:6c9f1e0a-8f51-4b5a-9b7e-1f0d0f4c9a01" }, generalPractitioner: [{ reference: "Practitioner?name=osler" }] }, request: { method: "POST", url: "Patient" } },
  ]),
});
C("transaction", "ifNoneExist matched the second time", "POST", "", 200, (j) => assert.equal(j.entry[0].response.status, "200 OK"), {
  headers: H,
  body: bundle("transaction", [{ resource: { resourceType: "Organization", text: TEXT, name: "Tx Org" }, request: { method: "POST", url: "Organization", ifNoneExist: "identifier=http://orgs|TX" } }]),
});
C("transaction", "conditional references were rewritten", "GET", "Patient?family=txpatient&general-practitioner=Practitioner/pr1", 200, (j) => assert.equal(j.total, 1));
C("transaction", "urn:uuid references were rewritten", "GET", "Patient?family=txpatient&organization.identifier=http://orgs|TX", 200, (j) => assert.equal(j.total, 1));
E("transaction", "a failing entry rolls back all", "POST", "", 422, "code-invalid", {
  headers: H,
  body: bundle("transaction", [
    { resource: JSON.parse(pt({ name: [{ family: "Rollback" }] })), request: { method: "POST", url: "Patient" } },
    { resource: JSON.parse(pt({ gender: "hen" })), request: { method: "POST", url: "Patient" } },
  ]),
});
C("transaction", "nothing of the failed transaction is stored", "GET", "Patient?family=rollback", 200, (j) => assert.equal(j.total, 0));
E("transaction", "ambiguous conditional reference", "POST", "", 412, "duplicate", {
  headers: H,
  body: bundle("transaction", [{ resource: { resourceType: "Observation", text: TEXT, status: "final", code: { text: "x" }, subject: { reference: "Patient?family=muller" } }, request: { method: "POST", url: "Observation" } }]),
});
E("transaction", "conditional reference with no match", "POST", "", 412, "duplicate", {
  headers: H,
  body: bundle("transaction", [{ resource: { resourceType: "Observation", text: TEXT, status: "final", code: { text: "x" }, subject: { reference: "Patient?family=nobody" } }, request: { method: "POST", url: "Observation" } }]),
});
C("transaction", "conditional delete and update in a transaction", "POST", "", 200, (j) => assert.deepEqual(j.entry.map((e) => e.response.status.slice(0, 3)), ["204", "201"]), {
  headers: H,
  body: bundle("transaction", [
    { request: { method: "DELETE", url: "Patient?family=txpatient" } },
    { resource: JSON.parse(pt({ identifier: [{ system: "http://ids", value: "TX3" }] })), request: { method: "PUT", url: "Patient?identifier=http://ids|TX3" } },
  ]),
});
C("transaction", "the conditional delete happened", "GET", "Patient?family=txpatient", 200, (j) => assert.equal(j.total, 0));
E("transaction", "two entries on one resource", "POST", "", 400, "invalid", {
  headers: H,
  body: bundle("transaction", [
    { resource: JSON.parse(pt({ id: "dup" })), request: { method: "PUT", url: "Patient/dup" } },
    { request: { method: "DELETE", url: "Patient/dup" } },
  ]),
});
E("transaction", "duplicate fullUrl", "POST", "", 400, "invalid", {
  headers: H,
  body: bundle("transaction", [
    { fullUrl: "urn:uuid:6c9f1e0a-8f51-4b5a-9b7e-1f0d0f4c9a02", resource: JSON.parse(pt()), request: { method: "POST", url: "Patient" } },
    { fullUrl: "urn:uuid:6c9f1e0a-8f51-4b5a-9b7e-1f0d0f4c9a02", resource: JSON.parse(pt()), request: { method: "POST", url: "Patient" } },
  ]),
});
E("transaction", "not a Bundle", "POST", "", 400, "invalid", { headers: H, body: pt() });

// --- the runner -------------------------------------------------------------------------------
async function run(base, c, send) {
  const url = c.path.startsWith("?") || c.path === "" ? `${base}${c.path}` : `${base}/${c.path}`;
  const response = await send(url, { method: c.method, headers: c.headers ?? {}, body: c.body });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  assert.equal(response.status, c.expect.status, `status ${response.status}: ${text.slice(0, 400)}`);
  const expect = c.expect;
  if (expect.code) assert.equal(body?.issue?.[0]?.code, expect.code, text.slice(0, 400));
  const segments = c.path.split("?")[0].split("/");
  const type = segments.length === 3 ? segments[2] : segments[0];
  const label = (e) => (e.resource.resourceType === type && !expect.matches?.some((m) => m.includes("/")) ? e.resource.id : `${e.resource.resourceType}/${e.resource.id}`);
  const matched = () => (body?.entry ?? []).filter((e) => e.search?.mode === "match").map(label);
  if (expect.matches) {
    assert.deepEqual(matched().sort(), [...expect.matches].sort());
    if (body.total !== undefined) assert.equal(body.total, expect.matches.length);
  }
  if (expect.ordered) assert.deepEqual(matched(), expect.ordered);
  if (expect.check) expect.check(body, base, text, response);
}

/**
 * Loads the fixture at `base` and runs every case through `send` (a fetch-like function).
 * `skip` maps a case (`group: name`) to the reason it can not run on this host; skipped cases
 * are counted and their reasons printed by {@link report}.
 * @returns {Promise<{ counts: Map<string, { pass: number, fail: number }>, failures: string[], skipped: string[] }>}
 */
export async function runHttpSuite(base, send, { skip = {} } = {}) {
  const counts = new Map();
  const failures = [];
  const skipped = [];
  {
    for (const resource of fixture()) {
      const response = await send(`${base}/${resource.resourceType}/${resource.id}`, { method: "PUT", headers: { "Content-Type": "application/fhir+json" }, body: JSON.stringify(resource) });
      assert.ok(response.status === 201, `${resource.resourceType}/${resource.id}: ${await response.text()}`);
    }
    for (const c of cases) {
      const row = counts.get(c.group) ?? { pass: 0, fail: 0 };
      counts.set(c.group, row);
      const reason = skip[`${c.group}: ${c.name}`];
      if (reason !== undefined) {
        skipped.push(`${c.group}: ${c.name}: ${reason}`);
        continue;
      }
      try {
        await run(base, c, send);
        row.pass += 1;
      } catch (err) {
        row.fail += 1;
        failures.push(`${c.group}: ${c.method} ${c.name}: ${err.message.split("\n").slice(0, 6).join(" ")}`);
      }
    }

    // Paging under concurrent writes: pages of 3 through the patients sorted by family,
    // with patients created and deleted between the pages.
    const row = { pass: 0, fail: 0 };
    counts.set("paging under writes", row);
    const check = (ok, message) => {
      if (ok) row.pass += 1;
      else {
        row.fail += 1;
        failures.push(`paging under writes: ${message}`);
      }
    };
    for (let i = 0; i < 12; i += 1) {
      await send(`${base}/Patient/pg${String(i).padStart(2, "0")}`, { method: "PUT", headers: { "Content-Type": "application/fhir+json" }, body: pt({ id: `pg${String(i).padStart(2, "0")}`, name: [{ family: `Page${String(i).padStart(2, "0")}` }] }) });
    }
    const seen = [];
    let next = `${base}/Patient?family=page&_sort=family&_count=3`;
    let pages = 0;
    while (next && pages < 10) {
      const page = await (await send(next)).json();
      seen.push(...(page.entry ?? []).map((e) => e.resource.id));
      next = page.link.find((l) => l.relation === "next")?.url;
      pages += 1;
      if (pages === 1) {
        // A new patient sorting before the cursor, one after it, and a deletion ahead.
        await send(`${base}/Patient/pgAA`, { method: "PUT", headers: { "Content-Type": "application/fhir+json" }, body: pt({ id: "pgAA", name: [{ family: "Page00a" }] }) });
        await send(`${base}/Patient/pgZZ`, { method: "PUT", headers: { "Content-Type": "application/fhir+json" }, body: pt({ id: "pgZZ", name: [{ family: "Page99" }] }) });
        await send(`${base}/Patient/pg07`, { method: "DELETE" });
      }
    }
    const expected = ["pg00", "pg01", "pg02", "pg03", "pg04", "pg05", "pg06", "pg08", "pg09", "pg10", "pg11", "pgZZ"];
    check(JSON.stringify(seen) === JSON.stringify(expected), `pages gave ${seen.join(",")}`);
    check(new Set(seen).size === seen.length, "a resource came twice");
    check(pages === 4, `${pages} pages`);
    const last = await (await send(`${base}/Patient?family=page&_sort=family&_count=3`)).json();
    const firstNext = last.link.find((l) => l.relation === "next").url;
    const second = await (await send(firstNext)).json();
    const previous = second.link.find((l) => l.relation === "previous")?.url;
    const back = previous ? await (await send(previous)).json() : { entry: [] };
    check(JSON.stringify(back.entry.map((e) => e.resource.id)) === JSON.stringify(last.entry.map((e) => e.resource.id)), "previous does not lead back to the first page");
  }
  const unused = Object.keys(skip).filter((name) => !skipped.some((line) => line.startsWith(`${name}: `)));
  if (unused.length > 0) throw new Error(`no such cases to skip: ${unused.join(", ")}`);
  return { counts, failures, skipped };
}

/** Prints the counts by group and the total line; returns the totals. */
export function report(label, { counts, skipped = [] }) {
  let pass = 0;
  let fail = 0;
  for (const [group, row] of counts) {
    pass += row.pass;
    fail += row.fail;
    console.log(`  ${group}: ${row.pass} passed, ${row.fail} failed`);
  }
  console.log(`${label}: ${pass + fail + skipped.length} cases, ${pass} passed, ${fail} failed, ${skipped.length} skipped`);
  for (const line of skipped) console.log(`  skipped ${line}`);
  return { pass, fail, skipped: skipped.length };
}

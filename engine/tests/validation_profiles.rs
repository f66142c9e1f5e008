//! Validation against profiles loaded at run time: one rule of a profile broken in each case,
//! and the same resource without the break validating clean.

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::outcome::Severity;
use hearth_engine::resource::Object;
use hearth_engine::validation::{Profiles, ValidateOptions, Validator};

const NARRATIVE: &str =
    r#""text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}"#;

fn read(text: &str) -> Object {
    parse_resource(text.as_bytes()).unwrap_or_else(|err| panic!("{err}\n{text}"))
}

/// A profile on `type_name` with these differential elements.
fn profile(url: &str, type_name: &str, base: &str, elements: &str) -> Object {
    read(&format!(
        r#"{{"resourceType":"StructureDefinition",{NARRATIVE},"url":"{url}","name":"P","status":"draft","kind":"resource","abstract":false,"type":"{type_name}","baseDefinition":"{base}","derivation":"constraint","differential":{{"element":[{elements}]}}}}"#
    ))
}

fn errors(profiles: &Profiles, resource: &str, profile: Option<&str>) -> Vec<String> {
    let resource = read(resource);
    let options = ValidateOptions {
        profiles: Some(profiles),
        profile,
        ..ValidateOptions::default()
    };
    Validator::new()
        .validate_with(&resource, &options)
        .into_iter()
        .filter(|finding| finding.severity == Severity::Error)
        .map(|finding| format!("{} @ {}", finding.message, finding.path))
        .collect()
}

fn profiles() -> Profiles {
    let mut profiles = Profiles::new();
    let core = "http://hl7.org/fhir/StructureDefinition/";
    let loaded = [
        profile(
            "http://example.org/fhir/StructureDefinition/named-patient",
            "Patient",
            &format!("{core}Patient"),
            r#"{"id":"Patient.name","path":"Patient.name","min":1,"max":"2"},
               {"id":"Patient.name.family","path":"Patient.name.family","min":1},
               {"id":"Patient.gender","path":"Patient.gender","fixedCode":"female"},
               {"id":"Patient.maritalStatus","path":"Patient.maritalStatus","patternCodeableConcept":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M"}]}},
               {"id":"Patient.birthDate","path":"Patient.birthDate","minValueDate":"1900-01-01"},
               {"id":"Patient.language","path":"Patient.language","binding":{"strength":"required","valueSet":"http://example.org/fhir/ValueSet/two-languages"}},
               {"id":"Patient.telecom","path":"Patient.telecom","slicing":{"discriminator":[{"type":"value","path":"system"}],"rules":"closed"}},
               {"id":"Patient.telecom:phone","path":"Patient.telecom","sliceName":"phone","min":1,"max":"1"},
               {"id":"Patient.telecom:phone.system","path":"Patient.telecom.system","fixedCode":"phone"},
               {"id":"Patient.telecom:phone.value","path":"Patient.telecom.value","min":1},
               {"id":"Patient.telecom:email","path":"Patient.telecom","sliceName":"email","max":"1"},
               {"id":"Patient.telecom:email.system","path":"Patient.telecom.system","fixedCode":"email"},
               {"id":"Patient.extension","path":"Patient.extension","slicing":{"discriminator":[{"type":"value","path":"url"}],"rules":"open"}},
               {"id":"Patient.extension:nickname","path":"Patient.extension","sliceName":"nickname","min":1,"max":"1","type":[{"code":"Extension","profile":["http://example.org/fhir/StructureDefinition/nickname"]}]},
               {"id":"Patient","path":"Patient","constraint":[{"key":"np-1","severity":"error","human":"An active patient has a birth date","expression":"active.not() or birthDate.exists()"}]}"#,
        ),
        profile(
            "http://example.org/fhir/StructureDefinition/weight",
            "Observation",
            &format!("{core}Observation"),
            r#"{"path":"Observation.value[x]","min":1,"type":[{"code":"Quantity"}]},
               {"path":"Observation.valueQuantity","minValueQuantity":{"value":0,"system":"http://unitsofmeasure.org","code":"kg"}},
               {"id":"Observation.effective[x]","path":"Observation.effective[x]","slicing":{"discriminator":[{"type":"type","path":"$this"}],"rules":"open"}},
               {"id":"Observation.effective[x]:effectivePeriod","path":"Observation.effective[x]","sliceName":"effectivePeriod","type":[{"code":"Period"}]},
               {"id":"Observation.effective[x]:effectivePeriod.start","path":"Observation.effective[x].start","min":1}"#,
        ),
        read(
            r#"{"resourceType":"ValueSet","url":"http://example.org/fhir/ValueSet/two-languages","status":"draft","compose":{"include":[{"system":"urn:ietf:bcp:47","concept":[{"code":"en"},{"code":"fr"}]}]}}"#,
        ),
    ];
    for resource in &loaded {
        assert_eq!(profiles.load(resource), 1);
    }
    profiles
}

const PATIENT: &str = "http://example.org/fhir/StructureDefinition/named-patient";
const WEIGHT: &str = "http://example.org/fhir/StructureDefinition/weight";

fn patient(extra: &str) -> String {
    let base = [
        ("name", r#"[{"family":"Ng"}]"#),
        ("gender", r#""female""#),
        ("birthDate", r#""1970-01-01""#),
        ("telecom", r#"[{"system":"phone","value":"555"}]"#),
        (
            "extension",
            r#"[{"url":"http://example.org/fhir/StructureDefinition/nickname","valueString":"Annie"}]"#,
        ),
    ];
    let mut members: Vec<String> = Vec::new();
    let overridden: Vec<&str> = extra
        .split("\"")
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|pair| pair.get(1).copied())
        .collect();
    for (name, value) in base {
        if !overridden.contains(&name) {
            members.push(format!("\"{name}\":{value}"));
        }
    }
    if !extra.is_empty() {
        members.push(extra.to_string());
    }
    format!(
        r#"{{"resourceType":"Patient",{NARRATIVE},{}}}"#,
        members.join(",")
    )
}

#[test]
fn a_conforming_resource_validates_clean() {
    let profiles = profiles();
    assert_eq!(
        errors(&profiles, &patient(""), Some(PATIENT)),
        Vec::<String>::new()
    );
    let weight = format!(
        r#"{{"resourceType":"Observation",{NARRATIVE},"status":"final","code":{{"text":"weight"}},"valueQuantity":{{"value":70,"system":"http://unitsofmeasure.org","code":"kg"}},"effectivePeriod":{{"start":"2020-01-01"}}}}"#
    );
    assert_eq!(
        errors(&profiles, &weight, Some(WEIGHT)),
        Vec::<String>::new()
    );
}

#[test]
fn each_broken_rule_is_reported_at_its_element() {
    let profiles = profiles();
    let cases: &[(&str, String, &str, &str)] = &[
        (
            "min narrowed",
            patient(r#""name":[]"#)
                .replace(r#""name":[],"#, "")
                .replace(r#","name":[]"#, ""),
            "expected at least 1 values for \"name\"",
            "Patient",
        ),
        (
            "max narrowed",
            patient(r#""name":[{"family":"A"},{"family":"B"},{"family":"C"}]"#),
            "expected at most 2 values for \"name\"",
            "Patient",
        ),
        (
            "nested min",
            patient(r#""name":[{"given":["A"]}]"#),
            "expected at least 1 values for \"family\"",
            "Patient.name[0]",
        ),
        (
            "fixed code",
            patient(r#""gender":"male""#),
            "expected the fixed value female",
            "Patient.gender",
        ),
        (
            "pattern",
            patient(
                r#""maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"S"}]}"#,
            ),
            "expected a value matching the pattern",
            "Patient.maritalStatus",
        ),
        (
            "min value date",
            patient(r#""birthDate":"1850-05-05""#),
            "is below the minimum 1900-01-01",
            "Patient.birthDate",
        ),
        (
            "loaded value set",
            patient(r#""language":"de""#),
            "is not in the value set http://example.org/fhir/ValueSet/two-languages",
            "Patient.language",
        ),
        (
            "slice min",
            patient(r#""telecom":[{"system":"email","value":"a@b"}]"#),
            "expected at least 1 values for \"telecom\" in slice phone",
            "Patient",
        ),
        (
            "slice child",
            patient(r#""telecom":[{"system":"phone"}]"#),
            "expected at least 1 values for \"value\"",
            "Patient.telecom[0]",
        ),
        (
            "closed slicing",
            patient(r#""telecom":[{"system":"phone","value":"1"},{"system":"fax","value":"2"}]"#),
            "matches none of the slices of \"telecom\"",
            "Patient.telecom[1]",
        ),
        (
            "extension slice by url",
            patient(r#""extension":[{"url":"http://example.org/other","valueString":"x"}]"#),
            "expected at least 1 values for \"extension\" in slice nickname",
            "Patient",
        ),
        (
            "profile invariant",
            patient(r#""active":true,"birthDate":null"#)
                .replace(r#","birthDate":null"#, "")
                .replace(r#""birthDate":"1970-01-01","#, ""),
            "np-1: An active patient has a birth date",
            "Patient",
        ),
    ];
    let mut failures = Vec::new();
    for (name, resource, message, path) in cases {
        let found = errors(&profiles, resource, Some(PATIENT));
        if !found
            .iter()
            .any(|error| error.contains(message) && error.ends_with(&format!(" @ {path}")))
        {
            failures.push(format!(
                "{name}: expected {message:?} at {path}, found {found:?}\n{resource}"
            ));
        }
    }
    let observation = |value: &str, effective: &str| {
        format!(
            r#"{{"resourceType":"Observation",{NARRATIVE},"status":"final","code":{{"text":"weight"}},{value},{effective}}}"#
        )
    };
    let weight_cases = [
        (
            "choice type",
            observation(r#""valueString":"70 kg""#, r#""effectiveDateTime":"2020""#),
            "expected Quantity",
            "Observation.value",
        ),
        (
            "min value quantity after UCUM",
            observation(
                r#""valueQuantity":{"value":-5,"system":"http://unitsofmeasure.org","code":"g"}"#,
                r#""effectiveDateTime":"2020""#,
            ),
            "is below the minimum",
            "Observation.value",
        ),
        (
            "type slice child",
            observation(
                r#""valueQuantity":{"value":5,"system":"http://unitsofmeasure.org","code":"kg"}"#,
                r#""effectivePeriod":{"end":"2020"}"#,
            ),
            "expected at least 1 values for \"start\"",
            "Observation.effective",
        ),
    ];
    for (name, resource, message, path) in &weight_cases {
        let found = errors(&profiles, resource, Some(WEIGHT));
        if !found
            .iter()
            .any(|error| error.contains(message) && error.ends_with(&format!(" @ {path}")))
        {
            failures.push(format!(
                "{name}: expected {message:?} at {path}, found {found:?}"
            ));
        }
    }
    println!(
        "validation profiles: {} broken rules, {} reported as expected",
        cases.len() + weight_cases.len(),
        cases.len() + weight_cases.len() - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn claimed_profiles_are_checked_when_loaded() {
    let profiles = profiles();
    let claimed = patient(&format!(
        r#""meta":{{"profile":["{PATIENT}"]}},"gender":"male""#
    ));
    assert!(errors(&profiles, &claimed, None)
        .iter()
        .any(|error| error.contains("expected the fixed value female")));
    // A claimed profile that is not loaded is information; one asked for is an error.
    let unknown = patient(r#""meta":{"profile":["http://example.org/unknown"]}"#);
    assert!(errors(&profiles, &unknown, None).is_empty());
    assert!(
        errors(&profiles, &patient(""), Some("http://example.org/unknown"))
            .iter()
            .any(|error| error.contains("is not loaded"))
    );
}

#[test]
fn review_cases_of_profiles() {
    let mut profiles = Profiles::new();
    let core = "http://hl7.org/fhir/StructureDefinition/";
    let loaded = [
        // A value set that includes a whole code system cannot be checked code by code.
        read(
            r#"{"resourceType":"ValueSet","url":"http://example.org/vs/all-loinc","status":"draft","compose":{"include":[{"system":"http://loinc.org"}]}}"#,
        ),
        read(
            r#"{"resourceType":"ValueSet","url":"http://example.org/vs/two-minus-one","status":"draft","compose":{"include":[{"system":"urn:s","concept":[{"code":"a"},{"code":"b"}]}],"exclude":[{"system":"urn:s","concept":[{"code":"b"}]}]}}"#,
        ),
        profile(
            "http://example.org/sd/obs",
            "Observation",
            &format!("{core}Observation"),
            r#"{"id":"Observation.code","path":"Observation.code","binding":{"strength":"required","valueSet":"http://example.org/vs/all-loinc"}},
               {"id":"Observation.value[x]:valueQuantity","path":"Observation.value[x]","sliceName":"valueQuantity","min":1},
               {"id":"Observation.value[x]:valueQuantity.unit","path":"Observation.value[x].unit","min":1},
               {"id":"Observation.status","path":"Observation.status","binding":{"strength":"required","valueSet":"http://example.org/vs/two-minus-one"}},
               {"id":"Observation.extension","path":"Observation.extension","slicing":{"discriminator":[{"type":"value","path":"url"}],"rules":"open"}},
               {"id":"Observation.extension:v","path":"Observation.extension","sliceName":"v","min":1,"type":[{"code":"Extension","profile":["http://example.org/ext/v|1.0.0"]}]}"#,
        ),
        // A "core" definition loaded alongside: the profile chain stops before it.
        profile(
            &format!("{core}Observation"),
            "Observation",
            &format!("{core}DomainResource"),
            r#"{"id":"Observation.issued","path":"Observation.issued","min":1}"#,
        ),
    ];
    for resource in &loaded {
        profiles.load(resource);
    }
    let observation = |status: &str, value: &str| {
        format!(
            r#"{{"resourceType":"Observation",{NARRATIVE},"extension":[{{"url":"http://example.org/ext/v","valueString":"x"}}],"status":"{status}","code":{{"coding":[{{"system":"http://loinc.org","code":"1-8"}}]}},{value}}}"#
        )
    };
    let good = observation("final", r#""valueQuantity":{"value":1,"unit":"kg"}"#);
    // "final" is not in the two-minus-one set: the only error expected.
    let found = errors(&profiles, &good, Some("http://example.org/sd/obs"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("two-minus-one"), "{found:?}");
    let no_unit = observation("final", r#""valueQuantity":{"value":1}"#);
    assert!(
        errors(&profiles, &no_unit, Some("http://example.org/sd/obs"))
            .iter()
            .any(|error| error.contains("\"unit\""))
    );
    let not_quantity = observation("final", r#""valueString":"1 kg""#);
    assert!(
        errors(&profiles, &not_quantity, Some("http://example.org/sd/obs"))
            .iter()
            .any(|error| error.contains("expected a Quantity"))
    );
}

#[test]
fn rules_below_a_sliced_element_without_its_own_rule_apply_to_every_value() {
    let mut profiles = Profiles::new();
    profiles.load(&profile(
        "http://example.org/sd/ext-values",
        "Patient",
        "http://hl7.org/fhir/StructureDefinition/Patient",
        r#"{"id":"Patient.extension:nick","path":"Patient.extension","sliceName":"nick","max":"1"},
           {"id":"Patient.extension.url","path":"Patient.extension.url","fixedUri":"http://example.org/only"}"#,
    ));
    let found = errors(
        &profiles,
        &format!(
            r#"{{"resourceType":"Patient",{NARRATIVE},"extension":[{{"url":"http://example.org/other","valueString":"x"}}]}}"#
        ),
        Some("http://example.org/sd/ext-values"),
    );
    assert!(
        found
            .iter()
            .any(|error| error.contains("expected the fixed value http://example.org/only")),
        "{found:?}"
    );
}

#[test]
fn differential_elements_without_ids_belong_to_the_slice_above_them() {
    let mut profiles = Profiles::new();
    profiles.load(&profile(
        "http://example.org/sd/no-ids",
        "Patient",
        "http://hl7.org/fhir/StructureDefinition/Patient",
        r#"{"path":"Patient.telecom","slicing":{"discriminator":[{"type":"value","path":"system"}],"rules":"open"}},
           {"path":"Patient.telecom","sliceName":"phone","min":1},
           {"path":"Patient.telecom.system","fixedCode":"phone"},
           {"path":"Patient.telecom.value","min":1},
           {"path":"Patient.telecom","sliceName":"email"},
           {"path":"Patient.telecom.system","fixedCode":"email"}"#,
    ));
    let patient =
        |telecom: &str| format!(r#"{{"resourceType":"Patient",{NARRATIVE},"telecom":{telecom}}}"#);
    let url = Some("http://example.org/sd/no-ids");
    assert_eq!(
        errors(
            &profiles,
            &patient(r#"[{"system":"phone","value":"1"},{"system":"email","value":"a@b"}]"#),
            url
        ),
        Vec::<String>::new()
    );
    let found = errors(&profiles, &patient(r#"[{"system":"phone"}]"#), url);
    assert!(
        found.iter().any(|error| error.contains("\"value\"")),
        "{found:?}"
    );
}

#[test]
fn resources_inside_others_are_checked_against_the_profiles_they_claim() {
    let profiles = profiles();
    let male = format!(
        r#"{{"resourceType":"Patient",{NARRATIVE},"meta":{{"profile":["{PATIENT}"]}},"name":[{{"family":"Ng"}}],"gender":"male","birthDate":"1970-01-01","telecom":[{{"system":"phone","value":"1"}}],"extension":[{{"url":"http://example.org/fhir/StructureDefinition/nickname","valueString":"x"}}]}}"#
    );
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"collection","entry":[{{"fullUrl":"urn:uuid:7b1f2e3d-4c5b-4a69-8877-665544332211","resource":{male}}}]}}"#
    );
    let found = errors(&profiles, &bundle, None);
    assert!(
        found
            .iter()
            .any(|error| error.contains("expected the fixed value female")
                && error.ends_with("@ Bundle.entry[0].resource.gender")),
        "{found:?}"
    );
}

/// The profile of `tests/fixtures/ig/female-patient.json` as a publisher ships it with a
/// snapshot only: every element of the base, with the FHIRPath system types snapshots give
/// `id` values, the base's bindings and invariants, and the profile's changes in place.
const FEMALE_SNAPSHOT: &str = r#"{"resourceType":"StructureDefinition",NARRATIVE,
  "url":"http://example.org/fhir/StructureDefinition/female","name":"Female","status":"draft",
  "kind":"resource","abstract":false,"type":"Patient",
  "baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",
  "snapshot":{"element":[
    {"id":"Patient","path":"Patient","min":0,"max":"*","constraint":[
      {"key":"dom-2","severity":"error","human":"If the resource is contained in another resource, it SHALL NOT contain nested Resources","expression":"contained.contained.empty()"},
      {"key":"dom-6","severity":"warning","human":"A resource should have narrative for robust management","expression":"text.`div`.exists()"},
      {"key":"fem-1","severity":"error","human":"A deceased patient has no active flag","expression":"deceased.exists() implies active.empty()"}]},
    {"id":"Patient.id","path":"Patient.id","min":0,"max":"1","type":[{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type","valueUrl":"string"}],"code":"http://hl7.org/fhirpath/System.String"}]},
    {"id":"Patient.meta","path":"Patient.meta","min":0,"max":"1","type":[{"code":"Meta"}],"constraint":[{"key":"ele-1","severity":"error","human":"All FHIR elements must have a @value or children","expression":"hasValue() or (children().count() > id.count())"}]},
    {"id":"Patient.language","path":"Patient.language","min":0,"max":"1","type":[{"code":"code"}],"binding":{"strength":"preferred","valueSet":"http://hl7.org/fhir/ValueSet/languages"}},
    {"id":"Patient.text","path":"Patient.text","min":0,"max":"1","type":[{"code":"Narrative"}]},
    {"id":"Patient.contained","path":"Patient.contained","min":0,"max":"*","type":[{"code":"Resource"}]},
    {"id":"Patient.extension","path":"Patient.extension","min":0,"max":"*","type":[{"code":"Extension"}],"constraint":[{"key":"ext-1","severity":"error","human":"Must have either extensions or value[x], not both","expression":"extension.exists() != value.exists()"}]},
    {"id":"Patient.identifier","path":"Patient.identifier","min":0,"max":"*","type":[{"code":"Identifier"}]},
    {"id":"Patient.active","path":"Patient.active","min":0,"max":"1","type":[{"code":"boolean"}]},
    {"id":"Patient.name","path":"Patient.name","min":1,"max":"*","type":[{"code":"HumanName"}]},
    {"id":"Patient.telecom","path":"Patient.telecom","min":0,"max":"*","type":[{"code":"ContactPoint"}]},
    {"id":"Patient.gender","path":"Patient.gender","min":1,"max":"1","type":[{"code":"code"}],"fixedCode":"female","binding":{"strength":"required","valueSet":"http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1"}},
    {"id":"Patient.birthDate","path":"Patient.birthDate","min":0,"max":"1","type":[{"code":"date"}]},
    {"id":"Patient.deceased[x]","path":"Patient.deceased[x]","min":0,"max":"1","type":[{"code":"boolean"},{"code":"dateTime"}]},
    {"id":"Patient.address","path":"Patient.address","min":0,"max":"*","type":[{"code":"Address"}]},
    {"id":"Patient.maritalStatus","path":"Patient.maritalStatus","min":0,"max":"1","type":[{"code":"CodeableConcept"}],"binding":{"strength":"extensible","valueSet":"http://hl7.org/fhir/ValueSet/marital-status"}},
    {"id":"Patient.multipleBirth[x]","path":"Patient.multipleBirth[x]","min":0,"max":"1","type":[{"code":"boolean"},{"code":"integer"}]},
    {"id":"Patient.contact","path":"Patient.contact","min":0,"max":"*","type":[{"code":"BackboneElement"}],"constraint":[{"key":"pat-1","severity":"error","human":"SHALL at least contain a contact's details or a reference to an organization","expression":"name.exists() or telecom.exists() or address.exists() or organization.exists()"}]},
    {"id":"Patient.contact.id","path":"Patient.contact.id","min":0,"max":"1","type":[{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type","valueUrl":"string"}],"code":"http://hl7.org/fhirpath/System.String"}]},
    {"id":"Patient.contact.extension","path":"Patient.contact.extension","min":0,"max":"*","type":[{"code":"Extension"}]},
    {"id":"Patient.contact.relationship","path":"Patient.contact.relationship","min":0,"max":"*","type":[{"code":"CodeableConcept"}]},
    {"id":"Patient.contact.name","path":"Patient.contact.name","min":0,"max":"1","type":[{"code":"HumanName"}]},
    {"id":"Patient.contact.gender","path":"Patient.contact.gender","min":0,"max":"1","type":[{"code":"code"}],"binding":{"strength":"required","valueSet":"http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1"}},
    {"id":"Patient.contact.organization","path":"Patient.contact.organization","min":0,"max":"1","type":[{"code":"Reference","targetProfile":["http://hl7.org/fhir/StructureDefinition/Organization"]}]},
    {"id":"Patient.managingOrganization","path":"Patient.managingOrganization","min":0,"max":"1","type":[{"code":"Reference","targetProfile":["http://hl7.org/fhir/StructureDefinition/Organization"]}]},
    {"id":"Patient.link","path":"Patient.link","min":0,"max":"*","type":[{"code":"BackboneElement"}]},
    {"id":"Patient.link.id","path":"Patient.link.id","min":0,"max":"1","type":[{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type","valueUrl":"string"}],"code":"http://hl7.org/fhirpath/System.String"}]},
    {"id":"Patient.link.other","path":"Patient.link.other","min":1,"max":"1","type":[{"code":"Reference"}]},
    {"id":"Patient.link.type","path":"Patient.link.type","min":1,"max":"1","type":[{"code":"code"}],"binding":{"strength":"required","valueSet":"http://hl7.org/fhir/ValueSet/link-type|4.0.1"}}]}}"#;

const FEMALE: &str = "http://example.org/fhir/StructureDefinition/female";

fn female_profiles() -> (Profiles, Profiles) {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/ig/female-patient.json"
    );
    let text = std::fs::read_to_string(fixture).unwrap_or_else(|err| panic!("{fixture}: {err}"));
    let mut from_differential = Profiles::new();
    assert_eq!(from_differential.load(&read(&text)), 1);
    let mut from_snapshot = Profiles::new();
    assert_eq!(
        from_snapshot.load(&read(&FEMALE_SNAPSHOT.replace("NARRATIVE", NARRATIVE))),
        1
    );
    (from_differential, from_snapshot)
}

#[test]
fn a_snapshot_only_profile_checks_what_it_adds_to_the_base() {
    let (from_differential, from_snapshot) = female_profiles();
    let patient =
        |members: &str| format!(r#"{{"resourceType":"Patient",{NARRATIVE},"id":"p1",{members}}}"#);
    let valid = patient(
        r#""extension":[{"url":"http://example.org/ext","valueString":"x"}],"name":[{"id":"n1","family":"Ng"}],"gender":"female","contact":[{"id":"c1","name":{"family":"Ng"},"gender":"male"}],"link":[{"id":"l1","other":{"reference":"Patient/p2"},"type":"seealso"}]"#,
    );
    assert_eq!(
        errors(&from_snapshot, &valid, Some(FEMALE)),
        Vec::<String>::new()
    );
    // Each break once: what the base checks is not reported again for the profile.
    let cases = [
        (r#""name":[{"family":"Ng"}],"gender":"male""#, 1),
        (r#""name":[{"family":"Ng"}],"gender":"woman""#, 2),
        (r#""gender":"female""#, 1),
        (r#""name":[{"family":"Ng"}]"#, 1),
        (
            r#""name":[{"family":"Ng"}],"gender":"female","contact":[{"name":{"family":"A"},"gender":"none"}]"#,
            1,
        ),
        (
            r#""name":[{"family":"Ng"}],"gender":"female","link":[{"other":{"reference":"Patient/p2"}}]"#,
            1,
        ),
        (
            r#""name":[{"family":"Ng"}],"gender":"female","active":true,"deceasedBoolean":true"#,
            1,
        ),
    ];
    for (members, n_errors) in cases {
        let resource = patient(members);
        let found = errors(&from_snapshot, &resource, Some(FEMALE));
        assert_eq!(found.len(), n_errors, "{resource}\n{found:?}");
        // The profile's own invariant is in its snapshot only; the rest the differential says too.
        if !members.contains("deceased") {
            assert_eq!(
                found,
                errors(&from_differential, &resource, Some(FEMALE)),
                "{resource}"
            );
        }
    }
}

/// The R4 package the model is generated from (`npm install` at the repository root), which
/// ships the specification's own profiles with both a differential and a snapshot.
fn r4_package() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules/hl7.fhir.r4.examples")
}

fn corpus_examples() -> std::path::PathBuf {
    match std::env::var_os("HEARTH_CORPUS") {
        Some(dir) => std::path::PathBuf::from(dir).join("examples"),
        None => {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/examples")
        }
    }
}

/// `definition` with only its differential, or only its snapshot.
fn one_view(definition: &serde_json::Value, keep: &str) -> Object {
    let mut definition = definition.clone();
    if let Some(members) = definition.as_object_mut() {
        members.remove(if keep == "snapshot" {
            "differential"
        } else {
            "snapshot"
        });
    }
    read(&definition.to_string())
}

#[test]
fn snapshot_only_profiles_give_the_verdicts_of_their_differentials() {
    let package = r4_package();
    let mut definitions = Vec::new();
    let mut value_set_ids = Vec::new();
    let listing = std::fs::read_dir(&package)
        .unwrap_or_else(|err| panic!("{}: {err} (run npm install)", package.display()));
    let mut names: Vec<String> = listing
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with("StructureDefinition-"))
        .collect();
    names.sort();
    for name in names {
        let text = std::fs::read_to_string(package.join(&name)).unwrap_or_default();
        let Ok(definition) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if definition["derivation"] != "constraint" || definition["kind"] != "resource" {
            continue;
        }
        for element in definition["snapshot"]["element"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(url) = element["binding"]["valueSet"].as_str() {
                let id = url.split('|').next().unwrap_or(url).rsplit('/').next();
                value_set_ids.extend(id.map(str::to_string));
            }
        }
        definitions.push(definition);
    }
    let mut from_differential = Profiles::new();
    let mut from_snapshot = Profiles::new();
    for id in &value_set_ids {
        if let Ok(text) = std::fs::read_to_string(package.join(format!("ValueSet-{id}.json"))) {
            from_differential.load(&read(&text));
            from_snapshot.load(&read(&text));
        }
    }
    let mut urls = Vec::new();
    for definition in &definitions {
        assert_eq!(
            from_differential.load(&one_view(definition, "differential")),
            1
        );
        assert_eq!(from_snapshot.load(&one_view(definition, "snapshot")), 1);
        let url = definition["url"].as_str().unwrap_or_default().to_string();
        urls.push((
            url,
            definition["type"].as_str().unwrap_or_default().to_string(),
        ));
    }
    // Messages name the profile that has the rule: the one asked for, or one it derives from.
    let anonymous = |found: Vec<String>| {
        let mut found: Vec<String> = found
            .into_iter()
            .map(|error| {
                urls.iter()
                    .fold(error, |error, (url, _)| error.replace(url.as_str(), "P"))
            })
            .collect();
        found.sort();
        found
    };
    let mut examples: Vec<_> = std::fs::read_dir(corpus_examples())
        .unwrap_or_else(|err| panic!("examples: {err}"))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    examples.sort();
    let (mut n_checks, mut n_with_errors, mut differences) = (0, 0, Vec::new());
    for example in &examples {
        let text = std::fs::read_to_string(example).unwrap_or_default();
        let Ok(resource) = parse_resource(text.as_bytes()) else {
            continue;
        };
        let type_name = resource.type_def().name;
        for (url, _) in urls.iter().filter(|(_, profiled)| profiled == type_name) {
            let by_differential = anonymous(errors(&from_differential, &text, Some(url)));
            let by_snapshot = anonymous(errors(&from_snapshot, &text, Some(url)));
            n_checks += 1;
            n_with_errors += usize::from(!by_snapshot.is_empty());
            // The same errors at the same places; a choice restricted to one type is worded
            // after the element in a snapshot and after the renamed element in a differential.
            let places = |found: &[String]| {
                let mut places: Vec<String> = found
                    .iter()
                    .map(|error| error.rsplit(" @ ").next().unwrap_or_default().to_string())
                    .collect();
                places.sort();
                places
            };
            if places(&by_differential) != places(&by_snapshot) {
                differences.push(format!(
                    "{} against {url}:\n  differential: {by_differential:?}\n  snapshot: {by_snapshot:?}",
                    example.display()
                ));
            }
        }
    }
    println!(
        "snapshot-only profiles: {} R4 profiles, {n_checks} example checks ({n_with_errors} with errors), {} differ from the differential",
        urls.len(),
        differences.len()
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn references_are_held_to_the_profiles_target_profiles() {
    let core = "http://hl7.org/fhir/StructureDefinition/";
    let mut profiles = Profiles::new();
    let patient_profile = profile(
        "http://example.org/fhir/StructureDefinition/some-patient",
        "Patient",
        &format!("{core}Patient"),
        r#"{"id":"Patient.active","path":"Patient.active","min":1}"#,
    );
    let observation_profile = profile(
        "http://example.org/fhir/StructureDefinition/patient-observation",
        "Observation",
        &format!("{core}Observation"),
        r#"{"id":"Observation.subject","path":"Observation.subject","type":[{"code":"Reference","targetProfile":["http://example.org/fhir/StructureDefinition/some-patient"]}]},
           {"id":"Observation.performer","path":"Observation.performer","type":[{"code":"Reference","targetProfile":["http://hl7.org/fhir/StructureDefinition/Practitioner","http://hl7.org/fhir/StructureDefinition/Organization"]}]},
           {"id":"Observation.encounter","path":"Observation.encounter","type":[{"code":"Reference","targetProfile":["http://example.org/fhir/StructureDefinition/not-loaded"]}]},
           {"id":"Observation.focus","path":"Observation.focus","type":[{"code":"Reference","targetProfile":["http://hl7.org/fhir/StructureDefinition/DomainResource"]}]}"#,
    );
    profiles.load(&patient_profile);
    profiles.load(&observation_profile);
    let url = Some("http://example.org/fhir/StructureDefinition/patient-observation");
    let observation = |subject: &str, performer: &str| {
        format!(
            r#"{{"resourceType":"Observation",{NARRATIVE},"status":"final","code":{{"text":"x"}},"subject":{{"reference":"{subject}"}},"performer":[{{"reference":"{performer}"}}],"encounter":{{"reference":"Encounter/e"}},"focus":[{{"reference":"Medication/m"}}]}}"#
        )
    };
    assert_eq!(
        errors(&profiles, &observation("Patient/p", "Practitioner/d"), url),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(
            &profiles,
            &observation("http://a.org/fhir/Patient/p/_history/2", "Organization/o"),
            url
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(&profiles, &observation("Group/g", "Practitioner/d"), url),
        ["expected a reference to a Patient (http://example.org/fhir/StructureDefinition/patient-observation), found a reference to a Group @ Observation.subject.reference"]
    );
    assert_eq!(
        errors(&profiles, &observation("Patient/p", "PractitionerRole/r"), url),
        ["expected a reference to a Practitioner or an Organization (http://example.org/fhir/StructureDefinition/patient-observation), found a reference to a PractitionerRole @ Observation.performer[0].reference"]
    );
}

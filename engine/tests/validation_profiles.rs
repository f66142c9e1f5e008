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

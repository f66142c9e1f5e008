//! Search through the REST handler over the in-memory store: every parameter type, the
//! modifiers and prefixes, chains, `_has`, includes, sorting, paging, `_summary`/`_elements`,
//! conditional interactions and custom search parameters.

use std::cell::Cell;

use hearth_engine::rest::{Clock, Request, Response, Service};
use hearth_engine::store::{block_on, MemoryStore, Store};

mod common;
use common::with_content_type;
use common::{Counter, FixedClock};

const BASE: &str = "http://localhost:8787/fhir";

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_default()
}

fn call<S: Store>(service: &Service<S>, method: &str, url: &str, body: &str) -> Response {
    call_with(service, method, url, &[], body)
}

fn call_with<S: Store>(
    service: &Service<S>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let url = url
        .strip_prefix(BASE)
        .unwrap_or(url)
        .trim_start_matches('/');
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let request = Request {
        method: method.into(),
        path: path.into(),
        query: query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
            .collect(),
        headers: with_content_type(headers, path, body),
        body: body.as_bytes().to_vec(),
    };
    block_on(service.handle(&request))
}

fn json(response: &Response) -> serde_json::Value {
    serde_json::from_str(&response.body).unwrap_or_default()
}

/// The ids of the matches of a search, sorted.
fn ids<S: Store>(service: &Service<S>, url: &str) -> Vec<String> {
    let response = call(service, "GET", url, "");
    assert_eq!(response.status, 200, "{url}: {}", response.body);
    let mut found = matches(&json(&response));
    found.sort();
    found
}

/// The ids of the match entries in order.
fn matches(bundle: &serde_json::Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|entry| entry["search"]["mode"] == "match")
                .map(|entry| {
                    entry["resource"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn put<S: Store>(service: &Service<S>, path: &str, body: &str) {
    let response = call(service, "PUT", path, body);
    assert!(
        response.status == 201 || response.status == 200,
        "{path}: {}",
        response.body
    );
}

const TEXT: &str =
    r#""text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}"#;

fn loaded() -> Service<MemoryStore> {
    let s = Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<Counter>::default(),
        BASE,
    );
    put(
        &s,
        "Organization/o1",
        &format!(
            r#"{{"resourceType":"Organization","id":"o1",{TEXT},"name":"Acme Health","partOf":{{"reference":"Organization/o2"}}}}"#
        ),
    );
    put(
        &s,
        "Organization/o2",
        &format!(r#"{{"resourceType":"Organization","id":"o2",{TEXT},"name":"Beta Care"}}"#),
    );
    put(
        &s,
        "Practitioner/pr1",
        &format!(
            r#"{{"resourceType":"Practitioner","id":"pr1",{TEXT},"name":[{{"family":"Osler"}}]}}"#
        ),
    );
    put(
        &s,
        "Patient/p1",
        &format!(
            r#"{{"resourceType":"Patient","id":"p1",{TEXT},
        "identifier":[{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}}]}},"system":"http://ids","value":"A1"}}],
        "active":true,"name":[{{"family":"Müller","given":["Anna"]}}],"telecom":[{{"system":"phone","value":"555-1000"}}],
        "gender":"female","birthDate":"1980-05-12","address":[{{"city":"Boston"}}],
        "generalPractitioner":[{{"reference":"Practitioner/pr1"}}],"managingOrganization":{{"reference":"Organization/o1"}}}}"#
        ),
    );
    put(
        &s,
        "Patient/p2",
        &format!(
            r#"{{"resourceType":"Patient","id":"p2",{TEXT},
        "identifier":[{{"system":"http://ids","value":"B2"}}],"active":false,
        "name":[{{"family":"Muller","given":["Bob"]}}],"gender":"male","birthDate":"1990",
        "address":[{{"city":"Paris"}}],"managingOrganization":{{"reference":"{BASE}/Organization/o2"}}}}"#
        ),
    );
    put(
        &s,
        "Patient/p3",
        &format!(
            r#"{{"resourceType":"Patient","id":"p3",{TEXT},
        "name":[{{"family":"Smith","given":["Carl"]}}],"gender":"other","birthDate":"1975-01-01"}}"#
        ),
    );
    let observation = |id: &str,
                       patient: &str,
                       status: &str,
                       code: &str,
                       value: &str,
                       effective: &str| {
        format!(
            r#"{{"resourceType":"Observation","id":"{id}",{TEXT},"status":"{status}","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}}]}}],
            "code":{{"coding":[{{"system":"http://loinc.org","code":"{code}","display":"Code {code}"}}],"text":"Measured {code}"}},
            "subject":{{"reference":"Patient/{patient}"}},{effective},"valueQuantity":{value}}}"#
        )
    };
    put(
        &s,
        "Observation/ob1",
        &observation(
            "ob1",
            "p1",
            "final",
            "8480-6",
            r#"{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}"#,
            r#""effectiveDateTime":"2021-03-04T10:00:00Z""#,
        ),
    );
    put(
        &s,
        "Observation/ob2",
        &observation(
            "ob2",
            "p1",
            "final",
            "29463-7",
            r#"{"value":70,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}"#,
            r#""effectivePeriod":{"start":"2021-01-01","end":"2021-01-31"}"#,
        ),
    );
    put(
        &s,
        "Observation/ob3",
        &observation(
            "ob3",
            "p2",
            "final",
            "29463-7",
            r#"{"value":70500,"unit":"g","system":"http://unitsofmeasure.org","code":"g"}"#,
            r#""effectiveDateTime":"2022-01-01""#,
        ),
    );
    put(
        &s,
        "Observation/ob4",
        &observation(
            "ob4",
            "p2",
            "preliminary",
            "8480-6",
            r#"{"value":140.0,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}"#,
            r#""effectiveDateTime":"2022-06-01T08:30:00+02:00""#,
        ),
    );
    put(
        &s,
        "RiskAssessment/r1",
        &format!(
            r#"{{"resourceType":"RiskAssessment","id":"r1",{TEXT},"status":"final",
        "subject":{{"reference":"Patient/p1"}},"prediction":[{{"probabilityDecimal":0.25}}]}}"#
        ),
    );
    put(
        &s,
        "RiskAssessment/r2",
        &format!(
            r#"{{"resourceType":"RiskAssessment","id":"r2",{TEXT},"status":"final",
        "subject":{{"reference":"Patient/p2"}},"prediction":[{{"probabilityDecimal":0.7}}]}}"#
        ),
    );
    put(
        &s,
        "ValueSet/v1",
        &format!(
            r#"{{"resourceType":"ValueSet","id":"v1",{TEXT},"status":"active","name":"V1","url":"http://acme.org/fhir/ValueSet/123"}}"#
        ),
    );
    s
}

#[test]
fn string_parameters_match_prefixes_case_and_accents() {
    let s = loaded();
    assert_eq!(ids(&s, "Patient?family=muller"), ["p1", "p2"]);
    assert_eq!(ids(&s, "Patient?family=MÜL"), ["p1", "p2"]);
    assert_eq!(ids(&s, "Patient?family:exact=Müller"), ["p1"]);
    assert_eq!(ids(&s, "Patient?family:exact=müller"), Vec::<String>::new());
    assert_eq!(ids(&s, "Patient?name:contains=ll"), ["p1", "p2"]);
    assert_eq!(ids(&s, "Patient?name=carl"), ["p3"]);
    assert_eq!(ids(&s, "Patient?address-city=bos"), ["p1"]);
    assert_eq!(ids(&s, "Patient?name=anna,bob"), ["p1", "p2"]);
    assert_eq!(ids(&s, "Patient?name=muller&name=bob"), ["p2"]);
}

#[test]
fn token_parameters() {
    let s = loaded();
    assert_eq!(ids(&s, "Patient?gender=female"), ["p1"]);
    assert_eq!(ids(&s, "Patient?gender:not=female"), ["p2", "p3"]);
    assert_eq!(ids(&s, "Patient?identifier=http://ids%7CA1"), ["p1"]);
    assert_eq!(ids(&s, "Patient?identifier=B2"), ["p2"]);
    assert_eq!(
        ids(&s, "Patient?identifier=http://other%7CA1"),
        Vec::<String>::new()
    );
    assert_eq!(ids(&s, "Patient?identifier=http://ids%7C"), ["p1", "p2"]);
    assert_eq!(ids(&s, "Patient?identifier=%7CA1"), Vec::<String>::new());
    assert_eq!(
        ids(
            &s,
            "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203%7CMR%7CA1"
        ),
        ["p1"]
    );
    assert_eq!(ids(&s, "Patient?active=true"), ["p1"]);
    assert_eq!(ids(&s, "Patient?telecom=555-1000"), ["p1"]);
    assert_eq!(
        ids(&s, "Observation?code=http://loinc.org%7C8480-6"),
        ["ob1", "ob4"]
    );
    assert_eq!(
        ids(&s, "Observation?code:text=measured 294"),
        ["ob2", "ob3"]
    );
    assert_eq!(ids(&s, "Observation?code:text=code 8480"), ["ob1", "ob4"]);
    assert_eq!(ids(&s, "Patient?_id=p2,p3"), ["p2", "p3"]);
    assert_eq!(
        ids(
            &s,
            "Patient?gender:in=http://hl7.org/fhir/ValueSet/administrative-gender"
        ),
        Vec::<String>::new(),
        "codes without a system are not in a value set of system-qualified codes"
    );
    assert_eq!(
        ids(
            &s,
            "Observation?status:not-in=http://hl7.org/fhir/ValueSet/observation-status"
        ),
        ["ob1", "ob2", "ob3", "ob4"]
    );
}

#[test]
fn date_parameters_compare_ranges_with_every_prefix() {
    let s = loaded();
    assert_eq!(ids(&s, "Patient?birthdate=1980"), ["p1"]);
    assert_eq!(ids(&s, "Patient?birthdate=1980-05-12"), ["p1"]);
    assert_eq!(ids(&s, "Patient?birthdate=1980-05"), ["p1"]);
    assert_eq!(
        ids(&s, "Patient?birthdate=1990-03-01"),
        Vec::<String>::new(),
        "1990 is wider than one day"
    );
    assert_eq!(ids(&s, "Patient?birthdate=ne1980"), ["p2", "p3"]);
    assert_eq!(ids(&s, "Patient?birthdate=gt1980"), ["p2"]);
    assert_eq!(ids(&s, "Patient?birthdate=ge1980"), ["p1", "p2"]);
    assert_eq!(ids(&s, "Patient?birthdate=lt1980"), ["p3"]);
    assert_eq!(ids(&s, "Patient?birthdate=le1980-05-12"), ["p1", "p3"]);
    assert_eq!(ids(&s, "Patient?birthdate=sa1980-12-31"), ["p2"]);
    assert_eq!(ids(&s, "Patient?birthdate=eb1980-01-01"), ["p3"]);
    assert_eq!(ids(&s, "Patient?birthdate=ap1980-05-20"), ["p1"]);
    assert_eq!(
        ids(&s, "Patient?birthdate=ge1975&birthdate=lt1985"),
        ["p1", "p3"]
    );
    // Periods and time zones.
    assert_eq!(ids(&s, "Observation?date=2021-01"), ["ob2"]);
    assert_eq!(ids(&s, "Observation?date=2021"), ["ob1", "ob2"]);
    assert_eq!(ids(&s, "Observation?date=2021-01-15"), Vec::<String>::new());
    assert_eq!(ids(&s, "Observation?date=2022-06-01T06:30:00Z"), ["ob4"]);
    assert_eq!(ids(&s, "Observation?date=gt2021-12-31"), ["ob3", "ob4"]);
    assert_eq!(
        ids(&s, "Patient?_lastUpdated=2026-11-27"),
        ["p1", "p2", "p3"]
    );
    let bad = call(&s, "GET", "Patient?birthdate=yesterday", "");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("yesterday"), "{}", bad.body);
}

#[test]
fn number_and_quantity_parameters() {
    let s = loaded();
    assert_eq!(ids(&s, "RiskAssessment?probability=0.25"), ["r1"]);
    // 0.3 means [0.25, 0.35).
    assert_eq!(ids(&s, "RiskAssessment?probability=0.3"), ["r1"]);
    assert_eq!(ids(&s, "RiskAssessment?probability=0.250"), ["r1"]);
    assert_eq!(
        ids(&s, "RiskAssessment?probability=0.26"),
        Vec::<String>::new()
    );
    assert_eq!(ids(&s, "RiskAssessment?probability=gt0.5"), ["r2"]);
    assert_eq!(ids(&s, "RiskAssessment?probability=le0.7"), ["r1", "r2"]);
    assert_eq!(ids(&s, "RiskAssessment?probability=ne0.25"), ["r2"]);
    assert_eq!(ids(&s, "RiskAssessment?probability=ap0.69"), ["r2"]);
    // UCUM: 70 kg and 70500 g compare in grams.
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=70%7Chttp://unitsofmeasure.org%7Ckg"
        ),
        ["ob2"]
    );
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=gt69%7Chttp://unitsofmeasure.org%7Ckg"
        ),
        ["ob2", "ob3"]
    );
    assert_eq!(ids(&s, "Observation?value-quantity=70500%7C%7Cg"), ["ob3"]);
    assert_eq!(
        ids(&s, "Observation?value-quantity=le70000%7C%7Cg"),
        ["ob2"]
    );
    assert_eq!(ids(&s, "Observation?value-quantity=140"), ["ob4"]);
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=ge120%7Chttp://unitsofmeasure.org%7Cmm[Hg]"
        ),
        ["ob1", "ob4"]
    );
}

#[test]
fn reference_and_uri_parameters() {
    let s = loaded();
    assert_eq!(ids(&s, "Observation?subject=Patient/p1"), ["ob1", "ob2"]);
    assert_eq!(ids(&s, "Observation?subject=p2"), ["ob3", "ob4"]);
    assert_eq!(ids(&s, "Observation?subject:Patient=p2"), ["ob3", "ob4"]);
    assert_eq!(
        ids(&s, "Observation?subject:Group=p2"),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&s, &format!("Observation?patient={BASE}/Patient/p1")),
        ["ob1", "ob2"]
    );
    // An absolute reference to this server matches its relative form.
    assert_eq!(ids(&s, "Patient?organization=Organization/o2"), ["p2"]);
    assert_eq!(ids(&s, "Patient?organization:missing=true"), ["p3"]);
    assert_eq!(ids(&s, "Patient?organization:missing=false"), ["p1", "p2"]);
    assert_eq!(
        ids(&s, "ValueSet?url=http://acme.org/fhir/ValueSet/123"),
        ["v1"]
    );
    assert_eq!(ids(&s, "ValueSet?url:below=http://acme.org/fhir"), ["v1"]);
    assert_eq!(
        ids(&s, "ValueSet?url:below=http://acme.org/other"),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(
            &s,
            "ValueSet?url:above=http://acme.org/fhir/ValueSet/123/_history/5"
        ),
        ["v1"]
    );
}

#[test]
fn chains_and_reverse_chains() {
    let s = loaded();
    assert_eq!(
        ids(&s, "Observation?subject:Patient.name=anna"),
        ["ob1", "ob2"]
    );
    assert_eq!(ids(&s, "Observation?subject.gender=male"), ["ob3", "ob4"]);
    assert_eq!(
        ids(&s, "Observation?subject:Patient.organization.name=acme"),
        ["ob1", "ob2"]
    );
    assert_eq!(
        ids(&s, "Observation?patient.organization.partof.name=beta"),
        ["ob1", "ob2"]
    );
    assert_eq!(
        ids(&s, "Patient?_has:Observation:patient:code=29463-7"),
        ["p1", "p2"]
    );
    assert_eq!(
        ids(&s, "Patient?_has:Observation:patient:status=preliminary"),
        ["p2"]
    );
    assert_eq!(
        ids(
            &s,
            "Organization?_has:Patient:organization:_has:Observation:patient:status=preliminary"
        ),
        ["o2"]
    );
    assert_eq!(
        ids(&s, "Patient?_has:Observation:patient:status=cancelled"),
        Vec::<String>::new()
    );
    let bad = call(&s, "GET", "Observation?status.name=x", "");
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn composite_parameters_match_within_one_item() {
    let s = loaded();
    assert_eq!(
        ids(
            &s,
            "Observation?code-value-quantity=http://loinc.org%7C8480-6$gt130"
        ),
        ["ob4"]
    );
    assert_eq!(
        ids(
            &s,
            "Observation?code-value-quantity=8480-6$lt130,29463-7$gt70000%7C%7Cg"
        ),
        ["ob1", "ob3"]
    );
    let bad = call(&s, "GET", "Observation?code-value-quantity=8480-6", "");
    assert_eq!(bad.status, 400);
}

#[test]
fn includes_and_revincludes() {
    let s = loaded();
    let bundle = json(&call(
        &s,
        "GET",
        "Observation?code=8480-6&_include=Observation:subject",
        "",
    ));
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    let included: Vec<&str> = entries
        .iter()
        .filter(|entry| entry["search"]["mode"] == "include")
        .map(|entry| entry["resource"]["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(matches(&bundle).len(), 2);
    assert_eq!(included.len(), 2, "{bundle}");
    assert_eq!(bundle["total"], 2);
    let bundle = json(&call(&s, "GET", "Patient?_id=p1&_revinclude=Observation:subject&_include=Patient:organization&_include:iterate=Organization:partof", ""));
    let mut included: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["search"]["mode"] == "include")
        .map(|entry| {
            format!(
                "{}/{}",
                entry["resource"]["resourceType"]
                    .as_str()
                    .unwrap_or_default(),
                entry["resource"]["id"].as_str().unwrap_or_default()
            )
        })
        .collect();
    included.sort();
    assert_eq!(
        included,
        [
            "Observation/ob1",
            "Observation/ob2",
            "Organization/o1",
            "Organization/o2"
        ]
    );
    let star = json(&call(&s, "GET", "Patient?_id=p1&_include=Patient:*", ""));
    assert_eq!(star["entry"].as_array().map_or(0, Vec::len), 3, "{star}");
}

#[test]
fn sorting_and_paging_are_stable_under_writes() {
    let s = loaded();
    let sorted = json(&call(&s, "GET", "Patient?_sort=birthdate", ""));
    assert_eq!(matches(&sorted), ["p3", "p1", "p2"]);
    let sorted = json(&call(&s, "GET", "Patient?_sort=-birthdate", ""));
    assert_eq!(matches(&sorted), ["p2", "p1", "p3"]);
    let sorted = json(&call(&s, "GET", "Patient?_sort=family,-given", ""));
    assert_eq!(matches(&sorted), ["p2", "p1", "p3"]);
    let sorted = json(&call(&s, "GET", "Observation?_sort=subject,-date", ""));
    assert_eq!(matches(&sorted), ["ob1", "ob2", "ob4", "ob3"]);
    // Pages of 2 over 3 patients, with a patient created between the pages.
    let first = json(&call(&s, "GET", "Patient?_count=2&_sort=family", ""));
    assert_eq!(
        matches(&first),
        ["p1", "p2"],
        "müller and muller fold to one key; the order they were stored in breaks the tie"
    );
    let next = first["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|link| link["relation"] == "next")
        .and_then(|link| link["url"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(next.starts_with(&format!("{BASE}/Patient?")), "{next}");
    put(
        &s,
        "Patient/p0",
        &format!(r#"{{"resourceType":"Patient","id":"p0",{TEXT},"name":[{{"family":"Aaron"}}]}}"#),
    );
    let second = json(&call(&s, "GET", &next, ""));
    assert_eq!(
        matches(&second),
        ["p3"],
        "a write before the cursor shifts nothing"
    );
    assert!(second["link"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|link| link["relation"] != "next"));
    let previous = second["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|link| link["relation"] == "previous")
        .and_then(|link| link["url"].as_str())
        .unwrap_or_default()
        .to_string();
    let back = json(&call(&s, "GET", &previous, ""));
    assert_eq!(matches(&back), ["p1", "p2"]);
    assert_eq!(back["total"], 4);
    let count_only = json(&call(&s, "GET", "Patient?_summary=count&_count=1", ""));
    assert_eq!(count_only["total"], 4);
    assert!(count_only["entry"].as_array().is_none_or(Vec::is_empty));
    assert!(
        count_only["link"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|link| link["relation"] != "next"),
        "{count_only}"
    );
    let none = json(&call(&s, "GET", "Patient?_total=none", ""));
    assert!(none.get("total").is_none());
    assert_eq!(call(&s, "GET", "Patient?_count=x", "").status, 400);
    assert_eq!(call(&s, "GET", "Patient?_cursor=zz", "").status, 400);
    assert_eq!(call(&s, "GET", "Patient?_sort=nonsense", "").status, 400);
}

#[test]
fn summary_and_elements_subset_resources() {
    let s = loaded();
    let bundle = json(&call(&s, "GET", "Patient?_id=p1&_elements=gender", ""));
    let patient = &bundle["entry"][0]["resource"];
    assert_eq!(patient["gender"], "female");
    assert!(patient.get("name").is_none());
    assert_eq!(patient["meta"]["tag"][0]["code"], "SUBSETTED");
    let bundle = json(&call(&s, "GET", "Patient?_id=p1&_summary=true", ""));
    let patient = &bundle["entry"][0]["resource"];
    assert!(patient.get("text").is_none());
    assert!(patient.get("name").is_some());
    let bundle = json(&call(&s, "GET", "Patient?_id=p1&_summary=data", ""));
    assert!(bundle["entry"][0]["resource"].get("text").is_none());
    assert!(bundle["entry"][0]["resource"].get("address").is_some());
    let bundle = json(&call(&s, "GET", "Observation?_id=ob1&_summary=text", ""));
    let observation = &bundle["entry"][0]["resource"];
    assert!(observation.get("text").is_some() && observation.get("status").is_some());
    assert!(observation.get("valueQuantity").is_none());
}

#[test]
fn unknown_parameters_are_refused_or_reported() {
    let s = loaded();
    let refused = call(&s, "GET", "Patient?colour=blue", "");
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("colour"));
    let lenient = call_with(
        &s,
        "GET",
        "Patient?colour=blue&gender=male",
        &[("prefer", "handling=lenient")],
        "",
    );
    assert_eq!(lenient.status, 200);
    let bundle = json(&lenient);
    assert_eq!(matches(&bundle), ["p2"]);
    assert!(lenient.body.contains(r#""mode":"outcome""#) && lenient.body.contains("colour"));
    assert_eq!(call(&s, "GET", "Patient?_text=x", "").status, 400);
    assert_eq!(call(&s, "GET", "Patient?gender:exact=male", "").status, 400);
    assert_eq!(
        call(&s, "GET", "Patient?birthdate:contains=1", "").status,
        400
    );
    let hostile = "x".repeat(100_000);
    assert_eq!(
        call(&s, "GET", &format!("Patient?name={hostile}"), "").status,
        200
    );
    assert_eq!(
        call(&s, "GET", &format!("Patient?birthdate={hostile}"), "").status,
        400
    );
    assert_eq!(
        call(&s, "GET", "Patient?_has:Observation=x", "").status,
        400
    );
    let deep = "Observation?subject:Patient.organization.partof.partof.partof.partof.name=x";
    assert_eq!(call(&s, "GET", deep, "").status, 400);
}

#[test]
fn system_search_and_post_search() {
    let s = loaded();
    let bundle = json(&call(
        &s,
        "GET",
        "?_type=Patient,Organization&_id=p1,o2",
        "",
    ));
    let mut found = matches(&bundle);
    found.sort();
    assert_eq!(found, ["o2", "p1"]);
    let all = json(&call(&s, "GET", "?_lastUpdated=2026", ""));
    assert_eq!(all["total"], 13);
    let posted = call_with(
        &s,
        "POST",
        "Patient/_search",
        &[("content-type", "application/x-www-form-urlencoded")],
        "family=m%C3%BCller&given=anna+maria,anna",
    );
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert_eq!(matches(&json(&posted)), ["p1"]);
}

#[test]
fn updates_and_deletes_keep_the_index_current() {
    let s = loaded();
    put(
        &s,
        "Patient/p3",
        &format!(
            r#"{{"resourceType":"Patient","id":"p3",{TEXT},"name":[{{"family":"Jones"}}],"gender":"female"}}"#
        ),
    );
    assert_eq!(ids(&s, "Patient?family=smith"), Vec::<String>::new());
    assert_eq!(ids(&s, "Patient?family=jones"), ["p3"]);
    assert_eq!(ids(&s, "Patient?gender=female"), ["p1", "p3"]);
    assert_eq!(call(&s, "DELETE", "Patient/p3", "").status, 204);
    assert_eq!(ids(&s, "Patient?gender=female"), ["p1"]);
    assert_eq!(ids(&s, "Patient"), ["p1", "p2"]);
}

#[test]
fn conditional_create_update_and_delete() {
    let s = loaded();
    let body = format!(
        r#"{{"resourceType":"Patient",{TEXT},"identifier":[{{"system":"http://ids","value":"C3"}}]}}"#
    );
    let created = call_with(
        &s,
        "POST",
        "Patient",
        &[("if-none-exist", "identifier=http://ids|C3")],
        &body,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let again = call_with(
        &s,
        "POST",
        "Patient",
        &[("if-none-exist", "identifier=http://ids|C3")],
        &body,
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(ids(&s, "Patient?identifier=C3").len(), 1);
    let many = call_with(
        &s,
        "POST",
        "Patient",
        &[("if-none-exist", "family=muller")],
        &body,
    );
    assert_eq!(many.status, 412);
    // Conditional update: one match updates it, none creates, several refuse.
    let update = format!(
        r#"{{"resourceType":"Patient",{TEXT},"identifier":[{{"system":"http://ids","value":"C3"}}],"gender":"unknown"}}"#
    );
    let updated = call(&s, "PUT", "Patient?identifier=http://ids%7CC3", &update);
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(ids(&s, "Patient?gender=unknown").len(), 1);
    let fresh = format!(
        r#"{{"resourceType":"Patient",{TEXT},"identifier":[{{"system":"http://ids","value":"D4"}}]}}"#
    );
    assert_eq!(
        call(&s, "PUT", "Patient?identifier=http://ids%7CD4", &fresh).status,
        201
    );
    assert_eq!(call(&s, "PUT", "Patient?family=muller", &fresh).status, 412);
    // Conditional delete.
    assert_eq!(call(&s, "DELETE", "Patient?family=muller", "").status, 412);
    assert_eq!(call(&s, "DELETE", "Patient?identifier=D4", "").status, 204);
    assert_eq!(ids(&s, "Patient?identifier=D4"), Vec::<String>::new());
}

#[test]
fn custom_search_parameters_apply_after_reindex() {
    let s = loaded();
    let param = format!(
        r#"{{"resourceType":"SearchParameter","id":"eye",{TEXT},"url":"http://acme.org/SearchParameter/patient-city-upper","name":"city2","status":"active","description":"x","code":"town","base":["Patient"],"type":"string","expression":"Patient.address.city"}}"#
    );
    put(&s, "SearchParameter/eye", &param);
    assert_eq!(
        ids(&s, "Patient?town=paris"),
        Vec::<String>::new(),
        "not indexed before a reindex"
    );
    let reindexed = call(&s, "POST", "Patient/$reindex", "");
    assert_eq!(reindexed.status, 200, "{}", reindexed.body);
    assert_eq!(ids(&s, "Patient?town=paris"), ["p2"]);
    put(
        &s,
        "Patient/p5",
        &format!(
            r#"{{"resourceType":"Patient","id":"p5",{TEXT},"address":[{{"city":"Parisot"}}]}}"#
        ),
    );
    assert_eq!(ids(&s, "Patient?town=paris"), ["p2", "p5"]);
    let broken = param.replace("Patient.address.city", "Patient.address.(");
    assert_eq!(call(&s, "PUT", "SearchParameter/eye", &broken).status, 422);
    // Deleting the last stored parameter takes it out of force.
    assert_eq!(call(&s, "DELETE", "SearchParameter/eye", "").status, 204);
    assert_eq!(call(&s, "GET", "Patient?town=paris", "").status, 400);
}

#[test]
fn transactions_resolve_conditional_entries_and_references() {
    let s = loaded();
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[
        {{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":{{"resourceType":"Organization",{TEXT},"identifier":[{{"system":"http://orgs","value":"X"}}],"name":"X"}},"request":{{"method":"POST","url":"Organization","ifNoneExist":"identifier=http://orgs|X"}}}},
        {{"resource":{{"resourceType":"Patient",{TEXT},"managingOrganization":{{"reference":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},"generalPractitioner":[{{"reference":"Practitioner?family=osler"}}]}},"request":{{"method":"POST","url":"Patient"}}}}]}}"#
    );
    let first = call(&s, "POST", "", &bundle);
    assert_eq!(first.status, 200, "{}", first.body);
    let second = call(&s, "POST", "", &bundle);
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        ids(&s, "Organization?identifier=http://orgs%7CX").len(),
        1,
        "ifNoneExist kept the second from creating"
    );
    let org = ids(&s, "Organization?identifier=X");
    assert_eq!(
        ids(&s, &format!("Patient?organization=Organization/{}", org[0])).len(),
        2
    );
    assert_eq!(
        ids(&s, "Patient?general-practitioner=Practitioner/pr1").len(),
        3
    );
    let ambiguous = bundle.replace("Practitioner?family=osler", "Patient?family=muller");
    let refused = call(&s, "POST", "", &ambiguous);
    assert_eq!(refused.status, 412, "{}", refused.body);
}

#[test]
fn json_patch_updates_and_conditional_patch() {
    let s = loaded();
    let patch = |url: &str, headers: &[(&str, &str)], body: &str| {
        let mut all = vec![("content-type", "application/json-patch+json")];
        all.extend_from_slice(headers);
        call_with(&s, "PATCH", url, &all, body)
    };
    let patched = patch(
        "Patient/p3",
        &[],
        r#"[{"op":"replace","path":"/gender","value":"female"},{"op":"add","path":"/name/0/given/-","value":"Dora"}]"#,
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    let body = json(&patched);
    assert_eq!(body["gender"], "female");
    assert_eq!(body["name"][0]["given"][1], "Dora");
    assert_eq!(body["meta"]["versionId"], "2");
    assert_eq!(ids(&s, "Patient?given=dora"), ["p3"]);
    let failed = patch(
        "Patient/p3",
        &[],
        r#"[{"op":"test","path":"/gender","value":"male"}]"#,
    );
    assert_eq!(failed.status, 422);
    let invalid = patch(
        "Patient/p3",
        &[],
        r#"[{"op":"replace","path":"/gender","value":"hen"}]"#,
    );
    assert_eq!(
        invalid.status, 422,
        "the patched resource is validated: {}",
        invalid.body
    );
    assert_eq!(
        patch("Patient/p3", &[("if-match", "W/\"1\"")], "[]").status,
        412
    );
    assert_eq!(patch("Patient/nope", &[], "[]").status, 404);
    assert_eq!(patch("Patient/p3", &[], r#"{"op":"x"}"#).status, 400);
    assert_eq!(patch("Patient/p3", &[], "[").status, 400);
    assert_eq!(
        patch(
            "Patient/p3",
            &[],
            r#"[{"op":"replace","path":"/id","value":"other"}]"#
        )
        .status,
        400
    );
    let wrong_type = call_with(
        &s,
        "PATCH",
        "Patient/p3",
        &[("content-type", "application/xml")],
        "<x/>",
    );
    assert_eq!(wrong_type.status, 415);
    let conditional = patch(
        "Patient?identifier=B2",
        &[],
        r#"[{"op":"replace","path":"/active","value":true}]"#,
    );
    assert_eq!(conditional.status, 200, "{}", conditional.body);
    assert_eq!(ids(&s, "Patient?active=true"), ["p1", "p2"]);
    assert_eq!(patch("Patient?family=muller", &[], "[]").status, 412);
}

#[test]
fn compartments_and_everything() {
    let s = loaded();
    assert_eq!(ids(&s, "Patient/p1/Observation"), ["ob1", "ob2"]);
    assert_eq!(ids(&s, "Patient/p1/Observation?code=8480-6"), ["ob1"]);
    assert_eq!(ids(&s, "Patient/p2/RiskAssessment"), ["r2"]);
    let mut all = ids(&s, "Patient/p1/*");
    all.sort();
    assert_eq!(all, ["ob1", "ob2", "p1", "r1"]);
    assert_eq!(
        ids(&s, "Patient/p1/Organization"),
        Vec::<String>::new(),
        "organizations are not in the compartment"
    );
    let everything = json(&call(&s, "GET", "Patient/p1/$everything", ""));
    let mut found: Vec<String> = everything["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            format!(
                "{}/{}",
                entry["resource"]["resourceType"]
                    .as_str()
                    .unwrap_or_default(),
                entry["resource"]["id"].as_str().unwrap_or_default()
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "Observation/ob1",
            "Observation/ob2",
            "Organization/o1",
            "Patient/p1",
            "Practitioner/pr1",
            "RiskAssessment/r1"
        ]
    );
    let typed = json(&call(
        &s,
        "GET",
        "Patient/p1/$everything?_type=Observation",
        "",
    ));
    assert_eq!(typed["total"], 2);
    assert_eq!(call(&s, "GET", "Nonsense/p1/Observation", "").status, 404);
}

#[test]
fn capability_statement_states_the_search_support() {
    let s = loaded();
    let response = call(&s, "GET", "metadata", "");
    assert_eq!(response.status, 200);
    let statement = json(&response);
    let patient = statement["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|resource| resource["type"] == "Patient")
        .cloned()
        .unwrap_or_default();
    let params: Vec<&str> = patient["searchParam"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|param| param["name"].as_str())
        .collect();
    for wanted in [
        "birthdate",
        "family",
        "_id",
        "_lastUpdated",
        "organization",
        "general-practitioner",
    ] {
        assert!(params.contains(&wanted), "{wanted} missing from {params:?}");
    }
    assert_eq!(patient["conditionalDelete"], "single");
    let revincludes = patient["searchRevInclude"].to_string();
    assert!(revincludes.contains("Observation:subject"), "{revincludes}");
    let mut validator = hearth_engine::validation::Validator::new();
    let resource = hearth_engine::json::fhir::parse_resource(response.body.as_bytes())
        .unwrap_or_else(|err| panic!("{err:?}"));
    let errors: Vec<_> = validator
        .validate_with(
            &resource,
            &hearth_engine::validation::ValidateOptions::default(),
        )
        .into_iter()
        .filter(|finding| finding.severity == hearth_engine::outcome::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn conditional_read_pretty_output_and_formats() {
    let s = loaded();
    let fresh = call_with(
        &s,
        "GET",
        "Patient/p1",
        &[("if-modified-since", "Fri, 27 Nov 2026 10:20:30 GMT")],
        "",
    );
    assert_eq!(fresh.status, 304);
    let stale = call_with(
        &s,
        "GET",
        "Patient/p1",
        &[("if-modified-since", "Thu, 26 Nov 2026 10:20:30 GMT")],
        "",
    );
    assert_eq!(stale.status, 200);
    let bad_date = call_with(
        &s,
        "GET",
        "Patient/p1",
        &[("if-modified-since", "yesterday")],
        "",
    );
    assert_eq!(bad_date.status, 200);
    let pretty = call(&s, "GET", "Patient/p1?_pretty=true", "");
    assert!(
        pretty
            .body
            .starts_with("{\n  \"resourceType\": \"Patient\""),
        "{}",
        pretty.body
    );
    assert_eq!(json(&pretty)["id"], "p1");
    let xml = call_with(
        &s,
        "POST",
        "Patient",
        &[("content-type", "application/fhir+xml")],
        "<Patient/>",
    );
    assert_eq!(xml.status, 415);
    let accept = call_with(
        &s,
        "GET",
        "Patient/p1",
        &[("accept", "application/fhir+xml")],
        "",
    );
    assert_eq!(accept.status, 406);
    let any = call_with(
        &s,
        "GET",
        "Patient/p1",
        &[("accept", "application/fhir+json, */*;q=0.1")],
        "",
    );
    assert_eq!(any.status, 200);
}

#[test]
fn fhirpath_patch_operations() {
    let s = loaded();
    let patch = |url: &str, operations: &str| {
        call_with(
            &s,
            "PATCH",
            url,
            &[("content-type", "application/fhir+json")],
            &format!(r#"{{"resourceType":"Parameters","parameter":[{operations}]}}"#),
        )
    };
    let op = |parts: &str| format!(r#"{{"name":"operation","part":[{parts}]}}"#);
    let added = patch(
        "Patient/p3",
        &[
            op(r#"{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"identifier"},{"name":"value","valueIdentifier":{"system":"http://ids","value":"Z9"}}"#),
            op(r#"{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":0},{"name":"value","valueIdentifier":{"system":"http://ids","value":"Z0"}}"#),
            op(r#"{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueDate":"1976-02-02"}"#),
            op(r#"{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient.name[0]"},{"name":"name","valueString":"given"},{"name":"value","valueString":"Zed"}"#),
            op(r#"{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name[0].given"},{"name":"source","valueInteger":1},{"name":"destination","valueInteger":0}"#),
            op(r#"{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"deceased"},{"name":"value","valueBoolean":false}"#),
        ]
        .join(","),
    );
    assert_eq!(added.status, 200, "{}", added.body);
    let body = json(&added);
    assert_eq!(body["identifier"][0]["value"], "Z0");
    assert_eq!(body["identifier"][1]["value"], "Z9");
    assert_eq!(body["birthDate"], "1976-02-02");
    assert_eq!(body["name"][0]["given"], serde_json::json!(["Zed", "Carl"]));
    assert_eq!(body["deceasedBoolean"], false);
    assert_eq!(ids(&s, "Patient?identifier=Z9"), ["p3"]);
    let deleted = patch(
        "Patient/p3",
        &[
            op(r#"{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.identifier.where(value='Z0')"}"#),
            op(r#"{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.photo"}"#),
            op(r#"{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.deceased"}"#),
        ]
        .join(","),
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let body = json(&deleted);
    assert_eq!(body["identifier"].as_array().map(Vec::len), Some(1));
    assert!(body.get("deceasedBoolean").is_none());
    // Errors: several matches, a wrong element, a bad type, an unparsable path.
    for bad in [
        op(
            r#"{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.given"}"#,
        ),
        op(
            r#"{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"colour"},{"name":"value","valueString":"x"}"#,
        ),
        op(
            r#"{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueIdentifier":{"value":"x"}}"#,
        ),
        op(
            r#"{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.("},{"name":"value","valueString":"x"}"#,
        ),
        op(r#"{"name":"type","valueCode":"twist"},{"name":"path","valueString":"Patient"}"#),
        op(
            r#"{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"hen"}"#,
        ),
    ] {
        let response = patch("Patient/p3", &bad);
        assert_eq!(response.status, 422, "{bad}: {}", response.body);
    }
    let not_parameters = call_with(
        &s,
        "PATCH",
        "Patient/p3",
        &[("content-type", "application/fhir+json")],
        r#"{"resourceType":"Patient"}"#,
    );
    assert_eq!(not_parameters.status, 400);
}

/// A clock that moves one day forward at each reading.
#[derive(Default)]
struct DailyClock(Cell<u32>);
impl Clock for DailyClock {
    fn now(&self) -> String {
        self.0.set(self.0.get() + 1);
        format!("2026-01-{:02}T12:00:00.000Z", self.0.get())
    }
}

#[test]
fn history_with_at_since_and_count() {
    let s = Service::new(
        MemoryStore::new(),
        Box::<DailyClock>::default(),
        Box::<Counter>::default(),
        BASE,
    );
    let body = |id: &str, gender: &str| {
        format!(r#"{{"resourceType":"Patient","id":"{id}",{TEXT},"gender":"{gender}"}}"#)
    };
    put(&s, "Patient/a", &body("a", "male")); // Jan 1
    put(&s, "Patient/b", &body("b", "male")); // Jan 2
    put(&s, "Patient/a", &body("a", "female")); // Jan 3
    assert_eq!(call(&s, "DELETE", "Patient/b", "").status, 204); // Jan 4
    put(&s, "Patient/a", &body("a", "other")); // Jan 5
    let versions = |url: &str| -> Vec<String> {
        let response = call(&s, "GET", url, "");
        assert_eq!(response.status, 200, "{url}: {}", response.body);
        json(&response)["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                format!(
                    "{}@{}",
                    entry["fullUrl"]
                        .as_str()
                        .unwrap_or_default()
                        .rsplit('/')
                        .next()
                        .unwrap_or_default(),
                    entry["response"]["etag"]
                        .as_str()
                        .unwrap_or_default()
                        .replace(['W', '/', '"'], "")
                )
            })
            .collect()
    };
    assert_eq!(versions("Patient/a/_history"), ["a@3", "a@2", "a@1"]);
    assert_eq!(versions("Patient/a/_history?_count=1"), ["a@3"]);
    assert_eq!(
        versions("Patient/a/_history?_since=2026-01-03T00:00:00Z"),
        ["a@3", "a@2"]
    );
    assert_eq!(versions("Patient/a/_history?_at=2026-01-02"), ["a@1"]);
    assert_eq!(
        versions("Patient/a/_history?_at=2026-01-03"),
        ["a@2", "a@1"]
    );
    assert_eq!(
        versions("Patient/_history?_at=2026-01-03"),
        ["a@2", "b@1", "a@1"]
    );
    assert_eq!(
        versions("_history?_at=2026-01-04T18:00:00Z"),
        ["b@2", "a@2"]
    );
    assert_eq!(
        versions("_history?_since=2026-01-04T00:00:00Z"),
        ["a@3", "b@2"]
    );
    let empty = call(&s, "GET", "_history?_since=2030-01-01T00:00:00Z", "");
    assert!(!empty.body.contains("\"entry\""), "{}", empty.body);
    assert_eq!(call(&s, "GET", "_history?_at=soon", "").status, 400);
    assert_eq!(
        call(&s, "GET", "Patient/a/_history?_since=2026", "").status,
        400
    );
    let none = call(&s, "GET", "Patient?gender=unknown", "");
    assert!(!none.body.contains("\"entry\""), "{}", none.body);
}

/// A small deterministic generator (xorshift), so that the hostile queries are the same on
/// every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn hostile_queries_get_answers_not_panics() {
    let s = loaded();
    let names = [
        "name",
        "family",
        "birthdate",
        "gender",
        "identifier",
        "subject",
        "patient",
        "code",
        "value-quantity",
        "date",
        "probability",
        "url",
        "_id",
        "_lastUpdated",
        "_has",
        "_sort",
        "_count",
        "_include",
        "_revinclude",
        "_summary",
        "_elements",
        "_cursor",
        "_total",
        "code-value-quantity",
        "organization",
        "_type",
        "",
        ":",
        ".",
        "$",
    ];
    let modifiers = [
        "",
        ":exact",
        ":contains",
        ":missing",
        ":not",
        ":text",
        ":of-type",
        ":in",
        ":below",
        ":above",
        ":Patient",
        ":identifier",
        ":iterate",
        ":",
        "::",
        ".name",
        ".organization.name",
        ":Observation:patient:code",
        ":Observation:subject:_has:Patient:link:name",
    ];
    let values = [
        "",
        "x",
        "1980",
        "ge1980-05",
        "eq",
        "gt",
        "ap2020-13-45",
        "1e999",
        "-0",
        "0.0000000001",
        "|",
        "||",
        "|||",
        "a|b|c|d",
        "\\",
        "\\,",
        ",",
        ",,,",
        "$",
        "$$",
        "5.4|http://unitsofmeasure.org|mg",
        "Patient/",
        "/",
        "Patient/p1/_history/1",
        "http://",
        "true",
        "maybe",
        "-birthdate,name",
        "Observation:subject:Patient",
        "*",
        "n",
        "p0011",
        "\u{0}",
        "\u{1}",
        "é",
        "💥",
        "%",
        "9999999999999999999999",
        "1980-05-12T10:00:00+25:00",
        "count",
        "none",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..3000 {
        let mut query = Vec::new();
        for _ in 0..(1 + rng.next() % 3) {
            query.push(format!(
                "{}{}={}",
                rng.pick(&names),
                rng.pick(&modifiers),
                rng.pick(&values)
            ));
        }
        let types = [
            "Patient",
            "Observation",
            "",
            "RiskAssessment",
            "Patient/p1/Observation",
        ];
        let url = format!("{}?{}", rng.pick(&types), query.join("&"));
        let response = call(&s, "GET", &url, "");
        assert!(
            matches!(response.status, 200 | 400 | 404),
            "{url}: {} {}",
            response.status,
            response.body
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(&response.body).is_ok(),
            "{url}: {}",
            response.body
        );
        if response.status != 200 {
            assert!(
                response.body.contains("OperationOutcome"),
                "{url}: {}",
                response.body
            );
        }
        *statuses.entry(response.status).or_insert(0) += 1;
    }
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
}

#[test]
fn a_new_service_over_a_store_reads_its_search_parameters_before_writing() {
    let first = loaded();
    let param = format!(
        r#"{{"resourceType":"SearchParameter","id":"town",{TEXT},"url":"http://acme.org/SearchParameter/town","name":"town","status":"active","description":"x","code":"town","base":["Patient"],"type":"string","expression":"Patient.address.city"}}"#
    );
    put(&first, "SearchParameter/town", &param);
    // The same data under a new service, as after a restart: a write indexes the custom
    // parameter without a search having read the registry first.
    let store = MemoryStore::new();
    hearth_engine::store::block_on(async {
        use hearth_engine::store::{KeyRange, Store, Transaction};
        let mut from = first
            .store()
            .begin(false)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mut to = store.begin(true).await.unwrap_or_else(|e| panic!("{e:?}"));
        for (key, value) in from
            .scan(&KeyRange::prefix(b""), usize::MAX, false)
            .await
            .unwrap_or_default()
        {
            to.put(key, value);
        }
        to.commit().await.unwrap_or_else(|e| panic!("{e:?}"));
    });
    let second = Service::new(store, Box::new(FixedClock), Box::<Counter>::default(), BASE);
    put(
        &second,
        "Patient/p9",
        &format!(r#"{{"resourceType":"Patient","id":"p9",{TEXT},"address":[{{"city":"Lyon"}}]}}"#),
    );
    assert_eq!(ids(&second, "Patient?town=lyon"), ["p9"]);
}

/// Records in memory that several paged stores share, as tabs share an IndexedDB database.
#[derive(Clone, Default)]
struct SharedRecords(std::rc::Rc<std::cell::RefCell<std::collections::BTreeMap<u64, Vec<u8>>>>);

/// A transaction of [`SharedRecords`]: writes applied at commit.
struct SharedTx {
    records: SharedRecords,
    writes: Vec<(u64, u64, Option<Vec<u8>>)>,
}

impl hearth_engine::store::paged::Records for SharedRecords {
    type Tx<'s> = SharedTx;
    async fn begin(&self, _write: bool) -> Result<SharedTx, hearth_engine::store::StoreError> {
        Ok(SharedTx {
            records: self.clone(),
            writes: Vec::new(),
        })
    }
}

impl hearth_engine::store::paged::RecordsTx for SharedTx {
    async fn get_many(
        &mut self,
        ids: &[u64],
    ) -> Result<Vec<Option<Vec<u8>>>, hearth_engine::store::StoreError> {
        let data = self.records.0.borrow();
        Ok(ids.iter().map(|id| data.get(id).cloned()).collect())
    }
    async fn get_range(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Vec<u8>>, hearth_engine::store::StoreError> {
        let data = self.records.0.borrow();
        Ok(data
            .range(start..end)
            .map(|(_, value)| value.clone())
            .collect())
    }
    fn put(&mut self, id: u64, value: Vec<u8>) {
        self.writes.push((id, id + 1, Some(value)));
    }
    fn delete_range(&mut self, start: u64, end: u64) {
        self.writes.push((start, end, None));
    }
    async fn commit(self) -> Result<(), hearth_engine::store::StoreError> {
        let mut data = self.records.0.borrow_mut();
        for (start, end, value) in self.writes {
            match value {
                Some(value) => {
                    data.insert(start, value);
                }
                None => data.retain(|id, _| *id < start || *id >= end),
            }
        }
        Ok(())
    }
}

/// Two services over one store (two tabs): a SearchParameter one stores is indexed by the
/// other's next write, which reads nothing before it (the check is made in the write's own
/// transaction).
#[test]
fn a_search_parameter_stored_by_one_tab_is_indexed_by_the_next_write_of_another() {
    use hearth_engine::store::paged::PagedStore;
    let records = SharedRecords::default();
    let tab = || {
        Service::new(
            PagedStore::new(records.clone()),
            Box::new(FixedClock),
            Box::<Counter>::default(),
            BASE,
        )
    };
    let (first, second) = (tab(), tab());
    // Both have read the (core) registry.
    put(
        &second,
        "Patient/p1",
        &format!(r#"{{"resourceType":"Patient","id":"p1",{TEXT}}}"#),
    );
    assert!(ids(&first, "Patient?_id=p1") == ["p1"]);
    let param = format!(
        r#"{{"resourceType":"SearchParameter","id":"town",{TEXT},"url":"http://acme.org/SearchParameter/town","name":"town","status":"active","description":"x","code":"town","base":["Patient"],"type":"string","expression":"Patient.address.city"}}"#
    );
    put(&first, "SearchParameter/town", &param);
    put(
        &second,
        "Patient/p9",
        &format!(r#"{{"resourceType":"Patient","id":"p9",{TEXT},"address":[{{"city":"Lyon"}}]}}"#),
    );
    assert_eq!(ids(&first, "Patient?town=lyon"), ["p9"]);
    assert_eq!(ids(&second, "Patient?town=lyon"), ["p9"]);
    // The capability statement of either lists it, and one stored later by the other.
    let listed = |service: &Service<PagedStore<SharedRecords>>, code: &str| {
        let statement = json(&call(service, "GET", "metadata", ""));
        statement["rest"][0]["resource"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|resource| resource["type"] == "Patient")
            .flat_map(|resource| resource["searchParam"].as_array().into_iter().flatten())
            .any(|param| param["name"] == code)
    };
    assert!(listed(&second, "town"));
    put(
        &first,
        "SearchParameter/ward",
        &param.replace("town", "ward"),
    );
    assert!(listed(&second, "ward"));
    assert!(listed(&first, "ward"));
}

/// A generated patient: id, gender, birth year, family name.
type Person = (String, String, Option<i32>, String);

/// 150 patients: enough for the planner's and the sort's larger paths.
fn many() -> (Service<MemoryStore>, Vec<Person>) {
    let s = Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<Counter>::default(),
        BASE,
    );
    let mut people = Vec::new();
    for i in 0..150 {
        let id = format!("m{i:03}");
        let gender = if i % 3 == 0 { "female" } else { "male" };
        let year = (i % 10 != 0).then_some(1950 + (i * 37 % 60));
        let family = format!("Fam{}", i % 7);
        let birth = year.map_or(String::new(), |year| format!(r#","birthDate":"{year}""#));
        put(
            &s,
            &format!("Patient/{id}"),
            &format!(
                r#"{{"resourceType":"Patient","id":"{id}",{TEXT},"gender":"{gender}","name":[{{"family":"{family}","given":["G{}","H{}"]}}]{birth}}}"#,
                i % 5,
                i % 3
            ),
        );
        people.push((id, gender.to_string(), year, family));
    }
    (s, people)
}

#[test]
fn sorting_from_the_index_matches_sorting_from_resources() {
    let (s, people) = many();
    let ordered = |url: &str| matches(&json(&call(&s, "GET", url, "")));
    let mut expected: Vec<(Option<i32>, String)> = people
        .iter()
        .map(|(id, _, year, _)| (*year, id.clone()))
        .collect();
    expected.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let big = ordered("Patient?_sort=birthdate&_count=1000");
    assert_eq!(big, expected);
    // Few hits take the sort keys from the resources: the same order.
    let small = ordered("Patient?_sort=birthdate&family:exact=Fam1&_count=1000");
    let filtered: Vec<String> = big
        .iter()
        .filter(|id| {
            people
                .iter()
                .any(|(p, _, _, family)| p == *id && family == "Fam1")
        })
        .cloned()
        .collect();
    assert!(small.len() < 64 && small.len() > 10);
    assert_eq!(small, filtered);
    let big_desc = ordered("Patient?_sort=-birthdate,given&_count=1000");
    let small_desc = ordered("Patient?_sort=-birthdate,given&family:exact=Fam1&_count=1000");
    let filtered: Vec<String> = big_desc
        .iter()
        .filter(|id| {
            people
                .iter()
                .any(|(p, _, _, family)| p == *id && family == "Fam1")
        })
        .cloned()
        .collect();
    assert_eq!(small_desc, filtered);
    assert_eq!(
        big_desc.last().map(String::as_str),
        Some("m140"),
        "missing birth dates sort last"
    );
}

#[test]
fn the_planner_gives_the_same_answers_by_scans_and_by_checks() {
    let (s, people) = many();
    let expect = |keep: &dyn Fn(&Person) -> bool| -> Vec<String> {
        let mut ids: Vec<String> = people
            .iter()
            .filter(|p| keep(p))
            .map(|p| p.0.clone())
            .collect();
        ids.sort();
        ids
    };
    // Selective first clause (few candidates, the others checked on each) and unselective
    // pairs (scanned and intersected).
    assert_eq!(
        ids(&s, "Patient?_id=m003,m006,m007&gender=female&_count=1000"),
        expect(&|p| ["m003", "m006", "m007"].contains(&p.0.as_str()) && p.1 == "female")
    );
    assert_eq!(
        ids(&s, "Patient?gender=female&birthdate=ge1980&_count=1000"),
        expect(&|p| p.1 == "female" && p.2.is_some_and(|y| y >= 1980))
    );
    assert_eq!(
        ids(
            &s,
            "Patient?gender:not=female&birthdate:missing=true&_count=1000"
        ),
        expect(&|p| p.1 != "female" && p.2.is_none())
    );
    assert_eq!(
        ids(&s, "Patient?family=fam2&gender:not=male&_count=1000"),
        expect(&|p| p.3 == "Fam2" && p.1 != "male")
    );
    assert_eq!(
        ids(
            &s,
            "Patient?birthdate=ge1960&birthdate=lt1990&gender=male&_count=1000"
        ),
        expect(&|p| p.1 == "male" && p.2.is_some_and(|y| (1960..1990).contains(&y)))
    );
}

#[test]
fn review_cases_of_search_and_conditional_interactions() {
    let s = loaded();
    // Temperatures: offset scales convert each end of the precision on its own.
    for (id, value) in [("t1", "-10"), ("t2", "0"), ("t3", "37.3")] {
        put(
            &s,
            &format!("Observation/{id}"),
            &format!(
                r#"{{"resourceType":"Observation","id":"{id}",{TEXT},"status":"final","code":{{"text":"temperature"}},"valueQuantity":{{"value":{value},"system":"http://unitsofmeasure.org","code":"Cel"}}}}"#
            ),
        );
    }
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=-10|http://unitsofmeasure.org|Cel"
        ),
        ["t1"]
    );
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=0|http://unitsofmeasure.org|Cel"
        ),
        ["t2"]
    );
    // 37 means [36.5, 37.5); 37.0 means [36.95, 37.05).
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=37|http://unitsofmeasure.org|Cel"
        ),
        ["t3"]
    );
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=37.0|http://unitsofmeasure.org|Cel"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=lt0|http://unitsofmeasure.org|Cel"
        ),
        ["t1"]
    );
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=gt98|http://unitsofmeasure.org|[degF]"
        ),
        ["t3"]
    );
    assert_eq!(
        ids(
            &s,
            "Observation?value-quantity=0|http://unitsofmeasure.org|mg"
        ),
        Vec::<String>::new()
    );
    // A conditional interaction needs criteria, not only result parameters.
    assert_eq!(call(&s, "DELETE", "Patient?_format=json", "").status, 400);
    assert_eq!(call(&s, "DELETE", "Patient?_count=1", "").status, 400);
    assert_eq!(call(&s, "GET", "Patient/p1", "").status, 200);
    // Conditional update naming another resource's id: 400, without saying which matched.
    let other = format!(r#"{{"resourceType":"Patient","id":"p3",{TEXT}}}"#);
    let response = call(&s, "PUT", "Patient?identifier=http://ids%7CA1", &other);
    assert_eq!(response.status, 400);
    assert!(!response.body.contains("p1"), "{}", response.body);
    // No match, but the body's id exists: not overwritten.
    let taken = format!(
        r#"{{"resourceType":"Patient","id":"p2",{TEXT},"identifier":[{{"system":"http://ids","value":"NEW"}}]}}"#
    );
    assert_eq!(
        call(&s, "PUT", "Patient?identifier=http://ids%7CNEW", &taken).status,
        409
    );
    // _has through a reference to a resource that does not exist.
    put(
        &s,
        "Observation/ghostly",
        &format!(
            r#"{{"resourceType":"Observation","id":"ghostly",{TEXT},"status":"final","code":{{"text":"t"}},"subject":{{"reference":"Patient/ghost"}}}}"#
        ),
    );
    let ghost = json(&call(
        &s,
        "GET",
        "Patient?_has:Observation:subject:code:text=t",
        "",
    ));
    assert_eq!(ghost["total"], 0, "{ghost}");
    // _summary=count carries no resources at all.
    let counted = json(&call(
        &s,
        "GET",
        "Observation?code=8867-4&_include=Observation:subject&_summary=count",
        "",
    ));
    assert!(counted.get("entry").is_none(), "{counted}");
    // :contains on a value that starts with the token-text marker.
    put(
        &s,
        "Patient/tilde",
        &format!(r#"{{"resourceType":"Patient","id":"tilde",{TEXT},"name":[{{"family":"~ab"}}]}}"#),
    );
    assert_eq!(ids(&s, "Patient?family:contains=ab"), ["tilde"]);
    // DELETE with If-Match.
    assert_eq!(
        call_with(
            &s,
            "DELETE",
            "Patient/tilde",
            &[("if-match", "W/\"7\"")],
            ""
        )
        .status,
        412
    );
    assert_eq!(
        call_with(
            &s,
            "DELETE",
            "Patient/tilde",
            &[("if-match", "W/\"1\"")],
            ""
        )
        .status,
        204
    );
    // The self link of a later page is that page.
    let first = json(&call(&s, "GET", "Patient?_count=1", ""));
    let next = first["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .unwrap_or_default()
        .to_string();
    let second = json(&call(&s, "GET", &next, ""));
    let this = second["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == "self")
        .and_then(|l| l["url"].as_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(this, next);
}

#[test]
fn review_cases_of_transactions() {
    let s = loaded();
    // Two entries that resolve to one resource.
    let overlapping = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[
        {{"request":{{"method":"DELETE","url":"Patient/p1"}}}},
        {{"resource":{{"resourceType":"Patient",{TEXT}}},"request":{{"method":"PUT","url":"Patient?identifier=http://ids|A1"}}}}]}}"#
    );
    let response = call(&s, "POST", "", &overlapping);
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(call(&s, "GET", "Patient/p1", "").status, 200);
    // A conditional PUT with no match takes the body's id only when it is a valid id.
    let bad_id = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[
        {{"resource":{{"resourceType":"Patient","id":"a\"b/c",{TEXT}}},"request":{{"method":"PUT","url":"Patient?identifier=http://ids|NOPE"}}}}]}}"#
    );
    let response = call_with(&s, "POST", "", &[("x-validation", "off")], &bad_id);
    assert_eq!(response.status, 400, "{}", response.body);
}

#[test]
fn values_that_encode_alike_keep_their_own_keys() {
    let s = loaded();
    put(
        &s,
        "Patient/twice",
        &format!(
            r#"{{"resourceType":"Patient","id":"twice",{TEXT},"name":[{{"family":"Zork"}},{{"family":"ZORK"}}]}}"#
        ),
    );
    assert_eq!(ids(&s, "Patient?family:exact=Zork"), ["twice"]);
    assert_eq!(ids(&s, "Patient?family:exact=ZORK"), ["twice"]);
    // Two periods with one start and different ends: both ends are searchable.
    put(
        &s,
        "Encounter/spans",
        &format!(
            r#"{{"resourceType":"Encounter","id":"spans",{TEXT},"status":"finished","class":{{"code":"AMB"}},"period":{{"start":"2020-01-01","end":"2020-01-01"}},"location":[{{"location":{{"display":"x"}},"period":{{"start":"2020-01-01","end":"2020-03-01"}}}}]}}"#
        ),
    );
    assert_eq!(ids(&s, "Encounter?date=2020-01-01"), ["spans"]);
    assert_eq!(ids(&s, "Encounter?location-period=gt2020-02-01"), ["spans"]);
    // Sorting by a reference whose id starts with H is not sorting by a missing value.
    put(
        &s,
        "Patient/Hal",
        &format!(r#"{{"resourceType":"Patient","id":"Hal",{TEXT}}}"#),
    );
    put(
        &s,
        "Observation/oh",
        &format!(
            r#"{{"resourceType":"Observation","id":"oh",{TEXT},"status":"final","code":{{"text":"x"}},"subject":{{"reference":"Patient/Hal"}}}}"#
        ),
    );
    let sorted = matches(&json(&call(
        &s,
        "GET",
        "Observation?_sort=subject&_id=oh,ob1",
        "",
    )));
    assert_eq!(sorted, ["oh", "ob1"]);
}

#[test]
fn chains_with_many_targets_scan_once() {
    let (s, people) = many();
    for (index, (id, _, _, _)) in people.iter().enumerate().take(120) {
        put(
            &s,
            &format!("Observation/o{index}"),
            &format!(
                r#"{{"resourceType":"Observation","id":"o{index}",{TEXT},"status":"final","code":{{"text":"x"}},"subject":{{"reference":"Patient/{id}"}}}}"#
            ),
        );
    }
    let mut expected: Vec<String> = people
        .iter()
        .enumerate()
        .take(120)
        .filter(|(_, p)| p.1 == "male")
        .map(|(index, _)| format!("o{index}"))
        .collect();
    expected.sort();
    assert!(expected.len() > 64);
    assert_eq!(
        ids(&s, "Observation?subject:Patient.gender=male&_count=1000"),
        expected
    );
}

#[test]
fn resources_with_uuid_ids_are_found() {
    let s = loaded();
    let patient = "6f1c0e3a-9b2d-4c5e-8f70-1a2b3c4d5e6f";
    let observation = "0b7496cb-ffc9-0874-03f4-f4841c4dfa63";
    put(
        &s,
        &format!("Patient/{patient}"),
        &format!(
            r#"{{"resourceType":"Patient","id":"{patient}",{TEXT},"gender":"female","name":[{{"family":"Uuid"}}]}}"#
        ),
    );
    put(
        &s,
        &format!("Observation/{observation}"),
        &format!(
            r#"{{"resourceType":"Observation","id":"{observation}",{TEXT},"status":"final","code":{{"text":"u"}},"subject":{{"reference":"Patient/{patient}"}}}}"#
        ),
    );
    assert_eq!(ids(&s, "Patient?family=uuid"), [patient]);
    assert_eq!(
        ids(&s, &format!("Observation?subject=Patient/{patient}")),
        [observation]
    );
    let bundle = json(&call(
        &s,
        "GET",
        &format!("Patient?_id={patient}&_revinclude=Observation:subject"),
        "",
    ));
    let included: Vec<&str> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "include")
        .filter_map(|e| e["resource"]["id"].as_str())
        .collect();
    assert_eq!(included, [observation]);
    assert_eq!(
        ids(&s, "Patient?_has:Observation:subject:code:text=u"),
        [patient]
    );
}

#[test]
fn a_store_indexed_by_another_layout_is_indexed_again_when_opened() {
    let first = loaded();
    let store = MemoryStore::new();
    hearth_engine::store::block_on(async {
        use hearth_engine::store::{KeyRange, Store, Transaction};
        let mut from = first
            .store()
            .begin(false)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mut to = store.begin(true).await.unwrap_or_else(|e| panic!("{e:?}"));
        for (key, value) in from
            .scan(&KeyRange::prefix(b""), usize::MAX, false)
            .await
            .unwrap_or_default()
        {
            // An older store: no index, no layout mark.
            if !key.starts_with(b"i\0") && key.as_slice() != hearth_engine::search::INDEX_FORMAT_KEY
            {
                to.put(key, value);
            }
        }
        to.commit().await.unwrap_or_else(|e| panic!("{e:?}"));
    });
    let second = Service::new(store, Box::new(FixedClock), Box::<Counter>::default(), BASE);
    assert_eq!(ids(&second, "Patient?family=muller"), ["p1", "p2"]);
    assert_eq!(ids(&second, "Observation?subject=p2"), ["ob3", "ob4"]);
}

#[test]
fn rows_numbered_by_an_older_layout_keep_their_stored_order_when_indexed_again() {
    let first = Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<Counter>::default(),
        BASE,
    );
    // Stored in an order that is neither the ids' nor, past 36 rows, their old row numbers'
    // order as text ("10" before "2").
    let stored: Vec<String> = (0..50).rev().map(|n| format!("q{n:02}")).collect();
    for id in &stored {
        put(
            &first,
            &format!("Patient/{id}"),
            &format!(r#"{{"resourceType":"Patient","id":"{id}",{TEXT},"gender":"other"}}"#),
        );
    }
    let store = MemoryStore::new();
    hearth_engine::store::block_on(async {
        use hearth_engine::store::{KeyRange, Store, Transaction};
        let mut from = first.store().begin(false).await.unwrap();
        let mut to = store.begin(true).await.unwrap();
        for (key, value) in from
            .scan(&KeyRange::prefix(b""), usize::MAX, false)
            .await
            .unwrap()
        {
            let kind = key.first().copied();
            if !matches!(kind, Some(b'i' | b'r' | b'n'))
                && key.as_slice() != hearth_engine::search::INDEX_FORMAT_KEY
            {
                to.put(key, value);
            }
        }
        // The older layout's row numbers: plain base 36.
        for (n, id) in stored.iter().enumerate() {
            let mut rest = n + 1;
            let mut row = Vec::new();
            while rest > 0 {
                row.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[rest % 36]);
                rest /= 36;
            }
            row.reverse();
            let row = String::from_utf8(row).unwrap();
            to.put(
                format!("r\0Patient\0{id}").into_bytes(),
                row.clone().into_bytes(),
            );
            to.put(
                format!("n\0Patient\0{row}").into_bytes(),
                id.clone().into_bytes(),
            );
        }
        to.commit().await.unwrap();
    });
    let second = Service::new(store, Box::new(FixedClock), Box::<Counter>::default(), BASE);
    let all = |url: &str| matches(&json(&call(&second, "GET", url, "")));
    assert_eq!(all("Patient?_count=100"), stored);
    assert_eq!(
        all("Patient?_sort=gender&_count=100"),
        stored,
        "ties in stored order"
    );
    // Paging through them: the same order, page after page.
    let mut paged = Vec::new();
    let mut url = String::from("Patient?_count=7");
    loop {
        let page = json(&call(&second, "GET", &url, ""));
        paged.extend(matches(&page));
        let Some(next) = page["link"]
            .as_array()
            .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
            .and_then(|l| l["url"].as_str())
        else {
            break;
        };
        url = next
            .split_once("/fhir/")
            .map_or(next, |(_, rest)| rest)
            .to_string();
    }
    assert_eq!(paged, stored);
}

#[test]
fn first_pages_found_by_walking_the_index_are_the_heads_of_the_full_sort() {
    let (s, people) = many();
    let ordered = |url: &str| matches(&json(&call(&s, "GET", url, "")));
    // Birth dates sorted here, apart from the server: ties and resources without one by id
    // (the order they were stored in), those without one last.
    for descending in [false, true] {
        let mut expected: Vec<&Person> = people.iter().collect();
        expected.sort_by(|a, b| match (a.2, b.2) {
            (Some(x), Some(y)) => {
                (if descending { y.cmp(&x) } else { x.cmp(&y) }).then_with(|| a.0.cmp(&b.0))
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.0.cmp(&b.0),
        });
        let expected: Vec<String> = expected.iter().map(|p| p.0.clone()).collect();
        let sort = if descending {
            "-birthdate"
        } else {
            "birthdate"
        };
        for count in [1, 2, 7, 64, 65, 100, 134, 135, 136, 150] {
            assert_eq!(
                ordered(&format!("Patient?_sort={sort}&_count={count}")),
                expected[..count],
                "_sort={sort}&_count={count}"
            );
        }
    }
    for sort in [
        "birthdate",
        "-birthdate",
        "family",
        "-family",
        "gender",
        "-_lastUpdated",
    ] {
        let full = ordered(&format!("Patient?_sort={sort}&_count=1000"));
        assert_eq!(full.len(), 150);
        for count in [1, 2, 5, 17, 40, 134, 135, 136, 149, 150] {
            let page = ordered(&format!("Patient?_sort={sort}&_count={count}"));
            assert_eq!(page, full[..count], "_sort={sort}&_count={count}");
            let filtered_full = ordered(&format!("Patient?gender=male&_sort={sort}&_count=1000"));
            let filtered = ordered(&format!("Patient?gender=male&_sort={sort}&_count={count}"));
            assert_eq!(filtered, filtered_full[..count.min(filtered_full.len())]);
        }
    }
    let all = ordered("Patient?_count=1000");
    for count in [1, 10, 149, 150] {
        assert_eq!(ordered(&format!("Patient?_count={count}")), all[..count]);
    }
    // The total is every match, whatever the page.
    let page = json(&call(&s, "GET", "Patient?_sort=-birthdate&_count=3", ""));
    assert_eq!(page["total"], 150);
    assert_eq!(json(&call(&s, "GET", "Patient?_count=3", ""))["total"], 150);
}

#[test]
fn a_sorted_search_with_few_matches_reads_them_rather_than_the_whole_index() {
    let (s, _) = many();
    // Three matches among 150: sorted from the resources, not by walking the birthdate index.
    let url = "Patient?_id=m001,m002,m003&_sort=-birthdate&_count=2";
    let page = json(&call(&s, "GET", url, ""));
    assert_eq!(page["total"], 3);
    assert!(s.last_work() < 100, "work {}", s.last_work());
}

#[test]
fn a_sorted_search_without_criteria_shows_only_current_resources() {
    let (s, _) = many();
    for id in ["m000", "m001", "m002"] {
        let response = call(&s, "DELETE", &format!("Patient/{id}"), "");
        assert!(response.status < 300, "{}", response.body);
    }
    for sort in ["family", "-family", "birthdate"] {
        let page = json(&call(
            &s,
            "GET",
            &format!("Patient?_sort={sort}&_count=3"),
            "",
        ));
        assert_eq!(page["total"], 147);
        let found = matches(&page);
        assert_eq!(found.len(), 3);
        assert!(found
            .iter()
            .all(|id| !["m000", "m001", "m002"].contains(&id.as_str())));
    }
}

#[test]
fn a_search_with_total_none_pages_without_counting() {
    let (s, _) = many();
    let page = json(&call(&s, "GET", "Patient?_count=10&_total=none", ""));
    assert!(page.get("total").is_none());
    assert_eq!(matches(&page).len(), 10);
    assert!(page["link"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["relation"] == "next"));
    assert!(s.last_work() < 100, "work {}", s.last_work());
    let last = json(&call(&s, "GET", "Patient?_count=150&_total=none", ""));
    assert_eq!(matches(&last).len(), 150);
    assert!(!last["link"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["relation"] == "next"));
}

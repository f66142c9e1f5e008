//! What a new user found wrong: `toString()` rewriting a dateTime's text, `$everything` of a
//! deleted Patient, a PATCH kept in history as a PUT, references to types an element does not
//! allow, and "a Observation" in messages.

use hearth_engine::fhirpath::{self, Options};
use hearth_engine::json::fhir::parse_resource;
use hearth_engine::rest::{Response, Service};
use hearth_engine::store::{block_on, MemoryStore};

mod common;
use common::{request, Counter, FixedClock};

fn service() -> Service<MemoryStore> {
    Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<Counter>::default(),
        "http://localhost:8080/fhir",
    )
}

fn call(service: &Service<MemoryStore>, method: &str, path: &str, body: &str) -> Response {
    block_on(service.handle(&request(method, path, &[], body)))
}

fn json(response: &Response) -> serde_json::Value {
    serde_json::from_str(&response.body).unwrap_or_default()
}

/// The results of `expression` on `resource`, as JSON text.
fn evaluate(resource: &str, expression: &str) -> String {
    let resource = parse_resource(resource.as_bytes()).unwrap_or_else(|err| panic!("{err}"));
    let compiled = fhirpath::compile(expression).unwrap_or_else(|err| panic!("{err}"));
    let items = compiled
        .evaluate(&resource, &Options::default())
        .unwrap_or_else(|err| panic!("{err}"));
    let mut res = String::from("[");
    for (idx, item) in items.iter().enumerate() {
        if idx > 0 {
            res.push(',');
        }
        fhirpath::write_item(&mut res, item);
    }
    res.push(']');
    res
}

#[test]
fn to_string_keeps_the_text_of_fhir_primitives() {
    let observation = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2006-06-29T17:23:31+00:00","valueQuantity":{"value":1.50}}"#;
    assert_eq!(
        evaluate(observation, "Observation.effective.toString()"),
        r#"["2006-06-29T17:23:31+00:00"]"#
    );
    assert_eq!(
        evaluate(observation, "Observation.value.value.toString()"),
        r#"["1.50"]"#
    );
    // System values are written as FHIRPath writes them.
    assert_eq!(evaluate(observation, "(1 + 1).toString()"), r#"["2"]"#);
    assert_eq!(
        evaluate(observation, "(1.50 + 0).toString()"),
        r#"["1.50"]"#
    );
}

#[test]
fn everything_of_a_deleted_patient_is_gone() {
    let s = service();
    assert_eq!(
        call(
            &s,
            "PUT",
            "Patient/p",
            r#"{"resourceType":"Patient","id":"p"}"#
        )
        .status,
        201
    );
    assert_eq!(call(&s, "GET", "Patient/p/$everything", "").status, 200);
    assert_eq!(call(&s, "DELETE", "Patient/p", "").status, 204);
    let gone = call(&s, "GET", "Patient/p/$everything", "");
    assert_eq!(gone.status, 410, "{}", gone.body);
    assert_eq!(json(&gone)["issue"][0]["code"], "deleted");
    assert_eq!(call(&s, "GET", "Patient/never/$everything", "").status, 404);
}

#[test]
fn a_patch_is_a_patch_in_history() {
    let s = service();
    assert_eq!(
        call(
            &s,
            "PUT",
            "Patient/p",
            r#"{"resourceType":"Patient","id":"p"}"#
        )
        .status,
        201
    );
    let patched = call(
        &s,
        "PATCH",
        "Patient/p",
        r#"[{"op":"add","path":"/active","value":true}]"#,
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        call(
            &s,
            "PUT",
            "Patient/p",
            r#"{"resourceType":"Patient","id":"p","active":false}"#
        )
        .status,
        200
    );
    for url in ["Patient/p/_history", "Patient/_history", "_history"] {
        let history = json(&call(&s, "GET", url, ""));
        let methods: Vec<&str> = history["entry"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| entry["request"]["method"].as_str().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(methods, ["PUT", "PATCH", "PUT"], "{url}");
    }
    // The patched version reads as any other.
    let version = json(&call(&s, "GET", "Patient/p/_history/2", ""));
    assert_eq!(version["active"], true);
}

#[test]
fn a_write_referring_to_a_type_the_element_does_not_allow_is_refused() {
    let s = service();
    let body = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Medication/x"}}"#;
    let response = call(&s, "POST", "Observation", body);
    assert_eq!(response.status, 422, "{}", response.body);
    let issue = &json(&response)["issue"][0];
    assert_eq!(issue["expression"][0], "Observation.subject.reference");
    let allowed = body.replace("Medication/x", "Patient/x");
    assert_eq!(call(&s, "POST", "Observation", &allowed).status, 201);
}

#[test]
fn messages_use_the_right_article() {
    let s = service();
    let response = call(
        &s,
        "PUT",
        "Patient/p",
        r#"{"resourceType":"Observation","id":"p","status":"final","code":{"text":"x"}}"#,
    );
    assert_eq!(response.status, 400);
    let message = json(&response)["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("expected a Patient resource, found an Observation"),
        "{message}"
    );
    assert_eq!(
        hearth_engine::outcome::with_article("Encounter"),
        "an Encounter"
    );
    assert_eq!(hearth_engine::outcome::with_article("Patient"), "a Patient");
}

#[test]
fn to_string_keeps_text_only_in_fhirpath_form() {
    let observation = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.0e2}}"#;
    assert_eq!(
        evaluate(observation, "Observation.value.value.toString()"),
        r#"["100.0"]"#
    );
    assert_eq!(
        evaluate(
            observation,
            "Observation.value.value.toString().toDecimal() = Observation.value.value"
        ),
        "[true]"
    );
    assert_eq!(hearth_engine::outcome::with_article("uri"), "a uri");
    assert_eq!(
        hearth_engine::outcome::with_article("UsageContext"),
        "a UsageContext"
    );
    assert_eq!(
        hearth_engine::outcome::with_article("unsignedInt"),
        "an unsignedInt"
    );
}

//! The exported functions as JS sees them, run in Node: results, `FhirError`s, hostile input.

use js_sys::{Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// The one call into `inspect`: returns the result, or the thrown error, as JSON text.
fn inspect_json(input: &[u8]) -> Result<String, JsValue> {
    match hearth_wasm::inspect(input) {
        Ok(value) => Ok(JSON::stringify(&value)
            .map(String::from)
            .unwrap_or_default()),
        Err(err) => Err(JsValue::from(err)),
    }
}

#[track_caller]
fn check_error(input: &[u8], diagnostics: &str, line: i32, column: i32) {
    let err = match inspect_json(input) {
        Ok(text) => panic!("expected a FhirError, got {text}"),
        Err(err) => err,
    };
    assert!(
        err.is_instance_of::<js_sys::Error>(),
        "a JS Error is thrown"
    );
    assert_eq!(get(&err, "name").as_string().as_deref(), Some("FhirError"));
    assert_eq!(get(&err, "status").as_f64(), Some(400.0));
    let outcome = get(&err, "outcome");
    assert_eq!(
        get(&outcome, "resourceType").as_string().as_deref(),
        Some("OperationOutcome")
    );
    let issue = Reflect::get_u32(&get(&outcome, "issue"), 0).unwrap_or(JsValue::UNDEFINED);
    assert_eq!(
        get(&issue, "severity").as_string().as_deref(),
        Some("error")
    );
    assert_eq!(
        get(&issue, "code").as_string().as_deref(),
        Some("structure")
    );
    assert_eq!(
        get(&issue, "diagnostics").as_string().as_deref(),
        Some(diagnostics)
    );
    let extension = get(&issue, "extension");
    let line_found = get(
        &Reflect::get_u32(&extension, 0).unwrap_or_default(),
        "valueInteger",
    );
    let column_found = get(
        &Reflect::get_u32(&extension, 1).unwrap_or_default(),
        "valueInteger",
    );
    assert_eq!(
        (line_found.as_f64(), column_found.as_f64()),
        (Some(f64::from(line)), Some(f64::from(column)))
    );
}

#[wasm_bindgen_test]
fn inspect_returns_type_and_id() {
    let got = inspect_json(br#"{"resourceType":"Patient","id":"pat-1","active":true}"#);
    assert_eq!(
        got.ok().as_deref(),
        Some(r#"{"resourceType":"Patient","id":"pat-1"}"#)
    );
}

#[wasm_bindgen_test]
fn inspect_leaves_out_a_missing_id() {
    let got = inspect_json(br#"{"resourceType":"Observation"}"#);
    assert_eq!(
        got.ok().as_deref(),
        Some(r#"{"resourceType":"Observation"}"#)
    );
}

#[wasm_bindgen_test]
fn truncated_json_is_a_fhir_error() {
    check_error(
        br#"{"resourceType":"Patient""#,
        "expected ',' or '}' in an object, found the end of the input",
        1,
        26,
    );
}

#[wasm_bindgen_test]
fn json_array_is_a_fhir_error() {
    check_error(
        b"[]",
        "expected a FHIR resource (a JSON object), found an array",
        1,
        1,
    );
}

#[wasm_bindgen_test]
fn numeric_resource_type_is_a_fhir_error() {
    check_error(
        b"{\"resourceType\": 5}",
        "expected \"resourceType\" to be a string, found a number",
        1,
        18,
    );
}

#[wasm_bindgen_test]
fn hundred_thousand_nested_arrays_are_a_fhir_error_not_a_trap() {
    let nested: Vec<u8> = std::iter::repeat_n(b'[', 100_000)
        .chain(std::iter::repeat_n(b']', 100_000))
        .collect();
    check_error(
        &nested,
        "expected at most 100 levels of nested arrays and objects, found more",
        1,
        101,
    );
}

#[wasm_bindgen_test]
fn invalid_utf8_is_a_fhir_error() {
    check_error(
        b"{\"resourceType\":\"\xc3\"}",
        "expected UTF-8 text, found an invalid byte",
        1,
        18,
    );
}

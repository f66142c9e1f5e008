//! WebAssembly bindings of the Hearth FHIR engine.
//!
//! Each export converts JS values to engine types, calls one engine function and converts the
//! result back. Failures leave as a JS `Error` named `FhirError` with `.status` and `.outcome`
//! (a FHIR `OperationOutcome`), built in one place: `impl From<BindingError> for JsValue`.
//! The npm package `hearth-fhir` wraps these exports; use that rather than this crate's glue.
#![warn(missing_docs)]

pub mod error;
pub mod idb;

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

pub use error::BindingError;

/// Reads the head of a FHIR resource from UTF-8 JSON bytes.
///
/// Returns `{ resourceType, id }` (`id` only when the resource has one).
///
/// # Errors
/// A `FhirError` (status 400) whose outcome gives the line and column of the problem.
#[wasm_bindgen]
pub fn inspect(bytes: &[u8]) -> Result<JsValue, BindingError> {
    let summary = hearth_engine::json::inspect(bytes)?;
    let res = Object::new();
    set(
        &res,
        "resourceType",
        &JsValue::from_str(&summary.resource_type),
    )?;
    if let Some(id) = &summary.id {
        set(&res, "id", &JsValue::from_str(id))?;
    }
    Ok(res.into())
}

/// The engine's version, as built.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").into()
}

fn set(target: &Object, key: &str, value: &JsValue) -> Result<(), BindingError> {
    Reflect::set(target, &JsValue::from_str(key), value).map_err(BindingError::Js)?;
    Ok(())
}

//! The bindings' error type, and the one conversion of failures into JS `FhirError`s.

use hearth_engine::outcome::{IssueType, OperationOutcome};
use hearth_engine::Status;
use js_sys::{Reflect, JSON};
use wasm_bindgen::prelude::*;

/// Every way a binding call can fail.
#[derive(Debug)]
pub enum BindingError {
    /// The engine refused the input or failed.
    Engine(hearth_engine::Error),
    /// A JS call (a conversion) threw.
    Js(JsValue),
    /// The storage (IndexedDB) refused a request.
    Storage(String),
    /// A request came while the service was answering another.
    Busy,
    /// A synchronous call was made on a service whose store answers asynchronously.
    NeedsAsync,
    /// The caller's arguments are not what the call takes (HTTP 400).
    Invalid(String),
}

impl From<hearth_engine::Error> for BindingError {
    fn from(err: hearth_engine::Error) -> Self {
        BindingError::Engine(err)
    }
}

impl BindingError {
    fn to_outcome(&self) -> (Status, OperationOutcome) {
        match self {
            BindingError::Engine(err) => err.to_outcome(),
            BindingError::Js(value) => {
                let detail = value
                    .dyn_ref::<js_sys::Error>()
                    .map(|err| String::from(err.message()))
                    .or_else(|| value.as_string())
                    .unwrap_or_else(|| String::from("unknown JS failure"));
                (
                    Status(500),
                    OperationOutcome::error(
                        IssueType::Exception,
                        format!("the host environment failed: {detail}"),
                    ),
                )
            }
            BindingError::Busy => (
                Status(503),
                OperationOutcome::error(
                    IssueType::Transient,
                    "the service is answering another request; wait for it (the npm package queues requests)".into(),
                ),
            ),
            BindingError::NeedsAsync => (
                Status(500),
                OperationOutcome::error(
                    IssueType::Exception,
                    "this service's store answers asynchronously; use FhirStore".into(),
                ),
            ),
            BindingError::Invalid(message) => (
                Status(400),
                OperationOutcome::error(IssueType::Invalid, message.clone()),
            ),
            BindingError::Storage(detail) => (
                Status(500),
                OperationOutcome::error(
                    IssueType::Exception,
                    format!("the storage failed: {detail}"),
                ),
            ),
        }
    }
}

impl From<BindingError> for JsValue {
    /// Builds the JS `FhirError`: an `Error` whose `name` is `"FhirError"`, with `status` (HTTP
    /// status code) and `outcome` (a FHIR `OperationOutcome` object). The npm package turns it
    /// into its exported `FhirError` class.
    fn from(err: BindingError) -> JsValue {
        let (status, outcome) = err.to_outcome();
        let message = match outcome.issues.as_slice() {
            [] => String::from("unknown failure"),
            [only] => only.diagnostics.clone(),
            [first, rest @ ..] => format!("{} (and {} more issues)", first.diagnostics, rest.len()),
        };
        let js_error = js_sys::Error::new(&message);
        js_error.set_name("FhirError");
        // The outcome text is built by the engine and is valid JSON; should parsing it ever fail,
        // the error still leaves with its message and status.
        let outcome_value = JSON::parse(&outcome.to_json()).unwrap_or(JsValue::NULL);
        let _ = Reflect::set(&js_error, &"status".into(), &JsValue::from(status.0));
        let _ = Reflect::set(&js_error, &"outcome".into(), &outcome_value);
        js_error.into()
    }
}

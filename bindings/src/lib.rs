//! WebAssembly bindings of the Hearth FHIR engine.
//!
//! Each export converts JS values to engine types, calls one engine function and converts the
//! result back. Failures leave as a JS `Error` named `FhirError` with `.status` and `.outcome`
//! (a FHIR `OperationOutcome`), built in one place: `impl From<BindingError> for JsValue`.
//! The npm package `hearth-fhir` wraps these exports; use that rather than this crate's glue.
#![warn(missing_docs)]

pub mod error;
pub mod fhirpath;
pub mod idb;
pub mod service;

use hearth_engine::json::write::Style;
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

pub use error::BindingError;

/// Reads a FHIR resource from UTF-8 JSON bytes by the R4 JSON rules.
///
/// Returns `{ resourceType, id }` (`id` only when the resource has one).
///
/// # Errors
/// A `FhirError` (status 400) whose outcome has one issue per violation, each with the element
/// path and the line and column.
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

/// Reads a FHIR resource and writes it back as canonical FHIR JSON, pretty (two-space
/// indentation) or compact.
///
/// # Errors
/// As [`inspect`].
#[wasm_bindgen]
pub fn format(bytes: &[u8], pretty: bool) -> Result<String, BindingError> {
    let style = if pretty {
        Style::Pretty
    } else {
        Style::Compact
    };
    Ok(hearth_engine::json::format(bytes, style)?)
}

/// Profiles and value sets loaded for validation.
#[wasm_bindgen]
#[derive(Default)]
pub struct ProfileSet {
    profiles: hearth_engine::validation::Profiles,
}

#[wasm_bindgen]
impl ProfileSet {
    /// An empty set.
    #[wasm_bindgen(constructor)]
    pub fn new() -> ProfileSet {
        ProfileSet::default()
    }

    /// Loads a StructureDefinition, a ValueSet, a Questionnaire, or a Bundle of them; returns
    /// how many. QuestionnaireResponses naming a loaded Questionnaire are checked against it.
    ///
    /// # Errors
    /// A `FhirError` (400) when the JSON is not a FHIR resource.
    pub fn add(&mut self, bytes: &[u8]) -> Result<usize, BindingError> {
        let resource = hearth_engine::json::fhir::parse_resource(bytes)?;
        Ok(self.profiles.load(&resource))
    }

    /// The URLs of the loaded profiles.
    pub fn urls(&self) -> Vec<String> {
        self.profiles.urls().map(String::from).collect()
    }

    /// Validates a resource against the base specification, the loaded profiles it claims, and
    /// `profile` when given; returns the OperationOutcome as JSON text.
    pub fn validate(
        &self,
        bytes: &[u8],
        security_checks: bool,
        no_html_in_markdown: bool,
        allow_comments: bool,
        skip_contained: bool,
        profile: Option<String>,
    ) -> String {
        let options = hearth_engine::validation::ValidateOptions {
            security_checks,
            no_html_in_markdown,
            allow_comments,
            skip_contained,
            profiles: Some(&self.profiles),
            profile: profile.as_deref(),
        };
        validate_with(bytes, &options)
    }
}

thread_local! {
    /// One validator for the module, so that invariants compile once, not once per resource.
    static VALIDATOR: core::cell::RefCell<hearth_engine::validation::Validator> =
        core::cell::RefCell::default();
}

/// Validates a resource against the R4 base specification; returns the OperationOutcome as
/// JSON text. Content that cannot be read is reported in the outcome too, not thrown.
#[wasm_bindgen]
pub fn validate(
    bytes: &[u8],
    security_checks: bool,
    no_html_in_markdown: bool,
    allow_comments: bool,
    skip_contained: bool,
) -> String {
    let options = hearth_engine::validation::ValidateOptions {
        security_checks,
        no_html_in_markdown,
        allow_comments,
        skip_contained,
        ..Default::default()
    };
    validate_with(bytes, &options)
}

fn validate_with(bytes: &[u8], options: &hearth_engine::validation::ValidateOptions<'_>) -> String {
    VALIDATOR
        .with(|validator| validator.borrow_mut().validate_json(bytes, options))
        .to_json()
}

/// The engine's version, as built.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").into()
}

/// The JSON properties an object of a FHIR type may have and how each is written, for JS to
/// check a plain object by the rules the engine reads JSON by (see the engine's
/// `json::fhir::json_table`); `undefined` for a name no type has.
#[wasm_bindgen(js_name = jsonTable)]
pub fn json_table(type_name: &str) -> Option<String> {
    hearth_engine::json::fhir::json_table(type_name)
}

fn set(target: &Object, key: &str, value: &JsValue) -> Result<(), BindingError> {
    Reflect::set(target, &JsValue::from_str(key), value).map_err(BindingError::Js)?;
    Ok(())
}

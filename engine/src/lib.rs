//! Hearth's FHIR R4 engine: reads FHIR JSON and reports failures as OperationOutcomes.
//!
//! The engine is `no_std` + `alloc`: it does no IO and reads no clock, so the same code runs
//! natively, in a browser tab, in a worker and at the edge. Hosts (the `hearth-wasm` bindings,
//! native tests) hand it bytes and take back values or an [`Error`].
//!
//! Entry types: [`json::inspect`] reads the head of a resource, [`Error`] is the one failure type,
//! and [`Error::to_outcome`] turns any failure into the HTTP status and `OperationOutcome` that
//! every API edge reports.
//!
//! ```
//! let summary = hearth_engine::json::inspect(br#"{"resourceType":"Patient","id":"example"}"#)?;
//! assert_eq!(summary.resource_type, "Patient");
//! assert_eq!(summary.id.as_deref(), Some("example"));
//! # Ok::<(), hearth_engine::Error>(())
//! ```
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod access;
mod error;
pub mod fhirpath;
pub mod json;
pub mod model;
pub mod outcome;
pub mod resource;
pub mod rest;
pub mod search;
pub mod store;
pub mod sync;
pub mod validation;

pub use error::{Error, Status};

//! The engine's one error type and its mapping to HTTP status and OperationOutcome.

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt;

use crate::json::ParseError;
use crate::outcome::{IssueType, OperationOutcome};

/// An HTTP status code, as the REST API and the JS API report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    /// 400: the request (or the resource in it) could not be read.
    pub const BAD_REQUEST: Status = Status(400);
}

/// Every way an engine operation can fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not JSON, or not the JSON shape of a FHIR resource.
    Json(ParseError),
    /// The JSON breaks the rules of FHIR JSON: one issue per violation found.
    Resource(Vec<ParseError>),
    /// A FHIRPath expression does not parse.
    FhirPathSyntax(crate::fhirpath::ParseError),
    /// A FHIRPath expression failed while evaluating.
    FhirPathEval(crate::fhirpath::EvalError),
}

impl Error {
    /// Maps a failure to its HTTP status and `OperationOutcome`.
    ///
    /// This is the only place that chooses `issue.code` and the status, so the REST handler
    /// and the JS API report the same failure the same way.
    pub fn to_outcome(&self) -> (Status, OperationOutcome) {
        match self {
            Error::Json(err) => (
                Status::BAD_REQUEST,
                OperationOutcome::error(IssueType::Structure, err.message.to_string())
                    .at_position(err.line, err.column)
                    .at_expression(err.path.as_deref()),
            ),
            Error::Resource(errors) => {
                let mut outcome = OperationOutcome::default();
                for err in errors {
                    outcome.push_error(
                        IssueType::Structure,
                        err.message.to_string(),
                        err.line,
                        err.column,
                        err.path.as_deref(),
                    );
                }
                (Status::BAD_REQUEST, outcome)
            }
            Error::FhirPathSyntax(err) => (
                Status::BAD_REQUEST,
                OperationOutcome::error(IssueType::Invalid, format!("{} (FHIRPath syntax)", err)),
            ),
            Error::FhirPathEval(err) => (
                Status::BAD_REQUEST,
                OperationOutcome::error(
                    IssueType::Processing,
                    format!("{} (FHIRPath evaluation)", err),
                ),
            ),
        }
    }
}

impl From<ParseError> for Error {
    fn from(err: ParseError) -> Self {
        Error::Json(err)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Json(err) => err.fmt(f),
            Error::FhirPathSyntax(err) => err.fmt(f),
            Error::FhirPathEval(err) => err.fmt(f),
            Error::Resource(errors) => {
                for (err_idx, err) in errors.iter().enumerate() {
                    if err_idx > 0 {
                        f.write_str("; ")?;
                    }
                    err.fmt(f)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

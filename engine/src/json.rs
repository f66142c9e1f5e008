//! Reading FHIR JSON. For now: the head of a resource (`resourceType` and `id`), with the whole
//! text checked as strict JSON.
//!
//! Every failure carries the line and column of the offending character and, once the failure
//! concerns an element, its FHIRPath location (`Patient.id`).

pub mod fhir;
pub mod reader;
pub mod write;

use alloc::format;
use alloc::string::String;
use core::fmt;

pub use reader::{Limits, Member, Node, Value};

/// What [`inspect`] learns about a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSummary {
    /// The `resourceType` element, e.g. `Patient`.
    pub resource_type: String,
    /// The `id` element, when the resource has one.
    pub id: Option<String>,
}

/// Why some bytes are not readable as a FHIR resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was expected and what was found, lower case, without the position.
    pub message: String,
    /// 1-based line of the offending character.
    pub line: usize,
    /// 1-based column of the offending character, counted in Unicode scalar values.
    pub column: usize,
    /// The FHIRPath location of the offending element, when one is known (`Patient.id`).
    pub path: Option<String>,
}

impl ParseError {
    /// An error at byte `offset` of `input`; line and column are worked out from the text.
    pub fn new(message: String, input: &[u8], offset: usize) -> Self {
        let (line, column) = line_column(input, offset);
        ParseError {
            message,
            line,
            column,
            path: None,
        }
    }

    pub(crate) fn with_path(mut self, path: String) -> Self {
        self.path = Some(path);
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.message, self.line, self.column
        )?;
        if let Some(path) = &self.path {
            write!(f, " ({path})")?;
        }
        Ok(())
    }
}

/// 1-based line and column of byte `offset`. Columns count characters; a byte that does not
/// start a character (invalid UTF-8) counts as one.
fn line_column(input: &[u8], offset: usize) -> (usize, usize) {
    let before = input.get(..offset).unwrap_or(input);
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = 1 + before.iter().filter(|&&byte| byte == b'\n').count();
    let column = 1 + before
        .get(line_start..)
        .unwrap_or_default()
        .iter()
        .filter(|&&byte| byte & 0xC0 != 0x80)
        .count();
    (line, column)
}

/// Reads the head of a FHIR resource from JSON bytes.
///
/// # Errors
/// [`crate::Error::Json`] when the bytes are not strict UTF-8 JSON within [`Limits::default`],
/// are not a JSON object, or have no non-empty string `resourceType`, or an `id` that is not a string.
pub fn inspect(bytes: &[u8]) -> Result<ResourceSummary, crate::Error> {
    let root = reader::parse(bytes, Limits::default())?;
    let Value::Object(members) = &root.value else {
        return Err(ParseError::new(
            format!(
                "expected a FHIR resource (a JSON object), found {}",
                root.value.describe()
            ),
            bytes,
            root.offset,
        )
        .into());
    };
    let Some(type_member) = members.iter().find(|member| member.key == "resourceType") else {
        return Err(ParseError::new(
            "expected a \"resourceType\" element, found none".into(),
            bytes,
            root.offset,
        )
        .into());
    };
    let resource_type = match &type_member.node.value {
        Value::String(text) if !text.is_empty() => text.clone(),
        Value::String(_) => {
            return Err(ParseError::new(
                "expected \"resourceType\" to name a resource type, found an empty string".into(),
                bytes,
                type_member.node.offset,
            )
            .with_path("resourceType".into())
            .into())
        }
        other => {
            return Err(ParseError::new(
                format!(
                    "expected \"resourceType\" to be a string, found {}",
                    other.describe()
                ),
                bytes,
                type_member.node.offset,
            )
            .with_path("resourceType".into())
            .into())
        }
    };
    let id = match members.iter().find(|member| member.key == "id") {
        None => None,
        Some(Member {
            node: Node {
                value: Value::String(id),
                ..
            },
            ..
        }) => Some(id.clone()),
        Some(Member { node, .. }) => {
            return Err(ParseError::new(
                format!(
                    "expected \"id\" to be a string, found {}",
                    node.value.describe()
                ),
                bytes,
                node.offset,
            )
            .with_path(format!("{resource_type}.id"))
            .into())
        }
    };
    Ok(ResourceSummary { resource_type, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one call into [`inspect`]: `expected` is `Ok("Type/id")` (`Ok("Type")` without id)
    /// or `Err((message, line, column, path))`.
    #[track_caller]
    fn check(input: &str, expected: Result<&str, (&str, usize, usize, Option<&str>)>) {
        let got = inspect(input.as_bytes());
        match (got, expected) {
            (Ok(summary), Ok(want)) => {
                let text = match &summary.id {
                    Some(id) => format!("{}/{}", summary.resource_type, id),
                    None => summary.resource_type.clone(),
                };
                assert_eq!(text, want);
            }
            (Err(crate::Error::Json(err)), Err((message, line, column, path))) => {
                assert_eq!(
                    (
                        err.message.as_str(),
                        err.line,
                        err.column,
                        err.path.as_deref()
                    ),
                    (message, line, column, path)
                );
            }
            (got, want) => panic!("for {input:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn reads_type_and_id() {
        check(
            r#"{"resourceType":"Patient","id":"example","active":true}"#,
            Ok("Patient/example"),
        );
    }

    #[test]
    fn id_is_optional_and_order_free() {
        check(
            r#"{"name":[{"family":"Chalmers"}],"resourceType":"Patient"}"#,
            Ok("Patient"),
        );
    }

    #[test]
    fn escaped_keys_are_recognised() {
        check(r#"{"resource\u0054ype":"Observation"}"#, Ok("Observation"));
    }

    #[test]
    fn truncated_json_reports_end_of_input() {
        check(
            r#"{"resourceType":"Patient","#,
            Err((
                "expected a string key, found the end of the input",
                1,
                27,
                None,
            )),
        );
    }

    #[test]
    fn array_is_not_a_resource() {
        check(
            r#"[{"resourceType":"Patient"}]"#,
            Err((
                "expected a FHIR resource (a JSON object), found an array",
                1,
                1,
                None,
            )),
        );
    }

    #[test]
    fn numeric_resource_type_points_at_the_value() {
        check(
            "{\n  \"resourceType\": 5\n}",
            Err((
                "expected \"resourceType\" to be a string, found a number",
                2,
                19,
                Some("resourceType"),
            )),
        );
    }

    #[test]
    fn numeric_id_points_at_the_value_with_its_path() {
        check(
            r#"{"resourceType":"Patient","id":7}"#,
            Err((
                "expected \"id\" to be a string, found a number",
                1,
                32,
                Some("Patient.id"),
            )),
        );
    }

    #[test]
    fn missing_resource_type_is_an_error() {
        check(
            r#" {"id":"x"}"#,
            Err((
                "expected a \"resourceType\" element, found none",
                1,
                2,
                None,
            )),
        );
    }

    #[test]
    fn empty_resource_type_is_an_error() {
        check(
            r#"{"resourceType":""}"#,
            Err((
                "expected \"resourceType\" to name a resource type, found an empty string",
                1,
                17,
                Some("resourceType"),
            )),
        );
    }

    #[test]
    fn duplicate_resource_type_is_an_error() {
        check(
            r#"{"resourceType":"Patient","resourceType":"Patient"}"#,
            Err(("duplicate key \"resourceType\"", 1, 27, None)),
        );
    }

    #[test]
    fn hundred_thousand_nested_arrays_return_error_not_panic() {
        let nested: String = core::iter::repeat_n('[', 100_000)
            .chain(core::iter::repeat_n(']', 100_000))
            .collect();
        check(
            &nested,
            Err((
                "expected at most 100 levels of nested arrays and objects, found more",
                1,
                101,
                None,
            )),
        );
        let inside = format!(r#"{{"resourceType":"Basic","extension":{nested}}}"#);
        check(
            &inside,
            Err((
                "expected at most 100 levels of nested arrays and objects, found more",
                1,
                136,
                None,
            )),
        );
    }

    #[test]
    fn line_column_counts_lines_and_characters() {
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\né".as_bytes(), 5), (2, 2));
        assert_eq!(line_column(b"ab", 99), (1, 3));
    }
}

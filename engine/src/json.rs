//! FHIR JSON: a strict reader ([`reader`]), reading into the typed model by the R4 JSON rules
//! ([`fhir`]) and canonical writing ([`write`]).
//!
//! Every failure carries the line and column of the offending character and, once the failure
//! concerns an element, its FHIRPath location (`Patient.name[0].given[1]`).

pub mod fhir;
pub mod patch;
pub mod reader;
pub mod write;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use reader::Limits;

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

/// The byte offset in `tree` of the element at a FHIRPath location (`Patient.name[0].given[1]`,
/// `Observation.value` for `valueQuantity`): the key of an element, the value of an array item.
pub(crate) fn locate(tree: &reader::Node, path: &str) -> Option<usize> {
    let mut segments = path.split('.');
    segments.next()?; // the resource type
    let mut node = tree;
    let mut offset = tree.offset;
    for segment in segments {
        let (name, index) = match segment.strip_suffix(']').and_then(|s| s.split_once('[')) {
            Some((name, index)) => (name, Some(index.parse::<usize>().ok()?)),
            None => (segment, None),
        };
        let reader::Value::Object(members) = &node.value else {
            return None;
        };
        // The element itself, or a choice element by its typed name (`valueQuantity`).
        let member = members
            .iter()
            .find(|member| member.key == name)
            .or_else(|| {
                members.iter().find(|member| {
                    member.key.strip_prefix(name).is_some_and(|rest| {
                        // The rest must name a type: `DateTime` (dateTime), `Quantity`.
                        let mut chars = rest.chars();
                        let lowered: String = chars
                            .next()
                            .filter(char::is_ascii_uppercase)
                            .map(|first| first.to_ascii_lowercase())
                            .into_iter()
                            .chain(chars)
                            .collect();
                        !lowered.is_empty()
                            && (crate::model::type_by_name(rest).is_some()
                                || crate::model::type_by_name(&lowered).is_some())
                    })
                })
            })?;
        offset = member.key_offset;
        node = &member.node;
        if let Some(index) = index {
            if let reader::Value::Array(items) = &node.value {
                node = items.get(index)?;
                offset = node.offset;
            }
        }
    }
    Some(offset)
}

/// 1-based line and column of byte `offset`. Columns count characters; a byte that does not
/// start a character (invalid UTF-8) counts as one.
fn line_column(input: &[u8], offset: usize) -> (usize, usize) {
    positions(input, &[offset])
        .first()
        .copied()
        .unwrap_or((1, 1))
}

/// Line and column of each byte offset (in any order), in one pass over the input. A line
/// ends at LF, CR LF or a lone CR.
pub(crate) fn positions(input: &[u8], offsets: &[usize]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..offsets.len()).collect();
    order.sort_by_key(|&idx| offsets.get(idx).copied().unwrap_or(0));
    let mut res = alloc::vec![(1, 1); offsets.len()];
    let (mut line, mut column, mut pos) = (1, 1, 0);
    for idx in order {
        let target = offsets.get(idx).copied().unwrap_or(0).min(input.len());
        while pos < target {
            let byte = input.get(pos).copied().unwrap_or(0);
            let next = input.get(pos + 1).copied();
            if byte == b'\n' || (byte == b'\r' && next != Some(b'\n')) {
                line += 1;
                column = 1;
            } else if byte & 0xC0 != 0x80 && byte != b'\r' {
                column += 1;
            }
            pos += 1;
        }
        if let Some(slot) = res.get_mut(idx) {
            *slot = (line, column);
        }
    }
    res
}

/// The input with its comments (`// ...` to the end of the line, `/* ... */`) replaced by
/// spaces, for sources that write JSON with comments (JSON5, some IG tooling). Line breaks
/// inside comments are kept, so line and column of everything else stay as in the input.
/// Borrowed when there is no comment.
///
/// # Errors
/// A [`ParseError`] at the start of a `/*` comment that is never closed.
pub fn blank_comments(bytes: &[u8]) -> Result<alloc::borrow::Cow<'_, [u8]>, ParseError> {
    let mut res: Option<Vec<u8>> = None;
    let (mut pos, mut in_string) = (0, false);
    while let Some(&byte) = bytes.get(pos) {
        if in_string {
            match byte {
                b'\\' => pos += 1,
                b'"' => in_string = false,
                _ => {}
            }
            pos += 1;
            continue;
        }
        let end =
            match (byte, bytes.get(pos + 1)) {
                (b'"', _) => {
                    in_string = true;
                    None
                }
                (b'/', Some(b'/')) => Some(
                    bytes
                        .get(pos..)
                        .and_then(|rest| rest.iter().position(|&b| b == b'\n' || b == b'\r'))
                        .map_or(bytes.len(), |len| pos + len),
                ),
                (b'/', Some(b'*')) => {
                    let close = bytes
                        .get(pos + 2..)
                        .and_then(|rest| rest.windows(2).position(|pair| pair == b"*/"));
                    match close {
                        Some(len) => Some(pos + 2 + len + 2),
                        None => return Err(ParseError::new(
                            String::from(
                                "expected \"*/\" to close the comment, found the end of the input",
                            ),
                            bytes,
                            pos,
                        )),
                    }
                }
                _ => None,
            };
        match end {
            Some(end) => {
                let out = res.get_or_insert_with(|| bytes.to_vec());
                for slot in out.get_mut(pos..end).into_iter().flatten() {
                    if !matches!(*slot, b'\n' | b'\r') {
                        *slot = b' ';
                    }
                }
                pos = end;
            }
            None => pos += 1,
        }
    }
    Ok(res.map_or(
        alloc::borrow::Cow::Borrowed(bytes),
        alloc::borrow::Cow::Owned,
    ))
}

/// Reads a FHIR resource and tells its type and id.
///
/// # Errors
/// As [`fhir::parse_resource`]: the bytes must be a FHIR resource by every rule of FHIR JSON.
pub fn inspect(bytes: &[u8]) -> Result<ResourceSummary, crate::Error> {
    let resource = fhir::parse_resource(bytes)?;
    Ok(ResourceSummary {
        resource_type: String::from(resource.type_def().name),
        id: resource.id().map(String::from),
    })
}

/// Reads a FHIR resource and writes it back in canonical form.
///
/// # Errors
/// As [`fhir::parse_resource`].
pub fn format(bytes: &[u8], style: write::Style) -> Result<String, crate::Error> {
    let resource = fhir::parse_resource(bytes)?;
    Ok(write::write_resource_with_capacity(
        &resource,
        style,
        bytes.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    /// The one call into [`inspect`]: `expected` is `Ok("Type/id")` (`Ok("Type")` without id)
    /// or `Err((message, line, column))` of the first issue.
    #[track_caller]
    fn check(input: &str, expected: Result<&str, (&str, usize, usize)>) {
        let got = inspect(input.as_bytes());
        let first = |err: &crate::Error| match err {
            crate::Error::Json(err) => Some(err.clone()),
            crate::Error::Resource(errors) => errors.first().cloned(),
            _ => None,
        };
        match (&got, expected) {
            (Ok(summary), Ok(want)) => {
                let text = match &summary.id {
                    Some(id) => format!("{}/{}", summary.resource_type, id),
                    None => summary.resource_type.clone(),
                };
                assert_eq!(text, want);
            }
            (Err(err), Err((message, line, column))) => {
                let err = first(err).unwrap_or_else(|| ParseError::new(String::new(), b"", 0));
                assert_eq!(
                    (err.message.as_str(), err.line, err.column),
                    (message, line, column)
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
            Err(("expected a string key, found the end of the input", 1, 27)),
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
            )),
        );
    }

    #[test]
    fn format_writes_canonical_order() {
        let text = format(
            br#"{"gender":"male","resourceType":"Patient","_gender":{"id":"g"},"id":"a"}"#,
            write::Style::Compact,
        );
        assert_eq!(
            text.ok().as_deref(),
            Some(r#"{"resourceType":"Patient","id":"a","gender":"male","_gender":{"id":"g"}}"#)
        );
    }

    #[test]
    fn format_pretty_indents_by_two() {
        let text = format(
            br#"{"resourceType":"Patient","name":[{"given":["a","b"]}]}"#,
            write::Style::Pretty,
        );
        let want = "{\n  \"resourceType\": \"Patient\",\n  \"name\": [\n    {\n      \"given\": [\n        \"a\",\n        \"b\"\n      ]\n    }\n  ]\n}";
        assert_eq!(text.ok().as_deref(), Some(want));
    }

    #[test]
    fn locate_finds_elements_by_fhirpath_location() {
        let text = "{\"resourceType\":\"Observation\",\n\"valueQuantity\":{\"value\":1},\n\"component\":[{\"code\":{}},\n {\"code\":{\"text\":\"x\"}}]}";
        let tree = reader::parse(text.as_bytes(), reader::Limits::default())
            .unwrap_or_else(|err| panic!("{err}"));
        let at =
            |path: &str| locate(&tree, path).map(|offset| line_column(text.as_bytes(), offset));
        assert_eq!(at("Observation"), Some((1, 1)));
        assert_eq!(at("Observation.value"), Some((2, 1)));
        assert_eq!(at("Observation.component[1]"), Some((4, 2)));
        assert_eq!(at("Observation.component[1].code.text"), Some((4, 11)));
        assert_eq!(at("Observation.component[7]"), None);
        assert_eq!(at("Observation.status"), None);
        // A longer element name that starts like a choice element is not that choice.
        let text = "{\"resourceType\":\"ResearchElementDefinition\",\n\"characteristic\":[{\"studyEffectiveDescription\":\"x\",\n\"studyEffectiveDateTime\":\"2020\"}]}";
        let tree = reader::parse(text.as_bytes(), reader::Limits::default())
            .unwrap_or_else(|err| panic!("{err}"));
        let located = locate(
            &tree,
            "ResearchElementDefinition.characteristic[0].studyEffective",
        )
        .map(|offset| line_column(text.as_bytes(), offset));
        assert_eq!(located, Some((3, 1)));
    }

    #[test]
    fn comments_become_spaces_and_positions_stay() {
        let text = "// head\n{\"a\": \"x//y /* z */\", /* b\n c */ \"b\": 1}";
        let blanked = blank_comments(text.as_bytes()).unwrap_or_else(|err| panic!("{err}"));
        let want = "       \n{\"a\": \"x//y /* z */\",     \n      \"b\": 1}";
        assert_eq!(core::str::from_utf8(&blanked).ok(), Some(want));
        assert!(matches!(
            blank_comments(b"{\"a\":1}"),
            Ok(alloc::borrow::Cow::Borrowed(_))
        ));
        // An escaped quote does not end the string.
        assert!(matches!(
            blank_comments(br#"{"a":"\"//"}"#),
            Ok(alloc::borrow::Cow::Borrowed(_))
        ));
        let err = blank_comments(b"{}\n /* open").err();
        assert_eq!(err.map(|err| (err.line, err.column)), Some((2, 2)));
    }

    #[test]
    fn line_column_counts_lines_and_characters() {
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\né".as_bytes(), 5), (2, 2));
        assert_eq!(line_column(b"ab", 99), (1, 3));
        assert_eq!(line_column(b"a\rb\r\nc", 5), (3, 1));
        assert_eq!(positions(b"a\nbc\nd", &[5, 0, 3]), [(3, 1), (1, 1), (2, 2)]);
    }
}

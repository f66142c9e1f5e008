//! `OperationOutcome`: how every API edge (REST response, JS exception) reports what went wrong.

use alloc::string::String;
use alloc::vec::Vec;

use core::fmt::Write;

/// Extension that carries the 1-based line of an issue in the submitted JSON text.
pub const LINE_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line";
/// Extension that carries the 1-based column of an issue in the submitted JSON text.
pub const COLUMN_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col";

/// `OperationOutcome.issue.severity` (value set `issue-severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The issue caused the action to fail.
    Fatal,
    /// The issue is sufficiently important to cause the action to fail.
    Error,
    /// The issue is not important enough to cause the action to fail.
    Warning,
    /// The issue has no relation to the degree of success of the action.
    Information,
}

impl Severity {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// `OperationOutcome.issue.code` (value set `issue-type`); only the codes the engine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueType {
    /// A structural issue in the content, such as wrong JSON or a wrong element type.
    Structure,
    /// An unexpected internal error.
    Exception,
    /// Content invalid against the specification (here: an expression that does not parse).
    Invalid,
    /// A required element is missing.
    Required,
    /// A value is not valid for its type.
    Value,
    /// An invariant does not hold.
    Invariant,
    /// A code is not in the value set it must come from.
    CodeInvalid,
    /// Information only.
    Informational,
    /// Processing failed (here: an expression that failed while evaluating).
    Processing,
    /// Content is too long.
    TooLong,
    /// The request would cost more than a limit of the service allows.
    TooCostly,
    /// A failure that may pass if the request is made again later.
    Transient,
    /// The request is not allowed (a host or origin the service does not answer).
    Forbidden,
    /// Something asked for is not supported (here: a profile that is not loaded).
    NotSupported,
    /// The resource does not exist.
    NotFound,
    /// The resource was deleted.
    Deleted,
    /// A version conflict (If-Match).
    Conflict,
    /// More matches than an interaction allows (conditional create, update, delete).
    Duplicate,
    /// An authorization failure: a missing or invalid token.
    Login,
    /// A security problem other than the token's scope (a token sent where it may not be).
    Security,
}

impl IssueType {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Structure => "structure",
            IssueType::Exception => "exception",
            IssueType::Invalid => "invalid",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::Invariant => "invariant",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::Informational => "informational",
            IssueType::Processing => "processing",
            IssueType::TooLong => "too-long",
            IssueType::TooCostly => "too-costly",
            IssueType::Transient => "transient",
            IssueType::Forbidden => "forbidden",
            IssueType::NotSupported => "not-supported",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::Conflict => "conflict",
            IssueType::Duplicate => "duplicate",
            IssueType::Login => "login",
            IssueType::Security => "security",
        }
    }
}

/// One issue of an [`OperationOutcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How bad the issue is.
    pub severity: Severity,
    /// What kind of issue it is.
    pub code: IssueType,
    /// The human-readable message.
    pub diagnostics: String,
    /// FHIRPath locations of the elements concerned, e.g. `Patient.name[0].given[1]`.
    pub expression: Vec<String>,
    /// 1-based line and column in the submitted text, when the issue comes from reading it.
    pub position: Option<(usize, usize)>,
}

/// A FHIR `OperationOutcome`: a list of issues.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperationOutcome {
    /// The issues, most important first.
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    /// An outcome with a single error issue.
    pub fn error(code: IssueType, diagnostics: String) -> Self {
        OperationOutcome {
            issues: alloc::vec![Issue {
                severity: Severity::Error,
                code,
                diagnostics,
                expression: Vec::new(),
                position: None,
            }],
        }
    }

    /// An outcome with a single informational issue (what a request did).
    pub fn information(diagnostics: String) -> Self {
        OperationOutcome {
            issues: alloc::vec![Issue {
                severity: Severity::Information,
                code: IssueType::Informational,
                diagnostics,
                expression: Vec::new(),
                position: None,
            }],
        }
    }

    /// Adds an error issue at a text position (line 0: unknown) and FHIRPath location.
    pub fn push_error(
        &mut self,
        code: IssueType,
        diagnostics: String,
        line: usize,
        column: usize,
        expression: Option<&str>,
    ) {
        self.issues.push(Issue {
            severity: Severity::Error,
            code,
            diagnostics,
            expression: expression.map(String::from).into_iter().collect(),
            position: (line > 0).then_some((line, column)),
        });
    }

    /// Adds a warning issue at a text position (line 0: unknown) and FHIRPath location.
    pub fn push_warning(
        &mut self,
        code: IssueType,
        diagnostics: String,
        line: usize,
        column: usize,
        expression: Option<&str>,
    ) {
        self.push_error(code, diagnostics, line, column, expression);
        if let Some(issue) = self.issues.last_mut() {
            issue.severity = Severity::Warning;
        }
    }

    /// Sets the text position of the last issue; a line of 0 means "unknown" and is dropped.
    pub fn at_position(mut self, line: usize, column: usize) -> Self {
        if let Some(issue) = self.issues.last_mut() {
            issue.position = (line > 0).then_some((line, column));
        }
        self
    }

    /// Adds a FHIRPath location to the last issue, when there is one.
    pub fn at_expression(mut self, expression: Option<&str>) -> Self {
        if let (Some(issue), Some(expression)) = (self.issues.last_mut(), expression) {
            issue.expression.push(String::from(expression));
        }
        self
    }

    /// The outcome as compact FHIR JSON text, elements in the order of the specification.
    pub fn to_json(&self) -> String {
        let mut res = String::from(r#"{"resourceType":"OperationOutcome","issue":["#);
        for (issue_idx, issue) in self.issues.iter().enumerate() {
            if issue_idx > 0 {
                res.push(',');
            }
            issue.write_json(&mut res);
        }
        res.push_str("]}");
        res
    }
}

impl Issue {
    fn write_json(&self, res: &mut String) {
        res.push('{');
        if let Some((line, column)) = self.position {
            // `write!` into a String cannot fail.
            let _ = write!(
                res,
                r#""extension":[{{"url":"{LINE_EXTENSION}","valueInteger":{line}}},{{"url":"{COLUMN_EXTENSION}","valueInteger":{column}}}],"#
            );
        }
        let _ = write!(
            res,
            r#""severity":"{}","code":"{}","diagnostics":"#,
            self.severity.code(),
            self.code.code()
        );
        push_json_string(res, &self.diagnostics);
        if !self.expression.is_empty() {
            res.push_str(r#","expression":["#);
            for (expression_idx, expression) in self.expression.iter().enumerate() {
                if expression_idx > 0 {
                    res.push(',');
                }
                push_json_string(res, expression);
            }
            res.push(']');
        }
        res.push('}');
    }
}

/// Appends `text` as a JSON string literal (RFC 8259 escaping: `"`, `\\` and control
/// characters; everything else as is).
pub(crate) fn push_json_string(res: &mut String, text: &str) {
    res.reserve(text.len() + 2);
    res.push('"');
    let bytes = text.as_bytes();
    // Most text needs no escape: its clean start is copied at once.
    let clean = clean_prefix(bytes);
    res.push_str(text.get(..clean).unwrap_or_default());
    let mut run_start = clean;
    for (idx, &byte) in bytes.iter().enumerate().skip(clean) {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // Escaped bytes are ASCII, so both cuts fall on character boundaries.
        res.push_str(text.get(run_start..idx).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(res, "\\u{:04x}", byte);
        } else {
            res.push_str(escape);
        }
        run_start = idx + 1;
    }
    res.push_str(text.get(run_start..).unwrap_or_default());
    res.push('"');
}

/// How many bytes at the start of `bytes` JSON takes as they are (no `"`, `\\` or control
/// character), looked at eight at a time.
fn clean_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        // A high bit set where a byte is below 0x20, or equal to either (no byte is missed;
        // a byte after one found may be flagged too, which only stops the fast path).
        let found = (word.wrapping_sub(ONES * 0x20) & !word & HIGH)
            | (quote.wrapping_sub(ONES) & !quote & HIGH)
            | (backslash.wrapping_sub(ONES) & !backslash & HIGH);
        if found != 0 {
            break;
        }
        at += 8;
    }
    let rest = bytes.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
        .unwrap_or(rest.len())
}

/// `a Patient`, `an Observation`: a noun with its indefinite article (by the first letter's
/// sound, which for FHIR's type names is its vowel or not).
pub fn with_article(noun: &str) -> String {
    let lower = noun.to_ascii_lowercase();
    // "a uri", "a url", "a uuid", "a UsageContext" (a "you" sound), but "an unsignedInt".
    let you = ["ur", "us", "uu"]
        .iter()
        .any(|start| lower.starts_with(start));
    let vowel = !you
        && lower
            .chars()
            .next()
            .is_some_and(|c| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u'));
    alloc::format!("{} {noun}", if vowel { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Escapes as a byte-by-byte reading of RFC 8259 does, for every ASCII byte at every
    /// place of strings long and short, with text beyond ASCII around it.
    #[test]
    fn json_strings_escape_what_json_requires_and_nothing_else() {
        fn expected(text: &str) -> String {
            let mut out = String::from("\"");
            for c in text.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 => out.push_str(&alloc::format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 40] {
            for at in 0..len.max(1) {
                for byte in 0u8..0x80 {
                    let mut text: alloc::vec::Vec<char> =
                        "urn:uuid:é0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8"
                            .chars()
                            .cycle()
                            .take(len)
                            .collect();
                    if len > 0 {
                        text[at] = char::from(byte);
                    }
                    let text: String = text.into_iter().collect();
                    let mut out = String::new();
                    push_json_string(&mut out, &text);
                    assert_eq!(out, expected(&text), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn error_outcome_carries_position_and_expression_in_fhir_order() {
        let outcome = OperationOutcome::error(IssueType::Structure, "bad".into())
            .at_position(3, 18)
            .at_expression(Some("Patient.id"));
        let text = outcome.to_json();
        assert_eq!(
            text,
            concat!(
                r#"{"resourceType":"OperationOutcome","issue":[{"extension":["#,
                r#"{"url":"http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line","valueInteger":3},"#,
                r#"{"url":"http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col","valueInteger":18}],"#,
                r#""severity":"error","code":"structure","diagnostics":"bad","expression":["Patient.id"]}]}"#
            )
        );
    }

    #[test]
    fn diagnostics_are_escaped_as_json() {
        let outcome = OperationOutcome::error(IssueType::Structure, "a \"b\"\\\n\u{1}".into());
        let text = outcome.to_json();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(parsed["issue"][0]["diagnostics"], "a \"b\"\\\n\u{1}");
    }

    #[test]
    fn unknown_position_is_left_out() {
        let outcome = OperationOutcome::error(IssueType::Exception, "x".into()).at_position(0, 0);
        assert_eq!(outcome.issues[0].position, None);
        assert!(!outcome.to_json().contains("extension"));
    }
}

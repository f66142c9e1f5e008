//! Validation options that change what is read or checked (JSON comments, contained
//! resources), through `Validator::validate_json`, the entry the JS API uses.

use hearth_engine::outcome::Severity;
use hearth_engine::validation::{ValidateOptions, Validator};

/// The one call into the validator: the error messages (with line and column) for `input`.
#[track_caller]
fn errors(input: &str, options: &ValidateOptions<'_>) -> Vec<String> {
    let outcome = Validator::new().validate_json(input.as_bytes(), options);
    outcome
        .issues
        .iter()
        .filter(|issue| matches!(issue.severity, Severity::Error | Severity::Fatal))
        .map(|issue| match issue.position {
            Some((line, column)) => format!("{} @{line}:{column}", issue.diagnostics),
            None => issue.diagnostics.clone(),
        })
        .collect()
}

const NARRATIVE: &str =
    r#""text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}"#;

#[test]
fn comments_are_refused_unless_allowed() {
    let input = format!(
        "// a patient\n{{\"resourceType\":\"Patient\", /* the id */ {NARRATIVE},\n\"birthDate\":\"2020-13-01\"}}"
    );
    let strict = errors(&input, &ValidateOptions::default());
    assert_eq!(strict.len(), 1, "{strict:?}");
    assert!(strict[0].contains("expected a JSON value"), "{strict:?}");
    let allowed = ValidateOptions {
        allow_comments: true,
        ..ValidateOptions::default()
    };
    // Read, then validated: the bad date is found where it is in the text with comments.
    assert_eq!(
        errors(&input, &allowed),
        ["expected a valid date value, found \"2020-13-01\" @3:1"]
    );
    let unclosed = errors("{\"resourceType\":\"Patient\"} /* open", &allowed);
    assert_eq!(unclosed.len(), 1, "{unclosed:?}");
    assert!(unclosed[0].contains("to close the comment"), "{unclosed:?}");
}

#[test]
fn skipped_contained_resources_are_not_checked() {
    // A contained resource with a bad id that nothing refers to: dom-3 and the id format.
    let input = format!(
        r#"{{"resourceType":"Condition",{NARRATIVE},"subject":{{"reference":"Patient/1"}},
        "contained":[{{"resourceType":"Practitioner","id":"{}",{NARRATIVE}}}]}}"#,
        "1".repeat(65)
    );
    let all = errors(&input, &ValidateOptions::default());
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.iter().any(|error| error.starts_with("dom-3")),
        "{all:?}"
    );
    let skipped = ValidateOptions {
        skip_contained: true,
        ..ValidateOptions::default()
    };
    assert_eq!(errors(&input, &skipped), Vec::<String>::new());
}

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

#[test]
fn reading_errors_are_reported_with_the_findings_of_the_rest() {
    // An unknown element and a wrong type, then a bad date and a broken invariant elsewhere.
    let input = format!(
        "{{\"resourceType\":\"Patient\",{NARRATIVE},\n\"nickname\":\"Pete\",\n\"active\":\"yes\",\n\"birthDate\":\"2020-13-01\",\n\"contact\":[{{\"gender\":\"male\"}}]}}"
    );
    let found = errors(&input, &ValidateOptions::default());
    assert!(
        found
            .iter()
            .any(|e| e.contains("unknown element \"nickname\"") && e.ends_with("@2:1")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|e| e.contains("\"active\" (boolean)")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("valid date value") && e.ends_with("@4:1")),
        "{found:?}"
    );
    assert!(found.iter().any(|e| e.contains("pat-1")), "{found:?}");
    // What could not be read is not reported twice (as missing, or again below it).
    let bad_status = format!(
        "{{\"resourceType\":\"Observation\",{NARRATIVE},\"status\":5,\"code\":{{\"text\":\"x\"}}}}"
    );
    let found = errors(&bad_status, &ValidateOptions::default());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("\"status\""), "{found:?}");
}

#[test]
fn only_findings_that_repeat_a_reading_error_are_left_out() {
    // A companion that cannot be read leaves its value's own findings standing.
    let companion = format!(
        "{{\"resourceType\":\"Patient\",{NARRATIVE},\"birthDate\":\"2020-13-01\",\"_birthDate\":5}}"
    );
    let found = errors(&companion, &ValidateOptions::default());
    assert!(
        found.iter().any(|e| e.contains("valid date value")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("expected \"_birthDate\"") || e.contains("object")),
        "{found:?}"
    );
    // A choice element that cannot be read is not also reported missing.
    let choice = format!(
        "{{\"resourceType\":\"Questionnaire\",{NARRATIVE},\"status\":\"draft\",\"item\":[{{\"linkId\":\"1\",\"type\":\"boolean\"}},{{\"linkId\":\"2\",\"type\":\"string\",\"enableWhen\":[{{\"question\":\"1\",\"operator\":\"=\",\"answerBoolean\":\"yes\"}}]}}]}}"
    );
    let found = errors(&choice, &ValidateOptions::default());
    assert_eq!(found.len(), 1, "{found:?}");
    // An object emptied by what could not be read is not also reported empty (ele-1).
    let emptied = format!(
        "{{\"resourceType\":\"Observation\",{NARRATIVE},\"status\":\"final\",\"code\":{{\"text\":5}}}}"
    );
    let found = errors(&emptied, &ValidateOptions::default());
    assert_eq!(found.len(), 1, "{found:?}");
}

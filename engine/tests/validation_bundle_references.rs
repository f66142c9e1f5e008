//! References inside Bundles (R4 §2.36.4.1): a document's Composition and a message's focus
//! must resolve to entries of the Bundle, at the version they name; in other Bundles a
//! reference may point outside, so nothing is reported.

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::outcome::Severity;
use hearth_engine::validation::validate;

const NARRATIVE: &str =
    r#""text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}"#;

/// Error messages with their paths.
fn errors(json: &str) -> Vec<String> {
    let resource = parse_resource(json.as_bytes()).unwrap_or_else(|err| panic!("{err}\n{json}"));
    validate(&resource)
        .into_iter()
        .filter(|finding| finding.severity == Severity::Error)
        .map(|finding| format!("{} @ {}", finding.message, finding.path))
        .collect()
}

/// A Bundle of `kind` whose first entry is `first`, followed by a Patient and two versions of
/// one Observation, all with RESTful full URLs.
fn bundle(kind: &str, first: &str) -> String {
    let observation = |version: &str| {
        format!(
            r#"{{"fullUrl":"http://example.org/fhir/Observation/o1","resource":{{"resourceType":"Observation","id":"o1",{NARRATIVE},"meta":{{"versionId":"{version}"}},"status":"final","code":{{"text":"height"}},"subject":{{"reference":"Patient/p1"}}}}}}"#
        )
    };
    format!(
        r#"{{"resourceType":"Bundle","identifier":{{"system":"urn:ietf:rfc:3986","value":"urn:uuid:0c3a8f5e-3d4b-4e61-9a77-2b1f0d6e5c44"}},"type":"{kind}","timestamp":"2024-12-01T10:00:00Z","entry":[{first},
          {{"fullUrl":"http://example.org/fhir/Patient/p1","resource":{{"resourceType":"Patient","id":"p1",{NARRATIVE}}}}},
          {},{}]}}"#,
        observation("1"),
        observation("2")
    )
}

fn composition(entries: &[&str]) -> String {
    let entries: Vec<String> = entries
        .iter()
        .map(|reference| format!(r#"{{"reference":"{reference}"}}"#))
        .collect();
    format!(
        r#"{{"fullUrl":"http://example.org/fhir/Composition/c1","resource":{{"resourceType":"Composition","id":"c1",{NARRATIVE},"status":"final","type":{{"text":"note"}},"subject":{{"reference":"Patient/p1"}},"date":"2024-12-01","author":[{{"reference":"Patient/p1"}}],"title":"Note","section":[{{"title":"Results",{NARRATIVE},"entry":[{}]}}]}}}}"#,
        entries.join(",")
    )
}

fn message_header(focus: &str) -> String {
    format!(
        r#"{{"fullUrl":"http://example.org/fhir/MessageHeader/m1","resource":{{"resourceType":"MessageHeader","id":"m1",{NARRATIVE},"eventCoding":{{"system":"http://example.org/events","code":"result"}},"source":{{"endpoint":"http://example.org/source"}},"focus":[{{"reference":"{focus}"}}]}}}}"#
    )
}

#[test]
fn a_document_whose_references_resolve_is_clean() {
    let document = bundle(
        "document",
        &composition(&[
            "Observation/o1/_history/1",
            "http://example.org/fhir/Observation/o1/_history/2",
            "Observation/o1",
        ]),
    );
    assert_eq!(errors(&document), Vec::<String>::new());
}

#[test]
fn a_document_reference_to_a_missing_entry_or_version_is_an_error() {
    let document = bundle(
        "document",
        &composition(&["Observation/o1/_history/3", "Observation/o2"]),
    );
    let found = errors(&document);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("has Observation/o1 at version 1, 2 only")
            && found[0].ends_with("@ Bundle.entry[0].resource.section[0].entry[0]"),
        "{found:?}"
    );
    assert!(
        found[1].contains("no entry of the bundle is Observation/o2")
            && found[1].ends_with("@ Bundle.entry[0].resource.section[0].entry[1]"),
        "{found:?}"
    );
}

#[test]
fn a_message_must_carry_its_focus() {
    assert_eq!(
        errors(&bundle("message", &message_header("Observation/o1"))),
        Vec::<String>::new()
    );
    let found = errors(&bundle("message", &message_header("Observation/o9")));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].ends_with("@ Bundle.entry[0].resource.focus[0]"),
        "{found:?}"
    );
}

#[test]
fn other_bundles_may_refer_outside_themselves() {
    let collection = bundle(
        "collection",
        &composition(&["Observation/o1/_history/3", "Observation/o2"]),
    );
    assert_eq!(errors(&collection), Vec::<String>::new());
}

#[test]
fn relative_references_from_uuid_entries_resolve_by_type_and_id() {
    let document = bundle(
        "document",
        &composition(&["Observation/o1"]).replace(
            "http://example.org/fhir/Composition/c1",
            "urn:uuid:5d0e3c2b-7a61-4f8e-b9d4-3c2a1e0f9b88",
        ),
    );
    assert_eq!(errors(&document), Vec::<String>::new());
}

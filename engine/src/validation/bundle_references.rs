//! References between the entries of a Bundle (R4 §2.36.4.1 "Resolving references in
//! Bundles"), and the entries a document or a message must carry.
//!
//! Only documents and messages make an unresolved reference an error: "any other resources
//! referenced from Composition must be included as subsequent entries in the Bundle"
//! (R4 Composition), and a message's focus "is always included in the bundle" (R4
//! MessageHeader.focus). In any other Bundle a reference may point outside it, so nothing is
//! reported.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{child_path, indexed_fields, Walk};
use crate::model;
use crate::outcome::{IssueType, Severity};
use crate::resource::{Object, Value};

/// What a reference found among a Bundle's entries.
#[derive(Debug, PartialEq, Eq)]
enum Resolution {
    Found,
    /// No entry has that URL (or type and id).
    Missing,
    /// Entries have that URL, none at the version asked for; their versions.
    OtherVersions(Vec<String>),
}

/// An entry of a Bundle: its fullUrl and its resource.
struct Entry<'a> {
    full_url: Option<&'a str>,
    resource: &'a Object,
}

fn entries(bundle: &Object) -> Vec<Entry<'_>> {
    bundle
        .objects("entry")
        .filter_map(|entry| {
            Some(Entry {
                full_url: entry.text("fullUrl"),
                resource: entry.objects("resource").next()?,
            })
        })
        .collect()
}

/// The root of a RESTful URL (`http://example.org/fhir/` of
/// `http://example.org/fhir/Patient/1`), which relative references are read against.
fn restful_root(full_url: &str) -> Option<&str> {
    if !(full_url.starts_with("http://") || full_url.starts_with("https://")) {
        return None;
    }
    let mut segments = full_url.rsplitn(3, '/');
    let (_id, type_name, root) = (segments.next()?, segments.next()?, segments.next()?);
    model::resource_type(type_name)?;
    Some(full_url.get(..=root.len()).unwrap_or(root))
}

/// `reference` without its version, and the version (`Observation/1/_history/2`).
fn split_version(reference: &str) -> (&str, Option<&str>) {
    match reference.rsplit_once("/_history/") {
        Some((base, version)) => (base, Some(version)),
        None => (reference, None),
    }
}

/// True for a reference with a scheme (`http:`, `urn:`).
fn is_absolute(reference: &str) -> bool {
    reference
        .split_once(':')
        .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'))
}

/// Looks `reference` up among `entries`, read against `container_url`, the fullUrl of the
/// entry that holds it. A relative reference also matches an entry by type and id, whatever
/// its fullUrl, so that a Bundle of `urn:uuid:` entries is not held to RESTful URLs.
fn resolve(entries: &[Entry<'_>], container_url: Option<&str>, reference: &str) -> Resolution {
    let (base, version) = split_version(reference);
    let absolute = if is_absolute(base) {
        Some(String::from(base))
    } else {
        container_url
            .and_then(restful_root)
            .map(|root| format!("{root}{base}"))
    };
    let relative = (!is_absolute(base)).then_some(base);
    let matches: Vec<&Entry<'_>> = entries
        .iter()
        .filter(|entry| {
            let by_url = absolute.is_some() && entry.full_url == absolute.as_deref();
            let by_id = relative.is_some_and(|relative| {
                relative.split_once('/').is_some_and(|(type_name, id)| {
                    entry.resource.type_def().name == type_name && entry.resource.id() == Some(id)
                })
            });
            by_url || by_id
        })
        .collect();
    if matches.is_empty() {
        return Resolution::Missing;
    }
    let Some(version) = version else {
        return Resolution::Found;
    };
    let versions: Vec<String> = matches
        .iter()
        .filter_map(|entry| {
            entry
                .resource
                .objects("meta")
                .next()
                .and_then(|meta| meta.text("versionId"))
                .map(String::from)
        })
        .collect();
    if versions.iter().any(|known| known == version) {
        Resolution::Found
    } else {
        Resolution::OtherVersions(versions)
    }
}

/// The literal references in `object` (not in the resources it contains), with their paths.
fn references<'a>(object: &'a Object, path: &str, out: &mut Vec<(String, &'a str)>) {
    for (field, element, index) in indexed_fields(object) {
        let Value::Complex(inner) = &field.value else {
            continue;
        };
        let here = child_path(path, element.name, element.is_array().then_some(index));
        if inner.type_def().name == "Reference" {
            if let Some(reference) = inner.text("reference") {
                out.push((here.clone(), reference));
            }
        }
        references(inner, &here, out);
    }
}

impl Walk<'_> {
    /// The references a document's Composition or a message's focus makes must resolve to
    /// entries of the Bundle (at `path`), at the version they name.
    pub(super) fn bundle_references(&mut self, bundle: &Object, path: &str) {
        let kind = bundle.text("type");
        if !matches!(kind, Some("document" | "message")) {
            return;
        }
        let entries = entries(bundle);
        let Some(first) = entries.first() else {
            return;
        };
        let first_path = format!("{path}.entry[0].resource");
        let mut found = Vec::new();
        match (kind, first.resource.type_def().name) {
            (Some("document"), "Composition") => {
                references(first.resource, &first_path, &mut found);
            }
            (Some("message"), "MessageHeader") => {
                for (idx, focus) in first.resource.objects("focus").enumerate() {
                    if let Some(reference) = focus.text("reference") {
                        found.push((format!("{first_path}.focus[{idx}]"), reference));
                    }
                }
            }
            _ => return,
        }
        let what = if kind == Some("document") {
            "a document must include every resource its Composition refers to"
        } else {
            "a message must include the resources its MessageHeader focuses on"
        };
        for (at, reference) in found {
            if reference.starts_with('#') {
                continue;
            }
            let message = match resolve(&entries, first.full_url, reference) {
                Resolution::Found => continue,
                Resolution::Missing => {
                    format!("no entry of the bundle is {reference}, and {what}")
                }
                Resolution::OtherVersions(versions) => format!(
                    "the bundle has {} at version {} only, not the version {reference} names, and {what}",
                    split_version(reference).0,
                    if versions.is_empty() {
                        String::from("(none stated)")
                    } else {
                        versions.join(", ")
                    }
                ),
            };
            self.find(Severity::Error, IssueType::NotFound, message, &at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(json: &str) -> Object {
        crate::json::fhir::parse_resource(json.as_bytes()).unwrap_or_else(|err| panic!("{err}"))
    }

    #[track_caller]
    fn check(reference: &str, container_url: Option<&str>, expected: Resolution) {
        let bundle = bundle(
            r#"{"resourceType":"Bundle","type":"collection","entry":[
              {"fullUrl":"http://example.org/fhir/Observation/o1","resource":{"resourceType":"Observation","id":"o1","meta":{"versionId":"1"},"status":"final","code":{"text":"x"}}},
              {"fullUrl":"http://example.org/fhir/Observation/o1","resource":{"resourceType":"Observation","id":"o1","meta":{"versionId":"2"},"status":"final","code":{"text":"x"}}},
              {"fullUrl":"urn:uuid:4b5c2a9e-1f7d-4f35-9a43-0e2f6c1d8b77","resource":{"resourceType":"Patient","id":"p1"}}]}"#,
        );
        assert_eq!(
            resolve(&entries(&bundle), container_url, reference),
            expected
        );
    }

    #[test]
    fn references_resolve_by_url_type_and_id_and_version() {
        let restful = Some("http://example.org/fhir/Composition/c1");
        check("Observation/o1", restful, Resolution::Found);
        check("Observation/o1/_history/2", restful, Resolution::Found);
        check(
            "Observation/o1/_history/3",
            restful,
            Resolution::OtherVersions(alloc::vec![String::from("1"), String::from("2")]),
        );
        check(
            "http://example.org/fhir/Observation/o1/_history/1",
            None,
            Resolution::Found,
        );
        check(
            "http://other.org/Observation/o1",
            restful,
            Resolution::Missing,
        );
        check("Observation/o2", restful, Resolution::Missing);
        check(
            "urn:uuid:4b5c2a9e-1f7d-4f35-9a43-0e2f6c1d8b77",
            None,
            Resolution::Found,
        );
        // A relative reference from a urn:uuid entry: by type and id.
        check("Patient/p1", Some("urn:uuid:1"), Resolution::Found);
    }

    #[test]
    fn restful_roots_end_before_the_type() {
        assert_eq!(
            restful_root("http://example.org/fhir/Patient/1"),
            Some("http://example.org/fhir/")
        );
        assert_eq!(restful_root("urn:uuid:1"), None);
        assert_eq!(restful_root("http://example.org/fhir/NotAType/1"), None);
    }
}

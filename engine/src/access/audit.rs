//! The audit trail: one `AuditEvent` per interaction, shaped as IHE's Basic Audit Log
//! Patterns describe a RESTful interaction: type `rest`, the interaction as subtype, the action
//! (C, R, U, D, E), when, the outcome, who asked (the user, the client), this service as the
//! source, and the entities: the resource read or written, the patients whose data it is, and
//! for a search the query, base64-encoded.
//!
//! A write's record is stored in the write's own store transaction (through
//! [`crate::rest::WriteGate::record`]), so there is no write without its record and no record
//! of a write that failed. Everything else (reads, searches, refusals, failures) is recorded
//! once the answer is known, before it is given.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{Claims, Judge};
use crate::outcome::push_json_string;
use crate::resource::Object;

/// What an interaction is, for its record: the `restful-interaction` code and the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    pub subtype: &'static str,
    pub action: char,
}

/// The kind of interaction `method` on `path` is.
pub(crate) fn kind_of(method: &str, path: &str) -> Kind {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let kind = |subtype, action| Kind { subtype, action };
    match (method.to_ascii_uppercase().as_str(), segments.as_slice()) {
        ("GET", ["metadata"]) => kind("capabilities", 'R'),
        ("POST", []) => kind("batch", 'E'),
        ("GET", [] | ["_search"]) | ("POST", ["_search"]) => kind("search-system", 'E'),
        ("GET", ["_history"]) => kind("history-system", 'R'),
        ("GET", [_, "_history"]) => kind("history-type", 'R'),
        ("GET", [_]) | ("POST", [_, "_search"]) => kind("search-type", 'E'),
        ("POST", [_]) => kind("create", 'C'),
        ("GET", [_, _]) => kind("read", 'R'),
        ("GET", [_, _, "_history"]) => kind("history-instance", 'R'),
        ("GET", [_, _, "_history", _]) => kind("vread", 'R'),
        ("PUT", _) => kind("update", 'U'),
        ("PATCH", _) => kind("patch", 'U'),
        ("DELETE", _) => kind("delete", 'D'),
        ("GET", [_, _, third]) if !third.starts_with('$') => kind("search-type", 'E'),
        _ => kind("operation", 'E'),
    }
}

/// One entity of a record.
pub(crate) enum Entity {
    /// A resource read or written: `Type/id` or `Type/id/_history/version`.
    Resource(String),
    /// A patient whose data it is.
    Patient(String),
    /// A search's query (`Observation?code=…`), recorded base64-encoded.
    Query(String),
}

/// The record of one interaction.
pub(crate) struct Event<'a> {
    pub kind: Kind,
    pub recorded: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Why it failed, for a failure.
    pub description: Option<String>,
    pub claims: &'a Claims,
    pub observer: &'a str,
    pub entities: Vec<Entity>,
}

/// `0` success, `4` a failure of the request (4xx), `8` a failure of the service (5xx).
fn outcome_code(status: u16) -> &'static str {
    match status {
        0..=399 => "0",
        400..=499 => "4",
        _ => "8",
    }
}

fn quoted(text: &str) -> String {
    let mut out = String::new();
    push_json_string(&mut out, text);
    out
}

fn coding(system: &str, code: &str) -> String {
    format!(r#"{{"system":{},"code":{}}}"#, quoted(system), quoted(code))
}

impl Event<'_> {
    /// The AuditEvent's JSON.
    pub(crate) fn to_json(&self) -> String {
        let mut agents = Vec::new();
        let user = match (self.claims.user(), &self.claims.subject) {
            (Some((type_name, id)), _) => Some(format!(
                r#"{{"reference":{}}}"#,
                quoted(&format!("{type_name}/{id}"))
            )),
            (None, Some(subject)) => Some(format!(
                r#"{{"identifier":{{"value":{}}}}}"#,
                quoted(subject)
            )),
            (None, None) => None,
        };
        if let Some(who) = &user {
            agents.push(format!(
                r#"{{"type":{{"coding":[{}]}},"who":{who},"requestor":true}}"#,
                coding(
                    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "IRCP"
                )
            ));
        }
        let client = self
            .claims
            .client_id
            .as_deref()
            .map(|client| format!(r#"{{"identifier":{{"value":{}}}}}"#, quoted(client)))
            .unwrap_or_else(|| String::from(r#"{"display":"unidentified client"}"#));
        agents.push(format!(
            r#"{{"type":{{"coding":[{}]}},"who":{client},"requestor":{}}}"#,
            coding("http://dicom.nema.org/resources/ontology/DCM", "110150"),
            user.is_none()
        ));
        let mut entities = Vec::new();
        let mut patients: Vec<&str> = Vec::new();
        // An interaction about several patients is recorded for those who oversee the trail,
        // not in any one patient's compartment: each would see the others' ids and the query.
        let several = {
            let mut distinct: Vec<&str> = Vec::new();
            for entity in &self.entities {
                let id = match entity {
                    Entity::Patient(id) => Some(id.as_str()),
                    // A Patient read or written (`Patient/x/_history/n`) is about that patient.
                    Entity::Resource(reference) => reference
                        .strip_prefix("Patient/")
                        .and_then(|rest| rest.split('/').next()),
                    Entity::Query(_) => None,
                };
                if let Some(id) = id {
                    if !distinct.contains(&id) {
                        distinct.push(id);
                    }
                }
            }
            distinct.len() > 1
        };
        for entity in &self.entities {
            match entity {
                Entity::Resource(reference) => entities.push(format!(
                    r#"{{"what":{{"{}":{}}},"type":{},"role":{}}}"#,
                    if several && reference.starts_with("Patient/") {
                        "display"
                    } else {
                        "reference"
                    },
                    quoted(reference),
                    coding(
                        "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                        "2"
                    ),
                    coding("http://terminology.hl7.org/CodeSystem/object-role", "4")
                )),
                Entity::Patient(id) => {
                    if patients.contains(&id.as_str()) {
                        continue;
                    }
                    patients.push(id);
                    entities.push(format!(
                        r#"{{"what":{{"{}":{}}},"type":{},"role":{}}}"#,
                        if several { "display" } else { "reference" },
                        quoted(&format!("Patient/{id}")),
                        coding(
                            "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                            "1"
                        ),
                        coding("http://terminology.hl7.org/CodeSystem/object-role", "1")
                    ))
                }
                Entity::Query(query) => entities.push(format!(
                    r#"{{"type":{},"role":{},"query":"{}"}}"#,
                    coding(
                        "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                        "2"
                    ),
                    coding("http://terminology.hl7.org/CodeSystem/object-role", "24"),
                    base64(query.as_bytes())
                )),
            }
        }
        let description = match &self.description {
            Some(text) if self.status >= 400 => format!(
                r#","outcomeDesc":{}"#,
                quoted(&format!("{} {text}", self.status))
            ),
            _ => String::new(),
        };
        let entity = if entities.is_empty() {
            String::new()
        } else {
            format!(r#","entity":[{}]"#, entities.join(","))
        };
        format!(
            r#"{{"resourceType":"AuditEvent","type":{},"subtype":[{}],"action":"{}","recorded":{},"outcome":"{}"{description},"agent":[{}],"source":{{"observer":{{"display":{}}},"type":[{}]}}{entity}}}"#,
            coding(
                "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "rest"
            ),
            coding("http://hl7.org/fhir/restful-interaction", self.kind.subtype),
            self.kind.action,
            quoted(&self.recorded),
            outcome_code(self.status),
            agents.join(","),
            quoted(self.observer),
            coding(
                "http://terminology.hl7.org/CodeSystem/security-source-type",
                "4"
            ),
        )
    }
}

/// The patients whose data `resource` is: the Patient itself, or those it refers to by the
/// Patient compartment's parameters.
pub(crate) fn patients_of(judge: &Judge, resource: &Object) -> Vec<String> {
    let type_name = resource.type_def().name;
    if type_name == "Patient" {
        return resource.id().map(ToString::to_string).into_iter().collect();
    }
    let Some((_, members)) = crate::model::COMPARTMENTS
        .iter()
        .find(|(name, _)| *name == "Patient")
    else {
        return Vec::new();
    };
    let codes: Vec<&str> = members
        .iter()
        .filter(|(member, _)| *member == type_name)
        .flat_map(|(_, params)| params.iter().copied())
        .collect();
    if codes.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    for (_, value, _) in judge
        .registry
        .extract_only(resource, &judge.base_url, &codes)
    {
        if let Some(id) = value.strip_suffix("\u{1}Patient") {
            if !found.iter().any(|known: &String| known == id) {
                found.push(id.to_string());
            }
        }
    }
    found
}

/// The patients an answer's JSON is about: the Patients in it, and the patients its resources
/// refer to (`"reference":"Patient/…"`, relative or under `base_url`). The answer is the
/// service's own canonical JSON (no whitespace, `resourceType` then `id` first, quotes inside
/// strings escaped), so the members are found in the text itself: an answer may hold a
/// thousand resources, and reading them all as a tree would cost more than the request.
pub(crate) fn patients_in_json(text: &str, base_url: &str) -> Vec<String> {
    fn add(found: &mut Vec<String>, id: &str) {
        if !id.is_empty() && !found.iter().any(|known| known == id) {
            found.push(id.to_string());
        }
    }
    /// The string value starting at `rest` (after its opening quote), up to its closing quote.
    fn value(rest: &str) -> &str {
        rest.find('"').map_or("", |end| &rest[..end])
    }
    let base = base_url.trim_end_matches('/');
    let mut found = Vec::new();
    // One pass over the text for "Patient", each hit judged by what surrounds it.
    const RESOURCE: &str = r#""resourceType":""#;
    const REFERENCE: &str = r#""reference":""#;
    for (at, _) in text.match_indices("Patient") {
        let before = &text[..at];
        let after = &text[at + "Patient".len()..];
        if before.ends_with(RESOURCE) {
            if let Some(rest) = after.strip_prefix(r#"","id":""#) {
                add(&mut found, value(rest));
            }
        } else if let Some(rest) = after.strip_prefix('/') {
            // A reference: "Patient/…", or "<base>/Patient/…", as the whole value.
            let relative = before.ends_with(REFERENCE);
            let absolute = before
                .strip_suffix('/')
                .and_then(|head| head.strip_suffix(base))
                .is_some_and(|head| head.ends_with(REFERENCE));
            if relative || absolute {
                add(
                    &mut found,
                    value(rest).split('/').next().unwrap_or_default(),
                );
            }
        }
    }
    found
}

/// The patients a query is about: the focus of a Patient compartment (`Patient/123/…`,
/// `$everything`), the values of its `patient` and `subject` parameters that name Patients, the
/// ids it asks for of the Patient type, and the token's patient when a `patient/` scope
/// narrowed it to that patient.
pub(crate) fn patients_of_query(request: &crate::rest::Request, claims: &Claims) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |id: &str| {
        let id = id.trim();
        if !id.is_empty() && !id.contains('/') && !found.iter().any(|known| known == id) {
            found.push(id.to_string());
        }
    };
    let path = request.path.trim_matches('/');
    let mut segments = path.split('/');
    let first = segments.next().unwrap_or_default();
    let second = segments.next();
    if first == "Patient" {
        if let Some(id) = second.filter(|id| !id.starts_with('_') && !id.starts_with('$')) {
            add(id);
        }
    }
    for (name, value) in &request.query {
        let bare = name.split(':').next().unwrap_or_default();
        for item in value.split(',') {
            match bare {
                "patient" => add(item.rsplit("Patient/").next().unwrap_or(item)),
                "subject" => {
                    if let Some(id) = item.rsplit_once("Patient/").map(|(_, id)| id) {
                        add(id);
                    }
                }
                "_id" if first == "Patient" && second.is_none() => add(item),
                _ => {}
            }
        }
    }
    if claims
        .scopes
        .resources
        .iter()
        .any(|scope| scope.context == super::Context::Patient)
    {
        if let Some(patient) = &claims.patient {
            add(patient);
        }
    }
    found
}

/// Standard base64 with padding (RFC 4648 §4), for `AuditEvent.entity.query`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_follows_rfc_4648() {
        // RFC 4648 §10's test vectors.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn patients_are_found_in_an_answer() {
        let bundle = r#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p1"}},{"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"http://h/fhir/Patient/p2/_history/3"},"performer":[{"reference":"Patient/p1"},{"reference":"Practitioner/x"}],"note":[{"text":"\"reference\":\"Patient/p9\""}]}}]}"#;
        assert_eq!(patients_in_json(bundle, "http://h/fhir"), ["p1", "p2"]);
    }

    #[test]
    fn interactions_are_named_as_fhir_names_them() {
        assert_eq!(kind_of("GET", "Patient/1").subtype, "read");
        assert_eq!(kind_of("GET", "Patient/1/_history/2").subtype, "vread");
        assert_eq!(kind_of("GET", "Patient").subtype, "search-type");
        assert_eq!(kind_of("POST", "Patient").action, 'C');
        assert_eq!(kind_of("PATCH", "Patient/1").subtype, "patch");
        assert_eq!(kind_of("DELETE", "Patient/1").action, 'D');
        assert_eq!(kind_of("GET", "Patient/1/$everything").subtype, "operation");
        assert_eq!(
            kind_of("GET", "Patient/1/Observation").subtype,
            "search-type"
        );
        assert_eq!(kind_of("POST", "").subtype, "batch");
        assert_eq!(kind_of("GET", "_history").subtype, "history-system");
    }
}

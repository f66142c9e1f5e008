//! What the remote server says, read: its CapabilityStatement, Bundle pages (searchsets and
//! histories) and transaction or batch replies. Nothing here trusts the reply: every field is
//! checked for its kind, and what cannot be read is an error naming it.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::json::patch::to_text;
use crate::json::reader::{parse, Limits, Node, Value};

/// The most a reply body may hold before it is refused unread.
pub(crate) const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// What the remote server offers, from its CapabilityStatement.
#[derive(Debug, Clone, Default)]
pub(crate) struct Capabilities {
    pub transaction: bool,
    pub batch: bool,
    pub history_system: bool,
    /// Types whose `history-type` is offered.
    pub history_types: Vec<String>,
    /// Types with `updateCreate: true` (a client may choose the id of a new resource).
    pub update_create: Vec<String>,
    /// `Patient/$everything` is offered.
    pub everything: bool,
}

pub(crate) fn read(body: &[u8]) -> Result<Node, String> {
    parse(
        body,
        Limits {
            max_bytes: MAX_REPLY_BYTES,
            ..Limits::default()
        },
    )
    .map_err(|err| format!("the reply is not JSON: {err}"))
}

pub(crate) fn member<'n>(node: &'n Node, name: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Object(members) => members.iter().find(|m| m.key == name).map(|m| &m.node),
        _ => None,
    }
}

pub(crate) fn text<'n>(node: &'n Node, name: &str) -> Option<&'n str> {
    match &member(node, name)?.value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

fn items<'n>(node: &'n Node, name: &str) -> &'n [Node] {
    match member(node, name).map(|n| &n.value) {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

fn has_code(node: &Node, list: &str, code: &str) -> bool {
    items(node, list)
        .iter()
        .any(|item| text(item, "code") == Some(code))
}

impl Capabilities {
    /// As one line of text, to keep between syncs.
    pub(crate) fn to_text(&self) -> String {
        let flag = |on: bool| if on { '1' } else { '0' };
        format!(
            "{}{}{}{}\0{}\0{}",
            flag(self.transaction),
            flag(self.batch),
            flag(self.history_system),
            flag(self.everything),
            self.history_types.join(","),
            self.update_create.join(",")
        )
    }

    /// Reads what [`Capabilities::to_text`] wrote.
    pub(crate) fn from_text(text: &str) -> Option<Capabilities> {
        let mut parts = text.split('\0');
        let flags = parts.next()?.as_bytes();
        let list = |part: Option<&str>| -> Vec<String> {
            part.unwrap_or_default()
                .split(',')
                .filter(|t| !t.is_empty())
                .map(ToString::to_string)
                .collect()
        };
        if flags.len() != 4 {
            return None;
        }
        Some(Capabilities {
            transaction: flags[0] == b'1',
            batch: flags[1] == b'1',
            history_system: flags[2] == b'1',
            everything: flags[3] == b'1',
            history_types: list(parts.next()),
            update_create: list(parts.next()),
        })
    }

    pub(crate) fn read(body: &[u8]) -> Result<Capabilities, String> {
        let statement = read(body)?;
        if text(&statement, "resourceType") != Some("CapabilityStatement") {
            return Err(String::from(
                "the server's metadata is not a CapabilityStatement",
            ));
        }
        let mut caps = Capabilities::default();
        for rest in items(&statement, "rest") {
            if text(rest, "mode") == Some("client") {
                continue;
            }
            caps.transaction |= has_code(rest, "interaction", "transaction");
            caps.batch |= has_code(rest, "interaction", "batch");
            caps.history_system |= has_code(rest, "interaction", "history-system");
            for resource in items(rest, "resource") {
                let Some(type_name) = text(resource, "type") else {
                    continue;
                };
                if has_code(resource, "interaction", "history-type") {
                    caps.history_types.push(type_name.to_string());
                }
                if matches!(
                    member(resource, "updateCreate").map(|n| &n.value),
                    Some(Value::Bool(true))
                ) {
                    caps.update_create.push(type_name.to_string());
                }
                if type_name == "Patient"
                    && items(resource, "operation").iter().any(|op| {
                        text(op, "name") == Some("everything")
                            || text(op, "definition")
                                .is_some_and(|d| d.ends_with("/Patient-everything"))
                    })
                {
                    caps.everything = true;
                }
            }
        }
        Ok(caps)
    }
}

/// One resource version a page brings: `json` is `None` for a deletion.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub type_name: String,
    pub id: String,
    /// The remote version (its `versionId`, else its `lastUpdated`, else empty).
    pub version: String,
    /// When it was written, as the server wrote it.
    pub instant: Option<String>,
    pub json: Option<String>,
    /// `json` was read leniently and elements of the server's were left out of it.
    pub lossy: bool,
}

/// A Bundle page: its items, in order, its `next` link, and entries that could not be read.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub items: Vec<Item>,
    pub next: Option<String>,
    pub total: Option<usize>,
    pub unreadable: Vec<String>,
}

/// The version in an ETag (`W/"3"` → `3`).
pub(crate) fn etag_version(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// `Type/id` (or `Type/id/_history/3`) at the end of a URL.
fn type_and_id(url: &str) -> Option<(String, String)> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let parts = match parts.iter().rposition(|p| *p == "_history") {
        Some(at) => &parts[..at],
        None => &parts[..],
    };
    match parts {
        [.., type_name, id]
            if type_name.starts_with(|c: char| c.is_ascii_uppercase()) && !id.is_empty() =>
        {
            Some((type_name.to_string(), id.to_string()))
        }
        _ => None,
    }
}

impl Page {
    /// Reads a searchset or history Bundle. Entries whose resource has no type or id, and
    /// history entries naming no resource, are listed in `unreadable`.
    pub(crate) fn read(body: &[u8]) -> Result<Page, String> {
        let bundle = read(body)?;
        if text(&bundle, "resourceType") != Some("Bundle") {
            return Err(String::from("the reply is not a Bundle"));
        }
        let history = text(&bundle, "type") == Some("history");
        let mut page = Page {
            total: match member(&bundle, "total").map(|n| &n.value) {
                Some(Value::Number(n)) => n.parse().ok(),
                _ => None,
            },
            ..Page::default()
        };
        for link in items(&bundle, "link") {
            if text(link, "relation") == Some("next") {
                page.next = text(link, "url").map(ToString::to_string);
            }
        }
        for (index, entry) in items(&bundle, "entry").iter().enumerate() {
            let search_mode = member(entry, "search").and_then(|s| text(s, "mode"));
            if search_mode == Some("outcome") {
                continue;
            }
            let request = member(entry, "request");
            let response = member(entry, "response");
            let method = request.and_then(|r| text(r, "method"));
            let resource = member(entry, "resource");
            if history && (method == Some("DELETE") || resource.is_none()) {
                let named = request
                    .and_then(|r| text(r, "url"))
                    .and_then(type_and_id)
                    .or_else(|| text(entry, "fullUrl").and_then(type_and_id));
                let Some((type_name, id)) = named else {
                    page.unreadable
                        .push(format!("entry {index}: a deletion naming no resource"));
                    continue;
                };
                page.items.push(Item {
                    lossy: false,
                    type_name,
                    id,
                    version: response
                        .and_then(|r| text(r, "etag"))
                        .map(etag_version)
                        .unwrap_or_default(),
                    instant: response
                        .and_then(|r| text(r, "lastModified"))
                        .map(ToString::to_string),
                    json: None,
                });
                continue;
            }
            let Some(resource) = resource else {
                page.unreadable.push(format!("entry {index}: no resource"));
                continue;
            };
            let (Some(type_name), Some(id)) =
                (text(resource, "resourceType"), text(resource, "id"))
            else {
                page.unreadable.push(format!(
                    "entry {index}: a resource without resourceType or id"
                ));
                continue;
            };
            if type_name == "OperationOutcome" {
                continue;
            }
            let meta = member(resource, "meta");
            let last_updated = meta.and_then(|m| text(m, "lastUpdated"));
            let version = meta
                .and_then(|m| text(m, "versionId"))
                .map(ToString::to_string)
                .or_else(|| response.and_then(|r| text(r, "etag")).map(etag_version))
                .or_else(|| last_updated.map(ToString::to_string))
                .unwrap_or_default();
            page.items.push(Item {
                lossy: false,
                type_name: type_name.to_string(),
                id: id.to_string(),
                version,
                instant: response
                    .and_then(|r| text(r, "lastModified"))
                    .or(last_updated)
                    .map(ToString::to_string),
                json: Some(to_text(resource)),
            });
        }
        Ok(page)
    }
}

/// One entry of a transaction or batch reply: its status and the version it names.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub status: u16,
    pub version: Option<String>,
    /// The id the server gave a created resource (from `Location`, or the resource).
    pub location: Option<String>,
    /// The resource the server answered with, as JSON.
    pub resource: Option<String>,
    /// The OperationOutcome's text, for a failed entry.
    pub message: String,
}

/// Reads a transaction-response or batch-response Bundle with `expected` entries.
pub(crate) fn outcomes(body: &[u8], expected: usize) -> Result<Vec<Outcome>, String> {
    let bundle = read(body)?;
    if text(&bundle, "resourceType") != Some("Bundle") {
        return Err(String::from("the reply is not a Bundle"));
    }
    let entries = items(&bundle, "entry");
    if entries.len() != expected {
        return Err(format!(
            "the reply has {} entries for the {expected} sent",
            entries.len()
        ));
    }
    let mut outcomes = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let Some(response) = member(entry, "response") else {
            return Err(format!("entry {index} of the reply has no response"));
        };
        let status = text(response, "status")
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("entry {index} of the reply has no status"))?;
        let version = text(response, "etag")
            .map(etag_version)
            .or_else(|| {
                member(entry, "resource")
                    .and_then(|r| member(r, "meta"))
                    .and_then(|m| text(m, "versionId"))
                    .map(ToString::to_string)
            })
            .or_else(|| {
                let location = text(response, "location")?;
                let (_, version) = location.split_once("/_history/")?;
                Some(version.trim_matches('/').to_string())
            })
            .filter(|v| !v.is_empty());
        let message = member(response, "outcome")
            .map(outcome_text)
            .unwrap_or_default();
        let location = text(response, "location")
            .map(ToString::to_string)
            .or_else(|| {
                let resource = member(entry, "resource")?;
                Some(format!(
                    "{}/{}",
                    text(resource, "resourceType")?,
                    text(resource, "id")?
                ))
            });
        let resource = member(entry, "resource").map(crate::json::patch::to_text);
        outcomes.push(Outcome {
            status,
            version,
            location,
            resource,
            message,
        });
    }
    Ok(outcomes)
}

/// The diagnostics of an OperationOutcome, joined.
pub(crate) fn outcome_text(outcome: &Node) -> String {
    let texts: Vec<String> = items(outcome, "issue")
        .iter()
        .filter_map(|issue| {
            text(issue, "diagnostics")
                .or_else(|| member(issue, "details").and_then(|d| text(d, "text")))
                .map(ToString::to_string)
        })
        .collect();
    texts.join("; ")
}

/// The OperationOutcome text of a reply body, or its status.
pub(crate) fn reply_message(status: u16, body: &[u8]) -> String {
    let text = read(body)
        .ok()
        .filter(|node| self::text(node, "resourceType") == Some("OperationOutcome"))
        .map(|node| outcome_text(&node))
        .unwrap_or_default();
    if text.is_empty() {
        format!("status {status}")
    } else {
        format!("status {status}: {text}")
    }
}

/// An HTTP date (`Fri, 27 Nov 2026 10:20:30 GMT`) as an instant (`2026-11-27T10:20:30Z`).
pub(crate) fn http_date_instant(date: &str) -> Option<String> {
    let mut parts = date.split_whitespace().skip(1);
    let day: u32 = parts.next()?.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| Some(*m) == parts.clone().next())?
        + 1;
    parts.next();
    let year: u32 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    let valid_time = time.len() == 8
        && time.bytes().enumerate().all(|(i, b)| {
            if i == 2 || i == 5 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }
        });
    (valid_time && parts.next() == Some("GMT"))
        .then(|| format!("{year:04}-{month:02}-{day:02}T{time}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_pages_name_deletions_and_versions() {
        let page = Page::read(
            br#"{"resourceType":"Bundle","type":"history","link":[{"relation":"next","url":"http://x/fhir/_history?page=2"}],
            "entry":[{"request":{"method":"DELETE","url":"Patient/a"},"response":{"status":"204","etag":"W/\"4\"","lastModified":"2026-01-01T00:00:00Z"}},
            {"resource":{"resourceType":"Patient","id":"b","meta":{"versionId":"2","lastUpdated":"2026-01-01T00:00:01Z"}},"request":{"method":"PUT","url":"Patient/b"}},
            {"resource":{"resourceType":"Patient"}}]}"#,
        )
        .unwrap();
        assert_eq!(page.next.as_deref(), Some("http://x/fhir/_history?page=2"));
        assert_eq!(page.items.len(), 2);
        assert!(page.items[0].json.is_none());
        assert_eq!(
            (page.items[0].id.as_str(), page.items[0].version.as_str()),
            ("a", "4")
        );
        assert_eq!(page.items[1].version, "2");
        assert_eq!(page.unreadable.len(), 1);
    }

    #[test]
    fn broken_replies_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"resourceType":"Patient"}"#,
            b"\xff\xfe",
        ] {
            assert!(Page::read(body).is_err());
            assert!(outcomes(body, 1).is_err());
            assert!(Capabilities::read(body).is_err());
        }
        assert!(outcomes(br#"{"resourceType":"Bundle","entry":[{"response":{}}]}"#, 1).is_err());
        assert!(outcomes(br#"{"resourceType":"Bundle"}"#, 1).is_err());
    }

    #[test]
    fn http_dates_become_instants() {
        assert_eq!(
            http_date_instant("Fri, 27 Nov 2026 10:20:30 GMT").as_deref(),
            Some("2026-11-27T10:20:30Z")
        );
        assert_eq!(http_date_instant("Fri, 27 Nov 2026 10:20 GMT"), None);
        assert_eq!(http_date_instant("yesterday"), None);
    }
}

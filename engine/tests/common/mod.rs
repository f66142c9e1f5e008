//! What the REST and search tests share: a fixed clock and counting ids.

use std::cell::Cell;

use hearth_engine::rest::{Clock, IdSource, Request};

/// Always the same instant.
pub struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> String {
        String::from("2026-11-27T10:20:30.000Z")
    }
}

/// Ids `id1`, `id2`, ...
#[derive(Default)]
pub struct Counter(Cell<u32>);
impl IdSource for Counter {
    fn next_id(&self) -> String {
        self.0.set(self.0.get() + 1);
        format!("id{}", self.0.get())
    }
}

/// `headers`, with the Content-Type a client would send for `body` when none is given: a
/// form for `_search`, JSON Patch for an array, FHIR JSON otherwise.
#[allow(dead_code)]
pub fn with_content_type(
    headers: &[(&str, &str)],
    path: &str,
    body: &str,
) -> Vec<(String, String)> {
    let mut res: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    if !body.is_empty()
        && !res
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        let media = if path.ends_with("_search") {
            "application/x-www-form-urlencoded"
        } else if body.trim_start().starts_with('[') {
            "application/json-patch+json"
        } else {
            "application/fhir+json"
        };
        res.push((String::from("content-type"), String::from(media)));
    }
    res
}

/// A request for `url` (`Patient?name=a`, the query as written), with `headers` and the
/// Content-Type a client would send for `body`.
#[allow(dead_code)]
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Request {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    Request {
        method: method.into(),
        path: path.into(),
        query: query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_string(), value.to_string())
            })
            .collect(),
        headers: with_content_type(headers, path, body),
        body: body.as_bytes().to_vec(),
    }
}

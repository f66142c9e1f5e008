//! What one request may cost, and who may send it: budgets that turn a hostile or careless
//! request into a 4xx naming the limit instead of a service that runs out of memory or time,
//! and the Host, Origin and Content-Type rules that keep a web page the user visits from
//! writing to a service on the user's machine.
//!
//! Each limit is the host's to set ([`super::Service::set_limits`]); the defaults let every
//! ordinary FHIR client through. The work budget counts the store entries an interaction reads
//! ([`Meter`]), so it bounds time and memory alike on every store.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::Cell;

use crate::outcome::IssueType;
use crate::store::{Entry, KeyRange, StoreError, Transaction};

use super::{Request, Response};

/// The budgets of one request. A request over one is answered with 413 and an
/// OperationOutcome (`too-costly`) that names the limit; nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a request body (`maxBodyBytes`, default 64 MiB).
    pub max_body_bytes: usize,
    /// Search parameters of one request, from the URL and a `_search` form body together
    /// (`maxParameters`, default 100).
    pub max_parameters: usize,
    /// Comma-separated values of one parameter (`maxValues`, default 1,000).
    pub max_values: usize,
    /// Keys of `_sort` (`maxSortKeys`, default 8).
    pub max_sort_keys: usize,
    /// Names in `_elements` (`maxElements`, default 100).
    pub max_elements: usize,
    /// Entries of a batch or transaction Bundle (`maxEntries`, default 10,000).
    pub max_entries: usize,
    /// Bytes of one response body (`maxResponseBytes`, default 32 MiB). A batch whose answers
    /// would pass it answers its remaining entries with an OperationOutcome each.
    pub max_response_bytes: usize,
    /// Store entries one request may read (`maxWork`, default 2,000,000): a bound on the time
    /// and memory of searches, chains, includes, history and bundles alike.
    pub max_work: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 << 20,
            max_parameters: 100,
            max_values: 1000,
            max_sort_keys: 8,
            max_elements: 100,
            max_entries: 10_000,
            max_response_bytes: 32 << 20,
            max_work: 2_000_000,
        }
    }
}

/// The answer to a request over a limit.
pub(super) fn too_costly(limit: &str, message: impl Into<String>) -> Response {
    Response::error(
        413,
        IssueType::TooCostly,
        format!("{} (limit {limit})", message.into()),
    )
}

impl Limits {
    /// Checks the shape of a request against the limits that need no store: its body, its
    /// parameters and the values of each.
    pub(super) fn check_request(
        &self,
        request: &Request,
        form: &[(String, String)],
    ) -> Option<Response> {
        if request.body.len() > self.max_body_bytes {
            return Some(too_costly(
                "maxBodyBytes",
                format!(
                    "the body has {} bytes, more than the {} allowed",
                    request.body.len(),
                    self.max_body_bytes
                ),
            ));
        }
        self.check_parameters(&request.query, form)
    }

    /// Checks the parameters of a query (in two parts: a URL's and a form's) against the
    /// limits on their number and on the values of each.
    pub(super) fn check_parameters(
        &self,
        query: &[(String, String)],
        form: &[(String, String)],
    ) -> Option<Response> {
        let n_params = query.len().saturating_add(form.len());
        if n_params > self.max_parameters {
            return Some(too_costly(
                "maxParameters",
                format!(
                    "the request has {n_params} parameters, more than the {} allowed",
                    self.max_parameters
                ),
            ));
        }
        for (name, value) in query.iter().chain(form) {
            let (bare, _) = name.split_once(':').unwrap_or((name, ""));
            let n_values = value.split(',').count();
            let (limit, max, what) = match bare {
                "_sort" => ("maxSortKeys", self.max_sort_keys, "sort keys"),
                "_elements" => ("maxElements", self.max_elements, "element names"),
                _ => ("maxValues", self.max_values, "values"),
            };
            if n_values > max {
                return Some(too_costly(
                    limit,
                    format!("{name} has {n_values} {what}, more than the {max} allowed"),
                ));
            }
        }
        None
    }
}

/// Who may send requests from a browser: the Host names the service answers to, and the
/// origins of web pages allowed to call it across origins (CORS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Host header values answered: `name:port`, or `name` for any port; empty: any. A request
    /// naming another host is refused (421), which defeats DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://app.example`) whose pages may call the service; `*` allows any. A
    /// request with an `Origin` that is neither allowed nor the service's own is refused (403).
    pub allowed_origins: Vec<String>,
    /// The port of a Host header that names none (80 for `http`, 443 for `https`; 0: none).
    pub default_port: u16,
}

impl Policy {
    /// The policy of a service at `base_url`: its own host only (and, for a loopback
    /// address, the other loopback names on the same port), no other origin.
    pub fn for_base_url(base_url: &str) -> Policy {
        let default_port: u16 = if base_url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        {
            443
        } else {
            80
        };
        let mut allowed_hosts = Vec::new();
        if let Some(authority) = authority(base_url) {
            let authority = authority.to_ascii_lowercase();
            let (host, port) = split_port(&authority);
            // Written with the port, as a Host without one is compared with the default.
            let port = port.map_or_else(|| format!("{default_port}"), ToString::to_string);
            allowed_hosts.push(match split_port(&authority).1 {
                Some(_) => authority.clone(),
                None => format!("{authority}:{port}"),
            });
            if is_loopback(host) {
                for name in ["localhost", "127.0.0.1", "[::1]"] {
                    let same = format!("{name}:{port}");
                    if !allowed_hosts.contains(&same) {
                        allowed_hosts.push(same);
                    }
                }
            }
        }
        Policy {
            allowed_hosts,
            allowed_origins: Vec::new(),
            default_port,
        }
    }

    /// The refusal of a request this policy does not admit, or the CORS headers its answer
    /// carries (empty for a request from no other origin).
    pub(super) fn admit(
        &self,
        request: &Request,
        own_origin: Option<&str>,
    ) -> Result<Vec<(String, String)>, Response> {
        if let Some(host) = request.header("host") {
            let mut host = host.trim().to_ascii_lowercase();
            if split_port(&host).1.is_none() && self.default_port != 0 {
                host = format!("{host}:{}", self.default_port);
            }
            // An allowed name without a port is allowed on any port.
            let name = split_port(&host).0;
            let allowed = self.allowed_hosts.iter().any(|allowed| {
                *allowed == host
                    || (split_port(allowed).1.is_none()
                        && split_port(allowed).0.trim_matches(['[', ']']) == name)
            });
            if !self.allowed_hosts.is_empty() && !allowed {
                return Err(Response::error(
                    421,
                    IssueType::Forbidden,
                    format!(
                        "this service does not answer for the host \"{host}\" (it answers for {})",
                        self.allowed_hosts.join(", ")
                    ),
                ));
            }
        }
        let Some(origin) = request.header("origin") else {
            return Ok(Vec::new());
        };
        let origin = origin.trim();
        let own = own_origin.is_some_and(|own| own.eq_ignore_ascii_case(origin))
            || request
                .header("host")
                .is_some_and(|host| origin_authority(origin).eq_ignore_ascii_case(host.trim()));
        if own {
            return Ok(Vec::new());
        }
        let any = self.allowed_origins.iter().any(|allowed| allowed == "*");
        if !any
            && !self
                .allowed_origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return Err(Response::error(
                403,
                IssueType::Forbidden,
                format!("requests from the origin \"{origin}\" are not allowed"),
            ));
        }
        Ok(alloc::vec![
            (
                String::from("Access-Control-Allow-Origin"),
                origin.to_string()
            ),
            (String::from("Vary"), String::from("Origin")),
            (
                String::from("Access-Control-Expose-Headers"),
                String::from("Location, ETag, Last-Modified, Content-Location, Date")
            ),
        ])
    }
}

/// `host:port` of an absolute URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    // Credentials are not part of the host.
    Some(
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host),
    )
    .filter(|a| !a.is_empty())
}

/// The `host:port` of an origin (`http://localhost:8080`).
fn origin_authority(origin: &str) -> &str {
    origin.split_once("://").map_or(origin, |(_, rest)| rest)
}

fn split_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        // [::1]:8080
        return match rest.split_once(']') {
            Some((host, port)) => (host, port.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "::1" || host.starts_with("127.")
}

/// Content types a body may have: FHIR JSON, JSON, JSON Patch, and (for `_search` only) a
/// form. Anything else, or none, is refused (415), since a browser sends `text/plain` and
/// form bodies across origins without asking first.
pub(super) fn check_content_type(
    request: &Request,
    method: &str,
    form_allowed: bool,
) -> Option<Response> {
    if request.body.is_empty() || !matches!(method, "POST" | "PUT" | "PATCH") {
        return None;
    }
    let content_type = request.header("content-type").unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let accepted = matches!(
        media.as_str(),
        "application/fhir+json" | "application/json" | "application/json-patch+json"
    ) || (form_allowed && media == "application/x-www-form-urlencoded");
    if accepted {
        return None;
    }
    let found = if media.is_empty() {
        String::from("no Content-Type")
    } else {
        format!("\"{media}\"")
    };
    Some(Response::error(
        415,
        IssueType::NotSupported,
        format!(
            "expected a body of type application/fhir+json{}, found {found}",
            if form_allowed {
                " or application/x-www-form-urlencoded"
            } else {
                ""
            }
        ),
    ))
}

/// Counts the store entries a request reads, against [`Limits::max_work`].
#[derive(Debug)]
pub(super) struct Meter {
    used: Cell<u64>,
    max: Cell<u64>,
}

impl Meter {
    pub(super) fn new() -> Meter {
        Meter {
            used: Cell::new(0),
            max: Cell::new(u64::MAX),
        }
    }

    /// Starts a request's count with `max` entries allowed.
    pub(super) fn reset(&self, max: u64) {
        self.used.set(0);
        self.max.set(max);
    }

    /// Lifts the budget for work that is not the request's (indexing); returns what
    /// [`Meter::resume`] needs to put it back.
    pub(super) fn suspend(&self) -> (u64, u64) {
        let saved = (self.used.get(), self.max.get());
        self.max.set(u64::MAX);
        saved
    }

    /// Puts back the budget [`Meter::suspend`] lifted, as if the work between had not been.
    pub(super) fn resume(&self, (used, max): (u64, u64)) {
        self.used.set(used);
        self.max.set(max);
    }

    /// Entries read by the request so far.
    pub(super) fn used(&self) -> u64 {
        self.used.get()
    }

    /// How many more entries may be read.
    fn remaining(&self) -> u64 {
        self.max.get().saturating_sub(self.used.get())
    }

    fn charge(&self, n: u64) -> Result<(), StoreError> {
        let used = self.used.get().saturating_add(n);
        self.used.set(used);
        if used > self.max.get() {
            return Err(StoreError::too_costly(format!(
                "the request needs to read more than {} stored entries; narrow it (limit maxWork)",
                self.max.get()
            )));
        }
        Ok(())
    }
}

/// A transaction whose reads are charged to a [`Meter`]; a scan never returns more entries
/// than the budget has left, so memory stays bounded too.
pub(super) struct Metered<'m, T> {
    pub(super) inner: T,
    pub(super) meter: &'m Meter,
}

impl<T: Transaction> Transaction for Metered<'_, T> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.meter.charge(1)?;
        self.inner.get(key).await
    }

    async fn scan(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        // One more than the budget allows, so that passing it is seen.
        let allowed =
            usize::try_from(self.meter.remaining().saturating_add(1)).unwrap_or(usize::MAX);
        let entries = self.inner.scan(range, limit.min(allowed), reverse).await?;
        self.meter
            .charge(u64::try_from(entries.len()).unwrap_or(u64::MAX).max(1))?;
        Ok(entries)
    }

    async fn visit(
        &mut self,
        range: &KeyRange,
        reverse: bool,
        step: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // Each entry visited is charged as one scanned; one more than the budget allows is
        // visited, so that passing it is seen.
        let allowed = self.meter.remaining().saturating_add(1);
        // A store that reads a step at a time reads no more than the budget at once.
        let step = step.min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let mut seen = 0u64;
        self.inner
            .visit(range, reverse, step, &mut |key, value| {
                seen += 1;
                seen <= allowed && visit(key, value)
            })
            .await?;
        self.meter.charge(seen.max(1))
    }

    async fn count(&mut self, range: &KeyRange) -> Result<usize, StoreError> {
        let count = self.inner.count(range).await?;
        self.meter
            .charge(u64::try_from(count).unwrap_or(u64::MAX).max(1))?;
        Ok(count)
    }

    async fn prefetch(&mut self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        // The reads are charged when they are made; ahead of them, no more than the budget.
        let allowed = usize::try_from(self.meter.remaining()).unwrap_or(usize::MAX);
        self.inner
            .prefetch(keys.get(..keys.len().min(allowed)).unwrap_or_default())
            .await
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.inner.put(key, value);
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.inner.delete(key);
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await
    }
}

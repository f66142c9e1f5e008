//! The FHIR RESTful API over a [`Store`]: one handler, `Request` in, `Response` out, no IO of
//! its own, so that every host (a Node server, a Service Worker, an edge worker) serves the
//! same API.
//!
//! Interactions: `metadata`, read, vread, create (POST, and PUT to a new id), update, delete,
//! instance history, type listing, `$validate` (type and instance level). Every version is
//! kept; a delete is a version too (a read then answers 410 Gone). The server sets `id` (on
//! create), `meta.versionId` and `meta.lastUpdated`; the clock and the id source are the
//! host's. Every write is validated against the base specification (and the profiles loaded)
//! unless the request says `X-Validation: off`.
//!
//! `POST` of a Bundle to the base runs a batch (entries one by one) or a transaction (all
//! entries in one store transaction, in the specification's order, `urn:uuid:` references
//! rewritten to the ids given; one failing entry fails it all).
//!
//! Storage layout (keys are byte strings, segments separated by 0):
//! - `c␀Type␀id` → the current version: `version` or `version␀deleted`;
//! - `v␀Type␀id␀version` (version as 20 digits, so that keys sort by version) → `P`, `U`, `R`
//!   or `A` (created by POST, created by PUT, updated, patched) and the resource's canonical
//!   JSON, or `D` and the instant of the delete;
//! - `l␀seq` → `Type␀id␀version␀instant`: the write log, for system history, and
//!   `t␀Type␀seq` (empty: the entry is `l␀seq`'s) for type history; `m␀seq` counts the writes.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use crate::json::fhir::parse_resource;
use crate::json::write::{write_resource, Style};
use crate::model;
use crate::outcome::{IssueType, OperationOutcome, Severity};
use crate::resource::Object;
use crate::store::{KeyRange, Store, StoreError, Transaction};
use crate::validation::{self, Profiles, ValidateOptions, Validator};

/// The time, for `meta.lastUpdated`: an instant such as `2026-11-27T10:00:00.000Z`.
pub trait Clock {
    /// Now, as a FHIR `instant`.
    fn now(&self) -> String;
}

/// New logical ids for created resources.
pub trait IdSource {
    /// A new id (at most 64 characters of `[A-Za-z0-9-.]`).
    fn next_id(&self) -> String;
}

/// A check on every version a request writes, made in the write's store transaction with the
/// resource before and after (`None`: absent or deleted). A refusal fails the request with a
/// 403 and nothing of it is written, a transaction Bundle included.
pub trait WriteGate {
    /// `Err(reason)` when the write of `type_name/id` from `before` to `after` is not allowed.
    fn check(
        &self,
        type_name: &str,
        id: &str,
        before: Option<&Object>,
        after: Option<&Object>,
    ) -> Result<(), String>;

    /// The record (an AuditEvent's JSON) to store with the allowed write of version `version`,
    /// in the same transaction; `None` for none.
    fn record(
        &self,
        type_name: &str,
        id: &str,
        version: u64,
        before: Option<&Object>,
        after: Option<&Object>,
    ) -> Option<String> {
        let _ = (type_name, id, version, before, after);
        None
    }
}

/// An HTTP request, relative to the service's base URL.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, `PUT`, `DELETE`, ...
    pub method: String,
    /// The path after the base URL, without a leading `/`: `Patient/123/_history/2`.
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers; names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in their usual case.
    pub headers: Vec<(String, String)>,
    /// The body (FHIR JSON, or empty).
    pub body: String,
}

impl Response {
    fn json(status: u16, body: String) -> Response {
        Response {
            status,
            headers: alloc::vec![(
                String::from("Content-Type"),
                String::from("application/fhir+json; charset=utf-8")
            )],
            body,
        }
    }

    fn outcome(status: u16, outcome: &OperationOutcome) -> Response {
        Response::json(status, outcome.to_json())
    }

    fn error(status: u16, code: IssueType, message: impl Into<String>) -> Response {
        Response::outcome(status, &OperationOutcome::error(code, message.into()))
    }

    fn with(mut self, name: &str, value: String) -> Response {
        self.headers.push((String::from(name), value));
        self
    }

    /// The response with one more header.
    pub fn with_header(mut self, name: &str, value: String) -> Response {
        self.headers.push((String::from(name), value));
        self
    }

    /// The value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A FHIR service: the handler, its store, clock and id source.
pub struct Service<S: Store> {
    store: S,
    clock: Box<dyn Clock>,
    ids: Box<dyn IdSource>,
    base_url: String,
    validator: RefCell<Validator>,
    profiles: Profiles,
    /// The search parameters: the core ones and the `SearchParameter` resources stored.
    search: RefCell<alloc::rc::Rc<crate::search::Registry>>,
    /// The core search parameters alone: what access decisions are judged by, so that no
    /// stored SearchParameter can change who is in a compartment.
    core_search: alloc::rc::Rc<crate::search::Registry>,
    /// False until the stored `SearchParameter` resources are read, and after one is written.
    search_ready: Cell<bool>,
    /// The marker of the stored parameters the registry was built from (`m␀searchparams`,
    /// changed with each write of a SearchParameter), so that services sharing one store
    /// (worker threads over one SQLite file) see each other's parameters.
    search_marker: RefCell<Option<Vec<u8>>>,
    /// True once the marker was compared in the current request, which needs it only once.
    marker_checked: Cell<bool>,
    /// What one request may cost.
    limits: Limits,
    /// Which hosts and origins are answered.
    policy: Policy,
    /// The store entries the current request has read.
    meter: limits::Meter,
    /// The write check of the current request ([`Service::handle_gated`]).
    gate: RefCell<Option<alloc::rc::Rc<dyn WriteGate>>>,
    /// The authorization server's endpoints (authorize, token), for the CapabilityStatement.
    oauth: Option<(String, String)>,
    /// Whether a `PUT` may create a resource under an id the client chose (R4's
    /// update-as-create, `updateCreate` in the CapabilityStatement).
    update_create: bool,
    /// The last transaction Bundle read ahead of its request ([`Service::prepare`]).
    prepared: RefCell<Option<bundle::Prepared>>,
}

/// Clears the current request's write check when the request ends, even one dropped midway.
struct GateReset<'g>(&'g RefCell<Option<alloc::rc::Rc<dyn WriteGate>>>);

impl Drop for GateReset<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().take();
    }
}

/// The stored state of a resource.
struct Current {
    version: u64,
    deleted: bool,
}

/// One stored version.
enum Stored {
    Resource(String),
    Deleted(String),
}

mod bundle;
mod fhirpath_patch;
mod limits;
mod records;
mod replica;
mod search;

pub(crate) use bundle::{entries_json, entries_of, relative, response_entry};
pub use limits::{Limits, Policy};
pub(crate) use replica::{in_compartment, LocalState};
pub(crate) use search::{encode_component, query_pairs};

pub(crate) fn key(parts: &[&str]) -> Vec<u8> {
    let mut res = Vec::with_capacity(parts.iter().map(|part| part.len() + 1).sum());
    for (idx, part) in parts.iter().enumerate() {
        if idx > 0 {
            res.push(0);
        }
        res.extend_from_slice(part.as_bytes());
    }
    res
}

fn version_key(type_name: &str, id: &str, version: u64) -> Vec<u8> {
    key(&["v", type_name, id, &padded20(version)])
}

/// `number` in 20 digits, zeros in front, so that the text sorts as the number does.
fn padded20(number: u64) -> String {
    let mut digits = [b'0'; 20];
    let mut rest = number;
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    digits.iter().copied().map(char::from).collect()
}

/// The base URL with the characters that would break the JSON it is written into (quotes,
/// backslashes, controls, spaces) percent-encoded.
fn safe_url(url: &str) -> String {
    let mut res = String::with_capacity(url.len());
    for c in url.chars() {
        if c == '"' || c == '\\' || c == ' ' || c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                res.push_str(&format!("%{byte:02X}"));
            }
        } else {
            res.push(c);
        }
    }
    res
}

/// A `_count` value: a number, at most 1000.
fn count_param(value: &str) -> Result<usize, Response> {
    crate::search::parse_count(value)
        .map_err(|err| Response::error(400, IssueType::Invalid, err.message))
}

pub(crate) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn store_error(err: &StoreError) -> Response {
    if err.too_costly {
        return Response::error(413, IssueType::TooCostly, err.message.clone());
    }
    if err.full {
        return Response::error(507, IssueType::Exception, err.message.clone());
    }
    if err.forbidden {
        return Response::error(403, IssueType::Forbidden, err.message.clone());
    }
    let status = if err.conflict { 409 } else { 500 };
    Response::error(
        status,
        IssueType::Exception,
        format!("the store failed: {}", err.message),
    )
}

/// `W/"3"`.
fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// The version an `If-Match` / `If-None-Match` header names (`W/"3"`, `"3"`, `3`).
fn etag_version(header: &str) -> Option<u64> {
    header
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

/// An instant (`2026-11-27T10:00:00.000Z`) as an HTTP date (`Fri, 27 Nov 2026 10:00:00 GMT`).
fn http_date(instant: &str) -> Option<String> {
    let value = crate::fhirpath::Temporal::parse(instant, None)?;
    // Normalised to UTC by the parser's arithmetic.
    let utc = match value.offset {
        Some(offset) if offset != 0 => value.add_minutes(-i64::from(offset))?,
        _ => value,
    };
    let (year, month, day) = (utc.year, utc.month?, utc.day?);
    let days = {
        let y = if month <= 2 {
            i64::from(year) - 1
        } else {
            i64::from(year)
        };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    };
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        .get(usize::try_from(days.rem_euclid(7)).ok()?)?;
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .get(usize::from(month).checked_sub(1)?)?;
    Some(format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} GMT",
        utc.hour.unwrap_or(0),
        utc.minute.unwrap_or(0),
        utc.second.unwrap_or(0)
    ))
}

/// `response` with the headers every answer carries, and the CORS headers of its request.
fn secured(mut response: Response, cors: Vec<(String, String)>) -> Response {
    response.headers.push((
        String::from("X-Content-Type-Options"),
        String::from("nosniff"),
    ));
    response
        .headers
        .push((String::from("Cache-Control"), String::from("no-store")));
    response.headers.extend(cors);
    response
}

fn meta_of(resource: &Object, name: &str) -> Option<String> {
    resource
        .objects("meta")
        .next()?
        .text(name)
        .map(ToString::to_string)
}

impl<S: Store> Service<S> {
    /// A service over `store`, answering for `base_url` (used in `Location` and bundle URLs).
    pub fn new(
        store: S,
        clock: Box<dyn Clock>,
        ids: Box<dyn IdSource>,
        base_url: impl Into<String>,
    ) -> Self {
        let base_url = safe_url(base_url.into().trim_end_matches('/'));
        let core = alloc::rc::Rc::new(crate::search::Registry::core());
        Service {
            store,
            clock,
            ids,
            policy: Policy::for_base_url(&base_url),
            base_url,
            validator: RefCell::new(Validator::new()),
            profiles: Profiles::new(),
            search: RefCell::new(alloc::rc::Rc::clone(&core)),
            core_search: core,
            search_ready: Cell::new(false),
            search_marker: RefCell::new(None),
            marker_checked: Cell::new(false),
            limits: Limits::default(),
            meter: limits::Meter::new(),
            gate: RefCell::new(None),
            oauth: None,
            update_create: true,
            prepared: RefCell::new(None),
        }
    }

    /// Sets what one request may cost.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// What one request may cost.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sets which Host names and which web origins are answered (by default the base URL's
    /// host, and no other origin).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Names the SMART authorization server's `authorize` and `token` endpoints in the
    /// CapabilityStatement's `rest.security` (`None`: no security section).
    pub fn set_oauth(&mut self, endpoints: Option<(String, String)>) {
        self.oauth = endpoints;
    }

    /// Sets whether a `PUT` may create a resource under an id the client chose (true by
    /// default). Without it, such a `PUT` answers 405 and new resources come by `POST`, with
    /// ids the service assigns.
    pub fn set_update_create(&mut self, allowed: bool) {
        self.update_create = allowed;
    }

    /// Why a `PUT` may not create `type_name/id`, on a service that assigns ids itself.
    fn refuse_update_create(&self, type_name: &str, id: &str) -> Option<String> {
        (!self.update_create).then(|| {
            format!(
                "{type_name}/{id} does not exist, and this server does not create resources under ids the client chooses (updateCreate is false): create it with POST {type_name}"
            )
        })
    }

    /// Store entries read by the last request, as counted against [`Limits::max_work`].
    pub fn last_work(&self) -> u64 {
        self.meter.used()
    }

    /// Begins a store transaction whose reads count against the request's work budget. The
    /// request's first checks in it that the search registry is current
    /// ([`Service::check_registry`]).
    async fn begin(&self, write: bool) -> Result<limits::Metered<'_, S::Tx<'_>>, StoreError> {
        let mut inner = self.store.begin(write).await?;
        self.check_registry(&mut inner).await?;
        Ok(limits::Metered {
            inner,
            meter: &self.meter,
        })
    }

    /// The origin (`http://host:port`) of the base URL.
    fn own_origin(&self) -> Option<&str> {
        let (scheme, rest) = self.base_url.split_once("://")?;
        let end = rest.find('/').unwrap_or(rest.len());
        self.base_url.get(..scheme.len() + 3 + end)
    }

    /// The profiles writes and `$validate` check resources against when they claim them.
    pub fn profiles_mut(&mut self) -> &mut Profiles {
        // What was validated ahead was validated against the profiles before.
        self.prepared.get_mut().take();
        &mut self.profiles
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Answers a request: refuses hosts and origins the policy does not admit, bodies that are
    /// not FHIR JSON, and requests over the limits; counts the work of the rest. Every answer
    /// carries `X-Content-Type-Options: nosniff` and `Cache-Control: no-store`, since it may
    /// hold health data.
    pub async fn handle(&self, request: &Request) -> Response {
        let cors = match self.policy.admit(request, self.own_origin()) {
            Ok(cors) => cors,
            Err(refusal) => return secured(refusal, Vec::new()),
        };
        if request.method.eq_ignore_ascii_case("OPTIONS") {
            // A CORS preflight (or a plain OPTIONS): what may be sent.
            let mut response = Response {
                status: 204,
                headers: alloc::vec![(
                    String::from("Allow"),
                    String::from("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
                )],
                body: String::new(),
            };
            if !cors.is_empty() {
                response = response
                    .with(
                        "Access-Control-Allow-Methods",
                        String::from("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                    )
                    .with(
                        "Access-Control-Allow-Headers",
                        String::from(
                            "Authorization, Content-Type, Accept, If-Match, If-None-Match, \
                             If-None-Exist, If-Modified-Since, Prefer, X-Validation",
                        ),
                    )
                    .with("Access-Control-Max-Age", String::from("600"));
            }
            return secured(response, cors);
        }
        self.meter.reset(self.limits.max_work);
        self.marker_checked.set(false);
        let response = self.answer(request).await;
        secured(response, cors)
    }

    /// An answer made outside the service (a refusal by the access layer) for `request`, with
    /// the headers every answer of the service carries (CORS included).
    pub fn answer_outside(&self, request: &Request, response: Response) -> Response {
        match self.policy.admit(request, self.own_origin()) {
            Ok(cors) => secured(response, cors),
            Err(refusal) => secured(refusal, Vec::new()),
        }
    }

    /// [`Service::handle`] with every write of the request checked by `gate` first.
    pub async fn handle_gated(
        &self,
        request: &Request,
        gate: alloc::rc::Rc<dyn WriteGate>,
    ) -> Response {
        *self.gate.borrow_mut() = Some(gate);
        let _reset = GateReset(&self.gate);
        self.handle(request).await
    }

    /// [`Service::handle`] once the request is admitted.
    async fn answer(&self, request: &Request) -> Response {
        let path = request.path.trim_matches('/');
        let segments: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        // `.` and `..` are not resolved: `Patient/../Observation/x` names no FHIR endpoint.
        if segments
            .iter()
            .any(|segment| *segment == "." || *segment == "..")
        {
            return Response::error(
                400,
                IssueType::Invalid,
                format!(
                    "the path /{path} has a \".\" or \"..\" segment, which names no FHIR endpoint"
                ),
            );
        }
        let method = request.method.to_ascii_uppercase();
        let is_search = segments.last() == Some(&"_search");
        if let Some(refusal) = limits::check_content_type(request, &method, is_search) {
            return refusal;
        }
        let form = if is_search && method == "POST" {
            search::query_pairs(
                core::str::from_utf8(&request.body).unwrap_or_default(),
                true,
            )
        } else {
            Vec::new()
        };
        if let Some(refusal) = self.limits.check_request(request, &form) {
            return refusal;
        }
        drop(form);
        if let Some(format) = request
            .query
            .iter()
            .find(|(name, _)| name == "_format")
            .map(|(_, value)| value.as_str())
        {
            if !format.contains("json") {
                return Response::error(
                    406,
                    IssueType::NotSupported,
                    format!("only FHIR JSON is served, not \"{format}\""),
                );
            }
        }
        if let Some(accept) = request.header("accept") {
            let accept = accept.to_ascii_lowercase();
            if !accept.contains("json") && !accept.contains("*/*") && !accept.trim().is_empty() {
                return Response::error(
                    406,
                    IssueType::NotSupported,
                    format!("only FHIR JSON is served, not \"{accept}\""),
                );
            }
        }
        // Writes index with the stored SearchParameters too, so they are read first; once
        // read, each request's first transaction checks them (`begin`).
        if !self.search_ready.get() {
            if let Err(err) = self.ensure_registry().await {
                return store_error(&err);
            }
        }
        // Audit records are stored as AuditEvents once something may read them.
        if records::may_read_records(request) {
            if let Err(err) = self.flush_records().await {
                return store_error(&err);
            }
        }
        let response = if method == "POST" && segments.is_empty() {
            self.bundle(request).await
        } else {
            self.single(request, &method, path, &segments).await
        };
        let pretty = request
            .query
            .iter()
            .any(|(name, value)| name == "_pretty" && value == "true");
        if pretty && !response.body.is_empty() {
            if let Ok(tree) = crate::json::reader::parse(
                response.body.as_bytes(),
                crate::json::reader::Limits::default(),
            ) {
                return Response {
                    body: crate::json::patch::to_pretty_text(&tree),
                    ..response
                };
            }
        }
        response
    }

    /// Every interaction but a batch or transaction (which are made of these).
    async fn single(
        &self,
        request: &Request,
        method: &str,
        path: &str,
        segments: &[&str],
    ) -> Response {
        match (method, segments) {
            ("GET", []) => self.search(request, None).await,
            ("POST", ["_search"]) => self.search(request, None).await,
            ("POST", [type_name, "_search"]) => self.search(request, Some(type_name)).await,
            ("PUT", [type_name]) if !request.query.is_empty() => {
                self.conditional_update(request, type_name).await
            }
            ("DELETE", [type_name]) if !request.query.is_empty() => {
                self.conditional_delete(request, type_name).await
            }
            ("PATCH", [type_name]) if !request.query.is_empty() => {
                self.conditional_patch(request, type_name).await
            }
            ("PATCH", [type_name, id]) => self.patch(request, type_name, id).await,
            ("POST", ["$reindex"]) => self.reindex(None).await,
            ("POST", [type_name, "$reindex"]) => self.reindex(Some(type_name)).await,
            ("GET", ["metadata"]) => {
                // The statement lists the search parameters: those stored now, which another
                // tab may have changed (it begins no transaction that would check them).
                if let Err(err) = self.ensure_registry().await {
                    return store_error(&err);
                }
                self.metadata()
            }
            ("GET", ["_history"]) => self.log_history(request, None).await,
            ("GET", [type_name, "_history"]) => self.log_history(request, Some(type_name)).await,
            ("POST", [type_name]) => self.create(request, type_name).await,
            ("GET", [type_name]) => self.search(request, Some(type_name)).await,
            ("POST", [type_name, "$validate"]) => self.validate_operation(request, type_name, None),
            ("POST", [type_name, id, "$validate"]) => {
                self.validate_operation(request, type_name, Some(id))
            }
            ("GET", [type_name, id]) => self.read(request, type_name, id, None).await,
            ("PUT", [type_name, id]) => self.update(request, type_name, id).await,
            ("DELETE", [type_name, id]) => match request.header("if-match") {
                Some(if_match) => match etag_version(if_match) {
                    Some(version) => self.delete_version(type_name, id, Some(version)).await,
                    None => Response::error(
                        412,
                        IssueType::Conflict,
                        format!("If-Match {if_match} is not a version of {type_name}/{id}"),
                    ),
                },
                None => self.delete(type_name, id).await,
            },
            ("GET", [type_name, id, "_history"]) => self.history(request, type_name, id).await,
            ("GET", ["Patient", id, "$everything"]) => {
                // Everything of a Patient that is deleted, or not known, is answered as its
                // read is.
                if let Some(refusal) = self.absent("Patient", id).await {
                    return refusal;
                }
                // `_since`: what changed at or after the instant, as `_lastUpdated=ge`.
                if request.query.iter().any(|(name, _)| name == "_since") {
                    let mut since = request.clone();
                    for (name, value) in &mut since.query {
                        if name == "_since" {
                            *name = String::from("_lastUpdated");
                            *value = format!("ge{value}");
                        }
                    }
                    return self
                        .search_scoped(&since, None, Some(("Patient", id)), true)
                        .await;
                }
                self.search_scoped(request, None, Some(("Patient", id)), true)
                    .await
            }
            ("GET", [focus, id, "*"]) => {
                self.search_scoped(request, None, Some((focus, id)), false)
                    .await
            }
            ("GET", [focus, id, type_name])
                if !type_name.starts_with('$') && *type_name != "_history" =>
            {
                self.search_scoped(request, Some(type_name), Some((focus, id)), false)
                    .await
            }
            ("GET", [type_name, id, "_history", version]) => {
                self.read(request, type_name, id, Some(version)).await
            }
            (_, [] | ["metadata"] | [_] | [_, _] | [_, _, "_history"] | [_, _, "_history", _]) => {
                Response::error(
                    405,
                    IssueType::NotSupported,
                    format!("{method} is not allowed on /{path}"),
                )
            }
            _ => Response::error(
                404,
                IssueType::NotFound,
                format!("no such endpoint: /{path}"),
            ),
        }
    }

    /// The answer a read of `type_name/id` would give when it is deleted (410) or not known
    /// (404); `None` when it is there.
    async fn absent(&self, type_name: &str, id: &str) -> Option<Response> {
        let result = async {
            let mut tx = self.begin(false).await?;
            Self::current(&mut tx, type_name, id).await
        }
        .await;
        match result {
            Err(err) => Some(store_error(&err)),
            Ok(None) => Some(Response::error(
                404,
                IssueType::NotFound,
                format!("{type_name}/{id} does not exist"),
            )),
            Ok(Some(Current {
                version,
                deleted: true,
            })) => Some(
                Response::error(
                    410,
                    IssueType::Deleted,
                    format!("{type_name}/{id} was deleted (version {version})"),
                )
                .with("ETag", etag(version)),
            ),
            Ok(Some(_)) => None,
        }
    }

    fn resource_type(type_name: &str) -> Result<&'static str, Response> {
        model::type_by_name(type_name)
            .map(model::type_def)
            .filter(|def| def.is_concrete_resource())
            .map(|def| def.name)
            .ok_or_else(|| {
                Response::error(
                    404,
                    IssueType::NotSupported,
                    format!("\"{type_name}\" is not a FHIR R4 resource type"),
                )
            })
    }

    /// The CapabilityStatement: what this server does, by resource type, with every search
    /// parameter in force.
    fn metadata(&self) -> Response {
        let registry = self.registry();
        let mut json_text = String::new();
        let quoted = |text: &str| {
            let mut out = String::new();
            crate::outcome::push_json_string(&mut out, text);
            out
        };
        let types: Vec<String> = model::TYPES
            .iter()
            .filter(|def| def.is_concrete_resource())
            .map(|def| {
                let params: Vec<String> = registry
                    .params_of(def.name)
                    .filter(|param| param.kind != model::SearchParamType::Special)
                    .map(|param| {
                        format!(
                            r#"{{"name":{},"definition":{},"type":"{}"}}"#,
                            quoted(&param.code),
                            quoted(&param.url),
                            param.kind.code()
                        )
                    })
                    .collect();
                let mut includes: Vec<String> = alloc::vec![String::from("\"*\"")];
                includes.extend(registry
                    .params_of(def.name)
                    .filter(|param| param.kind == model::SearchParamType::Reference)
                    .map(|param| quoted(&format!("{}:{}", def.name, param.code))));
                let revincludes: Vec<String> = model::TYPES
                    .iter()
                    .filter(|other| other.is_concrete_resource())
                    .flat_map(|other| {
                        registry
                            .params_of(other.name)
                            .filter(|param| {
                                param.kind == model::SearchParamType::Reference
                                    && param.target.iter().any(|target| target == def.name)
                            })
                            .map(|param| quoted(&format!("{}:{}", other.name, param.code)))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let everything = if def.name == "Patient" {
                    r#",{"name":"everything","definition":"http://hl7.org/fhir/OperationDefinition/Patient-everything"}"#
                } else {
                    ""
                };
                format!(
                    r#"{{"type":"{}","interaction":[{{"code":"read"}},{{"code":"vread"}},{{"code":"update"}},{{"code":"patch"}},{{"code":"delete"}},{{"code":"history-instance"}},{{"code":"history-type"}},{{"code":"create"}},{{"code":"search-type"}}],"versioning":"versioned","readHistory":true,"updateCreate":{},"conditionalCreate":true,"conditionalRead":"modified-since","conditionalUpdate":true,"conditionalDelete":"single","searchInclude":[{}]{}{},"operation":[{{"name":"validate","definition":"http://hl7.org/fhir/OperationDefinition/Resource-validate"}}{everything}]}}"#,
                    def.name,
                    self.update_create,
                    includes.join(","),
                    if revincludes.is_empty() {
                        String::new()
                    } else {
                        format!(r#","searchRevInclude":[{}]"#, revincludes.join(","))
                    },
                    if params.is_empty() {
                        String::new()
                    } else {
                        format!(r#","searchParam":[{}]"#, params.join(","))
                    }
                )
            })
            .collect();
        let security = match &self.oauth {
            Some((authorize, token)) => format!(
                r#","security":{{"extension":[{{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris","extension":[{{"url":"authorize","valueUri":{}}},{{"url":"token","valueUri":{}}}]}}],"cors":true,"service":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/restful-security-service","code":"SMART-on-FHIR"}}]}}],"description":"SMART on FHIR: OAuth 2.0 bearer tokens, scopes enforced on every interaction"}}"#,
                quoted(authorize),
                quoted(token)
            ),
            None => String::new(),
        };
        json_text.push_str(&format!(
            r#"{{"resourceType":"CapabilityStatement","status":"active","date":"{}","kind":"instance","software":{{"name":"Hearth","version":"{}"}},"implementation":{{"description":"Hearth FHIR service","url":"{}"}},"fhirVersion":"4.0.1","format":["json"],"patchFormat":["application/json-patch+json","application/fhir+json"],"rest":[{{"mode":"server"{security},"resource":[{}],"interaction":[{{"code":"transaction"}},{{"code":"batch"}},{{"code":"search-system"}},{{"code":"history-system"}}],"searchParam":[{{"name":"_type","definition":"http://hl7.org/fhir/SearchParameter/Resource-type","type":"token"}}],"compartment":["http://hl7.org/fhir/CompartmentDefinition/patient","http://hl7.org/fhir/CompartmentDefinition/encounter","http://hl7.org/fhir/CompartmentDefinition/relatedPerson","http://hl7.org/fhir/CompartmentDefinition/practitioner","http://hl7.org/fhir/CompartmentDefinition/device"]}}]}}"#,
            self.clock.now(),
            env!("CARGO_PKG_VERSION"),
            self.base_url,
            types.join(",")
        ));
        Response::json(200, json_text)
    }

    /// Reads the body as a resource of `type_name`, and validates it unless asked not to.
    fn read_body(&self, request: &Request, type_name: &str) -> Result<Object, Response> {
        let resource = parse_resource(&request.body).map_err(|err| {
            let (status, outcome) = err.to_outcome();
            Response::outcome(status.0, &outcome)
        })?;
        let found = resource.type_def().name;
        if found != type_name {
            return Err(Response::error(
                400,
                IssueType::Invalid,
                format!(
                    "expected {} resource, found {}",
                    crate::outcome::with_article(type_name),
                    crate::outcome::with_article(found)
                ),
            ));
        }
        // A search parameter the server could not evaluate would index nothing, silently.
        if found == "SearchParameter" {
            if let Some(expression) = resource.text("expression") {
                if let Err(err) = crate::fhirpath::compile(expression) {
                    return Err(Response::error(
                        422,
                        IssueType::Invalid,
                        format!("the search parameter's expression does not parse: {err}"),
                    ));
                }
            }
        }
        if request
            .header("x-validation")
            .is_some_and(|value| value.eq_ignore_ascii_case("off"))
        {
            return Ok(resource);
        }
        let options = ValidateOptions {
            profiles: Some(&self.profiles),
            ..ValidateOptions::default()
        };
        let findings = self
            .validator
            .borrow_mut()
            .validate_with(&resource, &options);
        if findings
            .iter()
            .any(|finding| finding.severity == Severity::Error)
        {
            let errors: Vec<validation::Finding> = findings
                .into_iter()
                .filter(|finding| finding.severity == Severity::Error)
                .collect();
            return Err(Response::outcome(
                422,
                &validation::to_outcome_in(&errors, &request.body),
            ));
        }
        Ok(resource)
    }

    async fn current<T: Transaction>(
        tx: &mut T,
        type_name: &str,
        id: &str,
    ) -> Result<Option<Current>, StoreError> {
        let Some(value) = tx.get(&key(&["c", type_name, id])).await? else {
            return Ok(None);
        };
        let text = core::str::from_utf8(&value).unwrap_or_default();
        let (version, deleted) = match text.split_once('\0') {
            Some((version, _)) => (version, true),
            None => (text, false),
        };
        Ok(version
            .parse()
            .ok()
            .map(|version| Current { version, deleted }))
    }

    async fn stored<T: Transaction>(
        tx: &mut T,
        type_name: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<Stored>, StoreError> {
        let Some(value) = tx.get(&version_key(type_name, id, version)).await? else {
            return Ok(None);
        };
        let text = String::from_utf8(value).unwrap_or_default();
        Ok(match text.split_at_checked(1) {
            Some(("P" | "U" | "R" | "A", json)) => Some(Stored::Resource(json.to_string())),
            Some(("D", at)) => Some(Stored::Deleted(at.to_string())),
            _ => None,
        })
    }

    /// Stores `resource` as the next version of `type_name/id` (after `previous`).
    fn write_version<T: Transaction>(
        &self,
        tx: &mut T,
        resource: &mut Object,
        type_name: &str,
        id: &str,
        previous: Option<&Current>,
        method: &str,
    ) -> (u64, String, String) {
        let version = previous.map_or(1, |current| current.version + 1);
        // How the version came to be, for history: P created by POST, U created by PUT,
        // R an update, A a patch.
        let how = match previous {
            Some(current) if !current.deleted && method == "PATCH" => 'A',
            Some(current) if !current.deleted => 'R',
            _ if method == "POST" => 'P',
            _ => 'U',
        };
        let now = self.clock.now();
        resource.set_text("id", id.to_string());
        if let Some(meta) = resource.child_mut("meta") {
            meta.set_text("versionId", version.to_string());
            meta.set_text("lastUpdated", now.clone());
        }
        let json = write_resource(resource, Style::Compact);
        let mut stored = Vec::with_capacity(json.len() + 1);
        stored.push(how as u8);
        stored.extend_from_slice(json.as_bytes());
        tx.put(version_key(type_name, id, version), stored);
        tx.put(key(&["c", type_name, id]), version.to_string().into_bytes());
        (version, now, json)
    }

    /// The response to a successful write, as `Prefer: return=` asks.
    fn written(
        &self,
        request: &Request,
        status: u16,
        type_name: &str,
        id: &str,
        (version, now, json): (u64, String, String),
    ) -> Response {
        let mut response = match WrittenBack::asked(request) {
            WrittenBack::Minimal => Response {
                status,
                headers: Vec::new(),
                body: String::new(),
            },
            WrittenBack::Outcome => {
                Response::outcome(status, &stored_outcome(type_name, id, version))
            }
            WrittenBack::Resource => Response::json(status, json),
        };
        response = response
            .with(
                "Location",
                format!("{}/{type_name}/{id}/_history/{version}", self.base_url),
            )
            .with("ETag", etag(version));
        if let Some(date) = http_date(&now) {
            response = response.with("Last-Modified", date);
        }
        response
    }

    async fn create(&self, request: &Request, type_name: &str) -> Response {
        let type_name = match Self::resource_type(type_name) {
            Ok(type_name) => type_name,
            Err(response) => return response,
        };
        let if_none_exist = request.header("if-none-exist").map(ToString::to_string);
        if if_none_exist.is_some() {
            if let Err(err) = self.ensure_registry().await {
                return store_error(&err);
            }
        }
        let mut resource = match self.read_body(request, type_name) {
            Ok(resource) => resource,
            Err(response) => return response,
        };
        let id = match self.new_id() {
            Ok(id) => id,
            Err(response) => return response,
        };
        let result = async {
            let mut tx = self.begin(true).await?;
            if let Some(query) = &if_none_exist {
                match self.conditional_matches(&mut tx, type_name, query).await {
                    Err(response) => return Ok(Err(response)),
                    Ok(ids) if ids.is_empty() => {}
                    Ok(ids) if ids.len() == 1 => {
                        return Ok(Err(Response {
                            status: 0,
                            headers: Vec::new(),
                            body: ids.into_iter().next().unwrap_or_default(),
                        }))
                    }
                    Ok(ids) => {
                        return Ok(Err(Response::error(
                            412,
                            IssueType::Duplicate,
                            format!(
                                "If-None-Exist matches {} resources; it must match one at most",
                                ids.len()
                            ),
                        )))
                    }
                }
            }
            if Self::current(&mut tx, type_name, &id).await?.is_some() {
                return Err(StoreError {
                    message: format!("the new id {id} is taken; retry"),
                    conflict: true,
                    too_costly: false,
                    full: false,
                    forbidden: false,
                });
            }
            let written = self.write_version(&mut tx, &mut resource, type_name, &id, None, "POST");
            self.log_write(
                &mut tx,
                type_name,
                &id,
                written.0,
                &written.1,
                Some(&resource),
            )
            .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(Ok(written))
        }
        .await;
        match result {
            Ok(Ok(written)) => self.written(request, 201, type_name, &id, written),
            // One match: the existing resource, as a read gives it (R4 §3.1.0.8).
            Ok(Err(Response {
                status: 0, body, ..
            })) => self.read(request, type_name, &body, None).await,
            Ok(Err(response)) => response,
            Err(err) => store_error(&err),
        }
    }

    async fn update(&self, request: &Request, type_name: &str, id: &str) -> Response {
        let type_name = match Self::resource_type(type_name) {
            Ok(type_name) => type_name,
            Err(response) => return response,
        };
        if !is_valid_id(id) {
            return Response::error(
                400,
                IssueType::Invalid,
                format!("\"{id}\" is not a valid id"),
            );
        }
        let mut resource = match self.read_body(request, type_name) {
            Ok(resource) => resource,
            Err(response) => return response,
        };
        match resource.id() {
            Some(body_id) if body_id == id => {}
            Some(body_id) => {
                return Response::error(
                    400,
                    IssueType::Invalid,
                    format!(
                        "the resource's id \"{body_id}\" differs from the id in the URL, \"{id}\""
                    ),
                )
            }
            None => {
                return Response::error(
                    400,
                    IssueType::Required,
                    "an update must carry the resource's id, the same as in the URL",
                )
            }
        }
        let if_match = request.header("if-match").map(str::to_string);
        let result = async {
            let mut tx = self.begin(true).await?;
            let current = Self::current(&mut tx, type_name, id).await?;
            if let Some(if_match) = &if_match {
                let live = current.as_ref().filter(|current| !current.deleted);
                let wanted = etag_version(if_match);
                if wanted.is_none() || live.map(|current| current.version) != wanted {
                    return Ok(Err(Response::error(
                        412,
                        IssueType::Conflict,
                        format!("If-Match {if_match} does not match the current version of {type_name}/{id}"),
                    )));
                }
            }
            if current.is_none() {
                if let Some(refusal) = self.refuse_update_create(type_name, id) {
                    return Ok(Err(Response::error(405, IssueType::NotSupported, refusal)));
                }
            }
            let created = current.as_ref().is_none_or(|current| current.deleted);
            let written =
                self.write_version(
                    &mut tx,
                    &mut resource,
                    type_name,
                    id,
                    current.as_ref(),
                    &request.method,
                );
            self.log_write(&mut tx, type_name, id, written.0, &written.1, Some(&resource))
                .await?;
            tx.commit().await?;
            Ok(Ok((created, written)))
        }
        .await;
        match result {
            Ok(Ok((created, written))) => self.written(
                request,
                if created { 201 } else { 200 },
                type_name,
                id,
                written,
            ),
            Ok(Err(response)) => response,
            Err(err) => store_error(&err),
        }
    }

    async fn read(
        &self,
        request: &Request,
        type_name: &str,
        id: &str,
        version: Option<&str>,
    ) -> Response {
        let type_name = match Self::resource_type(type_name) {
            Ok(type_name) => type_name,
            Err(response) => return response,
        };
        let requested = match version.map(str::parse::<u64>) {
            Some(Ok(version)) => Some(version),
            Some(Err(_)) => {
                return Response::error(
                    404,
                    IssueType::NotFound,
                    format!(
                        "{type_name}/{id} has no version \"{}\"",
                        version.unwrap_or_default()
                    ),
                )
            }
            None => None,
        };
        let result = async {
            let mut tx = self.begin(false).await?;
            let Some(current) = Self::current(&mut tx, type_name, id).await? else {
                return Ok(None);
            };
            let version = requested.unwrap_or(current.version);
            let stored = Self::stored(&mut tx, type_name, id, version).await?;
            Ok(stored.map(|stored| (version, stored)))
        }
        .await;
        match result {
            Err(err) => store_error(&err),
            Ok(None) => Response::error(
                404,
                IssueType::NotFound,
                match requested {
                    Some(version) => format!("{type_name}/{id} has no version {version}"),
                    None => format!("{type_name}/{id} does not exist"),
                },
            ),
            Ok(Some((version, Stored::Deleted(at)))) => {
                let response = Response::error(
                    410,
                    IssueType::Deleted,
                    format!("{type_name}/{id} was deleted (version {version})"),
                )
                .with("ETag", etag(version));
                match http_date(&at) {
                    Some(date) => response.with("Last-Modified", date),
                    None => response,
                }
            }
            Ok(Some((version, Stored::Resource(json)))) => {
                let last_updated_at = parse_resource(json.as_bytes())
                    .ok()
                    .and_then(|resource| meta_of(&resource, "lastUpdated"))
                    .and_then(|at| crate::search::index::date_text_range(&at))
                    .map(|(low, _)| low.div_euclid(1000));
                let not_modified_since = request
                    .header("if-modified-since")
                    .and_then(parse_http_date)
                    .zip(last_updated_at)
                    .is_some_and(|(since, at)| at <= since);
                let etag_matches = request
                    .header("if-none-match")
                    .and_then(etag_version)
                    .is_some_and(|wanted| wanted == version);
                if etag_matches || (not_modified_since && request.header("if-none-match").is_none())
                {
                    return Response {
                        status: 304,
                        headers: alloc::vec![(String::from("ETag"), etag(version))],
                        body: String::new(),
                    };
                }
                let last_updated = parse_resource(json.as_bytes())
                    .ok()
                    .and_then(|resource| meta_of(&resource, "lastUpdated"));
                let mut response = Response::json(200, json).with("ETag", etag(version));
                if let Some(date) = last_updated.as_deref().and_then(http_date) {
                    response = response.with("Last-Modified", date);
                }
                response
            }
        }
    }

    async fn delete(&self, type_name: &str, id: &str) -> Response {
        self.delete_version(type_name, id, None).await
    }

    /// Deletes `type_name/id`; with `expected`, only if that is still its current version
    /// (If-Match, or a conditional delete's match), else 412.
    async fn delete_version(&self, type_name: &str, id: &str, expected: Option<u64>) -> Response {
        let type_name = match Self::resource_type(type_name) {
            Ok(type_name) => type_name,
            Err(response) => return response,
        };
        let result = async {
            let mut tx = self.begin(true).await?;
            let current = Self::current(&mut tx, type_name, id).await?;
            let live = current.as_ref().filter(|current| !current.deleted);
            if let Some(expected) = expected {
                if live.map(|current| current.version) != Some(expected) {
                    return Ok(Err(Response::error(
                        412,
                        IssueType::Conflict,
                        format!("{type_name}/{id} is no longer the version the request expected"),
                    )));
                }
            }
            let Some(current) = current.filter(|current| !current.deleted) else {
                return Ok(Ok(None));
            };
            let version = self
                .write_deletion(&mut tx, type_name, id, &current)
                .await?;
            tx.commit().await?;
            Ok(Ok(Some(version)))
        }
        .await;
        match result {
            Err(err) => store_error(&err),
            Ok(Err(response)) => response,
            // Deleting what does not exist (or no longer does) succeeds (R4 §3.1.0.7.1).
            Ok(Ok(None)) => Response {
                status: 204,
                headers: Vec::new(),
                body: String::new(),
            },
            Ok(Ok(Some(version))) => Response {
                status: 204,
                headers: alloc::vec![(String::from("ETag"), etag(version))],
                body: String::new(),
            },
        }
    }

    /// Writes the deletion of `type_name/id` after its live version `current` (the deletion
    /// version, the current pointer, its write-log entry, the index removed); the new version.
    async fn write_deletion<T: Transaction>(
        &self,
        tx: &mut T,
        type_name: &str,
        id: &str,
        current: &Current,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let version = current.version + 1;
        tx.put(
            version_key(type_name, id, version),
            format!("D{now}").into_bytes(),
        );
        tx.put(
            key(&["c", type_name, id]),
            format!("{version}\0deleted").into_bytes(),
        );
        self.log_write(tx, type_name, id, version, &now, None)
            .await?;
        Ok(version)
    }

    async fn history(&self, request: &Request, type_name: &str, id: &str) -> Response {
        let type_name = match Self::resource_type(type_name) {
            Ok(type_name) => type_name,
            Err(response) => return response,
        };
        let params = match history_params(request) {
            Ok(params) => params,
            Err(response) => return response,
        };
        let result = async {
            let mut tx = self.begin(false).await?;
            let prefix = key(&["v", type_name, id, ""]);
            tx.scan(&KeyRange::prefix(&prefix), usize::MAX, true).await
        }
        .await;
        let versions = match result {
            Ok(versions) => versions,
            Err(err) => return store_error(&err),
        };
        if versions.is_empty() {
            return Response::error(
                404,
                IssueType::NotFound,
                format!("{type_name}/{id} does not exist"),
            );
        }
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let mut newer: Option<i64> = None;
        for (stored_key, value) in &versions {
            let version: u64 = stored_key
                .rsplit(|b| *b == 0)
                .next()
                .and_then(|digits| core::str::from_utf8(digits).ok())
                .and_then(|digits| digits.parse().ok())
                .unwrap_or(0);
            let written = stored_instant(value);
            match params.admits(written, newer) {
                Admit::Yes => {
                    if let Some(entry) = self.history_entry(type_name, id, version, value) {
                        bytes = bytes.saturating_add(entry.len());
                        if bytes > self.limits.max_response_bytes {
                            return self.history_too_large();
                        }
                        entries.push(entry);
                    }
                }
                Admit::No => {}
                Admit::Stop => break,
            }
            newer = written.or(newer);
            if entries.len() >= params.count {
                break;
            }
        }
        self.history_bundle(&format!("{type_name}/{id}/_history"), &entries)
    }

    /// A history Bundle of `entries` (no `entry` when there are none: FHIR JSON has no empty
    /// arrays).
    fn history_too_large(&self) -> Response {
        limits::too_costly(
            "maxResponseBytes",
            format!(
                "the history page would have more than the {} bytes a response may have; ask for fewer with _count",
                self.limits.max_response_bytes
            ),
        )
    }

    fn history_bundle(&self, path: &str, entries: &[String]) -> Response {
        self.history_bundle_next(path, entries, None)
    }

    /// A history Bundle with a `next` link when `next` is given.
    fn history_bundle_next(&self, path: &str, entries: &[String], next: Option<&str>) -> Response {
        let next = next
            .map(|url| format!(r#",{{"relation":"next","url":"{url}"}}"#))
            .unwrap_or_default();
        let entry = if entries.is_empty() {
            String::new()
        } else {
            format!(r#","entry":[{}]"#, entries.join(","))
        };
        Response::json(
            200,
            format!(
                r#"{{"resourceType":"Bundle","type":"history","link":[{{"relation":"self","url":"{}/{path}"}}{next}]{entry}}}"#,
                self.base_url
            ),
        )
    }

    /// A history Bundle entry for a stored version.
    fn history_entry(
        &self,
        type_name: &str,
        id: &str,
        version: u64,
        value: &[u8],
    ) -> Option<String> {
        let text = core::str::from_utf8(value).unwrap_or_default();
        let full_url = format!("{}/{type_name}/{id}", self.base_url);
        match text.split_at_checked(1) {
            Some((how @ ("P" | "U" | "R" | "A"), json)) => {
                let (method, url, status) = match how {
                    "P" => ("POST", type_name.to_string(), "201"),
                    "U" => ("PUT", format!("{type_name}/{id}"), "201"),
                    "A" => ("PATCH", format!("{type_name}/{id}"), "200"),
                    _ => ("PUT", format!("{type_name}/{id}"), "200"),
                };
                Some(format!(
                    r#"{{"fullUrl":"{full_url}","resource":{json},"request":{{"method":"{method}","url":"{url}"}},"response":{{"status":"{status}","etag":"W/\"{version}\""}}}}"#
                ))
            }
            Some(("D", _)) => Some(format!(
                r#"{{"fullUrl":"{full_url}","request":{{"method":"DELETE","url":"{type_name}/{id}"}},"response":{{"status":"204","etag":"W/\"{version}\""}}}}"#
            )),
            _ => None,
        }
    }

    /// Notes a new version in the write log, for type and system history: `l␀seq` →
    /// `Type␀id␀version␀instant` and `t␀Type␀seq` pointing at it, with `seq` counting every
    /// write; and replaces the index of the version before with this one's.
    async fn log_write<T: Transaction>(
        &self,
        tx: &mut T,
        type_name: &str,
        id: &str,
        version: u64,
        instant: &str,
        resource: Option<&Object>,
    ) -> Result<(), StoreError> {
        // The index of the version before (read again from it) gives way to this one's.
        let registry = self.registry();
        let new = resource
            .map(|resource| registry.extract(resource, &self.base_url))
            .unwrap_or_default();
        let before = match version.checked_sub(1).filter(|before| *before > 0) {
            Some(before) => match Self::stored(tx, type_name, id, before).await? {
                Some(Stored::Resource(json)) => parse_resource(json.as_bytes()).ok(),
                _ => None,
            },
            None => None,
        };
        let gate = self.gate.borrow().clone();
        if let Some(gate) = gate {
            gate.check(type_name, id, before.as_ref(), resource)
                .map_err(StoreError::forbidden)?;
            // The write's record goes in the same transaction: no write without it.
            if let Some(record) = gate.record(type_name, id, version, before.as_ref(), resource) {
                self.stage_record(tx, &record)?;
            }
        }
        self.log_write_checked(tx, type_name, id, version, instant, (before, new))
            .await
    }

    /// [`Service::log_write`] once the write is allowed: `before` is the version before,
    /// `new` the index entries of this one.
    #[allow(clippy::type_complexity)]
    async fn log_write_checked<T: Transaction>(
        &self,
        tx: &mut T,
        type_name: &str,
        id: &str,
        version: u64,
        instant: &str,
        (before, new): (Option<Object>, Vec<(String, String, String)>),
    ) -> Result<(), StoreError> {
        let registry = self.registry();
        let old = before
            .map(|old| registry.extract(&old, &self.base_url))
            .unwrap_or_default();
        crate::search::write_index(tx, type_name, id, &old, &new).await?;
        if type_name == "SearchParameter" {
            self.search_ready.set(false);
            tx.put(
                crate::search::PARAMS_MARKER_KEY.to_vec(),
                format!("{type_name}\0{id}\0{version}\0{instant}").into_bytes(),
            );
        }
        let counter = key(&["m", "seq"]);
        let seq: u64 = tx
            .get(&counter)
            .await?
            .and_then(|value| core::str::from_utf8(&value).ok()?.parse().ok())
            .unwrap_or(0)
            + 1;
        let value = key(&[type_name, id, &version.to_string(), instant]);
        let seq_text = padded20(seq);
        tx.put(key(&["l", &seq_text]), value);
        // The type's log points at the system log's entry (same sequence number).
        tx.put(key(&["t", type_name, &seq_text]), Vec::new());
        tx.put(counter, seq.to_string().into_bytes());
        Ok(())
    }

    /// `GET [type]/_history` and `GET _history`: the newest writes first, `_count` of them,
    /// those at or after `_since`.
    async fn log_history(&self, request: &Request, type_name: Option<&str>) -> Response {
        let type_name = match type_name.map(Self::resource_type) {
            Some(Ok(type_name)) => Some(type_name),
            Some(Err(response)) => return response,
            None => None,
        };
        let params = match history_params(request) {
            Ok(params) => params,
            Err(response) => return response,
        };
        let result = async {
            let mut tx = self.begin(false).await?;
            let prefix = match type_name {
                Some(type_name) => key(&["t", type_name, ""]),
                None => key(&["l", ""]),
            };
            let mut entries = Vec::new();
            let mut bytes = 0usize;
            // For `_at`: when each resource's next version was written (walking back in time).
            let mut newer: alloc::collections::BTreeMap<(String, String), i64> =
                alloc::collections::BTreeMap::new();
            let mut end: Option<Vec<u8>> = match params.cursor {
                Some(cursor) => Some(
                    [prefix.as_slice(), format!("{cursor:020}").as_bytes()].concat(),
                ),
                None => KeyRange::prefix(&prefix).end,
            };
            // The sequence number of the last write looked at, when the page is full.
            let mut last_seq: Option<u64> = None;
            'pages: while entries.len() < params.count {
                let range = KeyRange {
                    start: prefix.clone(),
                    end: end.clone(),
                };
                let page = tx.scan(&range, 256, true).await?;
                let Some((last_key, _)) = page.last() else {
                    break;
                };
                end = Some(last_key.clone());
                for (entry_key, value) in &page {
                    let seq = entry_key
                        .rsplit(|b| *b == 0)
                        .next()
                        .and_then(|seq| core::str::from_utf8(seq).ok())
                        .unwrap_or_default();
                    let value = if value.is_empty() {
                        tx.get(&key(&["l", seq])).await?.unwrap_or_default()
                    } else {
                        value.clone()
                    };
                    let text = core::str::from_utf8(&value).unwrap_or_default();
                    let mut parts = text.split('\0');
                    let (Some(entry_type), Some(id), Some(version), Some(instant)) = (
                        parts.next(),
                        parts.next(),
                        parts.next().and_then(|v| v.parse::<u64>().ok()),
                        parts.next(),
                    ) else {
                        continue;
                    };
                    let written =
                        crate::search::index::date_text_range(instant).map(|(low, _)| low);
                    let resource = (entry_type.to_string(), id.to_string());
                    match params.admits(written, newer.get(&resource).copied()) {
                        Admit::Yes => {
                            if let Some(stored) =
                                tx.get(&version_key(entry_type, id, version)).await?
                            {
                                if let Some(entry) =
                                    self.history_entry(entry_type, id, version, &stored)
                                {
                                    bytes = bytes.saturating_add(entry.len());
                                    if bytes > self.limits.max_response_bytes {
                                        return Err(StoreError::too_costly(format!(
                                            "the history page would have more than the {} bytes a response may have; ask for fewer with _count (limit maxResponseBytes)",
                                            self.limits.max_response_bytes
                                        )));
                                    }
                                    entries.push(entry);
                                }
                            }
                        }
                        Admit::No => {}
                        Admit::Stop => break 'pages,
                    }
                    if let Some(written) = written {
                        newer.insert(resource, written);
                    }
                    if entries.len() >= params.count {
                        last_seq = seq.parse().ok();
                        break 'pages;
                    }
                }
            }
            Ok::<_, StoreError>((entries, last_seq))
        }
        .await;
        let (entries, last_seq) = match result {
            Ok(found) => found,
            Err(err) => return store_error(&err),
        };
        let path = type_name.map_or_else(
            || String::from("_history"),
            |type_name| format!("{type_name}/_history"),
        );
        let response = self.history_bundle(&path, &entries);
        if let Some(seq) = last_seq.filter(|seq| *seq > 1) {
            // The page is full: the next one continues below its last write.
            let mut query: Vec<(String, String)> = request
                .query
                .iter()
                .filter(|(name, _)| name != "_cursor")
                .cloned()
                .collect();
            query.push((String::from("_cursor"), format!("{seq}")));
            let next = format!("{}/{path}?{}", self.base_url, query_string(&query));
            return self.history_bundle_next(&path, &entries, Some(&next));
        }
        response
    }

    /// The matches of a conditional interaction's query, with the version each was found at.
    async fn conditional_targets(
        &self,
        request: &Request,
        type_name: &str,
    ) -> Result<(&'static str, Vec<(String, u64)>), Response> {
        let type_name = Self::resource_type(type_name)?;
        let query = query_string(&request.query);
        let mut tx = self.begin(false).await.map_err(|err| store_error(&err))?;
        let ids = self.conditional_matches(&mut tx, type_name, &query).await?;
        let mut found = Vec::new();
        for id in ids {
            let current = Self::current(&mut tx, type_name, &id)
                .await
                .map_err(|err| store_error(&err))?;
            if let Some(current) = current.filter(|current| !current.deleted) {
                found.push((id, current.version));
            }
        }
        Ok((type_name, found))
    }

    fn too_many(interaction: &str, count: usize) -> Response {
        Response::error(
            412,
            IssueType::Duplicate,
            format!("the search matches {count} resources; a conditional {interaction} needs one at most"),
        )
    }

    /// `PUT [type]?query`: updates the one match, creates when there is none (R4 §3.1.0.4.3).
    /// The match is updated only if it is still the version found (else 412).
    async fn conditional_update(&self, request: &Request, type_name: &str) -> Response {
        let (type_name, found) = match self.conditional_targets(request, type_name).await {
            Ok(found) => found,
            Err(response) => return response,
        };
        let body_id = parse_resource(&request.body)
            .ok()
            .and_then(|resource| resource.id().map(ToString::to_string));
        let mut single = request.clone();
        let id =
            match (found.as_slice(), body_id) {
                ([], None) => return self.create(request, type_name).await,
                ([], Some(body_id)) => {
                    // Update as create, but not over an existing resource the search did not match.
                    let exists = async {
                        let mut tx = self.begin(false).await?;
                        Self::current(&mut tx, type_name, &body_id).await
                    }
                    .await;
                    match exists {
                        Err(err) => return store_error(&err),
                        Ok(Some(current)) if !current.deleted => return Response::error(
                            409,
                            IssueType::Conflict,
                            "the search matches nothing, but a resource with the body's id exists",
                        ),
                        Ok(_) => body_id,
                    }
                }
                ([(id, _)], Some(body_id)) if *id != body_id => {
                    return Response::error(
                        400,
                        IssueType::Invalid,
                        "the resource's id is not the id of the resource the search matches",
                    )
                }
                ([(id, version)], _) => {
                    if single.header("if-match").is_none() {
                        single
                            .headers
                            .push((String::from("if-match"), etag(*version)));
                    }
                    id.clone()
                }
                _ => return Self::too_many("update", found.len()),
            };
        if let Ok(mut resource) = parse_resource(&request.body) {
            if resource.id().is_none() {
                resource.set_text("id", id.clone());
                single.body = write_resource(&resource, Style::Compact).into_bytes();
            }
        }
        self.update(&single, type_name, &id).await
    }

    /// `DELETE [type]?query`: deletes the one match (R4 §3.1.0.7.1); more than one is a 412.
    async fn conditional_delete(&self, request: &Request, type_name: &str) -> Response {
        match self.conditional_targets(request, type_name).await {
            Err(response) => response,
            Ok((_, found)) if found.is_empty() => Response {
                status: 204,
                headers: Vec::new(),
                body: String::new(),
            },
            Ok((type_name, found)) if found.len() == 1 => {
                let (id, version) = &found[0];
                self.delete_version(type_name, id, Some(*version)).await
            }
            Ok((_, found)) => Self::too_many("delete", found.len()),
        }
    }

    /// `PATCH [type]?query`: patches the one match.
    async fn conditional_patch(&self, request: &Request, type_name: &str) -> Response {
        match self.conditional_targets(request, type_name).await {
            Err(response) => response,
            Ok((type_name, found)) if found.len() == 1 => {
                let (id, version) = &found[0];
                let mut single = request.clone();
                if single.header("if-match").is_none() {
                    single
                        .headers
                        .push((String::from("if-match"), etag(*version)));
                }
                self.patch(&single, type_name, id).await
            }
            Ok((type_name, found)) if found.is_empty() => Response::error(
                404,
                IssueType::NotFound,
                format!("no {type_name} matches the search"),
            ),
            Ok((_, found)) => Self::too_many("patch", found.len()),
        }
    }

    /// `PATCH [type]/[id]` with a JSON Patch document (`application/json-patch+json`): the
    /// patched resource is validated and stored as an update. Without If-Match, the version
    /// patched is the one updated (a concurrent write makes it try again).
    async fn patch(&self, request: &Request, type_name: &str, id: &str) -> Response {
        let type_name = match Self::resource_type(type_name) {
            Ok(type_name) => type_name,
            Err(response) => return response,
        };
        let content_type = request.header("content-type").unwrap_or_default();
        enum Document {
            Json(crate::json::reader::Node),
            FhirPath(Object),
        }
        let document = if content_type.contains("json-patch") {
            match crate::json::reader::parse(&request.body, crate::json::reader::Limits::default())
            {
                Ok(patch) => Document::Json(patch),
                Err(err) => {
                    let (status, outcome) = crate::Error::Json(err).to_outcome();
                    return Response::outcome(status.0, &outcome);
                }
            }
        } else if content_type.contains("json") {
            match parse_resource(&request.body) {
                Ok(parameters) if parameters.type_def().name == "Parameters" => {
                    Document::FhirPath(parameters)
                }
                Ok(other) => {
                    return Response::error(
                        400,
                        IssueType::Invalid,
                        format!(
                            "a FHIRPath Patch is a Parameters resource, not {}",
                            crate::outcome::with_article(other.type_def().name)
                        ),
                    )
                }
                Err(err) => {
                    let (status, outcome) = err.to_outcome();
                    return Response::outcome(status.0, &outcome);
                }
            }
        } else {
            return Response::error(
                415,
                IssueType::NotSupported,
                format!(
                    "PATCH takes a JSON Patch document (application/json-patch+json) or a FHIRPath Patch (application/fhir+json), not \"{content_type}\""
                ),
            );
        };
        for _attempt in 0..3 {
            let read = async {
                let mut tx = self.begin(false).await?;
                let Some(current) = Self::current(&mut tx, type_name, id).await? else {
                    return Ok(None);
                };
                let stored = Self::stored(&mut tx, type_name, id, current.version).await?;
                Ok::<_, StoreError>(Some((current.version, stored)))
            }
            .await;
            let (version, json) = match read {
                Err(err) => return store_error(&err),
                Ok(None) => {
                    return Response::error(
                        404,
                        IssueType::NotFound,
                        format!("{type_name}/{id} does not exist"),
                    )
                }
                Ok(Some((version, Some(Stored::Resource(json))))) => (version, json),
                Ok(Some(_)) => {
                    return Response::error(
                        410,
                        IssueType::Deleted,
                        format!("{type_name}/{id} was deleted"),
                    )
                }
            };
            let patched = match &document {
                Document::Json(patch) => {
                    let mut tree = match crate::json::reader::parse(
                        json.as_bytes(),
                        crate::json::reader::Limits::default(),
                    ) {
                        Ok(tree) => tree,
                        Err(_) => {
                            return Response::error(
                                500,
                                IssueType::Exception,
                                "the stored resource does not parse",
                            )
                        }
                    };
                    if let Err(err) = crate::json::patch::apply(&mut tree, patch) {
                        return Response::error(
                            if err.test_failed { 422 } else { 400 },
                            if err.test_failed {
                                IssueType::Processing
                            } else {
                                IssueType::Invalid
                            },
                            format!("JSON Patch operation {}: {}", err.operation, err.message),
                        );
                    }
                    crate::json::patch::to_text(&tree)
                }
                Document::FhirPath(parameters) => match fhirpath_patch::apply(&json, parameters) {
                    Ok(patched) => patched,
                    Err(message) => {
                        return Response::error(
                            422,
                            IssueType::Processing,
                            format!("FHIRPath Patch {message}"),
                        )
                    }
                },
            };
            let mut update = request.clone();
            // Run as an update, and kept in history as the PATCH it was.
            update.method = String::from("PATCH");
            update.body = patched.into_bytes();
            let implicit = request.header("if-match").is_none();
            if implicit {
                update
                    .headers
                    .push((String::from("if-match"), etag(version)));
            }
            let response = self.update(&update, type_name, id).await;
            if !(implicit && response.status == 412) {
                return response;
            }
        }
        Response::error(
            409,
            IssueType::Conflict,
            format!("{type_name}/{id} kept changing while it was patched; try again"),
        )
    }

    /// `POST [base]/$reindex` and `POST [type]/$reindex`: indexes every current resource
    /// again, for search parameters added since it was stored.
    async fn reindex(&self, type_name: Option<&str>) -> Response {
        let types: Vec<&'static str> = match type_name {
            Some(type_name) => match Self::resource_type(type_name) {
                Ok(type_name) => alloc::vec![type_name],
                Err(response) => return response,
            },
            None => model::TYPES
                .iter()
                .filter(|def| def.is_concrete_resource())
                .map(|def| def.name)
                .collect(),
        };
        if let Err(err) = self.ensure_registry().await {
            return store_error(&err);
        }
        match self.reindex_types(&types).await {
            Ok(count) => Response::outcome(
                200,
                &OperationOutcome::information(format!("{count} resources indexed again")),
            ),
            Err(err) => store_error(&err),
        }
    }

    /// Indexes every current resource of `types` again, in one transaction; how many.
    pub(super) async fn reindex_types(&self, types: &[&str]) -> Result<usize, StoreError> {
        // Indexing reads every resource of the types: the work budget of requests is not its,
        // and the request's budget is as it was afterwards.
        let saved = self.meter.suspend();
        let result = async {
            let mut tx = self.begin(true).await?;
            let mut count = 0usize;
            // A new index layout numbers the rows again, in the order they were stored.
            let renumber = types.len() > 1;
            for type_name in types.iter().copied() {
                let ids: Vec<String> = if renumber {
                    crate::search::ids_in_stored_order(&mut tx, type_name).await?
                } else {
                    crate::search::current_ids(&mut tx, type_name)
                        .await?
                        .into_iter()
                        .collect()
                };
                crate::search::clear_index(&mut tx, type_name, renumber).await?;
                for id in ids {
                    let Some(json) = crate::search::load_json(&mut tx, type_name, &id).await?
                    else {
                        continue;
                    };
                    let Ok(resource) = parse_resource(json.as_bytes()) else {
                        continue;
                    };
                    let entries = self.registry().extract(&resource, &self.base_url);
                    crate::search::write_index(&mut tx, type_name, &id, &Vec::new(), &entries)
                        .await?;
                    count += 1;
                }
            }
            if types.len() > 1 {
                tx.put(
                    crate::search::INDEX_FORMAT_KEY.to_vec(),
                    crate::search::INDEX_FORMAT.as_bytes().to_vec(),
                );
            }
            tx.commit().await?;
            Ok::<_, StoreError>(count)
        }
        .await;
        self.meter.resume(saved);
        result
    }

    /// A new logical id from the host's id source (a 500 when it gives an invalid one).
    fn new_id(&self) -> Result<String, Response> {
        let id = self.ids.next_id();
        if is_valid_id(&id) {
            Ok(id)
        } else {
            Err(Response::error(
                500,
                IssueType::Exception,
                "the id source gave an invalid id",
            ))
        }
    }

    /// The search parameters in force now.
    fn registry(&self) -> alloc::rc::Rc<crate::search::Registry> {
        self.search.borrow().clone()
    }

    /// The core search parameters, without those stored.
    pub(crate) fn core_registry(&self) -> alloc::rc::Rc<crate::search::Registry> {
        alloc::rc::Rc::clone(&self.core_search)
    }

    /// The search parameters in force (the core ones and those stored).
    pub(crate) fn search_registry(&self) -> alloc::rc::Rc<crate::search::Registry> {
        self.registry()
    }

    /// `$validate`: the body is the resource (or a Parameters with a `resource` parameter);
    /// the answer is an OperationOutcome, 200 whatever it finds.
    fn validate_operation(&self, request: &Request, type_name: &str, id: Option<&str>) -> Response {
        let type_name = match Self::resource_type(type_name) {
            Ok(type_name) => type_name,
            Err(response) => return response,
        };
        let resource = match parse_resource(&request.body) {
            Ok(resource) => resource,
            Err(err) => {
                let (_, outcome) = err.to_outcome();
                return Response::outcome(200, &outcome);
            }
        };
        let (resource, profile) =
            if resource.type_def().name == "Parameters" && type_name != "Parameters" {
                let mut found = None;
                let mut profile = None;
                for parameter in resource.objects("parameter") {
                    match parameter.text("name") {
                        Some("resource") => {
                            found = parameter.objects("resource").next().cloned().or(found);
                        }
                        Some("profile") => {
                            profile = parameter.text("value").map(ToString::to_string).or(profile);
                        }
                        _ => {}
                    }
                }
                match found {
                Some(found) => (found, profile),
                None => return Response::error(
                    400,
                    IssueType::Required,
                    "expected a Parameters with a \"resource\" parameter, or the resource itself",
                ),
            }
            } else {
                let profile = request
                    .query
                    .iter()
                    .find(|(name, _)| name == "profile")
                    .map(|(_, value)| value.clone());
                (resource, profile)
            };
        let found = resource.type_def().name;
        if found != type_name {
            return Response::error(
                400,
                IssueType::Invalid,
                format!(
                    "expected {} resource, found {}",
                    crate::outcome::with_article(type_name),
                    crate::outcome::with_article(found)
                ),
            );
        }
        if let (Some(id), Some(body_id)) = (id, resource.id()) {
            if id != body_id {
                return Response::error(
                    400,
                    IssueType::Invalid,
                    format!(
                        "the resource's id \"{body_id}\" differs from the id in the URL, \"{id}\""
                    ),
                );
            }
        }
        let options = ValidateOptions {
            profiles: Some(&self.profiles),
            profile: profile.as_deref(),
            ..ValidateOptions::default()
        };
        let findings = self
            .validator
            .borrow_mut()
            .validate_with(&resource, &options);
        let outcome = if resource_is_body(&request.body, found) {
            validation::to_outcome_in(&findings, &request.body)
        } else {
            validation::to_outcome(&findings)
        };
        Response::outcome(200, &outcome)
    }
}

/// The parameters of a history interaction.
struct HistoryParams {
    count: usize,
    /// `_since`: versions written at or after this instant (milliseconds since 1970).
    since: Option<i64>,
    /// `_at`: versions current at some point of this range.
    at: Option<(i64, i64)>,
    /// `_cursor`: for type and system history, the page that continues below this write-log
    /// sequence number (from a `next` link).
    cursor: Option<u64>,
}

/// Whether a history walk (newest first) takes a version.
enum Admit {
    Yes,
    No,
    /// No older version can be taken.
    Stop,
}

impl HistoryParams {
    /// A version written at `written`, whose resource's next version was written at `newer`.
    fn admits(&self, written: Option<i64>, newer: Option<i64>) -> Admit {
        let Some(written) = written else {
            return Admit::Yes;
        };
        if self.since.is_some_and(|since| written < since) {
            return Admit::Stop;
        }
        match self.at {
            Some((low, high)) => {
                if written <= high && newer.is_none_or(|newer| newer > low) {
                    Admit::Yes
                } else {
                    Admit::No
                }
            }
            None => Admit::Yes,
        }
    }
}

fn history_params(request: &Request) -> Result<HistoryParams, Response> {
    let mut params = HistoryParams {
        count: 100,
        since: None,
        at: None,
        cursor: None,
    };
    for (name, value) in &request.query {
        match name.as_str() {
            "_count" => params.count = count_param(value)?,
            "_since" => {
                params.since = crate::fhirpath::Temporal::parse(value, None)
                    .filter(|at| at.hour.is_some() && at.offset.is_some())
                    .and_then(|at| crate::search::index::temporal_range(&at))
                    .map(|(low, _)| low);
                if params.since.is_none() {
                    return Err(Response::error(
                        400,
                        IssueType::Invalid,
                        format!("_since must be an instant, not \"{value}\""),
                    ));
                }
            }
            "_at" => {
                params.at = crate::search::index::date_text_range(value);
                if params.at.is_none() {
                    return Err(Response::error(
                        400,
                        IssueType::Invalid,
                        format!("_at must be a date, dateTime or instant, not \"{value}\""),
                    ));
                }
            }
            "_cursor" => {
                params.cursor = Some(value.parse().map_err(|_| {
                    Response::error(
                        400,
                        IssueType::Invalid,
                        format!("_cursor must be the number a next link gives, not \"{value}\""),
                    )
                })?);
            }
            "_format" | "_pretty" => {}
            other => {
                return Err(Response::error(
                    400,
                    IssueType::NotSupported,
                    format!("the history parameter \"{other}\" is not supported"),
                ))
            }
        }
    }
    Ok(params)
}

/// When a stored version was written: a delete's instant, or the resource's lastUpdated.
fn stored_instant(value: &[u8]) -> Option<i64> {
    let text = core::str::from_utf8(value).ok()?;
    let instant = match text.split_at_checked(1)? {
        ("D", at) => at,
        (_, json) => {
            let marker = "\"lastUpdated\":\"";
            let start = json.find(marker)? + marker.len();
            let rest = json.get(start..)?;
            rest.get(..rest.find('"')?)?
        }
    };
    crate::search::index::date_text_range(instant).map(|(low, _)| low)
}

/// The diagnostics of an error response, for wrapping in another.
fn outcome_text(response: &Response) -> String {
    let text = crate::json::reader::parse(response.body.as_bytes(), Default::default())
        .map(|node| crate::sync::wire::outcome_text(&node))
        .unwrap_or_default();
    if text.is_empty() {
        format!("status {}", response.status)
    } else {
        text
    }
}

/// Seconds since 1970 of an HTTP date (`Fri, 27 Nov 2026 10:20:30 GMT`, RFC 9110 IMF-fixdate).
fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace().skip(1);
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    if parts.next()? != "GMT" {
        return None;
    }
    let instant = format!("{year:04}-{month:02}-{day:02}T{time}Z");
    crate::search::index::date_text_range(&instant).map(|(low, _)| low.div_euclid(1000))
}

/// A query string from decoded pairs.
fn query_string(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                search::encode_component(name),
                search::encode_component(value)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// True when the request body is the resource itself (not wrapped in Parameters), so that
/// line and column point into it.
fn resource_is_body(body: &[u8], type_name: &str) -> bool {
    crate::json::inspect(body).is_ok_and(|summary| summary.resource_type == type_name)
}

/// What the answer to a write holds, as `Prefer: return=` asks (for a batch or transaction,
/// of each resource it writes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WrittenBack {
    /// The stored resource (the default, `return=representation`).
    Resource,
    /// Nothing (`return=minimal`).
    Minimal,
    /// An OperationOutcome saying it was stored (`return=OperationOutcome`).
    Outcome,
}

impl WrittenBack {
    pub(crate) fn asked(request: &Request) -> WrittenBack {
        let prefer = request.header("prefer").unwrap_or_default();
        if prefer.contains("return=minimal") {
            WrittenBack::Minimal
        } else if prefer.contains("return=OperationOutcome") {
            WrittenBack::Outcome
        } else {
            WrittenBack::Resource
        }
    }
}

/// The OperationOutcome of `Prefer: return=OperationOutcome` for a stored version.
pub(crate) fn stored_outcome(type_name: &str, id: &str, version: u64) -> OperationOutcome {
    OperationOutcome::information(format!("{type_name}/{id} version {version} stored"))
}

#[cfg(test)]
mod tests {
    /// Version keys of stored data must be found again: the text is what `{:020}` wrote.
    #[test]
    fn padded_numbers_are_those_stored_keys_hold() {
        for number in [0, 1, 9, 10, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(super::padded20(number), alloc::format!("{number:020}"));
        }
    }
}

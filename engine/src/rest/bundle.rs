//! Batch and transaction: a Bundle posted to the base.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{
    is_valid_id, key, stored_outcome, version_key, Current, Request, Response, Service, Stored,
    WrittenBack,
};
use crate::json::fhir::parse_resource;
use crate::json::write::{write_resource, Style};
use crate::outcome::{IssueType, Severity};
use crate::resource::{Object, PrimitiveValue, Value};
use crate::store::{Store, StoreError, Transaction};
use crate::validation::{self, ValidateOptions};

/// One entry of the request Bundle.
pub(crate) struct Entry {
    method: String,
    url: String,
    full_url: Option<String>,
    if_match: Option<String>,
    if_none_exist: Option<String>,
    resource: Option<Object>,
}

impl Entry {
    /// The request the entry stands for, as if sent alone: its method, its URL relative to
    /// `base` with the query decoded, `ifMatch` and `ifNoneExist` as headers, the resource as
    /// body, and the headers of the Bundle's own request that apply to each entry.
    pub(crate) fn request(&self, base: &str, outer: &Request) -> Request {
        let (path, query) = self.url.split_once('?').unwrap_or((&self.url, ""));
        let mut headers: Vec<(String, String)> = outer
            .headers
            .iter()
            .filter(|(name, _)| {
                ["x-validation", "prefer", "host", "origin"]
                    .iter()
                    .any(|kept| name.eq_ignore_ascii_case(kept))
            })
            .cloned()
            .collect();
        if let Some(if_match) = &self.if_match {
            headers.push((String::from("if-match"), if_match.clone()));
        }
        if let Some(if_none_exist) = &self.if_none_exist {
            headers.push((String::from("if-none-exist"), if_none_exist.clone()));
        }
        Request {
            method: self.method.to_ascii_uppercase(),
            path: relative(path, base),
            query: super::search::query_pairs(query, false),
            headers,
            body: self
                .resource
                .as_ref()
                .map(|resource| write_resource(resource, Style::Compact).into_bytes())
                .unwrap_or_default(),
        }
    }

    /// Whether the entry may read AuditEvents, as its request would alone
    /// ([`super::records::may_read_records`]); its `ifNoneExist` is taken as a query too.
    fn may_read_records(&self, base: &str) -> bool {
        let (path, query) = self.url.split_once('?').unwrap_or((&self.url, ""));
        let mut query = super::search::query_pairs(query, false);
        if let Some(criteria) = &self.if_none_exist {
            let criteria = criteria
                .split_once('?')
                .map_or(criteria.as_str(), |(_, query)| query);
            query.extend(super::search::query_pairs(criteria, false));
        }
        super::records::may_read_records(&Request {
            method: self.method.to_ascii_uppercase(),
            path: relative(path, base),
            query,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

/// The entries of a batch or transaction Bundle; the index of the first without `request`.
pub(crate) fn entries_of(bundle: &Object) -> Result<Vec<Entry>, usize> {
    let mut entries = Vec::new();
    for (index, entry) in bundle.values("entry").enumerate() {
        let Value::Complex(entry) = entry else {
            continue;
        };
        let Some(entry_request) = entry.objects("request").next() else {
            return Err(index);
        };
        entries.push(Entry {
            method: entry_request.text("method").unwrap_or_default().to_string(),
            url: entry_request.text("url").unwrap_or_default().to_string(),
            full_url: entry.text("fullUrl").map(ToString::to_string),
            if_match: entry_request.text("ifMatch").map(ToString::to_string),
            if_none_exist: entry_request.text("ifNoneExist").map(ToString::to_string),
            resource: entry.values("resource").find_map(|value| match value {
                Value::Resource(resource) => Some(resource.clone()),
                _ => None,
            }),
        });
    }
    Ok(entries)
}

/// [`entries_of`] a Bundle no longer needed: each entry's resource is moved out of it, not
/// copied.
fn take_entries(mut bundle: Object) -> Result<Vec<Entry>, usize> {
    let position = |object: &Object, name: &str| {
        object
            .type_def()
            .elements
            .iter()
            .position(|element| element.name == name)
    };
    let entry_element = position(&bundle, "entry");
    // One for each entry `entries_of` reads (those that are objects), in order.
    let mut resources: Vec<Option<Object>> = Vec::new();
    for field in &mut bundle.fields {
        if entry_element != Some(usize::from(field.element)) {
            continue;
        }
        let Value::Complex(entry) = &mut field.value else {
            continue;
        };
        let resource_element = position(entry, "resource");
        let resource = entry
            .fields
            .iter_mut()
            .find(|field| {
                resource_element == Some(usize::from(field.element))
                    && matches!(field.value, Value::Resource(_))
            })
            .map(|field| {
                let empty = Value::Primitive(crate::resource::Primitive {
                    value: None,
                    companion: None,
                });
                core::mem::replace(&mut field.value, empty)
            });
        resources.push(match resource {
            Some(Value::Resource(resource)) => Some(resource),
            _ => None,
        });
    }
    let mut entries = entries_of(&bundle)?;
    for (entry, resource) in entries.iter_mut().zip(resources) {
        entry.resource = resource;
    }
    Ok(entries)
}

/// A Bundle posted to the base, read.
pub(crate) struct ReadBundle {
    /// `Bundle.type`.
    kind: String,
    n_entries: usize,
    /// The entries, or the index of the first without `request`.
    entries: Result<Vec<Entry>, usize>,
    /// By entry, the errors validation found in its resource as read, when it was validated
    /// ahead ([`Service::prepare`]); empty otherwise.
    validated: Vec<Option<Vec<validation::Finding>>>,
}

impl ReadBundle {
    /// Reads `body`: an error response when it is not a Bundle.
    fn of(body: &[u8]) -> Result<ReadBundle, Response> {
        let bundle = match parse_resource(body) {
            Ok(bundle) => bundle,
            Err(err) => {
                let (status, outcome) = err.to_outcome();
                return Err(Response::outcome(status.0, &outcome));
            }
        };
        if bundle.type_def().name != "Bundle" {
            return Err(Response::error(
                400,
                IssueType::Invalid,
                "expected a batch or transaction Bundle at the base URL",
            ));
        }
        Ok(ReadBundle {
            kind: bundle.text("type").unwrap_or_default().to_string(),
            n_entries: bundle.values("entry").count(),
            entries: take_entries(bundle),
            validated: Vec::new(),
        })
    }
}

/// A request body read ahead of its request ([`Service::prepare`]).
pub(crate) struct Prepared {
    body: Vec<u8>,
    read: ReadBundle,
}

/// What a transaction entry did.
struct Done {
    status: &'static str,
    location: Option<String>,
    version: Option<u64>,
    last_modified: Option<String>,
    resource: Option<String>,
    /// For `Prefer: return=OperationOutcome`: the outcome of a write, as JSON.
    outcome: Option<String>,
}

/// Rewrites every `Reference.reference` found in `map` (a bundle's `fullUrl` → `Type/id`).
fn rewrite_references(object: &mut Object, map: &BTreeMap<String, String>) {
    if object.type_def().name == "Reference" {
        if let Some(target) = object.text("reference") {
            if let Some(new) = map.get(target) {
                let new = new.clone();
                object.set_text("reference", new);
            }
        }
    }
    let elements = object.type_def().elements;
    for field in &mut object.fields {
        // uri-like elements that hold a bundle's full URL are links too (R4 §2.36.4.1).
        let uri_like = elements
            .get(usize::from(field.element))
            .and_then(|element| element.types.get(usize::from(field.choice)))
            .is_some_and(|element_type| {
                matches!(
                    crate::model::type_def(element_type.type_id).name,
                    "uri" | "url" | "canonical" | "uuid" | "oid"
                )
            });
        match &mut field.value {
            Value::Complex(inner) => rewrite_references(inner, map),
            Value::Resource(inner) => rewrite_references(inner, map),
            Value::Primitive(primitive) => {
                if uri_like {
                    if let Some(PrimitiveValue::String(value)) = &mut primitive.value {
                        if let Some(new) = map.get(value.as_str()) {
                            *value = new.clone();
                        }
                    }
                }
                if let Some(companion) = primitive.companion.as_deref_mut() {
                    rewrite_references(companion, map);
                }
            }
        }
    }
}

/// The first `urn:uuid:` or `urn:oid:` reference in `object`: after rewriting, one that names
/// no entry of the transaction.
fn urn_reference(object: &Object) -> Option<String> {
    if object.type_def().name == "Reference" {
        if let Some(target) = object.text("reference") {
            if target.starts_with("urn:uuid:") || target.starts_with("urn:oid:") {
                return Some(target.to_string());
            }
        }
    }
    object.fields.iter().find_map(|field| match &field.value {
        Value::Complex(inner) => urn_reference(inner),
        // A Bundle inside a resource (a document, a collection) has entries and full URLs of
        // its own.
        Value::Resource(inner) if inner.type_def().name == "Bundle" => None,
        Value::Resource(inner) => urn_reference(inner),
        Value::Primitive(_) => None,
    })
}

/// Every reference by search (`Organization?identifier=...`) in `object`.
fn conditional_references(object: &Object, out: &mut Vec<String>) {
    if object.type_def().name == "Reference" {
        if let Some(target) = object.text("reference") {
            if !target.starts_with('#') && !target.contains("://") && target.contains('?') {
                out.push(target.to_string());
            }
        }
    }
    for field in &object.fields {
        match &field.value {
            Value::Complex(inner) => conditional_references(inner, out),
            Value::Resource(inner) => conditional_references(inner, out),
            Value::Primitive(_) => {}
        }
    }
}

/// `url` relative to the service's base: `http://base/fhir/Patient/1` and `Patient/1` both
/// give `Patient/1`; a URL that only starts like the base (`http://base/fhirPatient`) is kept.
pub(crate) fn relative(url: &str, base: &str) -> String {
    let rest = match url.strip_prefix(base) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => url,
    };
    rest.trim_matches('/').to_string()
}

fn entry_error(index: usize, status: u16, code: IssueType, message: impl Into<String>) -> Response {
    Response::error(status, code, format!("entry {index}: {}", message.into()))
}

impl<S: Store> Service<S> {
    /// `POST [base]` with a batch or transaction Bundle.
    /// Reads a transaction Bundle ahead of its request: the next request with this body takes
    /// the entries read here and, with `validate`, what validation found in their resources,
    /// instead of reading them again. Nothing of the store is touched, so that a host may call
    /// this while another request waits on its store (an import reads its next batch while
    /// the one before commits). Only the last body read ahead is kept; one that is not a
    /// transaction Bundle within the limits is not kept, and its request reads it as always.
    pub fn prepare(&self, body: &[u8], validate: bool) {
        // A body its request would refuse for its size is not read.
        if body.len() > self.limits.max_body_bytes {
            self.prepared.borrow_mut().take();
            return;
        }
        let Ok(read) = ReadBundle::of(body) else {
            self.prepared.borrow_mut().take();
            return;
        };
        let Ok(entries) = &read.entries else {
            self.prepared.borrow_mut().take();
            return;
        };
        if read.kind != "transaction" || read.n_entries > self.limits.max_entries {
            self.prepared.borrow_mut().take();
            return;
        }
        let validated = if validate {
            entries
                .iter()
                .map(|entry| {
                    let writes = entry.method.eq_ignore_ascii_case("POST")
                        || entry.method.eq_ignore_ascii_case("PUT");
                    entry
                        .resource
                        .as_ref()
                        .filter(|_| writes)
                        .map(|resource| self.validation_errors(resource))
                })
                .collect()
        } else {
            Vec::new()
        };
        *self.prepared.borrow_mut() = Some(Prepared {
            body: body.to_vec(),
            read: ReadBundle { validated, ..read },
        });
    }

    /// The errors validation finds in `resource`, against the base specification and the
    /// profiles loaded.
    fn validation_errors(&self, resource: &Object) -> Vec<validation::Finding> {
        let options = ValidateOptions {
            profiles: Some(&self.profiles),
            ..ValidateOptions::default()
        };
        self.validator
            .borrow_mut()
            .validate_with(resource, &options)
            .into_iter()
            .filter(|finding| finding.severity == Severity::Error)
            .collect()
    }

    pub(super) async fn bundle(&self, request: &Request) -> Response {
        // What [`Service::prepare`] read of this very body, if it did.
        let prepared = {
            let mut slot = self.prepared.borrow_mut();
            match slot.take() {
                Some(prepared) if prepared.body == request.body => Some(prepared.read),
                _ => None,
            }
        };
        let read = match prepared {
            Some(read) => read,
            None => match ReadBundle::of(&request.body) {
                Ok(read) => read,
                Err(response) => return response,
            },
        };
        let ReadBundle {
            kind,
            n_entries,
            entries,
            validated,
        } = read;
        if n_entries > self.limits.max_entries {
            return super::limits::too_costly(
                "maxEntries",
                format!(
                    "the Bundle has {n_entries} entries, more than the {} allowed",
                    self.limits.max_entries
                ),
            );
        }
        let entries = match entries {
            Ok(entries) => entries,
            Err(index) => {
                return entry_error(index, 400, IssueType::Required, "expected entry.request")
            }
        };
        // Audit records are stored as AuditEvents before an entry that may read them.
        if entries
            .iter()
            .any(|entry| entry.may_read_records(&self.base_url))
        {
            if let Err(err) = self.flush_records().await {
                return super::store_error(&err);
            }
        }
        match kind.as_str() {
            "batch" => self.batch(request, entries).await,
            "transaction" => self.transaction(request, entries, validated).await,
            other => Response::error(
                400,
                IssueType::Invalid,
                format!("expected a Bundle of type batch or transaction, found \"{other}\""),
            ),
        }
    }

    /// Each entry on its own, as if sent alone.
    async fn batch(&self, request: &Request, entries: Vec<Entry>) -> Response {
        let mut answers: Vec<String> = Vec::new();
        // Bytes of the answers so far: once they pass the response limit, the remaining
        // entries are answered with an OperationOutcome each instead of being run.
        let mut answered_bytes = 0usize;
        let max_bytes = self.limits.max_response_bytes;
        for (index, entry) in entries.into_iter().enumerate() {
            if answered_bytes > max_bytes {
                answers.push(response_entry(&super::limits::too_costly(
                    "maxResponseBytes",
                    format!(
                        "entry {index} was not run: the answers before it already fill the {max_bytes} bytes a response may have"
                    ),
                )));
                continue;
            }
            let single = entry.request(&self.base_url, request);
            let path = single.path.clone();
            let segments: Vec<&str> = if path.is_empty() {
                Vec::new()
            } else {
                path.split('/').collect()
            };
            let response = if segments.is_empty() {
                Response::error(
                    400,
                    IssueType::NotSupported,
                    "a batch cannot contain a batch",
                )
            } else if let Some(refusal) = self.limits.check_request(&single, &[]) {
                refusal
            } else if segments.last().is_some_and(|last| *last == "$reindex") {
                Response::error(
                    400,
                    IssueType::NotSupported,
                    "$reindex runs on its own, not as an entry of a batch",
                )
            } else if segments
                .iter()
                .any(|segment| *segment == "." || *segment == "..")
            {
                Response::error(
                    400,
                    IssueType::Invalid,
                    format!("the url {} has a \".\" or \"..\" segment", entry.url),
                )
            } else {
                self.single(&single, &single.method, &path, &segments).await
            };
            let mut answer = response_entry(&response);
            if answered_bytes.saturating_add(answer.len()) > max_bytes {
                answer = response_entry(&super::limits::too_costly(
                    "maxResponseBytes",
                    format!(
                        "the answer to entry {index} ({} bytes) would pass the {max_bytes} bytes a response may have",
                        answer.len()
                    ),
                ));
                // The entries after it are not run.
                answered_bytes = max_bytes.saturating_add(1);
            } else {
                answered_bytes += answer.len();
            }
            answers.push(answer);
        }
        Response::json(
            200,
            format!(
                r#"{{"resourceType":"Bundle","type":"batch-response"{}}}"#,
                entries_json(&answers)
            ),
        )
    }

    /// All entries in one store transaction, in the order DELETE, POST, PUT, GET (R4
    /// §3.1.0.11.2), with `urn:uuid:` and other full URLs of the bundle rewritten in
    /// references; any failure leaves the store as it was.
    ///
    /// `validated` holds, by entry, the errors validation found in its resource as read, when
    /// [`Service::prepare`] validated it.
    async fn transaction(
        &self,
        request: &Request,
        mut entries: Vec<Entry>,
        mut validated: Vec<Option<Vec<validation::Finding>>>,
    ) -> Response {
        let written_back = WrittenBack::asked(request);
        // Ids first, so that references can be rewritten before anything is stored.
        let mut targets: Vec<Option<(String, String)>> = Vec::new();
        let mut full_urls: BTreeSet<&str> = BTreeSet::new();
        // Targets written so far, for the check that no two entries write one resource.
        let mut write_targets: BTreeSet<(String, String)> = BTreeSet::new();
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        // The search of each conditional entry: ifNoneExist, or the query of a conditional
        // update or delete.
        let mut conditions: Vec<Option<String>> = Vec::new();
        for (index, entry) in entries.iter_mut().enumerate() {
            entry.method = entry.method.to_ascii_uppercase();
            let (url_path, url_query) = match entry.url.split_once('?') {
                Some((path, query)) => (path.to_string(), Some(query.to_string())),
                None => (entry.url.clone(), None),
            };
            if url_query.is_some() && !matches!(entry.method.as_str(), "PUT" | "DELETE") {
                return entry_error(
                    index,
                    400,
                    IssueType::NotSupported,
                    format!(
                        "{} with a query is not a transaction entry Hearth supports",
                        entry.method
                    ),
                );
            }
            conditions.push(if entry.method == "POST" {
                entry.if_none_exist.clone()
            } else {
                url_query.clone()
            });
            let url = relative(&url_path, &self.base_url);
            let parts: Vec<&str> = url.split('/').collect();
            let (type_name, id) = match parts.as_slice() {
                [type_name] => (*type_name, None),
                [type_name, id] => (*type_name, Some(*id)),
                _ => {
                    return entry_error(
                        index,
                        400,
                        IssueType::NotSupported,
                        format!(
                            "{} {url} is not a transaction entry Hearth supports",
                            entry.method
                        ),
                    )
                }
            };
            let type_name = match Self::resource_type(type_name) {
                Ok(type_name) => type_name,
                Err(_) => {
                    return entry_error(
                        index,
                        404,
                        IssueType::NotSupported,
                        format!("\"{url}\" names no R4 resource type"),
                    )
                }
            };
            let target = match (entry.method.as_str(), id) {
                ("POST", None) => (type_name.to_string(), String::new()),
                ("PUT" | "DELETE", None) if url_query.is_some() => {
                    (type_name.to_string(), String::new())
                }
                ("PUT" | "DELETE" | "GET", Some(id)) if is_valid_id(id) => {
                    (type_name.to_string(), id.to_string())
                }
                (method, _) => {
                    return entry_error(
                        index,
                        400,
                        IssueType::NotSupported,
                        format!("{method} {url} is not a transaction entry Hearth supports"),
                    )
                }
            };
            let writes = |method: &str| method != "GET";
            if writes(&entry.method)
                && !target.1.is_empty()
                && !write_targets.insert(target.clone())
            {
                return entry_error(
                    index,
                    400,
                    IssueType::Invalid,
                    format!("{}/{} is the subject of two entries", target.0, target.1),
                );
            }
            if let Some(full_url) = &entry.full_url {
                if !full_urls.insert(full_url) {
                    return entry_error(
                        index,
                        400,
                        IssueType::Invalid,
                        format!("the fullUrl {full_url} is used by two entries (bdl-7)"),
                    );
                }
            }
            targets.push(Some(target));
        }
        // Conditional entries and references resolved by search, before anything is written.
        let mut skip: Vec<bool> = entries.iter().map(|_| false).collect();
        let mut wanted: Vec<String> = Vec::new();
        for entry in &entries {
            if let Some(resource) = &entry.resource {
                conditional_references(resource, &mut wanted);
            }
        }
        // A conditional reference given many times is resolved once.
        wanted.sort_unstable();
        wanted.dedup();
        if conditions.iter().any(Option::is_some) || !wanted.is_empty() {
            if let Err(err) = self.ensure_registry().await {
                return super::store_error(&err);
            }
            let mut tx = match self.begin(false).await {
                Ok(tx) => tx,
                Err(err) => return super::store_error(&err),
            };
            for (index, condition) in conditions.iter().enumerate() {
                let (Some(query), Some(Some(target)), Some(entry)) =
                    (condition, targets.get_mut(index), entries.get(index))
                else {
                    continue;
                };
                let ids = match self.conditional_matches(&mut tx, &target.0, query).await {
                    Ok(ids) => ids,
                    Err(response) => {
                        return entry_error(
                            index,
                            response.status,
                            IssueType::Invalid,
                            super::outcome_text(&response),
                        )
                    }
                };
                match (entry.method.as_str(), ids.as_slice()) {
                    (_, [_, _, ..]) => {
                        return entry_error(
                            index,
                            412,
                            IssueType::Duplicate,
                            format!("the search \"{query}\" matches {} resources", ids.len()),
                        )
                    }
                    ("POST", [id]) => {
                        target.1 = id.clone();
                        skip[index] = true;
                    }
                    ("DELETE", []) => skip[index] = true,
                    ("PUT", []) => {
                        if let Some(body_id) = entry.resource.as_ref().and_then(Object::id) {
                            if !is_valid_id(body_id) {
                                return entry_error(
                                    index,
                                    400,
                                    IssueType::Invalid,
                                    "the resource's id is not a valid id",
                                );
                            }
                            target.1 = body_id.to_string();
                        }
                    }
                    (_, [id]) => target.1 = id.clone(),
                    _ => {}
                }
            }
            for reference in wanted {
                let (type_name, query) = reference.split_once('?').unwrap_or((&reference, ""));
                if crate::model::resource_type(type_name).is_none() {
                    return Response::error(
                        400,
                        IssueType::Invalid,
                        format!("the conditional reference \"{reference}\" names no resource type"),
                    );
                }
                match self.conditional_matches(&mut tx, type_name, query).await {
                    Ok(ids) if ids.len() == 1 => {
                        map.entry(reference.clone())
                            .or_insert_with(|| format!("{type_name}/{}", ids[0]));
                    }
                    Ok(ids) => {
                        return Response::error(
                            412,
                            IssueType::Duplicate,
                            format!(
                                "the conditional reference \"{reference}\" matches {} resources; it must match one",
                                ids.len()
                            ),
                        )
                    }
                    Err(response) => return response,
                }
            }
        }
        // New ids for creates, then the map from full URLs to what they will be.
        for target in targets.iter_mut().flatten() {
            if target.1.is_empty() {
                target.1 = match self.new_id() {
                    Ok(id) => id,
                    Err(response) => return response,
                };
            }
        }
        // Entries that resolved to one resource (a conditional one included) fail the
        // transaction (R4 §3.1.0.11.2).
        let mut written: BTreeSet<(&str, &str)> = BTreeSet::new();
        for (index, (entry, target)) in entries.iter().zip(&targets).enumerate() {
            let (Some((type_name, id)), false) = (target, skip[index]) else {
                continue;
            };
            if entry.method == "GET" {
                continue;
            }
            if !written.insert((type_name.as_str(), id.as_str())) {
                return entry_error(
                    index,
                    400,
                    IssueType::Invalid,
                    format!("{type_name}/{id} is the subject of two entries"),
                );
            }
        }
        for (entry, target) in entries.iter().zip(&targets) {
            if let (Some(full_url), Some((type_name, id))) = (&entry.full_url, target) {
                map.entry(full_url.clone())
                    .or_insert_with(|| format!("{type_name}/{id}"));
            }
        }
        // Resources: references rewritten, then read and validated as a single write would be.
        let validate = !request.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("x-validation") && value.eq_ignore_ascii_case("off")
        });
        for (index, (entry, target)) in entries.iter_mut().zip(&targets).enumerate() {
            let Some((type_name, id)) = target else {
                continue;
            };
            if !matches!(entry.method.as_str(), "POST" | "PUT") || skip[index] {
                continue;
            }
            let Some(resource) = entry.resource.as_mut() else {
                return entry_error(index, 400, IssueType::Required, "expected a resource");
            };
            if resource.type_def().name != type_name {
                return entry_error(
                    index,
                    400,
                    IssueType::Invalid,
                    format!(
                        "expected {}, found {}",
                        crate::outcome::with_article(type_name),
                        crate::outcome::with_article(resource.type_def().name)
                    ),
                );
            }
            if entry.method == "PUT" && resource.id().is_some_and(|body_id| body_id != id) {
                return entry_error(
                    index,
                    400,
                    IssueType::Invalid,
                    "the resource's id differs from the id in the URL",
                );
            }
            rewrite_references(resource, &map);
            let checked = resource.type_def().name != "Bundle";
            if let Some(urn) = urn_reference(resource).filter(|_| checked) {
                return entry_error(
                    index,
                    400,
                    IssueType::Invalid,
                    format!("the reference \"{urn}\" names no entry of the transaction"),
                );
            }
            let mut unresolved = Vec::new();
            conditional_references(resource, &mut unresolved);
            if let Some(conditional) = unresolved.first() {
                return entry_error(
                    index,
                    412,
                    IssueType::Duplicate,
                    format!("the conditional reference \"{conditional}\" was not resolved"),
                );
            }
            if validate {
                // Validated ahead when the resource was read, unless references were
                // rewritten since.
                let ahead = validated
                    .get_mut(index)
                    .and_then(Option::take)
                    .filter(|_| map.is_empty());
                let errors: Vec<validation::Finding> = ahead
                    .unwrap_or_else(|| self.validation_errors(resource))
                    .into_iter()
                    .map(|mut finding| {
                        finding.path = format!(
                            "Bundle.entry[{index}].resource{}",
                            finding.path.get(type_name.len()..).unwrap_or_default()
                        );
                        finding
                    })
                    .collect();
                if !errors.is_empty() {
                    return Response::outcome(422, &validation::to_outcome(&errors));
                }
            }
        }
        let order = |method: &str| match method {
            "DELETE" => 0,
            "POST" => 1,
            "PUT" => 2,
            _ => 3,
        };
        let mut sequence: Vec<usize> = (0..entries.len()).collect();
        sequence.sort_by_key(|&idx| entries.get(idx).map_or(3, |entry| order(&entry.method)));
        let result = async {
            let mut tx = self.begin(true).await?;
            // Every entry reads its resource's current version and row number: ask for all
            // of them at once.
            let ahead: Vec<Vec<u8>> = targets
                .iter()
                .flatten()
                .flat_map(|(type_name, id)| {
                    [
                        key(&["c", type_name, id]),
                        crate::search::row_key(type_name, id),
                    ]
                })
                .collect();
            tx.prefetch(&ahead).await?;
            let mut done: Vec<Option<Done>> = entries.iter().map(|_| None).collect();
            let mut read_bytes = 0usize;
            for idx in sequence {
                let (Some(entry), Some(Some((type_name, id)))) =
                    (entries.get_mut(idx), targets.get(idx))
                else {
                    continue;
                };
                if skip[idx] {
                    // ifNoneExist matched, or a conditional delete matched nothing.
                    let found = entry.method == "POST";
                    if let Some(slot) = done.get_mut(idx) {
                        *slot = Some(Done {
                            status: if found { "200 OK" } else { "204 No Content" },
                            location: found.then(|| format!("{type_name}/{id}")),
                            version: None,
                            last_modified: None,
                            resource: None,
                            outcome: None,
                        });
                    }
                    continue;
                }
                let current = Self::current(&mut tx, type_name, id).await?;
                if let Some(if_match) = &entry.if_match {
                    let live = current
                        .as_ref()
                        .filter(|current| !current.deleted)
                        .map(|current| current.version);
                    let wanted = super::etag_version(if_match);
                    if wanted.is_none() || live != wanted {
                        return Ok(Err(entry_error(
                            idx,
                            412,
                            IssueType::Conflict,
                            format!("If-Match {if_match} does not match {type_name}/{id}"),
                        )));
                    }
                }
                let outcome = match entry.method.as_str() {
                    "DELETE" => {
                        let now = self.clock.now();
                        match current.filter(|current| !current.deleted) {
                            Some(Current { version, .. }) => {
                                tx.put(
                                    version_key(type_name, id, version + 1),
                                    format!("D{now}").into_bytes(),
                                );
                                tx.put(
                                    key(&["c", type_name, id]),
                                    format!("{}\0deleted", version + 1).into_bytes(),
                                );
                                self.log_write(&mut tx, type_name, id, version + 1, &now, None)
                                    .await?;
                                Done {
                                    status: "204 No Content",
                                    location: None,
                                    version: Some(version + 1),
                                    last_modified: Some(now),
                                    resource: None,
                                    outcome: None,
                                }
                            }
                            None => Done {
                                status: "204 No Content",
                                location: None,
                                version: None,
                                last_modified: None,
                                resource: None,
                                outcome: None,
                            },
                        }
                    }
                    "POST" | "PUT" => {
                        let Some(resource) = entry.resource.as_mut() else {
                            continue;
                        };
                        if entry.method == "POST" && current.is_some() {
                            return Ok(Err(entry_error(
                                idx,
                                409,
                                IssueType::Conflict,
                                format!("the new id {id} is taken; retry"),
                            )));
                        }
                        if entry.method == "PUT" && current.is_none() {
                            if let Some(refusal) = self.refuse_update_create(type_name, id) {
                                return Ok(Err(entry_error(
                                    idx,
                                    405,
                                    IssueType::NotSupported,
                                    refusal,
                                )));
                            }
                        }
                        let created = current.as_ref().is_none_or(|current| current.deleted);
                        let (version, now, json) = self.write_version(
                            &mut tx,
                            resource,
                            type_name,
                            id,
                            current.as_ref(),
                            &entry.method,
                        );
                        self.log_write(&mut tx, type_name, id, version, &now, Some(&*resource))
                            .await?;
                        Done {
                            status: if created { "201 Created" } else { "200 OK" },
                            location: Some(format!("{type_name}/{id}/_history/{version}")),
                            version: Some(version),
                            last_modified: Some(now),
                            outcome: (written_back == WrittenBack::Outcome)
                                .then(|| stored_outcome(type_name, id, version).to_json()),
                            // `Prefer: return=minimal` or `return=OperationOutcome`: the
                            // stored resource is not sent back.
                            resource: (written_back == WrittenBack::Resource).then_some(json),
                        }
                    }
                    _ => {
                        let found = match current {
                            Some(Current {
                                version,
                                deleted: false,
                            }) => Self::stored(&mut tx, type_name, id, version)
                                .await?
                                .map(|stored| (version, stored)),
                            _ => None,
                        };
                        // What reads add to the answer is bounded like a response (what
                        // writes add is bounded by the body they came in).
                        if let Some((_, Stored::Resource(json))) = &found {
                            read_bytes = read_bytes.saturating_add(json.len());
                            if read_bytes > self.limits.max_response_bytes {
                                return Ok(Err(super::limits::too_costly(
                                    "maxResponseBytes",
                                    format!(
                                        "entry {idx}: the resources read by the transaction's GET entries would pass the {} bytes a response may have",
                                        self.limits.max_response_bytes
                                    ),
                                )));
                            }
                        }
                        match found {
                            Some((version, Stored::Resource(json))) => Done {
                                status: "200 OK",
                                location: None,
                                version: Some(version),
                                last_modified: None,
                                resource: Some(json),
                                outcome: None,
                            },
                            _ => {
                                return Ok(Err(entry_error(
                                    idx,
                                    404,
                                    IssueType::NotFound,
                                    format!("{type_name}/{id} does not exist"),
                                )))
                            }
                        }
                    }
                };
                if let Some(slot) = done.get_mut(idx) {
                    *slot = Some(outcome);
                }
            }
            tx.commit().await?;
            Ok::<_, StoreError>(Ok(done))
        }
        .await;
        let done = match result {
            Ok(Ok(done)) => done,
            Ok(Err(response)) => return response,
            Err(err) => return super::store_error(&err),
        };
        let answers: Vec<String> = done
            .into_iter()
            .map(|done| {
                let Some(done) = done else {
                    return String::from(r#"{"response":{"status":"200 OK"}}"#);
                };
                let mut response = format!(r#""status":"{}""#, done.status);
                if let Some(location) = &done.location {
                    response.push_str(&format!(r#","location":"{location}""#));
                }
                if let Some(version) = done.version {
                    response.push_str(&format!(r#","etag":"W/\"{version}\"""#));
                }
                if let Some(at) = &done.last_modified {
                    response.push_str(&format!(r#","lastModified":"{at}""#));
                }
                if let Some(outcome) = &done.outcome {
                    response.push_str(&format!(r#","outcome":{outcome}"#));
                }
                match &done.resource {
                    Some(json) => format!(r#"{{"resource":{json},"response":{{{response}}}}}"#),
                    None => format!(r#"{{"response":{{{response}}}}}"#),
                }
            })
            .collect();
        Response::json(
            200,
            format!(
                r#"{{"resourceType":"Bundle","type":"transaction-response"{}}}"#,
                entries_json(&answers)
            ),
        )
    }
}

/// The `entry` member of a response Bundle (none when empty: FHIR JSON has no empty arrays).
pub(crate) fn entries_json(answers: &[String]) -> String {
    if answers.is_empty() {
        String::new()
    } else {
        format!(r#","entry":[{}]"#, answers.join(","))
    }
}

/// A batch-response entry for a single interaction's response.
pub(crate) fn response_entry(response: &Response) -> String {
    let reason = match response.status {
        200 => " OK",
        201 => " Created",
        204 => " No Content",
        304 => " Not Modified",
        400 => " Bad Request",
        404 => " Not Found",
        405 => " Method Not Allowed",
        409 => " Conflict",
        410 => " Gone",
        412 => " Precondition Failed",
        413 => " Content Too Large",
        422 => " Unprocessable Entity",
        _ => "",
    };
    let mut fields = format!(r#""status":"{}{reason}""#, response.status);
    if let Some(location) = response.header("Location") {
        fields.push_str(&format!(r#","location":"{location}""#));
    }
    if let Some(tag) = response.header("ETag") {
        fields.push_str(&format!(r#","etag":"{}""#, tag.replace('"', "\\\"")));
    }
    let is_outcome = response
        .body
        .starts_with(r#"{"resourceType":"OperationOutcome""#);
    match (
        response.body.is_empty(),
        is_outcome && response.status >= 400,
    ) {
        (true, _) => format!(r#"{{"response":{{{fields}}}}}"#),
        (false, true) => format!(r#"{{"response":{{{fields},"outcome":{}}}}}"#, response.body),
        (false, false) => format!(
            r#"{{"resource":{},"response":{{{fields}}}}}"#,
            response.body
        ),
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::string::{String, ToString};
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::{Clock, IdSource, Request, Response, Service};
    use crate::outcome::{IssueType, Severity};
    use crate::store::{block_on, MemoryStore};
    use crate::validation::Finding;

    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> String {
            String::from("2026-12-04T10:00:00.000Z")
        }
    }
    impl IdSource for Fixed {
        fn next_id(&self) -> String {
            String::from("new")
        }
    }

    fn service() -> Service<MemoryStore> {
        Service::new(
            MemoryStore::new(),
            Box::new(Fixed),
            Box::new(Fixed),
            "http://localhost/fhir",
        )
    }

    fn call(service: &Service<MemoryStore>, method: &str, path: &str, body: &str) -> Response {
        call_with(service, method, path, &[], body)
    }

    fn call_with(
        service: &Service<MemoryStore>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        headers.push((
            String::from("content-type"),
            String::from("application/fhir+json"),
        ));
        block_on(service.handle(&Request {
            method: method.into(),
            path: path.into(),
            query: Vec::new(),
            headers,
            body: body.as_bytes().to_vec(),
        }))
    }

    /// A transaction Bundle of `entries` (each `(fullUrl, method, url, resource)`).
    fn transaction(entries: &[(Option<&str>, &str, &str, &str)]) -> String {
        let entries: Vec<String> = entries
            .iter()
            .map(|(full_url, method, url, resource)| {
                let full_url = full_url
                    .map(|full_url| alloc::format!(r#""fullUrl":"{full_url}","#))
                    .unwrap_or_default();
                alloc::format!(
                    r#"{{{full_url}"resource":{resource},"request":{{"method":"{method}","url":"{url}"}}}}"#
                )
            })
            .collect();
        alloc::format!(
            r#"{{"resourceType":"Bundle","type":"transaction","entry":[{}]}}"#,
            entries.join(",")
        )
    }

    fn patient(id: &str, extra: &str) -> String {
        alloc::format!(r#"{{"resourceType":"Patient","id":"{id}"{extra}}}"#)
    }

    fn injected() -> Finding {
        Finding {
            severity: Severity::Error,
            code: IssueType::Invariant,
            message: String::from("found when read ahead"),
            path: String::from("Patient.name"),
            constraint: None,
        }
    }

    /// Replaces what was found ahead in the first entry's resource with one finding.
    fn inject(service: &Service<MemoryStore>, entry: usize) {
        let mut slot = service.prepared.borrow_mut();
        let prepared = slot.as_mut().expect("a body was read ahead");
        assert!(
            prepared
                .read
                .validated
                .get(entry)
                .is_some_and(|found| found.as_ref().is_some_and(Vec::is_empty)),
            "the resource was validated ahead, and found valid"
        );
        prepared.read.validated[entry] = Some(vec![injected()]);
    }

    /// The body read ahead goes only to the request with that very body; any transaction
    /// takes it out of the way, and its answer is the one it has without reading ahead.
    #[test]
    fn a_body_read_ahead_is_taken_by_its_own_request_alone() {
        let a = transaction(&[(None, "PUT", "Patient/a", &patient("a", ""))]);
        let b = transaction(&[(None, "PUT", "Patient/b", &patient("b", ""))]);
        let reads = service();
        reads.prepare(a.as_bytes(), true);
        assert!(reads.prepared.borrow().is_some());
        assert_eq!(call(&reads, "POST", "", &b).status, 200);
        assert!(reads.prepared.borrow().is_none());
        assert_eq!(call(&reads, "GET", "Patient/a", "").status, 404);
        assert_eq!(call(&reads, "GET", "Patient/b", "").status, 200);

        reads.prepare(a.as_bytes(), true);
        let answer = call(&reads, "POST", "", &a);
        assert!(reads.prepared.borrow().is_none());
        let plain = service();
        call(&plain, "POST", "", &b);
        let expected = call(&plain, "POST", "", &a);
        assert_eq!((answer.status, answer.body), (200, expected.body));

        // Validation ahead finds what the request's own finds.
        let invalid = transaction(&[
            (None, "PUT", "Patient/c", &patient("c", "")),
            (
                None,
                "PUT",
                "Patient/d",
                &patient("d", r#","gender":"hen""#),
            ),
        ]);
        reads.prepare(invalid.as_bytes(), true);
        let answer = call(&reads, "POST", "", &invalid);
        let expected = call(&plain, "POST", "", &invalid);
        assert_eq!(answer.status, 422);
        assert_eq!(answer.body, expected.body);
        assert!(answer.body.contains("Bundle.entry[1].resource.gender"));

        // What is not a transaction Bundle is not kept, nor one too large for its request.
        for body in [
            "",
            "{not json",
            r#"{"resourceType":"Patient"}"#,
            &b.replace("transaction", "batch"),
        ] {
            reads.prepare(a.as_bytes(), true);
            reads.prepare(body.as_bytes(), true);
            assert!(reads.prepared.borrow().is_none(), "{body}");
        }
        let mut small = service();
        small.set_limits(crate::rest::Limits {
            max_body_bytes: a.len() - 1,
            ..crate::rest::Limits::default()
        });
        small.prepare(a.as_bytes(), true);
        assert!(small.prepared.borrow().is_none());

        // What was validated against other profiles is dropped when they change.
        let mut profiled = service();
        profiled.prepare(a.as_bytes(), true);
        assert!(profiled.prepared.borrow().is_some());
        profiled.profiles_mut();
        assert!(profiled.prepared.borrow().is_none());
    }

    /// A request takes what validation found ahead, and reports it as its own; not once the
    /// entries' references were rewritten (the resource validated is no longer the one read),
    /// nor when the request asks for no validation.
    #[test]
    fn findings_read_ahead_count_unless_references_were_rewritten_since() {
        let reads = service();
        let one = transaction(&[(None, "PUT", "Patient/e", &patient("e", ""))]);
        reads.prepare(one.as_bytes(), true);
        inject(&reads, 0);
        let answer = call(&reads, "POST", "", &one);
        assert_eq!(answer.status, 422, "{}", answer.body);
        assert!(answer.body.contains("found when read ahead"));
        assert!(answer.body.contains("Bundle.entry[0].resource.name"));
        assert_eq!(call(&reads, "GET", "Patient/e", "").status, 404);

        reads.prepare(one.as_bytes(), true);
        inject(&reads, 0);
        let answer = call_with(&reads, "POST", "", &[("x-validation", "off")], &one);
        assert_eq!(answer.status, 200, "{}", answer.body);

        // Read ahead without validation: the request validates for itself.
        let hen = transaction(&[(
            None,
            "PUT",
            "Patient/f",
            &patient("f", r#","gender":"hen""#),
        )]);
        reads.prepare(hen.as_bytes(), false);
        assert_eq!(call(&reads, "POST", "", &hen).status, 422);

        let linked = transaction(&[
            (
                Some("urn:uuid:5f1c"),
                "POST",
                "Patient",
                r#"{"resourceType":"Patient"}"#,
            ),
            (
                None,
                "PUT",
                "Observation/g",
                r#"{"resourceType":"Observation","id":"g","status":"final","code":{"text":"w"},"subject":{"reference":"urn:uuid:5f1c"}}"#,
            ),
        ]);
        reads.prepare(linked.as_bytes(), true);
        inject(&reads, 1);
        let answer = call(&reads, "POST", "", &linked);
        assert_eq!(answer.status, 200, "{}", answer.body);
        let observation = call(&reads, "GET", "Observation/g", "");
        assert!(observation.body.contains(r#""reference":"Patient/new""#));
    }
}

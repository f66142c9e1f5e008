//! Search over REST: `GET [type]`, `POST [type]/_search`, system search, conditional
//! interactions' matching, and the searchset Bundle (links, `_summary`, `_elements`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{Request, Response, Service};
use crate::json::fhir::parse_resource;
use crate::json::write::{write_resource, Style};
use crate::outcome::IssueType;
use crate::resource::{Field, Object, Value};
use crate::search::{self, Context, Query, SearchError, Summary, Total};
use crate::store::{Store, StoreError, Transaction};

/// Percent-encodes a URL query component.
pub(crate) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b',' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes and, in form bodies, `+` as a space.
pub(super) fn decode_component(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while let Some(&byte) = bytes.get(idx) {
        let hex = bytes
            .get(idx + 1..idx + 3)
            .and_then(|pair| core::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                idx += 3;
            }
            (b'+', _) if plus_is_space => {
                out.push(b' ');
                idx += 1;
            }
            _ => {
                out.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// The pairs of a query string or form body.
pub(crate) fn query_pairs(text: &str, plus_is_space: bool) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                decode_component(name, plus_is_space),
                decode_component(value, plus_is_space),
            )
        })
        .collect()
}

/// Resources of a search answer read with one round of read-ahead.
const LOAD_GROUP: usize = 128;

fn search_error(err: &SearchError) -> Response {
    let code = match err.status {
        400 => IssueType::Invalid,
        413 => IssueType::TooCostly,
        _ => IssueType::Exception,
    };
    Response::error(err.status, code, err.message.clone())
}

/// The meta.tag a subsetted resource carries (R4 §3.1.1.5.8).
const SUBSETTED: &str = r#"{"resourceType":"Basic","meta":{"tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}]},"code":{"text":"-"}}"#;

/// Adds the SUBSETTED tag to `resource`'s meta.
fn mark_subsetted(resource: &mut Object) {
    let Ok(template) = parse_resource(SUBSETTED.as_bytes()) else {
        return;
    };
    let Some(template_meta) = template.fields.iter().find(|field| {
        template
            .element_def(field)
            .is_some_and(|def| def.name == "meta")
    }) else {
        return;
    };
    let meta_position = resource.fields.iter().position(|field| {
        resource
            .element_def(field)
            .is_some_and(|def| def.name == "meta")
    });
    match meta_position {
        Some(position) => {
            let (
                Some(Field {
                    value: Value::Complex(meta),
                    ..
                }),
                Value::Complex(template_meta),
            ) = (resource.fields.get_mut(position), &template_meta.value)
            else {
                return;
            };
            for tag in &template_meta.fields {
                let at = meta
                    .fields
                    .iter()
                    .position(|field| field.element > tag.element)
                    .unwrap_or(meta.fields.len());
                meta.fields.insert(at, tag.clone());
            }
        }
        None => {
            let at = resource
                .fields
                .iter()
                .position(|field| field.element > template_meta.element)
                .unwrap_or(resource.fields.len());
            resource.fields.insert(at, template_meta.clone());
        }
    }
}

/// The resource as `_summary` and `_elements` ask.
fn shaped(json: &str, summary: Option<Summary>, elements: Option<&[String]>) -> String {
    if matches!(summary, None | Some(Summary::False)) && elements.is_none() {
        return json.to_string();
    }
    let Ok(mut resource) = parse_resource(json.as_bytes()) else {
        return json.to_string();
    };
    let defs = resource.type_def().elements;
    let keep = |field: &Field| -> bool {
        let Some(def) = defs.get(usize::from(field.element)) else {
            return true;
        };
        if matches!(def.name, "id" | "meta") {
            return true;
        }
        if let Some(elements) = elements {
            return elements.iter().any(|wanted| wanted == def.name);
        }
        match summary {
            Some(Summary::True) => def.flags & crate::model::flags::SUMMARY != 0,
            Some(Summary::Text) => def.name == "text" || def.min > 0,
            Some(Summary::Data) => def.name != "text",
            _ => true,
        }
    };
    resource.fields.retain(keep);
    mark_subsetted(&mut resource);
    write_resource(&resource, Style::Compact)
}

impl<S: Store> Service<S> {
    /// Loads the `SearchParameter` resources stored, when the registry is out of date.
    pub(super) async fn ensure_registry(&self) -> Result<(), StoreError> {
        if self.search_ready.get() {
            // Loaded: a transaction's beginning checks it (`check_registry`), once a request.
            if !self.marker_checked.get() {
                drop(self.begin(false).await?);
            }
            return Ok(());
        }
        let mut tx = self.begin(false).await?;
        let marker = tx.get(search::PARAMS_MARKER_KEY).await?;
        self.marker_checked.set(true);
        self.load_registry(&mut tx, marker).await?;
        // A store written by a version of Hearth whose index keys differ is indexed again.
        let format = tx.get(search::INDEX_FORMAT_KEY).await?;
        drop(tx);
        if format.as_deref() != Some(search::INDEX_FORMAT.as_bytes()) {
            let types: Vec<&'static str> = crate::model::TYPES
                .iter()
                .filter(|def| def.is_concrete_resource())
                .map(|def| def.name)
                .collect();
            self.reindex_types(&types).await?;
        }
        Ok(())
    }

    /// Builds the registry from the `SearchParameter` resources stored in `tx`, whose marker of
    /// their last change is `marker`.
    async fn load_registry<T: Transaction>(
        &self,
        tx: &mut T,
        marker: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let ids = search::current_ids(tx, "SearchParameter").await?;
        // Without stored parameters, before or now, the core registry built with the service
        // stands.
        if !ids.is_empty() || self.registry().has_custom() {
            let mut registry = search::Registry::core();
            for id in ids {
                if let Some(json) = search::load_json(tx, "SearchParameter", &id).await? {
                    if let Some(param) = parse_resource(json.as_bytes())
                        .ok()
                        .as_ref()
                        .and_then(search::Param::from_resource)
                    {
                        registry.add(param);
                    }
                }
            }
            *self.search.borrow_mut() = alloc::rc::Rc::new(registry);
        }
        self.search_ready.set(true);
        *self.search_marker.borrow_mut() = marker;
        Ok(())
    }

    /// Checks, in a request's transaction `tx`, that the registry is that of the
    /// `SearchParameter` resources stored (another tab or worker may have changed them since
    /// the last request), and builds it anew from them when not: the request then needs no
    /// transaction of its own for the check. Once per request; a registry not yet loaded is
    /// left to [`Service::ensure_registry`].
    ///
    /// # Errors
    /// The store's failure, or indexes written meanwhile by a version of Hearth whose index
    /// keys differ: the next request indexes the store again.
    pub(super) async fn check_registry<T: Transaction>(
        &self,
        tx: &mut T,
    ) -> Result<(), StoreError> {
        if !self.search_ready.get() || self.marker_checked.get() {
            return Ok(());
        }
        tx.prefetch(&[
            search::PARAMS_MARKER_KEY.to_vec(),
            search::INDEX_FORMAT_KEY.to_vec(),
        ])
        .await?;
        let marker = tx.get(search::PARAMS_MARKER_KEY).await?;
        let format = tx.get(search::INDEX_FORMAT_KEY).await?;
        self.marker_checked.set(true);
        // (A store with no format yet was indexed, or found empty, when the registry was
        // first read; only another version's format written since is a change.)
        if format
            .as_deref()
            .is_some_and(|format| format != search::INDEX_FORMAT.as_bytes())
        {
            self.search_ready.set(false);
            return Err(StoreError::new(
                "the store's search indexes were written meanwhile by a version of Hearth that \
                 indexes differently; nothing was done, and the next request indexes the store again",
            ));
        }
        if *self.search_marker.borrow() != marker {
            self.load_registry(tx, marker).await?;
        }
        Ok(())
    }

    /// The ids of `type_name` that `query` (a query string, as in `If-None-Exist` or a
    /// conditional URL) matches, read in `tx`.
    pub(super) async fn conditional_matches<T: Transaction>(
        &self,
        tx: &mut T,
        type_name: &str,
        query: &str,
    ) -> Result<Vec<String>, Response> {
        let pairs = query_pairs(query.trim_start_matches('?'), false);
        if let Some(refusal) = self.limits.check_parameters(&pairs, &[]) {
            return Err(refusal);
        }
        if pairs.is_empty() {
            return Err(Response::error(
                400,
                IssueType::Invalid,
                "a conditional interaction needs search parameters",
            ));
        }
        let registry = self.registry();
        let mut parsed = search::parse(&registry, &[type_name], &pairs, false)
            .map_err(|err| search_error(&err))?;
        // `_format` or `_count` alone would match everything.
        if parsed
            .per_type
            .iter()
            .all(|(_, criteria)| criteria.is_empty())
        {
            return Err(Response::error(
                400,
                IssueType::Invalid,
                "a conditional interaction needs search parameters that select resources",
            ));
        }
        parsed.count = search::MAX_COUNT;
        let context = Context {
            registry: &registry,
            base_url: &self.base_url,
        };
        let found = search::run(tx, &context, &parsed)
            .await
            .map_err(|err| search_error(&err))?;
        Ok(found.page.into_iter().map(|hit| hit.id).collect())
    }

    /// `GET [type]`, `POST [type]/_search`, and system search (`types` empty: every type, or
    /// those `_type` names).
    pub(super) async fn search(&self, request: &Request, type_name: Option<&str>) -> Response {
        self.search_scoped(request, type_name, None, false).await
    }

    /// A search, optionally within a compartment (`Patient/123/Observation`, `type_name`
    /// `None` for `Patient/123/*`), or `Patient/123/$everything` (`everything`: the
    /// compartment's resources of every type, with the resources they reference).
    pub(super) async fn search_scoped(
        &self,
        request: &Request,
        type_name: Option<&str>,
        compartment: Option<(&str, &str)>,
        everything: bool,
    ) -> Response {
        if let Err(err) = self.ensure_registry().await {
            return super::store_error(&err);
        }
        let mut params = request.query.clone();
        if request.method.eq_ignore_ascii_case("POST") {
            let form = core::str::from_utf8(&request.body).unwrap_or_default();
            params.extend(query_pairs(form, true));
        }
        let focus = match compartment {
            Some((focus, _)) => match crate::model::COMPARTMENTS
                .iter()
                .find(|(name, _)| *name == focus)
            {
                Some(found) => Some(found),
                None => {
                    return Response::error(
                        404,
                        IssueType::NotFound,
                        format!("{focus} is not a compartment"),
                    )
                }
            },
            None => None,
        };
        let types: Vec<&'static str> = match (type_name, focus) {
            (Some(type_name), _) => match Self::resource_type(type_name) {
                Ok(type_name) => alloc::vec![type_name],
                Err(response) => return response,
            },
            (None, Some((focus_type, members))) => {
                let named: Vec<&str> = params
                    .iter()
                    .filter(|(name, _)| name == "_type")
                    .flat_map(|(_, value)| value.split(','))
                    .filter(|name| !name.is_empty())
                    .collect();
                let mut types: Vec<&'static str> =
                    members.iter().map(|(member, _)| *member).collect();
                if !types.contains(focus_type) {
                    types.push(focus_type);
                }
                types.retain(|member| named.is_empty() || named.contains(member));
                // The audit trail is about the record, not part of it: it is searched only
                // when _type names it.
                if named.is_empty() {
                    types.retain(|member| *member != "AuditEvent");
                }
                types
            }
            (None, None) => {
                let named: Vec<&str> = params
                    .iter()
                    .filter(|(name, _)| name == "_type")
                    .flat_map(|(_, value)| value.split(','))
                    .filter(|name| !name.is_empty())
                    .collect();
                if named.is_empty() {
                    crate::model::TYPES
                        .iter()
                        .filter(|def| def.is_concrete_resource())
                        .map(|def| def.name)
                        .collect()
                } else {
                    let mut types = Vec::new();
                    for name in named {
                        match Self::resource_type(name) {
                            Ok(name) => types.push(name),
                            Err(response) => return response,
                        }
                    }
                    types
                }
            }
        };
        let lenient = request
            .header("prefer")
            .is_some_and(|prefer| prefer.contains("handling=lenient"));
        let registry = self.registry();
        if everything {
            params.retain(|(name, _)| {
                matches!(
                    name.as_str(),
                    "_type"
                        | "_count"
                        | "_cursor"
                        | "_format"
                        | "_pretty"
                        | "_elements"
                        | "_summary"
                )
            });
            if !params.iter().any(|(name, _)| name == "_count") {
                params.push((String::from("_count"), format!("{}", search::MAX_COUNT)));
            }
        }
        let mut query = match search::parse(&registry, &types, &params, lenient) {
            Ok(query) => query,
            Err(err) => return search_error(&err),
        };
        if let Some((focus, id)) = compartment {
            query.compartment = Some((focus.to_string(), id.to_string()));
        }
        if everything {
            query.includes.push(search::Include {
                source: String::from("*"),
                code: None,
                target: None,
                iterate: false,
            });
        }
        let context = Context {
            registry: &registry,
            base_url: &self.base_url,
        };
        let result = async {
            let mut tx = self.begin(false).await.map_err(SearchError::store)?;
            let found = search::run(&mut tx, &context, &query).await?;
            let mut matches = Vec::new();
            // The page's resources are read only while they fit in a response.
            let max_bytes = self.limits.max_response_bytes;
            let mut page_bytes = 0usize;
            let mut fits = |json: &str| {
                page_bytes = page_bytes.saturating_add(json.len());
                if page_bytes > max_bytes {
                    return Err(SearchError {
                        status: 413,
                        message: format!(
                            "the page would have more than the {max_bytes} bytes a response may have; ask for fewer with _count (limit maxResponseBytes)"
                        ),
                    });
                }
                Ok(())
            };
            let shown = if query.summary == Some(Summary::Count) {
                &[][..]
            } else {
                &found.included[..]
            };
            let mut wanted: Vec<(String, String)> = Vec::new();
            if query.summary != Some(Summary::Count) {
                wanted.extend(
                    found
                        .page
                        .iter()
                        .map(|hit| (hit.type_name.clone(), hit.id.clone())),
                );
            }
            let matched = wanted.len();
            wanted.extend(shown.iter().cloned());
            let mut included = Vec::new();
            // Read in groups (one round of read-ahead each), so that a page that will not fit
            // stops being read soon after it passes the limit.
            for (group, chunk) in wanted.chunks(LOAD_GROUP).enumerate() {
                let loaded = search::load_json_many(&mut tx, chunk)
                    .await
                    .map_err(SearchError::store)?;
                for (offset, ((type_name, id), json)) in chunk.iter().zip(loaded).enumerate() {
                    let Some(json) = json else {
                        continue;
                    };
                    fits(&json)?;
                    if group * LOAD_GROUP + offset < matched {
                        matches.push((type_name.clone(), id.clone(), json));
                    } else {
                        included.push((type_name.clone(), id.clone(), json));
                    }
                }
            }
            Ok::<_, SearchError>((found, matches, included))
        }
        .await;
        let (found, matches, included) = match result {
            Ok(result) => result,
            Err(err) => return search_error(&err),
        };
        let path = match (compartment, type_name) {
            (Some((focus, id)), _) if everything => {
                format!("{}/{focus}/{id}/$everything", self.base_url)
            }
            (Some((focus, id)), Some(type_name)) => {
                format!("{}/{focus}/{id}/{type_name}", self.base_url)
            }
            (Some((focus, id)), None) => format!("{}/{focus}/{id}/*", self.base_url),
            (None, Some(type_name)) => format!("{}/{type_name}", self.base_url),
            (None, None) => self.base_url.clone(),
        };
        Response::json(
            200,
            self.searchset(&path, &query, &found, &matches, &included),
        )
    }

    fn searchset(
        &self,
        path: &str,
        query: &Query,
        found: &search::Found,
        matches: &[(String, String, String)],
        included: &[(String, String, String)],
    ) -> String {
        let params: Vec<String> = query
            .link_params
            .iter()
            .map(|(name, value)| format!("{}={}", encode_component(name), encode_component(value)))
            .collect();
        let link = |cursor: Option<String>| {
            let mut all = params.clone();
            if let Some(cursor) = cursor {
                all.push(format!("_cursor={cursor}"));
            }
            if all.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", all.join("&"))
            }
        };
        let this_page = query.cursor.as_ref().map(|cursor| match cursor {
            search::Cursor::After(text) => format!("n{text}"),
            search::Cursor::Before(text) => format!("p{text}"),
        });
        let mut links = alloc::vec![
            format!(
                r#"{{"relation":"self","url":"{}"}}"#,
                json_escape(&link(this_page))
            ),
            format!(
                r#"{{"relation":"first","url":"{}"}}"#,
                json_escape(&link(None))
            ),
        ];
        // A count has no pages.
        let paged = query.summary != Some(Summary::Count);
        if let Some(previous) = found.previous.as_ref().filter(|_| paged) {
            links.push(format!(
                r#"{{"relation":"previous","url":"{}"}}"#,
                json_escape(&link(Some(format!("p{previous}"))))
            ));
        }
        if let Some(next) = found.next.as_ref().filter(|_| paged) {
            links.push(format!(
                r#"{{"relation":"next","url":"{}"}}"#,
                json_escape(&link(Some(format!("n{next}"))))
            ));
        }
        let mut entries = Vec::new();
        let elements = query.elements.as_deref();
        for (mode, list) in [("match", matches), ("include", included)] {
            for (entry_type, id, json) in list {
                entries.push(format!(
                    r#"{{"fullUrl":"{}/{entry_type}/{id}","resource":{},"search":{{"mode":"{mode}"}}}}"#,
                    self.base_url,
                    shaped(json, query.summary, elements)
                ));
            }
        }
        if !query.ignored.is_empty() {
            let outcome = crate::outcome::OperationOutcome {
                issues: query
                    .ignored
                    .iter()
                    .map(|problem| crate::outcome::Issue {
                        severity: crate::outcome::Severity::Warning,
                        code: IssueType::NotSupported,
                        diagnostics: format!("ignored: {problem}"),
                        expression: Vec::new(),
                        position: None,
                    })
                    .collect(),
            };
            entries.push(format!(
                r#"{{"resource":{},"search":{{"mode":"outcome"}}}}"#,
                outcome.to_json()
            ));
        }
        let total = match query.total {
            Total::None if query.summary != Some(Summary::Count) => String::new(),
            _ => format!(r#","total":{}"#, found.total),
        };
        // FHIR JSON has no empty arrays: no matches, no `entry`.
        let entry = if entries.is_empty() {
            String::new()
        } else {
            format!(r#","entry":[{}]"#, entries.join(","))
        };
        format!(
            r#"{{"resourceType":"Bundle","type":"searchset"{total},"link":[{}]{entry}}}"#,
            links.join(",")
        )
    }
}

fn json_escape(text: &str) -> String {
    let mut out = String::new();
    crate::outcome::push_json_string(&mut out, text);
    out.get(1..out.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

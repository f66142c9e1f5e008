//! The decisions on each interaction for a request whose claims are restricted: which types it
//! may reach, how its searches are narrowed, what of an answer may leave, and the check on
//! each write ([`Gate`]).

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;

use super::{audit, refusal, Access, Claims, Grant, Interaction, Judge};
use crate::json::fhir::parse_resource;
use crate::json::write::{write_resource, Style};
use crate::outcome::IssueType;
use crate::resource::{Object, Value};
use crate::rest::{Request, Response, Service, WriteGate};
use crate::store::Store;

/// Deepest chain or `_has` followed when judging which types a search probes.
const MAX_PROBE_DEPTH: usize = 6;

pub(super) struct Guard<'a, S: Store> {
    pub access: &'a Access,
    pub service: &'a Service<S>,
    pub claims: &'a Claims,
    /// The check (and record) of every write of the interaction.
    pub gate: Rc<Gate>,
}

/// Where a resource stands: never written, live, or deleted, with the content of its last
/// version in force (`None` when it does not read).
enum Standing {
    Absent,
    Live(Option<Object>),
    Deleted(Option<Object>),
}

/// How a search of one type is narrowed to what the claims reach.
struct Narrowing {
    /// Search within this compartment (`Patient`, `123`).
    compartment: Option<(String, String)>,
    /// Criteria added to the search.
    criteria: Vec<(String, String)>,
}

fn forbidden(message: impl Into<String>) -> Response {
    refusal(403, IssueType::Forbidden, message)
}

fn not_found(type_name: &str, id: &str) -> Response {
    refusal(
        404,
        IssueType::NotFound,
        format!("{type_name}/{id} does not exist"),
    )
}

fn concrete_type(name: &str) -> Option<&'static str> {
    crate::model::type_by_name(name)
        .map(crate::model::type_def)
        .filter(|def| def.is_concrete_resource())
        .map(|def| def.name)
}

impl<S: Store> Guard<'_, S> {
    fn grants(&self, type_name: &str, interaction: Interaction) -> Vec<Grant> {
        self.access.grants(self.claims, type_name, interaction)
    }

    /// What may be read of `type_name`: its read and its search grants.
    fn read_grants(&self, type_name: &str) -> Vec<Grant> {
        let mut grants = self.grants(type_name, Interaction::Read);
        grants.extend(self.grants(type_name, Interaction::Search));
        grants
    }

    fn no_scope(type_name: &str, what: &str) -> Response {
        forbidden(format!(
            "the token's scopes do not allow {what} {type_name} resources"
        ))
    }

    fn gate(&self) -> Rc<dyn WriteGate> {
        self.gate.clone()
    }

    async fn gated(&self, request: &Request) -> Response {
        self.service.handle_gated(request, self.gate()).await
    }

    fn outside(&self, request: &Request, response: Response) -> Response {
        self.service.answer_outside(request, response)
    }

    /// Routes one request (boxed: batch entries come back through it).
    pub(super) fn route<'r>(
        &'r self,
        request: &'r Request,
    ) -> Pin<Box<dyn Future<Output = Response> + 'r>> {
        Box::pin(async move {
            let path = request.path.trim_matches('/');
            let segments: Vec<&str> = if path.is_empty() {
                Vec::new()
            } else {
                path.split('/').collect()
            };
            let method = request.method.to_ascii_uppercase();
            // A first segment that names no resource type reaches no data: the service's
            // own answer (404, 405) says so.
            let known = match segments.first() {
                None => true,
                Some(first) if first.starts_with('_') || first.starts_with('$') => true,
                Some(first) if *first == "metadata" => true,
                Some(first) => concrete_type(first).is_some(),
            };
            if !known {
                return self.service.handle(request).await;
            }
            let response = match (method.as_str(), segments.as_slice()) {
                ("OPTIONS", _) | ("GET", ["metadata"]) => self.service.handle(request).await,
                ("POST", []) => self.bundle(request).await,
                ("GET", ["_history"]) => self.log_history(request, None).await,
                ("GET", [type_name, "_history"]) => {
                    self.log_history(request, Some(type_name)).await
                }
                ("GET", []) | ("POST", ["_search"]) => self.system_search(request).await,
                ("GET", [type_name]) | ("POST", [type_name, "_search"]) => {
                    self.type_search(request, type_name).await
                }
                ("POST", [type_name]) => self.create(request, type_name).await,
                ("PUT" | "DELETE" | "PATCH", [type_name]) if !request.query.is_empty() => {
                    self.conditional(request, &method, type_name).await
                }
                ("GET", [type_name, id]) | ("GET", [type_name, id, "_history", _]) => {
                    self.read(request, type_name, id).await
                }
                ("PUT" | "PATCH", [type_name, id]) => {
                    if self.grants(type_name, Interaction::Update).is_empty() {
                        Self::no_scope(type_name, "updating")
                    } else if let Some(refused) = self.judge_put_body(request, type_name, &method) {
                        // What a PUT would write is judged before anything is looked up, so that
                        // the answer is the same whether the id exists out of reach or not.
                        refused
                    } else if let Some(absent) = self.check_writable(type_name, id, &method).await {
                        absent
                    } else {
                        self.gated(request).await
                    }
                }
                ("DELETE", [type_name, id]) => {
                    if self.grants(type_name, Interaction::Delete).is_empty() {
                        Self::no_scope(type_name, "deleting")
                    } else if let Some(absent) = self.check_writable(type_name, id, &method).await {
                        absent
                    } else {
                        self.gated(request).await
                    }
                }
                ("GET", [type_name, id, "_history"]) => {
                    self.instance_history(request, type_name, id).await
                }
                ("GET", ["Patient", id, "$everything"]) => self.everything(request, id).await,
                ("GET", [focus, id, target]) if !target.starts_with('$') => {
                    self.compartment_search(request, focus, id, target).await
                }
                ("POST", [type_name, "$validate"]) | ("POST", [type_name, _, "$validate"]) => {
                    if self.grants(type_name, Interaction::Create).is_empty()
                        && self.grants(type_name, Interaction::Update).is_empty()
                    {
                        Self::no_scope(type_name, "validating")
                    } else {
                        self.service.handle(request).await
                    }
                }
                _ => forbidden(format!(
                    "{method} /{path} is not allowed with the token's scopes"
                )),
            };
            // Answers made here carry the service's headers too; the service's own already do.
            if response.header("X-Content-Type-Options").is_none() {
                self.outside(request, response)
            } else {
                response
            }
        })
    }

    /// How a search of `type_name` is narrowed, or why it can not be.
    fn narrowing(&self, type_name: &str) -> Result<Narrowing, Response> {
        let grants = self.grants(type_name, Interaction::Search);
        let Some(first) = grants.first() else {
            return Err(Self::no_scope(type_name, "searching"));
        };
        let compartment = first.compartment.clone();
        if grants.iter().any(|grant| grant.compartment != compartment) {
            return Err(forbidden(format!(
                "the token's scopes for {type_name} reach it in different compartments, which one search can not honour; search each compartment"
            )));
        }
        let mut criteria = Vec::new();
        if grants.iter().all(|grant| grant.criteria.is_some()) {
            let sets: Vec<&Vec<(String, String)>> = grants
                .iter()
                .filter_map(|grant| grant.criteria.as_ref())
                .collect();
            if let [only] = sets.as_slice() {
                criteria = (*only).clone();
            } else {
                // Several granular scopes: alternatives of one parameter join with commas.
                let name = &sets[0][0].0;
                if sets.iter().any(|set| set.len() != 1 || set[0].0 != *name) {
                    return Err(forbidden(format!(
                        "the token's granular scopes for {type_name} use different parameters, which one search can not honour"
                    )));
                }
                let values: Vec<&str> = sets.iter().map(|set| set[0].1.as_str()).collect();
                criteria.push((name.clone(), values.join(",")));
            }
        }
        Ok(Narrowing {
            compartment,
            criteria,
        })
    }

    /// Refuses a search whose chains or `_has` would probe resources the claims do not reach
    /// freely: the types they name must be searchable without restriction.
    fn check_probes(&self, type_name: &str, params: &[(String, String)]) -> Result<(), Response> {
        for (name, _) in params {
            if name.starts_with("_has:") {
                let mut rest = name.as_str();
                let mut last = type_name;
                while let Some(after) = rest.strip_prefix("_has:") {
                    let mut parts = after.splitn(3, ':');
                    let (Some(source), Some(_), Some(inner)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        break;
                    };
                    self.probe_allowed(source)?;
                    rest = inner;
                    last = source;
                }
                // The innermost parameter may chain on from the last source.
                if rest.contains('.') {
                    self.check_chain(last, rest, 0)?;
                }
            } else if name.contains('.') {
                self.check_chain(type_name, name, 0)?;
            }
        }
        Ok(())
    }

    fn check_chain(&self, type_name: &str, name: &str, depth: usize) -> Result<(), Response> {
        if depth > MAX_PROBE_DEPTH {
            return Err(forbidden("the chain is too deep to be judged"));
        }
        let Some((head, rest)) = name.split_once('.') else {
            return Ok(());
        };
        let (code, modifier) = head.split_once(':').unwrap_or((head, ""));
        let registry = self.service.search_registry();
        let targets: Vec<String> = if modifier.is_empty() {
            match registry.param(type_name, code) {
                Some(param) => param.target.clone(),
                None => Vec::new(),
            }
        } else {
            alloc::vec![modifier.to_string()]
        };
        for target in targets {
            self.probe_allowed(&target)?;
            self.check_chain(&target, rest, depth + 1)?;
        }
        Ok(())
    }

    fn probe_allowed(&self, type_name: &str) -> Result<(), Response> {
        let grants = self.grants(type_name, Interaction::Search);
        if grants.iter().any(Grant::unrestricted) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "a chain or _has through {type_name} is not allowed: the token reaches {type_name} only in part, and the search would tell about the rest; search {type_name} itself"
            )))
        }
    }

    /// The search's parameters: the query string, and a `_search` form body.
    fn search_params(request: &Request) -> Vec<(String, String)> {
        let mut params = request.query.clone();
        if request.method.eq_ignore_ascii_case("POST") {
            let form = core::str::from_utf8(&request.body).unwrap_or_default();
            params.extend(crate::rest::query_pairs(form, true));
        }
        params
    }

    fn get(request: &Request, path: String, query: Vec<(String, String)>) -> Request {
        Request {
            method: String::from("GET"),
            path,
            query,
            headers: request
                .headers
                .iter()
                .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
                .cloned()
                .collect(),
            body: Vec::new(),
        }
    }

    async fn type_search(&self, request: &Request, type_name: &str) -> Response {
        let Some(type_name) = concrete_type(type_name) else {
            return self.service.handle(request).await;
        };
        let narrowing = match self.narrowing(type_name) {
            Ok(narrowing) => narrowing,
            Err(refused) => return refused,
        };
        let mut params = Self::search_params(request);
        if let Err(refused) = self.check_probes(type_name, &params) {
            return refused;
        }
        let granular = !narrowing.criteria.is_empty();
        params.extend(narrowing.criteria);
        let path = match &narrowing.compartment {
            Some((focus, id)) => format!("{focus}/{id}/{type_name}"),
            None => type_name.to_string(),
        };
        let mut narrowed = Self::get(request, path, params);
        if granular {
            // Lenient handling would drop a criterion the type does not have.
            narrowed
                .headers
                .retain(|(name, _)| !name.eq_ignore_ascii_case("prefer"));
        }
        let response = self.service.handle(&narrowed).await;
        self.filter_bundle(response, false)
    }

    async fn system_search(&self, request: &Request) -> Response {
        let mut params = Self::search_params(request);
        let named: Vec<String> = params
            .iter()
            .filter(|(name, _)| name == "_type")
            .flat_map(|(_, value)| {
                value
                    .split(',')
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|name| !name.is_empty())
            .collect();
        let types: Vec<&'static str> = if named.is_empty() {
            crate::model::TYPES
                .iter()
                .filter(|def| def.is_concrete_resource())
                .map(|def| def.name)
                .filter(|name| !self.grants(name, Interaction::Search).is_empty())
                .collect()
        } else {
            let mut types = Vec::new();
            for name in &named {
                let Some(type_name) = concrete_type(name) else {
                    return self.service.handle(request).await;
                };
                types.push(type_name);
            }
            types
        };
        if types.is_empty() {
            return forbidden("the token's scopes allow searching no resource type");
        }
        let mut compartment: Option<Option<(String, String)>> = None;
        for type_name in &types {
            let narrowing = match self.narrowing(type_name) {
                Ok(narrowing) => narrowing,
                Err(refused) => return refused,
            };
            if !narrowing.criteria.is_empty()
                || compartment
                    .as_ref()
                    .is_some_and(|seen| *seen != narrowing.compartment)
            {
                return forbidden(
                    "the token reaches these types in different ways, which one search can not honour; search each type",
                );
            }
            compartment = Some(narrowing.compartment);
            if let Err(refused) = self.check_probes(type_name, &params) {
                return refused;
            }
        }
        params.retain(|(name, _)| name != "_type");
        params.push((String::from("_type"), types.join(",")));
        let path = match compartment.flatten() {
            Some((focus, id)) => {
                if types
                    .iter()
                    .any(|type_name| !super::in_compartment_definition(&focus, type_name))
                {
                    return forbidden(format!(
                        "the token reaches {focus} data only in its compartment; a search of all types must name types of the {focus} compartment in _type"
                    ));
                }
                format!("{focus}/{id}/*")
            }
            None => String::new(),
        };
        let narrowed = Self::get(request, path, params);
        let response = self.service.handle(&narrowed).await;
        self.filter_bundle(response, false)
    }

    async fn compartment_search(
        &self,
        request: &Request,
        focus: &str,
        id: &str,
        target: &str,
    ) -> Response {
        // The focus itself must be reachable: a compartment of what can not be read is absent.
        if let Some(focus_type) = concrete_type(focus) {
            if let Some(absent) = self.check_readable(request, focus_type, id).await {
                return absent;
            }
        }
        let types: Vec<&'static str> = if target == "*" {
            let Some((_, members)) = crate::model::COMPARTMENTS
                .iter()
                .find(|(name, _)| *name == focus)
            else {
                return self.service.handle(request).await;
            };
            let named: Vec<&str> = request
                .query
                .iter()
                .filter(|(name, _)| name == "_type")
                .flat_map(|(_, value)| value.split(','))
                .collect();
            members
                .iter()
                .map(|(member, _)| *member)
                .filter(|member| named.is_empty() || named.contains(member))
                .filter(|member| !self.grants(member, Interaction::Search).is_empty())
                .collect()
        } else {
            match concrete_type(target) {
                Some(type_name) => alloc::vec![type_name],
                None => return self.service.handle(request).await,
            }
        };
        let mut params = request.query.clone();
        for type_name in &types {
            let narrowing = match self.narrowing(type_name) {
                Ok(narrowing) => narrowing,
                Err(refused) => return refused,
            };
            if narrowing
                .compartment
                .as_ref()
                .is_some_and(|(own_focus, own_id)| own_focus != focus || own_id != id)
            {
                return forbidden(format!(
                    "the token reaches {type_name} only in another compartment than {focus}/{id}"
                ));
            }
            if target == "*" && !narrowing.criteria.is_empty() {
                return forbidden(format!(
                    "the token reaches {type_name} through granular scopes; search {focus}/{id}/{type_name}"
                ));
            }
            if let Err(refused) = self.check_probes(type_name, &params) {
                return refused;
            }
            params.extend(narrowing.criteria);
        }
        if types.is_empty() {
            return forbidden(format!(
                "the token's scopes allow searching no type of the {focus} compartment"
            ));
        }
        if target == "*" {
            params.retain(|(name, _)| name != "_type");
            params.push((String::from("_type"), types.join(",")));
        }
        let mut narrowed = Self::get(request, request.path.clone(), params);
        // Lenient handling would drop a criterion the type does not have.
        narrowed
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("prefer"));
        let response = self.service.handle(&narrowed).await;
        self.filter_bundle(response, false)
    }

    /// Where `type_name/id` stands in the store, read directly (not as a request, which
    /// would be answered, metered and shaped for a client).
    async fn standing(&self, type_name: &str, id: &str) -> Result<Standing, Response> {
        let store_failed = |err: crate::store::StoreError| {
            refusal(
                500,
                IssueType::Exception,
                format!("the store failed: {}", err.message),
            )
        };
        let mut tx = self
            .service
            .replica_begin(false)
            .await
            .map_err(store_failed)?;
        let Some(state) = Service::<S>::replica_state(&mut tx, type_name, id)
            .await
            .map_err(store_failed)?
        else {
            return Ok(Standing::Absent);
        };
        // A deletion tells no compartment: the version before it does.
        let version = if state.deleted {
            state.version.saturating_sub(1)
        } else {
            state.version
        };
        let json = Service::<S>::replica_version(&mut tx, type_name, id, version)
            .await
            .map_err(store_failed)?;
        let content = json.and_then(|json| parse_resource(json.as_bytes()).ok());
        Ok(if state.deleted {
            Standing::Deleted(content)
        } else {
            Standing::Live(content)
        })
    }

    /// `None` when `type_name/id` can be read with these claims, or does not exist (the
    /// service then answers for it); otherwise the answer for a resource that is out of reach
    /// (404, as if absent), deleted (410, when its last version was in reach), or of a type not
    /// granted (403).
    async fn check_readable(
        &self,
        request: &Request,
        type_name: &str,
        id: &str,
    ) -> Option<Response> {
        let grants = self.read_grants(type_name);
        if grants.is_empty() {
            return Some(Self::no_scope(type_name, "reading"));
        }
        let judge = Judge::of(self.service);
        let visible = |content: &Option<Object>| {
            content
                .as_ref()
                .is_some_and(|resource| judge.visible(&grants, resource))
        };
        match self.standing(type_name, id).await {
            Err(failed) => Some(failed),
            Ok(Standing::Absent) => Some(not_found(type_name, id)),
            Ok(Standing::Live(content)) if visible(&content) => None,
            Ok(Standing::Deleted(content)) if visible(&content) => {
                // The service's own answer for the deletion (410 with its version).
                let plain = Request {
                    method: String::from("GET"),
                    path: format!("{type_name}/{id}"),
                    query: Vec::new(),
                    headers: request
                        .headers
                        .iter()
                        .filter(|(name, _)| {
                            name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("origin")
                        })
                        .cloned()
                        .collect(),
                    body: Vec::new(),
                };
                Some(self.service.handle(&plain).await)
            }
            Ok(_) => Some(not_found(type_name, id)),
        }
    }

    /// A PUT whose body would be out of the token's reach, refused (403) before the id is
    /// looked up; `None` otherwise (other methods, or a body the service will refuse itself).
    fn judge_put_body(&self, request: &Request, type_name: &str, method: &str) -> Option<Response> {
        if method != "PUT" {
            return None;
        }
        let resource = parse_resource(&request.body).ok()?;
        let mut grants = self.grants(type_name, Interaction::Update);
        grants.extend(self.grants(type_name, Interaction::Create));
        if Judge::of(self.service).visible(&grants, &resource) {
            None
        } else {
            Some(forbidden(format!(
                "the {type_name} written would be outside what the token may write (its compartment or its granular scope)"
            )))
        }
    }

    /// `None` when `method` (PUT, PATCH, DELETE) may go on to `type_name/id`; otherwise the
    /// answer for an id that does not exist (404), whether it does not or is out of reach, so
    /// that a write tells nothing of what it can not reach, not even through If-Match. A PUT to
    /// an id never used goes on (a create, checked as one when written).
    async fn check_writable(&self, type_name: &str, id: &str, method: &str) -> Option<Response> {
        let interaction = if method == "DELETE" {
            Interaction::Delete
        } else {
            Interaction::Update
        };
        let grants = self.grants(type_name, interaction);
        let judge = Judge::of(self.service);
        match self.standing(type_name, id).await {
            Err(failed) => Some(failed),
            Ok(Standing::Absent) if method == "PUT" => None,
            Ok(Standing::Live(Some(resource)) | Standing::Deleted(Some(resource)))
                if judge.visible(&grants, &resource) =>
            {
                None
            }
            Ok(_) => Some(not_found(type_name, id)),
        }
    }

    async fn read(&self, request: &Request, type_name: &str, id: &str) -> Response {
        if let Some(refused) = self.check_readable(request, type_name, id).await {
            return refused;
        }
        let response = self.service.handle(request).await;
        if response.status != 200 {
            return response;
        }
        // A version read (vread) is judged on its own content.
        let grants = self.read_grants(type_name);
        let judge = Judge::of(self.service);
        match parse_resource(response.body.as_bytes()) {
            Ok(resource) if judge.visible(&grants, &resource) => response,
            // `_summary` and `_elements` may leave out what placed it: the whole was judged.
            Ok(_) if !request.query.is_empty() && !request.path.contains("/_history/") => response,
            _ => not_found(type_name, id),
        }
    }

    async fn instance_history(&self, request: &Request, type_name: &str, id: &str) -> Response {
        if let Some(refused) = self.check_readable(request, type_name, id).await {
            return refused;
        }
        let response = self.service.handle(request).await;
        self.filter_bundle(response, true)
    }

    async fn log_history(&self, request: &Request, type_name: Option<&str>) -> Response {
        let types: Vec<&'static str> = match type_name {
            Some(name) => match concrete_type(name) {
                Some(name) => alloc::vec![name],
                None => return self.service.handle(request).await,
            },
            None => crate::model::TYPES
                .iter()
                .filter(|def| def.is_concrete_resource())
                .map(|def| def.name)
                .collect(),
        };
        for name in &types {
            if !self
                .grants(name, Interaction::Search)
                .iter()
                .any(Grant::unrestricted)
            {
                return forbidden(format!(
                    "the history of {} is reached only by tokens that may search all of {name}; use the history of each resource, or a search with _lastUpdated",
                    type_name.unwrap_or("the whole server")
                ));
            }
        }
        self.service.handle(request).await
    }

    async fn everything(&self, request: &Request, id: &str) -> Response {
        if let Some(refused) = self.check_readable(request, "Patient", id).await {
            return refused;
        }
        // Only the types the token may read are gathered, so that counts and paging links
        // tell of nothing else; under granular scopes the page is filtered further, so no
        // count is given.
        let Some((_, members)) = crate::model::COMPARTMENTS
            .iter()
            .find(|(name, _)| *name == "Patient")
        else {
            return self.service.handle(request).await;
        };
        let named: Vec<&str> = request
            .query
            .iter()
            .filter(|(name, _)| name == "_type")
            .flat_map(|(_, value)| value.split(','))
            .collect();
        let mut types: Vec<&str> = members.iter().map(|(member, _)| *member).collect();
        types.push("Patient");
        types.retain(|type_name| {
            if named.is_empty() {
                *type_name != "AuditEvent"
            } else {
                named.contains(type_name)
            }
        });
        types.retain(|type_name| !self.read_grants(type_name).is_empty());
        if types.is_empty() {
            return forbidden("the token's scopes allow reading no type of the patient's record");
        }
        // Counts are given only when every type gathered is reached whole within this
        // patient's record (no granular criteria, no other compartment).
        let whole = types.iter().all(|type_name| {
            self.read_grants(type_name).iter().any(|grant| {
                grant.criteria.is_none()
                    && grant
                        .compartment
                        .as_ref()
                        .is_none_or(|(focus, focus_id)| focus == "Patient" && focus_id == id)
            })
        });
        let counting = request
            .query
            .iter()
            .any(|(name, value)| (name == "_summary" && value == "count") || name == "_total");
        if !whole && counting {
            return forbidden("$everything gives no count when the token reaches the record only in part; page through it instead");
        }
        let mut narrowed = request.clone();
        narrowed.query.retain(|(name, _)| name != "_type");
        narrowed
            .query
            .push((String::from("_type"), types.join(",")));
        let response = self.service.handle(&narrowed).await;
        let filtered = self.filter_bundle(response, true);
        if whole {
            return filtered;
        }
        // Reached in part: the total would count what is left out.
        match parse_resource(filtered.body.as_bytes()) {
            Ok(mut bundle) if filtered.status == 200 && bundle.type_def().name == "Bundle" => {
                bundle.remove("total");
                Response {
                    body: write_resource(&bundle, Style::Compact),
                    ..filtered
                }
            }
            _ => filtered,
        }
    }

    async fn create(&self, request: &Request, type_name: &str) -> Response {
        let Some(type_name) = concrete_type(type_name) else {
            return self.service.handle(request).await;
        };
        if self.grants(type_name, Interaction::Create).is_empty() {
            return Self::no_scope(type_name, "creating");
        }
        let condition = request
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("if-none-exist"))
            .map(|(_, value)| value.clone());
        let Some(condition) = condition else {
            return self.gated(request).await;
        };
        // The condition is searched within what the claims reach, so that a match outside
        // is never revealed; the create then runs on the match found (or none).
        let matches = match self.find_matches(request, type_name, &condition).await {
            Ok(matches) => matches,
            Err(refused) => return refused,
        };
        let mut rewritten = request.clone();
        rewritten
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("if-none-exist"));
        match matches.as_slice() {
            [] => self.gated(&rewritten).await,
            [id] => {
                rewritten
                    .headers
                    .push((String::from("if-none-exist"), format!("_id={id}")));
                self.gated(&rewritten).await
            }
            _ => refusal(
                412,
                IssueType::Duplicate,
                format!(
                    "If-None-Exist matches {} resources; it must match one at most",
                    matches.len()
                ),
            ),
        }
    }

    /// The ids of `type_name` resources matching `condition` (a query string) among those the
    /// claims can search, two at most.
    async fn find_matches(
        &self,
        request: &Request,
        type_name: &str,
        condition: &str,
    ) -> Result<Vec<String>, Response> {
        let mut params = crate::rest::query_pairs(condition.trim_start_matches('?'), false);
        params.push((String::from("_count"), String::from("2")));
        params.push((String::from("_elements"), String::from("id")));
        self.search_ids(request, type_name, params).await
    }

    async fn search_ids(
        &self,
        request: &Request,
        type_name: &str,
        params: Vec<(String, String)>,
    ) -> Result<Vec<String>, Response> {
        let search = Self::get(request, type_name.to_string(), params);
        let response = self.type_search(&search, type_name).await;
        if response.status != 200 {
            return Err(response);
        }
        let bundle = parse_resource(response.body.as_bytes()).map_err(|_| {
            refusal(
                500,
                IssueType::Exception,
                "the search gave an unreadable Bundle",
            )
        })?;
        Ok(bundle
            .objects("entry")
            .filter(|entry| {
                entry
                    .objects("search")
                    .next()
                    .and_then(|search| search.text("mode"))
                    != Some("include")
            })
            .filter_map(|entry| {
                entry_resource(entry).and_then(|resource| resource.id().map(ToString::to_string))
            })
            .collect())
    }

    /// Conditional update, delete and patch: the match is searched within what the claims
    /// reach, then the interaction runs on it by id.
    async fn conditional(&self, request: &Request, method: &str, type_name: &str) -> Response {
        let Some(type_name) = concrete_type(type_name) else {
            return self.service.handle(request).await;
        };
        let (interaction, what) = match method {
            "PUT" | "PATCH" => (Interaction::Update, "updating"),
            _ => (Interaction::Delete, "deleting"),
        };
        if self.grants(type_name, interaction).is_empty() {
            return Self::no_scope(type_name, what);
        }
        let mut params = request.query.clone();
        params.push((String::from("_count"), String::from("2")));
        params.push((String::from("_elements"), String::from("id")));
        let matches = match self.search_ids(request, type_name, params).await {
            Ok(matches) => matches,
            Err(refused) => return refused,
        };
        let by_id = |id: &str| Request {
            path: format!("{type_name}/{id}"),
            query: Vec::new(),
            ..request.clone()
        };
        match (method, matches.as_slice()) {
            (_, [id]) => self.gated(&by_id(id)).await,
            ("PUT", []) => {
                // No match: the resource is created, with its own id if it has one.
                let body_id = parse_resource(&request.body)
                    .ok()
                    .and_then(|resource| resource.id().map(ToString::to_string));
                let create = match body_id {
                    Some(id) => {
                        if let Some(absent) = self.check_writable(type_name, &id, "PUT").await {
                            return absent;
                        }
                        by_id(&id)
                    }
                    None => Request {
                        method: String::from("POST"),
                        path: type_name.to_string(),
                        query: Vec::new(),
                        ..request.clone()
                    },
                };
                if create.method == "POST" && self.grants(type_name, Interaction::Create).is_empty()
                {
                    return Self::no_scope(type_name, "creating");
                }
                self.gated(&create).await
            }
            ("DELETE", []) => Response {
                status: 204,
                headers: Vec::new(),
                body: String::new(),
            },
            ("PATCH", []) => refusal(
                404,
                IssueType::NotFound,
                format!("no {type_name} matches the conditional patch"),
            ),
            (_, found) => refusal(
                412,
                IssueType::Duplicate,
                format!(
                    "the condition matches {} {type_name} resources; it must match one",
                    found.len()
                ),
            ),
        }
    }

    /// A batch: each entry judged as if sent alone. A transaction: each entry's type and
    /// interaction judged before, each write checked as it is made, all or nothing.
    async fn bundle(&self, request: &Request) -> Response {
        let bundle = match parse_resource(&request.body) {
            Ok(bundle) if bundle.type_def().name == "Bundle" => bundle,
            // Not a Bundle: the service's answer says why, and runs nothing.
            _ => return self.service.handle(request).await,
        };
        let Ok(entries) = crate::rest::entries_of(&bundle) else {
            // An entry without a request: the service's answer says which.
            return self.service.handle(request).await;
        };
        let base = self.service.base().to_string();
        let requests: Vec<(usize, Request)> = entries
            .iter()
            .map(|entry| entry.request(&base, request))
            .enumerate()
            .collect();
        match bundle.text("type") {
            Some("batch") => {
                let mut answers = Vec::new();
                for (_, entry) in &requests {
                    let response = if entry.path.is_empty() {
                        refusal(
                            400,
                            IssueType::NotSupported,
                            "a batch cannot contain a batch",
                        )
                    } else {
                        self.route(entry).await
                    };
                    answers.push(crate::rest::response_entry(&response));
                }
                Response {
                    status: 200,
                    headers: alloc::vec![(
                        String::from("Content-Type"),
                        String::from("application/fhir+json; charset=utf-8"),
                    )],
                    body: format!(
                        r#"{{"resourceType":"Bundle","type":"batch-response"{}}}"#,
                        crate::rest::entries_json(&answers)
                    ),
                }
            }
            Some("transaction") => {
                for (index, entry) in &requests {
                    if let Err(refused) = self.judge_transaction_entry(*index, entry) {
                        return refused;
                    }
                    // Writes by id: what is out of reach answers as absent, before anything runs.
                    let segments: Vec<&str> = entry.path.trim_matches('/').split('/').collect();
                    if let [type_name, id] = segments.as_slice() {
                        if matches!(entry.method.as_str(), "PUT" | "PATCH" | "DELETE") {
                            if let Some(absent) =
                                self.check_writable(type_name, id, &entry.method).await
                            {
                                return refusal(
                                    absent.status,
                                    IssueType::NotFound,
                                    format!("entry {index}: {type_name}/{id} does not exist"),
                                );
                            }
                        }
                    }
                }
                let response = self.gated(request).await;
                self.filter_bundle(response, true)
            }
            _ => self.service.handle(request).await,
        }
    }

    /// A transaction entry is allowed when its type and interaction are; its writes are then
    /// checked as they are made. Conditions and reads, which would search outside what the
    /// claims reach, are refused when the claims are restricted for the type.
    fn judge_transaction_entry(&self, index: usize, entry: &Request) -> Result<(), Response> {
        let path = entry.path.trim_matches('/');
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let Some(type_name) = segments.first().and_then(|name| concrete_type(name)) else {
            return Err(forbidden(format!(
                "entry {index}: {} /{path} is not allowed with the token's scopes",
                entry.method
            )));
        };
        let (interaction, what) = match entry.method.as_str() {
            "POST" => (Interaction::Create, "creating"),
            "PUT" | "PATCH" => (Interaction::Update, "updating"),
            "DELETE" => (Interaction::Delete, "deleting"),
            "GET" | "HEAD" if segments.len() == 1 => (Interaction::Search, "searching"),
            _ => (Interaction::Read, "reading"),
        };
        let grants = self.grants(type_name, interaction);
        if grants.is_empty() {
            return Err(forbidden(format!(
                "entry {index}: the token's scopes do not allow {what} {type_name} resources"
            )));
        }
        // Searches a transaction makes run over the whole store: references by search
        // (`Patient?identifier=…`), ifNoneExist and conditional URLs. Each must be a search the
        // token could make freely, chains and _has included.
        let mut searches = conditional_references(&entry.body);
        if let Some((_, condition)) = entry
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("if-none-exist"))
        {
            searches.push((
                type_name.to_string(),
                crate::rest::query_pairs(condition.trim_start_matches('?'), false),
            ));
        }
        if !entry.query.is_empty() {
            searches.push((type_name.to_string(), entry.query.clone()));
        }
        for (target, params) in &searches {
            if self.probe_allowed(target).is_err() || self.check_probes(target, params).is_err() {
                return Err(forbidden(format!(
                    "entry {index}: a search of {target} inside a transaction (a conditional reference, ifNoneExist or a conditional URL) is not allowed: it would reach what the token reaches only in part; send it on its own"
                )));
            }
        }
        let conditional = !entry.query.is_empty()
            || entry
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("if-none-exist"))
            || matches!(interaction, Interaction::Read | Interaction::Search);
        if conditional && !grants.iter().any(Grant::unrestricted) {
            return Err(forbidden(format!(
                "entry {index}: a condition or read on {type_name} in a transaction is not allowed when the token reaches {type_name} only in part; send it on its own"
            )));
        }
        Ok(())
    }

    /// Leaves out of a Bundle answer what the claims can not read. `all`: every entry is
    /// judged (history, `$everything`, transaction answers); otherwise only the included ones
    /// (a narrowed search's matches are in reach by construction, and may be summaries that
    /// no longer show what placed them).
    fn filter_bundle(&self, response: Response, all: bool) -> Response {
        if response.status != 200 || !response.body.starts_with(r#"{"resourceType":"Bundle""#) {
            return response;
        }
        let Ok(mut bundle) = parse_resource(response.body.as_bytes()) else {
            return refusal(500, IssueType::Exception, "the answer could not be checked");
        };
        let judge = Judge::of(self.service);
        let Some(entry_element) = bundle
            .type_def()
            .elements
            .iter()
            .position(|element| element.name == "entry")
            .and_then(|at| u16::try_from(at).ok())
        else {
            return response;
        };
        // A transaction's answer shows what it wrote, each write checked as it was made.
        let transaction = bundle.text("type") == Some("transaction-response");
        let before = bundle.fields.len();
        bundle.fields.retain(|field| {
            if field.element != entry_element {
                return true;
            }
            let Value::Complex(entry) = &field.value else {
                return true;
            };
            let included = entry
                .objects("search")
                .next()
                .and_then(|search| search.text("mode"))
                == Some("include");
            if !all && !included {
                return true;
            }
            match entry_resource(entry) {
                Some(resource) if resource.type_def().name == "OperationOutcome" => true,
                Some(resource) => {
                    judge.visible(&self.read_grants(resource.type_def().name), resource)
                        || (transaction && self.may_write(resource.type_def().name))
                }
                None => true,
            }
        });
        if bundle.fields.len() == before {
            return response;
        }
        // The total would count what was left out.
        bundle.remove("total");
        Response {
            body: write_resource(&bundle, Style::Compact),
            ..response
        }
    }

    /// Whether the claims may create or update `type_name` resources.
    fn may_write(&self, type_name: &str) -> bool {
        !self.grants(type_name, Interaction::Create).is_empty()
            || !self.grants(type_name, Interaction::Update).is_empty()
    }
}

/// The searches a resource's JSON refers by (`"reference":"Patient?identifier=…"`): the type
/// and the query of each.
fn conditional_references(body: &[u8]) -> Vec<(String, Vec<(String, String)>)> {
    let text = core::str::from_utf8(body).unwrap_or_default();
    let mut found = Vec::new();
    for (at, _) in text.match_indices(r#""reference":""#) {
        let value = &text[at + r#""reference":""#.len()..];
        let value = value.split('"').next().unwrap_or_default();
        if let Some((target, query)) = value.split_once('?') {
            let target = target.rsplit('/').next().unwrap_or(target).to_string();
            found.push((target, crate::rest::query_pairs(query, false)));
        }
    }
    found
}

fn entry_resource(entry: &Object) -> Option<&Object> {
    entry.values("resource").find_map(|value| match value {
        Value::Resource(resource) => Some(resource),
        _ => None,
    })
}

/// The check on each write of a request, made in the write's transaction: for restricted
/// claims, a created resource must be in reach for creating, an updated one in reach before
/// and after, a deleted one in reach before. AuditEvents are never changed. With the audit
/// on, it also makes each write's record.
pub(crate) struct Gate {
    pub access: Access,
    pub claims: Claims,
    pub judge: Judge,
    /// False for claims that reach everything: only the rules for all apply.
    pub restricted: bool,
    /// The request's method (a patch is recorded as one).
    pub method: String,
    /// When the interaction was handled, for its records; `None`: no audit.
    pub recorded_at: Option<String>,
    /// The records made (of writes not yet known to be committed).
    pub records: Cell<u32>,
}

impl WriteGate for Gate {
    fn check(
        &self,
        type_name: &str,
        id: &str,
        before: Option<&Object>,
        after: Option<&Object>,
    ) -> Result<(), String> {
        if type_name == "AuditEvent" {
            return Err(String::from(if before.is_some() {
                "AuditEvents are kept as they were recorded: they are not updated or deleted"
            } else {
                "AuditEvents are recorded by the service itself; they are not created through the API"
            }));
        }
        if !self.restricted {
            return Ok(());
        }
        if type_name == "SearchParameter" {
            // A search parameter changes what every search and compartment finds.
            return Err(String::from(
                "only a token that reaches everything (system/*.*) may write SearchParameters",
            ));
        }
        let (interaction, what) = match (before, after) {
            (None, Some(_)) => (Interaction::Create, "create"),
            (Some(_), Some(_)) => (Interaction::Update, "update"),
            _ => (Interaction::Delete, "delete"),
        };
        let grants = self.access.grants(&self.claims, type_name, interaction);
        if grants.is_empty() {
            return Err(format!(
                "the token's scopes do not allow it to {what} {type_name} resources"
            ));
        }
        let reach = |resource: Option<&Object>| {
            resource.is_none_or(|resource| self.judge.visible(&grants, resource))
        };
        if !reach(before) {
            return Err(format!(
                "{type_name}/{id} is outside what the token may {what}"
            ));
        }
        if !reach(after) {
            return Err(format!(
                "the {type_name} written would be outside what the token may {what} (its compartment or its granular scope)"
            ));
        }
        Ok(())
    }

    fn record(
        &self,
        type_name: &str,
        id: &str,
        version: u64,
        before: Option<&Object>,
        after: Option<&Object>,
    ) -> Option<String> {
        let recorded = self.recorded_at.clone()?;
        let kind = match (before, after) {
            (_, None) => audit::Kind {
                subtype: "delete",
                action: 'D',
            },
            (None, Some(_)) => audit::Kind {
                subtype: if self.method == "PUT" {
                    "update"
                } else {
                    "create"
                },
                action: 'C',
            },
            (Some(_), Some(_)) => audit::Kind {
                subtype: if self.method == "PATCH" {
                    "patch"
                } else {
                    "update"
                },
                action: 'U',
            },
        };
        let mut entities = alloc::vec![audit::Entity::Resource(format!(
            "{type_name}/{id}/_history/{version}"
        ))];
        if let Some(resource) = after.or(before) {
            entities.extend(
                audit::patients_of(&self.judge, resource)
                    .into_iter()
                    .map(audit::Entity::Patient),
            );
        }
        self.records.set(self.records.get() + 1);
        Some(
            audit::Event {
                kind,
                recorded,
                status: 200,
                description: None,
                claims: &self.claims,
                observer: &self.judge.base_url,
                entities,
            }
            .to_json(),
        )
    }
}

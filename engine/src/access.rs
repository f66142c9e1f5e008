//! Access control around the REST service: what a request's verified claims (SMART scopes,
//! the launch patient, the user and their roles) let it do.
//!
//! [`Access::handle`] takes a request with its [`Claims`] (verified by the host: a token's
//! signature, issuer, audience and lifetime are the host's to check) and answers it through
//! [`Service::handle`], allowed, narrowed or refused:
//! - a type the scopes do not grant for the interaction is refused with 403
//!   (`insufficient_scope`), which says nothing about the data;
//! - `patient/` scopes reach the patient compartment of the `patient` claim: searches are run
//!   as compartment searches, a resource outside it is answered as absent (404) when read and
//!   refused (403) when written. Types the Patient compartment does not define (Medication,
//!   Practitioner, Organization...) are not patient data and are reached as the scope says;
//! - `user/` scopes, when [`Roles`] are configured, reach only what a role of the user also
//!   grants, within the compartment of the user (`fhirUser`) when the role says so;
//! - granular scopes (`patient/Observation.rs?category=laboratory`) add their criteria to
//!   searches and are checked on every resource read or written;
//! - every write is checked in its own store transaction ([`crate::rest::WriteGate`]),
//!   before and after, so a transaction Bundle or a patch can not reach out of scope;
//! - what leaves in a Bundle (included resources, history, batch answers) is checked again,
//!   and what is not visible is left out.
//!
//! [`scope`] reads SMART v1 and v2 scopes.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::outcome::{IssueType, OperationOutcome};
use crate::resource::Object;
use crate::rest::{Request, Response, Service};
use crate::store::Store;

mod audit;
mod guard;
pub mod scope;

pub use scope::{Context, Interaction, Scopes};

/// The verified claims a request comes with.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// The token's scopes.
    pub scopes: Scopes,
    /// The launch patient (`patient` claim): the id of the Patient `patient/` scopes reach.
    pub patient: Option<String>,
    /// The launch encounter (`encounter` claim).
    pub encounter: Option<String>,
    /// The user (`fhirUser` claim): `Practitioner/123`, or an absolute URL ending so.
    pub fhir_user: Option<String>,
    /// The client (`client_id` or `azp` claim).
    pub client_id: Option<String>,
    /// The token's subject (`sub` claim).
    pub subject: Option<String>,
    /// The user's roles, for [`Roles`].
    pub roles: Vec<String>,
}

impl Claims {
    /// The user as `(type, id)`, from `fhirUser`.
    pub fn user(&self) -> Option<(&str, &str)> {
        let user = self.fhir_user.as_deref()?;
        let mut parts = user.trim_end_matches('/').rsplit('/');
        let id = parts.next()?;
        let type_name = parts.next()?;
        (crate::model::resource_type(type_name).is_some() && !id.is_empty())
            .then_some((type_name, id))
    }
}

/// One role: what it allows (`Observation.rs`, `*.cruds`, as resource scopes without their
/// context) and, optionally, the compartment it is held to: that of the user's own resource
/// (`Practitioner`: the resources of the practitioner who is the `fhirUser`).
#[derive(Debug, Clone, Default)]
pub struct Role {
    /// What the role allows.
    pub allows: Vec<scope::Scope>,
    /// The compartment type the role is held to, with the user as its focus.
    pub compartment: Option<String>,
}

/// Roles by name: what a `user/` scope may reach for a user holding them.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    roles: BTreeMap<String, Role>,
}

impl Roles {
    /// Reads a roles file: `{"roles": {"clinician": {"allow": ["*.cruds"],
    /// "compartment": "Practitioner"}, "front-desk": {"allow": ["Patient.crus"]}}}`.
    ///
    /// # Errors
    /// A message naming what is wrong: not JSON, a role without `allow`, a permission that
    /// is not a resource scope, or a compartment that is not one of R4's.
    pub fn from_json(text: &str) -> Result<Roles, String> {
        use crate::json::reader::{parse, Limits, Member, Value};
        fn field<'v>(members: &'v [Member], key: &str) -> Option<&'v Value> {
            members
                .iter()
                .find(|member| member.key == key)
                .map(|member| &member.node.value)
        }
        let tree = parse(text.as_bytes(), Limits::default()).map_err(|err| {
            format!(
                "the roles file is not JSON: {} at line {}, column {}",
                err.message, err.line, err.column
            )
        })?;
        let Value::Object(top) = &tree.value else {
            return Err(String::from("the roles file must be a JSON object"));
        };
        let Some(Value::Object(entries)) = field(top, "roles") else {
            return Err(String::from(
                "the roles file needs a \"roles\" object of roles by name",
            ));
        };
        let mut roles = BTreeMap::new();
        for Member {
            key: name, node, ..
        } in entries
        {
            let Value::Object(role) = &node.value else {
                return Err(format!("the role \"{name}\" must be an object"));
            };
            let Some(Value::Array(allow)) = field(role, "allow") else {
                return Err(format!("the role \"{name}\" has no \"allow\" list"));
            };
            let mut allows = Vec::new();
            for item in allow {
                let Value::String(text) = &item.value else {
                    return Err(format!(
                        "the role \"{name}\" allows a value that is not text"
                    ));
                };
                let parsed = Scopes::parse(&format!("user/{text}"));
                match parsed.resources.into_iter().next() {
                    Some(scope) if parsed.refused.is_empty() && !text.contains(' ') => {
                        allows.push(scope)
                    }
                    _ => {
                        return Err(format!(
                            "the role \"{name}\" allows \"{text}\", which is not Type.permissions (such as Observation.rs or *.cruds)"
                        ))
                    }
                }
            }
            let compartment = match field(role, "compartment") {
                None | Some(Value::Null) => None,
                Some(Value::String(focus))
                    if crate::model::COMPARTMENTS
                        .iter()
                        .any(|(compartment, _)| compartment == focus) =>
                {
                    Some(focus.clone())
                }
                Some(_) => {
                    return Err(format!(
                        "the role \"{name}\" has a \"compartment\" that is not one of Patient, Encounter, RelatedPerson, Practitioner, Device"
                    ))
                }
            };
            roles.insert(
                name.clone(),
                Role {
                    allows,
                    compartment,
                },
            );
        }
        Ok(Roles { roles })
    }

    /// The role `name`.
    pub fn get(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }
}

/// One way a request may reach resources of a type: within a compartment (`None`: anywhere)
/// and meeting a granular scope's criteria (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The compartment (`Patient`, `123`).
    pub compartment: Option<(String, String)>,
    /// Criteria every resource reached must meet (all of them).
    pub criteria: Option<Vec<(String, String)>>,
}

impl Grant {
    fn unrestricted(&self) -> bool {
        self.compartment.is_none() && self.criteria.is_none()
    }
}

/// Types that hold no one's health data (directories, medication knowledge, terminology and
/// conformance, knowledge artifacts): a token held to a compartment may read and search them
/// as its scopes say. Every other type outside the compartment is out of its reach.
const SHARED_TYPES: [&str; 27] = [
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "OrganizationAffiliation",
    "Location",
    "HealthcareService",
    "Endpoint",
    "Medication",
    "MedicationKnowledge",
    "Substance",
    "ValueSet",
    "CodeSystem",
    "ConceptMap",
    "NamingSystem",
    "StructureDefinition",
    "CapabilityStatement",
    "OperationDefinition",
    "SearchParameter",
    "CompartmentDefinition",
    "ImplementationGuide",
    "Questionnaire",
    "ActivityDefinition",
    "PlanDefinition",
    "Library",
    "ObservationDefinition",
    "SpecimenDefinition",
    "DeviceDefinition",
];

/// How a grant held to the compartment `focus/id` reaches `type_name` for `interaction`: within
/// the compartment (`Some(Some(..))`), freely (`Some(None)`: a shared type, read or searched), or
/// not at all (`None`).
fn held_to(
    focus: &str,
    id: &str,
    type_name: &str,
    interaction: Interaction,
) -> Option<Option<(String, String)>> {
    if in_compartment_definition(focus, type_name) {
        Some(Some((focus.to_string(), id.to_string())))
    } else if SHARED_TYPES.contains(&type_name)
        && matches!(interaction, Interaction::Read | Interaction::Search)
    {
        Some(None)
    } else {
        None
    }
}

/// True when `type_name` has a place in the compartment `focus` (or is its focus type).
pub(crate) fn in_compartment_definition(focus: &str, type_name: &str) -> bool {
    type_name == focus
        || crate::model::COMPARTMENTS
            .iter()
            .find(|(name, _)| *name == focus)
            .is_some_and(|(_, members)| members.iter().any(|(member, _)| *member == type_name))
}

/// The access layer: the configuration ([`Roles`], the audit) under which requests are
/// judged.
#[derive(Debug, Clone)]
pub struct Access {
    roles: Option<Rc<Roles>>,
    audit: bool,
}

impl Default for Access {
    fn default() -> Self {
        Access::new()
    }
}

impl Access {
    /// Judged by scopes alone (`user/` scopes reach what they say), every interaction audited.
    pub fn new() -> Self {
        Access {
            roles: None,
            audit: true,
        }
    }

    /// `user/` scopes reach only what a role of the user also allows.
    pub fn with_roles(roles: Roles) -> Self {
        Access {
            roles: Some(Rc::new(roles)),
            ..Access::new()
        }
    }

    /// With the audit trail on (the default) or off.
    #[must_use]
    pub fn audited(mut self, on: bool) -> Self {
        self.audit = on;
        self
    }

    /// The grants `claims` give for `interaction` on `type_name` (none: refused).
    pub(crate) fn grants(
        &self,
        claims: &Claims,
        type_name: &str,
        interaction: Interaction,
    ) -> Vec<Grant> {
        let mut grants = Vec::new();
        let criteria =
            |scope: &scope::Scope| (!scope.query.is_empty()).then(|| scope.query.clone());
        for scope in claims
            .scopes
            .granting(Context::System, type_name, interaction)
        {
            grants.push(Grant {
                compartment: None,
                criteria: criteria(scope),
            });
        }
        let patient = claims
            .patient
            .as_ref()
            .and_then(|patient| held_to("Patient", patient, type_name, interaction));
        if let Some(compartment) = patient {
            for scope in claims
                .scopes
                .granting(Context::Patient, type_name, interaction)
            {
                grants.push(Grant {
                    compartment: compartment.clone(),
                    criteria: criteria(scope),
                });
            }
        }
        for scope in claims
            .scopes
            .granting(Context::User, type_name, interaction)
        {
            let Some(roles) = &self.roles else {
                grants.push(Grant {
                    compartment: None,
                    criteria: criteria(scope),
                });
                continue;
            };
            for role in claims.roles.iter().filter_map(|name| roles.get(name)) {
                for allowed in role
                    .allows
                    .iter()
                    .filter(|allowed| allowed.covers(type_name, interaction))
                {
                    let compartment = match &role.compartment {
                        None => None,
                        Some(focus) => match claims.user() {
                            Some((user_type, id)) if user_type == focus => {
                                match held_to(focus, id, type_name, interaction) {
                                    Some(compartment) => compartment,
                                    None => continue,
                                }
                            }
                            // A role held to the user's compartment grants nothing to a
                            // token that names no such user.
                            _ => continue,
                        },
                    };
                    let mut both: Vec<(String, String)> = scope.query.clone();
                    both.extend(allowed.query.iter().cloned());
                    grants.push(Grant {
                        compartment,
                        criteria: (!both.is_empty()).then_some(both),
                    });
                }
            }
        }
        if grants.iter().any(Grant::unrestricted) {
            grants.retain(Grant::unrestricted);
            grants.truncate(1);
        }
        grants
    }

    /// True when `claims` reach every interaction on every type without restriction (a
    /// `system/*.*` token): requests go to the service as they are. Each interaction needs a
    /// wildcard scope without criteria, of the system, or of the user and, with roles, a role
    /// of the user allowing every type without criteria or compartment.
    fn unrestricted(&self, claims: &Claims) -> bool {
        let whole = |scope: &scope::Scope, interaction: Interaction| {
            scope.resource.is_none()
                && scope.query.is_empty()
                && scope.permissions.allow(interaction)
        };
        let role_allows_all = |interaction: Interaction| match &self.roles {
            None => true,
            Some(roles) => claims
                .roles
                .iter()
                .filter_map(|name| roles.get(name))
                .any(|role| {
                    role.compartment.is_none()
                        && role
                            .allows
                            .iter()
                            .any(|allowed| whole(allowed, interaction))
                }),
        };
        [
            Interaction::Create,
            Interaction::Read,
            Interaction::Update,
            Interaction::Delete,
            Interaction::Search,
        ]
        .into_iter()
        .all(|interaction| {
            claims.scopes.resources.iter().any(|scope| {
                whole(scope, interaction)
                    && match scope.context {
                        Context::System => true,
                        Context::User => role_allows_all(interaction),
                        Context::Patient => false,
                    }
            })
        })
    }

    /// Answers `request` as `claims` allow, and records it.
    pub async fn handle<S: Store>(
        &self,
        service: &Service<S>,
        request: &Request,
        claims: &Claims,
    ) -> Response {
        if request.query.iter().any(|(name, _)| name == "access_token") {
            let refused = service.answer_outside(
                request,
                refusal(
                    401,
                    IssueType::Security,
                    "an access token is not accepted in the query string; send it in the Authorization header",
                )
                .with_header(
                    "WWW-Authenticate",
                    String::from("Bearer error=\"invalid_request\""),
                ),
            );
            return self.finish(service, request, claims, None, refused).await;
        }
        let restricted = !self.unrestricted(claims);
        let gate = Rc::new(guard::Gate {
            access: self.clone(),
            claims: claims.clone(),
            judge: Judge::of(service),
            restricted,
            method: request.method.to_ascii_uppercase(),
            recorded_at: self.audit.then(|| service.now()),
            records: core::cell::Cell::new(0),
        });
        // Skipping validation is for callers that reach everything (an import by a system).
        let stripped;
        let request = if restricted
            && request
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("x-validation"))
        {
            let mut copy = request.clone();
            copy.headers
                .retain(|(name, _)| !name.eq_ignore_ascii_case("x-validation"));
            stripped = copy;
            &stripped
        } else {
            request
        };
        let response = if restricted {
            let guard = guard::Guard {
                access: self,
                service,
                claims,
                gate: Rc::clone(&gate),
            };
            let response = guard.route(request).await;
            if response.status == 403 && response.header("WWW-Authenticate").is_none() {
                response.with_header(
                    "WWW-Authenticate",
                    String::from("Bearer error=\"insufficient_scope\""),
                )
            } else {
                response
            }
        } else {
            service
                .handle_gated(request, Rc::clone(&gate) as Rc<dyn crate::rest::WriteGate>)
                .await
        };
        self.finish(service, request, claims, Some(&gate), response)
            .await
    }

    /// Answers a request the host refused before any claims were known (a token missing or
    /// invalid: `status` 401), with the `WWW-Authenticate` challenge, and records the refusal.
    pub async fn refuse<S: Store>(
        &self,
        service: &Service<S>,
        request: &Request,
        status: u16,
        message: &str,
        challenge: &str,
    ) -> Response {
        let code = if status == 401 {
            IssueType::Login
        } else {
            IssueType::Forbidden
        };
        let refused = service.answer_outside(
            request,
            refusal(status, code, message).with_header("WWW-Authenticate", challenge.to_string()),
        );
        self.finish(service, request, &Claims::default(), None, refused)
            .await
    }

    /// Records the interaction (unless its writes were recorded with them) and gives the
    /// answer; an interaction that can not be recorded is not answered.
    async fn finish<S: Store>(
        &self,
        service: &Service<S>,
        request: &Request,
        claims: &Claims,
        gate: Option<&guard::Gate>,
        response: Response,
    ) -> Response {
        if !self.audit || request.method.eq_ignore_ascii_case("OPTIONS") {
            return response;
        }
        let mut kind = audit::kind_of(&request.method, &request.path);
        if kind.subtype == "batch" && bundle_type(&request.body).as_deref() == Some("transaction") {
            kind.subtype = "transaction";
        }
        let writes_recorded = gate.is_some_and(|gate| gate.records.get() > 0);
        if (200..300).contains(&response.status)
            && writes_recorded
            && !matches!(kind.subtype, "batch" | "transaction")
        {
            return response;
        }
        let mut entities = Vec::new();
        let path = request.path.trim_matches('/');
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [type_name, id, rest @ ..]
                if crate::model::resource_type(type_name).is_some()
                    && !id.starts_with('$')
                    && !id.starts_with('_') =>
            {
                let reference = match rest {
                    ["_history", version] => format!("{type_name}/{id}/_history/{version}"),
                    _ => format!("{type_name}/{id}"),
                };
                entities.push(audit::Entity::Resource(reference));
                if *type_name == "Patient" {
                    entities.push(audit::Entity::Patient((*id).to_string()));
                }
            }
            _ => {}
        }
        if kind.action == 'E' && !matches!(kind.subtype, "batch" | "transaction")
            || kind.subtype.starts_with("history-")
        {
            let query: Vec<String> = request
                .query
                .iter()
                .map(|(name, value)| {
                    format!(
                        "{}={}",
                        crate::rest::encode_component(name),
                        crate::rest::encode_component(value)
                    )
                })
                .collect();
            let mut text = format!("{}/{path}", service.base());
            if !query.is_empty() {
                text.push('?');
                text.push_str(&query.join("&"));
            }
            if request.method.eq_ignore_ascii_case("POST") && !request.body.is_empty() {
                text.push_str(if query.is_empty() { "?" } else { "&" });
                text.push_str(core::str::from_utf8(&request.body).unwrap_or_default());
            }
            entities.push(audit::Entity::Query(text));
        }
        let searches = matches!(
            kind.subtype,
            "search-type" | "search-system" | "history-type" | "history-system" | "operation"
        );
        let mut description = None;
        if response
            .body
            .starts_with(r#"{"resourceType":"OperationOutcome""#)
        {
            if let Ok(outcome) = crate::json::fhir::parse_resource(response.body.as_bytes()) {
                description = outcome
                    .objects("issue")
                    .find_map(|issue| issue.text("diagnostics"))
                    .map(ToString::to_string);
            }
        } else if response.body.starts_with('{') {
            if kind.subtype == "batch" || kind.subtype == "transaction" {
                if let Ok(answer) = crate::json::fhir::parse_resource(response.body.as_bytes()) {
                    for location in answer.objects("entry").filter_map(|entry| {
                        entry
                            .objects("response")
                            .next()
                            .and_then(|response| response.text("location"))
                    }) {
                        entities.push(audit::Entity::Resource(crate::rest::relative(
                            location,
                            service.base(),
                        )));
                    }
                }
            }
            // A resource read or written names its patients; a query names the patient it is
            // about (BALP's patient query), not every patient of its results.
            if !searches {
                entities.extend(
                    audit::patients_in_json(&response.body, service.base())
                        .into_iter()
                        .map(audit::Entity::Patient),
                );
            }
        }
        if searches {
            entities.extend(
                audit::patients_of_query(request, claims)
                    .into_iter()
                    .map(audit::Entity::Patient),
            );
        }
        let event = audit::Event {
            kind,
            recorded: gate
                .and_then(|gate| gate.recorded_at.clone())
                .unwrap_or_else(|| service.now()),
            status: response.status,
            description,
            claims,
            observer: service.base(),
            entities,
        };
        match service.append_record(&event.to_json()).await {
            Ok(()) => response,
            Err(err) => service.answer_outside(
                request,
                refusal(
                    500,
                    IssueType::Exception,
                    format!(
                        "the interaction could not be recorded in the audit trail, so it is not answered: {}",
                        err.message
                    ),
                ),
            ),
        }
    }
}

/// The `type` of the Bundle in `body`, if it is one.
fn bundle_type(body: &[u8]) -> Option<String> {
    use crate::json::reader::{parse, Limits, Value};
    let tree = parse(body, Limits::default()).ok()?;
    let Value::Object(members) = tree.value else {
        return None;
    };
    members
        .into_iter()
        .find_map(|member| match member.node.value {
            Value::String(text) if member.key == "type" => Some(text),
            _ => None,
        })
}

/// An OperationOutcome answer of the access layer.
pub(crate) fn refusal(status: u16, code: IssueType, message: impl Into<String>) -> Response {
    Response {
        status,
        headers: alloc::vec![(
            String::from("Content-Type"),
            String::from("application/fhir+json; charset=utf-8"),
        )],
        body: OperationOutcome::error(code, message.into()).to_json(),
    }
}

/// What judging a resource needs: the search parameters in force and the base URL.
#[derive(Clone)]
pub(crate) struct Judge {
    pub registry: Rc<crate::search::Registry>,
    pub base_url: String,
}

impl Judge {
    pub(crate) fn of<S: Store>(service: &Service<S>) -> Judge {
        Judge {
            // The core parameters: a stored SearchParameter may not change who is in reach.
            registry: service.core_registry(),
            base_url: service.base().to_string(),
        }
    }

    /// Whether `resource` can be reached through one of `grants`.
    pub(crate) fn visible(&self, grants: &[Grant], resource: &Object) -> bool {
        grants.iter().any(|grant| {
            grant.compartment.as_ref().is_none_or(|(focus, id)| {
                crate::rest::in_compartment(&self.registry, &self.base_url, resource, focus, id)
            }) && grant
                .criteria
                .as_ref()
                .is_none_or(|criteria| self.matches_now(resource, criteria))
        })
    }

    /// Whether `resource` meets `criteria`, judged on the resource alone. Granular scopes
    /// hold no chains or `_has`, so no store is read: the empty store given answers nothing,
    /// and a criterion that would need one fails, which keeps the resource out.
    fn matches_now(&self, resource: &Object, criteria: &[(String, String)]) -> bool {
        use core::future::Future;
        use core::task::{Context as TaskContext, Poll, Waker};
        let context = crate::search::Context {
            registry: &self.registry,
            base_url: &self.base_url,
        };
        let empty = crate::store::MemoryStore::new();
        let judged = async {
            let mut tx = crate::store::Store::begin(&empty, false)
                .await
                .map_err(crate::search::SearchError::store)?;
            crate::search::resource_matches(&mut tx, &context, resource, criteria).await
        };
        let mut judged = core::pin::pin!(judged);
        match judged
            .as_mut()
            .poll(&mut TaskContext::from_waker(Waker::noop()))
        {
            Poll::Ready(Ok(found)) => found,
            _ => false,
        }
    }
}

//! Validation against the R4 base specification: cardinality, primitive formats (the spec's
//! regular expressions), required terminology bindings whose codes the engine carries, and
//! every invariant of the core StructureDefinitions, evaluated with the FHIRPath engine.
//!
//! Findings are results, not failures: an invalid resource yields a list of [`Finding`]s.
//! Structural rules of FHIR JSON (unknown elements, wrong JSON types) are checked earlier, when
//! the resource is read ([`crate::json::fhir`]).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::fhirpath::{self, Expression, Item, LocalResolver, Options};
use crate::model::{self, BindingStrength, ConstraintSeverity, ElementDef, TypeId, CONSTRAINTS};
use crate::outcome::{IssueType, OperationOutcome, Severity};
use crate::resource::{Object, PrimitiveValue, Value};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error, warning or information.
    pub severity: Severity,
    /// The issue type.
    pub code: IssueType,
    /// What is wrong, for a developer.
    pub message: String,
    /// FHIRPath location: `Patient.contact[0]`.
    pub path: String,
    /// The invariant's key (`pat-1`), for invariant findings.
    pub constraint: Option<&'static str>,
}

/// Validates a resource against the R4 base specification.
///
/// This compiles what it needs afresh; to validate many resources, keep a [`Validator`].
pub fn validate(resource: &Object) -> Vec<Finding> {
    Validator::new().validate(resource)
}

/// Validates resources, keeping the invariants and patterns it has compiled for the next.
#[derive(Default)]
pub struct Validator {
    /// Compiled invariants by index into [`CONSTRAINTS`]; `None` when one does not compile.
    compiled: BTreeMap<u16, Option<Expression>>,
    /// Compiled primitive regexes by type.
    regexes: BTreeMap<TypeId, Option<regex_automata::meta::Regex>>,
    /// The vital signs profiles, once an Observation has needed them.
    vital_signs: Option<alloc::rc::Rc<Profiles>>,
}

impl Validator {
    /// A validator that has compiled nothing yet.
    pub fn new() -> Self {
        Validator::default()
    }

    /// Validates a resource against the R4 base specification.
    pub fn validate(&mut self, resource: &Object) -> Vec<Finding> {
        self.validate_with(resource, &ValidateOptions::default())
    }

    /// [`Validator::validate`], with extra checks, and against profiles: those the resource
    /// claims in `meta.profile` (when loaded) and the one asked for.
    pub fn validate_with(
        &mut self,
        resource: &Object,
        options: &ValidateOptions<'_>,
    ) -> Vec<Finding> {
        let mut walk = Walk {
            findings: Vec::new(),
            validator: self,
            options: *options,
            depth: 0,
            conformance: Vec::new(),
            held_as: None,
            resource_at: 0,
        };
        let path = String::from(resource.type_def().name);
        walk.object(resource, resource, resource, &path, true);
        if let Some(profiles) = options.profiles {
            let claimed = claimed_profiles(resource);
            let unversioned = |url: &str| url.split('|').next().unwrap_or(url).to_string();
            for url in claimed {
                if options.profile.map(unversioned) != Some(unversioned(url)) {
                    walk.profile(profiles, resource, url, Severity::Information);
                }
            }
            if let Some(url) = options.profile {
                walk.profile(profiles, resource, url, Severity::Error);
            }
            // Resources inside (contained, Bundle entries, Parameters) are checked against
            // the loaded profiles they claim.
            let mut nested = Vec::new();
            if !profiles.is_empty() {
                nested_resources(resource, resource, &path, &mut nested);
            }
            if options.skip_contained {
                nested.retain(|(_, _, inner_path)| !inner_path.contains(".contained["));
            }
            for (inner, root, inner_path) in nested {
                for url in claimed_profiles(inner) {
                    walk.profile_at(
                        profiles,
                        inner,
                        root,
                        url,
                        Severity::Information,
                        &inner_path,
                    );
                }
            }
        }
        walk.findings
    }
}

impl Validator {
    /// Reads `bytes` as a FHIR resource and validates it, as [`Validator::validate_with`];
    /// content that cannot be read is reported in the outcome too. Each issue has the line and
    /// column of its element.
    pub fn validate_json(
        &mut self,
        bytes: &[u8],
        options: &ValidateOptions<'_>,
    ) -> OperationOutcome {
        let source = if options.allow_comments {
            match crate::json::blank_comments(bytes) {
                Ok(source) => source,
                Err(err) => return crate::Error::Json(err).to_outcome().1,
            }
        } else {
            alloc::borrow::Cow::Borrowed(bytes)
        };
        // What breaks the JSON rules is reported, and the rest of the resource validated, as
        // validators do; findings that only repeat a reading error are left out.
        let (resource, reading) = match crate::json::fhir::parse_resource_partial(&source) {
            Ok(read) => read,
            Err(err) => return err.to_outcome().1,
        };
        let findings = self.validate_with(&resource, options);
        if reading.is_empty() {
            return to_outcome_in(&findings, &source);
        }
        let kept: Vec<Finding> = findings
            .into_iter()
            .filter(|finding| !repeats_reading_error(finding, &reading))
            .collect();
        let mut outcome = crate::Error::Resource(reading).to_outcome().1;
        let validated = to_outcome_in(&kept, &source);
        // A resource with reading errors is not valid: no "all OK" information.
        outcome.issues.extend(
            validated
                .issues
                .into_iter()
                .filter(|issue| issue.code != IssueType::Informational || !kept.is_empty()),
        );
        outcome
    }
}

/// True when `finding` is about an element that could not be read: at or below its path, or
/// its parent's finding that the element is missing.
fn repeats_reading_error(finding: &Finding, reading: &[crate::json::ParseError]) -> bool {
    reading
        .iter()
        .filter_map(|err| err.path.as_deref())
        .any(|bad| {
            // A choice element is named by its type when read (`answer.ofType(boolean)`).
            let bad = match bad.rfind(".ofType(") {
                Some(at) if bad.ends_with(')') => bad.get(..at).unwrap_or(bad),
                _ => bad,
            };
            // Below what could not be read (not at it: a companion `_name` that could not
            // be read is reported at its value's path, and the value's findings stand).
            let below = finding
                .path
                .strip_prefix(bad)
                .is_some_and(|rest| rest.starts_with(['.', '[']));
            let (parent, name) = bad.rsplit_once('.').unwrap_or(("", bad));
            let name = name.split('[').next().unwrap_or(name);
            let missing = finding.code == IssueType::Required
                && finding.path == parent
                && finding.message.contains(&format!("\"{name}\""));
            // An object left with no content once the unreadable element is out breaks the
            // "has content" invariants of the objects that hold it.
            let emptied = matches!(finding.constraint, Some("ele-1" | "ext-1"))
                && bad
                    .strip_prefix(finding.path.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']));
            below || missing || emptied
        })
}

/// [`to_outcome`], with the line and column of each finding in `source`, the JSON text the
/// resource was read from.
pub fn to_outcome_in(findings: &[Finding], source: &[u8]) -> OperationOutcome {
    let mut outcome = to_outcome(findings);
    if findings.is_empty() {
        return outcome;
    }
    // Findings on the resource itself (dom-6 and the like, on most resources) are at its
    // opening brace; the text is parsed again only for findings deeper inside.
    let start = source.iter().position(|byte| !byte.is_ascii_whitespace());
    let tree = if findings.iter().any(|finding| finding.path.contains('.')) {
        match crate::json::reader::parse(source, crate::json::reader::Limits::default()) {
            Ok(tree) => Some(tree),
            Err(_) => return outcome,
        }
    } else {
        None
    };
    let offsets: Vec<Option<usize>> = findings
        .iter()
        .map(|finding| match &tree {
            Some(tree) => crate::json::locate(tree, &finding.path),
            None => start,
        })
        .collect();
    let known: Vec<usize> = offsets.iter().flatten().copied().collect();
    let mut positions = crate::json::positions(source, &known).into_iter();
    for (issue, offset) in outcome.issues.iter_mut().zip(&offsets) {
        if offset.is_some() {
            issue.position = positions.next();
        }
    }
    outcome
}

/// Findings as an OperationOutcome (one information issue when there are none, since an
/// OperationOutcome must have at least one issue).
pub fn to_outcome(findings: &[Finding]) -> OperationOutcome {
    let mut outcome = OperationOutcome::default();
    for finding in findings {
        outcome.issues.push(crate::outcome::Issue {
            severity: finding.severity,
            code: finding.code,
            diagnostics: finding.message.clone(),
            expression: alloc::vec![finding.path.clone()],
            position: None,
        });
    }
    if outcome.issues.is_empty() {
        outcome.issues.push(crate::outcome::Issue {
            severity: Severity::Information,
            code: IssueType::Informational,
            diagnostics: String::from("no issues found"),
            expression: Vec::new(),
            position: None,
        });
    }
    outcome
}

/// Longest string value (R4 §2.24.0.1 string: "Strings SHALL NOT exceed 1MB in size").
const MAX_STRING_BYTES: usize = 1024 * 1024;

mod bundle_references;
mod extensions;
mod profile;
mod questionnaire;
mod rules;
mod vital_signs;

pub use profile::Profiles;

/// The profiles a resource claims in `meta.profile`.
fn claimed_profiles(resource: &Object) -> Vec<&str> {
    resource
        .objects("meta")
        .flat_map(|meta| meta.texts("profile"))
        .collect()
}

/// The fields of `object` with their element and their position among that element's values.
fn indexed_fields(
    object: &Object,
) -> impl Iterator<Item = (&crate::resource::Field, &'static ElementDef, usize)> {
    let elements = object.type_def().elements;
    let mut previous: Option<(u16, usize)> = None;
    object.fields.iter().filter_map(move |field| {
        let index = match previous {
            Some((element, index)) if element == field.element => index + 1,
            _ => 0,
        };
        previous = Some((field.element, index));
        Some((field, elements.get(usize::from(field.element))?, index))
    })
}

/// Every resource inside `object` (at any depth), with its `%rootResource` and its path.
fn nested_resources<'a>(
    object: &'a Object,
    root: &'a Object,
    path: &str,
    out: &mut Vec<(&'a Object, &'a Object, String)>,
) {
    for (field, element, index_in_element) in indexed_fields(object) {
        if matches!(field.value, Value::Primitive(_)) {
            continue;
        }
        let here = child_path(
            path,
            element.name,
            element.is_array().then_some(index_in_element),
        );
        match &field.value {
            Value::Resource(inner) => {
                let inner_root = if element.name == "contained" {
                    root
                } else {
                    inner
                };
                out.push((inner, inner_root, here.clone()));
                nested_resources(inner, inner_root, &here, out);
            }
            Value::Complex(inner) => nested_resources(inner, root, &here, out),
            Value::Primitive(_) => {}
        }
    }
}

/// `path.name` or `path.name[index]`, built without the formatting machinery (validation
/// builds one for every element).
/// The resource type a literal reference names: `Type/id`, relative or absolute, with or
/// without `_history/v`, or a conditional `Type?query`; `None` for references inside the
/// resource or a Bundle (`#id`, `urn:`) and URLs that name no R4 resource type.
pub(crate) fn literal_reference_type(text: &str) -> Option<&str> {
    if text.starts_with('#') || text.starts_with("urn:") {
        return None;
    }
    // Walked from the end, without collecting the segments: this runs on every reference.
    let type_name = match text.split_once('?') {
        Some((url, _)) => url.trim_end_matches('/').rsplit('/').next()?,
        None => {
            let mut segments = text.trim_end_matches('/').rsplit('/');
            let last = segments.next()?;
            let before = segments.next()?;
            if before == "_history" {
                let _id = segments.next()?;
                segments.next()?
            } else {
                let _ = last;
                before
            }
        }
    };
    model::resource_type(type_name).map(|_| type_name)
}

/// `a Patient`, `a Patient or a Group`, `a Patient, a Group or a Device`.
pub(crate) fn one_of(types: &[&str]) -> String {
    let named: Vec<String> = types
        .iter()
        .map(|name| crate::outcome::with_article(name))
        .collect();
    match named.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn child_path(path: &str, name: &str, index: Option<usize>) -> String {
    let mut res = String::with_capacity(path.len() + name.len() + 8);
    res.push_str(path);
    res.push('.');
    res.push_str(name);
    if let Some(index) = index {
        crate::json::fhir::push_index(&mut res, index);
    }
    res
}

/// Where `text` has something that looks like an HTML tag: `<` followed by a letter, `/`, or
/// `!`, and a `>` later on.
fn embedded_tag(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    // One pass: the last `>` decides whether any opening has a closing after it.
    let last_close = bytes.iter().rposition(|&byte| byte == b'>')?;
    bytes
        .iter()
        .enumerate()
        .take(last_close)
        .find_map(|(idx, &byte)| {
            let next = bytes.get(idx + 1)?;
            let opens = byte == b'<' && (next.is_ascii_alphabetic() || matches!(next, b'/' | b'!'));
            (opens && idx + 1 < last_close).then_some(idx)
        })
}

/// The DomainResource invariants about contained resources, which
/// [`ValidateOptions::skip_contained`] leaves out with the resources themselves.
const CONTAINED_RULES: [&str; 4] = ["dom-2", "dom-3", "dom-4", "dom-5"];

/// ele-1, "All FHIR elements must have a @value or children".
const ELE_1: &str = "hasValue() or (children().count() > id.count())";

/// ele-1 without FHIRPath: a primitive with a value, or an element with a child other than
/// its `id`.
fn ele_1(item: &Item<'_>) -> bool {
    let has_child = |object: &Object| {
        let elements = object.type_def().elements;
        object.fields.iter().any(|field| {
            elements
                .get(usize::from(field.element))
                .is_none_or(|element| element.name != "id")
        })
    };
    match item {
        Item::Object(object) => has_child(object),
        Item::Primitive(primitive, _) => {
            primitive.value.is_some() || primitive.companion.as_deref().is_some_and(has_child)
        }
        _ => true,
    }
}

/// Checks beyond the specification's, for content that will be shown to people.
#[derive(Clone, Copy, Default)]
pub struct ValidateOptions<'p> {
    /// Profiles and value sets loaded for validation.
    pub profiles: Option<&'p Profiles>,
    /// A profile to validate against (besides those the resource claims), by URL.
    pub profile: Option<&'p str>,
    /// Strings (other than narrative) that look like they embed HTML tags are errors: a
    /// defence against script injection where content is displayed.
    pub security_checks: bool,
    /// Markdown that embeds HTML tags is an error (presentation layers should escape it, but
    /// not all do).
    pub no_html_in_markdown: bool,
    /// [`Validator::validate_json`] reads JSON with comments (`//` and `/* */`, as JSON5 and
    /// some authoring tools write it); FHIR JSON itself has none.
    pub allow_comments: bool,
    /// Contained resources are not checked: neither their content nor the rules about them
    /// (dom-2 to dom-5), for content whose contained resources are checked elsewhere.
    pub skip_contained: bool,
}

/// One validation: the findings so far, and the validator's compiled invariants and patterns.
struct Walk<'v> {
    findings: Vec<Finding>,
    validator: &'v mut Validator,
    options: ValidateOptions<'v>,
    /// How many `profile` discriminators deep this walk is.
    depth: usize,
    /// Resources (by address) already checked against a profile by a `profile`
    /// discriminator, and the answer.
    conformance: Vec<(usize, String, bool)>,
    /// For the next object walked: the type that defines the element holding it, and the
    /// element's name.
    held_as: Option<(TypeId, &'static str)>,
    /// Where the path of the resource being walked ends, in the paths of its elements.
    resource_at: usize,
}

impl Walk<'_> {
    /// Notes an invariant that was not checked (information, not an error).
    fn not_checked(&mut self, key: &'static str, why: String, path: &str) {
        self.findings.push(Finding {
            severity: Severity::Information,
            code: IssueType::Informational,
            message: format!("{key}: {why}, so it was not checked"),
            path: String::from(path),
            constraint: Some(key),
        });
    }

    fn find(&mut self, severity: Severity, code: IssueType, message: String, path: &str) {
        self.findings.push(Finding {
            severity,
            code,
            message,
            path: String::from(path),
            constraint: None,
        });
    }

    /// Validates `object` at `path`; `resource` is the resource that holds it (`%resource`).
    /// With `type_constraints`, the invariants of the object's type are checked here; for
    /// element values the caller checks them together with the element's, once each.
    ///
    /// `root` is `%rootResource`: the container for contained resources, and the resource
    /// itself otherwise (a Bundle entry's resource is its own root).
    fn object<'a>(
        &mut self,
        object: &'a Object,
        resource: &'a Object,
        root: &'a Object,
        path: &str,
        type_constraints: bool,
    ) {
        let def = object.type_def();
        let owner = self.held_as.take();
        let outer_resource_at = self.resource_at;
        if def.kind == model::TypeKind::Resource {
            self.resource_at = path.len();
            self.resource_rules(object, path);
            if def.name == "Observation" {
                self.vital_signs(object, root, path);
            }
            if def.name == "QuestionnaireResponse" {
                if let Some(profiles) = self.options.profiles {
                    self.questionnaire_response(profiles, object, path);
                }
            }
        } else {
            self.type_rules(object, path);
        }
        if type_constraints {
            let mut evaluated: Vec<u16> = Vec::new();
            for &constraint in def.constraints {
                self.constraint(
                    constraint,
                    Item::Object(object),
                    resource,
                    root,
                    path,
                    &mut evaluated,
                );
            }
        }
        // Fields are sorted by element: one pass counts them all.
        let mut counts = alloc::vec![0usize; def.elements.len()];
        for field in &object.fields {
            if let Some(count) = counts.get_mut(usize::from(field.element)) {
                *count += 1;
            }
        }
        for (element, &count) in def.elements.iter().zip(&counts) {
            let name = element.name;
            if count < element.min as usize {
                let message = if element.min == 1 {
                    format!("missing required element \"{name}\" (minimum cardinality 1)")
                } else {
                    format!(
                        "expected at least {} values for \"{name}\", found {count}",
                        element.min
                    )
                };
                self.find(Severity::Error, IssueType::Required, message, path);
            }
            if element.max != model::MANY && count > element.max as usize {
                let message = format!(
                    "expected at most {} values for \"{name}\", found {count}",
                    element.max
                );
                self.find(Severity::Error, IssueType::Structure, message, path);
            }
        }
        // The path of `object` from its resource, without indexes, once an extension needs it.
        let mut place_path: Option<String> = None;
        for (field, element, index_in_element) in indexed_fields(object) {
            let Some(element_type) = element.types.get(usize::from(field.choice)) else {
                continue;
            };
            if self.options.skip_contained && element.name == "contained" {
                continue;
            }
            let child_path = child_path(
                path,
                element.name,
                element.is_array().then_some(index_in_element),
            );
            let item = Item::from_value(&field.value, element_type.type_id);
            // The element's invariants and, for a complex value, its type's; each once.
            let type_constraints: &[u16] = match &field.value {
                Value::Complex(inner) => inner.type_def().constraints,
                _ => &[],
            };
            let mut child_evaluated: Vec<u16> = Vec::new();
            for &constraint in element.constraints.iter().chain(type_constraints) {
                self.constraint(
                    constraint,
                    item.clone(),
                    resource,
                    root,
                    &child_path,
                    &mut child_evaluated,
                );
            }
            self.binding(element, &field.value, element_type.type_id, &child_path);
            if let Value::Complex(reference) = &field.value {
                if !element_type.targets.is_empty() && reference.type_def().name == "Reference" {
                    self.reference_target(reference, element_type.targets, &child_path);
                }
            }
            if let (Value::Complex(extension), "extension" | "modifierExtension") =
                (&field.value, element.name)
            {
                let place_path = place_path.get_or_insert_with(|| {
                    let relative = path.get(self.resource_at..).unwrap_or_default();
                    let mut res = String::from(resource.type_def().name);
                    res.push_str(&extensions::without_indexes(relative));
                    res
                });
                let place = extensions::Place {
                    owner,
                    path: place_path,
                };
                self.extension(extension, object.type_id, &place, &child_path);
            }
            self.held_as = Some((object.type_id, element.name));
            match &field.value {
                Value::Complex(inner) => {
                    self.object(inner, resource, root, &child_path, false);
                }
                Value::Resource(inner) => {
                    self.held_as = None;
                    let inner_root = if element.name == "contained" {
                        root
                    } else {
                        inner
                    };
                    self.object(inner, inner, inner_root, &child_path, true);
                }
                Value::Primitive(primitive) => {
                    if let Some(value) = &primitive.value {
                        self.primitive(element_type.type_id, value, &child_path);
                    }
                    if let Some(companion) = &primitive.companion {
                        self.object(companion, resource, root, &child_path, false);
                    }
                }
            }
            self.held_as = None;
        }
        self.resource_at = outer_resource_at;
    }

    fn constraint<'a>(
        &mut self,
        idx: u16,
        item: Item<'a>,
        resource: &'a Object,
        root: &'a Object,
        path: &str,
        evaluated: &mut Vec<u16>,
    ) {
        if evaluated.contains(&idx) {
            return;
        }
        evaluated.push(idx);
        let Some(constraint) = CONSTRAINTS.get(usize::from(idx)) else {
            return;
        };
        if constraint.expression.is_empty()
            || (self.options.skip_contained && CONTAINED_RULES.contains(&constraint.key))
        {
            return;
        }
        if constraint.expression == ELE_1 {
            // Every element of every resource has ele-1: it is checked natively.
            if !ele_1(&item) {
                self.invariant_failed(constraint, path);
            }
            return;
        }
        let compiled = self
            .validator
            .compiled
            .entry(idx)
            .or_insert_with(|| fhirpath::compile(constraint.expression).ok());
        let Some(expression) = compiled.as_ref() else {
            self.not_checked(
                constraint.key,
                String::from("the invariant could not be compiled"),
                path,
            );
            return;
        };
        let resolver = LocalResolver::new(root);
        let options = Options {
            resolver: Some(&resolver),
            root_resource: Some(root),
            lenient_as: true,
            ..Options::default()
        };
        // The expression is borrowed from the map only for this evaluation.
        let expression: &Expression = expression;
        let outcome = expression.evaluate_items(
            core::slice::from_ref(&item),
            Some(Item::Object(resource)),
            &options,
        );
        let holds = match outcome {
            Ok(result) => !matches!(result.as_slice(), [Item::Boolean(false)]),
            Err(err) => {
                self.not_checked(
                    constraint.key,
                    format!("the invariant could not be evaluated ({err})"),
                    path,
                );
                return;
            }
        };
        if !holds {
            self.invariant_failed(constraint, path);
        }
    }

    /// Checks that a literal reference (`Type/id`, relative or absolute, with or without
    /// `_history`, or a conditional `Type?query`) names a type the element allows. References
    /// inside the resource or a Bundle (`#id`, `urn:`) and targets given by profile URL are
    /// not judged here.
    fn reference_target(&mut self, reference: &Object, targets: &[&str], path: &str) {
        let Some(text) = reference.text("reference") else {
            return;
        };
        // Abstract targets (`Resource`, `DomainResource`) allow any resource; targets by
        // profile URL are not judged here.
        if targets.iter().any(|target| {
            target.contains('/')
                || model::type_by_name(target)
                    .is_some_and(|type_id| model::type_def(type_id).is_abstract)
        }) {
            return;
        }
        let Some(type_name) = literal_reference_type(text) else {
            return;
        };
        if targets.contains(&type_name) {
            return;
        }
        let message = format!(
            "expected a reference to {}, found a reference to {} \"{text}\"",
            one_of(targets),
            crate::outcome::with_article(type_name)
        );
        let reference_path = child_path(path, "reference", None);
        self.find(
            Severity::Error,
            IssueType::Structure,
            message,
            &reference_path,
        );
    }

    fn invariant_failed(&mut self, constraint: &'static model::Constraint, path: &str) {
        let severity = match constraint.severity {
            ConstraintSeverity::Error => Severity::Error,
            ConstraintSeverity::Warning => Severity::Warning,
        };
        self.findings.push(Finding {
            severity,
            code: IssueType::Invariant,
            message: format!("{}: {}", constraint.key, constraint.human),
            path: String::from(path),
            constraint: Some(constraint.key),
        });
    }

    fn primitive(&mut self, type_id: TypeId, value: &PrimitiveValue, path: &str) {
        let def = model::type_def(type_id);
        let text = match value {
            PrimitiveValue::String(text) | PrimitiveValue::Number(text) => text.as_str(),
            PrimitiveValue::Boolean(_) => return,
        };
        if text.len() > MAX_STRING_BYTES {
            let message = format!(
                "the value is {} bytes long; FHIR strings are at most 1 MB ({MAX_STRING_BYTES} bytes)",
                text.len()
            );
            self.find(Severity::Error, IssueType::TooLong, message, path);
            return;
        }
        let html_check = match def.name {
            "markdown" => self.options.security_checks || self.options.no_html_in_markdown,
            "string" => self.options.security_checks,
            _ => false,
        };
        if html_check {
            if let Some(at) = embedded_tag(text) {
                let shown: String = text
                    .get(at..)
                    .unwrap_or_default()
                    .chars()
                    .take(20)
                    .collect();
                let message = format!(
                    "the {} embeds what looks like an HTML tag (\"{shown}\"), which is not allowed here",
                    def.name
                );
                self.find(Severity::Error, IssueType::Invalid, message, path);
            }
        }
        if text.len() > MAX_STRING_BYTES {
            let message = format!(
                "the value is {} bytes long; FHIR strings are at most 1 MB ({MAX_STRING_BYTES} bytes)",
                text.len()
            );
            self.find(Severity::Error, IssueType::TooLong, message, path);
            return;
        }
        let Some(pattern) = def.primitive.and_then(|primitive| primitive.regex) else {
            return;
        };
        let regex = self.validator.regexes.entry(type_id).or_insert_with(|| {
            // The specification's regexes are Java's, where \s and \S are ASCII classes.
            let java = pattern
                .replace("\\S", "[^ \\t\\n\\x0B\\f\\r]")
                .replace("\\s", "[ \\t\\n\\x0B\\f\\r]");
            let anchored = format!("^(?:{java})$");
            regex_automata::meta::Regex::new(&anchored).ok()
        });
        if let Some(regex) = regex {
            if !regex.is_match(text) {
                let shown: String = text.chars().take(60).collect();
                let message = format!("expected a valid {} value, found \"{shown}\"", def.name);
                self.find(Severity::Error, IssueType::Value, message, path);
            }
        }
    }

    /// Required bindings whose value set the engine carries.
    fn binding(&mut self, element: &ElementDef, value: &Value, type_id: TypeId, path: &str) {
        let Some(binding) = element.binding else {
            return;
        };
        if binding.strength != BindingStrength::Required {
            return;
        }
        let Some(codes) = binding
            .value_set_idx
            .and_then(|idx| model::VALUE_SETS.get(usize::from(idx)))
            .and_then(|vs| vs.codes)
        else {
            return;
        };
        let in_value_set = |system: Option<&str>, code: &str| {
            codes.iter().any(|(sys, c)| {
                *c == code
                    && system.is_none_or(|system| {
                        model::CODE_SYSTEMS.get(usize::from(*sys)) == Some(&system)
                    })
            })
        };
        let type_name = model::type_def(type_id).name;
        let text_of = |object: &Object, name: &str| -> Option<String> {
            match object.values(name).next()? {
                Value::Primitive(primitive) => match &primitive.value {
                    Some(PrimitiveValue::String(text)) => Some(text.clone()),
                    _ => None,
                },
                _ => None,
            }
        };
        let coding_ok = |coding: &Object| match text_of(coding, "code") {
            Some(code) => in_value_set(text_of(coding, "system").as_deref(), &code),
            None => true,
        };
        let ok = match (type_name, value) {
            ("code", Value::Primitive(primitive)) => match &primitive.value {
                Some(PrimitiveValue::String(code)) => in_value_set(None, code),
                _ => true,
            },
            ("Coding", Value::Complex(coding)) => coding_ok(coding),
            ("CodeableConcept", Value::Complex(concept)) => {
                let codings: Vec<&Object> = concept
                    .values("coding")
                    .filter_map(|value| match value {
                        Value::Complex(coding) => Some(coding),
                        _ => None,
                    })
                    .collect();
                codings.is_empty()
                    || codings
                        .iter()
                        .any(|coding| text_of(coding, "code").is_some() && coding_ok(coding))
            }
            _ => true,
        };
        if !ok {
            let message = format!(
                "the value is not in the required value set {}",
                binding.value_set
            );
            self.find(Severity::Error, IssueType::CodeInvalid, message, path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_tags_are_found_in_one_pass() {
        assert_eq!(embedded_tag("Ann <script>x</script>"), Some(4));
        assert_eq!(embedded_tag("a < b > c"), None);
        assert_eq!(embedded_tag("<b"), None);
        assert_eq!(embedded_tag("x</p>"), Some(1));
        // Hostile input: a million openings without a closing, then with one at the end.
        let many = "<a".repeat(500_000);
        assert_eq!(embedded_tag(&many), None);
        assert_eq!(embedded_tag(&format!("{many}>")), Some(0));
    }

    #[test]
    fn child_paths_name_the_element_and_index() {
        assert_eq!(child_path("Patient", "name", None), "Patient.name");
        assert_eq!(child_path("Patient", "name", Some(0)), "Patient.name[0]");
        assert_eq!(
            child_path("Bundle", "entry", Some(1207)),
            "Bundle.entry[1207]"
        );
    }

    /// The native ele-1 agrees with its FHIRPath on every element of the R4 examples.
    #[test]
    fn native_ele_1_agrees_with_its_fhirpath() {
        let expression = fhirpath::compile(ELE_1).unwrap_or_else(|err| panic!("{err}"));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/examples");
        let mut checked = 0;
        let mut stack: Vec<Item<'_>> = Vec::new();
        let mut resources = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            if let Ok(resource) = crate::json::fhir::parse_resource(&bytes) {
                resources.push(resource);
            }
        }
        // An element with only an id, which ele-1 refuses.
        let only_id = crate::json::fhir::parse_resource(
            br#"{"resourceType":"Patient","name":[{"id":"n1"}]}"#,
        )
        .unwrap_or_else(|err| panic!("{err}"));
        resources.push(only_id);
        let mut refused = 0;
        for resource in &resources {
            stack.push(Item::Object(resource));
            while let Some(item) = stack.pop() {
                let fhirpath = expression
                    .evaluate_items(core::slice::from_ref(&item), None, &Options::default())
                    .map(|result| !matches!(result.as_slice(), [Item::Boolean(false)]));
                assert_eq!(fhirpath.ok(), Some(ele_1(&item)), "{item:?}");
                refused += usize::from(!ele_1(&item));
                checked += 1;
                let object = match &item {
                    Item::Object(object) => Some(*object),
                    Item::Primitive(primitive, _) => primitive.companion.as_deref(),
                    _ => None,
                };
                for field in object
                    .map(|object| object.fields.as_slice())
                    .unwrap_or_default()
                {
                    let type_id = object
                        .and_then(|object| object.element_def(field))
                        .and_then(|element| element.types.get(usize::from(field.choice)))
                        .map(|element_type| element_type.type_id);
                    if let Some(type_id) = type_id {
                        stack.push(Item::from_value(&field.value, type_id));
                    }
                }
            }
        }
        assert!(checked > 50_000, "checked {checked} elements");
        // The example corpus has a few elements that break ele-1 too.
        assert!(refused >= 1, "the element with only an id was not refused");
    }
}

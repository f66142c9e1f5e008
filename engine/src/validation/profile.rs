//! Profiles: StructureDefinitions loaded at run time (US Core, QI-Core, an IG's own), and the
//! value sets that ship with them.
//!
//! A profile is checked from its differential: what it adds to its base. The base
//! specification is checked anyway, and a base that is itself a loaded profile is checked too,
//! so the differential is all that is left to check. A profile that comes with a snapshot only
//! (as many published packages ship them) is reduced to what its snapshot says beyond the base
//! specification; the snapshot already holds what the profiles between them add, so those
//! are not walked again. Checked: cardinality, types of choice
//! elements, fixed and pattern values, required bindings to value sets the engine knows or was
//! given, the profile's own invariants, and slicing (discriminators `value`, `pattern`,
//! `exists` and `type`, extensions by URL; closed slicing refuses unmatched values).

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Walk;
use crate::fhirpath::{self, Expression, Item, LocalResolver, Options};
use crate::model::{self, TypeId};
use crate::outcome::{IssueType, Severity};
use crate::resource::{Object, PrimitiveValue, Value};

/// Deepest nesting of `profile` discriminators checked (a resource in a resource in ...).
const MAX_PROFILE_DEPTH: usize = 8;

/// Loaded profiles, value sets and Questionnaires.
#[derive(Default)]
pub struct Profiles {
    profiles: Vec<Profile>,
    value_sets: Vec<(String, Vec<Code>)>,
    /// Questionnaires by `url`, which QuestionnaireResponses naming them are checked against.
    questionnaires: Vec<Object>,
}

/// A code of a value set, with its system when the value set names one.
type Code = (Option<String>, String);

/// A StructureDefinition reduced to what validation checks.
struct Profile {
    url: String,
    type_name: String,
    base: Option<String>,
    /// Read from a snapshot: the rules hold what every profile it derives from adds.
    from_snapshot: bool,
    rules: Vec<Rule>,
}

/// One element of a differential.
struct Rule {
    /// `Observation.code.coding:loinc.system`.
    id: String,
    /// The element's name within its parent (`value` for `value[x]`).
    name: String,
    /// `valueQuantity` names one type of a choice.
    type_suffix: Option<String>,
    slice_name: Option<String>,
    min: Option<u32>,
    max: Option<Option<u32>>,
    types: Vec<String>,
    type_profiles: Vec<String>,
    /// For references: the profiles their targets must conform to, by URL.
    target_profiles: Vec<String>,
    fixed: Option<Value>,
    pattern: Option<Value>,
    /// `minValue[x]` and `maxValue[x]`, with their types.
    min_value: Option<(Value, TypeId)>,
    max_value: Option<(Value, TypeId)>,
    binding: Option<String>,
    invariants: Vec<Invariant>,
    discriminators: Vec<(String, String)>,
    closed: bool,
}

struct Invariant {
    key: String,
    human: String,
    error: bool,
    expression: Option<Expression>,
}

/// `Observation.value[x]` → (`value`, None); `Observation.valueQuantity` on a choice
/// element → (`value`, `Quantity`).
fn split_name(last: &str, parent_type: Option<TypeId>) -> (String, Option<String>) {
    if let Some(base) = last.strip_suffix("[x]") {
        return (base.to_owned(), None);
    }
    if let Some(def) = parent_type.map(model::type_def) {
        if def.elements.iter().all(|element| element.name != last) {
            if let Some(json_name) = def.json_name(last) {
                if let Some(element) = def.elements.get(usize::from(json_name.element)) {
                    let suffix = last.get(element.name.len()..).unwrap_or_default();
                    return (element.name.to_owned(), Some(suffix.to_owned()));
                }
            }
        }
    }
    (last.to_owned(), None)
}

impl Profiles {
    /// No profiles.
    pub fn new() -> Self {
        Profiles::default()
    }

    /// Loads a StructureDefinition, a ValueSet, a Questionnaire, or a Bundle of them; answers
    /// how many it loaded. Anything else is ignored.
    ///
    /// A QuestionnaireResponse whose `questionnaire` names a loaded Questionnaire is checked
    /// against it.
    pub fn load(&mut self, resource: &Object) -> usize {
        match resource.type_def().name {
            "StructureDefinition" => usize::from(self.load_profile(resource)),
            "ValueSet" => usize::from(self.load_value_set(resource)),
            "Questionnaire" if resource.text("url").is_some() => {
                self.questionnaires.push(resource.clone());
                1
            }
            "Bundle" => resource
                .objects("entry")
                .flat_map(|entry| entry.objects("resource"))
                .map(|inner| self.load(inner))
                .sum(),
            _ => 0,
        }
    }

    /// True when no profile is loaded.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// The URLs of the loaded profiles.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.profiles.iter().map(|profile| profile.url.as_str())
    }

    fn load_value_set(&mut self, value_set: &Object) -> bool {
        let Some(url) = value_set.text("url") else {
            return false;
        };
        let mut codes = Vec::new();
        let mut excluded: Vec<Code> = Vec::new();
        // Codes listed one by one are known; a whole system, a filter or another value set
        // is not, unless the value set comes expanded.
        let mut enumerated = true;
        for compose in value_set.objects("compose") {
            for (name, list) in [("include", &mut codes), ("exclude", &mut excluded)] {
                for part in compose.objects(name) {
                    let system = part.text("system").map(ToOwned::to_owned);
                    let concepts: Vec<&Object> = part.objects("concept").collect();
                    if name == "include"
                        && (concepts.is_empty()
                            || part.values("filter").next().is_some()
                            || part.values("valueSet").next().is_some())
                    {
                        enumerated = false;
                    }
                    for concept in concepts {
                        if let Some(code) = concept.text("code") {
                            list.push((system.clone(), code.to_owned()));
                        }
                    }
                }
            }
        }
        let expanded = value_set.objects("expansion").next().is_some();
        let mut stack: Vec<&Object> = value_set.objects("expansion").collect();
        while let Some(node) = stack.pop() {
            for contains in node.objects("contains") {
                if let Some(code) = contains.text("code") {
                    codes.push((
                        contains.text("system").map(ToOwned::to_owned),
                        code.to_owned(),
                    ));
                }
                stack.push(contains);
            }
        }
        codes.retain(|code| !excluded.contains(code));
        if enumerated || expanded {
            self.value_sets.push((url.to_owned(), codes));
        }
        true
    }

    fn load_profile(&mut self, definition: &Object) -> bool {
        let (Some(url), Some(type_name)) = (definition.text("url"), definition.text("type")) else {
            return false;
        };
        let differential: Vec<&Object> = definition
            .objects("differential")
            .flat_map(|list| list.objects("element"))
            .collect();
        let from_snapshot = differential.is_empty();
        let elements = if from_snapshot {
            definition
                .objects("snapshot")
                .flat_map(|list| list.objects("element"))
                .collect()
        } else {
            differential
        };
        let mut rules = Vec::new();
        // Elements without ids belong to the slice declared last above them at their path
        // (`Patient.telecom:phone` then `Patient.telecom.system`), as snapshots would say.
        let mut open_slices: Vec<(String, String)> = Vec::new();
        for element in elements {
            let derived = if element.text("id").is_some() {
                None
            } else {
                element.text("path").map(|path| {
                    let sliced = open_slices
                        .iter()
                        .rev()
                        .find(|(base, _)| {
                            path.strip_prefix(base.as_str())
                                .is_some_and(|rest| rest.starts_with('.'))
                        })
                        .map(|(base, slice_id)| {
                            format!("{slice_id}{}", path.get(base.len()..).unwrap_or_default())
                        });
                    sliced.unwrap_or_else(|| path.to_owned())
                })
            };
            if let Some(path) = element.text("path") {
                open_slices.retain(|(base, _)| base != path);
                if let Some(slice) = element.text("sliceName") {
                    let base_id = derived.clone().unwrap_or_else(|| {
                        element
                            .text("id")
                            .map(|id| id.rsplit_once(':').map_or(id, |(base, _)| base).to_owned())
                            .unwrap_or_else(|| path.to_owned())
                    });
                    open_slices.push((path.to_owned(), format!("{base_id}:{slice}")));
                }
            }
            let Some(mut rule) = rule(element, type_name, derived) else {
                continue;
            };
            if from_snapshot {
                let path = element.text("path").unwrap_or_default();
                if !beyond_base(&mut rule, type_name, path) {
                    continue;
                }
            }
            rules.push(rule);
        }
        self.profiles.retain(|profile| profile.url != url);
        self.profiles.push(Profile {
            url: url.to_owned(),
            type_name: type_name.to_owned(),
            base: definition.text("baseDefinition").map(ToOwned::to_owned),
            from_snapshot,
            rules,
        });
        true
    }

    /// The loaded Questionnaire a canonical names: `url`, `url|version`, or a relative
    /// `Questionnaire/id` matched against the end of the loaded URLs.
    pub(super) fn questionnaire(&self, canonical: &str) -> Option<&Object> {
        let (url, version) = match canonical.split_once('|') {
            Some((url, version)) => (url, Some(version)),
            None => (canonical, None),
        };
        let relative = !url.contains(':');
        self.questionnaires.iter().rev().find(|questionnaire| {
            let known = questionnaire.text("url").unwrap_or_default();
            let same_url = known == url
                || (relative
                    && known
                        .strip_suffix(url)
                        .is_some_and(|base| base.ends_with('/')));
            same_url && version.is_none_or(|version| questionnaire.text("version") == Some(version))
        })
    }

    fn profile(&self, url: &str) -> Option<&Profile> {
        let url = url.split('|').next().unwrap_or(url);
        self.profiles.iter().find(|profile| profile.url == url)
    }

    /// The codes of a value set: loaded, or one the engine carries.
    pub(super) fn value_set_codes(&self, url: &str) -> Option<Vec<(Option<&str>, &str)>> {
        let url = url.split('|').next().unwrap_or(url);
        if let Some((_, codes)) = self.value_sets.iter().find(|(known, _)| known == url) {
            return Some(
                codes
                    .iter()
                    .map(|(system, code)| (system.as_deref(), code.as_str()))
                    .collect(),
            );
        }
        let value_set = model::VALUE_SETS.iter().find(|vs| vs.url == url)?;
        Some(
            value_set
                .codes?
                .iter()
                .map(|(system, code)| {
                    (
                        model::CODE_SYSTEMS.get(usize::from(*system)).copied(),
                        *code,
                    )
                })
                .collect(),
        )
    }
}

/// True for the URL of a core type's StructureDefinition
/// (`http://hl7.org/fhir/StructureDefinition/Patient`).
fn is_core_definition(url: &str) -> bool {
    url.split('|')
        .next()
        .and_then(|url| url.strip_prefix("http://hl7.org/fhir/StructureDefinition/"))
        .is_some_and(|name| model::type_by_name(name).is_some())
}

/// The rule of an ElementDefinition.
fn rule(element: &Object, type_name: &str, derived_id: Option<String>) -> Option<Rule> {
    let path = element.text("path")?;
    let slice_name = element.text("sliceName").map(ToOwned::to_owned);
    let id = match (element.text("id"), derived_id) {
        (Some(id), _) => id.to_owned(),
        (None, Some(derived)) => match &slice_name {
            Some(slice) => format!("{derived}:{slice}"),
            None => derived,
        },
        (None, None) => match &slice_name {
            Some(slice) => format!("{path}:{slice}"),
            None => path.to_owned(),
        },
    };
    // The parent's type, to tell `valueQuantity` (a choice) from an element of that name.
    let segments: Vec<&str> = path.split('.').collect();
    let parent_type = parent_type(type_name, segments.get(1..segments.len().saturating_sub(1)));
    let last = segments.last().copied().unwrap_or_default();
    let (name, mut type_suffix) = split_name(last, parent_type);
    // R4's type slices: `Observation.value[x]:valueQuantity` names one type of the choice.
    if type_suffix.is_none() && last.ends_with("[x]") {
        if let Some(rest) = slice_name
            .as_deref()
            .and_then(|slice| slice.strip_prefix(name.as_str()))
        {
            if rest.starts_with(|c: char| c.is_ascii_uppercase()) {
                type_suffix = Some(rest.to_owned());
            }
        }
    }
    // A type slice is the element renamed for that type (`valueQuantity`), not a slice of
    // its own among others.
    let slice_name = if type_suffix.is_some() && last.ends_with("[x]") {
        None
    } else {
        slice_name
    };
    let types: Vec<String> = element.objects("type").filter_map(type_code).collect();
    let type_profiles = element
        .objects("type")
        .flat_map(|t| {
            t.texts("profile")
                .map(ToOwned::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let target_profiles = element
        .objects("type")
        .flat_map(|t| {
            t.texts("targetProfile")
                .map(ToOwned::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let invariants = element
        .objects("constraint")
        .filter_map(|constraint| {
            let key = constraint.text("key")?;
            // Invariants of the base specification are checked with it.
            if model::CONSTRAINTS.iter().any(|core| core.key == key) {
                return None;
            }
            Some(Invariant {
                key: key.to_owned(),
                human: constraint.text("human").unwrap_or_default().to_owned(),
                error: constraint.text("severity") != Some("warning"),
                expression: constraint
                    .text("expression")
                    .and_then(|expression| fhirpath::compile(expression).ok()),
            })
        })
        .collect();
    let slicing = element.objects("slicing").next();
    Some(Rule {
        id,
        name,
        type_suffix,
        slice_name,
        min: element.text("min").and_then(|min| min.parse().ok()),
        max: element.text("max").map(|max| max.parse().ok()),
        types,
        type_profiles,
        target_profiles,
        fixed: element.values("fixed").next().cloned(),
        min_value: typed_value(element, "minValue"),
        max_value: typed_value(element, "maxValue"),
        pattern: element.values("pattern").next().cloned(),
        binding: element
            .objects("binding")
            .find(|binding| binding.text("strength") == Some("required"))
            .and_then(|binding| binding.text("valueSet"))
            .map(ToOwned::to_owned),
        invariants,
        discriminators: slicing
            .map(|slicing| {
                slicing
                    .objects("discriminator")
                    .filter_map(|d| Some((d.text("type")?.to_owned(), d.text("path")?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        closed: slicing.is_some_and(|slicing| slicing.text("rules") == Some("closed")),
    })
}

/// The FHIR type an ElementDefinition's `type` names. Snapshots give the values of `id` and
/// `Extension.url` a FHIRPath system type (`http://hl7.org/fhirpath/System.String`), with the
/// FHIR type in the `structuredefinition-fhir-type` extension.
fn type_code(element_type: &Object) -> Option<String> {
    let code = element_type.text("code")?;
    let Some(system_type) = code.strip_prefix("http://hl7.org/fhirpath/System.") else {
        return Some(code.to_owned());
    };
    let named = element_type
        .objects("extension")
        .find(|extension| {
            extension.text("url")
                == Some("http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type")
        })
        .and_then(|extension| extension.text("value"));
    let primitive = match system_type {
        "Boolean" => "boolean",
        "Integer" => "integer",
        "Decimal" => "decimal",
        "Date" => "date",
        "DateTime" => "dateTime",
        "Time" => "time",
        _ => "string",
    };
    Some(named.unwrap_or(primitive).to_owned())
}

/// Reduces a snapshot element's rule to what it says beyond the base specification, which is
/// checked anyway: cardinality narrowed, types restricted, a required binding the base does
/// not have. Fixed and pattern values, bounds, the profile's invariants and slicing stay.
/// Answers false when nothing is left to check and the element is not a slice.
fn beyond_base(rule: &mut Rule, type_name: &str, path: &str) -> bool {
    if let Some(base) = base_element(type_name, path) {
        if rule.slice_name.is_none() {
            rule.min = rule.min.filter(|min| *min > base.min);
            rule.max = rule.max.filter(|max| max.unwrap_or(model::MANY) < base.max);
        }
        let base_types: Vec<&str> = base
            .types
            .iter()
            .map(|element_type| model::type_def(element_type.type_id).name)
            .collect();
        // Fewer types of a choice, or a narrower type (`Composition` for `Resource`); a
        // primitive named by its system type (`string` for an `id`) restricts nothing.
        let primitive_base = base
            .types
            .iter()
            .all(|t| model::type_def(t.type_id).kind == model::TypeKind::Primitive);
        let restricts = !rule.types.is_empty()
            && (rule.types.len() < base_types.len()
                || (!primitive_base
                    && rule
                        .types
                        .iter()
                        .any(|code| !base_types.contains(&code.as_str()))));
        if !restricts && rule.type_suffix.is_none() {
            rule.types.clear();
        }
        // Reference targets that leave every base target allowed restrict nothing.
        let base_targets: Vec<&str> = base
            .types
            .iter()
            .flat_map(|t| t.targets.iter().copied())
            .collect();
        let named = |url: &str| {
            url.strip_prefix("http://hl7.org/fhir/StructureDefinition/")
                .unwrap_or(url)
                .to_owned()
        };
        let rule_targets: Vec<String> = rule.target_profiles.iter().map(|url| named(url)).collect();
        // (An element of the base with no targets takes any resource.)
        let any_in_rule = rule_targets.iter().any(|own| own == "Resource");
        let all_of_base = !base_targets.is_empty()
            && base_targets
                .iter()
                .all(|target| rule_targets.iter().any(|own| own == target));
        if any_in_rule || all_of_base {
            rule.target_profiles.clear();
        }
        let unversioned = |url: &str| url.split('|').next().unwrap_or(url).to_owned();
        if let (Some(binding), Some(base_binding)) = (&rule.binding, base.binding) {
            if base_binding.strength == model::BindingStrength::Required
                && unversioned(binding) == unversioned(base_binding.value_set)
            {
                rule.binding = None;
            }
        }
    } else if path == type_name {
        rule.min = None;
        rule.max = None;
        rule.types.clear();
    }
    rule.slice_name.is_some()
        || rule.min.is_some()
        || rule.max.is_some()
        || !rule.types.is_empty()
        || !rule.type_profiles.is_empty()
        || !rule.target_profiles.is_empty()
        || rule.fixed.is_some()
        || rule.pattern.is_some()
        || rule.min_value.is_some()
        || rule.max_value.is_some()
        || rule.binding.is_some()
        || !rule.invariants.is_empty()
        || !rule.discriminators.is_empty()
}

/// The base specification's definition of the element at `path` (`Observation.value[x].code`,
/// `Observation.valueQuantity`) of `type_name`.
fn base_element(type_name: &str, path: &str) -> Option<&'static model::ElementDef> {
    let mut segments = path.split('.');
    if segments.next() != Some(type_name) {
        return None;
    }
    let mut parent_types: Vec<TypeId> = alloc::vec![model::type_by_name(type_name)?];
    let mut found = None;
    for segment in segments {
        let name = segment.strip_suffix("[x]").unwrap_or(segment);
        let (element, types) = parent_types.iter().find_map(|parent| {
            let def = model::type_def(*parent);
            if let Some(element) = def.elements.iter().find(|element| element.name == name) {
                let types: Vec<TypeId> = element.types.iter().map(|t| t.type_id).collect();
                return Some((element, types));
            }
            // `valueQuantity`: one type of a choice.
            let json_name = def.json_name(name)?;
            let element = def.elements.get(usize::from(json_name.element))?;
            let chosen = element.types.get(usize::from(json_name.choice))?;
            Some((element, alloc::vec![chosen.type_id]))
        })?;
        found = Some(element);
        parent_types = types;
    }
    found
}

/// The value of the choice element `name` of `object`, with its type.
fn typed_value(object: &Object, name: &str) -> Option<(Value, TypeId)> {
    let def = object.type_def();
    object.fields.iter().find_map(|field| {
        let element = def.elements.get(usize::from(field.element))?;
        if element.name != name {
            return None;
        }
        let element_type = element.types.get(usize::from(field.choice))?;
        Some((field.value.clone(), element_type.type_id))
    })
}

/// The type at `names` below `root` (choices and references to other types aside).
fn parent_type(root: &str, names: Option<&[&str]>) -> Option<TypeId> {
    let mut type_id = model::type_by_name(root)?;
    for name in names.unwrap_or_default() {
        let name = name.split(':').next().unwrap_or(name);
        let def = model::type_def(type_id);
        let element = def.elements.iter().find(|element| element.name == name)?;
        type_id = element.types.first()?.type_id;
    }
    Some(type_id)
}

/// Where a value of the element `name` of `object` (at `path`) is.
fn node_path(object: &Object, path: &str, name: &str, node: &Node<'_>) -> String {
    let is_array = object
        .type_def()
        .elements
        .iter()
        .find(|element| element.name == name)
        .is_some_and(model::ElementDef::is_array);
    super::child_path(path, name, is_array.then_some(node.index))
}

/// A value of the instance, with its FHIR type.
#[derive(Clone, Copy)]
struct Node<'a> {
    value: &'a Value,
    type_id: TypeId,
    index: usize,
}

fn children<'a>(object: &'a Object, name: &str) -> Vec<Node<'a>> {
    let def = object.type_def();
    let mut res = Vec::new();
    for field in &object.fields {
        let Some(element) = def.elements.get(usize::from(field.element)) else {
            continue;
        };
        if element.name != name {
            continue;
        }
        if let Some(element_type) = element.types.get(usize::from(field.choice)) {
            let index = res.len();
            // A resource's own type, not the element's (`Resource`).
            let type_id = match &field.value {
                Value::Resource(resource) => resource.type_id,
                _ => element_type.type_id,
            };
            res.push(Node {
                value: &field.value,
                type_id,
                index,
            });
        }
    }
    res
}

fn inner(value: &Value) -> Option<&Object> {
    match value {
        Value::Complex(object) => Some(object),
        Value::Resource(object) => Some(object),
        Value::Primitive(primitive) => primitive.companion.as_deref(),
    }
}

/// True when the rule names no types, or one that `node` is (or derives from).
fn allows_type(rule: &Rule, node: &Node<'_>) -> bool {
    let type_name = model::type_def(node.type_id).name;
    let item = Item::from_value(node.value, node.type_id);
    rule.types.is_empty()
        || rule
            .types
            .iter()
            .any(|allowed| allowed == type_name || item.is_fhir_type(allowed))
}

/// `value` is exactly `fixed`.
fn equals(value: &Value, fixed: &Value) -> bool {
    match (value, fixed) {
        (Value::Primitive(a), Value::Primitive(b)) => a.value == b.value,
        (Value::Complex(a), Value::Complex(b)) => a == b,
        _ => false,
    }
}

/// `value` has at least what `pattern` has: its primitive value, and for each of its fields a
/// matching field (repeated elements: each pattern item matches some item).
fn contains(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Primitive(a), Value::Primitive(b)) => b.value.is_none() || a.value == b.value,
        (Value::Complex(a), Value::Complex(b)) => b.fields.iter().all(|wanted| {
            a.fields.iter().any(|field| {
                field.element == wanted.element
                    && field.choice == wanted.choice
                    && contains(&field.value, &wanted.value)
            })
        }),
        _ => false,
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::Primitive(primitive) => match &primitive.value {
            Some(PrimitiveValue::String(text) | PrimitiveValue::Number(text)) => text.clone(),
            Some(PrimitiveValue::Boolean(flag)) => format!("{flag}"),
            None => String::new(),
        },
        Value::Complex(object) => {
            crate::json::write::write_object(object, crate::json::write::Style::Compact)
        }
        Value::Resource(object) => {
            crate::json::write::write_object(object, crate::json::write::Style::Compact)
        }
    }
}

impl Walk<'_> {
    /// Checks `resource` against the profile at `url`, and the loaded profiles it is based on.
    /// A profile that is not loaded is reported with `missing` severity.
    pub(super) fn profile(
        &mut self,
        profiles: &Profiles,
        resource: &Object,
        url: &str,
        missing: Severity,
    ) {
        let path = resource.type_def().name;
        self.profile_at(profiles, resource, resource, url, missing, path);
    }

    /// [`Walk::profile`] for a resource inside another, at `path`, with `root` as
    /// `%rootResource`.
    pub(super) fn profile_at(
        &mut self,
        profiles: &Profiles,
        resource: &Object,
        root: &Object,
        url: &str,
        missing: Severity,
        path: &str,
    ) {
        let mut next = Some(url);
        let mut seen: Vec<&str> = Vec::new();
        while let Some(url) = next {
            let Some(profile) = profiles.profile(url) else {
                if seen.is_empty() {
                    let message = format!("the profile {url} is not loaded, so it was not checked");
                    self.find(missing, IssueType::NotSupported, message, path);
                }
                return;
            };
            if seen.contains(&profile.url.as_str()) {
                return;
            }
            seen.push(&profile.url);
            let type_name = resource.type_def().name;
            if profile.type_name != type_name {
                let message = format!(
                    "the profile {} is for {}, not {type_name}",
                    profile.url, profile.type_name
                );
                self.find(Severity::Error, IssueType::Structure, message, path);
                return;
            }
            let context = ProfileContext {
                profiles,
                profile,
                root,
                resource,
            };
            let item = Item::Object(resource);
            if let Some(root_rule) = profile.rules.iter().find(|rule| rule.id == type_name) {
                self.rule_invariants(&context, root_rule, &item, path);
            }
            self.profile_children(&context, type_name, resource, path);
            // The base specification is checked anyway: the chain ends at a core definition.
            // A snapshot holds what the profiles between add.
            next = profile
                .base
                .as_deref()
                .filter(|base| !profile.from_snapshot && !is_core_definition(base));
        }
    }

    /// True when `resource` meets the loaded profile at `url` (its findings aside).
    fn conforms(&mut self, profiles: &Profiles, resource: &Object, url: &str) -> bool {
        if profiles.profile(url).is_none() || self.depth >= MAX_PROFILE_DEPTH {
            return false;
        }
        let address = core::ptr::from_ref(resource) as usize;
        if let Some((_, _, known)) = self
            .conformance
            .iter()
            .find(|(at, known_url, _)| *at == address && known_url == url)
        {
            return *known;
        }
        let mut walk = Walk {
            findings: Vec::new(),
            validator: &mut *self.validator,
            options: self.options,
            depth: self.depth + 1,
            conformance: core::mem::take(&mut self.conformance),
            held_as: None,
            resource_at: 0,
        };
        walk.profile(profiles, resource, url, Severity::Error);
        let conforms = !walk
            .findings
            .iter()
            .any(|finding| finding.severity == Severity::Error);
        self.conformance = core::mem::take(&mut walk.conformance);
        self.conformance.push((address, url.to_owned(), conforms));
        conforms
    }

    /// The rules whose parent is `context_id`, on `object` (at `path`).
    fn profile_children(
        &mut self,
        context: &ProfileContext<'_>,
        context_id: &str,
        object: &Object,
        path: &str,
    ) {
        let prefix_len = context_id.len() + 1;
        let direct: Vec<&Rule> = context
            .profile
            .rules
            .iter()
            .filter(|rule| {
                rule.id.len() > prefix_len
                    && rule.id.starts_with(context_id)
                    && rule.id.as_bytes().get(context_id.len()) == Some(&b'.')
                    && !rule.id.get(prefix_len..).unwrap_or_default().contains('.')
            })
            .collect();
        // One group per element: its rule without a slice name first.
        let mut names: Vec<&str> = Vec::new();
        for rule in &direct {
            if !names.contains(&rule.name.as_str()) {
                names.push(&rule.name);
            }
        }
        // Elements the differential constrains only below (`Parameters.parameter.value[x]`
        // without `Parameters.parameter`): walked into without checks of their own.
        let mut implicit: Vec<&str> = Vec::new();
        for rule in &context.profile.rules {
            let Some(rest) = rule
                .id
                .strip_prefix(context_id)
                .and_then(|rest| rest.strip_prefix('.'))
            else {
                continue;
            };
            let Some((segment, _)) = rest.split_once('.') else {
                continue;
            };
            if segment.contains(':') || segment.ends_with("[x]") {
                continue;
            }
            if !names.contains(&segment) && !implicit.contains(&segment) {
                implicit.push(segment);
            }
        }
        for name in implicit {
            let nodes = children(object, name);
            let node_path = |node: &Node<'_>| node_path(object, path, name, node);
            self.descend(
                context,
                &format!("{context_id}.{name}"),
                name,
                &nodes,
                &node_path,
            );
        }
        for name in names {
            let group: Vec<&Rule> = direct
                .iter()
                .copied()
                .filter(|rule| rule.name == name)
                .collect();
            let nodes = children(object, name);
            let node_path = |node: &Node<'_>| node_path(object, path, name, node);
            let base = group
                .iter()
                .copied()
                .find(|rule| rule.slice_name.is_none() && rule.type_suffix.is_none());
            let slices: Vec<&Rule> = group
                .iter()
                .copied()
                .filter(|rule| rule.slice_name.is_some() && rule.type_suffix.is_none())
                .collect();
            let typed: Vec<&Rule> = group
                .iter()
                .copied()
                .filter(|rule| rule.type_suffix.is_some())
                .collect();
            if let Some(base) = base {
                self.rule_on_nodes(context, base, &nodes, path, &node_path);
            } else {
                // Slices without a rule on the element itself: the rules below the element
                // (`Patient.extension.value[x]`) still apply to every value.
                let child_id = format!("{context_id}.{name}");
                let below = format!("{child_id}.");
                if context
                    .profile
                    .rules
                    .iter()
                    .any(|rule| rule.id.starts_with(&below))
                {
                    self.descend(context, &child_id, name, &nodes, &node_path);
                }
            }
            // `valueQuantity`: rules on the values of that type only, which must be the type.
            for rule in typed {
                let suffix = rule.type_suffix.as_deref().unwrap_or_default();
                let of_type: Vec<Node<'_>> = nodes
                    .iter()
                    .copied()
                    .filter(|node| type_suffix(node.type_id) == suffix)
                    .collect();
                if of_type.len() != nodes.len() {
                    // A type the element's own rule refuses is reported there.
                    for node in nodes.iter().filter(|node| {
                        type_suffix(node.type_id) != suffix
                            && base.is_none_or(|base| allows_type(base, node))
                    }) {
                        let message = format!(
                            "expected {} for \"{name}\" ({}), found {}",
                            crate::outcome::with_article(suffix),
                            context.profile.url,
                            model::type_def(node.type_id).name
                        );
                        self.find(
                            Severity::Error,
                            IssueType::Structure,
                            message,
                            &node_path(node),
                        );
                    }
                }
                self.rule_on_nodes(context, rule, &of_type, path, &node_path);
            }
            if slices.is_empty() {
                continue;
            }
            let discriminators = base
                .map(|base| base.discriminators.as_slice())
                .unwrap_or_default();
            let closed = base.is_some_and(|base| base.closed);
            let mut matched: Vec<Vec<Node<'_>>> = slices.iter().map(|_| Vec::new()).collect();
            for node in &nodes {
                let slot = slices
                    .iter()
                    .position(|slice| self.in_slice(context, slice, discriminators, node));
                match slot.and_then(|slot| matched.get_mut(slot)) {
                    Some(list) => list.push(*node),
                    None if closed => {
                        let message = format!(
                            "the value matches none of the slices of \"{name}\" ({}), whose slicing is closed",
                            context.profile.url
                        );
                        self.find(
                            Severity::Error,
                            IssueType::Structure,
                            message,
                            &node_path(node),
                        );
                    }
                    None => {}
                }
            }
            for (slice, nodes) in slices.iter().zip(&matched) {
                self.rule_on_nodes(context, slice, nodes, path, &node_path);
            }
        }
    }

    /// The rules whose parent is `rule_id`, on each of `nodes` (values of the element `name`).
    fn descend(
        &mut self,
        context: &ProfileContext<'_>,
        rule_id: &str,
        name: &str,
        nodes: &[Node<'_>],
        node_path: &dyn Fn(&Node<'_>) -> String,
    ) {
        for node in nodes {
            if let Some(object) = inner(node.value) {
                let here = node_path(node);
                self.profile_children(&context.below(name, node.value), rule_id, object, &here);
            }
        }
    }

    /// A rule on the values it applies to: cardinality, then each value.
    fn rule_on_nodes(
        &mut self,
        context: &ProfileContext<'_>,
        rule: &Rule,
        nodes: &[Node<'_>],
        path: &str,
        node_path: &dyn Fn(&Node<'_>) -> String,
    ) {
        // Named only in a message.
        let what = || match &rule.slice_name {
            Some(slice) => format!("\"{}\" in slice {slice}", rule.name),
            None => format!("\"{}\"", rule.name),
        };
        if let Some(min) = rule.min {
            if nodes.len() < min as usize {
                let message = format!(
                    "expected at least {min} values for {} ({}), found {}",
                    what(),
                    context.profile.url,
                    nodes.len()
                );
                self.find(Severity::Error, IssueType::Required, message, path);
            }
        }
        if let Some(Some(max)) = rule.max {
            if nodes.len() > max as usize {
                let message = format!(
                    "expected at most {max} values for {} ({}), found {}",
                    what(),
                    context.profile.url,
                    nodes.len()
                );
                self.find(Severity::Error, IssueType::Structure, message, path);
            }
        }
        for node in nodes {
            let here = node_path(node);
            self.rule_on_value(context, rule, node, &here);
            self.descend(
                context,
                &rule.id,
                &rule.name,
                core::slice::from_ref(node),
                node_path,
            );
        }
    }

    /// Checks that a literal reference names a type one of the rule's target profiles is of:
    /// core profiles by their type, loaded profiles by the type they constrain. A target
    /// profile that is neither loaded nor core leaves the reference unjudged.
    fn target_profiles(
        &mut self,
        context: &ProfileContext<'_>,
        rule: &Rule,
        reference: &Object,
        path: &str,
    ) {
        let Some(found) = reference
            .text("reference")
            .and_then(super::literal_reference_type)
        else {
            return;
        };
        let mut allowed: Vec<&str> = Vec::new();
        for target in &rule.target_profiles {
            let core = target
                .strip_prefix("http://hl7.org/fhir/StructureDefinition/")
                .filter(|name| model::type_by_name(name).is_some());
            let type_name = match core {
                Some(name) => name,
                None => match context.profiles.profile(target) {
                    Some(profile) => profile.type_name.as_str(),
                    None => return,
                },
            };
            // An abstract type (`Resource`, `DomainResource`) allows every resource.
            let any = model::type_by_name(type_name)
                .is_some_and(|type_id| model::type_def(type_id).is_abstract);
            if any || type_name == found {
                return;
            }
            allowed.push(type_name);
        }
        let message = format!(
            "expected a reference to {} ({}), found a reference to {}",
            super::one_of(&allowed),
            context.profile.url,
            crate::outcome::with_article(found)
        );
        let reference_path = format!("{path}.reference");
        self.find(
            Severity::Error,
            IssueType::Structure,
            message,
            &reference_path,
        );
    }

    fn rule_on_value(
        &mut self,
        context: &ProfileContext<'_>,
        rule: &Rule,
        node: &Node<'_>,
        path: &str,
    ) {
        let url = &context.profile.url;
        let type_name = model::type_def(node.type_id).name;
        let item = Item::from_value(node.value, node.type_id);
        if rule.type_suffix.is_none() && !allows_type(rule, node) {
            let message = format!(
                "expected {} ({url}), found {type_name}",
                rule.types.join(" or ")
            );
            self.find(Severity::Error, IssueType::Structure, message, path);
        }
        if !rule.target_profiles.is_empty() {
            if let Value::Complex(reference) = node.value {
                self.target_profiles(context, rule, reference, path);
            }
        }
        if let Some(fixed) = &rule.fixed {
            if !equals(node.value, fixed) {
                let message = format!(
                    "expected the fixed value {} ({url}), found {}",
                    shown(fixed),
                    shown(node.value)
                );
                self.find(Severity::Error, IssueType::Value, message, path);
            }
        }
        if let Some(pattern) = &rule.pattern {
            if !contains(node.value, pattern) {
                let message = format!(
                    "expected a value matching the pattern {} ({url}), found {}",
                    shown(pattern),
                    shown(node.value)
                );
                self.find(Severity::Error, IssueType::Value, message, path);
            }
        }
        for (bound, is_min) in [(&rule.min_value, true), (&rule.max_value, false)] {
            let Some((bound, bound_type)) = bound else {
                continue;
            };
            let limit = Item::from_value(bound, *bound_type).to_system();
            let value = Item::from_value(node.value, node.type_id).to_system();
            let (Some(limit), Some(value)) = (limit, value) else {
                continue;
            };
            let outside = match value.compare(&limit) {
                Some(core::cmp::Ordering::Less) => is_min,
                Some(core::cmp::Ordering::Greater) => !is_min,
                _ => false,
            };
            if outside {
                let message = format!(
                    "the value {} is {} the {} {} ({url})",
                    value.to_text(),
                    if is_min { "below" } else { "above" },
                    if is_min { "minimum" } else { "maximum" },
                    limit.to_text()
                );
                self.find(Severity::Error, IssueType::Value, message, path);
            }
        }
        if let Some(value_set) = &rule.binding {
            self.profile_binding(context, value_set, node, path);
        }
        self.rule_invariants(context, rule, &item, path);
    }

    fn profile_binding(
        &mut self,
        context: &ProfileContext<'_>,
        value_set: &str,
        node: &Node<'_>,
        path: &str,
    ) {
        let Some(codes) = context.profiles.value_set_codes(value_set) else {
            return;
        };
        let known = |system: Option<&str>, code: &str| {
            codes
                .iter()
                .any(|(s, c)| *c == code && (system.is_none() || s.is_none() || *s == system))
        };
        let codings: Vec<(Option<&str>, Option<&str>)> =
            match (model::type_def(node.type_id).name, node.value) {
                ("code" | "string" | "uri", Value::Primitive(primitive)) => {
                    match &primitive.value {
                        Some(PrimitiveValue::String(code)) => {
                            alloc::vec![(None, Some(code.as_str()))]
                        }
                        _ => Vec::new(),
                    }
                }
                ("Coding", Value::Complex(coding)) => {
                    alloc::vec![(coding.text("system"), coding.text("code"))]
                }
                ("CodeableConcept", Value::Complex(concept)) => concept
                    .objects("coding")
                    .map(|coding| (coding.text("system"), coding.text("code")))
                    .collect(),
                (
                    "Quantity" | "Age" | "Duration" | "Distance" | "Count" | "SimpleQuantity",
                    Value::Complex(quantity),
                ) => {
                    alloc::vec![(quantity.text("system"), quantity.text("code"))]
                }
                _ => return,
            };
        let ok = codings
            .iter()
            .any(|(system, code)| code.is_some_and(|code| known(*system, code)));
        if !ok {
            let message = format!(
                "the value is not in the value set {value_set}, which {} requires",
                context.profile.url
            );
            self.find(Severity::Error, IssueType::CodeInvalid, message, path);
        }
    }

    fn rule_invariants(
        &mut self,
        context: &ProfileContext<'_>,
        rule: &Rule,
        item: &Item<'_>,
        path: &str,
    ) {
        for invariant in &rule.invariants {
            let Some(expression) = &invariant.expression else {
                let message = format!(
                    "{}: the invariant could not be compiled, so it was not checked",
                    invariant.key
                );
                self.find(
                    Severity::Information,
                    IssueType::Informational,
                    message,
                    path,
                );
                continue;
            };
            let resolver = LocalResolver::new(context.root);
            let options = Options {
                root_resource: Some(context.root),
                resolver: Some(&resolver),
                lenient_as: true,
                ..Options::default()
            };
            let result = expression.evaluate_items(
                core::slice::from_ref(item),
                Some(Item::Object(context.resource)),
                &options,
            );
            let holds = match result {
                Ok(result) => !matches!(result.as_slice(), [Item::Boolean(false)]),
                Err(err) => {
                    let message = format!(
                        "{}: the invariant could not be evaluated ({err}), so it was not checked",
                        invariant.key
                    );
                    self.find(
                        Severity::Information,
                        IssueType::Informational,
                        message,
                        path,
                    );
                    continue;
                }
            };
            if !holds {
                let severity = if invariant.error {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                let message = format!(
                    "{}: {} ({})",
                    invariant.key, invariant.human, context.profile.url
                );
                self.find(severity, IssueType::Invariant, message, path);
            }
        }
    }

    /// Whether `node` belongs to `slice` by the discriminators.
    fn in_slice(
        &mut self,
        context: &ProfileContext<'_>,
        slice: &Rule,
        discriminators: &[(String, String)],
        node: &Node<'_>,
    ) -> bool {
        // Extensions are told apart by URL even when the slicing says nothing.
        let is_extension = model::type_def(node.type_id).name == "Extension";
        if discriminators.is_empty() && !is_extension {
            return slice
                .type_suffix
                .as_deref()
                .is_some_and(|suffix| type_suffix(node.type_id) == suffix);
        }
        let discriminators: Vec<(String, String)> = if discriminators.is_empty() {
            alloc::vec![(String::from("value"), String::from("url"))]
        } else {
            discriminators.to_vec()
        };
        discriminators.iter().all(|(kind, disc_path)| {
            let disc_path = disc_path.strip_prefix("$this.").unwrap_or(disc_path);
            match kind.as_str() {
                "type" => {
                    let (wanted, found): (Vec<&str>, Vec<&str>) = if disc_path == "$this" {
                        let wanted = if slice.types.is_empty() {
                            slice.type_suffix.as_deref().into_iter().collect()
                        } else {
                            slice.types.iter().map(String::as_str).collect()
                        };
                        (wanted, alloc::vec![model::type_def(node.type_id).name])
                    } else {
                        let wanted = child_rule(context, slice, disc_path)
                            .map(|rule| rule.types.iter().map(String::as_str).collect())
                            .unwrap_or_default();
                        let found = discriminator_values(node, disc_path)
                            .into_iter()
                            .filter_map(|value| match value {
                                Value::Resource(object) => Some(object.type_def().name),
                                Value::Complex(object) => Some(object.type_def().name),
                                Value::Primitive(_) => None,
                            })
                            .collect();
                        (wanted, found)
                    };
                    wanted.is_empty()
                        || found
                            .iter()
                            .any(|name| wanted.iter().any(|wanted| name.eq_ignore_ascii_case(wanted)))
                }
                "value" | "pattern" => {
                    let expected = expected_value(context, slice, disc_path);
                    let Some(expected) = expected else {
                        // What the slice requires there is not known: not a match.
                        return false;
                    };
                    let found = discriminator_values(node, disc_path);
                    found.iter().any(|value| match &expected {
                        Expected::Fixed(fixed) => equals(value, fixed),
                        Expected::Pattern(pattern) => contains(value, pattern),
                        Expected::Text(text) => matches!(value, Value::Primitive(p) if matches!(&p.value, Some(PrimitiveValue::String(t)) if t == text)),
                    })
                }
                "profile" => {
                    let wanted: Vec<&str> = child_rule(context, slice, disc_path)
                        .or(if disc_path == "$this" { Some(slice) } else { None })
                        .map(|rule| rule.type_profiles.iter().map(String::as_str).collect())
                        .unwrap_or_default();
                    if wanted.is_empty() {
                        return true;
                    }
                    discriminator_values(node, disc_path).iter().any(|value| match value {
                        Value::Resource(resource) => wanted
                            .iter()
                            .any(|url| self.conforms(context.profiles, resource, url)),
                        _ => false,
                    })
                }
                "exists" => {
                    let child = child_rule(context, slice, disc_path);
                    let present = !discriminator_values(node, disc_path).is_empty();
                    match child {
                        Some(rule) if rule.max == Some(Some(0)) => !present,
                        Some(rule) if rule.min.is_some_and(|min| min > 0) => present,
                        _ => true,
                    }
                }
                _ => true,
            }
        })
    }
}

/// What a slice requires at a discriminator's path.
enum Expected<'p> {
    Fixed(&'p Value),
    Pattern(&'p Value),
    Text(&'p str),
}

fn child_rule<'p>(context: &ProfileContext<'p>, slice: &Rule, path: &str) -> Option<&'p Rule> {
    if path == "$this" {
        return context
            .profile
            .rules
            .iter()
            .find(|rule| rule.id == slice.id);
    }
    let id = format!("{}.{path}", slice.id);
    let rules = &context.profile.rules;
    rules.iter().find(|rule| rule.id == id).or_else(|| {
        // Through a required slice below the slice (`component:SystolicBP.code.coding:SBPCode.code`
        // for `code.coding.code`): what every match must have there.
        rules.iter().find(|rule| {
            let Some(rest) = rule
                .id
                .strip_prefix(slice.id.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
            else {
                return false;
            };
            let mut unsliced = String::with_capacity(rest.len());
            let mut prefix_len = slice.id.len() + 1;
            for (idx, segment) in rest.split('.').enumerate() {
                if idx > 0 {
                    unsliced.push('.');
                }
                let (name, inner_slice) = match segment.split_once(':') {
                    Some((name, _)) => (name, true),
                    None => (segment, false),
                };
                unsliced.push_str(name);
                prefix_len += segment.len();
                let required = rule.id.get(..prefix_len).is_some_and(|slice_id| {
                    rules
                        .iter()
                        .any(|rule| rule.id == slice_id && rule.min.is_some_and(|min| min > 0))
                });
                if inner_slice && !required {
                    return false;
                }
                prefix_len += 1;
            }
            unsliced == path
        })
    })
}

fn expected_value<'p>(
    context: &ProfileContext<'p>,
    slice: &'p Rule,
    path: &str,
) -> Option<Expected<'p>> {
    let rule = child_rule(context, slice, path);
    if let Some(rule) = rule {
        if let Some(fixed) = &rule.fixed {
            return Some(Expected::Fixed(fixed));
        }
        if let Some(pattern) = &rule.pattern {
            return Some(Expected::Pattern(pattern));
        }
    }
    // An extension slice's URL is the profile of its type.
    if path == "url" {
        return slice
            .type_profiles
            .first()
            .map(|url| Expected::Text(url.split('|').next().unwrap_or(url)));
    }
    None
}

/// The values at a discriminator path (`url`, `code.coding`, `$this`) below a value.
fn discriminator_values<'a>(node: &Node<'a>, path: &str) -> Vec<&'a Value> {
    if path == "$this" {
        return alloc::vec![node.value];
    }
    let mut current: Vec<&'a Value> = alloc::vec![node.value];
    for name in path.split('.') {
        let mut next = Vec::new();
        for value in current {
            if let Some(object) = inner(value) {
                next.extend(object.values(name));
            }
        }
        current = next;
    }
    current
}

/// The suffix a choice element takes for a type: `Quantity`, `DateTime`.
fn type_suffix(type_id: TypeId) -> String {
    let name = model::type_def(type_id).name;
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[derive(Clone, Copy)]
struct ProfileContext<'p> {
    profiles: &'p Profiles,
    profile: &'p Profile,
    /// `%rootResource`: the resource being validated, or the container of a contained one.
    root: &'p Object,
    /// `%resource`: the resource the element being looked at belongs to.
    resource: &'p Object,
}

impl<'p> ProfileContext<'p> {
    /// The context for the values below `value`, the value of the element `name`: inside a
    /// resource, that resource is `%resource` (and `%rootResource`, unless it is contained).
    fn below(&self, name: &str, value: &'p Value) -> ProfileContext<'p> {
        match value {
            Value::Resource(resource) => ProfileContext {
                resource,
                root: if name == "contained" {
                    self.root
                } else {
                    resource
                },
                ..*self
            },
            _ => *self,
        }
    }
}

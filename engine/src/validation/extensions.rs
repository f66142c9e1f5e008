//! Extensions defined by the core specification: each may only be used where its definition's
//! context allows (R4 §2.13.0.4 "Extension context"), with a value of one of its types.
//!
//! Extensions the engine has no definition of are not errors: an implementation guide's own
//! (US Core's race, say) are checked when that guide's profiles are loaded. A URL in the core
//! namespace that R4 does not define is reported as a warning, since it is most likely a typo
//! or an extension from a later version.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Walk;
use crate::model::{self, TypeId, TypeKind};
use crate::outcome::{IssueType, Severity};
use crate::resource::{Object, Value};

/// Where an element that holds extensions sits.
pub(super) struct Place<'p> {
    /// The type that defines the element holding it and the element's name (`HumanName` and
    /// `family` for `Patient.name[0]._family`); none for a resource.
    pub(super) owner: Option<(TypeId, &'static str)>,
    /// Its path from the resource, without indexes (`Patient.name.family`).
    pub(super) path: &'p str,
}

/// The type's name and the names of the types it derives from, most specific first.
fn type_names(type_id: TypeId) -> impl Iterator<Item = &'static str> {
    let mut next = Some(type_id);
    let mut steps = 0;
    core::iter::from_fn(move || {
        let def = model::type_def(next?);
        steps += 1;
        next = def.base.filter(|_| steps < 16);
        Some(def.name)
    })
    .chain(
        (model::type_def(type_id).kind == TypeKind::Backbone)
            .then_some(["BackboneElement", "Element"])
            .into_iter()
            .flatten(),
    )
}

/// True when `context` (a type name or an element path) names `holder` at `place`.
fn context_matches(context: &str, holder: TypeId, place: &Place<'_>) -> bool {
    let context = context.strip_suffix("[x]").unwrap_or(context);
    if context == "Element" || context == place.path {
        return true;
    }
    if type_names(holder).any(|name| name == context) {
        return true;
    }
    let Some((owner, element)) = place.owner else {
        return false;
    };
    context
        .strip_suffix(element)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|owner_name| type_names(owner).any(|name| name == owner_name))
}

impl Walk<'_> {
    /// Checks the extension `extension` (at `path`) of the element `holder` at `place`.
    pub(super) fn extension(
        &mut self,
        extension: &Object,
        holder: TypeId,
        place: &Place<'_>,
        path: &str,
    ) {
        let Some(url) = extension.text("url") else {
            return;
        };
        let Some(def) = model::extension_def(url) else {
            if url.starts_with(model::CORE_DEFINITIONS) && !url.contains('#') {
                let message = format!(
                    "the extension {url} is in the namespace of the core specification, which defines no such extension"
                );
                self.find(Severity::Warning, IssueType::Structure, message, path);
            }
            return;
        };
        if !def
            .contexts
            .iter()
            .any(|context| context_matches(context, holder, place))
        {
            let mut here: Vec<&str> = type_names(holder).take(1).collect();
            let owner_path;
            if let Some((owner, element)) = place.owner {
                owner_path = format!("{}.{element}", model::type_def(owner).name);
                if !here.contains(&owner_path.as_str()) {
                    here.push(&owner_path);
                }
            }
            let message = format!(
                "the extension {url} is not allowed here (this element is {}; it is allowed on {})",
                here.join(", "),
                def.contexts.join(", ")
            );
            self.find(Severity::Error, IssueType::Structure, message, path);
        }
        let elements = extension.type_def().elements;
        for field in &extension.fields {
            let Some(element) = elements.get(usize::from(field.element)) else {
                continue;
            };
            if element.name != "value" || matches!(field.value, Value::Resource(_)) {
                continue;
            }
            let Some(value_type) = element.types.get(usize::from(field.choice)) else {
                continue;
            };
            let found = model::type_def(value_type.type_id).name;
            let message = if def.value_types.is_empty() {
                format!(
                    "the extension {url} has sub-extensions and no value, found {} value",
                    crate::outcome::with_article(found)
                )
            } else if !def.value_types.contains(&value_type.type_id) {
                let allowed: Vec<&str> = def
                    .value_types
                    .iter()
                    .map(|type_id| model::type_def(*type_id).name)
                    .collect();
                format!(
                    "the extension {url} takes a value of type {}, found {found}",
                    allowed.join(", ")
                )
            } else {
                continue;
            };
            self.find(
                Severity::Error,
                IssueType::Structure,
                message,
                &super::child_path(path, "value", None),
            );
        }
    }
}

/// `Bundle.entry[0].resource.name[1]` without its indexes.
pub(super) fn without_indexes(path: &str) -> String {
    let mut res = String::with_capacity(path.len());
    let mut in_index = false;
    for ch in path.chars() {
        match ch {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => res.push(ch),
            _ => {}
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(context: &str, holder: &str, owner: Option<(&str, &'static str)>, path: &str) -> bool {
        let type_id = |name: &str| model::type_by_name(name).unwrap_or_else(|| panic!("{name}"));
        let place = Place {
            owner: owner.map(|(owner, element)| (type_id(owner), element)),
            path,
        };
        context_matches(context, type_id(holder), &place)
    }

    #[test]
    fn contexts_match_types_bases_and_element_paths() {
        let family = Some(("HumanName", "family"));
        assert!(check(
            "HumanName.family",
            "string",
            family,
            "Patient.name.family"
        ));
        assert!(!check("HumanName", "string", family, "Patient.name.family"));
        assert!(check(
            "HumanName",
            "HumanName",
            Some(("Patient", "name")),
            "Patient.name"
        ));
        assert!(check(
            "Patient.name",
            "HumanName",
            Some(("Patient", "name")),
            "Patient.name"
        ));
        assert!(!check(
            "HumanName.family",
            "HumanName",
            Some(("Patient", "name")),
            "Patient.name"
        ));
        // Base types: a resource is a DomainResource, an Age a Quantity, a backbone element an Element.
        assert!(check("DomainResource", "Patient", None, "Patient"));
        assert!(check(
            "Quantity",
            "Age",
            Some(("Patient", "extension")),
            "Patient.extension.value"
        ));
        assert!(check(
            "Element",
            "Patient.contact",
            Some(("Patient", "contact")),
            "Patient.contact"
        ));
        // Paths through data types are matched on the instance path.
        assert!(check(
            "StructureDefinition.differential.element.binding.valueSet",
            "canonical",
            Some(("ElementDefinition.binding", "valueSet")),
            "StructureDefinition.differential.element.binding.valueSet"
        ));
        // An element inherited from a base type.
        assert!(check(
            "Resource.meta",
            "Meta",
            Some(("Patient", "meta")),
            "Patient.meta"
        ));
    }

    /// Severity and message start of each finding other than dom-6 for `json`.
    fn findings(json: &str) -> Vec<(Severity, String)> {
        let resource = crate::json::fhir::parse_resource(json.as_bytes())
            .unwrap_or_else(|err| panic!("{err}"));
        crate::validation::validate(&resource)
            .into_iter()
            .filter(|finding| finding.constraint != Some("dom-6"))
            .map(|finding| (finding.severity, finding.message))
            .collect()
    }

    #[test]
    fn core_extensions_in_their_context_pass() {
        let on_family = r#"{"resourceType":"Patient","name":[{"family":"F","_family":{"extension":[
            {"url":"http://hl7.org/fhir/StructureDefinition/humanname-mothers-family","valueString":"M"}]}}],
            "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace","valueAddress":{"city":"Leeds"}},
            {"url":"http://hl7.org/fhir/StructureDefinition/patient-nationality","extension":[{"url":"code","valueCodeableConcept":{"text":"GB"}}]},
            {"url":"http://example.org/unknown","valueString":"not checked"}]}"#;
        assert_eq!(findings(on_family), []);
    }

    #[test]
    fn unknown_urls_in_the_core_namespace_are_warned_about() {
        let typo = r#"{"resourceType":"Patient","extension":[
            {"url":"http://hl7.org/fhir/StructureDefinition/patient-birthplace","valueString":"x"}]}"#;
        let found = findings(typo);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Severity::Warning);
        assert!(
            found[0].1.contains("defines no such extension"),
            "{found:?}"
        );
    }

    #[test]
    fn indexes_are_dropped_from_paths() {
        assert_eq!(
            without_indexes("Bundle.entry[12].resource.name[0]"),
            "Bundle.entry.resource.name"
        );
    }
}

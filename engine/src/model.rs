//! The FHIR R4 (4.0.1) type system as static tables: every resource, data type and backbone
//! element with its elements, cardinalities, types, bindings and constraints; the value sets of
//! required bindings; the search parameters; the core extension definitions; the vital signs
//! profiles.
//!
//! The tables live in `model/generated/`, written by `make codegen` from the official
//! definitions. This file holds the shapes of those tables and the lookups over them; nothing
//! here is built at start-up.

#[rustfmt::skip]
mod generated;

pub use generated::compartments::COMPARTMENTS;
pub use generated::constraints::CONSTRAINTS;
pub use generated::extensions::EXTENSIONS;
pub use generated::search_params::SEARCH_PARAMS;
pub use generated::types::{ty, TYPES};
pub use generated::valuesets::{CODE_SYSTEMS, VALUE_SETS};
pub use generated::vital_signs::{VITAL_SIGNS_CODES, VITAL_SIGNS_DEFINITIONS};

/// The position of a type in [`TYPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypeId(pub u16);

/// `ElementDef::max` for an unbounded element (`*`).
pub const MANY: u32 = u32::MAX;

/// What kind of type a [`TypeDef`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    /// A primitive data type (`string`, `decimal`, ...): a JSON value plus an optional `_name` companion.
    Primitive,
    /// A complex data type (`HumanName`, `Quantity`, ...), or an abstract base (`Element`).
    Complex,
    /// A resource type, or an abstract base (`Resource`, `DomainResource`).
    Resource,
    /// A backbone element defined inside a resource or data type (`Patient.contact`).
    Backbone,
}

/// How a primitive type's value is written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// A JSON string.
    String,
    /// `true` or `false`.
    Boolean,
    /// A JSON number without fraction or exponent.
    Integer,
    /// A JSON number, its text kept exactly.
    Decimal,
}

/// A primitive type's JSON form and the spec's regular expression for its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimitiveDef {
    /// How the value is written in JSON.
    pub json: JsonKind,
    /// The regular expression of the specification, when it gives one.
    pub regex: Option<&'static str>,
}

/// A resource, data type or backbone element.
#[derive(Debug)]
pub struct TypeDef {
    /// `Patient`, `HumanName`, `string`; for backbone elements, their path: `Patient.contact`.
    pub name: &'static str,
    /// What kind of type this is.
    pub kind: TypeKind,
    /// Abstract types (`Resource`, `Element`, `BackboneElement`, ...) have no instances of their own.
    pub is_abstract: bool,
    /// The type this one specialises (`DomainResource` for `Patient`).
    pub base: Option<TypeId>,
    /// Elements in the order of the specification, which is the canonical JSON order.
    pub elements: &'static [ElementDef],
    /// Every JSON property name an instance may use, sorted by name for binary search.
    pub json_names: &'static [JsonName],
    /// Constraints on the type as a whole (the root element's), as indexes into [`CONSTRAINTS`].
    pub constraints: &'static [u16],
    /// For primitive types: the JSON form and regex of the value.
    pub primitive: Option<PrimitiveDef>,
}

/// Bit flags of an [`ElementDef`].
pub mod flags {
    /// `value[x]`: the element has several types and its JSON name carries the type.
    pub const CHOICE: u8 = 1;
    /// `isModifier`.
    pub const MODIFIER: u8 = 2;
    /// `isSummary`.
    pub const SUMMARY: u8 = 4;
    /// A plain JSON primitive without a `_name` companion (`Element.id`, `Extension.url`).
    pub const NO_EXTENSIONS: u8 = 8;
    /// The element's definition is borrowed from another element (`contentReference`).
    pub const CONTENT_REFERENCE: u8 = 16;
}

/// One element of a type.
#[derive(Debug)]
pub struct ElementDef {
    /// The element's name, without `[x]` for choice elements: `value`, `contact`.
    pub name: &'static str,
    /// Minimum cardinality.
    pub min: u32,
    /// Maximum cardinality; [`MANY`] for `*`.
    pub max: u32,
    /// The allowed types; several only for choice elements.
    pub types: &'static [ElementType],
    /// [`flags`] bits.
    pub flags: u8,
    /// The terminology binding, when there is one.
    pub binding: Option<&'static Binding>,
    /// Constraints, as indexes into [`CONSTRAINTS`].
    pub constraints: &'static [u16],
}

impl ElementDef {
    /// True when the element may repeat (and is written as a JSON array).
    pub fn is_array(&self) -> bool {
        self.max > 1
    }

    /// True when the element has the given [`flags`] bit.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// One allowed type of an element.
#[derive(Debug)]
pub struct ElementType {
    /// The type.
    pub type_id: TypeId,
    /// For `Reference` and `canonical`: the allowed targets, by resource type name, or by URL
    /// when the target is not a core type. Empty means any.
    pub targets: &'static [&'static str],
    /// Profiles the value must conform to (`SimpleQuantity`), by URL.
    pub profiles: &'static [&'static str],
}

/// A JSON property name of a type, and the element (and choice type) it stands for.
#[derive(Debug)]
pub struct JsonName {
    /// The property name: `birthDate`, `valueQuantity`.
    pub name: &'static str,
    /// Index of the element in [`TypeDef::elements`].
    pub element: u16,
    /// Index of the type in [`ElementDef::types`] (0 unless the element is a choice).
    pub choice: u16,
}

/// Binding strength (`required`, `extensible`, `preferred`, `example`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingStrength {
    /// Only codes of the value set are allowed.
    Required,
    /// Codes of the value set are to be used when one applies.
    Extensible,
    /// Codes of the value set are encouraged.
    Preferred,
    /// The value set is an example only.
    Example,
}

/// A terminology binding.
#[derive(Debug)]
pub struct Binding {
    /// How strictly the value set applies.
    pub strength: BindingStrength,
    /// The value set's canonical URL, without version.
    pub value_set: &'static str,
    /// Index into [`VALUE_SETS`] when the core specification defines the value set.
    pub value_set_idx: Option<u16>,
}

/// Constraint severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintSeverity {
    /// Violations are errors.
    Error,
    /// Violations are warnings.
    Warning,
}

/// An invariant (`ele-1`, `pat-1`, ...).
#[derive(Debug)]
pub struct Constraint {
    /// The key, e.g. `ele-1`.
    pub key: &'static str,
    /// Error or warning.
    pub severity: ConstraintSeverity,
    /// The human description.
    pub human: &'static str,
    /// The FHIRPath expression that must be true.
    pub expression: &'static str,
}

/// An extension defined by the core specification.
#[derive(Debug)]
pub struct ExtensionDef {
    /// The URL, without `http://hl7.org/fhir/StructureDefinition/` for those in the core
    /// namespace (`patient-birthPlace`).
    pub name: &'static str,
    /// Where it may be used: type names (`HumanName`, `Element`) and element paths
    /// (`HumanName.family`, `Patient.contact`).
    pub contexts: &'static [&'static str],
    /// The types its `value[x]` may take; empty for one made of sub-extensions.
    pub value_types: &'static [TypeId],
}

/// A value set of the core specification.
#[derive(Debug)]
pub struct ValueSetDef {
    /// Canonical URL.
    pub url: &'static str,
    /// Computer-friendly name.
    pub name: &'static str,
    /// All codes, as (index into [`CODE_SYSTEMS`], code), sorted; `None` when the value set
    /// cannot be expanded from the core specification alone (it names an external code system
    /// or a filter the generator does not evaluate).
    pub codes: Option<&'static [(u16, &'static str)]>,
}

/// Search parameter types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchParamType {
    /// `number`
    Number,
    /// `date`
    Date,
    /// `string`
    String,
    /// `token`
    Token,
    /// `reference`
    Reference,
    /// `composite`
    Composite,
    /// `quantity`
    Quantity,
    /// `uri`
    Uri,
    /// `special`
    Special,
}

impl SearchParamType {
    /// The type's code, as FHIR writes it (`token`).
    pub fn code(self) -> &'static str {
        match self {
            SearchParamType::Number => "number",
            SearchParamType::Date => "date",
            SearchParamType::String => "string",
            SearchParamType::Token => "token",
            SearchParamType::Reference => "reference",
            SearchParamType::Composite => "composite",
            SearchParamType::Quantity => "quantity",
            SearchParamType::Uri => "uri",
            SearchParamType::Special => "special",
        }
    }
}

/// A search parameter of the core specification.
#[derive(Debug)]
pub struct SearchParamDef {
    /// Canonical URL.
    pub url: &'static str,
    /// Name.
    pub name: &'static str,
    /// The code used in URLs (`birthdate`).
    pub code: &'static str,
    /// Its type.
    pub kind: SearchParamType,
    /// Resource types it applies to.
    pub base: &'static [&'static str],
    /// FHIRPath expression that extracts the values, when there is one.
    pub expression: Option<&'static str>,
    /// For references: the allowed target types.
    pub target: &'static [&'static str],
    /// Modifiers the definition lists.
    pub modifier: &'static [&'static str],
    /// Comparators the definition lists (`eq`, `gt`, ...).
    pub comparator: &'static [&'static str],
    /// For composites: (definition URL, expression) of each component.
    pub components: &'static [(&'static str, &'static str)],
}

impl TypeDef {
    /// Finds the element (and choice type) that a JSON property name stands for.
    pub fn json_name(&self, name: &str) -> Option<&'static JsonName> {
        self.json_names
            .binary_search_by(|entry| short_cmp(entry.name, name))
            .ok()
            .and_then(|idx| self.json_names.get(idx))
    }

    /// True for resource types that can have instances (not `Resource` or `DomainResource`).
    pub fn is_concrete_resource(&self) -> bool {
        self.kind == TypeKind::Resource && !self.is_abstract
    }
}

/// `a.cmp(b)` for the short names of the model, byte by byte in line: most comparisons of a
/// binary search end at the first bytes, where calling `memcmp` costs more than comparing.
#[inline]
fn short_cmp(a: &str, b: &str) -> core::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// True when `type_id` is the type called `name` or derives from it.
pub fn derives_from(type_id: TypeId, name: &str) -> bool {
    let mut current = Some(type_id);
    while let Some(id) = current {
        let def = type_def(id);
        if def.name == name {
            return true;
        }
        current = def.base;
    }
    false
}

/// True when data of type `type_id` is of type `target` for FHIRPath (`is`, `ofType()`): the
/// type itself or one it derives from; a backbone element is also a `BackboneElement` and an
/// `Element`.
pub fn is_of_type(type_id: TypeId, target: TypeId) -> bool {
    let mut current = type_id;
    loop {
        if current == target {
            return true;
        }
        let def = type_def(current);
        if def.kind == TypeKind::Backbone {
            let name = type_def(target).name;
            return name == "BackboneElement" || name == "Element";
        }
        match def.base {
            Some(base) => current = base,
            None => return false,
        }
    }
}

/// The type at `id`.
///
/// Every `TypeId` in the generated tables is valid; an id from elsewhere that is out of range
/// yields the first type rather than a panic.
pub fn type_def(id: TypeId) -> &'static TypeDef {
    TYPES.get(usize::from(id.0)).unwrap_or(&TYPES[0])
}

/// Finds a resource, data type or backbone element by name (`Patient`, `HumanName`, `Patient.contact`).
pub fn type_by_name(name: &str) -> Option<TypeId> {
    generated::types::TYPE_NAMES
        .binary_search_by(|(candidate, _)| short_cmp(candidate, name))
        .ok()
        .and_then(|idx| generated::types::TYPE_NAMES.get(idx))
        .map(|(_, id)| *id)
}

/// The namespace of the core StructureDefinitions, extensions among them.
pub const CORE_DEFINITIONS: &str = "http://hl7.org/fhir/StructureDefinition/";

/// Finds a core extension definition by URL (a version after `|` is ignored).
pub fn extension_def(url: &str) -> Option<&'static ExtensionDef> {
    let url = url.split('|').next().unwrap_or(url);
    // A sub-extension's relative URL (`display`) is not a core extension's name.
    let name = match url.strip_prefix(CORE_DEFINITIONS) {
        Some(name) => name,
        None if url.contains(':') => url,
        None => return None,
    };
    EXTENSIONS
        .binary_search_by(|def| def.name.cmp(name))
        .ok()
        .and_then(|idx| EXTENSIONS.get(idx))
}

/// Finds a concrete resource type by name.
pub fn resource_type(name: &str) -> Option<TypeId> {
    type_by_name(name).filter(|id| type_def(*id).is_concrete_resource())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn element(type_name: &str, name: &str) -> &'static ElementDef {
        let def = type_by_name(type_name).map(type_def);
        def.and_then(|def| def.elements.iter().find(|element| element.name == name))
            .unwrap_or_else(|| panic!("{type_name}.{name} is not in the model"))
    }

    fn type_names(element: &ElementDef) -> Vec<&'static str> {
        element
            .types
            .iter()
            .map(|element_type| type_def(element_type.type_id).name)
            .collect()
    }

    #[test]
    fn no_type_derives_from_a_concrete_resource_type() {
        // `Expression::for_root_type` relies on it: a path starting at another concrete
        // resource type is empty on a resource.
        for def in TYPES.iter() {
            if let Some(base) = def.base {
                assert!(
                    !type_def(base).is_concrete_resource(),
                    "{} derives from {}",
                    def.name,
                    type_def(base).name
                );
            }
        }
    }

    #[test]
    fn every_r4_resource_type_is_there() {
        let resources: Vec<&str> = TYPES
            .iter()
            .filter(|def| def.is_concrete_resource())
            .map(|def| def.name)
            .collect();
        assert_eq!(resources.len(), 146);
        for name in [
            "Patient",
            "Observation",
            "Bundle",
            "VisionPrescription",
            "Account",
            "MedicinalProductPackaged",
        ] {
            assert!(resources.contains(&name), "{name}");
        }
        assert_eq!(resource_type("DomainResource"), None);
        assert_eq!(resource_type("HumanName"), None);
        assert_eq!(type_def(ty::PATIENT).name, "Patient");
    }

    #[test]
    fn elements_carry_cardinality_flags_and_order() {
        let names: Vec<&str> = type_def(ty::PATIENT)
            .elements
            .iter()
            .map(|element| element.name)
            .collect();
        assert_eq!(names[..4], ["id", "meta", "implicitRules", "language"]);
        let status = element("Observation", "status");
        assert_eq!((status.min, status.max), (1, 1));
        assert!(status.has(flags::MODIFIER) && status.has(flags::SUMMARY));
        let given = element("HumanName", "given");
        assert_eq!((given.min, given.max), (0, MANY));
        assert!(!element("Patient", "photo").has(flags::SUMMARY));
    }

    #[test]
    fn choice_elements_list_their_types_and_json_names() {
        let value = element("Observation", "value");
        assert!(value.has(flags::CHOICE));
        assert_eq!(
            type_names(value),
            [
                "Quantity",
                "CodeableConcept",
                "string",
                "boolean",
                "integer",
                "Range",
                "Ratio",
                "SampledData",
                "time",
                "dateTime",
                "Period"
            ]
        );
        let observation = type_def(ty::OBSERVATION);
        let json_name = observation
            .json_name("valueQuantity")
            .map(|name| name.choice);
        assert_eq!(json_name, Some(0));
        assert!(observation.json_name("value").is_none());
        assert_eq!(type_names(element("Extension", "value")).len(), 50);
    }

    #[test]
    fn references_name_their_targets() {
        let subject = element("Observation", "subject");
        assert_eq!(type_names(subject), ["Reference"]);
        assert_eq!(
            subject.types[0].targets,
            ["Patient", "Group", "Device", "Location"]
        );
    }

    #[test]
    fn backbone_elements_and_content_references_are_types() {
        let item = element("Questionnaire", "item");
        assert_eq!(type_names(item), ["Questionnaire.item"]);
        let nested = element("Questionnaire.item", "item");
        assert!(nested.has(flags::CONTENT_REFERENCE));
        assert_eq!(nested.types[0].type_id, item.types[0].type_id);
        assert_eq!(type_def(item.types[0].type_id).kind, TypeKind::Backbone);
    }

    #[test]
    fn required_bindings_have_their_codes() {
        let gender = element("Patient", "gender");
        let binding = gender
            .binding
            .unwrap_or_else(|| panic!("Patient.gender has no binding"));
        assert_eq!(binding.strength, BindingStrength::Required);
        assert_eq!(
            binding.value_set,
            "http://hl7.org/fhir/ValueSet/administrative-gender"
        );
        let value_set = binding
            .value_set_idx
            .and_then(|idx| VALUE_SETS.get(usize::from(idx)));
        let codes: Vec<(&str, &str)> = value_set
            .and_then(|value_set| value_set.codes)
            .unwrap_or_default()
            .iter()
            .map(|(system, code)| (CODE_SYSTEMS[usize::from(*system)], *code))
            .collect();
        let system = "http://hl7.org/fhir/administrative-gender";
        assert_eq!(
            codes,
            [
                (system, "female"),
                (system, "male"),
                (system, "other"),
                (system, "unknown")
            ]
        );
        let language = element("Patient", "language")
            .binding
            .map(|binding| binding.strength);
        assert_eq!(language, Some(BindingStrength::Preferred));
    }

    #[test]
    fn constraints_keep_key_expression_and_severity() {
        let pat1 = element("Patient", "contact")
            .constraints
            .iter()
            .map(|idx| &CONSTRAINTS[usize::from(*idx)])
            .find(|constraint| constraint.key == "pat-1")
            .unwrap_or_else(|| panic!("pat-1 missing"));
        assert_eq!(pat1.severity, ConstraintSeverity::Error);
        assert_eq!(
            pat1.expression,
            "name.exists() or telecom.exists() or address.exists() or organization.exists()"
        );
        let dom6 = type_def(ty::PATIENT)
            .constraints
            .iter()
            .map(|idx| &CONSTRAINTS[usize::from(*idx)]);
        assert!(dom6.clone().any(|constraint| constraint.key == "dom-6"
            && constraint.severity == ConstraintSeverity::Warning));
    }

    #[test]
    fn primitives_know_their_json_form_and_regex() {
        let decimal = type_def(ty::DECIMAL).primitive;
        assert_eq!(decimal.map(|p| p.json), Some(JsonKind::Decimal));
        assert_eq!(
            decimal.and_then(|p| p.regex),
            Some("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")
        );
        assert_eq!(
            type_def(ty::BOOLEAN).primitive.map(|p| p.json),
            Some(JsonKind::Boolean)
        );
        assert_eq!(
            type_def(ty::UNSIGNED_INT).primitive.map(|p| p.json),
            Some(JsonKind::Integer)
        );
        assert!(element("Element", "id").has(flags::NO_EXTENSIONS));
        assert_eq!(type_names(element("Patient", "id")), ["id"]);
    }

    #[test]
    fn search_parameters_are_all_there() {
        assert_eq!(SEARCH_PARAMS.len(), 1375);
        let birthdate = SEARCH_PARAMS
            .iter()
            .find(|param| param.url == "http://hl7.org/fhir/SearchParameter/individual-birthdate");
        let birthdate = birthdate.unwrap_or_else(|| panic!("individual-birthdate missing"));
        assert_eq!(
            (birthdate.code, birthdate.kind),
            ("birthdate", SearchParamType::Date)
        );
        assert_eq!(birthdate.base, ["Patient", "Person", "RelatedPerson"]);
        assert!(birthdate.comparator.contains(&"sa"));
        let composite = SEARCH_PARAMS
            .iter()
            .find(|param| param.url.ends_with("/Observation-code-value-quantity"));
        assert_eq!(composite.map(|param| param.components.len()), Some(2));
    }
}

//! Routes: the JSON properties a plain path (`Observation.subject.reference`) follows through a
//! resource of one type down to primitive values, with how each holds its value (one or an
//! array) and how the values are written. A host that holds the resource as objects (a plain
//! JS object) follows the route itself: the values it finds, in order, are the results, and
//! each property on the way is checked by the FHIR JSON rules as the engine would read it from
//! the expression's projection (see [`super::projection::shape`]). What the host cannot settle
//! by those rules (a `_name` companion, `null`, anything not plain JSON data) it leaves to the
//! engine.

use alloc::string::String;
use alloc::vec::Vec;

use super::parser::{BinaryOp, Expr, Literal};
use super::projection::{self, Whole};
use crate::json::fhir::primitive_json_kind;
use crate::model::{self, flags, TypeId, TypeKind};

/// The most properties a route follows (longer paths are left to the engine).
const MAX_ROUTE_STEPS: usize = 16;

/// The route of `ast` through a resource of type `resource_type`: the JSON names it follows,
/// separated by `.`, each followed by `+` when it holds an array and by the other properties
/// its object holds that the projection reads (`{code:s,_code:x}`, see below), then `:` and
/// how the values at its end are written: `s` a string, `b` a boolean, `d` a decimal, `i` an
/// integer, `p` a positive integer, `u` an unsigned integer. `name+.given+:s` for
/// `Patient.name.given`.
///
/// `#c`, `#e`, `#n` or `#f` after it tells that the path ends in `count()`, `exists()` (or
/// `exists(name = 'text')`), `empty()` or `first()`, the answer being what the values found
/// come to; the values may then be objects
/// (`o`: `result+:o#c` for `DiagnosticReport.result.count()`), only counted.
///
/// The other properties are checked, not followed: each is written as its kind says (`o` an
/// object), `x` must not be there (a companion, left to the engine), and `=` marks another
/// type of the choice element followed, which may not be there beside it
/// (`valueQuantity{valueString:=s,_valueString:=x,...}`).
///
/// `?name=text` at the end of a step (after what is checked beside it; the text
/// percent-encoded) keeps only its values whose string element `name` is `text`:
/// `where(name = 'text')`.
///
/// `:r` at the end tells that the values are resources (`entry+.resource:r` for
/// `Bundle.entry.resource`), `:r@Observation` only those of that type (`ofType(Observation)`):
/// each is read as a resource, whole unless only counted.
///
/// `None` unless `ast` is a path of element names (the first may name the resource's own type;
/// a choice element followed by `ofType()` of one of its types; `where(name = 'text')` after a
/// step) that ends at a primitive element, at objects counted, or at resources (perhaps
/// `ofType()` one concrete type), without resources on the way, and whose projection's tree
/// reads nothing a check cannot settle.
pub(crate) fn route(ast: &Expr, resource_type: &str) -> Option<String> {
    let type_id = model::resource_type(resource_type)?;
    // `count()`, `exists()` or `empty()` at the end: what the values found come to.
    let mut parts = Vec::new();
    let (ending, mut node) = match ast {
        Expr::Call(Some(target), function, args, _) => match (function.as_str(), args.as_slice()) {
            ("count", []) => (Some('c'), &**target),
            ("exists", []) => (Some('e'), &**target),
            ("empty", []) => (Some('n'), &**target),
            ("first", []) => (Some('f'), &**target),
            // `exists(criteria)`: `where(criteria).exists()`.
            ("exists", [criteria]) => {
                parts.push(filter(criteria)?);
                (Some('e'), &**target)
            }
            _ => (None, ast),
        },
        _ => (None, ast),
    };
    loop {
        match node {
            Expr::Call(Some(target), function, args, _) if function == "where" => {
                let [criteria] = args.as_slice() else {
                    return None;
                };
                parts.push(filter(criteria)?);
                node = target;
            }
            Expr::Member(target, name, _) => {
                parts.push(Part::Name(name));
                node = target;
            }
            Expr::Call(Some(target), function, args, _) if function == "ofType" => {
                let [Expr::Ident(type_name, _)] = args.as_slice() else {
                    return None;
                };
                parts.push(Part::OfType(type_name.type_id?));
                node = target;
            }
            Expr::Ident(name, _) => {
                parts.push(Part::Name(name));
                break;
            }
            _ => return None,
        }
        if parts.len() > MAX_ROUTE_STEPS {
            return None;
        }
    }
    parts.reverse();
    // The resource's own type at the start passes the resource itself; another type name
    // (a base type, or one the resource is not) is left to the engine.
    let Some(Part::Name(first)) = parts.first() else {
        return None;
    };
    let parts = if &***first == model::type_def(type_id).name {
        parts.get(1..)?
    } else if first.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    } else {
        &parts[..]
    };
    let tree = projection::tree(ast, resource_type)?;
    // The node of the tree the step reads in.
    let mut node = 0;
    let mut current = type_id;
    let mut out = String::new();
    let mut idx = 0;
    // The name the values of the step before were filtered on.
    let mut before: Option<&str> = None;
    while let Some(part) = parts.get(idx) {
        let Part::Name(name) = part else {
            return None;
        };
        let def = model::type_def(current);
        // A choice element has no JSON name of its own: found by its element name.
        let index = match def.json_name(name) {
            Some(found) => found.element,
            None => u16::try_from(
                def.elements
                    .iter()
                    .position(|element| element.name == &***name)?,
            )
            .ok()?,
        };
        let element = def.elements.get(usize::from(index))?;
        if element.name != &***name || element.max == 0 {
            return None;
        }
        // The JSON name followed, and its type: a choice element's, for the one type named.
        let (key, value_type) = if element.has(flags::CHOICE) {
            let Some(Part::OfType(wanted)) = parts.get(idx + 1) else {
                return None;
            };
            idx += 1;
            let mut chosen = None;
            for (choice, element_type) in element.types.iter().enumerate() {
                if element_type.type_id == *wanted {
                    chosen = u16::try_from(choice).ok();
                } else if model::is_of_type(element_type.type_id, *wanted) {
                    return None;
                }
            }
            let chosen = chosen?;
            let key = def
                .json_names
                .iter()
                .find(|json_name| json_name.element == index && json_name.choice == chosen)?;
            (key.name, *wanted)
        } else {
            let [element_type] = element.types else {
                return None;
            };
            (element.name, element_type.type_id)
        };
        // Resources (`Bundle.entry.resource`), perhaps of one type (`ofType(Observation)`).
        let resources = model::type_def(value_type).kind == TypeKind::Resource;
        let mut wanted_resource = None;
        if resources {
            if let Some(Part::OfType(wanted)) = parts.get(idx + 1) {
                idx += 1;
                wanted_resource = Some(*wanted);
            }
        }
        // `where(name = 'text')` on this step's values.
        let filtered = match parts.get(idx + 1) {
            Some(Part::Where(name, text)) => {
                idx += 1;
                Some((*name, *text))
            }
            _ => None,
        };
        let last = idx + 1 == parts.len();
        let &(_, followed) = tree
            .children(node)
            .iter()
            .find(|(name, _)| name.as_str() == key)?;
        if tree.whole(followed).is_some() && !(resources && last) {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
        if element.is_array() {
            out.push('+');
        }
        // What else the projection reads in this object: checked, not followed.
        let companion = alloc::format!("_{key}");
        let mut guards = String::new();
        for (other, other_node) in tree.children(node) {
            if other == key
                || (last && *other == companion)
                || (node == 0 && other == "resourceType")
                || is_filter(other, before)
            {
                continue;
            }
            if !tree.children(*other_node).is_empty() || tree.whole(*other_node).is_some() {
                return None;
            }
            let (kind, same_choice) = guard(def, other, index)?;
            guards.push(if guards.is_empty() { '{' } else { ',' });
            guards.push_str(other);
            guards.push(':');
            if same_choice {
                guards.push('=');
            }
            guards.push(kind);
        }
        if !guards.is_empty() {
            guards.push('}');
            out.push_str(&guards);
        }
        let value_def = model::type_def(value_type);
        if let Some((name, text)) = filtered {
            // The values are objects with `name` a string element of theirs.
            if !matches!(value_def.kind, TypeKind::Complex | TypeKind::Backbone)
                || value_def.is_abstract
            {
                return None;
            }
            let found = value_def.json_name(name)?;
            let element = value_def.elements.get(usize::from(found.element))?;
            let [element_type] = element.types else {
                return None;
            };
            let string = STRING_TYPES.contains(&model::type_def(element_type.type_id).name);
            if element.name != name || element.is_array() || element.max == 0 || !string {
                return None;
            }
            out.push('?');
            out.push_str(name);
            out.push('=');
            for byte in text.bytes() {
                if byte.is_ascii_alphanumeric() {
                    out.push(char::from(byte));
                } else {
                    out.push_str(&alloc::format!("%{byte:02X}"));
                }
            }
        }
        before = filtered.map(|(name, _)| name);
        if last && resources {
            resource_end(&tree, followed, wanted_resource, ending, &mut out)?;
        } else if last {
            if !tree
                .children(followed)
                .iter()
                .all(|(child, _)| is_filter(child, before))
                || ending == Some('f') && !matches!(value_def.kind, TypeKind::Primitive)
            {
                return None;
            }
            out.push(':');
            // Objects at the end only to be counted.
            let kind = match value_def.kind {
                TypeKind::Complex | TypeKind::Backbone
                    if ending.is_some() && !value_def.is_abstract =>
                {
                    'o'
                }
                _ => primitive_json_kind(value_def)?,
            };
            out.push(kind);
            if let Some(ending) = ending {
                out.push('#');
                out.push(ending);
            }
        } else {
            if !matches!(value_def.kind, TypeKind::Complex | TypeKind::Backbone)
                || value_def.is_abstract
            {
                return None;
            }
            node = followed;
            current = value_type;
        }
        idx += 1;
    }
    (!out.is_empty()).then_some(out)
}

/// Writes the end of a route whose values are resources: `:r`, then `@Type` when only those
/// of one type are kept, and the ending. The projection reads each one's `resourceType`, and
/// the whole of those kept, unless they are only counted (`count()`, `exists()`, `empty()`).
fn resource_end(
    tree: &projection::Tree,
    followed: usize,
    wanted: Option<TypeId>,
    ending: Option<char>,
    out: &mut String,
) -> Option<()> {
    let [(only, only_node)] = tree.children(followed) else {
        return None;
    };
    if only != "resourceType"
        || !tree.children(*only_node).is_empty()
        || tree.whole(*only_node).is_some()
    {
        return None;
    }
    let whole = matches!(ending, None | Some('f'));
    let kept = tree.whole(followed);
    out.push_str(":r");
    match wanted {
        Some(wanted) => {
            let def = model::type_def(wanted);
            // A concrete type: no other resource type derives from it.
            let only_it =
                matches!(kept, Some(Whole::Resources(types)) if types.as_slice() == [def.name]);
            if !def.is_concrete_resource() || (whole && !only_it) {
                return None;
            }
            out.push('@');
            out.push_str(def.name);
        }
        None if whole && !matches!(kept, Some(Whole::Always)) => return None,
        None => {}
    }
    if kept.is_some() != whole {
        return None;
    }
    if let Some(ending) = ending {
        out.push('#');
        out.push(ending);
    }
    Some(())
}

/// A step of a plain path.
enum Part<'x> {
    Name(&'x super::parser::Name),
    OfType(TypeId),
    /// `where(name = 'text')`.
    Where(&'x str, &'x str),
}

/// The FHIR types whose values FHIRPath compares as strings.
const STRING_TYPES: &[&str] = &[
    "string",
    "code",
    "id",
    "uri",
    "url",
    "canonical",
    "markdown",
    "oid",
    "uuid",
];

/// `where()`'s criteria when it is `name = 'text'` (or `'text' = name`).
fn filter(criteria: &Expr) -> Option<Part<'_>> {
    let Expr::Binary(BinaryOp::Eq, left, right, _) = criteria else {
        return None;
    };
    match (&**left, &**right) {
        (Expr::Ident(name, _), Expr::Literal(Literal::Str(text), _))
        | (Expr::Literal(Literal::Str(text), _), Expr::Ident(name, _)) => {
            Some(Part::Where(name, text))
        }
        _ => None,
    }
}

/// True for the name values were filtered on, or its companion.
fn is_filter(name: &str, filter: Option<&str>) -> bool {
    filter.is_some_and(|filter| name == filter || name.strip_prefix('_') == Some(filter))
}

/// How property `name` of an object of type `def` is checked beside the one followed (of
/// element `followed`), and whether it is another name of that choice element: `x` for a
/// companion, `o` for an object, else its primitive kind. `None` for what a check cannot
/// settle (arrays, resources, names the type lacks).
fn guard(def: &model::TypeDef, name: &str, followed: u16) -> Option<(char, bool)> {
    if let Some(base) = name.strip_prefix('_') {
        let found = def.json_name(base)?;
        return Some(('x', found.element == followed));
    }
    let found = def.json_name(name)?;
    let element = def.elements.get(usize::from(found.element))?;
    if element.is_array() || element.max == 0 {
        return None;
    }
    let value_def = model::type_def(element.types.get(usize::from(found.choice))?.type_id);
    let kind = match value_def.kind {
        TypeKind::Complex | TypeKind::Backbone if !value_def.is_abstract => 'o',
        _ => primitive_json_kind(value_def)?,
    };
    Some((kind, found.element == followed))
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::route;

    fn route_of(expression: &str, resource_type: &str) -> Option<alloc::string::String> {
        route(&parse(expression).expect("parses"), resource_type)
    }

    #[test]
    fn plain_paths_to_primitives() {
        for (expression, resource_type, expected) in [
            (
                "Observation.subject.reference",
                "Observation",
                "subject.reference:s",
            ),
            ("subject.reference", "Observation", "subject.reference:s"),
            ("Patient.birthDate", "Patient", "birthDate:s"),
            ("Patient.name.given", "Patient", "name+.given+:s"),
            ("Patient.active", "Patient", "active:b"),
            (
                "Observation.component.code.coding.code",
                "Observation",
                "component+.code.coding+.code:s",
            ),
            ("Patient.name.id", "Patient", "name+.id:s"),
            ("Patient.extension.url", "Patient", "extension+.url:s"),
            (
                "RiskAssessment.prediction.relativeRisk",
                "RiskAssessment",
                "prediction+.relativeRisk:d",
            ),
            ("Patient.photo.size", "Patient", "photo+.size:u"),
            (
                "ImagingStudy.series.number",
                "ImagingStudy",
                "series+.number:u",
            ),
            (
                "Questionnaire.item.maxLength",
                "Questionnaire",
                "item+.maxLength:i",
            ),
            (
                "Questionnaire.item.item.item.linkId",
                "Questionnaire",
                "item+.item+.item+.linkId:s",
            ),
            // A Quantity's code and unit are read too: checked beside its value.
            (
                "Observation.referenceRange.low.value",
                "Observation",
                "referenceRange+.low.value{code:s,_code:x,unit:s,_unit:x}:d",
            ),
            // A choice element's other types are checked, and may not be there beside it.
            ("DiagnosticReport.result.count()", "DiagnosticReport", "result+:o#c"),
            ("Patient.name.given.first()", "Patient", "name+.given+:s#f"),
            (
                "Patient.name.where(use = 'official').given.first()",
                "Patient",
                "name+?use=official.given+:s#f",
            ),
            (
                "Observation.code.coding.where(system = 'http://loinc.org').code",
                "Observation",
                "code.coding+?system=http%3A%2F%2Floinc%2Eorg.code:s",
            ),
            (
                "Procedure.code.coding.exists('x y' = system)",
                "Procedure",
                "code.coding+?system=x%20y:o#e",
            ),
            ("Patient.name.given.exists()", "Patient", "name+.given+:s#e"),
            ("Patient.name.empty()", "Patient", "name+:o#n"),
            (
                "Patient.deceased.ofType(boolean)",
                "Patient",
                "deceasedBoolean{deceasedDateTime:=s,_deceasedDateTime:=x}:b",
            ),
            // Resources, whole or counted, all or of one type.
            ("Bundle.entry.resource", "Bundle", "entry+.resource:r"),
            (
                "Bundle.entry.resource.ofType(Observation)",
                "Bundle",
                "entry+.resource:r@Observation",
            ),
            (
                "Bundle.entry.resource.ofType(Observation).count()",
                "Bundle",
                "entry+.resource:r@Observation#c",
            ),
            ("Bundle.entry.resource.first()", "Bundle", "entry+.resource:r#f"),
            ("Patient.contained.count()", "Patient", "contained+:r#c"),
            ("contained.ofType(Patient)", "Patient", "contained+:r@Patient"),
            (
                "Parameters.parameter.resource.ofType(Patient).exists()",
                "Parameters",
                "parameter+.resource:r@Patient#e",
            ),
            (
                "Observation.value.ofType(Quantity).value",
                "Observation",
                "valueQuantity{valueBoolean:=b,_valueBoolean:=x,valueCodeableConcept:=o,\
                 valueDateTime:=s,_valueDateTime:=x,valueInteger:=i,_valueInteger:=x,\
                 valuePeriod:=o,valueRange:=o,valueRatio:=o,valueSampledData:=o,valueString:=s,\
                 _valueString:=x,valueTime:=s,_valueTime:=x}.value{code:s,_code:x,unit:s,_unit:x}:d",
            ),
        ] {
            assert_eq!(
                route_of(expression, resource_type).as_deref(),
                Some(expected),
                "{expression} on {resource_type}"
            );
        }
    }

    #[test]
    fn no_route_where_the_engine_must_read() {
        for (expression, resource_type) in [
            // Another type, a base type, an unknown or abstract type.
            ("Observation.subject.reference", "Patient"),
            ("Resource.id", "Patient"),
            ("Patient.birthDate", "Nothing"),
            ("Resource.id", "Resource"),
            // Choice elements without ofType(), by a typed name, or with a type they lack.
            ("Observation.value", "Observation"),
            ("Observation.valueQuantity.value", "Observation"),
            ("Patient.deceased", "Patient"),
            ("Observation.value.ofType(Age).value", "Observation"),
            ("Observation.value.ofType(Nothing).value", "Observation"),
            (
                "Observation.value.ofType(Quantity).ofType(Quantity).value",
                "Observation",
            ),
            // Another type of the choice derives from the one named (Age from Quantity).
            ("Condition.onset.ofType(Quantity).value", "Condition"),
            // Complex and resource results, other functions at the end.
            ("Patient.name", "Patient"),
            ("Patient.name.first()", "Patient"),
            ("Patient.name.given.count().exists()", "Patient"),
            ("Bundle.entry.resource.id", "Bundle"),
            // Resources of an abstract type, of a type that is no resource, or filtered.
            ("Bundle.entry.resource.ofType(DomainResource)", "Bundle"),
            ("Bundle.entry.resource.ofType(Resource)", "Bundle"),
            ("Bundle.entry.resource.ofType(string)", "Bundle"),
            ("Bundle.entry.resource.where(id = 'x')", "Bundle"),
            (
                "Bundle.entry.resource.ofType(Patient).where(id = 'x')",
                "Bundle",
            ),
            (
                "Bundle.entry.resource.ofType(Patient).ofType(Patient)",
                "Bundle",
            ),
            ("Bundle.entry.resource.ofType(Patient).name", "Bundle"),
            ("Patient.contained.id", "Patient"),
            // Names the type does not have, companions, past a primitive.
            ("Patient.nothing", "Patient"),
            ("Patient._birthDate", "Patient"),
            ("Patient.birthDate.extension", "Patient"),
            ("Patient", "Patient"),
            // Anything but a path of names, filters on a string element and endings.
            (
                "Patient.name.where(use = 'official').given.where(true)",
                "Patient",
            ),
            ("Patient.name.where(use != 'official').given", "Patient"),
            ("Patient.name.where(use = %x).given", "Patient"),
            ("Patient.name.where(period = 'x').given", "Patient"),
            ("Patient.name.where(given = 'x').family", "Patient"),
            ("Patient.birthDate.where($this = '1970')", "Patient"),
            ("Patient.birthDate.where(id = 'x')", "Patient"),
            (
                "Patient.name.where(use = 'a').where(use = 'b').given",
                "Patient",
            ),
            ("Patient.name.where(use = 'official')", "Patient"),
            ("Patient.telecom.where(rank = '1').value", "Patient"),
            ("Patient.name[0].given", "Patient"),
            ("%resource.birthDate", "Patient"),
            ("Patient.birthDate | Patient.gender", "Patient"),
        ] {
            assert_eq!(
                route_of(expression, resource_type),
                None,
                "{expression} on {resource_type}"
            );
        }
        let long = alloc::format!("Questionnaire{}.linkId", ".item".repeat(20));
        assert_eq!(route_of(&long, "Questionnaire"), None);
    }
}

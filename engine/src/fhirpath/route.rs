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

use super::parser::Expr;
use super::projection;
use crate::model::{self, flags, JsonKind, TypeId, TypeKind};

/// The most properties a route follows (longer paths are left to the engine).
const MAX_ROUTE_STEPS: usize = 16;

/// The route of `ast` through a resource of type `resource_type`: the JSON names it follows,
/// separated by `.`, each followed by `+` when it holds an array, then `:` and how the
/// values at its end are written: `s` a string, `b` a boolean, `d` a decimal, `i` an integer,
/// `p` a positive integer, `u` an unsigned integer. `name+.given+:s` for `Patient.name.given`.
///
/// `None` unless `ast` is a path of element names (the first may name the resource's own type)
/// that ends at a primitive element, without choice or resource-typed elements, and reads
/// exactly what its projection's tree reads on that type.
pub(crate) fn route(ast: &Expr, resource_type: &str) -> Option<String> {
    let type_id = model::resource_type(resource_type)?;
    let mut names = Vec::new();
    let mut node = ast;
    loop {
        match node {
            Expr::Member(target, name, _) => {
                names.push(&**name);
                node = target;
            }
            Expr::Ident(name, _) => {
                names.push(&**name);
                break;
            }
            _ => return None,
        }
        if names.len() > MAX_ROUTE_STEPS {
            return None;
        }
    }
    names.reverse();
    // The resource's own type at the start passes the resource itself; another type name
    // (a base type, or one the resource is not) is left to the engine.
    let first = names.first()?;
    let names = if *first == model::type_def(type_id).name {
        names.get(1..)?
    } else if first.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    } else {
        &names[..]
    };
    let last = names.len().checked_sub(1)?;
    let mut out = String::new();
    // The projection's tree this route reads, to compare with the one the engine makes.
    let mut tree = String::from("resourceType");
    let mut current = type_id;
    for (idx, name) in names.iter().enumerate() {
        let (element_type, is_array) = element(current, name)?;
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
        if is_array {
            out.push('+');
        }
        if !tree.ends_with('(') {
            tree.push(',');
        }
        tree.push_str(name);
        let def = model::type_def(element_type);
        if idx == last {
            let kind = match (def.kind, def.primitive.map(|primitive| primitive.json)) {
                (TypeKind::Primitive, Some(JsonKind::String) | None) => 's',
                (TypeKind::Primitive, Some(JsonKind::Boolean)) => 'b',
                (TypeKind::Primitive, Some(JsonKind::Decimal)) => 'd',
                (TypeKind::Primitive, Some(JsonKind::Integer)) => match def.name {
                    "positiveInt" => 'p',
                    "unsignedInt" => 'u',
                    "integer" => 'i',
                    _ => return None,
                },
                _ => return None,
            };
            out.push(':');
            out.push(kind);
            tree.push_str(",_");
            tree.push_str(name);
        } else {
            if !matches!(def.kind, TypeKind::Complex | TypeKind::Backbone) || def.is_abstract {
                return None;
            }
            tree.push('(');
            current = element_type;
        }
    }
    for _ in 1..names.len() {
        tree.push(')');
    }
    (projection::shape(ast, resource_type)? == tree).then_some(out)
}

/// The type of element `name` of type `type_id` and whether it repeats: `None` for a name the
/// type does not have, a choice element, or one that is not allowed.
fn element(type_id: TypeId, name: &str) -> Option<(TypeId, bool)> {
    if name.starts_with('_') {
        return None;
    }
    let def = model::type_def(type_id);
    let found = def.json_name(name)?;
    let element = def.elements.get(usize::from(found.element))?;
    if element.name != name || element.has(flags::CHOICE) || element.max == 0 {
        return None;
    }
    let [element_type] = element.types else {
        return None;
    };
    Some((element_type.type_id, element.is_array()))
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
            // Choice elements, with or without ofType().
            ("Observation.value", "Observation"),
            ("Observation.value.ofType(Quantity).value", "Observation"),
            ("Observation.valueQuantity.value", "Observation"),
            ("Patient.deceased", "Patient"),
            // A Quantity's value, code and unit are read too; complex and resource results.
            ("Observation.referenceRange.low.value", "Observation"),
            ("Patient.name", "Patient"),
            ("Bundle.entry.resource", "Bundle"),
            ("Bundle.entry.resource.id", "Bundle"),
            ("Patient.contained.id", "Patient"),
            // Names the type does not have, companions, past a primitive.
            ("Patient.nothing", "Patient"),
            ("Patient._birthDate", "Patient"),
            ("Patient.birthDate.extension", "Patient"),
            ("Patient", "Patient"),
            // Anything but a path of names.
            ("Patient.name.given.first()", "Patient"),
            ("Patient.name.where(use = 'official').given", "Patient"),
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

//! The JSON property names an expression can read, so that a host holding a resource as an
//! object can hand over only those (its projection) instead of the whole resource.
//!
//! A projection keeps every object the expression reaches, with only the listed properties:
//! objects may come out empty, and elements the expression does not reach are not there to be
//! checked. Evaluation on a projection is told so ([`super::Options::projection`]) and fails
//! wherever the result would depend on what was left out (objects compared or returned whole),
//! so that the host evaluates on the whole resource instead.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use super::parser::Expr;
use crate::model::{self, flags, TypeKind};

/// Properties every projection keeps: the resource type, and what reading a FHIR Quantity as
/// a FHIRPath quantity uses (its value, code and unit).
const ALWAYS: [&str; 4] = ["resourceType", "value", "code", "unit"];

/// Properties `resolve()` reads to find a reference's target in the resource or its Bundle.
const RESOLVE: [&str; 6] = [
    "reference",
    "contained",
    "id",
    "entry",
    "fullUrl",
    "resource",
];

/// The property names evaluating `ast` can read, sorted; `None` when it may read anything
/// (`children()`, `descendants()`, `memberOf()`).
pub(crate) fn names(ast: &Expr) -> Option<Vec<String>> {
    let mut used = BTreeSet::new();
    walk(ast, &mut used)?;
    let mut res = BTreeSet::new();
    for name in ALWAYS {
        res.insert(String::from(name));
    }
    for name in used {
        add_name(&name, &mut res);
    }
    Some(res.into_iter().collect())
}

fn walk(expr: &Expr, used: &mut BTreeSet<String>) -> Option<()> {
    match expr {
        Expr::Ident(name, _) => {
            used.insert(String::from(&**name));
        }
        Expr::Member(target, name, _) => {
            used.insert(String::from(&**name));
            walk(target, used)?;
        }
        Expr::Call(target, name, args, _) => {
            match name.as_str() {
                "children" | "descendants" | "memberOf" => return None,
                "resolve" => used.extend(RESOLVE.iter().map(|name| String::from(*name))),
                "extension" => {
                    used.insert(String::from("extension"));
                    used.insert(String::from("url"));
                }
                _ => {}
            }
            if let Some(target) = target {
                walk(target, used)?;
            }
            for arg in args {
                walk(arg, used)?;
            }
        }
        Expr::Index(a, b, _) | Expr::Binary(_, a, b, _) => {
            walk(a, used)?;
            walk(b, used)?;
        }
        Expr::Negate(target, _, _) | Expr::TypeTest(target, _, _, _) => walk(target, used)?,
        Expr::Literal(..)
        | Expr::External(..)
        | Expr::This(_)
        | Expr::IndexVar(_)
        | Expr::Total(_) => {}
    }
    Some(())
}

/// Adds the JSON names of element `name`: itself and its primitive companion (`_name`), and
/// for a choice element (named as such, `value`, or by one of its types, `valueQuantity`), every
/// typed name (`valueQuantity`, `_valueString`), so that a second type given beside the first is
/// there to be refused.
fn add_name(name: &str, out: &mut BTreeSet<String>) {
    out.insert(String::from(name));
    out.insert(alloc::format!("_{name}"));
    let choice = |def: &model::TypeDef, json_name: &model::JsonName| {
        def.elements
            .get(usize::from(json_name.element))
            .filter(|element| element.has(flags::CHOICE))
    };
    let mut bases = BTreeSet::new();
    bases.insert(name);
    for def in &model::TYPES {
        for json_name in def.json_names {
            if let Some(element) = choice(def, json_name) {
                if json_name.name == name {
                    bases.insert(element.name);
                }
            }
        }
    }
    for def in &model::TYPES {
        for json_name in def.json_names {
            let Some(element) = choice(def, json_name) else {
                continue;
            };
            if !bases.contains(element.name) {
                continue;
            }
            out.insert(String::from(json_name.name));
            let is_primitive = element
                .types
                .get(usize::from(json_name.choice))
                .is_some_and(|ty| model::type_def(ty.type_id).kind == TypeKind::Primitive);
            if is_primitive {
                out.insert(alloc::format!("_{}", json_name.name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(text: &str) -> Option<Vec<String>> {
        names(&super::super::parser::parse(text).expect("parses"))
    }

    #[test]
    fn names_reached_with_companions_and_choice_types() {
        let names = names_of("Observation.value.ofType(Quantity).value").expect("some");
        for expected in [
            "Observation",
            "resourceType",
            "value",
            "_value",
            "valueQuantity",
            "valueString",
            "_valueString",
            "valueCodeableConcept",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n == "_valueQuantity"));
        assert!(!names.iter().any(|n| n == "subject"));

        // Named by one of its types, a choice element keeps its other types too.
        let names = names_of("Observation.valueQuantity.unit").expect("some");
        for expected in ["valueQuantity", "valueString", "_valueString", "value"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }

        let names = names_of("Patient.name.where(use = 'official').given").expect("some");
        for expected in ["name", "_name", "use", "_use", "given", "_given"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n == "family"));
    }

    #[test]
    fn functions_that_read_more() {
        let names = names_of("Observation.subject.resolve().name").expect("some");
        for expected in [
            "reference",
            "contained",
            "entry",
            "fullUrl",
            "resource",
            "id",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        let names = names_of("Patient.extension('http://x').value").expect("some");
        assert!(names.iter().any(|n| n == "url"));
        assert_eq!(names_of("descendants().count()"), None);
        assert_eq!(names_of("Patient.name.children()"), None);
        assert_eq!(names_of("Patient.maritalStatus.memberOf('http://x')"), None);
    }
}

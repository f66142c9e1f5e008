//! The compile-time check of an expression against the R4 model, for when the input type is
//! known: navigation to elements the types do not have, type names that match nothing, and
//! order-dependent functions on collections without an order are reported before evaluation.
//!
//! The check is conservative: where it cannot know the types (after `resolve()`, on any
//! resource, on system values) it assumes anything goes.

use alloc::format;
use alloc::vec::Vec;

use super::parser::{BinaryOp, Expr, TypeRef};
use super::ParseError;
use crate::model::{self, TypeId, TypeKind};

/// The possible FHIR types of a collection, and whether it has an order.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// `None`: unknown (anything, or system values).
    types: Option<Vec<TypeId>>,
    ordered: bool,
}

impl Shape {
    fn unknown() -> Self {
        Shape {
            types: None,
            ordered: true,
        }
    }

    fn of(types: Vec<TypeId>) -> Self {
        // Abstract resources (contained, Bundle.entry.resource) may be any resource.
        if types.iter().any(|id| {
            let def = model::type_def(*id);
            def.kind == TypeKind::Resource && def.is_abstract
        }) {
            return Shape::unknown();
        }
        Shape {
            types: Some(types),
            ordered: true,
        }
    }

    /// The shape of a resource of type `type_id`.
    pub(crate) fn resource(type_id: TypeId) -> Self {
        Shape::of(alloc::vec![type_id])
    }
}

fn semantic(message: alloc::string::String, offset: usize) -> ParseError {
    ParseError::new(message, offset)
}

fn child_types(types: &[TypeId], name: &str) -> Option<Vec<TypeId>> {
    let mut res = Vec::new();
    let mut found = false;
    for type_id in types {
        let def = model::type_def(*type_id);
        if let Some(element) = def.elements.iter().find(|element| element.name == name) {
            found = true;
            res.extend(
                element
                    .types
                    .iter()
                    .map(|element_type| element_type.type_id),
            );
        }
    }
    found.then_some(res)
}

fn navigate(input: &Shape, name: &str, offset: usize, at_root: bool) -> Result<Shape, ParseError> {
    let Some(types) = &input.types else {
        return Ok(Shape::unknown());
    };
    if types.is_empty() {
        return Ok(input.clone());
    }
    if at_root && name.starts_with(|c: char| c.is_ascii_uppercase()) {
        if types.iter().any(|id| model::derives_from(*id, name)) {
            return Ok(input.clone());
        }
        if model::type_by_name(name).is_some() {
            let found = model::type_def(types[0]).name;
            return Err(semantic(
                format!("expected the input to be {name}, but it is {found}"),
                offset,
            ));
        }
    }
    match child_types(types, name) {
        Some(children) => Ok(Shape {
            ordered: input.ordered,
            ..Shape::of(children)
        }),
        None => {
            let names: Vec<&str> = types.iter().map(|id| model::type_def(*id).name).collect();
            Err(semantic(
                format!("unknown element \"{name}\" of {}", names.join(" | ")),
                offset,
            ))
        }
    }
}

fn type_shape(type_name: TypeRef<'_>) -> Shape {
    match type_name.namespace {
        Some("System") => Shape::unknown(),
        _ => match type_name.type_id {
            Some(id) => Shape::of(alloc::vec![id]),
            None => Shape::unknown(),
        },
    }
}

const ORDER_DEPENDENT: &[&str] = &["first", "last", "tail", "skip", "take", "single"];
const SAME_TYPES: &[&str] = &[
    "where",
    "first",
    "last",
    "tail",
    "skip",
    "take",
    "single",
    "distinct",
    "trace",
    "intersect",
    "exclude",
    "sort",
    "defineVariable",
];
const ITERATING: &[&str] = &[
    "where",
    "select",
    "exists",
    "all",
    "repeat",
    "sort",
    "aggregate",
    "trace",
];

/// Checks `expr` on an input of shape `input` (`this` is the shape of `$this`, `root` of `%resource`).
pub(crate) fn check(
    expr: &Expr,
    input: &Shape,
    this: &Shape,
    root: &Shape,
) -> Result<Shape, ParseError> {
    match expr {
        Expr::Literal(..) | Expr::IndexVar(_) | Expr::Total(_) => Ok(Shape::unknown()),
        Expr::Ident(name, offset) => navigate(input, name, *offset, true),
        Expr::Member(target, name, offset) => {
            let target = check(target, input, this, root)?;
            navigate(&target, name, *offset, false)
        }
        Expr::Index(target, index, offset) => {
            let target = check(target, input, this, root)?;
            check(index, input, this, root)?;
            if !target.ordered {
                return Err(semantic(
                    "expected an ordered collection for [], found one without an order".into(),
                    *offset,
                ));
            }
            Ok(target)
        }
        Expr::Negate(operand, _, _) => {
            check(operand, input, this, root)?;
            Ok(Shape::unknown())
        }
        Expr::Binary(op, left, right, _) => {
            let left = check(left, input, this, root)?;
            let right = check(right, input, this, root)?;
            if *op == BinaryOp::Union {
                if let (Some(a), Some(b)) = (left.types, right.types) {
                    return Ok(Shape::of(a.into_iter().chain(b).collect()));
                }
            }
            Ok(Shape::unknown())
        }
        Expr::TypeTest(target, is, type_name, _) => {
            check(target, input, this, root)?;
            Ok(if *is {
                Shape::unknown()
            } else {
                type_shape(type_name.as_ref())
            })
        }
        Expr::External(name, _) => Ok(
            if name == "resource" || name == "rootResource" || name == "context" {
                root.clone()
            } else {
                Shape::unknown()
            },
        ),
        Expr::This(_) => Ok(this.clone()),
        Expr::Call(target, name, args, offset) => {
            let focus = match target {
                Some(target) => check(target, input, this, root)?,
                None => input.clone(),
            };
            if ORDER_DEPENDENT.contains(&name.as_str()) && !focus.ordered {
                return Err(semantic(
                    format!(
                        "expected an ordered collection for {name}(), found one without an order"
                    ),
                    *offset,
                ));
            }
            let item = Shape {
                ordered: true,
                ..focus.clone()
            };
            let mut arg_shapes = Vec::new();
            for arg in args {
                let shape = if name == "repeat" {
                    // Later rounds of repeat() see the argument's own results: any type.
                    let any = Shape::unknown();
                    check(arg, &any, &any, root)?
                } else if ITERATING.contains(&name.as_str())
                    || (target.is_some() && matches!(name.as_str(), "iif" | "defineVariable"))
                {
                    check(arg, &item, &item, root)?
                } else if matches!(name.as_str(), "ofType" | "as" | "is") {
                    Shape::unknown()
                } else {
                    check(arg, input, this, root)?
                };
                arg_shapes.push(shape);
            }
            Ok(match name.as_str() {
                "children" | "descendants" => Shape {
                    types: None,
                    ordered: false,
                },
                "select" => arg_shapes.into_iter().next().unwrap_or_else(Shape::unknown),
                "ofType" | "as" => match args.first() {
                    Some(Expr::Ident(type_name, _)) => type_shape(TypeRef {
                        namespace: None,
                        name: type_name,
                        type_id: type_name.type_id,
                    }),
                    Some(Expr::Member(namespace, type_name, _)) => match namespace.as_ref() {
                        Expr::Ident(namespace, _) => type_shape(TypeRef {
                            namespace: Some(namespace),
                            name: type_name,
                            type_id: type_name.type_id,
                        }),
                        _ => Shape::unknown(),
                    },
                    _ => Shape::unknown(),
                },
                "extension" => match model::type_by_name("Extension") {
                    Some(id) => Shape::of(alloc::vec![id]),
                    None => Shape::unknown(),
                },
                other if SAME_TYPES.contains(&other) => focus,
                _ => Shape::unknown(),
            })
        }
    }
}

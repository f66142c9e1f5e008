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

use super::parser::{BinaryOp, Expr};
use crate::model::{self, flags, TypeId, TypeKind};

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

/// The JSON properties an expression can read on a resource of type `resource_type`, as a
/// tree: `resourceType,name(use,_use,given,_given)`. Each name is followed by what may be read
/// inside its value (in parentheses) when that is an object or an array of objects, then by
/// `*` where its objects may be results, to be kept whole: always, or (`*[Observation|Patient]`)
/// when they are resources of those types. A host
/// keeps, in every object it reaches, only the properties its node of the tree lists: far
/// fewer than [`names`] keeps, since the model tells what each step can be.
///
/// `None` when the tree cannot be known (an unknown or abstract type, functions that may read
/// anything or whose reach is not followed here); then [`names`] still applies.
pub(crate) fn shape(ast: &Expr, resource_type: &str) -> Option<String> {
    let tree = tree(ast, resource_type)?;
    let mut out = String::new();
    tree.encode(0, &mut out);
    Some(out)
}

/// The tree [`shape`] writes, node 0 the resource; `None` where it gives none.
pub(crate) fn tree(ast: &Expr, resource_type: &str) -> Option<Tree> {
    let type_id = model::type_by_name(resource_type)?;
    if !model::type_def(type_id).is_concrete_resource() {
        return None;
    }
    let mut tree = Tree {
        nodes: alloc::vec![Node::default()],
    };
    let root = alloc::vec![At {
        node: 0,
        types: Some(alloc::vec![type_id]),
    }];
    tree.decorate(&root[0])?;
    let mut walker = Walker { tree, root };
    let focus = walker.root.clone();
    for at in walker.walk(ast, &focus)? {
        walker.tree.mark_whole(&at);
    }
    Some(walker.tree)
}

/// The tree of properties: node 0 is the resource.
pub(crate) struct Tree {
    nodes: Vec<Node>,
}

#[derive(Default)]
struct Node {
    /// Property names, each with its node, in the order first reached.
    children: Vec<(String, usize)>,
    /// Objects here may be results: kept whole (every property, at every depth), always or
    /// when they are resources of the listed types.
    whole: Option<Whole>,
}

pub(crate) enum Whole {
    Always,
    Resources(Vec<&'static str>),
}

/// A place an expression's items may come from: a node of the tree, and the FHIR types the
/// items there may have (`None`: any).
#[derive(Clone)]
struct At {
    node: usize,
    types: Option<Vec<TypeId>>,
}

impl Tree {
    /// The properties read in the objects of `node`, each with its node.
    pub(crate) fn children(&self, node: usize) -> &[(String, usize)] {
        self.nodes
            .get(node)
            .map_or(&[], |node| node.children.as_slice())
    }

    /// Whether the objects of `node` may be results, kept whole (see [`Whole`]).
    pub(crate) fn whole(&self, node: usize) -> Option<&Whole> {
        self.nodes.get(node)?.whole.as_ref()
    }

    /// The node of property `name` under `parent`, made when new. `None` for a name the
    /// encoding cannot carry (only letters, digits and `_` are FHIR JSON names).
    fn child(&mut self, parent: usize, name: &str) -> Option<usize> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        let existing = self
            .nodes
            .get(parent)?
            .children
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, node)| *node);
        if let Some(node) = existing {
            return Some(node);
        }
        let node = self.nodes.len();
        if node >= MAX_NODES {
            return None;
        }
        self.nodes.push(Node::default());
        self.nodes
            .get_mut(parent)?
            .children
            .push((String::from(name), node));
        Some(node)
    }

    /// Adds what evaluation reads of an item at `at` without naming it: the type of a
    /// resource, and a Quantity's value, code and unit (when it becomes a FHIRPath quantity).
    fn decorate(&mut self, at: &At) -> Option<()> {
        let (resource, quantity) = match &at.types {
            None => (true, true),
            Some(types) => (
                types
                    .iter()
                    .any(|id| model::type_def(*id).kind == TypeKind::Resource),
                types.iter().any(|id| model::derives_from(*id, "Quantity")),
            ),
        };
        if resource {
            self.child(at.node, "resourceType")?;
        }
        if quantity {
            for name in ["value", "_value", "code", "_code", "unit", "_unit"] {
                self.child(at.node, name)?;
            }
        }
        Some(())
    }

    /// Marks the objects at `at` as possible results, to be kept whole.
    fn mark_whole(&mut self, at: &At) {
        let whole = match &at.types {
            None => Whole::Always,
            Some(types) => {
                let objects: Vec<&'static model::TypeDef> = types
                    .iter()
                    .map(|id| model::type_def(*id))
                    .filter(|def| def.kind != TypeKind::Primitive)
                    .collect();
                if objects.is_empty() {
                    return;
                }
                if objects.len() <= WHOLE_TYPES
                    && objects.iter().all(|def| def.kind == TypeKind::Resource)
                {
                    Whole::Resources(objects.iter().map(|def| def.name).collect())
                } else {
                    Whole::Always
                }
            }
        };
        let Some(node) = self.nodes.get_mut(at.node) else {
            return;
        };
        node.whole = match (node.whole.take(), whole) {
            (Some(Whole::Resources(mut known)), Whole::Resources(more)) => {
                for name in more {
                    if !known.contains(&name) {
                        known.push(name);
                    }
                }
                Some(Whole::Resources(known))
            }
            (_, Whole::Always) | (Some(Whole::Always), _) => Some(Whole::Always),
            (None, whole) => Some(whole),
        };
    }

    fn encode(&self, node: usize, out: &mut String) {
        let Some(node) = self.nodes.get(node) else {
            return;
        };
        for (idx, (name, child)) in node.children.iter().enumerate() {
            if idx > 0 {
                out.push(',');
            }
            out.push_str(name);
            let Some(inner) = self.nodes.get(*child) else {
                continue;
            };
            if !inner.children.is_empty() {
                out.push('(');
                self.encode(*child, out);
                out.push(')');
            }
            match &inner.whole {
                None => {}
                Some(Whole::Always) => out.push('*'),
                Some(Whole::Resources(names)) => {
                    out.push_str("*[");
                    for (idx, name) in names.iter().enumerate() {
                        if idx > 0 {
                            out.push('|');
                        }
                        out.push_str(name);
                    }
                    out.push(']');
                }
            }
        }
    }
}

/// The types of an element's values: an abstract resource type (`Resource` in `contained` or
/// `Bundle.entry.resource`) stands for every concrete one; `None` (any) for another abstract type.
fn value_types(ids: impl Iterator<Item = TypeId>) -> Option<Vec<TypeId>> {
    let mut res = Vec::new();
    for id in ids {
        let def = model::type_def(id);
        if def.is_abstract && def.kind == TypeKind::Resource {
            res.extend(
                (0..model::TYPES.len())
                    .filter_map(|idx| u16::try_from(idx).ok().map(TypeId))
                    .filter(|id| model::type_def(*id).is_concrete_resource()),
            );
        } else if def.is_abstract {
            return None;
        } else {
            res.push(id);
        }
    }
    res.sort_unstable_by_key(|id| id.0);
    res.dedup();
    Some(res)
}

/// Past this many resource types, results kept whole are kept whole whatever their type.
const WHOLE_TYPES: usize = 16;

/// Functions whose results are new values (not items of the resource), with arguments that
/// are plain values.
const VALUE_FUNCTIONS: &[&str] = &[
    "empty",
    "count",
    "not",
    "hasValue",
    "getValue",
    "type",
    "isDistinct",
    "allTrue",
    "anyTrue",
    "allFalse",
    "anyFalse",
    "subsetOf",
    "supersetOf",
    "now",
    "today",
    "timeOfDay",
    "indexOf",
    "substring",
    "startsWith",
    "endsWith",
    "contains",
    "upper",
    "lower",
    "trim",
    "replace",
    "length",
    "toChars",
    "split",
    "matches",
    "matchesFull",
    "replaceMatches",
    "encode",
    "decode",
    "escape",
    "unescape",
    "comparable",
    "sum",
    "min",
    "max",
    "avg",
    "join",
    "abs",
    "ceiling",
    "floor",
    "truncate",
    "round",
    "sqrt",
    "exp",
    "ln",
    "log",
    "power",
    "lowBoundary",
    "highBoundary",
    "precision",
    "toString",
    "toInteger",
    "toLong",
    "toDecimal",
    "toBoolean",
    "toDate",
    "toDateTime",
    "toTime",
    "toQuantity",
    "convertsTo",
    "convertsToString",
    "convertsToInteger",
    "convertsToLong",
    "convertsToDecimal",
    "convertsToBoolean",
    "convertsToDate",
    "convertsToDateTime",
    "convertsToTime",
    "convertsToQuantity",
];

/// Functions whose results are some of their input items, with plain-value arguments.
const FILTER_FUNCTIONS: &[&str] = &[
    "first",
    "last",
    "tail",
    "single",
    "distinct",
    "skip",
    "take",
    "intersect",
    "exclude",
];

struct Walker {
    tree: Tree,
    /// Where `%resource`, `%context` and `%rootResource` are.
    root: Vec<At>,
}

impl Walker {
    /// Where the items of `expr` evaluated on `focus` may come from (nothing for new values),
    /// adding to the tree every property evaluation may read on the way.
    fn walk(&mut self, expr: &Expr, focus: &[At]) -> Option<Vec<At>> {
        match expr {
            Expr::Ident(name, _) => {
                // A type name at the start of a path lets items of that type through; the
                // others look for an element of that name.
                let Some(type_id) = name
                    .type_id
                    .filter(|_| name.starts_with(|c: char| c.is_ascii_uppercase()))
                else {
                    return self.member(focus, name);
                };
                let all_pass = focus.iter().all(|at| {
                    at.types
                        .as_ref()
                        .is_some_and(|types| types.iter().all(|id| model::is_of_type(*id, type_id)))
                });
                let mut res = narrow(focus, type_id);
                if !all_pass {
                    res.extend(self.member(focus, name)?);
                }
                Some(merge(res))
            }
            Expr::Member(target, name, _) => {
                let items = self.walk(target, focus)?;
                self.member(&items, name)
            }
            Expr::Call(target, name, args, _) => {
                let items = match target {
                    Some(target) => self.walk(target, focus)?,
                    None => focus.to_vec(),
                };
                self.call(name, &items, args, focus)
            }
            Expr::Index(target, index, _) => {
                let items = self.walk(target, focus)?;
                self.walk(index, focus)?;
                Some(items)
            }
            Expr::Negate(target, negate, _) => {
                let items = self.walk(target, focus)?;
                // Unary `+` gives its operand's items as they are.
                Some(if *negate { Vec::new() } else { items })
            }
            Expr::Binary(op, left, right, _) => {
                let mut left = self.walk(left, focus)?;
                let right = self.walk(right, focus)?;
                if *op == BinaryOp::Union {
                    left.extend(right);
                    Some(merge(left))
                } else {
                    Some(Vec::new())
                }
            }
            Expr::TypeTest(target, is, type_name, _) => {
                let items = self.walk(target, focus)?;
                if *is {
                    return Some(Vec::new());
                }
                Some(
                    match type_name.type_id.filter(|_| type_name.namespace.is_none()) {
                        Some(type_id) => narrow(&items, type_id),
                        None => items,
                    },
                )
            }
            Expr::External(name, _) => match name.as_str() {
                "resource" | "context" | "rootResource" => Some(self.root.clone()),
                _ => Some(Vec::new()),
            },
            Expr::This(_) => Some(focus.to_vec()),
            Expr::Literal(..) | Expr::IndexVar(_) => Some(Vec::new()),
            // `aggregate()`: not followed.
            Expr::Total(_) => None,
        }
    }

    fn call(&mut self, name: &str, items: &[At], args: &[Expr], focus: &[At]) -> Option<Vec<At>> {
        // Plain-value arguments are evaluated on the call's own focus; take both to be safe.
        let mut outer = focus.to_vec();
        outer.extend(items.iter().cloned());
        let outer = merge(outer);
        match name {
            "where" | "sort" => {
                for arg in args {
                    self.walk(arg, items)?;
                }
                Some(items.to_vec())
            }
            "exists" | "all" => {
                for arg in args {
                    self.walk(arg, items)?;
                }
                Some(Vec::new())
            }
            "select" => {
                let mut res = Vec::new();
                for arg in args {
                    res.extend(self.walk(arg, items)?);
                }
                Some(merge(res))
            }
            "ofType" | "as" | "is" => {
                let [arg] = args else {
                    return None;
                };
                if name == "is" {
                    return Some(Vec::new());
                }
                let type_id = match arg {
                    Expr::Ident(type_name, _) => type_name.type_id,
                    Expr::Member(namespace, type_name, _) if matches!(namespace.as_ref(), Expr::Ident(ns, _) if &**ns == "FHIR") => {
                        type_name.type_id
                    }
                    _ => None,
                };
                Some(match type_id {
                    Some(type_id) => narrow(items, type_id),
                    None => items.to_vec(),
                })
            }
            "extension" => {
                for arg in args {
                    self.walk(arg, &outer)?;
                }
                let extensions = self.member(items, "extension")?;
                self.member(&extensions, "url")?;
                Some(extensions)
            }
            "union" | "combine" | "iif" => {
                let mut res = if name == "iif" {
                    Vec::new()
                } else {
                    items.to_vec()
                };
                for (idx, arg) in args.iter().enumerate() {
                    let reached = self.walk(arg, &outer)?;
                    if name != "iif" || idx > 0 {
                        res.extend(reached);
                    }
                }
                Some(merge(res))
            }
            _ if FILTER_FUNCTIONS.contains(&name) || VALUE_FUNCTIONS.contains(&name) => {
                for arg in args {
                    self.walk(arg, &outer)?;
                }
                Some(if FILTER_FUNCTIONS.contains(&name) {
                    items.to_vec()
                } else {
                    Vec::new()
                })
            }
            // `children()`, `descendants()`, `resolve()`, `repeat()`, `memberOf()`, ...:
            // their reach is not followed.
            _ => None,
        }
    }

    /// The items named `name` under the items at `focus`, with the properties holding them
    /// added to the tree: for a choice element, every typed name (a second type beside the
    /// first is there to be refused); for a primitive, its `_name` companion too.
    fn member(&mut self, focus: &[At], name: &str) -> Option<Vec<At>> {
        let mut res = Vec::new();
        for at in focus {
            let Some(types) = &at.types else {
                let mut names = BTreeSet::new();
                add_name(name, &mut names);
                for json_name in &names {
                    let node = self.tree.child(at.node, json_name)?;
                    res.push(At { node, types: None });
                }
                continue;
            };
            // A name no type here has is kept too: present in the data, it breaks the rules.
            let mut named = false;
            for type_id in types {
                let def = model::type_def(*type_id);
                // As evaluation finds it: by JSON name (`valueQuantity`), or by element name
                // (`value`, a choice element's base name).
                let Some(index) = def.json_name(name).map(|found| found.element).or_else(|| {
                    def.elements
                        .iter()
                        .position(|element| element.name == name)
                        .and_then(|idx| u16::try_from(idx).ok())
                }) else {
                    continue;
                };
                let Some(element) = def.elements.get(usize::from(index)) else {
                    continue;
                };
                named = true;
                let mut places: Vec<(&str, Option<Vec<TypeId>>, bool)> = Vec::new();
                if element.has(flags::CHOICE) {
                    for json_name in def.json_names.iter().filter(|json_name| {
                        json_name.element == index && !json_name.name.starts_with('_')
                    }) {
                        let Some(choice) = element.types.get(usize::from(json_name.choice)) else {
                            continue;
                        };
                        let primitive = model::type_def(choice.type_id).kind == TypeKind::Primitive;
                        places.push((
                            json_name.name,
                            value_types(core::iter::once(choice.type_id)),
                            primitive,
                        ));
                    }
                } else {
                    let primitive = element
                        .types
                        .iter()
                        .any(|ty| model::type_def(ty.type_id).kind == TypeKind::Primitive);
                    places.push((
                        element.name,
                        value_types(element.types.iter().map(|ty| ty.type_id)),
                        primitive,
                    ));
                }
                for (json_name, types, primitive) in places {
                    let node = self.tree.child(at.node, json_name)?;
                    res.push(At {
                        node,
                        types: types.clone(),
                    });
                    if primitive {
                        let node = self.tree.child(at.node, &alloc::format!("_{json_name}"))?;
                        res.push(At { node, types });
                    }
                }
            }
            if !named && !types.is_empty() {
                self.tree.child(at.node, name)?;
                self.tree.child(at.node, &alloc::format!("_{name}"))?;
            }
        }
        let res = merge(res);
        for at in &res {
            self.tree.decorate(at)?;
        }
        Some(res)
    }
}

/// One place per node, with the types of all the places there: so that the places of a path
/// grow with its nodes, not with the ways of reaching them.
fn merge(places: Vec<At>) -> Vec<At> {
    let mut res: Vec<At> = Vec::with_capacity(places.len());
    let mut by_node = alloc::collections::BTreeMap::new();
    for at in places {
        let Some(known) = by_node.get(&at.node).and_then(|idx| res.get_mut(*idx)) else {
            by_node.insert(at.node, res.len());
            res.push(at);
            continue;
        };
        known.types = match (known.types.take(), at.types) {
            (Some(mut types), Some(more)) => {
                for id in more {
                    if !types.contains(&id) {
                        types.push(id);
                    }
                }
                Some(types)
            }
            _ => None,
        };
    }
    res
}

/// A tree larger than this is not worth its walk in JS: the names are used instead.
const MAX_NODES: usize = 4096;

/// The items at `focus` that may be of type `type_id`.
fn narrow(focus: &[At], type_id: TypeId) -> Vec<At> {
    focus
        .iter()
        .filter_map(|at| match &at.types {
            // Any item: those of the type or one derived from it, unless that is abstract.
            None if model::type_def(type_id).is_abstract => Some(at.clone()),
            None => Some(At {
                node: at.node,
                types: Some(
                    (0..model::TYPES.len())
                        .filter_map(|idx| u16::try_from(idx).ok().map(TypeId))
                        .filter(|id| model::is_of_type(*id, type_id))
                        .collect(),
                ),
            }),
            Some(types) => {
                let kept: Vec<TypeId> = types
                    .iter()
                    .copied()
                    .filter(|id| model::is_of_type(*id, type_id))
                    .collect();
                (!kept.is_empty()).then_some(At {
                    node: at.node,
                    types: Some(kept),
                })
            }
        })
        .collect()
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

    fn shape_of(text: &str, resource_type: &str) -> Option<String> {
        shape(
            &super::super::parser::parse(text).expect("parses"),
            resource_type,
        )
    }

    #[test]
    fn shapes_follow_the_model() {
        let cases = [
            (
                "Patient.birthDate",
                "Patient",
                "resourceType,birthDate,_birthDate",
            ),
            (
                "Patient.name.where(use = 'official').given.first()",
                "Patient",
                "resourceType,name(use,_use,given,_given)",
            ),
            (
                "Patient.identifier.where(type.coding.code = 'MR').value",
                "Patient",
                "resourceType,identifier(type(coding(code,_code)),value,_value)",
            ),
            // Every type of a choice element; a Quantity's value, code and unit.
            (
                "Observation.value.ofType(Quantity).value",
                "Observation",
                "resourceType,valueBoolean,_valueBoolean,valueCodeableConcept,valueDateTime,\
                 _valueDateTime,valueInteger,_valueInteger,valuePeriod,\
                 valueQuantity(value,_value,code,_code,unit,_unit),valueRange,valueRatio,\
                 valueSampledData,valueString,_valueString,valueTime,_valueTime",
            ),
            (
                "Encounter.length > 5 'min'",
                "Encounter",
                "resourceType,length(value,_value,code,_code,unit,_unit)",
            ),
            // A primitive's extensions are in its companion.
            (
                "Patient.birthDate.extension('http://x').value.ofType(string)",
                "Patient",
                "resourceType,birthDate(extension(url,_url,valueAddress,valueAge(value,",
            ),
            // Another resource type reads its type, and the names it does not have.
            (
                "Patient.birthDate",
                "Observation",
                "resourceType,Patient,_Patient",
            ),
            (
                "(+Patient.name).family",
                "Patient",
                "resourceType,name(family,_family)",
            ),
            // A contained resource may be anything: what the names reach, untyped.
            (
                "contained.ofType(Patient).gender",
                "Observation",
                "resourceType,contained(resourceType,gender,_gender)",
            ),
            ("%resource.id | id", "Patient", "resourceType,id,_id"),
            // Objects among the results are kept whole; resources, when of the types named.
            ("Patient.name.first()", "Patient", "resourceType,name*"),
            (
                "Bundle.entry.resource.ofType(Observation)",
                "Bundle",
                "resourceType,entry(resource(resourceType)*[Observation])",
            ),
            (
                "Bundle.entry.resource.ofType(Observation) | Bundle.entry.resource.ofType(Patient)",
                "Bundle",
                "resourceType,entry(resource(resourceType)*[Observation|Patient])",
            ),
            // A name the type does not have: kept, to be refused when there.
            (
                "Patient.favouriteColour.exists()",
                "Patient",
                "resourceType,favouriteColour,_favouriteColour",
            ),
        ];
        for (text, resource_type, want) in cases {
            let got = shape_of(text, resource_type).expect("a shape");
            assert!(got.starts_with(want), "{text} on {resource_type}: {got}");
        }
        // A primitive's extensions are in JSON under its companion, which has the same tree.
        let got = shape_of(
            "Patient.birthDate.extension('http://x').value.ofType(string)",
            "Patient",
        )
        .expect("a shape");
        assert!(got.contains(",_birthDate(extension(url,_url,"), "{got}");
        assert_eq!(
            shape_of("Patient.birthDate", "Observation").as_deref(),
            Some("resourceType,Patient,_Patient")
        );
        // Many ways to the same nodes keep one place each; a tree too large is not made (the
        // names are used), however the expression multiplies the ways.
        let deep = alloc::format!("contained{}", ".extension.value".repeat(40));
        assert_eq!(shape_of(&deep, "Patient"), None);
        let wide = alloc::format!("contained{}", ".value".repeat(200));
        assert!(shape_of(&wide, "Patient").is_none_or(|got| got.len() < 400_000));
        let unions = alloc::format!("name{}", " | name".repeat(300));
        assert_eq!(
            shape_of(&unions, "Patient").as_deref(),
            Some("resourceType,name*")
        );
        for (text, resource_type) in [
            ("Patient.name.children()", "Patient"),
            ("Observation.subject.resolve().name", "Observation"),
            ("descendants().count()", "Patient"),
            ("Patient.name.repeat(given)", "Patient"),
            ("name.family", "Resource"),
            ("name.family", "NoSuchType"),
            ("name.aggregate($total + 1, 0)", "Patient"),
        ] {
            assert_eq!(
                shape_of(text, resource_type),
                None,
                "{text} on {resource_type}"
            );
        }
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

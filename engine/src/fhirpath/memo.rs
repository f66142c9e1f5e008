//! Sub-expressions worth evaluating once: inside the criteria of `where()`, `select()`,
//! `exists()`, `all()` and the like, a part that does not depend on the item being looked at
//! (`%resource.descendants().reference` in R4's dom-3) gives the same result for every item.
//! Such parts are found when compiling; evaluation keeps their result for the rest of the
//! evaluation.

use alloc::vec::Vec;

use super::parser::Expr;

/// Functions whose arguments are evaluated once per item of their input.
const PER_ITEM: &[&str] = &[
    "where",
    "select",
    "exists",
    "all",
    "repeat",
    "sort",
    "aggregate",
];

/// Functions whose arguments are evaluated on the items of their input, so that an argument
/// that is independent of the outer focus makes the call independent too.
const ITEM_ARGS: &[&str] = &["where", "select", "exists", "all"];

/// Variables that are the same everywhere in one evaluation.
fn is_fixed_variable(name: &str) -> bool {
    matches!(
        name,
        "resource" | "rootResource" | "context" | "ucum" | "sct" | "loinc"
    ) || name.starts_with("vs-")
        || name.starts_with("ext-")
}

/// True when `expr` gives the same result wherever it is evaluated within one evaluation:
/// it starts from literals or fixed variables, never from the focus.
fn is_independent(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(..) => true,
        Expr::External(name, _) => is_fixed_variable(name),
        Expr::Ident(..) | Expr::This(_) | Expr::IndexVar(_) | Expr::Total(_) => false,
        Expr::Member(target, _, _) | Expr::Negate(target, _, _) => is_independent(target),
        Expr::TypeTest(target, _, _, _) => is_independent(target),
        Expr::Index(a, b, _) | Expr::Binary(_, a, b, _) => is_independent(a) && is_independent(b),
        Expr::Call(None, _, _, _) => false,
        Expr::Call(Some(target), name, args, _) => {
            name.as_str() != "defineVariable"
                && is_independent(target)
                && (ITEM_ARGS.contains(&name.as_str()) || args.iter().all(is_independent))
        }
    }
}

/// The nodes to evaluate once, as (address, class): the independent parts of per-item
/// arguments that do some work (not a bare literal or variable). Nodes written the same way
/// share a class, so that `%resource.descendants()` written four times is evaluated once.
pub(crate) fn memo_nodes(expr: &Expr) -> Vec<(usize, usize)> {
    // A variable defined in the expression makes any part that reads variables depend on
    // where it is evaluated: keep nothing then.
    if defines_variables(expr) {
        return Vec::new();
    }
    let mut nodes = Vec::new();
    walk(expr, false, &mut nodes);
    let mut res: Vec<(usize, usize)> = Vec::with_capacity(nodes.len());
    for (idx, node) in nodes.iter().enumerate() {
        let class = nodes
            .iter()
            .take(idx)
            .position(|earlier| same_shape(earlier, node))
            .unwrap_or(idx);
        res.push((core::ptr::from_ref(*node) as usize, class));
    }
    res
}

/// True when `expr` calls `defineVariable()` anywhere.
fn defines_variables(expr: &Expr) -> bool {
    match expr {
        Expr::Call(target, name, args, _) => {
            name.as_str() == "defineVariable"
                || target.as_deref().is_some_and(defines_variables)
                || args.iter().any(defines_variables)
        }
        Expr::Member(target, _, _) | Expr::Negate(target, _, _) => defines_variables(target),
        Expr::TypeTest(target, _, _, _) => defines_variables(target),
        Expr::Index(a, b, _) | Expr::Binary(_, a, b, _) => {
            defines_variables(a) || defines_variables(b)
        }
        _ => false,
    }
}

/// True when both are written the same way (offsets aside).
fn same_shape(a: &Expr, b: &Expr) -> bool {
    match (a, b) {
        (Expr::Literal(x, _), Expr::Literal(y, _)) => x == y,
        (Expr::Ident(x, _), Expr::Ident(y, _)) => x == y,
        (Expr::External(x, _), Expr::External(y, _)) => x == y,
        (Expr::Member(x, n, _), Expr::Member(y, m, _)) => n == m && same_shape(x, y),
        (Expr::Call(x, n, xs, _), Expr::Call(y, m, ys, _)) => {
            n == m
                && xs.len() == ys.len()
                && xs.iter().zip(ys).all(|(x, y)| same_shape(x, y))
                && match (x, y) {
                    (Some(x), Some(y)) => same_shape(x, y),
                    (None, None) => true,
                    _ => false,
                }
        }
        (Expr::Index(x, i, _), Expr::Index(y, j, _)) => same_shape(x, y) && same_shape(i, j),
        (Expr::Negate(x, p, _), Expr::Negate(y, q, _)) => p == q && same_shape(x, y),
        (Expr::Binary(o, x, i, _), Expr::Binary(p, y, j, _)) => {
            o == p && same_shape(x, y) && same_shape(i, j)
        }
        (Expr::TypeTest(x, p, t, _), Expr::TypeTest(y, q, u, _)) => {
            p == q && t == u && same_shape(x, y)
        }
        (Expr::This(_), Expr::This(_))
        | (Expr::IndexVar(_), Expr::IndexVar(_))
        | (Expr::Total(_), Expr::Total(_)) => true,
        _ => false,
    }
}

fn walk<'x>(expr: &'x Expr, per_item: bool, out: &mut Vec<&'x Expr>) {
    if per_item && !matches!(expr, Expr::Literal(..) | Expr::External(..)) && is_independent(expr) {
        out.push(expr);
    }
    match expr {
        Expr::Member(target, _, _) | Expr::Negate(target, _, _) => walk(target, per_item, out),
        Expr::TypeTest(target, _, _, _) => walk(target, per_item, out),
        Expr::Index(a, b, _) | Expr::Binary(_, a, b, _) => {
            walk(a, per_item, out);
            walk(b, per_item, out);
        }
        Expr::Call(target, name, args, _) => {
            if let Some(target) = target {
                walk(target, per_item, out);
            }
            let args_per_item = per_item || PER_ITEM.contains(&name.as_str());
            for arg in args {
                walk(arg, args_per_item, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::fhirpath::{compile, to_json, Options};

    #[test]
    fn independent_parts_of_criteria_are_kept_once_and_shared() {
        let text = "name.where(%resource.name.given.count() > 2 and given.exists() \
                    and %resource.name.given.count() < 9)";
        let expression = compile(text).unwrap_or_else(|err| panic!("{err}"));
        // `%resource.name.given.count()` twice, one class; and its parts.
        let classes: alloc::vec::Vec<usize> = expression
            .memo_nodes
            .iter()
            .map(|(_, class)| *class)
            .collect();
        assert!(classes.len() >= 2, "{classes:?}");
        let mut sorted = classes.clone();
        sorted.sort_unstable();
        assert!(
            sorted.windows(2).any(|pair| pair[0] == pair[1]),
            "{classes:?}"
        );
        let patient = crate::json::fhir::parse_resource(
            br#"{"resourceType":"Patient","name":[{"given":["A","B"]},{"family":"C"},{"given":["D"]}]}"#,
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let got = expression
            .evaluate(&patient, &Options::default())
            .map(|result| to_json(&result));
        assert_eq!(
            got.ok().as_deref(),
            Some(r#"[{"given":["A","B"]},{"given":["D"]}]"#)
        );
        // Criteria that depend on the item keep nothing.
        let relative = compile("name.where(given.count() > 1 and $this.family.exists().not())")
            .unwrap_or_else(|err| panic!("{err}"));
        assert!(relative.memo_nodes.is_empty());
    }

    #[test]
    fn variables_defined_in_the_expression_keep_nothing() {
        let patient = crate::json::fhir::parse_resource(
            br#"{"resourceType":"Patient","name":[{"family":"A"},{"family":"B"},{"family":"B"}]}"#,
        )
        .unwrap_or_else(|err| panic!("{err}"));
        for (text, expected) in [
            (
                "Patient.name.select(defineVariable('fam', family).select(%resource.name.where(family = %fam).count()))",
                "[1,2,2]",
            ),
            (
                "Patient.name.select(defineVariable('vs-f', family).select(%`vs-f` = 'B'))",
                "[false,true,true]",
            ),
        ] {
            let expression = compile(text).unwrap_or_else(|err| panic!("{err}"));
            assert!(expression.memo_nodes.is_empty(), "{text}");
            let got = expression
                .evaluate(&patient, &Options::default())
                .map(|result| to_json(&result));
            assert_eq!(got.ok().as_deref(), Some(expected), "{text}");
        }
        // A clone's kept nodes are its own.
        let original =
            compile("name.where(%resource.name.count() > 1)").unwrap_or_else(|err| panic!("{err}"));
        let copy = original.clone();
        assert_eq!(copy.memo_nodes.len(), original.memo_nodes.len());
        assert!(copy
            .memo_nodes
            .iter()
            .all(|node| !original.memo_nodes.contains(node)));
    }
}

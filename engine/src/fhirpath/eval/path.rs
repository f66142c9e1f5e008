//! Plain paths (`Observation.subject.reference`, `Observation.value.ofType(Quantity).value`,
//! `Bundle.entry.resource.ofType(Patient)`, `DiagnosticReport.result.count()`), the most
//! common expressions, walked from one item without the evaluator's frames, environment or
//! sinks of sinks, each result handed out as it is found. The results, their order, and the
//! failure when a walk takes too many steps are those of the evaluator streaming them
//! (`count()` included, which it evaluates as a collection).

use super::{is_exact_type, named_children_each, too_many_steps, type_argument, MAX_STEPS};
use crate::fhirpath::parser::{Expr, Name, TypeRef};
use crate::fhirpath::value::Item;
use crate::fhirpath::EvalError;

/// The most steps of a path walked so (longer ones are left to the evaluator).
const MAX_PATH_STEPS: usize = 16;

#[derive(Clone, Copy)]
enum Step<'x> {
    /// The path's first name: the input itself when it names the input's type (`Patient` on
    /// a Patient), else its members so named; with the offset of its node in the expression.
    Start(&'x Name, usize),
    /// `.name`.
    Member(&'x Name, usize),
    /// `.ofType(type)`.
    OfType(TypeRef<'x>, usize),
    Unused,
}

/// What a plain path ends with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its items.
    Items,
    /// `count()`: how many items.
    Count,
    /// `exists()`: whether there is one.
    Exists,
    /// `empty()`: whether there is none.
    Empty,
}

/// A plain path: a name followed by names and `ofType()` calls, and perhaps `count()`,
/// `exists()` or `empty()` at the end.
struct Path<'x> {
    /// The steps are `steps[at..]`, each with the offset of its node in the expression.
    steps: [Step<'x>; MAX_PATH_STEPS],
    at: usize,
    end: End,
    /// The offset of the ending call.
    end_offset: usize,
}

impl<'x> Path<'x> {
    fn of(expr: &'x Expr) -> Option<Path<'x>> {
        let (end, end_offset, mut node) = match expr {
            Expr::Member(..) | Expr::Ident(..) => (End::Items, 0, expr),
            Expr::Call(Some(target), function, args, offset) if args.is_empty() => {
                let end = match function.as_str() {
                    "count" => End::Count,
                    "exists" => End::Exists,
                    "empty" => End::Empty,
                    _ => return None,
                };
                (end, *offset, &**target)
            }
            Expr::Call(Some(_), function, _, _) if function == "ofType" => (End::Items, 0, expr),
            _ => return None,
        };
        let mut steps = [Step::Unused; MAX_PATH_STEPS];
        let mut at = MAX_PATH_STEPS;
        loop {
            at = at.checked_sub(1)?;
            match node {
                Expr::Member(target, name, offset) => {
                    steps[at] = Step::Member(name, *offset);
                    node = target;
                }
                Expr::Call(Some(target), function, args, offset) if function == "ofType" => {
                    let [arg] = args.as_slice() else {
                        return None;
                    };
                    // A bad type argument is the evaluator's to report.
                    steps[at] = Step::OfType(type_argument(arg, *offset).ok()?, *offset);
                    node = target;
                }
                Expr::Ident(name, offset) => {
                    steps[at] = Step::Start(name, *offset);
                    break;
                }
                _ => return None,
            }
        }
        Some(Path {
            steps,
            at,
            end,
            end_offset,
        })
    }

    fn steps(&self) -> &[Step<'x>] {
        &self.steps[self.at..]
    }

    /// The nodes of the expression it is made of.
    #[cfg(test)]
    fn nodes(&self) -> usize {
        self.steps().len() + usize::from(self.end != End::Items)
    }
}

/// Streams the results of `expr` on `input` to `sink`, as the evaluator streams them, when
/// `expr` is a plain path. `None`, having done nothing, for any other.
pub(crate) fn stream_path<'a>(
    expr: &'a Expr,
    input: &Item<'a>,
    sink: &mut dyn FnMut(Item<'a>),
) -> Option<Result<(), EvalError>> {
    let path = Path::of(expr)?;
    if path.end == End::Count {
        // The evaluator streams `count()` as the collection it evaluates, one level deeper.
        let (found, levels) = path.walk_by_node(core::slice::from_ref(input), &mut |_| {});
        return Some(
            path.count_by_node(&levels, &mut 0)
                .map(|()| sink(path.ending(found))),
        );
    }
    let mut walk = Walk {
        steps: 0,
        failed: None,
        stop_at_first: matches!(path.end, End::Exists | End::Empty),
        found: 0,
        sink: &mut |_| {},
    };
    if path.end == End::Items {
        walk.sink = sink;
        walk.go(path.steps(), input.clone());
        return Some(walk.failed.map_or(Ok(()), Err));
    }
    walk.go(path.steps(), input.clone());
    if let Some(failed) = walk.failed {
        return Some(Err(failed));
    }
    sink(path.ending(walk.found));
    Some(Ok(()))
}

/// The results of `expr` on `input`, as the evaluator collects them at a depth of `depth`
/// having taken `steps` steps (which it adds to), when `expr` is a plain path. `None`, having
/// done nothing, for any other. (Only tests collect so: the evaluator's own collections of
/// paths are as quick. They check the walk and count that `count()` uses.)
#[cfg(test)]
fn collect_path<'a>(
    expr: &'a Expr,
    input: &[Item<'a>],
    depth: usize,
    steps: &mut usize,
) -> Option<Result<alloc::vec::Vec<Item<'a>>, EvalError>> {
    let path = Path::of(expr)?;
    if depth + path.nodes() > super::MAX_EVAL_DEPTH {
        return None;
    }
    let mut res = alloc::vec::Vec::new();
    let (found, levels) = path.walk_by_node(input, &mut |result| {
        if path.end == End::Items {
            res.push(result);
        }
    });
    if let Err(failed) = path.count_by_node(&levels, steps) {
        return Some(Err(failed));
    }
    if path.end != End::Items {
        res.push(path.ending(found));
    }
    Some(Ok(res))
}

impl<'x> Path<'x> {
    /// Walks from each item of `input`, handing each item at the end to `sink`, counting no
    /// steps; answers how many items came at the end and from each step.
    fn walk_by_node(
        &self,
        input: &[Item<'x>],
        sink: &mut dyn FnMut(Item<'x>),
    ) -> (usize, [usize; MAX_PATH_STEPS]) {
        let mut walk = NodeWalk {
            found: 0,
            levels: [0; MAX_PATH_STEPS],
            sink,
        };
        for item in input {
            walk.go(self.steps(), 0, item.clone());
        }
        (walk.found, walk.levels)
    }

    /// Counts the steps the evaluator counts for the collections of the path's nodes, each
    /// once evaluated, innermost first: each node's items and one more.
    fn count_by_node(
        &self,
        levels: &[usize; MAX_PATH_STEPS],
        steps: &mut usize,
    ) -> Result<(), EvalError> {
        for (step, &items) in self.steps().iter().zip(levels) {
            let (Step::Start(_, offset) | Step::Member(_, offset) | Step::OfType(_, offset)) =
                *step
            else {
                continue;
            };
            *steps += items + 1;
            if *steps > MAX_STEPS {
                return Err(too_many_steps(offset));
            }
        }
        if self.end != End::Items {
            *steps += 2;
            if *steps > MAX_STEPS {
                return Err(too_many_steps(self.end_offset));
            }
        }
        Ok(())
    }

    /// The result of the ending call over `found` items.
    fn ending<'a>(&self, found: usize) -> Item<'a> {
        match self.end {
            End::Exists => Item::Boolean(found > 0),
            End::Empty => Item::Boolean(found == 0),
            _ => Item::Integer(i64::try_from(found).unwrap_or(i64::MAX)),
        }
    }
}

/// A walk along a path as the evaluator streams it, counting each item a name gives as a step
/// and failing as soon as there are too many.
struct Walk<'s, 'a> {
    steps: usize,
    failed: Option<EvalError>,
    /// Whether the walk ends at its first item (`exists()`, `empty()`).
    stop_at_first: bool,
    /// Items at the end of the path.
    found: usize,
    sink: &'s mut dyn FnMut(Item<'a>),
}

impl<'a> Walk<'_, 'a> {
    /// Counts a step; false (and the walk failed) past the limit.
    fn count(&mut self, offset: usize) -> bool {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            self.failed = Some(too_many_steps(offset));
            return false;
        }
        true
    }

    /// Takes `steps` from `item`.
    fn go(&mut self, steps: &[Step<'a>], item: Item<'a>) {
        let Some((step, rest)) = steps.split_first() else {
            self.found += 1;
            (self.sink)(item);
            return;
        };
        match *step {
            Step::Start(name, offset) if names_type_of(name, &item) => {
                if self.count(offset) {
                    self.go(rest, item);
                }
            }
            Step::Start(name, offset) | Step::Member(name, offset) => {
                named_children_each(&item, name, &mut |child| {
                    if self.failed.is_none()
                        && !(self.stop_at_first && self.found > 0)
                        && self.count(offset)
                    {
                        self.go(rest, child);
                    }
                });
            }
            Step::OfType(type_name, _) => {
                if is_exact_type(&item, type_name) {
                    self.go(rest, item);
                }
            }
            Step::Unused => {}
        }
    }
}

/// A walk along a path as the evaluator evaluates its collections: counting no steps on the
/// way, but the items each step gives, for the caller to count them as the evaluator does.
struct NodeWalk<'s, 'a> {
    /// Items at the end of the path.
    found: usize,
    /// Items given by each step.
    levels: [usize; MAX_PATH_STEPS],
    sink: &'s mut dyn FnMut(Item<'a>),
}

impl<'a> NodeWalk<'_, 'a> {
    /// Takes `steps` (the path's from `level` on) from `item`.
    fn go(&mut self, steps: &[Step<'a>], level: usize, item: Item<'a>) {
        let Some((&step, rest)) = steps.split_first() else {
            self.found += 1;
            (self.sink)(item);
            return;
        };
        let given = |walk: &mut Self, item| {
            if let Some(count) = walk.levels.get_mut(level) {
                *count += 1;
            }
            walk.go(rest, level + 1, item);
        };
        match step {
            Step::Start(name, _) if names_type_of(name, &item) => given(self, item),
            Step::Start(name, _) | Step::Member(name, _) => {
                named_children_each(&item, name, &mut |child| given(self, child));
            }
            Step::OfType(type_name, _) => {
                if is_exact_type(&item, type_name) {
                    given(self, item);
                }
            }
            Step::Unused => {}
        }
    }
}

/// Whether the first name of a path names the type of its input (as the evaluator decides).
pub(super) fn names_type_of(name: &Name, item: &Item<'_>) -> bool {
    name.type_id
        .filter(|_| name.starts_with(|c: char| c.is_ascii_uppercase()))
        .is_some_and(|type_id| item.is_fhir_type_id(type_id))
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::{Env, Evaluator, Frame, MAX_EVAL_DEPTH};
    use super::{collect_path, stream_path};
    use crate::fhirpath::value::Item;
    use crate::fhirpath::{compile, to_json};

    const BUNDLE: &[u8] = br#"{"resourceType":"Bundle","type":"collection","entry":[
        {"resource":{"resourceType":"Patient","id":"p1",
          "extension":[{"url":"http://x/a","valueString":"one"}],
          "name":[{"use":"official","family":"Ng","given":["Ann","Bo"]},{"given":["Annie"]}],
          "birthDate":"1970-01-02","_birthDate":{"extension":[{"url":"http://x/t","valueTime":"08:00:00"}]},
          "deceasedBoolean":false,"contact":[{"name":{"given":["Cy"]}}]}},
        {"resource":{"resourceType":"Observation","id":"o1","status":"final",
          "code":{"coding":[{"system":"http://loinc.org","code":"1-8"}]},
          "valueQuantity":{"value":1.50,"unit":"mg"},"subject":{"reference":"Patient/p1"}}},
        {"resource":{"resourceType":"Observation","id":"o2","status":"final",
          "code":{"text":"x"},"valueString":"high"}}]}"#;

    const PLAIN: [&str; 34] = [
        "Bundle.entry.resource.ofType(Observation)",
        "Bundle.entry.resource.ofType(Patient).name.given",
        "Bundle.entry.resource.ofType(Resource).id",
        "entry.resource.id",
        "Patient.name.given",
        "name.given",
        "Patient.name.ofType(HumanName).family",
        "Patient.deceased.ofType(boolean)",
        "Patient.deceased.ofType(dateTime)",
        "Patient.deceasedBoolean",
        "Patient.birthDate",
        "Patient.birthDate.extension.value",
        "Patient.extension.value.ofType(string)",
        "Patient.contact.name.given",
        "Observation.value.ofType(Quantity).value",
        "Observation.value.ofType(Quantity).unit",
        "Observation.valueQuantity.value",
        "Observation.value",
        "Observation.subject.reference",
        "Observation.code.coding.code",
        "Observation.name",
        "Resource.id",
        "DomainResource.id",
        "id",
        "Bundle",
        "Patient.name.given.count()",
        "Patient.name.family.count()",
        "Patient.photo.count()",
        "Patient.name.given.exists()",
        "Patient.photo.exists()",
        "Patient.name.given.empty()",
        "Patient.photo.empty()",
        "Bundle.entry.resource.ofType(Observation).count()",
        "Bundle.entry.resource.ofType(Observation).exists()",
    ];

    const OTHER: [&str; 10] = [
        "Patient.name.where(use = 'official').given",
        "Patient.name.given.first()",
        "Patient.name.given.count(1)",
        "Patient.name.count().count()",
        "count()",
        "Patient.name.ofType(Nonesuch)",
        "Patient.name.ofType()",
        "%resource.id",
        "Patient.name[0].given",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q",
    ];

    fn env<'a>(input: &'a [Item<'a>]) -> Env<'a, 'a> {
        Env {
            resource: input.first().cloned(),
            root_resource: input.first().cloned(),
            context: input,
            variables: &[],
            resolver: None,
            lenient_as: false,
            projection: false,
            now: None,
            regexes: &[],
            memo_nodes: &[],
        }
    }

    /// On a Bundle, on each of its resources and on all of them at once, a plain path gives
    /// what the evaluator gives, and counts the same steps; any other expression is left to
    /// the evaluator.
    #[test]
    fn plain_paths_agree_with_the_evaluator() {
        let bundle = crate::json::fhir::parse_resource(BUNDLE).unwrap_or_else(|e| panic!("{e}"));
        let mut inputs = vec![Item::Object(&bundle)];
        for entry in bundle.values("entry") {
            if let crate::resource::Value::Complex(entry) = entry {
                for resource in entry.values("resource") {
                    if let crate::resource::Value::Resource(resource) = resource {
                        inputs.push(Item::Object(resource));
                    }
                }
            }
        }
        let singles: Vec<&[Item<'_>]> = inputs.iter().map(core::slice::from_ref).collect();
        let mut found = 0;
        for text in PLAIN.iter().chain(&OTHER) {
            let expression = compile(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let expr = &expression.ast;
            for input in singles.iter().copied().chain([&inputs[..]]) {
                let env = env(input);
                let frame = Frame {
                    this: input.first().cloned(),
                    ..Frame::default()
                };
                let mut evaluator = Evaluator::new(&env);
                let evaluated: Result<String, String> = evaluator
                    .eval(expr, input, &frame)
                    .map(|items| to_json(&items))
                    .map_err(|e| e.message);
                let mut steps = 0;
                let collected = collect_path(expr, input, 0, &mut steps);
                if OTHER.contains(text) {
                    assert!(collected.is_none(), "{text} is not a plain path");
                } else {
                    let collected = collected
                        .unwrap_or_else(|| panic!("{text} is a plain path"))
                        .map(|items| to_json(&items))
                        .map_err(|e| e.message);
                    assert_eq!(collected, evaluated, "{text} collected");
                    assert_eq!(steps, evaluator.steps, "{text}: steps");
                    found += usize::from(collected.is_ok_and(|json| json != "[]"));
                }
                // Too deep for the evaluator: left to it.
                assert!(collect_path(expr, input, MAX_EVAL_DEPTH, &mut 0).is_none());
                let [one] = input else {
                    continue;
                };
                let mut evaluator = Evaluator::new(&env);
                let mut items: Vec<Item<'_>> = Vec::new();
                let streamed = evaluator
                    .stream(expr, one, &frame, &mut |_, item| {
                        items.push(item);
                        Ok(true)
                    })
                    .map(|_| to_json(&items))
                    .map_err(|e| e.message);
                let mut walked: Vec<Item<'_>> = Vec::new();
                let res = stream_path(expr, one, &mut |item| walked.push(item));
                if OTHER.contains(text) {
                    assert!(res.is_none(), "{text} is not a plain path");
                    continue;
                }
                let walked = res
                    .unwrap_or_else(|| panic!("{text} is a plain path"))
                    .map(|()| to_json(&walked))
                    .map_err(|e| e.message);
                assert_eq!(walked, streamed, "{text} streamed");
            }
        }
        // Most of the paths find something somewhere.
        assert!(found >= 40, "{found}");
    }
}

//! Paths evaluated item by item: `Observation.code.coding.where(system = 'x').code` walks the
//! resource and hands each result to a sink, building no collection along the way. Navigation,
//! `where`, `first`, `exists`, `empty` and `ofType` stream; any other expression is evaluated
//! as a collection and its items streamed, so every expression can be streamed and gives the
//! same result as [`Evaluator::eval`].

use super::path::names_type_of;
use super::{named_children_each, type_argument, Evaluator, Frame};
use crate::fhirpath::eval::{err, is_exact_type};
use crate::fhirpath::parser::Expr;
use crate::fhirpath::value::Item;
use crate::fhirpath::EvalError;

/// Receives the items of a stream; answers whether it wants more.
pub(super) type Sink<'s, 'a, 'e> =
    dyn FnMut(&mut Evaluator<'a, 'e>, Item<'a>) -> Result<bool, EvalError> + 's;

impl<'a, 'e> Evaluator<'a, 'e> {
    /// Streams the results of `expr` on the single item `input` to `sink`. Answers `false`
    /// when the sink asked to stop.
    pub(super) fn stream(
        &mut self,
        expr: &'a Expr,
        input: &Item<'a>,
        frame: &Frame<'a>,
        sink: &mut Sink<'_, 'a, 'e>,
    ) -> Result<bool, EvalError> {
        self.depth += 1;
        if self.depth > super::MAX_EVAL_DEPTH {
            return err("expected evaluation to nest less deeply", expr.offset());
        }
        let res = self.stream_inner(expr, input, frame, sink);
        self.depth -= 1;
        res
    }

    fn stream_inner(
        &mut self,
        expr: &'a Expr,
        input: &Item<'a>,
        frame: &Frame<'a>,
        sink: &mut Sink<'_, 'a, 'e>,
    ) -> Result<bool, EvalError> {
        match expr {
            Expr::Ident(name, offset) => {
                if names_type_of(name, input) {
                    self.count(1, *offset)?;
                    return sink(self, input.clone());
                }
                self.stream_children(input, name, *offset, sink)
            }
            Expr::Member(target, name, offset) => {
                let offset = *offset;
                self.stream(target, input, frame, &mut |ev, item| {
                    ev.stream_children(&item, name, offset, sink)
                })
            }
            Expr::Call(Some(target), name, args, offset) => {
                let offset = *offset;
                match (name.as_str(), args.as_slice()) {
                    ("where", [criteria]) => {
                        let scope = self.defined.len();
                        let mut index = 0i64;
                        let res = self.stream(target, input, frame, &mut |ev, item| {
                            let frame = Frame {
                                this: Some(item.clone()),
                                index: Some(index),
                                total: None,
                            };
                            index += 1;
                            let keep =
                                ev.truth(criteria, core::slice::from_ref(&item), &frame, offset)?;
                            if keep == Some(true) {
                                sink(ev, item)
                            } else {
                                Ok(true)
                            }
                        });
                        self.defined.truncate(scope);
                        res
                    }
                    ("first", []) => {
                        let mut more = true;
                        self.stream(target, input, frame, &mut |ev, item| {
                            more = sink(ev, item)?;
                            Ok(false)
                        })?;
                        Ok(more)
                    }
                    ("exists", []) | ("empty", []) => {
                        let mut found = false;
                        self.stream(target, input, frame, &mut |_, _| {
                            found = true;
                            Ok(false)
                        })?;
                        let answer = if name.as_str() == "exists" {
                            found
                        } else {
                            !found
                        };
                        sink(self, Item::Boolean(answer))
                    }
                    ("exists", [criteria]) => {
                        let scope = self.defined.len();
                        let mut found = false;
                        let mut index = 0i64;
                        self.stream(target, input, frame, &mut |ev, item| {
                            let frame = Frame {
                                this: Some(item.clone()),
                                index: Some(index),
                                total: None,
                            };
                            index += 1;
                            found =
                                ev.truth(criteria, core::slice::from_ref(&item), &frame, offset)?
                                    == Some(true);
                            Ok(!found)
                        })?;
                        self.defined.truncate(scope);
                        sink(self, Item::Boolean(found))
                    }
                    ("ofType", [type_arg]) => {
                        let type_name = type_argument(type_arg, offset)?;
                        self.stream(target, input, frame, &mut |ev, item| {
                            if is_exact_type(&item, type_name) {
                                sink(ev, item)
                            } else {
                                Ok(true)
                            }
                        })
                    }
                    _ => self.stream_collection(expr, input, frame, sink),
                }
            }
            _ => self.stream_collection(expr, input, frame, sink),
        }
    }

    fn stream_children(
        &mut self,
        item: &Item<'a>,
        name: &'a crate::fhirpath::parser::Name,
        offset: usize,
        sink: &mut Sink<'_, 'a, 'e>,
    ) -> Result<bool, EvalError> {
        let mut res = Ok(true);
        named_children_each(item, name, &mut |child| {
            if !matches!(res, Ok(true)) {
                return;
            }
            res = self.count(1, offset).and_then(|()| sink(self, child));
        });
        res
    }

    /// Any expression: evaluated as a collection, whose items are then streamed.
    fn stream_collection(
        &mut self,
        expr: &'a Expr,
        input: &Item<'a>,
        frame: &Frame<'a>,
        sink: &mut Sink<'_, 'a, 'e>,
    ) -> Result<bool, EvalError> {
        let items = self.eval(expr, core::slice::from_ref(input), frame)?;
        for item in items {
            if !sink(self, item)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::super::{Env, Evaluator, Frame};
    use crate::fhirpath::value::Item;
    use crate::fhirpath::{compile, to_json};

    const PATIENT: &[u8] = br#"{"resourceType":"Patient","id":"p1",
        "name":[{"use":"official","family":"Ng","given":["Ann","Bo"]},
                {"use":"nickname","given":["Annie"]},{"family":"Li"}],
        "telecom":[{"system":"phone","value":"555"},{"system":"email","value":"a@b"}],
        "birthDate":"1970-01-02","deceasedBoolean":false,
        "contact":[{"name":{"given":["Cy"]}}]}"#;

    /// Each expression gives the same result, or the same error, streamed as collected.
    #[test]
    fn streaming_agrees_with_collections() {
        let expressions = [
            "Patient.name.given",
            "name.given.first()",
            "Patient.name.first().given",
            "Patient.name.where(use = 'official').given.first()",
            "Patient.name.where($index = 1).given",
            "Patient.name.where(given.first() = 'Annie').use",
            "Patient.name.where(given = 'Ann')",
            "Patient.name.exists()",
            "Patient.name.exists(use = 'nickname')",
            "Patient.name.exists(use = 'maiden')",
            "Patient.name.where(use = 'maiden').empty()",
            "Patient.photo.empty()",
            "Patient.deceased.ofType(boolean)",
            "Patient.deceased.ofType(dateTime)",
            "Patient.deceasedBoolean",
            "Patient.contact.name.given",
            "Patient.telecom.where(system = 'phone').value",
            "Patient.telecom.where(system = 'phone' or system = 'email').value.first()",
            "Patient.name.given.where(length() > 2)",
            "Observation.code",
            "Patient.name.where(given)",
            "Patient.name.ofType(Foo)",
            "Patient.name.given.count()",
            "Patient.birthDate.exists() and Patient.id = 'p1'",
        ];
        let compiled: Vec<_> = expressions
            .iter()
            .map(|text| compile(text).unwrap_or_else(|e| panic!("{text}: {e}")))
            .collect();
        let patient = crate::json::fhir::parse_resource(PATIENT).unwrap_or_else(|e| panic!("{e}"));
        let root = Item::Object(&patient);
        let env = Env {
            resource: Some(root.clone()),
            root_resource: Some(root.clone()),
            context: core::slice::from_ref(&root),
            variables: &[],
            resolver: None,
            lenient_as: false,
            projection: false,
            now: None,
            regexes: &[],
            memo_nodes: &[],
        };
        for (text, expression) in expressions.iter().zip(&compiled) {
            let frame = Frame {
                this: Some(root.clone()),
                ..Frame::default()
            };
            let collected = Evaluator::new(&env)
                .eval(&expression.ast, core::slice::from_ref(&root), &frame)
                .map(|items| to_json(&items))
                .map_err(|e| e.message);
            let mut streamed: Vec<Item<'_>> = Vec::new();
            let streamed = Evaluator::new(&env)
                .stream(&expression.ast, &root, &frame, &mut |_, item| {
                    streamed.push(item);
                    Ok(true)
                })
                .map(|_| to_json(&streamed))
                .map_err(|e| e.message);
            assert_eq!(streamed, collected, "{text}");
        }
    }
}

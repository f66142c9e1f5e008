//! The FHIRPath evaluator: walks the AST over collections of [`Item`]s.
//!
//! This file is long because it holds the whole function table of FHIRPath N1 plus the FHIR
//! functions of R4 §2.3; each function is a few lines in one `match`.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;

use super::datetime::{Temporal, TemporalKind};
use super::decimal::Decimal;
use super::parser::{BinaryOp, Expr, Literal, MemberSlot, Name, TypeRef};
use super::ucum;
use super::value::{Item, System};
use super::EvalError;
use crate::model;
use crate::resource::Object;

mod path;
mod stream;

pub(crate) use path::stream_path;

/// Collections are plain vectors of items.
pub type Collection<'a> = Vec<Item<'a>>;

/// Most items a single evaluation may produce along the way, against runaway expressions.
const MAX_STEPS: usize = 5_000_000;
/// Deepest nesting of evaluation (function arguments inside functions).
const MAX_EVAL_DEPTH: usize = 400;

/// Finds resources by reference for `resolve()`.
pub trait Resolver<'a> {
    /// The resource a reference (`Patient/123`, `#contained`, a full URL) points at, if known.
    fn resolve(&self, reference: &str) -> Option<&'a Object>;
}

/// What an evaluation starts from: the environment variables and the resolver.
pub struct Env<'a, 'e> {
    /// `%resource`.
    pub resource: Option<Item<'a>>,
    /// `%rootResource`: the outermost resource (a contained resource's container).
    pub root_resource: Option<Item<'a>>,
    /// `%context`.
    pub context: &'e [Item<'a>],
    /// User variables (`%name`), without the `%`.
    pub variables: &'e [(String, Collection<'a>)],
    /// Resolves references for `resolve()`.
    pub resolver: Option<&'e dyn Resolver<'a>>,
    /// `as()` on a collection of several items filters instead of failing (see [`crate::fhirpath::Options`]).
    pub lenient_as: bool,
    /// The resource is a projection (see [`crate::fhirpath::Options::projection`]).
    pub projection: bool,
    /// `now()` as text (the engine reads no clock); `None` makes `now()` and `today()` empty.
    pub now: Option<Temporal>,
    /// Regular expressions compiled with the expression, by pattern.
    pub regexes: &'e [(String, regex_automata::meta::Regex)],
    /// Nodes whose result does not depend on where they are evaluated, as (address, class):
    /// nodes of one class give one result.
    pub memo_nodes: &'e [(usize, usize)],
}

#[derive(Clone, Default)]
struct Frame<'a> {
    this: Option<Item<'a>>,
    index: Option<i64>,
    total: Option<Collection<'a>>,
}

pub(crate) struct Evaluator<'a, 'e> {
    env: &'e Env<'a, 'e>,
    /// Regular expressions compiled during this evaluation, by pattern.
    regexes: super::functions::RegexCache<'e>,
    defined: Vec<(String, Collection<'a>)>,
    /// Results of [`Env::memo_nodes`] evaluated so far, by class.
    memo: Vec<(usize, Collection<'a>)>,
    steps: usize,
    depth: usize,
}

/// An error unless `found` arguments is within `min..=max` for function `name`.
pub(crate) fn check_arity(
    name: &str,
    min: usize,
    max: usize,
    found: usize,
    offset: usize,
) -> Result<(), EvalError> {
    if found < min || found > max {
        let expected = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return err(
            format!("expected {expected} arguments for {name}(), found {found}"),
            offset,
        );
    }
    Ok(())
}

fn err<T>(message: impl Into<String>, offset: usize) -> Result<T, EvalError> {
    Err(EvalError {
        message: message.into(),
        offset,
    })
}

/// The failure of an evaluation that took more than [`MAX_STEPS`] steps.
fn too_many_steps(offset: usize) -> EvalError {
    EvalError {
        message: format!("expected the evaluation to finish within {MAX_STEPS} steps, it did not"),
        offset,
    }
}

/// The failure of an evaluation on a projection whose result depends on what it left out.
pub(crate) fn needs_whole(offset: usize) -> EvalError {
    EvalError {
        message:
            "the result depends on elements the projection left out; evaluate on the whole resource"
                .into(),
        offset,
    }
}

fn has_object(items: &[Item<'_>]) -> bool {
    items.iter().any(|item| matches!(item, Item::Object(_)))
}

impl<'a, 'e> Evaluator<'a, 'e> {
    /// On a projection, fails when `items` hold FHIR objects, which comparing by content
    /// would compare without what the projection left out.
    fn compared_whole(&self, items: &[Item<'_>], offset: usize) -> Result<(), EvalError> {
        if self.env.projection && has_object(items) {
            return Err(needs_whole(offset));
        }
        Ok(())
    }

    pub(crate) fn new(env: &'e Env<'a, 'e>) -> Self {
        Evaluator {
            env,
            regexes: super::functions::RegexCache::new(env.regexes),
            defined: Vec::new(),
            memo: Vec::new(),
            steps: 0,
            depth: 0,
        }
    }

    pub(crate) fn evaluate(
        &mut self,
        expr: &'a Expr,
        input: &[Item<'a>],
    ) -> Result<Collection<'a>, EvalError> {
        let frame = Frame {
            this: input.first().cloned().filter(|_| input.len() == 1),
            ..Frame::default()
        };
        match input {
            [item] => {
                let mut res = Vec::new();
                self.stream(expr, item, &frame, &mut |_, item| {
                    res.push(item);
                    Ok(true)
                })?;
                Ok(res)
            }
            _ => self.eval(expr, input, &frame),
        }
    }

    /// Evaluates `expr` on one item, handing each result to `sink` as it is found.
    pub(crate) fn evaluate_streaming(
        &mut self,
        expr: &'a Expr,
        input: &Item<'a>,
        sink: &mut dyn FnMut(Item<'a>),
    ) -> Result<(), EvalError> {
        let frame = Frame {
            this: Some(input.clone()),
            ..Frame::default()
        };
        self.stream(expr, input, &frame, &mut |_, item| {
            sink(item);
            Ok(true)
        })
        .map(|_| ())
    }

    fn count(&mut self, n: usize, offset: usize) -> Result<(), EvalError> {
        self.steps += n;
        if self.steps > MAX_STEPS {
            return Err(too_many_steps(offset));
        }
        Ok(())
    }

    fn eval(
        &mut self,
        expr: &'a Expr,
        input: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let memo_key = if self.env.memo_nodes.is_empty() {
            None
        } else {
            let address = core::ptr::from_ref(expr) as usize;
            self.env
                .memo_nodes
                .iter()
                .find(|(node, _)| *node == address)
                .map(|(_, class)| *class)
        };
        if let Some(class) = memo_key {
            if let Some((_, result)) = self.memo.iter().find(|(key, _)| *key == class) {
                let result = result.clone();
                self.count(result.len() + 1, expr.offset())?;
                return Ok(result);
            }
        }
        self.depth += 1;
        if self.depth > MAX_EVAL_DEPTH {
            return err("expected evaluation to nest less deeply", expr.offset());
        }
        let res = self.eval_inner(expr, input, frame);
        if let (Some(class), Ok(result)) = (memo_key, &res) {
            self.memo.push((class, result.clone()));
        }
        self.depth -= 1;
        let res = res?;
        // Strings built along the way count by size, so that growing text is bounded too.
        let built: usize = res
            .iter()
            .map(|item| match item {
                Item::String(Cow::Owned(text)) => text.len() / 16,
                _ => 0,
            })
            .sum();
        self.count(res.len() + 1 + built, expr.offset())?;
        Ok(res)
    }

    fn eval_inner(
        &mut self,
        expr: &'a Expr,
        input: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        match expr {
            Expr::Literal(literal, offset) => literal_value(literal, *offset),
            Expr::Ident(name, _) => {
                let mut res = Vec::new();
                let type_id = name
                    .type_id
                    .filter(|_| name.starts_with(|c: char| c.is_ascii_uppercase()));
                for item in input {
                    if type_id.is_some_and(|type_id| item.is_fhir_type_id(type_id)) {
                        res.push(item.clone());
                    } else {
                        named_children(item, name, &mut res);
                    }
                }
                Ok(res)
            }
            Expr::Member(target, name, _) => {
                let items = self.eval(target, input, frame)?;
                let mut res = Vec::new();
                for item in &items {
                    named_children(item, name, &mut res);
                }
                Ok(res)
            }
            Expr::Call(target, name, args, offset) => {
                let items = match target {
                    Some(target) => self.eval(target, input, frame)?,
                    None => input.to_vec(),
                };
                self.call(name, &items, args, *offset, input, frame)
            }
            Expr::Index(target, index, offset) => {
                let items = self.eval(target, input, frame)?;
                let index = self.eval(index, input, frame)?;
                match singleton_integer(&index, *offset)? {
                    Some(idx) if idx >= 0 => Ok(usize::try_from(idx)
                        .ok()
                        .and_then(|idx| items.get(idx))
                        .cloned()
                        .into_iter()
                        .collect()),
                    _ => Ok(Vec::new()),
                }
            }
            Expr::Negate(operand, negate, offset) => {
                let items = self.eval(operand, input, frame)?;
                if !negate {
                    return Ok(items);
                }
                match single(&items, *offset)?.and_then(|item| item.to_system()) {
                    None => Ok(Vec::new()),
                    Some(System::Integer(value)) => {
                        Ok(value.checked_neg().map(Item::Integer).into_iter().collect())
                    }
                    Some(System::Decimal(value)) => Ok(vec![Item::Decimal(value.negated())]),
                    Some(System::Quantity(value, unit)) => {
                        Ok(vec![Item::Quantity(value.negated(), unit)])
                    }
                    Some(_) => err("expected a number or quantity after '-'", *offset),
                }
            }
            Expr::Binary(BinaryOp::Union, _, _, _) => {
                // `a | b | c | ...` (long lists of codes) is evaluated along the chain, not by
                // recursion down it.
                let mut operands = Vec::new();
                let mut current = expr;
                while let Expr::Binary(BinaryOp::Union, left, right, _) = current {
                    operands.push(right.as_ref());
                    current = left.as_ref();
                }
                operands.push(current);
                let mut res = Vec::new();
                for operand in operands.into_iter().rev() {
                    res.extend(self.eval(operand, input, frame)?);
                }
                self.compared_whole(&res, expr.offset())?;
                Ok(distinct(res.into_iter()))
            }
            Expr::Binary(op, left, right, offset) => {
                self.binary(*op, left, right, *offset, input, frame)
            }
            Expr::TypeTest(target, is, type_name, offset) => {
                let items = self.eval(target, input, frame)?;
                if *is {
                    Ok(match single(&items, *offset)? {
                        None => Vec::new(),
                        Some(item) => vec![Item::Boolean(is_type(item, type_name.as_ref()))],
                    })
                } else {
                    let item = single(&items, *offset)?;
                    Ok(item
                        .filter(|item| is_exact_type(item, type_name.as_ref()))
                        .cloned()
                        .into_iter()
                        .collect())
                }
            }
            Expr::External(name, offset) => self.external(name, *offset),
            Expr::This(_) => Ok(frame.this.clone().into_iter().collect()),
            Expr::IndexVar(_) => Ok(frame.index.map(Item::Integer).into_iter().collect()),
            Expr::Total(_) => Ok(frame.total.clone().unwrap_or_default()),
        }
    }

    fn external(&self, name: &str, offset: usize) -> Result<Collection<'a>, EvalError> {
        let text = |value: &str| Ok(vec![Item::String(Cow::Owned(value.to_string()))]);
        match name {
            "resource" => Ok(self.env.resource.clone().into_iter().collect()),
            "rootResource" => Ok(self.env.root_resource.clone().into_iter().collect()),
            "context" => Ok(self.env.context.to_vec()),
            "ucum" => text("http://unitsofmeasure.org"),
            "sct" => text("http://snomed.info/sct"),
            "loinc" => text("http://loinc.org"),
            _ => {
                if let Some((_, value)) = self.defined.iter().rev().find(|(var, _)| var == name) {
                    return Ok(value.clone());
                }
                if let Some((_, value)) = self.env.variables.iter().find(|(var, _)| var == name) {
                    return Ok(value.clone());
                }
                if let Some(rest) = name.strip_prefix("vs-") {
                    return text(&format!("http://hl7.org/fhir/ValueSet/{rest}"));
                }
                if let Some(rest) = name.strip_prefix("ext-") {
                    return text(&format!("http://hl7.org/fhir/StructureDefinition/{rest}"));
                }
                err(format!("unknown variable %{name}"), offset)
            }
        }
    }

    /// Evaluates a criterion as a boolean (singleton evaluation): `None` for empty. The common
    /// shape `path = literal` (and `!=`) is compared without building collections for the
    /// literal and the answer.
    fn truth(
        &mut self,
        expr: &'a Expr,
        input: &[Item<'a>],
        frame: &Frame<'a>,
        offset: usize,
    ) -> Result<Option<bool>, EvalError> {
        if let Expr::Binary(op @ (BinaryOp::Eq | BinaryOp::Ne), left, right, _) = expr {
            if let Expr::Literal(literal, _) = right.as_ref() {
                if let Some(literal) = literal_item(literal) {
                    // The first value, and whether there are more.
                    let (first, more) = match input {
                        [item] => {
                            let mut first = None;
                            let mut more = false;
                            self.stream(left, item, frame, &mut |_, value| {
                                if first.is_none() {
                                    first = Some(value);
                                    Ok(true)
                                } else {
                                    more = true;
                                    Ok(false)
                                }
                            })?;
                            (first, more)
                        }
                        _ => {
                            let mut values = self.eval(left, input, frame)?.into_iter();
                            (values.next(), values.next().is_some())
                        }
                    };
                    let equal = match (first, more) {
                        (None, _) => return Ok(None),
                        (Some(value), false) => item_equals(&value, &literal),
                        (Some(_), true) => Some(false),
                    };
                    return Ok(equal.map(|equal| if *op == BinaryOp::Eq { equal } else { !equal }));
                }
            }
        }
        let result = self.eval(expr, input, frame)?;
        to_bool(&result, offset)
    }

    /// Evaluates `arg` once per item of `items`, with `$this`, `$index` (and `$total`) set.
    fn each(
        &mut self,
        arg: &'a Expr,
        items: &[Item<'a>],
        total: Option<&Collection<'a>>,
    ) -> Result<Vec<Collection<'a>>, EvalError> {
        let mut res = Vec::with_capacity(items.len());
        for (idx, item) in items.iter().enumerate() {
            let frame = Frame {
                this: Some(item.clone()),
                index: i64::try_from(idx).ok(),
                total: total.cloned(),
            };
            res.push(self.eval(arg, core::slice::from_ref(item), &frame)?);
        }
        Ok(res)
    }

    /// Evaluates a function argument against the focus of the whole call (`$this` unchanged).
    fn arg(
        &mut self,
        args: &'a [Expr],
        idx: usize,
        input: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        match args.get(idx) {
            Some(arg) => self.eval(arg, input, frame),
            None => Ok(Vec::new()),
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        left: &'a Expr,
        right: &'a Expr,
        offset: usize,
        input: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let a = self.eval(left, input, frame)?;
        // `true or x`, `false and x` and `false implies x` are decided by the left operand
        // whatever x is (even empty), so x is not evaluated.
        let decided = match op {
            BinaryOp::Or => to_bool(&a, offset)? == Some(true),
            BinaryOp::And => to_bool(&a, offset)? == Some(false),
            BinaryOp::Implies => to_bool(&a, offset)? == Some(false),
            _ => false,
        };
        if decided {
            return Ok(vec![Item::Boolean(op != BinaryOp::And)]);
        }
        let b = self.eval(right, input, frame)?;
        let boolean = |value: Option<bool>| Ok(value.map(Item::Boolean).into_iter().collect());
        match op {
            BinaryOp::Union => Ok(distinct(a.into_iter().chain(b))),
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Implies => {
                let (x, y) = (to_bool(&a, offset)?, to_bool(&b, offset)?);
                boolean(match op {
                    BinaryOp::And => match (x, y) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    BinaryOp::Or => match (x, y) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    BinaryOp::Xor => x.zip(y).map(|(x, y)| x != y),
                    _ => match (x, y) {
                        (Some(false), _) | (_, Some(true)) => Some(true),
                        (Some(true), y) => y,
                        (None, _) => None,
                    },
                })
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                if a.is_empty() || b.is_empty() {
                    return Ok(Vec::new());
                }
                if has_object(&a) {
                    self.compared_whole(&b, offset)?;
                }
                let equal = collections_equal(&a, &b);
                boolean(if op == BinaryOp::Eq {
                    equal
                } else {
                    equal.map(|e| !e)
                })
            }
            BinaryOp::Equiv | BinaryOp::NotEquiv => {
                if has_object(&a) {
                    self.compared_whole(&b, offset)?;
                }
                let equivalent = collections_equivalent(&a, &b);
                boolean(Some(if op == BinaryOp::Equiv {
                    equivalent
                } else {
                    !equivalent
                }))
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let (Some(x), Some(y)) = (single(&a, offset)?, single(&b, offset)?) else {
                    return Ok(Vec::new());
                };
                let (Some(x), Some(y)) = (x.to_system(), y.to_system()) else {
                    return Ok(Vec::new());
                };
                if !comparable_kinds(&x, &y) {
                    return err("expected operands of comparable types", offset);
                }
                boolean(x.compare(&y).map(|ordering| match op {
                    BinaryOp::Lt => ordering == Ordering::Less,
                    BinaryOp::Le => ordering != Ordering::Greater,
                    BinaryOp::Gt => ordering == Ordering::Greater,
                    _ => ordering != Ordering::Less,
                }))
            }
            BinaryOp::In | BinaryOp::Contains => {
                if has_object(&a) {
                    self.compared_whole(&b, offset)?;
                }
                let (element, collection) = if op == BinaryOp::In {
                    (&a, &b)
                } else {
                    (&b, &a)
                };
                match single(element, offset)? {
                    None => Ok(Vec::new()),
                    Some(item) => boolean(Some(
                        collection
                            .iter()
                            .any(|other| item_equals(item, other) == Some(true)),
                    )),
                }
            }
            BinaryOp::Concat => {
                let text = |items: &Collection<'a>| -> Result<String, EvalError> {
                    match single(items, offset)?.and_then(|item| item.to_system()) {
                        None => Ok(String::new()),
                        Some(System::String(text)) => Ok(text.into_owned()),
                        Some(_) => err("expected strings around '&'", offset),
                    }
                };
                let joined = text(&a)? + &text(&b)?;
                Ok(vec![Item::String(Cow::Owned(joined))])
            }
            _ => {
                let (Some(x), Some(y)) = (single(&a, offset)?, single(&b, offset)?) else {
                    return Ok(Vec::new());
                };
                let (Some(x), Some(y)) = (x.to_system(), y.to_system()) else {
                    return Ok(Vec::new());
                };
                arithmetic(op, x, y, offset)
            }
        }
    }

    /// Calls a function. Variables that `defineVariable()` defines inside the call's arguments
    /// end with the call; one defined by the call itself lives on along the chain.
    fn call(
        &mut self,
        name: &str,
        items: &[Item<'a>],
        args: &'a [Expr],
        offset: usize,
        input: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let scope = self.defined.len();
        let res = self.call_function(name, items, args, offset, input, frame);
        if name != "defineVariable" {
            self.defined.truncate(scope);
        }
        res
    }

    #[allow(clippy::too_many_lines)]
    fn call_function(
        &mut self,
        name: &str,
        items: &[Item<'a>],
        args: &'a [Expr],
        offset: usize,
        input: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let arity = |min: usize, max: usize| check_arity(name, min, max, args.len(), offset);
        let boolean = |value: bool| Ok(vec![Item::Boolean(value)]);
        match name {
            // Existence.
            "empty" => {
                arity(0, 0)?;
                boolean(items.is_empty())
            }
            "exists" => {
                arity(0, 1)?;
                match args.first() {
                    None => boolean(!items.is_empty()),
                    Some(criteria) => {
                        let mut found = false;
                        for (idx, item) in items.iter().enumerate() {
                            let frame = Frame {
                                this: Some(item.clone()),
                                index: i64::try_from(idx).ok(),
                                total: None,
                            };
                            if self.truth(criteria, core::slice::from_ref(item), &frame, offset)?
                                == Some(true)
                            {
                                found = true;
                                break;
                            }
                        }
                        boolean(found)
                    }
                }
            }
            "all" => {
                arity(1, 1)?;
                let results = self.each(&args[0], items, None)?;
                let mut all = true;
                for result in &results {
                    if to_bool(result, offset)? != Some(true) {
                        all = false;
                    }
                }
                boolean(all)
            }
            "allTrue" | "anyTrue" | "allFalse" | "anyFalse" => {
                arity(0, 0)?;
                let mut flags = Vec::new();
                for item in items {
                    match item.to_system() {
                        Some(System::Boolean(flag)) => flags.push(flag),
                        _ => return err(format!("expected booleans for {name}()"), offset),
                    }
                }
                boolean(match name {
                    "allTrue" => flags.iter().all(|f| *f),
                    "anyTrue" => flags.iter().any(|f| *f),
                    "allFalse" => flags.iter().all(|f| !*f),
                    _ => flags.iter().any(|f| !*f),
                })
            }
            "subsetOf" | "supersetOf" => {
                arity(1, 1)?;
                let other = self.arg(args, 0, input, frame)?;
                self.compared_whole(items, offset)?;
                self.compared_whole(&other, offset)?;
                let (small, large) = if name == "subsetOf" {
                    (items, other.as_slice())
                } else {
                    (other.as_slice(), items)
                };
                let large = Distinct::of(large);
                boolean(small.iter().all(|item| large.contains(item)))
            }
            "count" => {
                arity(0, 0)?;
                Ok(vec![Item::Integer(
                    i64::try_from(items.len()).unwrap_or(i64::MAX),
                )])
            }
            "distinct" => {
                arity(0, 0)?;
                self.compared_whole(items, offset)?;
                Ok(distinct(items.iter().cloned()))
            }
            "isDistinct" => {
                arity(0, 0)?;
                self.compared_whole(items, offset)?;
                let mut seen = Distinct::default();
                boolean(items.iter().all(|item| seen.insert(item)))
            }
            // Filtering and projection.
            "where" => {
                arity(1, 1)?;
                let mut res = Vec::new();
                for (idx, item) in items.iter().enumerate() {
                    let frame = Frame {
                        this: Some(item.clone()),
                        index: i64::try_from(idx).ok(),
                        total: None,
                    };
                    if self.truth(&args[0], core::slice::from_ref(item), &frame, offset)?
                        == Some(true)
                    {
                        res.push(item.clone());
                    }
                }
                Ok(res)
            }
            "select" => {
                arity(1, 1)?;
                Ok(self
                    .each(&args[0], items, None)?
                    .into_iter()
                    .flatten()
                    .collect())
            }
            "repeat" => {
                arity(1, 1)?;
                let mut res: Collection<'a> = Vec::new();
                let mut seen = Distinct::by_identity();
                let mut frontier = items.to_vec();
                while !frontier.is_empty() {
                    let next: Collection<'a> = self
                        .each(&args[0], &frontier, None)?
                        .into_iter()
                        .flatten()
                        .collect();
                    frontier = Vec::new();
                    for item in next {
                        if seen.insert(&item) {
                            res.push(item.clone());
                            frontier.push(item);
                        }
                    }
                    self.count(res.len(), offset)?;
                }
                Ok(res)
            }
            "ofType" => {
                arity(1, 1)?;
                let type_name = type_argument(&args[0], offset)?;
                Ok(items
                    .iter()
                    .filter(|item| is_exact_type(item, type_name))
                    .cloned()
                    .collect())
            }
            "sort" => {
                // Each argument is a key; a leading '-' sorts that key descending.
                let keys: Vec<(&'a Expr, bool)> = args
                    .iter()
                    .map(|arg| match arg {
                        Expr::Negate(inner, true, _) => (inner.as_ref(), true),
                        other => (other, false),
                    })
                    .collect();
                let mut keyed: Vec<(Vec<Option<System<'a>>>, Item<'a>)> =
                    Vec::with_capacity(items.len());
                for (idx, item) in items.iter().enumerate() {
                    let mut values = Vec::new();
                    if keys.is_empty() {
                        values.push(item.to_system());
                    }
                    for (key, _) in &keys {
                        let frame = Frame {
                            this: Some(item.clone()),
                            index: i64::try_from(idx).ok(),
                            total: None,
                        };
                        let result = self.eval(key, core::slice::from_ref(item), &frame)?;
                        values.push(single(&result, offset)?.and_then(Item::to_system));
                    }
                    keyed.push((values, item.clone()));
                }
                keyed.sort_by(|(a, _), (b, _)| {
                    for (idx, (x, y)) in a.iter().zip(b).enumerate() {
                        let descending = keys.get(idx).is_some_and(|(_, descending)| *descending);
                        // Items without the key come first, in either direction.
                        let ordering = match (x, y) {
                            (None, None) => Ordering::Equal,
                            (None, Some(_)) => Ordering::Less,
                            (Some(_), None) => Ordering::Greater,
                            (Some(x), Some(y)) => {
                                let ordering = x.sort_cmp(y);
                                if descending {
                                    ordering.reverse()
                                } else {
                                    ordering
                                }
                            }
                        };
                        if ordering != Ordering::Equal {
                            return ordering;
                        }
                    }
                    Ordering::Equal
                });
                Ok(keyed.into_iter().map(|(_, item)| item).collect())
            }
            "type" => {
                arity(0, 0)?;
                Ok(items
                    .iter()
                    .map(|item| {
                        let (namespace, name) = item.type_name();
                        Item::TypeInfo(namespace, name)
                    })
                    .collect())
            }
            "as" if self.env.lenient_as && items.len() > 1 => {
                // R4's own invariants (dom-3) apply as() to whole collections; evaluating them,
                // it filters like ofType().
                let type_name = type_argument(&args[0], offset)?;
                Ok(items
                    .iter()
                    .filter(|item| is_exact_type(item, type_name))
                    .cloned()
                    .collect())
            }
            "is" | "as" => {
                arity(1, 1)?;
                let type_name = type_argument(&args[0], offset)?;
                let item = single(items, offset)?;
                Ok(match (name, item) {
                    (_, None) => Vec::new(),
                    ("is", Some(item)) => vec![Item::Boolean(is_type(item, type_name))],
                    (_, Some(item)) => item.clone().into_iter_if(is_exact_type(item, type_name)),
                })
            }
            // Subsetting.
            "single" => {
                arity(0, 0)?;
                Ok(single(items, offset)?.cloned().into_iter().collect())
            }
            "first" => {
                arity(0, 0)?;
                Ok(items.first().cloned().into_iter().collect())
            }
            "last" => {
                arity(0, 0)?;
                Ok(items.last().cloned().into_iter().collect())
            }
            "tail" => {
                arity(0, 0)?;
                Ok(items.iter().skip(1).cloned().collect())
            }
            "skip" | "take" => {
                arity(1, 1)?;
                let count = singleton_integer(&self.arg(args, 0, input, frame)?, offset)?;
                let Some(count) = count else {
                    return Ok(Vec::new());
                };
                // A count beyond the address space (on 32-bit targets) is more than any
                // collection holds.
                let count = usize::try_from(count.max(0)).unwrap_or(usize::MAX);
                Ok(if name == "skip" {
                    items.iter().skip(count).cloned().collect()
                } else {
                    items.iter().take(count).cloned().collect()
                })
            }
            "intersect" => {
                arity(1, 1)?;
                let other = self.arg(args, 0, input, frame)?;
                self.compared_whole(items, offset)?;
                self.compared_whole(&other, offset)?;
                let other = Distinct::of(&other);
                Ok(distinct(
                    items.iter().filter(|item| other.contains(item)).cloned(),
                ))
            }
            "exclude" => {
                arity(1, 1)?;
                let other = self.arg(args, 0, input, frame)?;
                self.compared_whole(items, offset)?;
                self.compared_whole(&other, offset)?;
                let other = Distinct::of(&other);
                Ok(items
                    .iter()
                    .filter(|item| !other.contains(item))
                    .cloned()
                    .collect())
            }
            "union" => {
                arity(1, 1)?;
                let other = self.arg(args, 0, input, frame)?;
                self.compared_whole(items, offset)?;
                self.compared_whole(&other, offset)?;
                Ok(distinct(items.iter().cloned().chain(other)))
            }
            "combine" => {
                arity(1, 1)?;
                let other = self.arg(args, 0, input, frame)?;
                Ok(items.iter().cloned().chain(other).collect())
            }
            // Utility.
            "iif" => {
                arity(2, 3)?;
                if items.len() > 1 {
                    return err("expected iif() on a single item or none", offset);
                }
                // On a focus (`x.iif(...)`), the arguments see it as `$this`; otherwise they
                // see the caller's focus and variables.
                let inner;
                let (branch_input, branch_frame): (&[Item<'a>], &Frame<'a>) =
                    if input_is_focus(items, input) {
                        (input, frame)
                    } else {
                        inner = Frame {
                            this: items.first().cloned(),
                            index: Some(0),
                            total: frame.total.clone(),
                        };
                        (items, &inner)
                    };
                let condition = self.eval(&args[0], branch_input, branch_frame)?;
                let condition = match single(&condition, offset)? {
                    None => None,
                    Some(item) => match item.to_system() {
                        Some(System::Boolean(flag)) => Some(flag),
                        _ => return err("expected a boolean criterion for iif()", offset),
                    },
                };
                if condition == Some(true) {
                    self.arg(args, 1, branch_input, branch_frame)
                } else {
                    self.arg(args, 2, branch_input, branch_frame)
                }
            }
            "trace" => {
                arity(1, 2)?;
                Ok(items.to_vec())
            }
            "defineVariable" => {
                arity(1, 2)?;
                let name_items = self.arg(args, 0, input, frame)?;
                let Some(Item::String(var)) = name_items.first() else {
                    return err("expected a variable name", offset);
                };
                let var = var.to_string();
                let value = match args.get(1) {
                    Some(arg) => {
                        let frame = Frame {
                            this: items.first().cloned().filter(|_| items.len() == 1),
                            ..Frame::default()
                        };
                        self.eval(arg, items, &frame)?
                    }
                    None => items.to_vec(),
                };
                self.defined.push((var, value));
                Ok(items.to_vec())
            }
            "now" | "today" | "timeOfDay" => {
                arity(0, 0)?;
                let Some(now) = self.env.now else {
                    return Ok(Vec::new());
                };
                let value = match name {
                    "now" => now,
                    "today" => now.date_part(),
                    _ => Temporal {
                        kind: TemporalKind::Time,
                        year: 0,
                        month: None,
                        day: None,
                        offset: None,
                        ..now
                    },
                };
                Ok(vec![Item::Temporal(value)])
            }
            "not" => {
                arity(0, 0)?;
                Ok(to_bool(items, offset)?
                    .map(|flag| Item::Boolean(!flag))
                    .into_iter()
                    .collect())
            }
            "aggregate" => {
                arity(1, 2)?;
                let mut total = self.arg(args, 1, input, frame)?;
                for (idx, item) in items.iter().enumerate() {
                    let frame = Frame {
                        this: Some(item.clone()),
                        index: i64::try_from(idx).ok(),
                        total: Some(total),
                    };
                    total = self.eval(&args[0], core::slice::from_ref(item), &frame)?;
                }
                Ok(total)
            }
            // Tree navigation.
            "children" => {
                arity(0, 0)?;
                let mut res = Vec::new();
                for item in items {
                    all_children(item, &mut res);
                }
                Ok(res)
            }
            "descendants" => {
                arity(0, 0)?;
                // Breadth first, in one collection: each item's children are appended after
                // everything found so far.
                let mut res = Vec::new();
                for item in items {
                    all_children(item, &mut res);
                }
                let mut next = 0;
                while let Some(item) = res.get(next).cloned() {
                    all_children(&item, &mut res);
                    next += 1;
                }
                self.count(res.len(), offset)?;
                Ok(res)
            }
            // FHIR functions.
            "extension" => {
                arity(1, 1)?;
                let url = self.arg(args, 0, input, frame)?;
                let Some(System::String(url)) = single(&url, offset)?.and_then(Item::to_system)
                else {
                    return Ok(Vec::new());
                };
                let mut extensions = Vec::new();
                for item in items {
                    children(item, "extension", &mut extensions);
                }
                Ok(extensions
                    .into_iter()
                    .filter(|extension| {
                        let mut urls = Vec::new();
                        children(extension, "url", &mut urls);
                        urls.iter().any(
                            |u| matches!(u.to_system(), Some(System::String(text)) if text == url),
                        )
                    })
                    .collect())
            }
            "hasValue" => {
                arity(0, 0)?;
                boolean(
                    matches!(items, [Item::Primitive(primitive, _)] if primitive.value.is_some()),
                )
            }
            "getValue" => {
                arity(0, 0)?;
                Ok(match items {
                    [item @ Item::Primitive(primitive, _)] if primitive.value.is_some() => {
                        item.to_system().map(system_item).into_iter().collect()
                    }
                    _ => Vec::new(),
                })
            }
            "resolve" => {
                arity(0, 0)?;
                let mut res = Vec::new();
                for item in items {
                    let reference = match item.to_system() {
                        Some(System::String(text)) => Some(text.into_owned()),
                        _ => {
                            let mut refs = Vec::new();
                            children(item, "reference", &mut refs);
                            refs.first()
                                .and_then(Item::to_system)
                                .map(|value| value.to_text())
                        }
                    };
                    if let (Some(reference), Some(resolver)) = (reference, self.env.resolver) {
                        if let Some(object) = resolver.resolve(&reference) {
                            res.push(Item::Object(object));
                        }
                    }
                }
                Ok(res)
            }
            "memberOf" => {
                arity(1, 1)?;
                let url = self.arg(args, 0, input, frame)?;
                let Some(System::String(url)) = single(&url, offset)?.and_then(Item::to_system)
                else {
                    return Ok(Vec::new());
                };
                let Some(item) = single(items, offset)? else {
                    return Ok(Vec::new());
                };
                Ok(member_of(item, &url)
                    .map(Item::Boolean)
                    .into_iter()
                    .collect())
            }
            "conformsTo" => {
                arity(1, 1)?;
                let url = self.arg(args, 0, input, frame)?;
                let Some(System::String(url)) = single(&url, offset)?.and_then(Item::to_system)
                else {
                    return Ok(Vec::new());
                };
                let Some(item) = single(items, offset)? else {
                    return Ok(Vec::new());
                };
                // Core profiles only: a resource conforms to its own type's definition.
                let core = url.strip_prefix("http://hl7.org/fhir/StructureDefinition/");
                match core.and_then(model::type_by_name) {
                    Some(type_id) => boolean(item.is_fhir_type(model::type_def(type_id).name)),
                    None => err(format!("unknown profile {url}"), offset),
                }
            }
            "htmlChecks" => {
                arity(0, 0)?;
                Ok(match single(items, offset)?.and_then(Item::to_system) {
                    Some(System::String(html)) => vec![Item::Boolean(html_checks(&html))],
                    _ => Vec::new(),
                })
            }
            _ => {
                let values = self_args(self, args, input, frame)?;
                super::functions::call_value_function(
                    values,
                    name,
                    items,
                    offset,
                    &mut self.regexes,
                )
            }
        }
    }
}

/// True when a call has no explicit focus (its items are the caller's input itself).
fn input_is_focus(items: &[Item<'_>], input: &[Item<'_>]) -> bool {
    items.len() == input.len()
        && items
            .iter()
            .zip(input)
            .all(|(a, b)| same_item(a, b) || core::ptr::eq(a, b))
}

/// Evaluates every argument against the call's input (for functions whose arguments do not
/// iterate).
fn self_args<'a>(
    evaluator: &mut Evaluator<'a, '_>,
    args: &'a [Expr],
    input: &[Item<'a>],
    frame: &Frame<'a>,
) -> Result<Vec<Collection<'a>>, EvalError> {
    args.iter()
        .map(|arg| evaluator.eval(arg, input, frame))
        .collect()
}

trait IntoIterIf<'a> {
    fn into_iter_if(self, keep: bool) -> Collection<'a>;
}

impl<'a> IntoIterIf<'a> for Item<'a> {
    fn into_iter_if(self, keep: bool) -> Collection<'a> {
        if keep {
            vec![self]
        } else {
            Vec::new()
        }
    }
}

pub(crate) fn system_item(value: System<'_>) -> Item<'_> {
    match value {
        System::Boolean(flag) => Item::Boolean(flag),
        System::Integer(value) => Item::Integer(value),
        System::Decimal(value) => Item::Decimal(value),
        System::String(text) => Item::String(text),
        System::Temporal(value) => Item::Temporal(value),
        System::Quantity(value, unit) => Item::Quantity(value, unit),
    }
}

/// A literal as a single item, without a collection (strings borrowed from the expression);
/// `None` for literals that are not one plain value.
fn literal_item(literal: &Literal) -> Option<Item<'_>> {
    match literal {
        Literal::Bool(flag) => Some(Item::Boolean(*flag)),
        Literal::Str(text) => Some(Item::String(Cow::Borrowed(text.as_str()))),
        Literal::Number(text) if !text.contains('.') && !text.ends_with('L') => text
            .parse::<i32>()
            .ok()
            .map(|value| Item::Integer(i64::from(value))),
        Literal::Number(text) if !text.ends_with('L') => Decimal::parse(text).map(Item::Decimal),
        _ => None,
    }
}

fn literal_value(literal: &Literal, offset: usize) -> Result<Collection<'_>, EvalError> {
    Ok(match literal {
        Literal::Empty => Vec::new(),
        Literal::Bool(flag) => vec![Item::Boolean(*flag)],
        Literal::Str(text) => vec![Item::String(Cow::Borrowed(text.as_str()))],
        Literal::Number(text) => {
            if let Some(long) = text.strip_suffix('L') {
                match long.parse() {
                    Ok(value) => vec![Item::Integer(value)],
                    Err(_) => return err(format!("expected a long integer, found {text}"), offset),
                }
            } else if text.contains('.') {
                match Decimal::parse(text) {
                    Some(value) => vec![Item::Decimal(value)],
                    None => return err(format!("expected a decimal, found {text}"), offset),
                }
            } else {
                match text.parse::<i32>() {
                    Ok(value) => vec![Item::Integer(i64::from(value))],
                    Err(_) => {
                        return err(
                            format!("expected an integer within 32 bits, found {text}"),
                            offset,
                        )
                    }
                }
            }
        }
        Literal::DateTime(text) => match Temporal::parse(text, None) {
            Some(value) => vec![Item::Temporal(value)],
            None => {
                return err(
                    format!("expected a date, date-time or time, found @{text}"),
                    offset,
                )
            }
        },
        Literal::Quantity(number, unit) => match Decimal::parse(number.trim_end_matches('L')) {
            Some(value) => vec![Item::Quantity(value, Cow::Owned(unit.clone()))],
            None => return err(format!("expected a number, found {number}"), offset),
        },
    })
}

/// The children of `item` named `name` (a choice element by its base name or full JSON name).
pub(crate) fn children<'a>(item: &Item<'a>, name: &str, out: &mut Collection<'a>) {
    match item {
        Item::Object(object) => object_children(object, name, out),
        Item::Primitive(primitive, _) => {
            if let Some(companion) = &primitive.companion {
                object_children(companion, name, out);
            }
        }
        Item::TypeInfo(namespace, type_name) => match name {
            "namespace" => out.push(Item::String(Cow::Borrowed(namespace))),
            "name" => out.push(Item::String(Cow::Borrowed(type_name))),
            _ => {}
        },
        _ => {}
    }
}

/// [`children`] for a name of the expression, whose lookups it remembers.
fn named_children<'a>(item: &Item<'a>, name: &Name, out: &mut Collection<'a>) {
    named_children_each(item, name, &mut |child| out.push(child));
}

/// [`named_children`], handing each child to `out`.
fn named_children_each<'a>(item: &Item<'a>, name: &Name, out: &mut dyn FnMut(Item<'a>)) {
    let object = match item {
        Item::Object(object) => *object,
        Item::Primitive(primitive, _) => match &primitive.companion {
            Some(companion) => companion,
            None => return,
        },
        _ => {
            let mut found = Vec::new();
            children(item, name, &mut found);
            return found.into_iter().for_each(out);
        }
    };
    let slot = match name.cached(object.type_id) {
        Some(slot) => slot,
        None => {
            let slot = MemberSlot {
                type_id: object.type_id,
                found: find_member(object.type_def(), name),
            };
            name.remember(slot);
            slot
        }
    };
    if let Some((element, choice)) = slot.found {
        push_members(object, usize::from(element), choice, out);
    }
}

/// The element called `name` in `def`, and the choice when `name` is a typed JSON name.
fn find_member(def: &model::TypeDef, name: &str) -> Option<(u16, Option<u16>)> {
    // Choice elements go by their base name (`value`). A typed JSON name (`valueQuantity`)
    // is not FHIRPath, and the checked compile refuses it, but unchecked expressions written
    // that way (as many are) get the values of that type.
    match def.json_name(name) {
        Some(json_name) => {
            let is_base_name = def
                .elements
                .get(usize::from(json_name.element))
                .is_some_and(|element| element.name == name);
            Some((
                json_name.element,
                (!is_base_name).then_some(json_name.choice),
            ))
        }
        None => def
            .elements
            .iter()
            .position(|element| element.name == name)
            .and_then(|idx| u16::try_from(idx).ok())
            .map(|idx| (idx, None)),
    }
}

fn object_children<'a>(object: &'a Object, name: &str, out: &mut Collection<'a>) {
    if let Some((element, choice)) = find_member(object.type_def(), name) {
        push_members(object, usize::from(element), choice, &mut |child| {
            out.push(child)
        });
    }
}

/// Up to this many fields, an object's values of an element are found by scanning from the start.
const LINEAR_FIELDS: usize = 8;

fn push_members<'a>(
    object: &'a Object,
    element_idx: usize,
    choice: Option<u16>,
    out: &mut dyn FnMut(Item<'a>),
) {
    let Some(element) = object.type_def().elements.get(element_idx) else {
        return;
    };
    // Fields are sorted by element: in a long object (a patient's extensions, identifiers,
    // names and telecoms come before its birth date) its values are found by bisection.
    let fields = &object.fields;
    let start = if fields.len() > LINEAR_FIELDS {
        fields.partition_point(|field| usize::from(field.element) < element_idx)
    } else {
        0
    };
    for field in &fields[start..] {
        if usize::from(field.element) != element_idx
            || choice.is_some_and(|choice| choice != field.choice)
        {
            // Fields are sorted by element: past the element, there are no more of its values.
            if usize::from(field.element) > element_idx {
                break;
            }
            continue;
        }
        let Some(element_type) = element.types.get(usize::from(field.choice)) else {
            continue;
        };
        out(Item::from_value(&field.value, element_type.type_id));
    }
}

fn all_children<'a>(item: &Item<'a>, out: &mut Collection<'a>) {
    let object = match item {
        Item::Object(object) => *object,
        Item::Primitive(primitive, _) => match &primitive.companion {
            Some(companion) => companion,
            None => return,
        },
        _ => return,
    };
    let def = object.type_def();
    for field in &object.fields {
        let Some(element) = def.elements.get(usize::from(field.element)) else {
            continue;
        };
        let Some(element_type) = element.types.get(usize::from(field.choice)) else {
            continue;
        };
        out.push(Item::from_value(&field.value, element_type.type_id));
    }
}

/// The single item of a collection; an error for more than one.
pub(crate) fn single<'c, 'a>(
    items: &'c [Item<'a>],
    offset: usize,
) -> Result<Option<&'c Item<'a>>, EvalError> {
    match items {
        [] => Ok(None),
        [item] => Ok(Some(item)),
        _ => err(
            format!("expected a single item, found {}", items.len()),
            offset,
        ),
    }
}

fn singleton_integer(items: &[Item<'_>], offset: usize) -> Result<Option<i64>, EvalError> {
    match single(items, offset)?.map(Item::to_system) {
        None | Some(None) => Ok(None),
        Some(Some(System::Integer(value))) => Ok(Some(value)),
        Some(Some(_)) => err("expected an integer", offset),
    }
}

/// Singleton evaluation of collections as booleans: empty is `None`; one boolean is itself;
/// one other item is `true`; more than one is an error.
pub(crate) fn to_bool(items: &[Item<'_>], offset: usize) -> Result<Option<bool>, EvalError> {
    match single(items, offset)? {
        None => Ok(None),
        Some(item) => match item.to_system() {
            Some(System::Boolean(flag)) => Ok(Some(flag)),
            _ => Ok(Some(true)),
        },
    }
}

fn comparable_kinds(x: &System<'_>, y: &System<'_>) -> bool {
    matches!(
        (x, y),
        (
            System::Integer(_) | System::Decimal(_),
            System::Integer(_) | System::Decimal(_)
        ) | (System::String(_), System::String(_))
            | (System::Temporal(_), System::Temporal(_))
            | (System::Quantity(..), System::Quantity(..))
    )
}

/// `=` between two items: system values by value; FHIR objects by their content.
pub(crate) fn item_equals(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    match (a, b) {
        (Item::Object(x), Item::Object(y)) => Some(objects_equal(x, y)),
        _ => match (a.to_system(), b.to_system()) {
            (Some(x), Some(y)) => x.equals(&y),
            (None, None) => Some(false),
            _ => Some(false),
        },
    }
}

fn objects_equal(a: &Object, b: &Object) -> bool {
    a == b
        || (a.type_id == b.type_id
            && a.fields.len() == b.fields.len()
            && a.fields.iter().zip(&b.fields).all(|(x, y)| x == y))
}

/// True when both are the very same node of the tree, or equal system values.
fn same_item(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a, b) {
        (Item::Object(x), Item::Object(y)) => core::ptr::eq(*x, *y),
        (Item::Primitive(x, _), Item::Primitive(y, _)) => core::ptr::eq(*x, *y),
        _ => item_equals(a, b) == Some(true) && a.fhir_type().is_none() && b.fhir_type().is_none(),
    }
}

fn collections_equal(a: &[Item<'_>], b: &[Item<'_>]) -> Option<bool> {
    if a.len() != b.len() {
        return Some(false);
    }
    let mut res = Some(true);
    for (x, y) in a.iter().zip(b) {
        match item_equals(x, y) {
            Some(true) => {}
            Some(false) => return Some(false),
            None => res = None,
        }
    }
    res
}

fn item_equivalent(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a, b) {
        (Item::Object(x), Item::Object(y)) => objects_equal(x, y),
        _ => match (a.to_system(), b.to_system()) {
            (Some(x), Some(y)) => x.equivalent(&y),
            _ => false,
        },
    }
}

/// `~` on collections: the same size, and each item matched by a different item of the other.
fn collections_equivalent(a: &[Item<'_>], b: &[Item<'_>]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = alloc::vec![false; b.len()];
    a.iter().all(|x| {
        let partner = b
            .iter()
            .enumerate()
            .position(|(idx, y)| !used.get(idx).copied().unwrap_or(true) && item_equivalent(x, y));
        match partner.and_then(|idx| used.get_mut(idx)) {
            Some(slot) => {
                *slot = true;
                true
            }
            None => false,
        }
    })
}

pub(crate) fn distinct<'a>(items: impl Iterator<Item = Item<'a>>) -> Collection<'a> {
    let mut seen = Distinct::default();
    items.filter(|item| seen.insert(item)).collect()
}

/// The items seen so far, by a hash that equal items share, so that telling whether an item
/// is new compares it only with the few items of the same hash, not all of them.
#[derive(Default)]
pub(crate) struct Distinct<'a> {
    buckets: alloc::collections::BTreeMap<u64, Vec<Item<'a>>>,
    /// Nodes of the tree are the same only when they are the very same node ([`same_item`]),
    /// not when equal.
    by_identity: bool,
}

impl<'a> Distinct<'a> {
    /// The distinct items of `items`.
    pub(crate) fn of(items: &[Item<'a>]) -> Distinct<'a> {
        let mut res = Distinct::default();
        for item in items {
            res.insert(item);
        }
        res
    }

    /// An empty set whose nodes of the tree are told apart by identity.
    pub(crate) fn by_identity() -> Distinct<'a> {
        Distinct {
            by_identity: true,
            ..Distinct::default()
        }
    }

    fn hash(&self, item: &Item<'_>) -> u64 {
        match item {
            Item::Object(object) if self.by_identity => {
                core::ptr::from_ref::<Object>(object) as usize as u64
            }
            Item::Primitive(primitive, _) if self.by_identity => {
                core::ptr::from_ref(*primitive) as usize as u64
            }
            _ => equality_hash(item),
        }
    }

    fn same(&self, seen: &Item<'_>, item: &Item<'_>) -> bool {
        if self.by_identity {
            same_item(seen, item)
        } else {
            item_equals(seen, item) == Some(true)
        }
    }

    /// Adds the item unless an equal one was seen; answers whether it was new.
    pub(crate) fn insert(&mut self, item: &Item<'a>) -> bool {
        if self.contains(item) {
            return false;
        }
        let hash = self.hash(item);
        self.buckets.entry(hash).or_default().push(item.clone());
        true
    }

    /// True when an item equal to `item` was seen.
    pub(crate) fn contains(&self, item: &Item<'_>) -> bool {
        self.buckets
            .get(&self.hash(item))
            .is_some_and(|bucket| bucket.iter().any(|seen| self.same(seen, item)))
    }
}

/// FNV-1a, enough to spread values over buckets (collisions cost only comparisons).
struct Fnv(u64);

impl core::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A hash that items equal under FHIRPath `=` share: numbers by value (`1` and `1.0`), dates
/// by their instant and precision, objects by structure. Times and quantities (whose units
/// convert) share one hash per kind.
fn equality_hash(item: &Item<'_>) -> u64 {
    use core::hash::{Hash, Hasher};
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    match item.to_system() {
        Some(System::Boolean(flag)) => (1u8, flag).hash(&mut hasher),
        Some(System::Integer(value)) => {
            (2u8, Decimal::from_i64(value).equality_key()).hash(&mut hasher);
        }
        Some(System::Decimal(value)) => (2u8, value.equality_key()).hash(&mut hasher),
        Some(System::String(text)) => (3u8, text.as_ref()).hash(&mut hasher),
        Some(System::Temporal(value)) if value.kind != TemporalKind::Time => {
            (4u8, value.sort_key()).hash(&mut hasher);
        }
        Some(System::Temporal(_)) => 5u8.hash(&mut hasher),
        Some(System::Quantity(..)) => 6u8.hash(&mut hasher),
        None => match item {
            Item::Object(object) => (7u8, *object).hash(&mut hasher),
            _ => 8u8.hash(&mut hasher),
        },
    }
    hasher.finish()
}

fn type_argument(arg: &Expr, offset: usize) -> Result<TypeRef<'_>, EvalError> {
    let type_name = type_argument_name(arg, offset)?;
    // An unknown System type simply matches nothing; an unknown unqualified or FHIR type is
    // most likely a typo, reported as an error.
    if type_name.namespace != Some("System") && !known_type(type_name) {
        return err(format!("unknown type {}", type_name.name), offset);
    }
    Ok(type_name)
}

const SYSTEM_TYPES: &[&str] = &[
    "Boolean", "String", "Integer", "Long", "Decimal", "Date", "DateTime", "Time", "Quantity",
];

/// True for a FHIR type of the model or a system type.
pub(crate) fn known_type(type_name: TypeRef<'_>) -> bool {
    let fhir = || type_name.type_id.is_some();
    let system = || SYSTEM_TYPES.contains(&type_name.name);
    match type_name.namespace {
        Some("FHIR") => fhir(),
        Some("System") => system(),
        Some(_) => false,
        None => fhir() || system(),
    }
}

/// `as` and `ofType`: the item's own type, or a type derived from an abstract one
/// (`Resource`, `DomainResource`, `Element`, `BackboneElement`, `Quantity` for its profiles).
pub(crate) fn is_exact_type(item: &Item<'_>, type_name: TypeRef<'_>) -> bool {
    if let (Some(type_id), Some(target), None | Some("FHIR")) =
        (item.fhir_type(), type_name.type_id, type_name.namespace)
    {
        // No type derives from a concrete resource type (a test of the model holds it):
        // `ofType(Observation)` over a Bundle's entries needs no walk through the others'
        // bases.
        if model::type_def(target).is_concrete_resource() {
            return type_id == target;
        }
    }
    let exact = match item.fhir_type() {
        Some(type_id) => {
            matches!(type_name.namespace, None | Some("FHIR"))
                && (type_name.type_id == Some(type_id)
                    || model::type_def(type_id).name == type_name.name)
        }
        None => {
            matches!(type_name.namespace, None | Some("System"))
                && item.type_name().1 == type_name.name
        }
    };
    if exact {
        return true;
    }
    let abstract_target = matches!(
        type_name.name,
        "Resource" | "DomainResource" | "Element" | "BackboneElement"
    ) || item
        .fhir_type()
        .is_some_and(|id| model::type_def(id).kind != model::TypeKind::Primitive);
    abstract_target && type_name.namespace != Some("System") && is_type(item, type_name)
}

fn type_argument_name(arg: &Expr, offset: usize) -> Result<TypeRef<'_>, EvalError> {
    match arg {
        Expr::Ident(name, _) => Ok(TypeRef {
            namespace: None,
            name,
            type_id: name.type_id,
        }),
        Expr::Member(namespace, name, _) => match namespace.as_ref() {
            Expr::Ident(namespace, _) => Ok(TypeRef {
                namespace: Some(namespace),
                name,
                type_id: name.type_id,
            }),
            _ => err("expected a type name", offset),
        },
        _ => err("expected a type name", offset),
    }
}

/// `item is type_name`.
pub(crate) fn is_type(item: &Item<'_>, type_name: TypeRef<'_>) -> bool {
    let fhir = || {
        type_name
            .type_id
            .is_some_and(|type_id| item.is_fhir_type_id(type_id))
    };
    let system = || {
        let (namespace, name) = item.type_name();
        namespace == "System" && name == type_name.name
    };
    match type_name.namespace {
        Some("System") => system(),
        Some("FHIR") => fhir(),
        Some(_) => false,
        None => fhir() || system(),
    }
}

fn member_of(item: &Item<'_>, url: &str) -> Option<bool> {
    let value_set = model::VALUE_SETS
        .iter()
        .find(|value_set| value_set.url == url)?;
    let codes = value_set.codes?;
    let has = |system: Option<&str>, code: &str| {
        codes.iter().any(|(sys, c)| {
            *c == code
                && system.is_none_or(|system| {
                    model::CODE_SYSTEMS.get(usize::from(*sys)) == Some(&system)
                })
        })
    };
    match item.to_system() {
        Some(System::String(code)) => Some(has(None, &code)),
        _ => {
            let mut codings = Vec::new();
            if item.is_fhir_type("CodeableConcept") {
                children(item, "coding", &mut codings);
            } else if item.is_fhir_type("Coding") {
                codings.push(item.clone());
            } else {
                return None;
            }
            Some(codings.iter().any(|coding| {
                let text = |name: &str| {
                    let mut values = Vec::new();
                    children(coding, name, &mut values);
                    values
                        .first()
                        .and_then(Item::to_system)
                        .map(|value| value.to_text())
                };
                text("code").is_some_and(|code| has(text("system").as_deref(), &code))
            }))
        }
    }
}

/// The narrative rules of R4 (txt-1, txt-2): no active content, and some text or an image.
fn html_checks(html: &str) -> bool {
    let lower = html.to_lowercase();
    let forbidden = [
        "<script", "<form", "<iframe", "<object", "<embed", "<applet", "<base", "<link", "<meta",
        " on",
    ];
    let has_content = lower.contains("<img")
        || lower.split('<').any(|part| {
            part.split_once('>')
                .is_some_and(|(_, text)| !text.trim().is_empty())
        });
    !forbidden.iter().any(|pattern| {
        if *pattern == " on" {
            lower.split('<').any(|tag| {
                tag.split_once('>').is_some_and(|(inside, _)| {
                    inside
                        .split_whitespace()
                        .skip(1)
                        .any(|attr| attr.starts_with("on"))
                })
            })
        } else {
            lower.contains(pattern)
        }
    }) && has_content
}

fn arithmetic<'a>(
    op: BinaryOp,
    x: System<'a>,
    y: System<'a>,
    offset: usize,
) -> Result<Collection<'a>, EvalError> {
    let decimal = |value: &System<'_>| match value {
        System::Integer(value) => Some(Decimal::from_i64(*value)),
        System::Decimal(value) => Some(*value),
        _ => None,
    };
    let wrap = |value: Option<Decimal>| Ok(value.map(Item::Decimal).into_iter().collect());
    match (op, &x, &y) {
        (BinaryOp::Add, System::String(a), System::String(b)) => {
            Ok(vec![Item::String(Cow::Owned(format!("{a}{b}")))])
        }
        (_, System::Integer(a), System::Integer(b)) => {
            let (a, b) = (*a, *b);
            let value = match op {
                BinaryOp::Add => a.checked_add(b),
                BinaryOp::Sub => a.checked_sub(b),
                BinaryOp::Mul => a.checked_mul(b),
                BinaryOp::Div => {
                    return wrap(Decimal::from_i64(a).checked_div(Decimal::from_i64(b)))
                }
                BinaryOp::IntDiv => a.checked_div(b),
                BinaryOp::Mod => a.checked_rem(b),
                _ => None,
            };
            Ok(value.map(Item::Integer).into_iter().collect())
        }
        (_, System::Integer(_) | System::Decimal(_), System::Integer(_) | System::Decimal(_)) => {
            let (Some(a), Some(b)) = (decimal(&x), decimal(&y)) else {
                return Ok(Vec::new());
            };
            match op {
                BinaryOp::Add => wrap(a.checked_add(b)),
                BinaryOp::Sub => wrap(a.checked_sub(b)),
                BinaryOp::Mul => wrap(a.checked_mul(b)),
                BinaryOp::Div => wrap(a.checked_div(b)),
                BinaryOp::IntDiv => Ok(a
                    .int_div(b)
                    .and_then(|v| v.to_i64())
                    .map(Item::Integer)
                    .into_iter()
                    .collect()),
                BinaryOp::Mod => wrap(a.checked_rem(b)),
                _ => Ok(Vec::new()),
            }
        }
        (BinaryOp::Add | BinaryOp::Sub, System::Temporal(date), System::Quantity(amount, unit)) => {
            let amount = if op == BinaryOp::Sub {
                amount.negated()
            } else {
                *amount
            };
            match add_duration(date, amount, unit) {
                Some(value) => Ok(vec![Item::Temporal(value)]),
                None => err(
                    format!("expected a calendar duration that keeps the date within the years 1 to 9999, found '{unit}'"),
                    offset,
                ),
            }
        }
        (
            BinaryOp::Add | BinaryOp::Sub,
            System::Quantity(a, unit_a),
            System::Quantity(b, unit_b),
        ) => {
            let Some(b) = ucum::convert(*b, unit_b, unit_a) else {
                return Ok(Vec::new());
            };
            let value = if op == BinaryOp::Add {
                a.checked_add(b)
            } else {
                a.checked_sub(b)
            };
            Ok(value
                .map(|value| Item::Quantity(value, unit_a.clone()))
                .into_iter()
                .collect())
        }
        (
            BinaryOp::Mul | BinaryOp::Div,
            System::Quantity(a, unit_a),
            System::Quantity(b, unit_b),
        ) => Ok(ucum::multiply(*a, unit_a, *b, unit_b, op == BinaryOp::Div)
            .map(|(value, unit)| Item::Quantity(value, Cow::Owned(unit)))
            .into_iter()
            .collect()),
        (
            BinaryOp::Mul | BinaryOp::Div,
            System::Quantity(a, unit),
            System::Integer(_) | System::Decimal(_),
        ) => {
            let Some(b) = decimal(&y) else {
                return Ok(Vec::new());
            };
            let value = if op == BinaryOp::Mul {
                a.checked_mul(b)
            } else {
                a.checked_div(b)
            };
            Ok(value
                .map(|value| Item::Quantity(value, unit.clone()))
                .into_iter()
                .collect())
        }
        (BinaryOp::Mul, System::Integer(_) | System::Decimal(_), System::Quantity(b, unit)) => {
            let Some(a) = decimal(&x) else {
                return Ok(Vec::new());
            };
            Ok(a.checked_mul(*b)
                .map(|value| Item::Quantity(value, unit.clone()))
                .into_iter()
                .collect())
        }
        _ => err(
            format!("expected operands that {} applies to", op_name(op)),
            offset,
        ),
    }
}

fn op_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "'+'",
        BinaryOp::Sub => "'-'",
        BinaryOp::Mul => "'*'",
        BinaryOp::Div => "'/'",
        BinaryOp::IntDiv => "'div'",
        BinaryOp::Mod => "'mod'",
        _ => "the operator",
    }
}

/// Adds a calendar duration (or a UCUM time quantity) to a date, date-time or time.
fn add_duration(date: &Temporal, amount: Decimal, unit: &str) -> Option<Temporal> {
    // Whole units only: the official suite adds `0.1 's'` as nothing (testPlusDate19).
    let whole = amount.truncate().to_i64()?;
    match unit {
        // UCUM 'a' and 'mo' are fixed lengths of time, not calendar years and months, so they
        // do not add to dates.
        "year" | "years" => date.add_months(whole.checked_mul(12)?),
        "month" | "months" => date.add_months(whole),
        "week" | "weeks" | "wk" => date.add_days(whole.checked_mul(7)?),
        "day" | "days" | "d" => date.add_days(whole),
        "hour" | "hours" | "h" => date.add_minutes(whole.checked_mul(60)?),
        "minute" | "minutes" | "min" => date.add_minutes(whole),
        "second" | "seconds" | "s" => date.add_millis(whole.checked_mul(1000)?),
        "millisecond" | "milliseconds" | "ms" => date.add_millis(whole),
        _ => None,
    }
}

//! FHIRPath (N1, 2.0.0, with the FHIR functions of R4 §2.3): compile an expression once,
//! evaluate it over many resources.
//!
//! ```
//! use hearth_engine::{fhirpath, json::fhir::parse_resource};
//! let patient = parse_resource(br#"{"resourceType":"Patient","name":[{"use":"official","family":"Chalmers"}]}"#)?;
//! let expression = fhirpath::compile("Patient.name.where(use = 'official').family")?;
//! let result = expression.evaluate(&patient, &fhirpath::Options::default())?;
//! assert_eq!(fhirpath::to_json(&result), r#"["Chalmers"]"#);
//! # Ok::<(), hearth_engine::Error>(())
//! ```
//!
//! **Invariant:** evaluation does no IO and reads no clock: `resolve()` asks the caller's
//! [`Resolver`], and `now()` answers from [`Options::now`].

mod check;
mod datetime;
mod decimal;
mod eval;
mod functions;
mod lexer;
mod memo;
mod parser;
mod projection;
mod route;
mod ucum;
mod value;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use datetime::{Temporal, TemporalKind};
pub use decimal::Decimal;
pub use eval::{Collection, Env, Resolver};
pub use value::{Item, System};

/// A quantity in its dimension's base unit, with the dimension's name (`mass`, `temperature`;
/// a unit outside the conversion table is its own dimension): the form search compares.
pub fn ucum_normal(value: Decimal, unit: &str) -> Option<(Decimal, &str)> {
    ucum::normal(value, unit)
}

use crate::json::write::{write_object, Style};
use crate::model::{self, TypeId};
use crate::outcome::push_json_string;
use crate::resource::{Object, PrimitiveValue};

/// A syntax error, at a character offset of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was expected and what was found.
    pub message: String,
    /// Character offset (0-based) in the expression.
    pub offset: usize,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>, offset: usize) -> Self {
        ParseError {
            message: message.into(),
            offset,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

/// A failure while evaluating (for example a single item expected, several found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// What went wrong.
    pub message: String,
    /// Character offset (0-based) of the sub-expression that failed.
    pub offset: usize,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

/// A compiled expression.
#[derive(Debug)]
pub struct Expression {
    ast: parser::Expr,
    /// The regular expressions of its literal patterns (`matches('[0-9]+')`), compiled once.
    regexes: Vec<(String, regex_automata::meta::Regex)>,
    /// The nodes whose result is kept for the rest of an evaluation (see `memo`), by address
    /// (the tree does not move or change once compiled).
    memo_nodes: Vec<(usize, usize)>,
    /// Whether it calls `now()`, `today()` or `timeOfDay()`.
    clock: bool,
}

/// Compiles an expression.
///
/// # Errors
/// [`crate::Error::FhirPathSyntax`] with the offset of the problem.
pub fn compile(text: &str) -> Result<Expression, crate::Error> {
    let ast = fold(parser::parse(text).map_err(crate::Error::FhirPathSyntax)?);
    Ok(Expression::from_ast(ast))
}

impl Expression {
    fn from_ast(ast: parser::Expr) -> Expression {
        let mut regexes = Vec::new();
        literal_regexes(&ast, &mut regexes);
        let memo_nodes = memo::memo_nodes(&ast);
        let clock = uses_clock(&ast);
        Expression {
            ast,
            regexes,
            memo_nodes,
            clock,
        }
    }

    /// This expression for evaluating at the root of a resource of type `root`, without the
    /// branches of its unions that can only be empty there: paths that start at another
    /// concrete resource type (`AllergyIntolerance.patient` in a search parameter's
    /// `AllergyIntolerance.patient | Observation.subject | ...`, on an Observation) and keep
    /// an empty input empty, neither evaluating nor checking anything that could fail. `None`
    /// when no branch goes, or `root` is not a concrete resource type. The answers are the
    /// same, and so are the errors (but for the limit on evaluation steps, which a pruned
    /// expression reaches later).
    pub fn for_root_type(&self, root: TypeId) -> Option<Expression> {
        if !model::type_def(root).is_concrete_resource() {
            return None;
        }
        let pruned = prune_for_root(&self.ast, root)?;
        Some(Expression::from_ast(
            pruned.unwrap_or(parser::Expr::Literal(parser::Literal::Empty, 0)),
        ))
    }
}

/// [`Expression::for_root_type`] on `expr`: `None` when unchanged, `Some(None)` when it can
/// only be empty, `Some(Some(expr))` what is left.
fn prune_for_root(expr: &parser::Expr, root: TypeId) -> Option<Option<parser::Expr>> {
    use alloc::boxed::Box;
    use parser::{BinaryOp, Expr, Literal};
    if let Expr::Binary(BinaryOp::Union, left, right, offset) = expr {
        let (pruned_left, pruned_right) = (prune_for_root(left, root), prune_for_root(right, root));
        if pruned_left.is_none() && pruned_right.is_none() {
            return None;
        }
        let left = pruned_left.unwrap_or_else(|| Some((**left).clone()));
        let right = pruned_right.unwrap_or_else(|| Some((**right).clone()));
        return Some(match (left, right) {
            (None, None) => None,
            // A union also drops repeats: the side left is still a union, with `{}`.
            (left, right) => Some(Expr::Binary(
                BinaryOp::Union,
                Box::new(left.unwrap_or(Expr::Literal(Literal::Empty, *offset))),
                Box::new(right.unwrap_or(Expr::Literal(Literal::Empty, *offset))),
                *offset,
            )),
        });
    }
    empty_at_root(expr, root, 0).then_some(None)
}

/// How long a path [`empty_at_root`] follows (well within the evaluator's nesting limit).
const PRUNE_DEPTH: usize = 64;

/// Whether `expr`, evaluated on a resource of type `root`, starts at another concrete
/// resource type (which matches nothing there: no type derives from a concrete resource
/// type, and no element is named like one) and every step after keeps an empty input empty
/// without evaluating or checking anything that could fail on it (arguments, their number, a
/// type name).
fn empty_at_root(expr: &parser::Expr, root: TypeId, depth: usize) -> bool {
    use parser::Expr;
    if depth > PRUNE_DEPTH {
        return false;
    }
    match expr {
        Expr::Ident(name, _) => {
            name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.type_id.is_some_and(|type_id| {
                    type_id != root && model::type_def(type_id).is_concrete_resource()
                })
        }
        Expr::Member(target, _, _) => empty_at_root(target, root, depth + 1),
        // The operators' type names are checked when parsed.
        Expr::TypeTest(target, _, _, _) => empty_at_root(target, root, depth + 1),
        Expr::Call(Some(target), name, args, _) => {
            // Functions whose answer on an empty input is empty without evaluating their
            // arguments, given as many as they take (checked when evaluated, even on an empty
            // input); a type argument a FHIR type name known to the model.
            let fits = match name.as_str() {
                "where" | "select" | "repeat" => args.len() == 1,
                "ofType" | "as" | "is" => matches!(
                    args.as_slice(),
                    [Expr::Ident(type_name, _)] if type_name.type_id.is_some()
                ),
                "resolve" | "first" | "last" | "tail" | "distinct" | "children" | "descendants" => {
                    args.is_empty()
                }
                _ => false,
            };
            fits && empty_at_root(target, root, depth + 1)
        }
        _ => false,
    }
}

impl Clone for Expression {
    /// A copy whose kept-result nodes are its own (they are known by address).
    fn clone(&self) -> Expression {
        let ast = self.ast.clone();
        let memo_nodes = memo::memo_nodes(&ast);
        Expression {
            ast,
            regexes: self.regexes.clone(),
            memo_nodes,
            clock: self.clock,
        }
    }
}

/// True when `expr` calls `now()`, `today()` or `timeOfDay()`.
fn uses_clock(expr: &parser::Expr) -> bool {
    use parser::Expr;
    match expr {
        Expr::Call(target, name, args, _) => {
            matches!(name.as_str(), "now" | "today" | "timeOfDay")
                || target.as_deref().is_some_and(uses_clock)
                || args.iter().any(uses_clock)
        }
        Expr::Member(target, _, _)
        | Expr::Negate(target, _, _)
        | Expr::TypeTest(target, _, _, _) => uses_clock(target),
        Expr::Index(a, b, _) | Expr::Binary(_, a, b, _) => uses_clock(a) || uses_clock(b),
        _ => false,
    }
}

/// Compiles the literal patterns of `matches()`, `matchesFull()` and `replaceMatches()`. A
/// pattern that does not compile is left for evaluation to report, with its offset.
fn literal_regexes(expr: &parser::Expr, out: &mut Vec<(String, regex_automata::meta::Regex)>) {
    use parser::{Expr, Literal};
    match expr {
        Expr::Call(target, name, args, _) => {
            if let (
                "matches" | "matchesFull" | "replaceMatches",
                Some(Expr::Literal(Literal::Str(pattern), _)),
            ) = (name.as_str(), args.first())
            {
                let key = functions::regex_key(name, pattern.clone());
                let known = out.iter().any(|(cached, _)| *cached == key);
                if !known && !pattern.is_empty() {
                    if let Ok(regex) = functions::compile_regex(&key, 0) {
                        out.push((key, regex));
                    }
                }
            }
            if let Some(target) = target {
                literal_regexes(target, out);
            }
            for arg in args {
                literal_regexes(arg, out);
            }
        }
        Expr::Member(target, _, _)
        | Expr::Negate(target, _, _)
        | Expr::TypeTest(target, _, _, _) => literal_regexes(target, out),
        Expr::Index(a, b, _) | Expr::Binary(_, a, b, _) => {
            literal_regexes(a, out);
            literal_regexes(b, out);
        }
        _ => {}
    }
}

/// Constant folding: an operation on literals only (`2 * 3`, `'a' + 'b'`, `-5`, `@2014 + 1 year`)
/// is computed once at compile time. Whatever fails or has no literal form stays as written, so
/// errors keep their offsets.
fn fold(expr: parser::Expr) -> parser::Expr {
    use alloc::boxed::Box;
    use parser::Expr;
    match expr {
        Expr::Binary(op, left, right, offset) => {
            let (left, right) = (fold(*left), fold(*right));
            let both_literal =
                matches!(left, Expr::Literal(..)) && matches!(right, Expr::Literal(..));
            let folded = Expr::Binary(op, Box::new(left), Box::new(right), offset);
            match both_literal.then(|| folded_literal(&folded)).flatten() {
                Some(literal) => Expr::Literal(literal, offset),
                None => folded,
            }
        }
        Expr::Negate(operand, negate, offset) => {
            let operand = fold(*operand);
            let literal_operand = matches!(operand, Expr::Literal(..));
            let folded = Expr::Negate(Box::new(operand), negate, offset);
            match literal_operand.then(|| folded_literal(&folded)).flatten() {
                Some(literal) => Expr::Literal(literal, offset),
                None => folded,
            }
        }
        Expr::Member(target, name, offset) => Expr::Member(Box::new(fold(*target)), name, offset),
        Expr::Call(target, name, args, offset) => Expr::Call(
            target.map(|target| Box::new(fold(*target))),
            name,
            args.into_iter().map(fold).collect(),
            offset,
        ),
        Expr::Index(target, index, offset) => {
            Expr::Index(Box::new(fold(*target)), Box::new(fold(*index)), offset)
        }
        Expr::TypeTest(target, is, type_name, offset) => {
            Expr::TypeTest(Box::new(fold(*target)), is, type_name, offset)
        }
        other => other,
    }
}

/// The literal an operation on literals evaluates to, when it has one.
fn folded_literal(expr: &parser::Expr) -> Option<parser::Literal> {
    use parser::Literal;
    let env = Env {
        resource: None,
        root_resource: None,
        context: &[],
        variables: &[],
        resolver: None,
        now: None,
        lenient_as: false,
        projection: false,
        regexes: &[],
        memo_nodes: &[],
    };
    let mut evaluator = eval::Evaluator::new(&env);
    let result = evaluator.evaluate(expr, &[]).ok()?;
    let [item] = result.as_slice() else {
        return None;
    };
    match item {
        Item::Boolean(flag) => Some(Literal::Bool(*flag)),
        Item::Integer(value) if i32::try_from(*value).is_ok() => {
            Some(Literal::Number(alloc::format!("{value}")))
        }
        // A decimal keeps its type only when written with a point.
        Item::Decimal(value) if value.to_text().contains('.') => {
            Some(Literal::Number(value.to_text()))
        }
        Item::String(text) => Some(Literal::Str(String::from(text.as_ref()))),
        Item::Temporal(value) => Some(Literal::DateTime(match value.kind {
            TemporalKind::Time => alloc::format!("T{}", value.to_text()),
            _ => value.to_text(),
        })),
        _ => None,
    }
}

/// Compiles an expression for inputs of a known resource type, checking it against the R4
/// model: navigation to an element the type does not have (`Patient.name.given1`), a path that
/// starts from another resource type, a choice element named with its type
/// (`Observation.valueQuantity`, which FHIRPath spells `Observation.value.ofType(Quantity)`) and
/// order-dependent functions on unordered collections are errors here, before any evaluation.
///
/// # Errors
/// [`crate::Error::FhirPathSyntax`] for syntax and semantic errors, with their offset.
pub fn compile_for_type(text: &str, resource_type: &str) -> Result<Expression, crate::Error> {
    let expression = compile(text)?;
    let type_id = crate::model::type_by_name(resource_type).ok_or_else(|| {
        crate::Error::FhirPathSyntax(ParseError::new(
            alloc::format!("unknown resource type {resource_type}"),
            0,
        ))
    })?;
    let shape = check::Shape::resource(type_id);
    check::check(&expression.ast, &shape, &shape, &shape).map_err(crate::Error::FhirPathSyntax)?;
    Ok(expression)
}

/// What an evaluation may use besides the resource.
#[derive(Default)]
pub struct Options<'a, 'e> {
    /// User variables (`%name`), without the `%`.
    pub variables: &'e [(String, Collection<'a>)],
    /// Resolves references for `resolve()`.
    pub resolver: Option<&'e dyn Resolver<'a>>,
    /// The instant `now()`, `today()` and `timeOfDay()` answer with.
    pub now: Option<Temporal>,
    /// `%rootResource` when it differs from `%resource` (a contained resource's container).
    pub root_resource: Option<&'a Object>,
    /// Let the `as()` function filter a collection of several items, as `ofType()` does,
    /// instead of failing. FHIRPath makes it an error, but R4's own invariants (dom-3) rely on
    /// the filtering; validation turns this on to evaluate them as their authors meant.
    pub lenient_as: bool,
    /// The resource is a projection holding only the names of [`Expression::projection`]:
    /// evaluation fails where the result would depend on what was left out (FHIR objects
    /// compared with each other, or in the result), so that the caller evaluates on the
    /// whole resource instead.
    pub projection: bool,
}

impl Expression {
    /// The JSON property names evaluation can read, sorted; `None` when it may read anything
    /// (`children()`, `descendants()`, `memberOf()`). A host holding a resource as an object
    /// hands over only these (an object keeping only them at every level: its projection),
    /// to be read with [`crate::json::fhir::parse_projection`] and evaluated with
    /// [`Options::projection`].
    pub fn projection(&self) -> Option<Vec<String>> {
        projection::names(&self.ast)
    }

    /// The JSON properties evaluation can read on a resource of type `resource_type`, as a
    /// tree (`resourceType,name(use,_use,given,_given)`: each name, then what may be read
    /// inside its values in parentheses): a host keeps, in each object it reaches, only the
    /// properties its node lists, and evaluates on that as on a [`Expression::projection`].
    /// `None` when the tree cannot be known; [`Expression::projection`] may still apply.
    pub fn projection_shape(&self, resource_type: &str) -> Option<String> {
        projection::shape(&self.ast, resource_type)
    }

    /// The JSON properties a plain path follows through a resource of type `resource_type`
    /// to primitive values (`name+.given+:s` for `Patient.name.given`: `+` where an array is
    /// held, then how the values are written), for a host holding the resource as objects to
    /// follow itself: the values found are the results, when every property on the way keeps
    /// the FHIR JSON rules. `None` for other expressions, or where the route would read less
    /// than [`Expression::projection_shape`] does.
    pub fn projection_route(&self, resource_type: &str) -> Option<String> {
        route::route(&self.ast, resource_type)
    }

    /// True when the expression calls `now()`, `today()` or `timeOfDay()`, so that the caller
    /// reads its clock only when needed.
    pub fn uses_clock(&self) -> bool {
        self.clock
    }

    /// Evaluates the expression with `resource` as `%resource`, `%context` and the input.
    ///
    /// # Errors
    /// [`crate::Error::FhirPathEval`] with the offset of the failing sub-expression.
    pub fn evaluate<'a>(
        &'a self,
        resource: &'a Object,
        options: &Options<'a, '_>,
    ) -> Result<Collection<'a>, crate::Error> {
        let root = Item::Object(resource);
        self.evaluate_items(core::slice::from_ref(&root), Some(root.clone()), options)
    }

    /// [`Expression::evaluate`], handing each result to `sink` as it is found instead of
    /// collecting them (a caller that writes results out needs no collection). On an error,
    /// the sink may have seen part of the result.
    ///
    /// # Errors
    /// [`crate::Error::FhirPathEval`] with the offset of the failing sub-expression.
    pub fn evaluate_streaming<'a>(
        &'a self,
        resource: &'a Object,
        options: &Options<'a, '_>,
        sink: &mut dyn FnMut(Item<'a>),
    ) -> Result<(), crate::Error> {
        self.stream(resource, options, false, sink)
    }

    /// [`Expression::evaluate_streaming`] on a projection ([`Options::projection`]) where the
    /// objects among the results are the caller's to answer for: it wrote them whole (or it
    /// checks, by [`Object::paths_to`], that it did). They are handed to `sink` instead of
    /// refused.
    ///
    /// # Errors
    /// As [`Expression::evaluate_streaming`].
    pub fn evaluate_streaming_whole_objects<'a>(
        &'a self,
        resource: &'a Object,
        options: &Options<'a, '_>,
        sink: &mut dyn FnMut(Item<'a>),
    ) -> Result<(), crate::Error> {
        self.stream(resource, options, true, sink)
    }

    fn stream<'a>(
        &'a self,
        resource: &'a Object,
        options: &Options<'a, '_>,
        whole_objects: bool,
        sink: &mut dyn FnMut(Item<'a>),
    ) -> Result<(), crate::Error> {
        let root = Item::Object(resource);
        if !options.projection || whole_objects {
            if let Some(res) = eval::stream_path(&self.ast, &root, sink) {
                return res.map_err(crate::Error::FhirPathEval);
            }
            let env = self.env(core::slice::from_ref(&root), Some(root.clone()), options);
            return eval::Evaluator::new(&env)
                .evaluate_streaming(&self.ast, &root, sink)
                .map_err(crate::Error::FhirPathEval);
        }
        // An object in the result would be written out without what the projection left out.
        let mut whole = false;
        let mut keep = |item: Item<'a>| {
            whole |= matches!(item, Item::Object(_));
            if !whole {
                sink(item);
            }
        };
        match eval::stream_path(&self.ast, &root, &mut keep) {
            Some(res) => res.map_err(crate::Error::FhirPathEval)?,
            None => {
                let env = self.env(core::slice::from_ref(&root), Some(root.clone()), options);
                eval::Evaluator::new(&env)
                    .evaluate_streaming(&self.ast, &root, &mut keep)
                    .map_err(crate::Error::FhirPathEval)?;
            }
        }
        if whole {
            return Err(crate::Error::FhirPathEval(eval::needs_whole(0)));
        }
        Ok(())
    }

    fn env<'a, 'e>(
        &'e self,
        input: &'e [Item<'a>],
        resource: Option<Item<'a>>,
        options: &Options<'a, 'e>,
    ) -> Env<'a, 'e> {
        Env {
            root_resource: options
                .root_resource
                .map(Item::Object)
                .or_else(|| resource.clone()),
            resource,
            context: input,
            variables: options.variables,
            resolver: options.resolver,
            lenient_as: options.lenient_as,
            projection: options.projection,
            now: options.now,
            regexes: &self.regexes,
            memo_nodes: &self.memo_nodes,
        }
    }

    /// Evaluates the expression on any input collection, with `resource` as `%resource`.
    ///
    /// # Errors
    /// [`crate::Error::FhirPathEval`] with the offset of the failing sub-expression.
    pub fn evaluate_items<'a>(
        &'a self,
        input: &[Item<'a>],
        resource: Option<Item<'a>>,
        options: &Options<'a, '_>,
    ) -> Result<Collection<'a>, crate::Error> {
        let mut res = Vec::new();
        let walked = match input {
            [item] => eval::stream_path(&self.ast, item, &mut |result| res.push(result)),
            _ => None,
        };
        let res = match walked {
            Some(walked) => walked.map(|()| res),
            None => {
                let env = self.env(input, resource, options);
                eval::Evaluator::new(&env).evaluate(&self.ast, input)
            }
        }
        .map_err(crate::Error::FhirPathEval)?;
        if options.projection && res.iter().any(|item| matches!(item, Item::Object(_))) {
            return Err(crate::Error::FhirPathEval(eval::needs_whole(0)));
        }
        Ok(res)
    }
}

/// A collection as a JSON array: FHIR primitives and system values as JSON values (dates and
/// times as strings, quantities as `{"value", "unit"}`), FHIR objects as FHIR JSON.
pub fn to_json(items: &[Item<'_>]) -> String {
    let mut res = String::new();
    write_json(&mut res, items);
    res
}

/// [`to_json`], appended to `res`.
pub fn write_json(res: &mut String, items: &[Item<'_>]) {
    res.push('[');
    for (idx, item) in items.iter().enumerate() {
        if idx > 0 {
            res.push(',');
        }
        write_item(res, item);
    }
    res.push(']');
}

/// One item as JSON, as [`to_json`] writes it.
pub fn write_item(res: &mut String, item: &Item<'_>) {
    match item {
        Item::Object(object) => res.push_str(&write_object(object, Style::Compact)),
        Item::Primitive(primitive, _) => match &primitive.value {
            Some(PrimitiveValue::Boolean(flag)) => {
                res.push_str(if *flag { "true" } else { "false" })
            }
            Some(PrimitiveValue::Number(text)) => res.push_str(text),
            Some(PrimitiveValue::String(text)) => push_json_string(res, text),
            None => res.push_str("null"),
        },
        Item::Boolean(flag) => res.push_str(if *flag { "true" } else { "false" }),
        Item::Integer(value) => res.push_str(&alloc::format!("{value}")),
        Item::Decimal(value) => res.push_str(&value.to_text()),
        Item::String(text) => push_json_string(res, text),
        Item::Temporal(value) => push_json_string(res, &value.to_text()),
        Item::Quantity(value, unit) => {
            res.push_str("{\"value\":");
            res.push_str(&value.to_text());
            res.push_str(",\"unit\":");
            push_json_string(res, unit);
            res.push('}');
        }
        Item::TypeInfo(namespace, name) => {
            res.push_str("{\"namespace\":");
            push_json_string(res, namespace);
            res.push_str(",\"name\":");
            push_json_string(res, name);
            res.push('}');
        }
    }
}

/// Every item's type and text, as the FHIRPath test suite states expected outputs:
/// `("date", "1974-12-25")`, `("integer", "3")`, `("Quantity", "5.5 'mg'")`.
pub fn describe(items: &[Item<'_>]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|item| {
            let (namespace, name) = item.type_name();
            let type_name = if namespace == "System" {
                String::from(name).to_lowercase()
            } else {
                String::from(name)
            };
            let type_name = if type_name == "quantity" {
                String::from("Quantity")
            } else {
                type_name
            };
            let type_name = if type_name == "datetime" {
                String::from("dateTime")
            } else {
                type_name
            };
            let text = match item {
                Item::Object(object) => write_object(object, Style::Compact),
                _ => item
                    .to_system()
                    .map(|value| value.to_text())
                    .unwrap_or_default(),
            };
            (type_name, text)
        })
        .collect::<Vec<_>>()
}

/// A value given to an expression from outside: a system value or a resource.
#[derive(Debug, Clone)]
enum OwnedValue {
    Boolean(bool),
    Integer(i64),
    Decimal(Decimal),
    String(String),
    Resource(Object),
}

/// User variables (`%name`) read from JSON, owned so that evaluations can borrow them.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    entries: Vec<(String, Vec<OwnedValue>)>,
}

impl Variables {
    /// Reads variables from a JSON object: `{"name": value or [values]}`, where a value is a
    /// string, number, boolean, `null` (empty) or a FHIR resource.
    ///
    /// # Errors
    /// [`crate::Error::Json`] for bad JSON; [`crate::Error::FhirPathEval`] for a value of
    /// another kind; [`crate::Error::Resource`] for a resource that does not read.
    pub fn from_json(bytes: &[u8]) -> Result<Variables, crate::Error> {
        use crate::json::reader::{self, Limits, Value as Json};
        let root = reader::parse(bytes, Limits::default())?;
        let Json::Object(members) = root.value else {
            return Err(crate::Error::FhirPathEval(EvalError {
                message: String::from("expected the variables as a JSON object"),
                offset: 0,
            }));
        };
        let mut entries = Vec::new();
        for member in members {
            let values = match member.node.value {
                Json::Array(items) => items,
                _ => alloc::vec![member.node],
            };
            let mut owned = Vec::new();
            for node in values {
                let start = node.offset;
                owned.push(match node.value {
                    Json::Null => continue,
                    Json::Bool(flag) => OwnedValue::Boolean(flag),
                    Json::String(text) => OwnedValue::String(text),
                    Json::Number(text)
                        if !text.contains(['.', 'e', 'E']) && text.parse::<i64>().is_ok() =>
                    {
                        OwnedValue::Integer(text.parse().unwrap_or_default())
                    }
                    Json::Number(text) => match Decimal::parse_json(&text) {
                        Some(value) => OwnedValue::Decimal(value),
                        None => {
                            return Err(crate::Error::FhirPathEval(EvalError {
                                message: alloc::format!(
                                    "expected a decimal for %{}, found {text}",
                                    member.key
                                ),
                                offset: 0,
                            }))
                        }
                    },
                    Json::Object(_) => {
                        let end = find_value_end(bytes, start);
                        let slice = bytes.get(start..end).unwrap_or_default();
                        OwnedValue::Resource(crate::json::fhir::parse_resource(slice)?)
                    }
                    Json::Array(_) => return Err(nested_list_error(&member.key)),
                });
            }
            entries.push((member.key, owned));
        }
        Ok(Variables { entries })
    }

    /// The variables as collections, for [`Options::variables`].
    pub fn collections(&self) -> Vec<(String, Collection<'_>)> {
        self.entries
            .iter()
            .map(|(name, values)| {
                let items = values
                    .iter()
                    .map(|value| match value {
                        OwnedValue::Boolean(flag) => Item::Boolean(*flag),
                        OwnedValue::Integer(value) => Item::Integer(*value),
                        OwnedValue::Decimal(value) => Item::Decimal(*value),
                        OwnedValue::String(text) => {
                            Item::String(alloc::borrow::Cow::Borrowed(text.as_str()))
                        }
                        OwnedValue::Resource(object) => Item::Object(object),
                    })
                    .collect();
                (name.clone(), items)
            })
            .collect()
    }
}

fn nested_list_error(name: &str) -> crate::Error {
    let message =
        alloc::format!("expected %{name} to be a value or a list of values, found nested lists");
    crate::Error::FhirPathEval(EvalError { message, offset: 0 })
}

/// The end (exclusive byte offset) of the JSON value starting at `start`, found by reading it.
fn find_value_end(bytes: &[u8], start: usize) -> usize {
    let Some(rest) = bytes.get(start..) else {
        return bytes.len();
    };
    match crate::json::reader::Lexer::new(rest, crate::json::reader::Limits::default()) {
        Ok(mut lexer) => match lexer.skip_value(0) {
            Ok(()) => start + lexer.pos,
            Err(_) => bytes.len(),
        },
        Err(_) => bytes.len(),
    }
}

/// Resolves references inside one resource: `#id` to its contained resources, and, in a
/// Bundle, `Type/id` or an entry's `fullUrl` to the entry's resource. What a resource holds
/// is all it can resolve; a store-backed resolver comes with the store.
pub struct LocalResolver<'a> {
    root: &'a Object,
}

impl<'a> LocalResolver<'a> {
    /// A resolver over `root`.
    pub fn new(root: &'a Object) -> Self {
        LocalResolver { root }
    }
}

fn text_of<'o>(object: &'o Object, name: &str) -> Option<&'o str> {
    object.values(name).next().and_then(|value| match value {
        crate::resource::Value::Primitive(crate::resource::Primitive {
            value: Some(PrimitiveValue::String(text)),
            ..
        }) => Some(text.as_str()),
        _ => None,
    })
}

impl<'a> Resolver<'a> for LocalResolver<'a> {
    fn resolve(&self, reference: &str) -> Option<&'a Object> {
        let root: &'a Object = self.root;
        if let Some(local) = reference.strip_prefix('#') {
            return root.fields.iter().find_map(|field| match &field.value {
                crate::resource::Value::Resource(inner) if inner.id() == Some(local) => Some(inner),
                _ => None,
            });
        }
        if root.type_def().name != "Bundle" {
            return None;
        }
        for entry in root.values("entry") {
            let crate::resource::Value::Complex(entry) = entry else {
                continue;
            };
            let Some(crate::resource::Value::Resource(resource)) = entry.values("resource").next()
            else {
                continue;
            };
            let full_url = text_of(entry, "fullUrl");
            let relative = resource
                .id()
                .map(|id| alloc::format!("{}/{id}", resource.type_def().name));
            if full_url == Some(reference)
                || relative.as_deref() == Some(reference)
                || relative
                    .as_deref()
                    .is_some_and(|relative| reference.ends_with(&alloc::format!("/{relative}")))
            {
                return Some(resource);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn folded(text: &str) -> parser::Expr {
        match compile(text) {
            Ok(expression) => expression.ast,
            Err(err) => panic!("{text}: {err}"),
        }
    }

    #[test]
    fn operations_on_literals_fold_at_compile_time() {
        use parser::{Expr, Literal};
        assert!(matches!(folded("2 * 3 + 1"), Expr::Literal(Literal::Number(n), _) if n == "7"));
        assert!(matches!(folded("'a' + 'b'"), Expr::Literal(Literal::Str(s), _) if s == "ab"));
        assert!(matches!(folded("-5"), Expr::Literal(Literal::Number(n), _) if n == "-5"));
        assert!(matches!(folded("1.5 * 2"), Expr::Literal(Literal::Number(n), _) if n == "3.0"));
        assert!(
            matches!(folded("@2014-01-31 + 1 month"), Expr::Literal(Literal::DateTime(d), _) if d == "2014-02-28")
        );
        assert!(matches!(
            folded("1 < 2 and true"),
            Expr::Literal(Literal::Bool(true), _)
        ));
        // Not folded: no literal form, a runtime error to report with its offset, or data.
        assert!(matches!(folded("6 / 2"), Expr::Binary(..)));
        assert!(matches!(folded("1 + 'a'"), Expr::Binary(..)));
        assert!(matches!(folded("name.count() + 1"), Expr::Binary(..)));
    }

    #[test]
    fn literal_patterns_compile_with_the_expression() {
        let expression = compile(
            "name.given.where(matches('^A')).exists() and id.matchesFull('p[0-9]') \
             and id.replaceMatches('[0-9]', 'x') = 'px' and name.given.matches('^A')",
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let keys: Vec<&str> = expression
            .regexes
            .iter()
            .map(|(key, _)| key.as_str())
            .collect();
        assert_eq!(keys, ["^A", "^(?:p[0-9])$", "[0-9]"]);
        let patient = crate::json::fhir::parse_resource(
            br#"{"resourceType":"Patient","id":"p1","name":[{"given":["Ann"]}]}"#,
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let got = expression
            .evaluate(&patient, &Options::default())
            .map(|result| to_json(&result));
        assert_eq!(got.ok().as_deref(), Some("[true]"));
        // A pattern that does not compile is reported when evaluated, with its offset.
        let bad = compile("id.matches('(')").unwrap_or_else(|err| panic!("{err}"));
        assert!(bad.regexes.is_empty());
        assert!(bad.evaluate(&patient, &Options::default()).is_err());
    }

    #[test]
    fn unknown_functions_are_compile_errors() {
        let err = compile("name.givenNames()")
            .err()
            .map(|err| alloc::format!("{err}"));
        assert_eq!(
            err.as_deref(),
            Some("unknown function givenNames() at offset 5")
        );
    }
}
#[cfg(test)]
mod chain_tests {
    use super::*;
    #[test]
    fn long_union_chains_evaluate() {
        let mut text = String::from("('c0'");
        for idx in 1..600 {
            text.push_str(&alloc::format!(" | 'c{idx}'"));
        }
        text.push_str(").count()");
        let patient = crate::json::fhir::parse_resource(br#"{"resourceType":"Patient"}"#)
            .unwrap_or_else(|err| panic!("{err}"));
        let expression = compile(&text).unwrap_or_else(|err| panic!("{err}"));
        let got = expression
            .evaluate(&patient, &Options::default())
            .map(|r| to_json(&r));
        assert_eq!(got.ok().as_deref(), Some("[600]"));
    }
}

//! Search queries: the parameters of a request read into criteria, and criteria turned into
//! clauses (key ranges and tests on index values) for one resource type.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::index::{self, normalize};
use super::{matching_ids, resource_entries, Context, Entries, Hit, Param, Registry};
use crate::fhirpath::{Decimal, Expression, Item, Options};
use crate::model::{self, SearchParamType};
use crate::resource::Object;
use crate::store::{StoreError, Transaction};

/// A search that cannot be run as asked: a 400 with this message (or a store failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError {
    /// HTTP status: 400 for the query, 413 over the work budget, 500 or 409 for the store.
    pub status: u16,
    /// What is wrong, for the OperationOutcome.
    pub message: String,
}

impl SearchError {
    /// A query the server does not understand or support.
    pub fn bad(message: impl Into<String>) -> SearchError {
        SearchError {
            status: 400,
            message: message.into(),
        }
    }

    /// A store failure.
    pub fn store(err: StoreError) -> SearchError {
        SearchError {
            status: if err.too_costly {
                413
            } else if err.conflict {
                409
            } else {
                500
            },
            message: err.message,
        }
    }
}

/// Where a page starts: after or before a result the server handed out in a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// The results after this one.
    After(String),
    /// The results before this one.
    Before(String),
}

/// An `_include` or `_revinclude`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The resource type holding the reference.
    pub source: String,
    /// The reference parameter; `None` for `*` (all of them).
    pub code: Option<String>,
    /// Only references to this type.
    pub target: Option<String>,
    /// `:iterate`: also from included resources.
    pub iterate: bool,
}

/// `_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// The summary elements.
    True,
    /// Text, id, meta and the mandatory elements.
    Text,
    /// Everything but the narrative.
    Data,
    /// The total only.
    Count,
    /// The whole resource.
    False,
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// No total.
    None,
    /// An estimate (given exactly).
    Estimate,
    /// The exact count.
    Accurate,
}

/// One search criterion as written: the parameter name with modifiers and chains, and the
/// value with its commas (alternatives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    /// `name`, `name:modifier`, `subject:Patient.name`, `_has:Observation:patient:code`.
    pub name: String,
    /// The value as decoded from the URL.
    pub value: String,
}

/// A parsed search.
#[derive(Debug, Clone)]
pub struct Query {
    /// The types searched, with the criteria for each.
    pub per_type: Vec<(String, Vec<Criterion>)>,
    /// `_sort`: parameter codes, descending or not.
    pub sort: Vec<(String, bool)>,
    /// `_count`.
    pub count: usize,
    /// Where the page starts.
    pub cursor: Option<Cursor>,
    /// `_include`.
    pub includes: Vec<Include>,
    /// `_revinclude`.
    pub revincludes: Vec<Include>,
    /// `_summary`.
    pub summary: Option<Summary>,
    /// `_elements`.
    pub elements: Option<Vec<String>>,
    /// `_total`.
    pub total: Total,
    /// Parameters ignored under `Prefer: handling=lenient`, with the reason.
    pub ignored: Vec<String>,
    /// The parameters that define the result set, for the self and paging links.
    pub link_params: Vec<(String, String)>,
    /// A compartment search: the focus type and id (`Patient/123/Observation`).
    pub compartment: Option<(String, String)>,
}

/// Largest `_count`.
pub const MAX_COUNT: usize = 1000;
/// `_count` when none is given.
pub const DEFAULT_COUNT: usize = 50;

/// A `_count` value: a number, capped at [`MAX_COUNT`].
///
/// # Errors
/// [`SearchError`] (400) when it is not a number.
pub fn parse_count(value: &str) -> Result<usize, SearchError> {
    value
        .parse::<usize>()
        .map(|count| count.min(MAX_COUNT))
        .map_err(|_| SearchError::bad(format!("_count must be a number, not \"{value}\"")))
}

/// Search parameters R4 defines that Hearth does not support.
const UNSUPPORTED: &[&str] = &[
    "_text",
    "_content",
    "_list",
    "_query",
    "_filter",
    "_contained",
    "_containedType",
];

fn base_name(name: &str) -> &str {
    let head = name.split('.').next().unwrap_or(name);
    head.split(':').next().unwrap_or(head)
}

/// Reads the query of a search over `types` (one type, or several for a system search).
///
/// # Errors
/// [`SearchError`] (400) for unknown parameters (unless `lenient`), bad `_count`, `_sort`,
/// `_include`, `_summary`, `_total` or `_cursor` values.
pub fn parse(
    registry: &Registry,
    types: &[&str],
    params: &[(String, String)],
    lenient: bool,
) -> Result<Query, SearchError> {
    let mut query = Query {
        per_type: types
            .iter()
            .map(|name| ((*name).to_string(), Vec::new()))
            .collect(),
        sort: Vec::new(),
        count: DEFAULT_COUNT,
        cursor: None,
        includes: Vec::new(),
        revincludes: Vec::new(),
        summary: None,
        elements: None,
        total: Total::Accurate,
        ignored: Vec::new(),
        link_params: Vec::new(),
        compartment: None,
    };
    let mut seen: alloc::collections::BTreeSet<(&str, &str)> = alloc::collections::BTreeSet::new();
    for (name, value) in params {
        let (bare, modifier) = name.split_once(':').unwrap_or((name, ""));
        if name != "_cursor" && !name.starts_with("_format") && name != "_pretty" {
            query.link_params.push((name.clone(), value.clone()));
        }
        match bare {
            "_count" => query.count = parse_count(value)?,
            "_cursor" => {
                query.cursor = Some(match value.split_at_checked(1) {
                    Some(("n", rest)) => Cursor::After(rest.to_string()),
                    Some(("p", rest)) => Cursor::Before(rest.to_string()),
                    _ => return Err(SearchError::bad("_cursor is not one this server gave")),
                });
            }
            "_sort" => {
                for key in value.split(',').filter(|key| !key.is_empty()) {
                    let (code, desc) = match key.strip_prefix('-') {
                        Some(code) => (code, true),
                        None => (key, false),
                    };
                    if let Some(missing) = types
                        .iter()
                        .find(|type_name| registry.param(type_name, code).is_none())
                    {
                        return Err(SearchError::bad(format!(
                            "cannot sort by \"{code}\": {missing} has no such search parameter"
                        )));
                    }
                    query.sort.push((code.to_string(), desc));
                }
            }
            "_include" | "_revinclude" => {
                let include = parse_include(registry, value, modifier == "iterate")?;
                if bare == "_include" {
                    query.includes.push(include);
                } else {
                    query.revincludes.push(include);
                }
            }
            "_summary" => {
                query.summary = Some(match value.as_str() {
                    "true" => Summary::True,
                    "text" => Summary::Text,
                    "data" => Summary::Data,
                    "count" => Summary::Count,
                    "false" => Summary::False,
                    _ => {
                        return Err(SearchError::bad(format!(
                            "_summary must be true, text, data, count or false, not \"{value}\""
                        )))
                    }
                });
            }
            "_elements" => {
                query.elements = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|element| !element.is_empty())
                        .map(ToString::to_string)
                        .collect(),
                );
            }
            "_total" => {
                query.total = match value.as_str() {
                    "none" => Total::None,
                    "estimate" => Total::Estimate,
                    "accurate" => Total::Accurate,
                    _ => {
                        return Err(SearchError::bad(format!(
                            "_total must be none, estimate or accurate, not \"{value}\""
                        )))
                    }
                };
            }
            "_format" | "_pretty" | "_type" => {}
            _ => {
                let problem = if UNSUPPORTED.contains(&bare) {
                    Some(format!("the search parameter {bare} is not supported"))
                } else if bare == "_has" {
                    None
                } else {
                    types
                        .iter()
                        .find(|type_name| registry.param(type_name, base_name(name)).is_none())
                        .map(|type_name| format!("{type_name} has no search parameter \"{bare}\""))
                };
                match problem {
                    Some(problem) if lenient => query.ignored.push(problem),
                    Some(problem) => return Err(SearchError::bad(problem)),
                    // A criterion given twice selects what it selects once.
                    None if !seen.insert((name.as_str(), value.as_str())) => {}
                    None => {
                        for (_, criteria) in &mut query.per_type {
                            criteria.push(Criterion {
                                name: name.clone(),
                                value: value.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(query)
}

fn parse_include(registry: &Registry, value: &str, iterate: bool) -> Result<Include, SearchError> {
    let mut parts = value.split(':');
    let source = parts.next().unwrap_or_default();
    let code = parts.next();
    let target = parts.next();
    if source == "*" || code == Some("*") {
        return Ok(Include {
            source: source.to_string(),
            code: None,
            target: None,
            iterate,
        });
    }
    let (Some(code), None) = (code, parts.next()) else {
        return Err(SearchError::bad(format!(
            "expected Type:parameter[:target], not \"{value}\""
        )));
    };
    match registry.param(source, code) {
        Some(param) if param.kind == SearchParamType::Reference => {}
        _ => {
            return Err(SearchError::bad(format!(
                "{source} has no reference search parameter \"{code}\""
            )))
        }
    }
    if let Some(target) = target {
        if model::resource_type(target).is_none() {
            return Err(SearchError::bad(format!(
                "\"{target}\" is not a resource type"
            )));
        }
    }
    Ok(Include {
        source: source.to_string(),
        code: Some(code.to_string()),
        target: target.map(ToString::to_string),
        iterate,
    })
}

/// The comparison prefixes of number, date and quantity values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

fn split_prefix(value: &str) -> (Prefix, &str) {
    let prefix = match value.get(..2) {
        Some("eq") => Prefix::Eq,
        Some("ne") => Prefix::Ne,
        Some("gt") => Prefix::Gt,
        Some("lt") => Prefix::Lt,
        Some("ge") => Prefix::Ge,
        Some("le") => Prefix::Le,
        Some("sa") => Prefix::Sa,
        Some("eb") => Prefix::Eb,
        Some("ap") => Prefix::Ap,
        _ => return (Prefix::Eq, value),
    };
    let rest = &value[2..];
    if rest.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') {
        (prefix, rest)
    } else {
        (Prefix::Eq, value)
    }
}

/// A test on one index value (and its payload).
#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// Any value.
    Any,
    /// This value.
    Exact(String),
    /// Values starting with this.
    Prefix(String),
    /// This normalized value, with the payload as written (string `:exact`).
    ExactPayload(String, String),
    /// Values containing this (string `:contains`).
    Contains(String),
    /// Tokens of this system (`system|`).
    TokenSystem(String),
    /// A date range compared with a prefix.
    Date(Prefix, i64, i64, i64),
    /// A number (after the unit key) compared with a prefix: value, low and high of the
    /// implicit precision.
    Number(String, Prefix, f64, f64, f64),
}

fn compare_number(prefix: Prefix, n: f64, value: f64, low: f64, high: f64) -> bool {
    match prefix {
        Prefix::Eq => low <= n && n < high,
        Prefix::Ne => !(low <= n && n < high),
        Prefix::Gt | Prefix::Sa => n > value,
        Prefix::Lt | Prefix::Eb => n < value,
        Prefix::Ge => n >= value,
        Prefix::Le => n <= value,
        Prefix::Ap => (n - value).abs() <= (value.abs() * 0.1).max(high - value),
    }
}

fn compare_dates(
    prefix: Prefix,
    slack: i64,
    (low, high): (i64, i64),
    (tlo, thi): (i64, i64),
) -> bool {
    let eq = low <= tlo && thi <= high;
    match prefix {
        Prefix::Eq => eq,
        Prefix::Ne => !eq,
        Prefix::Gt => thi > high,
        Prefix::Lt => tlo < low,
        Prefix::Ge => thi > high || eq,
        Prefix::Le => tlo < low || eq,
        Prefix::Sa => tlo > high,
        Prefix::Eb => thi < low,
        Prefix::Ap => tlo <= high.saturating_add(slack) && thi >= low.saturating_sub(slack),
    }
}

impl Test {
    pub(crate) fn matches(&self, value: &str, payload: &str) -> bool {
        match self {
            Test::Any => true,
            Test::Exact(wanted) => value == wanted,
            Test::Prefix(wanted) => value.starts_with(wanted.as_str()),
            Test::ExactPayload(wanted, written) => value == wanted && payload == written,
            Test::Contains(wanted) => value.contains(wanted.as_str()),
            Test::TokenSystem(system) => {
                value.starts_with('=')
                    && value
                        .rsplit_once('\u{1}')
                        .is_some_and(|(_, found)| found == system)
            }
            Test::Date(prefix, low, high, slack) => {
                let range = match value.split_at_checked(1) {
                    Some(("L", hex)) => index::unhex_i64(hex).zip(index::unhex_i64(payload)),
                    Some(("H", hex)) => index::unhex_i64(payload).zip(index::unhex_i64(hex)),
                    _ => None,
                };
                range.is_some_and(|range| compare_dates(*prefix, *slack, (*low, *high), range))
            }
            Test::Number(key, prefix, wanted, low, high) => value
                .strip_prefix(key.as_str())
                .and_then(index::unhex_f64)
                .is_some_and(|n| compare_number(*prefix, n, *wanted, *low, *high)),
        }
    }
}

/// One way a clause can be met: a test on the values of one parameter, and the ranges of
/// values (start inclusive, end exclusive; `None`: to the end of the parameter) to scan.
#[derive(Debug, Clone)]
pub(crate) struct Alt {
    pub(crate) code: String,
    pub(crate) test: Test,
    pub(crate) ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The keys of this value, with or without a payload (`value␀id`, `value␂payload␀id`).
fn exact(value: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut start = value.as_bytes().to_vec();
    let mut end = start.clone();
    start.push(0);
    end.push(3);
    (start, Some(end))
}

fn starting(value: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let start = value.as_bytes().to_vec();
    let end = crate::store::KeyRange::prefix(&start).end;
    (start, end)
}

fn between(start: &str, end: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    (start.as_bytes().to_vec(), Some(end.as_bytes().to_vec()))
}

/// Up to and including a fixed-width value.
fn through(value: &str) -> String {
    format!("{value}\u{3}")
}

/// A clause: what one criterion asks of a resource.
#[derive(Debug, Clone)]
pub(crate) enum Clause {
    /// One of the alternatives holds (or, negated, none does).
    Any { alts: Vec<Alt>, negate: bool },
    /// The resource has no value (or, `missing: false`, has one) for the parameter.
    Missing { code: String, missing: bool },
    /// One of these ids (from `_has`).
    Ids(BTreeSet<String>),
    /// A composite parameter: under one item found by its expression, every component
    /// matches (for one of the alternatives).
    Composite {
        expression: Expression,
        components: Vec<(Expression, SearchParamType)>,
        options: Vec<Vec<Test>>,
    },
}

impl Clause {
    /// The parameters whose values [`Clause::matches_entries`] reads.
    pub(crate) fn codes<'c>(&'c self, out: &mut Vec<&'c str>) {
        match self {
            Clause::Any { alts, .. } => {
                out.extend(alts.iter().map(|alt| alt.code.as_str()));
            }
            Clause::Missing { code, .. } => out.push(code.as_str()),
            Clause::Ids(_) | Clause::Composite { .. } => {}
        }
    }

    pub(crate) fn matches_entries(&self, entries: &Entries) -> bool {
        match self {
            Clause::Any { alts, negate } => {
                let found = alts.iter().any(|alt| {
                    entries.iter().any(|(code, value, payload)| {
                        *code == alt.code && alt.test.matches(value, payload)
                    })
                });
                found != *negate
            }
            Clause::Missing { code, missing } => {
                entries.iter().any(|(found, _, _)| found == code) != *missing
            }
            Clause::Ids(_) | Clause::Composite { .. } => true,
        }
    }

    pub(crate) fn matches_resource(&self, context: &Context<'_>, resource: &Object) -> bool {
        let Clause::Composite {
            expression,
            components,
            options,
        } = self
        else {
            return true;
        };
        let Ok(roots) = expression.evaluate(resource, &Options::default()) else {
            return false;
        };
        roots.iter().any(|root| {
            let values: Vec<Vec<index::Encoded>> = components
                .iter()
                .map(|(component, kind)| {
                    let mut values = Vec::new();
                    if let Ok(items) = component.evaluate_items(
                        core::slice::from_ref(root),
                        Some(Item::Object(resource)),
                        &Options::default(),
                    ) {
                        for item in &items {
                            index::encode(*kind, item, context.base_url, &mut values);
                        }
                    }
                    values
                })
                .collect();
            options.iter().any(|tests| {
                tests.iter().zip(&values).all(|(test, values)| {
                    values
                        .iter()
                        .any(|(value, payload)| test.matches(value, payload))
                })
            })
        })
    }
}

/// Splits a value on commas not escaped with `\`, and undoes the escapes `\,` `\$` `\|` `\\`.
fn split_unescaped(value: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next @ (',' | '$' | '|' | '\\')) if next != separator => {
                    current.push('\\');
                    current.push(next);
                }
                Some(next) => current.push(next),
                None => current.push('\\'),
            }
        } else if c == separator {
            parts.push(core::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Undoes the remaining escapes of one value.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits `system|code` on the first unescaped bar.
fn split_bar(value: &str) -> Option<(String, String)> {
    let parts = split_unescaped(value, '|');
    if parts.len() < 2 {
        return None;
    }
    let system = unescape(&parts[0]);
    let rest = parts[1..].join("|");
    Some((system, unescape(&rest)))
}

fn number_bounds(text: &str) -> Option<(f64, f64, f64)> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let digits = mantissa.strip_prefix('-').unwrap_or(mantissa);
    let well_formed = !digits.is_empty()
        && digits.matches('.').count() <= 1
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().any(|c| c.is_ascii_digit());
    if !well_formed {
        return None;
    }
    // Any exponent whose value is a finite double (`1e308`, `1.5e-300`).
    let value: f64 = text.parse().ok().filter(|value: &f64| value.is_finite())?;
    let scale = mantissa.split_once('.').map_or(0, |(_, fraction)| {
        i32::try_from(fraction.len()).unwrap_or(i32::MAX)
    });
    let half = 0.5 * libm::pow(10.0, f64::from(exponent.saturating_sub(scale)));
    let clamp = |bound: f64| bound.clamp(f64::MIN, f64::MAX);
    Some((value, clamp(value - half), clamp(value + half)))
}

fn number_alt(code: &str, key: &str, prefix: Prefix, text: &str) -> Result<Alt, SearchError> {
    let (value, low, high) = number_bounds(text)
        .ok_or_else(|| SearchError::bad(format!("\"{text}\" is not a number")))?;
    number_alt_from(code, key, prefix, value, low, high)
}

fn number_alt_from(
    code: &str,
    key: &str,
    prefix: Prefix,
    value: f64,
    low: f64,
    high: f64,
) -> Result<Alt, SearchError> {
    let hex = |n: f64| format!("{key}{}", index::hex_f64(n));
    let whole = starting(key);
    let range = match prefix {
        Prefix::Eq => between(&hex(low), &hex(high)),
        Prefix::Gt | Prefix::Sa => (through(&hex(value)).into_bytes(), whole.1),
        Prefix::Ge => (hex(value).into_bytes(), whole.1),
        Prefix::Lt | Prefix::Eb => (whole.0, Some(hex(value).into_bytes())),
        Prefix::Le => (whole.0, Some(through(&hex(value)).into_bytes())),
        Prefix::Ap => {
            let slack = (value.abs() * 0.1).max(high - value);
            between(&hex(value - slack), &through(&hex(value + slack)))
        }
        Prefix::Ne => whole,
    };
    Ok(Alt {
        code: code.to_string(),
        test: Test::Number(key.to_string(), prefix, value, low, high),
        ranges: alloc::vec![range],
    })
}

/// The alternatives of one value of a parameter.
fn value_alts(
    context: &Context<'_>,
    param: &Param,
    modifier: &str,
    value: &str,
) -> Result<Vec<Alt>, SearchError> {
    let code = param.code.as_str();
    let alt = |test: Test, range: (Vec<u8>, Option<Vec<u8>>)| Alt {
        code: code.to_string(),
        test,
        ranges: alloc::vec![range],
    };
    let bad_modifier = || {
        SearchError::bad(format!(
            "the modifier :{modifier} does not apply to {} parameter \"{code}\"",
            param.kind.code()
        ))
    };
    match param.kind {
        SearchParamType::String => {
            let text = unescape(value);
            let norm = normalize(&text);
            match modifier {
                "" => Ok(alloc::vec![alt(Test::Prefix(norm.clone()), starting(&norm))]),
                "exact" => Ok(alloc::vec![alt(
                    Test::ExactPayload(norm.clone(), index::clean(&text)),
                    exact(&norm)
                )]),
                "contains" => Ok(alloc::vec![alt(Test::Contains(norm), (Vec::new(), None))]),
                _ => Err(bad_modifier()),
            }
        }
        SearchParamType::Token => match modifier {
            "" | "not" => Ok(alloc::vec![token_alt(code, value)]),
            "text" => {
                let norm = format!("~{}", normalize(&unescape(value)));
                Ok(alloc::vec![alt(Test::Prefix(norm.clone()), starting(&norm))])
            }
            "of-type" => {
                let parts = split_unescaped(value, '|');
                if parts.len() != 3 {
                    return Err(SearchError::bad(format!(
                        ":of-type takes system|code|value, not \"{value}\""
                    )));
                }
                let key = format!(
                    "@{}|{}|{}",
                    index::clean(&unescape(&parts[0])),
                    index::clean(&unescape(&parts[1])),
                    index::clean(&unescape(&parts[2]))
                );
                Ok(alloc::vec![alt(Test::Exact(key.clone()), exact(&key))])
            }
            "in" | "not-in" => {
                let url = value.split('|').next().unwrap_or(value);
                let codes = model::VALUE_SETS
                    .iter()
                    .find(|value_set| value_set.url == url)
                    .and_then(|value_set| value_set.codes)
                    .ok_or_else(|| {
                        SearchError::bad(format!(
                            "the value set {url} is not one whose codes the server knows"
                        ))
                    })?;
                Ok(codes
                    .iter()
                    .map(|(system, code_value)| {
                        let system = model::CODE_SYSTEMS
                            .get(usize::from(*system))
                            .copied()
                            .unwrap_or_default();
                        let key = index::token(code_value, system);
                        alt(Test::Exact(key.clone()), exact(&key))
                    })
                    .collect())
            }
            "below" | "above" => Err(SearchError::bad(format!(
                ":{modifier} on tokens needs the code system's hierarchy, which the server does not have"
            ))),
            _ => Err(bad_modifier()),
        },
        SearchParamType::Reference => {
            if modifier == "identifier" {
                let key = match split_bar(value) {
                    Some((system, id_value)) => {
                        let key = format!(
                            "@{}\u{1}{}",
                            index::clean(&id_value),
                            index::clean(&system)
                        );
                        return Ok(alloc::vec![alt(Test::Exact(key.clone()), exact(&key))]);
                    }
                    None => format!("@{}\u{1}", index::clean(&unescape(value))),
                };
                return Ok(alloc::vec![alt(Test::Prefix(key.clone()), starting(&key))]);
            }
            let target = if modifier.is_empty() {
                None
            } else if model::resource_type(modifier).is_some() {
                Some(modifier)
            } else {
                return Err(bad_modifier());
            };
            let value = unescape(value);
            if value.contains('/') {
                let key = index::reference_value(&value, context.base_url)
                    .ok_or_else(|| SearchError::bad(format!("\"{value}\" is not a reference")))?;
                if let (Some(target), Some((_, found))) = (target, key.split_once('\u{1}')) {
                    if found != target {
                        return Ok(Vec::new());
                    }
                }
                return Ok(alloc::vec![alt(Test::Exact(key.clone()), exact(&key))]);
            }
            let target = target.or(match param.target.as_slice() {
                [only] => Some(only.as_str()),
                _ => None,
            });
            match target {
                Some(target) => {
                    let key = format!("{}\u{1}{target}", index::clean(&value));
                    Ok(alloc::vec![alt(Test::Exact(key.clone()), exact(&key))])
                }
                None => {
                    let key = format!("{}\u{1}", index::clean(&value));
                    Ok(alloc::vec![alt(Test::Prefix(key.clone()), starting(&key))])
                }
            }
        }
        SearchParamType::Uri => {
            let value = index::clean(&unescape(value));
            match modifier {
                "" => Ok(alloc::vec![alt(Test::Exact(value.clone()), exact(&value))]),
                "below" => Ok(alloc::vec![alt(Test::Prefix(value.clone()), starting(&value))]),
                "above" => {
                    let mut alts = alloc::vec![alt(Test::Exact(value.clone()), exact(&value))];
                    let mut current = value.trim_end_matches('/');
                    while let Some(slash) = current.rfind('/') {
                        let parent = &current[..slash];
                        if parent.is_empty() || parent.ends_with('/') {
                            break;
                        }
                        alts.push(alt(Test::Exact(parent.to_string()), exact(parent)));
                        current = parent;
                    }
                    Ok(alts)
                }
                _ => Err(bad_modifier()),
            }
        }
        SearchParamType::Date => {
            if !modifier.is_empty() {
                return Err(bad_modifier());
            }
            let (prefix, text) = split_prefix(value);
            let (low, high) = index::date_text_range(text).ok_or_else(|| {
                SearchError::bad(format!("\"{text}\" is not a FHIR date, dateTime or instant"))
            })?;
            // ap: 10% of the value's distance from the year 2000 (the engine reads no clock),
            // and at least the value's own precision.
            let slack = ((low - 946_684_800_000).abs() / 10).max(high - low);
            let l = |n: i64| format!("L{}", index::hex_i64(n));
            let h = |n: i64| format!("H{}", index::hex_i64(n));
            let range = match prefix {
                Prefix::Eq => between(&l(low), &through(&l(high))),
                Prefix::Gt => between(&through(&h(high)), "I"),
                Prefix::Lt => between("L", &l(low)),
                Prefix::Ge => between(&h(low), "I"),
                Prefix::Le => between("L", &through(&l(high))),
                Prefix::Sa => between(&through(&l(high)), "M"),
                Prefix::Eb => between("H", &h(low)),
                Prefix::Ap => between("L", &through(&l(high.saturating_add(slack)))),
                Prefix::Ne => between("L", "M"),
            };
            Ok(alloc::vec![alt(Test::Date(prefix, low, high, slack), range)])
        }
        SearchParamType::Number => {
            if !modifier.is_empty() {
                return Err(bad_modifier());
            }
            let (prefix, text) = split_prefix(value);
            Ok(alloc::vec![number_alt(code, "", prefix, text)?])
        }
        SearchParamType::Quantity => {
            if !modifier.is_empty() {
                return Err(bad_modifier());
            }
            let (prefix, text) = split_prefix(value);
            let parts = split_unescaped(text, '|');
            let number = parts.first().map(String::as_str).unwrap_or_default();
            let system = parts.get(1).map(|part| unescape(part)).unwrap_or_default();
            let unit = parts.get(2).map(|part| unescape(part)).unwrap_or_default();
            if unit.is_empty() {
                return Ok(alloc::vec![number_alt(code, "\u{1}", prefix, number)?]);
            }
            if system.is_empty() || system == "http://unitsofmeasure.org" {
                let decimal = number_bounds(number)
                    .and_then(|(value, _, _)| Decimal::from_f64(value))
                    .ok_or_else(|| SearchError::bad(format!("\"{number}\" is not a number")))?;
                // The value and both ends of its precision converted on their own: offset
                // scales (Cel, [degF]) do not convert by a factor.
                let convert = |value: f64| {
                    Decimal::from_f64(value).and_then(|value| index::ucum_normal(value, &unit))
                };
                if let Some((_, low, high)) = number_bounds(number) {
                    if let (Some((normal, dimension)), Some((low, _)), Some((high, _))) =
                        (index::ucum_normal(decimal, &unit), convert(low), convert(high))
                    {
                        return Ok(alloc::vec![number_alt_from(
                            code,
                            &format!("{dimension}\u{1}"),
                            prefix,
                            normal,
                            low.min(high),
                            low.max(high)
                        )?]);
                    }
                }
            }
            let key = format!("{}|{}\u{1}", index::clean(&system), index::clean(&unit));
            Ok(alloc::vec![number_alt(code, &key, prefix, number)?])
        }
        SearchParamType::Composite | SearchParamType::Special => Err(SearchError::bad(format!(
            "the search parameter \"{code}\" is not supported"
        ))),
    }
}

fn token_alt(code: &str, value: &str) -> Alt {
    let make = |test: Test, range| Alt {
        code: code.to_string(),
        test,
        ranges: alloc::vec![range],
    };
    match split_bar(value) {
        None => {
            let key = format!("={}\u{1}", index::clean(&unescape(value)));
            make(Test::Prefix(key.clone()), starting(&key))
        }
        Some((system, token_code)) if token_code.is_empty() => {
            make(Test::TokenSystem(index::clean(&system)), starting("="))
        }
        Some((system, token_code)) => {
            let key = index::token(&token_code, &system);
            make(Test::Exact(key.clone()), exact(&key))
        }
    }
}

/// Turns the criteria into clauses for `type_name`: chains and `_has` are searched here.
pub(crate) fn resolve<'f, T: Transaction>(
    tx: &'f mut T,
    context: &'f Context<'f>,
    type_name: &'f str,
    criteria: &'f [Criterion],
) -> core::pin::Pin<Box<dyn core::future::Future<Output = Result<Vec<Clause>, SearchError>> + 'f>> {
    Box::pin(async move {
        let mut clauses = Vec::new();
        for criterion in criteria {
            clauses.push(resolve_one(tx, context, type_name, criterion, 0).await?);
        }
        Ok(clauses)
    })
}

/// Most resources `_include` and `_revinclude` add to one page.
const MAX_INCLUDED: usize = 10_000;

/// Deepest chain or `_has` nesting followed.
const MAX_DEPTH: usize = 4;

fn resolve_one<'f, T: Transaction>(
    tx: &'f mut T,
    context: &'f Context<'f>,
    type_name: &'f str,
    criterion: &'f Criterion,
    depth: usize,
) -> core::pin::Pin<Box<dyn core::future::Future<Output = Result<Clause, SearchError>> + 'f>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(SearchError::bad(format!(
                "chains and _has are followed {MAX_DEPTH} levels deep at most"
            )));
        }
        let registry = context.registry;
        let name = criterion.name.as_str();
        if let Some(rest) = name.strip_prefix("_has:") {
            let mut parts = rest.splitn(3, ':');
            let (Some(source), Some(reference), Some(inner)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(SearchError::bad(format!(
                    "expected _has:Type:reference:parameter, not \"{name}\""
                )));
            };
            let source = model::resource_type(source)
                .map(|id| model::type_def(id).name)
                .ok_or_else(|| SearchError::bad(format!("\"{source}\" is not a resource type")))?;
            match registry.param(source, reference) {
                Some(param) if param.kind == SearchParamType::Reference => {}
                _ => {
                    return Err(SearchError::bad(format!(
                        "{source} has no reference search parameter \"{reference}\""
                    )))
                }
            }
            let inner = Criterion {
                name: inner.to_string(),
                value: criterion.value.clone(),
            };
            if !inner.name.starts_with("_has:")
                && registry.param(source, base_name(&inner.name)).is_none()
            {
                return Err(SearchError::bad(format!(
                    "{source} has no search parameter \"{}\"",
                    base_name(&inner.name)
                )));
            }
            let clause = resolve_one(tx, context, source, &inner, depth + 1).await?;
            let sources = matching_ids(tx, context, source, core::slice::from_ref(&clause))
                .await
                .map_err(SearchError::store)?;
            let suffix = format!("\u{1}{type_name}");
            let mut ids = BTreeSet::new();
            for source_id in sources {
                for (code, value, _) in
                    resource_entries(tx, context, source, &source_id, &[reference])
                        .await
                        .map_err(SearchError::store)?
                {
                    if code == reference {
                        if let Some(id) = value.strip_suffix(suffix.as_str()) {
                            ids.insert(id.to_string());
                        }
                    }
                }
            }
            return Ok(Clause::Ids(ids));
        }
        let (head, chain) = match name.split_once('.') {
            Some((head, chain)) => (head, Some(chain)),
            None => (name, None),
        };
        let (code, modifier) = head.split_once(':').unwrap_or((head, ""));
        let param = registry.param(type_name, code).ok_or_else(|| {
            SearchError::bad(format!("{type_name} has no search parameter \"{code}\""))
        })?;
        if let Some(chain) = chain {
            if param.kind != SearchParamType::Reference {
                return Err(SearchError::bad(format!(
                    "\"{code}\" is not a reference parameter, so it cannot be chained"
                )));
            }
            let chained = base_name(chain);
            let targets: Vec<&str> = if modifier.is_empty() {
                param
                    .target
                    .iter()
                    .map(String::as_str)
                    .filter(|target| registry.param(target, chained).is_some())
                    .collect()
            } else {
                alloc::vec![modifier]
            };
            if targets.is_empty() {
                return Err(SearchError::bad(format!(
                    "no target of \"{code}\" has a search parameter \"{chained}\""
                )));
            }
            let mut alts = Vec::new();
            for target in targets {
                let target = model::resource_type(target)
                    .map(|id| model::type_def(id).name)
                    .ok_or_else(|| {
                        SearchError::bad(format!("\"{target}\" is not a resource type"))
                    })?;
                if registry.param(target, chained).is_none() {
                    return Err(SearchError::bad(format!(
                        "{target} has no search parameter \"{chained}\""
                    )));
                }
                let inner = Criterion {
                    name: chain.to_string(),
                    value: criterion.value.clone(),
                };
                let clause = resolve_one(tx, context, target, &inner, depth + 1).await?;
                let ids = matching_ids(tx, context, target, core::slice::from_ref(&clause))
                    .await
                    .map_err(SearchError::store)?;
                for id in ids {
                    let key = format!("{id}\u{1}{target}");
                    alts.push(Alt {
                        code: code.to_string(),
                        test: Test::Exact(key.clone()),
                        ranges: alloc::vec![exact(&key)],
                    });
                }
            }
            return Ok(Clause::Any {
                alts,
                negate: false,
            });
        }
        if modifier == "missing" {
            return match criterion.value.as_str() {
                "true" => Ok(Clause::Missing {
                    code: code.to_string(),
                    missing: true,
                }),
                "false" => Ok(Clause::Any {
                    alts: alloc::vec![Alt {
                        code: code.to_string(),
                        test: Test::Any,
                        ranges: alloc::vec![(Vec::new(), None)],
                    }],
                    negate: false,
                }),
                other => Err(SearchError::bad(format!(
                    ":missing takes true or false, not \"{other}\""
                ))),
            };
        }
        if param.kind == SearchParamType::Composite {
            return composite_clause(context, param, modifier, &criterion.value);
        }
        let mut alts = Vec::new();
        for value in split_unescaped(&criterion.value, ',') {
            if value.is_empty() {
                return Err(SearchError::bad(format!("\"{name}\" has an empty value")));
            }
            alts.extend(value_alts(context, param, modifier, &value)?);
        }
        let negate =
            modifier == "not-in" || (modifier == "not" && param.kind == SearchParamType::Token);
        if modifier == "not" && param.kind != SearchParamType::Token {
            return Err(SearchError::bad(format!(
                "the modifier :not does not apply to {} parameter \"{code}\"",
                param.kind.code()
            )));
        }
        Ok(Clause::Any { alts, negate })
    })
}

fn composite_clause(
    context: &Context<'_>,
    param: &Param,
    modifier: &str,
    value: &str,
) -> Result<Clause, SearchError> {
    if !modifier.is_empty() {
        return Err(SearchError::bad(format!(
            "the modifier :{modifier} does not apply to composite parameter \"{}\"",
            param.code
        )));
    }
    let expression = param
        .expression()
        .cloned()
        .ok_or_else(|| SearchError::bad(format!("\"{}\" has no expression", param.code)))?;
    let mut components = Vec::new();
    let mut component_params = Vec::new();
    for (url, text) in &param.components {
        let component = context.registry.by_url(url).ok_or_else(|| {
            SearchError::bad(format!(
                "the component {url} of \"{}\" is unknown",
                param.code
            ))
        })?;
        let compiled = crate::fhirpath::compile(text).map_err(|_| {
            SearchError::bad(format!("the component expression {text} does not compile"))
        })?;
        components.push((compiled, component.kind));
        component_params.push(component);
    }
    let mut options = Vec::new();
    for alternative in split_unescaped(value, ',') {
        let parts = split_unescaped(&alternative, '$');
        if parts.len() != components.len() {
            return Err(SearchError::bad(format!(
                "\"{}\" takes {} values joined by $, not \"{alternative}\"",
                param.code,
                components.len()
            )));
        }
        let mut tests = Vec::new();
        for (part, component) in parts.iter().zip(&component_params) {
            let alts = value_alts(context, component, "", part)?;
            let Some(alt) = alts.into_iter().next() else {
                return Err(SearchError::bad(format!("\"{part}\" matches nothing")));
            };
            tests.push(alt.test);
        }
        options.push(tests);
    }
    Ok(Clause::Composite {
        expression,
        components,
        options,
    })
}

/// The clause that keeps `type_name` resources in the compartment of `focus/id`: a reference
/// to the focus by one of the compartment's parameters (or, for the focus type, the id
/// itself). `None` when the type has no place in the compartment.
pub(crate) fn compartment_clause(
    registry: &Registry,
    focus: &str,
    id: &str,
    type_name: &str,
) -> Option<Clause> {
    let (_, members) = model::COMPARTMENTS
        .iter()
        .find(|(compartment, _)| *compartment == focus)?;
    let key = format!("{}\u{1}{focus}", index::clean(id));
    let mut alts: Vec<Alt> = members
        .iter()
        .filter(|(member, _)| *member == type_name)
        .flat_map(|(_, params)| params.iter())
        .filter(|code| registry.param(type_name, code).is_some())
        .map(|code| Alt {
            code: (*code).to_string(),
            test: Test::Exact(key.clone()),
            ranges: alloc::vec![exact(&key)],
        })
        .collect();
    if type_name == focus {
        let token = index::token(id, "");
        alts.push(Alt {
            code: String::from("_id"),
            test: Test::Exact(token.clone()),
            ranges: alloc::vec![exact(&token)],
        });
    }
    (!alts.is_empty()).then_some(Clause::Any {
        alts,
        negate: false,
    })
}

/// The resources `_include` and `_revinclude` add to a page (not those already in it).
pub(crate) async fn includes<T: Transaction>(
    tx: &mut T,
    context: &Context<'_>,
    query: &Query,
    page: &[Hit],
) -> Result<Vec<(String, String)>, StoreError> {
    if query.includes.is_empty() && query.revincludes.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen: BTreeSet<(String, String)> = page
        .iter()
        .map(|hit| (hit.type_name.clone(), hit.id.clone()))
        .collect();
    let mut added = Vec::new();
    let mut frontier: Vec<(String, String)> = seen.iter().cloned().collect();
    for round in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for (type_name, id) in &frontier {
            for include in &query.includes {
                if round > 0 && !include.iterate {
                    continue;
                }
                if include.source != "*" && include.source != *type_name {
                    continue;
                }
                let codes: Vec<&str> = query
                    .includes
                    .iter()
                    .filter_map(|include| include.code.as_deref())
                    .collect();
                let codes = if query.includes.iter().any(|include| include.code.is_none()) {
                    Vec::new()
                } else {
                    codes
                };
                for (code, value, _) in resource_entries(tx, context, type_name, id, &codes).await?
                {
                    if include.code.as_ref().is_some_and(|wanted| *wanted != code) {
                        continue;
                    }
                    let is_reference = context
                        .registry
                        .param(type_name, &code)
                        .is_some_and(|param| param.kind == SearchParamType::Reference);
                    if !is_reference {
                        continue;
                    }
                    let Some((target_id, target_type)) = value.split_once('\u{1}') else {
                        continue;
                    };
                    if value.starts_with('@')
                        || include.target.as_ref().is_some_and(|t| t != target_type)
                    {
                        continue;
                    }
                    next.push((target_type.to_string(), target_id.to_string()));
                }
            }
            for include in &query.revincludes {
                if round > 0 && !include.iterate {
                    continue;
                }
                let codes: Vec<String> = match &include.code {
                    Some(code) => alloc::vec![code.clone()],
                    None => context
                        .registry
                        .params_of(&include.source)
                        .filter(|param| param.kind == SearchParamType::Reference)
                        .map(|param| param.code.clone())
                        .collect(),
                };
                if include.target.as_ref().is_some_and(|t| t != type_name) {
                    continue;
                }
                for code in codes {
                    let prefix = format!("i\0{}\0{code}\0{id}\u{1}{type_name}\0", include.source);
                    let entries = tx
                        .scan(
                            &crate::store::KeyRange::prefix(prefix.as_bytes()),
                            usize::MAX,
                            false,
                        )
                        .await?;
                    for (key, _) in entries {
                        let Some(row) = key
                            .get(prefix.len()..)
                            .and_then(|rest| core::str::from_utf8(rest).ok())
                        else {
                            continue;
                        };
                        if let Some(source_id) = super::id_of(tx, &include.source, row).await? {
                            next.push((include.source.clone(), source_id));
                        }
                    }
                }
            }
        }
        next.retain(|found| seen.insert(found.clone()));
        next.truncate(MAX_INCLUDED.saturating_sub(added.len()));
        if next.is_empty() {
            break;
        }
        added.extend(next.iter().cloned());
        frontier = next;
    }
    Ok(added)
}

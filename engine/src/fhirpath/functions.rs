//! FHIRPath functions that take their arguments as plain values: conversion, string, math
//! and the 2.1 boundary functions.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::datetime::{Temporal, TemporalKind};
use super::decimal::Decimal;
use super::eval::{single, Collection};
use super::ucum;
use super::value::{Item, System};
use super::EvalError;
use crate::resource::PrimitiveValue;

fn err<T>(message: impl Into<String>, offset: usize) -> Result<T, EvalError> {
    Err(EvalError {
        message: message.into(),
        offset,
    })
}

/// One argument as a single system value (`None` when empty).
fn arg_value<'a>(
    args: &[Collection<'a>],
    idx: usize,
    offset: usize,
) -> Result<Option<System<'a>>, EvalError> {
    match args.get(idx) {
        None => Ok(None),
        Some(items) => Ok(single(items, offset)?.and_then(Item::to_system)),
    }
}

fn arg_string(
    args: &[Collection<'_>],
    idx: usize,
    offset: usize,
) -> Result<Option<String>, EvalError> {
    match arg_value(args, idx, offset)? {
        None => Ok(None),
        Some(System::String(text)) => Ok(Some(text.into_owned())),
        Some(_) => err("expected a string argument", offset),
    }
}

fn arg_integer(
    args: &[Collection<'_>],
    idx: usize,
    offset: usize,
) -> Result<Option<i64>, EvalError> {
    match arg_value(args, idx, offset)? {
        None => Ok(None),
        Some(System::Integer(value)) => Ok(Some(value)),
        Some(_) => err("expected an integer argument", offset),
    }
}

fn string_item<'a>(text: String) -> Item<'a> {
    Item::String(Cow::Owned(text))
}

/// How many arguments each value function takes (least, most).
const ARITY: &[(&str, usize, usize)] = &[
    ("toBoolean", 0, 0),
    ("toInteger", 0, 0),
    ("toLong", 0, 0),
    ("toDecimal", 0, 0),
    ("toString", 0, 0),
    ("toDate", 0, 0),
    ("toDateTime", 0, 0),
    ("toTime", 0, 0),
    ("toQuantity", 0, 1),
    ("convertsToBoolean", 0, 0),
    ("convertsToInteger", 0, 0),
    ("convertsToLong", 0, 0),
    ("convertsToDecimal", 0, 0),
    ("convertsToString", 0, 0),
    ("convertsToDate", 0, 0),
    ("convertsToDateTime", 0, 0),
    ("convertsToTime", 0, 0),
    ("convertsToQuantity", 0, 1),
    ("indexOf", 1, 1),
    ("substring", 1, 2),
    ("startsWith", 1, 1),
    ("endsWith", 1, 1),
    ("contains", 1, 1),
    ("upper", 0, 0),
    ("lower", 0, 0),
    ("replace", 2, 2),
    ("length", 0, 0),
    ("toChars", 0, 0),
    ("trim", 0, 0),
    ("split", 1, 1),
    ("encode", 1, 1),
    ("decode", 1, 1),
    ("escape", 1, 1),
    ("unescape", 1, 1),
    ("matches", 1, 1),
    ("matchesFull", 1, 1),
    ("replaceMatches", 2, 2),
    ("join", 0, 1),
    ("comparable", 1, 1),
    ("abs", 0, 0),
    ("ceiling", 0, 0),
    ("floor", 0, 0),
    ("truncate", 0, 0),
    ("round", 0, 1),
    ("sqrt", 0, 0),
    ("exp", 0, 0),
    ("ln", 0, 0),
    ("log", 1, 1),
    ("power", 1, 1),
    ("precision", 0, 0),
    ("lowBoundary", 0, 1),
    ("highBoundary", 0, 1),
    ("sum", 0, 0),
    ("min", 0, 0),
    ("max", 0, 0),
    ("avg", 0, 0),
];

/// Calls a function whose arguments have been evaluated against the call's input.
#[allow(clippy::too_many_lines)]
pub(crate) fn call_value_function<'a>(
    args: Vec<Collection<'a>>,
    name: &str,
    items: &[Item<'a>],
    offset: usize,
    regexes: &mut RegexCache<'_>,
) -> Result<Collection<'a>, EvalError> {
    if let Some((_, min, max)) = ARITY.iter().find(|(function, _, _)| *function == name) {
        super::eval::check_arity(name, *min, *max, args.len(), offset)?;
    }
    let input = || -> Result<Option<System<'a>>, EvalError> {
        Ok(single(items, offset)?.and_then(Item::to_system))
    };
    let boolean = |value: bool| Ok(vec![Item::Boolean(value)]);
    let nothing = || Ok(Vec::new());
    let convert = |name: &str, value: System<'a>| -> Option<Item<'a>> { convert(name, value) };
    if let Some(target) = name.strip_prefix("convertsTo") {
        let Some(value) = input()? else {
            return nothing();
        };
        return boolean(convert(&format!("to{target}"), value).is_some());
    }
    // A FHIR primitive keeps its text (`2006-06-29T17:23:31+00:00` is not rewritten as
    // `...31Z`, nor `1.50` as `1.5`), as the value was written.
    if name == "toString" {
        if let Some(Item::Primitive(primitive, _)) = single(items, offset)? {
            let kept = match &primitive.value {
                Some(PrimitiveValue::String(text)) => Some(text),
                // A number keeps its text where that is FHIRPath's form too (`1.50`, not
                // `1.0e2` or `-0`).
                Some(PrimitiveValue::Number(text))
                    if !text.contains(['e', 'E']) && text != "-0" =>
                {
                    Some(text)
                }
                _ => None,
            };
            if let Some(text) = kept {
                return Ok(vec![Item::String(Cow::Borrowed(text.as_str()))]);
            }
        }
    }
    match name {
        "toBoolean" | "toInteger" | "toDecimal" | "toString" | "toDate" | "toDateTime"
        | "toTime" | "toQuantity" | "toLong" => {
            let Some(value) = input()? else {
                return nothing();
            };
            let mut res: Collection<'a> = convert(name, value).into_iter().collect();
            if name == "toQuantity" {
                if let (Some(Item::Quantity(value, unit)), Some(target)) =
                    (res.first(), arg_string(&args, 0, offset)?)
                {
                    res = ucum::convert(*value, unit, &target)
                        .map(|converted| Item::Quantity(converted, Cow::Owned(target)))
                        .into_iter()
                        .collect();
                }
            }
            Ok(res)
        }
        // Strings.
        "indexOf" | "substring" | "startsWith" | "endsWith" | "contains" | "upper" | "lower"
        | "replace" | "length" | "toChars" | "trim" | "split" | "encode" | "decode" | "escape"
        | "unescape" | "matches" | "replaceMatches" | "matchesFull" => {
            let text = match single(items, offset)? {
                None => return nothing(),
                Some(item) => match item.to_system() {
                    Some(System::String(text)) => text,
                    _ => {
                        return err(
                            format!(
                                "expected a string for {name}(), found {}",
                                item.type_name().1
                            ),
                            offset,
                        )
                    }
                },
            };
            let chars: Vec<char> = text.chars().collect();
            match name {
                "indexOf" => {
                    let Some(needle) = arg_string(&args, 0, offset)? else {
                        return nothing();
                    };
                    let index = text
                        .find(&needle)
                        .map_or(-1, |byte| text[..byte].chars().count() as i64);
                    Ok(vec![Item::Integer(index)])
                }
                "substring" => {
                    let Some(start) = arg_integer(&args, 0, offset)? else {
                        return nothing();
                    };
                    let length = arg_integer(&args, 1, offset)?;
                    if start < 0 || start as usize >= chars.len() {
                        return nothing();
                    }
                    let start = start as usize;
                    let end = match length {
                        Some(length) => start
                            .saturating_add(length.max(0) as usize)
                            .min(chars.len()),
                        None => chars.len(),
                    };
                    Ok(vec![string_item(chars[start..end].iter().collect())])
                }
                "startsWith" | "endsWith" | "contains" => {
                    let Some(needle) = arg_string(&args, 0, offset)? else {
                        return nothing();
                    };
                    boolean(match name {
                        "startsWith" => text.starts_with(needle.as_str()),
                        "endsWith" => text.ends_with(needle.as_str()),
                        _ => text.contains(needle.as_str()),
                    })
                }
                "upper" => Ok(vec![string_item(text.to_uppercase())]),
                "lower" => Ok(vec![string_item(text.to_lowercase())]),
                "trim" => Ok(vec![string_item(text.trim().to_string())]),
                "replace" => {
                    let (Some(pattern), Some(substitution)) =
                        (arg_string(&args, 0, offset)?, arg_string(&args, 1, offset)?)
                    else {
                        return nothing();
                    };
                    let replaced = if pattern.is_empty() {
                        let mut res = substitution.clone();
                        for ch in text.chars() {
                            res.push(ch);
                            res.push_str(&substitution);
                        }
                        res
                    } else {
                        text.replace(&pattern, &substitution)
                    };
                    Ok(vec![string_item(replaced)])
                }
                "length" => Ok(vec![Item::Integer(chars.len() as i64)]),
                "toChars" => Ok(chars.iter().map(|ch| string_item(ch.to_string())).collect()),
                "split" => {
                    let Some(separator) = arg_string(&args, 0, offset)? else {
                        return nothing();
                    };
                    if separator.is_empty() {
                        // No separator: the characters one by one.
                        return Ok(text.chars().map(|c| string_item(c.to_string())).collect());
                    }
                    Ok(text
                        .split(separator.as_str())
                        .map(|part| string_item(part.to_string()))
                        .collect())
                }
                "matches" | "matchesFull" => {
                    let Some(pattern) = arg_string(&args, 0, offset)? else {
                        return nothing();
                    };
                    let anchored = regex_key(name, pattern);
                    let regex = regexes.get(&anchored, offset)?;
                    boolean(regex.is_match(text.as_ref()))
                }
                "replaceMatches" => {
                    let (Some(pattern), Some(substitution)) =
                        (arg_string(&args, 0, offset)?, arg_string(&args, 1, offset)?)
                    else {
                        return nothing();
                    };
                    if pattern.is_empty() {
                        return Ok(vec![string_item(text.into_owned())]);
                    }
                    let regex = regexes.get(&pattern, offset)?;
                    Ok(vec![string_item(replace_all(regex, &text, &substitution))])
                }
                "encode" | "decode" => {
                    let Some(format) = arg_string(&args, 0, offset)? else {
                        return nothing();
                    };
                    let res = if name == "encode" {
                        encode(&text, &format)
                    } else {
                        decode(&text, &format)
                    };
                    match res {
                        Some(res) => Ok(vec![string_item(res)]),
                        None if matches!(format.as_str(), "hex" | "base64" | "urlbase64") => {
                            nothing()
                        }
                        None => err(format!("unknown encoding '{format}'"), offset),
                    }
                }
                "escape" | "unescape" => {
                    let Some(format) = arg_string(&args, 0, offset)? else {
                        return nothing();
                    };
                    let res = match (name, format.as_str()) {
                        ("escape", "html") => escape_html(&text),
                        ("escape", "json") => escape_json(&text),
                        ("unescape", "html") => unescape_html(&text),
                        ("unescape", "json") => unescape_json(&text),
                        _ => return err(format!("unknown escape target '{format}'"), offset),
                    };
                    Ok(vec![string_item(res)])
                }
                _ => err(format!("{name}() is not supported"), offset),
            }
        }
        "comparable" => {
            let Some(System::Quantity(_, unit_a)) = input()? else {
                return nothing();
            };
            match arg_value(&args, 0, offset)? {
                Some(System::Quantity(_, unit_b)) => {
                    boolean(ucum::same_dimension(&unit_a, &unit_b))
                }
                None => nothing(),
                Some(_) => err("expected a quantity argument for comparable()", offset),
            }
        }
        "sum" | "min" | "max" | "avg" => {
            if items.is_empty() {
                return nothing();
            }
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                match item.to_system() {
                    Some(value @ (System::Integer(_) | System::Decimal(_))) => values.push(value),
                    Some(
                        value @ (System::Quantity(..) | System::Temporal(_) | System::String(_)),
                    ) if name == "min" || name == "max" => values.push(value),
                    _ => return err(format!("expected numbers for {name}()"), offset),
                }
            }
            if name == "min" || name == "max" {
                let mut best = values.swap_remove(0);
                for value in values {
                    match value.compare(&best) {
                        Some(core::cmp::Ordering::Less) if name == "min" => best = value,
                        Some(core::cmp::Ordering::Greater) if name == "max" => best = value,
                        Some(_) => {}
                        None => {
                            return err(format!("expected comparable values for {name}()"), offset)
                        }
                    }
                }
                return Ok(vec![super::eval::system_item(best)]);
            }
            let all_integers = values
                .iter()
                .all(|value| matches!(value, System::Integer(_)));
            let mut total = Decimal::from_i64(0);
            for value in &values {
                let number = match value {
                    System::Integer(value) => Decimal::from_i64(*value),
                    System::Decimal(value) => *value,
                    _ => return err(format!("expected numbers for {name}()"), offset),
                };
                total = match total.checked_add(number) {
                    Some(total) => total,
                    None => return nothing(),
                };
            }
            if name == "avg" {
                return Ok(total
                    .checked_div(Decimal::from_i64(values.len() as i64))
                    .map(Item::Decimal)
                    .into_iter()
                    .collect());
            }
            Ok(vec![if all_integers {
                total.to_i64().map_or(Item::Decimal(total), Item::Integer)
            } else {
                Item::Decimal(total)
            }])
        }
        "join" => {
            if items.is_empty() {
                return nothing();
            }
            let separator = arg_string(&args, 0, offset)?.unwrap_or_default();
            let mut parts = Vec::new();
            for item in items {
                match item.to_system() {
                    Some(System::String(text)) => parts.push(text.into_owned()),
                    _ => return err("expected strings for join()", offset),
                }
            }
            Ok(vec![string_item(parts.join(&separator))])
        }
        // Math.
        "abs" | "ceiling" | "floor" | "truncate" | "round" | "sqrt" | "exp" | "ln" | "log"
        | "power" => {
            let Some(value) = input()? else {
                return nothing();
            };
            let number = match &value {
                System::Integer(value) => Decimal::from_i64(*value),
                System::Decimal(value) => *value,
                System::Quantity(value, unit) if name == "abs" => {
                    return Ok(vec![Item::Quantity(value.abs(), unit.clone())]);
                }
                _ => return err(format!("expected a number for {name}()"), offset),
            };
            let is_integer = matches!(value, System::Integer(_));
            let integer = |d: Decimal| d.to_i64().map(Item::Integer);
            let float = |f: f64| Decimal::from_f64(f).map(Item::Decimal);
            let res = match name {
                "abs" => {
                    if is_integer {
                        integer(number.abs())
                    } else {
                        Some(Item::Decimal(number.abs()))
                    }
                }
                "ceiling" => integer(number.ceiling()),
                "floor" => integer(number.floor()),
                "truncate" => integer(number.truncate()),
                "round" => {
                    let precision = arg_integer(&args, 0, offset)?.unwrap_or(0);
                    if precision < 0 {
                        return err("expected a precision of 0 or more", offset);
                    }
                    Some(Item::Decimal(number.round(precision as u32)))
                }
                "sqrt" => {
                    let f = number.to_f64();
                    if f < 0.0 {
                        None
                    } else {
                        float(libm::sqrt(f))
                    }
                }
                "exp" => float(libm::exp(number.to_f64())),
                "ln" => (number.to_f64() > 0.0)
                    .then(|| float(libm::log(number.to_f64())))
                    .flatten(),
                "log" => {
                    let Some(base) = arg_value(&args, 0, offset)? else {
                        return nothing();
                    };
                    let base = match base {
                        System::Integer(b) => b as f64,
                        System::Decimal(b) => b.to_f64(),
                        _ => return err("expected a numeric base", offset),
                    };
                    let x = number.to_f64();
                    (x > 0.0 && base > 0.0 && base != 1.0)
                        .then(|| float(libm::log(x) / libm::log(base)))
                        .flatten()
                }
                _ => {
                    let Some(exponent) = arg_value(&args, 0, offset)? else {
                        return nothing();
                    };
                    match (&value, exponent) {
                        (System::Integer(base), System::Integer(exp)) if exp >= 0 => {
                            u32::try_from(exp)
                                .ok()
                                .and_then(|exp| base.checked_pow(exp))
                                .map(Item::Integer)
                        }
                        (_, System::Integer(exp)) => float(libm::pow(number.to_f64(), exp as f64)),
                        (_, System::Decimal(exp)) => {
                            let result = libm::pow(number.to_f64(), exp.to_f64());
                            float(result)
                        }
                        _ => return err("expected a numeric exponent", offset),
                    }
                }
            };
            Ok(res.into_iter().collect())
        }
        "lowBoundary" | "highBoundary" => {
            let Some(value) = input()? else {
                return nothing();
            };
            let precision = arg_integer(&args, 0, offset)?;
            let high = name == "highBoundary";
            Ok(match value {
                System::Integer(value) => {
                    boundary(Decimal::from_i64(value), precision, high).map(Item::Decimal)
                }
                System::Decimal(value) => boundary(value, precision, high).map(Item::Decimal),
                System::Quantity(value, unit) => {
                    boundary(value, precision, high).map(|value| Item::Quantity(value, unit))
                }
                System::Temporal(value) => {
                    temporal_boundary(&value, precision, high).map(Item::Temporal)
                }
                _ => None,
            }
            .into_iter()
            .collect())
        }
        "precision" => {
            let Some(value) = input()? else {
                return nothing();
            };
            Ok(match value {
                System::Decimal(value) => vec![Item::Integer(i64::from(value.scale()))],
                System::Temporal(value) => {
                    let digits = match value.kind {
                        TemporalKind::Time => {
                            [2, 4, 6][value.precision().saturating_sub(1).min(2)]
                                + value.millis.map_or(0, |_| 3)
                        }
                        _ => {
                            [4, 6, 8, 10, 12, 14][value.precision().saturating_sub(1).min(5)]
                                + value.millis.map_or(0, |_| 3)
                        }
                    };
                    vec![Item::Integer(digits)]
                }
                _ => Vec::new(),
            })
        }
        _ => err(format!("unknown function {name}()"), offset),
    }
}

/// The `toX()` conversions; `None` when the value does not convert.
fn convert<'a>(name: &str, value: System<'a>) -> Option<Item<'a>> {
    match (name, value) {
        ("toBoolean", System::Boolean(flag)) => Some(Item::Boolean(flag)),
        ("toBoolean", System::Integer(value)) => match value {
            1 => Some(Item::Boolean(true)),
            0 => Some(Item::Boolean(false)),
            _ => None,
        },
        ("toBoolean", System::Decimal(value)) => match value.to_i64() {
            Some(1) => Some(Item::Boolean(true)),
            Some(0) => Some(Item::Boolean(false)),
            _ => None,
        },
        ("toBoolean", System::String(text)) => match text.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(Item::Boolean(true)),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(Item::Boolean(false)),
            _ => None,
        },
        ("toInteger" | "toLong", System::Integer(value)) => Some(Item::Integer(value)),
        ("toInteger" | "toLong", System::Boolean(flag)) => Some(Item::Integer(i64::from(flag))),
        ("toInteger", System::String(text)) => {
            let digits = text.strip_prefix(['+', '-']).unwrap_or(&text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse::<i32>()
                .ok()
                .map(|value| Item::Integer(i64::from(value)))
        }
        ("toLong", System::String(text)) => text.parse::<i64>().ok().map(Item::Integer),
        ("toDecimal", System::Decimal(value)) => Some(Item::Decimal(value)),
        ("toDecimal", System::Integer(value)) => Some(Item::Decimal(Decimal::from_i64(value))),
        ("toDecimal", System::Boolean(flag)) => {
            Some(Item::Decimal(Decimal::from_i64(i64::from(flag))))
        }
        ("toDecimal", System::String(text)) => Decimal::parse(&text).map(Item::Decimal),
        ("toString", value) => Some(string_item(value.to_text())),
        ("toDate", System::Temporal(value)) if value.kind != TemporalKind::Time => {
            Some(Item::Temporal(value.date_part()))
        }
        ("toDate", System::String(text)) => Temporal::parse(&text, None)
            .filter(|value| value.kind == TemporalKind::Date)
            .map(Item::Temporal),
        ("toDateTime", System::Temporal(value)) if value.kind != TemporalKind::Time => {
            Some(Item::Temporal(Temporal {
                kind: TemporalKind::DateTime,
                ..value
            }))
        }
        ("toDateTime", System::String(text)) => Temporal::parse(&text, None)
            .filter(|value| value.kind != TemporalKind::Time)
            .map(|value| {
                Item::Temporal(Temporal {
                    kind: TemporalKind::DateTime,
                    ..value
                })
            }),
        ("toTime", System::Temporal(value)) if value.kind == TemporalKind::Time => {
            Some(Item::Temporal(value))
        }
        ("toTime", System::String(text)) => {
            Temporal::parse(&text, Some(TemporalKind::Time)).map(Item::Temporal)
        }
        ("toQuantity", System::Quantity(value, unit)) => Some(Item::Quantity(value, unit)),
        ("toQuantity", System::Integer(value)) => {
            Some(Item::Quantity(Decimal::from_i64(value), Cow::Borrowed("1")))
        }
        ("toQuantity", System::Decimal(value)) => Some(Item::Quantity(value, Cow::Borrowed("1"))),
        ("toQuantity", System::Boolean(flag)) => Some(Item::Quantity(
            Decimal::from_i64(i64::from(flag)),
            Cow::Borrowed("1"),
        )),
        ("toQuantity", System::String(text)) => parse_quantity(&text),
        _ => None,
    }
}

/// `"5.5 'mg'"`, `"4 days"`, `"10"` as a quantity.
fn parse_quantity(text: &str) -> Option<Item<'static>> {
    let text = text.trim();
    let (number, unit) = match text.split_once(' ') {
        Some((number, unit)) => (number, unit.trim()),
        None => (text, ""),
    };
    let value = Decimal::parse(number)?;
    let unit = if unit.is_empty() {
        String::from("1")
    } else if let Some(quoted) = unit.strip_prefix('\'').and_then(|u| u.strip_suffix('\'')) {
        String::from(quoted)
    } else if ucum::is_calendar_keyword(unit) {
        String::from(unit)
    } else {
        return None;
    };
    Some(Item::Quantity(value, Cow::Owned(unit)))
}

/// The regular expressions one evaluation has compiled, so that `where(matches(...))` over
/// many items compiles its pattern once.
pub(crate) struct RegexCache<'e> {
    /// Compiled with the expression (its literal patterns).
    shared: &'e [(String, regex_automata::meta::Regex)],
    /// Compiled during this evaluation (patterns computed from data).
    entries: Vec<(String, regex_automata::meta::Regex)>,
}

impl<'e> RegexCache<'e> {
    const CAPACITY: usize = 16;

    pub(crate) fn new(shared: &'e [(String, regex_automata::meta::Regex)]) -> Self {
        RegexCache {
            shared,
            entries: Vec::new(),
        }
    }

    fn get(
        &mut self,
        pattern: &str,
        offset: usize,
    ) -> Result<&regex_automata::meta::Regex, EvalError> {
        if let Some((_, regex)) = self.shared.iter().find(|(cached, _)| cached == pattern) {
            return Ok(regex);
        }
        let idx = match self
            .entries
            .iter()
            .position(|(cached, _)| cached == pattern)
        {
            Some(idx) => idx,
            None => {
                let regex = compile_regex(pattern, offset)?;
                if self.entries.len() >= Self::CAPACITY {
                    self.entries.remove(0);
                }
                self.entries.push((String::from(pattern), regex));
                self.entries.len() - 1
            }
        };
        match self.entries.get(idx) {
            Some((_, regex)) => Ok(regex),
            None => err("the regular expression cache lost an entry", offset),
        }
    }
}

/// Compiles a regular expression (Unicode-aware `.`; size-limited against hostile patterns).
pub(crate) fn compile_regex(
    pattern: &str,
    offset: usize,
) -> Result<regex_automata::meta::Regex, EvalError> {
    let config = regex_automata::meta::Config::new().nfa_size_limit(Some(1 << 20));
    let syntax = regex_automata::util::syntax::Config::new()
        .nest_limit(100)
        .dot_matches_new_line(true);
    regex_automata::meta::Regex::builder()
        .configure(config)
        .syntax(syntax)
        .build(pattern)
        .or_else(|build_err| {
            err(
                format!("expected a regular expression, found '{pattern}': {build_err}"),
                offset,
            )
        })
}

/// Replaces every match, with `$1`, `${name}`-style groups in the substitution.
fn replace_all(regex: &regex_automata::meta::Regex, text: &str, substitution: &str) -> String {
    let mut res = String::new();
    let mut last = 0;
    let mut caps = regex.create_captures();
    let mut at = 0;
    while at <= text.len() {
        let input = regex_automata::Input::new(text).range(at..);
        regex.search_captures(&input, &mut caps);
        let Some(found) = caps.get_match() else { break };
        res.push_str(text.get(last..found.start()).unwrap_or_default());
        let mut chars = substitution.chars().peekable();
        while let Some(ch) = chars.next() {
            if ch == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                let mut number = 0usize;
                while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
                    number = number.saturating_mul(10).saturating_add(digit as usize);
                    chars.next();
                }
                if let Some(span) = caps.get_group(number) {
                    res.push_str(text.get(span.start..span.end).unwrap_or_default());
                }
            } else {
                res.push(ch);
            }
        }
        last = found.end();
        at = if found.is_empty() {
            found.end()
                + text
                    .get(found.end()..)
                    .and_then(|rest| rest.chars().next())
                    .map_or(1, char::len_utf8)
        } else {
            found.end()
        };
    }
    res.push_str(text.get(last..).unwrap_or_default());
    res
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn encode(text: &str, format: &str) -> Option<String> {
    let bytes = text.as_bytes();
    match format {
        "hex" => Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        "base64" | "urlbase64" => {
            let mut res = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| {
                    acc | (u32::from(*b) << (16 - 8 * i as u32))
                });
                for i in 0..4 {
                    if i <= chunk.len() {
                        let mut ch = char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]);
                        if format == "urlbase64" {
                            ch = match ch {
                                '+' => '-',
                                '/' => '_',
                                other => other,
                            };
                        }
                        res.push(ch);
                    } else {
                        res.push('=');
                    }
                }
            }
            Some(res)
        }
        _ => None,
    }
}

fn decode(text: &str, format: &str) -> Option<String> {
    let bytes: Vec<u8> = match format {
        "hex" => {
            if text.len() % 2 != 0 {
                return None;
            }
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                .collect::<Option<_>>()?
        }
        "base64" | "urlbase64" => {
            let mut res = Vec::new();
            let mut buffer = 0u32;
            let mut bits = 0;
            for ch in text.chars().filter(|c| *c != '=') {
                let ch = match (format, ch) {
                    ("urlbase64", '-') => '+',
                    ("urlbase64", '_') => '/',
                    (_, other) => other,
                };
                let value = BASE64.iter().position(|b| char::from(*b) == ch)? as u32;
                buffer = (buffer << 6) | value;
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    res.push(((buffer >> bits) & 0xff) as u8);
                }
            }
            res
        }
        _ => return None,
    };
    String::from_utf8(bytes).ok()
}

fn escape_html(text: &str) -> String {
    let mut res = String::new();
    for ch in text.chars() {
        match ch {
            '&' => res.push_str("&amp;"),
            '<' => res.push_str("&lt;"),
            '>' => res.push_str("&gt;"),
            '"' => res.push_str("&quot;"),
            '\'' => res.push_str("&#39;"),
            other => res.push(other),
        }
    }
    res
}

fn unescape_html(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn escape_json(text: &str) -> String {
    let mut res = String::new();
    for ch in text.chars() {
        match ch {
            '"' => res.push_str("\\\""),
            '\\' => res.push_str("\\\\"),
            '\n' => res.push_str("\\n"),
            '\r' => res.push_str("\\r"),
            '\t' => res.push_str("\\t"),
            other => res.push(other),
        }
    }
    res
}

fn unescape_json(text: &str) -> String {
    let mut res = String::new();
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            res.push(ch);
            continue;
        }
        match chars.next() {
            Some('n') => res.push('\n'),
            Some('r') => res.push('\r'),
            Some('t') => res.push('\t'),
            Some('b') => res.push('\u{8}'),
            Some('f') => res.push('\u{c}'),
            Some('u') => {
                // `\uXXXX`, with a surrogate pair for characters beyond the BMP. What is not
                // a valid escape stays as written.
                let rest = chars.as_str();
                match unicode_escape(rest) {
                    Some((ch, used)) => {
                        res.push(ch);
                        chars = rest.get(used..).unwrap_or_default().chars();
                    }
                    None => res.push_str("\\u"),
                }
            }
            Some(other) => res.push(other),
            None => res.push('\\'),
        }
    }
    res
}

/// The character of the escape after `\u` at the start of `text`, and how many bytes it used.
fn unicode_escape(text: &str) -> Option<(char, usize)> {
    let unit = |text: &str| {
        text.get(..4)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
    };
    let first = unit(text)?;
    if (0xD800..0xDC00).contains(&first) {
        let low = text.get(4..)?.strip_prefix("\\u").and_then(unit)?;
        if !(0xDC00..0xE000).contains(&low) {
            return None;
        }
        let code = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
        return char::from_u32(code).map(|ch| (ch, 10));
    }
    char::from_u32(first).map(|ch| (ch, 4))
}

/// The least (or greatest) value a decimal written with its digits can stand for, at
/// `precision` digits after the point (8 when not given; empty beyond 31 or below 0).
fn boundary(value: Decimal, precision: Option<i64>, high: bool) -> Option<Decimal> {
    let precision = u32::try_from(precision.unwrap_or(8))
        .ok()
        .filter(|p| *p <= 31)?;
    let half = Decimal::parse(&format!("0.{}5", "0".repeat(value.scale() as usize)))?;
    let edge = if high {
        value.checked_add(half)?
    } else {
        value.checked_sub(half)?
    };
    if precision >= edge.scale() {
        return edge.rescaled(precision);
    }
    let rounded = if high {
        edge.ceiling_at(precision)
    } else {
        edge.floor_at(precision)
    };
    Some(rounded)
}

/// The earliest (or latest) instant a partial date, date-time or time can stand for, at
/// `precision` digits (4 year, 6 month, 8 day, 10 hour, 12 minute, 14 second, 17 millisecond;
/// times 2 to 9).
fn temporal_boundary(value: &Temporal, precision: Option<i64>, high: bool) -> Option<Temporal> {
    let mut res = *value;
    let is_time = value.kind == TemporalKind::Time;
    let precision = precision.unwrap_or(if is_time {
        9
    } else if value.kind == TemporalKind::Date {
        8
    } else {
        17
    });
    let level = match (is_time, precision) {
        (false, 4) => 1,
        (false, 6) => 2,
        (false, 8) => 3,
        (false, 10) | (true, 2) => 4,
        (false, 12) | (true, 4) => 5,
        (false, 14) | (true, 6) => 6,
        (false, 17) | (true, 9) => 7,
        _ => return None,
    };
    let fill = |present: Option<u8>, low: u8, high_value: u8, needed: bool| -> Option<u8> {
        if !needed {
            None
        } else {
            Some(present.unwrap_or(if high { high_value } else { low }))
        }
    };
    if !is_time {
        res.month = fill(value.month, 1, 12, level >= 2);
        let last_day = {
            let probe = Temporal {
                day: Some(1),
                month: res.month.or(Some(1)),
                ..res
            };
            probe
                .add_months(1)
                .and_then(|next| next.add_days(-1))
                .and_then(|last| last.day)
                .unwrap_or(28)
        };
        res.day = fill(value.day, 1, last_day, level >= 3);
    }
    res.hour = fill(value.hour, 0, 23, level >= 4);
    res.minute = fill(value.minute, 0, 59, level >= 5);
    res.second = fill(value.second, 0, 59, level >= 6);
    res.millis = if level >= 7 {
        Some(
            value
                .millis
                .map_or(if high { (999, 3) } else { (0, 3) }, |(ms, _)| (ms, 3)),
        )
    } else {
        None
    };
    if level >= 4 && !is_time {
        res.kind = TemporalKind::DateTime;
        res.offset = Some(
            value
                .offset
                .unwrap_or(if high { -12 * 60 } else { 14 * 60 }),
        );
    } else if level < 4 && !is_time {
        // Without a time part the boundary is a date.
        res.offset = None;
        res.kind = TemporalKind::Date;
    }
    Some(res)
}

/// The regular expression a `matches()`, `matchesFull()` or `replaceMatches()` call with
/// `pattern` runs: `matchesFull()` anchors it at both ends.
pub(crate) fn regex_key(function: &str, pattern: String) -> String {
    if function == "matchesFull" {
        format!("^(?:{pattern})$")
    } else {
        pattern
    }
}

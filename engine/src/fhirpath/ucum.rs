//! The UCUM units FHIRPath quantities are compared and converted in: enough of UCUM for the
//! units in clinical data (mass, length, area, volume, time, concentrations, temperatures in
//! `Cel`, `[degF]` and `K`); other units (`mm[Hg]`, `%`, `/min`, ...) compare with themselves.

use super::decimal::Decimal;

/// Calendar duration keywords of FHIRPath (`1 year`, `3 days`).
const CALENDAR: &[(&str, &str)] = &[
    ("year", "year"),
    ("years", "year"),
    ("month", "month"),
    ("months", "month"),
    ("week", "wk"),
    ("weeks", "wk"),
    ("day", "d"),
    ("days", "d"),
    ("hour", "h"),
    ("hours", "h"),
    ("minute", "min"),
    ("minutes", "min"),
    ("second", "s"),
    ("seconds", "s"),
    ("millisecond", "ms"),
    ("milliseconds", "ms"),
];

/// Unit, dimension, and factor to the dimension's base unit.
const UNITS: &[(&str, &str, &str)] = &[
    ("g", "mass", "1"),
    ("kg", "mass", "1000"),
    ("mg", "mass", "0.001"),
    ("ug", "mass", "0.000001"),
    ("ng", "mass", "0.000000001"),
    ("[lb_av]", "mass", "453.59237"),
    ("[oz_av]", "mass", "28.349523125"),
    ("m", "length", "1"),
    ("m2", "area", "1"),
    ("cm2", "area", "0.0001"),
    ("km", "length", "1000"),
    ("cm", "length", "0.01"),
    ("mm", "length", "0.001"),
    ("um", "length", "0.000001"),
    ("[in_i]", "length", "0.0254"),
    ("[ft_i]", "length", "0.3048"),
    ("L", "volume", "1"),
    ("l", "volume", "1"),
    ("dL", "volume", "0.1"),
    ("mL", "volume", "0.001"),
    ("ml", "volume", "0.001"),
    ("uL", "volume", "0.000001"),
    ("s", "time", "1"),
    ("ms", "time", "0.001"),
    ("min", "time", "60"),
    ("h", "time", "3600"),
    ("d", "time", "86400"),
    ("wk", "time", "604800"),
    ("mo", "time", "2629800"),
    ("a", "time", "31557600"),
    ("mmol/L", "amount/volume", "1"),
    ("umol/L", "amount/volume", "0.001"),
    ("g/dL", "mass/volume", "10"),
    ("g/L", "mass/volume", "1"),
    ("mg/dL", "mass/volume", "0.01"),
    ("mg/L", "mass/volume", "0.001"),
];

/// True for `year`, `days`, ... (written without quotes).
pub fn is_calendar_keyword(unit: &str) -> bool {
    CALENDAR.iter().any(|(keyword, _)| *keyword == unit)
}

/// A calendar keyword's UCUM code for comparison (`days` → `d`); `year`/`month` stay apart,
/// since calendar years and months are not fixed lengths of time.
fn canonical_unit(unit: &str) -> &str {
    CALENDAR
        .iter()
        .find(|(keyword, _)| *keyword == unit)
        .map_or(unit, |(_, code)| code)
}

/// Temperatures in kelvin: UCUM's `Cel` and `[degF]` are offset scales, not multiples.
fn to_kelvin(value: Decimal, unit: &str) -> Option<Decimal> {
    match unit {
        "K" => Some(value),
        "Cel" => value.checked_add(Decimal::parse("273.15")?),
        // K = (F - 32) * 5/9 + 273.15
        "[degF]" => value
            .checked_sub(Decimal::from_i64(32))?
            .checked_mul(Decimal::from_i64(5))?
            .checked_div(Decimal::from_i64(9))?
            .checked_add(Decimal::parse("273.15")?),
        _ => None,
    }
}

fn from_kelvin(value: Decimal, unit: &str) -> Option<Decimal> {
    match unit {
        "K" => Some(value),
        "Cel" => value.checked_sub(Decimal::parse("273.15")?),
        "[degF]" => value
            .checked_sub(Decimal::parse("273.15")?)?
            .checked_mul(Decimal::from_i64(9))?
            .checked_div(Decimal::from_i64(5))?
            .checked_add(Decimal::from_i64(32)),
        _ => None,
    }
}

/// Brings two quantities to one unit; `None` when their units cannot be compared.
pub fn comparable(
    a: Decimal,
    unit_a: &str,
    b: Decimal,
    unit_b: &str,
) -> Option<(Decimal, Decimal)> {
    let (unit_a, unit_b) = (canonical_unit(unit_a), canonical_unit(unit_b));
    if unit_a == unit_b {
        return Some((a, b));
    }
    if let (Some(x), Some(y)) = (to_kelvin(a, unit_a), to_kelvin(b, unit_b)) {
        return Some((x, y));
    }
    let find = |unit: &str| UNITS.iter().find(|(code, _, _)| *code == unit);
    let (Some((_, dimension_a, factor_a)), Some((_, dimension_b, factor_b))) =
        (find(unit_a), find(unit_b))
    else {
        return None;
    };
    if dimension_a != dimension_b {
        return None;
    }
    Some((
        a.checked_mul(Decimal::parse(factor_a)?)?,
        b.checked_mul(Decimal::parse(factor_b)?)?,
    ))
}

/// A quantity in its dimension's base unit (kelvin for temperatures), with the dimension's
/// name; units outside the table are their own dimension, with the value unchanged.
pub fn normal(value: Decimal, unit: &str) -> Option<(Decimal, &str)> {
    let unit = canonical_unit(unit);
    if let Some(kelvin) = to_kelvin(value, unit) {
        return Some((kelvin, "temperature"));
    }
    match UNITS.iter().find(|(code, _, _)| *code == unit) {
        Some((_, dimension, factor)) => {
            Some((value.checked_mul(Decimal::parse(factor)?)?, dimension))
        }
        None => Some((value, unit)),
    }
}

/// Converts a quantity to another unit of the same dimension.
pub fn convert(value: Decimal, from: &str, to: &str) -> Option<Decimal> {
    let (from, to) = (canonical_unit(from), canonical_unit(to));
    if from == to {
        return Some(value);
    }
    if let Some(kelvin) = to_kelvin(value, from) {
        return from_kelvin(kelvin, to);
    }
    let find = |unit: &str| UNITS.iter().find(|(code, _, _)| *code == unit);
    let ((_, dimension_from, factor_from), (_, dimension_to, factor_to)) = (find(from)?, find(to)?);
    if dimension_from != dimension_to {
        return None;
    }
    value
        .checked_mul(Decimal::parse(factor_from)?)?
        .checked_div(Decimal::parse(factor_to)?)
}

/// `a * b` or `a / b` of two quantities, with the unit of the result: units of one dimension
/// multiply into the base unit squared (`cm * m` → `m2`) and divide into `1`; other units
/// combine as written (`g/m`).
pub fn multiply(
    a: Decimal,
    unit_a: &str,
    b: Decimal,
    unit_b: &str,
    divide: bool,
) -> Option<(Decimal, alloc::string::String)> {
    let find = |unit: &str| UNITS.iter().find(|(code, _, _)| *code == unit);
    let base = |dimension: &str| {
        UNITS
            .iter()
            .find(|(_, dim, factor)| *dim == dimension && *factor == "1")
            .map(|(code, _, _)| *code)
    };
    if let (Some((_, dim_a, _)), Some((_, dim_b, _))) = (find(unit_a), find(unit_b)) {
        if dim_a == dim_b {
            let base_unit = base(dim_a)?;
            let (x, y) = comparable(a, unit_a, b, unit_b)?;
            return if divide {
                Some((x.checked_div(y)?, alloc::string::String::from("1")))
            } else {
                Some((x.checked_mul(y)?, alloc::format!("{base_unit}2")))
            };
        }
    }
    let unit = |u: &str| {
        if u == "1" {
            alloc::string::String::new()
        } else {
            alloc::string::String::from(u)
        }
    };
    if divide {
        let unit = if unit_b == "1" {
            unit(unit_a)
        } else {
            alloc::format!("{unit_a}/{unit_b}")
        };
        Some((a.checked_div(b)?, unit))
    } else {
        let unit = match (unit_a, unit_b) {
            ("1", other) | (other, "1") => alloc::string::String::from(other),
            _ => alloc::format!("{unit_a}.{unit_b}"),
        };
        Some((a.checked_mul(b)?, unit))
    }
}

/// True when two units measure the same dimension.
pub fn same_dimension(unit_a: &str, unit_b: &str) -> bool {
    let (unit_a, unit_b) = (canonical_unit(unit_a), canonical_unit(unit_b));
    if unit_a == unit_b {
        return true;
    }
    let temperature = |unit: &str| matches!(unit, "K" | "Cel" | "[degF]");
    if temperature(unit_a) && temperature(unit_b) {
        return true;
    }
    let find = |unit: &str| {
        UNITS
            .iter()
            .find(|(code, _, _)| *code == unit)
            .map(|(_, dim, _)| *dim)
    };
    matches!((find(unit_a), find(unit_b)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap_or_else(|| Decimal::from_i64(0))
    }

    #[track_caller]
    fn check_convert(value: &str, from: &str, to: &str, expected: &str) {
        let got = convert(d(value), from, to).map(|v| v.round(4));
        let equal =
            got.is_some_and(|got| got.cmp_value(&d(expected)) == core::cmp::Ordering::Equal);
        assert!(
            equal,
            "{value} {from} -> {to}: expected {expected}, got {:?}",
            got.map(|v| v.to_text())
        );
    }

    #[test]
    fn converts_the_units_of_clinical_data() {
        check_convert("1", "kg", "g", "1000");
        check_convert("250", "mg", "g", "0.250");
        check_convert("180", "cm", "m", "1.80");
        check_convert("70", "[in_i]", "cm", "177.800");
        check_convert("23", "Cel", "[degF]", "73.4000");
        check_convert("98.6", "[degF]", "Cel", "37.0000");
        check_convert("0", "Cel", "K", "273.15");
        check_convert("2", "h", "min", "120");
        check_convert("3", "days", "h", "72");
        assert!(convert(d("1"), "kg", "m").is_none());
        assert!(convert(d("1"), "year", "d").is_none());
    }

    #[test]
    fn units_compare_only_within_their_dimension() {
        assert!(same_dimension("mg", "kg"));
        assert!(same_dimension("Cel", "[degF]"));
        assert!(same_dimension("mm[Hg]", "mm[Hg]"));
        assert!(same_dimension("%", "%"));
        assert!(!same_dimension("cm", "s"));
        assert!(!same_dimension("/min", "mm[Hg]"));
    }
}

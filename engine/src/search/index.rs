//! Index values: what a search parameter's expression finds in a resource, encoded as text
//! that sorts the way the parameter compares, so that a search is a range scan.
//!
//! Encodings by parameter type (`hex` is 16 hexadecimal digits that sort as the number does):
//! - string: the text lower-cased with accents folded (`müller` → `muller`); the payload keeps
//!   the text as written, for `:exact`. HumanName and Address give each of their parts.
//! - token: `=code␁system` for codes (Coding, CodeableConcept, Identifier value, ContactPoint
//!   value, code, boolean, string); `~text` for display texts (`:text`); `@typesystem|typecode|value`
//!   for identifiers with a type (`:of-type`).
//! - date: the range a value covers, in milliseconds since 1970 UTC, twice: `L` + hex(low)
//!   with the high bound as payload, and `H` + hex(high) with the low bound as payload, so that
//!   prefixes bounding either end scan a range.
//! - number: hex of the value.
//! - quantity: `␁` + hex(value) for searches without units, `dimension␁` + hex(value in the
//!   dimension's base unit) for UCUM units, and `system|code␁` + hex(value).
//! - reference: `id␁Type` for references to resources (relative, or absolute on this server),
//!   `>url` for other absolute URLs and canonicals, `@value␁system` for `Reference.identifier`.
//! - uri: the URI as written.
//!
//! **Invariant:** an encoded value never holds `␀` (the key separator) or `␂` (between a value
//! and its payload in a key): control characters `␀`, `␁` and `␂` in data become spaces.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::fhirpath::{Decimal, Item, System, Temporal, TemporalKind};
use crate::model::SearchParamType;
use crate::resource::Object;

/// One index value of a parameter: the encoded value and its payload.
pub type Encoded = (String, String);

/// Text as string search compares it: lower case, accents folded, no control separators.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_normalized(&mut out, text);
    out
}

/// Appends [`normalize`] of `text` to `out`.
fn push_normalized(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\0' | '\u{1}' | '\u{2}' => out.push(' '),
            _ if c.is_ascii() => out.push(c.to_ascii_lowercase()),
            'ß' => out.push_str("ss"),
            'Æ' | 'æ' => out.push_str("ae"),
            'Œ' | 'œ' => out.push_str("oe"),
            _ => out.extend(fold_accent(c).to_lowercase()),
        }
    }
}

/// `~` and the normalized text: the key of a text value.
fn text_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    out.push('~');
    push_normalized(&mut out, text);
    out
}

/// The letter without its accent, for the Latin-1 and Latin Extended-A letters.
fn fold_accent(c: char) -> char {
    match c {
        'À'..='Å' | 'à'..='å' | 'Ā'..='ą' => 'a',
        'Ç' | 'ç' | 'Ć'..='č' => 'c',
        'Ď'..='đ' | 'Ð' | 'ð' => 'd',
        'È'..='Ë' | 'è'..='ë' | 'Ē'..='ě' => 'e',
        'Ĝ'..='ģ' => 'g',
        'Ĥ'..='ħ' => 'h',
        'Ì'..='Ï' | 'ì'..='ï' | 'Ĩ'..='ı' => 'i',
        'Ĵ' | 'ĵ' => 'j',
        'Ķ' | 'ķ' => 'k',
        'Ĺ'..='ł' => 'l',
        'Ñ' | 'ñ' | 'Ń'..='ň' => 'n',
        'Ò'..='Ö' | 'Ø' | 'ò'..='ö' | 'ø' | 'Ō'..='ő' => 'o',
        'Ŕ'..='ř' => 'r',
        'Ś'..='š' => 's',
        'Ţ'..='ŧ' => 't',
        'Ù'..='Ü' | 'ù'..='ü' | 'Ũ'..='ų' => 'u',
        'Ŵ' | 'ŵ' => 'w',
        'Ý' | 'ý' | 'ÿ' | 'Ŷ'..='Ÿ' => 'y',
        'Ź'..='ž' => 'z',
        _ => c,
    }
}

/// Text kept in a key: control separators become spaces.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_clean(&mut out, text);
    out
}

/// Appends [`clean`] of `text` to `out`.
fn push_clean(out: &mut String, text: &str) {
    if text.bytes().any(|byte| byte <= 2) {
        out.extend(
            text.chars()
                .map(|c| if u32::from(c) <= 2 { ' ' } else { c }),
        );
    } else {
        out.push_str(text);
    }
}

/// Appends the 16 hex digits of `value`.
fn push_hex16(out: &mut String, value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((value >> (shift * 4)) & 0xf) as usize]));
    }
}

/// 16 hex digits that sort as the signed number does.
pub fn hex_i64(value: i64) -> String {
    let mut out = String::with_capacity(16);
    push_hex16(&mut out, (value as u64) ^ (1 << 63));
    out
}

/// The number back from [`hex_i64`].
pub fn unhex_i64(text: &str) -> Option<i64> {
    u64::from_str_radix(text.get(..16)?, 16)
        .ok()
        .map(|bits| (bits ^ (1 << 63)) as i64)
}

/// 16 hex digits that sort as the floating-point number does.
pub fn hex_f64(value: f64) -> String {
    let bits = value.to_bits();
    let key = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    let mut out = String::with_capacity(16);
    push_hex16(&mut out, key);
    out
}

/// The number back from [`hex_f64`].
pub fn unhex_f64(text: &str) -> Option<f64> {
    let key = u64::from_str_radix(text.get(..16)?, 16).ok()?;
    let bits = if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    };
    Some(f64::from_bits(bits))
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

const MS_PER_DAY: i64 = 86_400_000;

/// The instants a date or date-time covers, to the millisecond: `2020` covers the whole year.
/// Values without a time zone are taken as UTC. Times of day have no range.
pub fn temporal_range(value: &Temporal) -> Option<(i64, i64)> {
    if value.kind == TemporalKind::Time {
        return None;
    }
    let year = i64::from(value.year);
    let month = i64::from(value.month.unwrap_or(1));
    let day = i64::from(value.day.unwrap_or(1));
    let hour = i64::from(value.hour.unwrap_or(0));
    let minute = i64::from(value.minute.unwrap_or(0));
    let second = i64::from(value.second.unwrap_or(0));
    let (millis, digits) = value.millis.unwrap_or((0, 3));
    let offset = i64::from(value.offset.unwrap_or(0));
    let low = days_from_civil(year, month, day) * MS_PER_DAY
        + ((hour * 60 + minute - offset) * 60 + second) * 1000
        + i64::from(millis);
    let next = if value.month.is_none() {
        days_from_civil(year + 1, 1, 1) * MS_PER_DAY - offset * 60_000
    } else if value.day.is_none() {
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        days_from_civil(next_year, next_month, 1) * MS_PER_DAY - offset * 60_000
    } else if value.hour.is_none() {
        low + MS_PER_DAY
    } else if value.minute.is_none() {
        low + 3_600_000
    } else if value.second.is_none() {
        low + 60_000
    } else if value.millis.is_none() {
        low + 1000
    } else {
        low + [100, 10, 1]
            .get(usize::from(digits.clamp(1, 3)) - 1)
            .copied()
            .unwrap_or(1)
    };
    Some((low, next - 1))
}

/// Parses a FHIR date, dateTime or instant as text into its range.
pub fn date_text_range(text: &str) -> Option<(i64, i64)> {
    temporal_range(&Temporal::parse(text, None)?)
}

/// The base unit's value of a UCUM quantity, with the dimension's key.
pub fn ucum_normal(value: Decimal, code: &str) -> Option<(f64, String)> {
    let (normal, dimension) = crate::fhirpath::ucum_normal(value, code)?;
    Some((normal.to_f64(), alloc::format!("u:{dimension}")))
}

/// The index values of one item found by a parameter of type `kind`.
pub fn encode(kind: SearchParamType, item: &Item<'_>, base_url: &str, out: &mut Vec<Encoded>) {
    match kind {
        SearchParamType::String => encode_string(item, out),
        SearchParamType::Token => encode_token(item, out),
        SearchParamType::Date => encode_date(item, out),
        SearchParamType::Number => {
            if let Some(value) = number_of(item) {
                out.push((hex_f64(value), String::new()));
            }
        }
        SearchParamType::Quantity => encode_quantity(item, out),
        SearchParamType::Reference => encode_reference(item, base_url, out),
        SearchParamType::Uri => {
            if let Some(System::String(text)) = item.to_system() {
                out.push((clean(&text), String::new()));
            }
        }
        SearchParamType::Composite | SearchParamType::Special => {}
    }
}

fn text_of(item: &Item<'_>) -> Option<String> {
    match item.to_system()? {
        System::String(text) => Some(text.into_owned()),
        System::Boolean(flag) => Some(flag.to_string()),
        System::Integer(value) => Some(value.to_string()),
        System::Decimal(value) => Some(value.to_text()),
        System::Temporal(value) => Some(value.to_text()),
        System::Quantity(..) => None,
    }
}

fn push_string(text: &str, out: &mut Vec<Encoded>) {
    if !text.is_empty() {
        out.push((normalize(text), clean(text)));
    }
}

fn encode_string(item: &Item<'_>, out: &mut Vec<Encoded>) {
    match item {
        Item::Object(object) => {
            let parts: &[&str] = match object.type_def().name {
                "HumanName" => &["text", "family", "given", "prefix", "suffix"],
                "Address" => &[
                    "text",
                    "line",
                    "city",
                    "district",
                    "state",
                    "postalCode",
                    "country",
                ],
                _ => &[],
            };
            for part in parts {
                for text in object.texts(part) {
                    push_string(text, out);
                }
            }
        }
        _ => {
            if let Some(text) = text_of(item) {
                push_string(&text, out);
            }
        }
    }
}

/// The token value of a code in a system.
pub fn token(code: &str, system: &str) -> String {
    let mut out = String::with_capacity(code.len() + system.len() + 2);
    out.push('=');
    push_clean(&mut out, code);
    out.push('\u{1}');
    push_clean(&mut out, system);
    out
}

fn encode_coding(coding: &Object, out: &mut Vec<Encoded>) {
    if let Some(code) = coding.text("code") {
        out.push((
            token(code, coding.text("system").unwrap_or_default()),
            String::new(),
        ));
    }
    if let Some(display) = coding.text("display") {
        out.push((text_key(display), clean(display)));
    }
}

fn encode_token(item: &Item<'_>, out: &mut Vec<Encoded>) {
    match item {
        Item::Object(object) => match object.type_def().name {
            "Coding" => encode_coding(object, out),
            "CodeableConcept" => {
                for coding in object.objects("coding") {
                    encode_coding(coding, out);
                }
                if let Some(text) = object.text("text") {
                    out.push((text_key(text), clean(text)));
                }
            }
            "Identifier" => {
                if let Some(value) = object.text("value") {
                    out.push((
                        token(value, object.text("system").unwrap_or_default()),
                        String::new(),
                    ));
                    for identifier_type in object.objects("type") {
                        for coding in identifier_type.objects("coding") {
                            out.push((
                                alloc::format!(
                                    "@{}|{}|{}",
                                    clean(coding.text("system").unwrap_or_default()),
                                    clean(coding.text("code").unwrap_or_default()),
                                    clean(value)
                                ),
                                String::new(),
                            ));
                        }
                    }
                }
                if let Some(text) = object.objects("type").find_map(|t| t.text("text")) {
                    out.push((text_key(text), clean(text)));
                }
            }
            "ContactPoint" => {
                if let Some(value) = object.text("value") {
                    out.push((token(value, ""), String::new()));
                    if let Some(system) = object.text("system") {
                        out.push((token(value, system), String::new()));
                    }
                }
            }
            _ => {}
        },
        _ => {
            if let Some(text) = text_of(item) {
                out.push((token(&text, ""), String::new()));
            }
        }
    }
}

/// Both keys of a date range.
pub fn push_range(low: i64, high: i64, out: &mut Vec<Encoded>) {
    let (low, high) = (hex_i64(low), hex_i64(high));
    out.push((["L", &low].concat(), high.clone()));
    out.push((["H", &high].concat(), low));
}

fn encode_date(item: &Item<'_>, out: &mut Vec<Encoded>) {
    match item {
        Item::Object(object) => match object.type_def().name {
            "Period" => {
                let low = object
                    .text("start")
                    .and_then(date_text_range)
                    .map_or(i64::MIN, |(low, _)| low);
                let high = object
                    .text("end")
                    .and_then(date_text_range)
                    .map_or(i64::MAX, |(_, high)| high);
                if object.text("start").is_some() || object.text("end").is_some() {
                    push_range(low, high.max(low), out);
                }
            }
            "Timing" => {
                let events: Vec<(i64, i64)> =
                    object.texts("event").filter_map(date_text_range).collect();
                if let (Some(low), Some(high)) = (
                    events.iter().map(|r| r.0).min(),
                    events.iter().map(|r| r.1).max(),
                ) {
                    push_range(low, high, out);
                }
                for repeat in object.objects("repeat") {
                    for bounds in repeat.objects("boundsPeriod") {
                        encode_date(&Item::Object(bounds), out);
                    }
                }
            }
            _ => {}
        },
        _ => {
            if let Some(System::Temporal(value)) = item.to_system() {
                if let Some((low, high)) = temporal_range(&value) {
                    push_range(low, high, out);
                }
            } else if let Some(System::String(text)) = item.to_system() {
                if let Some((low, high)) = date_text_range(&text) {
                    push_range(low, high, out);
                }
            }
        }
    }
}

fn number_of(item: &Item<'_>) -> Option<f64> {
    // A decimal too large or too precise for the exact type (`1e308`) is indexed as the
    // nearest double.
    if let Item::Primitive(primitive, _) = item {
        if let Some(crate::resource::PrimitiveValue::Number(text)) = &primitive.value {
            if Decimal::parse_json(text).is_none() {
                return text.parse::<f64>().ok().filter(|number| number.is_finite());
            }
        }
    }
    match item.to_system()? {
        System::Integer(value) => Some(value as f64),
        System::Decimal(value) => Some(value.to_f64()),
        System::Quantity(value, _) => Some(value.to_f64()),
        _ => None,
    }
}

fn encode_quantity(item: &Item<'_>, out: &mut Vec<Encoded>) {
    let Item::Object(object) = item else {
        if let Some(value) = number_of(item) {
            out.push((["\u{1}", &hex_f64(value)].concat(), String::new()));
        }
        return;
    };
    let name = object.type_def().name;
    if name == "Range" {
        for bound in ["low", "high"] {
            for quantity in object.objects(bound) {
                encode_quantity(&Item::Object(quantity), out);
            }
        }
        return;
    }
    let Some(value) = object
        .fields
        .iter()
        .find(|field| {
            object
                .element_def(field)
                .is_some_and(|def| def.name == "value")
        })
        .and_then(|field| match &field.value {
            crate::resource::Value::Primitive(primitive) => match &primitive.value {
                Some(crate::resource::PrimitiveValue::Number(text)) => Some(text.as_str()),
                _ => None,
            },
            _ => None,
        })
    else {
        return;
    };
    // Exact where the decimal fits (UCUM conversion needs it), else as the nearest double:
    // `1e308` is a valid decimal too, and must be found.
    let exact = Decimal::parse_json(value);
    let Some(number) = exact.map(|exact| exact.to_f64()).or_else(|| {
        value
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
    }) else {
        return;
    };
    let raw = hex_f64(number);
    out.push((["\u{1}", &raw].concat(), String::new()));
    let system = object.text("system").unwrap_or_default();
    let code = if name == "Money" {
        object.text("currency")
    } else {
        object.text("code")
    };
    if let Some(code) = code {
        out.push((
            [&clean(system), "|", &clean(code), "\u{1}", &raw].concat(),
            String::new(),
        ));
        if system.is_empty() || system == "http://unitsofmeasure.org" {
            if let Some((normal, dimension)) = exact.and_then(|exact| ucum_normal(exact, code)) {
                out.push((
                    [&dimension, "\u{1}", &hex_f64(normal)].concat(),
                    String::new(),
                ));
            }
        }
    }
}

/// The index value of a literal reference: `id␁Type` for a resource on this server (relative,
/// or absolute under `base_url`, with any `_history` part dropped), `>url` for other URLs.
pub fn reference_value(reference: &str, base_url: &str) -> Option<String> {
    if reference.starts_with('#') || reference.is_empty() {
        return None;
    }
    let relative = reference
        .strip_prefix(base_url)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(reference);
    let relative = relative
        .split_once("/_history/")
        .map_or(relative, |(head, _)| head);
    let mut parts = relative.split('/');
    if let (Some(type_name), Some(id), None) = (parts.next(), parts.next(), parts.next()) {
        if crate::model::resource_type(type_name).is_some() && !id.is_empty() {
            return Some([&clean(id), "\u{1}", type_name].concat());
        }
    }
    let url = reference.split_once('|').map_or(reference, |(url, _)| url);
    Some([">", &clean(url)].concat())
}

fn encode_reference(item: &Item<'_>, base_url: &str, out: &mut Vec<Encoded>) {
    match item {
        Item::Object(object) if object.type_def().name == "Reference" => {
            if let Some(value) = object
                .text("reference")
                .and_then(|reference| reference_value(reference, base_url))
            {
                out.push((value, String::new()));
            }
            for identifier in object.objects("identifier") {
                if let Some(value) = identifier.text("value") {
                    out.push((
                        alloc::format!(
                            "@{}\u{1}{}",
                            clean(value),
                            clean(identifier.text("system").unwrap_or_default())
                        ),
                        String::new(),
                    ));
                }
            }
        }
        _ => {
            if let Some(System::String(text)) = item.to_system() {
                if let Some(value) = reference_value(&text, base_url) {
                    out.push((value, String::new()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys stored by earlier versions must be found again: the text of each encoding is
    /// that of the formatting it replaced.
    #[test]
    fn encodings_write_the_text_stored_keys_hold() {
        for value in [i64::MIN, -1_000_000, -1, 0, 1, 42, 1 << 40, i64::MAX] {
            assert_eq!(
                hex_i64(value),
                alloc::format!("{:016x}", (value as u64) ^ (1 << 63))
            );
        }
        for value in [f64::MIN, -2.5, -0.0, 0.0, 1e-300, 3.75, 1e308] {
            let bits = value.to_bits();
            let key = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            assert_eq!(hex_f64(value), alloc::format!("{key:016x}"));
        }
        assert_eq!(clean("a\0b\u{1}c\u{2}d\u{3}é"), "a b c d\u{3}é");
        assert_eq!(token("x\0y", "s|t"), "=x y\u{1}s|t");
        // The letters each as before the ASCII ones were taken apart.
        let text = "ÆÇdé Straße\u{1}ABC-İ ŒΣ\0Zz09~";
        let mut before = String::new();
        for c in text.chars() {
            match c {
                '\0' | '\u{1}' | '\u{2}' => before.push(' '),
                'ß' => before.push_str("ss"),
                'Æ' | 'æ' => before.push_str("ae"),
                'Œ' | 'œ' => before.push_str("oe"),
                _ => before.extend(fold_accent(c).to_lowercase()),
            }
        }
        assert_eq!(normalize(text), before);
        assert_eq!(normalize("ABC-Straße"), "abc-strasse");
        assert_eq!(
            reference_value("Patient/p\u{1}1/_history/2", ""),
            Some(String::from("p 1\u{1}Patient"))
        );
        assert_eq!(
            reference_value("http://x.org/y|1", ""),
            Some(String::from(">http://x.org/y"))
        );
    }

    #[test]
    fn hex_encodings_sort_as_numbers() {
        let numbers = [-1e9, -2.5, -0.0, 0.0, 1e-9, 3.0, 1e12];
        for pair in numbers.windows(2) {
            assert!(hex_f64(pair[0]) <= hex_f64(pair[1]), "{pair:?}");
            assert_eq!(unhex_f64(&hex_f64(pair[0])), Some(pair[0]));
        }
        let ints = [i64::MIN, -5, 0, 7, i64::MAX];
        for pair in ints.windows(2) {
            assert!(hex_i64(pair[0]) < hex_i64(pair[1]));
            assert_eq!(unhex_i64(&hex_i64(pair[1])), Some(pair[1]));
        }
    }

    #[test]
    fn dates_cover_their_precision() {
        let year = date_text_range("2020").unwrap_or_default();
        let day = date_text_range("2020-02-29").unwrap_or_default();
        let instant = date_text_range("2020-02-29T23:00:00+01:00").unwrap_or_default();
        assert_eq!(year.0, 1_577_836_800_000);
        assert_eq!(year.1, 1_609_459_199_999);
        assert_eq!(day.1 - day.0, MS_PER_DAY - 1);
        assert_eq!(instant.0, day.0 + 22 * 3_600_000);
        assert_eq!(instant.1, instant.0 + 999);
    }

    #[test]
    fn strings_fold_case_and_accents() {
        assert_eq!(normalize("Müller-ÉLODIE"), "muller-elodie");
        assert_eq!(normalize("Straße"), "strasse");
    }
}

//! Answer values of a QuestionnaireResponse: their types, how two compare (answerOption
//! membership, enableWhen, minValue and maxValue), and the core extensions that hold them.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::model;
use crate::resource::{Object, PrimitiveValue, Value};

/// The base of the core extensions' URLs.
const CORE_EXTENSION: &str = "http://hl7.org/fhir/StructureDefinition/";

/// The value of the choice element `name` (`value[x]`, `answer[x]`) with its type's name.
pub(super) fn typed<'o>(object: &'o Object, name: &str) -> Option<(&'static str, &'o Value)> {
    object.fields.iter().find_map(|field| {
        let element = object.element_def(field)?;
        if element.name != name {
            return None;
        }
        let type_id = element.types.get(usize::from(field.choice))?.type_id;
        Some((model::type_def(type_id).name, &field.value))
    })
}

/// `valueCoding` for `Coding`.
pub(super) fn value_name(type_name: &str) -> String {
    let mut res = String::from("value");
    let mut chars = type_name.chars();
    if let Some(first) = chars.next() {
        res.extend(first.to_uppercase());
        res.push_str(chars.as_str());
    }
    res
}

/// The core extensions `name` on `object`.
pub(super) fn extension_objects<'o>(
    object: &'o Object,
    name: &'o str,
) -> impl Iterator<Item = &'o Object> {
    object.objects("extension").filter(move |extension| {
        extension
            .text("url")
            .and_then(|url| url.strip_prefix(CORE_EXTENSION))
            == Some(name)
    })
}

/// The values of the core extensions `name` on `object`.
pub(super) fn extensions<'o>(object: &'o Object, name: &'o str) -> impl Iterator<Item = &'o Value> {
    extension_objects(object, name)
        .filter_map(|extension| typed(extension, "value").map(|(_, value)| value))
}

/// The number the first core extension `name` holds.
pub(super) fn extension_number(object: &Object, name: &str) -> Option<f64> {
    extensions(object, name)
        .find_map(text_of)
        .and_then(|text| text.parse().ok())
}

pub(super) fn text_of(value: &Value) -> Option<&str> {
    match value {
        Value::Primitive(primitive) => match &primitive.value {
            Some(PrimitiveValue::String(text) | PrimitiveValue::Number(text)) => Some(text),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Primitive(primitive) => match primitive.value {
            Some(PrimitiveValue::Boolean(flag)) => Some(flag),
            _ => None,
        },
        _ => None,
    }
}

/// A value for messages.
pub(super) fn shown(value_type: &str, value: &Value) -> String {
    match value {
        Value::Primitive(primitive) => match &primitive.value {
            Some(PrimitiveValue::Boolean(flag)) => flag.to_string(),
            Some(PrimitiveValue::Number(number)) => number.clone(),
            Some(PrimitiveValue::String(text)) => format!("\"{text}\""),
            None => String::from("(no value)"),
        },
        Value::Complex(object) => match value_type {
            "Coding" => format!(
                "{}#{}",
                object.text("system").unwrap_or_default(),
                object.text("code").unwrap_or_default()
            ),
            "Quantity" => format!(
                "{} {}",
                object.text("value").unwrap_or_default(),
                object
                    .text("code")
                    .or_else(|| object.text("unit"))
                    .unwrap_or_default()
            ),
            "Reference" => String::from(object.text("reference").unwrap_or_default()),
            _ => String::from(value_type),
        },
        Value::Resource(_) => String::from(value_type),
    }
}

/// True when the Coding (or Quantity) `coding` has a code among `codes`, with the same system
/// when both name one.
pub(super) fn in_codes(codes: &[(Option<&str>, &str)], coding: &Object) -> bool {
    let Some(code) = coding.text("code") else {
        return true;
    };
    codes.iter().any(|(system, known)| {
        *known == code
            && system
                .zip(coding.text("system"))
                .is_none_or(|(wanted, found)| wanted == found)
    })
}

/// Whether two answer values are the same (`=` in enableWhen, answerOption membership).
pub(super) fn equal(a_type: &str, a: &Value, b_type: &str, b: &Value) -> bool {
    match (a, b) {
        (Value::Complex(a_object), Value::Complex(b_object)) => match (a_type, b_type) {
            ("Coding", "Coding") => {
                a_object.text("code") == b_object.text("code")
                    && a_object
                        .text("system")
                        .zip(b_object.text("system"))
                        .is_none_or(|(a_system, b_system)| a_system == b_system)
            }
            ("Reference", "Reference") => {
                a_object.text("reference").is_some()
                    && a_object.text("reference") == b_object.text("reference")
            }
            ("Quantity", "Quantity") => order(a_type, a, b_type, b) == Some(Ordering::Equal),
            _ => false,
        },
        (Value::Primitive(_), Value::Primitive(_)) => match (bool_of(a), bool_of(b)) {
            (Some(a_flag), Some(b_flag)) => a_flag == b_flag,
            (None, None) => order(a_type, a, b_type, b) == Some(Ordering::Equal),
            _ => false,
        },
        _ => false,
    }
}

/// How two answer values compare; `None` when they do not (other types, other units, dates
/// equal to the lesser precision of the two).
pub(super) fn order(a_type: &str, a: &Value, b_type: &str, b: &Value) -> Option<Ordering> {
    let numeric = |type_name: &str| matches!(type_name, "decimal" | "integer");
    let temporal = |type_name: &str| matches!(type_name, "date" | "dateTime" | "instant");
    if numeric(a_type) && numeric(b_type) {
        let a_number: f64 = text_of(a)?.parse().ok()?;
        let b_number: f64 = text_of(b)?.parse().ok()?;
        return a_number.partial_cmp(&b_number);
    }
    if (temporal(a_type) && temporal(b_type)) || (a_type == "time" && b_type == "time") {
        let (a_text, b_text) = (text_of(a)?, text_of(b)?);
        let common = a_text.len().min(b_text.len());
        let found = a_text.get(..common)?.cmp(b_text.get(..common)?);
        return (found != Ordering::Equal || a_text.len() == b_text.len()).then_some(found);
    }
    if a_type == "Quantity" && b_type == "Quantity" {
        let (Value::Complex(a_object), Value::Complex(b_object)) = (a, b) else {
            return None;
        };
        if unit_of(a_object) != unit_of(b_object) {
            return None;
        }
        let a_number: f64 = a_object.text("value")?.parse().ok()?;
        let b_number: f64 = b_object.text("value")?.parse().ok()?;
        return a_number.partial_cmp(&b_number);
    }
    if a_type == b_type && matches!(a_type, "string" | "uri") {
        return Some(text_of(a)?.cmp(text_of(b)?));
    }
    None
}

/// A Quantity's unit: its code, or the unit text without one.
pub(super) fn unit_of(quantity: &Object) -> Option<&str> {
    quantity.text("code").or_else(|| quantity.text("unit"))
}

/// The resource type a literal reference names (`Patient/1`, `https://x/fhir/Patient/1`,
/// `Patient/1/_history/2`); `None` for `#contained`, `urn:` and the like.
pub(super) fn referenced_type(reference: &str) -> Option<&str> {
    let parts: Vec<&str> = reference.split('/').collect();
    let at = match parts.as_slice() {
        [.., kind, _, "_history", _] => *kind,
        [.., kind, _] => *kind,
        _ => return None,
    };
    model::type_by_name(at)
        .is_some_and(|type_id| model::type_def(type_id).kind == model::TypeKind::Resource)
        .then_some(at)
        .or_else(|| {
            // An unknown type in the usual place (`Chicken/1`) is reported as found.
            at.chars()
                .next()
                .filter(char::is_ascii_uppercase)
                .map(|_| at)
        })
}

/// The number of bytes base64 `data` decodes to.
pub(super) fn decoded_length(data: &str) -> usize {
    let n_chars = data
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .count();
    let padding = data
        .trim_end()
        .bytes()
        .rev()
        .take_while(|&byte| byte == b'=')
        .count();
    (n_chars / 4 * 3).saturating_sub(padding)
}

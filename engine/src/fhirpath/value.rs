//! What FHIRPath expressions evaluate to: collections of items, each either FHIR data from a
//! resource (borrowed, with its type) or a value of the FHIRPath system types.

use alloc::borrow::Cow;
use alloc::string::String;
use core::cmp::Ordering;

use super::datetime::{Temporal, TemporalKind};
use super::decimal::Decimal;
use crate::model::{self, JsonKind, TypeId, TypeKind};
use crate::resource::{Object, Primitive, PrimitiveValue, Value};

/// One item of a collection.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// A resource, complex value or backbone element from the resource tree.
    Object(&'a Object),
    /// A FHIR primitive from the resource tree, with its type (`date`, `code`, ...).
    Primitive(&'a Primitive, TypeId),
    /// `System.Boolean`
    Boolean(bool),
    /// `System.Integer`
    Integer(i64),
    /// `System.Decimal`
    Decimal(Decimal),
    /// `System.String`
    String(Cow<'a, str>),
    /// `System.Date`, `System.DateTime` or `System.Time`
    Temporal(Temporal),
    /// `System.Quantity`: a value and a UCUM unit or calendar keyword.
    Quantity(Decimal, Cow<'a, str>),
    /// What `type()` returns: a type's namespace (`System`, `FHIR`) and name.
    TypeInfo(&'static str, &'static str),
}

/// A value of a FHIRPath system type, as the operators see FHIR data.
#[derive(Debug, Clone)]
pub enum System<'a> {
    /// `System.Boolean`
    Boolean(bool),
    /// `System.Integer`
    Integer(i64),
    /// `System.Decimal`
    Decimal(Decimal),
    /// `System.String` (and FHIR strings, codes, URIs...)
    String(Cow<'a, str>),
    /// `System.Date`, `System.DateTime` or `System.Time`
    Temporal(Temporal),
    /// `System.Quantity`: a value and a UCUM unit or calendar keyword.
    Quantity(Decimal, Cow<'a, str>),
}

impl<'a> Item<'a> {
    /// An item for a value of the resource tree.
    pub fn from_value(value: &'a Value, type_id: TypeId) -> Item<'a> {
        match value {
            Value::Primitive(primitive) => Item::Primitive(primitive, type_id),
            Value::Complex(object) => Item::Object(object),
            Value::Resource(object) => Item::Object(object),
        }
    }

    /// The FHIR type of the item, for data from the resource tree.
    pub fn fhir_type(&self) -> Option<TypeId> {
        match self {
            Item::Object(object) => Some(object.type_id),
            Item::Primitive(_, type_id) => Some(*type_id),
            _ => None,
        }
    }

    /// The item's type name: the FHIR type for data, the system type otherwise.
    pub fn type_name(&self) -> (&'static str, &'static str) {
        match self {
            Item::Object(object) => ("FHIR", object.type_def().name),
            Item::Primitive(_, type_id) => ("FHIR", model::type_def(*type_id).name),
            Item::Boolean(_) => ("System", "Boolean"),
            Item::Integer(_) => ("System", "Integer"),
            Item::Decimal(_) => ("System", "Decimal"),
            Item::String(_) => ("System", "String"),
            Item::Temporal(value) => match value.kind {
                TemporalKind::Date => ("System", "Date"),
                TemporalKind::DateTime => ("System", "DateTime"),
                TemporalKind::Time => ("System", "Time"),
            },
            Item::Quantity(..) => ("System", "Quantity"),
            Item::TypeInfo(..) => ("System", "TypeInfo"),
        }
    }

    /// The item as a system value: FHIR primitives convert by their type, FHIR `Quantity`
    /// values (and its specialisations) become quantities; other objects have none.
    pub fn to_system(&self) -> Option<System<'a>> {
        match self {
            Item::Boolean(flag) => Some(System::Boolean(*flag)),
            Item::Integer(value) => Some(System::Integer(*value)),
            Item::Decimal(value) => Some(System::Decimal(*value)),
            Item::String(text) => Some(System::String(text.clone())),
            Item::Temporal(value) => Some(System::Temporal(*value)),
            Item::Quantity(value, unit) => Some(System::Quantity(*value, unit.clone())),
            Item::Primitive(primitive, type_id) => {
                primitive_to_system(primitive.value.as_ref()?, *type_id)
            }
            Item::Object(object) => quantity_of(object),
            Item::TypeInfo(..) => None,
        }
    }

    /// True when the item is data of type `target` or a type derived from it.
    pub fn is_fhir_type_id(&self, target: TypeId) -> bool {
        self.fhir_type()
            .is_some_and(|type_id| model::is_of_type(type_id, target))
    }

    /// True when the item is data of type `name` or a type derived from it.
    pub fn is_fhir_type(&self, name: &str) -> bool {
        let Some(mut type_id) = self.fhir_type() else {
            return false;
        };
        loop {
            let def = model::type_def(type_id);
            if def.name == name {
                return true;
            }
            if def.kind == TypeKind::Backbone {
                return name == "BackboneElement" || name == "Element";
            }
            match def.base {
                Some(base) => type_id = base,
                None => return false,
            }
        }
    }
}

fn primitive_to_system(value: &PrimitiveValue, type_id: TypeId) -> Option<System<'_>> {
    let def = model::type_def(type_id);
    match (value, def.primitive.map(|p| p.json)) {
        (PrimitiveValue::Boolean(flag), _) => Some(System::Boolean(*flag)),
        (PrimitiveValue::Number(text), Some(JsonKind::Integer)) => {
            text.parse().ok().map(System::Integer)
        }
        (PrimitiveValue::Number(text), _) => Decimal::parse_json(text).map(System::Decimal),
        (PrimitiveValue::String(text), _) => match def.name {
            "date" => Temporal::parse(text, None).map(System::Temporal),
            "dateTime" | "instant" => Temporal::parse(text, None).map(|mut value| {
                if value.hour.is_some() || value.kind == TemporalKind::DateTime {
                    value.kind = TemporalKind::DateTime;
                }
                if def.name == "dateTime" && value.hour.is_none() {
                    // A dateTime with date precision stays a DateTime.
                    value.kind = TemporalKind::DateTime;
                }
                System::Temporal(value)
            }),
            "time" => Temporal::parse(text, Some(TemporalKind::Time)).map(System::Temporal),
            _ => Some(System::String(Cow::Borrowed(text.as_str()))),
        },
    }
}

/// A FHIR `Quantity` (or `Age`, `Duration`, ...) as a system quantity: its value and its UCUM
/// `code` (else its `unit`).
fn quantity_of(object: &Object) -> Option<System<'_>> {
    let is_quantity = {
        let mut type_id = Some(object.type_id);
        let mut found = false;
        while let Some(id) = type_id {
            let def = model::type_def(id);
            if def.name == "Quantity" {
                found = true;
                break;
            }
            type_id = def.base;
        }
        found
    };
    if !is_quantity {
        return None;
    }
    fn field_text<'o>(object: &'o Object, name: &str) -> Option<&'o str> {
        let elements = object.type_def().elements;
        let field = object.fields.iter().find(|field| {
            elements
                .get(usize::from(field.element))
                .is_some_and(|element| element.name == name)
        })?;
        match &field.value {
            Value::Primitive(Primitive {
                value: Some(PrimitiveValue::String(text)),
                ..
            }) => Some(text.as_str()),
            Value::Primitive(Primitive {
                value: Some(PrimitiveValue::Number(text)),
                ..
            }) => Some(text.as_str()),
            _ => None,
        }
    }
    let text = |name: &str| field_text(object, name);
    let value = Decimal::parse_json(text("value")?)?;
    let unit = text("code").or_else(|| text("unit")).unwrap_or("1");
    Some(System::Quantity(value, Cow::Borrowed(unit)))
}

impl System<'_> {
    /// Compares two values for `<`, `>`, ... (`None`: not comparable, or precision differs).
    pub fn compare(&self, other: &System<'_>) -> Option<Ordering> {
        match (self, other) {
            (System::Integer(a), System::Integer(b)) => Some(a.cmp(b)),
            (System::Integer(a), System::Decimal(b)) => Some(Decimal::from_i64(*a).cmp_value(b)),
            (System::Decimal(a), System::Integer(b)) => Some(a.cmp_value(&Decimal::from_i64(*b))),
            (System::Decimal(a), System::Decimal(b)) => Some(a.cmp_value(b)),
            (System::String(a), System::String(b)) => Some(a.cmp(b)),
            (System::Temporal(a), System::Temporal(b)) => a.compare(b),
            (System::Quantity(a, unit_a), System::Quantity(b, unit_b)) => {
                let (a, b) = super::ucum::comparable(*a, unit_a, *b, unit_b)?;
                Some(a.cmp_value(&b))
            }
            _ => None,
        }
    }

    /// A total order for `sort()`: values of one kind by value (temporal values by their
    /// components, missing ones first), different kinds in a fixed order. Unlike [`compare`],
    /// it never answers "unknown", so sorting cannot see an inconsistent order.
    ///
    /// [`compare`]: System::compare
    pub fn sort_cmp(&self, other: &System<'_>) -> Ordering {
        let rank = |value: &System<'_>| match value {
            System::Boolean(_) => 0,
            System::Integer(_) | System::Decimal(_) => 1,
            System::String(_) => 2,
            System::Temporal(_) => 3,
            System::Quantity(..) => 4,
        };
        let decimal = |value: &System<'_>| match value {
            System::Integer(value) => Some(Decimal::from_i64(*value)),
            System::Decimal(value) => Some(*value),
            _ => None,
        };
        match (self, other) {
            (System::Boolean(a), System::Boolean(b)) => a.cmp(b),
            (System::String(a), System::String(b)) => a.cmp(b),
            (System::Temporal(a), System::Temporal(b)) => a.sort_key().cmp(&b.sort_key()),
            (System::Quantity(a, unit_a), System::Quantity(b, unit_b)) => {
                unit_a.cmp(unit_b).then_with(|| a.cmp_value(b))
            }
            _ => match (decimal(self), decimal(other)) {
                (Some(a), Some(b)) => a.cmp_value(&b),
                _ => rank(self).cmp(&rank(other)),
            },
        }
    }

    /// `=`: `Some(true/false)`, or `None` when the result is empty (precision differs).
    pub fn equals(&self, other: &System<'_>) -> Option<bool> {
        match (self, other) {
            (System::Boolean(a), System::Boolean(b)) => Some(a == b),
            (System::String(a), System::String(b)) => Some(a == b),
            (System::Temporal(a), System::Temporal(b)) => {
                if a.kind != b.kind
                    && (a.kind == super::datetime::TemporalKind::Time
                        || b.kind == super::datetime::TemporalKind::Time)
                {
                    return Some(false);
                }
                a.compare(b).map(|ordering| ordering == Ordering::Equal)
            }
            (System::Quantity(..), System::Quantity(..)) => self
                .compare(other)
                .map(|ordering| ordering == Ordering::Equal),
            (System::Integer(_) | System::Decimal(_), System::Integer(_) | System::Decimal(_)) => {
                self.compare(other)
                    .map(|ordering| ordering == Ordering::Equal)
            }
            _ => Some(false),
        }
    }

    /// `~`: like `=`, but strings ignore case and whitespace differences, decimals compare at
    /// the lesser precision, and differing precision is `false` rather than empty.
    pub fn equivalent(&self, other: &System<'_>) -> bool {
        match (self, other) {
            (System::String(a), System::String(b)) => normalize(a) == normalize(b),
            (System::Decimal(a), System::Decimal(b)) => {
                let scale = a.scale().min(b.scale());
                a.round(scale).cmp_value(&b.round(scale)) == Ordering::Equal
            }
            (System::Quantity(a, unit_a), System::Quantity(b, unit_b)) => {
                let Some((x, y)) = super::ucum::comparable(*a, unit_a, *b, unit_b) else {
                    return false;
                };
                let scale = x.scale().min(y.scale());
                x.round(scale).cmp_value(&y.round(scale)) == Ordering::Equal
            }
            (System::Integer(a), System::Decimal(b)) | (System::Decimal(b), System::Integer(a)) => {
                let scale = 0;
                Decimal::from_i64(*a).cmp_value(&b.round(scale)) == Ordering::Equal
            }
            _ => self.equals(other).unwrap_or(false),
        }
    }

    /// The value as text, as `toString()` gives it.
    pub fn to_text(&self) -> String {
        match self {
            System::Boolean(flag) => String::from(if *flag { "true" } else { "false" }),
            System::Integer(value) => alloc::format!("{value}"),
            System::Decimal(value) => value.to_text(),
            System::String(text) => String::from(text.as_ref()),
            System::Temporal(value) => value.to_text(),
            System::Quantity(value, unit) => {
                if super::ucum::is_calendar_keyword(unit) {
                    alloc::format!("{value} {unit}")
                } else {
                    alloc::format!("{value} '{unit}'")
                }
            }
        }
    }
}

fn normalize(text: &str) -> String {
    let mut res = String::new();
    for word in text.split_whitespace() {
        if !res.is_empty() {
            res.push(' ');
        }
        res.push_str(&word.to_lowercase());
    }
    res
}

//! Writing resources as FHIR JSON in canonical form: `resourceType` first, then elements in the
//! order of the specification, each primitive's `_name` companion right after it; numbers as
//! they were read. Compact, or pretty with two-space indentation.

use alloc::string::String;

use crate::model::{self, ElementDef, TypeKind};
use crate::outcome::push_json_string;
use crate::resource::{Field, Object, PrimitiveValue, Value};

/// Layout of the written JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// No whitespace at all.
    Compact,
    /// Two-space indentation, one member or item per line, a space after each colon.
    Pretty,
}

/// Writes a resource as FHIR JSON.
pub fn write_resource(resource: &Object, style: Style) -> String {
    write_resource_with_capacity(resource, style, 0)
}

/// Writes any object as FHIR JSON: a resource with its `resourceType`, a data type or backbone
/// element without.
pub fn write_object(object: &Object, style: Style) -> String {
    let mut writer = Writer {
        res: String::new(),
        pretty: style == Style::Pretty,
        depth: 0,
    };
    let def = object.type_def();
    let resource_type = (def.kind == crate::model::TypeKind::Resource).then_some(def.name);
    writer.object(object, resource_type);
    writer.res
}

/// [`write_resource`] into a string that starts with room for `capacity` bytes (for example the
/// size of the JSON the resource was read from), which saves growing it step by step.
pub fn write_resource_with_capacity(resource: &Object, style: Style, capacity: usize) -> String {
    let mut writer = Writer {
        res: String::with_capacity(capacity),
        pretty: style == Style::Pretty,
        depth: 0,
    };
    writer.object(resource, Some(resource.type_def().name));
    writer.res
}

struct Writer {
    res: String,
    pretty: bool,
    depth: usize,
}

impl Writer {
    fn newline(&mut self) {
        if self.pretty {
            self.res.push('\n');
            for _ in 0..self.depth {
                self.res.push_str("  ");
            }
        }
    }

    /// Starts a member: separator, line break, key.
    fn key(&mut self, first: &mut bool, prefix: &str, name: &str, suffix: &str) {
        if !*first {
            self.res.push(',');
        }
        *first = false;
        self.newline();
        self.res.push('"');
        self.res.push_str(prefix);
        self.res.push_str(name);
        self.res.push_str(suffix);
        self.res.push_str(if self.pretty { "\": " } else { "\":" });
    }

    fn open(&mut self, bracket: char) {
        self.res.push(bracket);
        self.depth += 1;
    }

    fn close(&mut self, bracket: char, empty: bool) {
        self.depth -= 1;
        if !empty {
            self.newline();
        }
        self.res.push(bracket);
    }

    fn item_separator(&mut self, first: &mut bool) {
        if !*first {
            self.res.push(',');
        }
        *first = false;
        self.newline();
    }

    fn object(&mut self, object: &Object, resource_type: Option<&str>) {
        let def = object.type_def();
        self.open('{');
        let mut first = true;
        if let Some(resource_type) = resource_type {
            self.key(&mut first, "", "resourceType", "");
            push_json_string(&mut self.res, resource_type);
        }
        let mut rest = object.fields.as_slice();
        while let Some(head) = rest.first() {
            // The entries of one element are consecutive.
            let count = rest
                .iter()
                .take_while(|field| field.element == head.element)
                .count();
            let (entries, tail) = rest.split_at(count);
            rest = tail;
            let Some(element) = def.elements.get(usize::from(head.element)) else {
                continue;
            };
            let Some(element_type) = element.types.get(usize::from(head.choice)) else {
                continue;
            };
            let type_def = model::type_def(element_type.type_id);
            let suffix = choice_suffix(element, type_def.name);
            if type_def.kind == TypeKind::Primitive {
                self.primitive_field(&mut first, element, &suffix, entries);
            } else {
                self.key(&mut first, "", element.name, &suffix);
                if element.is_array() {
                    self.open('[');
                    let mut first_item = true;
                    for entry in entries {
                        self.item_separator(&mut first_item);
                        self.complex(&entry.value);
                    }
                    self.close(']', first_item);
                } else if let Some(entry) = entries.first() {
                    self.complex(&entry.value);
                }
            }
        }
        self.close('}', first);
    }

    fn complex(&mut self, value: &Value) {
        match value {
            Value::Complex(object) => self.object(object, None),
            Value::Resource(object) => self.object(object, Some(object.type_def().name)),
            // A primitive where a complex value belongs cannot come out of the reader.
            Value::Primitive(_) => self.res.push_str("null"),
        }
    }

    fn primitive_field(
        &mut self,
        first: &mut bool,
        element: &ElementDef,
        suffix: &str,
        entries: &[Field],
    ) {
        let primitives = || {
            entries.iter().map(|entry| match &entry.value {
                Value::Primitive(primitive) => Some(primitive),
                _ => None,
            })
        };
        let any_value = primitives().any(|primitive| primitive.is_some_and(|p| p.value.is_some()));
        let any_companion =
            primitives().any(|primitive| primitive.is_some_and(|p| p.companion.is_some()));
        if any_value {
            self.key(first, "", element.name, suffix);
            if element.is_array() {
                self.open('[');
                let mut first_item = true;
                for primitive in primitives() {
                    self.item_separator(&mut first_item);
                    match primitive.and_then(|p| p.value.as_ref()) {
                        Some(value) => self.primitive_value(value),
                        None => self.res.push_str("null"),
                    }
                }
                self.close(']', first_item);
            } else if let Some(value) = primitives().next().flatten().and_then(|p| p.value.as_ref())
            {
                self.primitive_value(value);
            }
        }
        if any_companion {
            self.key(first, "_", element.name, suffix);
            if element.is_array() {
                self.open('[');
                let mut first_item = true;
                for primitive in primitives() {
                    self.item_separator(&mut first_item);
                    match primitive.and_then(|p| p.companion.as_deref()) {
                        Some(companion) => self.object(companion, None),
                        None => self.res.push_str("null"),
                    }
                }
                self.close(']', first_item);
            } else if let Some(companion) = primitives()
                .next()
                .flatten()
                .and_then(|p| p.companion.as_deref())
            {
                self.object(companion, None);
            }
        }
    }

    fn primitive_value(&mut self, value: &PrimitiveValue) {
        match value {
            PrimitiveValue::Boolean(true) => self.res.push_str("true"),
            PrimitiveValue::Boolean(false) => self.res.push_str("false"),
            PrimitiveValue::Number(text) => self.res.push_str(text),
            PrimitiveValue::String(text) => push_json_string(&mut self.res, text),
        }
    }
}

/// The type suffix of a choice element's JSON name (`Quantity` in `valueQuantity`), else "".
fn choice_suffix(element: &ElementDef, type_name: &str) -> String {
    let mut res = String::new();
    if element.has(model::flags::CHOICE) {
        let mut chars = type_name.chars();
        if let Some(first) = chars.next() {
            res.extend(first.to_uppercase());
            res.push_str(chars.as_str());
        }
    }
    res
}

//! Reading FHIR JSON into the typed tree of [`crate::resource`], by the R4 JSON rules:
//! the `resourceType` discriminator, choice elements named by type (`valueQuantity`), primitive
//! companions (`_birthDate`, arrays with `null` placeholders), `contained` and other nested
//! resources; no `null` outside those placeholders, no empty strings, arrays or objects, no
//! unknown elements, no element given twice.
//!
//! Every violation becomes a [`ParseError`] with the element's FHIRPath location and the line
//! and column of the offending key or value; reading goes on past such violations so that one
//! pass reports them all.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::reader::{self, Limits, Member, Node, Value as Json};
use super::ParseError;
use crate::model::{self, flags, ElementDef, JsonKind, TypeDef, TypeId, TypeKind};
use crate::resource::{Field, Object, Primitive, PrimitiveValue, Value};

/// Reads a FHIR resource from JSON bytes.
///
/// # Errors
/// [`crate::Error::Json`] when the bytes are not JSON; [`crate::Error::Resource`] with every
/// violation of the FHIR JSON rules found.
pub fn parse_resource(bytes: &[u8]) -> Result<Object, crate::Error> {
    parse_resource_with(bytes, Limits::default())
}

/// [`parse_resource`] with explicit limits on depth and size.
///
/// # Errors
/// As [`parse_resource`].
pub fn parse_resource_with(bytes: &[u8], limits: Limits) -> Result<Object, crate::Error> {
    let root = reader::parse(bytes, limits)?;
    let mut reader = FhirReader {
        bytes,
        issues: Vec::new(),
        path: String::new(),
    };
    let resource = reader.resource(&root);
    match resource {
        Some(resource) if reader.issues.is_empty() => Ok(resource),
        _ => Err(crate::Error::Resource(reader.issues)),
    }
}

struct FhirReader<'a> {
    bytes: &'a [u8],
    issues: Vec<ParseError>,
    /// FHIRPath location of the value being read.
    path: String,
}

/// The JSON members that give one element: its values and/or their `_` companions.
struct Slot<'n> {
    element: u16,
    choice: u16,
    key: &'n str,
    main: Option<&'n Node>,
    companion: Option<&'n Node>,
}

impl<'n> FhirReader<'_> {
    fn issue(&mut self, message: String, offset: usize) {
        let err = ParseError::new(message, self.bytes, offset);
        let path = (!self.path.is_empty()).then(|| self.path.clone());
        self.issues.push(ParseError { path, ..err });
    }

    /// Reads a resource; `None` when it cannot be typed at all (the issue is recorded).
    fn resource(&mut self, node: &'n Node) -> Option<Object> {
        let Json::Object(members) = &node.value else {
            let found = node.value.describe();
            self.issue(
                format!("expected a FHIR resource (a JSON object), found {found}"),
                node.offset,
            );
            return None;
        };
        let Some(type_member) = members.iter().find(|member| member.key == "resourceType") else {
            self.issue(
                "expected a \"resourceType\" element, found none".into(),
                node.offset,
            );
            return None;
        };
        let type_name = match &type_member.node.value {
            Json::String(name) => name.as_str(),
            other => {
                let found = other.describe();
                self.issue(
                    format!("expected \"resourceType\" to be a string, found {found}"),
                    type_member.node.offset,
                );
                return None;
            }
        };
        let Some(type_id) = model::resource_type(type_name) else {
            let message = if model::type_by_name(type_name)
                .is_some_and(|id| model::type_def(id).kind == TypeKind::Resource)
            {
                format!(
                    "expected a concrete resource type, found the abstract type \"{type_name}\""
                )
            } else {
                format!("expected a FHIR R4 resource type, found \"{type_name}\"")
            };
            self.issue(message, type_member.node.offset);
            return None;
        };
        // A nested resource's elements are located from the outermost resource, through the
        // element that holds it: `Bundle.entry[0].resource.name[0]`.
        let saved = self.path.len();
        if self.path.is_empty() {
            self.path.push_str(type_name);
        }
        let res = self.object(members, type_id, true);
        self.path.truncate(saved);
        Some(res)
    }

    /// Reads the members of an object of type `type_id`.
    fn object(&mut self, members: &'n [Member], type_id: TypeId, is_resource: bool) -> Object {
        let def = model::type_def(type_id);
        let mut slots: Vec<Slot<'n>> = Vec::with_capacity(members.len());
        for member in members {
            if is_resource && member.key == "resourceType" {
                continue;
            }
            let (name, is_companion) = match member.key.strip_prefix('_') {
                Some(name) => (name, true),
                None => (member.key.as_str(), false),
            };
            let Some(json_name) = def.json_name(name) else {
                self.unknown_element(&member.key, member.key_offset);
                continue;
            };
            let Some(element) = def.elements.get(usize::from(json_name.element)) else {
                continue;
            };
            if is_companion && !companion_allowed(element, json_name.choice) {
                self.unknown_element(&member.key, member.key_offset);
                continue;
            }
            match slots
                .iter_mut()
                .find(|slot| slot.element == json_name.element)
            {
                Some(slot) if slot.choice != json_name.choice => {
                    let message = format!(
                        "expected one type for \"{}[x]\", found \"{}\" and \"{}\"",
                        element.name, slot.key, member.key
                    );
                    self.issue_at_element(
                        def,
                        element,
                        json_name.choice,
                        message,
                        member.key_offset,
                    );
                }
                Some(slot) => {
                    // "x" and "_x" of one element (the reader already refuses a repeated key).
                    if is_companion {
                        slot.companion = Some(&member.node);
                    } else {
                        slot.main = Some(&member.node);
                        slot.key = &member.key;
                    }
                }
                None => slots.push(Slot {
                    element: json_name.element,
                    choice: json_name.choice,
                    key: name,
                    main: (!is_companion).then_some(&member.node),
                    companion: is_companion.then_some(&member.node),
                }),
            }
        }
        slots.sort_by_key(|slot| slot.element);
        let mut fields = Vec::with_capacity(slots.len());
        for slot in slots {
            let Some(element) = def.elements.get(usize::from(slot.element)) else {
                continue;
            };
            let saved = self.path.len();
            self.push_element(element, slot.choice);
            let values = if element.is_array() {
                self.repeated(element, &slot)
            } else {
                self.single(element, &slot).into_iter().collect()
            };
            self.path.truncate(saved);
            if !values.is_empty() {
                fields.push(Field {
                    element: slot.element,
                    choice: slot.choice,
                    values,
                });
            }
        }
        Object { type_id, fields }
    }

    fn unknown_element(&mut self, key: &str, offset: usize) {
        let saved = self.path.len();
        self.path.push('.');
        self.path.push_str(key);
        self.issue(format!("unknown element \"{key}\""), offset);
        self.path.truncate(saved);
    }

    fn issue_at_element(
        &mut self,
        _def: &TypeDef,
        element: &ElementDef,
        choice: u16,
        message: String,
        offset: usize,
    ) {
        let saved = self.path.len();
        self.push_element(element, choice);
        self.issue(message, offset);
        self.path.truncate(saved);
    }

    fn push_element(&mut self, element: &ElementDef, choice: u16) {
        self.path.push('.');
        self.path.push_str(element.name);
        if element.has(flags::CHOICE) {
            if let Some(element_type) = element.types.get(usize::from(choice)) {
                self.path.push_str(".ofType(");
                self.path
                    .push_str(model::type_def(element_type.type_id).name);
                self.path.push(')');
            }
        }
    }

    fn single(&mut self, element: &ElementDef, slot: &Slot<'n>) -> Option<Value> {
        for node in [slot.main, slot.companion].into_iter().flatten() {
            if let Json::Array(_) = node.value {
                self.issue(
                    format!(
                        "expected a single value for \"{}\", found an array",
                        slot.key
                    ),
                    node.offset,
                );
                return None;
            }
        }
        self.value(
            element,
            slot.choice,
            slot.key,
            slot.main,
            slot.companion,
            false,
        )
    }

    fn repeated(&mut self, element: &ElementDef, slot: &Slot<'n>) -> Vec<Value> {
        let mut arrays: [Option<&'n [Node]>; 2] = [None, None];
        for (idx, node) in [slot.main, slot.companion].into_iter().enumerate() {
            let Some(node) = node else { continue };
            match &node.value {
                Json::Array(items) if items.is_empty() => {
                    self.issue(
                        "expected an array with at least one item, found an empty array".into(),
                        node.offset,
                    );
                    return Vec::new();
                }
                Json::Array(items) => {
                    if let Some(slot_array) = arrays.get_mut(idx) {
                        *slot_array = Some(items);
                    }
                }
                other => {
                    let found = other.describe();
                    self.issue(
                        format!(
                            "expected an array for \"{}\" (it repeats), found {found}",
                            slot.key
                        ),
                        node.offset,
                    );
                    return Vec::new();
                }
            }
        }
        let [main, companion] = arrays;
        if let (Some(main), Some(companion), Some(main_node), Some(companion_node)) =
            (main, companion, slot.main, slot.companion)
        {
            if main.len() != companion.len() {
                let message = format!(
                    "expected \"_{}\" to have as many items as \"{}\" ({}), found {}",
                    slot.key,
                    slot.key,
                    main.len(),
                    companion.len()
                );
                self.issue(message, companion_node.offset.max(main_node.offset));
                return Vec::new();
            }
        }
        let len = main
            .map_or(0, <[Node]>::len)
            .max(companion.map_or(0, <[Node]>::len));
        let mut values = Vec::with_capacity(len);
        for item_idx in 0..len {
            let saved = self.path.len();
            self.path.push_str(&format!("[{item_idx}]"));
            let main_item = main.and_then(|items| items.get(item_idx));
            let companion_item = companion.and_then(|items| items.get(item_idx));
            if let Some(value) = self.value(
                element,
                slot.choice,
                slot.key,
                main_item,
                companion_item,
                true,
            ) {
                values.push(value);
            }
            self.path.truncate(saved);
        }
        values
    }

    /// Reads one value of `element` from its JSON value and/or companion.
    fn value(
        &mut self,
        element: &ElementDef,
        choice: u16,
        key: &str,
        main: Option<&'n Node>,
        companion: Option<&'n Node>,
        in_array: bool,
    ) -> Option<Value> {
        let type_id = element.types.get(usize::from(choice))?.type_id;
        let def = model::type_def(type_id);
        let main = main
            .filter(|node| !(in_array && matches!(node.value, Json::Null) && companion.is_some()));
        let companion = companion
            .filter(|node| !(in_array && matches!(node.value, Json::Null) && main.is_some()));
        match def.kind {
            TypeKind::Primitive => self.primitive(def, type_id, key, main, companion),
            _ if def.name == "Resource" => {
                let node = self.present(main, key)?;
                let saved = self.path.len();
                let res = self
                    .resource(node)
                    .map(|object| Value::Resource(Box::new(object)));
                self.path.truncate(saved);
                res
            }
            _ => {
                let node = self.present(main, key)?;
                let members = self.non_empty_object(node)?;
                Some(Value::Complex(self.object(members, type_id, false)))
            }
        }
    }

    /// The node, unless it is missing or `null` (then an issue).
    fn present(&mut self, node: Option<&'n Node>, key: &str) -> Option<&'n Node> {
        match node {
            Some(Node {
                value: Json::Null,
                offset,
            }) => {
                self.issue(
                    format!("expected a value for \"{key}\", found null"),
                    *offset,
                );
                None
            }
            Some(node) => Some(node),
            None => None,
        }
    }

    fn non_empty_object(&mut self, node: &'n Node) -> Option<&'n [Member]> {
        match &node.value {
            Json::Object(members) if members.is_empty() => {
                self.issue(
                    "expected an object with at least one element, found an empty object".into(),
                    node.offset,
                );
                None
            }
            Json::Object(members) => Some(members),
            other => {
                let found = other.describe();
                self.issue(format!("expected an object, found {found}"), node.offset);
                None
            }
        }
    }

    fn primitive(
        &mut self,
        def: &TypeDef,
        type_id: TypeId,
        key: &str,
        main: Option<&'n Node>,
        companion: Option<&'n Node>,
    ) -> Option<Value> {
        if main.is_none() && companion.is_none() {
            return None;
        }
        let value = match self.present(main, key) {
            Some(node) => Some(self.primitive_value(def, key, node)?),
            None if main.is_some() => return None,
            None => None,
        };
        let companion = match self.present(companion, key) {
            Some(node) => {
                let members = self.non_empty_object(node)?;
                Some(Box::new(self.object(members, type_id, false)))
            }
            None if companion.is_some() => return None,
            None => None,
        };
        Some(Value::Primitive(Primitive { value, companion }))
    }

    fn primitive_value(&mut self, def: &TypeDef, key: &str, node: &Node) -> Option<PrimitiveValue> {
        let json = def
            .primitive
            .map_or(JsonKind::String, |primitive| primitive.json);
        let type_name = def.name;
        match (json, &node.value) {
            (JsonKind::Boolean, Json::Bool(flag)) => Some(PrimitiveValue::Boolean(*flag)),
            (JsonKind::Decimal, Json::Number(text)) => Some(PrimitiveValue::Number(text.clone())),
            (JsonKind::Integer, Json::Number(text)) => {
                if text.contains(['.', 'e', 'E']) {
                    self.issue(
                        format!(
                            "expected \"{key}\" ({type_name}) to be a whole number, found {text}"
                        ),
                        node.offset,
                    );
                    None
                } else if text.parse::<i32>().is_err() {
                    self.issue(
                        format!("expected \"{key}\" ({type_name}) to be within the 32-bit integer range, found {text}"),
                        node.offset,
                    );
                    None
                } else {
                    Some(PrimitiveValue::Number(text.clone()))
                }
            }
            (JsonKind::String, Json::String(text)) if text.is_empty() => {
                self.issue(
                    format!(
                        "expected \"{key}\" ({type_name}) to be a non-empty string, found \"\""
                    ),
                    node.offset,
                );
                None
            }
            (JsonKind::String, Json::String(text)) => Some(PrimitiveValue::String(text.clone())),
            (expected, found) => {
                let expected = match expected {
                    JsonKind::Boolean => "true or false",
                    JsonKind::Integer | JsonKind::Decimal => "a JSON number",
                    JsonKind::String => "a JSON string",
                };
                let found = match found {
                    Json::Number(text) | Json::String(text) if text.len() <= 40 => {
                        format!("{} {}", found.describe(), quote(found, text))
                    }
                    _ => found.describe().to_string(),
                };
                self.issue(
                    format!("expected \"{key}\" ({type_name}) to be {expected}, found {found}"),
                    node.offset,
                );
                None
            }
        }
    }
}

fn quote(found: &Json, text: &str) -> String {
    match found {
        Json::String(_) => format!("{text:?}"),
        _ => text.to_string(),
    }
}

/// `_name` companions exist for primitive-typed elements that carry extensions.
fn companion_allowed(element: &ElementDef, choice: u16) -> bool {
    !element.has(flags::NO_EXTENSIONS)
        && element
            .types
            .get(usize::from(choice))
            .is_some_and(|element_type| {
                model::type_def(element_type.type_id).kind == TypeKind::Primitive
            })
}

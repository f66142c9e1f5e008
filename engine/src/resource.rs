//! The engine's representation of a FHIR resource: a tree typed by the R4 model, with every
//! value kept exactly as written (numbers keep their text) and elements in canonical order.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::model::{self, ElementDef, TypeDef, TypeId};

/// A resource, a complex data type value, a backbone element, or a primitive's `_name` companion.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Object {
    /// The type: a concrete resource type, a complex type, a backbone element, or (for a
    /// primitive's companion) the primitive type.
    pub type_id: TypeId,
    /// One entry per value, sorted by the element's position in the type's definition; the
    /// values of a repeating element are consecutive entries, in order.
    pub fields: Vec<Field>,
}

/// One value of an element present in an [`Object`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// Index of the element in the type's [`TypeDef::elements`].
    pub element: u16,
    /// For choice elements: index of the chosen type in [`ElementDef::types`].
    pub choice: u16,
    /// The value.
    pub value: Value,
}

/// One value of an element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// A primitive: its value, its `_name` companion (id and extensions), or both.
    Primitive(Primitive),
    /// A complex data type or backbone element.
    Complex(Object),
    /// A resource inside another (`contained`, `Bundle.entry.resource`).
    Resource(Object),
}

/// A primitive value and its optional companion.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Primitive {
    /// The value itself; absent when only extensions are given.
    pub value: Option<PrimitiveValue>,
    /// The `_name` companion: an object of the primitive type holding `id` and `extension`.
    pub companion: Option<Box<Object>>,
}

/// The value of a primitive, as written in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PrimitiveValue {
    /// `true` or `false`.
    Boolean(bool),
    /// A number, its text exactly as written (`1.50`).
    Number(String),
    /// A string.
    String(String),
}

impl Object {
    /// Where each of `targets` lies inside this object, as the JSON steps from it that reach it
    /// (`entry.3.resource`: property names, and positions in arrays). `None` for an object not
    /// found (the companions of primitives are not looked into).
    pub fn paths_to(&self, targets: &[&Object]) -> Vec<Option<String>> {
        let mut res = alloc::vec![None; targets.len()];
        // By address, to be found by bisection.
        let mut sorted: Vec<(usize, usize)> = targets
            .iter()
            .enumerate()
            .map(|(idx, target)| (core::ptr::from_ref::<Object>(target) as usize, idx))
            .collect();
        sorted.sort_unstable();
        let mut left = targets.len();
        self.find_paths(&sorted, &mut String::new(), &mut res, &mut left);
        res
    }

    /// Objects inside a target are not looked into: a result inside another is not found.
    fn find_paths(
        &self,
        targets: &[(usize, usize)],
        path: &mut String,
        res: &mut [Option<String>],
        left: &mut usize,
    ) {
        let def = self.type_def();
        let mut position = 0usize;
        for (idx, field) in self.fields.iter().enumerate() {
            if *left == 0 {
                return;
            }
            let follows = idx > 0
                && self
                    .fields
                    .get(idx - 1)
                    .is_some_and(|before| before.element == field.element);
            position = if follows { position + 1 } else { 0 };
            let (Value::Complex(object) | Value::Resource(object)) = &field.value else {
                continue;
            };
            let Some(element) = def.elements.get(usize::from(field.element)) else {
                continue;
            };
            let name = if element.has(crate::model::flags::CHOICE) {
                def.json_names
                    .iter()
                    .find(|json_name| {
                        json_name.element == field.element
                            && json_name.choice == field.choice
                            && !json_name.name.starts_with('_')
                    })
                    .map_or(element.name, |json_name| json_name.name)
            } else {
                element.name
            };
            let mark = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
            if element.is_array() {
                path.push('.');
                path.push_str(&alloc::format!("{position}"));
            }
            let address = core::ptr::from_ref::<Object>(object) as usize;
            let first = targets.partition_point(|(target, _)| *target < address);
            let mut is_target = false;
            for (target, idx) in targets.get(first..).unwrap_or_default() {
                if *target != address {
                    break;
                }
                is_target = true;
                if let Some(found) = res.get_mut(*idx).filter(|found| found.is_none()) {
                    *found = Some(path.clone());
                    *left -= 1;
                }
            }
            if !is_target {
                object.find_paths(targets, path, res, left);
            }
            path.truncate(mark);
        }
    }

    /// Lays the object out for being read many times (a resource held for evaluation). When
    /// it holds resources in its elements' elements (a Bundle's entries, a Parameters'
    /// parameters), the parts of its first two levels are moved to fresh memory side by
    /// side: as read from JSON, each entry lies a whole resource after the one before, so
    /// that a path through all of them (`Bundle.entry.resource`) reached for a new part of
    /// memory at every step. Other objects are left as read, where the parts of one path lie
    /// close together. The values are the same either way.
    pub fn arrange_for_reading(&mut self) {
        let holds_resources = self.fields.iter().any(|field| match &field.value {
            Value::Complex(inner) => inner
                .fields
                .iter()
                .any(|field| matches!(field.value, Value::Resource(_))),
            _ => false,
        });
        if holds_resources {
            self.compact_layout(2);
        }
    }

    /// Moves the parts of the first `depths` levels (the object's own fields, then theirs),
    /// with the text of their primitives, to fresh memory one level at a time.
    fn compact_layout(&mut self, depths: usize) {
        // What was moved out of is freed only at the end, so that the fresh parts do not
        // fill the gaps it leaves.
        let mut spent = Spent::default();
        let mut depth = 0;
        while depth < depths && relayout_at(self, depth, &mut spent) {
            depth += 1;
        }
    }

    /// The definition of this object's type.
    pub fn type_def(&self) -> &'static TypeDef {
        model::type_def(self.type_id)
    }

    /// The definition of a field's element.
    pub fn element_def(&self, field: &Field) -> Option<&'static ElementDef> {
        self.type_def().elements.get(usize::from(field.element))
    }

    /// The values of the element named `name` (without a choice suffix), in order.
    pub fn values<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s Value> + use<'s> {
        let element = self
            .type_def()
            .elements
            .iter()
            .position(|element| element.name == name);
        self.fields
            .iter()
            .filter(move |field| element.is_some_and(|idx| usize::from(field.element) == idx))
            .map(|field| &field.value)
    }

    /// Sets the primitive element `name` (not repeating, not a choice) to `text`, replacing its
    /// value and keeping any `_name` companion; false when the type has no such element.
    pub fn set_text(&mut self, name: &str, text: String) -> bool {
        let Some(element) = self.element_index(name) else {
            return false;
        };
        let value = PrimitiveValue::String(text);
        if let Some(field) = self
            .fields
            .iter_mut()
            .find(|field| field.element == element)
        {
            if let Value::Primitive(primitive) = &mut field.value {
                primitive.value = Some(value);
                return true;
            }
            field.value = Value::Primitive(Primitive {
                value: Some(value),
                companion: None,
            });
            return true;
        }
        self.insert_field(Field {
            element,
            choice: 0,
            value: Value::Primitive(Primitive {
                value: Some(value),
                companion: None,
            }),
        });
        true
    }

    /// The complex element `name` (not repeating), created empty when absent; `None` when the
    /// type has no such element or it is not complex.
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Object> {
        let element = self.element_index(name)?;
        let def = self.type_def().elements.get(usize::from(element))?;
        let type_id = def.types.first()?.type_id;
        if model::type_def(type_id).kind == model::TypeKind::Primitive {
            return None;
        }
        if !self.fields.iter().any(|field| field.element == element) {
            self.insert_field(Field {
                element,
                choice: 0,
                value: Value::Complex(Object {
                    type_id,
                    fields: Vec::new(),
                }),
            });
        }
        self.fields
            .iter_mut()
            .find(|field| field.element == element)
            .and_then(|field| match &mut field.value {
                Value::Complex(object) => Some(object),
                _ => None,
            })
    }

    /// Removes every value of the element `name`.
    pub fn remove(&mut self, name: &str) {
        if let Some(element) = self.element_index(name) {
            self.fields.retain(|field| field.element != element);
        }
    }

    fn element_index(&self, name: &str) -> Option<u16> {
        let idx = self
            .type_def()
            .elements
            .iter()
            .position(|element| element.name == name)?;
        u16::try_from(idx).ok()
    }

    /// Inserts a field after the fields of its element and those before it, keeping the order.
    fn insert_field(&mut self, field: Field) {
        let at = self
            .fields
            .partition_point(|existing| existing.element <= field.element);
        self.fields.insert(at, field);
    }

    /// The text of the first value of the primitive element `name`: a string, or a number as
    /// written.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.texts(name).next()
    }

    /// The texts of every value of the primitive element `name` (strings and numbers).
    pub fn texts<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s str> + use<'s> {
        self.values(name).filter_map(|value| match value {
            Value::Primitive(Primitive {
                value: Some(PrimitiveValue::String(text) | PrimitiveValue::Number(text)),
                ..
            }) => Some(text.as_str()),
            _ => None,
        })
    }

    /// The complex values (and resources) of the element `name`, in order.
    pub fn objects<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s Object> + use<'s> {
        self.values(name).filter_map(|value| match value {
            Value::Complex(inner) => Some(inner),
            Value::Resource(inner) => Some(inner),
            Value::Primitive(_) => None,
        })
    }

    /// The resource's `id`, when this object is a resource that has one.
    pub fn id(&self) -> Option<&str> {
        match self.values("id").next()? {
            Value::Primitive(Primitive {
                value: Some(PrimitiveValue::String(id)),
                ..
            }) => Some(id),
            _ => None,
        }
    }
}

/// Buffers moved out of by [`Object::compact_layout`], freed when it ends.
#[derive(Default)]
struct Spent {
    fields: Vec<Vec<Field>>,
    strings: Vec<String>,
}

/// Moves the parts of `object` at `depth` below it (its own fields at 0, with the text of its
/// primitives); false when it has nothing that deep.
fn relayout_at(object: &mut Object, depth: usize, spent: &mut Spent) -> bool {
    if depth == 0 {
        let mut fresh = Vec::with_capacity(object.fields.len());
        fresh.append(&mut object.fields);
        spent
            .fields
            .push(core::mem::replace(&mut object.fields, fresh));
        for field in &mut object.fields {
            if let Value::Primitive(Primitive {
                value: Some(PrimitiveValue::String(text) | PrimitiveValue::Number(text)),
                ..
            }) = &mut field.value
            {
                let fresh = String::from(text.as_str());
                spent.strings.push(core::mem::replace(text, fresh));
            }
        }
        return true;
    }
    let mut deeper = false;
    for field in &mut object.fields {
        let inner = match &mut field.value {
            Value::Complex(inner) | Value::Resource(inner) => inner,
            Value::Primitive(Primitive {
                companion: Some(companion),
                ..
            }) => companion,
            Value::Primitive(_) => continue,
        };
        deeper |= relayout_at(inner, depth - 1, spent);
    }
    deeper
}

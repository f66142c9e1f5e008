//! FHIRPath Patch (R4 §2.25.1): a `Parameters` resource whose `operation` parameters add,
//! insert, delete, replace or move elements found by FHIRPath expressions.
//!
//! Each operation evaluates its path on the resource as it stands after the operations
//! before it, finds where in the JSON the elements it names are, and edits the JSON there; the
//! result is read again as a resource (so that it is checked) before the next operation.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::fhirpath::{self, Item, Options};
use crate::json::fhir::parse_resource;
use crate::json::reader::{self, Limits, Member, Node};
use crate::json::write::{write_object, Style};
use crate::model::{self, TypeKind};
use crate::resource::{Field, Object, PrimitiveValue, Value};

/// Where an element is in the JSON: the pointer tokens down to it.
type Pointer = Vec<String>;

fn json_key(object: &Object, field: &Field) -> Option<(String, bool)> {
    let element = object.element_def(field)?;
    let element_type = element.types.get(usize::from(field.choice))?;
    let mut key = String::from(element.name);
    if element.has(model::flags::CHOICE) {
        let name = model::type_def(element_type.type_id).name;
        let mut chars = name.chars();
        if let Some(first) = chars.next() {
            key.extend(first.to_uppercase());
            key.push_str(chars.as_str());
        }
    }
    Some((key, element.is_array()))
}

/// The pointer to the value at `target` (an `Object` or a `Primitive`, by address).
fn locate(object: &Object, target: *const (), at: &mut Pointer) -> bool {
    let mut index = 0;
    let mut previous: Option<u16> = None;
    for field in &object.fields {
        index = if previous == Some(field.element) {
            index + 1
        } else {
            0
        };
        previous = Some(field.element);
        let Some((key, array)) = json_key(object, field) else {
            continue;
        };
        at.push(key);
        if array {
            at.push(index.to_string());
        }
        let found = match &field.value {
            Value::Complex(inner) => {
                core::ptr::eq(inner as *const Object as *const (), target)
                    || locate(inner, target, at)
            }
            Value::Resource(inner) => {
                core::ptr::eq(inner as *const Object as *const (), target)
                    || locate(inner, target, at)
            }
            Value::Primitive(primitive) => {
                core::ptr::eq(primitive as *const _ as *const (), target)
            }
        };
        if found {
            return true;
        }
        if array {
            at.pop();
        }
        at.pop();
    }
    false
}

fn pointer_of(resource: &Object, item: &Item<'_>) -> Result<Pointer, String> {
    let target = match item {
        Item::Object(object) => *object as *const Object as *const (),
        Item::Primitive(primitive, _) => *primitive as *const _ as *const (),
        _ => {
            return Err(String::from(
                "the path does not name an element of the resource",
            ))
        }
    };
    if core::ptr::eq(resource as *const Object as *const (), target) {
        return Ok(Vec::new());
    }
    let mut at = Vec::new();
    if locate(resource, target, &mut at) {
        Ok(at)
    } else {
        Err(String::from(
            "the path does not name an element of the resource",
        ))
    }
}

fn node(value: reader::Value) -> Node {
    Node { value, offset: 0 }
}

fn get_mut<'n>(root: &'n mut Node, pointer: &[String]) -> Option<&'n mut Node> {
    let mut current = root;
    for token in pointer {
        current = match &mut current.value {
            reader::Value::Object(members) => {
                &mut members.iter_mut().find(|member| member.key == *token)?.node
            }
            reader::Value::Array(items) => items.get_mut(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The JSON of the `value` part of an operation, with the value's FHIR type name.
fn value_of(part: &Object) -> Option<(Node, &'static str)> {
    let field = part.fields.iter().find(|field| {
        part.element_def(field)
            .is_some_and(|def| def.name == "value")
    })?;
    let element = part.element_def(field)?;
    let type_def = model::type_def(element.types.get(usize::from(field.choice))?.type_id);
    let json = match &field.value {
        Value::Primitive(primitive) => node(match primitive.value.as_ref()? {
            PrimitiveValue::Boolean(flag) => reader::Value::Bool(*flag),
            PrimitiveValue::Number(text) => reader::Value::Number(text.clone()),
            PrimitiveValue::String(text) => reader::Value::String(text.clone()),
        }),
        Value::Complex(object) => reader::parse(
            write_object(object, Style::Compact).as_bytes(),
            Limits::default(),
        )
        .ok()?,
        Value::Resource(object) => reader::parse(
            crate::json::write::write_resource(object, Style::Compact).as_bytes(),
            Limits::default(),
        )
        .ok()?,
    };
    Some((json, type_def.name))
}

struct Operation<'p> {
    kind: &'p str,
    path: &'p str,
    name: Option<&'p str>,
    value: Option<(Node, &'static str)>,
    index: Option<usize>,
    source: Option<usize>,
    destination: Option<usize>,
}

fn read_operation(parameter: &Object) -> Result<Operation<'_>, String> {
    let mut operation = Operation {
        kind: "",
        path: "",
        name: None,
        value: None,
        index: None,
        source: None,
        destination: None,
    };
    for part in parameter.objects("part") {
        let value = || {
            part.fields
                .iter()
                .filter(|field| {
                    part.element_def(field)
                        .is_some_and(|def| def.name == "value")
                })
                .find_map(|field| match &field.value {
                    Value::Primitive(primitive) => primitive.value.as_ref(),
                    _ => None,
                })
        };
        let text = || match value() {
            Some(PrimitiveValue::String(text)) => Some(text.as_str()),
            _ => None,
        };
        let number = || -> Option<usize> {
            match value() {
                Some(PrimitiveValue::Number(text)) => text.parse().ok(),
                _ => None,
            }
        };
        match part.text("name") {
            Some("type") => operation.kind = text().unwrap_or_default(),
            Some("path") => operation.path = text().unwrap_or_default(),
            Some("name") => operation.name = text(),
            Some("value") => operation.value = value_of(part),
            Some("index") => operation.index = number(),
            Some("source") => operation.source = number(),
            Some("destination") => operation.destination = number(),
            _ => {}
        }
    }
    if operation.path.is_empty() {
        return Err(String::from("the operation has no path"));
    }
    Ok(operation)
}

/// Splits `Patient.identifier` into the container path and the element name.
fn container_and_name(path: &str) -> Option<(&str, &str)> {
    let (container, name) = path.rsplit_once('.')?;
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then_some((container, name))
}

/// The JSON key and whether it repeats, for child `name` of an object of `type_name`.
fn child_key(container: &Object, name: &str, value_type: Option<&str>) -> Option<(String, bool)> {
    let def = container.type_def();
    let element = def.elements.iter().find(|element| element.name == name)?;
    let mut key = String::from(name);
    if element.has(model::flags::CHOICE) {
        let value_type = value_type?;
        element
            .types
            .iter()
            .find(|t| model::type_def(t.type_id).name == value_type)?;
        let mut chars = value_type.chars();
        if let Some(first) = chars.next() {
            key.extend(first.to_uppercase());
            key.push_str(chars.as_str());
        }
    }
    Some((key, element.is_array()))
}

/// Evaluates `path` to exactly one item (or, with `optional`, at most one).
fn single<'a>(
    resource: &'a Object,
    expression: &'a fhirpath::Expression,
    path: &str,
    optional: bool,
) -> Result<Option<Item<'a>>, String> {
    let items = expression
        .evaluate(resource, &Options::default())
        .map_err(|err| format!("the path \"{path}\" failed: {err}"))?;
    match items.as_slice() {
        [] if optional => Ok(None),
        [] => Err(format!("the path \"{path}\" matches nothing")),
        [item] => Ok(Some(item.clone())),
        _ => Err(format!(
            "the path \"{path}\" matches {} elements; it must match one",
            items.len()
        )),
    }
}

/// Applies a FHIRPath Patch `Parameters` to a resource's JSON; the patched JSON, or why not.
///
/// # Errors
/// A message naming the failing operation.
pub fn apply(resource_json: &str, patch: &Object) -> Result<String, String> {
    if patch.type_def().name != "Parameters" {
        return Err(String::from("a FHIRPath Patch is a Parameters resource"));
    }
    let mut json = resource_json.to_string();
    for (number, parameter) in patch.objects("parameter").enumerate() {
        if parameter.text("name") != Some("operation") {
            return Err(format!("parameter {number} is not an \"operation\""));
        }
        let operation =
            read_operation(parameter).map_err(|err| format!("operation {number}: {err}"))?;
        json = apply_one(&json, &operation)
            .map_err(|err| format!("operation {number} ({}): {err}", operation.kind))?;
    }
    Ok(json)
}

fn compile(path: &str) -> Result<fhirpath::Expression, String> {
    fhirpath::compile(path).map_err(|err| format!("the path \"{path}\" does not parse: {err}"))
}

fn apply_one(json: &str, operation: &Operation<'_>) -> Result<String, String> {
    let resource = parse_resource(json.as_bytes()).map_err(|err| format!("{err:?}"))?;
    let path_expression = compile(operation.path)?;
    let mut tree = reader::parse(json.as_bytes(), Limits::default()).map_err(|err| err.message)?;
    let value = || {
        operation
            .value
            .clone()
            .ok_or_else(|| String::from("a value is needed"))
    };
    match operation.kind {
        "add" => {
            let name = operation.name.ok_or("an add needs a name")?;
            let container = single(&resource, &path_expression, operation.path, false)?
                .ok_or("nothing to add to")?;
            let Item::Object(container_object) = &container else {
                return Err(String::from("values can only be added to complex elements"));
            };
            let (new, value_type) = value()?;
            let (key, array) =
                child_key(container_object, name, Some(value_type)).ok_or_else(|| {
                    format!(
                        "\"{name}\" is not an element of {}",
                        container_object.type_def().name
                    )
                })?;
            let pointer = pointer_of(&resource, &container)?;
            let slot = get_mut(&mut tree, &pointer).ok_or("the element is not in the JSON")?;
            let reader::Value::Object(members) = &mut slot.value else {
                return Err(String::from("the element is not an object"));
            };
            match members.iter_mut().find(|member| member.key == key) {
                Some(member) if array => match &mut member.node.value {
                    reader::Value::Array(items) => items.push(new),
                    _ => return Err(format!("\"{key}\" is not a list")),
                },
                Some(_) => return Err(format!("\"{key}\" already has a value; use replace")),
                None => members.push(Member {
                    key,
                    key_offset: 0,
                    node: if array {
                        node(reader::Value::Array(alloc::vec![new]))
                    } else {
                        new
                    },
                }),
            }
        }
        "insert" | "move" => {
            let (container_path, name) = container_and_name(operation.path)
                .ok_or("the path must end with the name of a list element")?;
            let container_expression = compile(container_path)?;
            let container = single(&resource, &container_expression, container_path, false)?
                .ok_or("no container")?;
            let Item::Object(container_object) = &container else {
                return Err(String::from(
                    "the list's container is not a complex element",
                ));
            };
            let value_type = operation.value.as_ref().map(|(_, t)| *t);
            let (key, array) = child_key(container_object, name, value_type).ok_or_else(|| {
                format!(
                    "\"{name}\" is not an element of {}",
                    container_object.type_def().name
                )
            })?;
            if !array {
                return Err(format!("\"{name}\" is not a list"));
            }
            let pointer = pointer_of(&resource, &container)?;
            let slot = get_mut(&mut tree, &pointer).ok_or("the element is not in the JSON")?;
            let reader::Value::Object(members) = &mut slot.value else {
                return Err(String::from("the element is not an object"));
            };
            if operation.kind == "insert" {
                let index = operation.index.ok_or("an insert needs an index")?;
                let (new, _) = value()?;
                match members.iter_mut().find(|member| member.key == key) {
                    Some(member) => match &mut member.node.value {
                        reader::Value::Array(items) if index <= items.len() => {
                            items.insert(index, new)
                        }
                        _ => return Err(format!("index {index} is past the end of the list")),
                    },
                    None if index == 0 => members.push(Member {
                        key,
                        key_offset: 0,
                        node: node(reader::Value::Array(alloc::vec![new])),
                    }),
                    None => return Err(format!("index {index} is past the end of the list")),
                }
            } else {
                let (source, destination) = operation
                    .source
                    .zip(operation.destination)
                    .ok_or("a move needs a source and a destination")?;
                let member = members
                    .iter_mut()
                    .find(|member| member.key == key)
                    .ok_or("the list is empty")?;
                let reader::Value::Array(items) = &mut member.node.value else {
                    return Err(format!("\"{key}\" is not a list"));
                };
                if source >= items.len() || destination >= items.len() {
                    return Err(String::from(
                        "source or destination is past the end of the list",
                    ));
                }
                let moved = items.remove(source);
                items.insert(destination, moved);
            }
        }
        "delete" => {
            let Some(item) = single(&resource, &path_expression, operation.path, true)? else {
                return Ok(json.to_string());
            };
            let pointer = pointer_of(&resource, &item)?;
            let (last, parent) = pointer
                .split_last()
                .ok_or("the resource itself cannot be deleted")?;
            let slot = get_mut(&mut tree, parent).ok_or("the element is not in the JSON")?;
            match &mut slot.value {
                reader::Value::Array(items) => {
                    let index: usize = last.parse().map_err(|_| String::from("bad index"))?;
                    if index < items.len() {
                        items.remove(index);
                    }
                    if items.is_empty() {
                        // An empty list is not FHIR JSON: remove the element.
                        if let Some((key, grand)) = parent.split_last() {
                            if let Some(reader::Value::Object(members)) =
                                get_mut(&mut tree, grand).map(|node| &mut node.value)
                            {
                                members.retain(|member| member.key != *key);
                            }
                        }
                    }
                }
                reader::Value::Object(members) => members.retain(|member| member.key != *last),
                _ => return Err(String::from("the element is not in the JSON")),
            }
        }
        "replace" => {
            let item = single(&resource, &path_expression, operation.path, false)?
                .ok_or("nothing to replace")?;
            let (new, _) = value()?;
            let is_primitive = match &item {
                Item::Primitive(_, type_id) => {
                    model::type_def(*type_id).kind == TypeKind::Primitive
                }
                _ => false,
            };
            if is_primitive
                != matches!(
                    new.value,
                    reader::Value::Bool(_) | reader::Value::Number(_) | reader::Value::String(_)
                )
            {
                return Err(String::from("the value is not of the element's kind"));
            }
            let pointer = pointer_of(&resource, &item)?;
            if pointer.is_empty() {
                return Err(String::from("the resource itself cannot be replaced"));
            }
            let slot = get_mut(&mut tree, &pointer).ok_or("the element is not in the JSON")?;
            *slot = new;
        }
        other => {
            return Err(format!(
                "\"{other}\" is not a FHIRPath Patch operation type"
            ))
        }
    }
    let text = crate::json::patch::to_text(&tree);
    parse_resource(text.as_bytes()).map_err(|err| {
        let (_, outcome) = err.to_outcome();
        outcome.issues.first().map_or_else(
            || String::from("the patched resource is not valid JSON FHIR"),
            |issue| issue.diagnostics.clone(),
        )
    })?;
    Ok(text)
}

//! JSON Patch (RFC 6902) over the engine's JSON tree, with JSON Pointers (RFC 6901).
//!
//! Written over [`Node`] rather than a general JSON crate so that numbers keep their
//! exact text (`1.50` stays `1.50`, as FHIR requires) and the Wasm module carries one JSON
//! reader, not two.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::reader::{Member, Node, Value};

/// A failed patch: what went wrong, with the index of the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
    /// The operation's index in the patch document.
    pub operation: usize,
    /// What went wrong.
    pub message: String,
    /// True when a `test` operation failed (HTTP 422 rather than 400).
    pub test_failed: bool,
}

fn pointer_tokens(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

fn member<'n>(node: &'n Node, name: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Object(members) => members.iter().find(|m| m.key == name).map(|m| &m.node),
        _ => None,
    }
}

fn get<'n>(root: &'n Node, tokens: &[String]) -> Option<&'n Node> {
    let mut node = root;
    for token in tokens {
        node = match &node.value {
            Value::Array(items) => items.get(array_index(token, items.len(), false)?)?,
            Value::Object(_) => member(node, token)?,
            _ => return None,
        };
    }
    Some(node)
}

fn get_mut<'n>(root: &'n mut Node, tokens: &[String]) -> Option<&'n mut Node> {
    let mut node = root;
    for token in tokens {
        node = match &mut node.value {
            Value::Array(items) => {
                let index = array_index(token, items.len(), false)?;
                items.get_mut(index)?
            }
            Value::Object(members) => &mut members.iter_mut().find(|m| m.key == *token)?.node,
            _ => return None,
        };
    }
    Some(node)
}

/// An array index token: digits without leading zeros, or `-` (one past the end) when adding.
fn array_index(token: &str, len: usize, adding: bool) -> Option<usize> {
    if adding && token == "-" {
        return Some(len);
    }
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    let index: usize = token.parse().ok()?;
    let limit = if adding { len } else { len.saturating_sub(1) };
    (index <= limit && (adding || len > 0)).then_some(index)
}

fn remove(root: &mut Node, tokens: &[String]) -> Result<Node, String> {
    let (last, parent) = tokens
        .split_last()
        .ok_or_else(|| String::from("the whole document cannot be removed"))?;
    let parent = get_mut(root, parent).ok_or_else(|| String::from("no such location"))?;
    match &mut parent.value {
        Value::Array(items) => {
            let index = array_index(last, items.len(), false)
                .ok_or_else(|| format!("no element {last} in the array"))?;
            Ok(items.remove(index))
        }
        Value::Object(members) => {
            let index = members
                .iter()
                .position(|m| m.key == *last)
                .ok_or_else(|| format!("no member \"{last}\""))?;
            Ok(members.remove(index).node)
        }
        _ => Err(String::from("no such location")),
    }
}

fn add(root: &mut Node, tokens: &[String], value: Node) -> Result<(), String> {
    let Some((last, parent)) = tokens.split_last() else {
        *root = value;
        return Ok(());
    };
    let parent = get_mut(root, parent).ok_or_else(|| String::from("the parent does not exist"))?;
    match &mut parent.value {
        Value::Array(items) => {
            let index = array_index(last, items.len(), true)
                .ok_or_else(|| format!("\"{last}\" is not an index of the array"))?;
            items.insert(index, value);
            Ok(())
        }
        Value::Object(members) => {
            match members.iter_mut().find(|m| m.key == *last) {
                Some(existing) => existing.node = value,
                None => members.push(Member {
                    key: last.clone(),
                    key_offset: 0,
                    node: value,
                }),
            }
            Ok(())
        }
        _ => Err(String::from("the parent is neither an object nor an array")),
    }
}

/// JSON equality: numbers by value, objects regardless of member order.
pub(crate) fn equal(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Number(x), Value::Number(y)) => {
            match (
                crate::fhirpath::Decimal::parse_json(x),
                crate::fhirpath::Decimal::parse_json(y),
            ) {
                (Some(x), Some(y)) => x.cmp_value(&y) == core::cmp::Ordering::Equal,
                _ => x == y,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|m| y.iter().any(|n| n.key == m.key && equal(&m.node, &n.node)))
        }
        (x, y) => x == y,
    }
}

/// Most operations in one patch document.
const MAX_OPERATIONS: usize = 10_000;
/// Most JSON values the patched document may hold (a few `copy` operations can otherwise
/// double it again and again).
const MAX_NODES: usize = 1_000_000;

fn count_nodes(node: &Node) -> usize {
    1 + match &node.value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(members) => members.iter().map(|member| count_nodes(&member.node)).sum(),
        _ => 0,
    }
}

fn text<'n>(operation: &'n Node, name: &str) -> Option<&'n str> {
    match &member(operation, name)?.value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// Applies a JSON Patch document to `target`, all operations or none.
///
/// # Errors
/// [`PatchError`] for a malformed document, a missing location, or a failed `test`.
pub fn apply(target: &mut Node, patch: &Node) -> Result<(), PatchError> {
    let Value::Array(operations) = &patch.value else {
        return Err(PatchError {
            operation: 0,
            message: String::from("a JSON Patch document is an array of operations"),
            test_failed: false,
        });
    };
    if operations.len() > MAX_OPERATIONS {
        return Err(PatchError {
            operation: MAX_OPERATIONS,
            message: format!("a patch may hold {MAX_OPERATIONS} operations at most"),
            test_failed: false,
        });
    }
    let mut result = target.clone();
    let mut nodes = count_nodes(&result);
    for (index, operation) in operations.iter().enumerate() {
        let fail = |message: String| PatchError {
            operation: index,
            message,
            test_failed: false,
        };
        let op = text(operation, "op").ok_or_else(|| fail(String::from("\"op\" is missing")))?;
        let path = text(operation, "path")
            .and_then(pointer_tokens)
            .ok_or_else(|| fail(String::from("\"path\" is missing or not a JSON Pointer")))?;
        let value = || {
            member(operation, "value")
                .cloned()
                .ok_or_else(|| fail(format!("\"{op}\" needs a \"value\"")))
        };
        let from = || {
            text(operation, "from")
                .and_then(pointer_tokens)
                .ok_or_else(|| fail(format!("\"{op}\" needs a \"from\" JSON Pointer")))
        };
        match op {
            "add" => {
                let value = value()?;
                nodes += count_nodes(&value);
                add(&mut result, &path, value).map_err(fail)?;
            }
            "remove" => {
                remove(&mut result, &path).map_err(fail)?;
            }
            "replace" => {
                let new = value()?;
                let slot = get_mut(&mut result, &path)
                    .ok_or_else(|| fail(String::from("no value to replace")))?;
                *slot = new;
            }
            "move" => {
                let from = from()?;
                if path.len() > from.len() && path[..from.len()] == from[..] {
                    return Err(fail(String::from("a value cannot move into itself")));
                }
                let moved = remove(&mut result, &from).map_err(fail)?;
                add(&mut result, &path, moved).map_err(fail)?;
            }
            "copy" => {
                let from = from()?;
                let copied = get(&result, &from)
                    .cloned()
                    .ok_or_else(|| fail(String::from("nothing to copy")))?;
                nodes += count_nodes(&copied);
                add(&mut result, &path, copied).map_err(fail)?;
            }
            "test" => {
                let expected = value()?;
                if !get(&result, &path).is_some_and(|found| equal(found, &expected)) {
                    return Err(PatchError {
                        operation: index,
                        message: String::from("the test operation failed"),
                        test_failed: true,
                    });
                }
            }
            other => return Err(fail(format!("\"{other}\" is not a JSON Patch operation"))),
        }
        if nodes > MAX_NODES {
            return Err(fail(format!(
                "the patched document would hold more than {MAX_NODES} values"
            )));
        }
    }
    *target = result;
    Ok(())
}

/// Writes a JSON tree as compact text.
pub fn to_text(node: &Node) -> String {
    let mut out = String::new();
    write(node, &mut out, None);
    out
}

/// Writes a JSON tree indented by two spaces a level.
pub fn to_pretty_text(node: &Node) -> String {
    let mut out = String::new();
    write(node, &mut out, Some(0));
    out
}

fn newline(out: &mut String, indent: Option<usize>) {
    if let Some(level) = indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str("  ");
        }
    }
}

fn write(node: &Node, out: &mut String, indent: Option<usize>) {
    let inner = indent.map(|level| level + 1);
    match &node.value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(text) => out.push_str(text),
        Value::String(text) => crate::outcome::push_json_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                newline(out, inner);
                write(item, out, inner);
            }
            if !items.is_empty() {
                newline(out, indent);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (index, member) in members.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                newline(out, inner);
                crate::outcome::push_json_string(out, &member.key);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write(&member.node, out, inner);
            }
            if !members.is_empty() {
                newline(out, indent);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::reader::{parse, Limits};

    fn run(doc: &str, patch: &str) -> Result<String, PatchError> {
        let mut doc = parse(doc.as_bytes(), Limits::default()).map_err(|_| PatchError {
            operation: 0,
            message: String::new(),
            test_failed: false,
        })?;
        let patch = parse(patch.as_bytes(), Limits::default()).map_err(|_| PatchError {
            operation: 0,
            message: String::new(),
            test_failed: false,
        })?;
        apply(&mut doc, &patch)?;
        Ok(to_text(&doc))
    }

    #[test]
    fn operations_follow_rfc_6902() {
        let doc = r#"{"a":{"b":[1,2.50]},"c~/d":"x"}"#;
        assert_eq!(
            run(doc, r#"[{"op":"add","path":"/a/b/1","value":9}]"#)
                .ok()
                .as_deref(),
            Some(r#"{"a":{"b":[1,9,2.50]},"c~/d":"x"}"#)
        );
        assert_eq!(
            run(doc, r#"[{"op":"add","path":"/a/b/-","value":3}]"#)
                .ok()
                .as_deref(),
            Some(r#"{"a":{"b":[1,2.50,3]},"c~/d":"x"}"#)
        );
        assert_eq!(
            run(doc, r#"[{"op":"remove","path":"/c~0~1d"}]"#)
                .ok()
                .as_deref(),
            Some(r#"{"a":{"b":[1,2.50]}}"#)
        );
        assert_eq!(
            run(doc, r#"[{"op":"move","from":"/a/b","path":"/e"},{"op":"copy","from":"/e/0","path":"/f"}]"#)
                .ok()
                .as_deref(),
            Some(r#"{"a":{},"c~/d":"x","e":[1,2.50],"f":1}"#)
        );
        assert!(run(doc, r#"[{"op":"test","path":"/a/b/1","value":2.5}]"#).is_ok());
        let failed = run(
            doc,
            r#"[{"op":"replace","path":"/c~0~1d","value":"y"},{"op":"test","path":"/a/b/0","value":2}]"#,
        );
        assert!(failed.is_err_and(|err| err.test_failed && err.operation == 1));
        assert!(run(doc, r#"[{"op":"remove","path":"/a/b/7"}]"#).is_err());
        assert!(run(doc, r#"[{"op":"add","path":"/a/b/01","value":1}]"#).is_err());
        assert!(run(doc, r#"[{"op":"move","from":"/a","path":"/a/x"}]"#).is_err());
        assert!(run(doc, r#"{"op":"add"}"#).is_err());
        assert!(run(doc, r#"[{"op":"frobnicate","path":"/a"}]"#).is_err());
        // Doubling the document by copies stops at the cap instead of exhausting memory.
        let doubling: Vec<String> = (0..40)
            .map(|i| alloc::format!(r#"{{"op":"copy","from":"","path":"/x{i}"}}"#))
            .collect();
        let doubling = alloc::format!("[{}]", doubling.join(","));
        assert!(run(doc, &doubling).is_err_and(|err| err.message.contains("more than")));
    }
}

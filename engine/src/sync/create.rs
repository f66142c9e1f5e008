//! New resources on a server that assigns ids itself (no `updateCreate` for their type).
//!
//! Such a resource is pushed as a `POST` with `If-None-Exist` on a mark only this resource
//! carries: an identifier (system [`LOCAL_ID_SYSTEM`], value its local id) where its type has
//! a repeating `identifier` searchable by `identifier`, otherwise a `meta.tag` (same system,
//! code its local id) found by `_tag`. A `POST` whose reply never came is sent again as it was,
//! and the server answers with the resource the first one made instead of making another.
//!
//! When the server has answered with its id, the resource moves to that id locally, in the
//! store transaction that records the push: the pushed version is written under the new id
//! (with the mark, as the server holds it), a later local edit after it, the local id is
//! deleted, and references to it in the local changes not yet pushed are rewritten. Resources
//! that refer to a new resource not yet on the server wait for a later round (an update with a
//! reference the server cannot resolve is never sent), unless nothing else could be sent,
//! as when new resources refer to one another.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::local::{self, ykey, Base};
use crate::json::patch::to_text;
use crate::json::reader::{Member, Node, Value};
use crate::rest::{encode_component, Service};
use crate::store::{Store, StoreError, Transaction};

/// The system of the identifier (or tag) that marks a resource created by sync: its value is
/// the resource's id in the local store that created it.
pub(crate) const LOCAL_ID_SYSTEM: &str = "https://github.com/hearth-fhir/hearth/local-id";

/// True when `type_name` is marked by an identifier (a repeating `identifier` element with an
/// `identifier` search parameter); false: by a tag.
fn by_identifier<S: Store>(service: &Service<S>, type_name: &str) -> bool {
    let repeating = crate::model::resource_type(type_name)
        .map(crate::model::type_def)
        .and_then(|def| def.elements.iter().find(|e| e.name == "identifier"))
        .is_some_and(|element| element.is_array());
    repeating
        && service
            .core_registry()
            .param(type_name, "identifier")
            .is_some()
}

/// The `If-None-Exist` query that finds the resource a `POST` of `type_name/id` made.
pub(crate) fn if_none_exist<S: Store>(service: &Service<S>, type_name: &str, id: &str) -> String {
    let name = if by_identifier(service, type_name) {
        "identifier"
    } else {
        "_tag"
    };
    format!(
        "{name}={}|{}",
        encode_component(LOCAL_ID_SYSTEM),
        encode_component(id)
    )
}

fn node(value: Value) -> Node {
    Node { value, offset: 0 }
}

fn member(key: &str, value: Value) -> Member {
    Member {
        key: key.to_string(),
        key_offset: 0,
        node: node(value),
    }
}

fn text(value: &str) -> Value {
    Value::String(value.to_string())
}

/// The members of `members[key]`, an array, created empty when absent.
fn array_of<'m>(members: &'m mut Vec<Member>, key: &str) -> Option<&'m mut Vec<Node>> {
    if !members.iter().any(|m| m.key == key) {
        members.push(member(key, Value::Array(Vec::new())));
    }
    match &mut members.iter_mut().find(|m| m.key == key)?.node.value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

/// True when `items` holds an entry of [`LOCAL_ID_SYSTEM`] with `field` = `id`.
fn marked(items: &[Node], field: &str, id: &str) -> bool {
    items.iter().any(|item| match &item.value {
        Value::Object(members) => {
            let is = |key: &str, want: &str| {
                members
                    .iter()
                    .any(|m| m.key == key && m.node.value == Value::String(want.to_string()))
            };
            is("system", LOCAL_ID_SYSTEM) && is(field, id)
        }
        _ => false,
    })
}

/// `json` (a `type_name` resource whose local id is `local_id`) with the mark added (once)
/// and its id set to `id` (`None`: removed, for a `POST`).
pub(crate) fn marked_json<S: Store>(
    service: &Service<S>,
    json: &str,
    type_name: &str,
    local_id: &str,
    id: Option<&str>,
) -> String {
    let Ok(mut resource) = super::wire::read(json.as_bytes()) else {
        return json.to_string();
    };
    let identifier = by_identifier(service, type_name);
    if let Value::Object(members) = &mut resource.value {
        members.retain(|m| m.key != "id");
        if let Some(id) = id {
            members.insert(1.min(members.len()), member("id", text(id)));
        }
        let mark = |field: &str| {
            node(Value::Object(alloc::vec![
                member("system", text(LOCAL_ID_SYSTEM)),
                member(field, text(local_id)),
            ]))
        };
        if identifier {
            if let Some(items) = array_of(members, "identifier") {
                if !marked(items, "value", local_id) {
                    items.push(mark("value"));
                }
            }
        } else {
            if !members.iter().any(|m| m.key == "meta") {
                members.push(member("meta", Value::Object(Vec::new())));
            }
            if let Some(Value::Object(meta)) = members
                .iter_mut()
                .find(|m| m.key == "meta")
                .map(|m| &mut m.node.value)
            {
                if let Some(items) = array_of(meta, "tag") {
                    if !marked(items, "code", local_id) {
                        items.push(mark("code"));
                    }
                }
            }
        }
    }
    to_text(&super::merge::without_server_meta(resource))
}

/// `Type/id` of a reference to a resource of this store: relative, or absolute under `base`.
fn local_target<'r>(reference: &'r str, base: &str) -> Option<(&'r str, &'r str)> {
    let relative = reference
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(reference);
    let (type_name, rest) = relative.split_once('/')?;
    let id = rest.split('/').next()?;
    (crate::model::resource_type(type_name).is_some() && !id.is_empty()).then_some((type_name, id))
}

fn walk_references(node: &Node, visit: &mut dyn FnMut(&str)) {
    match &node.value {
        Value::Object(members) => {
            for m in members {
                match (&m.key[..], &m.node.value) {
                    ("reference", Value::String(reference)) => visit(reference),
                    _ => walk_references(&m.node, visit),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| walk_references(item, visit)),
        _ => {}
    }
}

/// The resources of this store (`base`) that `json` refers to.
pub(crate) fn references(json: &str, base: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if let Ok(resource) = super::wire::read(json.as_bytes()) {
        walk_references(&resource, &mut |reference| {
            if let Some((type_name, id)) = local_target(reference, base) {
                let target = (type_name.to_string(), id.to_string());
                if !found.contains(&target) {
                    found.push(target);
                }
            }
        });
    }
    found
}

fn rewrite(node: &mut Node, base: &str, target: (&str, &str), new_id: &str) -> bool {
    let mut changed = false;
    match &mut node.value {
        Value::Object(members) => {
            for m in members.iter_mut() {
                if m.key == "reference" {
                    if let Value::String(reference) = &m.node.value {
                        if local_target(reference, base) == Some(target) {
                            m.node.value = Value::String(format!("{}/{new_id}", target.0));
                            changed = true;
                        }
                        continue;
                    }
                }
                changed |= rewrite(&mut m.node, base, target, new_id);
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                changed |= rewrite(item, base, target, new_id);
            }
        }
        _ => {}
    }
    changed
}

/// `json` with its references to `type_name/old` pointed at `type_name/new`; `None` when it
/// has none.
fn rewritten(json: &str, base: &str, type_name: &str, old: &str, new: &str) -> Option<String> {
    let mut resource = super::wire::read(json.as_bytes()).ok()?;
    rewrite(&mut resource, base, (type_name, old), new).then(|| to_text(&resource))
}

/// The id in a create's `Location` (`[base]/Type/id/_history/v`, or without the version).
pub(crate) fn location_id(location: &str, type_name: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?;
    let mut parts: Vec<&str> = path.split('/').collect();
    if let Some(at) = parts.iter().rposition(|p| *p == "_history") {
        parts.truncate(at);
    }
    let id = parts.pop()?;
    (parts.pop()? == type_name && !id.is_empty()).then(|| id.to_string())
}

/// Whether `type_name/id` is new here and waits for the server to assign its id: its type has
/// no `updateCreate`, it has never been on the remote, and it is live.
pub(crate) async fn awaits_id<S: Store, T: Transaction>(
    tx: &mut T,
    remote: &str,
    update_create: &[String],
    type_name: &str,
    id: &str,
) -> Result<bool, StoreError> {
    if update_create.iter().any(|t| t == type_name) {
        return Ok(false);
    }
    if local::base(tx, remote, type_name, id).await?.is_some() {
        return Ok(false);
    }
    Ok(Service::<S>::replica_state(tx, type_name, id)
        .await?
        .is_some_and(|state| !state.deleted))
}

/// The version of `type_name/id` a `POST` sent, while the server has not answered it.
pub(crate) async fn pinned<T: Transaction>(
    tx: &mut T,
    remote: &str,
    type_name: &str,
    id: &str,
) -> Result<Option<u64>, StoreError> {
    // Versions start at 1: 0 is none.
    let version = local::number(tx, &ykey(remote, &["p", type_name, id])).await?;
    Ok((version > 0).then_some(version))
}

/// Records that `version` of `type_name/id` is sent by `POST`.
pub(crate) fn pin<T: Transaction>(
    tx: &mut T,
    remote: &str,
    type_name: &str,
    id: &str,
    version: u64,
) {
    tx.put(
        ykey(remote, &["p", type_name, id]),
        format!("{version}").into_bytes(),
    );
}

/// Forgets the version sent by `POST`, once answered.
pub(crate) fn unpin<T: Transaction>(tx: &mut T, remote: &str, type_name: &str, id: &str) {
    tx.delete(ykey(remote, &["p", type_name, id]));
}

/// Whether `json` carries the mark of the local id `id`.
pub(crate) fn marked_as(json: &str, id: &str) -> bool {
    marks(json).iter().any(|mark| mark == id)
}

/// The local ids `json` is marked with.
fn marks(json: &str) -> Vec<String> {
    let mut found = Vec::new();
    if !json.contains(LOCAL_ID_SYSTEM) {
        return found;
    }
    fn visit(node: &Node, found: &mut Vec<String>) {
        match &node.value {
            Value::Object(members) => {
                let system = members.iter().any(|m| {
                    m.key == "system" && m.node.value == Value::String(LOCAL_ID_SYSTEM.to_string())
                });
                for m in members {
                    match (&m.key[..], &m.node.value) {
                        ("value" | "code", Value::String(id)) if system => found.push(id.clone()),
                        _ => visit(&m.node, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| visit(item, found)),
            _ => {}
        }
    }
    if let Ok(resource) = super::wire::read(json.as_bytes()) {
        visit(&resource, &mut found);
    }
    found
}

/// The local id and sent version of the new resource whose `POST` made `item` (pulled), when
/// that `POST` has not been answered.
pub(crate) async fn made_by_pending<T: Transaction>(
    tx: &mut T,
    remote: &str,
    item: &super::wire::Item,
) -> Result<Option<(String, u64)>, StoreError> {
    let Some(json) = &item.json else {
        return Ok(None);
    };
    for id in marks(json) {
        if id != item.id {
            if let Some(version) = pinned(tx, remote, &item.type_name, &id).await? {
                return Ok(Some((id, version)));
            }
        }
    }
    Ok(None)
}

/// Writes an error a version could not be written for, as the store sees it.
fn invalid(type_name: &str, id: &str, message: &str) -> StoreError {
    StoreError::new(format!(
        "{type_name}/{id} could not be written under the id the server gave it: {message}"
    ))
}

/// After the server created `type_name/old` as `type_name/new` (remote version
/// `remote_version`) from local version `pushed`: moves it to the new id here (references to
/// the old id are for [`point_references`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn adopt<S: Store, T: Transaction>(
    service: &Service<S>,
    tx: &mut T,
    remote: &str,
    type_name: &str,
    old: &str,
    new: &str,
    pushed: u64,
    remote_version: &str,
) -> Result<(), StoreError> {
    let write = |json: &str| service.replica_check(type_name, json.as_bytes());
    let Some(sent) = Service::<S>::replica_version(tx, type_name, old, pushed).await? else {
        return Ok(());
    };
    let sent = marked_json(service, &sent, type_name, old, Some(new));
    let mut object = write(&sent).map_err(|m| invalid(type_name, new, &m))?;
    let agreed = service
        .replica_write(tx, type_name, new, &mut object)
        .await?;
    local::put_base(
        tx,
        remote,
        type_name,
        new,
        &Base {
            local: agreed,
            live: true,
            remote: remote_version.to_string(),
            lossy: false,
        },
    );
    if remote_version.is_empty() {
        // What the server holds now is not known: read by id at the next pull.
        tx.put(ykey(remote, &["q", type_name, new]), b"r".to_vec());
    }
    // Edited or deleted here since it was sent: that change waits to be pushed, on the new id.
    if let Some(now) = Service::<S>::replica_state(tx, type_name, old).await? {
        if now.deleted {
            service.replica_delete(tx, type_name, new).await?;
        } else if now.version != pushed {
            if let Some(json) =
                Service::<S>::replica_version(tx, type_name, old, now.version).await?
            {
                let json = marked_json(service, &json, type_name, old, Some(new));
                let mut object = write(&json).map_err(|m| invalid(type_name, new, &m))?;
                service
                    .replica_write(tx, type_name, new, &mut object)
                    .await?;
            }
        }
    }
    service.replica_delete(tx, type_name, old).await?;
    for kind in ["m", "q", "e", "x", "p"] {
        tx.delete(ykey(remote, &[kind, type_name, old]));
    }
    // Where it went, for the changes that still refer to the old id when they are gathered.
    tx.put(
        ykey(remote, &["n", type_name, old]),
        new.as_bytes().to_vec(),
    );
    Ok(())
}

/// A resource moved to the id the server gave it: `(type, old id, new id)`.
pub(crate) type Moved = (String, String, String);

/// The resources `json` refers to that moved to ids the server gave them: `(type, old, new)`.
pub(crate) async fn moved_targets<T: Transaction>(
    tx: &mut T,
    remote: &str,
    json: &str,
    base: &str,
) -> Result<Vec<Moved>, StoreError> {
    let mut moved = Vec::new();
    for (type_name, id) in references(json, base) {
        if let Some(new) = tx.get(&ykey(remote, &["n", &type_name, &id])).await? {
            moved.push((type_name, id, String::from_utf8(new).unwrap_or_default()));
        }
    }
    Ok(moved)
}

/// Points the references of `dependents` (local resources) to each `(type, old, new)` of
/// `moved` at the new id, each changed resource in one new version.
pub(crate) async fn point_references<S: Store, T: Transaction>(
    service: &Service<S>,
    tx: &mut T,
    moved: &[(String, String, String)],
    dependents: &[(String, String)],
) -> Result<(), StoreError> {
    let base_url = service.base().to_string();
    for (dep_type, dep_id) in dependents {
        let Some(state) = Service::<S>::replica_state(tx, dep_type, dep_id).await? else {
            continue;
        };
        if state.deleted {
            continue;
        }
        let Some(mut json) =
            Service::<S>::replica_version(tx, dep_type, dep_id, state.version).await?
        else {
            continue;
        };
        let mut changed = false;
        for (type_name, old, new) in moved {
            if let Some(out) = rewritten(&json, &base_url, type_name, old, new) {
                json = out;
                changed = true;
            }
        }
        if changed {
            let mut object = service
                .replica_check(dep_type, json.as_bytes())
                .map_err(|m| invalid(dep_type, dep_id, &m))?;
            service
                .replica_write(tx, dep_type, dep_id, &mut object)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_give_the_id() {
        assert_eq!(
            location_id("http://x/fhir/Patient/17/_history/1", "Patient").as_deref(),
            Some("17")
        );
        assert_eq!(
            location_id("Patient/ab-c", "Patient").as_deref(),
            Some("ab-c")
        );
        assert_eq!(location_id("Observation/1", "Patient"), None);
        assert_eq!(location_id("", "Patient"), None);
    }

    #[test]
    fn references_are_found_and_rewritten_relative_or_absolute() {
        let json = r#"{"resourceType":"Observation","subject":{"reference":"Patient/a"},"performer":[{"reference":"https://h/fhir/Patient/a"},{"reference":"Practitioner/p"},{"reference":"http://elsewhere/Patient/a"}]}"#;
        assert_eq!(
            references(json, "https://h/fhir"),
            [
                ("Patient".to_string(), "a".to_string()),
                ("Practitioner".to_string(), "p".to_string())
            ]
        );
        let out = rewritten(json, "https://h/fhir", "Patient", "a", "9").unwrap();
        assert_eq!(
            out,
            r#"{"resourceType":"Observation","subject":{"reference":"Patient/9"},"performer":[{"reference":"Patient/9"},{"reference":"Practitioner/p"},{"reference":"http://elsewhere/Patient/a"}]}"#
        );
        assert!(rewritten(json, "https://h/fhir", "Patient", "b", "9").is_none());
    }
}

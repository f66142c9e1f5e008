//! The local side of sync: what the store records per remote, and the decisions that change
//! it (apply a remote version, take a push's result, resolve a conflict), each inside the
//! store transaction of the writes it decides.
//!
//! Keys, under `y␀remote␀`:
//! - `m␀Type␀id` → `lv␀state␀rv`: the base of the resource, the state both sides last agreed
//!   on: local version `lv` holds it (`0`: none), `state` is `l` (live) or `d` (deleted on the
//!   remote, or never there), `rv` is the remote version. The resource has local changes to
//!   push when its current local version is not `lv`. A fourth part `w` says the remote
//!   version was read leniently, with elements left out: a local change to it is not pushed,
//!   for a `PUT` of it would remove those elements from the remote.
//! - `x␀Type␀id` → a conflict (JSON: base, local, remote, paths); the resource is held from
//!   push until it is resolved.
//! - `e␀Type␀id` → `lv␀message`: the remote refused local version `lv`; held until edited.
//! - `q␀Type␀id`: to push again (a failed entry; a 412, marked `r` to be read by id first;
//!   a change outside the scope of the syncs so far).
//! - `c␀scope` → the pull checkpoint: the `_since` instant of the next incremental pull.
//! - `d␀scope` → while a first download is unfinished, where its first attempt began (the
//!   checkpoint it will leave, so that deletions during an interrupted download are seen).
//! - `k` → what the server offers (its CapabilityStatement, summarised), until it refuses
//!   something it said it offers.
//! - `s` → the write-log sequence number up to which local changes were examined for push.
//! - `p␀Type␀id` → the local version a `POST` of a new resource sent, until the server's
//!   answer is known ([`super::create`]).
//! - `n␀Type␀id` → the id the server gave the resource that had this local id: references to
//!   the old id are rewritten when the changes holding them are gathered.
//!
//! **Invariant:** every local change after `s` is pushed, held (conflict, refused) or in `q`,
//! and the records change in the same store transaction as the versions they describe.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::merge::{merge3, without_server_meta};
use super::wire::{self, Item};
use crate::json::patch::to_text;
use crate::json::reader::Node;
use crate::resource::Object;
use crate::rest::{LocalState, Service};
use crate::store::{KeyRange, Store, StoreError, Transaction};

pub(crate) fn ykey(remote: &str, parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::from(&b"y\0"[..]);
    key.extend_from_slice(remote.as_bytes());
    for part in parts {
        key.push(0);
        key.extend_from_slice(part.as_bytes());
    }
    key
}

/// The base of a resource: what local and remote last agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    /// The local version holding it (`0`: none).
    pub local: u64,
    /// Live on the remote (false: deleted there, or never there).
    pub live: bool,
    /// The remote version.
    pub remote: String,
    /// The remote version was read leniently and elements of it were left out here.
    pub lossy: bool,
}

pub(crate) async fn base<T: Transaction>(
    tx: &mut T,
    remote: &str,
    type_name: &str,
    id: &str,
) -> Result<Option<Base>, StoreError> {
    let Some(value) = tx.get(&ykey(remote, &["m", type_name, id])).await? else {
        return Ok(None);
    };
    let text = String::from_utf8(value).unwrap_or_default();
    let mut parts = text.splitn(4, '\0');
    let local = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let live = parts.next() == Some("l");
    let remote = parts.next().unwrap_or_default().to_string();
    let lossy = parts.next() == Some("w");
    Ok(Some(Base {
        local,
        live,
        remote,
        lossy,
    }))
}

pub(crate) fn put_base<T: Transaction>(
    tx: &mut T,
    remote: &str,
    type_name: &str,
    id: &str,
    base: &Base,
) {
    tx.put(
        ykey(remote, &["m", type_name, id]),
        format!(
            "{}\0{}\0{}{}",
            base.local,
            if base.live { "l" } else { "d" },
            base.remote,
            if base.lossy { "\0w" } else { "" }
        )
        .into_bytes(),
    );
}

/// True when the resource has local changes the remote has not seen.
pub(crate) fn changed(current: Option<LocalState>, base: Option<&Base>) -> bool {
    match (current, base) {
        (None, _) => false,
        (Some(current), Some(base)) => current.version != base.local,
        (Some(current), None) => !current.deleted,
    }
}

/// A conflict: the three sides and the paths where local and remote disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The resource type.
    pub type_name: String,
    /// The resource id.
    pub id: String,
    /// The remote version that conflicts.
    pub remote_version: String,
    /// Where both sides changed the same element differently (`Patient.name[0].family`).
    pub paths: Vec<String>,
    /// JSON of each side; `None` for absent or deleted.
    pub base: Option<String>,
    /// The local side, as it is now.
    pub local: Option<String>,
    /// The remote side (its newest version).
    pub remote: Option<String>,
    /// The remote side was read leniently, elements of it left out (see `Options::strict`).
    pub lossy: bool,
}

impl Conflict {
    /// As JSON: `{"type","id","remoteVersion","paths","base","local","remote"}`, and
    /// `"lossy":true` when the remote side was read leniently.
    pub fn to_json(&self) -> String {
        fn side(json: &Option<String>) -> &str {
            json.as_deref().unwrap_or("null")
        }
        let paths: Vec<String> = self.paths.iter().map(|p| json_string(p)).collect();
        format!(
            r#"{{"type":{},"id":{},"remoteVersion":{},"paths":[{}],"base":{},"local":{},"remote":{}{}}}"#,
            json_string(&self.type_name),
            json_string(&self.id),
            json_string(&self.remote_version),
            paths.join(","),
            side(&self.base),
            side(&self.local),
            side(&self.remote),
            if self.lossy { r#","lossy":true"# } else { "" }
        )
    }

    fn from_json(text: &[u8]) -> Option<Conflict> {
        let node = wire::read(text).ok()?;
        let side = |name: &str| {
            wire::member(&node, name)
                .filter(|n| !matches!(n.value, crate::json::reader::Value::Null))
                .map(to_text)
        };
        let paths = match wire::member(&node, "paths").map(|n| &n.value) {
            Some(crate::json::reader::Value::Array(items)) => items
                .iter()
                .filter_map(|item| match &item.value {
                    crate::json::reader::Value::String(text) => Some(text.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Conflict {
            type_name: wire::text(&node, "type")?.to_string(),
            id: wire::text(&node, "id")?.to_string(),
            remote_version: wire::text(&node, "remoteVersion")
                .unwrap_or_default()
                .to_string(),
            paths,
            base: side("base"),
            local: side("local"),
            remote: side("remote"),
            lossy: matches!(
                wire::member(&node, "lossy").map(|n| &n.value),
                Some(crate::json::reader::Value::Bool(true))
            ),
        })
    }
}

pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    crate::outcome::push_json_string(&mut out, text);
    out
}

pub(crate) async fn conflict<T: Transaction>(
    tx: &mut T,
    remote: &str,
    type_name: &str,
    id: &str,
) -> Result<Option<Conflict>, StoreError> {
    Ok(tx
        .get(&ykey(remote, &["x", type_name, id]))
        .await?
        .and_then(|value| Conflict::from_json(&value)))
}

/// The local side of a conflict as it is now (edits after the conflict was found included).
async fn current_json<S: Store, T: Transaction>(
    tx: &mut T,
    type_name: &str,
    id: &str,
) -> Result<Option<String>, StoreError> {
    match Service::<S>::replica_state(tx, type_name, id).await? {
        Some(current) if !current.deleted => {
            Service::<S>::replica_version(tx, type_name, id, current.version).await
        }
        _ => Ok(None),
    }
}

/// Every conflict recorded for `remote`, with the local side as it is now.
pub(crate) async fn conflicts<S: Store, T: Transaction>(
    tx: &mut T,
    remote: &str,
) -> Result<Vec<Conflict>, StoreError> {
    let range = KeyRange::prefix(&ykey(remote, &["x", ""]));
    let mut all = Vec::new();
    let mut start = range.start.clone();
    loop {
        let page = tx
            .scan(
                &KeyRange {
                    start: start.clone(),
                    end: range.end.clone(),
                },
                256,
                false,
            )
            .await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        start = last.clone();
        start.push(0);
        let full = page.len() == 256;
        all.extend(
            page.iter()
                .filter_map(|(_, value)| Conflict::from_json(value)),
        );
        if !full {
            break;
        }
    }
    for conflict in &mut all {
        conflict.local = current_json::<S, T>(tx, &conflict.type_name, &conflict.id).await?;
    }
    Ok(all)
}

fn parse_node(json: Option<&str>) -> Option<Node> {
    json.and_then(|json| wire::read(json.as_bytes()).ok())
        .map(without_server_meta)
}

/// What applying one remote version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Already there (the same remote version), or nothing to do.
    Unchanged,
    /// Stored as the new local version.
    Stored,
    /// Merged with local changes by itself; the merge is a local change to push.
    Merged,
    /// A new conflict was recorded.
    Conflict,
}

/// Applies remote version `item` (checked already: `object` is its resource) inside `tx`.
pub(crate) async fn apply<S: Store, T: Transaction>(
    service: &Service<S>,
    tx: &mut T,
    remote: &str,
    item: &Item,
    object: Option<Object>,
) -> Result<Applied, StoreError> {
    let (type_name, id) = (item.type_name.as_str(), item.id.as_str());
    let base = base(tx, remote, type_name, id).await?;
    let remote_live = item.json.is_some();
    // The base when local and remote agree: local version `local` holds the remote's content.
    let agreed = |local: u64| Base {
        local,
        live: remote_live,
        remote: item.version.clone(),
        lossy: item.lossy,
    };
    if let Some(base) = &base {
        if base.remote == item.version && base.live == remote_live && base.lossy == item.lossy {
            return Ok(Applied::Unchanged);
        }
    }
    let current = Service::<S>::replica_state(tx, type_name, id).await?;
    if let Some(mut held) = conflict(tx, remote, type_name, id).await? {
        // Still in conflict: the newest remote side is what a resolution answers.
        held.remote = item.json.clone();
        held.remote_version = item.version.clone();
        held.lossy = item.lossy;
        tx.put(
            ykey(remote, &["x", type_name, id]),
            held.to_json().into_bytes(),
        );
        return Ok(Applied::Unchanged);
    }
    if !changed(current, base.as_ref()) {
        if base.is_none() && current.is_none() && !remote_live {
            return Ok(Applied::Unchanged);
        }
        let local = match object {
            Some(mut object) => {
                service
                    .replica_write(tx, type_name, id, &mut object)
                    .await?
            }
            None => match service.replica_delete(tx, type_name, id).await? {
                Some(version) => version,
                None => current.map_or(0, |c| c.version),
            },
        };
        put_base(tx, remote, type_name, id, &agreed(local));
        return Ok(Applied::Stored);
    }
    // Local changes meet remote ones: merge from the base.
    let base_json = match &base {
        Some(base) if base.live && base.local > 0 => {
            Service::<S>::replica_version(tx, type_name, id, base.local).await?
        }
        _ => None,
    };
    let local_json = current_json::<S, T>(tx, type_name, id).await?;
    let (base_node, local_node, remote_node) = (
        parse_node(base_json.as_deref()),
        parse_node(local_json.as_deref()),
        parse_node(item.json.as_deref()),
    );
    let merged = merge3(
        base_node.as_ref(),
        local_node.as_ref(),
        remote_node.as_ref(),
        type_name,
    );
    let record = |paths: Vec<String>| Conflict {
        type_name: type_name.to_string(),
        id: id.to_string(),
        remote_version: item.version.clone(),
        paths,
        base: base_json.clone(),
        local: local_json.clone(),
        remote: item.json.clone(),
        lossy: item.lossy,
    };
    // Never agreed on (a create whose reply was lost) and deleted on the remote since: whether
    // the deletion was meant for what is here, only the user can say.
    let unknown_deletion = base.is_none() && !remote_live && local_node.is_some();
    if !merged.conflicts.is_empty() || unknown_deletion {
        let paths = if merged.conflicts.is_empty() {
            alloc::vec![String::from(type_name)]
        } else {
            merged.conflicts
        };
        tx.put(
            ykey(remote, &["x", type_name, id]),
            record(paths).to_json().into_bytes(),
        );
        return Ok(Applied::Conflict);
    }
    let current_version = current.map_or(0, |c| c.version);
    let same_as = |side: Option<&Node>| match (&merged.value, side) {
        (None, None) => true,
        (Some(a), Some(b)) => crate::json::patch::equal(a, b),
        _ => false,
    };
    if same_as(remote_node.as_ref()) {
        // Local already holds what the remote has (a push whose reply was lost, or the same
        // edit on both sides).
        let local = if same_as(local_node.as_ref()) {
            current_version
        } else {
            match object {
                Some(mut object) => {
                    service
                        .replica_write(tx, type_name, id, &mut object)
                        .await?
                }
                None => service
                    .replica_delete(tx, type_name, id)
                    .await?
                    .unwrap_or(current_version),
            }
        };
        put_base(tx, remote, type_name, id, &agreed(local));
        return Ok(Applied::Stored);
    }
    let Some(merged_node) = merged.value else {
        // Deleted locally, unchanged remotely since the base: the deletion stands, to be
        // pushed against the new remote version (whose content is the base's).
        let Some(base) = base else {
            return Ok(Applied::Unchanged);
        };
        put_base(
            tx,
            remote,
            type_name,
            id,
            &Base {
                remote: item.version.clone(),
                live: remote_live,
                lossy: item.lossy,
                ..base
            },
        );
        return Ok(Applied::Merged);
    };
    let merged_json = to_text(&merged_node);
    let mut merged_object = match service.replica_check(type_name, merged_json.as_bytes()) {
        Ok(object) => object,
        Err(message) => {
            tx.put(
                ykey(remote, &["x", type_name, id]),
                record(alloc::vec![format!(
                    "{type_name} (the merge is invalid: {message})"
                )])
                .to_json()
                .into_bytes(),
            );
            return Ok(Applied::Conflict);
        }
    };
    // The remote version becomes the new base, the merge the local change on top of it.
    let base_version = match object {
        Some(mut object) => {
            service
                .replica_write(tx, type_name, id, &mut object)
                .await?
        }
        None => 0,
    };
    service
        .replica_write(tx, type_name, id, &mut merged_object)
        .await?;
    put_base(tx, remote, type_name, id, &agreed(base_version));
    Ok(Applied::Merged)
}

/// How a conflict is resolved.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// Keep the local side (pushed over the remote one).
    Local,
    /// Take the remote side.
    Remote,
    /// Store this resource (JSON) and push it.
    Resource(String),
}

/// Resolves the conflict on `type_name/id`; `Ok(false)` when there is none.
pub(crate) async fn resolve<S: Store, T: Transaction>(
    service: &Service<S>,
    tx: &mut T,
    remote: &str,
    type_name: &str,
    id: &str,
    resolution: &Resolution,
) -> Result<Result<bool, String>, StoreError> {
    let Some(mut held) = conflict(tx, remote, type_name, id).await? else {
        return Ok(Ok(false));
    };
    held.local = current_json::<S, T>(tx, type_name, id).await?;
    let check = |json: &str| service.replica_check(type_name, json.as_bytes());
    let remote_object = match held.remote.as_deref().map(check) {
        Some(Ok(object)) => Some(object),
        Some(Err(message)) if !matches!(resolution, Resolution::Local) => {
            return Ok(Err(format!("the remote side does not validate: {message}")))
        }
        _ => None,
    };
    let chosen = match resolution {
        Resolution::Resource(json) => match check(json) {
            Ok(object) => Some(Some(object)),
            Err(message) => return Ok(Err(message)),
        },
        Resolution::Local => Some(match held.local.as_deref().map(check) {
            Some(Ok(object)) => Some(object),
            Some(Err(message)) => return Ok(Err(message)),
            None => None,
        }),
        Resolution::Remote => None,
    };
    let remote_live = held.remote.is_some();
    // The remote side is stored first: it is the base of what is pushed next.
    let base_version = match remote_object {
        Some(mut object) if remote_live => {
            service
                .replica_write(tx, type_name, id, &mut object)
                .await?
        }
        _ => match chosen {
            // Deleted on the remote and kept here: no local version is the base.
            Some(_) => 0,
            None => {
                let current = Service::<S>::replica_state(tx, type_name, id).await?;
                service
                    .replica_delete(tx, type_name, id)
                    .await?
                    .unwrap_or(current.map_or(0, |c| c.version))
            }
        },
    };
    match chosen {
        Some(Some(mut object)) => {
            service
                .replica_write(tx, type_name, id, &mut object)
                .await?;
        }
        Some(None) => {
            service.replica_delete(tx, type_name, id).await?;
        }
        None => {}
    }
    put_base(
        tx,
        remote,
        type_name,
        id,
        &Base {
            local: base_version,
            live: remote_live,
            remote: held.remote_version.clone(),
            lossy: held.lossy && remote_live,
        },
    );
    tx.delete(ykey(remote, &["x", type_name, id]));
    tx.delete(ykey(remote, &["e", type_name, id]));
    Ok(Ok(true))
}

/// The refusal recorded for a local version: `(local version, message)`.
pub(crate) async fn refusal<T: Transaction>(
    tx: &mut T,
    remote: &str,
    type_name: &str,
    id: &str,
) -> Result<Option<(u64, String)>, StoreError> {
    Ok(tx
        .get(&ykey(remote, &["e", type_name, id]))
        .await?
        .map(|value| {
            let text = String::from_utf8(value).unwrap_or_default();
            let (version, message) = text.split_once('\0').unwrap_or((&text, ""));
            (version.parse().unwrap_or(0), message.to_string())
        }))
}

pub(crate) async fn number<T: Transaction>(tx: &mut T, key: &[u8]) -> Result<u64, StoreError> {
    Ok(tx
        .get(key)
        .await?
        .and_then(|value| core::str::from_utf8(&value).ok()?.parse().ok())
        .unwrap_or(0))
}

/// The local changes not yet pushed to `remote`: the retry set, and the write log after where
/// its push stopped.
pub(crate) async fn unpushed<S: Store, T: Transaction>(
    tx: &mut T,
    remote: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut found: Vec<(String, String)> = retries(tx, remote)
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let mut after = number(tx, &ykey(remote, &["s"])).await?;
    loop {
        let entries = Service::<S>::replica_log(tx, after, 256).await?;
        let Some((last, ..)) = entries.last() else {
            break;
        };
        after = *last;
        found.extend(entries.into_iter().map(|(_, t, id, _)| (t, id)));
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The retry set, each with whether it is marked to be read by id (`r`).
pub(crate) async fn retries<T: Transaction>(
    tx: &mut T,
    remote: &str,
) -> Result<Vec<((String, String), bool)>, StoreError> {
    let prefix = ykey(remote, &["q", ""]);
    let range = KeyRange::prefix(&prefix);
    Ok(tx
        .scan(&range, usize::MAX, false)
        .await?
        .into_iter()
        .filter_map(|(key, value)| {
            let rest = core::str::from_utf8(key.get(prefix.len()..)?).ok()?;
            let (type_name, id) = rest.split_once('\0')?;
            Some(((type_name.to_string(), id.to_string()), value == b"r"))
        })
        .collect())
}

//! Three-way merge of FHIR JSON, element by element: what only one side changed since the
//! base is taken from that side; what both changed alike is taken once; what both changed
//! differently is a conflict at that element's path.
//!
//! Arrays merge item by item when base, local and remote have the same length (a component's
//! value changed on one side, its code on the other); otherwise an array changed on both sides
//! is one conflict, since FHIR gives array items no identity to match them by.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::json::patch::equal;
use crate::json::reader::{Member, Node, Value};

/// A merge: the merged value (`None`: absent, or deleted), and the paths where local and
/// remote changed the same element differently (empty when it merged by itself).
pub(crate) struct Merged {
    pub value: Option<Node>,
    pub conflicts: Vec<String>,
}

/// Merges `local` and `remote`, both descended from `base` (`None`: absent or deleted).
/// `path` names the value in conflicts (`Observation`).
pub(crate) fn merge3(
    base: Option<&Node>,
    local: Option<&Node>,
    remote: Option<&Node>,
    path: &str,
) -> Merged {
    let mut conflicts = Vec::new();
    let value = merge_value(base, local, remote, path, &mut conflicts);
    Merged { value, conflicts }
}

fn same(a: Option<&Node>, b: Option<&Node>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => equal(a, b),
        _ => false,
    }
}

fn merge_value(
    base: Option<&Node>,
    local: Option<&Node>,
    remote: Option<&Node>,
    path: &str,
    conflicts: &mut Vec<String>,
) -> Option<Node> {
    if same(local, remote) || same(base, remote) {
        return local.cloned();
    }
    if same(base, local) {
        return remote.cloned();
    }
    // Both changed, differently.
    match (local.map(|n| &n.value), remote.map(|n| &n.value)) {
        (Some(Value::Object(ours)), Some(Value::Object(theirs))) => {
            let empty = Vec::new();
            let base_members = match base.map(|n| &n.value) {
                Some(Value::Object(members)) => members,
                // Added on both sides, or a different kind of value before: merge as if
                // there had been an empty object.
                _ => &empty,
            };
            Some(merge_objects(base_members, ours, theirs, path, conflicts))
        }
        (Some(Value::Array(ours)), Some(Value::Array(theirs))) => match base.map(|n| &n.value) {
            Some(Value::Array(before))
                if before.len() == ours.len() && ours.len() == theirs.len() =>
            {
                let items = before
                    .iter()
                    .zip(ours)
                    .zip(theirs)
                    .enumerate()
                    .map(|(index, ((before, ours), theirs))| {
                        merge_value(
                            Some(before),
                            Some(ours),
                            Some(theirs),
                            &format!("{path}[{index}]"),
                            conflicts,
                        )
                        // Not reached: items present on all three sides merge to a value.
                        .unwrap_or_else(|| ours.clone())
                    })
                    .collect();
                Some(node(Value::Array(items)))
            }
            _ => {
                conflicts.push(String::from(path));
                local.cloned()
            }
        },
        _ => {
            conflicts.push(String::from(path));
            local.cloned()
        }
    }
}

fn member<'n>(members: &'n [Member], key: &str) -> Option<&'n Node> {
    members
        .iter()
        .find(|member| member.key == key)
        .map(|member| &member.node)
}

fn merge_objects(
    base: &[Member],
    ours: &[Member],
    theirs: &[Member],
    path: &str,
    conflicts: &mut Vec<String>,
) -> Node {
    // Keys in local order, then those only remote has, then those only the base had.
    let mut keys: Vec<&str> = ours.iter().map(|m| m.key.as_str()).collect();
    for key in theirs.iter().chain(base).map(|m| m.key.as_str()) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut members = Vec::with_capacity(keys.len());
    for key in keys {
        let name = key.strip_prefix('_').unwrap_or(key);
        let merged = merge_value(
            member(base, key),
            member(ours, key),
            member(theirs, key),
            &format!("{path}.{name}"),
            conflicts,
        );
        if let Some(node) = merged {
            members.push(Member {
                key: String::from(key),
                key_offset: 0,
                node,
            });
        }
    }
    node(Value::Object(members))
}

fn node(value: Value) -> Node {
    Node { value, offset: 0 }
}

/// `resource` without `meta.versionId` and `meta.lastUpdated` (and without `meta` when
/// nothing else is in it): what each server sets for itself, not content to merge.
pub(crate) fn without_server_meta(mut resource: Node) -> Node {
    if let Value::Object(members) = &mut resource.value {
        if let Some(index) = members.iter().position(|m| m.key == "meta") {
            if let Value::Object(meta) = &mut members[index].node.value {
                meta.retain(|m| m.key != "versionId" && m.key != "lastUpdated");
                if meta.is_empty() {
                    members.remove(index);
                }
            }
        }
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::patch::to_text;
    use crate::json::reader::{parse, Limits};

    fn read(text: &str) -> Node {
        parse(text.as_bytes(), Limits::default()).unwrap()
    }

    fn merged(base: &str, local: &str, remote: &str) -> (String, Vec<String>) {
        let (base, local, remote) = (read(base), read(local), read(remote));
        let merged = merge3(Some(&base), Some(&local), Some(&remote), "Patient");
        (to_text(&merged.value.unwrap()), merged.conflicts)
    }

    #[test]
    fn changes_to_different_elements_merge_by_themselves() {
        let (text, conflicts) = merged(
            r#"{"resourceType":"Patient","gender":"male","birthDate":"1970"}"#,
            r#"{"resourceType":"Patient","gender":"female","birthDate":"1970"}"#,
            r#"{"resourceType":"Patient","gender":"male","birthDate":"1971","active":true}"#,
        );
        assert!(conflicts.is_empty(), "{conflicts:?}");
        assert_eq!(
            text,
            r#"{"resourceType":"Patient","gender":"female","birthDate":"1971","active":true}"#
        );
    }

    #[test]
    fn the_same_element_changed_differently_is_a_conflict_at_its_path() {
        let (_, conflicts) = merged(
            r#"{"resourceType":"Patient","name":[{"family":"A","given":["x"]}]}"#,
            r#"{"resourceType":"Patient","name":[{"family":"B","given":["x"]}]}"#,
            r#"{"resourceType":"Patient","name":[{"family":"C","given":["y"]}]}"#,
        );
        assert_eq!(conflicts, ["Patient.name[0].family"]);
    }

    #[test]
    fn arrays_of_new_lengths_changed_on_both_sides_conflict_whole() {
        let (_, conflicts) = merged(
            r#"{"resourceType":"Patient","identifier":[{"value":"1"}]}"#,
            r#"{"resourceType":"Patient","identifier":[{"value":"1"},{"value":"2"}]}"#,
            r#"{"resourceType":"Patient","identifier":[]}"#,
        );
        assert_eq!(conflicts, ["Patient.identifier"]);
        // Changed alike on both sides: no conflict.
        let (text, conflicts) = merged(
            r#"{"resourceType":"Patient","identifier":[{"value":"1"}]}"#,
            r#"{"resourceType":"Patient","identifier":[{"value":"1"},{"value":"2"}]}"#,
            r#"{"resourceType":"Patient","identifier":[{"value":"1"},{"value":"2"}]}"#,
        );
        assert!(conflicts.is_empty());
        assert!(text.contains(r#"{"value":"2"}"#));
    }

    #[test]
    fn a_deletion_against_an_edit_conflicts_and_against_no_change_wins() {
        let base = read(r#"{"resourceType":"Patient","active":true}"#);
        let edited = read(r#"{"resourceType":"Patient","active":false}"#);
        let merged = merge3(Some(&base), None, Some(&edited), "Patient");
        assert_eq!(merged.conflicts, ["Patient"]);
        let merged = merge3(Some(&base), None, Some(&base), "Patient");
        assert!(merged.conflicts.is_empty() && merged.value.is_none());
    }

    #[test]
    fn server_meta_is_not_content() {
        let node = without_server_meta(read(
            r#"{"resourceType":"Patient","meta":{"versionId":"3","lastUpdated":"2026-01-01T00:00:00Z"}}"#,
        ));
        assert_eq!(to_text(&node), r#"{"resourceType":"Patient"}"#);
        let node = without_server_meta(read(
            r#"{"resourceType":"Patient","meta":{"versionId":"3","tag":[{"code":"x"}]}}"#,
        ));
        assert_eq!(
            to_text(&node),
            r#"{"resourceType":"Patient","meta":{"tag":[{"code":"x"}]}}"#
        );
    }
}

//! What the sync engine may do to the local store, and nothing more: read a resource's current
//! version, write a version or a deletion together with keys of its own in one store
//! transaction, and check a resource as a write through the REST API would.
//!
//! Versions written here are ordinary versions: validated, indexed and entered in the write
//! log like any other, so search, history and `on("change")` see pulled data as they see local
//! edits.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{key, Current, Request, Service, Stored};
use crate::resource::Object;
use crate::store::{Store, StoreError, Transaction};

/// A resource's current local state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalState {
    /// The current version number.
    pub version: u64,
    /// True when the current version is a deletion.
    pub deleted: bool,
}

impl<S: Store> Service<S> {
    /// The service's base URL.
    pub fn base(&self) -> &str {
        &self.base_url
    }

    /// Now, by the service's clock.
    pub(crate) fn now(&self) -> String {
        self.clock.now()
    }

    /// A store transaction outside any request's cost meter, with the stored search
    /// parameters in force.
    pub(crate) async fn replica_begin(&self, write: bool) -> Result<S::Tx<'_>, StoreError> {
        self.marker_checked.set(false);
        if !self.search_ready.get() {
            self.ensure_registry().await?;
        }
        let mut tx = self.store.begin(write).await?;
        self.check_registry(&mut tx).await?;
        Ok(tx)
    }

    /// The store key of `type_name/id`'s current state, to read ahead
    /// ([`Transaction::prefetch`]).
    pub(crate) fn replica_state_key(type_name: &str, id: &str) -> Vec<u8> {
        key(&["c", type_name, id])
    }

    /// The current state of `type_name/id`, if it was ever written.
    pub(crate) async fn replica_state<T: Transaction>(
        tx: &mut T,
        type_name: &str,
        id: &str,
    ) -> Result<Option<LocalState>, StoreError> {
        Ok(Self::current(tx, type_name, id)
            .await?
            .map(|Current { version, deleted }| LocalState { version, deleted }))
    }

    /// The JSON of version `version` of `type_name/id`; `None` for a deletion or a version
    /// that does not exist.
    pub(crate) async fn replica_version<T: Transaction>(
        tx: &mut T,
        type_name: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<String>, StoreError> {
        Ok(match Self::stored(tx, type_name, id, version).await? {
            Some(Stored::Resource(json)) => Some(json),
            _ => None,
        })
    }

    /// Reads and checks `json` as a `type_name` resource the way a write through the REST API
    /// is checked (the profiles in force included); the OperationOutcome's text when it fails.
    pub(crate) fn replica_check(&self, type_name: &str, json: &[u8]) -> Result<Object, String> {
        let request = Request {
            method: String::from("PUT"),
            body: json.to_vec(),
            ..Request::default()
        };
        self.read_body(&request, type_name)
            .map_err(|response| super::outcome_text(&response))
    }

    /// Writes `resource` as the next version of `type_name/id` (its index and write-log entry
    /// included); the new version number.
    pub(crate) async fn replica_write<T: Transaction>(
        &self,
        tx: &mut T,
        type_name: &str,
        id: &str,
        resource: &mut Object,
    ) -> Result<u64, StoreError> {
        let current = Self::current(tx, type_name, id).await?;
        let (version, instant, _) =
            self.write_version(tx, resource, type_name, id, current.as_ref(), "PUT");
        self.log_write(tx, type_name, id, version, &instant, Some(resource))
            .await?;
        Ok(version)
    }

    /// Deletes `type_name/id` (a deletion version, its index removed); the new version number,
    /// or `None` when it is absent or deleted already.
    pub(crate) async fn replica_delete<T: Transaction>(
        &self,
        tx: &mut T,
        type_name: &str,
        id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let Some(current) = Self::current(tx, type_name, id)
            .await?
            .filter(|current| !current.deleted)
        else {
            return Ok(None);
        };
        self.write_deletion(tx, type_name, id, &current)
            .await
            .map(Some)
    }

    /// The write-log entries after sequence number `after`, oldest first, at most `limit`:
    /// `(seq, type, id, version)`.
    pub(crate) async fn replica_log<T: Transaction>(
        tx: &mut T,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String, String, u64)>, StoreError> {
        let start = key(&["l", &format!("{:020}", after.saturating_add(1))]);
        let range = crate::store::KeyRange {
            start,
            end: crate::store::KeyRange::prefix(&key(&["l", ""])).end,
        };
        let rows = tx.scan(&range, limit, false).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for (entry_key, value) in rows {
            let seq = entry_key
                .rsplit(|b| *b == 0)
                .next()
                .and_then(|digits| core::str::from_utf8(digits).ok())
                .and_then(|digits| digits.parse::<u64>().ok());
            let text = core::str::from_utf8(&value).unwrap_or_default();
            let mut parts = text.split('\0');
            if let (Some(seq), Some(type_name), Some(id), Some(version)) = (
                seq,
                parts.next(),
                parts.next(),
                parts.next().and_then(|v| v.parse::<u64>().ok()),
            ) {
                entries.push((seq, String::from(type_name), String::from(id), version));
            }
        }
        Ok(entries)
    }

    /// Whether `resource` is in the compartment of `focus/id` (`Patient/123`): it is the focus
    /// itself, or refers to it by one of the compartment's parameters.
    pub(crate) fn replica_in_compartment(&self, resource: &Object, focus: &str, id: &str) -> bool {
        in_compartment(&self.registry(), &self.base_url, resource, focus, id)
    }
}

/// Whether `resource` is in the compartment of `focus/id` (`Patient/123`): it is the focus
/// itself, or refers to it by one of the compartment's parameters.
pub(crate) fn in_compartment(
    registry: &crate::search::Registry,
    base_url: &str,
    resource: &Object,
    focus: &str,
    id: &str,
) -> bool {
    let type_name = resource.type_def().name;
    if type_name == focus {
        return resource.id() == Some(id);
    }
    let Some((_, members)) = crate::model::COMPARTMENTS
        .iter()
        .find(|(compartment, _)| *compartment == focus)
    else {
        return false;
    };
    let codes: Vec<&str> = members
        .iter()
        .filter(|(member, _)| *member == type_name)
        .flat_map(|(_, params)| params.iter().copied())
        .collect();
    if codes.is_empty() {
        return false;
    }
    let wanted = format!("{}\u{1}{focus}", crate::search::index::clean(id));
    registry
        .extract_only(resource, base_url, &codes)
        .iter()
        .any(|(_, value, _)| *value == wanted)
}

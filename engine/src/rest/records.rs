//! The audit trail's records, kept cheaply and turned into AuditEvents when read.
//!
//! A record (an AuditEvent's JSON, made by the access layer) is staged under `a␀id` with a
//! single write, in the transaction of the write it records or in one of its own for a read.
//! Indexing an AuditEvent for its two dozen search parameters costs more than most requests,
//! so it is done later: before any request that may read AuditEvents, the staged records are
//! stored as AuditEvents (versioned, indexed and in the write log, under the id they were
//! staged with) in one transaction per batch. A request that reads AuditEvents sees every
//! record committed before it.

use alloc::format;
use alloc::string::String;

use super::{key, Request, Service};
use crate::json::fhir::parse_resource;
use crate::store::{KeyRange, Store, StoreError, Transaction};

/// Records stored as AuditEvents per transaction.
const FLUSH_BATCH: usize = 500;

/// True when `request` may read AuditEvents: it names them, uses a wildcard include, or
/// searches or lists the history of every type.
pub(super) fn may_read_records(request: &Request) -> bool {
    let path = request.path.trim_matches('/');
    let get = request.method.eq_ignore_ascii_case("GET");
    let system_level = path == "_search" || (get && matches!(path, "" | "_history"));
    let names = |text: &str| text.contains("AuditEvent") || text.contains('*');
    let body = core::str::from_utf8(&request.body).unwrap_or_default();
    let post = request.method.eq_ignore_ascii_case("POST");
    system_level
        || names(path)
        || request
            .query
            .iter()
            .any(|(name, value)| names(name) || names(value))
        // A _search form, decoded; a Bundle whose resources name AuditEvents (its JSON may
        // escape any letter). Each entry's request is looked at when the Bundle is read.
        || (post
            && path.ends_with("_search")
            && super::query_pairs(body, true)
                .iter()
                .any(|(name, value)| names(name) || names(value)))
        || (post && path.is_empty() && (body.contains("AuditEvent") || body.contains("\\u")))
}

impl<S: Store> Service<S> {
    /// Stages `record` (an AuditEvent's JSON, as the access layer makes it) in `tx`. It is read
    /// as a resource only when stored as an AuditEvent: the access layer's tests read every
    /// shape of record it makes.
    ///
    /// # Errors
    /// When no id can be given to it.
    pub(super) fn stage_record<T: Transaction>(
        &self,
        tx: &mut T,
        record: &str,
    ) -> Result<(), StoreError> {
        let id = self
            .new_id()
            .map_err(|_| StoreError::new("the id source gave an invalid id for an audit record"))?;
        tx.put(key(&["a", &id]), record.as_bytes().to_vec());
        Ok(())
    }

    /// Stores `record` (an AuditEvent's JSON) in a transaction of its own: the record of an
    /// interaction that wrote nothing (a read, a search, a refusal, a failure).
    ///
    /// # Errors
    /// The store's failure; the record is then not kept.
    pub async fn append_record(&self, record: &str) -> Result<(), StoreError> {
        let mut tx = self.store.begin(true).await?;
        self.stage_record(&mut tx, record)?;
        tx.commit().await
    }

    /// Stores every staged record as an AuditEvent.
    ///
    /// # Errors
    /// The store's failure; the records stay staged.
    pub(super) async fn flush_records(&self) -> Result<(), StoreError> {
        let staged = KeyRange::prefix(&key(&["a", ""]));
        loop {
            // A look first, read-only: most requests find nothing staged.
            {
                let mut look = self.store.begin(false).await?;
                let any = look.scan(&staged, 1, false).await?;
                look.commit().await?;
                if any.is_empty() {
                    return Ok(());
                }
            }
            let mut tx = self.store.begin(true).await?;
            self.check_registry(&mut tx).await?;
            let batch = tx.scan(&staged, FLUSH_BATCH, false).await?;
            let full = batch.len() == FLUSH_BATCH;
            for (staged_key, json) in batch {
                let id = staged_key
                    .rsplit(|byte| *byte == 0)
                    .next()
                    .and_then(|id| core::str::from_utf8(id).ok())
                    .map(String::from)
                    .unwrap_or_default();
                let mut event = parse_resource(&json).map_err(|err| {
                    StoreError::new(format!("a staged audit record could not be read: {err}"))
                })?;
                let (version, now, _) =
                    self.write_version(&mut tx, &mut event, "AuditEvent", &id, None, "POST");
                let entries = self.registry().extract(&event, &self.base_url);
                self.log_write_checked(&mut tx, "AuditEvent", &id, version, &now, (None, entries))
                    .await?;
                tx.delete(staged_key);
            }
            tx.commit().await?;
            if !full {
                return Ok(());
            }
        }
    }
}

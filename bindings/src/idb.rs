//! The engine's [`Store`] on IndexedDB, through `indexed_db_futures`.
//!
//! One database per store, holding one object store (`kv`) of byte values under binary keys
//! (IndexedDB orders binary keys byte by byte, the order the engine's keys are made for).
//! Each engine transaction is one IndexedDB transaction, read-only for reads: the engine awaits
//! nothing but that transaction's own requests, so it stays active until the engine commits,
//! and a transaction Bundle is on disk whole or not at all. Writes are buffered and issued at
//! commit; a failure of any (a full quota) aborts them all.
//!
//! **Invariant:** a readwrite IndexedDB transaction is held for the engine's whole writing
//! transaction, reads included, so writers from other tabs and workers run strictly one after
//! another and a version check done in one can not be overtaken by another's write.

use core::cell::RefCell;
use core::future::{poll_fn, Future, IntoFuture};
use core::task::{Poll, Waker};
use std::collections::BTreeMap;
use std::rc::Rc;

use hearth_engine::store::{
    merge_writes, Entry, KeyRange as Range, Store, StoreError, Transaction,
};
use indexed_db_futures::cursor::CursorDirection;
use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{
    Transaction as IdbTransaction, TransactionFinishKind, TransactionMode,
};
use indexed_db_futures::KeyRange;
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};

use crate::BindingError;

/// The object store of keys and values.
const DATA: &str = "kv";

/// The schema's version: the number of upgrade steps in [`upgrade`].
const SCHEMA_VERSION: u32 = 1;

/// Entries asked of IndexedDB by the first request of a range scan; each further request asks
/// for four times as many, up to [`SCAN_BATCH_MAX`], so that short scans read little and long
/// ones take few round trips.
const SCAN_BATCH: usize = 1024;
/// The most entries asked of IndexedDB by one request of a range scan.
const SCAN_BATCH_MAX: usize = 65_536;

/// Why a connection can no longer be used.
#[derive(Default)]
struct Closed {
    reason: Option<String>,
}

/// An open IndexedDB database holding a Hearth store.
pub struct IdbStore {
    db: Database,
    name: String,
    closed: Rc<RefCell<Closed>>,
}

fn message(err: impl core::fmt::Display) -> String {
    err.to_string()
}

/// A storage failure as the engine reports it; a full quota is named as such.
fn store_error(what: &str, err: impl core::fmt::Display) -> StoreError {
    let text = err.to_string();
    if text.contains("QuotaExceeded") || text.to_ascii_lowercase().contains("quota") {
        StoreError::full(format!(
            "the browser's storage quota for this site is used up ({text}); nothing of the request was stored"
        ))
    } else {
        StoreError::new(format!("IndexedDB {what} failed: {text}"))
    }
}

fn key_js(key: &[u8]) -> JsValue {
    Uint8Array::from(key).into()
}

fn key_bytes(value: &JsValue) -> Result<Vec<u8>, StoreError> {
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(bytes.to_vec());
    }
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(buffer).to_vec());
    }
    Err(StoreError::new(
        "IndexedDB holds a key or value that is not bytes; the database was not written by this store",
    ))
}

/// The schema's upgrade steps, in order; each runs once, when a database older than it opens.
/// Steps are append-only: a released step is never edited, a new one is added.
fn upgrade(old_version: f64, db: &Database) -> Result<(), indexed_db_futures::error::Error> {
    if old_version < 1.0 {
        db.create_object_store(DATA).build()?;
    }
    Ok(())
}

impl IdbStore {
    /// Opens (creating or upgrading when needed) the database `name`.
    ///
    /// # Errors
    /// [`BindingError::Storage`] when IndexedDB is unavailable, refuses to open, holds a newer
    /// schema than this build knows, or is held at an older version by another connection
    /// that does not let go (the open is reported blocked, not left waiting).
    pub async fn open(name: &str) -> Result<IdbStore, BindingError> {
        struct Blocked {
            blocked: bool,
            waker: Option<Waker>,
        }
        let blocked = Rc::new(RefCell::new(Blocked {
            blocked: false,
            waker: None,
        }));
        let on_blocked = Rc::clone(&blocked);
        let opening = Database::open(name)
            .with_version(SCHEMA_VERSION)
            .with_on_blocked(move |_event| {
                let mut state = on_blocked.borrow_mut();
                state.blocked = true;
                if let Some(waker) = state.waker.take() {
                    waker.wake();
                }
                Ok(())
            })
            .with_on_upgrade_needed(|event, db| upgrade(event.old_version(), &db));
        let mut opening = core::pin::pin!(opening.into_future());
        let opened = poll_fn(|cx| {
            if let Poll::Ready(result) = opening.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            let mut state = blocked.borrow_mut();
            if state.blocked {
                return Poll::Ready(None);
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let db = match opened {
            None => {
                return Err(BindingError::Storage(format!(
                    "opening the store \"{name}\" is blocked: another tab or worker holds it open at an older version and does not close it; close that tab and open again"
                )))
            }
            Some(Err(err)) => {
                let text = message(&err);
                let hint = if text.contains("VersionError") || text.contains("version") {
                    "; it was written by a newer version of Hearth"
                } else {
                    ""
                };
                return Err(BindingError::Storage(format!(
                    "IndexedDB could not open the store \"{name}\": {text}{hint}"
                )));
            }
            Some(Ok(db)) => db,
        };
        let closed = Rc::new(RefCell::new(Closed::default()));
        watch_version_changes(&db, Rc::clone(&closed));
        Ok(IdbStore {
            db,
            name: name.to_owned(),
            closed,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the connection was closed, if it was.
    pub fn closed_reason(&self) -> Option<String> {
        self.closed.borrow().reason.clone()
    }

    /// Closes the connection; later transactions fail with `reason`.
    pub fn close(&self, reason: &str) {
        let mut closed = self.closed.borrow_mut();
        if closed.reason.is_none() {
            closed.reason = Some(reason.to_owned());
            self.db.clone().close();
        }
    }

    /// Deletes the database `name` with everything in it.
    ///
    /// # Errors
    /// [`BindingError::Storage`] when IndexedDB refuses.
    pub async fn destroy(name: &str) -> Result<(), BindingError> {
        Database::delete_by_name(name)
            .map_err(|err| BindingError::Storage(message(err)))?
            .await
            .map_err(|err| BindingError::Storage(message(err)))
    }
}

/// Closes the connection when a newer version of the database is opened elsewhere (another
/// tab updated the app), so that the upgrade there is not blocked; this connection then
/// answers that it was closed, and the page can reopen.
fn watch_version_changes(db: &Database, closed: Rc<RefCell<Closed>>) {
    let Ok(mut listener) = db.version_changes() else {
        return;
    };
    wasm_bindgen_futures::spawn_local(async move {
        let reason = match listener.recv().await {
            Some(_) => "the store was closed because a newer version of it was opened in another tab or worker; reload to continue",
            None => "the store was closed by the browser (its data may have been cleared)",
        };
        let mut state = closed.borrow_mut();
        if state.reason.is_none() {
            state.reason = Some(reason.to_owned());
        }
        drop(state);
        listener.db().clone().close();
    });
}

impl Store for IdbStore {
    type Tx<'s> = IdbTx<'s>;

    async fn begin(&self, write: bool) -> Result<IdbTx<'_>, StoreError> {
        if let Some(reason) = self.closed_reason() {
            return Err(StoreError::new(reason));
        }
        let mode = if write {
            TransactionMode::Readwrite
        } else {
            TransactionMode::Readonly
        };
        let tx = self
            .db
            .transaction(DATA)
            .with_mode(mode)
            .build()
            .map_err(|err| match self.closed_reason() {
                Some(reason) => StoreError::new(reason),
                None => store_error("transaction", err),
            })?;
        Ok(IdbTx {
            tx,
            writes: BTreeMap::new(),
            read: BTreeMap::new(),
        })
    }
}

/// One IndexedDB transaction of the engine.
pub struct IdbTx<'s> {
    tx: IdbTransaction<'s>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Values read ahead by `prefetch` (the transaction's snapshot; its own writes win).
    read: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl IdbTx<'_> {
    /// Up to `limit` stored entries of `range` (own writes not merged), in key order.
    async fn read_forward(&self, range: &Range, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let store = self
            .tx
            .object_store(DATA)
            .map_err(|err| store_error("read", err))?;
        let mut found = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        let mut size = SCAN_BATCH;
        while found.len() < limit {
            let batch = (limit - found.len()).min(size);
            size = (size * 4).min(SCAN_BATCH_MAX);
            let lower = after.as_deref().unwrap_or(&range.start);
            let query = match &range.end {
                Some(end) if end.as_slice() <= lower => break,
                Some(end) => KeyRange::Bound(key_js(lower), after.is_some(), key_js(end), true),
                None => KeyRange::LowerBound(key_js(lower), after.is_some()),
            };
            // Both requests go out before either is awaited; they see the same snapshot.
            let keys = store
                .get_all_keys::<JsValue>()
                .with_query::<JsValue, _>(query.clone())
                .with_limit(batch as u32)
                .primitive()
                .map_err(|err| store_error("read", err))?;
            let values = store
                .get_all::<JsValue>()
                .with_query::<JsValue, _>(query)
                .with_limit(batch as u32)
                .primitive()
                .map_err(|err| store_error("read", err))?;
            let keys = keys.await.map_err(|err| store_error("read", err))?;
            let values = values.await.map_err(|err| store_error("read", err))?;
            let mut count = 0;
            for (key, value) in keys.zip(values) {
                let key = key.map_err(|err| store_error("read", err))?;
                let value = value.map_err(|err| store_error("read", err))?;
                found.push((key_bytes(&key)?, key_bytes(&value)?));
                count += 1;
            }
            if count < batch {
                break;
            }
            after = found.last().map(|(key, _)| key.clone());
        }
        Ok(found)
    }

    /// Up to `limit` stored entries of `range`, in descending key order, through a cursor.
    async fn read_backward(&self, range: &Range, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let store = self
            .tx
            .object_store(DATA)
            .map_err(|err| store_error("read", err))?;
        let query = idb_range(range);
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let cursor = store
            .open_cursor()
            .with_query::<JsValue, _>(query)
            .with_direction(CursorDirection::Prev)
            .primitive()
            .map_err(|err| store_error("read", err))?
            .await
            .map_err(|err| store_error("read", err))?;
        let Some(mut cursor) = cursor else {
            return Ok(found);
        };
        // The first `next_record` reads the record the cursor opened on; later ones advance.
        while let Some(value) = cursor
            .next_record::<JsValue>()
            .await
            .map_err(|err| store_error("read", err))?
        {
            let key: Option<JsValue> = cursor.key().map_err(|err| store_error("read", err))?;
            if let Some(key) = key {
                found.push((key_bytes(&key)?, key_bytes(&value)?));
            }
            if found.len() >= limit {
                break;
            }
        }
        Ok(found)
    }
}

/// The IndexedDB key range of an engine key range.
fn idb_range(range: &Range) -> KeyRange<JsValue> {
    match &range.end {
        Some(end) => KeyRange::Bound(key_js(&range.start), false, key_js(end), true),
        None => KeyRange::LowerBound(key_js(&range.start), false),
    }
}

impl Transaction for IdbTx<'_> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(written) = self.writes.get(key) {
            return Ok(written.clone());
        }
        if let Some(read) = self.read.get(key) {
            return Ok(read.clone());
        }
        let store = self
            .tx
            .object_store(DATA)
            .map_err(|err| store_error("read", err))?;
        let found: Option<JsValue> = store
            .get::<JsValue, JsValue, _>(KeyRange::Only(key_js(key)))
            .primitive()
            .map_err(|err| store_error("read", err))?
            .await
            .map_err(|err| store_error("read", err))?;
        found.map(|value| key_bytes(&value)).transpose()
    }

    async fn scan(
        &mut self,
        range: &Range,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        // Own writes may hide stored entries (deletes) or add some; ask for enough.
        let own = self.writes.keys().filter(|key| range.contains(key)).count();
        let asked = limit.saturating_add(own);
        let stored = if reverse {
            self.read_backward(range, asked).await?
        } else {
            self.read_forward(range, asked).await?
        };
        if own == 0 {
            let mut stored = stored;
            stored.truncate(limit);
            return Ok(stored);
        }
        Ok(merge_writes(stored, &self.writes, range, limit, reverse))
    }

    async fn count(&mut self, range: &Range) -> Result<usize, StoreError> {
        if range.is_empty() {
            return Ok(0);
        }
        if self.writes.keys().any(|key| range.contains(key)) {
            // Own writes change the count: counted from the merged scan.
            return Ok(self.scan(range, usize::MAX, false).await?.len());
        }
        let store = self
            .tx
            .object_store(DATA)
            .map_err(|err| store_error("read", err))?;
        let query = idb_range(range);
        let count: u32 = store
            .count()
            .with_query::<JsValue, _>(query)
            .primitive()
            .map_err(|err| store_error("read", err))?
            .await
            .map_err(|err| store_error("read", err))?;
        Ok(count as usize)
    }

    async fn prefetch(&mut self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let wanted: std::collections::BTreeSet<&Vec<u8>> = keys
            .iter()
            .filter(|key| !self.writes.contains_key(*key) && !self.read.contains_key(*key))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let store = self
            .tx
            .object_store(DATA)
            .map_err(|err| store_error("read", err))?;
        // Every request goes out before the first is awaited: one round trip for all.
        let mut pending = Vec::with_capacity(wanted.len());
        for key in wanted {
            let request = store
                .get::<JsValue, JsValue, _>(KeyRange::Only(key_js(key)))
                .primitive()
                .map_err(|err| store_error("read", err))?;
            pending.push((key.clone(), request));
        }
        for (key, request) in pending {
            let found: Option<JsValue> = request.await.map_err(|err| store_error("read", err))?;
            let value = found.map(|value| key_bytes(&value)).transpose()?;
            self.read.insert(key, value);
        }
        Ok(())
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    async fn commit(self) -> Result<(), StoreError> {
        let IdbTx { tx, writes, .. } = self;
        if writes.is_empty() {
            // Nothing to write: let it end; a read-only transaction has nothing to lose.
            return tx.commit().await.map_err(|err| store_error("commit", err));
        }
        {
            let store = tx
                .object_store(DATA)
                .map_err(|err| store_error("write", err))?;
            // The requests are queued in order; their outcome is the transaction's.
            for (key, value) in writes {
                match value {
                    Some(value) => {
                        let request = store
                            .put(JsValue::from(Uint8Array::from(value.as_slice())))
                            .with_key(key_js(&key))
                            .primitive()
                            .map_err(|err| store_error("write", err))?;
                        drop(request);
                    }
                    None => {
                        let request = store
                            .delete::<JsValue, _>(KeyRange::Only(key_js(&key)))
                            .primitive()
                            .map_err(|err| store_error("write", err))?;
                        drop(request);
                    }
                }
            }
        }
        // The transaction commits once its requests have settled; how it ended is read from
        // the transaction itself, since a full quota aborts it without failing a request.
        let done = tx.on_done().map_err(|err| store_error("commit", err))?;
        match done.await {
            TransactionFinishKind::Ok => Ok(()),
            _ => Err(match tx.error() {
                Some(err) => store_error("commit", err),
                None => {
                    StoreError::new("IndexedDB aborted the transaction; nothing of it was stored")
                }
            }),
        }
    }
}

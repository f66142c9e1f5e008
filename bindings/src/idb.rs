//! The engine's [`Store`] on IndexedDB, through `indexed_db_futures`.
//!
//! The data is a [`PagedStore`]: a committed transaction is a few records (its log, its large
//! values packed in chunks, the meta record), not one record per key, since IndexedDB charges
//! per request far more than per byte. The records live in one object store (`records`) under
//! numeric keys. Each engine transaction is one IndexedDB transaction, read-only for reads:
//! the engine awaits nothing but that transaction's own requests, so it stays active until
//! the engine commits, and a transaction Bundle is on disk whole or not at all. Writes are
//! buffered and issued at commit; a failure of any (a full quota) aborts them all.
//!
//! **Invariant:** a readwrite IndexedDB transaction is held for the engine's whole writing
//! transaction, reads included, so writers from other tabs and workers run strictly one after
//! another and a version check done in one can not be overtaken by another's write.
//!
//! Schema 1 kept one record per key in the object store `kv`; opening such a database moves
//! its entries into the paged layout, a batch per transaction, each batch deleted from `kv` in
//! the transaction that stores it.

use core::cell::RefCell;
use core::future::{poll_fn, Future, IntoFuture};
use core::task::{Poll, Waker};
use std::rc::Rc;

use hearth_engine::store::paged::{PagedConfig, PagedStore, PagedTx, Records, RecordsTx};
use hearth_engine::store::{Store, StoreError, Transaction};
use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{
    Transaction as IdbTransaction, TransactionFinishKind, TransactionMode,
};
use indexed_db_futures::KeyRange;
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};

use crate::BindingError;

/// The object store of schema 1: one record per key.
const LEGACY: &str = "kv";
/// The object store of the paged layout's records.
const RECORDS: &str = "records";

/// The schema's version: the number of upgrade steps in [`upgrade`].
const SCHEMA_VERSION: u32 = 3;

/// Entries of schema 1 read at once when a database of that schema is opened; a transaction
/// moves those of them that fit in [`MIGRATION_BYTES`] (at least one).
const MIGRATION_BATCH: u32 = 2_000;
/// Bytes of schema 1 entries moved per transaction.
const MIGRATION_BYTES: usize = 8 << 20;

/// Why a connection can no longer be used.
#[derive(Default)]
struct Closed {
    reason: Option<String>,
}

/// An open IndexedDB database holding a Hearth store.
pub struct IdbStore {
    paged: PagedStore<IdbRecords>,
    name: String,
}

/// The records of a [`PagedStore`] in the object store `records`.
pub struct IdbRecords {
    db: Database,
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

fn id_js(id: u64) -> JsValue {
    // Record ids are below 2^53: exact as JavaScript numbers.
    JsValue::from_f64(id as f64)
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
        db.create_object_store(LEGACY).build()?;
    }
    if old_version < 2.0 {
        db.create_object_store(RECORDS).build()?;
    }
    // 3: the paged store's directory lists Bloom filters of pages (format 2). Nothing moves;
    // the version tells tabs of older builds, which can not read that directory, to let go.
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
        IdbStore::open_with(name, PagedConfig::default()).await
    }

    /// [`IdbStore::open`] with sizes of its own (small ones make tests compact early).
    ///
    /// # Errors
    /// As [`IdbStore::open`].
    pub async fn open_with(name: &str, config: PagedConfig) -> Result<IdbStore, BindingError> {
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
        let store = IdbStore {
            paged: PagedStore::with_config(IdbRecords { db, closed }, config),
            name: name.to_owned(),
        };
        store
            .migrate()
            .await
            .map_err(|err| BindingError::Storage(err.message))?;
        Ok(store)
    }

    /// Moves the entries of a schema 1 database into the paged layout.
    async fn migrate(&self) -> Result<(), StoreError> {
        loop {
            let mut tx = self.paged.begin(true).await?;
            let entries = tx.backend().legacy_batch(MIGRATION_BATCH).await?;
            let Some((last, _)) = entries.last() else {
                return tx.commit().await;
            };
            tx.backend().legacy_delete_through(last);
            for (key, value) in entries {
                tx.put(key, value);
            }
            tx.commit().await?;
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the connection was closed, if it was.
    pub fn closed_reason(&self) -> Option<String> {
        self.paged.records().closed_reason()
    }

    /// Closes the connection; later transactions fail with `reason`.
    pub fn close(&self, reason: &str) {
        let records = self.paged.records();
        let mut closed = records.closed.borrow_mut();
        if closed.reason.is_none() {
            closed.reason = Some(reason.to_owned());
            records.db.clone().close();
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

/// Resolves on a later turn of the event loop (`setTimeout(0)`), or at once where there is no
/// timer.
async fn next_turn() {
    let global = js_sys::global();
    let Ok(set_timeout) = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout")) else {
        return;
    };
    let Some(set_timeout) = set_timeout.dyn_ref::<js_sys::Function>() else {
        return;
    };
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = set_timeout.call2(&global, &resolve, &JsValue::from(0));
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
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
    type Tx<'s> = PagedTx<'s, IdbRecords>;

    async fn begin(&self, write: bool) -> Result<PagedTx<'_, IdbRecords>, StoreError> {
        self.paged.begin(write).await
    }
}

impl IdbRecords {
    fn closed_reason(&self) -> Option<String> {
        self.closed.borrow().reason.clone()
    }
}

impl Records for IdbRecords {
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
        let stores: &[&str] = if write {
            &[RECORDS, LEGACY]
        } else {
            &[RECORDS]
        };
        let tx = self
            .db
            .transaction(stores)
            .with_mode(mode)
            .build()
            .map_err(|err| match self.closed_reason() {
                Some(reason) => StoreError::new(reason),
                None => store_error("transaction", err),
            })?;
        Ok(IdbTx {
            tx,
            writer: None,
            wrote: false,
            failed: None,
        })
    }
}

std::thread_local! {
    /// Set when a transaction's commit went on to wait for IndexedDB to end it, for
    /// [`crate::service::PendingRequest::poll`] to tell its caller (who may do other work
    /// meanwhile).
    pub(crate) static COMMITTING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// One IndexedDB transaction of the engine. Writes are sent to IndexedDB as they are made (so
/// that their bytes leave Wasm memory at once); they all come within the engine's commit,
/// which awaits nothing but the transaction's own requests, so the transaction is active for
/// all or, when it has already ended, for none (the first refusal is kept and reported at
/// commit).
pub struct IdbTx<'s> {
    tx: IdbTransaction<'s>,
    /// The object store `records` as the browser gives it, for writes: they are sent with no
    /// listener of their own (a failed write fails the transaction, which the commit reads).
    writer: Option<web_sys::IdbObjectStore>,
    wrote: bool,
    failed: Option<StoreError>,
}

impl<'s> IdbTx<'s> {
    /// Up to `limit` entries of schema 1, in key order.
    async fn legacy_batch(&mut self, limit: u32) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let store = self
            .tx
            .object_store(LEGACY)
            .map_err(|err| store_error("read", err))?;
        let keys = store
            .get_all_keys::<JsValue>()
            .with_limit(limit)
            .primitive()
            .map_err(|err| store_error("read", err))?;
        let values = store
            .get_all::<JsValue>()
            .with_limit(limit)
            .primitive()
            .map_err(|err| store_error("read", err))?;
        let keys = keys.await.map_err(|err| self.read_error(err))?;
        let values = values.await.map_err(|err| self.read_error(err))?;
        let mut found = Vec::new();
        let mut bytes = 0;
        for (key, value) in keys.zip(values) {
            let key = key.map_err(|err| store_error("read", err))?;
            let value = value.map_err(|err| store_error("read", err))?;
            let entry = (key_bytes(&key)?, key_bytes(&value)?);
            bytes += entry.0.len() + entry.1.len();
            if bytes > MIGRATION_BYTES && !found.is_empty() {
                break;
            }
            found.push(entry);
        }
        Ok(found)
    }

    /// Deletes the schema 1 entries up to and including `last`.
    fn legacy_delete_through(&mut self, last: &[u8]) {
        self.send(|tx| {
            let legacy = tx.object_store(LEGACY)?;
            let request = legacy
                .delete::<JsValue, _>(KeyRange::UpperBound(key_js(last), false))
                .primitive()?;
            drop(request);
            Ok(())
        });
    }

    /// Sends a write, keeping the first refusal for the commit to report.
    fn send(
        &mut self,
        write: impl FnOnce(&IdbTransaction<'s>) -> Result<(), indexed_db_futures::error::Error>,
    ) {
        self.wrote = true;
        if self.failed.is_some() {
            return;
        }
        if let Err(err) = write(&self.tx) {
            self.failed = Some(store_error("write", err));
        }
    }

    /// Sends a write to `records` with no listener: IndexedDB reports a failed request to the
    /// transaction, which then aborts, and [`RecordsTx::commit`] reads why. A request refused
    /// at once is kept for the commit to report, as [`IdbTx::send`] does.
    fn send_raw(
        &mut self,
        write: impl FnOnce(&web_sys::IdbObjectStore) -> Result<web_sys::IdbRequest, JsValue>,
    ) {
        self.wrote = true;
        if self.failed.is_some() {
            return;
        }
        if self.writer.is_none() {
            match self.tx.object_store(RECORDS) {
                Ok(store) => self.writer = Some(store.as_sys().clone()),
                Err(err) => {
                    self.failed = Some(store_error("write", err));
                    return;
                }
            }
        }
        let Some(store) = &self.writer else { return };
        if let Err(err) = write(store) {
            self.failed = Some(store_error(
                "write",
                indexed_db_futures::error::Error::from(err),
            ));
        }
    }
}

impl IdbTx<'_> {
    /// A failed read, named by the transaction's own error when the transaction failed (a
    /// write refused for the quota aborts the reads waiting with it).
    fn read_error(&self, err: impl core::fmt::Display) -> StoreError {
        match self.tx.error() {
            Some(cause) => store_error("transaction", cause),
            None => store_error("read", err),
        }
    }
}

impl RecordsTx for IdbTx<'_> {
    async fn get_many(&mut self, ids: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let store = self
            .tx
            .object_store(RECORDS)
            .map_err(|err| store_error("read", err))?;
        // Every request goes out before the first is awaited: one round trip for all.
        let mut pending = Vec::with_capacity(ids.len());
        for id in ids {
            let request = store
                .get::<JsValue, JsValue, _>(KeyRange::Only(id_js(*id)))
                .primitive()
                .map_err(|err| store_error("read", err))?;
            pending.push(request);
        }
        let mut found = Vec::with_capacity(ids.len());
        for request in pending {
            let value: Option<JsValue> = request.await.map_err(|err| self.read_error(err))?;
            found.push(value.map(|value| key_bytes(&value)).transpose()?);
        }
        Ok(found)
    }

    async fn get_range(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        if end <= start {
            return Ok(Vec::new());
        }
        let store = self
            .tx
            .object_store(RECORDS)
            .map_err(|err| store_error("read", err))?;
        let values = store
            .get_all::<JsValue>()
            .with_query::<JsValue, _>(KeyRange::Bound(id_js(start), false, id_js(end), true))
            .primitive()
            .map_err(|err| store_error("read", err))?
            .await
            .map_err(|err| self.read_error(err))?;
        values
            .map(|value| {
                let value = value.map_err(|err| store_error("read", err))?;
                key_bytes(&value)
            })
            .collect()
    }

    fn put(&mut self, id: u64, value: Vec<u8>) {
        self.send_raw(|store| store.put_with_key(&Uint8Array::from(value.as_slice()), &id_js(id)));
    }

    fn delete_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.send_raw(|store| {
            let range = web_sys::IdbKeyRange::bound_with_lower_open_and_upper_open(
                &id_js(start),
                &id_js(end),
                false,
                true,
            )?;
            store.delete(&range)
        });
    }

    async fn commit(self) -> Result<(), StoreError> {
        let IdbTx {
            tx, wrote, failed, ..
        } = self;
        if let Some(err) = failed {
            // A write was refused: nothing of the transaction may be stored.
            let _ = tx.abort().await;
            return Err(err);
        }
        if !wrote {
            // Nothing to write: let it end; a read-only transaction has nothing to lose.
            return tx.commit().await.map_err(|err| store_error("commit", err));
        }
        // The transaction commits once its requests have settled; how it ended is read from
        // the transaction itself, since a full quota aborts it without failing a request.
        let done = tx.on_done().map_err(|err| store_error("commit", err))?;
        COMMITTING.with(|committing| committing.set(true));
        match done.await {
            TransactionFinishKind::Ok => Ok(()),
            finish => {
                if let Some(err) = tx.error() {
                    return Err(store_error("commit", err));
                }
                // A request failed: IndexedDB fires `error` (which ended the wait) before it
                // aborts the transaction and records why; the reason is read after a turn of
                // the event loop.
                if matches!(finish, TransactionFinishKind::Err) {
                    next_turn().await;
                    if let Some(err) = tx.error() {
                        return Err(store_error("commit", err));
                    }
                }
                Err(StoreError::new(
                    "IndexedDB aborted the transaction; nothing of it was stored",
                ))
            }
        }
    }
}

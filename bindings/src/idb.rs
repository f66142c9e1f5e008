//! A minimal IndexedDB key-value store through `indexed_db_futures`: one object store of
//! byte values under string keys, one IndexedDB transaction per call.
//!
//! This is where the engine's storage trait will be implemented on IndexedDB.

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};

use crate::BindingError;

const STORE_NAME: &str = "kv";

/// An open IndexedDB database holding one key-value object store.
pub struct IdbKv {
    db: Database,
}

fn idb_err(err: impl core::fmt::Display) -> BindingError {
    BindingError::Storage(err.to_string())
}

impl IdbKv {
    /// Opens (creating when needed) the database `name`.
    ///
    /// # Errors
    /// [`BindingError::Storage`] when IndexedDB is unavailable or refuses to open.
    pub async fn open(name: &str) -> Result<IdbKv, BindingError> {
        let db = Database::open(name)
            .with_version(1u8)
            .with_on_upgrade_needed(|event, db| {
                // Schema steps are append-only: never edit a released step, add one.
                if event.old_version() < 1.0 {
                    db.create_object_store(STORE_NAME).build()?;
                }
                Ok(())
            })
            .await
            .map_err(idb_err)?;
        Ok(IdbKv { db })
    }

    /// Writes `value` under `key` and commits.
    ///
    /// # Errors
    /// [`BindingError::Storage`] when the transaction fails.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), BindingError> {
        let tx = self
            .db
            .transaction(STORE_NAME)
            .with_mode(TransactionMode::Readwrite)
            .build()
            .map_err(idb_err)?;
        let store = tx.object_store(STORE_NAME).map_err(idb_err)?;
        let bytes = JsValue::from(Uint8Array::from(value));
        store
            .put(bytes)
            .with_key(key)
            .primitive()
            .map_err(idb_err)?
            .await
            .map_err(idb_err)?;
        tx.commit().await.map_err(idb_err)?;
        Ok(())
    }

    /// Reads the value under `key`.
    ///
    /// # Errors
    /// [`BindingError::Storage`] when the transaction fails or the stored value is not bytes.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BindingError> {
        let tx = self.db.transaction(STORE_NAME).build().map_err(idb_err)?;
        let store = tx.object_store(STORE_NAME).map_err(idb_err)?;
        let found: Option<JsValue> = store
            .get(key)
            .primitive()
            .map_err(idb_err)?
            .await
            .map_err(idb_err)?;
        match found {
            None => Ok(None),
            Some(value) => match value.dyn_into::<Uint8Array>() {
                Ok(bytes) => Ok(Some(bytes.to_vec())),
                Err(_) => Err(BindingError::Storage(format!(
                    "expected bytes under key {key:?}, found another value"
                ))),
            },
        }
    }

    /// Closes the database connection.
    pub fn close(self) {
        self.db.close();
    }
}

//! The FHIR REST service for JS hosts: the engine's handler over a store held in memory, or
//! over a store the host provides as a JS object with synchronous methods (SQLite through
//! better-sqlite3 in Node):
//!
//! - `get(key: Uint8Array): Uint8Array | undefined`
//! - `scan(start: Uint8Array, end: Uint8Array | undefined, limit: number, reverse: boolean):
//!   [Uint8Array, Uint8Array][]`
//! - `commit(writes: [Uint8Array, Uint8Array | undefined][])`: all writes at once, durable
//!   when it returns; throws when it cannot;
//! - optionally `begin(write: boolean)` and `end()`, called around each engine transaction, so
//!   that a store shared with other connections gives the transaction one consistent view
//!   (a SQLite `BEGIN` … `COMMIT`) and serialises writers.
//!
//! Each request is answered within one call, so a synchronous store sees no interleaving.

use std::collections::BTreeMap;

use hearth_engine::rest::{Clock, IdSource, Limits, Policy, Request, Service};
use hearth_engine::store::{
    block_on, Entry, KeyRange, MemoryStore, Store, StoreError, Transaction,
};
use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::BindingError;

struct JsClock;

impl Clock for JsClock {
    fn now(&self) -> String {
        js_sys::Date::new_0().to_iso_string().into()
    }
}

/// Random UUIDs from the host's `crypto.randomUUID()`.
struct JsIds;

impl IdSource for JsIds {
    fn next_id(&self) -> String {
        let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok();
        let uuid = crypto.and_then(|crypto| {
            let function = Reflect::get(&crypto, &"randomUUID".into()).ok()?;
            let function: js_sys::Function = function.dyn_into().ok()?;
            function.call0(&crypto).ok()?.as_string()
        });
        uuid.unwrap_or_else(|| {
            // Without WebCrypto: time and a counter, still unique within the process.
            let now = js_sys::Date::now() as u64;
            let random = (js_sys::Math::random() * 1e15) as u64;
            format!("{now:x}-{random:x}")
        })
    }
}

/// A store in JS.
struct JsStore {
    target: JsValue,
}

struct JsTx<'s> {
    store: &'s JsStore,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// True while the store's `begin` awaits its `end`.
    open: bool,
}

impl JsTx<'_> {
    /// Tells the store the transaction is over (committed or not).
    fn end(&mut self) -> Result<(), StoreError> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        self.store.call("end", &[]).map(|_| ())
    }
}

impl Drop for JsTx<'_> {
    fn drop(&mut self) {
        // A transaction dropped without commit (a read, or a write that failed) ends here;
        // an error of `end` has nobody left to report to.
        let _ = self.end();
    }
}

fn js_error(err: &JsValue) -> StoreError {
    let message = Reflect::get(err, &"message".into())
        .ok()
        .and_then(|message| message.as_string())
        .or_else(|| err.as_string())
        .unwrap_or_else(|| String::from("the store failed"));
    StoreError::new(message)
}

impl JsStore {
    /// True when the store has a method `name`.
    fn has(&self, name: &str) -> bool {
        Reflect::get(&self.target, &name.into()).is_ok_and(|value| value.is_function())
    }

    fn call(&self, name: &str, args: &[JsValue]) -> Result<JsValue, StoreError> {
        let function = Reflect::get(&self.target, &name.into()).map_err(|err| js_error(&err))?;
        let function: js_sys::Function = function
            .dyn_into()
            .map_err(|_| StoreError::new(format!("the store has no {name}() method")))?;
        let args: Array = args.iter().collect();
        let result = function
            .apply(&self.target, &args)
            .map_err(|err| js_error(&err))?;
        // A store whose methods answer Promises is asynchronous; read here as it is, its reads
        // would look empty and its commits unawaited, so it is refused before anything is
        // acknowledged.
        if result.is_instance_of::<js_sys::Promise>() {
            return Err(StoreError::new(format!(
                "the store's {name}() answered a Promise; this service needs a store whose get, scan and commit answer synchronously"
            )));
        }
        Ok(result)
    }
}

impl Store for JsStore {
    type Tx<'s> = JsTx<'s>;

    async fn begin(&self, write: bool) -> Result<JsTx<'_>, StoreError> {
        let ends = self.has("begin");
        if ends {
            self.call("begin", &[JsValue::from(write)])?;
        }
        Ok(JsTx {
            store: self,
            writes: BTreeMap::new(),
            open: ends,
        })
    }
}

fn bytes(value: &JsValue) -> Option<Vec<u8>> {
    value.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec)
}

impl Transaction for JsTx<'_> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(written) = self.writes.get(key) {
            return Ok(written.clone());
        }
        let value = self.store.call("get", &[Uint8Array::from(key).into()])?;
        Ok(bytes(&value))
    }

    async fn scan(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        let end: JsValue = match &range.end {
            Some(end) => Uint8Array::from(end.as_slice()).into(),
            None => JsValue::UNDEFINED,
        };
        // Asked for more than `limit`, as own writes may hide some of the store's entries.
        let asked = limit
            .saturating_add(self.writes.len())
            .min(u32::MAX as usize);
        let found = self.store.call(
            "scan",
            &[
                Uint8Array::from(range.start.as_slice()).into(),
                end,
                JsValue::from(asked as u32),
                JsValue::from(reverse),
            ],
        )?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for pair in Array::from(&found).iter() {
            let pair = Array::from(&pair);
            if let (Some(key), Some(value)) = (bytes(&pair.get(0)), bytes(&pair.get(1))) {
                merged.insert(key, value);
            }
        }
        for (key, value) in &self.writes {
            let inside = key.as_slice() >= range.start.as_slice()
                && range.end.as_ref().is_none_or(|end| key < end);
            if !inside {
                continue;
            }
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(if reverse {
            merged.into_iter().rev().take(limit).collect()
        } else {
            merged.into_iter().take(limit).collect()
        })
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    async fn commit(mut self) -> Result<(), StoreError> {
        if self.writes.is_empty() {
            return self.end();
        }
        let writes: Array = self
            .writes
            .iter()
            .map(|(key, value)| {
                let value: JsValue = match value {
                    Some(value) => Uint8Array::from(value.as_slice()).into(),
                    None => JsValue::UNDEFINED,
                };
                JsValue::from(Array::of2(&Uint8Array::from(key.as_slice()).into(), &value))
            })
            .collect();
        let committed = self.store.call("commit", &[writes.into()]).map(|_| ());
        let ended = self.end();
        committed.and(ended)
    }
}

enum Backend {
    Memory(Service<MemoryStore>),
    Js(Service<JsStore>),
}

/// A FHIR REST service running in this module.
#[wasm_bindgen]
pub struct FhirService {
    backend: Backend,
}

#[wasm_bindgen]
impl FhirService {
    /// A service over `store` (a JS object with `get`, `scan` and `commit`), or in memory
    /// when `store` is undefined; `base_url` prefixes `Location` headers and bundle URLs.
    #[wasm_bindgen(constructor)]
    pub fn new(store: JsValue, base_url: String) -> FhirService {
        let backend = if store.is_undefined() || store.is_null() {
            Backend::Memory(Service::new(
                MemoryStore::new(),
                Box::new(JsClock),
                Box::new(JsIds),
                base_url,
            ))
        } else {
            Backend::Js(Service::new(
                JsStore { target: store },
                Box::new(JsClock),
                Box::new(JsIds),
                base_url,
            ))
        };
        FhirService { backend }
    }

    /// Sets what one request may cost (see the engine's `Limits`); `NaN` or a negative number
    /// keeps a limit's default.
    #[wasm_bindgen(js_name = setLimits)]
    #[allow(clippy::too_many_arguments)]
    pub fn set_limits(
        &mut self,
        max_body_bytes: f64,
        max_parameters: f64,
        max_values: f64,
        max_sort_keys: f64,
        max_elements: f64,
        max_entries: f64,
        max_response_bytes: f64,
        max_work: f64,
    ) {
        let defaults = Limits::default();
        // Whole numbers from JS; out-of-range ones saturate, NaN keeps the default.
        let size = |value: f64, default: usize| -> usize {
            if value.is_nan() || value < 0.0 {
                default
            } else if value >= usize::MAX as f64 {
                usize::MAX
            } else {
                value as usize
            }
        };
        let limits = Limits {
            max_body_bytes: size(max_body_bytes, defaults.max_body_bytes),
            max_parameters: size(max_parameters, defaults.max_parameters),
            max_values: size(max_values, defaults.max_values),
            max_sort_keys: size(max_sort_keys, defaults.max_sort_keys),
            max_elements: size(max_elements, defaults.max_elements),
            max_entries: size(max_entries, defaults.max_entries),
            max_response_bytes: size(max_response_bytes, defaults.max_response_bytes),
            max_work: if max_work.is_nan() || max_work < 0.0 {
                defaults.max_work
            } else if max_work >= u64::MAX as f64 {
                u64::MAX
            } else {
                max_work as u64
            },
        };
        match &mut self.backend {
            Backend::Memory(service) => service.set_limits(limits),
            Backend::Js(service) => service.set_limits(limits),
        }
    }

    /// Sets the Host names answered (empty: the base URL's, with the loopback names for a
    /// loopback base; `*` alone: any) and the web origins allowed to call across origins.
    #[wasm_bindgen(js_name = setPolicy)]
    pub fn set_policy(&mut self, base_url: String, hosts: Vec<String>, origins: Vec<String>) {
        let mut policy = Policy::for_base_url(&base_url);
        if hosts.iter().any(|host| host == "*") {
            policy.allowed_hosts.clear();
        } else {
            policy
                .allowed_hosts
                .extend(hosts.into_iter().map(|host| host.to_ascii_lowercase()));
        }
        policy.allowed_origins = origins;
        match &mut self.backend {
            Backend::Memory(service) => service.set_policy(policy),
            Backend::Js(service) => service.set_policy(policy),
        }
    }

    /// Answers a request: `query` and `headers` are flat `[name, value, name, value, ...]`
    /// lists. Returns `{ status, headers: [[name, value], ...], body }`.
    ///
    /// # Errors
    /// Only when the answer cannot be built as a JS object.
    pub fn handle(
        &self,
        method: String,
        path: String,
        query: Vec<String>,
        headers: Vec<String>,
        body: Vec<u8>,
    ) -> Result<JsValue, BindingError> {
        let pairs = |flat: Vec<String>| -> Vec<(String, String)> {
            flat.chunks(2)
                .map(|pair| {
                    (
                        pair.first().cloned().unwrap_or_default(),
                        pair.get(1).cloned().unwrap_or_default(),
                    )
                })
                .collect()
        };
        let request = Request {
            method,
            path,
            query: pairs(query),
            headers: pairs(headers)
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .collect(),
            body,
        };
        let response = match &self.backend {
            Backend::Memory(service) => block_on(service.handle(&request)),
            Backend::Js(service) => block_on(service.handle(&request)),
        };
        let result = js_sys::Object::new();
        let headers: Array = response
            .headers
            .iter()
            .map(|(name, value)| JsValue::from(Array::of2(&name.into(), &value.into())))
            .collect();
        Reflect::set(&result, &"status".into(), &response.status.into())
            .map_err(BindingError::Js)?;
        Reflect::set(&result, &"headers".into(), &headers.into()).map_err(BindingError::Js)?;
        Reflect::set(&result, &"body".into(), &response.body.into()).map_err(BindingError::Js)?;
        Ok(result.into())
    }
}

//! The FHIR REST service for JS hosts: the engine's handler over a store held in memory, over
//! IndexedDB ([`crate::idb::IdbStore`]), or over a store the host provides as a JS object
//! (SQLite through better-sqlite3 in Node, or any store of the host's own):
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
//! Through `handle`, each request is answered within one call, so a synchronous store sees no
//! interleaving, and a method that answers a Promise is refused. Through `start` and the
//! [`PendingRequest`] it returns, the store's methods may answer Promises, each awaited before
//! the engine goes on; a rejected one fails the request, and nothing is acknowledged before
//! `commit` has resolved.
//! One request at a time: a request made while another is in flight is refused (the npm
//! package queues them).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use hearth_engine::access::{Access, Claims, Roles, Scopes};
use hearth_engine::rest::{Clock, IdSource, Limits, Policy, Request, Response, Service};
use hearth_engine::store::{
    block_on, merge_writes, Entry, KeyRange, MemoryStore, Store, StoreError, Transaction,
};
use hearth_engine::sync::{
    Conflict, HttpReply, Options as SyncOptions, Resolution, Scope, Step, Summary, Sync,
};
use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::idb::IdbStore;
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
    /// True while a request runs through `start`, when Promises may be awaited.
    awaiting: Cell<bool>,
}

struct JsTx<'s> {
    store: &'s JsStore,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// True while the store's `begin` awaits its `end`.
    open: bool,
}

impl JsTx<'_> {
    /// Tells the store the transaction is over (committed or not).
    async fn end(&mut self) -> Result<(), StoreError> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        self.store.call("end", &[]).await.map(|_| ())
    }
}

impl Drop for JsTx<'_> {
    fn drop(&mut self) {
        // A transaction dropped without commit (a read, or a write that failed) ends here;
        // an error of `end` has nobody left to report to, and a Promise it answers is left
        // to run (the store orders its own calls).
        if self.open {
            self.open = false;
            let _ = self.store.call_now("end", &[]);
        }
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

    /// Calls the store's method `name` and returns what it answered, Promise or not.
    fn call_now(&self, name: &str, args: &[JsValue]) -> Result<JsValue, StoreError> {
        let function = Reflect::get(&self.target, &name.into()).map_err(|err| js_error(&err))?;
        let function: js_sys::Function = function
            .dyn_into()
            .map_err(|_| StoreError::new(format!("the store has no {name}() method")))?;
        let args: Array = args.iter().collect();
        function
            .apply(&self.target, &args)
            .map_err(|err| js_error(&err))
    }

    /// Calls the store's method `name`; a Promise it answers is awaited under `start`.
    async fn call(&self, name: &str, args: &[JsValue]) -> Result<JsValue, StoreError> {
        let result = self.call_now(name, args)?;
        if let Some(promise) = result.dyn_ref::<js_sys::Promise>() {
            if !self.awaiting.get() {
                // Read here as it is, an asynchronous store's reads would look empty and its
                // commits unawaited, so it is refused before anything is acknowledged.
                return Err(StoreError::new(format!(
                    "the store's {name}() answered a Promise; use FhirStore with an asynchronous store"
                )));
            }
            return wasm_bindgen_futures::JsFuture::from(promise.clone())
                .await
                .map_err(|err| js_error(&err));
        }
        Ok(result)
    }
}

impl Store for JsStore {
    type Tx<'s> = JsTx<'s>;

    async fn begin(&self, write: bool) -> Result<JsTx<'_>, StoreError> {
        let ends = self.has("begin");
        if ends {
            self.call("begin", &[JsValue::from(write)]).await?;
        }
        Ok(JsTx {
            store: self,
            writes: BTreeMap::new(),
            open: ends,
        })
    }
}

/// The bytes of what the store answered: a Uint8Array (a Node Buffer is one), another view
/// or an ArrayBuffer, from this realm or another; `undefined` or `null` for none.
fn bytes(value: &JsValue) -> Result<Option<Vec<u8>>, StoreError> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    if let Some(array) = value.dyn_ref::<Uint8Array>() {
        return Ok(Some(array.to_vec()));
    }
    if js_sys::ArrayBuffer::is_view(value) {
        let field = |name: &str| Reflect::get(value, &name.into()).ok();
        if let (Some(buffer), Some(offset), Some(length)) =
            (field("buffer"), field("byteOffset"), field("byteLength"))
        {
            let view = Uint8Array::new_with_byte_offset_and_length(
                &buffer,
                offset.as_f64().unwrap_or(0.0) as u32,
                length.as_f64().unwrap_or(0.0) as u32,
            );
            return Ok(Some(view.to_vec()));
        }
    }
    if Reflect::get(value, &"byteLength".into())
        .ok()
        .is_some_and(|length| length.as_f64().is_some())
        && !Array::is_array(value)
    {
        // An ArrayBuffer, perhaps of another realm.
        return Ok(Some(Uint8Array::new(value).to_vec()));
    }
    Err(StoreError::new(
        "the store answered a value that is not bytes (expected a Uint8Array, another view or an ArrayBuffer)",
    ))
}

impl Transaction for JsTx<'_> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(written) = self.writes.get(key) {
            return Ok(written.clone());
        }
        let value = self
            .store
            .call("get", &[Uint8Array::from(key).into()])
            .await?;
        bytes(&value)
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
        let found = self
            .store
            .call(
                "scan",
                &[
                    Uint8Array::from(range.start.as_slice()).into(),
                    end,
                    JsValue::from(asked as u32),
                    JsValue::from(reverse),
                ],
            )
            .await?;
        let mut stored = Vec::new();
        for pair in Array::from(&found).iter() {
            let pair = Array::from(&pair);
            if let (Some(key), Some(value)) = (bytes(&pair.get(0))?, bytes(&pair.get(1))?) {
                stored.push((key, value));
            }
        }
        Ok(merge_writes(stored, &self.writes, range, limit, reverse))
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    async fn commit(mut self) -> Result<(), StoreError> {
        if self.writes.is_empty() {
            return self.end().await;
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
        let committed = self
            .store
            .call("commit", &[writes.into()])
            .await
            .map(|_| ());
        let ended = self.end().await;
        committed.and(ended)
    }
}

enum Backend {
    Memory(Rc<Service<MemoryStore>>),
    Js(Rc<Service<JsStore>>),
    Idb(Rc<Service<IdbStore>>),
}

/// Runs `$body` with `$service` bound to the backend's service, whatever its store.
macro_rules! with_service {
    ($backend:expr, $service:ident => $body:expr) => {
        match $backend {
            Backend::Memory($service) => $body,
            Backend::Js($service) => $body,
            Backend::Idb($service) => $body,
        }
    };
}

/// A FHIR REST service running in this module.
#[wasm_bindgen]
pub struct FhirService {
    backend: Backend,
    /// True while a request is being answered.
    busy: Rc<Cell<bool>>,
    /// How requests that come with claims are judged and recorded.
    access: Access,
}

fn service<S: Store>(store: S, base_url: String) -> Rc<Service<S>> {
    Rc::new(Service::new(
        store,
        Box::new(JsClock),
        Box::new(JsIds),
        base_url,
    ))
}

fn pairs(flat: Vec<String>) -> Vec<(String, String)> {
    flat.chunks(2)
        .map(|pair| {
            (
                pair.first().cloned().unwrap_or_default(),
                pair.get(1).cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn request(
    method: String,
    path: String,
    query: Vec<String>,
    headers: Vec<String>,
    body: Vec<u8>,
) -> Request {
    Request {
        method,
        path,
        query: pairs(query),
        headers: pairs(headers)
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect(),
        body,
    }
}

/// `{ status, headers: [[name, value], ...], body }`.
fn answer(response: &hearth_engine::rest::Response) -> Result<JsValue, BindingError> {
    let result = js_sys::Object::new();
    let headers: Array = response
        .headers
        .iter()
        .map(|(name, value)| JsValue::from(Array::of2(&name.into(), &value.into())))
        .collect();
    Reflect::set(&result, &"status".into(), &response.status.into()).map_err(BindingError::Js)?;
    Reflect::set(&result, &"headers".into(), &headers.into()).map_err(BindingError::Js)?;
    Reflect::set(&result, &"body".into(), &response.body.clone().into())
        .map_err(BindingError::Js)?;
    Ok(result.into())
}

/// What a request comes with, for the access layer: nothing (the service alone), verified
/// claims, or the host's refusal of its token.
enum Asking {
    Service,
    Claims(Claims),
    Refused {
        status: u16,
        message: String,
        challenge: String,
    },
}

fn text_of(object: &JsValue, name: &str) -> Option<String> {
    Reflect::get(object, &name.into())
        .ok()
        .and_then(|value| value.as_string())
}

/// Reads `{ scope, patient, encounter, fhirUser, clientId, sub, roles }` (verified claims), or
/// `{ refused: { status, message, challenge } }`; `undefined`: none.
fn asking(claims: &JsValue) -> Result<Asking, BindingError> {
    if claims.is_undefined() || claims.is_null() {
        return Ok(Asking::Service);
    }
    if !claims.is_object() {
        return Err(BindingError::Invalid(String::from(
            "claims must be an object: { scope, patient, fhirUser, clientId, sub, roles }",
        )));
    }
    let refused = Reflect::get(claims, &"refused".into()).unwrap_or(JsValue::UNDEFINED);
    if refused.is_object() {
        let status = Reflect::get(&refused, &"status".into())
            .ok()
            .and_then(|value| value.as_f64())
            .filter(|status| (400.0..600.0).contains(status))
            .unwrap_or(401.0) as u16;
        return Ok(Asking::Refused {
            status,
            message: text_of(&refused, "message").unwrap_or_else(|| String::from("not authorized")),
            challenge: text_of(&refused, "challenge")
                .unwrap_or_else(|| String::from("Bearer error=\"invalid_token\"")),
        });
    }
    let roles = Reflect::get(claims, &"roles".into()).unwrap_or(JsValue::UNDEFINED);
    let roles: Vec<String> = if Array::is_array(&roles) {
        Array::from(&roles)
            .iter()
            .filter_map(|role| role.as_string())
            .collect()
    } else {
        roles.as_string().into_iter().collect()
    };
    Ok(Asking::Claims(Claims {
        scopes: Scopes::parse(&text_of(claims, "scope").unwrap_or_default()),
        patient: text_of(claims, "patient"),
        encounter: text_of(claims, "encounter"),
        fhir_user: text_of(claims, "fhirUser"),
        client_id: text_of(claims, "clientId"),
        subject: text_of(claims, "sub"),
        roles,
    }))
}

/// Answers `request` as `asking` says.
async fn answer_as<S: Store>(
    service: &Service<S>,
    access: &Access,
    asking: &Asking,
    request: &Request,
) -> Response {
    match asking {
        Asking::Service => service.handle(request).await,
        Asking::Claims(claims) => access.handle(service, request, claims).await,
        Asking::Refused {
            status,
            message,
            challenge,
        } => {
            access
                .refuse(service, request, *status, message, challenge)
                .await
        }
    }
}

/// Holds the service busy for one request.
struct Busy(Rc<Cell<bool>>);

impl Busy {
    fn take(flag: &Rc<Cell<bool>>) -> Result<Busy, BindingError> {
        if flag.replace(true) {
            return Err(BindingError::Busy);
        }
        Ok(Busy(Rc::clone(flag)))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

#[wasm_bindgen]
impl FhirService {
    /// A service over `store` (a JS object with `get`, `scan` and `commit`), or in memory
    /// when `store` is undefined; `base_url` prefixes `Location` headers and bundle URLs.
    #[wasm_bindgen(constructor)]
    pub fn new(store: JsValue, base_url: String) -> FhirService {
        let backend = if store.is_undefined() || store.is_null() {
            Backend::Memory(service(MemoryStore::new(), base_url))
        } else {
            Backend::Js(service(
                JsStore {
                    target: store,
                    awaiting: Cell::new(false),
                },
                base_url,
            ))
        };
        FhirService {
            backend,
            busy: Rc::new(Cell::new(false)),
            access: Access::new(),
        }
    }

    /// A service over the IndexedDB database `name` (created when missing); answer requests
    /// with `start`.
    ///
    /// # Errors
    /// When IndexedDB is missing, refuses, or the open is blocked by another connection.
    #[wasm_bindgen(js_name = openIndexedDb)]
    pub async fn open_indexed_db(
        name: String,
        base_url: String,
    ) -> Result<FhirService, BindingError> {
        let store = IdbStore::open(&name).await?;
        Ok(FhirService {
            backend: Backend::Idb(service(store, base_url)),
            busy: Rc::new(Cell::new(false)),
            access: Access::new(),
        })
    }

    /// Deletes the IndexedDB database `name` with everything in it.
    ///
    /// # Errors
    /// When IndexedDB refuses.
    #[wasm_bindgen(js_name = destroyIndexedDb)]
    pub async fn destroy_indexed_db(name: String) -> Result<(), BindingError> {
        IdbStore::destroy(&name).await
    }

    /// Closes the IndexedDB connection (no-op for other stores); later requests fail.
    pub fn close(&self) {
        if let Backend::Idb(service) = &self.backend {
            service.store().close("the store was closed");
        }
    }

    /// Why the store can no longer answer (an IndexedDB connection closed by a newer
    /// version elsewhere), or undefined.
    #[wasm_bindgen(js_name = closedReason)]
    pub fn closed_reason(&self) -> Option<String> {
        match &self.backend {
            Backend::Idb(service) => service.store().closed_reason(),
            _ => None,
        }
    }

    /// The service, for changing its settings; refused while a request is in flight.
    fn settings(&mut self) -> Result<(), BindingError> {
        if self.busy.get() {
            return Err(BindingError::Busy);
        }
        Ok(())
    }

    /// Loads a StructureDefinition, ValueSet, Questionnaire or a Bundle of them into the
    /// profiles that writes and `$validate` check resources against; returns how many.
    ///
    /// # Errors
    /// When the JSON is not a FHIR resource, or while a request is in flight.
    #[wasm_bindgen(js_name = addProfile)]
    pub fn add_profile(&mut self, bytes: &[u8]) -> Result<usize, BindingError> {
        self.settings()?;
        let resource = hearth_engine::json::fhir::parse_resource(bytes)?;
        with_service!(&mut self.backend, service => match Rc::get_mut(service) {
            Some(service) => Ok(service.profiles_mut().load(&resource)),
            None => Err(BindingError::Busy),
        })
    }

    /// Sets what one request may cost (see the engine's `Limits`); `NaN` or a negative number
    /// keeps a limit's default.
    ///
    /// # Errors
    /// While a request is in flight.
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
    ) -> Result<(), BindingError> {
        self.settings()?;
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
        with_service!(&mut self.backend, service => {
            if let Some(service) = Rc::get_mut(service) {
                service.set_limits(limits);
            }
        });
        Ok(())
    }

    /// Sets the Host names answered (empty: the base URL's, with the loopback names for a
    /// loopback base; `*` alone: any) and the web origins allowed to call across origins.
    ///
    /// # Errors
    /// While a request is in flight.
    #[wasm_bindgen(js_name = setPolicy)]
    pub fn set_policy(
        &mut self,
        base_url: String,
        hosts: Vec<String>,
        origins: Vec<String>,
    ) -> Result<(), BindingError> {
        self.settings()?;
        let mut policy = Policy::for_base_url(&base_url);
        if hosts.iter().any(|host| host == "*") {
            policy.allowed_hosts.clear();
        } else {
            policy
                .allowed_hosts
                .extend(hosts.into_iter().map(|host| host.to_ascii_lowercase()));
        }
        policy.allowed_origins = origins;
        with_service!(&mut self.backend, service => {
            if let Some(service) = Rc::get_mut(service) {
                service.set_policy(policy.clone());
            }
        });
        Ok(())
    }

    /// Answers a request: `query` and `headers` are flat `[name, value, name, value, ...]`
    /// lists. Returns `{ status, headers: [[name, value], ...], body }`. For stores that
    /// answer at once (memory, a synchronous JS store).
    ///
    /// # Errors
    /// When the answer cannot be built as a JS object, the service is IndexedDB (use
    /// `start`), or another request is in flight.
    pub fn handle(
        &self,
        method: String,
        path: String,
        query: Vec<String>,
        headers: Vec<String>,
        body: Vec<u8>,
        claims: JsValue,
    ) -> Result<JsValue, BindingError> {
        let asking = asking(&claims)?;
        let _busy = Busy::take(&self.busy)?;
        let request = request(method, path, query, headers, body);
        let access = &self.access;
        let response = match &self.backend {
            Backend::Memory(service) => block_on(answer_as(service, access, &asking, &request)),
            Backend::Js(service) => {
                service.store().awaiting.set(false);
                block_on(answer_as(service, access, &asking, &request))
            }
            Backend::Idb(_) => return Err(BindingError::NeedsAsync),
        };
        answer(&response)
    }

    /// Names the SMART authorization server's endpoints in the CapabilityStatement (both, or
    /// neither for none).
    #[wasm_bindgen(js_name = setOauth)]
    pub fn set_oauth(&mut self, authorize: Option<String>, token: Option<String>) {
        let endpoints = authorize.zip(token);
        with_service!(&mut self.backend, service => {
            if let Some(service) = Rc::get_mut(service) {
                service.set_oauth(endpoints.clone());
            }
        });
    }

    /// Sets whether a `PUT` may create a resource under an id the client chose (R4's
    /// update-as-create; on by default). Off, such a `PUT` answers 405 and the
    /// CapabilityStatement says `updateCreate: false`.
    #[wasm_bindgen(js_name = setUpdateCreate)]
    pub fn set_update_create(&mut self, allowed: bool) {
        with_service!(&mut self.backend, service => {
            if let Some(service) = Rc::get_mut(service) {
                service.set_update_create(allowed);
            }
        });
    }

    /// Judges the requests that come with claims by `roles` (a roles file's JSON: what each
    /// role allows `user/` scopes to reach; none: scopes alone) and records them in the audit
    /// trail unless `audit` is false.
    ///
    /// # Errors
    /// When the roles file is not valid.
    #[wasm_bindgen(js_name = setAccess)]
    pub fn set_access(&mut self, roles: Option<String>, audit: bool) -> Result<(), BindingError> {
        let access = match roles {
            Some(text) => {
                Access::with_roles(Roles::from_json(&text).map_err(BindingError::Invalid)?)
            }
            None => Access::new(),
        };
        self.access = access.audited(audit);
        Ok(())
    }

    /// Reads a transaction Bundle ahead of the request that will post it as its body: that
    /// request then takes the entries read (and, with `validate`, what validation found)
    /// instead of reading them again. It touches no store, so it may be called while another
    /// request waits on the store: an import reads its next batch while the one before commits.
    pub fn prepare(&self, body: &[u8], validate: bool) {
        with_service!(&self.backend, service => service.prepare(body, validate));
    }

    /// Starts answering a request as [`FhirService::handle`] does, over a store that may
    /// answer asynchronously (IndexedDB, a JS store whose methods answer Promises): the caller
    /// drives the returned [`PendingRequest`] with `poll`, so that a failure of the engine is
    /// thrown to it rather than inside a callback nobody catches.
    ///
    /// # Errors
    /// When another request is in flight.
    pub fn start(
        &self,
        method: String,
        path: String,
        query: Vec<String>,
        headers: Vec<String>,
        body: Vec<u8>,
        claims: JsValue,
    ) -> Result<PendingRequest, BindingError> {
        let asking = asking(&claims)?;
        let busy = Busy::take(&self.busy)?;
        let request = request(method, path, query, headers, body);
        let access = self.access.clone();
        let backend = match &self.backend {
            Backend::Memory(service) => Backend::Memory(Rc::clone(service)),
            Backend::Js(service) => Backend::Js(Rc::clone(service)),
            Backend::Idb(service) => Backend::Idb(Rc::clone(service)),
        };
        let future = async move {
            let _busy = busy;
            let response = match &backend {
                Backend::Memory(service) => answer_as(service, &access, &asking, &request).await,
                Backend::Js(service) => {
                    service.store().awaiting.set(true);
                    let response = answer_as(service, &access, &asking, &request).await;
                    service.store().awaiting.set(false);
                    response
                }
                Backend::Idb(service) => answer_as(service, &access, &asking, &request).await,
            };
            answer(&response)
        };
        Ok(PendingRequest {
            future: Some(Box::pin(future)),
            waker: None,
        })
    }
}

thread_local! {
    /// The resolve functions of the Promises that `PendingRequest::poll` handed out, by the
    /// id of the waker that resolves them.
    static WAKERS: RefCell<BTreeMap<u32, js_sys::Function>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT_WAKER: Cell<u32> = const { Cell::new(0) };
}

/// The engine answering one request, to the JS object of its answer.
type Answering = Pin<Box<dyn Future<Output = Result<JsValue, BindingError>>>>;

/// Wakes a pending request by resolving the Promise its last `poll` answered.
struct JsWake(u32);

impl Wake for JsWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let resolve = WAKERS.with(|wakers| wakers.borrow_mut().remove(&self.0));
        if let Some(resolve) = resolve {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    }
}

/// A request being answered over an asynchronous store. `poll()` runs it as far as it can go:
/// `{ answer }` when it is done, or `{ wait }`, a Promise to await before polling again (it
/// resolves when the store has answered). Nothing runs between polls, so a Wasm trap is thrown
/// by a `poll` call, to its caller.
#[wasm_bindgen]
pub struct PendingRequest {
    future: Option<Answering>,
    /// The id of the waker handed to the last poll.
    waker: Option<u32>,
}

impl PendingRequest {
    fn forget_waker(&mut self) {
        if let Some(id) = self.waker.take() {
            WAKERS.with(|wakers| wakers.borrow_mut().remove(&id));
        }
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        self.forget_waker();
    }
}

#[wasm_bindgen]
impl PendingRequest {
    /// Runs the request until it is answered or waits on the store: `{ answer }`, or
    /// `{ wait }` (a Promise resolved when it may go on) with `committing: true` when it waits
    /// for its transaction's commit.
    ///
    /// # Errors
    /// When the answer cannot be built, or the request was answered already.
    pub fn poll(&mut self) -> Result<JsValue, BindingError> {
        self.forget_waker();
        let Some(future) = self.future.as_mut() else {
            return Err(BindingError::Js("the request was answered already".into()));
        };
        let mut resolve = None;
        let wait = js_sys::Promise::new(&mut |found, _| resolve = Some(found));
        let id = NEXT_WAKER.with(|next| {
            let id = next.get();
            next.set(id.wrapping_add(1));
            id
        });
        if let Some(resolve) = resolve {
            WAKERS.with(|wakers| wakers.borrow_mut().insert(id, resolve));
        }
        self.waker = Some(id);
        let waker = Waker::from(Arc::new(JsWake(id)));
        let step = js_sys::Object::new();
        crate::idb::COMMITTING.with(|committing| committing.set(false));
        match future.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(result) => {
                self.future = None;
                self.forget_waker();
                Reflect::set(&step, &"answer".into(), &result?).map_err(BindingError::Js)?;
            }
            Poll::Pending => {
                Reflect::set(&step, &"wait".into(), &wait).map_err(BindingError::Js)?;
                // The request waits for its transaction to commit, its work done.
                if crate::idb::COMMITTING.with(Cell::get) {
                    Reflect::set(&step, &"committing".into(), &JsValue::TRUE)
                        .map_err(BindingError::Js)?;
                }
            }
        }
        Ok(step.into())
    }
}

/// A sync of a service's store with a remote FHIR server, driven step by step from JS with
/// [`FhirService::sync_step`]: the engine decides each request, JS sends it with `fetch`.
#[wasm_bindgen]
pub struct SyncSession {
    /// `None` while a step runs (or after a step that never ended).
    sync: Rc<RefCell<Option<Sync>>>,
}

fn set(target: &js_sys::Object, name: &str, value: &JsValue) -> Result<(), BindingError> {
    Reflect::set(target, &name.into(), value)
        .map(|_| ())
        .map_err(BindingError::Js)
}

/// `{ pulled, pushed, merged, conflicts, requests, complete, issues, warnings }`, the last
/// two lists of `{ resource, message }`.
fn summary_js(summary: &Summary) -> Result<JsValue, BindingError> {
    let result = js_sys::Object::new();
    set(&result, "pulled", &(summary.pulled as f64).into())?;
    set(&result, "pushed", &(summary.pushed as f64).into())?;
    set(&result, "merged", &(summary.merged as f64).into())?;
    set(&result, "conflicts", &(summary.conflicts as f64).into())?;
    set(&result, "requests", &(summary.requests as f64).into())?;
    set(&result, "complete", &summary.complete.into())?;
    for (name, list) in [("issues", &summary.issues), ("warnings", &summary.warnings)] {
        let issues = Array::new();
        for issue in list {
            let item = js_sys::Object::new();
            if let Some(resource) = &issue.resource {
                set(&item, "resource", &resource.into())?;
            }
            set(&item, "message", &issue.message.as_str().into())?;
            issues.push(&item);
        }
        set(&result, name, &issues)?;
    }
    Ok(result.into())
}

/// What JS does next: `{ send: { method, url, headers, body } }`, `{ wait: ms }` or
/// `{ done: summary }`, with `progress: { phase, done, total }`.
fn step_js(step: Step, sync: &Sync) -> Result<JsValue, BindingError> {
    let result = js_sys::Object::new();
    match step {
        Step::Send(request) => {
            let send = js_sys::Object::new();
            set(&send, "method", &request.method.into())?;
            set(&send, "url", &request.url.into())?;
            let headers: Array = request
                .headers
                .iter()
                .map(|(name, value)| JsValue::from(Array::of2(&name.into(), &value.into())))
                .collect();
            set(&send, "headers", &headers)?;
            if !request.body.is_empty() {
                set(&send, "body", &Uint8Array::from(request.body.as_slice()))?;
            }
            set(&result, "send", &send)?;
        }
        Step::Wait { millis } => set(&result, "wait", &(millis as f64).into())?,
        Step::Done => set(&result, "done", &summary_js(sync.summary())?)?,
    }
    let progress = js_sys::Object::new();
    set(&progress, "phase", &sync.progress().phase.into())?;
    set(&progress, "done", &(sync.progress().done as f64).into())?;
    if let Some(total) = sync.progress().total {
        set(&progress, "total", &(total as f64).into())?;
    }
    set(&result, "progress", &progress)?;
    Ok(result.into())
}

impl FhirService {
    fn shared(&self) -> Backend {
        match &self.backend {
            Backend::Memory(service) => Backend::Memory(Rc::clone(service)),
            Backend::Js(service) => Backend::Js(Rc::clone(service)),
            Backend::Idb(service) => Backend::Idb(Rc::clone(service)),
        }
    }

    /// Runs `work` over the service as a [`PendingRequest`] (the store may answer
    /// asynchronously), holding the service busy until it ends.
    fn pending<F, Fut>(&self, work: F) -> Result<PendingRequest, BindingError>
    where
        F: FnOnce(Backend) -> Fut + 'static,
        Fut: Future<Output = Result<JsValue, BindingError>> + 'static,
    {
        let busy = Busy::take(&self.busy)?;
        let backend = self.shared();
        if let Backend::Js(service) = &backend {
            service.store().awaiting.set(true);
        }
        let future = async move {
            let _busy = busy;
            let js = match &backend {
                Backend::Js(service) => Some(Rc::clone(service)),
                _ => None,
            };
            let result = work(backend).await;
            if let Some(service) = js {
                service.store().awaiting.set(false);
            }
            result
        };
        Ok(PendingRequest {
            future: Some(Box::pin(future)),
            waker: None,
        })
    }
}

fn store_failed(err: &StoreError) -> BindingError {
    BindingError::Storage(err.message.clone())
}

#[wasm_bindgen]
impl FhirService {
    /// A sync with the server at `remote` (its base URL). `scope` is `patient` (one id in
    /// `values`), `types` or `searches`; `page_size` and `push_size` are `NaN` for defaults;
    /// `strict` false reads pulled resources leniently (see `SyncOptions::strict`).
    ///
    /// # Errors
    /// When the scope is unknown or empty.
    #[wasm_bindgen(js_name = syncSession)]
    #[allow(clippy::too_many_arguments)]
    pub fn sync_session(
        &self,
        remote: String,
        scope: String,
        values: Vec<String>,
        page_size: f64,
        push_size: f64,
        max_attempts: f64,
        strict: bool,
    ) -> Result<SyncSession, BindingError> {
        let scope = match (scope.as_str(), values.as_slice()) {
            ("patient", [id]) if !id.is_empty() => Scope::Patient(id.clone()),
            ("types", types) if !types.is_empty() => Scope::Types(values),
            ("searches", searches) if !searches.is_empty() => Scope::Searches(values),
            _ => {
                return Err(BindingError::Invalid(String::from(
                    "the sync scope is a patient id, a list of types or a list of searches",
                )))
            }
        };
        let mut options = SyncOptions::new(scope);
        if page_size.is_finite() && page_size >= 1.0 {
            options.page_size = page_size.min(1000.0) as usize;
        }
        if push_size.is_finite() && push_size >= 1.0 {
            options.push_size = push_size.min(1000.0) as usize;
        }
        if max_attempts.is_finite() && max_attempts >= 1.0 {
            options.max_attempts = max_attempts.min(100.0) as u32;
        }
        options.strict = strict;
        Ok(SyncSession {
            sync: Rc::new(RefCell::new(Some(Sync::new(&remote, options)))),
        })
    }

    /// One step of `session`: takes the reply to the request the last step asked for (`status`
    /// is `NaN` when it asked for none; `error` says why no reply came), then decides what to
    /// do next. Drive the returned [`PendingRequest`] with `poll`; its answer is what
    /// `step_js` describes.
    ///
    /// # Errors
    /// While another request is in flight.
    #[wasm_bindgen(js_name = syncStep)]
    pub fn sync_step(
        &self,
        session: &SyncSession,
        status: f64,
        headers: Vec<String>,
        body: Vec<u8>,
        error: Option<String>,
    ) -> Result<PendingRequest, BindingError> {
        let sync = Rc::clone(&session.sync);
        let reply = match error {
            Some(error) => Some(Err(error)),
            None if status.is_finite() => Some(Ok(HttpReply {
                status: status.clamp(0.0, 999.0) as u16,
                headers: pairs(headers),
                body,
            })),
            None => None,
        };
        if self.busy.get() {
            return Err(BindingError::Busy);
        }
        let Some(mut running) = sync.borrow_mut().take() else {
            return Err(BindingError::Invalid(String::from(
                "this sync was interrupted by a failure; start a new one",
            )));
        };
        self.pending(move |backend| async move {
            let step = with_service!(&backend, service => {
                if let Some(reply) = reply {
                    running.receive(service.as_ref(), reply).await;
                }
                running.next(service.as_ref()).await
            });
            let result = step_js(step, &running);
            *sync.borrow_mut() = Some(running);
            result
        })
    }

    /// The local changes `remote` has not received: an array of `"Type/id"`.
    ///
    /// # Errors
    /// While another request is in flight.
    #[wasm_bindgen(js_name = syncPending)]
    pub fn sync_pending(&self, remote: String) -> Result<PendingRequest, BindingError> {
        self.pending(move |backend| async move {
            let pending = with_service!(&backend, service => {
                Sync::pending(service.as_ref(), &remote).await
            })
            .map_err(|err| store_failed(&err))?;
            let items = js_sys::Array::new();
            for (type_name, id) in &pending {
                items.push(&JsValue::from(format!("{type_name}/{id}")));
            }
            Ok(JsValue::from(items))
        })
    }

    /// The conflicts recorded with `remote`: a JSON array of `{ type, id, remoteVersion,
    /// paths, base, local, remote }`.
    ///
    /// # Errors
    /// While another request is in flight.
    #[wasm_bindgen(js_name = syncConflicts)]
    pub fn sync_conflicts(&self, remote: String) -> Result<PendingRequest, BindingError> {
        self.pending(move |backend| async move {
            let conflicts = with_service!(&backend, service => {
                Sync::conflicts(service.as_ref(), &remote).await
            })
            .map_err(|err| store_failed(&err))?;
            let items: Vec<String> = conflicts.iter().map(Conflict::to_json).collect();
            Ok(JsValue::from(format!("[{}]", items.join(","))))
        })
    }

    /// Resolves the conflict on `type_name/id` with `remote`: `choice` is `local`, `remote`
    /// or `resource` (then `resource` is its JSON). Answers true when resolved, false when
    /// there was no conflict.
    ///
    /// # Errors
    /// While another request is in flight; when the resolution does not validate.
    #[wasm_bindgen(js_name = syncResolve)]
    pub fn sync_resolve(
        &self,
        remote: String,
        type_name: String,
        id: String,
        choice: String,
        resource: Option<String>,
    ) -> Result<PendingRequest, BindingError> {
        let resolution = match (choice.as_str(), resource) {
            ("local", _) => Resolution::Local,
            ("remote", _) => Resolution::Remote,
            ("resource", Some(json)) => Resolution::Resource(json),
            _ => {
                return Err(BindingError::Invalid(String::from(
                    "a conflict is resolved with \"local\", \"remote\" or a resource",
                )))
            }
        };
        self.pending(move |backend| async move {
            let result = with_service!(&backend, service => {
                Sync::resolve(service.as_ref(), &remote, &type_name, &id, &resolution).await
            })
            .map_err(|err| store_failed(&err))?;
            match result {
                Ok(resolved) => Ok(JsValue::from(resolved)),
                Err(message) => Err(BindingError::Invalid(format!(
                    "the resolution of {type_name}/{id} does not validate: {message}"
                ))),
            }
        })
    }
}

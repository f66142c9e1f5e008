//! What the sync tests share: a clock every party reads, ids, the services on each side, a
//! request helper, and the Patient fields the tests write.
#![allow(dead_code)]

use std::cell::Cell;
use std::rc::Rc;

use hearth_engine::rest::{Clock, IdSource, Request, Service};
use hearth_engine::store::{block_on, MemoryStore};
use serde_json::{json, Value};

pub const REMOTE: &str = "http://remote.test/fhir";

/// One clock for every party: each reading is a millisecond later.
#[derive(Clone)]
pub struct SimClock(pub Rc<Cell<u64>>);

impl Clock for SimClock {
    fn now(&self) -> String {
        let ms = self.0.get() + 1;
        self.0.set(ms);
        let (s, ms) = (ms / 1000, ms % 1000);
        let (m, s) = (s / 60, s % 60);
        let (h, m) = (m / 60, m % 60);
        let (d, h) = (h / 24, h % 24);
        format!("2026-01-{:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z", d + 1)
    }
}

pub struct Ids(pub &'static str, pub Cell<u32>);

impl IdSource for Ids {
    fn next_id(&self) -> String {
        self.1.set(self.1.get() + 1);
        format!("{}{}", self.0, self.1.get())
    }
}

pub type Local = Service<MemoryStore>;

pub fn service(clock: &SimClock, ids: &'static str, base: &str) -> Local {
    Service::new(
        MemoryStore::new(),
        Box::new(clock.clone()),
        Box::new(Ids(ids, Cell::new(0))),
        base,
    )
}

pub fn call(
    service: &Local,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value, Vec<(String, String)>) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let request = Request {
        method: method.into(),
        path: path.into(),
        query: query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
            .collect(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_lowercase(), v.to_string()))
            .chain(
                (!body.is_empty()).then(|| ("content-type".into(), "application/fhir+json".into())),
            )
            .collect(),
        body: body.as_bytes().to_vec(),
    };
    let response = block_on(service.handle(&request));
    let value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, value, response.headers)
}

pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

pub fn patient(id: Option<&str>, token: &str) -> Value {
    let mut value = json!({
        "resourceType": "Patient",
        "name": [{"family": format!("f{token}"), "given": [format!("g{token}")]}],
        "address": [{"city": format!("c{token}")}],
        "telecom": [{"system": "phone", "value": format!("p{token}")}]
    });
    if let Some(id) = id {
        value["id"] = json!(id);
    }
    value
}

pub fn field<'v>(resource: &'v mut Value, name: &str) -> &'v mut Value {
    match name {
        "family" => &mut resource["name"][0]["family"],
        "given" => &mut resource["name"][0]["given"][0],
        "city" => &mut resource["address"][0]["city"],
        _ => &mut resource["telecom"][0]["value"],
    }
}

pub fn field_value(resource: &Value, name: &str) -> Option<String> {
    let pointer = match name {
        "family" => "/name/0/family",
        "given" => "/name/0/given/0",
        "city" => "/address/0/city",
        _ => "/telecom/0/value",
    };
    resource.pointer(pointer)?.as_str().map(String::from)
}

pub fn read(service: &Local, id: &str) -> Option<Value> {
    let (status, value, _) = call(service, "GET", &format!("Patient/{id}"), &[], "");
    (status == 200).then_some(value)
}

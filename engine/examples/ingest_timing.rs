//! Times ingest natively, the way `FhirStore.import` stores resources: transaction Bundles of
//! `PUT`s into a service over the in-memory store, validated, every search index written.
//! `cargo run --release -p hearth-engine --example ingest_timing -- FILE.ndjson [BATCH] [QUERY...]`
//! prints the rate of each tenth of the file, so that a rate falling as the store grows shows;
//! then the median time of each search `QUERY` (`Type?params`) over the loaded store.
//! `HEARTH_VALIDATION=off` loads without validation (`X-Validation: off`);
//! `HEARTH_STORE=paged` loads into a `PagedStore` (the layout of the IndexedDB store) over
//! records in memory, and prints the records written.
use std::time::Instant;

use hearth_engine::rest::{Clock, IdSource, Request, Service};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use hearth_engine::store::paged::{PagedConfig, PagedStore, Records, RecordsTx};
use hearth_engine::store::{block_on, MemoryStore, Store, StoreError};

/// Records in memory, counting what is written (no snapshots: the load runs one transaction
/// at a time).
#[derive(Default)]
struct Counted {
    data: Rc<RefCell<BTreeMap<u64, Vec<u8>>>>,
    puts: Cell<u64>,
    bytes: Cell<u64>,
    reads: Cell<u64>,
}

struct CountedTx<'s> {
    records: &'s Counted,
    ops: Vec<(u64, u64, Option<Vec<u8>>)>,
}

impl Records for Counted {
    type Tx<'s> = CountedTx<'s>;
    async fn begin(&self, _write: bool) -> Result<CountedTx<'_>, StoreError> {
        Ok(CountedTx {
            records: self,
            ops: Vec::new(),
        })
    }
}

impl RecordsTx for CountedTx<'_> {
    async fn get_many(&mut self, ids: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.records
            .reads
            .set(self.records.reads.get() + ids.len() as u64);
        let data = self.records.data.borrow();
        Ok(ids.iter().map(|id| data.get(id).cloned()).collect())
    }
    async fn get_range(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let data = self.records.data.borrow();
        Ok(data.range(start..end).map(|(_, v)| v.clone()).collect())
    }
    fn put(&mut self, id: u64, value: Vec<u8>) {
        self.records.puts.set(self.records.puts.get() + 1);
        self.records
            .bytes
            .set(self.records.bytes.get() + value.len() as u64);
        self.ops.push((id, id + 1, Some(value)));
    }
    fn delete_range(&mut self, start: u64, end: u64) {
        self.ops.push((start, end, None));
    }
    async fn commit(self) -> Result<(), StoreError> {
        let mut data = self.records.data.borrow_mut();
        for (start, end, value) in self.ops {
            match value {
                Some(value) => {
                    data.insert(start, value);
                }
                None => {
                    let doomed: Vec<u64> = data.range(start..end).map(|(id, _)| *id).collect();
                    for id in doomed {
                        data.remove(&id);
                    }
                }
            }
        }
        Ok(())
    }
}

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> String {
        String::from("2026-12-03T10:00:00.000Z")
    }
}

#[derive(Default)]
struct Counter(core::cell::Cell<u64>);
impl IdSource for Counter {
    fn next_id(&self) -> String {
        self.0.set(self.0.get() + 1);
        format!("id{}", self.0.get())
    }
}

fn main() {
    if std::env::var("HEARTH_STORE").as_deref() == Ok("paged") {
        // `HEARTH_PAGED=recent_limit,recent_mb,run_growth` tries other settings.
        let mut config = PagedConfig::default();
        if let Ok(settings) = std::env::var("HEARTH_PAGED") {
            let parts: Vec<usize> = settings
                .split(',')
                .filter_map(|part| part.parse().ok())
                .collect();
            if let [limit, mb, growth] = parts[..] {
                config.recent_limit = limit;
                config.recent_bytes = mb << 20;
                config.run_growth = growth as u64;
            }
        }
        let store = PagedStore::with_config(Counted::default(), config);
        run(store, |store: &PagedStore<Counted>| {
            let records = store.records();
            let (recent, pages, cached) = store.footprint();
            format!(
                "records written {} ({:.1} MB), read {}; recent {recent}, pages {pages}, cached {:.1} MB",
                records.puts.get(),
                records.bytes.get() as f64 / 1e6,
                records.reads.get(),
                cached as f64 / 1e6
            )
        });
    } else {
        run(MemoryStore::default(), |_| String::new());
    }
}

fn run<S: Store>(store: S, report: impl Fn(&S) -> String) {
    let mut args = std::env::args().skip(1);
    let file = args.next().unwrap_or_else(|| String::from("data.ndjson"));
    let batch: usize = args.next().and_then(|b| b.parse().ok()).unwrap_or(500);
    let queries: Vec<String> = args.collect();
    let mut headers = vec![("content-type".into(), "application/fhir+json".into())];
    if std::env::var("HEARTH_VALIDATION").as_deref() == Ok("off") {
        headers.push(("x-validation".into(), "off".into()));
    }
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let service = Service::new(
        store,
        Box::new(FixedClock),
        Box::<Counter>::default(),
        "https://hearth.local/fhir",
    );
    let tenth = (lines.len() / 10).max(1);
    let start = Instant::now();
    let mut mark = Instant::now();
    let mut marked = 0;
    for (at, chunk) in lines.chunks(batch).enumerate() {
        let mut body = String::from(r#"{"resourceType":"Bundle","type":"transaction","entry":["#);
        for (n, line) in chunk.iter().enumerate() {
            let kind = line
                .split_once(r#""resourceType":""#)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(kind, _)| kind)
                .unwrap_or_default();
            let id = line
                .split_once(r#""id":""#)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(id, _)| id)
                .unwrap_or_default();
            if n > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"resource":{line},"request":{{"method":"PUT","url":"{kind}/{id}"}}}}"#
            ));
        }
        body.push_str("]}");
        let response = block_on(service.handle(&Request {
            method: "POST".into(),
            path: String::new(),
            query: Vec::new(),
            headers: headers.clone(),
            body: body.into_bytes(),
        }));
        if response.status != 200 {
            eprintln!(
                "batch {at}: {} {}",
                response.status,
                response.body.chars().take(400).collect::<String>()
            );
            return;
        }
        let done = ((at + 1) * batch).min(lines.len());
        if done - marked >= tenth || done == lines.len() {
            let seconds = mark.elapsed().as_secs_f64();
            println!(
                "{done:>8} resources: {:>7.0}/s over the last {} {}",
                (done - marked) as f64 / seconds,
                done - marked,
                report(service.store())
            );
            mark = Instant::now();
            marked = done;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "ingest: {} resources in {seconds:.1} s, {:.0}/s natively",
        lines.len(),
        lines.len() as f64 / seconds
    );
    for query in &queries {
        let (path, params) = query.split_once('?').unwrap_or((query, ""));
        let request = Request {
            method: "GET".into(),
            path: path.into(),
            query: params
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        let mut times = Vec::new();
        let mut total = String::new();
        for _ in 0..7 {
            let start = Instant::now();
            let response = block_on(service.handle(&request));
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            if response.status != 200 {
                eprintln!("{query}: {}", response.status);
            }
            total = response
                .body
                .split_once(r#""total":"#)
                .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
                .unwrap_or("?")
                .to_string();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:>9.2} ms  total {total:>7}  {query}",
            times[times.len() / 2]
        );
    }
}

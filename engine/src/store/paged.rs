//! A [`Store`] over a backend of numbered records that charges per record rather than per
//! byte (IndexedDB: every request costs tens of microseconds, a kilobyte more costs little).
//! Writing every key as a record of its own made an import write some thirty records per
//! resource; here a transaction writes a handful, whatever its size.
//!
//! The layout, a log-structured merge tree:
//! - **logs**: one record per committed transaction, holding all its keys with their small
//!   values (and pointers to its large ones), in key order;
//! - **chunks**: the transaction's large values (resource versions), packed about
//!   [`PagedConfig::chunk_bytes`] to a record; a value is written once and never moved;
//! - **runs**: sorted, prefix-compressed pages of about [`PagedConfig::page_bytes`], newest
//!   run first, a key's entry in a newer run hiding the same key's in older ones;
//! - the **directory**: one record listing every run's pages (first key, entry count, size,
//!   and a Bloom filter of the keys that are looked for one at a time, `filter.rs`) and how
//!   many page entries point into each chunk;
//! - **meta**: the last transaction's number, the number of compactions (the epoch) and the
//!   next free record id.
//!
//! The logs not yet compacted are held in memory as the *recent* table. When it outgrows its
//! limits, the committing transaction writes it as a new run, merged with the newest runs
//! while each is at most [`PagedConfig::run_growth`] times what is being merged and the merge
//! stays under [`PagedConfig::merge_bytes`] (deletions are dropped when the merge reaches the
//! oldest run); it deletes the pages and logs it replaced and the chunks no page points into,
//! and writes the new directory: all in the same backend transaction, so a compaction is whole
//! or not at all. Runs the cap keeps out of merges are merged a slice of keys at a time: while
//! there are three runs or more, each compaction also merges the first keys of the
//! second-oldest run into the oldest, so that no backend transaction grows with the store and
//! the runs stay few.
//!
//! **Invariant:** a record's content never changes once written (every page and chunk gets a
//! fresh id), so decoded pages and chunks are cached by id across transactions.
//!
//! **Invariant:** every transaction first reads `meta` in its own backend transaction and
//! brings the recent table and directory it reads through up to that snapshot (reading the
//! logs it has not seen, or, after another connection compacted, the directory again). Other
//! tabs' writes are so seen, and a transaction never mixes its snapshot with a later state.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::cmp::Ordering;
use core::future::Future;

use super::blocks::{key_cmp, shared_prefix, Key};
use super::{Entry, KeyRange, Store, StoreError, Transaction};

mod filter;
mod recent;
mod writes;
use recent::Recent;
use writes::Writes;

/// A backend of records numbered by `u64` ids below [`RECORD_IDS_END`] (less than 2^53, so
/// that they are exact as JavaScript numbers), each holding bytes.
pub trait Records {
    /// Its transactions.
    type Tx<'s>: RecordsTx
    where
        Self: 's;

    /// Begins a transaction; writing ones run one at a time, in every connection to the data.
    fn begin(&self, write: bool) -> impl Future<Output = Result<Self::Tx<'_>, StoreError>>;
}

/// A transaction over [`Records`]: reads see one snapshot; writes are applied at commit, all
/// or none.
pub trait RecordsTx {
    /// The records `ids`, asked for all at once.
    fn get_many(
        &mut self,
        ids: &[u64],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, StoreError>>;

    /// Every record with an id in `start..end`, in id order.
    fn get_range(
        &mut self,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, StoreError>>;

    /// Sets record `id` at commit.
    fn put(&mut self, id: u64, value: Vec<u8>);

    /// Deletes the records with ids in `start..end` at commit.
    fn delete_range(&mut self, start: u64, end: u64);

    /// Applies the writes, all or none.
    fn commit(self) -> impl Future<Output = Result<(), StoreError>>;
}

const SPACE: u64 = 1 << 48;
/// The meta record.
const META: u64 = 0;
/// The directory record.
const DIR: u64 = 1;
/// Logs, by transaction number.
const LOGS: u64 = SPACE;
/// Pages, by id.
const PAGES: u64 = 2 * SPACE;
/// Chunks of large values, by id.
const CHUNKS: u64 = 3 * SPACE;
/// Every record id is below this.
pub const RECORD_IDS_END: u64 = 4 * SPACE;

/// Pages a compaction reads at once.
const COMPACTION_BATCH: usize = 64;

/// Values longer than this are kept in chunks, not in logs and pages.
const SMALL_VALUE: usize = 64;
/// The format of meta, log and page records.
const FORMAT: u64 = 1;
/// The format of the directory record: 2 lists each page's filter (1, without them, is read
/// too: its pages are read for every key looked for).
const DIR_FORMAT: u64 = 2;

/// Sizes of a [`PagedStore`].
#[derive(Debug, Clone, Copy)]
pub struct PagedConfig {
    /// Encoded bytes at which a page is cut.
    pub page_bytes: usize,
    /// Bytes at which a chunk of large values is cut.
    pub chunk_bytes: usize,
    /// Recent changes kept in memory (and in logs) before they are written as a run.
    pub recent_limit: usize,
    /// Bytes of keys and small values of recent changes before they are written as a run.
    pub recent_bytes: usize,
    /// A new run is merged with the next older run unless that run is more than this many
    /// times larger than what is being merged.
    pub run_growth: u64,
    /// Bytes of pages a merge of the newest runs may write at most, so that no backend
    /// transaction grows with the store (IndexedDB refuses transactions past some hundred
    /// megabytes): a compaction writes at most about twice this (a slice merge of the two
    /// oldest runs takes the second-oldest whole when its keys come after the oldest's).
    pub merge_bytes: u64,
    /// Bytes of decoded pages and chunks kept in memory between transactions.
    pub cache_bytes: usize,
    /// Prefixes of the keys that pages' filters hold: keys read one at a time that are often
    /// not there (a new resource's current version and row number). Each costs the directory
    /// two bytes; keys only scanned (the search index's) would make it large for nothing.
    pub filtered: &'static [&'static [u8]],
}

impl Default for PagedConfig {
    fn default() -> Self {
        PagedConfig {
            page_bytes: 8192,
            chunk_bytes: 32_768,
            // Each compaction rewrites pages of older runs: the larger the table, the fewer
            // times. At 262,144 entries and 32 MB (twice 131,072 and 16 MB) a 100k-resource
            // import writes 91 MB of pages, not 154, and runs 17% faster into IndexedDB, for
            // about 20 MB more Wasm memory while it runs. A store opened again reads the logs
            // not yet compacted back into memory: 42–75 ms and 40 MB after that import.
            recent_limit: 262_144,
            recent_bytes: 32 << 20,
            run_growth: 4,
            merge_bytes: 24 << 20,
            cache_bytes: 16 << 20,
            filtered: &[b"c\0", b"r\0"],
        }
    }
}

/// Where a large value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ptr {
    chunk: u64,
    at: u32,
    len: u32,
}

/// A value as logs, pages and the recent table hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    /// Deleted (logs and the recent table only).
    Tomb,
    Small(Box<[u8]>),
    Large(Ptr),
}

/// Decoded entries of a log or page.
type Entries = Vec<(Box<[u8]>, Val)>;

/// A decoded page.
struct Page {
    entries: Entries,
    bytes: usize,
}

/// A page as the directory lists it.
#[derive(Clone)]
struct PageRef {
    /// The page's least key.
    first: Box<[u8]>,
    id: u64,
    count: u64,
    /// The page record's size.
    bytes: u64,
    /// A filter of its keys with a [`PagedConfig::filtered`] prefix, if it has any.
    filter: Option<Rc<[u8]>>,
}

/// A sorted run of pages: sorted by first key, ranges not overlapping.
#[derive(Clone, Default)]
struct Run {
    pages: Vec<PageRef>,
    /// Entries in its pages, deletions included.
    entries: u64,
    /// Bytes of its page records.
    bytes: u64,
}

/// The runs of pages, and how many page entries point into each chunk.
#[derive(Clone, Default)]
struct Dir {
    /// Logs up to this transaction are in the runs.
    compacted_seq: u64,
    /// Newest first: an entry of a run hides the same key's entries in older runs. Only the
    /// oldest holds no deletions.
    runs: Vec<Run>,
    chunks: BTreeMap<u64, u64>,
    /// The key prefixes every page filter of the directory holds: a lookup trusts a filter
    /// only for keys with one of them, whatever the reader's own configuration.
    filtered: Vec<Box<[u8]>>,
}

impl Dir {
    fn pages(&self) -> usize {
        self.runs.iter().map(|run| run.pages.len()).sum()
    }
}

/// What a connection knows of the data, as of transaction `seq`.
#[derive(Clone)]
struct State {
    /// False until read from the backend.
    loaded: bool,
    epoch: u64,
    seq: u64,
    next_id: u64,
    dir: Rc<Dir>,
    recent: Recent,
    /// Bytes of keys and small values written to `recent` (replaced ones included).
    recent_bytes: usize,
    /// Chunks written since the last compaction.
    new_chunks: Rc<BTreeSet<u64>>,
}

impl State {
    fn unloaded() -> State {
        State {
            loaded: false,
            epoch: 0,
            seq: 0,
            next_id: 0,
            dir: Rc::default(),
            recent: Recent::default(),
            recent_bytes: 0,
            new_chunks: Rc::default(),
        }
    }

    fn order(&self) -> (bool, u64, u64) {
        (self.loaded, self.seq, self.epoch)
    }
}

/// Decoded pages and chunks, by id, the least recently used dropped first.
#[derive(Default)]
struct Cache {
    pages: BTreeMap<u64, (Rc<Page>, u64)>,
    chunks: BTreeMap<u64, (Rc<[u8]>, u64)>,
    bytes: usize,
    clock: u64,
}

impl Cache {
    fn page(&mut self, id: u64) -> Option<Rc<Page>> {
        self.clock += 1;
        let clock = self.clock;
        self.pages.get_mut(&id).map(|(page, used)| {
            *used = clock;
            Rc::clone(page)
        })
    }

    fn chunk(&mut self, id: u64) -> Option<Rc<[u8]>> {
        self.clock += 1;
        let clock = self.clock;
        self.chunks.get_mut(&id).map(|(chunk, used)| {
            *used = clock;
            Rc::clone(chunk)
        })
    }

    fn add_page(&mut self, id: u64, page: Rc<Page>, limit: usize) {
        self.clock += 1;
        self.bytes += page.bytes;
        if let Some((old, _)) = self.pages.insert(id, (page, self.clock)) {
            self.bytes -= old.bytes;
        }
        self.trim(limit);
    }

    fn add_chunk(&mut self, id: u64, chunk: Rc<[u8]>, limit: usize) {
        self.clock += 1;
        self.bytes += chunk.len();
        if let Some((old, _)) = self.chunks.insert(id, (chunk, self.clock)) {
            self.bytes -= old.len();
        }
        self.trim(limit);
    }

    /// Past `limit`, drops the least recently used down to three quarters of it.
    fn trim(&mut self, limit: usize) {
        if self.bytes <= limit {
            return;
        }
        let mut uses: Vec<(u64, bool, u64)> = self
            .pages
            .iter()
            .map(|(id, (_, used))| (*used, true, *id))
            .chain(
                self.chunks
                    .iter()
                    .map(|(id, (_, used))| (*used, false, *id)),
            )
            .collect();
        uses.sort_unstable();
        for (_, page, id) in uses {
            if self.bytes <= limit / 4 * 3 {
                break;
            }
            if page {
                if let Some((old, _)) = self.pages.remove(&id) {
                    self.bytes -= old.bytes;
                }
            } else if let Some((old, _)) = self.chunks.remove(&id) {
                self.bytes -= old.len();
            }
        }
    }
}

fn damaged(what: &str) -> StoreError {
    StoreError::new(format!(
        "the store's data is damaged ({what}); it can not be read"
    ))
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads records written by [`push_varint`] and the encoders below; a record cut short or
/// otherwise malformed is reported, never read past.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, at: 0 }
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let byte = *self
                .data
                .get(self.at)
                .ok_or_else(|| damaged("a record ends early"))?;
            self.at += 1;
            if shift > 63 {
                return Err(damaged("a number is too long"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        usize::try_from(self.varint()?).map_err(|_| damaged("a length is too large"))
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .at
            .checked_add(len)
            .ok_or_else(|| damaged("a length is too large"))?;
        let bytes = self
            .data
            .get(self.at..end)
            .ok_or_else(|| damaged("a record ends early"))?;
        self.at = end;
        Ok(bytes)
    }
}

/// Appends an entry of a log or page: the key as the length it shares with `previous` and
/// the rest, then the value.
fn encode_entry(out: &mut Vec<u8>, previous: &[u8], key: &[u8], value: &Val) {
    let shared = shared_prefix(previous, key);
    push_varint(out, shared as u64);
    push_varint(out, (key.len() - shared) as u64);
    out.extend_from_slice(&key[shared..]);
    match value {
        Val::Tomb => out.push(0),
        Val::Small(bytes) => {
            out.push(1);
            push_varint(out, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
        Val::Large(ptr) => {
            out.push(2);
            push_varint(out, ptr.chunk);
            push_varint(out, u64::from(ptr.at));
            push_varint(out, u64::from(ptr.len));
        }
    }
}

/// The entries written by [`encode_entry`] from `reader` to its end, in order.
fn decode_entries(reader: &mut Reader<'_>) -> Result<Entries, StoreError> {
    let mut entries: Entries = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    while !reader.done() {
        let shared = reader.len()?;
        let rest = reader.len()?;
        if shared > key.len() {
            return Err(damaged("a key shares more than the key before it has"));
        }
        key.truncate(shared);
        key.extend_from_slice(reader.bytes(rest)?);
        let value = match reader.bytes(1)? {
            [0] => Val::Tomb,
            [1] => {
                let len = reader.len()?;
                Val::Small(reader.bytes(len)?.into())
            }
            [2] => {
                let chunk = reader.varint()?;
                if chunk >= SPACE {
                    return Err(damaged("a chunk id is out of range"));
                }
                let at = u32::try_from(reader.varint()?).map_err(|_| damaged("an offset"))?;
                let len = u32::try_from(reader.varint()?).map_err(|_| damaged("a length"))?;
                Val::Large(Ptr { chunk, at, len })
            }
            _ => return Err(damaged("an unknown kind of value")),
        };
        if let Some((last, _)) = entries.last() {
            if key_cmp(last, &key) != Ordering::Less {
                return Err(damaged("keys out of order"));
            }
        }
        entries.push((key.as_slice().into(), value));
    }
    Ok(entries)
}

fn encode_meta(epoch: u64, seq: u64, next_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for value in [FORMAT, epoch, seq, next_id] {
        push_varint(&mut out, value);
    }
    out
}

fn decode_meta(bytes: &[u8]) -> Result<(u64, u64, u64), StoreError> {
    let mut reader = Reader::new(bytes);
    if reader.varint()? != FORMAT {
        return Err(damaged("the store was written in a newer format"));
    }
    let (epoch, seq, next_id) = (reader.varint()?, reader.varint()?, reader.varint()?);
    if seq >= SPACE || next_id >= SPACE {
        return Err(damaged("the meta record is out of range"));
    }
    Ok((epoch, seq, next_id))
}

fn encode_dir(dir: &Dir) -> Vec<u8> {
    let mut out = Vec::new();
    push_varint(&mut out, DIR_FORMAT);
    push_varint(&mut out, dir.compacted_seq);
    push_varint(&mut out, dir.filtered.len() as u64);
    for prefix in &dir.filtered {
        push_varint(&mut out, prefix.len() as u64);
        out.extend_from_slice(prefix);
    }
    push_varint(&mut out, dir.runs.len() as u64);
    for run in &dir.runs {
        push_varint(&mut out, run.pages.len() as u64);
        for page in &run.pages {
            push_varint(&mut out, page.first.len() as u64);
            out.extend_from_slice(&page.first);
            push_varint(&mut out, page.id);
            push_varint(&mut out, page.count);
            push_varint(&mut out, page.bytes);
            let filter = page.filter.as_deref().unwrap_or_default();
            push_varint(&mut out, filter.len() as u64);
            out.extend_from_slice(filter);
        }
    }
    push_varint(&mut out, dir.chunks.len() as u64);
    for (chunk, live) in &dir.chunks {
        push_varint(&mut out, *chunk);
        push_varint(&mut out, *live);
    }
    out
}

fn decode_dir(bytes: &[u8]) -> Result<Dir, StoreError> {
    let mut reader = Reader::new(bytes);
    let format = reader.varint()?;
    if format != 1 && format != DIR_FORMAT {
        return Err(damaged("the store was written in a newer format"));
    }
    let compacted_seq = reader.varint()?;
    let mut filtered = Vec::new();
    if format == DIR_FORMAT {
        for _ in 0..reader.len()? {
            let len = reader.len()?;
            filtered.push(Box::from(reader.bytes(len)?));
        }
    }
    let run_count = reader.len()?;
    let mut runs = Vec::with_capacity(run_count.min(64));
    for _ in 0..run_count {
        let count = reader.len()?;
        let mut pages = Vec::with_capacity(count.min(bytes.len()));
        let mut total = 0u64;
        let mut total_bytes = 0u64;
        for _ in 0..count {
            let len = reader.len()?;
            let first: Box<[u8]> = reader.bytes(len)?.into();
            let id = reader.varint()?;
            let entries = reader.varint()?;
            let bytes = reader.varint()?;
            let filter = if format == DIR_FORMAT {
                let len = reader.len()?;
                Some(reader.bytes(len)?)
                    .filter(|filter| !filter.is_empty())
                    .map(Rc::from)
            } else {
                None
            };
            if id >= SPACE {
                return Err(damaged("a page id is out of range"));
            }
            total = total.saturating_add(entries);
            total_bytes = total_bytes.saturating_add(bytes);
            pages.push(PageRef {
                first,
                id,
                count: entries,
                bytes,
                filter,
            });
        }
        runs.push(Run {
            pages,
            entries: total,
            bytes: total_bytes,
        });
    }
    let count = reader.len()?;
    let mut chunks = BTreeMap::new();
    for _ in 0..count {
        let (chunk, live) = (reader.varint()?, reader.varint()?);
        if chunk >= SPACE || live >= SPACE {
            return Err(damaged("a chunk's entry is out of range"));
        }
        chunks.insert(chunk, live);
    }
    Ok(Dir {
        compacted_seq,
        runs,
        chunks,
        filtered,
    })
}

/// The page of `dir` that holds `key` if any page does: the last whose first key is not
/// after it (the first page for keys before every page).
/// What an entry adds to the recent table, in bytes.
fn entry_bytes(key: &[u8], value: &Val) -> usize {
    key.len()
        + match value {
            Val::Small(bytes) => bytes.len(),
            _ => 8,
        }
}

fn page_for(pages: &[PageRef], key: &[u8]) -> Option<usize> {
    if pages.is_empty() {
        return None;
    }
    let after = pages.partition_point(|page| key_cmp(&page.first, key) != Ordering::Greater);
    Some(after.saturating_sub(1))
}

/// The next item of `iter`, from its end when `reverse`.
fn step<'a, T>(iter: &mut core::slice::Iter<'a, T>, reverse: bool) -> Option<&'a T> {
    if reverse {
        iter.next_back()
    } else {
        iter.next()
    }
}

/// A store over [`Records`]: see the module's description.
pub struct PagedStore<R> {
    records: R,
    state: RefCell<Rc<State>>,
    cache: RefCell<Cache>,
    config: PagedConfig,
}

impl<R: Records> PagedStore<R> {
    /// The store kept in `records`.
    pub fn new(records: R) -> Self {
        PagedStore::with_config(records, PagedConfig::default())
    }

    /// The store kept in `records`, with sizes of its own.
    pub fn with_config(records: R, config: PagedConfig) -> Self {
        PagedStore {
            records,
            state: RefCell::new(Rc::new(State::unloaded())),
            cache: RefCell::default(),
            config,
        }
    }

    /// The backend.
    pub fn records(&self) -> &R {
        &self.records
    }

    /// Recent changes held in memory, pages, and bytes of cached pages and chunks.
    pub fn footprint(&self) -> (usize, usize, usize) {
        let state = self.state.borrow();
        (
            state.recent.len(),
            state.dir.pages(),
            self.cache.borrow().bytes,
        )
    }

    /// Runs of pages, for tests.
    #[cfg(test)]
    fn runs(&self) -> usize {
        self.state.borrow().dir.runs.len()
    }

    fn install(&self, state: &Rc<State>) {
        let mut shared = self.state.borrow_mut();
        if state.order() > shared.order() {
            *shared = Rc::clone(state);
        }
    }
}

/// `captured` brought up to the backend's snapshot `(epoch, seq)`.
async fn catch_up<T: RecordsTx>(
    tx: &mut T,
    captured: &State,
    meta: Option<(u64, u64, u64)>,
) -> Result<State, StoreError> {
    let Some((epoch, seq, next_id)) = meta else {
        // Nothing was ever committed.
        let mut state = State::unloaded();
        state.loaded = true;
        return Ok(state);
    };
    let mut state = if captured.loaded && captured.epoch == epoch && captured.seq <= seq {
        captured.clone()
    } else {
        let dir = tx
            .get_many(&[DIR])
            .await?
            .pop()
            .flatten()
            .map(|bytes| decode_dir(&bytes))
            .transpose()?
            .unwrap_or_default();
        State {
            loaded: true,
            epoch,
            seq: dir.compacted_seq,
            next_id,
            dir: Rc::new(dir),
            recent: Recent::default(),
            recent_bytes: 0,
            new_chunks: Rc::default(),
        }
    };
    if state.seq > seq {
        return Err(damaged("the directory is newer than the store"));
    }
    if state.seq < seq {
        let logs = tx.get_range(LOGS + state.seq + 1, LOGS + seq + 1).await?;
        if logs.len() as u64 != seq - state.seq {
            return Err(damaged("a transaction's log is missing"));
        }
        let new_chunks = Rc::make_mut(&mut state.new_chunks);
        for (expected, log) in (state.seq + 1..).zip(&logs) {
            let mut reader = Reader::new(log);
            if reader.varint()? != FORMAT || reader.varint()? != expected {
                return Err(damaged("a transaction's log is out of place"));
            }
            let entries = decode_entries(&mut reader)?;
            for (key, value) in &entries {
                if let Val::Large(ptr) = value {
                    new_chunks.insert(ptr.chunk);
                }
                state.recent_bytes += entry_bytes(key, value);
            }
            state.recent.push(entries);
        }
    }
    state.seq = seq;
    state.next_id = next_id;
    Ok(state)
}

/// Pages `ids` of the cache or, all at once, of the backend.
async fn load_pages<T: RecordsTx>(
    cache: &RefCell<Cache>,
    limit: usize,
    tx: &mut T,
    ids: &[u64],
) -> Result<Vec<Rc<Page>>, StoreError> {
    read_pages(cache, Some(limit), tx, ids).await
}

/// Pages `ids` of the cache or, all at once, of the backend; kept in the cache when `keep`
/// gives its limit.
async fn read_pages<T: RecordsTx>(
    cache: &RefCell<Cache>,
    keep: Option<usize>,
    tx: &mut T,
    ids: &[u64],
) -> Result<Vec<Rc<Page>>, StoreError> {
    let mut found: Vec<Option<Rc<Page>>> = {
        let mut cache = cache.borrow_mut();
        ids.iter().map(|id| cache.page(*id)).collect()
    };
    let missing: Vec<u64> = ids
        .iter()
        .zip(&found)
        .filter(|(_, page)| page.is_none())
        .map(|(id, _)| PAGES + id)
        .collect();
    if !missing.is_empty() {
        let mut read = read_records(tx, &missing).await?.into_iter();
        let mut cache = cache.borrow_mut();
        for (id, slot) in ids.iter().zip(found.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            let bytes = read
                .next()
                .flatten()
                .ok_or_else(|| damaged("a page is missing"))?;
            let entries = decode_entries(&mut Reader::new(&bytes))?;
            let page = Rc::new(Page {
                bytes: bytes.len() + entries.len() * 48,
                entries,
            });
            if let Some(limit) = keep {
                cache.add_page(*id, Rc::clone(&page), limit);
            }
            *slot = Some(page);
        }
    }
    Ok(found.into_iter().flatten().collect())
}

/// Consecutive ids from which they are read as a range (each range is a request awaited on
/// its own; shorter spans go with the records asked for at once).
const RANGE_READ: usize = 8;

/// The records `ids`, in their order: long spans of consecutive ids (the pages of a run read
/// by a compaction) a range at a time, the rest asked for all at once. One request for a range
/// costs the backend about what one for a record does.
async fn read_records<T: RecordsTx>(
    tx: &mut T,
    ids: &[u64],
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    // Spans of consecutive ids, as (first index in `ids`, length).
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (at, id) in ids.iter().enumerate() {
        match spans.last_mut() {
            Some((start, len)) if ids[*start] + *len as u64 == *id => *len += 1,
            _ => spans.push((at, 1)),
        }
    }
    let singles: Vec<u64> = spans
        .iter()
        .filter(|(_, len)| *len < RANGE_READ)
        .flat_map(|&(start, len)| ids[start..start + len].iter().copied())
        .collect();
    let mut out: Vec<Option<Vec<u8>>> = alloc::vec![None; ids.len()];
    let mut single_values = if singles.is_empty() {
        Vec::new()
    } else {
        tx.get_many(&singles).await?
    }
    .into_iter();
    for (start, len) in spans {
        if len < RANGE_READ {
            for slot in &mut out[start..start + len] {
                *slot = single_values.next().flatten();
            }
            continue;
        }
        let first = ids[start];
        let values = tx.get_range(first, first + len as u64).await?;
        if values.len() != len {
            return Err(damaged("a page is missing"));
        }
        for (slot, value) in out[start..start + len].iter_mut().zip(values) {
            *slot = Some(value);
        }
    }
    Ok(out)
}

/// Chunks `ids` of the cache or, all at once, of the backend.
async fn load_chunks<T: RecordsTx>(
    cache: &RefCell<Cache>,
    limit: usize,
    tx: &mut T,
    ids: &[u64],
) -> Result<BTreeMap<u64, Rc<[u8]>>, StoreError> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    {
        let mut cache = cache.borrow_mut();
        for id in ids {
            match cache.chunk(*id) {
                Some(chunk) => {
                    found.insert(*id, chunk);
                }
                None if !missing.contains(id) => missing.push(*id),
                None => {}
            }
        }
    }
    if !missing.is_empty() {
        let asked: Vec<u64> = missing.iter().map(|id| CHUNKS + id).collect();
        let read = tx.get_many(&asked).await?;
        let mut cache = cache.borrow_mut();
        for (id, bytes) in missing.iter().zip(read) {
            let chunk: Rc<[u8]> = bytes.ok_or_else(|| damaged("a chunk is missing"))?.into();
            cache.add_chunk(*id, Rc::clone(&chunk), limit);
            found.insert(*id, chunk);
        }
    }
    Ok(found)
}

fn slice_of(chunk: &[u8], ptr: &Ptr) -> Result<Vec<u8>, StoreError> {
    let start = ptr.at as usize;
    let end = start.saturating_add(ptr.len as usize);
    chunk
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| damaged("a value lies outside its chunk"))
}

/// A transaction of a [`PagedStore`].
pub struct PagedTx<'s, R: Records + 's> {
    store: &'s PagedStore<R>,
    tx: R::Tx<'s>,
    state: Rc<State>,
    writes: Writes,
    /// What [`Transaction::prefetch`] found in the snapshot (`None`: nothing), so that the
    /// reads it announced do not look again.
    prefetched: BTreeMap<Key, Option<Val>>,
    write: bool,
}

impl<R: Records> Store for PagedStore<R> {
    type Tx<'s>
        = PagedTx<'s, R>
    where
        Self: 's;

    async fn begin(&self, write: bool) -> Result<PagedTx<'_, R>, StoreError> {
        let captured = Rc::clone(&self.state.borrow());
        let mut tx = self.records.begin(write).await?;
        let meta = tx
            .get_many(&[META])
            .await?
            .pop()
            .flatten()
            .map(|bytes| decode_meta(&bytes))
            .transpose()?;
        let current = match meta {
            Some((epoch, seq, _)) => {
                captured.loaded && captured.epoch == epoch && captured.seq == seq
            }
            None => captured.loaded && captured.seq == 0 && captured.epoch == 0,
        };
        let state = if current {
            captured
        } else {
            let state = Rc::new(catch_up(&mut tx, &captured, meta).await?);
            self.install(&state);
            state
        };
        Ok(PagedTx {
            store: self,
            tx,
            state,
            writes: Writes::new(),
            prefetched: BTreeMap::new(),
            write,
        })
    }
}

/// A value found by a scan, its bytes still to be read when large.
enum Found {
    Bytes(Vec<u8>),
    Large(Ptr),
}

/// Page entries of a run within a range, in scan order, pages read a few at a time.
struct PageCursor {
    /// The index of the next page to read, if any is left.
    next: Option<usize>,
    batch: usize,
    max_batch: usize,
    /// Whether pages read are kept in the cache.
    keep: bool,
    loaded: VecDeque<(Rc<Page>, usize, usize)>,
    reverse: bool,
}

impl PageCursor {
    fn new(pages: &[PageRef], range: &KeyRange, reverse: bool) -> PageCursor {
        let next = if reverse {
            let before_end = match &range.end {
                Some(end) => {
                    pages.partition_point(|page| key_cmp(&page.first, end) == Ordering::Less)
                }
                None => pages.len(),
            };
            before_end.checked_sub(1)
        } else {
            page_for(pages, &range.start)
        };
        PageCursor {
            next,
            batch: 1,
            max_batch: 32,
            keep: true,
            loaded: VecDeque::new(),
            reverse,
        }
    }

    /// A cursor over every entry of `pages`, reading [`COMPACTION_BATCH`] pages at a time and
    /// keeping none.
    fn whole(pages: &[PageRef]) -> PageCursor {
        PageCursor {
            next: if pages.is_empty() { None } else { Some(0) },
            batch: COMPACTION_BATCH,
            max_batch: COMPACTION_BATCH,
            keep: false,
            loaded: VecDeque::new(),
            reverse: false,
        }
    }

    /// Whether page `index` may hold keys of `range`.
    fn within(pages: &[PageRef], index: usize, range: &KeyRange) -> bool {
        let Some(page) = pages.get(index) else {
            return false;
        };
        let starts_before_end = range
            .end
            .as_deref()
            .is_none_or(|end| key_cmp(&page.first, end) == Ordering::Less);
        let ends_after_start = pages
            .get(index + 1)
            .is_none_or(|next| key_cmp(&next.first, &range.start) == Ordering::Greater);
        starts_before_end && ends_after_start
    }

    /// The current entry, reading further pages when those read are used up.
    async fn peek<T: RecordsTx>(
        &mut self,
        cache: &RefCell<Cache>,
        limit: usize,
        tx: &mut T,
        pages: &[PageRef],
        range: &KeyRange,
    ) -> Result<Option<(Rc<Page>, usize)>, StoreError> {
        loop {
            while let Some((page, at, end)) = self.loaded.front() {
                if at < end {
                    let index = if self.reverse { end - 1 } else { *at };
                    return Ok(Some((Rc::clone(page), index)));
                }
                self.loaded.pop_front();
            }
            let mut indexes = Vec::new();
            while indexes.len() < self.batch {
                let Some(index) = self.next else { break };
                if !PageCursor::within(pages, index, range) {
                    self.next = None;
                    break;
                }
                indexes.push(index);
                self.next = if self.reverse {
                    index.checked_sub(1)
                } else {
                    Some(index + 1)
                };
            }
            if indexes.is_empty() {
                return Ok(None);
            }
            self.batch = (self.batch * 2).min(self.max_batch);
            let ids: Vec<u64> = indexes
                .iter()
                .filter_map(|index| pages.get(*index).map(|page| page.id))
                .collect();
            let keep = self.keep.then_some(limit);
            for page in read_pages(cache, keep, tx, &ids).await? {
                let lo = page
                    .entries
                    .partition_point(|(key, _)| key_cmp(key, &range.start) == Ordering::Less);
                let hi = match &range.end {
                    Some(end) => page
                        .entries
                        .partition_point(|(key, _)| key_cmp(key, end) == Ordering::Less),
                    None => page.entries.len(),
                };
                if lo < hi {
                    self.loaded.push_back((page, lo, hi));
                }
            }
        }
    }

    fn advance(&mut self) {
        if let Some((_, at, end)) = self.loaded.front_mut() {
            if self.reverse {
                *end -= 1;
            } else {
                *at += 1;
            }
        }
    }
}

fn found_of(value: &Val) -> Option<Found> {
    match value {
        Val::Tomb => None,
        Val::Small(bytes) => Some(Found::Bytes(bytes.to_vec())),
        Val::Large(ptr) => Some(Found::Large(*ptr)),
    }
}

impl<'s, R: Records> PagedTx<'s, R> {
    /// The backend's transaction, for work of the backend's own within it (moving data of an
    /// older layout); it commits with this one.
    pub fn backend(&mut self) -> &mut R::Tx<'s> {
        &mut self.tx
    }

    fn cache_limit(&self) -> usize {
        self.store.config.cache_bytes
    }

    /// The values at `keys` below this transaction's writes, the pages of every run asked
    /// for at once.
    async fn committed_many(&mut self, keys: &[&[u8]]) -> Result<Vec<Option<Val>>, StoreError> {
        let state = Rc::clone(&self.state);
        let mut found: Vec<Option<Val>> = keys
            .iter()
            .map(|key| state.recent.get(key).cloned())
            .collect();
        // For each key not among the recent changes, the page of each run that may hold it
        // (newest run first), looked up once; a page whose filter does not hold the key is
        // left unread.
        let filtered = &state.dir.filtered;
        let mut candidates: Vec<(usize, u64)> = Vec::new();
        for (at, (key, value)) in keys.iter().zip(&found).enumerate() {
            if value.is_none() {
                let hash = is_filtered(filtered, key).then(|| filter::key_hash(key));
                for run in &state.dir.runs {
                    let Some(page) =
                        page_for(&run.pages, key).and_then(|index| run.pages.get(index))
                    else {
                        continue;
                    };
                    if let (Some(hash), Some(filter)) = (hash, &page.filter) {
                        if !filter::may_hold(filter, hash) {
                            continue;
                        }
                    }
                    candidates.push((at, page.id));
                }
            }
        }
        if candidates.is_empty() {
            return Ok(found);
        }
        let mut ids: Vec<u64> = candidates.iter().map(|&(_, id)| id).collect();
        ids.sort_unstable();
        ids.dedup();
        let limit = self.cache_limit();
        let pages = load_pages(&self.store.cache, limit, &mut self.tx, &ids).await?;
        for (at, id) in candidates {
            let (Some(key), Some(value)) = (keys.get(at), found.get_mut(at)) else {
                continue;
            };
            if value.is_some() {
                // Found in a newer run.
                continue;
            }
            let Some(page) = ids
                .binary_search(&id)
                .ok()
                .and_then(|index| pages.get(index))
            else {
                continue;
            };
            if let Ok(index) = page
                .entries
                .binary_search_by(|(probe, _)| key_cmp(probe, key))
            {
                *value = Some(page.entries[index].1.clone());
            }
        }
        Ok(found)
    }

    /// Up to `limit` entries of `range` in scan order, large values not yet read, and how
    /// many there are; with `keep` false they are only counted.
    async fn scan_found(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
        keep: bool,
    ) -> Result<(Vec<(Vec<u8>, Found)>, usize), StoreError> {
        let mut out = Vec::new();
        let mut count = 0usize;
        if range.is_empty() || limit == 0 {
            return Ok((out, count));
        }
        let state = Rc::clone(&self.state);
        let cache_limit = self.cache_limit();
        let PagedTx {
            store, tx, writes, ..
        } = self;
        let mut recent_iter = state.recent.range(range, reverse);
        let mut writes_iter = writes.range(range).iter();
        let mut recent = recent_iter.next();
        let mut written = step(&mut writes_iter, reverse);
        let mut cursors: Vec<PageCursor> = state
            .dir
            .runs
            .iter()
            .map(|run| PageCursor::new(&run.pages, range, reverse))
            .collect();
        let before = |a: &[u8], b: &[u8]| {
            let order = key_cmp(a, b);
            if reverse {
                order.reverse()
            } else {
                order
            }
        };
        let mut heads: Vec<Option<(Rc<Page>, usize)>> = Vec::with_capacity(cursors.len());
        let mut key_buf: Vec<u8> = Vec::new();
        while count < limit {
            heads.clear();
            for (cursor, run) in cursors.iter_mut().zip(&state.dir.runs) {
                heads.push(
                    cursor
                        .peek(&store.cache, cache_limit, tx, &run.pages, range)
                        .await?,
                );
            }
            // The next key of all sources; on a tie, writes hide recent changes, which hide
            // newer runs, which hide older ones.
            let mut next: Option<&[u8]> = None;
            for key in [
                written.map(|(key, _)| &key.0[..]),
                recent.map(|(key, _)| key),
            ]
            .into_iter()
            .flatten()
            .chain(
                heads
                    .iter()
                    .flatten()
                    .map(|(page, at)| &page.entries[*at].0[..]),
            ) {
                if next.is_none_or(|best| before(key, best) == Ordering::Less) {
                    next = Some(key);
                }
            }
            let Some(key) = next else { break };
            key_buf.clear();
            key_buf.extend_from_slice(key);
            let key = key_buf.as_slice();
            // Whether the newest source holding the key has a value, and (kept) which.
            let mut present: Option<bool> = None;
            let mut found: Option<Found> = None;
            if let Some((written_key, written_value)) = written {
                if written_key.0[..] == *key {
                    present = Some(written_value.is_some());
                    if keep {
                        found = written_value
                            .as_ref()
                            .map(|bytes| Found::Bytes(bytes.to_vec()));
                    }
                    written = step(&mut writes_iter, reverse);
                }
            }
            if let Some((recent_key, recent_value)) = recent {
                if recent_key == key {
                    if present.is_none() {
                        present = Some(!matches!(recent_value, Val::Tomb));
                        if keep {
                            found = found_of(recent_value);
                        }
                    }
                    recent = recent_iter.next();
                }
            }
            for (head, cursor) in heads.iter().zip(cursors.iter_mut()) {
                if let Some((page, at)) = head {
                    if page.entries[*at].0[..] == *key {
                        if present.is_none() {
                            let value = &page.entries[*at].1;
                            present = Some(!matches!(value, Val::Tomb));
                            if keep {
                                found = found_of(value);
                            }
                        }
                        cursor.advance();
                    }
                }
            }
            if present == Some(true) {
                count += 1;
                if let Some(found) = found {
                    out.push((key.to_vec(), found));
                }
            }
        }
        Ok((out, count))
    }

    /// Reads the large values of `found`.
    async fn read_values(
        &mut self,
        found: Vec<(Vec<u8>, Found)>,
    ) -> Result<Vec<Entry>, StoreError> {
        let chunks: Vec<u64> = found
            .iter()
            .filter_map(|(_, value)| match value {
                Found::Large(ptr) => Some(ptr.chunk),
                Found::Bytes(_) => None,
            })
            .collect();
        let limit = self.cache_limit();
        let chunks = if chunks.is_empty() {
            BTreeMap::new()
        } else {
            load_chunks(&self.store.cache, limit, &mut self.tx, &chunks).await?
        };
        found
            .into_iter()
            .map(|(key, value)| {
                let bytes = match value {
                    Found::Bytes(bytes) => bytes,
                    Found::Large(ptr) => {
                        let chunk = chunks
                            .get(&ptr.chunk)
                            .ok_or_else(|| damaged("a chunk is missing"))?;
                        slice_of(chunk, &ptr)?
                    }
                };
                Ok((key, bytes))
            })
            .collect()
    }

    /// How many entries of the one run `pages` lie in `range` (deletions included).
    async fn count_run(
        &mut self,
        pages: &[PageRef],
        range: &KeyRange,
    ) -> Result<usize, StoreError> {
        let Some(lo) = page_for(pages, &range.start) else {
            return Ok(0);
        };
        let hi = match &range.end {
            Some(end) => pages.partition_point(|page| key_cmp(&page.first, end) == Ordering::Less),
            None => pages.len(),
        };
        let Some(hi) = hi.checked_sub(1) else {
            return Ok(0);
        };
        if hi < lo {
            return Ok(0);
        }
        let mut count = 0usize;
        for page in pages.iter().take(hi).skip(lo + 1) {
            count = count.saturating_add(usize::try_from(page.count).unwrap_or(usize::MAX));
        }
        let edges: Vec<u64> = if lo == hi {
            alloc::vec![pages[lo].id]
        } else {
            alloc::vec![pages[lo].id, pages[hi].id]
        };
        let limit = self.cache_limit();
        for page in load_pages(&self.store.cache, limit, &mut self.tx, &edges).await? {
            count += page
                .entries
                .iter()
                .filter(|(key, _)| range.contains(key))
                .count();
        }
        Ok(count)
    }
}

impl<R: Records> Transaction for PagedTx<'_, R> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(written) = self.writes.get(key) {
            return Ok(written.as_deref().map(<[u8]>::to_vec));
        }
        let value = match self.prefetched.get(key) {
            Some(value) => value.clone(),
            None => self.committed_many(&[key]).await?.pop().flatten(),
        };
        match value {
            None | Some(Val::Tomb) => Ok(None),
            Some(Val::Small(bytes)) => Ok(Some(bytes.to_vec())),
            Some(Val::Large(ptr)) => {
                let limit = self.cache_limit();
                let chunks =
                    load_chunks(&self.store.cache, limit, &mut self.tx, &[ptr.chunk]).await?;
                let chunk = chunks
                    .get(&ptr.chunk)
                    .ok_or_else(|| damaged("a chunk is missing"))?;
                slice_of(chunk, &ptr).map(Some)
            }
        }
    }

    async fn scan(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        let (found, _) = self.scan_found(range, limit, reverse, true).await?;
        self.read_values(found).await
    }

    async fn count(&mut self, range: &KeyRange) -> Result<usize, StoreError> {
        if range.is_empty() {
            return Ok(0);
        }
        let state = Rc::clone(&self.state);
        let own_writes = !self.writes.range(range).is_empty();
        if own_writes || state.dir.runs.len() > 1 {
            // Entries of several sources may hide one another: counted from the merge.
            return Ok(self.scan_found(range, usize::MAX, false, false).await?.1);
        }
        let Some(run) = state.dir.runs.first() else {
            return Ok(state
                .recent
                .range(range, false)
                .filter(|(_, value)| !matches!(value, Val::Tomb))
                .count());
        };
        // One run, which holds no deletions: its count, then each recent change's difference.
        let mut count = self.count_run(&run.pages, range).await?;
        let recent: Vec<(&[u8], bool)> = state
            .recent
            .range(range, false)
            .map(|(key, value)| (key, !matches!(value, Val::Tomb)))
            .collect();
        if recent.is_empty() {
            return Ok(count);
        }
        let mut ids: Vec<u64> = recent
            .iter()
            .filter_map(|(key, _)| page_for(&run.pages, key).map(|index| run.pages[index].id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let limit = self.cache_limit();
        let pages = load_pages(&self.store.cache, limit, &mut self.tx, &ids).await?;
        let by_id: BTreeMap<u64, Rc<Page>> = ids.into_iter().zip(pages).collect();
        for (key, present) in recent {
            let was = page_for(&run.pages, key)
                .and_then(|index| by_id.get(&run.pages[index].id))
                .is_some_and(|page| {
                    page.entries
                        .binary_search_by(|(probe, _)| key_cmp(probe, key))
                        .is_ok()
                });
            match (present, was) {
                (true, false) => count += 1,
                (false, true) => count = count.saturating_sub(1),
                _ => {}
            }
        }
        Ok(count)
    }

    async fn prefetch(&mut self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let asked: Vec<&[u8]> = keys
            .iter()
            .map(Vec::as_slice)
            .filter(|key| !self.writes.contains_key(key) && !self.prefetched.contains_key(*key))
            .collect();
        if asked.is_empty() {
            return Ok(());
        }
        let values = self.committed_many(&asked).await?;
        let mut chunks: Vec<u64> = values
            .iter()
            .filter_map(|value| match value {
                Some(Val::Large(ptr)) => Some(ptr.chunk),
                _ => None,
            })
            .collect();
        chunks.sort_unstable();
        chunks.dedup();
        if !chunks.is_empty() {
            let limit = self.cache_limit();
            load_chunks(&self.store.cache, limit, &mut self.tx, &chunks).await?;
        }
        for (key, value) in asked.into_iter().zip(values) {
            self.prefetched.insert(Key(key.into()), value);
        }
        Ok(())
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value.into_boxed_slice()));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    async fn commit(self) -> Result<(), StoreError> {
        let PagedTx {
            store,
            mut tx,
            state,
            writes,
            write,
            ..
        } = self;
        if writes.is_empty() {
            return tx.commit().await;
        }
        if !write {
            return Err(StoreError::new(
                "a read-only transaction can not write; nothing was stored",
            ));
        }
        let config = store.config;
        let seq = state.seq + 1;
        let mut next_id = state.next_id.max(1);
        // Large values into chunks, the rest into the log.
        let mut fresh: Vec<(Key, Val)> = Vec::with_capacity(writes.len());
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_id = 0;
        let mut new_chunks: Vec<u64> = Vec::new();
        for (key, value) in writes.into_sorted() {
            let value = match value {
                None => Val::Tomb,
                Some(bytes) if bytes.len() <= SMALL_VALUE => Val::Small(bytes),
                Some(bytes) => {
                    if chunk.is_empty() {
                        chunk_id = next_id;
                        next_id += 1;
                        new_chunks.push(chunk_id);
                    }
                    push_varint(&mut chunk, key.len() as u64);
                    chunk.extend_from_slice(&key);
                    push_varint(&mut chunk, bytes.len() as u64);
                    let at = u32::try_from(chunk.len())
                        .map_err(|_| StoreError::new("a value is too large to store"))?;
                    let len = u32::try_from(bytes.len())
                        .map_err(|_| StoreError::new("a value is too large to store"))?;
                    chunk.extend_from_slice(&bytes);
                    if chunk.len() >= config.chunk_bytes {
                        tx.put(CHUNKS + chunk_id, core::mem::take(&mut chunk));
                    }
                    Val::Large(Ptr {
                        chunk: chunk_id,
                        at,
                        len,
                    })
                }
            };
            fresh.push((key, value));
        }
        if !chunk.is_empty() {
            tx.put(CHUNKS + chunk_id, chunk);
        }
        let fresh_bytes: usize = fresh
            .iter()
            .map(|(key, value)| entry_bytes(key, value))
            .sum();
        let compacted = if state.recent.len() + fresh.len() > config.recent_limit
            || state.recent_bytes + fresh_bytes > config.recent_bytes
        {
            let dir = compact(
                store,
                &mut tx,
                &state,
                &fresh,
                &new_chunks,
                seq,
                &mut next_id,
            )
            .await?;
            tx.put(DIR, encode_dir(&dir));
            tx.delete_range(LOGS, LOGS + seq + 1);
            tx.put(META, encode_meta(state.epoch + 1, seq, next_id));
            Some(dir)
        } else {
            let mut log = Vec::new();
            push_varint(&mut log, FORMAT);
            push_varint(&mut log, seq);
            let mut previous: &[u8] = &[];
            for (key, value) in &fresh {
                encode_entry(&mut log, previous, key, value);
                previous = key;
            }
            tx.put(LOGS + seq, log);
            tx.put(META, encode_meta(state.epoch, seq, next_id));
            None
        };
        tx.commit().await?;
        // Committed: what this connection knows follows.
        let epoch = state.epoch;
        let order = state.order();
        drop(state);
        let mut shared = store.state.borrow_mut();
        match compacted {
            Some(dir) => {
                *shared = Rc::new(State {
                    loaded: true,
                    epoch: epoch + 1,
                    seq,
                    next_id,
                    dir: Rc::new(dir),
                    recent: Recent::default(),
                    recent_bytes: 0,
                    new_chunks: Rc::default(),
                });
            }
            None if shared.order() == order => {
                let next = Rc::make_mut(&mut *shared);
                next.recent.push(fresh);
                Rc::make_mut(&mut next.new_chunks).extend(new_chunks);
                next.recent_bytes += fresh_bytes;
                next.seq = seq;
                next.next_id = next_id;
            }
            // Unexpected: read again from the backend by the next transaction.
            None => *shared = Rc::new(State::unloaded()),
        }
        Ok(())
    }
}

/// Writes the recent changes and `fresh` (this transaction's, which win) as a new run,
/// merged with the newest runs while they are not much larger than what is being merged
/// (so that runs grow geometrically from newest to oldest, each entry is written again a few
/// times in all, and a read looks at a few runs); deletes the pages replaced and the chunks no
/// page points into any more; answers the new directory.
async fn compact<R: Records, T: RecordsTx>(
    store: &PagedStore<R>,
    tx: &mut T,
    state: &State,
    fresh: &[(Key, Val)],
    fresh_chunks: &[u64],
    seq: u64,
    next_id: &mut u64,
) -> Result<Dir, StoreError> {
    let config = store.config;
    // Pages this compaction writes get ids from here on.
    let first_new_id = *next_id;
    // Recent and fresh changes, merged in key order.
    let mut changes: Vec<(&[u8], &Val)> = Vec::with_capacity(state.recent.len() + fresh.len());
    {
        let mut recent = state.recent.iter().peekable();
        let mut fresh = fresh.iter().peekable();
        loop {
            let order = match (recent.peek(), fresh.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((a, _)), Some((b, _))) => key_cmp(a, b),
            };
            match order {
                Ordering::Less => {
                    if let Some((key, value)) = recent.next() {
                        changes.push((key, value));
                    }
                }
                Ordering::Greater => {
                    if let Some((key, value)) = fresh.next() {
                        changes.push((key, value));
                    }
                }
                Ordering::Equal => {
                    recent.next();
                    if let Some((key, value)) = fresh.next() {
                        changes.push((key, value));
                    }
                }
            }
        }
    }
    let dir = &state.dir;
    // How many of the newest runs to merge the changes with.
    let mut merged = 0;
    let mut size = changes.len() as u64;
    let mut bytes: u64 = changes
        .iter()
        .map(|(key, value)| entry_bytes(key, value) as u64)
        .sum();
    while let Some(run) = dir.runs.get(merged) {
        if run.entries > size.saturating_mul(config.run_growth)
            || bytes + run.bytes > config.merge_bytes
        {
            break;
        }
        size += run.entries;
        bytes += run.bytes;
        merged += 1;
    }
    let bottom = merged == dir.runs.len();
    let mut live: BTreeMap<u64, i64> = BTreeMap::new();
    for chunk in state.new_chunks.iter().chain(fresh_chunks) {
        live.entry(*chunk).or_insert(0);
    }
    let all = KeyRange {
        start: Vec::new(),
        end: None,
    };
    let inputs = &dir.runs[..merged];
    let mut cursors: Vec<PageCursor> = inputs
        .iter()
        .map(|run| PageCursor::whole(&run.pages))
        .collect();
    let mut writer = PageWriter::new(&config);
    let mut pages: Vec<PageRef> = Vec::new();
    let mut entries = 0u64;
    let mut at = 0;
    // Each run's current entry; a run is looked at (again) only once it has moved on.
    let mut heads: Vec<Option<(Rc<Page>, usize)>> = alloc::vec![None; cursors.len()];
    let mut moved: Vec<bool> = alloc::vec![true; cursors.len()];
    // Which heads hold the key being written.
    let mut holders: Vec<bool> = alloc::vec![false; cursors.len()];
    loop {
        for ((cursor, run), (head, moved)) in cursors
            .iter_mut()
            .zip(inputs)
            .zip(heads.iter_mut().zip(moved.iter_mut()))
        {
            if *moved {
                *head = cursor
                    .peek(&store.cache, config.cache_bytes, tx, &run.pages, &all)
                    .await?;
                *moved = false;
            }
        }
        // The least key, and whether the changes and each run hold it, in one pass: each
        // head is compared once with the least so far. A head holds the key when it matched
        // it at or after `least_from`, the head that set it.
        let mut next: Option<&[u8]> = changes.get(at).map(|(key, _)| *key);
        let mut least_from: Option<usize> = None;
        for (index, (head, holds)) in heads.iter().zip(holders.iter_mut()).enumerate() {
            *holds = false;
            let Some((page, entry)) = head else { continue };
            let key = &page.entries[*entry].0[..];
            match next.map(|best| key_cmp(key, best)) {
                None | Some(Ordering::Less) => {
                    next = Some(key);
                    least_from = Some(index);
                    *holds = true;
                }
                Some(Ordering::Equal) => *holds = true,
                Some(Ordering::Greater) => {}
            }
        }
        let Some(key) = next else { break };
        let mut value: Option<&Val> = None;
        if least_from.is_none() {
            // Only the changes can have set the least key.
            if let Some((_, change)) = changes.get(at) {
                value = Some(*change);
                at += 1;
            }
        }
        let first_holder = least_from.unwrap_or(0);
        for (index, (((head, cursor), moved), holds)) in heads
            .iter()
            .zip(cursors.iter_mut())
            .zip(moved.iter_mut())
            .zip(&holders)
            .enumerate()
        {
            if !*holds || index < first_holder {
                continue;
            }
            if let Some((page, entry)) = head {
                let entry = &page.entries[*entry].1;
                if let Val::Large(ptr) = entry {
                    *live.entry(ptr.chunk).or_insert(0) -= 1;
                }
                if value.is_none() {
                    value = Some(entry);
                }
                cursor.advance();
                *moved = true;
            }
        }
        let Some(value) = value else { continue };
        if bottom && matches!(value, Val::Tomb) {
            continue;
        }
        if let Val::Large(ptr) = value {
            *live.entry(ptr.chunk).or_insert(0) += 1;
        }
        entries += 1;
        writer.push(key, value, &mut pages, next_id, tx);
    }
    writer.finish(&mut pages, next_id, tx);
    delete_ids(
        tx,
        PAGES,
        inputs
            .iter()
            .flat_map(|run| run.pages.iter().map(|page| page.id)),
    );
    let mut runs: Vec<Run> = Vec::with_capacity(dir.runs.len() + 1 - merged);
    if !pages.is_empty() {
        let bytes = pages.iter().map(|page| page.bytes).sum();
        runs.push(Run {
            pages,
            entries,
            bytes,
        });
    }
    runs.extend(dir.runs[merged..].iter().cloned());
    if runs.len() >= 3 {
        // Runs the cap keeps out of merges would only grow in number: the two oldest are
        // merged a slice of keys at a time instead.
        merge_slice(store, tx, &mut runs, &mut live, next_id).await?;
    }
    let mut chunks = dir.chunks.clone();
    let mut unused = Vec::new();
    for (chunk, change) in live {
        // Counts are below 2^48 (checked when read), so they fit an i64.
        let now = chunks.get(&chunk).copied().unwrap_or(0) as i64 + change;
        if now > 0 {
            chunks.insert(chunk, now.unsigned_abs());
        } else {
            chunks.remove(&chunk);
            unused.push(chunk);
        }
    }
    delete_ids(tx, CHUNKS, unused);
    let filtered: Vec<Box<[u8]>> = config
        .filtered
        .iter()
        .map(|&prefix| prefix.into())
        .collect();
    if dir.filtered != filtered {
        // The pages kept from the directory before have filters over other prefixes (another
        // configuration or version wrote them): dropped, so that every filter of the new
        // directory holds the keys of the prefixes it lists.
        for page in runs.iter_mut().flat_map(|run| run.pages.iter_mut()) {
            if page.id < first_new_id {
                page.filter = None;
            }
        }
    }
    Ok(Dir {
        compacted_seq: seq,
        runs,
        chunks,
        filtered,
    })
}

/// Deletes the records `space + id` for each of `ids`, a range of consecutive ids at a time
/// (the pages of a run mostly have consecutive ids): one backend request per range, where a
/// request per record made deleting a large run cost more than writing it.
fn delete_ids<T: RecordsTx>(tx: &mut T, space: u64, ids: impl IntoIterator<Item = u64>) {
    let mut ids: Vec<u64> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut ids = ids.into_iter().peekable();
    while let Some(start) = ids.next() {
        let mut end = start + 1;
        while ids.next_if_eq(&end).is_some() {
            end += 1;
        }
        tx.delete_range(space + start, space + end);
    }
}

/// Merges the first keys of the second-oldest run (up to about a quarter of
/// [`PagedConfig::merge_bytes`] of pages of both) into the oldest: the oldest run's pages
/// there are written anew with the newer entries (deletions dropped, as no run is older), and
/// the newer run keeps only its keys past the slice, so that it empties in a few compactions.
async fn merge_slice<R: Records, T: RecordsTx>(
    store: &PagedStore<R>,
    tx: &mut T,
    runs: &mut Vec<Run>,
    live: &mut BTreeMap<u64, i64>,
    next_id: &mut u64,
) -> Result<(), StoreError> {
    let config = store.config;
    let n = runs.len();
    let (newer, oldest) = (&runs[n - 2], &runs[n - 1]);
    let Some(lo) = newer.pages.first().map(|page| page.first.clone()) else {
        return Ok(());
    };
    let budget = (config.merge_bytes / 4).max(1);
    // The oldest run's pages from the one holding `lo` to `b_end`, and the newer run's pages
    // before `a_end`, all keys below `hi` (`None`: to the end).
    let b_start = page_for(&oldest.pages, &lo).unwrap_or(0);
    let mut b_end = b_start;
    let mut a_end = 0;
    let mut bytes = 0u64;
    let mut hi: Option<Box<[u8]>> = None;
    while b_end < oldest.pages.len() {
        bytes = bytes.saturating_add(oldest.pages[b_end].bytes);
        b_end += 1;
        hi = oldest.pages.get(b_end).map(|page| page.first.clone());
        while a_end < newer.pages.len()
            && hi
                .as_deref()
                .is_none_or(|hi| key_cmp(&newer.pages[a_end].first, hi) == Ordering::Less)
        {
            bytes = bytes.saturating_add(newer.pages[a_end].bytes);
            a_end += 1;
        }
        if bytes >= budget {
            break;
        }
    }
    if b_end == oldest.pages.len() {
        hi = None;
        a_end = newer.pages.len();
    }
    let all = KeyRange {
        start: Vec::new(),
        end: None,
    };
    let a_pages = &newer.pages[..a_end];
    let b_pages = &oldest.pages[b_start..b_end];
    let mut a = PageCursor::whole(a_pages);
    let mut b = PageCursor::whole(b_pages);
    let mut merged_writer = PageWriter::new(&config);
    let mut rest_writer = PageWriter::new(&config);
    let mut merged_pages: Vec<PageRef> = Vec::new();
    let mut rest_pages: Vec<PageRef> = Vec::new();
    loop {
        let a_head = a
            .peek(&store.cache, config.cache_bytes, tx, a_pages, &all)
            .await?;
        let b_head = b
            .peek(&store.cache, config.cache_bytes, tx, b_pages, &all)
            .await?;
        let order = match (&a_head, &b_head) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((pa, ia)), Some((pb, ib))) => key_cmp(&pa.entries[*ia].0, &pb.entries[*ib].0),
        };
        let (page, index) = match order {
            Ordering::Greater => b_head.as_ref(),
            _ => a_head.as_ref(),
        }
        .ok_or_else(|| damaged("a run ends early"))?;
        // The heads hold their pages: the entry stays readable after the cursors move on.
        let (key, value) = &page.entries[*index];
        for head in [&a_head, &b_head].into_iter().flatten() {
            let (page, index) = head;
            let (entry_key, entry) = &page.entries[*index];
            if entry_key[..] == key[..] {
                if let Val::Large(ptr) = entry {
                    *live.entry(ptr.chunk).or_insert(0) -= 1;
                }
            }
        }
        if order != Ordering::Greater {
            a.advance();
        }
        if order != Ordering::Less {
            b.advance();
        }
        let below_hi = hi
            .as_deref()
            .is_none_or(|hi| key_cmp(key, hi) == Ordering::Less);
        if below_hi && matches!(value, Val::Tomb) {
            continue;
        }
        if let Val::Large(ptr) = value {
            *live.entry(ptr.chunk).or_insert(0) += 1;
        }
        if below_hi {
            merged_writer.push(key, value, &mut merged_pages, next_id, tx);
        } else {
            rest_writer.push(key, value, &mut rest_pages, next_id, tx);
        }
    }
    merged_writer.finish(&mut merged_pages, next_id, tx);
    rest_writer.finish(&mut rest_pages, next_id, tx);
    delete_ids(tx, PAGES, a_pages.iter().chain(b_pages).map(|page| page.id));
    let oldest_pages: Vec<PageRef> = oldest.pages[..b_start]
        .iter()
        .cloned()
        .chain(merged_pages)
        .chain(oldest.pages[b_end..].iter().cloned())
        .collect();
    let newer_pages: Vec<PageRef> = rest_pages
        .into_iter()
        .chain(newer.pages[a_end..].iter().cloned())
        .collect();
    let run_of = |pages: Vec<PageRef>| Run {
        entries: pages.iter().map(|page| page.count).sum(),
        bytes: pages.iter().map(|page| page.bytes).sum(),
        pages,
    };
    runs.truncate(n - 2);
    if !newer_pages.is_empty() {
        runs.push(run_of(newer_pages));
    }
    // The oldest run stays even when the slice left it empty (everything in it deleted): the
    // run before it may hold deletions, which only the oldest may not.
    runs.push(run_of(oldest_pages));
    Ok(())
}

/// Whether pages' filters hold `key`.
fn is_filtered<P: AsRef<[u8]>>(prefixes: &[P], key: &[u8]) -> bool {
    prefixes
        .iter()
        .any(|prefix| key.starts_with(prefix.as_ref()))
}

/// Writes entries as pages of about the configured size.
struct PageWriter {
    page_bytes: usize,
    filtered: &'static [&'static [u8]],
    data: Vec<u8>,
    first: Vec<u8>,
    last: Vec<u8>,
    count: u64,
    /// Hashes of the page's keys its filter holds.
    hashes: Vec<u64>,
}

impl PageWriter {
    fn new(config: &PagedConfig) -> Self {
        PageWriter {
            page_bytes: config.page_bytes,
            filtered: config.filtered,
            data: Vec::new(),
            first: Vec::new(),
            last: Vec::new(),
            count: 0,
            hashes: Vec::new(),
        }
    }

    fn push<T: RecordsTx>(
        &mut self,
        key: &[u8],
        value: &Val,
        pages: &mut Vec<PageRef>,
        next_id: &mut u64,
        tx: &mut T,
    ) {
        if self.count == 0 {
            self.first.clear();
            self.first.extend_from_slice(key);
            self.last.clear();
        }
        encode_entry(&mut self.data, &self.last, key, value);
        if is_filtered(self.filtered, key) {
            self.hashes.push(filter::key_hash(key));
        }
        self.last.clear();
        self.last.extend_from_slice(key);
        self.count += 1;
        if self.data.len() >= self.page_bytes {
            self.finish(pages, next_id, tx);
        }
    }

    fn finish<T: RecordsTx>(&mut self, pages: &mut Vec<PageRef>, next_id: &mut u64, tx: &mut T) {
        if self.count == 0 {
            return;
        }
        let id = *next_id;
        *next_id += 1;
        let bytes = self.data.len() as u64;
        tx.put(PAGES + id, core::mem::take(&mut self.data));
        let filter = (!self.hashes.is_empty()).then(|| Rc::from(filter::build(&self.hashes)));
        self.hashes.clear();
        pages.push(PageRef {
            first: self.first.as_slice().into(),
            id,
            count: self.count,
            bytes,
            filter,
        });
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::block_on;
    use alloc::string::String;
    use alloc::vec;
    use core::cell::Cell;

    /// Records in memory with IndexedDB's semantics: a transaction reads the snapshot of its
    /// beginning; one writer at a time; a commit may be made to fail.
    #[derive(Clone, Default)]
    struct MemRecords {
        data: Rc<RefCell<BTreeMap<u64, Vec<u8>>>>,
        writing: Rc<Cell<bool>>,
        fail_next: Rc<Cell<bool>>,
        puts: Rc<Cell<usize>>,
        /// Delete requests (each of a range of records).
        deletes: Rc<Cell<usize>>,
        /// Read requests (one per record asked for by id, one per range).
        reads: Rc<Cell<usize>>,
        /// Records read.
        records_read: Rc<Cell<usize>>,
    }

    enum Op {
        Put(u64, Vec<u8>),
        Delete(u64, u64),
    }

    struct MemTx {
        records: MemRecords,
        snapshot: BTreeMap<u64, Vec<u8>>,
        ops: Vec<Op>,
        write: bool,
    }

    impl Records for MemRecords {
        type Tx<'s> = MemTx;
        async fn begin(&self, write: bool) -> Result<MemTx, StoreError> {
            if write {
                assert!(!self.writing.get(), "two writers at once");
                self.writing.set(true);
            }
            Ok(MemTx {
                records: self.clone(),
                snapshot: self.data.borrow().clone(),
                ops: Vec::new(),
                write,
            })
        }
    }

    impl RecordsTx for MemTx {
        async fn get_many(&mut self, ids: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
            self.records.reads.set(self.records.reads.get() + ids.len());
            let res: Vec<Option<Vec<u8>>> = ids
                .iter()
                .map(|id| self.snapshot.get(id).cloned())
                .collect();
            let found = res.iter().flatten().count();
            self.records
                .records_read
                .set(self.records.records_read.get() + found);
            Ok(res)
        }
        async fn get_range(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
            self.records.reads.set(self.records.reads.get() + 1);
            let res: Vec<Vec<u8>> = self
                .snapshot
                .range(start..end)
                .map(|(_, v)| v.clone())
                .collect();
            self.records
                .records_read
                .set(self.records.records_read.get() + res.len());
            Ok(res)
        }
        fn put(&mut self, id: u64, value: Vec<u8>) {
            self.ops.push(Op::Put(id, value));
        }
        fn delete_range(&mut self, start: u64, end: u64) {
            self.ops.push(Op::Delete(start, end));
        }
        async fn commit(self) -> Result<(), StoreError> {
            if self.write {
                self.records.writing.set(false);
            }
            if self.records.fail_next.replace(false) {
                return Err(StoreError::full("quota"));
            }
            let mut data = self.records.data.borrow_mut();
            for op in self.ops {
                match op {
                    Op::Put(id, value) => {
                        self.records.puts.set(self.records.puts.get() + 1);
                        data.insert(id, value);
                    }
                    Op::Delete(start, end) => {
                        self.records.deletes.set(self.records.deletes.get() + 1);
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

    fn tiny() -> PagedConfig {
        PagedConfig {
            page_bytes: 160,
            chunk_bytes: 300,
            recent_limit: 40,
            recent_bytes: 1500,
            run_growth: 2,
            merge_bytes: 2500,
            cache_bytes: 4096,
            filtered: &[b"idx/"],
        }
    }

    fn key_of(n: u64) -> Vec<u8> {
        // Shared prefixes as index keys have, and keys that are prefixes of others.
        if n % 5 == 0 {
            format!("idx/{}/{}", n % 7, n / 5).into_bytes()
        } else {
            format!("idx/{}/{}/{n}", n % 7, n / 5).into_bytes()
        }
    }

    fn value_of(n: u64, round: u64) -> Vec<u8> {
        let len = if (n + round) % 3 == 0 {
            90 + (n % 50) as usize
        } else {
            (n % 20) as usize
        };
        (0..len)
            .map(|i| (n as usize + i + round as usize) as u8)
            .collect()
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn model_scan(
        model: &BTreeMap<Vec<u8>, Vec<u8>>,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Vec<Entry> {
        let items = model
            .iter()
            .filter(|(key, _)| range.contains(key))
            .map(|(k, v)| (k.clone(), v.clone()));
        if reverse {
            items.rev().take(limit).collect()
        } else {
            items.take(limit).collect()
        }
    }

    fn range_of(rng: &mut Rng) -> KeyRange {
        let a = key_of(rng.next() % 900);
        let b = key_of(rng.next() % 900);
        match rng.next() % 4 {
            0 => KeyRange::prefix(b"idx/3/"),
            1 => KeyRange {
                start: a,
                end: None,
            },
            2 => KeyRange {
                start: a.clone().min(b.clone()),
                end: Some(a.max(b)),
            },
            _ => KeyRange {
                start: Vec::new(),
                end: None,
            },
        }
    }

    /// Checks every read of `tx` against `model` (which holds the transaction's own writes).
    async fn check_reads<R: Records>(
        tx: &mut PagedTx<'_, R>,
        model: &BTreeMap<Vec<u8>, Vec<u8>>,
        rng: &mut Rng,
        what: &str,
    ) {
        for _ in 0..6 {
            let key = key_of(rng.next() % 900);
            if rng.next() % 3 == 0 {
                tx.prefetch(&[key.clone(), key_of(rng.next() % 900)])
                    .await
                    .unwrap();
            }
            assert_eq!(
                tx.get(&key).await.unwrap().as_ref(),
                model.get(&key),
                "{what}: get"
            );
        }
        for _ in 0..3 {
            let range = range_of(rng);
            let limit = [1, 3, 17, usize::MAX][(rng.next() % 4) as usize];
            let reverse = rng.next() % 2 == 0;
            let found = tx.scan(&range, limit, reverse).await.unwrap();
            assert_eq!(
                found,
                model_scan(model, &range, limit, reverse),
                "{what}: scan {range:?} {limit} {reverse}"
            );
            let count = tx.count(&range).await.unwrap();
            assert_eq!(
                count,
                model_scan(model, &range, usize::MAX, false).len(),
                "{what}: count {range:?}"
            );
        }
    }

    /// Random writes, deletes and reads through two connections to the same records (two
    /// tabs), with commits that fail, compactions, and a connection opened afresh now and
    /// then: every read answers as an ordered map does, no chunk outlives its values, and
    /// with merges capped the runs stay few.
    #[test]
    fn the_paged_store_behaves_as_an_ordered_map() {
        for seed in 1..=12u64 {
            // Odd seeds cap merges (so that runs are merged a slice at a time); even ones do
            // not.
            let capped = seed % 2 == 1;
            let config = PagedConfig {
                merge_bytes: if capped { 7000 } else { u64::MAX },
                ..tiny()
            };
            let records = MemRecords::default();
            let mut tabs = [
                PagedStore::with_config(records.clone(), config),
                PagedStore::with_config(records.clone(), config),
            ];
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            block_on(async {
                for round in 0..160u64 {
                    let tab = (rng.next() % 2) as usize;
                    let store = &tabs[tab];
                    let mut tx = store.begin(true).await.unwrap();
                    let mut planned = model.clone();
                    let what = format!("seed {seed} round {round} tab {tab}");
                    // Reads (prefetches among them) before, between and after writes: what
                    // the transaction writes hides what it read ahead.
                    for phase in 0..3 {
                        check_reads(&mut tx, &planned, &mut rng, &what).await;
                        if phase == 2 {
                            break;
                        }
                        for _ in 0..(rng.next() % 20) {
                            let n = rng.next() % 900;
                            let key = key_of(n);
                            if rng.next() % 4 == 0 {
                                tx.delete(key.clone());
                                planned.remove(&key);
                            } else {
                                let value = value_of(n, round);
                                tx.put(key.clone(), value.clone());
                                planned.insert(key, value);
                            }
                        }
                    }
                    let fail = rng.next() % 11 == 0;
                    records.fail_next.set(fail);
                    let committed = tx.commit().await;
                    assert_eq!(committed.is_err(), fail, "{what}");
                    if !fail {
                        model = planned;
                    }
                    let reader = &tabs[(rng.next() % 2) as usize];
                    let mut tx = reader.begin(false).await.unwrap();
                    check_reads(&mut tx, &model, &mut rng, &what).await;
                    tx.commit().await.unwrap();
                    if rng.next() % 25 == 0 {
                        tabs[tab] = PagedStore::with_config(records.clone(), config);
                    }
                }
                let mut tx = tabs[0].begin(false).await.unwrap();
                let all = tx
                    .scan(
                        &KeyRange {
                            start: Vec::new(),
                            end: None,
                        },
                        usize::MAX,
                        false,
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    all,
                    model_scan(
                        &model,
                        &KeyRange {
                            start: Vec::new(),
                            end: None
                        },
                        usize::MAX,
                        false
                    )
                );
                // Runs the cap keeps out of merges are merged a slice at a time: without that,
                // these schedules end with 7 to 9 runs and more as they go on.
                let runs = tabs[0].runs();
                assert!(runs <= 5, "seed {seed}: {runs} runs");
                // Pages: those of the directory's runs, and no other.
                let listed: usize = tabs[0].state.borrow().dir.pages();
                let on_record = records.data.borrow().range(PAGES..CHUNKS).count();
                assert_eq!(on_record, listed, "seed {seed}: pages on record");
                // Chunks: each one on record holds at least one live value.
                let large = model.values().filter(|v| v.len() > SMALL_VALUE).count();
                let chunks = records.data.borrow().range(CHUNKS..RECORD_IDS_END).count();
                assert!(
                    chunks <= large.max(1) + 40,
                    "seed {seed}: {chunks} chunks for {large} large values"
                );
            });
        }
    }

    /// A reader that began before a writer's commit (one that compacts) reads the data as it
    /// was, whole, to its end.
    #[test]
    fn a_reader_keeps_its_snapshot_across_a_compaction() {
        let records = MemRecords::default();
        let store = PagedStore::with_config(records.clone(), tiny());
        block_on(async {
            let mut tx = store.begin(true).await.unwrap();
            for n in 0..30 {
                tx.put(key_of(n), value_of(n, 0));
            }
            tx.commit().await.unwrap();
            let mut reader = store.begin(false).await.unwrap();
            let mut writer = store.begin(true).await.unwrap();
            for n in 0..60 {
                writer.put(key_of(n), value_of(n, 1));
            }
            writer.commit().await.unwrap();
            assert!(store.footprint().1 > 0, "the commit compacted");
            for n in 0..30 {
                assert_eq!(reader.get(&key_of(n)).await.unwrap(), Some(value_of(n, 0)));
            }
            assert_eq!(reader.get(&key_of(45)).await.unwrap(), None);
            let mut fresh = store.begin(false).await.unwrap();
            assert_eq!(fresh.get(&key_of(45)).await.unwrap(), Some(value_of(45, 1)));
        });
    }

    /// A slice merge in which the deletions of the second-oldest run remove everything of the
    /// oldest leaves an empty oldest run, so that the run before it, which holds deletions of
    /// its own, is not taken for one without them (and counted by its page counts).
    #[test]
    fn deletions_never_count_when_a_slice_merge_empties_the_oldest_run() {
        let records = MemRecords::default();
        let config = PagedConfig {
            recent_limit: 2,
            run_growth: 1,
            merge_bytes: 1,
            ..tiny()
        };
        let store = PagedStore::with_config(records, config);
        block_on(async {
            let mut tx = store.begin(true).await.unwrap();
            for key in [b"a", b"b", b"c"] {
                tx.put(key.to_vec(), b"1".to_vec());
            }
            tx.commit().await.unwrap();
            let mut tx = store.begin(true).await.unwrap();
            for key in [b"a", b"b", b"c"] {
                tx.delete(key.to_vec());
            }
            tx.commit().await.unwrap();
            assert_eq!(store.runs(), 2);
            let mut tx = store.begin(true).await.unwrap();
            tx.put(b"x".to_vec(), b"1".to_vec());
            tx.put(b"z".to_vec(), b"1".to_vec());
            tx.delete(b"y".to_vec());
            tx.commit().await.unwrap();
            let mut tx = store.begin(false).await.unwrap();
            let all = KeyRange {
                start: Vec::new(),
                end: None,
            };
            assert_eq!(tx.count(&all).await.unwrap(), 2);
            assert_eq!(tx.scan(&all, usize::MAX, false).await.unwrap().len(), 2);
        });
    }

    /// Looking for keys no run holds (every new resource's, in an import) reads no page: the
    /// pages' filters answer. Keys outside the filtered prefixes are still looked for in pages,
    /// and keys that are held are found.
    #[test]
    fn keys_no_page_holds_are_looked_for_without_reading_pages() {
        let records = MemRecords::default();
        let config = PagedConfig {
            page_bytes: 256,
            recent_limit: 300,
            recent_bytes: 1 << 20,
            // Never merged with older runs: one run per commit (until slices merge them).
            run_growth: 0,
            cache_bytes: 0,
            filtered: &[b"cur/"],
            ..PagedConfig::default()
        };
        let store = PagedStore::with_config(records.clone(), config);
        block_on(async {
            for round in 0..4u64 {
                let mut tx = store.begin(true).await.unwrap();
                for n in 0..400u64 {
                    let n = n * 4 + round;
                    tx.put(format!("cur/Observation/{n:08}").into_bytes(), vec![1]);
                    tx.put(format!("idx/Observation/{n:08}").into_bytes(), vec![2]);
                }
                tx.commit().await.unwrap();
            }
            assert!(store.runs() >= 2, "{} runs", store.runs());
            assert!(store.state.borrow().recent.len() == 0);
            let absent: Vec<Vec<u8>> = (0..200u64)
                .map(|n| format!("cur/Observation/{:08}x", n * 8).into_bytes())
                .collect();
            let mut tx = store.begin(false).await.unwrap();
            let before = records.records_read.get();
            tx.prefetch(&absent).await.unwrap();
            for key in &absent {
                assert_eq!(tx.get(key).await.unwrap(), None);
            }
            // A false positive now and then (about 0.05% of the pages looked at) reads a page;
            // without filters this read the page of every run that might hold each key.
            let pages = store.state.borrow().dir.pages();
            assert!(pages >= 60, "{pages} pages");
            let read = records.records_read.get() - before;
            assert!(read <= 2, "{read} pages read");
            let before = records.records_read.get();
            let absent_unfiltered: Vec<Vec<u8>> = (0..200u64)
                .map(|n| format!("idx/Observation/{:08}x", n * 8).into_bytes())
                .collect();
            tx.prefetch(&absent_unfiltered).await.unwrap();
            assert!(records.records_read.get() - before > 2);
            for n in [0u64, 1, 2, 3, 801, 1599] {
                let key = format!("cur/Observation/{n:08}").into_bytes();
                assert_eq!(tx.get(&key).await.unwrap(), Some(vec![1]), "{n}");
            }
        });
    }

    /// Filters are trusted for the prefixes the directory lists, not for those of whoever
    /// reads it: connections configured otherwise (another version in another tab) find
    /// every key, and a compaction by one of them drops the filters it did not build.
    #[test]
    fn filters_are_trusted_only_for_the_prefixes_they_were_built_over() {
        let records = MemRecords::default();
        let config = |filtered: &'static [&'static [u8]]| PagedConfig {
            page_bytes: 256,
            recent_limit: 300,
            recent_bytes: 1 << 20,
            run_growth: 0,
            // Slices of a few pages: most pages of the oldest run are kept as they are.
            merge_bytes: 2048,
            cache_bytes: 0,
            filtered,
            ..PagedConfig::default()
        };
        // Ten groups of keys, so that many pages hold keys of two groups.
        let key = |n: u64| format!("k/{}/{n:08}", n % 10).into_bytes();
        let write = |store: &PagedStore<MemRecords>, round: u64| {
            block_on(async {
                let mut tx = store.begin(true).await.unwrap();
                for n in 0..400u64 {
                    tx.put(key(n * 8 + round), vec![1]);
                }
                tx.commit().await.unwrap();
            });
        };
        let check = |store: &PagedStore<MemRecords>, rounds: u64, what: &str| {
            block_on(async {
                let mut tx = store.begin(false).await.unwrap();
                for n in 0..400u64 {
                    for round in 0..rounds {
                        let key = key(n * 8 + round);
                        assert_eq!(tx.get(&key).await.unwrap(), Some(vec![1]), "{what}");
                    }
                }
            });
        };
        // Every filter holds each key of its page with a prefix the directory lists.
        let holds = |store: &PagedStore<MemRecords>| {
            let dir = Rc::clone(&store.state.borrow().dir);
            let mut filters = 0;
            for page in dir.runs.iter().flat_map(|run| run.pages.iter()) {
                let Some(filter) = &page.filter else { continue };
                filters += 1;
                let bytes = records.data.borrow()[&(PAGES + page.id)].clone();
                for (key, _) in decode_entries(&mut Reader::new(&bytes)).unwrap() {
                    if is_filtered(&dir.filtered, &key) {
                        assert!(filter::may_hold(filter, filter::key_hash(&key)));
                    }
                }
            }
            filters
        };
        let even = PagedStore::with_config(records.clone(), config(&[b"k/0", b"k/2", b"k/4"]));
        write(&even, 0);
        write(&even, 1);
        assert!(holds(&even) > 0);
        let all = PagedStore::with_config(records.clone(), config(&[b"k/"]));
        check(&all, 2, "read with more prefixes");
        write(&all, 2);
        check(&all, 3, "after a compaction with more prefixes");
        assert!(holds(&all) > 0);
        let none = PagedStore::with_config(records.clone(), config(&[]));
        check(&none, 3, "read with none");
        write(&none, 3);
        check(&none, 4, "after a compaction with none");
        check(&even, 4, "the first connection again");
        assert_eq!(holds(&none), 0);
    }

    /// A directory written before pages had filters (format 1) is read: its pages are read
    /// for every key looked for.
    #[test]
    fn a_directory_without_filters_is_read() {
        let mut bytes = Vec::new();
        for value in [1u64, 7, 1, 1, 3] {
            push_varint(&mut bytes, value);
        }
        bytes.extend_from_slice(b"abc");
        for value in [42u64, 10, 500, 1, 9, 2] {
            push_varint(&mut bytes, value);
        }
        let dir = decode_dir(&bytes).unwrap();
        assert_eq!(dir.compacted_seq, 7);
        let page = &dir.runs[0].pages[0];
        assert_eq!(
            (&*page.first, page.id, page.count, page.bytes),
            (&b"abc"[..], 42, 10, 500)
        );
        assert!(page.filter.is_none());
        assert_eq!(dir.chunks.get(&9), Some(&2));
        // Written again, in the current format, and read back the same.
        let again = decode_dir(&encode_dir(&dir)).unwrap();
        assert_eq!(again.runs[0].pages[0].id, 42);
        let mut newer = encode_dir(&dir);
        newer[0] = 3;
        assert!(decode_dir(&newer).is_err());
        // Filters and the prefixes they hold are kept; a truncated directory is an error.
        let mut dir = dir;
        dir.filtered = vec![Box::from(&b"c\0"[..]), Box::from(&b"r\0"[..])];
        dir.runs[0].pages[0].filter = Some(Rc::from(filter::build(&[7, 8, 9])));
        let bytes = encode_dir(&dir);
        let again = decode_dir(&bytes).unwrap();
        assert_eq!(again.filtered, dir.filtered);
        assert_eq!(again.runs[0].pages[0].filter, dir.runs[0].pages[0].filter);
        for len in 0..bytes.len() {
            assert!(decode_dir(&bytes[..len]).is_err(), "{len}");
        }
    }

    /// The point of the layout: a transaction of 500 resources, each a large value and twenty
    /// index keys, is a few records, not ten thousand.
    #[test]
    fn a_large_transaction_writes_few_records() {
        let records = MemRecords::default();
        let store = PagedStore::new(records.clone());
        block_on(async {
            let mut tx = store.begin(true).await.unwrap();
            for n in 0..500u64 {
                tx.put(
                    format!("res/Observation/{n:08}").into_bytes(),
                    vec![b'x'; 1200],
                );
                for index in 0..20 {
                    tx.put(
                        format!("idx/Observation/{index}/value{}/{n:08}", n % 13).into_bytes(),
                        Vec::new(),
                    );
                }
            }
            tx.commit().await.unwrap();
            let puts = records.puts.get();
            assert!(puts <= 25, "{puts} records written");
            let mut tx = store.begin(false).await.unwrap();
            assert_eq!(
                tx.count(&KeyRange::prefix(b"idx/Observation/3/"))
                    .await
                    .unwrap(),
                500
            );
            assert_eq!(
                tx.get(b"res/Observation/00000321").await.unwrap(),
                Some(vec![b'x'; 1200])
            );
        });
    }

    /// A compaction reads the pages it merges and deletes those it replaced a range of
    /// consecutive ids at a time, not one request per page.
    #[test]
    fn a_compaction_reads_and_deletes_pages_in_few_requests() {
        let records = MemRecords::default();
        let config = PagedConfig {
            page_bytes: 256,
            recent_limit: 1000,
            recent_bytes: 1 << 20,
            merge_bytes: u64::MAX,
            ..PagedConfig::default()
        };
        let store = PagedStore::with_config(records.clone(), config);
        block_on(async {
            for round in 0..2u64 {
                let mut tx = store.begin(true).await.unwrap();
                for n in 0..1500u64 {
                    tx.put(
                        format!("idx/Observation/{n:08}").into_bytes(),
                        round.to_le_bytes().to_vec(),
                    );
                }
                tx.commit().await.unwrap();
            }
        });
        // The second compaction merged the first's run (and replaced all its pages).
        let pages = store.state.borrow().dir.pages();
        assert!(pages >= 50, "{pages} pages");
        assert_eq!(records.data.borrow().range(PAGES..CHUNKS).count(), pages);
        let deletes = records.deletes.get();
        assert!(deletes <= 4, "{deletes} delete requests");
        // Two transactions' meta and directory, and the first run's pages in batches.
        let reads = records.reads.get();
        assert!(reads <= 8, "{reads} read requests");
    }

    /// Damaged records are reported as errors, never read past.
    #[test]
    fn a_damaged_record_is_an_error() {
        let records = MemRecords::default();
        let store = PagedStore::with_config(records.clone(), tiny());
        block_on(async {
            let mut tx = store.begin(true).await.unwrap();
            for n in 0..100 {
                tx.put(key_of(n), value_of(n, 0));
            }
            tx.commit().await.unwrap();
            let ids: Vec<u64> = records
                .data
                .borrow()
                .range(PAGES..CHUNKS)
                .map(|(id, _)| *id)
                .collect();
            assert!(!ids.is_empty());
            for id in &ids {
                records
                    .data
                    .borrow_mut()
                    .insert(*id, vec![0xff, 0xff, 0x03]);
            }
            let fresh = PagedStore::with_config(records.clone(), tiny());
            let mut tx = fresh.begin(false).await.unwrap();
            let err = tx
                .scan(
                    &KeyRange {
                        start: Vec::new(),
                        end: None,
                    },
                    usize::MAX,
                    false,
                )
                .await
                .unwrap_err();
            assert!(err.message.contains("damaged"), "{}", err.message);
            let _ = String::new();
        });
    }
}

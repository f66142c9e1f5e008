//! Storage: an ordered key-value store with range scans and atomic write batches, the shape of
//! IndexedDB, SQLite `WITHOUT ROWID` tables and Durable Object storage.
//!
//! An engine operation opens one transaction, awaits nothing but the transaction's own reads,
//! buffers its writes, and commits them at once: all or nothing. That is what an IndexedDB
//! transaction allows (it closes when nothing of its own is pending), what a SQLite
//! transaction gives, and what Durable Object storage's `transaction()` gives.
//!
//! [`MemoryStore`] is the in-memory backend; hosts provide the others.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::ops::Bound;

mod blocks;
pub mod paged;

/// A failure of the storage backend (a disk error, a quota, a conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// What went wrong, for a log and an OperationOutcome.
    pub message: String,
    /// True when the transaction lost a race with another and may be retried.
    pub conflict: bool,
    /// True when the request's work budget ran out (a 413, not a failure of the store).
    pub too_costly: bool,
    /// True when the store has no room left (a full disk or storage quota): a 507.
    pub full: bool,
    /// True when the access layer refused a write the request would make (a 403).
    pub forbidden: bool,
}

impl StoreError {
    /// A failure that retrying will not mend.
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            conflict: false,
            too_costly: false,
            full: false,
            forbidden: false,
        }
    }

    /// A request that needs more work than it may spend.
    pub fn too_costly(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            conflict: false,
            too_costly: true,
            full: false,
            forbidden: false,
        }
    }

    /// A store with no room left for the writes.
    pub fn full(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            conflict: false,
            too_costly: false,
            full: true,
            forbidden: false,
        }
    }

    /// A write the request's access does not allow.
    pub fn forbidden(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            conflict: false,
            too_costly: false,
            full: false,
            forbidden: true,
        }
    }
}

/// A key range for scans: from `start` (inclusive) to `end` (exclusive, `None`: to the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// First key included.
    pub start: Vec<u8>,
    /// First key excluded; `None` for no upper bound.
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        KeyRange {
            start: prefix.to_vec(),
            end: prefix_end(prefix),
        }
    }
}

impl KeyRange {
    /// True when `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// True when the range can hold no key (its end at or before its start).
    pub fn is_empty(&self) -> bool {
        self.end
            .as_deref()
            .is_some_and(|end| end <= self.start.as_slice())
    }
}

/// [`Transaction::visit`] through [`Transaction::scan`], `step` entries at a time.
async fn visit_by_scans<T: Transaction + ?Sized>(
    tx: &mut T,
    range: &KeyRange,
    reverse: bool,
    step: usize,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), StoreError> {
    let step = step.max(1);
    let mut range = range.clone();
    loop {
        let entries = tx.scan(&range, step, reverse).await?;
        let Some((last, _)) = entries.last() else {
            return Ok(());
        };
        let full = entries.len() == step;
        if reverse {
            range.end = Some(last.clone());
        } else {
            let mut after = last.clone();
            after.push(0);
            range.start = after;
        }
        for (key, value) in &entries {
            if !visit(key, value) {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// A scan's answer from a store that holds writes of its own until commit: `stored` (what the
/// store holds in `range`, in scan order, at least `limit` plus as many entries as `writes`
/// has in the range, when the store has that many) with `writes` (`None`: deleted) laid over,
/// up to `limit` entries in key order (`reverse`: descending).
pub fn merge_writes(
    stored: Vec<Entry>,
    writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    range: &KeyRange,
    limit: usize,
    reverse: bool,
) -> Vec<Entry> {
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
    for (key, value) in writes.iter().filter(|(key, _)| range.contains(key)) {
        match value {
            Some(value) => merged.insert(key.clone(), value.clone()),
            None => merged.remove(key),
        };
    }
    if reverse {
        merged.into_iter().rev().take(limit).collect()
    } else {
        merged.into_iter().take(limit).collect()
    }
}

/// The least key greater than every key starting with `prefix` (`None` when there is none).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A transaction: reads see the store as it was when the transaction began plus the
/// transaction's own writes; writes become visible to others only on [`Transaction::commit`].
pub trait Transaction {
    /// The value at `key`.
    fn get(&mut self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>>;

    /// Up to `limit` entries of `range`, in key order (`reverse`: descending).
    fn scan(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> impl Future<Output = Result<Vec<Entry>, StoreError>>;

    /// Calls `visit` with each entry of `range` in key order (`reverse`: descending) until it
    /// answers false. By default read through [`Transaction::scan`], `step` entries at a time;
    /// a store that can visit entries where they lie does so without copying them.
    fn visit(
        &mut self,
        range: &KeyRange,
        reverse: bool,
        step: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> impl Future<Output = Result<(), StoreError>> {
        visit_by_scans(self, range, reverse, step, visit)
    }

    /// How many keys `range` holds (by default, counted by visiting it).
    fn count(&mut self, range: &KeyRange) -> impl Future<Output = Result<usize, StoreError>> {
        async move {
            let mut count = 0usize;
            self.visit(range, false, 1024, &mut |_, _| {
                count += 1;
                true
            })
            .await?;
            Ok(count)
        }
    }

    /// Reads ahead `keys` the transaction is about to [`Transaction::get`], so that a store
    /// whose reads are round trips (IndexedDB) can ask for all of them at once. Only a hint:
    /// the default does nothing, and each later `get` answers as it would have.
    fn prefetch(&mut self, keys: &[Vec<u8>]) -> impl Future<Output = Result<(), StoreError>> {
        let _ = keys;
        core::future::ready(Ok(()))
    }

    /// Sets `key` to `value` when the transaction commits.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);

    /// Removes `key` when the transaction commits.
    fn delete(&mut self, key: Vec<u8>);

    /// Applies every write at once, or none.
    fn commit(self) -> impl Future<Output = Result<(), StoreError>>;
}

/// A store: the source of transactions.
pub trait Store {
    /// Its transactions.
    type Tx<'s>: Transaction
    where
        Self: 's;

    /// Begins a transaction; `write` says whether it will write (read-only ones may run side by
    /// side).
    fn begin(&self, write: bool) -> impl Future<Output = Result<Self::Tx<'_>, StoreError>>;
}

/// Keys and values in memory, ordered. Single-threaded (like a Wasm module's memory);
/// transactions that write are applied in commit order and see one another's committed writes.
#[derive(Default)]
pub struct MemoryStore {
    /// The committed keys and values, in compressed blocks.
    data: RefCell<blocks::Committed>,
    /// Bumped by each commit, so that a writing transaction that read before another commit
    /// fails with a conflict instead of writing over what it did not see.
    version: RefCell<u64>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.data.borrow().len()
    }

    /// True when it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values held, for memory accounting.
    pub fn bytes(&self) -> usize {
        self.data.borrow().bytes()
    }
}

/// A transaction of a [`MemoryStore`].
pub struct MemoryTx<'s> {
    store: &'s MemoryStore,
    began_at: u64,
    writes: BTreeMap<blocks::Key, Option<Box<[u8]>>>,
}

impl Store for MemoryStore {
    type Tx<'s> = MemoryTx<'s>;

    async fn begin(&self, _write: bool) -> Result<MemoryTx<'_>, StoreError> {
        Ok(MemoryTx {
            store: self,
            began_at: *self.version.borrow(),
            writes: BTreeMap::new(),
        })
    }
}

impl Transaction for MemoryTx<'_> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(written) = self.writes.get(key) {
            return Ok(written.as_deref().map(<[u8]>::to_vec));
        }
        Ok(self.store.data.borrow().get(key))
    }

    async fn scan(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        // An empty or inverted range holds nothing (and ordered maps refuse inverted ones).
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let bounds = (
            Bound::Included(range.start.as_slice()),
            range
                .end
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded),
        );
        // The committed entries merged with this transaction's writes, in key order, read only
        // as far as `limit` needs (each pending write can hide at most one committed entry).
        let pending = self.writes.range::<[u8], _>(bounds).count();
        let wanted = limit.saturating_add(pending);
        let mut committed_entries: Vec<Entry> = Vec::new();
        if wanted > 0 {
            self.store
                .data
                .borrow()
                .scan(bounds, reverse, &mut |key, value| {
                    committed_entries.push((key.to_vec(), value.to_vec()));
                    committed_entries.len() < wanted
                });
        }
        let mut committed = committed_entries.into_iter();
        let mut written = self.writes.range::<[u8], _>(bounds);
        let mut entries: Vec<Entry> = Vec::new();
        let mut left = committed.next();
        let mut right = step(&mut written, reverse);
        while entries.len() < limit {
            let take_left = match (&left, &right) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((a, _)), Some((b, _))) => {
                    let order = blocks::key_cmp(a, b);
                    if order == core::cmp::Ordering::Equal {
                        // The transaction's write shadows the committed value.
                        left = committed.next();
                        false
                    } else {
                        (order == core::cmp::Ordering::Less) != reverse
                    }
                }
            };
            if take_left {
                if let Some(entry) = left.take() {
                    entries.push(entry);
                }
                left = committed.next();
            } else {
                if let Some((key, Some(value))) = right {
                    entries.push((key.to_vec(), value.to_vec()));
                }
                right = step(&mut written, reverse);
            }
        }
        Ok(entries)
    }

    async fn visit(
        &mut self,
        range: &KeyRange,
        reverse: bool,
        step: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if range.is_empty() {
            return Ok(());
        }
        let bounds = (
            Bound::Included(range.start.as_slice()),
            range
                .end
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded),
        );
        if self.writes.range::<[u8], _>(bounds).next().is_some() {
            // This transaction wrote within the range: merged by the scan.
            return visit_by_scans(self, range, reverse, step, visit).await;
        }
        self.store.data.borrow().scan(bounds, reverse, visit);
        Ok(())
    }

    async fn count(&mut self, range: &KeyRange) -> Result<usize, StoreError> {
        if range.is_empty() {
            return Ok(0);
        }
        let end = range.end.as_deref();
        let bounds = (
            Bound::Included(range.start.as_slice()),
            end.map_or(Bound::Unbounded, Bound::Excluded),
        );
        let data = self.store.data.borrow();
        let mut count = 0usize;
        data.scan(bounds, false, &mut |_, _| {
            count += 1;
            true
        });
        // This transaction's writes: a new key counts, a deleted one does not.
        for (key, value) in self.writes.range::<[u8], _>(bounds) {
            match (value.is_some(), data.get(key).is_some()) {
                (true, false) => count += 1,
                (false, true) => count = count.saturating_sub(1),
                _ => {}
            }
        }
        Ok(count)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(
            blocks::Key(key.into_boxed_slice()),
            Some(value.into_boxed_slice()),
        );
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes
            .insert(blocks::Key(key.into_boxed_slice()), None);
    }

    async fn commit(self) -> Result<(), StoreError> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let mut version = self.store.version.borrow_mut();
        if *version != self.began_at {
            return Err(StoreError {
                message: String::from("another transaction committed first"),
                conflict: true,
                too_costly: false,
                full: false,
                forbidden: false,
            });
        }
        self.store.data.borrow_mut().apply(self.writes);
        *version += 1;
        Ok(())
    }
}

/// The next entry of a range, from the front or (`reverse`) the back.
pub(crate) fn step<'a, K, V>(
    range: &mut alloc::collections::btree_map::Range<'a, K, V>,
    reverse: bool,
) -> Option<(&'a K, &'a V)> {
    if reverse {
        range.next_back()
    } else {
        range.next()
    }
}

/// Runs a future that never waits on anything outside the engine (the [`MemoryStore`]'s are
/// ready at once) to completion. Hosts with real IO use their own executor.
///
/// # Panics
/// Never: a future that is not ready is polled again until it is.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = core::pin::pin!(future);
    let mut context = core::task::Context::from_waker(core::task::Waker::noop());
    loop {
        if let core::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random writes, deletes, reads and scans against a plain ordered map, through several
    /// foldings of recent changes into blocks; values small and large (kept in slots), replaced
    /// and deleted, with no slot left behind.
    #[test]
    fn the_block_store_behaves_as_an_ordered_map() {
        // Recent changes folded into blocks after every few dozen: through many foldings.
        let store = MemoryStore {
            data: RefCell::new(blocks::Committed::with_recent_limit(50)),
            ..MemoryStore::default()
        };
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let key_of = |n: u64| -> Vec<u8> {
            // Keys with long shared prefixes, like index keys, and short ones.
            match n % 3 {
                0 => alloc::format!("i\0Observation\0code\0=8302-{}\0id{}", n % 17, n).into_bytes(),
                1 => alloc::format!("v\0Patient\0{:x}", n).into_bytes(),
                _ => alloc::format!("c{}", n % 500).into_bytes(),
            }
        };
        block_on(async {
            for round in 0..40 {
                let mut tx = store.begin(true).await.unwrap_or_else(|e| panic!("{e:?}"));
                for _ in 0..700 {
                    let n = next() % 6000;
                    let key = key_of(n);
                    if next() % 4 == 0 {
                        tx.delete(key.clone());
                        model.remove(&key);
                    } else {
                        let text = alloc::format!("value {round} {n} ").into_bytes();
                        let value: Vec<u8> = match next() % 3 {
                            // Like index entries.
                            0 => Vec::new(),
                            1 => text,
                            // Around the size at which values leave the blocks, and beyond.
                            _ => {
                                let len = blocks::LARGE_VALUE - 2 + (next() % 300) as usize;
                                text.iter().copied().cycle().take(len).collect()
                            }
                        };
                        tx.put(key.clone(), value.clone());
                        model.insert(key, value);
                    }
                }
                tx.commit().await.unwrap_or_else(|e| panic!("{e:?}"));
                // Each round writes more than the recent limit, so its commit folds them all
                // into the blocks: every large value alive is in a slot.
                let (occupied, slots) = store.data.borrow().check_slots();
                let large = model
                    .values()
                    .filter(|value| value.len() > blocks::LARGE_VALUE)
                    .count();
                assert_eq!(occupied, large, "round {round}");
                // Freed slots are reused: never more slots than keys.
                assert!(slots <= 6000, "round {round}: {slots} slots");
                let mut tx = store.begin(false).await.unwrap_or_else(|e| panic!("{e:?}"));
                for _ in 0..20 {
                    let key = key_of(next() % 6000);
                    assert_eq!(
                        tx.get(&key).await.unwrap_or_default(),
                        model.get(&key).cloned()
                    );
                }
                for _ in 0..10 {
                    let a = key_of(next() % 6000);
                    let b = key_of(next() % 6000);
                    let (start, end) = if a <= b { (a, b) } else { (b, a) };
                    let limit = (next() % 50) as usize + 1;
                    let reverse = next() % 2 == 0;
                    let range = KeyRange {
                        start: start.clone(),
                        end: Some(end.clone()),
                    };
                    let got = tx.scan(&range, limit, reverse).await.unwrap_or_default();
                    let all = model.range(start..end);
                    let want: Vec<Entry> = if reverse {
                        all.rev()
                            .take(limit)
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    } else {
                        all.take(limit)
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    };
                    assert_eq!(got, want, "round {round}");
                }
            }
            assert_eq!(store.len(), model.len());
            let mut tx = store.begin(false).await.unwrap_or_else(|e| panic!("{e:?}"));
            let everything = tx
                .scan(&KeyRange::prefix(b""), usize::MAX, false)
                .await
                .unwrap_or_default();
            let want: Vec<Entry> = model.clone().into_iter().collect();
            assert_eq!(everything, want);
            let bytes: usize = model
                .iter()
                .map(|(key, value)| key.len() + value.len())
                .sum();
            assert_eq!(store.bytes(), bytes);
            // Deleting everything frees every slot.
            let mut tx = store.begin(true).await.unwrap_or_else(|e| panic!("{e:?}"));
            for key in model.keys() {
                tx.delete(key.clone());
            }
            tx.commit().await.unwrap_or_else(|e| panic!("{e:?}"));
            assert!(store.is_empty());
            assert_eq!(store.data.borrow().check_slots().0, 0);
        });
    }

    #[test]
    fn scans_merge_uncommitted_writes_in_order_up_to_the_limit() {
        let store = MemoryStore::new();
        block_on(async {
            let mut tx = store.begin(true).await.unwrap_or_else(|e| panic!("{e:?}"));
            for key in ["a/1", "a/3", "a/5", "b/1"] {
                tx.put(key.as_bytes().to_vec(), b"old".to_vec());
            }
            tx.commit().await.unwrap_or_else(|e| panic!("{e:?}"));
            let mut tx = store.begin(true).await.unwrap_or_else(|e| panic!("{e:?}"));
            tx.put(b"a/2".to_vec(), b"new".to_vec());
            tx.put(b"a/3".to_vec(), b"new".to_vec());
            tx.delete(b"a/5".to_vec());
            tx.put(b"a/6".to_vec(), b"new".to_vec());
            let range = KeyRange::prefix(b"a/");
            let text = |entries: Vec<Entry>| -> Vec<String> {
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        alloc::format!(
                            "{}={}",
                            String::from_utf8_lossy(&k),
                            String::from_utf8_lossy(&v)
                        )
                    })
                    .collect()
            };
            let all = tx.scan(&range, usize::MAX, false).await.unwrap_or_default();
            assert_eq!(text(all), ["a/1=old", "a/2=new", "a/3=new", "a/6=new"]);
            let first = tx.scan(&range, 2, false).await.unwrap_or_default();
            assert_eq!(text(first), ["a/1=old", "a/2=new"]);
            let last = tx.scan(&range, 3, true).await.unwrap_or_default();
            assert_eq!(text(last), ["a/6=new", "a/3=new", "a/2=new"]);
        });
    }

    #[test]
    fn writes_are_atomic_and_isolated_until_commit() {
        let store = MemoryStore::new();
        block_on(async {
            let mut tx = store.begin(true).await.unwrap_or_else(|e| panic!("{e:?}"));
            tx.put(b"a/1".to_vec(), b"one".to_vec());
            tx.put(b"a/2".to_vec(), b"two".to_vec());
            tx.put(b"b/1".to_vec(), b"other".to_vec());
            // Its own writes are visible to it, not to others.
            assert_eq!(tx.get(b"a/1").await, Ok(Some(b"one".to_vec())));
            let mut other = store.begin(false).await.unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(other.get(b"a/1").await, Ok(None));
            tx.commit().await.unwrap_or_else(|e| panic!("{e:?}"));
            let scanned = other
                .scan(&KeyRange::prefix(b"a/"), 10, true)
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            let keys: Vec<&[u8]> = scanned.iter().map(|(key, _)| key.as_slice()).collect();
            assert_eq!(keys, [b"a/2".as_slice(), b"a/1".as_slice()]);
        });
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn a_writer_that_read_before_another_commit_conflicts() {
        let store = MemoryStore::new();
        block_on(async {
            let mut first = store.begin(true).await.unwrap_or_else(|e| panic!("{e:?}"));
            let mut second = store.begin(true).await.unwrap_or_else(|e| panic!("{e:?}"));
            first.put(b"k".to_vec(), b"1".to_vec());
            second.put(b"k".to_vec(), b"2".to_vec());
            assert_eq!(first.commit().await, Ok(()));
            let err = second.commit().await.err();
            assert!(err.is_some_and(|err| err.conflict));
            let mut read = store.begin(false).await.unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(read.get(b"k").await, Ok(Some(b"1".to_vec())));
        });
    }

    #[test]
    fn own_writes_lay_over_stored_entries_within_the_range() {
        let stored = alloc::vec![
            (b"a1".to_vec(), b"1".to_vec()),
            (b"a2".to_vec(), b"2".to_vec()),
            (b"a4".to_vec(), b"4".to_vec()),
        ];
        let mut writes = BTreeMap::new();
        writes.insert(b"a2".to_vec(), None);
        writes.insert(b"a3".to_vec(), Some(b"3".to_vec()));
        writes.insert(b"b1".to_vec(), Some(b"x".to_vec()));
        let range = KeyRange::prefix(b"a");
        let keys = |entries: Vec<Entry>| -> Vec<Vec<u8>> {
            entries.into_iter().map(|(key, _)| key).collect()
        };
        assert_eq!(
            keys(merge_writes(stored.clone(), &writes, &range, 10, false)),
            alloc::vec![b"a1".to_vec(), b"a3".to_vec(), b"a4".to_vec()]
        );
        assert_eq!(
            keys(merge_writes(stored, &writes, &range, 2, true)),
            alloc::vec![b"a4".to_vec(), b"a3".to_vec()]
        );
    }

    #[test]
    fn visits_and_counts_see_the_transactions_own_writes() {
        let store = MemoryStore::new();
        block_on(async {
            let mut tx = store.begin(true).await.unwrap();
            for key in ["a1", "a2", "a4", "b1"] {
                tx.put(key.as_bytes().to_vec(), b"v".to_vec());
            }
            tx.commit().await.unwrap();
            let mut tx = store.begin(true).await.unwrap();
            tx.delete(b"a2".to_vec());
            tx.put(b"a3".to_vec(), b"w".to_vec());
            tx.put(b"a5".to_vec(), b"w".to_vec());
            let range = KeyRange::prefix(b"a");
            for (reverse, step) in [(false, 1), (false, 2), (false, 100), (true, 1), (true, 100)] {
                let mut seen = Vec::new();
                tx.visit(&range, reverse, step, &mut |key, _| {
                    seen.push(key.to_vec());
                    true
                })
                .await
                .unwrap();
                let mut expected: Vec<Vec<u8>> = ["a1", "a3", "a4", "a5"]
                    .iter()
                    .map(|k| k.as_bytes().to_vec())
                    .collect();
                if reverse {
                    expected.reverse();
                }
                assert_eq!(seen, expected, "reverse {reverse}, step {step}");
            }
            assert_eq!(tx.count(&range).await.unwrap(), 4);
            // Stopping early stops.
            let mut seen = 0;
            tx.visit(&range, false, 100, &mut |_, _| {
                seen += 1;
                seen < 2
            })
            .await
            .unwrap();
            assert_eq!(seen, 2);
        });
    }

    #[test]
    fn prefix_ranges_end_after_the_last_key_of_the_prefix() {
        assert_eq!(KeyRange::prefix(b"ab").end, Some(b"ac".to_vec()));
        assert_eq!(KeyRange::prefix(&[1, 255]).end, Some(alloc::vec![2]));
        assert_eq!(KeyRange::prefix(&[255]).end, None);
    }
}

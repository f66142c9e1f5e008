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

/// A failure of the storage backend (a disk error, a quota, a conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// What went wrong, for a log and an OperationOutcome.
    pub message: String,
    /// True when the transaction lost a race with another and may be retried.
    pub conflict: bool,
}

impl StoreError {
    /// A failure that retrying will not mend.
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            conflict: false,
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

/// The committed keys and values of a [`MemoryStore`].
type Committed = BTreeMap<Box<[u8]>, Box<[u8]>>;

/// Keys and values in memory, ordered. Single-threaded (like a Wasm module's memory);
/// transactions that write are applied in commit order and see one another's committed writes.
#[derive(Default)]
pub struct MemoryStore {
    /// Keys and values as boxed slices: no spare capacity is kept for what never grows.
    data: RefCell<Committed>,
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
        self.data.borrow().is_empty()
    }

    /// Bytes of keys and values held, for memory accounting.
    pub fn bytes(&self) -> usize {
        self.data
            .borrow()
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum()
    }
}

/// A transaction of a [`MemoryStore`].
pub struct MemoryTx<'s> {
    store: &'s MemoryStore,
    began_at: u64,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
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
            return Ok(written.clone());
        }
        Ok(self
            .store
            .data
            .borrow()
            .get(key)
            .map(|value| value.to_vec()))
    }

    async fn scan(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        let bounds = (
            Bound::Included(range.start.clone()),
            match &range.end {
                Some(end) => Bound::Excluded(end.clone()),
                None => Bound::Unbounded,
            },
        );
        // The committed entries merged with this transaction's writes, in key order, read only
        // as far as `limit` needs.
        let data = self.store.data.borrow();
        let mut committed = data.range::<[u8], _>((
            bounds.0.as_ref().map(Vec::as_slice),
            bounds.1.as_ref().map(Vec::as_slice),
        ));
        let mut written = self.writes.range::<Vec<u8>, _>(bounds);
        let mut entries: Vec<Entry> = Vec::new();
        let mut left = step(&mut committed, reverse);
        let mut right = step(&mut written, reverse);
        while entries.len() < limit {
            let take_left = match (&left, &right) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((a, _)), Some((b, _))) => {
                    let order = a[..].cmp(&b[..]);
                    if order == core::cmp::Ordering::Equal {
                        // The transaction's write shadows the committed value.
                        left = step(&mut committed, reverse);
                        false
                    } else {
                        (order == core::cmp::Ordering::Less) != reverse
                    }
                }
            };
            if take_left {
                if let Some((key, value)) = left {
                    entries.push((key.to_vec(), value.to_vec()));
                }
                left = step(&mut committed, reverse);
            } else {
                if let Some((key, Some(value))) = right {
                    entries.push((key.clone(), value.clone()));
                }
                right = step(&mut written, reverse);
            }
        }
        Ok(entries)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
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
            });
        }
        let mut data = self.store.data.borrow_mut();
        for (key, value) in self.writes {
            match value {
                Some(value) => data.insert(key.into_boxed_slice(), value.into_boxed_slice()),
                None => data.remove(key.as_slice()),
            };
        }
        *version += 1;
        Ok(())
    }
}

/// The next entry of a range, from the front or (`reverse`) the back.
fn step<'a, K, V>(
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
    fn prefix_ranges_end_after_the_last_key_of_the_prefix() {
        assert_eq!(KeyRange::prefix(b"ab").end, Some(b"ac".to_vec()));
        assert_eq!(KeyRange::prefix(&[1, 255]).end, Some(alloc::vec![2]));
        assert_eq!(KeyRange::prefix(&[255]).end, None);
    }
}

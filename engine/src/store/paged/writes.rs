//! The writes of a [`super::PagedTx`]: each key once, in the order first written, found again
//! through a hash table; put in key order only when they are read in order (a range read, the
//! commit). An import writes tens of thousands of keys a transaction and reads back a few of
//! them one at a time, which an ordered map paid for with a dozen or more key comparisons for
//! each write.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cmp::Ordering;

use hashbrown::HashTable;

use super::filter::key_hash;
use crate::store::blocks::{key_cmp, Key};
use crate::store::KeyRange;

/// A written value: bytes, or `None` for a deletion.
pub(super) type Written = Option<Box<[u8]>>;

pub(super) struct Writes {
    /// Each key written, once, with its last value.
    entries: Vec<(Key, Written)>,
    /// The position in `entries` of each key, by its hash (which is kept beside it).
    positions: HashTable<(u64, usize)>,
    /// Whether `entries` is in key order.
    sorted: bool,
}

impl Writes {
    pub(super) fn new() -> Writes {
        Writes {
            entries: Vec::new(),
            positions: HashTable::new(),
            sorted: true,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many keys were written.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Writes `value` at `key`, replacing what was written there before.
    pub(super) fn insert(&mut self, key: Vec<u8>, value: Written) {
        let hash = key_hash(&key);
        let entries = &mut self.entries;
        if let Some(&(_, at)) = self.positions.find(hash, |&(probe, at)| {
            probe == hash && entries.get(at).is_some_and(|entry| *entry.0 == key[..])
        }) {
            if let Some(entry) = entries.get_mut(at) {
                entry.1 = value;
            }
            return;
        }
        if self.sorted {
            self.sorted = entries
                .last()
                .is_none_or(|(last, _)| key_cmp(last, &key) == Ordering::Less);
        }
        let at = entries.len();
        entries.push((Key(key.into_boxed_slice()), value));
        self.positions
            .insert_unique(hash, (hash, at), |&(hash, _)| hash);
    }

    /// What was written at `key`, if anything was.
    pub(super) fn get(&self, key: &[u8]) -> Option<&Written> {
        let hash = key_hash(key);
        let entries = &self.entries;
        self.positions
            .find(hash, |&(probe, at)| {
                probe == hash && entries.get(at).is_some_and(|entry| *entry.0 == *key)
            })
            .and_then(|&(_, at)| entries.get(at))
            .map(|(_, value)| value)
    }

    pub(super) fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// The writes within `range`, in key order.
    pub(super) fn range(&mut self, range: &KeyRange) -> &[(Key, Written)] {
        self.sort();
        let start = self
            .entries
            .partition_point(|(key, _)| key_cmp(key, &range.start) == Ordering::Less);
        let end = match &range.end {
            Some(end) => self
                .entries
                .partition_point(|(key, _)| key_cmp(key, end) == Ordering::Less),
            None => self.entries.len(),
        };
        self.entries.get(start..end.max(start)).unwrap_or_default()
    }

    /// Every write, in key order.
    pub(super) fn into_sorted(mut self) -> Vec<(Key, Written)> {
        if !self.sorted {
            self.entries
                .sort_unstable_by(|(a, _), (b, _)| key_cmp(a, b));
        }
        self.entries
    }

    /// Puts the entries in key order, and their positions with them.
    fn sort(&mut self) {
        if self.sorted {
            return;
        }
        self.entries
            .sort_unstable_by(|(a, _), (b, _)| key_cmp(a, b));
        self.positions.clear();
        for (at, (key, _)) in self.entries.iter().enumerate() {
            let hash = key_hash(key);
            self.positions
                .insert_unique(hash, (hash, at), |&(hash, _)| hash);
        }
        self.sorted = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec;

    /// Random writes, reads and range reads, against an ordered map of the same writes.
    #[test]
    fn writes_read_back_as_an_ordered_map_of_them_does() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for _ in 0..50 {
            let mut writes = Writes::new();
            let mut model: BTreeMap<Vec<u8>, Written> = BTreeMap::new();
            for _ in 0..next(400) {
                // Keys of one to three bytes from a small alphabet: many written twice, and
                // some the prefix of another.
                let key: Vec<u8> = (0..=next(3)).map(|_| b'a' + next(4) as u8).collect();
                match next(10) {
                    0..=5 => {
                        let value = (next(3) != 0).then(|| vec![next(256) as u8].into());
                        writes.insert(key.clone(), value.clone());
                        model.insert(key, value);
                    }
                    6..=7 => assert_eq!(writes.get(&key), model.get(&key), "{key:?}"),
                    _ => {
                        let end = (next(2) == 0).then(|| vec![b'a' + next(5) as u8]);
                        let range = KeyRange { start: key, end };
                        let found: Vec<(Vec<u8>, Written)> = writes
                            .range(&range)
                            .iter()
                            .map(|(key, value)| (key.0.to_vec(), value.clone()))
                            .collect();
                        let expected: Vec<(Vec<u8>, Written)> = model
                            .iter()
                            .filter(|(key, _)| range.contains(key))
                            .map(|(key, value)| (key.clone(), value.clone()))
                            .collect();
                        assert_eq!(found, expected);
                    }
                }
            }
            for (key, value) in &model {
                assert_eq!(writes.get(key), Some(value));
            }
            let all: Vec<(Vec<u8>, Written)> = writes
                .into_sorted()
                .into_iter()
                .map(|(key, value)| (key.0.to_vec(), value))
                .collect();
            assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        }
    }
}

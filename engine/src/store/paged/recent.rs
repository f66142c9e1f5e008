//! The recent changes of a [`super::PagedStore`]: what was committed since the last
//! compaction, held in memory.
//!
//! They are a few sorted *segments*, oldest first, a key's entry in a newer segment hiding
//! the same key's in older ones. A commit adds its changes (already in key order) as a new
//! segment; the newest two are merged while the newer is at least half the size of the older,
//! so that the segments shrink geometrically (a few of them, each entry merged again a few
//! times in all). A segment keeps its keys side by side in one buffer: merging reads memory in
//! order, and dropping a segment frees a handful of buffers, not one per key. An ordered map
//! of boxed keys spent most of an import's commits comparing keys scattered over the heap.
//!
//! **Invariant:** a segment's keys are strictly increasing, and a segment never changes once
//! made (snapshots of the store share them).

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cmp::Ordering;

use super::{key_cmp, KeyRange, Val};

/// Segments past this many are merged whatever their sizes, so that a read looks at a few.
const MAX_SEGMENTS: usize = 6;

/// Entries in key order, their keys side by side.
#[derive(Default)]
struct Segment {
    keys: Vec<u8>,
    /// Where each key ends in `keys` (it starts where the one before ends).
    ends: Vec<usize>,
    values: Vec<Val>,
}

impl Segment {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn key(&self, index: usize) -> &[u8] {
        let start = match index.checked_sub(1) {
            Some(before) => self.ends[before],
            None => 0,
        };
        &self.keys[start..self.ends[index]]
    }

    fn push(&mut self, key: &[u8], value: Val) {
        debug_assert!(self.ends.is_empty() || key_cmp(self.key(self.len() - 1), key).is_lt());
        self.keys.extend_from_slice(key);
        self.ends.push(self.keys.len());
        self.values.push(value);
    }

    /// The index of the first key not before `key`.
    fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key_cmp(self.key(mid), key) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn get(&self, key: &[u8]) -> Option<&Val> {
        let at = self.lower_bound(key);
        (at < self.len() && self.key(at) == key).then(|| &self.values[at])
    }
}

/// The recent changes: see the module's description.
#[derive(Clone, Default)]
pub(super) struct Recent {
    /// Oldest first.
    segments: Vec<Rc<Segment>>,
    /// Entries of all segments (a key changed in two segments counts twice until they merge).
    entries: usize,
}

impl Recent {
    /// Entries held: each key once per segment that holds it.
    pub(super) fn len(&self) -> usize {
        self.entries
    }

    /// The newest change of `key`.
    pub(super) fn get(&self, key: &[u8]) -> Option<&Val> {
        self.segments
            .iter()
            .rev()
            .find_map(|segment| segment.get(key))
    }

    /// Adds changes newer than all held, in strictly increasing key order.
    pub(super) fn push<K: core::ops::Deref<Target = [u8]>>(
        &mut self,
        changes: impl IntoIterator<Item = (K, Val)>,
    ) {
        let mut segment = Segment::default();
        for (key, value) in changes {
            segment.push(&key, value);
        }
        if segment.len() == 0 {
            return;
        }
        self.entries += segment.len();
        self.segments.push(Rc::new(segment));
        while let [.., older, newer] = self.segments.as_slice() {
            if newer.len() * 2 < older.len() && self.segments.len() <= MAX_SEGMENTS {
                break;
            }
            let (Some(newer), Some(older)) = (self.segments.pop(), self.segments.pop()) else {
                break;
            };
            let merged = merge(older, newer);
            self.entries = self
                .segments
                .iter()
                .map(|segment| segment.len())
                .sum::<usize>()
                + merged.len();
            self.segments.push(Rc::new(merged));
        }
    }

    /// The newest change of each key in `range`, in key order (`reverse`: backwards).
    pub(super) fn range<'a>(&'a self, range: &KeyRange, reverse: bool) -> RecentIter<'a> {
        let bounds = self
            .segments
            .iter()
            .map(|segment| {
                let lo = segment.lower_bound(&range.start);
                let hi = match &range.end {
                    Some(end) => segment.lower_bound(end),
                    None => segment.len(),
                };
                (&**segment, lo, hi.max(lo))
            })
            .collect();
        RecentIter {
            segments: bounds,
            reverse,
        }
    }

    /// The newest change of every key, in key order.
    pub(super) fn iter(&self) -> RecentIter<'_> {
        RecentIter {
            segments: self
                .segments
                .iter()
                .map(|segment| (&**segment, 0, segment.len()))
                .collect(),
            reverse: false,
        }
    }
}

/// `older` and `newer` as one segment, `newer`'s entry kept where both hold a key. Values are
/// moved out of a segment no snapshot shares, copied otherwise.
fn merge(older: Rc<Segment>, newer: Rc<Segment>) -> Segment {
    let owned = |segment: Rc<Segment>| match Rc::try_unwrap(segment) {
        Ok(segment) => segment,
        Err(shared) => Segment {
            keys: shared.keys.clone(),
            ends: shared.ends.clone(),
            values: shared.values.clone(),
        },
    };
    let (mut older, mut newer) = (owned(older), owned(newer));
    let mut out = Segment {
        keys: Vec::with_capacity(older.keys.len() + newer.keys.len()),
        ends: Vec::with_capacity(older.len() + newer.len()),
        values: Vec::with_capacity(older.len() + newer.len()),
    };
    let older_values = core::mem::take(&mut older.values);
    let newer_values = core::mem::take(&mut newer.values);
    let mut older_values = older_values.into_iter();
    let mut newer_values = newer_values.into_iter();
    let (mut a, mut b) = (0, 0);
    while a < older.ends.len() && b < newer.ends.len() {
        let (older_key, newer_key) = (older.key(a), newer.key(b));
        match key_cmp(older_key, newer_key) {
            Ordering::Less => {
                if let Some(value) = older_values.next() {
                    out.push(older_key, value);
                }
                a += 1;
            }
            Ordering::Greater => {
                if let Some(value) = newer_values.next() {
                    out.push(newer_key, value);
                }
                b += 1;
            }
            Ordering::Equal => {
                older_values.next();
                if let Some(value) = newer_values.next() {
                    out.push(newer_key, value);
                }
                a += 1;
                b += 1;
            }
        }
    }
    for (index, value) in (a..older.ends.len()).zip(older_values) {
        out.push(older.key(index), value);
    }
    for (index, value) in (b..newer.ends.len()).zip(newer_values) {
        out.push(newer.key(index), value);
    }
    out
}

/// The newest change of each key of a range, merged from every segment.
pub(super) struct RecentIter<'a> {
    /// Each segment with the indices of its entries not yet seen (`lo..hi`), oldest first.
    segments: Vec<(&'a Segment, usize, usize)>,
    reverse: bool,
}

impl<'a> Iterator for RecentIter<'a> {
    type Item = (&'a [u8], &'a Val);

    fn next(&mut self) -> Option<(&'a [u8], &'a Val)> {
        // The next key over all segments, and which segments hold it (bit i: segment i).
        let mut best: Option<(&'a [u8], &'a Val)> = None;
        let mut holders: u64 = 0;
        for (index, &(segment, lo, hi)) in self.segments.iter().enumerate().rev() {
            if lo >= hi {
                continue;
            }
            let at = if self.reverse { hi - 1 } else { lo };
            let key = segment.key(at);
            let order = match best {
                None => Ordering::Less,
                Some((best_key, _)) => {
                    let order = key_cmp(key, best_key);
                    if self.reverse {
                        order.reverse()
                    } else {
                        order
                    }
                }
            };
            match order {
                Ordering::Less => {
                    best = Some((key, &segment.values[at]));
                    holders = 1 << index;
                }
                // Segments are visited newest first: the value already chosen is newer.
                Ordering::Equal => holders |= 1 << index,
                Ordering::Greater => {}
            }
        }
        for (index, (_, lo, hi)) in self.segments.iter_mut().enumerate() {
            if holders & (1 << index) != 0 {
                if self.reverse {
                    *hi -= 1;
                } else {
                    *lo += 1;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::format;

    type Model = BTreeMap<Box<[u8]>, Val>;

    fn key_of(n: u64) -> Box<[u8]> {
        format!("k{:05}", n % 9973).into_bytes().into_boxed_slice()
    }

    /// Random commits of changes, each as a new segment: every read answers as an ordered map
    /// holding the newest change of each key does, with a snapshot taken along the way
    /// unchanged by later commits, and the segments stay few.
    #[test]
    fn recent_changes_read_as_the_newest_change_of_each_key() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut recent = Recent::default();
        let mut model: Model = BTreeMap::new();
        let mut snapshot: Option<(Recent, Model)> = None;
        for commit in 0..120u64 {
            let size = if next() % 10 == 0 { 2000 } else { next() % 200 };
            let mut changes: Model = BTreeMap::new();
            for _ in 0..size {
                let key = key_of(next());
                let value = if next() % 5 == 0 {
                    Val::Tomb
                } else {
                    Val::Small(format!("{commit}").into_bytes().into_boxed_slice())
                };
                changes.insert(key, value);
            }
            model.extend(changes.clone());
            recent.push(changes);
            if commit == 40 {
                snapshot = Some((recent.clone(), model.clone()));
            }
            assert!(
                recent.segments.len() <= MAX_SEGMENTS,
                "{} segments",
                recent.segments.len()
            );
            assert_eq!(
                recent.len(),
                recent.segments.iter().map(|s| s.len()).sum::<usize>()
            );
            for _ in 0..20 {
                let key = key_of(next());
                assert_eq!(recent.get(&key), model.get(&key), "commit {commit}");
            }
            let start = key_of(next());
            let end = (next() % 3 != 0).then(|| key_of(next()).to_vec());
            let range = KeyRange {
                start: start.to_vec(),
                end,
            };
            let expected: Vec<(&[u8], &Val)> = model
                .iter()
                .filter(|(key, _)| range.contains(key))
                .map(|(key, value)| (&key[..], value))
                .collect();
            let forward: Vec<(&[u8], &Val)> = recent.range(&range, false).collect();
            assert_eq!(forward, expected, "commit {commit} forward");
            let mut backward: Vec<(&[u8], &Val)> = recent.range(&range, true).collect();
            backward.reverse();
            assert_eq!(backward, expected, "commit {commit} backward");
        }
        let all: Vec<(&[u8], &Val)> = recent.iter().collect();
        let expected: Vec<(&[u8], &Val)> = model.iter().map(|(k, v)| (&k[..], v)).collect();
        assert_eq!(all, expected);
        let (old, old_model) = snapshot.unwrap_or_default();
        let all: Vec<(&[u8], &Val)> = old.iter().collect();
        let expected: Vec<(&[u8], &Val)> = old_model.iter().map(|(k, v)| (&k[..], v)).collect();
        assert_eq!(all, expected, "the snapshot");
    }
}

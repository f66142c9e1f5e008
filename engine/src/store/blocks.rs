//! The committed data of a [`super::MemoryStore`], kept compact: sorted blocks of entries
//! whose keys share their prefix with the key before them (search index keys share all but
//! their last bytes), plus a small table of recent changes that is folded into the blocks when
//! it grows.
//!
//! An entry in a block: varint(length of the prefix shared with the previous key), varint(length
//! of the rest), the rest of the key, then the value: varint(its length << 1) and its bytes, or,
//! for a value longer than [`LARGE_VALUE`], varint(slot << 1 | 1).
//!
//! Large values (resource versions) live each in an allocation of its own, in slots beside the
//! blocks: a block holds only keys and small values, so that folding changes into it copies
//! little, and a large value is moved from the recent changes into its slot, never copied.
//! **Invariant:** every occupied slot is referred to by exactly one block entry; a slot is freed
//! when the fold that replaces or deletes its entry runs.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::cmp::Ordering;
use core::ops::{Bound, Range};

/// `a.cmp(b)` for keys, eight bytes at a time: keys share long prefixes (an index's name, a
/// resource type), which comparing byte by byte (as Wasm's `memcmp` does) walks again at every
/// step of a search.
#[inline]
pub(crate) fn key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let shared = shared_prefix(a, b);
    // Past the shared prefix: the first differing bytes, or the shorter key first.
    a.get(shared).cmp(&b.get(shared))
}

/// How many bytes `a` and `b` share at their start, compared eight at a time.
#[inline]
pub(crate) fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut done = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(x).unwrap_or_default());
        let y = u64::from_le_bytes(<[u8; 8]>::try_from(y).unwrap_or_default());
        let diff = x ^ y;
        if diff != 0 {
            // The first differing byte is the lowest one set in `diff` (little-endian loads).
            return done + (diff.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let (a, b) = (
        a.get(done..).unwrap_or_default(),
        b.get(done..).unwrap_or_default(),
    );
    done + a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A key of changes kept in ordered maps (a transaction's writes, the recent changes):
/// ordered as bytes are, by [`key_cmp`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Key(pub(crate) Box<[u8]>);

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        key_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl core::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Where a block entry's value is: in the block's data, or in a slot.
#[derive(Clone)]
enum ValueAt {
    Inline(Range<usize>),
    Slot(usize),
}

/// Values longer than this are kept in slots rather than in the blocks.
pub(crate) const LARGE_VALUE: usize = 64;

/// Most entries in a block: a block that grows past it is split in blocks of about
/// [`BLOCK_ENTRIES`].
const MAX_BLOCK_ENTRIES: usize = 64;
/// Entries per block when a block is split.
const BLOCK_ENTRIES: usize = 48;
/// Recent changes kept apart before they are folded into the blocks.
const RECENT_LIMIT: usize = 4096;

/// One block: its encoded entries (the first entry's key is written whole, so the block's
/// first key is read from its data).
struct Block {
    data: Box<[u8]>,
}

impl Block {
    /// The block's first key.
    fn first(&self) -> &[u8] {
        let mut at = 0;
        let _shared = read_varint(&self.data, &mut at);
        let len = read_varint(&self.data, &mut at);
        self.data.get(at..at + len).unwrap_or_default()
    }
}

/// Committed keys and values.
pub(crate) struct Committed {
    /// Changes not yet in the blocks; `None` is a deletion.
    recent: BTreeMap<Key, Option<Box<[u8]>>>,
    /// Sorted, non-overlapping.
    blocks: Vec<Block>,
    /// The values longer than [`LARGE_VALUE`] that blocks refer to; `None` is a free slot.
    large: Vec<Option<Box<[u8]>>>,
    /// The free slots of `large`, reused before it grows.
    free_slots: Vec<usize>,
    /// How many recent changes are kept before they are folded into the blocks.
    recent_limit: usize,
}

impl Default for Committed {
    fn default() -> Self {
        Committed::with_recent_limit(RECENT_LIMIT)
    }
}

fn push_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(data: &[u8], at: &mut usize) -> usize {
    let mut value = 0usize;
    let mut shift = 0;
    while let Some(&byte) = data.get(*at) {
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    value
}

/// The entries of blocks being written again, in key order, in buffers kept from one block
/// to the next (so that a fold allocates per block written, not per entry).
#[derive(Default)]
struct Merged {
    keys: Vec<u8>,
    values: Vec<u8>,
    /// Each entry's key (a range of `keys`) and value.
    entries: Vec<(Range<usize>, MergedValue)>,
}

/// A merged entry's value: a range of [`Merged::values`], or a slot.
#[derive(Clone)]
enum MergedValue {
    Inline(Range<usize>),
    Slot(usize),
}

impl Merged {
    fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
        self.entries.clear();
    }

    fn push_key(&mut self, key: &[u8]) -> Range<usize> {
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        start..self.keys.len()
    }

    fn push_inline(&mut self, key: &[u8], value: &[u8]) {
        let key = self.push_key(key);
        let start = self.values.len();
        self.values.extend_from_slice(value);
        self.entries
            .push((key, MergedValue::Inline(start..self.values.len())));
    }

    fn push_slot(&mut self, key: &[u8], slot: usize) {
        let key = self.push_key(key);
        self.entries.push((key, MergedValue::Slot(slot)));
    }

    /// Writes the entries as one block, or, past [`MAX_BLOCK_ENTRIES`], as blocks of even size.
    fn write_blocks(&self, blocks: &mut Vec<Block>) {
        if self.entries.is_empty() {
            return;
        }
        let parts = if self.entries.len() <= MAX_BLOCK_ENTRIES {
            1
        } else {
            self.entries.len().div_ceil(BLOCK_ENTRIES)
        };
        let size = self.entries.len().div_ceil(parts);
        for chunk in self.entries.chunks(size) {
            blocks.push(self.encode(chunk));
        }
    }

    fn encode(&self, entries: &[(Range<usize>, MergedValue)]) -> Block {
        let mut data = Vec::new();
        let mut previous: &[u8] = &[];
        for (key, value) in entries {
            let key = self.keys.get(key.clone()).unwrap_or_default();
            let shared = shared_prefix(previous, key);
            push_varint(&mut data, shared);
            push_varint(&mut data, key.len() - shared);
            data.extend_from_slice(key.get(shared..).unwrap_or_default());
            match value {
                MergedValue::Inline(range) => {
                    let bytes = self.values.get(range.clone()).unwrap_or_default();
                    push_varint(&mut data, bytes.len() << 1);
                    data.extend_from_slice(bytes);
                }
                MergedValue::Slot(slot) => push_varint(&mut data, (slot << 1) | 1),
            }
            previous = key;
        }
        Block {
            data: data.into_boxed_slice(),
        }
    }
}

/// Walks a block's entries in order: `visit` gets each key and where its value lies, and
/// returns false to stop.
fn walk(block: &Block, visit: &mut dyn FnMut(&[u8], ValueAt) -> bool) {
    let data = &block.data;
    let mut at = 0;
    let mut key: Vec<u8> = Vec::new();
    while at < data.len() {
        let shared = read_varint(data, &mut at);
        let rest = read_varint(data, &mut at);
        key.truncate(shared);
        key.extend_from_slice(data.get(at..at + rest).unwrap_or_default());
        at += rest;
        let tag = read_varint(data, &mut at);
        let value = if tag & 1 == 1 {
            ValueAt::Slot(tag >> 1)
        } else {
            let len = tag >> 1;
            at += len;
            ValueAt::Inline(at - len..at)
        };
        if !visit(&key, value) {
            return;
        }
    }
}

/// A block's keys, each with where its value lies.
fn decode_keys(block: &Block) -> Vec<(Vec<u8>, ValueAt)> {
    let mut entries = Vec::new();
    walk(block, &mut |key, value| {
        entries.push((key.to_vec(), value));
        true
    });
    entries
}

/// The bytes of a value in `data` (its block's) or in `large`.
fn value_bytes<'a>(data: &'a [u8], large: &'a [Option<Box<[u8]>>], value: &ValueAt) -> &'a [u8] {
    match value {
        ValueAt::Inline(span) => data.get(span.clone()).unwrap_or_default(),
        ValueAt::Slot(slot) => large
            .get(*slot)
            .and_then(Option::as_deref)
            .unwrap_or_default(),
    }
}

fn within(key: &[u8], bounds: &(Bound<&[u8]>, Bound<&[u8]>)) -> bool {
    let above = match bounds.0 {
        Bound::Included(start) => key_cmp(key, start) != Ordering::Less,
        Bound::Excluded(start) => key_cmp(key, start) == Ordering::Greater,
        Bound::Unbounded => true,
    };
    let below = match bounds.1 {
        Bound::Included(end) => key_cmp(key, end) != Ordering::Greater,
        Bound::Excluded(end) => key_cmp(key, end) == Ordering::Less,
        Bound::Unbounded => true,
    };
    above && below
}

impl Committed {
    /// Storage that folds its recent changes into blocks once there are more than `limit`.
    pub(crate) fn with_recent_limit(recent_limit: usize) -> Committed {
        Committed {
            recent: BTreeMap::new(),
            blocks: Vec::new(),
            large: Vec::new(),
            free_slots: Vec::new(),
            recent_limit,
        }
    }

    /// The index of the block that holds (or would hold) `key`.
    fn block_for(&self, key: &[u8]) -> usize {
        self.blocks
            .partition_point(|block| key_cmp(block.first(), key) != Ordering::Greater)
            .saturating_sub(1)
    }

    /// The value at `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(change) = self.recent.get(key) {
            return change.as_ref().map(|value| value.to_vec());
        }
        let block = self.blocks.get(self.block_for(key))?;
        let mut found = None;
        walk(
            block,
            &mut |entry_key, value| match key_cmp(entry_key, key) {
                core::cmp::Ordering::Less => true,
                core::cmp::Ordering::Equal => {
                    found = Some(value_bytes(&block.data, &self.large, &value).to_vec());
                    false
                }
                // Keys are sorted: past it, it is not there.
                core::cmp::Ordering::Greater => false,
            },
        );
        found
    }

    /// Every entry in `bounds`, in key order (`reverse`: descending), up to `limit`, lazily:
    /// `visit` is called with each until it returns false.
    pub(crate) fn scan(
        &self,
        bounds: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        if !reverse {
            self.scan_forward(bounds, visit);
            return;
        }
        let mut recent = self.recent.range::<[u8], _>(bounds);
        let mut next_recent = || {
            if reverse {
                recent.next_back()
            } else {
                recent.next()
            }
        };
        let mut pending_recent = next_recent();
        // Blocks in order, decoded one at a time.
        let first_block = match (reverse, bounds) {
            (false, (Bound::Included(start) | Bound::Excluded(start), _)) => self.block_for(start),
            (false, _) => 0,
            (true, (_, Bound::Included(end) | Bound::Excluded(end))) => self.block_for(end),
            (true, _) => self.blocks.len().saturating_sub(1),
        };
        let mut block_index = first_block;
        let mut decoded: Vec<(Vec<u8>, ValueAt)> = Vec::new();
        let mut position = 0usize;
        let load = |index: usize, decoded: &mut Vec<(Vec<u8>, ValueAt)>| -> bool {
            match self.blocks.get(index) {
                Some(block) => {
                    *decoded = decode_keys(block);
                    if reverse {
                        decoded.reverse();
                    }
                    true
                }
                None => false,
            }
        };
        let mut blocks_left = load(block_index, &mut decoded);
        loop {
            // The next block entry within bounds.
            let mut found = false;
            while blocks_left {
                match decoded.get(position) {
                    Some(entry) => {
                        let key = entry.0.as_slice();
                        let past = if reverse {
                            match bounds.0 {
                                Bound::Included(start) => key_cmp(key, start) == Ordering::Less,
                                Bound::Excluded(start) => key_cmp(key, start) != Ordering::Greater,
                                Bound::Unbounded => false,
                            }
                        } else {
                            match bounds.1 {
                                Bound::Included(end) => key_cmp(key, end) == Ordering::Greater,
                                Bound::Excluded(end) => key_cmp(key, end) != Ordering::Less,
                                Bound::Unbounded => false,
                            }
                        };
                        if past {
                            blocks_left = false;
                        } else if within(key, &bounds) {
                            found = true;
                            break;
                        } else {
                            position += 1;
                        }
                    }
                    None => {
                        position = 0;
                        if reverse {
                            if block_index == 0 {
                                blocks_left = false;
                            } else {
                                block_index -= 1;
                                blocks_left = load(block_index, &mut decoded);
                            }
                        } else {
                            block_index += 1;
                            blocks_left = load(block_index, &mut decoded);
                        }
                    }
                }
            }
            let block_entry = if found { decoded.get(position) } else { None };
            let take_block = match (block_entry, pending_recent) {
                (None, None) => return,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((block_key, _)), Some((recent_key, _))) => {
                    let order = key_cmp(block_key, recent_key);
                    if order == core::cmp::Ordering::Equal {
                        // The recent change replaces the block's entry.
                        position += 1;
                        false
                    } else {
                        (order == core::cmp::Ordering::Less) != reverse
                    }
                }
            };
            if take_block {
                if let Some((key, value)) = block_entry {
                    let data = self
                        .blocks
                        .get(block_index)
                        .map_or(&[][..], |block| &block.data[..]);
                    if !visit(key, value_bytes(data, &self.large, value)) {
                        return;
                    }
                }
                position += 1;
            } else {
                if let Some((key, Some(value))) = pending_recent {
                    if !visit(key, value) {
                        return;
                    }
                }
                pending_recent = next_recent();
            }
        }
    }

    /// [`Committed::scan`] in key order: each block is walked where it lies, without copying
    /// its keys, and merged with the recent changes.
    fn scan_forward(
        &self,
        bounds: (Bound<&[u8]>, Bound<&[u8]>),
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        let mut recent = self.recent.range::<[u8], _>(bounds).peekable();
        let first_block = match bounds.0 {
            Bound::Included(start) | Bound::Excluded(start) => self.block_for(start),
            Bound::Unbounded => 0,
        };
        let mut stopped = false;
        for block in self.blocks.get(first_block..).unwrap_or_default() {
            let mut past = false;
            walk(block, &mut |key, value| {
                let before = match bounds.0 {
                    Bound::Included(start) => key_cmp(key, start) == Ordering::Less,
                    Bound::Excluded(start) => key_cmp(key, start) != Ordering::Greater,
                    Bound::Unbounded => false,
                };
                if before {
                    return true;
                }
                past = match bounds.1 {
                    Bound::Included(end) => key_cmp(key, end) == Ordering::Greater,
                    Bound::Excluded(end) => key_cmp(key, end) != Ordering::Less,
                    Bound::Unbounded => false,
                };
                if past {
                    return false;
                }
                // Recent changes before this key come first; one at this key replaces it.
                while let Some((recent_key, recent_value)) = recent.peek() {
                    let recent_bytes: &[u8] = recent_key;
                    let order = key_cmp(recent_bytes, key);
                    if order == core::cmp::Ordering::Greater {
                        break;
                    }
                    if let Some(recent_value) = recent_value {
                        if !visit(recent_key, recent_value) {
                            stopped = true;
                            return false;
                        }
                    }
                    recent.next();
                    if order == core::cmp::Ordering::Equal {
                        return true;
                    }
                }
                if !visit(key, value_bytes(&block.data, &self.large, &value)) {
                    stopped = true;
                    return false;
                }
                true
            });
            if stopped || past {
                break;
            }
        }
        if stopped {
            return;
        }
        for (key, value) in recent {
            if let Some(value) = value {
                if !visit(key, value) {
                    return;
                }
            }
        }
    }

    /// Applies a committed transaction's writes.
    pub(crate) fn apply(&mut self, writes: BTreeMap<Key, Option<Box<[u8]>>>) {
        for (key, value) in writes {
            self.recent.insert(key, value);
        }
        // A fold costs about as much as there are blocks (their first keys are read, and each
        // block with a change is written again), so the recent changes may grow with the blocks:
        // folding once per two changes a block keeps the cost per change constant.
        if self.recent.len() > self.recent_limit.max(self.blocks.len() * 2) {
            self.fold();
        }
    }

    /// Folds the recent changes into the blocks: the blocks they touch are written again, the
    /// others are kept as they are.
    fn fold(&mut self) {
        let recent = core::mem::take(&mut self.recent);
        let old = core::mem::take(&mut self.blocks);
        let mut changes = recent.into_iter().peekable();
        let mut blocks: Vec<Block> = Vec::with_capacity(old.len() + 1);
        let mut merged = Merged::default();
        let mut old = old.into_iter().peekable();
        while let Some(block) = old.next() {
            // This block's changes: those below the next block's first key (the last block
            // takes all that remain; the first also those below its own first key).
            let upper = old.peek().map(Block::first);
            let mine = |key: &[u8]| upper.is_none_or(|upper| key_cmp(key, upper) == Ordering::Less);
            if !changes.peek().is_some_and(|(key, _)| mine(key)) {
                blocks.push(block);
                continue;
            }
            merged.clear();
            walk(&block, &mut |key, value| {
                // The changes before this entry, and the one replacing or deleting it.
                let mut replaced = false;
                while let Some((change, _)) = changes.peek() {
                    if !mine(change) || key_cmp(change, key) == Ordering::Greater {
                        break;
                    }
                    replaced = **change == *key;
                    if let Some((change, Some(new))) = changes.next() {
                        self.keep(&change, new, &mut merged);
                    }
                    if replaced {
                        break;
                    }
                }
                match value {
                    // Replaced or deleted: its slot, if it has one, is free again.
                    ValueAt::Slot(slot) if replaced => self.release(slot),
                    _ if replaced => {}
                    ValueAt::Slot(slot) => merged.push_slot(key, slot),
                    ValueAt::Inline(span) => {
                        merged.push_inline(key, block.data.get(span).unwrap_or_default());
                    }
                }
                true
            });
            while changes.peek().is_some_and(|(key, _)| mine(key)) {
                if let Some((change, Some(new))) = changes.next() {
                    self.keep(&change, new, &mut merged);
                }
            }
            merged.write_blocks(&mut blocks);
        }
        // Without blocks before, every change is new.
        merged.clear();
        for (key, value) in changes {
            if let Some(value) = value {
                self.keep(&key, value, &mut merged);
            }
        }
        merged.write_blocks(&mut blocks);
        self.blocks = blocks;
    }

    /// Adds a changed entry to `merged`: a large value is moved into a slot, a small one copied.
    fn keep(&mut self, key: &[u8], value: Box<[u8]>, merged: &mut Merged) {
        if value.len() <= LARGE_VALUE {
            merged.push_inline(key, &value);
            return;
        }
        if let Some(slot) = self.free_slots.pop() {
            if let Some(place) = self.large.get_mut(slot) {
                *place = Some(value);
                merged.push_slot(key, slot);
                return;
            }
        }
        self.large.push(Some(value));
        merged.push_slot(key, self.large.len() - 1);
    }

    /// Frees the slot of a value whose entry is gone.
    fn release(&mut self, slot: usize) {
        if self.large.get_mut(slot).and_then(Option::take).is_some() {
            self.free_slots.push(slot);
        }
    }

    /// Checks that every occupied slot is referred to by exactly one block entry, and every
    /// free one is in the free list; returns how many slots are occupied and how many there are.
    #[cfg(test)]
    pub(crate) fn check_slots(&self) -> (usize, usize) {
        let mut referred = alloc::vec![0usize; self.large.len()];
        for block in &self.blocks {
            walk(block, &mut |_, value| {
                if let ValueAt::Slot(slot) = value {
                    assert!(slot < referred.len(), "slot {slot} out of range");
                    referred[slot] += 1;
                }
                true
            });
        }
        let mut free = self.free_slots.clone();
        free.sort_unstable();
        let mut empty = Vec::new();
        for (slot, value) in self.large.iter().enumerate() {
            match value {
                Some(_) => assert_eq!(referred[slot], 1, "slot {slot} referred to"),
                None => {
                    assert_eq!(referred[slot], 0, "free slot {slot} referred to");
                    empty.push(slot);
                }
            }
        }
        assert_eq!(free, empty, "free list");
        (self.large.len() - empty.len(), self.large.len())
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        let mut count = 0;
        self.scan((Bound::Unbounded, Bound::Unbounded), false, &mut |_, _| {
            count += 1;
            true
        });
        count
    }

    /// Bytes of keys and values held.
    pub(crate) fn bytes(&self) -> usize {
        let mut total = 0;
        self.scan(
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |key, value| {
                total += key.len() + value.len();
                true
            },
        );
        total
    }
}

#[cfg(test)]
mod tests {
    use super::{key_cmp, shared_prefix};
    use alloc::vec::Vec;

    /// Shared prefixes, counted eight bytes at a time, end at the first differing byte.
    #[test]
    fn shared_prefixes_are_counted_to_the_byte() {
        let text = b"Observation/code/http://loinc.org|8302-2/0000042";
        for a_len in 0..text.len() {
            for b_len in 0..text.len() {
                let (a, mut b) = (&text[..a_len], text[..b_len].to_vec());
                let common = a_len.min(b_len);
                assert_eq!(shared_prefix(a, &b), common);
                for at in 0..common {
                    b[at] ^= 0x20;
                    assert_eq!(shared_prefix(a, &b), at, "{a_len} {b_len} {at}");
                    b[at] ^= 0x20;
                }
            }
        }
    }

    /// Keys compared eight bytes at a time order as bytes do: shared prefixes of every length,
    /// a difference at each position, the high bit set, one key a prefix of the other.
    #[test]
    fn keys_compare_as_bytes_do() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let a: Vec<u8> = (0..len).map(|_| (next() % 4) as u8 * 0x41).collect();
            let mut b = a.clone();
            match next() % 4 {
                0 => b.truncate((next() % (len as u64 + 1)) as usize),
                1 => b.push((next() % 256) as u8),
                2 if len > 0 => {
                    let at = (next() % len as u64) as usize;
                    b[at] = (next() % 256) as u8;
                }
                _ => {}
            }
            assert_eq!(key_cmp(&a, &b), a.as_slice().cmp(&b), "{a:?} {b:?}");
            assert_eq!(key_cmp(&b, &a), b.as_slice().cmp(&a), "{b:?} {a:?}");
        }
    }
}

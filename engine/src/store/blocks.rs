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
use core::ops::{Bound, Range};

/// A recent change: the key, and its new value or `None` for a deletion.
type Change = (Box<[u8]>, Option<Box<[u8]>>);

/// An entry while blocks are written again: its key and its value.
type Stored = (Vec<u8>, Value);

/// A value while blocks are written again: its bytes, or the slot that holds them.
enum Value {
    Inline(Vec<u8>),
    Slot(usize),
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
    recent: BTreeMap<Box<[u8]>, Option<Box<[u8]>>>,
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

fn encode(entries: &[Stored]) -> Block {
    let mut data = Vec::new();
    let mut previous: &[u8] = &[];
    for (key, value) in entries {
        let shared = previous
            .iter()
            .zip(key.iter())
            .take_while(|(a, b)| a == b)
            .count();
        push_varint(&mut data, shared);
        push_varint(&mut data, key.len() - shared);
        data.extend_from_slice(&key[shared..]);
        match value {
            Value::Inline(bytes) => {
                push_varint(&mut data, bytes.len() << 1);
                data.extend_from_slice(bytes);
            }
            Value::Slot(slot) => push_varint(&mut data, (slot << 1) | 1),
        }
        previous = key;
    }
    Block {
        data: data.into_boxed_slice(),
    }
}

/// Writes `entries` as one block, or, past [`MAX_BLOCK_ENTRIES`], as blocks of even size.
fn push_blocks(entries: &[Stored], blocks: &mut Vec<Block>) {
    if entries.is_empty() {
        return;
    }
    let parts = if entries.len() <= MAX_BLOCK_ENTRIES {
        1
    } else {
        entries.len().div_ceil(BLOCK_ENTRIES)
    };
    let size = entries.len().div_ceil(parts);
    for chunk in entries.chunks(size) {
        blocks.push(encode(chunk));
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

/// A block's entries, owned (large values stay in their slots).
fn decode(block: &Block) -> Vec<Stored> {
    let mut entries = Vec::new();
    walk(block, &mut |key, value| {
        let value = match value {
            ValueAt::Inline(span) => {
                Value::Inline(block.data.get(span).unwrap_or_default().to_vec())
            }
            ValueAt::Slot(slot) => Value::Slot(slot),
        };
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
        Bound::Included(start) => key >= start,
        Bound::Excluded(start) => key > start,
        Bound::Unbounded => true,
    };
    let below = match bounds.1 {
        Bound::Included(end) => key <= end,
        Bound::Excluded(end) => key < end,
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
            .partition_point(|block| block.first() <= key)
            .saturating_sub(1)
    }

    /// The value at `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(change) = self.recent.get(key) {
            return change.as_ref().map(|value| value.to_vec());
        }
        let block = self.blocks.get(self.block_for(key))?;
        let mut found = None;
        walk(block, &mut |entry_key, value| match entry_key.cmp(key) {
            core::cmp::Ordering::Less => true,
            core::cmp::Ordering::Equal => {
                found = Some(value_bytes(&block.data, &self.large, &value).to_vec());
                false
            }
            // Keys are sorted: past it, it is not there.
            core::cmp::Ordering::Greater => false,
        });
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
                                Bound::Included(start) => key < start,
                                Bound::Excluded(start) => key <= start,
                                Bound::Unbounded => false,
                            }
                        } else {
                            match bounds.1 {
                                Bound::Included(end) => key > end,
                                Bound::Excluded(end) => key >= end,
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
                    let order = block_key.as_slice().cmp(recent_key);
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
                    Bound::Included(start) => key < start,
                    Bound::Excluded(start) => key <= start,
                    Bound::Unbounded => false,
                };
                if before {
                    return true;
                }
                past = match bounds.1 {
                    Bound::Included(end) => key > end,
                    Bound::Excluded(end) => key >= end,
                    Bound::Unbounded => false,
                };
                if past {
                    return false;
                }
                // Recent changes before this key come first; one at this key replaces it.
                while let Some((recent_key, recent_value)) = recent.peek() {
                    let recent_bytes: &[u8] = recent_key;
                    let order = recent_bytes.cmp(key);
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
    pub(crate) fn apply(&mut self, writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        for (key, value) in writes {
            self.recent
                .insert(key.into_boxed_slice(), value.map(Vec::into_boxed_slice));
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
        let firsts: Vec<Box<[u8]>> = old.iter().map(|block| Box::from(block.first())).collect();
        let mut changes = recent.into_iter().peekable();
        let mut blocks: Vec<Block> = Vec::with_capacity(old.len() + 1);
        for (index, block) in old.into_iter().enumerate() {
            // This block's changes: those below the next block's first key (the last block
            // takes all that remain; the first also those below its own first key).
            let upper = firsts.get(index + 1);
            let mut mine: Vec<Change> = Vec::new();
            while changes
                .peek()
                .is_some_and(|(key, _)| upper.is_none_or(|upper| key < upper))
            {
                if let Some(change) = changes.next() {
                    mine.push(change);
                }
            }
            if mine.is_empty() {
                blocks.push(block);
                continue;
            }
            let mut merged: Vec<Stored> = Vec::new();
            let mut entries = decode(&block).into_iter().peekable();
            let mut mine = mine.into_iter().peekable();
            loop {
                let take_entry = match (entries.peek(), mine.peek()) {
                    (None, None) => break,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (Some((key, _)), Some((change, _))) => {
                        if key.as_slice() == &**change {
                            // Replaced or deleted: its slot, if it has one, is free again.
                            if let Some((_, value)) = entries.next() {
                                self.release(value);
                            }
                            false
                        } else {
                            key.as_slice() < &**change
                        }
                    }
                };
                if take_entry {
                    if let Some(entry) = entries.next() {
                        merged.push(entry);
                    }
                } else if let Some((key, Some(value))) = mine.next() {
                    let value = self.keep(value);
                    merged.push((key.into_vec(), value));
                }
            }
            push_blocks(&merged, &mut blocks);
        }
        // Without blocks before, every change is new.
        let mut rest: Vec<Stored> = Vec::new();
        for (key, value) in changes {
            if let Some(value) = value {
                let value = self.keep(value);
                rest.push((key.into_vec(), value));
            }
        }
        push_blocks(&rest, &mut blocks);
        self.blocks = blocks;
    }

    /// A value about to be written into a block: a large one is moved into a slot.
    fn keep(&mut self, value: Box<[u8]>) -> Value {
        if value.len() <= LARGE_VALUE {
            return Value::Inline(value.into_vec());
        }
        if let Some(slot) = self.free_slots.pop() {
            if let Some(place) = self.large.get_mut(slot) {
                *place = Some(value);
                return Value::Slot(slot);
            }
        }
        self.large.push(Some(value));
        Value::Slot(self.large.len() - 1)
    }

    /// Frees the slot of a value whose entry is gone.
    fn release(&mut self, value: Value) {
        if let Value::Slot(slot) = value {
            if self.large.get_mut(slot).and_then(Option::take).is_some() {
                self.free_slots.push(slot);
            }
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

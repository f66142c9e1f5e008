//! The committed data of a [`super::MemoryStore`], kept compact: sorted blocks of entries
//! whose keys share their prefix with the key before them (search index keys share all but
//! their last bytes), plus a small table of recent changes that is folded into the blocks when
//! it grows.
//!
//! An entry in a block: varint(length of the prefix shared with the previous key), varint(length
//! of the rest), the rest of the key, varint(length of the value), the value.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ops::{Bound, Range};

use super::Entry;

/// A recent change: the key, and its new value or `None` for a deletion.
type Change = (Box<[u8]>, Option<Box<[u8]>>);

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

fn encode(entries: &[Entry]) -> Block {
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
        push_varint(&mut data, value.len());
        data.extend_from_slice(value);
        previous = key;
    }
    Block {
        data: data.into_boxed_slice(),
    }
}

/// Writes `entries` as one block, or, past [`MAX_BLOCK_ENTRIES`], as blocks of even size.
fn push_blocks(entries: &[Entry], blocks: &mut Vec<Block>) {
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

/// Walks a block's entries in order: `visit` gets each key and where its value lies in the
/// block's data, and returns false to stop.
fn walk(block: &Block, visit: &mut dyn FnMut(&[u8], Range<usize>) -> bool) {
    let data = &block.data;
    let mut at = 0;
    let mut key: Vec<u8> = Vec::new();
    while at < data.len() {
        let shared = read_varint(data, &mut at);
        let rest = read_varint(data, &mut at);
        key.truncate(shared);
        key.extend_from_slice(data.get(at..at + rest).unwrap_or_default());
        at += rest;
        let value_len = read_varint(data, &mut at);
        if !visit(&key, at..at + value_len) {
            return;
        }
        at += value_len;
    }
}

/// A block's keys, each with where its value lies in the block's data.
fn decode_keys(block: &Block) -> Vec<(Vec<u8>, Range<usize>)> {
    let mut entries = Vec::new();
    walk(block, &mut |key, span| {
        entries.push((key.to_vec(), span));
        true
    });
    entries
}

/// A block's entries, owned.
fn decode(block: &Block) -> Vec<Entry> {
    decode_keys(block)
        .into_iter()
        .map(|(key, span)| {
            let value = block.data.get(span).unwrap_or_default().to_vec();
            (key, value)
        })
        .collect()
}

/// The value at `wanted` in a block, read without decoding the other values.
fn find(block: &Block, wanted: &[u8]) -> Option<Vec<u8>> {
    let mut found = None;
    walk(block, &mut |key, span| match key.cmp(wanted) {
        core::cmp::Ordering::Less => true,
        core::cmp::Ordering::Equal => {
            found = block.data.get(span).map(<[u8]>::to_vec);
            false
        }
        // Keys are sorted: past it, it is not there.
        core::cmp::Ordering::Greater => false,
    });
    found
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
        find(self.blocks.get(self.block_for(key))?, key)
    }

    /// Every entry in `bounds`, in key order (`reverse`: descending), up to `limit`, lazily:
    /// `visit` is called with each until it returns false.
    pub(crate) fn scan(
        &self,
        bounds: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
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
        let mut decoded: Vec<(Vec<u8>, Range<usize>)> = Vec::new();
        let mut position = 0usize;
        let load = |index: usize, decoded: &mut Vec<(Vec<u8>, Range<usize>)>| -> bool {
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
                if let Some((key, span)) = block_entry {
                    let data = self
                        .blocks
                        .get(block_index)
                        .map_or(&[][..], |block| &block.data[..]);
                    if !visit(key, data.get(span.clone()).unwrap_or_default()) {
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

    /// Applies a committed transaction's writes.
    pub(crate) fn apply(&mut self, writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        for (key, value) in writes {
            self.recent
                .insert(key.into_boxed_slice(), value.map(Vec::into_boxed_slice));
        }
        if self.recent.len() > self.recent_limit {
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
            let mut merged: Vec<Entry> = Vec::new();
            let mut entries = decode(&block).into_iter().peekable();
            let mut mine = mine.into_iter().peekable();
            loop {
                let take_entry = match (entries.peek(), mine.peek()) {
                    (None, None) => break,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (Some((key, _)), Some((change, _))) => {
                        if key.as_slice() == &**change {
                            entries.next();
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
                    merged.push((key.into_vec(), value.into_vec()));
                }
            }
            push_blocks(&merged, &mut blocks);
        }
        // Without blocks before, every change is new.
        let rest: Vec<Entry> = changes
            .filter_map(|(key, value)| value.map(|value| (key.into_vec(), value.into_vec())))
            .collect();
        push_blocks(&rest, &mut blocks);
        self.blocks = blocks;
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

//! Bloom filters over the keys of a page that are read one at a time, kept beside the page in
//! the directory of a [`super::PagedStore`]: a read of such a key (one with a prefix the
//! directory lists) that a page does not hold skips the page, asking nothing of the backend,
//! unless the filter answers a false positive. Every new
//! resource's current-version and row-number keys are looked up, in each run, before it is
//! written; without filters an import of new resources read a page of every run for each.
//!
//! **Invariant:** a filter never answers "absent" for a key added to it (no false negatives).

use alloc::vec;
use alloc::vec::Vec;

/// Bits per key: about 0.05% false positives with [`PROBES`] probes. A false positive reads
/// the page (from the backend, unless cached), and an import looks for two keys a resource in
/// every run.
const BITS_PER_KEY: usize = 16;
/// Bits looked at per key.
const PROBES: u64 = 11;

/// The hash of `key` that filters are built from and probed with: each eight bytes folded in
/// and mixed through, so that no change in one word can be undone by one in the next.
pub(super) fn key_hash(key: &[u8]) -> u64 {
    let mut hash = mix(0x243f_6a88_85a3_08d3 ^ key.len() as u64);
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        hash = mix(hash ^ u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or_default()));
    }
    let mut tail = [0u8; 8];
    for (slot, byte) in tail.iter_mut().zip(words.remainder()) {
        *slot = *byte;
    }
    mix(hash ^ u64::from_le_bytes(tail))
}

/// A bijection of 64-bit words in which each input bit changes about half the output bits
/// (the finishing step of SplitMix64).
fn mix(mut word: u64) -> u64 {
    word = (word ^ (word >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    word = (word ^ (word >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    word ^ (word >> 31)
}

/// The bits a key of `hash` sets in a filter of `bits` bits (double hashing).
fn probes(hash: u64, bits: u64) -> impl Iterator<Item = u64> {
    let (first, step) = (hash & 0xffff_ffff, (hash >> 32) | 1);
    (0..PROBES).map(move |probe| first.wrapping_add(probe.wrapping_mul(step)) % bits)
}

/// A filter holding the keys of `hashes`.
pub(super) fn build(hashes: &[u64]) -> Vec<u8> {
    let bytes = (hashes.len() * BITS_PER_KEY).div_ceil(8).max(8);
    let mut res = vec![0u8; bytes];
    let bits = bytes as u64 * 8;
    for &hash in hashes {
        for bit in probes(hash, bits) {
            if let Some(byte) = res.get_mut((bit / 8) as usize) {
                *byte |= 1 << (bit % 8);
            }
        }
    }
    res
}

/// Whether the key of `hash` may be among those `filter` was built from (an empty filter,
/// as a damaged one might be, holds everything).
pub(super) fn may_hold(filter: &[u8], hash: u64) -> bool {
    let bits = filter.len() as u64 * 8;
    bits == 0
        || probes(hash, bits).all(|bit| {
            filter
                .get((bit / 8) as usize)
                .is_some_and(|byte| byte & (1 << (bit % 8)) != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    /// Every key a filter was built from is held; of keys it was not, few are taken for held
    /// (about 0.05% with sixteen bits a key; a small filter has at least 64 bits).
    #[test]
    fn filters_hold_their_keys_and_few_others() {
        for count in [1usize, 7, 180, 2000] {
            let keys: Vec<Vec<u8>> = (0..count)
                .map(|n| format!("c\0Observation\0{n:08x}-5c1e-4b7a-9d2e").into_bytes())
                .collect();
            let hashes: Vec<u64> = keys.iter().map(|key| key_hash(key)).collect();
            let filter = build(&hashes);
            assert!(keys.iter().all(|key| may_hold(&filter, key_hash(key))));
            let others = 20_000;
            let false_positives = (0..others)
                .filter(|n| {
                    let key = format!("c\0Observation\0{:08x}-5c1e-4b7a-9d2f", n + count);
                    may_hold(&filter, key_hash(key.as_bytes()))
                })
                .count();
            let limit = if count < 10 {
                others / 100
            } else {
                others / 500
            };
            assert!(
                false_positives < limit,
                "{count} keys: {false_positives} of {others}"
            );
        }
        assert!(may_hold(&[], key_hash(b"anything")));
    }

    /// Keys differing in one bit, or only in length, hash apart.
    #[test]
    fn hashes_tell_near_keys_apart() {
        let key = b"r\0Patient\0f2a6e3a4-0c43-4f58-bf58-476d1ce4e5b9".to_vec();
        let mut seen = alloc::collections::BTreeSet::new();
        seen.insert(key_hash(&key));
        for at in 0..key.len() {
            for bit in 0..8 {
                let mut near = key.clone();
                near[at] ^= 1 << bit;
                assert!(seen.insert(key_hash(&near)), "{at} {bit}");
            }
        }
        // Two bits four bytes apart, in one word or in two.
        for at in 0..key.len().saturating_sub(8) {
            for (bit, other) in [(7, 4), (7, 3), (6, 3), (0, 0)] {
                let mut near = key.clone();
                near[at] ^= 1 << bit;
                near[at + 4] ^= 1 << other;
                assert!(seen.insert(key_hash(&near)), "{at} {bit} {other}");
            }
        }
        for len in 0..key.len() {
            assert!(seen.insert(key_hash(&key[..len])), "{len}");
        }
        let mut longer = key.clone();
        longer.push(0);
        assert!(seen.insert(key_hash(&longer)));
    }
}

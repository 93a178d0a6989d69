//! Where keys live: their stable hash (and so their partition), and key ranges for scans.
//!
//! Partitions are contiguous ranges of the 64-bit key hash (the top bits), whatever the partition
//! count. Storage keeps each key's hash in an order-preserving signed form so that one range query
//! lists, hashes or streams any partition of any ring size.

use std::ops::{Bound, RangeInclusive};

use bytes::Bytes;

/// The stable hash of a key: hashring's xxh3-64, identical in every process and version.
pub fn key_hash(key: &[u8]) -> u64 {
    ringkit_hashring::key_hash(key)
}

/// Maps a hash to an `i64` with the same order (SQLite integers are signed).
pub fn hash_to_sortable(hash: u64) -> i64 {
    (hash ^ (1 << 63)) as i64
}

/// Inverse of [`hash_to_sortable`].
pub fn sortable_to_hash(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// An inclusive range of key hashes: one partition, several, or a Merkle-tree leaf.
pub type HashRange = RangeInclusive<u64>;

/// The hash range of partition `index` when the space is cut into `2^bits` equal partitions.
///
/// Returns `None` if `bits > 64` or `index` is out of range.
pub fn partition_hash_range(bits: u32, index: u64) -> Option<HashRange> {
    match bits {
        0 => (index == 0).then_some(0..=u64::MAX),
        1..=64 => {
            let shift = 64 - bits;
            if bits < 64 && index >= (1u64 << bits) {
                return None;
            }
            let start = index << shift;
            Some(start..=start + ((1u64 << shift) - 1))
        }
        _ => None,
    }
}

/// A range of keys in byte order, for scans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// Lower bound.
    pub start: Bound<Bytes>,
    /// Upper bound.
    pub end: Bound<Bytes>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Keys that start with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        Self {
            start: Bound::Included(Bytes::copy_from_slice(prefix)),
            end: match prefix_successor(prefix) {
                Some(end) => Bound::Excluded(Bytes::from(end)),
                None => Bound::Unbounded,
            },
        }
    }

    /// Keys in `[start, end)`; an empty `end` means no upper bound.
    pub fn half_open(start: &[u8], end: &[u8]) -> Self {
        Self {
            start: Bound::Included(Bytes::copy_from_slice(start)),
            end: if end.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(Bytes::copy_from_slice(end))
            },
        }
    }

    /// The same range, resumed strictly after `key` (cursor pagination).
    pub fn after(&self, key: Bytes) -> Self {
        let start = match &self.start {
            Bound::Included(s) | Bound::Excluded(s) if *s > key => self.start.clone(),
            _ => Bound::Excluded(key),
        };
        Self {
            start,
            end: self.end.clone(),
        }
    }

    /// True when `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let lower = match &self.start {
            Bound::Included(s) => key >= s.as_ref(),
            Bound::Excluded(s) => key > s.as_ref(),
            Bound::Unbounded => true,
        };
        let upper = match &self.end {
            Bound::Included(e) => key <= e.as_ref(),
            Bound::Excluded(e) => key < e.as_ref(),
            Bound::Unbounded => true,
        };
        lower && upper
    }
}

/// The smallest byte string greater than every string with this prefix, if one exists.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_hash_preserves_order() {
        let hashes = [0u64, 1, (1 << 63) - 1, 1 << 63, u64::MAX];
        for w in hashes.windows(2) {
            assert!(hash_to_sortable(w[0]) < hash_to_sortable(w[1]));
            assert_eq!(sortable_to_hash(hash_to_sortable(w[0])), w[0]);
        }
    }

    #[test]
    fn partitions_tile_the_space() {
        assert_eq!(partition_hash_range(0, 0), Some(0..=u64::MAX));
        assert_eq!(partition_hash_range(1, 1), Some((1 << 63)..=u64::MAX));
        assert_eq!(
            partition_hash_range(2, 1),
            Some((1 << 62)..=((1 << 63) - 1))
        );
        assert_eq!(partition_hash_range(2, 4), None);
        assert_eq!(partition_hash_range(64, 5), Some(5..=5));
        assert_eq!(partition_hash_range(65, 0), None);
    }

    #[test]
    fn prefix_ranges() {
        let r = KeyRange::prefix(b"ab");
        assert!(r.contains(b"ab") && r.contains(b"ab\xff\xff") && !r.contains(b"ac"));
        let r = KeyRange::prefix(b"a\xff");
        assert!(r.contains(b"a\xff\x00") && !r.contains(b"b"));
        assert!(KeyRange::prefix(b"\xff").contains(b"\xff\xff"));
        let resumed = KeyRange::prefix(b"a").after(Bytes::from_static(b"ab"));
        assert!(!resumed.contains(b"ab") && resumed.contains(b"abc"));
    }
}

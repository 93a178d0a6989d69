//! One shard of the keyed store: a dense slot vector indexed by a hash table of `u32` positions.
//!
//! Why not `HashMap<Box<[u8]>, State>`: a hash map sized for 1 M entries has 2 M buckets (load
//! factor 7/8, power-of-two sizes), and each bucket would be a 48-byte slot. Here each bucket is
//! 4 bytes plus hashbrown's control byte, and the 48-byte slots sit densely in a `Vec`. Removal
//! swaps the last slot into the hole, so the vector never fragments.

use hashbrown::HashTable;

use super::key::StoreKey;
use crate::algorithm::State;
use crate::clock::Timestamp;

/// A key and its state.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The key bytes, inline when short.
    pub(crate) key: StoreKey,
    /// The algorithm state.
    pub(crate) state: State,
}

/// Keys whose hash falls in this shard.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    /// Hash -> position in `slots`.
    index: HashTable<u32>,
    /// The keys and states, dense.
    pub(crate) slots: Vec<Slot>,
}

impl Shard {
    /// A shard with room for `capacity` keys before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Shard {
            index: HashTable::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
        }
    }

    /// Position of `key`, if held.
    #[inline]
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].key.as_bytes() == key)
            .map(|&i| i as usize)
    }

    /// Inserts a key known to be absent; returns its position.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: &[u8],
        state: State,
        hasher: &impl Fn(&[u8]) -> u64,
    ) -> usize {
        let pos = self.slots.len();
        self.slots.push(Slot {
            key: StoreKey::new(key),
            state,
        });
        let slots = &self.slots;
        self.index.insert_unique(hash, pos as u32, |&i| {
            hasher(slots[i as usize].key.as_bytes())
        });
        pos
    }

    /// Removes the slot at `pos`, moving the last slot into its place.
    pub(crate) fn remove_at(&mut self, pos: usize, hasher: &impl Fn(&[u8]) -> u64) -> Slot {
        let hash = hasher(self.slots[pos].key.as_bytes());
        if let Ok(entry) = self.index.find_entry(hash, |&i| i as usize == pos) {
            entry.remove();
        }
        let last = self.slots.len() - 1;
        if pos != last {
            let last_hash = hasher(self.slots[last].key.as_bytes());
            if let Some(i) = self.index.find_mut(last_hash, |&i| i as usize == last) {
                *i = pos as u32;
            }
        }
        self.slots.swap_remove(pos)
    }

    /// Removes every key whose state is as good as fresh at `now`; returns how many.
    pub(crate) fn evict_idle(&mut self, now: Timestamp, hasher: &impl Fn(&[u8]) -> u64) -> usize {
        let mut evicted = 0;
        let mut pos = 0;
        while pos < self.slots.len() {
            if self.slots[pos].state.fresh_at() <= now {
                self.remove_at(pos, hasher);
                evicted += 1;
            } else {
                pos += 1;
            }
        }
        evicted
    }

    /// Makes room for one key when the shard is at its maximum: evicts the sampled key whose
    /// state recovers soonest (an idle key if the sample holds one). Sampling positions from
    /// `seed` keeps this O(1), in the spirit of Redis's approximated LRU.
    pub(crate) fn evict_one(&mut self, seed: u64, hasher: &impl Fn(&[u8]) -> u64) -> bool {
        const SAMPLE: u64 = 8;
        let len = self.slots.len() as u64;
        if len == 0 {
            return false;
        }
        let mut best = (seed % len) as usize;
        for k in 1..SAMPLE.min(len) {
            // Fibonacci hashing spreads the sample over the whole vector.
            let pos = (seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % len) as usize;
            if self.slots[pos].state.fresh_at() < self.slots[best].state.fresh_at() {
                best = pos;
            }
        }
        self.remove_at(best, hasher);
        true
    }

    /// Bytes held by the table and the slot vector (not the keys).
    pub(crate) fn table_bytes(&self) -> usize {
        self.index.allocation_size() + self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    /// Bytes of key contents, and heap bytes of long keys and out-of-line state (sliding logs).
    pub(crate) fn key_and_heap_bytes(&self) -> (usize, usize) {
        self.slots.iter().fold((0, 0), |(k, h), s| {
            (
                k + s.key.as_bytes().len(),
                h + s.key.heap_bytes() + s.state.heap_bytes(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::TokenBucketState;

    fn h(k: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64(k)
    }

    #[test]
    fn insert_find_remove_keeps_index_consistent() {
        let mut shard = Shard::default();
        for i in 0..100u32 {
            let k = i.to_be_bytes();
            shard.insert(
                h(&k),
                &k,
                State::TokenBucket(TokenBucketState::default()),
                &h,
            );
        }
        for i in (0..100u32).step_by(3) {
            let k = i.to_be_bytes();
            let pos = shard.find(h(&k), &k).unwrap();
            let slot = shard.remove_at(pos, &h);
            assert_eq!(slot.key.as_bytes(), k);
        }
        for i in 0..100u32 {
            let k = i.to_be_bytes();
            assert_eq!(shard.find(h(&k), &k).is_some(), i % 3 != 0, "key {i}");
        }
        assert_eq!(shard.slots.len(), 66);
    }

    #[test]
    fn slot_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 48);
    }
}

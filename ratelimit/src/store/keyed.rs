//! [`KeyedStore`]: many keys, sharded, bounded.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::shard::Shard;
use crate::algorithm::{Decision, Limit, State};
use crate::clock::Timestamp;
use crate::error::Error;

/// Sizing of a [`KeyedStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Number of shards, a power of two. More shards, less lock contention; 64 keeps 2-16 cores
    /// apart while costing only 64 small tables.
    pub shards: usize,
    /// Most keys held at once. At the limit a new key evicts the sampled key whose state
    /// recovers soonest, so memory stays bounded under a key-flooding attack.
    pub max_keys: usize,
    /// Keys to reserve room for up front (spread over the shards), to avoid rehash pauses.
    pub initial_capacity: usize,
    /// Seed of the key hash. Keys come from requests, so the seed should be secret and random
    /// (the default) to keep an attacker from aiming many keys at one bucket.
    pub hash_seed: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            shards: 64,
            max_keys: 1_000_000,
            initial_capacity: 0,
            hash_seed: random_seed(),
        }
    }
}

impl StoreConfig {
    /// Checks the numbers.
    ///
    /// # Errors
    /// [`Error::Config`] when `shards` is not a power of two or `max_keys < shards`.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.shards.is_power_of_two() || self.shards > 1 << 16 {
            return Err(Error::Config(format!(
                "store shards must be a power of two up to 65536, not {}",
                self.shards
            )));
        }
        if self.max_keys < self.shards {
            return Err(Error::Config(format!(
                "store max_keys ({}) must be at least the number of shards ({})",
                self.max_keys, self.shards
            )));
        }
        Ok(())
    }
}

/// A random seed without a `rand` dependency: std's `RandomState` is seeded from the OS.
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64)
}

/// A shard aligned to a cache line, so two cores locking neighbouring shards do not contend.
#[derive(Debug)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// Memory figures of a store, from allocation sizes (not guesses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Keys held.
    pub keys: usize,
    /// Bytes of hash tables and slot vectors (capacity, not length).
    pub table_bytes: usize,
    /// Bytes of key contents (keys up to 22 bytes are stored inside the slot, so for them this
    /// is already counted in `table_bytes`).
    pub key_bytes: usize,
    /// Heap bytes besides the tables: keys longer than 22 bytes and sliding logs.
    pub heap_bytes: usize,
}

impl StoreStats {
    /// Bytes per key of everything the store allocated (tables, long keys, logs); short keys
    /// are included since they live in the slots.
    pub fn bytes_per_key(&self) -> f64 {
        if self.keys == 0 {
            0.0
        } else {
            (self.table_bytes + self.heap_bytes) as f64 / self.keys as f64
        }
    }
}

/// Per-key rate-limit state for any number of keys and policies.
///
/// Each key lives in one of `shards` mutex-guarded shards chosen by a seeded xxh3 hash; a check
/// hashes once, locks one shard, and runs the algorithm in place. Keys that consumed nothing
/// (a peek, a rejection) are not inserted. Idle keys, whose state equals a fresh key's, are
/// removed by [`KeyedStore::evict_idle`] without losing anything.
#[derive(Debug)]
pub struct KeyedStore {
    /// The shards.
    shards: Box<[Padded]>,
    /// `shards.len() - 1`.
    mask: u64,
    /// Maximum keys per shard (`max_keys / shards`, rounded up).
    per_shard_max: usize,
    /// Hash seed.
    seed: u64,
}

impl KeyedStore {
    /// A store sized by `config`.
    ///
    /// # Errors
    /// [`Error::Config`] if the config does not validate.
    pub fn new(config: StoreConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self::build(&config))
    }

    /// Builds from a validated config.
    fn build(config: &StoreConfig) -> Self {
        let per_shard_initial = config.initial_capacity.div_ceil(config.shards);
        let shards = (0..config.shards)
            .map(|_| Padded(Mutex::new(Shard::with_capacity(per_shard_initial))))
            .collect();
        KeyedStore {
            shards,
            mask: config.shards as u64 - 1,
            per_shard_max: config.max_keys.div_ceil(config.shards),
            seed: config.hash_seed,
        }
    }

    /// The seeded key hash.
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(key, self.seed)
    }

    /// The shard of a hash. Bits 32.. pick it: hashbrown uses the low bits for the bucket and
    /// the top seven for its tag, so taking either would leave part of every shard's table unused.
    #[inline]
    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        let i = ((hash >> 32) & self.mask) as usize;
        // A panic while holding a shard cannot leave a state half-written in a way that matters
        // more than losing the whole limiter, so poisoning is ignored.
        self.shards[i]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks `cost` units of `key` under `limit` at `now`, consuming them when allowed.
    /// Cost 0 peeks.
    #[inline]
    pub fn check(&self, key: &[u8], limit: &Limit, now: Timestamp, cost: u64) -> Decision {
        let hash = self.hash(key);
        let mut shard = self.shard(hash);
        if let Some(pos) = shard.find(hash, key) {
            return limit.check(&mut shard.slots[pos].state, now, cost);
        }
        let mut state = limit.fresh_state();
        let decision = limit.check(&mut state, now, cost);
        if decision.allowed && cost > 0 {
            let hasher = |k: &[u8]| self.hash(k);
            if shard.slots.len() >= self.per_shard_max {
                // First anything idle, then the key that recovers soonest.
                if shard.evict_idle(now, &hasher) == 0 {
                    shard.evict_one(hash.rotate_left(17), &hasher);
                }
            }
            shard.insert(hash, key, state, &hasher);
        }
        decision
    }

    /// Gives back `amount` units of `key` (no-op for a key not held).
    pub fn refund(&self, key: &[u8], limit: &Limit, now: Timestamp, amount: u64) {
        let hash = self.hash(key);
        let mut shard = self.shard(hash);
        if let Some(pos) = shard.find(hash, key) {
            limit.refund(&mut shard.slots[pos].state, now, amount);
        }
    }

    /// Removes `key`; returns whether it was held. The next check starts from a fresh budget.
    pub fn reset(&self, key: &[u8]) -> bool {
        let hash = self.hash(key);
        let mut shard = self.shard(hash);
        match shard.find(hash, key) {
            Some(pos) => {
                shard.remove_at(pos, &|k: &[u8]| self.hash(k));
                true
            }
            None => false,
        }
    }

    /// A copy of the state of `key`, if held (for the admin API's inspect).
    pub fn state(&self, key: &[u8]) -> Option<State> {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        shard
            .find(hash, key)
            .map(|pos| shard.slots[pos].state.clone())
    }

    /// Removes every key whose state is as good as fresh at `now` (nothing is lost); returns
    /// how many. Locks one shard at a time, so checks keep flowing during a sweep.
    pub fn evict_idle(&self, now: Timestamp) -> usize {
        let hasher = |k: &[u8]| self.hash(k);
        (0..self.shards.len())
            .map(|i| {
                let mut shard = self.shards[i]
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                shard.evict_idle(now, &hasher)
            })
            .sum()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.0.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .slots
                    .len()
            })
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory figures, walking every shard (O(keys): for metrics and benchmarks, not hot paths).
    pub fn stats(&self) -> StoreStats {
        let mut stats = StoreStats::default();
        for s in self.shards.iter() {
            let shard = s.0.lock().unwrap_or_else(PoisonError::into_inner);
            let (k, h) = shard.key_and_heap_bytes();
            stats.keys += shard.slots.len();
            stats.table_bytes += shard.table_bytes();
            stats.key_bytes += k;
            stats.heap_bytes += h;
        }
        stats.table_bytes += std::mem::size_of_val(&*self.shards);
        stats
    }
}

impl Default for KeyedStore {
    /// A store with [`StoreConfig::default`] (64 shards, at most 1 M keys).
    fn default() -> Self {
        Self::build(&StoreConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::algorithm::Algorithm;

    fn store(max_keys: usize) -> KeyedStore {
        KeyedStore::new(StoreConfig {
            shards: 4,
            max_keys,
            initial_capacity: 0,
            hash_seed: 7,
        })
        .unwrap()
    }

    fn limit() -> Limit {
        Limit::new(Algorithm::FixedWindow, 2, Duration::from_secs(1), None).unwrap()
    }

    #[test]
    fn keys_have_separate_budgets() {
        let s = store(100);
        let now = Timestamp::from_millis(10);
        assert!(s.check(b"a", &limit(), now, 2).allowed);
        assert!(!s.check(b"a", &limit(), now, 1).allowed);
        assert!(s.check(b"b", &limit(), now, 1).allowed);
        assert_eq!(s.len(), 2);
        assert!(s.reset(b"a"));
        assert!(s.check(b"a", &limit(), now, 1).allowed);
    }

    #[test]
    fn peeks_and_rejections_insert_nothing() {
        let s = store(100);
        let now = Timestamp::from_millis(10);
        assert!(s.check(b"a", &limit(), now, 0).allowed);
        assert!(!s.check(b"b", &limit(), now, 3).allowed);
        assert!(s.is_empty());
    }

    #[test]
    fn idle_keys_are_evicted_losslessly() {
        let s = store(100);
        for i in 0..10u8 {
            s.check(&[i], &limit(), Timestamp::from_millis(100), 1);
        }
        assert_eq!(s.evict_idle(Timestamp::from_millis(999)), 0);
        assert_eq!(s.evict_idle(Timestamp::from_millis(1_000)), 10);
        assert!(s.is_empty());
    }

    #[test]
    fn max_keys_is_enforced() {
        let s = store(8);
        let long = Limit::new(Algorithm::FixedWindow, 5, Duration::from_secs(3600), None).unwrap();
        for i in 0..100u32 {
            s.check(
                &i.to_be_bytes(),
                &long,
                Timestamp::from_millis(u64::from(i)),
                1,
            );
        }
        assert!(s.len() <= 8, "{}", s.len());
        let stats = s.stats();
        assert_eq!(stats.key_bytes, 4 * stats.keys);
    }
}

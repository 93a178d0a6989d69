//! The in-memory twin of the SQLite engine, for deterministic simulations and fast tests.
//!
//! Same contract, same write resolution (through [`apply_op`]), same digests; work runs inline on
//! the caller's thread, which is what a single-threaded turmoil simulation wants. Clones share
//! the data, so a simulated crash-and-restart can keep the "disk" by keeping a clone.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bytes::Bytes;

use super::api::{
    DataStats, HintBacklog, HintEntry, RangeSummary, ReadJob, ReadView, RowEntry, Storage,
    WriteDone, WriteRequest, WriterStats,
};
use super::apply::{RowWriter, apply_op};
use crate::error::KvError;
use crate::model::{
    ActorId, DotIssuer, HashRange, KeyRange, Object, Timestamp, encode_object, key_hash, row_digest,
};

/// One stored key.
#[derive(Clone, Debug)]
struct Row {
    /// The key's hash.
    hash: u64,
    /// Its state.
    object: Object,
    /// Digest of the canonical encoding (same as SQLite's).
    digest: u64,
    /// Encoded size, for stats.
    encoded_len: usize,
    /// Last change (for tombstone reaping).
    updated_at: Timestamp,
}

/// One durable hint.
#[derive(Clone, Debug)]
struct HintRow {
    /// The state to hand over.
    object: Object,
    /// Digest of the key and the encoding (same as SQLite's).
    digest: u64,
    /// Encoded size, for the backlog.
    encoded_len: usize,
}

/// Everything behind the lock.
#[derive(Debug)]
struct State {
    /// Rows by key.
    rows: BTreeMap<Bytes, Row>,
    /// (hash, key) index for partition ranges.
    by_hash: BTreeSet<(u64, Bytes)>,
    /// Hints by target, then key (a target's map is removed with its last hint).
    hints: BTreeMap<String, BTreeMap<Bytes, HintRow>>,
    /// The dot counter.
    issuer: DotIssuer,
}

/// Shared between clones.
#[derive(Debug)]
struct Shared {
    /// The data.
    state: RwLock<State>,
    /// Write counters.
    stats: Mutex<WriterStats>,
    /// Set by [`Storage::close`].
    closed: AtomicBool,
}

/// An in-memory [`Storage`]. Cheap to clone; clones share the data.
#[derive(Clone, Debug)]
pub struct MemStorage {
    /// The shared store.
    shared: Arc<Shared>,
}

impl MemStorage {
    /// An empty store issuing dots as `actor`.
    pub fn new(actor: ActorId) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: RwLock::new(State {
                    rows: BTreeMap::new(),
                    by_hash: BTreeSet::new(),
                    hints: BTreeMap::new(),
                    issuer: DotIssuer::new(actor, 0),
                }),
                stats: Mutex::new(WriterStats::default()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The last dot counter issued (what SQLite persists in its metadata).
    pub fn last_counter(&self) -> u64 {
        self.shared
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .issuer
            .last()
    }

    fn stats(&self) -> MutexGuard<'_, WriterStats> {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl RowWriter for State {
    fn load(&mut self, key: &[u8]) -> Result<Option<Object>, KvError> {
        Ok(self.rows.get(key).map(|r| r.object.clone()))
    }

    fn store(&mut self, key: &Bytes, object: &Object, now: Timestamp) -> Result<(), KvError> {
        let encoded = encode_object(object);
        let hash = key_hash(key);
        let row = Row {
            hash,
            object: object.clone(),
            digest: row_digest(key, &encoded),
            encoded_len: encoded.len(),
            updated_at: now,
        };
        self.by_hash.insert((hash, key.clone()));
        self.rows.insert(key.clone(), row);
        Ok(())
    }

    fn purge_expired(&mut self, now: Timestamp, limit: usize) -> Result<usize, KvError> {
        let doomed: Vec<Bytes> = self
            .rows
            .iter()
            .filter(|(_, r)| r.object.expires_at().is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        Ok(self.remove_all(&doomed))
    }

    fn reap_if_unchanged(&mut self, key: &[u8], digest: u64) -> Result<usize, KvError> {
        let doomed = self
            .rows
            .get_key_value(key)
            .filter(|(_, r)| r.object.is_tombstone() && r.digest == digest)
            .map(|(k, _)| k.clone());
        Ok(doomed.map_or(0, |k| self.remove_all(&[k])))
    }

    fn drop_if_unchanged(&mut self, key: &[u8], digest: u64) -> Result<usize, KvError> {
        let doomed = self
            .rows
            .get_key_value(key)
            .filter(|(_, r)| r.digest == digest)
            .map(|(k, _)| k.clone());
        Ok(doomed.map_or(0, |k| self.remove_all(&[k])))
    }

    fn reap_tombstones(&mut self, before: Timestamp, limit: usize) -> Result<usize, KvError> {
        let doomed: Vec<Bytes> = self
            .rows
            .iter()
            .filter(|(_, r)| r.object.is_tombstone() && r.updated_at < before)
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        Ok(self.remove_all(&doomed))
    }

    fn load_hint(&mut self, target: &str, key: &[u8]) -> Result<Option<Object>, KvError> {
        Ok(self
            .hints
            .get(target)
            .and_then(|h| h.get(key))
            .map(|h| h.object.clone()))
    }

    fn store_hint(
        &mut self,
        target: &str,
        hint: &HintEntry,
        encoded: &[u8],
        _now: Timestamp,
    ) -> Result<(), KvError> {
        let row = HintRow {
            object: hint.object.clone(),
            digest: hint.digest,
            encoded_len: encoded.len(),
        };
        self.hints
            .entry(target.to_owned())
            .or_default()
            .insert(hint.key.clone(), row);
        Ok(())
    }

    fn drop_hint(&mut self, target: &str, key: &[u8], digest: u64) -> Result<usize, KvError> {
        let Some(held) = self.hints.get_mut(target) else {
            return Ok(0);
        };
        if held.get(key).is_none_or(|h| h.digest != digest) {
            return Ok(0);
        }
        held.remove(key);
        if held.is_empty() {
            self.hints.remove(target);
        }
        Ok(1)
    }
}

impl State {
    fn remove_all(&mut self, keys: &[Bytes]) -> usize {
        for key in keys {
            if let Some(row) = self.rows.remove(key) {
                self.by_hash.remove(&(row.hash, key.clone()));
            }
        }
        keys.len()
    }
}

impl ReadView for &State {
    fn get(&mut self, key: &[u8]) -> Result<Option<Object>, KvError> {
        Ok(self.rows.get(key).map(|r| r.object.clone()))
    }

    fn scan(
        &mut self,
        range: &KeyRange,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Bytes, Object)>, KvError> {
        let bounds = (range.start.clone(), range.end.clone());
        // BTreeMap::range panics on an empty or inverted range; such a scan is simply empty.
        let empty = match (&bounds.0, &bounds.1) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
                s >= e
            }
            _ => false,
        };
        if empty {
            return Ok(Vec::new());
        }
        Ok(self
            .rows
            .range::<Bytes, _>(bounds)
            .filter(|(_, r)| !r.object.visible(now).is_empty())
            .take(limit)
            .map(|(k, r)| (k.clone(), r.object.clone()))
            .collect())
    }

    fn hash_range(
        &mut self,
        range: &HashRange,
        after: Option<(u64, &[u8])>,
        limit: usize,
    ) -> Result<Vec<RowEntry>, KvError> {
        let start = match after {
            Some((h, k)) => Bound::Excluded((h, Bytes::copy_from_slice(k))),
            None => Bound::Included((*range.start(), Bytes::new())),
        };
        let mut out = Vec::new();
        for (hash, key) in self.by_hash.range((start, Bound::Unbounded)) {
            if *hash > *range.end() || out.len() >= limit {
                break;
            }
            if *hash < *range.start() {
                continue;
            }
            if let Some(row) = self.rows.get(key) {
                out.push(RowEntry {
                    hash: *hash,
                    key: key.clone(),
                    digest: row.digest,
                    object: row.object.clone(),
                });
            }
        }
        Ok(out)
    }

    fn summarize(&mut self, range: &HashRange) -> Result<RangeSummary, KvError> {
        let mut summary = RangeSummary::default();
        let start = Bound::Included((*range.start(), Bytes::new()));
        for (hash, key) in self.by_hash.range((start, Bound::Unbounded)) {
            if *hash > *range.end() {
                break;
            }
            if let Some(row) = self.rows.get(key) {
                summary.rows += 1;
                summary.digest = summary.digest.wrapping_add(row.digest);
            }
        }
        Ok(summary)
    }

    fn row_digests(&mut self, range: &HashRange) -> Result<Vec<(u64, u64)>, KvError> {
        let start = Bound::Included((*range.start(), Bytes::new()));
        Ok(self
            .by_hash
            .range((start, Bound::Unbounded))
            .take_while(|(hash, _)| *hash <= *range.end())
            .filter_map(|(hash, key)| self.rows.get(key).map(|row| (*hash, row.digest)))
            .collect())
    }

    fn stats(&mut self) -> Result<DataStats, KvError> {
        let mut s = DataStats::default();
        for row in self.rows.values() {
            s.rows += 1;
            s.tombstones += u64::from(row.object.is_tombstone());
            s.siblings += row.object.siblings().len() as u64;
            s.expiring += u64::from(row.object.expires_at().is_some());
            s.data_bytes += row.encoded_len as u64;
        }
        Ok(s)
    }

    fn hints(
        &mut self,
        target: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<HintEntry>, KvError> {
        let Some(held) = self.hints.get(target) else {
            return Ok(Vec::new());
        };
        let start = match after {
            Some(k) => Bound::Excluded(Bytes::copy_from_slice(k)),
            None => Bound::Unbounded,
        };
        Ok(held
            .range::<Bytes, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|(key, h)| HintEntry {
                key: key.clone(),
                digest: h.digest,
                object: h.object.clone(),
            })
            .collect())
    }

    fn hint_summary(&mut self) -> Result<Vec<HintBacklog>, KvError> {
        Ok(self
            .hints
            .iter()
            .map(|(target, held)| HintBacklog {
                target: target.clone(),
                hints: held.len() as u64,
                bytes: held.values().map(|h| h.encoded_len as u64).sum(),
            })
            .collect())
    }
}

impl Storage for MemStorage {
    fn actor(&self) -> ActorId {
        self.shared
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .issuer
            .actor()
    }

    fn submit_write(&self, request: WriteRequest, done: WriteDone) {
        if self.shared.closed.load(Ordering::Acquire) {
            return done(Err(KvError::Closed));
        }
        let n_ops = request.ops.len() as u64;
        let result = {
            let mut guard = self
                .shared
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let state = &mut *guard;
            let mut issuer = state.issuer.clone();
            let mut results = Vec::with_capacity(request.ops.len());
            for op in request.ops {
                // Memory cannot fail mid-request, so there is nothing to roll back.
                match apply_op(state, &mut issuer, op, request.now, request.siblings) {
                    Ok(r) => results.push(r),
                    Err(e) => results.push(Err(e)),
                }
            }
            state.issuer = issuer;
            Ok(results)
        };
        {
            let mut s = self.stats();
            s.commits += 1;
            s.requests += 1;
            s.ops += n_ops;
            s.batch_histogram[0] += 1;
            s.max_batch = s.max_batch.max(1);
        }
        done(result);
    }

    fn submit_read(&self, job: ReadJob) {
        if self.shared.closed.load(Ordering::Acquire) {
            // Dropping the job drops its reply channel: the caller sees `Closed`.
            return;
        }
        let guard = self
            .shared
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut view: &State = &guard;
        job(&mut view);
    }

    fn writer_stats(&self) -> WriterStats {
        *self.stats()
    }

    fn durability(&self) -> &'static str {
        "memory"
    }

    fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

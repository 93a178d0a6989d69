//! The storage contract: a sync trait both engines implement, and the data it speaks.
//!
//! Writes are *submitted* with a completion callback and reads are *jobs* run against a
//! consistent view. Both calls return at once; the callback runs when the work is done (for
//! SQLite: on the writer thread after the group commit's sync, or on a reader thread). The async
//! shell turns the callback into a oneshot, so the tokio runtime never blocks on SQLite, while the
//! trait itself stays free of any runtime.

use bytes::Bytes;

use crate::error::KvError;
use crate::model::{
    ActorId, HashRange, KeyRange, LocalWrite, Object, Resolved, SiblingLimits, Timestamp,
};

/// One operation in a write request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// A client put or delete coordinated by this store (issues a dot for puts).
    Local {
        /// The key.
        key: Bytes,
        /// What the client asked for.
        write: LocalWrite,
    },
    /// Another replica's state for a key, merged into ours (replication, repair, handoff).
    Merge {
        /// The key.
        key: Bytes,
        /// The remote state.
        object: Object,
    },
    /// Deletes up to `limit` rows whose every sibling expired at or before the request's `now`.
    PurgeExpired {
        /// Most rows to delete in this request, bounding the transaction.
        limit: usize,
    },
    /// Deletes `key` only if it is still a tombstone whose row digest is `digest`.
    ///
    /// The cluster's reaping hook: once anti-entropy has seen this exact tombstone on every
    /// replica, each replica removes it; a write that arrived in between changes the digest, and
    /// the row is kept.
    ReapIfUnchanged {
        /// The key.
        key: Bytes,
        /// The digest every replica reported (see [`RowEntry::digest`]).
        digest: u64,
    },
    /// Deletes `key` only if its row digest is still `digest`, value or tombstone.
    ///
    /// The hand-off clean-up: a node drops a row of a partition it no longer replicates once
    /// every current owner has acknowledged a merge of it; a write that arrived in between
    /// changed the digest, and the row is kept for the next pass.
    DropIfUnchanged {
        /// The key.
        key: Bytes,
        /// The digest of the row that was handed over (see [`RowEntry::digest`]).
        digest: u64,
    },
    /// Deletes up to `limit` tombstones last changed before `deleted_before`.
    ///
    /// This is the reaping hook: a single node calls it after a grace period; a cluster must
    /// call it only for keys every replica agrees are deleted.
    ReapTombstones {
        /// Only tombstones whose last change is older than this.
        deleted_before: Timestamp,
        /// Most rows to delete in this request.
        limit: usize,
    },
    /// Keeps `object` as a durable hint for `target` (a replica that could not be reached),
    /// merged into any hint already held for (`target`, `key`), so two hints for one key keep
    /// both writes as siblings. Hints live apart from the node's own data: reads never see them.
    StoreHint {
        /// The node the hint is for (a `NodeId`'s string form).
        target: String,
        /// The key.
        key: Bytes,
        /// The state to hand to `target`.
        object: Object,
    },
    /// Deletes the hint for (`target`, `key`) only if its digest is still `digest`.
    ///
    /// Handoff reads a batch of hints, delivers them, then drops each with the digest it read:
    /// a hint that was merged with a newer write during the delivery has another digest and is
    /// kept for the next round, so that write is never lost.
    DropHint {
        /// The node the hint was for.
        target: String,
        /// The key.
        key: Bytes,
        /// The digest the hint had when it was read (see [`HintEntry::digest`]).
        digest: u64,
    },
}

/// A group of operations submitted together; each succeeds or fails on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteRequest {
    /// The time the operations happen at (write times, expiry checks).
    pub now: Timestamp,
    /// Sibling thresholds for local puts.
    pub siblings: SiblingLimits,
    /// The operations, applied in order.
    pub ops: Vec<WriteOp>,
}

/// What one operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A local put or delete was stored.
    Written(Resolved),
    /// A remote state was merged; `changed` is false when we already had it all.
    Merged {
        /// The object now stored.
        object: Object,
        /// Whether the stored state changed.
        changed: bool,
    },
    /// Rows deleted by a purge, a reap or a dropped hint.
    Removed {
        /// How many rows.
        rows: usize,
    },
    /// A hint was stored (merged into the one held for the same target and key, if any).
    Hinted {
        /// Digest of the hint now held, as [`ReadView::hints`] reports it.
        digest: u64,
        /// Whether the held hint changed (false when it already covered the incoming state).
        changed: bool,
    },
}

/// The outcome of one operation: applied, or refused by the data model (nothing stored).
pub type OpResult = Result<Applied, KvError>;

/// Called once with every operation's outcome, or with the error that failed the whole request
/// (a storage failure rolls the request back as a unit).
pub type WriteDone = Box<dyn FnOnce(Result<Vec<OpResult>, KvError>) + Send>;

/// A read to run against a consistent view of the data.
pub type ReadJob = Box<dyn FnOnce(&mut dyn ReadView) + Send>;

/// A row as anti-entropy and partition streaming see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowEntry {
    /// The key's hash (its position on the ring).
    pub hash: u64,
    /// The key.
    pub key: Bytes,
    /// Digest of the key and its canonical object encoding.
    pub digest: u64,
    /// The stored state, tombstones and expired siblings included.
    pub object: Object,
}

/// A durable hint as handoff reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintEntry {
    /// The key.
    pub key: Bytes,
    /// Digest of the key and the hint's canonical encoding: what [`WriteOp::DropHint`] checks.
    pub digest: u64,
    /// The state to hand over.
    pub object: Object,
}

/// How many hints a node holds for one target: the handoff backlog an operator watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HintBacklog {
    /// The node the hints are for (a `NodeId`'s string form).
    pub target: String,
    /// Hints held (one per key).
    pub hints: u64,
    /// Bytes of their encoded objects.
    pub bytes: u64,
}

/// An order-independent summary of a hash range: equal ranges have equal summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeSummary {
    /// Rows in the range, tombstones included.
    pub rows: u64,
    /// Wrapping sum of the row digests: updatable incrementally (add new, subtract old), which is
    /// what an incrementally maintained Merkle tree needs.
    pub digest: u64,
}

/// Counts over the stored data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataStats {
    /// Rows, tombstones included.
    pub rows: u64,
    /// Rows with no sibling (deleted keys awaiting reaping).
    pub tombstones: u64,
    /// Siblings over all rows.
    pub siblings: u64,
    /// Rows with an expiry.
    pub expiring: u64,
    /// Bytes of encoded objects.
    pub data_bytes: u64,
    /// Bytes the store occupies on disk (0 in memory).
    pub disk_bytes: u64,
}

/// Counters of the write path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Requests queued and not yet committed.
    pub queue_depth: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Requests committed.
    pub requests: u64,
    /// Operations committed.
    pub ops: u64,
    /// Requests per commit: bucket `i` counts commits with `2^(i-1) < n <= 2^i` requests
    /// (bucket 0: exactly one), the last bucket everything above.
    pub batch_histogram: [u64; 12],
    /// Largest batch seen (requests).
    pub max_batch: u64,
    /// Total time from the start of a group commit to its acknowledgement, in microseconds.
    pub commit_micros: u64,
    /// Part of `commit_micros` spent in the final COMMIT (WAL write and sync), in microseconds.
    pub sync_micros: u64,
}

impl WriterStats {
    /// The histogram bucket a batch of `n` requests counts in.
    pub fn bucket(n: u64) -> usize {
        let b = if n <= 1 {
            0
        } else {
            64 - (n - 1).leading_zeros() as usize
        };
        b.min(11)
    }

    /// Mean requests per commit.
    pub fn mean_batch(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.requests as f64 / self.commits as f64
        }
    }
}

/// Reads against one consistent snapshot.
pub trait ReadView {
    /// The stored object for `key`, tombstones and expired siblings included.
    ///
    /// # Errors
    /// Storage failures and corrupt rows.
    fn get(&mut self, key: &[u8]) -> Result<Option<Object>, KvError>;

    /// Up to `limit` keys in `range`, in key order, that have a sibling visible at `now`.
    ///
    /// # Errors
    /// Storage failures and corrupt rows.
    fn scan(
        &mut self,
        range: &KeyRange,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Bytes, Object)>, KvError>;

    /// Up to `limit` rows whose hash is in `range`, ordered by (hash, key), resuming strictly
    /// after `after`. Everything is included (tombstones, expired): this is what a partition
    /// transfer streams and what anti-entropy compares.
    ///
    /// # Errors
    /// Storage failures and corrupt rows.
    fn hash_range(
        &mut self,
        range: &HashRange,
        after: Option<(u64, &[u8])>,
        limit: usize,
    ) -> Result<Vec<RowEntry>, KvError>;

    /// Row count and digest of a hash range.
    ///
    /// # Errors
    /// Storage failures.
    fn summarize(&mut self, range: &HashRange) -> Result<RangeSummary, KvError>;

    /// The hash and digest of every row in a hash range, in no particular order: one scan
    /// that summarises many adjacent ranges at once (a whole Merkle tree's leaves).
    ///
    /// # Errors
    /// Storage failures.
    fn row_digests(&mut self, range: &HashRange) -> Result<Vec<(u64, u64)>, KvError>;

    /// Counts over everything stored.
    ///
    /// # Errors
    /// Storage failures.
    fn stats(&mut self) -> Result<DataStats, KvError>;

    /// Up to `limit` hints held for `target`, in key order, resuming strictly after the key
    /// `after`.
    ///
    /// # Errors
    /// Storage failures and corrupt rows.
    fn hints(
        &mut self,
        target: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<HintEntry>, KvError>;

    /// The hint backlog of every target that has hints, ordered by target.
    ///
    /// # Errors
    /// Storage failures.
    fn hint_summary(&mut self) -> Result<Vec<HintBacklog>, KvError>;
}

/// A key-value store engine: SQLite on disk, or the in-memory twin for simulations.
///
/// Implementations apply the model's pure resolution functions inside their write path, so both
/// decide every write the same way; the shared conformance suite (`tests/storage_conformance/`)
/// holds them to it.
pub trait Storage: Send + Sync + 'static {
    /// The actor this store issues dots as.
    fn actor(&self) -> ActorId;

    /// Queues a write request; `done` runs once it is durable (or failed).
    fn submit_write(&self, request: WriteRequest, done: WriteDone);

    /// Queues a read job; it runs against a snapshot that includes every write acknowledged
    /// before this call.
    fn submit_read(&self, job: ReadJob);

    /// Write-path counters.
    fn writer_stats(&self) -> WriterStats;

    /// What an acknowledgement promises: "full" (survives power loss), "normal" (survives a
    /// process crash) or "memory" (nothing survives the process).
    fn durability(&self) -> &'static str;

    /// Stops accepting work, finishes (and syncs) everything queued, and releases threads and
    /// files. Blocks until then; later calls fail with [`KvError::Closed`].
    fn close(&self);
}

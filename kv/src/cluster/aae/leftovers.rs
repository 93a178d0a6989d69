//! Leftovers: rows of a partition this node no longer replicates.
//!
//! A transfer copies a partition to its new owner and completes; the old holder keeps its
//! copy (ownership moves while reads and writes go on, so it cannot drop rows as it streams
//! them), and a coordinator still on an older map may write a few more rows there. Nothing
//! reads them any more: they cost disk, and a stale row could come back if the partition ever
//! returned to this node after the key's tombstone had been reaped elsewhere.
//!
//! The clean-up never loses a write: page by page, every row is first merged into every current
//! owner of the partition (its write set, which includes both sides of a transfer in progress),
//! and dropped here only after all of them acknowledged it, and only if it is unchanged since it
//! was read (`WriteOp::DropIfUnchanged`: a write that arrived meanwhile is kept for the next
//! pass). A merge is idempotent, so pushing a row an owner already holds changes nothing there.
//! An owner that cannot be reached stops the pass; it starts over at the next scan.

use bytes::Bytes;
use ringkit_hashring::PartitionId;

use super::node::Aae;
use super::schedule::Cursor;
use crate::cluster::peers::ReplicaPeers;
use crate::cluster::transfer::split_by_bytes;
use crate::error::KvError;
use crate::model::Object;
use crate::storage::{Applied, Storage, WriteOp};

/// Most encoded bytes of objects in one merge call (a larger single row goes alone), well
/// under the internal message limit, as transfers do.
const MAX_MERGE_BYTES: usize = 8 * 1024 * 1024;

/// What one page of clean-up did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanUpPage {
    /// Rows read (and handed to every owner).
    pub rows: usize,
    /// Rows dropped here (the others changed since they were read).
    pub dropped: usize,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<Cursor>,
}

impl<S: Storage> Aae<S> {
    /// Hands the page of `partition`'s rows after `after` to the partition's owners and drops
    /// it here.
    ///
    /// # Errors
    /// INVALID_ARGUMENT if this node replicates the partition; UNAVAILABLE if it has no other
    /// owner; an owner that failed; storage failures. Rows not yet dropped stay.
    pub async fn clean_up_page(
        &self,
        peers: &dyn ReplicaPeers,
        partition: u32,
        after: Option<Cursor>,
    ) -> Result<CleanUpPage, KvError> {
        let map = self.map();
        let (count, mine) = self.sync()?;
        if mine.contains(&partition) || partition >= count {
            return Err(KvError::InvalidArgument(format!(
                "partition {partition} is not a leftover here (this node replicates it, or the \
                 ring has {count} partitions)"
            )));
        }
        let range = map.ring().partition_range(PartitionId(partition));
        let owners = map.replica_set(*range.start(), self.config().n).write;
        self.budget().ready().await;
        let limit = self.config().page_rows;
        let rows = self.local_rows(range, after, limit).await?;
        let mut page = CleanUpPage {
            rows: rows.len(),
            next: (rows.len() == limit)
                .then(|| rows.last().map(|r| (r.hash, r.key.clone())))
                .flatten(),
            ..CleanUpPage::default()
        };
        if rows.is_empty() {
            return Ok(page);
        }
        if owners.is_empty() || owners.contains(self.local()) {
            return Err(KvError::Unavailable(format!(
                "partition {partition} has no other owner to hand its rows to"
            )));
        }
        let ops: Vec<WriteOp> = rows
            .iter()
            .map(|r| WriteOp::DropIfUnchanged {
                key: r.key.clone(),
                digest: r.digest,
            })
            .collect();
        for run in split_by_bytes(rows, MAX_MERGE_BYTES) {
            let items: Vec<(Bytes, Object)> = run.into_iter().map(|r| (r.key, r.object)).collect();
            for batch in items.chunks(self.config().repair_batch) {
                for owner in &owners {
                    peers.merge(owner, batch.to_vec(), None).await?;
                }
            }
        }
        // The partition may have come back to this node while the owners were called (a
        // transfer to it): then its rows are its own again, and stay.
        if self.sync()?.1.contains(&partition) {
            return Err(KvError::Unavailable(format!(
                "partition {partition} came back to this node during its clean-up"
            )));
        }
        let node = self.node();
        for result in node.submit(node.now(), ops).await? {
            if let Applied::Removed { rows } = result? {
                page.dropped += rows;
            }
        }
        self.board().leftovers_dropped(page.dropped as u64);
        Ok(page)
    }
}

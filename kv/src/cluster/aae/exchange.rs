//! The exchange between two replicas of a partition, sans-IO: walk both trees top-down to the
//! differing leaves ([`TreeDescent`]), then compare the rows of those leaves key by key
//! ([`diff_rows`]).
//!
//! The shell fetches the remote nodes and rows; everything here is pure, so every case
//! (identical, one key differs, a key missing on either side, tombstones) is a fast unit test.

use bytes::Bytes;

use super::tree::MerkleTree;
use crate::model::HashRange;
use crate::storage::{RangeSummary, RowEntry};

/// What the descent needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescentStep {
    /// Ask the remote replica for these nodes of `level` (in this order).
    Fetch {
        /// The level (0 is the root).
        level: u32,
        /// Node indexes at that level.
        nodes: Vec<u64>,
    },
    /// The walk is over: these leaves differ (empty: the partitions are identical).
    Done {
        /// Leaf indexes, ascending.
        leaves: Vec<u64>,
    },
}

/// A top-down comparison of the local tree with a remote one, one level per round trip.
#[derive(Clone, Debug)]
pub struct TreeDescent {
    /// The level of the nodes last requested.
    level: u32,
    /// The nodes last requested.
    pending: Vec<u64>,
    /// At most this many leaves are reported, so one exchange is bounded; the rest still differ
    /// and are found by the next exchange.
    max_leaves: usize,
}

impl TreeDescent {
    /// Starts a walk: the first step asks for the remote root.
    pub fn start(max_leaves: usize) -> (Self, DescentStep) {
        let walk = Self {
            level: 0,
            pending: vec![0],
            max_leaves: max_leaves.max(1),
        };
        let step = DescentStep::Fetch {
            level: 0,
            nodes: vec![0],
        };
        (walk, step)
    }

    /// Takes the remote summaries of the nodes last requested (same order) and decides the next
    /// step by comparing them with `local`.
    ///
    /// # Errors
    /// The reply does not match the request (wrong count), or the local tree has no such level:
    /// a peer bug or a shape mismatch, reported rather than guessed around.
    pub fn on_reply(
        &mut self,
        local: &MerkleTree,
        remote: &[RangeSummary],
    ) -> Result<DescentStep, String> {
        if remote.len() != self.pending.len() {
            return Err(format!(
                "peer sent {} tree nodes for {} requested at level {}",
                remote.len(),
                self.pending.len(),
                self.level
            ));
        }
        let mut differing = Vec::new();
        for (&index, theirs) in self.pending.iter().zip(remote) {
            let ours = local
                .node(self.level, index)
                .ok_or_else(|| format!("local tree has no node {index} at level {}", self.level))?;
            if ours != *theirs && differing.len() < self.max_leaves {
                differing.push(index);
            }
        }
        if self.level == local.shape().depth || differing.is_empty() {
            self.pending.clear();
            return Ok(DescentStep::Done { leaves: differing });
        }
        self.level += 1;
        self.pending = differing
            .into_iter()
            .flat_map(|i| local.children(i))
            .collect();
        Ok(DescentStep::Fetch {
            level: self.level,
            nodes: self.pending.clone(),
        })
    }
}

/// Joins hash ranges that touch (one ends where the next starts) into runs of at most
/// `max_run` inputs, so the rows of adjacent differing leaves are listed with one call instead
/// of one call a leaf. Input ranges must be ascending and disjoint, as a tree's leaves are.
pub fn coalesce(ranges: &[HashRange], max_run: usize) -> Vec<HashRange> {
    let mut out: Vec<(HashRange, usize)> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some((last, n))
                if *n < max_run.max(1) && last.end().checked_add(1) == Some(*r.start()) =>
            {
                *last = *last.start()..=*r.end();
                *n += 1;
            }
            _ => out.push((r.clone(), 1)),
        }
    }
    out.into_iter().map(|(r, _)| r).collect()
}

/// A row as the comparison sees it: position, key and digest (no value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowDigest {
    /// The key's hash.
    pub hash: u64,
    /// The key.
    pub key: Bytes,
    /// Digest of the key and its stored object.
    pub digest: u64,
}

impl From<&RowEntry> for RowDigest {
    fn from(r: &RowEntry) -> Self {
        Self {
            hash: r.hash,
            key: r.key.clone(),
            digest: r.digest,
        }
    }
}

/// How two replicas' rows of one range differ.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowDiff {
    /// Keys only the local replica holds: push them.
    pub only_local: Vec<Bytes>,
    /// Keys only the remote replica holds: fetch and merge them.
    pub only_remote: Vec<Bytes>,
    /// Keys both hold in different states: merge both ways.
    pub different: Vec<Bytes>,
}

impl RowDiff {
    /// Keys on which the replicas disagree.
    pub fn len(&self) -> usize {
        self.only_local.len() + self.only_remote.len() + self.different.len()
    }

    /// True when the replicas agree on every row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys whose remote state must be fetched (it holds them).
    pub fn remote_keys(&self) -> Vec<Bytes> {
        self.only_remote
            .iter()
            .chain(&self.different)
            .cloned()
            .collect()
    }
}

/// Compares two row lists of the same range, each ordered by (hash, key) as
/// [`ReadView::hash_range`](crate::storage::ReadView::hash_range) returns them.
pub fn diff_rows(local: &[RowDigest], remote: &[RowDigest]) -> RowDiff {
    let mut diff = RowDiff::default();
    let (mut l, mut r) = (local.iter().peekable(), remote.iter().peekable());
    loop {
        match (l.peek(), r.peek()) {
            (None, None) => return diff,
            (Some(a), None) => {
                diff.only_local.push(a.key.clone());
                l.next();
            }
            (None, Some(b)) => {
                diff.only_remote.push(b.key.clone());
                r.next();
            }
            (Some(a), Some(b)) => match (a.hash, &a.key).cmp(&(b.hash, &b.key)) {
                std::cmp::Ordering::Less => {
                    diff.only_local.push(a.key.clone());
                    l.next();
                }
                std::cmp::Ordering::Greater => {
                    diff.only_remote.push(b.key.clone());
                    r.next();
                }
                std::cmp::Ordering::Equal => {
                    if a.digest != b.digest {
                        diff.different.push(a.key.clone());
                    }
                    l.next();
                    r.next();
                }
            },
        }
    }
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;

//! One handoff batch: read a target's oldest-keyed hints, send them, then drop each hint that
//! did not change in the meantime.
//!
//! The order matters for safety. A hint is dropped only after the target acknowledged it
//! (`merge` returns once the target applied it durably), and only with the digest that was read
//! and sent: a write merged into the hint during the delivery changes the digest, so the drop
//! leaves the hint in place and the next batch carries the newer state. A crash anywhere in
//! between at worst sends a hint twice, which a merge absorbs (merging is idempotent).

use bytes::Bytes;
use ringkit_hashring::NodeId;

use super::config::HandoffConfig;
use super::planner::BatchReport;
use crate::cluster::peers::ReplicaPeers;
use crate::error::KvError;
use crate::model::Object;
use crate::node::KvNode;
use crate::storage::{Applied, HintEntry, Storage, StorageExt, WriteOp};

/// Rough wire size of a hint: its key, values, and some room for dots and the context.
fn approx_bytes(hint: &HintEntry) -> usize {
    let siblings = hint.object.siblings();
    hint.key.len()
        + siblings.iter().map(|s| s.value.len() + 32).sum::<usize>()
        + hint.object.context().len() * 12
}

/// Keeps the leading hints that fit in `budget` bytes (always at least one, so a single
/// oversized hint still moves). Returns whether any were cut.
fn fit(hints: &mut Vec<HintEntry>, budget: usize) -> bool {
    let mut used = 0;
    let mut keep = 0;
    for h in hints.iter() {
        used += approx_bytes(h);
        if keep > 0 && used > budget {
            break;
        }
        keep += 1;
    }
    let cut = keep < hints.len();
    hints.truncate(keep);
    cut
}

/// Reads the next batch of `target`'s hints (first keys first: delivered hints are dropped, so
/// the front moves on). Returns the hints and whether the batch was cut at a limit.
///
/// # Errors
/// Storage failures.
pub(super) async fn read_batch<S: Storage>(
    node: &KvNode<S>,
    target: &NodeId,
    config: &HandoffConfig,
) -> Result<(Vec<HintEntry>, bool), KvError> {
    let name = target.to_string();
    let limit = config.batch;
    let mut hints = node
        .storage()
        .read(move |view| view.hints(&name, None, limit))
        .await?;
    let full = fit(&mut hints, config.batch_bytes) || hints.len() == limit;
    Ok((hints, full))
}

/// Drops each of `hints` (kept for `target`) unless it changed since it was read; returns how
/// many were dropped.
///
/// # Errors
/// Storage failures.
pub(super) async fn drop_unchanged<S: Storage>(
    node: &KvNode<S>,
    target: &NodeId,
    hints: &[&HintEntry],
) -> Result<usize, KvError> {
    if hints.is_empty() {
        return Ok(0);
    }
    let ops = hints
        .iter()
        .map(|h| WriteOp::DropHint {
            target: target.to_string(),
            key: h.key.clone(),
            digest: h.digest,
        })
        .collect();
    let mut dropped = 0;
    for outcome in node.submit(node.now(), ops).await? {
        if let Applied::Removed { rows } = outcome? {
            dropped += rows;
        }
    }
    Ok(dropped)
}

/// The (key, object) pairs a merge carries.
pub(super) fn items<'a>(hints: impl IntoIterator<Item = &'a HintEntry>) -> Vec<(Bytes, Object)> {
    hints
        .into_iter()
        .map(|h| (h.key.clone(), h.object.clone()))
        .collect()
}

/// Hands one batch of `target`'s hints to it through `peers`.
///
/// # Errors
/// Storage failures, and whatever `peers.merge` reports (the target is unreachable, timed out,
/// or refused the batch); on an error nothing is dropped.
pub(super) async fn deliver_batch<S: Storage>(
    node: &KvNode<S>,
    peers: &dyn ReplicaPeers,
    target: &NodeId,
    config: &HandoffConfig,
) -> Result<BatchReport, KvError> {
    let (hints, full) = read_batch(node, target, config).await?;
    if hints.is_empty() {
        return Ok(BatchReport::default());
    }
    peers.merge(target, items(&hints), None).await?;
    let dropped = drop_unchanged(node, target, &hints.iter().collect::<Vec<_>>()).await?;
    Ok(BatchReport {
        sent: hints.len(),
        dropped,
        full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActorId, Dot, Sibling, VersionVector};

    fn hint(key: &str, value_len: usize) -> HintEntry {
        let dot = Dot::new(ActorId(1), 1);
        let sibling = Sibling {
            dot,
            value: Bytes::from(vec![0u8; value_len]),
            written_at: crate::model::Timestamp(1),
            expires_at: None,
            lww: false,
        };
        HintEntry {
            key: Bytes::from(key.to_owned()),
            digest: 0,
            object: Object::from_parts(vec![sibling], VersionVector::from_pairs([(ActorId(1), 1)])),
        }
    }

    #[test]
    fn a_batch_is_cut_at_its_byte_budget_but_never_empty() {
        let mut hints = vec![hint("a", 100), hint("b", 100), hint("c", 100)];
        let one = approx_bytes(&hints[0]);
        assert!(fit(&mut hints, 2 * one));
        assert_eq!(hints.len(), 2);
        let mut big = vec![hint("a", 10_000), hint("b", 1)];
        assert!(fit(&mut big, 100));
        assert_eq!(big.len(), 1, "an oversized hint still goes, alone");
        let mut small = vec![hint("a", 1)];
        assert!(!fit(&mut small, 1_000));
        assert_eq!(small.len(), 1);
    }
}

//! The background half of a request: one task per request sends to every target, feeds the
//! answers to the sans-IO quorum tracker, reports the decision as soon as there is one, and then
//! finishes the work the client need not wait for: the remaining sends, stand-ins for failed
//! targets, hints for primaries nothing reached, and read repair.
//!
//! Every remote call is bounded by the replica timeout, so a task lives at most a few timeouts.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ringkit_hashring::NodeId;
use tokio::sync::oneshot;

use super::coordinator::Inner;
use super::hints::store_hints;
use super::plan::{ReadPlan, Target, WritePlan};
use super::read_quorum::{ReadQuorum, ReadStatus};
use super::write_quorum::{Failure, WriteQuorum, WriteStatus};
use crate::error::KvError;
use crate::model::Object;
use crate::storage::Storage;

/// How a failed call counts.
fn failure(e: &KvError) -> Failure {
    match e {
        KvError::Timeout { .. } => Failure::Timeout,
        other => Failure::Error(other.to_string()),
    }
}

/// Runs `f` with the replica timeout.
async fn bounded<T>(
    inner: &Inner<impl Storage>,
    node: &NodeId,
    f: impl Future<Output = Result<T, KvError>>,
) -> Result<T, KvError> {
    match tokio::time::timeout(inner.config.replica_timeout, f).await {
        Ok(r) => r,
        Err(_) => Err(KvError::Timeout {
            node: node.to_string(),
        }),
    }
}

/// Merges `object` into `target` (as a hint when it stands in for a primary).
async fn send<S: Storage>(
    inner: &Inner<S>,
    key: &Bytes,
    object: &Object,
    target: Target,
) -> (Target, Result<(), KvError>) {
    let items = vec![(key.clone(), object.clone())];
    let r = bounded(
        inner,
        &target.node,
        inner
            .peers
            .merge(&target.node, items, target.hint_for.as_ref()),
    )
    .await;
    (target, r)
}

/// Replicates a write whose local apply already succeeded: reports on `decided` once W is
/// reached or out of reach, then completes the fan-out and keeps hints for unreached primaries.
pub(super) async fn drive_write<S: Storage>(
    inner: Arc<Inner<S>>,
    key: Bytes,
    object: Object,
    plan: WritePlan,
    decided: oneshot::Sender<Result<(), KvError>>,
) {
    let mut quorum = WriteQuorum::new(&plan);
    quorum.ack(&inner.local);
    // Primaries without a target get their hint at once, not after the fan-out: a stop or a
    // crash right after the answer must not lose it.
    for primary in &plan.unplaced {
        spawn_hint(&inner, primary, &key, &object);
    }
    let mut decided = Some(decided);
    let mut inflight = FuturesUnordered::new();
    for t in plan.targets.iter().filter(|t| t.node != inner.local) {
        inflight.push(send(&inner, &key, &object, t.clone()));
    }
    loop {
        match quorum.status() {
            WriteStatus::Pending => {}
            WriteStatus::Succeeded => report(&mut decided, Ok(())),
            WriteStatus::Failed => report(&mut decided, Err(quorum.error())),
        }
        let Some((target, result)) = inflight.next().await else {
            break;
        };
        match result {
            Ok(()) => quorum.ack(&target.node),
            Err(e) => {
                tracing::debug!(node = %target.node, error = %e, "replica write failed");
                metrics::counter!("kv_replica_write_failures_total").increment(1);
                let primary = target.hint_for.clone().unwrap_or(target.node.clone());
                match quorum.fail(&target.node, failure(&e)) {
                    Some(stand_in) => inflight.push(send(&inner, &key, &object, stand_in)),
                    None => spawn_hint(&inner, &primary, &key, &object),
                }
            }
        }
    }
    // Every call is bounded, so this is reached; a decision was made above unless the plan was
    // malformed, which the tracker reports as a failure. Hints were kept as failures came in.
    report(&mut decided, Err(quorum.error()));
}

/// Keeps a hint for `primary` on this node (it missed the write and no stand-in is left), in
/// a task of its own so the fan-out goes on meanwhile; the coordinator's drain waits for it.
fn spawn_hint<S: Storage>(inner: &Arc<Inner<S>>, primary: &NodeId, key: &Bytes, object: &Object) {
    let items = vec![(key.clone(), object.clone())];
    let (inner, primary) = (Arc::clone(inner), primary.clone());
    let guard = inner.track();
    tokio::spawn(async move {
        if let Err(e) = store_hints(&inner.node, &primary, items).await {
            tracing::warn!(%primary, error = %e, "could not keep a hint");
        }
        drop(guard);
    });
}

/// Sends the decision once.
fn report(slot: &mut Option<oneshot::Sender<Result<(), KvError>>>, r: Result<(), KvError>) {
    if let Some(tx) = slot.take() {
        let _ = tx.send(r);
    }
}

/// One replica's stored object for `key`: the local store directly, others over the network.
async fn read_one<S: Storage>(
    inner: &Inner<S>,
    key: &Bytes,
    node: NodeId,
) -> (NodeId, Result<Option<Object>, KvError>) {
    let keys = vec![key.clone()];
    let r = if node == inner.local {
        inner.node.read_objects(keys).await
    } else {
        bounded(inner, &node, inner.peers.read(&node, keys)).await
    };
    let r = r.and_then(|mut v| {
        if v.len() == 1 {
            Ok(v.pop().flatten())
        } else {
            Err(KvError::Internal(format!(
                "{node} answered {} objects for one key",
                v.len()
            )))
        }
    });
    (node, r)
}

/// Runs a read: reports the merge of the first R answers on `decided`, then waits for the rest
/// and repairs the replicas that were stale or missing the key.
pub(super) async fn drive_read<S: Storage>(
    inner: Arc<Inner<S>>,
    key: Bytes,
    plan: ReadPlan,
    decided: oneshot::Sender<Result<Option<Object>, KvError>>,
) {
    let mut quorum = ReadQuorum::new(&plan);
    let mut decided = Some(decided);
    let mut inflight: FuturesUnordered<_> = plan
        .targets
        .iter()
        .map(|n| read_one(&inner, &key, n.clone()))
        .collect();
    while let Some((node, result)) = inflight.next().await {
        match result {
            Ok(object) => quorum.reply(&node, object),
            Err(e) => {
                tracing::debug!(%node, error = %e, "replica read failed");
                quorum.fail(&node, failure(&e));
            }
        }
        match quorum.status() {
            ReadStatus::Pending => {}
            ReadStatus::Ready => {
                if let Some(tx) = decided.take() {
                    let _ = tx.send(Ok(quorum.merged()));
                }
            }
            ReadStatus::Failed => {
                if let Some(tx) = decided.take() {
                    let _ = tx.send(Err(quorum.error()));
                }
            }
        }
    }
    if let Some(tx) = decided.take() {
        let _ = tx.send(Err(quorum.error()));
    }
    let Some(merged) = quorum.merged() else {
        return;
    };
    let stale = quorum.repairs(&merged);
    if stale.is_empty() {
        return;
    }
    let Ok(_permit) = Arc::clone(&inner.repairs).try_acquire_owned() else {
        metrics::counter!("kv_read_repairs_total", "outcome" => "skipped")
            .increment(stale.len() as u64);
        return;
    };
    let repairs: FuturesUnordered<_> = stale
        .into_iter()
        .map(|node| repair_one(&inner, &key, &merged, node))
        .collect();
    repairs
        .for_each(|ok| async move {
            let outcome = if ok { "ok" } else { "failed" };
            metrics::counter!("kv_read_repairs_total", "outcome" => outcome).increment(1);
        })
        .await;
}

/// Merges the read's merged object into one stale replica; true on success.
async fn repair_one<S: Storage>(
    inner: &Inner<S>,
    key: &Bytes,
    merged: &Object,
    node: NodeId,
) -> bool {
    let items = vec![(key.clone(), merged.clone())];
    let r = if node == inner.local {
        inner.node.merge_objects(items).await.map(|_| ())
    } else {
        bounded(inner, &node, inner.peers.merge(&node, items, None)).await
    };
    if let Err(e) = &r {
        tracing::debug!(%node, error = %e, "read repair failed");
    }
    r.is_ok()
}

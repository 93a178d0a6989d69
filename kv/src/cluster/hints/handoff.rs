//! The handoff task: the thin tokio shell around [`HandoffPlanner`].
//!
//! One task per node. Every `interval` it reads the hint backlog from storage; whenever the
//! [`LiveSet`] or the [`ClusterMap`] changes it tells the planner (a target that comes back is
//! due at once; so is one that was removed, whose hints are then redirected); it runs the
//! batches the planner asks for (at most `max_concurrent` at a time, each bounded by
//! `batch_timeout`) and reports their outcome back. It publishes the pending backlog (for the
//! admin API) and metrics, and stops when its [`HandoffHandle`] is shut down or dropped.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ringkit_hashring::NodeId;
use tokio::sync::{oneshot, watch};
use tokio::task::{Id, JoinHandle, JoinSet};
use tokio::time::Instant;

use super::config::HandoffConfig;
use super::deliver::deliver_batch;
use super::planner::{BatchReport, Handoff, HandoffPlanner};
use super::redirect::redirect_batch;
use crate::cluster::peers::ReplicaPeers;
use crate::cluster::topology::{ClusterMap, LiveSet};
use crate::error::KvError;
use crate::node::KvNode;
use crate::storage::{HintBacklog, Storage, StorageExt};

/// Totals since the task started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandoffStats {
    /// Batches acknowledged by their target.
    pub batches: u64,
    /// Hints acknowledged by their target.
    pub delivered: u64,
    /// Hints dropped after delivery (the rest changed meanwhile and were kept).
    pub dropped: u64,
    /// Batches that failed (target unreachable, timed out, refused, or a storage error).
    pub failed: u64,
}

/// Counters shared between the task and its handle.
#[derive(Debug, Default)]
struct Counters {
    /// See [`HandoffStats::batches`].
    batches: AtomicU64,
    /// See [`HandoffStats::delivered`].
    delivered: AtomicU64,
    /// See [`HandoffStats::dropped`].
    dropped: AtomicU64,
    /// See [`HandoffStats::failed`].
    failed: AtomicU64,
}

/// The running handoff task. Dropping it stops the task too; [`shutdown`](Self::shutdown) also
/// waits for it.
#[derive(Debug)]
pub struct HandoffHandle {
    /// Fires (or drops) to stop the task.
    stop: Option<oneshot::Sender<()>>,
    /// The task, joined by `shutdown`.
    task: JoinHandle<()>,
    /// The latest backlog per target.
    pending: watch::Receiver<Arc<Vec<HintBacklog>>>,
    /// Totals.
    counters: Arc<Counters>,
}

impl HandoffHandle {
    /// Hints pending per target as of the task's last pass (ordered by target): what the admin
    /// API shows. [`pending_hints`](super::pending_hints) reads the exact figure from storage.
    pub fn pending(&self) -> Arc<Vec<HintBacklog>> {
        Arc::clone(&self.pending.borrow())
    }

    /// A receiver that sees every new backlog, for a server that streams it.
    pub fn watch_pending(&self) -> watch::Receiver<Arc<Vec<HintBacklog>>> {
        self.pending.clone()
    }

    /// Totals since the task started.
    pub fn stats(&self) -> HandoffStats {
        let c = &self.counters;
        HandoffStats {
            batches: c.batches.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }

    /// Stops the task and waits for it. Batches in flight are abandoned: their hints were not
    /// dropped, so they are sent again later (a merge absorbs the repeat).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if (&mut self.task).await.is_err() {
            tracing::error!("the hint handoff task panicked");
        }
    }
}

impl Drop for HandoffHandle {
    fn drop(&mut self) {
        // Dropping `stop` ends the task; nothing else to do.
        self.stop.take();
    }
}

/// Starts hinted handoff for `node`: its hints are delivered through `peers` to their targets
/// whenever `live` shows them alive; the hints of a node that is no longer on `map`'s ring
/// (removed, or departing) go to each key's current replicas.
///
/// Must be called inside a tokio runtime.
///
/// # Errors
/// [`KvError::Config`] if `config` is invalid.
pub fn spawn_handoff<S: Storage>(
    node: KvNode<S>,
    peers: Arc<dyn ReplicaPeers>,
    map: watch::Receiver<Arc<ClusterMap>>,
    live: watch::Receiver<LiveSet>,
    config: HandoffConfig,
) -> Result<HandoffHandle, KvError> {
    config.validate().map_err(KvError::Config)?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let (pending_tx, pending_rx) = watch::channel(Arc::new(Vec::new()));
    let counters = Arc::new(Counters::default());
    let local = NodeId::from(node.config().node_id.as_str());
    let shell = Shell {
        planner: HandoffPlanner::new(config.clone(), local),
        node,
        peers,
        map,
        live,
        config,
        pending: pending_tx,
        published: BTreeSet::new(),
        counters: Arc::clone(&counters),
    };
    Ok(HandoffHandle {
        stop: Some(stop_tx),
        task: tokio::spawn(shell.run(stop_rx)),
        pending: pending_rx,
        counters,
    })
}

/// The task's state.
struct Shell<S> {
    /// The decisions.
    planner: HandoffPlanner,
    /// The node whose hints are handed off.
    node: KvNode<S>,
    /// How batches reach targets.
    peers: Arc<dyn ReplicaPeers>,
    /// The ring and its members.
    map: watch::Receiver<Arc<ClusterMap>>,
    /// Nodes believed alive.
    live: watch::Receiver<LiveSet>,
    /// Settings.
    config: HandoffConfig,
    /// Where the backlog is published.
    pending: watch::Sender<Arc<Vec<HintBacklog>>>,
    /// Targets with a published gauge (zeroed when they leave the backlog).
    published: BTreeSet<NodeId>,
    /// Totals.
    counters: Arc<Counters>,
}

/// A finished batch: its target and outcome.
type Finished = (NodeId, Result<BatchReport, KvError>);

impl<S: Storage> Shell<S> {
    /// The loop: refresh, plan, run batches, sleep until something happens.
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let start = Instant::now();
        let mut batches: JoinSet<Finished> = JoinSet::new();
        let mut targets: HashMap<Id, NodeId> = HashMap::new();
        let mut refresh_at = start;
        let mut live_open = true;
        let mut map_open = true;
        loop {
            if Instant::now() >= refresh_at {
                self.refresh(start.elapsed()).await;
                refresh_at = Instant::now() + self.config.interval;
            }
            let now = start.elapsed();
            let map = Arc::clone(&self.map.borrow_and_update());
            // Owners are the ring's nodes: a departing member (off the ring, still streaming
            // its partitions away) counts as removed, so its hints follow the data.
            let owners = map.ring().nodes().iter().map(|n| n.id.clone()).collect();
            self.planner.observe_members(&owners, now);
            let live = Arc::clone(&self.live.borrow_and_update());
            self.planner.observe_live(&live, now);
            for handoff in self.planner.due(now) {
                let target = handoff.target.clone();
                let handle = batches.spawn(self.batch(handoff, &map, &live));
                targets.insert(handle.id(), target);
            }
            self.publish();
            let wake = self
                .planner
                .next_wake()
                .map_or(refresh_at, |w| (start + w).min(refresh_at));
            tokio::select! {
                _ = &mut stop => break,
                Some(joined) = batches.join_next_with_id() => {
                    let (id, finished) = match joined {
                        Ok((id, finished)) => (id, Some(finished)),
                        Err(e) => (e.id(), None),
                    };
                    if let Some(target) = targets.remove(&id) {
                        let outcome = finished.map_or_else(
                            || Err(KvError::Internal("a handoff batch panicked".to_owned())),
                            |(_, r)| r,
                        );
                        self.finish(&target, outcome, start.elapsed());
                    }
                }
                changed = self.live.changed(), if live_open => {
                    // The membership side is gone: keep the last live set and stop watching.
                    live_open = changed.is_ok();
                }
                changed = self.map.changed(), if map_open => {
                    map_open = changed.is_ok();
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        batches.shutdown().await;
    }

    /// One batch, bounded in time: to its target, or redirected (with the `map` and `live`
    /// snapshots the planner decided on).
    fn batch(
        &self,
        handoff: Handoff,
        map: &Arc<ClusterMap>,
        live: &LiveSet,
    ) -> impl Future<Output = Finished> + Send + 'static {
        let (node, peers, config) = (
            self.node.clone(),
            Arc::clone(&self.peers),
            self.config.clone(),
        );
        let (map, live) = (Arc::clone(map), Arc::clone(live));
        async move {
            let Handoff { target, redirect } = handoff;
            let peers = peers.as_ref();
            let run = async {
                if redirect {
                    redirect_batch(&node, peers, &target, &config, &map, &live).await
                } else {
                    deliver_batch(&node, peers, &target, &config).await
                }
            };
            let outcome = match tokio::time::timeout(config.batch_timeout, run).await {
                Ok(r) => r,
                Err(_) => Err(KvError::Timeout {
                    node: target.to_string(),
                }),
            };
            (target, outcome)
        }
    }

    /// Records a finished batch.
    fn finish(&mut self, target: &NodeId, outcome: Result<BatchReport, KvError>, now: Duration) {
        let label = target.to_string();
        match outcome {
            Ok(report) => {
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .delivered
                    .fetch_add(report.sent as u64, Ordering::Relaxed);
                self.counters
                    .dropped
                    .fetch_add(report.dropped as u64, Ordering::Relaxed);
                metrics::counter!("kv_hints_delivered_total", "target" => label)
                    .increment(report.sent as u64);
                self.planner.delivered(target, report, now);
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("kv_hint_batches_failed_total", "target" => label).increment(1);
                self.planner.failed(target, now);
                tracing::debug!(%target, error = %e, failures = self.planner.failures(target), "hint handoff batch failed; backing off");
            }
        }
    }

    /// Re-reads the backlog from storage (a failed read keeps the previous one).
    async fn refresh(&mut self, now: Duration) {
        match self.node.storage().read(|view| view.hint_summary()).await {
            Ok(backlog) => self.planner.observe_backlog(
                backlog
                    .into_iter()
                    .map(|b| (NodeId::from(b.target), b.hints, b.bytes)),
                now,
            ),
            Err(e) => tracing::warn!(error = %e, "reading the hint backlog failed"),
        }
    }

    /// Publishes the backlog to the handle and the gauges, if it changed.
    fn publish(&mut self) {
        let pending: Vec<HintBacklog> = self
            .planner
            .pending()
            .into_iter()
            .map(|(target, (hints, bytes))| HintBacklog {
                target: target.to_string(),
                hints,
                bytes,
            })
            .collect();
        if **self.pending.borrow() == pending {
            return;
        }
        let now: BTreeSet<NodeId> = pending
            .iter()
            .map(|b| NodeId::from(b.target.as_str()))
            .collect();
        for gone in self.published.difference(&now) {
            metrics::gauge!("kv_hints_pending", "target" => gone.to_string()).set(0.0);
            metrics::gauge!("kv_hints_pending_bytes", "target" => gone.to_string()).set(0.0);
        }
        for b in &pending {
            metrics::gauge!("kv_hints_pending", "target" => b.target.clone()).set(b.hints as f64);
            metrics::gauge!("kv_hints_pending_bytes", "target" => b.target.clone())
                .set(b.bytes as f64);
        }
        self.published = now;
        self.pending.send_replace(Arc::new(pending));
    }
}

#[cfg(test)]
#[path = "handoff_tests.rs"]
mod tests;

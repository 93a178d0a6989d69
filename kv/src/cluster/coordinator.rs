//! [`Coordinator`]: the thin async shell that runs a client request across the key's replicas.
//!
//! Decisions come from the sans-IO parts: [`plan`](super::plan) picks the nodes,
//! [`WriteQuorum`](super::write_quorum::WriteQuorum) and
//! [`ReadQuorum`](super::read_quorum::ReadQuorum) count the answers. This file only does the I/O:
//! a write is applied to the local store first (which issues the dot and makes it durable), then
//! the resulting object is merged into the other targets in parallel; a read asks the replicas
//! in parallel and answers at R. The rest of the fan-out (remaining sends, stand-ins, hints for
//! unreached primaries, read repair) finishes in a background task, see
//! `cluster/fanout.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::NodeId;
use tokio::sync::{Semaphore, oneshot, watch};

use super::fanout;
use super::peers::ReplicaPeers;
use super::plan::{ReadPlan, Route, WritePlan, plan_read, plan_write};
use super::topology::{ClusterMap, LiveSet};
use crate::error::KvError;
use crate::model::{Object, key_hash};
use crate::node::{DeleteOutcome, KvNode, Put, PutOutcome, Quorum, Versioned};
use crate::storage::Storage;

/// Settings of a [`Coordinator`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// How long one replica may take to answer before it counts as failed: a slow or dead
    /// replica must not hold a quorum hostage.
    pub replica_timeout: Duration,
    /// Most read repairs in flight; past it, repairs are skipped (and counted): anti-entropy
    /// catches up later, and a burst of stale reads cannot grow memory without bound.
    pub max_read_repairs: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            replica_timeout: Duration::from_secs(1),
            max_read_repairs: 256,
        }
    }
}

impl CoordinatorConfig {
    /// Checks the fields.
    ///
    /// # Errors
    /// [`KvError::Config`] naming the field.
    pub fn validate(&self) -> Result<(), KvError> {
        if self.replica_timeout.is_zero() {
            return Err(KvError::Config(
                "cluster replica_timeout must be positive".into(),
            ));
        }
        if self.max_read_repairs == 0 {
            return Err(KvError::Config(
                "cluster max_read_repairs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Shared state of a coordinator.
pub(super) struct Inner<S> {
    /// The local replica (validation, storage, dots).
    pub(super) node: KvNode<S>,
    /// This node's id on the ring.
    pub(super) local: NodeId,
    /// The current cluster map.
    map: watch::Receiver<Arc<ClusterMap>>,
    /// The nodes believed alive.
    live: watch::Receiver<LiveSet>,
    /// How objects reach other replicas.
    pub(super) peers: Arc<dyn ReplicaPeers>,
    /// Settings.
    pub(super) config: CoordinatorConfig,
    /// Read repairs in flight.
    pub(super) repairs: Arc<Semaphore>,
    /// Background work in flight (fan-outs, hints): each holds a permit; draining takes all.
    background: Arc<Semaphore>,
}

/// Permits of the background-work tracker: far above any real number of requests in flight.
const BACKGROUND_PERMITS: u32 = 1 << 20;

impl<S> Inner<S> {
    /// A permit held by one piece of background work (`None` past the tracker's capacity: the
    /// work then runs untracked rather than being refused).
    pub(super) fn track(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.background).try_acquire_owned().ok()
    }
}

/// Runs client requests across replicas. Cheap to clone; clones share everything.
pub struct Coordinator<S> {
    /// The shared state.
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Coordinator<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for Coordinator<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("local", &self.inner.local)
            .finish_non_exhaustive()
    }
}

/// The error a node returns when asked to coordinate a key it is not a live replica of (a
/// forwarded request that raced a ring or liveness change).
fn not_a_replica(local: &NodeId, to: &NodeId) -> KvError {
    KvError::Unavailable(format!(
        "node {local} is not a live replica of this key (its view sends the request to {to}); retry"
    ))
}

impl<S: Storage> Coordinator<S> {
    /// A coordinator for the node `local`, over its replica `node`.
    ///
    /// # Errors
    /// [`KvError::Config`] for an invalid `config`.
    pub fn new(
        node: KvNode<S>,
        local: NodeId,
        map: watch::Receiver<Arc<ClusterMap>>,
        live: watch::Receiver<LiveSet>,
        peers: Arc<dyn ReplicaPeers>,
        config: CoordinatorConfig,
    ) -> Result<Self, KvError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                node,
                local,
                map,
                live,
                peers,
                repairs: Arc::new(Semaphore::new(config.max_read_repairs)),
                background: Arc::new(Semaphore::new(BACKGROUND_PERMITS as usize)),
                config,
            }),
        })
    }

    /// The local replica.
    pub fn node(&self) -> &KvNode<S> {
        &self.inner.node
    }

    /// The settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.config
    }

    /// This node's id.
    pub fn local(&self) -> &NodeId {
        &self.inner.local
    }

    /// The current cluster map.
    pub fn map(&self) -> Arc<ClusterMap> {
        Arc::clone(&self.inner.map.borrow())
    }

    /// The current live set.
    pub fn live(&self) -> LiveSet {
        Arc::clone(&self.inner.live.borrow())
    }

    /// Fills the quorum's defaults and checks it. N may be lowered per request but not raised
    /// above the cluster's configured N: anti-entropy, tombstone reaping and hint redirection
    /// cover the configured N replicas of a key, so a copy placed beyond them would never be
    /// repaired, and a delete made at the configured N could be undone from it.
    fn resolve(&self, quorum: Quorum) -> Result<Quorum, KvError> {
        let q = self.inner.node.resolve_quorum(quorum)?;
        let configured = self.inner.node.config().quorum.n;
        if q.n > configured {
            return Err(KvError::InvalidArgument(format!(
                "quorum n={} is above this cluster's replication factor N={configured}; ask \
                 for n <= {configured}",
                q.n
            )));
        }
        Ok(q)
    }

    /// Plans a write of `key` under the current map and live set.
    fn write_plan(&self, key: &[u8], quorum: Quorum) -> Result<WritePlan, KvError> {
        self.inner.node.config().limits.check_key(key)?;
        let q = self.resolve(quorum)?;
        plan_write(
            &self.map(),
            &self.live(),
            &self.inner.local,
            key_hash(key),
            &q,
        )
    }

    /// Plans a read of `key` under the current map and live set.
    fn read_plan(&self, key: &[u8], quorum: Quorum) -> Result<ReadPlan, KvError> {
        self.inner.node.config().limits.check_key(key)?;
        let q = self.resolve(quorum)?;
        plan_read(
            &self.map(),
            &self.live(),
            &self.inner.local,
            key_hash(key),
            &q,
        )
    }

    /// Where a put or delete of `key` is coordinated: here, or the node to forward it to.
    ///
    /// # Errors
    /// Invalid key or quorum (INVALID_ARGUMENT), no live primary (UNAVAILABLE).
    pub fn route_write(&self, key: &[u8], quorum: Quorum) -> Result<Route, KvError> {
        Ok(self.write_plan(key, quorum)?.route)
    }

    /// Where a get of `key` is coordinated: here, or the node to forward it to.
    ///
    /// # Errors
    /// Invalid key or quorum (INVALID_ARGUMENT), fewer than R live replicas (UNAVAILABLE).
    pub fn route_read(&self, key: &[u8], quorum: Quorum) -> Result<Route, KvError> {
        Ok(self.read_plan(key, quorum)?.route)
    }

    /// Coordinates a put: stores it locally (issuing the dot), then replicates the object and
    /// answers at W acknowledgements (the local write counts as one).
    ///
    /// # Errors
    /// Invalid input (INVALID_ARGUMENT); this node is not a live primary of the key, or fewer
    /// than W targets acknowledged in time (UNAVAILABLE; the write may still be applied where it
    /// arrived, as in any Dynamo-style store).
    pub async fn put(&self, put: Put) -> Result<PutOutcome, KvError> {
        let plan = self.write_plan(&put.key, put.quorum)?;
        if let Route::Forward(to) = &plan.route {
            return Err(not_a_replica(&self.inner.local, to));
        }
        let key = put.key.clone();
        let (outcome, object) = self.inner.node.put_object(put).await?;
        self.replicate(key, object, plan).await?;
        Ok(outcome)
    }

    /// Coordinates a delete: writes the tombstone locally, then replicates it like a put.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn delete(
        &self,
        key: Bytes,
        context: Bytes,
        quorum: Quorum,
    ) -> Result<DeleteOutcome, KvError> {
        let plan = self.write_plan(&key, quorum)?;
        if let Route::Forward(to) = &plan.route {
            return Err(not_a_replica(&self.inner.local, to));
        }
        let (outcome, object) = self.inner.node.delete_object(key.clone(), context).await?;
        self.replicate(key, object, plan).await?;
        Ok(outcome)
    }

    /// Coordinates a get: asks the live read replicas, merges the first R answers (siblings
    /// kept) and repairs stale or missing replicas in the background.
    ///
    /// # Errors
    /// Invalid key or quorum (INVALID_ARGUMENT); fewer than R answers in time (UNAVAILABLE).
    pub async fn get(&self, key: Bytes, quorum: Quorum) -> Result<Versioned, KvError> {
        let plan = self.read_plan(&key, quorum)?;
        if let Route::Forward(to) = &plan.route {
            return Err(not_a_replica(&self.inner.local, to));
        }
        let merged = self.read_merged(key.clone(), plan).await?;
        Ok(self.inner.node.versioned(key, merged.as_ref(), false))
    }

    /// Waits (up to `limit`) until the background work of earlier requests is done: remaining
    /// replica sends, stand-ins, hints, read repairs. A stopping node calls it before closing its
    /// store, so a hint for a write it acknowledged is not lost to a clean stop.
    pub async fn drain(&self, limit: Duration) {
        let all = self.inner.background.acquire_many(BACKGROUND_PERMITS);
        if let Ok(Ok(permits)) = tokio::time::timeout(limit, all).await {
            drop(permits);
        } else {
            tracing::warn!("background replication still running at shutdown");
        }
    }

    /// Sends `object` to the plan's other targets and waits for W acknowledgements.
    async fn replicate(&self, key: Bytes, object: Object, plan: WritePlan) -> Result<(), KvError> {
        let (tx, rx) = oneshot::channel();
        let guard = self.inner.track();
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            fanout::drive_write(inner, key, object, plan, tx).await;
            drop(guard);
        });
        rx.await
            .unwrap_or_else(|_| Err(KvError::Internal("write fan-out task ended early".into())))
    }

    /// Asks the plan's targets and returns the merge of the first R answers.
    async fn read_merged(&self, key: Bytes, plan: ReadPlan) -> Result<Option<Object>, KvError> {
        let (tx, rx) = oneshot::channel();
        let guard = self.inner.track();
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            fanout::drive_read(inner, key, plan, tx).await;
            drop(guard);
        });
        rx.await
            .unwrap_or_else(|_| Err(KvError::Internal("read fan-out task ended early".into())))
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;

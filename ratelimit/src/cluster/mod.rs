//! Cluster mode: keys are placed on the hash ring, one owner per key; a node forwards the
//! operations of keys it does not own to their owner, in batches.
//!
//! * Placement: [`ringkit_hashring::PartitionedRing`] over the static member list (see ADR 0301).
//! * Only the owner counts a key, so a limit is enforced cluster-wide exactly as on one node; a
//!   forward costs one loopback/LAN round trip, amortised over the batch.
//! * When the owner fails (error or `forward_timeout`), it is skipped for `down_cooldown`: its
//!   keys go to the next node of their preference list, **whose counters start fresh** (the
//!   state is not replicated). Clients of such a key may get up to one extra budget during the
//!   hand-over, and again when the owner comes back (its counters are then stale or gone).

mod config;
mod forwarder;
mod routing;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

pub use config::{ClusterConfig, Peer};
pub use routing::Routing;

use forwarder::{BatchSettings, Forwarder};
use ringkit_hashring::NodeId;

use crate::check::{Op, OpResult};
use crate::counter::LocalCounter;
use crate::error::Error;

/// A node's view of the cluster: routing, its own store, and a forwarder per peer.
#[derive(Debug)]
pub struct Cluster {
    /// Owners and down marks.
    routing: Mutex<Routing>,
    /// This node's store.
    local: LocalCounter,
    /// One forwarder per peer.
    forwarders: HashMap<NodeId, Forwarder>,
    /// Timeouts and cooldown.
    config: ClusterConfig,
    /// This node's id, as the ring names it.
    me: NodeId,
}

impl Cluster {
    /// Builds the cluster view and spawns the forwarders (call inside a tokio runtime).
    /// Connections are lazy: peers may start in any order.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config or peer address.
    pub fn start(config: ClusterConfig, local: LocalCounter) -> Result<Self, Error> {
        config.validate()?;
        let members = config
            .peers
            .iter()
            .map(|p| p.id.clone())
            .chain(std::iter::once(config.node_id.clone()));
        let routing = Routing::new(&config.node_id, members)?;
        let settings = BatchSettings {
            window: config.batch_window,
            max_batch: config.max_batch,
            max_in_flight: config.max_in_flight,
            timeout: config.forward_timeout,
        };
        let mut forwarders = HashMap::new();
        for peer in &config.peers {
            let channel = tonic::transport::Endpoint::from_shared(peer.addr.clone())
                .map_err(|e| {
                    Error::Config(format!("peer {} address `{}`: {e}", peer.id, peer.addr))
                })?
                .connect_timeout(config.forward_timeout)
                .tcp_nodelay(true)
                .connect_lazy();
            forwarders.insert(
                NodeId::from(peer.id.as_str()),
                Forwarder::spawn(config.node_id.clone(), channel, settings),
            );
        }
        Ok(Cluster {
            me: NodeId::from(config.node_id.as_str()),
            routing: Mutex::new(routing),
            local,
            forwarders,
            config,
        })
    }

    /// This node's store and clock.
    pub fn local(&self) -> &LocalCounter {
        &self.local
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Runs `ops` on their owners; a failed owner is marked down and its ops re-routed to the
    /// next node of their preference lists (ultimately this node, which never fails).
    ///
    /// # Errors
    /// Never in practice: the last resort is this node's own store.
    pub async fn apply(&self, ops: &[Op]) -> Result<Vec<OpResult>, Error> {
        let mut results: Vec<Option<OpResult>> = vec![None; ops.len()];
        let mut todo: Vec<usize> = (0..ops.len()).collect();
        // Each round either finishes ops or marks a node down; there are finitely many nodes.
        for _round in 0..=self.forwarders.len() {
            if todo.is_empty() {
                break;
            }
            let now = Instant::now();
            let routes: Vec<NodeId> = {
                let routing = self.routing.lock().unwrap_or_else(PoisonError::into_inner);
                todo.iter()
                    .map(|&i| routing.route(&ops[i].key, now))
                    .collect()
            };
            let mut local_ops = Vec::new();
            let mut waits = Vec::new();
            for (&i, owner) in todo.iter().zip(&routes) {
                match self.forwarders.get(owner) {
                    Some(f) if *owner != self.me => {
                        waits.push((i, owner.clone(), f.send(ops[i].clone())))
                    }
                    _ => local_ops.push(i),
                }
            }
            if !local_ops.is_empty() {
                let batch: Vec<Op> = local_ops.iter().map(|&i| ops[i].clone()).collect();
                for (i, r) in local_ops.iter().zip(self.local.apply(&batch)) {
                    results[*i] = Some(r);
                }
            }
            let mut retry = Vec::new();
            for (i, owner, rx) in waits {
                let outcome = match rx.await {
                    Ok(answer) => answer,
                    Err(_) => Err(Error::Unavailable("forwarder dropped the op".into())),
                };
                match outcome {
                    Ok(r) => results[i] = Some(r),
                    Err(e) => {
                        tracing::warn!(peer = %owner, error = %e, "owner unreachable; its keys move to the next node");
                        self.routing
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .mark_down(&owner, Instant::now(), self.config.down_cooldown);
                        retry.push(i);
                    }
                }
            }
            todo = retry;
        }
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| Error::Unavailable("no node could take the key".into())))
            .collect()
    }
}

//! The nodes under test, as a simulation sees them: what software a node host runs, on which
//! durable disk, and how to tell who owns a key.
//!
//! A node's [`MemStorage`] is created once, outside the host's closure, and handed to every
//! incarnation of the host: a crash drops the node's tasks and connections, a restart opens the
//! same store again. That is a disk that honours fsync: everything acknowledged survives.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use ringkit_kv::error::KvError;
use ringkit_kv::grpc::serve;
use ringkit_kv::model::{ActorId, Object};
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::{MemStorage, StorageExt};

use super::clock::SimClock;
use super::net::{GRPC_PORT, Incoming};

/// What a node host needs to start: its identity, its disk, its clock, and the whole cluster.
#[derive(Clone, Debug)]
pub(crate) struct NodeSpec {
    /// Host name, also the node id.
    pub(crate) name: String,
    /// The durable store, shared by every incarnation of this node.
    pub(crate) disk: MemStorage,
    /// Simulated wall clock, skewed per node.
    pub(crate) clock: SimClock,
    /// Seed for the node's own randomness (gossip), derived from the run's seed.
    pub(crate) seed: u64,
}

/// The software a node host runs: starts serving on the simulated network and returns only
/// when it fails.
pub(crate) type NodeFuture = Pin<Box<dyn Future<Output = turmoil::Result>>>;

/// How a simulated cluster is built; the runner is the same for every kind.
pub(crate) trait SimCluster {
    /// A one-line description for reports.
    fn describe(&self) -> String;

    /// The software of one node host (called again on every restart).
    fn node(&self, spec: NodeSpec) -> NodeFuture;

    /// The node a client sends a request for `key` to, given a random draw in `0..nodes`.
    fn route(&self, key: &str, draw: usize, names: &[String]) -> String;

    /// The nodes that must hold `key` once everything has settled.
    fn owners(&self, key: &[u8], names: &[String]) -> Vec<String>;

    /// Called at the start of every run: forget what the previous run of this cluster left.
    fn begin_run(&self) {}

    /// Whether the ring has reached its final shape (every planned join done, no partition
    /// transfer pending); `Err` says what is still under way. Replicas are judged converged
    /// only once it has.
    fn ring_settled(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Standalone [`KvNode`]s, one per host, serving the public gRPC API: no replication, so each
/// key lives on one "home" node (by key hash) that every client routes to. This proves the
/// plumbing (gRPC over turmoil, crash and restart on a durable disk, simulated time) on its own.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SingleNodes;

/// The home node of `key` among `names`.
fn home(key: &[u8], names: &[String]) -> usize {
    let hash = ringkit_kv::model::key_hash(key);
    usize::try_from(hash % names.len() as u64).unwrap_or(0)
}

impl SimCluster for SingleNodes {
    fn describe(&self) -> String {
        "standalone KvNodes (one home node per key)".to_owned()
    }

    fn node(&self, spec: NodeSpec) -> NodeFuture {
        Box::pin(async move {
            let node = KvNode::new(
                spec.disk,
                NodeConfig::new(spec.name.as_str()),
                Arc::new(spec.clock),
            )?;
            let incoming = Incoming::bind(GRPC_PORT).await?;
            serve(node, incoming, std::future::pending()).await?;
            Ok(())
        })
    }

    fn route(&self, key: &str, _draw: usize, names: &[String]) -> String {
        names[home(key.as_bytes(), names)].clone()
    }

    fn owners(&self, key: &[u8], names: &[String]) -> Vec<String> {
        vec![names[home(key, names)].clone()]
    }
}

/// A fresh disk for node `index` (actor ids are 1-based and distinct).
pub(crate) fn new_disk(index: usize) -> MemStorage {
    MemStorage::new(ActorId(index as u64 + 1))
}

/// Every row a disk holds, tombstones included; `None` once the store is closed, which only a
/// node that stopped for good does (a lost node, whose disk is gone with it).
///
/// # Panics
/// If reading an open store fails (a simulation bug: the in-memory store cannot fail a read).
pub(crate) fn rows(disk: &MemStorage) -> Option<std::collections::BTreeMap<Bytes, Object>> {
    match disk.read_blocking(|view| view.hash_range(&(0..=u64::MAX), None, usize::MAX)) {
        Ok(rows) => Some(rows.into_iter().map(|row| (row.key, row.object)).collect()),
        Err(KvError::Closed) => None,
        Err(e) => panic!("reading a simulated disk: {e}"),
    }
}

/// Shared handle to a cluster kind (the host closures hold it across restarts).
pub(crate) type SharedCluster = Rc<dyn SimCluster>;

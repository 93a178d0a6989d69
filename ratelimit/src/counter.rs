//! Where store operations run: on this node's [`KeyedStore`], or (in a cluster) on each key's
//! owner.

use std::sync::Arc;

use crate::check::{Op, OpKind, OpResult};
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::error::Error;
use crate::store::KeyedStore;

/// Runs operations on this node's store with this node's clock.
#[derive(Clone)]
pub struct LocalCounter {
    /// The keys' state.
    pub store: Arc<KeyedStore>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LocalCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCounter")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl LocalCounter {
    /// A counter over `store`, reading `clock`.
    pub fn new(store: Arc<KeyedStore>, clock: Arc<dyn Clock>) -> Self {
        LocalCounter { store, clock }
    }

    /// Runs `ops` in order, all at the same instant.
    pub fn apply(&self, ops: &[Op]) -> Vec<OpResult> {
        let now = self.clock.now();
        ops.iter()
            .map(|op| match op.kind {
                OpKind::Check => OpResult {
                    decision: Some(self.store.check(&op.key, &op.limit, now, op.cost)),
                    existed: false,
                },
                OpKind::Refund => {
                    self.store.refund(&op.key, &op.limit, now, op.cost);
                    OpResult::default()
                }
                OpKind::Reset => OpResult {
                    decision: None,
                    existed: self.store.reset(&op.key),
                },
            })
            .collect()
    }
}

/// The backend of a [`crate::RateLimiter`].
#[derive(Debug, Clone)]
pub enum Counter {
    /// Single node: everything runs here.
    Local(LocalCounter),
    /// Cluster: each key runs on its owner.
    Cluster(Arc<Cluster>),
}

impl Counter {
    /// Runs `ops`, returning one result per op in order.
    ///
    /// # Errors
    /// Only a cluster can fail, when neither an owner nor any fallback is reachable.
    pub async fn apply(&self, ops: &[Op]) -> Result<Vec<OpResult>, Error> {
        match self {
            Counter::Local(local) => Ok(local.apply(ops)),
            Counter::Cluster(cluster) => cluster.apply(ops).await,
        }
    }

    /// This node's store and clock.
    pub fn local(&self) -> &LocalCounter {
        match self {
            Counter::Local(local) => local,
            Counter::Cluster(cluster) => cluster.local(),
        }
    }
}

//! Settings of a node: limits, namespaces, quorum defaults, admission and maintenance.

use std::time::Duration;

use bytes::Bytes;

use crate::model::Limits;

/// Background maintenance: purging expired keys and reaping tombstones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// How often a maintenance pass runs.
    pub interval: Duration,
    /// Most rows one purge or reap request deletes (bounds the transaction).
    pub batch: usize,
    /// How long a tombstone is kept before a standalone node reaps it. It protects nothing on a
    /// single node (dots are never reissued, so no stale context can hide a new write); it is
    /// kept so that a node later joined to a cluster does not drop deletes too early. `None`
    /// never reaps.
    pub tombstone_grace: Option<Duration>,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            batch: 1000,
            tombstone_grace: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

/// Replication defaults used when a request leaves N, R or W at zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumDefaults {
    /// Replicas per key.
    pub n: u32,
    /// Read quorum.
    pub r: u32,
    /// Write quorum.
    pub w: u32,
}

impl Default for QuorumDefaults {
    fn default() -> Self {
        Self { n: 3, r: 2, w: 2 }
    }
}

/// Settings of a [`KvNode`](super::KvNode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This node's name (shown in Stats; the cluster's member id).
    pub node_id: String,
    /// Request limits.
    pub limits: Limits,
    /// Key prefixes whose writes default to last-write-wins (lossy; see the guide).
    pub lww_prefixes: Vec<Bytes>,
    /// N/R/W defaults.
    pub quorum: QuorumDefaults,
    /// Most write requests admitted at once; more wait (backpressure, not errors).
    pub max_in_flight_writes: usize,
    /// Most read requests admitted at once.
    pub max_in_flight_reads: usize,
    /// Purging and reaping.
    pub maintenance: MaintenanceConfig,
}

impl NodeConfig {
    /// Defaults for a node name.
    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            limits: Limits::default(),
            lww_prefixes: Vec::new(),
            quorum: QuorumDefaults::default(),
            max_in_flight_writes: 4096,
            max_in_flight_reads: 4096,
            maintenance: MaintenanceConfig::default(),
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id.is_empty() {
            return Err("node_id must not be empty".to_owned());
        }
        self.limits.validate()?;
        let q = self.quorum;
        if q.n == 0 || q.r == 0 || q.w == 0 || q.r > q.n || q.w > q.n {
            return Err(format!(
                "quorum defaults must satisfy 1 <= R, W <= N (got N={}, R={}, W={})",
                q.n, q.r, q.w
            ));
        }
        if self.max_in_flight_writes == 0 || self.max_in_flight_reads == 0 {
            return Err(
                "max_in_flight_writes and max_in_flight_reads must be at least 1".to_owned(),
            );
        }
        if self.maintenance.interval.is_zero() || self.maintenance.batch == 0 {
            return Err("maintenance interval and batch must be non-zero".to_owned());
        }
        Ok(())
    }
}

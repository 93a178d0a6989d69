//! The node: the async request API over a store, its settings, and background maintenance.

mod config;
mod cursor;
mod kv_node;
mod maintenance;
mod multi;
mod quorum;
mod replica;
mod types;

pub use config::{MaintenanceConfig, NodeConfig, QuorumDefaults};
pub(crate) use cursor::encode_cursor;
pub use kv_node::KvNode;
pub use maintenance::MaintenanceReport;
pub use quorum::{MAX_N, Quorum, QuorumMode};
pub use types::{DeleteOutcome, NodeStats, Put, PutOutcome, Scan, ScanPage, Value, Versioned};

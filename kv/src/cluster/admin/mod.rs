//! Explicit ownership changes (join, leave, remove) decided by one claimant, and the `KvAdmin`
//! gRPC service that exposes them with the cluster's state.
//!
//! # Layout
//! - `claim`: sans-IO: who decides ([`claimant`], [`decider`]) and what a [`RingChange`] makes
//!   of the map ([`apply`]).
//! - `topology`: [`Topology`], this node's map authority (decide or forward, install newer
//!   maps, spread epochs by gossip and pull announced ones).
//! - `service`: [`KvAdminService`], the gRPC service.
//! - `convert`: protobuf <-> core types.
//! - `persist`: the map saved in the data directory, restored at start.

mod claim;
#[cfg(test)]
mod claim_tests;
pub mod convert;
pub mod persist;
mod service;
#[cfg(test)]
mod service_tests;
mod topology;

pub use claim::{Applied, RingChange, TransferDone, apply, claimant, decider};
pub use service::{AaeSource, HandoffSource, KvAdminService};
pub use topology::{Topology, TopologyConfig};

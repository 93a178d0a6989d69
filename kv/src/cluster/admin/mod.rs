//! Explicit ownership changes (join, leave, remove) decided by one claimant, and the `KvAdmin`
//! gRPC service that exposes them with the cluster's state.
//!
//! # Layout
//! - `claim`: sans-IO: who decides ([`claimant`], [`decider`]) and what a [`RingChange`] makes
//!   of the map ([`apply`]).

mod claim;
#[cfg(test)]
mod claim_tests;

pub use claim::{Applied, RingChange, apply, claimant, decider};

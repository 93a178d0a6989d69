//! Hinted handoff: durable hints for replicas that could not be reached, handed back when they
//! return.
//!
//! When a write cannot reach one of its replicas, a sloppy-quorum stand-in (or the coordinator
//! itself) keeps the object as a *hint* for that replica, in the same SQLite group commit as any
//! write ([`store_hints`]). Hints live apart from the node's data (reads and anti-entropy never
//! see them), one per (target, key), merged so that concurrent writes stay siblings. The handoff
//! task ([`spawn_handoff`]) delivers them in batches of 256 with a plain merge whenever the live
//! set shows the target alive, then drops each one only if it did not change meanwhile; the hints
//! of a node off the ring, and every hint of a node that is leaving, go to each key's current
//! replicas instead. Design and
//! trade-offs: `docs/adr/0420-kv-hints.md`.
//!
//! # Layout
//! - [`store`](store_hints): keeping hints, and reading the backlog ([`pending_hints`]).
//! - `planner`: [`HandoffPlanner`], the sans-IO decisions (who is due, backoff).
//! - `deliver`: one batch (read, merge on the target, drop if unchanged).
//! - `redirect`: one batch of hints to each key's current replicas instead of the target (the
//!   target left the ring, or this node is leaving).
//! - `handoff`: the tokio task ([`spawn_handoff`], [`HandoffHandle`]).
//! - `config`: [`HandoffConfig`].

mod config;
mod deliver;
mod handoff;
mod planner;
mod redirect;
#[cfg(test)]
mod redirect_tests;
mod store;
#[cfg(test)]
mod testkit;

pub use config::HandoffConfig;
pub use handoff::{HandoffHandle, HandoffStats, spawn_handoff};
pub use planner::{BatchReport, Handoff, HandoffPlanner};
pub use store::{pending_hints, store_hints};

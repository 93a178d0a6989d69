//! SWIM gossip for liveness: a thin tokio shell over the sans-IO
//! [`Membership`](ringkit_hashring::membership::Membership) of ringkit-hashring.
//!
//! [`spawn`] runs one member on a [`DatagramSocket`] (tokio UDP in production, turmoil UDP in
//! the simulation) and publishes the [`LiveSet`](super::topology::LiveSet) on a `watch`
//! channel. Liveness only: the ring changes by explicit join/leave/remove (see `admin`), never
//! because gossip declared a node down. Gossip also spreads ring versions
//! ([`GossipHandle::ring_announcements`]).
//!
//! # Layout
//! - `socket`: the [`DatagramSocket`] trait and its tokio implementation.
//! - `config`: [`GossipConfig`].
//! - `runtime`: [`spawn`] and [`GossipHandle`].

mod config;
mod runtime;
mod socket;
#[cfg(test)]
mod tests;

pub use config::{GossipConfig, fresh_incarnation};
pub use runtime::{GossipHandle, spawn};
pub use socket::DatagramSocket;

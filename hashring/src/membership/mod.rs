//! SWIM liveness (feature `membership`): who is up, decided by gossip, never by the ring.
//!
//! [`Membership`] wraps [foca](https://docs.rs/foca) (SWIM with suspicion) as a pure state
//! machine: datagrams and the time go in, datagrams, timers and [`MemberEvent`]s come out, and
//! [`Membership::live_nodes`] is the set of live members. The ring is *not* changed by any of
//! this: a crashed node is not a departed node (hinted handoff covers it); ownership changes
//! only by explicit `with_node` / `without_node`. Ring versions do travel here though: a
//! [`RingAnnouncement`] piggybacks "epoch E is at node X" on the gossip so members know when to
//! pull a newer ring.
//!
//! Identities ([`MemberIdentity`]) carry a life counter, so a restarted node rejoins as a new
//! identity that supersedes its old one at once instead of waiting for the old verdict to expire.

mod broadcast;
mod config;
mod event;
mod identity;
mod machine;
#[cfg(test)]
mod tests;

pub use broadcast::RingAnnouncement;
pub use config::MembershipConfig;
pub use event::{MemberEvent, MemberState, MemberStatus, Transmit};
pub use identity::MemberIdentity;
pub use machine::Membership;

//! Consistent hashing shared by every ringkit service: where a key lives, who else holds it, and
//! what moves when the cluster changes.
//!
//! Everything here is pure: no I/O, no clocks, no randomness, no `std::hash`. A key's bytes are
//! hashed once with [`key_hash`] (xxh3-64, fixed seed [`KEY_HASH_SEED`]) and every strategy places
//! that `u64` with integer arithmetic, so all processes, platforms and versions agree; golden
//! vectors in `tests/` fail if any placement changes.
//!
//! The default for stateful data is the [`PartitionedRing`] (Dynamo's "strategy 3"): `Q = 2^k`
//! equal hash ranges, each with a stored, zone-spread list of replicas, assigned in proportion to
//! weight. Every strategy implements [`Placement`], whose lookups never allocate.
//!
//! ```
//! use ringkit_hashring::{Node, PartitionedRing, Placement, RingConfig};
//!
//! let nodes = [
//!     Node::new("a").with_zone("z1"),
//!     Node::new("b").with_zone("z2"),
//!     Node::new("c").with_zone("z3"),
//!     Node::new("d").with_zone("z1").with_weight(2),
//! ];
//! let ring = PartitionedRing::new(RingConfig::for_cluster_size(nodes.len()), nodes)?;
//!
//! // Three replicas in three distinct zones, then the fallback for a sloppy quorum.
//! let list: Vec<_> = ring.preference_list(b"user:42", 3).collect();
//! assert_eq!(list.len(), 4);
//! let zones: std::collections::HashSet<_> =
//!     list[..3].iter().map(|id| ring.node(id).unwrap().zone.clone()).collect();
//! assert_eq!(zones.len(), 3);
//!
//! // A join streams data only to the new node; the diff drives the handoff.
//! let grown = ring.with_node(Node::new("e").with_zone("z2"))?;
//! for (from, to) in ring.diff(&grown).transfers().keys() {
//!     assert_eq!(to.as_str(), "e", "{from:?} -> {to}");
//! }
//! # Ok::<(), ringkit_hashring::HashRingError>(())
//! ```
//!
//! # Features
//!
//! - `tonic`: `impl From<HashRingError> for tonic::Status` for services that return ring errors
//!   over gRPC. Off by default, so the crate stays free of any runtime dependency.
//!
//! - `membership`: `membership::Membership`, a sans-IO SWIM member (foca) that reports the
//!   set of live nodes and spreads ring versions by gossip. Liveness never changes the ring:
//!   ownership changes only by explicit `with_node` / `without_node`.
//!
//! # Layout
//!
//! - `hash`: [`key_hash`] and the seed; the only place bytes become numbers.
//! - `node`: [`NodeId`] and [`Node`] (weight, zone).
//! - `error`: [`HashRingError`], the crate's one error type.
//! - `placement`: the [`Placement`] trait.
//! - `preference`: [`PreferenceList`], the allocation-free replica and fallback walk.
//! - `topology`: the validated, indexed node set and the zone-spread rule (internal).
//! - `partitioned/`: `config` ([`RingConfig`]), `ring` ([`PartitionedRing`]), `quota` and
//!   `claim` (who holds each slot, and why), `diff` ([`RingDiff`]), `repr` (the checked serde
//!   form).
//! - `token`: [`TokenRing`], the classic ring with virtual nodes (ketama).
//! - `jump`: [`JumpHash`], jump consistent hash over numbered buckets.
//! - `rendezvous`: [`Rendezvous`], weighted highest-random-weight hashing in integers.
//! - `maglev`: [`Maglev`], Google's lookup-table hash.
//! - `bounded`: [`BoundedLoad`], bounded-load choice over any strategy, for load-aware routing.
//! - `membership/` (feature `membership`): `identity`, `config`, `machine` (the state machine),
//!   `broadcast` (ring-version announcements), `event` (its outputs).

mod bounded;
mod error;
mod hash;
mod jump;
mod maglev;
#[cfg(feature = "membership")]
pub mod membership;
mod node;
mod partitioned;
mod placement;
mod preference;
mod rendezvous;
mod token;
mod topology;

pub use bounded::BoundedLoad;
pub use error::HashRingError;
pub use hash::{KEY_HASH_SEED, key_hash};
pub use jump::JumpHash;
pub use maglev::{MAX_MAGLEV_TABLE, Maglev};
pub use node::{Node, NodeId};
pub use partitioned::{
    MAX_PARTITIONS, MAX_REPLICAS, NodeLoad, PARTITIONS_PER_NODE, PartitionId, PartitionMove,
    PartitionedRing, RingConfig, RingDiff,
};
pub use placement::Placement;
pub use preference::PreferenceList;
pub use rendezvous::Rendezvous;
pub use token::TokenRing;

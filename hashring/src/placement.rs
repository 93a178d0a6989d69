//! The one trait every strategy implements.

use crate::hash::key_hash;
use crate::{Node, NodeId, PreferenceList};

/// Where keys live: one interface over every strategy, so callers can switch strategy by config.
///
/// Implementations are pure values: no I/O, no clocks, no interior mutability, and lookups never
/// allocate. Every method has a `*_hash` twin taking the [`key_hash`] of the key, for callers that
/// store the hash next to the data (storage derives partitions and owners from it without the key).
/// The trait is object safe (`&dyn Placement` works).
pub trait Placement {
    /// The owner (first replica) of a key with this hash. `None` only for a strategy with no nodes,
    /// which this crate's constructors refuse to build.
    fn owner_of_hash(&self, hash: u64) -> Option<&NodeId>;

    /// The preference list of a key with this hash: `n` distinct zone-spread replicas, then every
    /// other node as a sloppy-quorum fallback (see [`PreferenceList`] for the exact guarantees and
    /// what happens when `n` exceeds the node count).
    fn preference_list_of_hash(&self, hash: u64, n: usize) -> PreferenceList<'_>;

    /// The members, in the strategy's canonical order (sorted by id, except [`JumpHash`] which
    /// keeps bucket order).
    ///
    /// [`JumpHash`]: crate::JumpHash
    fn nodes(&self) -> &[Node];

    /// The owner of `key`: `owner_of_hash(key_hash(key))`.
    fn owner(&self, key: &[u8]) -> Option<&NodeId> {
        self.owner_of_hash(key_hash(key))
    }

    /// The preference list of `key`: `preference_list_of_hash(key_hash(key), n)`.
    fn preference_list(&self, key: &[u8], n: usize) -> PreferenceList<'_> {
        self.preference_list_of_hash(key_hash(key), n)
    }

    /// [`owner`](Self::owner) for string keys (hashes the UTF-8 bytes).
    fn owner_str(&self, key: &str) -> Option<&NodeId> {
        self.owner(key.as_bytes())
    }

    /// [`preference_list`](Self::preference_list) for string keys (hashes the UTF-8 bytes).
    fn preference_list_str(&self, key: &str, n: usize) -> PreferenceList<'_> {
        self.preference_list(key.as_bytes(), n)
    }
}

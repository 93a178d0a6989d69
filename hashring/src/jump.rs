//! [`JumpHash`]: Lamping and Veach's jump consistent hash over an ordered list of nodes.

use crate::hash::mix;
use crate::preference::INLINE_HEAD;
use crate::topology::Topology;
use crate::{HashRingError, Node, NodeId, Placement, PreferenceList};

/// Salt of the fallback walk's seed, so each strategy's walk is its own.
const WALK_SALT: u64 = u64::from_le_bytes(*b"jmp-walk");

/// Jump consistent hash (Lamping & Veach, 2014): no table at all, perfect balance, and the
/// minimum movement when a node is added at or removed from the **end** of the list.
///
/// Nodes are buckets `0..n` in the order given (this is the one strategy that keeps the caller's
/// order, because bucket numbers are its identity). Removing a node from the middle renumbers the
/// buckets after it and moves far more than its share, so use jump hash where membership only
/// grows and shrinks at the end (sharded storage with numbered shards, StatefulSet ordinals).
/// Weights are not supported (every weight must be 1) and lookup costs `O(ln n)`.
///
/// The preference list is the owner, then the rest of the cluster in the zone-spread fallback
/// walk; only the owner enjoys jump hash's minimal movement.
#[derive(Clone, Debug)]
pub struct JumpHash {
    /// The members in bucket order (the caller's order).
    topo: Topology,
}

impl JumpHash {
    /// Jump hash over `nodes`, bucket `i` being the `i`-th node.
    ///
    /// # Errors
    /// [`HashRingError::EmptyRing`], [`HashRingError::DuplicateNode`],
    /// [`HashRingError::BadNodeId`], or [`HashRingError::BadWeight`] for a weight other than 1.
    pub fn new(nodes: impl IntoIterator<Item = Node>) -> Result<Self, HashRingError> {
        let topo = Topology::new(nodes, true)?;
        if let Some(node) = topo.nodes.iter().find(|n| n.weight != 1) {
            return Err(HashRingError::BadWeight {
                node: node.id.clone(),
                weight: node.weight,
                reason: "jump hash has no weights: use weight 1, or Rendezvous / PartitionedRing",
            });
        }
        Ok(Self { topo })
    }

    /// The bucket (node index) of a key hash.
    #[inline]
    #[must_use]
    pub fn bucket(&self, hash: u64) -> u32 {
        jump(hash, self.topo.len() as u32)
    }
}

/// The published algorithm with one change: its floating-point step
/// `(b + 1) * (2^31 / ((key >> 33) + 1))` is computed as the exact integer quotient
/// `(b + 1) * 2^31 / ((key >> 33) + 1)` (at most 2^63, no overflow), so no float touches
/// placement. The two differ by at most one, only where the float rounds across an integer; the
/// next bucket bound stays above `b`, so consistency and balance are unchanged, but bucket numbers
/// can differ from other jump-hash implementations for rare keys.
#[inline]
fn jump(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as u64 * (1u64 << 31) / ((key >> 33) + 1)) as i64;
    }
    b as u32
}

impl Placement for JumpHash {
    #[inline]
    fn owner_of_hash(&self, hash: u64) -> Option<&NodeId> {
        Some(self.topo.id(self.bucket(hash)))
    }

    fn preference_list_of_hash(&self, hash: u64, n: usize) -> PreferenceList<'_> {
        let mut head = [0u32; INLINE_HEAD];
        head[0] = self.bucket(hash);
        PreferenceList::from_inline(&self.topo, head, 1, n, mix(hash, WALK_SALT))
    }

    fn nodes(&self) -> &[Node] {
        &self.topo.nodes
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn integer_quotient_matches_the_float_formula() {
        let mut key = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            key = key.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let b = (key % 5000) as i64;
            let float = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
            let int = ((b + 1) as u64 * (1u64 << 31) / ((key >> 33) + 1)) as i64;
            assert!((float - int).abs() <= 1, "{float} vs {int}");
        }
    }
}

//! [`Rendezvous`]: weighted highest-random-weight hashing, in integers only.

use std::cmp::Ordering;

use crate::hash::mix;
use crate::preference::INLINE_HEAD;
use crate::topology::{NONE, Topology, spread_ok};
use crate::{HashRingError, Node, NodeId, Placement, PreferenceList};

/// Salt of the fallback walk's seed, so each strategy's walk is its own.
const WALK_SALT: u64 = u64::from_le_bytes(*b"hrw-walk");

/// Rendezvous or highest-random-weight hashing (Thaler & Ravishankar, 1996), with weights.
///
/// Every node scores every key and the key goes to the best score; replicas are the next best.
/// It needs no table and no shared state beyond the member list, is a pure function of the node
/// set, and is exactly minimal: a join only takes keys (and replica slots) for itself, a departure
/// only releases its own. Lookups cost `O(n)` score computations, so it suits small clusters or
/// the choice among a few candidates (backends of one shard, shards of one tenant).
///
/// **Scoring without floats.** The textbook weighted score is `w / -ln(u)` with
/// `u = h / 2^64` uniform in (0, 1) and `h = mix(key_hash, node_hash)` (Schindelhauer &
/// Schomaker's logarithmic method, which gives each node exactly its weight's share). Since
/// `-ln(u) = ln 2 * -log2(u)` and `ln 2` is common to all nodes, we compare `w / -log2(u)`, with
/// `-log2(u) = 64 - log2(h)` computed in 32.32 fixed point by repeated squaring: two candidates
/// are ordered by cross-multiplying `w_a * d_b` against `w_b * d_a` in `u128`. When all weights
/// are equal the score is monotone in `h`, so the raw hash is compared directly (the fast path).
/// Ties (equal scores) go to the higher node hash, then the smaller id.
#[derive(Clone, Debug)]
pub struct Rendezvous {
    /// The members, sorted by id.
    topo: Topology,
    /// Whether every node has the same weight (then scores compare by raw hash).
    uniform: bool,
}

/// A node's score for one key: compare with [`Score::beats`].
#[derive(Clone, Copy, Debug)]
struct Score {
    weight: u32,
    /// `-log2(h / 2^64)` in 32.32 fixed point, at least 1; or the raw hash on the uniform path.
    value: u64,
    node_hash: u64,
}

impl Rendezvous {
    /// Rendezvous hashing over `nodes`.
    ///
    /// # Errors
    /// The node-set errors of [`PartitionedRing::new`](crate::PartitionedRing::new).
    pub fn new(nodes: impl IntoIterator<Item = Node>) -> Result<Self, HashRingError> {
        let topo = Topology::new(nodes, false)?;
        let uniform = topo.nodes.windows(2).all(|w| w[0].weight == w[1].weight);
        Ok(Self { topo, uniform })
    }

    /// The same strategy with `node` added.
    ///
    /// # Errors
    /// [`HashRingError::DuplicateNode`], or as [`new`](Self::new).
    pub fn with_node(&self, node: Node) -> Result<Self, HashRingError> {
        Self::new(self.topo.plus(node)?)
    }

    /// The same strategy without node `id`.
    ///
    /// # Errors
    /// [`HashRingError::UnknownNode`], [`HashRingError::EmptyRing`].
    pub fn without_node(&self, id: &NodeId) -> Result<Self, HashRingError> {
        Self::new(self.topo.minus(id)?)
    }

    #[inline]
    fn score(&self, hash: u64, node: u32) -> Score {
        let node_hash = self.topo.node_hash[node as usize];
        let h = mix(hash, node_hash);
        Score {
            weight: self.topo.nodes[node as usize].weight,
            value: if self.uniform { h } else { neg_log2_fixed(h) },
            node_hash,
        }
    }

    /// Orders two scores: `Greater` means `a` wins.
    #[inline]
    fn compare(&self, a: &Score, b: &Score) -> Ordering {
        let by_score = if self.uniform {
            a.value.cmp(&b.value)
        } else {
            // a wins when w_a / d_a > w_b / d_b, i.e. w_a * d_b > w_b * d_a.
            (u128::from(a.weight) * u128::from(b.value))
                .cmp(&(u128::from(b.weight) * u128::from(a.value)))
        };
        by_score.then(a.node_hash.cmp(&b.node_hash))
    }

    /// Index of the winning node for `hash` (ties between equal node hashes go to the lower
    /// index, i.e. the smaller id).
    fn winner(&self, hash: u64) -> u32 {
        let mut best = 0u32;
        let mut best_score = self.score(hash, 0);
        for node in 1..self.topo.len() as u32 {
            let s = self.score(hash, node);
            if self.compare(&s, &best_score) == Ordering::Greater {
                best = node;
                best_score = s;
            }
        }
        best
    }
}

/// `-log2(h / 2^64) = 64 - log2(h)` in 32.32 fixed point, by the bit-by-bit squaring method
/// (integer only, identical on every platform). Never 0, so it can divide.
fn neg_log2_fixed(h: u64) -> u64 {
    let h = h | 1;
    let int = 63 - u64::from(h.leading_zeros());
    // Mantissa in [1, 2) with 63 fractional bits.
    let mut m = u128::from(h << (63 - int));
    let mut frac = 0u64;
    for bit in (0..32).rev() {
        m = (m * m) >> 63;
        if m >= 1u128 << 64 {
            m >>= 1;
            frac |= 1 << bit;
        }
    }
    let log2 = (int << 32) | frac;
    ((64u64 << 32) - log2).max(1)
}

impl Placement for Rendezvous {
    fn owner_of_hash(&self, hash: u64) -> Option<&NodeId> {
        Some(self.topo.id(self.winner(hash)))
    }

    /// The top-scoring nodes that keep the list spread over zones (up to 8), then the
    /// zone-spread fallback walk. Costs `O(n)` scores per replica.
    fn preference_list_of_hash(&self, hash: u64, n: usize) -> PreferenceList<'_> {
        let want = n.clamp(1, INLINE_HEAD).min(self.topo.len());
        let mut head = [NONE; INLINE_HEAD];
        for len in 0..want {
            let mut best: Option<(u32, Score)> = None;
            for node in 0..self.topo.len() as u32 {
                if head[..len].contains(&node) {
                    continue;
                }
                let s = self.score(hash, node);
                if best.is_some_and(|(_, b)| self.compare(&s, &b) != Ordering::Greater) {
                    continue;
                }
                head[len] = node;
                if spread_ok(&self.topo, head[..=len].iter().copied()) {
                    best = Some((node, s));
                }
            }
            head[len] = best.map_or(NONE, |(node, _)| node);
        }
        PreferenceList::from_inline(&self.topo, head, want, n, mix(hash, WALK_SALT))
    }

    fn nodes(&self) -> &[Node] {
        &self.topo.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_log_matches_known_values() {
        // h = 2^63 is u = 1/2: -log2 = 1.
        assert_eq!(neg_log2_fixed(1 << 63), 1 << 32);
        // h = 2^62 is u = 1/4: -log2 = 2.
        assert_eq!(neg_log2_fixed(1 << 62), 2 << 32);
        // u = 3/4: -log2(0.75) = 0.415037...; within 2^-30 of it.
        let got = neg_log2_fixed(3 << 62) as f64 / 4_294_967_296.0;
        assert!((got - 0.415_037_499_278_843_8).abs() < 1e-9, "{got}");
        assert!(neg_log2_fixed(u64::MAX) >= 1);
    }
}

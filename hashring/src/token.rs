//! [`TokenRing`]: the classic consistent-hash ring with virtual nodes.

use crate::hash::mix;
use crate::preference::INLINE_HEAD;
use crate::topology::{NONE, Topology, spread_ok};
use crate::{HashRingError, Node, NodeId, Placement, PreferenceList};

/// Salt of the fallback walk's seed, so each strategy's walk is its own.
const WALK_SALT: u64 = u64::from_le_bytes(*b"tok-walk");

/// Most tokens a ring may hold (16 M: 200 MB of tokens would be a configuration mistake).
const MAX_TOKENS: u64 = 1 << 24;

/// The classic consistent-hash ring (Karger et al.; ketama, Cassandra before vnode allocation):
/// every node puts `vnodes * weight` tokens on the 64-bit circle and a key belongs to the first
/// token at or after its hash.
///
/// It is a pure function of the node set (so independent of insertion order) and minimally
/// disruptive: a join only takes keys, a departure only gives its own away. Its weakness is
/// balance, which improves only with the square root of the token count (about 1.10 / 1.20 / 1.29
/// peak-to-mean at 10 / 100 / 1000 nodes with 160 vnodes) and lookup is a binary search.
/// Prefer [`PartitionedRing`](crate::PartitionedRing) for stateful data; use this one for
/// compatibility with existing ring deployments or when no ring state can be shared.
///
/// Token `i` of a node sits at `mix(key_hash(id), i)`. The preference list walks clockwise from
/// the key, taking each new physical node that keeps the list spread over zones, for up to 8
/// replicas; the rest of the cluster follows as fallbacks (the zone-spread walk of
/// [`PreferenceList`]). With very uneven zones the walk may go far round the ring to find a node
/// of a rare zone.
#[derive(Clone, Debug)]
pub struct TokenRing {
    /// The members, sorted by id.
    topo: Topology,
    /// Tokens per unit of weight, kept for `with_node` / `without_node`.
    vnodes: u32,
    /// Token positions, ascending.
    tokens: Vec<u64>,
    /// Node index owning each token.
    owners: Vec<u32>,
}

impl TokenRing {
    /// A ring giving each node `vnodes * weight` tokens (160 is ketama's choice).
    ///
    /// # Errors
    /// [`HashRingError::BadConfig`] if `vnodes` is 0 or the ring would exceed 16 M tokens; the
    /// node-set errors of [`PartitionedRing::new`](crate::PartitionedRing::new).
    pub fn new(vnodes: u32, nodes: impl IntoIterator<Item = Node>) -> Result<Self, HashRingError> {
        let topo = Topology::new(nodes, false)?;
        let total: u64 = topo
            .nodes
            .iter()
            .map(|n| u64::from(n.weight) * u64::from(vnodes))
            .sum();
        if vnodes == 0 || total > MAX_TOKENS {
            return Err(HashRingError::BadConfig {
                field: "vnodes",
                reason: format!(
                    "{vnodes} vnodes per unit of weight gives {total} tokens; use 1 or more, and \
                     keep vnodes * total weight under {MAX_TOKENS} (160 with small weights is usual)"
                ),
            });
        }
        let mut entries: Vec<(u64, u64, u32)> = Vec::with_capacity(total as usize);
        for (i, node) in topo.nodes.iter().enumerate() {
            let h = topo.node_hash[i];
            for t in 0..u64::from(node.weight) * u64::from(vnodes) {
                entries.push((mix(h, t), h, i as u32));
            }
        }
        // Colliding tokens are ordered by node hash, then index (ids are sorted): deterministic.
        entries.sort_unstable();
        Ok(Self {
            vnodes,
            tokens: entries.iter().map(|e| e.0).collect(),
            owners: entries.iter().map(|e| e.2).collect(),
            topo,
        })
    }

    /// The ring with `node` added (same vnode count).
    ///
    /// # Errors
    /// [`HashRingError::DuplicateNode`], or as [`new`](Self::new).
    pub fn with_node(&self, node: Node) -> Result<Self, HashRingError> {
        Self::new(self.vnodes, self.topo.plus(node)?)
    }

    /// The ring without node `id`.
    ///
    /// # Errors
    /// [`HashRingError::UnknownNode`], [`HashRingError::EmptyRing`].
    pub fn without_node(&self, id: &NodeId) -> Result<Self, HashRingError> {
        Self::new(self.vnodes, self.topo.minus(id)?)
    }

    /// The token positions, ascending: the points where ownership changes (a key belongs to the
    /// first token at or after its hash).
    #[must_use]
    pub fn tokens(&self) -> &[u64] {
        &self.tokens
    }

    /// Index of the token owning `hash`: the first token at or after it, wrapping to token 0.
    #[inline]
    fn token_of(&self, hash: u64) -> usize {
        let i = self.tokens.partition_point(|&t| t < hash);
        if i == self.tokens.len() { 0 } else { i }
    }

    /// Exact share of the hash space each node owns, in node order (the arcs ending at its
    /// tokens). The values sum to 2^64.
    #[must_use]
    pub fn keyspace_shares(&self) -> Vec<u128> {
        let mut share = vec![0u128; self.topo.len()];
        for (i, &t) in self.tokens.iter().enumerate() {
            let arc = if i == 0 {
                // From past the last token around through 0 to the first token.
                u128::from(t) + (1u128 << 64) - u128::from(self.tokens[self.tokens.len() - 1])
            } else {
                u128::from(t - self.tokens[i - 1])
            };
            share[self.owners[i] as usize] += arc;
        }
        share
    }
}

impl Placement for TokenRing {
    #[inline]
    fn owner_of_hash(&self, hash: u64) -> Option<&NodeId> {
        Some(self.topo.id(self.owners[self.token_of(hash)]))
    }

    fn preference_list_of_hash(&self, hash: u64, n: usize) -> PreferenceList<'_> {
        let start = self.token_of(hash);
        let tokens = self.tokens.len();
        let mut head = [NONE; INLINE_HEAD];
        let want = n.clamp(1, INLINE_HEAD).min(self.topo.len());
        let mut len = 0;
        // Clockwise, taking each new physical node that keeps the list spread over zones. A node
        // passed over because its zone was ahead can be right once other zones run out, so a
        // second lap picks up what the first could not take.
        'laps: for _lap in 0..2 {
            for d in 0..tokens {
                if len == want {
                    break 'laps;
                }
                let node = self.owners[(start + d) % tokens];
                if head[..len].contains(&node) {
                    continue;
                }
                head[len] = node;
                if spread_ok(&self.topo, head[..=len].iter().copied()) {
                    len += 1;
                } else {
                    head[len] = NONE;
                }
            }
        }
        PreferenceList::from_inline(&self.topo, head, len, n, mix(hash, WALK_SALT))
    }

    fn nodes(&self) -> &[Node] {
        &self.topo.nodes
    }
}

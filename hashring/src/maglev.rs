//! [`Maglev`]: Google's lookup-table consistent hash, with weights.

use crate::hash::{mix, reduce};
use crate::preference::INLINE_HEAD;
use crate::topology::{NONE, Topology};
use crate::{HashRingError, Node, NodeId, Placement, PreferenceList};

/// Salt of the fallback walk's seed, so each strategy's walk is its own.
const WALK_SALT: u64 = u64::from_le_bytes(*b"mag-walk");

/// Largest table [`Maglev`] accepts (about 16 M entries, 64 MB).
pub const MAX_MAGLEV_TABLE: u64 = 16_777_259;

/// Maglev hashing (Eisenbud et al., NSDI 2016): a prime-sized lookup table filled by letting
/// nodes take turns claiming their next preferred free entry.
///
/// Lookup is one multiply and one array read; balance is within one entry per node (peak/mean
/// ~1.00 with a table of 100 entries per node); it is a pure function of the node set. It is
/// **not** minimally disruptive: when membership changes, some entries move between surviving
/// nodes too (the table's fill order shifts). The crate's balance report measures how far from
/// the ideal it is. Good for stateless load balancing, where a few extra moved connections are
/// cheap and fast lookup matters.
///
/// Node `i`'s preference sequence is `offset + j * skip (mod M)` with `offset = mix(h, 1) mod M`
/// and `skip = mix(h, 2) mod (M - 1) + 1` (`h` the node hash). Weights are honoured by turns: in
/// round `r` a node of weight `w` claims `floor((r + 1) * w / max_w) - floor(r * w / max_w)`
/// entries (0 or 1), so entries are shared in proportion to weight, in integers.
#[derive(Clone, Debug)]
pub struct Maglev {
    /// The members, sorted by id.
    topo: Topology,
    /// Node index of each of the M entries.
    table: Vec<u32>,
}

impl Maglev {
    /// Maglev with the default table size: the smallest prime at least `max(65537, 100 * n)`.
    ///
    /// # Errors
    /// The node-set errors of [`PartitionedRing::new`](crate::PartitionedRing::new);
    /// [`HashRingError::BadConfig`] if the cluster needs a table above [`MAX_MAGLEV_TABLE`].
    pub fn new(nodes: impl IntoIterator<Item = Node>) -> Result<Self, HashRingError> {
        let topo = Topology::new(nodes, false)?;
        let size = next_prime((100 * topo.len() as u64).max(65_537));
        Self::build(topo, size)
    }

    /// Maglev with an explicit table size, which must be a prime larger than the node count
    /// (100 entries per node keeps balance within 1%).
    ///
    /// # Errors
    /// [`HashRingError::BadConfig`] if `table_size` is not prime, not above the node count or
    /// above [`MAX_MAGLEV_TABLE`]; the node-set errors.
    pub fn with_table_size(
        nodes: impl IntoIterator<Item = Node>,
        table_size: u64,
    ) -> Result<Self, HashRingError> {
        Self::build(Topology::new(nodes, false)?, table_size)
    }

    /// The same table size with `node` added.
    ///
    /// # Errors
    /// [`HashRingError::DuplicateNode`], or as [`with_table_size`](Self::with_table_size).
    pub fn with_node(&self, node: Node) -> Result<Self, HashRingError> {
        Self::with_table_size(self.topo.plus(node)?, self.table.len() as u64)
    }

    /// The same table size without node `id`.
    ///
    /// # Errors
    /// [`HashRingError::UnknownNode`], [`HashRingError::EmptyRing`].
    pub fn without_node(&self, id: &NodeId) -> Result<Self, HashRingError> {
        Self::with_table_size(self.topo.minus(id)?, self.table.len() as u64)
    }

    /// Number of table entries, M.
    #[must_use]
    pub fn table_size(&self) -> usize {
        self.table.len()
    }

    fn build(topo: Topology, size: u64) -> Result<Self, HashRingError> {
        if size > MAX_MAGLEV_TABLE || size <= topo.len() as u64 || !is_prime(size) {
            return Err(HashRingError::BadConfig {
                field: "table_size",
                reason: format!(
                    "{size} must be a prime above the node count ({}) and at most \
                     {MAX_MAGLEV_TABLE}; about 100 entries per node is a good size",
                    topo.len()
                ),
            });
        }
        let m = size;
        let offset: Vec<u64> = topo.node_hash.iter().map(|&h| mix(h, 1) % m).collect();
        let skip: Vec<u64> = topo
            .node_hash
            .iter()
            .map(|&h| mix(h, 2) % (m - 1) + 1)
            .collect();
        let max_weight = u64::from(topo.nodes.iter().map(|n| n.weight).max().unwrap_or(1));
        let mut next = vec![0u64; topo.len()];
        let mut table = vec![NONE; m as usize];
        let mut filled = 0u64;
        let mut round = 0u64;
        while filled < m {
            for i in 0..topo.len() {
                let w = u64::from(topo.nodes[i].weight);
                let turns = (round + 1) * w / max_weight - round * w / max_weight;
                for _ in 0..turns {
                    // Each node's sequence is a permutation of 0..m (m prime, skip in 1..m), and
                    // a free entry remains, so this finds one.
                    let mut c = (offset[i] + next[i] * skip[i]) % m;
                    while table[c as usize] != NONE {
                        next[i] += 1;
                        c = (offset[i] + next[i] * skip[i]) % m;
                    }
                    table[c as usize] = i as u32;
                    next[i] += 1;
                    filled += 1;
                    if filled == m {
                        break;
                    }
                }
                if filled == m {
                    break;
                }
            }
            round += 1;
        }
        Ok(Self { topo, table })
    }

    /// The table entry a hash falls in.
    #[inline]
    fn entry(&self, hash: u64) -> usize {
        reduce(hash, self.table.len() as u64) as usize
    }

    /// Exact share of the hash space each node owns, in node order: for each table entry, the
    /// number of 64-bit hashes that map to it. The values sum to 2^64.
    #[must_use]
    pub fn keyspace_shares(&self) -> Vec<u128> {
        let m = self.table.len() as u128;
        // Entry k receives the hashes h with floor(h * m / 2^64) = k.
        let first = |k: u128| (k << 64).div_ceil(m);
        let mut share = vec![0u128; self.topo.len()];
        for (k, &node) in self.table.iter().enumerate() {
            share[node as usize] += first(k as u128 + 1) - first(k as u128);
        }
        share
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

fn next_prime(mut n: u64) -> u64 {
    while !is_prime(n) {
        n += 1;
    }
    n
}

impl Placement for Maglev {
    #[inline]
    fn owner_of_hash(&self, hash: u64) -> Option<&NodeId> {
        Some(self.topo.id(self.table[self.entry(hash)]))
    }

    /// The table's owner, then the zone-spread fallback walk.
    fn preference_list_of_hash(&self, hash: u64, n: usize) -> PreferenceList<'_> {
        let mut head = [NONE; INLINE_HEAD];
        head[0] = self.table[self.entry(hash)];
        PreferenceList::from_inline(&self.topo, head, 1, n, mix(hash, WALK_SALT))
    }

    fn nodes(&self) -> &[Node] {
        &self.topo.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        assert_eq!(next_prime(65_537), 65_537);
        assert_eq!(next_prime(100_000), 100_003);
        assert!(!is_prime(65_536));
    }

    #[test]
    fn shares_sum_to_the_whole_space() {
        let m = Maglev::new((0..7).map(|i| Node::new(format!("n{i}")))).unwrap();
        assert_eq!(m.keyspace_shares().iter().sum::<u128>(), 1u128 << 64);
    }
}

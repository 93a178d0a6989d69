//! [`BoundedLoad`]: consistent hashing with bounded loads, for load-aware, non-persistent choices.

use crate::preference::INLINE_HEAD;
use crate::topology::NONE;
use crate::{HashRingError, Node, NodeId, Placement, PreferenceList};

/// Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, 2018; the scheme
/// Vimeo and HAProxy use): a key goes to the first node of its preference list (under an inner
/// strategy) whose load is below capacity, where a node's capacity is
/// `ceil(c * (total load + 1) * weight / total weight)`.
///
/// No node ever exceeds `c` times its fair share (c = 1.25 bounds the peak at 125% of the mean)
/// and a key stays on its usual node while that node is not overloaded, so caches stay warm.
/// The price is that placement depends on the current loads: use it for things that may move
/// freely (request routing, cache fills, sticky-ish sessions), never for where data is stored.
///
/// The loads are this value's own counters, changed by [`acquire`](Self::acquire) and
/// [`release`](Self::release) or set from measurements with [`set_load`](Self::set_load). The
/// capacity factor is a percentage (`125` is c = 1.25) so that no float touches the decision.
#[derive(Clone, Debug)]
pub struct BoundedLoad<P> {
    /// The strategy whose preference lists give each key's candidates, in order.
    inner: P,
    /// Current load of each node, in the inner strategy's node order.
    load: Vec<u64>,
    /// Sum of `load`.
    total: u64,
    /// Sum of the node weights.
    weight_sum: u64,
    /// c in percent, at least 100.
    capacity_percent: u32,
    /// Node positions sorted by id, to find a node's counter without hashing.
    by_id: Vec<u32>,
}

impl<P: Placement> BoundedLoad<P> {
    /// Bounds the loads of `inner`'s nodes to `capacity_percent`% of their fair share.
    ///
    /// # Errors
    /// [`HashRingError::BadConfig`] if `capacity_percent` is below 100 (the loads could not all
    /// fit) or `inner` has no nodes.
    pub fn new(inner: P, capacity_percent: u32) -> Result<Self, HashRingError> {
        if capacity_percent < 100 {
            return Err(HashRingError::BadConfig {
                field: "capacity_percent",
                reason: format!(
                    "{capacity_percent}% is below 100%, so the nodes could not hold the load; \
                     125 (c = 1.25) is the usual choice"
                ),
            });
        }
        let nodes = inner.nodes();
        if nodes.is_empty() {
            return Err(HashRingError::EmptyRing);
        }
        let mut by_id: Vec<u32> = (0..nodes.len() as u32).collect();
        by_id.sort_by(|&a, &b| nodes[a as usize].id.cmp(&nodes[b as usize].id));
        Ok(Self {
            load: vec![0; nodes.len()],
            total: 0,
            weight_sum: nodes.iter().map(|n| u64::from(n.weight)).sum(),
            capacity_percent,
            by_id,
            inner,
        })
    }

    /// The inner strategy (the order candidates are tried in).
    #[must_use]
    pub fn get_ref(&self) -> &P {
        &self.inner
    }

    /// Gives back the inner strategy.
    #[must_use]
    pub fn into_inner(self) -> P {
        self.inner
    }

    fn index(&self, id: &NodeId) -> Option<usize> {
        let nodes = self.inner.nodes();
        self.by_id
            .binary_search_by(|&i| nodes[i as usize].id.cmp(id))
            .ok()
            .map(|pos| self.by_id[pos] as usize)
    }

    /// The most load node `id` may carry now, counting one more unit about to be placed.
    #[must_use]
    pub fn capacity(&self, id: &NodeId) -> Option<u64> {
        self.index(id).map(|i| self.capacity_of(i))
    }

    fn capacity_of(&self, i: usize) -> u64 {
        let weight = u128::from(self.inner.nodes()[i].weight);
        let num = u128::from(self.capacity_percent) * u128::from(self.total + 1) * weight;
        let den = 100 * u128::from(self.weight_sum);
        num.div_ceil(den).max(1) as u64
    }

    /// Current load of node `id`.
    #[must_use]
    pub fn load(&self, id: &NodeId) -> Option<u64> {
        self.index(id).map(|i| self.load[i])
    }

    /// Sum of all loads.
    #[must_use]
    pub fn total_load(&self) -> u64 {
        self.total
    }

    /// The node a key with this hash goes to now: the first of the inner preference list whose
    /// load is below its capacity.
    fn choose(&self, hash: u64) -> Option<u32> {
        let nodes = self.inner.nodes();
        let mut first = None;
        for id in self.inner.preference_list_of_hash(hash, nodes.len()) {
            let i = self.index(id)?;
            first.get_or_insert(i);
            if self.load[i] < self.capacity_of(i) {
                return Some(i as u32);
            }
        }
        // Unreachable with capacity >= 100% (some node is always below its fair share), but a
        // defined answer beats a panic: the key's usual node.
        first.map(|i| i as u32)
    }

    /// Chooses the node for a key and counts one unit of load on it.
    pub fn acquire(&mut self, key: &[u8]) -> Option<NodeId> {
        let i = self.choose(crate::key_hash(key))? as usize;
        self.load[i] += 1;
        self.total += 1;
        Some(self.inner.nodes()[i].id.clone())
    }

    /// Returns one unit of load from node `id` (a request finished, a connection closed).
    ///
    /// # Errors
    /// [`HashRingError::UnknownNode`] if `id` is not a node of the inner strategy. Releasing a
    /// node whose load is already 0 is ignored.
    pub fn release(&mut self, id: &NodeId) -> Result<(), HashRingError> {
        let i = self
            .index(id)
            .ok_or_else(|| HashRingError::UnknownNode { node: id.clone() })?;
        if self.load[i] > 0 {
            self.load[i] -= 1;
            self.total -= 1;
        }
        Ok(())
    }

    /// Sets node `id`'s load from an outside measurement (in-flight requests, queue length).
    ///
    /// # Errors
    /// [`HashRingError::UnknownNode`] if `id` is not a node of the inner strategy.
    pub fn set_load(&mut self, id: &NodeId, load: u64) -> Result<(), HashRingError> {
        let i = self
            .index(id)
            .ok_or_else(|| HashRingError::UnknownNode { node: id.clone() })?;
        self.total = self.total - self.load[i] + load;
        self.load[i] = load;
        Ok(())
    }
}

impl<P: Placement> Placement for BoundedLoad<P> {
    /// The node a new unit of load for this key would go to now (without counting it).
    fn owner_of_hash(&self, hash: u64) -> Option<&NodeId> {
        self.choose(hash)
            .map(|i| &self.inner.nodes()[i as usize].id)
    }

    /// The chosen node, then the rest of the cluster in the zone-spread fallback walk (the same
    /// walk the inner strategy uses after its own replicas).
    fn preference_list_of_hash(&self, hash: u64, n: usize) -> PreferenceList<'_> {
        let inner = self.inner.preference_list_of_hash(hash, n);
        match self.choose(hash) {
            Some(chosen) => {
                let mut head = [NONE; INLINE_HEAD];
                head[0] = chosen;
                inner.with_head(head, 1)
            }
            None => inner,
        }
    }

    fn nodes(&self) -> &[Node] {
        self.inner.nodes()
    }
}

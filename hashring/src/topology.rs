//! The validated node set every strategy is built on: node order, hashes and zones.
//!
//! Strategies refer to nodes by a dense `u32` index into [`Topology::nodes`], so tables stay small
//! and lookups return `&NodeId` without cloning. Zones get dense indices too, which lets the
//! zone-spread rule (see [`spread_ok`]) run on small fixed arrays without allocating.

use crate::hash::key_hash;
use crate::{HashRingError, Node, NodeId};

/// Marks an empty replica slot in index tables.
pub(crate) const NONE: u32 = u32::MAX;

/// The longest list whose zone spread [`spread_ok`] checks; preference-list heads are capped here.
pub(crate) const MAX_SPREAD: usize = 16;

/// A validated, indexed set of nodes.
#[derive(Clone, Debug)]
pub(crate) struct Topology {
    /// The nodes; sorted by id unless the strategy keeps the caller's order (jump hash).
    pub(crate) nodes: Vec<Node>,
    /// `key_hash` of each node id: the node's stable identity inside placement arithmetic.
    pub(crate) node_hash: Vec<u64>,
    /// Dense zone index of each node (zones are numbered in name order; "no zone" sorts first).
    pub(crate) zone_of: Vec<u32>,
    /// Number of nodes in each zone.
    pub(crate) zone_size: Vec<u32>,
    /// Node indices grouped by zone, each group in `(node_hash, id)` order.
    pub(crate) zone_members: Vec<u32>,
    /// Start of each zone's group in `zone_members`; one extra entry at the end.
    pub(crate) zone_start: Vec<u32>,
    /// Position of each node inside its zone's group.
    pub(crate) pos_in_zone: Vec<u32>,
    /// Node indices sorted by id, for `index_of` when `nodes` keeps the caller's order.
    by_id: Vec<u32>,
}

impl Topology {
    /// Validates `nodes` (non-empty, unique non-empty ids, weight >= 1) and indexes them; sorts
    /// them by id unless `keep_order`.
    pub(crate) fn new(
        nodes: impl IntoIterator<Item = Node>,
        keep_order: bool,
    ) -> Result<Self, HashRingError> {
        let mut nodes: Vec<Node> = nodes.into_iter().collect();
        if nodes.is_empty() {
            return Err(HashRingError::EmptyRing);
        }
        if u32::try_from(nodes.len()).is_err() || nodes.len() >= NONE as usize {
            return Err(HashRingError::BadConfig {
                field: "nodes",
                reason: format!("{} nodes is more than a ring can index", nodes.len()),
            });
        }
        for node in &nodes {
            if node.id.as_str().is_empty() {
                return Err(HashRingError::BadNodeId {
                    node: node.id.clone(),
                    reason: "node ids must not be empty",
                });
            }
            if node.weight == 0 {
                return Err(HashRingError::BadWeight {
                    node: node.id.clone(),
                    weight: 0,
                    reason: "weights must be at least 1; remove the node to stop placing keys on it",
                });
            }
        }
        if !keep_order {
            nodes.sort_by(|a, b| a.id.cmp(&b.id));
        }
        let mut by_id: Vec<u32> = (0..nodes.len() as u32).collect();
        by_id.sort_by(|&a, &b| nodes[a as usize].id.cmp(&nodes[b as usize].id));
        for pair in by_id.windows(2) {
            if nodes[pair[0] as usize].id == nodes[pair[1] as usize].id {
                return Err(HashRingError::DuplicateNode {
                    node: nodes[pair[0] as usize].id.clone(),
                });
            }
        }
        let node_hash: Vec<u64> = nodes
            .iter()
            .map(|n| key_hash(n.id.as_str().as_bytes()))
            .collect();

        let mut zone_names: Vec<Option<&str>> = nodes.iter().map(|n| n.zone.as_deref()).collect();
        zone_names.sort_unstable();
        zone_names.dedup();
        let zone_of: Vec<u32> = nodes
            .iter()
            .map(|n| {
                // The name is present: it was collected from these very nodes.
                zone_names
                    .binary_search(&n.zone.as_deref())
                    .unwrap_or_default() as u32
            })
            .collect();
        let mut zone_size = vec![0u32; zone_names.len()];
        for &z in &zone_of {
            zone_size[z as usize] += 1;
        }
        let mut zone_members: Vec<u32> = (0..nodes.len() as u32).collect();
        zone_members.sort_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            (zone_of[a], node_hash[a], &nodes[a].id).cmp(&(zone_of[b], node_hash[b], &nodes[b].id))
        });
        let mut zone_start = Vec::with_capacity(zone_size.len() + 1);
        let mut acc = 0u32;
        for &s in &zone_size {
            zone_start.push(acc);
            acc += s;
        }
        zone_start.push(acc);
        let mut pos_in_zone = vec![0u32; nodes.len()];
        for (i, &member) in zone_members.iter().enumerate() {
            let z = zone_of[member as usize] as usize;
            pos_in_zone[member as usize] = i as u32 - zone_start[z];
        }
        Ok(Self {
            nodes,
            node_hash,
            zone_of,
            zone_size,
            zone_members,
            zone_start,
            pos_in_zone,
            by_id,
        })
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Number of distinct zones (nodes without a zone count as one zone).
    pub(crate) fn zone_count(&self) -> usize {
        self.zone_size.len()
    }

    /// Index of the node with this id.
    pub(crate) fn index_of(&self, id: &NodeId) -> Option<u32> {
        self.by_id
            .binary_search_by(|&i| self.nodes[i as usize].id.cmp(id))
            .ok()
            .map(|pos| self.by_id[pos])
    }

    /// The id of node `index`.
    #[inline]
    pub(crate) fn id(&self, index: u32) -> &NodeId {
        &self.nodes[index as usize].id
    }

    /// The member list with `node` added, refusing a duplicate id (for `with_node` helpers).
    pub(crate) fn plus(&self, node: Node) -> Result<Vec<Node>, HashRingError> {
        if self.index_of(&node.id).is_some() {
            return Err(HashRingError::DuplicateNode { node: node.id });
        }
        Ok(self.nodes.iter().cloned().chain([node]).collect())
    }

    /// The member list without `id`, refusing an unknown id (for `without_node` helpers).
    pub(crate) fn minus(&self, id: &NodeId) -> Result<Vec<Node>, HashRingError> {
        if self.index_of(id).is_none() {
            return Err(HashRingError::UnknownNode { node: id.clone() });
        }
        Ok(self.nodes.iter().filter(|n| &n.id != id).cloned().collect())
    }

    /// The `k`-th member (0-based) of zone `zone`'s group.
    #[inline]
    pub(crate) fn zone_member(&self, zone: u32, k: u32) -> u32 {
        self.zone_members[(self.zone_start[zone as usize] + k) as usize]
    }
}

/// Whether every prefix of `list` (empty slots skipped) is spread over zones as widely as the
/// cluster allows: no zone holds more than one replica more than any zone that still has unused
/// nodes. With at least as many zones as entries, that means all entries are in distinct zones.
///
/// Lists longer than [`MAX_SPREAD`] are only checked on their first `MAX_SPREAD` entries.
pub(crate) fn spread_ok(topo: &Topology, list: impl IntoIterator<Item = u32>) -> bool {
    let mut zones = [0u32; MAX_SPREAD];
    let mut counts = [0u32; MAX_SPREAD];
    let mut seen = 0usize;
    let mut len = 0usize;
    for node in list {
        if node == NONE {
            continue;
        }
        if len == MAX_SPREAD {
            break;
        }
        len += 1;
        let z = topo.zone_of[node as usize];
        let slot = match zones[..seen].iter().position(|&s| s == z) {
            Some(slot) => slot,
            None => {
                zones[seen] = z;
                seen += 1;
                seen - 1
            }
        };
        counts[slot] += 1;
        // Lowest count among zones that could still give a node; zones not yet used count 0.
        let mut floor = if seen < topo.zone_count() {
            0
        } else {
            u32::MAX
        };
        for k in 0..seen {
            if counts[k] < topo.zone_size[zones[k] as usize] {
                floor = floor.min(counts[k]);
            }
        }
        if floor != u32::MAX && counts[slot] > floor + 1 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(zones: &[&str]) -> Topology {
        Topology::new(
            zones
                .iter()
                .enumerate()
                .map(|(i, z)| Node::new(format!("n{i}")).with_zone(*z)),
            false,
        )
        .unwrap()
    }

    #[test]
    fn refuses_bad_node_sets() {
        assert_eq!(
            Topology::new(Vec::<Node>::new(), false).unwrap_err(),
            HashRingError::EmptyRing
        );
        assert!(matches!(
            Topology::new([Node::new("a"), Node::new("a")], false),
            Err(HashRingError::DuplicateNode { .. })
        ));
        assert!(matches!(
            Topology::new([Node::new("a").with_weight(0)], false),
            Err(HashRingError::BadWeight { .. })
        ));
        assert!(matches!(
            Topology::new([Node::new("")], false),
            Err(HashRingError::BadNodeId { .. })
        ));
    }

    #[test]
    fn spread_rule_wants_distinct_zones_first() {
        // n0,n1 in a; n2 in b; n3 in c.
        let t = topo(&["a", "a", "b", "c"]);
        assert!(spread_ok(&t, [0, 2, 3]));
        assert!(!spread_ok(&t, [0, 1, 2]));
        // Once every zone is used, a second node from any zone is fine.
        assert!(spread_ok(&t, [0, 2, 3, 1]));
        // Zone b is exhausted after n2, so a then a is fine when b and c are used up.
        let t = topo(&["a", "a", "a", "b"]);
        assert!(spread_ok(&t, [3, 0, 1]));
        assert!(!spread_ok(&t, [0, 1, 3]));
    }
}

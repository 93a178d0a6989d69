//! The claim: who holds each (partition, replica position) slot.
//!
//! One procedure serves construction and every change, so both obey the same rules:
//!
//! 1. **Quotas.** Each node is owed `Q * weight / total_weight` slots at every replica position,
//!    rounded by largest remainder (ties go to the higher node hash). Quotas are therefore nested:
//!    adding a node only lowers other nodes' quotas, removing one only raises them.
//! 2. **Validity.** Every partition's list holds `min(replicas, nodes)` distinct nodes, and each
//!    prefix is spread over zones as widely as the cluster allows ([`spread_ok`]). A list that
//!    stopped being valid (a zone appeared) is cleared from its first bad entry on.
//! 3. **Donation.** Position by position, nodes above quota hand slots to nodes below quota. A
//!    receiving node takes the slots it scores highest (`mix(partition, node hash)`), so a joining
//!    node's partitions are scattered over the ring rather than bunched.
//! 4. **Fill.** Empty slots (a departed node's, or all of them for a new ring) go to the first node
//!    below quota that keeps the list valid, probing from a per-slot pseudo-random start.
//!
//! Nothing else moves: a join moves only slots the new node takes, a departure only the departed
//! node's slots (plus, in both cases, the few slots that rounding of quotas shifts). Every step
//! iterates in index order with integer arithmetic, so the result depends only on the input table
//! and the node set. See docs/adr/0101-hashring-partitioned-claim.md for why placement is a ring
//! *value* changed by these steps rather than a function of membership alone.

use std::cmp::Ordering;

use crate::hash::{mix, reduce};
use crate::topology::{NONE, Topology, spread_ok};

/// Runs the claim over `slots` (`partitions * replicas` node indices, `NONE` for empty) in place.
///
/// `may_take[i]` says whether node `i` may take slots from nodes above quota: the nodes whose
/// quota grew in this change (new nodes, heavier weights). Nodes that sit below quota only because
/// zone spread forbids more never take data from bystanders, so a change moves data only to the
/// nodes it concerns. `None` (a new ring) lets every node take.
pub(crate) fn claim(
    topo: &Topology,
    partitions: u32,
    replicas: usize,
    slots: &mut [u32],
    may_take: Option<&[bool]>,
) {
    let mut claim = Claim::new(topo, partitions, replicas);
    claim.may_take = may_take.map(<[bool]>::to_vec);
    claim.normalise(slots);
    for position in 0..claim.len {
        claim.balance_position(slots, position);
    }
}

/// Per-node slot quotas for one replica position: `total` shared by weight, largest remainder
/// first, ties to the higher node hash.
pub(crate) fn quotas(topo: &Topology, total: u32) -> Vec<u32> {
    let weight_sum: u128 = topo.nodes.iter().map(|n| u128::from(n.weight)).sum();
    let mut quota = Vec::with_capacity(topo.len());
    let mut remainder = Vec::with_capacity(topo.len());
    for node in &topo.nodes {
        let share = u128::from(total) * u128::from(node.weight);
        quota.push((share / weight_sum) as u32);
        remainder.push(share % weight_sum);
    }
    let given: u32 = quota.iter().sum();
    let mut order: Vec<usize> = (0..topo.len()).collect();
    order.sort_by(|&a, &b| {
        remainder[b]
            .cmp(&remainder[a])
            .then(topo.node_hash[b].cmp(&topo.node_hash[a]))
            .then(topo.nodes[a].id.cmp(&topo.nodes[b].id))
    });
    for &i in order.iter().take((total - given) as usize) {
        quota[i] += 1;
    }
    quota
}

struct Claim<'a> {
    topo: &'a Topology,
    partitions: u32,
    replicas: usize,
    /// Positions that hold a node: `min(replicas, nodes)`.
    len: usize,
    quota: Vec<u32>,
    /// Node indices in `(node_hash, id)` order: the probe sequence of the fill.
    probe: Vec<u32>,
    /// Which nodes may take slots by donation (`None`: all).
    may_take: Option<Vec<bool>>,
}

impl<'a> Claim<'a> {
    fn new(topo: &'a Topology, partitions: u32, replicas: usize) -> Self {
        let mut probe: Vec<u32> = (0..topo.len() as u32).collect();
        probe.sort_by_key(|&i| (topo.node_hash[i as usize], &topo.nodes[i as usize].id));
        Self {
            topo,
            partitions,
            replicas,
            len: replicas.min(topo.len()),
            quota: quotas(topo, partitions),
            probe,
            may_take: None,
        }
    }

    fn list<'s>(&self, slots: &'s [u32], p: usize) -> &'s [u32] {
        &slots[p * self.replicas..(p + 1) * self.replicas]
    }

    fn list_mut<'s>(&self, slots: &'s mut [u32], p: usize) -> &'s mut [u32] {
        &mut slots[p * self.replicas..(p + 1) * self.replicas]
    }

    /// Step 2: lists fit in `len` positions and are spread validly; bad suffixes are cleared.
    fn normalise(&self, slots: &mut [u32]) {
        for p in 0..self.partitions as usize {
            let len = self.len;
            let list = self.list_mut(slots, p);
            if list[len..].iter().any(|&n| n != NONE) {
                // The cluster shrank below the replica count: close the gaps, keeping order.
                let mut kept = [NONE; crate::topology::MAX_SPREAD];
                for (k, &n) in list.iter().filter(|&&n| n != NONE).enumerate() {
                    kept[k] = n;
                }
                list.copy_from_slice(&kept[..list.len()]);
            }
            if !spread_ok(self.topo, list.iter().copied()) {
                let bad = (1..=list.len())
                    .find(|&m| !spread_ok(self.topo, list[..m].iter().copied()))
                    .unwrap_or(list.len());
                list[bad - 1..].fill(NONE);
            }
        }
    }

    /// How `node` could take slot `position` of `list` while keeping it valid (see [`Admit`]).
    /// Without `reorder`, only a plain replacement of the holder is considered.
    fn admits(&self, list: &[u32], position: usize, node: u32, reorder: bool) -> Admit {
        let len = list.len();
        let valid = |trial: &[u32]| spread_ok(self.topo, trial[..len].iter().copied());
        let mut trial = [NONE; crate::topology::MAX_SPREAD];
        trial[..len].copy_from_slice(list);
        match list.iter().position(|&n| n == node) {
            Some(k) if k <= position || !reorder => Admit::No,
            Some(k) => {
                trial[k] = list[position];
                trial[position] = node;
                if valid(&trial) {
                    Admit::Swap(k)
                } else {
                    Admit::No
                }
            }
            None => {
                trial[position] = node;
                if valid(&trial) {
                    return Admit::Replace;
                }
                if !reorder || list[position] == NONE {
                    return Admit::No;
                }
                // Take the place of a later zone-mate instead, the holder moving down to it.
                let zone = self.topo.zone_of[node as usize];
                for k in position + 1..len {
                    let mate = list[k];
                    if mate != NONE && self.topo.zone_of[mate as usize] == zone {
                        trial[..len].copy_from_slice(list);
                        trial[position] = node;
                        trial[k] = list[position];
                        if valid(&trial) {
                            return Admit::Displace(k);
                        }
                    }
                }
                Admit::No
            }
        }
    }

    /// Steps 3 and 4 for one replica position.
    fn balance_position(&self, slots: &mut [u32], position: usize) {
        let mut count = vec![0u32; self.topo.len()];
        for p in 0..self.partitions as usize {
            let n = self.list(slots, p)[position];
            if n != NONE {
                count[n as usize] += 1;
            }
        }
        self.donate(slots, position, &mut count);
        self.fill(slots, position, &mut count);
    }

    fn donate(&self, slots: &mut [u32], position: usize, count: &mut [u32]) {
        let over = |count: &[u32], n: u32| count[n as usize] > self.quota[n as usize];
        let mut under: Vec<u32> = (0..self.topo.len() as u32)
            .filter(|&n| count[n as usize] < self.quota[n as usize])
            .filter(|&n| self.may_take.as_ref().is_none_or(|m| m[n as usize]))
            .collect();
        if under.is_empty() || !(0..self.topo.len() as u32).any(|n| over(count, n)) {
            return;
        }
        // Neediest first, so rounding leftovers never starve a joining node.
        under.sort_by_key(|&n| {
            (
                std::cmp::Reverse(self.quota[n as usize] - count[n as usize]),
                self.topo.node_hash[n as usize],
            )
        });
        for taker in under {
            let mut offers: Vec<(u64, u32)> = (0..self.partitions)
                .filter(|&p| {
                    let holder = self.list(slots, p as usize)[position];
                    holder != NONE && over(count, holder)
                })
                .map(|p| (mix(u64::from(p), self.topo.node_hash[taker as usize]), p))
                .collect();
            offers.sort_unstable_by(|a, b| b.cmp(a));
            for (_, p) in offers {
                if count[taker as usize] >= self.quota[taker as usize] {
                    break;
                }
                let list = self.list(slots, p as usize);
                let holder = list[position];
                if !over(count, holder) {
                    continue;
                }
                let admit = self.admits(list, position, taker, true);
                let list = self.list_mut(slots, p as usize);
                match admit {
                    Admit::No => continue,
                    Admit::Replace => list[position] = taker,
                    Admit::Swap(k) | Admit::Displace(k) => {
                        list[k] = holder;
                        list[position] = taker;
                    }
                }
                count[holder as usize] -= 1;
                count[taker as usize] += 1;
            }
        }
    }

    fn fill(&self, slots: &mut [u32], position: usize, count: &mut [u32]) {
        let nodes = self.topo.len();
        for p in 0..self.partitions as usize {
            if self.list(slots, p)[position] != NONE {
                continue;
            }
            let start = reduce(mix(p as u64, position as u64), nodes as u64) as usize;
            let mut chosen = self.pick(slots, p, position, start, count);
            if chosen.is_none() {
                // The later entries leave no valid choice here: re-place them after this one.
                self.list_mut(slots, p)[position + 1..].fill(NONE);
                chosen = self.pick(slots, p, position, start, count);
            }
            if let Some(node) = chosen {
                self.list_mut(slots, p)[position] = node;
                count[node as usize] += 1;
            }
        }
    }

    /// The node for empty slot (`p`, `position`): the first node in probe order below quota that
    /// the list admits, else the admitted node furthest below (or least above) its quota.
    fn pick(
        &self,
        slots: &[u32],
        p: usize,
        position: usize,
        start: usize,
        count: &[u32],
    ) -> Option<u32> {
        let list = self.list(slots, p);
        let nodes = self.probe.len();
        let mut best: Option<u32> = None;
        for step in 0..nodes {
            let node = self.probe[(start + step) % nodes];
            if !matches!(self.admits(list, position, node, false), Admit::Replace) {
                continue;
            }
            if count[node as usize] < self.quota[node as usize] {
                return Some(node);
            }
            if best.is_none_or(|b| self.fuller(count, b, node) == Ordering::Greater) {
                best = Some(node);
            }
        }
        best
    }

    /// Compares how full two nodes are relative to their quotas (no floats: cross-multiplied).
    fn fuller(&self, count: &[u32], a: u32, b: u32) -> Ordering {
        let (a, b) = (a as usize, b as usize);
        let lhs = u64::from(count[a] + 1) * u64::from(self.quota[b] + 1);
        let rhs = u64::from(count[b] + 1) * u64::from(self.quota[a] + 1);
        lhs.cmp(&rhs)
    }
}

/// Outcome of [`Claim::admits`].
enum Admit {
    /// The node may not take the slot.
    No,
    /// The node takes the slot; the holder leaves the list.
    Replace,
    /// The node moves up from this later position; the holder moves down to it.
    Swap(usize),
    /// The node replaces its zone-mate at this later position, and the holder moves down to it:
    /// the zone-mate's data moves to the node, the holder only changes role.
    Displace(usize),
}

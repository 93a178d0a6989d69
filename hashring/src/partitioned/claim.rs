//! The claim: who holds each (partition, replica position) slot.
//!
//! One procedure serves construction and every change, so both obey the same rules:
//!
//! 1. **Quotas and caps.** Each node is owed a quota of slots at every replica position: its
//!    weight share, corrected for what zone spread forces (see `quota.rs`), rounded by largest
//!    remainder (ties to the higher node hash). It may hold at
//!    most `cap = quota + max(1, quota * SLACK_PERCENT / 100)`.
//! 2. **Validity.** Every partition's list holds `min(replicas, nodes)` distinct nodes, and each
//!    prefix is spread over zones as widely as the cluster allows ([`spread_ok`]). In a list that
//!    stopped being valid (a zone appeared), the entries that break the spread are cleared.
//! 3. **Fill.** Each empty slot (a departed node's, or every slot of a new ring) goes to the node
//!    that ranks highest for the partition among those below cap that keep the list valid:
//!    weighted rendezvous hashing (`weight / -log2(rank(partition, node hash) / 2^64)`, in
//!    fixed point) with bounded loads.
//! 4. **Donation.** Position by position, a node that joined (or got heavier, or changed zone) and
//!    is below quota takes slots from the nodes furthest above their quota, choosing among each
//!    donor's slots the ones it ranks highest (`rank(partition, node hash)`), so its partitions are
//!    scattered over the ring. It may reorder a list (move up from a later position, or take a
//!    zone-mate's place) when zone spread forbids a plain replacement.
//!
//! A join moves only the slots the newcomer takes, a departure only the departed node's slots.
//! Because the fill is rendezvous-ranked, two rings built from scratch for sets that differ by one
//! node also stay close (the caps make it a little worse than minimal; docs/benchmarks.md has the
//! figures). Every step iterates in index order with integer arithmetic, so the result depends only
//! on the input table and the node set. See docs/adr/0101-hashring-partitioned-claim.md for why a
//! ring is a value changed by these steps rather than a function of membership alone.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::quota::{cap, position_quotas};
use crate::hash::{rank, weighted_score};
use crate::topology::{MAX_SPREAD, NONE, Topology, spread_ok};

/// How many best-ranked candidates the fill keeps per partition before falling back to a scan.
const SHORTLIST: usize = 16;

/// Runs the claim over `slots` (`partitions * replicas` node indices, `NONE` for empty) in place.
///
/// `may_take[i]` says whether node `i` may take slots from nodes above quota: nodes that joined,
/// got heavier or changed zone. Nodes below quota for other reasons (rounding, or zone spread
/// forbidding more) never take from bystanders, so a change moves data only to the nodes it
/// concerns. `None` (a new ring, where every slot is empty) means no donation: the fill alone
/// places every slot, which keeps a new ring a rendezvous-style function of the node set.
pub(crate) fn claim(
    topo: &Topology,
    partitions: u32,
    replicas: usize,
    slots: &mut [u32],
    may_take: Option<&[bool]>,
) {
    let mut claim = Claim::new(topo, partitions, replicas, may_take);
    claim.normalise(slots);
    claim.count(slots);
    // Fill first: a slot emptied by a departure or by a new zone goes to the node that ranks
    // highest, or must go to the newcomer, before donation reorders lists around it.
    claim.fill(slots);
    for position in 0..claim.len {
        claim.donate(slots, position);
    }
}

/// The working state of one claim run.
struct Claim<'a> {
    /// The members of the ring being claimed.
    topo: &'a Topology,
    /// Q.
    partitions: u32,
    /// Stride of the slot table (the configured replica count).
    replicas: usize,
    /// Positions that hold a node: `min(replicas, nodes)`.
    len: usize,
    /// Slots owed per position and node: `quota[position * nodes + node]`.
    quota: Vec<u32>,
    /// Most slots allowed per position and node, same layout.
    cap: Vec<u32>,
    /// Which nodes may take slots by donation (`None`: none, for a new ring).
    may_take: Option<Vec<bool>>,
    /// Slots held per position and node: `count[position * nodes + node]`.
    count: Vec<u32>,
    /// Whether every node has the same weight: then the fill ranks by the raw `rank`, otherwise
    /// by the weighted rendezvous score of that rank.
    uniform: bool,
    /// Per position, the nodes below cap (any order), so the fill's fallback scan shrinks as
    /// nodes fill up; `open_at` is each node's index in it (`NONE` when at or above cap).
    open: Vec<Vec<u32>>,
    /// Index of each (position, node) in `open`, same layout as `count`.
    open_at: Vec<u32>,
}

impl<'a> Claim<'a> {
    fn new(
        topo: &'a Topology,
        partitions: u32,
        replicas: usize,
        may_take: Option<&[bool]>,
    ) -> Self {
        let len = replicas.min(topo.len());
        let quota = position_quotas(topo, partitions, len);
        Self {
            topo,
            partitions,
            replicas,
            len,
            cap: quota.iter().map(|&q| cap(q)).collect(),
            quota,
            may_take: may_take.map(<[bool]>::to_vec),
            count: vec![0; len * topo.len()],
            open: Vec::new(),
            open_at: Vec::new(),
            uniform: topo.nodes.windows(2).all(|w| w[0].weight == w[1].weight),
        }
    }

    fn list<'s>(&self, slots: &'s [u32], p: usize) -> &'s [u32] {
        &slots[p * self.replicas..(p + 1) * self.replicas]
    }

    fn list_mut<'s>(&self, slots: &'s mut [u32], p: usize) -> &'s mut [u32] {
        &mut slots[p * self.replicas..(p + 1) * self.replicas]
    }

    /// How much `node` wants partition `p` in the fill: weighted rendezvous, so that before caps
    /// bite each node's share already follows its weight.
    fn preference(&self, p: usize, node: u32) -> u128 {
        let r = rank(p as u64, self.topo.node_hash[node as usize]);
        if self.uniform {
            u128::from(r)
        } else {
            weighted_score(r, self.topo.nodes[node as usize].weight)
        }
    }

    fn quota_at(&self, position: usize, node: u32) -> u32 {
        self.quota[position * self.topo.len() + node as usize]
    }

    fn cap_at(&self, position: usize, node: u32) -> u32 {
        self.cap[position * self.topo.len() + node as usize]
    }

    fn count_at(&self, position: usize, node: u32) -> u32 {
        self.count[position * self.topo.len() + node as usize]
    }

    fn bump(&mut self, position: usize, node: u32, up: bool) {
        let at = position * self.topo.len() + node as usize;
        if up {
            self.count[at] += 1;
        } else {
            self.count[at] -= 1;
        }
        if self.open.is_empty() {
            return;
        }
        let below_cap = self.count[at] < self.cap[at];
        let listed = self.open_at[at] != NONE;
        if below_cap && !listed {
            self.open_at[at] = self.open[position].len() as u32;
            self.open[position].push(node);
        } else if !below_cap && listed {
            let i = self.open_at[at] as usize;
            self.open[position].swap_remove(i);
            if let Some(&moved) = self.open[position].get(i) {
                self.open_at[position * self.topo.len() + moved as usize] = i as u32;
            }
            self.open_at[at] = NONE;
        }
    }

    /// Step 2: lists fit in `len` positions and are spread validly; offending entries are cleared.
    fn normalise(&self, slots: &mut [u32]) {
        for p in 0..self.partitions as usize {
            let len = self.len;
            let list = self.list_mut(slots, p);
            if list[len..].iter().any(|&n| n != NONE) {
                // The cluster shrank below the replica count: close the gaps, keeping order.
                let mut kept = [NONE; MAX_SPREAD];
                for (k, &n) in list.iter().filter(|&&n| n != NONE).enumerate() {
                    kept[k] = n;
                }
                list.copy_from_slice(&kept[..list.len()]);
            }
            // Drop the first entry that breaks the spread; the fill then puts a node of an
            // under-used zone in its place (clearing later entries only if no node can make the
            // whole list valid), and nothing else in the list moves.
            if !spread_ok(self.topo, list.iter().copied()) {
                let bad = (1..=list.len())
                    .find(|&m| !spread_ok(self.topo, list[..m].iter().copied()))
                    .unwrap_or(list.len());
                list[bad - 1] = NONE;
            }
        }
    }

    fn count(&mut self, slots: &[u32]) {
        for p in 0..self.partitions as usize {
            for position in 0..self.len {
                let n = slots[p * self.replicas + position];
                if n != NONE {
                    self.bump(position, n, true);
                }
            }
        }
    }

    /// How `node` could take slot `position` of `list` while keeping it valid (see [`Admit`]).
    /// Without `reorder`, only a plain replacement of the holder is considered.
    fn admits(&self, list: &[u32], position: usize, node: u32, reorder: bool) -> Admit {
        let len = list.len();
        let valid = |trial: &[u32]| spread_ok(self.topo, trial[..len].iter().copied());
        let mut trial = [NONE; MAX_SPREAD];
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

    /// How far above quota a node is, as a comparable fixed-point ratio `count / quota`.
    fn fullness(&self, position: usize, node: u32) -> u64 {
        (u64::from(self.count_at(position, node)) << 32)
            / u64::from(self.quota_at(position, node).max(1))
    }

    /// Step 4 for one position.
    fn donate(&mut self, slots: &mut [u32], position: usize) {
        let mut takers: Vec<u32> = (0..self.topo.len() as u32)
            .filter(|&n| self.count_at(position, n) < self.quota_at(position, n))
            .filter(|&n| self.may_take.as_ref().is_some_and(|m| m[n as usize]))
            .collect();
        let anyone_over = (0..self.topo.len() as u32)
            .any(|n| self.count_at(position, n) > self.quota_at(position, n));
        if takers.is_empty() || !anyone_over {
            return;
        }
        // Neediest first, so a joining node is served before rounding leftovers.
        takers.sort_by_key(|&n| {
            (
                Reverse(self.quota_at(position, n) - self.count_at(position, n)),
                self.topo.node_hash[n as usize],
            )
        });
        for taker in takers {
            self.take(slots, position, taker);
        }
    }

    /// `taker` takes slots at `position` until it reaches quota or no donor can give.
    fn take(&mut self, slots: &mut [u32], position: usize, taker: u32) {
        let over = |c: &Self, n: u32| c.count_at(position, n) > c.quota_at(position, n);
        let taker_hash = self.topo.node_hash[taker as usize];
        // Every slot held above quota, grouped by donor, best-ranked for the taker first.
        let mut offers: Vec<(u32, Reverse<u64>, u32)> = (0..self.partitions)
            .filter_map(|p| {
                let holder = self.list(slots, p as usize)[position];
                (holder != NONE && over(self, holder))
                    .then(|| (holder, Reverse(rank(u64::from(p), taker_hash)), p))
            })
            .collect();
        if offers.is_empty() {
            return;
        }
        offers.sort_unstable();
        // Start of each donor's run in `offers`, and a cursor into it.
        let mut runs: Vec<(u32, usize, usize)> = Vec::new();
        for (i, &(holder, _, _)) in offers.iter().enumerate() {
            if runs.last().is_none_or(|r| r.0 != holder) {
                runs.push((holder, i, i));
            }
            if let Some(run) = runs.last_mut() {
                run.2 = i + 1;
            }
        }
        // Fullest donor first; ties to the higher node hash.
        let mut heap: BinaryHeap<(u64, u64, usize)> = runs
            .iter()
            .enumerate()
            .map(|(r, &(holder, _, _))| {
                (
                    self.fullness(position, holder),
                    self.topo.node_hash[holder as usize],
                    r,
                )
            })
            .collect();
        while self.count_at(position, taker) < self.quota_at(position, taker) {
            let Some((_, hash, r)) = heap.pop() else {
                return;
            };
            let (holder, ref mut cursor, end) = runs[r];
            let mut given = false;
            while *cursor < end && !given {
                let p = offers[*cursor].2 as usize;
                *cursor += 1;
                given = self.give(slots, p, position, holder, taker);
            }
            if given && over(self, holder) && runs[r].1 < end {
                heap.push((self.fullness(position, holder), hash, r));
            }
        }
    }

    /// Moves slot (`p`, `position`) from `holder` to `taker` if the list admits it.
    fn give(
        &mut self,
        slots: &mut [u32],
        p: usize,
        position: usize,
        holder: u32,
        taker: u32,
    ) -> bool {
        let admit = self.admits(self.list(slots, p), position, taker, true);
        let list = self.list_mut(slots, p);
        match admit {
            Admit::No => return false,
            Admit::Replace => list[position] = taker,
            Admit::Swap(k) | Admit::Displace(k) => {
                let moved_out = list[k];
                list[k] = holder;
                list[position] = taker;
                self.bump(k, moved_out, false);
                self.bump(k, holder, true);
            }
        }
        self.bump(position, holder, false);
        self.bump(position, taker, true);
        true
    }

    /// Step 3: every empty slot, partition by partition, position by position.
    fn fill(&mut self, slots: &mut [u32]) {
        let nodes = self.topo.len() as u32;
        self.open_at = vec![NONE; self.count.len()];
        self.open = (0..self.len)
            .map(|position| {
                let open: Vec<u32> = (0..nodes)
                    .filter(|&n| self.count_at(position, n) < self.cap_at(position, n))
                    .collect();
                for (i, &n) in open.iter().enumerate() {
                    self.open_at[position * nodes as usize + n as usize] = i as u32;
                }
                open
            })
            .collect();
        let mut shortlist: Vec<(u128, u32)> = Vec::with_capacity(SHORTLIST + 1);
        for p in 0..self.partitions as usize {
            if !self.list(slots, p)[..self.len].contains(&NONE) {
                continue;
            }
            // The partition's best-ranked nodes, highest first.
            shortlist.clear();
            for node in 0..nodes {
                let score = self.preference(p, node);
                if shortlist.len() < SHORTLIST || score > shortlist[SHORTLIST - 1].0 {
                    let at = shortlist.partition_point(|&(s, _)| s > score);
                    shortlist.insert(at, (score, node));
                    shortlist.truncate(SHORTLIST);
                }
            }
            for position in 0..self.len {
                if self.list(slots, p)[position] != NONE {
                    continue;
                }
                let mut chosen = self.pick(slots, p, position, &shortlist);
                if chosen.is_none() {
                    // The later entries leave no valid choice here: re-place them after this one.
                    for k in position + 1..self.len {
                        let n = self.list(slots, p)[k];
                        if n != NONE {
                            self.bump(k, n, false);
                            self.list_mut(slots, p)[k] = NONE;
                        }
                    }
                    chosen = self.pick(slots, p, position, &shortlist);
                }
                if let Some(node) = chosen {
                    self.list_mut(slots, p)[position] = node;
                    self.bump(position, node, true);
                }
            }
        }
    }

    /// The node for empty slot (`p`, `position`): the best-ranked admitted node below cap, else the
    /// admitted node least full relative to its cap.
    fn pick(
        &self,
        slots: &[u32],
        p: usize,
        position: usize,
        shortlist: &[(u128, u32)],
    ) -> Option<u32> {
        let list = self.list(slots, p);
        let fits = |node: u32| {
            self.count_at(position, node) < self.cap_at(position, node)
                && matches!(self.admits(list, position, node, false), Admit::Replace)
        };
        if let Some(&(_, node)) = shortlist.iter().find(|&&(_, n)| fits(n)) {
            return Some(node);
        }
        // Highest rank wins; equal ranks go to the lower index, whatever order `open` is in.
        let mut best: Option<(u128, Reverse<u32>)> = None;
        for &node in &self.open[position] {
            let key = (self.preference(p, node), Reverse(node));
            if best.is_none_or(|b| key > b) && fits(node) {
                best = Some(key);
            }
        }
        if let Some((_, Reverse(node))) = best {
            return Some(node);
        }
        let nodes = self.topo.len() as u32;
        // Every admitted node is at cap (zone spread concentrates load): least full wins.
        let mut least: Option<(u64, u32)> = None;
        for node in 0..nodes {
            let full = (u64::from(self.count_at(position, node)) << 32)
                / u64::from(self.cap_at(position, node).max(1));
            if least.is_none_or(|(f, _)| full < f)
                && matches!(self.admits(list, position, node, false), Admit::Replace)
            {
                least = Some((full, node));
            }
        }
        least.map(|(_, node)| node)
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

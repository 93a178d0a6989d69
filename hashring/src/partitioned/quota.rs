//! Slot quotas: how many (partition, position) slots each node is owed, and may hold.
//!
//! Weights alone would be the answer if every list could take any node. Zone spread forbids that:
//! a zone with few nodes must still appear in (nearly) every list, and a crowded zone can appear
//! in a list only so many times. So quotas are computed in three steps, all in integers:
//!
//! 1. **Per zone.** Each list of `len` entries gives every zone `forced = min(size, t)` entries,
//!    where `t` is the largest level with `sum(min(size, t)) <= len`; the `spare` entries left are
//!    shared by zones with more than `t` nodes (at most one more each). A zone's total is
//!    `Q * forced` plus its share of `Q * spare`, handed out in proportion to how far its weight
//!    share exceeds what it is forced to hold (at most `Q`). Without zones, or with zones of equal
//!    weight, this is exactly the weight share.
//! 2. **Per node.** A zone's total is split among its nodes by weight.
//! 3. **Per position.** Position 0 (ownership) is shared by weight, as any node may own any
//!    partition; the rest of each node's total is spread evenly over the other positions. Each
//!    position hands out exactly `Q` slots by largest remainder, ties to the higher node hash.

use crate::topology::Topology;

/// Headroom above quota that the fill may use, in percent of the quota.
///
/// Exact quotas would make every node full by the end of a fill, so the last partitions would go
/// wherever room is left and a one-node change would cascade through many of them. 3% of headroom
/// keeps peak/mean under 1.04 at 64 partitions per node while letting most partitions go to their
/// best-ranked node.
pub(crate) const SLACK_PERCENT: u32 = 3;

/// Fixed-point scale of the intermediate shares (slots times 2^32).
const ONE: u128 = 1 << 32;

/// The most slots per position a node with this quota may hold: `SLACK_PERCENT` more, and at
/// least one more.
pub(crate) fn cap(quota: u32) -> u32 {
    quota + (quota * SLACK_PERCENT / 100).max(1)
}

/// Quotas for `len` positions of `partitions` slots each, as `quota[position * nodes + node]`.
pub(crate) fn position_quotas(topo: &Topology, partitions: u32, len: usize) -> Vec<u32> {
    let q = u128::from(partitions);
    let weight: Vec<u128> = topo.nodes.iter().map(|n| u128::from(n.weight)).collect();
    let total_weight: u128 = weight.iter().sum();
    let zones = topo.zone_count();
    let mut zone_weight = vec![0u128; zones];
    for (i, &w) in weight.iter().enumerate() {
        zone_weight[topo.zone_of[i] as usize] += w;
    }

    // 1. Per zone: forced entries per list, then the spare ones by excess demand.
    let size = |z: usize| topo.zone_size[z] as usize;
    let filled = |t: usize| (0..zones).map(|z| size(z).min(t)).sum::<usize>();
    let mut t = 0;
    while t < len && filled(t + 1) <= len {
        t += 1;
    }
    let spare = (len - filled(t)) as u128;
    let forced: Vec<u128> = (0..zones).map(|z| size(z).min(t) as u128).collect();
    let len = len as u128;
    let demand: Vec<u128> = (0..zones)
        .map(|z| {
            let want = q * len * ONE * zone_weight[z] / total_weight;
            if size(z) > t {
                want.saturating_sub(q * forced[z] * ONE).min(q * ONE)
            } else {
                0
            }
        })
        .collect();
    let extra = share_with_caps(q * spare * ONE, &demand, q * ONE, &zone_weight, |z| {
        size(z) > t
    });
    let zone_total: Vec<u128> = (0..zones).map(|z| q * forced[z] * ONE + extra[z]).collect();

    // 2. Per node, by weight inside the zone.
    let node_total: Vec<u128> = (0..topo.len())
        .map(|i| {
            let z = topo.zone_of[i] as usize;
            zone_total[z] * weight[i] / zone_weight[z]
        })
        .collect();

    // 3. Per position.
    let owner_share: Vec<u128> = (0..topo.len())
        .map(|i| (q * ONE * weight[i] / total_weight).min(node_total[i]))
        .collect();
    let mut out = apportion(topo, partitions, &owner_share);
    if len > 1 {
        let rest: Vec<u128> = (0..topo.len())
            .map(|i| node_total[i].saturating_sub(owner_share[i]))
            .collect();
        let per_position = apportion(topo, partitions, &rest);
        for _ in 1..len {
            out.extend_from_slice(&per_position);
        }
    }
    out
}

/// Splits `total` in proportion to `demand`, no entry above `limit`, only among `eligible`
/// entries; leftover demand-free capacity goes by `fallback` weights.
fn share_with_caps(
    total: u128,
    demand: &[u128],
    limit: u128,
    fallback: &[u128],
    eligible: impl Fn(usize) -> bool,
) -> Vec<u128> {
    let mut out = vec![0u128; demand.len()];
    let mut left = total;
    let mut open: Vec<usize> = (0..demand.len()).filter(|&z| eligible(z)).collect();
    // Each round either places everything or pins at least one entry at its limit.
    while left > 0 && !open.is_empty() {
        let by_demand: u128 = open.iter().map(|&z| demand[z]).sum();
        let (weights, sum): (Vec<u128>, u128) = if by_demand > 0 {
            (demand.to_vec(), by_demand)
        } else {
            (fallback.to_vec(), open.iter().map(|&z| fallback[z]).sum())
        };
        if sum == 0 {
            break;
        }
        let mut pinned = false;
        let mut given = 0u128;
        for &z in &open {
            let want = left * weights[z] / sum;
            let give = want.min(limit - out[z]);
            pinned |= give < want || out[z] + give == limit;
            out[z] += give;
            given += give;
        }
        left -= given;
        open.retain(|&z| out[z] < limit);
        if !pinned {
            // Only rounding dust is left: give it to the first open entries.
            for &z in &open {
                let give = left.min(limit - out[z]);
                out[z] += give;
                left -= give;
            }
            break;
        }
    }
    out
}

/// Hands out exactly `total` slots in proportion to `share`, largest remainder first, ties to
/// the higher node hash, then the smaller id.
fn apportion(topo: &Topology, total: u32, share: &[u128]) -> Vec<u32> {
    let sum: u128 = share.iter().sum::<u128>().max(1);
    let exact: Vec<u128> = share.iter().map(|&s| u128::from(total) * s).collect();
    let mut out: Vec<u32> = exact.iter().map(|&e| (e / sum) as u32).collect();
    let given: u32 = out.iter().sum();
    let mut order: Vec<usize> = (0..share.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] % sum)
            .cmp(&(exact[a] % sum))
            .then(topo.node_hash[b].cmp(&topo.node_hash[a]))
            .then(topo.nodes[a].id.cmp(&topo.nodes[b].id))
    });
    for &i in order.iter().take(total.saturating_sub(given) as usize) {
        out[i] += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Node;

    fn topo(zones: &[(&str, u32)]) -> Topology {
        Topology::new(
            zones
                .iter()
                .enumerate()
                .map(|(i, (z, w))| Node::new(format!("n{i}")).with_zone(*z).with_weight(*w)),
            false,
        )
        .unwrap()
    }

    #[test]
    fn equal_zones_get_weight_shares() {
        let t = topo(&[("a", 1), ("b", 1), ("c", 1), ("a", 1), ("b", 1), ("c", 1)]);
        let q = position_quotas(&t, 600, 3);
        assert!(q.iter().all(|&x| x == 100), "{q:?}");
    }

    #[test]
    fn a_small_zone_carries_a_replica_of_everything() {
        // Zone "a" has one node, "b" four; with 2 replicas every list needs one of each zone.
        let t = topo(&[("a", 1), ("b", 1), ("b", 1), ("b", 1), ("b", 1)]);
        let q = position_quotas(&t, 1000, 2);
        let a = t.index_of(&"n0".into()).unwrap() as usize;
        // Owner share by weight (200), and the rest of its 1000 forced slots at position 1.
        assert_eq!(q[a], 200);
        assert_eq!(q[5 + a], 800);
        for position in 0..2 {
            assert_eq!(
                q[position * 5..(position + 1) * 5].iter().sum::<u32>(),
                1000
            );
        }
    }

    #[test]
    fn uneven_zones_balance_storage_inside_each_zone() {
        // 4 + 3 + 3 nodes, 3 replicas: each zone holds one replica of every partition.
        let t = topo(&[
            ("a", 1),
            ("a", 1),
            ("a", 1),
            ("a", 1),
            ("b", 1),
            ("b", 1),
            ("b", 1),
            ("c", 1),
            ("c", 1),
            ("c", 1),
        ]);
        let q = position_quotas(&t, 1200, 3);
        let total = |i: usize| q[i] + q[10 + i] + q[20 + i];
        for i in 0..10 {
            let zone_size = if t.zone_of[i] == t.zone_of[t.index_of(&"n0".into()).unwrap() as usize]
            {
                4
            } else {
                3
            };
            assert!(
                total(i).abs_diff(1200 / zone_size) <= 2,
                "node {i}: {}",
                total(i)
            );
        }
    }
}

//! Properties every strategy promises, checked on generated clusters and keys.
//!
//! Case counts are kept small (clusters of up to 24 nodes, at most 256 partitions) so the suite
//! runs in seconds; the balance suite and the benches cover large clusters.

mod common;

use std::collections::BTreeSet;

use proptest::prelude::*;
use ringkit_hashring::{
    JumpHash, Maglev, Node, NodeId, PartitionId, PartitionedRing, Placement, Rendezvous,
    RingConfig, TokenRing,
};

/// A cluster: 1 to 24 nodes, weights 1 to 4, zones (0 to 4 of them) or none.
fn cluster() -> impl Strategy<Value = Vec<Node>> {
    (
        1usize..=24,
        0usize..=4,
        proptest::collection::vec(1u32..=4, 24),
    )
        .prop_map(|(n, zones, weights)| {
            (0..n)
                .map(|i| {
                    let node = Node::new(format!("n{i}")).with_weight(weights[i]);
                    if zones == 0 {
                        node
                    } else {
                        node.with_zone(format!("z{}", (i * 7 + weights[i] as usize) % zones))
                    }
                })
                .collect()
        })
}

fn config(nodes: usize, replicas: usize) -> RingConfig {
    RingConfig {
        partitions: (nodes as u32 * 8).next_power_of_two().max(64),
        replicas,
    }
}

fn zone_of<'a>(nodes: &'a [Node], id: &NodeId) -> Option<&'a str> {
    nodes
        .iter()
        .find(|n| &n.id == id)
        .and_then(|n| n.zone.as_deref())
}

/// The zone-spread promise: in every prefix, no zone has two more replicas than a zone that
/// still has unused nodes.
fn assert_spread(nodes: &[Node], list: &[&NodeId]) {
    let zones: BTreeSet<Option<&str>> = nodes.iter().map(|n| n.zone.as_deref()).collect();
    for len in 1..=list.len() {
        let prefix = &list[..len];
        let count = |z: Option<&str>| prefix.iter().filter(|id| zone_of(nodes, id) == z).count();
        let size = |z: Option<&str>| nodes.iter().filter(|n| n.zone.as_deref() == z).count();
        let floor = zones
            .iter()
            .filter(|&&z| count(z) < size(z))
            .map(|&z| count(z))
            .min();
        if let Some(floor) = floor {
            for &z in &zones {
                assert!(
                    count(z) <= floor + 1,
                    "prefix {prefix:?} over-uses zone {z:?}"
                );
            }
        }
    }
}

/// Every node once; the first `min(n, len)` are the replicas; zone-spread prefixes.
fn check_list(p: &dyn Placement, hash: u64, n: usize, spread_len: usize) {
    let list = p.preference_list_of_hash(hash, n);
    assert_eq!(list.replica_count(), n.min(p.nodes().len()));
    let all: Vec<&NodeId> = list.collect();
    let distinct: BTreeSet<&NodeId> = all.iter().copied().collect();
    assert_eq!(all.len(), p.nodes().len());
    assert_eq!(distinct.len(), all.len(), "a node appears twice: {all:?}");
    assert_eq!(Some(all[0]), p.owner_of_hash(hash));
    assert_spread(p.nodes(), &all[..spread_len.min(all.len())]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn partitioned_ignores_the_order_nodes_are_listed_in(nodes in cluster(), seed in any::<u64>()) {
        let mut shuffled = nodes.clone();
        // A deterministic shuffle driven by the seed.
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, (seed.rotate_left(i as u32) % (i as u64 + 1)) as usize);
        }
        let a = PartitionedRing::new(config(nodes.len(), 3), nodes.clone()).unwrap();
        let b = PartitionedRing::new(config(nodes.len(), 3), shuffled.clone()).unwrap();
        prop_assert_eq!(&a, &b);
        let (t1, t2) = (TokenRing::new(8, nodes.clone()).unwrap(), TokenRing::new(8, shuffled.clone()).unwrap());
        prop_assert_eq!(t1.tokens(), t2.tokens());
        let (m1, m2) = (Maglev::new(nodes.clone()).unwrap(), Maglev::new(shuffled).unwrap());
        prop_assert_eq!(m1.keyspace_shares(), m2.keyspace_shares());
    }

    #[test]
    fn partitioned_join_moves_only_to_the_newcomer(nodes in cluster(), zone in 0usize..5, w in 1u32..=4) {
        let ring = PartitionedRing::new(config(nodes.len() + 1, 3), nodes).unwrap();
        let mut newcomer = Node::new("newcomer").with_weight(w);
        if zone > 0 {
            newcomer = newcomer.with_zone(format!("z{}", zone - 1));
        }
        let grown = ring.with_node(newcomer.clone()).unwrap();
        prop_assert_eq!(grown.epoch(), ring.epoch() + 1);
        let diff = ring.diff(&grown);
        for m in diff.moves() {
            // Data moves only to the newcomer; anything else is a role change within a
            // partition the newcomer joined.
            if m.to_needs_data {
                prop_assert_eq!(m.to.as_ref(), Some(&newcomer.id));
            }
            let list: Vec<&NodeId> = grown.partition_preference_list(m.partition, 3).replicas().collect();
            prop_assert!(list.contains(&&newcomer.id), "{m:?} in a partition {list:?} without the newcomer");
        }
        // Owners change only to the newcomer.
        for m in diff.owner_changes() {
            prop_assert_eq!(m.to.as_ref(), Some(&newcomer.id));
        }
    }

    #[test]
    fn partitioned_leave_moves_only_what_the_leaver_held(nodes in cluster(), pick in any::<prop::sample::Index>()) {
        prop_assume!(nodes.len() > 1);
        let ring = PartitionedRing::new(config(nodes.len(), 3), nodes.clone()).unwrap();
        let leaver = nodes[pick.index(nodes.len())].id.clone();
        let shrunk = ring.without_node(&leaver).unwrap();
        for m in ring.diff(&shrunk).moves() {
            let before: Vec<&NodeId> = ring.partition_preference_list(m.partition, 3).replicas().collect();
            prop_assert!(before.contains(&&leaver), "{m:?} in a partition {before:?} the leaver did not hold");
        }
        prop_assert!(ring.without_node(&leaver).unwrap().node(&leaver).is_none());
    }

    #[test]
    fn partitioned_lists_are_distinct_and_spread(nodes in cluster(), replicas in 1usize..=5, hash in any::<u64>(), n in 0usize..8) {
        let ring = PartitionedRing::new(config(nodes.len(), replicas), nodes).unwrap();
        check_list(&ring, hash, n, usize::MAX);
        let p = ring.partition_of_hash(hash);
        prop_assert!(ring.partition_range(p).contains(&hash));
        prop_assert_eq!(ring.replica_count(), replicas.min(ring.nodes().len()));
    }

    #[test]
    fn every_strategy_gives_distinct_spread_lists(nodes in cluster(), hash in any::<u64>(), n in 0usize..6) {
        check_list(&TokenRing::new(16, nodes.clone()).unwrap(), hash, n, usize::MAX);
        check_list(&Rendezvous::new(nodes.clone()).unwrap(), hash, n, usize::MAX);
        check_list(&Maglev::new(nodes.clone()).unwrap(), hash, n, usize::MAX);
        let plain: Vec<Node> = nodes.into_iter().map(|n| n.with_weight(1)).collect();
        check_list(&JumpHash::new(plain).unwrap(), hash, n, usize::MAX);
    }

    #[test]
    fn partitioned_honours_weights(nodes in cluster()) {
        // Without zones, each node owns its weighted share to within its cap's headroom.
        let nodes: Vec<Node> = nodes.into_iter().map(|mut n| { n.zone = None; n }).collect();
        let ring = PartitionedRing::new(config(nodes.len(), 3), nodes.clone()).unwrap();
        let q = u64::from(ring.partition_count());
        let total: u64 = nodes.iter().map(|n| u64::from(n.weight)).sum();
        for load in ring.loads() {
            let w = u64::from(ring.node(&load.node).unwrap().weight);
            let fair = q * w / total;
            let slack = (fair * 3 / 100).max(1) + 1;
            prop_assert!(u64::from(load.owned) <= fair + slack, "{load:?} fair {fair}");
            prop_assert!(u64::from(load.owned) + slack * nodes.len() as u64 >= fair, "{load:?} fair {fair}");
        }
    }

    #[test]
    fn token_and_rendezvous_are_minimal(nodes in cluster(), hashes in proptest::collection::vec(any::<u64>(), 64)) {
        let newcomer = Node::new("newcomer");
        let token = TokenRing::new(16, nodes.clone()).unwrap();
        let hrw = Rendezvous::new(nodes.clone()).unwrap();
        let strategies: [(&dyn Placement, Box<dyn Placement>); 2] = [
            (&token, Box::new(token.with_node(newcomer.clone()).unwrap())),
            (&hrw, Box::new(hrw.with_node(newcomer.clone()).unwrap())),
        ];
        for (before, after) in &strategies {
            for &h in &hashes {
                let (a, b) = (before.owner_of_hash(h).unwrap(), after.owner_of_hash(h).unwrap());
                prop_assert!(a == b || b == &newcomer.id, "moved {a} -> {b}");
            }
        }
        if nodes.len() > 1 {
            let leaver = nodes[0].id.clone();
            let shrunk = [
                Box::new(token.without_node(&leaver).unwrap()) as Box<dyn Placement>,
                Box::new(hrw.without_node(&leaver).unwrap()),
            ];
            for ((before, _), after) in strategies.iter().zip(&shrunk) {
                for &h in &hashes {
                    let (a, b) = (before.owner_of_hash(h).unwrap(), after.owner_of_hash(h).unwrap());
                    prop_assert!(a == b || a == &leaver, "moved {a} -> {b}");
                }
            }
        }
    }

    #[test]
    fn jump_moves_only_to_an_appended_bucket(n in 1usize..40, hashes in proptest::collection::vec(any::<u64>(), 64)) {
        let before = JumpHash::new(common::plain(n)).unwrap();
        let after = JumpHash::new(common::plain(n + 1)).unwrap();
        let last = NodeId::from(format!("node-{n}"));
        for h in hashes {
            let (a, b) = (before.owner_of_hash(h).unwrap(), after.owner_of_hash(h).unwrap());
            prop_assert!(a == b || b == &last);
        }
    }

    #[test]
    fn serde_round_trips_and_diffs_replay(nodes in cluster(), extra in 0usize..3) {
        let ring = PartitionedRing::new(config(nodes.len() + 3, 3), nodes).unwrap();
        let json = serde_json::to_string(&ring).unwrap();
        let back: PartitionedRing = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &ring);
        // Replaying a diff's moves over the old lists gives the new lists.
        let mut newer = ring.clone();
        for i in 0..extra {
            newer = newer.with_node(Node::new(format!("extra-{i}"))).unwrap();
        }
        let diff = ring.diff(&newer);
        for p in 0..ring.partition_count() {
            let mut list: Vec<Option<NodeId>> = ring
                .partition_preference_list(PartitionId(p), 3)
                .replicas()
                .cloned()
                .map(Some)
                .collect();
            list.resize(3, None);
            for m in diff.moves().iter().filter(|m| m.partition == PartitionId(p)) {
                prop_assert_eq!(&list[m.position], &m.from);
                list[m.position] = m.to.clone();
            }
            let expected: Vec<Option<NodeId>> = newer
                .partition_preference_list(PartitionId(p), 3)
                .replicas()
                .cloned()
                .map(Some)
                .chain(std::iter::repeat(None))
                .take(3)
                .collect();
            prop_assert_eq!(list, expected);
        }
    }

    #[test]
    fn changes_keep_every_invariant(nodes in cluster(), ops in proptest::collection::vec((any::<bool>(), any::<prop::sample::Index>(), 1u32..=3), 1..8)) {
        let mut ring = PartitionedRing::new(config(40, 3), nodes).unwrap();
        for (i, (join, pick, w)) in ops.into_iter().enumerate() {
            let members = ring.nodes().len();
            ring = if join || members == 1 {
                ring.with_node(Node::new(format!("j{i}")).with_weight(w).with_zone(format!("z{}", i % 3))).unwrap()
            } else {
                let id = ring.nodes()[pick.index(members)].id.clone();
                ring.without_node(&id).unwrap()
            };
            for p in 0..ring.partition_count() {
                let list: Vec<&NodeId> = ring.partition_preference_list(PartitionId(p), 3).collect();
                prop_assert_eq!(list.len(), ring.nodes().len());
                assert_spread(ring.nodes(), &list[..3.min(list.len())]);
            }
        }
    }
}

#[test]
fn lists_longer_than_the_cluster_hold_every_node_once() {
    let ring = PartitionedRing::new(RingConfig::default(), common::plain(2)).unwrap();
    let list = ring.preference_list(b"k", 5);
    assert_eq!(list.replica_count(), 2);
    assert_eq!(list.clone().replicas().count(), 2);
    assert_eq!(list.fallbacks().count(), 0);
    let ring = PartitionedRing::new(RingConfig::default(), common::plain(5)).unwrap();
    let fallbacks: Vec<_> = ring.preference_list(b"k", 3).fallbacks().collect();
    assert_eq!(fallbacks.len(), 2);
}

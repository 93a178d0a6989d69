//! A tour of ringkit's consistent hashing: build a partitioned ring, look keys up, check the
//! balance, then add a node and see exactly what moves.
//!
//! Run with `cargo run -p ringkit-examples --example hashring_tour`.

use std::collections::BTreeMap;

use ringkit_hashring::{
    HashRingError, JumpHash, Maglev, Node, NodeId, PartitionedRing, Placement, Rendezvous,
    RingConfig, TokenRing,
};

const KEYS: [&str; 5] = [
    "user:42",
    "user:43",
    "cart:9f1c",
    "session:abc",
    "order:2024-0001",
];

fn main() -> Result<(), HashRingError> {
    // Eight nodes over three zones; one node has twice the capacity of the others.
    let nodes = vec![
        Node::new("node-a").with_zone("eu-west-1a"),
        Node::new("node-b").with_zone("eu-west-1b"),
        Node::new("node-c").with_zone("eu-west-1c"),
        Node::new("node-d").with_zone("eu-west-1a"),
        Node::new("node-e").with_zone("eu-west-1b"),
        Node::new("node-f").with_zone("eu-west-1c"),
        Node::new("node-g").with_zone("eu-west-1a"),
        Node::new("node-h").with_zone("eu-west-1b").with_weight(2),
    ];
    let config = RingConfig::for_cluster_size(16);
    let ring = PartitionedRing::new(config, nodes.clone())?;
    println!(
        "== partitioned ring: {} nodes, {} partitions, {} replicas, epoch {}",
        ring.nodes().len(),
        ring.partition_count(),
        ring.replica_count(),
        ring.epoch()
    );

    println!("\n== where keys live (3 replicas in 3 zones, then the first sloppy-quorum fallback)");
    for key in KEYS {
        let list: Vec<&NodeId> = ring.preference_list_str(key, 3).collect();
        let replicas: Vec<String> = list[..3]
            .iter()
            .map(|id| format!("{id} ({})", zone(&ring, id)))
            .collect();
        println!(
            "{key:<16} partition {:>5}  replicas {}  fallback {}",
            ring.partition_of(key.as_bytes()).to_string(),
            replicas.join(", "),
            list[3]
        );
    }

    println!(
        "\n== balance (exact: partitions owned out of {})",
        ring.partition_count()
    );
    print_balance(&ring);

    let grown = ring.with_node(Node::new("node-i").with_zone("eu-west-1c"))?;
    let diff = ring.diff(&grown);
    let q = f64::from(ring.partition_count());
    let owner_moves = diff.owner_changes().count();
    println!(
        "\n== node-i joins: epoch {} -> {}, {} replica slots change, {} owners change",
        diff.from_epoch,
        diff.to_epoch,
        diff.len(),
        owner_moves
    );
    let total_weight: u32 = grown.nodes().iter().map(|n| n.weight).sum();
    println!(
        "keys that change owner: {:.2}% (node-i's fair share, the ideal: {:.2}%)",
        100.0 * owner_moves as f64 / q,
        100.0 / f64::from(total_weight)
    );
    println!("data to stream (from -> to: partitions):");
    let mut per_pair: BTreeMap<String, usize> = BTreeMap::new();
    for ((from, to), partitions) in diff.transfers() {
        let from = from.map_or_else(|| "(empty)".to_string(), |f| f.to_string());
        per_pair.insert(format!("{from} -> {to}"), partitions.len());
    }
    for (pair, count) in per_pair {
        println!("  {pair:<20} {count:>4}");
    }
    for key in KEYS {
        let (before, after) = (ring.owner_str(key), grown.owner_str(key));
        if before != after {
            println!("  {key} moved: {} -> {}", before.unwrap(), after.unwrap());
        }
    }

    println!("\n== balance after the join");
    print_balance(&grown);

    println!("\n== the same key under every strategy");
    let plain: Vec<Node> = nodes.iter().cloned().map(|n| n.with_weight(1)).collect();
    let strategies: Vec<(&str, Box<dyn Placement>)> = vec![
        ("partitioned", Box::new(ring.clone())),
        ("token ring", Box::new(TokenRing::new(160, nodes.clone())?)),
        ("jump", Box::new(JumpHash::new(plain)?)),
        ("rendezvous", Box::new(Rendezvous::new(nodes.clone())?)),
        ("maglev", Box::new(Maglev::new(nodes)?)),
    ];
    for (name, strategy) in &strategies {
        let list: Vec<&str> = strategy
            .preference_list(b"user:42", 3)
            .replicas()
            .map(NodeId::as_str)
            .collect();
        println!("{name:<12} user:42 -> {}", list.join(", "));
    }
    Ok(())
}

fn zone<'a>(ring: &'a PartitionedRing, id: &NodeId) -> &'a str {
    ring.node(id).and_then(|n| n.zone.as_deref()).unwrap_or("-")
}

fn print_balance(ring: &PartitionedRing) {
    let total_weight: u32 = ring.nodes().iter().map(|n| n.weight).sum();
    let q = f64::from(ring.partition_count());
    println!("node     zone        weight  owned  share   fair    stored");
    let mut peak: f64 = 0.0;
    for load in ring.loads() {
        let node = ring.node(&load.node).expect("loads lists members");
        let share = f64::from(load.owned) / q;
        let fair = f64::from(node.weight) / f64::from(total_weight);
        peak = peak.max(share / fair);
        println!(
            "{:<8} {:<11} {:>6} {:>6} {:>6.2}% {:>6.2}% {:>6}",
            load.node.as_str(),
            zone(ring, &load.node),
            node.weight,
            load.owned,
            100.0 * share,
            100.0 * fair,
            load.replicas
        );
    }
    println!("peak share / fair share: {peak:.3}");
}

//! Shared helpers for the integration tests.

#![allow(dead_code, unreachable_pub)]

use ringkit_hashring::Node;

/// `n` nodes named `node-0..`, weight 1, no zone.
pub fn plain(n: usize) -> Vec<Node> {
    (0..n).map(|i| Node::new(format!("node-{i}"))).collect()
}

/// `n` nodes spread round-robin over `zones` zones named `z0..`.
pub fn zoned(n: usize, zones: usize) -> Vec<Node> {
    (0..n)
        .map(|i| Node::new(format!("node-{i}")).with_zone(format!("z{}", i % zones)))
        .collect()
}

/// Peak over mean of a set of shares.
pub fn peak_over_mean(shares: &[u128]) -> f64 {
    let total: u128 = shares.iter().sum();
    let max = shares.iter().copied().max().unwrap_or(0);
    max as f64 * shares.len() as f64 / total as f64
}

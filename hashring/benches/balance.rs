//! Balance and disruption of every strategy at 10, 100 and 1000 nodes, as one markdown table.
//!
//! Run with `cargo bench -p ringkit-hashring --bench balance` (add `-- --quick` to skip the
//! 1000-node rendezvous rows, which hash every key against every node).
//!
//! - **peak/mean**: the largest node's share of the keyspace over the mean share. Exact (from
//!   partition, token-arc or table-entry sizes over the whole 2^64 space) where the strategy has
//!   such boundaries; sampled over evenly spaced hashes for jump and rendezvous, with the peak/mean
//!   that a perfectly uniform assignment of the same sample would show (the noise floor) next to it.
//! - **moved (join)** / **moved (leave)**: the share of the keyspace whose owner changed when
//!   `node-n` joins or `node-(n-1)` leaves, over the ideal `1/(n+1)` or `1/n`. Exact or sampled as
//!   above. For the partitioned ring, `data` is the share of replica slots that need data streamed,
//!   over the ideal (the newcomer's fair share of slots).
//! - **bounded load** is simulated: `100 n` keys acquired in sequence with c = 1.25 over the
//!   partitioned ring; moved is the share of those keys that land elsewhere after the join.

#![allow(missing_docs)]

use std::time::Instant;

use ringkit_hashring::{
    BoundedLoad, JumpHash, Maglev, Node, NodeId, PartitionId, PartitionedRing, Placement,
    Rendezvous, RingConfig, TokenRing, key_hash,
};

const SIZES: [usize; 3] = [10, 100, 1000];

fn nodes(n: usize) -> Vec<Node> {
    (0..n).map(|i| Node::new(format!("node-{i}"))).collect()
}

fn joiner(n: usize) -> Node {
    Node::new(format!("node-{n}"))
}

fn leaver(n: usize) -> NodeId {
    NodeId::from(format!("node-{}", n - 1))
}

/// Exact share of the hash space whose owner differs between `a` and `b`, given every point where
/// either strategy's owner can change (each a first hash of a constant run).
fn exact_moved(a: &dyn Placement, b: &dyn Placement, mut starts: Vec<u64>) -> f64 {
    starts.push(0);
    starts.sort_unstable();
    starts.dedup();
    let mut moved = 0u128;
    for (i, &s) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(1u128 << 64, |&e| u128::from(e));
        if a.owner_of_hash(s) != b.owner_of_hash(s) {
            moved += end - u128::from(s);
        }
    }
    moved as f64 / 2f64.powi(64)
}

fn token_starts(r: &TokenRing) -> Vec<u64> {
    r.tokens().iter().map(|t| t.wrapping_add(1)).collect()
}

fn maglev_starts(m: &Maglev) -> Vec<u64> {
    let size = m.table_size() as u128;
    (0..size)
        .map(|k| ((k << 64).div_ceil(size)) as u64)
        .collect()
}

fn partition_starts(r: &PartitionedRing) -> Vec<u64> {
    (0..r.partition_count())
        .map(|p| *r.partition_range(PartitionId(p)).start())
        .collect()
}

fn peak_over_mean(shares: &[u128]) -> f64 {
    let total: u128 = shares.iter().sum();
    let max = *shares.iter().max().unwrap_or(&0);
    max as f64 * shares.len() as f64 / total as f64
}

/// `count` evenly spaced hashes (offset by half a step so none sits on 0).
fn sample(count: u64) -> impl Iterator<Item = u64> {
    let step = u64::MAX / count;
    (0..count).map(move |i| i * step + step / 2)
}

/// Sampled peak/mean of `p`, and the sampled share moved between `a` and `b`.
fn sampled(p: &dyn Placement, count: u64) -> f64 {
    let ids: Vec<&NodeId> = p.nodes().iter().map(|n| &n.id).collect();
    let mut counts = vec![0u128; ids.len()];
    for h in sample(count) {
        let owner = p.owner_of_hash(h).unwrap();
        let i = ids
            .binary_search(&owner)
            .unwrap_or_else(|_| ids.iter().position(|&id| id == owner).unwrap());
        counts[i] += 1;
    }
    peak_over_mean(&counts)
}

fn sampled_moved(a: &dyn Placement, b: &dyn Placement, count: u64) -> f64 {
    let moved = sample(count)
        .filter(|&h| a.owner_of_hash(h) != b.owner_of_hash(h))
        .count();
    moved as f64 / count as f64
}

/// Peak/mean of a perfectly uniform random assignment of `count` keys to `n` nodes.
fn noise_floor(n: usize, count: u64) -> f64 {
    let mut counts = vec![0u128; n];
    for h in sample(count) {
        counts[((u128::from(key_hash(&h.to_le_bytes())) * n as u128) >> 64) as usize] += 1;
    }
    peak_over_mean(&counts)
}

struct Row {
    strategy: String,
    n: usize,
    peak: String,
    join: String,
    leave: String,
    note: String,
}

fn exact_rows(n: usize, rows: &mut Vec<Row>) {
    let ideal_join = 1.0 / (n + 1) as f64;
    let ideal_leave = 1.0 / n as f64;

    let config = RingConfig::for_cluster_size(n);
    let ring = PartitionedRing::new(config, nodes(n)).unwrap();
    let grown = ring.with_node(joiner(n)).unwrap();
    let shrunk = ring.without_node(&leaver(n)).unwrap();
    let loads = ring.loads();
    let owned: Vec<u128> = loads.iter().map(|l| u128::from(l.owned)).collect();
    let stored: Vec<u128> = loads.iter().map(|l| u128::from(l.replicas)).collect();
    let data = |a: &PartitionedRing, b: &PartitionedRing, fair: f64| {
        let slots = a.diff(b).moves().iter().filter(|m| m.to_needs_data).count();
        slots as f64 / (fair * f64::from(a.partition_count()) * a.replica_count() as f64)
    };
    rows.push(Row {
        strategy: format!("partitioned (Q={}, N=3)", config.partitions),
        n,
        peak: format!(
            "{:.3} (replicas {:.3})",
            peak_over_mean(&owned),
            peak_over_mean(&stored)
        ),
        join: format!(
            "{:.3} (data {:.3})",
            exact_moved(&ring, &grown, partition_starts(&ring)) / ideal_join,
            data(&ring, &grown, ideal_join)
        ),
        leave: format!(
            "{:.3} (data {:.3})",
            exact_moved(&ring, &shrunk, partition_starts(&ring)) / ideal_leave,
            data(&ring, &shrunk, ideal_leave)
        ),
        note: "exact".into(),
    });
    let rebuilt = PartitionedRing::new(config, nodes(n + 1)).unwrap();
    rows.push(Row {
        strategy: "partitioned, rebuilt with `new` instead of `with_node`".into(),
        n,
        peak: format!("{:.3}", {
            let l = rebuilt.loads();
            peak_over_mean(&l.iter().map(|l| u128::from(l.owned)).collect::<Vec<_>>())
        }),
        join: format!(
            "{:.3}",
            exact_moved(&ring, &rebuilt, partition_starts(&ring)) / ideal_join
        ),
        leave: "-".into(),
        note: "exact; what a history-free claim would cost".into(),
    });

    let tokens = TokenRing::new(160, nodes(n)).unwrap();
    let t_grown = tokens.with_node(joiner(n)).unwrap();
    let t_shrunk = tokens.without_node(&leaver(n)).unwrap();
    let mut starts = token_starts(&tokens);
    starts.extend(token_starts(&t_grown));
    rows.push(Row {
        strategy: "token ring, 160 vnodes (ketama)".into(),
        n,
        peak: format!("{:.3}", peak_over_mean(&tokens.keyspace_shares())),
        join: format!(
            "{:.3}",
            exact_moved(&tokens, &t_grown, starts.clone()) / ideal_join
        ),
        leave: format!(
            "{:.3}",
            exact_moved(&tokens, &t_shrunk, token_starts(&tokens)) / ideal_leave
        ),
        note: "exact".into(),
    });

    if n == 1000 {
        // The knob: ten times the table halves Maglev's excess disruption or better.
        let big = Maglev::with_table_size(nodes(n), 1_000_003).unwrap();
        let b_grown = big.with_node(joiner(n)).unwrap();
        let b_shrunk = big.without_node(&leaver(n)).unwrap();
        rows.push(Row {
            strategy: format!("maglev (M={})", big.table_size()),
            n,
            peak: format!("{:.3}", peak_over_mean(&big.keyspace_shares())),
            join: format!(
                "{:.3}",
                exact_moved(&big, &b_grown, maglev_starts(&big)) / ideal_join
            ),
            leave: format!(
                "{:.3}",
                exact_moved(&big, &b_shrunk, maglev_starts(&big)) / ideal_leave
            ),
            note: "exact".into(),
        });
    }
    let maglev = Maglev::new(nodes(n)).unwrap();
    let m_grown = maglev.with_node(joiner(n)).unwrap();
    let m_shrunk = maglev.without_node(&leaver(n)).unwrap();
    rows.push(Row {
        strategy: format!("maglev (M={})", maglev.table_size()),
        n,
        peak: format!("{:.3}", peak_over_mean(&maglev.keyspace_shares())),
        join: format!(
            "{:.3}",
            exact_moved(&maglev, &m_grown, maglev_starts(&maglev)) / ideal_join
        ),
        leave: format!(
            "{:.3}",
            exact_moved(&maglev, &m_shrunk, maglev_starts(&maglev)) / ideal_leave
        ),
        note: "exact".into(),
    });
}

fn sampled_rows(n: usize, quick: bool, rows: &mut Vec<Row>) {
    let ideal_join = 1.0 / (n + 1) as f64;
    let ideal_leave = 1.0 / n as f64;

    let keys = 1u64 << 24;
    let jump = JumpHash::new(nodes(n)).unwrap();
    let j_grown = JumpHash::new(nodes(n).into_iter().chain([joiner(n)])).unwrap();
    let j_shrunk = JumpHash::new(nodes(n - 1)).unwrap();
    rows.push(Row {
        strategy: "jump".into(),
        n,
        peak: format!("{:.3}", sampled(&jump, keys)),
        join: format!("{:.3}", sampled_moved(&jump, &j_grown, keys) / ideal_join),
        leave: format!("{:.3}", sampled_moved(&jump, &j_shrunk, keys) / ideal_leave),
        note: format!("2^24 keys; noise floor {:.3}", noise_floor(n, keys)),
    });

    if !(quick && n >= 1000) {
        let keys = if n >= 1000 { 1u64 << 21 } else { 1u64 << 22 };
        let hrw = Rendezvous::new(nodes(n)).unwrap();
        let h_grown = hrw.with_node(joiner(n)).unwrap();
        let h_shrunk = hrw.without_node(&leaver(n)).unwrap();
        rows.push(Row {
            strategy: "rendezvous (HRW)".into(),
            n,
            peak: format!("{:.3}", sampled(&hrw, keys)),
            join: format!("{:.3}", sampled_moved(&hrw, &h_grown, keys) / ideal_join),
            leave: format!("{:.3}", sampled_moved(&hrw, &h_shrunk, keys) / ideal_leave),
            note: format!(
                "2^{} keys; noise floor {:.3}",
                keys.trailing_zeros(),
                noise_floor(n, keys)
            ),
        });
    }

    // Bounded load: a stream of 100 n keys, each acquired and kept.
    let stream = 100 * n as u64;
    let run = |ring: PartitionedRing| {
        let mut bounded = BoundedLoad::new(ring, 125).unwrap();
        let picks: Vec<NodeId> = (0..stream)
            .map(|k| bounded.acquire(&k.to_le_bytes()).unwrap())
            .collect();
        let loads: Vec<u128> = bounded
            .nodes()
            .iter()
            .map(|node| u128::from(bounded.load(&node.id).unwrap()))
            .collect();
        (picks, peak_over_mean(&loads))
    };
    let ring = PartitionedRing::new(RingConfig::for_cluster_size(n), nodes(n)).unwrap();
    let grown = ring.with_node(joiner(n)).unwrap();
    let (before, peak) = run(ring);
    let (after, _) = run(grown);
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    rows.push(Row {
        strategy: "bounded load, c = 1.25 over partitioned".into(),
        n,
        peak: format!("{peak:.3}"),
        join: format!("{:.3}", moved as f64 / stream as f64 / ideal_join),
        leave: "-".into(),
        note: format!("{stream} keys acquired in sequence"),
    });
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let started = Instant::now();
    let mut rows = Vec::new();
    for n in SIZES {
        exact_rows(n, &mut rows);
        sampled_rows(n, quick, &mut rows);
    }
    println!(
        "| strategy | nodes | peak/mean | moved on join / ideal | moved on leave / ideal | how |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    rows.sort_by(|a, b| a.strategy.cmp(&b.strategy).then(a.n.cmp(&b.n)));
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.strategy, r.n, r.peak, r.join, r.leave, r.note
        );
    }
    eprintln!("(computed in {:.1?})", started.elapsed());
}

//! Lookup cost per strategy at 10, 100 and 1000 nodes: owner of a 16-byte key (hashing
//! included), and its 3-replica preference list.
//!
//! Run with `cargo bench -p ringkit-hashring --bench lookup`.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ringkit_hashring::{
    JumpHash, Maglev, Node, PartitionedRing, Placement, Rendezvous, RingConfig, TokenRing,
};

fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| Node::new(format!("node-{i}")).with_zone(format!("zone-{}", i % 3)))
        .collect()
}

/// 1024 distinct 16-byte keys, cycled through so the branch predictor cannot learn one key.
fn keys() -> Vec<[u8; 16]> {
    (0u64..1024)
        .map(|i| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&i.to_le_bytes());
            k[8..].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
            k
        })
        .collect()
}

fn strategies(n: usize) -> Vec<(&'static str, Box<dyn Placement>)> {
    vec![
        (
            "partitioned",
            Box::new(PartitionedRing::new(RingConfig::for_cluster_size(n), nodes(n)).unwrap()),
        ),
        ("token160", Box::new(TokenRing::new(160, nodes(n)).unwrap())),
        ("jump", Box::new(JumpHash::new(nodes(n)).unwrap())),
        ("maglev", Box::new(Maglev::new(nodes(n)).unwrap())),
        ("rendezvous", Box::new(Rendezvous::new(nodes(n)).unwrap())),
    ]
}

fn lookup(c: &mut Criterion) {
    let keys = keys();
    let mut owner = c.benchmark_group("owner");
    for n in [10, 100, 1000] {
        for (name, strategy) in strategies(n) {
            owner.bench_with_input(BenchmarkId::new(name, n), &strategy, |b, s| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(s.owner(black_box(&keys[i])))
                });
            });
        }
    }
    owner.finish();

    let mut list = c.benchmark_group("preference_list_3");
    for n in [10, 100, 1000] {
        for (name, strategy) in strategies(n) {
            list.bench_with_input(BenchmarkId::new(name, n), &strategy, |b, s| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & 1023;
                    let mut it = s.preference_list(black_box(&keys[i]), 3);
                    black_box((it.next(), it.next(), it.next()))
                });
            });
        }
    }
    list.finish();

    // Direct (non-dyn) call of the default strategy, as services call it.
    let ring = PartitionedRing::new(RingConfig::for_cluster_size(1000), nodes(1000)).unwrap();
    c.bench_function("owner/partitioned-direct/1000", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(ring.owner(black_box(&keys[i])))
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = lookup
}
criterion_main!(benches);

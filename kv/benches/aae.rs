//! Benchmarks of anti-entropy's local costs: what a write pays to keep the trees honest, what a
//! tree (re)build and a dirty-leaf refresh read, and the sans-IO comparison.
//!
//! `cargo bench -p ringkit-kv --bench aae`

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ringkit_kv::cluster::aae::{
    AaeTrees, DescentStep, IoBudget, MerkleTree, RowDigest, TrackedStorage, TreeDescent, TreeShape,
    diff_rows,
};
use ringkit_kv::model::{ActorId, LocalWrite, SiblingLimits, Timestamp, WriteMode, key_hash};
use ringkit_kv::storage::{
    Durability, MemStorage, SqliteConfig, SqliteStorage, Storage, StorageExt, WriteOp, WriteRequest,
};

/// Keys a node holds in the build benchmarks.
const KEYS: usize = 100_000;
/// Partitions of the ring (a 2-node cluster's default is 128).
const PARTITIONS: u32 = 128;

fn puts(range: std::ops::Range<usize>, tag: &str) -> Vec<WriteOp> {
    range
        .map(|i| WriteOp::Local {
            key: Bytes::from(format!("key-{i:08}")),
            write: LocalWrite::Put {
                value: Bytes::from(format!("{tag}-{i}-{}", "x".repeat(100))),
                context: None,
                expires_at: None,
                // Last-write-wins: every rewrite replaces the value (no sibling growth), so
                // each round really changes the rows.
                mode: WriteMode::LastWriteWins,
            },
        })
        .collect()
}

fn load<S: Storage>(store: &S, range: std::ops::Range<usize>, tag: &str) {
    let mut i = range.start;
    while i < range.end {
        let j = (i + 1000).min(range.end);
        let req = WriteRequest {
            now: Timestamp(1),
            siblings: SiblingLimits::default(),
            ops: puts(i..j, tag),
        };
        match store.write_blocking(req) {
            Ok(results) => {
                if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                    panic!("load: {e}");
                }
            }
            Err(e) => panic!("load: {e}"),
        }
        i = j;
    }
}

fn trees() -> Arc<AaeTrees> {
    let t = AaeTrees::new(TreeShape::default()).unwrap_or_else(|e| panic!("{e}"));
    t.retain(PARTITIONS, &(0..PARTITIONS).collect::<BTreeSet<u32>>())
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(t)
}

/// Refreshes every partition's tree.
async fn refresh_all<S: Storage>(trees: &AaeTrees, store: &S) {
    let budget = IoBudget::new(0, 0);
    for p in 0..PARTITIONS {
        if let Err(e) = trees.refresh(store, p, &budget).await {
            panic!("refresh: {e}");
        }
    }
}

fn bench_builds<S: Storage>(c: &mut Criterion, name: &str, store: S) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let t = trees();
    let tracked = TrackedStorage::new(store, Arc::clone(&t));
    load(&tracked, 0..KEYS, "v");
    let mut g = c.benchmark_group(format!("aae {name}"));
    g.sample_size(10);
    g.bench_function(
        "full tree build, 100k keys, 128 partitions x 4096 leaves",
        |b| {
            b.iter(|| {
                t.mark_all();
                rt.block_on(refresh_all(&t, &tracked));
            })
        },
    );
    g.bench_function("refresh after 1000 writes", |b| {
        b.iter_batched(
            || load(&tracked, 0..1000, "w"),
            |()| rt.block_on(refresh_all(&t, &tracked)),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let t = trees();
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    c.bench_function("aae mark one write (key hash + dirty bit)", |b| {
        let key = Bytes::from_static(b"key-00001234");
        b.iter(|| {
            h = h.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            t.mark(black_box(key_hash(&key)) ^ h);
        })
    });

    // Sans-IO: a full descent between two default trees differing in one leaf.
    let shape = TreeShape::default();
    let mut a = MerkleTree::new(0..=u64::MAX, shape).unwrap_or_else(|e| panic!("{e}"));
    let _ = a.take_dirty(usize::MAX);
    let mut b2 = a.clone();
    b2.set_leaf(
        1234,
        ringkit_kv::storage::RangeSummary { rows: 1, digest: 7 },
    );
    c.bench_function("aae descent to one differing leaf (16^3 tree)", |b| {
        b.iter(|| {
            let (mut walk, mut step) = TreeDescent::start(64);
            loop {
                match step {
                    DescentStep::Done { leaves } => break black_box(leaves),
                    DescentStep::Fetch { level, nodes } => {
                        let reply: Vec<_> = nodes
                            .iter()
                            .map(|&i| b2.node(level, i).unwrap_or_default())
                            .collect();
                        step = walk.on_reply(&a, &reply).unwrap_or_else(|e| panic!("{e}"));
                    }
                }
            }
        })
    });
    let rows: Vec<RowDigest> = (0..1000u64)
        .map(|i| RowDigest {
            hash: i * 1000,
            key: Bytes::from(format!("k{i}")),
            digest: i,
        })
        .collect();
    let mut other = rows.clone();
    other[500].digest = 0;
    c.bench_function("aae diff of two 1000-row leaves", |b| {
        b.iter(|| black_box(diff_rows(&rows, &other)))
    });

    bench_builds(c, "memory", MemStorage::new(ActorId(1)));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = SqliteConfig::new(dir.path(), "bench");
    cfg.durability = Durability::Normal;
    let sqlite = SqliteStorage::open(cfg).unwrap_or_else(|e| panic!("{e}"));
    bench_builds(c, "sqlite", sqlite);
}

criterion_group!(benches, bench);
criterion_main!(benches);

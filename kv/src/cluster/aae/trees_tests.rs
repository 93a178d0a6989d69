//! The trees against a real (in-memory) store: writes through [`TrackedStorage`] mark leaves,
//! refreshes re-read them, and every tree node then equals the store's summary of its range.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::cluster::aae::tracked::TrackedStorage;
use crate::model::{ActorId, LocalWrite, Timestamp, WriteMode, key_hash};
use crate::storage::{
    Durability, MemStorage, SqliteConfig, SqliteStorage, Storage, StorageExt, WriteOp, WriteRequest,
};

fn shape() -> TreeShape {
    TreeShape {
        fan_out: 4,
        depth: 2,
    }
}

fn put(key: &str, value: &str) -> WriteOp {
    WriteOp::Local {
        key: Bytes::from(key.to_owned()),
        write: LocalWrite::Put {
            value: Bytes::from(value.to_owned()),
            context: None,
            expires_at: None,
            mode: WriteMode::Causal,
        },
    }
}

fn request(ops: Vec<WriteOp>) -> WriteRequest {
    WriteRequest {
        now: Timestamp(1),
        siblings: Default::default(),
        ops,
    }
}

/// Checks every node of partition `p`'s tree against the store.
async fn assert_matches_store<S: Storage>(trees: &AaeTrees, store: &S, count: u32, p: u32) {
    let nodes: Vec<(HashRange, RangeSummary)> = trees
        .with_tree(count, p, |t| {
            (0..=t.shape().depth)
                .flat_map(|level| {
                    (0..t.shape().nodes_at(level).unwrap_or(0))
                        .filter_map(move |i| Some((t.node_range(level, i)?, t.node(level, i)?)))
                })
                .collect()
        })
        .unwrap_or_else(|| panic!("no tree for partition {p}"));
    for (range, summary) in nodes {
        let r = range.clone();
        let stored = store
            .read(move |v| v.summarize(&r))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary, stored, "node over {range:?}");
    }
}

#[tokio::test]
async fn writes_mark_leaves_and_refresh_brings_the_tree_back_to_the_store() {
    let store = MemStorage::new(ActorId(1));
    let trees = Arc::new(AaeTrees::new(shape()).unwrap_or_else(|e| panic!("{e}")));
    trees
        .retain(2, &BTreeSet::from([0, 1]))
        .unwrap_or_else(|e| panic!("{e}"));
    let tracked = TrackedStorage::new(store.clone(), Arc::clone(&trees));
    let budget = IoBudget::new(0, 0);
    let ops = (0..40).map(|i| put(&format!("k{i}"), "v")).collect();
    tracked
        .write(request(ops))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for p in [0, 1] {
        trees
            .refresh(&tracked, p, &budget)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_matches_store(&trees, &store, 2, p).await;
    }
    assert_eq!(trees.dirty_leaves(), 0);

    // One more write: exactly its leaf is dirty, and a refresh catches it.
    tracked
        .write(request(vec![put("k3", "changed")]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trees.dirty_leaves(), 1);
    let p = partition_of(2, key_hash(b"k3"));
    let read = trees
        .refresh(&tracked, p, &budget)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(read >= 1);
    assert_matches_store(&trees, &store, 2, p).await;
}

#[tokio::test]
async fn a_clean_tree_reads_nothing_whatever_its_shape() {
    let store = MemStorage::new(ActorId(1));
    // Two leaves: fewer than the fraction that switches a refresh to a whole-partition scan.
    let tiny = TreeShape {
        fan_out: 2,
        depth: 1,
    };
    let trees = Arc::new(AaeTrees::new(tiny).unwrap_or_else(|e| panic!("{e}")));
    trees
        .retain(1, &BTreeSet::from([0]))
        .unwrap_or_else(|e| panic!("{e}"));
    let tracked = TrackedStorage::new(store.clone(), Arc::clone(&trees));
    let ops = (0..10).map(|i| put(&format!("k{i}"), "v")).collect();
    tracked
        .write(request(ops))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let budget = IoBudget::new(0, 0);
    let first = trees.refresh(&tracked, 0, &budget).await;
    assert_eq!(first.ok(), Some(10), "the first refresh reads every row");
    let again = trees.refresh(&tracked, 0, &budget).await;
    assert_eq!(again.ok(), Some(0), "a clean tree reads nothing");
    assert_matches_store(&trees, &store, 1, 0).await;
}

#[tokio::test]
async fn a_write_around_the_tracker_is_only_seen_after_a_full_rebuild() {
    let store = MemStorage::new(ActorId(1));
    let trees = AaeTrees::new(shape()).unwrap_or_else(|e| panic!("{e}"));
    trees
        .retain(1, &BTreeSet::from([0]))
        .unwrap_or_else(|e| panic!("{e}"));
    let budget = IoBudget::new(0, 0);
    trees
        .refresh(&store, 0, &budget)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .write(request(vec![put("sneaky", "v")]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let root = |t: &AaeTrees| t.with_tree(1, 0, MerkleTree::root).unwrap_or_default();
    assert_eq!(root(&trees).rows, 0, "an untracked write is invisible");
    trees.mark_all();
    trees
        .refresh(&store, 0, &budget)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(root(&trees).rows, 1);
    assert_matches_store(&trees, &store, 1, 0).await;
}

#[test]
fn retain_follows_the_ring() {
    let trees = AaeTrees::new(shape()).unwrap_or_else(|e| panic!("{e}"));
    trees
        .retain(8, &BTreeSet::from([1, 5]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trees.partitions(), (8, vec![1, 5]));
    trees
        .retain(8, &BTreeSet::from([5, 6]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trees.partitions(), (8, vec![5, 6]));
    trees
        .retain(16, &BTreeSet::from([0]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trees.partitions(), (16, vec![0]));
    assert!(trees.with_tree(8, 5, |_| ()).is_none());
    assert!(trees.retain(12, &BTreeSet::new()).is_err());
    assert_eq!(partition_of(1, u64::MAX), 0);
    assert_eq!(partition_of(4, u64::MAX), 3);
}

/// Writes race refreshes; once the writes stop, one more refresh must leave every node equal
/// to the store: no write slipped between a leaf's refresh and its mark.
async fn no_write_is_missed_under_concurrent_refreshes<S: Storage>(store: S) {
    let trees = Arc::new(AaeTrees::new(shape()).unwrap_or_else(|e| panic!("{e}")));
    trees
        .retain(4, &BTreeSet::from([0, 1, 2, 3]))
        .unwrap_or_else(|e| panic!("{e}"));
    let tracked = Arc::new(TrackedStorage::new(store, Arc::clone(&trees)));
    let writer = {
        let tracked = Arc::clone(&tracked);
        tokio::spawn(async move {
            for round in 0..40 {
                let ops = (0..25)
                    .map(|i| put(&format!("k{}", (round * 7 + i) % 300), &format!("r{round}")))
                    .collect();
                tracked
                    .write(request(ops))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                tokio::task::yield_now().await;
            }
        })
    };
    let budget = IoBudget::new(0, 0);
    while !writer.is_finished() {
        for p in 0..4 {
            trees
                .refresh(tracked.as_ref(), p, &budget)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap_or_else(|e| panic!("{e}"));
    for p in 0..4 {
        trees
            .refresh(tracked.as_ref(), p, &budget)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_matches_store(&trees, tracked.as_ref(), 4, p).await;
    }
    tracked.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_is_missed_in_memory() {
    no_write_is_missed_under_concurrent_refreshes(MemStorage::new(ActorId(1))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_is_missed_on_sqlite() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = SqliteConfig::new(dir.path(), "aae-test");
    cfg.durability = Durability::Normal;
    let store = SqliteStorage::open(cfg).unwrap_or_else(|e| panic!("{e}"));
    no_write_is_missed_under_concurrent_refreshes(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_dropped_half_way_leaves_its_leaves_dirty() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = SqliteConfig::new(dir.path(), "aae-cancel");
    cfg.durability = Durability::Normal;
    cfg.readers = 1;
    let store = SqliteStorage::open(cfg).unwrap_or_else(|e| panic!("{e}"));
    let trees = Arc::new(AaeTrees::new(shape()).unwrap_or_else(|e| panic!("{e}")));
    trees
        .retain(1, &BTreeSet::from([0]))
        .unwrap_or_else(|e| panic!("{e}"));
    let tracked = TrackedStorage::new(store, Arc::clone(&trees));
    let budget = IoBudget::new(0, 0);
    let leaves = shape().leaves() as usize;
    // Keeps the one reader thread busy until told, so a refresh's read waits behind it.
    let hold = |tracked: &TrackedStorage<SqliteStorage>| {
        let (release, held) = std::sync::mpsc::channel::<()>();
        drop(tracked.read(move |_| {
            let _ = held.recv();
            Ok(())
        }));
        release
    };
    // The first poll takes every dirty mark and queues the scan; the timeout then drops the
    // refresh before the scan's answer is applied (a cancelled RPC).
    let release = hold(&tracked);
    let cut = tokio::time::timeout(Duration::ZERO, trees.refresh(&tracked, 0, &budget)).await;
    drop(release);
    assert!(cut.is_err(), "the scan answered on the first poll");
    assert_eq!(trees.dirty_leaves(), leaves, "every mark is back");
    // The same for a batch of single leaves.
    trees
        .refresh(&tracked, 0, &budget)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tracked
        .write(request(vec![put("k1", "v"), put("k2", "v")]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dirty = trees.dirty_leaves();
    assert!(
        dirty > 0 && dirty * 4 < leaves,
        "{dirty} dirty: the per-leaf path"
    );
    let release = hold(&tracked);
    let cut = tokio::time::timeout(Duration::ZERO, trees.refresh(&tracked, 0, &budget)).await;
    drop(release);
    assert!(cut.is_err());
    assert_eq!(trees.dirty_leaves(), dirty);
    trees
        .refresh(&tracked, 0, &budget)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trees.dirty_leaves(), 0);
    assert_matches_store(&trees, &tracked, 1, 0).await;
    tracked.close();
}

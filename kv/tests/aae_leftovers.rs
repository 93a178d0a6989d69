//! Leftover clean-up between in-process nodes over MemStorage (peers called in memory): rows of
//! a partition a node no longer replicates are merged into every owner before they are dropped
//! there; an unreachable owner stops the clean-up with nothing dropped; a partition the node
//! replicates is never touched. Every test is bounded in time.

mod aae_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, PartitionId};
use ringkit_kv::cluster::aae::task::Step;
use ringkit_kv::cluster::aae::{AaeConfig, AaeLoop, replicated_partitions};
use ringkit_kv::error::KvError;
use ringkit_kv::model::key_hash;

use aae_support::{BOUND, Cluster, Node, config, put};

/// Three nodes, two replicas a key, eight partitions: node 0 replicates some partitions only.
fn cluster() -> Cluster {
    Cluster::new(3, 2, 8)
}

/// A partition node 0 does not replicate, and its owners.
fn leftover_partition(c: &Cluster) -> (u32, Vec<NodeId>) {
    let a = c.node(0);
    let map = a.map();
    let mine = replicated_partitions(&map, &c.ids[0], 2);
    let p = (0..8)
        .find(|p| !mine.contains(p))
        .unwrap_or_else(|| panic!("node 0 replicates every partition"));
    let start = *map.ring().partition_range(PartitionId(p)).start();
    (p, map.replica_set(start, 2).write)
}

/// `count` keys that fall in partition `p`.
fn keys_in(c: &Cluster, p: u32, count: usize) -> Vec<String> {
    let ring = c.node(0).map().ring().clone();
    (0..)
        .map(|i| format!("key{i}"))
        .filter(|k| ring.partition_of_hash(key_hash(k.as_bytes())).0 == p)
        .take(count)
        .collect()
}

/// The keys of `node` in partition `p`.
async fn keys_of(c: &Cluster, node: usize, p: u32) -> BTreeSet<String> {
    let ring = c.node(0).map().ring().clone();
    c.rows(node)
        .await
        .into_keys()
        .filter(|k| ring.partition_of_hash(key_hash(k)).0 == p)
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .collect()
}

/// The index of node `id`.
fn index(c: &Cluster, id: &NodeId) -> usize {
    c.ids
        .iter()
        .position(|i| i == id)
        .unwrap_or_else(|| panic!("{id}"))
}

/// Cleans up partition `p` on `node` page by page; returns the rows dropped.
async fn clean_up(c: &Cluster, node: &Node, p: u32) -> Result<usize, KvError> {
    let mut after = None;
    let mut dropped = 0;
    loop {
        let page = node.clean_up_page(&c.mesh, p, after).await?;
        dropped += page.dropped;
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(dropped),
        }
    }
}

#[tokio::test]
async fn leftover_rows_reach_every_owner_before_they_are_dropped() {
    tokio::time::timeout(BOUND, async {
        let c = cluster();
        let a = c.node(0);
        let (p, owners) = leftover_partition(&c);
        assert_eq!(owners.len(), 2);
        // 30 rows, more than four pages of 7: node 0 held them before the partition moved.
        let keys = keys_in(&c, p, 30);
        for k in &keys {
            put(&a, k, "from the old holder").await;
        }
        // One owner took a concurrent write of one key meanwhile.
        let first = index(&c, &owners[0]);
        put(&c.node(first), &keys[0], "newer").await;
        // A partition node 0 still replicates keeps its rows.
        let (_, mine) = a.sync().unwrap_or_else(|e| panic!("{e}"));
        let own = *mine
            .first()
            .unwrap_or_else(|| panic!("node 0 replicates nothing"));
        let own_key = keys_in(&c, own, 1).remove(0);
        put(&a, &own_key, "mine").await;

        assert_eq!(clean_up(&c, &a, p).await.ok(), Some(30));
        assert!(keys_of(&c, 0, p).await.is_empty(), "nothing left here");
        let all: BTreeSet<String> = keys.iter().cloned().collect();
        for owner in &owners {
            let i = index(&c, owner);
            assert_eq!(keys_of(&c, i, p).await, all, "{owner} holds every row");
        }
        let merged = &c.rows(first).await[&Bytes::from(keys[0].clone())];
        assert_eq!(
            merged.siblings().len(),
            2,
            "the concurrent write is kept too"
        );
        assert!(c.rows(0).await.contains_key(&Bytes::from(own_key)));
        assert_eq!(a.status().leftover_rows_dropped, 30);
        assert_eq!(
            clean_up(&c, &a, p).await.ok(),
            Some(0),
            "a second pass finds nothing"
        );
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn an_unreachable_owner_stops_the_clean_up_and_nothing_is_dropped() {
    tokio::time::timeout(BOUND, async {
        let c = cluster();
        let a = c.node(0);
        let (p, owners) = leftover_partition(&c);
        for k in keys_in(&c, p, 10) {
            put(&a, &k, "v").await;
        }
        c.mesh
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&owners[1]);
        let err = clean_up(&c, &a, p).await.err();
        assert!(matches!(err, Some(KvError::UnknownNode(_))), "{err:?}");
        assert_eq!(keys_of(&c, 0, p).await.len(), 10, "every row kept");
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn a_partition_this_node_replicates_is_never_cleaned_up() {
    tokio::time::timeout(BOUND, async {
        let c = cluster();
        let a = c.node(0);
        let (_, mine) = a.sync().unwrap_or_else(|e| panic!("{e}"));
        for p in mine {
            let r = a.clean_up_page(&c.mesh, p, None).await;
            assert_eq!(
                r.err().map(|e| e.code()),
                Some(tonic::Code::InvalidArgument)
            );
        }
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test(start_paused = true)]
async fn the_loop_cleans_up_after_the_grace() {
    let cfg = AaeConfig {
        pair_interval: Duration::from_secs(1),
        leftover_grace: Some(Duration::from_secs(30)),
        ..config(2)
    };
    let c = Cluster::with_config(3, 8, cfg);
    let a = c.node(0);
    let (p, _) = leftover_partition(&c);
    for k in keys_in(&c, p, 10) {
        put(&a, &k, "v").await;
    }
    let mesh = Arc::new(c.mesh.clone());
    let mut aae_loop = AaeLoop::new(a.clone(), mesh.clone(), mesh);
    let started = tokio::time::Instant::now();
    let (mut cleaned_at, mut dropped) = (None, 0);
    while cleaned_at.is_none() {
        let (step, wait) = aae_loop.step().await;
        if let Step::CleanedUp(q, result) = step {
            let page = result.unwrap_or_else(|e| panic!("partition {q}: {e}"));
            if q == p {
                // Pages of 7 rows: the loop goes on from the cursor, then the pass is over.
                assert!(page.dropped == 7 || page.next.is_none(), "{page:?}");
                dropped += page.dropped;
                if page.next.is_none() {
                    cleaned_at = Some(started.elapsed());
                }
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no clean-up");
        tokio::time::advance(wait).await;
    }
    assert_eq!(dropped, 10);
    let at = cleaned_at.unwrap_or_default();
    assert!(
        at >= Duration::from_secs(30),
        "not before the grace: {at:?}"
    );
    assert!(keys_of(&c, 0, p).await.is_empty());
}

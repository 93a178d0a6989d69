//! Tombstone reaping between in-process nodes over MemStorage (peers called in memory): a
//! tombstone goes only when every replica holds it, it waited out the grace, no hint could bring
//! an older version back, and members outside the write set hold nothing else; a deleted key
//! never comes back. Every test is bounded in time.

mod aae_support;

use std::time::Duration;

use bytes::Bytes;
use ringkit_kv::cluster::aae::reap::TombstoneWatch;
use ringkit_kv::cluster::peers::ReplicaPeers;
use ringkit_kv::model::key_hash;
use ringkit_kv::storage::{StorageExt, WriteOp};

use aae_support::{BOUND, Cluster, delete, put, reap_all, write};

#[tokio::test]
async fn tombstones_are_reaped_only_when_every_replica_holds_them_and_never_revive() {
    tokio::time::timeout(BOUND, async {
        let c = Cluster::new(2, 2, 2);
        let (a, b) = (c.node(0), c.node(1));
        put(&a, "k", "v").await;
        c.exchange_all(0, 1).await;
        delete(&a, "k").await;
        let mut watch = TombstoneWatch::new(Duration::from_secs(60), 1000);
        let t = |s| Duration::from_secs(s);
        // b still holds the live value: the tombstone is not everywhere, nothing is reaped.
        assert_eq!(reap_all(&c, 0, &mut watch, t(0)).await, 0);
        assert_eq!(reap_all(&c, 0, &mut watch, t(100)).await, 0);
        assert!(!c.rows(1).await[&Bytes::from("k")].is_tombstone());
        // The exchange spreads the tombstone. The grace runs from when this node first saw its
        // tombstone unchanged, so a new watch (a restart) only delays reaping.
        assert_eq!(c.exchange_all(0, 1).await, 1);
        let mut fresh = TombstoneWatch::new(Duration::from_secs(60), 1000);
        assert_eq!(
            reap_all(&c, 0, &mut fresh, t(130)).await,
            0,
            "grace not over"
        );
        assert_eq!(
            reap_all(&c, 0, &mut fresh, t(160)).await,
            0,
            "grace not over"
        );
        assert_eq!(reap_all(&c, 0, &mut watch, t(200)).await, 1);
        assert!(c.rows(0).await.is_empty() && c.rows(1).await.is_empty());
        assert_eq!(a.status().tombstones_reaped, 1);
        assert_eq!(b.status().tombstones_reaped, 1);
        // b missed the delete at first, yet "v" never came back: reaping waited for b to hold
        // the very same tombstone, and an exchange of two empty replicas finds nothing.
        assert_eq!(c.exchange_all(1, 0).await, 0);
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn a_hint_with_the_old_value_blocks_reaping_until_it_is_delivered() {
    tokio::time::timeout(BOUND, async {
        // Three nodes, two replicas a key: the third node is a fallback that can hold hints.
        let c = Cluster::new(3, 2, 4);
        let map = c.node(0).map();
        let owners = map.replica_set(key_hash(b"k"), 2).write;
        let outsider = c
            .ids
            .iter()
            .position(|id| !owners.contains(id))
            .unwrap_or_else(|| panic!("3 nodes, 2 replicas"));
        let o: Vec<usize> = owners
            .iter()
            .map(|id| c.ids.iter().position(|x| x == id).unwrap_or(0))
            .collect();
        let (first, second) = (c.node(o[0]), c.node(o[1]));
        put(&first, "k", "old").await;
        let old = c.rows(o[0]).await[&Bytes::from("k")].clone();
        // The write reached only the first owner; the outsider keeps a hint for the second.
        c.mesh
            .merge(
                &c.ids[outsider],
                vec![(Bytes::from("k"), old.clone())],
                Some(&owners[1]),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        delete(&first, "k").await;
        c.exchange_all(o[0], o[1]).await;
        assert!(c.rows(o[1]).await[&Bytes::from("k")].is_tombstone());
        let mut watch = TombstoneWatch::new(Duration::from_secs(10), 1000);
        let t = |s| Duration::from_secs(s);
        assert_eq!(reap_all(&c, o[0], &mut watch, t(0)).await, 0);
        assert_eq!(
            reap_all(&c, o[0], &mut watch, t(100)).await,
            0,
            "a hint is pending"
        );
        let blocked = first.status().reap_blocked.unwrap_or_default();
        assert!(blocked.contains("holds hints"), "{blocked}");
        // Handoff delivers the hint (a merge, then the hint is dropped): the tombstone covers it.
        c.mesh
            .merge(&owners[1], vec![(Bytes::from("k"), old)], None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let outsider_node = c.node(outsider);
        let hint = outsider_node
            .node()
            .storage()
            .read({
                let target = owners[1].to_string();
                move |v| v.hints(&target, None, 10)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        write(
            &outsider_node,
            hint.into_iter()
                .map(|h| WriteOp::DropHint {
                    target: owners[1].to_string(),
                    key: h.key,
                    digest: h.digest,
                })
                .collect(),
        )
        .await;
        assert!(
            c.rows(o[1]).await[&Bytes::from("k")].is_tombstone(),
            "delivery did not revive it"
        );
        assert_eq!(reap_all(&c, o[0], &mut watch, t(200)).await, 1);
        assert!(c.rows(o[0]).await.is_empty() && c.rows(o[1]).await.is_empty());
        assert!(second.status().tombstones_reaped == 1);
        // Nothing anywhere can bring "old" back: an exchange finds the replicas equal and empty.
        assert_eq!(c.exchange_all(o[0], o[1]).await, 0);
        assert!(c.rows(outsider).await.is_empty());
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn a_stale_copy_outside_the_write_set_gets_the_tombstone_before_anything_is_reaped() {
    tokio::time::timeout(BOUND, async {
        // Three nodes, anti-entropy over two replicas a key; the third holds a copy as a write
        // with a larger per-request N (or an old owner) would leave it.
        let c = Cluster::new(3, 2, 4);
        let owners = c.node(0).map().replica_set(key_hash(b"k"), 2).write;
        let idx = |id| c.ids.iter().position(|x| x == id).unwrap_or(0);
        let (first, second) = (idx(&owners[0]), idx(&owners[1]));
        let outsider = (0..3)
            .find(|i| *i != first && *i != second)
            .unwrap_or_else(|| panic!("3 nodes, 2 replicas"));
        put(&c.node(first), "k", "v").await;
        let copy = c.rows(first).await[&Bytes::from("k")].clone();
        for to in [second, outsider] {
            c.mesh
                .merge(&c.ids[to], vec![(Bytes::from("k"), copy.clone())], None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        delete(&c.node(first), "k").await;
        c.exchange_all(first, second).await;
        let mut watch = TombstoneWatch::new(Duration::from_secs(10), 1000);
        let t = |s| Duration::from_secs(s);
        assert_eq!(reap_all(&c, first, &mut watch, t(0)).await, 0);
        // The owners agree, but the outsider still holds "v": it is given the tombstone first.
        assert_eq!(reap_all(&c, first, &mut watch, t(100)).await, 0);
        assert!(c.rows(outsider).await[&Bytes::from("k")].is_tombstone());
        assert_eq!(reap_all(&c, first, &mut watch, t(200)).await, 1);
        for i in 0..3 {
            assert!(c.rows(i).await.is_empty(), "node {i} still holds the key");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

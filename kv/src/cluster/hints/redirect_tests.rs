//! Redirected handoff, in process: the hints of a node that left the ring, and the hints a
//! leaving node holds, reach each key's current live replicas. Paused tokio clock, bounded waits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, PartitionId};
use tokio::sync::watch;

use super::spawn_handoff;
use super::testkit::*;
use crate::cluster::hints::store_hints;
use crate::cluster::topology::{ClusterMap, Member, PendingTransfer};
use crate::model::key_hash;
use crate::node::KvNode;
use crate::storage::MemStorage;

#[tokio::test(start_paused = true)]
async fn the_hints_of_a_removed_node_go_to_the_current_replicas() {
    let (a, b, c, d) = (node("a", 1), node("b", 2), node("c", 3), node("d", 4));
    let x = NodeId::from("x");
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i:02}")).collect();
    let mut items = Vec::new();
    for k in &keys {
        items.push((Bytes::from(k.clone()), object(7, k, k).await));
    }
    store_hints(&a, &x, items)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let peers = Arc::new(FakePeers {
        nodes: [("b", &b), ("c", &c), ("d", &d)]
            .map(|(id, n)| (NodeId::from(id), n.clone()))
            .into(),
        ..FakePeers::default()
    });
    let (map_tx, map_rx) = watch::channel(map(&["a", "b", "c", "d", "x"]));
    let (_live_tx, live_rx) = watch::channel(live(&["a", "b", "c", "d"]));
    let handle = spawn_handoff(a.clone(), peers.clone(), map_rx, live_rx, config())
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        pending(&a).await,
        vec![("x".to_owned(), 30)],
        "x is down: wait"
    );

    // x is removed from the ring: it will never come back for its hints.
    let after = map(&["a", "b", "c", "d"]);
    map_tx.send_replace(Arc::clone(&after));
    eventually("x's hints are redirected", async || {
        pending(&a).await.is_empty()
    })
    .await;
    assert_eq!(peers.calls_to("x"), 0);
    let nodes: BTreeMap<&str, &KvNode<MemStorage>> =
        [("a", &a), ("b", &b), ("c", &c), ("d", &d)].into();
    for k in &keys {
        let owners = after.replica_set(key_hash(k.as_bytes()), 3).write;
        assert_eq!(owners.len(), 3);
        for owner in owners {
            let n = nodes[owner.as_str()];
            assert_eq!(values(n, k).await, vec![k.clone()], "{k} on {owner}");
        }
    }
    handle.shutdown().await;
}

/// The map while `a` leaves: the ring is b, c, d; `a` stays a member only as the source of a
/// transfer still in progress.
fn a_departing() -> Arc<ClusterMap> {
    let ring = map(&["b", "c", "d"]).ring().clone();
    let members = ["a", "b", "c", "d"]
        .map(|id| Member::new(id, format!("{id}:1")))
        .to_vec();
    let pending = BTreeMap::from([(
        PartitionId(0),
        vec![PendingTransfer {
            from: NodeId::from("a"),
            to: NodeId::from("b"),
            since: 0,
        }],
    )]);
    Arc::new(ClusterMap::from_parts(ring, members, pending).unwrap_or_else(|e| panic!("{e}")))
}

#[tokio::test(start_paused = true)]
async fn a_leaving_node_hands_its_hints_to_the_live_replicas() {
    let (a, b, c, d) = (node("a", 1), node("b", 2), node("c", 3), node("d", 4));
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i:02}")).collect();
    let mut items = Vec::new();
    for k in &keys {
        items.push((Bytes::from(k.clone()), object(7, k, k).await));
    }
    // a holds hints for b, which is down.
    store_hints(&a, &NodeId::from("b"), items)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let peers = Arc::new(FakePeers {
        nodes: [("b", &b), ("c", &c), ("d", &d)]
            .map(|(id, n)| (NodeId::from(id), n.clone()))
            .into(),
        ..FakePeers::default()
    });
    let (map_tx, map_rx) = watch::channel(map(&["a", "b", "c", "d"]));
    let (_live_tx, live_rx) = watch::channel(live(&["a", "c", "d"]));
    let handle = spawn_handoff(a.clone(), peers.clone(), map_rx, live_rx, config())
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        pending(&a).await,
        vec![("b".to_owned(), 30)],
        "b is down: wait"
    );

    // a starts leaving: it will not be around when b returns, so c and d take the hints now.
    map_tx.send_replace(a_departing());
    eventually("a's hints are handed over", async || {
        pending(&a).await.is_empty()
    })
    .await;
    assert_eq!(peers.calls_to("b"), 0, "b is still down");
    for k in &keys {
        for n in [&c, &d] {
            assert_eq!(values(n, k).await, vec![k.clone()], "{k}");
        }
        assert!(
            values(&a, k).await.is_empty(),
            "a does not keep them as its own data"
        );
    }
    handle.shutdown().await;
}

//! The handoff task end to end, in process: nodes over `MemStorage`, a fake [`ReplicaPeers`]
//! that merges straight into the target node (or fails while the target is "down"), and a live
//! set the test flips. Time is tokio's paused clock: it jumps to the next timer whenever every
//! task waits, so the default (second-scale) timings run in microseconds and the same way every
//! time. Every wait is bounded.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use ringkit_hashring::RingConfig;

use crate::clock::ManualClock;
use crate::cluster::hints::{pending_hints, store_hints};
use crate::cluster::topology::Member;
use crate::model::{ActorId, Object, Timestamp, key_hash};
use crate::node::{NodeConfig, Put, Quorum};
use crate::storage::{MemStorage, WriteOp};

/// Runs once inside a merge, before it is applied: a write racing the delivery.
struct Interleave {
    /// The node holding the hints.
    holder: KvNode<MemStorage>,
    /// The hint to add.
    key: Bytes,
    /// Its state.
    object: Object,
}

/// In-process peers: merges land in the target's store directly.
#[derive(Default)]
struct FakePeers {
    nodes: BTreeMap<NodeId, KvNode<MemStorage>>,
    /// Targets whose merges fail (a crashed or partitioned node).
    down: Mutex<BTreeSet<NodeId>>,
    /// (target, items) of every merge attempted.
    calls: Mutex<Vec<(NodeId, usize)>>,
    interleave: Mutex<Option<Interleave>>,
}

impl FakePeers {
    fn calls_to(&self, target: &str) -> usize {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.iter().filter(|(t, _)| t.as_str() == target).count()
    }

    fn set_down(&self, target: &str, down: bool) {
        let mut set = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down {
            set.insert(NodeId::from(target));
        } else {
            set.remove(target);
        }
    }
}

#[async_trait::async_trait]
impl ReplicaPeers for FakePeers {
    async fn merge(
        &self,
        to: &NodeId,
        items: Vec<(Bytes, Object)>,
        hint_for: Option<&NodeId>,
    ) -> Result<(), KvError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to.clone(), items.len()));
        if self
            .down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(to)
        {
            return Err(KvError::Timeout {
                node: to.to_string(),
            });
        }
        let racing = self
            .interleave
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(i) = racing {
            store_hints(&i.holder, to, vec![(i.key, i.object)]).await?;
        }
        let node = self
            .nodes
            .get(to)
            .ok_or_else(|| KvError::UnknownNode(to.to_string()))?;
        if let Some(h) = hint_for {
            return store_hints(node, h, items).await;
        }
        let ops = items
            .into_iter()
            .map(|(key, object)| WriteOp::Merge { key, object })
            .collect();
        for outcome in node.submit(node.now(), ops).await? {
            outcome?;
        }
        Ok(())
    }

    async fn read(&self, to: &NodeId, keys: Vec<Bytes>) -> Result<Vec<Option<Object>>, KvError> {
        let node = self
            .nodes
            .get(to)
            .ok_or_else(|| KvError::UnknownNode(to.to_string()))?;
        node.storage()
            .read(move |v| keys.iter().map(|k| v.get(k)).collect())
            .await
    }
}

fn node(id: &str, actor: u64) -> KvNode<MemStorage> {
    KvNode::new(
        MemStorage::new(ActorId(actor)),
        NodeConfig::new(id),
        Arc::new(ManualClock::new(Timestamp(1_000))),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The object a fresh node of actor `actor` stores for a put of `value`.
async fn object(actor: u64, key: &str, value: &str) -> Object {
    let n = node("writer", actor);
    n.put(Put::new(key.to_owned(), value.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let k = Bytes::from(key.to_owned());
    n.storage()
        .read(move |v| v.get(&k))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("just written"))
}

/// A ring of these members (the fake peers ignore addresses).
fn map(ids: &[&str]) -> Arc<ClusterMap> {
    let members = ids
        .iter()
        .map(|id| Member::new(*id, format!("{id}:1")))
        .collect();
    Arc::new(
        ClusterMap::bootstrap(RingConfig::for_cluster_size(ids.len()), members)
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// A map receiver that never changes.
fn fixed_map(ids: &[&str]) -> watch::Receiver<Arc<ClusterMap>> {
    watch::channel(map(ids)).1
}

fn live(ids: &[&str]) -> LiveSet {
    Arc::new(ids.iter().map(|s| NodeId::from(*s)).collect())
}

fn config() -> HandoffConfig {
    HandoffConfig::default()
}

/// Waits (at most 120 s of the paused clock) until `cond` holds.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn pending(n: &KvNode<MemStorage>) -> Vec<(String, u64)> {
    pending_hints(n)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|b| (b.target, b.hints))
        .collect()
}

async fn values(n: &KvNode<MemStorage>, key: &str) -> Vec<String> {
    let read = n
        .get(Bytes::from(key.to_owned()), Quorum::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut v: Vec<String> = read
        .values
        .iter()
        .map(|v| String::from_utf8_lossy(&v.bytes).into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(start_paused = true)]
async fn a_node_that_comes_back_receives_every_hint() {
    let (a, b, c) = (node("a", 1), node("b", 2), node("c", 3));
    let nb = NodeId::from("b");
    for chunk in 0..3 {
        let mut items = Vec::new();
        for i in chunk * 200..(chunk + 1) * 200 {
            let key = format!("key-{i:03}");
            items.push((
                Bytes::from(key.clone()),
                object(7, &key, &format!("v{i}")).await,
            ));
        }
        store_hints(&a, &nb, items)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    store_hints(
        &a,
        &NodeId::from("c"),
        vec![("only".into(), object(7, "only", "c").await)],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let peers = Arc::new(FakePeers {
        nodes: [(nb.clone(), b.clone()), (NodeId::from("c"), c.clone())].into(),
        ..FakePeers::default()
    });
    let (live_tx, live_rx) = watch::channel(live(&["a", "c"]));
    let handle = spawn_handoff(
        a.clone(),
        peers.clone(),
        fixed_map(&["a", "b", "c"]),
        live_rx,
        config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // c is alive and gets its hint; b is down: nothing is sent to it, everything is kept.
    eventually("c has its hint", async || values(&c, "only").await == ["c"]).await;
    eventually("the handle shows b's backlog", async || {
        handle
            .pending()
            .iter()
            .any(|p| p.target == "b" && p.hints == 600)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(peers.calls_to("b"), 0, "no delivery to a dead node");
    assert_eq!(pending(&a).await, vec![("b".to_owned(), 600)]);

    // b comes back: all 600 go, in batches of at most 256.
    live_tx.send_replace(live(&["a", "b", "c"]));
    eventually("every hint is handed off", async || {
        pending(&a).await.is_empty()
    })
    .await;
    for i in 0..600 {
        assert_eq!(values(&b, &format!("key-{i:03}")).await, [format!("v{i}")]);
    }
    let calls = peers
        .calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert!(
        calls.iter().all(|(_, n)| *n <= 256),
        "batches of 256: {calls:?}"
    );
    assert!(peers.calls_to("b") >= 3);
    eventually("the handle shows no backlog", async || {
        handle.pending().is_empty()
    })
    .await;
    let stats = handle.stats();
    assert_eq!(
        (stats.delivered, stats.dropped, stats.failed),
        (601, 601, 0)
    );
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_hint_updated_during_delivery_is_not_lost() {
    let (a, b) = (node("a", 1), node("b", 2));
    let nb = NodeId::from("b");
    store_hints(&a, &nb, vec![("k".into(), object(7, "k", "first").await)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let peers = Arc::new(FakePeers {
        nodes: [(nb.clone(), b.clone())].into(),
        interleave: Mutex::new(Some(Interleave {
            holder: a.clone(),
            key: "k".into(),
            object: object(8, "k", "during").await,
        })),
        ..FakePeers::default()
    });
    let (_live_tx, live_rx) = watch::channel(live(&["a", "b"]));
    let handle = spawn_handoff(
        a.clone(),
        peers.clone(),
        fixed_map(&["a", "b", "c"]),
        live_rx,
        config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eventually("both writes reached b", async || {
        values(&b, "k").await == ["during", "first"]
    })
    .await;
    eventually("the hint is gone", async || pending(&a).await.is_empty()).await;
    let stats = handle.stats();
    // First batch: sent, but the hint had changed, so it was kept; second batch: sent, dropped.
    assert_eq!((stats.batches, stats.delivered, stats.dropped), (2, 2, 1));
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_and_delivery_resumes() {
    let (a, b) = (node("a", 1), node("b", 2));
    let nb = NodeId::from("b");
    store_hints(&a, &nb, vec![("k".into(), object(7, "k", "v").await)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let peers = Arc::new(FakePeers {
        nodes: [(nb.clone(), b.clone())].into(),
        ..FakePeers::default()
    });
    // Gossip says b is alive, but its merges time out (a partition gossip has not noticed).
    peers.set_down("b", true);
    let (_live_tx, live_rx) = watch::channel(live(&["a", "b"]));
    let handle = spawn_handoff(
        a.clone(),
        peers.clone(),
        fixed_map(&["a", "b", "c"]),
        live_rx,
        config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Attempts at 0, 0.5, 1.5, 3.5 and 7.5 s (waits of 0.5 s doubling); the next is at 15.5 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(peers.calls_to("b"), 5);
    assert_eq!(handle.stats().failed, 5);
    assert_eq!(
        pending(&a).await,
        vec![("b".to_owned(), 1)],
        "nothing dropped on failure"
    );
    peers.set_down("b", false);
    eventually("b got the hint", async || values(&b, "k").await == ["v"]).await;
    eventually("the hint is gone", async || pending(&a).await.is_empty()).await;
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_task_stops_on_shutdown_and_on_drop() {
    let (a, b) = (node("a", 1), node("b", 2));
    let peers = Arc::new(FakePeers {
        nodes: [(NodeId::from("b"), b.clone())].into(),
        ..FakePeers::default()
    });
    let (live_tx, live_rx) = watch::channel(live(&["a"]));
    let handle = spawn_handoff(
        a.clone(),
        peers.clone(),
        fixed_map(&["a", "b"]),
        live_rx.clone(),
        config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    handle.shutdown().await;
    store_hints(
        &a,
        &NodeId::from("b"),
        vec![("k".into(), object(7, "k", "v").await)],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    live_tx.send_replace(live(&["a", "b"]));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(peers.calls_to("b"), 0, "a stopped task delivers nothing");

    let dropped = spawn_handoff(
        a.clone(),
        peers.clone(),
        fixed_map(&["a", "b", "c"]),
        live_rx,
        config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(Arc::strong_count(&peers) >= 2, "the task holds the peers");
    drop(dropped);
    eventually("the dropped task released its peers", async || {
        Arc::strong_count(&peers) == 1
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_invalid_config_is_refused() {
    let (_tx, rx) = watch::channel(live(&["a"]));
    let bad = HandoffConfig {
        batch: 0,
        ..HandoffConfig::default()
    };
    let peers = Arc::new(FakePeers::default());
    let r = spawn_handoff(node("a", 1), peers, fixed_map(&["a"]), rx, bad);
    assert!(matches!(r, Err(KvError::Config(m)) if m.contains("batch")));
}

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

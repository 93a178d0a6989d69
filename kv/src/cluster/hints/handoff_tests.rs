//! The handoff task end to end, in process: nodes over `MemStorage`, a fake [`ReplicaPeers`]
//! that merges straight into the target node (or fails while the target is "down"), and a live
//! set the test flips. Time is tokio's paused clock: it jumps to the next timer whenever every
//! task waits, so the default (second-scale) timings run in microseconds and the same way every
//! time. Every wait is bounded.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::cluster::hints::store_hints;
use crate::cluster::hints::testkit::*;

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

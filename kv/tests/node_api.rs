//! The node API without a network: TTL and maintenance with an injected clock, and
//! last-write-wins namespaces.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_kv::clock::{Clock, ManualClock, SystemClock};
use ringkit_kv::model::{ActorId, Timestamp};
use ringkit_kv::node::{KvNode, NodeConfig, Put, Quorum};
use ringkit_kv::storage::MemStorage;
use tonic::Code;

/// TTL: invisible the moment it expires (no background work needed), purged by maintenance.
#[tokio::test]
async fn ttl_hides_at_once_and_maintenance_purges() {
    let clock = ManualClock::new(Timestamp(1_000_000));
    let node = KvNode::new(
        MemStorage::new(ActorId(1)),
        NodeConfig::new("n1"),
        Arc::new(clock.clone()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    node.put(Put::new("session", "s1").with_ttl(Duration::from_secs(30)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    node.put(Put::new("forever", "f"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = node
        .get(Bytes::from_static(b"session"), Quorum::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.values[0].expires_at, Some(Timestamp(1_030_000)));

    clock.advance(Duration::from_millis(29_999));
    assert!(
        node.get(Bytes::from_static(b"session"), Quorum::default())
            .await
            .is_ok_and(|v| v.found())
    );
    clock.advance(Duration::from_millis(1));
    assert!(
        node.get(Bytes::from_static(b"session"), Quorum::default())
            .await
            .is_ok_and(|v| !v.found())
    );
    let report = node.maintain_once().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.expired, report.reaped), (1, 0));
    assert!(
        node.get(Bytes::from_static(b"forever"), Quorum::default())
            .await
            .is_ok_and(|v| v.found())
    );

    // A zero TTL is a mistake, not "expire now".
    let err = node
        .put(Put::new("x", "y").with_ttl(Duration::ZERO))
        .await
        .err();
    assert!(err.is_some_and(|e| e.code() == Code::InvalidArgument));

    // Tombstones are reaped only after the grace period.
    node.delete(
        Bytes::from_static(b"forever"),
        Bytes::new(),
        Quorum::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(node.maintain_once().await.map(|r| r.reaped).ok(), Some(0));
    clock.advance(
        node.config()
            .maintenance
            .tombstone_grace
            .unwrap_or_default()
            + Duration::from_millis(1),
    );
    assert_eq!(node.maintain_once().await.map(|r| r.reaped).ok(), Some(1));
    assert_eq!(clock.now(), Timestamp(1_030_000 + 86_400_000 + 1));
}

/// Last-write-wins namespaces replace concurrent values (lossy by design); others keep siblings.
#[tokio::test]
async fn lww_namespace_replaces_and_causal_keeps() {
    let mut config = NodeConfig::new("n1");
    config.lww_prefixes = vec![Bytes::from_static(b"cache/")];
    let node = KvNode::new(MemStorage::new(ActorId(1)), config, Arc::new(SystemClock))
        .unwrap_or_else(|e| panic!("{e}"));
    for v in ["a", "b"] {
        node.put(Put::new("cache/x", v))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        node.put(Put::new("data/x", v))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let lww = node
        .get(Bytes::from_static(b"cache/x"), Quorum::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let causal = node
        .get(Bytes::from_static(b"data/x"), Quorum::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        lww.values
            .iter()
            .map(|v| v.bytes.clone())
            .collect::<Vec<_>>(),
        vec![Bytes::from_static(b"b")]
    );
    assert_eq!(causal.values.len(), 2);
}

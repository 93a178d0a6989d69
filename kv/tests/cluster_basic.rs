//! A three-node cluster in one process on 127.0.0.1:0 over real gRPC: replication at W=2,
//! reads at R=2 that merge siblings, a stopped node, forwarding, read repair, hints kept for an
//! unreachable replica, cluster scans, and bad input. Every test is bounded in time and stops
//! every node it starts.

mod cluster_support;

use bytes::Bytes;
use cluster_support::*;
use ringkit_kv::cluster::pb::replica_client::ReplicaClient;
use ringkit_kv::cluster::pb::{Item, MergeRequest};
use ringkit_kv::grpc::pb;
use ringkit_kv::storage::StorageExt;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_reads_survive_a_stopped_node() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        let mut c1 = cluster.client(1).await;
        for i in 0..20 {
            c0.put(put(&format!("k{i}"), &format!("v{i}"), quorum(3, 2, 2)))
                .await
                .unwrap_or_else(|s| panic!("put k{i}: {s}"));
        }
        for i in 0..20 {
            let r = c1
                .get(get(&format!("k{i}"), quorum(3, 2, 2)))
                .await
                .unwrap_or_else(|s| panic!("get k{i}: {s}"))
                .into_inner();
            assert_eq!(values(&r), vec![Bytes::from(format!("v{i}"))]);
        }
        // The third replica gets every write too, after the answer.
        let kv2 = cluster.nodes[2].kv.clone();
        eventually("node 2 to hold k19", || stored(&kv2, "k19")).await;

        cluster.stop(2).await;
        for i in 20..40 {
            c1.put(put(&format!("k{i}"), &format!("v{i}"), quorum(3, 2, 2)))
                .await
                .unwrap_or_else(|s| panic!("put k{i} with a node down: {s}"));
        }
        for i in 0..40 {
            let r = c0
                .get(get(&format!("k{i}"), quorum(3, 2, 2)))
                .await
                .unwrap_or_else(|s| panic!("get k{i} with a node down: {s}"))
                .into_inner();
            assert_eq!(values(&r), vec![Bytes::from(format!("v{i}"))]);
        }
        // R=3 cannot be met any more, and the error says why.
        let err = c0
            .get(get("k1", quorum(3, 3, 2)))
            .await
            .err()
            .unwrap_or_else(|| panic!("R=3 with a node down must fail"));
        assert_eq!(err.code(), Code::Unavailable, "{err}");
        // It fails as soon as n2's failure makes R=3 unreachable, naming the failed replica.
        assert!(
            err.message().contains("of 3 answers") && err.message().contains("n2"),
            "{err}"
        );
        // The coordinator kept a hint for the stopped replica of each write it could not reach
        // (each once its fan-out ended, just after the answer).
        let kv1 = cluster.nodes[1].kv.clone();
        eventually("one hint per write made while n2 was down", || {
            let kv1 = kv1.clone();
            async move {
                kv1.storage()
                    .read(|v| v.hints("n2", None, 100))
                    .await
                    .is_ok_and(|h| h.len() == 20)
            }
        })
        .await;
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_two_coordinators_come_back_as_siblings() {
    tokio::time::timeout(TEST_BOUND, async {
        let cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        let mut c2 = cluster.client(2).await;
        c0.put(put("cart", "apple", None))
            .await
            .unwrap_or_else(|s| panic!("{s}"));
        c2.put(put("cart", "pear", None))
            .await
            .unwrap_or_else(|s| panic!("{s}"));
        let r = c0
            .get(get("cart", quorum(3, 3, 2)))
            .await
            .unwrap_or_else(|s| panic!("{s}"))
            .into_inner();
        assert_eq!(values(&r), vec![Bytes::from("apple"), Bytes::from("pear")]);
        // Writing back with the merged context resolves them everywhere.
        let mut resolve = put("cart", "apple,pear", quorum(3, 2, 3));
        resolve.context = r.context;
        c2.put(resolve).await.unwrap_or_else(|s| panic!("{s}"));
        let r = c0
            .get(get("cart", quorum(3, 3, 2)))
            .await
            .unwrap_or_else(|s| panic!("{s}"))
            .into_inner();
        assert_eq!(values(&r), vec![Bytes::from("apple,pear")]);
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_repair_fixes_a_replica_that_missed_a_write() {
    tokio::time::timeout(TEST_BOUND, async {
        let cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        // Everyone believes n2 is down: the write skips it (no fallback in a 3-node cluster)
        // and the coordinator keeps a hint for it.
        cluster.set_down(&[2]);
        c0.put(put("missed", "v", quorum(3, 2, 2)))
            .await
            .unwrap_or_else(|s| panic!("{s}"));
        // The hint is kept once the fan-out ends, just after the answer.
        let kv0 = cluster.nodes[0].kv.clone();
        eventually("the coordinator's hint for n2", || {
            let kv0 = kv0.clone();
            async move {
                kv0.storage()
                    .read(|v| v.hints("n2", None, 10))
                    .await
                    .is_ok_and(|h| h.len() == 1)
            }
        })
        .await;
        assert!(!stored(&cluster.nodes[2].kv, "missed").await);
        // n2 is back: a read asking all three finds it missing and repairs it.
        cluster.set_down(&[]);
        let r = c0
            .get(get("missed", quorum(3, 3, 2)))
            .await
            .unwrap_or_else(|s| panic!("{s}"))
            .into_inner();
        assert_eq!(values(&r), vec![Bytes::from("v")]);
        let kv2 = cluster.nodes[2].kv.clone();
        eventually("read repair of n2", || stored(&kv2, "missed")).await;
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_replicas_forward_and_scan_sees_every_key_once() {
    tokio::time::timeout(TEST_BOUND, async {
        let cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        let mut c1 = cluster.client(1).await;
        // N=1: two nodes of three are not replicas of a key, so most requests are forwarded.
        let keys: Vec<String> = (0..30).map(|i| format!("user:{i:02}")).collect();
        for k in &keys {
            c0.put(put(k, k, quorum(1, 1, 1)))
                .await
                .unwrap_or_else(|s| panic!("put {k}: {s}"));
        }
        for k in &keys {
            let r = c1
                .get(get(k, quorum(1, 1, 1)))
                .await
                .unwrap_or_else(|s| panic!("get {k}: {s}"))
                .into_inner();
            assert_eq!(values(&r), vec![Bytes::from(k.clone())], "{k}");
        }
        // Every key is on exactly one node; a cluster scan pages through all of them in order.
        let mut seen = Vec::new();
        let mut cursor = Bytes::new();
        loop {
            let page = c1
                .scan(pb::ScanRequest {
                    bounds: Some(pb::scan_request::Bounds::Prefix(Bytes::from("user:"))),
                    cursor: cursor.clone(),
                    page_size: 7,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("scan: {s}"))
                .into_inner();
            seen.extend(
                page.entries
                    .iter()
                    .map(|e| String::from_utf8_lossy(&e.key).into_owned()),
            );
            if page.next_cursor.is_empty() {
                break;
            }
            cursor = page.next_cursor;
        }
        assert_eq!(seen, keys);
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_quorums_and_bad_peer_input_are_invalid_argument() {
    tokio::time::timeout(TEST_BOUND, async {
        let cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        let too_big = c0
            .put(put("k", "v", quorum(4, 2, 2)))
            .await
            .err()
            .unwrap_or_else(|| panic!("N=4 on 3 nodes must fail"));
        assert_eq!(too_big.code(), Code::InvalidArgument);
        assert!(
            too_big.message().contains("replication factor N=3"),
            "{too_big}"
        );
        let r_above_n = c0
            .get(get("k", quorum(2, 3, 1)))
            .await
            .err()
            .unwrap_or_else(|| panic!("R > N must fail"));
        assert_eq!(r_above_n.code(), Code::InvalidArgument);
        let mut replica = ReplicaClient::new(cluster.channel(1).await);
        let garbage = replica
            .merge(MergeRequest {
                items: vec![Item {
                    key: Bytes::from("k"),
                    object: Bytes::from_static(b"\xff\x00not an object"),
                }],
                hint_for: String::new(),
                from: "test".into(),
            })
            .await
            .err()
            .unwrap_or_else(|| panic!("a malformed object must be refused"));
        assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage}");
        assert!(!stored(&cluster.nodes[1].kv, "k").await, "nothing stored");
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

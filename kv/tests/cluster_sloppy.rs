//! Sloppy versus strict quorum on a four-node in-process cluster: a primary that fails after
//! the plan is replaced by a hinted fallback that counts toward W in sloppy mode only.

mod cluster_support;

use cluster_support::*;
use ringkit_hashring::NodeId;
use ringkit_kv::grpc::pb;
use ringkit_kv::node::KvNode;
use ringkit_kv::storage::{MemStorage, StorageExt};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sloppy_quorum_counts_a_hinted_fallback_and_strict_does_not() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut cluster = Cluster::start(4).await;
        // n1 stops without anyone being told (it stays in every live set): sends to it fail
        // after the plan. Keys are written through n3, on keys n3 is a primary of (so n3
        // coordinates; a forward to an undetected dead node fails, see docs/kv.md).
        let mut c = cluster.client(3).await;
        let down = NodeId::from("n1");
        cluster.stop(1).await;
        let quorum = |mode: pb::QuorumMode| {
            Some(pb::Quorum {
                n: 3,
                r: 2,
                w: 3,
                mode: mode as i32,
            })
        };
        let keys: Vec<String> = (0..200)
            .map(|i| format!("s{i}"))
            .filter(|k| cluster.write_set(k).contains(&NodeId::from("n3")))
            .take(12)
            .collect();
        let with_down: Vec<&String> = keys
            .iter()
            .filter(|k| cluster.write_set(k).contains(&down))
            .collect();
        assert!(!with_down.is_empty(), "some key must have n1 as a primary");
        let with_down_count = with_down.len();
        for key in &keys {
            // Sloppy: the fallback stands in for n1 (with a hint) and counts toward W=3.
            c.put(put(key, "v", quorum(pb::QuorumMode::Sloppy)))
                .await
                .unwrap_or_else(|s| panic!("sloppy put {key}: {s}"));
            // Strict: only primaries count, so W=3 fails exactly when n1 is one of them.
            let strict = c.put(put(key, "w", quorum(pb::QuorumMode::Strict))).await;
            if with_down.contains(&key) {
                let s = strict
                    .err()
                    .unwrap_or_else(|| panic!("strict put {key} must fail"));
                assert_eq!(s.code(), Code::Unavailable, "{s}");
                assert!(s.message().contains("of 3 acknowledgements"), "{s}");
                assert!(s.message().contains("n1"), "{s}");
            } else {
                strict.unwrap_or_else(|s| panic!("strict put {key}: {s}"));
            }
        }
        // The stand-ins (and the coordinator, for strict writes n1 missed) hold hints for n1.
        let holders: Vec<KvNode<MemStorage>> = [0, 2, 3]
            .iter()
            .map(|&i| cluster.nodes[i].kv.clone())
            .collect();
        eventually("hints for n1", || {
            let holders = holders.clone();
            async move {
                let mut total = 0;
                for kv in &holders {
                    total += kv
                        .storage()
                        .read(|v| v.hints("n1", None, 100))
                        .await
                        .map_or(0, |h| h.len());
                }
                total >= with_down_count
            }
        })
        .await;
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

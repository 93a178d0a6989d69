//! Anti-entropy exchanges between in-process nodes over MemStorage (peers called in memory):
//! diverged replicas converge with an exact repaired count, large divergences are repaired in
//! bounded exchanges, and malformed peer requests are refused. Every test is bounded in time.

mod aae_support;

use bytes::Bytes;
use ringkit_kv::cluster::aae::remote::{RowsQuery, TreeQuery};
use ringkit_kv::cluster::aae::{AaeConfig, TreeShape};
use ringkit_kv::cluster::peers::ReplicaPeers;
use ringkit_kv::error::KvError;

use aae_support::{BOUND, Cluster, config, delete, put};

#[tokio::test]
async fn diverged_replicas_converge_and_the_repaired_count_is_exact() {
    tokio::time::timeout(BOUND, async {
        let c = Cluster::new(2, 2, 4);
        let (a, b) = (c.node(0), c.node(1));
        for i in 0..40 {
            put(&a, &format!("shared{i}"), "v").await;
        }
        c.mesh
            .merge(&c.ids[1], c.rows(0).await.into_iter().collect(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.exchange_all(0, 1).await, 0, "identical replicas");
        for i in 0..5 {
            put(&a, &format!("only-a{i}"), "x").await;
        }
        for i in 0..3 {
            put(&b, &format!("only-b{i}"), "y").await;
        }
        put(&b, "shared7", "concurrent").await;
        delete(&a, "shared8").await;
        assert_eq!(c.exchange_all(0, 1).await, 10);
        assert_eq!(c.rows(0).await, c.rows(1).await);
        assert_eq!(c.exchange_all(1, 0).await, 0, "nothing left to repair");
        let merged = &c.rows(0).await[&Bytes::from("shared7")];
        assert_eq!(
            merged.siblings().len(),
            2,
            "concurrent writes kept as siblings"
        );
        assert!(c.rows(1).await[&Bytes::from("shared8")].is_tombstone());
        let status = a.status();
        assert_eq!(status.trees, 4);
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn malformed_peer_requests_are_invalid_argument() {
    tokio::time::timeout(BOUND, async {
        let c = Cluster::new(2, 2, 4);
        let a = c.node(0);
        let q = TreeQuery {
            partition_count: 4,
            partition: 0,
            shape: TreeShape {
                fan_out: 16,
                depth: 3,
            },
            level: 0,
            nodes: vec![0],
        };
        fn code<T>(r: Result<T, KvError>) -> Option<tonic::Code> {
            r.err().map(|e| e.code())
        }
        let invalid = Some(tonic::Code::InvalidArgument);
        assert_eq!(code(a.tree_nodes(q.clone()).await), invalid, "other shape");
        let good = TreeQuery {
            shape: config(2).shape,
            ..q.clone()
        };
        assert!(a.tree_nodes(good.clone()).await.is_ok());
        let wrong_ring = TreeQuery {
            partition_count: 8,
            ..good.clone()
        };
        assert_eq!(code(a.tree_nodes(wrong_ring).await), invalid, "other ring");
        let out_of_range = TreeQuery {
            level: 2,
            nodes: vec![16],
            ..good
        };
        assert_eq!(
            code(a.tree_nodes(out_of_range).await),
            invalid,
            "no such node"
        );
        let rows = |range: std::ops::RangeInclusive<u64>, limit| RowsQuery {
            range,
            after: None,
            limit,
            include_objects: true,
        };
        assert_eq!(code(a.rows(rows(0..=10, 0)).await), invalid, "page size 0");
        assert_eq!(
            code(a.rows(rows(0..=10, 5000)).await),
            invalid,
            "page too big"
        );
        #[allow(clippy::reversed_empty_ranges)]
        let inverted = rows(10..=0, 5);
        assert_eq!(code(a.rows(inverted).await), invalid, "inverted range");
        assert!(a.rows(rows(0..=u64::MAX, 5)).await.is_ok());
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn a_large_divergence_is_repaired_in_bounded_exchanges() {
    tokio::time::timeout(BOUND, async {
        let cfg = AaeConfig {
            max_rows_per_exchange: 20,
            // 256 leaves: four listings of 64 adjacent leaves a partition.
            shape: TreeShape {
                fan_out: 16,
                depth: 2,
            },
            ..config(2)
        };
        let c = Cluster::with_config(2, 2, cfg);
        let a = c.node(0);
        for i in 0..200 {
            put(&a, &format!("k{i}"), "v").await;
        }
        let mut rounds = Vec::new();
        loop {
            let repaired = c.exchange_all(0, 1).await;
            if repaired == 0 {
                break;
            }
            rounds.push(repaired);
            assert!(rounds.len() < 50, "no progress: {rounds:?}");
        }
        assert!(rounds.len() > 1, "the row cap split the work: {rounds:?}");
        assert_eq!(rounds.iter().sum::<u64>(), 200);
        assert_eq!(c.rows(0).await, c.rows(1).await);
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

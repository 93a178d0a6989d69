//! Anti-entropy exchanges between in-process nodes over MemStorage (peers called in memory):
//! diverged replicas converge with an exact repaired count, large divergences are repaired in
//! bounded exchanges, and malformed peer requests are refused. Every test is bounded in time.

mod aae_support;

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

use ringkit_kv::cluster::aae::remote::{MAX_ROOTS_PER_QUERY, RootsQuery, RowsQuery, TreeQuery};
use ringkit_kv::cluster::aae::sweep::RootVerdict;
use ringkit_kv::cluster::aae::task::Step;
use ringkit_kv::cluster::aae::{AaeConfig, AaeLoop, TreeShape, replicated_partitions};
use ringkit_kv::cluster::peers::ReplicaPeers;
use ringkit_kv::error::KvError;
use ringkit_kv::model::key_hash;

use aae_support::{BOUND, Cluster, config, delete, put};

/// Merges every row of node `from` into node `to`, as a finished exchange would leave them.
async fn copy_rows(c: &Cluster, from: usize, to: usize) {
    c.mesh
        .merge(&c.ids[to], c.rows(from).await.into_iter().collect(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn diverged_replicas_converge_and_the_repaired_count_is_exact() {
    tokio::time::timeout(BOUND, async {
        let c = Cluster::new(2, 2, 4);
        let (a, b) = (c.node(0), c.node(1));
        for i in 0..40 {
            put(&a, &format!("shared{i}"), "v").await;
        }
        copy_rows(&c, 0, 1).await;
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

/// The partitions of node `a` and the sweep's verdict on each against node `b`.
async fn sweep(c: &Cluster, a: usize, b: usize) -> Vec<(u32, RootVerdict)> {
    let node = c.node(a);
    let (_, mine) = node.sync().unwrap_or_else(|e| panic!("{e}"));
    let mine: Vec<u32> = mine.into_iter().collect();
    node.sweep(&c.mesh, &c.ids[b], &mine)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_sweep_names_exactly_the_partitions_whose_roots_differ() {
    tokio::time::timeout(BOUND, async {
        let c = Cluster::new(2, 2, 8);
        let (a, b) = (c.node(0), c.node(1));
        for i in 0..40 {
            put(&a, &format!("shared{i}"), "v").await;
        }
        copy_rows(&c, 0, 1).await;
        let verdicts = sweep(&c, 0, 1).await;
        assert_eq!(verdicts.len(), 8, "both replicate all 8 partitions");
        assert!(verdicts.iter().all(|(_, v)| *v == RootVerdict::Equal));

        put(&b, "only-b", "x").await;
        let expected = a.map().ring().partition_of_hash(key_hash(b"only-b")).0;
        let differing: Vec<u32> = sweep(&c, 0, 1)
            .await
            .into_iter()
            .filter(|(_, v)| *v == RootVerdict::Differs)
            .map(|(p, _)| p)
            .collect();
        assert_eq!(differing, vec![expected]);
        let report = a
            .exchange(&c.mesh, &c.mesh, &c.ids[1], expected)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.keys_differing, 1);
        assert!(
            sweep(&c, 1, 0)
                .await
                .iter()
                .all(|(_, v)| *v == RootVerdict::Equal),
            "equal again after the exchange, seen from either side"
        );
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn roots_queries_are_checked_and_partitions_not_replicated_say_so() {
    tokio::time::timeout(BOUND, async {
        // Three nodes, two replicas a key: each node replicates some partitions, not all.
        let c = Cluster::new(3, 2, 8);
        let a = c.node(0);
        let mine = replicated_partitions(&a.map(), &c.ids[0], 2);
        assert!(mine.len() < 8);
        let all: Vec<u32> = (0..8).collect();
        let good = RootsQuery {
            partition_count: 8,
            shape: config(2).shape,
            partitions: all.clone(),
        };
        let roots = a
            .tree_roots(good.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (p, root) in all.iter().zip(&roots) {
            assert_eq!(root.is_some(), mine.contains(p), "partition {p}");
        }
        fn code<T>(r: Result<T, KvError>) -> Option<tonic::Code> {
            r.err().map(|e| e.code())
        }
        let invalid = Some(tonic::Code::InvalidArgument);
        let other_shape = RootsQuery {
            shape: TreeShape {
                fan_out: 16,
                depth: 3,
            },
            ..good.clone()
        };
        assert_eq!(code(a.tree_roots(other_shape).await), invalid);
        let other_ring = RootsQuery {
            partition_count: 16,
            ..good.clone()
        };
        assert_eq!(code(a.tree_roots(other_ring).await), invalid);
        let out_of_range = RootsQuery {
            partitions: vec![1, 8],
            ..good.clone()
        };
        assert_eq!(code(a.tree_roots(out_of_range).await), invalid);
        let too_many = RootsQuery {
            partitions: vec![0; MAX_ROOTS_PER_QUERY + 1],
            ..good
        };
        assert_eq!(code(a.tree_roots(too_many).await), invalid);
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test(start_paused = true)]
async fn the_loop_sweeps_then_exchanges_only_what_differs() {
    let cfg = AaeConfig {
        pair_interval: Duration::from_secs(1),
        min_tick: Duration::from_millis(10),
        ..config(3)
    };
    // Three nodes, every partition on all three: node 0 sweeps two peers in turn.
    let c = Cluster::with_config(3, 8, cfg);
    for i in 0..30 {
        put(&c.node(0), &format!("k{i}"), "v").await;
    }
    for peer in [1, 2] {
        copy_rows(&c, 0, peer).await;
    }
    put(&c.node(2), "late", "x").await;
    let mesh = Arc::new(c.mesh.clone());
    let mut aae_loop = AaeLoop::new(c.node(0), mesh.clone(), mesh);
    let mut steps = Vec::new();
    while steps.len() < 4 {
        let (step, wait) = aae_loop.step().await;
        match step {
            Step::Idle => {}
            Step::Swept(peer, Ok(verdicts)) => {
                let differing = verdicts
                    .iter()
                    .filter(|(_, v)| *v == RootVerdict::Differs)
                    .count();
                steps.push(format!("sweep {peer}: {differing} of {}", verdicts.len()));
            }
            Step::Exchanged(_, peer, Ok(r)) => {
                steps.push(format!("exchange {peer}: {} keys", r.keys_differing));
            }
            Step::Reaped(..) => {}
            other => panic!("{other:?}"),
        }
        tokio::time::advance(wait).await;
    }
    assert_eq!(
        steps,
        [
            "sweep n1: 0 of 8",
            "sweep n2: 1 of 8",
            "exchange n2: 1 keys",
            "sweep n1: 1 of 8",
        ],
        "n1 now lacks the key n0 took from n2"
    );
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

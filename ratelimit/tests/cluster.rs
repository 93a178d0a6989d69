//! Three nodes on 127.0.0.1:0: a limit is enforced cluster-wide, not per node; when an owner
//! stops, the next node of the preference list takes its keys over with fresh counters.

mod common;

use ringkit_ratelimit::check::{CheckRequest, Descriptor, encode_key};
use ringkit_ratelimit::cluster::Routing;
use ringkit_ratelimit::grpc::pb::ringkit::ratelimit::v1 as pb;

use common::{POLICY, start_cluster};

type Client = pb::rate_limiter_client::RateLimiterClient<tonic::transport::Channel>;

fn req(user: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        domain: "test".into(),
        descriptors: vec![pb::Descriptor {
            entries: vec![pb::Entry {
                key: "user".into(),
                value: user.into(),
            }],
            cost: None,
        }],
        cost: None,
    }
}

#[tokio::test]
async fn limit_is_enforced_cluster_wide() {
    let nodes = start_cluster(3, POLICY).await;
    let mut clients = Vec::new();
    for n in &nodes {
        clients.push(Client::connect(n.url()).await.unwrap());
    }
    // 30 users, each hit 4 times through every node (12 hits) against 5 per hour.
    let users: Vec<String> = (0..30).map(|i| format!("user-{i}")).collect();
    let mut admitted = vec![0u32; users.len()];
    for _ in 0..4 {
        let mut calls = Vec::new();
        for (u, user) in users.iter().enumerate() {
            for (c, client) in clients.iter().enumerate() {
                let mut client = client.clone();
                let r = req(user);
                calls.push(tokio::spawn(async move {
                    let ok = client.check(r).await.unwrap().into_inner().overall_code
                        == pb::Code::Ok as i32;
                    (u, c, ok)
                }));
            }
        }
        for call in calls {
            let (u, _, ok) = call.await.unwrap();
            admitted[u] += u32::from(ok);
        }
    }
    assert!(
        admitted.iter().all(|&n| n == 5),
        "per-user admitted across 3 nodes: {admitted:?}"
    );

    // Each key lives on exactly one node: the stores together hold one entry per user.
    let held: usize = nodes
        .iter()
        .map(|n| n.limiter.counter().local().store.len())
        .sum();
    assert_eq!(held, users.len());
    let per_node: Vec<usize> = nodes
        .iter()
        .map(|n| n.limiter.counter().local().store.len())
        .collect();
    assert!(
        per_node.iter().all(|&k| k > 0),
        "keys spread over the ring: {per_node:?}"
    );
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test]
async fn owner_down_next_node_takes_over_with_a_fresh_counter() {
    let mut nodes = start_cluster(3, POLICY).await;
    // A user owned by n2.
    let routing = Routing::new("n0", ["n0", "n1", "n2"].map(String::from)).unwrap();
    let user = (0..)
        .map(|i| format!("u{i}"))
        .find(|u| {
            let key = encode_key("test", &[("user".into(), u.clone())]);
            routing.owner(&key).map(|n| n.as_str()) == Some("n2")
        })
        .unwrap();
    let mut via_n0 = Client::connect(nodes[0].url()).await.unwrap();
    for _ in 0..5 {
        assert_eq!(
            via_n0
                .check(req(&user))
                .await
                .unwrap()
                .into_inner()
                .overall_code,
            pb::Code::Ok as i32
        );
    }
    assert_eq!(
        via_n0
            .check(req(&user))
            .await
            .unwrap()
            .into_inner()
            .overall_code,
        pb::Code::OverLimit as i32
    );
    assert_eq!(
        nodes[2].limiter.counter().local().store.len(),
        1,
        "n2 owns the key"
    );

    // n2 stops: its keys move to the next node of their preference list, counters restart.
    nodes.pop().unwrap().stop().await;
    let r = via_n0.check(req(&user)).await.unwrap().into_inner();
    assert_eq!(
        r.overall_code,
        pb::Code::Ok as i32,
        "fresh counter on the new owner"
    );
    assert_eq!(r.results[0].decision.unwrap().remaining, 4);
    // Both survivors agree on the new owner: the budget is still shared cluster-wide.
    let mut via_n1 = Client::connect(nodes[1].url()).await.unwrap();
    let mut admitted = 1;
    for i in 0..6 {
        let c = if i % 2 == 0 { &mut via_n0 } else { &mut via_n1 };
        let code = c.check(req(&user)).await.unwrap().into_inner().overall_code;
        admitted += u32::from(code == pb::Code::Ok as i32);
    }
    assert_eq!(admitted, 5);
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test]
async fn many_descriptors_of_one_request_go_to_their_owners() {
    let nodes = start_cluster(3, POLICY).await;
    let check = CheckRequest {
        domain: "test".into(),
        descriptors: (0..12)
            .map(|i| Descriptor::new([("user", format!("m{i}"))]))
            .collect(),
        cost: 5,
    };
    let outcome = nodes[1].limiter.check(&check).await.unwrap();
    assert!(outcome.allowed);
    let again = nodes[2].limiter.check(&check).await.unwrap();
    assert!(
        !again.allowed,
        "all 12 budgets are spent wherever they live"
    );
    assert!(again.descriptors.iter().all(|d| !d.ok));
    for n in nodes {
        n.stop().await;
    }
}

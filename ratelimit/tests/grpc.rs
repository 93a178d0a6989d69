//! `ringkit.ratelimit.v1` over a real server on 127.0.0.1:0: checks, admin, bad inputs, health.

mod common;

use ringkit_ratelimit::grpc::pb::ringkit::ratelimit::v1 as pb;
use tonic::Code;

use common::{POLICY, start};

type CheckClient = pb::rate_limiter_client::RateLimiterClient<tonic::transport::Channel>;
type AdminClient = pb::rate_limit_admin_client::RateLimitAdminClient<tonic::transport::Channel>;

fn desc(entries: &[(&str, &str)]) -> pb::Descriptor {
    pb::Descriptor {
        entries: entries
            .iter()
            .map(|(k, v)| pb::Entry {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect(),
        cost: None,
    }
}

fn check(domain: &str, descriptors: Vec<pb::Descriptor>, cost: Option<u64>) -> pb::CheckRequest {
    pb::CheckRequest {
        domain: domain.into(),
        descriptors,
        cost,
    }
}

#[tokio::test]
async fn check_counts_down_then_rejects() {
    let node = start(POLICY).await;
    let mut client = CheckClient::connect(node.url()).await.unwrap();
    for expected in (0..5).rev() {
        let r = client
            .check(check("test", vec![desc(&[("user", "ann")])], None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.overall_code, pb::Code::Ok as i32);
        let d = r.results[0].decision.unwrap();
        assert_eq!((d.allowed, d.limit, d.remaining), (true, 5, expected));
        assert_eq!(r.results[0].policy, "5 per 1h (fixed_window)");
    }
    let r = client
        .check(check("test", vec![desc(&[("user", "ann")])], None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, pb::Code::OverLimit as i32);
    assert!(r.results[0].decision.unwrap().retry_after.is_some());
    // Another user has their own budget; a VIP is unlimited; unknown keys are not limited.
    let r = client
        .check(check(
            "test",
            vec![
                desc(&[("user", "bob")]),
                desc(&[("user", "vip")]),
                desc(&[("other", "x")]),
            ],
            Some(5),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, pb::Code::Ok as i32);
    assert_eq!(r.results[1].policy, "unlimited");
    assert!(r.results[2].decision.is_none());
    node.stop().await;
}

#[tokio::test]
async fn rejected_request_consumes_nothing_and_peeks_are_free() {
    let node = start(POLICY).await;
    let mut client = CheckClient::connect(node.url()).await.unwrap();
    // bucket: burst 10. user: 5 per hour. Cost 6 passes the bucket but not the user limit.
    let both = || vec![desc(&[("bucket", "b1")]), desc(&[("user", "u1")])];
    let r = client
        .check(check("test", both(), Some(6)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, pb::Code::OverLimit as i32);
    assert_eq!(r.results[0].code, pb::Code::Ok as i32);
    let peek = client
        .check(check("test", both(), Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        peek.results[0].decision.unwrap().remaining,
        10,
        "rolled back"
    );
    assert_eq!(peek.results[1].decision.unwrap().remaining, 5);
    node.stop().await;
}

#[tokio::test]
async fn shadow_mode_reports_but_never_rejects() {
    let node = start(POLICY).await;
    let mut client = CheckClient::connect(node.url()).await.unwrap();
    client
        .check(check("test", vec![desc(&[("shadowed", "s")])], None))
        .await
        .unwrap();
    let r = client
        .check(check("test", vec![desc(&[("shadowed", "s")])], None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, pb::Code::Ok as i32);
    assert!(r.results[0].shadow, "would have been rejected");
    assert!(!r.results[0].decision.unwrap().allowed);
    node.stop().await;
}

#[tokio::test]
async fn bad_inputs_are_invalid_argument_with_clear_messages() {
    let node = start(POLICY).await;
    let mut client = CheckClient::connect(node.url()).await.unwrap();
    let cases = vec![
        (
            check("nope", vec![desc(&[("user", "a")])], None),
            "unknown domain `nope`: the policy defines `test`",
        ),
        (
            check("test", vec![desc(&[])], None),
            "descriptor 0 is empty",
        ),
        (check("test", vec![], None), "no descriptors"),
        (
            check("", vec![desc(&[("user", "a")])], None),
            "domain is empty",
        ),
        (
            check("test", vec![desc(&[("user", "a")])], Some(u64::MAX)),
            "cost 18446744073709551615 is above the maximum 4294967295",
        ),
        (
            check("test", vec![desc(&[("", "a")])], None),
            "entry 0: the key is empty",
        ),
    ];
    for (req, want) in cases {
        let status = client.check(req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(want),
            "{:?} lacks {want:?}",
            status.message()
        );
    }
    // A zero limit through the admin API.
    let mut admin = AdminClient::connect(node.url()).await.unwrap();
    let zero = pb::Rule {
        kind: Some(pb::rule::Kind::Limit(pb::Limit {
            algorithm: pb::Algorithm::FixedWindow as i32,
            requests: 0,
            window: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            burst: 0,
        })),
        shadow: false,
    };
    let status = admin
        .set_policy(pb::SetPolicyRequest {
            domain: "test".into(),
            entries: vec![pb::Entry {
                key: "user".into(),
                value: "x".into(),
            }],
            rule: Some(zero),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("the limit must be at least 1"),
        "{}",
        status.message()
    );
    node.stop().await;
}

#[tokio::test]
async fn admin_overrides_inspects_and_resets() {
    let node = start(POLICY).await;
    let mut client = CheckClient::connect(node.url()).await.unwrap();
    let mut admin = AdminClient::connect(node.url()).await.unwrap();
    let tenant = || {
        vec![pb::Entry {
            key: "user".into(),
            value: "acme".into(),
        }]
    };
    // Runtime per-tenant limit: acme gets 2 per hour.
    let rule = pb::Rule {
        kind: Some(pb::rule::Kind::Limit(pb::Limit {
            algorithm: pb::Algorithm::SlidingLog as i32,
            requests: 2,
            window: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            burst: 0,
        })),
        shadow: false,
    };
    let set = admin
        .set_policy(pb::SetPolicyRequest {
            domain: "test".into(),
            entries: tenant(),
            rule: Some(rule),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!set.replaced);
    for _ in 0..2 {
        client
            .check(check("test", vec![desc(&[("user", "acme")])], None))
            .await
            .unwrap();
    }
    let r = client
        .check(check("test", vec![desc(&[("user", "acme")])], None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, pb::Code::OverLimit as i32);

    let policy = admin
        .get_policy(pb::GetPolicyRequest {
            domain: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(policy.origin, "test.toml");
    assert_eq!(policy.domains, vec!["test".to_owned()]);
    assert_eq!(policy.overrides.len(), 1);
    assert!(policy.policy_text.contains("[[domain]]"));

    let key = || pb::KeyRequest {
        domain: "test".into(),
        descriptor: Some(desc(&[("user", "acme")])),
    };
    let seen = admin.inspect_key(key()).await.unwrap().into_inner();
    assert!(seen.matched);
    assert_eq!(seen.decision.unwrap().remaining, 0);
    assert_eq!(seen.policy, "2 per 1h (sliding_log)");
    assert!(admin.reset_key(key()).await.unwrap().into_inner().existed);
    assert!(!admin.reset_key(key()).await.unwrap().into_inner().existed);
    assert_eq!(
        admin
            .inspect_key(key())
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap()
            .remaining,
        2
    );

    // Removing the override brings the file's rule back (5 per hour, its own counter state).
    let removed = admin
        .set_policy(pb::SetPolicyRequest {
            domain: "test".into(),
            entries: tenant(),
            rule: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(removed.replaced);
    assert_eq!(
        admin.inspect_key(key()).await.unwrap().into_inner().policy,
        "5 per 1h (fixed_window)"
    );
    node.stop().await;
}

#[tokio::test]
async fn health_reports_serving() {
    let node = start(POLICY).await;
    let channel = tonic::transport::Endpoint::from_shared(node.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ringkit.ratelimit.v1.RateLimiter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    node.stop().await;
}

#[tokio::test]
async fn hot_reload_keeps_counters_and_rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    let policies =
        std::sync::Arc::new(ringkit_ratelimit::policy::Policies::from_file(&path).unwrap());
    let limiter = ringkit_ratelimit::RateLimiter::local(
        policies.clone(),
        std::sync::Arc::new(ringkit_ratelimit::store::KeyedStore::default()),
        std::sync::Arc::new(ringkit_ratelimit::clock::MonotonicClock::new()),
    );
    let (listener, _) = common::bind().await;
    let node = common::start_with(listener, limiter);
    let mut client = CheckClient::connect(node.url()).await.unwrap();
    for _ in 0..4 {
        client
            .check(check("test", vec![desc(&[("user", "kim")])], None))
            .await
            .unwrap();
    }
    // Raise the limit: the 4 hits already used stay counted.
    std::fs::write(&path, POLICY.replacen("requests = 5", "requests = 6", 1)).unwrap();
    assert!(policies.reload().unwrap());
    let r = client
        .check(check("test", vec![desc(&[("user", "kim")])], Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results[0].decision.unwrap().remaining, 2);
    // A broken file is refused with line and field; the 6-per-hour rule stays.
    std::fs::write(&path, POLICY.replacen("requests = 5", "requests = -1", 1)).unwrap();
    let e = policies.reload().unwrap_err().to_string();
    assert!(
        e.contains("line 7, field `domain[0].descriptor[0].requests`"),
        "{e}"
    );
    let r = client
        .check(check("test", vec![desc(&[("user", "kim")])], Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results[0].decision.unwrap().limit, 6);
    node.stop().await;
}

#[tokio::test]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let node = start(POLICY).await;
    let channel = tonic::transport::Endpoint::from_shared(node.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected answer {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "ringkit.ratelimit.v1.RateLimiter",
        "ringkit.ratelimit.v1.RateLimitAdmin",
        "envoy.service.ratelimit.v3.RateLimitService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    drop(answers);
    node.stop().await;
}

/// A client that connects and then says nothing (a crashed host, a bare TCP health probe) must
/// not keep a stopping server from stopping: tonic's graceful shutdown waits for every
/// connection, so the server stops waiting after `DRAIN_GRACE`.
#[tokio::test]
async fn a_silent_connection_cannot_hold_a_stopping_server() {
    let node = start(POLICY).await;
    let silent = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    // The server accepts in order: once a later client has an answer, the silent connection
    // has been accepted too (else stopping would only leave it in the listen queue).
    let mut client = CheckClient::connect(node.url()).await.unwrap();
    client
        .check(check("test", vec![desc(&[("user", "ann")])], None))
        .await
        .unwrap();
    drop(client);
    let bound = ringkit_ratelimit::grpc::DRAIN_GRACE + std::time::Duration::from_secs(20);
    let stopped = tokio::time::timeout(bound, node.stop()).await;
    assert!(
        stopped.is_ok(),
        "the server was still draining {bound:?} after it was asked to stop"
    );
    drop(silent);
}

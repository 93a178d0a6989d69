//! Calling the rate-limit service: `ringkit.ratelimit.v1` checks, Envoy's `ShouldRateLimit`, and
//! the admin API (a runtime per-tenant override, inspect, reset).
//!
//! With `RATELIMIT_ADDR` set (e.g. `http://127.0.0.1:50061`, a running `ratelimit-server` with its
//! built-in policy) it talks to that server; otherwise it starts one in-process on 127.0.0.1:0.
//!
//! ```sh
//! cargo run -p ringkit-examples --example ratelimit_client
//! ```

use std::sync::Arc;

use ringkit_ratelimit::RateLimiter;
use ringkit_ratelimit::clock::MonotonicClock;
use ringkit_ratelimit::grpc::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use ringkit_ratelimit::grpc::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry as EnvoyEntry;
use ringkit_ratelimit::grpc::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use ringkit_ratelimit::grpc::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use ringkit_ratelimit::grpc::pb::ringkit::ratelimit::v1 as pb;
use ringkit_ratelimit::grpc::{ServeOptions, serve};
use ringkit_ratelimit::policy::{DEFAULT_POLICY, Policies, parse_policy};
use ringkit_ratelimit::store::KeyedStore;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, local) = match std::env::var("RATELIMIT_ADDR") {
        Ok(url) => (url, None),
        Err(_) => {
            let policies = Arc::new(Policies::new(parse_policy(DEFAULT_POLICY, "built-in")?));
            let limiter = RateLimiter::local(
                policies,
                Arc::new(KeyedStore::default()),
                Arc::new(MonotonicClock::new()),
            );
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(serve(
                limiter,
                ServeOptions::default(),
                TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            ));
            (url, Some((stop, task)))
        }
    };
    println!("rate-limit service at {url}");
    let entry = |k: &str, v: &str| pb::Entry {
        key: k.into(),
        value: v.into(),
    };

    // 1. ringkit.ratelimit.v1: a weighted check (cost 150 of the default 200-token burst), then a peek.
    let mut checks = pb::rate_limiter_client::RateLimiterClient::connect(url.clone()).await?;
    for cost in [Some(150), Some(60), Some(0)] {
        let r = checks
            .check(pb::CheckRequest {
                domain: "default".into(),
                descriptors: vec![pb::Descriptor {
                    entries: vec![entry("key", "tenant-a")],
                    cost: None,
                }],
                cost,
            })
            .await?
            .into_inner();
        let d = r.results[0].decision.unwrap_or_default();
        println!(
            "Check cost {:>3}: {:?}, remaining {}, policy {}",
            cost.unwrap_or(1),
            pb::Code::try_from(r.overall_code).unwrap_or_default(),
            d.remaining,
            r.results[0].policy
        );
    }

    // 2. Envoy's API, as Envoy's HTTP filter would call it.
    let mut envoy = RateLimitServiceClient::connect(url.clone()).await?;
    let r = envoy
        .should_rate_limit(RateLimitRequest {
            domain: "envoy".into(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![EnvoyEntry {
                    key: "remote_address".into(),
                    value: "10.1.2.3".into(),
                }],
                ..Default::default()
            }],
            hits_addend: 1,
        })
        .await?
        .into_inner();
    println!(
        "ShouldRateLimit: overall_code {}, remaining {}, headers {:?}",
        r.overall_code,
        r.statuses[0].limit_remaining,
        r.response_headers_to_add
            .iter()
            .map(|h| format!("{}: {}", h.key, h.value))
            .collect::<Vec<_>>()
    );

    // 3. Admin: give tenant-b an override of 1 per minute, use it up, inspect, reset.
    let mut admin = pb::rate_limit_admin_client::RateLimitAdminClient::connect(url.clone()).await?;
    let rule = pb::Rule {
        kind: Some(pb::rule::Kind::Limit(pb::Limit {
            algorithm: pb::Algorithm::FixedWindow as i32,
            requests: 1,
            window: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            burst: 0,
        })),
        shadow: false,
    };
    admin
        .set_policy(pb::SetPolicyRequest {
            domain: "default".into(),
            entries: vec![entry("key", "tenant-b")],
            rule: Some(rule),
        })
        .await?;
    for _ in 0..2 {
        let r = checks
            .check(pb::CheckRequest {
                domain: "default".into(),
                descriptors: vec![pb::Descriptor {
                    entries: vec![entry("key", "tenant-b")],
                    cost: None,
                }],
                cost: None,
            })
            .await?
            .into_inner();
        println!(
            "tenant-b check: {:?}",
            pb::Code::try_from(r.overall_code).unwrap_or_default()
        );
    }
    let key = pb::KeyRequest {
        domain: "default".into(),
        descriptor: Some(pb::Descriptor {
            entries: vec![entry("key", "tenant-b")],
            cost: None,
        }),
    };
    let seen = admin.inspect_key(key.clone()).await?.into_inner();
    println!(
        "InspectKey tenant-b: policy {}, remaining {}",
        seen.policy,
        seen.decision.unwrap_or_default().remaining
    );
    let reset = admin.reset_key(key).await?.into_inner();
    println!("ResetKey tenant-b: existed {}", reset.existed);
    admin
        .set_policy(pb::SetPolicyRequest {
            domain: "default".into(),
            entries: vec![entry("key", "tenant-b")],
            rule: None,
        })
        .await?;

    if let Some((stop, task)) = local {
        let _ = stop.send(());
        task.await??;
    }
    Ok(())
}

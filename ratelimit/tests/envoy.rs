//! Wire compatibility with Envoy: the client here is generated from Envoy's own protos by the
//! `envoy-types` crate, not from ours.

mod common;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, rate_limit::Unit};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;

use common::{POLICY, start};

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect(),
        ..Default::default()
    }
}

fn request(
    domain: &str,
    descriptors: Vec<RateLimitDescriptor>,
    hits_addend: u32,
) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.into(),
        descriptors,
        hits_addend,
    }
}

async fn client(url: String) -> RateLimitServiceClient<tonic::transport::Channel> {
    RateLimitServiceClient::connect(url).await.unwrap()
}

fn header<'a>(r: &'a RateLimitResponse, name: &str) -> Option<&'a str> {
    r.response_headers_to_add
        .iter()
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}

#[tokio::test]
async fn envoy_client_gets_ok_then_over_limit() {
    let node = start(POLICY).await;
    let mut rls = client(node.url()).await;
    for remaining in (0..5).rev() {
        let r = rls
            .should_rate_limit(request("test", vec![descriptor(&[("user", "eve")])], 0))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.overall_code, Code::Ok as i32);
        let s = &r.statuses[0];
        assert_eq!(s.code, Code::Ok as i32);
        assert_eq!(s.limit_remaining, remaining);
        let limit = s.current_limit.as_ref().unwrap();
        assert_eq!(
            (limit.requests_per_unit, limit.unit),
            (5, Unit::Hour as i32)
        );
        assert!(s.duration_until_reset.is_some());
        assert_eq!(header(&r, "ratelimit-policy"), Some("\"test\";q=5;w=3600"));
    }
    let r = rls
        .should_rate_limit(request("test", vec![descriptor(&[("user", "eve")])], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(r.statuses[0].code, Code::OverLimit as i32);
    assert!(header(&r, "retry-after").is_some());
    assert!(
        header(&r, "ratelimit")
            .unwrap()
            .starts_with("\"test\";r=0;t=")
    );
    node.stop().await;
}

#[tokio::test]
async fn hits_addend_negative_hits_and_limit_override() {
    let node = start(POLICY).await;
    let mut rls = client(node.url()).await;
    // Request-level hits_addend.
    let r = rls
        .should_rate_limit(request("test", vec![descriptor(&[("user", "f")])], 4))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.statuses[0].limit_remaining, 1);
    // Per-descriptor hits_addend wins over the request's.
    let mut d = descriptor(&[("user", "g")]);
    d.hits_addend = Some(UInt64Value { value: 2 });
    let r = rls
        .should_rate_limit(request("test", vec![d.clone()], 4))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.statuses[0].limit_remaining, 3);
    // is_negative_hits gives them back.
    d.is_negative_hits = true;
    rls.should_rate_limit(request("test", vec![d], 0))
        .await
        .unwrap();
    let mut peek = descriptor(&[("user", "g")]);
    peek.hits_addend = Some(UInt64Value { value: 0 });
    let r = rls
        .should_rate_limit(request("test", vec![peek], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.statuses[0].limit_remaining, 5);
    // A limit sent by Envoy overrides the policy (and applies even to unconfigured keys).
    let mut o = descriptor(&[("anything", "x")]);
    o.limit = Some(RateLimitOverride {
        requests_per_unit: 1,
        unit: Unit::Minute as i32,
    });
    let first = rls
        .should_rate_limit(request("test", vec![o.clone()], 0))
        .await
        .unwrap()
        .into_inner();
    let second = rls
        .should_rate_limit(request("test", vec![o], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.overall_code, Code::Ok as i32);
    assert_eq!(second.overall_code, Code::OverLimit as i32);
    node.stop().await;
}

#[tokio::test]
async fn envoy_bad_inputs_are_invalid_argument() {
    let node = start(POLICY).await;
    let mut rls = client(node.url()).await;
    let cases = vec![
        (
            request("nope", vec![descriptor(&[("user", "a")])], 0),
            "unknown domain `nope`",
        ),
        (
            request("test", vec![descriptor(&[])], 0),
            "descriptor 0 is empty",
        ),
        (request("test", vec![], 0), "no descriptors"),
    ];
    for (req, want) in cases {
        let status = rls.should_rate_limit(req).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(want), "{}", status.message());
    }
    let mut zero = descriptor(&[("user", "a")]);
    zero.limit = Some(RateLimitOverride {
        requests_per_unit: 0,
        unit: Unit::Second as i32,
    });
    let status = rls
        .should_rate_limit(request("test", vec![zero], 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("at least 1"),
        "{}",
        status.message()
    );
    let mut huge = descriptor(&[("user", "a")]);
    huge.hits_addend = Some(UInt64Value { value: u64::MAX });
    let status = rls
        .should_rate_limit(request("test", vec![huge], 0))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("above the maximum"),
        "{}",
        status.message()
    );
    node.stop().await;
}

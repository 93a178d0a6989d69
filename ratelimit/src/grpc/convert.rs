//! Conversions between the generated protobuf types and the core's types: the only place that
//! knows both.

use std::time::Duration;

use super::pb::ringkit::ratelimit::v1 as pb;
use crate::algorithm::{Algorithm, Decision, Limit, MAX_COST};
use crate::check::{CheckOutcome, CheckRequest, Descriptor, DescriptorOutcome, Op, OpKind};
use crate::error::Error;
use crate::policy::{Matched, Rule};

/// `std` duration to protobuf duration.
pub(crate) fn to_pb_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

/// Protobuf duration to `std`; negative or absent is an error naming `field`.
pub(crate) fn from_pb_duration(
    d: Option<&prost_types::Duration>,
    field: &str,
) -> Result<Duration, Error> {
    let d = d.ok_or_else(|| Error::InvalidLimit(format!("`{field}` is missing")))?;
    if d.seconds < 0 || d.nanos < 0 {
        return Err(Error::InvalidLimit(format!("`{field}` is negative")));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

/// Core decision to protobuf.
pub(crate) fn to_pb_decision(d: &Decision) -> pb::Decision {
    pb::Decision {
        allowed: d.allowed,
        limit: d.limit,
        remaining: d.remaining,
        reset_after: Some(to_pb_duration(d.reset_after)),
        retry_after: d.retry_after.map(to_pb_duration),
    }
}

/// Protobuf decision to core (from a trusted peer or server).
pub(crate) fn from_pb_decision(d: &pb::Decision) -> Decision {
    let dur = |x: Option<&prost_types::Duration>| {
        x.map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
    };
    Decision {
        allowed: d.allowed,
        limit: d.limit,
        remaining: d.remaining,
        reset_after: dur(d.reset_after.as_ref()).unwrap_or_default(),
        retry_after: dur(d.retry_after.as_ref()),
    }
}

/// Core algorithm to protobuf.
fn to_pb_algorithm(a: Algorithm) -> pb::Algorithm {
    match a {
        Algorithm::TokenBucket => pb::Algorithm::TokenBucket,
        Algorithm::SlidingLog => pb::Algorithm::SlidingLog,
        Algorithm::SlidingWindow => pb::Algorithm::SlidingWindow,
        Algorithm::FixedWindow => pb::Algorithm::FixedWindow,
    }
}

/// Core limit to protobuf.
pub(crate) fn to_pb_limit(l: &Limit) -> pb::Limit {
    pb::Limit {
        algorithm: to_pb_algorithm(l.algorithm()) as i32,
        requests: l.requests(),
        window: Some(to_pb_duration(l.window())),
        burst: l.burst().unwrap_or(0),
    }
}

/// Protobuf limit to core, validated.
pub(crate) fn from_pb_limit(l: &pb::Limit) -> Result<Limit, Error> {
    let algorithm = match pb::Algorithm::try_from(l.algorithm) {
        Ok(pb::Algorithm::TokenBucket) => Algorithm::TokenBucket,
        Ok(pb::Algorithm::SlidingLog) => Algorithm::SlidingLog,
        Ok(pb::Algorithm::SlidingWindow) => Algorithm::SlidingWindow,
        Ok(pb::Algorithm::FixedWindow) => Algorithm::FixedWindow,
        Ok(pb::Algorithm::Unspecified) | Err(_) => {
            return Err(Error::InvalidLimit(format!(
                "algorithm {} is not one of TOKEN_BUCKET, SLIDING_LOG, SLIDING_WINDOW, FIXED_WINDOW",
                l.algorithm
            )));
        }
    };
    let window = from_pb_duration(l.window.as_ref(), "limit.window")?;
    let burst = (l.burst != 0).then_some(l.burst);
    Limit::new(algorithm, l.requests, window, burst)
}

/// Core rule to protobuf.
pub(crate) fn to_pb_rule(m: &Matched) -> pb::Rule {
    let kind = match &m.rule {
        Rule::Unlimited => pb::rule::Kind::Unlimited(true),
        Rule::Limited(l) => pb::rule::Kind::Limit(to_pb_limit(l)),
    };
    pb::Rule {
        kind: Some(kind),
        shadow: m.shadow,
    }
}

/// Protobuf rule to core.
pub(crate) fn from_pb_rule(r: &pb::Rule) -> Result<Matched, Error> {
    let rule = match &r.kind {
        Some(pb::rule::Kind::Limit(l)) => Rule::Limited(from_pb_limit(l)?),
        Some(pb::rule::Kind::Unlimited(true)) => Rule::Unlimited,
        Some(pb::rule::Kind::Unlimited(false)) | None => {
            return Err(Error::InvalidLimit(
                "the rule needs a `limit` or `unlimited = true`; send no rule to remove an override"
                    .into(),
            ));
        }
    };
    Ok(Matched {
        rule,
        shadow: r.shadow,
    })
}

/// Protobuf entries to core pairs.
pub(crate) fn from_pb_entries(entries: &[pb::Entry]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect()
}

/// Core pairs to protobuf entries.
pub(crate) fn to_pb_entries(entries: &[(String, String)]) -> Vec<pb::Entry> {
    entries
        .iter()
        .map(|(k, v)| pb::Entry {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

/// Protobuf descriptor to core.
pub(crate) fn from_pb_descriptor(d: &pb::Descriptor) -> Descriptor {
    Descriptor {
        entries: from_pb_entries(&d.entries),
        cost: d.cost,
        limit_override: None,
        refund: false,
    }
}

/// Protobuf check request to core; the cost defaults to 1 when absent.
pub(crate) fn from_pb_check(r: &pb::CheckRequest) -> CheckRequest {
    CheckRequest {
        domain: r.domain.clone(),
        descriptors: r.descriptors.iter().map(from_pb_descriptor).collect(),
        cost: r.cost.unwrap_or(1),
    }
}

/// One core descriptor outcome to protobuf.
pub(crate) fn to_pb_result(d: &DescriptorOutcome) -> pb::DescriptorResult {
    pb::DescriptorResult {
        code: if d.ok {
            pb::Code::Ok
        } else {
            pb::Code::OverLimit
        } as i32,
        decision: d.decision.as_ref().map(to_pb_decision),
        shadow: d.shadow && d.decision.is_some_and(|x| !x.allowed),
        policy: d.limit.map(|l| l.to_string()).unwrap_or_else(|| {
            if d.unlimited {
                "unlimited".into()
            } else {
                String::new()
            }
        }),
        limit: d.limit.as_ref().map(to_pb_limit),
    }
}

/// Core outcome to protobuf.
pub(crate) fn to_pb_check_response(o: &CheckOutcome) -> pb::CheckResponse {
    pb::CheckResponse {
        overall_code: if o.allowed {
            pb::Code::Ok
        } else {
            pb::Code::OverLimit
        } as i32,
        results: o.descriptors.iter().map(to_pb_result).collect(),
    }
}

/// Core op to protobuf (cluster forwarding).
pub(crate) fn to_pb_op(op: &Op) -> pb::Op {
    pb::Op {
        kind: match op.kind {
            OpKind::Check => pb::OpKind::Check,
            OpKind::Refund => pb::OpKind::Refund,
            OpKind::Reset => pb::OpKind::Reset,
        } as i32,
        key: op.key.clone(),
        limit: Some(to_pb_limit(&op.limit)),
        cost: op.cost,
    }
}

/// Protobuf op to core, validated (a peer is trusted, but a bad build is not).
pub(crate) fn from_pb_op(op: &pb::Op) -> Result<Op, Error> {
    let kind = match pb::OpKind::try_from(op.kind) {
        Ok(pb::OpKind::Check) => OpKind::Check,
        Ok(pb::OpKind::Refund) => OpKind::Refund,
        Ok(pb::OpKind::Reset) => OpKind::Reset,
        _ => return Err(Error::Config(format!("unknown op kind {}", op.kind))),
    };
    let limit = op
        .limit
        .as_ref()
        .ok_or_else(|| Error::InvalidLimit("op without a limit".into()))
        .and_then(from_pb_limit)?;
    if op.cost > MAX_COST {
        return Err(Error::CostOverflow {
            cost: op.cost,
            max: MAX_COST,
        });
    }
    Ok(Op {
        kind,
        key: op.key.clone(),
        limit,
        cost: op.cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_round_trips() {
        let l = Limit::new(
            Algorithm::TokenBucket,
            10,
            Duration::from_secs(300),
            Some(25),
        )
        .unwrap();
        assert_eq!(from_pb_limit(&to_pb_limit(&l)).unwrap(), l);
        let bad = pb::Limit {
            algorithm: 0,
            requests: 1,
            window: None,
            burst: 0,
        };
        assert!(
            from_pb_limit(&bad)
                .unwrap_err()
                .to_string()
                .contains("TOKEN_BUCKET")
        );
    }
}

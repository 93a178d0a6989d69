//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, wire-compatible with Envoy.
//!
//! Mapping: `hits_addend` 0 means 1 (Envoy's rule); a descriptor's own `hits_addend` wins over
//! the request's; `is_negative_hits` refunds; a descriptor's `limit` override is applied as a
//! fixed window of one `unit`. Unknown domains and empty descriptors are INVALID_ARGUMENT (Envoy
//! treats an error as "allow" or "deny" according to its `failure_mode_deny`).

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::convert::to_pb_duration;
use super::pb::envoy::config::core::v3::HeaderValue;
use super::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use super::pb::envoy::service::ratelimit::v3 as rls;
use super::pb::envoy::r#type::v3::RateLimitUnit;
use crate::algorithm::{Algorithm, Limit};
use crate::check::{CheckOutcome, CheckRequest, Descriptor, DescriptorOutcome};
use crate::error::Error;
use crate::headers;
use crate::limiter::RateLimiter;

use rls::rate_limit_response::{Code, DescriptorStatus, RateLimit, rate_limit::Unit};

/// The Envoy rate-limit service.
#[derive(Debug, Clone)]
pub struct EnvoyService {
    /// The node's limiter.
    limiter: RateLimiter,
    /// Whether to return the IETF `RateLimit-Policy`/`RateLimit` headers in
    /// `response_headers_to_add` (Envoy adds them to the client's response).
    response_headers: bool,
}

impl EnvoyService {
    /// Serves `limiter`; `response_headers` turns on the IETF headers.
    pub fn new(limiter: RateLimiter, response_headers: bool) -> Self {
        EnvoyService {
            limiter,
            response_headers,
        }
    }

    /// Wraps it for tonic's router.
    pub fn into_server(self) -> rls::rate_limit_service_server::RateLimitServiceServer<Self> {
        rls::rate_limit_service_server::RateLimitServiceServer::new(self)
    }
}

/// Envoy request to core.
pub(crate) fn from_envoy(req: &rls::RateLimitRequest) -> Result<CheckRequest, Error> {
    let cost = if req.hits_addend == 0 {
        1
    } else {
        u64::from(req.hits_addend)
    };
    let descriptors = req
        .descriptors
        .iter()
        .enumerate()
        .map(|(index, d)| from_envoy_descriptor(index, d))
        .collect::<Result<_, _>>()?;
    Ok(CheckRequest {
        domain: req.domain.clone(),
        descriptors,
        cost,
    })
}

/// One Envoy descriptor to core.
fn from_envoy_descriptor(index: usize, d: &RateLimitDescriptor) -> Result<Descriptor, Error> {
    let limit_override = match &d.limit {
        None => None,
        Some(o) => {
            let unit = RateLimitUnit::try_from(o.unit).unwrap_or(RateLimitUnit::Unknown);
            let window = unit_duration(unit).ok_or_else(|| {
                Error::InvalidLimit(format!(
                    "descriptor {index}: limit override unit {} is not SECOND, MINUTE, HOUR, DAY or WEEK",
                    o.unit
                ))
            })?;
            Some(Limit::new(
                Algorithm::FixedWindow,
                u64::from(o.requests_per_unit),
                window,
                None,
            )?)
        }
    };
    Ok(Descriptor {
        entries: d
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect(),
        cost: d.hits_addend,
        limit_override,
        refund: d.is_negative_hits,
    })
}

/// The fixed length of an Envoy unit (months and years have none).
fn unit_duration(unit: RateLimitUnit) -> Option<Duration> {
    Some(Duration::from_secs(match unit {
        RateLimitUnit::Second => 1,
        RateLimitUnit::Minute => 60,
        RateLimitUnit::Hour => 3600,
        RateLimitUnit::Day => 86_400,
        RateLimitUnit::Week => 7 * 86_400,
        _ => return None,
    }))
}

/// A limit as Envoy's `RateLimit`: exact when the window is one unit; otherwise the unit is
/// UNKNOWN and the name spells the window out.
fn current_limit(limit: &Limit) -> RateLimit {
    let unit = match limit.window().as_secs() {
        _ if limit.window().subsec_nanos() != 0 => Unit::Unknown,
        1 => Unit::Second,
        60 => Unit::Minute,
        3600 => Unit::Hour,
        86_400 => Unit::Day,
        604_800 => Unit::Week,
        _ => Unit::Unknown,
    };
    RateLimit {
        name: limit.to_string(),
        requests_per_unit: u32::try_from(limit.requests()).unwrap_or(u32::MAX),
        unit: unit as i32,
    }
}

/// One core descriptor outcome as Envoy's status.
fn to_status(d: &DescriptorOutcome) -> DescriptorStatus {
    DescriptorStatus {
        code: if d.ok { Code::Ok } else { Code::OverLimit } as i32,
        current_limit: d.limit.as_ref().map(current_limit),
        limit_remaining: d
            .decision
            .map_or(0, |x| u32::try_from(x.remaining).unwrap_or(u32::MAX)),
        duration_until_reset: d.decision.map(|x| to_pb_duration(x.reset_after)),
    }
}

/// Core outcome to Envoy's response.
pub(crate) fn to_envoy(
    domain: &str,
    o: &CheckOutcome,
    with_headers: bool,
) -> rls::RateLimitResponse {
    let response_headers_to_add = match (with_headers, o.tightest()) {
        (true, Some((decision, limit))) => headers::header_pairs(domain, &decision, &limit)
            .into_iter()
            .map(|(k, v)| HeaderValue {
                key: k.to_owned(),
                value: v,
                raw_value: Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    rls::RateLimitResponse {
        overall_code: if o.allowed { Code::Ok } else { Code::OverLimit } as i32,
        statuses: o.descriptors.iter().map(to_status).collect(),
        response_headers_to_add,
    }
}

#[tonic::async_trait]
impl rls::rate_limit_service_server::RateLimitService for EnvoyService {
    async fn should_rate_limit(
        &self,
        request: Request<rls::RateLimitRequest>,
    ) -> Result<Response<rls::RateLimitResponse>, Status> {
        let req = from_envoy(request.get_ref())?;
        let outcome = self.limiter.check(&req).await?;
        Ok(Response::new(to_envoy(
            &req.domain,
            &outcome,
            self.response_headers,
        )))
    }
}

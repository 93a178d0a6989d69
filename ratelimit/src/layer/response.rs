//! The responses the layer produces itself: rejections (HTTP 429 or gRPC RESOURCE_EXHAUSTED)
//! and the rate-limit headers on responses it lets through.

use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use tonic_types::{ErrorDetails, StatusExt};

use crate::algorithm::{Decision, Limit};
use crate::headers;

/// Whether the request is gRPC (`content-type: application/grpc...`).
pub(crate) fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// `RateLimit-Policy`.
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static(headers::RATELIMIT_POLICY);
/// `RateLimit`.
const RATELIMIT: HeaderName = HeaderName::from_static(headers::RATELIMIT);

/// The headers of one decision, built once per response.
#[derive(Debug, Clone)]
pub(crate) struct RateHeaders {
    /// `RateLimit-Policy`.
    policy: HeaderValue,
    /// `RateLimit`.
    ratelimit: HeaderValue,
    /// `Retry-After`, on rejections that waiting can cure.
    retry_after: Option<HeaderValue>,
}

/// What the headers of one layer share: the quoted policy name and, for a fixed limit, the whole
/// `RateLimit-Policy` value (computed once, cloned by reference count per response).
#[derive(Debug, Clone)]
pub(crate) struct HeaderCache {
    /// The policy name as a Structured Field String.
    quoted: String,
    /// The `RateLimit-Policy` value of the local backend's limit.
    policy: Option<(Limit, HeaderValue)>,
}

impl HeaderCache {
    /// A cache for `name`, with the policy value of `limit` precomputed when known.
    pub(crate) fn new(name: &str, limit: Option<Limit>) -> Self {
        let quoted = headers::sf_string(name);
        let policy = limit.and_then(|l| {
            let v = HeaderValue::try_from(headers::policy_value_quoted(&quoted, &l)).ok()?;
            Some((l, v))
        });
        HeaderCache { quoted, policy }
    }

    /// The headers for `decision` under `limit`.
    pub(crate) fn headers(&self, decision: &Decision, limit: &Limit) -> Option<RateHeaders> {
        let policy = match &self.policy {
            Some((l, v)) if l == limit => v.clone(),
            _ => HeaderValue::try_from(headers::policy_value_quoted(&self.quoted, limit)).ok()?,
        };
        let ratelimit =
            HeaderValue::try_from(headers::ratelimit_value_quoted(&self.quoted, decision)).ok()?;
        let retry_after = if decision.allowed {
            None
        } else {
            headers::retry_after_value(decision).and_then(|v| HeaderValue::try_from(v).ok())
        };
        Some(RateHeaders {
            policy,
            ratelimit,
            retry_after,
        })
    }
}

/// Adds the rate-limit headers to a response.
pub(crate) fn add_headers<B>(response: &mut Response<B>, h: RateHeaders) {
    let map = response.headers_mut();
    map.insert(RATELIMIT_POLICY, h.policy);
    map.insert(RATELIMIT, h.ratelimit);
    if let Some(v) = h.retry_after {
        map.insert(http::header::RETRY_AFTER, v);
    }
}

/// The rejection: HTTP 429 with the headers, or for gRPC a Trailers-Only RESOURCE_EXHAUSTED
/// whose details carry `google.rpc.RetryInfo`.
pub(crate) fn rejection<B: Default>(
    grpc: bool,
    name: &str,
    cache: &HeaderCache,
    budget: Option<(Decision, Limit)>,
) -> Response<B> {
    let retry_after = budget.and_then(|(d, _)| d.retry_after);
    let mut response = if grpc {
        let message = match retry_after {
            Some(d) => format!(
                "rate limit `{name}` exceeded: retry after {} s",
                headers::ceil_secs(d).max(1)
            ),
            None => format!(
                "rate limit `{name}` exceeded: the request costs more than the limit allows"
            ),
        };
        tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            message,
            ErrorDetails::with_retry_info(retry_after),
        )
        .into_http::<B>()
    } else {
        let mut r = Response::new(B::default());
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        r
    };
    if let Some(h) = budget.and_then(|(d, l)| cache.headers(&d, &l)) {
        add_headers(&mut response, h);
    }
    response
}

/// The fail-closed answer when the backend is unreachable: 503 or UNAVAILABLE.
pub(crate) fn unavailable<B: Default>(grpc: bool) -> Response<B> {
    if grpc {
        tonic::Status::unavailable("rate limiter unavailable (fail-closed)").into_http::<B>()
    } else {
        let mut r = Response::new(B::default());
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    }
}

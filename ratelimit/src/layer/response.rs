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

/// The IETF headers (and `Retry-After` on rejections) as typed pairs.
pub(crate) fn rate_headers(
    name: &str,
    decision: &Decision,
    limit: &Limit,
) -> Vec<(HeaderName, HeaderValue)> {
    headers::header_pairs(name, decision, limit)
        .into_iter()
        .filter_map(|(k, v)| Some((HeaderName::from_static(k), HeaderValue::try_from(v).ok()?)))
        .collect()
}

/// Appends headers to a response.
pub(crate) fn add_headers<B>(response: &mut Response<B>, pairs: Vec<(HeaderName, HeaderValue)>) {
    let map = response.headers_mut();
    for (k, v) in pairs {
        map.insert(k, v);
    }
}

/// The rejection: HTTP 429 with the headers, or for gRPC a Trailers-Only RESOURCE_EXHAUSTED
/// whose details carry `google.rpc.RetryInfo`.
pub(crate) fn rejection<B: Default>(
    grpc: bool,
    name: &str,
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
    if let Some((decision, limit)) = budget {
        add_headers(&mut response, rate_headers(name, &decision, &limit));
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

//! [`MakeKey`]: which budget a request counts against.

use std::net::SocketAddr;

use http::{HeaderName, Request};

/// Extracts the rate-limit key of a request. `None` lets the request through unlimited (for
/// example when the header a key comes from is missing: decide in the closure if that should be
/// a shared "anonymous" key instead).
///
/// Implemented for closures `FnMut(&Request<B>) -> Option<String>`, and by [`PeerIp`],
/// [`HeaderKey`], [`GrpcMethod`] and [`Global`].
pub trait MakeKey<B> {
    /// The key for `request`.
    fn make_key(&mut self, request: &Request<B>) -> Option<String>;
}

impl<B, F> MakeKey<B> for F
where
    F: FnMut(&Request<B>) -> Option<String>,
{
    fn make_key(&mut self, request: &Request<B>) -> Option<String> {
        self(request)
    }
}

/// The client's IP address, from the connection info the server put in the request extensions:
/// tonic's `TcpConnectInfo`, or a plain `SocketAddr` (insert one with a `map_request` in hyper;
/// axum users can write a closure over `ConnectInfo<SocketAddr>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerIp;

impl<B> MakeKey<B> for PeerIp {
    fn make_key(&mut self, request: &Request<B>) -> Option<String> {
        let ext = request.extensions();
        ext.get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|c| c.remote_addr())
            .or_else(|| ext.get::<SocketAddr>().copied())
            .map(|addr| addr.ip().to_string())
    }
}

/// The value of a request header (an API key, a tenant id).
#[derive(Debug, Clone)]
pub struct HeaderKey(pub HeaderName);

impl HeaderKey {
    /// The key is the value of `name`.
    pub fn new(name: HeaderName) -> Self {
        HeaderKey(name)
    }
}

impl<B> MakeKey<B> for HeaderKey {
    fn make_key(&mut self, request: &Request<B>) -> Option<String> {
        let v = request.headers().get(&self.0)?;
        Some(String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// The gRPC method (the request path, `/package.Service/Method`): one budget per method.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMethod;

impl<B> MakeKey<B> for GrpcMethod {
    fn make_key(&mut self, request: &Request<B>) -> Option<String> {
        Some(request.uri().path().to_owned())
    }
}

/// One budget for every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Global;

impl<B> MakeKey<B> for Global {
    fn make_key(&mut self, _request: &Request<B>) -> Option<String> {
        Some(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extractors() {
        let mut req = Request::builder()
            .uri("/pkg.Svc/Call")
            .header("x-api-key", "k1")
            .body(())
            .unwrap();
        assert_eq!(GrpcMethod.make_key(&req).as_deref(), Some("/pkg.Svc/Call"));
        assert_eq!(
            HeaderKey::new(HeaderName::from_static("x-api-key"))
                .make_key(&req)
                .as_deref(),
            Some("k1")
        );
        assert_eq!(PeerIp.make_key(&req), None);
        req.extensions_mut()
            .insert("10.0.0.7:5000".parse::<SocketAddr>().unwrap());
        assert_eq!(PeerIp.make_key(&req).as_deref(), Some("10.0.0.7"));
        let mut closure = |r: &Request<()>| r.headers().get("x-none").map(|_| "x".to_owned());
        assert_eq!(closure.make_key(&req), None);
    }
}

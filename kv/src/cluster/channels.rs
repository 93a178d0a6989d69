//! [`Channels`]: one lazily connected gRPC channel per member, built by a pluggable
//! [`Connector`].
//!
//! This is one of the two seams through which a cluster node touches the network (the other is
//! gossip's datagram socket). Production connects over TCP by address ([`TcpConnector`]); the
//! turmoil simulation plugs in a connector over its simulated TCP, and the rest of the code runs
//! unchanged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringkit_hashring::NodeId;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use super::topology::ClusterMap;
use crate::error::KvError;
use crate::grpc::server::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};

/// Builds a channel to an address. Must not block or dial: channels connect lazily, on first use,
/// and reconnect by themselves after a failure.
pub trait Connector: Send + Sync + 'static {
    /// A lazily connecting channel to the gRPC server at `addr` (`host:port`).
    ///
    /// # Errors
    /// [`KvError::Config`] when `addr` is not a usable address.
    fn channel(&self, addr: &str) -> Result<Channel, KvError>;
}

/// Blanket implementation so a closure can serve as a connector (tests, simulation).
impl<F> Connector for F
where
    F: Fn(&str) -> Result<Channel, KvError> + Send + Sync + 'static,
{
    fn channel(&self, addr: &str) -> Result<Channel, KvError> {
        self(addr)
    }
}

/// The production [`Connector`]: plain-text HTTP/2 over TCP.
#[derive(Clone, Copy, Debug)]
pub struct TcpConnector {
    /// Bound on establishing a TCP connection, so a dead peer fails fast.
    pub connect_timeout: Duration,
}

impl Default for TcpConnector {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
        }
    }
}

impl Connector for TcpConnector {
    fn channel(&self, addr: &str) -> Result<Channel, KvError> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| KvError::Config(format!("peer address {addr:?}: {e}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT);
        Ok(endpoint.connect_lazy())
    }
}

/// Channels to members, by node id: reused across requests, rebuilt when a member's address
/// changes in the [`ClusterMap`]. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Channels {
    /// Builds new channels.
    connector: Arc<dyn Connector>,
    /// The current map, for members' addresses.
    map: watch::Receiver<Arc<ClusterMap>>,
    /// Channels built so far, with the address each was built for.
    cache: Arc<Mutex<HashMap<NodeId, (String, Channel)>>>,
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channels").finish_non_exhaustive()
    }
}

impl Channels {
    /// Channels to the members of the map `map` holds, built by `connector`.
    pub fn new(connector: Arc<dyn Connector>, map: watch::Receiver<Arc<ClusterMap>>) -> Self {
        Self {
            connector,
            map,
            cache: Arc::default(),
        }
    }

    /// The channel to member `id`.
    ///
    /// # Errors
    /// [`KvError::UnknownNode`] when `id` is not in the current map; connector errors.
    pub fn get(&self, id: &NodeId) -> Result<Channel, KvError> {
        let addr = match self.map.borrow().member(id) {
            Some(m) => m.grpc_addr.clone(),
            None => return Err(KvError::UnknownNode(id.to_string())),
        };
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| KvError::Internal("channel cache lock poisoned".into()))?;
        if let Some((cached_addr, ch)) = cache.get(id)
            && *cached_addr == addr
        {
            return Ok(ch.clone());
        }
        let ch = self.connector.channel(&addr)?;
        cache.insert(id.clone(), (addr, ch.clone()));
        Ok(ch)
    }

    /// A channel to an address that need not be a member yet (a joining node calling a seed).
    /// Not cached.
    ///
    /// # Errors
    /// Connector errors.
    pub fn to_addr(&self, addr: &str) -> Result<Channel, KvError> {
        self.connector.channel(addr)
    }

    /// The map these channels read addresses from.
    pub fn map(&self) -> &watch::Receiver<Arc<ClusterMap>> {
        &self.map
    }
}

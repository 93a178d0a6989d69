//! Gossip over turmoil's simulated UDP: the cluster's `DatagramSocket` seam implemented for
//! `turmoil::net::UdpSocket`, so the real SWIM driver runs under partitions and message loss.

use std::io;
use std::net::SocketAddr;

use ringkit_kv::cluster::gossip::DatagramSocket;

/// The UDP port every simulated node gossips on.
pub(crate) const GOSSIP_PORT: u16 = 7001;

/// A simulated UDP socket (a newtype: both the trait and turmoil's type are foreign here).
#[derive(Debug)]
pub(crate) struct SimUdp(pub(crate) turmoil::net::UdpSocket);

impl SimUdp {
    /// Binds `0.0.0.0:port` on the current simulated host.
    ///
    /// # Errors
    /// The port is already bound on this host.
    pub(crate) async fn bind(port: u16) -> io::Result<Self> {
        turmoil::net::UdpSocket::bind(("0.0.0.0", port))
            .await
            .map(Self)
    }
}

#[async_trait::async_trait]
impl DatagramSocket for SimUdp {
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.0.send_to(buf, target).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.recv_from(buf).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The simulated address of `host`'s gossip socket (turmoil's DNS gives every host an IP).
///
/// Must be called on a simulated host.
pub(crate) fn gossip_addr(host: &str) -> SocketAddr {
    SocketAddr::new(turmoil::lookup(host), GOSSIP_PORT)
}

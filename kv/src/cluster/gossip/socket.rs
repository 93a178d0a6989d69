//! [`DatagramSocket`]: the one seam between gossip and the network.

use std::io;
use std::net::SocketAddr;

/// What gossip needs from a datagram socket: the simulation implements it for turmoil's
/// `UdpSocket`, production uses [`tokio::net::UdpSocket`] (implemented here).
///
/// Both methods take `&self` so one task can receive while another sends; `recv_from` must be
/// cancel safe (the driver selects on it), as tokio's and turmoil's are.
#[async_trait::async_trait]
pub trait DatagramSocket: Send + Sync + 'static {
    /// Sends one datagram to `target`.
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize>;

    /// Receives one datagram into `buf`: its length and sender.
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;

    /// The address the socket is bound to (what the node advertises when none is configured).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

#[async_trait::async_trait]
impl DatagramSocket for tokio::net::UdpSocket {
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        tokio::net::UdpSocket::send_to(self, buf, target).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        tokio::net::UdpSocket::recv_from(self, buf).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokio_udp_round_trip() {
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a, b): (&dyn DatagramSocket, &dyn DatagramSocket) = (&a, &b);
        a.send_to(b"ping", b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) =
            tokio::time::timeout(std::time::Duration::from_secs(5), b.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
    }
}

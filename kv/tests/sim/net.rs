//! tonic over turmoil's simulated TCP: the server side (an incoming-connection stream for
//! `ringkit_kv::grpc::serve` and the cluster's servers) and the client side (a connector for
//! tonic channels). The production code is unchanged: it takes a stream and a connector.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::Stream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};
use turmoil::net::{TcpListener, TcpStream};

/// The gRPC port every simulated node listens on.
pub(crate) const GRPC_PORT: u16 = 7000;

/// A simulated TCP connection accepted by a server: turmoil's stream plus the `Connected`
/// impl tonic's server wants (it only reports connection info, which the sim has none of).
#[derive(Debug)]
pub(crate) struct SimConn(pub TcpStream);

impl Connected for SimConn {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for SimConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// One `accept` in progress.
type Accepting = Pin<Box<dyn Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send>>;

/// The connections a simulated listener accepts, as the stream `serve` takes.
pub(crate) struct Incoming {
    /// The bound listener, shared with the accept future in flight.
    listener: Arc<TcpListener>,
    /// The accept in flight, if any (kept across polls so no connection is dropped).
    pending: Option<Accepting>,
}

impl Incoming {
    /// Binds `0.0.0.0:port` on the current simulated host.
    ///
    /// # Errors
    /// The port is already bound on this host.
    pub(crate) async fn bind(port: u16) -> io::Result<Self> {
        let listener = TcpListener::bind(("0.0.0.0", port)).await?;
        Ok(Self {
            listener: Arc::new(listener),
            pending: None,
        })
    }
}

impl Stream for Incoming {
    type Item = io::Result<SimConn>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let listener = Arc::clone(&this.listener);
        let accepting = this
            .pending
            .get_or_insert_with(|| Box::pin(async move { listener.accept().await }));
        match accepting.as_mut().poll(cx) {
            Poll::Ready(r) => {
                this.pending = None;
                Poll::Ready(Some(r.map(|(stream, _)| SimConn(stream))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Connects to `uri`'s `host:port` over the simulated network (host names resolve through
/// turmoil's DNS), wrapped for hyper.
///
/// # Errors
/// The URI has no authority, or the connection is refused or partitioned away.
pub(crate) async fn connect(uri: Uri) -> io::Result<TokioIo<TcpStream>> {
    let authority = uri
        .authority()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}")))?;
    let stream = TcpStream::connect(authority.as_str()).await?;
    Ok(TokioIo::new(stream))
}

/// A lazily connecting tonic channel to `host`'s gRPC port over the simulated network.
///
/// Requests time out after `timeout` (simulated time), like a real client's deadline; the
/// channel reconnects on its own after a crash or a partition.
///
/// # Panics
/// If `host` does not make a valid URI (a test bug).
pub(crate) fn channel(host: &str, timeout: Duration) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{host}:{GRPC_PORT}"))
        .unwrap_or_else(|e| panic!("bad simulated host name {host}: {e}"))
        .timeout(timeout)
        .connect_timeout(timeout);
    endpoint.connect_with_connector_lazy(tower::service_fn(connect))
}

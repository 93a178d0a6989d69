//! [`ResponseFuture`]: the inner service's future, a ready rejection, or (remote backend) the
//! check and then the inner call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;

use super::response::{RateHeaders, add_headers};

/// A boxed future for the remote path (network-bound, so the allocation does not matter).
pub(crate) type BoxResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`super::RateLimit`].
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner {
            #[pin]
            future: F,
            headers: Option<RateHeaders>,
        },
        Ready {
            response: Option<Response<B>>,
        },
        Boxed {
            future: BoxResponseFuture<B, E>,
        },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    /// The inner service's future; `headers` are added to its response.
    pub(crate) fn inner(future: F, headers: Option<RateHeaders>) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future, headers },
        }
    }

    /// A response produced by the layer.
    pub(crate) fn ready(response: Response<B>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    /// The remote path.
    pub(crate) fn boxed(future: BoxResponseFuture<B, E>) -> Self {
        ResponseFuture {
            kind: Kind::Boxed { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, headers } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(h) = headers.take() {
                    add_headers(&mut response, h);
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Ready { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

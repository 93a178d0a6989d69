//! Convenience calls over [`Storage`]: blocking ones for tests and tools, and futures for the
//! async shell. Both wrap the callback API with a channel, so neither holds a lock while waiting.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::api::{OpResult, ReadView, Storage, WriteRequest};
use crate::error::KvError;

/// A storage result that is not ready yet. Resolves to [`KvError::Closed`] if the store dropped
/// the work (it was shut down).
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Pending<T> {
    /// Filled in by the storage thread.
    rx: oneshot::Receiver<Result<T, KvError>>,
}

impl<T> Future for Pending<T> {
    type Output = Result<T, KvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(KvError::Closed)))
    }
}

/// Blocking and async forms of the [`Storage`] calls; implemented for every store.
pub trait StorageExt: Storage {
    /// Submits a write and returns a future of its outcome.
    fn write(&self, request: WriteRequest) -> Pending<Vec<OpResult>> {
        let (tx, rx) = oneshot::channel();
        self.submit_write(
            request,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        Pending { rx }
    }

    /// Runs a read job and returns a future of its result.
    fn read<R, F>(&self, f: F) -> Pending<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn ReadView) -> Result<R, KvError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit_read(Box::new(move |view| {
            let _ = tx.send(f(view));
        }));
        Pending { rx }
    }

    /// Submits a write and waits for it on this thread. Never call from async code.
    ///
    /// # Errors
    /// As the write's outcome.
    fn write_blocking(&self, request: WriteRequest) -> Result<Vec<OpResult>, KvError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit_write(
            request,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or(Err(KvError::Closed))
    }

    /// Runs a read job and waits for it on this thread. Never call from async code.
    ///
    /// # Errors
    /// As the job's result.
    fn read_blocking<R, F>(&self, f: F) -> Result<R, KvError>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn ReadView) -> Result<R, KvError> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit_read(Box::new(move |view| {
            let _ = tx.send(f(view));
        }));
        rx.recv().unwrap_or(Err(KvError::Closed))
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}

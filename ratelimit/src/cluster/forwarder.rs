//! One forwarder per peer: queues operations for keys that peer owns and sends them in batches.
//!
//! Batching is adaptive: the task takes everything queued (up to `max_batch`), optionally waits
//! `batch_window` for more, and sends; while up to `max_in_flight` batches are on the wire, new
//! operations queue up and leave together in the next batch. Under load batches grow, so the RPC
//! rate stays bounded; when idle a lone operation leaves at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::transport::Channel;

use crate::check::{Op, OpResult};
use crate::error::Error;
use crate::grpc::pb::ringkit::ratelimit::v1 as pb;
use crate::grpc::{from_pb_decision, to_pb_op};
use crate::metrics;

/// An operation waiting for its batch.
#[derive(Debug)]
struct Pending {
    /// What to run on the owner.
    op: Op,
    /// Where the result goes.
    reply: oneshot::Sender<Result<OpResult, Error>>,
}

/// Batching settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSettings {
    /// Extra wait to fill a batch.
    pub(crate) window: Duration,
    /// Most ops per batch.
    pub(crate) max_batch: usize,
    /// Batches in flight.
    pub(crate) max_in_flight: usize,
    /// Per-batch deadline.
    pub(crate) timeout: Duration,
}

/// The handle to a peer's forwarder task; the task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Forwarder {
    /// Queue into the task.
    tx: mpsc::UnboundedSender<Pending>,
}

impl Forwarder {
    /// Spawns the forwarder of one peer.
    pub(crate) fn spawn(me: String, channel: Channel, settings: BatchSettings) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = pb::cluster_peer_client::ClusterPeerClient::new(channel);
        tokio::spawn(run(me, client, rx, settings));
        Forwarder { tx }
    }

    /// Queues `op`; the receiver yields its result (or the batch's error).
    pub(crate) fn send(&self, op: Op) -> oneshot::Receiver<Result<OpResult, Error>> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(p)) = self.tx.send(Pending { op, reply }) {
            let _ = p
                .reply
                .send(Err(Error::Unavailable("forwarder stopped".into())));
        }
        rx
    }
}

/// The task: collect, send, distribute.
async fn run(
    me: String,
    client: pb::cluster_peer_client::ClusterPeerClient<Channel>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    settings: BatchSettings,
) {
    let in_flight = Arc::new(Semaphore::new(settings.max_in_flight));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < settings.max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        if !settings.window.is_zero() && batch.len() < settings.max_batch {
            let deadline = tokio::time::Instant::now() + settings.window;
            while batch.len() < settings.max_batch {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => batch.push(p),
                    _ => break,
                }
            }
        }
        let mut client = client.clone();
        let from = me.clone();
        tokio::spawn(async move {
            send_batch(&mut client, from, batch, settings.timeout).await;
            drop(permit);
        });
    }
}

/// Sends one batch and answers every waiter.
async fn send_batch(
    client: &mut pb::cluster_peer_client::ClusterPeerClient<Channel>,
    from: String,
    batch: Vec<Pending>,
    timeout: Duration,
) {
    metrics::record_forwarded(batch.len());
    let request = pb::ApplyRequest {
        ops: batch.iter().map(|p| to_pb_op(&p.op)).collect(),
        from,
    };
    let answer = match tokio::time::timeout(timeout, client.apply(request)).await {
        Ok(Ok(response)) => {
            let results = response.into_inner().results;
            if results.len() == batch.len() {
                Ok(results)
            } else {
                Err(Error::Unavailable(format!(
                    "peer answered {} results for {} ops",
                    results.len(),
                    batch.len()
                )))
            }
        }
        Ok(Err(status)) => Err(Error::Unavailable(format!("peer: {}", status.message()))),
        Err(_) => Err(Error::Timeout(timeout)),
    };
    match answer {
        Ok(results) => {
            for (p, r) in batch.into_iter().zip(results) {
                let result = OpResult {
                    decision: r.decision.as_ref().map(from_pb_decision),
                    existed: r.existed,
                };
                let _ = p.reply.send(Ok(result));
            }
        }
        Err(e) => {
            metrics::record_peer_failure();
            for p in batch {
                let _ = p.reply.send(Err(Error::Unavailable(e.to_string())));
            }
        }
    }
}

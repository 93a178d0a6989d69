//! [`BatchingPeers`]: coalesces concurrent replica calls to the same node into one RPC.
//!
//! Under load a coordinator replicates many writes at once, each to the same two or three
//! peers. Sending one `Merge` per write costs an RPC (and a group-commit slot) per write per
//! replica; queueing them per target and sending whatever has accumulated as one call (the way
//! the SQLite writer groups commits) costs one RPC per batch, with no added wait when idle: the
//! first call goes out at once, and the calls that arrive while it is in flight form the next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ringkit_hashring::NodeId;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::peers::ReplicaPeers;
use crate::error::KvError;
use crate::model::Object;

/// One queued merge call.
struct MergeJob {
    /// Its items.
    items: Vec<(Bytes, Object)>,
    /// Where its outcome goes.
    done: oneshot::Sender<Result<(), KvError>>,
}

/// One queued read call.
struct ReadJob {
    /// Its keys.
    keys: Vec<Bytes>,
    /// Where its objects go.
    done: oneshot::Sender<Result<Vec<Option<Object>>, KvError>>,
}

/// Queues of merges per (target, hint_for), and of reads per target.
#[derive(Default)]
struct Queues {
    /// Merge queues.
    merges: HashMap<(NodeId, Option<NodeId>), mpsc::Sender<MergeJob>>,
    /// Read queues.
    reads: HashMap<NodeId, mpsc::Sender<ReadJob>>,
}

/// A [`ReplicaPeers`] that batches concurrent calls per target over an inner implementation.
pub struct BatchingPeers {
    /// Does the actual calls.
    inner: Arc<dyn ReplicaPeers>,
    /// One queue per destination, each drained by its own task.
    queues: Mutex<Queues>,
    /// Most items (or keys) in one batched call.
    max_batch: usize,
    /// Most batched calls in flight to one destination (pipelining).
    max_in_flight: usize,
}

impl std::fmt::Debug for BatchingPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchingPeers")
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl BatchingPeers {
    /// Batches calls over `inner`: at most `max_batch` items a call and `max_in_flight` calls
    /// at once per destination (both at least 1).
    pub fn new(inner: Arc<dyn ReplicaPeers>, max_batch: usize, max_in_flight: usize) -> Self {
        Self {
            inner,
            queues: Mutex::default(),
            max_batch: max_batch.max(1),
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// The queue of merges to `to` (as hints for `hint_for`), started on first use.
    fn merge_queue(
        &self,
        to: &NodeId,
        hint_for: Option<&NodeId>,
    ) -> Result<mpsc::Sender<MergeJob>, KvError> {
        let mut q = self
            .queues
            .lock()
            .map_err(|_| KvError::Internal("peer queue lock poisoned".into()))?;
        let key = (to.clone(), hint_for.cloned());
        if let Some(tx) = q.merges.get(&key).filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::channel(self.max_batch * QUEUE_BATCHES);
        tokio::spawn(drain_merges(
            Arc::clone(&self.inner),
            key.clone(),
            rx,
            self.max_batch,
            self.max_in_flight,
        ));
        q.merges.insert(key, tx.clone());
        Ok(tx)
    }

    /// The queue of reads from `to`, started on first use.
    fn read_queue(&self, to: &NodeId) -> Result<mpsc::Sender<ReadJob>, KvError> {
        let mut q = self
            .queues
            .lock()
            .map_err(|_| KvError::Internal("peer queue lock poisoned".into()))?;
        if let Some(tx) = q.reads.get(to).filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::channel(self.max_batch * QUEUE_BATCHES);
        tokio::spawn(drain_reads(
            Arc::clone(&self.inner),
            to.clone(),
            rx,
            self.max_batch,
            self.max_in_flight,
        ));
        q.reads.insert(to.clone(), tx.clone());
        Ok(tx)
    }
}

/// Error of a job whose queue task is gone (the node is stopping).
fn gone() -> KvError {
    KvError::Closed
}

/// Queued calls to one peer, in batches: past this the peer is not keeping up, and a call
/// fails at once (UNAVAILABLE) instead of queueing without bound behind calls that will time out.
const QUEUE_BATCHES: usize = 16;

/// Most encoded bytes of objects in one batched merge, well under the internal message limit
/// (a single larger object still goes, alone).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Roughly the encoded size of some items (keys plus sibling values).
fn items_bytes(items: &[(Bytes, Object)]) -> usize {
    items
        .iter()
        .map(|(k, o)| {
            k.len()
                + o.siblings()
                    .iter()
                    .map(|s| s.value.len() + 64)
                    .sum::<usize>()
        })
        .sum()
}

/// Queues `job` on `tx`, failing at once when the queue is full.
fn enqueue<T>(tx: &mpsc::Sender<T>, job: T, to: &NodeId) -> Result<(), KvError> {
    tx.try_send(job).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => {
            KvError::Unavailable(format!("replication queue to {to} is full"))
        }
        mpsc::error::TrySendError::Closed(_) => gone(),
    })
}

/// Sends queued merges to one destination in batches until every sender is dropped.
async fn drain_merges(
    inner: Arc<dyn ReplicaPeers>,
    (to, hint_for): (NodeId, Option<NodeId>),
    mut rx: mpsc::Receiver<MergeJob>,
    max_batch: usize,
    max_in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // Callers that gave up (their timeout passed) are not sent for.
        if first.done.is_closed() {
            continue;
        }
        let mut count = first.items.len();
        let mut bytes = items_bytes(&first.items);
        let mut jobs = vec![first];
        while count < max_batch && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) if job.done.is_closed() => {}
                Ok(job) => {
                    count += job.items.len();
                    bytes += items_bytes(&job.items);
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let (inner, to, hint_for) = (Arc::clone(&inner), to.clone(), hint_for.clone());
        tokio::spawn(async move {
            let mut items = Vec::with_capacity(count);
            let mut waiters = Vec::with_capacity(jobs.len());
            for job in jobs {
                items.extend(job.items);
                waiters.push(job.done);
            }
            metrics::histogram!("kv_replica_merge_batch_items").record(items.len() as f64);
            let r = inner.merge(&to, items, hint_for.as_ref()).await;
            for w in waiters {
                let _ = w.send(r.clone());
            }
            drop(permit);
        });
    }
}

/// Sends queued reads to one destination in batches until every sender is dropped.
async fn drain_reads(
    inner: Arc<dyn ReplicaPeers>,
    to: NodeId,
    mut rx: mpsc::Receiver<ReadJob>,
    max_batch: usize,
    max_in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        if first.done.is_closed() {
            continue;
        }
        let mut count = first.keys.len();
        let mut jobs = vec![first];
        while count < max_batch {
            match rx.try_recv() {
                Ok(job) if job.done.is_closed() => {}
                Ok(job) => {
                    count += job.keys.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let (inner, to) = (Arc::clone(&inner), to.clone());
        tokio::spawn(async move {
            let keys: Vec<Bytes> = jobs.iter().flat_map(|j| j.keys.iter().cloned()).collect();
            match inner.read(&to, keys).await {
                Ok(objects) if objects.len() == count => {
                    let mut objects = objects.into_iter();
                    for job in jobs {
                        let mine = objects.by_ref().take(job.keys.len()).collect();
                        let _ = job.done.send(Ok(mine));
                    }
                }
                Ok(objects) => {
                    let e = KvError::Internal(format!(
                        "peer {to} answered {} objects for {count} keys",
                        objects.len()
                    ));
                    for job in jobs {
                        let _ = job.done.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for job in jobs {
                        let _ = job.done.send(Err(e.clone()));
                    }
                }
            }
            drop(permit);
        });
    }
}

#[async_trait::async_trait]
impl ReplicaPeers for BatchingPeers {
    async fn merge(
        &self,
        to: &NodeId,
        items: Vec<(Bytes, Object)>,
        hint_for: Option<&NodeId>,
    ) -> Result<(), KvError> {
        let (done, rx) = oneshot::channel();
        enqueue(
            &self.merge_queue(to, hint_for)?,
            MergeJob { items, done },
            to,
        )?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    async fn read(&self, to: &NodeId, keys: Vec<Bytes>) -> Result<Vec<Option<Object>>, KvError> {
        let (done, rx) = oneshot::channel();
        enqueue(&self.read_queue(to)?, ReadJob { keys, done }, to)?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::model::{ActorId, Dot, Sibling, Timestamp, VersionVector};

    /// Counts calls; answers reads with an object for keys starting with "x".
    #[derive(Default)]
    struct Counting {
        merges: AtomicUsize,
        items: AtomicUsize,
        reads: AtomicUsize,
    }

    fn obj() -> Object {
        let s = Sibling {
            dot: Dot::new(ActorId(1), 1),
            value: Bytes::from("v"),
            written_at: Timestamp(1),
            expires_at: None,
            lww: false,
        };
        Object::from_parts(vec![s], VersionVector::new())
    }

    #[async_trait::async_trait]
    impl ReplicaPeers for Counting {
        async fn merge(
            &self,
            _to: &NodeId,
            items: Vec<(Bytes, Object)>,
            _hint_for: Option<&NodeId>,
        ) -> Result<(), KvError> {
            self.merges.fetch_add(1, Ordering::SeqCst);
            self.items.fetch_add(items.len(), Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(())
        }

        async fn read(
            &self,
            _to: &NodeId,
            keys: Vec<Bytes>,
        ) -> Result<Vec<Option<Object>>, KvError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(keys.iter().map(|k| k.starts_with(b"x").then(obj)).collect())
        }
    }

    #[tokio::test]
    async fn concurrent_merges_share_calls_and_every_caller_gets_its_answer() {
        let inner = Arc::new(Counting::default());
        let peers = BatchingPeers::new(Arc::clone(&inner) as Arc<dyn ReplicaPeers>, 64, 1);
        let to = NodeId::from("b");
        let calls =
            (0..100).map(|i| peers.merge(&to, vec![(Bytes::from(format!("k{i}")), obj())], None));
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(inner.items.load(Ordering::SeqCst), 100);
        let merges = inner.merges.load(Ordering::SeqCst);
        assert!((2..100).contains(&merges), "{merges} calls for 100 merges");
    }

    #[tokio::test]
    async fn batched_reads_are_split_back_in_order() {
        let inner = Arc::new(Counting::default());
        let peers = BatchingPeers::new(Arc::clone(&inner) as Arc<dyn ReplicaPeers>, 64, 1);
        let to = NodeId::from("b");
        let calls = (0..50).map(|i| {
            let key = if i % 2 == 0 {
                format!("x{i}")
            } else {
                format!("y{i}")
            };
            peers.read(&to, vec![Bytes::from(key)])
        });
        let results = futures::future::join_all(calls).await;
        for (i, r) in results.into_iter().enumerate() {
            let r = r.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].is_some(), i % 2 == 0, "key {i}");
        }
        assert!(inner.reads.load(Ordering::SeqCst) < 50);
    }
}

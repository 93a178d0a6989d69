//! The tokio shell of ownership transfer: for every pending transfer this node is the source of,
//! stream the partition to the new holder, verify it holds every row, and report completion to
//! the claimant (which publishes the next epoch: reads then move to the new holder).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use super::plan::{TaskKey, TransferTask, holds, outgoing, split_by_bytes, to_start};
use crate::cluster::admin::{RingChange, Topology, TransferDone};
use crate::cluster::peers::ReplicaPeers;
use crate::error::KvError;
use crate::model::HashRange;
use crate::node::KvNode;
use crate::storage::{RowEntry, Storage, StorageExt};

/// Settings of the transfer task.
#[derive(Clone, Debug)]
pub struct TransferConfig {
    /// Rows per page read and per merge sent.
    pub page_rows: usize,
    /// Wait before streaming, so the map that sends writes to both holders reaches the
    /// coordinators first (gossip spreads an epoch in well under a second).
    pub settle: Duration,
    /// Pause before retrying a failed transfer (the target down, the claimant busy).
    pub retry_every: Duration,
    /// Partitions streamed at once (the rest wait their turn), so a join does not swamp the
    /// disk and the network.
    pub max_parallel: usize,
    /// Completions are reported to the claimant in batches gathered over this window, so a
    /// change makes a few epochs rather than one per partition.
    pub report_window: Duration,
    /// Largest merge or read-back sent in one call (rows are cut into runs of at most this
    /// size), well under the 64 MiB message limit whatever the values' sizes.
    pub max_batch_bytes: usize,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            page_rows: 256,
            settle: Duration::from_secs(1),
            retry_every: Duration::from_secs(1),
            max_parallel: 4,
            report_window: Duration::from_millis(100),
            max_batch_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Reads this node's rows of a hash range, in (hash, key) order, resuming after a position.
#[async_trait::async_trait]
pub trait PartitionSource: Send + Sync + 'static {
    /// Up to `limit` rows of `range` after `after` (tombstones included).
    ///
    /// # Errors
    /// Storage failures.
    async fn page(
        &self,
        range: HashRange,
        after: Option<(u64, Bytes)>,
        limit: usize,
    ) -> Result<Vec<RowEntry>, KvError>;
}

#[async_trait::async_trait]
impl<S: Storage> PartitionSource for KvNode<S> {
    async fn page(
        &self,
        range: HashRange,
        after: Option<(u64, Bytes)>,
        limit: usize,
    ) -> Result<Vec<RowEntry>, KvError> {
        self.storage()
            .read(move |view| {
                view.hash_range(&range, after.as_ref().map(|(h, k)| (*h, &k[..])), limit)
            })
            .await
    }
}

/// Everything a transfer job needs.
#[derive(Clone)]
struct Ctx {
    /// The map (what to send) and the claimant (where completions go).
    topology: Topology,
    /// This node's rows.
    source: Arc<dyn PartitionSource>,
    /// Merges into and reads from the new holders.
    peers: Arc<dyn ReplicaPeers>,
    /// Page size, pacing, parallelism.
    config: TransferConfig,
    /// Turns to stream (`max_parallel` of them).
    turns: Arc<tokio::sync::Semaphore>,
    /// Verified transfers, to the reporter (which answers once the claimant has them).
    reports: mpsc::Sender<Report>,
}

/// A verified transfer and where to say whether the claimant recorded it.
type Report = (TransferDone, oneshot::Sender<Result<(), KvError>>);

/// Gathers verified transfers for `window` and reports each batch to the claimant at once.
async fn reporter(topology: Topology, mut reports: mpsc::Receiver<Report>, window: Duration) {
    while let Some(first) = reports.recv().await {
        tokio::time::sleep(window).await;
        let mut batch = vec![first];
        while let Ok(more) = reports.try_recv() {
            batch.push(more);
        }
        let done = batch.iter().map(|(d, _)| d.clone()).collect();
        let result = topology
            .submit(RingChange::Complete(done), false)
            .await
            .map(|_| ());
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
    }
}

/// Starts the transfer task of this node; it ends when `shutdown` completes (running
/// transfers are abandoned and restart from the beginning on the next start: merges are
/// idempotent).
pub fn spawn(
    topology: Topology,
    source: Arc<dyn PartitionSource>,
    peers: Arc<dyn ReplicaPeers>,
    config: TransferConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let turns = Arc::new(tokio::sync::Semaphore::new(config.max_parallel.max(1)));
    let (reports, inbox) = mpsc::channel(1024);
    let report_window = config.report_window;
    let ctx = Ctx {
        topology,
        source,
        peers,
        config,
        turns,
        reports,
    };
    tokio::spawn(async move {
        let me = ctx.topology.local().id.clone();
        let mut maps = ctx.topology.subscribe();
        let running: Arc<Mutex<BTreeSet<TaskKey>>> = Arc::default();
        let mut jobs = JoinSet::new();
        let reporting = tokio::spawn(reporter(ctx.topology.clone(), inbox, report_window));
        tokio::pin!(shutdown);
        loop {
            let wanted = outgoing(&maps.borrow_and_update(), &me);
            {
                let mut busy = running.lock().unwrap_or_else(PoisonError::into_inner);
                let new: Vec<TransferTask> = to_start(&wanted, &busy).cloned().collect();
                for task in new {
                    busy.insert(task.key());
                    let (ctx, running) = (ctx.clone(), Arc::clone(&running));
                    jobs.spawn(async move {
                        let key = task.key();
                        run_one(&ctx, task).await;
                        running
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&key);
                    });
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                changed = maps.changed() => if changed.is_err() { break },
                Some(_) = jobs.join_next() => {}
            }
        }
        jobs.shutdown().await;
        reporting.abort();
        let _ = reporting.await;
    })
}

fn still_pending(ctx: &Ctx, task: &TransferTask) -> bool {
    let map = ctx.topology.map();
    let me = &ctx.topology.local().id;
    map.pending().get(&task.partition).is_some_and(|l| {
        l.iter()
            .any(|t| &t.from == me && t.to == task.to && t.since == task.since)
    })
}

/// Streams, verifies and reports one transfer, retrying until the map no longer lists it.
async fn run_one(ctx: &Ctx, task: TransferTask) {
    tokio::time::sleep(ctx.config.settle).await;
    while still_pending(ctx, &task) {
        // Closed only if the task is being torn down: nothing left to do then.
        let Ok(turn) = ctx.turns.acquire().await else {
            return;
        };
        if !still_pending(ctx, &task) {
            return;
        }
        let outcome = async {
            let rows = stream(ctx, &task).await?;
            let repaired = verify(ctx, &task).await?;
            let done = TransferDone {
                partition: task.partition,
                from: ctx.topology.local().id.clone(),
                to: task.to.clone(),
                since: task.since,
            };
            let (tx, rx) = oneshot::channel();
            ctx.reports
                .send((done, tx))
                .await
                .map_err(|_| KvError::Closed)?;
            rx.await.map_err(|_| KvError::Closed)??;
            Ok::<_, KvError>((rows, repaired))
        }
        .await;
        match outcome {
            Ok((rows, repaired)) => {
                tracing::info!(partition = %task.partition, to = %task.to, rows, repaired, "partition transfer complete");
                return;
            }
            Err(e) => {
                tracing::warn!(partition = %task.partition, to = %task.to, error = %e, "partition transfer failed; retrying");
                // Let others stream while this one waits.
                drop(turn);
                tokio::time::sleep(ctx.config.retry_every).await;
            }
        }
    }
}

/// Pages through the partition; `each` handles one byte-bounded run of a page. Returns the rows
/// seen.
async fn pages<F, Fut>(ctx: &Ctx, task: &TransferTask, mut each: F) -> Result<u64, KvError>
where
    F: FnMut(Vec<RowEntry>) -> Fut,
    Fut: Future<Output = Result<(), KvError>>,
{
    let mut after: Option<(u64, Bytes)> = None;
    let mut rows = 0u64;
    loop {
        let page = ctx
            .source
            .page(task.range.clone(), after.clone(), ctx.config.page_rows)
            .await?;
        let Some(last) = page.last() else {
            return Ok(rows);
        };
        after = Some((last.hash, last.key.clone()));
        rows += page.len() as u64;
        let full = page.len() >= ctx.config.page_rows;
        for run in split_by_bytes(page, ctx.config.max_batch_bytes) {
            each(run).await?;
        }
        if !full {
            return Ok(rows);
        }
    }
}

/// First pass: every row of the partition, merged into the new holder.
async fn stream(ctx: &Ctx, task: &TransferTask) -> Result<u64, KvError> {
    pages(ctx, task, |page| async move {
        let items = page.into_iter().map(|r| (r.key, r.object)).collect();
        ctx.peers.merge(&task.to, items, None).await
    })
    .await
}

/// Second pass, the completion check: read every local row back from the new holder and
/// require that it holds it (merging ours would change nothing). Rows written since the first
/// pass are merged now; a row still missing after that fails the transfer. Returns how many
/// rows the second pass had to send.
async fn verify(ctx: &Ctx, task: &TransferTask) -> Result<u64, KvError> {
    let repaired = Arc::new(std::sync::atomic::AtomicU64::new(0));
    pages(ctx, task, |page| {
        let repaired = Arc::clone(&repaired);
        async move {
            let keys: Vec<Bytes> = page.iter().map(|r| r.key.clone()).collect();
            let theirs = ctx.peers.read(&task.to, keys.clone()).await?;
            let missing: Vec<(Bytes, crate::model::Object)> = page
                .iter()
                .zip(&theirs)
                .filter(|(r, t)| !holds(t.as_ref(), &r.object))
                .map(|(r, _)| (r.key.clone(), r.object.clone()))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            repaired.fetch_add(missing.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let check: Vec<Bytes> = missing.iter().map(|(k, _)| k.clone()).collect();
            ctx.peers.merge(&task.to, missing.clone(), None).await?;
            let after = ctx.peers.read(&task.to, check).await?;
            let still = missing
                .iter()
                .zip(&after)
                .filter(|((_, o), t)| !holds(t.as_ref(), o))
                .count();
            if still > 0 {
                return Err(KvError::Internal(format!(
                    "{} still lacks {still} rows of {} after merging them",
                    task.to, task.partition
                )));
            }
            Ok(())
        }
    })
    .await?;
    Ok(repaired.load(std::sync::atomic::Ordering::Relaxed))
}

//! The single writer thread: group commit.
//!
//! It blocks for one request, then drains whatever else is queued (up to a request and a byte
//! budget), applies them all in one transaction, commits once (one WAL sync in FULL mode), and
//! only then acknowledges every waiter. Under load, the queue fills while a commit syncs, so the
//! next batch is larger: throughput grows with concurrency instead of being capped at one sync per
//! write. A request whose operations fail in storage is rolled back alone (a savepoint around it);
//! the rest of the batch commits.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use rusqlite::Connection;

use super::super::api::{OpResult, WriteDone, WriteOp, WriteRequest, WriterStats};
use super::super::apply::apply_op;
use super::rows::SqlRows;
use super::schema::save_dot_counter;
use crate::error::KvError;
use crate::model::{DotIssuer, LocalWrite};

/// What the writer thread receives.
pub(crate) enum Command {
    /// A request and its completion callback.
    Write(WriteRequest, WriteDone),
    /// Finish what is queued before this, then stop.
    Close,
}

/// State shared between the writer thread and the store handle.
#[derive(Debug, Default)]
pub(crate) struct WriterShared {
    /// Counters, updated once per commit.
    pub(crate) stats: Mutex<WriterStats>,
    /// Requests submitted and not yet taken into a batch.
    pub(crate) queue_depth: AtomicU64,
}

/// Limits of one group commit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchLimits {
    /// Most requests per commit.
    pub(crate) requests: usize,
    /// Most payload bytes per commit.
    pub(crate) bytes: usize,
    /// WAL size (frames) at which the writer finishes a checkpoint itself so the WAL restarts.
    pub(crate) checkpoint_pages: u64,
}

/// What the last checkpoint saw, shared by the checkpointer and the writer.
#[derive(Debug, Default)]
pub(crate) struct WalState {
    /// Frames in the WAL.
    pub(crate) frames: AtomicU64,
    /// Frames already copied into the database file.
    pub(crate) backfilled: AtomicU64,
}

impl WalState {
    /// Runs a PASSIVE checkpoint on `conn` and records the result.
    pub(crate) fn checkpoint(&self, conn: &Connection) -> Result<(), rusqlite::Error> {
        let (frames, backfilled): (i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })?;
        self.frames.store(frames.max(0) as u64, Ordering::Relaxed);
        self.backfilled
            .store(backfilled.max(0) as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Makes committed WAL frames durable before they are acknowledged (FULL durability).
///
/// In WAL mode a commit appends frames (and, after a restart, a new header) to one file, and
/// recovery replays every frame up to the last valid commit record. So once `fdatasync` of that
/// file returns after a COMMIT, the commit survives power loss: exactly what
/// `synchronous=FULL` promises, without flushing the file's timestamps through the filesystem
/// journal on every commit as the `fsync` of the bundled SQLite build does.
#[derive(Debug)]
pub(crate) struct WalSync {
    /// The `-wal` file.
    path: PathBuf,
    /// Opened on first use: the file exists only once something was written.
    file: Option<File>,
}

impl WalSync {
    /// Syncs the WAL at `path`.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    /// `fdatasync`s the WAL. A WAL that does not exist yet holds nothing to sync.
    fn sync(&mut self) -> std::io::Result<()> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

/// Backlog under which the writer's own checkpoint is cheap (the checkpointer did the rest).
const CHEAP_BACKLOG: u64 = 1024;

/// Rough payload size of a request, for the batch byte budget.
fn request_bytes(r: &WriteRequest) -> usize {
    r.ops
        .iter()
        .map(|op| match op {
            WriteOp::Local {
                key,
                write: LocalWrite::Put { value, .. },
            } => key.len() + value.len(),
            WriteOp::Local { key, .. } => key.len(),
            WriteOp::Merge { key, object } | WriteOp::StoreHint { key, object, .. } => {
                key.len()
                    + object
                        .siblings()
                        .iter()
                        .map(|s| s.value.len())
                        .sum::<usize>()
            }
            _ => 0,
        })
        .sum::<usize>()
        + 64
}

/// The writer thread's body. Returns when [`Command::Close`] arrives or every sender is gone.
pub(crate) fn run(
    conn: Connection,
    rx: Receiver<Command>,
    mut issuer: DotIssuer,
    shared: &WriterShared,
    limits: BatchLimits,
    wal: &WalState,
    mut wal_sync: Option<WalSync>,
) {
    let mut closing = false;
    while !closing {
        let Ok(first) = rx.recv() else { break };
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Write(req, done) => {
                    shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    bytes += request_bytes(&req);
                    batch.push((req, done));
                }
                Command::Close => {
                    closing = true;
                    break;
                }
            }
            if batch.len() >= limits.requests || bytes >= limits.bytes {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            commit_batch(&conn, &mut issuer, batch, shared, wal_sync.as_mut());
            finish_checkpoint(&conn, wal, limits.checkpoint_pages);
        }
    }
    // Anything that raced in after Close is refused, never silently dropped.
    while let Ok(cmd) = rx.try_recv() {
        if let Command::Write(_, done) = cmd {
            shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
            done(Err(KvError::Closed));
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final checkpoint failed; the WAL will be replayed on next open");
    }
}

/// Keeps the WAL bounded. The checkpointer thread copies frames concurrently, but under a steady
/// stream of commits it never catches up with the last frame, and SQLite restarts the WAL only
/// after a checkpoint that copied everything. So once the WAL is large and the checkpointer has
/// copied nearly all of it, the writer (between commits, so nothing new arrives) copies the small
/// rest itself; its next transaction then starts the WAL over. If the checkpointer falls far
/// behind, the writer does the whole checkpoint rather than let the WAL grow without bound.
fn finish_checkpoint(conn: &Connection, wal: &WalState, checkpoint_pages: u64) {
    let frames = wal.frames.load(Ordering::Relaxed);
    let backlog = frames.saturating_sub(wal.backfilled.load(Ordering::Relaxed));
    if frames >= checkpoint_pages && (backlog <= CHEAP_BACKLOG || frames >= 8 * checkpoint_pages) {
        if let Err(e) = wal.checkpoint(conn) {
            tracing::warn!(error = %e, "writer checkpoint failed");
        }
        // Until the checkpointer looks again, assume the WAL restarted.
        wal.frames.store(0, Ordering::Relaxed);
    }
}

/// One group commit: apply every request, commit once, then acknowledge.
fn commit_batch(
    conn: &Connection,
    issuer: &mut DotIssuer,
    batch: Vec<(WriteRequest, WriteDone)>,
    shared: &WriterShared,
    wal_sync: Option<&mut WalSync>,
) {
    let started = Instant::now();
    let n_requests = batch.len() as u64;
    let mut n_ops = 0u64;
    let counter_before = issuer.last();
    let mut outcomes: Vec<(WriteDone, Result<Vec<OpResult>, KvError>)> =
        Vec::with_capacity(batch.len());

    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = KvError::from(e);
        for (_, done) in batch {
            done(Err(e.clone()));
        }
        return;
    }
    let mut pending = batch.into_iter();
    for (req, done) in pending.by_ref() {
        n_ops += req.ops.len() as u64;
        let outcome = apply_request(conn, issuer, req);
        let failed = outcome.as_ref().err().cloned();
        outcomes.push((done, outcome));
        if let Some(e) = failed.filter(|_| conn.is_autocommit()) {
            // Some errors (disk full, I/O) make SQLite roll back the whole transaction. Then
            // nothing of this batch will commit: fail every request rather than letting later
            // ones run (and commit) outside it.
            tracing::error!(error = %e, "storage error aborted the group commit; every request in it fails");
            for (done, _) in outcomes {
                done(Err(e.clone()));
            }
            for (_, done) in pending {
                done(Err(e.clone()));
            }
            return;
        }
    }
    let commit = (|| -> Result<Instant, KvError> {
        if issuer.last() != counter_before {
            save_dot_counter(conn, issuer.last())?;
        }
        let sync_started = Instant::now();
        conn.execute_batch("COMMIT")?;
        Ok(sync_started)
    })();
    let sync_started = match commit {
        Ok(at) => at,
        Err(e) => {
            tracing::error!(error = %e, requests = n_requests, "group commit failed; every request in it fails");
            let _ = conn.execute_batch("ROLLBACK");
            for (done, _) in outcomes {
                done(Err(e.clone()));
            }
            return;
        }
    };
    if let Some(Err(e)) = wal_sync.map(WalSync::sync) {
        // Committed but not known to be durable: the outcome is unknown, so every request
        // fails rather than being acknowledged.
        tracing::error!(error = %e, requests = n_requests, "syncing the WAL failed; every request of the group commit fails");
        let e = KvError::from(e);
        for (done, _) in outcomes {
            done(Err(e.clone()));
        }
        return;
    }
    let sync = sync_started.elapsed();
    let elapsed = started.elapsed();
    for (done, outcome) in outcomes {
        done(outcome);
    }
    record(
        shared,
        n_requests,
        n_ops,
        elapsed.as_micros() as u64,
        sync.as_micros() as u64,
    );
    metrics::histogram!("kv_group_commit_requests").record(n_requests as f64);
    metrics::histogram!("kv_group_commit_seconds").record(elapsed.as_secs_f64());
    metrics::gauge!("kv_writer_queue_depth").set(shared.queue_depth.load(Ordering::Relaxed) as f64);
}

/// Applies one request inside the batch transaction. A storage failure in a multi-operation
/// request rolls back to the savepoint taken before it, so the request fails as a unit and the
/// rest of the batch is unaffected. (Most single operations are a single SQL write statement,
/// which SQLite already makes atomic on its own; hint operations also update the per-target
/// backlog, so they are guarded too.)
fn apply_request(
    conn: &Connection,
    issuer: &mut DotIssuer,
    req: WriteRequest,
) -> Result<Vec<OpResult>, KvError> {
    let guarded = req.ops.len() > 1
        || req
            .ops
            .iter()
            .any(|op| matches!(op, WriteOp::StoreHint { .. } | WriteOp::DropHint { .. }));
    if guarded {
        conn.prepare_cached("SAVEPOINT request")?.execute([])?;
    }
    let mut rows = SqlRows { conn };
    let mut results = Vec::with_capacity(req.ops.len());
    for op in req.ops {
        match apply_op(&mut rows, issuer, op, req.now, req.siblings) {
            Ok(r) => results.push(r),
            Err(e) => {
                if guarded {
                    let _ = conn.execute_batch("ROLLBACK TO request; RELEASE request");
                }
                return Err(e);
            }
        }
    }
    if guarded {
        conn.prepare_cached("RELEASE request")?.execute([])?;
    }
    Ok(results)
}

/// Updates the counters after a commit.
fn record(shared: &WriterShared, requests: u64, ops: u64, micros: u64, sync_micros: u64) {
    let mut s = shared.stats.lock().unwrap_or_else(PoisonError::into_inner);
    s.commits += 1;
    s.requests += requests;
    s.ops += ops;
    s.batch_histogram[WriterStats::bucket(requests)] += 1;
    s.max_batch = s.max_batch.max(requests);
    s.commit_micros += micros;
    s.sync_micros += sync_micros;
}

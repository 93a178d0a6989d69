//! The SQLite engine: WAL, one group-committing writer thread, a pool of reader threads, and a
//! checkpointer thread, all with their own connections.

mod config;
mod reader;
mod rows;
mod schema;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

pub use config::{Durability, SqliteConfig};

use super::api::{ReadJob, Storage, WriteDone, WriteRequest, WriterStats};
use crate::clock::{Clock, SystemClock};
use crate::error::KvError;
use crate::model::{ActorId, DotIssuer};
use writer::{BatchLimits, Command, WalState, WalSync, WriterShared};

/// How often the checkpointer copies new WAL frames into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);

/// Threads to join on close.
#[derive(Debug, Default)]
struct Threads {
    /// The writer.
    writer: Option<JoinHandle<()>>,
    /// The checkpointer.
    checkpointer: Option<JoinHandle<()>>,
    /// The readers.
    readers: Vec<JoinHandle<()>>,
}

/// A [`Storage`] on SQLite. Dropping it closes it (draining queued writes).
#[derive(Debug)]
pub struct SqliteStorage {
    /// The dot-issuing identity loaded from (or created in) the database.
    actor: ActorId,
    /// The commit durability in force.
    durability: Durability,
    /// Commands to the writer thread.
    writer_tx: RwLock<Option<Sender<Command>>>,
    /// Jobs for the reader threads.
    reader_tx: RwLock<Option<Sender<ReadJob>>>,
    /// Tells the checkpointer to stop.
    checkpoint_tx: Mutex<Option<SyncSender<()>>>,
    /// Counters shared with the writer.
    shared: Arc<WriterShared>,
    /// Set once `close` begins.
    closed: AtomicBool,
    /// Joined by `close`.
    threads: Mutex<Threads>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the store in `config.data_dir` and starts its threads.
    ///
    /// Opening after a crash is recovery: SQLite replays committed WAL frames and discards
    /// uncommitted ones, so the store holds exactly the acknowledged writes.
    ///
    /// # Errors
    /// Invalid settings, an unusable directory or database, or a database of another node.
    pub fn open(config: SqliteConfig) -> Result<Self, KvError> {
        config.validate().map_err(KvError::Config)?;
        std::fs::create_dir_all(&config.data_dir)?;
        let mut conn = schema::open_connection(&config, true)?;
        let now = SystemClock.now().0 as i64;
        let identity = schema::migrate_and_identify(&mut conn, &config.node_id, now)?;
        let shared = Arc::new(WriterShared::default());
        let limits = BatchLimits {
            requests: config.max_batch_requests,
            bytes: config.max_batch_bytes,
            checkpoint_pages: u64::from(config.checkpoint_pages),
        };
        let wal = Arc::new(WalState::default());

        let (checkpoint_tx, checkpoint_rx) = mpsc::sync_channel(1);
        let checkpointer_conn = schema::open_connection(&config, true)?;
        let checkpointer_wal = Arc::clone(&wal);
        let checkpointer = spawn("kv-checkpoint", move || {
            checkpoint_loop(checkpointer_conn, checkpoint_rx, &checkpointer_wal)
        })?;

        let (writer_tx, writer_rx) = mpsc::channel();
        let wal_sync = match config.durability {
            Durability::Full => Some(WalSync::new(schema::wal_path(&config.data_dir))),
            Durability::Normal => None,
        };
        let issuer = DotIssuer::new(identity.actor, identity.dot_counter);
        let writer_shared = Arc::clone(&shared);
        let writer = spawn("kv-writer", move || {
            writer::run(
                conn,
                writer_rx,
                issuer,
                &writer_shared,
                limits,
                &wal,
                wal_sync,
            );
        })?;

        let (reader_tx, reader_rx) = mpsc::channel::<ReadJob>();
        let reader_rx = Arc::new(Mutex::new(reader_rx));
        let files = vec![
            schema::database_path(&config.data_dir),
            schema::wal_path(&config.data_dir),
        ];
        let mut readers = Vec::with_capacity(config.readers);
        for i in 0..config.readers {
            let conn = schema::open_connection(&config, false)?;
            let rx = Arc::clone(&reader_rx);
            let files = files.clone();
            readers.push(spawn(&format!("kv-reader-{i}"), move || {
                reader::run(conn, rx, files)
            })?);
        }

        Ok(Self {
            actor: identity.actor,
            durability: config.durability,
            writer_tx: RwLock::new(Some(writer_tx)),
            reader_tx: RwLock::new(Some(reader_tx)),
            checkpoint_tx: Mutex::new(Some(checkpoint_tx)),
            shared,
            closed: AtomicBool::new(false),
            threads: Mutex::new(Threads {
                writer: Some(writer),
                checkpointer: Some(checkpointer),
                readers,
            }),
        })
    }
}

/// Spawns a named thread.
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, KvError> {
    Ok(std::thread::Builder::new().name(name.to_owned()).spawn(f)?)
}

/// Copies WAL frames into the database file in the background, every [`CHECKPOINT_INTERVAL`]
/// (PASSIVE: never blocks the writer or readers), and reports how far it got. Stops when the
/// store drops its sender.
fn checkpoint_loop(conn: rusqlite::Connection, rx: Receiver<()>, wal: &WalState) {
    loop {
        match rx.recv_timeout(CHECKPOINT_INTERVAL) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = wal.checkpoint(&conn) {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Storage for SqliteStorage {
    fn actor(&self) -> ActorId {
        self.actor
    }

    fn submit_write(&self, request: WriteRequest, done: WriteDone) {
        let guard = self
            .writer_tx
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = guard.as_ref() else {
            return done(Err(KvError::Closed));
        };
        self.shared.queue_depth.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::SendError(Command::Write(_, done))) =
            tx.send(Command::Write(request, done))
        {
            self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
            done(Err(KvError::Closed));
        }
    }

    fn submit_read(&self, job: ReadJob) {
        let guard = self
            .reader_tx
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = guard.as_ref() {
            // If the readers are gone the job is dropped with its reply channel: `Closed`.
            let _ = tx.send(job);
        }
    }

    fn writer_stats(&self) -> WriterStats {
        let mut s = *self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.queue_depth = self.shared.queue_depth.load(Ordering::Relaxed);
        s
    }

    fn durability(&self) -> &'static str {
        match self.durability {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Checkpointer first, so that it cannot hold the checkpoint lock when the writer, after
        // draining and committing everything queued before Close, truncates the WAL.
        self.checkpoint_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = threads.checkpointer.take() {
            let _ = h.join();
        }
        if let Some(tx) = self
            .writer_tx
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = tx.send(Command::Close);
        }
        if let Some(h) = threads.writer.take() {
            let _ = h.join();
        }
        self.reader_tx
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        for h in threads.readers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for SqliteStorage {
    fn drop(&mut self) {
        self.close();
    }
}

//! The reader pool: a few threads, each with its own connection, sharing one job queue.
//!
//! A reader takes every job waiting (up to a small batch), runs them in one read transaction
//! (one snapshot, taken after the jobs were queued, so each sees every write acknowledged before
//! it was submitted), and goes back for more. WAL mode lets readers run while the writer commits.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;

use super::super::api::ReadJob;
use super::rows::SqlReadView;

/// Most jobs one reader takes into a single read transaction.
const READ_BATCH: usize = 16;

/// The reader thread's body; returns when the queue's sender is dropped.
pub(crate) fn run(conn: Connection, queue: Arc<Mutex<Receiver<ReadJob>>>, files: Vec<PathBuf>) {
    let disk_bytes = move || -> u64 {
        files
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    };
    loop {
        let jobs = {
            let rx = queue.lock().unwrap_or_else(PoisonError::into_inner);
            let Ok(first) = rx.recv() else { return };
            let mut jobs = vec![first];
            while jobs.len() < READ_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            jobs
        };
        // A failed BEGIN still lets each job run in autocommit mode; its own errors reach it.
        let in_tx = conn.execute_batch("BEGIN").is_ok();
        for job in jobs {
            let mut view = SqlReadView {
                conn: &conn,
                disk_bytes: &disk_bytes,
            };
            if catch_unwind(AssertUnwindSafe(|| job(&mut view))).is_err() {
                tracing::error!("a read job panicked; its caller sees the store as closed");
            }
        }
        if in_tx {
            let _ = conn.execute_batch("COMMIT");
        }
    }
}

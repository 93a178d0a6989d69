//! Settings of the SQLite engine.

use std::path::PathBuf;

/// How hard a commit works to survive failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The writer `fdatasync`s the WAL after every group commit and acknowledges only then, so
    /// an acknowledged write survives a process crash *and* a power loss or kernel panic (the
    /// guarantee of SQLite's `synchronous=FULL`).
    #[default]
    Full,
    /// No sync per commit (SQLite's `synchronous=NORMAL`: the WAL is synced only around
    /// checkpoints). An acknowledged write survives a process crash (kill -9), but the last
    /// commits before a power loss may be rolled back.
    Normal,
}

/// Settings of [`SqliteStorage`](super::SqliteStorage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteConfig {
    /// Directory holding `kv.sqlite3` and its WAL; created if missing.
    pub data_dir: PathBuf,
    /// The node name recorded in the database; opening it under another name is refused, so
    /// two nodes can never share (or swap) data directories by mistake.
    pub node_id: String,
    /// Commit durability.
    pub durability: Durability,
    /// Reader threads, each with its own connection.
    pub readers: usize,
    /// Most requests one group commit takes from the queue (bounds commit latency).
    pub max_batch_requests: usize,
    /// Most value bytes one group commit takes (bounds transaction size).
    pub max_batch_bytes: usize,
    /// Page cache of the writer connection, KiB.
    pub writer_cache_kib: u64,
    /// Page cache of each reader connection, KiB.
    pub reader_cache_kib: u64,
    /// Memory-mapped I/O size per connection, bytes (0 disables, the default). Off because
    /// SQLite unmaps a reader's whole map whenever it starts a read after any commit
    /// (`pagerBeginReadTransaction`), so under writes every read pays an `munmap` and fresh
    /// page faults; it pays only for stores that are not being written (docs/benchmarks.md).
    pub mmap_bytes: u64,
    /// WAL size in pages at which the writer completes a checkpoint so the WAL starts over
    /// (bounds the WAL file at roughly this many pages).
    pub checkpoint_pages: u32,
}

impl SqliteConfig {
    /// Defaults for a data directory and node name.
    pub fn new(data_dir: impl Into<PathBuf>, node_id: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            node_id: node_id.into(),
            durability: Durability::Full,
            readers: 2,
            max_batch_requests: 1024,
            max_batch_bytes: 32 * 1024 * 1024,
            writer_cache_kib: 64 * 1024,
            reader_cache_kib: 16 * 1024,
            mmap_bytes: 0,
            checkpoint_pages: 32_768,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id.is_empty() {
            return Err("node_id must not be empty".to_owned());
        }
        if self.readers == 0 || self.readers > 64 {
            return Err(format!("readers must be 1 to 64, not {}", self.readers));
        }
        if self.max_batch_requests == 0 {
            return Err("max_batch_requests must be at least 1".to_owned());
        }
        if self.max_batch_bytes == 0 {
            return Err("max_batch_bytes must be at least 1".to_owned());
        }
        if self.checkpoint_pages == 0 {
            return Err("checkpoint_pages must be at least 1".to_owned());
        }
        Ok(())
    }
}

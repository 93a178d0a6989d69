//! The node's request and reply types: plain Rust, independent of protobuf.

use std::time::Duration;

use bytes::Bytes;

use super::quorum::Quorum;
use crate::model::{KeyRange, Sibling, Timestamp, WriteMode};
use crate::storage::{DataStats, WriterStats};

/// One visible version of a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The bytes.
    pub bytes: Bytes,
    /// When it was written (coordinator's clock).
    pub written_at: Timestamp,
    /// When it expires, if it has a TTL.
    pub expires_at: Option<Timestamp>,
}

impl From<&Sibling> for Value {
    fn from(s: &Sibling) -> Self {
        Value {
            bytes: s.value.clone(),
            written_at: s.written_at,
            expires_at: s.expires_at,
        }
    }
}

/// What a read of one key returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The key.
    pub key: Bytes,
    /// Visible versions: empty when not found, several when writes were concurrent.
    pub values: Vec<Value>,
    /// The context token to send with the next write of this key.
    pub context: Bytes,
}

impl Versioned {
    /// True when some version is visible.
    pub fn found(&self) -> bool {
        !self.values.is_empty()
    }
}

/// A put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Put {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// Context token from a read; empty for a blind write.
    pub context: Bytes,
    /// Time to live.
    pub ttl: Option<Duration>,
    /// Causal or LWW; `None` uses the key's namespace default.
    pub mode: Option<WriteMode>,
    /// Replication options.
    pub quorum: Quorum,
    /// Return the visible siblings after the write.
    pub return_body: bool,
}

impl Put {
    /// A blind causal put of `value` under `key`.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            ..Self::default()
        }
    }

    /// Sets the context token from a previous read or write.
    pub fn with_context(mut self, context: impl Into<Bytes>) -> Self {
        self.context = context.into();
        self
    }

    /// Sets a time to live.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the write mode.
    pub fn with_mode(mut self, mode: WriteMode) -> Self {
        self.mode = Some(mode);
        self
    }
}

/// What a put returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// The context after the write.
    pub context: Bytes,
    /// Siblings the key holds now.
    pub sibling_count: usize,
    /// Visible siblings, if asked for.
    pub values: Vec<Value>,
}

/// What a delete returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The context after the delete.
    pub context: Bytes,
    /// Siblings the context did not cover (concurrent writes that survive the delete).
    pub remaining_siblings: usize,
}

/// A scan request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Which keys.
    pub range: KeyRange,
    /// From the previous page; empty to start.
    pub cursor: Bytes,
    /// Keys per page.
    pub page_size: usize,
    /// Leave values out.
    pub keys_only: bool,
}

/// One page of a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys in order, with values unless `keys_only`.
    pub entries: Vec<Versioned>,
    /// Continue with this; empty when done.
    pub next_cursor: Bytes,
}

/// A node's counters.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeStats {
    /// The node's name.
    pub node_id: String,
    /// The store's actor id.
    pub actor: String,
    /// Stored data.
    pub data: DataStats,
    /// The write path.
    pub writer: WriterStats,
    /// Time since the node started.
    pub uptime: Duration,
    /// "full", "normal" or "memory".
    pub durability: &'static str,
}

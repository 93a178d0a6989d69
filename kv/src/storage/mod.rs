//! Storage engines: the [`Storage`] contract, SQLite on disk, and the in-memory twin.
//!
//! Both engines resolve writes with the same pure model functions and pass the same conformance
//! suite (`tests/storage_conformance/`).

mod api;
mod apply;
mod ext;
mod memory;
mod sqlite;

pub use api::{
    Applied, DataStats, HintBacklog, HintEntry, OpResult, RangeSummary, ReadJob, ReadView,
    RowEntry, Storage, WriteDone, WriteOp, WriteRequest, WriterStats,
};
pub use ext::{Pending, StorageExt};
pub use memory::MemStorage;
pub use sqlite::{Durability, SqliteConfig, SqliteStorage};

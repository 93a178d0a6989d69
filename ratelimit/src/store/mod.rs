//! The keyed store: per-key state for many keys, sharded and bounded.

mod keyed;
mod shard;

pub use keyed::{KeyedStore, StoreConfig, StoreStats};

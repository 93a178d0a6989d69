//! The keyed store: per-key state for many keys, sharded and bounded.

mod key;
mod keyed;
mod shard;

pub use keyed::{KeyedStore, StoreConfig, StoreStats};

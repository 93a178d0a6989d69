//! The versioned data model, free of I/O: causality (dots, version vectors, objects with
//! siblings), write resolution, the context token, the storage codec, limits and the key space.
//!
//! Everything here is a pure function of its inputs, so each rule is tested in microseconds and
//! both storage engines (and, later, every replica of a cluster) decide identically.

mod codec;
mod context;
mod keyspace;
mod limits;
mod object;
mod time;
mod version;
mod wire;
mod write;

#[cfg(test)]
mod properties;

pub use codec::{decode_object, encode_object, row_digest};
pub use context::{ContextError, MAX_COUNTER, MAX_ENTRIES, decode_context, encode_context};
pub use keyspace::{
    HashRange, KeyRange, hash_to_sortable, key_hash, partition_hash_range, sortable_to_hash,
};
pub use limits::{LimitError, Limits};
pub use object::{Object, Sibling};
pub use time::Timestamp;
pub use version::{ActorId, Dot, VersionVector};
pub use wire::WireError;
pub use write::{
    DotIssuer, LocalWrite, Resolved, SiblingLimits, WriteMode, WriteRejection, resolve_local_write,
    resolve_merge,
};

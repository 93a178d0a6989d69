//! Unique, time-ordered 64-bit IDs in the Snowflake family, that never repeat: not under load, not
//! when the clock steps back, not after a restart with the clock set back.
//!
//! - A sans-IO generator ([`Generator::next`]`(now)`) over one packed atomic, with configurable
//!   [`Layout`]s (presets `classic`, `sonyflake`, `discord`), validation and a computed end of life.
//! - A thin runtime shell ([`IdGenerator`]): `try_next` never waits, `next_id().await` waits for the
//!   next tick on the tokio timer, and a persisted high-water mark reserved ahead of the clock by a
//!   background thread makes restarts safe ([`start`]).
//! - The `ringkit.idgen.v1` gRPC service ([`grpc`]) and a tower-http `MakeRequestId`
//!   ([`SnowflakeRequestId`]).
//!
//! ```
//! use ringkit_idgen::{GeneratorConfig, MemoryMarkStore, SystemClock, start};
//!
//! # fn main() -> Result<(), ringkit_idgen::Error> {
//! // Worker 7 on the classic layout; a real service uses `SqliteMarkStore`.
//! let handle = start(GeneratorConfig::default(), 7, SystemClock, MemoryMarkStore::new())?;
//! let ids = handle.generator();
//! let a = ids.next_blocking()?;
//! let b = ids.next_blocking()?;
//! assert!(b > a);
//! let d = b.decode(ids.layout())?;
//! assert_eq!(d.worker, 7);
//! println!("{b} = {} (base62) issued at {}", b.base62(), d.timestamp);
//! handle.shutdown()?; // seals the generator and persists the exact high-water mark
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`layout`]: bit layouts, presets, validation, end of life.
//! - [`id`] and `codec`: the [`Id`] type, compose/decode, decimal, base32 and base62 text.
//! - [`clock`]: the [`Clock`] trait, [`SystemClock`] and [`ManualClock`].
//! - [`coarse`]: [`CoarseClock`], the wall clock cached in an atomic (a 1 ns read), and why
//!   it is correct.
//! - [`core`]: the sans-IO [`Generator`] state machine: `next(now)`, batches, sealing.
//! - [`generator`]: [`IdGenerator`], the async/blocking shell with waits and metrics.
//! - [`reservation`]: [`start`], the renewer thread and [`IdGenHandle`] (restart safety).
//! - `ticker`: precise wake-ups at tick boundaries for async waiters (ADR 0202).
//! - [`store`]: [`MarkStore`] with SQLite and in-memory implementations.
//! - [`worker`]: worker ids from config, StatefulSet ordinals or a [`WorkerIdSource`].
//! - [`config`]: [`GeneratorConfig`] and [`ServerConfig`] (TOML).
//! - [`grpc`]: protobuf types, [`IdGenService`](grpc::IdGenService) and [`serve`](grpc::serve).
//! - [`request_id`]: [`SnowflakeRequestId`] for tower-http.
//! - [`metrics`]: metric names.

pub mod clock;
pub mod coarse;
mod codec;
pub mod config;
pub mod core;
mod error;
pub mod generator;
pub mod grpc;
pub mod id;
pub mod layout;
pub mod metrics;
pub mod request_id;
pub mod reservation;
pub mod store;
mod ticker;
pub mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use coarse::CoarseClock;
pub use codec::IdText;
pub use config::{GeneratorConfig, ServerConfig};
pub use core::{ClockPolicy, Generator, IdBatch, NextError, PendingReason};
pub use error::{Error, Result};
pub use generator::{GeneratorInfo, IdGenerator};
pub use id::{Decoded, Encoding, Id};
pub use layout::{FieldOrder, Layout};
pub use request_id::SnowflakeRequestId;
pub use reservation::{IdGenHandle, start};
pub use store::{MarkStore, MemoryMarkStore, SqliteMarkStore};
pub use worker::{FixedWorkerId, OrdinalWorkerId, WorkerConfig, WorkerIdSource};

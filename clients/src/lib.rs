//! Clients for the ringkit services.
//!
//! An application that calls ringkit needs only this crate: the client stubs generated from every
//! ringkit proto ([`pb`]), a [`connect`] helper with the defaults every ringkit RPC wants, and a
//! [`RingRouter`] that sends each key's request straight to the node that owns it. It links no
//! server code and no SQLite. The `ringctl` binary is a shell front end over the same stubs.
//!
//! ```no_run
//! use ringkit_clients::pb::idgen::v1::{NextIdRequest, id_gen_client::IdGenClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = ringkit_clients::connect("127.0.0.1:50051").await?;
//! let id = IdGenClient::new(channel).next_id(NextIdRequest {}).await?.into_inner().id;
//! println!("{id}");
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`pb`]: generated stubs and messages, one module per proto package.
//! - `connect`: dialling with a connect timeout and `TCP_NODELAY`.
//! - `router`: [`RingRouter`], a channel per member and the ring that picks one.
//! - `error`: [`ClientError`].

mod connect;
mod error;
pub mod pb;
mod router;

pub use connect::{CONNECT_TIMEOUT, connect, endpoint};
pub use error::ClientError;
pub use router::RingRouter;

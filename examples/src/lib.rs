//! Runnable programs that show each way ringkit is used.
//!
//! The programs are the examples of this package (`cargo run -p ringkit-examples --example NAME`)
//! and the `ringkit-local` binary, which runs every service on loopback with its data in SQLite
//! files: the README's run command.
//!
//! # Layout
//! - [`local`]: the local deployment that `ringkit-local` starts and its test checks.

pub mod local;

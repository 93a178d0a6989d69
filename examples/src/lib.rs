//! Runnable programs that show each way ringkit is used.
//!
//! The programs are the examples of this package; `cargo run -p ringkit-examples --example NAME`
//! runs one. This library is empty: it exists because a Cargo package needs a target of its own.

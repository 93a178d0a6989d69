//! Clients for the ringkit services.
//!
//! This crate will hold the generated gRPC stubs for every ringkit proto, ring-aware clients that
//! send each request straight to the node that owns its key, and the `ringctl` command-line tool.

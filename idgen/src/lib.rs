//! Unique, time-ordered 64-bit IDs in the Snowflake family.
//!
//! This crate will hold a sans-IO generator (`next(now)`), configurable layouts with presets
//! (classic, Sonyflake, Discord), restart safety through a persisted high-water mark, a
//! `ringkit.idgen.v1` gRPC service and a tower-http `MakeRequestId`. It is empty until that lands:
//! see the idgen issue.

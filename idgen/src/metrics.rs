//! Metric names, so the server, the docs and dashboards agree.
//!
//! Metrics go through the `metrics` facade: with no recorder installed they cost nothing, and
//! `idgen-server` installs a Prometheus one. The hot path records nothing; only waits, refusals and
//! served requests are counted.

/// Counter: IDs handed out by the gRPC service.
pub const IDS_ISSUED: &str = "idgen_ids_issued_total";
/// Counter, label `reason`: times a caller had to wait (see `PendingReason`).
pub const TICK_WAITS: &str = "idgen_tick_waits_total";
/// Counter: requests refused because the clock moved back beyond the tolerance.
pub const CLOCK_BACKWARDS: &str = "idgen_clock_backwards_total";
/// Gauge: the persisted high-water mark, Unix milliseconds.
pub const HIGH_WATER_MARK: &str = "idgen_high_water_mark_ms";
/// Counter: failed attempts to persist the high-water mark.
pub const MARK_ERRORS: &str = "idgen_mark_errors_total";
/// Gauge: the layout's end of life, Unix seconds, for an alert long before it comes.
pub const END_OF_LIFE: &str = "idgen_end_of_life_seconds";

/// Registers descriptions with the installed recorder (call once after installing it).
pub fn describe() {
    metrics::describe_counter!(IDS_ISSUED, "IDs handed out by the gRPC service");
    metrics::describe_counter!(
        TICK_WAITS,
        "Waits for the next tick, a restart mark or a reservation"
    );
    metrics::describe_counter!(
        CLOCK_BACKWARDS,
        "Requests refused: clock behind the last tick beyond tolerance"
    );
    metrics::describe_gauge!(HIGH_WATER_MARK, "Persisted high-water mark, Unix ms");
    metrics::describe_counter!(MARK_ERRORS, "Failed writes of the high-water mark");
    metrics::describe_gauge!(END_OF_LIFE, "The layout's end of life, Unix seconds");
}

//! The crate's one error type and its mapping to gRPC status codes.

use std::time::Duration;

/// Everything that can go wrong in `ringkit-idgen`.
///
/// Generator outcomes that are part of normal operation (a spent sequence, a clock behind the last
/// tick) are [`NextError`](crate::NextError) values from the sans-IO core; they become an `Error`
/// only when the async shell gives up on them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The layout cannot work: bits that do not fit, a zero tick, or a lifetime past any date.
    #[error("invalid layout: {0}")]
    InvalidLayout(String),

    /// A configuration value is out of range or missing.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The worker id does not fit the layout's worker bits; starting would corrupt other fields.
    #[error("worker id {worker} is out of range: the layout has {bits} worker bits (0..={max})")]
    WorkerOutOfRange {
        /// The refused worker id.
        worker: u64,
        /// The layout's worker bits.
        bits: u32,
        /// The largest worker id the layout holds.
        max: u64,
    },

    /// No worker id could be found (no ordinal in the host name, lease refused, ...).
    #[error("cannot determine the worker id: {0}")]
    WorkerId(String),

    /// Text given as an ID is not a valid ID in the stated encoding.
    #[error("malformed id {input:?}: {reason}")]
    MalformedId {
        /// The text as received (truncated to 64 characters).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A batch or chunk size outside the accepted range.
    #[error("invalid count {count}: it must be between 1 and {max}")]
    InvalidCount {
        /// The requested count.
        count: u64,
        /// The largest accepted count.
        max: u64,
    },

    /// The clock is further behind the last issued tick than the configured tolerance, so issuing
    /// would risk a duplicate. Fix the clock (NTP) or wait: the generator resumes by itself.
    #[error(
        "clock moved backwards by {by:?}, more than the tolerance of {tolerance:?}; refusing to issue"
    )]
    ClockBackwards {
        /// How far the clock is behind the last issued tick.
        by: Duration,
        /// The configured tolerance.
        tolerance: Duration,
    },

    /// The layout's time field is exhausted (or the clock is before the epoch): no ID can be made.
    #[error("the clock is outside the layout's lifetime (epoch to end of life)")]
    OutsideLifetime,

    /// The generator waited longer than `max_wait` (the high-water mark reservation is behind, most
    /// likely because the store cannot be written, or a restart is waiting out its reserved mark).
    #[error("no id could be issued within {0:?}: {1}")]
    Unavailable(Duration, &'static str),

    /// The generator was shut down; its final high-water mark is persisted.
    #[error("the generator is shut down")]
    Shutdown,

    /// The high-water mark store failed.
    #[error("high-water mark store: {0}")]
    Store(#[from] rusqlite::Error),

    /// A file or socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),

    /// The gRPC transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        let msg = err.to_string();
        match err {
            Error::MalformedId { .. } | Error::InvalidCount { .. } => Self::invalid_argument(msg),
            Error::InvalidLayout(_)
            | Error::InvalidConfig(_)
            | Error::WorkerOutOfRange { .. }
            | Error::WorkerId(_) => Self::failed_precondition(msg),
            Error::ClockBackwards { .. } | Error::Unavailable(..) | Error::Shutdown => {
                Self::unavailable(msg)
            }
            Error::OutsideLifetime => Self::failed_precondition(msg),
            Error::Store(_) | Error::Io(_) | Error::Transport(_) => Self::internal(msg),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

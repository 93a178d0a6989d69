//! The crate's one error type, and how each variant reaches a gRPC caller.

use std::time::Duration;

/// Everything that can go wrong in this crate. Messages say what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request named a domain no policy defines.
    #[error("unknown domain `{domain}`: the policy defines {known}")]
    UnknownDomain {
        /// The domain asked for.
        domain: String,
        /// The domains that exist, listed for the message.
        known: String,
    },
    /// The request had no domain.
    #[error("the domain is empty: every request names the policy domain to check against")]
    EmptyDomain,
    /// The request had no descriptor at all.
    #[error("no descriptors: send at least one descriptor with at least one key/value entry")]
    NoDescriptors,
    /// A descriptor had no entries.
    #[error("descriptor {index} is empty: give it at least one key/value entry")]
    EmptyDescriptor {
        /// Position of the descriptor in the request.
        index: usize,
    },
    /// A descriptor entry had an empty key.
    #[error("descriptor {index}, entry {entry}: the key is empty")]
    EmptyKey {
        /// Position of the descriptor in the request.
        index: usize,
        /// Position of the entry in the descriptor.
        entry: usize,
    },
    /// A descriptor whose encoded key is too long (keys are stored per client: bounded).
    #[error(
        "descriptor {index} is {len} bytes long; the maximum is {max} (domain, keys and values together)"
    )]
    DescriptorTooLong {
        /// Position of the descriptor in the request.
        index: usize,
        /// Its encoded length.
        len: usize,
        /// [`crate::check::MAX_KEY_BYTES`].
        max: usize,
    },
    /// A cost (hits addend) beyond what a counter can hold.
    #[error("cost {cost} is above the maximum {max} a single check may carry")]
    CostOverflow {
        /// The cost asked for.
        cost: u64,
        /// [`crate::algorithm::MAX_COST`].
        max: u64,
    },
    /// A limit's parameters are unusable (zero limit, zero window, ...).
    #[error("invalid limit: {0}")]
    InvalidLimit(String),
    /// A policy file (or policy text) was rejected; the previous policy stays in force.
    #[error("{0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// A policy file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    PolicyIo {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A configuration value (server, cluster, layer) is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The remote rate-limit service (or a cluster peer) failed or answered nonsense.
    #[error("rate-limit backend unavailable: {0}")]
    Unavailable(String),
    /// The remote rate-limit service did not answer in time.
    #[error("rate-limit backend did not answer within {0:?}")]
    Timeout(Duration),
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::UnknownDomain { .. }
            | Error::EmptyDomain
            | Error::NoDescriptors
            | Error::EmptyDescriptor { .. }
            | Error::EmptyKey { .. }
            | Error::DescriptorTooLong { .. }
            | Error::CostOverflow { .. }
            | Error::InvalidLimit(_)
            | Error::Policy(_)
            | Error::Config(_) => tonic::Status::invalid_argument(msg),
            Error::PolicyIo { .. } => tonic::Status::failed_precondition(msg),
            Error::Unavailable(_) => tonic::Status::unavailable(msg),
            Error::Timeout(_) => tonic::Status::deadline_exceeded(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_invalid_argument() {
        let s: tonic::Status = Error::EmptyDescriptor { index: 2 }.into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().contains("descriptor 2"));
        let s: tonic::Status = Error::Timeout(Duration::from_millis(5)).into();
        assert_eq!(s.code(), tonic::Code::DeadlineExceeded);
    }
}

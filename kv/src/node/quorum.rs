//! Replication options on requests: validated now, honoured by a single node trivially.

use super::config::QuorumDefaults;
use crate::error::KvError;

/// Most replicas a request may ask for.
pub const MAX_N: u32 = 16;

/// Whether fallback nodes may stand in for unreachable primaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QuorumMode {
    /// Fallbacks hold hinted copies and count (Dynamo's sloppy quorum).
    #[default]
    Sloppy,
    /// Only primary replicas count.
    Strict,
}

/// N/R/W as a request gives them; zero means "default".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quorum {
    /// Replicas.
    pub n: u32,
    /// Read quorum.
    pub r: u32,
    /// Write quorum.
    pub w: u32,
    /// Sloppy or strict.
    pub mode: QuorumMode,
}

impl Quorum {
    /// Fills defaults and checks `1 <= R, W <= N <= MAX_N`.
    ///
    /// On a single node the one local replica is every replica of every key, so any valid
    /// quorum is met by the local, durable operation.
    ///
    /// # Errors
    /// [`KvError::InvalidArgument`] naming the values.
    pub fn resolve(self, defaults: QuorumDefaults) -> Result<Quorum, KvError> {
        let pick = |v: u32, d: u32| if v == 0 { d } else { v };
        let n = pick(self.n, defaults.n);
        let r = pick(self.r, defaults.r.min(n));
        let w = pick(self.w, defaults.w.min(n));
        if n > MAX_N {
            return Err(KvError::InvalidArgument(format!(
                "quorum n={n} is above the maximum of {MAX_N}"
            )));
        }
        if r > n || w > n {
            return Err(KvError::InvalidArgument(format!(
                "quorum needs r <= n and w <= n (got n={n}, r={r}, w={w})"
            )));
        }
        Ok(Quorum {
            n,
            r,
            w,
            mode: self.mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_and_bad_values_are_rejected() {
        let d = QuorumDefaults::default();
        let q = Quorum::default()
            .resolve(d)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((q.n, q.r, q.w), (3, 2, 2));
        let one = Quorum {
            n: 1,
            ..Quorum::default()
        }
        .resolve(d)
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((one.n, one.r, one.w), (1, 1, 1));
        assert!(
            Quorum {
                n: 3,
                r: 4,
                ..Quorum::default()
            }
            .resolve(d)
            .is_err()
        );
        assert!(
            Quorum {
                n: 17,
                ..Quorum::default()
            }
            .resolve(d)
            .is_err()
        );
    }
}

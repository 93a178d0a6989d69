//! Settings of hinted handoff.

use std::time::Duration;

/// How the handoff task paces itself. `Default` is the cluster's documented behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoffConfig {
    /// How often the task re-reads the hint backlog and retries targets that are due; also how
    /// long a target waits after a batch that was not full.
    pub interval: Duration,
    /// Most hints in one batch (one `merge` call to the target).
    pub batch: usize,
    /// Most encoded bytes (keys and values) in one batch, so a batch of large objects stays
    /// well under the internal message limit. A single hint larger than this still goes, alone.
    pub batch_bytes: usize,
    /// Targets receiving a batch at the same time.
    pub max_concurrent: usize,
    /// Wait after the first failed batch; doubles with each further failure.
    pub backoff_min: Duration,
    /// Longest wait between attempts to a target that keeps failing.
    pub backoff_max: Duration,
    /// Bound on one batch (read, send, drop): a stuck call must not stall that target forever.
    pub batch_timeout: Duration,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            batch: 256,
            batch_bytes: 16 * 1024 * 1024,
            max_concurrent: 2,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            batch_timeout: Duration::from_secs(30),
        }
    }
}

impl HandoffConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("hints interval must be positive".to_owned());
        }
        if self.batch == 0 || self.batch > 10_000 {
            return Err(format!(
                "hints batch must be 1 to 10000, not {}",
                self.batch
            ));
        }
        if self.batch_bytes == 0 {
            return Err("hints batch_bytes must be at least 1".to_owned());
        }
        if self.max_concurrent == 0 {
            return Err("hints max_concurrent must be at least 1".to_owned());
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return Err(format!(
                "hints backoff must satisfy 0 < backoff_min <= backoff_max, not {:?} and {:?}",
                self.backoff_min, self.backoff_max
            ));
        }
        if self.batch_timeout.is_zero() {
            return Err("hints batch_timeout must be positive".to_owned());
        }
        Ok(())
    }

    /// The wait after `failures` failed batches in a row (`failures >= 1`).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.backoff_min
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_batch_256() {
        let c = HandoffConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.batch, 256);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let bad = [
            HandoffConfig {
                batch: 0,
                ..HandoffConfig::default()
            },
            HandoffConfig {
                interval: Duration::ZERO,
                ..HandoffConfig::default()
            },
            HandoffConfig {
                backoff_min: Duration::from_secs(60),
                ..HandoffConfig::default()
            },
            HandoffConfig {
                max_concurrent: 0,
                ..HandoffConfig::default()
            },
        ];
        for (c, field) in bad
            .iter()
            .zip(["batch", "interval", "backoff", "max_concurrent"])
        {
            let err = c.validate().err().unwrap_or_default();
            assert!(err.contains(field), "{err:?} should name {field}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = HandoffConfig {
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(3),
            ..HandoffConfig::default()
        };
        let waits: Vec<u64> = (1..=6).map(|f| c.backoff(f).as_millis() as u64).collect();
        assert_eq!(waits, vec![500, 1000, 2000, 3000, 3000, 3000]);
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(3));
    }
}

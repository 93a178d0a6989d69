//! [`MembershipConfig`]: SWIM timings, with defaults that detect a failure within two seconds.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use crate::HashRingError;

/// SWIM timings and sizes. Plain fields, [`Default`] for a LAN cluster, [`validate`] before use.
///
/// Detection time is about `probe_period` (until some member probes the dead one, less in larger
/// clusters where many probe it) + `probe_period` (the failed probe cycle) +
/// `suspect_to_down_after`, plus the gossip that spreads the verdict; with the defaults
/// 0.2 + 0.2 + 0.8 = 1.2 s before spreading, leaving room under the 2 s the cluster promises on a
/// loaded machine (measured figures: docs/benchmarks.md, "## kv").
///
/// [`validate`]: Self::validate
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// Every period each member pings one other member (round robin in random order).
    pub probe_period: Duration,
    /// How long a direct ping may take before others are asked to ping indirectly; must be
    /// well under `probe_period`.
    pub probe_rtt: Duration,
    /// Members asked to ping a silent member on our behalf (guards against one bad link).
    pub indirect_probes: usize,
    /// How long a suspected member has to refute before it is declared down.
    pub suspect_to_down_after: Duration,
    /// How many times each update is piggybacked before it is dropped from the backlog.
    pub max_transmissions: u8,
    /// Periodic gossip (spreads updates faster than piggybacking alone).
    pub gossip_every: Duration,
    /// Members each periodic gossip goes to.
    pub gossip_fanout: usize,
    /// Periodic join request to a random member: merges clusters that formed apart.
    pub announce_every: Duration,
    /// Periodic join request to members believed down: heals partitions, since both sides of
    /// a partition declare each other down.
    pub announce_down_every: Duration,
    /// While this node knows no live member, it asks every seed to let it in this often.
    pub rejoin_every: Duration,
    /// How long a down identity is remembered (so its stale updates are refused).
    pub remove_down_after: Duration,
    /// Largest datagram sent or accepted, in bytes (1400 keeps clear of a 1500-byte MTU).
    pub max_packet_size: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(200),
            probe_rtt: Duration::from_millis(100),
            indirect_probes: 3,
            suspect_to_down_after: Duration::from_millis(800),
            max_transmissions: 10,
            gossip_every: Duration::from_millis(200),
            gossip_fanout: 3,
            announce_every: Duration::from_secs(10),
            announce_down_every: Duration::from_secs(2),
            rejoin_every: Duration::from_secs(1),
            remove_down_after: Duration::from_secs(300),
            max_packet_size: 1400,
        }
    }
}

impl MembershipConfig {
    /// Checks that every field is usable and the timings make sense together.
    ///
    /// # Errors
    /// [`HashRingError::BadConfig`] naming the field and what to use instead.
    pub fn validate(&self) -> Result<(), HashRingError> {
        let bad =
            |field: &'static str, reason: String| Err(HashRingError::BadConfig { field, reason });
        if self.probe_period.is_zero() {
            return bad(
                "probe_period",
                "must be above zero (250ms is the default)".into(),
            );
        }
        if self.probe_rtt.is_zero() || self.probe_rtt >= self.probe_period {
            return bad(
                "probe_rtt",
                format!(
                    "{:?} must be above zero and below probe_period ({:?})",
                    self.probe_rtt, self.probe_period
                ),
            );
        }
        if self.suspect_to_down_after < self.probe_period {
            return bad(
                "suspect_to_down_after",
                format!(
                    "{:?} is shorter than probe_period ({:?}): a suspect could not refute in time",
                    self.suspect_to_down_after, self.probe_period
                ),
            );
        }
        for (field, value) in [
            ("indirect_probes", self.indirect_probes),
            ("gossip_fanout", self.gossip_fanout),
            ("max_transmissions", usize::from(self.max_transmissions)),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        for (field, value) in [
            ("gossip_every", self.gossip_every),
            ("announce_every", self.announce_every),
            ("announce_down_every", self.announce_down_every),
            ("rejoin_every", self.rejoin_every),
            ("remove_down_after", self.remove_down_after),
        ] {
            if value.is_zero() {
                return bad(field, "must be above zero".into());
            }
        }
        if !(512..=65_000).contains(&self.max_packet_size) {
            return bad(
                "max_packet_size",
                format!("{} is outside 512..=65000 bytes", self.max_packet_size),
            );
        }
        Ok(())
    }

    /// The foca configuration these settings stand for (validated first).
    pub(crate) fn to_foca(&self) -> Result<foca::Config, HashRingError> {
        self.validate()?;
        let nz = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        let periodic = |frequency: Duration, num: usize| {
            Some(foca::PeriodicParams {
                frequency,
                num_members: nz(num),
            })
        };
        Ok(foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: nz(self.indirect_probes),
            max_transmissions: NonZeroU8::new(self.max_transmissions).unwrap_or(NonZeroU8::MIN),
            suspect_to_down_after: self.suspect_to_down_after,
            remove_down_after: Some(self.remove_down_after),
            max_packet_size: nz(self.max_packet_size),
            notify_down_members: true,
            periodic_announce: periodic(self.announce_every, 1),
            periodic_announce_to_down_members: periodic(self.announce_down_every, 2),
            periodic_gossip: periodic(self.gossip_every, self.gossip_fanout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_detects_within_two_seconds() {
        let c = MembershipConfig::default();
        c.validate().unwrap();
        assert!(c.probe_period * 2 + c.suspect_to_down_after <= Duration::from_secs(2));
        assert_eq!(c.to_foca().unwrap().probe_period, c.probe_period);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: [(&str, MembershipConfig); 4] = [
            (
                "probe_rtt",
                MembershipConfig {
                    probe_rtt: Duration::from_secs(1),
                    ..Default::default()
                },
            ),
            (
                "gossip_fanout",
                MembershipConfig {
                    gossip_fanout: 0,
                    ..Default::default()
                },
            ),
            (
                "max_packet_size",
                MembershipConfig {
                    max_packet_size: 10,
                    ..Default::default()
                },
            ),
            (
                "suspect_to_down_after",
                MembershipConfig {
                    suspect_to_down_after: Duration::from_millis(1),
                    ..Default::default()
                },
            ),
        ];
        for (field, config) in cases {
            match config.validate() {
                Err(HashRingError::BadConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}

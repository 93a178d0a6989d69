//! How the 63 usable bits of an ID are split between time, worker and sequence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Twitter's Snowflake epoch, 2010-11-04T01:42:54.657Z, in Unix milliseconds.
pub const TWITTER_EPOCH_MS: u64 = 1_288_834_974_657;
/// Sonyflake's default start time, 2014-09-01T00:00:00Z, in Unix milliseconds.
pub const SONYFLAKE_EPOCH_MS: u64 = 1_409_529_600_000;
/// Discord's epoch, 2015-01-01T00:00:00Z, in Unix milliseconds.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Which of worker and sequence sits in the low bits.
///
/// Twitter puts the sequence lowest, so a batch from one tick is a run of consecutive integers;
/// Sonyflake puts the machine id lowest. Both keep one worker's IDs strictly increasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FieldOrder {
    /// `time | worker | sequence` (Twitter, Discord).
    #[default]
    WorkerThenSequence,
    /// `time | sequence | worker` (Sonyflake).
    SequenceThenWorker,
}

impl FieldOrder {
    /// The order as it is shown in `Info` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkerThenSequence => "time|worker|sequence",
            Self::SequenceThenWorker => "time|sequence|worker",
        }
    }
}

/// A bit layout: field widths, epoch and tick length.
///
/// Plain data with presets and [`validate`](Self::validate); build one with a preset and change the
/// fields you need. The top bit of an ID is never used, so IDs stay positive as `i64` (Java, SQL
/// `BIGINT` and JavaScript's `BigInt.asIntN(64)` all agree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Layout {
    /// A name for logs and `Info`: the preset's name or `custom`.
    pub name: String,
    /// Bits of the tick count; with `tick_ms` it fixes the lifetime.
    pub time_bits: u32,
    /// Bits of the worker id; the number of generators that can run at once is `2^worker_bits`.
    pub worker_bits: u32,
    /// Bits of the per-tick sequence; one worker issues at most `2^sequence_bits` IDs a tick.
    pub sequence_bits: u32,
    /// Unix milliseconds at which tick 0 starts; a recent epoch buys lifetime.
    pub epoch_ms: u64,
    /// Length of one tick in milliseconds.
    pub tick_ms: u64,
    /// Whether worker or sequence takes the low bits.
    pub order: FieldOrder,
}

impl Default for Layout {
    fn default() -> Self {
        Self::classic()
    }
}

impl Layout {
    /// Twitter's Snowflake: 41 bits of 1 ms ticks from Twitter's epoch, 10 worker bits, 12 sequence
    /// bits; 4,096 IDs per millisecond per worker, until 2080-07-10.
    pub fn classic() -> Self {
        Self {
            name: "classic".into(),
            time_bits: 41,
            worker_bits: 10,
            sequence_bits: 12,
            epoch_ms: TWITTER_EPOCH_MS,
            tick_ms: 1,
            order: FieldOrder::WorkerThenSequence,
        }
    }

    /// Sonyflake: 39 bits of 10 ms ticks from 2014-09-01, 8 sequence bits, then 16 machine bits;
    /// 25,600 IDs per second per machine, 65,536 machines, until 2188.
    pub fn sonyflake() -> Self {
        Self {
            name: "sonyflake".into(),
            time_bits: 39,
            worker_bits: 16,
            sequence_bits: 8,
            epoch_ms: SONYFLAKE_EPOCH_MS,
            tick_ms: 10,
            order: FieldOrder::SequenceThenWorker,
        }
    }

    /// Discord's snowflakes: 1 ms ticks from 2015-01-01, 10 worker bits (Discord's 5 worker + 5
    /// process bits), 12 sequence bits. Discord spends 42 time bits and so the sign bit after
    /// 2084-09-06; this preset keeps 41 so IDs stay positive, and is bit-identical to Discord's IDs
    /// until that date, which is its end of life.
    pub fn discord() -> Self {
        Self {
            name: "discord".into(),
            time_bits: 41,
            worker_bits: 10,
            sequence_bits: 12,
            epoch_ms: DISCORD_EPOCH_MS,
            tick_ms: 1,
            order: FieldOrder::WorkerThenSequence,
        }
    }

    /// A preset by name (`classic`, `sonyflake`, `discord`), for configuration files and flags.
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] naming the presets when `name` is none of them.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "classic" | "twitter" => Ok(Self::classic()),
            "sonyflake" => Ok(Self::sonyflake()),
            "discord" => Ok(Self::discord()),
            other => Err(Error::InvalidLayout(format!(
                "unknown preset {other:?}: expected classic, sonyflake or discord"
            ))),
        }
    }

    /// Checks that the fields fit in 63 bits, that worker and sequence fit in `u32`, that the tick
    /// is not zero and that the end of life is a representable date.
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] saying which rule is broken.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidLayout(m));
        let total = self.time_bits + self.worker_bits + self.sequence_bits;
        if self.time_bits == 0 {
            return bad("time_bits must be at least 1".into());
        }
        if total > 63 {
            return bad(format!(
                "time_bits + worker_bits + sequence_bits = {total}, but at most 63 fit (the sign bit stays 0)"
            ));
        }
        if self.worker_bits > 32 || self.sequence_bits > 32 {
            return bad("worker_bits and sequence_bits must each be at most 32".into());
        }
        if self.tick_ms == 0 {
            return bad("tick_ms must be at least 1".into());
        }
        if self.end_of_life_ms().is_none() || self.end_of_life().is_none() {
            return bad("the layout's end of life is past any representable date; use fewer time bits or a shorter tick".into());
        }
        Ok(())
    }

    /// Number of ticks the time field holds.
    pub fn tick_count(&self) -> u64 {
        1u64 << self.time_bits
    }

    /// The largest worker id.
    pub fn max_worker(&self) -> u64 {
        (1u64 << self.worker_bits) - 1
    }

    /// The largest sequence number within one tick.
    pub fn max_sequence(&self) -> u64 {
        (1u64 << self.sequence_bits) - 1
    }

    /// Bit position of the time field.
    pub fn time_shift(&self) -> u32 {
        self.worker_bits + self.sequence_bits
    }

    /// Bit position of the worker field.
    pub fn worker_shift(&self) -> u32 {
        match self.order {
            FieldOrder::WorkerThenSequence => self.sequence_bits,
            FieldOrder::SequenceThenWorker => 0,
        }
    }

    /// Bit position of the sequence field.
    pub fn sequence_shift(&self) -> u32 {
        match self.order {
            FieldOrder::WorkerThenSequence => 0,
            FieldOrder::SequenceThenWorker => self.worker_bits,
        }
    }

    /// The most IDs one worker can issue per second; the ceiling of any throughput figure.
    pub fn ids_per_second(&self) -> f64 {
        (self.max_sequence() + 1) as f64 * 1000.0 / self.tick_ms as f64
    }

    /// Unix milliseconds at which the time field runs out, if it fits in `u64`.
    pub fn end_of_life_ms(&self) -> Option<u64> {
        self.tick_count()
            .checked_mul(self.tick_ms)?
            .checked_add(self.epoch_ms)
    }

    /// The first instant at which no ID can be issued, if chrono can represent it.
    pub fn end_of_life(&self) -> Option<DateTime<Utc>> {
        let ms = i64::try_from(self.end_of_life_ms()?).ok()?;
        DateTime::from_timestamp_millis(ms)
    }

    /// The tick containing Unix time `unix_ms`, or `None` before the epoch.
    #[inline]
    pub fn tick_of(&self, unix_ms: u64) -> Option<u64> {
        let since = unix_ms.checked_sub(self.epoch_ms)?;
        Some(if self.tick_ms == 1 {
            since
        } else {
            since / self.tick_ms
        })
    }

    /// Unix milliseconds at which `tick` starts (saturating).
    #[inline]
    pub fn tick_start_ms(&self, tick: u64) -> u64 {
        tick.saturating_mul(self.tick_ms)
            .saturating_add(self.epoch_ms)
    }

    /// The first tick that starts at or after `unix_ms` (for marks that must not be undercut).
    pub fn tick_ceil(&self, unix_ms: u64) -> u64 {
        let since = unix_ms.saturating_sub(self.epoch_ms);
        since.div_ceil(self.tick_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_end_when_documented() {
        for (layout, eol) in [
            (Layout::classic(), "2080-07-10T17:30:30.209+00:00"),
            (Layout::discord(), "2084-09-06T15:47:35.552+00:00"),
            (Layout::sonyflake(), "2188-11-16T03:28:58.880+00:00"),
        ] {
            layout.validate().unwrap();
            assert_eq!(
                layout.end_of_life().unwrap().to_rfc3339(),
                eol,
                "{}",
                layout.name
            );
        }
        assert_eq!(Layout::classic().ids_per_second(), 4_096_000.0);
    }

    #[test]
    fn validation_refuses_what_cannot_work() {
        let mut l = Layout::classic();
        l.time_bits = 42;
        assert!(l.validate().unwrap_err().to_string().contains("at most 63"));
        let mut l = Layout::classic();
        l.tick_ms = 0;
        assert!(l.validate().is_err());
        let mut l = Layout::classic();
        l.time_bits = 0;
        assert!(l.validate().is_err());
        let l = Layout {
            time_bits: 63,
            worker_bits: 0,
            sequence_bits: 0,
            ..Layout::classic()
        };
        assert!(
            l.validate()
                .unwrap_err()
                .to_string()
                .contains("end of life")
        );
        assert!(Layout::preset("leaf").is_err());
    }

    #[test]
    fn ticks_round_as_documented() {
        let l = Layout::sonyflake();
        assert_eq!(l.tick_of(SONYFLAKE_EPOCH_MS - 1), None);
        assert_eq!(l.tick_of(SONYFLAKE_EPOCH_MS + 19), Some(1));
        assert_eq!(l.tick_ceil(SONYFLAKE_EPOCH_MS + 11), 2);
        assert_eq!(l.tick_start_ms(2), SONYFLAKE_EPOCH_MS + 20);
    }
}

//! The `Id` type: compose, decode and text forms.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};

use crate::{
    Error, Layout, Result,
    codec::{self, IdText},
};

/// A 64-bit ID whose top bit is 0, so it is also a positive `i64`.
///
/// An `Id` does not carry its layout: decoding needs the [`Layout`] that made it. Its `Display` is
/// the decimal string; use that form in JSON and HTTP, where JavaScript would round integers above
/// 2^53.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(u64);

/// The three fields of an ID under a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Ticks since the layout's epoch.
    pub tick: u64,
    /// Unix milliseconds at which that tick starts.
    pub unix_ms: u64,
    /// The same instant as a date.
    pub timestamp: DateTime<Utc>,
    /// The worker that issued the ID.
    pub worker: u64,
    /// The position within the tick.
    pub sequence: u64,
}

/// A text form of an ID, for [`Id::parse`] and [`Id::encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Decimal digits (the default, and what `Display` writes).
    #[default]
    Decimal,
    /// Crockford base32, 13 characters, sortable.
    Base32,
    /// Base62, 11 characters, sortable.
    Base62,
}

impl Id {
    /// The largest value an `Id` can hold (`i64::MAX`).
    pub const MAX: u64 = i64::MAX as u64;

    /// Wraps a raw value.
    ///
    /// # Errors
    /// [`Error::MalformedId`] if the top bit is set.
    pub fn new(raw: u64) -> Result<Self> {
        if raw > Self::MAX {
            return Err(malformed(
                &raw.to_string(),
                "the top bit is set: not a positive i64",
            ));
        }
        Ok(Self(raw))
    }

    /// Wraps a raw value the caller knows is valid (the generator and `compose`).
    #[inline]
    pub(crate) const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw value.
    #[inline]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The value as `i64`, for databases and JVM peers; always positive.
    #[inline]
    pub const fn as_i64(self) -> i64 {
        self.0 as i64
    }

    /// Builds an ID from its fields.
    ///
    /// # Errors
    /// [`Error::MalformedId`] if a field does not fit its bits (never silently truncated).
    pub fn compose(layout: &Layout, tick: u64, worker: u64, sequence: u64) -> Result<Self> {
        if tick >= layout.tick_count() {
            return Err(malformed(
                &tick.to_string(),
                "tick does not fit the time bits",
            ));
        }
        if worker > layout.max_worker() {
            return Err(malformed(
                &worker.to_string(),
                "worker does not fit the worker bits",
            ));
        }
        if sequence > layout.max_sequence() {
            return Err(malformed(
                &sequence.to_string(),
                "sequence does not fit the sequence bits",
            ));
        }
        Ok(Self(compose_unchecked(layout, tick, worker, sequence)))
    }

    /// Splits the ID into tick, timestamp, worker and sequence.
    ///
    /// # Errors
    /// [`Error::MalformedId`] if the ID uses bits above the layout's fields, or its instant is not
    /// representable.
    pub fn decode(self, layout: &Layout) -> Result<Decoded> {
        let tick = self.0 >> layout.time_shift();
        if tick >= layout.tick_count() {
            return Err(malformed(
                &self.to_string(),
                "uses bits above the layout's time field",
            ));
        }
        let worker = (self.0 >> layout.worker_shift()) & layout.max_worker();
        let sequence = (self.0 >> layout.sequence_shift()) & layout.max_sequence();
        let unix_ms = layout.tick_start_ms(tick);
        let timestamp = i64::try_from(unix_ms)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| malformed(&self.to_string(), "timestamp is not a representable date"))?;
        Ok(Decoded {
            tick,
            unix_ms,
            timestamp,
            worker,
            sequence,
        })
    }

    /// Text in the given encoding, on the stack.
    pub fn encode(self, encoding: Encoding) -> IdText {
        match encoding {
            Encoding::Decimal => codec::encode_decimal(self.0),
            Encoding::Base32 => codec::encode_base32(self.0),
            Encoding::Base62 => codec::encode_base62(self.0),
        }
    }

    /// Decimal text, on the stack (what `Display` writes).
    pub fn decimal(self) -> IdText {
        self.encode(Encoding::Decimal)
    }

    /// Crockford base32, 13 characters; sorts like the number.
    pub fn base32(self) -> IdText {
        self.encode(Encoding::Base32)
    }

    /// Base62, 11 characters; sorts like the number.
    pub fn base62(self) -> IdText {
        self.encode(Encoding::Base62)
    }

    /// Parses text in the given encoding.
    ///
    /// # Errors
    /// [`Error::MalformedId`] saying what is wrong: empty, bad character, too long, or too large.
    pub fn parse(text: &str, encoding: Encoding) -> Result<Self> {
        let raw = match encoding {
            Encoding::Decimal => codec::decode_decimal(text),
            Encoding::Base32 => codec::decode_base32(text),
            Encoding::Base62 => codec::decode_base62(text),
        }
        .map_err(|reason| malformed(text, reason))?;
        if raw > Self::MAX {
            return Err(malformed(
                text,
                "above i64::MAX: the top bit of an ID is always 0",
            ));
        }
        Ok(Self(raw))
    }
}

/// Packs fields that are known to fit. The generator's hot path uses this.
#[inline]
pub(crate) fn compose_unchecked(layout: &Layout, tick: u64, worker: u64, sequence: u64) -> u64 {
    (tick << layout.time_shift())
        | (worker << layout.worker_shift())
        | (sequence << layout.sequence_shift())
}

fn malformed(input: &str, reason: &'static str) -> Error {
    Error::MalformedId {
        input: input.chars().take(64).collect(),
        reason,
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Id {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s, Encoding::Decimal)
    }
}

impl TryFrom<u64> for Id {
    type Error = Error;
    fn try_from(raw: u64) -> Result<Self> {
        Self::new(raw)
    }
}

impl From<Id> for u64 {
    fn from(id: Id) -> u64 {
        id.0
    }
}

/// Serialized as a decimal *string* (`"1445078208190291968"`): JSON numbers above 2^53 lose
/// precision in JavaScript, so the JSON form of an ID is always text.
impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.decimal())
    }
}

/// Accepts the decimal string, and also a plain integer from producers that send numbers.
impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ID as a decimal string or a non-negative integer")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Id, E> {
                Id::parse(v, Encoding::Decimal).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Id, E> {
                Id::new(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Id, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("an ID is never negative"))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FieldOrder;

    #[test]
    fn twitter_id_decodes_like_twitter() {
        // Fields land where Twitter puts them.
        let l = Layout::classic();
        let id = Id::compose(&l, 1_000, 7, 42).unwrap();
        assert_eq!(id.as_u64(), (1_000 << 22) | (7 << 12) | 42);
        let d = id.decode(&l).unwrap();
        assert_eq!((d.tick, d.worker, d.sequence), (1_000, 7, 42));
        assert_eq!(d.unix_ms, crate::layout::TWITTER_EPOCH_MS + 1_000);
        // A tweet id from October 2021 decodes to its creation time.
        let tweet = Id::new(1_445_078_208_190_291_968)
            .unwrap()
            .decode(&l)
            .unwrap();
        assert_eq!(tweet.timestamp.to_rfc3339()[..19], *"2021-10-04T17:27:47");
    }

    #[test]
    fn sonyflake_puts_the_machine_lowest() {
        let l = Layout::sonyflake();
        assert_eq!(l.order, FieldOrder::SequenceThenWorker);
        let id = Id::compose(&l, 3, 0xBEEF, 2).unwrap();
        assert_eq!(id.as_u64(), (3 << 24) | (2 << 16) | 0xBEEF);
        let d = id.decode(&l).unwrap();
        assert_eq!((d.tick, d.worker, d.sequence), (3, 0xBEEF, 2));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let l = Layout::classic();
        assert!(Id::compose(&l, 0, 1024, 0).is_err());
        assert!(Id::compose(&l, 0, 0, 4096).is_err());
        assert!(Id::compose(&l, 1 << 41, 0, 0).is_err());
        assert!(Id::new(1 << 63).is_err());
        assert!(Id::parse("9223372036854775808", Encoding::Decimal).is_err());
        assert!("12a".parse::<Id>().is_err());
        let narrow = Layout {
            time_bits: 20,
            ..Layout::classic()
        };
        assert!(Id::new(1 << 62).unwrap().decode(&narrow).is_err());
    }

    #[test]
    fn json_form_is_a_string() {
        let id = Id::new(1_445_078_208_190_291_968).unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"1445078208190291968\"");
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
        assert_eq!(
            serde_json::from_str::<Id>("1445078208190291968").unwrap(),
            id
        );
        assert!(serde_json::from_str::<Id>("-1").is_err());
        assert!(serde_json::from_str::<Id>("\"12x\"").is_err());
        assert!(serde_json::from_str::<Id>("\"9223372036854775808\"").is_err());
    }

    #[test]
    fn text_forms_round_trip() {
        let id = Id::new(1_445_078_208_190_291_968).unwrap();
        for enc in [Encoding::Decimal, Encoding::Base32, Encoding::Base62] {
            assert_eq!(Id::parse(&id.encode(enc), enc).unwrap(), id);
        }
        assert_eq!(id.to_string(), &*id.decimal());
    }
}

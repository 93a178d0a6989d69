//! The edge between protobuf types and the crate's own: nothing else touches `pb`.

use crate::{
    Error, GeneratorInfo, Id, Result,
    id::{Decoded, Encoding},
};

use super::pb;

/// The `Encoding` of a request, refusing numbers the proto does not define.
///
/// # Errors
/// [`Error::MalformedId`] naming the bad value.
pub fn encoding(raw: i32) -> Result<Encoding> {
    match pb::Encoding::try_from(raw) {
        Ok(pb::Encoding::Unspecified | pb::Encoding::Decimal) => Ok(Encoding::Decimal),
        Ok(pb::Encoding::Base32) => Ok(Encoding::Base32),
        Ok(pb::Encoding::Base62) => Ok(Encoding::Base62),
        Err(_) => Err(Error::MalformedId {
            input: raw.to_string(),
            reason: "unknown encoding: use ENCODING_DECIMAL, ENCODING_BASE32 or ENCODING_BASE62",
        }),
    }
}

/// A decoded ID as its response message.
pub fn decode_response(id: Id, d: &Decoded) -> pb::DecodeResponse {
    pb::DecodeResponse {
        id: id.as_u64(),
        unix_millis: d.unix_ms as i64,
        timestamp: d
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        // Layout validation caps worker and sequence at 32 bits.
        worker: d.worker as u32,
        sequence: d.sequence as u32,
        decimal: id.decimal().to_string(),
        base32: id.base32().to_string(),
        base62: id.base62().to_string(),
    }
}

/// Generator facts and counters as the `Info` response.
pub fn info_response(info: &GeneratorInfo, ids_issued: u64, max_batch: u32) -> pb::InfoResponse {
    let l = &info.layout;
    pb::InfoResponse {
        layout: Some(pb::Layout {
            name: l.name.clone(),
            time_bits: l.time_bits,
            worker_bits: l.worker_bits,
            sequence_bits: l.sequence_bits,
            epoch_unix_millis: l.epoch_ms as i64,
            tick_millis: l.tick_ms as u32,
            field_order: l.order.as_str().into(),
        }),
        worker: info.worker as u32,
        end_of_life_unix_millis: info.end_of_life.map_or(i64::MAX, |t| t.timestamp_millis()),
        end_of_life: info
            .end_of_life
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default(),
        ids_issued,
        high_water_mark_unix_millis: info.high_water_mark_ms as i64,
        max_batch,
    }
}

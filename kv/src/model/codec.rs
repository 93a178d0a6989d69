//! The canonical binary form of an [`Object`], as storage keeps it and replicas will exchange it.
//!
//! Canonical means equal objects encode to equal bytes (siblings sorted by dot, vectors sorted by
//! actor), so a digest of the encoding identifies a state: anti-entropy compares digests instead of
//! values.
//!
//! ```text
//! 0x01 | vv | varint m | m x sibling
//! vv      = varint n | n x (actor: u64 LE, counter: varint)
//! sibling = actor: u64 LE | counter: varint | written_at: varint | flags: u8
//!           | [expires_at: varint if flags & 2] | varint len | value
//! flags   = 1: last-write-wins, 2: has expiry
//! ```

use bytes::Bytes;
use xxhash_rust::xxh3::Xxh3;

use super::object::{Object, Sibling};
use super::time::Timestamp;
use super::version::{ActorId, Dot, VersionVector};
use super::wire::{Reader, WireError, put_varint};

/// The only layout this build writes.
const VERSION: u8 = 1;
/// Seed of the per-row digest.
const DIGEST_SEED: u64 = 0x6b76_2d6f_626a_0001;
/// Sibling flag: written in last-write-wins mode.
const FLAG_LWW: u8 = 1;
/// Sibling flag: an expiry follows.
const FLAG_EXPIRES: u8 = 2;
/// Upper bound on counts read back, to fail fast on corrupt rows instead of allocating wildly.
const MAX_COUNT: usize = 1 << 20;

/// Encodes an object canonically.
pub fn encode_object(object: &Object) -> Vec<u8> {
    let size: usize = object.siblings().iter().map(|s| s.value.len() + 32).sum();
    let mut out = Vec::with_capacity(16 + object.context().len() * 12 + size);
    out.push(VERSION);
    put_varint(&mut out, object.context().len() as u64);
    for (actor, counter) in object.context().iter() {
        out.extend_from_slice(&actor.0.to_le_bytes());
        put_varint(&mut out, counter);
    }
    put_varint(&mut out, object.siblings().len() as u64);
    for s in object.siblings() {
        out.extend_from_slice(&s.dot.actor.0.to_le_bytes());
        put_varint(&mut out, s.dot.counter);
        put_varint(&mut out, s.written_at.0);
        let mut flags = 0;
        if s.lww {
            flags |= FLAG_LWW;
        }
        if s.expires_at.is_some() {
            flags |= FLAG_EXPIRES;
        }
        out.push(flags);
        if let Some(at) = s.expires_at {
            put_varint(&mut out, at.0);
        }
        put_varint(&mut out, s.value.len() as u64);
        out.extend_from_slice(&s.value);
    }
    out
}

/// Decodes an object; values are zero-copy slices of `bytes`.
///
/// # Errors
/// [`WireError`] when the bytes are not an encoding this build understands.
pub fn decode_object(bytes: &Bytes) -> Result<Object, WireError> {
    let mut r = Reader::new(bytes);
    if r.u8("object version")? != VERSION {
        return Err(WireError::Malformed("object version"));
    }
    let n = r.len(MAX_COUNT, "object context size")?;
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let actor = ActorId(r.u64_le("object context actor")?);
        pairs.push((actor, r.varint("object context counter")?));
    }
    let m = r.len(MAX_COUNT, "sibling count")?;
    let mut siblings = Vec::with_capacity(m);
    for _ in 0..m {
        let actor = ActorId(r.u64_le("sibling actor")?);
        let counter = r.varint("sibling counter")?;
        let written_at = Timestamp(r.varint("sibling time")?);
        let flags = r.u8("sibling flags")?;
        if flags & !(FLAG_LWW | FLAG_EXPIRES) != 0 {
            return Err(WireError::Malformed("sibling flags"));
        }
        let expires_at = if flags & FLAG_EXPIRES != 0 {
            Some(Timestamp(r.varint("sibling expiry")?))
        } else {
            None
        };
        let len = r.len(bytes.len(), "sibling value length")?;
        let start = bytes.len() - r.remaining_len();
        r.bytes(len, "sibling value")?;
        siblings.push(Sibling {
            dot: Dot::new(actor, counter),
            value: bytes.slice(start..start + len),
            written_at,
            expires_at,
            lww: flags & FLAG_LWW != 0,
        });
    }
    if !r.is_empty() {
        return Err(WireError::Malformed("object (trailing bytes)"));
    }
    Ok(Object::from_parts(
        siblings,
        VersionVector::from_pairs(pairs),
    ))
}

/// A 64-bit digest of one row (key and encoded object): what anti-entropy compares.
pub fn row_digest(key: &[u8], encoded: &[u8]) -> u64 {
    let mut h = Xxh3::with_seed(DIGEST_SEED);
    let mut len = Vec::with_capacity(10);
    put_varint(&mut len, key.len() as u64);
    h.update(&len);
    h.update(key);
    h.update(encoded);
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(
            ctx in proptest::collection::vec((0u64..4, 1u64..100), 0..4),
            sibs in proptest::collection::vec(
                (0u64..4, 1u64..100, any::<u64>(), proptest::option::of(any::<u64>()), any::<bool>(),
                 proptest::collection::vec(any::<u8>(), 0..20)),
                0..5),
        ) {
            let siblings = sibs.into_iter().map(|(a, c, w, e, l, v)| Sibling {
                dot: Dot::new(ActorId(a), c),
                value: Bytes::from(v),
                written_at: Timestamp(w),
                expires_at: e.map(Timestamp),
                lww: l,
            }).collect();
            let obj = Object::from_parts(siblings, VersionVector::from_pairs(ctx.into_iter().map(|(a, c)| (ActorId(a), c))));
            let bytes = Bytes::from(encode_object(&obj));
            prop_assert_eq!(decode_object(&bytes), Ok(obj));
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = decode_object(&Bytes::from(bytes));
        }
    }
}

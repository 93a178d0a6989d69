//! The causal context as clients carry it: an opaque, versioned, checked token.
//!
//! Layout (version 1):
//!
//! ```text
//! 0x01 | varint n | n x (actor: u64 LE, counter: varint) | check: u64 LE
//! ```
//!
//! Entries are sorted by actor, counters are in `1..=2^62`, nothing may follow the check, and
//! `check = xxh3_64(seed, varint(len(key)) || key || everything before the check)`. The check is
//! not a MAC (there is no secret): it catches truncation, corruption, hand edits and a token
//! replayed on a different key. A token crafted deliberately with a valid check passes decoding;
//! what a store can still prove is that its *own* dots are real, which
//! [`resolve_local_write`](super::resolve_local_write) enforces.

use xxhash_rust::xxh3::Xxh3;

use super::version::{ActorId, VersionVector};
use super::wire::{Reader, WireError, put_varint};

/// The only token version this build writes; decoding rejects every other.
const VERSION: u8 = 1;
/// Seed of the check so that it differs from other xxh3 uses in the project.
const CHECK_SEED: u64 = 0x6b76_2d63_7478_0001;
/// Largest counter a token may carry; far beyond any real store, far below overflow.
pub const MAX_COUNTER: u64 = 1 << 62;
/// Most actors a context may name: a cluster has one per node incarnation that wrote the key.
pub const MAX_ENTRIES: usize = 4096;

/// Why a context token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The first byte is not a known token version.
    #[error("unknown context version {0} (this server understands version {VERSION})")]
    UnknownVersion(u8),
    /// The bytes do not parse.
    #[error("context is not a valid token: {0}")]
    Malformed(#[from] WireError),
    /// Entries are not in strictly increasing actor order.
    #[error("context is not a valid token: actors out of order")]
    Unsorted,
    /// A counter is zero or beyond [`MAX_COUNTER`].
    #[error("context is not a valid token: counter {0} out of range")]
    CounterOutOfRange(u64),
    /// Bytes follow the check.
    #[error("context is not a valid token: trailing bytes")]
    Trailing,
    /// The check does not match: altered, truncated, or issued for another key.
    #[error(
        "context does not match this key: it was altered, truncated or read from a different key"
    )]
    CheckMismatch,
}

/// Encodes `context` as a token bound to `key`.
pub fn encode_context(key: &[u8], context: &VersionVector) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + context.len() * 12 + 8);
    out.push(VERSION);
    put_varint(&mut out, context.len() as u64);
    for (actor, counter) in context.iter() {
        out.extend_from_slice(&actor.0.to_le_bytes());
        put_varint(&mut out, counter);
    }
    let check = check(key, &out);
    out.extend_from_slice(&check.to_le_bytes());
    out
}

/// Decodes a token for `key`. An empty token means "no context" and decodes to `None`.
///
/// # Errors
/// [`ContextError`] for anything but a well-formed token issued for this key.
pub fn decode_context(key: &[u8], token: &[u8]) -> Result<Option<VersionVector>, ContextError> {
    if token.is_empty() {
        return Ok(None);
    }
    let mut r = Reader::new(token);
    let version = r.u8("context version")?;
    if version != VERSION {
        return Err(ContextError::UnknownVersion(version));
    }
    let n = r.len(MAX_ENTRIES, "context entry count")?;
    let mut pairs = Vec::with_capacity(n);
    let mut previous: Option<u64> = None;
    for _ in 0..n {
        let actor = r.u64_le("context actor")?;
        let counter = r.varint("context counter")?;
        if previous.is_some_and(|p| p >= actor) {
            return Err(ContextError::Unsorted);
        }
        if counter == 0 || counter > MAX_COUNTER {
            return Err(ContextError::CounterOutOfRange(counter));
        }
        previous = Some(actor);
        pairs.push((ActorId(actor), counter));
    }
    let body_len = token.len() - r.remaining_len();
    let expected = r.u64_le("context check")?;
    if !r.is_empty() {
        return Err(ContextError::Trailing);
    }
    if check(key, &token[..body_len]) != expected {
        return Err(ContextError::CheckMismatch);
    }
    Ok(Some(VersionVector::from_pairs(pairs)))
}

/// The token check: xxh3 over the key (length-prefixed) and the token body.
fn check(key: &[u8], body: &[u8]) -> u64 {
    let mut h = Xxh3::with_seed(CHECK_SEED);
    let mut len = Vec::with_capacity(10);
    put_varint(&mut len, key.len() as u64);
    h.update(&len);
    h.update(key);
    h.update(body);
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vv() -> VersionVector {
        VersionVector::from_pairs([(ActorId(1), 3), (ActorId(u64::MAX), 1 << 40)])
    }

    #[test]
    fn roundtrip_and_empty() {
        let token = encode_context(b"k", &vv());
        assert_eq!(decode_context(b"k", &token), Ok(Some(vv())));
        assert_eq!(decode_context(b"k", &[]), Ok(None));
        let empty = encode_context(b"k", &VersionVector::new());
        assert_eq!(decode_context(b"k", &empty), Ok(Some(VersionVector::new())));
    }

    #[test]
    fn other_key_altered_or_truncated_is_rejected() {
        let token = encode_context(b"k", &vv());
        assert_eq!(
            decode_context(b"other", &token),
            Err(ContextError::CheckMismatch)
        );
        let mut altered = token.clone();
        altered[3] ^= 1;
        assert_eq!(
            decode_context(b"k", &altered),
            Err(ContextError::CheckMismatch)
        );
        assert!(decode_context(b"k", &token[..token.len() - 1]).is_err());
        let mut long = token.clone();
        long.push(0);
        assert_eq!(decode_context(b"k", &long), Err(ContextError::Trailing));
        assert_eq!(
            decode_context(b"k", &[9]),
            Err(ContextError::UnknownVersion(9))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(key: Vec<u8>, token: Vec<u8>) {
            let _ = decode_context(&key, &token);
        }

        #[test]
        fn any_vector_roundtrips(key: Vec<u8>, pairs: Vec<(u64, u64)>) {
            let v = VersionVector::from_pairs(
                pairs.into_iter().map(|(a, c)| (ActorId(a), c % MAX_COUNTER)),
            );
            let token = encode_context(&key, &v);
            prop_assert_eq!(decode_context(&key, &token), Ok(Some(v)));
        }
    }
}

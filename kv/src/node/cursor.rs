//! Scan cursors: opaque, checked tokens naming the last key of a page and bound to the scan's
//! bounds, so a cursor cannot be replayed on a different scan or edited into another position.
//!
//! Layout: `0x01 | varint len | last key | check: u64 LE`, where the check is xxh3 over the
//! bounds and the body.

use std::ops::Bound;

use bytes::Bytes;
use xxhash_rust::xxh3::Xxh3;

use crate::error::KvError;
use crate::model::KeyRange;

/// Token version.
const VERSION: u8 = 1;
/// Seed distinguishing cursor checks from other hashes.
const SEED: u64 = 0x6b76_2d63_7572_0001;

/// Feeds a bound into the check.
fn hash_bound(h: &mut Xxh3, tag: u8, b: &Bound<Bytes>) {
    match b {
        Bound::Included(k) => {
            h.update(&[tag, 1]);
            h.update(&(k.len() as u64).to_le_bytes());
            h.update(k);
        }
        Bound::Excluded(k) => {
            h.update(&[tag, 2]);
            h.update(&(k.len() as u64).to_le_bytes());
            h.update(k);
        }
        Bound::Unbounded => h.update(&[tag, 0]),
    }
}

/// The check over the scan's bounds and a cursor body.
fn check(range: &KeyRange, body: &[u8]) -> u64 {
    let mut h = Xxh3::with_seed(SEED);
    hash_bound(&mut h, 0, &range.start);
    hash_bound(&mut h, 1, &range.end);
    h.update(body);
    h.digest()
}

/// A cursor continuing `range` after `last_key`.
pub(crate) fn encode_cursor(range: &KeyRange, last_key: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(last_key.len() + 20);
    out.push(VERSION);
    out.extend_from_slice(&(last_key.len() as u32).to_le_bytes());
    out.extend_from_slice(last_key);
    let c = check(range, &out);
    out.extend_from_slice(&c.to_le_bytes());
    Bytes::from(out)
}

/// The last key a cursor names, if it was issued for `range`.
///
/// # Errors
/// [`KvError::InvalidCursor`] for anything else.
pub(crate) fn decode_cursor(range: &KeyRange, cursor: &[u8]) -> Result<Bytes, KvError> {
    let bad = |why: &str| {
        KvError::InvalidCursor(format!(
            "{why}; pass next_cursor from the previous page of the same scan, or an empty cursor to start"
        ))
    };
    if cursor.len() < 13 || cursor[0] != VERSION {
        return Err(bad("not a cursor issued by this server"));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&cursor[1..5]);
    let len = u32::from_le_bytes(len) as usize;
    if cursor.len() != 5 + len + 8 {
        return Err(bad("cursor length does not match"));
    }
    let (body, tail) = cursor.split_at(5 + len);
    let mut c = [0u8; 8];
    c.copy_from_slice(tail);
    if check(range, body) != u64::from_le_bytes(c) {
        return Err(bad("cursor was altered or belongs to a different scan"));
    }
    Ok(Bytes::copy_from_slice(&body[5..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip_and_binding() {
        let r = KeyRange::prefix(b"user/");
        let c = encode_cursor(&r, b"user/9");
        assert_eq!(
            decode_cursor(&r, &c).ok(),
            Some(Bytes::from_static(b"user/9"))
        );
        assert!(decode_cursor(&KeyRange::prefix(b"other/"), &c).is_err());
        let mut edited = c.to_vec();
        edited[6] ^= 1;
        assert!(decode_cursor(&r, &edited).is_err());
        assert!(decode_cursor(&r, b"garbage").is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = decode_cursor(&KeyRange::all(), &bytes);
        }
    }
}

//! Fixed-width text forms of a 64-bit ID: decimal, Crockford base32 and base62.
//!
//! Both radix forms are zero-padded to a fixed width and use alphabets in ASCII order, so sorting
//! the text sorts the IDs. Encoding writes into an [`IdText`] on the stack: no allocation.

use std::fmt;

/// Crockford's base32 alphabet (no I, L, O, U), in ASCII order.
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Base62 in ASCII order: digits, upper case, lower case.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Width of a base32 ID: 13 digits of 5 bits hold 65.
pub(crate) const BASE32_WIDTH: usize = 13;
/// Width of a base62 ID: 62^11 > 2^64.
pub(crate) const BASE62_WIDTH: usize = 11;

/// The text form of an ID, held inline (at most 20 ASCII bytes).
///
/// It derefs to `&str`, so it can be written into a header or a buffer without a heap string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdText {
    /// ASCII bytes; only `..len` are meaningful.
    buf: [u8; 20],
    /// Number of bytes used.
    len: u8,
}

impl IdText {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII from the alphabets above is ever written, so this cannot fail; fall back to ""
        // rather than panic to keep the promise structural.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or_default()
    }
}

impl std::ops::Deref for IdText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Writes `value` in `radix` with `alphabet`, left-padded with the zero digit to `width` (0 means
/// no padding).
fn encode(mut value: u64, radix: u64, alphabet: &[u8], width: usize) -> IdText {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = alphabet[(value % radix) as usize];
        value /= radix;
        if value == 0 {
            break;
        }
    }
    while tmp.len() - i < width {
        i -= 1;
        tmp[i] = alphabet[0];
    }
    let len = tmp.len() - i;
    let mut buf = [0u8; 20];
    buf[..len].copy_from_slice(&tmp[i..]);
    IdText {
        buf,
        len: len as u8,
    }
}

/// Decimal digits, no padding.
pub(crate) fn encode_decimal(value: u64) -> IdText {
    encode(value, 10, b"0123456789", 0)
}

/// Crockford base32, 13 characters.
pub(crate) fn encode_base32(value: u64) -> IdText {
    encode(value, 32, BASE32, BASE32_WIDTH)
}

/// Base62, 11 characters.
pub(crate) fn encode_base62(value: u64) -> IdText {
    encode(value, 62, BASE62, BASE62_WIDTH)
}

/// Parses digits of `radix` through `digit`, refusing empty, over-long and overflowing input.
fn decode(
    text: &str,
    radix: u64,
    max_len: usize,
    digit: impl Fn(u8) -> Option<u64>,
) -> Result<u64, &'static str> {
    if text.is_empty() {
        return Err("empty");
    }
    if text.len() > max_len {
        return Err("too long");
    }
    text.bytes().try_fold(0u64, |acc, b| {
        let d = digit(b).ok_or("invalid character")?;
        acc.checked_mul(radix)
            .and_then(|v| v.checked_add(d))
            .ok_or("does not fit in 64 bits")
    })
}

/// Parses decimal digits (no sign, no spaces).
pub(crate) fn decode_decimal(text: &str) -> Result<u64, &'static str> {
    decode(text, 10, 20, |b| {
        b.is_ascii_digit().then(|| u64::from(b - b'0'))
    })
}

/// Parses Crockford base32, case-insensitively, reading `I`/`L` as 1 and `O` as 0 as Crockford says.
pub(crate) fn decode_base32(text: &str) -> Result<u64, &'static str> {
    decode(text, 32, BASE32_WIDTH, |b| {
        let b = match b.to_ascii_uppercase() {
            b'I' | b'L' => b'1',
            b'O' => b'0',
            other => other,
        };
        BASE32.iter().position(|&c| c == b).map(|p| p as u64)
    })
}

/// Parses base62 (case-sensitive).
pub(crate) fn decode_base62(text: &str) -> Result<u64, &'static str> {
    decode(text, 62, BASE62_WIDTH, |b| match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'A'..=b'Z' => Some(u64::from(b - b'A') + 10),
        b'a'..=b'z' => Some(u64::from(b - b'a') + 36),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(&*encode_decimal(0), "0");
        assert_eq!(&*encode_decimal(u64::MAX), "18446744073709551615");
        assert_eq!(&*encode_base32(0), "0000000000000");
        assert_eq!(&*encode_base32(u64::MAX), "FZZZZZZZZZZZZ");
        assert_eq!(&*encode_base62(61), "0000000000z");
        assert_eq!(&*encode_base62(u64::MAX), "LygHa16AHYF");
        assert_eq!(decode_base32("fzzzzzzzzzzzz"), Ok(u64::MAX));
        assert_eq!(decode_base32("1O"), decode_base32("10"));
        assert_eq!(
            decode_base32("GZZZZZZZZZZZZ"),
            Err("does not fit in 64 bits")
        );
        assert_eq!(decode_base62("LygHa16AHYG"), Err("does not fit in 64 bits"));
        assert_eq!(
            decode_decimal("18446744073709551616"),
            Err("does not fit in 64 bits")
        );
        assert_eq!(decode_decimal("-1"), Err("invalid character"));
        assert_eq!(decode_decimal(""), Err("empty"));
        assert_eq!(decode_base62("0000000000000"), Err("too long"));
    }

    proptest! {
        #[test]
        fn round_trip_and_order(a: u64, b: u64) {
            prop_assert_eq!(decode_decimal(&encode_decimal(a)), Ok(a));
            prop_assert_eq!(decode_base32(&encode_base32(a)), Ok(a));
            prop_assert_eq!(decode_base62(&encode_base62(a)), Ok(a));
            prop_assert_eq!(encode_base32(a).as_str().cmp(encode_base32(b).as_str()), a.cmp(&b));
            prop_assert_eq!(encode_base62(a).as_str().cmp(encode_base62(b).as_str()), a.cmp(&b));
        }
    }
}

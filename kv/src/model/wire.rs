//! Byte-level helpers shared by the object codec and the context token: LEB128 varints and a
//! bounds-checked reader that reports what was malformed instead of panicking.

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over untrusted bytes; every read checks bounds.
pub(crate) struct Reader<'a> {
    /// The bytes not consumed yet.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// True when every byte was consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// How many bytes are left.
    pub(crate) fn remaining_len(&self) -> usize {
        self.rest.len()
    }

    /// One byte.
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        let (&b, rest) = self.rest.split_first().ok_or(WireError::Truncated(what))?;
        self.rest = rest;
        Ok(b)
    }

    /// A little-endian u64.
    pub(crate) fn u64_le(&mut self, what: &'static str) -> Result<u64, WireError> {
        let bytes = self.bytes(8, what)?;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(buf))
    }

    /// An unsigned LEB128 varint of at most 10 bytes, rejecting non-canonical overlong forms.
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            let low = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(WireError::Malformed(what));
            }
            value |= low << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(WireError::Malformed(what));
                }
                return Ok(value);
            }
        }
        Err(WireError::Malformed(what))
    }

    /// A varint that must fit `usize` and not exceed `max`.
    pub(crate) fn len(&mut self, max: usize, what: &'static str) -> Result<usize, WireError> {
        let v = self.varint(what)?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= max)
            .ok_or(WireError::TooLarge(what))
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
}

/// What was wrong with a byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes ended in the middle of a field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A field had an impossible encoding.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A length or count exceeded its bound.
    #[error("{0} is too large")]
    TooLarge(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_roundtrip(v: u64) {
            let mut out = vec![];
            put_varint(&mut out, v);
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.varint("v"), Ok(v));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn reader_never_panics(bytes: Vec<u8>) {
            let mut r = Reader::new(&bytes);
            let _ = r.varint("a");
            let _ = r.u64_le("b");
            let _ = r.len(10, "c");
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        assert_eq!(
            Reader::new(&[0x80, 0x00]).varint("v"),
            Err(WireError::Malformed("v"))
        );
        assert_eq!(
            Reader::new(&[0xff; 11]).varint("v"),
            Err(WireError::Malformed("v"))
        );
    }
}

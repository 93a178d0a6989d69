//! [`StoreKey`]: keys up to 22 bytes live inside the slot, longer ones on the heap.
//!
//! Rate-limit keys are mostly short (an IP address, a user id, a tenant name plus a domain), so
//! keeping them inline saves the allocation (32 bytes with glibc for any key up to 24 bytes) and
//! the pointer chase on every lookup, for 8 more bytes per slot than a `Box<[u8]>`.

/// Longest key kept inline.
pub(crate) const INLINE: usize = 22;

/// A key owned by a slot; 24 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreKey {
    /// Up to [`INLINE`] bytes, in place.
    Inline {
        /// Bytes used.
        len: u8,
        /// The key, zero-padded.
        bytes: [u8; INLINE],
    },
    /// Longer keys.
    Heap(Box<[u8]>),
}

impl StoreKey {
    /// Copies `key`.
    #[inline]
    pub(crate) fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            StoreKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            StoreKey::Heap(key.into())
        }
    }

    /// The key bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            StoreKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            StoreKey::Heap(b) => b,
        }
    }

    /// Heap bytes held (0 when inline).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            StoreKey::Inline { .. } => 0,
            StoreKey::Heap(b) => b.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_keys_round_trip() {
        assert_eq!(std::mem::size_of::<StoreKey>(), 24);
        for len in [0, 1, 21, 22, 23, 100] {
            let key: Vec<u8> = (0..len as u8).collect();
            let k = StoreKey::new(&key);
            assert_eq!(k.as_bytes(), &key[..]);
            assert_eq!(k.heap_bytes() > 0, len > INLINE);
        }
    }
}

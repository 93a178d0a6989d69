//! The one hash every placement decision starts from.
//!
//! Every process, platform and release of ringkit must agree on where a key lives, so placement
//! never touches `std::hash::Hash`, `DefaultHasher` or `RandomState` (whose output is allowed to
//! change between Rust releases and is randomised per process). Keys are hashed once with
//! xxh3-64 and a fixed seed; every later decision works on that `u64` with integer arithmetic.
//! Golden vectors in `tests/golden.rs` pin both functions below.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The seed of [`key_hash`]: the ASCII bytes `ringkit1` read as a little-endian `u64`.
///
/// Changing it would move every key in every deployed cluster, so it is part of the wire contract
/// (the `1` is a version: a future incompatible hash would be `ringkit2`).
pub const KEY_HASH_SEED: u64 = u64::from_le_bytes(*b"ringkit1");

/// Hashes a key's bytes to the 64-bit point that every strategy places.
///
/// This is xxh3-64 with [`KEY_HASH_SEED`]: fast on short keys (a 16-byte key takes a few
/// nanoseconds), well distributed, and stable across platforms and versions.
///
/// ```
/// use ringkit_hashring::key_hash;
/// assert_eq!(key_hash(b"user:42"), key_hash("user:42".as_bytes()));
/// assert_ne!(key_hash(b"user:42"), key_hash(b"user:43"));
/// ```
#[inline]
#[must_use]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, KEY_HASH_SEED)
}

/// Combines two 64-bit values into one well-mixed score: xxh3-64 (same seed) of `a` then `b`,
/// each as 8 little-endian bytes.
///
/// Strategies use it for rendezvous scores, Maglev permutations and claim tie-breaks, so that
/// every derived number is as portable as [`key_hash`] itself.
#[inline]
#[must_use]
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&a.to_le_bytes());
    buf[8..].copy_from_slice(&b.to_le_bytes());
    xxh3_64_with_seed(&buf, KEY_HASH_SEED)
}

/// Ranks node `b` (a node hash) for item `a` (a partition number): a cheap integer mixer
/// (multiply by the golden ratio, then MurmurHash3's 64-bit finaliser) used where the claim scores
/// every node for every partition, which would cost too much through xxh3. Only relative order
/// matters, and it is as portable as `key_hash`.
#[inline]
#[must_use]
pub(crate) fn rank(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    z = (z ^ (z >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    z ^ (z >> 33)
}

/// `log2(1 + i / 256)` in 16.16 fixed point for `i` in `0..=256`, computed at compile time by
/// the integer squaring method (see [`log2_q16`]).
const LOG2_TABLE: [u32; 257] = {
    let mut table = [0u32; 257];
    let mut i = 0;
    while i <= 256 {
        // Mantissa 1 + i/256 with 62 fractional bits.
        let mut m: u128 = (1u128 << 62) + ((i as u128) << 54);
        if i == 256 {
            table[i] = 1 << 16;
        } else {
            let mut frac = 0u32;
            let mut bit = 16;
            while bit > 0 {
                bit -= 1;
                m = (m * m) >> 62;
                if m >= 1u128 << 63 {
                    m >>= 1;
                    frac |= 1 << bit;
                }
            }
            table[i] = frac;
        }
        i += 1;
    }
    table
};

/// `log2(h)` in 16.16 fixed point for `h >= 1`: the exponent from the leading zeros, the
/// mantissa's logarithm from [`LOG2_TABLE`] with linear interpolation (error under 2^-15).
#[inline]
pub(crate) fn log2_q16(h: u64) -> u32 {
    let h = h.max(1);
    let exponent = 63 - h.leading_zeros();
    let fraction = h << h.leading_zeros() << 1;
    let i = (fraction >> 56) as usize;
    let r = ((fraction >> 40) & 0xFFFF) as u32;
    let (lo, hi) = (LOG2_TABLE[i], LOG2_TABLE[i + 1]);
    (exponent << 16) + lo + (((hi - lo) * r) >> 16)
}

/// Weighted rendezvous score of a uniform `u64` for a node of weight `weight`: a monotone
/// fixed-point form of `weight / -log2(h / 2^64)` (the logarithmic method), in integers only.
/// Comparing these scores picks each node with probability proportional to its weight.
#[inline]
pub(crate) fn weighted_score(h: u64, weight: u32) -> u128 {
    let neg_log2 = ((64u64 << 16) - u64::from(log2_q16(h))).max(1);
    (u128::from(weight) << 64) / u128::from(neg_log2)
}

/// Maps a uniformly distributed `u64` onto `0..n` without division bias worth measuring and
/// without a division (Lemire's multiply-shift); `n` must be at least 1.
#[inline]
#[must_use]
pub(crate) fn reduce(hash: u64, n: u64) -> u64 {
    ((u128::from(hash) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_spells_ringkit1() {
        assert_eq!(KEY_HASH_SEED.to_le_bytes(), *b"ringkit1");
    }

    #[test]
    fn log2_q16_is_close_to_the_real_logarithm() {
        for h in [1u64, 2, 3, 1000, 1 << 40, 0x9E37_79B9_7F4A_7C15, u64::MAX] {
            let exact = (h as f64).log2();
            let got = f64::from(log2_q16(h)) / 65_536.0;
            assert!(
                (exact - got).abs() < 1.0 / 32_768.0,
                "{h}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn reduce_stays_in_range() {
        for n in [1u64, 2, 3, 7, 1000, u64::MAX] {
            for h in [0u64, 1, u64::MAX / 2, u64::MAX] {
                assert!(reduce(h, n) < n);
            }
        }
    }
}

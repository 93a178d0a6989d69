//! Key choosers: uniform, and YCSB's scrambled zipfian (theta 0.99), seeded per worker.

use rand::Rng;
use rand::rngs::SmallRng;

/// How keys are drawn from `0..records`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// A few hot keys, a long tail (YCSB's scrambled zipfian, theta 0.99).
    Zipfian,
}

/// YCSB's zipfian constants for `n` items (Gray et al., "Quickly generating billion-record
/// synthetic databases").
#[derive(Clone, Debug)]
pub(crate) struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
}

impl Zipfian {
    /// Precomputes the constants (O(n) once).
    pub(crate) fn new(n: u64) -> Self {
        let theta = 0.99;
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zeta_n = zeta(n);
        let zeta_2 = zeta(2.min(n));
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n);
        Self {
            n,
            theta,
            alpha,
            zeta_n,
            eta,
        }
    }

    /// A rank in `0..n`, 0 the most popular.
    fn rank(&self, rng: &mut SmallRng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }
}

/// Picks record numbers.
#[derive(Clone, Debug)]
pub(crate) enum KeyChooser {
    /// Uniform over `0..records`.
    Uniform(u64),
    /// Scrambled zipfian: ranks hashed (FNV-1a) so hot keys are spread over the key space.
    Zipfian(Zipfian),
}

impl KeyChooser {
    /// A chooser over `records` keys.
    pub(crate) fn new(distribution: Distribution, records: u64) -> Self {
        match distribution {
            Distribution::Uniform => KeyChooser::Uniform(records),
            Distribution::Zipfian => KeyChooser::Zipfian(Zipfian::new(records)),
        }
    }

    /// The next record number.
    pub(crate) fn next(&self, rng: &mut SmallRng) -> u64 {
        match self {
            KeyChooser::Uniform(n) => rng.random_range(0..*n),
            KeyChooser::Zipfian(z) => fnv1a(z.rank(rng)) % z.n,
        }
    }
}

/// FNV-1a over the 8 bytes of `v`, as YCSB scrambles ranks.
fn fnv1a(v: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The key of record `i`, YCSB style.
pub(crate) fn key(i: u64) -> bytes::Bytes {
    bytes::Bytes::from(format!("user{i:012}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipfian_stays_in_range_and_is_skewed() {
        let chooser = KeyChooser::new(Distribution::Zipfian, 1000);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0u32; 1000];
        for _ in 0..20_000 {
            let k = chooser.next(&mut rng);
            assert!(k < 1000);
            counts[k as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // Theta 0.99 over 1000 keys: the hottest key takes several percent, the top 10% of keys
        // well over half; uniform would give 0.1% and 10%.
        assert!(counts[0] > 20_000 / 50, "hottest key drew {}", counts[0]);
        assert!(counts[..100].iter().sum::<u32>() > 10_000);
    }

    #[test]
    fn uniform_stays_in_range() {
        let chooser = KeyChooser::new(Distribution::Uniform, 10);
        let mut rng = SmallRng::seed_from_u64(7);
        assert!((0..1000).all(|_| chooser.next(&mut rng) < 10));
    }
}

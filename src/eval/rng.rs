//! SplitMix64 (Steele et al. 2014): a tiny seeded generator, the same numbers everywhere.

/// The SplitMix64 generator.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 random bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A seed for stream `k` of `seed` (sample k, layer k), independent of batching.
pub(crate) fn stream(seed: u64, k: u64) -> u64 {
    let mut g = SplitMix::new(seed ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03));
    g.next_u64()
}

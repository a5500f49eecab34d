//! A small deterministic generator (SplitMix64) for the data generators: the same seed gives
//! the same state on every platform, with no dependency on `rand`'s algorithm choices.

/// SplitMix64: fast, deterministic, good enough for synthetic data (not for cryptography).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_F42D_4C95_7F2D)
    }

    /// A generator whose whole state is `state` (as [`Rng::state`] returned it), so a saved
    /// generator resumes exactly where it stopped.
    pub fn from_state(state: u64) -> Self {
        Rng(state)
    }

    /// The generator's whole state: save it, and [`Rng::from_state`] draws the same numbers an
    /// uninterrupted run would have drawn.
    pub fn state(&self) -> u64 {
        self.0
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A float uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// An integer uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A standard normal variate (Box–Muller; the second variate is discarded so that the
    /// state stays one `u64`).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // in (0, 1]: ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Picks one element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A fixed instant (2026-01-05 00:00:00 UTC) the generators count time from, in Unix nanoseconds.
pub const EPOCH_NANOS: i64 = 1_767_571_200_000_000_000;

/// Nanoseconds in one minute (the generators' bar length).
pub const MINUTE_NANOS: i64 = 60_000_000_000;

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = Rng::from_state(7);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn a_saved_state_resumes_the_same_stream() {
        let mut a = Rng::new(99);
        a.next_u64();
        let mut b = Rng::from_state(a.state());
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert!((0..1000).all(|_| a.below(3) < 3));
    }
}

//! The simulator's random numbers: wyrand seeded through SplitMix64, written out here so that a
//! seed gives the same run bit for bit whatever crate versions are resolved (a generator crate's
//! "small" RNG may change algorithm between versions), plus a table-driven exponential variate.
//!
//! A run draws about four numbers per context switch, so the generator's cost shows: wyrand (Wang
//! Yi's, public domain; one 64×64→128 multiply, passes BigCrush and PractRand) is about 8
//! instructions a draw against xoshiro256++'s 19 (four state words loaded and stored). The
//! exponential variates are integer products from a fixed-point table (no float conversions).
//! Both replaced xoshiro256++ and an `f32` table (issue 12, section 7): every seed's output
//! changed once then; the distributions did not (see the tests).

/// wyrand: a 64-bit counter (Weyl sequence) mixed by a 128-bit multiply.
#[derive(Clone, Debug)]
pub struct Rng {
    s: u64,
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fractional bits of [`exp_table`]'s fixed-point values.
const FRAC: u32 = 28;

/// `-ln((i + 0.5) / 1024)` for `i` in `0..1024`, in fixed point with [`FRAC`] fractional bits: the
/// exponential distribution's inverse CDF at the midpoints of 1024 equal-probability cells. Mean
/// 1.0 to within 0.1%; max 7.6 (the tail beyond is cut, which a workload generator does not miss).
fn exp_table() -> &'static [u32; 1024] {
    static T: std::sync::OnceLock<[u32; 1024]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0u32; 1024];
        for (i, v) in t.iter_mut().enumerate() {
            let x = -(((i as f64) + 0.5) / 1024.0).ln();
            *v = (x * (1u64 << FRAC) as f64).round() as u32;
        }
        t
    })
}

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let _ = exp_table();
        Rng { s: splitmix(&mut x) }
    }
    /// The next 64 random bits.
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.s = self.s.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.s as u128).wrapping_mul((self.s ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    }
    /// Uniform in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32 for the sizes used here).
    #[inline(always)]
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * n as u64) >> 32) as u32
    }
    /// Two independent values uniform in `0..n` (`n > 0`) from one draw: its two 32-bit halves,
    /// each by multiply-shift as in [`Rng::below`].
    #[inline(always)]
    pub fn below2(&mut self, n: u32) -> (u32, u32) {
        let r = self.next_u64();
        let hi = ((r >> 32) * n as u64) >> 32;
        let lo = ((r & 0xffff_ffff) * n as u64) >> 32;
        (hi as u32, lo as u32)
    }
    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) < p
    }
    /// An exponential variate with the given mean (nanoseconds), at least 1.
    #[inline]
    pub fn exp(&mut self, mean: u64) -> u64 {
        let r = self.next_u64();
        exp_value(exp_table(), r, mean)
    }
    /// The same variate as `exp(e.mean())`, without the table's lazy initialisation check.
    #[inline(always)]
    pub fn exp_of(&mut self, e: &Exp) -> u64 {
        let r = self.next_u64();
        exp_value(e.table, r, e.mean)
    }
}

/// The exponential variate of mean `mean` for the random word `r` (its top 10 bits): the table's
/// value times the mean, rounded down, at least 1.
#[inline(always)]
fn exp_value(table: &[u32; 1024], r: u64, mean: u64) -> u64 {
    let v = table[(r >> 54) as usize] as u64;
    if mean < 1 << 33 {
        // v < 2^31: the product fits in 64 bits
        ((v * mean) >> FRAC).max(1)
    } else {
        wide_variate(v, mean)
    }
}

/// [`exp_value`] for means of 2^33 ns (8.6 s) and more, out of line so that the common one stays
/// a branch.
#[cold]
#[inline(never)]
fn wide_variate(v: u64, mean: u64) -> u64 {
    u64::try_from((v as u128 * mean as u128) >> FRAC)
        .unwrap_or(u64::MAX)
        .max(1)
}

/// [`Rng::exp`] for one mean, prepared once for the hot draws (every burst and sleep): the same
/// values bit for bit, minus the table's lazy initialisation check per draw. (A table of the 1024
/// results per mean was tried: 8 KiB per distribution cost an L1 miss a draw.)
#[derive(Clone, Debug)]
pub struct Exp {
    table: &'static [u32; 1024],
    mean: u64,
}

impl Exp {
    /// The distribution of mean `mean` (nanoseconds).
    pub fn new(mean: u64) -> Exp {
        Exp {
            table: exp_table(),
            mean,
        }
    }
    /// Its mean.
    pub fn mean(&self) -> u64 {
        self.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = Rng::new(8);
        assert!((0..100).any(|_| a.next_u64() != c.next_u64()));
        assert!((0..1000).all(|_| a.below(10) < 10));
        assert!((0..1000).all(|_| {
            let (x, y) = a.below2(10);
            x < 10 && y < 10
        }));
    }

    /// The variates have the workload's mean and an exponential's shape: second moment 2·mean²,
    /// a share e^-1 above the mean, e^-3 above three means (within sampling error and the table's
    /// 1024 cells), for the means the workloads use (µs bursts and sleeps, ms sleeps) and small
    /// ones where rounding down shows.
    #[test]
    fn exponential_means_and_shape() {
        let n = 400_000u64;
        for mean in [1_000u64, 20_000, 60_000, 5_000_000, 123_456_789] {
            let e = Exp::new(mean);
            let mut r = Rng::new(mean ^ 0x5eed);
            let xs: Vec<u64> = (0..n).map(|_| r.exp_of(&e)).collect();
            let m = xs.iter().sum::<u64>() as f64 / n as f64;
            let m2 = xs.iter().map(|&x| (x as f64 / mean as f64).powi(2)).sum::<f64>() / n as f64;
            let above = |k: f64| xs.iter().filter(|&&x| x as f64 > k * mean as f64).count() as f64 / n as f64;
            // standard error of the mean: mean / sqrt(n) = 0.16%; the table's own mean is 0.1% low
            assert!(
                (m / mean as f64 - 1.0).abs() < 0.006,
                "mean {mean}: sample mean {m}"
            );
            assert!((m2 - 2.0).abs() < 0.04, "mean {mean}: second moment {m2}");
            assert!(
                (above(1.0) - (-1.0f64).exp()).abs() < 0.004,
                "mean {mean}: P(>mean)"
            );
            assert!(
                (above(3.0) - (-3.0f64).exp()).abs() < 0.002,
                "mean {mean}: P(>3 means)"
            );
        }
        // a mean of a few ns rounds down (and is at least 1), as before
        let mut r = Rng::new(1);
        let m7 = (0..n).map(|_| r.exp(7)).sum::<u64>() as f64 / n as f64;
        assert!((6.3..7.0).contains(&m7), "mean 7: {m7}");
    }

    #[test]
    fn uniform_halves_are_uniform_and_independent() {
        let mut r = Rng::new(11);
        let n = 200_000;
        let mut cells = [[0u32; 8]; 8];
        for _ in 0..n {
            let (a, b) = r.below2(8);
            cells[a as usize][b as usize] += 1;
        }
        // each of the 64 pairs 1/64 of the draws: chi-square with 63 degrees of freedom
        let want = n as f64 / 64.0;
        let chi2: f64 = cells
            .iter()
            .flatten()
            .map(|&c| (c as f64 - want).powi(2) / want)
            .sum();
        assert!(chi2 < 110.0, "chi-square {chi2}");
    }

    #[test]
    fn prepared_draws_equal_the_computed_variates() {
        for mean in [
            1,
            7,
            1000,
            20_000,
            60_000,
            123_456_789,
            (1 << 33) - 1,
            1 << 33,
            (1 << 59) - 1,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let e = Exp::new(mean);
            assert_eq!(e.mean(), mean);
            let (mut a, mut b) = (Rng::new(mean), Rng::new(mean));
            for _ in 0..5000 {
                let (x, y) = (a.exp(mean), b.exp_of(&e));
                assert_eq!(x, y);
                assert!(x >= 1);
            }
        }
        // the wide path agrees with the narrow one where both apply, and saturates
        let v = exp_table()[0] as u64;
        assert_eq!(
            wide_variate(v, (1 << 33) - 1),
            ((v * ((1 << 33) - 1)) >> FRAC).max(1)
        );
        assert_eq!(wide_variate(v, u64::MAX), u64::MAX);
    }
}

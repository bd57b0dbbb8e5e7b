//! The simulator's random numbers: xoshiro256++ seeded through SplitMix64, written out here so that
//! a seed gives the same run bit for bit whatever crate versions are resolved (a generator crate's
//! "small" RNG may change algorithm between versions), plus a table-driven exponential variate.

/// xoshiro256++ (Blackman and Vigna, public domain reference algorithm).
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `-ln((i + 0.5) / 1024)` for `i` in `0..1024`: the exponential distribution's inverse CDF at the
/// midpoints of 1024 equal-probability cells. Mean 1.0 to within 0.1%; max 7.6 (the tail beyond is
/// cut, which a workload generator does not miss).
fn exp_table() -> &'static [f32; 1024] {
    static T: std::sync::OnceLock<[f32; 1024]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0f32; 1024];
        for (i, v) in t.iter_mut().enumerate() {
            *v = -(((i as f64) + 0.5) / 1024.0).ln() as f32;
        }
        t
    })
}

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let s = [
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
        ];
        let _ = exp_table();
        Rng { s }
    }
    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let r = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }
    /// Uniform in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32 for the sizes used here).
    #[inline]
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * n as u64) >> 32) as u32
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
        exp_value(r, mean)
    }
    /// The same variate as `exp(e.mean())`, without the table's lazy initialisation check and the
    /// mean's integer-to-float conversion on every draw.
    #[inline(always)]
    pub fn exp_of(&mut self, e: &Exp) -> u64 {
        let r = self.next_u64();
        let x = e.table[(r >> 54) as usize] as f64 * e.mean_f;
        if e.fits_i64 {
            // the same value as `x as u64` for x in [0, 2^63), in a third of the instructions: a
            // saturating f64 -> u64 conversion is about 14 on x86-64 (there is no unsigned
            // `cvttsd2si`), f64 -> i64 is one plus two fix-ups
            ((x as i64) as u64).max(1)
        } else {
            wide_variate(x)
        }
    }
}

/// [`Rng::exp_of`]'s conversion for means of 2^59 ns and more, out of line so that the common one
/// stays a branch and is not merged into a select computing both.
#[cold]
#[inline(never)]
fn wide_variate(x: f64) -> u64 {
    (x as u64).max(1)
}

/// The exponential variate of mean `mean` for the random word `r` (its top 10 bits).
#[inline]
fn exp_value(r: u64, mean: u64) -> u64 {
    let v = exp_table()[(r >> 54) as usize];
    ((v as f64 * mean as f64) as u64).max(1)
}

/// [`Rng::exp`] for one mean, prepared once for the hot draws (every burst and sleep): the same
/// values bit for bit (the same f32 table, the same float product), minus per-draw set-up. (A
/// table of the 1024 results per mean was tried: 8 KiB per distribution cost an L1 miss a draw.)
#[derive(Clone, Debug)]
pub struct Exp {
    table: &'static [f32; 1024],
    mean_f: f64,
    mean: u64,
    /// Every variate (at most 7.7 × the mean) is below 2^63: [`Rng::exp_of`] may convert it
    /// through `i64`.
    fits_i64: bool,
}

impl Exp {
    /// The distribution of mean `mean` (nanoseconds).
    pub fn new(mean: u64) -> Exp {
        Exp {
            table: exp_table(),
            mean_f: mean as f64,
            mean,
            fits_i64: mean < 1 << 59,
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
    fn deterministic_and_roughly_exponential() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let n = 200_000u64;
        let sum: u64 = (0..n).map(|_| a.exp(1000)).sum();
        let mean = sum as f64 / n as f64;
        assert!((mean - 1000.0).abs() < 15.0, "mean {mean}");
        assert!((0..1000).all(|_| a.below(10) < 10));
    }

    #[test]
    fn tables_draw_exactly_the_computed_variates() {
        for mean in [
            1,
            7,
            1000,
            20_000,
            60_000,
            123_456_789,
            (1 << 59) - 1,
            1 << 59,
            u64::MAX / 3,
        ] {
            let e = Exp::new(mean);
            assert_eq!(e.mean(), mean);
            let (mut a, mut b) = (Rng::new(mean), Rng::new(mean));
            for _ in 0..5000 {
                assert_eq!(a.exp(mean), b.exp_of(&e));
            }
        }
    }
}

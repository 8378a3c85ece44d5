//! Seeded randomness that never changes between platforms or releases:
//! xoshiro256** seeded through SplitMix64, and integer-only derived helpers
//! (no `powf`/`ln`, whose last bits may differ between libms).

/// xoshiro256** generator.
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Expands `seed` into the full state, so nearby seeds give unrelated streams.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut split_mix = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [split_mix(), split_mix(), split_mix(), split_mix()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `p`; scaling by 2^53 is exact, so this is portable.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    /// A uniformly chosen element; `items` must not be empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Picks from `(item, weight)` pairs.
    pub fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (item, w) in items {
            if x < u64::from(*w) {
                return *item;
            }
            x -= u64::from(*w);
        }
        items[items.len() - 1].0
    }
}

/// Zipf-like index sampler: rank `r` has weight proportional to `1 / (r + offset)`,
/// so a few names are common and namesakes occur as they do in real populations.
pub struct Skewed {
    cumulative: Vec<u64>,
}

impl Skewed {
    /// A sampler over `0..len`; a larger `offset` flattens the skew.
    pub fn new(len: usize, offset: u64) -> Self {
        let mut total = 0;
        let cumulative = (0..len as u64)
            .map(|r| {
                total += 1_000_000_000 / (r + offset);
                total
            })
            .collect();
        Skewed { cumulative }
    }

    /// An index in `0..len`.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let x = rng.below(total);
        self.cumulative.partition_point(|&c| c <= x)
    }
}

/// A seeded bijection on `0..modulus` (`x -> a*x + b mod m` with `gcd(a, m) = 1`),
/// turning a counter into ids that are unique yet reveal no emission order.
pub struct Permutation {
    a: u128,
    b: u128,
    m: u128,
}

impl Permutation {
    /// A random bijection on `0..modulus`.
    pub fn new(rng: &mut Rng, modulus: u64) -> Self {
        let m = u128::from(modulus);
        let mut a = u128::from(modulus / 3 + rng.below(modulus / 2));
        while gcd(a, m) != 1 {
            a += 1;
        }
        let b = u128::from(rng.below(modulus));
        Permutation { a, b, m }
    }

    /// The image of `x`, which must be below the modulus.
    pub fn apply(&self, x: u64) -> u64 {
        ((self.a * u128::from(x) + self.b) % self.m) as u64
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

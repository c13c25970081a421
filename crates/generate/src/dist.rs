//! Random variates used by the traffic models.
//!
//! Everything is drawn from a [`rand_chacha::ChaCha12Rng`] through the
//! functions below (inverse-CDF or Box–Muller on plain `f64` arithmetic), so a
//! seed gives the same draws on every platform that has IEEE-754 `ln`/`exp`.

use rand::RngCore;
use rand_chacha::ChaCha12Rng;

pub(crate) type Rng = ChaCha12Rng;

/// Uniform on (0, 1] with 53 bits.
pub(crate) fn unit(rng: &mut Rng) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform integer in `lo..hi` (hi exclusive, hi > lo).
pub(crate) fn range(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo)
}

/// Uniform real in `[lo, hi)`.
pub(crate) fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * (1.0 - unit(rng))
}

/// Bernoulli(p).
pub(crate) fn chance(rng: &mut Rng, p: f64) -> bool {
    unit(rng) <= p
}

/// Exponential with the given mean.
pub(crate) fn exp(rng: &mut Rng, mean: f64) -> f64 {
    -mean * unit(rng).ln()
}

/// Standard normal (Box–Muller, one of the pair).
pub(crate) fn normal(rng: &mut Rng) -> f64 {
    let u1 = unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Lognormal: `exp(mu + sigma * N(0,1))`.
pub(crate) fn lognormal(rng: &mut Rng, mu: f64, sigma: f64) -> f64 {
    (mu + sigma * normal(rng)).exp()
}

/// Pareto with scale `xm` and shape `alpha`, truncated to `[xm, cap]` by
/// inverse CDF of the truncated law: `F(x) = (1-(xm/x)^a) / (1-(xm/cap)^a)`.
pub(crate) fn pareto_trunc(rng: &mut Rng, xm: f64, alpha: f64, cap: f64) -> f64 {
    let tail = (xm / cap).powf(alpha);
    let u = 1.0 - unit(rng); // [0,1)
    xm / (1.0 - u * (1.0 - tail)).powf(1.0 / alpha)
}

/// Geometric number of trials >= 1 with the given mean.
pub(crate) fn geometric(rng: &mut Rng, mean: f64) -> u32 {
    if mean <= 1.0 {
        return 1;
    }
    let p = 1.0 / mean;
    let u = unit(rng);
    (u.ln() / (1.0 - p).ln()).floor() as u32 + 1
}

/// Index drawn with probability proportional to `weights`.
pub(crate) fn weighted(rng: &mut Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = (1.0 - unit(rng)) * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Seconds (f64) to nanoseconds.
pub(crate) fn ns(s: f64) -> u64 {
    if s <= 0.0 {
        0
    } else {
        (s * 1e9).round() as u64
    }
}

//! Exact Gaussian long-memory generators by circulant embedding:
//! Davies & Harte (1987), "Tests for Hurst effect", Biometrika 74(1); see
//! also Wood & Chan (1994). The autocovariance gamma_0..gamma_m is embedded
//! in a circulant of size 2m whose eigenvalues (one real FFT) must be
//! non-negative; then one inverse FFT of scaled complex Gaussians gives a
//! sample with exactly that covariance.
use crate::error::SelfSimError;
use crate::stats::ln_gamma;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use realfft::num_complex::Complex;
use realfft::RealFftPlanner;

/// Autocovariance of unit-variance fGn:
/// gamma(k) = (|k+1|^{2H} - 2|k|^{2H} + |k-1|^{2H}) / 2.
pub fn fgn_autocov(h: f64, k: usize) -> f64 {
    let k = k as f64;
    let e = 2.0 * h;
    0.5 * ((k + 1.0).powf(e) - 2.0 * k.powf(e) + (k - 1.0).abs().powf(e))
}

/// Autocovariance of FARIMA(0,d,0) with unit innovation variance:
/// gamma(0) = Gamma(1-2d)/Gamma(1-d)^2, rho(k) = rho(k-1) (k-1+d)/(k-d)
/// (Hosking 1981). Returns gamma(0..n).
pub fn farima_autocov(d: f64, n: usize) -> Vec<f64> {
    let mut g = Vec::with_capacity(n);
    if n == 0 {
        return g;
    }
    g.push((ln_gamma(1.0 - 2.0 * d) - 2.0 * ln_gamma(1.0 - d)).exp());
    for k in 1..n {
        let kf = k as f64;
        let prev = g[k - 1];
        g.push(prev * (kf - 1.0 + d) / (kf - d));
    }
    g
}

/// Gaussian sample of length n with autocovariance `acov(0..=m)` by
/// circulant embedding, doubling the embedding while eigenvalues are
/// negative.
fn circulant_sample(
    method: &'static str,
    n: usize,
    seed: u64,
    acov: &dyn Fn(usize) -> Vec<f64>,
) -> Result<Vec<f64>, SelfSimError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut m = n.next_power_of_two().max(2);
    let mut planner = RealFftPlanner::<f64>::new();
    for _ in 0..6 {
        let g = acov(m + 1);
        let size = 2 * m;
        let mut c: Vec<f64> = Vec::with_capacity(size);
        c.extend_from_slice(&g[..=m]);
        c.extend(g[1..m].iter().rev());
        let fwd = planner.plan_fft_forward(size);
        let mut spec = fwd.make_output_vec();
        fwd.process(&mut c, &mut spec)
            .expect("buffer sizes come from the plan");
        let eig: Vec<f64> = spec.iter().map(|z| z.re).collect();
        let max = eig.iter().cloned().fold(0.0f64, f64::max);
        // Rounding can leave tiny negatives; treat those as zero.
        if eig.iter().any(|&e| e < -1e-10 * max) {
            m *= 2;
            continue;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut z = || -> f64 { StandardNormal.sample(&mut rng) };
        let mut w: Vec<Complex<f64>> = Vec::with_capacity(m + 1);
        let s = size as f64;
        w.push(Complex::new((eig[0].max(0.0) / s).sqrt() * z(), 0.0));
        for e in &eig[1..m] {
            let a = (e.max(0.0) / (2.0 * s)).sqrt();
            w.push(Complex::new(a * z(), a * z()));
        }
        w.push(Complex::new((eig[m].max(0.0) / s).sqrt() * z(), 0.0));
        let inv = planner.plan_fft_inverse(size);
        let mut out = inv.make_output_vec();
        inv.process(&mut w, &mut out)
            .expect("buffer sizes come from the plan");
        out.truncate(n);
        return Ok(out);
    }
    Err(SelfSimError::Numerical {
        method,
        msg: "circulant embedding has negative eigenvalues even at 64x the length".into(),
    })
}

/// Exact fractional Gaussian noise (unit variance) with Hurst parameter
/// `h` in (0, 1), seeded (ChaCha8).
pub fn synth_fgn(h: f64, n: usize, seed: u64) -> Result<Vec<f64>, SelfSimError> {
    if !(h > 0.0 && h < 1.0) {
        return Err(SelfSimError::InvalidParam {
            method: "synth-fgn",
            msg: format!("H = {h} not in (0, 1)"),
        });
    }
    circulant_sample("synth-fgn", n, seed, &|m| {
        (0..m).map(|k| fgn_autocov(h, k)).collect()
    })
}

/// Exact FARIMA(0,d,0) with unit innovation variance, d in (-1/2, 1/2)
/// (H = d + 1/2), seeded (ChaCha8).
pub fn synth_farima(d: f64, n: usize, seed: u64) -> Result<Vec<f64>, SelfSimError> {
    if !(d > -0.5 && d < 0.5) {
        return Err(SelfSimError::InvalidParam {
            method: "synth-farima",
            msg: format!("d = {d} not in (-1/2, 1/2)"),
        });
    }
    circulant_sample("synth-farima", n, seed, &|m| farima_autocov(d, m))
}

/// Gaussian AR(1) x_t = phi x_{t-1} + e_t started in stationarity (for
/// short-memory controls).
pub fn synth_ar1(phi: f64, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    let z0: f64 = StandardNormal.sample(&mut rng);
    let mut x = z0 / (1.0 - phi * phi).max(1e-12).sqrt();
    for _ in 0..n {
        out.push(x);
        let e: f64 = StandardNormal.sample(&mut rng);
        x = phi * x + e;
    }
    out
}

/// Gaussian white noise, seeded.
pub fn synth_white(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

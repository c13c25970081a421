//! Whittle approximate maximum likelihood for fractional Gaussian noise and
//! FARIMA(0,d,0), Beran (1994), "Statistics for Long-Memory Processes",
//! ch. 5-6 (and R package longmemo's WhittleEst, whose Nile results the
//! tests reproduce). The scale is profiled out:
//! Q(H) = ln( mean_j I_j / s_j(H) ) + (1/2pi) int ln s(H) over all Fourier
//! frequencies lambda_j = 2 pi j / N, j = 1..(N-1)/2 (the integral term is
//! (2/N) sum_j ln s_j for fGn and exactly 0 for FARIMA, as in longmemo).
//!
//! Standard error from the Fisher information: Var(H) = 1 / sum_j (g_j - gbar)^2
//! with g_j = d ln s_j / dH (the discrete form of 4 pi / (N int (d ln f)^2)).
//!
//! fGn spectral shape (Sinai 1976; Beran 1994 eq. 2.17), constants dropped:
//! s(lambda) = (1 - cos lambda) * sum_k |2 pi k + lambda|^(-2H-1). The k != 0
//! terms are summed to |k| = 20 and the tail is added as the midpoint-rule
//! integral (2 pi (K + 1/2) +- lambda)^(-2H) / (4 pi H) with its first
//! Euler-Maclaurin correction (the tail-correction idea of Paxson 1997,
//! carried to relative accuracy ~1e-9).
use crate::error::SelfSimError;
use crate::estimate::{DiagnosticPlot, Estimate, RangeUsed};
use crate::spectrum::Spectrum;
use crate::stats::{brent_min, min_log_sum_exp, validate};
use std::f64::consts::PI;

/// Minimum length (Nile has 663; 128 gives 63 frequencies).
pub const MIN_LEN: usize = 128;

/// Options shared by both Whittle estimators.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct WhittleConfig {}

const K_TERMS: usize = 20;

/// sum over k != 0 of |2 pi k + lambda|^(-2H-1) (the smooth part of the
/// fGn spectral sum), for lambda in [0, pi].
pub fn fgn_b_tilde(lambda: f64, h: f64) -> f64 {
    let e = -2.0 * h - 1.0;
    let mut s = 0.0;
    for k in (1..=K_TERMS).rev() {
        let a = 2.0 * PI * k as f64;
        s += (a + lambda).powf(e) + (a - lambda).powf(e);
    }
    // Tail k > K: midpoint-rule integral from K + 1/2 plus the first
    // Euler-Maclaurin correction +(1/24) f'(K + 1/2) (f(k) = int over
    // [k-1/2, k+1/2] minus f''(k)/24).
    let t = 2.0 * PI * (K_TERMS as f64 + 0.5);
    let (a, b) = (t + lambda, t - lambda);
    let integral = (a.powf(-2.0 * h) + b.powf(-2.0 * h)) / (4.0 * PI * h);
    let correction = (2.0 * PI * e / 24.0) * (a.powf(e - 1.0) + b.powf(e - 1.0));
    s + integral + correction
}

/// Natural log of the fGn spectral shape at lambda (constants dropped).
pub fn fgn_log_shape(lambda: f64, h: f64) -> f64 {
    (2.0 * (lambda / 2.0).sin().powi(2)).ln()
        + (lambda.powf(-2.0 * h - 1.0) + fgn_b_tilde(lambda, h)).ln()
}

/// Evaluates ln s_j(H) for fGn at all frequencies. For many frequencies the
/// smooth correction ln(1 + lambda^(2H+1) B(lambda)) is tabulated on a grid
/// and linearly interpolated (error below 1e-7), so one evaluation costs
/// O(N) multiply-adds instead of O(N K) powers.
struct FgnShape {
    ln_one_minus_cos: Vec<f64>,
    ln_lam: Vec<f64>,
    lam: Vec<f64>,
}

const GRID: usize = 2048;

impl FgnShape {
    fn new(lam: &[f64]) -> Self {
        FgnShape {
            // 1 - cos(l) = 2 sin^2(l/2), without cancellation at small l.
            ln_one_minus_cos: lam
                .iter()
                .map(|l| (2.0 * (l / 2.0).sin().powi(2)).ln())
                .collect(),
            ln_lam: lam.iter().map(|l| l.ln()).collect(),
            lam: lam.to_vec(),
        }
    }

    fn correction(l: f64, h: f64) -> f64 {
        (l.powf(2.0 * h + 1.0) * fgn_b_tilde(l, h)).ln_1p()
    }

    fn log_shape(&self, h: f64, out: &mut Vec<f64>) {
        out.clear();
        let e = -2.0 * h - 1.0;
        if self.lam.len() <= 1024 {
            for i in 0..self.lam.len() {
                out.push(
                    self.ln_one_minus_cos[i]
                        + e * self.ln_lam[i]
                        + Self::correction(self.lam[i], h),
                );
            }
            return;
        }
        let step = PI / GRID as f64;
        let table: Vec<f64> = (0..=GRID)
            .map(|i| Self::correction(i as f64 * step, h))
            .collect();
        for i in 0..self.lam.len() {
            let p = self.lam[i] / step;
            let k = (p as usize).min(GRID - 1);
            let f = p - k as f64;
            let c = table[k] + f * (table[k + 1] - table[k]);
            out.push(self.ln_one_minus_cos[i] + e * self.ln_lam[i] + c);
        }
    }
}

/// Profiled Whittle objective ln(mean I/s) + w * sum ln s. Beran's
/// normalisation makes the spectral shape satisfy int ln s = 0; with
/// `log_weight` = 2/N the sum is the Riemann approximation of that integral
/// (as longmemo's specFGN does). For FARIMA the integral
/// int ln|2 sin(l/2)| dl over (-pi, pi) is exactly 0, so the weight is 0.
fn q_value(per: &[f64], ln_s: &[f64], log_weight: f64) -> f64 {
    let m = per.len() as f64;
    let mut a = 0.0;
    let mut b = 0.0;
    // mean(I/s) = exp(-shift) mean(I exp(shift - ln s)); the shift by the
    // mean of ln s keeps exp() in range.
    let shift = ln_s.iter().sum::<f64>() / m;
    for (i, l) in per.iter().zip(ln_s) {
        a += i * (shift - l).exp();
        b += l;
    }
    (a / m).ln() - shift + log_weight * b
}

fn finish(
    method: &str,
    h: f64,
    lam: &[f64],
    per: &[f64],
    n: usize,
    ln_s: &dyn Fn(f64) -> Vec<f64>,
) -> Estimate {
    // Fisher information by central differences of ln s in H.
    let dh = 1e-5;
    let up = ln_s(h + dh);
    let dn = ln_s(h - dh);
    let g: Vec<f64> = up
        .iter()
        .zip(&dn)
        .map(|(a, b)| (a - b) / (2.0 * dh))
        .collect();
    let gm = g.iter().sum::<f64>() / g.len() as f64;
    let info: f64 = g.iter().map(|v| (v - gm) * (v - gm)).sum();
    let se = (info > 0.0).then(|| 1.0 / info.sqrt());
    // Diagnostic: periodogram and fitted spectrum (scale profiled) on log10.
    let at = ln_s(h);
    let scale = per.iter().zip(&at).map(|(i, l)| i / l.exp()).sum::<f64>() / per.len() as f64;
    let l10 = std::f64::consts::LN_10;
    let (px, py) = crate::estimate::thin(
        lam.iter().map(|l| l.log10()).collect(),
        per.iter().map(|p| p.max(1e-300).log10()).collect(),
        300,
    );
    let (cx, cy) = crate::estimate::thin(
        lam.iter().map(|l| l.log10()).collect(),
        at.iter().map(|s| (s + scale.ln()) / l10).collect(),
        300,
    );
    let plot = DiagnosticPlot {
        x: px,
        y: py,
        fit: None,
        x_label: "log10 frequency".into(),
        y_label: "log10 periodogram (fitted spectrum in cloud)".into(),
        log_log: true,
        cloud: cx.into_iter().zip(cy).collect(),
        ..Default::default()
    };
    let mut est = Estimate::new(
        method,
        h,
        se,
        RangeUsed::Frequencies { m: lam.len(), n },
        plot,
    );
    if !(0.02..=0.98).contains(&h) {
        est.warnings
            .push("estimate at the edge of the parameter space (0, 1)".into());
    }
    est
}

/// Whittle estimate of H under a fractional Gaussian noise model.
pub fn whittle_fgn(x: &[f64], cfg: &WhittleConfig) -> Result<Estimate, SelfSimError> {
    whittle_fgn_with(x, cfg, None)
}

pub(crate) fn whittle_fgn_with(
    x: &[f64],
    _cfg: &WhittleConfig,
    spec: Option<&Spectrum>,
) -> Result<Estimate, SelfSimError> {
    const METHOD: &str = "whittle-fgn";
    validate(x, METHOD, MIN_LEN)?;
    let n = x.len();
    let mut owned = Default::default();
    let (lam, per) = Spectrum::lowest(spec, x, (n - 1) / 2, &mut owned);
    let shape = FgnShape::new(lam);
    let mut buf = Vec::with_capacity(lam.len());
    // Q is smooth and unimodal in H on (0, 1): Brent's method directly.
    let h = brent_min(
        |h| {
            shape.log_shape(h, &mut buf);
            q_value(per, &buf, 2.0 / n as f64)
        },
        0.01,
        0.99,
        1e-7,
    );
    let f = |h: f64| {
        let mut v = Vec::new();
        shape.log_shape(h, &mut v);
        v
    };
    Ok(finish(METHOD, h, lam, per, n, &f))
}

/// Whittle estimate of H = d + 1/2 under a FARIMA(0,d,0) model with
/// spectral shape |2 sin(lambda/2)|^(-2d).
pub fn whittle_farima(x: &[f64], cfg: &WhittleConfig) -> Result<Estimate, SelfSimError> {
    whittle_farima_with(x, cfg, None)
}

pub(crate) fn whittle_farima_with(
    x: &[f64],
    _cfg: &WhittleConfig,
    spec: Option<&Spectrum>,
) -> Result<Estimate, SelfSimError> {
    const METHOD: &str = "whittle-farima";
    validate(x, METHOD, MIN_LEN)?;
    let n = x.len();
    let mut owned = Default::default();
    let (lam, per) = Spectrum::lowest(spec, x, (n - 1) / 2, &mut owned);
    let base: Vec<f64> = lam.iter().map(|l| (2.0 * (l / 2.0).sin()).ln()).collect();
    // Q(d) = ln mean_j I_j exp(2 d ln|2 sin(lambda_j/2)|): log-sum-exp, so
    // convex in d and minimised by safeguarded Newton.
    let z: Vec<f64> = base.iter().map(|b| 2.0 * b).collect();
    let h = min_log_sum_exp(per, &z, -0.49, 0.49) + 0.5;
    let f = |h: f64| {
        base.iter()
            .map(|b| -2.0 * (h - 0.5) * b)
            .collect::<Vec<f64>>()
    };
    Ok(finish(METHOD, h, lam, per, n, &f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_fgn_sum_matches_long_direct_sum() {
        for &h in &[0.3, 0.55, 0.75, 0.95] {
            for &l in &[1e-3, 0.1, 1.0, 3.0, PI] {
                let e = -2.0 * h - 1.0;
                let direct: f64 = (1..200_000)
                    .rev()
                    .map(|k| {
                        let a = 2.0 * PI * k as f64;
                        (a + l).powf(e) + (a - l).powf(e)
                    })
                    .sum();
                // Remaining tail beyond 200k terms by the integral, negligible.
                let t = 2.0 * PI * 199_999.5;
                let direct =
                    direct + ((t + l).powf(-2.0 * h) + (t - l).powf(-2.0 * h)) / (4.0 * PI * h);
                let approx = fgn_b_tilde(l, h);
                let rel = ((approx - direct) / direct).abs();
                assert!(rel < 1e-8, "H={h} l={l}: relative error {rel:e}");
            }
        }
    }

    #[test]
    fn grid_interpolation_matches_direct_evaluation() {
        let n = 1 << 14;
        let lam: Vec<f64> = (1..n / 2).map(|j| 2.0 * PI * j as f64 / n as f64).collect();
        let shape = FgnShape::new(&lam);
        let mut v = Vec::new();
        shape.log_shape(0.8, &mut v);
        for (i, l) in lam.iter().enumerate().step_by(97) {
            assert!((v[i] - fgn_log_shape(*l, 0.8)).abs() < 1e-6);
        }
    }
}

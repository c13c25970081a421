//! Periodogram at the Fourier frequencies.
use std::cell::RefCell;

use realfft::RealFftPlanner;

thread_local! {
    static PLANNER: RefCell<RealFftPlanner<f64>> = RefCell::new(RealFftPlanner::new());
}

/// Periodogram I(lambda_j) = |sum_t x_t e^{-i lambda_j t}|^2 / (2 pi N) at
/// lambda_j = 2 pi j / N for j = 1..=m (m <= (N-1)/2). Returns (lambda, I).
/// The mean only affects j = 0, which is never used.
pub(crate) fn periodogram(x: &[f64], m: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len();
    let m = m.min((n - 1) / 2);
    // The planner keeps its plans: a sliding window asks for the same size
    // again and again, and planning (twiddle factors) costs more than the FFT.
    let fft = PLANNER.with(|p| p.borrow_mut().plan_fft_forward(n));
    let mean = crate::stats::mean(x);
    let mut input: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let mut out = fft.make_output_vec();
    fft.process(&mut input, &mut out)
        .expect("buffer sizes come from the plan");
    let norm = 1.0 / (2.0 * std::f64::consts::PI * n as f64);
    let lam = (1..=m)
        .map(|j| 2.0 * std::f64::consts::PI * j as f64 / n as f64)
        .collect();
    let per = (1..=m).map(|j| out[j].norm_sqr() * norm).collect();
    (lam, per)
}

/// Full periodogram (j = 1..=(N-1)/2) computed once and shared by the
/// spectral estimators inside `analyze`.
pub(crate) struct Spectrum {
    pub lam: Vec<f64>,
    pub per: Vec<f64>,
}

impl Spectrum {
    pub fn of(x: &[f64]) -> Option<Spectrum> {
        if x.len() < 3 || x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let (lam, per) = periodogram(x, (x.len() - 1) / 2);
        Some(Spectrum { lam, per })
    }

    /// The lowest m ordinates, from this spectrum or freshly computed.
    pub fn lowest<'a>(
        spec: Option<&'a Spectrum>,
        x: &[f64],
        m: usize,
        owned: &'a mut (Vec<f64>, Vec<f64>),
    ) -> (&'a [f64], &'a [f64]) {
        let m = m.min((x.len() - 1) / 2);
        match spec {
            Some(s) => (&s.lam[..m], &s.per[..m]),
            None => {
                *owned = periodogram(x, m);
                (&owned.0, &owned.1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn periodogram_of_cosine_peaks_at_its_frequency() {
        // x_t = cos(2 pi 5 t / 64): |DFT| at j = 5 is N/2, so I = (N/2)^2/(2 pi N).
        let n = 64;
        let x: Vec<f64> = (0..n)
            .map(|t| (2.0 * std::f64::consts::PI * 5.0 * t as f64 / n as f64).cos())
            .collect();
        let (_, p) = super::periodogram(&x, 31);
        let expect = (n as f64 / 2.0).powi(2) / (2.0 * std::f64::consts::PI * n as f64);
        assert!((p[4] - expect).abs() < 1e-9);
        assert!(p.iter().enumerate().all(|(i, v)| i == 4 || *v < 1e-20));
    }
}

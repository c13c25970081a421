//! Abry-Veitch wavelet estimator: Abry & Veitch (1998), "Wavelet analysis
//! of long-range-dependent traffic", IEEE Trans. Information Theory 44(1);
//! Veitch & Abry (1999), "A wavelet-based joint estimator of the parameters
//! of long-range dependence", IEEE Trans. IT 45(3).
//!
//! Daubechies detail coefficients d_{j,k} come from a Mallat pyramid
//! started with the series itself as approximation. For each octave j,
//! y_j = log2(mean_k d_{j,k}^2) - g(n_j) with the bias correction
//! g(n) = psi(n/2)/ln 2 - log2(n/2) and variance zeta(2, n/2)/ln^2 2
//! (chi-square approximation with n_j independent coefficients). A weighted
//! regression of y_j on j over j1..j2 has slope alpha = 2H - 1 for fGn.
use crate::error::SelfSimError;
use crate::estimate::{DiagnosticPlot, Estimate, RangeUsed};
use crate::stats::{digamma, trigamma, validate, wls};

const METHOD: &str = "wavelet";

/// Daubechies wavelets with N vanishing moments (2N taps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Wavelet {
    Db2,
    Db3,
    Db4,
}

impl Wavelet {
    /// Low-pass (scaling) filter, normalised to sum sqrt(2) (Daubechies 1992).
    pub fn lowpass(self) -> &'static [f64] {
        match self {
            Wavelet::Db2 => &[
                0.482_962_913_144_690_3,
                0.836_516_303_737_469,
                0.224_143_868_041_857_35,
                -0.129_409_522_550_921_45,
            ],
            Wavelet::Db3 => &[
                0.332_670_552_950_082_6,
                0.806_891_509_311_092_5,
                0.459_877_502_118_491_5,
                -0.135_011_020_010_254_6,
                -0.085_441_273_882_026_66,
                0.035_226_291_885_709_54,
            ],
            Wavelet::Db4 => &[
                0.230_377_813_308_896_4,
                0.714_846_570_552_915_4,
                0.630_880_767_929_858_9,
                -0.027_983_769_416_859_85,
                -0.187_034_811_719_093_1,
                0.030_841_381_835_560_76,
                0.032_883_011_666_885_2,
                -0.010_597_401_785_069_03,
            ],
        }
    }

    /// High-pass (wavelet) filter g[k] = (-1)^k h[L-1-k].
    pub fn highpass(self) -> Vec<f64> {
        let h = self.lowpass();
        let l = h.len();
        (0..l)
            .map(|k| {
                if k % 2 == 0 {
                    h[l - 1 - k]
                } else {
                    -h[l - 1 - k]
                }
            })
            .collect()
    }

    /// Number of vanishing moments.
    pub fn moments(self) -> usize {
        self.lowpass().len() / 2
    }
}

/// Wavelet, octave range.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct WaveletConfig {
    pub wavelet: Wavelet,
    /// Lowest octave. Default 3: the finest octaves are distorted by
    /// initialising the pyramid with the samples (Veitch & Abry 1999 choose
    /// j1 by goodness of fit; 3 is their typical value for traffic).
    pub j1: usize,
    /// Highest octave; None = coarsest with at least `min_coeffs` coefficients.
    pub j2: Option<usize>,
    pub min_coeffs: usize,
}

impl Default for WaveletConfig {
    fn default() -> Self {
        WaveletConfig {
            wavelet: Wavelet::Db3,
            j1: 3,
            j2: None,
            min_coeffs: 8,
        }
    }
}

/// Minimum length: enough for octaves 3 and 4 with db3.
pub const MIN_LEN: usize = 256;

/// Mean squared detail coefficient and count for every octave 1, 2, ...
/// (boundary-free "valid" convolution, so no coefficient is polluted).
pub(crate) fn octave_energies(x: &[f64], w: Wavelet) -> Vec<(f64, usize)> {
    let h = w.lowpass();
    let g = w.highpass();
    let l = h.len();
    let mut a = x.to_vec();
    let mut out = Vec::new();
    while a.len() >= l {
        let len = (a.len() - l) / 2 + 1;
        let mut next = Vec::with_capacity(len);
        let mut energy = 0.0;
        for k in 0..len {
            let s = &a[2 * k..2 * k + l];
            let (mut ap, mut dt) = (0.0, 0.0);
            for m in 0..l {
                ap += h[m] * s[m];
                dt += g[m] * s[m];
            }
            next.push(ap);
            energy += dt * dt;
        }
        out.push((energy / len as f64, len));
        a = next;
    }
    out
}

/// Abry-Veitch estimate of H (fGn convention: alpha = 2H - 1).
pub fn wavelet_abry_veitch(x: &[f64], cfg: &WaveletConfig) -> Result<Estimate, SelfSimError> {
    validate(x, METHOD, 16)?;
    let en = octave_energies(x, cfg.wavelet);
    let top = en
        .iter()
        .rposition(|(_, n)| *n >= cfg.min_coeffs.max(2))
        .map(|i| i + 1)
        .unwrap_or(0);
    let j2 = cfg.j2.unwrap_or(top).min(top);
    let j1 = cfg.j1.max(1);
    if j2 < j1 + 1 {
        return Err(SelfSimError::TooShort {
            method: METHOD,
            n: x.len(),
            min: MIN_LEN,
        });
    }
    let (mut js, mut ys, mut vs) = (Vec::new(), Vec::new(), Vec::new());
    let ln2 = std::f64::consts::LN_2;
    for j in j1..=j2 {
        let (mu, nj) = en[j - 1];
        if mu <= 0.0 {
            continue;
        }
        let half = nj as f64 / 2.0;
        js.push(j as f64);
        ys.push(mu.log2() - (digamma(half) / ln2 - half.log2()));
        vs.push(trigamma(half) / (ln2 * ln2));
    }
    let (alpha, icpt, var_alpha) = wls(&js, &ys, &vs).ok_or(SelfSimError::Numerical {
        method: METHOD,
        msg: "fewer than two octaves with energy".into(),
    })?;
    let h = (alpha + 1.0) / 2.0;
    let se = var_alpha.sqrt() / 2.0;
    let plot = DiagnosticPlot {
        x: js,
        y: ys,
        fit: Some((alpha, icpt)),
        x_label: "octave j".into(),
        y_label: "log2 mu_j - g_j".into(),
        log_log: true,
        y_err: vs.iter().map(|v| 1.959_963_985 * v.sqrt()).collect(),
        ..Default::default()
    };
    let mut est = Estimate::new(METHOD, h, Some(se), RangeUsed::Octaves { j1, j2 }, plot);
    if j2 - j1 < 2 {
        est.warnings.push(format!(
            "only octaves {j1}..{j2}: series short for the wavelet method"
        ));
    }
    Ok(est)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daubechies_filters_are_orthonormal_with_vanishing_moments() {
        for w in [Wavelet::Db2, Wavelet::Db3, Wavelet::Db4] {
            let h = w.lowpass();
            let g = w.highpass();
            let s: f64 = h.iter().sum();
            assert!((s - 2f64.sqrt()).abs() < 1e-12, "{w:?} sum");
            // Orthonormal to even shifts.
            for shift in (0..h.len()).step_by(2) {
                let dot: f64 = (0..h.len() - shift).map(|k| h[k] * h[k + shift]).sum();
                let expect = if shift == 0 { 1.0 } else { 0.0 };
                assert!((dot - expect).abs() < 1e-12, "{w:?} shift {shift}");
            }
            // sum k^p g[k] = 0 for p < number of vanishing moments.
            for p in 0..w.moments() {
                let m: f64 = g
                    .iter()
                    .enumerate()
                    .map(|(k, v)| (k as f64).powi(p as i32) * v)
                    .sum();
                assert!(m.abs() < 1e-9, "{w:?} moment {p} = {m}");
            }
        }
    }
}

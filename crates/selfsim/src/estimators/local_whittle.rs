//! Local Whittle (Gaussian semiparametric) estimator, Robinson (1995),
//! "Gaussian semiparametric estimation of long range dependence",
//! Annals of Statistics 23(5). Minimises
//! R(H) = ln( (1/M) sum_j lambda_j^{2H-1} I_j ) - (2H-1)/M sum_j ln lambda_j
//! over the lowest M Fourier frequencies; asymptotic s.e. 1/(2 sqrt(M)).
use crate::error::SelfSimError;
use crate::estimate::{DiagnosticPlot, Estimate, RangeUsed};
use crate::spectrum::Spectrum;
use crate::stats::{log_spaced, min_log_sum_exp, validate};

const METHOD: &str = "local-whittle";

/// Bandwidth choice for Local Whittle.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LocalWhittleConfig {
    /// M = floor(N^exponent) when `m` is None. Default 0.65: the bandwidth
    /// used in the reference study (Taqqu-style surveys use 0.5..0.8;
    /// Robinson 1995 only requires M/N -> 0).
    pub m_exponent: f64,
    /// Explicit number of frequencies (overrides the exponent).
    pub m: Option<usize>,
}

impl Default for LocalWhittleConfig {
    fn default() -> Self {
        LocalWhittleConfig {
            m_exponent: 0.65,
            m: None,
        }
    }
}

/// Minimum series length: with N = 64 and the default exponent M = 14.
pub const MIN_LEN: usize = 64;

/// Local Whittle H from precomputed ln(lambda_j) and I_j (j = 1..=M).
pub(crate) fn lw_from_periodogram(lam_ln: &[f64], per: &[f64]) -> f64 {
    let mean_ln = lam_ln.iter().sum::<f64>() / lam_ln.len() as f64;
    // With centred z_j = ln lambda_j - mean, R = ln sum_j I_j exp((2H-1) z_j)
    // + const: convex in H, minimised by safeguarded Newton. The bracket
    // allows H >= 1 so non-stationary data show up as such.
    let z: Vec<f64> = lam_ln.iter().map(|l| l - mean_ln).collect();
    let e = min_log_sum_exp(per, &z, -1.998, 1.998);
    (e + 1.0) / 2.0
}

/// Number of frequencies used for a series of length n.
pub fn bandwidth(n: usize, cfg: &LocalWhittleConfig) -> usize {
    let m = cfg
        .m
        .unwrap_or_else(|| (n as f64).powf(cfg.m_exponent).floor() as usize);
    m.clamp(4, (n - 1) / 2)
}

/// Local Whittle estimate of H.
pub fn local_whittle(x: &[f64], cfg: &LocalWhittleConfig) -> Result<Estimate, SelfSimError> {
    local_whittle_with(x, cfg, None)
}

pub(crate) fn local_whittle_with(
    x: &[f64],
    cfg: &LocalWhittleConfig,
    spec: Option<&Spectrum>,
) -> Result<Estimate, SelfSimError> {
    validate(x, METHOD, MIN_LEN)?;
    if !(cfg.m_exponent > 0.0 && cfg.m_exponent < 1.0) {
        return Err(SelfSimError::InvalidParam {
            method: METHOD,
            msg: format!("m_exponent {} not in (0, 1)", cfg.m_exponent),
        });
    }
    let n = x.len();
    let m = bandwidth(n, cfg);
    let mut owned = Default::default();
    let (lam, per) = Spectrum::lowest(spec, x, m, &mut owned);
    let lam_ln: Vec<f64> = lam.iter().map(|l| l.ln()).collect();
    let h = lw_from_periodogram(&lam_ln, per);
    let se = 1.0 / (2.0 * (m as f64).sqrt());
    // Diagnostic: log periodogram against log frequency with the implied
    // slope 1 - 2H through the centroid of the points.
    let xs: Vec<f64> = lam.iter().map(|l| l.log10()).collect();
    let ys: Vec<f64> = per.iter().map(|p| p.max(1e-300).log10()).collect();
    let slope = 1.0 - 2.0 * h;
    let intercept = crate::stats::mean(&ys) - slope * crate::stats::mean(&xs);
    let (xs, ys) = crate::estimate::thin(xs, ys, 300);
    let plot = DiagnosticPlot {
        x: xs,
        y: ys,
        fit: Some((slope, intercept)),
        x_label: "log10 frequency".into(),
        y_label: "log10 periodogram".into(),
        log_log: true,
        ..Default::default()
    };
    let mut est = Estimate::new(METHOD, h, Some(se), RangeUsed::Frequencies { m, n }, plot);
    if m < 30 {
        est.warnings.push(format!(
            "only M={m} frequencies: the normal approximation for the s.e. is poor"
        ));
    }
    if h >= 1.0 {
        est.warnings
            .push("H >= 1: the series looks non-stationary (trend or unit root?)".into());
    }
    Ok(est)
}

/// H against bandwidth M, to find the flat region of the Local Whittle
/// estimate (the reference study's "H vs M" plot). Returns a plot with
/// x = log10 M, y = H and `y_err` = 1.96/(2 sqrt M), for `count`
/// log-spaced M from 8 to (N-1)/2.
pub fn local_whittle_h_vs_m(x: &[f64], count: usize) -> Result<DiagnosticPlot, SelfSimError> {
    local_whittle_h_vs_m_with(x, count, None)
}

pub(crate) fn local_whittle_h_vs_m_with(
    x: &[f64],
    count: usize,
    spec: Option<&Spectrum>,
) -> Result<DiagnosticPlot, SelfSimError> {
    validate(x, METHOD, MIN_LEN)?;
    let n = x.len();
    let mmax = (n - 1) / 2;
    let mut owned = Default::default();
    let (lam, per) = Spectrum::lowest(spec, x, mmax, &mut owned);
    let lam_ln: Vec<f64> = lam.iter().map(|l| l.ln()).collect();
    let ms = log_spaced(8, mmax, count.max(2));
    let mut plot = DiagnosticPlot {
        x_label: "log10 M (number of frequencies)".into(),
        y_label: "Local Whittle H".into(),
        log_log: false,
        ..Default::default()
    };
    for m in ms {
        plot.x.push((m as f64).log10());
        plot.y.push(lw_from_periodogram(&lam_ln[..m], &per[..m]));
        plot.y_err.push(1.959_963_985 / (2.0 * (m as f64).sqrt()));
    }
    Ok(plot)
}

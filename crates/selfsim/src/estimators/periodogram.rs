//! Log-periodogram regressions.
//!
//! * Periodogram regression: ln I(lambda_j) on ln lambda_j over the lowest
//!   frequencies; slope beta = 1 - 2H, so H = (1 - beta)/2. Default: lowest
//!   10% of the Fourier frequencies, as in Taqqu, Teverovsky & Willinger (1995).
//! * GPH: Geweke & Porter-Hudak (1983), "The estimation and application of
//!   long memory time series models", J. Time Series Analysis 4(4): ln I_j on
//!   ln(4 sin^2(lambda_j/2)), slope = -d, H = d + 1/2, M = N^0.5 (their
//!   choice). Var(ln I_j) = pi^2/6, so s.e.(d) = sqrt(pi^2 / (6 Sxx)), which
//!   tends to pi / sqrt(24 M).
use crate::error::SelfSimError;
use crate::estimate::{DiagnosticPlot, Estimate, RangeUsed};
use crate::spectrum::Spectrum;
use crate::stats::{ols, validate};
use std::f64::consts::PI;

/// Frequency ranges for the two regressions.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PeriodogramConfig {
    /// Fraction of the (N-1)/2 Fourier frequencies used by the plain
    /// periodogram regression (Taqqu et al. 1995: 0.1).
    pub fraction: f64,
    /// GPH bandwidth exponent: M = N^exponent (GPH 1983: 0.5).
    pub gph_exponent: f64,
}

impl Default for PeriodogramConfig {
    fn default() -> Self {
        PeriodogramConfig {
            fraction: 0.1,
            gph_exponent: 0.5,
        }
    }
}

/// Minimum length: GPH with N = 128 uses M = 11 frequencies.
pub const MIN_LEN: usize = 128;

fn regress(
    method: &'static str,
    x: &[f64],
    m: usize,
    gph: bool,
    spec: Option<&Spectrum>,
) -> Result<Estimate, SelfSimError> {
    let n = x.len();
    let mut owned = Default::default();
    let (lam, per) = Spectrum::lowest(spec, x, m, &mut owned);
    let m = lam.len();
    if per.iter().any(|p| *p <= 0.0) {
        return Err(SelfSimError::Numerical {
            method,
            msg: "zero periodogram ordinate: cannot take its logarithm".into(),
        });
    }
    let xs: Vec<f64> = if gph {
        lam.iter()
            .map(|l| (4.0 * (l / 2.0).sin().powi(2)).ln())
            .collect()
    } else {
        lam.iter().map(|l| l.ln()).collect()
    };
    let ys: Vec<f64> = per.iter().map(|p| p.ln()).collect();
    let fit = ols(&xs, &ys).ok_or(SelfSimError::Numerical {
        method,
        msg: "degenerate regression".into(),
    })?;
    let se_slope = (PI * PI / 6.0 / fit.sxx).sqrt();
    let (h, se) = if gph {
        (0.5 - fit.slope, se_slope)
    } else {
        ((1.0 - fit.slope) / 2.0, se_slope / 2.0)
    };
    // The plot is in log10 units; convert the natural-log fit.
    let l10 = std::f64::consts::LN_10;
    let (px, py) = crate::estimate::thin(
        xs.iter().map(|v| v / l10).collect(),
        ys.iter().map(|v| v / l10).collect(),
        300,
    );
    let plot = DiagnosticPlot {
        x: px,
        y: py,
        fit: Some((fit.slope, fit.intercept / l10)),
        x_label: if gph {
            "log10 4 sin^2(lambda/2)".into()
        } else {
            "log10 frequency".into()
        },
        y_label: "log10 periodogram".into(),
        log_log: true,
        ..Default::default()
    };
    let mut est = Estimate::new(method, h, Some(se), RangeUsed::Frequencies { m, n }, plot);
    if m < 20 {
        est.warnings
            .push(format!("only {m} frequencies in the regression"));
    }
    Ok(est)
}

/// Periodogram regression over the lowest `cfg.fraction` of frequencies.
pub fn periodogram_regression(
    x: &[f64],
    cfg: &PeriodogramConfig,
) -> Result<Estimate, SelfSimError> {
    periodogram_regression_with(x, cfg, None)
}

pub(crate) fn periodogram_regression_with(
    x: &[f64],
    cfg: &PeriodogramConfig,
    spec: Option<&Spectrum>,
) -> Result<Estimate, SelfSimError> {
    const METHOD: &str = "periodogram";
    validate(x, METHOD, MIN_LEN)?;
    if !(cfg.fraction > 0.0 && cfg.fraction <= 1.0) {
        return Err(SelfSimError::InvalidParam {
            method: METHOD,
            msg: format!("fraction {} not in (0, 1]", cfg.fraction),
        });
    }
    let m = (((x.len() - 1) / 2) as f64 * cfg.fraction).floor().max(4.0) as usize;
    regress(METHOD, x, m, false, spec)
}

/// GPH log-periodogram estimate with M = N^gph_exponent.
pub fn gph(x: &[f64], cfg: &PeriodogramConfig) -> Result<Estimate, SelfSimError> {
    gph_with(x, cfg, None)
}

pub(crate) fn gph_with(
    x: &[f64],
    cfg: &PeriodogramConfig,
    spec: Option<&Spectrum>,
) -> Result<Estimate, SelfSimError> {
    const METHOD: &str = "gph";
    validate(x, METHOD, MIN_LEN)?;
    if !(cfg.gph_exponent > 0.0 && cfg.gph_exponent < 1.0) {
        return Err(SelfSimError::InvalidParam {
            method: METHOD,
            msg: format!("gph_exponent {} not in (0, 1)", cfg.gph_exponent),
        });
    }
    let m = (x.len() as f64).powf(cfg.gph_exponent).floor().max(4.0) as usize;
    regress(METHOD, x, m, true, spec)
}

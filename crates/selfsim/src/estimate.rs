//! The common result type of every estimator.
use serde::Serialize;

/// Points of an estimator's diagnostic plot and its fitted line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiagnosticPlot {
    /// Abscissae of the fitted points (already log10 when `log_log`).
    pub x: Vec<f64>,
    /// Ordinates of the fitted points (already log10 when `log_log`).
    pub y: Vec<f64>,
    /// Fitted line (slope, intercept) in the same coordinates as x, y.
    pub fit: Option<(f64, f64)>,
    pub x_label: String,
    pub y_label: String,
    /// True when x and y are log10 values of the underlying quantities.
    pub log_log: bool,
    /// Optional point cloud drawn behind the fitted points (e.g. the R/S
    /// pox plot: one point per starting block), same coordinates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cloud: Vec<(f64, f64)>,
    /// Optional error bars (half-widths) for y, e.g. wavelet octave CIs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub y_err: Vec<f64>,
}

/// The range an estimator used.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RangeUsed {
    /// Block or box sizes (R/S, aggregated variance, absolute moments, DFA).
    BlockSizes {
        min: usize,
        max: usize,
        count: usize,
    },
    /// The lowest `m` Fourier frequencies 2*pi*j/N, j = 1..=m.
    Frequencies { m: usize, n: usize },
    /// Wavelet octaves j1..=j2.
    Octaves { j1: usize, j2: usize },
}

impl std::fmt::Display for RangeUsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RangeUsed::BlockSizes { min, max, count } => {
                write!(f, "sizes {min}..{max} ({count})")
            }
            RangeUsed::Frequencies { m, n } => write!(f, "M={m} of N/2={}", n / 2),
            RangeUsed::Octaves { j1, j2 } => write!(f, "octaves {j1}..{j2}"),
        }
    }
}

/// An estimate of the Hurst parameter H.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Short method name, e.g. "local-whittle".
    pub method: String,
    pub h: f64,
    /// Standard error of H (asymptotic or from the fit), when available.
    pub std_err: Option<f64>,
    /// 95% confidence interval for H, when available.
    pub ci: Option<(f64, f64)>,
    pub range_used: RangeUsed,
    pub plot: DiagnosticPlot,
    pub warnings: Vec<String>,
}

impl Estimate {
    /// Builds an estimate with a normal-theory 95% CI from the standard error.
    pub(crate) fn new(
        method: &str,
        h: f64,
        std_err: Option<f64>,
        range_used: RangeUsed,
        plot: DiagnosticPlot,
    ) -> Self {
        let ci = std_err.map(|s| (h - 1.959_963_985 * s, h + 1.959_963_985 * s));
        Estimate {
            method: method.to_string(),
            h,
            std_err,
            ci,
            range_used,
            plot,
            warnings: Vec::new(),
        }
    }
}

/// Thins plot points for display and JSON: when there are more than
/// `bins` points, averages them within `bins` equal-width bins of x (x is
/// log10 frequency in the spectral plots, so this is log-binning). The fit
/// is computed on the full data before thinning.
pub(crate) fn thin(x: Vec<f64>, y: Vec<f64>, bins: usize) -> (Vec<f64>, Vec<f64>) {
    if x.len() <= bins || bins == 0 {
        return (x, y);
    }
    let (lo, hi) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| {
        (a.0.min(*v), a.1.max(*v))
    });
    let width = (hi - lo) / bins as f64;
    if width.is_nan() || width <= 0.0 {
        return (x, y);
    }
    let mut acc = vec![(0.0, 0.0, 0usize); bins];
    for (a, b) in x.iter().zip(&y) {
        let k = (((a - lo) / width) as usize).min(bins - 1);
        acc[k].0 += a;
        acc[k].1 += b;
        acc[k].2 += 1;
    }
    acc.into_iter()
        .filter(|a| a.2 > 0)
        .map(|(a, b, c)| (a / c as f64, b / c as f64))
        .unzip()
}

//! Runs every estimator on one series and formats the study-style report.
use crate::estimate::{DiagnosticPlot, Estimate};
use crate::estimators::*;
use crate::summary::Summary;
use serde::Serialize;
use std::fmt;

/// Settings for every estimator (defaults documented on each config).
#[derive(Debug, Clone, Serialize)]
pub struct AnalyzeConfig {
    /// Name printed in the report (e.g. "total bytes/0.1 s").
    pub name: String,
    /// Bin width of the series in seconds, if it is a binned series.
    pub bin_width_s: Option<f64>,
    pub rs: RsConfig,
    pub periodogram: PeriodogramConfig,
    pub local_whittle: LocalWhittleConfig,
    pub agg: AggConfig,
    /// DFA orders to run (default 1 and 2).
    pub dfa_orders: Vec<usize>,
    pub dfa: DfaConfig,
    pub wavelet: WaveletConfig,
    pub whittle: WhittleConfig,
    /// Points of the Local Whittle H-vs-M curve (0 = skip).
    pub h_vs_m_points: usize,
}

impl Default for AnalyzeConfig {
    fn default() -> Self {
        AnalyzeConfig {
            name: "series".into(),
            bin_width_s: None,
            rs: RsConfig::default(),
            periodogram: PeriodogramConfig::default(),
            local_whittle: LocalWhittleConfig::default(),
            agg: AggConfig::default(),
            dfa_orders: vec![1, 2],
            dfa: DfaConfig::default(),
            wavelet: WaveletConfig::default(),
            whittle: WhittleConfig::default(),
            h_vs_m_points: 40,
        }
    }
}

/// One method's outcome: an estimate or the reason it failed.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    pub method: String,
    pub estimate: Option<Estimate>,
    pub error: Option<String>,
}

/// Everything [`analyze`] found about one series.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesReport {
    pub name: String,
    pub n: usize,
    pub bin_width_s: Option<f64>,
    pub summary: Option<Summary>,
    /// Series-level problems (constant, NaN, trend, level shift, too short).
    pub warnings: Vec<String>,
    pub estimates: Vec<MethodResult>,
    /// Hurst's V statistic (R/S over sqrt n) for cycle detection.
    pub v_statistic: Option<DiagnosticPlot>,
    /// Local Whittle H against bandwidth M.
    pub h_vs_m: Option<DiagnosticPlot>,
    /// Series thinned for plotting: (index, value) pairs, at most ~4000
    /// (min and max of each stretch, so peaks survive).
    #[serde(skip)]
    pub preview: Vec<(f64, f64)>,
}

impl SeriesReport {
    /// The estimate of a method by name (e.g. "local-whittle").
    pub fn get(&self, method: &str) -> Option<&Estimate> {
        self.estimates
            .iter()
            .find(|m| m.method == method)
            .and_then(|m| m.estimate.as_ref())
    }
}

fn preview(x: &[f64]) -> Vec<(f64, f64)> {
    let max_pairs = 2000;
    if x.len() <= 2 * max_pairs {
        return x.iter().enumerate().map(|(i, v)| (i as f64, *v)).collect();
    }
    let step = x.len().div_ceil(max_pairs);
    let mut out = Vec::with_capacity(2 * max_pairs);
    for (k, c) in x.chunks(step).enumerate() {
        let (mut imin, mut imax) = (0, 0);
        for (i, v) in c.iter().enumerate() {
            if *v < c[imin] {
                imin = i;
            }
            if *v > c[imax] {
                imax = i;
            }
        }
        let (a, b) = if imin < imax {
            (imin, imax)
        } else {
            (imax, imin)
        };
        out.push(((k * step + a) as f64, c[a]));
        out.push(((k * step + b) as f64, c[b]));
    }
    out
}

type Runner<'a> = Box<dyn Fn() -> Result<Estimate, crate::SelfSimError> + 'a>;

/// Runs every estimator. Never panics on bad data: failures become
/// per-method messages and series-level warnings.
pub fn analyze(x: &[f64], cfg: &AnalyzeConfig) -> SeriesReport {
    let mut warnings = Vec::new();
    let summary = Summary::of(x);
    if x.is_empty() {
        warnings.push("series is empty".into());
    } else if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        warnings.push(format!("value {i} is not finite ({})", x[i]));
    } else if summary.as_ref().is_some_and(|s| s.variance == 0.0) {
        warnings.push("series is constant: H is undefined".into());
    } else {
        warnings.extend(crate::stats::data_warnings(x));
        if x.len() < 1000 {
            warnings.push(format!(
                "only {} values: estimates of H have large errors below about 1000 values",
                x.len()
            ));
        }
    }
    let spec = crate::spectrum::Spectrum::of(x);
    let sp = spec.as_ref();
    let rs = rs_and_v(x, &cfg.rs);
    let v_stat = rs.as_ref().ok().map(|r| r.1.clone());
    let rs = rs.map(|r| r.0);
    let mut runs: Vec<(&str, Runner<'_>)> = vec![
        ("rs", Box::new(|| rs.clone())),
        (
            "periodogram",
            Box::new(|| periodogram::periodogram_regression_with(x, &cfg.periodogram, sp)),
        ),
        (
            "gph",
            Box::new(|| periodogram::gph_with(x, &cfg.periodogram, sp)),
        ),
        (
            "local-whittle",
            Box::new(|| local_whittle::local_whittle_with(x, &cfg.local_whittle, sp)),
        ),
        ("aggvar", Box::new(|| aggregated_variance(x, &cfg.agg))),
        ("absmom", Box::new(|| abs_moment(x, &cfg.agg))),
    ];
    for &q in &cfg.dfa_orders {
        let name = if q == 1 { "dfa1" } else { "dfa2" };
        runs.push((
            name,
            Box::new(move || {
                dfa(
                    x,
                    &DfaConfig {
                        order: q,
                        ..cfg.dfa
                    },
                )
            }),
        ));
    }
    runs.push(("wavelet", Box::new(|| wavelet_abry_veitch(x, &cfg.wavelet))));
    runs.push((
        "whittle-fgn",
        Box::new(|| whittle::whittle_fgn_with(x, &cfg.whittle, sp)),
    ));
    runs.push((
        "whittle-farima",
        Box::new(|| whittle::whittle_farima_with(x, &cfg.whittle, sp)),
    ));
    let estimates = runs
        .into_iter()
        .map(|(name, f)| match f() {
            Ok(e) if e.h.is_finite() => MethodResult {
                method: name.into(),
                estimate: Some(e),
                error: None,
            },
            Ok(_) => MethodResult {
                method: name.into(),
                estimate: None,
                error: Some(format!("{name}: estimate is not finite")),
            },
            Err(e) => MethodResult {
                method: name.into(),
                estimate: None,
                error: Some(e.to_string()),
            },
        })
        .collect();
    SeriesReport {
        name: cfg.name.clone(),
        n: x.len(),
        bin_width_s: cfg.bin_width_s,
        summary,
        warnings,
        estimates,
        v_statistic: v_stat,
        h_vs_m: (cfg.h_vs_m_points > 0)
            .then(|| local_whittle::local_whittle_h_vs_m_with(x, cfg.h_vs_m_points, sp).ok())
            .flatten(),
        preview: preview(x),
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

impl fmt::Display for SeriesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Series: {} (N = {}", self.name, self.n)?;
        if let Some(w) = self.bin_width_s {
            write!(f, ", bin {w} s")?;
        }
        writeln!(f, ")")?;
        if let Some(s) = &self.summary {
            writeln!(
                f,
                "  {:>14} {:>14} {:>14} {:>14} {:>10} {:>8} {:>9}",
                "mean", "variance", "std", "peak", "peak at", "σ/μ", "peak/mean"
            )?;
            writeln!(
                f,
                "  {:>14.4} {:>14.4e} {:>14.4} {:>14.4} {:>10} {:>8} {:>9}",
                s.mean,
                s.variance,
                s.std,
                s.peak,
                s.peak_index,
                opt(s.variability, 3),
                opt(s.peak_to_mean, 2)
            )?;
        }
        writeln!(
            f,
            "  {:<15} {:>7} {:>7} {:>17}  range used",
            "method", "H", "s.e.", "95% CI"
        )?;
        for m in &self.estimates {
            match (&m.estimate, &m.error) {
                (Some(e), _) => {
                    let ci =
                        e.ci.map_or("-".into(), |(a, b)| format!("[{a:.3}, {b:.3}]"));
                    writeln!(
                        f,
                        "  {:<15} {:>7.3} {:>7} {:>17}  {}",
                        m.method,
                        e.h,
                        opt(e.std_err, 3),
                        ci,
                        e.range_used
                    )?;
                }
                (None, err) => writeln!(
                    f,
                    "  {:<15} {:>7}  error: {}",
                    m.method,
                    "-",
                    err.as_deref().unwrap_or("failed")
                )?,
            }
        }
        let notes: Vec<String> = self
            .estimates
            .iter()
            .filter_map(|m| m.estimate.as_ref())
            .flat_map(|e| e.warnings.iter().map(move |w| format!("{}: {w}", e.method)))
            .collect();
        for w in self.warnings.iter().chain(&notes) {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

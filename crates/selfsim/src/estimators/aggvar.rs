//! Aggregated variance (variance-time plot) and absolute moments: the block
//! means X^(m) of an H-self-similar series satisfy Var X^(m) ~ m^(2H-2) and
//! E|X^(m) - mean| ~ m^(H-1). Taqqu, Teverovsky & Willinger (1995), sections
//! 2.1-2.2; the variance-time plot is that of Leland et al. (1994). Both are
//! biased by short-range dependence and, for H near 1, downward by the
//! estimated mean; the reported s.e. is the regression s.e.
use crate::error::SelfSimError;
use crate::estimate::{DiagnosticPlot, Estimate, RangeUsed};
use crate::stats::{log_spaced, ols, validate};

/// Block sizes for the aggregation methods.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct AggConfig {
    /// Smallest block (default 10, as in Taqqu et al. 1995's plots).
    pub min_block: usize,
    /// At least this many blocks at the largest size (default 10).
    pub min_blocks: usize,
    /// Number of log-spaced sizes.
    pub sizes: usize,
}

impl Default for AggConfig {
    fn default() -> Self {
        AggConfig {
            min_block: 10,
            min_blocks: 10,
            sizes: 20,
        }
    }
}

/// Minimum length: two block sizes with 10 blocks each.
pub const MIN_LEN: usize = 200;

fn block_means(x: &[f64], m: usize) -> Vec<f64> {
    x.chunks_exact(m)
        .map(|b| b.iter().sum::<f64>() / m as f64)
        .collect()
}

fn run(
    x: &[f64],
    cfg: &AggConfig,
    method: &'static str,
    stat: impl Fn(&[f64], f64) -> f64,
    moment: f64,
    y_label: &str,
) -> Result<Estimate, SelfSimError> {
    validate(x, method, MIN_LEN)?;
    let n = x.len();
    let max = n / cfg.min_blocks.max(2);
    if max < cfg.min_block * 2 {
        return Err(SelfSimError::TooShort {
            method,
            n,
            min: cfg.min_block * 2 * cfg.min_blocks,
        });
    }
    let mu = crate::stats::mean(x);
    let (mut xs, mut ys, mut used) = (Vec::new(), Vec::new(), Vec::new());
    for m in log_spaced(cfg.min_block.max(1), max, cfg.sizes) {
        let v = stat(&block_means(x, m), mu);
        if v > 0.0 && v.is_finite() {
            xs.push((m as f64).log10());
            ys.push(v.log10());
            used.push(m);
        }
    }
    let fit = ols(&xs, &ys).ok_or(SelfSimError::Numerical {
        method,
        msg: "fewer than two usable block sizes".into(),
    })?;
    // slope = moment * (H - 1)
    let h = 1.0 + fit.slope / moment;
    let se = fit.slope_se.map(|s| s / moment);
    let plot = DiagnosticPlot {
        x: xs,
        y: ys,
        fit: Some((fit.slope, fit.intercept)),
        x_label: "log10 block size m".into(),
        y_label: y_label.into(),
        log_log: true,
        ..Default::default()
    };
    let range = RangeUsed::BlockSizes {
        min: used[0],
        max: *used.last().unwrap(),
        count: used.len(),
    };
    Ok(Estimate::new(method, h, se, range, plot))
}

/// Aggregated-variance (variance-time) estimate: slope 2H - 2.
pub fn aggregated_variance(x: &[f64], cfg: &AggConfig) -> Result<Estimate, SelfSimError> {
    run(
        x,
        cfg,
        "aggvar",
        |b, _| crate::stats::variance(b),
        2.0,
        "log10 variance of block means",
    )
}

/// Absolute-moment (first moment) estimate: slope H - 1. Deviations are
/// taken from the overall mean, as in Taqqu et al. (1995).
pub fn abs_moment(x: &[f64], cfg: &AggConfig) -> Result<Estimate, SelfSimError> {
    run(
        x,
        cfg,
        "absmom",
        |b, mu| b.iter().map(|v| (v - mu).abs()).sum::<f64>() / b.len() as f64,
        1.0,
        "log10 mean |block mean - mean|",
    )
}

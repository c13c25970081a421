//! Rescaled-range (R/S) analysis: Hurst (1951), "Long-term storage capacity
//! of reservoirs", Trans. ASCE 116; Mandelbrot & Wallis (1969), "Robustness
//! of the rescaled range R/S", Water Resources Research 5. The pox plot
//! shows log R/S of every non-overlapping block against log block size; H is
//! the least-squares slope through the per-size averages. Hurst's V
//! statistic V(n) = (R/S)(n)/sqrt(n) is flat for short memory, rises for
//! H > 1/2, and changes slope at the length of a cycle.
//!
//! R/S is biased by short-range dependence (AR(1) with phi = 0.9 reads far
//! above 0.5) and is not a consistent estimator of a standard error: the
//! reported s.e. is the regression s.e. of the slope and understates the
//! true spread.
use crate::error::SelfSimError;
use crate::estimate::{DiagnosticPlot, Estimate, RangeUsed};
use crate::stats::{log_spaced, ols, validate};

const METHOD: &str = "rs";

/// Block sizes of the pox plot.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RsConfig {
    /// Smallest block size. Small blocks bias R/S (Anis & Lloyd 1976), so
    /// the default starts at 32.
    pub min_block: usize,
    /// Largest block size as a fraction of N (default 1/4 so at least four
    /// blocks enter every average).
    pub max_fraction: f64,
    /// Number of log-spaced block sizes.
    pub sizes: usize,
    /// Blocks per size kept in the plotted pox cloud (all blocks are used
    /// in the averages).
    pub cloud_per_size: usize,
}

impl Default for RsConfig {
    fn default() -> Self {
        RsConfig {
            min_block: 32,
            max_fraction: 0.25,
            sizes: 20,
            cloud_per_size: 10,
        }
    }
}

/// Minimum length: 4 blocks at two sizes at least.
pub const MIN_LEN: usize = 128;

/// R/S of the block [a, a + n) from prefix sums `p` (of the centred
/// series) and `q` (of its squares): one pass over p per block, no second
/// pass for the mean. None when the block is constant.
fn rs_block(p: &[f64], q: &[f64], a: usize, n: usize) -> Option<f64> {
    let nf = n as f64;
    let base = p[a];
    let m = (p[a + n] - base) / nf;
    let var = (q[a + n] - q[a]) / nf - m * m;
    if var <= 0.0 {
        return None;
    }
    // W_k = p[a+k] - p[a] - k m, k = 1..=n; R = max(0, W) - min(0, W).
    // Four independent lanes let the max/min chains run in parallel.
    let seg = &p[a + 1..=a + n];
    let mut mx = [0.0f64; 4];
    let mut mn = [0.0f64; 4];
    let chunks = seg.chunks_exact(4);
    let rest = chunks.remainder();
    let mut k = 1.0;
    for c in chunks {
        for l in 0..4 {
            let w = c[l] - base - (k + l as f64) * m;
            mx[l] = mx[l].max(w);
            mn[l] = mn[l].min(w);
        }
        k += 4.0;
    }
    for (l, v) in rest.iter().enumerate() {
        let w = v - base - (k + l as f64) * m;
        mx[0] = mx[0].max(w);
        mn[0] = mn[0].min(w);
    }
    let r = mx.iter().fold(0.0f64, |a, b| a.max(*b)) - mn.iter().fold(0.0f64, |a, b| a.min(*b));
    Some(r / var.sqrt())
}

/// Mean R/S per block size plus a thinned cloud of single-block values.
/// One grid of sizes from min(8, min_block) to N/2 serves both the fit
/// (sizes within [min_block, N max_fraction]) and the V statistic, which
/// looks at small and large n for cycles.
fn rs_curve(x: &[f64], cfg: &RsConfig) -> (Vec<usize>, Vec<f64>, Vec<(f64, f64)>) {
    let n = x.len();
    // Centring first keeps the prefix sums small, so block variances from
    // differences of q lose no precision for series with a large mean.
    let mu = crate::stats::mean(x);
    let mut p = Vec::with_capacity(n + 1);
    let mut q = Vec::with_capacity(n + 1);
    let (mut sp, mut sq) = (0.0, 0.0);
    p.push(0.0);
    q.push(0.0);
    for v in x {
        let d = v - mu;
        sp += d;
        sq += d * d;
        p.push(sp);
        q.push(sq);
    }
    let mut sizes = Vec::new();
    let mut means = Vec::new();
    let mut cloud = Vec::new();
    let count = cfg.sizes + cfg.sizes / 2;
    for s in log_spaced(cfg.min_block.clamp(4, 8), n / 2, count) {
        let k = n / s;
        let step = (k / cfg.cloud_per_size.max(1)).max(1);
        let (mut sum, mut cnt) = (0.0, 0usize);
        for i in 0..k {
            if let Some(r) = rs_block(&p, &q, i * s, s) {
                sum += r;
                cnt += 1;
                if i % step == 0 && r > 0.0 {
                    cloud.push(((s as f64).log10(), r.log10()));
                }
            }
        }
        if cnt > 0 && sum > 0.0 {
            sizes.push(s);
            means.push(sum / cnt as f64);
        }
    }
    (sizes, means, cloud)
}

fn check(x: &[f64], cfg: &RsConfig) -> Result<(), SelfSimError> {
    validate(x, METHOD, MIN_LEN)?;
    if !(cfg.max_fraction > 0.0 && cfg.max_fraction <= 1.0) || cfg.sizes < 2 {
        return Err(SelfSimError::InvalidParam {
            method: METHOD,
            msg: "max_fraction must be in (0, 1] and sizes >= 2".into(),
        });
    }
    if x.len() / 4 < cfg.min_block * 2 {
        return Err(SelfSimError::TooShort {
            method: METHOD,
            n: x.len(),
            min: cfg.min_block * 8,
        });
    }
    Ok(())
}

/// R/S estimate of H from the pox plot.
pub fn rescaled_range(x: &[f64], cfg: &RsConfig) -> Result<Estimate, SelfSimError> {
    rs_and_v(x, cfg).map(|r| r.0)
}

/// R/S estimate and V statistic from one pass over the block sizes.
pub fn rs_and_v(x: &[f64], cfg: &RsConfig) -> Result<(Estimate, DiagnosticPlot), SelfSimError> {
    check(x, cfg)?;
    let (all_sizes, all_means, all_cloud) = rs_curve(x, cfg);
    let v = v_plot(&all_sizes, &all_means);
    let max = ((x.len() as f64 * cfg.max_fraction) as usize).max(cfg.min_block);
    let keep = |s: usize| s >= cfg.min_block && s <= max;
    let (sizes, means): (Vec<usize>, Vec<f64>) = all_sizes
        .iter()
        .zip(&all_means)
        .filter(|(s, _)| keep(**s))
        .map(|(s, m)| (*s, *m))
        .unzip();
    let (lo, hi) = ((cfg.min_block as f64).log10(), (max as f64).log10());
    let cloud: Vec<(f64, f64)> = all_cloud
        .into_iter()
        .filter(|c| c.0 >= lo - 1e-12 && c.0 <= hi + 1e-12)
        .collect();
    let xs: Vec<f64> = sizes.iter().map(|s| (*s as f64).log10()).collect();
    let ys: Vec<f64> = means.iter().map(|r| r.log10()).collect();
    let fit = ols(&xs, &ys).ok_or(SelfSimError::Numerical {
        method: METHOD,
        msg: "fewer than two usable block sizes".into(),
    })?;
    let plot = DiagnosticPlot {
        x: xs,
        y: ys,
        fit: Some((fit.slope, fit.intercept)),
        x_label: "log10 block size n".into(),
        y_label: "log10 R/S".into(),
        log_log: true,
        cloud,
        ..Default::default()
    };
    let range = RangeUsed::BlockSizes {
        min: sizes[0],
        max: *sizes.last().unwrap(),
        count: sizes.len(),
    };
    let mut est = Estimate::new(METHOD, fit.slope, fit.slope_se, range, plot);
    est.warnings
        .push("R/S s.e. is the regression s.e. and understates the sampling spread".into());
    Ok((est, v))
}

/// Hurst's V statistic V(n) = (R/S)(n)/sqrt(n) against log10 n, for block
/// sizes from 8 to N/2.
pub fn v_statistic(x: &[f64], cfg: &RsConfig) -> Result<DiagnosticPlot, SelfSimError> {
    rs_and_v(x, cfg).map(|r| r.1)
}

fn v_plot(sizes: &[usize], means: &[f64]) -> DiagnosticPlot {
    DiagnosticPlot {
        x: sizes.iter().map(|s| (*s as f64).log10()).collect(),
        y: sizes
            .iter()
            .zip(means)
            .map(|(s, r)| r / (*s as f64).sqrt())
            .collect(),
        fit: None,
        x_label: "log10 block size n".into(),
        y_label: "V(n) = (R/S)(n) / sqrt(n)".into(),
        log_log: false,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rs_block_matches_hand_computation() {
        // x = 1, 2, 3, 4 (offset inside a longer series): deviations from the
        // block mean -1.5, -0.5, 0.5, 1.5; partial sums -1.5, -2, -1.5, 0 so
        // R = 0 - (-2) = 2; S = sqrt(1.25).
        let x = [7.0, 1.0, 2.0, 3.0, 4.0, 9.0];
        let (mut p, mut q) = (vec![0.0], vec![0.0]);
        for v in x {
            p.push(p.last().unwrap() + v);
            q.push(q.last().unwrap() + v * v);
        }
        let r = super::rs_block(&p, &q, 1, 4).unwrap();
        assert!((r - 2.0 / 1.25f64.sqrt()).abs() < 1e-12, "{r}");
        assert!(super::rs_block(&[0.0, 1.0, 2.0], &[0.0, 1.0, 2.0], 0, 2).is_none());
        // A longer block (lanes plus remainder) against a direct two-pass R/S.
        let y: Vec<f64> = (0..23)
            .map(|i| ((i * 37 % 11) as f64).sin() * 3.0 + i as f64 * 0.1)
            .collect();
        let (mut p, mut q) = (vec![0.0], vec![0.0]);
        for v in &y {
            p.push(p.last().unwrap() + v);
            q.push(q.last().unwrap() + v * v);
        }
        let b = &y[2..21];
        let mean = b.iter().sum::<f64>() / b.len() as f64;
        let (mut w, mut hi, mut lo, mut ss) = (0.0f64, 0.0f64, 0.0f64, 0.0);
        for v in b {
            w += v - mean;
            hi = hi.max(w);
            lo = lo.min(w);
            ss += (v - mean).powi(2);
        }
        let direct = (hi - lo) / (ss / b.len() as f64).sqrt();
        let r = super::rs_block(&p, &q, 2, 19).unwrap();
        assert!((r - direct).abs() < 1e-9, "{r} vs {direct}");
    }
}

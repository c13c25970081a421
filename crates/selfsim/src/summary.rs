//! Descriptive statistics of a series (the study's first table).
use serde::Serialize;

/// Count, moments, peak and burstiness measures of a series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    /// Unbiased sample variance (n - 1 denominator).
    pub variance: f64,
    pub std: f64,
    pub peak: f64,
    pub peak_index: usize,
    /// Coefficient of variation sigma/mu; None when the mean is 0.
    pub variability: Option<f64>,
    /// Peak-to-mean ratio; None when the mean is 0.
    pub peak_to_mean: Option<f64>,
}

impl Summary {
    /// Summary of `x`; None for an empty series or one with a non-finite value.
    pub fn of(x: &[f64]) -> Option<Summary> {
        if x.is_empty() || x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mean = crate::stats::mean(x);
        let variance = crate::stats::variance(x);
        let std = variance.sqrt();
        let (peak_index, peak) =
            x.iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |a, (i, v)| if v > a.1 { (i, v) } else { a },
                );
        let nz = mean != 0.0;
        Some(Summary {
            count: x.len(),
            mean,
            variance,
            std,
            peak,
            peak_index,
            variability: nz.then(|| std / mean),
            peak_to_mean: nz.then(|| peak / mean),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn summary_of_small_series() {
        let s = super::Summary::of(&[1.0, 2.0, 3.0, 6.0]).unwrap();
        assert_eq!(s.count, 4);
        assert_eq!(s.mean, 3.0);
        assert!((s.variance - 14.0 / 3.0).abs() < 1e-12);
        assert_eq!((s.peak, s.peak_index), (6.0, 3));
        assert!((s.variability.unwrap() - (14.0f64 / 3.0).sqrt() / 3.0).abs() < 1e-12);
        assert_eq!(s.peak_to_mean, Some(2.0));
        assert!(super::Summary::of(&[]).is_none());
        assert!(super::Summary::of(&[1.0, f64::NAN]).is_none());
    }
}

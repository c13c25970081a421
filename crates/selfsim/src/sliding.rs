//! Sliding-window H and burstiness over the last W values, updated every k.
use crate::estimators::{local_whittle, wavelet_abry_veitch, LocalWhittleConfig, WaveletConfig};
use serde::Serialize;
use std::collections::VecDeque;

/// One window's results. Estimator failures (e.g. a constant window) give
/// None plus a message in `errors`.
#[derive(Debug, Clone, Serialize)]
pub struct WindowEstimate {
    /// Index (0-based, in pushed values) of the last value in the window.
    pub end_index: usize,
    pub h_local_whittle: Option<f64>,
    /// 95 % interval of the Local Whittle estimate.
    pub ci_local_whittle: Option<(f64, f64)>,
    pub h_wavelet: Option<f64>,
    /// 95 % interval of the wavelet estimate.
    pub ci_wavelet: Option<(f64, f64)>,
    /// sigma/mu of the window; None when the mean is 0.
    pub burstiness: Option<f64>,
    pub peak_to_mean: Option<f64>,
    pub errors: Vec<String>,
}

/// Sliding-window estimator with bounded memory (W values).
#[derive(Debug, Clone)]
pub struct SlidingHurst {
    window: usize,
    every: usize,
    buf: VecDeque<f64>,
    pushed: usize,
    pub lw: LocalWhittleConfig,
    pub wavelet: WaveletConfig,
}

impl SlidingHurst {
    /// Window of `window` values, re-estimated every `every` values.
    /// `window` should be at least a few hundred for the estimators.
    pub fn new(window: usize, every: usize) -> Self {
        SlidingHurst {
            window: window.max(1),
            every: every.max(1),
            buf: VecDeque::with_capacity(window.max(1)),
            pushed: 0,
            lw: LocalWhittleConfig::default(),
            wavelet: WaveletConfig::default(),
        }
    }

    /// Adds one value; returns an estimate once `window` values are held and
    /// then every `every` values.
    /// Values held (at most the window).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets the values held (the series broke: a jump in time).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.pushed = 0;
    }

    /// Adds one value; estimates when `due` and the window is full: for
    /// windows placed on a clock (every minute on the minute) rather than
    /// every `every` values.
    pub fn push_due(&mut self, v: f64, due: bool) -> Option<WindowEstimate> {
        if self.buf.len() == self.window {
            self.buf.pop_front();
        }
        self.buf.push_back(v);
        self.pushed += 1;
        if !due || self.buf.len() < self.window {
            return None;
        }
        let (a, b) = self.buf.as_slices();
        let w: Vec<f64> = a.iter().chain(b).copied().collect();
        let mut e = estimate_window(&w, &self.lw, &self.wavelet);
        e.end_index = self.pushed - 1;
        Some(e)
    }

    pub fn push(&mut self, v: f64) -> Option<WindowEstimate> {
        // The window is full from the `window`-th value on (clear resets
        // both counts); then an estimate every `every` values.
        let n = self.pushed + 1;
        let due = n >= self.window && (n - self.window).is_multiple_of(self.every);
        self.push_due(v, due)
    }
}

/// The estimates of one window of values, as [`SlidingHurst`] makes them
/// (`end_index` is the window's length less one). For a window held
/// elsewhere, e.g. a series read back from a store.
pub fn estimate_window(
    w: &[f64],
    lw_cfg: &LocalWhittleConfig,
    wavelet_cfg: &WaveletConfig,
) -> WindowEstimate {
    let mut errors = Vec::new();
    let lw = local_whittle(w, lw_cfg)
        .map_err(|e| errors.push(e.to_string()))
        .ok();
    let wav = wavelet_abry_veitch(w, wavelet_cfg)
        .map_err(|e| errors.push(e.to_string()))
        .ok();
    let s = crate::Summary::of(w);
    if s.is_none() {
        errors.push("window contains a non-finite value".into());
    }
    WindowEstimate {
        end_index: w.len().saturating_sub(1),
        h_local_whittle: lw.as_ref().map(|e| e.h),
        ci_local_whittle: lw.as_ref().and_then(|e| e.ci),
        h_wavelet: wav.as_ref().map(|e| e.h),
        ci_wavelet: wav.as_ref().and_then(|e| e.ci),
        burstiness: s.as_ref().and_then(|s| s.variability),
        peak_to_mean: s.as_ref().and_then(|s| s.peak_to_mean),
        errors,
    }
}

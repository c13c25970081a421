//! Hurst-parameter estimators. Each takes `&[f64]` and returns an
//! [`Estimate`](crate::Estimate) or a [`SelfSimError`](crate::SelfSimError).
//! Survey of the methods: Taqqu, Teverovsky & Willinger (1995), "Estimators
//! for long-range dependence: an empirical study", Fractals 3(4).

pub mod aggvar;
pub mod dfa;
pub mod local_whittle;
pub mod periodogram;
pub mod rs;
pub mod wavelet;
pub mod whittle;

pub use aggvar::{abs_moment, aggregated_variance, AggConfig};
pub use dfa::{dfa, DfaConfig};
pub use local_whittle::{local_whittle, local_whittle_h_vs_m, LocalWhittleConfig};
pub use periodogram::{gph, periodogram_regression, PeriodogramConfig};
pub use rs::{rescaled_range, rs_and_v, v_statistic, RsConfig};
pub use wavelet::{wavelet_abry_veitch, Wavelet, WaveletConfig};
pub use whittle::{whittle_farima, whittle_fgn, WhittleConfig};

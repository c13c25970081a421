//! Self-similarity and long-range-dependence statistics for traffic series.
//!
//! The crate knows nothing about packets: it takes plain series (`&[f64]`)
//! and (time, size) events. Main entry points:
//!
//! * reading: [`read_values`], [`read_csv_column`], [`read_time_size`],
//!   [`read_interarrivals`], [`read_series_spec`];
//! * binning: [`Binner`];
//! * statistics: [`Summary`], the estimators in [`estimators`], [`analyze`];
//! * plots: [`write_plots`];
//! * sliding window: [`SlidingHurst`];
//! * synthesis: [`synth_fgn`], [`synth_farima`].

pub mod analyze;
pub mod binner;
pub mod error;
pub mod estimate;
pub mod estimators;
pub mod io;
pub mod plot;
pub mod sliding;
mod spectrum;
pub mod stats;
pub mod summary;
pub mod synth;

pub use analyze::{analyze, AnalyzeConfig, MethodResult, SeriesReport};
pub use binner::{bin_events_secs, BinError, BinnedSeries, Binner};
pub use error::{InputError, SelfSimError};
pub use estimate::{DiagnosticPlot, Estimate};
pub use io::{
    read_csv_column, read_interarrivals, read_series_spec, read_time_size, read_values, Events,
};
pub use plot::write_plots;
pub use sliding::{SlidingHurst, WindowEstimate};
pub use summary::Summary;
pub use synth::{farima_autocov, fgn_autocov, synth_farima, synth_fgn};

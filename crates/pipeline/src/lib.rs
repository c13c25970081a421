//! The one packet loop of trafficscope.
//!
//! Sources ([`source`]: capture files, live interfaces, the in-process
//! generator) feed frames through decode → flows → streaming classification
//! → aggregation ([`Pipeline`]), which emits plain [`Output`]s: closed bins,
//! evaluation windows, Hurst points and flow rows. It knows nothing of HTTP
//! or of a storage engine; `store` and `server` take the outputs from here.

pub mod aggregate;
pub mod source;
pub mod stages;
pub mod status;
pub mod types;

pub use source::{Event, Input, Origin, Source, SourceConfig, SourceError};
pub use stages::{Pipeline, PipelineConfig};
pub use status::{unix_now_ns, LatencyHistogram, Status};
pub use types::{
    cross_parts, Bin, ClassOutcome, Dim, DimCount, EvalWindow, FineStats, FlowRow, HurstPoint,
    Output, SeriesName, CROSS_PARTS,
};

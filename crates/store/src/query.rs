//! What the server asks of a history, whatever engine holds it: the
//! [`History`] trait, its parameters and its answers. The embedded store
//! implements it; a ClickHouse store will implement the same trait.

use pipeline::{Dim, EvalWindow, HurstPoint, SeriesName};
use serde::Serialize;

/// A quantity kept per bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Packets per bin (by a dimension, or total).
    Packets,
    /// Wire bytes per bin (by a dimension, or total).
    Bytes,
    /// Flows whose first packet fell in the bin (total only).
    FlowsStarted,
    /// Flows that ended in the bin (a total here; by end reason in [`Totals`]).
    FlowsEnded,
    /// Open flows at the end of the bin (total only; averaged when downsampled).
    FlowsActive,
    /// Characterisation series: bytes per fine bin (0.1 s) for the series
    /// named by the key (`total`, `tcp`, `udp`; always all three): the fine
    /// values themselves at a step of the fine width, their mean per step
    /// otherwise. (σ/μ and peak per bin are kept in the tables.)
    FineBytes,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Packets,
        Metric::Bytes,
        Metric::FlowsStarted,
        Metric::FlowsEnded,
        Metric::FlowsActive,
        Metric::FineBytes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Packets => "packets",
            Metric::Bytes => "bytes",
            Metric::FlowsStarted => "flows_started",
            Metric::FlowsEnded => "flows_ended",
            Metric::FlowsActive => "flows_active",
            Metric::FineBytes => "fine_bytes",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A series request: `metric` by `dim` (None = the total) over
/// `[from_ns, to_ns)` at `step_ns`. Steps start at multiples of `step_ns`
/// since the epoch (`from_ns` is rounded down to one). Among the tiers
/// whose width divides `step_ns`, the store reads the coarsest that still
/// covers `from_ns` (the same sums as a finer one, from fewer rows), else
/// the one reaching furthest back; no tier dividing the step, or a `dim`
/// for a metric other than packets and bytes, is a [`crate::StoreError::Query`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesQuery {
    pub metric: Metric,
    pub dim: Option<Dim>,
    pub from_ns: u64,
    pub to_ns: u64,
    pub step_ns: u64,
    /// At most this many keys (largest by sum over the range); the rest are
    /// summed under `other` (with the key literally named `other`, if any).
    pub top: usize,
    /// Count only packets whose class, protocol, app and direction match
    /// every `(dim, key)` here (read from the cross dimension; packets and
    /// bytes only, `dim` among class, protocol, app, direction).
    pub filter: Vec<(Dim, String)>,
}

/// One key's values, one per step; `None` where the store has no bin for
/// the whole step (the service was not running): a gap, not a zero.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesLine {
    pub key: String,
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub metric: Metric,
    pub dim: Option<Dim>,
    /// Step starts, ns since the Unix epoch.
    pub times_ns: Vec<u64>,
    pub step_ns: u64,
    /// The tier read: its bin width in ns.
    pub tier_ns: u64,
    pub lines: Vec<SeriesLine>,
    /// Per step, how many bins of `covered_ns` the answer holds (base bins;
    /// fine bins for the 0.1 s series): a live client adds a newer bin to a
    /// step only if it is not among them (bins are stored in order).
    pub covered: Vec<u64>,
    pub covered_ns: u64,
}

/// Totals over a time range.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Totals {
    pub from_ns: u64,
    pub to_ns: u64,
    /// Bins found (of the finest tier covering the range).
    pub bins: u64,
    pub packets: u64,
    pub bytes: u64,
    pub flows_started: u64,
    /// (dim, key, packets, bytes), sorted.
    pub by_dim: Vec<(Dim, String, u64, u64)>,
    /// (end reason, flows), sorted.
    pub flows_ended: Vec<(String, u64)>,
    /// The characterisation series (total, TCP, UDP) at the fine bin
    /// (0.1 s) over the range, pooled exactly from the bins' own mean, σ/μ
    /// and peak; `None` when the range holds no bin.
    pub fine: Vec<(SeriesName, Option<FineStats>)>,
}

/// Bytes per fine bin over a range: what the burstiness panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct FineStats {
    /// Fine bins covered.
    pub fine_bins: u64,
    pub mean: f64,
    /// σ/μ (population σ); `None` when the mean is 0.
    pub cv: Option<f64>,
    pub peak: f64,
}

/// Sort order of flow listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowSort {
    Start,
    End,
    Packets,
    Bytes,
    Duration,
}

impl FlowSort {
    pub const ALL: [(&'static str, FlowSort); 5] = [
        ("start", FlowSort::Start),
        ("end", FlowSort::End),
        ("packets", FlowSort::Packets),
        ("bytes", FlowSort::Bytes),
        ("duration", FlowSort::Duration),
    ];
}

/// Flow listing: flows that overlap `[from_ns, to_ns)` and match every
/// given filter.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowQuery {
    pub from_ns: u64,
    pub to_ns: u64,
    /// Final class (`web`, `unknown`, `pending`, …).
    pub class: Option<String>,
    /// Application: matches the flow's detected protocol, its service by
    /// port, or (substring) its server name (SNI, HTTP host, DNS query).
    pub app: Option<String>,
    /// Either endpoint's address.
    pub addr: Option<std::net::IpAddr>,
    /// Either endpoint's port.
    pub port: Option<u16>,
    pub sort: FlowSort,
    pub descending: bool,
    pub limit: usize,
    pub offset: usize,
}

/// A page of flows: each the stored flow row as JSON (the `FlowRow`
/// fields: `record`, `class`, `confidence`, `probabilities`, `true_class`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowPage {
    /// Matching flows in all pages.
    pub total: u64,
    pub flows: Vec<serde_json::Value>,
}

/// Where the history starts and ends, and what it holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Extent {
    /// Start of the first and end of the last bin held (any tier), ns.
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    /// Bin widths of the tiers, finest first, with how far back each reaches.
    pub tiers: Vec<TierExtent>,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierExtent {
    pub width_ns: u64,
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    pub retention_ns: u64,
}

/// A history the server can read. Errors are strings for people; bad
/// parameters are the caller's to reject before asking (those it does not
/// come back as [`crate::StoreError::Query`]).
pub trait History: Send + Sync {
    fn series(&self, q: &SeriesQuery) -> Result<Series, crate::StoreError>;
    fn totals(&self, from_ns: u64, to_ns: u64) -> Result<Totals, crate::StoreError>;
    /// Packets and bytes over a range, in total and by class, protocol, app
    /// and direction, of the packets matching every `(dim, key)` of
    /// `filter` (flows, fine series: not kept per key, left empty).
    fn totals_where(
        &self,
        from_ns: u64,
        to_ns: u64,
        filter: &[(Dim, String)],
    ) -> Result<Totals, crate::StoreError> {
        let _ = (from_ns, to_ns, filter);
        Err(crate::StoreError::Query(
            "this history cannot filter totals".into(),
        ))
    }
    fn windows(&self, from_ns: u64, to_ns: u64) -> Result<Vec<EvalWindow>, crate::StoreError>;
    fn hurst(
        &self,
        series: SeriesName,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<HurstPoint>, crate::StoreError>;
    fn flows(&self, q: &FlowQuery) -> Result<FlowPage, crate::StoreError>;
    fn extent(&self) -> Result<Extent, crate::StoreError>;
    /// The start of the first bin (finest tier) at or after `t_ns`: where
    /// the history goes on after a gap.
    fn first_bin_from(&self, t_ns: u64) -> Result<Option<u64>, crate::StoreError> {
        let _ = t_ns;
        Err(crate::StoreError::Query(
            "this history cannot look for the next bin".into(),
        ))
    }
}

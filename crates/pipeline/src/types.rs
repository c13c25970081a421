//! The plain types that leave the pipeline: closed bins, evaluation windows,
//! Hurst points and flow rows. Stores, the server and exports take these and
//! nothing else, so they know nothing of packets.

use serde::{Deserialize, Serialize};

/// A dimension packets and bytes are counted by in a [`Bin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// The flow's current class when the packet arrived: a model class,
    /// `unknown` (under the threshold), `pending` (fewer than k packets) or
    /// `no-flow` (a packet without an IP layer). Keys add up to the total.
    Class,
    /// The ground truth of the packet's flow, when labels are known
    /// (`unlabelled` otherwise).
    TrueClass,
    /// Transport as `stats` names it: TCP, UDP, ICMP, ICMPv6, SCTP, ARP,
    /// other-L2, IP-other, … Keys add up to the total.
    Protocol,
    /// Well-known service by port as `stats` names it (`https`, `dns`, …,
    /// `other`, `no-ports`); IP packets only.
    Service,
    /// `up`, `down`, `local`, `transit` (as `stats`); IP packets in a flow only.
    Direction,
    /// The application the flow's payload had been recognised as when the
    /// packet arrived (the first protocol `decode` names: `tls`, `quic`,
    /// `dns`, `http`, `rtp`, …), `unrecognised` before or without one; IP
    /// packets in a flow only, so its keys add up with `direction`'s.
    App,
    /// Class, protocol, application and direction together, key
    /// `class|protocol|app|direction` (`-` where a packet has no app or
    /// direction): what lets a view filtered by one of them show the
    /// others (the dashboard's click-to-filter). Not in [`Dim::ALL`]: it
    /// is read through filters, not listed.
    Cross,
}

/// The parts of a [`Dim::Cross`] key, in order.
pub const CROSS_PARTS: [Dim; 4] = [Dim::Class, Dim::Protocol, Dim::App, Dim::Direction];

/// Splits a [`Dim::Cross`] key into its four parts (`-` for none).
pub fn cross_parts(key: &str) -> Option<[&str; 4]> {
    let mut it = key.splitn(4, '|');
    Some([it.next()?, it.next()?, it.next()?, it.next()?])
}

impl Dim {
    /// Every dimension a bin carries, [`Dim::Cross`] included.
    pub const STORED: [Dim; 7] = [
        Dim::Class,
        Dim::TrueClass,
        Dim::Protocol,
        Dim::Service,
        Dim::Direction,
        Dim::App,
        Dim::Cross,
    ];

    pub const ALL: [Dim; 6] = [
        Dim::Class,
        Dim::TrueClass,
        Dim::Protocol,
        Dim::Service,
        Dim::Direction,
        Dim::App,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Class => "class",
            Dim::TrueClass => "true_class",
            Dim::Protocol => "protocol",
            Dim::Service => "service",
            Dim::Direction => "direction",
            Dim::App => "app",
            Dim::Cross => "cross",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::STORED.into_iter().find(|d| d.as_str() == s)
    }
}

/// Packets and bytes (wire length) under one key of one dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimCount {
    pub dim: Dim,
    pub key: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Summary of the fine (characterisation) byte series inside one bin.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct FineStats {
    /// Mean bytes per fine bin.
    pub mean: f64,
    /// σ/μ over the fine bins of this bin; `None` when the mean is 0.
    pub cv: Option<f64>,
    /// Largest fine bin, bytes.
    pub peak: f64,
}

/// The three characterisation series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesName {
    Total,
    Tcp,
    Udp,
}

impl SeriesName {
    pub const ALL: [SeriesName; 3] = [SeriesName::Total, SeriesName::Tcp, SeriesName::Udp];

    pub fn as_str(self) -> &'static str {
        match self {
            SeriesName::Total => "total",
            SeriesName::Tcp => "tcp",
            SeriesName::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<SeriesName> {
        SeriesName::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One closed bin of capture time `[start_ns, start_ns + width_ns)`,
/// aligned to multiples of the width since the Unix epoch. Written once,
/// when it closes; a bin that closes with no packet is still emitted (zero
/// counts), so a missing bin in a store means "not running", not "no traffic".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub start_ns: u64,
    pub width_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Every non-zero key of every [`Dim`], sorted by (dim, key).
    pub counts: Vec<DimCount>,
    /// Flows whose first packet fell in this bin.
    pub flows_started: u64,
    /// Flows that ended in this bin, by end reason (`fin`, `rst`, `idle`,
    /// `active`, `evicted`, `end-of-input`), sorted, non-zero only.
    pub flows_ended: Vec<(String, u64)>,
    /// Open flows when the bin closed.
    pub flows_active: u64,
    /// Width of the fine bins of the characterisation series (default 100 ms).
    pub fine_width_ns: u64,
    /// Bytes per fine bin over this bin, for total, TCP and UDP (in
    /// [`SeriesName::ALL`] order); `width_ns / fine_width_ns` values each.
    pub fine_bytes: [Vec<u64>; 3],
    /// Mean, σ/μ and peak of `fine_bytes`, same order.
    pub fine: [FineStats; 3],
}

impl Bin {
    /// Packets and bytes under `dim`/`key` (0 when absent).
    pub fn count(&self, dim: Dim, key: &str) -> (u64, u64) {
        self.counts
            .iter()
            .find(|c| c.dim == dim && c.key == key)
            .map_or((0, 0), |c| (c.packets, c.bytes))
    }
}

/// Outcomes of one true class in an evaluation window.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassOutcome {
    /// The true class (a label's class name; it may be one the model lacks).
    pub class: String,
    pub hits: u64,
    pub misses: u64,
    pub unknown: u64,
    pub pending: u64,
}

/// Per-packet outcomes of streaming classification in one evaluation window
/// of capture time (the original system's 5 s), aligned to multiples of the
/// window since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvalWindow {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Prediction equals the truth.
    pub hits: u64,
    /// A class other than the truth.
    pub misses: u64,
    /// Answered `unknown` (under the threshold).
    pub unknown: u64,
    /// Not answered yet (fewer than k packets).
    pub pending: u64,
    /// Packets without a known truth (not scored).
    pub unlabelled: u64,
    /// By true class, sorted by class name.
    pub by_class: Vec<ClassOutcome>,
}

impl EvalWindow {
    /// hits / (hits + misses + unknown + pending); `None` when nothing was scored.
    pub fn accuracy(&self) -> Option<f64> {
        let n = self.hits + self.misses + self.unknown + self.pending;
        (n > 0).then(|| self.hits as f64 / n as f64)
    }
}

/// One sliding-window Hurst estimate of a characterisation series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HurstPoint {
    pub series: SeriesName,
    /// End (exclusive) of the window of fine bins, capture time.
    pub end_ns: u64,
    /// Fine bins in the window and their width.
    pub window_bins: u64,
    pub bin_ns: u64,
    pub local_whittle: Option<f64>,
    /// 95 % interval of the Local Whittle estimate.
    pub local_whittle_ci: Option<(f64, f64)>,
    pub wavelet: Option<f64>,
    pub wavelet_ci: Option<(f64, f64)>,
    /// σ/μ and peak/mean of the window.
    pub burstiness: Option<f64>,
    pub peak_to_mean: Option<f64>,
    /// Why an estimator gave nothing (e.g. a constant window).
    pub errors: Vec<String>,
}

/// A finished flow with the classifier's final answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRow {
    /// The record as `trafficscope flows` writes it.
    pub record: flow::FlowRecord,
    /// Final answer: a class name or `unknown`; a flow that ended before
    /// its first prediction is judged on what it had at its end.
    pub class: String,
    /// Probability of the best class.
    pub confidence: Option<f32>,
    /// Every class's probability, in the model's class order.
    pub probabilities: Vec<(String, f32)>,
    /// Ground truth, when labels know the flow.
    pub true_class: Option<String>,
}

/// What the pipeline hands its sinks, in capture-time order per kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Output {
    Bin(Bin),
    Window(EvalWindow),
    Hurst(HurstPoint),
    Flow(Box<FlowRow>),
}

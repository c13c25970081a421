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
    /// The substream that produced it when several feed one store (an
    /// analysis node's `partition/node`); empty for a local run. A store
    /// keeps each source's bin and holds their sum as the bin.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The last bin of its source: the capture node ended the substream
    /// (its source no longer holds back what waits for every source).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub source_ended: bool,
}

impl Bin {
    /// The sum of bins of the same time from several sources: counts add
    /// up, the fine series add up value by value (their mean, σ/μ and peak
    /// recomputed from the sums), open flows add up. `None` for no parts,
    /// or parts of different times or widths.
    pub fn merge(parts: &[Bin]) -> Option<Bin> {
        let first = parts.first()?;
        if parts.iter().any(|b| {
            b.start_ns != first.start_ns
                || b.width_ns != first.width_ns
                || b.fine_width_ns != first.fine_width_ns
        }) {
            return None;
        }
        let mut counts: std::collections::BTreeMap<(Dim, &str), (u64, u64)> = Default::default();
        let mut ended: std::collections::BTreeMap<&str, u64> = Default::default();
        let n = first.fine_bytes[0].len();
        let mut fine_bytes = [vec![0u64; n], vec![0u64; n], vec![0u64; n]];
        let mut out = Bin {
            start_ns: first.start_ns,
            width_ns: first.width_ns,
            packets: 0,
            bytes: 0,
            counts: Vec::new(),
            flows_started: 0,
            flows_ended: Vec::new(),
            flows_active: 0,
            fine_width_ns: first.fine_width_ns,
            fine_bytes: Default::default(),
            fine: Default::default(),
            source: String::new(),
            source_ended: false,
        };
        for b in parts {
            out.packets += b.packets;
            out.bytes += b.bytes;
            out.flows_started += b.flows_started;
            out.flows_active += b.flows_active;
            for c in &b.counts {
                let e = counts.entry((c.dim, c.key.as_str())).or_default();
                e.0 += c.packets;
                e.1 += c.bytes;
            }
            for (r, k) in &b.flows_ended {
                *ended.entry(r.as_str()).or_default() += k;
            }
            for (s, sum) in fine_bytes.iter_mut().enumerate() {
                for (x, y) in sum.iter_mut().zip(&b.fine_bytes[s]) {
                    *x += y;
                }
            }
        }
        out.counts = counts
            .into_iter()
            .map(|((dim, key), (packets, bytes))| DimCount {
                dim,
                key: key.to_string(),
                packets,
                bytes,
            })
            .collect();
        out.flows_ended = ended.into_iter().map(|(r, k)| (r.to_string(), k)).collect();
        out.fine = [0, 1, 2].map(|s| crate::aggregate::fine_stats(&fine_bytes[s]));
        out.fine_bytes = fine_bytes;
        Some(out)
    }

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
    /// The substream that produced it (see [`Bin::source`]); empty for a local run.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

impl EvalWindow {
    /// The sum of windows of the same time from several sources.
    pub fn merge(parts: &[EvalWindow]) -> Option<EvalWindow> {
        let first = parts.first()?;
        if parts
            .iter()
            .any(|w| w.start_ns != first.start_ns || w.end_ns != first.end_ns)
        {
            return None;
        }
        let mut by: std::collections::BTreeMap<&str, ClassOutcome> = Default::default();
        let mut out = EvalWindow {
            start_ns: first.start_ns,
            end_ns: first.end_ns,
            ..EvalWindow::default()
        };
        for w in parts {
            out.hits += w.hits;
            out.misses += w.misses;
            out.unknown += w.unknown;
            out.pending += w.pending;
            out.unlabelled += w.unlabelled;
            for c in &w.by_class {
                let e = by.entry(c.class.as_str()).or_insert_with(|| ClassOutcome {
                    class: c.class.clone(),
                    ..ClassOutcome::default()
                });
                e.hits += c.hits;
                e.misses += c.misses;
                e.unknown += c.unknown;
                e.pending += c.pending;
            }
        }
        out.by_class = by.into_values().collect();
        Some(out)
    }

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

impl HurstPoint {
    /// The point of the window `values` (fine bins of `bin_ns`) ending at
    /// `end_ns`, by the estimators and settings the pipeline's sliding
    /// windows use.
    pub fn of_window(series: SeriesName, end_ns: u64, bin_ns: u64, values: &[f64]) -> HurstPoint {
        let e = selfsim::sliding::estimate_window(
            values,
            &selfsim::estimators::LocalWhittleConfig::default(),
            &selfsim::estimators::WaveletConfig::default(),
        );
        HurstPoint::from_estimate(series, end_ns, values.len() as u64, bin_ns, e)
    }

    /// The point of a window of `window_bins` fine bins of `bin_ns` ending
    /// (exclusive) at `end_ns`, from the window's estimates.
    pub fn from_estimate(
        series: SeriesName,
        end_ns: u64,
        window_bins: u64,
        bin_ns: u64,
        e: selfsim::sliding::WindowEstimate,
    ) -> HurstPoint {
        HurstPoint {
            series,
            end_ns,
            window_bins,
            bin_ns,
            local_whittle: e.h_local_whittle,
            local_whittle_ci: e.ci_local_whittle,
            wavelet: e.h_wavelet,
            wavelet_ci: e.ci_wavelet,
            burstiness: e.burstiness,
            peak_to_mean: e.peak_to_mean,
            errors: e.errors,
        }
    }
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

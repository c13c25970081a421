//! The stage loop: decode → flows → streaming classification →
//! aggregation (bins, evaluation windows, the fine series and its sliding
//! Hurst estimates) → [`Output`]s. One [`Pipeline`] per source; it is fed
//! frames and clock ticks and hands back what closed.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use capture::Frame;
use classify::{Labels, ModelFile, Prediction, StreamingClassifier, StreamingConfig};
use decode::{Network, Transport};
use flow::LocalNets;
use selfsim::SlidingHurst;

use crate::aggregate::{BinAggregator, PacketFacts};
use crate::source::Origin;
use crate::types::{Bin, ClassOutcome, EvalWindow, FlowRow, HurstPoint, Output, SeriesName};
use crate::Status;

/// How the stages are set up.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Aggregation bin (default 1 s).
    pub bin_ns: u64,
    /// Characterisation bin of the fine series (default 100 ms); divides `bin_ns`.
    pub fine_ns: u64,
    /// Evaluation window (default 5 s, the original system's).
    pub window_ns: u64,
    /// Sliding Hurst window, in fine bins (default 4096, ~7 min at 0.1 s).
    pub hurst_window: usize,
    /// Re-estimate every this many fine bins (default 600, 1 min at 0.1 s:
    /// successive ~7 min windows still overlap by 85 %).
    pub hurst_every: usize,
    /// First answer after k packets, threshold, flow-table settings.
    pub streaming: StreamingConfig,
    pub local_net: LocalNets,
    /// A tick closes bins that ended at least this long ago (lets packets
    /// still in the capture ring arrive first).
    pub tick_grace_ns: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            bin_ns: 1_000_000_000,
            fine_ns: 100_000_000,
            window_ns: 5_000_000_000,
            hurst_window: 4096,
            hurst_every: 600,
            streaming: StreamingConfig::default(),
            local_net: LocalNets::default(),
            tick_grace_ns: 200_000_000,
        }
    }
}

impl PipelineConfig {
    /// Checks the settings; errors say what is accepted.
    pub fn validate(&self) -> Result<(), String> {
        if self.fine_ns == 0 || self.bin_ns == 0 || !self.bin_ns.is_multiple_of(self.fine_ns) {
            return Err(format!(
                "--bin must be a positive multiple of the {} ms characterisation bin",
                self.fine_ns / 1_000_000
            ));
        }
        if self.bin_ns / self.fine_ns > 36_000 {
            return Err("--bin is too long: at most 1 h".into());
        }
        if self.window_ns == 0 {
            return Err("--windows must be positive".into());
        }
        if self.hurst_window < 256 {
            return Err("--hurst-window must be at least 256 bins for the estimators".into());
        }
        if self.hurst_every == 0 {
            return Err("--hurst-every must be at least 1".into());
        }
        Ok(())
    }
}

/// Extra class keys after the model's classes.
const UNKNOWN: &str = "unknown";
const PENDING: &str = "pending";
const NO_FLOW: &str = "no-flow";

/// The stages of one source.
pub struct Pipeline {
    cfg: PipelineConfig,
    classifier: StreamingClassifier,
    /// Model classes.
    class_names: Vec<String>,
    /// Ground-truth classes (model classes first, then classes only labels
    /// name); lookups only when `has_labels`.
    labels: Labels,
    has_labels: bool,
    open: HashMap<u64, usize, foldhash::fast::RandomState>,
    windows: classify::WindowedEvaluator,
    bins: BinAggregator,
    hurst: [SlidingHurst; 3],
    /// Bins closed and not emitted yet.
    closed_bins: Vec<Bin>,
    out: Vec<Output>,
    status: Arc<Status>,
    packets: u64,
    /// Packets, bytes, malformed and newest time not yet added to `status`.
    unpublished: (u64, u64, u64, u64),
}

impl Pipeline {
    /// `labels`: ground truth from label files or rules (built over the
    /// model's class names), if any.
    pub fn new(
        model: ModelFile,
        labels: Option<Labels>,
        cfg: PipelineConfig,
        status: Arc<Status>,
    ) -> Result<Self, String> {
        cfg.validate()?;
        let class_names = model.class_names.clone();
        let classifier =
            StreamingClassifier::new(model, cfg.streaming.clone()).map_err(|e| e.to_string())?;
        let mut keys = class_names.clone();
        keys.extend([UNKNOWN, PENDING, NO_FLOW].map(String::from));
        let has_labels = labels.is_some();
        let labels = labels.unwrap_or_else(|| Labels::new(class_names.clone()));
        // The estimators' defaults, as `analyze --window` uses them.
        let mk = || SlidingHurst::new(cfg.hurst_window, cfg.hurst_every);
        Ok(Pipeline {
            windows: classify::WindowedEvaluator::new(cfg.window_ns),
            bins: BinAggregator::new(cfg.bin_ns, cfg.fine_ns, keys),
            hurst: [mk(), mk(), mk()],
            cfg,
            classifier,
            class_names,
            labels,
            has_labels,
            open: HashMap::default(),
            closed_bins: Vec::new(),
            out: Vec::new(),
            status,
            packets: 0,
            unpublished: (0, 0, 0, 0),
        })
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    /// Takes one frame through every stage.
    pub fn push(&mut self, frame: &Frame<'_>, origin: Origin<'_>) {
        self.packets += 1;
        let timed = self.packets & 1023 == 0;
        let t0 = timed.then(Instant::now);
        let ts = frame.ts_ns;
        self.roll_to(ts);
        let pkt = decode::decode(frame.linktype, frame.data);
        // Counted here, published to the shared status every 256 packets.
        self.unpublished.0 += 1;
        self.unpublished.1 += frame.wire_len as u64;
        self.unpublished.2 += pkt.malformed.is_some() as u64;
        self.unpublished.3 = self.unpublished.3.max(ts);
        if self.unpublished.0 >= 256 {
            self.publish();
        }
        let protocol = match (pkt.network, pkt.ip) {
            (_, Some(_)) => pkt.protocol_name(),
            (Network::Arp, None) => "ARP",
            (Network::Other(_), None) => "other-L2",
            _ => "undecoded",
        };
        let verdict = self.classifier.push(&pkt, ts, frame.wire_len);
        let k = self.class_names.len();
        let mut facts = PacketFacts {
            ts_ns: ts,
            wire_len: frame.wire_len,
            class: k + 2,
            true_class: usize::MAX,
            protocol,
            service: None,
            direction: None,
            app: None,
            transport: match pkt.transport {
                Transport::Tcp(_) => 1,
                Transport::Udp { .. } => 2,
                _ => 0,
            },
            flow_started: false,
        };
        let mut truth = None;
        if let Some(ip) = pkt.ip {
            facts.service = Some(match pkt.transport {
                Transport::Tcp(_) | Transport::Udp { .. } | Transport::Sctp { .. } => {
                    let (a, b) = pkt.ports().unwrap_or((0, 0));
                    decode::service::for_ports(ip.protocol, a, b).unwrap_or("other")
                }
                _ => "no-ports",
            });
            if let Some(v) = &verdict {
                facts.direction = Some(
                    self.cfg
                        .local_net
                        .direction(ip.src, ip.dst, v.forward)
                        .as_str(),
                );
                facts.flow_started = v.position == 1;
                facts.app = Some(v.app.unwrap_or("unrecognised"));
                facts.class = v.prediction.slot(k);
                // Ground truth is looked up once per flow, at its first
                // packet, and kept while the flow is open.
                if v.position == 1 {
                    truth = match origin.truth {
                        Some(name) => Some(self.labels.class_id(name)),
                        None if self.has_labels => {
                            let (p, a, pa, b, pb) = v.tuple;
                            self.labels.truth_of_tuple(
                                origin.file,
                                p,
                                (a, pa),
                                (b, pb),
                                v.flow_start_ns,
                            )
                        }
                        None => None,
                    };
                    if let Some(t) = truth {
                        self.open.insert(v.flow_id, t);
                    }
                } else if self.has_labels || origin.truth.is_some() {
                    truth = self.open.get(&v.flow_id).copied();
                }
                self.windows.record_prediction(ts, &v.prediction, truth);
            }
        }
        facts.true_class = match truth {
            Some(t) => {
                self.bins.set_true_key(t + 1, &self.labels.class_names()[t]);
                t + 1
            }
            None => 0,
        };
        self.bins.add(&facts);
        self.take_verdicts();
        self.take_windows();
        if let Some(t0) = t0 {
            self.status
                .packet_latency
                .observe_ns(t0.elapsed().as_nanos() as u64);
        }
    }

    /// Adds the locally counted packets to the shared status.
    fn publish(&mut self) {
        let (p, b, m, t) = std::mem::take(&mut self.unpublished);
        let st = &self.status;
        st.packets.fetch_add(p, Relaxed);
        st.bytes.fetch_add(b, Relaxed);
        st.malformed.fetch_add(m, Relaxed);
        st.last_packet_ns.fetch_max(t, Relaxed);
    }

    /// A clock tick (live input, wall clock in ns): ends flows whose
    /// timeouts passed and closes bins and windows that ended at least
    /// `tick_grace_ns` ago.
    pub fn tick(&mut self, now_ns: u64) {
        self.publish();
        let t = now_ns.saturating_sub(self.cfg.tick_grace_ns);
        self.classifier.advance_to(t);
        self.take_verdicts();
        if self.bins.open_end().is_some_and(|e| t >= e) {
            self.roll_to(t);
        }
        self.windows.advance_to(t);
        self.take_windows();
    }

    /// End of input: every open flow ends, the open bin and window close.
    pub fn finish(&mut self) {
        self.publish();
        self.classifier.finish();
        self.take_verdicts();
        let active = self.classifier.open_flows() as u64;
        if let Some(bin) = self.bins.finish(active) {
            self.closed_bins.push(bin);
            self.close_bins(false);
        }
        for w in self.windows.finish() {
            let w = self.eval_window(&w);
            self.status.windows.fetch_add(1, Relaxed);
            self.out.push(Output::Window(w));
        }
    }

    /// Outputs produced since the last call, in the order they closed.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Output> {
        self.out.drain(..)
    }

    /// Capture time before which every packet is in a closed bin and a
    /// closed window (their outputs emitted). `u64::MAX` when none is open.
    pub fn closed_before_ns(&self) -> u64 {
        [
            self.bins.open_end().map(|e| e - self.cfg.bin_ns),
            self.windows.open_start_ns(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX)
    }

    /// First-packet time of the oldest open flow (amortised O(1)). An input
    /// replayed from that packet on rebuilds every open flow whole.
    pub fn oldest_open_flow_ns(&mut self) -> Option<u64> {
        self.classifier.oldest_open_flow_start_ns()
    }

    /// Outputs waiting to be drained.
    pub fn pending_outputs(&self) -> usize {
        self.out.len()
    }

    fn roll_to(&mut self, ts: u64) {
        let active = self.classifier.open_flows() as u64;
        let jumped = self.bins.roll_to(ts, active, &mut self.closed_bins);
        if !self.closed_bins.is_empty() {
            self.close_bins(jumped);
        } else if jumped {
            self.hurst.iter_mut().for_each(SlidingHurst::clear);
        }
    }

    /// Emits the bins that closed, feeding their fine series to the Hurst windows.
    fn close_bins(&mut self, jumped_after: bool) {
        self.publish();
        let t0 = Instant::now();
        let bins = std::mem::take(&mut self.closed_bins);
        for bin in bins {
            // Windows end on the clock (multiples of --hurst-every fine
            // bins since the epoch), so points of different runs, nodes and
            // the store's summed series fall on the same times.
            let every_ns = (self.cfg.hurst_every as u64 * bin.fine_width_ns).max(1);
            for (s, h) in self.hurst.iter_mut().enumerate() {
                for (i, &v) in bin.fine_bytes[s].iter().enumerate() {
                    let end_ns = bin.start_ns + (i as u64 + 1) * bin.fine_width_ns;
                    if let Some(e) = h.push_due(v as f64, end_ns.is_multiple_of(every_ns)) {
                        self.status.hurst_points.fetch_add(1, Relaxed);
                        self.out.push(Output::Hurst(HurstPoint::from_estimate(
                            SeriesName::ALL[s],
                            end_ns,
                            self.cfg.hurst_window as u64,
                            bin.fine_width_ns,
                            e,
                        )));
                    }
                }
            }
            if let Ok(mut totals) = self.status.totals.lock() {
                // The cross dimension is for filtered queries of the store.
                for c in bin
                    .counts
                    .iter()
                    .filter(|c| c.dim != crate::types::Dim::Cross)
                {
                    let e = totals.entry((c.dim, c.key.clone())).or_default();
                    e.0 += c.packets;
                    e.1 += c.bytes;
                }
            }
            self.status.bins.fetch_add(1, Relaxed);
            self.out.push(Output::Bin(bin));
        }
        if jumped_after {
            self.hurst.iter_mut().for_each(SlidingHurst::clear);
        }
        self.status
            .bin_latency
            .observe_ns(t0.elapsed().as_nanos() as u64);
    }

    fn take_verdicts(&mut self) {
        // Drained in place: most packets end no flow, and the ones that do
        // need no second vector.
        for v in self.classifier.drain_verdicts() {
            let truth = self.open.remove(&v.flow_id);
            let (class, confidence) = match v.prediction {
                Prediction::Class { class, confidence } => {
                    (self.class_names[class].clone(), Some(confidence))
                }
                Prediction::Unknown { confidence, .. } => (UNKNOWN.to_string(), Some(confidence)),
                Prediction::Pending => (PENDING.to_string(), None),
            };
            self.bins.flow_ended(v.record.end_reason.as_str());
            if let Ok(mut m) = self.status.flows_by_class.lock() {
                // The key is cloned only for a class not counted yet.
                match m.get_mut(&class) {
                    Some(n) => *n += 1,
                    None => {
                        m.insert(class.clone(), 1);
                    }
                }
            }
            self.status.flows_ended.fetch_add(1, Relaxed);
            let probabilities = self
                .class_names
                .iter()
                .cloned()
                .zip(v.probabilities.iter().copied())
                .collect();
            self.out.push(Output::Flow(Box::new(FlowRow {
                record: v.record,
                class,
                confidence,
                probabilities,
                true_class: truth.map(|t| self.labels.class_names()[t].clone()),
            })));
        }
        self.status
            .open_flows
            .store(self.classifier.open_flows() as u64, Relaxed);
    }

    fn take_windows(&mut self) {
        for w in self.windows.drain_closed() {
            let w = self.eval_window(&w);
            self.status.windows.fetch_add(1, Relaxed);
            self.out.push(Output::Window(w));
        }
    }

    fn eval_window(&self, w: &classify::WindowStats) -> EvalWindow {
        let names = self.labels.class_names();
        let mut by_class: Vec<ClassOutcome> = w
            .by_class
            .iter()
            .enumerate()
            .filter(|(_, t)| t.hits + t.misses + t.unknown + t.pending > 0)
            .map(|(i, t)| ClassOutcome {
                class: names.get(i).cloned().unwrap_or_else(|| format!("class{i}")),
                hits: t.hits,
                misses: t.misses,
                unknown: t.unknown,
                pending: t.pending,
            })
            .collect();
        by_class.sort_by(|a, b| a.class.cmp(&b.class));
        EvalWindow {
            start_ns: w.start_ns,
            end_ns: w.end_ns,
            hits: w.hits,
            misses: w.misses,
            unknown: w.unknown,
            pending: w.pending,
            unlabelled: w.unlabelled,
            by_class,
            source: String::new(),
        }
    }
}

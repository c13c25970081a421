//! Early / streaming classification and rolling evaluation.
//!
//! [`StreamingClassifier`] tracks flows with the flow table, predicts a flow
//! from the table's record of it so far once it has `min_packets` packets
//! and re-predicts every `update_every` packets after that. Every
//! packet carries its flow's current prediction; a prediction whose
//! probability is under `threshold` is [`Prediction::Unknown`]. A flow that
//! ends before `min_packets` is judged once at its end (its
//! [`FlowVerdict`] is never [`Prediction::Pending`]).
//! [`WindowedEvaluator`] turns per-packet (or per-flow) outcomes into hits,
//! misses and accuracy per window of capture time.

use std::collections::HashMap;
use std::net::IpAddr;

use flow::{FlowConfig, FlowRecord, FlowTable};
use serde::{Deserialize, Serialize};

use crate::model_file::{ModelFile, NameMemo, RowNameCache};
use crate::models::argmax;
use crate::{ClassifyError, Result};

#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// Packets before the first prediction (default 8).
    pub min_packets: usize,
    /// Re-predict every this many packets after the first prediction (default 8).
    pub update_every: usize,
    /// Stop re-predicting after this many packets (default 256).
    pub max_update_packets: usize,
    /// Below this probability the answer is `unknown` (default 0.5).
    pub threshold: f32,
    pub flow_config: FlowConfig,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            min_packets: 8,
            update_every: 8,
            max_update_packets: 256,
            threshold: 0.5,
            flow_config: FlowConfig::default(),
        }
    }
}

/// A flow's current answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Prediction {
    /// Fewer than `min_packets` packets so far.
    Pending,
    /// Best class under the confidence threshold.
    Unknown {
        best: usize,
        confidence: f32,
    },
    Class {
        class: usize,
        confidence: f32,
    },
}

impl Prediction {
    /// Position of this answer in the model's class names followed by
    /// `unknown` and `pending` (`n_classes` and `n_classes + 1`): where
    /// per-answer counters keep it.
    pub fn slot(&self, n_classes: usize) -> usize {
        match self {
            Prediction::Class { class, .. } => *class,
            Prediction::Unknown { .. } => n_classes,
            Prediction::Pending => n_classes + 1,
        }
    }

    /// The class, if confident.
    pub fn class(&self) -> Option<usize> {
        match self {
            Prediction::Class { class, .. } => Some(*class),
            _ => None,
        }
    }
}

/// What one packet gets.
#[derive(Debug, Clone, PartialEq)]
pub struct PacketVerdict {
    pub flow_id: u64,
    pub forward: bool,
    /// 1-based position in the flow.
    pub position: u64,
    /// Protocol, initiator address and port, responder address and port.
    pub tuple: (u8, IpAddr, u16, IpAddr, u16),
    pub flow_start_ns: u64,
    pub prediction: Prediction,
    /// The application the flow's payload was recognised as so far (the
    /// first protocol `decode` named: `tls`, `quic`, `dns`, …).
    pub app: Option<&'static str>,
}

/// A flow's final answer, given when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowVerdict {
    pub flow_id: u64,
    /// Protocol, initiator address and port, responder address and port.
    pub tuple: (u8, IpAddr, u16, IpAddr, u16),
    pub start_ns: u64,
    pub end_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    /// The answer after the last update; a flow that ended before
    /// `min_packets` is judged on what it had at its end (never `Pending`).
    pub prediction: Prediction,
    /// Class probabilities of the last update, in the model's class order.
    pub probabilities: Vec<f32>,
    /// The flow as the flow table ended it (what `trafficscope flows` writes).
    pub record: FlowRecord,
}

struct OpenFlow {
    /// Protocol, initiator address and port, responder address and port.
    tuple: (u8, IpAddr, u16, IpAddr, u16),
    start_ns: u64,
    prediction: Prediction,
    probabilities: Vec<f32>,
    names: RowNameCache,
}

/// Per-packet streaming classification with a flow model.
pub struct StreamingClassifier {
    model: ModelFile,
    cfg: StreamingConfig,
    table: FlowTable,
    flows: HashMap<u64, OpenFlow, foldhash::fast::FixedState>,
    ended: Vec<FlowRecord>,
    verdicts: Vec<FlowVerdict>,
    predictions: u64,
    /// Name features by application facts, shared by the flows (bounded).
    memo: NameMemo,
    /// The flow being judged and its model row: one of each, reused by
    /// every prediction instead of allocated per prediction.
    judged: Option<FlowRecord>,
    row: Vec<f32>,
}

impl StreamingClassifier {
    /// Needs a flow model (`feature_kind == "flow"`).
    pub fn new(model: ModelFile, cfg: StreamingConfig) -> Result<Self> {
        if model.feature_kind != "flow" {
            return Err(ClassifyError::ModelFile(format!(
                "streaming needs a flow model, this one uses {} features",
                model.feature_kind
            )));
        }
        Ok(StreamingClassifier {
            table: FlowTable::new(cfg.flow_config.clone()),
            model,
            cfg,
            flows: HashMap::default(),
            ended: vec![],
            verdicts: vec![],
            predictions: 0,
            memo: NameMemo::default(),
            judged: None,
            row: Vec::new(),
        })
    }

    pub fn class_names(&self) -> &[String] {
        &self.model.class_names
    }

    /// Open flows.
    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    /// First-packet time of the oldest open flow.
    pub fn oldest_open_flow_start_ns(&mut self) -> Option<u64> {
        self.table.oldest_start_ns()
    }

    /// Model evaluations so far.
    pub fn predictions(&self) -> u64 {
        self.predictions
    }

    /// Counts a packet; `None` for packets without an IP layer.
    pub fn push(
        &mut self,
        pkt: &decode::Packet<'_>,
        ts_ns: u64,
        wire_len: u32,
    ) -> Option<PacketVerdict> {
        let ended = &mut self.ended;
        let placed = self
            .table
            .process(pkt, ts_ns, wire_len, &mut |r| ended.push(r));
        self.settle_ended();
        let pl = placed?;
        let f = match self.flows.entry(pl.flow_id) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let ip = pkt.ip?;
                let (sp, dp) = pkt.ports().unwrap_or((0, 0));
                let tuple = if pl.forward {
                    (ip.protocol, ip.src, sp, ip.dst, dp)
                } else {
                    (ip.protocol, ip.dst, dp, ip.src, sp)
                };
                v.insert(OpenFlow {
                    tuple,
                    start_ns: ts_ns,
                    prediction: Prediction::Pending,
                    probabilities: Vec::new(),
                    names: RowNameCache::default(),
                })
            }
        };
        let n = pl.position as usize;
        let k = self.cfg.min_packets.max(1);
        let due = n == k
            || (n > k
                && n <= self.cfg.max_update_packets
                && (n - k).is_multiple_of(self.cfg.update_every.max(1)));
        if due {
            // The first prediction makes the reused record; later ones
            // refill it (false once the flow has ended).
            let open = match &mut self.judged {
                Some(j) => self.table.snapshot_into(&pl, j),
                slot => {
                    *slot = self.table.snapshot(&pl);
                    slot.is_some()
                }
            };
            if let Some(rec) = self.judged.as_ref().filter(|_| open) {
                self.model
                    .flow_row_cached_into(rec, &mut f.names, &mut self.memo, &mut self.row);
                self.model.flow_proba_into(&self.row, &mut f.probabilities);
                self.predictions += 1;
                f.prediction = judge(self.cfg.threshold, &f.probabilities);
            }
        }
        Some(PacketVerdict {
            flow_id: pl.flow_id,
            forward: pl.forward,
            position: pl.position,
            tuple: f.tuple,
            flow_start_ns: f.start_ns,
            prediction: f.prediction,
            app: self.table.app_of(&pl).and_then(|a| a.detected),
        })
    }

    /// Current prediction of an open flow.
    pub fn flow_prediction(&self, flow_id: u64) -> Option<Prediction> {
        self.flows.get(&flow_id).map(|f| f.prediction)
    }

    /// Advances the flow table's clock without a packet (live input with no
    /// traffic): flows whose timeouts passed end, their verdicts join
    /// [`drain_verdicts`](Self::drain_verdicts).
    pub fn advance_to(&mut self, ts_ns: u64) {
        let ended = &mut self.ended;
        self.table.advance_to(ts_ns, &mut |r| ended.push(r));
        self.settle_ended();
    }

    /// Ends all open flows (end of input); their verdicts join
    /// [`drain_verdicts`](Self::drain_verdicts).
    pub fn finish(&mut self) {
        let ended = &mut self.ended;
        self.table.flush(&mut |r| ended.push(r));
        self.settle_ended();
        self.flows.clear();
    }

    /// Verdicts of the flows that ended since the last call, in the order
    /// they ended.
    pub fn drain_verdicts(&mut self) -> std::vec::Drain<'_, FlowVerdict> {
        self.verdicts.drain(..)
    }

    /// Turns the flows the table just ended into verdicts. A flow that ends
    /// before its first prediction (fewer than `min_packets` packets) is
    /// judged once on the whole flow as the table ended it: `pending` is an
    /// answer only while a flow is open. The packets it had already carried
    /// keep the `pending` they were given when they arrived.
    fn settle_ended(&mut self) {
        // Taken for the loop and put back: its memory serves the next batch.
        let mut ended = std::mem::take(&mut self.ended);
        for r in ended.drain(..) {
            let Some(mut f) = self.flows.remove(&r.id) else {
                continue;
            };
            if f.prediction == Prediction::Pending {
                self.model
                    .flow_row_cached_into(&r, &mut f.names, &mut self.memo, &mut self.row);
                self.model.flow_proba_into(&self.row, &mut f.probabilities);
                self.predictions += 1;
                f.prediction = judge(self.cfg.threshold, &f.probabilities);
            }
            self.verdicts.push(FlowVerdict {
                flow_id: r.id,
                tuple: f.tuple,
                start_ns: r.start_ns,
                end_ns: r.end_ns,
                packets: r.packets(),
                bytes: r.bytes(),
                prediction: f.prediction,
                probabilities: f.probabilities,
                record: r,
            });
        }
        self.ended = ended;
    }
}

/// The answer for class probabilities `p`: the best class, or `unknown`
/// under `threshold`.
fn judge(threshold: f32, p: &[f32]) -> Prediction {
    let best = argmax(p);
    let confidence = p.get(best).copied().unwrap_or(0.0);
    if confidence >= threshold {
        Prediction::Class {
            class: best,
            confidence,
        }
    } else {
        Prediction::Unknown { best, confidence }
    }
}

/// Outcomes of one true class within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClassTally {
    pub hits: u64,
    pub misses: u64,
    pub unknown: u64,
    pub pending: u64,
}

/// Outcomes within one window of capture time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WindowStats {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Prediction equals the truth.
    pub hits: u64,
    /// A class other than the truth.
    pub misses: u64,
    /// No class given: `unknown` (and pending, when recorded with
    /// [`WindowedEvaluator::record`], which cannot tell them apart).
    pub unknown: u64,
    /// Not predicted yet (fewer than k packets), when recorded with
    /// [`WindowedEvaluator::record_prediction`].
    pub pending: u64,
    /// No truth known: not scored.
    pub unlabelled: u64,
    /// By true class id (the labels' class ids); empty unless recorded
    /// with [`WindowedEvaluator::record_prediction`].
    pub by_class: Vec<ClassTally>,
}

/// What a packet's flow had been told when the packet arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Class(usize),
    Unknown,
    Pending,
}

impl From<&Prediction> for Outcome {
    fn from(p: &Prediction) -> Self {
        match p {
            Prediction::Class { class, .. } => Outcome::Class(*class),
            Prediction::Unknown { .. } => Outcome::Unknown,
            Prediction::Pending => Outcome::Pending,
        }
    }
}

impl WindowStats {
    /// hits / (hits + misses + unknown + pending); `None` for an empty window.
    pub fn accuracy(&self) -> Option<f64> {
        let n = self.hits + self.misses + self.unknown + self.pending;
        (n > 0).then(|| self.hits as f64 / n as f64)
    }

    /// hits / (hits + misses): accuracy of the answers given.
    pub fn answered_accuracy(&self) -> Option<f64> {
        let n = self.hits + self.misses;
        (n > 0).then(|| self.hits as f64 / n as f64)
    }

    /// Packets recorded in the window.
    pub fn packets(&self) -> u64 {
        self.hits + self.misses + self.unknown + self.pending + self.unlabelled
    }

    fn add(&mut self, outcome: Outcome, truth: Option<usize>, per_class: bool) {
        let Some(t) = truth else {
            self.unlabelled += 1;
            return;
        };
        let tally = if per_class {
            if self.by_class.len() <= t {
                self.by_class.resize(t + 1, ClassTally::default());
            }
            Some(&mut self.by_class[t])
        } else {
            None
        };
        let (field, tfield): (&mut u64, Option<&mut u64>) = match outcome {
            Outcome::Pending => (&mut self.pending, tally.map(|c| &mut c.pending)),
            Outcome::Unknown => (&mut self.unknown, tally.map(|c| &mut c.unknown)),
            Outcome::Class(p) if p == t => (&mut self.hits, tally.map(|c| &mut c.hits)),
            Outcome::Class(_) => (&mut self.misses, tally.map(|c| &mut c.misses)),
        };
        *field += 1;
        if let Some(f) = tfield {
            *f += 1;
        }
    }
}

/// Gaps longer than this many empty windows are skipped, not reported.
pub const MAX_EMPTY_WINDOWS: u64 = 1000;

/// Rolling evaluation per window (default 5 s) of capture time. Windows
/// are aligned to multiples of the window since the Unix epoch (so runs,
/// restarts and the live service agree on them); empty windows between busy
/// ones are reported too (with zero counts).
#[derive(Debug, Clone)]
pub struct WindowedEvaluator {
    window_ns: u64,
    cur: Option<WindowStats>,
    closed: Vec<WindowStats>,
    total: WindowStats,
}

impl Default for WindowedEvaluator {
    fn default() -> Self {
        Self::new(5_000_000_000)
    }
}

impl WindowedEvaluator {
    pub fn new(window_ns: u64) -> Self {
        WindowedEvaluator {
            window_ns: window_ns.max(1),
            cur: None,
            closed: vec![],
            total: WindowStats::default(),
        }
    }

    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// Start of the window still open, if any.
    pub fn open_start_ns(&self) -> Option<u64> {
        self.cur.as_ref().map(|c| c.start_ns)
    }

    /// Records one outcome at `ts_ns` (`None`: no class given). Returns how
    /// many windows closed.
    pub fn record(&mut self, ts_ns: u64, predicted: Option<usize>, truth: Option<usize>) -> usize {
        let outcome = predicted.map_or(Outcome::Unknown, Outcome::Class);
        self.record_outcome(ts_ns, outcome, truth, false)
    }

    /// Records one packet's outcome, telling `unknown` from pending and
    /// keeping counts per true class. Returns how many windows closed.
    pub fn record_prediction(
        &mut self,
        ts_ns: u64,
        prediction: &Prediction,
        truth: Option<usize>,
    ) -> usize {
        self.record_outcome(ts_ns, prediction.into(), truth, true)
    }

    /// Closes every window that ends at or before `ts_ns` (a clock tick
    /// without traffic). Returns how many closed.
    pub fn advance_to(&mut self, ts_ns: u64) -> usize {
        match &self.cur {
            Some(c) if ts_ns >= c.end_ns => self.roll(ts_ns),
            _ => 0,
        }
    }

    fn roll(&mut self, ts_ns: u64) -> usize {
        let w = self.window_ns;
        let Some(cur) = self.cur.as_mut() else {
            return 0;
        };
        let mut closed = 1;
        let end = cur.end_ns;
        self.closed.push(std::mem::take(cur));
        let gap = (ts_ns - end) / w;
        // Empty windows in between are reported, up to a limit: a jump in
        // capture time (another file, a clock step) skips ahead instead.
        let empties = if gap <= MAX_EMPTY_WINDOWS { gap } else { 0 };
        for e in 0..empties {
            let start = end + e * w;
            self.closed.push(WindowStats {
                start_ns: start,
                end_ns: start + w,
                ..Default::default()
            });
            closed += 1;
        }
        let start = end + gap * w;
        *cur = WindowStats {
            start_ns: start,
            end_ns: start + w,
            ..Default::default()
        };
        closed
    }

    fn record_outcome(
        &mut self,
        ts_ns: u64,
        outcome: Outcome,
        truth: Option<usize>,
        per_class: bool,
    ) -> usize {
        let w = self.window_ns;
        let mut closed = 0;
        match &self.cur {
            None => {
                let start = ts_ns - ts_ns % w;
                self.cur = Some(WindowStats {
                    start_ns: start,
                    end_ns: start + w,
                    ..Default::default()
                });
            }
            Some(c) if ts_ns >= c.end_ns => closed = self.roll(ts_ns),
            Some(_) => {}
        }
        // A timestamp going backwards is counted in the current window.
        let cur = self.cur.as_mut().expect("window open");
        cur.add(outcome, truth, per_class);
        self.total.add(outcome, truth, per_class);
        if self.total.start_ns == 0 && self.total.end_ns == 0 {
            self.total.start_ns = ts_ns;
        }
        self.total.end_ns = self.total.end_ns.max(ts_ns);
        closed
    }

    /// Windows closed since the last drain.
    pub fn drain_closed(&mut self) -> Vec<WindowStats> {
        std::mem::take(&mut self.closed)
    }

    /// Closes the current window and returns all windows not drained yet.
    pub fn finish(&mut self) -> Vec<WindowStats> {
        if let Some(c) = self.cur.take() {
            self.closed.push(c);
        }
        self.drain_closed()
    }

    /// Counts over everything recorded.
    pub fn total(&self) -> &WindowStats {
        &self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn windowed_counts_on_a_crafted_stream() {
        let mut w = WindowedEvaluator::new(5 * S);
        let t0 = 100 * S;
        // Window 0: hit, hit, miss, unknown, unlabelled.
        assert_eq!(w.record(t0, Some(1), Some(1)), 0);
        w.record(t0 + S, Some(0), Some(0));
        w.record(t0 + 2 * S, Some(0), Some(1));
        w.record(t0 + 3 * S, None, Some(2));
        w.record(t0 + 4 * S, Some(2), None);
        // Window 2 (window 1 empty): one hit; closes windows 0 and 1.
        assert_eq!(w.record(t0 + 11 * S, Some(2), Some(2)), 2);
        let closed = w.drain_closed();
        assert_eq!(closed.len(), 2);
        let a = &closed[0];
        assert_eq!((a.start_ns, a.end_ns), (t0, t0 + 5 * S));
        assert_eq!((a.hits, a.misses, a.unknown, a.unlabelled), (2, 1, 1, 1));
        assert_eq!(a.accuracy(), Some(0.5));
        assert_eq!(a.answered_accuracy(), Some(2.0 / 3.0));
        assert_eq!(closed[1].accuracy(), None);
        assert_eq!(closed[1].start_ns, t0 + 5 * S);
        // A jump far ahead closes the window without thousands of empty ones.
        assert_eq!(w.record(t0 + 10 * S + 5 * S * 5000, Some(2), Some(2)), 1);
        let c = w.drain_closed();
        assert_eq!((c[0].hits, c[0].start_ns), (1, t0 + 10 * S));
        let rest = w.finish();
        assert_eq!(rest.len(), 1);
        assert_eq!(
            (rest[0].hits, rest[0].start_ns),
            (1, t0 + 10 * S + 5 * S * 5000)
        );
        let t = w.total();
        assert_eq!((t.hits, t.misses, t.unknown, t.unlabelled), (4, 1, 1, 1));
    }

    #[test]
    fn windows_align_to_the_epoch_and_tell_pending_from_unknown() {
        let mut w = WindowedEvaluator::new(5 * S);
        let t0 = 1_000 * S + 3 * S / 2; // 1001.5 s: inside [1000 s, 1005 s)
        let class = |c| Prediction::Class {
            class: c,
            confidence: 0.9,
        };
        let unknown = Prediction::Unknown {
            best: 0,
            confidence: 0.2,
        };
        w.record_prediction(t0, &Prediction::Pending, Some(1));
        w.record_prediction(t0 + S, &unknown, Some(1));
        w.record_prediction(t0 + 2 * S, &class(1), Some(1));
        w.record_prediction(t0 + 3 * S, &class(0), Some(3));
        w.record_prediction(t0 + 3 * S, &class(0), None);
        // 1005.5 s closes [1000, 1005).
        assert_eq!(w.record_prediction(t0 + 4 * S, &class(3), Some(3)), 1);
        let c = w.drain_closed();
        assert_eq!((c[0].start_ns, c[0].end_ns), (1_000 * S, 1_005 * S));
        let a = &c[0];
        assert_eq!(
            (a.hits, a.misses, a.unknown, a.pending, a.unlabelled),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(a.accuracy(), Some(0.25));
        // True class 1: pending, unknown, hit; class 3 (not a model class): a miss.
        assert_eq!(
            a.by_class[1],
            ClassTally {
                hits: 1,
                misses: 0,
                unknown: 1,
                pending: 1
            }
        );
        assert_eq!(a.by_class[3].misses, 1);
        assert_eq!(a.by_class[0], ClassTally::default());
        // A tick past the end closes the window without a packet.
        assert_eq!(w.advance_to(1_010 * S), 1);
        assert_eq!(w.drain_closed()[0].by_class[3].hits, 1);
    }
}

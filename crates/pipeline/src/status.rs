//! Live counters of a running pipeline, shared (behind an `Arc`) with
//! whoever reports them: the status line, the API's summary and health, and
//! Prometheus. Plain atomics: the packet loop pays one relaxed add.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::types::Dim;

/// Upper bounds (seconds) of the latency histograms' buckets; the last
/// bucket is +Inf.
pub const LATENCY_BOUNDS_S: [f64; 12] = [
    1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0,
];

/// A cumulative latency histogram with fixed buckets ([`LATENCY_BOUNDS_S`]).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations ≤ each bound (not cumulative here; the exporter sums),
    /// plus one bucket for +Inf.
    pub buckets: [AtomicU64; 13],
    pub count: AtomicU64,
    pub sum_ns: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe_ns(&self, ns: u64) {
        let s = ns as f64 / 1e9;
        let i = LATENCY_BOUNDS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BOUNDS_S.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// (upper bound in seconds or +Inf, cumulative count) pairs, then count and sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let mut out = Vec::with_capacity(13);
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b.load(Relaxed);
            let bound = LATENCY_BOUNDS_S.get(i).copied().unwrap_or(f64::INFINITY);
            out.push((bound, acc));
        }
        (
            out,
            self.count.load(Relaxed),
            self.sum_ns.load(Relaxed) as f64 / 1e9,
        )
    }
}

/// Counters of one running pipeline.
#[derive(Debug, Default)]
pub struct Status {
    /// What is being read, for people: `interface eth0`, `file x.pcap`,
    /// `generator web=3,video=1,voip=2 (10 users)`.
    pub source: String,
    /// Wall clock at start, ns since the Unix epoch.
    pub started_unix_ns: u64,
    /// Frames taken into the pipeline (after the filter).
    pub packets: AtomicU64,
    /// Their wire bytes.
    pub bytes: AtomicU64,
    /// Frames with a decoding error (counted, still binned).
    pub malformed: AtomicU64,
    /// Capture time of the newest frame, ns.
    pub last_packet_ns: AtomicU64,
    /// Frames the kernel dropped (live capture: the ring was full).
    pub drops_kernel: std::sync::Arc<AtomicU64>,
    /// Transport messages (Kafka) that did not decode: counted and skipped.
    pub records_undecodable: AtomicU64,
    /// Transport messages seen before (a producer's retry): skipped.
    pub records_duplicate: AtomicU64,
    /// Outputs dropped because the queue to the sinks was full.
    pub drops_queue: AtomicU64,
    /// Finished flows `--flows-to` could not queue for Kafka (its buffer
    /// was full: the broker is slow or unreachable).
    pub drops_flows_to: AtomicU64,
    /// Items waiting in the queue to the sinks, and its capacity.
    pub queue_len: AtomicU64,
    pub queue_capacity: AtomicU64,
    /// Flows open now, and flows ended so far.
    pub open_flows: AtomicU64,
    pub flows_ended: AtomicU64,
    /// Bins, windows and Hurst points emitted.
    pub bins: AtomicU64,
    pub windows: AtomicU64,
    pub hurst_points: AtomicU64,
    /// Bins handed to the live stream and the store writer, counted before
    /// they are broadcast: a stream subscribing now reads it, and what the
    /// store has not committed of these bins the client could miss (they
    /// went out before it subscribed), so its `hello` waits for the store.
    pub bins_published: AtomicU64,
    /// An analysis node (`run --from kafka://…`): its consumer group's lag
    /// over the partitions it owns, in messages not yet committed (in the
    /// broker, fetched, or read and waiting for the store), whether it is
    /// known (every partition fetched once), and the partitions owned.
    pub kafka_consumer: AtomicBool,
    pub kafka_lag_messages: AtomicU64,
    pub kafka_lag_known: AtomicBool,
    pub kafka_partitions: AtomicU64,
    /// The source has ended (file read to the end); the service may still serve.
    pub source_done: AtomicBool,
    /// Time spent per packet in decode + classification + aggregation, sampled.
    pub packet_latency: LatencyHistogram,
    /// Time to close a bin (aggregation and Hurst).
    pub bin_latency: LatencyHistogram,
    /// Packets and bytes per dimension key since start, added once per closed bin.
    pub totals: Mutex<BTreeMap<(Dim, String), (u64, u64)>>,
    /// Finished flows per final class since start.
    pub flows_by_class: Mutex<BTreeMap<String, u64>>,
}

impl Status {
    pub fn new(source: impl Into<String>) -> Self {
        Status {
            source: source.into(),
            started_unix_ns: unix_now_ns(),
            ..Status::default()
        }
    }

    pub fn uptime_s(&self) -> f64 {
        unix_now_ns().saturating_sub(self.started_unix_ns) as f64 / 1e9
    }
}

/// Wall clock, ns since the Unix epoch.
pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

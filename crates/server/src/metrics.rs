//! `/metrics` in the Prometheus text format (0.0.4), written by hand from
//! the live atomics at scrape time. Hand-written rather than through
//! `prometheus-client`: every value already lives in `Status`/`StoreStats`
//! (a registry would only copy them), the latency histograms arrive as
//! ready bucket counts that its encoder has no plain type for, and its
//! output is OpenMetrics (`# EOF`, `_total` stripped from family names),
//! where the names asked for here are the classic ones. ~100 lines, no
//! dependency.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use pipeline::{Dim, LatencyHistogram};

use crate::ctx::Shared;
use crate::error::ApiError;
use crate::params::Query;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(self.0, "{sep}{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    /// A family with a single unlabelled sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, stage: &str, h: &LatencyHistogram) {
        let (buckets, _, sum) = h.snapshot();
        for (bound, n) in &buckets {
            let le = number(*bound);
            self.sample(
                &format!("{name}_bucket"),
                &[("stage", stage), ("le", &le)],
                *n as f64,
            );
        }
        // The count is the +Inf bucket, so the two agree even when a packet
        // is observed while we read.
        let count = buckets.last().map_or(0, |b| b.1);
        self.sample(&format!("{name}_sum"), &[("stage", stage)], sum);
        self.sample(&format!("{name}_count"), &[("stage", stage)], count as f64);
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

pub fn render(ctx: &Shared) -> String {
    let s = &ctx.app.status;
    let st = &ctx.app.store_stats;
    let mut t = Text::default();
    let c = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed) as f64;
    t.one(
        "trafficscope_packets_total",
        "counter",
        "Frames taken into the pipeline (after the capture filter).",
        c(&s.packets),
    );
    t.one(
        "trafficscope_bytes_total",
        "counter",
        "Wire bytes of those frames.",
        c(&s.bytes),
    );
    t.one(
        "trafficscope_malformed_packets_total",
        "counter",
        "Frames with a decoding error (still counted and binned).",
        c(&s.malformed),
    );
    t.one(
        "trafficscope_undecodable_messages_total",
        "counter",
        "Kafka messages that did not decode as packet records (counted, skipped).",
        c(&s.records_undecodable),
    );
    t.one(
        "trafficscope_duplicate_messages_total",
        "counter",
        "Kafka messages delivered again by a producer's retry (skipped).",
        c(&s.records_duplicate),
    );
    // Per-key totals are added once per closed bin, so they trail the
    // unlabelled totals above by up to one bin; separate families keep
    // sum() over a family meaningful.
    let totals = s.totals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for dim in Dim::ALL {
        for (unit, pick) in [("packets", 0), ("bytes", 1)] {
            let name = format!("trafficscope_{}_{unit}_total", dim.as_str());
            t.family(
                &name,
                "counter",
                &format!("{unit} by {} since start, from closed bins.", dim.as_str()),
            );
            for ((d, key), (p, b)) in totals.iter().filter(|((d, _), _)| *d == dim) {
                let v = if pick == 0 { *p } else { *b };
                t.sample(&name, &[(d.as_str(), key)], v as f64);
            }
        }
    }
    t.family(
        "trafficscope_flows_total",
        "counter",
        "Finished flows by final class.",
    );
    for (class, n) in s
        .flows_by_class
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        t.sample("trafficscope_flows_total", &[("class", class)], *n as f64);
    }
    t.one(
        "trafficscope_flows_open",
        "gauge",
        "Flows open now.",
        c(&s.open_flows),
    );
    t.family(
        "trafficscope_outputs_total",
        "counter",
        "Bins, evaluation windows and Hurst points emitted.",
    );
    for (kind, a) in [
        ("bin", &s.bins),
        ("window", &s.windows),
        ("hurst", &s.hurst_points),
    ] {
        t.sample("trafficscope_outputs_total", &[("kind", kind)], c(a));
    }
    t.family(
        "trafficscope_drops_total",
        "counter",
        "Drops by cause: kernel (frames, capture ring full), queue (outputs, queue to the sinks full), flows_to (finished flows, --flows-to buffer full), store (outputs, store failing and its memory bound reached).",
    );
    // A coercion, so this reads the counter whether `Status` holds it
    // plainly or behind an `Arc` shared with the capture thread.
    let kernel: &std::sync::atomic::AtomicU64 = &s.drops_kernel;
    for (cause, a) in [
        ("kernel", kernel),
        ("queue", &s.drops_queue),
        ("flows_to", &s.drops_flows_to),
        ("store", &st.drops),
    ] {
        t.sample("trafficscope_drops_total", &[("cause", cause)], c(a));
    }
    let cap = s.queue_capacity.load(Relaxed);
    let fill = if cap == 0 {
        0.0
    } else {
        c(&s.queue_len) / cap as f64
    };
    t.one(
        "trafficscope_queue_fill_ratio",
        "gauge",
        "Items waiting in the queue to the sinks over its capacity.",
        fill,
    );
    if s.kafka_consumer.load(Relaxed) {
        t.one(
            "trafficscope_kafka_partitions_owned",
            "gauge",
            "Kafka partitions this analysis node owns in its consumer group.",
            c(&s.kafka_partitions),
        );
        // Absent until every owned partition has been fetched once.
        if s.kafka_lag_known.load(Relaxed) {
            t.one(
                "trafficscope_kafka_consumer_lag_messages",
                "gauge",
                "Messages of the owned partitions not committed yet: in the broker past the \
                 consumer, fetched, or read and waiting for the store.",
                c(&s.kafka_lag_messages),
            );
        }
    }
    t.family(
        "trafficscope_stage_latency_seconds",
        "histogram",
        "Time per packet (decode, classification, aggregation; sampled) and per bin close.",
    );
    t.histogram(
        "trafficscope_stage_latency_seconds",
        "packet",
        &s.packet_latency,
    );
    t.histogram("trafficscope_stage_latency_seconds", "bin", &s.bin_latency);
    t.one(
        "trafficscope_store_size_bytes",
        "gauge",
        "Size of the store's files.",
        c(&st.size_bytes),
    );
    t.one(
        "trafficscope_store_commit_lag_seconds",
        "gauge",
        "Wall time from the oldest output of the last commit to the commit.",
        c(&st.commit_lag_ns) / 1e9,
    );
    t.one(
        "trafficscope_store_failing",
        "gauge",
        "1 while writing to the store fails.",
        if st.failing.load(Relaxed) { 1.0 } else { 0.0 },
    );
    t.one(
        "trafficscope_store_commits_total",
        "counter",
        "Store transactions committed.",
        c(&st.commits),
    );
    t.one(
        "trafficscope_store_pending_outputs",
        "gauge",
        "Outputs received by the store writer and not committed yet.",
        c(&st.pending),
    );
    t.one(
        "trafficscope_store_spooled_batches",
        "gauge",
        "Batches waiting in the local spool for the ClickHouse server.",
        c(&st.spooled_batches),
    );
    t.one(
        "trafficscope_store_spooled_bytes",
        "gauge",
        "Bytes of the batches waiting in the local spool for the ClickHouse server.",
        c(&st.spooled_bytes),
    );
    t.one(
        "trafficscope_source_ended",
        "gauge",
        "1 once the source has ended (a file read to the end).",
        if s.source_done.load(Relaxed) {
            1.0
        } else {
            0.0
        },
    );
    t.one(
        "trafficscope_start_time_seconds",
        "gauge",
        "Wall clock at start, seconds since the Unix epoch.",
        s.started_unix_ns as f64 / 1e9,
    );
    t.one(
        "trafficscope_uptime_seconds",
        "gauge",
        "Seconds since start.",
        s.uptime_s(),
    );
    t.family(
        "trafficscope_build_info",
        "gauge",
        "Always 1; the version as a label.",
    );
    t.sample(
        "trafficscope_build_info",
        &[("version", &ctx.app.info.version)],
        1.0,
    );
    t.0
}

pub async fn metrics(
    State(ctx): State<Shared>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    Query::parse(q.as_deref(), &[])?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&ctx)).into_response())
}

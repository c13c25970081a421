//! `/api/v1/summary` and `/api/v1/health`: answered from the live counters
//! alone, never the store, so they work (and say so) while the store fails.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::ctx::Shared;
use crate::error::{json_response, ApiError};
use crate::isotime::format_iso;
use crate::params::Query;
use crate::rates;

/// Commit lag above which health says "degraded".
const LAG_DEGRADED_S: f64 = 10.0;
/// Queue fill above which health says "degraded".
const QUEUE_DEGRADED: f64 = 0.9;

fn iso_or_null(ns: u64) -> Value {
    if ns == 0 {
        Value::Null
    } else {
        Value::String(format_iso(ns))
    }
}

fn queue_fill(ctx: &Shared) -> (u64, u64, f64) {
    let s = &ctx.app.status;
    let (len, cap) = (s.queue_len.load(Relaxed), s.queue_capacity.load(Relaxed));
    let fill = if cap == 0 {
        0.0
    } else {
        len as f64 / cap as f64
    };
    (len, cap, fill)
}

fn delta(ctx: &Shared) -> Option<rates::Delta> {
    ctx.rates.lock().unwrap_or_else(|e| e.into_inner()).delta()
}

pub async fn summary(
    State(ctx): State<Shared>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    Query::parse(q.as_deref(), &[])?;
    let s = &ctx.app.status;
    let st = &ctx.app.store_stats;
    let mut by: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for ((dim, key), (packets, bytes)) in s.totals.lock().unwrap_or_else(|e| e.into_inner()).iter()
    {
        by.entry(dim.as_str())
            .or_default()
            .push(json!({"key": key, "packets": packets, "bytes": bytes}));
    }
    let flows_by_class = s
        .flows_by_class
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let rates = match delta(&ctx) {
        Some(d) => json!({
            "window_s": d.seconds,
            "packets_per_s": d.packets as f64 / d.seconds,
            "bytes_per_s": d.bytes as f64 / d.seconds,
        }),
        None => json!({"window_s": null, "packets_per_s": null, "bytes_per_s": null}),
    };
    let (len, cap, fill) = queue_fill(&ctx);
    let last_packet = s.last_packet_ns.load(Relaxed);
    let last_commit = st.last_commit_unix_ns.load(Relaxed);
    let body = json!({
        "source": s.source,
        "source_done": s.source_done.load(Relaxed),
        "started": iso_or_null(s.started_unix_ns),
        "started_ns": s.started_unix_ns,
        "uptime_s": s.uptime_s(),
        "last_packet": iso_or_null(last_packet),
        "last_packet_ns": last_packet,
        "totals": {
            "packets": s.packets.load(Relaxed),
            "bytes": s.bytes.load(Relaxed),
            "malformed": s.malformed.load(Relaxed),
            "open_flows": s.open_flows.load(Relaxed),
            "flows_ended": s.flows_ended.load(Relaxed),
            "bins": s.bins.load(Relaxed),
            "windows": s.windows.load(Relaxed),
            "hurst_points": s.hurst_points.load(Relaxed),
            "by": by,
            "flows_by_class": flows_by_class,
        },
        "rates": rates,
        "drops": {
            "kernel": s.drops_kernel.load(Relaxed),
            "queue": s.drops_queue.load(Relaxed),
            "flows_to": s.drops_flows_to.load(Relaxed),
            "store": st.drops.load(Relaxed),
        },
        "queue": {"len": len, "capacity": cap, "fill_ratio": fill},
        "store": {
            "failing": st.failing.load(Relaxed),
            "last_error": *st.last_error.lock().unwrap_or_else(|e| e.into_inner()),
            "commits": st.commits.load(Relaxed),
            "last_commit": iso_or_null(last_commit),
            "last_commit_ns": last_commit,
            "commit_lag_s": st.commit_lag_ns.load(Relaxed) as f64 / 1e9,
            "pending": st.pending.load(Relaxed),
            "pending_capacity": st.pending_capacity.load(Relaxed),
            "size_bytes": st.size_bytes.load(Relaxed),
            "spooled_batches": st.spooled_batches.load(Relaxed),
            "spooled_bytes": st.spooled_bytes.load(Relaxed),
        },
        "kafka": if s.kafka_consumer.load(Relaxed) {
            json!({
                "partitions": s.kafka_partitions.load(Relaxed),
                "lag_messages": s.kafka_lag_known.load(Relaxed)
                    .then(|| s.kafka_lag_messages.load(Relaxed)),
            })
        } else {
            Value::Null
        },
        "pcap": crate::pcap::summary(ctx.app.pcap.as_ref()),
        "classes": ctx.app.info.classes,
        "info": ctx.app.info,
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// Always 200 while the server answers: "degraded" is for people and
/// dashboards; a load balancer should not pull a service whose store
/// hiccups while its live view still works.
pub async fn health(
    State(ctx): State<Shared>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    Query::parse(q.as_deref(), &[])?;
    let s = &ctx.app.status;
    let st = &ctx.app.store_stats;
    let mut reasons = Vec::new();
    if st.failing.load(Relaxed) {
        let err = st
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        reasons.push(format!(
            "store failing: {}",
            err.unwrap_or_else(|| "no error message".into())
        ));
    }
    if let Some(d) = delta(&ctx) {
        if d.drops.iter().any(|&n| n > 0) {
            reasons.push(format!(
                "drops in the last {:.0} s: kernel {}, queue {}, store {}",
                d.seconds, d.drops[0], d.drops[1], d.drops[2]
            ));
        }
    }
    if s.source_done.load(Relaxed) {
        reasons.push("source ended: no new data; the history is still served".into());
    }
    let (_, _, fill) = queue_fill(&ctx);
    if fill >= QUEUE_DEGRADED {
        reasons.push(format!("queue to the sinks {:.0} % full", fill * 100.0));
    }
    let lag = st.commit_lag_ns.load(Relaxed) as f64 / 1e9;
    if lag > LAG_DEGRADED_S {
        reasons.push(format!("store commits lag {lag:.1} s"));
    }
    let last_packet = s.last_packet_ns.load(Relaxed);
    let body = json!({
        "status": if reasons.is_empty() { "ok" } else { "degraded" },
        "reasons": reasons,
        "uptime_s": s.uptime_s(),
        "queue_fill_ratio": fill,
        "commit_lag_s": lag,
        "last_packet": iso_or_null(last_packet),
        "last_packet_ns": last_packet,
    });
    Ok(json_response(StatusCode::OK, &body))
}

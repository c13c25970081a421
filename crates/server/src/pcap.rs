//! `/api/v1/pcap`: the packets behind a chart, as a capture file.
//!
//! Reads the packet ring of `run -w DIR` ([`pcapring`]): only the files
//! whose time span overlaps the range, on the blocking pool, streamed to
//! the client in chunks as they are read (a few MiB in flight at most),
//! never the whole file in memory. Bounded per download by
//! [`MAX_PACKETS`], [`MAX_BYTES`] (stated in the response headers
//! `X-Trafficscope-Max-Packets` / `-Max-Bytes`: a file holding exactly
//! that many was cut there) and [`MAX_RANGE_NS`]; at most [`MAX_DOWNLOADS`]
//! at once. Without a ring: 404 saying to start run with `-w DIR`.

use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use pcapring::{extract, FlowTuple, Limits, Match, Plan, Ring};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::ctx::Shared;
use crate::error::ApiError;
use crate::isotime::{format_duration, format_iso};
use crate::params::{clip, Query, RangeSpec, TimeSpec};

pub const PARAMS: &[&str] = &["from", "to", "flow", "addr", "port", "proto", "filter"];

/// Most packets in one download.
pub const MAX_PACKETS: u64 = 1_000_000;
/// Most bytes of one download (the capture file, headers included).
pub const MAX_BYTES: u64 = 1_000_000_000;
/// Longest range of one download.
pub const MAX_RANGE_NS: u64 = 24 * 3_600_000_000_000;
/// Downloads served at once (each reads files on a blocking thread).
pub const MAX_DOWNLOADS: usize = 2;
/// Range when `from` is absent: this far back from `to` (as elsewhere).
const DEFAULT_SPAN_NS: u64 = 3_600_000_000_000;
/// Chunks in flight between the reading thread and the connection.
const CHUNKS_IN_FLIGHT: usize = 4;

pub const ANSWERS: &str = "the packets of [from, to) as a pcap download (application/vnd.tcpdump.pcap; \
pcapng when the range holds several link types) from the packet ring of `run -w DIR`: all of them, one \
flow (flow=PROTO,SRC,SRC_PORT,DST,DST_PORT[,VLAN] from a flow record, both directions; then to is \
inclusive, so a record's start and end go in as they are), or those matching addr, port and proto \
(tcp, udp, sctp, icmp, icmpv6, a number), optionally narrowed by filter (a tcpdump expression); \
at most 1000000 packets, 10^9 bytes and 24h per download (headers X-Trafficscope-Max-Packets and \
X-Trafficscope-Max-Bytes); 404 without -w DIR; summary.pcap tells whether a ring is there and its time extent";

/// Downloads running now.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        RUNNING
            .fetch_update(Relaxed, Relaxed, |n| (n < MAX_DOWNLOADS).then_some(n + 1))
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Relaxed);
    }
}

fn no_ring() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no packet ring: this service keeps no packets. Start run with -w DIR (e.g. \
         `trafficscope run -i eth0 -w /var/lib/trafficscope/ring`) to keep a bounded ring of \
         pcap files there; /api/v1/summary says whether a ring is available (pcap.available)",
    )
}

/// `pcap` of `/api/v1/summary`: whether a ring is there, its extent and counters.
pub fn summary(ring: Option<&Arc<Ring>>) -> Value {
    let Some(ring) = ring else {
        return json!({"available": false, "hint": "start run with -w DIR to keep the packets"});
    };
    let s = &ring.stats;
    let held = ring.held();
    let (first, last) = held.extent.unzip();
    let cfg = ring.config();
    json!({
        "available": true,
        "download": "/api/v1/pcap",
        "dir": ring.dir(),
        "first": first.map(format_iso), "first_ns": first,
        "last": last.map(format_iso), "last_ns": last,
        "files": held.files,
        "packets": held.packets,
        "bytes": held.bytes,
        "scanning": s.scanning.load(Relaxed),
        "ring": {
            "files": cfg.files,
            "rotate_bytes": cfg.size_limit,
            "rotate": format_duration(cfg.period_ns), "rotate_ns": cfg.period_ns,
            "bound_bytes": cfg.bound_bytes(),
        },
        "written": {
            "packets": s.packets_written.load(Relaxed),
            "bytes": s.bytes_written.load(Relaxed),
            "files": s.files_created.load(Relaxed),
        },
        "write_errors": s.write_errors.load(Relaxed),
        "packets_lost": s.packets_lost.load(Relaxed),
        "read_errors": s.read_errors.load(Relaxed),
        "last_error": *s.last_error.lock().unwrap_or_else(|e| e.into_inner()),
        "limits": {"packets": MAX_PACKETS, "bytes": MAX_BYTES, "range_ns": MAX_RANGE_NS, "range": format_duration(MAX_RANGE_NS)},
    })
}

/// What to match, from `flow` or `addr`/`port`/`proto`.
fn matcher(q: &Query) -> Result<Match, ApiError> {
    let fields = ["addr", "port", "proto"];
    if let Some(f) = q.get("flow") {
        if let Some(other) = fields.iter().find(|n| q.get(n).is_some()) {
            return Err(ApiError::param(
                other,
                format!(
                    "`{other}` cannot be combined with `flow` (a flow is already one five-tuple)"
                ),
                "flow alone, or any of addr, port, proto",
            ));
        }
        let t = FlowTuple::parse(f)
            .map_err(|why| ApiError::param("flow", clip(&why), FlowTuple::ACCEPTED))?;
        return Ok(Match::Flow(t));
    }
    let addr = match q.get("addr") {
        None => None,
        Some(a) => Some(
            a.parse::<IpAddr>()
                .map_err(|_| {
                    ApiError::param(
                        "addr",
                        format!("`{}` is not an IP address", clip(a)),
                        "an IPv4 or IPv6 address (10.0.0.1, 2001:db8::1)",
                    )
                })?
                .to_canonical(),
        ),
    };
    let port = match q.get("port") {
        None => None,
        Some(_) => Some(q.uint("port", 0, 65_535, 0)? as u16),
    };
    let proto = match q.get("proto") {
        None => None,
        Some(p) => Some(pcapring::parse_proto(p).map_err(|why| {
            ApiError::param(
                "proto",
                clip(&why),
                "tcp, udp, sctp, icmp, icmpv6 or an IP protocol number 0-255",
            )
        })?),
    };
    Ok(if addr.is_none() && port.is_none() && proto.is_none() {
        Match::All
    } else {
        Match::Fields { addr, port, proto }
    })
}

/// A flow's `to` is inclusive (a record's `end` is its last packet):
/// moved one ns later, so the range stays `[from, to)` inside.
fn inclusive_to(spec: RangeSpec) -> RangeSpec {
    let to = match spec.to {
        Some(TimeSpec::Absolute(ns)) => Some(TimeSpec::Absolute(ns.saturating_add(1))),
        Some(TimeSpec::Now(ago)) => Some(TimeSpec::Now(ago.saturating_sub(1))),
        None => None,
    };
    RangeSpec { to, ..spec }
}

/// `2026-12-04T15:00:00.25Z` → `20261204T150000.25Z`: a file name anywhere.
fn compact(ns: u64) -> String {
    format_iso(ns).replace(['-', ':'], "")
}

pub async fn download(
    State(ctx): State<Shared>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let Some(ring) = ctx.app.pcap.clone() else {
        return Err(no_ring());
    };
    let q = Query::parse(raw.as_deref(), PARAMS)?;
    let matcher = matcher(&q)?;
    let is_flow = matches!(matcher, Match::Flow(_));
    let mut spec = q.range()?;
    if is_flow {
        spec = inclusive_to(spec);
    }
    let ((from, to), _) = ctx.range(spec, DEFAULT_SPAN_NS, false).await?;
    if to - from > MAX_RANGE_NS {
        return Err(ApiError::param(
            "from",
            format!(
                "the range spans {}: a download covers at most {}",
                format_duration(to - from),
                format_duration(MAX_RANGE_NS)
            ),
            format!("to − from ≤ {}", format_duration(MAX_RANGE_NS)),
        ));
    }
    let filter = q.get("filter").map(str::to_string);
    let plan = Plan::new(&ring, from, to);
    if let Some(expr) = &filter {
        plan.check_filter(expr).map_err(|why| {
            ApiError::param(
                "filter",
                clip(&why),
                "a tcpdump filter expression (pcap-filter syntax: host, net, port, tcp, udp, vlan, …)",
            )
        })?;
    }
    if plan.files.is_empty() {
        return Err(outside(&ring, from, to));
    }
    let Some(slot) = Slot::take() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_DOWNLOADS} pcap downloads are running: try again when one is done"),
        ));
    };
    let query = pcapring::Query {
        from_ns: from,
        to_ns: to,
        matcher,
        filter,
    };
    let pcapng = plan.format == pcapring::OutputFormat::PcapNg;
    let name = format!(
        "trafficscope_{}_{}{}.{}",
        compact(from),
        compact(if is_flow { to - 1 } else { to }),
        if is_flow { "_flow" } else { "" },
        if pcapng { "pcapng" } else { "pcap" }
    );
    let files = plan.files.len();
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let stop = ctx.stop.clone();
    let limits = Limits {
        max_packets: MAX_PACKETS,
        max_bytes: MAX_BYTES,
    };
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let out = Chunks { tx, stop };
        match extract(&ring, &plan, &query, limits, out) {
            Ok(x) => {
                for d in &x.damaged {
                    eprintln!("trafficscope: pcap download: {d}");
                }
            }
            // The client went away or the server stops: nothing to tell.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(e) => eprintln!("trafficscope: pcap download stopped: {e}"),
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, io::Error>(b), rx))
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    let ctype = if pcapng {
        "application/x-pcapng"
    } else {
        "application/vnd.tcpdump.pcap"
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    let disposition = format!("attachment; filename=\"{name}\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (k, v) in [
        ("x-trafficscope-max-packets", MAX_PACKETS.to_string()),
        ("x-trafficscope-max-bytes", MAX_BYTES.to_string()),
        ("x-trafficscope-from-ns", from.to_string()),
        ("x-trafficscope-to-ns", to.to_string()),
        ("x-trafficscope-files", files.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    Ok(r)
}

/// No file of the ring overlaps `[from, to)`: 404 saying what it holds
/// (503 while the files of an earlier run are still being indexed).
fn outside(ring: &Ring, from: u64, to: u64) -> ApiError {
    if ring.stats.scanning.load(Relaxed) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the ring's files from an earlier run are still being indexed: try again in a moment",
        );
    }
    let cfg = ring.config();
    let held = match ring.extent() {
        Some((a, b)) => {
            let why = if to <= a {
                format!(
                    "; older packets were overwritten (a ring of {} files of at most {} or {} bytes) or never seen",
                    cfg.files,
                    format_duration(cfg.period_ns),
                    cfg.size_limit
                )
            } else if from > b {
                "; nothing newer has been read yet".to_string()
            } else {
                String::new()
            };
            format!(
                "the ring holds packets from {} to {}{why}",
                format_iso(a),
                format_iso(b)
            )
        }
        None => "the ring holds no packets yet".to_string(),
    };
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no packets kept for [{}, {}): {held}",
            format_iso(from),
            format_iso(to)
        ),
    )
}

/// The download's bytes, handed to the connection in chunks; fails once
/// the client is gone or the server stops, which ends the reading.
struct Chunks {
    tx: mpsc::Sender<Bytes>,
    stop: watch::Receiver<bool>,
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if *self.stop.borrow() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the server is stopping",
            ));
        }
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_ranges_include_their_end() {
        let spec = RangeSpec {
            from: Some(TimeSpec::Absolute(5)),
            to: Some(TimeSpec::Absolute(5)),
        };
        assert_eq!(inclusive_to(spec).resolve(100, 1), Ok((5, 6)));
        assert_eq!(compact(1_000_000_000_250_000_000), "20010909T014640.250Z");
    }

    #[test]
    fn matchers_and_their_errors() {
        let m = |raw: &str| matcher(&Query::parse(Some(raw), PARAMS).unwrap());
        assert_eq!(m("").unwrap(), Match::All);
        assert!(matches!(
            m("flow=tcp,10.0.0.1,1,10.0.0.2,2").unwrap(),
            Match::Flow(_)
        ));
        assert_eq!(
            m("addr=::ffff:10.0.0.1&proto=udp").unwrap(),
            Match::Fields {
                addr: Some("10.0.0.1".parse().unwrap()),
                port: None,
                proto: Some(17)
            }
        );
        for (raw, param) in [
            ("flow=tcp,10.0.0.1,1,10.0.0.2", "flow"),
            ("flow=tcp,10.0.0.1,1,10.0.0.2,2&port=3", "port"),
            ("addr=10.0.0", "addr"),
            ("port=65536", "port"),
            ("proto=tpc", "proto"),
        ] {
            let e = m(raw).unwrap_err();
            assert_eq!(e.parameter.as_deref(), Some(param), "{raw}");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }
}

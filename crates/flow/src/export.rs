//! Flat CSV rendering of flow records (JSON Lines goes through serde).

use std::fmt::Write as _;
use std::io::{self, Write};

use capture::Utc;

use crate::record::{DirStats, FlowRecord};

/// Column names of [`write_csv_row`], in order.
pub const FLOW_CSV_COLUMNS: &[&str] = &[
    "id",
    "start",
    "end",
    "duration_s",
    "proto",
    "ip_version",
    "src",
    "src_port",
    "dst",
    "dst_port",
    "vlan",
    "tunnel",
    "fwd_packets",
    "fwd_bytes",
    "bwd_packets",
    "bwd_bytes",
    "fwd_payload_bytes",
    "bwd_payload_bytes",
    "fwd_size_min",
    "fwd_size_mean",
    "fwd_size_max",
    "fwd_size_std",
    "bwd_size_min",
    "bwd_size_mean",
    "bwd_size_max",
    "bwd_size_std",
    "fwd_iat_min_us",
    "fwd_iat_mean_us",
    "fwd_iat_max_us",
    "fwd_iat_std_us",
    "bwd_iat_min_us",
    "bwd_iat_mean_us",
    "bwd_iat_max_us",
    "bwd_iat_std_us",
    "syn",
    "ack",
    "fin",
    "rst",
    "psh",
    "urg",
    "fragments",
    "service",
    "app",
    "tls_sni",
    "tls_alpn",
    "dns_query",
    "dns_qtype",
    "http_method",
    "http_host",
    "quic_version",
    "ssh_banner",
    "end_reason",
    "first_sizes",
    "first_iats_us",
];

pub fn write_csv_header(out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{}", FLOW_CSV_COLUMNS.join(","))
}

fn field(s: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        s.push('"');
        s.push_str(&v.replace('"', "\"\""));
        s.push('"');
    } else {
        s.push_str(v);
    }
}

fn opt(s: &mut String, v: Option<&str>) {
    s.push(',');
    if let Some(v) = v {
        field(s, v);
    }
}

fn stat4(s: &mut String, st: &crate::record::Stat) {
    let _ = write!(s, ",{},{:.3},{},{:.3}", st.min, st.mean, st.max, st.std);
}

fn flags(f: &DirStats, g: &DirStats, bit: usize) -> u32 {
    f.tcp_flags[bit] + g.tcp_flags[bit]
}

/// Writes one flow as a CSV row (columns of [`FLOW_CSV_COLUMNS`]). `line` is
/// a scratch buffer reused across rows.
pub fn write_csv_row(out: &mut impl Write, r: &FlowRecord, line: &mut String) -> io::Result<()> {
    line.clear();
    let s = line;
    let _ = write!(
        s,
        "{},{},{},{:.6},{},{},{},{},{},{},{}",
        r.id,
        Utc(r.start_ns),
        Utc(r.end_ns),
        r.duration_s(),
        decode::protocol_name(r.protocol),
        r.ip_version,
        r.src,
        r.src_port,
        r.dst,
        r.dst_port,
        r.vlan
    );
    opt(s, r.tunnel);
    let _ = write!(
        s,
        ",{},{},{},{},{},{}",
        r.fwd.packets,
        r.fwd.bytes,
        r.bwd.packets,
        r.bwd.bytes,
        r.fwd.payload_bytes,
        r.bwd.payload_bytes
    );
    stat4(s, &r.fwd.size);
    stat4(s, &r.bwd.size);
    stat4(s, &r.fwd.iat_us);
    stat4(s, &r.bwd.iat_us);
    // Flag bit order: FIN, SYN, RST, PSH, ACK, URG.
    let _ = write!(
        s,
        ",{},{},{},{},{},{},{}",
        flags(&r.fwd, &r.bwd, 1),
        flags(&r.fwd, &r.bwd, 4),
        flags(&r.fwd, &r.bwd, 0),
        flags(&r.fwd, &r.bwd, 2),
        flags(&r.fwd, &r.bwd, 3),
        flags(&r.fwd, &r.bwd, 5),
        r.fragments
    );
    let a = &r.app;
    opt(s, a.service);
    opt(s, a.detected);
    opt(s, a.tls_sni.as_deref());
    opt(s, a.tls_alpn.as_deref());
    opt(s, a.dns_query.as_deref());
    opt(s, a.dns_qtype);
    opt(s, a.http_method.as_deref());
    opt(s, a.http_host.as_deref());
    opt(s, a.quic_version.as_deref());
    opt(s, a.ssh_banner.as_deref());
    s.push(',');
    s.push_str(r.end_reason.as_str());
    // Sequences: sizes signed by direction (+ initiator→responder), space-separated.
    s.push(',');
    for (i, (size, dir)) in r.first_sizes.iter().zip(&r.first_dirs).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{}", *size as i64 * *dir as i64);
    }
    s.push(',');
    for (i, iat) in r.first_iats_us.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{iat:.0}");
    }
    s.push('\n');
    out.write_all(s.as_bytes())
}

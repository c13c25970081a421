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
    "http_path",
    "http_content_type",
    "tls_cert_name",
    "protocols",
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
    let _ = write!(s, ",{}", st.min);
    s.push(',');
    fixed(s, st.mean, 3);
    let _ = write!(s, ",{}", st.max);
    s.push(',');
    fixed(s, st.std, 3);
}

/// Writes `x` with `decimals` digits after the point, exactly as `{:.N}`
/// does, through integer formatting: `{:.N}` of an f64 takes an exact
/// big-number path that was a fifth of `flows`' time.
fn fixed(s: &mut String, x: f64, decimals: u32) {
    let scale = 10u64.pow(decimals);
    match round_scaled(x, scale as f64) {
        Some(m) if decimals == 0 => {
            let _ = write!(s, "{m}");
        }
        Some(m) => {
            let _ = write!(s, "{}.{:0w$}", m / scale, m % scale, w = decimals as usize);
        }
        None => {
            let _ = write!(s, "{:.*}", decimals as usize, x);
        }
    }
}

/// `x·scale` rounded to an integer, when that is certainly what exact
/// decimal rounding of `x` gives: non-negative, below 2^40 (so the product's
/// rounding error is under 2.5e-4) and not within 1e-3 of a tie. `None`
/// sends the caller to the exact formatter.
#[inline]
fn round_scaled(x: f64, scale: f64) -> Option<u64> {
    let y = x * scale;
    if !(0.0..1_099_511_627_776.0).contains(&y) {
        return None;
    }
    let frac = y - y.floor();
    if (frac - 0.5).abs() < 1e-3 {
        return None;
    }
    Some(y.round() as u64)
}

fn flags(f: &DirStats, g: &DirStats, bit: usize) -> u32 {
    f.tcp_flags[bit] + g.tcp_flags[bit]
}

/// Writes one flow as a CSV row (columns of [`FLOW_CSV_COLUMNS`]). `line` is
/// a scratch buffer reused across rows.
pub fn write_csv_row(out: &mut impl Write, r: &FlowRecord, line: &mut String) -> io::Result<()> {
    line.clear();
    let s = line;
    let _ = write!(s, "{},{},{},", r.id, Utc(r.start_ns), Utc(r.end_ns),);
    fixed(s, r.duration_s(), 6);
    let _ = write!(
        s,
        ",{},{},{},{},{},{},{}",
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
        fixed(s, *iat, 0);
    }
    opt(s, a.http_path.as_deref());
    opt(s, a.http_content_type.as_deref());
    opt(s, a.tls_cert_name.as_deref());
    // Protocol names never need quoting.
    s.push(',');
    for (i, name) in decode::app::protocol_names(a.protocols).enumerate() {
        if i > 0 {
            s.push('+');
        }
        s.push_str(name);
    }
    s.push('\n');
    out.write_all(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The fast path prints what the standard exact formatter prints.
        #[test]
        fn fixed_formats_like_std(int in 0u64..5_000_000, num in 0u64..1_000_000, den in 1u64..1000, d in 0u32..7) {
            let x = int as f64 + num as f64 / den as f64;
            let mut s = String::new();
            fixed(&mut s, x, d);
            prop_assert_eq!(&s, &format!("{:.*}", d as usize, x));
        }
    }

    #[test]
    fn new_app_columns_come_last() {
        let n = FLOW_CSV_COLUMNS.len();
        assert_eq!(
            FLOW_CSV_COLUMNS[n - 4..],
            [
                "http_path",
                "http_content_type",
                "tls_cert_name",
                "protocols"
            ]
        );
        let app = crate::AppInfo {
            http_path: Some("/a,b".into()),
            http_content_type: Some("video/mp4".into()),
            tls_cert_name: None,
            protocols: (1 << 8) | (1 << 5),
            ..Default::default()
        };
        let r = FlowRecord {
            id: 7,
            start_ns: 0,
            end_ns: 1_000_000_000,
            protocol: 17,
            ip_version: 4,
            src: "10.0.0.1".parse().unwrap(),
            src_port: 5000,
            dst: "10.0.0.2".parse().unwrap(),
            dst_port: 3478,
            vlan: 0,
            tunnel: None,
            fwd: DirStats::default(),
            bwd: DirStats::default(),
            fragments: 0,
            first_sizes: vec![60],
            first_dirs: vec![1],
            first_iats_us: vec![0.0],
            app,
            end_reason: crate::EndReason::Idle,
        };
        let (mut out, mut line) = (Vec::new(), String::new());
        write_csv_row(&mut out, &r, &mut line).unwrap();
        let row = String::from_utf8(out).unwrap();
        assert!(
            row.ends_with(",60,0,\"/a,b\",video/mp4,,rtp+stun\n"),
            "{row}"
        );
        // One field per column (the quoted path holds the only extra comma).
        assert_eq!(row.matches(',').count(), n);
    }

    #[test]
    fn fixed_handles_ties_and_extremes_like_std() {
        for x in [
            0.0,
            0.5,
            1.5,
            2.5,
            0.0005,
            0.0015,
            1234.5625,
            2.675,
            1e13,
            1e300,
            -0.25,
            -3.5,
            f64::NAN,
            f64::INFINITY,
        ] {
            for d in [0u32, 3, 6] {
                let mut s = String::new();
                fixed(&mut s, x, d);
                assert_eq!(s, format!("{:.*}", d as usize, x), "{x} with {d} decimals");
            }
        }
    }
}

//! Builders of outputs and a temporary directory, shared by the store's tests.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flow::{AppInfo, DirStats, EndReason, FlowRecord};
use pipeline::{
    Bin, ClassOutcome, Dim, DimCount, EvalWindow, FineStats, FlowRow, HurstPoint, Output,
    SeriesName,
};
use store::{Store, StoreOptions};

pub const S: u64 = 1_000_000_000;
pub const MIN: u64 = 60 * S;
pub const DAY: u64 = 86_400 * S;
/// 2024-01-01T00:00:00Z.
pub const T0: u64 = 1_704_067_200 * S;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "ts-store-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap().0
}

/// Mean, σ/μ (population σ) and peak: the pipeline's own function, so
/// test bins carry what real bins carry.
pub use pipeline::aggregate::fine_stats;

/// A deterministic pseudo-random number from a seed (splitmix64).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A 1 s bin at `start` with traffic that varies with `seed`: classes,
/// protocols, services, directions, flows ended, fine values. Keys are
/// non-zero and add up to the totals per dimension.
pub fn bin(start: u64, seed: u64) -> Bin {
    let r = |k: u64| mix(seed.wrapping_mul(31).wrapping_add(k));
    let fine_total: Vec<u64> = (0..10).map(|k| r(k) % 5000).collect();
    let fine_tcp: Vec<u64> = fine_total
        .iter()
        .enumerate()
        .map(|(k, v)| v * (r(20 + k as u64) % 100) / 100)
        .collect();
    let fine_udp: Vec<u64> = fine_total
        .iter()
        .zip(&fine_tcp)
        .map(|(t, p)| (t - p) / 2)
        .collect();
    let bytes: u64 = fine_total.iter().sum();
    let packets = bytes / 500 + 3;
    // Split packets and bytes over a dimension's keys.
    let split = |dim: Dim, keys: &[&str], salt: u64| -> Vec<DimCount> {
        let mut out = Vec::new();
        let (mut p, mut b) = (packets, bytes);
        for (k, key) in keys.iter().enumerate() {
            let last = k + 1 == keys.len();
            let pp = if last {
                p
            } else {
                r(salt + k as u64) % (p + 1)
            };
            let bb = if last {
                b
            } else {
                r(salt + 50 + k as u64) % (b + 1)
            };
            p -= pp;
            b -= bb;
            if pp > 0 || bb > 0 {
                out.push(DimCount {
                    dim,
                    key: key.to_string(),
                    packets: pp,
                    bytes: bb,
                });
            }
        }
        out
    };
    let mut counts = Vec::new();
    counts.extend(split(
        Dim::Class,
        &["pending", "unknown", "video", "voip", "web"],
        100,
    ));
    counts.extend(split(Dim::TrueClass, &["unlabelled", "video", "web"], 200));
    counts.extend(split(Dim::Protocol, &["ICMP", "TCP", "UDP"], 300));
    counts.extend(split(
        Dim::Service,
        &["dns", "http", "https", "other", "quic"],
        400,
    ));
    counts.extend(split(Dim::Direction, &["down", "up"], 500));
    counts.sort_by(|a, b| (a.dim, &a.key).cmp(&(b.dim, &b.key)));
    let mut flows_ended: Vec<(String, u64)> = [
        ("fin", r(600) % 4),
        ("idle", r(601) % 3),
        ("rst", r(602) % 2),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    flows_ended.sort();
    let fine = [
        fine_stats(&fine_total),
        fine_stats(&fine_tcp),
        fine_stats(&fine_udp),
    ];
    Bin {
        start_ns: start,
        width_ns: S,
        packets,
        bytes,
        counts,
        flows_started: r(700) % 6,
        flows_ended,
        flows_active: 10 + r(701) % 20,
        fine_width_ns: S / 10,
        fine_bytes: [fine_total, fine_tcp, fine_udp],
        fine,
        source: String::new(),
        source_ended: false,
    }
}

/// A bin with no traffic at all (the service ran, nothing arrived).
pub fn empty_bin(start: u64) -> Bin {
    Bin {
        start_ns: start,
        width_ns: S,
        packets: 0,
        bytes: 0,
        counts: Vec::new(),
        flows_started: 0,
        flows_ended: Vec::new(),
        flows_active: 0,
        fine_width_ns: S / 10,
        fine_bytes: [vec![0; 10], vec![0; 10], vec![0; 10]],
        fine: [FineStats::default(); 3],
        source: String::new(),
        source_ended: false,
    }
}

pub fn bins(from: u64, n: u64, seed: u64) -> Vec<Output> {
    (0..n)
        .map(|k| Output::Bin(bin(from + k * S, seed + k)))
        .collect()
}

pub fn window(start: u64) -> EvalWindow {
    EvalWindow {
        start_ns: start,
        end_ns: start + 5 * S,
        hits: 40,
        misses: 5,
        unknown: 3,
        pending: 2,
        unlabelled: 7,
        by_class: vec![
            ClassOutcome {
                class: "video".into(),
                hits: 30,
                misses: 2,
                unknown: 1,
                pending: 1,
            },
            ClassOutcome {
                class: "web".into(),
                hits: 10,
                misses: 3,
                unknown: 2,
                pending: 1,
            },
        ],
        source: String::new(),
    }
}

pub fn hurst(series: SeriesName, end: u64) -> HurstPoint {
    HurstPoint {
        series,
        end_ns: end,
        window_bins: 16_384,
        bin_ns: S / 10,
        local_whittle: Some(0.81),
        local_whittle_ci: Some((0.78, 0.84)),
        wavelet: Some(0.79),
        wavelet_ci: Some((0.7, 0.88)),
        burstiness: Some(1.7),
        peak_to_mean: Some(9.5),
        errors: vec!["wavelet: too few octaves".into()],
    }
}

#[allow(clippy::too_many_arguments)]
pub fn flow(
    start: u64,
    end: u64,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    class: &str,
    bytes: u64,
) -> FlowRow {
    let src: IpAddr = src.parse().unwrap();
    let dst: IpAddr = dst.parse().unwrap();
    let app = AppInfo {
        service: Some(if dport == 443 { "https" } else { "dns" }),
        detected: Some(if dport == 443 { "tls" } else { "dns" }),
        tls_sni: (dport == 443).then(|| "video.Example.com".to_string()),
        dns_query: (dport == 53).then(|| "example.org".to_string()),
        ..AppInfo::default()
    };
    FlowRow {
        record: FlowRecord {
            id: 7,
            start_ns: start,
            end_ns: end,
            protocol: if dport == 443 { 6 } else { 17 },
            ip_version: if src.is_ipv4() { 4 } else { 6 },
            src,
            src_port: sport,
            dst,
            dst_port: dport,
            vlan: 0,
            tunnel: None,
            fwd: DirStats {
                packets: bytes / 1000 + 1,
                bytes: bytes / 3,
                ..DirStats::default()
            },
            bwd: DirStats {
                packets: bytes / 700 + 1,
                bytes: bytes - bytes / 3,
                ..DirStats::default()
            },
            fragments: 0,
            first_sizes: vec![60, 1500, 52],
            first_dirs: vec![1, -1, 1],
            first_iats_us: vec![0.0, 1200.5, 3.25],
            app,
            end_reason: EndReason::Fin,
        },
        class: class.into(),
        confidence: Some(0.875),
        probabilities: vec![("video".into(), 0.875), ("web".into(), 0.125)],
        true_class: Some("video".into()),
    }
}

pub fn flow_out(f: FlowRow) -> Output {
    Output::Flow(Box::new(f))
}

/// Names of the tables in the file (for partition checks).
pub fn tables(path: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

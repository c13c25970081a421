//! An in-memory `History` that behaves like one: it holds bins, windows,
//! Hurst points and flow rows, and answers every query by filtering and
//! summing them. The data come from the closed-form functions below, so a
//! test can compute what an answer must be without reading the fake.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use pipeline::{Bin, Dim, DimCount, EvalWindow, FineStats, FlowRow, HurstPoint, SeriesName};
use store::{
    Extent, FlowPage, FlowQuery, FlowSort, History, Metric, Series, SeriesLine, SeriesQuery,
    StoreError, TierExtent, Totals,
};

pub const S: u64 = 1_000_000_000;
/// 2026-12-04T15:00:00Z.
pub const T0_S: u64 = 1_796_396_400;
pub const T0: u64 = T0_S * S;
/// Bins of 1 s from T0; those in `GAP` are missing (service not running).
pub const NBINS: u64 = 600;
pub const GAP: std::ops::Range<u64> = 300..310;
pub const WINDOW: u64 = 5 * S;
pub const NFLOWS: u64 = 40;

pub fn present(i: u64) -> bool {
    i < NBINS && !GAP.contains(&i)
}
/// Class `web` (all TCP), 100 bytes a packet.
pub fn web_packets(i: u64) -> u64 {
    10 + i % 7
}
/// Class `video` (all UDP), 1000 bytes a packet; zero in some bins.
pub fn video_packets(i: u64) -> u64 {
    3 * (i % 5)
}
pub fn flows_started(i: u64) -> u64 {
    i % 3
}
pub fn flows_fin(i: u64) -> u64 {
    i % 2
}

fn bin(i: u64) -> Bin {
    let (w, v) = (web_packets(i), video_packets(i));
    let mut counts = vec![
        DimCount {
            dim: Dim::Class,
            key: "web".into(),
            packets: w,
            bytes: w * 100,
        },
        DimCount {
            dim: Dim::Protocol,
            key: "TCP".into(),
            packets: w,
            bytes: w * 100,
        },
    ];
    if v > 0 {
        counts.push(DimCount {
            dim: Dim::Class,
            key: "video".into(),
            packets: v,
            bytes: v * 1000,
        });
        counts.push(DimCount {
            dim: Dim::Protocol,
            key: "UDP".into(),
            packets: v,
            bytes: v * 1000,
        });
    }
    counts.sort_by(|a, b| (a.dim, &a.key).cmp(&(b.dim, &b.key)));
    let bytes = w * 100 + v * 1000;
    let fine = |total: u64| vec![total / 10; 10];
    let fine_stats = |total: u64| FineStats {
        mean: total as f64 / 10.0,
        cv: None,
        peak: total as f64 / 10.0,
    };
    Bin {
        start_ns: T0 + i * S,
        width_ns: S,
        packets: w + v,
        bytes,
        counts,
        flows_started: flows_started(i),
        flows_ended: if flows_fin(i) > 0 {
            vec![("fin".into(), flows_fin(i))]
        } else {
            vec![]
        },
        flows_active: 5 + i % 4,
        fine_width_ns: S / 10,
        fine_bytes: [fine(bytes), fine(w * 100), fine(v * 1000)],
        fine: [fine_stats(bytes), fine_stats(w * 100), fine_stats(v * 1000)],
        source: String::new(),
        source_ended: false,
    }
}

pub fn window(k: u64) -> EvalWindow {
    EvalWindow {
        start_ns: T0 + k * WINDOW,
        end_ns: T0 + (k + 1) * WINDOW,
        hits: 10 + k,
        misses: 2,
        unknown: 1,
        pending: 1,
        unlabelled: 0,
        by_class: vec![],
        source: String::new(),
    }
}

pub fn hurst_point(series: SeriesName, k: u64) -> HurstPoint {
    HurstPoint {
        series,
        end_ns: T0 + (k + 1) * S,
        window_bins: 10,
        bin_ns: S / 10,
        local_whittle: Some(0.5 + k as f64 / 1000.0),
        local_whittle_ci: Some((0.4, 0.6)),
        wavelet: None,
        wavelet_ci: None,
        burstiness: Some(0.3),
        peak_to_mean: Some(2.0),
        errors: vec!["wavelet: window too short".into()],
    }
}

/// Flow `k`: starts at T0 + 10k s, lasts k s; class web for even k, video
/// for odd; server 10.0.0.(k % 4) port 443 (even) or 5004 (odd); k + 1
/// packets of 100 bytes.
pub fn flow_row(k: u64) -> FlowRow {
    let dir = |p: u64| flow::DirStats {
        packets: p,
        bytes: p * 100,
        ..Default::default()
    };
    let record = flow::FlowRecord {
        id: k,
        start_ns: T0 + k * 10 * S,
        end_ns: T0 + k * 10 * S + k * S,
        protocol: if k.is_multiple_of(2) { 6 } else { 17 },
        ip_version: 4,
        src: IpAddr::from([192, 168, 1, 10]),
        src_port: 40_000 + k as u16,
        dst: IpAddr::from([10, 0, 0, (k % 4) as u8]),
        dst_port: if k.is_multiple_of(2) { 443 } else { 5004 },
        vlan: 0,
        tunnel: None,
        fwd: dir(k + 1),
        bwd: dir(0),
        fragments: 0,
        first_sizes: vec![],
        first_dirs: vec![],
        first_iats_us: vec![],
        app: flow::AppInfo {
            service: Some(if k.is_multiple_of(2) {
                "https"
            } else {
                "other"
            }),
            ..Default::default()
        },
        end_reason: flow::EndReason::Fin,
    };
    FlowRow {
        record,
        class: if k.is_multiple_of(2) { "web" } else { "video" }.into(),
        confidence: Some(0.9),
        probabilities: vec![("web".into(), 0.9), ("video".into(), 0.1)],
        true_class: None,
    }
}

pub struct Fake {
    pub bins: Vec<Bin>,
    pub windows: Vec<EvalWindow>,
    pub hurst: Vec<HurstPoint>,
    pub flows: Vec<FlowRow>,
    /// Answer every query with an I/O error (a failing disk).
    pub fail: AtomicBool,
}

impl Default for Fake {
    fn default() -> Self {
        Self::new()
    }
}

impl Fake {
    pub fn new() -> Fake {
        Fake {
            bins: (0..NBINS).filter(|&i| present(i)).map(bin).collect(),
            windows: (0..NBINS * S / WINDOW).map(window).collect(),
            hurst: SeriesName::ALL
                .iter()
                .flat_map(|&s| (0..NBINS).map(move |k| hurst_point(s, k)))
                .collect(),
            flows: (0..NFLOWS).map(flow_row).collect(),
            fail: AtomicBool::new(false),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Relaxed) {
            Err(StoreError::Io("disk I/O error (fake)".into()))
        } else {
            Ok(())
        }
    }

    fn in_range(&self, from: u64, to: u64) -> impl Iterator<Item = &Bin> {
        self.bins
            .iter()
            .filter(move |b| b.start_ns >= from && b.start_ns < to)
    }
}

fn value(b: &Bin, metric: Metric, dim: Option<Dim>, key: &str) -> f64 {
    match (metric, dim) {
        (Metric::Packets, Some(d)) => b.count(d, key).0 as f64,
        (Metric::Bytes, Some(d)) => b.count(d, key).1 as f64,
        (Metric::Packets, None) => b.packets as f64,
        (Metric::Bytes, None) => b.bytes as f64,
        (Metric::FlowsStarted, _) => b.flows_started as f64,
        (Metric::FlowsEnded, _) => b.flows_ended.iter().map(|e| e.1).sum::<u64>() as f64,
        (Metric::FlowsActive, _) => b.flows_active as f64,
        (Metric::FineBytes, _) => {
            let i = SeriesName::parse(key).map_or(0, |s| s as usize);
            b.fine_bytes[i].iter().sum::<u64>() as f64 / b.fine_bytes[i].len() as f64
        }
    }
}

impl History for Fake {
    fn series(&self, q: &SeriesQuery) -> Result<Series, StoreError> {
        self.check()?;
        if !q.step_ns.is_multiple_of(S) || !q.from_ns.is_multiple_of(q.step_ns) {
            return Err(StoreError::Io("fake: unaligned step".into()));
        }
        let times: Vec<u64> = (q.from_ns..q.to_ns).step_by(q.step_ns as usize).collect();
        let mut keys: Vec<String> = match (q.metric, q.dim) {
            (Metric::FineBytes, _) => vec!["total".into(), "tcp".into(), "udp".into()],
            (_, None) => vec!["total".into()],
            (_, Some(d)) => {
                let mut k: Vec<String> = self
                    .in_range(q.from_ns, q.to_ns)
                    .flat_map(|b| {
                        b.counts
                            .iter()
                            .filter(|c| c.dim == d)
                            .map(|c| c.key.clone())
                    })
                    .collect();
                k.sort();
                k.dedup();
                k
            }
        };
        let line = |key: &str| -> Vec<Option<f64>> {
            times
                .iter()
                .map(|&t| {
                    let bins: Vec<&Bin> = self.in_range(t, t + q.step_ns).collect();
                    if bins.is_empty() {
                        return None;
                    }
                    let sum: f64 = bins.iter().map(|b| value(b, q.metric, q.dim, key)).sum();
                    Some(if q.metric == Metric::FlowsActive {
                        sum / bins.len() as f64
                    } else {
                        sum
                    })
                })
                .collect()
        };
        let total = |v: &[Option<f64>]| v.iter().flatten().sum::<f64>();
        let mut lines: Vec<SeriesLine> = keys
            .drain(..)
            .map(|k| SeriesLine {
                values: line(&k),
                key: k,
            })
            .collect();
        lines.sort_by(|a, b| {
            total(&b.values)
                .total_cmp(&total(&a.values))
                .then(a.key.cmp(&b.key))
        });
        if q.dim.is_some() && lines.len() > q.top {
            let rest = lines.split_off(q.top);
            let values = (0..times.len())
                .map(|i| rest.iter().map(|l| l.values[i]).sum::<Option<f64>>())
                .collect();
            lines.push(SeriesLine {
                key: "other".into(),
                values,
            });
        }
        Ok(Series {
            metric: q.metric,
            dim: q.dim,
            times_ns: times,
            step_ns: q.step_ns,
            tier_ns: S,
            lines,
            covered: Vec::new(),
            covered_ns: S,
        })
    }

    fn totals(&self, from_ns: u64, to_ns: u64) -> Result<Totals, StoreError> {
        self.check()?;
        let mut t = Totals {
            from_ns,
            to_ns,
            ..Totals::default()
        };
        let mut by = std::collections::BTreeMap::<(Dim, String), (u64, u64)>::new();
        let mut ended = std::collections::BTreeMap::<String, u64>::new();
        for b in self.in_range(from_ns, to_ns) {
            t.bins += 1;
            t.packets += b.packets;
            t.bytes += b.bytes;
            t.flows_started += b.flows_started;
            for c in &b.counts {
                let e = by.entry((c.dim, c.key.clone())).or_default();
                e.0 += c.packets;
                e.1 += c.bytes;
            }
            for (r, n) in &b.flows_ended {
                *ended.entry(r.clone()).or_default() += n;
            }
        }
        t.by_dim = by
            .into_iter()
            .map(|((d, k), (p, b))| (d, k, p, b))
            .collect();
        t.flows_ended = ended.into_iter().collect();
        Ok(t)
    }

    fn windows(&self, from_ns: u64, to_ns: u64) -> Result<Vec<EvalWindow>, StoreError> {
        self.check()?;
        Ok(self
            .windows
            .iter()
            .filter(|w| w.start_ns >= from_ns && w.start_ns < to_ns)
            .cloned()
            .collect())
    }

    fn hurst(
        &self,
        series: SeriesName,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<HurstPoint>, StoreError> {
        self.check()?;
        Ok(self
            .hurst
            .iter()
            .filter(|p| p.series == series && p.end_ns >= from_ns && p.end_ns < to_ns)
            .cloned()
            .collect())
    }

    fn flows(&self, q: &FlowQuery) -> Result<FlowPage, StoreError> {
        self.check()?;
        let mut rows: Vec<&FlowRow> = self
            .flows
            .iter()
            .filter(|f| f.record.start_ns < q.to_ns && f.record.end_ns >= q.from_ns)
            .filter(|f| q.class.as_ref().is_none_or(|c| *c == f.class))
            .filter(|f| {
                q.app
                    .as_ref()
                    .is_none_or(|a| f.record.app.service == Some(a.as_str()))
            })
            .filter(|f| {
                q.addr
                    .is_none_or(|a| f.record.src == a || f.record.dst == a)
            })
            .filter(|f| {
                q.port
                    .is_none_or(|p| f.record.src_port == p || f.record.dst_port == p)
            })
            .collect();
        let key = |f: &FlowRow| -> f64 {
            let r = &f.record;
            match q.sort {
                FlowSort::Start => r.start_ns as f64,
                FlowSort::End => r.end_ns as f64,
                FlowSort::Packets => r.packets() as f64,
                FlowSort::Bytes => r.bytes() as f64,
                FlowSort::Duration => r.duration_s(),
            }
        };
        rows.sort_by(|a, b| {
            key(a)
                .total_cmp(&key(b))
                .then(a.record.id.cmp(&b.record.id))
        });
        if q.descending {
            rows.reverse();
        }
        Ok(FlowPage {
            total: rows.len() as u64,
            flows: rows
                .into_iter()
                .skip(q.offset)
                .take(q.limit)
                .map(|f| serde_json::to_value(f).unwrap())
                .collect(),
        })
    }

    fn extent(&self) -> Result<Extent, StoreError> {
        self.check()?;
        let first = self.bins.first().map(|b| b.start_ns);
        let last = self.bins.last().map(|b| b.start_ns + b.width_ns);
        Ok(Extent {
            first_ns: first,
            last_ns: last,
            tiers: vec![
                TierExtent {
                    width_ns: S,
                    first_ns: first,
                    last_ns: last,
                    retention_ns: 86_400 * S,
                },
                TierExtent {
                    width_ns: 60 * S,
                    first_ns: first,
                    last_ns: last,
                    retention_ns: 30 * 86_400 * S,
                },
            ],
            size_bytes: 123_456,
        })
    }
}

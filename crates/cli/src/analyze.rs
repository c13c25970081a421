//! `trafficscope analyze`: bins traffic into series (total, per protocol,
//! direction and service), reports mean/variance/peak/burstiness and the
//! composition, and estimates the Hurst parameter by every method of the
//! `selfsim` crate. Also reads plain series files. `trafficscope synth`
//! writes exact fGn / FARIMA series.

use std::collections::BTreeMap;
use std::io::{self, Write};

use clap::{Args, Subcommand};
use selfsim::{AnalyzeConfig, Binner, SeriesReport, SlidingHurst, WindowEstimate};
use serde::Serialize;

use crate::input::Event;
use crate::static_names::ByStaticName;
use crate::{parse_duration_ns, Failure, InputArgs};

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Read a plain series instead of packets (with --series-format).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["read", "interface"])]
    pub series: Option<String>,
    /// Format of --series: `tl` (time size per line, Bellcore .TL), `iat`
    /// (inter-arrival times), `values` (one value per line), `csv:COL`.
    #[arg(
        long = "series-format",
        value_name = "FORMAT",
        default_value = "values"
    )]
    pub series_format: String,
    /// Bin width for packets and `tl`/`iat` series (default 0.1 s, as in the reference study).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration_ns)]
    pub bin: u64,
    /// Estimate H for every series (default: total, TCP and UDP bytes, like the study).
    #[arg(long = "all-series")]
    pub all_series: bool,
    /// Write diagnostic plots as SVG and PNG (series, pox plot, V statistic,
    /// periodogram, H vs M, variance–time, wavelet log-scale diagram, DFA)
    /// into this folder.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<String>,
    /// JSON instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Sliding-window mode: window length in bins (accepts 2^14). With
    /// packet input the window runs on the total series while it is read:
    /// every --every bins after the first full window a line goes to stderr
    /// (a JSON object per line with --json), during a live capture or paced
    /// replay as the bins close.
    #[arg(long, value_name = "BINS", value_parser = parse_count)]
    pub window: Option<usize>,
    /// Sliding-window mode: update every this many bins.
    #[arg(long, value_name = "BINS", default_value = "100", value_parser = parse_count)]
    pub every: usize,
}

fn parse_count(s: &str) -> Result<usize, String> {
    let bad = || format!("invalid count {s:?}: use a number like 16384 or 2^14");
    if let Some((b, e)) = s.split_once('^') {
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        let e: u32 = e.trim().parse().map_err(|_| bad())?;
        return b.checked_pow(e).ok_or_else(bad);
    }
    s.trim().parse().map_err(|_| bad())
}

/// (name, values, whether to estimate H).
type NamedSeries = Vec<(String, Vec<f64>, bool)>;

#[derive(Serialize, Default, Clone, Copy)]
struct Share {
    packets: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Output {
    source: String,
    bin_s: f64,
    composition: BTreeMap<String, BTreeMap<String, Share>>,
    series: Vec<SeriesReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    windows: Vec<selfsim::WindowEstimate>,
    warnings: Vec<String>,
}

/// How long after a bin's end, in wall-clock time, a live capture closes it
/// when no packet does: covers packets still queued in the kernel's ring.
const LIVE_CLOSE_SLACK_NS: u64 = 1_000_000_000;

/// The sliding window run while packets are read: fed the total series'
/// closed bins as they close, it prints each window's estimates at once.
struct LiveWindow {
    sliding: SlidingHurst,
    /// Bins of the series already pushed.
    fed: usize,
    bin_s: f64,
    json: bool,
    series: String,
    windows: Vec<WindowEstimate>,
    /// Set when writing a line failed: no more lines are tried.
    silenced: bool,
}

/// One line of the live window output in JSON.
#[derive(Serialize)]
struct WindowLine<'a> {
    series: &'a str,
    /// End of the window's last bin, in seconds from the first packet.
    end_s: f64,
    #[serde(flatten)]
    window: &'a WindowEstimate,
}

impl LiveWindow {
    /// Pushes `values[self.fed..]` (the series so far, oldest first) and
    /// prints every window estimate that completes. The lines are progress:
    /// once stderr fails (closed pipe) they stop, the analysis goes on.
    fn feed(&mut self, values: &[f64]) {
        if values.len() <= self.fed {
            return;
        }
        let mut err = io::stderr().lock();
        for v in &values[self.fed..] {
            if let Some(e) = self.sliding.push(*v) {
                if !self.silenced {
                    let end_s = (e.end_index + 1) as f64 * self.bin_s;
                    let written = if self.json {
                        let line = WindowLine {
                            series: &self.series,
                            end_s,
                            window: &e,
                        };
                        serde_json::to_writer(&mut err, &line)
                            .map_err(io::Error::other)
                            .and_then(|_| writeln!(err))
                    } else {
                        writeln!(err, "{}", window_text(&self.series, end_s, &e))
                    };
                    self.silenced = written.and_then(|_| err.flush()).is_err();
                }
                self.windows.push(e);
            }
        }
        self.fed = values.len();
    }
}

/// The text form of one live window line.
fn window_text(series: &str, end_s: f64, e: &WindowEstimate) -> String {
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
    format!(
        "window {series} end bin {} ({end_s:.3} s): H Local Whittle {}, H wavelet {}, σ/μ {}",
        e.end_index,
        f(e.h_local_whittle),
        f(e.h_wavelet),
        f(e.burstiness)
    )
}

/// Series are binned per key; all share the origin of the first packet.
/// Group and key names are static, so the per-packet lookup allocates
/// nothing ([`ByStaticName`]).
struct Keyed {
    width_ns: u64,
    origin: Option<u64>,
    /// In first-seen order; "total:all" is the first.
    series: ByStaticName<(Binner, Share)>,
    error: Option<String>,
}

impl Keyed {
    fn new(width_ns: u64) -> Self {
        Keyed {
            width_ns,
            origin: None,
            series: ByStaticName::default(),
            error: None,
        }
    }

    fn push(&mut self, group: &'static str, key: &'static str, ts: u64, bytes: u32) {
        let origin = *self.origin.get_or_insert(ts);
        let width = self.width_ns;
        let (binner, share) = self.series.get_or_insert_with(group, key, || {
            (Binner::new(width).with_origin_ns(origin), Share::default())
        });
        if let Err(e) = binner.push_ns(ts.max(origin), bytes as u64) {
            if self.error.is_none() {
                self.error = Some(format!("series {group}:{key}: {e}"));
            }
        }
        share.packets += 1;
        share.bytes += bytes as u64;
    }

    /// Wall clock of a live capture: closes bins that ended more than
    /// [`LIVE_CLOSE_SLACK_NS`] ago. A clock far off the packets' is ignored.
    fn advance(&mut self, now_ns: u64) {
        for (_, _, (b, _)) in self.series.iter_mut() {
            let _ = b.advance_ns(now_ns.saturating_sub(LIVE_CLOSE_SLACK_NS));
        }
    }

    /// The total series' closed bins so far.
    fn total_closed(&self) -> &[f64] {
        self.series
            .iter()
            .next()
            .filter(|e| e.0 == "total")
            .map_or(&[], |e| e.2 .0.closed().0)
    }

    /// Shares of packets and bytes per group and key.
    fn shares(&self) -> BTreeMap<String, BTreeMap<String, Share>> {
        let mut m: BTreeMap<String, BTreeMap<String, Share>> = BTreeMap::new();
        for (group, key, (_, share)) in self.series.iter() {
            m.entry(group.to_string())
                .or_default()
                .insert(key.to_string(), *share);
        }
        m
    }
}

pub fn run(args: AnalyzeArgs) -> Result<(), Failure> {
    let bin_s = args.bin as f64 / 1e9;
    let mut warnings = Vec::new();
    let mut live = args
        .window
        .filter(|_| args.series.is_none())
        .map(|w| LiveWindow {
            sliding: SlidingHurst::new(w, args.every.max(1)),
            fed: 0,
            bin_s,
            json: args.json,
            series: "total:all".into(),
            windows: Vec::new(),
            silenced: false,
        });
    let (source, mut series, composition): (String, NamedSeries, _) = match &args.series {
        Some(path) => {
            let fmt = args.series_format.as_str();
            let list = match fmt {
                "tl" => {
                    let ev = selfsim::read_time_size(path).map_err(|e| anyhow::anyhow!(e))?;
                    let b = selfsim::bin_events_secs(&ev.times, ev.sizes.as_deref(), bin_s)
                        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
                    vec![
                        ("bytes".to_string(), b.bytes, true),
                        ("packets".to_string(), b.packets, true),
                    ]
                }
                "iat" => {
                    let ev =
                        selfsim::read_interarrivals(path, 0.0).map_err(|e| anyhow::anyhow!(e))?;
                    let b = selfsim::bin_events_secs(&ev.times, None, bin_s)
                        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
                    vec![("packets".to_string(), b.packets, true)]
                }
                spec => {
                    let v =
                        selfsim::read_series_spec(path, spec).map_err(|e| anyhow::anyhow!(e))?;
                    vec![("values".to_string(), v, true)]
                }
            };
            (path.clone(), list, BTreeMap::new())
        }
        None => {
            let mut input = crate::input::open(&args.input)?;
            let local = args.input.local_net.clone().unwrap_or_default();
            let mut table = flow::FlowTable::new(flow::FlowConfig::default());
            let mut k = Keyed::new(args.bin);
            let result = input.for_each(|ev| {
                let f = match ev {
                    Event::Frame(f, _) => f,
                    Event::Tick(now) => {
                        if let Some(lw) = &mut live {
                            k.advance(now);
                            lw.feed(k.total_closed());
                        }
                        return Ok(());
                    }
                };
                let mut pkt = decode::Packet::new(f.linktype);
                decode::decode_into(f.linktype, f.data, &mut pkt);
                let ts = f.ts_ns;
                let len = f.wire_len;
                k.push("total", "all", ts, len);
                let proto = match (pkt.ip, pkt.network) {
                    (Some(_), _) => match pkt.protocol_name() {
                        p @ ("TCP" | "UDP" | "ICMP") => p,
                        "ICMPv6" => "ICMP",
                        _ => "other",
                    },
                    (None, decode::Network::Arp) => "ARP",
                    _ => "other",
                };
                k.push("protocol", proto, ts, len);
                let placement = table.process(&pkt, ts, len, &mut |_| {});
                if let (Some(ip), Some(p)) = (pkt.ip, placement) {
                    let d = local.direction(ip.src, ip.dst, p.forward);
                    k.push("direction", d.as_str(), ts, len);
                    let service = pkt
                        .ports()
                        .and_then(|(a, b)| decode::service::for_ports(ip.protocol, a, b))
                        .unwrap_or("other");
                    k.push("service", service, ts, len);
                }
                if let Some(lw) = &mut live {
                    lw.feed(k.total_closed());
                }
                Ok(())
            });
            if let Err(e) = result {
                return Err(e.into());
            }
            if let Some(e) = k.error {
                return Err(Failure::Input(anyhow::anyhow!(
                        "{e} (the capture's timestamps jump; analyze a contiguous part with -c, or a larger --bin)"
                    )));
            }
            let mut list = Vec::new();
            let mut len = 0;
            let mut finished: Vec<(String, Vec<f64>)> = Vec::new();
            let shares = k.shares();
            for (group, key, (binner, _)) in k.series.into_iter() {
                let name = format!("{group}:{key}");
                let s = binner.finish();
                if s.out_of_order > 0 {
                    warnings.push(format!(
                        "{name}: {} out-of-order packets ({} too late to bin)",
                        s.out_of_order, s.late
                    ));
                }
                len = len.max(s.bytes.len());
                finished.push((name, s.bytes));
            }
            for (name, mut bytes) in finished {
                // Series end at the last bin of the capture, not of the protocol.
                bytes.resize(len, 0.0);
                let estimate = args.all_series
                    || matches!(name.as_str(), "total:all" | "protocol:TCP" | "protocol:UDP");
                list.push((name, bytes, estimate));
            }
            // Total first, then by group.
            list.sort_by_key(|(n, _, _)| (n != "total:all", n.clone()));
            let source = args
                .input
                .read
                .clone()
                .or_else(|| args.input.interface.clone())
                .unwrap_or_default();
            (source, list, shares)
        }
    };

    // Sliding window first, so the last live lines come before the analysis.
    let mut windows = Vec::new();
    if let Some(mut lw) = live {
        // The bins still open when the input ended.
        if let Some((_, values, _)) = series.iter().find(|s| s.0 == lw.series) {
            lw.feed(values);
        }
        windows = lw.windows;
    } else if let Some(w) = args.window {
        let mut sliding = SlidingHurst::new(w, args.every.max(1));
        if let Some((_, values, _)) = series.first() {
            for v in values {
                if let Some(est) = sliding.push(*v) {
                    windows.push(est);
                }
            }
        }
    }

    let mut reports = Vec::new();
    for (name, values, estimate) in &mut series {
        let cfg = AnalyzeConfig {
            name: format!("{name} (bytes per {bin_s} s)"),
            bin_width_s: Some(bin_s),
            h_vs_m_points: if *estimate { 40 } else { 0 },
            ..AnalyzeConfig::default()
        };
        let report = if *estimate {
            selfsim::analyze(values, &cfg)
        } else {
            let mut r = selfsim::analyze(&[], &cfg);
            r.n = values.len();
            r.summary = selfsim::Summary::of(values);
            r.estimates.clear();
            r.warnings.clear();
            r
        };
        if let Some(dir) = &args.plots {
            if *estimate {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("cannot create {dir}: {e}"))?;
                let stem = name.replace([':', '/', ' '], "_");
                selfsim::write_plots(&report, dir, &stem)
                    .map_err(|e| anyhow::anyhow!("cannot write plots in {dir}: {e}"))?;
            }
        }
        reports.push(report);
    }

    let out = Output {
        source,
        bin_s,
        composition,
        series: reports,
        windows,
        warnings,
    };
    let mut w = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut w, &out).map_err(io::Error::other)?;
        writeln!(w)?;
    } else {
        write_text(&mut w, &out)?;
    }
    w.flush()?;
    Ok(())
}

fn write_text(w: &mut impl Write, o: &Output) -> io::Result<()> {
    writeln!(w, "Source: {}   bin: {} s", o.source, o.bin_s)?;
    for (group, rows) in &o.composition {
        if group == "total" {
            continue;
        }
        let tp: u64 = rows.values().map(|s| s.packets).sum();
        let tb: u64 = rows.values().map(|s| s.bytes).sum();
        writeln!(
            w,
            "\nComposition by {group:<10} {:>12} {:>8} {:>14} {:>8}",
            "packets", "share", "bytes", "share"
        )?;
        let mut v: Vec<_> = rows.iter().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1.bytes));
        for (k, s) in v {
            writeln!(
                w,
                "  {k:<22} {:>12} {:>7.2}% {:>14} {:>7.2}%",
                s.packets,
                100.0 * s.packets as f64 / tp.max(1) as f64,
                s.bytes,
                100.0 * s.bytes as f64 / tb.max(1) as f64
            )?;
        }
    }
    for r in &o.series {
        writeln!(w)?;
        write!(w, "{r}")?;
    }
    if !o.windows.is_empty() {
        writeln!(
            w,
            "\nSliding window over {} (end bin, H Local Whittle, H wavelet, σ/μ):",
            o.series.first().map(|s| s.name.as_str()).unwrap_or("")
        )?;
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
        for e in &o.windows {
            writeln!(
                w,
                "  {:>8} {:>7} {:>7} {:>7}",
                e.end_index,
                f(e.h_local_whittle),
                f(e.h_wavelet),
                f(e.burstiness)
            )?;
        }
    }
    for warn in &o.warnings {
        writeln!(w, "warning: {warn}")?;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    #[command(subcommand)]
    pub kind: SynthKind,
}

#[derive(Subcommand, Debug)]
pub enum SynthKind {
    /// Exact fractional Gaussian noise (Davies–Harte circulant embedding).
    Fgn {
        #[arg(long, value_name = "H")]
        hurst: f64,
        #[arg(short = 'n', default_value_t = 65_536)]
        n: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// FARIMA(0,d,0) with d = H − 1/2.
    Farima {
        #[arg(long, value_name = "D")]
        d: f64,
        #[arg(short = 'n', default_value_t = 65_536)]
        n: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub fn synth(args: SynthArgs) -> Result<(), Failure> {
    let values = match args.kind {
        SynthKind::Fgn { hurst, n, seed } => selfsim::synth_fgn(hurst, n, seed),
        SynthKind::Farima { d, n, seed } => selfsim::synth_farima(d, n, seed),
    }
    .map_err(|e| Failure::Usage(e.to_string()))?;
    let mut w = io::BufWriter::new(io::stdout().lock());
    for v in values {
        writeln!(w, "{v}")?;
    }
    w.flush()?;
    Ok(())
}

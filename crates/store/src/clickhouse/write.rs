//! Writing the ClickHouse store: each commit becomes a [`Batch`] (rows per
//! table, the per-source bins and windows to re-sum, the minutes to roll
//! up, the `meta` values), sent in that order. Every step is idempotent, so
//! a batch cut short is simply sent again.
//!
//! When the server cannot take a batch, it goes to the spool: one file per
//! batch in a local directory (written whole, then renamed, then the
//! directory synced), bounded in bytes. Later batches queue behind it, and
//! each commit first replays the spool in order. A spooled batch is durable:
//! the writer reports it written (so an analysis node commits its Kafka
//! offsets); only a full spool makes commits fail, and the writer loop then
//! holds outputs in memory within its own bound and counts what it drops.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline::{Bin, EvalWindow, FlowRow, HurstPoint, Output};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{quote, tsv_rows, ChError, Client};
use crate::partition::Kind;
use crate::time::{DAY_NS, MINUTE_NS};
use crate::write::{check_bin_width, flow_protocols, flow_server_name};
use crate::writer_loop::OutputSink;
use crate::{StoreError, StoreOptions, StoreStats};

/// The spool's directory name inside the data directory.
pub const SPOOL_DIR: &str = "clickhouse-spool";

/// How often retention looks for day partitions to drop.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

fn i(x: u64) -> i64 {
    x.min(i64::MAX as u64) as i64
}

/// One commit, as plain data (what the spool keeps).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Batch {
    /// (table, rows as JSONEachRow), sent in order.
    inserts: Vec<(String, String)>,
    /// Times whose per-source bins / windows were written: their sums are
    /// rewritten from all the parts the server holds.
    merge_bins: Vec<u64>,
    merge_windows: Vec<u64>,
    /// Minutes of the 1 min tier to roll up again.
    minutes: Vec<u64>,
    /// `meta` values after this batch (max-registers).
    meta: Vec<(String, i64)>,
    /// Outputs by kind, for the counters.
    bins: u64,
    windows: u64,
    hurst: u64,
    flows: u64,
}

/// Rows of one table, as JSONEachRow.
#[derive(Default)]
struct Rows(BTreeMap<&'static str, String>);

impl Rows {
    fn push(&mut self, kind: Kind, row: serde_json::Value) {
        let s = self.0.entry(kind.prefix()).or_default();
        let _ = writeln!(s, "{row}");
    }
}

fn bin_rows(rows: &mut Rows, b: &Bin, ver: u64) {
    let [t, p, u] = &b.fine;
    let start = i(b.start_ns);
    rows.push(
        Kind::Bins1s,
        json!({
            "start_ns": start, "width_ns": i(b.width_ns), "bins": 1,
            "packets": i(b.packets), "bytes": i(b.bytes), "flows_started": i(b.flows_started),
            "flows_active": b.flows_active as f64, "fine_width_ns": i(b.fine_width_ns),
            "total_mean": t.mean, "total_cv": t.cv, "total_peak": t.peak,
            "tcp_mean": p.mean, "tcp_cv": p.cv, "tcp_peak": p.peak,
            "udp_mean": u.mean, "udp_cv": u.cv, "udp_peak": u.peak,
            "ver": ver,
        }),
    );
    for d in &b.counts {
        rows.push(
            Kind::Dims1s,
            json!({"dim": d.dim.as_str(), "start_ns": start, "key": d.key,
                   "packets": i(d.packets), "bytes": i(d.bytes), "ver": ver}),
        );
    }
    for (reason, n) in &b.flows_ended {
        rows.push(
            Kind::Ended1s,
            json!({"start_ns": start, "reason": reason, "flows": i(*n), "ver": ver}),
        );
    }
    let text = |v: &[u64]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    rows.push(
        Kind::Fine,
        json!({"start_ns": start, "fine_width_ns": i(b.fine_width_ns),
               "total": text(&b.fine_bytes[0]), "tcp": text(&b.fine_bytes[1]),
               "udp": text(&b.fine_bytes[2]), "ver": ver}),
    );
}

fn window_row(rows: &mut Rows, w: &EvalWindow, ver: u64) {
    rows.push(
        Kind::Windows,
        json!({
            "start_ns": i(w.start_ns), "end_ns": i(w.end_ns), "hits": i(w.hits),
            "misses": i(w.misses), "unknown": i(w.unknown), "pending": i(w.pending),
            "unlabelled": i(w.unlabelled), "accuracy": w.accuracy(),
            "by_class": serde_json::to_string(&w.by_class).unwrap_or_else(|_| "[]".into()),
            "ver": ver,
        }),
    );
}

fn hurst_row(rows: &mut Rows, h: &HurstPoint) {
    rows.push(
        Kind::Hurst,
        json!({
            "series": h.series.as_str(), "end_ns": i(h.end_ns),
            "window_bins": i(h.window_bins), "bin_ns": i(h.bin_ns),
            "local_whittle": h.local_whittle,
            "local_whittle_lo": h.local_whittle_ci.map(|c| c.0),
            "local_whittle_hi": h.local_whittle_ci.map(|c| c.1),
            "wavelet": h.wavelet,
            "wavelet_lo": h.wavelet_ci.map(|c| c.0),
            "wavelet_hi": h.wavelet_ci.map(|c| c.1),
            "burstiness": h.burstiness, "peak_to_mean": h.peak_to_mean,
            "errors": serde_json::to_string(&h.errors).unwrap_or_else(|_| "[]".into()),
            "ver": 1,
        }),
    );
}

fn flow_row(rows: &mut Rows, f: &FlowRow) {
    let r = &f.record;
    rows.push(
        Kind::Flows,
        json!({
            "start_ns": i(r.start_ns), "end_ns": i(r.end_ns), "protocol": r.protocol,
            "src": r.src.to_string(), "src_port": r.src_port,
            "dst": r.dst.to_string(), "dst_port": r.dst_port,
            "ip_version": r.ip_version, "packets": i(r.packets()), "bytes": i(r.bytes()),
            "duration_ns": i(r.end_ns.saturating_sub(r.start_ns)),
            "class": f.class,
            "confidence": f.confidence.map(f64::from),
            "true_class": f.true_class.clone().unwrap_or_default(),
            "app": r.app.detected.unwrap_or_default(),
            "service": r.app.service.unwrap_or_default(),
            "protocols": flow_protocols(r).unwrap_or_default(),
            "server_name": flow_server_name(r).unwrap_or_default(),
            "end_reason": r.end_reason.as_str(),
            "row": serde_json::to_string(f).unwrap_or_default(),
            "ver": 1,
        }),
    );
}

/// `meta` values, kept by the writer (each a maximum).
#[derive(Debug, Default, Clone)]
struct Meta {
    newest: u64,
    last_bin_end: u64,
    max_flow: u64,
    rolled: u64,
    bin_width: Option<u64>,
    fine_width: Option<u64>,
}

impl Batch {
    fn build(outs: &[Output], m: &mut Meta) -> Batch {
        let mut rows = Rows::default();
        let mut batch = Batch::default();
        let mut minutes = BTreeSet::new();
        let (mut merge_bins, mut merge_windows) = (BTreeSet::new(), BTreeSet::new());
        let part = |rows: &mut Rows, kind: Kind, start: u64, source: &str, json: String| {
            rows.push(
                kind,
                json!({"start_ns": i(start), "source": source, "row": json, "ver": 1}),
            );
        };
        for out in outs {
            match out {
                Output::Bin(b) => {
                    if b.source.is_empty() {
                        bin_rows(&mut rows, b, 1);
                    } else {
                        let text = serde_json::to_string(b).unwrap_or_default();
                        part(&mut rows, Kind::SrcBins, b.start_ns, &b.source, text);
                        merge_bins.insert(b.start_ns);
                    }
                    minutes.insert(b.start_ns - b.start_ns % MINUTE_NS);
                    let end = b.start_ns.saturating_add(b.width_ns);
                    m.newest = m.newest.max(end);
                    m.last_bin_end = m.last_bin_end.max(end);
                    m.bin_width.get_or_insert(b.width_ns);
                    m.fine_width.get_or_insert(b.fine_width_ns);
                    batch.bins += 1;
                }
                Output::Window(w) => {
                    if w.source.is_empty() {
                        window_row(&mut rows, w, 1);
                    } else {
                        let text = serde_json::to_string(w).unwrap_or_default();
                        part(&mut rows, Kind::SrcWindows, w.start_ns, &w.source, text);
                        merge_windows.insert(w.start_ns);
                    }
                    m.newest = m.newest.max(w.end_ns);
                    batch.windows += 1;
                }
                Output::Hurst(h) => {
                    hurst_row(&mut rows, h);
                    m.newest = m.newest.max(h.end_ns);
                    batch.hurst += 1;
                }
                Output::Flow(f) => {
                    flow_row(&mut rows, f);
                    let r = &f.record;
                    m.newest = m.newest.max(r.end_ns);
                    m.max_flow = m.max_flow.max(r.end_ns.saturating_sub(r.start_ns));
                    batch.flows += 1;
                }
            }
        }
        if let Some(last) = minutes.last() {
            m.rolled = m.rolled.max(last + MINUTE_NS);
        }
        batch.inserts = rows
            .0
            .into_iter()
            .map(|(t, r)| (t.to_string(), r))
            .collect();
        batch.merge_bins = merge_bins.into_iter().collect();
        batch.merge_windows = merge_windows.into_iter().collect();
        batch.minutes = minutes.into_iter().collect();
        let mut meta = vec![
            ("newest_ns", m.newest),
            ("max_flow_duration_ns", m.max_flow),
        ];
        if m.last_bin_end > 0 {
            meta.push(("last_bin_end_ns", m.last_bin_end));
            meta.push(("rollup_through_ns", m.rolled));
        }
        meta.extend(m.bin_width.map(|w| ("bin_width_ns", w)));
        meta.extend(m.fine_width.map(|w| ("fine_width_ns", w)));
        batch.meta = meta
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| (k.to_string(), i(v)))
            .collect();
        batch
    }
}

/// Sends a batch, step by step (each step idempotent).
fn apply(c: &Client, b: &Batch) -> Result<(), ChError> {
    let db = c.db();
    for (table, rows) in &b.inserts {
        c.exec(
            &format!("INSERT INTO {db}.{table} FORMAT JSONEachRow"),
            Some(rows.as_bytes()),
        )?;
    }
    merge_parts(c, Kind::SrcBins, &b.merge_bins)?;
    merge_parts(c, Kind::SrcWindows, &b.merge_windows)?;
    if let (Some(first), Some(last)) = (b.minutes.first(), b.minutes.last()) {
        rollup(c, *first, last + MINUTE_NS)?;
    }
    if !b.meta.is_empty() {
        let mut rows = String::new();
        for (k, v) in &b.meta {
            let _ = writeln!(rows, "{k}\t{v}\t{v}");
        }
        c.exec(
            &format!("INSERT INTO {db}.meta FORMAT TabSeparated"),
            Some(rows.as_bytes()),
        )?;
    }
    Ok(())
}

/// Rewrites the sums at `times` from every source's part the server holds;
/// `ver` = the number of parts, so a sum of fewer parts never wins.
fn merge_parts(c: &Client, kind: Kind, times: &[u64]) -> Result<(), ChError> {
    let db = c.db();
    for chunk in times.chunks(500) {
        let list = chunk
            .iter()
            .map(|t| i(*t).to_string())
            .collect::<Vec<_>>()
            .join(",");
        let text = c.exec(
            &format!(
                "SELECT start_ns, row FROM {db}.{} FINAL WHERE start_ns IN ({list}) \
                 ORDER BY start_ns, source FORMAT TabSeparated",
                kind.prefix()
            ),
            None,
        )?;
        let mut by_time: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in tsv_rows(&text) {
            if let (Some(Some(t)), Some(Some(r))) = (row.first(), row.get(1)) {
                by_time.entry(t.clone()).or_default().push(r.clone());
            }
        }
        let mut rows = Rows::default();
        for parts in by_time.values() {
            let ver = parts.len() as u64;
            if kind == Kind::SrcBins {
                let bins: Vec<Bin> = parts
                    .iter()
                    .filter_map(|p| serde_json::from_str(p).ok())
                    .collect();
                if let Some(b) = Bin::merge(&bins) {
                    bin_rows(&mut rows, &b, ver);
                }
            } else {
                let ws: Vec<EvalWindow> = parts
                    .iter()
                    .filter_map(|p| serde_json::from_str(p).ok())
                    .collect();
                if let Some(w) = EvalWindow::merge(&ws) {
                    window_row(&mut rows, &w, ver);
                }
            }
        }
        for (table, body) in rows.0 {
            c.exec(
                &format!("INSERT INTO {db}.{table} FORMAT JSONEachRow"),
                Some(body.as_bytes()),
            )?;
        }
    }
    Ok(())
}

/// Rolls up the minutes in `[lo, hi)` from the base tier, on the server:
/// sums, the mean of `flows_active`, and the fine statistics pooled as the
/// embedded store pools them (mean of the means, largest peak, σ/μ from
/// E[x²] = mean of m²(1 + cv²)). `ver` is the sum of the base rows'
/// versions: a later roll-up of more (or fuller) bins has a larger one.
fn rollup(c: &Client, lo: u64, hi: u64) -> Result<(), ChError> {
    let db = c.db();
    let m = format!("intDiv(start_ns, {MINUTE_NS}) * {MINUTE_NS}");
    let w = format!("start_ns >= {} AND start_ns < {}", i(lo), i(hi));
    let fine = ["total", "tcp", "udp"]
        .map(|s| {
            let mean = format!("avg({s}_mean)");
            let sq = format!("avg({s}_mean * {s}_mean * (1 + coalesce({s}_cv * {s}_cv, 0)))");
            format!(
                "{mean}, if({mean} > 0, sqrt(greatest({sq} - {mean} * {mean}, 0)) / {mean}, \
                 NULL), max({s}_peak)"
            )
        })
        .join(", ");
    c.exec(
        &format!(
            "INSERT INTO {db}.bins_1m (start_ns, width_ns, bins, packets, bytes, flows_started, \
             flows_active, fine_width_ns, total_mean, total_cv, total_peak, tcp_mean, tcp_cv, \
             tcp_peak, udp_mean, udp_cv, udp_peak, ver) \
             SELECT {m} AS m, {MINUTE_NS}, count(), sum(packets), sum(bytes), \
             sum(flows_started), avg(flows_active), max(fine_width_ns), {fine}, sum(ver) \
             FROM {db}.bins_1s FINAL WHERE {w} GROUP BY m"
        ),
        None,
    )?;
    c.exec(
        &format!(
            "INSERT INTO {db}.dims_1m (dim, start_ns, key, packets, bytes, ver) \
             SELECT dim, {m} AS m, key, sum(packets), sum(bytes), sum(ver) \
             FROM {db}.dims_1s FINAL WHERE {w} GROUP BY dim, m, key"
        ),
        None,
    )?;
    c.exec(
        &format!(
            "INSERT INTO {db}.ended_1m (start_ns, reason, flows, ver) \
             SELECT {m} AS m, reason, sum(flows), sum(ver) \
             FROM {db}.ended_1s FINAL WHERE {w} GROUP BY m, reason"
        ),
        None,
    )?;
    Ok(())
}

/// Batches waiting for the server, oldest first, in a directory.
struct Spool {
    dir: PathBuf,
    cap: u64,
    /// (sequence, bytes) of the files held, in order.
    files: Vec<(u64, u64)>,
    next: u64,
}

impl Spool {
    fn open(dir: &Path, cap: u64) -> Result<Spool, StoreError> {
        crate::schema::ensure_dir(dir)?;
        let mut files = Vec::new();
        let entries = fs::read_dir(dir)
            .map_err(|e| StoreError::Io(format!("cannot read the spool {}: {e}", dir.display())))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(seq) = name
                .strip_suffix(".batch")
                .and_then(|s| s.parse::<u64>().ok())
            {
                files.push((seq, e.metadata().map(|m| m.len()).unwrap_or(0)));
            } else if name.ends_with(".tmp") {
                // A write cut by a crash: its batch was never reported written.
                let _ = fs::remove_file(e.path());
            }
        }
        files.sort();
        let next = files.last().map_or(0, |f| f.0 + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            cap,
            files,
            next,
        })
    }

    fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.batch"))
    }

    /// Keeps `b` durably (fsync'd file, renamed, directory synced).
    fn push(&mut self, b: &Batch) -> Result<(), StoreError> {
        let text = serde_json::to_vec(b).map_err(|e| StoreError::Io(e.to_string()))?;
        let len = text.len() as u64;
        if self.bytes() + len > self.cap {
            return Err(StoreError::Io(format!(
                "the ClickHouse spool {} is full ({} batches, {} of {} bytes): the server has \
                 been unreachable too long; outputs are held in memory now",
                self.dir.display(),
                self.files.len(),
                self.bytes(),
                self.cap
            )));
        }
        let seq = self.next;
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        let io = |e: std::io::Error| {
            StoreError::Io(format!(
                "cannot write the spool {}: {e}",
                self.dir.display()
            ))
        };
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, self.path(seq)).map_err(io)?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        self.files.push((seq, len));
        self.next += 1;
        Ok(())
    }

    fn oldest(&self) -> Option<Result<Batch, String>> {
        let (seq, _) = *self.files.first()?;
        let path = self.path(seq);
        Some(
            fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_slice(&t).map_err(|e| e.to_string()))
                .map_err(|e| format!("{}: {e}", path.display())),
        )
    }

    fn pop(&mut self) {
        if !self.files.is_empty() {
            let (seq, _) = self.files.remove(0);
            let _ = fs::remove_file(self.path(seq));
        }
    }
}

/// Writes outputs into ClickHouse, spooling while the server is away.
pub struct ChWriter {
    client: Arc<Client>,
    opts: StoreOptions,
    stats: Arc<StoreStats>,
    spool: Spool,
    meta: Meta,
    /// When retention last ran, and the newest data's day then.
    last_retention: Option<(Instant, u64)>,
    /// The server is unreachable (logged once per spell).
    away: bool,
}

impl ChWriter {
    pub(crate) fn new(
        client: Arc<Client>,
        opts: StoreOptions,
        spool_dir: &Path,
        spool_cap: u64,
    ) -> Result<ChWriter, StoreError> {
        let spool = Spool::open(spool_dir, spool_cap)?;
        // Where the history stands. The values are maxima (`meta` keeps the
        // largest written), so a writer started while the server is away
        // starts from zero and loses nothing.
        let get = |k| super::read::meta(&client, k);
        let load = || -> Result<Meta, ChError> {
            Ok(Meta {
                newest: get("newest_ns")?.unwrap_or(0),
                last_bin_end: get("last_bin_end_ns")?.unwrap_or(0),
                max_flow: get("max_flow_duration_ns")?.unwrap_or(0),
                rolled: get("rollup_through_ns")?.unwrap_or(0),
                bin_width: get("bin_width_ns")?,
                fine_width: get("fine_width_ns")?,
            })
        };
        let meta = load().unwrap_or_else(|e| {
            eprintln!("trafficscope: store: {}", client.fail("cannot read", &e));
            Meta::default()
        });
        if !spool.files.is_empty() {
            eprintln!(
                "trafficscope: store: {} batches ({} bytes) wait in {} and go to ClickHouse first",
                spool.files.len(),
                spool.bytes(),
                spool_dir.display()
            );
        }
        Ok(ChWriter {
            client,
            opts,
            stats: Arc::new(StoreStats::default()),
            spool,
            meta,
            last_retention: None,
            away: false,
        })
    }

    fn count(&self, b: &Batch) {
        let s = &self.stats;
        s.bins_written.fetch_add(b.bins, Relaxed);
        s.windows_written.fetch_add(b.windows, Relaxed);
        s.hurst_written.fetch_add(b.hurst, Relaxed);
        s.flows_written.fetch_add(b.flows, Relaxed);
    }

    fn set_away(&mut self, e: Option<&ChError>) {
        match e {
            Some(e) => {
                let msg = self.client.fail("cannot write", e).to_string();
                if !self.away {
                    eprintln!(
                        "trafficscope: store: {msg}; spooling to {} (at most {} bytes) until it \
                         answers",
                        self.spool.dir.display(),
                        self.spool.cap
                    );
                }
                self.away = true;
                *self
                    .stats
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(msg);
            }
            None => {
                if self.away {
                    eprintln!("trafficscope: store: ClickHouse answers again; spool replayed");
                }
                self.away = false;
            }
        }
        self.stats
            .spooled_batches
            .store(self.spool.files.len() as u64, Relaxed);
        self.stats.spooled_bytes.store(self.spool.bytes(), Relaxed);
    }

    /// Replays the spool in order; stops at the first batch the server
    /// does not take. True when the spool is empty.
    fn drain(&mut self) -> bool {
        while let Some(next) = self.spool.oldest() {
            match next {
                Ok(b) => match apply(&self.client, &b) {
                    Ok(()) => {
                        self.spool.pop();
                        self.count(&b);
                    }
                    Err(e) => {
                        self.set_away(Some(&e));
                        return false;
                    }
                },
                Err(why) => {
                    // Unreadable (damaged disk): keep it aside, named, and go on.
                    eprintln!("trafficscope: store: spooled batch unreadable, skipped: {why}");
                    self.stats.drops.fetch_add(1, Relaxed);
                    if let Some((seq, _)) = self.spool.files.first().copied() {
                        let p = self.spool.path(seq);
                        let _ = fs::rename(&p, p.with_extension("damaged"));
                        self.spool.files.remove(0);
                    }
                }
            }
        }
        self.set_away(None);
        true
    }

    /// Drops the day partitions older than each kind's retention (counted
    /// back from the newest data held): once a minute, and whenever the
    /// newest data reaches a new day.
    fn retention(&mut self) {
        let day = self.meta.newest / DAY_NS;
        if self
            .last_retention
            .is_some_and(|(t, d)| t.elapsed() < RETENTION_EVERY && d == day)
        {
            return;
        }
        self.last_retention = Some((Instant::now(), day));
        let c = &self.client;
        let sql = format!(
            "SELECT table, partition FROM system.parts WHERE database = {} AND active \
             GROUP BY table, partition FORMAT TabSeparated",
            quote(c.db())
        );
        let Ok(text) = c.exec(&sql, None) else {
            return;
        };
        for row in tsv_rows(&text) {
            let (Some(Some(table)), Some(Some(part))) = (row.first(), row.get(1)) else {
                continue;
            };
            let (Some(kind), Ok(day)) = (Kind::parse(table), part.parse::<u64>()) else {
                continue;
            };
            let keep = self.opts.retention_ns(kind.retention());
            let day_end = (day + 1).saturating_mul(DAY_NS);
            if day_end.saturating_add(keep) <= self.meta.newest {
                let drop = format!("ALTER TABLE {}.{table} DROP PARTITION {day}", c.db());
                if c.exec(&drop, None).is_ok() {
                    self.stats.partitions_dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

impl OutputSink for ChWriter {
    fn check(&mut self, out: &Output) -> Result<(), String> {
        let url = self.client.url.to_string();
        check_bin_width(&mut self.meta.bin_width, out, &url)
    }

    fn write(&mut self, outs: &[Output]) -> Result<(), StoreError> {
        for o in outs {
            self.check(o).map_err(StoreError::Incompatible)?;
        }
        if outs.is_empty() {
            return Ok(());
        }
        let mut meta = self.meta.clone();
        let batch = Batch::build(outs, &mut meta);
        if self.spool.files.is_empty() {
            match apply(&self.client, &batch) {
                Ok(()) => {
                    self.meta = meta;
                    self.count(&batch);
                    self.set_away(None);
                    self.retention();
                    return Ok(());
                }
                Err(e) => {
                    // Kept for the next commit to replay: trying again now
                    // would only wait out the same failure twice.
                    self.spool.push(&batch)?;
                    self.meta = meta;
                    self.set_away(Some(&e));
                    return Ok(());
                }
            }
        }
        // Behind the spooled batches, in order.
        self.spool.push(&batch)?;
        self.meta = meta;
        if self.drain() {
            self.retention();
        }
        Ok(())
    }

    fn set_stats(&mut self, stats: Arc<StoreStats>) {
        self.stats = stats;
    }

    fn finish(&mut self) -> Option<String> {
        if self.drain() {
            return None;
        }
        Some(format!(
            "{} batches ({} bytes) are still spooled in {}: ClickHouse at {} did not answer; \
             they go first at the next start with this store",
            self.spool.files.len(),
            self.spool.bytes(),
            self.spool.dir.display(),
            self.client.url
        ))
    }
}

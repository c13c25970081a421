//! The one writer: a batch of outputs in one transaction, the 1 min
//! rollup of the minutes it touched, then retention and the size cap.
//!
//! Every write is idempotent (`INSERT OR REPLACE` on natural keys; a bin
//! written again first loses its old dimension rows), so replaying outputs
//! after a crash, or replaying a capture, replaces rather than doubles.
//! The 1 min tier is derived from the durable base tier inside the same
//! transaction, so the two never disagree, whatever was cut short before.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use pipeline::{Bin, Dim, EvalWindow, FlowRow, HurstPoint, Output};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::partition::{rebuild_views, Catalog, Kind, Retention};
use crate::schema::{self, get_meta, set_meta};
use crate::time::{day_of, MINUTE_NS};
use crate::{StoreError, StoreOptions, StoreStats};

/// Pages returned to the file system per commit at most: a day's drop
/// frees hundreds of MB, and moving it all at once would stall one commit
/// for seconds; a bounded step per commit spreads the work.
const VACUUM_PAGES_PER_COMMIT: u64 = 8192;

/// Writes outputs into the store. One per store; not shared between threads.
pub struct Writer {
    path: PathBuf,
    conn: Connection,
    opts: StoreOptions,
    pub(crate) stats: Arc<StoreStats>,
    /// The catalogue as of the last commit (loaded at the first write). A
    /// transaction works on a copy, kept only if it commits: tables a
    /// failed one created were rolled back with it.
    catalog: Option<Catalog>,
    /// Width of the base tier's bins (set by the first bin ever written).
    bin_width_ns: Option<u64>,
    /// The size cap could not be met without dropping what was just written.
    warned_cap: bool,
}

/// What one transaction did.
#[derive(Debug, Default)]
struct Done {
    bins: u64,
    windows: u64,
    hurst: u64,
    flows: u64,
    dropped: u64,
    over_cap: bool,
}

impl Writer {
    pub(crate) fn new(
        path: PathBuf,
        conn: Connection,
        opts: StoreOptions,
        stats: Arc<StoreStats>,
    ) -> Writer {
        let bin_width_ns = get_meta(&conn, "bin_width_ns")
            .ok()
            .flatten()
            .map(|w| w as u64);
        Writer {
            path,
            conn,
            opts,
            stats,
            catalog: None,
            bin_width_ns,
            warned_cap: false,
        }
    }

    /// The counters this writer updates.
    pub fn stats(&self) -> &Arc<StoreStats> {
        &self.stats
    }

    /// Whether `out` can go into this store. The only refusal: a bin whose
    /// width differs from the store's bins (or does not divide a minute),
    /// which no retry could fix. The writer loop drops such outputs and
    /// counts them rather than retrying for ever.
    pub fn check(&mut self, out: &Output) -> Result<(), String> {
        check_bin_width(&mut self.bin_width_ns, out, &self.path.display())
    }

    /// Writes `outs` in one transaction (all or nothing), rolls up the
    /// minutes they touched, applies retention and the size cap, and
    /// updates the counters.
    pub fn write(&mut self, outs: &[Output]) -> Result<(), StoreError> {
        for o in outs {
            self.check(o).map_err(StoreError::Incompatible)?;
        }
        if outs.is_empty() {
            return Ok(());
        }
        let conn = &self.conn;
        if self.catalog.is_none() {
            self.catalog =
                Some(Catalog::load(conn).map_err(|e| schema::io(&self.path, "cannot read", e))?);
        }
        let catalog = self.catalog.as_mut().expect("loaded above");
        let mut work = catalog.clone();
        match transaction(conn, &mut work, &self.opts, outs) {
            Ok(done) => {
                *catalog = work;
                let s = &self.stats;
                s.bins_written.fetch_add(done.bins, Relaxed);
                s.windows_written.fetch_add(done.windows, Relaxed);
                s.hurst_written.fetch_add(done.hurst, Relaxed);
                s.flows_written.fetch_add(done.flows, Relaxed);
                s.partitions_dropped.fetch_add(done.dropped, Relaxed);
                s.size_bytes.store(schema::file_size(&self.path), Relaxed);
                if done.over_cap && !self.warned_cap {
                    eprintln!(
                        "trafficscope: store: {} is over its size cap of {} bytes with only the \
                         partitions being written left; raise the cap",
                        self.path.display(),
                        self.opts.size_cap_bytes.unwrap_or(0)
                    );
                }
                self.warned_cap = done.over_cap;
                Ok(())
            }
            Err(e) => Err(schema::io(&self.path, "cannot write", e)),
        }
    }
}

fn i(x: u64) -> i64 {
    x.min(i64::MAX as u64) as i64
}

/// `[1,2,3]`: the fine values as JSON text, readable with `json_each` in sqlite3.
fn json_u64s(v: &[u64]) -> String {
    let mut s = String::with_capacity(v.len() * 6 + 2);
    s.push('[');
    for (k, x) in v.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        let _ = write!(s, "{x}");
    }
    s.push(']');
    s
}

/// `'class','true_class',…`: every dimension, so that lookups on the
/// `(dim, start_ns, key)` key seek once per dimension instead of scanning.
fn dims_in() -> String {
    Dim::STORED
        .iter()
        .map(|d| format!("'{}'", d.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

struct Ctx<'a> {
    conn: &'a Connection,
    cat: &'a mut Catalog,
    keep: HashSet<(Kind, i64)>,
    created: bool,
    now: u64,
    /// The flow insert of the last day written, and the buffer its JSON
    /// rows are serialized into: a batch is mostly flows of one day.
    flow_insert: Option<(i64, String)>,
    json: Vec<u8>,
    /// End of the newest bin the store holds (`last_bin_end_ns`, kept up
    /// by [`write_bin`]): a bin starting there or later cannot exist yet, so
    /// the lookup that makes a rewrite replace a bin's old rows is skipped
    /// for it (the usual case, bins arriving in order).
    bins_end: u64,
}

impl Ctx<'_> {
    fn table(&mut self, kind: Kind, day: i64) -> rusqlite::Result<String> {
        let (t, created) = self.cat.ensure(self.conn, kind, day, self.now)?;
        self.created |= created;
        self.keep.insert((kind, day));
        Ok(t)
    }
}

fn transaction(
    conn: &Connection,
    cat: &mut Catalog,
    opts: &StoreOptions,
    outs: &[Output],
) -> rusqlite::Result<Done> {
    // IMMEDIATE: take the write lock at BEGIN, so a busy database fails
    // here and not halfway through.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut cx = Ctx {
        conn,
        cat,
        keep: HashSet::new(),
        created: false,
        now: pipeline::unix_now_ns(),
        flow_insert: None,
        json: Vec::with_capacity(4096),
        bins_end: 0,
    };
    let mut done = Done::default();
    let mut minutes = BTreeSet::new();
    let meta = |k| get_meta(conn, k).map(|v| v.map(|v| v.max(0) as u64));
    let mut newest = meta("newest_ns")?.unwrap_or(0);
    cx.bins_end = match meta("last_bin_end_ns")? {
        Some(e) => e,
        // No bin written yet, or a store from before the mark was kept: its
        // newest bin says.
        None => match cx.cat.days(Kind::Bins1s).last() {
            Some(&day) => conn
                .query_row(
                    &format!(
                        "SELECT coalesce(max(start_ns + width_ns), 0) FROM {}",
                        Kind::Bins1s.table(day)
                    ),
                    [],
                    |r| r.get::<_, i64>(0),
                )?
                .max(0) as u64,
            None => 0,
        },
    };
    let mut max_flow = meta("max_flow_duration_ns")?.unwrap_or(0);
    let mut widths = (meta("bin_width_ns")?, meta("fine_width_ns")?);
    // Bins and windows that sources' parts changed: each is summed and
    // written once per transaction, after all its parts in the batch (with
    // four partitions a bin has four parts, usually in one batch).
    let mut merge_bins = BTreeSet::new();
    let mut merge_windows = BTreeSet::new();
    for out in outs {
        match out {
            Output::Bin(b) => {
                if b.source.is_empty() {
                    write_bin(&mut cx, b)?;
                } else {
                    write_part(&mut cx, Kind::SrcBins, b.start_ns, &b.source, b)?;
                    merge_bins.insert(b.start_ns);
                }
                minutes.insert(b.start_ns - b.start_ns % MINUTE_NS);
                let end = b.start_ns.saturating_add(b.width_ns);
                newest = newest.max(end);
                widths.0.get_or_insert(b.width_ns);
                widths.1.get_or_insert(b.fine_width_ns);
                done.bins += 1;
            }
            Output::Window(w) => {
                if w.source.is_empty() {
                    write_window(&mut cx, w)?;
                } else {
                    write_part(&mut cx, Kind::SrcWindows, w.start_ns, &w.source, w)?;
                    merge_windows.insert(w.start_ns);
                }
                newest = newest.max(w.end_ns);
                done.windows += 1;
            }
            Output::Hurst(h) => {
                write_hurst(&mut cx, h)?;
                newest = newest.max(h.end_ns);
                done.hurst += 1;
            }
            Output::Flow(f) => {
                write_flow(&mut cx, f)?;
                let r = &f.record;
                newest = newest.max(r.end_ns);
                max_flow = max_flow.max(r.end_ns.saturating_sub(r.start_ns));
                done.flows += 1;
            }
        }
    }
    for &start in &merge_bins {
        if let Some(merged) = Bin::merge(&read_parts::<Bin>(&mut cx, Kind::SrcBins, start)?) {
            write_bin(&mut cx, &merged)?;
        }
    }
    for &start in &merge_windows {
        let parts = read_parts::<EvalWindow>(&mut cx, Kind::SrcWindows, start)?;
        if let Some(merged) = EvalWindow::merge(&parts) {
            write_window(&mut cx, &merged)?;
        }
    }
    let mut rolled = meta("rollup_through_ns")?.unwrap_or(0);
    for &m in &minutes {
        rollup_minute(&mut cx, m)?;
        rolled = rolled.max(m + MINUTE_NS);
    }
    set_meta(conn, "newest_ns", i(newest))?;
    if cx.bins_end > 0 {
        set_meta(conn, "last_bin_end_ns", i(cx.bins_end))?;
        set_meta(conn, "rollup_through_ns", i(rolled))?;
    }
    set_meta(conn, "max_flow_duration_ns", i(max_flow))?;
    if let Some(w) = widths.0 {
        set_meta(conn, "bin_width_ns", i(w))?;
    }
    if let Some(w) = widths.1 {
        set_meta(conn, "fine_width_ns", i(w))?;
    }

    // Retention, relative to the newest data held (a replayed capture from
    // 2019 is history, not garbage).
    for (kind, day) in cx.cat.expired(newest, |r| opts.retention_ns(r), &cx.keep) {
        cx.cat.drop_partition(conn, kind, day)?;
        done.dropped += 1;
    }
    if let Some(cap) = opts.size_cap_bytes {
        while used_bytes(conn)? > cap {
            let Some(victims) = cx.cat.next_for_cap(&cx.keep) else {
                done.over_cap = true;
                break;
            };
            for (kind, day) in victims {
                cx.cat.drop_partition(conn, kind, day)?;
                done.dropped += 1;
            }
        }
    }
    if cx.created || done.dropped > 0 {
        rebuild_views(conn, cx.cat)?;
    }
    let free: u64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))? as u64;
    if free > 0 {
        // The pragma frees one page per result row: step through them all
        // (`execute_batch` would step once and free a single page).
        let mut st = conn.prepare(&format!(
            "PRAGMA incremental_vacuum({})",
            free.min(VACUUM_PAGES_PER_COMMIT)
        ))?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
    }
    tx.commit()?;
    Ok(done)
}

/// Pages in use (not on the free list), bytes: what the size cap bounds.
fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let get = |p: &str| conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0));
    let pages = get("page_count")? - get("freelist_count")?;
    Ok((pages.max(0) * get("page_size")?) as u64)
}

fn write_bin(cx: &mut Ctx<'_>, b: &Bin) -> rusqlite::Result<()> {
    let day = day_of(b.start_ns);
    let bins = cx.table(Kind::Bins1s, day)?;
    let dims = cx.table(Kind::Dims1s, day)?;
    let ended = cx.table(Kind::Ended1s, day)?;
    let fine = cx.table(Kind::Fine, day)?;
    let c = cx.conn;
    let start = i(b.start_ns);
    let existed = b.start_ns < cx.bins_end
        && c.prepare_cached(&format!("SELECT 1 FROM {bins} WHERE start_ns = ?1"))?
            .query_row([start], |_| Ok(()))
            .optional()?
            .is_some();
    cx.bins_end = cx.bins_end.max(b.start_ns.saturating_add(b.width_ns));
    if existed {
        // A rewrite replaces the whole bin: keys it no longer has must go too.
        c.prepare_cached(&format!(
            "DELETE FROM {dims} WHERE dim IN ({}) AND start_ns = ?1",
            dims_in()
        ))?
        .execute([start])?;
        c.prepare_cached(&format!("DELETE FROM {ended} WHERE start_ns = ?1"))?
            .execute([start])?;
    }
    let [t, p, u] = &b.fine;
    c.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {bins} (start_ns, width_ns, bins, packets, bytes, flows_started,
            flows_active, fine_width_ns, total_mean, total_cv, total_peak, tcp_mean, tcp_cv,
            tcp_peak, udp_mean, udp_cv, udp_peak)
         VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    ))?
    .execute(params![
        start,
        i(b.width_ns),
        i(b.packets),
        i(b.bytes),
        i(b.flows_started),
        b.flows_active as f64,
        i(b.fine_width_ns),
        t.mean,
        t.cv,
        t.peak,
        p.mean,
        p.cv,
        p.peak,
        u.mean,
        u.cv,
        u.peak
    ])?;
    {
        let mut st = c.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {dims} (dim, start_ns, key, packets, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)"
        ))?;
        for d in &b.counts {
            st.execute(params![
                d.dim.as_str(),
                start,
                d.key,
                i(d.packets),
                i(d.bytes)
            ])?;
        }
    }
    {
        let mut st = c.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {ended} (start_ns, reason, flows) VALUES (?1, ?2, ?3)"
        ))?;
        for (reason, n) in &b.flows_ended {
            st.execute(params![start, reason, i(*n)])?;
        }
    }
    c.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {fine} (start_ns, fine_width_ns, total, tcp, udp)
         VALUES (?1, ?2, ?3, ?4, ?5)"
    ))?
    .execute(params![
        start,
        i(b.fine_width_ns),
        json_u64s(&b.fine_bytes[0]),
        json_u64s(&b.fine_bytes[1]),
        json_u64s(&b.fine_bytes[2])
    ])?;
    Ok(())
}

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(e.into())
}

/// Stores one source's part of the bin or window starting at `start_ns`
/// (replacing that source's earlier part: a replay rewrites, never adds).
fn write_part<T: serde::Serialize>(
    cx: &mut Ctx<'_>,
    kind: Kind,
    start_ns: u64,
    source: &str,
    part: &T,
) -> rusqlite::Result<()> {
    let t = cx.table(kind, day_of(start_ns))?;
    cx.json.clear();
    serde_json::to_writer(&mut cx.json, part).map_err(json_err)?;
    // serde_json writes UTF-8 only.
    let row = std::str::from_utf8(&cx.json)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    cx.conn
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO {t} (start_ns, source, row) VALUES (?1, ?2, ?3)"
        ))?
        .execute(params![i(start_ns), source, row])?;
    Ok(())
}

/// Every source's part of the bin or window starting at `start_ns`, in
/// source order: what the merged one is the sum of.
fn read_parts<T: serde::de::DeserializeOwned>(
    cx: &mut Ctx<'_>,
    kind: Kind,
    start_ns: u64,
) -> rusqlite::Result<Vec<T>> {
    let t = cx.table(kind, day_of(start_ns))?;
    let mut st = cx.conn.prepare_cached(&format!(
        "SELECT row FROM {t} WHERE start_ns = ?1 ORDER BY source"
    ))?;
    let mut rows = st.query([i(start_ns)])?;
    let mut parts = Vec::new();
    while let Some(r) = rows.next()? {
        let text: String = r.get(0)?;
        parts.push(serde_json::from_str(&text).map_err(json_err)?);
    }
    Ok(parts)
}

/// Recomputes minute `m` of the 1 min tier from the base tier: sums, the
/// mean of `flows_active`, and the fine statistics of the whole minute
/// (mean of the means; peak the largest; σ/μ recomputed exactly from each
/// bin's mean and σ/μ, since every bin has the same number of fine bins:
/// E[x²] = mean of m²(1 + cv²)). Partial minutes are rolled up too and
/// again when more of their bins arrive, so the 1 min tier always equals
/// the base tier it came from.
fn rollup_minute(cx: &mut Ctx<'_>, m: u64) -> rusqlite::Result<()> {
    let day = day_of(m);
    let b1 = cx.table(Kind::Bins1s, day)?;
    let d1 = cx.table(Kind::Dims1s, day)?;
    let e1 = cx.table(Kind::Ended1s, day)?;
    let bm = cx.table(Kind::Bins1m, day)?;
    let dm = cx.table(Kind::Dims1m, day)?;
    let em = cx.table(Kind::Ended1m, day)?;
    let c = cx.conn;
    let (lo, hi) = (i(m), i(m + MINUTE_NS));
    let dims = dims_in();
    c.prepare_cached(&format!(
        "DELETE FROM {dm} WHERE dim IN ({dims}) AND start_ns = ?1"
    ))?
    .execute([lo])?;
    c.prepare_cached(&format!(
        "INSERT INTO {dm} (dim, start_ns, key, packets, bytes)
         SELECT dim, ?1, key, sum(packets), sum(bytes) FROM {d1}
         WHERE dim IN ({dims}) AND start_ns >= ?1 AND start_ns < ?2 GROUP BY dim, key"
    ))?
    .execute([lo, hi])?;
    c.prepare_cached(&format!("DELETE FROM {em} WHERE start_ns = ?1"))?
        .execute([lo])?;
    c.prepare_cached(&format!(
        "INSERT INTO {em} (start_ns, reason, flows)
         SELECT ?1, reason, sum(flows) FROM {e1}
         WHERE start_ns >= ?1 AND start_ns < ?2 GROUP BY reason"
    ))?
    .execute([lo, hi])?;
    let fine_sql = ["total", "tcp", "udp"]
        .map(|s| {
            format!(
                "avg({s}_mean), avg({s}_mean * {s}_mean * (1 + coalesce({s}_cv * {s}_cv, 0))), \
                 max({s}_peak)"
            )
        })
        .join(", ");
    let row = c
        .prepare_cached(&format!(
            "SELECT count(*), sum(packets), sum(bytes), sum(flows_started), avg(flows_active),
                max(fine_width_ns), {fine_sql}
             FROM {b1} WHERE start_ns >= ?1 AND start_ns < ?2"
        ))?
        .query_row([lo, hi], |r| {
            let mut fine = [(0.0, None, 0.0); 3];
            for (s, f) in fine.iter_mut().enumerate() {
                let mean: f64 = r.get::<_, Option<f64>>(6 + 3 * s)?.unwrap_or(0.0);
                let sq: f64 = r.get::<_, Option<f64>>(7 + 3 * s)?.unwrap_or(0.0);
                let peak: f64 = r.get::<_, Option<f64>>(8 + 3 * s)?.unwrap_or(0.0);
                let cv = (mean > 0.0).then(|| (sq - mean * mean).max(0.0).sqrt() / mean);
                *f = (mean, cv, peak);
            }
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<f64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                fine,
            ))
        })?;
    let (n, packets, bytes, started, active, fine_width, fine) = row;
    if n == 0 {
        c.prepare_cached(&format!("DELETE FROM {bm} WHERE start_ns = ?1"))?
            .execute([lo])?;
        return Ok(());
    }
    let [t, p, u] = fine;
    c.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {bm} (start_ns, width_ns, bins, packets, bytes, flows_started,
            flows_active, fine_width_ns, total_mean, total_cv, total_peak, tcp_mean, tcp_cv,
            tcp_peak, udp_mean, udp_cv, udp_peak)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))?
    .execute(params![
        lo,
        i(MINUTE_NS),
        n,
        packets,
        bytes,
        started,
        active,
        fine_width,
        t.0,
        t.1,
        t.2,
        p.0,
        p.1,
        p.2,
        u.0,
        u.1,
        u.2
    ])?;
    Ok(())
}

fn write_window(cx: &mut Ctx<'_>, w: &EvalWindow) -> rusqlite::Result<()> {
    let t = cx.table(Kind::Windows, day_of(w.start_ns))?;
    let by_class = serde_json::to_string(&w.by_class).unwrap_or_else(|_| "[]".into());
    cx.conn
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO {t} (start_ns, end_ns, hits, misses, unknown, pending,
                unlabelled, accuracy, by_class) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))?
        .execute(params![
            i(w.start_ns),
            i(w.end_ns),
            i(w.hits),
            i(w.misses),
            i(w.unknown),
            i(w.pending),
            i(w.unlabelled),
            w.accuracy(),
            by_class
        ])?;
    Ok(())
}

fn write_hurst(cx: &mut Ctx<'_>, h: &HurstPoint) -> rusqlite::Result<()> {
    let t = cx.table(Kind::Hurst, day_of(h.end_ns))?;
    let errors = serde_json::to_string(&h.errors).unwrap_or_else(|_| "[]".into());
    cx.conn
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO {t} (series, end_ns, window_bins, bin_ns, local_whittle,
                local_whittle_lo, local_whittle_hi, wavelet, wavelet_lo, wavelet_hi, burstiness,
                peak_to_mean, errors)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))?
        .execute(params![
            h.series.as_str(),
            i(h.end_ns),
            i(h.window_bins),
            i(h.bin_ns),
            h.local_whittle,
            h.local_whittle_ci.map(|c| c.0),
            h.local_whittle_ci.map(|c| c.1),
            h.wavelet,
            h.wavelet_ci.map(|c| c.0),
            h.wavelet_ci.map(|c| c.1),
            h.burstiness,
            h.peak_to_mean,
            errors
        ])?;
    Ok(())
}

fn write_flow(cx: &mut Ctx<'_>, f: &FlowRow) -> rusqlite::Result<()> {
    let r = &f.record;
    let day = day_of(r.start_ns);
    if cx.flow_insert.as_ref().map(|(d, _)| *d) != Some(day) {
        let t = cx.table(Kind::Flows, day)?;
        cx.flow_insert = Some((
            day,
            format!(
                "INSERT OR REPLACE INTO {t} (start_ns, end_ns, protocol, src, src_port, dst,
                    dst_port, ip_version, packets, bytes, duration_ns, class, confidence,
                    true_class, app, service, protocols, server_name, end_reason, row)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18, ?19, ?20)"
            ),
        ));
    }
    cx.json.clear();
    crate::flow_row::write_compact(f, &mut cx.json)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    let row = std::str::from_utf8(&cx.json)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    let protocols = flow_protocols(r);
    let server = flow_server_name(r);
    let sql = cx.flow_insert.as_ref().map_or("", |(_, s)| s.as_str());
    cx.conn.prepare_cached(sql)?.execute(params![
        i(r.start_ns),
        i(r.end_ns),
        r.protocol,
        r.src.to_string(),
        r.src_port,
        r.dst.to_string(),
        r.dst_port,
        r.ip_version,
        i(r.packets()),
        i(r.bytes()),
        i(r.end_ns.saturating_sub(r.start_ns)),
        f.class,
        f.confidence.map(f64::from),
        f.true_class,
        r.app.detected,
        r.app.service,
        protocols,
        server,
        r.end_reason.as_str(),
        row
    ])?;
    Ok(())
}

/// All protocols detected in a flow, `stun+dtls+rtp` (the `protocols` column).
pub(crate) fn flow_protocols(r: &flow::FlowRecord) -> Option<String> {
    (r.app.protocols != 0).then(|| flow::AppInfo::protocols_joined(r.app.protocols))
}

/// TLS SNI, else HTTP host, else DNS query (the `server_name` column).
pub(crate) fn flow_server_name(r: &flow::FlowRecord) -> Option<&str> {
    r.app
        .tls_sni
        .as_deref()
        .or(r.app.http_host.as_deref())
        .or(r.app.dns_query.as_deref())
}

/// Refuses a bin whose width does not divide a minute, or differs from
/// `width` (the store's, set by the first bin): no retry could store it.
pub(crate) fn check_bin_width(
    width: &mut Option<u64>,
    out: &Output,
    store: &dyn std::fmt::Display,
) -> Result<(), String> {
    let Output::Bin(b) = out else {
        return Ok(());
    };
    if b.width_ns == 0 || !MINUTE_NS.is_multiple_of(b.width_ns) {
        return Err(format!(
            "bins of {} ns cannot be stored: the bin width must divide a minute (1 s, 2 s, \
             5 s, …)",
            b.width_ns
        ));
    }
    match *width {
        Some(w) if w != b.width_ns => Err(format!(
            "bins of {} cannot join {store}, which holds bins of {}: run with the store's bin \
             width, or pass another store",
            crate::time::human_duration(b.width_ns),
            crate::time::human_duration(w)
        )),
        Some(_) => Ok(()),
        None => {
            *width = Some(b.width_ns);
            Ok(())
        }
    }
}

impl StoreOptions {
    /// Retention of a kind, ns.
    pub(crate) fn retention_ns(&self, r: Retention) -> u64 {
        match r {
            Retention::Base => self.bin_1s_retention_ns,
            Retention::Minute => self.bin_1m_retention_ns,
            Retention::Fine => self.fine_retention_ns.unwrap_or(self.bin_1s_retention_ns),
            Retention::Flows => self.flow_retention_ns,
            Retention::Windows => self.window_retention_ns,
            Retention::Hurst => self.hurst_retention_ns,
        }
    }
}

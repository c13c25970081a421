//! Queries by time range: series at a step, totals, windows, Hurst points,
//! flow listings and the extent. Each call runs in one read transaction
//! (one snapshot: the catalogue and the tables it names agree), reads only
//! the day tables overlapping its range (`UNION ALL`), and aggregates to
//! steps in Rust, where gaps, weighted means and top-N are plain code.
//!
//! [`Reader`] is one read-only connection (`Send`: move it into a blocking
//! task). [`ReaderPool`] is what a server shares across threads: it lends
//! each call an idle connection, opening one when none is idle, and keeps a
//! few for the next calls.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pipeline::{cross_parts, ClassOutcome, Dim, EvalWindow, HurstPoint, SeriesName, CROSS_PARTS};
use rusqlite::{Connection, ToSql, TransactionBehavior};

use crate::flow_row::{rebuild, FlowColumns};
use crate::partition::{oldest_newest, tables_in, union_all, Kind};
use crate::query::{
    Extent, FineStats, FlowPage, FlowQuery, FlowSort, Metric, Series, SeriesLine, SeriesQuery,
    TierExtent, Totals,
};
use crate::schema::{self, get_meta};
use crate::time::{human_duration, MINUTE_NS, SECOND_NS};
use crate::{StoreError, StoreOptions};

/// Most steps one series may have. A wider request is first cut to the
/// data held (so `0..u64::MAX` means "all of it"); still wider is an error.
pub const MAX_STEPS: u64 = 1_000_000;
/// Name of the line that sums the keys outside the top N.
pub const OTHER: &str = "other";

/// One read-only connection to a store.
pub struct Reader {
    conn: Connection,
    path: PathBuf,
    opts: StoreOptions,
}

impl Reader {
    pub(crate) fn open(path: &Path, opts: StoreOptions) -> Result<Reader, StoreError> {
        Ok(Reader {
            conn: schema::open_reader(path)?,
            path: path.to_path_buf(),
            opts,
        })
    }

    fn q(&self) -> Lite<'_> {
        Lite {
            c: &self.conn,
            path: &self.path,
            opts: &self.opts,
        }
    }

    pub fn series(&self, q: &SeriesQuery) -> Result<Series, StoreError> {
        self.q().run(|x| x.series(q))
    }
    pub fn totals(&self, from_ns: u64, to_ns: u64) -> Result<Totals, StoreError> {
        self.q().run(|x| x.totals(from_ns, to_ns))
    }
    pub fn totals_where(
        &self,
        from_ns: u64,
        to_ns: u64,
        filter: &[(Dim, String)],
    ) -> Result<Totals, StoreError> {
        self.q().run(|x| x.totals_where(from_ns, to_ns, filter))
    }
    pub fn windows(&self, from_ns: u64, to_ns: u64) -> Result<Vec<EvalWindow>, StoreError> {
        self.q().run(|x| x.windows(from_ns, to_ns))
    }
    pub fn hurst(
        &self,
        series: SeriesName,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<HurstPoint>, StoreError> {
        self.q().run(|x| x.hurst(series, from_ns, to_ns))
    }
    pub fn flows(&self, q: &FlowQuery) -> Result<FlowPage, StoreError> {
        self.q().run(|x| x.flows(q))
    }
    pub fn extent(&self) -> Result<Extent, StoreError> {
        self.q().run(|x| x.extent())
    }
}

/// Read connections shared by threads: each call borrows one.
pub struct ReaderPool {
    path: PathBuf,
    opts: StoreOptions,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReaderPool {
    /// A pool keeping at most `max_idle` idle connections (opened lazily).
    pub fn new(path: &Path, opts: StoreOptions, max_idle: usize) -> ReaderPool {
        ReaderPool {
            path: path.to_path_buf(),
            opts,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Q<'_>) -> Result<T, Fail>) -> Result<T, StoreError> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match taken {
            Some(c) => c,
            None => schema::open_reader(&self.path)?,
        };
        let q = Lite {
            c: &conn,
            path: &self.path,
            opts: &self.opts,
        };
        let out = q.run(f);
        // A connection that met an engine error is closed rather than kept.
        if !matches!(out, Err(StoreError::Io(_))) {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        out
    }
}

impl ReaderPool {
    /// Opens one connection now and checks that it reads the store.
    pub fn warm(&self) -> Result<(), StoreError> {
        self.with(|x| x.base_width()).map(|_| ())
    }
}

/// `impl History for $t` through its `with(|q: &Q| …)`: the queries are
/// the same for every engine; only how a [`Q`] is lent differs.
macro_rules! history_via_q {
    ($t:ty) => {
        impl $crate::query::History for $t {
            fn series(
                &self,
                q: &$crate::query::SeriesQuery,
            ) -> Result<$crate::query::Series, $crate::StoreError> {
                self.with(|x| x.series(q))
            }
            fn totals(
                &self,
                from_ns: u64,
                to_ns: u64,
            ) -> Result<$crate::query::Totals, $crate::StoreError> {
                self.with(|x| x.totals(from_ns, to_ns))
            }
            fn totals_where(
                &self,
                from_ns: u64,
                to_ns: u64,
                filter: &[(pipeline::Dim, String)],
            ) -> Result<$crate::query::Totals, $crate::StoreError> {
                self.with(|x| x.totals_where(from_ns, to_ns, filter))
            }
            fn windows(
                &self,
                from_ns: u64,
                to_ns: u64,
            ) -> Result<Vec<pipeline::EvalWindow>, $crate::StoreError> {
                self.with(|x| x.windows(from_ns, to_ns))
            }
            fn hurst(
                &self,
                series: pipeline::SeriesName,
                from_ns: u64,
                to_ns: u64,
            ) -> Result<Vec<pipeline::HurstPoint>, $crate::StoreError> {
                self.with(|x| x.hurst(series, from_ns, to_ns))
            }
            fn flows(
                &self,
                q: &$crate::query::FlowQuery,
            ) -> Result<$crate::query::FlowPage, $crate::StoreError> {
                self.with(|x| x.flows(q))
            }
            fn extent(&self) -> Result<$crate::query::Extent, $crate::StoreError> {
                self.with(|x| x.extent())
            }
            fn first_bin_from(&self, t_ns: u64) -> Result<Option<u64>, $crate::StoreError> {
                self.with(|x| x.first_bin_from(t_ns))
            }
        }
    };
}
pub(crate) use history_via_q;

history_via_q!(ReaderPool);

/// Why a query failed: the engine, or the request itself.
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    /// An engine other than SQLite failed (its message names the server).
    Engine(StoreError),
    Query(String),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Sql(e)
    }
}

pub(crate) type R<T> = Result<T, Fail>;

/// A query parameter, bound to `?1`, `?2`, … in the order given.
#[derive(Debug, Clone)]
pub(crate) enum P {
    I(i64),
    S(String),
}

/// One result row, read by column position.
pub(crate) trait Row {
    fn int(&self, k: usize) -> R<Option<i64>>;
    fn float(&self, k: usize) -> R<Option<f64>>;
    fn text(&self, k: usize) -> R<Option<String>>;
}

/// The SQL an engine speaks where SQLite and ClickHouse differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    ClickHouse,
}

/// What the queries below need of an engine: rows of a kind over a time
/// range (`union`), running SQL with parameters (`each`), `meta` values and
/// the bounds of a kind. The answers are computed here, once, for every
/// engine, so the embedded store and ClickHouse answer alike.
pub(crate) trait Engine {
    fn meta(&self, key: &str) -> R<Option<u64>>;
    /// Smallest and largest time (`start_ns`) held in `kind`.
    fn bounds(&self, kind: Kind) -> R<Option<(u64, u64)>>;
    /// `SELECT cols … WHERE where_` over `kind`'s rows overlapping
    /// `[lo, hi)`; `None` when nothing can match. The conditions use
    /// `?1`/`?2` for `lo`/`hi`.
    fn union(&self, kind: Kind, lo: u64, hi: u64, cols: &str, where_: &str) -> R<Option<String>>;
    fn each(&self, sql: &str, params: &[P], f: &mut dyn FnMut(&dyn Row) -> R<()>) -> R<()>;
    fn size_bytes(&self) -> u64;
    fn dialect(&self) -> Dialect;
    fn opts(&self) -> &StoreOptions;
}

/// SQLite, inside one read transaction.
struct Lite<'a> {
    c: &'a Connection,
    path: &'a Path,
    opts: &'a StoreOptions,
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, k: usize) -> R<Option<i64>> {
        Ok(self.get::<_, Option<i64>>(k)?)
    }
    fn float(&self, k: usize) -> R<Option<f64>> {
        Ok(self.get::<_, Option<f64>>(k)?)
    }
    fn text(&self, k: usize) -> R<Option<String>> {
        Ok(self.get::<_, Option<String>>(k)?)
    }
}

impl Engine for Lite<'_> {
    fn meta(&self, key: &str) -> R<Option<u64>> {
        Ok(get_meta(self.c, key)?.map(u))
    }

    fn bounds(&self, kind: Kind) -> R<Option<(u64, u64)>> {
        let Some((old, new)) = oldest_newest(self.c, kind)? else {
            return Ok(None);
        };
        let one = |sql: String| -> R<Option<i64>> { Ok(self.c.query_row(&sql, [], |r| r.get(0))?) };
        let first = one(format!("SELECT min(start_ns) FROM {old}"))?;
        let last = one(format!("SELECT max(start_ns) FROM {new}"))?;
        Ok(first.zip(last).map(|(a, b)| (u(a), u(b))))
    }

    fn union(&self, kind: Kind, lo: u64, hi: u64, cols: &str, where_: &str) -> R<Option<String>> {
        let tables = tables_in(self.c, kind, lo, hi)?;
        if tables.is_empty() {
            return Ok(None);
        }
        Ok(Some(union_all(
            tables
                .iter()
                .map(|t| format!("SELECT {cols} FROM {t} WHERE {where_}"))
                .collect(),
        )))
    }

    fn each(&self, sql: &str, params: &[P], f: &mut dyn FnMut(&dyn Row) -> R<()>) -> R<()> {
        let mut st = self.c.prepare_cached(sql)?;
        let bound: Vec<&dyn ToSql> = params
            .iter()
            .map(|p| match p {
                P::I(v) => v as &dyn ToSql,
                P::S(v) => v as &dyn ToSql,
            })
            .collect();
        let mut rows = st.query(bound.as_slice())?;
        while let Some(r) = rows.next()? {
            f(r)?;
        }
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        schema::file_size(self.path)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn opts(&self) -> &StoreOptions {
        self.opts
    }
}

impl Lite<'_> {
    /// Runs `f` in one read transaction (one snapshot).
    fn run<T>(&self, f: impl FnOnce(&Q<'_>) -> R<T>) -> Result<T, StoreError> {
        let tx = rusqlite::Transaction::new_unchecked(self.c, TransactionBehavior::Deferred)
            .map_err(|e| schema::io(self.path, "cannot read", e))?;
        let out = f(&Q { e: self });
        drop(tx);
        out.map_err(|e| e.into_store(self.path))
    }
}

impl Fail {
    pub(crate) fn into_store(self, path: &Path) -> StoreError {
        match self {
            Fail::Sql(e) => schema::io(path, "cannot read", e),
            Fail::Engine(e) => e,
            Fail::Query(m) => StoreError::Query(m),
        }
    }
}

/// A query context over one engine.
pub(crate) struct Q<'a> {
    pub(crate) e: &'a dyn Engine,
}

fn i(x: u64) -> i64 {
    x.min(i64::MAX as u64) as i64
}

fn u(x: i64) -> u64 {
    x.max(0) as u64
}

/// A filter as positions in a cross key: (part index, value).
fn cross_filter(filter: &[(Dim, String)]) -> R<Vec<(usize, String)>> {
    filter
        .iter()
        .map(|(d, v)| {
            let p = CROSS_PARTS.iter().position(|p| p == d).ok_or_else(|| {
                Fail::Query(format!(
                    "cannot filter by {}: only by class, protocol, app, direction",
                    d.as_str()
                ))
            })?;
            Ok((p, v.clone()))
        })
        .collect()
}

/// A tier of bins: its width and tables.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tier {
    Fine(u64),
    Base(u64),
    Minute,
}

impl Tier {
    fn width(self) -> u64 {
        match self {
            Tier::Fine(w) | Tier::Base(w) => w,
            Tier::Minute => MINUTE_NS,
        }
    }
    fn kinds(self) -> (Kind, Kind, Kind) {
        match self {
            Tier::Fine(_) => (Kind::Fine, Kind::Fine, Kind::Fine),
            Tier::Base(_) => (Kind::Bins1s, Kind::Dims1s, Kind::Ended1s),
            Tier::Minute => (Kind::Bins1m, Kind::Dims1m, Kind::Ended1m),
        }
    }
}

impl Q<'_> {
    fn meta(&self, key: &str) -> R<Option<u64>> {
        self.e.meta(key)
    }

    pub(crate) fn base_width(&self) -> R<u64> {
        Ok(self.meta("bin_width_ns")?.unwrap_or(SECOND_NS))
    }

    /// Start of the first and end of the last bin of a tier.
    fn tier_bounds(&self, tier: Tier) -> R<(Option<u64>, Option<u64>)> {
        let (kind, _, _) = tier.kinds();
        Ok(match self.e.bounds(kind)? {
            Some((first, last)) => (Some(first), Some(last + tier.width())),
            None => (None, None),
        })
    }

    fn union(&self, kind: Kind, lo: u64, hi: u64, cols: &str, where_: &str) -> R<Option<String>> {
        self.e.union(kind, lo, hi, cols, where_)
    }

    /// Runs `sql` with `params`, handing each row to `f`.
    fn each(&self, sql: &str, params: &[P], mut f: impl FnMut(&dyn Row) -> R<()>) -> R<()> {
        self.e.each(sql, params, &mut f)
    }

    /// The tier a series is read from: among the tiers whose width divides
    /// the step, the coarsest that holds data back to `from` (a coarser
    /// tier gives the same sums from fewer rows); when none reaches back to
    /// `from`, the one reaching furthest back.
    fn pick_tier(&self, metric: Metric, from: u64, step: u64) -> R<Tier> {
        let base = self.base_width()?;
        let mut tiers = Vec::new();
        if metric == Metric::FineBytes {
            tiers.push(Tier::Fine(
                self.meta("fine_width_ns")?.unwrap_or(100_000_000),
            ));
        }
        tiers.push(Tier::Base(base));
        if base < MINUTE_NS {
            tiers.push(Tier::Minute);
        }
        let dividing: Vec<Tier> = tiers
            .iter()
            .copied()
            .filter(|t| t.width() > 0 && step.is_multiple_of(t.width()))
            .collect();
        if dividing.is_empty() {
            let widths: Vec<String> = tiers.iter().map(|t| human_duration(t.width())).collect();
            return Err(Fail::Query(format!(
                "step {} is not a multiple of a tier of {} (tiers: {})",
                human_duration(step),
                metric.as_str(),
                widths.join(", ")
            )));
        }
        let mut best: Option<(Tier, Option<u64>)> = None;
        for t in dividing.iter().rev() {
            let (first, _) = self.tier_bounds(*t)?;
            if first.is_some_and(|f| f <= from) {
                return Ok(*t);
            }
            let better = match (&best, first) {
                (None, _) => true,
                (Some((_, None)), Some(_)) => true,
                (Some((_, Some(b))), Some(f)) => f < *b,
                _ => false,
            };
            if better {
                best = Some((*t, first));
            }
        }
        Ok(best.map(|b| b.0).unwrap_or(dividing[dividing.len() - 1]))
    }

    pub(crate) fn series(&self, q: &SeriesQuery) -> R<Series> {
        if q.step_ns == 0 {
            return Err(Fail::Query("step must be positive".into()));
        }
        let allowed_dim = matches!(q.metric, Metric::Packets | Metric::Bytes);
        if q.dim.is_some() && !allowed_dim {
            return Err(Fail::Query(format!(
                "{} is kept as a total only: ask without a dimension",
                q.metric.as_str()
            )));
        }
        let step = q.step_ns;
        let steps = |from: u64, to: u64| {
            let start = from / step * step;
            (
                start,
                if to <= start {
                    0
                } else {
                    (to - start).div_ceil(step)
                },
            )
        };
        let (mut from, mut to) = (q.from_ns, q.to_ns);
        if steps(from, to).1 > MAX_STEPS {
            // "Everything" (0 to u64::MAX) is a fair question: answer it
            // over the data held rather than with billions of gaps.
            let e = self.extent()?;
            match (e.first_ns, e.last_ns) {
                (Some(a), Some(b)) => (from, to) = (from.max(a), to.min(b)),
                _ => to = from,
            }
        }
        let (start, n) = steps(from, to);
        if n > MAX_STEPS {
            return Err(Fail::Query(format!(
                "{n} steps asked; at most {MAX_STEPS}: use a larger step"
            )));
        }
        let tier = self.pick_tier(q.metric, from, step)?;
        let end = start.saturating_add(n.saturating_mul(step));
        let n = n as usize;
        let times_ns: Vec<u64> = (0..n as u64).map(|k| start + k * step).collect();
        let idx = |t: i64| -> Option<usize> {
            let t = u(t);
            (t >= start && t < end).then(|| ((t - start) / step) as usize)
        };
        let base = self.base_width()?;
        let (lines, covered, covered_ns) = if let Tier::Fine(w) = tier {
            let (lines, covered) = self.fine_lines(start, end, n, &idx)?;
            (lines, covered, w)
        } else {
            let (lines, covered) = self.bin_lines(q, tier, start, end, n, &idx)?;
            (lines, covered, base)
        };
        Ok(Series {
            metric: q.metric,
            dim: q.dim,
            times_ns,
            step_ns: step,
            tier_ns: tier.width(),
            lines,
            covered,
            covered_ns,
        })
    }

    /// Lines read from a tier of bins (base or 1 min).
    fn bin_lines(
        &self,
        q: &SeriesQuery,
        tier: Tier,
        start: u64,
        end: u64,
        n: usize,
        idx: &dyn Fn(i64) -> Option<usize>,
    ) -> R<(Vec<SeriesLine>, Vec<u64>)> {
        let lines = self.bin_lines_of(q, tier, start, end, n, idx)?;
        let covered = self.covered_bins(tier, start, end, n, idx)?;
        Ok((lines, covered))
    }

    /// Base bins held per step (a 1 min row stands for its `bins`).
    fn covered_bins(
        &self,
        tier: Tier,
        start: u64,
        end: u64,
        n: usize,
        idx: &dyn Fn(i64) -> Option<usize>,
    ) -> R<Vec<u64>> {
        let mut covered = vec![0u64; n];
        if let Some(sql) = self.union(
            tier.kinds().0,
            start,
            end,
            "start_ns, bins",
            "start_ns >= ?1 AND start_ns < ?2",
        )? {
            self.each(&sql, &[P::I(i(start)), P::I(i(end))], |r| {
                if let Some(k) = idx(r.int(0)?.unwrap_or(0)) {
                    covered[k] += u(r.int(1)?.unwrap_or(1).max(1));
                }
                Ok(())
            })?;
        }
        Ok(covered)
    }

    fn bin_lines_of(
        &self,
        q: &SeriesQuery,
        tier: Tier,
        start: u64,
        end: u64,
        n: usize,
        idx: &dyn Fn(i64) -> Option<usize>,
    ) -> R<Vec<SeriesLine>> {
        let (kb, kd, ke) = tier.kinds();
        // Per step: bins present, base bins they stand for, and the header sums.
        let mut present = vec![0u32; n];
        let mut weight = vec![0f64; n];
        let mut head = vec![[0f64; 4]; n];
        let cols = "start_ns, bins, packets, bytes, flows_started, flows_active, total_mean, \
                    tcp_mean, udp_mean";
        let fine = q.metric == Metric::FineBytes;
        if let Some(sql) = self.union(kb, start, end, cols, "start_ns >= ?1 AND start_ns < ?2")? {
            self.each(&sql, &[P::I(i(start)), P::I(i(end))], |r| {
                let Some(k) = idx(r.int(0)?.unwrap_or(0)) else {
                    return Ok(());
                };
                let w = r.int(1)?.unwrap_or(1).max(1) as f64;
                present[k] += 1;
                weight[k] += w;
                let h = &mut head[k];
                if fine {
                    for (s, v) in h.iter_mut().enumerate().take(3) {
                        *v += w * r.float(6 + s)?.unwrap_or(0.0);
                    }
                } else {
                    let v = match q.metric {
                        Metric::Packets => r.int(2)?.unwrap_or(0) as f64,
                        Metric::Bytes => r.int(3)?.unwrap_or(0) as f64,
                        Metric::FlowsStarted => r.int(4)?.unwrap_or(0) as f64,
                        Metric::FlowsActive => w * r.float(5)?.unwrap_or(0.0),
                        _ => 0.0,
                    };
                    h[0] += v;
                }
                Ok(())
            })?;
        }
        let gap = |k: usize, v: f64| (present[k] > 0).then_some(v);
        if !q.filter.is_empty() {
            return self.filtered_lines(q, kd, start, end, n, idx, &present);
        }
        match (q.metric, q.dim) {
            (Metric::FineBytes, _) => Ok(SeriesName::ALL
                .iter()
                .enumerate()
                .map(|(s, name)| SeriesLine {
                    key: name.as_str().to_string(),
                    values: (0..n)
                        .map(|k| gap(k, head[k][s] / weight[k].max(1.0)))
                        .collect(),
                })
                .collect()),
            (Metric::FlowsActive, _) => Ok(vec![SeriesLine {
                key: "total".into(),
                values: (0..n)
                    .map(|k| gap(k, head[k][0] / weight[k].max(1.0)))
                    .collect(),
            }]),
            // The total, then one line per end reason (most flows first).
            (Metric::FlowsEnded, _) => {
                let mut sum = vec![0f64; n];
                let mut by_reason: HashMap<String, Vec<f64>> = HashMap::new();
                if let Some(sql) = self.union(
                    ke,
                    start,
                    end,
                    "start_ns, reason, flows",
                    "start_ns >= ?1 AND start_ns < ?2",
                )? {
                    self.each(&sql, &[P::I(i(start)), P::I(i(end))], |r| {
                        if let Some(k) = idx(r.int(0)?.unwrap_or(0)) {
                            let v = r.int(2)?.unwrap_or(0) as f64;
                            sum[k] += v;
                            by_reason
                                .entry(r.text(1)?.unwrap_or_default())
                                .or_insert_with(|| vec![0.0; n])[k] += v;
                        }
                        Ok(())
                    })?;
                }
                let mut reasons: Vec<(String, Vec<f64>)> = by_reason.into_iter().collect();
                reasons.sort_by(|a, b| {
                    let (ta, tb) = (a.1.iter().sum::<f64>(), b.1.iter().sum::<f64>());
                    tb.total_cmp(&ta).then_with(|| a.0.cmp(&b.0))
                });
                let mut lines = vec![SeriesLine {
                    key: "total".into(),
                    values: (0..n).map(|k| gap(k, sum[k])).collect(),
                }];
                lines.extend(reasons.into_iter().map(|(key, v)| SeriesLine {
                    key,
                    values: (0..n).map(|k| gap(k, v[k])).collect(),
                }));
                Ok(lines)
            }
            (_, None) => Ok(vec![SeriesLine {
                key: "total".into(),
                values: (0..n).map(|k| gap(k, head[k][0])).collect(),
            }]),
            (_, Some(dim)) => {
                let bytes = q.metric == Metric::Bytes;
                let mut by_key: HashMap<String, (f64, Vec<f64>)> = HashMap::new();
                if let Some(sql) = self.union(
                    kd,
                    start,
                    end,
                    "start_ns, key, packets, bytes",
                    "dim = ?3 AND start_ns >= ?1 AND start_ns < ?2",
                )? {
                    self.each(
                        &sql,
                        &[P::I(i(start)), P::I(i(end)), P::S(dim.as_str().into())],
                        |r| {
                            let Some(k) = idx(r.int(0)?.unwrap_or(0)) else {
                                return Ok(());
                            };
                            let v = r.int(if bytes { 3 } else { 2 })?.unwrap_or(0) as f64;
                            let key: String = r.text(1)?.unwrap_or_default();
                            let e = by_key.entry(key).or_insert_with(|| (0.0, vec![0.0; n]));
                            e.0 += v;
                            e.1[k] += v;
                            Ok(())
                        },
                    )?;
                }
                Ok(top_lines(by_key, q.top, n, &present))
            }
        }
    }

    /// Packets or bytes of the packets matching `q.filter`, by `q.dim`'s
    /// part of the cross key (or in total), from the cross dimension.
    #[allow(clippy::too_many_arguments)]
    fn filtered_lines(
        &self,
        q: &SeriesQuery,
        kd: Kind,
        start: u64,
        end: u64,
        n: usize,
        idx: &dyn Fn(i64) -> Option<usize>,
        present: &[u32],
    ) -> R<Vec<SeriesLine>> {
        if !matches!(q.metric, Metric::Packets | Metric::Bytes) {
            return Err(Fail::Query(format!(
                "{} is not kept per class, protocol or application: ask without a filter",
                q.metric.as_str()
            )));
        }
        let filter = cross_filter(&q.filter)?;
        let part = match q.dim {
            None => None,
            Some(d) => Some(CROSS_PARTS.iter().position(|p| *p == d).ok_or_else(|| {
                Fail::Query(format!(
                    "with a filter, `by` is one of class, protocol, app, direction (not {})",
                    d.as_str()
                ))
            })?),
        };
        let bytes = q.metric == Metric::Bytes;
        let mut by_key: HashMap<String, (f64, Vec<f64>)> = HashMap::new();
        if let Some(sql) = self.union(
            kd,
            start,
            end,
            "start_ns, key, packets, bytes",
            "dim = 'cross' AND start_ns >= ?1 AND start_ns < ?2",
        )? {
            self.each(&sql, &[P::I(i(start)), P::I(i(end))], |r| {
                let Some(k) = idx(r.int(0)?.unwrap_or(0)) else {
                    return Ok(());
                };
                let key: String = r.text(1)?.unwrap_or_default();
                let Some(parts) = cross_parts(&key) else {
                    return Ok(());
                };
                if !filter.iter().all(|(p, v)| parts[*p] == v.as_str()) {
                    return Ok(());
                }
                let v = r.int(if bytes { 3 } else { 2 })?.unwrap_or(0) as f64;
                let line = part.map_or("total", |p| parts[p]).to_string();
                let e = by_key.entry(line).or_insert_with(|| (0.0, vec![0.0; n]));
                e.0 += v;
                e.1[k] += v;
                Ok(())
            })?;
        }
        if part.is_none() {
            let sums = by_key.remove("total").map_or(vec![0.0; n], |e| e.1);
            return Ok(vec![SeriesLine {
                key: "total".into(),
                values: (0..n)
                    .map(|k| (present[k] > 0).then_some(sums[k]))
                    .collect(),
            }]);
        }
        // Keys without traffic ("-": no app or direction) are not drawn.
        by_key.remove("-");
        Ok(top_lines(by_key, q.top, n, present))
    }

    /// `total`, `tcp`, `udp` at the fine tier: the mean of the fine values
    /// in each step (bytes per fine bin).
    fn fine_lines(
        &self,
        start: u64,
        end: u64,
        n: usize,
        idx: &dyn Fn(i64) -> Option<usize>,
    ) -> R<(Vec<SeriesLine>, Vec<u64>)> {
        let mut sum = [vec![0f64; n], vec![0f64; n], vec![0f64; n]];
        let mut cnt = [vec![0u32; n], vec![0u32; n], vec![0u32; n]];
        // A fine row starts at its bin; its values reach up to a bin later.
        let lo = start.saturating_sub(MINUTE_NS);
        if let Some(sql) = self.union(
            Kind::Fine,
            lo,
            end,
            "start_ns, fine_width_ns, total, tcp, udp",
            "start_ns >= ?1 AND start_ns < ?2",
        )? {
            self.each(&sql, &[P::I(i(lo)), P::I(i(end))], |r| {
                let t0: i64 = r.int(0)?.unwrap_or(0);
                let fw = r.int(1)?.unwrap_or(1).max(1);
                for s in 0..3 {
                    let text: Option<String> = r.text(2 + s)?;
                    let vals: Vec<u64> = text
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default();
                    for (j, v) in vals.iter().enumerate() {
                        if let Some(k) = idx(t0.saturating_add(j as i64 * fw)) {
                            sum[s][k] += *v as f64;
                            cnt[s][k] += 1;
                        }
                    }
                }
                Ok(())
            })?;
        }
        let lines = SeriesName::ALL
            .iter()
            .enumerate()
            .map(|(s, name)| SeriesLine {
                key: name.as_str().to_string(),
                values: (0..n)
                    .map(|k| (cnt[s][k] > 0).then(|| sum[s][k] / cnt[s][k] as f64))
                    .collect(),
            })
            .collect();
        let covered = cnt[0].iter().map(|c| u64::from(*c)).collect();
        Ok((lines, covered))
    }

    /// Sums over `[from, to)`: whole minutes inside the range from the
    /// 1 min tier, the ragged ends from the base tier. Both tiers are
    /// written in one transaction, so this equals the base tier's sum
    /// wherever the base tier still holds data, and reaches back as far as
    /// the 1 min tier where it no longer does.
    pub(crate) fn totals(&self, from: u64, to: u64) -> R<Totals> {
        let mut t = Totals {
            from_ns: from,
            to_ns: to,
            ..Totals::default()
        };
        if to <= from {
            return Ok(t);
        }
        let parts = self.range_parts(from, to)?;
        let mut dims: HashMap<(Dim, String), (u64, u64)> = HashMap::new();
        let mut ended: HashMap<String, u64> = HashMap::new();
        // Per series: fine bins, Σ x, Σ x², peak — pooled from each row's
        // mean and σ/μ (σ² + μ² is the row's mean square).
        let mut fine = [(0f64, 0f64, 0f64, 0f64); 3];
        let base_ns = self.base_width()?;
        let fine_ns = self.meta("fine_width_ns")?.unwrap_or(100_000_000).max(1);
        let per_base = (base_ns / fine_ns).max(1) as f64;
        for (tier, lo, hi) in parts {
            if lo >= hi {
                continue;
            }
            let (kb, kd, ke) = tier.kinds();
            let w = "start_ns >= ?1 AND start_ns < ?2";
            let p = [P::I(i(lo)), P::I(i(hi))];
            if let Some(sql) = self.union(kb, lo, hi, "bins, packets, bytes, flows_started", w)? {
                self.each(
                    &format!("SELECT sum(bins), sum(packets), sum(bytes), sum(flows_started) FROM ({sql})"),
                    &p,
                    |r| {
                        t.bins += u(r.int(0)?.unwrap_or(0));
                        t.packets += u(r.int(1)?.unwrap_or(0));
                        t.bytes += u(r.int(2)?.unwrap_or(0));
                        t.flows_started += u(r.int(3)?.unwrap_or(0));
                        Ok(())
                    },
                )?;
            }
            let cols = "bins, total_mean, total_cv, total_peak, tcp_mean, tcp_cv, tcp_peak, \
                        udp_mean, udp_cv, udp_peak";
            if let Some(sql) = self.union(kb, lo, hi, cols, w)? {
                self.each(&sql, &p, |r| {
                    let n = r.int(0)?.unwrap_or(1).max(1) as f64 * per_base;
                    for (s, acc) in fine.iter_mut().enumerate() {
                        let mean = r.float(1 + 3 * s)?.unwrap_or(0.0);
                        let cv = r.float(2 + 3 * s)?.unwrap_or(0.0);
                        let peak = r.float(3 + 3 * s)?.unwrap_or(0.0);
                        let sd = cv * mean;
                        acc.0 += n;
                        acc.1 += n * mean;
                        acc.2 += n * (sd * sd + mean * mean);
                        acc.3 = acc.3.max(peak);
                    }
                    Ok(())
                })?;
            }
            let dim_list = Dim::ALL
                .iter()
                .map(|d| format!("'{}'", d.as_str()))
                .collect::<Vec<_>>()
                .join(",");
            if let Some(sql) = self.union(
                kd,
                lo,
                hi,
                "dim, key, packets, bytes",
                &format!("dim IN ({dim_list}) AND {w}"),
            )? {
                self.each(
                    &format!(
                        "SELECT dim, key, sum(packets), sum(bytes) FROM ({sql}) GROUP BY dim, key"
                    ),
                    &p,
                    |r| {
                        let dim: String = r.text(0)?.unwrap_or_default();
                        if let Some(d) = Dim::parse(&dim) {
                            let e = dims.entry((d, r.text(1)?.unwrap_or_default())).or_default();
                            e.0 += u(r.int(2)?.unwrap_or(0));
                            e.1 += u(r.int(3)?.unwrap_or(0));
                        }
                        Ok(())
                    },
                )?;
            }
            if let Some(sql) = self.union(ke, lo, hi, "reason, flows", w)? {
                self.each(
                    &format!("SELECT reason, sum(flows) FROM ({sql}) GROUP BY reason"),
                    &p,
                    |r| {
                        *ended.entry(r.text(0)?.unwrap_or_default()).or_default() +=
                            u(r.int(1)?.unwrap_or(0));
                        Ok(())
                    },
                )?;
            }
        }
        t.by_dim = dims
            .into_iter()
            .map(|((d, k), (p, b))| (d, k, p, b))
            .collect();
        t.by_dim.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        t.flows_ended = ended.into_iter().collect();
        t.flows_ended.sort();
        t.fine = SeriesName::ALL
            .iter()
            .zip(fine)
            .map(|(name, (n, sum, sq, peak))| {
                let stats = (n > 0.0).then(|| {
                    let mean = sum / n;
                    let var = (sq / n - mean * mean).max(0.0);
                    FineStats {
                        fine_bins: n as u64,
                        mean,
                        cv: (mean > 0.0).then(|| var.sqrt() / mean),
                        peak,
                    }
                });
                (*name, stats)
            })
            .collect();
        Ok(t)
    }

    /// `[from, to)` split for sums: whole minutes from the 1 min tier, the
    /// ragged ends from the base tier (parts may be empty).
    fn range_parts(&self, from: u64, to: u64) -> R<Vec<(Tier, u64, u64)>> {
        let base = Tier::Base(self.base_width()?);
        let m0 = from.div_ceil(MINUTE_NS).saturating_mul(MINUTE_NS);
        let m1 = to / MINUTE_NS * MINUTE_NS;
        Ok(if base.width() < MINUTE_NS && m0 < m1 {
            vec![(base, from, m0), (Tier::Minute, m0, m1), (base, m1, to)]
        } else {
            vec![(base, from, to)]
        })
    }

    /// Totals of the packets matching `filter`, from the cross dimension
    /// (both tiers, as `totals`).
    pub(crate) fn totals_where(&self, from: u64, to: u64, filter: &[(Dim, String)]) -> R<Totals> {
        let want = cross_filter(filter)?;
        let mut t = Totals {
            from_ns: from,
            to_ns: to,
            ..Totals::default()
        };
        if to <= from {
            return Ok(t);
        }
        let parts = self.range_parts(from, to)?;
        let mut dims: HashMap<(Dim, String), (u64, u64)> = HashMap::new();
        for (tier, lo, hi) in parts {
            if lo >= hi {
                continue;
            }
            let (kb, kd, _) = tier.kinds();
            let w = "start_ns >= ?1 AND start_ns < ?2";
            let p = [P::I(i(lo)), P::I(i(hi))];
            if let Some(sql) = self.union(kb, lo, hi, "bins", w)? {
                self.each(&format!("SELECT sum(bins) FROM ({sql})"), &p, |r| {
                    t.bins += u(r.int(0)?.unwrap_or(0));
                    Ok(())
                })?;
            }
            if let Some(sql) = self.union(
                kd,
                lo,
                hi,
                "key, packets, bytes",
                &format!("dim = 'cross' AND {w}"),
            )? {
                self.each(
                    &format!("SELECT key, sum(packets), sum(bytes) FROM ({sql}) GROUP BY key"),
                    &p,
                    |r| {
                        let key: String = r.text(0)?.unwrap_or_default();
                        let Some(parts) = cross_parts(&key) else {
                            return Ok(());
                        };
                        if !want.iter().all(|(p, v)| parts[*p] == v.as_str()) {
                            return Ok(());
                        }
                        let (pk, by) = (u(r.int(1)?.unwrap_or(0)), u(r.int(2)?.unwrap_or(0)));
                        t.packets += pk;
                        t.bytes += by;
                        for (d, part) in CROSS_PARTS.iter().zip(parts) {
                            if part != "-" {
                                let e = dims.entry((*d, part.to_string())).or_default();
                                e.0 += pk;
                                e.1 += by;
                            }
                        }
                        Ok(())
                    },
                )?;
            }
        }
        t.by_dim = dims
            .into_iter()
            .map(|((d, k), (p, b))| (d, k, p, b))
            .collect();
        t.by_dim.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(t)
    }

    /// Windows whose start lies in `[from, to)`, oldest first.
    pub(crate) fn windows(&self, from: u64, to: u64) -> R<Vec<EvalWindow>> {
        let mut out = Vec::new();
        let cols = "start_ns, end_ns, hits, misses, unknown, pending, unlabelled, by_class";
        if let Some(sql) = self.union(
            Kind::Windows,
            from,
            to,
            cols,
            "start_ns >= ?1 AND start_ns < ?2",
        )? {
            self.each(&sql, &[P::I(i(from)), P::I(i(to))], |r| {
                let g = |k| r.int(k).map(|v| u(v.unwrap_or(0)));
                let by_class: Option<String> = r.text(7)?;
                out.push(EvalWindow {
                    start_ns: g(0)?,
                    end_ns: g(1)?,
                    hits: g(2)?,
                    misses: g(3)?,
                    unknown: g(4)?,
                    pending: g(5)?,
                    unlabelled: g(6)?,
                    by_class: by_class
                        .and_then(|s| serde_json::from_str::<Vec<ClassOutcome>>(&s).ok())
                        .unwrap_or_default(),
                    source: String::new(),
                });
                Ok(())
            })?;
        }
        out.sort_by_key(|w| w.start_ns);
        Ok(out)
    }

    /// Points of `series` whose window ends in `[from, to)`, oldest first.
    pub(crate) fn hurst(&self, series: SeriesName, from: u64, to: u64) -> R<Vec<HurstPoint>> {
        let mut out = Vec::new();
        let cols = "end_ns, window_bins, bin_ns, local_whittle, local_whittle_lo, \
                    local_whittle_hi, wavelet, wavelet_lo, wavelet_hi, burstiness, peak_to_mean, \
                    errors";
        if let Some(sql) = self.union(
            Kind::Hurst,
            from,
            to,
            cols,
            "series = ?3 AND end_ns >= ?1 AND end_ns < ?2",
        )? {
            self.each(
                &sql,
                &[P::I(i(from)), P::I(i(to)), P::S(series.as_str().into())],
                |r| {
                    let f = |k| r.float(k);
                    let pair = |a: Option<f64>, b: Option<f64>| a.zip(b);
                    let errors: Option<String> = r.text(11)?;
                    out.push(HurstPoint {
                        series,
                        end_ns: u(r.int(0)?.unwrap_or(0)),
                        window_bins: u(r.int(1)?.unwrap_or(0)),
                        bin_ns: u(r.int(2)?.unwrap_or(0)),
                        local_whittle: f(3)?,
                        local_whittle_ci: pair(f(4)?, f(5)?),
                        wavelet: f(6)?,
                        wavelet_ci: pair(f(7)?, f(8)?),
                        burstiness: f(9)?,
                        peak_to_mean: f(10)?,
                        errors: errors
                            .and_then(|s| serde_json::from_str(&s).ok())
                            .unwrap_or_default(),
                    });
                    Ok(())
                },
            )?;
        }
        out.sort_by_key(|p| p.end_ns);
        Ok(out)
    }

    /// Flows overlapping `[from, to)` (started before `to`, last packet at
    /// or after `from`) that match every filter. Flows are partitioned by
    /// start day, so the tables from `from − longest flow` are read.
    pub(crate) fn flows(&self, q: &FlowQuery) -> R<FlowPage> {
        let (from, to) = (q.from_ns, q.to_ns);
        if to <= from {
            return Ok(FlowPage {
                total: 0,
                flows: Vec::new(),
            });
        }
        let lo = from.saturating_sub(self.meta("max_flow_duration_ns")?.unwrap_or(0));
        // Only the filters asked for, as parameters ?4…: the same text for
        // every engine but for the two functions they name differently.
        let mut params = vec![P::I(i(lo)), P::I(i(to)), P::I(i(from))];
        let mut filters = "start_ns >= ?1 AND start_ns < ?2 AND end_ns >= ?3".to_string();
        let (instr, cat) = match self.e.dialect() {
            Dialect::Sqlite => ("instr", "'+' || coalesce(protocols, '') || '+'"),
            Dialect::ClickHouse => ("position", "concat('+', coalesce(protocols, ''), '+')"),
        };
        let mut add = |cond: String, p: P| {
            params.push(p);
            let k = params.len();
            filters.push_str(" AND ");
            filters.push_str(&cond.replace("?k", &format!("?{k}")));
        };
        if let Some(c) = &q.class {
            add("class = ?k".into(), P::S(c.clone()));
        }
        if let Some(a) = &q.app {
            // `+proto+` inside `+stun+dtls+rtp+`: one protocol, not a substring of one.
            add(
                format!(
                    "(app = ?k OR service = ?k OR {instr}({cat}, ?k) > 0 \
                     OR {instr}(lower(coalesce(server_name, '')), lower(?k)) > 0)"
                ),
                P::S(a.clone()),
            );
        }
        if let Some(a) = q.addr {
            add("(src = ?k OR dst = ?k)".into(), P::S(a.to_string()));
        }
        if let Some(port) = q.port {
            add(
                "(src_port = ?k OR dst_port = ?k)".into(),
                P::I(i64::from(port)),
            );
        }
        let filters = filters;
        let Some(sql) = self.union(
            Kind::Flows,
            lo,
            to,
            "start_ns, end_ns, packets, bytes, duration_ns, protocol, src, src_port, dst, \
             dst_port, row, ip_version, class, confidence, true_class, app, service, protocols, \
             end_reason",
            &filters,
        )?
        else {
            return Ok(FlowPage {
                total: 0,
                flows: Vec::new(),
            });
        };
        let mut total = 0u64;
        self.each(&format!("SELECT count(*) FROM ({sql})"), &params, |r| {
            total = u(r.int(0)?.unwrap_or(0));
            Ok(())
        })?;
        let col = match q.sort {
            FlowSort::Start => "start_ns",
            FlowSort::End => "end_ns",
            FlowSort::Packets => "packets",
            FlowSort::Bytes => "bytes",
            FlowSort::Duration => "duration_ns",
        };
        let dir = if q.descending { "DESC" } else { "ASC" };
        let mut flows = Vec::new();
        if q.limit > 0 {
            // The flow key breaks ties, so pages never overlap or skip.
            self.each(
                &format!(
                    "SELECT row, start_ns, end_ns, protocol, src, src_port, dst, dst_port, \
                     ip_version, class, confidence, true_class, app, service, protocols, \
                     end_reason FROM ({sql}) ORDER BY {col} {dir}, start_ns {dir}, protocol, \
                     src, src_port, dst, dst_port LIMIT {}, {}",
                    q.offset.min(i64::MAX as usize),
                    q.limit.min(i64::MAX as usize)
                ),
                &params,
                |r| {
                    let text: String = r.text(0)?.unwrap_or_default();
                    let cols = if text.starts_with("{\"v\":") {
                        FlowColumns {
                            start_ns: r.int(1)?.unwrap_or(0),
                            end_ns: r.int(2)?.unwrap_or(0),
                            protocol: r.int(3)?.unwrap_or(0),
                            src: r.text(4)?.unwrap_or_default(),
                            src_port: r.int(5)?.unwrap_or(0),
                            dst: r.text(6)?.unwrap_or_default(),
                            dst_port: r.int(7)?.unwrap_or(0),
                            ip_version: r.int(8)?,
                            class: r.text(9)?,
                            confidence: r.float(10)?,
                            true_class: r.text(11)?,
                            app: r.text(12)?,
                            service: r.text(13)?,
                            protocols: r.text(14)?,
                            end_reason: r.text(15)?,
                        }
                    } else {
                        FlowColumns::default()
                    };
                    flows.push(rebuild(&text, &cols).unwrap_or(serde_json::Value::Null));
                    Ok(())
                },
            )?;
        }
        Ok(FlowPage { total, flows })
    }

    /// The start of the first base bin at or after `t`: where the history
    /// goes on after a gap.
    pub(crate) fn first_bin_from(&self, t: u64) -> R<Option<u64>> {
        let base = Tier::Base(self.base_width()?);
        let (kind, _, _) = base.kinds();
        let Some((_, last)) = self.e.bounds(kind)? else {
            return Ok(None);
        };
        if last < t {
            return Ok(None);
        }
        let hi = last.saturating_add(1);
        let Some(sql) = self.union(kind, t, hi, "start_ns", "start_ns >= ?1 AND start_ns < ?2")?
        else {
            return Ok(None);
        };
        let mut first: Option<u64> = None;
        self.each(
            &format!("SELECT min(start_ns) FROM ({sql}) AS s"),
            &[P::I(i(t)), P::I(i(hi))],
            |r| {
                first = r.int(0)?.map(|v| v.max(0) as u64);
                Ok(())
            },
        )?;
        Ok(first)
    }

    /// The tiers of bins, finest first, with the data they hold. The fine
    /// tier is not listed: it serves only `FineBytes` (below 1 s), and is
    /// kept as long as the base tier by default.
    pub(crate) fn extent(&self) -> R<Extent> {
        let base = Tier::Base(self.base_width()?);
        let mut e = Extent {
            size_bytes: self.e.size_bytes(),
            ..Extent::default()
        };
        let opts = self.e.opts();
        let mut tiers = vec![(base, opts.bin_1s_retention_ns)];
        if base.width() < MINUTE_NS {
            tiers.push((Tier::Minute, opts.bin_1m_retention_ns));
        }
        for (tier, retention) in tiers {
            let (first, last) = self.tier_bounds(tier)?;
            e.first_ns = match (e.first_ns, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // The finest tier ends where the data ends; a coarser one's
            // last bin reaches past it (a minute begun is a minute long).
            e.last_ns = e.last_ns.or(last);
            e.tiers.push(TierExtent {
                width_ns: tier.width(),
                first_ns: first,
                last_ns: last,
                retention_ns: retention,
            });
        }
        Ok(e)
    }
}

/// The `top` keys by sum over the range, largest first (ties by name),
/// and `other` with the rest. A key literally named `other` (a service
/// outside the well-known list) joins the `other` line.
fn top_lines(
    by_key: HashMap<String, (f64, Vec<f64>)>,
    top: usize,
    n: usize,
    present: &[u32],
) -> Vec<SeriesLine> {
    let mut keys: Vec<(String, (f64, Vec<f64>))> = by_key.into_iter().collect();
    keys.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
    let mut lines = Vec::new();
    let mut rest: Option<Vec<f64>> = None;
    for (key, (_, vals)) in keys {
        if key != OTHER && lines.len() < top {
            lines.push((key, vals));
        } else {
            let r = rest.get_or_insert_with(|| vec![0.0; n]);
            for (a, v) in r.iter_mut().zip(vals) {
                *a += v;
            }
        }
    }
    if let Some(r) = rest {
        lines.push((OTHER.to_string(), r));
    }
    lines
        .into_iter()
        .map(|(key, vals)| SeriesLine {
            key,
            values: vals
                .into_iter()
                .enumerate()
                .map(|(k, v)| (present[k] > 0).then_some(v))
                .collect(),
        })
        .collect()
}

//! Durable history of the pipeline's outputs: an embedded SQLite store,
//! or a ClickHouse server ([`clickhouse`]) answering the same queries.
//!
//! [`Store::open`] opens (or creates) `trafficscope.db` in a directory;
//! [`Store::writer`] gives the one [`Writer`] (run it on its own thread
//! with [`spawn_writer`]); [`Store::reader`] and [`Store::reader_pool`]
//! give read-only connections that answer the server's [`History`] queries.
//!
//! Modules, one job each:
//! - [`schema`]: recognising, creating and opening the file; `meta`.
//! - [`partition`]: day tables, their DDL, the catalogue, retention drops, views.
//! - [`write`]: one batch in one transaction, the 1 min rollup, retention and cap.
//! - [`writer_loop`]: the service's writer thread (batching, failing disk, drops).
//! - [`read`]: queries by time range.
//! - [`flow_row`]: a flow's compact `row` and the API's JSON rebuilt from it.
//! - [`query`]: the engine-neutral [`History`] trait and its types.
//!
//! The schema is described in `schema`'s documentation and in `SCHEMA.md`.

pub mod clickhouse;
pub mod flow_row;
pub mod partition;
pub mod query;
pub mod read;
pub mod schema;
pub mod stats;
pub mod summed_hurst;
pub mod time;
pub mod write;
pub mod writer_loop;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

pub use query::{
    Extent, FineStats, FlowPage, FlowQuery, FlowSort, History, Metric, Series, SeriesLine,
    SeriesQuery, TierExtent, Totals,
};
pub use read::{Reader, ReaderPool};
pub use stats::StoreStats;
pub use summed_hurst::SummedHurst;

/// How far one source's durable history reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceExtent {
    /// Start of its oldest bin held, ns.
    pub bins_start_ns: u64,
    /// End of its newest bin and of its newest evaluation window, ns.
    pub bins_end_ns: u64,
    pub windows_end_ns: u64,
    /// Its newest bin is its last: the capture node ended the substream.
    pub ended: bool,
}

/// Source name → its extent.
pub type SourceExtents = std::collections::BTreeMap<String, SourceExtent>;
pub use write::Writer;
pub use writer_loop::{spawn_writer, OnWritten, OutputSink, WriterOptions, WriterSummary};

use crate::partition::{Catalog, Kind};
use crate::time::{human_duration, iso};

/// Why the store could not do what was asked. Messages name the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory or database is not a trafficscope store, or has a newer schema.
    #[error("{0}")]
    Incompatible(String),
    /// Input/output or engine failure (disk full, permissions, corruption).
    #[error("{0}")]
    Io(String),
    /// The request cannot be answered as asked (a step that is not a
    /// multiple of any tier, a dimension for a total-only metric): the
    /// caller's mistake, not the store's (HTTP 400, not 500).
    #[error("{0}")]
    Query(String),
}

/// How long each kind of history is kept, counted back from the newest
/// data held (so a replayed capture from years ago is kept, not dropped at
/// once), and an optional bound on the file. Durations in ns, like every
/// time in trafficscope.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOptions {
    /// Base-tier bins (1 s): per-dimension detail at full resolution.
    pub bin_1s_retention_ns: u64,
    /// 1 min bins.
    pub bin_1m_retention_ns: u64,
    /// The fine (0.1 s) series; `None`: as long as the 1 s bins.
    pub fine_retention_ns: Option<u64>,
    /// Finished flows.
    pub flow_retention_ns: u64,
    /// Evaluation windows.
    pub window_retention_ns: u64,
    /// Hurst points.
    pub hurst_retention_ns: u64,
    /// Upper bound on the pages in use, bytes: the oldest partitions go
    /// first (1 s and fine, then flows, then the rest) until it holds.
    /// The WAL (up to 64 MB after checkpoints) comes on top.
    pub size_cap_bytes: Option<u64>,
    /// How long a write waits for a lock held by another connection (a
    /// `sqlite3` user's open transaction) before it fails and is retried.
    pub busy_timeout_ns: u64,
}

const HOUR_NS: u64 = 3600 * time::SECOND_NS;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            bin_1s_retention_ns: 48 * HOUR_NS,
            bin_1m_retention_ns: 90 * time::DAY_NS,
            fine_retention_ns: None,
            flow_retention_ns: 7 * time::DAY_NS,
            window_retention_ns: 90 * time::DAY_NS,
            hurst_retention_ns: 90 * time::DAY_NS,
            size_cap_bytes: None,
            busy_timeout_ns: 5 * time::SECOND_NS,
        }
    }
}

impl StoreOptions {
    pub(crate) fn busy_timeout(&self) -> Duration {
        Duration::from_nanos(self.busy_timeout_ns)
    }
}

/// What [`Store::open`] found.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct OpenReport {
    /// The database file.
    pub path: PathBuf,
    /// The store existed (false: created now).
    pub existed: bool,
    /// End of the last committed bin, ns: history continues from here.
    pub last_bin_end_ns: Option<u64>,
    /// Newest data time held (bins, windows, Hurst points, flows), ns.
    pub newest_ns: Option<u64>,
    /// Rows held.
    pub bins_1s: u64,
    pub bins_1m: u64,
    pub windows: u64,
    pub hurst: u64,
    pub flows: u64,
    /// Day tables.
    pub partitions: u64,
    /// Database and WAL, bytes.
    pub size_bytes: u64,
}

impl OpenReport {
    /// One line for the service's start, naming the file: `store PATH: …`.
    pub fn summary(&self) -> String {
        format!("store {}: {self}", self.path.display())
    }
}

/// What the store holds and where history continues (without the path):
/// `created`, or `2 days of 1 s bins, …; history continues from
/// 2024-01-02T03:04:05.000Z (at most the last uncommitted second was lost)`.
impl std::fmt::Display for OpenReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.existed {
            return write!(f, "created");
        }
        let Some(end) = self.last_bin_end_ns else {
            return write!(f, "no bins yet ({} flows)", self.flows);
        };
        write!(
            f,
            "{} of 1 s bins, {} of 1 min bins, {} flows, {} windows, {} Hurst \
             points ({:.1} MB); history continues from {} (at most the last uncommitted second \
             was lost)",
            human_duration(self.bins_1s * time::SECOND_NS),
            human_duration(self.bins_1m * time::MINUTE_NS),
            self.flows,
            self.windows,
            self.hurst,
            self.size_bytes as f64 / 1e6,
            iso(end)
        )
    }
}

/// An open store directory. Holds the directory's lock: one service per store.
pub struct Store {
    path: PathBuf,
    opts: StoreOptions,
    stats: Arc<StoreStats>,
    /// The writer connection opened (and checked) by `open`, until
    /// [`Store::writer`] takes it.
    writer_conn: Mutex<Option<Connection>>,
    _lock: File,
}

impl Store {
    /// Opens the store in `dir` (created with mode 0700 when missing), or
    /// creates it. Refuses, without touching it, a `trafficscope.db` that
    /// is not ours or has a newer schema ([`StoreError::Incompatible`]),
    /// and a store another process has open ([`StoreError::Io`]).
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store, OpenReport), StoreError> {
        schema::ensure_dir(dir)?;
        let lock_path = dir.join(schema::LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", lock_path.display())))?;
        if let Err(e) = lock.try_lock() {
            return Err(StoreError::Io(match e {
                std::fs::TryLockError::WouldBlock => format!(
                    "{} is in use by another trafficscope process; stop it, or pass another \
                     store directory",
                    dir.display()
                ),
                std::fs::TryLockError::Error(e) => {
                    format!("cannot lock {}: {e}", lock_path.display())
                }
            }));
        }
        let path = dir.join(schema::DB_FILE);
        let (conn, existed) = schema::open_writer(&path, opts.busy_timeout())?;
        let report =
            open_report(&conn, &path, existed).map_err(|e| schema::io(&path, "cannot read", e))?;
        let stats = Arc::new(StoreStats::default());
        stats
            .size_bytes
            .store(report.size_bytes, std::sync::atomic::Ordering::Relaxed);
        Ok((
            Store {
                path,
                opts,
                stats,
                writer_conn: Mutex::new(Some(conn)),
                _lock: lock,
            },
            report,
        ))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// The counters the writer updates (pass them to [`spawn_writer`]).
    pub fn stats(&self) -> Arc<StoreStats> {
        self.stats.clone()
    }

    /// The writer (one per store). The first call gets the connection
    /// `open` checked; a later one opens another.
    pub fn writer(&self) -> Result<Writer, StoreError> {
        let taken = self
            .writer_conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let conn = match taken {
            Some(c) => c,
            None => schema::open_writer(&self.path, self.opts.busy_timeout())?.0,
        };
        Ok(Writer::new(
            self.path.clone(),
            conn,
            self.opts.clone(),
            self.stats.clone(),
        ))
    }

    /// How far each source's durable history reaches (see
    /// [`SourceExtent`]). An analysis node that replays a partition from
    /// its committed offset skips what ends at or before these (already
    /// stored whole).
    pub fn source_extents(&self) -> Result<SourceExtents, StoreError> {
        let conn = schema::open_reader(&self.path)?;
        let read = || -> rusqlite::Result<SourceExtents> {
            let cat = Catalog::load(&conn)?;
            let mut out = SourceExtents::new();
            for (kind, slot) in [(Kind::SrcBins, 0), (Kind::SrcWindows, 1)] {
                for d in cat.days(kind) {
                    let t = &cat.parts[&(kind, d)];
                    // SQLite takes the bare columns from the row with the
                    // largest start: the newest bin's width and end mark.
                    let mut st = conn.prepare(&if slot == 0 {
                        format!(
                            "SELECT source, max(start_ns), json_extract(row, '$.width_ns'),
                                json_extract(row, '$.source_ended'), min(start_ns)
                             FROM {t} GROUP BY source"
                        )
                    } else {
                        format!(
                            "SELECT source, max(start_ns), 0, 0,
                                max(json_extract(row, '$.end_ns')) FROM {t} GROUP BY source"
                        )
                    })?;
                    let mut rows = st.query([])?;
                    while let Some(r) = rows.next()? {
                        let source: String = r.get(0)?;
                        let start = r.get::<_, i64>(1)?.max(0) as u64;
                        let e = out.entry(source).or_default();
                        if slot == 0 {
                            let end =
                                start + r.get::<_, Option<i64>>(2)?.unwrap_or(0).max(0) as u64;
                            if end > e.bins_end_ns {
                                e.bins_end_ns = end;
                                e.ended = r.get::<_, Option<i64>>(3)?.unwrap_or(0) != 0;
                            }
                            let first = r.get::<_, Option<i64>>(4)?.unwrap_or(0).max(0) as u64;
                            if e.bins_start_ns == 0 || first < e.bins_start_ns {
                                e.bins_start_ns = first;
                            }
                        } else {
                            let end = r.get::<_, Option<i64>>(4)?.unwrap_or(0).max(0) as u64;
                            e.windows_end_ns = e.windows_end_ns.max(end);
                        }
                    }
                }
            }
            Ok(out)
        };
        read().map_err(|e| schema::io(&self.path, "cannot read", e))
    }

    /// A read-only connection of its own.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Reader::open(&self.path, self.opts.clone())
    }

    /// Readers for a server: a [`History`] that threads share; keeps up to
    /// 4 idle connections (opened when first needed).
    pub fn reader_pool(&self) -> ReaderPool {
        ReaderPool::new(&self.path, self.opts.clone(), 4)
    }

    /// [`Store::reader_pool`], with one connection opened now so that a
    /// store that cannot be read fails here rather than at the first query.
    pub fn history(&self) -> Result<ReaderPool, StoreError> {
        let pool = self.reader_pool();
        pool.warm()?;
        Ok(pool)
    }
}

/// Reads the store in `dir` without opening it for writing: no lock taken
/// (a running service may hold it), nothing created or changed. For tests
/// and tools that inspect a store. Refuses what [`Store::open`] refuses.
pub fn open_history(dir: &Path) -> Result<ReaderPool, StoreError> {
    let path = dir.join(schema::DB_FILE);
    schema::check_readable(&path)?;
    let pool = ReaderPool::new(&path, StoreOptions::default(), 4);
    pool.warm()?;
    Ok(pool)
}

fn open_report(conn: &Connection, path: &Path, existed: bool) -> rusqlite::Result<OpenReport> {
    let cat = Catalog::load(conn)?;
    let count = |kind: Kind| -> rusqlite::Result<u64> {
        let mut n = 0;
        for d in cat.days(kind) {
            let t = &cat.parts[&(kind, d)];
            n += conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| {
                r.get::<_, i64>(0)
            })? as u64;
        }
        Ok(n)
    };
    // Base bins, counted from their minutes: each 1 min row knows how many
    // base bins it holds, and a day of the base tier is held or dropped
    // whole; 1/60 of the rows to read, which matters at every start.
    let bins_1s = {
        let mut n = 0;
        for d in cat.days(Kind::Bins1s) {
            n += match cat.parts.get(&(Kind::Bins1m, d)) {
                Some(t) => conn.query_row(
                    &format!("SELECT coalesce(sum(bins), 0) FROM {t}"),
                    [],
                    |r| r.get::<_, i64>(0),
                )?,
                None => conn.query_row(
                    &format!("SELECT count(*) FROM {}", cat.parts[&(Kind::Bins1s, d)]),
                    [],
                    |r| r.get::<_, i64>(0),
                )?,
            } as u64;
        }
        n
    };
    let meta = |k| schema::get_meta(conn, k).map(|v| v.map(|v| v.max(0) as u64));
    Ok(OpenReport {
        path: path.to_path_buf(),
        existed,
        last_bin_end_ns: meta("last_bin_end_ns")?,
        newest_ns: meta("newest_ns")?.filter(|n| *n > 0),
        bins_1s,
        bins_1m: count(Kind::Bins1m)?,
        windows: count(Kind::Windows)?,
        hurst: count(Kind::Hurst)?,
        flows: count(Kind::Flows)?,
        partitions: cat.parts.len() as u64,
        size_bytes: schema::file_size(path),
    })
}

//! Day partitions: which tables exist (the `partitions` catalogue and its
//! in-memory copy), their DDL, creating them on first write, dropping them
//! whole for retention and the size cap, and the `sqlite3`-friendly views
//! that join each kind's days.
//!
//! Every kind of row lives in one table per UTC day, named
//! `<kind>_YYYYMMDD`. Retention is then `DROP TABLE` of a whole day: no
//! `DELETE` scan, no index churn, and the freed pages go back to the file
//! through `PRAGMA incremental_vacuum`.

use std::collections::{BTreeMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};

use crate::time::{day_start_ns, ymd, DAY_NS};

/// A kind of partitioned table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// One row per closed bin of the base tier (the pipeline's bins, 1 s by default).
    Bins1s,
    /// Packets and bytes per dimension key of the base tier (long format).
    Dims1s,
    /// Flows ended per reason of the base tier.
    Ended1s,
    /// The same three for the 1 min tier (rolled up from the base tier).
    Bins1m,
    Dims1m,
    Ended1m,
    /// The fine (0.1 s) byte series, one row per base bin.
    Fine,
    /// Finished flows, by start day.
    Flows,
    /// Evaluation windows, by start day.
    Windows,
    /// Hurst points, by end day.
    Hurst,
    /// Each source's own base-tier bin when several sources feed the store
    /// (analysis nodes reading Kafka partitions): the bin as JSON. The
    /// `bins_1s` row of that time is their sum.
    SrcBins,
    /// Each source's own evaluation window (the `windows` row is their sum).
    SrcWindows,
}

/// Which retention setting governs a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Base,
    Minute,
    Fine,
    Flows,
    Windows,
    Hurst,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Bins1s,
        Kind::Dims1s,
        Kind::Ended1s,
        Kind::Bins1m,
        Kind::Dims1m,
        Kind::Ended1m,
        Kind::Fine,
        Kind::Flows,
        Kind::Windows,
        Kind::Hurst,
        Kind::SrcBins,
        Kind::SrcWindows,
    ];

    /// Table name prefix; also the name of the view joining its days.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Bins1s => "bins_1s",
            Kind::Dims1s => "dims_1s",
            Kind::Ended1s => "ended_1s",
            Kind::Bins1m => "bins_1m",
            Kind::Dims1m => "dims_1m",
            Kind::Ended1m => "ended_1m",
            Kind::Fine => "fine",
            Kind::Flows => "flows",
            Kind::Windows => "windows",
            Kind::Hurst => "hurst",
            Kind::SrcBins => "src_bins",
            Kind::SrcWindows => "src_windows",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.prefix() == s)
    }

    /// The table holding `day`.
    pub fn table(self, day: i64) -> String {
        format!("{}_{}", self.prefix(), ymd(day))
    }

    /// The time column that decides the partition.
    pub fn time_column(self) -> &'static str {
        match self {
            Kind::Hurst => "end_ns",
            _ => "start_ns",
        }
    }

    pub fn retention(self) -> Retention {
        match self {
            Kind::Bins1s | Kind::Dims1s | Kind::Ended1s | Kind::SrcBins => Retention::Base,
            Kind::Bins1m | Kind::Dims1m | Kind::Ended1m => Retention::Minute,
            Kind::Fine => Retention::Fine,
            Kind::Flows => Retention::Flows,
            Kind::Windows | Kind::SrcWindows => Retention::Windows,
            Kind::Hurst => Retention::Hurst,
        }
    }

    /// Order in which the size cap gives kinds up: the base tier and the
    /// fine series first (the 1 min tier still answers for those times),
    /// then flows, then the summaries kept longest.
    pub fn cap_group(self) -> u8 {
        match self.retention() {
            Retention::Base | Retention::Fine => 0,
            Retention::Flows => 1,
            Retention::Minute | Retention::Windows | Retention::Hurst => 2,
        }
    }

    /// `CREATE TABLE` of one day. Only key columns are `NOT NULL`: a value
    /// SQLite cannot store (a NaN becomes NULL) must never fail a commit,
    /// or one odd output would block the store.
    pub fn ddl(self, t: &str) -> String {
        match self {
            Kind::Bins1s | Kind::Bins1m => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    start_ns INTEGER PRIMARY KEY,
                    width_ns INTEGER NOT NULL,
                    bins INTEGER,
                    packets INTEGER,
                    bytes INTEGER,
                    flows_started INTEGER,
                    flows_active REAL,
                    fine_width_ns INTEGER,
                    total_mean REAL, total_cv REAL, total_peak REAL,
                    tcp_mean REAL, tcp_cv REAL, tcp_peak REAL,
                    udp_mean REAL, udp_cv REAL, udp_peak REAL)"
            ),
            Kind::Dims1s | Kind::Dims1m => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    dim TEXT NOT NULL,
                    start_ns INTEGER NOT NULL,
                    key TEXT NOT NULL,
                    packets INTEGER,
                    bytes INTEGER,
                    PRIMARY KEY (dim, start_ns, key)) WITHOUT ROWID"
            ),
            Kind::Ended1s | Kind::Ended1m => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    start_ns INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    flows INTEGER,
                    PRIMARY KEY (start_ns, reason)) WITHOUT ROWID"
            ),
            Kind::Fine => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    start_ns INTEGER PRIMARY KEY,
                    fine_width_ns INTEGER NOT NULL,
                    total TEXT, tcp TEXT, udp TEXT)"
            ),
            Kind::Flows => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    start_ns INTEGER NOT NULL,
                    end_ns INTEGER NOT NULL,
                    protocol INTEGER NOT NULL,
                    src TEXT NOT NULL,
                    src_port INTEGER NOT NULL,
                    dst TEXT NOT NULL,
                    dst_port INTEGER NOT NULL,
                    ip_version INTEGER,
                    packets INTEGER,
                    bytes INTEGER,
                    duration_ns INTEGER,
                    class TEXT,
                    confidence REAL,
                    true_class TEXT,
                    app TEXT,
                    service TEXT,
                    protocols TEXT,
                    server_name TEXT,
                    end_reason TEXT,
                    row TEXT NOT NULL,
                    UNIQUE (start_ns, protocol, src, src_port, dst, dst_port))"
            ),
            Kind::Windows => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    start_ns INTEGER PRIMARY KEY,
                    end_ns INTEGER NOT NULL,
                    hits INTEGER, misses INTEGER, unknown INTEGER, pending INTEGER,
                    unlabelled INTEGER,
                    accuracy REAL,
                    by_class TEXT)"
            ),
            Kind::Hurst => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    series TEXT NOT NULL,
                    end_ns INTEGER NOT NULL,
                    window_bins INTEGER,
                    bin_ns INTEGER,
                    local_whittle REAL, local_whittle_lo REAL, local_whittle_hi REAL,
                    wavelet REAL, wavelet_lo REAL, wavelet_hi REAL,
                    burstiness REAL,
                    peak_to_mean REAL,
                    errors TEXT,
                    PRIMARY KEY (series, end_ns)) WITHOUT ROWID"
            ),
            Kind::SrcBins | Kind::SrcWindows => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    start_ns INTEGER NOT NULL,
                    source TEXT NOT NULL,
                    row TEXT NOT NULL,
                    PRIMARY KEY (start_ns, source)) WITHOUT ROWID"
            ),
        }
    }
}

/// DDL of the catalogue (created with the store).
pub const CATALOGUE_DDL: &str = "CREATE TABLE IF NOT EXISTS partitions (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    day INTEGER NOT NULL,
    date TEXT NOT NULL,
    created_unix_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS partitions_kind_day ON partitions (kind, day);";

/// The writer's copy of the catalogue: (kind, day) → table name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    pub parts: BTreeMap<(Kind, i64), String>,
}

impl Catalog {
    pub fn load(conn: &Connection) -> rusqlite::Result<Catalog> {
        let mut stmt = conn.prepare("SELECT kind, day, name FROM partitions")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut parts = BTreeMap::new();
        for row in rows {
            let (kind, day, name) = row?;
            // A kind this version does not know (a later minor change)
            // is left alone: never dropped, never read.
            if let Some(k) = Kind::parse(&kind) {
                parts.insert((k, day), name);
            }
        }
        Ok(Catalog { parts })
    }

    /// The table of `kind` for `day`, created (and catalogued) if missing.
    /// Returns whether it was created.
    pub fn ensure(
        &mut self,
        conn: &Connection,
        kind: Kind,
        day: i64,
        now_unix_ns: u64,
    ) -> rusqlite::Result<(String, bool)> {
        if let Some(t) = self.parts.get(&(kind, day)) {
            return Ok((t.clone(), false));
        }
        let t = kind.table(day);
        conn.execute_batch(&kind.ddl(&t))?;
        let (y, m, d) = crate::time::civil(day);
        conn.execute(
            "INSERT OR REPLACE INTO partitions (name, kind, day, date, created_unix_ns)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                t,
                kind.prefix(),
                day,
                format!("{y:04}-{m:02}-{d:02}"),
                now_unix_ns as i64
            ],
        )?;
        self.parts.insert((kind, day), t.clone());
        Ok((t, true))
    }

    /// Drops one day of one kind: the table and its catalogue row.
    pub fn drop_partition(
        &mut self,
        conn: &Connection,
        kind: Kind,
        day: i64,
    ) -> rusqlite::Result<()> {
        if let Some(t) = self.parts.remove(&(kind, day)) {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {t}"))?;
            conn.execute("DELETE FROM partitions WHERE name = ?1", [&t])?;
        }
        Ok(())
    }

    /// Days held of `kind`, oldest first.
    pub fn days(&self, kind: Kind) -> Vec<i64> {
        self.parts
            .range((kind, i64::MIN)..=(kind, i64::MAX))
            .map(|((_, d), _)| *d)
            .collect()
    }

    /// Partitions that retention drops: each whole day older than
    /// `newest − retention` of its kind, except those in `keep` (written by
    /// the current transaction: a replay of old data must finish its
    /// minutes before their seconds go).
    pub fn expired(
        &self,
        newest_ns: u64,
        retention_ns: impl Fn(Retention) -> u64,
        keep: &HashSet<(Kind, i64)>,
    ) -> Vec<(Kind, i64)> {
        self.parts
            .keys()
            .filter(|(k, d)| {
                let horizon = newest_ns.saturating_sub(retention_ns(k.retention()));
                day_start_ns(*d).saturating_add(DAY_NS) <= horizon && !keep.contains(&(*k, *d))
            })
            .copied()
            .collect()
    }

    /// The next day to give up under the size cap: the oldest day of the
    /// lowest cap group that still has a day not in `keep`; all of that
    /// group's kinds for that day.
    pub fn next_for_cap(&self, keep: &HashSet<(Kind, i64)>) -> Option<Vec<(Kind, i64)>> {
        for group in 0..=2u8 {
            let day = self
                .parts
                .keys()
                .filter(|(k, d)| k.cap_group() == group && !keep.contains(&(*k, *d)))
                .map(|(_, d)| *d)
                .min();
            if let Some(day) = day {
                return Some(
                    self.parts
                        .keys()
                        .filter(|(k, d)| {
                            k.cap_group() == group && *d == day && !keep.contains(&(*k, *d))
                        })
                        .copied()
                        .collect(),
                );
            }
        }
        None
    }
}

/// Tables of `kind` whose day overlaps `[from_ns, to_ns)`, oldest first,
/// read from the catalogue (readers have no copy of their own: they see
/// the catalogue of their snapshot).
pub fn tables_in(
    conn: &Connection,
    kind: Kind,
    from_ns: u64,
    to_ns: u64,
) -> rusqlite::Result<Vec<String>> {
    if to_ns <= from_ns {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM partitions WHERE kind = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day",
    )?;
    let rows = stmt.query_map(
        params![
            kind.prefix(),
            crate::time::day_of(from_ns),
            crate::time::day_of(to_ns - 1)
        ],
        |r| r.get::<_, String>(0),
    )?;
    rows.collect()
}

/// Oldest and newest table of `kind`.
pub fn oldest_newest(conn: &Connection, kind: Kind) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached(
        "SELECT (SELECT name FROM partitions WHERE kind = ?1 ORDER BY day LIMIT 1),
                (SELECT name FROM partitions WHERE kind = ?1 ORDER BY day DESC LIMIT 1)",
    )?
    .query_row([kind.prefix()], |r| {
        Ok(
            match (
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
            ) {
                (Some(a), Some(b)) => Some((a, b)),
                _ => None,
            },
        )
    })
    .optional()
    .map(Option::flatten)
}

/// Terms of one compound `SELECT` at most: SQLite refuses more than 500
/// (`SQLITE_MAX_COMPOUND_SELECT`), and a long retention can hold more
/// day tables than that.
const MAX_COMPOUND: usize = 400;

/// `a UNION ALL b UNION ALL …`, nested in sub-selects of at most
/// [`MAX_COMPOUND`] terms each so that any number of days can be joined.
pub fn union_all(mut parts: Vec<String>) -> String {
    while parts.len() > MAX_COMPOUND {
        parts = parts
            .chunks(MAX_COMPOUND)
            .map(|c| format!("SELECT * FROM ({})", c.join(" UNION ALL ")))
            .collect();
    }
    parts.join(" UNION ALL ")
}

/// Recreates the view of each kind: `SELECT time, * FROM` every day's table,
/// with `time` the RFC 3339 text of the partition column, so that
/// `sqlite3 trafficscope.db "SELECT * FROM bins_1m ORDER BY start_ns DESC LIMIT 5"`
/// works without knowing the partitions. A kind without tables has no view.
pub fn rebuild_views(conn: &Connection, catalog: &Catalog) -> rusqlite::Result<()> {
    for kind in Kind::ALL {
        let view = kind.prefix();
        conn.execute_batch(&format!("DROP VIEW IF EXISTS {view}"))?;
        let days = catalog.days(kind);
        if days.is_empty() {
            continue;
        }
        let col = kind.time_column();
        let parts: Vec<String> = days
            .iter()
            .map(|d| {
                format!(
                    "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', {col} / 1000000000.0, 'unixepoch') \
                     AS time, * FROM {}",
                    catalog.parts[&(kind, *d)]
                )
            })
            .collect();
        conn.execute_batch(&format!("CREATE VIEW {view} AS {}", union_all(parts)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_of_more_days_than_sqlite_joins_at_once_still_work() {
        let c = Connection::open_in_memory().unwrap();
        let mut parts = Vec::new();
        for d in 0..1234 {
            c.execute_batch(&format!(
                "CREATE TABLE t{d} (x INTEGER); INSERT INTO t{d} VALUES ({d});"
            ))
            .unwrap();
            parts.push(format!("SELECT x FROM t{d} WHERE x >= ?1"));
        }
        let plain = format!("SELECT count(*) FROM ({})", parts.join(" UNION ALL "));
        assert!(
            c.prepare(&plain).is_err(),
            "SQLite's limit is lower than 1234 terms"
        );
        let sql = format!("SELECT count(*), sum(x) FROM ({})", union_all(parts));
        let (n, sum): (i64, i64) = c
            .query_row(&sql, [0], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((n, sum), (1234, 1233 * 1234 / 2));
    }

    #[test]
    fn retention_and_the_cap_pick_whole_days_in_order() {
        let mut cat = Catalog::default();
        for d in 10..14 {
            for k in Kind::ALL {
                cat.parts.insert((k, d), k.table(d));
            }
        }
        let keep: HashSet<(Kind, i64)> = Kind::ALL.iter().map(|k| (*k, 13)).collect();
        // Newest data at the end of day 13; 2 days for everything.
        let newest = day_start_ns(14);
        let expired = cat.expired(newest, |_| 2 * DAY_NS, &keep);
        assert_eq!(expired.len(), 2 * Kind::ALL.len());
        assert!(expired.iter().all(|(_, d)| *d == 10 || *d == 11));
        // The cap: base and fine of day 10 first, then of 11, 12; then flows.
        let first = cat.next_for_cap(&keep).unwrap();
        let mut kinds: Vec<Kind> = first.iter().map(|(k, _)| *k).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                Kind::Bins1s,
                Kind::Dims1s,
                Kind::Ended1s,
                Kind::Fine,
                Kind::SrcBins
            ]
        );
        assert!(first.iter().all(|(_, d)| *d == 10));
        for d in 10..13 {
            for (k, day) in cat.next_for_cap(&keep).unwrap() {
                assert_eq!(day, d);
                cat.parts.remove(&(k, day));
            }
        }
        assert_eq!(cat.next_for_cap(&keep).unwrap(), vec![(Kind::Flows, 10)]);
    }
}

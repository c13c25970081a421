//! The ClickHouse store: the same history as the embedded store (bins of
//! both tiers, dimensions, end reasons, the fine series, evaluation
//! windows, Hurst points, flows, per-source parts) in MergeTree tables of
//! one database, partitioned by UTC day, read through the same queries
//! ([`crate::read`]) so the API answers alike.
//!
//! - [`ClickHouseUrl`]: `clickhouse://[USER@]HOST:PORT/DB` (the HTTP port);
//!   the password comes from `TRAFFICSCOPE_CLICKHOUSE_PASSWORD` or the file
//!   named by `TRAFFICSCOPE_CLICKHOUSE_PASSWORD_FILE`, and is never printed.
//! - [`ClickHouse::open`]: checks the server, creates the database and the
//!   tables (schema version in `meta`), and gives the [`ChWriter`] and the
//!   [`ChHistory`].
//!
//! Every table is a `ReplacingMergeTree(ver)` keyed like the embedded
//! store's primary keys, and reads use `FINAL`: writing a row again (a
//! replayed spool batch, a crash between an insert and its offset commit)
//! replaces it instead of counting it twice. Per-source parts are summed at
//! write time, as in the embedded store; the merged row's `ver` is the
//! number of parts it sums, so a merge from fewer parts that lands late
//! never replaces a fuller one. The 1 min tier is rolled up by the server
//! (`INSERT … SELECT … GROUP BY`) from the base tier, `ver` the sum of the
//! base rows' versions. Only SQL that ClickHouse 18.16 and current servers
//! share is used (no TTL, no lightweight deletes): retention drops whole day
//! partitions.

mod read;
mod write;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use read::ChHistory;
pub use write::{ChWriter, SPOOL_DIR};

use crate::partition::Kind;
use crate::time::iso;
use crate::{StoreError, StoreOptions};

/// Version of the tables this build creates and reads (`meta.schema_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Where the ClickHouse store lives. `Display` never shows the password.
#[derive(Clone, PartialEq)]
pub struct ClickHouseUrl {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: Option<String>,
    password: Option<String>,
}

impl std::fmt::Display for ClickHouseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "clickhouse://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}:{}/{}", self.host, self.port, self.database)
    }
}

impl std::fmt::Debug for ClickHouseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl ClickHouseUrl {
    /// Parses `clickhouse://[USER@]HOST[:PORT]/DB` (port 8123 by default).
    /// A password in the URL is refused: it would show in `ps` and shell
    /// history; `TRAFFICSCOPE_CLICKHOUSE_PASSWORD` (or `…_FILE`) gives it.
    pub fn parse(s: &str) -> Result<ClickHouseUrl, String> {
        let usage = "expected clickhouse://[USER@]HOST[:PORT]/DATABASE (the HTTP port, 8123 by \
                     default)";
        let rest = s
            .strip_prefix("clickhouse://")
            .ok_or_else(|| format!("{s:?}: {usage}"))?;
        let (auth_host, db) = rest
            .split_once('/')
            .ok_or_else(|| format!("{s:?} names no database: {usage}"))?;
        let (user, hostport) = match auth_host.rsplit_once('@') {
            Some((u, h)) => {
                if u.contains(':') {
                    return Err(format!(
                        "a password in the store URL would be visible to every user of this \
                         machine: put it in TRAFFICSCOPE_CLICKHOUSE_PASSWORD or a file named by \
                         TRAFFICSCOPE_CLICKHOUSE_PASSWORD_FILE; {usage}"
                    ));
                }
                (Some(u.to_string()), h)
            }
            None => (None, auth_host),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("{s:?}: port {p:?} is not a number; {usage}"))?,
            ),
            None => (hostport.to_string(), 8123),
        };
        let ok_name =
            |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if host.is_empty() {
            return Err(format!("{s:?} names no host: {usage}"));
        }
        if !ok_name(db) {
            return Err(format!(
                "{s:?}: the database name {db:?} must be letters, digits and _ only"
            ));
        }
        Ok(ClickHouseUrl {
            host,
            port,
            database: db.to_string(),
            user,
            password: None,
        })
    }

    /// Takes the password from the environment (or the file it names).
    pub fn with_password_from_env(mut self) -> Result<ClickHouseUrl, String> {
        if let Ok(p) = std::env::var("TRAFFICSCOPE_CLICKHOUSE_PASSWORD") {
            self.password = Some(p);
        } else if let Ok(f) = std::env::var("TRAFFICSCOPE_CLICKHOUSE_PASSWORD_FILE") {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("cannot read the ClickHouse password file {f}: {e}"))?;
            self.password = Some(text.trim_end_matches(['\n', '\r']).to_string());
        }
        Ok(self)
    }
}

/// Why a request to the server failed.
#[derive(Debug)]
pub(crate) enum ChError {
    /// No answer: refused, reset, timed out. Worth retrying.
    Unreachable(String),
    /// The server answered with an error.
    Server(u16, String),
}

impl std::fmt::Display for ChError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChError::Unreachable(m) => write!(f, "unreachable ({m})"),
            ChError::Server(code, m) => write!(f, "HTTP {code}: {m}"),
        }
    }
}

/// HTTP to one server (ClickHouse's HTTP interface: the query in the
/// body, or in the URL with the rows in the body for inserts).
pub(crate) struct Client {
    agent: ureq::Agent,
    /// For the second try of a failed request: no pool, so a new
    /// connection (after an outage every pooled one may be dead).
    fresh: ureq::Agent,
    base: String,
    pub(crate) url: ClickHouseUrl,
    auth: Option<String>,
}

impl Client {
    /// One agent (its connection pool) shared by the writer and the readers.
    fn new(url: ClickHouseUrl) -> Client {
        let agent = |pool: usize| -> ureq::Agent {
            ureq::Agent::config_builder()
                .timeout_connect(Some(Duration::from_secs(3)))
                .timeout_global(Some(Duration::from_secs(30)))
                .http_status_as_error(false)
                .max_idle_connections(pool)
                .max_idle_connections_per_host(pool)
                .build()
                .into()
        };
        let auth = url.user.as_ref().map(|u| {
            use base64::Engine as _;
            let pair = format!("{u}:{}", url.password.as_deref().unwrap_or(""));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Client {
            agent: agent(10),
            fresh: agent(0),
            base: format!("http://{}:{}/", url.host, url.port),
            url,
            auth,
        }
    }

    pub(crate) fn db(&self) -> &str {
        &self.url.database
    }

    /// Runs `sql` (in the URL when `body` carries rows) and returns the
    /// answer. A request that fails on the way is sent once more: after an
    /// outage the pool's connections are dead (the server or a proxy
    /// closed them) and only a new one tells whether the server is back.
    /// Every statement the store sends may be sent twice (its writes
    /// replace rather than add).
    pub(crate) fn exec(&self, sql: &str, body: Option<&[u8]>) -> Result<String, ChError> {
        match self.exec_with(&self.agent, sql, body) {
            Err(ChError::Unreachable(_)) => self.exec_with(&self.fresh, sql, body),
            other => other,
        }
    }

    fn exec_with(
        &self,
        agent: &ureq::Agent,
        sql: &str,
        body: Option<&[u8]>,
    ) -> Result<String, ChError> {
        let mut req = agent.post(&self.base);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let sent = match body {
            Some(rows) => req.query("query", sql).send(rows),
            None => req.send(sql.as_bytes()),
        };
        let mut resp = sent.map_err(|e| ChError::Unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| ChError::Unreachable(e.to_string()))?;
        if status >= 400 {
            let first = text.lines().next().unwrap_or("").trim().to_string();
            return Err(ChError::Server(status, first));
        }
        Ok(text)
    }

    /// The error of a failed request as a [`StoreError`] naming the server.
    pub(crate) fn fail(&self, what: &str, e: &ChError) -> StoreError {
        let fix = match e {
            ChError::Unreachable(_) => {
                "; is the server running (scripts/services up starts one) and the URL right?"
            }
            ChError::Server(401 | 403 | 516, _) => {
                "; check the user in the URL and TRAFFICSCOPE_CLICKHOUSE_PASSWORD(_FILE)"
            }
            _ => "",
        };
        StoreError::Io(format!("ClickHouse at {}: {what}: {e}{fix}", self.url))
    }
}

/// `'text'` as a ClickHouse string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        match c {
            '\\' => q.push_str("\\\\"),
            '\'' => q.push_str("\\'"),
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

/// One field of a `TabSeparated` answer: `None` for `\N`, else unescaped.
pub(crate) fn tsv_field(f: &str) -> Option<String> {
    if f == "\\N" {
        return None;
    }
    if !f.contains('\\') {
        return Some(f.to_string());
    }
    let mut out = String::with_capacity(f.len());
    let mut it = f.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('0') => out.push('\0'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    Some(out)
}

/// Rows of a `TabSeparated` answer.
pub(crate) fn tsv_rows(text: &str) -> Vec<Vec<Option<String>>> {
    text.lines()
        .map(|l| l.split('\t').map(tsv_field).collect())
        .collect()
}

/// The partition (UTC day number) of a time column.
fn day_expr(col: &str) -> String {
    format!("intDiv({col}, {})", crate::time::DAY_NS)
}

/// `CREATE TABLE` of a kind: the embedded store's columns, the values
/// `Nullable` where SQLite keeps NULL (a NaN), text columns of flows plain
/// `String` ('' for none: comparisons stay two-valued on the old server).
fn ddl(db: &str, kind: Kind) -> String {
    let f = "Nullable(Float64)";
    let fine = format!(
        "total_mean {f}, total_cv {f}, total_peak {f}, tcp_mean {f}, tcp_cv {f}, tcp_peak {f}, \
         udp_mean {f}, udp_cv {f}, udp_peak {f}"
    );
    let (cols, key) = match kind {
        Kind::Bins1s | Kind::Bins1m => (
            format!(
                "start_ns Int64, width_ns Int64, bins Int64, packets Int64, bytes Int64, \
                 flows_started Int64, flows_active {f}, fine_width_ns Int64, {fine}"
            ),
            "start_ns",
        ),
        Kind::Dims1s | Kind::Dims1m => (
            "dim String, start_ns Int64, key String, packets Int64, bytes Int64".to_string(),
            "dim, start_ns, key",
        ),
        Kind::Ended1s | Kind::Ended1m => (
            "start_ns Int64, reason String, flows Int64".to_string(),
            "start_ns, reason",
        ),
        Kind::Fine => (
            "start_ns Int64, fine_width_ns Int64, total String, tcp String, udp String".to_string(),
            "start_ns",
        ),
        Kind::Flows => (
            format!(
                "start_ns Int64, end_ns Int64, protocol Int64, src String, src_port Int64, \
                 dst String, dst_port Int64, ip_version Int64, packets Int64, bytes Int64, \
                 duration_ns Int64, class String, confidence {f}, true_class String, app String, \
                 service String, protocols String, server_name String, end_reason String, \
                 row String"
            ),
            "start_ns, protocol, src, src_port, dst, dst_port",
        ),
        Kind::Windows => (
            format!(
                "start_ns Int64, end_ns Int64, hits Int64, misses Int64, unknown Int64, \
                 pending Int64, unlabelled Int64, accuracy {f}, by_class String"
            ),
            "start_ns",
        ),
        Kind::Hurst => (
            format!(
                "series String, end_ns Int64, window_bins Int64, bin_ns Int64, \
                 local_whittle {f}, local_whittle_lo {f}, local_whittle_hi {f}, wavelet {f}, \
                 wavelet_lo {f}, wavelet_hi {f}, burstiness {f}, peak_to_mean {f}, \
                 errors String"
            ),
            "series, end_ns",
        ),
        Kind::SrcBins | Kind::SrcWindows => (
            "start_ns Int64, source String, row String".to_string(),
            "start_ns, source",
        ),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{t} ({cols}, ver UInt64) \
         ENGINE = ReplacingMergeTree(ver) PARTITION BY {part} ORDER BY ({key})",
        t = kind.prefix(),
        part = day_expr(kind.time_column()),
    )
}

/// An open ClickHouse store: the server checked, the tables there.
pub struct ClickHouse {
    client: Arc<Client>,
    opts: StoreOptions,
}

impl ClickHouse {
    /// Connects, creates the database and tables when missing, and refuses
    /// a database written by a newer schema. A server that does not answer
    /// is an error naming it and the fix (nothing is spooled before the
    /// store was ever reached: a wrong URL must not look like an outage).
    pub fn open(
        url: ClickHouseUrl,
        opts: StoreOptions,
    ) -> Result<(ClickHouse, String), StoreError> {
        let client = Arc::new(Client::new(url));
        let c = &client;
        let db = c.db().to_string();
        let version = c
            .exec("SELECT version()", None)
            .map_err(|e| c.fail("cannot connect", &e))?;
        c.exec(&format!("CREATE DATABASE IF NOT EXISTS {db}"), None)
            .map_err(|e| c.fail("cannot create the database", &e))?;
        c.exec(
            &format!(
                "CREATE TABLE IF NOT EXISTS {db}.meta (key String, value Int64, ver UInt64) \
                 ENGINE = ReplacingMergeTree(ver) ORDER BY key"
            ),
            None,
        )
        .map_err(|e| c.fail("cannot create the tables", &e))?;
        let store = ClickHouse {
            client: client.clone(),
            opts,
        };
        let existing = store.meta("schema_version")?;
        if let Some(v) = existing {
            if v as i64 > SCHEMA_VERSION {
                return Err(StoreError::Incompatible(format!(
                    "ClickHouse at {}: the database holds schema version {v}, newer than this \
                     build's {SCHEMA_VERSION}: upgrade trafficscope, or name another database",
                    c.url
                )));
            }
        }
        for kind in Kind::ALL {
            c.exec(&ddl(&db, kind), None)
                .map_err(|e| c.fail("cannot create the tables", &e))?;
        }
        // meta is a max-register: ver = value, FINAL keeps the largest.
        c.exec(
            &format!("INSERT INTO {db}.meta FORMAT TabSeparated"),
            Some(format!("schema_version\t{SCHEMA_VERSION}\t{SCHEMA_VERSION}\n").as_bytes()),
        )
        .map_err(|e| c.fail("cannot write", &e))?;
        let summary = match (existing, store.meta("last_bin_end_ns")?) {
            (None, _) => format!("store {}: created (ClickHouse {})", c.url, version.trim()),
            (Some(_), None) => format!("store {}: no bins yet", c.url),
            (Some(_), Some(end)) => format!(
                "store {}: history continues from {} (ClickHouse {})",
                c.url,
                iso(end),
                version.trim()
            ),
        };
        Ok((store, summary))
    }

    /// Where it is (no password).
    pub fn url(&self) -> &ClickHouseUrl {
        &self.client.url
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        read::meta(&self.client, key).map_err(|e| self.client.fail("cannot read", &e))
    }

    /// The writer; `spool` is the local directory that holds batches while
    /// the server cannot take them (at most `spool_cap` bytes).
    pub fn writer(&self, spool: &Path, spool_cap: u64) -> Result<ChWriter, StoreError> {
        ChWriter::new(self.client.clone(), self.opts.clone(), spool, spool_cap)
    }

    /// What the server reads: a [`crate::History`] over the same queries as
    /// the embedded store.
    pub fn history(&self) -> ChHistory {
        ChHistory::new(self.client.clone(), self.opts.clone())
    }

    /// As [`crate::Store::source_extents`].
    pub fn source_extents(&self) -> Result<crate::SourceExtents, StoreError> {
        read::source_extents(&self.client).map_err(|e| self.client.fail("cannot read", &e))
    }
}

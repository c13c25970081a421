//! The database file: how it is recognised, created and opened, and the
//! `meta` key/value table. (Table layouts are in [`crate::partition`];
//! `SCHEMA.md` beside `Cargo.toml` describes both for `sqlite3` users.)
//!
//! # Layout
//!
//! One SQLite file, `trafficscope.db`, in WAL mode with
//! `synchronous=FULL` (a commit survives power loss) and
//! `auto_vacuum=INCREMENTAL` (pages of dropped partitions return to the
//! file system). It is ours when `PRAGMA application_id` is
//! [`APPLICATION_ID`] (`0x54725363`, "TrSc"); `PRAGMA user_version` is the
//! schema version ([`SCHEMA_VERSION`]). Anything else, including a newer
//! version, is refused with [`StoreError::Incompatible`]: never rewritten.
//!
//! Times are integer ns since the Unix epoch, UTC. Fixed tables:
//!
//! - `meta (key TEXT PRIMARY KEY, value)`: `schema_version`,
//!   `created_unix_ns`, `created_by`, `bin_width_ns` and `fine_width_ns`
//!   (of the first bin written), `newest_ns` (newest data time held: what
//!   retention counts back from), `last_bin_end_ns`, `rollup_through_ns`
//!   (end of the newest minute rolled up), `max_flow_duration_ns` (how far
//!   back a flow query must look for flows overlapping its range).
//! - `partitions (name, kind, day, date, created_unix_ns)`: one row per day
//!   table.
//!
//! Day tables `<kind>_YYYYMMDD` (UTC day of the start time; of the end time
//! for `hurst`):
//!
//! | kind | key | one row per |
//! |---|---|---|
//! | `bins_1s`, `bins_1m` | `start_ns` | closed bin, even an empty one: `width_ns`, `bins` (base bins rolled in), `packets`, `bytes`, `flows_started`, `flows_active`, `fine_width_ns`, `{total,tcp,udp}_{mean,cv,peak}` |
//! | `dims_1s`, `dims_1m` | `(dim, start_ns, key)` | non-zero key of a dimension in a bin: `packets`, `bytes` |
//! | `ended_1s`, `ended_1m` | `(start_ns, reason)` | end reason with flows in a bin: `flows` |
//! | `fine` | `start_ns` | base bin: `fine_width_ns` and the 0.1 s byte values of `total`, `tcp`, `udp` as JSON arrays |
//! | `flows` | `(start_ns, protocol, src, src_port, dst, dst_port)` | finished flow: searchable columns + `row`, the rest as compact JSON ([`crate::flow_row`]) |
//! | `windows` | `start_ns` | evaluation window; `by_class` as JSON |
//! | `hurst` | `(series, end_ns)` | Hurst point; `errors` as JSON |
//!
//! A view named after each kind (`bins_1s`, `flows`, …) joins its days and
//! adds a `time` column in RFC 3339.

use std::fs;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::partition::CATALOGUE_DDL;
use crate::StoreError;

/// `PRAGMA application_id` of a trafficscope store: "TrSc" in ASCII.
pub const APPLICATION_ID: i32 = 0x5472_5363;
/// `PRAGMA user_version`: the schema version this code writes and reads.
/// 2: a flow's `row` holds only what its columns do not ([`crate::flow_row`]).
/// A store of version 1 is read as it is and marked 2 when opened for
/// writing: its flow rows stay whole JSON, which the reader still takes.
pub const SCHEMA_VERSION: i32 = 2;
/// The database file inside the store directory.
pub const DB_FILE: &str = "trafficscope.db";
/// Held (locked) while a [`crate::Store`] is open, so that two services
/// never write one store.
pub const LOCK_FILE: &str = "trafficscope.lock";

/// Creates `dir` (mode 0700: traffic history is private) when missing.
pub fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(StoreError::Io(format!(
            "{} is not a directory; pass a directory for the store",
            dir.display()
        )));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))
}

/// What a file at the database path is, judged before SQLite touches it.
enum Found {
    Missing,
    Sqlite,
}

/// Checks the first bytes: a file that is not SQLite is refused before
/// SQLite opens it (SQLite would report "file is not a database" only
/// later, and could create -wal/-shm files beside someone else's file).
fn sniff(path: &Path) -> Result<Found, StoreError> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => {
            return Err(StoreError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let mut head = [0u8; 100];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => {
                return Err(StoreError::Io(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        }
    }
    // An empty file is what SQLite itself leaves when a creation was cut
    // short before the first commit: nothing to lose.
    if n == 0 {
        return Ok(Found::Sqlite);
    }
    if n < 16 || &head[..16] != b"SQLite format 3\0" {
        return Err(StoreError::Incompatible(format!(
            "{} is not a trafficscope store: it is not an SQLite database (another program \
             wrote it?). trafficscope will not overwrite it: move it away, or pass another \
             store directory",
            path.display()
        )));
    }
    // The header's application_id (bytes 68..72). In WAL mode the header in
    // the main file may lag, so 0 is settled by SQLite below.
    if n >= 72 {
        let id = i32::from_be_bytes([head[68], head[69], head[70], head[71]]);
        if id != 0 && id != APPLICATION_ID {
            return Err(foreign(path, id));
        }
    }
    Ok(Found::Sqlite)
}

fn foreign(path: &Path, id: i32) -> StoreError {
    StoreError::Incompatible(format!(
        "{} is an SQLite database of another program (application_id {id:#010x}; a \
         trafficscope store has {APPLICATION_ID:#010x}). trafficscope will not write into it: \
         move it away, or pass another store directory",
        path.display()
    ))
}

/// Opens (creating if new) the database and checks that it is ours.
/// Returns the writer connection and whether the store existed.
pub fn open_writer(path: &Path, busy_timeout: Duration) -> Result<(Connection, bool), StoreError> {
    sniff(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| io(path, "cannot open", e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| io(path, "cannot configure", e))?;
    let (id, version, objects) = identity(&conn).map_err(|e| not_a_database(path, e))?;
    let existed = verdict(path, id, version, objects)?;
    configure_writer(&conn).map_err(|e| io(path, "cannot configure", e))?;
    if !existed {
        create(&conn).map_err(|e| io(path, "cannot create the schema in", e))?;
    } else if version < SCHEMA_VERSION {
        upgrade(&conn).map_err(|e| io(path, "cannot upgrade the schema of", e))?;
    }
    Ok((conn, existed))
}

/// Whether the file holds a store of ours (true), is still empty (false:
/// create it), or is refused.
fn verdict(path: &Path, id: i32, version: i32, objects: i64) -> Result<bool, StoreError> {
    match (id, objects) {
        (0, 0) => return Ok(false),
        (0, _) => return Err(foreign(path, 0)),
        (id, _) if id != APPLICATION_ID => return Err(foreign(path, id)),
        _ => {}
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Incompatible(format!(
            "{} has schema version {version}, newer than this trafficscope reads \
             ({SCHEMA_VERSION}): a newer trafficscope wrote it. Run that version, or pass \
             another store directory",
            path.display()
        )));
    }
    if version < 1 {
        return Err(StoreError::Incompatible(format!(
            "{} carries trafficscope's application_id but no schema version; it was not \
             written by trafficscope's store. Move it away, or pass another store directory",
            path.display()
        )));
    }
    Ok(true)
}

fn not_a_database(path: &Path, e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            StoreError::Incompatible(format!(
                "{} is not a trafficscope store: SQLite cannot read it (\"file is not a \
                 database\"). Move it away, or pass another store directory",
                path.display()
            ))
        }
        e => io(path, "cannot read", e),
    }
}

/// Checks, read-only and without creating anything, that `path` is a
/// store this code reads.
pub fn check_readable(path: &Path) -> Result<(), StoreError> {
    if let Found::Missing = sniff(path)? {
        return Err(StoreError::Io(format!(
            "no trafficscope store at {}",
            path.display()
        )));
    }
    let conn = open_reader(path)?;
    let (id, version, objects) = identity(&conn).map_err(|e| not_a_database(path, e))?;
    if verdict(path, id, version, objects)? {
        Ok(())
    } else {
        Err(StoreError::Io(format!(
            "no trafficscope store at {} (the file is empty)",
            path.display()
        )))
    }
}

/// application_id, user_version and the number of schema objects.
fn identity(conn: &Connection) -> rusqlite::Result<(i32, i32, i64)> {
    let id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    Ok((id, version, objects))
}

fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    // page_size and auto_vacuum only take effect before the first table
    // exists; on an existing store they are no-ops that keep whatever was
    // set at creation. 16 KiB pages: a quarter of the WAL frames (two
    // writes each) and B-tree pages for the same rows; `store_bench` wrote
    // 7 days of bins 20 % faster, queries as fast or faster, 0.7 % larger.
    conn.execute_batch("PRAGMA page_size = 16384; PRAGMA auto_vacuum = INCREMENTAL")?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "the file system refused WAL mode (journal_mode stays {mode})"
            )),
        ));
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = OFF;
         -- the WAL is truncated back to this after a checkpoint that emptied it
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -32768;
         -- statement journals (of every multi-row INSERT OR REPLACE, e.g. the
         -- minute rollups) in memory: in a file they cost a write per page
         -- touched (41,000 on the sparse benchmark capture)
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// Marks an older store as this version. Every change so far keeps what
/// older versions wrote readable as it is (see [`SCHEMA_VERSION`]), so
/// nothing is rewritten: only new rows take the new form.
fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    set_meta(&tx, "schema_version", SCHEMA_VERSION as i64)?;
    tx.commit()
}

/// The fixed tables and our identity, in one transaction: a creation cut
/// short leaves a file without tables, which the next open creates again.
fn create(conn: &Connection) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)")?;
    tx.execute_batch(CATALOGUE_DDL)?;
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))?;
    set_meta(&tx, "schema_version", SCHEMA_VERSION as i64)?;
    set_meta(&tx, "created_unix_ns", pipeline::unix_now_ns() as i64)?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('created_by', ?1)",
        [format!("trafficscope store {}", env!("CARGO_PKG_VERSION"))],
    )?;
    tx.commit()
}

/// A read-only connection of its own (readers never block the writer in
/// WAL mode, and never write by mistake).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| io(path, "cannot open", e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .and_then(|_| conn.execute_batch("PRAGMA cache_size = -8192"))
        .map_err(|e| io(path, "cannot configure", e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

pub fn get_meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get::<_, Option<i64>>(0))
        .optional()
        .map(Option::flatten)
}

pub fn set_meta(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(rusqlite::params![key, value])?;
    Ok(())
}

pub fn io(path: &Path, what: &str, e: rusqlite::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

/// Sizes of the database file and its WAL, bytes.
pub fn file_size(path: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    [path.to_path_buf(), wal]
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

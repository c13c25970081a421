//! Live counters of a store writer, shared with the API and Prometheus.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct StoreStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Wall clock of the last commit, ns since the Unix epoch (0: none yet).
    pub last_commit_unix_ns: AtomicU64,
    /// Wall time from receiving the oldest output of a commit to the commit, ns (last commit).
    pub commit_lag_ns: AtomicU64,
    /// Outputs received but not committed yet (in memory).
    pub pending: AtomicU64,
    /// The in-memory bound for `pending`.
    pub pending_capacity: AtomicU64,
    /// Outputs dropped because the store could not write and the memory bound was reached.
    pub drops: AtomicU64,
    /// Bins, windows, Hurst points and flows written.
    pub bins_written: AtomicU64,
    pub windows_written: AtomicU64,
    pub hurst_written: AtomicU64,
    pub flows_written: AtomicU64,
    /// Size of the store's files, bytes (updated after commits).
    pub size_bytes: AtomicU64,
    /// Whole partitions dropped by retention or the size cap.
    pub partitions_dropped: AtomicU64,
    /// Batches (and their bytes) waiting in the ClickHouse store's local
    /// spool for the server to come back.
    pub spooled_batches: AtomicU64,
    pub spooled_bytes: AtomicU64,
    /// Writing fails now (disk full, I/O error); ingest goes on in memory.
    pub failing: AtomicBool,
    /// The last write error, for people.
    pub last_error: Mutex<Option<String>>,
}

//! The packets behind the charts.
//!
//! `trafficscope run -w DIR` writes every packet it reads, as read (bytes,
//! wire length, capture time, link type), into a ring of pcap files in DIR:
//! a new file every `period` of capture time or `size_limit` bytes,
//! whichever comes first, at most `files` files (`ring-000000.pcap` …),
//! the oldest overwritten. So the disk use stays below
//! [`RingConfig::bound_bytes`] however long the service runs.
//!
//! [`Ring`] is the shared side: the directory, a time index of its files
//! (earliest and latest capture time, packets, bytes, link type of each;
//! kept at each rotation and flush, and built by a scan of the files an
//! earlier run left, in the background), counters, and [`extract`]: the
//! packets of a time range that match a flow, an address/port/protocol or
//! a tcpdump-style filter, streamed as a capture file to any writer,
//! reading only the files whose time span overlaps the range.
//! [`RingWriter`] is the packet loop's side: one buffered write per packet,
//! errors counted and retried, never fatal to the analysis.

mod index;
mod query;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

pub use capture::{OutputFormat, Span};
pub use index::RingFile;
pub use query::{extract, parse_proto, Extracted, FlowTuple, Limit, Limits, Match, Plan, Query};
pub use writer::{RingWriter, WriterReport};

use index::Index;

/// Largest frame a ring file keeps (longer ones are cut, like a snap length).
pub const SNAPLEN: u32 = 262_144;

/// Where the ring lives and how it rotates.
#[derive(Debug, Clone, PartialEq)]
pub struct RingConfig {
    pub dir: PathBuf,
    /// Start a new file once the current one holds this many bytes.
    pub size_limit: u64,
    /// Start a new file this many ns of capture time after the current
    /// file's first packet.
    pub period_ns: u64,
    /// Files in the ring.
    pub files: u32,
}

impl RingConfig {
    /// Most bytes the ring's files take together: each file stops growing
    /// once it holds `size_limit` bytes, so it exceeds that by at most one
    /// record.
    pub fn bound_bytes(&self) -> u64 {
        self.files as u64 * (self.size_limit + 16 + SNAPLEN as u64)
    }

    /// Path of slot `slot`.
    pub fn path(&self, slot: u32) -> PathBuf {
        self.dir.join(file_name(slot))
    }
}

/// Name of the file in slot `slot`: `ring-000042.pcap`.
pub fn file_name(slot: u32) -> String {
    format!("ring-{slot:06}.pcap")
}

/// The slot of a ring file's name; `None` for any other name.
pub fn parse_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("ring-")?.strip_suffix(".pcap")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Counters of the ring, shared with whoever reports them (the status
/// line, the API's summary). Published by the writer about once a second.
#[derive(Debug, Default)]
pub struct RingStats {
    /// Packets written into ring files since start.
    pub packets_written: AtomicU64,
    /// Bytes written into ring files since start (headers included).
    pub bytes_written: AtomicU64,
    /// Files created since start.
    pub files_created: AtomicU64,
    /// Failed creates, writes and flushes.
    pub write_errors: AtomicU64,
    /// Packets analysed but not kept in the ring because writing failed.
    pub packets_lost: AtomicU64,
    /// Ring files found damaged when read (scan or download); what came
    /// before the damage was used.
    pub read_errors: AtomicU64,
    /// The startup scan of files left by an earlier run is still running.
    pub scanning: AtomicBool,
    /// The last write or read error, for people.
    pub last_error: Mutex<Option<String>>,
}

impl RingStats {
    fn note_error(&self, message: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }
}

/// Why the ring could not be opened. Each names the directory and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("-w {dir}: cannot use the directory for the packet ring: {source} (give a writable directory)")]
    Dir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("-w {dir}: another trafficscope run is writing this packet ring ({dir}/.lock is held): give each run its own directory")]
    Locked { dir: String },
    #[error("-w {dir}: {what}")]
    Config { dir: String, what: String },
}

/// What the ring's indexed files hold together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub files: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Earliest and latest capture time, ns.
    pub extent: Option<(u64, u64)>,
}

/// What opening the ring found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenReport {
    /// Ring files left by an earlier run (indexed by a background scan).
    pub found: usize,
    /// Files of an earlier run with a larger ring (slot ≥ `files`), removed
    /// so the disk bound holds.
    pub removed: Vec<String>,
    /// Slot of the first file this run writes.
    pub start_slot: u32,
}

/// The ring's shared side: configuration, time index, counters.
pub struct Ring {
    config: RingConfig,
    index: Mutex<Index>,
    pub stats: RingStats,
    /// Held while the ring is open: one writer per directory.
    _lock: File,
}

impl Ring {
    /// Opens (creating it, mode 0700) the ring's directory, takes its lock,
    /// removes files beyond the ring, starts the scan of files an earlier
    /// run left, and returns the shared ring and its writer. The writer
    /// continues after the newest file found.
    pub fn open(config: RingConfig) -> Result<(Arc<Ring>, RingWriter, OpenReport), RingError> {
        let dir_name = config.dir.display().to_string();
        if config.files == 0 || config.size_limit == 0 || config.period_ns == 0 {
            return Err(RingError::Config {
                dir: dir_name,
                what: "the ring needs at least one file, and a positive size and period".into(),
            });
        }
        let io_err = |source| RingError::Dir {
            dir: dir_name.clone(),
            source,
        };
        create_private_dir(&config.dir).map_err(io_err)?;
        let lock = File::create(config.dir.join(".lock")).map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(RingError::Locked { dir: dir_name })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let (found, removed) = index::list_dir(&config).map_err(io_err)?;
        // Continue after the newest file, so the oldest is overwritten first.
        let start_slot = found
            .iter()
            .max_by_key(|f| f.age_key())
            .map_or(0, |f| (f.slot + 1) % config.files);
        let report = OpenReport {
            found: found.len(),
            removed,
            start_slot,
        };
        let ring = Arc::new(Ring {
            index: Mutex::new(Index::new(config.files)),
            config,
            stats: RingStats::default(),
            _lock: lock,
        });
        if !found.is_empty() {
            ring.stats.scanning.store(true, Relaxed);
            let r = ring.clone();
            let spawned = std::thread::Builder::new()
                .name("ts-ring-scan".into())
                .spawn(move || index::scan(&r, found));
            if spawned.is_err() {
                ring.stats.scanning.store(false, Relaxed);
            }
        }
        let writer = RingWriter::new(ring.clone(), start_slot);
        Ok((ring, writer, report))
    }

    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The indexed files holding packets, earliest first.
    pub fn files(&self) -> Vec<RingFile> {
        self.index().sorted()
    }

    /// What the ring holds now, without listing its files.
    pub fn held(&self) -> Held {
        self.index().held()
    }

    /// Earliest and latest capture time held (written or flushed), ns.
    pub fn extent(&self) -> Option<(u64, u64)> {
        self.index().extent()
    }

    /// The indexed files whose span overlaps `[from, to)`, earliest first.
    pub fn overlapping(&self, from_ns: u64, to_ns: u64) -> Vec<RingFile> {
        let mut v = self.index().sorted();
        v.retain(|f| f.span.max_ns >= from_ns && f.span.min_ns < to_ns);
        v
    }

    /// Waits until the startup scan is done (tests, tools).
    pub fn wait_scanned(&self, within: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while self.stats.scanning.load(Relaxed) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(file_name(42), "ring-000042.pcap");
        assert_eq!(parse_file_name("ring-000042.pcap"), Some(42));
        assert_eq!(parse_file_name("ring-1234567.pcap"), Some(1_234_567));
        for other in [
            "ring-42.pcap",
            "ring-00004x.pcap",
            "ring-000042.pcapng",
            "x.pcap",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }
}

//! The packet loop's side of the ring: every frame goes into the current
//! file through a 1 MiB buffer; nothing is allocated and no system call is
//! made per packet beyond the buffered write. About once a second (checked
//! every 1024 packets and at each clock tick) the buffer is flushed, so
//! downloads see the recent past, and the index and counters are updated.
//!
//! A failing disk never stops the analysis: the error is counted and kept
//! for the summary, the file is left as it is, and packets are counted as
//! lost until, a second later, writing resumes with the next file of the
//! ring.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capture::{FileSpan, Frame, OutputFormat, RotateError, RotatingWriter, Rotation};

use crate::index::RingFile;
use crate::{file_name, Ring, SNAPLEN};

/// How often buffered packets are handed to the OS (wall clock).
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Packets between two looks at the clock.
const CHECK_EVERY: u32 = 1024;
/// Wait after a write error before trying the next file.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the writer did, for the run's last lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriterReport {
    pub packets_written: u64,
    pub bytes_written: u64,
    pub files_created: u64,
    pub write_errors: u64,
    pub packets_lost: u64,
    pub last_error: Option<String>,
}

pub struct RingWriter {
    ring: Arc<Ring>,
    out: RotatingWriter,
    /// The current file is entered in the index.
    entered: bool,
    /// Unflushed packets are buffered.
    dirty: bool,
    since_check: u32,
    last_flush: Instant,
    /// After an error: packets are not written until then.
    retry_at: Option<Instant>,
    /// Writing failed and has not worked since.
    outage: bool,
    /// Packets lost since the last error began (for the recovery line).
    lost_in_outage: u64,
    written: u64,
    lost: u64,
    /// Bytes of the files closed so far.
    closed_bytes: u64,
}

impl RingWriter {
    pub(crate) fn new(ring: Arc<Ring>, start_slot: u32) -> RingWriter {
        let cfg = ring.config().clone();
        let dir = cfg.dir.clone();
        let hook = ring.clone();
        let out = RotatingWriter::new(
            Box::new(move |n| dir.join(file_name(n as u32)).to_string_lossy().into_owned()),
            OutputFormat::Pcap,
            SNAPLEN,
            Rotation {
                size_limit: Some(cfg.size_limit),
                period_ns: Some(cfg.period_ns),
                ring: Some(cfg.files),
            },
        )
        .split_on_linktype(true)
        .replace_existing(true)
        .starting_at(start_slot as u64)
        .before_open(move |n| hook.index().replacing(n as u32));
        RingWriter {
            ring,
            out,
            entered: false,
            dirty: false,
            since_check: 0,
            last_flush: Instant::now(),
            retry_at: None,
            outage: false,
            lost_in_outage: 0,
            written: 0,
            lost: 0,
            closed_bytes: 0,
        }
    }

    /// Keeps one frame, as read.
    #[inline]
    pub fn write(&mut self, f: &Frame<'_>) {
        if let Some(at) = self.retry_at {
            if Instant::now() < at {
                self.lost += 1;
                self.lost_in_outage += 1;
                return;
            }
            self.retry_at = None;
        }
        match self.out.write(f.ts_ns, f.wire_len, f.linktype, f.data) {
            Ok(closed) => {
                if let Some(c) = closed {
                    self.closed(c);
                }
                self.written += 1;
                self.dirty = true;
                if !self.entered {
                    self.enter();
                }
            }
            Err(e) => {
                self.lost += 1;
                self.lost_in_outage += 1;
                self.fail(e);
            }
        }
        self.since_check += 1;
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            self.maybe_flush();
        }
    }

    /// A clock tick of the packet loop (no packet needed): flushes when due.
    pub fn tick(&mut self) {
        self.since_check = 0;
        self.maybe_flush();
    }

    fn maybe_flush(&mut self) {
        if self.dirty && self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.last_flush = Instant::now();
        self.dirty = false;
        match self.out.flush() {
            Ok(()) => {
                if let Some((slot, _, span)) = self.out.current() {
                    self.ring.index().update(slot as u32, span, true);
                }
            }
            Err(e) => self.fail(e),
        }
        self.publish();
    }

    /// Enters the file just started in the index.
    fn enter(&mut self) {
        if let Some((slot, path, span)) = self.out.current() {
            let file = RingFile {
                slot: slot as u32,
                path: path.into(),
                span,
                open: true,
            };
            self.ring.index().put(file);
            self.entered = true;
            if self.outage {
                self.outage = false;
                eprintln!(
                    "trafficscope: packet ring: writing again, to {path}; {} packets were not kept",
                    self.lost_in_outage
                );
                self.lost_in_outage = 0;
            }
        }
    }

    fn closed(&mut self, c: FileSpan) {
        self.closed_bytes += c.span.bytes;
        self.ring.index().update(c.number as u32, c.span, false);
        self.entered = false;
        self.publish();
    }

    fn fail(&mut self, e: RotateError) {
        let stats = &self.ring.stats;
        stats.write_errors.fetch_add(1, Relaxed);
        let message = e.to_string();
        if !self.outage {
            self.outage = true;
            eprintln!(
                "trafficscope: packet ring: {message}; the analysis goes on, packets are not \
                 kept until writing works again (tried every second with the next file)"
            );
        }
        stats.note_error(message);
        // The file keeps what reached the disk, the index its last flush.
        if let Some(f) = self.out.abandon() {
            self.closed_bytes += f.span.bytes;
        }
        self.ring.index().close_open();
        self.entered = false;
        self.dirty = false;
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
        self.publish();
    }

    fn publish(&self) {
        let s = &self.ring.stats;
        s.packets_written.store(self.written, Relaxed);
        s.packets_lost.store(self.lost, Relaxed);
        s.files_created.store(self.out.files(), Relaxed);
        let open = self.out.current().map_or(0, |(_, _, span)| span.bytes);
        s.bytes_written.store(self.closed_bytes + open, Relaxed);
    }

    /// Flushes and closes the current file; the counters for the summary.
    pub fn finish(mut self) -> WriterReport {
        match self.out.close() {
            Ok(Some(c)) => self.closed(c),
            Ok(None) => {}
            Err(e) => self.fail(e),
        }
        self.publish();
        let s = &self.ring.stats;
        WriterReport {
            packets_written: self.written,
            bytes_written: s.bytes_written.load(Relaxed),
            files_created: self.out.files(),
            write_errors: s.write_errors.load(Relaxed),
            packets_lost: self.lost,
            last_error: s
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RingConfig;
    use capture::LinkType;

    const S: u64 = 1_000_000_000;

    fn frame(ts_ns: u64, data: &[u8]) -> Frame<'_> {
        Frame {
            number: 0,
            ts_ns,
            wire_len: data.len() as u32,
            linktype: LinkType::ETHERNET,
            interface: 0,
            data,
        }
    }

    pub(crate) fn temp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ts-ring-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn rotates_indexes_and_resumes_after_the_newest_file() {
        let dir = temp("resume");
        let cfg = RingConfig {
            dir: dir.clone(),
            size_limit: 1 << 30,
            period_ns: S,
            files: 4,
        };
        let (ring, mut w, rep) = Ring::open(cfg.clone()).unwrap();
        assert_eq!(rep.start_slot, 0);
        for i in 0..6u64 {
            w.write(&frame(100 * S + i * S, &[i as u8; 60]));
        }
        let r = w.finish();
        assert_eq!(
            (r.packets_written, r.files_created, r.write_errors),
            (6, 6, 0)
        );
        // Six seconds, four files: the last four seconds are held.
        let files = ring.files();
        assert_eq!(
            files.iter().map(|f| f.slot).collect::<Vec<_>>(),
            [2, 3, 0, 1]
        );
        assert_eq!(ring.extent(), Some((102 * S, 105 * S)));
        assert_eq!(ring.overlapping(103 * S, 104 * S).len(), 1);
        assert_eq!(ring.overlapping(103 * S, 104 * S + 1).len(), 2);
        assert!(files.iter().all(|f| !f.open && f.span.frames == 1));
        // The file system may give files written within one clock tick the
        // same time of change (ext4 does): make it so, the first packet's
        // time must then tell which file is the newest.
        let same = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for f in &files {
            let file = std::fs::File::options().write(true).open(&f.path).unwrap();
            file.set_modified(same).unwrap();
        }
        // A bigger ring left here, then a restart with a smaller one.
        std::fs::write(dir.join(crate::file_name(7)), b"").unwrap();
        drop(ring);
        let (ring, mut w, rep) = Ring::open(cfg).unwrap();
        assert_eq!(rep.found, 4);
        assert_eq!(rep.removed, ["ring-000007.pcap"]);
        assert_eq!(rep.start_slot, 2, "after slot 1, the newest");
        assert!(ring.wait_scanned(Duration::from_secs(10)));
        assert_eq!(ring.extent(), Some((102 * S, 105 * S)));
        w.write(&frame(200 * S, &[9; 60]));
        w.finish();
        // Slot 2 (102 s) was replaced by the new packet.
        assert_eq!(ring.extent(), Some((103 * S, 200 * S)));
        assert_eq!(ring.files().last().unwrap().slot, 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn one_writer_per_directory() {
        let dir = temp("lock");
        let cfg = RingConfig {
            dir: dir.clone(),
            size_limit: 1000,
            period_ns: S,
            files: 2,
        };
        let (_ring, _w, _) = Ring::open(cfg.clone()).unwrap();
        let e = Ring::open(cfg).err().expect("second writer refused");
        assert!(e.to_string().contains("another trafficscope run"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn write_errors_are_counted_and_the_writer_goes_on() {
        let dir = temp("fail");
        let cfg = RingConfig {
            dir: dir.clone(),
            size_limit: 1000,
            period_ns: S,
            files: 3,
        };
        let (ring, mut w, _) = Ring::open(cfg).unwrap();
        w.write(&frame(S, &[0; 60]));
        // The directory disappears: the next file cannot be created.
        std::fs::remove_dir_all(&dir).unwrap();
        for i in 2..50u64 {
            w.write(&frame(i * S, &[0; 60]));
        }
        let r = w.finish();
        assert_eq!(r.packets_written, 1);
        assert_eq!(r.packets_lost, 48);
        assert_eq!(r.write_errors, 1, "retried once a second, not per packet");
        assert!(
            r.last_error
                .as_deref()
                .unwrap()
                .contains("ring-000001.pcap"),
            "{r:?}"
        );
        assert_eq!(ring.stats.packets_lost.load(Relaxed), 48);
    }
}

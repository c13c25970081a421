//! The ring's time index: what each file holds (earliest and latest
//! capture time, packets, bytes, link type), so a download opens only the
//! files that overlap its range. The writer keeps it current (a file is
//! entered when it gets its first packet, updated at each flush and closed
//! at rotation); files an earlier run left are entered by a scan in the
//! background at startup.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;

use capture::{CaptureReader, Span};

use crate::{parse_file_name, Ring, RingConfig};

/// One file of the ring as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingFile {
    pub slot: u32,
    pub path: PathBuf,
    /// What it holds: earliest and latest capture time, packets, bytes
    /// (for the file being written: up to its last flush).
    pub span: Span,
    /// Being written now: its end may be an incomplete record.
    pub open: bool,
}

pub(crate) struct Index {
    files: BTreeMap<u32, RingFile>,
    /// Slots the writer of this run has used: the scan must not enter what
    /// it read from their earlier contents.
    touched: Vec<bool>,
}

impl Index {
    pub fn new(slots: u32) -> Index {
        Index {
            files: BTreeMap::new(),
            touched: vec![false; slots as usize],
        }
    }

    /// The writer is about to replace `slot`.
    pub fn replacing(&mut self, slot: u32) {
        self.files.remove(&slot);
        if let Some(t) = self.touched.get_mut(slot as usize) {
            *t = true;
        }
    }

    /// Enters or updates a file the writer holds.
    pub fn put(&mut self, file: RingFile) {
        if let Some(t) = self.touched.get_mut(file.slot as usize) {
            *t = true;
        }
        self.files.insert(file.slot, file);
    }

    /// Updates the span of a file already entered.
    pub fn update(&mut self, slot: u32, span: Span, open: bool) {
        if let Some(f) = self.files.get_mut(&slot) {
            f.span = span;
            f.open = open;
        }
    }

    /// The file being written stopped (a write error): it keeps the span
    /// of its last flush.
    pub fn close_open(&mut self) {
        for f in self.files.values_mut() {
            f.open = false;
        }
    }

    /// Enters a scanned file unless the writer has reused its slot since.
    fn put_scanned(&mut self, file: RingFile) {
        if !self
            .touched
            .get(file.slot as usize)
            .copied()
            .unwrap_or(true)
        {
            self.files.insert(file.slot, file);
        }
    }

    pub fn sorted(&self) -> Vec<RingFile> {
        let mut v: Vec<RingFile> = self
            .files
            .values()
            .filter(|f| f.span.frames > 0)
            .cloned()
            .collect();
        v.sort_by_key(|f| (f.span.min_ns, f.span.max_ns, f.slot));
        v
    }

    pub fn held(&self) -> crate::Held {
        let mut h = crate::Held::default();
        for f in self.files.values().filter(|f| f.span.frames > 0) {
            h.files += 1;
            h.packets += f.span.frames;
            h.bytes += f.span.bytes;
        }
        h.extent = self.extent();
        h
    }

    pub fn extent(&self) -> Option<(u64, u64)> {
        let held = self.files.values().filter(|f| f.span.frames > 0);
        let min = held.clone().map(|f| f.span.min_ns).min()?;
        let max = held.map(|f| f.span.max_ns).max()?;
        Some((min, max))
    }
}

/// A ring file found in the directory at startup.
pub(crate) struct Found {
    pub slot: u32,
    pub path: PathBuf,
    pub modified: SystemTime,
    /// The first packet's time: breaks ties between files whose times of
    /// change are equal at the file system's granularity (ext4's is a
    /// clock tick, so a fast ring writes several files within one).
    pub first_ns: Option<u64>,
}

impl Found {
    /// Orders files by when they were written.
    pub fn age_key(&self) -> (SystemTime, Option<u64>, u32) {
        (self.modified, self.first_ns, self.slot)
    }
}

/// The ring files in the directory (by name), and the names of those
/// beyond the ring (slot ≥ `files`, left by a run with a larger `-W`),
/// which are removed so that the ring's bound holds.
pub(crate) fn list_dir(config: &RingConfig) -> std::io::Result<(Vec<Found>, Vec<String>)> {
    let mut found = Vec::new();
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(&config.dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(slot) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let path = entry.path();
        if slot >= config.files {
            if std::fs::remove_file(&path).is_ok() {
                removed.push(name.to_string_lossy().into_owned());
            }
            continue;
        }
        found.push(Found {
            slot,
            first_ns: first_packet_ns(&path),
            path,
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    removed.sort();
    Ok((found, removed))
}

/// The time of a ring file's first packet, if it has one that reads.
fn first_packet_ns(path: &Path) -> Option<u64> {
    let name = path.display().to_string();
    let file = File::open(path).ok()?;
    let mut reader = CaptureReader::new(&name, Box::new(file)).ok()?;
    reader.next_frame().ok()?.map(|f| f.ts_ns)
}

/// Reads what a ring file holds; on damage, the span of the records before
/// it and the error (naming the file and the offset).
pub(crate) fn scan_file(path: &Path) -> (Span, Option<String>) {
    let name = path.display().to_string();
    let mut span = Span::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return (span, Some(format!("{name}: cannot open: {e}"))),
    };
    span.bytes = file.metadata().map_or(0, |m| m.len());
    let mut reader = match CaptureReader::new(&name, Box::new(file)) {
        Ok(r) => r,
        // An empty file (created, nothing flushed yet) holds nothing.
        Err(_) if span.bytes == 0 => return (span, None),
        Err(e) => return (span, Some(e.to_string())),
    };
    span.linktype = reader.first_linktype();
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                if span.frames == 0 {
                    span.min_ns = f.ts_ns;
                    span.max_ns = f.ts_ns;
                    span.first_ns = f.ts_ns;
                } else {
                    span.min_ns = span.min_ns.min(f.ts_ns);
                    span.max_ns = span.max_ns.max(f.ts_ns);
                }
                span.frames += 1;
            }
            Ok(None) => return (span, None),
            Err(e) => return (span, Some(e.to_string())),
        }
    }
}

/// The startup scan: enters each file an earlier run left, newest first
/// (the recent past is asked for most), skipping slots the writer has
/// taken over meanwhile.
pub(crate) fn scan(ring: &Arc<Ring>, mut found: Vec<Found>) {
    found.sort_by_key(|f| std::cmp::Reverse(f.age_key()));
    for f in found {
        if ring.index().touched[f.slot as usize] {
            continue;
        }
        let (span, err) = scan_file(&f.path);
        if let Some(e) = err {
            ring.stats.read_errors.fetch_add(1, Relaxed);
            ring.stats.note_error(format!(
                "{e} (indexed the {} packets before it)",
                span.frames
            ));
        }
        if span.frames > 0 {
            ring.index().put_scanned(RingFile {
                slot: f.slot,
                path: f.path,
                span,
                open: false,
            });
        }
    }
    ring.stats.scanning.store(false, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use capture::LinkType;

    fn span(min: u64, max: u64, frames: u64) -> Span {
        Span {
            min_ns: min,
            max_ns: max,
            first_ns: min,
            frames,
            bytes: 100,
            linktype: Some(LinkType::ETHERNET),
        }
    }

    fn file(slot: u32, s: Span) -> RingFile {
        RingFile {
            slot,
            path: PathBuf::from(crate::file_name(slot)),
            span: s,
            open: false,
        }
    }

    #[test]
    fn sorted_by_time_extent_and_replacement() {
        let mut ix = Index::new(4);
        ix.put(file(2, span(30, 39, 5)));
        ix.put(file(0, span(40, 49, 5)));
        ix.put(file(1, span(10, 19, 5)));
        // Created but nothing written yet: not listed.
        ix.put(file(3, span(0, 0, 0)));
        let slots: Vec<u32> = ix.sorted().iter().map(|f| f.slot).collect();
        assert_eq!(slots, [1, 2, 0]);
        assert_eq!(ix.extent(), Some((10, 49)));
        let h = ix.held();
        assert_eq!((h.files, h.packets, h.bytes), (3, 15, 300));
        ix.replacing(1);
        assert_eq!(ix.extent(), Some((30, 49)));
        ix.update(0, span(40, 59, 7), true);
        assert_eq!(ix.extent(), Some((30, 59)));
        assert!(ix.sorted().last().unwrap().open);
    }

    #[test]
    fn a_scan_never_overrides_what_the_writer_took_over() {
        let mut ix = Index::new(3);
        ix.replacing(1);
        ix.put_scanned(file(1, span(1, 2, 1)));
        ix.put_scanned(file(2, span(5, 6, 1)));
        let slots: Vec<u32> = ix.sorted().iter().map(|f| f.slot).collect();
        assert_eq!(slots, [2]);
    }
}

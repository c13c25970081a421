//! A capture output cut into a sequence of files, like tcpdump's `-C`
//! (size), `-G` (seconds of capture time) and `-W` (a ring of N files whose
//! numbering wraps, the oldest overwritten). Used by `trafficscope capture
//! -w` and by the packet ring of `trafficscope run -w DIR`.
//!
//! Per frame it costs one buffered write (the [`CaptureWriter`]'s 1 MiB
//! buffer) and a few comparisons; files are named, created and flushed only
//! when one is cut.

use std::fs::File;
use std::io::{self, Write};

use crate::{CaptureWriter, LinkType, OutputFormat, WriteError};

/// When to start a new file. All `None`: one file, never cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Cut once the current file holds at least this many bytes (headers
    /// included), so a file exceeds it by at most one frame.
    pub size_limit: Option<u64>,
    /// Cut when a frame comes this many ns of capture time after the
    /// current file's first frame.
    pub period_ns: Option<u64>,
    /// Keep at most this many files: file numbers wrap modulo it.
    pub ring: Option<u32>,
}

impl Rotation {
    pub fn rotates(&self) -> bool {
        self.size_limit.is_some() || self.period_ns.is_some()
    }
}

/// What one file of the sequence holds (so far, for the open one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// Earliest and latest capture time in the file (a capture's times may
    /// go backwards, so not necessarily its first and last frame), ns.
    pub min_ns: u64,
    pub max_ns: u64,
    /// Capture time of the file's first frame: `-G` counts from here.
    pub first_ns: u64,
    pub frames: u64,
    /// Bytes handed to the file, headers included (its size once flushed).
    pub bytes: u64,
    /// Link type of the file's frames (a pcap file holds one).
    pub linktype: Option<LinkType>,
}

impl Span {
    #[inline]
    fn add(&mut self, ts_ns: u64) {
        if self.frames == 0 {
            self.min_ns = ts_ns;
            self.max_ns = ts_ns;
            self.first_ns = ts_ns;
        } else {
            self.min_ns = self.min_ns.min(ts_ns);
            self.max_ns = self.max_ns.max(ts_ns);
        }
        self.frames += 1;
    }
}

/// A file of the sequence, closed or open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpan {
    /// The file's number as named (wrapped modulo the ring).
    pub number: u64,
    pub path: String,
    pub span: Span,
}

/// Why a file of the sequence could not be created or written. Names the
/// file, and for writes the byte offset reached in it.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("cannot create {path}: {source} (check that the directory exists and is writable)")]
    Create {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: at byte offset {offset}: {source}")]
    Write {
        path: String,
        offset: u64,
        #[source]
        source: WriteError,
    },
}

/// Names file number `n` (already wrapped modulo the ring).
pub type Namer = Box<dyn Fn(u64) -> String + Send>;

/// tcpdump's naming for `-w OUT`: OUT, OUT1, OUT2, …
pub fn numbered(base: &str) -> Namer {
    let base = base.to_string();
    Box::new(move |n| {
        if n == 0 {
            base.clone()
        } else {
            format!("{base}{n}")
        }
    })
}

struct Open {
    path: String,
    number: u64,
    writer: CaptureWriter<Box<dyn Write>>,
    span: Span,
}

/// Writes frames into a sequence of capture files cut by [`Rotation`].
pub struct RotatingWriter {
    name: Namer,
    format: OutputFormat,
    snaplen: u32,
    rotation: Rotation,
    /// A pcap file holds one link type: start a new file when it changes
    /// (otherwise such a frame is an error, as for a single file).
    split_on_linktype: bool,
    /// Remove an existing regular file before creating its successor, so a
    /// reader that has it open keeps reading the old contents.
    replace: bool,
    before_open: Option<Box<dyn FnMut(u64) + Send>>,
    /// Sequence number (unwrapped) of the current file, or of the first
    /// one while none was opened.
    index: u64,
    opened_any: bool,
    current: Option<Open>,
    done_frames: u64,
    files: u64,
}

impl RotatingWriter {
    /// Nothing is created until [`open`](Self::open) or the first frame.
    pub fn new(name: Namer, format: OutputFormat, snaplen: u32, rotation: Rotation) -> Self {
        RotatingWriter {
            name,
            format,
            snaplen,
            rotation,
            split_on_linktype: false,
            replace: false,
            before_open: None,
            index: 0,
            opened_any: false,
            current: None,
            done_frames: 0,
            files: 0,
        }
    }

    /// Starts a new pcap file when the link type changes instead of failing.
    pub fn split_on_linktype(mut self, yes: bool) -> Self {
        self.split_on_linktype = yes;
        self
    }

    /// Unlinks an existing regular file before re-creating it (readers
    /// holding it open keep the old data; never touches devices or pipes).
    pub fn replace_existing(mut self, yes: bool) -> Self {
        self.replace = yes;
        self
    }

    /// The first file gets this sequence number (a ring resuming where an
    /// earlier run stopped).
    pub fn starting_at(mut self, index: u64) -> Self {
        self.index = index;
        self
    }

    /// Called with a file's (wrapped) number just before it is created.
    pub fn before_open(mut self, f: impl FnMut(u64) + Send + 'static) -> Self {
        self.before_open = Some(Box::new(f));
        self
    }

    fn number(&self, index: u64) -> u64 {
        match self.rotation.ring {
            Some(r) if r > 0 => index % r as u64,
            _ => index,
        }
    }

    /// Name of the current file (or the first, before any was opened).
    pub fn current_name(&self) -> String {
        match &self.current {
            Some(o) => o.path.clone(),
            None => (self.name)(self.number(self.index)),
        }
    }

    /// The open file and what it holds so far.
    pub fn current(&self) -> Option<(u64, &str, Span)> {
        self.current.as_ref().map(|o| {
            let mut span = o.span;
            span.bytes = o.writer.bytes_written();
            (o.number, o.path.as_str(), span)
        })
    }

    /// Frames written into all files.
    pub fn frames_written(&self) -> u64 {
        self.done_frames + self.current.as_ref().map_or(0, |o| o.span.frames)
    }

    /// Files created so far.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// Creates the current file if none is open; with `linktype`, writes its
    /// header at once, so an empty capture still leaves a valid file.
    pub fn open(&mut self, linktype: Option<LinkType>) -> Result<(), RotateError> {
        if self.current.is_none() {
            self.open_next()?;
        }
        if let (Some(lt), Some(o)) = (linktype, self.current.as_mut()) {
            o.writer.begin(lt).map_err(|source| RotateError::Write {
                path: o.path.clone(),
                offset: o.writer.bytes_written(),
                source,
            })?;
            o.span.linktype.get_or_insert(lt);
        }
        Ok(())
    }

    fn open_next(&mut self) -> Result<(), RotateError> {
        let index = if self.opened_any {
            self.index + 1
        } else {
            self.index
        };
        let number = self.number(index);
        let path = (self.name)(number);
        if let Some(f) = self.before_open.as_mut() {
            f(number);
        }
        let out: Box<dyn Write> = if path == "-" {
            Box::new(io::stdout().lock())
        } else {
            if self.replace
                && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file())
            {
                let _ = std::fs::remove_file(&path);
            }
            Box::new(File::create(&path).map_err(|source| RotateError::Create {
                path: path.clone(),
                source,
            })?)
        };
        self.index = index;
        self.opened_any = true;
        self.files += 1;
        self.current = Some(Open {
            path,
            number,
            writer: CaptureWriter::new(out, self.format, self.snaplen),
            span: Span::default(),
        });
        Ok(())
    }

    /// Whether a frame at `ts_ns` of `linktype` starts a new file.
    #[inline]
    fn due(&self, o: &Open, ts_ns: u64, linktype: LinkType) -> bool {
        if o.span.frames == 0 {
            return false;
        }
        self.rotation
            .size_limit
            .is_some_and(|l| o.writer.bytes_written() >= l)
            || self
                .rotation
                .period_ns
                .is_some_and(|p| ts_ns.saturating_sub(o.span.first_ns) >= p)
            || (self.split_on_linktype
                && self.format == OutputFormat::Pcap
                && o.span.linktype.is_some_and(|l| l != linktype))
    }

    /// Writes one frame, first cutting the file when it is due; returns the
    /// file closed by that cut. After an error the current file is left as
    /// is: [`abandon`](Self::abandon) it to go on with the next.
    #[inline]
    pub fn write(
        &mut self,
        ts_ns: u64,
        wire_len: u32,
        linktype: LinkType,
        data: &[u8],
    ) -> Result<Option<FileSpan>, RotateError> {
        let mut closed = None;
        match &self.current {
            Some(o) if self.due(o, ts_ns, linktype) => {
                closed = self.close()?;
                self.open_next()?;
            }
            Some(_) => {}
            None => self.open_next()?,
        }
        let Some(o) = self.current.as_mut() else {
            unreachable!("a file was just opened")
        };
        o.writer
            .write_frame(ts_ns, wire_len, linktype, data)
            .map_err(|source| RotateError::Write {
                path: o.path.clone(),
                offset: o.writer.bytes_written(),
                source,
            })?;
        o.span.add(ts_ns);
        o.span.linktype.get_or_insert(linktype);
        Ok(closed)
    }

    /// Hands buffered frames of the current file to the OS.
    pub fn flush(&mut self) -> Result<(), RotateError> {
        match self.current.as_mut() {
            Some(o) => o.writer.flush().map_err(|source| RotateError::Write {
                path: o.path.clone(),
                offset: o.writer.bytes_written(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Flushes and closes the current file; the next frame opens the next
    /// one. Returns what the closed file holds.
    pub fn close(&mut self) -> Result<Option<FileSpan>, RotateError> {
        self.flush()?;
        Ok(self.take_current())
    }

    /// Drops the current file without reporting errors (after one was
    /// reported); the next frame opens the next file.
    pub fn abandon(&mut self) -> Option<FileSpan> {
        self.take_current()
    }

    fn take_current(&mut self) -> Option<FileSpan> {
        let o = self.current.take()?;
        let mut span = o.span;
        span.bytes = o.writer.bytes_written();
        self.done_frames += span.frames;
        Some(FileSpan {
            number: o.number,
            path: o.path,
            span,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CaptureReader;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ts-rotate-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn read_times(path: &str) -> Vec<u64> {
        let mut r = CaptureReader::open(path).unwrap();
        let mut t = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            t.push(f.ts_ns);
        }
        t
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn cuts_by_time_and_wraps_in_a_ring() {
        let d = dir("ring");
        let base = d.join("out.pcap").to_string_lossy().into_owned();
        let mut w = RotatingWriter::new(
            numbered(&base),
            OutputFormat::Pcap,
            65_535,
            Rotation {
                period_ns: Some(S),
                ring: Some(3),
                ..Rotation::default()
            },
        );
        let mut closed = Vec::new();
        for i in 0..10u64 {
            if let Some(c) = w
                .write(i * S / 2, 60, LinkType::ETHERNET, &[0; 60])
                .unwrap()
            {
                closed.push(c);
            }
        }
        closed.extend(w.close().unwrap());
        // Two frames per second of capture time, one file per second.
        assert_eq!(closed.len(), 5);
        assert_eq!(
            closed.iter().map(|c| c.number).collect::<Vec<_>>(),
            [0, 1, 2, 0, 1]
        );
        assert!(closed.iter().all(|c| c.span.frames == 2));
        assert_eq!(closed[4].span.min_ns, 4 * S);
        assert_eq!(closed[4].span.max_ns, 4 * S + S / 2);
        assert_eq!(closed[4].span.bytes, 24 + 2 * (16 + 60));
        // The ring holds the last three seconds; numbering wrapped.
        assert_eq!(read_times(&base), [3 * S, 3 * S + S / 2]);
        assert_eq!(read_times(&format!("{base}1")), [4 * S, 4 * S + S / 2]);
        assert_eq!(read_times(&format!("{base}2")), [2 * S, 2 * S + S / 2]);
        assert_eq!(w.frames_written(), 10);
        assert_eq!(w.files(), 5);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn cuts_by_size_and_on_a_new_link_type() {
        let d = dir("size");
        let base = d.join("s.pcap").to_string_lossy().into_owned();
        let mut opened = Vec::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = RotatingWriter::new(
            numbered(&base),
            OutputFormat::Pcap,
            65_535,
            Rotation {
                size_limit: Some(200),
                ..Rotation::default()
            },
        )
        .split_on_linktype(true)
        .replace_existing(true)
        .before_open(move |n| tx.send(n).unwrap());
        for i in 0..4 {
            w.write(i, 100, LinkType::ETHERNET, &[0; 100]).unwrap();
        }
        // A raw-IP frame cannot join an Ethernet pcap: a new file.
        w.write(9, 40, LinkType::RAW, &[0x45; 40]).unwrap();
        w.close().unwrap();
        opened.extend(rx.try_iter());
        // 24 + 116 = 140 < 200, then 256 ≥ 200: two frames per file.
        assert_eq!(opened, [0, 1, 2]);
        assert_eq!(read_times(&base), [0, 1]);
        assert_eq!(read_times(&format!("{base}1")), [2, 3]);
        let r = CaptureReader::open(&format!("{base}2")).unwrap();
        assert_eq!(r.first_linktype(), Some(LinkType::RAW));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_replaced_file_stays_readable_by_whoever_has_it_open() {
        let d = dir("replace");
        let base = d.join("r.pcap").to_string_lossy().into_owned();
        let mut w = RotatingWriter::new(
            numbered(&base),
            OutputFormat::Pcap,
            65_535,
            Rotation {
                period_ns: Some(S),
                ring: Some(1),
                ..Rotation::default()
            },
        )
        .replace_existing(true);
        w.write(0, 60, LinkType::ETHERNET, &[1; 60]).unwrap();
        w.flush().unwrap();
        let mut old = CaptureReader::open(&base).unwrap();
        w.write(5 * S, 60, LinkType::ETHERNET, &[2; 60]).unwrap();
        w.close().unwrap();
        assert_eq!(old.next_frame().unwrap().unwrap().data[0], 1);
        assert_eq!(read_times(&base), [5 * S]);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn errors_name_the_file() {
        let mut w = RotatingWriter::new(
            numbered("/nonexistent-dir/x.pcap"),
            OutputFormat::Pcap,
            0,
            Rotation::default(),
        );
        let e = w
            .write(0, 60, LinkType::ETHERNET, &[0; 60])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent-dir/x.pcap"), "{e}");
    }
}

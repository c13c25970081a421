//! Where packets come from: capture files (in sequence, optionally looped,
//! paced by capture time), a live interface (AF_PACKET ring, kernel filter,
//! kernel drops counted), or the in-process generator (with each frame's
//! ground truth). Every command reads packets through [`Input::for_each`],
//! the one read loop; an optional tcpdump-style filter and a progress bar
//! on a terminal come with it.

use std::io::{self, IsTerminal};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use capture::{CaptureReader, Compression, Frame, LinkType, Pacer};
use indicatif::{ProgressBar, ProgressStyle};

/// What to read. Exactly one of `files`, `interface` or `generate`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Capture files read in sequence (`-` for standard input).
    pub files: Vec<String>,
    /// Live interface (`any` for all).
    pub interface: Option<String>,
    /// In-process generator: frames come with their flow's class.
    pub generate: Option<generate::GenerateConfig>,
    /// tcpdump-style filter: in the kernel for live capture, interpreted otherwise.
    pub filter: Option<String>,
    pub snaplen: u32,
    pub promiscuous: bool,
    pub cooked_header: live::CookedHeader,
    /// Stop after this much wall time.
    pub duration: Option<Duration>,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Replay speed for files and the generator (`None`: as fast as possible).
    pub speed: Option<f64>,
    /// Start again from the first file after the last one, with capture
    /// times shifted so the replay continues forwards in time.
    pub loop_files: bool,
    /// Show a progress bar for large files when stderr is a terminal.
    pub progress: bool,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            files: Vec::new(),
            interface: None,
            generate: None,
            filter: None,
            snaplen: 262_144,
            promiscuous: true,
            cooked_header: live::CookedHeader::Sll2,
            duration: None,
            count: None,
            speed: None,
            loop_files: false,
            progress: true,
        }
    }
}

/// Why a source could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Inconsistent options or a filter that does not compile.
    #[error("{0}")]
    Usage(String),
    /// The capture is damaged or unreadable; frames before it were processed.
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
    #[error(transparent)]
    Live(#[from] live::LiveError),
    #[error(transparent)]
    Generate(#[from] generate::GenerateError),
    /// The consumer failed (output closed, disk full, …).
    #[error(transparent)]
    Sink(#[from] io::Error),
}

pub enum Source {
    File(CaptureReader),
    Live(live::LiveCapture),
    Generator(Box<generate::FrameStream>),
}

/// Where a frame came from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The frame's ground-truth class, when the source knows it (the generator).
    pub truth: Option<&'static str>,
    /// The capture file it was read from, as given.
    pub file: Option<&'a str>,
}

/// What the read loop hands to a command.
pub enum Event<'a, 'b> {
    /// A frame and where it came from.
    Frame(&'a Frame<'b>, Origin<'a>),
    /// The current time in capture-time terms, so timers (flow timeouts,
    /// bins) run without traffic: about every 100 ms of a live capture (the
    /// wall clock), and while a paced replay or the generator waits for its
    /// next frame (the capture time that now corresponds to).
    Tick(u64),
}

/// A source being read.
pub struct Input {
    pub source: Source,
    files: Vec<String>,
    /// Index in `files` of the open file.
    file_index: usize,
    loop_files: bool,
    /// Added to capture times of the current pass over the files.
    ts_offset: u64,
    /// First and last capture time of the current pass.
    pass_span: Option<(u64, u64)>,
    /// Completed passes over the files.
    pub passes: u64,
    pacer: Pacer,
    count: Option<u64>,
    duration: Option<Duration>,
    filter_expr: Option<String>,
    /// Compiled per link type, for files (pcapng may mix link types).
    filters: Vec<(u32, filter::Program)>,
    progress: Option<ProgressBar>,
    /// Frames read from the source (before the filter).
    pub read: u64,
    /// Frames that passed the filter.
    pub passed: u64,
    /// Kept up to date with the kernel's drop counter during a live capture.
    kernel_drops: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

static STOP: OnceLock<live::StopHandle> = OnceLock::new();
static STOP_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(h) = STOP.get() {
        h.stop();
    }
}

/// Makes SIGINT and SIGTERM end the read loop cleanly (flows flushed,
/// counters reported) instead of killing the process.
pub fn stop_on_signals() {
    // SAFETY: the handler only stores to atomics and calls StopHandle::stop,
    // which is async-signal-safe (an atomic store and an eventfd write).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`stop_on_signals`].
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Asks the read loop to stop, as a signal would.
pub fn request_stop() {
    on_signal(0);
}

impl Input {
    pub fn open(cfg: &SourceConfig) -> Result<Self, SourceError> {
        let chosen = (!cfg.files.is_empty()) as u8
            + cfg.interface.is_some() as u8
            + cfg.generate.is_some() as u8;
        if chosen > 1 {
            return Err(SourceError::Usage(
                "give one source: -r FILE, -i INTERFACE or --generate MIX".into(),
            ));
        }
        let mut progress = None;
        let source = if let Some(path) = cfg.files.first() {
            let reader = CaptureReader::open(path)?;
            if cfg.progress && cfg.files.len() == 1 && !cfg.loop_files {
                progress = progress_bar(path, &reader);
            }
            Source::File(reader)
        } else if let Some(iface) = &cfg.interface {
            let mut lc = live::LiveConfig::new(iface.clone());
            lc.snaplen = cfg.snaplen;
            lc.promiscuous = cfg.promiscuous;
            lc.cooked_header = cfg.cooked_header;
            let mut cap = live::LiveCapture::open(&lc)?;
            if let Some(expr) = &cfg.filter {
                let prog = filter::compile(expr, cap.linktype(), lc.effective_snaplen())
                    .map_err(|e| SourceError::Usage(e.to_string()))?;
                let insns: Vec<live::BpfInsn> = prog
                    .insns()
                    .iter()
                    .map(|i| live::BpfInsn {
                        code: i.code,
                        jt: i.jt,
                        jf: i.jf,
                        k: i.k,
                    })
                    .collect();
                cap.set_filter(Some(&insns))?;
            }
            // Ctrl-C and SIGTERM end the capture cleanly: flows are flushed
            // and the kernel's counters reported.
            let _ = STOP.set(cap.stop_handle());
            stop_on_signals();
            Source::Live(cap)
        } else if let Some(g) = &cfg.generate {
            Source::Generator(Box::new(generate::FrameStream::new(g.clone())?))
        } else {
            return Err(SourceError::Usage(
                "nothing to read: give -r FILE (or -r - for standard input) or -i INTERFACE".into(),
            ));
        };
        let mut pacer = Pacer::new(cfg.speed);
        if let Some(g) = &cfg.generate {
            // Generated times start at `start_ns`: pace from there, so that
            // users who start a few seconds in do so in real time too.
            pacer = pacer.anchored(Instant::now(), g.start_ns);
        }
        let mut input = Input {
            source,
            files: cfg.files.clone(),
            file_index: 0,
            loop_files: cfg.loop_files,
            ts_offset: 0,
            pass_span: None,
            passes: 0,
            pacer,
            count: cfg.count,
            duration: cfg.duration,
            filter_expr: None,
            filters: Vec::new(),
            progress,
            read: 0,
            passed: 0,
            kernel_drops: None,
        };
        if !matches!(input.source, Source::Live(_)) {
            input.filter_expr = cfg.filter.clone();
            // Fail early on a bad expression, before any output.
            if let Some(expr) = &input.filter_expr {
                let lt = match &input.source {
                    Source::File(r) => r.first_linktype().map(|l| l.0).unwrap_or(1),
                    _ => LinkType::ETHERNET.0,
                };
                let prog = filter::compile(expr, lt, 262_144)
                    .map_err(|e| SourceError::Usage(e.to_string()))?;
                input.filters.push((lt, prog));
            }
        }
        Ok(input)
    }

    /// A counter the live loop keeps equal to the kernel's drops (read
    /// about every 100 ms), for reports while the capture runs.
    pub fn track_kernel_drops(&mut self, counter: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        self.kernel_drops = Some(counter);
    }

    /// The open file's reader, when reading files.
    pub fn reader(&self) -> Option<&CaptureReader> {
        match &self.source {
            Source::File(r) => Some(r),
            _ => None,
        }
    }

    /// The file being read (for label lookups by capture name).
    pub fn current_file(&self) -> Option<&str> {
        match self.source {
            Source::File(_) => self.files.get(self.file_index).map(String::as_str),
            _ => None,
        }
    }

    /// Index in `filters` of the program for `linktype`, compiled on first use.
    fn file_filter(&mut self, linktype: u32) -> Result<Option<usize>, SourceError> {
        let Some(expr) = &self.filter_expr else {
            return Ok(None);
        };
        if let Some(i) = self.filters.iter().position(|(l, _)| *l == linktype) {
            return Ok(Some(i));
        }
        let prog = filter::compile(expr, linktype, 262_144)
            .map_err(|e| SourceError::Usage(e.to_string()))?;
        self.filters.push((linktype, prog));
        Ok(Some(self.filters.len() - 1))
    }

    fn limits_reached(&self, started: Instant) -> bool {
        self.count.is_some_and(|c| self.passed >= c)
            || self.duration.is_some_and(|d| started.elapsed() >= d)
            || stop_requested()
    }

    /// Feeds every frame to `f` until the input ends, `-c`/`--duration` is
    /// reached, a stop is requested (SIGINT/SIGTERM), the capture turns out
    /// damaged, or `f` fails.
    pub fn for_each(
        &mut self,
        mut f: impl FnMut(Event<'_, '_>) -> io::Result<()>,
    ) -> Result<(), SourceError> {
        let started = Instant::now();
        let result = match &mut self.source {
            Source::File(_) => self.for_each_file(&mut f, started),
            Source::Live(_) => self.for_each_live(&mut f, started),
            Source::Generator(_) => self.for_each_generated(&mut f, started),
        };
        if let Some(pb) = self.progress.take() {
            pb.finish_and_clear();
        }
        result
    }

    /// Opens the next file of the sequence (or the first again when
    /// looping); false at the end.
    fn next_file(&mut self) -> Result<bool, SourceError> {
        let mut next = self.file_index + 1;
        if next >= self.files.len() {
            if !self.loop_files {
                return Ok(false);
            }
            next = 0;
            // The next pass starts 1 ms after this one ended, in capture time.
            if let Some((first, last)) = self.pass_span.take() {
                let span = last.saturating_sub(first) + 1_000_000;
                // Times are kept as signed 64-bit ns downstream (SQLite):
                // stop before the next pass would pass 2262.
                let fits = self
                    .ts_offset
                    .checked_add(span)
                    .and_then(|o| o.checked_add(last))
                    .is_some_and(|end| end <= i64::MAX as u64);
                if !fits {
                    eprintln!(
                        "trafficscope: --loop stops after {} passes: the files span {:.0} days of \
                         capture time, and another pass would run past the year 2262",
                        self.passes + 1,
                        span as f64 / 86_400e9
                    );
                    return Ok(false);
                }
                self.ts_offset += span;
            }
            self.passes += 1;
        }
        let reader = CaptureReader::open(&self.files[next])?;
        self.source = Source::File(reader);
        self.file_index = next;
        Ok(true)
    }

    fn for_each_file(
        &mut self,
        f: &mut impl FnMut(Event<'_, '_>) -> io::Result<()>,
        started: Instant,
    ) -> Result<(), SourceError> {
        loop {
            if self.limits_reached(started) {
                return Ok(());
            }
            if self.read & 0xffff == 0 {
                if let (Some(pb), Source::File(r)) = (&self.progress, &self.source) {
                    pb.set_position(r.offset());
                    pb.set_message(format!("{} packets", self.read));
                }
            }
            let Source::File(reader) = &mut self.source else {
                unreachable!()
            };
            let linktype = match reader.next_frame() {
                Ok(Some(frame)) => frame.linktype.0,
                Ok(None) => {
                    if self.next_file()? {
                        continue;
                    }
                    return Ok(());
                }
                Err(e) => return Err(SourceError::Capture(e)),
            };
            self.read += 1;
            let pass = match self.file_filter(linktype)? {
                Some(i) => {
                    let prog = &self.filters[i].1;
                    let Source::File(reader) = &self.source else {
                        unreachable!()
                    };
                    let fr = reader.last_frame().expect("frame just read");
                    prog.matches(fr.data, fr.wire_len)
                }
                None => true,
            };
            if !pass {
                continue;
            }
            let Source::File(reader) = &self.source else {
                unreachable!()
            };
            let mut frame = reader.last_frame().expect("frame just read");
            if self.loop_files {
                let span = self.pass_span.get_or_insert((frame.ts_ns, frame.ts_ns));
                span.0 = span.0.min(frame.ts_ns);
                span.1 = span.1.max(frame.ts_ns);
                frame.ts_ns += self.ts_offset;
            }
            if !pace(&mut self.pacer, frame.ts_ns, f)? {
                return Ok(());
            }
            self.passed += 1;
            let origin = Origin {
                truth: None,
                file: self.files.get(self.file_index).map(String::as_str),
            };
            f(Event::Frame(&frame, origin))?;
        }
    }

    fn for_each_generated(
        &mut self,
        f: &mut impl FnMut(Event<'_, '_>) -> io::Result<()>,
        started: Instant,
    ) -> Result<(), SourceError> {
        let mut number = 0u64;
        loop {
            if self.limits_reached(started) {
                return Ok(());
            }
            let Source::Generator(gen) = &mut self.source else {
                unreachable!()
            };
            let Some(g) = gen.next_frame() else {
                return Ok(());
            };
            number += 1;
            self.read += 1;
            let frame = Frame {
                number,
                ts_ns: g.ts_ns,
                wire_len: g.data.len() as u32,
                linktype: LinkType::ETHERNET,
                interface: 0,
                data: g.data,
            };
            if let Some((_, prog)) = self.filters.first() {
                if !prog.matches(frame.data, frame.wire_len) {
                    continue;
                }
            }
            if !pace(&mut self.pacer, frame.ts_ns, f)? {
                return Ok(());
            }
            self.passed += 1;
            let origin = Origin {
                truth: Some(g.class.label()),
                file: None,
            };
            f(Event::Frame(&frame, origin))?;
        }
    }

    fn for_each_live(
        &mut self,
        f: &mut impl FnMut(Event<'_, '_>) -> io::Result<()>,
        started: Instant,
    ) -> Result<(), SourceError> {
        let Source::Live(cap) = &mut self.source else {
            unreachable!()
        };
        let linktype = LinkType(cap.linktype());
        let mut err: Option<io::Error> = None;
        let (count, duration) = (self.count, self.duration);
        let passed = &mut self.passed;
        loop {
            if count.is_some_and(|c| *passed >= c)
                || duration.is_some_and(|d| started.elapsed() >= d)
            {
                break;
            }
            let stopped = cap.is_stopped();
            cap.next_batch(Duration::from_millis(100), &mut |fr: live::Frame<'_>| {
                if err.is_some() || count.is_some_and(|c| *passed >= c) {
                    return;
                }
                *passed += 1;
                let frame = Frame {
                    number: *passed,
                    ts_ns: fr.ts_ns,
                    wire_len: fr.wire_len,
                    linktype,
                    interface: 0,
                    data: fr.data,
                };
                if let Err(e) = f(Event::Frame(&frame, Origin::default())) {
                    err = Some(e);
                }
            })?;
            if let Some(e) = err.take() {
                return Err(SourceError::Sink(e));
            }
            if let Some(c) = &self.kernel_drops {
                c.store(cap.stats().dropped, std::sync::atomic::Ordering::Relaxed);
            }
            f(Event::Tick(crate::unix_now_ns()))?;
            if stopped {
                break;
            }
        }
        self.read = self.passed;
        Ok(())
    }

    /// Kernel counters of a live capture.
    pub fn live_stats(&mut self) -> Option<live::LiveStats> {
        match &mut self.source {
            Source::Live(c) => Some(c.stats()),
            _ => None,
        }
    }

    /// One line for stderr at the end of a live capture, like tcpdump's.
    pub fn report_live(&mut self) {
        if let Some(s) = self.live_stats() {
            eprintln!(
                "trafficscope: {} packets captured, {} received by filter, {} dropped by kernel",
                self.passed, s.received, s.dropped
            );
        }
    }
}

/// Waits until a paced frame is due, in steps of at most 100 ms, with a
/// clock tick (the capture time of now) after each step, so bins close and
/// flows time out while a replay or the generator is quiet. False when a
/// stop was requested meanwhile.
fn pace(
    pacer: &mut Pacer,
    ts_ns: u64,
    f: &mut impl FnMut(Event<'_, '_>) -> io::Result<()>,
) -> Result<bool, SourceError> {
    while let Some(d) = pacer.due_in(ts_ns) {
        if stop_requested() {
            return Ok(false);
        }
        std::thread::sleep(d.min(Duration::from_millis(100)));
        if let Some(now) = pacer.capture_now() {
            if now < ts_ns {
                f(Event::Tick(now))?;
            }
        }
    }
    Ok(true)
}

fn progress_bar(path: &str, reader: &CaptureReader) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() || path == "-" {
        return None;
    }
    let size = std::fs::metadata(path).map(|m| m.len()).ok()?;
    if reader.compression() != Compression::None || size <= 8 << 20 {
        return None;
    }
    let pb = ProgressBar::new(size);
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(pb)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcap with one frame at each of `times_ns`.
    fn pcap(name: &str, times_ns: &[u64]) -> String {
        let path = std::env::temp_dir().join(format!("ts-source-{}-{name}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let mut w = capture::CaptureWriter::new(file, capture::OutputFormat::Pcap, 65_535);
        for &t in times_ns {
            w.write_frame(t, 60, LinkType::ETHERNET, &[0u8; 60])
                .unwrap();
        }
        w.flush().unwrap();
        path.to_string_lossy().into_owned()
    }

    fn times(cfg: &SourceConfig) -> Vec<u64> {
        let mut input = Input::open(cfg).unwrap();
        let mut seen = Vec::new();
        input
            .for_each(|ev| {
                if let Event::Frame(f, _) = ev {
                    seen.push(f.ts_ns);
                }
                Ok(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn looped_files_continue_forwards_in_capture_time() {
        let s = 1_000_000_000u64;
        let p = pcap("loop.pcap", &[100 * s, 101 * s, 103 * s]);
        let cfg = SourceConfig {
            files: vec![p.clone()],
            loop_files: true,
            count: Some(9),
            ..SourceConfig::default()
        };
        let t = times(&cfg);
        // Each pass starts 1 ms after the previous one ended.
        let pass = 3 * s + 1_000_000;
        let want: Vec<u64> = (0..3)
            .flat_map(|k| [100 * s, 101 * s, 103 * s].map(|x| x + k * pass))
            .collect();
        assert_eq!(t, want);
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn a_loop_over_captures_spanning_centuries_stops_before_times_overflow() {
        let year = 365 * 86_400 * 1_000_000_000u64;
        let p = pcap("centuries.pcap", &[0, 100 * year]);
        let cfg = SourceConfig {
            files: vec![p.clone()],
            loop_files: true,
            ..SourceConfig::default()
        };
        let t = times(&cfg);
        assert!(t.len() >= 4 && t.len().is_multiple_of(2), "{t:?}");
        assert!(t.windows(2).all(|w| w[0] < w[1]), "forwards: {t:?}");
        assert!(t.iter().all(|&x| x <= i64::MAX as u64), "{t:?}");
        let _ = std::fs::remove_file(p);
    }
}

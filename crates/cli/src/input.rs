//! The packet source of a command: a capture file (or stdin), paced if asked,
//! or a live interface; an optional tcpdump-style filter; a progress bar on a
//! terminal.

use std::io::{self, IsTerminal};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use capture::{CaptureReader, Compression, Frame, LinkType, Pacer};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{Failure, InputArgs};

pub enum Source {
    File(CaptureReader),
    Live(live::LiveCapture),
}

pub struct Input {
    pub source: Source,
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
}

/// What the read loop hands to a command.
pub enum Event<'a, 'b> {
    Frame(&'a Frame<'b>),
    /// About every 100 ms of a live capture: the wall clock in ns, so timers
    /// (flow timeouts) run without traffic.
    Tick(u64),
}

/// Why a read loop stopped early.
pub enum Stop {
    /// The capture is damaged; frames before it were processed.
    Capture(capture::CaptureError),
    /// The consumer failed (output closed, disk full, …).
    Sink(io::Error),
    /// The filter does not compile for a link type met in the file.
    Filter(String),
    Live(live::LiveError),
}

impl From<Stop> for Failure {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Capture(e) => Failure::Input(e.into()),
            Stop::Sink(e) => Failure::Input(e.into()),
            Stop::Filter(e) => Failure::Usage(e),
            Stop::Live(e) => Failure::Input(e.into()),
        }
    }
}

static STOP: OnceLock<live::StopHandle> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    if let Some(h) = STOP.get() {
        h.stop();
    }
}

impl Input {
    pub fn open(args: &InputArgs) -> Result<Self, Failure> {
        let (source, progress) = match (&args.read, &args.interface) {
            (Some(path), None) => {
                let reader = CaptureReader::open(path)?;
                let progress = progress_bar(path, &reader);
                (Source::File(reader), progress)
            }
            (None, Some(iface)) => {
                let mut cfg = live::LiveConfig::new(iface.clone());
                cfg.snaplen = args.snaplen;
                cfg.promiscuous = !args.no_promiscuous;
                cfg.cooked_header = args.cooked_header;
                let mut cap =
                    live::LiveCapture::open(&cfg).map_err(|e| Failure::Input(e.into()))?;
                if let Some(expr) = &args.filter {
                    let prog = filter::compile(expr, cap.linktype(), cfg.effective_snaplen())
                        .map_err(|e| Failure::Usage(e.to_string()))?;
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
                    cap.set_filter(Some(&insns))
                        .map_err(|e| Failure::Input(e.into()))?;
                }
                // Ctrl-C and SIGTERM end the capture cleanly: flows are flushed
                // and the kernel's counters reported.
                if STOP.set(cap.stop_handle()).is_ok() {
                    // SAFETY: the handler only calls StopHandle::stop, which is
                    // async-signal-safe (an atomic store and an eventfd write).
                    unsafe {
                        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
                        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
                    }
                }
                (Source::Live(cap), None)
            }
            (Some(_), Some(_)) => {
                return Err(Failure::Usage(
                    "give either -r FILE or -i INTERFACE, not both".into(),
                ))
            }
            (None, None) => {
                return Err(Failure::Usage(
                    "nothing to read: give -r FILE (or -r - for standard input) or -i INTERFACE"
                        .into(),
                ))
            }
        };
        let filters = Vec::new();
        let mut input = Input {
            source,
            pacer: Pacer::new(args.speed.0),
            count: args.count,
            duration: args.duration,
            filter_expr: None,
            filters,
            progress,
            read: 0,
            passed: 0,
        };
        if matches!(input.source, Source::File(_)) {
            input.filter_expr = args.filter.clone();
            // Fail early on a bad expression, before any output.
            if let (Some(expr), Source::File(r)) = (&input.filter_expr, &input.source) {
                let lt = r.first_linktype().map(|l| l.0).unwrap_or(1);
                let prog = filter::compile(expr, lt, 262_144)
                    .map_err(|e| Failure::Usage(e.to_string()))?;
                input.filters.push((lt, prog));
            }
        }
        Ok(input)
    }

    /// The file reader, when reading a file.
    pub fn reader(&self) -> Option<&CaptureReader> {
        match &self.source {
            Source::File(r) => Some(r),
            Source::Live(_) => None,
        }
    }

    /// Index in `filters` of the program for `linktype`, compiled on first use.
    fn file_filter(&mut self, linktype: u32) -> Result<Option<usize>, Stop> {
        let Some(expr) = &self.filter_expr else {
            return Ok(None);
        };
        if let Some(i) = self.filters.iter().position(|(l, _)| *l == linktype) {
            return Ok(Some(i));
        }
        let prog =
            filter::compile(expr, linktype, 262_144).map_err(|e| Stop::Filter(e.to_string()))?;
        self.filters.push((linktype, prog));
        Ok(Some(self.filters.len() - 1))
    }

    /// Feeds every frame to `f` until the input ends, `-c`/`--duration` is
    /// reached, the capture turns out damaged, or `f` fails.
    pub fn for_each(
        &mut self,
        mut f: impl FnMut(Event<'_, '_>) -> io::Result<()>,
    ) -> Result<(), Stop> {
        let started = Instant::now();
        let result = match &mut self.source {
            Source::File(_) => self.for_each_file(&mut f),
            Source::Live(_) => self.for_each_live(&mut f, started),
        };
        if let Some(pb) = self.progress.take() {
            pb.finish_and_clear();
        }
        result
    }

    fn for_each_file(
        &mut self,
        f: &mut impl FnMut(Event<'_, '_>) -> io::Result<()>,
    ) -> Result<(), Stop> {
        loop {
            if self.count.is_some_and(|c| self.passed >= c) {
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
                Ok(None) => return Ok(()),
                Err(e) => return Err(Stop::Capture(e)),
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
            let frame = reader.last_frame().expect("frame just read");
            self.pacer.wait(frame.ts_ns);
            self.passed += 1;
            f(Event::Frame(&frame)).map_err(Stop::Sink)?;
        }
    }

    fn for_each_live(
        &mut self,
        f: &mut impl FnMut(Event<'_, '_>) -> io::Result<()>,
        started: Instant,
    ) -> Result<(), Stop> {
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
                if let Err(e) = f(Event::Frame(&frame)) {
                    err = Some(e);
                }
            })
            .map_err(Stop::Live)?;
            if let Some(e) = err.take() {
                return Err(Stop::Sink(e));
            }
            f(Event::Tick(wall_ns())).map_err(Stop::Sink)?;
            if stopped {
                break;
            }
        }
        self.read = self.passed;
        Ok(())
    }

    /// Kernel counters of a live capture, for the end-of-run report.
    pub fn live_stats(&mut self) -> Option<live::LiveStats> {
        match &mut self.source {
            Source::Live(c) => Some(c.stats()),
            Source::File(_) => None,
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

fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
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

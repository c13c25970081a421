//! `trafficscope capture`: write what is captured (or read, filtered) to a
//! pcap/pcapng file, like `tcpdump -w`, optionally rotating files by size
//! (`-C`), by capture time (`-G`) and within a ring of files (`-W`).

use std::fs::File;
use std::io::{self, Write};

use capture::{CaptureWriter, LinkType, OutputFormat};
use clap::Args;

use crate::input::{Event, Source};
use crate::{Failure, InputArgs};

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output file; `.pcapng` writes pcapng, anything else pcap (ns timestamps); `-` for stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: String,
    /// Start a new file once this one holds more than MB million bytes
    /// (tcpdump's -C). Files are FILE, FILE1, FILE2, …
    #[arg(short = 'C', long = "rotate-size", value_name = "MB")]
    pub rotate_size: Option<f64>,
    /// Start a new file every SECS seconds of capture time (tcpdump's -G;
    /// capture time, so a replayed file rotates like the live traffic did).
    #[arg(short = 'G', long = "rotate-seconds", value_name = "SECS")]
    pub rotate_seconds: Option<f64>,
    /// Keep at most N files: numbering wraps and the oldest is overwritten
    /// (tcpdump's -W). Needs -C or -G.
    #[arg(short = 'W', long = "ring", value_name = "N")]
    pub ring: Option<u32>,
}

/// Where frames go: one file, or a sequence of files cut by size or time.
struct Rotation {
    base: String,
    format: OutputFormat,
    snaplen: u32,
    size_limit: Option<u64>,
    period_ns: Option<u64>,
    ring: Option<u32>,
    /// Number of the current file (0 = `base` itself).
    index: u64,
    /// Capture time of the first frame in the current file.
    opened_ts: Option<u64>,
    writer: CaptureWriter<Box<dyn Write>>,
    /// Frames in earlier files.
    done_frames: u64,
    files: u64,
}

impl Rotation {
    fn name(&self, index: u64) -> String {
        let n = match self.ring {
            Some(r) => index % r as u64,
            None => index,
        };
        if n == 0 {
            self.base.clone()
        } else {
            format!("{}{n}", self.base)
        }
    }

    fn open(
        path: &str,
        format: OutputFormat,
        snaplen: u32,
    ) -> anyhow::Result<CaptureWriter<Box<dyn Write>>> {
        let out: Box<dyn Write> = if path == "-" {
            Box::new(io::stdout().lock())
        } else {
            Box::new(File::create(path).map_err(|e| anyhow::anyhow!("cannot create {path}: {e}"))?)
        };
        Ok(CaptureWriter::new(out, format, snaplen))
    }

    /// Closes the current file and opens the next one, headed for `lt`.
    fn rotate(&mut self, lt: LinkType) -> anyhow::Result<()> {
        let closing = self.name(self.index);
        self.writer
            .flush()
            .map_err(|e| anyhow::anyhow!("{closing}: {e}"))?;
        self.done_frames += self.writer.frames_written();
        self.index += 1;
        let path = self.name(self.index);
        self.writer = Self::open(&path, self.format, self.snaplen)?;
        self.writer
            .begin(lt)
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        self.files += 1;
        self.opened_ts = None;
        Ok(())
    }

    fn write(
        &mut self,
        ts_ns: u64,
        wire_len: u32,
        lt: LinkType,
        data: &[u8],
    ) -> anyhow::Result<()> {
        if self.writer.frames_written() > 0 {
            let full = self
                .size_limit
                .is_some_and(|l| self.writer.bytes_written() >= l);
            let expired = match (self.period_ns, self.opened_ts) {
                (Some(p), Some(t0)) => ts_ns.saturating_sub(t0) >= p,
                _ => false,
            };
            if full || expired {
                self.rotate(lt)?;
            }
        }
        self.opened_ts.get_or_insert(ts_ns);
        // The file name is only built for the error (no allocation per frame).
        self.writer
            .write_frame(ts_ns, wire_len, lt, data)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.name(self.index)))
    }
}

pub fn run(args: CaptureArgs) -> Result<(), Failure> {
    let rotating = args.rotate_size.is_some() || args.rotate_seconds.is_some();
    if args.ring.is_some() && !rotating {
        return Err(Failure::Usage(
            "-W/--ring needs -C (size) or -G (seconds) to rotate by".into(),
        ));
    }
    if rotating && args.write == "-" {
        return Err(Failure::Usage(
            "-C/-G rotate files: -w - (standard output) cannot be rotated".into(),
        ));
    }
    let positive = |v: Option<f64>, what: &str| match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(Failure::Usage(format!(
            "{what} must be a positive number, not {x}"
        ))),
        _ => Ok(()),
    };
    positive(args.rotate_size, "-C/--rotate-size")?;
    positive(args.rotate_seconds, "-G/--rotate-seconds")?;
    if args.ring == Some(0) {
        return Err(Failure::Usage("-W/--ring must be at least 1".into()));
    }
    let mut input = crate::input::open(&args.input)?;
    let format = OutputFormat::from_path(&args.write);
    let snaplen = match &input.source {
        Source::Live(_) => args.input.capture.snaplen,
        Source::File(_) | Source::Generator(_) => 262_144,
    };
    let mut out = Rotation {
        base: args.write.clone(),
        format,
        snaplen,
        size_limit: args.rotate_size.map(|mb| (mb * 1e6) as u64),
        period_ns: args.rotate_seconds.map(|s| (s * 1e9) as u64),
        ring: args.ring,
        index: 0,
        opened_ts: None,
        writer: Rotation::open(&args.write, format, snaplen)?,
        done_frames: 0,
        files: 1,
    };
    // The header goes out at once, so an interrupted or empty capture is still a valid file.
    let first = match &input.source {
        Source::Live(c) => Some(LinkType(c.linktype())),
        Source::File(r) => r.first_linktype(),
        Source::Generator(_) => Some(LinkType::ETHERNET),
    };
    if let Some(lt) = first {
        out.writer
            .begin(lt)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.write))?;
    }
    let result = input.for_each(|ev| {
        let Event::Frame(frame, _) = ev else {
            return Ok(());
        };
        out.write(frame.ts_ns, frame.wire_len, frame.linktype, frame.data)
            .map_err(io::Error::other)
    });
    let flushed = out.writer.flush();
    let written = out.done_frames + out.writer.frames_written();
    input.report_live();
    if out.files > 1 {
        eprintln!(
            "trafficscope: {written} packets written to {} files, {} … {}",
            out.files,
            args.write,
            out.name(out.index)
        );
    } else {
        eprintln!("trafficscope: {written} packets written to {}", args.write);
    }
    result?;
    flushed.map_err(|e| anyhow::anyhow!("{}: {e}", out.name(out.index)))?;
    Ok(())
}

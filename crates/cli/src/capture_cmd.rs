//! `trafficscope capture`: write what is captured (or read, filtered) to a
//! pcap/pcapng file, like `tcpdump -w`, optionally rotating files by size
//! (`-C`), by capture time (`-G`) and within a ring of files (`-W`).

use std::io;

use capture::{numbered, LinkType, OutputFormat, RotatingWriter, Rotation};
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
    let mut out = RotatingWriter::new(
        numbered(&args.write),
        format,
        snaplen,
        Rotation {
            size_limit: args.rotate_size.map(|mb| (mb * 1e6) as u64),
            period_ns: args.rotate_seconds.map(|s| (s * 1e9) as u64),
            ring: args.ring,
        },
    );
    // The file is created (and, when the link type is known, its header
    // written) at once, so an interrupted or empty capture is still a valid file.
    let first = match &input.source {
        Source::Live(c) => Some(LinkType(c.linktype())),
        Source::File(r) => r.first_linktype(),
        Source::Generator(_) => Some(LinkType::ETHERNET),
    };
    out.open(first).map_err(anyhow::Error::from)?;
    let result = input.for_each(|ev| {
        let Event::Frame(frame, _) = ev else {
            return Ok(());
        };
        out.write(frame.ts_ns, frame.wire_len, frame.linktype, frame.data)
            .map(|_| ())
            .map_err(io::Error::other)
    });
    let last = out.current_name();
    let flushed = out.close();
    let written = out.frames_written();
    input.report_live();
    if out.files() > 1 {
        eprintln!(
            "trafficscope: {written} packets written to {} files, {} … {last}",
            out.files(),
            args.write,
        );
    } else {
        eprintln!("trafficscope: {written} packets written to {}", args.write);
    }
    result?;
    flushed.map_err(anyhow::Error::from)?;
    Ok(())
}

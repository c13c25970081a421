//! `trafficscope capture`: write what is captured (or read, filtered) to a
//! pcap/pcapng file, like `tcpdump -w`.

use std::fs::File;
use std::io::{self, Write};

use capture::{CaptureWriter, LinkType, OutputFormat};
use clap::Args;

use crate::input::{Event, Input, Source};
use crate::{Failure, InputArgs};

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output file; `.pcapng` writes pcapng, anything else pcap (ns timestamps); `-` for stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: String,
}

pub fn run(args: CaptureArgs) -> Result<(), Failure> {
    let mut input = Input::open(&args.input)?;
    let format = OutputFormat::from_path(&args.write);
    let out: Box<dyn Write> = if args.write == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(
            File::create(&args.write)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.write))?,
        )
    };
    let snaplen = match &input.source {
        Source::Live(_) => args.input.snaplen,
        Source::File(_) => 262_144,
    };
    let mut writer = CaptureWriter::new(out, format, snaplen);
    // The header goes out at once, so an interrupted or empty capture is still a valid file.
    let first = match &input.source {
        Source::Live(c) => Some(LinkType(c.linktype())),
        Source::File(r) => r.first_linktype(),
    };
    if let Some(lt) = first {
        writer
            .begin(lt)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.write))?;
    }
    let result = input.for_each(|ev| {
        let Event::Frame(frame) = ev else {
            return Ok(());
        };
        writer
            .write_frame(frame.ts_ns, frame.wire_len, frame.linktype, frame.data)
            .map_err(io::Error::other)
    });
    let flushed = writer.flush();
    let written = writer.frames_written();
    input.report_live();
    eprintln!("trafficscope: {written} packets written to {}", args.write);
    result?;
    flushed.map_err(|e| anyhow::anyhow!("{}: {e}", args.write))?;
    Ok(())
}

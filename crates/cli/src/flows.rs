//! `trafficscope flows`: bidirectional flow records as CSV or JSON Lines.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use clap::{Args, ValueEnum};
use flow::{FlowRecord, FlowTable};

use crate::input::{Event, Stop};
use crate::{Failure, FlowArgs, InputArgs};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowFormat {
    Csv,
    Jsonl,
    /// Arrow IPC file (Feather v2), columnar; needs the `arrow` feature (on by default).
    Arrow,
}

#[derive(Args, Debug)]
pub struct FlowsArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FlowFormat,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<String>,
}

struct FlowSink {
    #[cfg(feature = "arrow")]
    arrow: Option<crate::arrow_out::ArrowFlowWriter<Box<dyn Write>>>,
    out: Box<dyn Write>,
    format: FlowFormat,
    line: String,
    err: Option<io::Error>,
    written: u64,
}

impl FlowSink {
    fn emit(&mut self, r: FlowRecord) {
        if self.err.is_some() {
            return;
        }
        let res = match self.format {
            #[cfg(feature = "arrow")]
            FlowFormat::Arrow => match &mut self.arrow {
                Some(w) => w.push(r).map_err(io::Error::other),
                None => Ok(()),
            },
            #[cfg(not(feature = "arrow"))]
            FlowFormat::Arrow => Ok(()),
            FlowFormat::Csv => flow::write_csv_row(&mut self.out, &r, &mut self.line),
            FlowFormat::Jsonl => serde_json::to_writer(&mut self.out, &r)
                .map_err(io::Error::other)
                .and_then(|()| self.out.write_all(b"\n")),
        };
        match res {
            Ok(()) => self.written += 1,
            Err(e) => self.err = Some(e),
        }
    }
}

pub fn run(args: FlowsArgs) -> Result<(), Failure> {
    let mut input = crate::input::open(&args.input)?;
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(path).map_err(|e| anyhow::anyhow!("cannot create {path}: {e}"))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock())),
    };
    #[cfg(not(feature = "arrow"))]
    if args.format == FlowFormat::Arrow {
        return Err(Failure::Usage(
            "this build has no Arrow support: rebuild with `--features arrow`".into(),
        ));
    }
    #[cfg(feature = "arrow")]
    let (arrow, out): (_, Box<dyn Write>) = if args.format == FlowFormat::Arrow {
        let w = crate::arrow_out::ArrowFlowWriter::new(out)
            .map_err(|e| anyhow::anyhow!("cannot start the Arrow file: {e}"))?;
        (Some(w), Box::new(io::sink()))
    } else {
        (None, out)
    };
    let mut sink = FlowSink {
        #[cfg(feature = "arrow")]
        arrow,
        out,
        format: args.format,
        line: String::with_capacity(512),
        err: None,
        written: 0,
    };
    if args.format == FlowFormat::Csv {
        flow::write_csv_header(&mut sink.out)?;
    }
    let mut table = FlowTable::new(args.flow.config());
    let mut malformed = 0u64;
    let result = input.for_each(|ev| {
        let frame = match ev {
            Event::Frame(f, _) => f,
            Event::Tick(now) => {
                table.advance_to(now, &mut |r| sink.emit(r));
                return sink.err.take().map_or(Ok(()), Err);
            }
        };
        let mut pkt = decode::Packet::new(frame.linktype);
        decode::decode_into(frame.linktype, frame.data, &mut pkt);
        malformed += pkt.malformed.is_some() as u64;
        table.process(&pkt, frame.ts_ns, frame.wire_len, &mut |r| sink.emit(r));
        match sink.err.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    // Whatever happened, the flows seen so far are written out.
    if !matches!(result, Err(Stop::Sink(_))) {
        table.flush(&mut |r| sink.emit(r));
    }
    let flushed = match sink.err.take() {
        Some(e) => Err(e),
        None => sink.out.flush(),
    };
    #[cfg(feature = "arrow")]
    let flushed = match (flushed, sink.arrow.take()) {
        (Ok(()), Some(w)) => w.finish().map_err(io::Error::other),
        (other, _) => other,
    };
    let st = table.stats();
    input.report_live();
    eprintln!(
        "trafficscope: {} packets, {} flows (ended: {} fin, {} rst, {} idle, {} active, {} at end of input; {} evicted by --max-flows), {} malformed, {} without IP",
        input.passed,
        st.flows,
        st.ended_fin,
        st.ended_rst,
        st.ended_idle,
        st.ended_active,
        st.ended_at_end_of_input,
        st.evicted,
        malformed,
        st.non_ip
    );
    result?;
    flushed?;
    Ok(())
}

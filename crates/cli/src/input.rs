//! The packet source of a command: a capture file (or stdin), paced if asked,
//! with a progress bar on a terminal.

use std::io::{self, IsTerminal};

use capture::{CaptureReader, Compression, Frame, Pacer};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{Failure, InputArgs};

pub struct Input {
    pub reader: CaptureReader,
    pacer: Pacer,
    count: Option<u64>,
    progress: Option<ProgressBar>,
}

/// Why a read loop stopped early.
pub enum Stop {
    /// The capture is damaged; frames before it were processed.
    Capture(capture::CaptureError),
    /// The consumer failed (output closed, disk full, …).
    Sink(io::Error),
}

impl From<Stop> for Failure {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Capture(e) => Failure::Input(e.into()),
            Stop::Sink(e) => Failure::Input(e.into()),
        }
    }
}

impl Input {
    pub fn open(args: &InputArgs) -> Result<Self, Failure> {
        let reader = CaptureReader::open(&args.read)?;
        let progress = if io::stderr().is_terminal() && args.read != "-" {
            let size = std::fs::metadata(&args.read).map(|m| m.len()).ok();
            match size {
                Some(n) if reader.compression() == Compression::None && n > 8 << 20 => {
                    let pb = ProgressBar::new(n);
                    pb.set_style(
                        ProgressStyle::with_template(
                            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    Some(pb)
                }
                _ => None,
            }
        } else {
            None
        };
        Ok(Input {
            reader,
            pacer: Pacer::new(args.speed.0),
            count: args.count,
            progress,
        })
    }

    /// Feeds every frame to `f` until the input ends, `-c` is reached, the
    /// capture turns out damaged, or `f` fails.
    pub fn for_each(
        &mut self,
        mut f: impl FnMut(&Frame<'_>) -> io::Result<()>,
    ) -> Result<(), Stop> {
        let mut n = 0u64;
        loop {
            if self.count.is_some_and(|c| n >= c) {
                break;
            }
            if n & 0xffff == 0 {
                if let Some(pb) = &self.progress {
                    pb.set_position(self.reader.offset());
                    pb.set_message(format!("{n} packets"));
                }
            }
            let frame = match self.reader.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    self.finish_progress();
                    return Err(Stop::Capture(e));
                }
            };
            self.pacer.wait(frame.ts_ns);
            n += 1;
            if let Err(e) = f(&frame) {
                self.finish_progress();
                return Err(Stop::Sink(e));
            }
        }
        self.finish_progress();
        Ok(())
    }

    fn finish_progress(&mut self) {
        if let Some(pb) = self.progress.take() {
            pb.finish_and_clear();
        }
    }
}

//! Recording a live run with the `live` crate's AF_PACKET capture.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::GenerateError;

/// What the recording of a live run holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Frames written to the capture file.
    pub packets: u64,
    /// Packets the kernel dropped because the ring was full (0 means the
    /// file has every packet of the run on the interface).
    pub dropped: u64,
}

pub(crate) struct Recorder {
    stop: Arc<AtomicBool>,
    handle: live::StopHandle,
    thread: thread::JoinHandle<Result<RecordStats, GenerateError>>,
}

fn cap_err(e: live::LiveError) -> GenerateError {
    GenerateError::BadArgument(format!("cannot record the live traffic: {e}"))
}

impl Recorder {
    /// Starts capturing on `iface` into `path` (pcapng if it ends in
    /// `.pcapng`), keeping `snaplen` bytes per packet (0: all).
    pub fn start(iface: &str, path: &Path, snaplen: u32) -> Result<Recorder, GenerateError> {
        let mut cfg = live::LiveConfig::new(iface);
        cfg.promiscuous = false;
        cfg.snaplen = snaplen;
        cfg.block_size = 1 << 20;
        cfg.block_count = 64;
        cfg.block_timeout_ms = 20;
        let mut cap = live::LiveCapture::open(&cfg).map_err(cap_err)?;
        let file = File::create(path).map_err(|e| {
            GenerateError::BadArgument(format!(
                "cannot create {}: {e}; check the directory exists and is writable",
                path.display()
            ))
        })?;
        let fmt = capture::OutputFormat::from_path(&path.to_string_lossy());
        let mut w = capture::CaptureWriter::new(BufWriter::new(file), fmt, cfg.effective_snaplen());
        let link = capture::LinkType(cap.linktype());
        w.begin(link)?;
        let handle = cap.stop_handle();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::spawn(move || {
            let mut err: Option<GenerateError> = None;
            let mut write = |f: live::Frame<'_>| {
                if err.is_none() {
                    if let Err(e) = w.write_frame(f.ts_ns, f.wire_len, link, f.data) {
                        err = Some(e.into());
                    }
                }
            };
            loop {
                let stopping = stop2.load(Ordering::Relaxed);
                match cap.next_batch(Duration::from_millis(50), &mut write) {
                    Ok(n) if stopping && n == 0 => break,
                    Ok(_) => {}
                    Err(e) => {
                        err.get_or_insert(cap_err(e));
                        break;
                    }
                }
            }
            let st = cap.stats();
            let packets = w.frames_written();
            let closed = w.into_inner().map_err(GenerateError::from);
            if let Some(e) = err {
                return Err(e);
            }
            closed?;
            Ok(RecordStats {
                packets,
                dropped: st.dropped,
            })
        });
        Ok(Recorder {
            stop,
            handle,
            thread,
        })
    }

    /// Lets the last packets arrive, stops and closes the file.
    pub fn finish(self) -> Result<RecordStats, GenerateError> {
        // The ring hands over a partly filled block after its timeout.
        thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::Relaxed);
        self.handle.stop();
        self.thread.join().expect("recorder thread")
    }
}

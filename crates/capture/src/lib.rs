//! Capture sources and sinks for trafficscope.
//!
//! This crate owns the bytes-on-disk side of the pipeline: it turns pcap and
//! pcapng files (plain, gzip- or zstd-compressed, or standard input) into
//! timestamped [`Frame`]s with their link type, writes frames back as pcap or
//! pcapng, and paces a replay by capture time ([`Pacer`]). It knows nothing
//! about protocols; `decode` takes it from here.
//!
//! The entry type is [`CaptureReader`]: a streaming reader with a bounded
//! buffer that lends each frame out (`next_frame`) without copying it.

mod error;
mod linktype;
mod pace;
mod read;
mod rotate;
mod sniff;
pub mod time;
mod write;

pub use error::CaptureError;
pub use linktype::LinkType;
pub use pace::Pacer;
pub use read::{CaptureFormat, CaptureReader, Compression, ReadStats};
pub use rotate::{numbered, FileSpan, Namer, RotateError, RotatingWriter, Rotation, Span};
pub use sniff::describe_non_capture;
pub use time::Utc;
pub use write::{CaptureWriter, OutputFormat, WriteError};

/// One captured frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// 1-based position of this frame in its input (the "packet number").
    pub number: u64,
    /// Capture time, nanoseconds since the Unix epoch (UTC).
    pub ts_ns: u64,
    /// Length of the frame on the wire; `data.len()` is the captured length.
    pub wire_len: u32,
    /// Link-layer header type of the interface that captured the frame.
    pub linktype: LinkType,
    /// Interface index within the capture (always 0 for classic pcap).
    pub interface: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

impl Frame<'_> {
    /// Captured length in bytes.
    pub fn caplen(&self) -> u32 {
        self.data.len() as u32
    }
}

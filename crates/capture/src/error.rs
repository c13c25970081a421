use std::io;

/// Why a capture could not be read. Every variant names the input; those
/// raised mid-file also name the byte offset and the packet number, so the
/// user can cut the file there (`editcap -r`) or report it.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },

    #[error("{path}: not a capture file: it looks like {looks_like}; expected pcap or pcapng (optionally gzip- or zstd-compressed)")]
    NotACapture { path: String, looks_like: String },

    #[error("{path}: truncated {what} at byte offset {offset}{where_} (packet {packet}): {needed} bytes needed, {available} left; the {decoded} packets before it were read", where_ = stream_note(*.compressed))]
    Truncated {
        path: String,
        what: &'static str,
        offset: u64,
        packet: u64,
        needed: u64,
        available: u64,
        decoded: u64,
        compressed: Option<&'static str>,
    },

    #[error("{path}: corrupt {what} at byte offset {offset}{where_} (packet {packet}): {detail}", where_ = stream_note(*.compressed))]
    Corrupt {
        path: String,
        what: &'static str,
        offset: u64,
        packet: u64,
        detail: String,
        compressed: Option<&'static str>,
    },

    #[error("{path}: read error at byte offset {offset}{where_}: {source}", where_ = stream_note(*.compressed))]
    Io {
        path: String,
        offset: u64,
        compressed: Option<&'static str>,
        #[source]
        source: io::Error,
    },
}

fn stream_note(compressed: Option<&'static str>) -> String {
    match compressed {
        Some(c) => format!(" of the {c}-decompressed stream"),
        None => String::new(),
    }
}

impl CaptureError {
    /// Packet number at which reading stopped, when the error happened mid-file.
    pub fn packet(&self) -> Option<u64> {
        match self {
            CaptureError::Truncated { packet, .. } | CaptureError::Corrupt { packet, .. } => {
                Some(*packet)
            }
            _ => None,
        }
    }
}

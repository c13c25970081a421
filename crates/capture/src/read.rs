//! Streaming pcap / pcapng reader with a bounded, reused buffer.

use std::fs::File;
use std::io::{self, Read};

use crate::sniff::describe_non_capture;
use crate::{CaptureError, Frame, LinkType};

/// Records larger than this are treated as corruption rather than read into
/// memory: it bounds the buffer whatever the file says (libpcap uses 256 KiB
/// for most link types; D-Bus and USB captures may need up to 128 MiB).
const MAX_RECORD: usize = 128 << 20;
/// Read size: small enough that a chunk is still in the core's L2 cache when
/// its records are parsed (1 MiB measured a few per cent slower).
const READ_CHUNK: usize = 256 << 10;

/// Internal results carry the (large) error boxed, so the per-packet happy
/// path moves a few words instead of the whole error enum.
type Fallible<T> = Result<T, Box<CaptureError>>;

/// How the input was compressed (detected from its first bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn note(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }
}

/// Container format of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic pcap; `nanos` for the 0xa1b23c4d magic.
    Pcap {
        nanos: bool,
        big_endian: bool,
        snaplen: u32,
        linktype: LinkType,
    },
    PcapNg,
}

/// Counters of oddities met while reading: handled, never fatal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub packets: u64,
    pub captured_bytes: u64,
    pub wire_bytes: u64,
    /// Records whose captured length exceeds the interface snaplen.
    pub caplen_over_snaplen: u64,
    /// Records whose captured length exceeds the wire length (both kept as recorded).
    pub caplen_over_wire_len: u64,
    /// Records whose timestamp is earlier than the previous record's.
    pub out_of_order: u64,
    /// Classic pcap records whose sub-second field is out of range (normalised by carrying).
    pub invalid_ts_fraction: u64,
    /// pcapng blocks of a type this reader does not use (skipped).
    pub skipped_blocks: u64,
    /// pcapng sections (Section Header Blocks) seen.
    pub sections: u64,
    /// Interfaces described (pcapng IDBs; 1 for classic pcap).
    pub interfaces: u64,
    /// Drops recorded by the capturing tool (pcapng Interface Statistics `isb_ifdrop`, last value per interface, summed).
    pub recorded_drops: u64,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: LinkType,
    snaplen: u32,
    /// Timestamp units: `Some(exp)` for 10^-exp seconds, or 2^-exp when `binary`.
    resol_exp: u8,
    binary: bool,
    offset_s: i64,
    last_drops: Option<u64>,
}

impl Interface {
    fn ts_ns(&self, units: u64) -> u64 {
        let ns: u128 = if self.binary {
            ((units as u128) * 1_000_000_000u128) >> self.resol_exp.min(127)
        } else if self.resol_exp <= 9 {
            (units as u128) * 10u128.pow(9 - self.resol_exp as u32)
        } else {
            (units as u128) / 10u128.pow((self.resol_exp as u32 - 9).min(38))
        };
        let ns = ns.min(u64::MAX as u128) as u64;
        if self.offset_s >= 0 {
            ns.saturating_add((self.offset_s as u64).saturating_mul(1_000_000_000))
        } else {
            ns.saturating_sub(self.offset_s.unsigned_abs().saturating_mul(1_000_000_000))
        }
    }
}

enum State {
    Pcap {
        big_endian: bool,
        nanos: bool,
        /// Kuznetzov's patched format: 8 more bytes per record header.
        modified: bool,
        iface: Interface,
    },
    PcapNg {
        big_endian: bool,
        ifaces: Vec<Interface>,
    },
}

/// A streaming reader of pcap and pcapng captures.
///
/// Memory is bounded by the largest record (not the file size). Each call of
/// [`next_frame`](Self::next_frame) lends out one frame from the internal
/// buffer; nothing is copied or allocated per packet.
pub struct CaptureReader {
    path: String,
    src: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Offset (in the decompressed stream) of `buf[0]`.
    base: u64,
    compression: Compression,
    format: CaptureFormat,
    state: State,
    last_ts: u64,
    stats: ReadStats,
    /// Where the frame last returned lies in `buf`, so it can be lent again.
    last: Option<LastFrame>,
}

#[derive(Clone, Copy)]
struct LastFrame {
    start: usize,
    end: usize,
    number: u64,
    ts_ns: u64,
    wire_len: u32,
    linktype: LinkType,
    interface: u32,
}

impl CaptureReader {
    /// Opens a file, or standard input for `-`.
    pub fn open(path: &str) -> Result<Self, CaptureError> {
        if path == "-" {
            return Self::new(path, Box::new(io::stdin()));
        }
        let file = File::open(path).map_err(|source| CaptureError::Open {
            path: path.to_string(),
            source,
        })?;
        Self::new(path, Box::new(file))
    }

    /// Reads a capture from any byte source; `name` is used in messages.
    pub fn new(name: &str, raw: Box<dyn Read + Send>) -> Result<Self, CaptureError> {
        let mut reader = CaptureReader {
            path: name.to_string(),
            src: raw,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            base: 0,
            compression: Compression::None,
            format: CaptureFormat::PcapNg,
            state: State::PcapNg {
                big_endian: false,
                ifaces: Vec::new(),
            },
            last_ts: 0,
            stats: ReadStats::default(),
            last: None,
        };
        reader.fill(4).map_err(|e| *e)?;
        let head = &reader.buf[reader.start..reader.end];
        let compression = if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        };
        if compression != Compression::None {
            // Hand the bytes already read plus the rest of the source to the decompressor.
            let prefix = reader.buf[reader.start..reader.end].to_vec();
            let raw = std::mem::replace(&mut reader.src, Box::new(io::empty()));
            let chained = io::Cursor::new(prefix).chain(raw);
            reader.src = match compression {
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(chained)),
                Compression::Zstd => Box::new(
                    ruzstd::decoding::StreamingDecoder::new(chained).map_err(|e| {
                        CaptureError::Corrupt {
                            path: name.to_string(),
                            what: "zstd frame header",
                            offset: 0,
                            packet: 1,
                            detail: e.to_string(),
                            compressed: None,
                        }
                    })?,
                ),
                Compression::None => unreachable!(),
            };
            reader.compression = compression;
            reader.start = 0;
            reader.end = 0;
            reader.eof = false;
        }
        reader.read_file_header().map_err(|e| *e)?;
        Ok(reader)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Byte offset of the next unread record (in the decompressed stream).
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Link type of the first interface (all of them for classic pcap).
    pub fn first_linktype(&self) -> Option<LinkType> {
        match &self.state {
            State::Pcap { iface, .. } => Some(iface.linktype),
            State::PcapNg { ifaces, .. } => ifaces.first().map(|i| i.linktype),
        }
    }

    /// Makes at least `need` bytes available at `buf[start..]`. Returns
    /// `false` when the input ends first.
    #[inline(always)]
    fn fill(&mut self, need: usize) -> Fallible<bool> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        self.fill_slow(need)
    }

    #[cold]
    #[inline(never)]
    fn fill_slow(&mut self, need: usize) -> Fallible<bool> {
        if need > self.buf.len() - self.start {
            // Move the unread tail to the front, growing only for big records.
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < need && !self.eof {
            if self.end == self.buf.len() {
                // Grow by doubling only as bytes actually arrive, so a header
                // that lies about a huge record costs nothing until the data
                // exists (a 40-byte file must not allocate 128 MiB).
                let grown = (self.buf.len() * 2).min(need.next_power_of_two());
                self.buf.resize(grown.max(self.buf.len()), 0);
            }
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Box::new(CaptureError::Io {
                        path: self.path.clone(),
                        offset: self.base + self.end as u64,
                        compressed: self.compression.note(),
                        source,
                    }))
                }
            }
        }
        Ok(self.end - self.start >= need)
    }

    #[cold]
    fn truncated(&self, what: &'static str, needed: usize) -> Box<CaptureError> {
        Box::new(CaptureError::Truncated {
            path: self.path.clone(),
            what,
            offset: self.offset(),
            packet: self.stats.packets + 1,
            needed: needed as u64,
            available: (self.end - self.start) as u64,
            decoded: self.stats.packets,
            compressed: self.compression.note(),
        })
    }

    #[cold]
    fn corrupt(&self, what: &'static str, detail: String) -> Box<CaptureError> {
        Box::new(CaptureError::Corrupt {
            path: self.path.clone(),
            what,
            offset: self.offset(),
            packet: self.stats.packets + 1,
            detail,
            compressed: self.compression.note(),
        })
    }

    fn read_file_header(&mut self) -> Fallible<()> {
        self.fill(24)?;
        let head = &self.buf[self.start..self.end];
        if head.len() < 4 {
            return Err(Box::new(CaptureError::NotACapture {
                path: self.path.clone(),
                looks_like: describe_non_capture(head),
            }));
        }
        let magic = [head[0], head[1], head[2], head[3]];
        let pcap = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => Some((false, false, false)),
            [0xa1, 0xb2, 0xc3, 0xd4] => Some((true, false, false)),
            [0x4d, 0x3c, 0xb2, 0xa1] => Some((false, true, false)),
            [0xa1, 0xb2, 0x3c, 0x4d] => Some((true, true, false)),
            [0x34, 0xcd, 0xb2, 0xa1] => Some((false, false, true)),
            [0xa1, 0xb2, 0xcd, 0x34] => Some((true, false, true)),
            _ => None,
        };
        if let Some((big_endian, nanos, modified)) = pcap {
            if head.len() < 24 {
                return Err(self.truncated("pcap file header", 24));
            }
            let major = rd16(&head[4..], big_endian);
            let minor = rd16(&head[6..], big_endian);
            let snaplen = rd32(&head[16..], big_endian);
            let network = rd32(&head[20..], big_endian);
            if major != 2 {
                return Err(self.corrupt(
                    "pcap file header",
                    format!(
                        "version {major}.{minor} is not a pcap version this reader knows (2.x)"
                    ),
                ));
            }
            if network & 0x03ff_0000 != 0 {
                return Err(self.corrupt(
                    "pcap file header",
                    format!(
                        "reserved bits of the link-type field are set (0x{:08x})",
                        network & 0x03ff_0000
                    ),
                ));
            }
            // The top bits of the link-type field may carry FCS information.
            let linktype = LinkType(network & 0x03ff_ffff);
            self.start += 24;
            self.format = CaptureFormat::Pcap {
                nanos,
                big_endian,
                snaplen,
                linktype,
            };
            self.state = State::Pcap {
                big_endian,
                nanos,
                modified,
                iface: Interface {
                    linktype,
                    snaplen,
                    resol_exp: if nanos { 9 } else { 6 },
                    binary: false,
                    offset_s: 0,
                    last_drops: None,
                },
            };
            self.stats.interfaces = 1;
            return Ok(());
        }
        if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
            self.format = CaptureFormat::PcapNg;
            return Ok(());
        }
        Err(Box::new(CaptureError::NotACapture {
            path: self.path.clone(),
            looks_like: describe_non_capture(head),
        }))
    }

    /// Reads the next frame. `Ok(None)` at a clean end of input; on error,
    /// every frame before it has already been returned.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        self.last = None;
        let next = match self.state {
            State::Pcap { .. } => self.next_pcap(),
            State::PcapNg { .. } => self.next_pcapng(),
        };
        match next {
            Ok(last) => {
                self.last = last;
                Ok(self.last_frame())
            }
            Err(e) => Err(*e),
        }
    }

    /// The frame returned by the last [`next_frame`](Self::next_frame), lent
    /// again (the buffer is untouched until the next call). Lets a caller
    /// inspect a frame, consult other state, then use it.
    pub fn last_frame(&self) -> Option<Frame<'_>> {
        self.last.map(|l| Frame {
            number: l.number,
            ts_ns: l.ts_ns,
            wire_len: l.wire_len,
            linktype: l.linktype,
            interface: l.interface,
            data: &self.buf[l.start..l.end],
        })
    }

    fn note_ts(&mut self, ts: u64) {
        if ts < self.last_ts {
            self.stats.out_of_order += 1;
        }
        self.last_ts = ts;
    }

    #[inline]
    fn next_pcap(&mut self) -> Fallible<Option<LastFrame>> {
        let State::Pcap {
            big_endian: be,
            nanos,
            modified,
            iface,
        } = self.state
        else {
            unreachable!()
        };
        let hdr_len = if modified { 24 } else { 16 };
        if !self.fill(hdr_len)? {
            if self.end == self.start {
                return Ok(None);
            }
            return Err(self.truncated("pcap record header", hdr_len));
        }
        let h = &self.buf[self.start..self.start + hdr_len];
        let sec = rd32(h, be) as u64;
        let mut frac = rd32(&h[4..], be) as u64;
        let caplen = rd32(&h[8..], be) as usize;
        let wire_len = rd32(&h[12..], be);
        if caplen > MAX_RECORD {
            return Err(self.corrupt(
                "pcap record header",
                format!("captured length {caplen} is larger than any real packet ({MAX_RECORD} bytes); the file is damaged from here"),
            ));
        }
        let unit = if nanos { 1_000_000_000 } else { 1_000_000 };
        let mut sec = sec;
        if frac >= unit {
            self.stats.invalid_ts_fraction += 1;
            sec += frac / unit;
            frac %= unit;
        }
        let ts_ns = sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        if !self.fill(hdr_len + caplen)? {
            return Err(self.truncated("pcap packet data", hdr_len + caplen));
        }
        if caplen as u32 > iface.snaplen && iface.snaplen != 0 {
            self.stats.caplen_over_snaplen += 1;
        }
        if caplen as u32 > wire_len {
            self.stats.caplen_over_wire_len += 1;
        }
        self.note_ts(ts_ns);
        self.stats.packets += 1;
        self.stats.captured_bytes += caplen as u64;
        self.stats.wire_bytes += wire_len as u64;
        let data_start = self.start + hdr_len;
        self.start = data_start + caplen;
        Ok(Some(LastFrame {
            start: data_start,
            end: data_start + caplen,
            number: self.stats.packets,
            ts_ns,
            wire_len,
            linktype: iface.linktype,
            interface: 0,
        }))
    }

    fn next_pcapng(&mut self) -> Fallible<Option<LastFrame>> {
        loop {
            if !self.fill(12)? {
                if self.end == self.start {
                    return Ok(None);
                }
                return Err(self.truncated("pcapng block header", 12));
            }
            let b = &self.buf[self.start..self.end];
            let raw_type = [b[0], b[1], b[2], b[3]];
            if raw_type == [0x0a, 0x0d, 0x0d, 0x0a] {
                // Section Header: its byte-order magic sets the endianness of the section.
                let big_endian = match [b[8], b[9], b[10], b[11]] {
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    other => {
                        return Err(self.corrupt(
                            "pcapng section header",
                            format!(
                            "byte-order magic is {other:02x?}, expected 1a2b3c4d in either order"
                        ),
                        ))
                    }
                };
                self.state = State::PcapNg {
                    big_endian,
                    ifaces: Vec::new(),
                };
                self.stats.sections += 1;
            }
            let State::PcapNg { big_endian: be, .. } = self.state else {
                unreachable!()
            };
            let b = &self.buf[self.start..self.end];
            let btype = rd32(b, be);
            let total = rd32(&b[4..], be) as usize;
            if total < 12 || !total.is_multiple_of(4) || total > MAX_RECORD {
                return Err(self.corrupt(
                    "pcapng block header",
                    format!("block of type 0x{btype:08x} has impossible total length {total}"),
                ));
            }
            if !self.fill(total)? {
                return Err(self.truncated("pcapng block", total));
            }
            let block = &self.buf[self.start..self.start + total];
            let trailer = rd32(&block[total - 4..], be) as usize;
            if trailer != total {
                return Err(self.corrupt(
                    "pcapng block trailer",
                    format!("block of type 0x{btype:08x} says its length is {total} at the start but {trailer} at the end"),
                ));
            }
            let body_start = self.start + 8;
            let body_end = self.start + total - 4;
            match btype {
                0x0a0d0d0a => {
                    if total < 28 {
                        return Err(self.corrupt(
                            "pcapng section header",
                            format!("length {total} is below the minimum of 28"),
                        ));
                    }
                    let major = rd16(&self.buf[body_start + 4..], be);
                    let minor = rd16(&self.buf[body_start + 6..], be);
                    // 1.0 is the standard; 1.2 was written by some tools. libpcap
                    // and Wireshark accept exactly these, so do we.
                    if major != 1 || (minor != 0 && minor != 2) {
                        return Err(self.corrupt(
                            "pcapng section header",
                            format!("version {major}.{minor} is not a pcapng version this reader knows (1.0)"),
                        ));
                    }
                    self.start += total;
                }
                1 => {
                    let body = &self.buf[body_start..body_end];
                    if body.len() < 8 {
                        return Err(self.corrupt(
                            "pcapng interface description",
                            format!("body of {} bytes, at least 8 needed", body.len()),
                        ));
                    }
                    let mut iface = Interface {
                        linktype: LinkType(rd16(body, be) as u32),
                        snaplen: rd32(&body[4..], be),
                        resol_exp: 6,
                        binary: false,
                        offset_s: 0,
                        last_drops: None,
                    };
                    for (code, val) in Options::new(&body[8..], be) {
                        match code {
                            9 if !val.is_empty() => {
                                iface.binary = val[0] & 0x80 != 0;
                                iface.resol_exp = val[0] & 0x7f;
                            }
                            14 if val.len() >= 8 => iface.offset_s = rd64(val, be) as i64,
                            _ => {}
                        }
                    }
                    if !iface.binary && iface.resol_exp > 19 {
                        return Err(self.corrupt(
                            "pcapng interface description",
                            format!("if_tsresol 10^-{} is beyond any clock", iface.resol_exp),
                        ));
                    }
                    self.stats.interfaces += 1;
                    if let State::PcapNg { ifaces, .. } = &mut self.state {
                        ifaces.push(iface);
                    }
                    self.start += total;
                }
                6 | 2 => {
                    let body = &self.buf[body_start..body_end];
                    let what = if btype == 6 {
                        "pcapng enhanced packet"
                    } else {
                        "pcapng packet block"
                    };
                    if body.len() < 20 {
                        return Err(self.corrupt(
                            what,
                            format!("body of {} bytes, at least 20 needed", body.len()),
                        ));
                    }
                    let if_id = if btype == 6 {
                        rd32(body, be)
                    } else {
                        rd16(body, be) as u32
                    };
                    let units = ((rd32(&body[4..], be) as u64) << 32) | rd32(&body[8..], be) as u64;
                    let caplen = rd32(&body[12..], be) as usize;
                    let wire_len = rd32(&body[16..], be);
                    if caplen > body.len() - 20 {
                        return Err(self.corrupt(
                            what,
                            format!(
                                "captured length {caplen} exceeds the {} bytes the block holds",
                                body.len() - 20
                            ),
                        ));
                    }
                    let iface = match &self.state {
                        State::PcapNg { ifaces, .. } => ifaces.get(if_id as usize).copied(),
                        _ => None,
                    };
                    let Some(iface) = iface else {
                        let n = match &self.state {
                            State::PcapNg { ifaces, .. } => ifaces.len(),
                            _ => 0,
                        };
                        return Err(self.corrupt(
                            what,
                            format!(
                                "packet refers to interface {if_id}, but the section describes {n}"
                            ),
                        ));
                    };
                    if caplen as u32 > iface.snaplen && iface.snaplen != 0 {
                        self.stats.caplen_over_snaplen += 1;
                    }
                    if caplen as u32 > wire_len {
                        self.stats.caplen_over_wire_len += 1;
                    }
                    let ts_ns = iface.ts_ns(units);
                    self.note_ts(ts_ns);
                    self.stats.packets += 1;
                    self.stats.captured_bytes += caplen as u64;
                    self.stats.wire_bytes += wire_len as u64;
                    let data_start = body_start + 20;
                    self.start += total;
                    return Ok(Some(LastFrame {
                        start: data_start,
                        end: data_start + caplen,
                        number: self.stats.packets,
                        ts_ns,
                        wire_len,
                        linktype: iface.linktype,
                        interface: if_id,
                    }));
                }
                3 => {
                    let body = &self.buf[body_start..body_end];
                    if body.len() < 4 {
                        return Err(self.corrupt(
                            "pcapng simple packet",
                            format!("body of {} bytes, at least 4 needed", body.len()),
                        ));
                    }
                    let iface = match &self.state {
                        State::PcapNg { ifaces, .. } => ifaces.first().copied(),
                        _ => None,
                    };
                    let Some(iface) = iface else {
                        return Err(self.corrupt(
                            "pcapng simple packet",
                            "simple packet before any interface description".to_string(),
                        ));
                    };
                    let wire_len = rd32(body, be);
                    // An SPB holds min(original length, snaplen) bytes, padded.
                    let mut caplen = (wire_len as usize).min(body.len() - 4);
                    if iface.snaplen != 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    self.stats.packets += 1;
                    self.stats.captured_bytes += caplen as u64;
                    self.stats.wire_bytes += wire_len as u64;
                    let data_start = body_start + 4;
                    self.start += total;
                    // SPBs carry no timestamp; report 0 like libpcap does.
                    return Ok(Some(LastFrame {
                        start: data_start,
                        end: data_start + caplen,
                        number: self.stats.packets,
                        ts_ns: 0,
                        wire_len,
                        linktype: iface.linktype,
                        interface: 0,
                    }));
                }
                5 => {
                    // Interface Statistics: keep the capturing tool's drop count.
                    let body = &self.buf[body_start..body_end];
                    if body.len() >= 12 {
                        let if_id = rd32(body, be) as usize;
                        let mut drops = None;
                        for (code, val) in Options::new(&body[12..], be) {
                            if code == 5 && val.len() >= 8 {
                                drops = Some(rd64(val, be));
                            }
                        }
                        if let (Some(d), State::PcapNg { ifaces, .. }) = (drops, &mut self.state) {
                            if let Some(iface) = ifaces.get_mut(if_id) {
                                let prev = iface.last_drops.replace(d).unwrap_or(0);
                                self.stats.recorded_drops =
                                    self.stats.recorded_drops.saturating_sub(prev) + d;
                            }
                        }
                    }
                    self.start += total;
                }
                _ => {
                    self.stats.skipped_blocks += 1;
                    self.start += total;
                }
            }
        }
    }
}

/// Iterator over pcapng options (code, value), stopping at opt_endofopt or
/// at the first option that overruns the block.
struct Options<'a> {
    data: &'a [u8],
    be: bool,
}

impl<'a> Options<'a> {
    fn new(data: &'a [u8], be: bool) -> Self {
        Options { data, be }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.data.len() < 4 {
            return None;
        }
        let code = rd16(self.data, self.be);
        let len = rd16(&self.data[2..], self.be) as usize;
        if code == 0 || 4 + len > self.data.len() {
            return None;
        }
        let val = &self.data[4..4 + len];
        let padded = (4 + len + 3) & !3;
        self.data = &self.data[padded.min(self.data.len())..];
        Some((code, val))
    }
}

#[inline]
fn rd16(b: &[u8], be: bool) -> u16 {
    let v = [b[0], b[1]];
    if be {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

#[inline]
fn rd32(b: &[u8], be: bool) -> u32 {
    let v = [b[0], b[1], b[2], b[3]];
    if be {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

#[inline]
fn rd64(b: &[u8], be: bool) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[..8]);
    if be {
        u64::from_be_bytes(v)
    } else {
        u64::from_le_bytes(v)
    }
}

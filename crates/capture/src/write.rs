//! Writing frames as classic pcap (nanosecond magic) or pcapng.

use std::io::{self, BufWriter, Write};

use crate::LinkType;

/// Output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Classic pcap with the nanosecond magic (0xa1b23c4d); one link type.
    Pcap,
    /// pcapng with one interface per link type, `if_tsresol` = 10^-9.
    PcapNg,
}

impl OutputFormat {
    /// `.pcapng` / `.ntar` → pcapng; anything else → pcap, like tcpdump.
    pub fn from_path(path: &str) -> Self {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".pcapng") || lower.ends_with(".ntar") {
            OutputFormat::PcapNg
        } else {
            OutputFormat::Pcap
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write capture: {0} (is the disk full or the pipe closed?)")]
    Io(#[from] io::Error),
    #[error("a pcap file holds one link type, but frames of {first} and {other} arrived: write a .pcapng instead")]
    MixedLinkTypes { first: LinkType, other: LinkType },
}

/// Writes frames to a pcap or pcapng stream. The file header is written by
/// the first frame (its link type decides a pcap file's link type).
pub struct CaptureWriter<W: Write> {
    out: BufWriter<W>,
    format: OutputFormat,
    snaplen: u32,
    /// pcap: the file's link type; pcapng: interface ids by link type.
    interfaces: Vec<LinkType>,
    started: bool,
    written: u64,
    /// Bytes handed to `out` (headers included): the file's size once flushed.
    bytes: u64,
}

impl<W: Write> CaptureWriter<W> {
    pub fn new(out: W, format: OutputFormat, snaplen: u32) -> Self {
        CaptureWriter {
            out: BufWriter::with_capacity(1 << 20, out),
            format,
            snaplen: if snaplen == 0 { 262_144 } else { snaplen },
            interfaces: Vec::new(),
            started: false,
            written: 0,
            bytes: 0,
        }
    }

    /// Writes the file header now (for `linktype`), so that even a capture
    /// that sees no packet leaves a valid, empty file.
    pub fn begin(&mut self, linktype: LinkType) -> Result<(), WriteError> {
        if self.started {
            return Ok(());
        }
        match self.format {
            OutputFormat::Pcap => self.write_pcap_header(linktype)?,
            OutputFormat::PcapNg => {
                self.write_shb()?;
                self.add_interface(linktype)?;
            }
        }
        Ok(())
    }

    /// Number of frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.written
    }

    /// Bytes written so far, file headers included (what the file will
    /// measure once flushed): the basis of size-based rotation.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn write_frame(
        &mut self,
        ts_ns: u64,
        wire_len: u32,
        linktype: LinkType,
        data: &[u8],
    ) -> Result<(), WriteError> {
        match self.format {
            OutputFormat::Pcap => self.write_pcap(ts_ns, wire_len, linktype, data)?,
            OutputFormat::PcapNg => self.write_pcapng(ts_ns, wire_len, linktype, data)?,
        }
        self.written += 1;
        Ok(())
    }

    fn write_pcap(
        &mut self,
        ts_ns: u64,
        wire_len: u32,
        linktype: LinkType,
        data: &[u8],
    ) -> Result<(), WriteError> {
        if !self.started {
            self.write_pcap_header(linktype)?;
        } else if self.interfaces[0] != linktype {
            return Err(WriteError::MixedLinkTypes {
                first: self.interfaces[0],
                other: linktype,
            });
        }
        let caplen = data.len().min(self.snaplen as usize);
        let mut r = [0u8; 16];
        r[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        r[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
        r[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        r[12..16].copy_from_slice(&wire_len.max(caplen as u32).to_le_bytes());
        self.out.write_all(&r)?;
        self.out.write_all(&data[..caplen])?;
        self.bytes += 16 + caplen as u64;
        Ok(())
    }

    fn write_pcapng(
        &mut self,
        ts_ns: u64,
        wire_len: u32,
        linktype: LinkType,
        data: &[u8],
    ) -> Result<(), WriteError> {
        if !self.started {
            self.write_shb()?;
        }
        let if_id = match self.interfaces.iter().position(|&l| l == linktype) {
            Some(i) => i,
            None => self.add_interface(linktype)?,
        };
        let caplen = data.len().min(self.snaplen as usize);
        let padded = (caplen + 3) & !3;
        let total = 32 + padded as u32;
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&6u32.to_le_bytes());
        h[4..8].copy_from_slice(&total.to_le_bytes());
        h[8..12].copy_from_slice(&(if_id as u32).to_le_bytes());
        h[12..16].copy_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(ts_ns as u32).to_le_bytes());
        h[20..24].copy_from_slice(&(caplen as u32).to_le_bytes());
        h[24..28].copy_from_slice(&wire_len.max(caplen as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..caplen])?;
        self.out.write_all(&[0u8; 3][..padded - caplen])?;
        self.out.write_all(&total.to_le_bytes())?;
        self.bytes += total as u64;
        Ok(())
    }

    fn write_pcap_header(&mut self, linktype: LinkType) -> io::Result<()> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&self.snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&linktype.0.to_le_bytes());
        self.out.write_all(&h)?;
        self.bytes += 24;
        self.interfaces.push(linktype);
        self.started = true;
        Ok(())
    }

    fn write_shb(&mut self) -> io::Result<()> {
        {
            // SHB: no options, section length unknown (-1).
            let mut shb = Vec::with_capacity(28);
            shb.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
            shb.extend_from_slice(&28u32.to_le_bytes());
            shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
            shb.extend_from_slice(&1u16.to_le_bytes());
            shb.extend_from_slice(&0u16.to_le_bytes());
            shb.extend_from_slice(&(-1i64).to_le_bytes());
            shb.extend_from_slice(&28u32.to_le_bytes());
            self.out.write_all(&shb)?;
            self.bytes += 28;
            self.started = true;
        }
        Ok(())
    }

    /// Writes an IDB with if_tsresol = 9 (nanoseconds); returns its id.
    fn add_interface(&mut self, linktype: LinkType) -> io::Result<usize> {
        let mut idb = Vec::with_capacity(32);
        idb.extend_from_slice(&1u32.to_le_bytes());
        idb.extend_from_slice(&32u32.to_le_bytes());
        idb.extend_from_slice(&(linktype.0 as u16).to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&self.snaplen.to_le_bytes());
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 0, 0]);
        idb.extend_from_slice(&0u32.to_le_bytes());
        idb.extend_from_slice(&32u32.to_le_bytes());
        self.out.write_all(&idb)?;
        self.bytes += 32;
        self.interfaces.push(linktype);
        Ok(self.interfaces.len() - 1)
    }

    /// Flushes buffered frames; call before dropping to see write errors.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        self.out.flush()?;
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(self) -> Result<W, WriteError> {
        self.out
            .into_inner()
            .map_err(|e| WriteError::Io(e.into_error()))
    }
}

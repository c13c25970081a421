//! The packet-record encoding, version 1: what a capture node publishes and
//! an analysis node reads. Little-endian throughout. One Kafka message
//! carries one [`Message`]: a batch of packet records of one capture node
//! bound for one partition, or a control message (tick, end).
//!
//! ```text
//! message  = magic "TSPK" | version u8 (=1) | kind u8 | node_len u8 | node
//!            | session u64 | seq u64 | ts_ns u64 | body
//! kind 1 (packets): body = count u32, then `count` records:
//!   rec_len u32 (bytes after this field)
//!   ts_ns u64 | wire_len u32 | cap_len u32 | linktype u16
//!   ip_version u8 (0: no IP) | ip_proto u8 | src_port u16 | dst_port u16
//!   direction u8 (0 not decided here, 1 up, 2 down, 3 local, 4 transit)
//!   app u8 (0 none, else 1 + index in decode::app::PROTOCOLS)
//!   flow_key u64 (the canonical five-tuple's hash, see `flow_key_hash`)
//!   src, dst: 4 bytes each (ip_version 4), 16 each (6), none (0)
//!   frame_len u16 | frame (the frame's first bytes; see `PayloadWindow`)
//! kind 2 (tick): no body. The node's capture time reached `ts_ns`: every
//!   later record of this node in this partition is at or after it.
//! kind 3 (end): no body. The node's input ended at `ts_ns`.
//! session: the capture node's run (its start time in ns): seq restarts
//!   with each session.
//! seq: packets: the node's sequence number of the first record (0-based,
//!   counting every record the node published); tick and end: records
//!   published by the node before this message.
//! ```
//!
//! A reader refuses a message whose magic, version, kind or lengths do not
//! fit, with a [`DecodeError`] saying what and where: the consumer counts
//! and skips it.

use std::net::IpAddr;

/// First bytes of every message.
pub const MAGIC: [u8; 4] = *b"TSPK";
/// The encoding's version.
pub const VERSION: u8 = 1;
/// Longest capture-node name, bytes.
pub const MAX_NODE: usize = 64;

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Packets,
    Tick,
    End,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Packets => 1,
            Kind::Tick => 2,
            Kind::End => 3,
        }
    }
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a trafficscope packet message (magic {0:02x?}, expected \"TSPK\")")]
    Magic([u8; 4]),
    #[error("encoding version {0}, this build reads version {VERSION}: upgrade the analysis node")]
    Version(u8),
    #[error("unknown message kind {0}")]
    Kind(u8),
    #[error("truncated at byte {at} of {len} ({what})")]
    Truncated {
        at: usize,
        len: usize,
        what: &'static str,
    },
    #[error("node name is not UTF-8")]
    Node,
    #[error("record {index}: {what}")]
    Record { index: u32, what: &'static str },
}

/// One packet as published: its fields and the frame's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRecord<'a> {
    pub ts_ns: u64,
    pub wire_len: u32,
    /// Captured length at the capture node (`frame` may be shorter).
    pub cap_len: u32,
    pub linktype: u16,
    pub ip_version: u8,
    pub ip_proto: u8,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_port: u16,
    pub dst_port: u16,
    pub direction: u8,
    pub app: u8,
    pub flow_key: u64,
    pub frame: &'a [u8],
}

impl PacketRecord<'_> {
    /// The application hint's protocol name (`tls`, `dns`, …), if any.
    pub fn app_name(&self) -> Option<&'static str> {
        (self.app as usize)
            .checked_sub(1)
            .and_then(|i| decode::app::PROTOCOLS.get(i).copied())
    }

    /// The frame as the analysis node's stages take it.
    pub fn as_frame(&self, number: u64) -> capture::Frame<'_> {
        capture::Frame {
            number,
            ts_ns: self.ts_ns,
            wire_len: self.wire_len,
            linktype: capture::LinkType(self.linktype as u32),
            interface: 0,
            data: self.frame,
        }
    }
}

/// Builds one message of packet records; reused (no allocation once grown).
#[derive(Debug, Default)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
    count_at: usize,
}

impl BatchWriter {
    /// Starts a packets message for `node`, whose first record is number `seq`.
    pub fn begin(&mut self, node: &str, session: u64, seq: u64) {
        self.buf.clear();
        header(&mut self.buf, Kind::Packets, node, session, seq, 0);
        self.count_at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.count = 0;
    }

    /// Appends one record.
    pub fn push(&mut self, r: &PacketRecord<'_>) {
        let b = &mut self.buf;
        let len_at = b.len();
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&r.ts_ns.to_le_bytes());
        b.extend_from_slice(&r.wire_len.to_le_bytes());
        b.extend_from_slice(&r.cap_len.to_le_bytes());
        b.extend_from_slice(&r.linktype.to_le_bytes());
        let version = match (r.src, r.dst) {
            (Some(IpAddr::V4(_)), Some(IpAddr::V4(_))) => 4,
            (Some(IpAddr::V6(_)), Some(IpAddr::V6(_))) => 6,
            _ => 0,
        };
        b.push(version);
        b.push(r.ip_proto);
        b.extend_from_slice(&r.src_port.to_le_bytes());
        b.extend_from_slice(&r.dst_port.to_le_bytes());
        b.push(r.direction);
        b.push(r.app);
        b.extend_from_slice(&r.flow_key.to_le_bytes());
        match (r.src, r.dst) {
            (Some(IpAddr::V4(s)), Some(IpAddr::V4(d))) => {
                b.extend_from_slice(&s.octets());
                b.extend_from_slice(&d.octets());
            }
            (Some(IpAddr::V6(s)), Some(IpAddr::V6(d))) => {
                b.extend_from_slice(&s.octets());
                b.extend_from_slice(&d.octets());
            }
            _ => {}
        }
        let frame = &r.frame[..r.frame.len().min(u16::MAX as usize)];
        b.extend_from_slice(&(frame.len() as u16).to_le_bytes());
        b.extend_from_slice(frame);
        let rec_len = (b.len() - len_at - 4) as u32;
        b[len_at..len_at + 4].copy_from_slice(&rec_len.to_le_bytes());
        self.count += 1;
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    /// Forgets the records (keeps the buffer): `begin` must come next.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the message so far, bytes.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The finished message.
    pub fn finish(&mut self) -> &[u8] {
        let at = self.count_at;
        self.buf[at..at + 4].copy_from_slice(&self.count.to_le_bytes());
        &self.buf
    }
}

/// A control message (tick or end) for `node`.
pub fn control(kind: Kind, node: &str, session: u64, seq: u64, ts_ns: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(40 + node.len());
    header(&mut b, kind, node, session, seq, ts_ns);
    b
}

fn header(b: &mut Vec<u8>, kind: Kind, node: &str, session: u64, seq: u64, ts_ns: u64) {
    let node = truncate_node(node);
    b.extend_from_slice(&MAGIC);
    b.push(VERSION);
    b.push(kind.code());
    b.push(node.len() as u8);
    b.extend_from_slice(node.as_bytes());
    b.extend_from_slice(&session.to_le_bytes());
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&ts_ns.to_le_bytes());
}

/// At most [`MAX_NODE`] bytes, cut at a character boundary.
pub fn truncate_node(node: &str) -> &str {
    let mut end = node.len().min(MAX_NODE);
    while !node.is_char_boundary(end) {
        end -= 1;
    }
    &node[..end]
}

/// A message read back: its header and, for packets, an iterator.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub kind: Kind,
    pub node: &'a str,
    pub session: u64,
    pub seq: u64,
    pub ts_ns: u64,
    /// Records announced (packets messages).
    pub count: u32,
    body: &'a [u8],
    total: usize,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.b.len() - self.at < n {
            return Err(DecodeError::Truncated {
                at: self.at,
                len: self.b.len(),
                what,
            });
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().unwrap_or([0; 8]),
        ))
    }
}

impl<'a> Message<'a> {
    /// Reads a message's header; for packets, checks every record's length
    /// up front, so that iterating cannot fail halfway.
    pub fn parse(b: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let mut c = Cursor { b, at: 0 };
        let magic: [u8; 4] = c.take(4, "magic")?.try_into().unwrap_or([0; 4]);
        if magic != MAGIC {
            return Err(DecodeError::Magic(magic));
        }
        let version = c.u8("version")?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = match c.u8("kind")? {
            1 => Kind::Packets,
            2 => Kind::Tick,
            3 => Kind::End,
            k => return Err(DecodeError::Kind(k)),
        };
        let n = c.u8("node length")? as usize;
        let node = std::str::from_utf8(c.take(n, "node")?).map_err(|_| DecodeError::Node)?;
        let session = c.u64("session")?;
        let seq = c.u64("seq")?;
        let ts_ns = c.u64("time")?;
        let mut count = 0;
        if kind == Kind::Packets {
            count = c.u32("record count")?;
            let start = c.at;
            for index in 0..count {
                let len = c.u32("record length")? as usize;
                let rec = c.take(len, "record")?;
                check_record(rec).map_err(|what| DecodeError::Record { index, what })?;
            }
            if c.at != b.len() {
                return Err(DecodeError::Record {
                    index: count,
                    what: "bytes after the last record",
                });
            }
            return Ok(Message {
                kind,
                node,
                session,
                seq,
                ts_ns,
                count,
                body: &b[start..],
                total: b.len(),
            });
        }
        Ok(Message {
            kind,
            node,
            session,
            seq,
            ts_ns,
            count,
            body: &b[c.at..],
            total: b.len(),
        })
    }

    /// The packet records (none for control messages).
    pub fn records(&self) -> Records<'a> {
        Records {
            c: Cursor {
                b: self.body,
                at: 0,
            },
            left: if self.kind == Kind::Packets {
                self.count
            } else {
                0
            },
        }
    }

    /// Size of the whole message, bytes.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

const FIXED: usize = 8 + 4 + 4 + 2 + 1 + 1 + 2 + 2 + 1 + 1 + 8;
/// Offset of `ip_version` among the fixed fields.
const IP_VERSION_AT: usize = 18;

/// Bytes of the two addresses a record of `ip_version` carries.
fn addrs_len(ip_version: u8) -> Option<usize> {
    match ip_version {
        0 => Some(0),
        4 => Some(8),
        6 => Some(32),
        _ => None,
    }
}

fn check_record(rec: &[u8]) -> Result<(), &'static str> {
    if rec.len() < FIXED + 2 {
        return Err("shorter than its fixed fields");
    }
    let addrs = addrs_len(rec[IP_VERSION_AT]).ok_or("IP version is not 0, 4 or 6")?;
    let at = FIXED + addrs;
    if rec.len() < at + 2 {
        return Err("addresses truncated");
    }
    let frame = u16::from_le_bytes([rec[at], rec[at + 1]]) as usize;
    if rec.len() != at + 2 + frame {
        return Err("frame length does not match the record length");
    }
    Ok(())
}

/// The records of a packets message, in order. Lengths were checked by
/// [`Message::parse`].
pub struct Records<'a> {
    c: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for Records<'a> {
    type Item = PacketRecord<'a>;

    fn next(&mut self) -> Option<PacketRecord<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let len = self.c.u32("").ok()? as usize;
        read_record(self.c.take(len, "").ok()?)
    }
}

/// One record's fields, read at their fixed offsets: `Message::parse`
/// checked its length against the IP version and frame length
/// (`check_record`), so one bounds check covers the fixed fields.
fn read_record(rec: &[u8]) -> Option<PacketRecord<'_>> {
    let f: &[u8; FIXED] = rec.get(..FIXED)?.try_into().ok()?;
    let u16_at = |i: usize| u16::from_le_bytes([f[i], f[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&f[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let ip_version = f[IP_VERSION_AT];
    let at = FIXED + addrs_len(ip_version)?;
    let (src, dst) = match ip_version {
        4 => {
            let a: [u8; 8] = rec.get(FIXED..at)?.try_into().ok()?;
            let (s, d) = ([a[0], a[1], a[2], a[3]], [a[4], a[5], a[6], a[7]]);
            (Some(IpAddr::from(s)), Some(IpAddr::from(d)))
        }
        6 => {
            let s: [u8; 16] = rec.get(FIXED..FIXED + 16)?.try_into().ok()?;
            let d: [u8; 16] = rec.get(FIXED + 16..at)?.try_into().ok()?;
            (Some(IpAddr::from(s)), Some(IpAddr::from(d)))
        }
        _ => (None, None),
    };
    let n = u16::from_le_bytes(rec.get(at..at + 2)?.try_into().ok()?) as usize;
    let frame = rec.get(at + 2..at + 2 + n)?;
    Some(PacketRecord {
        ts_ns: u64_at(0),
        wire_len: u32_at(8),
        cap_len: u32_at(12),
        linktype: u16_at(16),
        ip_version,
        ip_proto: f[19],
        src,
        dst,
        src_port: u16_at(20),
        dst_port: u16_at(22),
        direction: f[24],
        app: f[25],
        flow_key: u64_at(26),
        frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(i: u64, frame: &[u8]) -> PacketRecord<'_> {
        PacketRecord {
            ts_ns: 1_700_000_000_000_000_000 + i,
            wire_len: 1500,
            cap_len: frame.len() as u32,
            linktype: 1,
            ip_version: if i.is_multiple_of(2) { 4 } else { 6 },
            ip_proto: 6,
            src: Some(if i.is_multiple_of(2) {
                IpAddr::from([10, 0, 0, i as u8])
            } else {
                IpAddr::from([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i as u8])
            }),
            dst: Some(if i.is_multiple_of(2) {
                IpAddr::from([192, 0, 2, 1])
            } else {
                IpAddr::from([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
            }),
            src_port: 40000 + i as u16,
            dst_port: 443,
            direction: 1,
            app: 1,
            flow_key: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            frame,
        }
    }

    #[test]
    fn a_batch_reads_back_field_for_field() {
        let frames: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; 10 * i]).collect();
        let recs: Vec<PacketRecord> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| rec(i as u64, f))
            .collect();
        let mut w = BatchWriter::default();
        w.begin("node-a", 5, 42);
        for r in &recs {
            w.push(r);
        }
        let bytes = w.finish().to_vec();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(
            (m.kind, m.node, m.session, m.seq, m.count),
            (Kind::Packets, "node-a", 5, 42, 5)
        );
        let back: Vec<PacketRecord> = m.records().collect();
        assert_eq!(back, recs);
        assert_eq!(back[0].app_name(), Some("tls"));
        // Reused without allocating anew: a second batch is independent.
        w.begin("node-a", 5, 47);
        w.push(&recs[1]);
        let m2 = w.finish().to_vec();
        assert_eq!(Message::parse(&m2).unwrap().records().count(), 1);
    }

    #[test]
    fn control_messages_carry_time_and_sequence() {
        let t = control(Kind::Tick, "n", 3, 7, 99);
        let m = Message::parse(&t).unwrap();
        assert_eq!((m.kind, m.node, m.seq, m.ts_ns), (Kind::Tick, "n", 7, 99));
        assert_eq!(m.records().count(), 0);
        let end = control(Kind::End, "n", 3, 8, 100);
        assert_eq!(Message::parse(&end).unwrap().kind, Kind::End);
    }

    #[test]
    fn bad_messages_are_refused_with_the_reason() {
        let mut w = BatchWriter::default();
        w.begin("x", 0, 0);
        w.push(&rec(0, b"abc"));
        let good = w.finish().to_vec();
        assert!(matches!(
            Message::parse(b"garbage!"),
            Err(DecodeError::Magic(_))
        ));
        let mut v2 = good.clone();
        v2[4] = 2;
        assert_eq!(Message::parse(&v2).unwrap_err(), DecodeError::Version(2));
        for cut in 0..good.len() {
            assert!(Message::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_ip = good.clone();
        // The record's IP version byte: after the header and the count.
        let at = 4 + 3 + 1 + 24 + 4 + 4 + 18;
        bad_ip[at] = 5;
        assert!(matches!(
            Message::parse(&bad_ip),
            Err(DecodeError::Record { index: 0, .. })
        ));
        let mut extra = good.clone();
        extra.push(0);
        assert!(Message::parse(&extra).is_err());
    }

    #[test]
    fn long_node_names_are_cut_at_a_character_boundary() {
        let name = "é".repeat(40);
        let t = control(Kind::Tick, &name, 0, 0, 0);
        let m = Message::parse(&t).unwrap();
        assert!(m.node.len() <= MAX_NODE && name.starts_with(m.node));
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panicking(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut v = MAGIC.to_vec();
            v.push(VERSION);
            v.extend_from_slice(&b);
            if let Ok(m) = Message::parse(&v) {
                prop_assert_eq!(m.records().count() as u32, if m.kind == Kind::Packets { m.count } else { 0 });
            }
        }
    }
}

//! Frame encoding: Ethernet II, IPv4/IPv6, TCP/UDP/ICMP with correct
//! lengths and checksums (RFC 791, 8200, 793, 768, 792, 4443, 1071).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::sync::OnceLock;

/// An IPv4 or IPv6 address, stored as bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Ip {
    pub fn is_v6(&self) -> bool {
        matches!(self, Ip::V6(_))
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ip::V4(a) => Ipv4Addr::from(*a).fmt(f),
            Ip::V6(a) => Ipv6Addr::from(*a).fmt(f),
        }
    }
}

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub mac: [u8; 6],
    pub ip: Ip,
    pub port: u16,
}

pub(crate) const TCP_FIN: u8 = 0x01;
pub(crate) const TCP_SYN: u8 = 0x02;
pub(crate) const TCP_PSH: u8 = 0x08;
pub(crate) const TCP_ACK: u8 = 0x10;

/// Transport header of a queued packet (ports come from the flow).
#[derive(Clone, Copy, Debug)]
pub(crate) enum L4 {
    Tcp {
        flags: u8,
        seq: u32,
        ack: u32,
        win: u16,
        /// SYN options: MSS, window scale 7, SACK permitted.
        syn_opts: bool,
    },
    Udp,
    /// ICMP / ICMPv6 echo.
    Echo {
        reply: bool,
        id: u16,
        seq: u16,
    },
}

/// How the synthetic part of a payload is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FillKind {
    None,
    /// Printable ASCII text (HTML/CSS/JS bodies).
    Text,
    /// Incompressible bytes (media, archives).
    Random,
    /// TLS 1.2/1.3 application-data records (type 23), at most 16 401
    /// bytes of ciphertext each (16 384 + AEAD tag + inner content type).
    Tls,
    /// rsync multiplexed data frames (4-byte little-endian header,
    /// tag MPLEX_BASE+MSG_DATA = 7, at most 32 KiB each).
    RsyncMux,
}

/// Payload of a queued packet: a slice of explicit bytes followed by a
/// range of a procedurally filled stream.
#[derive(Clone, Debug)]
pub(crate) struct Payload {
    pub head: Option<(Rc<[u8]>, u32, u32)>,
    pub fill: FillKind,
    pub salt: u32,
    pub off: u64,
    pub len: u32,
    /// Total length of the fill stream (record framing needs it).
    pub total: u64,
}

impl Payload {
    pub const EMPTY: Payload = Payload {
        head: None,
        fill: FillKind::None,
        salt: 0,
        off: 0,
        len: 0,
        total: 0,
    };

    pub fn bytes(b: Rc<[u8]>) -> Payload {
        let n = b.len() as u32;
        Payload {
            head: Some((b, 0, n)),
            ..Payload::EMPTY
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        if let Some((b, lo, hi)) = &self.head {
            out.extend_from_slice(&b[*lo as usize..*hi as usize]);
        }
        if self.len > 0 {
            render_fill(
                self.fill,
                self.salt,
                self.off,
                self.len as u64,
                self.total,
                out,
            );
        }
    }
}

const BLOCK: usize = 1 << 16;

fn text_block() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        const WORDS: &[&str] = &[
            "traffic",
            "synthetic",
            "the",
            "of",
            "and",
            "network",
            "page",
            "news",
            "data",
            "model",
            "<p>",
            "</p>",
            "<div class=\"item\">",
            "</div>",
            "a",
            "to",
            "in",
            "is",
            "video",
            "stream",
            "function",
            "var",
            "return",
            "{",
            "}",
            ";",
            "color:",
            "#333",
        ];
        let mut v = Vec::with_capacity(BLOCK + 64);
        let mut x: u32 = 0x1234_5678;
        let mut col = 0;
        while v.len() < BLOCK {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let w = WORDS[(x as usize) % WORDS.len()];
            v.extend_from_slice(w.as_bytes());
            col += w.len() + 1;
            if col > 72 {
                v.push(b'\n');
                col = 0;
            } else {
                v.push(b' ');
            }
        }
        v.truncate(BLOCK);
        v
    })
}

pub(crate) fn random_block() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        let mut v = Vec::with_capacity(BLOCK);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while v.len() < BLOCK {
            // splitmix64
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            v.extend_from_slice(&z.to_le_bytes());
        }
        v
    })
}

fn copy_block(block: &[u8], start: u64, mut len: usize, out: &mut Vec<u8>) {
    let mut pos = (start % BLOCK as u64) as usize;
    while len > 0 {
        let n = len.min(BLOCK - pos);
        out.extend_from_slice(&block[pos..pos + n]);
        len -= n;
        pos = 0;
    }
}

pub(crate) const TLS_MAX_REC: u64 = 16_401;
const RSYNC_MAX: u64 = 32_768;

/// Wire length of `content` bytes carried in records of at most `max`
/// bytes with `hdr`-byte headers.
pub(crate) fn framed_len(content: u64, max: u64, hdr: u64) -> u64 {
    content + hdr * content.div_ceil(max)
}

pub(crate) fn render_fill(
    kind: FillKind,
    salt: u32,
    off: u64,
    len: u64,
    total: u64,
    out: &mut Vec<u8>,
) {
    let salt = salt as u64 * 4099;
    match kind {
        FillKind::None => {}
        FillKind::Text => copy_block(text_block(), salt + off, len as usize, out),
        FillKind::Random => copy_block(random_block(), salt + off, len as usize, out),
        FillKind::Tls | FillKind::RsyncMux => {
            let (hdr, max) = if kind == FillKind::Tls {
                (5u64, TLS_MAX_REC)
            } else {
                (4u64, RSYNC_MAX)
            };
            let rec = hdr + max;
            let mut p = off;
            let end = off + len;
            while p < end {
                let r = p / rec;
                let inr = p % rec;
                let rec_start = r * rec;
                let rec_len = max.min(total - rec_start - hdr);
                if inr < hdr {
                    let h: [u8; 5] = if kind == FillKind::Tls {
                        [0x17, 3, 3, (rec_len >> 8) as u8, rec_len as u8]
                    } else {
                        let v = (7u32 << 24) | rec_len as u32;
                        let b = v.to_le_bytes();
                        [b[0], b[1], b[2], b[3], 0]
                    };
                    let n = (hdr - inr).min(end - p);
                    out.extend_from_slice(&h[inr as usize..(inr + n) as usize]);
                    p += n;
                } else {
                    let rec_end = rec_start + hdr + rec_len;
                    let n = rec_end.min(end) - p;
                    copy_block(random_block(), salt + p, n as usize, out);
                    p += n;
                }
            }
        }
    }
}

/// Ones' complement sum of `data` (as big-endian 16-bit words, odd byte
/// padded) added to `acc`; fold with [`fold`].
pub(crate) fn csum_add(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (x >> 32) + (x & 0xffff_ffff);
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        acc += (rest[i] as u64) << 8;
    }
    acc
}

pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Per-direction IP header parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpParams {
    pub ttl: u8,
    pub id: u16,
    pub flow_label: u32,
}

/// Encodes one frame into `buf` (cleared first). Short frames are padded
/// to the 60-byte Ethernet minimum when `pad` is set (as received frames
/// are; frames captured on the sending host are not).
pub(crate) fn build_frame(
    buf: &mut Vec<u8>,
    src: &Endpoint,
    dst: &Endpoint,
    l4: &L4,
    payload: &Payload,
    ipp: IpParams,
    pad: bool,
) {
    buf.clear();
    buf.extend_from_slice(&dst.mac);
    buf.extend_from_slice(&src.mac);
    let v6 = src.ip.is_v6();
    buf.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let ip_off = buf.len();
    let (proto, icmp_proto) = match l4 {
        L4::Tcp { .. } => (6u8, 6u8),
        L4::Udp => (17, 17),
        L4::Echo { .. } => (if v6 { 58 } else { 1 }, if v6 { 58 } else { 1 }),
    };
    match (&src.ip, &dst.ip) {
        (Ip::V4(s), Ip::V4(d)) => {
            let df = if matches!(l4, L4::Tcp { .. }) {
                0x40
            } else {
                0
            };
            buf.extend_from_slice(&[0x45, 0, 0, 0]);
            buf.extend_from_slice(&ipp.id.to_be_bytes());
            buf.extend_from_slice(&[df, 0, ipp.ttl, proto, 0, 0]);
            buf.extend_from_slice(s);
            buf.extend_from_slice(d);
        }
        (Ip::V6(s), Ip::V6(d)) => {
            let fl = ipp.flow_label & 0x000f_ffff;
            buf.extend_from_slice(&(0x6000_0000u32 | fl).to_be_bytes());
            buf.extend_from_slice(&[0, 0, proto, ipp.ttl]);
            buf.extend_from_slice(s);
            buf.extend_from_slice(d);
        }
        _ => unreachable!("mixed address families in one flow"),
    }
    let l4_off = buf.len();
    match *l4 {
        L4::Tcp {
            flags,
            seq,
            ack,
            win,
            syn_opts,
        } => {
            buf.extend_from_slice(&src.port.to_be_bytes());
            buf.extend_from_slice(&dst.port.to_be_bytes());
            buf.extend_from_slice(&seq.to_be_bytes());
            buf.extend_from_slice(&ack.to_be_bytes());
            let hlen: u8 = if syn_opts { 32 } else { 20 };
            buf.extend_from_slice(&[(hlen / 4) << 4, flags]);
            buf.extend_from_slice(&win.to_be_bytes());
            buf.extend_from_slice(&[0, 0, 0, 0]);
            if syn_opts {
                let mss: u16 = if v6 { 1440 } else { 1460 };
                buf.extend_from_slice(&[2, 4]);
                buf.extend_from_slice(&mss.to_be_bytes());
                buf.extend_from_slice(&[1, 3, 3, 7, 1, 1, 4, 2]);
            }
        }
        L4::Udp => {
            buf.extend_from_slice(&src.port.to_be_bytes());
            buf.extend_from_slice(&dst.port.to_be_bytes());
            buf.extend_from_slice(&[0, 0, 0, 0]);
        }
        L4::Echo { reply, id, seq } => {
            let t = match (v6, reply) {
                (false, false) => 8,
                (false, true) => 0,
                (true, false) => 128,
                (true, true) => 129,
            };
            buf.extend_from_slice(&[t, 0, 0, 0]);
            buf.extend_from_slice(&id.to_be_bytes());
            buf.extend_from_slice(&seq.to_be_bytes());
        }
    }
    payload.write(buf);
    let l4_len = buf.len() - l4_off;
    // IP lengths and checksums.
    let mut pseudo: u64 = 0;
    if v6 {
        buf[ip_off + 4..ip_off + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        pseudo = csum_add(pseudo, &buf[ip_off + 8..ip_off + 40]);
    } else {
        let total = (l4_len + 20) as u16;
        buf[ip_off + 2..ip_off + 4].copy_from_slice(&total.to_be_bytes());
        let c = fold(csum_add(0, &buf[ip_off..ip_off + 20]));
        buf[ip_off + 10..ip_off + 12].copy_from_slice(&c.to_be_bytes());
        pseudo = csum_add(pseudo, &buf[ip_off + 12..ip_off + 20]);
    }
    let use_pseudo = !matches!(l4, L4::Echo { .. }) || v6;
    if use_pseudo {
        pseudo += l4_len as u64 + icmp_proto as u64;
    } else {
        pseudo = 0;
    }
    let csum_at = match l4 {
        L4::Tcp { .. } => l4_off + 16,
        L4::Udp => {
            buf[l4_off + 4..l4_off + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l4_off + 6
        }
        L4::Echo { .. } => l4_off + 2,
    };
    let mut c = fold(csum_add(pseudo, &buf[l4_off..]));
    if c == 0 && matches!(l4, L4::Udp) {
        c = 0xffff;
    }
    buf[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    if pad && buf.len() < 60 {
        buf.resize(60, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let s = csum_add(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(fold(s), !0xddf2);
    }

    #[test]
    fn tls_framing_headers_at_record_starts() {
        let content = 40_000u64;
        let total = framed_len(content, TLS_MAX_REC, 5);
        let mut all = Vec::new();
        render_fill(FillKind::Tls, 3, 0, total, total, &mut all);
        // Render in odd pieces and compare.
        let mut pieces = Vec::new();
        let mut p = 0;
        while p < total {
            let n = 1447.min(total - p);
            render_fill(FillKind::Tls, 3, p, n, total, &mut pieces);
            p += n;
        }
        assert_eq!(all, pieces);
        let mut off = 0usize;
        let mut sum = 0u64;
        while off < all.len() {
            assert_eq!(&all[off..off + 3], &[0x17, 3, 3]);
            let l = u16::from_be_bytes([all[off + 3], all[off + 4]]) as usize;
            sum += l as u64;
            off += 5 + l;
        }
        assert_eq!(off, all.len());
        assert_eq!(sum, content);
    }
}

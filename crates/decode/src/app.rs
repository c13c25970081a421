//! Application hints from the first payload bytes of a packet.
//!
//! Each parser is a bounded, allocation-free look at the payload; hints
//! borrow the packet (DNS names, which may need un-escaping, are copied into
//! a fixed inline buffer). Called by the flow table only for the first few
//! payload packets of a flow, so its cost stays off the per-packet path.

use std::fmt;

use crate::{be16, be32, Packet, Transport};

/// Names of every protocol [`AppHint::protocol`] returns, in a fixed order:
/// bit `i` of a protocol bitmask (e.g. `flow::AppInfo::protocols`) stands for
/// `PROTOCOLS[i]`. Append-only: a name keeps its index forever, so masks
/// written by older builds keep their meaning.
pub const PROTOCOLS: [&str; 18] = [
    "tls",        // 0
    "dns",        // 1
    "http",       // 2
    "quic",       // 3
    "ssh",        // 4
    "rtp",        // 5
    "rtcp",       // 6
    "sip",        // 7
    "stun",       // 8
    "dtls",       // 9
    "bittorrent", // 10
    "mgcp",       // 11
    "megaco",     // 12
    "h323",       // 13
    "iax2",       // 14
    "rtmp",       // 15
    "teamspeak",  // 16
    "whatsapp",   // 17
];

const _: () = assert!(PROTOCOLS.len() <= 32, "protocol bitmasks are u32");

/// Index of `name` in [`PROTOCOLS`].
pub fn protocol_index(name: &str) -> Option<usize> {
    PROTOCOLS.iter().position(|&p| p == name)
}

/// The names of the bits set in `mask`, in [`PROTOCOLS`] order (bits
/// beyond the list are ignored).
pub fn protocol_names(mask: u32) -> impl Iterator<Item = &'static str> {
    PROTOCOLS
        .iter()
        .enumerate()
        .filter(move |(i, _)| mask & (1 << i) != 0)
        .map(|(_, &n)| n)
}

/// What the payload looks like.
// DnsName is inline (no allocation per packet); the size is the price.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppHint<'a> {
    TlsClientHello {
        sni: Option<&'a str>,
        /// First protocol of the ALPN list, e.g. "h2".
        alpn: Option<&'a str>,
    },
    /// A server's plaintext Certificate message (TLS ≤ 1.2): the first
    /// certificate's subject common name, or its first SAN dNSName when the
    /// subject has no CN.
    TlsCertificate {
        name: &'a str,
    },
    TlsOther,
    Dns {
        qname: DnsName,
        qtype: u16,
        response: bool,
    },
    HttpRequest {
        method: &'a str,
        /// Request target as sent, capped at [`MAX_HTTP_PATH`] bytes (at a
        /// character boundary; a target that is not UTF-8 is cut before the
        /// first invalid byte).
        path: &'a str,
        host: Option<&'a str>,
    },
    HttpResponse {
        /// Media type of Content-Type, without parameters ("video/mp4").
        content_type: Option<&'a str>,
    },
    Quic {
        version: u32,
        /// Server name of a Google QUIC client hello (CHLO tag `SNI`, sent
        /// in the clear up to Q043). IETF QUIC protects its Initial packets,
        /// so this is `None` for it here: the flow table decrypts them with
        /// [`crate::quic_initial`] (owned data, possibly over several
        /// packets) for the ClientHello's server name and ALPN.
        sni: Option<&'a str>,
    },
    Ssh {
        banner: &'a str,
    },
    Rtp {
        payload_type: u8,
    },
    Rtcp,
    Sip {
        method: &'a str,
    },
    /// RFC 5389 STUN (magic cookie), UDP or TCP.
    Stun {
        message_type: u16,
    },
    /// DTLS 1.0/1.2 record.
    Dtls {
        content_type: u8,
        version: u16,
    },
    /// Peer handshake (TCP), DHT message or UDP tracker connect (UDP).
    BitTorrent,
    Mgcp {
        /// The command verb ("RQNT", …), or "response".
        verb: &'a str,
    },
    /// Megaco/H.248 text encoding.
    Megaco,
    H323 {
        /// H.225 RAS on UDP 1719 (recognised by port and a light check of
        /// its first bytes) rather than Q.931 call signalling in TPKT.
        ras: bool,
    },
    Iax2,
    Rtmp,
    TeamSpeak,
    WhatsApp,
}

/// Longest request target kept in [`AppHint::HttpRequest`] (bytes).
pub const MAX_HTTP_PATH: usize = 256;

impl AppHint<'_> {
    /// Index of the hint's protocol in [`PROTOCOLS`].
    pub fn protocol_index(&self) -> usize {
        match self {
            AppHint::TlsClientHello { .. } | AppHint::TlsCertificate { .. } | AppHint::TlsOther => {
                0
            }
            AppHint::Dns { .. } => 1,
            AppHint::HttpRequest { .. } | AppHint::HttpResponse { .. } => 2,
            AppHint::Quic { .. } => 3,
            AppHint::Ssh { .. } => 4,
            AppHint::Rtp { .. } => 5,
            AppHint::Rtcp => 6,
            AppHint::Sip { .. } => 7,
            AppHint::Stun { .. } => 8,
            AppHint::Dtls { .. } => 9,
            AppHint::BitTorrent => 10,
            AppHint::Mgcp { .. } => 11,
            AppHint::Megaco => 12,
            AppHint::H323 { .. } => 13,
            AppHint::Iax2 => 14,
            AppHint::Rtmp => 15,
            AppHint::TeamSpeak => 16,
            AppHint::WhatsApp => 17,
        }
    }

    /// Bit of the hint's protocol in a protocol bitmask.
    pub fn protocol_bit(&self) -> u32 {
        1 << self.protocol_index()
    }

    /// Protocol name of the hint, one of [`PROTOCOLS`]: "tls", "dns",
    /// "http", "quic", "ssh", "rtp", "rtcp", "sip", "stun", "dtls",
    /// "bittorrent", "mgcp", "megaco", "h323", "iax2", "rtmp", "teamspeak",
    /// "whatsapp".
    pub fn protocol(&self) -> &'static str {
        PROTOCOLS[self.protocol_index()]
    }
}

/// A DNS name held inline (at most 253 characters), so no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DnsName {
    buf: [u8; 255],
    len: u8,
}

impl DnsName {
    pub fn as_str(&self) -> &str {
        // Only valid UTF-8 is stored (see `read_qname`).
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// DNS query type names for the common types.
pub fn dns_type_name(t: u16) -> &'static str {
    match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        43 => "DS",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        _ => "other",
    }
}

/// Looks at the payload of `pkt` for an application protocol.
///
/// Every check starts with a comparison of a few bytes at fixed offsets, so a
/// payload that is none of them costs a handful of comparisons; only a match
/// reads further (bounded: header lines within 4 KiB, a certificate within
/// [`CERT_WINDOW`] bytes).
pub fn inspect<'a>(pkt: &Packet<'a>) -> Option<AppHint<'a>> {
    let p = pkt.payload;
    if p.is_empty() {
        return None;
    }
    match pkt.transport {
        Transport::Tcp(t) => {
            if let Some(h) = tls(p) {
                return Some(h);
            }
            if let Some(h) = http(p) {
                return Some(h);
            }
            if p.starts_with(b"SSH-") {
                let end = p.iter().take(255).position(|&c| c == b'\r' || c == b'\n');
                let banner = &p[..end.unwrap_or(p.len().min(255))];
                return std::str::from_utf8(banner)
                    .ok()
                    .map(|banner| AppHint::Ssh { banner });
            }
            if t.src_port == 53 || t.dst_port == 53 {
                // DNS over TCP: two-byte length prefix.
                if p.len() > 2 {
                    return dns(&p[2..]);
                }
            }
            if let Some(h) = sip(p) {
                return Some(h);
            }
            tcp_other(p, t.src_port, t.dst_port)
        }
        Transport::Udp { src_port, dst_port } => {
            let dns_port = |p: u16| p == 53 || p == 5353 || p == 5355;
            if dns_port(src_port) || dns_port(dst_port) {
                if let Some(h) = dns(p) {
                    return Some(h);
                }
            }
            // The UDP length: what STUN's and DTLS's length fields must fit.
            let datagram = (pkt.payload_len as usize).max(p.len());
            match p[0] {
                // RFC 7983 demultiplexing: 0..=3 STUN, 20..=63 DTLS.
                0..=3 => {
                    if let Some(h) = stun(p, Some(datagram)) {
                        return Some(h);
                    }
                }
                20..=23 => {
                    if let Some(h) = dtls(p, datagram) {
                        return Some(h);
                    }
                }
                _ => {}
            }
            if let Some(h) = sip(p) {
                return Some(h);
            }
            // HTTP over UDP: SSDP (M-SEARCH, NOTIFY) carries request lines and Host.
            if let Some(h) = http(p) {
                return Some(h);
            }
            if let Some(h) = udp_other(p, src_port, dst_port) {
                return Some(h);
            }
            if let Some(h) = quic(p) {
                return Some(h);
            }
            if let Some(h) = gquic(p) {
                return Some(h);
            }
            if p[0] & 0x80 != 0 || src_port == 4569 || dst_port == 4569 {
                if let Some(h) = iax2(p, src_port, dst_port) {
                    return Some(h);
                }
            }
            if src_port == 1719 || dst_port == 1719 {
                if let Some(h) = h225_ras(p) {
                    return Some(h);
                }
            }
            rtp(p, src_port, dst_port)
        }
        _ => None,
    }
}

/// The TCP checks after TLS, HTTP, SSH, DNS and SIP.
fn tcp_other(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'_>> {
    let port = |n: u16| sport == n || dport == n;
    match p[0] {
        // TPKT (RFC 1006) carries Q.931 (H.323 call signalling) and Megaco.
        0x03 if p.len() >= 4 && p[1] == 0 => {
            if let Some(h) = tpkt(p) {
                return Some(h);
            }
            rtmp(p, port(1935))
        }
        0x03 => rtmp(p, port(1935)),
        0x13 => p
            .starts_with(b"\x13BitTorrent protocol")
            .then_some(AppHint::BitTorrent),
        // STUN over TCP (TURN), plain or with RFC 4571 framing.
        0x00..=0x03 => stun(p, None).or_else(|| stun_framed(p)),
        b'W' if p.len() >= 4
            && p[1] == b'A'
            && (1..=9).contains(&p[2])
            && p[3] < 0x20
            && (port(5222) || port(443)) =>
        {
            Some(AppHint::WhatsApp)
        }
        c => text_other(p, c, sport, dport),
    }
}

/// MGCP or Megaco text, dispatched on the first byte so that binary
/// payloads cost one comparison.
#[inline]
fn text_other(p: &[u8], first: u8, sport: u16, dport: u16) -> Option<AppHint<'_>> {
    match first {
        b'0'..=b'9' | b'C' | b'D' | b'E' | b'N' | b'R' | b'c' | b'd' | b'e' | b'n' | b'r' => {
            mgcp(p, sport, dport)
        }
        b'A' | b'M' | b'a' | b'm' => mgcp(p, sport, dport).or_else(|| megaco(p)),
        b' ' | b'\t' | b'\r' | b'\n' | b'!' => megaco(p),
        _ => None,
    }
}

/// The UDP checks for text and fixed-prefix protocols (MGCP, Megaco,
/// TeamSpeak, BitTorrent).
fn udp_other(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'_>> {
    match p[0] {
        b'T' => p.starts_with(b"TS3INIT1").then_some(AppHint::TeamSpeak),
        b'd' => bt_dht(p).then_some(AppHint::BitTorrent),
        // UDP tracker (BEP 15) connect request: the protocol id, action 0.
        0 if p.len() >= 16 && p[..12] == [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0] => {
            Some(AppHint::BitTorrent)
        }
        c => text_other(p, c, sport, dport),
    }
}

fn tls(p: &[u8]) -> Option<AppHint<'_>> {
    // Record header: type, version 3.x, length.
    if p.len() < 6 || p[1] != 3 || p[2] > 4 {
        return None;
    }
    match p[0] {
        22 => {}
        // A ChangeCipherSpec or an alert (e.g. unrecognized_name) may come
        // before the server's handshake records in the same segment.
        20 | 21 => {
            return Some(match tls_certificate(p) {
                Some(name) => AppHint::TlsCertificate { name },
                None => AppHint::TlsOther,
            })
        }
        23 => return Some(AppHint::TlsOther),
        _ => return None,
    }
    match p[5] {
        1 => {}
        // ServerHello, or a record that starts with the Certificate.
        2 | 11 => {
            return Some(match tls_certificate(p) {
                Some(name) => AppHint::TlsCertificate { name },
                None => AppHint::TlsOther,
            })
        }
        _ => return Some(AppHint::TlsOther),
    }
    let (sni, alpn) = client_hello_names(&p[5..]);
    Some(AppHint::TlsClientHello { sni, alpn })
}

/// The server name (first `host_name` of the server_name extension) and
/// the first ALPN protocol of a TLS ClientHello handshake message: `msg`
/// starts at the handshake type byte (1). Used on TLS records over TCP and
/// on the CRYPTO stream of QUIC Initial packets
/// ([`crate::quic_initial`]).
///
/// The message may be cut off (snaplen, segmentation, a CRYPTO stream not
/// yet complete), so every step is bounds-checked and what was found before
/// the cut is kept.
pub fn client_hello_names(msg: &[u8]) -> (Option<&str>, Option<&str>) {
    let mut sni = None;
    let mut alpn = None;
    let body = &msg[4.min(msg.len())..];
    let mut off = 2 + 32; // client_version, random
    let skip8 = |off: usize| body.get(off).map(|&n| off + 1 + n as usize);
    let skip16 = |off: usize| (off + 2 <= body.len()).then(|| off + 2 + be16(body, off) as usize);
    let parsed = (|| {
        off = skip8(off)?; // session id
        off = skip16(off)?; // cipher suites
        off = skip8(off)?; // compression methods
        if off + 2 > body.len() {
            return None;
        }
        let ext_end = (off + 2 + be16(body, off) as usize).min(body.len());
        off += 2;
        while off + 4 <= ext_end {
            let etype = be16(body, off);
            let elen = be16(body, off + 2) as usize;
            let e = &body[off + 4..(off + 4 + elen).min(ext_end)];
            match etype {
                0 if e.len() >= 5 && e[2] == 0 => {
                    let n = be16(e, 3) as usize;
                    if let Some(name) = e.get(5..5 + n) {
                        sni = std::str::from_utf8(name).ok();
                    }
                }
                16 if e.len() >= 3 => {
                    let n = e[2] as usize;
                    if let Some(proto) = e.get(3..3 + n) {
                        alpn = std::str::from_utf8(proto).ok();
                    }
                }
                _ => {}
            }
            off += 4 + elen;
        }
        Some(())
    })();
    let _ = parsed;
    (sni, alpn)
}

const HTTP_METHODS: [&str; 18] = [
    "GET",
    "POST",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "CONNECT",
    "PATCH",
    "TRACE",
    // WebDAV (RFC 4918) and SSDP (UPnP over UDP).
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "M-SEARCH",
    "NOTIFY",
];

fn http(p: &[u8]) -> Option<AppHint<'_>> {
    if p.starts_with(b"HTTP/1.") {
        let content_type = header(p, b"content-type:").and_then(|v| {
            let v = v.split(|&c| c == b';').next().unwrap_or(v);
            std::str::from_utf8(v)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty())
        });
        return Some(AppHint::HttpResponse { content_type });
    }
    let method = HTTP_METHODS
        .iter()
        .find(|m| p.len() > m.len() && p.starts_with(m.as_bytes()) && p[m.len()] == b' ')?;
    let target = &p[method.len() + 1..];
    let target = &target[..target.len().min(MAX_HTTP_PATH)];
    let end = target
        .iter()
        .position(|&c| c == b' ' || c == b'\r' || c == b'\n')
        .unwrap_or(target.len());
    let path = utf8_prefix(&target[..end]);
    let host = header(p, b"host:")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim);
    Some(AppHint::HttpRequest { method, path, host })
}

/// The longest prefix of `b` that is UTF-8.
fn utf8_prefix(b: &[u8]) -> &str {
    match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// Value of the header `name` (lower case, with the colon) in the head of
/// an HTTP-like message, searched in its first 4 KiB.
fn header<'a>(p: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let head = &p[..p.len().min(4096)];
    let first = name[0];
    // Skip the request or status line.
    let mut at = find_newline(head)? + 1;
    loop {
        let rest = &head[at..];
        let end = find_newline(rest).unwrap_or(rest.len());
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        if line.len() > name.len()
            && line[0] | 0x20 == first
            && line[..name.len()].eq_ignore_ascii_case(name)
        {
            return Some(&line[name.len()..]);
        }
        if end == rest.len() {
            return None;
        }
        at += end + 1;
    }
}

/// Position of the first b'\n' in `b`, eight bytes at a time.
#[inline]
fn find_newline(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ (LO * 10);
        // The lowest set bit marks the first zero byte exactly.
        let z = x.wrapping_sub(LO) & !x & HI;
        if z != 0 {
            return Some(at + (z.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'\n')
        .map(|i| at + i)
}

fn read_qname(msg: &[u8], mut off: usize) -> Option<(DnsName, usize)> {
    let mut name = DnsName {
        buf: [0; 255],
        len: 0,
    };
    let mut len = 0usize;
    loop {
        let l = *msg.get(off)? as usize;
        if l == 0 {
            off += 1;
            break;
        }
        // Compression pointers do not occur in the question of a query;
        // stop rather than follow one.
        if l & 0xc0 != 0 {
            return None;
        }
        let label = msg.get(off + 1..off + 1 + l)?;
        if len + l + 1 > 253 {
            return None;
        }
        if len > 0 {
            name.buf[len] = b'.';
            len += 1;
        }
        // Bytes are kept as sent (IDN labels are often raw UTF-8, as in
        // LLMNR/mDNS); control characters are masked.
        for &c in label {
            name.buf[len] = if c < 0x20 || c == 0x7f { b'?' } else { c };
            len += 1;
        }
        off += 1 + l;
    }
    if std::str::from_utf8(&name.buf[..len]).is_err() {
        for c in &mut name.buf[..len] {
            if !c.is_ascii() {
                *c = b'?';
            }
        }
    }
    name.len = len as u8;
    Some((name, off))
}

fn dns(p: &[u8]) -> Option<AppHint<'static>> {
    if p.len() < 12 {
        return None;
    }
    let qdcount = be16(p, 4);
    let opcode = (p[2] >> 3) & 0x0f;
    if qdcount == 0 || qdcount > 16 || opcode > 6 {
        return None;
    }
    let (qname, off) = read_qname(p, 12)?;
    if off + 4 > p.len() {
        return None;
    }
    Some(AppHint::Dns {
        qname,
        qtype: be16(p, off),
        response: p[2] & 0x80 != 0,
    })
}

fn quic(p: &[u8]) -> Option<AppHint<'_>> {
    // Long header: header form and fixed bits set, version, DCID length ≤ 20.
    if p.len() < 7 || p[0] & 0xc0 != 0xc0 {
        return None;
    }
    let version = be32(p, 1);
    // Google's Q046 long header keeps the old connection-id length nibbles
    // (0x50: 8-byte destination id) and the client hello in the clear.
    if version & 0xffff_ff00 == 0x5130_3400 {
        return Some(AppHint::Quic {
            version,
            sni: chlo_after(p, 5),
        });
    }
    let dcid_len = p[5] as usize;
    if dcid_len > 20 || p.len() < 6 + dcid_len + 1 {
        return None;
    }
    let known = version == 0
        || version == 1
        || version == 0x6b33_43cf // QUIC v2
        || version >> 8 == 0xff_0000 // IETF drafts
        || version & 0x0f0f_0f0f == 0x0a0a_0a0a; // version negotiation greasing
    known.then_some(AppHint::Quic { version, sni: None })
}

/// Google QUIC (Q024–Q043) client packet with the version flag: public
/// flags, 8-byte connection id, version "Q0nn", then, within the first
/// bytes, a client hello in the clear: "CHLO", a little-endian tag count,
/// two padding bytes, (tag, end offset) pairs and the values.
fn gquic(p: &[u8]) -> Option<AppHint<'_>> {
    let flags = *p.first()?;
    // Version flag set; 0x80 is reserved (0) before Q046's long header.
    if flags & 0x01 == 0 || flags & 0x80 != 0 {
        return None;
    }
    let v = if flags & 0x08 != 0 { 9 } else { 1 };
    let ver = p.get(v..v + 4)?;
    if ver[0] != b'Q' || !ver[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(AppHint::Quic {
        version: be32(p, v),
        sni: chlo_after(p, v + 4),
    })
}

/// The SNI of a CHLO starting within 64 bytes after `from`: it follows the
/// packet number, hash and stream frame header, whose layout changed from
/// version to version, so a short window is searched instead.
fn chlo_after(p: &[u8], from: usize) -> Option<&str> {
    let window = p.get(from..p.len().min(from + 64))?;
    let at = window.windows(4).position(|w| w == b"CHLO")? + from;
    chlo_sni(&p[at..])
}

/// The `SNI` value of a CHLO message starting at `m` ("CHLO…").
fn chlo_sni(m: &[u8]) -> Option<&str> {
    let n = u16::from_le_bytes([*m.get(4)?, *m.get(5)?]) as usize;
    if n > 128 {
        return None;
    }
    let table = m.get(8..8 + 8 * n)?;
    let values = &m[8 + 8 * n..];
    let mut start = 0usize;
    for e in table.chunks_exact(8) {
        let end = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as usize;
        if end < start {
            return None;
        }
        if &e[..4] == b"SNI\0" {
            return std::str::from_utf8(values.get(start..end)?).ok();
        }
        start = end;
    }
    None
}

fn rtp(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'static>> {
    if p.len() < 8 || p[0] >> 6 != 2 || sport < 1024 || dport < 1024 {
        return None;
    }
    match p[1] {
        200..=206 => Some(AppHint::Rtcp),
        b => {
            let pt = b & 0x7f;
            // Static audio/video payload types and the dynamic range.
            ((pt <= 34 || (96..=127).contains(&pt)) && p.len() >= 12)
                .then_some(AppHint::Rtp { payload_type: pt })
        }
    }
}

const SIP_METHODS: [&str; 13] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
];

fn sip(p: &[u8]) -> Option<AppHint<'_>> {
    if p.starts_with(b"SIP/2.0 ") {
        return Some(AppHint::Sip { method: "response" });
    }
    let method = SIP_METHODS
        .iter()
        .find(|m| p.len() > m.len() + 5 && p.starts_with(m.as_bytes()) && p[m.len()] == b' ')?;
    let rest = &p[method.len() + 1..];
    (rest.starts_with(b"sip:") || rest.starts_with(b"sips:") || rest.starts_with(b"tel:"))
        .then_some(AppHint::Sip { method })
}

/// How far into a packet the TLS certificate walk reads.
pub const CERT_WINDOW: usize = 8192;

/// The first certificate's name in a server flight that starts in this
/// packet: TLS handshake records (ServerHello, Certificate, …) walked
/// message by message up to the Certificate, then its DER walked to the
/// subject. Certificates are cut by segmentation: whatever lies in the bytes
/// present (within [`CERT_WINDOW`]) is used, nothing is reassembled.
fn tls_certificate(p: &[u8]) -> Option<&str> {
    let p = &p[..p.len().min(CERT_WINDOW)];
    let mut off = 0;
    // Each record advances `off` by at least 5 bytes.
    while off + 5 <= p.len() {
        if !(20..=22).contains(&p[off]) || p[off + 1] != 3 {
            return None;
        }
        let rec_end = (off + 5 + be16(p, off + 3) as usize).min(p.len());
        if p[off] != 22 {
            off = rec_end; // ChangeCipherSpec, alert
            continue;
        }
        let rec = &p[off + 5..rec_end];
        let mut m = 0;
        while m + 4 <= rec.len() {
            let len = be24(rec, m + 1);
            match rec[m] {
                11 => {
                    let body = &rec[m + 4..(m + 4 + len).min(rec.len())];
                    // certificate_list length, then the first certificate's length.
                    let cert_len = be24(body.get(..6)?, 3);
                    let der = &body[6..(6 + cert_len).min(body.len())];
                    return cert_name(der);
                }
                // A server's flight: ServerHello, HelloRetryRequest-style
                // messages, NewSessionTicket, EncryptedExtensions.
                2 | 4 | 8 => m += 4 + len,
                _ => return None,
            }
        }
        if m != rec.len() {
            // A message continues into the next record (or the packet ends).
            return None;
        }
        off = rec_end;
    }
    None
}

#[inline]
fn be24(b: &[u8], at: usize) -> usize {
    (b[at] as usize) << 16 | (b[at + 1] as usize) << 8 | b[at + 2] as usize
}

/// A DER element header at `off`: (tag, start of the contents, length of
/// the contents). The contents may extend past `b` (a cut certificate).
fn tlv(b: &[u8], off: usize) -> Option<(u8, usize, usize)> {
    let tag = *b.get(off)?;
    let l0 = *b.get(off + 1)? as usize;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in certificates
    }
    if l0 < 0x80 {
        return Some((tag, off + 2, l0));
    }
    let n = l0 & 0x7f;
    if n == 0 || n > 3 {
        return None; // indefinite or ≥ 16 MiB: not a certificate
    }
    let len = b
        .get(off + 2..off + 2 + n)?
        .iter()
        .fold(0usize, |a, &x| a << 8 | x as usize);
    Some((tag, off + 2 + n, len))
}

/// Offset just past the DER element at `off`, when its tag is `tag`.
fn skip_tlv(b: &[u8], off: usize, tag: u8) -> Option<usize> {
    let (t, start, len) = tlv(b, off)?;
    (t == tag).then_some(start + len)
}

/// The contents of the DER string at `off` when it is whole and UTF-8
/// (UTF8String, PrintableString, IA5String, TeletexString).
fn der_str<'a>(b: &'a [u8], off: usize, tags: &[u8]) -> Option<&'a str> {
    let (t, start, len) = tlv(b, off)?;
    if !tags.contains(&t) {
        return None;
    }
    let s = std::str::from_utf8(b.get(start..start + len)?).ok()?;
    (!s.is_empty()).then_some(s)
}

/// Subject CN of an X.509 certificate (possibly cut), else its first SAN
/// dNSName.
fn cert_name(der: &[u8]) -> Option<&str> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { … } … }
    let (t, c, _) = tlv(der, 0)?;
    if t != 0x30 {
        return None;
    }
    let (t, mut off, _) = tlv(der, c)?;
    if t != 0x30 {
        return None;
    }
    if let Some(next) = skip_tlv(der, off, 0xa0) {
        off = next; // [0] version
    }
    off = skip_tlv(der, off, 0x02)?; // serialNumber
    off = skip_tlv(der, off, 0x30)?; // signature
    off = skip_tlv(der, off, 0x30)?; // issuer
    off = skip_tlv(der, off, 0x30)?; // validity
    let (t, subj, subj_len) = tlv(der, off)?;
    if t != 0x30 {
        return None;
    }
    let subj_end = subj + subj_len;
    // Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value }
    let mut rdn = subj;
    while rdn < subj_end.min(der.len()) {
        let (t, set, set_len) = tlv(der, rdn)?;
        if t != 0x31 {
            return None;
        }
        let mut atv = set;
        while atv < (set + set_len).min(der.len()) {
            let (t, inner, inner_len) = tlv(der, atv)?;
            if t != 0x30 {
                return None;
            }
            if der.get(inner..inner + 5) == Some(&[0x06, 0x03, 0x55, 0x04, 0x03]) {
                if let Some(cn) = der_str(der, inner + 5, &[0x0c, 0x13, 0x16, 0x14]) {
                    return Some(cn);
                }
            }
            atv = inner + inner_len;
        }
        rdn = set + set_len;
    }
    // No CN: subjectAltName in the extensions, if the bytes reach them.
    let mut off = skip_tlv(der, subj_end, 0x30)?; // subjectPublicKeyInfo
    for _ in 0..3 {
        let (t, start, len) = tlv(der, off)?;
        match t {
            0x81 | 0x82 => off = start + len, // issuer/subject unique ids
            0xa3 => {
                let (t, exts, exts_len) = tlv(der, start)?;
                if t != 0x30 {
                    return None;
                }
                let mut e = exts;
                while e < (exts + exts_len).min(der.len()) {
                    let (t, ext, ext_len) = tlv(der, e)?;
                    if t != 0x30 {
                        return None;
                    }
                    if der.get(ext..ext + 5) == Some(&[0x06, 0x03, 0x55, 0x1d, 0x11]) {
                        let mut v = ext + 5;
                        if let Some(next) = skip_tlv(der, v, 0x01) {
                            v = next; // critical
                        }
                        let (t, os, _) = tlv(der, v)?;
                        let (t2, names, names_len) = tlv(der, os)?;
                        if t != 0x04 || t2 != 0x30 {
                            return None;
                        }
                        let mut n = names;
                        while n < (names + names_len).min(der.len()) {
                            let (t, start, len) = tlv(der, n)?;
                            if t == 0x82 {
                                return der_str(der, n, &[0x82]);
                            }
                            n = start + len;
                        }
                        return None;
                    }
                    e = ext + ext_len;
                }
                return None;
            }
            _ => return None,
        }
    }
    None
}

/// RFC 5389 STUN: message type with the top two bits clear, a length that
/// is a multiple of 4 and, over UDP, equals the datagram's less the 20-byte
/// header, and the magic cookie. Classic RFC 3489 STUN (no cookie) is not
/// recognised.
fn stun(p: &[u8], datagram: Option<usize>) -> Option<AppHint<'static>> {
    if p.len() < 20 || p[0] & 0xc0 != 0 || p[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let len = be16(p, 2) as usize;
    if !len.is_multiple_of(4) || datagram.is_some_and(|d| d != 20 + len) {
        return None;
    }
    Some(AppHint::Stun {
        message_type: be16(p, 0),
    })
}

/// STUN over TCP with RFC 4571 framing (ICE-TCP): a two-byte length, then
/// the message.
fn stun_framed(p: &[u8]) -> Option<AppHint<'static>> {
    let h = stun(p.get(2..)?, None)?;
    (be16(p, 0) as usize == 20 + be16(p, 4) as usize).then_some(h)
}

/// DTLS 1.0/1.2 record header: content type 20..=23, version 0xfeff or
/// 0xfefd, epoch and sequence number, a length that fits the datagram.
fn dtls(p: &[u8], datagram: usize) -> Option<AppHint<'static>> {
    if p.len() < 13 || !(20..=23).contains(&p[0]) || p[1] != 0xfe || (p[2] != 0xff && p[2] != 0xfd)
    {
        return None;
    }
    let len = be16(p, 11) as usize;
    (len > 0 && 13 + len <= datagram).then_some(AppHint::Dtls {
        content_type: p[0],
        version: be16(p, 1),
    })
}

/// A BitTorrent DHT message (BEP 5): a bencoded dictionary whose first keys
/// are a query's "a" or a response's "r" holding the 20-byte node id. A
/// response may lead with "ip" (BEP 42), found in the first 64 bytes.
fn bt_dht(p: &[u8]) -> bool {
    if p.starts_with(b"d1:ad2:id20:") || p.starts_with(b"d1:rd2:id20:") {
        return true;
    }
    p.starts_with(b"d2:ip")
        && p[..p.len().min(64)]
            .windows(11)
            .any(|w| w == b"1:rd2:id20:")
}

const MGCP_VERBS: [&str; 9] = [
    "AUEP", "AUCX", "CRCX", "DLCX", "EPCF", "MDCX", "NTFY", "RQNT", "RSIP",
];

/// The first four bytes as one word with ASCII letters upper-cased (bit 5
/// cleared: exact for comparing with upper-case letters).
#[inline]
fn upper4(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0xdfdf_dfdf
}

/// MGCP (RFC 3435): a command is a verb, a transaction id (1 to 9 digits),
/// an endpoint and "MGCP x.y", recognised on any port. On the MGCP ports
/// (2427 gateway, 2727 call agent), like tshark, a verb followed by a
/// transaction id suffices, and a response ("200 1234 OK") is recognised too.
fn mgcp(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'static>> {
    if p.len() < 6 || !(p[0].is_ascii_digit() || b"ACDEMNRacdemnr".contains(&p[0])) {
        return None;
    }
    let on_port = sport == 2427 || sport == 2727 || dport == 2427 || dport == 2727;
    let txid = |at: usize| -> Option<usize> {
        let n = p[at..]
            .iter()
            .take(10)
            .take_while(|c| c.is_ascii_digit())
            .count();
        ((1..=9).contains(&n)).then_some(at + n)
    };
    if p[..3].iter().all(u8::is_ascii_digit) {
        if !on_port || p[3] != b' ' {
            return None;
        }
        let end = txid(4)?;
        return matches!(p.get(end), None | Some(b' ' | b'\t' | b'\r' | b'\n'))
            .then_some(AppHint::Mgcp { verb: "response" });
    }
    let w = upper4(p);
    let verb = MGCP_VERBS.iter().find(|v| upper4(v.as_bytes()) == w)?;
    if p[4] != b' ' && p[4] != b'\t' {
        return None;
    }
    let end = txid(5)?;
    if p.get(end) != Some(&b' ') {
        return None;
    }
    if on_port {
        return Some(AppHint::Mgcp { verb });
    }
    // The endpoint name, then the protocol version.
    let rest = &p[end + 1..p.len().min(end + 1 + 256)];
    let sp = rest.iter().position(|&c| c == b' ')?;
    let v = &rest[sp + 1..];
    (v.len() >= 8 && v[..5].eq_ignore_ascii_case(b"MGCP ") && v[5].is_ascii_digit() && v[6] == b'.')
        .then_some(AppHint::Mgcp { verb })
}

/// Megaco/H.248 text encoding (RFC 3525): optional white space and an
/// authentication header ("AU=…" or "Authentication=…"), then "MEGACO/" or
/// its short form "!/" and the version digit.
fn megaco(p: &[u8]) -> Option<AppHint<'static>> {
    if !matches!(
        p.first(),
        Some(b' ' | b'\t' | b'\r' | b'\n' | b'!' | b'A' | b'a' | b'M' | b'm')
    ) {
        return None;
    }
    // Skips at most 64 bytes of white space from `i` (≤ p.len()).
    let lwsp = |mut i: usize| {
        let end = p.len().min(i + 64);
        while i < end && matches!(p[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        i
    };
    let mut i = lwsp(0);
    let rest = &p[i..];
    if rest.len() >= 3 && rest[..2].eq_ignore_ascii_case(b"AU") {
        let token = if rest.len() >= 14 && rest[..14].eq_ignore_ascii_case(b"Authentication") {
            14
        } else {
            2
        };
        i = lwsp(i + token);
        if p.get(i) != Some(&b'=') {
            return None;
        }
        i = lwsp(i + 1);
        // SecurityParmIndex:SequenceNum:AuthData, hex without white space.
        let n = p[i..]
            .iter()
            .take(256)
            .take_while(|c| !c.is_ascii_whitespace())
            .count();
        i = lwsp(i + n);
    }
    let rest = &p[i..];
    let ok = if rest.first() == Some(&b'!') {
        rest.len() >= 3 && rest[1] == b'/' && rest[2].is_ascii_digit()
    } else {
        rest.len() >= 8 && rest[..7].eq_ignore_ascii_case(b"MEGACO/") && rest[7].is_ascii_digit()
    };
    ok.then_some(AppHint::Megaco)
}

/// TPKT (RFC 1006) framing: Q.931 inside is H.323 call signalling (H.225.0,
/// protocol discriminator 8, a call reference of at most 3 bytes and a
/// message type); Megaco text inside is Megaco.
fn tpkt(p: &[u8]) -> Option<AppHint<'_>> {
    let len = be16(p, 2) as usize;
    if len < 7 {
        return None;
    }
    let q = &p[4..];
    if q.len() >= 3 && q[0] == 0x08 && q[1] <= 3 {
        let crl = q[1] as usize;
        return (len >= 4 + 3 + crl && q.get(2 + crl).is_some_and(|&t| t & 0x80 == 0))
            .then_some(AppHint::H323 { ras: false });
    }
    megaco(q)
}

/// H.225.0 RAS, PER-encoded (only on UDP 1719, the RAS port): the
/// protocol identifier {0 0 8 2250 0 v} within the first 16 bytes (GRQ,
/// RRQ, ARQ, … carry it right after the sequence number), or else a
/// RasMessage choice index in range. The second test is weak on its own;
/// together with the port it is what tshark, which dissects port 1719 as
/// RAS, does too.
fn h225_ras(p: &[u8]) -> Option<AppHint<'static>> {
    if p.len() < 3 {
        return None;
    }
    let oid = p[..p.len().min(16)]
        .windows(6)
        .any(|w| w == [0x06, 0x00, 0x08, 0x91, 0x4a, 0x00]);
    // Extension bit clear and one of the 25 root alternatives, or an
    // extension addition with a small index.
    let choice = if p[0] & 0x80 == 0 {
        (p[0] >> 2) & 0x1f <= 24
    } else {
        p[0] & 0x40 == 0
    };
    (oid || choice).then_some(AppHint::H323 { ras: true })
}

/// IAX2 (RFC 5456). A full frame (F bit, source call number, destination
/// call number, timestamp, oseq, iseq, frame type, subclass) is recognised
/// on any port when it is an IAX control frame (type 6) with a known
/// subclass and small sequence numbers, which keeps RTP (whose first byte
/// also has the top bit set) out; on port 4569 any frame type 1..=12, mini
/// frames (source call number, 16-bit timestamp) and video meta frames are
/// recognised too.
fn iax2(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'static>> {
    let on_port = sport == 4569 || dport == 4569;
    if p.len() < 4 {
        return None;
    }
    let scall = be16(p, 0) & 0x7fff;
    if p[0] & 0x80 != 0 {
        if p.len() < 12 || scall == 0 {
            return None;
        }
        let (oseq, iseq, ftype, sub) = (p[8], p[9], p[10], p[11]);
        let control = ftype == 6 && (1..=0x25).contains(&sub) && oseq < 64 && iseq < 64;
        return (control || (on_port && (1..=12).contains(&ftype))).then_some(AppHint::Iax2);
    }
    if !on_port {
        return None;
    }
    if scall != 0 {
        return Some(AppHint::Iax2); // mini frame
    }
    // Meta frame: zero call number, then the video flag.
    (p.len() >= 6 && p[2] & 0x80 != 0).then_some(AppHint::Iax2)
}

/// RTMP handshake: C0 (version 3) and the 1536-byte C1 in one segment
/// (1537 bytes), or S0+S1+S2 (3073 bytes); on port 1935 any payload
/// starting with version 3 (a segmented C0+C1, or a chunk of stream 3).
fn rtmp(p: &[u8], on_port: bool) -> Option<AppHint<'static>> {
    (p[0] == 3 && (p.len() == 1537 || p.len() == 3073 || on_port)).then_some(AppHint::Rtmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TcpInfo;
    use capture::LinkType;
    use proptest::prelude::*;

    #[test]
    fn google_quic_client_hello_gives_version_and_sni() {
        // Public header as sent by Chrome (flags 0x0d, CID, "Q024", packet
        // number, 12-byte hash, stream frame header), then a CHLO with three
        // tags whose values are "xx", the name, "yyy".
        let mut p = hex("0d b2de5df14f5545eb 51303234 01 3b6e8986f83cf3b7a6ab5d05 01a0010004");
        p.extend(b"CHLO");
        p.extend([3, 0, 0, 0]);
        for (tag, end) in [(b"PAD\0", 2u32), (b"SNI\0", 17), (b"VER\0", 20)] {
            p.extend(tag);
            p.extend(end.to_le_bytes());
        }
        p.extend(b"xxmail.google.comyyy");
        let h = inspect(&udp(57833, 443, &p));
        assert_eq!(
            h,
            Some(AppHint::Quic {
                version: u32::from_be_bytes(*b"Q024"),
                sni: Some("mail.google.com")
            })
        );
        // Cut inside the values: the version, no name.
        let h = inspect(&udp(57833, 443, &p[..p.len() - 8]));
        assert!(matches!(h, Some(AppHint::Quic { sni: None, .. })), "{h:?}");
        // Offsets going backwards are not trusted.
        let mut bad = p.clone();
        let at = p.len() - 20 - 8 + 4; // end offset of "VER"
        bad[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
        let sni_at = p.len() - 20 - 16 + 4;
        bad[sni_at..sni_at + 4].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(
            inspect(&udp(57833, 443, &bad)),
            Some(AppHint::Quic { sni: None, .. })
        ));
        // Without the version flag, or with a version that is not "Qnnn": not gQUIC.
        let mut q = p.clone();
        q[0] = 0x0c;
        assert!(!matches!(
            inspect(&udp(57833, 443, &q)),
            Some(AppHint::Quic { .. })
        ));
        let mut q = p.clone();
        q[9] = b'X';
        assert!(!matches!(
            inspect(&udp(57833, 443, &q)),
            Some(AppHint::Quic { .. })
        ));
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Packet<'_> {
        let mut p = Packet::new(LinkType::ETHERNET);
        p.transport = Transport::Udp {
            src_port: sport,
            dst_port: dport,
        };
        p.payload = payload;
        p.payload_len = payload.len() as u32;
        p
    }

    fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Packet<'_> {
        let mut p = Packet::new(LinkType::ETHERNET);
        p.transport = Transport::Tcp(TcpInfo {
            src_port: sport,
            dst_port: dport,
            seq: 1,
            ack: 1,
            flags: 0x18,
            window: 1000,
        });
        p.payload = payload;
        p.payload_len = payload.len() as u32;
        p
    }

    fn proto(pkt: &Packet<'_>) -> Option<&'static str> {
        inspect(pkt).map(|h| h.protocol())
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn protocol_table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for name in PROTOCOLS {
            assert!(seen.insert(name), "{name} twice");
            assert_eq!(PROTOCOLS[protocol_index(name).unwrap()], name);
        }
        let hints = [
            AppHint::TlsOther,
            AppHint::HttpResponse { content_type: None },
            AppHint::Rtcp,
            AppHint::Stun { message_type: 1 },
            AppHint::Dtls {
                content_type: 22,
                version: 0xfeff,
            },
            AppHint::BitTorrent,
            AppHint::Mgcp { verb: "RQNT" },
            AppHint::Megaco,
            AppHint::H323 { ras: true },
            AppHint::Iax2,
            AppHint::Rtmp,
            AppHint::TeamSpeak,
            AppHint::WhatsApp,
        ];
        let expect = [
            "tls",
            "http",
            "rtcp",
            "stun",
            "dtls",
            "bittorrent",
            "mgcp",
            "megaco",
            "h323",
            "iax2",
            "rtmp",
            "teamspeak",
            "whatsapp",
        ];
        for (h, want) in hints.iter().zip(expect) {
            assert_eq!(h.protocol(), want);
            assert_eq!(h.protocol_bit(), 1 << protocol_index(want).unwrap());
        }
        // The original eight keep their bits.
        assert_eq!(
            PROTOCOLS[..8],
            ["tls", "dns", "http", "quic", "ssh", "rtp", "rtcp", "sip"]
        );
        let mask = (1 << 8) | (1 << 5) | (1 << 9);
        assert_eq!(
            protocol_names(mask).collect::<Vec<_>>(),
            ["rtp", "stun", "dtls"]
        );
        assert_eq!(protocol_names(1 << 31).count(), 0);
    }

    /// A STUN Binding request with one 8-byte attribute.
    fn stun_msg() -> Vec<u8> {
        let mut m = hex("0001 000c 2112a442 0102030405060708090a0b0c");
        m.extend(hex("8022 0004 61626364 0000 0000"));
        m.truncate(20 + 12);
        m
    }

    #[test]
    fn stun_over_udp_and_tcp() {
        let m = stun_msg();
        assert_eq!(
            inspect(&udp(50000, 3478, &m)),
            Some(AppHint::Stun { message_type: 1 })
        );
        // Length field inconsistent with the datagram.
        assert_eq!(proto(&udp(50000, 3478, &m[..28])), None);
        let mut bad = m.clone();
        bad[3] = 0x0a; // not a multiple of 4
        assert_eq!(proto(&udp(50000, 3478, &bad[..30])), None);
        let mut bad = m.clone();
        bad[7] ^= 1; // cookie
        assert_eq!(proto(&udp(50000, 3478, &bad)), None);
        let mut bad = m.clone();
        bad[0] = 0x40; // TURN ChannelData, not STUN
        assert_ne!(proto(&udp(50000, 3478, &bad)), Some("stun"));
        // TCP: plain (TURN) and RFC 4571-framed (ICE-TCP).
        assert_eq!(proto(&tcp(50000, 443, &m)), Some("stun"));
        let mut framed = vec![0, m.len() as u8];
        framed.extend(&m);
        assert_eq!(proto(&tcp(50000, 443, &framed)), Some("stun"));
        framed[1] += 4;
        assert_eq!(proto(&tcp(50000, 443, &framed)), None);
    }

    #[test]
    fn dtls_records() {
        // ClientHello record, DTLS 1.0 record version.
        let mut r = hex("16 feff 0000 000000000000 0010");
        r.extend([0u8; 16]);
        assert_eq!(
            inspect(&udp(40000, 19305, &r)),
            Some(AppHint::Dtls {
                content_type: 22,
                version: 0xfeff
            })
        );
        r[2] = 0xfd;
        assert_eq!(proto(&udp(40000, 19305, &r)), Some("dtls"));
        // Application data then a second record in the same datagram.
        let mut two = hex("17 fefd 0001 000000000001 0004 01020304");
        two.extend(hex("15 fefd 0001 000000000002 0002 0100"));
        assert_eq!(proto(&udp(40000, 19305, &two)), Some("dtls"));
        // TLS versions, or a record longer than the datagram, are not DTLS.
        r[1] = 0x03;
        assert_eq!(proto(&udp(40000, 19305, &r)), None);
        let long = hex("16 fefd 0000 000000000000 0100 0000");
        assert_eq!(proto(&udp(40000, 19305, &long)), None);
        // DTLS is UDP only.
        assert_eq!(proto(&tcp(40000, 19305, &two)), None);
    }

    #[test]
    fn bittorrent_peer_dht_and_tracker() {
        let mut hs = b"\x13BitTorrent protocol".to_vec();
        hs.extend([0u8; 48]);
        assert_eq!(proto(&tcp(52888, 38305, &hs)), Some("bittorrent"));
        assert_eq!(proto(&tcp(52888, 38305, &hs[..19])), None);
        let q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert_eq!(proto(&udp(6881, 40000, q)), Some("bittorrent"));
        let r = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        assert_eq!(proto(&udp(40000, 6881, r)), Some("bittorrent"));
        let ip = b"d2:ip6:\x01\x02\x03\x04\x1a\xe11:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        assert_eq!(proto(&udp(40000, 6881, ip)), Some("bittorrent"));
        assert_eq!(proto(&udp(40000, 6881, b"d1:xd2:id20:")), None);
        let connect = hex("0000041727101980 00000000 deadbeef");
        assert_eq!(proto(&udp(40000, 6969, &connect)), Some("bittorrent"));
        let mut announce = connect.clone();
        announce[11] = 1;
        assert_eq!(proto(&udp(40000, 6969, &announce)), None);
    }

    #[test]
    fn mgcp_commands_and_responses() {
        let rqnt = b"RQNT 1 *@gateway44.myplace.com MGCP 0.1\r\nR: l/hd(n)\r\nX: 2\r\n\r\n";
        assert_eq!(
            inspect(&udp(2427, 2427, rqnt)),
            Some(AppHint::Mgcp { verb: "RQNT" })
        );
        // Any port with the "MGCP x.y" token.
        assert_eq!(proto(&udp(40798, 5000, rqnt)), Some("mgcp"));
        assert_eq!(
            proto(&tcp(40798, 5000, b"crcx 99 aaln/1@gw MGCP 1.0\n")),
            Some("mgcp")
        );
        // Without it only on the MGCP ports.
        let bare = b"NTFY 262662138 *@vg224\nX: 0\n";
        assert_eq!(proto(&udp(40000, 5000, bare)), None);
        assert_eq!(proto(&udp(40000, 2727, bare)), Some("mgcp"));
        // Responses: code and transaction id, only on the ports.
        assert_eq!(
            inspect(&udp(2427, 2427, b"200 31656860 ok\r\n\r\n")),
            Some(AppHint::Mgcp { verb: "response" })
        );
        assert_eq!(proto(&udp(2427, 2427, b"200 81 \n")), Some("mgcp"));
        assert_eq!(
            proto(&udp(2427, 2427, b"510 1 Protocol Error\n")),
            Some("mgcp")
        );
        assert_eq!(proto(&udp(4000, 5000, b"200 31656860 ok\r\n")), None);
        assert_eq!(proto(&udp(2427, 2427, b"200 OK\r\n")), None);
        assert_eq!(proto(&udp(2427, 2427, b"RQNT x *@gw MGCP 1.0")), None);
    }

    #[test]
    fn megaco_text() {
        let m = b"!/1 <iMSS>\nT=555282713{C=-{AV=DS/1/5{AT{M}}}}";
        assert_eq!(inspect(&udp(2944, 2944, m)), Some(AppHint::Megaco));
        let long = b"\r\n  MEGACO/1 [10.23.1.42]:2944\nTransaction = 9998 {";
        assert_eq!(proto(&udp(40000, 40001, long)), Some("megaco"));
        let auth = b"AU = 0x1234:0x1:0xdeadbeef MEGACO/2 [1.2.3.4]\n";
        assert_eq!(proto(&udp(40000, 40001, auth)), Some("megaco"));
        let auth = b"Authentication=0x1234:0x1:0xdeadbeef\n!/1 <mg>";
        assert_eq!(proto(&udp(40000, 40001, auth)), Some("megaco"));
        // Over TCP in TPKT.
        let mut t = vec![3, 0, 0, 0];
        t.extend_from_slice(m);
        t[3] = t.len() as u8;
        assert_eq!(proto(&tcp(2944, 40000, &t)), Some("megaco"));
        assert_eq!(proto(&udp(40000, 40001, b"!/x <mg>")), None);
        assert_eq!(proto(&udp(40000, 40001, b"MEGACO/ x")), None);
        assert_eq!(proto(&udp(40000, 40001, b"AU 0x1 !/1")), None);
    }

    #[test]
    fn h323_signalling_and_ras() {
        // TPKT + Q.931 SETUP (call reference length 2).
        let setup = hex("030000a0 08 02 77f4 05 04038090a5 28086d2e6a656d6563");
        assert_eq!(
            inspect(&tcp(32803, 1720, &setup)),
            Some(AppHint::H323 { ras: false })
        );
        // On any port, e.g. a gatekeeper-routed call.
        assert_eq!(proto(&tcp(3032, 41000, &setup)), Some("h323"));
        // TPKT + X.224 (RDP) is not H.323.
        let rdp = hex("03000013 0e e0 0000 0000 00 0100 0800 03000000");
        assert_eq!(proto(&tcp(50000, 3389, &rdp)), None);
        // H.225 RAS on 1719: GRQ with the protocol identifier, and an IRR
        // without it (choice index 21).
        let grq = hex("02200000060008914a0004001102007c07f22200ae01");
        assert_eq!(
            inspect(&udp(2034, 1719, &grq)),
            Some(AppHint::H323 { ras: true })
        );
        let irr = hex("560010530001011100004091fb7289f9");
        assert_eq!(proto(&udp(1719, 2034, &irr)), Some("h323"));
        assert_eq!(proto(&udp(2034, 1720, &grq)), None);
    }

    #[test]
    fn iax2_frames() {
        // Full frame NEW (type 6, subclass 1): recognised on any port.
        let new = hex("8004 0000 00000001 00 00 06 01 0b020002");
        assert_eq!(inspect(&udp(4569, 4566, &new)), Some(AppHint::Iax2));
        assert_eq!(proto(&udp(40000, 40002, &new)), Some("iax2"));
        // A voice full frame only on the IAX port; elsewhere it reads as RTP.
        let voice = hex("80040017 00000049 01 02 02 02 d5d5d5d5");
        assert_eq!(proto(&udp(4569, 4566, &voice)), Some("iax2"));
        assert_eq!(proto(&udp(40000, 40002, &voice)), Some("rtp"));
        // Mini frame: only on the port.
        let mini = hex("00040038 d5d5d5d5d5d5d5d5");
        assert_eq!(proto(&udp(4569, 4566, &mini)), Some("iax2"));
        assert_eq!(proto(&udp(40000, 40002, &mini)), None);
        // Call number 0 is no full frame.
        let zero = hex("8000 0000 00000001 00 00 06 01");
        assert_ne!(proto(&udp(40000, 40002, &zero)), Some("iax2"));
        // Ordinary RTP stays RTP.
        let rtp = hex("80 00 1234 00000001 deadbeef 00000000");
        assert_eq!(proto(&udp(40000, 40002, &rtp)), Some("rtp"));
    }

    #[test]
    fn rtmp_handshake() {
        let mut c0c1 = vec![3u8];
        c0c1.extend([0u8; 1536]);
        assert_eq!(proto(&tcp(1177, 8080, &c0c1)), Some("rtmp"));
        // Segmented C0+C1: port 1935 only.
        assert_eq!(proto(&tcp(1177, 1935, &c0c1[..1460])), Some("rtmp"));
        assert_eq!(proto(&tcp(1177, 8081, &c0c1[..1460])), None);
        let mut s = vec![3u8, 0x3d, 0xd5];
        s.resize(3073, 7);
        assert_eq!(proto(&tcp(8081, 1177, &s)), Some("rtmp"));
    }

    #[test]
    fn teamspeak_and_whatsapp() {
        let init = hex("545333494e49543100650000880dd05766005f5916e0ade76b610000000000000000");
        assert_eq!(inspect(&udp(53187, 9987, &init)), Some(AppHint::TeamSpeak));
        assert_eq!(proto(&udp(53187, 9987, b"TS3INIT")), None);
        let wa = hex("57410105 00001af8 0501a59189fc");
        assert_eq!(inspect(&tcp(49202, 5222, &wa)), Some(AppHint::WhatsApp));
        assert_eq!(proto(&tcp(35480, 443, &wa)), Some("whatsapp"));
        assert_eq!(proto(&tcp(35480, 8080, &wa)), None);
        assert_eq!(proto(&tcp(35480, 5222, b"WAXX")), None);
    }

    #[test]
    fn http_request_path_and_response_type() {
        let req = b"GET /videos/a.m3u8?x=1 HTTP/1.1\r\nHost: cdn.example.com\r\n\r\n";
        assert_eq!(
            inspect(&tcp(40000, 80, req)),
            Some(AppHint::HttpRequest {
                method: "GET",
                path: "/videos/a.m3u8?x=1",
                host: Some("cdn.example.com")
            })
        );
        let ssdp = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n";
        assert!(matches!(
            inspect(&udp(40000, 1900, ssdp)),
            Some(AppHint::HttpRequest { path: "*", .. })
        ));
        // A target cut by the segment, and one longer than the cap: cut at
        // 256 bytes, backing off to a character boundary ("é" is 2 bytes).
        assert!(matches!(
            inspect(&tcp(40000, 80, b"GET /abc")),
            Some(AppHint::HttpRequest {
                path: "/abc",
                host: None,
                ..
            })
        ));
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 254));
        long.extend("é".as_bytes());
        long.extend(b"zz HTTP/1.1\r\n\r\n");
        match inspect(&tcp(40000, 80, &long)) {
            Some(AppHint::HttpRequest { path, .. }) => {
                assert_eq!(path.len(), 255);
                assert!(path.ends_with('a'));
            }
            h => panic!("{h:?}"),
        }
        let bad = b"GET /a\xffb HTTP/1.1\r\n\r\n";
        assert!(matches!(
            inspect(&tcp(40000, 80, bad)),
            Some(AppHint::HttpRequest { path: "/a", .. })
        ));
        let resp = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Type:  application/vnd.apple.mpegurl; charset=UTF-8\r\n\r\n#EXTM3U";
        assert_eq!(
            inspect(&tcp(80, 40000, resp)),
            Some(AppHint::HttpResponse {
                content_type: Some("application/vnd.apple.mpegurl")
            })
        );
        let resp = b"HTTP/1.0 204 No Content\r\ncontent-type: video/mp4\r\n\r\n";
        assert_eq!(
            inspect(&tcp(80, 40000, resp)),
            Some(AppHint::HttpResponse {
                content_type: Some("video/mp4")
            })
        );
        // Body lines are not headers.
        let resp = b"HTTP/1.1 200 OK\r\n\r\nContent-Type: text/html\r\n";
        assert_eq!(
            inspect(&tcp(80, 40000, resp)),
            Some(AppHint::HttpResponse { content_type: None })
        );
    }

    /// DER element.
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        let n = content.len();
        if n < 0x80 {
            v.push(n as u8);
        } else if n < 0x100 {
            v.extend([0x81, n as u8]);
        } else {
            v.extend([0x82, (n >> 8) as u8, n as u8]);
        }
        v.extend(content);
        v
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    /// Name with a countryName and, if given, a commonName (PrintableString
    /// or UTF8String).
    fn name(cn: Option<(&str, u8)>) -> Vec<u8> {
        let mut rdns = vec![der(
            0x31,
            &der(0x30, &cat(&[hex("0603550406"), der(0x13, b"US")])),
        )];
        if let Some((cn, tag)) = cn {
            rdns.push(der(
                0x31,
                &der(0x30, &cat(&[hex("0603550403"), der(tag, cn.as_bytes())])),
            ));
        }
        der(0x30, &cat(&rdns))
    }

    fn certificate(subject_cn: Option<&str>, san: Option<&str>) -> Vec<u8> {
        let mut tbs = vec![
            der(0xa0, &der(0x02, &[2])),
            der(0x02, &hex("0d1df7c4f0081dfd0d40eba3ba345371")),
            der(
                0x30,
                &cat(&[der(0x06, &hex("2a864886f70d01010b")), vec![5, 0]]),
            ),
            name(Some(("Example Issuing CA", 0x13))),
            der(
                0x30,
                &cat(&[der(0x17, b"200101000000Z"), der(0x17, b"300101000000Z")]),
            ),
            name(subject_cn.map(|c| (c, 0x0c))),
            der(
                0x30,
                &cat(&[
                    der(0x30, &der(0x06, &hex("2a8648ce3d0201"))),
                    der(0x03, &[0; 66]),
                ]),
            ),
        ];
        let mut exts = vec![der(
            0x30,
            &cat(&[
                der(0x06, &hex("551d0f")),
                der(0x01, &[0xff]),
                der(0x04, &der(0x03, &[5, 0xa0])),
            ]),
        )];
        if let Some(san) = san {
            let names = der(
                0x30,
                &cat(&[der(0x87, &[10, 0, 0, 1]), der(0x82, san.as_bytes())]),
            );
            exts.push(der(
                0x30,
                &cat(&[der(0x06, &hex("551d11")), der(0x04, &names)]),
            ));
        }
        tbs.push(der(0xa3, &der(0x30, &cat(&exts))));
        der(
            0x30,
            &cat(&[
                der(0x30, &cat(&tbs)),
                der(0x30, &der(0x06, &hex("2a864886f70d01010b"))),
                der(0x03, &[0; 257]),
            ]),
        )
    }

    fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len();
        let mut v = vec![t, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        v.extend(body);
        v
    }

    fn record(body: &[u8]) -> Vec<u8> {
        let mut v = vec![22, 3, 3, (body.len() >> 8) as u8, body.len() as u8];
        v.extend(body);
        v
    }

    /// ServerHello then Certificate (one certificate and a second one), in
    /// one record or two.
    fn server_flight(cert: &[u8], split_records: bool) -> Vec<u8> {
        let hello = handshake(2, &[3; 70]);
        let other = certificate(Some("Second"), None);
        let mut list = Vec::new();
        for c in [cert, &other[..]] {
            let n = c.len();
            list.extend([(n >> 16) as u8, (n >> 8) as u8, n as u8]);
            list.extend(c);
        }
        let n = list.len();
        let mut body = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8];
        body.extend(list);
        let cert_msg = handshake(11, &body);
        let done = handshake(14, &[]);
        if split_records {
            cat(&[record(&hello), record(&cat(&[cert_msg, done]))])
        } else {
            record(&cat(&[hello, cert_msg, done]))
        }
    }

    #[test]
    fn tls_certificate_subject_cn_not_issuer() {
        let cert = certificate(Some("*.example.com"), Some("example.com"));
        for split in [false, true] {
            let flight = server_flight(&cert, split);
            assert_eq!(
                inspect(&tcp(443, 40000, &flight)),
                Some(AppHint::TlsCertificate {
                    name: "*.example.com"
                }),
                "split records: {split}"
            );
        }
        // After an alert record (unrecognized_name warning).
        let flight = [hex("15 0303 0002 0170"), server_flight(&cert, false)].concat();
        assert!(matches!(
            inspect(&tcp(443, 40000, &flight)),
            Some(AppHint::TlsCertificate {
                name: "*.example.com"
            })
        ));
        // A record that starts with the Certificate message.
        let flight = server_flight(&cert, true);
        let second = &flight[5 + 74..];
        assert_eq!(second[5], 11);
        assert!(matches!(
            inspect(&tcp(443, 40000, second)),
            Some(AppHint::TlsCertificate {
                name: "*.example.com"
            })
        ));
    }

    #[test]
    fn tls_certificate_cut_by_segmentation() {
        let cert = certificate(Some("cut.example.net"), None);
        let flight = server_flight(&cert, false);
        let at = flight
            .windows(15)
            .position(|w| w == b"cut.example.net")
            .unwrap();
        // The segment ends right after the CN: found.
        assert_eq!(
            inspect(&tcp(443, 40000, &flight[..at + 15])),
            Some(AppHint::TlsCertificate {
                name: "cut.example.net"
            })
        );
        // Cut inside the CN, or before it: a plain TLS hint, no name.
        for end in [at + 14, at - 3, 60, 6] {
            assert_eq!(
                inspect(&tcp(443, 40000, &flight[..end])),
                Some(AppHint::TlsOther),
                "cut at {end}"
            );
        }
    }

    #[test]
    fn tls_certificate_san_when_subject_has_no_cn() {
        let cert = certificate(None, Some("san.example.org"));
        let flight = server_flight(&cert, false);
        assert_eq!(
            inspect(&tcp(443, 40000, &flight)),
            Some(AppHint::TlsCertificate {
                name: "san.example.org"
            })
        );
        let cert = certificate(None, None);
        let flight = server_flight(&cert, false);
        assert_eq!(inspect(&tcp(443, 40000, &flight)), Some(AppHint::TlsOther));
    }

    #[test]
    fn client_hello_still_wins() {
        // A ClientHello is unaffected by the certificate path.
        let mut ch = hex("16 0301 0031 01 00002d 0303");
        ch.extend([0u8; 32]);
        ch.extend(hex("00 0002 1301 01 00 0000"));
        assert_eq!(
            inspect(&tcp(40000, 443, &ch)),
            Some(AppHint::TlsClientHello {
                sni: None,
                alpn: None
            })
        );
    }

    /// Every hand-made sample, every prefix of it, on several ports: no
    /// panic (the fuzz target covers arbitrary bytes).
    #[test]
    fn prefixes_never_panic() {
        let mut samples = vec![
            stun_msg(),
            server_flight(&certificate(Some("a"), Some("b")), true),
            [
                hex("15 0303 0002 0170"),
                server_flight(&certificate(Some("a"), None), false),
            ]
            .concat(),
            server_flight(&certificate(None, Some("b")), false),
            hex("030000a0 08 02 77f4 05 04038090a5"),
            hex("8004 0000 00000001 00 00 06 01 0b020002"),
            b"RQNT 1 *@gateway44.myplace.com MGCP 0.1\r\n".to_vec(),
            b"AU = 0x1234:0x1:0xdeadbeef MEGACO/2 [1.2.3.4]\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Type: a/b;c\r\n\r\n".to_vec(),
            b"d2:ip6:\x01\x02\x03\x04\x1a\xe11:rd2:id20:".to_vec(),
        ];
        samples.push([&[0, 32][..], &stun_msg()].concat());
        for s in &samples {
            for end in 0..=s.len() {
                let p = &s[..end];
                for (a, b) in [(1719, 2427), (4569, 1935), (5222, 40000), (53, 2944)] {
                    let _ = inspect(&udp(a, b, p));
                    let _ = inspect(&tcp(a, b, p));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn find_newline_matches_a_plain_search(
            b in prop::collection::vec(prop::sample::select(vec![b'\n', b'a', 0x8a, 0x0b, 0x09, 0]), 0..40),
        ) {
            prop_assert_eq!(find_newline(&b), b.iter().position(|&c| c == b'\n'));
        }

        #[test]
        fn arbitrary_payloads_never_panic(
            p in prop::collection::vec(any::<u8>(), 0..300),
            prefix in prop::sample::select(vec![
                &b""[..], b"\x16\x03\x03", b"\x03\x00", b"\x00\x01", b"\x16\x03\x03\x00\x40\x02",
                b"RQNT 1 ", b"200 ", b"AU=", b"!/", b"d2:ip", b"GET ", b"HTTP/1.1 ", b"\x80\x04",
            ]),
            sport in prop::sample::select(vec![1719u16, 2427, 4569, 1935, 5222, 443, 40000]),
        ) {
            let p = [prefix, &p[..]].concat();
            let _ = inspect(&udp(sport, 50000, &p));
            let _ = inspect(&tcp(sport, 50000, &p));
        }
    }
}

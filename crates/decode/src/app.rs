//! Application hints from the first payload bytes of a packet.
//!
//! Each parser is a bounded, allocation-free look at the payload; hints
//! borrow the packet (DNS names, which may need un-escaping, are copied into
//! a fixed inline buffer). Called by the flow table only for the first few
//! payload packets of a flow, so its cost stays off the per-packet path.

use std::fmt;

use crate::{be16, be32, Packet, Transport};

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
    TlsOther,
    Dns {
        qname: DnsName,
        qtype: u16,
        response: bool,
    },
    HttpRequest {
        method: &'a str,
        host: Option<&'a str>,
    },
    HttpResponse,
    Quic {
        version: u32,
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
}

impl AppHint<'_> {
    /// Protocol name of the hint: "tls", "dns", "http", "quic", "ssh", "rtp", "rtcp", "sip".
    pub fn protocol(&self) -> &'static str {
        match self {
            AppHint::TlsClientHello { .. } | AppHint::TlsOther => "tls",
            AppHint::Dns { .. } => "dns",
            AppHint::HttpRequest { .. } | AppHint::HttpResponse => "http",
            AppHint::Quic { .. } => "quic",
            AppHint::Ssh { .. } => "ssh",
            AppHint::Rtp { .. } => "rtp",
            AppHint::Rtcp => "rtcp",
            AppHint::Sip { .. } => "sip",
        }
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
            sip(p)
        }
        Transport::Udp { src_port, dst_port } => {
            let dns_port = |p: u16| p == 53 || p == 5353 || p == 5355;
            if dns_port(src_port) || dns_port(dst_port) {
                if let Some(h) = dns(p) {
                    return Some(h);
                }
            }
            if let Some(h) = sip(p) {
                return Some(h);
            }
            // HTTP over UDP: SSDP (M-SEARCH, NOTIFY) carries request lines and Host.
            if let Some(h) = http(p) {
                return Some(h);
            }
            if let Some(h) = quic(p) {
                return Some(h);
            }
            rtp(p, src_port, dst_port)
        }
        _ => None,
    }
}

fn tls(p: &[u8]) -> Option<AppHint<'_>> {
    // Record header: type, version 3.x, length.
    if p.len() < 6 || p[1] != 3 || p[2] > 4 {
        return None;
    }
    match p[0] {
        22 => {}
        20 | 21 | 23 => return Some(AppHint::TlsOther),
        _ => return None,
    }
    if p[5] != 1 {
        return Some(AppHint::TlsOther);
    }
    // ClientHello; fields may be cut off by snaplen or segmentation, so
    // every step is bounds-checked and what was found so far is kept.
    let mut sni = None;
    let mut alpn = None;
    let body = &p[9.min(p.len())..];
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
    Some(AppHint::TlsClientHello { sni, alpn })
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
        return Some(AppHint::HttpResponse);
    }
    let method = HTTP_METHODS
        .iter()
        .find(|m| p.len() > m.len() && p.starts_with(m.as_bytes()) && p[m.len()] == b' ')?;
    let head = &p[..p.len().min(4096)];
    let mut host = None;
    for line in head.split(|&c| c == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"host:") {
            host = std::str::from_utf8(&line[5..]).ok().map(str::trim);
            break;
        }
        if line.is_empty() {
            break;
        }
    }
    Some(AppHint::HttpRequest { method, host })
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

fn quic(p: &[u8]) -> Option<AppHint<'static>> {
    // Long header: header form and fixed bits set, version, DCID length ≤ 20.
    if p.len() < 7 || p[0] & 0xc0 != 0xc0 {
        return None;
    }
    let version = be32(p, 1);
    let dcid_len = p[5] as usize;
    if dcid_len > 20 || p.len() < 6 + dcid_len + 1 {
        return None;
    }
    let known = version == 0
        || version == 1
        || version == 0x6b33_43cf // QUIC v2
        || version >> 8 == 0xff_0000 // IETF drafts
        || version & 0xffff_ff00 == 0x5130_3400 // Google Q04x
        || version & 0x0f0f_0f0f == 0x0a0a_0a0a; // version negotiation greasing
    known.then_some(AppHint::Quic { version })
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

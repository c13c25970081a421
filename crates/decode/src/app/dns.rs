//! DNS (RFC 1035) queries and responses: the first question's name and
//! type. [`super::inspect`] tries it on UDP port 53, mDNS (5353, RFC 6762)
//! and LLMNR (5355, RFC 4795), and on TCP port 53 after the two-byte length
//! prefix.

use super::{AppHint, DnsName};
use crate::be16;

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

/// The question name at `off` and the offset after it (no compression:
/// questions are not compressed).
pub(super) fn read_qname(msg: &[u8], mut off: usize) -> Option<(DnsName, usize)> {
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

pub(super) fn dns(p: &[u8]) -> Option<AppHint<'static>> {
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

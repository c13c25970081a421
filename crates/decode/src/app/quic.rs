//! QUIC long headers: IETF QUIC version 1 (RFC 9000), version 2 (RFC 9369),
//! the IETF drafts and greased versions, whose Initial packets are
//! protected (see [`crate::quic_initial`]); and Google QUIC (Q024–Q046),
//! whose client hello (CHLO) carries the server name in the clear.

use super::AppHint;
use crate::be32;

pub(super) fn quic(p: &[u8]) -> Option<AppHint<'_>> {
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
pub(super) fn gquic(p: &[u8]) -> Option<AppHint<'_>> {
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

#[cfg(test)]
mod tests {
    use crate::app::test_util::{hex, udp};
    use crate::app::{inspect, AppHint};

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
}

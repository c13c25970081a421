//! TLS over TCP: the record header (TLS 1.0–1.3, RFC 2246, 4346, 5246,
//! 8446), the ClientHello's server_name (SNI, RFC 6066) and first ALPN
//! protocol (RFC 7301), and the server's plaintext Certificate message
//! (TLS ≤ 1.2) walked through its X.509 DER (RFC 5280) to the subject
//! common name or the first subjectAltName dNSName.

use super::AppHint;
use crate::be16;

pub(super) fn tls(p: &[u8]) -> Option<AppHint<'_>> {
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

#[cfg(test)]
pub(super) mod tests {
    use crate::app::inspect;
    use crate::app::test_util::{hex, tcp};
    use crate::app::AppHint;

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

    pub(crate) fn certificate(subject_cn: Option<&str>, san: Option<&str>) -> Vec<u8> {
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
    pub(crate) fn server_flight(cert: &[u8], split_records: bool) -> Vec<u8> {
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
}

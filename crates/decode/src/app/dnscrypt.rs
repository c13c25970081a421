//! DNSCrypt (versions 1 and 2; protocol description at
//! <https://dnscrypt.info/protocol>): DNS encrypted between a client and a
//! resolver, usually on UDP or TCP 443. Three things in it are in the
//! clear: the certificate request, a DNS TXT query for the provider name,
//! which by the specification begins with the protocol version `2`
//! (`2.dnscrypt-cert.<zone>` by convention; Avast's SecureDNS uses
//! `2.securedns.avast.com`); the certificate itself, a TXT answer starting
//! with the certificate magic `DNSC`; and every encrypted response, which
//! starts with the resolver magic `r6fnvWj8`. The queries themselves start
//! with a client magic taken from the resolver's certificate (8 bytes no
//! one else can predict).

use super::dns::read_qname;
use super::AppHint;
use crate::be16;

/// The first 8 bytes of every encrypted resolver response.
const RESOLVER_MAGIC: &[u8; 8] = b"r6fnvWj8";
/// The first 4 bytes of a resolver certificate (in a TXT record).
const CERT_MAGIC: &[u8; 4] = b"DNSC";
/// DNS record type TXT.
const TXT: u16 = 16;

/// A DNSCrypt message at the start of `p` (a UDP datagram, or a TCP
/// segment after its two-byte length): an encrypted response (the magic,
/// a 24-byte nonce, a 16-byte authenticator and a padded DNS message: 64
/// bytes at least, as nDPI also requires), or a certificate exchange (a
/// DNS message with one question, a TXT question for a name whose first
/// label is `2`, and in a response a first answer whose text starts with
/// `DNSC`). `dns_port` says the datagram is to or from a DNS port (53,
/// 5353, 5355), where a TXT query for `2.…` is plain DNS unless it names
/// `2.dnscrypt-cert.…` or is answered by a certificate.
pub(super) fn dnscrypt(p: &[u8], dns_port: bool) -> Option<AppHint<'static>> {
    if p.len() >= 64 && p.starts_with(RESOLVER_MAGIC) {
        return Some(AppHint::DnsCrypt);
    }
    // Header: one question; then the name's first label must be "2".
    if p.len() < 17 || be16(p, 4) != 1 || p[12..14] != *b"\x012" {
        return None;
    }
    let (name, at) = read_qname(p, 12)?;
    let conventional = name
        .as_str()
        .get(..16)
        .is_some_and(|n| n.eq_ignore_ascii_case("2.dnscrypt-cert."));
    if p.len() < at + 4 || be16(p, at) != TXT {
        return None;
    }
    let response = p[2] & 0x80 != 0;
    let certificate = response && be16(p, 6) >= 1 && first_txt_is_certificate(p, at + 4);
    (certificate || conventional || !dns_port).then_some(AppHint::DnsCrypt)
}

/// Whether the answer at `at` is a TXT record whose first string starts
/// with the certificate magic.
fn first_txt_is_certificate(p: &[u8], mut at: usize) -> bool {
    // The owner name: a compression pointer (the usual case) or labels.
    loop {
        let Some(&l) = p.get(at) else { return false };
        if l & 0xc0 == 0xc0 {
            at += 2;
            break;
        }
        at += 1 + l as usize;
        if l == 0 {
            break;
        }
    }
    // Type, class, TTL, data length, then the string's length byte.
    p.len() >= at + 11 + CERT_MAGIC.len()
        && be16(p, at) == TXT
        && p[at + 11..at + 11 + CERT_MAGIC.len()] == *CERT_MAGIC
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{hex, proto, tcp, udp};

    /// The resolver ping of nDPI's dnscrypt-v1-and-resolver-pings.pcap:
    /// a TXT query for 2.dnscrypt-cert.dnscrypt.ca-2 to UDP 443.
    fn cert_query() -> Vec<u8> {
        let mut p = hex("7f47 0100 0001 0000 0000 0001");
        p.extend_from_slice(b"\x012\x0ddnscrypt-cert\x08dnscrypt\x04ca-2\0");
        p.extend(hex("0010 0001"));
        p
    }

    #[test]
    fn certificate_queries_and_responses() {
        assert_eq!(proto(&udp(38388, 443, &cert_query())), Some("dnscrypt"));
        // The conventional name on a DNS port too.
        assert_eq!(proto(&udp(38388, 53, &cert_query())), Some("dnscrypt"));
        let mut upper = cert_query();
        upper[15..28].copy_from_slice(b"DNSCRYPT-CERT");
        assert_eq!(proto(&udp(38388, 443, &upper)), Some("dnscrypt"));
        // An encrypted response, v2 on 5353 as in dnscrypt-v2.pcap.
        let mut resp = b"r6fnvWj8".to_vec();
        resp.resize(96, 0xa5);
        assert_eq!(proto(&udp(5353, 50893, &resp)), Some("dnscrypt"));
        // Over TCP: after the two-byte length.
        let mut framed = (resp.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&resp);
        assert_eq!(proto(&tcp(443, 50233, &framed)), Some("dnscrypt"));
    }

    /// Avast SecureDNS's exchange (nDPI's avast_securedns.pcapng): a TXT
    /// query for 2.SeCURednS.aVasT.CoM to UDP 443, answered by a
    /// certificate.
    #[test]
    fn other_providers_and_certificates() {
        let mut q = hex("48c4 0100 0001 0000 0000 0000");
        q.extend_from_slice(b"\x012\x09SeCURednS\x05aVasT\x03CoM\0");
        q.extend(hex("0010 0001"));
        assert_eq!(proto(&udp(57970, 443, &q)), Some("dnscrypt"));
        // The same query on port 53 is DNS; answered by a certificate, the
        // answer is DNSCrypt.
        assert_eq!(proto(&udp(57970, 53, &q)), Some("dns"));
        let mut a = q.clone();
        a[2..8].copy_from_slice(&hex("8180 0001 0001"));
        a.extend(hex("c00c 0010 0001 00000000 007d 7c"));
        a.extend_from_slice(b"DNSC\0\x01\0\0");
        assert_eq!(proto(&udp(53, 57970, &a)), Some("dnscrypt"));
        assert_eq!(proto(&udp(443, 57970, &a)), Some("dnscrypt"));
        // Another answer on port 53 is DNS.
        let n = a.len();
        a[n - 8..n - 4].copy_from_slice(b"v=sp");
        assert_eq!(proto(&udp(53, 57970, &a)), Some("dns"));
        // Not a TXT question.
        let mut aaaa = q.clone();
        let n = aaaa.len();
        aaaa[n - 3] = 28;
        assert_ne!(proto(&udp(57970, 443, &aaaa)), Some("dnscrypt"));
    }

    #[test]
    fn look_alikes_are_not_dnscrypt() {
        let mut short = b"r6fnvWj8".to_vec();
        short.resize(63, 0);
        assert_ne!(proto(&udp(443, 40000, &short)), Some("dnscrypt"));
        // Another name, two questions, a truncated name.
        let mut other = cert_query();
        other[14] = b'3';
        let mut two = cert_query();
        two[5] = 2;
        for p in [other, two, cert_query()[..20].to_vec()] {
            assert_ne!(proto(&udp(40000, 443, &p)), Some("dnscrypt"), "{p:?}");
        }
    }
}

//! H.323: Q.931 call signalling (ITU-T H.225.0) in TPKT framing (RFC 1006)
//! over TCP, where TPKT may carry Megaco text instead; and H.225.0 RAS,
//! PER-encoded, on UDP port 1719.

use super::megaco::megaco;
use super::AppHint;
use crate::be16;

/// TPKT (RFC 1006) framing: Q.931 inside is H.323 call signalling (H.225.0,
/// protocol discriminator 8, a call reference of at most 3 bytes and a
/// message type); Megaco text inside is Megaco.
pub(super) fn tpkt(p: &[u8]) -> Option<AppHint<'_>> {
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
pub(super) fn h225_ras(p: &[u8]) -> Option<AppHint<'static>> {
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

#[cfg(test)]
mod tests {
    use crate::app::test_util::{hex, proto, tcp, udp};
    use crate::app::{inspect, AppHint};

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
}

//! DTLS 1.0 (RFC 4347) and 1.2 (RFC 6347) record headers over UDP; tried
//! for a first byte of 20..=23, as RFC 7983 demultiplexes.

use super::AppHint;
use crate::be16;

/// DTLS 1.0/1.2 record header: content type 20..=23, version 0xfeff or
/// 0xfefd, epoch and sequence number, a length that fits the datagram.
pub(super) fn dtls(p: &[u8], datagram: usize) -> Option<AppHint<'static>> {
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

#[cfg(test)]
mod tests {
    use crate::app::test_util::{hex, proto, tcp, udp};
    use crate::app::{inspect, AppHint};

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
}

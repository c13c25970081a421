//! Cisco's Skinny Client Control Protocol (SCCP): call signalling between
//! IP phones and Cisco Unified Communications Manager on TCP port 2000, the
//! port tshark's dissector (packet-skinny.c) takes. Each message is a
//! little-endian length (of what follows the header's first 8 bytes: the
//! message id and its data), a header version and a message id.

use super::AppHint;
use crate::le32;

/// The port Skinny listens on (TLS-protected Skinny uses 2443 and is TLS).
pub(super) const SKINNY_PORT: u16 = 2000;

/// A Skinny message at the start of a segment to or from port 2000: a
/// length of at least the message id that fits the segment, a header
/// version Cisco has used (0 for the basic header, 0x0a to 0x20 for the
/// Communications Manager releases' headers) and a message id of the
/// station or call-manager ranges (below 0x1000).
pub(super) fn skinny(p: &[u8]) -> Option<AppHint<'static>> {
    if p.len() < 12 {
        return None;
    }
    let (len, version, id) = (le32(p, 0) as usize, le32(p, 4), le32(p, 8));
    let version_ok = version == 0 || (0x0a..=0x20).contains(&version);
    (len >= 4 && 8 + len <= p.len() && version_ok && id < 0x1000).then_some(AppHint::Skinny)
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{hex, proto, tcp};
    use crate::app::{inspect, AppHint};

    /// The first messages of nDPI's skinny.pcap (header version 0x14):
    /// a phone's message 0x26 and the call manager's 0x85 answer.
    #[test]
    fn skinny_messages_on_port_2000() {
        let from_phone = hex("10000000 14000000 26000000 01000000 00000000 00000000");
        assert_eq!(
            inspect(&tcp(49399, 2000, &from_phone)),
            Some(AppHint::Skinny)
        );
        let from_cm = hex("14000000 14000000 85000000 01000000 01000000 00000000 00000000");
        assert_eq!(inspect(&tcp(2000, 49399, &from_cm)), Some(AppHint::Skinny));
        // KeepAlive with the basic header, two messages in one segment.
        let mut two = hex("04000000 00000000 00000000");
        two.extend(hex("04000000 00000000 00010000"));
        assert_eq!(proto(&tcp(2000, 51532, &two)), Some("skinny"));
    }

    #[test]
    fn other_ports_and_broken_headers_are_not_skinny() {
        let keepalive = hex("04000000 00000000 00000000");
        assert_eq!(proto(&tcp(40000, 2001, &keepalive)), None);
        for bad in [
            "30000000 14000000 26000000 01000000", // length past the segment
            "00000000 14000000 26000000",          // no room for the id
            "04000000 05000000 00000000",          // unknown header version
            "04000000 00000000 00200000",          // message id out of range
            "0400 0000 0000",                      // short
        ] {
            assert_eq!(proto(&tcp(40000, 2000, &hex(bad))), None, "{bad}");
        }
    }
}

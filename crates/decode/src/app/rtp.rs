//! RTP and RTCP (RFC 3550) on unprivileged UDP ports.
//!
//! An RTP header is version 2 and a payload type that is static
//! audio/video (RFC 3551) or dynamic: a loose test that about one in eight
//! encrypted or random datagrams passes. A packet therefore gives a
//! candidate with its stream's SSRC and sequence number, and the flow
//! counts as RTP only when a second packet continues that stream (same
//! SSRC and payload type, the sequence a little ahead:
//! `flow::AppInfo::merge`), as nDPI confirms RTP over several packets.
//!
//! RTCP is recognised from one packet: version 2, a packet type of 200..=206
//! (SR, RR, SDES, BYE, APP and the RFC 4585 feedback messages) and a length
//! that fits the datagram, for SR and RR one that holds their report
//! blocks. (SRTCP encrypts what follows the first 8 bytes, so only the
//! first packet of a compound is read.)

use super::AppHint;
use crate::{be16, be32};

pub(super) fn rtp(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'static>> {
    if p.len() < 8 || p[0] >> 6 != 2 || sport < 1024 || dport < 1024 {
        return None;
    }
    match p[1] {
        200..=206 => rtcp(p),
        b => {
            let pt = b & 0x7f;
            // Static audio/video payload types and the dynamic range.
            ((pt <= 34 || (96..=127).contains(&pt)) && p.len() >= 12).then(|| AppHint::Rtp {
                payload_type: pt,
                seq: be16(p, 2),
                ssrc: be32(p, 8),
            })
        }
    }
}

/// The first RTCP packet of a datagram, its length checked (RFC 3550 §6.4:
/// the length is in 32-bit words minus one; SR is 6 words past the first
/// and 6 per report block, RR 1 and 6 per block).
fn rtcp(p: &[u8]) -> Option<AppHint<'static>> {
    let words = be16(p, 2) as usize;
    let blocks = (p[0] & 0x1f) as usize;
    let least = match p[1] {
        200 => 6 + 6 * blocks,
        201 => 1 + 6 * blocks,
        _ => 1,
    };
    ((words + 1) * 4 <= p.len() && words >= least).then_some(AppHint::Rtcp)
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{hex, proto, udp};
    use crate::app::{inspect, AppHint};

    #[test]
    fn rtp_candidates_carry_their_stream() {
        let voice = hex("80 00 1234 00000001 deadbeef 00000000");
        assert_eq!(
            inspect(&udp(40000, 40002, &voice)),
            Some(AppHint::Rtp {
                payload_type: 0,
                seq: 0x1234,
                ssrc: 0xdead_beef
            })
        );
        // Marker bit set, dynamic type 111 (Opus in WebRTC).
        let opus = hex("80 ef 0001 00000001 01020304 00");
        assert_eq!(proto(&udp(50000, 50002, &opus)), Some("rtp"));
        // Well-known ports and unassigned types are not RTP.
        assert_eq!(proto(&udp(50000, 123, &voice)), None);
        let pt72 = hex("80 48 0001 00000001 01020304 00");
        assert_eq!(proto(&udp(50000, 50002, &pt72)), None);
    }

    /// A receiver report with one block, and a sender report without: their
    /// lengths as RFC 3550 lays them out. Lengths that overrun the datagram
    /// or cannot hold the report blocks are not RTCP.
    #[test]
    fn rtcp_lengths_are_checked() {
        let mut rr = hex("81 c9 0007 11223344");
        rr.extend([0u8; 24]);
        assert_eq!(inspect(&udp(50001, 50003, &rr)), Some(AppHint::Rtcp));
        let mut sr = hex("80 c8 0006 11223344");
        sr.extend([0u8; 20]);
        // An SDES chunk after it (a compound packet).
        sr.extend(hex("81 ca 0002 11223344 0100 0000"));
        assert_eq!(inspect(&udp(50001, 50003, &sr)), Some(AppHint::Rtcp));
        // Length past the datagram.
        let mut long = rr.clone();
        long[3] = 8;
        assert_ne!(proto(&udp(50001, 50003, &long)), Some("rtcp"));
        // RR claiming two blocks in a one-block length.
        let mut two = rr.clone();
        two[0] = 0x82;
        assert_ne!(proto(&udp(50001, 50003, &two)), Some("rtcp"));
    }
}

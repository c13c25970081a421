//! RTP and RTCP (RFC 3550) on unprivileged UDP ports: version 2, then an
//! RTCP packet type (200..=206: SR, RR, SDES, BYE, APP and the RFC 4585
//! feedback messages) or an RTP payload type that is static audio/video
//! (RFC 3551) or dynamic.

use super::AppHint;

pub(super) fn rtp(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'static>> {
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

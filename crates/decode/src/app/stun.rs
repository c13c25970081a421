//! STUN (RFC 5389, magic cookie) over UDP, and over TCP plain (TURN) or
//! with RFC 4571 framing (ICE-TCP). Over UDP [`super::inspect`] tries it
//! for a first byte of 0..=3, as RFC 7983 demultiplexes.

use super::AppHint;
use crate::be16;

/// RFC 5389 STUN: message type with the top two bits clear, a length that
/// is a multiple of 4 and, over UDP, equals the datagram's less the 20-byte
/// header, and the magic cookie. Classic RFC 3489 STUN (no cookie) is not
/// recognised.
pub(super) fn stun(p: &[u8], datagram: Option<usize>) -> Option<AppHint<'static>> {
    if p.len() < 20 || p[0] & 0xc0 != 0 || p[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let len = be16(p, 2) as usize;
    if !len.is_multiple_of(4) || datagram.is_some_and(|d| d != 20 + len) {
        return None;
    }
    Some(AppHint::Stun {
        message_type: be16(p, 0),
    })
}

/// STUN over TCP with RFC 4571 framing (ICE-TCP): a two-byte length, then
/// the message.
pub(super) fn stun_framed(p: &[u8]) -> Option<AppHint<'static>> {
    let h = stun(p.get(2..)?, None)?;
    (be16(p, 0) as usize == 20 + be16(p, 4) as usize).then_some(h)
}

#[cfg(test)]
pub(super) mod tests {
    use crate::app::test_util::{hex, proto, tcp, udp};
    use crate::app::{inspect, AppHint};

    /// A STUN Binding request with one 8-byte attribute.
    pub(crate) fn stun_msg() -> Vec<u8> {
        let mut m = hex("0001 000c 2112a442 0102030405060708090a0b0c");
        m.extend(hex("8022 0004 61626364 0000 0000"));
        m.truncate(20 + 12);
        m
    }

    #[test]
    fn stun_over_udp_and_tcp() {
        let m = stun_msg();
        assert_eq!(
            inspect(&udp(50000, 3478, &m)),
            Some(AppHint::Stun { message_type: 1 })
        );
        // Length field inconsistent with the datagram.
        assert_eq!(proto(&udp(50000, 3478, &m[..28])), None);
        let mut bad = m.clone();
        bad[3] = 0x0a; // not a multiple of 4
        assert_eq!(proto(&udp(50000, 3478, &bad[..30])), None);
        let mut bad = m.clone();
        bad[7] ^= 1; // cookie
        assert_eq!(proto(&udp(50000, 3478, &bad)), None);
        let mut bad = m.clone();
        bad[0] = 0x40; // TURN ChannelData, not STUN
        assert_ne!(proto(&udp(50000, 3478, &bad)), Some("stun"));
        // TCP: plain (TURN) and RFC 4571-framed (ICE-TCP).
        assert_eq!(proto(&tcp(50000, 443, &m)), Some("stun"));
        let mut framed = vec![0, m.len() as u8];
        framed.extend(&m);
        assert_eq!(proto(&tcp(50000, 443, &framed)), Some("stun"));
        framed[1] += 4;
        assert_eq!(proto(&tcp(50000, 443, &framed)), None);
    }
}

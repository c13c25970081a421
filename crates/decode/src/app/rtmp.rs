//! RTMP over TCP (Adobe's RTMP specification): the handshake's C0+C1 or
//! S0+S1+S2 in one segment on any port, and on port 1935 any payload that
//! starts with version 3.

use super::AppHint;

/// RTMP handshake: C0 (version 3) and the 1536-byte C1 in one segment
/// (1537 bytes), or S0+S1+S2 (3073 bytes); on port 1935 any payload
/// starting with version 3 (a segmented C0+C1, or a chunk of stream 3).
pub(super) fn rtmp(p: &[u8], on_port: bool) -> Option<AppHint<'static>> {
    (p[0] == 3 && (p.len() == 1537 || p.len() == 3073 || on_port)).then_some(AppHint::Rtmp)
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{proto, tcp};

    #[test]
    fn rtmp_handshake() {
        let mut c0c1 = vec![3u8];
        c0c1.extend([0u8; 1536]);
        assert_eq!(proto(&tcp(1177, 8080, &c0c1)), Some("rtmp"));
        // Segmented C0+C1: port 1935 only.
        assert_eq!(proto(&tcp(1177, 1935, &c0c1[..1460])), Some("rtmp"));
        assert_eq!(proto(&tcp(1177, 8081, &c0c1[..1460])), None);
        let mut s = vec![3u8, 0x3d, 0xd5];
        s.resize(3073, 7);
        assert_eq!(proto(&tcp(8081, 1177, &s)), Some("rtmp"));
    }
}

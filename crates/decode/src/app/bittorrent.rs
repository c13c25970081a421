//! BitTorrent: the peer wire handshake over TCP (BEP 3), DHT messages over
//! UDP (BEP 5, with BEP 42's "ip" key in responses) and the UDP tracker
//! connect request (BEP 15).

/// The peer handshake (BEP 3): the length of the protocol name (19), then
/// "BitTorrent protocol".
#[inline]
pub(super) fn bt_handshake(p: &[u8]) -> bool {
    p.starts_with(b"\x13BitTorrent protocol")
}

/// A BitTorrent DHT message (BEP 5): a bencoded dictionary whose first keys
/// are a query's "a" or a response's "r" holding the 20-byte node id. A
/// response may lead with "ip" (BEP 42), found in the first 64 bytes.
pub(super) fn bt_dht(p: &[u8]) -> bool {
    if p.starts_with(b"d1:ad2:id20:") || p.starts_with(b"d1:rd2:id20:") {
        return true;
    }
    p.starts_with(b"d2:ip")
        && p[..p.len().min(64)]
            .windows(11)
            .any(|w| w == b"1:rd2:id20:")
}

/// UDP tracker (BEP 15) connect request: the protocol id, action 0.
#[inline]
pub(super) fn bt_tracker_connect(p: &[u8]) -> bool {
    p.len() >= 16 && p[..12] == [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{hex, proto, tcp, udp};

    #[test]
    fn bittorrent_peer_dht_and_tracker() {
        let mut hs = b"\x13BitTorrent protocol".to_vec();
        hs.extend([0u8; 48]);
        assert_eq!(proto(&tcp(52888, 38305, &hs)), Some("bittorrent"));
        assert_eq!(proto(&tcp(52888, 38305, &hs[..19])), None);
        let q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert_eq!(proto(&udp(6881, 40000, q)), Some("bittorrent"));
        let r = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        assert_eq!(proto(&udp(40000, 6881, r)), Some("bittorrent"));
        let ip = b"d2:ip6:\x01\x02\x03\x04\x1a\xe11:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        assert_eq!(proto(&udp(40000, 6881, ip)), Some("bittorrent"));
        assert_eq!(proto(&udp(40000, 6881, b"d1:xd2:id20:")), None);
        let connect = hex("0000041727101980 00000000 deadbeef");
        assert_eq!(proto(&udp(40000, 6969, &connect)), Some("bittorrent"));
        let mut announce = connect.clone();
        announce[11] = 1;
        assert_eq!(proto(&udp(40000, 6969, &announce)), None);
    }
}

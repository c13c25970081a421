//! IAX2 (RFC 5456) over UDP: full frames (control frames on any port, any
//! frame type on port 4569), and mini and video meta frames on port 4569.

use super::AppHint;
use crate::be16;

/// IAX2 (RFC 5456). A full frame (F bit, source call number, destination
/// call number, timestamp, oseq, iseq, frame type, subclass) is recognised
/// on any port when it is an IAX control frame (type 6) with a known
/// subclass and small sequence numbers, which keeps RTP (whose first byte
/// also has the top bit set) out; on port 4569 any frame type 1..=12, mini
/// frames (source call number, 16-bit timestamp) and video meta frames are
/// recognised too.
pub(super) fn iax2(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'static>> {
    let on_port = sport == 4569 || dport == 4569;
    if p.len() < 4 {
        return None;
    }
    let scall = be16(p, 0) & 0x7fff;
    if p[0] & 0x80 != 0 {
        if p.len() < 12 || scall == 0 {
            return None;
        }
        let (oseq, iseq, ftype, sub) = (p[8], p[9], p[10], p[11]);
        let control = ftype == 6 && (1..=0x25).contains(&sub) && oseq < 64 && iseq < 64;
        return (control || (on_port && (1..=12).contains(&ftype))).then_some(AppHint::Iax2);
    }
    if !on_port {
        return None;
    }
    if scall != 0 {
        return Some(AppHint::Iax2); // mini frame
    }
    // Meta frame: zero call number, then the video flag.
    (p.len() >= 6 && p[2] & 0x80 != 0).then_some(AppHint::Iax2)
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{hex, proto, udp};
    use crate::app::{inspect, AppHint};

    #[test]
    fn iax2_frames() {
        // Full frame NEW (type 6, subclass 1): recognised on any port.
        let new = hex("8004 0000 00000001 00 00 06 01 0b020002");
        assert_eq!(inspect(&udp(4569, 4566, &new)), Some(AppHint::Iax2));
        assert_eq!(proto(&udp(40000, 40002, &new)), Some("iax2"));
        // A voice full frame only on the IAX port; elsewhere it reads as RTP.
        let voice = hex("80040017 00000049 01 02 02 02 d5d5d5d5");
        assert_eq!(proto(&udp(4569, 4566, &voice)), Some("iax2"));
        assert_eq!(proto(&udp(40000, 40002, &voice)), Some("rtp"));
        // Mini frame: only on the port.
        let mini = hex("00040038 d5d5d5d5d5d5d5d5");
        assert_eq!(proto(&udp(4569, 4566, &mini)), Some("iax2"));
        assert_eq!(proto(&udp(40000, 40002, &mini)), None);
        // Call number 0 is no full frame.
        let zero = hex("8000 0000 00000001 00 00 06 01");
        assert_ne!(proto(&udp(40000, 40002, &zero)), Some("iax2"));
        // Ordinary RTP stays RTP.
        let rtp = hex("80 00 1234 00000001 deadbeef 00000000");
        assert_eq!(proto(&udp(40000, 40002, &rtp)), Some("rtp"));
    }
}

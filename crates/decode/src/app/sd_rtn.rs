//! Agora's Software Defined Real-time Network (SD-RTN), the UDP transport
//! of Agora's voice, video and live-streaming SDK (used by many apps'
//! calls and live rooms). No public specification: the layout is the one
//! nDPI's dissector (`sd_rtn.c`) reads, checked against nDPI's output on
//! `pcap-ndpi-more/agora-sd-rtn.pcap`. A client's first datagram to an edge
//! server carries a message type 0x21 at byte 6 and then a tagged
//! handshake much like Google QUIC's crypto messages (`SNI`, `PDMD`,
//! `NONC`, `AEAD`, `KEXS`, …) whose first tag, the length-prefixed `SNI`,
//! names the edge server in the clear ("…edge.agora.io").

use super::AppHint;

/// The client hello of an SD-RTN session: message type 0x21 at byte 6,
/// `\x04SNI` at byte 12, a big-endian name length at 16, a zero byte and
/// the name. The name must fit the datagram and be printable ASCII, as a
/// host name is.
pub(super) fn sd_rtn(p: &[u8]) -> Option<AppHint<'_>> {
    if p.len() < 20 || p[6] != 0x21 || &p[12..16] != b"\x04SNI" || p[18] != 0 {
        return None;
    }
    let len = u16::from_be_bytes([p[16], p[17]]) as usize;
    let name = p.get(19..19 + len)?;
    if name.is_empty() || !name.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    // ASCII graphic bytes are UTF-8.
    let sni = std::str::from_utf8(name).ok()?;
    Some(AppHint::SdRtn { sni })
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{hex, proto, udp};
    use crate::app::{inspect, AppHint};

    /// The start of the first datagram of nDPI's agora-sd-rtn.pcap (client
    /// 192.168.2.100:35778 → 23.248.186.179:8130), cut after the `PDMD` tag.
    fn hello() -> Vec<u8> {
        let mut p = hex("005a384c0000 21 0000000000 04534e49 001c 00");
        p.extend_from_slice(b"23-248-186-179.edge.agora.ioPDMD\0\0CPTO");
        p
    }

    #[test]
    fn client_hello_gives_the_edge_server_name() {
        let p = hello();
        assert_eq!(
            inspect(&udp(35778, 8130, &p)),
            Some(AppHint::SdRtn {
                sni: "23-248-186-179.edge.agora.io"
            })
        );
        assert_eq!(proto(&udp(35778, 8130, &p)), Some("sd-rtn"));
    }

    #[test]
    fn other_layouts_are_not_sd_rtn() {
        let good = hello();
        let mut cases = Vec::new();
        let mut t = good.clone();
        t[6] = 0x23; // a server's answer: no name
        cases.push(t);
        let mut t = good.clone();
        t[13] = b'X'; // not the SNI tag
        cases.push(t);
        let mut t = good.clone();
        t[18] = 1; // the byte before the name
        cases.push(t);
        let mut t = good.clone();
        t[17] = 0xff; // name longer than the datagram
        cases.push(t);
        let mut t = good.clone();
        t[17] = 0; // empty name
        cases.push(t);
        let mut t = good.clone();
        t[20] = b'\n'; // not a host name
        cases.push(t);
        cases.push(good[..19].to_vec());
        for c in cases {
            assert!(
                !matches!(inspect(&udp(35778, 8130, &c)), Some(AppHint::SdRtn { .. })),
                "{c:?}"
            );
        }
    }
}

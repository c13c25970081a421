//! MGCP (RFC 3435) over UDP or TCP: commands (verb, transaction id,
//! endpoint, "MGCP x.y") on any port; on the MGCP ports (2427, 2727) a verb
//! with a transaction id, and responses, as well.

use super::AppHint;

const MGCP_VERBS: [&str; 9] = [
    "AUEP", "AUCX", "CRCX", "DLCX", "EPCF", "MDCX", "NTFY", "RQNT", "RSIP",
];

/// The first four bytes as one word with ASCII letters upper-cased (bit 5
/// cleared: exact for comparing with upper-case letters).
#[inline]
fn upper4(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0xdfdf_dfdf
}

/// MGCP (RFC 3435): a command is a verb, a transaction id (1 to 9 digits),
/// an endpoint and "MGCP x.y", recognised on any port. On the MGCP ports
/// (2427 gateway, 2727 call agent), like tshark, a verb followed by a
/// transaction id suffices, and a response ("200 1234 OK") is recognised too.
pub(super) fn mgcp(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'static>> {
    if p.len() < 6 || !(p[0].is_ascii_digit() || b"ACDEMNRacdemnr".contains(&p[0])) {
        return None;
    }
    let on_port = sport == 2427 || sport == 2727 || dport == 2427 || dport == 2727;
    let txid = |at: usize| -> Option<usize> {
        let n = p[at..]
            .iter()
            .take(10)
            .take_while(|c| c.is_ascii_digit())
            .count();
        ((1..=9).contains(&n)).then_some(at + n)
    };
    if p[..3].iter().all(u8::is_ascii_digit) {
        if !on_port || p[3] != b' ' {
            return None;
        }
        let end = txid(4)?;
        return matches!(p.get(end), None | Some(b' ' | b'\t' | b'\r' | b'\n'))
            .then_some(AppHint::Mgcp { verb: "response" });
    }
    let w = upper4(p);
    let verb = MGCP_VERBS.iter().find(|v| upper4(v.as_bytes()) == w)?;
    if p[4] != b' ' && p[4] != b'\t' {
        return None;
    }
    let end = txid(5)?;
    if p.get(end) != Some(&b' ') {
        return None;
    }
    if on_port {
        return Some(AppHint::Mgcp { verb });
    }
    // The endpoint name, then the protocol version.
    let rest = &p[end + 1..p.len().min(end + 1 + 256)];
    let sp = rest.iter().position(|&c| c == b' ')?;
    let v = &rest[sp + 1..];
    (v.len() >= 8 && v[..5].eq_ignore_ascii_case(b"MGCP ") && v[5].is_ascii_digit() && v[6] == b'.')
        .then_some(AppHint::Mgcp { verb })
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{proto, tcp, udp};
    use crate::app::{inspect, AppHint};

    #[test]
    fn mgcp_commands_and_responses() {
        let rqnt = b"RQNT 1 *@gateway44.myplace.com MGCP 0.1\r\nR: l/hd(n)\r\nX: 2\r\n\r\n";
        assert_eq!(
            inspect(&udp(2427, 2427, rqnt)),
            Some(AppHint::Mgcp { verb: "RQNT" })
        );
        // Any port with the "MGCP x.y" token.
        assert_eq!(proto(&udp(40798, 5000, rqnt)), Some("mgcp"));
        assert_eq!(
            proto(&tcp(40798, 5000, b"crcx 99 aaln/1@gw MGCP 1.0\n")),
            Some("mgcp")
        );
        // Without it only on the MGCP ports.
        let bare = b"NTFY 262662138 *@vg224\nX: 0\n";
        assert_eq!(proto(&udp(40000, 5000, bare)), None);
        assert_eq!(proto(&udp(40000, 2727, bare)), Some("mgcp"));
        // Responses: code and transaction id, only on the ports.
        assert_eq!(
            inspect(&udp(2427, 2427, b"200 31656860 ok\r\n\r\n")),
            Some(AppHint::Mgcp { verb: "response" })
        );
        assert_eq!(proto(&udp(2427, 2427, b"200 81 \n")), Some("mgcp"));
        assert_eq!(
            proto(&udp(2427, 2427, b"510 1 Protocol Error\n")),
            Some("mgcp")
        );
        assert_eq!(proto(&udp(4000, 5000, b"200 31656860 ok\r\n")), None);
        assert_eq!(proto(&udp(2427, 2427, b"200 OK\r\n")), None);
        assert_eq!(proto(&udp(2427, 2427, b"RQNT x *@gw MGCP 1.0")), None);
    }
}

//! Megaco/H.248 text encoding (RFC 3525) over UDP or TCP, bare or (through
//! [`super::h323`]'s TPKT check) in TPKT framing (RFC 1006).

use super::AppHint;

/// Megaco/H.248 text encoding (RFC 3525): optional white space and an
/// authentication header ("AU=…" or "Authentication=…"), then "MEGACO/" or
/// its short form "!/" and the version digit.
pub(super) fn megaco(p: &[u8]) -> Option<AppHint<'static>> {
    if !matches!(
        p.first(),
        Some(b' ' | b'\t' | b'\r' | b'\n' | b'!' | b'A' | b'a' | b'M' | b'm')
    ) {
        return None;
    }
    // Skips at most 64 bytes of white space from `i` (≤ p.len()).
    let lwsp = |mut i: usize| {
        let end = p.len().min(i + 64);
        while i < end && matches!(p[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        i
    };
    let mut i = lwsp(0);
    let rest = &p[i..];
    if rest.len() >= 3 && rest[..2].eq_ignore_ascii_case(b"AU") {
        let token = if rest.len() >= 14 && rest[..14].eq_ignore_ascii_case(b"Authentication") {
            14
        } else {
            2
        };
        i = lwsp(i + token);
        if p.get(i) != Some(&b'=') {
            return None;
        }
        i = lwsp(i + 1);
        // SecurityParmIndex:SequenceNum:AuthData, hex without white space.
        let n = p[i..]
            .iter()
            .take(256)
            .take_while(|c| !c.is_ascii_whitespace())
            .count();
        i = lwsp(i + n);
    }
    let rest = &p[i..];
    let ok = if rest.first() == Some(&b'!') {
        rest.len() >= 3 && rest[1] == b'/' && rest[2].is_ascii_digit()
    } else {
        rest.len() >= 8 && rest[..7].eq_ignore_ascii_case(b"MEGACO/") && rest[7].is_ascii_digit()
    };
    ok.then_some(AppHint::Megaco)
}

#[cfg(test)]
mod tests {
    use crate::app::test_util::{proto, tcp, udp};
    use crate::app::{inspect, AppHint};

    #[test]
    fn megaco_text() {
        let m = b"!/1 <iMSS>\nT=555282713{C=-{AV=DS/1/5{AT{M}}}}";
        assert_eq!(inspect(&udp(2944, 2944, m)), Some(AppHint::Megaco));
        let long = b"\r\n  MEGACO/1 [10.23.1.42]:2944\nTransaction = 9998 {";
        assert_eq!(proto(&udp(40000, 40001, long)), Some("megaco"));
        let auth = b"AU = 0x1234:0x1:0xdeadbeef MEGACO/2 [1.2.3.4]\n";
        assert_eq!(proto(&udp(40000, 40001, auth)), Some("megaco"));
        let auth = b"Authentication=0x1234:0x1:0xdeadbeef\n!/1 <mg>";
        assert_eq!(proto(&udp(40000, 40001, auth)), Some("megaco"));
        // Over TCP in TPKT.
        let mut t = vec![3, 0, 0, 0];
        t.extend_from_slice(m);
        t[3] = t.len() as u8;
        assert_eq!(proto(&tcp(2944, 40000, &t)), Some("megaco"));
        assert_eq!(proto(&udp(40000, 40001, b"!/x <mg>")), None);
        assert_eq!(proto(&udp(40000, 40001, b"MEGACO/ x")), None);
        assert_eq!(proto(&udp(40000, 40001, b"AU 0x1 !/1")), None);
    }
}

//! Application hints from the first payload bytes of a packet.
//!
//! Each parser is a bounded, allocation-free look at the payload; hints
//! borrow the packet (DNS names, which may need un-escaping, are copied into
//! a fixed inline buffer). Called by the flow table only for the first few
//! payload packets of a flow, so its cost stays off the per-packet path.
//!
//! One file per protocol, the way Wireshark's dissectors or Zeek's analyzers
//! are organised; this module holds the shared types ([`AppHint`],
//! [`PROTOCOLS`], [`DnsName`]) and [`inspect`], which picks the recognisers
//! to try by transport, port and first byte.

mod bittorrent;
mod dns;
mod dnscrypt;
mod dtls;
mod h323;
mod http;
mod iax2;
mod megaco;
mod mgcp;
mod quic;
mod rtmp;
mod rtp;
mod rtsp;
mod sd_rtn;
mod sip;
mod skinny;
mod ssh;
mod stun;
mod teamspeak;
mod tls;
mod whatsapp;

use std::fmt;

use crate::{Packet, Transport};

pub use self::dns::dns_type_name;
pub use self::tls::{client_hello_names, CERT_WINDOW};

use self::bittorrent::{bt_dht, bt_handshake, bt_tracker_connect};
use self::dns::dns;
use self::dnscrypt::dnscrypt;
use self::dtls::dtls;
use self::h323::{h225_ras, tpkt};
use self::http::http;
use self::iax2::iax2;
use self::megaco::megaco;
use self::mgcp::mgcp;
use self::quic::{gquic, quic};
use self::rtmp::rtmp;
use self::rtp::rtp;
use self::rtsp::rtsp;
use self::sd_rtn::sd_rtn;
use self::sip::sip;
use self::skinny::{skinny, SKINNY_PORT};
use self::ssh::ssh;
use self::stun::{stun, stun_framed};
use self::teamspeak::teamspeak;
use self::tls::tls;
use self::whatsapp::whatsapp;

/// Names of every protocol [`AppHint::protocol`] returns, in a fixed order:
/// bit `i` of a protocol bitmask (e.g. `flow::AppInfo::protocols`) stands for
/// `PROTOCOLS[i]`. Append-only: a name keeps its index forever, so masks
/// written by older builds keep their meaning.
pub const PROTOCOLS: [&str; 22] = [
    "tls",        // 0
    "dns",        // 1
    "http",       // 2
    "quic",       // 3
    "ssh",        // 4
    "rtp",        // 5
    "rtcp",       // 6
    "sip",        // 7
    "stun",       // 8
    "dtls",       // 9
    "bittorrent", // 10
    "mgcp",       // 11
    "megaco",     // 12
    "h323",       // 13
    "iax2",       // 14
    "rtmp",       // 15
    "teamspeak",  // 16
    "whatsapp",   // 17
    "rtsp",       // 18
    "skinny",     // 19
    "sd-rtn",     // 20
    "dnscrypt",   // 21
];

const _: () = assert!(PROTOCOLS.len() <= 32, "protocol bitmasks are u32");

/// Index of `name` in [`PROTOCOLS`].
pub fn protocol_index(name: &str) -> Option<usize> {
    PROTOCOLS.iter().position(|&p| p == name)
}

/// The names of the bits set in `mask`, in [`PROTOCOLS`] order (bits
/// beyond the list are ignored).
pub fn protocol_names(mask: u32) -> impl Iterator<Item = &'static str> {
    PROTOCOLS
        .iter()
        .enumerate()
        .filter(move |(i, _)| mask & (1 << i) != 0)
        .map(|(_, &n)| n)
}

/// What the payload looks like.
// DnsName is inline (no allocation per packet); the size is the price.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppHint<'a> {
    TlsClientHello {
        sni: Option<&'a str>,
        /// First protocol of the ALPN list, e.g. "h2".
        alpn: Option<&'a str>,
    },
    /// A server's plaintext Certificate message (TLS ≤ 1.2): the first
    /// certificate's subject common name, or its first SAN dNSName when the
    /// subject has no CN.
    TlsCertificate {
        name: &'a str,
    },
    TlsOther,
    Dns {
        qname: DnsName,
        qtype: u16,
        response: bool,
    },
    HttpRequest {
        method: &'a str,
        /// Request target as sent, capped at [`MAX_HTTP_PATH`] bytes (at a
        /// character boundary; a target that is not UTF-8 is cut before the
        /// first invalid byte).
        path: &'a str,
        host: Option<&'a str>,
    },
    HttpResponse {
        /// Media type of Content-Type, without parameters ("video/mp4").
        content_type: Option<&'a str>,
    },
    Quic {
        version: u32,
        /// Server name of a Google QUIC client hello (CHLO tag `SNI`, sent
        /// in the clear up to Q043). IETF QUIC protects its Initial packets,
        /// so this is `None` for it here: the flow table decrypts them with
        /// [`crate::quic_initial`] (owned data, possibly over several
        /// packets) for the ClientHello's server name and ALPN.
        sni: Option<&'a str>,
    },
    Ssh {
        banner: &'a str,
    },
    /// An RTP header: a candidate until another packet of its stream
    /// (`ssrc`, `seq` a little ahead) confirms it (`flow::AppInfo::merge`).
    Rtp {
        payload_type: u8,
        seq: u16,
        ssrc: u32,
    },
    Rtcp,
    Sip {
        method: &'a str,
    },
    /// RFC 5389 STUN (magic cookie), UDP or TCP.
    Stun {
        message_type: u16,
    },
    /// DTLS 1.0/1.2 record.
    Dtls {
        content_type: u8,
        version: u16,
    },
    /// Peer handshake (TCP), DHT message or UDP tracker connect (UDP).
    BitTorrent,
    Mgcp {
        /// The command verb ("RQNT", …), or "response".
        verb: &'a str,
    },
    /// Megaco/H.248 text encoding.
    Megaco,
    H323 {
        /// H.225 RAS on UDP 1719 (recognised by port and a light check of
        /// its first bytes) rather than Q.931 call signalling in TPKT.
        ras: bool,
    },
    Iax2,
    Rtmp,
    TeamSpeak,
    WhatsApp,
    /// An RTSP request (`method`) or a response (`"response"`).
    Rtsp {
        method: &'a str,
    },
    /// A Cisco Skinny (SCCP) message.
    Skinny,
    /// An Agora SD-RTN client hello, with the edge server it names.
    SdRtn {
        sni: &'a str,
    },
    /// A DNSCrypt certificate exchange or encrypted response.
    DnsCrypt,
}

/// Longest request target kept in [`AppHint::HttpRequest`] (bytes).
pub const MAX_HTTP_PATH: usize = 256;

impl AppHint<'_> {
    /// Index of the hint's protocol in [`PROTOCOLS`].
    pub fn protocol_index(&self) -> usize {
        match self {
            AppHint::TlsClientHello { .. } | AppHint::TlsCertificate { .. } | AppHint::TlsOther => {
                0
            }
            AppHint::Dns { .. } => 1,
            AppHint::HttpRequest { .. } | AppHint::HttpResponse { .. } => 2,
            AppHint::Quic { .. } => 3,
            AppHint::Ssh { .. } => 4,
            AppHint::Rtp { .. } => 5,
            AppHint::Rtcp => 6,
            AppHint::Sip { .. } => 7,
            AppHint::Stun { .. } => 8,
            AppHint::Dtls { .. } => 9,
            AppHint::BitTorrent => 10,
            AppHint::Mgcp { .. } => 11,
            AppHint::Megaco => 12,
            AppHint::H323 { .. } => 13,
            AppHint::Iax2 => 14,
            AppHint::Rtmp => 15,
            AppHint::TeamSpeak => 16,
            AppHint::WhatsApp => 17,
            AppHint::Rtsp { .. } => 18,
            AppHint::Skinny => 19,
            AppHint::SdRtn { .. } => 20,
            AppHint::DnsCrypt => 21,
        }
    }

    /// Bit of the hint's protocol in a protocol bitmask.
    pub fn protocol_bit(&self) -> u32 {
        1 << self.protocol_index()
    }

    /// Protocol name of the hint, one of [`PROTOCOLS`]: "tls", "dns",
    /// "http", "quic", "ssh", "rtp", "rtcp", "sip", "stun", "dtls",
    /// "bittorrent", "mgcp", "megaco", "h323", "iax2", "rtmp", "teamspeak",
    /// "whatsapp", "rtsp", "skinny", "sd-rtn", "dnscrypt".
    pub fn protocol(&self) -> &'static str {
        PROTOCOLS[self.protocol_index()]
    }
}

/// A DNS name held inline (at most 253 characters), so no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DnsName {
    buf: [u8; 255],
    len: u8,
}

impl DnsName {
    pub fn as_str(&self) -> &str {
        // Only valid UTF-8 is stored (see `dns::read_qname`).
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Looks at the payload of `pkt` for an application protocol.
///
/// Every check starts with a comparison of a few bytes at fixed offsets, so a
/// payload that is none of them costs a handful of comparisons; only a match
/// reads further (bounded: header lines within 4 KiB, a certificate within
/// [`CERT_WINDOW`] bytes).
pub fn inspect<'a>(pkt: &Packet<'a>) -> Option<AppHint<'a>> {
    let p = pkt.payload;
    if p.is_empty() {
        return None;
    }
    match pkt.transport {
        Transport::Tcp(t) => {
            if let Some(h) = tls(p) {
                return Some(h);
            }
            // Before HTTP: RTSP's messages have HTTP's shape.
            if let Some(h) = rtsp(p) {
                return Some(h);
            }
            if let Some(h) = http(p) {
                return Some(h);
            }
            if p.starts_with(b"SSH-") {
                return ssh(p);
            }
            if t.src_port == 53 || t.dst_port == 53 {
                // DNS over TCP: two-byte length prefix.
                if p.len() > 2 {
                    return dns(&p[2..]);
                }
            }
            if let Some(h) = sip(p) {
                return Some(h);
            }
            tcp_other(p, t.src_port, t.dst_port)
        }
        Transport::Udp { src_port, dst_port } => {
            let dns_port = |p: u16| p == 53 || p == 5353 || p == 5355;
            // Before DNS: its certificate exchange is DNS-shaped.
            if let Some(h) = dnscrypt(p, dns_port(src_port) || dns_port(dst_port)) {
                return Some(h);
            }
            if dns_port(src_port) || dns_port(dst_port) {
                if let Some(h) = dns(p) {
                    return Some(h);
                }
            }
            // The UDP length: what STUN's and DTLS's length fields must fit.
            let datagram = (pkt.payload_len as usize).max(p.len());
            match p[0] {
                // RFC 7983 demultiplexing: 0..=3 STUN, 20..=63 DTLS.
                0..=3 => {
                    if let Some(h) = stun(p, Some(datagram)) {
                        return Some(h);
                    }
                }
                20..=23 => {
                    if let Some(h) = dtls(p, datagram) {
                        return Some(h);
                    }
                }
                _ => {}
            }
            if let Some(h) = sip(p) {
                return Some(h);
            }
            // HTTP over UDP: SSDP (M-SEARCH, NOTIFY) carries request lines and Host.
            if let Some(h) = http(p) {
                return Some(h);
            }
            if let Some(h) = udp_other(p, src_port, dst_port) {
                return Some(h);
            }
            if let Some(h) = quic(p) {
                return Some(h);
            }
            if let Some(h) = gquic(p) {
                return Some(h);
            }
            if p[0] & 0x80 != 0 || src_port == 4569 || dst_port == 4569 {
                if let Some(h) = iax2(p, src_port, dst_port) {
                    return Some(h);
                }
            }
            if src_port == 1719 || dst_port == 1719 {
                if let Some(h) = h225_ras(p) {
                    return Some(h);
                }
            }
            rtp(p, src_port, dst_port)
        }
        _ => None,
    }
}

/// The TCP checks after TLS, RTSP, HTTP, SSH, DNS and SIP.
fn tcp_other(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'_>> {
    let port = |n: u16| sport == n || dport == n;
    // DNSCrypt over TCP: a two-byte length, then the UDP message.
    if let Some(h) = p.get(2..).and_then(|m| dnscrypt(m, port(53))) {
        return Some(h);
    }
    if port(SKINNY_PORT) {
        if let Some(h) = skinny(p) {
            return Some(h);
        }
    }
    match p[0] {
        // TPKT (RFC 1006) carries Q.931 (H.323 call signalling) and Megaco.
        0x03 if p.len() >= 4 && p[1] == 0 => {
            if let Some(h) = tpkt(p) {
                return Some(h);
            }
            rtmp(p, port(1935))
        }
        0x03 => rtmp(p, port(1935)),
        0x13 => bt_handshake(p).then_some(AppHint::BitTorrent),
        // STUN over TCP (TURN), plain or with RFC 4571 framing.
        0x00..=0x03 => stun(p, None).or_else(|| stun_framed(p)),
        b'W' if whatsapp(p, port(5222) || port(443)) => Some(AppHint::WhatsApp),
        c => text_other(p, c, sport, dport),
    }
}

/// MGCP or Megaco text, dispatched on the first byte so that binary
/// payloads cost one comparison.
#[inline]
fn text_other(p: &[u8], first: u8, sport: u16, dport: u16) -> Option<AppHint<'_>> {
    match first {
        b'0'..=b'9' | b'C' | b'D' | b'E' | b'N' | b'R' | b'c' | b'd' | b'e' | b'n' | b'r' => {
            mgcp(p, sport, dport)
        }
        b'A' | b'M' | b'a' | b'm' => mgcp(p, sport, dport).or_else(|| megaco(p)),
        b' ' | b'\t' | b'\r' | b'\n' | b'!' => megaco(p),
        _ => None,
    }
}

/// The UDP checks for text and fixed-prefix protocols (Agora SD-RTN, MGCP,
/// Megaco, TeamSpeak, BitTorrent).
fn udp_other(p: &[u8], sport: u16, dport: u16) -> Option<AppHint<'_>> {
    if let Some(h) = sd_rtn(p) {
        return Some(h);
    }
    match p[0] {
        b'T' => teamspeak(p),
        b'd' => bt_dht(p).then_some(AppHint::BitTorrent),
        0 if bt_tracker_connect(p) => Some(AppHint::BitTorrent),
        c => text_other(p, c, sport, dport),
    }
}

/// Packet builders and helpers shared by the protocols' tests.
#[cfg(test)]
pub(crate) mod test_util {
    use super::inspect;
    use crate::{Packet, TcpInfo, Transport};
    use capture::LinkType;

    pub(crate) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Packet<'_> {
        let mut p = Packet::new(LinkType::ETHERNET);
        p.transport = Transport::Udp {
            src_port: sport,
            dst_port: dport,
        };
        p.payload = payload;
        p.payload_len = payload.len() as u32;
        p
    }

    pub(crate) fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Packet<'_> {
        let mut p = Packet::new(LinkType::ETHERNET);
        p.transport = Transport::Tcp(TcpInfo {
            src_port: sport,
            dst_port: dport,
            seq: 1,
            ack: 1,
            flags: 0x18,
            window: 1000,
        });
        p.payload = payload;
        p.payload_len = payload.len() as u32;
        p
    }

    pub(crate) fn proto(pkt: &Packet<'_>) -> Option<&'static str> {
        inspect(pkt).map(|h| h.protocol())
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::stun::tests::stun_msg;
    use super::test_util::{hex, proto, tcp, udp};
    use super::tls::tests::{certificate, server_flight};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protocol_table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for name in PROTOCOLS {
            assert!(seen.insert(name), "{name} twice");
            assert_eq!(PROTOCOLS[protocol_index(name).unwrap()], name);
        }
        let hints = [
            AppHint::TlsOther,
            AppHint::HttpResponse { content_type: None },
            AppHint::Rtcp,
            AppHint::Stun { message_type: 1 },
            AppHint::Dtls {
                content_type: 22,
                version: 0xfeff,
            },
            AppHint::BitTorrent,
            AppHint::Mgcp { verb: "RQNT" },
            AppHint::Megaco,
            AppHint::H323 { ras: true },
            AppHint::Iax2,
            AppHint::Rtmp,
            AppHint::TeamSpeak,
            AppHint::WhatsApp,
        ];
        let expect = [
            "tls",
            "http",
            "rtcp",
            "stun",
            "dtls",
            "bittorrent",
            "mgcp",
            "megaco",
            "h323",
            "iax2",
            "rtmp",
            "teamspeak",
            "whatsapp",
        ];
        for (h, want) in hints.iter().zip(expect) {
            assert_eq!(h.protocol(), want);
            assert_eq!(h.protocol_bit(), 1 << protocol_index(want).unwrap());
        }
        // The original eight keep their bits.
        assert_eq!(
            PROTOCOLS[..8],
            ["tls", "dns", "http", "quic", "ssh", "rtp", "rtcp", "sip"]
        );
        let mask = (1 << 8) | (1 << 5) | (1 << 9);
        assert_eq!(
            protocol_names(mask).collect::<Vec<_>>(),
            ["rtp", "stun", "dtls"]
        );
        assert_eq!(protocol_names(1 << 31).count(), 0);
    }

    #[test]
    fn teamspeak_and_whatsapp() {
        let init = hex("545333494e49543100650000880dd05766005f5916e0ade76b610000000000000000");
        assert_eq!(inspect(&udp(53187, 9987, &init)), Some(AppHint::TeamSpeak));
        assert_eq!(proto(&udp(53187, 9987, b"TS3INIT")), None);
        let wa = hex("57410105 00001af8 0501a59189fc");
        assert_eq!(inspect(&tcp(49202, 5222, &wa)), Some(AppHint::WhatsApp));
        assert_eq!(proto(&tcp(35480, 443, &wa)), Some("whatsapp"));
        assert_eq!(proto(&tcp(35480, 8080, &wa)), None);
        assert_eq!(proto(&tcp(35480, 5222, b"WAXX")), None);
    }

    /// Every hand-made sample, every prefix of it, on several ports: no
    /// panic (the fuzz target covers arbitrary bytes).
    #[test]
    fn prefixes_never_panic() {
        let mut samples = vec![
            stun_msg(),
            server_flight(&certificate(Some("a"), Some("b")), true),
            [
                hex("15 0303 0002 0170"),
                server_flight(&certificate(Some("a"), None), false),
            ]
            .concat(),
            server_flight(&certificate(None, Some("b")), false),
            hex("030000a0 08 02 77f4 05 04038090a5"),
            hex("8004 0000 00000001 00 00 06 01 0b020002"),
            b"RQNT 1 *@gateway44.myplace.com MGCP 0.1\r\n".to_vec(),
            b"AU = 0x1234:0x1:0xdeadbeef MEGACO/2 [1.2.3.4]\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Type: a/b;c\r\n\r\n".to_vec(),
            b"d2:ip6:\x01\x02\x03\x04\x1a\xe11:rd2:id20:".to_vec(),
        ];
        samples.push([&[0, 32][..], &stun_msg()].concat());
        for s in &samples {
            for end in 0..=s.len() {
                let p = &s[..end];
                for (a, b) in [(1719, 2427), (4569, 1935), (5222, 40000), (53, 2944)] {
                    let _ = inspect(&udp(a, b, p));
                    let _ = inspect(&tcp(a, b, p));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(
            p in prop::collection::vec(any::<u8>(), 0..300),
            prefix in prop::sample::select(vec![
                &b""[..], b"\x16\x03\x03", b"\x03\x00", b"\x00\x01", b"\x16\x03\x03\x00\x40\x02",
                b"RQNT 1 ", b"200 ", b"AU=", b"!/", b"d2:ip", b"GET ", b"HTTP/1.1 ", b"\x80\x04",
            ]),
            sport in prop::sample::select(vec![1719u16, 2427, 4569, 1935, 5222, 443, 40000]),
        ) {
            let p = [prefix, &p[..]].concat();
            let _ = inspect(&udp(sport, 50000, &p));
            let _ = inspect(&tcp(sport, 50000, &p));
        }
    }
}

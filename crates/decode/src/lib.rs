//! Zero-copy packet decoding.
//!
//! [`decode`] turns one captured frame (bytes plus link type) into a
//! [`Packet`]: a small view that borrows the frame and holds the parsed
//! layers — link (VLAN stack), network (IPv4/IPv6, ARP, other ethertypes),
//! tunnels decoded to the innermost packet (the outer kept as context), and
//! transport (TCP, UDP, ICMP, ICMPv6, SCTP). Nothing is allocated. A
//! malformed or truncated packet still yields a `Packet` holding whatever
//! was decoded before the fault, with [`Packet::malformed`] saying where.
//!
//! Application hints (TLS SNI/ALPN, DNS, HTTP, QUIC, SSH, RTP/SIP) are
//! parsed on demand by [`app::inspect`], and well-known port names by
//! [`service::by_port`]. The ClientHello inside IETF QUIC's protected
//! Initial packets is recovered by [`quic_initial`].

pub mod app;
mod ip;
mod link;
pub mod quic_initial;
pub mod service;

use std::fmt;
use std::net::IpAddr;

pub use capture::LinkType;

/// IP protocol numbers used below.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// Ethertypes used below.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const RARP: u16 = 0x8035;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const PPPOE_DISCOVERY: u16 = 0x8863;
    pub const TEB: u16 = 0x6558;
    pub const PPP: u16 = 0x880b;
    pub const LLDP: u16 = 0x88cc;
}

/// Where decoding stopped on a malformed or truncated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Malformed {
    /// Layer at fault, e.g. "ipv4", "tcp".
    pub layer: &'static str,
    /// What was wrong, e.g. "header truncated".
    pub reason: &'static str,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.layer, self.reason)
    }
}

/// The network layer found in the frame (innermost, after tunnels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Ipv4,
    Ipv6,
    Arp,
    /// A non-IP ethertype (or 802.3/LLC frame, reported as 0).
    Other(u16),
    /// Nothing decoded: link type not supported, or the link layer was malformed.
    None,
}

/// Transport layer of the innermost IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp(TcpInfo),
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    Sctp {
        src_port: u16,
        dst_port: u16,
    },
    Icmp {
        icmp_type: u8,
        code: u8,
    },
    Icmpv6 {
        icmp_type: u8,
        code: u8,
    },
    /// Another IP protocol, or a non-first fragment (no transport header).
    Other,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

/// TCP flag bits as in the header's 13th byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// IP layer details of the innermost IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    pub version: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol number (after IPv6 extension headers).
    pub protocol: u8,
    /// IPv4 total length, or IPv6 payload length + 40.
    pub total_len: u32,
    /// The length field was 0 (TSO/GRO captures on the sending host, IPv6
    /// jumbograms) and `total_len` is what was captured: a copy of the
    /// frame cut short would give another length.
    pub length_from_capture: bool,
    pub ttl: u8,
    /// Fragment of a larger datagram (IPv4 MF/offset, IPv6 fragment header).
    pub fragment: Option<Fragment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset in bytes.
    pub offset: u32,
    pub more: bool,
    pub id: u32,
}

/// Encapsulation the packet arrived in (the outermost tunnel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    pub kind: TunnelKind,
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
    /// VXLAN/Geneve VNI, GTP-U TEID, GRE key; 0 when absent.
    pub id: u32,
    /// Number of tunnel layers removed.
    pub depth: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    IpInIp,
    Gre,
    Vxlan,
    Geneve,
    GtpU,
    Teredo,
}

impl TunnelKind {
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::IpInIp => "ip-in-ip",
            TunnelKind::Gre => "gre",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::GtpU => "gtp-u",
            TunnelKind::Teredo => "teredo",
        }
    }
}

/// A decoded frame. Borrows the captured bytes; `Copy` and allocation-free.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub linktype: LinkType,
    /// Up to two VLAN ids, outermost first (0 = absent).
    pub vlan: [u16; 2],
    /// Ethertype of the innermost link header (0 for raw IP link types).
    pub ethertype: u16,
    pub network: Network,
    pub ip: Option<IpInfo>,
    pub tunnel: Option<Tunnel>,
    pub transport: Transport,
    /// Transport payload as captured (may be shorter than `payload_len`).
    pub payload: &'a [u8],
    /// Transport payload length according to the headers.
    pub payload_len: u32,
    pub malformed: Option<Malformed>,
    /// Link type not supported (nothing decoded).
    pub unsupported_link: bool,
}

impl<'a> Packet<'a> {
    /// A packet with nothing decoded yet (what [`decode_into`] fills).
    pub fn new(linktype: LinkType) -> Self {
        Packet {
            linktype,
            vlan: [0, 0],
            ethertype: 0,
            network: Network::None,
            ip: None,
            tunnel: None,
            transport: Transport::None,
            payload: &[],
            payload_len: 0,
            malformed: None,
            unsupported_link: false,
        }
    }

    fn fault(&mut self, layer: &'static str, reason: &'static str) {
        if self.malformed.is_none() {
            self.malformed = Some(Malformed { layer, reason });
        }
    }

    /// Source and destination ports (TCP, UDP, SCTP), else `None`.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.transport {
            Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
            Transport::Udp { src_port, dst_port } | Transport::Sctp { src_port, dst_port } => {
                Some((src_port, dst_port))
            }
            _ => None,
        }
    }

    pub fn tcp(&self) -> Option<&TcpInfo> {
        match &self.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }

    /// A short name of the transport: "TCP", "UDP", "ICMP", "ARP", …
    pub fn protocol_name(&self) -> &'static str {
        match self.transport {
            Transport::Tcp(_) => "TCP",
            Transport::Udp { .. } => "UDP",
            Transport::Sctp { .. } => "SCTP",
            Transport::Icmp { .. } => "ICMP",
            Transport::Icmpv6 { .. } => "ICMPv6",
            Transport::Other | Transport::None => match (self.ip, self.network) {
                (Some(ip), _) => protocol_name(ip.protocol),
                (None, Network::Arp) => "ARP",
                (None, Network::Other(_)) => "other-L2",
                _ => "unknown",
            },
        }
    }
}

/// Name of an IP protocol number.
pub fn protocol_name(p: u8) -> &'static str {
    match p {
        proto::ICMP => "ICMP",
        2 => "IGMP",
        proto::IPIP => "IPIP",
        proto::TCP => "TCP",
        proto::UDP => "UDP",
        proto::IPV6 => "IPv6",
        proto::GRE => "GRE",
        proto::ESP => "ESP",
        proto::AH => "AH",
        proto::ICMPV6 => "ICMPv6",
        89 => "OSPF",
        103 => "PIM",
        112 => "VRRP",
        proto::SCTP => "SCTP",
        _ => "IP-other",
    }
}

/// Maximum number of tunnel layers removed before giving up (guards against
/// crafted packets that nest forever).
const MAX_TUNNEL_DEPTH: u8 = 4;

/// Decodes one frame. Never panics; never allocates.
pub fn decode(linktype: LinkType, data: &[u8]) -> Packet<'_> {
    let mut pkt = Packet::new(linktype);
    decode_into(linktype, data, &mut pkt);
    pkt
}

/// [`decode`] into a packet the caller holds, overwriting all of it. Hot
/// loops use this: returning the 184-byte packet by value costs a copy per
/// packet (about a tenth of the decoder's time).
#[inline]
pub fn decode_into<'a>(linktype: LinkType, data: &'a [u8], pkt: &mut Packet<'a>) {
    *pkt = Packet::new(linktype);
    match link::strip(linktype, data, pkt) {
        Some((ethertype, rest)) => {
            pkt.ethertype = ethertype;
            ip::network(ethertype, rest, pkt, 0);
        }
        None => {
            if pkt.malformed.is_none() && !pkt.unsupported_link {
                pkt.network = Network::None;
            }
        }
    }
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Little-endian, as Skinny writes its header.
#[inline]
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

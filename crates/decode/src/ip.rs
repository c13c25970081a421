//! IPv4, IPv6 (extension-header chain), transports and tunnels.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::link::{after_ethertype, ethernet, ppp_in_gre, raw_ip};
use crate::{
    be16, be32, ethertype as et, proto, Fragment, IpInfo, Network, Packet, TcpInfo, Transport,
    Tunnel, TunnelKind, MAX_TUNNEL_DEPTH,
};

pub(crate) fn network<'a>(ethertype: u16, data: &'a [u8], pkt: &mut Packet<'a>, depth: u8) {
    match ethertype {
        et::IPV4 => ipv4(data, pkt, depth),
        et::IPV6 => ipv6(data, pkt, depth),
        et::ARP | et::RARP => pkt.network = Network::Arp,
        other => pkt.network = Network::Other(other),
    }
}

#[inline]
fn ipv4<'a>(data: &'a [u8], pkt: &mut Packet<'a>, depth: u8) {
    pkt.network = Network::Ipv4;
    if data.len() < 20 {
        pkt.fault("ipv4", "header truncated");
        return;
    }
    if data[0] >> 4 != 4 {
        pkt.fault("ipv4", "version field is not 4");
        return;
    }
    let hlen = ((data[0] & 0x0f) as usize) * 4;
    if hlen < 20 {
        pkt.fault("ipv4", "header length below 20 bytes");
        return;
    }
    if hlen > data.len() {
        pkt.fault("ipv4", "options truncated");
        return;
    }
    let total_len = be16(data, 2) as usize;
    let length_from_capture = total_len == 0;
    // TSO/GRO captures on the sending host may carry total length 0.
    let total_len = if length_from_capture {
        data.len()
    } else {
        total_len
    };
    if total_len < hlen {
        pkt.fault("ipv4", "total length shorter than its header");
        return;
    }
    let frag = be16(data, 6);
    let offset = ((frag & 0x1fff) as u32) * 8;
    let more = frag & 0x2000 != 0;
    let protocol = data[9];
    let src = IpAddr::V4(Ipv4Addr::new(data[12], data[13], data[14], data[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(data[16], data[17], data[18], data[19]));
    pkt.ip = Some(IpInfo {
        version: 4,
        src,
        dst,
        protocol,
        total_len: total_len as u32,
        length_from_capture,
        ttl: data[8],
        fragment: (more || offset > 0).then_some(Fragment {
            offset,
            more,
            id: be16(data, 4) as u32,
        }),
    });
    // Ethernet padding lies beyond the total length; snaplen may cut before it.
    let end = total_len.min(data.len());
    let seg = &data[hlen..end];
    let claimed = (total_len - hlen) as u32;
    if offset > 0 {
        pkt.transport = Transport::Other;
        pkt.payload = seg;
        pkt.payload_len = claimed;
        return;
    }
    transport(protocol, seg, claimed, pkt, depth);
}

#[inline]
fn ipv6<'a>(data: &'a [u8], pkt: &mut Packet<'a>, depth: u8) {
    pkt.network = Network::Ipv6;
    if data.len() < 40 {
        pkt.fault("ipv6", "header truncated");
        return;
    }
    if data[0] >> 4 != 6 {
        pkt.fault("ipv6", "version field is not 6");
        return;
    }
    let payload_len = be16(data, 4) as usize;
    // Payload length 0 means a jumbogram (or TSO): use what was captured.
    let total_len = if payload_len == 0 {
        data.len()
    } else {
        40 + payload_len
    };
    let mut src = [0u8; 16];
    src.copy_from_slice(&data[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&data[24..40]);
    let mut info = IpInfo {
        version: 6,
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        protocol: data[6],
        total_len: total_len as u32,
        length_from_capture: payload_len == 0,
        ttl: data[7],
        fragment: None,
    };
    let end = total_len.min(data.len());
    let mut nh = data[6];
    let mut off = 40usize;
    let mut first_fragment = true;
    // Walk the extension-header chain to the upper-layer protocol.
    while matches!(nh, 0 | 43 | 60 | 135 | 139 | 140 | 44 | proto::AH) {
        if off + 8 > end {
            pkt.ip = Some(info);
            pkt.fault("ipv6", "extension header truncated");
            return;
        }
        let len = match nh {
            44 => {
                let fo = be16(data, off + 2);
                let frag = Fragment {
                    offset: (fo & 0xfff8) as u32,
                    more: fo & 1 == 1,
                    id: be32(data, off + 4),
                };
                first_fragment = frag.offset == 0;
                info.fragment = Some(frag);
                8
            }
            proto::AH => (data[off + 1] as usize + 2) * 4,
            _ => (data[off + 1] as usize + 1) * 8,
        };
        nh = data[off];
        off += len;
        if off > end {
            pkt.ip = Some(info);
            pkt.fault("ipv6", "extension header truncated");
            return;
        }
        if !first_fragment {
            break;
        }
    }
    info.protocol = nh;
    pkt.ip = Some(info);
    let seg = &data[off..end];
    let claimed = total_len.saturating_sub(off) as u32;
    if !first_fragment || nh == 59 {
        pkt.transport = Transport::Other;
        pkt.payload = seg;
        pkt.payload_len = claimed;
        return;
    }
    transport(nh, seg, claimed, pkt, depth);
}

fn enter_tunnel(pkt: &mut Packet<'_>, kind: TunnelKind, id: u32) {
    let Some(outer) = pkt.ip else { return };
    match &mut pkt.tunnel {
        Some(t) => t.depth += 1,
        None => {
            pkt.tunnel = Some(Tunnel {
                kind,
                outer_src: outer.src,
                outer_dst: outer.dst,
                id,
                depth: 1,
            })
        }
    }
    pkt.transport = Transport::None;
    pkt.payload = &[];
    pkt.payload_len = 0;
}

fn transport<'a>(protocol: u8, seg: &'a [u8], claimed: u32, pkt: &mut Packet<'a>, depth: u8) {
    match protocol {
        proto::TCP => {
            if seg.len() < 20 {
                // The ports come first: keep them so the packet finds its flow.
                pkt.transport = if seg.len() >= 4 {
                    Transport::Tcp(TcpInfo {
                        src_port: be16(seg, 0),
                        dst_port: be16(seg, 2),
                        seq: 0,
                        ack: 0,
                        flags: 0,
                        window: 0,
                    })
                } else {
                    Transport::Other
                };
                pkt.fault("tcp", "header truncated");
                return;
            }
            let doff = (seg[12] >> 4) as usize * 4;
            pkt.transport = Transport::Tcp(TcpInfo {
                src_port: be16(seg, 0),
                dst_port: be16(seg, 2),
                seq: be32(seg, 4),
                ack: be32(seg, 8),
                flags: seg[13],
                window: be16(seg, 14),
            });
            if doff < 20 {
                pkt.fault("tcp", "data offset below 20 bytes");
                return;
            }
            if doff as u32 > claimed {
                pkt.fault("tcp", "data offset beyond the IP payload");
                return;
            }
            if doff > seg.len() {
                pkt.fault("tcp", "options truncated");
                return;
            }
            pkt.payload = &seg[doff..];
            pkt.payload_len = claimed - doff as u32;
        }
        proto::UDP => {
            if seg.len() < 8 {
                pkt.transport = if seg.len() >= 4 {
                    Transport::Udp {
                        src_port: be16(seg, 0),
                        dst_port: be16(seg, 2),
                    }
                } else {
                    Transport::Other
                };
                pkt.fault("udp", "header truncated");
                return;
            }
            let (sport, dport) = (be16(seg, 0), be16(seg, 2));
            pkt.transport = Transport::Udp {
                src_port: sport,
                dst_port: dport,
            };
            let ulen = be16(seg, 4) as u32;
            let len = if ulen < 8 {
                pkt.fault("udp", "length field below 8");
                claimed
            } else if ulen > claimed {
                pkt.fault("udp", "length field beyond the IP payload");
                claimed
            } else {
                ulen
            };
            let cap_end = (len as usize).min(seg.len());
            pkt.payload = &seg[8.min(cap_end)..cap_end];
            pkt.payload_len = len.saturating_sub(8);
            // Only the tunnel ports leave the hot path.
            let tunnel_port = |p: u16| matches!(p, 4789 | 6081 | 2152 | 3544);
            if (tunnel_port(dport) || sport == 2152 || sport == 3544)
                && depth < MAX_TUNNEL_DEPTH
                && pkt.malformed.is_none()
            {
                udp_tunnel(sport, dport, pkt, depth);
            }
        }
        proto::SCTP => {
            if seg.len() < 12 {
                pkt.transport = Transport::Other;
                pkt.fault("sctp", "common header truncated");
                return;
            }
            pkt.transport = Transport::Sctp {
                src_port: be16(seg, 0),
                dst_port: be16(seg, 2),
            };
            pkt.payload = &seg[12..];
            pkt.payload_len = claimed.saturating_sub(12);
        }
        proto::ICMP | proto::ICMPV6 => {
            if seg.len() < 4 {
                pkt.transport = Transport::Other;
                pkt.fault(
                    if protocol == proto::ICMP {
                        "icmp"
                    } else {
                        "icmpv6"
                    },
                    "header truncated",
                );
                return;
            }
            pkt.transport = if protocol == proto::ICMP {
                Transport::Icmp {
                    icmp_type: seg[0],
                    code: seg[1],
                }
            } else {
                Transport::Icmpv6 {
                    icmp_type: seg[0],
                    code: seg[1],
                }
            };
            let body = 8.min(seg.len());
            pkt.payload = &seg[body..];
            pkt.payload_len = claimed.saturating_sub(8);
        }
        proto::IPIP | proto::IPV6 if depth < MAX_TUNNEL_DEPTH => {
            enter_tunnel(pkt, TunnelKind::IpInIp, 0);
            if protocol == proto::IPIP {
                ipv4(seg, pkt, depth + 1)
            } else {
                ipv6(seg, pkt, depth + 1)
            }
        }
        proto::GRE if depth < MAX_TUNNEL_DEPTH => gre(seg, claimed, pkt, depth),
        proto::AH if seg.len() >= 12 => {
            // Authentication Header: skip it to the protocol it protects.
            let len = (seg[1] as usize + 2) * 4;
            if len > seg.len() {
                pkt.transport = Transport::Other;
                pkt.payload = seg;
                pkt.payload_len = claimed;
                pkt.fault("ah", "header truncated");
                return;
            }
            let next = seg[0];
            if let Some(ip) = &mut pkt.ip {
                ip.protocol = next;
            }
            transport(
                next,
                &seg[len..],
                claimed.saturating_sub(len as u32),
                pkt,
                depth,
            );
        }
        _ => {
            pkt.transport = Transport::Other;
            pkt.payload = seg;
            pkt.payload_len = claimed;
        }
    }
}

#[inline(never)]
fn gre<'a>(seg: &'a [u8], claimed: u32, pkt: &mut Packet<'a>, depth: u8) {
    pkt.transport = Transport::Other;
    pkt.payload = seg;
    pkt.payload_len = claimed;
    if seg.len() < 4 {
        pkt.fault("gre", "header truncated");
        return;
    }
    let flags = be16(seg, 0);
    let version = flags & 7;
    let ptype = be16(seg, 2);
    let (c, k, s) = (
        flags & 0x8000 != 0,
        flags & 0x2000 != 0,
        flags & 0x1000 != 0,
    );
    let mut off = 4;
    let mut key = 0;
    match version {
        0 => {
            if c || flags & 0x4000 != 0 {
                off += 4;
            }
            if k {
                if seg.len() >= off + 4 {
                    key = be32(seg, off);
                }
                off += 4;
            }
            if s {
                off += 4;
            }
        }
        1 => {
            // Enhanced GRE (PPTP): key carries payload length and call id.
            off += 4;
            if s {
                off += 4;
            }
            if flags & 0x0080 != 0 {
                off += 4;
            }
        }
        _ => return,
    }
    if off > seg.len() {
        pkt.fault("gre", "header truncated");
        return;
    }
    let inner = &seg[off..];
    if inner.is_empty() {
        return;
    }
    // Only switch to the inner packet when it is IP: PPP control traffic
    // (LCP, CCP) stays a GRE packet of the outer flow.
    let mut probe = *pkt;
    let found = match ptype {
        et::IPV4 | et::IPV6 => Some((ptype, inner)),
        et::TEB => ethernet(inner, &mut probe),
        et::PPP => ppp_in_gre(inner, &mut probe),
        // ERSPAN type II: 8-byte header; type III: 12 bytes (+8 with the O flag).
        0x88be if s && inner.len() > 8 => ethernet(&inner[8..], &mut probe),
        0x88be if !inner.is_empty() => ethernet(inner, &mut probe),
        0x22eb if inner.len() > 12 => {
            let skip = if inner[11] & 1 != 0 { 20 } else { 12 };
            inner.get(skip..).and_then(|i| ethernet(i, &mut probe))
        }
        // Cisco MetaData in GRE puts the next ethertype first, then 6 bytes.
        0x8909 if inner.len() >= 8 => after_ethertype(be16(inner, 0), &inner[8..], &mut probe),
        // VLAN, MPLS…: walk to the network layer.
        other => after_ethertype(other, inner, &mut probe),
    };
    if let Some((ethertype, rest)) = found {
        if ethertype == et::IPV4 || ethertype == et::IPV6 {
            if ptype != et::IPV4 && ptype != et::IPV6 && ptype != et::PPP {
                pkt.vlan = probe.vlan;
            }
            enter_tunnel(pkt, TunnelKind::Gre, key);
            network(ethertype, rest, pkt, depth + 1);
        }
    }
}

#[cold]
#[inline(never)]
fn udp_tunnel<'a>(sport: u16, dport: u16, pkt: &mut Packet<'a>, depth: u8) {
    let p = pkt.payload;
    if dport == 4789 && p.len() >= 8 + 14 && p[0] & 0x08 != 0 {
        let vni = be32(p, 4) >> 8;
        let mut probe = *pkt;
        if let Some((ethertype, rest)) = ethernet(&p[8..], &mut probe).filter(is_ip) {
            enter_tunnel(pkt, TunnelKind::Vxlan, vni);
            pkt.vlan = probe.vlan;
            network(ethertype, rest, pkt, depth + 1);
        }
    } else if dport == 6081 && p.len() >= 8 && p[0] >> 6 == 0 {
        let opt = (p[0] & 0x3f) as usize * 4;
        let ptype = be16(p, 2);
        let vni = be32(p, 4) >> 8;
        if p.len() < 8 + opt {
            return;
        }
        let inner = &p[8 + opt..];
        let mut probe = *pkt;
        let found = match ptype {
            et::TEB => ethernet(inner, &mut probe),
            et::IPV4 | et::IPV6 => Some((ptype, inner)),
            _ => None,
        };
        if let Some((ethertype, rest)) = found.filter(is_ip) {
            enter_tunnel(pkt, TunnelKind::Geneve, vni);
            network(ethertype, rest, pkt, depth + 1);
        }
    } else if (dport == 2152 || sport == 2152) && p.len() >= 8 {
        let flags = p[0];
        // GTPv1, protocol type GTP, message type 255 (G-PDU) carries user IP.
        if flags >> 5 != 1 || flags & 0x10 == 0 || p[1] != 0xff {
            return;
        }
        let teid = be32(p, 4);
        let mut off = 8;
        if flags & 0x07 != 0 {
            if p.len() < 12 {
                return;
            }
            off = 12;
            let mut next = p[11];
            if flags & 0x04 != 0 {
                while next != 0 {
                    let Some(&units) = p.get(off) else { return };
                    let len = units as usize * 4;
                    if len == 0 || off + len > p.len() {
                        return;
                    }
                    next = p[off + len - 1];
                    off += len;
                }
            }
        }
        let inner = &p[off..];
        let mut probe = *pkt;
        if let Some((ethertype, rest)) = raw_ip(inner, &mut probe, "gtp-u") {
            enter_tunnel(pkt, TunnelKind::GtpU, teid);
            network(ethertype, rest, pkt, depth + 1);
        }
    } else if dport == 3544 || sport == 3544 {
        // Teredo (RFC 4380): IPv6 over UDP, optionally behind an
        // authentication and/or an origin indication header.
        let mut off = 0;
        if p.len() >= 4 && p[0] == 0 && p[1] == 1 {
            let (id_len, au_len) = (p[2] as usize, p[3] as usize);
            off += 4 + id_len + au_len + 9;
        }
        if p.len() >= off + 8 && p[off] == 0 && p[off + 1] == 0 {
            off += 8;
        }
        let Some(inner) = p.get(off..) else { return };
        if inner.len() >= 40 && inner[0] >> 4 == 6 && 40 + be16(inner, 4) as usize == inner.len() {
            enter_tunnel(pkt, TunnelKind::Teredo, 0);
            ipv6(inner, pkt, depth + 1);
        }
    }
}

fn is_ip(found: &(u16, &[u8])) -> bool {
    found.0 == et::IPV4 || found.0 == et::IPV6
}

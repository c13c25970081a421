//! Link layers: strips the link header and returns (ethertype, rest).

use crate::{be16, ethertype as et, LinkType, Network, Packet};

pub(crate) fn strip<'a>(
    linktype: LinkType,
    data: &'a [u8],
    pkt: &mut Packet<'a>,
) -> Option<(u16, &'a [u8])> {
    match linktype.0 {
        1 => ethernet(data, pkt),
        // Raw IP: the version nibble says which.
        101 | 12 | 14 => raw_ip(data, pkt, "raw-ip"),
        // These two promise one version; another one is malformed, as in tshark.
        228 | 229 => {
            let want = if linktype.0 == 228 { 4 } else { 6 };
            match data.first().map(|b| b >> 4) {
                Some(v) if v == want => raw_ip(data, pkt, "raw-ip"),
                Some(_) => {
                    pkt.fault("raw-ip", "IP version does not match the link type");
                    None
                }
                None => {
                    pkt.fault("raw-ip", "empty packet");
                    None
                }
            }
        }
        113 => {
            if data.len() < 16 {
                pkt.fault("linux-sll", "header truncated");
                return None;
            }
            after_ethertype(be16(data, 14), &data[16..], pkt)
        }
        276 => {
            if data.len() < 20 {
                pkt.fault("linux-sll2", "header truncated");
                return None;
            }
            after_ethertype(be16(data, 0), &data[20..], pkt)
        }
        0 | 108 => {
            if data.len() < 4 {
                pkt.fault("null", "header truncated");
                return None;
            }
            // DLT_NULL stores the address family in the capturing host's
            // byte order, DLT_LOOP in network order: accept either.
            let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let family = if le < 256 { le } else { be };
            match family {
                2 => Some((et::IPV4, &data[4..])),
                10 | 24 | 28 | 30 => Some((et::IPV6, &data[4..])),
                _ => {
                    pkt.network = Network::Other(0);
                    None
                }
            }
        }
        9 | 50 => ppp(data, pkt),
        51 => {
            // PPPoE without Ethernet: 6-byte PPPoE header then PPP protocol.
            if data.len() < 8 {
                pkt.fault("pppoe", "header truncated");
                return None;
            }
            ppp_protocol(be16(data, 6), &data[8..], pkt)
        }
        _ => {
            pkt.unsupported_link = true;
            None
        }
    }
}

pub(crate) fn raw_ip<'a>(
    data: &'a [u8],
    pkt: &mut Packet<'a>,
    layer: &'static str,
) -> Option<(u16, &'a [u8])> {
    match data.first().map(|b| b >> 4) {
        Some(4) => Some((et::IPV4, data)),
        Some(6) => Some((et::IPV6, data)),
        Some(_) => {
            pkt.fault(layer, "not an IPv4 or IPv6 packet");
            None
        }
        None => {
            pkt.fault(layer, "empty packet");
            None
        }
    }
}

pub(crate) fn ethernet<'a>(data: &'a [u8], pkt: &mut Packet<'a>) -> Option<(u16, &'a [u8])> {
    if data.len() < 14 {
        pkt.fault("ethernet", "header truncated");
        return None;
    }
    let ethertype = be16(data, 12);
    if ethertype < 0x0600 {
        // IEEE 802.3 length field: LLC, possibly with SNAP carrying an ethertype.
        let rest = &data[14..];
        if rest.len() >= 8 && rest[0] == 0xaa && rest[1] == 0xaa && rest[2] == 0x03 {
            return after_ethertype(be16(rest, 6), &rest[8..], pkt);
        }
        pkt.network = Network::Other(0);
        return None;
    }
    after_ethertype(ethertype, &data[14..], pkt)
}

/// Walks VLAN tags, MPLS labels and PPPoE sessions to the network ethertype.
pub(crate) fn after_ethertype<'a>(
    mut ethertype: u16,
    mut rest: &'a [u8],
    pkt: &mut Packet<'a>,
) -> Option<(u16, &'a [u8])> {
    let mut tags = 0;
    loop {
        match ethertype {
            et::VLAN | et::QINQ | et::QINQ_OLD => {
                if rest.len() < 4 {
                    pkt.fault("vlan", "tag truncated");
                    return None;
                }
                if tags < 2 {
                    pkt.vlan[tags] = be16(rest, 0) & 0x0fff;
                }
                tags += 1;
                if tags > 8 {
                    pkt.fault("vlan", "more than 8 stacked tags");
                    return None;
                }
                ethertype = be16(rest, 2);
                rest = &rest[4..];
            }
            et::MPLS | et::MPLS_MC => {
                // Pop labels to the bottom of the stack; guess the payload by version.
                let mut n = 0;
                loop {
                    if rest.len() < 4 {
                        pkt.fault("mpls", "label truncated");
                        return None;
                    }
                    let bottom = rest[2] & 1 == 1;
                    rest = &rest[4..];
                    n += 1;
                    if bottom {
                        break;
                    }
                    if n > 16 {
                        pkt.fault("mpls", "label stack too deep");
                        return None;
                    }
                }
                return raw_ip(rest, pkt, "mpls");
            }
            0x8909 => {
                // Cisco MetaData (SGT tag): 8 bytes ending with the next ethertype.
                if rest.len() < 8 {
                    pkt.fault("cisco-metadata", "header truncated");
                    return None;
                }
                ethertype = be16(rest, 6);
                rest = &rest[8..];
            }
            et::PPPOE_SESSION => {
                if rest.len() < 8 {
                    pkt.fault("pppoe", "header truncated");
                    return None;
                }
                return ppp_protocol(be16(rest, 6), &rest[8..], pkt);
            }
            _ => return Some((ethertype, rest)),
        }
    }
}

fn ppp<'a>(data: &'a [u8], pkt: &mut Packet<'a>) -> Option<(u16, &'a [u8])> {
    // Optional HDLC-like framing (address 0xff, control 0x03).
    let data = if data.len() >= 2 && data[0] == 0xff && data[1] == 0x03 {
        &data[2..]
    } else {
        data
    };
    if data.is_empty() {
        pkt.fault("ppp", "header truncated");
        return None;
    }
    // Protocol field compression: a one-byte protocol has its low bit set.
    if data[0] & 1 == 1 {
        return ppp_protocol(data[0] as u16, &data[1..], pkt);
    }
    if data.len() < 2 {
        pkt.fault("ppp", "header truncated");
        return None;
    }
    ppp_protocol(be16(data, 0), &data[2..], pkt)
}

pub(crate) fn ppp_protocol<'a>(
    protocol: u16,
    rest: &'a [u8],
    pkt: &mut Packet<'a>,
) -> Option<(u16, &'a [u8])> {
    match protocol {
        0x0021 => Some((et::IPV4, rest)),
        0x0057 => Some((et::IPV6, rest)),
        0x0281 | 0x0283 => after_ethertype(et::MPLS, rest, pkt),
        _ => {
            pkt.network = Network::Other(0);
            None
        }
    }
}

pub(crate) fn ppp_in_gre<'a>(data: &'a [u8], pkt: &mut Packet<'a>) -> Option<(u16, &'a [u8])> {
    ppp(data, pkt)
}

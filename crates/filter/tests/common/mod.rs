//! Test-only minimal pcap / pcapng record walker (the production reader
//! lives elsewhere). Classic pcap in both byte orders with micro- or
//! nanosecond magic; pcapng SHB/IDB/EPB/SPB (and the obsolete PB) with a
//! link type per interface and per-section byte order.

#![allow(dead_code)]

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub linktype: u32,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Capture {
    pub packets: Vec<Packet>,
    /// Link types of all interfaces seen (classic pcap: one).
    pub linktypes: Vec<u32>,
    /// The file ended in the middle of a record or block.
    pub truncated: bool,
}

fn rd32(b: &[u8], off: usize, be: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(if be {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

fn rd16(b: &[u8], off: usize, be: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(off..off + 2)?.try_into().ok()?;
    Some(if be {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}

/// Parses a capture file. `None` if it is neither pcap nor pcapng.
pub fn parse(b: &[u8]) -> Option<Capture> {
    let magic = rd32(b, 0, false)?;
    match magic {
        0xa1b2c3d4 | 0xa1b23c4d => parse_pcap(b, false),
        0xd4c3b2a1 | 0x4d3cb2a1 => parse_pcap(b, true),
        0x0a0d0d0a => parse_pcapng(b),
        _ => None,
    }
}

fn parse_pcap(b: &[u8], be: bool) -> Option<Capture> {
    let linktype = rd32(b, 20, be)? & 0x03ff_ffff;
    let mut cap = Capture {
        linktypes: vec![linktype],
        ..Default::default()
    };
    let mut off = 24;
    while off < b.len() {
        let (Some(incl), Some(orig)) = (rd32(b, off + 8, be), rd32(b, off + 12, be)) else {
            cap.truncated = true;
            break;
        };
        let start = off + 16;
        let Some(data) = b.get(start..start + incl as usize) else {
            cap.truncated = true;
            break;
        };
        cap.packets.push(Packet {
            linktype,
            orig_len: orig,
            data: data.to_vec(),
        });
        off = start + incl as usize;
    }
    Some(cap)
}

fn parse_pcapng(b: &[u8]) -> Option<Capture> {
    let mut cap = Capture::default();
    let mut off = 0;
    let mut be = false;
    // Link types of the interfaces of the current section.
    let mut ifaces: Vec<u32> = Vec::new();
    while off < b.len() {
        let Some(btype_le) = rd32(b, off, false) else {
            cap.truncated = true;
            break;
        };
        if btype_le == 0x0a0d0d0a {
            match rd32(b, off + 8, false) {
                Some(0x1a2b3c4d) => be = false,
                Some(0x4d3c2b1a) => be = true,
                _ => {
                    cap.truncated = true;
                    break;
                }
            }
            ifaces.clear();
        }
        let (Some(btype), Some(blen)) = (rd32(b, off, be), rd32(b, off + 4, be)) else {
            cap.truncated = true;
            break;
        };
        let blen = blen as usize;
        if blen < 12 || !blen.is_multiple_of(4) || off + blen > b.len() {
            cap.truncated = true;
            break;
        }
        let body = &b[off..off + blen];
        match btype {
            1 => {
                let lt = u32::from(rd16(body, 8, be)?);
                ifaces.push(lt);
                cap.linktypes.push(lt);
            }
            6 => {
                let iface = rd32(body, 8, be)? as usize;
                let caplen = rd32(body, 20, be)? as usize;
                let orig = rd32(body, 24, be)?;
                let data = body.get(28..28 + caplen)?;
                cap.packets.push(Packet {
                    linktype: *ifaces.get(iface)?,
                    orig_len: orig,
                    data: data.to_vec(),
                });
            }
            2 => {
                let iface = usize::from(rd16(body, 8, be)?);
                let caplen = rd32(body, 20, be)? as usize;
                let orig = rd32(body, 24, be)?;
                let data = body.get(28..28 + caplen)?;
                cap.packets.push(Packet {
                    linktype: *ifaces.get(iface)?,
                    orig_len: orig,
                    data: data.to_vec(),
                });
            }
            3 => {
                let orig = rd32(body, 8, be)?;
                let caplen = (orig as usize).min(blen - 16);
                let data = body.get(12..12 + caplen)?;
                cap.packets.push(Packet {
                    linktype: *ifaces.first()?,
                    orig_len: orig,
                    data: data.to_vec(),
                });
            }
            _ => {}
        }
        off += blen;
    }
    Some(cap)
}

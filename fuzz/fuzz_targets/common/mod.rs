//! Helpers shared by the fuzz targets.
#![allow(dead_code)]

use capture::LinkType;
use flow::{FlowConfig, FlowRecord, FlowTable};

/// Link types `decode_packet` chooses from (pcap LINKTYPE numbers).
pub const LINKTYPES: [u32; 11] = [1, 0, 108, 9, 50, 51, 101, 113, 228, 229, 276];

/// Maps the 2-byte selector at the start of a `decode_packet` input to a link
/// type: a selector (big-endian) that names a supported link type picks it
/// (so seeds are readable: `00 01` = EN10MB), anything else picks by index.
pub fn linktype_from_selector(sel: [u8; 2]) -> LinkType {
    let v = u16::from_be_bytes(sel) as u32;
    if LINKTYPES.contains(&v) {
        LinkType(v)
    } else {
        LinkType(LINKTYPES[v as usize % LINKTYPES.len()])
    }
}

/// Exports each record as a CSV row (the hand-written export code is part
/// of the surface under test) and reads its derived figures.
pub fn consume(rec: FlowRecord) {
    let mut line = String::new();
    flow::write_csv_row(&mut std::io::sink(), &rec, &mut line).expect("CSV export into a sink");
    std::hint::black_box((line, rec.packets(), rec.bytes(), rec.duration_s()));
}

/// A default table plus a tiny one whose bounds and timers are hit at once
/// (eviction, idle/active timeouts, FIN/RST lingering).
pub struct Tables {
    pub default: FlowTable,
    pub tiny: FlowTable,
}

impl Tables {
    pub fn new() -> Self {
        let tiny = FlowConfig {
            idle_timeout_ns: 1_000,
            active_timeout_ns: 5_000,
            close_linger_ns: 100,
            max_flows: 2,
            first_n: 2,
            inspect_packets: 2,
            vlan_in_key: true,
        };
        Tables {
            default: FlowTable::new(FlowConfig::default()),
            tiny: FlowTable::new(tiny),
        }
    }

    pub fn process(&mut self, pkt: &decode::Packet<'_>, ts_ns: u64, wire_len: u32) {
        let p = self.default.process(pkt, ts_ns, wire_len, &mut consume);
        std::hint::black_box(p);
        let p = self.tiny.process(pkt, ts_ns, wire_len, &mut consume);
        std::hint::black_box(p);
    }

    pub fn flush(mut self) {
        self.default.flush(&mut consume);
        self.tiny.flush(&mut consume);
        std::hint::black_box(self.default.stats());
        std::hint::black_box(self.tiny.stats());
    }
}

/// Decodes one frame, inspects its payload and formats the hand-written
/// parts of the result (derived Debug output is skipped: it is costly and
/// not ours).
pub fn decode_and_inspect(linktype: LinkType, data: &[u8]) -> decode::Packet<'_> {
    let pkt = decode::decode(linktype, data);
    let hint = decode::app::inspect(&pkt);
    if let Some(h) = &hint {
        std::hint::black_box(h.protocol());
    }
    std::hint::black_box((format!("{hint:?}"), pkt.protocol_name(), pkt.tcp()));
    if let Some(m) = pkt.malformed {
        std::hint::black_box(m.to_string());
    }
    if let Some((a, b)) = pkt.ports() {
        let proto = pkt.ip.map(|ip| ip.protocol).unwrap_or(0);
        std::hint::black_box(decode::service::for_ports(proto, a, b));
    }
    pkt
}

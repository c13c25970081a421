//! From a captured frame to its packet record: decode once, key by the
//! canonical five-tuple, and keep only the bytes the analysis needs.
//!
//! The analysis node runs the same stages on the record's frame as a local
//! run does on the whole frame. Headers decide everything but application
//! recognition, which reads the payload of a flow's first payload packets
//! only (`flow::FlowConfig::inspect_packets`, up to 4× while nothing is
//! recognised, and QUIC's first client Initials). So a record carries the
//! whole captured frame for the first [`PayloadWindow::packets`] payload
//! packets of each flow and the headers alone after that: the same answers
//! for a fraction of the bytes.

use std::net::IpAddr;

use capture::Frame;
use decode::{tcp_flags, Packet, Transport};

use crate::record::PacketRecord;

/// A stable 64-bit hash of a flow's canonical five-tuple (both directions
/// give the same value): `partition = flow_key_hash % partitions`. FNV-1a
/// over protocol, then the lower and the higher endpoint (16-byte address,
/// 2-byte port, big-endian), so any implementation can reproduce it.
pub fn flow_key_hash(protocol: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> u64 {
    let ea = (v6(a.0), a.1);
    let eb = (v6(b.0), b.1);
    let (lo, hi) = if ea <= eb { (ea, eb) } else { (eb, ea) };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &x in bytes {
            h ^= x as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(&[protocol]);
    feed(&lo.0);
    feed(&lo.1.to_be_bytes());
    feed(&hi.0);
    feed(&hi.1.to_be_bytes());
    h
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

/// Per-flow count of payload packets seen, in a fixed table indexed by the
/// flow key hash (bounded memory, no allocation per packet). A flow starts
/// again, as the flow table starts a new flow, on a bare SYN, after the
/// idle timeout, after the active timeout, and after a FIN or RST plus the
/// close linger. Slot collisions only ever send *more* payload than needed.
pub struct PayloadWindow {
    slots: Vec<Slot>,
    mask: usize,
    /// Payload packets per flow sent whole.
    pub packets: u32,
    idle_ns: u64,
    active_ns: u64,
    linger_ns: u64,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    payload_packets: u32,
    start_ns: u64,
    last_ns: u64,
    /// Time of the first FIN or RST (0: none).
    closing_ns: u64,
}

impl PayloadWindow {
    /// `slots_log2`: table of 2^n slots (18: 262,144 slots, 10 MB).
    pub fn new(cfg: &flow::FlowConfig, slots_log2: u32) -> PayloadWindow {
        let n = 1usize << slots_log2;
        PayloadWindow {
            slots: vec![Slot::default(); n],
            mask: n - 1,
            // The flow table inspects up to 4× inspect_packets while nothing
            // is recognised; twice that again as margin.
            packets: 8 * cfg.inspect_packets as u32,
            idle_ns: cfg.idle_timeout_ns,
            active_ns: cfg.active_timeout_ns,
            linger_ns: cfg.close_linger_ns,
        }
    }

    /// Whether this packet of flow `key` goes whole (true) or as headers.
    pub fn whole(
        &mut self,
        key: u64,
        ts_ns: u64,
        tcp_flags_seen: Option<u8>,
        payload: bool,
    ) -> bool {
        let s = &mut self.slots[key as usize & self.mask];
        let syn_only =
            tcp_flags_seen.is_some_and(|f| f & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN);
        let restart = s.key != key
            || syn_only
            || ts_ns.saturating_sub(s.last_ns) >= self.idle_ns
            || ts_ns.saturating_sub(s.start_ns) >= self.active_ns
            || (s.closing_ns != 0 && ts_ns.saturating_sub(s.closing_ns) >= self.linger_ns);
        if restart {
            *s = Slot {
                key,
                payload_packets: 0,
                start_ns: ts_ns,
                last_ns: ts_ns,
                closing_ns: 0,
            };
        }
        s.last_ns = s.last_ns.max(ts_ns);
        if s.closing_ns == 0
            && tcp_flags_seen.is_some_and(|f| f & (tcp_flags::FIN | tcp_flags::RST) != 0)
        {
            s.closing_ns = ts_ns.max(1);
        }
        if !payload {
            return false;
        }
        s.payload_packets = s.payload_packets.saturating_add(1);
        s.payload_packets <= self.packets
    }
}

/// Turns frames into records: one decode per frame, nothing allocated.
pub struct Encoder {
    window: PayloadWindow,
    local_net: flow::LocalNets,
    vlan_in_key: bool,
}

impl Encoder {
    pub fn new(cfg: &flow::FlowConfig, local_net: flow::LocalNets) -> Encoder {
        Encoder {
            window: PayloadWindow::new(cfg, 18),
            local_net,
            vlan_in_key: cfg.vlan_in_key,
        }
    }

    /// The record of `frame` (borrowing its bytes).
    pub fn encode<'a>(&mut self, frame: &Frame<'a>) -> PacketRecord<'a> {
        let pkt = decode::decode(frame.linktype, frame.data);
        let mut r = PacketRecord {
            ts_ns: frame.ts_ns,
            wire_len: frame.wire_len,
            cap_len: frame.data.len() as u32,
            linktype: frame.linktype.0.min(u16::MAX as u32) as u16,
            ip_version: 0,
            ip_proto: 0,
            src: None,
            dst: None,
            src_port: 0,
            dst_port: 0,
            direction: 0,
            app: 0,
            flow_key: 0,
            frame: frame.data,
        };
        let Some(ip) = pkt.ip else {
            return r;
        };
        let (sp, dp) = pkt.ports().unwrap_or((0, 0));
        r.ip_version = ip.version;
        r.ip_proto = ip.protocol;
        r.src = Some(ip.src);
        r.dst = Some(ip.dst);
        r.src_port = sp;
        r.dst_port = dp;
        // Fragments after the first carry no ports: every fragment is keyed
        // by the address pair, so a datagram's pieces meet on one partition.
        let fragment = ip.fragment.is_some();
        let (kp, kq) = if fragment { (0, 0) } else { (sp, dp) };
        let mut key = flow_key_hash(ip.protocol, (ip.src, kp), (ip.dst, kq));
        if self.vlan_in_key && pkt.vlan[0] != 0 {
            key ^= (pkt.vlan[0] as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        r.flow_key = key;
        if !self.local_net.is_empty() {
            r.direction = match self.local_net.direction(ip.src, ip.dst, true) {
                flow::Direction::Up => 1,
                flow::Direction::Down => 2,
                flow::Direction::Local => 3,
                flow::Direction::Transit => 4,
            };
        }
        let has_payload = !pkt.payload.is_empty();
        let whole = self
            .window
            .whole(key, frame.ts_ns, pkt.tcp().map(|t| t.flags), has_payload);
        if whole || pkt.malformed.is_some() {
            if has_payload {
                r.app = decode::app::inspect(&pkt).map_or(0, |h| 1 + h.protocol_index() as u8);
            }
            return r;
        }
        if let Some(cut) = payload_offset(&pkt, frame.data) {
            r.frame = &frame.data[..cut];
        }
        r
    }
}

/// Where the transport payload starts in `data` (None: no payload slice
/// inside the frame).
fn payload_offset(pkt: &Packet<'_>, data: &[u8]) -> Option<usize> {
    if matches!(pkt.transport, Transport::None) || pkt.payload.is_empty() {
        return None;
    }
    let base = data.as_ptr() as usize;
    let p = pkt.payload.as_ptr() as usize;
    (p >= base && p <= base + data.len()).then(|| p - base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_same_both_ways_and_differs_between_flows() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            flow_key_hash(6, (a, 40000), (b, 443)),
            flow_key_hash(6, (b, 443), (a, 40000))
        );
        assert_ne!(
            flow_key_hash(6, (a, 40000), (b, 443)),
            flow_key_hash(6, (a, 40001), (b, 443))
        );
        assert_ne!(
            flow_key_hash(6, (a, 40000), (b, 443)),
            flow_key_hash(17, (a, 40000), (b, 443))
        );
        // FNV-1a of the documented bytes, computed independently.
        let mut h: u64 = 0xcbf29ce484222325;
        let mut bytes = vec![6u8];
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
        bytes.extend_from_slice(&40000u16.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7]);
        bytes.extend_from_slice(&443u16.to_be_bytes());
        for x in bytes {
            h = (h ^ x as u64).wrapping_mul(0x100000001b3);
        }
        assert_eq!(flow_key_hash(6, (a, 40000), (b, 443)), h);
    }

    #[test]
    fn the_window_restarts_where_the_flow_table_starts_a_new_flow() {
        let cfg = flow::FlowConfig::default();
        let mut w = PayloadWindow::new(&cfg, 4);
        let n = w.packets;
        let s = 1_000_000_000u64;
        let mut t = s;
        for _ in 0..n {
            assert!(w.whole(7, t, Some(tcp_flags::ACK), true));
            t += 1000;
        }
        assert!(!w.whole(7, t, Some(tcp_flags::ACK), true));
        // Headers-only packets do not use up the window.
        assert!(!w.whole(7, t, Some(tcp_flags::ACK), false));
        // A bare SYN: a new connection on the same five-tuple.
        assert!(w.whole(7, t + 1, Some(tcp_flags::SYN), true));
        for _ in 0..n {
            w.whole(7, t + 2, None, true);
        }
        assert!(!w.whole(7, t + 3, None, true));
        // Idle for the idle timeout: a new flow.
        assert!(w.whole(7, t + 3 + cfg.idle_timeout_ns, None, true));
        // FIN, then a packet after the linger: a new flow.
        let t2 = t + 3 + cfg.idle_timeout_ns;
        for _ in 0..n {
            w.whole(7, t2, Some(tcp_flags::ACK), true);
        }
        w.whole(7, t2 + 1, Some(tcp_flags::FIN | tcp_flags::ACK), true);
        assert!(!w.whole(7, t2 + 2, Some(tcp_flags::ACK), true));
        assert!(w.whole(7, t2 + 1 + cfg.close_linger_ns, Some(tcp_flags::ACK), true));
        // Another key in the same slot starts over (more payload, never less).
        assert!(w.whole(7 + 16, t2 + 10_000_000_000, None, true));
    }
}

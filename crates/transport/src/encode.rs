//! From a captured frame to its packet record: decode once, key by the
//! canonical five-tuple, and keep only the bytes the analysis needs.
//!
//! The analysis node runs the same stages on the record's frame as a local
//! run does on the whole frame. Headers decide everything but application
//! recognition, which reads the payload of the payload packets the flow
//! table inspects (`flow::FlowConfig::inspect_packets` of them once the
//! flow's protocol is recognised, 4× that while nothing is, or while an RTP
//! header waits for its confirmation) and of a flow's first QUIC client
//! Initials. So a record carries the whole captured frame for exactly
//! those packets, which [`PayloadWindow`] tells by following the table's
//! rule with the same recognisers, and the headers alone for the rest: the
//! same answers for a fraction of the bytes.

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

/// Which payload packets of each flow the analysis node's flow table will
/// inspect, in a fixed table indexed by the flow key hash (bounded memory,
/// no allocation per packet). Per flow it follows the table's rule
/// (`flow::FlowConfig::inspection_window`, the same function): a payload
/// packet is inspected while fewer than the window have been; what was
/// recognised is folded in as
/// `flow::AppInfo::merge` does (an RTP header counts once a second packet
/// continues its stream). A flow starts again, as the flow table starts a
/// new flow, on a bare SYN, after the idle timeout, after the active
/// timeout, and after a FIN or RST plus the close linger. A slot taken
/// over by another flow starts that flow over: collisions only ever send
/// *more* payload than needed.
pub struct PayloadWindow {
    slots: Vec<Slot>,
    mask: usize,
    /// The flow table's configuration: its timeouts and inspection window.
    cfg: flow::FlowConfig,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    start_ns: u64,
    last_ns: u64,
    /// Time of the first FIN or RST (0: none).
    closing_ns: u64,
    /// Payload packets the table has inspected.
    inspected: u8,
    /// A protocol was recognised (the table's `app.detected`).
    detected: bool,
    /// RTP confirmed by a second packet of its stream.
    rtp_confirmed: bool,
    /// QUIC Initials sent whole.
    quic_initials: u8,
    rtp: flow::RtpCandidates,
}

/// QUIC Initials sent whole per flow, either direction (which end is the
/// client is the table's to say): the table reads up to
/// [`flow::QUIC_INITIALS`] of the client's.
const QUIC_INITIALS_WHOLE: u8 = 2 * flow::QUIC_INITIALS;

/// What [`PayloadWindow::admit`] decided for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Send the whole frame.
    pub whole: bool,
    /// The table will inspect its payload: report what it recognises with
    /// [`PayloadWindow::recognised`].
    pub inspected: bool,
}

impl PayloadWindow {
    /// `slots_log2`: table of 2^n slots (18: 262,144 slots of 64 bytes, 16 MB).
    pub fn new(cfg: &flow::FlowConfig, slots_log2: u32) -> PayloadWindow {
        let n = 1usize << slots_log2;
        PayloadWindow {
            slots: vec![Slot::default(); n],
            mask: n - 1,
            cfg: cfg.clone(),
        }
    }

    /// Whether this packet of flow `key` goes whole, and whether the table
    /// will inspect it. `payload`: the packet has transport payload;
    /// `quic_initial`: it is a UDP datagram holding a QUIC Initial.
    pub fn admit(
        &mut self,
        key: u64,
        ts_ns: u64,
        tcp_flags_seen: Option<u8>,
        payload: bool,
        quic_initial: bool,
    ) -> Admission {
        let s = &mut self.slots[key as usize & self.mask];
        let syn_only =
            tcp_flags_seen.is_some_and(|f| f & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN);
        let restart = s.key != key
            || syn_only
            || ts_ns.saturating_sub(s.last_ns) >= self.cfg.idle_timeout_ns
            || ts_ns.saturating_sub(s.start_ns) >= self.cfg.active_timeout_ns
            || (s.closing_ns != 0
                && ts_ns.saturating_sub(s.closing_ns) >= self.cfg.close_linger_ns);
        if restart {
            *s = Slot {
                key,
                start_ns: ts_ns,
                last_ns: ts_ns,
                ..Slot::default()
            };
        }
        s.last_ns = s.last_ns.max(ts_ns);
        if s.closing_ns == 0
            && tcp_flags_seen.is_some_and(|f| f & (tcp_flags::FIN | tcp_flags::RST) != 0)
        {
            s.closing_ns = ts_ns.max(1);
        }
        let mut a = Admission {
            whole: false,
            inspected: false,
        };
        if !payload {
            return a;
        }
        if s.inspected < self.cfg.inspection_window(s.detected, s.rtp.pending()) {
            s.inspected += 1;
            a = Admission {
                whole: true,
                inspected: true,
            };
        }
        if quic_initial && s.quic_initials < QUIC_INITIALS_WHOLE {
            s.quic_initials += 1;
            a.whole = true;
        }
        a
    }

    /// Folds in what the recogniser found in a packet [`admit`](Self::admit)
    /// said the table inspects, as `flow::AppInfo::merge` does.
    pub fn recognised(&mut self, key: u64, hint: Option<&decode::app::AppHint<'_>>) {
        let s = &mut self.slots[key as usize & self.mask];
        if s.key != key {
            return;
        }
        match hint {
            Some(&decode::app::AppHint::Rtp {
                payload_type,
                seq,
                ssrc,
            }) if s.rtp_confirmed || s.rtp.confirms(ssrc, seq, payload_type) => {
                s.rtp_confirmed = true;
                s.detected = true;
            }
            // An RTP header still unconfirmed became a candidate above.
            Some(decode::app::AppHint::Rtp { .. }) => {}
            Some(_) => s.detected = true,
            None => {}
        }
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
        let quic_initial = has_payload
            && matches!(pkt.transport, Transport::Udp { .. })
            && decode::quic_initial::is_initial(pkt.payload);
        let admitted = self.window.admit(
            key,
            frame.ts_ns,
            pkt.tcp().map(|t| t.flags),
            has_payload,
            quic_initial,
        );
        // A frame whose IP length comes from the capture keeps its length
        // only whole.
        if admitted.whole || pkt.malformed.is_some() || ip.length_from_capture {
            if has_payload {
                let hint = decode::app::inspect(&pkt);
                if admitted.inspected {
                    self.window.recognised(key, hint.as_ref());
                }
                r.app = hint.map_or(0, |h| 1 + h.protocol_index() as u8);
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
        let whole =
            |w: &mut PayloadWindow, key, t, f, payload| w.admit(key, t, f, payload, false).whole;
        // Nothing recognised: the table inspects 4× inspect_packets.
        let n = 4 * cfg.inspect_packets as usize;
        let s = 1_000_000_000u64;
        let mut t = s;
        for _ in 0..n {
            assert!(whole(&mut w, 7, t, Some(tcp_flags::ACK), true));
            t += 1000;
        }
        assert!(!whole(&mut w, 7, t, Some(tcp_flags::ACK), true));
        // Headers-only packets do not use up the window.
        assert!(!whole(&mut w, 7, t, Some(tcp_flags::ACK), false));
        // A bare SYN: a new connection on the same five-tuple.
        assert!(whole(&mut w, 7, t + 1, Some(tcp_flags::SYN), true));
        for _ in 0..n {
            whole(&mut w, 7, t + 2, None, true);
        }
        assert!(!whole(&mut w, 7, t + 3, None, true));
        // Idle for the idle timeout: a new flow.
        assert!(whole(&mut w, 7, t + 3 + cfg.idle_timeout_ns, None, true));
        // FIN, then a packet after the linger: a new flow.
        let t2 = t + 3 + cfg.idle_timeout_ns;
        for _ in 0..n {
            whole(&mut w, 7, t2, Some(tcp_flags::ACK), true);
        }
        whole(
            &mut w,
            7,
            t2 + 1,
            Some(tcp_flags::FIN | tcp_flags::ACK),
            true,
        );
        assert!(!whole(&mut w, 7, t2 + 2, Some(tcp_flags::ACK), true));
        assert!(whole(
            &mut w,
            7,
            t2 + 1 + cfg.close_linger_ns,
            Some(tcp_flags::ACK),
            true
        ));
        // Another key in the same slot starts over (more payload, never less).
        assert!(whole(&mut w, 7 + 16, t2 + 10_000_000_000, None, true));
    }

    /// The window shrinks to inspect_packets once something is recognised,
    /// as the flow table's does, and stays wide while an RTP header waits
    /// for the packet that confirms it.
    #[test]
    fn the_window_follows_what_the_table_recognises() {
        use decode::app::AppHint;
        let cfg = flow::FlowConfig::default();
        let k = cfg.inspect_packets as usize;
        let mut w = PayloadWindow::new(&cfg, 4);
        let a = w.admit(3, 1, None, true, false);
        assert_eq!(
            a,
            Admission {
                whole: true,
                inspected: true
            }
        );
        w.recognised(3, Some(&AppHint::Skinny));
        for i in 1..k {
            assert!(w.admit(3, 1 + i as u64, None, true, false).inspected, "{i}");
        }
        assert!(!w.admit(3, 100, None, true, false).whole);
        // A QUIC Initial beyond the window still goes whole, not inspected.
        let q = w.admit(3, 101, None, true, true);
        assert_eq!(
            q,
            Admission {
                whole: true,
                inspected: false
            }
        );

        // An RTP header alone recognises nothing; its confirmation does.
        let rtp = |seq| AppHint::Rtp {
            payload_type: 111,
            seq,
            ssrc: 9,
        };
        w.admit(5, 1, None, true, false);
        w.recognised(5, Some(&rtp(1)));
        for i in 1..k {
            w.admit(5, 1 + i as u64, None, true, false);
            w.recognised(5, None);
        }
        assert!(
            w.admit(5, 50, None, true, false).inspected,
            "pending RTP keeps the window wide"
        );
        w.recognised(5, Some(&rtp(2)));
        assert!(
            !w.admit(5, 51, None, true, false).whole,
            "confirmed: the window is {k}"
        );
        // A recogniser's answer for a flow whose slot was taken is dropped.
        w.recognised(5 + 16, Some(&AppHint::Skinny));
    }
}

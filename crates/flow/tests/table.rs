//! Flow table behaviour on hand-built packets, against closed-form expectations.

use capture::LinkType;
use flow::{EndReason, FlowConfig, FlowRecord, FlowTable};

const S: u64 = 1_000_000_000;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

/// Ethernet + IPv4 + TCP (flags) or UDP (flags = None) with `payload` bytes.
fn frame(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    tcp: Option<u8>,
    payload: usize,
) -> Vec<u8> {
    frame_frag(src, sport, dst, dport, tcp, payload, 0, false, 1)
}

#[allow(clippy::too_many_arguments)]
fn frame_frag(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    tcp: Option<u8>,
    payload: usize,
    frag_offset: u16,
    more: bool,
    id: u16,
) -> Vec<u8> {
    let l4 = if tcp.is_some() { 20 } else { 8 };
    let has_l4 = frag_offset == 0;
    let ip_payload = if has_l4 { l4 + payload } else { payload };
    let mut f = vec![0u8; 14];
    f[12] = 0x08;
    let total = 20 + ip_payload;
    let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8];
    ip.extend_from_slice(&id.to_be_bytes());
    let fo = (frag_offset / 8) | if more { 0x2000 } else { 0 };
    ip.extend_from_slice(&fo.to_be_bytes());
    ip.extend_from_slice(&[64, if tcp.is_some() { 6 } else { 17 }, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    f.extend_from_slice(&ip);
    if has_l4 {
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        match tcp {
            Some(flags) => {
                f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            }
            None => {
                let ulen = (8 + payload) as u16;
                f.extend_from_slice(&ulen.to_be_bytes());
                f.extend_from_slice(&[0, 0]);
            }
        }
    }
    f.extend(std::iter::repeat_n(0xab, payload));
    f
}

struct Run {
    table: FlowTable,
    out: Vec<FlowRecord>,
}

impl Run {
    fn new(cfg: FlowConfig) -> Self {
        Run {
            table: FlowTable::new(cfg),
            out: Vec::new(),
        }
    }
    fn feed(&mut self, ts: u64, f: &[u8]) -> Option<flow::Placement> {
        let pkt = decode::decode(LinkType::ETHERNET, f);
        let out = &mut self.out;
        self.table
            .process(&pkt, ts, f.len() as u32, &mut |r| out.push(r))
    }
    fn finish(mut self) -> Vec<FlowRecord> {
        let out = &mut self.out;
        self.table.flush(&mut |r| out.push(r));
        self.out
    }
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const C: [u8; 4] = [10, 0, 0, 3];

#[test]
fn idle_timeout_splits_on_capture_time() {
    let mut r = Run::new(FlowConfig::default());
    let u = |p| frame(A, 5000, B, 53, None, p);
    r.feed(0, &u(10));
    r.feed(S, &u(10));
    r.feed(121 * S + 1, &u(10)); // 120 s after the last packet → new flow
    assert_eq!(
        r.out.len(),
        1,
        "the first flow is emitted when time passes its idle deadline"
    );
    assert_eq!(r.out[0].end_reason, EndReason::Idle);
    assert_eq!(r.out[0].packets(), 2);
    let all = r.finish();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].end_reason, EndReason::EndOfInput);
    assert_eq!(all[1].packets(), 1);
}

#[test]
fn active_timeout_restarts_long_flows() {
    let mut r = Run::new(FlowConfig::default());
    for i in 0..200u64 {
        r.feed(i * 10 * S, &frame(A, 5000, B, 9000, None, 100));
    }
    let all = r.finish();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].end_reason, EndReason::Active);
    // Packets at 0, 10, …, 1790 s belong to the first record.
    assert_eq!(all[0].packets(), 180);
    assert_eq!(all[1].packets(), 20);
}

#[test]
fn fin_both_ways_ends_the_flow_and_keeps_the_last_ack() {
    let mut r = Run::new(FlowConfig::default());
    r.feed(0, &frame(A, 40000, B, 80, Some(SYN), 0));
    r.feed(S / 100, &frame(B, 80, A, 40000, Some(SYN | ACK), 0));
    r.feed(2 * S / 100, &frame(A, 40000, B, 80, Some(ACK), 0));
    r.feed(3 * S / 100, &frame(A, 40000, B, 80, Some(ACK), 500));
    r.feed(4 * S / 100, &frame(B, 80, A, 40000, Some(FIN | ACK), 0));
    r.feed(5 * S / 100, &frame(A, 40000, B, 80, Some(FIN | ACK), 0));
    r.feed(6 * S / 100, &frame(B, 80, A, 40000, Some(ACK), 0));
    // Same ports reused by a new connection after the close.
    r.feed(10 * S, &frame(A, 40000, B, 80, Some(SYN), 0));
    assert_eq!(r.out.len(), 1);
    let f = &r.out[0];
    assert_eq!(f.end_reason, EndReason::Fin);
    assert_eq!((f.fwd.packets, f.bwd.packets), (4, 3), "last ACK counted");
    assert_eq!(f.src_port, 40000, "the SYN sender is the initiator");
    assert_eq!(f.fwd.tcp_flags[1], 1, "one SYN forward");
    assert_eq!(f.fwd.payload_bytes, 500);
    let all = r.finish();
    assert_eq!(all.len(), 2);
}

#[test]
fn timestamps_at_the_end_of_time_do_not_overflow_the_timers() {
    // A fuzzed pcapng gave a RST at a capture time within the 5 s linger of
    // u64::MAX: the close deadline must saturate, not overflow.
    let mut r = Run::new(FlowConfig::default());
    let t = u64::MAX - S;
    r.feed(t, &frame(A, 40001, B, 443, Some(SYN), 0));
    r.feed(t + 1, &frame(B, 443, A, 40001, Some(RST | ACK), 0));
    r.feed(u64::MAX, &frame(A, 40002, B, 443, Some(FIN | ACK), 0));
    r.feed(u64::MAX, &frame(B, 443, A, 40002, Some(FIN | ACK), 0));
    let all = r.finish();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].end_reason, EndReason::Rst);
    assert_eq!(all[1].end_reason, EndReason::Fin);
}

#[test]
fn rst_ends_the_flow() {
    let mut r = Run::new(FlowConfig::default());
    r.feed(0, &frame(A, 40001, B, 443, Some(SYN), 0));
    r.feed(S / 10, &frame(B, 443, A, 40001, Some(RST | ACK), 0));
    r.feed(10 * S, &frame(C, 1, C, 2, None, 1)); // unrelated, advances time past the linger
    assert_eq!(r.out.len(), 1);
    assert_eq!(r.out[0].end_reason, EndReason::Rst);
}

#[test]
fn max_flows_evicts_least_recently_seen_and_counts_it() {
    let cfg = FlowConfig {
        max_flows: 2,
        ..FlowConfig::default()
    };
    let mut r = Run::new(cfg);
    r.feed(0, &frame(A, 1001, B, 53, None, 1));
    r.feed(1, &frame(A, 1002, B, 53, None, 1));
    r.feed(2, &frame(A, 1001, B, 53, None, 1)); // 1001 is now the most recent
    r.feed(3, &frame(A, 1003, B, 53, None, 1)); // evicts 1002
    assert_eq!(r.out.len(), 1);
    assert_eq!(r.out[0].src_port, 1002);
    assert_eq!(r.out[0].end_reason, EndReason::Evicted);
    assert_eq!(r.table.stats().evicted, 1);
    assert!(r.table.len() <= 2);
}

#[test]
fn syn_ack_first_makes_the_destination_the_initiator() {
    let mut r = Run::new(FlowConfig::default());
    let p = r
        .feed(0, &frame(B, 443, A, 50000, Some(SYN | ACK), 0))
        .unwrap();
    assert!(!p.forward);
    let all = r.finish();
    assert_eq!((all[0].src_port, all[0].dst_port), (50000, 443));
    assert_eq!((all[0].fwd.packets, all[0].bwd.packets), (0, 1));
}

#[test]
fn statistics_match_closed_form() {
    let mut r = Run::new(FlowConfig::default());
    // Forward frame sizes 14+20+8+p for p = 10, 20, 30, 40 at 0, 1, 3, 6 ms.
    for (t, p) in [(0u64, 10usize), (1, 20), (3, 30), (6, 40)] {
        r.feed(t * 1_000_000, &frame(A, 3000, B, 4000, None, p));
    }
    let f = &r.finish()[0];
    let sizes = [52.0, 62.0, 72.0, 82.0];
    let mean = sizes.iter().sum::<f64>() / 4.0;
    let var = sizes.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0;
    assert_eq!(f.fwd.size.mean, mean);
    assert!((f.fwd.size.std - var.sqrt()).abs() < 1e-9);
    assert_eq!((f.fwd.size.min, f.fwd.size.max), (52.0, 82.0));
    // Inter-arrival times 1, 2, 3 ms.
    assert!((f.fwd.iat_us.mean - 2000.0).abs() < 1e-9);
    assert_eq!(f.first_sizes, vec![52, 62, 72, 82]);
    assert_eq!(f.first_iats_us, vec![0.0, 1000.0, 2000.0, 3000.0]);
    assert_eq!(f.fwd.bytes, 268);
}

#[test]
fn fragments_join_the_flow_of_their_first_fragment() {
    let mut r = Run::new(FlowConfig::default());
    r.feed(0, &frame_frag(A, 7000, B, 7001, None, 1472, 0, true, 99));
    r.feed(1, &frame_frag(A, 0, B, 0, None, 600, 1480, false, 99));
    let all = r.finish();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].fragments, 2);
    assert_eq!(all[0].fwd.packets, 2);
    assert_eq!((all[0].src_port, all[0].dst_port), (7000, 7001));
}

#[test]
fn memory_stays_bounded_under_many_flows() {
    let cfg = FlowConfig {
        max_flows: 1000,
        ..FlowConfig::default()
    };
    let mut r = Run::new(cfg);
    for i in 0..50_000u32 {
        let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        r.feed(i as u64, &frame(src, 1234, B, 80, None, 1));
        assert!(r.table.len() <= 1000);
    }
    assert_eq!(r.table.stats().evicted, 49_000);
    assert_eq!(r.out.len(), 49_000);
}

#[test]
fn snapshot_is_the_record_the_flow_would_end_with_so_far() {
    // The packets of one TCP conversation, a UDP flow interleaved.
    let tcp = [
        (0, frame(A, 40000, B, 80, Some(SYN), 0)),
        (S / 100, frame(B, 80, A, 40000, Some(SYN | ACK), 0)),
        (2 * S / 100, frame(A, 40000, B, 80, Some(ACK), 0)),
        (3 * S / 100, frame(A, 40000, B, 80, Some(ACK), 300)),
        (4 * S / 100, frame(C, 5000, B, 53, None, 40)),
        (S / 2, frame(B, 80, A, 40000, Some(ACK), 1400)),
        (S, frame(B, 80, A, 40000, Some(ACK), 700)),
        (2 * S, frame(A, 40000, B, 80, Some(RST), 0)),
    ];
    let mut live = Run::new(FlowConfig::default());
    let mut placements = Vec::new();
    for (n, (ts, f)) in tcp.iter().enumerate() {
        let placed = live.feed(*ts, f).unwrap();
        // Oracle: a fresh table fed the same packets and flushed now.
        let mut prefix = Run::new(FlowConfig::default());
        for (t, g) in &tcp[..=n] {
            prefix.feed(*t, g);
        }
        let ended = prefix.finish();
        let mut want = ended
            .into_iter()
            .find(|r| r.id == placed.flow_id)
            .expect("the flushed table has the flow");
        want.end_reason = EndReason::EndOfInput;
        assert_eq!(live.table.snapshot(&placed), Some(want), "after packet {n}");
        assert_eq!(
            live.table.app_of(&placed),
            live.table.snapshot(&placed).as_ref().map(|r| &r.app)
        );
        placements.push(placed);
    }
    // The RST ends the TCP flow after the close linger: its placements go
    // stale; the UDP flow's stays.
    live.table.advance_to(10 * S, &mut |_| {});
    let udp = placements.remove(4);
    assert!(placements.iter().all(|p| live.table.snapshot(p).is_none()));
    assert!(placements.iter().all(|p| live.table.app_of(p).is_none()));
    assert_eq!(live.table.snapshot(&udp).unwrap().packets(), 1);
    // A new flow reusing the freed slot is not mistaken for the old one.
    let placed = live
        .feed(11 * S, &frame(A, 40001, B, 80, Some(SYN), 0))
        .unwrap();
    assert_eq!(live.table.snapshot(&placed).unwrap().packets(), 1);
    assert!(live.table.snapshot(&placements[0]).is_none());
}

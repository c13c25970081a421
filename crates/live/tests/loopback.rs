//! Real traffic on the loopback device, on `lo` and on `any`.

#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use live::{
    CookedHeader, LiveConfig, PacketDirection, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
};

const N: u32 = 200;

fn size_of_seq(seq: u32) -> usize {
    16 + (seq as usize * 37) % 1400
}

/// Sends N datagrams to a bound receiver on 127.0.0.1 and returns its port.
fn send_udp(tag: u32) -> u16 {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..N {
        tx.send_to(&payload(tag, seq, size_of_seq(seq)), ("127.0.0.1", port))
            .unwrap();
        if seq % 50 == 49 {
            // Let the receiver keep up so its queue never overflows.
            let mut buf = [0u8; 2048];
            rx.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            while rx.recv(&mut buf).is_ok() {}
        }
    }
    port
}

/// Collects this test's datagrams from `frames` (IP header at `ip_off`):
/// seq -> list of (frame index) occurrences.
fn matches(frames: &[Captured], ip_off: usize, tag: u32, port: u16) -> HashMap<u32, Vec<usize>> {
    let mut m: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, f) in frames.iter().enumerate() {
        if let Some(u) = udp4(&f.data, ip_off) {
            if u.dport != port {
                continue;
            }
            if let Some((seq, _)) = parse_payload(u.payload, tag) {
                m.entry(seq).or_default().push(i);
            }
        }
    }
    m
}

#[test]
fn lo_sees_each_datagram_once_with_exact_lengths() {
    let mut cfg = LiveConfig::new("lo");
    cfg.block_timeout_ms = 20;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    assert_eq!(cap.linktype(), LINKTYPE_ETHERNET);
    let t0 = now_ns();
    let tag = tag();
    let port = send_udp(tag);
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(10), |fr| {
        matches(fr, 14, tag, port).len() as u32 >= N
    });
    // Anything late (a duplicate) would show up within a block timeout.
    collect_until(&mut cap, &mut frames, Duration::from_millis(200), |_| false);
    let t1 = now_ns();

    let m = matches(&frames, 14, tag, port);
    assert_eq!(m.len() as u32, N, "every datagram captured");
    let mut last_ts = 0;
    for seq in 0..N {
        let idx = &m[&seq];
        assert_eq!(idx.len(), 1, "datagram {seq} seen {} times", idx.len());
        let f = &frames[idx[0]];
        let expect = (14 + 20 + 8 + size_of_seq(seq)) as u32;
        assert_eq!(f.caplen, expect, "caplen of {seq}");
        assert_eq!(f.wire_len, expect, "wire_len of {seq}");
        assert_eq!(f.data.len() as u32, f.caplen);
        assert_eq!(&f.data[12..14], &[0x08, 0x00], "EtherType IPv4");
        assert_eq!(f.protocol, 0x0800);
        assert_eq!(
            f.direction,
            PacketDirection::Incoming,
            "lo keeps the received copy"
        );
        assert!(
            f.ts_ns >= t0 && f.ts_ns <= t1,
            "timestamp {} outside [{t0}, {t1}]",
            f.ts_ns
        );
        assert!(f.ts_ns >= last_ts, "timestamps monotone");
        last_ts = f.ts_ns;
        let u = udp4(&f.data, 14).unwrap();
        assert_eq!(u.payload, &payload(tag, seq, size_of_seq(seq))[..]);
    }
    let st = cap.stats();
    assert_eq!(st.dropped, 0);
    assert!(st.received >= u64::from(N), "received {}", st.received);
    assert!(st.delivered >= u64::from(N));
    // Totals accumulate even though the kernel resets them on every read.
    let st2 = cap.stats();
    assert!(st2.received >= st.received);
}

/// The loopback device's interface index, as the kernel publishes it.
fn lo_ifindex() -> i32 {
    std::fs::read_to_string("/sys/class/net/lo/ifindex")
        .expect("/sys/class/net/lo/ifindex")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn any_gives_sll2_frames_without_loopback_duplicates() {
    let mut cfg = LiveConfig::new("any");
    cfg.block_timeout_ms = 20;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    assert_eq!(cap.linktype(), LINKTYPE_LINUX_SLL2);
    let tag = tag();
    let port = send_udp(tag);
    // And one IPv6 datagram when ::1 is usable.
    let v6 = UdpSocket::bind("[::1]:0").ok().and_then(|rx| {
        let p = rx.local_addr().ok()?.port();
        let tx = UdpSocket::bind("[::1]:0").ok()?;
        tx.send_to(&payload(tag, 9999, 40), ("::1", p)).ok()?;
        Some((rx, p))
    });
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(10), |fr| {
        matches(fr, 20, tag, port).len() as u32 >= N
    });
    collect_until(&mut cap, &mut frames, Duration::from_millis(200), |_| false);

    let lo = lo_ifindex();
    let m = matches(&frames, 20, tag, port);
    assert_eq!(m.len() as u32, N);
    for seq in 0..N {
        let idx = &m[&seq];
        assert_eq!(
            idx.len(),
            1,
            "datagram {seq} seen {} times on any",
            idx.len()
        );
        let f = &frames[idx[0]];
        let expect = (20 + 20 + 8 + size_of_seq(seq)) as u32;
        assert_eq!((f.caplen, f.wire_len), (expect, expect));
        let h = &f.data;
        assert_eq!(&h[0..2], &[0x08, 0x00], "protocol IPv4");
        assert_eq!(&h[2..4], &[0, 0], "reserved");
        assert_eq!(
            i32::from_be_bytes(h[4..8].try_into().unwrap()),
            lo,
            "ifindex"
        );
        assert_eq!(u16::from_be_bytes([h[8], h[9]]), 772, "ARPHRD_LOOPBACK");
        assert_eq!(h[10], 0, "sll_pkttype PACKET_HOST");
        assert_eq!(h[11], 6, "address length");
        assert_eq!(&h[12..20], &[0; 8], "lo's all-zero MAC, zero padded");
        assert_eq!(f.protocol, 0x0800);
        assert_eq!(f.ifindex, lo);
    }
    if let Some((_rx, p6)) = v6 {
        let hit = frames.iter().find(|f| {
            f.data.len() >= 20 + 40 + 8 + 16
                && f.data[0..2] == [0x86, 0xdd]
                && u16::from_be_bytes([f.data[20 + 42], f.data[20 + 43]]) == p6
                && parse_payload(&f.data[20 + 48..], tag).is_some()
        });
        let f = hit.expect("IPv6 datagram on any");
        assert_eq!(f.protocol, 0x86dd);
        assert_eq!(i32::from_be_bytes(f.data[4..8].try_into().unwrap()), lo);
    }
    assert_eq!(cap.stats().dropped, 0);
}

#[test]
fn any_gives_sll_v1_frames_on_request() {
    let mut cfg = LiveConfig::new("any");
    cfg.block_timeout_ms = 20;
    cfg.cooked_header = CookedHeader::Sll;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    assert_eq!(cap.linktype(), LINKTYPE_LINUX_SLL);
    let tag = tag();
    let port = send_udp(tag);
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(10), |fr| {
        matches(fr, 16, tag, port).len() as u32 >= N
    });
    collect_until(&mut cap, &mut frames, Duration::from_millis(200), |_| false);

    let m = matches(&frames, 16, tag, port);
    assert_eq!(m.len() as u32, N);
    for seq in 0..N {
        let idx = &m[&seq];
        assert_eq!(idx.len(), 1, "datagram {seq} seen {} times", idx.len());
        let f = &frames[idx[0]];
        let expect = (16 + 20 + 8 + size_of_seq(seq)) as u32;
        assert_eq!((f.caplen, f.wire_len), (expect, expect));
        let h = &f.data;
        assert_eq!(
            u16::from_be_bytes([h[0], h[1]]),
            0,
            "sll_pkttype PACKET_HOST"
        );
        assert_eq!(u16::from_be_bytes([h[2], h[3]]), 772, "ARPHRD_LOOPBACK");
        assert_eq!(u16::from_be_bytes([h[4], h[5]]), 6, "address length");
        assert_eq!(&h[6..14], &[0; 8]);
        assert_eq!(&h[14..16], &[0x08, 0x00], "protocol IPv4");
        assert_eq!(f.protocol, 0x0800);
        assert_eq!(f.ifindex, lo_ifindex());
    }
}

#[test]
fn snaplen_on_any_counts_the_cooked_header() {
    for (hdr, hl) in [(CookedHeader::Sll2, 20), (CookedHeader::Sll, 16)] {
        let mut cfg = LiveConfig::new("any");
        // Just enough for the payload's marker, tag and sequence number.
        let snap = (hl + 20 + 8 + 16) as u32;
        cfg.snaplen = snap;
        cfg.block_timeout_ms = 20;
        cfg.cooked_header = hdr;
        let Some(mut cap) = open_or_skip(&cfg) else {
            return;
        };
        let tag = tag();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&payload(tag, 1, 500), ("127.0.0.1", port))
            .unwrap();
        let mut frames = Vec::new();
        collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
            !matches(fr, hl, tag, port).is_empty()
        });
        let m = matches(&frames, hl, tag, port);
        let f = &frames[m[&1][0]];
        assert_eq!(f.caplen, snap, "{hdr:?}");
        assert_eq!(f.wire_len as usize, hl + 20 + 8 + 500, "{hdr:?}");
    }
}

#[test]
fn stop_handle_wakes_a_blocked_next_batch() {
    let mut cfg = LiveConfig::new("lo");
    // A filter that rejects everything keeps the ring empty.
    cfg.filter = Some(vec![live::BpfInsn::new(0x06, 0, 0, 0)]);
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    let h = cap.stop_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        h.stop();
    });
    let start = std::time::Instant::now();
    let n = cap
        .next_batch(Duration::from_secs(30), &mut |_| {
            panic!("filter rejects all")
        })
        .unwrap();
    assert_eq!(n, 0);
    assert!(cap.is_stopped());
    assert!(start.elapsed() < Duration::from_secs(5), "woken by stop");
    // Once stopped it never blocks.
    let start = std::time::Instant::now();
    cap.next_batch(Duration::from_secs(30), &mut |_| {})
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    t.join().unwrap();
}

#[test]
fn stats_count_kernel_drops_when_the_ring_is_full() {
    let mut cfg = LiveConfig::new("lo");
    cfg.snaplen = 256;
    cfg.block_size = 64 * 1024;
    cfg.block_count = 2;
    cfg.block_timeout_ms = 10;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    let tag = tag();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 3000u32;
    // Nobody reads the ring meanwhile: it holds a few hundred frames at most.
    for seq in 0..sent {
        tx.send_to(&payload(tag, seq, 200), ("127.0.0.1", port))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let st = cap.stats();
    assert!(st.dropped > 0, "ring overflow counted: {st:?}");
    assert!(st.freeze_queue > 0, "queue freezes counted: {st:?}");
    assert!(
        st.received >= u64::from(sent),
        "tp_packets includes drops: {st:?}"
    );
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_millis(300), |_| false);
    let ours = matches(&frames, 14, tag, port);
    assert!(ours.len() < sent as usize);
    assert!(ours.values().all(|v| v.len() == 1));
    let st2 = cap.stats();
    assert!(
        st2.dropped >= st.dropped && st2.received >= st.received,
        "running totals"
    );
    assert!(st2.delivered as usize >= ours.len());
    // Everything that passed the filter was either delivered or dropped.
    assert!(st2.delivered + st2.dropped <= st2.received);
}

/// Sends 20 datagrams of 300 bytes to `port` and 20 to another port, from
/// a fresh socket on 127.0.0.1.
fn send_pairs(tag: u32, port: u16) {
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    for seq in 0..20 {
        tx.send_to(&payload(tag, seq, 300), ("127.0.0.1", port))
            .unwrap();
        tx.send_to(&payload(tag, seq, 300), ("127.0.0.1", other_port))
            .unwrap();
    }
}

#[test]
fn sll2_filter_on_any_runs_in_the_kernel() {
    use live::BpfInsn;
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    let lo = lo_ifindex() as u32;
    // Written against the 20-byte SLL2 header: not outgoing, seen on lo,
    // loopback hardware type, IPv4, UDP, destination port (20-byte IP
    // header assumed), reserved field zero.
    let prog = vec![
        BpfInsn::new(0x30, 0, 0, 10),              // 0: ldb [10] (packet type)
        BpfInsn::new(0x15, 13, 0, 4),              // 1: jeq #OUTGOING ? 15 : 2
        BpfInsn::new(0x20, 0, 0, 4),               // 2: ld [4] (ifindex)
        BpfInsn::new(0x15, 0, 11, lo),             // 3: jeq #lo ? 4 : 15
        BpfInsn::new(0x28, 0, 0, 8),               // 4: ldh [8] (hatype)
        BpfInsn::new(0x15, 0, 9, 772),             // 5: jeq #LOOPBACK ? 6 : 15
        BpfInsn::new(0x28, 0, 0, 0),               // 6: ldh [0] (protocol)
        BpfInsn::new(0x15, 0, 7, 0x0800),          // 7: jeq #IPv4 ? 8 : 15
        BpfInsn::new(0x30, 0, 0, 20 + 9),          // 8: ldb [29]
        BpfInsn::new(0x15, 0, 5, 17),              // 9: jeq #UDP ? 10 : 15
        BpfInsn::new(0x28, 0, 0, 20 + 22),         // 10: ldh [42]
        BpfInsn::new(0x15, 0, 3, u32::from(port)), // 11: jeq #port ? 12 : 15
        BpfInsn::new(0x28, 0, 0, 2),               // 12: ldh [2] (reserved)
        BpfInsn::new(0x15, 0, 1, 0),               // 13: jeq #0 ? 14 : 15
        BpfInsn::new(0x06, 0, 0, 262_144),         // 14: ret #262144
        BpfInsn::new(0x06, 0, 0, 0),               // 15: ret #0
    ];
    kernel_filtered_on_any(prog, CookedHeader::Sll2, port);
}

/// Runs `prog` (which passes host-bound IPv4 UDP to `port`) on `any` with
/// the `header` it was written for, and checks that exactly the 20 tagged
/// packets to `port` pass, once each, and that the kernel ran the filter.
fn kernel_filtered_on_any(prog: Vec<live::BpfInsn>, header: CookedHeader, port: u16) {
    let hdr = header.header_len();
    // Where each header keeps the packet type.
    let pkttype_at = match header {
        CookedHeader::Sll2 => 10,
        CookedHeader::Sll => 1,
    };
    let mut cfg = LiveConfig::new("any");
    cfg.block_timeout_ms = 20;
    cfg.snaplen = 100;
    cfg.filter = Some(prog);
    cfg.cooked_header = header;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    let tag = tag();
    send_pairs(tag, port);
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        matches(fr, hdr, tag, port).len() >= 20
    });
    collect_until(&mut cap, &mut frames, Duration::from_millis(100), |_| false);
    let m = matches(&frames, hdr, tag, port);
    assert_eq!(m.len(), 20);
    assert!(m.values().all(|v| v.len() == 1));
    for f in &frames {
        let u = udp4(&f.data, hdr).expect("only UDP passes");
        assert_eq!(u.dport, port, "only the filtered port passes");
        assert_eq!(f.data[pkttype_at], 0, "only PACKET_HOST copies pass");
        assert_eq!((f.caplen, f.wire_len), (100, hdr as u32 + 20 + 8 + 300));
    }
    // tp_packets counts what passed the filter: it ran in the kernel.
    assert_eq!(cap.stats().received, 20);
}

#[test]
fn cooked_v1_filter_on_any_runs_in_the_kernel() {
    use live::BpfInsn;
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    // Written against the 16-byte cooked header, as older tcpdump compiles
    // for `any`: not outgoing, IPv4, UDP, destination port.
    let prog = vec![
        BpfInsn::new(0x28, 0, 0, 0),               // 0: ldh [0] (packet type)
        BpfInsn::new(0x15, 7, 0, 4),               // 1: jeq #OUTGOING ? 9 : 2
        BpfInsn::new(0x28, 0, 0, 14),              // 2: ldh [14] (protocol)
        BpfInsn::new(0x15, 0, 5, 0x0800),          // 3: jeq #IPv4 ? 4 : 9
        BpfInsn::new(0x30, 0, 0, 16 + 9),          // 4: ldb [25]
        BpfInsn::new(0x15, 0, 3, 17),              // 5: jeq #UDP ? 6 : 9
        BpfInsn::new(0x28, 0, 0, 16 + 22),         // 6: ldh [38]
        BpfInsn::new(0x15, 0, 1, u32::from(port)), // 7: jeq #port ? 8 : 9
        BpfInsn::new(0x06, 0, 0, 262_144),         // 8: ret #262144
        BpfInsn::new(0x06, 0, 0, 0),               // 9: ret #0
    ];
    kernel_filtered_on_any(prog, CookedHeader::Sll, port);
}

#[test]
fn cooked_filter_reading_other_header_bytes_runs_in_user_space() {
    use live::BpfInsn;
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    // `ldb [11]` (address length) has no kernel equivalent: filtered here
    // instead, on the SLL2 frame as handed out.
    let prog = vec![
        BpfInsn::new(0x30, 0, 0, 11),              // 0: ldb [11] (halen)
        BpfInsn::new(0x15, 0, 7, 6),               // 1: jeq #6 ? 2 : 9
        BpfInsn::new(0x20, 0, 0, 12),              // 2: ld [12] (address)
        BpfInsn::new(0x15, 0, 5, 0),               // 3: jeq #0 ? 4 : 9
        BpfInsn::new(0x28, 0, 0, 0),               // 4: ldh [0]
        BpfInsn::new(0x15, 0, 3, 0x0800),          // 5: jeq #IPv4 ? 6 : 9
        BpfInsn::new(0x28, 0, 0, 20 + 22),         // 6: ldh [42]
        BpfInsn::new(0x15, 0, 1, u32::from(port)), // 7: jeq #port ? 8 : 9
        BpfInsn::new(0x06, 0, 0, 70),              // 8: ret #70
        BpfInsn::new(0x06, 0, 0, 0),               // 9: ret #0
    ];
    let mut cfg = LiveConfig::new("any");
    cfg.block_timeout_ms = 20;
    cfg.filter = Some(prog);
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    let tag = tag();
    send_pairs(tag, port);
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        matches(fr, 20, tag, port).len() >= 20
    });
    collect_until(&mut cap, &mut frames, Duration::from_millis(100), |_| false);
    assert_eq!(matches(&frames, 20, tag, port).len(), 20);
    for f in &frames {
        let u = udp4(&f.data, 20).expect("only UDP passes");
        assert_eq!(u.dport, port);
        assert_eq!(
            (f.caplen, f.wire_len),
            (70, 20 + 20 + 8 + 300),
            "ret #70 cuts"
        );
    }
    // The kernel passed everything (both ports at least); user space chose.
    let st = cap.stats();
    assert!(st.received >= 40, "{st:?}");
    assert_eq!(st.delivered as usize, frames.len());
}

#[test]
fn length_filter_on_any_counts_the_cooked_header() {
    use live::BpfInsn;
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    // `len >= 20 + 28 + 300`: the length as in the file, header included.
    // The kernel's `len` lacks the header, so this runs in user space.
    let want = (20 + 28 + 300) as u32;
    let prog = vec![
        BpfInsn::new(0x80, 0, 0, 0),               // 0: ld len
        BpfInsn::new(0x35, 0, 3, want),            // 1: jge #want ? 2 : 5
        BpfInsn::new(0x28, 0, 0, 20 + 22),         // 2: ldh [42]
        BpfInsn::new(0x15, 0, 1, u32::from(port)), // 3: jeq #port ? 4 : 5
        BpfInsn::new(0x06, 0, 0, 262_144),         // 4: ret #262144
        BpfInsn::new(0x06, 0, 0, 0),               // 5: ret #0
    ];
    let mut cfg = LiveConfig::new("any");
    cfg.block_timeout_ms = 20;
    cfg.filter = Some(prog);
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    let tag = tag();
    for seq in 0..10 {
        // 299, 300, 301, ... bytes: the first one is one byte short.
        tx.send_to(&payload(tag, seq, 299 + seq as usize), ("127.0.0.1", port))
            .unwrap();
    }
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        matches(fr, 20, tag, port).len() >= 9
    });
    collect_until(&mut cap, &mut frames, Duration::from_millis(100), |_| false);
    let m = matches(&frames, 20, tag, port);
    let mut seqs: Vec<u32> = m.keys().copied().collect();
    seqs.sort();
    assert_eq!(seqs, (1..10).collect::<Vec<_>>());
}

/// Rough throughput check (run with `--ignored --nocapture`): a sender
/// thread floods lo while the capture keeps up with the default ring.
#[test]
#[ignore]
fn throughput_on_lo() {
    let mut cfg = LiveConfig::new("lo");
    cfg.block_timeout_ms = 20;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    let n = 500_000u32;
    let sender = std::thread::spawn(move || {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = payload(1, 0, 64);
        for _ in 0..n {
            let _ = tx.send_to(&p, ("127.0.0.1", port));
        }
    });
    let start = std::time::Instant::now();
    let mut seen = 0u64;
    let mut bytes = 0u64;
    while !sender.is_finished() || start.elapsed() < Duration::from_millis(200) {
        cap.next_batch(Duration::from_millis(50), &mut |f| {
            seen += 1;
            bytes += u64::from(f.caplen);
        })
        .unwrap();
    }
    cap.next_batch(Duration::from_millis(100), &mut |_| seen += 1)
        .unwrap();
    let el = start.elapsed().as_secs_f64();
    let st = cap.stats();
    eprintln!(
        "{seen} frames ({bytes} bytes) in {el:.2}s = {:.0} frames/s; stats {st:?}",
        seen as f64 / el
    );
}

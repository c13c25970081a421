//! Real traffic across a veth pair into a network namespace.

#![cfg(target_os = "linux")]

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use live::{BpfInsn, LiveCapture, LiveConfig, LiveError, PacketDirection, LINKTYPE_ETHERNET};

fn count(frames: &[Captured], tag: u32, dir: PacketDirection, sport: u16, dport: u16) -> usize {
    frames
        .iter()
        .filter(|f| f.direction == dir)
        .filter_map(|f| udp4(&f.data, 14))
        .filter(|u| u.sport == sport && u.dport == dport)
        .filter(|u| parse_payload(u.payload, tag).is_some())
        .count()
}

const PORT_A: u16 = 40_111;
const PORT_B: u16 = 40_222;

#[test]
fn veth_directions_counts_and_promiscuous_modes() {
    let Some(v) = VethNs::new() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let hs = echo_in(&v, &[PORT_A], stop.clone());
    for promisc in [true, false] {
        let mut cfg = LiveConfig::new(v.host_if.clone());
        cfg.promiscuous = promisc;
        cfg.block_timeout_ms = 20;
        let Some(mut cap) = open_or_skip(&cfg) else {
            break;
        };
        assert_eq!(cap.linktype(), LINKTYPE_ETHERNET);
        assert_eq!(
            v.host_promiscuity(),
            u32::from(promisc),
            "promisc={promisc}"
        );
        let tag = tag();
        let n = 50;
        let size = 300;
        let local = ping_pong(v.host_ip, v.peer_ip, PORT_A, tag, n, size);
        let mut frames = Vec::new();
        collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
            count(fr, tag, PacketDirection::Incoming, PORT_A, local) >= n as usize
        });
        collect_until(&mut cap, &mut frames, Duration::from_millis(150), |_| false);
        let out = count(&frames, tag, PacketDirection::Outgoing, local, PORT_A);
        let inc = count(&frames, tag, PacketDirection::Incoming, PORT_A, local);
        assert_eq!((out, inc), (n as usize, n as usize), "promisc={promisc}");
        // Nothing of ours in the wrong direction.
        assert_eq!(
            count(&frames, tag, PacketDirection::Incoming, local, PORT_A),
            0
        );
        assert_eq!(
            count(&frames, tag, PacketDirection::Outgoing, PORT_A, local),
            0
        );
        for f in frames.iter().filter(|f| udp4(&f.data, 14).is_some()) {
            let u = udp4(&f.data, 14).unwrap();
            if parse_payload(u.payload, tag).is_some() {
                assert_eq!(f.caplen as usize, 14 + 20 + 8 + size);
                assert_eq!(f.wire_len, f.caplen);
            }
        }
        assert_eq!(cap.stats().dropped, 0);
        drop(cap);
        assert_eq!(
            v.host_promiscuity(),
            0,
            "promiscuous mode ends with the capture"
        );
    }
    stop.store(true, Ordering::SeqCst);
    hs.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn veth_snaplen_truncates_but_keeps_wire_length() {
    let Some(v) = VethNs::new() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let hs = echo_in(&v, &[PORT_A], stop.clone());
    let mut cfg = LiveConfig::new(v.host_if.clone());
    cfg.snaplen = 64;
    cfg.block_timeout_ms = 20;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    assert_eq!(cap.snaplen(), 64);
    let tag = tag();
    let local = ping_pong(v.host_ip, v.peer_ip, PORT_A, tag, 10, 1000);
    let mut frames = Vec::new();
    let ours = |fr: &[Captured]| {
        fr.iter()
            .filter(|f| {
                udp4(&f.data, 14).is_some_and(|u| {
                    (u.sport == local || u.dport == local)
                        && parse_payload(u.payload, tag).is_some()
                })
            })
            .count()
    };
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        ours(fr) >= 20
    });
    assert_eq!(ours(&frames), 20);
    for f in &frames {
        assert!(f.caplen <= 64);
        assert_eq!(f.data.len() as u32, f.caplen);
        if udp4(&f.data, 14).is_some_and(|u| u.sport == local || u.dport == local) {
            assert_eq!(f.caplen, 64);
            assert_eq!(f.wire_len as usize, 14 + 20 + 8 + 1000);
        }
    }
    stop.store(true, Ordering::SeqCst);
    hs.into_iter().for_each(|h| h.join().unwrap());
}

/// Accepts IPv4 UDP to `port` (first fragments included) on EN10MB, whole.
fn udp_dst_port_filter(port: u16) -> Vec<BpfInsn> {
    vec![
        BpfInsn::new(0x28, 0, 0, 12),              // 0: ldh [12]
        BpfInsn::new(0x15, 0, 8, 0x0800),          // 1: jeq #IPv4 ? 2 : 10
        BpfInsn::new(0x30, 0, 0, 23),              // 2: ldb [23]
        BpfInsn::new(0x15, 0, 6, 17),              // 3: jeq #UDP ? 4 : 10
        BpfInsn::new(0x28, 0, 0, 20),              // 4: ldh [20]
        BpfInsn::new(0x45, 4, 0, 0x1fff),          // 5: jset #frag ? 10 : 6
        BpfInsn::new(0xb1, 0, 0, 14),              // 6: ldxb 4*([14]&0xf)
        BpfInsn::new(0x48, 0, 0, 16),              // 7: ldh [x+16]
        BpfInsn::new(0x15, 0, 1, u32::from(port)), // 8: jeq #port ? 9 : 10
        BpfInsn::new(0x06, 0, 0, 262_144),         // 9: ret #262144
        BpfInsn::new(0x06, 0, 0, 0),               // 10: ret #0
    ]
}

fn all_match_filter(frames: &[Captured], port: u16) {
    for f in frames {
        let u = udp4(&f.data, 14).unwrap_or_else(|| panic!("non-UDP frame passed: {f:?}"));
        assert_eq!(u.dport, port, "frame to another port passed the filter");
    }
}

/// Background traffic to PORT_B (rejected by the filter) until dropped.
struct Noise {
    stop: Arc<AtomicBool>,
    h: Option<std::thread::JoinHandle<()>>,
}

impl Noise {
    fn start(v: &VethNs, tag: u32) -> Noise {
        let stop = Arc::new(AtomicBool::new(false));
        let (local, peer) = (v.host_ip, v.peer_ip);
        let s2 = stop.clone();
        let h = std::thread::spawn(move || {
            let s = UdpSocket::bind((local, 0)).unwrap();
            let mut seq = 0;
            while !s2.load(Ordering::SeqCst) {
                let _ = s.send_to(&payload(tag, seq, 100), (peer, PORT_B));
                seq += 1;
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        Noise { stop, h: Some(h) }
    }
}

impl Drop for Noise {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.h.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn veth_bpf_filter_passes_only_matching_packets_from_the_start() {
    let Some(v) = VethNs::new() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let hs = echo_in(&v, &[PORT_A, PORT_B], stop.clone());
    let tag = tag();
    // Traffic the filter rejects is already flowing when the capture opens:
    // none of it may leak into the ring.
    let noise = Noise::start(&v, tag);
    std::thread::sleep(Duration::from_millis(50));
    let mut cfg = LiveConfig::new(v.host_if.clone());
    cfg.block_timeout_ms = 20;
    cfg.filter = Some(udp_dst_port_filter(PORT_A));
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    let local = ping_pong(v.host_ip, v.peer_ip, PORT_A, tag, 30, 200);
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        count(fr, tag, PacketDirection::Outgoing, local, PORT_A) >= 30
    });
    collect_until(&mut cap, &mut frames, Duration::from_millis(150), |_| false);
    drop(noise);
    all_match_filter(&frames, PORT_A);
    assert_eq!(
        count(&frames, tag, PacketDirection::Outgoing, local, PORT_A),
        30
    );
    // The replies come from PORT_A, so the filter drops them.
    assert_eq!(
        count(&frames, tag, PacketDirection::Incoming, PORT_A, local),
        0
    );
    stop.store(true, Ordering::SeqCst);
    hs.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn veth_set_filter_on_a_running_capture_drains_old_packets() {
    let Some(v) = VethNs::new() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let hs = echo_in(&v, &[PORT_A, PORT_B], stop.clone());
    let tag = tag();
    let mut cfg = LiveConfig::new(v.host_if.clone());
    cfg.block_timeout_ms = 30;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    let noise = Noise::start(&v, tag);
    std::thread::sleep(Duration::from_millis(100));
    cap.set_filter(Some(&udp_dst_port_filter(PORT_A))).unwrap();
    let local = ping_pong(v.host_ip, v.peer_ip, PORT_A, tag, 20, 200);
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        count(fr, tag, PacketDirection::Outgoing, local, PORT_A) >= 20
    });
    drop(noise);
    all_match_filter(&frames, PORT_A);
    assert_eq!(
        count(&frames, tag, PacketDirection::Outgoing, local, PORT_A),
        20
    );
    // And back to everything.
    cap.set_filter(None).unwrap();
    let local = ping_pong(v.host_ip, v.peer_ip, PORT_B, tag, 5, 200);
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        count(fr, tag, PacketDirection::Incoming, PORT_B, local) >= 5
    });
    assert_eq!(
        count(&frames, tag, PacketDirection::Incoming, PORT_B, local),
        5
    );
    stop.store(true, Ordering::SeqCst);
    hs.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn veth_vlan_tags_are_put_back_into_the_frame() {
    let Some(v) = VethNs::new() else { return };
    let (_vif, hip, pip) = match v.add_vlan(42) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("skipped: no 802.1Q support ({e})");
            return;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = Vec::new();
    {
        let stop = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        hs.push(v.spawn_in(move || {
            let s = UdpSocket::bind((pip, PORT_A)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        }));
        ready_rx.recv().unwrap();
    }
    let mut cfg = LiveConfig::new(v.host_if.clone());
    cfg.block_timeout_ms = 20;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    let tag = tag();
    let local = ping_pong(hip, pip, PORT_A, tag, 5, 100);
    let mut frames = Vec::new();
    fn tagged(fr: &[Captured], local: u16, tag: u32) -> Vec<&Captured> {
        fr.iter()
            .filter(|f| f.data.len() > 18 && f.data[12..14] == [0x81, 0x00])
            .filter(|f| {
                udp4(&f.data, 18).is_some_and(|u| {
                    (u.sport == local || u.dport == local)
                        && parse_payload(u.payload, tag).is_some()
                })
            })
            .collect()
    }
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        tagged(fr, local, tag).len() >= 10
    });
    let t = tagged(&frames, local, tag);
    assert_eq!(t.len(), 10, "both directions, tag re-inserted");
    for f in t {
        let tci = u16::from_be_bytes([f.data[14], f.data[15]]);
        assert_eq!(tci & 0x0fff, 42, "VLAN id");
        assert_eq!(&f.data[16..18], &[0x08, 0x00]);
        assert_eq!(f.caplen as usize, 18 + 20 + 8 + 100);
        assert_eq!(f.wire_len, f.caplen);
    }
    stop.store(true, Ordering::SeqCst);
    hs.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn veth_interface_down_is_reported_at_open_and_during_capture() {
    let Some(v) = VethNs::new() else { return };
    let cfg = LiveConfig::new(v.host_if.clone());
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    v.set_host_link(false);
    let mut err = None;
    for _ in 0..40 {
        match cap.next_batch(Duration::from_millis(50), &mut |_| {}) {
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("capture notices the interface going down");
    assert!(matches!(err, LiveError::InterfaceWentDown(_)), "{err}");
    drop(cap);

    match LiveCapture::open(&cfg) {
        Err(LiveError::InterfaceDown(name)) => assert_eq!(name, v.host_if),
        other => panic!("expected InterfaceDown, got {other:?}"),
    }
    let msg = LiveError::InterfaceDown(v.host_if.clone()).to_string();
    assert_eq!(
        msg,
        format!(
            "interface '{0}' is down (bring it up with `ip link set {0} up`)",
            v.host_if
        )
    );
}

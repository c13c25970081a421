//! `any` across a veth pair: the SLL2 header names the interface and the
//! sender, VLAN tags survive, and filters compiled for LINUX_SLL2 (as the
//! CLI compiles them) select exactly what they should, in the kernel.

#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use live::{
    BpfInsn, CookedHeader, LiveCapture, LiveConfig, PacketDirection, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
};

// Distinct from veth.rs's ports and from each other: tests in this file run
// in parallel and `any` sees every veth in the root namespace.
const PORT_HDR: u16 = 40_311;
const PORT_VLAN: u16 = 40_322;
const PORT_FILTER: u16 = 40_333;
const PORT_NOISE: u16 = 40_344;

/// Our datagrams in `frames` (IPv4 at `ip`): (frame, udp) pairs between
/// `local` and `port`.
fn ours<'a>(
    frames: &'a [Captured],
    ip: usize,
    tag: u32,
    local: u16,
    port: u16,
) -> Vec<(&'a Captured, Udp4<'a>)> {
    frames
        .iter()
        .filter_map(|f| udp4(&f.data, ip).map(|u| (f, u)))
        .filter(|(_, u)| {
            ((u.sport, u.dport) == (local, port) || (u.sport, u.dport) == (port, local))
                && parse_payload(u.payload, tag).is_some()
        })
        .collect()
}

fn compile(expr: &str, cap: &LiveCapture) -> Vec<BpfInsn> {
    filter::compile(expr, cap.linktype(), cap.snaplen())
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .insns()
        .iter()
        .map(|i| BpfInsn::new(i.code, i.jt, i.jf, i.k))
        .collect()
}

#[test]
fn sll2_header_names_the_veth_and_the_sender() {
    let Some(v) = VethNs::new() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let hs = echo_in(&v, &[PORT_HDR], stop.clone());
    let mut cfg = LiveConfig::new("any");
    cfg.block_timeout_ms = 20;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    assert_eq!(cap.linktype(), LINKTYPE_LINUX_SLL2);
    let (host_idx, host_mac, peer_mac) =
        (sys_ifindex(&v.host_if), sys_mac(&v.host_if), v.peer_mac());
    let tag = tag();
    let n = 10;
    let size = 200;
    let local = ping_pong(v.host_ip, v.peer_ip, PORT_HDR, tag, n, size);
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        ours(fr, 20, tag, local, PORT_HDR).len() >= 2 * n as usize
    });
    collect_until(&mut cap, &mut frames, Duration::from_millis(150), |_| false);
    let got = ours(&frames, 20, tag, local, PORT_HDR);
    assert_eq!(got.len(), 2 * n as usize, "each datagram once, both ways");
    let (mut out, mut inc) = (0, 0);
    for (f, u) in got {
        let h = &f.data;
        assert_eq!(&h[0..2], &[0x08, 0x00], "protocol IPv4");
        assert_eq!(&h[2..4], &[0, 0], "reserved");
        assert_eq!(
            i32::from_be_bytes(h[4..8].try_into().unwrap()),
            host_idx,
            "ifindex of {}",
            v.host_if
        );
        assert_eq!(f.ifindex, host_idx);
        assert_eq!(u16::from_be_bytes([h[8], h[9]]), 1, "ARPHRD_ETHER");
        assert_eq!(h[11], 6, "address length");
        assert_eq!(&h[18..20], &[0, 0], "address padding");
        if u.sport == local {
            out += 1;
            assert_eq!(h[10], 4, "PACKET_OUTGOING");
            assert_eq!(f.direction, PacketDirection::Outgoing);
            assert_eq!(&h[12..18], &host_mac, "sent by the host end");
        } else {
            inc += 1;
            assert_eq!(h[10], 0, "PACKET_HOST");
            assert_eq!(f.direction, PacketDirection::Incoming);
            assert_eq!(&h[12..18], &peer_mac, "sent by the namespace end");
        }
        assert_eq!(f.caplen as usize, 20 + 20 + 8 + size);
        assert_eq!(f.wire_len, f.caplen);
    }
    assert_eq!((out, inc), (n, n));
    stop.store(true, Ordering::SeqCst);
    hs.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn vlan_tags_survive_on_the_cooked_path() {
    let Some(v) = VethNs::new() else { return };
    let (vif, hip, pip) = match v.add_vlan(42) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("skipped: no 802.1Q support ({e})");
            return;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let hs = {
        // The echo server listens on the VLAN address.
        let stop = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let h = v.spawn_in(move || {
            let s = std::net::UdpSocket::bind((pip, PORT_VLAN)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        });
        ready_rx.recv().unwrap();
        h
    };
    let (parent, vdev) = (sys_ifindex(&v.host_if), sys_ifindex(&vif));
    for (hdr, hl) in [(CookedHeader::Sll2, 20usize), (CookedHeader::Sll, 16)] {
        let mut cfg = LiveConfig::new("any");
        cfg.block_timeout_ms = 20;
        cfg.cooked_header = hdr;
        let Some(mut cap) = open_or_skip(&cfg) else {
            break;
        };
        let tag = tag();
        let n = 5;
        let local = ping_pong(hip, pip, PORT_VLAN, tag, n, 100);
        let both = 2 * n as usize;
        let mut frames = Vec::new();
        // On the parent the tag is put back: the IP header is 4 bytes on.
        let tagged = |fr: &[Captured]| -> usize {
            ours(fr, hl + 4, tag, local, PORT_VLAN)
                .iter()
                .filter(|(f, _)| f.ifindex == parent)
                .count()
        };
        collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
            tagged(fr) >= both && ours(fr, hl, tag, local, PORT_VLAN).len() >= both
        });
        collect_until(&mut cap, &mut frames, Duration::from_millis(150), |_| false);

        let on_parent: Vec<_> = ours(&frames, hl + 4, tag, local, PORT_VLAN)
            .into_iter()
            .filter(|(f, _)| f.ifindex == parent)
            .collect();
        assert_eq!(on_parent.len(), both, "{hdr:?}: both ways on the parent");
        for (f, _) in &on_parent {
            let h = &f.data;
            let (proto, tci, inner) = match hdr {
                // Protocol field = TPID; TCI and the real protocol after the
                // header.
                CookedHeader::Sll2 => (&h[0..2], &h[20..22], &h[22..24]),
                // libpcap's layout: the tag in place of the protocol field.
                CookedHeader::Sll => (&h[14..16], &h[16..18], &h[18..20]),
            };
            assert_eq!(proto, &[0x81, 0x00], "{hdr:?}: TPID as the protocol");
            assert_eq!(u16::from_be_bytes([tci[0], tci[1]]) & 0x0fff, 42, "VLAN id");
            assert_eq!(inner, &[0x08, 0x00], "{hdr:?}: then IPv4");
            assert_eq!(f.protocol, 0x0800, "sll_protocol stays the inner one");
            assert_eq!(f.caplen as usize, hl + 4 + 20 + 8 + 100);
            assert_eq!(f.wire_len, f.caplen);
            if hdr == CookedHeader::Sll2 {
                assert_eq!(i32::from_be_bytes(h[4..8].try_into().unwrap()), parent);
            }
        }
        // On the VLAN device itself the packet is untagged.
        let on_vdev: Vec<_> = ours(&frames, hl, tag, local, PORT_VLAN)
            .into_iter()
            .filter(|(f, _)| f.ifindex == vdev)
            .collect();
        assert_eq!(on_vdev.len(), both, "{hdr:?}: both ways on {vif}");
        for (f, _) in &on_vdev {
            let p = if hdr == CookedHeader::Sll2 { 0 } else { 14 };
            assert_eq!(&f.data[p..p + 2], &[0x08, 0x00]);
            assert_eq!(f.caplen as usize, hl + 20 + 8 + 100);
        }
        assert_eq!(
            cap.linktype(),
            if hdr == CookedHeader::Sll2 {
                LINKTYPE_LINUX_SLL2
            } else {
                LINKTYPE_LINUX_SLL
            }
        );
    }
    stop.store(true, Ordering::SeqCst);
    hs.join().unwrap();
}

/// Background traffic from the host to `PORT_NOISE` in the namespace.
fn noise(v: &VethNs, tag: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let (local, peer) = (v.host_ip, v.peer_ip);
    std::thread::spawn(move || {
        let s = std::net::UdpSocket::bind((local, 0)).unwrap();
        let mut seq = 0;
        while !stop.load(Ordering::SeqCst) {
            let _ = s.send_to(&payload(tag, seq, 100), (peer, PORT_NOISE));
            seq += 1;
            std::thread::sleep(Duration::from_micros(500));
        }
    })
}

#[test]
fn compiled_filters_select_exactly_on_any() {
    let Some(v) = VethNs::new() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = echo_in(&v, &[PORT_FILTER, PORT_NOISE], stop.clone());
    let tag = tag();
    hs.push(noise(&v, tag, stop.clone()));
    std::thread::sleep(Duration::from_millis(50));
    let host = v.host_ip;
    let n = 20u32;
    // (expression, outgoing expected, incoming expected)
    let cases = [
        (format!("udp port {PORT_FILTER} and host {host}"), n, n),
        (
            format!("outbound and udp port {PORT_FILTER} and host {host}"),
            n,
            0,
        ),
        (
            format!("inbound and udp port {PORT_FILTER} and host {host}"),
            0,
            n,
        ),
        (
            format!("udp dst port {PORT_FILTER} and src host {host}"),
            n,
            0,
        ),
    ];
    for (expr, want_out, want_in) in cases {
        let mut cfg = LiveConfig::new("any");
        cfg.block_timeout_ms = 20;
        let Some(mut cap) = open_or_skip(&cfg) else {
            break;
        };
        let prog = compile(&expr, &cap);
        cap.set_filter(Some(&prog)).unwrap();
        let local = ping_pong(v.host_ip, v.peer_ip, PORT_FILTER, tag, n, 150);
        let mut frames = Vec::new();
        let total = (want_out + want_in) as usize;
        collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
            ours(fr, 20, tag, local, PORT_FILTER).len() >= total
        });
        collect_until(&mut cap, &mut frames, Duration::from_millis(150), |_| false);
        // Nothing else passed: no noise, no other flow on this host.
        for f in &frames {
            let u = udp4(&f.data, 20).unwrap_or_else(|| panic!("{expr}: non-UDP {f:?}"));
            assert!(
                u.sport == PORT_FILTER || u.dport == PORT_FILTER,
                "{expr}: {u:?}"
            );
            assert!(u.src == host || u.dst == host, "{expr}: {u:?}");
        }
        let got = ours(&frames, 20, tag, local, PORT_FILTER);
        let out = got.iter().filter(|(_, u)| u.sport == local).count() as u32;
        let inc = got.iter().filter(|(_, u)| u.dport == local).count() as u32;
        assert_eq!((out, inc), (want_out, want_in), "{expr}");
        for (f, u) in &got {
            let outgoing = u.sport == local;
            assert_eq!(f.data[10], if outgoing { 4 } else { 0 }, "{expr}");
        }
        assert_eq!(frames.len(), total, "{expr}: only our datagrams");
        // What arrived before set_filter was discarded by its drain.
        let st = cap.stats();
        assert_eq!(st.delivered as usize, total, "{expr}: {st:?}");
    }
    stop.store(true, Ordering::SeqCst);
    hs.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn filters_given_at_open_run_in_the_kernel_on_any() {
    // Compiled for LINUX_SLL2 and handed over in the config: tp_packets
    // (what passed the kernel's filter) counts exactly our datagrams.
    let Some(v) = VethNs::new() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = echo_in(&v, &[PORT_FILTER, PORT_NOISE], stop.clone());
    let tag = tag();
    hs.push(noise(&v, tag, stop.clone()));
    std::thread::sleep(Duration::from_millis(50));
    let expr = format!(
        "inbound and udp src port {PORT_FILTER} and dst host {}",
        v.host_ip
    );
    let prog: Vec<BpfInsn> = filter::compile(&expr, LINKTYPE_LINUX_SLL2, 262_144)
        .unwrap()
        .insns()
        .iter()
        .map(|i| BpfInsn::new(i.code, i.jt, i.jf, i.k))
        .collect();
    let mut cfg = LiveConfig::new("any");
    cfg.block_timeout_ms = 20;
    cfg.filter = Some(prog);
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    assert_eq!(cap.linktype(), LINKTYPE_LINUX_SLL2);
    let n = 15;
    let local = ping_pong(v.host_ip, v.peer_ip, PORT_FILTER, tag, n, 120);
    let mut frames = Vec::new();
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        ours(fr, 20, tag, local, PORT_FILTER).len() >= n as usize
    });
    collect_until(&mut cap, &mut frames, Duration::from_millis(150), |_| false);
    assert_eq!(frames.len(), n as usize);
    assert!(frames
        .iter()
        .all(|f| f.direction == PacketDirection::Incoming));
    assert_eq!(cap.stats().received, u64::from(n), "filtered in the kernel");
    stop.store(true, Ordering::SeqCst);
    hs.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn vlan_filters_are_refused_for_cooked_captures() {
    // crates/filter, like libpcap, has no `vlan` for LINUX_SLL2: the CLI
    // reports it instead of capturing the wrong packets.
    let e = filter::compile("vlan 42", LINKTYPE_LINUX_SLL2, 262_144).unwrap_err();
    assert!(e.to_string().contains("vlan"), "{e}");
}

/// An Ethernet frame `dst src TPID TCI 0x0800` + IPv4/UDP `src -> dst:port`
/// carrying `payload`.
fn tagged_frame(
    dst: [u8; 6],
    src: [u8; 6],
    tpid: u16,
    tci: u16,
    ips: (std::net::Ipv4Addr, std::net::Ipv4Addr),
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&ip_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&ips.0.octets());
    ip.extend_from_slice(&ips.1.octets());
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40_000u16.to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Sends raw frames out of the namespace end (so they arrive tagged on the
/// host end, where the kernel moves the tag into the packet's metadata).
fn inject(v: &VethNs, frames: Vec<Vec<u8>>) {
    let peer = v.peer_if.clone();
    v.spawn_in(move || {
        let name = std::ffi::CString::new(peer).unwrap();
        // SAFETY: valid NUL-terminated name.
        let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(idx, 0);
        // SAFETY: plain syscall; the descriptor is closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        for f in frames {
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = idx as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&f[..6]);
            // SAFETY: sends from a live buffer to a live sockaddr_ll.
            let r = unsafe {
                libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(r, f.len() as isize, "{}", std::io::Error::last_os_error());
        }
        // SAFETY: closes the socket opened above.
        unsafe { libc::close(fd) };
    })
    .join()
    .unwrap();
}

/// How a capture lays a re-inserted tag out: (TPID at, TCI at, inner
/// EtherType at, IPv4 at).
fn vlan_layout(linktype: u32) -> (usize, usize, usize, usize) {
    match linktype {
        LINKTYPE_LINUX_SLL2 => (0, 20, 22, 24),
        LINKTYPE_LINUX_SLL => (14, 16, 18, 20),
        _ => (12, 14, 16, 18),
    }
}

#[test]
fn injected_vlan_frames_get_their_tag_back() {
    // Needs no 8021q module: the receive path moves any 802.1Q/802.1ad tag
    // into the packet's metadata before the taps see it.
    let Some(v) = VethNs::new() else { return };
    let (host_mac, peer_mac) = (sys_mac(&v.host_if), v.peer_mac());
    let host_idx = sys_ifindex(&v.host_if);
    let port = 40_355;
    for setup in 0..3 {
        let mut cfg = LiveConfig::new(if setup == 2 {
            v.host_if.as_str()
        } else {
            "any"
        });
        cfg.block_timeout_ms = 20;
        cfg.promiscuous = false;
        if setup == 1 {
            cfg.cooked_header = CookedHeader::Sll;
        }
        let Some(mut cap) = open_or_skip(&cfg) else {
            return;
        };
        let lt = cap.linktype();
        let tag = tag();
        // 802.1Q with VID 42 / PCP 5, then 802.1ad with VID 7.
        let tags = [(0x8100u16, (5 << 13) | 42u16), (0x88a8, 7)];
        let frames: Vec<Vec<u8>> = (0..6u32)
            .map(|seq| {
                let (tpid, tci) = tags[seq as usize % 2];
                let p = payload(tag, seq, 64);
                tagged_frame(
                    host_mac,
                    peer_mac,
                    tpid,
                    tci,
                    (v.peer_ip, v.host_ip),
                    port,
                    &p,
                )
            })
            .collect();
        inject(&v, frames.clone());
        let (tpid_at, tci_at, inner_at, ip_at) = vlan_layout(lt);
        let mine = |fr: &[Captured]| -> Vec<Captured> {
            fr.iter()
                .filter(|f| {
                    udp4(&f.data, ip_at)
                        .is_some_and(|u| u.dport == port && parse_payload(u.payload, tag).is_some())
                })
                .cloned()
                .collect()
        };
        let mut got = Vec::new();
        collect_until(&mut cap, &mut got, Duration::from_secs(5), |fr| {
            mine(fr).len() >= 6
        });
        collect_until(&mut cap, &mut got, Duration::from_millis(100), |_| false);
        let got = mine(&got);
        assert_eq!(got.len(), 6, "linktype {lt}: each frame once");
        for f in &got {
            let u = udp4(&f.data, ip_at).unwrap();
            let seq = parse_payload(u.payload, tag).unwrap().0;
            let (tpid, tci) = tags[seq as usize % 2];
            let d = &f.data;
            assert_eq!(&d[tpid_at..tpid_at + 2], &tpid.to_be_bytes(), "{lt} TPID");
            assert_eq!(&d[tci_at..tci_at + 2], &tci.to_be_bytes(), "{lt} TCI");
            assert_eq!(&d[inner_at..inner_at + 2], &[0x08, 0x00], "{lt} inner");
            assert_eq!(f.protocol, 0x0800, "{lt}: sll_protocol is the inner type");
            assert_eq!(f.ifindex, host_idx);
            assert_ne!(f.direction, PacketDirection::Outgoing);
            let sent = &frames[seq as usize];
            // Everything after the link header is as sent.
            assert_eq!(&d[ip_at..], &sent[18..], "{lt}");
            match lt {
                LINKTYPE_LINUX_SLL2 => {
                    assert_eq!(i32::from_be_bytes(d[4..8].try_into().unwrap()), host_idx);
                    assert_eq!(&d[8..10], &[0, 1], "ARPHRD_ETHER");
                    assert_eq!(d[11], 6);
                    assert_eq!(&d[12..18], &peer_mac, "sender's MAC");
                }
                LINKTYPE_LINUX_SLL => assert_eq!(&d[6..12], &peer_mac),
                _ => assert_eq!(&d[..], &sent[..], "Ethernet: the frame as sent"),
            }
            assert_eq!(f.caplen as usize, d.len());
            assert_eq!(f.wire_len as usize, ip_at + 20 + 8 + 64);
        }
    }
}

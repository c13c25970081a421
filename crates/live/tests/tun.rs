//! A tun device (ARPHRD_NONE) gives LINKTYPE_RAW frames: IP, no link header.

#![cfg(target_os = "linux")]

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

use common::*;
use live::{LiveConfig, PacketDirection, LINKTYPE_RAW};

/// A tun device that exists while the descriptor is open.
struct Tun {
    _fd: OwnedFd,
    name: String,
}

impl Tun {
    fn new() -> Option<Tun> {
        let name = format!("tlt{:x}", std::process::id() & 0xfffff);
        let path = c"/dev/net/tun";
        // SAFETY: opening a device node by a valid C string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            eprintln!("skipped: no /dev/net/tun");
            return None;
        }
        // SAFETY: fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // struct ifreq: name, then `short ifr_flags` (IFF_TUN | IFF_NO_PI).
        let mut ifr = [0u8; 40];
        ifr[..name.len()].copy_from_slice(name.as_bytes());
        ifr[16..18].copy_from_slice(&(0x0001u16 | 0x1000).to_ne_bytes());
        const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
        // SAFETY: TUNSETIFF reads and writes one struct ifreq (40 bytes).
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
        if r < 0 {
            eprintln!("skipped: TUNSETIFF: {}", std::io::Error::last_os_error());
            return None;
        }
        Some(Tun { _fd: fd, name })
    }
}

#[test]
fn tun_gives_raw_ip_frames() {
    let Some(tun) = Tun::new() else { return };
    let subnet = (std::process::id() % 250 + 2) as u8;
    let local = Ipv4Addr::new(10, 215, subnet, 1);
    let remote = Ipv4Addr::new(10, 215, subnet, 2);
    let ok = Command::new("ip")
        .args(["addr", "add", &format!("{local}/24"), "dev", &tun.name])
        .status()
        .unwrap()
        .success()
        && Command::new("ip")
            .args(["link", "set", &tun.name, "up"])
            .status()
            .unwrap()
            .success();
    assert!(ok, "configure {}", tun.name);
    let mut cfg = LiveConfig::new(tun.name.clone());
    cfg.block_timeout_ms = 20;
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    assert_eq!(cap.linktype(), LINKTYPE_RAW);
    let tag = tag();
    let s = UdpSocket::bind((local, 0)).unwrap();
    for seq in 0..5 {
        s.send_to(&payload(tag, seq, 64), (remote, 9)).unwrap();
    }
    let mut frames = Vec::new();
    let ours = |fr: &[Captured]| {
        fr.iter()
            .filter(|f| udp4(&f.data, 0).is_some_and(|u| parse_payload(u.payload, tag).is_some()))
            .count()
    };
    collect_until(&mut cap, &mut frames, Duration::from_secs(5), |fr| {
        ours(fr) >= 5
    });
    assert_eq!(ours(&frames), 5);
    for f in frames.iter().filter(|f| udp4(&f.data, 0).is_some()) {
        assert_eq!(f.data[0] >> 4, 4, "starts at the IPv4 header");
        assert_eq!(f.caplen as usize, 20 + 8 + 64);
        assert_eq!(f.direction, PacketDirection::Outgoing);
        assert_eq!(f.protocol, 0x0800);
    }
}

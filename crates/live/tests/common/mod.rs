//! Helpers shared by the integration tests: privilege checks, a network
//! namespace + veth pair that cleans up after itself, and frame collection.

#![allow(dead_code)]

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use live::{Frame, LiveCapture, LiveConfig, LiveError, PacketDirection};

/// An owned copy of a captured frame.
#[derive(Debug, Clone)]
pub struct Captured {
    pub ts_ns: u64,
    pub caplen: u32,
    pub wire_len: u32,
    pub data: Vec<u8>,
    pub ifindex: i32,
    pub direction: PacketDirection,
    pub protocol: u16,
}

impl From<Frame<'_>> for Captured {
    fn from(f: Frame<'_>) -> Self {
        Captured {
            ts_ns: f.ts_ns,
            caplen: f.caplen,
            wire_len: f.wire_len,
            data: f.data.to_vec(),
            ifindex: f.ifindex,
            direction: f.direction,
            protocol: f.protocol,
        }
    }
}

/// Opens a capture, or returns None (test skipped) without CAP_NET_RAW.
pub fn open_or_skip(cfg: &LiveConfig) -> Option<LiveCapture> {
    match LiveCapture::open(cfg) {
        Ok(c) => Some(c),
        Err(LiveError::PermissionDenied(_)) => {
            eprintln!("skipped: needs root or CAP_NET_RAW");
            None
        }
        Err(e) => panic!("open {}: {e}", cfg.interface),
    }
}

/// Reads frames until `done` says so or `limit` passes.
pub fn collect_until(
    cap: &mut LiveCapture,
    out: &mut Vec<Captured>,
    limit: Duration,
    mut done: impl FnMut(&[Captured]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !done(out) {
        cap.next_batch(Duration::from_millis(50), &mut |f| out.push(f.into()))
            .expect("next_batch");
    }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Payload carrying a marker, the test's tag and a sequence number, padded
/// to `len` bytes (len >= 16).
pub fn payload(tag: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(b"TSLV");
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(len as u32).to_be_bytes());
    while p.len() < len {
        p.push((p.len() as u8).wrapping_mul(31));
    }
    p
}

/// Finds `TSLV tag` in a UDP payload: returns (seq, payload length).
pub fn parse_payload(udp_payload: &[u8], tag: u32) -> Option<(u32, usize)> {
    if udp_payload.len() < 16 || &udp_payload[0..4] != b"TSLV" {
        return None;
    }
    if u32::from_be_bytes(udp_payload[4..8].try_into().unwrap()) != tag {
        return None;
    }
    let seq = u32::from_be_bytes(udp_payload[8..12].try_into().unwrap());
    let len = u32::from_be_bytes(udp_payload[12..16].try_into().unwrap()) as usize;
    Some((seq, len))
}

/// A parsed IPv4/UDP packet.
#[derive(Debug, Clone, Copy)]
pub struct Udp4<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

/// Parses IPv4/UDP starting at `ip` (the network header offset).
pub fn udp4(frame: &[u8], ip: usize) -> Option<Udp4<'_>> {
    let h = frame.get(ip..)?;
    if h.len() < 28 || h[0] >> 4 != 4 || h[9] != 17 {
        return None;
    }
    let ihl = usize::from(h[0] & 0xf) * 4;
    let u = h.get(ihl..)?;
    if u.len() < 8 {
        return None;
    }
    Some(Udp4 {
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        sport: u16::from_be_bytes([u[0], u[1]]),
        dport: u16::from_be_bytes([u[2], u[3]]),
        payload: &u[8..],
    })
}

/// A UDP echo server inside the namespace on `ports`; stops when `stop` is set.
pub fn echo_in(
    v: &VethNs,
    ports: &[u16],
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut hs = Vec::new();
    for &port in ports {
        let ip = v.peer_ip;
        let stop = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        hs.push(v.spawn_in(move || {
            let s = UdpSocket::bind((ip, port)).expect("bind in netns");
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        }));
        ready_rx.recv().unwrap();
    }
    hs
}

/// Sends `n` datagrams to `peer:port` and waits for each echo. Returns the
/// local port used.
pub fn ping_pong(local: Ipv4Addr, peer: Ipv4Addr, port: u16, tag: u32, n: u32, size: usize) -> u16 {
    let s = UdpSocket::bind((local, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 4096];
    for seq in 0..n {
        let p = payload(tag, seq, size);
        s.send_to(&p, (peer, port)).unwrap();
        let got = s.recv(&mut buf).expect("echo reply");
        assert_eq!(&buf[..got], &p[..]);
    }
    s.local_addr().unwrap().port()
}

/// An interface's index as the kernel publishes it in sysfs (in the
/// namespace of the calling process).
pub fn sys_ifindex(name: &str) -> i32 {
    let p = format!("/sys/class/net/{name}/ifindex");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect();
    v.try_into().expect("6 bytes")
}

/// An interface's MAC address from sysfs.
pub fn sys_mac(name: &str) -> [u8; 6] {
    let p = format!("/sys/class/net/{name}/address");
    parse_mac(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
}

/// A per-test tag: process id and a counter.
pub fn tag() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    (std::process::id() << 8) ^ N.fetch_add(1, Ordering::SeqCst)
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace holding one end of a veth pair; the other end stays
/// in the root namespace. Both are removed on drop, even when a test panics.
pub struct VethNs {
    pub ns: String,
    pub host_if: String,
    pub peer_if: String,
    pub host_ip: Ipv4Addr,
    pub peer_ip: Ipv4Addr,
    pub subnet: u8,
}

static NEXT: AtomicU32 = AtomicU32::new(1);

impl VethNs {
    /// Creates the pair with 10.213.N.1/24 (root) and 10.213.N.2/24 (ns),
    /// both up. Returns None (test skipped) if namespaces are unavailable.
    pub fn new() -> Option<VethNs> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // Interface names must stay under 16 bytes.
        let id = format!("{:x}{:x}", pid & 0xfffff, n);
        let subnet = ((pid.wrapping_mul(7) + n * 13) % 250 + 2) as u8;
        let v = VethNs {
            ns: format!("tslive{id}"),
            host_if: format!("tlh{id}"),
            peer_if: format!("tlp{id}"),
            host_ip: Ipv4Addr::new(10, 213, subnet, 1),
            peer_ip: Ipv4Addr::new(10, 213, subnet, 2),
            subnet,
        };
        if let Err(e) = ip(&["netns", "add", &v.ns]) {
            eprintln!("skipped: cannot create a network namespace ({e})");
            return None;
        }
        // From here on `v` is dropped (and cleaned up) on any failure.
        let setup = || -> Result<(), String> {
            ip(&[
                "link", "add", &v.host_if, "type", "veth", "peer", "name", &v.peer_if,
            ])?;
            ip(&["link", "set", &v.peer_if, "netns", &v.ns])?;
            // No IPv6 on the pair: keeps router/neighbour solicitations away.
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", v.host_if),
                "1",
            );
            ip(&[
                "addr",
                "add",
                &format!("{}/24", v.host_ip),
                "dev",
                &v.host_if,
            ])?;
            ip(&["link", "set", &v.host_if, "up"])?;
            v.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{}.disable_ipv6=1", v.peer_if),
            ])
            .ok();
            v.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", v.peer_ip),
                "dev",
                &v.peer_if,
            ])?;
            v.exec(&["ip", "link", "set", &v.peer_if, "up"])?;
            v.exec(&["ip", "link", "set", "lo", "up"])?;
            Ok(())
        };
        if let Err(e) = setup() {
            panic!("veth setup failed: {e}");
        }
        Some(v)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut a = vec!["netns", "exec", &self.ns];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// Runs `f` on a thread whose network namespace is this one (setns is
    /// per thread), e.g. to bind a socket inside it.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd affects only this thread.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// Adds a VLAN sub-interface with `vid` on both ends, with
    /// 10.214.N.1/24 and 10.214.N.2/24; returns (host vlan if, host ip, peer ip).
    pub fn add_vlan(&self, vid: u16) -> Result<(String, Ipv4Addr, Ipv4Addr), String> {
        let hv = format!("{}.v", self.host_if);
        let pv = format!("{}.v", self.peer_if);
        let hip = Ipv4Addr::new(10, 214, self.subnet, 1);
        let pip = Ipv4Addr::new(10, 214, self.subnet, 2);
        let vid = vid.to_string();
        ip(&[
            "link",
            "add",
            "link",
            &self.host_if,
            "name",
            &hv,
            "type",
            "vlan",
            "id",
            &vid,
        ])?;
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{hv}/disable_ipv6"), "1");
        ip(&["addr", "add", &format!("{hip}/24"), "dev", &hv])?;
        ip(&["link", "set", &hv, "up"])?;
        self.exec(&[
            "ip",
            "link",
            "add",
            "link",
            &self.peer_if,
            "name",
            &pv,
            "type",
            "vlan",
            "id",
            &vid,
        ])?;
        self.exec(&["ip", "addr", "add", &format!("{pip}/24"), "dev", &pv])?;
        self.exec(&["ip", "link", "set", &pv, "up"])?;
        Ok((hv, hip, pip))
    }

    /// The host end's promiscuity counter (`ip -d link` shows it; packet
    /// socket memberships raise it without setting the user-visible flag).
    pub fn host_promiscuity(&self) -> u32 {
        let out = Command::new("ip")
            .args(["-d", "link", "show", "dev", &self.host_if])
            .output()
            .expect("ip -d link");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        while let Some(w) = words.next() {
            if w == "promiscuity" {
                return words.next().and_then(|n| n.parse().ok()).expect("count");
            }
        }
        panic!("no promiscuity in: {text}");
    }

    /// The namespace end's MAC address (its sysfs, read inside it).
    pub fn peer_mac(&self) -> [u8; 6] {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "cat"])
            .arg(format!("/sys/class/net/{}/address", self.peer_if))
            .output()
            .expect("ip netns exec cat");
        assert!(out.status.success(), "{:?}", out);
        parse_mac(&String::from_utf8_lossy(&out.stdout))
    }

    pub fn set_host_link(&self, up: bool) {
        ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }]).unwrap();
    }
}

impl Drop for VethNs {
    fn drop(&mut self) {
        // Deleting one end removes the pair (and VLANs on top of it).
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

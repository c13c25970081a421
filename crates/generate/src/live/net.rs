//! Where live traffic runs: loopback, or a network namespace behind a veth
//! pair; per-user client addresses; sockets bound before connecting; a
//! thread inside the namespace that opens server sockets there.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;

use crate::GenerateError;

pub(crate) fn sock_err(what: &str, e: io::Error) -> GenerateError {
    let fix = match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "run with permission to open sockets (e.g. outside a sandbox that forbids them)"
        }
        io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable => {
            "free the address or port, or let the run pick others (loopback mode uses ephemeral ports)"
        }
        _ => "check that the interface is up and the open-file limit (ulimit -n) is not exhausted",
    };
    GenerateError::BadArgument(format!("cannot open {what}: {e}; {fix}"))
}

fn ip_cmd(args: &[&str], stdin: Option<&str>) -> Result<(), GenerateError> {
    use std::io::Write;
    let mut cmd = std::process::Command::new("ip");
    cmd.args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(std::process::Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| {
        GenerateError::BadArgument(format!(
            "cannot run `ip` ({e}): the network-namespace mode needs iproute2 (apt-get install iproute2), or use loopback mode"
        ))
    })?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        let _ = w.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| GenerateError::BadArgument(format!("`ip` failed: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let fix = if err.contains("Operation not permitted") || err.contains("Permission denied") {
        "run as root or with CAP_NET_ADMIN (e.g. sudo), or use loopback mode"
    } else {
        "check `ip` and free the name, or use loopback mode"
    };
    Err(GenerateError::BadArgument(format!(
        "cannot set up the network namespace (ip {}: {err}): {fix}",
        args.join(" ")
    )))
}

fn ip_output(args: &[&str]) -> String {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Addresses of a run: servers at one address, each user at its own.
#[derive(Clone, Debug)]
pub(crate) struct Addrs {
    pub server: IpAddr,
    /// Client addresses, user `i` gets `clients[i % len]`.
    pub clients: Vec<IpAddr>,
    pub interface: String,
}

impl Addrs {
    pub fn client(&self, user: u32) -> IpAddr {
        self.clients[user as usize % self.clients.len()]
    }

    /// Loopback: servers on 127.0.0.1 and users on 127.1.x.y (all of
    /// 127/8 is local on Linux; [`LOOPBACK_CLIENT_NET`]), or everything on ::1.
    pub fn loopback(users: u32, v6: bool) -> Addrs {
        if v6 {
            return Addrs {
                server: Ipv6Addr::LOCALHOST.into(),
                clients: vec![Ipv6Addr::LOCALHOST.into()],
                interface: "lo".into(),
            };
        }
        let clients = (0..users.min(60_000))
            .map(|i| {
                let n = i + 2;
                IpAddr::V4(Ipv4Addr::new(127, 1, (n >> 8) as u8, n as u8))
            })
            .collect();
        Addrs {
            server: Ipv4Addr::LOCALHOST.into(),
            clients,
            interface: "lo".into(),
        }
    }
}

/// Where the loopback mode's IPv4 users are.
pub(crate) const LOOPBACK_CLIENT_NET: &str = "127.1.0.0/16";

/// Namespaces of this process's runs in progress (name, host end of the
/// veth pair), for [`remove_all_now`].
static LIVE_NETNS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn live_netns() -> std::sync::MutexGuard<'static, Vec<(String, String)>> {
    LIVE_NETNS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deletes a namespace and the host end of its veth pair (the other end
/// goes with it), ignoring what is already gone.
fn delete_netns(name: &str, host_if: &str) {
    let _ = ip_cmd(&["netns", "del", name], None);
    let _ = std::process::Command::new("ip")
        .args(["link", "del", host_if])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Deletes the namespaces of every run still in progress; see
/// `live::remove_namespaces_now`.
pub(crate) fn remove_all_now() {
    for (name, host_if) in std::mem::take(&mut *live_netns()) {
        delete_netns(&name, &host_if);
    }
}

/// Runs on this process's network namespace counter: names stay unique
/// when several runs share a process (tests run in parallel threads).
static RUNS: AtomicU32 = AtomicU32::new(0);

/// A namespace with a veth pair; deleted on drop.
pub(crate) struct Netns {
    name: String,
    pub host_if: String,
    pub ns_if: String,
    pub addrs: Addrs,
    /// Segmentation and checksum offloads were turned off on both ends.
    pub offloads_off: bool,
}

/// Most client addresses put on the host end (users beyond share them).
const MAX_CLIENT_ADDRS: u32 = 253;

impl Netns {
    /// Creates `tsgen<pid>_<n>` with a veth pair `tsgh…`/`tsgn…`, a /24
    /// (or /64) of 10.213.0.0/16 (fd00:213::/32) not in use on the host,
    /// servers at .1 inside, users at .2, .3, … on the host end.
    pub fn create(users: u32, v6: bool) -> Result<Netns, GenerateError> {
        let pid = std::process::id();
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let name = format!("tsgen{pid}_{run}");
        let tag = format!("{pid:x}{:02x}", run & 0xff);
        let host_if = format!("tsgh{tag}");
        let ns_if = format!("tsgn{tag}");
        let in_use = ip_output(&["-o", "addr", "show"]) + &ip_output(&["route", "show"]);
        let mix = (pid as u64)
            .wrapping_mul(0x9e37_79b9)
            .wrapping_add(run as u64 * 7919);
        let (plen, server, client_at): (u8, IpAddr, Box<dyn Fn(u32) -> IpAddr>) = if v6 {
            let seg = (0..0x1_0000u64)
                .map(|k| ((mix + k) & 0xffff) as u16)
                .find(|s| !in_use.contains(&format!("fd00:213:{s:x}:")))
                .unwrap_or(0);
            (
                64,
                Ipv6Addr::new(0xfd00, 0x213, seg, 0, 0, 0, 0, 1).into(),
                Box::new(move |k| Ipv6Addr::new(0xfd00, 0x213, seg, 0, 0, 0, 0, k as u16).into()),
            )
        } else {
            let x = (0..256u64)
                    .map(|k| ((mix + k) & 0xff) as u8)
                    .find(|x| !in_use.contains(&format!("10.213.{x}.")))
                    .ok_or_else(|| {
                        GenerateError::BadArgument(
                            "no free /24 in 10.213.0.0/16 for the namespace: remove stale tsgh* interfaces (ip link del …)".into(),
                        )
                    })?;
            (
                24,
                Ipv4Addr::new(10, 213, x, 1).into(),
                Box::new(move |k| Ipv4Addr::new(10, 213, x, k as u8).into()),
            )
        };
        ip_cmd(&["netns", "add", &name], None)?;
        live_netns().push((name.clone(), host_if.clone()));
        let mut ns = Netns {
            name,
            host_if,
            ns_if,
            addrs: Addrs {
                server,
                clients: Vec::new(),
                interface: String::new(),
            },
            offloads_off: false,
        };
        ns.addrs.interface = ns.host_if.clone();
        let nodad = if v6 { " nodad" } else { "" };
        ip_cmd(
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns.ns_if,
            ],
            None,
        )?;
        ip_cmd(&["link", "set", &ns.ns_if, "netns", &ns.name], None)?;
        if !v6 {
            // No IPv6 neighbour discovery or MLD chatter in IPv4 captures.
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ns.host_if),
                "1",
            );
            let (p, i) = (ns.path(), ns.ns_if.clone());
            let _ = thread::spawn(move || {
                enter_ns(&p)?;
                std::fs::write(format!("/proc/sys/net/ipv6/conf/{i}/disable_ipv6"), "1")
            })
            .join();
        }
        let n = users.clamp(1, MAX_CLIENT_ADDRS);
        let mut batch = String::new();
        for k in 0..n {
            let a = client_at(k + 2);
            ns.addrs.clients.push(a);
            batch.push_str(&format!("addr add {a}/{plen} dev {}{nodad}\n", ns.host_if));
        }
        batch.push_str(&format!("link set {} up\n", ns.host_if));
        ip_cmd(&["-batch", "-"], Some(&batch))?;
        let ns_batch = format!(
            "addr add {server}/{plen} dev {}{nodad}\nlink set {} up\nlink set lo up\n",
            ns.ns_if, ns.ns_if
        );
        ip_cmd(&["-n", &ns.name, "-batch", "-"], Some(&ns_batch))?;
        // Wire-sized, checksummed packets on the pair (see `offloads_off`).
        let host_ok = offloads_off(&ns.host_if).is_ok();
        let ns_if = ns.ns_if.clone();
        let path = ns.path();
        let ns_ok = thread::spawn(move || enter_ns(&path).and_then(|_| offloads_off(&ns_if)))
            .join()
            .map(|r| r.is_ok())
            .unwrap_or(false);
        ns.offloads_off = host_ok && ns_ok;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        live_netns().retain(|(n, _)| *n != self.name);
        delete_netns(&self.name, &self.host_if);
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub(crate) fn enter_ns(path: &Path) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: setns on a valid namespace fd affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Turns off TCP segmentation, generic segmentation/receive offload and
/// transmit checksum offload on `ifname` (legacy SIOCETHTOOL commands), so
/// that a packet socket sees MSS-sized segments with real checksums, as on
/// a physical wire, instead of 64 KB super-packets with partial checksums.
fn offloads_off(ifname: &str) -> io::Result<()> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReqData {
        name: [u8; libc::IFNAMSIZ],
        data: *mut libc::c_void,
        _pad: [u8; 16],
    }
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_STXCSUM: u32 = 0x17;
    const ETHTOOL_STSO: u32 = 0x1f;
    const ETHTOOL_SGSO: u32 = 0x24;
    const ETHTOOL_SGRO: u32 = 0x2c;
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut first_err = None;
    for cmd in [ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO, ETHTOOL_STXCSUM] {
        let mut v = EthtoolValue { cmd, data: 0 };
        let mut req = IfReqData {
            name: [0; libc::IFNAMSIZ],
            data: (&mut v as *mut EthtoolValue).cast(),
            _pad: [0; 16],
        };
        let n = ifname.len().min(libc::IFNAMSIZ - 1);
        req.name[..n].copy_from_slice(&ifname.as_bytes()[..n]);
        // SAFETY: SIOCETHTOOL with an ifreq whose data points at a live
        // ethtool_value for the duration of the call.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if r != 0 && first_err.is_none() {
            first_err = Some(io::Error::last_os_error());
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Opens server sockets in the servers' namespace: a thread that entered
/// it runs the jobs (a socket belongs to the namespace it was created in,
/// whichever thread uses it later). Without a namespace jobs run inline.
pub(crate) struct ServerNs {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ServerNs {
    pub fn here() -> ServerNs {
        ServerNs {
            tx: None,
            thread: None,
        }
    }

    pub fn enter(path: PathBuf) -> Result<ServerNs, GenerateError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ok_tx, ok_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let r = enter_ns(&path);
            let failed = r.is_err();
            let _ = ok_tx.send(r);
            if failed {
                return;
            }
            for job in rx {
                job();
            }
        });
        match ok_rx.recv() {
            Ok(Ok(())) => Ok(ServerNs {
                tx: Some(tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(sock_err("the server sockets inside the namespace", e)),
            Err(_) => Err(GenerateError::BadArgument(
                "the namespace thread died before entering the namespace".into(),
            )),
        }
    }

    /// Runs `f` in the servers' namespace and returns its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        match &self.tx {
            None => f(),
            Some(tx) => {
                let (rtx, rrx) = mpsc::channel();
                tx.send(Box::new(move || {
                    let _ = rtx.send(f());
                }))
                .expect("namespace thread alive");
                rrx.recv().expect("namespace job result")
            }
        }
    }

    /// Binds a TCP listener at `ip`:`port`, or any port when that is taken.
    pub fn listen(&self, ip: IpAddr, port: u16) -> io::Result<TcpListener> {
        self.run(move || TcpListener::bind((ip, port)).or_else(|_| TcpListener::bind((ip, 0))))
    }

    /// Binds a UDP socket at `ip`:`port`, or any port when that is taken.
    pub fn udp(&self, ip: IpAddr, port: u16) -> io::Result<UdpSocket> {
        self.run(move || UdpSocket::bind((ip, port)).or_else(|_| UdpSocket::bind((ip, 0))))
    }

    /// An RTP/RTCP pair (even port and the next) near `want`.
    pub fn udp_pair(&self, ip: IpAddr, want: u16) -> io::Result<(UdpSocket, UdpSocket)> {
        self.run(move || udp_pair(ip, want))
    }
}

impl Drop for ServerNs {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An RTP/RTCP pair of UDP sockets on `ip`: an even port and the next,
/// starting at `want` (rounded down to even) and trying upwards.
pub(crate) fn udp_pair(ip: IpAddr, want: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let mut p = want & !1;
    let mut last = None;
    for _ in 0..64 {
        if p < 1024 || p == 0xfffe {
            p = 16_384;
        }
        match UdpSocket::bind((ip, p)) {
            Ok(a) => match UdpSocket::bind((ip, p + 1)) {
                Ok(b) => return Ok((a, b)),
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(e),
        }
        p = p.wrapping_add(2);
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free RTP port pair")))
}

/// bind(2) of a raw socket to `a`.
pub(crate) fn bind(fd: &impl AsRawFd, a: SocketAddr) -> io::Result<()> {
    let (ss, len) = sockaddr(a);
    // SAFETY: ss/len describe a valid socket address.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&ss as *const libc::sockaddr_storage).cast(),
            len,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v.ip().octets(),
                },
                sin6_scope_id: v.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Connects to `to` from `from` (any port): the user's own address.
pub(crate) fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let fam = if to.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2); ownership taken at once.
    let fd = unsafe { libc::socket(fam, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Let connect() pick the port, so binds do not exhaust ports early.
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a live c_int; failure is harmless.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    bind(&fd, SocketAddr::new(from, 0))?;
    let (ss, len) = sockaddr(to);
    loop {
        // SAFETY: as above.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&ss as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(TcpStream::from(fd))
}

//! Live mode: real sockets, with the servers and clients both run by this
//! process, paced in real time by the class models.
//!
//! **Where.** [`LiveNet::Netns`] creates a network namespace and a veth
//! pair for the run and removes them at the end: servers listen inside on
//! their well-known ports (80, 443, 21, 873, 53, 5060) at 10.213.x.1
//! (fd00:213:x::1 with IPv6), users connect from their own addresses
//! 10.213.x.2, .3, … on the host end (253 at most; more users share them),
//! so the traffic crosses a real link that a packet socket on the host end
//! sees exactly as on a wire: segmentation and checksum offloads are turned
//! off on the pair, so captures show MSS-sized segments with valid
//! checksums. Needs root or CAP_NET_ADMIN. [`LiveNet::Loopback`] needs no
//! privileges: servers on 127.0.0.1 (ephemeral ports), users on 127.1.x.y
//! (IPv6: all on ::1); loopback's 64 KB MTU and offloads give large
//! segments, and other programs' loopback traffic shares the interface.
//!
//! **What.** Each user runs the offline models' sessions of its class with
//! the same per-user seed and the same laws (see the crate docs):
//! `web` page loads over HTTP/1.1 and TLS 1.3-looking connections (real
//! ClientHello with SNI and ALPN, ServerHello, encrypted-record framing),
//! several per page in parallel, DNS lookups cached for their TTL, think
//! times; `video` DASH sessions (MPD, init segment, segments with buffering
//! then ON/OFF and throughput-driven rate adaptation); `video-download`;
//! `voip` calls (SIP dialog to a proxy, G.711 RTP both ways on the 20 ms
//! clock with Brady talk spurts, comfort noise, RTCP on the next port);
//! `voip-icmp` (160-byte pings every 20 ms, answered by the far end's
//! kernel; a ping socket when `net.ipv4.ping_group_range` allows, else a
//! raw socket); `bulk` (FTP with a passive data connection, or an rsync
//! daemon session); `dns` bursts. Messages are byte for byte the offline
//! formats (see [`script`](self) for how the servers learn their part).
//! Only timing differs: transfers are paced at the configured link rate by
//! their senders and the round-trip time is the real one (microseconds on
//! a veth pair; no added delay).
//!
//! **Lag.** Every scheduled send records how late it happened against its
//! model time ([`lag`]); the summary reports it.
//!
//! **Recording.** [`LiveOptions::record`] captures the run on its interface
//! (AF_PACKET, the `live` crate) into a pcap/pcapng file; labels carry the
//! real sockets' 5-tuples and wall-clock times.

mod icmp;
pub mod lag;
mod net;
mod record;
mod script;
mod user;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use lag::{LagReport, LagStats, LATE_MS};
pub use record::RecordStats;

use crate::{iso8601, Class, GenerateConfig, GenerateError, LABELS_HEADER};
use net::{sock_err, Addrs, Netns, ServerNs};
use script::{serve_tcp, serve_udp, Scripts, ServerStats, UdpScripts};

/// What a live run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveSummary {
    pub flows: u64,
    /// Bytes the servers sent.
    pub bytes_served: u64,
    /// Interface to capture on: `lo`, or the host end of the veth pair.
    pub interface: String,
    /// The namespace created for the run (removed again), if any.
    pub namespace: Option<String>,
    /// Offloads were turned off on the veth pair (wire-sized packets).
    pub offloads_off: bool,
    /// How late scheduled sends were against their model times.
    pub lag: LagReport,
    /// Set when the run was recorded.
    pub recorded: Option<RecordStats>,
}

/// Where live traffic runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveNet {
    /// Servers on 127.0.0.1 / ::1, users on 127.1.x.y; capture on `lo`.
    Loopback,
    /// Servers in a network namespace created for the run, reached over a
    /// veth pair (capture on the host end, named in [`LiveSummary`]);
    /// needs root or CAP_NET_ADMIN and iproute2's `ip`. Removed at the end.
    Netns,
}

/// Options of a live run.
#[derive(Default)]
pub struct LiveOptions<'a> {
    /// Record the run on its interface into this file (pcapng if the name
    /// ends in `.pcapng`, else pcap). Needs root or CAP_NET_RAW.
    pub record: Option<&'a Path>,
    /// Bytes kept per recorded packet (0: all).
    pub snaplen: u32,
    /// Called with the interface name once it exists, before any traffic.
    pub on_ready: Option<&'a mut dyn FnMut(&str)>,
    /// Called with the run's plan once its servers listen, before the
    /// recording starts and before any traffic; the run waits for it and
    /// ends with [`GenerateError::Cancelled`] if it returns false (a
    /// capture that was to see the run could not start).
    pub on_plan: Option<&'a mut dyn FnMut(&LivePlan) -> bool>,
}

/// What a live run is about to do, known once its servers listen and
/// before its first packet: where to capture it, and the ground truth of
/// each of its flows, by construction. A user keeps one class for the whole
/// run and sends from its own client address; users of every class look
/// names up at the one DNS server, and the label rows call those flows
/// `dns`. So a flow to the DNS server's port is `dns`, and any other flow
/// has the class of its client address's user: the class its label row
/// will give it when it ends.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePlan {
    /// Interface to capture on: `lo`, or the host end of the veth pair.
    pub interface: String,
    /// The servers' address.
    pub server: IpAddr,
    /// The DNS server's UDP port: 53 in a namespace, ephemeral on loopback.
    pub dns_port: u16,
    /// Each user's client address and class, by user number.
    pub users: Vec<(IpAddr, Class)>,
    /// A capture filter (tcpdump syntax) that keeps this run's packets and
    /// drops the rest of a shared interface (loopback); `None` when the
    /// interface is the run's own (the veth pair).
    pub filter: Option<String>,
}

impl LivePlan {
    /// The ground truth as labelling rules (`port P -> dns`, then
    /// `net ADDR/32 -> CLASS` per client address; first match wins), for
    /// `run --rule` on the capture. On loopback the DNS port is ephemeral:
    /// a client socket the kernel happens to give the same port number is
    /// counted as `dns` too (about one in 28 000). Fails when users of two
    /// classes share a client address (more users than addresses in a
    /// namespace; IPv6 loopback, where every user is ::1): their flows
    /// cannot be told apart by address.
    pub fn truth_rules(&self) -> Result<Vec<String>, GenerateError> {
        let mut rules = vec![format!("port {} -> dns", self.dns_port)];
        let mut seen: Vec<(IpAddr, Class)> = Vec::new();
        for &(addr, class) in &self.users {
            match seen.iter().find(|(a, _)| *a == addr) {
                Some((_, c)) if c.label() != class.label() => {
                    return Err(GenerateError::BadArgument(format!(
                        "users of {c} and {class} share the client address {addr}, so the \
                         ground truth cannot be told by address: use fewer users (at most one \
                         per address) or IPv4"
                    )));
                }
                Some(_) => {}
                None => {
                    seen.push((addr, class));
                    let plen = if addr.is_ipv4() { 32 } else { 128 };
                    rules.push(format!("net {addr}/{plen} -> {}", class.label()));
                }
            }
        }
        Ok(rules)
    }
}

/// Removes the network namespaces (and veth pairs) of this process's live
/// runs still in progress, for a process that is about to exit without
/// waiting for them (stopped with Ctrl-C during a run meant to last for
/// hours). Their traffic stops; a run that goes on fails.
pub fn remove_namespaces_now() {
    net::remove_all_now();
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One label row.
pub(crate) struct Row {
    pub proto: &'static str,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub class: Class,
    pub app: &'static str,
    pub session: String,
    pub start: u64,
    pub end: u64,
}

/// Server addresses of a run.
pub(crate) struct Ports {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub ftp: SocketAddr,
    pub rsync: SocketAddr,
    pub dns: SocketAddr,
    pub sip: SocketAddr,
}

/// Everything the users share.
pub(crate) struct Ctx {
    pub cfg: GenerateConfig,
    pub addrs: Addrs,
    pub ns: ServerNs,
    pub ports: Ports,
    pub tcp: Arc<Scripts>,
    pub dns: Arc<UdpScripts>,
    pub sip: Arc<UdpScripts>,
    pub stats: Arc<ServerStats>,
    pub stop: Arc<AtomicBool>,
    pub lag: Arc<lag::Lag>,
    pub start: Instant,
    pub deadline: Instant,
    extra: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Ctx {
    /// Serves one scripted connection on `l` (an FTP data port).
    pub fn serve_once(&self, l: TcpListener) {
        let h = serve_tcp(
            l,
            self.tcp.clone(),
            self.stats.clone(),
            self.stop.clone(),
            true,
        );
        self.extra.lock().expect("extra servers").push(h);
    }
}

/// Runs the mix live over loopback; see [`run_live_with`].
pub fn run_live<L: Write>(
    cfg: &GenerateConfig,
    labels: &mut L,
) -> Result<LiveSummary, GenerateError> {
    run_live_with(cfg, LiveNet::Loopback, labels)
}

/// Runs the mix live for `cfg.duration_ns`, writing one label row per flow
/// (the real sockets' 5-tuples and wall-clock times); see [`run_live_opts`].
pub fn run_live_with<L: Write>(
    cfg: &GenerateConfig,
    net: LiveNet,
    labels: &mut L,
) -> Result<LiveSummary, GenerateError> {
    run_live_opts(cfg, net, labels, LiveOptions::default())
}

/// Runs the mix live for `cfg.duration_ns` (sessions in flight at the end
/// complete, as offline), writing one label row per flow, optionally
/// recording the traffic. A namespace created for [`LiveNet::Netns`] is
/// removed before returning, also on error.
pub fn run_live_opts<L: Write>(
    cfg: &GenerateConfig,
    net: LiveNet,
    labels: &mut L,
    mut opts: LiveOptions<'_>,
) -> Result<LiveSummary, GenerateError> {
    cfg.validate()?;
    let (netns, addrs, ns) = match net {
        LiveNet::Loopback => (None, Addrs::loopback(cfg.users, cfg.ipv6), ServerNs::here()),
        LiveNet::Netns => {
            let n = Netns::create(cfg.users, cfg.ipv6)?;
            let ns = ServerNs::enter(n.path())?;
            let a = n.addrs.clone();
            (Some(n), a, ns)
        }
    };
    let well_known = netns.is_some();
    let port = |p: u16| if well_known { p } else { 0 };
    let server = addrs.server;
    let listen = |p: u16, what: &str| ns.listen(server, port(p)).map_err(|e| sock_err(what, e));
    let http = listen(80, "the HTTP server socket")?;
    let https = listen(443, "the HTTPS server socket")?;
    let ftp = listen(21, "the FTP server socket")?;
    let rsync = listen(873, "the rsync server socket")?;
    let dns = ns
        .udp(server, port(53))
        .map_err(|e| sock_err("the DNS server socket", e))?;
    let sip = ns
        .udp(server, port(5060))
        .map_err(|e| sock_err("the SIP server socket", e))?;
    let addr = |r: std::io::Result<SocketAddr>| r.map_err(|e| sock_err("a server socket", e));
    let ports = Ports {
        http: addr(http.local_addr())?,
        https: addr(https.local_addr())?,
        ftp: addr(ftp.local_addr())?,
        rsync: addr(rsync.local_addr())?,
        dns: addr(dns.local_addr())?,
        sip: addr(sip.local_addr())?,
    };
    if cfg.mix.iter().any(|(c, w)| *c == Class::VoipIcmp && *w > 0) {
        // Fail before any traffic if ICMP sockets are not allowed.
        icmp::Pinger::open(addrs.client(0), server, 1)?;
    }
    let mix: Vec<(Class, u32)> = cfg.mix.iter().copied().filter(|(_, w)| *w > 0).collect();
    if let Some(f) = opts.on_plan.as_mut() {
        let plan = LivePlan {
            interface: addrs.interface.clone(),
            server,
            dns_port: ports.dns.port(),
            // As the users are made below.
            users: (0..cfg.users)
                .map(|i| (addrs.client(i), crate::class_of_user(&mix, i, cfg.users)))
                .collect(),
            filter: (netns.is_none() && !cfg.ipv6)
                .then(|| format!("net {}", net::LOOPBACK_CLIENT_NET)),
        };
        if !f(&plan) {
            return Err(GenerateError::Cancelled);
        }
    }
    let recorder = match opts.record {
        Some(p) => Some(record::Recorder::start(&addrs.interface, p, opts.snaplen)?),
        None => None,
    };
    if let Some(f) = opts.on_ready.as_mut() {
        f(&addrs.interface);
    }
    let start = Instant::now();
    let ctx = Ctx {
        cfg: cfg.clone(),
        addrs,
        ns,
        ports,
        tcp: Arc::new(Scripts::default()),
        dns: Arc::new(UdpScripts::default()),
        sip: Arc::new(UdpScripts::default()),
        stats: Arc::new(ServerStats::default()),
        stop: Arc::new(AtomicBool::new(false)),
        lag: Arc::new(lag::Lag::new(start, cfg.duration_ns)),
        start,
        deadline: start + Duration::from_nanos(cfg.duration_ns),
        extra: Mutex::new(Vec::new()),
    };
    let mut servers = Vec::new();
    for l in [http, https, ftp, rsync] {
        servers.push(serve_tcp(
            l,
            ctx.tcp.clone(),
            ctx.stats.clone(),
            ctx.stop.clone(),
            false,
        ));
    }
    servers.push(serve_udp(dns, ctx.dns.clone(), ctx.stop.clone()));
    servers.push(serve_udp(sip, ctx.sip.clone(), ctx.stop.clone()));

    let (tx, rx) = mpsc::channel::<Row>();
    let mut summary = LiveSummary::default();
    let (written, first_err) = thread::scope(|s| {
        let mut users = Vec::new();
        for i in 0..cfg.users {
            let class = crate::class_of_user(&mix, i, cfg.users);
            let u = user::User::new(&ctx, i, class, tx.clone());
            users.push(s.spawn(move || u.run()));
        }
        drop(tx);
        let written = (|| -> Result<u64, GenerateError> {
            writeln!(labels, "{LABELS_HEADER}")?;
            let mut n = 0;
            for r in rx {
                writeln!(
                    labels,
                    "{},{},{},{},{},{},{},{},{},{},{}",
                    cfg.pcap_name,
                    r.proto,
                    r.client.ip(),
                    r.client.port(),
                    r.server.ip(),
                    r.server.port(),
                    r.class.label(),
                    r.session,
                    iso8601(r.start),
                    iso8601(r.end),
                    r.app
                )?;
                n += 1;
            }
            Ok(n)
        })();
        let mut first_err = None;
        for u in users {
            if let Err(e) = u.join().expect("user thread") {
                first_err.get_or_insert(e);
            }
        }
        (written, first_err)
    });
    ctx.stop.store(true, Ordering::Relaxed);
    for s in servers {
        let _ = s.join();
    }
    for s in ctx.extra.lock().expect("extra servers").drain(..) {
        let _ = s.join();
    }
    let recorded = recorder.map(|r| r.finish()).transpose();
    let flushed = labels.flush();
    summary.flows = written?;
    flushed?;
    summary.recorded = recorded?;
    summary.bytes_served = ctx.stats.bytes.load(Ordering::Relaxed);
    summary.lag = ctx.lag.report();
    summary.interface = ctx.addrs.interface.clone();
    summary.namespace = netns.as_ref().map(|n| n.name().to_string());
    summary.offloads_off = netns.as_ref().is_some_and(|n| n.offloads_off);
    drop(ctx);
    drop(netns);
    match first_err {
        Some(e) => Err(sock_err("a client connection", e)),
        None => Ok(summary),
    }
}

//! Live mode: real sockets over loopback, with the servers and clients run
//! by this process, paced in real time by the class models; record it with
//! e.g. `tcpdump -i lo -w live.pcap` and use the labels written here.
//!
//! Scope (honest): loopback only (127.0.0.1 or ::1), no network namespace
//! or veth pair yet; plain HTTP/1.1 for web, video and bulk (no TLS, no
//! FTP/rsync dialogue: bulk is one HTTP download, app `http-bulk`); SIP and
//! RTP over UDP for VoIP; DNS over UDP to an in-process resolver. The
//! access-link rate is applied by the servers' pacing; the RTT is
//! loopback's. `voip-icmp` needs ICMP sockets and is rejected here (generate
//! it offline).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{RngCore, SeedableRng};

use crate::dist::{self, Rng};
use crate::proto::{dns_query, dns_response, rtp_header, QTYPE_A, QTYPE_AAAA};
use crate::wire::{random_block, Ip};
use crate::{iso8601, Class, GenerateConfig, GenerateError, LABELS_HEADER};

/// What a live run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveSummary {
    pub flows: u64,
    pub bytes_served: u64,
    /// Interface to capture on: `lo`, or the host end of the veth pair.
    pub interface: String,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn sock_err(what: &str, e: std::io::Error) -> GenerateError {
    let fix = if e.kind() == std::io::ErrorKind::PermissionDenied {
        "run with permission to open sockets (e.g. outside a sandbox that forbids them)"
    } else {
        "check that the loopback interface is up and the open-file limit (ulimit -n) is not exhausted"
    };
    GenerateError::BadArgument(format!("cannot open {what}: {e}; {fix}"))
}

struct Row {
    proto: &'static str,
    client: SocketAddr,
    server: SocketAddr,
    class: Class,
    app: &'static str,
    session: String,
    start: u64,
    end: u64,
}

type Rows = mpsc::Sender<Row>;

struct Shared {
    client_ip: IpAddr,
    http: SocketAddr,
    dns: SocketAddr,
    sip: SocketAddr,
    deadline: Instant,
    rate_bps: f64,
}

/// Writes `n` filler bytes to `s` at about `rate_bps`.
fn paced_write(s: &mut TcpStream, head: &[u8], n: u64, rate_bps: f64) -> std::io::Result<u64> {
    s.write_all(head)?;
    let block = random_block();
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        let k = (n - sent).min(16_384) as usize;
        s.write_all(&block[..k])?;
        sent += k as u64;
        let due = Duration::from_secs_f64(sent as f64 * 8.0 / rate_bps);
        if let Some(w) = due.checked_sub(t0.elapsed()) {
            thread::sleep(w);
        }
    }
    Ok(sent + head.len() as u64)
}

/// HTTP/1.1 server: `GET /anything?n=BYTES` answers BYTES of filler.
fn serve_http(mut s: TcpStream, rate_bps: f64, served: Arc<std::sync::atomic::AtomicU64>) {
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
        }
        let n: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.split("n=").nth(1))
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let head = format!(
            "HTTP/1.1 200 OK\r\nServer: trafficscope-live\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n\r\n"
        );
        match paced_write(&mut s, head.as_bytes(), n, rate_bps) {
            Ok(b) => {
                served.fetch_add(b, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
}

/// Client side of one HTTP connection.
struct HttpConn {
    s: TcpStream,
    r: BufReader<TcpStream>,
    start: u64,
}

impl HttpConn {
    fn open(sh: &Shared) -> std::io::Result<HttpConn> {
        let s = TcpStream::connect(sh.http)?;
        s.set_nodelay(true)?;
        Ok(HttpConn {
            r: BufReader::new(s.try_clone()?),
            s,
            start: now_ns(),
        })
    }

    fn get(&mut self, host: &str, path: &str, n: u64) -> std::io::Result<()> {
        let req = crate::proto::http_request(&format!("{path}?n={n}"), host, "*/*");
        self.s.write_all(&req)?;
        let mut len = 0u64;
        loop {
            let mut h = String::new();
            if self.r.read_line(&mut h)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if let Some(v) = h.strip_prefix("Content-Length: ") {
                len = v.trim().parse().unwrap_or(0);
            }
            if h == "\r\n" {
                break;
            }
        }
        std::io::copy(&mut (&mut self.r).take(len), &mut std::io::sink())?;
        Ok(())
    }

    fn close(self, rows: &Rows, class: Class, app: &'static str, session: &str) {
        let client = self.s.local_addr();
        let server = self.s.peer_addr();
        let _ = self.s.shutdown(Shutdown::Both);
        if let (Ok(client), Ok(server)) = (client, server) {
            let _ = rows.send(Row {
                proto: "TCP",
                client,
                server,
                class,
                app,
                session: session.to_string(),
                start: self.start,
                end: now_ns(),
            });
        }
    }
}

fn lookup(
    sh: &Shared,
    rows: &Rows,
    rng: &mut Rng,
    name: &str,
    session: &str,
) -> std::io::Result<()> {
    let s = UdpSocket::bind((sh.client_ip, 0))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let start = now_ns();
    let mut buf = [0u8; 512];
    for qt in [QTYPE_A, QTYPE_AAAA] {
        s.send_to(&dns_query(rng.next_u32() as u16, name, qt), sh.dns)?;
        let _ = s.recv_from(&mut buf)?;
    }
    let _ = rows.send(Row {
        proto: "UDP",
        client: s.local_addr()?,
        server: sh.dns,
        class: Class::Dns,
        app: "dns",
        session: session.to_string(),
        start,
        end: now_ns(),
    });
    Ok(())
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        thread::sleep(d);
    }
}

fn user_loop(
    class: Class,
    cfg: &GenerateConfig,
    sh: &Shared,
    rows: &Rows,
    user: u32,
    mut rng: Rng,
) -> std::io::Result<()> {
    let mut k = 0u64;
    while Instant::now() < sh.deadline {
        k += 1;
        let sid = format!("u{user}s{k}");
        match class {
            Class::Web => {
                let p = &cfg.web;
                let host = format!("www.site{}.example.com", rng.next_u32() % 40);
                lookup(sh, rows, &mut rng, &host, &sid)?;
                let mut c = HttpConn::open(sh)?;
                let base = dist::lognormal(&mut rng, p.main_mu, p.main_sigma)
                    .clamp(p.main_min, p.main_max) as u64;
                c.get(&host, "/index.html", base)?;
                thread::sleep(Duration::from_secs_f64(dist::exp(&mut rng, p.parse_mean_s)));
                let n = (dist::pareto_trunc(&mut rng, p.objs_k, p.objs_alpha, 1e9).min(p.objs_max)
                    - p.objs_k)
                    .max(0.0) as usize;
                let sizes: Vec<u64> = (0..n)
                    .map(|_| crate::model::web_object_size(&mut rng, p))
                    .collect();
                let k = n.clamp(1, p.max_conns_per_host as usize);
                let mut conns = vec![c];
                for _ in 1..k.min(n.max(1)) {
                    conns.push(HttpConn::open(sh)?);
                }
                thread::scope(|s| -> std::io::Result<()> {
                    let mut hs = Vec::new();
                    for (i, mut c) in conns.into_iter().enumerate() {
                        let mine: Vec<u64> = sizes.iter().skip(i).step_by(k).copied().collect();
                        let host = host.clone();
                        let sid = sid.clone();
                        hs.push(s.spawn(move || -> std::io::Result<()> {
                            for (j, sz) in mine.iter().enumerate() {
                                c.get(&host, &format!("/assets/{i}-{j}.bin"), *sz)?;
                            }
                            c.close(rows, Class::Web, "http", &sid);
                            Ok(())
                        }));
                    }
                    for h in hs {
                        h.join().expect("web connection thread")?;
                    }
                    Ok(())
                })?;
                let think =
                    dist::pareto_trunc(&mut rng, p.think_xm_s, p.think_alpha, p.think_max_s);
                sleep_until((Instant::now() + Duration::from_secs_f64(think)).min(sh.deadline));
            }
            Class::Video => {
                let p = &cfg.video;
                let host = "cdn1.video.example.net";
                lookup(sh, rows, &mut rng, host, &sid)?;
                let mut c = HttpConn::open(sh)?;
                let seg = p.segment_s[(rng.next_u32() as usize) % p.segment_s.len()] as f64;
                let mut ladder = p.ladder.clone();
                ladder.sort_unstable();
                let (mut rung, mut buffer, mut est) = (0usize, 0.0f64, 0.0f64);
                let mut n = 0;
                while Instant::now() < sh.deadline {
                    n += 1;
                    let br = p.fixed_bitrate.unwrap_or(ladder[rung]);
                    let size = (br as f64 * seg / 8.0
                        * dist::uniform(&mut rng, 1.0 - p.vbr, 1.0 + p.vbr))
                        as u64;
                    let t0 = Instant::now();
                    c.get(host, &format!("/v/seg-{n:05}-{br}.m4s"), size)?;
                    let dl = t0.elapsed().as_secs_f64();
                    let thr = size as f64 * 8.0 / dl.max(1e-6);
                    est = if est == 0.0 {
                        thr
                    } else {
                        0.7 * est + 0.3 * thr
                    };
                    rung = ladder
                        .iter()
                        .rposition(|b| (*b as f64) <= p.abr_safety * est)
                        .unwrap_or(0);
                    buffer = (buffer - dl).max(0.0) + seg;
                    let wait = (buffer - (p.buffer_target_s - seg)).max(0.0);
                    buffer -= wait;
                    sleep_until((Instant::now() + Duration::from_secs_f64(wait)).min(sh.deadline));
                }
                c.close(rows, Class::Video, "dash", &sid);
            }
            Class::VideoDownload | Class::Bulk => {
                let (class, app, size) = if class == Class::Bulk {
                    let p = &cfg.bulk;
                    let s = dist::lognormal(&mut rng, p.size_median_bytes.ln(), p.size_sigma)
                        .clamp(p.size_min_bytes, p.size_max_bytes);
                    (Class::Bulk, "http-bulk", s as u64)
                } else {
                    let p = &cfg.video;
                    let s =
                        dist::lognormal(&mut rng, p.download_median_bytes.ln(), p.download_sigma)
                            .clamp(1e5, p.download_max_bytes);
                    (Class::VideoDownload, "http-download", s as u64)
                };
                let host = "downloads1.example.net";
                lookup(sh, rows, &mut rng, host, &sid)?;
                let mut c = HttpConn::open(sh)?;
                c.get(host, "/file.bin", size)?;
                c.close(rows, class, app, &sid);
                let idle = dist::exp(&mut rng, cfg.idle_mean_s);
                sleep_until((Instant::now() + Duration::from_secs_f64(idle)).min(sh.deadline));
            }
            Class::Voip => voip_call(cfg, sh, rows, &mut rng, &sid)?,
            Class::Dns => {
                let names = [
                    "time.example.com",
                    "updates.example.org",
                    "mail.example.com",
                    "api.example.com",
                ];
                let name = names[(rng.next_u32() % 4) as usize];
                lookup(sh, rows, &mut rng, name, &sid)?;
                let gap = dist::exp(&mut rng, cfg.dns.gap_mean_s);
                sleep_until((Instant::now() + Duration::from_secs_f64(gap)).min(sh.deadline));
            }
            Class::VoipIcmp => unreachable!("rejected before start"),
        }
    }
    Ok(())
}

/// Sends G.711 RTP at 50 packets/s during Brady talk spurts until `end`.
fn rtp_talker(
    s: &UdpSocket,
    to: SocketAddr,
    cfg: &GenerateConfig,
    rng: &mut Rng,
    end: Instant,
) -> std::io::Result<()> {
    let p = &cfg.voip;
    let (mut seq, mut ts, ssrc) = (rng.next_u32() as u16, rng.next_u32(), rng.next_u32());
    let mut talking = dist::chance(rng, p.on_mean_s / (p.on_mean_s + p.off_mean_s));
    let mut toggle = Instant::now()
        + Duration::from_secs_f64(dist::exp(
            rng,
            if talking { p.on_mean_s } else { p.off_mean_s },
        ));
    let mut marker = true;
    let mut next = Instant::now();
    let payload = &random_block()[..160];
    while next < end {
        if next >= toggle {
            talking = !talking;
            marker |= talking;
            toggle += Duration::from_secs_f64(dist::exp(
                rng,
                if talking { p.on_mean_s } else { p.off_mean_s },
            ));
        }
        if talking {
            let mut b = rtp_header(marker, 0, seq, ts, ssrc).to_vec();
            b.extend_from_slice(payload);
            s.send_to(&b, to)?;
            marker = false;
            seq = seq.wrapping_add(1);
        }
        ts = ts.wrapping_add(160);
        next += Duration::from_millis(20);
        sleep_until(next);
    }
    Ok(())
}

fn voip_call(
    cfg: &GenerateConfig,
    sh: &Shared,
    rows: &Rows,
    rng: &mut Rng,
    sid: &str,
) -> std::io::Result<()> {
    let local: IpAddr = sh.client_ip;
    let sip = UdpSocket::bind((local, 0))?;
    let rtp = UdpSocket::bind((local, 0))?;
    sip.set_read_timeout(Some(Duration::from_secs(10)))?;
    let start = now_ns();
    let call_id = format!("{:016x}@example.com", rng.next_u64());
    let invite = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nX-RTP: {}\r\nContent-Length: 0\r\n\r\n",
        rtp.local_addr()?
    );
    sip.send_to(invite.as_bytes(), sh.sip)?;
    let mut buf = [0u8; 2048];
    let media = loop {
        let (n, _) = sip.recv_from(&mut buf)?;
        let m = String::from_utf8_lossy(&buf[..n]).to_string();
        if m.starts_with("SIP/2.0 200") {
            let a = m
                .lines()
                .find_map(|l| l.strip_prefix("X-RTP: "))
                .and_then(|a| a.parse::<SocketAddr>().ok());
            break a.ok_or_else(|| std::io::Error::other("200 OK without media address"))?;
        }
    };
    sip.send_to(format!("ACK sip:bob@example.com SIP/2.0\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").as_bytes(), sh.sip)?;
    let call = dist::exp(rng, cfg.voip.call_mean_s).max(cfg.voip.call_min_s);
    let end = (Instant::now() + Duration::from_secs_f64(call)).min(sh.deadline);
    let rtp_start = now_ns();
    rtp_talker(&rtp, media, cfg, rng, end)?;
    sip.send_to(format!("BYE sip:bob@example.com SIP/2.0\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").as_bytes(), sh.sip)?;
    let _ = sip.recv_from(&mut buf);
    let t = now_ns();
    for (proto, s, server, app, st) in [
        ("UDP", &sip, sh.sip, "sip", start),
        ("UDP", &rtp, media, "rtp", rtp_start),
    ] {
        let _ = rows.send(Row {
            proto,
            client: s.local_addr()?,
            server,
            class: Class::Voip,
            app,
            session: sid.to_string(),
            start: st,
            end: t,
        });
    }
    Ok(())
}

/// SIP proxy and far end: answers INVITE with 100/180/200 (naming its
/// media socket), then talks back on RTP until BYE.
fn serve_sip(
    s: UdpSocket,
    cfg: GenerateConfig,
    stop: Arc<AtomicBool>,
    seed: u64,
    ns: Option<PathBuf>,
) {
    // Media sockets are opened here, so this thread lives in the namespace.
    if let Some(p) = ns {
        if enter_ns(&p).is_err() {
            return;
        }
    }
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 2048];
    let mut calls: Vec<(String, Arc<AtomicBool>)> = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = s.recv_from(&mut buf) else {
            continue;
        };
        let m = String::from_utf8_lossy(&buf[..len]).to_string();
        let call_id = m
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap_or("")
            .to_string();
        if m.starts_with("INVITE") {
            let Some(peer) = m
                .lines()
                .find_map(|l| l.strip_prefix("X-RTP: "))
                .and_then(|a| a.parse::<SocketAddr>().ok())
            else {
                continue;
            };
            let Ok(media) = s.local_addr().and_then(|a| UdpSocket::bind((a.ip(), 0))) else {
                continue;
            };
            let Ok(maddr) = media.local_addr() else {
                continue;
            };
            for (code, reason) in [(100, "Trying"), (180, "Ringing")] {
                let _ = s.send_to(format!("SIP/2.0 {code} {reason}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").as_bytes(), from);
            }
            let _ = s.send_to(format!("SIP/2.0 200 OK\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nX-RTP: {maddr}\r\nContent-Length: 0\r\n\r\n").as_bytes(), from);
            let hang = Arc::new(AtomicBool::new(false));
            calls.push((call_id.clone(), hang.clone()));
            let cfg = cfg.clone();
            n += 1;
            let mut rng = Rng::seed_from_u64(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            thread::spawn(move || {
                let mut sink = [0u8; 512];
                let _ = media.set_nonblocking(true);
                // Talk back in 1 s slices until the caller hangs up.
                while !hang.load(Ordering::Relaxed) {
                    let _ = rtp_talker(
                        &media,
                        peer,
                        &cfg,
                        &mut rng,
                        Instant::now() + Duration::from_secs(1),
                    );
                    while media.recv_from(&mut sink).is_ok() {}
                }
            });
        } else if m.starts_with("BYE") {
            if let Some((_, h)) = calls.iter().find(|(c, _)| *c == call_id) {
                h.store(true, Ordering::Relaxed);
            }
            let _ = s.send_to(format!("SIP/2.0 200 OK\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").as_bytes(), from);
        }
    }
    for (_, h) in calls {
        h.store(true, Ordering::Relaxed);
    }
}

fn serve_dns(s: UdpSocket, stop: Arc<AtomicBool>, server: IpAddr) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 512];
    let answer = match server {
        IpAddr::V6(a) => Ip::V6(a.octets()),
        IpAddr::V4(a) => Ip::V4(a.octets()),
    };
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = s.recv_from(&mut buf) else {
            continue;
        };
        if n < 17 {
            continue;
        }
        // Decode the question name written by `dns_query`.
        let mut name = Vec::new();
        let mut i = 12;
        while i < n && buf[i] != 0 {
            let l = buf[i] as usize;
            if i + 1 + l > n {
                break;
            }
            name.push(String::from_utf8_lossy(&buf[i + 1..i + 1 + l]).to_string());
            i += 1 + l;
        }
        if i + 3 > n {
            continue;
        }
        let qt = u16::from_be_bytes([buf[i + 1], buf[i + 2]]);
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        let _ = s.send_to(
            &dns_response(id, &name.join("."), qt, None, &[answer], 300),
            from,
        );
    }
}

/// Where live traffic runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveNet {
    /// Clients and servers on 127.0.0.1 / ::1; capture on `lo`.
    Loopback,
    /// Servers in a network namespace created for the run, reached over a
    /// veth pair (capture on the host end, named in [`LiveSummary`]);
    /// needs root or CAP_NET_ADMIN and iproute2's `ip`. Removed at the end.
    Netns,
}

fn ip_cmd(args: &[&str]) -> Result<(), GenerateError> {
    let out = std::process::Command::new("ip").args(args).output().map_err(|e| {
        GenerateError::BadArgument(format!(
            "cannot run `ip` ({e}): the network-namespace mode needs iproute2 (apt-get install iproute2), or use loopback mode"
        ))
    })?;
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

/// A namespace with a veth pair; deleted on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: IpAddr,
    ns_ip: IpAddr,
}

impl Netns {
    fn create(v6: bool) -> Result<Netns, GenerateError> {
        let pid = std::process::id();
        let name = format!("tsgen{pid}");
        let host_if = format!("tsgh{}", pid % 10_000_000);
        let ns_if = format!("tsgn{}", pid % 10_000_000);
        // A /30 (or /64) of its own per process.
        let (a, b) = (((pid >> 6) & 0xff) as u8, ((pid & 0x3f) * 4) as u8);
        let (host_ip, ns_ip, plen): (IpAddr, IpAddr, u8) = if v6 {
            let seg = (pid & 0xffff) as u16;
            (
                Ipv6Addr::new(0xfd00, 0x213, seg, 0, 0, 0, 0, 1).into(),
                Ipv6Addr::new(0xfd00, 0x213, seg, 0, 0, 0, 0, 2).into(),
                64,
            )
        } else {
            (
                Ipv4Addr::new(10, 213, a, b + 1).into(),
                Ipv4Addr::new(10, 213, a, b + 2).into(),
                30,
            )
        };
        ip_cmd(&["netns", "add", &name])?;
        let ns = Netns {
            name,
            host_if,
            host_ip,
            ns_ip,
        };
        let h = format!("{host_ip}/{plen}");
        let n = format!("{ns_ip}/{plen}");
        let mut host_addr = vec!["addr", "add", &h, "dev", &ns.host_if];
        let mut ns_addr = vec![
            "netns", "exec", &ns.name, "ip", "addr", "add", &n, "dev", &ns_if,
        ];
        if v6 {
            host_addr.push("nodad");
            ns_addr.push("nodad");
        }
        ip_cmd(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ])?;
        ip_cmd(&["link", "set", &ns_if, "netns", &ns.name])?;
        ip_cmd(&host_addr)?;
        ip_cmd(&["link", "set", &ns.host_if, "up"])?;
        ip_cmd(&ns_addr)?;
        ip_cmd(&["netns", "exec", &ns.name, "ip", "link", "set", &ns_if, "up"])?;
        ip_cmd(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip_cmd(&["netns", "del", &self.name]);
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter_ns(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: setns on a valid namespace fd affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn bind_servers(ip: IpAddr) -> Result<(TcpListener, UdpSocket, UdpSocket), GenerateError> {
    let http = TcpListener::bind((ip, 0)).map_err(|e| sock_err("the HTTP server socket", e))?;
    let dns = UdpSocket::bind((ip, 0)).map_err(|e| sock_err("the DNS server socket", e))?;
    let sip = UdpSocket::bind((ip, 0)).map_err(|e| sock_err("the SIP server socket", e))?;
    http.set_nonblocking(true)
        .map_err(|e| sock_err("the HTTP server socket", e))?;
    Ok((http, dns, sip))
}

/// Runs the mix live over loopback; see [`run_live_with`].
pub fn run_live<L: Write>(
    cfg: &GenerateConfig,
    labels: &mut L,
) -> Result<LiveSummary, GenerateError> {
    run_live_with(cfg, LiveNet::Loopback, labels)
}

/// Runs the mix live for `cfg.duration_ns`, writing one label row per flow
/// (the real sockets' 5-tuples and wall-clock times). A namespace created
/// for [`LiveNet::Netns`] is removed before returning, also on error.
pub fn run_live_with<L: Write>(
    cfg: &GenerateConfig,
    net: LiveNet,
    labels: &mut L,
) -> Result<LiveSummary, GenerateError> {
    cfg.validate()?;
    if cfg.mix.iter().any(|(c, w)| *c == Class::VoipIcmp && *w > 0) {
        return Err(GenerateError::BadArgument(
            "voip-icmp needs ICMP sockets, which live mode does not open: generate it offline (trafficscope generate without --live)".into(),
        ));
    }
    let (netns, client_ip, server_ip, interface) = match net {
        LiveNet::Loopback => {
            let ip: IpAddr = if cfg.ipv6 {
                Ipv6Addr::LOCALHOST.into()
            } else {
                Ipv4Addr::LOCALHOST.into()
            };
            (None, ip, ip, "lo".to_string())
        }
        LiveNet::Netns => {
            let ns = Netns::create(cfg.ipv6)?;
            let (c, s, i) = (ns.host_ip, ns.ns_ip, ns.host_if.clone());
            (Some(ns), c, s, i)
        }
    };
    let ns_path = netns.as_ref().map(|n| n.path());
    let (http, dns, sip) = match &ns_path {
        None => bind_servers(server_ip)?,
        Some(p) => {
            let p = p.clone();
            thread::spawn(move || {
                enter_ns(&p).map_err(|e| sock_err("the server sockets inside the namespace", e))?;
                bind_servers(server_ip)
            })
            .join()
            .expect("namespace setup thread")?
        }
    };
    let sh = Arc::new(Shared {
        client_ip,
        http: http
            .local_addr()
            .map_err(|e| sock_err("the HTTP server socket", e))?,
        dns: dns
            .local_addr()
            .map_err(|e| sock_err("the DNS server socket", e))?,
        sip: sip
            .local_addr()
            .map_err(|e| sock_err("the SIP server socket", e))?,
        deadline: Instant::now() + Duration::from_nanos(cfg.duration_ns),
        rate_bps: cfg.link_rate_bps,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut servers = Vec::new();
    {
        let (stop, sh, served) = (stop.clone(), sh.clone(), served.clone());
        servers.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match http.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let (rate, served) = (sh.rate_bps, served.clone());
                        thread::spawn(move || serve_http(s, rate, served));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }
    {
        let stop = stop.clone();
        servers.push(thread::spawn(move || serve_dns(dns, stop, server_ip)));
    }
    {
        let (stop, c, seed, p) = (stop.clone(), cfg.clone(), cfg.seed, ns_path.clone());
        servers.push(thread::spawn(move || serve_sip(sip, c, stop, seed, p)));
    }
    let (tx, rx) = mpsc::channel::<Row>();
    let mix: Vec<(Class, u32)> = cfg.mix.iter().copied().filter(|(_, w)| *w > 0).collect();
    let mut users = Vec::new();
    for i in 0..cfg.users {
        let class = crate::class_of_user(&mix, i, cfg.users);
        let (cfg, sh, tx) = (cfg.clone(), sh.clone(), tx.clone());
        let mut rng = Rng::seed_from_u64(cfg.seed);
        rng.set_stream(i as u64 + 1);
        users.push(thread::spawn(move || {
            user_loop(class, &cfg, &sh, &tx, i, rng)
        }));
    }
    drop(tx);
    writeln!(labels, "{LABELS_HEADER}")?;
    let mut summary = LiveSummary::default();
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
        summary.flows += 1;
    }
    let mut first_err = None;
    for u in users {
        if let Err(e) = u.join().expect("user thread") {
            first_err.get_or_insert(e);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for s in servers {
        let _ = s.join();
    }
    labels.flush()?;
    summary.bytes_served = served.load(Ordering::Relaxed);
    summary.interface = interface;
    drop(netns);
    match first_err {
        Some(e) => Err(sock_err("a client connection", e)),
        None => Ok(summary),
    }
}

//! The client side of live sessions: each user runs the offline class
//! models' sessions in real time, drawing from the same laws with the same
//! per-user seed, over real sockets from its own address.

use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::icmp::Pinger;
use super::net::{connect_from, udp_pair};
use super::script::{read_n, read_to_eof, sleep_until, write_paced, Pace, Step, WireMsg};
use super::{now_ns, Ctx, Row};
use crate::dist::{self, Rng};
use crate::model::bulk::{
    background_name, bulk_plan, ftp_passive, ftp_transfer, rsync_args, FTP_GREETING, FTP_LOGIN,
    RSYNC_GREETING, RSYNC_PREAMBLE, RSYNC_STATS,
};
use crate::model::tls_server_flight;
use crate::model::video::{download_size, mpd_total_s, segment_size, video_host, video_tls};
use crate::model::voip::{call_length_s, new_dialog, ping_payload, Frame, Talker};
use crate::model::web::{
    accept_for, base_path, body_fill, embedded_object, is_tls, main_size, objects_per_page,
    site_host, third_parties, tls_len, zipf_weights,
};
use crate::proto::{
    dns_query, dns_response, http_request, http_response_head, mpd, sdp, tls_client_hello, QTYPE_A,
    QTYPE_AAAA,
};
use crate::wire::{framed_len, render_fill, FillKind, Ip};
use crate::Class;

const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

pub(crate) fn ip_of(a: IpAddr) -> Ip {
    match a {
        IpAddr::V4(v) => Ip::V4(v.octets()),
        IpAddr::V6(v) => Ip::V6(v.octets()),
    }
}

/// A client TCP connection with its server's script.
pub(crate) struct Conn {
    s: TcpStream,
    tx: Option<mpsc::Sender<Step>>,
    client: SocketAddr,
    server: SocketAddr,
    start: u64,
    app: &'static str,
}

impl Conn {
    fn send_step(&self, st: Step) -> io::Result<()> {
        self.tx
            .as_ref()
            .and_then(|t| t.send(st).ok())
            .ok_or_else(|| io::Error::other("server side of the connection is gone"))
    }

    /// Client message, then the server's answer, read in full.
    fn exchange(&mut self, req: &[u8], resp: WireMsg, pace: &Pace) -> io::Result<()> {
        let n = resp.len();
        self.send_step(Step::Expect(req.len() as u64))?;
        self.send_step(Step::Send(resp, pace.clone()))?;
        self.s.write_all(req)?;
        read_n(&mut self.s, n)
    }

    /// A message the server sends unprompted (greetings, file data).
    fn server_sends(&mut self, m: WireMsg, pace: &Pace) -> io::Result<()> {
        let n = m.len();
        self.send_step(Step::Send(m, pace.clone()))?;
        read_n(&mut self.s, n)
    }

    /// A message from the client that gets no answer of its own.
    fn client_sends(&mut self, m: WireMsg, pace: &Pace) -> io::Result<()> {
        self.send_step(Step::Expect(m.len()))?;
        write_paced(&mut self.s, &m, pace).map(|_| ())
    }

    fn row(&self, class: Class, sid: &str) -> Row {
        Row {
            proto: "TCP",
            client: self.client,
            server: self.server,
            class,
            app: self.app,
            session: sid.to_string(),
            start: self.start,
            end: now_ns(),
        }
    }

    /// The client closes first; returns the label row.
    fn close_client(mut self, class: Class, sid: &str) -> Row {
        self.tx.take();
        let _ = self.s.shutdown(Shutdown::Write);
        read_to_eof(&mut self.s);
        self.row(class, sid)
    }

    /// Asks the server to close after `after`; [`Conn::reap`] then waits.
    fn close_server(&mut self, after: Duration) {
        let _ = self.send_step(Step::CloseAfter(after));
        self.tx.take();
    }

    /// Waits for the server's FIN, closes, returns the label row.
    fn reap(mut self, class: Class, sid: &str) -> Row {
        read_to_eof(&mut self.s);
        self.row(class, sid)
    }
}

/// Embedded objects of a page by host: (content type, path, size).
type HostObjects = Vec<(String, Vec<(&'static str, String, u64)>)>;
/// A connection and the GETs (request, response) it will carry.
type ConnGets = (Http, Vec<(Vec<u8>, WireMsg)>);

/// An HTTP/1.1 connection, plain or in TLS.
struct Http {
    c: Conn,
    host: String,
    tls: bool,
    fin_pending: bool,
    last: Instant,
}

pub(crate) struct User<'a> {
    pub ctx: &'a Ctx,
    pub idx: u32,
    pub class: Class,
    pub ip: IpAddr,
    pub rng: Rng,
    pub rows: mpsc::Sender<Row>,
    dns_cache: Vec<(String, Instant)>,
    sessions: u64,
    next_rtp: u16,
    next_icmp_id: u16,
}

impl<'a> User<'a> {
    pub fn new(ctx: &'a Ctx, idx: u32, class: Class, rows: mpsc::Sender<Row>) -> User<'a> {
        let mut rng = <Rng as rand::SeedableRng>::seed_from_u64(ctx.cfg.seed);
        rng.set_stream(idx as u64 + 1);
        User {
            ctx,
            idx,
            class,
            ip: ctx.addrs.client(idx),
            rng,
            rows,
            dns_cache: Vec::new(),
            sessions: 0,
            next_rtp: 16_384,
            next_icmp_id: (idx as u16).wrapping_mul(7919).wrapping_add(1),
        }
    }

    fn pace(&self, rate_bps: f64) -> Pace {
        Pace {
            rate_bps,
            class: self.class,
            lag: self.ctx.lag.clone(),
        }
    }

    fn link(&self) -> Pace {
        self.pace(self.ctx.cfg.link_rate_bps)
    }

    fn row(&self, r: Row) {
        let _ = self.rows.send(r);
    }

    /// Sleeps until `due` and records how late it woke.
    fn wait(&self, due: Instant) {
        sleep_until(due);
        self.ctx.lag.record_now(self.class, due);
    }

    /// Waits until `due` unless that is at or after the end of the run
    /// (then, as offline, the session stops instead); false when it stops.
    fn wait_before_end(&self, due: Instant) -> bool {
        if due >= self.ctx.deadline {
            return false;
        }
        self.wait(due);
        true
    }

    fn past_deadline(&self) -> bool {
        Instant::now() >= self.ctx.deadline
    }

    /// Runs sessions back to back with exponential idle gaps, as offline:
    /// the first after a uniform stagger, none starting after the end.
    pub fn run(mut self) -> io::Result<()> {
        let cfg = &self.ctx.cfg;
        let stagger = dist::uniform(&mut self.rng, 0.0, (cfg.duration_ns as f64 / 4e9).min(5.0));
        let _first_port = dist::range(&mut self.rng, 32768, 61000);
        self.next_rtp = 16_384 + 2 * dist::range(&mut self.rng, 0, 4000) as u16;
        let mut due = self.ctx.start + secs(stagger);
        while due < self.ctx.deadline {
            self.wait(due);
            self.sessions += 1;
            let sid = format!("u{}s{}", self.idx, self.sessions);
            match self.class {
                Class::Web => self.web(&sid)?,
                Class::Video => self.video(&sid)?,
                Class::VideoDownload => self.download(&sid)?,
                Class::Voip => self.voip(&sid)?,
                Class::VoipIcmp => self.icmp(&sid)?,
                Class::Bulk => self.bulk(&sid)?,
                Class::Dns => self.dns(&sid)?,
            }
            let idle = dist::exp(&mut self.rng, cfg.idle_mean_s);
            due = Instant::now() + secs(idle);
        }
        Ok(())
    }

    fn connect(&self, to: SocketAddr, app: &'static str) -> io::Result<Conn> {
        let s = connect_from(self.ip, to)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        let client = s.local_addr()?;
        let tx = self.ctx.tcp.register(client);
        Ok(Conn {
            s,
            tx: Some(tx),
            client,
            server: to,
            start: now_ns(),
            app,
        })
    }

    // ---- DNS ----

    /// A/AAAA lookup on a fresh port, cached for the answer's TTL (300 s).
    fn lookup(&mut self, name: &str, sid: &str) -> io::Result<()> {
        let now = Instant::now();
        self.dns_cache.retain(|(_, exp)| *exp > now);
        if self.dns_cache.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        self.resolve(name, None, sid)?;
        self.dns_cache
            .push((name.to_string(), now + Duration::from_secs(300)));
        Ok(())
    }

    fn resolve(&mut self, name: &str, cname: Option<&str>, sid: &str) -> io::Result<()> {
        let s = UdpSocket::bind((self.ip, 0))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let local = s.local_addr()?;
        let server = self.ctx.ports.dns;
        let answer = ip_of(self.ctx.addrs.server);
        let order = if self.ctx.cfg.ipv6 {
            [QTYPE_AAAA, QTYPE_A]
        } else {
            [QTYPE_A, QTYPE_AAAA]
        };
        let start = now_ns();
        let mut buf = [0u8; 1500];
        for qt in order {
            let id = self.rng.next_u32() as u16;
            let r = dns_response(id, name, qt, cname, &[answer], 300);
            self.ctx.dns.push(local, vec![(Duration::ZERO, r)]);
            s.send_to(&dns_query(id, name, qt), server)?;
            s.recv_from(&mut buf)?;
        }
        self.row(Row {
            proto: "UDP",
            client: local,
            server,
            class: Class::Dns,
            app: "dns",
            session: sid.to_string(),
            start,
            end: now_ns(),
        });
        Ok(())
    }

    fn dns(&mut self, sid: &str) -> io::Result<()> {
        let p = self.ctx.cfg.dns.clone();
        let mut left = dist::geometric(&mut self.rng, p.queries_mean);
        while left > 0 && !self.past_deadline() {
            left -= 1;
            let (name, cname) = background_name(&mut self.rng);
            self.resolve(name, cname, sid)?;
            if left > 0 {
                let gap = dist::exp(&mut self.rng, p.gap_mean_s);
                if !self.wait_before_end(Instant::now() + secs(gap)) {
                    break;
                }
            }
        }
        Ok(())
    }

    // ---- HTTP(S) ----

    /// Looks up `host`, connects (port 443 with a TLS handshake, or 80).
    fn http_open(
        &mut self,
        host: &str,
        tls: bool,
        app: (&'static str, &'static str),
        sid: &str,
    ) -> io::Result<Http> {
        self.lookup(host, sid)?;
        let (to, app) = if tls {
            (self.ctx.ports.https, app.1)
        } else {
            (self.ctx.ports.http, app.0)
        };
        let mut c = self.connect(to, app)?;
        if tls {
            let ch = tls_client_hello(&mut self.rng, host, &["h2", "http/1.1"]);
            let flight = tls_server_flight(&mut self.rng, &ch);
            let salt = self.rng.next_u32();
            c.exchange(&ch, WireMsg::from_msg(&flight, salt), &self.link())?;
        }
        Ok(Http {
            c,
            host: host.to_string(),
            tls,
            fin_pending: tls,
            last: Instant::now(),
        })
    }

    /// The request and response of one GET, as the offline model forms
    /// them: the response body is `body` or `size` bytes of filler.
    fn get_msgs(
        &mut self,
        h: &mut Http,
        path: &str,
        ctype: &str,
        body: Option<Vec<u8>>,
        size: u64,
    ) -> (Vec<u8>, WireMsg) {
        let req = http_request(path, &h.host, accept_for(ctype));
        let len = body.as_ref().map_or(size, |b| b.len() as u64);
        let mut head = http_response_head(now_ns(), ctype, len);
        let salt = self.rng.next_u32();
        if h.tls {
            let r = crate::model::tls_request(&mut self.rng, &req, &mut h.fin_pending);
            let plain = head.len() as u64 + len;
            (
                r,
                WireMsg::fill(Vec::new(), FillKind::Tls, tls_len(plain), salt),
            )
        } else if let Some(b) = body {
            head.extend_from_slice(&b);
            (req, WireMsg::bytes(head))
        } else {
            (req, WireMsg::fill(head, body_fill(ctype), size, salt))
        }
    }

    fn web(&mut self, sid: &str) -> io::Result<()> {
        let p = self.ctx.cfg.web.clone();
        let link = self.ctx.cfg.link_rate_bps;
        let pages = dist::geometric(&mut self.rng, p.pages_mean);
        let zipf = zipf_weights();
        for _ in 0..pages {
            if self.past_deadline() {
                break;
            }
            let site = dist::weighted(&mut self.rng, &zipf) as u64;
            let main = site_host(site);
            let thirds = third_parties(&main);
            let mut first =
                self.http_open(&main, is_tls(&main, p.tls_fraction), ("http", "tls"), sid)?;
            let size = main_size(&mut self.rng, &p);
            let path = base_path(&mut self.rng, site);
            let (req, resp) = self.get_msgs(&mut first, &path, "text/html", None, size);
            first.c.exchange(&req, resp, &self.pace(link))?;
            first.last = Instant::now();
            let n = objects_per_page(&mut self.rng, &p);
            let parsed = Instant::now() + secs(dist::exp(&mut self.rng, p.parse_mean_s));
            let mut by_host: HostObjects = vec![(main.clone(), Vec::new())];
            for _ in 0..n {
                let (host, ctype, path, size) = embedded_object(&mut self.rng, &p, &main, &thirds);
                match by_host.iter_mut().find(|(h, _)| *h == host) {
                    Some((_, v)) => v.push((ctype, path, size)),
                    None => by_host.push((host, vec![(ctype, path, size)])),
                }
            }
            self.wait(parsed);
            let maxc = p.max_conns_per_host as usize;
            let total: usize = by_host
                .iter()
                .map(|(_, v)| v.len().min(maxc))
                .sum::<usize>()
                .max(1);
            let share = self.pace(link / total as f64);
            let mut first = Some(first);
            // Per connection: its GETs (request, response), prepared here.
            let mut work: Vec<ConnGets> = Vec::new();
            for (hi, (host, objs)) in by_host.into_iter().enumerate() {
                if objs.is_empty() {
                    continue;
                }
                let k = objs.len().min(maxc);
                let mut conns: Vec<ConnGets> = Vec::new();
                if hi == 0 {
                    if let Some(c) = first.take() {
                        conns.push((c, Vec::new()));
                    }
                }
                while conns.len() < k {
                    let tls = is_tls(&host, p.tls_fraction);
                    conns.push((
                        self.http_open(&host, tls, ("http", "tls"), sid)?,
                        Vec::new(),
                    ));
                }
                for (i, (ctype, path, size)) in objs.into_iter().enumerate() {
                    let (h, gets) = &mut conns[i % k];
                    let m = self.get_msgs(h, &path, ctype, None, size);
                    gets.push(m);
                }
                work.extend(conns);
            }
            // Fetch over the parallel connections.
            let mut done: Vec<Http> = thread::scope(|s| {
                let hs: Vec<_> = work
                    .into_iter()
                    .map(|(mut h, gets)| {
                        let share = share.clone();
                        s.spawn(move || -> io::Result<Http> {
                            for (req, resp) in gets {
                                h.c.exchange(&req, resp, &share)?;
                            }
                            h.last = Instant::now();
                            Ok(h)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("web connection thread"))
                    .collect::<io::Result<Vec<Http>>>()
            })?;
            done.extend(first);
            let end = Instant::now();
            let think =
                dist::pareto_trunc(&mut self.rng, p.think_xm_s, p.think_alpha, p.think_max_s);
            // The server closes idle keep-alive connections.
            let mut last_close = end;
            for h in &mut done {
                let at = (h.last + secs(p.keepalive_s)).min(end + secs(think / 2.0));
                h.c.close_server(at.saturating_duration_since(Instant::now()));
                last_close = last_close.max(at);
            }
            for h in done {
                let r = h.c.reap(Class::Web, sid);
                self.row(r);
            }
            let next = (end + secs(think)).max(last_close + Duration::from_millis(1));
            if !self.wait_before_end(next) {
                break;
            }
        }
        Ok(())
    }

    fn video(&mut self, sid: &str) -> io::Result<()> {
        let p = self.ctx.cfg.video.clone();
        let mut ladder = p.ladder.clone();
        ladder.sort_unstable();
        let seg_s = p.segment_s[dist::range(&mut self.rng, 0, p.segment_s.len() as u64) as usize];
        let watch = dist::lognormal(&mut self.rng, p.watch_median_s.ln(), p.watch_sigma).max(10.0);
        let video_id = self.rng.next_u32();
        let end = (Instant::now() + secs(watch)).min(self.ctx.deadline);
        let host = video_host(video_id);
        let mut h = self.http_open(&host, video_tls(video_id, &p), ("dash", "dash"), sid)?;
        let link = self.link();
        let body = mpd(&ladder, seg_s, mpd_total_s(&p));
        let (req, resp) = self.get_msgs(
            &mut h,
            &format!("/v/{video_id:08x}/manifest.mpd"),
            "application/dash+xml",
            Some(body),
            0,
        );
        h.c.exchange(&req, resp, &link)?;
        let size = dist::range(&mut self.rng, 800, 1500);
        let (req, resp) = self.get_msgs(
            &mut h,
            &format!("/v/{video_id:08x}/init-v0.mp4"),
            "video/iso.segment",
            None,
            size,
        );
        h.c.exchange(&req, resp, &link)?;
        let (mut rung, mut seg_no, mut buffer, mut est) = (0usize, 0u32, 0.0f64, 0.0f64);
        let mut playing = false;
        let mut next = Instant::now() + Duration::from_millis(1);
        while next < end {
            self.wait(next);
            seg_no += 1;
            let br = p.fixed_bitrate.unwrap_or(ladder[rung]);
            let size = segment_size(&mut self.rng, &p, br, seg_s);
            let path = format!("/v/{video_id:08x}/seg-{seg_no:05}-{br}.m4s");
            let (req, resp) = self.get_msgs(&mut h, &path, "video/iso.segment", None, size);
            let t0 = Instant::now();
            h.c.exchange(&req, resp, &link)?;
            let dl = t0.elapsed().as_secs_f64();
            let thr = size as f64 * 8.0 / dl.max(1e-6);
            est = if est == 0.0 {
                thr
            } else {
                0.7 * est + 0.3 * thr
            };
            if playing {
                buffer = (buffer - dl).max(0.0);
            }
            buffer += seg_s as f64;
            if !playing && buffer >= 2.0 * seg_s as f64 {
                playing = true;
            }
            let budget = p.abr_safety * est;
            rung = ladder
                .iter()
                .rposition(|b| (*b as f64) <= budget)
                .unwrap_or(0);
            let room = p.buffer_target_s - seg_s as f64;
            let wait = if playing {
                (buffer - room).max(0.0)
            } else {
                0.0
            };
            buffer -= wait;
            next = Instant::now() + secs(wait) + Duration::from_millis(1);
        }
        let r = h.c.close_client(Class::Video, sid);
        self.row(r);
        Ok(())
    }

    fn download(&mut self, sid: &str) -> io::Result<()> {
        let p = self.ctx.cfg.video.clone();
        let size = download_size(&mut self.rng, &p);
        let k = self.rng.next_u32() % 4 + 1;
        let host = format!("downloads{k}.example.net");
        let tls = dist::chance(&mut self.rng, p.tls_fraction);
        let mut h = self.http_open(&host, tls, ("http-download", "tls-download"), sid)?;
        let path = format!("/videos/{:08x}.mp4", self.rng.next_u32());
        let (req, resp) = self.get_msgs(&mut h, &path, "application/octet-stream", None, size);
        h.c.exchange(&req, resp, &self.link())?;
        thread::sleep(Duration::from_millis(20));
        let r = h.c.close_client(Class::VideoDownload, sid);
        self.row(r);
        Ok(())
    }

    // ---- bulk ----

    fn bulk(&mut self, sid: &str) -> io::Result<()> {
        let (size, rsync, upload, path) = bulk_plan(&mut self.rng, &self.ctx.cfg.bulk);
        if rsync {
            self.rsync(sid, size, &path)
        } else {
            self.ftp(sid, size, upload, &path)
        }
    }

    fn ftp(&mut self, sid: &str, size: u64, upload: bool, path: &str) -> io::Result<()> {
        let host = format!("ftp{}.example.org", self.rng.next_u32() % 8);
        self.lookup(&host, sid)?;
        let link = self.link();
        let mut ctl = self.connect(self.ctx.ports.ftp, "ftp")?;
        ctl.server_sends(WireMsg::bytes(FTP_GREETING), &link)?;
        for (c, r) in FTP_LOGIN {
            ctl.exchange(c.as_bytes(), WireMsg::bytes(r), &link)?;
        }
        // Passive data port: the model's choice when free.
        let want = 30_000 + (self.rng.next_u32() % 20_000) as u16;
        let server = self.ctx.addrs.server;
        let l = self.ctx.ns.listen(server, want)?;
        let port = l.local_addr()?.port();
        self.ctx.serve_once(l);
        let (cmd, reply) = ftp_passive(&ip_of(server), port);
        ctl.exchange(cmd.as_bytes(), WireMsg::bytes(reply), &link)?;
        let mut data = self.connect(SocketAddr::new(server, port), "ftp-data")?;
        let (cmd, reply) = ftp_transfer(upload, path, size);
        ctl.exchange(cmd.as_bytes(), WireMsg::bytes(reply), &link)?;
        let salt = self.rng.next_u32();
        let file = WireMsg::fill(Vec::new(), FillKind::Random, size, salt);
        // The sending side closes the data connection.
        let r = if upload {
            data.client_sends(file, &link)?;
            data.close_client(Class::Bulk, sid)
        } else {
            data.server_sends(file, &link)?;
            data.close_server(Duration::ZERO);
            data.reap(Class::Bulk, sid)
        };
        self.row(r);
        ctl.server_sends(WireMsg::bytes("226 Transfer complete.\r\n"), &link)?;
        ctl.exchange(b"QUIT\r\n", WireMsg::bytes("221 Goodbye.\r\n"), &link)?;
        ctl.close_server(Duration::ZERO);
        let r = ctl.reap(Class::Bulk, sid);
        self.row(r);
        Ok(())
    }

    fn rsync(&mut self, sid: &str, size: u64, path: &str) -> io::Result<()> {
        let host = format!("mirror{}.example.org", self.rng.next_u32() % 8);
        self.lookup(&host, sid)?;
        let link = self.link();
        let mut c = self.connect(self.ctx.ports.rsync, "rsync")?;
        c.server_sends(WireMsg::bytes(RSYNC_GREETING), &link)?;
        c.client_sends(WireMsg::bytes(RSYNC_GREETING), &link)?;
        c.client_sends(WireMsg::bytes(&b"pub\n"[..]), &link)?;
        c.server_sends(WireMsg::bytes(&b"@RSYNCD: OK\n"[..]), &link)?;
        c.client_sends(WireMsg::bytes(rsync_args(path)), &link)?;
        let salt = self.rng.next_u32();
        let data = framed_len(size + RSYNC_PREAMBLE, 32_768, 4);
        c.server_sends(
            WireMsg::fill(Vec::new(), FillKind::RsyncMux, data, salt),
            &link,
        )?;
        let fin = framed_len(RSYNC_STATS, 32_768, 4);
        let salt = self.rng.next_u32();
        c.client_sends(
            WireMsg::fill(Vec::new(), FillKind::RsyncMux, fin, salt),
            &link,
        )?;
        let r = c.close_client(Class::Bulk, sid);
        self.row(r);
        Ok(())
    }

    // ---- VoIP ----

    fn voip(&mut self, sid: &str) -> io::Result<()> {
        let p = self.ctx.cfg.voip.clone();
        let server = self.ctx.addrs.server;
        let sip = UdpSocket::bind((self.ip, 0))?;
        sip.set_read_timeout(Some(Duration::from_secs(15)))?;
        let sip_local = sip.local_addr()?;
        let (rtp, rtcp) = udp_pair(self.ip, self.next_rtp)?;
        self.next_rtp = if self.next_rtp >= 32_766 {
            16_384
        } else {
            self.next_rtp + 2
        };
        let want = 20_000 + 2 * (self.rng.next_u32() % 5000) as u16;
        let (mrtp, mrtcp) = self.ctx.ns.udp_pair(server, want)?;
        let (c_rtp, c_rtcp, s_rtp, s_rtcp) = (
            rtp.local_addr()?,
            rtcp.local_addr()?,
            mrtp.local_addr()?,
            mrtcp.local_addr()?,
        );
        let d = new_dialog(
            &mut self.rng,
            self.idx,
            ip_of(self.ip),
            sip_local.port(),
            ip_of(server),
        );
        let call = call_length_s(&mut self.rng, &p);
        let offer = sdp(self.rng.next_u32() as u64, &ip_of(self.ip), c_rtp.port());
        let answer = sdp(self.rng.next_u32() as u64, &ip_of(server), s_rtp.port());
        let start = now_ns();
        // INVITE: 100 Trying, 180 Ringing, then 200 OK after 1–6 s of ringing.
        let ring = 0.02 + dist::exp(&mut self.rng, 0.05);
        let pickup = dist::uniform(&mut self.rng, 1.0, 6.0);
        self.ctx.sip.push(
            sip_local,
            vec![
                (
                    Duration::from_micros(500),
                    d.response(100, "Trying", "1 INVITE", false, None),
                ),
                (
                    secs(ring),
                    d.response(180, "Ringing", "1 INVITE", true, None),
                ),
                (
                    secs(pickup),
                    d.response(200, "OK", "1 INVITE", true, Some(&answer)),
                ),
            ],
        );
        let to = self.ctx.ports.sip;
        sip.send_to(&d.invite(&offer), to)?;
        let mut buf = [0u8; 4096];
        loop {
            let (n, _) = sip.recv_from(&mut buf)?;
            if buf[..n].starts_with(b"SIP/2.0 200") {
                break;
            }
        }
        self.ctx.sip.push(sip_local, Vec::new());
        sip.send_to(&d.ack(), to)?;
        // Media both ways on the 20 ms clock of the model.
        for s in [&rtp, &rtcp, &mrtp, &mrtcp] {
            s.set_nonblocking(true)?;
        }
        let t0_ns = now_ns() + 2_000_000;
        let t0 = Instant::now() + Duration::from_millis(2);
        let end = (t0 + secs(call)).min(self.ctx.deadline.max(t0 + Duration::from_secs(1)));
        let mut talkers = [
            Talker::new(&mut self.rng, t0_ns, p.on_mean_s, p.off_mean_s),
            Talker::new(&mut self.rng, t0_ns, p.on_mean_s, p.off_mean_s),
        ];
        let cnames = [
            format!("{}@{}", d.caller, self.ip),
            format!("{}@{}", d.callee, server),
        ];
        let rtp_start = now_ns();
        let mut rtcp_sent = false;
        let mut pkt = Vec::with_capacity(200);
        loop {
            let t = talkers[0].next_at();
            let due = t0 + Duration::from_nanos(t - t0_ns);
            if due >= end {
                break;
            }
            self.wait(due);
            for (k, tk) in talkers.iter_mut().enumerate() {
                let (from, from_c, to, to_c) = if k == 0 {
                    (&rtp, &rtcp, s_rtp, s_rtcp)
                } else {
                    (&mrtp, &mrtcp, c_rtp, c_rtcp)
                };
                tk.toggle(&mut self.rng, &p, t);
                if let Some(b) = tk.rtcp(&mut self.rng, t, &cnames[k]) {
                    from_c.send_to(&b, to_c)?;
                    rtcp_sent = true;
                }
                match tk.frame(&mut self.rng, &p) {
                    Some(Frame::Rtp(h)) => {
                        pkt.clear();
                        pkt.extend_from_slice(&h);
                        render_fill(FillKind::Random, self.rng.next_u32(), 0, 160, 160, &mut pkt);
                        from.send_to(&pkt, to)?;
                    }
                    Some(Frame::Cn(b)) => {
                        from.send_to(&b, to)?;
                    }
                    None => {}
                }
            }
            for s in [&rtp, &rtcp, &mrtp, &mrtcp] {
                while s.recv_from(&mut buf).is_ok() {}
            }
        }
        let rtp_end = now_ns();
        self.ctx.sip.push(
            sip_local,
            vec![(
                Duration::from_micros(400),
                d.response(200, "OK", "2 BYE", true, None),
            )],
        );
        sip.send_to(&d.bye(), to)?;
        let _ = sip.recv_from(&mut buf);
        let end_ns = now_ns();
        let mut rows = vec![
            ("sip", sip_local, to, start, end_ns),
            ("rtp", c_rtp, s_rtp, rtp_start, rtp_end),
        ];
        if rtcp_sent {
            rows.push(("rtcp", c_rtcp, s_rtcp, rtp_start, rtp_end));
        }
        for (app, client, server, start, end) in rows {
            self.row(Row {
                proto: "UDP",
                client,
                server,
                class: Class::Voip,
                app,
                session: sid.to_string(),
                start,
                end,
            });
        }
        Ok(())
    }

    /// The original system's VoIP: 160-byte pings every 20 ms for a call.
    fn icmp(&mut self, sid: &str) -> io::Result<()> {
        let p = self.ctx.cfg.voip.clone();
        let server = self.ctx.addrs.server;
        let id = self.next_icmp_id;
        self.next_icmp_id = self.next_icmp_id.wrapping_add(1);
        let pinger =
            Pinger::open(self.ip, server, id).map_err(|e| io::Error::other(e.to_string()))?;
        let call = call_length_s(&mut self.rng, &p);
        let t0 = Instant::now();
        let end = (t0 + secs(call)).min(self.ctx.deadline.max(t0 + Duration::from_secs(1)));
        let start = now_ns();
        let mut seq: u16 = 1;
        for k in 0u32.. {
            let due = t0 + Duration::from_millis(20) * k;
            if due >= end {
                break;
            }
            self.wait(due);
            pinger.send(seq, &ping_payload(now_ns()))?;
            seq = seq.wrapping_add(1);
            pinger.drain();
        }
        thread::sleep(Duration::from_millis(5));
        pinger.drain();
        self.row(Row {
            proto: "ICMP",
            client: SocketAddr::new(self.ip, pinger.ident),
            server: SocketAddr::new(server, 0),
            class: Class::VoipIcmp,
            app: "icmp-echo",
            session: sid.to_string(),
            start,
            end: now_ns(),
        });
        Ok(())
    }
}

//! Bulk transfers (FTP, rsync) and stand-alone DNS bursts (see
//! [`crate::BulkParams`], [`crate::DnsParams`]).

use rand::RngCore;

use super::{server_ip, Pool, Session, Step};
use crate::dist::{self, ns};
use crate::tcp::{Conn, Msg, C, S};
use crate::wire::{framed_len, FillKind, Ip};
use crate::{Class, Env, UserCtx};

pub(crate) const RSYNC_GREETING: &[u8] = b"@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\n";
/// rsync bytes before the file data: checksum seed (4) and file list (64).
pub(crate) const RSYNC_PREAMBLE: u64 = 4 + 64;
/// Length of the client's final statistics message in an rsync session.
pub(crate) const RSYNC_STATS: u64 = 24;

/// FTP login dialogue after the greeting: (command, reply).
pub(crate) const FTP_LOGIN: [(&str, &str); 3] = [
    ("USER anonymous\r\n", "331 Please specify the password.\r\n"),
    ("PASS guest@example.com\r\n", "230 Login successful.\r\n"),
    ("TYPE I\r\n", "200 Switching to Binary mode.\r\n"),
];
pub(crate) const FTP_GREETING: &str = "220 (vsFTPd 3.0.5)\r\n";

/// Passive-mode command and reply naming `ip`:`port` (EPSV for IPv6).
pub(crate) fn ftp_passive(ip: &Ip, port: u16) -> (&'static str, String) {
    match ip {
        Ip::V4(b) => (
            "PASV\r\n",
            format!(
                "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
                b[0],
                b[1],
                b[2],
                b[3],
                port >> 8,
                port & 0xff
            ),
        ),
        Ip::V6(_) => (
            "EPSV\r\n",
            format!("229 Entering Extended Passive Mode (|||{port}|)\r\n"),
        ),
    }
}

/// Transfer command and the server's 150 reply.
pub(crate) fn ftp_transfer(upload: bool, path: &str, size: u64) -> (String, String) {
    if upload {
        (
            format!("STOR {path}\r\n"),
            "150 Ok to send data.\r\n".to_string(),
        )
    } else {
        (
            format!("RETR {path}\r\n"),
            format!("150 Opening BINARY mode data connection for {path} ({size} bytes).\r\n"),
        )
    }
}

/// The rsync client's server-mode arguments for pulling `path`.
pub(crate) fn rsync_args(path: &str) -> String {
    format!("--server\n--sender\n-vlogDtpre.iLsfxCIvu\n.\n{path}\n\n")
}

/// A bulk session's draws: (size, rsync, upload, path).
pub(crate) fn bulk_plan(rng: &mut dist::Rng, p: &crate::BulkParams) -> (u64, bool, bool, String) {
    let size = dist::lognormal(rng, p.size_median_bytes.ln(), p.size_sigma)
        .clamp(p.size_min_bytes, p.size_max_bytes) as u64;
    let rsync = dist::chance(rng, p.rsync_fraction);
    let upload = !rsync && dist::chance(rng, p.upload_fraction);
    let exts = ["iso", "tar.gz", "zip", "img", "tar.xz"];
    let path = format!(
        "pub/data{}/file-{:06x}.{}",
        rng.next_u32() % 10,
        rng.next_u32() & 0xff_ffff,
        exts[(rng.next_u32() % 5) as usize]
    );
    (size, rsync, upload, path)
}

enum Phase {
    Start,
    Data,
    Done,
}

pub(crate) struct Bulk {
    sid: u64,
    rsync: bool,
    upload: bool,
    size: u64,
    phase: Phase,
    t: u64,
    ctl: Option<Conn>,
    data: Option<Conn>,
    path: String,
}

impl Bulk {
    pub fn new(u: &mut UserCtx, env: &Env, sid: u64, t: u64) -> Bulk {
        let (size, rsync, upload, path) = bulk_plan(&mut u.rng, &env.cfg.bulk);
        Bulk {
            sid,
            rsync,
            upload,
            size,
            phase: Phase::Start,
            t,
            ctl: None,
            data: None,
            path,
        }
    }

    fn ftp_start(&mut self, u: &mut UserCtx, env: &Env) {
        let host = format!("ftp{}.example.org", u.rng.next_u32() % 8);
        let ip = server_ip(Pool::Bulk, &host, env.cfg.ipv6);
        let t = u.lookup(env, self.t, &host, ip, self.sid);
        let link = env.cfg.link_rate_bps;
        let mut ctl = u.tcp(env, ip, 21, Class::Bulk, "ftp", self.sid, link);
        let t = ctl.connect(&mut u.out, t);
        let mut t = ctl
            .send(
                &mut u.out,
                S,
                t + 3_000_000,
                Msg::bytes(FTP_GREETING.as_bytes().to_vec()),
            )
            .delivered;
        let cmd = |u: &mut UserCtx, ctl: &mut Conn, t: u64, c: &str, r: &str| -> u64 {
            let think = ns(0.001 + dist::exp(&mut u.rng, 0.002));
            ctl.exchange(
                &mut u.out,
                t + 500_000,
                Msg::bytes(c.as_bytes().to_vec()),
                think,
                Msg::bytes(r.as_bytes().to_vec()),
            )
        };
        for (c, r) in FTP_LOGIN {
            t = cmd(u, &mut ctl, t, c, r);
        }
        let port = 30_000 + (u.rng.next_u32() % 20_000) as u16;
        let pasv = ftp_passive(&ip, port);
        t = cmd(u, &mut ctl, t, pasv.0, &pasv.1);
        // Data connection on the server's passive port.
        let cp = u.port();
        let app = "ftp-data";
        let flow = u.flow(
            crate::out::Proto::Tcp,
            cp,
            ip,
            port,
            Class::Bulk,
            app,
            self.sid,
        );
        let rtt = super::rtt_to(env, &ip);
        let isn = [u.rng.next_u32(), u.rng.next_u32()];
        let salt = u.rng.next_u32();
        let mut data = Conn::new(flow, rtt, env.cfg.ipv6, link, isn, salt);
        t = data.connect(&mut u.out, t + 200_000);
        let (c, r) = ftp_transfer(self.upload, &self.path, self.size);
        t = cmd(u, &mut ctl, t, &c, &r);
        let side = if self.upload { C } else { S };
        data.begin(
            &mut u.out,
            side,
            t + 500_000,
            Msg::with_fill(Vec::new(), FillKind::Random, self.size),
        );
        self.ctl = Some(ctl);
        self.data = Some(data);
    }

    fn rsync_start(&mut self, u: &mut UserCtx, env: &Env) {
        let host = format!("mirror{}.example.org", u.rng.next_u32() % 8);
        let ip = server_ip(Pool::Bulk, &host, env.cfg.ipv6);
        let t = u.lookup(env, self.t, &host, ip, self.sid);
        let mut c = u.tcp(
            env,
            ip,
            873,
            Class::Bulk,
            "rsync",
            self.sid,
            env.cfg.link_rate_bps,
        );
        let t = c.connect(&mut u.out, t);
        let a = c.send(
            &mut u.out,
            S,
            t + 1_000_000,
            Msg::bytes(RSYNC_GREETING.to_vec()),
        );
        let b = c.send(
            &mut u.out,
            C,
            a.delivered + 300_000,
            Msg::bytes(RSYNC_GREETING.to_vec()),
        );
        let t = c
            .send(
                &mut u.out,
                C,
                b.last_cap + 100_000,
                Msg::bytes(b"pub\n".to_vec()),
            )
            .delivered;
        let t = c
            .send(
                &mut u.out,
                S,
                t + 500_000,
                Msg::bytes(b"@RSYNCD: OK\n".to_vec()),
            )
            .delivered;
        let args = rsync_args(&self.path);
        let t = c
            .send(&mut u.out, C, t + 300_000, Msg::bytes(args.into_bytes()))
            .delivered;
        // Checksum seed, file list and file data in multiplexed frames.
        let content = self.size + RSYNC_PREAMBLE;
        c.begin(
            &mut u.out,
            S,
            t + 2_000_000,
            Msg::with_fill(
                Vec::new(),
                FillKind::RsyncMux,
                framed_len(content, 32_768, 4),
            ),
        );
        self.data = Some(c);
    }
}

impl Session for Bulk {
    fn step(&mut self, u: &mut UserCtx, env: &Env) -> Step {
        match self.phase {
            Phase::Start => {
                if self.rsync {
                    self.rsync_start(u, env);
                } else {
                    self.ftp_start(u, env);
                }
                self.phase = Phase::Data;
                let h = self.data.as_ref().expect("data").horizon();
                if let Some(c) = self.ctl.as_mut() {
                    c.settle(&mut u.out, u64::MAX);
                }
                Step::More(h)
            }
            Phase::Data => {
                let d = self.data.as_mut().expect("data");
                match d.pump(&mut u.out, 1000) {
                    None => Step::More(d.horizon()),
                    Some(sent) => {
                        self.phase = Phase::Done;
                        let mut last;
                        if let Some(mut ctl) = self.ctl.take() {
                            // The sender closes the data connection; then 226.
                            let closer = if self.upload { C } else { S };
                            let t = sent.delivered + 1_000_000;
                            last = d.close(
                                &mut u.out,
                                closer,
                                if closer == C {
                                    sent.last_cap + 1_000_000
                                } else {
                                    t
                                },
                            );
                            u.out.close_flow(d.flow);
                            let t = last + 1_000_000;
                            let a = ctl.send(
                                &mut u.out,
                                S,
                                t,
                                Msg::bytes(b"226 Transfer complete.\r\n".to_vec()),
                            );
                            let t = ctl.exchange(
                                &mut u.out,
                                a.delivered + 200_000,
                                Msg::bytes(b"QUIT\r\n".to_vec()),
                                500_000,
                                Msg::bytes(b"221 Goodbye.\r\n".to_vec()),
                            );
                            last = ctl.close(&mut u.out, S, t + 100_000);
                            u.out.close_flow(ctl.flow);
                        } else {
                            // rsync: client sends its final stats, then closes.
                            let t = sent.delivered + 1_000_000;
                            let fin = Msg::with_fill(
                                Vec::new(),
                                FillKind::RsyncMux,
                                framed_len(RSYNC_STATS, 32_768, 4),
                            );
                            let a = d.send(&mut u.out, C, t, fin);
                            last = d.close(&mut u.out, C, a.last_cap + 200_000);
                            u.out.close_flow(d.flow);
                        }
                        Step::Done(last)
                    }
                }
            }
            Phase::Done => Step::Done(self.t),
        }
    }
}

/// Background names looked up by `dns` sessions.
pub(crate) const NAMES: [&str; 10] = [
    "time.example.com",
    "updates.example.org",
    "mail.example.com",
    "telemetry.example.net",
    "push.example.net",
    "weather.example.com",
    "calendar.example.org",
    "connectivity-check.example.net",
    "api.example.com",
    "sync.example.org",
];

/// A background name and, for API and push endpoints, the CDN name it is
/// an alias of.
pub(crate) fn background_name(rng: &mut dist::Rng) -> (&'static str, Option<&'static str>) {
    let name = NAMES[(rng.next_u32() % NAMES.len() as u32) as usize];
    let cname = if name.starts_with("api") || name.starts_with("push") {
        Some("edge.cdn1.example.net")
    } else {
        None
    };
    (name, cname)
}

/// A burst of background lookups.
pub(crate) struct DnsBurst {
    sid: u64,
    left: u32,
    t: u64,
    last: u64,
}

impl DnsBurst {
    pub fn new(u: &mut UserCtx, env: &Env, sid: u64, t: u64) -> DnsBurst {
        DnsBurst {
            sid,
            left: dist::geometric(&mut u.rng, env.cfg.dns.queries_mean),
            t,
            last: t,
        }
    }
}

impl Session for DnsBurst {
    fn step(&mut self, u: &mut UserCtx, env: &Env) -> Step {
        if self.left == 0 || self.t >= env.end {
            return Step::Done(self.last);
        }
        self.left -= 1;
        let (name, cname) = background_name(&mut u.rng);
        let ip = server_ip(Pool::Web, name, env.cfg.ipv6);
        let done = u.resolve(env, self.t, name, ip, self.sid, cname);
        self.last = self.last.max(done);
        self.t = done + ns(dist::exp(&mut u.rng, env.cfg.dns.gap_mean_s)) + 1;
        Step::More(self.t)
    }
}

//! Session models and their shared helpers (addresses, DNS, flows).

pub(crate) mod bulk;
pub(crate) mod video;
pub(crate) mod voip;
pub(crate) mod web;

use rand::RngCore;

use crate::dist::{self, ns};
use crate::out::{Flow, Proto};
use crate::proto::{
    dns_query, dns_response, tls_app_record, tls_client_finished, tls_server_hello, QTYPE_A,
    QTYPE_AAAA,
};
use crate::tcp::{Conn, Msg};
use crate::wire::{framed_len, Endpoint, FillKind, Ip, Payload, L4, TLS_MAX_REC};
use crate::{Class, Env, UserCtx, GW_MAC};

/// What a step of a session produced.
pub(crate) enum Step {
    /// More to come; nothing later is earlier than this time.
    More(u64),
    /// Finished; its last packet is at this time.
    Done(u64),
}

pub(crate) trait Session {
    fn step(&mut self, u: &mut UserCtx, env: &Env) -> Step;
}

pub(crate) fn new_session(class: Class, u: &mut UserCtx, env: &Env, t: u64) -> Box<dyn Session> {
    let sid = u.sessions;
    match class {
        Class::Web => Box::new(web::Web::new(u, env, sid, t)),
        Class::Video => Box::new(video::Video::new(u, env, sid, t)),
        Class::VideoDownload => Box::new(video::Download::new(u, env, sid, t)),
        Class::Voip => Box::new(voip::Voip::new(u, env, sid, t)),
        Class::VoipIcmp => Box::new(voip::IcmpVoip::new(u, env, sid, t)),
        Class::Bulk => Box::new(bulk::Bulk::new(u, env, sid, t)),
        Class::Dns => Box::new(bulk::DnsBurst::new(u, env, sid, t)),
    }
}

/// The server's first TLS 1.3 flight answering `client_hello`:
/// ServerHello and ChangeCipherSpec, then EncryptedExtensions, Certificate,
/// CertificateVerify and Finished as 2500–5000 bytes of encrypted records.
pub(crate) fn tls_server_flight(rng: &mut dist::Rng, client_hello: &[u8]) -> Msg {
    let sh = tls_server_hello(rng, client_hello);
    let enc = dist::range(rng, 2500, 5000);
    Msg::with_fill(sh, FillKind::Tls, framed_len(enc, TLS_MAX_REC, 5))
}

/// An HTTP request `req` as TLS records, preceded by the client's
/// ChangeCipherSpec and Finished on the connection's first request.
pub(crate) fn tls_request(rng: &mut dist::Rng, req: &[u8], fin_pending: &mut bool) -> Vec<u8> {
    let mut r = Vec::new();
    if *fin_pending {
        r.extend_from_slice(&tls_client_finished(rng));
        *fin_pending = false;
    }
    r.extend_from_slice(&tls_app_record(req.len(), rng.next_u64()));
    r
}

/// FNV-1a, for stable name → address / property mappings.
pub(crate) fn fnv(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Server address pools (documentation prefixes).
#[derive(Clone, Copy)]
pub(crate) enum Pool {
    Web,
    Video,
    Bulk,
    Voip,
}

pub(crate) fn server_ip(pool: Pool, name: &str, v6: bool) -> Ip {
    let h = fnv(name.as_bytes());
    let (base4, lo, n, tag6): ([u8; 3], u64, u64, u16) = match pool {
        Pool::Web => ([203, 0, 113], 1, 254, 0x113),
        Pool::Video => ([198, 51, 100], 1, 99, 0x100),
        Pool::Bulk => ([198, 51, 100], 100, 100, 0x101),
        Pool::Voip => ([192, 0, 2], 20, 230, 0x2),
    };
    let host = lo + h % n;
    if v6 {
        let mut b = [0u8; 16];
        b[0] = 0x20;
        b[1] = 0x01;
        b[2] = 0x0d;
        b[3] = 0xb8;
        b[4..6].copy_from_slice(&tag6.to_be_bytes());
        b[15] = host as u8;
        Ip::V6(b)
    } else {
        Ip::V4([base4[0], base4[1], base4[2], host as u8])
    }
}

pub(crate) fn resolver_ip(v6: bool) -> Ip {
    if v6 {
        let mut b = [0u8; 16];
        b[0] = 0xfd;
        b[15] = 0x53;
        Ip::V6(b)
    } else {
        Ip::V4([10, 0, 0, 53])
    }
}

/// RTT to a server: the base RTT times a factor in [0.5, 1.5) fixed by
/// the address.
pub(crate) fn rtt_to(env: &Env, ip: &Ip) -> u64 {
    let key = match ip {
        Ip::V4(b) => fnv(b),
        Ip::V6(b) => fnv(b),
    };
    let f = 0.5 + (key % 1000) as f64 / 1000.0;
    ((env.cfg.rtt_ns as f64 * f) as u64).max(2_000)
}

fn server_ttl(ip: &Ip) -> u8 {
    let key = match ip {
        Ip::V4(b) => fnv(b),
        Ip::V6(b) => fnv(b),
    };
    64 - (6 + (key >> 8) % 14) as u8
}

impl UserCtx {
    pub fn port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p >= 60999 { 32768 } else { p + 1 };
        p
    }

    pub fn rtp_port(&mut self) -> u16 {
        let p = self.next_rtp;
        self.next_rtp = if p >= 32766 { 16384 } else { p + 2 };
        p
    }

    #[allow(clippy::too_many_arguments)]
    pub fn flow(
        &mut self,
        proto: Proto,
        client_port: u16,
        server: Ip,
        server_port: u16,
        class: Class,
        app: &'static str,
        sid: u64,
    ) -> u32 {
        let fl = [self.rng.next_u32() & 0xfffff, self.rng.next_u32() & 0xfffff];
        let ids = [self.rng.next_u32() as u16, self.rng.next_u32() as u16];
        let f = Flow {
            proto,
            client: Endpoint {
                mac: self.mac,
                ip: self.ip,
                port: client_port,
            },
            server: Endpoint {
                mac: GW_MAC,
                ip: server,
                port: server_port,
            },
            class,
            app,
            session: sid,
            user: self.idx,
            server_ttl: server_ttl(&server),
            ip_id: ids,
            flow_label: fl,
            first: 0,
            last: 0,
            queued: 0,
            closed: false,
            seen: false,
        };
        self.out.add_flow(f)
    }

    /// A new TCP connection (not yet opened) from a fresh port.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &mut self,
        env: &Env,
        server: Ip,
        port: u16,
        class: Class,
        app: &'static str,
        sid: u64,
        rate_bps: f64,
    ) -> Conn {
        let cp = self.port();
        let flow = self.flow(Proto::Tcp, cp, server, port, class, app, sid);
        let rtt = rtt_to(env, &server);
        let isn = [self.rng.next_u32(), self.rng.next_u32()];
        let salt = self.rng.next_u32();
        Conn::new(flow, rtt, env.cfg.ipv6, rate_bps, isn, salt)
    }

    /// Resolves `name` (A, plus AAAA) unless cached; returns when the
    /// answer is in. DNS flows are labelled `dns` in session `sid`.
    pub fn lookup(&mut self, env: &Env, t: u64, name: &str, answer: Ip, sid: u64) -> u64 {
        self.dns_cache.retain(|(_, exp, _)| *exp > t);
        if let Some((_, _, ready)) = self.dns_cache.iter().find(|(n, _, _)| n == name) {
            // Cached, or a lookup already in flight: wait for its answer.
            return t.max(*ready);
        }
        let ttl = 300u64;
        let ready = self.resolve(env, t, name, answer, sid, None);
        self.dns_cache
            .push((name.to_string(), t + ttl * 1_000_000_000, ready));
        ready
    }

    /// One stub-resolver exchange on a fresh UDP port: an A query and an
    /// AAAA query, and their answers.
    pub fn resolve(
        &mut self,
        env: &Env,
        t: u64,
        name: &str,
        answer: Ip,
        sid: u64,
        cname: Option<&str>,
    ) -> u64 {
        let v6 = env.cfg.ipv6;
        let resolver = resolver_ip(v6);
        let cp = self.port();
        let flow = self.flow(Proto::Udp, cp, resolver, 53, Class::Dns, "dns", sid);
        // A nearby recursive resolver: cache hit or a recursion.
        let rtt = (env.cfg.rtt_ns / 4).max(1_000_000);
        let mut done = t;
        let order = if v6 {
            [QTYPE_AAAA, QTYPE_A]
        } else {
            [QTYPE_A, QTYPE_AAAA]
        };
        for (k, qt) in order.into_iter().enumerate() {
            let tq = t + k as u64 * 40_000;
            let id = self.rng.next_u32() as u16;
            let q = dns_query(id, name, qt);
            self.out
                .push(tq, flow, true, L4::Udp, Payload::bytes(q.into()));
            let work = if dist::chance(&mut self.rng, 0.7) {
                dist::exp(&mut self.rng, 0.0003)
            } else {
                dist::exp(&mut self.rng, 0.03)
            };
            let tr = tq + rtt + ns(work);
            let r = dns_response(id, name, qt, cname, &[answer], 300);
            self.out
                .push(tr, flow, false, L4::Udp, Payload::bytes(r.into()));
            done = done.max(tr);
        }
        self.out.close_flow(flow);
        done
    }
}

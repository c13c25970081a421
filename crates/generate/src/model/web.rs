//! Web browsing sessions (see [`crate::WebParams`] for the model).

use rand::RngCore;

use super::{fnv, server_ip, Pool, Session, Step};
use crate::dist::{self, ns};
use crate::proto::{http_request, http_response_head, tls_client_hello};
use crate::tcp::{Conn, Msg, C, S};
use crate::wire::{framed_len, FillKind, TLS_MAX_REC};
use crate::{Class, Env, UserCtx, WebParams};

const SITES: u64 = 40;
const PREFIX: [&str; 8] = [
    "news", "shop", "blog", "wiki", "forum", "portal", "travel", "sport",
];
const THIRD: [&str; 8] = [
    "static.cdn1.example.net",
    "img.cdn2.example.net",
    "fonts.example.org",
    "ads.example.net",
    "analytics.example.org",
    "api.example.com",
    "media.cdn3.example.net",
    "js.cdn4.example.net",
];

pub(crate) fn site_host(k: u64) -> String {
    format!("www.{}{}.example.com", PREFIX[(k % 8) as usize], k)
}

/// Whether `host` is served over TLS (fixed per host name).
pub(crate) fn is_tls(host: &str, frac: f64) -> bool {
    (fnv(host.as_bytes()) >> 7) % 1000 < (frac * 1000.0) as u64
}

/// Plaintext length → TLS application-data stream length.
pub(crate) fn tls_len(plain: u64) -> u64 {
    let recs = plain.div_ceil(16_384).max(1);
    framed_len(plain + 17 * recs, TLS_MAX_REC, 5)
}

/// Site popularity weights (Zipf over [`SITES`] sites).
pub(crate) fn zipf_weights() -> Vec<f64> {
    (1..=SITES).map(|k| 1.0 / k as f64).collect()
}

/// The third-party hosts a site's pages embed (fixed per site).
pub(crate) fn third_parties(main: &str) -> Vec<&'static str> {
    let h = fnv(main.as_bytes());
    let n_third = (h % 4) as usize;
    (0..n_third)
        .map(|i| THIRD[((h >> (8 + 3 * i)) % 8) as usize])
        .collect()
}

/// Path of a site's base document.
pub(crate) fn base_path(rng: &mut dist::Rng, site: u64) -> String {
    format!("/{}/{:x}.html", PREFIX[(site % 8) as usize], rng.next_u32())
}

/// Number of embedded objects of a page (3GPP2 truncated Pareto − k).
pub(crate) fn objects_per_page(rng: &mut dist::Rng, p: &WebParams) -> usize {
    (dist::pareto_trunc(rng, p.objs_k, p.objs_alpha, 1e9).min(p.objs_max) - p.objs_k)
        .floor()
        .max(0.0) as usize
}

/// One embedded object: the host serving it (60 % the site itself, else
/// one of its third parties), content type, path and size.
pub(crate) fn embedded_object(
    rng: &mut dist::Rng,
    p: &WebParams,
    main: &str,
    thirds: &[&str],
) -> (String, &'static str, String, u64) {
    let host = if thirds.is_empty() || dist::chance(rng, 0.6) {
        main.to_string()
    } else {
        thirds[dist::range(rng, 0, thirds.len() as u64) as usize].to_string()
    };
    let (ctype, ext) = match dist::weighted(rng, &[0.15, 0.25, 0.45, 0.05, 0.10]) {
        0 => ("text/css", "css"),
        1 => ("application/javascript", "js"),
        2 => ("image/webp", "webp"),
        3 => ("font/woff2", "woff2"),
        _ => ("application/octet-stream", "bin"),
    };
    let size = object_size(rng, p);
    let path = format!("/assets/{:08x}.{ext}", rng.next_u32());
    (host, ctype, path, size)
}

/// The `Accept` header a browser sends for a resource of `ctype`.
pub(crate) fn accept_for(ctype: &str) -> &'static str {
    if ctype == "text/html" {
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    } else {
        "*/*"
    }
}

/// Filler kind of a plaintext response body.
pub(crate) fn body_fill(ctype: &str) -> FillKind {
    if ctype.starts_with("text/") || ctype.contains("javascript") {
        FillKind::Text
    } else {
        FillKind::Random
    }
}

pub(crate) fn object_size(rng: &mut dist::Rng, p: &WebParams) -> u64 {
    let x = if dist::chance(rng, p.obj_tail_p) {
        dist::pareto_trunc(rng, p.obj_tail_xm, p.obj_tail_alpha, p.obj_max)
    } else {
        dist::lognormal(rng, p.obj_mu, p.obj_sigma)
    };
    (x.round() as u64).max(1)
}

pub(crate) fn main_size(rng: &mut dist::Rng, p: &WebParams) -> u64 {
    loop {
        let x = dist::lognormal(rng, p.main_mu, p.main_sigma);
        if x >= p.main_min && x <= p.main_max {
            return x.round() as u64;
        }
    }
}

/// An embedded object: path, content type, size.
type Object = (String, &'static str, u64);

/// One HTTP(S) connection of a page.
struct PageConn {
    conn: Conn,
    host: String,
    tls: bool,
    /// Client still owes its TLS Finished (sent with the first request).
    fin_pending: bool,
    t: u64,
}

pub(crate) struct Web {
    sid: u64,
    pages_left: u32,
    t: u64,
    last: u64,
    zipf: Vec<f64>,
}

impl Web {
    pub fn new(u: &mut UserCtx, env: &Env, sid: u64, t: u64) -> Web {
        let pages = dist::geometric(&mut u.rng, env.cfg.web.pages_mean);
        Web {
            sid,
            pages_left: pages,
            t,
            last: t,
            zipf: zipf_weights(),
        }
    }

    fn open(&self, u: &mut UserCtx, env: &Env, host: &str, t: u64, rate: f64) -> PageConn {
        let p = &env.cfg.web;
        let tls = is_tls(host, p.tls_fraction);
        let ip = server_ip(Pool::Web, host, env.cfg.ipv6);
        let t = u.lookup(env, t, host, ip, self.sid);
        let (port, app) = if tls { (443, "tls") } else { (80, "http") };
        let mut conn = u.tcp(env, ip, port, Class::Web, app, self.sid, rate);
        let mut t = conn.connect(&mut u.out, t);
        if tls {
            let ch = tls_client_hello(&mut u.rng, host, &["h2", "http/1.1"]);
            let a = conn.send(&mut u.out, C, t, Msg::bytes(ch.clone()));
            let flight = super::tls_server_flight(&mut u.rng, &ch);
            let b = conn.send(&mut u.out, S, a.delivered + 300_000, flight);
            t = b.delivered;
        }
        PageConn {
            conn,
            host: host.to_string(),
            tls,
            fin_pending: tls,
            t,
        }
    }

    /// GET `path` on `pc`; returns completion time.
    fn fetch(u: &mut UserCtx, pc: &mut PageConn, path: &str, ctype: &str, size: u64) -> u64 {
        let req = http_request(path, &pc.host, accept_for(ctype));
        let think = ns(0.002 + dist::exp(&mut u.rng, 0.008));
        let t_resp = pc.t; // placeholder for the Date header (capture-time order)
        let head = http_response_head(t_resp, ctype, size);
        let (req_msg, resp_msg) = if pc.tls {
            let r = super::tls_request(&mut u.rng, &req, &mut pc.fin_pending);
            let plain = head.len() as u64 + size;
            (
                Msg::bytes(r),
                Msg::with_fill(Vec::new(), FillKind::Tls, tls_len(plain)),
            )
        } else {
            (
                Msg::bytes(req),
                Msg::with_fill(head, body_fill(ctype), size),
            )
        };
        let done = pc.conn.exchange(&mut u.out, pc.t, req_msg, think, resp_msg);
        pc.t = done + ns(dist::exp(&mut u.rng, 0.002));
        done
    }

    fn page(&mut self, u: &mut UserCtx, env: &Env) -> (u64, Vec<PageConn>) {
        let p = env.cfg.web.clone();
        let link = env.cfg.link_rate_bps;
        let site = dist::weighted(&mut u.rng, &self.zipf) as u64;
        let main = site_host(site);
        let thirds = third_parties(&main);

        let mut conns: Vec<PageConn> = Vec::new();
        let mut first = self.open(u, env, &main, self.t, link);
        let size = main_size(&mut u.rng, &p);
        let path = base_path(&mut u.rng, site);
        let base_done = Self::fetch(u, &mut first, &path, "text/html", size);
        let mut pc0 = Some(first);

        // Embedded objects.
        let n = objects_per_page(&mut u.rng, &p);
        let t_parse = base_done + ns(dist::exp(&mut u.rng, p.parse_mean_s));
        let mut by_host: Vec<(String, Vec<Object>)> = vec![(main.clone(), Vec::new())];
        for _ in 0..n {
            let (host, ctype, path, size) = embedded_object(&mut u.rng, &p, &main, &thirds);
            match by_host.iter_mut().find(|(hh, _)| *hh == host) {
                Some((_, v)) => v.push((path, ctype, size)),
                None => by_host.push((host, vec![(path, ctype, size)])),
            }
        }
        let total_conns: usize = by_host
            .iter()
            .map(|(_, v)| v.len().min(p.max_conns_per_host as usize))
            .sum::<usize>()
            .max(1);
        let share = link / total_conns as f64;
        let mut end = base_done;
        for (hi, (host, objs)) in by_host.into_iter().enumerate() {
            if objs.is_empty() {
                continue;
            }
            let k = objs.len().min(p.max_conns_per_host as usize);
            let mut hc: Vec<PageConn> = Vec::new();
            if hi == 0 {
                if let Some(mut c) = pc0.take() {
                    c.t = c.t.max(t_parse);
                    c.conn.set_rate(share);
                    hc.push(c);
                }
            }
            while hc.len() < k {
                let stagger = hc.len() as u64 * 300_000;
                hc.push(self.open(u, env, &host, t_parse + stagger, share));
            }
            for (i, (path, ctype, size)) in objs.into_iter().enumerate() {
                let c = &mut hc[i % k];
                let done = Self::fetch(u, c, &path, ctype, size);
                end = end.max(done);
            }
            conns.extend(hc);
        }
        conns.extend(pc0);
        (end, conns)
    }
}

impl Session for Web {
    fn step(&mut self, u: &mut UserCtx, env: &Env) -> Step {
        if self.pages_left == 0 || self.t >= env.end {
            return Step::Done(self.last);
        }
        self.pages_left -= 1;
        let p = env.cfg.web.clone();
        let (end, conns) = self.page(u, env);
        let think = ns(dist::pareto_trunc(
            &mut u.rng,
            p.think_xm_s,
            p.think_alpha,
            p.think_max_s,
        ));
        let mut last = end;
        for mut pc in conns {
            let close_at = (pc.t + ns(p.keepalive_s)).min(end + think / 2).max(pc.t);
            let l = pc.conn.close(&mut u.out, S, close_at);
            u.out.close_flow(pc.conn.flow);
            last = last.max(l);
        }
        self.last = last;
        self.t = (end + think).max(last + 1_000_000);
        Step::More(self.t)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn object_sampler_matches_its_cdf() {
        let p = WebParams::default();
        let mut rng = dist::Rng::seed_from_u64(1);
        let n = 200_000;
        let mut v: Vec<f64> = (0..n).map(|_| object_size(&mut rng, &p) as f64).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut d: f64 = 0.0;
        for (i, x) in v.iter().enumerate() {
            let f = p.object_size_cdf(*x);
            d = d
                .max((f - i as f64 / n as f64).abs())
                .max(((i + 1) as f64 / n as f64 - f).abs());
        }
        assert!(d < 1.36 / (n as f64).sqrt(), "KS D = {d}");
    }
}

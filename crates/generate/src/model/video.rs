//! Adaptive streaming and progressive download (see [`crate::VideoParams`]).

use rand::RngCore;

use super::web::tls_len;
use super::{fnv, server_ip, Pool, Session, Step};
use crate::dist::{self, ns};
use crate::proto::{http_request, http_response_head, mpd, tls_client_hello};
use crate::tcp::{Conn, Msg, C, S};
use crate::wire::FillKind;
use crate::{Class, Env, UserCtx, VideoParams};

/// CDN host of a video.
pub(crate) fn video_host(video_id: u32) -> String {
    format!("cdn{}.video.example.net", (video_id % 4) + 1)
}

/// Whether a video is streamed over TLS (fixed per video).
pub(crate) fn video_tls(video_id: u32, p: &VideoParams) -> bool {
    (fnv(&video_id.to_le_bytes()) % 1000) < (p.tls_fraction * 1000.0) as u64
}

/// Total presentation length announced in the MPD, seconds.
pub(crate) fn mpd_total_s(p: &VideoParams) -> u64 {
    ns(p.watch_median_s * 4.0) / 1_000_000_000
}

/// Size of a media segment of `seg_s` seconds at `bitrate` (±vbr uniform).
pub(crate) fn segment_size(rng: &mut dist::Rng, p: &VideoParams, bitrate: u64, seg_s: u32) -> u64 {
    (bitrate as f64 * seg_s as f64 / 8.0 * dist::uniform(rng, 1.0 - p.vbr, 1.0 + p.vbr)) as u64
}

/// Size of a progressive-download file (lognormal, at least 100 kB).
pub(crate) fn download_size(rng: &mut dist::Rng, p: &VideoParams) -> u64 {
    dist::lognormal(rng, p.download_median_bytes.ln(), p.download_sigma)
        .clamp(1e5, p.download_max_bytes) as u64
}

/// An HTTP/1.1 connection, plain or inside TLS.
struct Http {
    conn: Conn,
    host: String,
    tls: bool,
    fin_pending: bool,
}

impl Http {
    /// Looks up, connects and (for TLS) handshakes; returns ready time.
    #[allow(clippy::too_many_arguments)]
    fn open(
        u: &mut UserCtx,
        env: &Env,
        host: &str,
        tls: bool,
        class: Class,
        app_plain: &'static str,
        app_tls: &'static str,
        sid: u64,
        t: u64,
    ) -> (Http, u64) {
        let ip = server_ip(Pool::Video, host, env.cfg.ipv6);
        let t = u.lookup(env, t, host, ip, sid);
        let (port, app) = if tls { (443, app_tls) } else { (80, app_plain) };
        let mut conn = u.tcp(env, ip, port, class, app, sid, env.cfg.link_rate_bps);
        let mut t = conn.connect(&mut u.out, t);
        if tls {
            let ch = tls_client_hello(&mut u.rng, host, &["h2", "http/1.1"]);
            let a = conn.send(&mut u.out, C, t, Msg::bytes(ch.clone()));
            let flight = super::tls_server_flight(&mut u.rng, &ch);
            let b = conn.send(&mut u.out, S, a.delivered + 300_000, flight);
            t = b.delivered;
        }
        (
            Http {
                conn,
                host: host.to_string(),
                tls,
                fin_pending: tls,
            },
            t,
        )
    }

    fn request(&mut self, u: &mut UserCtx, path: &str, accept: &str) -> Msg {
        let req = http_request(path, &self.host, accept);
        if self.tls {
            Msg::bytes(super::tls_request(&mut u.rng, &req, &mut self.fin_pending))
        } else {
            Msg::bytes(req)
        }
    }

    /// Response with explicit body bytes or `size` bytes of filler.
    fn response(&self, t: u64, ctype: &str, body: Option<Vec<u8>>, size: u64) -> Msg {
        let len = body.as_ref().map_or(size, |b| b.len() as u64);
        let mut head = http_response_head(t, ctype, len);
        if self.tls {
            Msg::with_fill(Vec::new(), FillKind::Tls, tls_len(head.len() as u64 + len))
        } else if let Some(b) = body {
            head.extend_from_slice(&b);
            Msg::bytes(head)
        } else {
            Msg::with_fill(head, FillKind::Random, size)
        }
    }
}

pub(crate) struct Video {
    sid: u64,
    http: Option<Http>,
    ladder: Vec<u64>,
    seg_s: u32,
    rung: usize,
    seg_no: u32,
    /// Time of the next request.
    t: u64,
    /// Seconds of media buffered at `t`.
    buffer: f64,
    playing: bool,
    est_bps: f64,
    end: u64,
    last: u64,
    video_id: u32,
}

impl Video {
    pub fn new(u: &mut UserCtx, env: &Env, sid: u64, t: u64) -> Video {
        let p = &env.cfg.video;
        let mut ladder = p.ladder.clone();
        ladder.sort_unstable();
        let seg_s = p.segment_s[dist::range(&mut u.rng, 0, p.segment_s.len() as u64) as usize];
        let watch = dist::lognormal(&mut u.rng, p.watch_median_s.ln(), p.watch_sigma).max(10.0);
        Video {
            sid,
            http: None,
            ladder,
            seg_s,
            rung: 0,
            seg_no: 0,
            t,
            buffer: 0.0,
            playing: false,
            est_bps: 0.0,
            end: (t + ns(watch)).min(env.end),
            last: t,
            video_id: u.rng.next_u32(),
        }
    }

    fn bitrate(&self, env: &Env) -> u64 {
        env.cfg
            .video
            .fixed_bitrate
            .unwrap_or(self.ladder[self.rung])
    }
}

impl Session for Video {
    fn step(&mut self, u: &mut UserCtx, env: &Env) -> Step {
        let p = env.cfg.video.clone();
        if self.http.is_none() {
            let host = video_host(self.video_id);
            let tls = video_tls(self.video_id, &p);
            let (mut h, t) = Http::open(
                u,
                env,
                &host,
                tls,
                Class::Video,
                "dash",
                "dash",
                self.sid,
                self.t,
            );
            let body = mpd(&self.ladder, self.seg_s, mpd_total_s(&p));
            let req = h.request(u, &format!("/v/{:08x}/manifest.mpd", self.video_id), "*/*");
            let resp = h.response(t, "application/dash+xml", Some(body), 0);
            let t = h.conn.exchange(&mut u.out, t, req, ns(0.005), resp);
            let req = h.request(
                u,
                &format!("/v/{:08x}/init-v{}.mp4", self.video_id, self.rung),
                "*/*",
            );
            let size = dist::range(&mut u.rng, 800, 1500);
            let resp = h.response(t, "video/iso.segment", None, size);
            let t = h.conn.exchange(&mut u.out, t, req, ns(0.005), resp);
            self.t = t + 1_000_000;
            self.last = t;
            h.conn.settle(&mut u.out, self.t);
            self.http = Some(h);
            return Step::More(self.t);
        }
        let h = self.http.as_mut().expect("open");
        if self.t >= self.end {
            if h.conn.open {
                let l = h.conn.close(&mut u.out, C, self.t);
                u.out.close_flow(h.conn.flow);
                self.last = self.last.max(l);
            }
            return Step::Done(self.last);
        }
        self.seg_no += 1;
        let br = self.bitrate(env);
        let h = self.http.as_mut().expect("open");
        let size = segment_size(&mut u.rng, &p, br, self.seg_s);
        let path = format!("/v/{:08x}/seg-{:05}-{}.m4s", self.video_id, self.seg_no, br);
        let req = h.request(u, &path, "*/*");
        let resp = h.response(self.t, "video/iso.segment", None, size);
        let t0 = self.t;
        let done = h.conn.exchange(&mut u.out, t0, req, ns(0.003), resp);
        self.last = done;
        let dl = (done - t0) as f64 / 1e9;
        let thr = size as f64 * 8.0 / dl.max(1e-6);
        self.est_bps = if self.est_bps == 0.0 {
            thr
        } else {
            0.7 * self.est_bps + 0.3 * thr
        };
        if self.playing {
            self.buffer = (self.buffer - dl).max(0.0);
        }
        self.buffer += self.seg_s as f64;
        if !self.playing && self.buffer >= 2.0 * self.seg_s as f64 {
            self.playing = true;
        }
        // ABR: highest rung within the safety share of measured throughput.
        let budget = p.abr_safety * self.est_bps;
        self.rung = self
            .ladder
            .iter()
            .rposition(|b| (*b as f64) <= budget)
            .unwrap_or(0);
        let room = p.buffer_target_s - self.seg_s as f64;
        let wait = if self.playing {
            (self.buffer - room).max(0.0)
        } else {
            0.0
        };
        self.buffer -= wait;
        self.t = done + ns(wait) + 1_000_000;
        h.conn.settle(&mut u.out, self.t);
        Step::More(self.t)
    }
}

/// Progressive download of one video file.
pub(crate) struct Download {
    sid: u64,
    http: Option<Http>,
    t: u64,
    last: u64,
    size: u64,
    started: bool,
}

impl Download {
    pub fn new(u: &mut UserCtx, env: &Env, sid: u64, t: u64) -> Download {
        let p = &env.cfg.video;
        let size = download_size(&mut u.rng, p);
        Download {
            sid,
            http: None,
            t,
            last: t,
            size,
            started: false,
        }
    }
}

impl Session for Download {
    fn step(&mut self, u: &mut UserCtx, env: &Env) -> Step {
        if !self.started {
            self.started = true;
            let k = u.rng.next_u32() % 4 + 1;
            let host = format!("downloads{k}.example.net");
            let tls = dist::chance(&mut u.rng, env.cfg.video.tls_fraction);
            let (mut h, t) = Http::open(
                u,
                env,
                &host,
                tls,
                Class::VideoDownload,
                "http-download",
                "tls-download",
                self.sid,
                self.t,
            );
            let path = format!("/videos/{:08x}.mp4", u.rng.next_u32());
            let req = h.request(u, &path, "*/*");
            let a = h.conn.send(&mut u.out, C, t, req);
            // Progressive MP4 served as opaque bytes.
            let resp = h.response(a.delivered, "application/octet-stream", None, self.size);
            h.conn.begin(&mut u.out, S, a.delivered + 2_000_000, resp);
            self.http = Some(h);
        }
        let h = self.http.as_mut().expect("open");
        match h.conn.pump(&mut u.out, 1000) {
            None => Step::More(h.conn.horizon()),
            Some(sent) => {
                let l = h.conn.close(&mut u.out, C, sent.delivered + 20_000_000);
                u.out.close_flow(h.conn.flow);
                self.last = l;
                Step::Done(l)
            }
        }
    }
}

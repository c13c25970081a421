//! Labelled synthetic traffic for trafficscope.
//!
//! `generate` writes captures of traffic whose class is known — web
//! browsing, adaptive video streaming and progressive video download, VoIP
//! (RTP with SIP signalling, and the original system's ICMP-echo emulation),
//! bulk transfers (FTP, rsync) and DNS — with a ground-truth labels file
//! (one row per flow) and optionally per-packet labels.
//!
//! **Honesty about what is synthetic.** Headers, handshakes, sequence and
//! acknowledgement numbers, checksums and the plaintext protocol messages
//! (HTTP/1.1 requests and response headers, TLS ClientHello/ServerHello,
//! DNS, SIP/SDP, RTP headers, FTP/rsync dialogues, the DASH MPD) are real
//! formats; bodies, media and ciphertext are filler. Timing comes from the
//! published models cited on each class ([`WebParams`], [`VideoParams`],
//! [`VoipParams`], [`BulkParams`], [`DnsParams`]) and a loss-free TCP model
//! (see the `tcp` module docs); there are no retransmissions, reordering or
//! middleboxes. Addresses are private or documentation prefixes only
//! (10/8, 192.0.2/24, 198.51.100/24, 203.0.113/24, fd00::/8, 2001:db8::/32)
//! and names are under the reserved `example.*` domains (RFC 2606).
//!
//! Entry points: [`generate_offline`] (captures written directly, far faster
//! than real time) and [`live::run_live_opts`] (real sockets over loopback or
//! a veth pair into a network namespace, paced in real time by the same
//! models, optionally recorded, with a report of how late each scheduled
//! send was). Output is in global timestamp order and generated lazily (each
//! user holds at most one page / video segment / ~1.5 MB of a bulk transfer
//! in memory as packet descriptors), so long, large mixes stream in bounded
//! memory. A seed gives bit-identical output.
//!
//! **Users and sessions.** Users get classes in proportion to the mix
//! weights (stratified, so every class with weight appears once there are
//! enough users); each user has its own client address (10.1.x.y, or
//! fd00:0:0:1::x:y with IPv6) and runs sessions of its class back to back
//! with exponential idle gaps (mean [`GenerateConfig::idle_mean_s`]), so
//! sessions of different users overlap. Servers have their own addresses
//! (web 203.0.113/24, video and downloads 198.51.100.1–99, bulk
//! 198.51.100.100–199, SIP proxy 192.0.2.10 and media 192.0.2.20+, resolver
//! 10.0.0.53; 2001:db8::/32 and fd00::53 with IPv6). Packets are seen from
//! the client's interface: client packets when sent, server packets on
//! arrival.
//!
//! **Labels** ([`LABELS_HEADER`]): one row per flow (5-tuple), written when
//! the flow's last packet has been written. `ip_a`/`port_a` are the client,
//! `proto` is TCP, UDP or ICMP (for ICMP echo `port_a` is the echo
//! identifier and `port_b` 0), `class` is one of web, video, voip, bulk, dns
//! ([`Class::label`]; DNS lookups made by web/video/bulk sessions are `dns`
//! flows of that session), `session` is `u<user>s<n>`, `start`/`end` are the
//! first and last packet times in UTC ISO 8601 with nanoseconds, `app` is
//! the finer application: http, tls, dash, http-download, tls-download, sip,
//! rtp, icmp-echo, ftp, ftp-data, rsync, dns. Per-packet labels
//! ([`PACKET_LABELS_HEADER`]) give the 1-based frame number, class and
//! session.

mod dist;
mod model;
mod out;
mod proto;
mod tcp;
mod time;
mod wire;

pub mod live;

use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::io::Write;
use std::str::FromStr;

use rand::SeedableRng;

pub use time::{iso8601, parse_duration, parse_rate};
pub use wire::Ip;

use crate::dist::Rng;
use crate::out::{Flow, Out};
use crate::wire::{build_frame, IpParams};

/// A kind of generated session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Web browsing: page loads over HTTP/1.1 and TLS with DNS lookups.
    Web,
    /// Adaptive (DASH-like) video streaming.
    Video,
    /// Progressive download of a video file (one bulk HTTP(S) transfer).
    VideoDownload,
    /// VoIP call: SIP over UDP 5060 and G.711 RTP both ways.
    Voip,
    /// The original system's VoIP emulation: 64 kbit/s ICMP echo, 20 ms.
    VoipIcmp,
    /// Bulk transfer: FTP (control + passive data) or rsync daemon.
    Bulk,
    /// Stand-alone DNS lookups.
    Dns,
}

impl Class {
    pub const ALL: [Class; 7] = [
        Class::Web,
        Class::Video,
        Class::VideoDownload,
        Class::Voip,
        Class::VoipIcmp,
        Class::Bulk,
        Class::Dns,
    ];

    /// The name used in `--mix` and `Class::from_str`.
    pub fn name(self) -> &'static str {
        match self {
            Class::Web => "web",
            Class::Video => "video",
            Class::VideoDownload => "video-download",
            Class::Voip => "voip",
            Class::VoipIcmp => "voip-icmp",
            Class::Bulk => "bulk",
            Class::Dns => "dns",
        }
    }

    /// The class written in the labels file: web, video, voip, bulk or dns.
    pub fn label(self) -> &'static str {
        match self {
            Class::Web => "web",
            Class::Video | Class::VideoDownload => "video",
            Class::Voip | Class::VoipIcmp => "voip",
            Class::Bulk => "bulk",
            Class::Dns => "dns",
        }
    }

    fn valid_list() -> String {
        Class::ALL.map(|c| c.name()).join(", ")
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Class {
    type Err = GenerateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Class::ALL
            .into_iter()
            .find(|c| c.name() == t)
            .ok_or_else(|| GenerateError::UnknownClass {
                name: s.to_string(),
                valid: Class::valid_list(),
            })
    }
}

/// Errors of configuration and generation; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("unknown traffic class {name:?}: valid classes are {valid}")]
    UnknownClass { name: String, valid: String },
    #[error("malformed mix {mix:?}: {why}; write class=weight pairs separated by commas, e.g. web=3,video=1,voip=2")]
    BadMix { mix: String, why: String },
    #[error("{what} needs {need_bps:.0} bit/s but the link is {link_bps:.0} bit/s: raise the link rate (--link-rate) or lower the {what} rate")]
    RateAboveLink {
        what: String,
        need_bps: f64,
        link_bps: f64,
    },
    #[error("{0}")]
    BadArgument(String),
    #[error(transparent)]
    Capture(#[from] capture::WriteError),
    #[error("cannot write labels: {0} (is the disk full or the pipe closed?)")]
    Labels(#[from] std::io::Error),
    /// A live run's `on_plan` callback stopped it before any traffic.
    #[error("the live run was cancelled before any traffic")]
    Cancelled,
}

/// Parses `web=3,video=1,voip=2` (a bare class means weight 1).
pub fn parse_mix(s: &str) -> Result<Vec<(Class, u32)>, GenerateError> {
    let bad = |why: String| GenerateError::BadMix {
        mix: s.to_string(),
        why,
    };
    let mut out: Vec<(Class, u32)> = Vec::new();
    if s.trim().is_empty() {
        return Err(bad("it is empty".into()));
    }
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("it has an empty entry".into()));
        }
        let (name, w) = match part.split_once('=') {
            Some((n, w)) => {
                let w: u32 = w.trim().parse().map_err(|_| {
                    bad(format!(
                        "weight {:?} of {:?} is not a whole number",
                        w.trim(),
                        n.trim()
                    ))
                })?;
                (n.trim(), w)
            }
            None => (part, 1),
        };
        let class: Class = name.parse()?;
        if out.iter().any(|(c, _)| *c == class) {
            return Err(bad(format!("class {class} appears twice")));
        }
        out.push((class, w));
    }
    if out.iter().all(|(_, w)| *w == 0) {
        return Err(bad("all weights are zero".into()));
    }
    Ok(out)
}

/// Web browsing model.
///
/// A session is a run of page loads separated by think (reading) times.
/// A page is a base HTML document followed by embedded objects fetched over
/// up to `max_conns_per_host` parallel persistent connections per host
/// (HTTP/1.1 on 80, or TLS 1.3 on 443 with SNI and ALPN), each new host
/// looked up in DNS first (cached for the answer's TTL).
///
/// * Base document size: truncated lognormal, 3GPP2 C.R1002 web-browsing
///   model (mean 10 710 B, s.d. 25 032 B → μ = 8.35, σ = 1.37; 100 B–2 MB).
/// * Embedded object size: SURGE hybrid (Barford & Crovella 1998): with
///   probability 1 − `obj_tail_p` lognormal body (μ = 9.357, σ = 1.318),
///   else Pareto tail (x_m = 133 kB, α = 1.1) truncated at `obj_max`.
///   CDF: `(1−p)·Φ((ln x − μ)/σ) + p·(1 − (x_m/x)^α)/(1 − (x_m/max)^α)`.
/// * Objects per page: 3GPP2 truncated Pareto (α = 1.1, k = 2, m = 55) − k
///   (mean ≈ 5.6).
/// * Parsing delay before embedded fetches: exponential, mean 0.13 s (3GPP2).
/// * Think time: Pareto (SURGE's OFF-time shape α = 1.5) with scale
///   `think_xm_s` (SURGE: 1 s; default 2 s), capped at `think_max_s`.
///
/// Not modelled: HTTP/2 multiplexing (the ClientHello offers h2, but TLS
/// connections carry HTTP/1.1-shaped request/response exchanges), QUIC,
/// caching and redirects. Sites are 40 names with Zipf popularity.
#[derive(Clone, Debug)]
pub struct WebParams {
    pub main_mu: f64,
    pub main_sigma: f64,
    pub main_min: f64,
    pub main_max: f64,
    pub obj_mu: f64,
    pub obj_sigma: f64,
    pub obj_tail_p: f64,
    pub obj_tail_xm: f64,
    pub obj_tail_alpha: f64,
    pub obj_max: f64,
    pub objs_alpha: f64,
    pub objs_k: f64,
    pub objs_max: f64,
    pub parse_mean_s: f64,
    pub think_xm_s: f64,
    pub think_alpha: f64,
    pub think_max_s: f64,
    /// Mean pages per session (geometric).
    pub pages_mean: f64,
    /// Share of sites and third-party hosts served over TLS.
    pub tls_fraction: f64,
    pub max_conns_per_host: u32,
    /// Server keep-alive timeout before it closes an idle connection.
    pub keepalive_s: f64,
}

impl Default for WebParams {
    fn default() -> Self {
        WebParams {
            main_mu: 8.35,
            main_sigma: 1.37,
            main_min: 100.0,
            main_max: 2e6,
            obj_mu: 9.357,
            obj_sigma: 1.318,
            obj_tail_p: 0.07,
            obj_tail_xm: 133_000.0,
            obj_tail_alpha: 1.1,
            obj_max: 10e6,
            objs_alpha: 1.1,
            objs_k: 2.0,
            objs_max: 55.0,
            parse_mean_s: 0.13,
            think_xm_s: 2.0,
            think_alpha: 1.5,
            think_max_s: 60.0,
            pages_mean: 10.0,
            tls_fraction: 0.8,
            max_conns_per_host: 6,
            keepalive_s: 5.0,
        }
    }
}

impl WebParams {
    /// CDF of the embedded-object size law (for goodness-of-fit tests).
    pub fn object_size_cdf(&self, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        let body = normal_cdf((x.ln() - self.obj_mu) / self.obj_sigma);
        let tail = if x < self.obj_tail_xm {
            0.0
        } else if x >= self.obj_max {
            1.0
        } else {
            let a = self.obj_tail_alpha;
            (1.0 - (self.obj_tail_xm / x).powf(a))
                / (1.0 - (self.obj_tail_xm / self.obj_max).powf(a))
        };
        (1.0 - self.obj_tail_p) * body + self.obj_tail_p * tail
    }
}

/// Standard normal CDF (Abramowitz & Stegun 7.1.26 erf, |error| < 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + y)
    } else {
        0.5 * (1.0 - y)
    }
}

/// Adaptive video streaming model (DASH over one long HTTP(S) connection).
///
/// After the MPD and an initialisation segment, the player fetches media
/// segments of `segment_s` seconds back to back until its buffer holds
/// `buffer_target_s` (buffering phase), then one segment each time the
/// buffer has room for one — the ON/OFF steady state described by Rao et
/// al., "Network characteristics of video streaming traffic" (CoNEXT 2011).
/// Rate adaptation picks the highest rung of `ladder` at most
/// `abr_safety` × the measured throughput (EWMA), unless `fixed_bitrate`.
/// Segment sizes vary by ±`vbr` (uniform) around bitrate × duration.
/// Watch time is lognormal (median `watch_median_s`, σ `watch_sigma`).
/// `video-download` is one progressive download of a lognormal-sized file.
/// Not modelled: separate audio segments, live streaming, QUIC.
#[derive(Clone, Debug)]
pub struct VideoParams {
    pub ladder: Vec<u64>,
    /// Segment durations to choose from per session (seconds).
    pub segment_s: Vec<u32>,
    pub buffer_target_s: f64,
    pub fixed_bitrate: Option<u64>,
    pub abr_safety: f64,
    pub vbr: f64,
    pub watch_median_s: f64,
    pub watch_sigma: f64,
    pub tls_fraction: f64,
    pub download_median_bytes: f64,
    pub download_sigma: f64,
    pub download_max_bytes: f64,
}

impl Default for VideoParams {
    fn default() -> Self {
        VideoParams {
            ladder: vec![
                500_000, 1_000_000, 2_000_000, 3_000_000, 5_000_000, 8_000_000,
            ],
            segment_s: vec![2, 4, 6],
            buffer_target_s: 30.0,
            fixed_bitrate: None,
            abr_safety: 0.8,
            vbr: 0.08,
            watch_median_s: 180.0,
            watch_sigma: 1.0,
            tls_fraction: 0.7,
            download_median_bytes: 30e6,
            download_sigma: 0.8,
            download_max_bytes: 300e6,
        }
    }
}

/// VoIP model: ITU-T G.711 µ-law (PCMU, 64 kbit/s) in RTP (RFC 3550/3551)
/// over UDP, 20 ms packets of 160 bytes, 50 packets/s in each direction
/// while that side talks. Each direction follows Brady's two-state ON/OFF
/// talk-spurt model with exponential durations (means `on_mean_s` ≈ 1.0 s,
/// `off_mean_s` ≈ 1.35 s; ITU-T P.59's artificial conversation uses
/// 1.004 s / 1.587 s). Silence is optionally marked with RFC 3389 comfort
/// noise (PT 13) at its start and every second. A SIP dialog (RFC 3261:
/// INVITE/100/180/200/ACK … BYE/200, SDP offer/answer) over UDP 5060 to a
/// proxy opens and closes the call; media flows to a separate media host,
/// with RTCP sender reports + SDES CNAME on the next port about every 5 s
/// (RFC 3550 §6.2, randomised ×[0.5, 1.5]).
/// Call length is exponential, mean `call_mean_s`, at least `call_min_s`.
/// `voip-icmp` reproduces the original system: ICMP echo of 160 data bytes
/// every 20 ms (64 kbit/s), continuously, for the call length.
#[derive(Clone, Debug)]
pub struct VoipParams {
    pub on_mean_s: f64,
    pub off_mean_s: f64,
    pub comfort_noise: bool,
    pub call_mean_s: f64,
    pub call_min_s: f64,
    /// Network jitter on received packets, uniform in [0, this).
    pub jitter_s: f64,
}

impl Default for VoipParams {
    fn default() -> Self {
        VoipParams {
            on_mean_s: 1.0,
            off_mean_s: 1.35,
            comfort_noise: true,
            call_mean_s: 120.0,
            call_min_s: 10.0,
            jitter_s: 0.002,
        }
    }
}

/// Bulk transfer model: FTP (RFC 959: control on 21, passive data
/// connection, RETR or STOR) or an rsync daemon session (873) pulling one
/// file. File size lognormal (median `size_median_bytes`, σ `size_sigma`),
/// truncated to `[size_min_bytes, size_max_bytes]`; the transfer runs as
/// fast as TCP and the link allow.
#[derive(Clone, Debug)]
pub struct BulkParams {
    pub size_median_bytes: f64,
    pub size_sigma: f64,
    pub size_min_bytes: f64,
    pub size_max_bytes: f64,
    pub upload_fraction: f64,
    pub rsync_fraction: f64,
}

impl Default for BulkParams {
    fn default() -> Self {
        BulkParams {
            size_median_bytes: 10e6,
            size_sigma: 1.5,
            size_min_bytes: 10e3,
            size_max_bytes: 500e6,
            upload_fraction: 0.25,
            rsync_fraction: 0.4,
        }
    }
}

/// Stand-alone DNS: bursts of a geometric number of lookups (mean
/// `queries_mean`) of background names, exponentially spaced (mean
/// `gap_mean_s`); each lookup is its own UDP flow from a fresh port (A, and
/// AAAA too), as stub resolvers do.
#[derive(Clone, Debug)]
pub struct DnsParams {
    pub queries_mean: f64,
    pub gap_mean_s: f64,
}

impl Default for DnsParams {
    fn default() -> Self {
        DnsParams {
            queries_mean: 4.0,
            gap_mean_s: 2.0,
        }
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateConfig {
    /// Classes and their relative weights (share of users).
    pub mix: Vec<(Class, u32)>,
    pub users: u32,
    /// Length of the generated period (ns). Sessions stop starting new
    /// activity at the end; activity in flight completes (streams are
    /// closed properly), so the capture may run slightly longer.
    pub duration_ns: u64,
    pub seed: u64,
    /// Each user's access-link rate, bit/s (both directions).
    pub link_rate_bps: f64,
    /// Base round-trip time (ns); each server scales it by a fixed factor
    /// in [0.5, 1.5) drawn from its address.
    pub rtt_ns: u64,
    pub ipv6: bool,
    /// Capture start, ns since the Unix epoch.
    pub start_ns: u64,
    /// Written in the labels' `pcap` column.
    pub pcap_name: String,
    /// Mean idle time of a user between sessions (s).
    pub idle_mean_s: f64,
    pub web: WebParams,
    pub video: VideoParams,
    pub voip: VoipParams,
    pub bulk: BulkParams,
    pub dns: DnsParams,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            mix: vec![(Class::Web, 3), (Class::Video, 1), (Class::Voip, 2)],
            users: 10,
            duration_ns: 60_000_000_000,
            seed: 1,
            link_rate_bps: 100e6,
            rtt_ns: 40_000_000,
            ipv6: false,
            start_ns: 1_735_689_600_000_000_000,
            pcap_name: "generated.pcap".into(),
            idle_mean_s: 5.0,
            web: WebParams::default(),
            video: VideoParams::default(),
            voip: VoipParams::default(),
            bulk: BulkParams::default(),
            dns: DnsParams::default(),
        }
    }
}

/// Wire rate of one direction of G.711/20 ms RTP including headers.
pub fn voip_wire_rate_bps(ipv6: bool) -> f64 {
    let frame = 14.0 + if ipv6 { 40.0 } else { 20.0 } + 8.0 + 12.0 + 160.0 + 24.0;
    frame * 8.0 * 50.0
}

impl GenerateConfig {
    /// Checks the configuration; every error names the fix.
    pub fn validate(&self) -> Result<(), GenerateError> {
        let arg = |s: String| Err(GenerateError::BadArgument(s));
        if self.mix.is_empty() || self.mix.iter().all(|(_, w)| *w == 0) {
            return Err(GenerateError::BadMix {
                mix: String::new(),
                why: "no class has a positive weight".into(),
            });
        }
        if self.users == 0 {
            return arg("--users must be at least 1".into());
        }
        if self.users > 60_000 {
            return arg(format!(
                "--users {} is too many: at most 60000 client addresses",
                self.users
            ));
        }
        if self.duration_ns == 0 {
            return arg("--duration must be positive, e.g. 10m".into());
        }
        if !(self.link_rate_bps.is_finite() && self.link_rate_bps >= 1e3) {
            return arg("--link-rate must be at least 1k (bit/s)".into());
        }
        if self.rtt_ns == 0 || self.rtt_ns > 10_000_000_000 {
            return arg("--rtt must be between 1 ns and 10 s, e.g. 40ms".into());
        }
        let has = |c: Class| self.mix.iter().any(|(k, w)| *k == c && *w > 0);
        let link = self.link_rate_bps;
        if has(Class::Voip) || has(Class::VoipIcmp) {
            let need = voip_wire_rate_bps(self.ipv6);
            if need > link {
                return Err(GenerateError::RateAboveLink {
                    what: "voip (G.711 64 kbit/s, 20 ms packets, with headers)".into(),
                    need_bps: need,
                    link_bps: link,
                });
            }
        }
        if has(Class::Video) {
            let v = &self.video;
            if v.ladder.is_empty() || v.segment_s.is_empty() || v.segment_s.contains(&0) {
                return arg(
                    "video ladder and segment durations must be non-empty and positive".into(),
                );
            }
            let need = v.fixed_bitrate.unwrap_or(*v.ladder.iter().min().unwrap()) as f64;
            if need > link {
                return Err(GenerateError::RateAboveLink {
                    what: "video bitrate".into(),
                    need_bps: need,
                    link_bps: link,
                });
            }
        }
        Ok(())
    }
}

/// What was generated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub packets: u64,
    /// Frame bytes written (Ethernet frames, excluding preamble/FCS).
    pub bytes: u64,
    /// Flows by label class (web, video, voip, bulk, dns).
    pub flows: BTreeMap<String, u64>,
    /// Sessions by generator class (including video-download, voip-icmp).
    pub sessions: BTreeMap<String, u64>,
    pub first_ns: u64,
    pub last_ns: u64,
}

impl Summary {
    /// Time from first to last packet.
    pub fn duration_ns(&self) -> u64 {
        self.last_ns.saturating_sub(self.first_ns)
    }
}

/// Header of the labels CSV.
pub const LABELS_HEADER: &str = "pcap,proto,ip_a,port_a,ip_b,port_b,class,session,start,end,app";
/// Header of the per-packet labels CSV.
pub const PACKET_LABELS_HEADER: &str = "packet,class,session";

pub(crate) struct Env<'a> {
    pub cfg: &'a GenerateConfig,
    pub end: u64,
}

/// A user's state outside its current session.
pub(crate) struct UserCtx {
    pub idx: u32,
    pub ip: Ip,
    pub mac: [u8; 6],
    pub rng: Rng,
    pub out: Out,
    pub next_port: u16,
    pub next_rtp: u16,
    pub next_icmp_id: u16,
    /// Resolved names: (name, expiry, time the answer arrived).
    pub dns_cache: Vec<(String, u64, u64)>,
    pub sessions: u64,
}

struct User {
    ctx: UserCtx,
    class: Class,
    session: Option<Box<dyn model::Session>>,
    next_start: u64,
    finished: bool,
}

const GW_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

fn client_ip(i: u32, v6: bool) -> Ip {
    let n = i + 2;
    if v6 {
        let mut b = [0u8; 16];
        b[0] = 0xfd;
        b[7] = 1;
        b[14] = (n >> 8) as u8;
        b[15] = n as u8;
        Ip::V6(b)
    } else {
        Ip::V4([10, 1, (n >> 8) as u8, n as u8])
    }
}

/// Stratified first class of user `i`: user shares follow the weights.
pub(crate) fn class_of_user(mix: &[(Class, u32)], i: u32, users: u32) -> Class {
    let total: u64 = mix.iter().map(|(_, w)| *w as u64).sum();
    // Position of the user's midpoint in [0, total).
    let x = ((2 * i as u64 + 1) * total) as f64 / (2 * users as u64) as f64;
    let mut acc = 0.0;
    for (c, w) in mix {
        acc += *w as f64;
        if x < acc {
            return *c;
        }
    }
    mix.iter().rev().find(|(_, w)| *w > 0).unwrap().0
}

impl User {
    /// Generates until the next packet can be released; returns its time.
    fn prepare(&mut self, env: &Env) -> Option<u64> {
        loop {
            if let Some(ts) = self.ctx.out.peek_ts() {
                if ts <= self.ctx.out.horizon || self.finished {
                    return Some(ts);
                }
            } else if self.finished {
                return None;
            }
            match &mut self.session {
                Some(s) => match s.step(&mut self.ctx, env) {
                    model::Step::More(h) => {
                        debug_assert!(h >= self.ctx.out.horizon, "horizon went back");
                        self.ctx.out.horizon = self.ctx.out.horizon.max(h);
                    }
                    model::Step::Done(end) => {
                        self.session = None;
                        let idle = dist::exp(&mut self.ctx.rng, env.cfg.idle_mean_s);
                        self.next_start = end.max(self.ctx.out.horizon) + dist::ns(idle) + 1;
                        self.ctx.out.horizon = self.ctx.out.horizon.max(self.next_start);
                    }
                },
                None => {
                    if self.next_start >= env.end {
                        self.finished = true;
                        self.ctx.out.horizon = u64::MAX;
                    } else {
                        self.ctx.sessions += 1;
                        let s = model::new_session(self.class, &mut self.ctx, env, self.next_start);
                        self.session = Some(s);
                    }
                }
            }
        }
    }
}

struct Writer<'a, W: Write, L: Write, P: Write> {
    cap: &'a mut capture::CaptureWriter<W>,
    labels: &'a mut L,
    packet_labels: Option<&'a mut P>,
    pcap_name: &'a str,
    summary: Summary,
}

impl<W: Write, L: Write, P: Write> Writer<'_, W, L, P> {
    fn label_row(&mut self, f: &Flow) -> Result<(), GenerateError> {
        if !f.seen {
            return Ok(());
        }
        writeln!(
            self.labels,
            "{},{},{},{},{},{},{},u{}s{},{},{},{}",
            self.pcap_name,
            f.proto.name(),
            f.client.ip,
            f.client.port,
            f.server.ip,
            f.server.port,
            f.class.label(),
            f.user,
            f.session,
            iso8601(f.first),
            iso8601(f.last),
            f.app
        )?;
        *self
            .summary
            .flows
            .entry(f.class.label().to_string())
            .or_default() += 1;
        Ok(())
    }

    fn write(&mut self, fr: &GeneratedFrame<'_>) -> Result<(), GenerateError> {
        self.cap.write_frame(
            fr.ts_ns,
            fr.data.len() as u32,
            capture::LinkType::ETHERNET,
            fr.data,
        )?;
        self.summary.packets += 1;
        self.summary.bytes += fr.data.len() as u64;
        if self.summary.packets == 1 {
            self.summary.first_ns = fr.ts_ns;
        }
        self.summary.last_ns = fr.ts_ns;
        if let Some(p) = self.packet_labels.as_mut() {
            writeln!(
                p,
                "{},{},u{}s{}",
                self.summary.packets,
                fr.class.label(),
                fr.user,
                fr.session
            )?;
        }
        Ok(())
    }
}

/// Generates the configured mix, writing frames to `cap`, one label row per
/// flow to `labels` (header [`LABELS_HEADER`]) and, if given, one row per
/// packet to `packet_labels` ([`PACKET_LABELS_HEADER`]). Frames are in
/// timestamp order. The writers are flushed before returning, also on error,
/// so partial output stays valid.
pub fn generate_offline<W: Write, L: Write, P: Write>(
    cfg: &GenerateConfig,
    cap: &mut capture::CaptureWriter<W>,
    labels: &mut L,
    packet_labels: Option<&mut P>,
) -> Result<Summary, GenerateError> {
    cfg.validate()?;
    let mut w = Writer {
        cap,
        labels,
        packet_labels,
        pcap_name: &cfg.pcap_name,
        summary: Summary::default(),
    };
    let r = run(cfg, &mut w);
    let f1 = w.cap.flush();
    let f2 = w.labels.flush();
    let f3 = w.packet_labels.as_mut().map(|p| p.flush());
    r?;
    f1?;
    f2?;
    if let Some(f) = f3 {
        f?;
    }
    Ok(w.summary)
}

fn run<W: Write, L: Write, P: Write>(
    cfg: &GenerateConfig,
    w: &mut Writer<'_, W, L, P>,
) -> Result<(), GenerateError> {
    writeln!(w.labels, "{LABELS_HEADER}")?;
    if let Some(p) = w.packet_labels.as_mut() {
        writeln!(p, "{PACKET_LABELS_HEADER}")?;
    }
    let mut stream = FrameStream::new(cfg.clone())?;
    for c in stream.classes() {
        *w.summary.sessions.entry(c.name().to_string()).or_default() += 0;
    }
    while let Some(fr) = stream.next_frame() {
        w.write(&fr)?;
        for f in stream.finished.drain(..) {
            w.label_row(&f)?;
        }
    }
    for (class, n) in stream.sessions() {
        *w.summary
            .sessions
            .entry(class.name().to_string())
            .or_default() += n;
    }
    for f in stream.drain_open_flows() {
        w.label_row(&f)?;
    }
    Ok(())
}

/// One generated frame with its ground truth.
#[derive(Debug, Clone, Copy)]
pub struct GeneratedFrame<'a> {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: u64,
    /// The Ethernet frame.
    pub data: &'a [u8],
    /// The class of the frame's flow (its label is [`Class::label`]).
    pub class: Class,
    pub user: u32,
    pub session: u64,
}

/// The generator as a pull source: frames in timestamp order, each with its
/// flow's class, produced lazily in bounded memory. The offline writer and
/// the live service's in-process source both read it, so they see the same
/// traffic for the same seed.
pub struct FrameStream {
    cfg: GenerateConfig,
    end: u64,
    users: Vec<User>,
    /// Users by their next releasable packet (time, user index).
    heap: BinaryHeap<std::cmp::Reverse<(u64, u32)>>,
    buf: Vec<u8>,
    last_ts: u64,
    /// Flows whose last packet has been produced, for label rows.
    finished: Vec<Flow>,
}

impl FrameStream {
    /// Checks the configuration and sets up the users; no packet is made yet.
    pub fn new(cfg: GenerateConfig) -> Result<Self, GenerateError> {
        cfg.validate()?;
        let mix: Vec<(Class, u32)> = cfg.mix.iter().copied().filter(|(_, w)| *w > 0).collect();
        let users: Vec<User> = (0..cfg.users)
            .map(|i| {
                let mut rng = Rng::seed_from_u64(cfg.seed);
                rng.set_stream(i as u64 + 1);
                let ip = client_ip(i, cfg.ipv6);
                let n = i + 2;
                let stagger = dist::uniform(&mut rng, 0.0, (cfg.duration_ns as f64 / 4e9).min(5.0));
                let next_port = dist::range(&mut rng, 32768, 61000) as u16;
                let next_rtp = 16384 + 2 * dist::range(&mut rng, 0, 4000) as u16;
                User {
                    ctx: UserCtx {
                        idx: i,
                        ip,
                        mac: [0x02, 0x00, 0x0a, 0x01, (n >> 8) as u8, n as u8],
                        rng,
                        out: Out::new(),
                        next_port,
                        next_rtp,
                        next_icmp_id: (i as u16).wrapping_mul(7919).wrapping_add(1),
                        dns_cache: Vec::new(),
                        sessions: 0,
                    },
                    class: class_of_user(&mix, i, cfg.users),
                    session: None,
                    next_start: cfg.start_ns + dist::ns(stagger),
                    finished: false,
                }
            })
            .collect();
        let end = cfg.start_ns.saturating_add(cfg.duration_ns);
        let mut s = FrameStream {
            cfg,
            end,
            users,
            heap: BinaryHeap::new(),
            buf: Vec::with_capacity(2048),
            last_ts: 0,
            finished: Vec::new(),
        };
        let env = Env {
            cfg: &s.cfg,
            end: s.end,
        };
        for (i, u) in s.users.iter_mut().enumerate() {
            if let Some(ts) = u.prepare(&env) {
                s.heap.push(std::cmp::Reverse((ts, i as u32)));
            }
        }
        Ok(s)
    }

    /// The users' first classes, in user order.
    pub fn classes(&self) -> Vec<Class> {
        self.users.iter().map(|u| u.class).collect()
    }

    /// Sessions started so far, per user, with the user's class.
    pub fn sessions(&self) -> Vec<(Class, u64)> {
        self.users
            .iter()
            .map(|u| (u.class, u.ctx.sessions))
            .collect()
    }

    /// The next frame in timestamp order (ties by user), or `None` when
    /// every user has finished.
    pub fn next_frame(&mut self) -> Option<GeneratedFrame<'_>> {
        let std::cmp::Reverse((_, i)) = self.heap.pop()?;
        let env = Env {
            cfg: &self.cfg,
            end: self.end,
        };
        let u = &mut self.users[i as usize];
        let pkt = u.ctx.out.pop().expect("prepared packet");
        debug_assert!(pkt.ts >= self.last_ts, "frames out of order");
        self.last_ts = pkt.ts;
        let f = u.ctx.out.flow_mut(pkt.flow);
        let d = usize::from(!pkt.from_client);
        let ipp = IpParams {
            ttl: if pkt.from_client { 64 } else { f.server_ttl },
            id: f.ip_id[d],
            flow_label: f.flow_label[d],
        };
        f.ip_id[d] = f.ip_id[d].wrapping_add(1);
        if !f.seen {
            f.seen = true;
            f.first = pkt.ts;
        }
        f.last = pkt.ts;
        f.queued -= 1;
        let (src, dst) = if pkt.from_client {
            (f.client, f.server)
        } else {
            (f.server, f.client)
        };
        let (class, user, session) = (f.class, f.user, f.session);
        build_frame(
            &mut self.buf,
            &src,
            &dst,
            &pkt.l4,
            &pkt.payload,
            ipp,
            !pkt.from_client,
        );
        if let Some(f) = u.ctx.out.take_if_done(pkt.flow) {
            self.finished.push(f);
        }
        // Merging by (time, user) releases frames in the same order as
        // draining one user while it stays ahead of the others.
        if let Some(ts) = u.prepare(&env) {
            self.heap.push(std::cmp::Reverse((ts, i)));
        }
        Some(GeneratedFrame {
            ts_ns: pkt.ts,
            data: &self.buf,
            class,
            user,
            session,
        })
    }

    /// Flows still held when the stream ends (sorted by first packet).
    fn drain_open_flows(&mut self) -> Vec<Flow> {
        let mut v = Vec::new();
        for u in &mut self.users {
            v.extend(u.ctx.out.drain_flows());
        }
        v
    }
}

/// Convenience for the CLI: writes `pcap_path` (pcapng if it ends in
/// `.pcapng`, else pcap), the labels CSV and optionally per-packet labels.
/// The configuration is checked before any file is created; on a later
/// error the files written so far are flushed and remain valid captures /
/// CSVs up to the last complete record.
pub fn generate_to_files(
    cfg: &GenerateConfig,
    pcap_path: &std::path::Path,
    labels_path: &std::path::Path,
    packet_labels_path: Option<&std::path::Path>,
) -> Result<Summary, GenerateError> {
    use std::fs::File;
    use std::io::BufWriter;
    cfg.validate()?;
    let create = |p: &std::path::Path| {
        File::create(p).map(BufWriter::new).map_err(|e| {
            GenerateError::BadArgument(format!(
                "cannot create {}: {e}; check the directory exists and is writable",
                p.display()
            ))
        })
    };
    let fmt = capture::OutputFormat::from_path(&pcap_path.to_string_lossy());
    let mut cap = capture::CaptureWriter::new(create(pcap_path)?, fmt, 0);
    let mut labels = create(labels_path)?;
    let mut pl = packet_labels_path.map(create).transpose()?;
    let r = generate_offline(cfg, &mut cap, &mut labels, pl.as_mut());
    let closed = cap.into_inner().map_err(GenerateError::from);
    let s = r?;
    closed?;
    Ok(s)
}

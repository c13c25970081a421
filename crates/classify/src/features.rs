//! Versioned feature schema for flows and packets.
//!
//! The order and meaning of every value is fixed by
//! [`FEATURE_SCHEMA_VERSION`]; model files store the version and the names
//! and refuse to load against another schema.

use std::collections::HashMap;

use decode::app::{protocol_names, PROTOCOLS};
use flow::{AppInfo, FlowRecord};

use crate::catalogue::{Catalogue, Category};

/// Bump whenever a feature is added, removed, reordered or changes meaning.
/// 2: 256 buckets of hashed application tokens (version 1 had 64).
/// 3: service-catalogue categories of the flow's names (SNI, HTTP Host, DNS
///    query, server certificate name); every protocol recognised in the
///    flow; HTTP media hints (path extension, response content type).
/// 4: how each direction behaves over time ([`flow::Shape`]): size modes,
///    gap structure (bursts, idle periods, a clock), spread of its bytes
///    over the seconds it sent in.
pub const FEATURE_SCHEMA_VERSION: u32 = 4;

/// Signed sizes / IATs of this many first packets are features.
pub const FIRST_N: usize = 16;
/// Buckets of hashed application tokens.
pub const TOKEN_BUCKETS: usize = 256;

const DETECTED: [&str; 8] = ["tls", "http", "dns", "quic", "ssh", "rtp", "rtcp", "sip"];
/// Extensions of request paths that name media segments, playlists and files.
const MEDIA_EXTENSIONS: [&str; 16] = [
    "m3u8", "mpd", "ts", "m4s", "m4v", "m4a", "mp4", "flv", "f4v", "webm", "mkv", "mp3", "aac",
    "ogg", "ism", "cmfv",
];
/// Families of HTTP response content types, in feature order.
const CONTENT_FAMILIES: [&str; 6] = ["media", "image", "text", "script", "data", "other"];
const FLAG_NAMES: [&str; 8] = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"];
/// Substrings of host names (SNI, HTTP host, DNS query) that hint at an
/// application family. Generic words and large platforms only.
const KEYWORDS: [&str; 25] = [
    "video", "stream", "media", "cdn", "tv", "play", "voip", "voice", "call", "meet", "conf",
    "stun", "turn", "rtc", "sip", "chat", "api", "static", "img", "update", "vod", "live", "tube",
    "movie", "music",
];

fn flow_names() -> Vec<String> {
    let mut n: Vec<String> = [
        "duration_s_log",
        "proto_tcp",
        "proto_udp",
        "proto_other",
        "ip_v6",
        "packets_log",
        "bytes_log",
        "down_byte_ratio",
        "down_packet_ratio",
        "packets_per_s_log",
        "bytes_per_s_log",
        "mean_payload",
        "payload_fraction",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for d in ["fwd", "bwd"] {
        for f in [
            "packets_log",
            "bytes_log",
            "payload_bytes_log",
            "size_min",
            "size_mean",
            "size_max",
            "size_std",
            "iat_min_ms_log",
            "iat_mean_ms_log",
            "iat_max_ms_log",
            "iat_std_ms_log",
        ] {
            n.push(format!("{d}_{f}"));
        }
        for f in FLAG_NAMES {
            n.push(format!("{d}_flag_{f}_frac"));
        }
    }
    for f in [
        "resp_port_wellknown",
        "resp_port_registered",
        "resp_port_ephemeral",
        "init_port_wellknown",
        "init_port_ephemeral",
        "service_known",
        "service_id",
    ] {
        n.push(f.to_string());
    }
    for i in 0..FIRST_N {
        n.push(format!("first_size_signed_{i}"));
    }
    for i in 0..FIRST_N {
        n.push(format!("first_iat_ms_log_{i}"));
    }
    for f in [
        "first_n_fwd_frac",
        "first_n_size_mean",
        "first_n_size_std",
        "first_n_small_frac",
        "first_n_large_frac",
        "first_n_dir_changes",
    ] {
        n.push(f.to_string());
    }
    for f in [
        "app_sni",
        "app_alpn",
        "app_alpn_h2",
        "app_alpn_h3",
        "app_http_host",
        "app_http_method",
        "app_dns",
        "app_quic",
        "app_ssh",
    ] {
        n.push(f.to_string());
    }
    for d in DETECTED {
        n.push(format!("detected_{d}"));
    }
    for k in KEYWORDS {
        n.push(format!("kw_{k}"));
    }
    for c in Category::ALL {
        n.push(format!("svc_{}", c.name()));
    }
    for p in PROTOCOLS {
        n.push(format!("seen_{p}"));
    }
    n.push("app_tls_cert_name".into());
    n.push("http_path_media".into());
    for f in CONTENT_FAMILIES {
        n.push(format!("http_content_{f}"));
    }
    for d in ["fwd", "bwd"] {
        for f in SHAPE_NAMES {
            n.push(format!("{d}_{f}"));
        }
    }
    for i in 0..TOKEN_BUCKETS {
        n.push(format!("tok_{i}"));
    }
    n
}

/// Per-direction behaviour features ([`shape_features`]), in order.
const SHAPE_NAMES: [&str; 18] = [
    "size_le96_frac",
    "size_le300_frac",
    "size_le700_frac",
    "size_le1100_frac",
    "size_le1400_frac",
    "size_gt1400_frac",
    "gap_lt1ms_frac",
    "gap_lt10ms_frac",
    "gap_lt50ms_frac",
    "gap_lt200ms_frac",
    "gap_lt1s_frac",
    "gap_ge1s_frac",
    "regular_gap_frac",
    "gap_cv",
    "bursts_log",
    "burst_bytes_log",
    "active_second_frac",
    "peak_to_mean_second",
];

/// How one direction behaves over time (schema 4): the shares of its
/// frame sizes and gaps by bucket, how regular its gaps are (a clocked
/// sender's are), its bursts (runs between gaps of 200 ms or more) and
/// their mean size, the share of the flow's seconds it sent in and how
/// much its busiest second exceeds its mean active second. Shares and
/// ratios rather than counts, so a flow looks the same at 30 packets and
/// at 30,000 — what carries to a service no capture showed.
fn shape_features(ds: &flow::DirStats, flow_seconds: u64, v: &mut Vec<f32>) {
    let s = &ds.shape;
    let frac = |x: u32, n: u64| if n > 0 { x as f32 / n as f32 } else { 0.0 };
    for &c in &s.size_hist {
        v.push(frac(c, ds.packets));
    }
    let gaps = ds.packets.saturating_sub(1);
    for &c in &s.gap_hist {
        v.push(frac(c, gaps));
    }
    v.push(frac(s.regular_gaps, gaps.saturating_sub(1)));
    v.push(if ds.iat_us.mean > 0.0 {
        (ds.iat_us.std / ds.iat_us.mean) as f32
    } else {
        0.0
    });
    let bursts = s.bursts(ds.packets);
    v.push(ln1p(bursts as f64));
    v.push(if bursts > 0 {
        ln1p(ds.bytes as f64 / bursts as f64)
    } else {
        0.0
    });
    v.push(frac(s.active_seconds, flow_seconds.max(1)));
    v.push(if s.active_seconds > 0 && ds.bytes > 0 {
        (s.peak_second_bytes as f64 * s.active_seconds as f64 / ds.bytes as f64) as f32
    } else {
        0.0
    });
}

/// Number of flow features.
pub const FLOW_FEATURE_COUNT: usize = 13
    + 2 * (11 + 8)
    + 7
    + 2 * FIRST_N
    + 6
    + 9
    + DETECTED.len()
    + KEYWORDS.len()
    + Category::ALL.len()
    + PROTOCOLS.len()
    + 2
    + CONTENT_FAMILIES.len()
    + 2 * SHAPE_NAMES.len()
    + TOKEN_BUCKETS;

/// Names of the flow features, in order.
pub fn flow_feature_names() -> Vec<String> {
    flow_names()
}

#[inline]
fn ln1p(x: f64) -> f32 {
    (x.max(0.0)).ln_1p() as f32
}

/// FNV-1a, stable across platforms and releases (feature hashing).
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn service_id(service: Option<&str>) -> f32 {
    match service {
        None => -1.0,
        Some(s) => (fnv1a(s) % 1000) as f32,
    }
}

fn port_parts(port: u16) -> (f32, f32, f32) {
    if port < 1024 {
        (port as f32, -1.0, 0.0)
    } else if port < 49152 {
        (-1.0, port as f32, 0.0)
    } else {
        (-1.0, -1.0, 1.0)
    }
}

/// Application tokens of a flow: labels of its host names (SNI, HTTP host,
/// DNS query), its ALPN, detected protocol, service, QUIC version.
pub fn app_tokens(rec: &FlowRecord) -> Vec<String> {
    app_tokens_of(&rec.app)
}

fn app_tokens_of(app: &AppInfo) -> Vec<String> {
    let mut t = Vec::new();
    for name in flow_names_of(app) {
        host_tokens(name, &mut t);
    }
    if let Some(a) = &app.tls_alpn {
        t.push(format!("alpn:{a}"));
    }
    if let Some(d) = app.detected {
        t.push(format!("det:{d}"));
    }
    if let Some(s) = app.service {
        t.push(format!("svc:{s}"));
    }
    if let Some(q) = &app.quic_version {
        t.push(format!("quic:{q}"));
    }
    if let Some(q) = app.dns_qtype {
        t.push(format!("qtype:{q}"));
    }
    for p in protocol_names(app.protocols) {
        t.push(format!("proto:{p}"));
    }
    if let Some(e) = app.http_path.as_deref().and_then(media_extension) {
        t.push(format!("ext:{e}"));
    }
    if let Some(ct) = app.http_content_type.as_deref() {
        t.push(format!("content:{}", content_family(ct)));
    }
    t
}

/// Tokens for learned evidence ([`crate::evidence`]): the application tokens,
/// the prior categories of the flow (the catalogue categories of its names,
/// and video or audio when its HTTP exchange is a media playlist, segment or
/// file: [`media_category`]) and the responder's transport port.
pub fn evidence_tokens(rec: &FlowRecord) -> Vec<String> {
    let mut t = app_tokens(rec);
    let cats = prior_categories(&rec.app);
    for c in Category::ALL {
        if cats & c.bit() != 0 {
            t.push(format!("cat:{}", c.name()));
        }
    }
    let proto = match rec.protocol {
        6 => "tcp",
        17 => "udp",
        _ => "ip",
    };
    t.push(format!("port:{proto}/{}", rec.dst_port.min(rec.src_port)));
    t
}

fn host_tokens(name: &str, out: &mut Vec<String>) {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    // Address literals ("23.246.11.141", "[2001:db8::1]:80") carry no name.
    let bare = name.rsplit_once(':').map(|(h, _)| h).unwrap_or(&name);
    if bare
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok()
        || name.parse::<std::net::IpAddr>().is_ok()
    {
        return;
    }
    let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() >= 2 {
        // Registered-domain-like suffix (last two labels).
        out.push(format!(
            "dom:{}.{}",
            labels[labels.len() - 2],
            labels[labels.len() - 1]
        ));
    }
    // Every label but the TLD, split on '-' and without digits.
    for l in labels.iter().take(labels.len().saturating_sub(1)) {
        for part in l.split('-') {
            let p: String = part.chars().filter(|c| !c.is_ascii_digit()).collect();
            if p.len() >= 3 && p != "www" {
                out.push(format!("lbl:{p}"));
            }
        }
    }
}

/// The host names a flow carries: SNI, HTTP Host, DNS query, server
/// certificate name.
fn flow_names_of(a: &AppInfo) -> impl Iterator<Item = &str> {
    [&a.tls_sni, &a.http_host, &a.dns_query, &a.tls_cert_name]
        .into_iter()
        .flatten()
        .map(String::as_str)
}

/// The media extension of a request path ("/seg/a-0023.ts?x=1" → "ts").
fn media_extension(path: &str) -> Option<&'static str> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    let (_, ext) = last.rsplit_once('.')?;
    MEDIA_EXTENSIONS
        .iter()
        .find(|e| e.eq_ignore_ascii_case(ext))
        .copied()
}

/// Categories ([`Category::bit`] mask) of the protocols recognised in a
/// flow that exist for one kind of service: call signalling and voice
/// (SIP, MGCP, Megaco, H.323, IAX2, TeamSpeak, Skinny) is conferencing, RTMP,
/// RTSP and Agora's SD-RTN are video streaming, WhatsApp's protocol is messaging. RTP, STUN, DTLS and
/// the web's protocols carry anything and add nothing.
pub fn protocol_categories(protocols: u32) -> u8 {
    protocol_names(protocols)
        .filter_map(|p| match p {
            "sip" | "mgcp" | "megaco" | "h323" | "iax2" | "teamspeak" | "skinny" => {
                Some(Category::Conferencing)
            }
            // nDPI files Agora's SD-RTN under Media, as it does RTMP.
            "rtmp" | "rtsp" | "sd-rtn" => Some(Category::Video),
            "whatsapp" => Some(Category::Messaging),
            _ => None,
        })
        .fold(0, |m, c| m | c.bit())
}

/// Categories of the well-known port service of a flow
/// ([`decode::service::by_port`]) when the service exists for one kind of
/// traffic, as [`protocol_categories`] does for recognised protocols:
/// call signalling and voice ports (SIP, H.323, MGCP, Megaco, IAX2,
/// TeamSpeak, Zoom's media ports) are conferencing, RTMP and RTSP video.
/// It is how a flow too short or too encrypted for its protocol to be
/// recognised still carries what its port says (nDPI guesses by port the
/// same way).
pub fn service_categories(service: Option<&str>) -> u8 {
    match service {
        Some("sip" | "h323" | "mgcp" | "megaco" | "iax2" | "teamspeak" | "zoom") => {
            Category::Conferencing.bit()
        }
        Some("rtmp" | "rtsp") => Category::Video.bit(),
        _ => 0,
    }
}

/// Video or audio when a flow's HTTP exchange is media by definition: an
/// HLS, DASH or Smooth Streaming playlist or segment, a video or audio file
/// (request path extension), or a video/audio response or streaming
/// manifest (content type). Like the catalogue, prior knowledge that holds
/// for services no training capture had.
pub fn media_category(a: &AppInfo) -> Option<Category> {
    let ext = a.http_path.as_deref().and_then(media_extension);
    let ct = a.http_content_type.as_deref().map(str::to_ascii_lowercase);
    let audio_ct = ct.as_deref().is_some_and(|c| c.starts_with("audio/"));
    if matches!(ext, Some("mp3" | "aac" | "m4a" | "ogg")) || (ext.is_none() && audio_ct) {
        return Some(Category::Audio);
    }
    let media_ct = ct.as_deref().is_some_and(|c| content_family(c) == "media");
    (ext.is_some() || media_ct).then_some(Category::Video)
}

/// What is known of a flow before any training ([`Category::bit`] mask):
/// the catalogue categories of its names, its media category and the
/// categories of its single-purpose protocols. The learned evidence sees
/// them as `cat:` tokens. (The schema-3 feature vector carries only the
/// catalogue's share, as its models were trained on.)
pub fn prior_categories(a: &AppInfo) -> u8 {
    Catalogue::builtin().categories(flow_names_of(a))
        | media_category(a).map_or(0, Category::bit)
        | protocol_categories(a.protocols)
        | service_categories(a.service)
}

/// Family of a response content type (lower-case media type).
fn content_family(ct: &str) -> &'static str {
    let ct = ct.split(';').next().unwrap_or("").trim();
    let (top, sub) = ct.split_once('/').unwrap_or((ct, ""));
    match top {
        "video" | "audio" => "media",
        "image" => "image",
        _ if sub.contains("mpegurl") || sub.contains("dash+xml") || sub == "vnd.ms-sstr+xml" => {
            "media"
        }
        "text" if sub == "javascript" => "script",
        "text" => "text",
        "application" if sub.contains("javascript") || sub == "wasm" => "script",
        "application"
            if sub.contains("json")
                || sub.contains("xml")
                || sub == "x-protobuf"
                || sub == "protobuf"
                || sub == "grpc" =>
        {
            "data"
        }
        _ => "other",
    }
}

/// Feature vector of a (finished or partial) flow record.
pub fn flow_features(rec: &FlowRecord) -> Vec<f32> {
    flow_features_named(rec, &NameFeatures::of(&rec.app))
}

/// [`flow_features`] with the part that comes from the flow's names
/// computed beforehand (from the same record's [`AppInfo`]).
pub fn flow_features_named(rec: &FlowRecord, names: &NameFeatures) -> Vec<f32> {
    let mut v = Vec::with_capacity(FLOW_FEATURE_COUNT);
    flow_features_named_into(rec, names, &mut v);
    v
}

/// [`flow_features_named`] into `v` (cleared first): streaming
/// classification reuses one row for all its predictions.
pub fn flow_features_named_into(rec: &FlowRecord, names: &NameFeatures, v: &mut Vec<f32>) {
    v.clear();
    let dur = rec.duration_s();
    let pk = rec.packets() as f64;
    let by = rec.bytes() as f64;
    v.push(ln1p(dur * 1000.0));
    v.push((rec.protocol == 6) as u8 as f32);
    v.push((rec.protocol == 17) as u8 as f32);
    v.push((rec.protocol != 6 && rec.protocol != 17) as u8 as f32);
    v.push((rec.ip_version == 6) as u8 as f32);
    v.push(ln1p(pk));
    v.push(ln1p(by));
    v.push(if by > 0.0 {
        (rec.bwd.bytes as f64 / by) as f32
    } else {
        0.0
    });
    v.push(if pk > 0.0 {
        (rec.bwd.packets as f64 / pk) as f32
    } else {
        0.0
    });
    let d = dur.max(1e-3);
    v.push(ln1p(pk / d));
    v.push(ln1p(by / d));
    let payload = (rec.fwd.payload_bytes + rec.bwd.payload_bytes) as f64;
    v.push(if pk > 0.0 { (payload / pk) as f32 } else { 0.0 });
    v.push(if by > 0.0 { (payload / by) as f32 } else { 0.0 });
    for ds in [&rec.fwd, &rec.bwd] {
        v.push(ln1p(ds.packets as f64));
        v.push(ln1p(ds.bytes as f64));
        v.push(ln1p(ds.payload_bytes as f64));
        v.push(ds.size.min as f32);
        v.push(ds.size.mean as f32);
        v.push(ds.size.max as f32);
        v.push(ds.size.std as f32);
        v.push(ln1p(ds.iat_us.min / 1000.0));
        v.push(ln1p(ds.iat_us.mean / 1000.0));
        v.push(ln1p(ds.iat_us.max / 1000.0));
        v.push(ln1p(ds.iat_us.std / 1000.0));
        let n = ds.packets.max(1) as f32;
        for c in ds.tcp_flags {
            v.push(c as f32 / n);
        }
    }
    let (rw, rr, re) = port_parts(rec.dst_port);
    let (iw, _, ie) = port_parts(rec.src_port);
    v.extend([rw, rr, re, iw, ie]);
    v.push(rec.app.service.is_some() as u8 as f32);
    v.push(service_id(rec.app.service));
    // First-N sequences.
    let n = rec.first_sizes.len().min(FIRST_N);
    for i in 0..FIRST_N {
        if i < n {
            let dir = rec.first_dirs.get(i).copied().unwrap_or(1) as f32;
            v.push(rec.first_sizes[i] as f32 * dir);
        } else {
            v.push(0.0);
        }
    }
    for i in 0..FIRST_N {
        v.push(match rec.first_iats_us.get(i) {
            Some(&x) if i < n => ln1p(x / 1000.0),
            _ => 0.0,
        });
    }
    if n > 0 {
        let s = &rec.first_sizes[..n];
        let fwd = rec.first_dirs[..n.min(rec.first_dirs.len())]
            .iter()
            .filter(|&&d| d > 0)
            .count();
        let mean = s.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = s.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let small = s.iter().filter(|&&x| x < 128).count();
        let large = s.iter().filter(|&&x| x > 1000).count();
        let changes = rec.first_dirs[..n.min(rec.first_dirs.len())]
            .windows(2)
            .filter(|w| w[0] != w[1])
            .count();
        v.push(fwd as f32 / n as f32);
        v.push(mean as f32);
        v.push(var.sqrt() as f32);
        v.push(small as f32 / n as f32);
        v.push(large as f32 / n as f32);
        v.push(changes as f32 / n as f32);
    } else {
        v.extend([0.0; 6]);
    }
    let a = &rec.app;
    let alpn = a.tls_alpn.as_deref().unwrap_or("");
    v.push(a.tls_sni.is_some() as u8 as f32);
    v.push(a.tls_alpn.is_some() as u8 as f32);
    v.push((alpn == "h2") as u8 as f32);
    v.push(alpn.starts_with("h3") as u8 as f32);
    v.push(a.http_host.is_some() as u8 as f32);
    v.push(a.http_method.is_some() as u8 as f32);
    v.push(a.dns_query.is_some() as u8 as f32);
    v.push(a.quic_version.is_some() as u8 as f32);
    v.push(a.ssh_banner.is_some() as u8 as f32);
    for d in DETECTED {
        v.push((a.detected == Some(d)) as u8 as f32);
    }
    v.extend_from_slice(&names.flags);
    for i in 0..PROTOCOLS.len() {
        v.push((a.protocols >> i & 1) as f32);
    }
    v.push(a.tls_cert_name.is_some() as u8 as f32);
    v.push(a.http_path.as_deref().and_then(media_extension).is_some() as u8 as f32);
    let family = a.http_content_type.as_deref().map(content_family);
    for f in CONTENT_FAMILIES {
        v.push((family == Some(f)) as u8 as f32);
    }
    // Capture seconds the flow spans (both ends counted), the base of each
    // direction's active share.
    let flow_seconds =
        rec.end_ns / 1_000_000_000 - rec.start_ns.min(rec.end_ns) / 1_000_000_000 + 1;
    shape_features(&rec.fwd, flow_seconds, v);
    shape_features(&rec.bwd, flow_seconds, v);
    let base = v.len();
    v.extend([0.0; TOKEN_BUCKETS]);
    for &b in &names.buckets {
        v[base + b as usize] = 1.0;
    }
    debug_assert_eq!(v.len(), FLOW_FEATURE_COUNT);
}

/// What a flow's names and application facts give its feature row: the
/// keyword and catalogue-category flags and the hashed token buckets. They
/// change only while the payload is being inspected, so streaming
/// classification computes them once per change instead of at every
/// prediction (string matching is most of a row's cost).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameFeatures {
    /// One flag per [`KEYWORDS`] entry, then one per [`Category`].
    flags: Vec<f32>,
    /// Token buckets set to 1.
    buckets: Vec<u32>,
}

impl NameFeatures {
    pub fn of(a: &AppInfo) -> Self {
        let names: String = [&a.tls_sni, &a.http_host, &a.dns_query]
            .into_iter()
            .flatten()
            .map(|s| s.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        let mut flags = Vec::with_capacity(KEYWORDS.len() + Category::ALL.len());
        for k in KEYWORDS {
            flags.push(names.contains(k) as u8 as f32);
        }
        let cats = Catalogue::builtin().categories(flow_names_of(a));
        for c in Category::ALL {
            flags.push((cats & c.bit() != 0) as u8 as f32);
        }
        let buckets = app_tokens_of(a)
            .iter()
            .map(|t| (fnv1a(t) % TOKEN_BUCKETS as u64) as u32)
            .collect();
        NameFeatures { flags, buckets }
    }
}

// ---------------------------------------------------------------------------
// Per-packet features.

const PACKET_NAMES: [&str; 26] = [
    "size",
    "payload_len",
    "proto_tcp",
    "proto_udp",
    "forward",
    "iat_ms_log",
    "position_log",
    "tcp_fin",
    "tcp_syn",
    "tcp_rst",
    "tcp_psh",
    "tcp_ack",
    "resp_port_wellknown",
    "resp_port_registered",
    "resp_port_ephemeral",
    "flow_fwd_packets_log",
    "flow_bwd_packets_log",
    "flow_bytes_log",
    "flow_size_mean",
    "flow_size_std",
    "flow_size_max",
    "flow_iat_mean_ms_log",
    "flow_duration_ms_log",
    "flow_down_byte_ratio",
    "flow_small_frac",
    "flow_large_frac",
];

/// Number of packet features.
pub const PACKET_FEATURE_COUNT: usize = PACKET_NAMES.len();

/// Names of the packet features, in order.
pub fn packet_feature_names() -> Vec<String> {
    PACKET_NAMES.iter().map(|s| s.to_string()).collect()
}

#[derive(Debug, Clone, Default)]
struct PktState {
    first_ns: u64,
    last_ns: u64,
    last_seen: u64,
    fwd: u64,
    bwd: u64,
    bytes: u64,
    bwd_bytes: u64,
    sum: f64,
    sum2: f64,
    max: f64,
    iat_sum_ms: f64,
    small: u64,
    large: u64,
}

/// One packet as the featurizer sees it.
#[derive(Debug, Clone, Copy)]
pub struct PacketInfo {
    pub flow_id: u64,
    pub forward: bool,
    pub position: u64,
    pub ts_ns: u64,
    pub wire_len: u32,
    pub payload_len: u32,
    pub protocol: u8,
    pub tcp_flags: u8,
    /// Responder port of the flow.
    pub resp_port: u16,
}

impl PacketInfo {
    /// From a decoded packet and its flow placement.
    pub fn new(
        pkt: &decode::Packet<'_>,
        placement: &flow::Placement,
        ts_ns: u64,
        wire_len: u32,
    ) -> Self {
        let (sp, dp) = pkt.ports().unwrap_or((0, 0));
        PacketInfo {
            flow_id: placement.flow_id,
            forward: placement.forward,
            position: placement.position,
            ts_ns,
            wire_len,
            payload_len: pkt.payload_len,
            protocol: pkt.ip.map(|i| i.protocol).unwrap_or(0),
            tcp_flags: pkt.tcp().map(|t| t.flags).unwrap_or(0),
            resp_port: if placement.forward { dp } else { sp },
        }
    }
}

/// Streaming per-packet featurizer: keeps a small state per flow (bounded
/// by `max_flows`, least recently seen dropped first) and yields the feature
/// vector of each packet: the packet itself plus its flow's state so far
/// (including this packet).
#[derive(Debug)]
pub struct PacketFeaturizer {
    flows: HashMap<u64, PktState>,
    max_flows: usize,
    tick: u64,
}

impl PacketFeaturizer {
    pub fn new(max_flows: usize) -> Self {
        PacketFeaturizer {
            flows: HashMap::new(),
            max_flows: max_flows.max(1),
            tick: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Forget a flow (when the flow table reports it ended).
    pub fn remove(&mut self, flow_id: u64) {
        self.flows.remove(&flow_id);
    }

    fn evict(&mut self) {
        // Drop the oldest tenth at once: amortised O(1) per packet.
        let mut ages: Vec<(u64, u64)> = self.flows.iter().map(|(k, s)| (s.last_seen, *k)).collect();
        ages.sort_unstable();
        let drop = (self.max_flows / 10).max(1);
        for (_, k) in ages.into_iter().take(drop) {
            self.flows.remove(&k);
        }
    }

    pub fn push(&mut self, p: &PacketInfo) -> Vec<f32> {
        self.tick += 1;
        if !self.flows.contains_key(&p.flow_id) && self.flows.len() >= self.max_flows {
            self.evict();
        }
        let tick = self.tick;
        let st = self.flows.entry(p.flow_id).or_insert_with(|| PktState {
            first_ns: p.ts_ns,
            last_ns: p.ts_ns,
            ..Default::default()
        });
        let iat_ms = p.ts_ns.saturating_sub(st.last_ns) as f64 / 1e6;
        st.last_ns = st.last_ns.max(p.ts_ns);
        st.last_seen = tick;
        let size = p.wire_len as f64;
        if p.forward {
            st.fwd += 1;
        } else {
            st.bwd += 1;
            st.bwd_bytes += p.wire_len as u64;
        }
        st.bytes += p.wire_len as u64;
        st.sum += size;
        st.sum2 += size * size;
        st.max = st.max.max(size);
        st.iat_sum_ms += iat_ms;
        st.small += (size < 128.0) as u64;
        st.large += (size > 1000.0) as u64;
        let n = (st.fwd + st.bwd) as f64;
        let mean = st.sum / n;
        let std = (st.sum2 / n - mean * mean).max(0.0).sqrt();
        let (rw, rr, re) = port_parts(p.resp_port);
        let f = p.tcp_flags;
        vec![
            p.wire_len as f32,
            p.payload_len as f32,
            (p.protocol == 6) as u8 as f32,
            (p.protocol == 17) as u8 as f32,
            p.forward as u8 as f32,
            ln1p(iat_ms),
            ln1p(p.position as f64),
            (f & 0x01 != 0) as u8 as f32,
            (f & 0x02 != 0) as u8 as f32,
            (f & 0x04 != 0) as u8 as f32,
            (f & 0x08 != 0) as u8 as f32,
            (f & 0x10 != 0) as u8 as f32,
            rw,
            rr,
            re,
            ln1p(st.fwd as f64),
            ln1p(st.bwd as f64),
            ln1p(st.bytes as f64),
            mean as f32,
            std as f32,
            st.max as f32,
            ln1p(if n > 1.0 {
                st.iat_sum_ms / (n - 1.0)
            } else {
                0.0
            }),
            ln1p(st.last_ns.saturating_sub(st.first_ns) as f64 / 1e6),
            (st.bwd_bytes as f64 / st.bytes.max(1) as f64) as f32,
            (st.small as f64 / n) as f32,
            (st.large as f64 / n) as f32,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_count() {
        assert_eq!(flow_feature_names().len(), FLOW_FEATURE_COUNT);
        assert_eq!(packet_feature_names().len(), PACKET_FEATURE_COUNT);
        let mut names = flow_feature_names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FLOW_FEATURE_COUNT, "feature names are unique");
    }

    /// The behaviour features of a direction, from a shape counted by hand:
    /// 10 packets of 1,000 bytes over 4 of the flow's 5 seconds, 9 gaps.
    #[test]
    fn shape_features_are_shares_and_ratios_of_the_counts() {
        let ds = flow::DirStats {
            packets: 10,
            bytes: 10_000,
            iat_us: flow::Stat {
                mean: 100.0,
                std: 50.0,
                ..flow::Stat::default()
            },
            shape: flow::Shape {
                size_hist: [2, 0, 0, 8, 0, 0],
                gap_hist: [6, 0, 0, 0, 1, 2],
                regular_gaps: 4,
                active_seconds: 4,
                peak_second_bytes: 4_000,
            },
            ..flow::DirStats::default()
        };
        let mut v = Vec::new();
        shape_features(&ds, 5, &mut v);
        let got: HashMap<&str, f32> = SHAPE_NAMES.iter().copied().zip(v).collect();
        let want = [
            ("size_le96_frac", 0.2),
            ("size_le1100_frac", 0.8),
            ("size_gt1400_frac", 0.0),
            ("gap_lt1ms_frac", 6.0 / 9.0),
            ("gap_ge1s_frac", 2.0 / 9.0),
            ("regular_gap_frac", 4.0 / 8.0),
            ("gap_cv", 0.5),
            // 1 + 3 gaps of 200 ms or more: 4 bursts of 2,500 bytes.
            ("bursts_log", (5.0f32).ln()),
            ("burst_bytes_log", (2501.0f32).ln()),
            ("active_second_frac", 0.8),
            // Busiest second 4,000 bytes against 2,500 per active second.
            ("peak_to_mean_second", 1.6),
        ];
        for (name, x) in want {
            assert!((got[name] - x).abs() < 1e-5, "{name}: {} vs {x}", got[name]);
        }
        // In a flow's vector: the responder's block under its names, the
        // flow's span (4.4 s from 0.5 s past a second) five seconds.
        let rec = FlowRecord {
            id: 1,
            start_ns: 1_700_000_000_500_000_000,
            end_ns: 1_700_000_004_900_000_000,
            protocol: 17,
            ip_version: 4,
            src: "10.0.0.1".parse().unwrap(),
            src_port: 50_000,
            dst: "10.0.0.2".parse().unwrap(),
            dst_port: 5004,
            vlan: 0,
            tunnel: None,
            fwd: flow::DirStats::default(),
            bwd: ds,
            fragments: 0,
            first_sizes: vec![],
            first_dirs: vec![],
            first_iats_us: vec![],
            app: AppInfo::default(),
            end_reason: flow::EndReason::Idle,
        };
        let f = flow_features(&rec);
        let names = flow_feature_names();
        for (name, x) in want {
            let at = names
                .iter()
                .position(|n| *n == format!("bwd_{name}"))
                .unwrap();
            assert!((f[at] - x).abs() < 1e-5, "bwd_{name}: {} vs {x}", f[at]);
            let at = names
                .iter()
                .position(|n| *n == format!("fwd_{name}"))
                .unwrap();
            assert_eq!(f[at], 0.0, "fwd_{name} of an empty direction");
        }
    }

    /// HLS, DASH and media files are video or audio by definition; pages,
    /// images and APIs are not.
    #[test]
    fn media_category_of_http_exchanges() {
        let app = |path: Option<&str>, ct: Option<&str>| AppInfo {
            http_path: path.map(String::from),
            http_content_type: ct.map(String::from),
            ..Default::default()
        };
        let video = Some(Category::Video);
        let audio = Some(Category::Audio);
        for (path, ct, want) in [
            (Some("/hls/live/seg-00023.ts?token=x"), None, video),
            (
                Some("/master.m3u8"),
                Some("application/vnd.apple.mpegurl"),
                video,
            ),
            (
                Some("/v/seg-00001-800000.m4s"),
                Some("video/iso.segment"),
                video,
            ),
            (
                Some("/manifest"),
                Some("application/dash+xml; charset=utf-8"),
                video,
            ),
            (Some("/clip"), Some("Video/MP4"), video),
            (Some("/a/track.mp3"), None, audio),
            (Some("/stream"), Some("audio/aac"), audio),
            (Some("/index.html"), Some("text/html"), None),
            (Some("/img/logo.png"), Some("image/png"), None),
            (Some("/api/v1/items"), Some("application/json"), None),
            (Some("/ts/readme"), None, None),
            (None, None, None),
        ] {
            assert_eq!(media_category(&app(path, ct)), want, "{path:?} {ct:?}");
        }
    }

    #[test]
    fn protocol_categories_of_single_purpose_protocols() {
        let mask = |names: &[&str]| {
            names
                .iter()
                .map(|n| 1u32 << decode::app::protocol_index(n).unwrap())
                .fold(0, |m, b| m | b)
        };
        let conf = Category::Conferencing.bit();
        assert_eq!(protocol_categories(mask(&["sip", "rtp"])), conf);
        assert_eq!(protocol_categories(mask(&["h323"])), conf);
        assert_eq!(protocol_categories(mask(&["rtmp"])), Category::Video.bit());
        assert_eq!(
            protocol_categories(mask(&["sd-rtn"])),
            Category::Video.bit()
        );
        assert_eq!(
            protocol_categories(mask(&["whatsapp", "teamspeak"])),
            Category::Messaging.bit() | conf
        );
        assert_eq!(
            protocol_categories(mask(&["rtp", "stun", "dtls", "tls", "http"])),
            0
        );
        assert_eq!(protocol_categories(0), 0);
    }

    #[test]
    fn single_purpose_ports_give_their_category_and_general_ones_none() {
        let conf = Category::Conferencing.bit();
        // From the port table, as a flow gets its service.
        let svc = |p: u8, port: u16| service_categories(decode::service::by_port(p, port));
        assert_eq!(svc(17, 5060), conf); // SIP
        assert_eq!(svc(17, 2010), conf); // TeamSpeak 3 weblist
        assert_eq!(svc(17, 9987), conf); // TeamSpeak 3 voice
        assert_eq!(svc(6, 1935), Category::Video.bit()); // RTMP
        assert_eq!(svc(6, 554), Category::Video.bit()); // RTSP
                                                        // STUN, DNS, QUIC and unknown ports carry anything.
        for (p, port) in [(17, 3478), (17, 53), (17, 443), (6, 443), (17, 40000)] {
            assert_eq!(svc(p, port), 0, "{p}/{port}");
        }
    }

    #[test]
    fn host_tokens_split_labels() {
        let mut t = Vec::new();
        host_tokens("rr5---sn-4g5e6nz7.googlevideo.com", &mut t);
        assert!(t.contains(&"dom:googlevideo.com".to_string()));
        assert!(t.contains(&"lbl:googlevideo".to_string()));
        let mut t = Vec::new();
        host_tokens("23.246.11.141", &mut t);
        host_tokens("[2001:db8::1]:80", &mut t);
        host_tokens("239.255.255.250:1900", &mut t);
        assert!(t.is_empty(), "{t:?}");
    }

    #[test]
    fn packet_featurizer_is_bounded() {
        let mut f = PacketFeaturizer::new(50);
        for i in 0..1000u64 {
            let p = PacketInfo {
                flow_id: i,
                forward: true,
                position: 1,
                ts_ns: i * 1000,
                wire_len: 100,
                payload_len: 50,
                protocol: 17,
                tcp_flags: 0,
                resp_port: 53,
            };
            assert_eq!(f.push(&p).len(), PACKET_FEATURE_COUNT);
            assert!(f.len() <= 50);
        }
    }
}

use std::net::IpAddr;

use decode::app::{dns_type_name, protocol_names, AppHint};
use serde::Serialize;

/// Why a flow record was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// No packet for the idle timeout.
    Idle,
    /// Open longer than the active timeout; later packets start a new record.
    Active,
    /// TCP FIN seen in both directions.
    Fin,
    /// TCP RST.
    Rst,
    /// Pushed out to keep the table within `max_flows` (least recently seen first).
    Evicted,
    /// Still open when the input ended.
    EndOfInput,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Active => "active",
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Evicted => "evicted",
            EndReason::EndOfInput => "end-of-input",
        }
    }
}

/// Running min/mean/max/std of integer values (frame sizes, gaps in ns),
/// allocation-free and exact: it keeps integer sums, so a packet costs two
/// additions and a multiply instead of Welford's division, and the variance
/// comes out of one rounding at the end rather than one per packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Running {
    n: u64,
    sum: u64,
    /// Σx² fits: Σx² ≤ (Σx)² < 2^128 whatever the values.
    sum_sq: u128,
    min: u64,
    max: u64,
}

impl Running {
    #[inline]
    pub fn push(&mut self, x: u64) {
        self.min = if self.n == 0 { x } else { self.min.min(x) };
        self.max = self.max.max(x);
        self.n += 1;
        self.sum = self.sum.saturating_add(x);
        self.sum_sq = self.sum_sq.saturating_add(x as u128 * x as u128);
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// The statistics of the values divided by `unit` (1 for sizes, 1000 for
    /// nanoseconds reported in microseconds).
    pub fn summary(&self, unit: f64) -> Stat {
        if self.n == 0 {
            return Stat::default();
        }
        let n = self.n as f64;
        // Population variance, as CICFlowMeter and nfstream report:
        // (nΣx² − (Σx)²) / n², exact in integers while n·Σx² fits.
        let var = match (self.n as u128).checked_mul(self.sum_sq) {
            Some(a) => a.saturating_sub(self.sum as u128 * self.sum as u128) as f64 / (n * n),
            None => {
                let mean = self.sum as f64 / n;
                (self.sum_sq as f64 / n - mean * mean).max(0.0)
            }
        };
        Stat {
            min: self.min as f64 / unit,
            mean: self.sum as f64 / n / unit,
            max: self.max as f64 / unit,
            std: var.sqrt() / unit,
        }
    }
}

/// Counters of one direction of a flow while it is open; [`summary`](Self::summary)
/// gives the [`DirStats`] of the record. Shared by the flow table and by
/// anything that builds records from a flow's first packets.
#[derive(Debug, Clone, Default)]
pub struct DirAccumulator {
    packets: u64,
    bytes: u64,
    ip_bytes: u64,
    payload_bytes: u64,
    size: Running,
    iat: Running,
    last_ts: u64,
    flags: [u32; 8],
    shape: Shape,
    /// The previous gap (ns), for [`Shape::regular_gaps`].
    last_gap: u64,
    /// The capture second being counted for [`Shape::peak_second_bytes`],
    /// and its bytes so far.
    second: u64,
    second_bytes: u64,
}

impl DirAccumulator {
    /// Counts one packet of this direction.
    #[inline]
    pub fn push(&mut self, pkt: &decode::Packet<'_>, ts_ns: u64, wire_len: u32) {
        if self.packets > 0 {
            let gap = ts_ns.saturating_sub(self.last_ts);
            self.iat.push(gap);
            self.shape.gap_hist[gap_bucket(gap)] += 1;
            // Within a fifth of the previous gap: a clocked sender (a voice
            // frame every 20 ms, a game tick) keeps doing it.
            if self.packets > 1 && gap.abs_diff(self.last_gap).saturating_mul(5) <= self.last_gap {
                self.shape.regular_gaps += 1;
            }
            self.last_gap = gap;
        }
        let second = ts_ns / 1_000_000_000;
        if self.packets == 0 || second != self.second {
            self.second = second;
            self.second_bytes = 0;
            self.shape.active_seconds += 1;
        }
        self.second_bytes += wire_len as u64;
        self.shape.peak_second_bytes = self.shape.peak_second_bytes.max(self.second_bytes);
        self.shape.size_hist[size_bucket(wire_len)] += 1;
        self.packets += 1;
        self.last_ts = ts_ns;
        self.bytes += wire_len as u64;
        self.ip_bytes += pkt.ip.map_or(0, |i| i.total_len as u64);
        self.payload_bytes += pkt.payload_len as u64;
        self.size.push(wire_len as u64);
        if let Some(t) = pkt.tcp() {
            // Only the set bits: most segments carry ACK alone.
            let mut f = t.flags;
            while f != 0 {
                self.flags[f.trailing_zeros() as usize] += 1;
                f &= f - 1;
            }
        }
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn summary(&self) -> DirStats {
        DirStats {
            packets: self.packets,
            bytes: self.bytes,
            ip_bytes: self.ip_bytes,
            payload_bytes: self.payload_bytes,
            size: self.size.summary(1.0),
            iat_us: self.iat.summary(1_000.0),
            tcp_flags: self.flags,
            shape: self.shape,
        }
    }
}

/// Upper bounds (inclusive) of [`Shape::size_hist`]'s buckets but the last:
/// bare acknowledgements and control, small messages, voice frames,
/// mid-size, near-full, full-size frames.
pub const SIZE_BUCKET_BOUNDS: [u32; 5] = [96, 300, 700, 1100, 1400];
/// Upper bounds (exclusive, ns) of [`Shape::gap_hist`]'s buckets but the
/// last: back to back (< 1 ms), < 10 ms, < 50 ms (voice and game clocks),
/// < 200 ms, < 1 s, longer. A gap of 200 ms or more ends a burst.
pub const GAP_BUCKET_BOUNDS_NS: [u64; 5] = [
    1_000_000,
    10_000_000,
    50_000_000,
    200_000_000,
    1_000_000_000,
];

#[inline]
fn size_bucket(wire_len: u32) -> usize {
    SIZE_BUCKET_BOUNDS
        .iter()
        .position(|&b| wire_len <= b)
        .unwrap_or(SIZE_BUCKET_BOUNDS.len())
}

#[inline]
fn gap_bucket(gap_ns: u64) -> usize {
    GAP_BUCKET_BOUNDS_NS
        .iter()
        .position(|&b| gap_ns < b)
        .unwrap_or(GAP_BUCKET_BOUNDS_NS.len())
}

/// How one direction of a flow behaves over time, beyond its moments: the
/// modes of its sizes, the structure of its gaps (bursts, idle periods, a
/// clock) and how its bytes spread over the seconds it sent in. A video
/// player fetches segments in bursts of full-size frames with idle
/// seconds between them; a call sends a voice frame every 20 ms, every
/// second; a page load is one burst. Fixed size: counted per packet
/// without allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Shape {
    /// Frames by wire length, bucketed by [`SIZE_BUCKET_BOUNDS`].
    pub size_hist: [u32; 6],
    /// Gaps between this direction's packets, by [`GAP_BUCKET_BOUNDS_NS`].
    pub gap_hist: [u32; 6],
    /// Gaps within a fifth of the gap before them.
    pub regular_gaps: u32,
    /// Capture seconds (whole seconds since the epoch) with a packet.
    pub active_seconds: u32,
    /// Bytes (wire length) of the busiest of those seconds.
    pub peak_second_bytes: u64,
}

impl Shape {
    /// Runs of packets separated by gaps of 200 ms or more (0 without packets).
    pub fn bursts(&self, packets: u64) -> u64 {
        if packets == 0 {
            return 0;
        }
        1 + (self.gap_hist[4] + self.gap_hist[5]) as u64
    }
}

/// min / mean / max / std of a quantity (all 0 when there were no values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stat {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub std: f64,
}

/// Counters of one direction of a flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DirStats {
    pub packets: u64,
    /// Sum of frame lengths on the wire (what tshark's conversation table counts).
    pub bytes: u64,
    /// Sum of IP total lengths.
    pub ip_bytes: u64,
    /// Sum of transport payload lengths.
    pub payload_bytes: u64,
    /// Frame sizes (wire length).
    pub size: Stat,
    /// Inter-arrival times within this direction, in microseconds.
    pub iat_us: Stat,
    /// TCP flag counts: FIN, SYN, RST, PSH, ACK, URG, ECE, CWR.
    pub tcp_flags: [u32; 8],
    /// Size modes, gap structure and spread over time (classifier features;
    /// not exported).
    #[serde(skip)]
    pub shape: Shape,
}

/// What the payload of the flow revealed, plus its port-based service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AppInfo {
    /// Well-known service of the ports (e.g. "https", "dns", "rsync").
    pub service: Option<&'static str>,
    /// Protocol recognised in the payload ("tls", "http", "dns", "quic", "ssh",
    /// "rtp", "sip", "stun", …; one of [`decode::app::PROTOCOLS`]): the first
    /// one recognised, except that a TLS ClientHello, an HTTP request or SIP
    /// replaces it. So STUN then DTLS and RTP on one flow stays "stun";
    /// [`protocols`](Self::protocols) holds all of them.
    pub detected: Option<&'static str>,
    /// Server name of the TLS ClientHello: over TCP, in the client Initial
    /// packets of IETF QUIC (decrypted, `decode::quic_initial`), or of a
    /// Google QUIC client hello; also the edge server an Agora SD-RTN
    /// client hello names (its handshake is shaped like Google QUIC's).
    pub tls_sni: Option<String>,
    /// First protocol of the ClientHello's ALPN list (TLS or IETF QUIC).
    pub tls_alpn: Option<String>,
    pub dns_query: Option<String>,
    pub dns_qtype: Option<&'static str>,
    pub http_method: Option<String>,
    pub http_host: Option<String>,
    pub quic_version: Option<String>,
    pub ssh_banner: Option<String>,
    /// Target of the first HTTP request (at most 256 bytes).
    pub http_path: Option<String>,
    /// Media type of the first HTTP response's Content-Type, lower case,
    /// without parameters ("video/mp4").
    pub http_content_type: Option<String>,
    /// Subject CN (or first SAN dNSName) of the server's first certificate,
    /// when the handshake was plaintext (TLS ≤ 1.2) and the name lay in the
    /// inspected packets.
    pub tls_cert_name: Option<String>,
    /// Every protocol recognised in the flow's inspected packets: bit `i`
    /// is [`decode::app::PROTOCOLS`]`[i]`. Serialized as the '+'-joined
    /// names ("stun+dtls+rtp"), null when empty.
    #[serde(serialize_with = "serialize_protocols")]
    pub protocols: u32,
    /// RTP headers seen but not yet confirmed by a second packet of their
    /// stream (internal state of [`merge`](Self::merge); not exported).
    #[serde(skip)]
    pub rtp_candidates: RtpCandidates,
}

/// The last two RTP headers of a flow not yet confirmed (one per direction
/// in a call): an RTP header is version 2 and a payload type in a wide
/// range, which one encrypted datagram in eight passes, so the flow counts
/// as RTP only when a later packet continues a candidate's stream.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RtpCandidates {
    /// (SSRC, sequence number, payload type) of the two latest headers.
    last: [Option<(u32, u16, u8)>; 2],
}

impl RtpCandidates {
    /// How far ahead of a candidate a packet of its stream may be: loss
    /// and reordering within the packets a flow inspects.
    const MAX_SEQ_STEP: u16 = 16;

    /// Whether the header continues a candidate's stream (same SSRC and
    /// payload type, sequence 1..=16 ahead, modulo 2^16); else it becomes
    /// a candidate itself, replacing the older one.
    pub fn confirms(&mut self, ssrc: u32, seq: u16, payload_type: u8) -> bool {
        let continues = |c: &Option<(u32, u16, u8)>| {
            c.is_some_and(|(s, q, pt)| {
                s == ssrc
                    && pt == payload_type
                    && (1..=Self::MAX_SEQ_STEP).contains(&seq.wrapping_sub(q))
            })
        };
        if self.last.iter().any(continues) {
            self.last = [None; 2];
            return true;
        }
        self.last = [self.last[1], Some((ssrc, seq, payload_type))];
        false
    }

    /// Whether an RTP header waits for confirmation (the flow table then
    /// keeps inspecting a flow it has recognised otherwise, e.g. as STUN).
    pub fn pending(&self) -> bool {
        self.last.iter().any(Option::is_some)
    }
}

fn serialize_protocols<S: serde::Serializer>(mask: &u32, s: S) -> Result<S::Ok, S::Error> {
    if *mask == 0 {
        s.serialize_none()
    } else {
        s.serialize_str(&AppInfo::protocols_joined(*mask))
    }
}

impl AppInfo {
    /// The names of the bits of `mask` joined by '+' ("stun+rtp"); empty
    /// for 0.
    pub fn protocols_joined(mask: u32) -> String {
        let mut s = String::new();
        for (i, name) in protocol_names(mask).enumerate() {
            if i > 0 {
                s.push('+');
            }
            s.push_str(name);
        }
        s
    }

    /// Folds one application hint in: the first value of each field wins.
    pub fn merge(&mut self, h: &AppHint<'_>) {
        let app = self;
        if let AppHint::Rtp {
            payload_type,
            seq,
            ssrc,
        } = *h
        {
            let confirmed = app.protocols & h.protocol_bit() != 0;
            if !confirmed && !app.rtp_candidates.confirms(ssrc, seq, payload_type) {
                return;
            }
        }
        app.protocols |= h.protocol_bit();
        if app.detected.is_none() {
            app.detected = Some(h.protocol());
        }
        match *h {
            AppHint::TlsClientHello { sni, alpn } => {
                app.detected = Some("tls");
                if app.tls_sni.is_none() {
                    app.tls_sni = sni.map(str::to_string);
                }
                if app.tls_alpn.is_none() {
                    app.tls_alpn = alpn.map(str::to_string);
                }
            }
            AppHint::TlsCertificate { name } if app.tls_cert_name.is_none() => {
                app.tls_cert_name = Some(name.to_string());
            }
            AppHint::Dns { qname, qtype, .. } if app.dns_query.is_none() => {
                app.dns_query = Some(qname.as_str().to_string());
                app.dns_qtype = Some(dns_type_name(qtype));
            }
            AppHint::HttpRequest { method, path, host } => {
                app.detected = Some("http");
                if app.http_method.is_none() {
                    app.http_method = Some(method.to_string());
                    app.http_host = host.map(str::to_string);
                    app.http_path = Some(path.to_string());
                }
            }
            AppHint::HttpResponse {
                content_type: Some(ct),
            } if app.http_content_type.is_none() => {
                app.http_content_type = Some(ct.to_ascii_lowercase());
            }
            AppHint::Quic { version, sni } if app.quic_version.is_none() => {
                app.quic_version = Some(format!("0x{version:08x}"));
                if app.tls_sni.is_none() {
                    app.tls_sni = sni.map(str::to_string);
                }
            }
            AppHint::SdRtn { sni } if app.tls_sni.is_none() => {
                app.tls_sni = Some(sni.to_string());
            }
            AppHint::Ssh { banner } if app.ssh_banner.is_none() => {
                app.ssh_banner = Some(banner.to_string());
            }
            AppHint::Sip { .. } => app.detected = Some("sip"),
            _ => {}
        }
    }
}

/// A finished bidirectional flow. `src` is the initiator (the sender of the
/// first packet, or of the SYN when the capture starts mid-handshake).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRecord {
    pub id: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub protocol: u8,
    pub ip_version: u8,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub vlan: u16,
    pub tunnel: Option<&'static str>,
    /// Initiator → responder.
    pub fwd: DirStats,
    /// Responder → initiator.
    pub bwd: DirStats,
    /// IP fragments attributed to the flow.
    pub fragments: u64,
    /// Sizes of the first N packets (wire length).
    pub first_sizes: Vec<u32>,
    /// Directions of the first N packets: +1 initiator→responder, −1 back.
    pub first_dirs: Vec<i8>,
    /// Inter-arrival times of the first N packets in microseconds (0 for the first).
    pub first_iats_us: Vec<f64>,
    pub app: AppInfo,
    pub end_reason: EndReason,
}

impl FlowRecord {
    pub fn packets(&self) -> u64 {
        self.fwd.packets + self.bwd.packets
    }

    pub fn bytes(&self) -> u64 {
        self.fwd.bytes + self.bwd.bytes
    }

    pub fn duration_s(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Two-pass textbook statistics in exact rational arithmetic where it
    /// fits (values ≤ 2^20, n ≤ 500), so the running sums are checked
    /// against an independent computation, not a copy of themselves.
    fn two_pass(xs: &[u64]) -> (f64, f64, f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let min = *xs.iter().min().unwrap() as f64;
        let max = *xs.iter().max().unwrap() as f64;
        (min, mean, max, var.sqrt())
    }

    proptest! {
        #[test]
        fn running_stats_match_two_pass(xs in prop::collection::vec(0u64..(1 << 20), 1..500)) {
            let mut r = Running::default();
            for &x in &xs {
                r.push(x);
            }
            let s = r.summary(1.0);
            let (min, mean, max, std) = two_pass(&xs);
            prop_assert_eq!(s.min, min);
            prop_assert_eq!(s.max, max);
            prop_assert!((s.mean - mean).abs() <= 1e-9 * mean.max(1.0));
            prop_assert!((s.std - std).abs() <= 1e-6 * std.max(1.0), "{} vs {}", s.std, std);
        }
    }

    /// Capture times are untrusted: a gap near `u64::MAX` ns (a damaged or
    /// crafted timestamp, found by fuzzing) must not overflow the
    /// regular-gap test, and such a gap is not "regular".
    #[test]
    fn huge_gaps_neither_overflow_nor_count_as_regular() {
        let pkt = decode::decode(decode::LinkType::ETHERNET, &[]);
        let mut d = DirAccumulator::default();
        for ts in [1_000, 2_000, 4_200_000_000_000_000_000, 1_000] {
            d.push(&pkt, ts, 60);
        }
        assert_eq!(d.shape.regular_gaps, 0);
        assert_eq!(d.packets, 4);
    }

    #[test]
    fn merge_keeps_first_detected_and_collects_every_protocol() {
        let mut a = AppInfo::default();
        a.merge(&AppHint::Stun { message_type: 1 });
        a.merge(&AppHint::Dtls {
            content_type: 22,
            version: 0xfefd,
        });
        for seq in [7, 8] {
            a.merge(&AppHint::Rtp {
                payload_type: 111,
                seq,
                ssrc: 9,
            });
        }
        a.merge(&AppHint::Stun {
            message_type: 0x101,
        });
        assert_eq!(a.detected, Some("stun"));
        assert_eq!(AppInfo::protocols_joined(a.protocols), "rtp+stun+dtls");
        // An HTTP request still takes over `detected`; the first path,
        // content type (lower-cased) and certificate name are kept.
        let mut a = AppInfo::default();
        a.merge(&AppHint::TlsCertificate { name: "a.example" });
        a.merge(&AppHint::TlsCertificate { name: "b.example" });
        a.merge(&AppHint::HttpResponse {
            content_type: Some("Video/MP4"),
        });
        a.merge(&AppHint::HttpResponse {
            content_type: Some("text/html"),
        });
        a.merge(&AppHint::HttpRequest {
            method: "GET",
            path: "/seg1.ts",
            host: Some("cdn"),
        });
        a.merge(&AppHint::HttpRequest {
            method: "POST",
            path: "/other",
            host: None,
        });
        assert_eq!(a.detected, Some("http"));
        assert_eq!(a.tls_cert_name.as_deref(), Some("a.example"));
        assert_eq!(a.http_content_type.as_deref(), Some("video/mp4"));
        assert_eq!(a.http_path.as_deref(), Some("/seg1.ts"));
        assert_eq!(a.http_method.as_deref(), Some("GET"));
        assert_eq!(a.http_host.as_deref(), Some("cdn"));
        assert_eq!(AppInfo::protocols_joined(a.protocols), "tls+http");
        assert_eq!(AppInfo::protocols_joined(0), "");
    }

    /// One RTP-looking datagram is a candidate, not RTP; the flow is RTP
    /// once a packet continues its stream, whichever direction came
    /// between. Random headers (other SSRCs, a sequence behind or far
    /// ahead, another payload type) confirm nothing.
    #[test]
    fn rtp_needs_a_second_packet_of_its_stream() {
        let rtp = |ssrc: u32, seq: u16, payload_type: u8| AppHint::Rtp {
            payload_type,
            seq,
            ssrc,
        };
        let mut a = AppInfo::default();
        for h in [
            rtp(1, 100, 0),
            rtp(2, 100, 0),
            rtp(1, 99, 0),
            rtp(1, 140, 0),
            rtp(3, 141, 8),
            rtp(4, 142, 8),
        ] {
            a.merge(&h);
        }
        assert_eq!(a.protocols, 0, "no candidate continued");
        assert_eq!(a.detected, None);
        assert!(a.rtp_candidates.pending());
        // Up (SSRC 5) and down (SSRC 6) interleaved; 5's next packet lost.
        for h in [rtp(5, 10, 111), rtp(6, 500, 111), rtp(5, 12, 111)] {
            a.merge(&h);
        }
        assert_eq!(AppInfo::protocols_joined(a.protocols), "rtp");
        assert_eq!(a.detected, Some("rtp"));
        assert!(!a.rtp_candidates.pending());
        // Once confirmed, every header counts (other streams of the call).
        a.merge(&AppHint::Rtcp);
        assert_eq!(AppInfo::protocols_joined(a.protocols), "rtp+rtcp");
    }

    #[test]
    fn protocols_serialize_as_joined_names() {
        let mut a = AppInfo::default();
        let j = serde_json::to_value(&a).unwrap();
        assert!(j["protocols"].is_null());
        a.merge(&AppHint::Iax2);
        for seq in [u16::MAX, 0] {
            a.merge(&AppHint::Rtp {
                payload_type: 0,
                seq,
                ssrc: 1,
            });
        }
        let j = serde_json::to_value(&a).unwrap();
        assert_eq!(j["protocols"], "rtp+iax2");
        assert_eq!(j["detected"], "iax2");
        assert!(j["tls_cert_name"].is_null());
    }

    #[test]
    fn running_stats_are_exact_where_welford_would_round() {
        // Gaps of 10 s and 10 s + 1 ns, alternating, in nanoseconds: mean
        // 1e10 + 0.5, σ = 0.5 ns exactly (population). A running mean with
        // one rounding per packet drifts at this scale; integer sums do not.
        let mut r = Running::default();
        for i in 0..1000u64 {
            r.push(10_000_000_000 + i % 2);
        }
        let s = r.summary(1.0);
        assert_eq!(s.std, 0.5);
        assert_eq!(s.mean, 10_000_000_000.5);
        let us = r.summary(1_000.0);
        assert_eq!(us.min, 10_000_000.0);
        assert_eq!(us.max, 10_000_000.001);
        // Empty: all zero, never NaN.
        assert_eq!(Running::default().summary(1.0), Stat::default());
    }
}

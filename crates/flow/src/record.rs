use std::net::IpAddr;

use decode::app::{dns_type_name, AppHint};
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

/// Running min/mean/max/std (Welford), allocation-free.
#[derive(Debug, Clone, Copy, Default)]
pub struct Running {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Running {
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        if self.n == 1 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    pub fn summary(&self) -> Stat {
        if self.n == 0 {
            return Stat::default();
        }
        Stat {
            min: self.min,
            mean: self.mean,
            max: self.max,
            // Population standard deviation, as CICFlowMeter and nfstream report.
            std: (self.m2 / self.n as f64).sqrt(),
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
}

impl DirAccumulator {
    /// Counts one packet of this direction.
    #[inline]
    pub fn push(&mut self, pkt: &decode::Packet<'_>, ts_ns: u64, wire_len: u32) {
        if self.packets > 0 {
            self.iat
                .push(ts_ns.saturating_sub(self.last_ts) as f64 / 1_000.0);
        }
        self.packets += 1;
        self.last_ts = ts_ns;
        self.bytes += wire_len as u64;
        self.ip_bytes += pkt.ip.map_or(0, |i| i.total_len as u64);
        self.payload_bytes += pkt.payload_len as u64;
        self.size.push(wire_len as f64);
        if let Some(t) = pkt.tcp() {
            for (bit, count) in self.flags.iter_mut().enumerate() {
                *count += ((t.flags >> bit) & 1) as u32;
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
            size: self.size.summary(),
            iat_us: self.iat.summary(),
            tcp_flags: self.flags,
        }
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
}

/// What the payload of the flow revealed, plus its port-based service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AppInfo {
    /// Well-known service of the ports (e.g. "https", "dns", "rsync").
    pub service: Option<&'static str>,
    /// Protocol recognised in the payload ("tls", "http", "dns", "quic", "ssh", "rtp", "sip", …).
    pub detected: Option<&'static str>,
    pub tls_sni: Option<String>,
    pub tls_alpn: Option<String>,
    pub dns_query: Option<String>,
    pub dns_qtype: Option<&'static str>,
    pub http_method: Option<String>,
    pub http_host: Option<String>,
    pub quic_version: Option<String>,
    pub ssh_banner: Option<String>,
}

impl AppInfo {
    /// Folds one application hint in: the first value of each field wins.
    pub fn merge(&mut self, h: &AppHint<'_>) {
        let app = self;
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
            AppHint::Dns { qname, qtype, .. } if app.dns_query.is_none() => {
                app.dns_query = Some(qname.as_str().to_string());
                app.dns_qtype = Some(dns_type_name(qtype));
            }
            AppHint::HttpRequest { method, host } => {
                app.detected = Some("http");
                if app.http_method.is_none() {
                    app.http_method = Some(method.to_string());
                    app.http_host = host.map(str::to_string);
                }
            }
            AppHint::Quic { version } if app.quic_version.is_none() => {
                app.quic_version = Some(format!("0x{version:08x}"));
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

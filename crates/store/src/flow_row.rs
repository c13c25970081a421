//! How a finished flow is kept in a `flows_*` row of the embedded store,
//! and how the API's flow JSON is rebuilt from it.
//!
//! The searchable columns (`start_ns`, `end_ns`, `protocol`, `src`, …,
//! `class`, `confidence`, `true_class`, `app`, `service`, `protocols`,
//! `end_reason`) hold their part of the flow once; `row` holds the rest as
//! compact JSON (schema 2; schema 1 repeated every column inside a whole
//! `FlowRow` object, nulls and all, about three times the bytes):
//!
//! ```text
//! {"v":2,"id":7,"fwd":D,"bwd":D,"first":[±size,…],"gaps":[µs,…],"app":{…},"p":[["web",0.9],…]}
//! ```
//!
//! - `fwd` / `bwd`: `[packets, bytes, ip_bytes, payload_bytes, [size min,
//!   mean, max, std], [gap µs min, mean, max, std], [FIN, SYN, RST, PSH,
//!   ACK, URG, ECE, CWR]]`; absent for a direction without a packet.
//! - `first`: the first packets' wire sizes, negative from the responder;
//!   `gaps`: their inter-arrival times in µs (0 for the first). A size of 0
//!   cannot carry a sign: such a flow has `sizes` and `dirs` instead.
//! - `app`: the payload's facts the columns do not hold (`tls_sni`,
//!   `http_host`, `dns_query`, …; absent ones left out).
//! - `p`: every class's probability, in the model's class order.
//! - `vlan`, `tunnel`, `fragments`: only when not 0 / null.
//!
//! [`rebuild`] gives exactly the JSON `serde_json` writes for the
//! `pipeline::FlowRow` that was stored (a test checks it on real captures),
//! so the API answers the same as from the ClickHouse store, which keeps
//! that JSON whole (its columns compress). Rows of schema 1 are passed
//! through as they are.

use flow::{DirStats, FlowRecord, Stat};
use pipeline::FlowRow;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

/// Version tag of the compact `row`.
pub const ROW_VERSION: u32 = 2;

/// The compact `row` of `f`, appended to `out` (the caller clears it).
pub fn write_compact(f: &FlowRow, out: &mut Vec<u8>) -> serde_json::Result<()> {
    serde_json::to_writer(out, &CompactOut::of(f))
}

#[derive(Serialize)]
struct CompactOut<'a> {
    v: u32,
    id: u64,
    #[serde(skip_serializing_if = "is_zero_u16")]
    vlan: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<&'a str>,
    #[serde(skip_serializing_if = "is_zero_u64")]
    fragments: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    fwd: Option<DirOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bwd: Option<DirOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<Signed<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sizes: Option<&'a [u32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dirs: Option<&'a [i8]>,
    gaps: &'a [f64],
    #[serde(skip_serializing_if = "AppOut::is_empty")]
    app: AppOut<'a>,
    p: &'a [(String, f32)],
}

fn is_zero_u16(x: &u16) -> bool {
    *x == 0
}
fn is_zero_u64(x: &u64) -> bool {
    *x == 0
}

/// A direction as one array (see the module documentation).
#[derive(Serialize)]
struct DirOut<'a>(u64, u64, u64, u64, [f64; 4], [f64; 4], &'a [u32; 8]);

fn stat4(s: &Stat) -> [f64; 4] {
    [s.min, s.mean, s.max, s.std]
}

fn dir_out(d: &DirStats) -> Option<DirOut<'_>> {
    let empty = d.packets == 0
        && d.bytes == 0
        && d.ip_bytes == 0
        && d.payload_bytes == 0
        && d.size == Stat::default()
        && d.iat_us == Stat::default()
        && d.tcp_flags == [0; 8];
    (!empty).then(|| {
        DirOut(
            d.packets,
            d.bytes,
            d.ip_bytes,
            d.payload_bytes,
            stat4(&d.size),
            stat4(&d.iat_us),
            &d.tcp_flags,
        )
    })
}

/// First sizes signed by direction.
struct Signed<'a>(&'a [u32], &'a [i8]);

impl Serialize for Signed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (&size, &dir) in self.0.iter().zip(self.1) {
            let v = i64::from(size);
            seq.serialize_element(&if dir < 0 { -v } else { v })?;
        }
        seq.end()
    }
}

/// The payload facts the columns do not hold.
#[derive(Serialize, Default)]
struct AppOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_sni: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_alpn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_qtype: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quic_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_banner: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cert_name: Option<&'a str>,
}

impl AppOut<'_> {
    fn is_empty(&self) -> bool {
        self.tls_sni.is_none()
            && self.tls_alpn.is_none()
            && self.dns_query.is_none()
            && self.dns_qtype.is_none()
            && self.http_method.is_none()
            && self.http_host.is_none()
            && self.quic_version.is_none()
            && self.ssh_banner.is_none()
            && self.http_path.is_none()
            && self.http_content_type.is_none()
            && self.tls_cert_name.is_none()
    }
}

impl<'a> CompactOut<'a> {
    fn of(f: &'a FlowRow) -> Self {
        let r: &'a FlowRecord = &f.record;
        let signable = r.first_sizes.len() == r.first_dirs.len()
            && r.first_sizes.iter().all(|&s| s > 0)
            && r.first_dirs.iter().all(|&d| d == 1 || d == -1);
        let a = &r.app;
        CompactOut {
            v: ROW_VERSION,
            id: r.id,
            vlan: r.vlan,
            tunnel: r.tunnel,
            fragments: r.fragments,
            fwd: dir_out(&r.fwd),
            bwd: dir_out(&r.bwd),
            first: signable.then(|| Signed(&r.first_sizes, &r.first_dirs)),
            sizes: (!signable).then_some(&r.first_sizes[..]),
            dirs: (!signable).then_some(&r.first_dirs[..]),
            gaps: &r.first_iats_us,
            app: AppOut {
                tls_sni: a.tls_sni.as_deref(),
                tls_alpn: a.tls_alpn.as_deref(),
                dns_query: a.dns_query.as_deref(),
                dns_qtype: a.dns_qtype,
                http_method: a.http_method.as_deref(),
                http_host: a.http_host.as_deref(),
                quic_version: a.quic_version.as_deref(),
                ssh_banner: a.ssh_banner.as_deref(),
                http_path: a.http_path.as_deref(),
                http_content_type: a.http_content_type.as_deref(),
                tls_cert_name: a.tls_cert_name.as_deref(),
            },
            p: &f.probabilities,
        }
    }
}

/// The columns of a `flows_*` row that [`rebuild`] needs.
#[derive(Debug, Clone, Default)]
pub struct FlowColumns {
    pub start_ns: i64,
    pub end_ns: i64,
    pub protocol: i64,
    pub src: String,
    pub src_port: i64,
    pub dst: String,
    pub dst_port: i64,
    pub ip_version: Option<i64>,
    pub class: Option<String>,
    pub confidence: Option<f64>,
    pub true_class: Option<String>,
    pub app: Option<String>,
    pub service: Option<String>,
    pub protocols: Option<String>,
    pub end_reason: Option<String>,
}

/// The compact `row` read back (a key left out takes its default).
#[derive(Deserialize, Default)]
#[serde(default)]
struct CompactIn {
    v: u32,
    id: u64,
    vlan: u16,
    tunnel: Option<String>,
    fragments: u64,
    fwd: Option<DirIn>,
    bwd: Option<DirIn>,
    first: Vec<i64>,
    sizes: Option<Vec<u32>>,
    dirs: Option<Vec<i8>>,
    gaps: Vec<f64>,
    /// Without `service`, `detected`, `protocols`: those come from columns.
    app: AppJson,
    p: Vec<(String, f32)>,
}

type DirIn = (u64, u64, u64, u64, [f64; 4], [f64; 4], [u32; 8]);

/// `pipeline::FlowRow`'s JSON shape, with owned strings (see [`rebuild`]).
#[derive(Serialize)]
struct FlowJson<'a> {
    record: RecordJson<'a>,
    class: &'a str,
    confidence: Option<f32>,
    probabilities: &'a [(String, f32)],
    true_class: Option<&'a str>,
}

#[derive(Serialize)]
struct RecordJson<'a> {
    id: u64,
    start_ns: u64,
    end_ns: u64,
    protocol: u8,
    ip_version: u8,
    src: &'a str,
    src_port: u16,
    dst: &'a str,
    dst_port: u16,
    vlan: u16,
    tunnel: Option<&'a str>,
    fwd: DirJson,
    bwd: DirJson,
    fragments: u64,
    first_sizes: Vec<u32>,
    first_dirs: Vec<i8>,
    first_iats_us: &'a [f64],
    app: AppJson,
    end_reason: &'a str,
}

#[derive(Serialize, Default)]
struct DirJson {
    packets: u64,
    bytes: u64,
    ip_bytes: u64,
    payload_bytes: u64,
    size: Stat,
    iat_us: Stat,
    tcp_flags: [u32; 8],
}

/// `AppInfo`'s JSON, in its field order; owned, since a name with a quote
/// or a backslash is escaped in the stored text and cannot be borrowed.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct AppJson {
    service: Option<String>,
    detected: Option<String>,
    tls_sni: Option<String>,
    tls_alpn: Option<String>,
    dns_query: Option<String>,
    dns_qtype: Option<String>,
    http_method: Option<String>,
    http_host: Option<String>,
    quic_version: Option<String>,
    ssh_banner: Option<String>,
    http_path: Option<String>,
    http_content_type: Option<String>,
    tls_cert_name: Option<String>,
    protocols: Option<String>,
}

fn stat_of(a: [f64; 4]) -> Stat {
    Stat {
        min: a[0],
        mean: a[1],
        max: a[2],
        std: a[3],
    }
}

fn dir_of(d: Option<DirIn>) -> DirJson {
    match d {
        None => DirJson::default(),
        Some((packets, bytes, ip_bytes, payload_bytes, size, iat, tcp_flags)) => DirJson {
            packets,
            bytes,
            ip_bytes,
            payload_bytes,
            size: stat_of(size),
            iat_us: stat_of(iat),
            tcp_flags,
        },
    }
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

/// The API's JSON of a stored flow: a schema-1 `row` as it is, a compact
/// one rebuilt with its columns. `None` when `row` is neither.
pub fn rebuild(row: &str, c: &FlowColumns) -> Option<serde_json::Value> {
    if !row.starts_with("{\"v\":") {
        return serde_json::from_str(row).ok();
    }
    let s: CompactIn = serde_json::from_str(row).ok()?;
    if s.v != ROW_VERSION {
        return None;
    }
    let (first_sizes, first_dirs) = match (s.sizes, s.dirs) {
        (Some(sizes), Some(dirs)) => (sizes, dirs),
        _ => (
            s.first.iter().map(|&v| v.unsigned_abs() as u32).collect(),
            s.first
                .iter()
                .map(|&v| if v < 0 { -1 } else { 1 })
                .collect(),
        ),
    };
    let u = |x: i64| x.max(0) as u64;
    let json = FlowJson {
        record: RecordJson {
            id: s.id,
            start_ns: u(c.start_ns),
            end_ns: u(c.end_ns),
            protocol: c.protocol as u8,
            ip_version: c.ip_version.unwrap_or(0) as u8,
            src: &c.src,
            src_port: c.src_port as u16,
            dst: &c.dst,
            dst_port: c.dst_port as u16,
            vlan: s.vlan,
            tunnel: s.tunnel.as_deref(),
            fwd: dir_of(s.fwd),
            bwd: dir_of(s.bwd),
            fragments: s.fragments,
            first_sizes,
            first_dirs,
            first_iats_us: &s.gaps,
            app: AppJson {
                service: nonempty(&c.service),
                detected: nonempty(&c.app),
                protocols: nonempty(&c.protocols),
                ..s.app
            },
            end_reason: c.end_reason.as_deref().unwrap_or(""),
        },
        class: c.class.as_deref().unwrap_or(""),
        // The column widened an f32: narrowing it back is exact.
        confidence: c.confidence.map(|x| x as f32),
        probabilities: &s.p,
        true_class: c.true_class.as_deref(),
    };
    // Through text, so numbers come out as a stored row's text gives them
    // (an f32 as its shortest decimal, not as its widened f64).
    serde_json::to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

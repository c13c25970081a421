//! `trafficscope packets`: one record per packet.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};

use capture::{Frame, Utc};
use clap::Args;
use decode::{app, Packet, Transport};
use flow::{Direction, FlowTable, LocalNets, Placement};

use crate::input::Event;
use crate::{Failure, FlowArgs, Format, InputArgs};

#[derive(Args, Debug)]
pub struct PacketsArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Output format: tcpdump-like table, CSV, or JSON Lines.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

const CSV_HEADER: &str = "number,time,ts_ns,caplen,wire_len,ip_version,ip_len,proto,src,src_port,dst,dst_port,direction,flow_id,tcp_flags,payload_len,vlan,tunnel,frag_offset,app,malformed";

pub fn run(args: PacketsArgs) -> Result<(), Failure> {
    let mut input = crate::input::open(&args.input)?;
    let local = args.input.local_net.clone().unwrap_or_default();
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    if args.format == Format::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    let mut table = FlowTable::new(args.flow.config());
    let mut line = String::with_capacity(256);
    let format = args.format;
    let result = input.for_each(|ev| {
        let Event::Frame(frame, _) = ev else {
            return Ok(());
        };
        let pkt = decode::decode(frame.linktype, frame.data);
        let placement = table.process(&pkt, frame.ts_ns, frame.wire_len, &mut |_| {});
        line.clear();
        render(&mut line, format, frame, &pkt, placement, &local);
        out.write_all(line.as_bytes())
    });
    let flushed = out.flush();
    input.report_live();
    result?;
    flushed?;
    Ok(())
}

fn flags_str(flags: u8) -> String {
    // tcpdump's notation: S SYN, F FIN, R RST, P PSH, U URG, E ECE, W CWR, "." ACK.
    let mut s = String::new();
    for (bit, c) in [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
        (0x10, '.'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

fn hint_str(pkt: &Packet<'_>) -> String {
    match app::inspect(pkt) {
        Some(app::AppHint::TlsClientHello { sni, alpn }) => format!(
            "tls client-hello{}{}",
            sni.map(|s| format!(" sni={s}")).unwrap_or_default(),
            alpn.map(|s| format!(" alpn={s}")).unwrap_or_default()
        ),
        Some(app::AppHint::Dns {
            qname,
            qtype,
            response,
        }) => format!(
            "dns {} {} {}",
            if response { "response" } else { "query" },
            app::dns_type_name(qtype),
            qname
        ),
        Some(app::AppHint::HttpRequest { method, host, .. }) => {
            format!(
                "http {method}{}",
                host.map(|h| format!(" host={h}")).unwrap_or_default()
            )
        }
        Some(app::AppHint::Quic { version, sni }) => match sni {
            Some(sni) => format!("quic version=0x{version:08x} sni={sni}"),
            None => format!("quic version=0x{version:08x}"),
        },
        Some(app::AppHint::Ssh { banner }) => format!("ssh {banner}"),
        Some(app::AppHint::Rtp {
            payload_type, ssrc, ..
        }) => format!("rtp pt={payload_type} ssrc={ssrc:08x}"),
        Some(app::AppHint::Sip { method }) => format!("sip {method}"),
        Some(app::AppHint::Rtsp { method }) => format!("rtsp {method}"),
        Some(h) => h.protocol().to_string(),
        None => String::new(),
    }
}

fn direction(
    pkt: &Packet<'_>,
    placement: Option<Placement>,
    local: &LocalNets,
) -> Option<Direction> {
    let ip = pkt.ip?;
    Some(local.direction(ip.src, ip.dst, placement?.forward))
}

fn render(
    s: &mut String,
    format: Format,
    frame: &Frame<'_>,
    pkt: &Packet<'_>,
    placement: Option<Placement>,
    local: &LocalNets,
) {
    let ip = pkt.ip;
    let (sport, dport) = pkt.ports().unwrap_or((0, 0));
    let proto = pkt.protocol_name();
    let dir = direction(pkt, placement, local)
        .map(Direction::as_str)
        .unwrap_or("");
    let flow_id = placement.map(|p| p.flow_id);
    let tcp_flags = match pkt.transport {
        Transport::Tcp(t) => flags_str(t.flags),
        _ => String::new(),
    };
    let hint = hint_str(pkt);
    let malformed = pkt.malformed.map(|m| m.to_string());
    let tunnel = pkt.tunnel.map(|t| t.kind.name()).unwrap_or("");
    match format {
        Format::Table => {
            let _ = write!(s, "{:>6} {} ", frame.number, Utc(frame.ts_ns));
            match ip {
                Some(ip) => {
                    let _ = write!(s, "IPv{} {proto} {}", ip.version, ip.src);
                    if pkt.ports().is_some() {
                        let _ = write!(s, ".{sport}");
                    }
                    let _ = write!(s, " > {}", ip.dst);
                    if pkt.ports().is_some() {
                        let _ = write!(s, ".{dport}");
                    }
                    let _ = write!(s, " {dir} len {} ip_len {}", frame.wire_len, ip.total_len);
                }
                None if pkt.unsupported_link => {
                    let _ = write!(
                        s,
                        "unsupported link type {} len {}",
                        frame.linktype, frame.wire_len
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        "{proto} ethertype 0x{:04x} len {}",
                        pkt.ethertype, frame.wire_len
                    );
                }
            }
            if !tcp_flags.is_empty() {
                let _ = write!(s, " [{tcp_flags}]");
            }
            if let Transport::Icmp { icmp_type, code } | Transport::Icmpv6 { icmp_type, code } =
                pkt.transport
            {
                let _ = write!(s, " type {icmp_type} code {code}");
            }
            if !tunnel.is_empty() {
                let _ = write!(s, " (in {tunnel})");
            }
            if !hint.is_empty() {
                let _ = write!(s, " {hint}");
            }
            if let Some(m) = &malformed {
                let _ = write!(s, " [malformed {m}]");
            }
            s.push('\n');
        }
        Format::Csv => {
            let q = |v: &str| {
                if v.contains([',', '"', '\n']) {
                    format!("\"{}\"", v.replace('"', "\"\""))
                } else {
                    v.to_string()
                }
            };
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                frame.number,
                Utc(frame.ts_ns),
                frame.ts_ns,
                frame.caplen(),
                frame.wire_len,
                ip.map(|i| i.version.to_string()).unwrap_or_default(),
                ip.map(|i| i.total_len.to_string()).unwrap_or_default(),
                proto,
                ip.map(|i| i.src.to_string()).unwrap_or_default(),
                if pkt.ports().is_some() {
                    sport.to_string()
                } else {
                    String::new()
                },
                ip.map(|i| i.dst.to_string()).unwrap_or_default(),
                if pkt.ports().is_some() {
                    dport.to_string()
                } else {
                    String::new()
                },
                dir,
                flow_id.map(|v| v.to_string()).unwrap_or_default(),
                tcp_flags,
                pkt.payload_len,
                pkt.vlan[0],
                tunnel,
                ip.and_then(|i| i.fragment)
                    .map(|f| f.offset.to_string())
                    .unwrap_or_default(),
                q(&hint),
                q(malformed.as_deref().unwrap_or(""))
            );
        }
        Format::Jsonl => {
            let v = serde_json::json!({
                "number": frame.number,
                "time": Utc(frame.ts_ns).to_string(),
                "ts_ns": frame.ts_ns,
                "caplen": frame.caplen(),
                "wire_len": frame.wire_len,
                "linktype": frame.linktype.0,
                "ip_version": ip.map(|i| i.version),
                "ip_len": ip.map(|i| i.total_len),
                "proto": proto,
                "src": ip.map(|i| i.src.to_string()),
                "src_port": pkt.ports().map(|p| p.0),
                "dst": ip.map(|i| i.dst.to_string()),
                "dst_port": pkt.ports().map(|p| p.1),
                "direction": (!dir.is_empty()).then_some(dir),
                "flow_id": flow_id,
                "tcp_flags": (!tcp_flags.is_empty()).then_some(tcp_flags),
                "payload_len": pkt.payload_len,
                "vlan": (pkt.vlan[0] != 0).then_some(pkt.vlan[0]),
                "tunnel": (!tunnel.is_empty()).then_some(tunnel),
                "frag_offset": ip.and_then(|i| i.fragment).map(|f| f.offset),
                "app": (!hint.is_empty()).then_some(hint),
                "malformed": malformed,
            });
            let _ = writeln!(s, "{v}");
        }
    }
}

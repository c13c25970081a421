//! `trafficscope stats`: a capinfos-like summary plus the protocol,
//! direction and service mix a traffic study reports.

use std::collections::BTreeMap;
use std::io::{self, Write};

use capture::{CaptureFormat, Compression, Utc};
use clap::Args;
use decode::{Network, Transport};
use flow::{Direction, FlowTable, TableStats};
use serde::Serialize;

use crate::input::Event;
use crate::static_names::ByStaticName;
use crate::{Failure, FlowArgs, InputArgs};

#[derive(Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Print JSON instead of the text report.
    #[arg(long)]
    pub json: bool,
}

/// Packets and bytes under a handful of static names.
#[derive(Default)]
struct Tally(ByStaticName<Count>);

impl Tally {
    #[inline]
    fn add(&mut self, name: &'static str, bytes: u32) {
        self.0
            .get_or_insert_with("", name, Count::default)
            .add(bytes);
    }

    fn into_map(self) -> BTreeMap<String, Count> {
        self.0
            .into_iter()
            .map(|(_, n, c)| (n.to_string(), c))
            .collect()
    }
}

#[derive(Serialize, Default, Clone, Copy)]
struct Count {
    packets: u64,
    bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: u32) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }
}

#[derive(Serialize)]
struct Report {
    file: String,
    format: String,
    compression: &'static str,
    packets: u64,
    wire_bytes: u64,
    captured_bytes: u64,
    first_packet: Option<String>,
    last_packet: Option<String>,
    duration_s: f64,
    packets_per_s: f64,
    bytes_per_s: f64,
    bits_per_s: f64,
    mean_packet_size: f64,
    link_types: BTreeMap<String, u64>,
    protocols: BTreeMap<String, Count>,
    ip_versions: BTreeMap<String, Count>,
    services: BTreeMap<String, Count>,
    directions: BTreeMap<String, Count>,
    flows: TableStats,
    malformed: u64,
    malformed_reasons: BTreeMap<String, u64>,
    unsupported_link_packets: u64,
    tunnelled_packets: u64,
    ip_fragments: u64,
    caplen_over_snaplen: u64,
    caplen_over_wire_len: u64,
    out_of_order_timestamps: u64,
    invalid_timestamp_fractions: u64,
    skipped_pcapng_blocks: u64,
    recorded_drops: u64,
    error: Option<String>,
}

pub fn run(args: StatsArgs) -> Result<(), Failure> {
    let mut input = crate::input::open(&args.input)?;
    let local = args.input.local_net.clone().unwrap_or_default();
    let mut table = FlowTable::new(args.flow.config());
    let mut link_types: BTreeMap<u32, u64> = BTreeMap::new();
    let mut protocols = Tally::default();
    let mut ip_versions = Tally::default();
    let mut services = Tally::default();
    let mut directions = Tally::default();
    let mut malformed_reasons: BTreeMap<String, u64> = BTreeMap::new();
    let (mut malformed, mut unsupported, mut tunnelled, mut fragments) = (0u64, 0u64, 0u64, 0u64);
    let (mut first, mut last) = (u64::MAX, 0u64);
    let result = input.for_each(|ev| {
        let Event::Frame(frame, _) = ev else {
            return Ok(());
        };
        *link_types.entry(frame.linktype.0).or_default() += 1;
        if frame.ts_ns != 0 {
            first = first.min(frame.ts_ns);
            last = last.max(frame.ts_ns);
        }
        let mut pkt = decode::Packet::new(frame.linktype);
        decode::decode_into(frame.linktype, frame.data, &mut pkt);
        if let Some(m) = pkt.malformed {
            malformed += 1;
            *malformed_reasons.entry(m.to_string()).or_default() += 1;
        }
        if pkt.unsupported_link {
            unsupported += 1;
        }
        if pkt.tunnel.is_some() {
            tunnelled += 1;
        }
        let name = match (pkt.network, pkt.ip) {
            (_, Some(_)) => pkt.protocol_name(),
            (Network::Arp, None) => "ARP",
            (Network::Other(_), None) => "other-L2",
            _ => "undecoded",
        };
        protocols.add(name, frame.wire_len);
        let placement = table.process(&pkt, frame.ts_ns, frame.wire_len, &mut |_| {});
        if let Some(ip) = pkt.ip {
            if ip.fragment.is_some() {
                fragments += 1;
            }
            ip_versions.add(
                if ip.version == 4 { "IPv4" } else { "IPv6" },
                frame.wire_len,
            );
            let service = match pkt.transport {
                Transport::Tcp(_) | Transport::Udp { .. } | Transport::Sctp { .. } => {
                    let (a, b) = pkt.ports().unwrap_or((0, 0));
                    decode::service::for_ports(ip.protocol, a, b).unwrap_or("other")
                }
                _ => "no-ports",
            };
            services.add(service, frame.wire_len);
            if let Some(p) = placement {
                let d = local.direction(ip.src, ip.dst, p.forward);
                directions.add(Direction::as_str(d), frame.wire_len);
            }
        }
        Ok(())
    });
    table.flush(&mut |_| {});
    let mut rs = input
        .reader()
        .map(|r| r.stats().clone())
        .unwrap_or_default();
    let live = input.live_stats();
    if let Some(l) = live {
        rs.packets = input.passed;
        rs.recorded_drops = l.dropped;
    }
    let duration_s = if last > first {
        (last - first) as f64 / 1e9
    } else {
        0.0
    };
    let rate = |x: u64| {
        if duration_s > 0.0 {
            x as f64 / duration_s
        } else {
            0.0
        }
    };
    let format = match input.reader().map(|r| r.format()) {
        None => format!(
            "live capture on {}",
            args.input.interface.as_deref().unwrap_or("?")
        ),
        Some(CaptureFormat::Pcap {
            nanos, big_endian, ..
        }) => format!(
            "pcap ({} timestamps, {})",
            if nanos { "ns" } else { "µs" },
            if big_endian {
                "big-endian"
            } else {
                "little-endian"
            }
        ),
        Some(CaptureFormat::PcapNg) => format!(
            "pcapng ({} sections, {} interfaces)",
            rs.sections, rs.interfaces
        ),
    };
    let error = match &result {
        Err(crate::input::Stop::Capture(e)) => Some(e.to_string()),
        _ => None,
    };
    let report = Report {
        file: args
            .input
            .read
            .clone()
            .or_else(|| args.input.interface.clone())
            .unwrap_or_default(),
        format,
        compression: match input.reader().map(|r| r.compression()) {
            None | Some(Compression::None) => "none",
            Some(Compression::Gzip) => "gzip",
            Some(Compression::Zstd) => "zstd",
        },
        packets: rs.packets,
        wire_bytes: rs.wire_bytes,
        captured_bytes: rs.captured_bytes,
        first_packet: (first != u64::MAX).then(|| Utc(first).to_string()),
        last_packet: (first != u64::MAX).then(|| Utc(last).to_string()),
        duration_s,
        packets_per_s: rate(rs.packets),
        bytes_per_s: rate(rs.wire_bytes),
        bits_per_s: rate(rs.wire_bytes) * 8.0,
        mean_packet_size: if rs.packets > 0 {
            rs.wire_bytes as f64 / rs.packets as f64
        } else {
            0.0
        },
        link_types: link_types
            .into_iter()
            .map(|(k, v)| (capture::LinkType(k).to_string(), v))
            .collect(),
        protocols: protocols.into_map(),
        ip_versions: ip_versions.into_map(),
        services: services.into_map(),
        directions: directions.into_map(),
        flows: table.stats().clone(),
        malformed,
        malformed_reasons,
        unsupported_link_packets: unsupported,
        tunnelled_packets: tunnelled,
        ip_fragments: fragments,
        caplen_over_snaplen: rs.caplen_over_snaplen,
        caplen_over_wire_len: rs.caplen_over_wire_len,
        out_of_order_timestamps: rs.out_of_order,
        invalid_timestamp_fractions: rs.invalid_ts_fraction,
        skipped_pcapng_blocks: rs.skipped_blocks,
        recorded_drops: rs.recorded_drops,
        error,
    };
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::other)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &report)?;
    }
    out.flush()?;
    result?;
    Ok(())
}

fn share_table(
    out: &mut impl Write,
    title: &str,
    rows: &BTreeMap<String, Count>,
    total: &Count,
) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{title:<24} {:>12} {:>8} {:>16} {:>8}",
        "packets", "share", "bytes", "share"
    )?;
    let mut sorted: Vec<_> = rows.iter().collect();
    sorted.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
    for (name, c) in sorted {
        let ps = if total.packets > 0 {
            100.0 * c.packets as f64 / total.packets as f64
        } else {
            0.0
        };
        let bs = if total.bytes > 0 {
            100.0 * c.bytes as f64 / total.bytes as f64
        } else {
            0.0
        };
        writeln!(
            out,
            "  {name:<22} {:>12} {ps:>7.2}% {:>16} {bs:>7.2}%",
            c.packets, c.bytes
        )?;
    }
    Ok(())
}

fn write_text(out: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(out, "File:                    {}", r.file)?;
    writeln!(
        out,
        "Format:                  {}{}",
        r.format,
        if r.compression == "none" {
            String::new()
        } else {
            format!(", {}-compressed", r.compression)
        }
    )?;
    for (lt, n) in &r.link_types {
        writeln!(out, "Link type:               {lt}: {n} packets")?;
    }
    writeln!(out, "Packets:                 {}", r.packets)?;
    writeln!(out, "Bytes on the wire:       {}", r.wire_bytes)?;
    writeln!(out, "Bytes captured:          {}", r.captured_bytes)?;
    writeln!(
        out,
        "First packet:            {}",
        r.first_packet.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "Last packet:             {}",
        r.last_packet.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "Duration:                {:.6} s", r.duration_s)?;
    writeln!(
        out,
        "Packet rate:             {:.2} packets/s",
        r.packets_per_s
    )?;
    writeln!(
        out,
        "Data rate:               {:.2} bytes/s ({:.2} bits/s)",
        r.bytes_per_s, r.bits_per_s
    )?;
    writeln!(
        out,
        "Mean packet size:        {:.2} bytes",
        r.mean_packet_size
    )?;
    let total = Count {
        packets: r.packets,
        bytes: r.wire_bytes,
    };
    writeln!(out)?;
    share_table(out, "Protocol", &r.protocols, &total)?;
    share_table(out, "IP version", &r.ip_versions, &total)?;
    share_table(out, "Service (by port)", &r.services, &total)?;
    share_table(out, "Direction", &r.directions, &total)?;
    writeln!(out)?;
    let f = &r.flows;
    writeln!(
        out,
        "Flows:                   {} (peak open {}; ended: {} fin, {} rst, {} idle, {} active, {} at end of input)",
        f.flows, f.peak_open, f.ended_fin, f.ended_rst, f.ended_idle, f.ended_active, f.ended_at_end_of_input
    )?;
    writeln!(out, "Flows evicted:           {} (--max-flows)", f.evicted)?;
    writeln!(out, "Malformed packets:       {}", r.malformed)?;
    for (reason, n) in &r.malformed_reasons {
        writeln!(out, "  {reason}: {n}")?;
    }
    writeln!(
        out,
        "Unsupported link type:   {} packets",
        r.unsupported_link_packets
    )?;
    writeln!(out, "Tunnelled packets:       {}", r.tunnelled_packets)?;
    writeln!(
        out,
        "IP fragments:            {} ({} without their first fragment)",
        r.ip_fragments, f.orphan_fragments
    )?;
    writeln!(out, "caplen > snaplen:        {}", r.caplen_over_snaplen)?;
    writeln!(out, "caplen > wire length:    {}", r.caplen_over_wire_len)?;
    writeln!(
        out,
        "Out-of-order timestamps: {}",
        r.out_of_order_timestamps
    )?;
    writeln!(
        out,
        "Invalid ts fractions:    {}",
        r.invalid_timestamp_fractions
    )?;
    writeln!(out, "Skipped pcapng blocks:   {}", r.skipped_pcapng_blocks)?;
    writeln!(out, "Drops (file ISB / kernel): {}", r.recorded_drops)?;
    if let Some(e) = &r.error {
        writeln!(out, "Read stopped early:      {e}")?;
    }
    Ok(())
}

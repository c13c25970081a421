//! Downloads: the packets of a time range `[from, to)` that match a flow
//! (its five-tuple, both directions), an address, port and protocol, or a
//! tcpdump-style filter, read from the ring's files whose span overlaps the
//! range and written as one capture file (pcap; pcapng when the range
//! holds several link types), streamed, within limits on packets and bytes.
//!
//! Flows and addresses are matched on the packet as the project's decoder
//! sees it (`decode`: the innermost IP header after tunnels, the ports of a
//! non-first fragment taken from its first fragment), which is how the
//! flow table counts packets into flows; so a flow record's packets and
//! bytes are what its download holds. The `filter` expression runs on the
//! frame as captured (outer headers), like tcpdump.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use capture::{CaptureReader, CaptureWriter, Frame, LinkType, OutputFormat, WriteError};

use crate::index::RingFile;
use crate::{Ring, SNAPLEN};

/// A flow by its five-tuple (and VLAN when the flow table keys on it):
/// packets in either direction match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTuple {
    pub proto: u8,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    /// 0: any VLAN.
    pub vlan: u16,
}

impl FlowTuple {
    /// What [`parse`](Self::parse) accepts.
    pub const ACCEPTED: &'static str = "PROTO,SRC,SRC_PORT,DST,DST_PORT[,VLAN] from a flow record \
        (protocol, src, src_port, dst, dst_port, vlan), e.g. tcp,10.0.0.1,51000,93.184.216.34,443 or \
        17,2001:db8::1,5353,2001:db8::2,53; PROTO is tcp, udp, sctp, icmp, icmpv6 or a number 0-255";

    /// `PROTO,SRC,SRC_PORT,DST,DST_PORT[,VLAN]`.
    pub fn parse(s: &str) -> Result<FlowTuple, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if !(5..=6).contains(&parts.len()) {
            return Err(format!(
                "`{s}` has {} comma-separated fields, not 5 or 6",
                parts.len()
            ));
        }
        let ip = |v: &str, what: &str| {
            v.parse::<IpAddr>()
                .map(|a| a.to_canonical())
                .map_err(|_| format!("{what} `{v}` is not an IP address"))
        };
        let port = |v: &str, what: &str| {
            v.parse::<u16>()
                .map_err(|_| format!("{what} `{v}` is not a port (0-65535)"))
        };
        let vlan = match parts.get(5) {
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|v| *v < 4096)
                .ok_or_else(|| format!("VLAN `{v}` is not a VLAN id (0-4095)"))?,
            None => 0,
        };
        Ok(FlowTuple {
            proto: parse_proto(parts[0])?,
            src: ip(parts[1], "SRC")?,
            src_port: port(parts[2], "SRC_PORT")?,
            dst: ip(parts[3], "DST")?,
            dst_port: port(parts[4], "DST_PORT")?,
            vlan,
        })
    }

    #[inline]
    fn matches(&self, proto: u8, a: (IpAddr, u16), b: (IpAddr, u16), vlan: u16) -> bool {
        let (x, y) = ((self.src, self.src_port), (self.dst, self.dst_port));
        proto == self.proto
            && ((a == x && b == y) || (a == y && b == x))
            && (self.vlan == 0 || vlan == self.vlan)
    }
}

/// An IP protocol by name (tcp, udp, sctp, icmp, icmpv6) or number.
pub fn parse_proto(s: &str) -> Result<u8, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "sctp" => Ok(132),
        "icmp" => Ok(1),
        "icmpv6" | "icmp6" => Ok(58),
        n => n.parse::<u8>().map_err(|_| {
            format!("protocol `{s}` is not tcp, udp, sctp, icmp, icmpv6 or a number 0-255")
        }),
    }
}

/// Which packets of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    All,
    Flow(FlowTuple),
    /// Each given field must match: the address either end, the port
    /// either end, the IP protocol.
    Fields {
        addr: Option<IpAddr>,
        port: Option<u16>,
        proto: Option<u8>,
    },
}

/// A download: the packets of `[from_ns, to_ns)` that match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from_ns: u64,
    pub to_ns: u64,
    pub matcher: Match,
    /// tcpdump-style filter on the frame as captured, on top of `matcher`.
    pub filter: Option<String>,
}

/// Most a download holds; it stops at the first reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_packets: u64,
    /// Bytes of the file written, headers included.
    pub max_bytes: u64,
}

/// Which limit ended a download early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Packets,
    Bytes,
}

/// The files a download reads and the container it writes, decided before
/// anything is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub files: Vec<RingFile>,
    pub format: OutputFormat,
    /// Link type of the file header (of the first file; Ethernet if none).
    pub linktype: LinkType,
    pub linktypes: Vec<LinkType>,
}

impl Plan {
    /// The ring's files overlapping `[from, to)`, earliest first.
    pub fn new(ring: &Ring, from_ns: u64, to_ns: u64) -> Plan {
        let files = ring.overlapping(from_ns, to_ns);
        let mut linktypes: Vec<LinkType> = Vec::new();
        for f in &files {
            if let Some(l) = f.span.linktype.filter(|l| !linktypes.contains(l)) {
                linktypes.push(l);
            }
        }
        Plan {
            format: if linktypes.len() > 1 {
                OutputFormat::PcapNg
            } else {
                OutputFormat::Pcap
            },
            linktype: linktypes.first().copied().unwrap_or(LinkType::ETHERNET),
            linktypes,
            files,
        }
    }

    /// Compiles `expr` for the first link type: a bad expression is found
    /// before anything is sent.
    pub fn check_filter(&self, expr: &str) -> Result<(), String> {
        filter::compile(expr, self.linktype.0, SNAPLEN)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// What a download held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    pub packets: u64,
    /// Bytes written (the capture file's size).
    pub bytes: u64,
    pub files_read: u64,
    /// Set when a limit ended the download before the range did.
    pub stopped_by: Option<Limit>,
    /// Files found damaged (what came before the damage was used) or gone
    /// (overwritten since the plan), each naming the file and the offset.
    pub damaged: Vec<String>,
}

struct Matcher<'q> {
    q: &'q Query,
    /// Ports of first fragments seen: (src, dst, protocol, id) → ports.
    frags: HashMap<(IpAddr, IpAddr, u8, u32), (u16, u16)>,
    /// The filter compiled per link type (None: not supported there).
    progs: Vec<(LinkType, Option<filter::Program>)>,
}

impl Matcher<'_> {
    fn matches(&mut self, f: &Frame<'_>) -> bool {
        if f.ts_ns < self.q.from_ns || f.ts_ns >= self.q.to_ns {
            return false;
        }
        if let Some(expr) = &self.q.filter {
            let i = match self.progs.iter().position(|(l, _)| *l == f.linktype) {
                Some(i) => i,
                None => {
                    let p = filter::compile(expr, f.linktype.0, SNAPLEN).ok();
                    self.progs.push((f.linktype, p));
                    self.progs.len() - 1
                }
            };
            if !self.progs[i]
                .1
                .as_ref()
                .is_some_and(|p| p.matches(f.data, f.wire_len))
            {
                return false;
            }
        }
        if self.q.matcher == Match::All {
            return true;
        }
        let pkt = decode::decode(f.linktype, f.data);
        let Some(ip) = pkt.ip else {
            return false;
        };
        let (src, dst) = (ip.src.to_canonical(), ip.dst.to_canonical());
        // As the flow table does: a non-first fragment carries the ports
        // of its first fragment.
        let (mut sport, mut dport) = pkt.ports().unwrap_or((0, 0));
        if let Some(frag) = ip.fragment {
            let key = (src, dst, ip.protocol, frag.id);
            if frag.offset == 0 {
                if self.frags.len() >= 65_536 {
                    self.frags.clear();
                }
                self.frags.insert(key, (sport, dport));
            } else if let Some(&(s, d)) = self.frags.get(&key) {
                (sport, dport) = (s, d);
            }
        }
        match &self.q.matcher {
            Match::All => true,
            Match::Flow(t) => t.matches(ip.protocol, (src, sport), (dst, dport), pkt.vlan[0]),
            Match::Fields { addr, port, proto } => {
                addr.is_none_or(|a| a == src || a == dst)
                    && port.is_none_or(|p| p == sport || p == dport)
                    && proto.is_none_or(|p| p == ip.protocol)
            }
        }
    }
}

fn write_error(e: WriteError) -> io::Error {
    match e {
        WriteError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Size of the record `f` takes in a file of `format`.
fn record_len(format: OutputFormat, f: &Frame<'_>) -> u64 {
    let caplen = f.data.len().min(SNAPLEN as usize) as u64;
    match format {
        OutputFormat::Pcap => 16 + caplen,
        // An interface description may come first (32 bytes).
        OutputFormat::PcapNg => 32 + caplen.div_ceil(4) * 4 + 32,
    }
}

/// Writes the packets of `plan`'s files that `q` matches to `out`, as one
/// capture file, and flushes it. A file damaged mid-read gives what came
/// before the damage; a file gone since the plan is skipped; both are
/// listed in [`Extracted::damaged`]. An error writing to `out` (the client
/// went away) ends the download.
pub fn extract<W: Write>(
    ring: &Ring,
    plan: &Plan,
    q: &Query,
    limits: Limits,
    out: W,
) -> io::Result<Extracted> {
    let mut w = CaptureWriter::new(out, plan.format, SNAPLEN);
    w.begin(plan.linktype).map_err(write_error)?;
    let mut m = Matcher {
        q,
        frags: HashMap::new(),
        progs: Vec::new(),
    };
    let mut x = Extracted::default();
    'files: for file in &plan.files {
        let name = file.path.display().to_string();
        let opened = File::open(&file.path).map_err(|e| {
            format!("{name}: cannot open ({e}): overwritten since the download started?")
        });
        let reader =
            opened.and_then(|f| CaptureReader::new(&name, Box::new(f)).map_err(|e| e.to_string()));
        let mut r = match reader {
            Ok(r) => r,
            Err(e) => {
                x.damaged.push(e);
                continue;
            }
        };
        x.files_read += 1;
        loop {
            let f = match r.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    // The file being written ends in the record being
                    // buffered: expected, not damage.
                    if !file.open {
                        ring.stats.read_errors.fetch_add(1, Relaxed);
                        x.damaged
                            .push(format!("{e} (the download has the packets before it)"));
                    }
                    break;
                }
            };
            if !m.matches(&f) {
                continue;
            }
            if x.packets >= limits.max_packets {
                x.stopped_by = Some(Limit::Packets);
                break 'files;
            }
            if w.bytes_written() + record_len(plan.format, &f) > limits.max_bytes {
                x.stopped_by = Some(Limit::Bytes);
                break 'files;
            }
            match w.write_frame(f.ts_ns, f.wire_len, f.linktype, f.data) {
                Ok(()) => x.packets += 1,
                // A frame of another link type in a pcap download: left out.
                Err(WriteError::MixedLinkTypes { .. }) => {}
                Err(e) => return Err(write_error(e)),
            }
        }
    }
    w.flush().map_err(write_error)?;
    x.bytes = w.bytes_written();
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RingConfig;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const S: u64 = 1_000_000_000;

    /// An Ethernet/IPv4/UDP (or TCP) frame; `frag` = (id, offset in 8-byte
    /// units, more fragments).
    fn eth_ipv4(
        proto: u8,
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        frag: Option<(u16, u16, bool)>,
    ) -> Vec<u8> {
        let l4_len = if proto == 6 { 20 } else { 8 };
        let first = frag.is_none_or(|(_, off, _)| off == 0);
        let body = if first { l4_len + 4 } else { 12 };
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + body) as u16;
        let (id, off, more) = frag.unwrap_or((0, 0, false));
        let flags_off = off | if more { 0x2000 } else { 0 };
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&flags_off.to_be_bytes());
        f.extend_from_slice(&[64, proto, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        if first {
            f.extend_from_slice(&sport.to_be_bytes());
            f.extend_from_slice(&dport.to_be_bytes());
            if proto == 6 {
                f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
            } else {
                f.extend_from_slice(&((8 + 4) as u16).to_be_bytes());
                f.extend_from_slice(&[0, 0]);
            }
        }
        f.resize(14 + 20 + body, 0xab);
        f
    }

    fn frame(ts_ns: u64, data: &[u8]) -> Frame<'_> {
        Frame {
            number: 0,
            ts_ns,
            wire_len: data.len() as u32,
            linktype: LinkType::ETHERNET,
            interface: 0,
            data,
        }
    }

    fn ring_with(name: &str, frames: &[(u64, Vec<u8>)]) -> std::sync::Arc<Ring> {
        let dir = std::env::temp_dir().join(format!("ts-ringq-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (ring, mut w, _) = Ring::open(RingConfig {
            dir,
            size_limit: 1 << 30,
            period_ns: S,
            files: 100,
        })
        .unwrap();
        for (t, d) in frames {
            w.write(&frame(*t, d));
        }
        w.finish();
        ring
    }

    fn download(ring: &Ring, q: &Query, limits: Limits) -> (Extracted, Vec<(u64, Vec<u8>)>) {
        let plan = Plan::new(ring, q.from_ns, q.to_ns);
        let mut buf = Vec::new();
        let x = extract(ring, &plan, q, limits, &mut buf).unwrap();
        assert_eq!(x.bytes, buf.len() as u64);
        let mut r = CaptureReader::new("download", Box::new(io::Cursor::new(buf))).unwrap();
        let mut got = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            got.push((f.ts_ns, f.data.to_vec()));
        }
        (x, got)
    }

    const NO_LIMIT: Limits = Limits {
        max_packets: u64::MAX,
        max_bytes: u64::MAX,
    };

    fn q(from: u64, to: u64, matcher: Match) -> Query {
        Query {
            from_ns: from,
            to_ns: to,
            matcher,
            filter: None,
        }
    }

    #[test]
    fn flow_tuples() {
        let t = FlowTuple::parse("tcp,10.0.0.1,51000,93.184.216.34,443").unwrap();
        assert_eq!(t.proto, 6);
        assert_eq!(t.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!((t.src_port, t.dst_port, t.vlan), (51000, 443, 0));
        let t = FlowTuple::parse("17, 2001:db8::1,53,::ffff:10.0.0.2,5353,7").unwrap();
        assert_eq!(
            t.src,
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
        );
        assert_eq!(t.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), "canonical");
        assert_eq!(t.vlan, 7);
        for bad in [
            "tcp,10.0.0.1,1,10.0.0.2",
            "tcp,10.0.0.1,1,10.0.0.2,2,3,4",
            "tpc,10.0.0.1,1,10.0.0.2,2",
            "tcp,10.0.0.300,1,10.0.0.2,2",
            "tcp,10.0.0.1,70000,10.0.0.2,2",
            "tcp,10.0.0.1,1,10.0.0.2,2,5000",
        ] {
            assert!(FlowTuple::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_proto("ICMPv6"), Ok(58));
        assert_eq!(parse_proto("47"), Ok(47));
    }

    #[test]
    fn a_flow_both_ways_its_fragments_and_nothing_else() {
        let (a, b, c) = ([10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3]);
        let frames = vec![
            (S, eth_ipv4(17, a, 5000, b, 53, None)),
            (S + 1, eth_ipv4(17, b, 53, a, 5000, None)),
            // Same addresses, another port; another host; TCP on the ports.
            (S + 2, eth_ipv4(17, a, 5001, b, 53, None)),
            (S + 3, eth_ipv4(17, c, 5000, b, 53, None)),
            (S + 4, eth_ipv4(6, a, 5000, b, 53, None)),
            // A fragmented datagram of the flow: the second part has no ports.
            (2 * S, eth_ipv4(17, a, 5000, b, 53, Some((77, 0, true)))),
            (2 * S + 1, eth_ipv4(17, a, 0, b, 0, Some((77, 2, false)))),
            // And a fragment of another datagram whose first part was not seen.
            (2 * S + 2, eth_ipv4(17, a, 0, b, 0, Some((78, 2, false)))),
            (3 * S, eth_ipv4(17, a, 5000, b, 53, None)),
        ];
        let ring = ring_with("flow", &frames);
        let flow = FlowTuple::parse("udp,10.0.0.1,5000,10.0.0.2,53").unwrap();
        let (x, got) = download(&ring, &q(0, 3 * S, Match::Flow(flow)), NO_LIMIT);
        let times: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(times, [S, S + 1, 2 * S, 2 * S + 1]);
        assert_eq!((x.packets, x.files_read, x.stopped_by), (4, 2, None));
        // Bytes as written, record for record.
        assert_eq!(got[1].1, frames[1].1);
        // Reversed tuple: the same flow.
        let rev = FlowTuple::parse("udp,10.0.0.2,53,10.0.0.1,5000").unwrap();
        assert_eq!(
            download(&ring, &q(0, 4 * S, Match::Flow(rev)), NO_LIMIT)
                .0
                .packets,
            5
        );
        // [from, to): the packet at `to` is left out, at `from` kept.
        let all = |from, to| {
            download(&ring, &q(from, to, Match::All), NO_LIMIT)
                .0
                .packets
        };
        assert_eq!(all(S + 1, 2 * S + 1), 5);
        assert_eq!(all(0, u64::MAX), 9);
        // Fields: each given one must match.
        let fields = |addr: Option<&str>, port, proto| {
            let m = Match::Fields {
                addr: addr.map(|a| a.parse().unwrap()),
                port,
                proto,
            };
            download(&ring, &q(0, 4 * S, m), NO_LIMIT).0.packets
        };
        assert_eq!(fields(Some("10.0.0.3"), None, None), 1);
        assert_eq!(fields(None, Some(5000), None), 7);
        assert_eq!(fields(None, Some(5000), Some(6)), 1);
        assert_eq!(fields(Some("10.0.0.2"), Some(53), Some(17)), 7);
    }

    #[test]
    fn limits_stop_the_download_and_say_which() {
        let frames: Vec<(u64, Vec<u8>)> = (0..10)
            .map(|i| (S + i, eth_ipv4(17, [1, 1, 1, 1], 1, [2, 2, 2, 2], 2, None)))
            .collect();
        let ring = ring_with("limits", &frames);
        let lim = |p, b| Limits {
            max_packets: p,
            max_bytes: b,
        };
        let (x, got) = download(&ring, &q(0, 2 * S, Match::All), lim(4, u64::MAX));
        assert_eq!(
            (x.packets, got.len(), x.stopped_by),
            (4, 4, Some(Limit::Packets))
        );
        let (x, _) = download(&ring, &q(0, 2 * S, Match::All), lim(10, u64::MAX));
        assert_eq!((x.packets, x.stopped_by), (10, None), "exactly the limit");
        let rec = 16 + frames[0].1.len() as u64;
        let (x, _) = download(&ring, &q(0, 2 * S, Match::All), lim(100, 24 + 3 * rec + 1));
        assert_eq!((x.packets, x.stopped_by), (3, Some(Limit::Bytes)));
        assert!(x.bytes <= 24 + 3 * rec + 1);
    }

    #[test]
    fn a_filter_expression_and_a_damaged_file() {
        let frames: Vec<(u64, Vec<u8>)> = (0..6)
            .map(|i| {
                let port = if i % 2 == 0 { 80 } else { 443 };
                (
                    i * S,
                    eth_ipv4(6, [1, 1, 1, 1], 40000, [2, 2, 2, 2], port, None),
                )
            })
            .collect();
        let ring = ring_with("filter", &frames);
        let mut query = q(0, 10 * S, Match::All);
        query.filter = Some("tcp dst port 443".into());
        let plan = Plan::new(&ring, 0, 10 * S);
        assert!(plan.check_filter("tcp dst prot 443").is_err());
        assert_eq!(download(&ring, &query, NO_LIMIT).0.packets, 3);
        // Cut the file of second 3 in the middle of its record.
        let f = &ring.files()[3];
        assert_eq!(f.span.min_ns, 3 * S);
        let len = std::fs::metadata(&f.path).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&f.path)
            .unwrap();
        file.set_len(len - 10).unwrap();
        let (x, got) = download(&ring, &q(0, 10 * S, Match::All), NO_LIMIT);
        assert_eq!(got.len(), 5, "the other files still come");
        assert_eq!(x.damaged.len(), 1);
        assert!(
            x.damaged[0].contains("ring-") && x.damaged[0].contains("offset"),
            "{x:?}"
        );
        // A file removed since the plan is skipped and named.
        let plan = Plan::new(&ring, 0, 10 * S);
        std::fs::remove_file(&ring.files()[0].path).unwrap();
        let x = extract(
            &ring,
            &plan,
            &q(0, 10 * S, Match::All),
            NO_LIMIT,
            io::sink(),
        )
        .unwrap();
        assert_eq!(x.packets, 4);
        assert_eq!(x.damaged.len(), 2);
    }

    #[test]
    fn several_link_types_make_a_pcapng() {
        let dir = std::env::temp_dir().join(format!("ts-ringq-{}-lt", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (ring, mut w, _) = Ring::open(RingConfig {
            dir,
            size_limit: 1 << 30,
            period_ns: 100 * S,
            files: 10,
        })
        .unwrap();
        let eth = eth_ipv4(17, [1, 1, 1, 1], 1, [2, 2, 2, 2], 2, None);
        w.write(&frame(S, &eth));
        let raw = &eth[14..];
        w.write(&Frame {
            linktype: LinkType::RAW,
            ..frame(2 * S, raw)
        });
        w.finish();
        let plan = Plan::new(&ring, 0, 10 * S);
        assert_eq!(plan.format, OutputFormat::PcapNg);
        assert_eq!(plan.linktypes, [LinkType::ETHERNET, LinkType::RAW]);
        let flow = FlowTuple::parse("udp,2.2.2.2,2,1.1.1.1,1").unwrap();
        let (x, got) = download(&ring, &q(0, 10 * S, Match::Flow(flow)), NO_LIMIT);
        assert_eq!(x.packets, 2);
        assert_eq!(got[1].1, raw);
        assert_eq!(Plan::new(&ring, 0, S + 1).format, OutputFormat::Pcap);
    }
}

//! Builds a large benchmark capture out of the real captures in
//! `shared/data/pcap-apps`.
//!
//! ```text
//! cargo run --release -p trafficscope --example make_bench_capture -- OUT.pcap \
//!     [--packets 2000000] [--source DIR] [--time-scale 1]
//! ```
//!
//! Every Ethernet capture under the source folder (recursively; `*.out`
//! files and other link types are skipped) is loaded once. The output is
//! then a series of *rounds*; each round plays every source capture once,
//! one after another, until the packet target is reached (the last copy may
//! be cut short). Per copy:
//!
//! * timestamps are shifted so the output is time-ordered and continuous:
//!   each source's frames are stably sorted by time, gaps inside a source
//!   longer than [`MAX_GAP_NS`] are shortened to it (several ndpi samples
//!   are merges of captures years apart), and consecutive copies are
//!   [`COPY_GAP_NS`] apart;
//! * IPv4 and IPv6 source/destination addresses of the outer IP header
//!   (after any VLAN/QinQ tags) get the round number XOR-ed into their last
//!   two bytes, so each round's flows are distinct from every other round's.
//!   The IPv4 header checksum is recomputed; TCP/UDP checksums are left
//!   stale (no tool in the benchmark verifies them). Addresses inside
//!   tunnels, ICMP error quotes and ARP are not rewritten.
//!
//! `--time-scale F` divides every time offset by F (F = 100 plays the
//! 29 h of the 2 M-packet capture in 17 min, ~2,000 packets/s): the same
//! packets and flows, denser in time, for costs that are per second of
//! capture time (bins, Hurst estimates) rather than per packet.
//!
//! The output is classic pcap with nanosecond timestamps, written to
//! `OUT.partial` and renamed when complete.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use capture::{CaptureReader, CaptureWriter, LinkType, OutputFormat};

/// Longest gap kept between two packets of one source capture.
const MAX_GAP_NS: u64 = 1_000_000_000;
/// Gap between the last packet of one copy and the first of the next.
const COPY_GAP_NS: u64 = 1_000_000;
/// Timestamp of the first output packet: 2026-01-01T00:00:00Z.
const START_NS: u64 = 1_767_225_600 * 1_000_000_000;
const DEFAULT_SOURCE: &str = "/work/shared/data/pcap-apps";

/// One source capture held in memory: frames with times relative to its
/// first packet (gaps already capped).
struct Source {
    name: String,
    /// (relative time, wire length, start, end) into `data`.
    frames: Vec<(u64, u32, usize, usize)>,
    data: Vec<u8>,
    span_ns: u64,
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut out: Option<String> = None;
    let mut packets: u64 = 2_000_000;
    let mut source = std::env::var("PCAP_APPS_DIR").unwrap_or_else(|_| DEFAULT_SOURCE.to_string());
    let mut time_scale: f64 = 1.0;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--packets" | "-n" => {
                let v = args.next().context("--packets needs a number")?;
                packets = v
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("invalid --packets {v:?}"))?;
            }
            "--source" => source = args.next().context("--source needs a folder")?,
            "--time-scale" => {
                let v = args.next().context("--time-scale needs a number")?;
                time_scale = v
                    .parse()
                    .ok()
                    .filter(|f: &f64| *f >= 1.0)
                    .with_context(|| format!("invalid --time-scale {v:?}: a factor ≥ 1"))?;
            }
            "-h" | "--help" => {
                println!("usage: make_bench_capture OUT.pcap [--packets N] [--source DIR] [--time-scale F]");
                return Ok(());
            }
            _ if out.is_none() && !a.starts_with('-') => out = Some(a),
            _ => bail!("unexpected argument {a:?} (usage: make_bench_capture OUT.pcap [--packets N] [--source DIR] [--time-scale F])"),
        }
    }
    let out = out.context(
        "usage: make_bench_capture OUT.pcap [--packets N] [--source DIR] [--time-scale F]",
    )?;
    if packets == 0 {
        bail!("--packets must be at least 1");
    }

    let t0 = Instant::now();
    let mut paths = Vec::new();
    collect(Path::new(&source), &mut paths)?;
    paths.sort();
    let mut sources = Vec::new();
    let mut skipped = Vec::new();
    for p in &paths {
        match load(p)? {
            Ok(s) if !s.frames.is_empty() => sources.push(s),
            Ok(s) => skipped.push(format!("{} (no Ethernet frames)", s.name)),
            Err(why) => skipped.push(format!("{} ({why})", p.display())),
        }
    }
    if sources.is_empty() {
        bail!("no Ethernet captures found under {source}");
    }
    let per_round: u64 = sources.iter().map(|s| s.frames.len() as u64).sum();
    eprintln!(
        "make_bench_capture: {} Ethernet sources ({} frames per round) from {source}; skipped {}: {}",
        sources.len(),
        per_round,
        skipped.len(),
        skipped.join(", ")
    );
    if per_round * 65_536 < packets {
        bail!(
            "{packets} packets would need more than 65536 rounds; the address rewrite has 16 bits"
        );
    }

    let partial = format!("{out}.partial");
    let file = File::create(&partial).with_context(|| format!("cannot create {partial}"))?;
    let mut writer = CaptureWriter::new(file, OutputFormat::Pcap, 262_144);
    let mut frame = Vec::with_capacity(65_536);
    let mut cursor = START_NS;
    let mut written = 0u64;
    let mut bytes = 0u64;
    let mut round = 0u64;
    'outer: loop {
        for s in &sources {
            for &(rel, wire_len, a, b) in &s.frames {
                if written == packets {
                    break 'outer;
                }
                frame.clear();
                frame.extend_from_slice(&s.data[a..b]);
                shift_addresses(&mut frame, round as u16);
                let ts = START_NS + ((cursor + rel - START_NS) as f64 / time_scale) as u64;
                writer
                    .write_frame(ts, wire_len, LinkType::ETHERNET, &frame)
                    .with_context(|| format!("writing {partial}"))?;
                written += 1;
                bytes += frame.len() as u64 + 16;
            }
            cursor += s.span_ns + COPY_GAP_NS;
        }
        round += 1;
    }
    writer
        .flush()
        .with_context(|| format!("writing {partial}"))?;
    drop(writer);
    std::fs::rename(&partial, &out).with_context(|| format!("renaming {partial} to {out}"))?;
    eprintln!(
        "make_bench_capture: wrote {out}: {written} packets, {:.1} MB, {} rounds ({} full), {:.0} s of capture time, in {:.1} s",
        (bytes + 24) as f64 / 1e6,
        written.div_ceil(per_round),
        written / per_round,
        (cursor - START_NS) as f64 / 1e9 / time_scale,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Capture files under `dir`, recursively (`*.out` and dot-files skipped).
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for e in entries {
        let e = e?;
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if e.file_type()?.is_dir() {
            collect(&p, out)?;
        } else if name.contains(".pcap") && !name.ends_with(".out") {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads the Ethernet frames of one capture. The outer error is an I/O
/// failure worth stopping for; the inner one is a reason to skip the file.
fn load(path: &Path) -> Result<Result<Source, String>> {
    let name = path.display().to_string();
    let mut reader = match CaptureReader::open(&name) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let mut raw: Vec<(u64, u32, usize, usize)> = Vec::new();
    let mut data = Vec::new();
    let mut other_links = 0u64;
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                if f.linktype != LinkType::ETHERNET {
                    other_links += 1;
                    continue;
                }
                let a = data.len();
                data.extend_from_slice(f.data);
                raw.push((f.ts_ns, f.wire_len, a, data.len()));
            }
            Ok(None) => break,
            // Keep what was read before damage, like the tools do.
            Err(e) => {
                eprintln!("make_bench_capture: {name}: stopped at: {e}");
                break;
            }
        }
    }
    if raw.is_empty() && other_links > 0 {
        let lt = reader
            .first_linktype()
            .map(|l| l.to_string())
            .unwrap_or_default();
        return Ok(Err(format!("link type {lt}, not Ethernet")));
    }
    // Time order inside the source, then relative times with capped gaps.
    raw.sort_by_key(|f| f.0);
    let mut frames = Vec::with_capacity(raw.len());
    let mut rel = 0u64;
    let mut prev = raw.first().map(|f| f.0).unwrap_or(0);
    for (ts, wire, a, b) in raw {
        rel += (ts - prev).min(MAX_GAP_NS);
        prev = ts;
        frames.push((rel, wire, a, b));
    }
    Ok(Ok(Source {
        name,
        span_ns: rel,
        frames,
        data,
    }))
}

/// XORs `copy` into the last two bytes of the outer IPv4/IPv6 source and
/// destination addresses (recomputing the IPv4 header checksum).
fn shift_addresses(f: &mut [u8], copy: u16) {
    if copy == 0 || f.len() < 14 {
        return;
    }
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([f[off], f[off + 1]]);
    // VLAN / QinQ tags.
    let mut tags = 0;
    while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) && tags < 4 {
        off += 4;
        if f.len() < off + 2 {
            return;
        }
        ethertype = u16::from_be_bytes([f[off], f[off + 1]]);
        tags += 1;
    }
    let ip = off + 2;
    let [hi, lo] = copy.to_be_bytes();
    match ethertype {
        0x0800 => {
            if f.len() < ip + 20 || f[ip] >> 4 != 4 {
                return;
            }
            let hlen = (f[ip] & 0x0f) as usize * 4;
            for at in [ip + 14, ip + 18] {
                f[at] ^= hi;
                f[at + 1] ^= lo;
            }
            if hlen >= 20 && f.len() >= ip + hlen {
                f[ip + 10] = 0;
                f[ip + 11] = 0;
                let sum = ipv4_checksum(&f[ip..ip + hlen]);
                f[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
            }
        }
        0x86dd => {
            if f.len() < ip + 40 || f[ip] >> 4 != 6 {
                return;
            }
            for at in [ip + 22, ip + 38] {
                f[at] ^= hi;
                f[at + 1] ^= lo;
            }
        }
        _ => {}
    }
}

/// Internet checksum of an IPv4 header whose checksum field is zero.
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for w in h.chunks(2) {
        let v = if w.len() == 2 {
            u16::from_be_bytes([w[0], w[1]])
        } else {
            u16::from_be_bytes([w[0], 0])
        };
        sum += v as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

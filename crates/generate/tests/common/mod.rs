//! Shared helpers: generate into a temporary directory and parse frames.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::Command;

use generate::{generate_offline, GenerateConfig, Summary};

pub struct Generated {
    pub pcap: PathBuf,
    pub labels: String,
    pub packet_labels: String,
    pub summary: Summary,
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("generate-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Generates `cfg` into `<tmp>/<name>.pcap[ng]`.
pub fn gen(name: &str, cfg: &GenerateConfig, pcapng: bool) -> Generated {
    let dir = tmpdir(name);
    let ext = if pcapng { "pcapng" } else { "pcap" };
    let pcap = dir.join(format!("{name}.{ext}"));
    let fmt = if pcapng {
        capture::OutputFormat::PcapNg
    } else {
        capture::OutputFormat::Pcap
    };
    let mut cap = capture::CaptureWriter::new(BufWriter::new(File::create(&pcap).unwrap()), fmt, 0);
    let mut labels = Vec::new();
    let mut pl = Vec::new();
    let summary = generate_offline(cfg, &mut cap, &mut labels, Some(&mut pl)).expect("generate");
    cap.into_inner().unwrap();
    Generated {
        pcap,
        labels: String::from_utf8(labels).unwrap(),
        packet_labels: String::from_utf8(pl).unwrap(),
        summary,
    }
}

/// One parsed frame.
#[derive(Clone, Debug)]
pub struct Pkt {
    pub number: u64,
    pub ts: u64,
    pub src: String,
    pub dst: String,
    /// 6, 17, 1 or 58.
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub seq: u32,
    pub payload: Vec<u8>,
}

fn ones(data: &[u8], mut acc: u32) -> u32 {
    let mut i = 0;
    while i + 1 < data.len() {
        acc += u16::from_be_bytes([data[i], data[i + 1]]) as u32;
        i += 2;
    }
    if i < data.len() {
        acc += (data[i] as u32) << 8;
    }
    acc
}

fn fold(mut a: u32) -> u16 {
    while a >> 16 != 0 {
        a = (a & 0xffff) + (a >> 16);
    }
    a as u16
}

/// Reads every frame with `capture::CaptureReader`, parsing the headers
/// and verifying IP and transport checksums independently.
pub fn read_frames(path: &std::path::Path) -> Vec<Pkt> {
    let mut r = capture::CaptureReader::open(path.to_str().unwrap()).expect("open capture");
    let mut v = Vec::new();
    while let Some(f) = r.next_frame().expect("frame") {
        assert_eq!(f.linktype, capture::LinkType::ETHERNET);
        let d = f.data;
        assert_eq!(f.wire_len as usize, d.len(), "frame {} truncated", f.number);
        let et = u16::from_be_bytes([d[12], d[13]]);
        let (src, dst, proto, l4, pseudo) = match et {
            0x0800 => {
                let ip = &d[14..34];
                assert_eq!(
                    fold(ones(ip, 0)),
                    0xffff,
                    "frame {}: IPv4 checksum",
                    f.number
                );
                let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                let l4 = &d[34..14 + total];
                let mut ps = ones(&ip[12..20], 0);
                ps += ip[9] as u32 + l4.len() as u32;
                (
                    std::net::Ipv4Addr::from([ip[12], ip[13], ip[14], ip[15]]).to_string(),
                    std::net::Ipv4Addr::from([ip[16], ip[17], ip[18], ip[19]]).to_string(),
                    ip[9],
                    l4,
                    if ip[9] == 1 { 0 } else { ps },
                )
            }
            0x86dd => {
                let ip = &d[14..54];
                let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
                let l4 = &d[54..54 + plen];
                let mut ps = ones(&ip[8..40], 0);
                ps += ip[6] as u32 + l4.len() as u32;
                let a: [u8; 16] = ip[8..24].try_into().unwrap();
                let b: [u8; 16] = ip[24..40].try_into().unwrap();
                (
                    std::net::Ipv6Addr::from(a).to_string(),
                    std::net::Ipv6Addr::from(b).to_string(),
                    ip[6],
                    l4,
                    ps,
                )
            }
            other => panic!("frame {}: ethertype {other:#x}", f.number),
        };
        assert_eq!(
            fold(ones(l4, pseudo)),
            0xffff,
            "frame {}: L4 checksum",
            f.number
        );
        let (sport, dport, flags, seq, payload) = match proto {
            6 => {
                let off = (l4[12] >> 4) as usize * 4;
                (
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]]),
                    l4[13],
                    u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]),
                    l4[off..].to_vec(),
                )
            }
            17 => (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                0,
                0,
                l4[8..].to_vec(),
            ),
            _ => (
                0,
                0,
                l4[0],
                u16::from_be_bytes([l4[6], l4[7]]) as u32,
                l4[8..].to_vec(),
            ),
        };
        v.push(Pkt {
            number: f.number,
            ts: f.ts_ns,
            src,
            dst,
            proto,
            sport,
            dport,
            tcp_flags: flags,
            seq,
            payload,
        });
    }
    v
}

/// Label rows as maps of column → value.
pub fn label_rows(labels: &str) -> Vec<HashMap<String, String>> {
    let mut lines = labels.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header.join(","), generate::LABELS_HEADER);
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            assert_eq!(cols.len(), header.len(), "row {l}");
            header
                .iter()
                .zip(cols)
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect()
        })
        .collect()
}

/// Runs tshark; fails (does not skip) when it is missing.
pub fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark").args(args).output().unwrap_or_else(|e| {
        panic!("tshark is required for these oracle tests but could not be run ({e}): install it with `apt-get install tshark`")
    });
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

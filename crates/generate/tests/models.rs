//! Per-class measurements taken from the generated captures (frames parsed
//! here, not taken from the generator), reproducibility, and bad input.

mod common;

/// Per connection: segment requests (time, bitrate) and server payloads (time, bytes).
type VideoConn = (Vec<(u64, u64)>, Vec<(u64, usize)>);
/// Server→client TCP segments (seq, payload) by client endpoint.
type Segs<'a> = HashMap<(String, u16), Vec<(u32, &'a [u8])>>;

use std::collections::HashMap;
use std::io::BufWriter;

use common::{gen, read_frames, Pkt};
use generate::{generate_offline, parse_mix, Class, GenerateConfig, GenerateError};

fn cfg(mix: &str, users: u32, secs: u64, seed: u64) -> GenerateConfig {
    GenerateConfig {
        mix: parse_mix(mix).unwrap(),
        users,
        duration_ns: secs * 1_000_000_000,
        seed,
        ..Default::default()
    }
}

/// RTP packets grouped by (flow, direction).
fn rtp_streams(frames: &[Pkt]) -> HashMap<(String, u16, String, u16), Vec<&Pkt>> {
    let mut m: HashMap<_, Vec<&Pkt>> = HashMap::new();
    for p in frames {
        if p.proto == 17 && p.sport != 53 && p.dport != 53 && p.sport != 5060 && p.dport != 5060 {
            assert_eq!(p.payload[0] >> 6, 2, "RTP version 2");
            if (200..=204).contains(&p.payload[1]) {
                continue; // RTCP
            }
            m.entry((p.src.clone(), p.sport, p.dst.clone(), p.dport))
                .or_default()
                .push(p);
        }
    }
    m
}

#[test]
fn voip_rate_payload_and_talk_spurts() {
    let g = gen("voip-rate", &cfg("voip", 4, 90, 5), false);
    let frames = read_frames(&g.pcap);
    let streams = rtp_streams(&frames);
    assert_eq!(
        streams.len(),
        2 * g.summary.sessions["voip"] as usize,
        "two RTP directions per call"
    );
    let (mut pkts, mut span_ns, mut spurts, mut spurt_ns) = (0u64, 0u64, 0u64, 0u64);
    for pk in streams.values() {
        // Split into talk spurts: a marker bit (RFC 3551 §4.1) or a gap.
        let mut cur: Vec<&Pkt> = Vec::new();
        let mut flush = |cur: &mut Vec<&Pkt>| {
            if cur.len() >= 10 {
                pkts += cur.len() as u64 - 1;
                span_ns += cur.last().unwrap().ts - cur[0].ts;
            }
            if !cur.is_empty() {
                spurts += 1;
                spurt_ns += cur.len() as u64 * 20_000_000;
            }
            cur.clear();
        };
        for p in pk {
            let pt = p.payload[1] & 0x7f;
            if pt == 13 {
                assert_eq!(p.payload.len(), 13, "comfort noise: header + noise level");
                flush(&mut cur);
                continue;
            }
            assert_eq!(pt, 0, "PCMU");
            assert_eq!(p.payload.len(), 12 + 160, "G.711 20 ms payload");
            let marker = p.payload[1] & 0x80 != 0;
            let gap = cur.last().is_some_and(|q| p.ts - q.ts > 30_000_000);
            if marker || gap {
                flush(&mut cur);
            }
            cur.push(p);
        }
        flush(&mut cur);
    }
    let rate = pkts as f64 / (span_ns as f64 / 1e9);
    eprintln!(
        "voip: {rate:.3} pkt/s over {spurts} spurts, mean spurt {:.3} s",
        spurt_ns as f64 / spurts as f64 / 1e9
    );
    assert!(
        (rate - 50.0).abs() <= 1.0,
        "packets/s in talk spurts: {rate}"
    );
    let kbps = rate * 160.0 * 8.0 / 1000.0;
    assert!((kbps - 64.0).abs() <= 1.3, "payload rate {kbps} kbit/s");
    // Brady ON periods: mean ≈ 1.0 s (loose: sampling and call ends).
    let mean_on = spurt_ns as f64 / spurts as f64 / 1e9;
    assert!(
        (0.75..1.3).contains(&mean_on),
        "mean talk spurt {mean_on} s over {spurts}"
    );
    // RTCP sender reports with SDES CNAME on RTP port + 1.
    let rtcp: Vec<&Pkt> = frames
        .iter()
        .filter(|p| p.proto == 17 && p.payload.len() > 8 && p.payload[1] == 200)
        .collect();
    assert!(
        rtcp.len() as u64 >= 2 * g.summary.sessions["voip"],
        "too few RTCP reports"
    );
    for p in &rtcp {
        assert_eq!(
            u16::from_be_bytes([p.payload[2], p.payload[3]]),
            6,
            "SR length"
        );
        assert_eq!(p.payload[29], 202, "SDES follows the SR");
        assert!(streams.contains_key(&(p.src.clone(), p.sport - 1, p.dst.clone(), p.dport - 1)));
    }
    // SIP dialog at start and end.
    let sip: Vec<String> = frames
        .iter()
        .filter(|p| p.dport == 5060 || p.sport == 5060)
        .map(|p| {
            String::from_utf8_lossy(&p.payload)
                .lines()
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for m in [
        "INVITE sip:",
        "SIP/2.0 100 Trying",
        "SIP/2.0 180 Ringing",
        "SIP/2.0 200 OK",
        "ACK sip:",
        "BYE sip:",
    ] {
        assert!(sip.iter().any(|l| l.starts_with(m)), "no {m} in {sip:?}");
    }
}

#[test]
fn voip_icmp_is_64_kbit_in_20_ms_pings() {
    let g = gen("voip-icmp", &cfg("voip-icmp", 2, 30, 5), false);
    let frames = read_frames(&g.pcap);
    let req: Vec<&Pkt> = frames
        .iter()
        .filter(|p| p.proto == 1 && p.tcp_flags == 8)
        .collect();
    let rep = frames
        .iter()
        .filter(|p| p.proto == 1 && p.tcp_flags == 0)
        .count();
    assert_eq!(req.len(), rep, "every echo answered");
    assert!(req.iter().all(|p| p.payload.len() == 160));
    let mut by_src: HashMap<&str, Vec<u64>> = HashMap::new();
    for p in &req {
        by_src.entry(&p.src).or_default().push(p.ts);
    }
    for ts in by_src.values() {
        let rate = (ts.len() - 1) as f64 / ((ts[ts.len() - 1] - ts[0]) as f64 / 1e9);
        assert!((rate - 50.0).abs() < 0.5, "pings/s {rate}");
    }
}

#[test]
fn video_bitrate_tracks_target_per_segment_window() {
    let mut c = cfg("video", 2, 120, 9);
    c.video.tls_fraction = 0.0;
    c.video.segment_s = vec![4];
    c.video.watch_median_s = 1e5;
    let g = gen("video-rate", &c, false);
    let frames = read_frames(&g.pcap);
    // Per connection: segment requests (time, target bitrate) and the
    // server's payload bytes after each request.
    let mut conns: HashMap<(String, u16), VideoConn> = HashMap::new();
    for p in frames.iter().filter(|p| p.proto == 6) {
        if p.dport == 80 && p.payload.starts_with(b"GET ") {
            let line = String::from_utf8_lossy(&p.payload)
                .lines()
                .next()
                .unwrap()
                .to_string();
            if let Some(i) = line.find("/seg-") {
                let br: u64 = line[i + 11..].split('.').next().unwrap().parse().unwrap();
                conns
                    .entry((p.src.clone(), p.sport))
                    .or_default()
                    .0
                    .push((p.ts, br));
            }
        } else if p.sport == 80 && !p.payload.is_empty() {
            conns
                .entry((p.dst.clone(), p.dport))
                .or_default()
                .1
                .push((p.ts, p.payload.len()));
        }
    }
    let mut windows = 0;
    for (reqs, data) in conns.values() {
        assert!(reqs.len() > 12, "too few segments: {}", reqs.len());
        // Buffering phase first: back-to-back requests.
        let quick = reqs
            .windows(2)
            .take_while(|w| w[1].0 - w[0].0 < 2_000_000_000)
            .count();
        assert!(quick >= 2, "no buffering phase");
        // Steady state: windows of 8 segments at one bitrate.
        let steady = &reqs[quick + 2..];
        for w in steady.windows(9) {
            if w.iter().any(|r| r.1 != w[0].1) {
                continue;
            }
            let (t0, t1) = (w[0].0, w[8].0);
            let bytes: usize = data
                .iter()
                .filter(|d| d.0 > t0 && d.0 <= t1)
                .map(|d| d.1)
                .sum();
            let bps = bytes as f64 * 8.0 / ((t1 - t0) as f64 / 1e9);
            let target = w[0].1 as f64;
            assert!(
                (bps - target).abs() / target < 0.05,
                "measured {bps:.0} bit/s vs target {target} over 8 segments"
            );
            windows += 1;
            if windows % 10 == 1 {
                eprintln!("video: window {windows}: {bps:.0} bit/s vs {target}");
            }
        }
    }
    assert!(windows > 5, "too few steady windows ({windows})");
}

/// SURGE hybrid CDF, written out here independently of the generator.
fn surge_cdf(x: f64) -> f64 {
    let (mu, sigma, p, xm, a, max) = (9.357, 1.318, 0.07, 133_000.0, 1.1, 10e6);
    let z = (x.ln() - mu) / sigma;
    // Φ via erfc continued... use the complementary error function series.
    let phi = 0.5 * erfc(-z / std::f64::consts::SQRT_2);
    let tail = if x < xm {
        0.0
    } else {
        (1.0 - (xm / x).powf(a)) / (1.0 - (xm / max).powf(a))
    };
    (1.0 - p) * phi + p * tail
}

/// erfc by Numerical Recipes' Chebyshev fit (|rel. error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Sample size. With 4 users × 240 s (576 objects) this seed gave
/// D = 0.051 against 0.068 (α = 0.01; 0.057 at α = 0.05): a thin margin,
/// so we checked whether it was a model mismatch. It is not: the sizes read
/// here are the Content-Length values, i.e. the model's draws (not bytes
/// quantised by the MSS, no headers included), the sampler alone fits its
/// CDF at n = 200 000 (`object_sampler_matches_its_cdf`), and over seeds
/// 1–24 √n·D averaged 0.894 against the Kolmogorov distribution's mean of
/// 0.869, with 1 of 24 above its 5 % point — sample variance. So the
/// sample is larger instead: 12 users × 300 s, about 2 800 objects
/// (D = 0.019 against 0.031), which keeps the test's verdict stable when
/// the generator's draws change and sharpens the wrong-law check below.
#[test]
fn web_object_sizes_fit_the_surge_law() {
    let mut c = cfg("web", 12, 300, 21);
    c.web.tls_fraction = 0.0;
    let g = gen("web-ks", &c, false);
    let frames = read_frames(&g.pcap);
    // Reassemble each server→client HTTP stream by sequence number.
    let mut streams: Segs = HashMap::new();
    for p in frames
        .iter()
        .filter(|p| p.proto == 6 && p.sport == 80 && !p.payload.is_empty())
    {
        streams
            .entry((p.dst.clone(), p.dport))
            .or_default()
            .push((p.seq, &p.payload));
    }
    let mut sizes = Vec::new();
    let mut requests = 0;
    for p in frames
        .iter()
        .filter(|p| p.proto == 6 && p.dport == 80 && p.payload.starts_with(b"GET "))
    {
        let txt = String::from_utf8_lossy(&p.payload);
        assert!(
            txt.contains("\r\nHost: ") && txt.ends_with("\r\n\r\n"),
            "request {txt}"
        );
        requests += 1;
    }
    for segs in streams.values_mut() {
        segs.sort_by_key(|s| s.0);
        let data: Vec<u8> = segs.iter().flat_map(|s| s.1.iter().copied()).collect();
        let mut at = 0;
        while at < data.len() {
            let head_end = at
                + data[at..]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .expect("header end")
                + 4;
            let head = String::from_utf8_lossy(&data[at..head_end]).to_string();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "response {head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("Content-Length")
                .parse()
                .unwrap();
            if !head.contains("Content-Type: text/html") {
                sizes.push(len as f64);
            }
            at = head_end + len;
            assert!(at <= data.len(), "body shorter than Content-Length");
        }
    }
    assert!(sizes.len() > 2000, "only {} objects", sizes.len());
    assert!(requests > sizes.len());
    // One-sample Kolmogorov–Smirnov against the configured law.
    sizes.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = sizes.len() as f64;
    let mut d: f64 = 0.0;
    for (i, x) in sizes.iter().enumerate() {
        let f = surge_cdf(*x);
        d = d
            .max((f - i as f64 / n).abs())
            .max(((i + 1) as f64 / n - f).abs());
    }
    let crit = 1.628 / n.sqrt(); // α = 0.01
    eprintln!("web: {n} objects, KS D = {d:.4}, critical {crit:.4}");
    assert!(d < crit, "KS D = {d:.4} ≥ {crit:.4} (n = {n})");
    // And it rejects a wrong law (a plain lognormal without the tail).
    let mut d_wrong: f64 = 0.0;
    for (i, x) in sizes.iter().enumerate() {
        let f = 0.5 * erfc(-((x.ln() - 9.357) / 1.0) / std::f64::consts::SQRT_2);
        d_wrong = d_wrong.max((f - i as f64 / n).abs());
    }
    assert!(d_wrong > crit, "KS cannot tell the law from a wrong one");
}

fn run_bytes(c: &GenerateConfig, fmt: capture::OutputFormat) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut cap = capture::CaptureWriter::new(Vec::new(), fmt, 0);
    let mut labels = Vec::new();
    let mut pl = Vec::new();
    generate_offline(c, &mut cap, &mut labels, Some(&mut pl)).unwrap();
    (cap.into_inner().unwrap(), labels, pl)
}

#[test]
fn seed_reproduces_bit_for_bit() {
    let mut c = cfg(
        "web=2,video=1,voip=1,voip-icmp=1,bulk=1,dns=1,video-download=1",
        8,
        20,
        42,
    );
    c.bulk.size_max_bytes = 3e6;
    c.video.download_max_bytes = 3e6;
    c.video.ladder = vec![300_000, 1_000_000];
    for fmt in [capture::OutputFormat::Pcap, capture::OutputFormat::PcapNg] {
        let a = run_bytes(&c, fmt);
        let b = run_bytes(&c, fmt);
        assert!(a.0.len() > 100_000);
        assert!(a == b, "same seed, different output");
    }
    let a = run_bytes(&c, capture::OutputFormat::Pcap);
    c.seed = 43;
    let b = run_bytes(&c, capture::OutputFormat::Pcap);
    assert_ne!(a.0, b.0, "different seeds, same capture");
    assert_ne!(a.1, b.1, "different seeds, same labels");
}

#[test]
fn labels_cover_every_packet_and_flow() {
    let c = cfg("web=1,voip=1,dns=1", 4, 20, 8);
    let g = gen("labels", &c, false);
    let frames = read_frames(&g.pcap);
    let rows = common::label_rows(&g.labels);
    let pl: Vec<Vec<String>> = g
        .packet_labels
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    for (p, l) in frames.iter().zip(&pl) {
        // Find the flow row of this packet and compare class and session.
        let row = rows
            .iter()
            .find(|r| {
                let fwd = r["ip_a"] == p.src && r["ip_b"] == p.dst;
                let rev = r["ip_a"] == p.dst && r["ip_b"] == p.src;
                (fwd && r["port_a"] == p.sport.to_string() && r["port_b"] == p.dport.to_string())
                    || (rev
                        && r["port_a"] == p.dport.to_string()
                        && r["port_b"] == p.sport.to_string())
            })
            .unwrap_or_else(|| panic!("packet {} has no flow row", p.number));
        assert_eq!(row["class"], l[1]);
        assert_eq!(row["session"], l[2]);
        assert!(row["ip_a"].starts_with("10."), "client is ip_a");
        let t = generate::iso8601(p.ts);
        assert!(row["start"] <= t && t <= row["end"]);
    }
}

#[test]
fn bad_input_names_the_fix() {
    let e = "mp3".parse::<Class>().unwrap_err().to_string();
    assert!(
        e.contains("mp3") && e.contains("web, video, video-download, voip, voip-icmp, bulk, dns"),
        "{e}"
    );
    for bad in [
        "",
        "web=x",
        "web=1,,voip=1",
        "web=1,web=2",
        "web=0",
        "web=1,tv=2",
        "web=-1",
    ] {
        let e = parse_mix(bad).unwrap_err().to_string();
        assert!(
            e.contains("web=3,video=1,voip=2") || e.contains("valid classes are"),
            "{bad:?}: {e}"
        );
    }
    assert_eq!(
        parse_mix("web=3, video=1,voip").unwrap(),
        vec![(Class::Web, 3), (Class::Video, 1), (Class::Voip, 1)]
    );

    // A rate above the link: nothing is written, the error names the fix.
    let mut c = cfg("video", 1, 10, 1);
    c.video.fixed_bitrate = Some(10_000_000);
    c.link_rate_bps = 5e6;
    let mut cap =
        capture::CaptureWriter::new(BufWriter::new(Vec::new()), capture::OutputFormat::Pcap, 0);
    let mut labels = Vec::new();
    let e = generate_offline(&c, &mut cap, &mut labels, None::<&mut Vec<u8>>).unwrap_err();
    assert!(matches!(e, GenerateError::RateAboveLink { .. }));
    assert!(e.to_string().contains("--link-rate"), "{e}");
    assert!(cap.into_inner().unwrap().into_inner().unwrap().is_empty());
    let mut c = cfg("voip", 1, 10, 1);
    c.link_rate_bps = 64e3;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("voip") && e.contains("--link-rate"), "{e}");
    let mut c = cfg("web", 0, 10, 1);
    assert!(c.validate().unwrap_err().to_string().contains("--users"));
    c.users = 1;
    c.duration_ns = 0;
    assert!(c.validate().unwrap_err().to_string().contains("--duration"));
}

#[test]
fn partial_output_on_write_error_is_a_clear_error() {
    struct Full(usize);
    impl std::io::Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 < b.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let c = cfg("bulk", 2, 10, 1);
    let mut cap = capture::CaptureWriter::new(Full(3 << 20), capture::OutputFormat::Pcap, 0);
    let mut labels = Vec::new();
    let e = generate_offline(&c, &mut cap, &mut labels, None::<&mut Vec<u8>>).unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
}

#[test]
fn link_rate_limits_each_users_traffic() {
    let mut c = cfg("bulk=1,video-download=1,web=1", 3, 30, 4);
    c.link_rate_bps = 20e6;
    c.bulk.size_max_bytes = 20e6;
    c.video.download_max_bytes = 20e6;
    let g = gen("link-rate", &c, false);
    let frames = read_frames(&g.pcap);
    // Bytes on the wire (frame + preamble/FCS/gap) per client, direction
    // and 1 s window.
    let mut win: HashMap<(String, bool, u64), f64> = HashMap::new();
    for p in &frames {
        let down = p.dst.starts_with("10.1.");
        let client = if down { &p.dst } else { &p.src };
        let len = p.payload.len() + 54 + 24;
        *win.entry((client.clone(), down, p.ts / 1_000_000_000))
            .or_default() += len as f64 * 8.0;
    }
    let max = win.values().cloned().fold(0.0, f64::max);
    assert!(
        max <= 20e6 * 1.02,
        "a user exceeded the 20 Mbit/s link: {max:.0} bit/s"
    );
    assert!(
        max >= 20e6 * 0.8,
        "the link is never filled: {max:.0} bit/s"
    );
}

#[test]
fn files_api_writes_readable_outputs() {
    let dir = common::tmpdir("files");
    let pcap = dir.join("t.pcapng");
    let labels = dir.join("t.csv");
    let pl = dir.join("t.packets.csv");
    let s = generate::generate_to_files(&cfg("dns=1,voip=1", 2, 5, 3), &pcap, &labels, Some(&pl))
        .unwrap();
    let frames = read_frames(&pcap);
    assert_eq!(frames.len() as u64, s.packets);
    let rows = std::fs::read_to_string(&labels).unwrap().lines().count() - 1;
    assert_eq!(rows as u64, s.flows.values().sum::<u64>());
    assert_eq!(
        std::fs::read_to_string(&pl).unwrap().lines().count() as u64,
        s.packets + 1
    );
    // A bad configuration creates no files.
    let missing = dir.join("never.pcap");
    assert!(generate::generate_to_files(&cfg("web", 0, 5, 3), &missing, &labels, None).is_err());
    assert!(!missing.exists());
    std::fs::remove_dir_all(dir).ok();
}

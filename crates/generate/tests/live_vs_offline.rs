//! Live mode in a network namespace, recorded live, against offline mode:
//! per-class distributions compared with two-sample Kolmogorov–Smirnov
//! tests, plus the VoIP and ICMP rates against the 50 ± 1 packets/s.
//!
//! **What is compared, and why these statistics.** Live timing on a shared
//! two-core machine jitters (scheduler delays of milliseconds), and the live
//! round-trip time is a veth pair's, not the model's 40 ms, so
//! inter-arrival times and transfer durations are not expected to match.
//! What both modes must share is what the class models determine:
//!
//! * TCP classes (web, video, bulk): application data unit sizes — the
//!   bytes one side sends before the other side sends payload again
//!   (tmix's "a-b-t" view, Weigle et al. 2006): HTTP responses, TLS
//!   flights and records, segment and file sizes, FTP/rsync dialogue. They
//!   do not depend on segmentation, timing or the RTT.
//! * dns and voip: UDP payload sizes (queries/answers; SIP, RTP, comfort
//!   noise, RTCP).
//! * voip talk-spurt and silence lengths counted in 20 ms frames from the
//!   RTP headers (marker bit, sequence and timestamp), which the Brady
//!   ON/OFF model sets and jitter cannot change.
//! * Rates that must hold in real time: RTP packets per second within talk
//!   spurts per direction, and ICMP echoes per second, within the issue's
//!   50 ± 1. The live sender keeps an absolute 20 ms schedule, so jitter
//!   only moves the first and last packet of a spurt; pooled over all
//!   spurts that is far below 1 packet/s (2 %).
//!
//! **Test and tolerance.** Two-sample KS statistic
//! D = sup_x |F_live(x) − F_offline(x)| (evaluated after all ties at each
//! value, so discrete data are handled), rejected when
//! D > c(α)·√((n+m)/(n·m)) with c(α) = √(−ln(α/2)/2), Smirnov's asymptotic
//! critical value (c = 1.36 at α = 0.05). The family of KS comparisons is
//! held at α = 0.01 with Bonferroni (α = 0.01/k each). For discrete
//! distributions the test is conservative. Offline reference: the same
//! configuration with three other seeds pooled (independent of the live
//! sample, which a two-sample test assumes; the live run's own seed would
//! share the first draws of each user). The comparison is shown able to
//! fail: the same live samples must be rejected against offline traffic
//! with a changed model (web object sizes ×e, VoIP talk spurts ×3).
//!
//! Calibration (`calibrate_offline_against_offline`, ignored by default):
//! with an offline run in place of the live one, 0 of 60 seeds were
//! rejected (median largest D/critical 0.59). Client request sizes and
//! per-packet DNS sizes were tried first and dropped: they repeat within a
//! page or lookup, and that clustering made 5 of 40 offline runs fail.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use generate::live::{run_live_opts, LiveNet, LiveOptions};
use generate::{parse_mix, GenerateConfig};

/// One parsed frame (IPv4/IPv6; other ethertypes are skipped).
#[derive(Clone, Debug)]
struct Pkt {
    ts: u64,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
    seq: u32,
    /// Transport payload length from the IP header (not the capture).
    len: usize,
    /// Captured transport payload (first bytes).
    head: Vec<u8>,
    /// ICMP type for ICMP packets.
    icmp_type: u8,
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn folded(mut a: u32) -> u16 {
    while a >> 16 != 0 {
        a = (a & 0xffff) + (a >> 16);
    }
    a as u16
}

/// Parses every IP frame of an Ethernet capture; returns the packets, the
/// number of non-IP frames and of packets whose checksums do not verify.
fn parse(path: &Path) -> (Vec<Pkt>, usize, usize) {
    let mut r = capture::CaptureReader::open(path.to_str().unwrap()).expect("open capture");
    let (mut v, mut other, mut bad) = (Vec::new(), 0, 0);
    while let Some(f) = r.next_frame().expect("frame") {
        assert_eq!(f.linktype, capture::LinkType::ETHERNET);
        let d = f.data;
        assert_eq!(f.wire_len as usize, d.len(), "recorded in full");
        let et = u16::from_be_bytes([d[12], d[13]]);
        let (src, dst, proto, l4, pseudo): (IpAddr, IpAddr, u8, &[u8], u32) = match et {
            0x0800 => {
                let ihl = (d[14] & 0x0f) as usize * 4;
                let ip = &d[14..14 + ihl];
                let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                let l4 = &d[14 + ihl..14 + total];
                if folded(sum16(ip, 0)) != 0xffff {
                    bad += 1;
                }
                let ps = sum16(&ip[12..20], 0) + ip[9] as u32 + l4.len() as u32;
                let a: [u8; 4] = ip[12..16].try_into().unwrap();
                let b: [u8; 4] = ip[16..20].try_into().unwrap();
                (
                    a.into(),
                    b.into(),
                    ip[9],
                    l4,
                    if ip[9] == 1 { 0 } else { ps },
                )
            }
            0x86dd => {
                let ip = &d[14..54];
                let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
                let l4 = &d[54..54 + plen];
                let ps = sum16(&ip[8..40], 0) + ip[6] as u32 + l4.len() as u32;
                let a: [u8; 16] = ip[8..24].try_into().unwrap();
                let b: [u8; 16] = ip[24..40].try_into().unwrap();
                (a.into(), b.into(), ip[6], l4, ps)
            }
            _ => {
                other += 1;
                continue;
            }
        };
        if !matches!(proto, 1 | 6 | 17 | 58) {
            other += 1;
            continue;
        }
        if folded(sum16(l4, pseudo)) != 0xffff {
            bad += 1;
        }
        let (sport, dport, seq, off, icmp_type) = match proto {
            6 => (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]),
                (l4[12] >> 4) as usize * 4,
                0,
            ),
            17 => (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                0,
                8,
                0,
            ),
            // ICMP echo: identifier in the "port" of the label, seq.
            _ => (
                u16::from_be_bytes([l4[4], l4[5]]),
                0,
                u16::from_be_bytes([l4[6], l4[7]]) as u32,
                8,
                l4[0],
            ),
        };
        v.push(Pkt {
            ts: f.ts_ns,
            src,
            dst,
            proto,
            sport,
            dport,
            seq,
            len: l4.len() - off,
            head: l4[off..].iter().copied().take(512).collect(),
            icmp_type,
        });
    }
    (v, other, bad)
}

/// RTP header fields of a packet and its capture time.
struct Rtp {
    ts: u32,
    marker: bool,
    pt: u8,
    cap: u64,
}

/// Flow key → (label class, app), from the labels CSV; client first.
type FlowKey = (u8, IpAddr, u16, IpAddr, u16);

fn flow_labels(labels: &str) -> HashMap<FlowKey, (String, String)> {
    common::label_rows(labels)
        .into_iter()
        .map(|r| {
            let proto = match r["proto"].as_str() {
                "TCP" => 6,
                "UDP" => 17,
                _ => 1,
            };
            let key = (
                proto,
                r["ip_a"].parse().unwrap(),
                r["port_a"].parse().unwrap(),
                r["ip_b"].parse().unwrap(),
                r["port_b"].parse().unwrap(),
            );
            (key, (r["class"].clone(), r["app"].clone()))
        })
        .collect()
}

/// Per-class samples of one capture.
#[derive(Default, Debug)]
struct Samples {
    /// TCP ADU sizes by (class, from_client).
    adus: HashMap<(String, bool), Vec<f64>>,
    /// UDP payload sizes by class.
    udp: HashMap<String, Vec<f64>>,
    /// Bulk transfers: the largest ADU of each data connection.
    transfers: Vec<f64>,
    /// DNS: mean payload bytes of each lookup (one flow each).
    lookups: Vec<f64>,
    /// RTP talk-spurt lengths and silence lengths, in 20 ms frames.
    spurts: Vec<f64>,
    silences: Vec<f64>,
    /// RTP packets and seconds within spurts of ≥ 10 packets (pooled).
    spurt_pkts: f64,
    spurt_secs: f64,
    /// ICMP: requests, replies, payload sizes, per-flow rates.
    echo_req: usize,
    echo_rep: usize,
    echo_sizes: Vec<usize>,
    echo_rates: Vec<f64>,
    /// Server names in TLS ClientHellos and first lines of FTP/rsync.
    sni: Vec<String>,
    dialogue: Vec<String>,
    unlabelled: usize,
    icmp_other: usize,
}

/// SNI from a ClientHello record (RFC 8446 §4.1.2, RFC 6066 §3), parsed here.
fn sni(b: &[u8]) -> Option<String> {
    if b.len() < 44 || b[0] != 22 || b[5] != 1 {
        return None;
    }
    let mut i = 5 + 4 + 2 + 32;
    i += 1 + *b.get(i)? as usize; // session id
    i += 2 + u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]) as usize; // suites
    i += 1 + *b.get(i)? as usize; // compression
    let end = i + 2 + u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]) as usize;
    i += 2;
    while i + 4 <= end.min(b.len()) {
        let t = u16::from_be_bytes([b[i], b[i + 1]]);
        let l = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if t == 0 {
            let n = u16::from_be_bytes([*b.get(i + 7)?, *b.get(i + 8)?]) as usize;
            return String::from_utf8(b.get(i + 9..i + 9 + n)?.to_vec()).ok();
        }
        i += 4 + l;
    }
    None
}

fn samples(pkts: &[Pkt], labels: &str) -> Samples {
    let lab = flow_labels(labels);
    let mut s = Samples::default();
    // TCP: per connection, runs of payload in one direction.
    struct Conn {
        class: String,
        data: bool,
        largest: u64,
        cur: Option<(bool, u64)>,
        next_seq: [Option<u32>; 2],
        first: [bool; 2],
    }
    let mut conns: HashMap<FlowKey, Conn> = HashMap::new();
    // RTP streams by (flow key, from_client), in capture order.
    let mut rtp: HashMap<(FlowKey, bool), Vec<Rtp>> = HashMap::new();
    let mut echo: HashMap<FlowKey, Vec<u64>> = HashMap::new();
    let mut dns: HashMap<FlowKey, (f64, f64)> = HashMap::new();
    for p in pkts {
        let fwd = (p.proto, p.src, p.sport, p.dst, p.dport);
        let rev = (p.proto, p.dst, p.dport, p.src, p.sport);
        if (p.proto == 1 || p.proto == 58) && !matches!(p.icmp_type, 0 | 8 | 128 | 129) {
            s.icmp_other += 1; // e.g. port unreachable for a datagram after its socket closed
            continue;
        }
        let (key, from_client) = if p.proto == 1 || p.proto == 58 {
            let (c, srv) = if matches!(p.icmp_type, 8 | 128) {
                (p.src, p.dst)
            } else {
                (p.dst, p.src)
            };
            ((1, c, p.sport, srv, 0), matches!(p.icmp_type, 8 | 128))
        } else if lab.contains_key(&fwd) {
            (fwd, true)
        } else {
            (rev, false)
        };
        let Some((class, app)) = lab.get(&key) else {
            s.unlabelled += 1;
            continue;
        };
        match p.proto {
            6 => {
                let c = conns.entry(key).or_insert(Conn {
                    class: class.clone(),
                    data: matches!(app.as_str(), "ftp-data" | "rsync"),
                    largest: 0,
                    cur: None,
                    next_seq: [None; 2],
                    first: [true; 2],
                });
                if p.len == 0 {
                    continue;
                }
                let d = usize::from(!from_client);
                // Count only new bytes (retransmissions would repeat).
                let new = match c.next_seq[d] {
                    Some(n) => {
                        let ahead = p.seq.wrapping_add(p.len as u32).wrapping_sub(n) as i32;
                        ahead.clamp(0, p.len as i32) as u64
                    }
                    None => p.len as u64,
                };
                let end = p.seq.wrapping_add(p.len as u32);
                let advanced = match c.next_seq[d] {
                    Some(n) => (end.wrapping_sub(n) as i32) > 0,
                    None => true,
                };
                if advanced {
                    c.next_seq[d] = Some(end);
                }
                if new == 0 {
                    continue;
                }
                if c.first[d] {
                    c.first[d] = false;
                    if app == "tls" && from_client {
                        if let Some(n) = sni(&p.head) {
                            s.sni.push(n);
                        }
                    }
                    if matches!(app.as_str(), "ftp" | "rsync") && !from_client {
                        let line = String::from_utf8_lossy(&p.head);
                        s.dialogue
                            .push(line.lines().next().unwrap_or("").to_string());
                    }
                }
                match &mut c.cur {
                    Some((dir, n)) if *dir == from_client => *n += new,
                    cur => {
                        if let Some((dir, n)) = cur.take() {
                            c.largest = c.largest.max(n);
                            s.adus
                                .entry((c.class.clone(), dir))
                                .or_default()
                                .push(n as f64);
                        }
                        *cur = Some((from_client, new));
                    }
                }
            }
            17 => {
                s.udp.entry(class.clone()).or_default().push(p.len as f64);
                if class == "dns" {
                    let e = dns.entry(key).or_default();
                    e.0 += 1.0;
                    e.1 += p.len as f64;
                }
                if app == "rtp" && p.head.len() >= 12 {
                    let h = &p.head;
                    rtp.entry((key, from_client)).or_default().push(Rtp {
                        ts: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                        marker: h[1] & 0x80 != 0,
                        pt: h[1] & 0x7f,
                        cap: p.ts,
                    });
                }
            }
            _ => {
                s.echo_sizes.push(p.len);
                if from_client {
                    s.echo_req += 1;
                    echo.entry(key).or_default().push(p.ts);
                } else {
                    s.echo_rep += 1;
                }
            }
        }
    }
    for mut c in conns.into_values() {
        if let Some((dir, n)) = c.cur {
            c.largest = c.largest.max(n);
            s.adus.entry((c.class, dir)).or_default().push(n as f64);
        }
        if c.data {
            s.transfers.push(c.largest as f64);
        }
    }
    for (n, sum) in dns.into_values() {
        s.lookups.push(sum / n);
    }
    for pk in rtp.into_values() {
        // Spurts: runs of PCMU packets, started by a marker bit.
        let mut run: Vec<(u32, u64)> = Vec::new();
        let mut last_voice_ts: Option<u32> = None;
        let flush = |run: &mut Vec<(u32, u64)>, s: &mut Samples| {
            if !run.is_empty() {
                s.spurts.push(run.len() as f64);
                if run.len() >= 10 {
                    s.spurt_pkts += (run.len() - 1) as f64;
                    s.spurt_secs += (run[run.len() - 1].1 - run[0].1) as f64 / 1e9;
                }
            }
            run.clear();
        };
        for Rtp {
            ts,
            marker,
            pt,
            cap,
        } in pk
        {
            if pt != 0 {
                flush(&mut run, &mut s); // comfort noise: silence
                continue;
            }
            if marker {
                flush(&mut run, &mut s);
                if let Some(prev) = last_voice_ts {
                    s.silences
                        .push((ts.wrapping_sub(prev) / 160).saturating_sub(1) as f64);
                }
            }
            run.push((ts, cap));
            last_voice_ts = Some(ts);
        }
        flush(&mut run, &mut s);
    }
    for ts in echo.values() {
        if ts.len() > 50 {
            let span = (ts[ts.len() - 1] - ts[0]) as f64 / 1e9;
            s.echo_rates.push((ts.len() - 1) as f64 / span);
        }
    }
    s
}

/// Two-sample Kolmogorov–Smirnov statistic, ties handled by stepping both
/// empirical CDFs past each distinct value before comparing.
fn ks_d(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(|x, y| x.partial_cmp(y).unwrap());
    b.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// Smirnov's asymptotic critical value of D at level `alpha`.
fn ks_crit(n: usize, m: usize, alpha: f64) -> f64 {
    let c = (-(alpha / 2.0).ln() / 2.0).sqrt();
    c * ((n + m) as f64 / (n * m) as f64).sqrt()
}

#[test]
fn ks_statistic_and_critical_value_match_closed_forms() {
    // Disjoint samples: D = 1. Identical: D = 0. Interleaved 1..=4 vs
    // 2..=5: the largest gap is 1/4 (at x = 1 and x = 4).
    assert_eq!(ks_d(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
    assert_eq!(ks_d(&[1.0, 2.0, 2.0], &[2.0, 1.0, 2.0]), 0.0);
    assert!((ks_d(&[1.0, 2.0, 3.0, 4.0], &[2.0, 3.0, 4.0, 5.0]) - 0.25).abs() < 1e-12);
    // Ties across samples: {1,1,2} vs {1,2,2}: F = 2/3 vs 1/3 at x = 1.
    assert!((ks_d(&[1.0, 1.0, 2.0], &[1.0, 2.0, 2.0]) - 1.0 / 3.0).abs() < 1e-12);
    // c(0.05) = 1.3581, c(0.01) = 1.6276 (Smirnov's table).
    assert!((ks_crit(100, 100, 0.05) - 1.3581 * 0.02f64.sqrt()).abs() < 1e-4);
    assert!((ks_crit(1, 1, 0.01) / 2f64.sqrt() - 1.6276).abs() < 1e-3);
}

fn test_cfg(seed: u64) -> GenerateConfig {
    let mut c = GenerateConfig {
        mix: parse_mix("web=10,video=2,video-download=1,voip=6,voip-icmp=2,bulk=3,dns=2").unwrap(),
        users: 26,
        duration_ns: 20_000_000_000,
        seed,
        link_rate_bps: 10e6,
        idle_mean_s: 1.0,
        ..Default::default()
    };
    // SURGE's 1 s think-time scale: more pages (samples) in 20 s.
    c.web.think_xm_s = 1.0;
    c.web.think_max_s = 10.0;
    c.video.fixed_bitrate = Some(1_000_000);
    c.video.segment_s = vec![2];
    c.video.download_median_bytes = 1e6;
    c.video.download_max_bytes = 3e6;
    c.bulk.size_median_bytes = 300e3;
    c.bulk.size_max_bytes = 3e6;
    c
}

/// The largest D / critical value over the comparisons (> 1: rejected).
fn worst(l: &Samples, o: &Samples) -> (f64, &'static str) {
    let cmp = comparisons(l, o);
    let alpha = FAMILY_ALPHA / cmp.len() as f64;
    cmp.iter()
        .map(|(name, a, b)| (ks_d(a, b) / ks_crit(a.len(), b.len(), alpha), *name))
        .fold((0.0, ""), |m, x| if x.0 > m.0 { x } else { m })
}

/// Calibration (run by hand: `cargo test -p generate --test
/// live_vs_offline -- --ignored --nocapture`): the same comparisons with
/// one offline run in place of the live one, over 60 seeds. Under the null
/// hypothesis the family rejects at most ~1 % of the time if the samples
/// behave as independent draws; clustering by session would show here as
/// more rejections. Measured: see the README's generator section.
#[test]
#[ignore]
fn calibrate_offline_against_offline() {
    let reference = pooled(&[101, 102, 103], |_| {}, "calref");
    let mut rejected = 0;
    let mut ratios = Vec::new();
    for seed in 200..260 {
        let s = offline(&test_cfg(seed), &format!("cal{seed}"));
        let (r, name) = worst(&s, &reference);
        eprintln!("seed {seed}: worst D/critical {r:.3} ({name})");
        ratios.push(r);
        if r > 1.0 {
            rejected += 1;
        }
    }
    ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "{rejected}/60 rejected at family α = {FAMILY_ALPHA}; median worst ratio {:.3}",
        ratios[30]
    );
    assert!(rejected <= 3, "{rejected}/60 false rejections");
}

fn offline(cfg: &GenerateConfig, name: &str) -> Samples {
    let g = common::gen(name, cfg, false);
    let (pkts, other, bad) = parse(&g.pcap);
    assert_eq!((other, bad), (0, 0), "offline capture is all valid IP");
    if let Some(d) = g.pcap.parent() {
        let _ = std::fs::remove_dir_all(d);
    }
    samples(&pkts, &g.labels)
}

fn pooled(seeds: &[u64], tweak: impl Fn(&mut GenerateConfig), name: &str) -> Samples {
    let mut all = Samples::default();
    for &seed in seeds {
        let mut c = test_cfg(seed);
        tweak(&mut c);
        let s = offline(&c, &format!("{name}{seed}"));
        for (k, v) in s.adus {
            all.adus.entry(k).or_default().extend(v);
        }
        for (k, v) in s.udp {
            all.udp.entry(k).or_default().extend(v);
        }
        all.transfers.extend(s.transfers);
        all.lookups.extend(s.lookups);
        all.spurts.extend(s.spurts);
        all.silences.extend(s.silences);
        all.spurt_pkts += s.spurt_pkts;
        all.spurt_secs += s.spurt_secs;
    }
    all
}

/// The KS comparisons: (name, live sample, offline sample).
fn comparisons<'a>(l: &'a Samples, o: &'a Samples) -> Vec<(&'static str, &'a [f64], &'a [f64])> {
    let adu = |s: &'a Samples, c: &str, client: bool| -> &'a [f64] {
        s.adus.get(&(c.to_string(), client)).map_or(&[], |v| v)
    };
    let udp = |s: &'a Samples, c: &str| -> &'a [f64] { s.udp.get(c).map_or(&[], |v| v) };
    vec![
        (
            "web server ADU bytes",
            adu(l, "web", false),
            adu(o, "web", false),
        ),
        (
            "video server ADU bytes",
            adu(l, "video", false),
            adu(o, "video", false),
        ),
        (
            "bulk server ADU bytes",
            adu(l, "bulk", false),
            adu(o, "bulk", false),
        ),
        ("bulk transfer bytes", &l.transfers, &o.transfers),
        ("dns bytes per lookup", &l.lookups, &o.lookups),
        ("voip UDP payload bytes", udp(l, "voip"), udp(o, "voip")),
        ("voip talk spurts (frames)", &l.spurts, &o.spurts),
        ("voip silences (frames)", &l.silences, &o.silences),
    ]
}

const FAMILY_ALPHA: f64 = 0.01;

#[test]
fn live_in_a_namespace_matches_offline_per_class() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root for the namespace and the capture (run the suite as root)");
        return;
    }
    let dir = common::tmpdir("live-vs-offline");
    let pcap = dir.join("live.pcap");
    let cfg = test_cfg(31);
    let mut labels = Vec::new();
    let mut ready_iface = String::new();
    let mut ready = |i: &str| ready_iface = i.to_string();
    let opts = LiveOptions {
        record: Some(&pcap),
        snaplen: 0,
        on_ready: Some(&mut ready),
        on_plan: None,
    };
    let sum = run_live_opts(&cfg, LiveNet::Netns, &mut labels, opts).expect("live run");
    let labels = String::from_utf8(labels).unwrap();
    let rec = sum.recorded.clone().expect("recorded");
    eprintln!("live: {sum:?}");
    eprintln!("{}", sum.lag);
    assert_eq!(ready_iface, sum.interface);
    assert!(
        sum.offloads_off,
        "offloads stay on: packets would not be wire-sized"
    );
    assert_eq!(
        rec.dropped, 0,
        "kernel dropped packets: the comparison would be biased"
    );
    let (pkts, non_ip, bad) = parse(&pcap);
    assert_eq!(pkts.len() as u64 + non_ip as u64, rec.packets);
    assert_eq!(bad, 0, "live packets with bad checksums");
    let live = samples(&pkts, &labels);
    eprintln!(
        "live capture: {} IP packets, {non_ip} other frames, {} ICMP other than echo",
        pkts.len(),
        live.icmp_other
    );
    assert_eq!(
        live.unlabelled, 0,
        "every live packet belongs to a labelled flow"
    );
    // Wire-sized segments: none above the veth MTU.
    let max_tcp = pkts
        .iter()
        .filter(|p| p.proto == 6)
        .map(|p| p.len)
        .max()
        .unwrap();
    assert!(
        max_tcp <= 1460,
        "TCP segment of {max_tcp} bytes: offloads still on"
    );

    // The live-only protocol details: TLS with SNI, FTP and rsync dialogues.
    assert!(
        live.sni
            .iter()
            .any(|n| n.starts_with("www.") && n.ends_with(".example.com")),
        "no ClientHello with a site's SNI: {:?}",
        live.sni
    );
    assert!(
        live.dialogue.iter().any(|l| l.starts_with("220 ")),
        "{:?}",
        live.dialogue
    );
    assert!(
        live.dialogue.iter().any(|l| l.starts_with("@RSYNCD: ")),
        "{:?}",
        live.dialogue
    );

    // ICMP echo: every request answered, 160 data bytes, 50 ± 1 per second.
    assert!(live.echo_req > 500, "{} echo requests", live.echo_req);
    assert_eq!(live.echo_req, live.echo_rep, "every echo answered");
    assert!(live.echo_sizes.iter().all(|n| *n == 160));
    for r in &live.echo_rates {
        assert!((r - 50.0).abs() <= 1.0, "pings per second {r}");
    }
    // RTP within talk spurts: 50 ± 1 packets/s per direction, pooled.
    let rate = live.spurt_pkts / live.spurt_secs;
    eprintln!(
        "live RTP rate in spurts {rate:.3}/s over {:.0} s",
        live.spurt_secs
    );
    assert!(
        live.spurt_secs > 30.0,
        "too little talk: {} s",
        live.spurt_secs
    );
    assert!(
        (rate - 50.0).abs() <= 1.0,
        "RTP packets/s in talk spurts: {rate}"
    );

    // Per-class distributions against offline.
    let off = pooled(&[101, 102, 103], |_| {}, "ref");
    let cmp = comparisons(&live, &off);
    let alpha = FAMILY_ALPHA / cmp.len() as f64;
    let mut failed = Vec::new();
    for (name, l, o) in &cmp {
        assert!(
            l.len() >= 20 && o.len() >= 20,
            "{name}: too few samples ({} live, {} offline)",
            l.len(),
            o.len()
        );
        let d = ks_d(l, o);
        let crit = ks_crit(l.len(), o.len(), alpha);
        eprintln!(
            "{name:28} live n={:5} offline m={:5}  D={d:.4}  critical {crit:.4}",
            l.len(),
            o.len()
        );
        if d > crit {
            failed.push(format!("{name}: D = {d:.4} > {crit:.4}"));
        }
    }
    assert!(failed.is_empty(), "live differs from offline: {failed:?}");

    // The same comparisons reject a different model.
    let wrong_web = pooled(&[101, 102, 103], |c| c.web.obj_mu += 1.0, "wrongweb");
    let (l, o) = (
        &live.adus[&("web".to_string(), false)],
        &wrong_web.adus[&("web".to_string(), false)],
    );
    let d = ks_d(l, o);
    assert!(
        d > ks_crit(l.len(), o.len(), alpha),
        "web sizes ×e not detected: D = {d}"
    );
    let wrong_talk = pooled(&[101, 102, 103], |c| c.voip.on_mean_s *= 3.0, "wrongtalk");
    let d = ks_d(&live.spurts, &wrong_talk.spurts);
    assert!(
        d > ks_crit(live.spurts.len(), wrong_talk.spurts.len(), alpha),
        "talk spurts ×3 not detected: D = {d}"
    );
    std::fs::remove_dir_all(dir).ok();
}

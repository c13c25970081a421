//! Oracle tests: every generated capture must read cleanly in tshark (no
//! malformed packets, no checksum or sequence warnings, complete TCP
//! streams) and in `capture::CaptureReader`, and tshark's conversations
//! must match the label rows one-to-one. tshark is required: install it
//! with `apt-get install tshark`.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{gen, label_rows, read_frames, tshark, Generated};
use generate::{parse_mix, GenerateConfig};

fn small(mix: &str, users: u32, secs: u64, seed: u64, ipv6: bool) -> GenerateConfig {
    let mut cfg = GenerateConfig {
        mix: parse_mix(mix).unwrap(),
        users,
        duration_ns: secs * 1_000_000_000,
        seed,
        ipv6,
        ..Default::default()
    };
    cfg.bulk.size_median_bytes = 1e6;
    cfg.bulk.size_max_bytes = 4e6;
    cfg.video.download_median_bytes = 2e6;
    cfg.video.download_max_bytes = 6e6;
    cfg.video.watch_median_s = 20.0;
    cfg.video.buffer_target_s = 12.0;
    cfg.video.ladder = vec![300_000, 750_000, 1_500_000];
    cfg.web.think_max_s = 10.0;
    cfg
}

fn check(name: &str, g: &Generated) {
    let path = g.pcap.to_str().unwrap();
    // Our own parser: checksums, order, counts.
    let frames = read_frames(&g.pcap);
    assert_eq!(
        frames.len() as u64,
        g.summary.packets,
        "{name}: frame count"
    );
    assert!(
        frames.windows(2).all(|w| w[0].ts <= w[1].ts),
        "{name}: timestamps out of order"
    );
    let pl: Vec<&str> = g.packet_labels.lines().skip(1).collect();
    assert_eq!(pl.len(), frames.len(), "{name}: one packet label per frame");
    assert!(pl
        .iter()
        .enumerate()
        .all(|(i, l)| l.starts_with(&format!("{},", i + 1))));

    // One two-pass tshark run: per-packet TCP fields, then the expert,
    // TCP and UDP conversation taps.
    let out = tshark(&[
        "-r",
        path,
        "-2",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "tcp.completeness",
        "-e",
        "tcp.flags.syn",
        "-e",
        "tcp.flags.ack",
        "-e",
        "tcp.flags.reset",
        "-z",
        "expert",
        "-z",
        "conv,tcp",
        "-z",
        "conv,udp",
    ]);
    let split = out.find("\n=====").map_or(out.len(), |i| i + 1);
    let (fields, stats) = out.split_at(split);
    assert_eq!(
        fields.lines().count(),
        frames.len(),
        "{name}: tshark frame count"
    );
    // Expert info: nothing of severity warning or error.
    for bad in [
        "Errors (",
        "Warnings (",
        "Malformed",
        "Bad checksum",
        "checksum incorrect",
    ] {
        assert!(
            !stats.contains(bad),
            "{name}: tshark reports {bad}:\n{stats}"
        );
    }
    // Every TCP stream complete: SYN, SYN-ACK, ACK, data, FIN (31), no RST.
    // tshark reports 30 (no SYN) for FTP data connections that its FTP
    // dissector pre-registered from the PASV reply even though the SYN is
    // there, so the SYN is checked from the flags instead.
    let mut streams: HashMap<String, (u32, bool)> = HashMap::new();
    for l in fields.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f[0].is_empty() {
            continue;
        }
        let c: u32 = f[1].parse().unwrap_or(0);
        let syn = matches!(f[2], "1" | "True") && matches!(f[3], "0" | "False");
        assert!(
            !matches!(f[4], "1" | "True"),
            "{name}: RST in stream {}",
            f[0]
        );
        let e = streams.entry(f[0].to_string()).or_default();
        e.0 = e.0.max(c);
        e.1 |= syn;
    }
    assert!(!streams.is_empty() || !g.labels.contains(",TCP,"));
    for (s, (c, syn)) in &streams {
        let c = if *syn { c | 1 } else { *c };
        assert_eq!(
            c, 31,
            "{name}: TCP stream {s} incomplete (completeness {c})"
        );
    }
    // Conversations vs label rows, one-to-one.
    let mut seen = BTreeSet::new();
    let mut proto = "";
    for l in stats.lines() {
        if l.starts_with("TCP Conversations") {
            proto = "TCP";
        } else if l.starts_with("UDP Conversations") {
            proto = "UDP";
        } else if l.contains("<->") {
            let t: Vec<&str> = l.split_whitespace().collect();
            let (a, b) = (t[0].to_string(), t[2].to_string());
            let key = if a < b { (proto, a, b) } else { (proto, b, a) };
            // tshark splits RTP set up by SDP into one conversation per
            // direction; TCP conversations must be unique.
            let fresh = seen.insert(key.clone());
            assert!(
                fresh || proto == "UDP",
                "{name}: duplicate conversation {key:?}"
            );
        }
    }
    let rows = label_rows(&g.labels);
    let mut labelled = BTreeSet::new();
    for r in &rows {
        assert!(["web", "video", "voip", "bulk", "dns"].contains(&r["class"].as_str()));
        assert!(r["start"] <= r["end"]);
        if r["proto"] == "ICMP" {
            continue;
        }
        let a = format!("{}:{}", r["ip_a"], r["port_a"]);
        let b = format!("{}:{}", r["ip_b"], r["port_b"]);
        let p = if r["proto"] == "TCP" { "TCP" } else { "UDP" };
        let key = if a < b { (p, a, b) } else { (p, b, a) };
        assert!(
            labelled.insert(key.clone()),
            "{name}: two label rows for {key:?}"
        );
    }
    assert_eq!(
        seen, labelled,
        "{name}: tshark conversations and label rows differ"
    );
    let flows: u64 = g.summary.flows.values().sum();
    assert_eq!(flows as usize, rows.len());
    std::fs::remove_dir_all(g.pcap.parent().unwrap()).ok();
}

fn class_case(class: &str, users: u32, secs: u64) {
    let g = gen(
        &format!("oracle-{class}"),
        &small(class, users, secs, 7, false),
        false,
    );
    assert!(
        g.summary.packets > 50,
        "{class}: too little traffic: {:?}",
        g.summary
    );
    check(class, &g);
}

#[test]
fn web_is_clean() {
    class_case("web", 3, 30);
}

#[test]
fn video_is_clean() {
    class_case("video", 2, 30);
}

#[test]
fn video_download_is_clean() {
    class_case("video-download", 2, 20);
}

#[test]
fn voip_is_clean() {
    class_case("voip", 3, 30);
}

#[test]
fn voip_icmp_is_clean() {
    class_case("voip-icmp", 2, 20);
}

#[test]
fn bulk_is_clean() {
    class_case("bulk", 3, 20);
}

#[test]
fn dns_is_clean() {
    class_case("dns", 3, 30);
}

#[test]
fn mix_ipv4_pcap_is_clean() {
    let cfg = small(
        "web=3,video=1,video-download=1,voip=2,voip-icmp=1,bulk=1,dns=1",
        8,
        20,
        11,
        false,
    );
    let g = gen("oracle-mix4", &cfg, false);
    for c in ["web", "video", "voip", "bulk", "dns"] {
        assert!(
            g.summary.flows.get(c).copied().unwrap_or(0) > 0,
            "no {c} flows: {:?}",
            g.summary
        );
    }
    check("mix-v4", &g);
}

#[test]
fn mix_ipv6_pcapng_is_clean() {
    let cfg = small(
        "web=3,video=1,voip=2,voip-icmp=1,bulk=1,dns=1",
        6,
        15,
        12,
        true,
    );
    let g = gen("oracle-mix6", &cfg, true);
    let rows = label_rows(&g.labels);
    assert!(rows.iter().all(|r| r["ip_a"].starts_with("fd00:")));
    assert!(rows
        .iter()
        .all(|r| r["ip_b"].starts_with("2001:db8:") || r["ip_b"] == "fd00::53"));
    check("mix-v6", &g);
}

#[test]
fn tls_client_hello_carries_sni_and_alpn() {
    let mut cfg = small("web", 2, 20, 3, false);
    cfg.web.tls_fraction = 1.0;
    let g = gen("oracle-sni", &cfg, false);
    let out = tshark(&[
        "-r",
        g.pcap.to_str().unwrap(),
        "-Y",
        "tls.handshake.type == 1",
        "-T",
        "fields",
        "-e",
        "tls.handshake.extensions_server_name",
        "-e",
        "tls.handshake.extensions_alpn_str",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty());
    for l in lines {
        let (sni, alpn) = l.split_once('\t').unwrap();
        assert!(
            sni.ends_with(".example.com") || sni.contains(".example."),
            "SNI {sni}"
        );
        assert!(
            alpn.contains("h2") && alpn.contains("http/1.1"),
            "ALPN {alpn}"
        );
    }
    let hosts = tshark(&[
        "-r",
        g.pcap.to_str().unwrap(),
        "-Y",
        "dns.flags.response == 1 && dns.a",
        "-T",
        "fields",
        "-e",
        "dns.qry.name",
    ]);
    assert!(
        hosts.lines().any(|h| h.starts_with("www.")),
        "DNS lookups before the sites"
    );
}

#[test]
fn fast_link_uploads_are_clean() {
    // 1 Gbit/s, 80 ms: the bandwidth-delay product exceeds the server's
    // receive window, which the sender must respect.
    let mut cfg = small("bulk", 2, 8, 5, false);
    cfg.link_rate_bps = 1e9;
    cfg.rtt_ns = 80_000_000;
    cfg.bulk.upload_fraction = 1.0;
    cfg.bulk.rsync_fraction = 0.0;
    cfg.bulk.size_median_bytes = 8e6;
    cfg.bulk.size_max_bytes = 12e6;
    let g = gen("oracle-upload", &cfg, false);
    assert!(g.labels.contains("ftp-data"));
    check("fast-upload", &g);
}

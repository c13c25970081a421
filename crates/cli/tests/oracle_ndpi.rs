//! Second oracle: nDPI's expected outputs (`*.pcap.out` beside each capture in
//! `../shared/data/pcap-apps`, written by ndpiReader, an independent
//! implementation) give per-flow packets and bytes per direction.
//!
//! Principled differences:
//! - nDPI keys flows by five-tuple without ending them on FIN/RST, and its
//!   idle timeout does not fire within these short captures: trafficscope
//!   records are summed per five-tuple, as for tshark.
//! - nDPI counts IPv4 fragments it cannot attribute separately; flows whose
//!   records hold fragments are compared on the first fragments only and
//!   therefore skipped here (the tshark test covers them).
//! - nDPI drops flows it considers not worth reporting (e.g. packets it
//!   cannot parse): only flows listed by nDPI are checked, and trafficscope
//!   must have every one of them.

mod common;

use std::collections::HashMap;

use common::*;

type Key = (String, String, u16, String, u16);

fn canon(proto: &str, a: &str, pa: u16, b: &str, pb: u16) -> (Key, bool) {
    let na: std::net::IpAddr = a.parse().unwrap();
    let nb: std::net::IpAddr = b.parse().unwrap();
    if (na, pa) <= (nb, pb) {
        ((proto.into(), na.to_string(), pa, nb.to_string(), pb), true)
    } else {
        (
            (proto.into(), nb.to_string(), pb, na.to_string(), pa),
            false,
        )
    }
}

fn endpoint(s: &str) -> (String, u16) {
    // "1.2.3.4:80" or "[2001:db8::1]:443"
    let (host, port) = s.rsplit_once(':').unwrap();
    (
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port.parse().unwrap(),
    )
}

/// (key, [lo→hi, hi→lo] as (packets, bytes)) for each TCP/UDP flow nDPI lists.
fn ndpi_flows(text: &str) -> Vec<(Key, [(u64, u64); 2])> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let mut parts = t.splitn(3, |c: char| c.is_whitespace());
        let (Some(idx), Some(proto), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if idx.parse::<u32>().is_err() || !(proto == "TCP" || proto == "UDP") {
            continue;
        }
        let mut words = rest.split_whitespace();
        let a = words.next().unwrap();
        let _arrow = words.next().unwrap();
        let b = words.next().unwrap();
        // "[13 pkts/2173 bytes <-> 16 pkts/15336 bytes]" (or "->").
        let Some(start) = rest.find(" pkts/") else {
            continue;
        };
        let open = rest[..start].rfind('[').unwrap();
        let close = open + rest[open..].find(']').unwrap();
        let seg = &rest[open + 1..close];
        let nums: Vec<u64> = seg
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let (ha, pa) = endpoint(a);
        let (hb, pb) = endpoint(b);
        let (k, fwd) = canon(&proto.to_ascii_lowercase(), &ha, pa, &hb, pb);
        let ab = (nums[0], nums[1]);
        let ba = (nums[2], nums[3]);
        out.push((k, if fwd { [ab, ba] } else { [ba, ab] }));
    }
    out
}

#[test]
fn flows_agree_with_ndpi_expected_outputs() {
    let data = data_dir();
    let outs = files_with_ext(&data.join("pcap-apps"), &[".out"]);
    assert!(outs.len() >= 40, "nDPI outputs not found");
    let (mut checked, mut flows) = (0, 0);
    let mut failures = Vec::new();
    for out in &outs {
        let cap = out.with_extension("");
        let text = std::fs::read_to_string(out).unwrap();
        let expected = ndpi_flows(&text);
        let ours_csv = flows_without_timeouts(&cap, "csv");
        let mut ours: HashMap<Key, [(u64, u64); 2]> = HashMap::new();
        let mut fragmented = std::collections::HashSet::new();
        for r in csv_rows(&ours_csv) {
            let proto = r["proto"].to_ascii_lowercase();
            if proto != "tcp" && proto != "udp" {
                continue;
            }
            let (k, fwd) = canon(
                &proto,
                &r["src"],
                r["src_port"].parse().unwrap(),
                &r["dst"],
                r["dst_port"].parse().unwrap(),
            );
            if r["fragments"] != "0" {
                fragmented.insert(k.clone());
            }
            let n = |c: &str| r[c].parse::<u64>().unwrap();
            let (f, b) = (
                (n("fwd_packets"), n("fwd_bytes")),
                (n("bwd_packets"), n("bwd_bytes")),
            );
            let e = ours.entry(k).or_default();
            let (lh, hl) = if fwd { (f, b) } else { (b, f) };
            e[0].0 += lh.0;
            e[0].1 += lh.1;
            e[1].0 += hl.0;
            e[1].1 += hl.1;
        }
        checked += 1;
        for (k, want) in expected {
            if fragmented.contains(&k) {
                continue;
            }
            flows += 1;
            match ours.get(&k) {
                Some(got) if *got == want => {}
                got => failures.push(format!(
                    "{}: {k:?}: nDPI {want:?}, trafficscope {got:?}",
                    cap.file_name().unwrap().to_string_lossy()
                )),
            }
        }
    }
    eprintln!(
        "compared {flows} flows of {checked} captures with nDPI; {} disagree",
        failures.len()
    );
    for f in &failures {
        eprintln!("  {f}");
    }
    assert!(flows >= 700, "too few flows compared: {flows}");
    assert!(
        failures.is_empty(),
        "{} flows disagree with nDPI",
        failures.len()
    );
}

//! Live mode over loopback: real sockets, labels from the real 5-tuples.

use generate::live::run_live;
use generate::{parse_mix, GenerateConfig};

#[test]
fn live_loopback_labels_every_class() {
    let mut cfg = GenerateConfig {
        mix: parse_mix("web=1,video=1,video-download=1,voip=1,bulk=1,dns=1").unwrap(),
        users: 6,
        duration_ns: 3_000_000_000,
        link_rate_bps: 50e6,
        ..Default::default()
    };
    cfg.bulk.size_median_bytes = 1e6;
    cfg.bulk.size_max_bytes = 3e6;
    cfg.video.download_median_bytes = 1e6;
    cfg.video.download_max_bytes = 3e6;
    cfg.web.think_max_s = 1.0;
    let t = std::time::Instant::now();
    let mut labels = Vec::new();
    let s = run_live(&cfg, &mut labels).expect("live run");
    assert!(t.elapsed().as_secs_f64() < 20.0);
    let text = String::from_utf8(labels).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(generate::LABELS_HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len() as u64, s.flows);
    for c in ["web", "video", "voip", "bulk", "dns"] {
        assert!(rows.iter().any(|r| r[6] == c), "no {c} flow in\n{text}");
    }
    for r in &rows {
        assert_eq!(r[2], "127.0.0.1");
        assert!(r[3].parse::<u16>().unwrap() > 0 && r[5].parse::<u16>().unwrap() > 0);
        assert!(r[8] <= r[9], "start after end: {r:?}");
    }
    let mut tuples: Vec<_> = rows.iter().map(|r| (r[1], r[3], r[5])).collect();
    tuples.sort();
    tuples.dedup();
    assert_eq!(tuples.len(), rows.len(), "one row per 5-tuple");
    assert!(s.bytes_served > 1_000_000, "{s:?}");
}

#[test]
fn live_rejects_icmp_with_the_fix() {
    let cfg = GenerateConfig {
        mix: parse_mix("voip-icmp").unwrap(),
        ..Default::default()
    };
    let e = run_live(&cfg, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("offline"), "{e}");
}

#[test]
fn live_netns_runs_as_root_or_names_the_fix() {
    use generate::live::{run_live_with, LiveNet};
    let cfg = GenerateConfig {
        mix: parse_mix("web=1,voip=1,dns=1").unwrap(),
        users: 3,
        duration_ns: 2_000_000_000,
        link_rate_bps: 20e6,
        ..Default::default()
    };
    let mut labels = Vec::new();
    let root = unsafe { libc::geteuid() } == 0;
    match run_live_with(&cfg, LiveNet::Netns, &mut labels) {
        Ok(s) => {
            let text = String::from_utf8(labels).unwrap();
            assert!(s.interface.starts_with("tsgh"), "{s:?}");
            let rows: Vec<Vec<&str>> = text
                .lines()
                .skip(1)
                .map(|l| l.split(',').collect())
                .collect();
            assert!(!rows.is_empty());
            for r in &rows {
                assert!(
                    r[2].starts_with("10.213.") && r[4].starts_with("10.213."),
                    "{r:?}"
                );
                assert_ne!(r[2], r[4], "client and server on either end of the veth");
            }
            // The namespace and the veth pair are gone.
            let list = std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap();
            let name = format!("tsgen{}", std::process::id());
            assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
            let link = std::process::Command::new("ip")
                .args(["link", "show", &s.interface])
                .output()
                .unwrap();
            assert!(!link.status.success(), "veth {} left behind", s.interface);
        }
        Err(e) => {
            let m = e.to_string();
            assert!(!root || m.contains("iproute2"), "failed as root: {m}");
            assert!(
                m.contains("run as root or with CAP_NET_ADMIN") || m.contains("iproute2"),
                "error does not name the fix: {m}"
            );
        }
    }
}

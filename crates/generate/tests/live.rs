//! Live mode over loopback and in a namespace: real sockets, labels from
//! the real 5-tuples, lag reported, ICMP echo or a clear error.

use generate::live::{run_live, run_live_with, LagReport, LagStats, LiveNet};
use generate::{parse_mix, GenerateConfig};

fn rows(labels: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8(labels.to_vec()).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(generate::LABELS_HEADER));
    lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

/// Lag figures are finite, non-negative, ordered, and add up.
fn check_lag(l: &LagReport) {
    let ok = |s: &LagStats| {
        for v in [s.mean_ms, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms] {
            assert!(v.is_finite() && v >= 0.0, "{s:?}");
        }
        assert!(s.p50_ms <= s.p99_ms && s.p99_ms <= s.p999_ms && s.p999_ms <= s.max_ms);
        assert!(s.mean_ms <= s.max_ms && s.late <= s.sends, "{s:?}");
    };
    ok(&l.all);
    ok(&l.first_half);
    ok(&l.second_half);
    assert!(l.all.sends > 0, "no scheduled send recorded");
    assert_eq!(l.first_half.sends + l.second_half.sends, l.all.sends);
    let by: u64 = l.by_class.iter().map(|(_, s)| s.sends).sum();
    assert_eq!(by, l.all.sends);
    for (_, s) in &l.by_class {
        ok(s);
    }
    let text = l.to_string();
    assert!(
        text.contains("p99") && text.contains("later than 20 ms"),
        "{text}"
    );
}

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
    let mut labels = Vec::new();
    let s = run_live(&cfg, &mut labels).expect("live run");
    let rows = rows(&labels);
    assert_eq!(rows.len() as u64, s.flows);
    for c in ["web", "video", "voip", "bulk", "dns"] {
        assert!(rows.iter().any(|r| r[6] == c), "no {c} flow in {rows:?}");
    }
    for r in &rows {
        // Each user from its own loopback address, servers on 127.0.0.1.
        assert!(r[2].starts_with("127.1."), "{r:?}");
        assert_eq!(r[4], "127.0.0.1");
        assert!(r[3].parse::<u16>().unwrap() > 0 && r[5].parse::<u16>().unwrap() > 0);
        assert!(r[8] <= r[9], "start after end: {r:?}");
    }
    let users: std::collections::HashSet<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert!(users.len() >= 5, "users share addresses: {users:?}");
    let mut tuples: Vec<_> = rows.iter().map(|r| (&r[1], &r[2], &r[3], &r[5])).collect();
    tuples.sort();
    tuples.dedup();
    assert_eq!(tuples.len(), rows.len(), "one row per 5-tuple");
    // TLS and plain web, DASH, FTP or rsync: the apps of the offline model.
    let apps: std::collections::HashSet<&str> = rows.iter().map(|r| r[10].as_str()).collect();
    assert!(
        apps.contains("dash") && apps.contains("sip") && apps.contains("rtp"),
        "{apps:?}"
    );
    assert!(
        apps.contains("ftp") || apps.contains("rsync"),
        "no FTP or rsync session: {apps:?}"
    );
    assert!(s.bytes_served > 1_000_000, "{s:?}");
    check_lag(&s.lag);
}

#[test]
fn live_icmp_pings_or_names_the_fix() {
    let cfg = GenerateConfig {
        mix: parse_mix("voip-icmp").unwrap(),
        users: 2,
        duration_ns: 2_000_000_000,
        ..Default::default()
    };
    let mut labels = Vec::new();
    let root = unsafe { libc::geteuid() } == 0;
    match run_live(&cfg, &mut labels) {
        Ok(s) => {
            let rows = rows(&labels);
            assert_eq!(rows.len(), 2, "one echo flow per user: {rows:?}");
            for r in &rows {
                assert_eq!((r[1].as_str(), r[6].as_str()), ("ICMP", "voip"));
                assert_eq!((r[4].as_str(), r[5].as_str()), ("127.0.0.1", "0"));
                assert_eq!(r[10], "icmp-echo");
            }
            // About 50 pings a second for 2 s per user (lag records them).
            let icmp = s
                .lag
                .by_class
                .iter()
                .find(|(c, _)| c.name() == "voip-icmp")
                .expect("icmp sends");
            assert!(icmp.1.sends >= 150, "{:?}", icmp.1);
            check_lag(&s.lag);
        }
        Err(e) => {
            let m = e.to_string();
            assert!(!root, "failed as root: {m}");
            assert!(
                m.contains("ping_group_range") && m.contains("CAP_NET_RAW"),
                "error does not name the fix: {m}"
            );
        }
    }
}

#[test]
fn live_netns_runs_as_root_or_names_the_fix() {
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
            assert!(s.interface.starts_with("tsgh"), "{s:?}");
            let rows = rows(&labels);
            assert!(!rows.is_empty());
            for r in &rows {
                assert!(
                    r[2].starts_with("10.213.") && r[4].starts_with("10.213."),
                    "{r:?}"
                );
                assert_ne!(r[2], r[4], "client and server on either end of the veth");
                // Servers on their well-known ports inside the namespace.
                let port: u16 = r[5].parse().unwrap();
                match r[10].as_str() {
                    "http" => assert_eq!(port, 80),
                    "tls" => assert_eq!(port, 443),
                    "dns" => assert_eq!(port, 53),
                    "sip" => assert_eq!(port, 5060),
                    _ => {}
                }
            }
            check_lag(&s.lag);
            // The namespace and the veth pair are gone.
            let ns = s.namespace.clone().expect("namespace name");
            let list = std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap();
            let listed = String::from_utf8_lossy(&list.stdout);
            assert!(!listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&ns)));
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

/// Drops CAP_NET_RAW from the calling thread's effective set (capabilities
/// are per thread on Linux; the rest of the process keeps it).
fn drop_net_raw_here() -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with a valid header and two data words
    // (version 3), on the calling thread only (pid 0).
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) != 0 {
            return false;
        }
        d[0].effective &= !(1 << CAP_NET_RAW);
        libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) == 0
    }
}

#[test]
fn live_icmp_without_cap_net_raw_names_the_fix() {
    if unsafe { libc::geteuid() } != 0 {
        // Without root the test above already takes the error path.
        eprintln!("SKIPPED: needs root to drop a capability it holds");
        return;
    }
    let cfg = GenerateConfig {
        mix: parse_mix("voip-icmp").unwrap(),
        users: 1,
        duration_ns: 1_000_000_000,
        ..Default::default()
    };
    // A thread of its own: the run probes the ICMP socket on the calling
    // thread before any traffic starts.
    let r = std::thread::spawn(move || {
        assert!(drop_net_raw_here(), "capset failed");
        run_live(&cfg, &mut Vec::new())
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .join()
    .unwrap();
    let ping_allowed = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|s| {
            let v: Vec<u32> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            v.len() == 2 && v[0] <= v[1] && v[0] == 0
        })
        .unwrap_or(false);
    match r {
        // Root's group may open ping sockets: no capability needed.
        Ok(()) => assert!(ping_allowed, "ran without CAP_NET_RAW or a ping socket"),
        Err(m) => {
            assert!(!ping_allowed, "{m}");
            assert!(
                m.contains("ping_group_range") && m.contains("CAP_NET_RAW"),
                "error does not name the fix: {m}"
            );
        }
    }
}

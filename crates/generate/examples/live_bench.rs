//! Live-mode lag benchmark: runs a mix live for a bounded time and prints
//! how late the scheduled sends were against their model times.
//!
//! `cargo run -p generate --release --example live_bench -- [--users 50]
//! [--duration 60s] [--mix web=3,video=1,voip=2] [--link-rate 100M]
//! [--net netns|loopback] [--seed 1]`
//!
//! Defaults: the mix for 50 users for 60 s, in a network namespace
//! when run as root (else over loopback). Besides the lag report it prints
//! the CPU time the process used, to read the lag against the load.
use std::time::Instant;

fn cpu_s() -> f64 {
    // SAFETY: getrusage fills a zeroed rusage.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str, d: &str| -> String {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| d.to_string())
    };
    let root = unsafe { libc::geteuid() } == 0;
    let net = match get("--net", if root { "netns" } else { "loopback" }).as_str() {
        "netns" => generate::live::LiveNet::Netns,
        _ => generate::live::LiveNet::Loopback,
    };
    let cfg = generate::GenerateConfig {
        mix: generate::parse_mix(&get("--mix", "web=3,video=1,voip=2"))?,
        users: get("--users", "50").parse()?,
        duration_ns: generate::parse_duration(&get("--duration", "60s"))?,
        link_rate_bps: generate::parse_rate(&get("--link-rate", "100M"))?,
        seed: get("--seed", "1").parse()?,
        pcap_name: "live".into(),
        ..Default::default()
    };
    eprintln!(
        "live_bench: {} users, mix {}, {} s, {:?}, {} CPUs",
        cfg.users,
        get("--mix", "web=3,video=1,voip=2"),
        cfg.duration_ns as f64 / 1e9,
        net,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let t = Instant::now();
    let mut labels = std::io::sink();
    let s = generate::live::run_live_with(&cfg, net, &mut labels)?;
    let wall = t.elapsed().as_secs_f64();
    println!(
        "{} flows, {:.1} MB served ({:.1} Mbit/s average) on {}; wall {wall:.1} s, CPU {:.1} s",
        s.flows,
        s.bytes_served as f64 / 1e6,
        s.bytes_served as f64 * 8.0 / wall / 1e6,
        s.interface,
        cpu_s()
    );
    println!("{}", s.lag);
    Ok(())
}

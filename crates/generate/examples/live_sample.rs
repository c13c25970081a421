//! `cargo run -p generate --example live_sample -- MIX USERS DURATION LABELS.csv`:
//! runs the mix live over loopback (record it with `tcpdump -i lo`); a fifth
//! argument `netns` runs the servers in a network namespace behind a veth pair.
use std::fs::File;
use std::io::BufWriter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: live_sample MIX USERS DURATION LABELS.csv");
        std::process::exit(2);
    }
    let cfg = generate::GenerateConfig {
        mix: generate::parse_mix(&a[1])?,
        users: a[2].parse()?,
        duration_ns: generate::parse_duration(&a[3])?,
        link_rate_bps: 20e6,
        pcap_name: "live.pcap".into(),
        ..Default::default()
    };
    let mut labels = BufWriter::new(File::create(&a[4])?);
    let net = if a.get(5).is_some_and(|s| s == "netns") {
        generate::live::LiveNet::Netns
    } else {
        generate::live::LiveNet::Loopback
    };
    let s = generate::live::run_live_with(&cfg, net, &mut labels)?;
    eprintln!("{s:?}");
    Ok(())
}
